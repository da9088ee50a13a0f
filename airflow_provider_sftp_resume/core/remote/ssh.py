"""
The SSH connection's settings: an :class:`SSHEndpoint` (what the Airflow connection says), translated
into :func:`asyncssh.connect` arguments as paramiko (the stock hook) reads them.

Host keys are checked in :mod:`.hostkeys`, client keys loaded in :mod:`.clientkeys`, algorithm lists
built in :mod:`.algorithms`; :mod:`.connect` opens the connection.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import asyncssh

from airflow_provider_sftp_resume.core.errors import AuthenticationFailed
from airflow_provider_sftp_resume.core.remote.algorithms import algorithm_list
from airflow_provider_sftp_resume.core.remote.clientkeys import load_client_keys
from airflow_provider_sftp_resume.core.remote.hostkeys import HostKeyPolicy

if TYPE_CHECKING:
    from collections.abc import Sequence

#: SSH channel receive window asked for (64 MiB): only an upper bound, the engine's outstanding
#: requests decide the data in flight (see :mod:`...io.tuning`).
SSH_WINDOW = 64 * 1024 * 1024


@dataclass(frozen=True)
class SSHEndpoint:
    """
    Everything needed to open an SSH connection, with secrets kept out of ``repr``.

    Host keys, as the stock hook (paramiko) checks them, but never more permissively: a key that
    differs from a pinned key, or from the known_hosts entry of the same type for this host, is
    always rejected; a key that is neither pinned nor known is rejected unless ``verify_host_key``
    is ``False``.

    :param host: server host name or address
    :param port: server TCP port
    :param username: login name
    :param password: password, if password authentication is used; also the passphrase of an
        encrypted key when ``passphrase`` is not set, as paramiko does
    :param client_keys: private keys: file paths, or key text from the connection
    :param passphrase: passphrase of encrypted private keys
    :param use_default_keys: also try the user's default keys (``~/.ssh/id_*``, ``look_for_keys``)
    :param use_agent: also try the keys of a running ssh-agent (``SSH_AUTH_SOCK``), as paramiko does
    :param trusted_host_keys: host keys (OpenSSH public key lines) pinned for this server
    :param known_hosts_path: known_hosts file consulted for this server's keys
    :param verify_host_key: ``False`` accepts a server whose key is neither pinned nor known
        (a pinned key and the known_hosts entries are still enforced)
    :param learn_host_keys: append such an accepted unknown key to ``known_hosts_path``, as
        paramiko's ``AutoAddPolicy`` does, so a later change is caught
    :param connect_timeout: seconds allowed for TCP connect, key exchange and authentication
    :param keepalive_interval: seconds between keepalives (0 disables); a dead link is noticed after
        three missed replies
    :param ciphers: encryption algorithms to prefer, in order (the others are still offered after them)
    :param disabled_algorithms: ``(kind, names)`` pairs never offered, kinds as paramiko's
        ``disabled_algorithms`` (``ciphers``, ``macs``, ``kex``, ``keys``, ``pubkeys``, ``compression``)
    :param compress: also offer zlib compression (after none)
    :param proxy_command: command whose stdin/stdout carry the connection (``ProxyCommand``)
    :param window: SSH channel receive window in bytes; only an upper bound, the engine's outstanding
        requests decide the data in flight (see :mod:`.tuning`)
    :param max_packet_size: largest SSH channel packet the server may send us, in bytes
    """

    host: str
    port: int = 22
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    client_keys: tuple[str, ...] = field(default=(), repr=False)
    passphrase: str | None = field(default=None, repr=False)
    use_default_keys: bool = True
    use_agent: bool = True
    trusted_host_keys: tuple[str, ...] = ()
    known_hosts_path: str | None = None
    verify_host_key: bool = True
    learn_host_keys: bool = False
    connect_timeout: float = 30.0
    keepalive_interval: float = 30.0
    ciphers: tuple[str, ...] = ()
    disabled_algorithms: tuple[tuple[str, tuple[str, ...]], ...] = ()
    compress: bool = False
    proxy_command: str | None = None
    window: int | None = SSH_WINDOW
    max_packet_size: int | None = None

    def describe(self) -> str:
        """Return ``user@host:port`` for log lines (no secrets)."""
        user = f"{self.username}@" if self.username else ""
        return f"{user}{self.host}:{self.port}"

    @property
    def host_key_policy(self) -> HostKeyPolicy:
        """Which host keys the server may show (:mod:`.hostkeys`)."""
        return HostKeyPolicy(
            host=self.host,
            port=self.port,
            trusted_host_keys=self.trusted_host_keys,
            known_hosts_path=self.known_hosts_path,
            verify_host_key=self.verify_host_key,
            learn_host_keys=self.learn_host_keys,
        )

    def asyncssh_options(self) -> dict[str, Any]:
        """
        Translate into keyword arguments of :func:`asyncssh.connect` (host keys checked separately).

        :raises AuthenticationFailed: a private key cannot be used and nothing else can log in
        """
        return self.connect_plan().options

    def connect_plan(self) -> ConnectPlan:
        """
        Everything one connection attempt needs, worked out once before any attempt.

        :raises AuthenticationFailed: a private key cannot be used and nothing else can log in
        """
        options: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "username": self.username,
            "connect_timeout": self.connect_timeout,
            "keepalive_interval": self.keepalive_interval or None,
            "keepalive_count_max": 3,
            # No ~/.ssh/config: the stock hook applies only its ProxyCommand and IdentityFile, which
            # the hook has already resolved; asyncssh would also apply HostName, Port, User, ...
            "config": None,
            # Every host key goes to hostkeys.HostKeyCheckingClient.validate_host_public_key.
            "known_hosts": ([], [], []),
            "server_host_key_algs": self._host_key_algorithms(),
            "encryption_algs": self._algorithms("ciphers", self.ciphers),
            "kex_algs": self._algorithms("kex"),
            "mac_algs": self._algorithms("macs"),
            # Bulk data is mostly compressed already; zlib would make the client CPU-bound.
            "compression_algs": self._algorithms("compression"),
        }
        if dict(self.disabled_algorithms).get("pubkeys"):
            options["signature_algs"] = self._algorithms("pubkeys")
        if self.password is not None:
            options["password"] = self.password
        problems, agent_only = self._add_client_keys(options)
        if self.proxy_command:
            options["proxy_command"] = self.proxy_command
        if self.window:
            options["window"] = self.window
        if self.max_packet_size:
            options["max_pktsize"] = self.max_packet_size
        return ConnectPlan(options, tuple(problems), agent_only)

    def _add_client_keys(self, options: dict[str, Any]) -> tuple[list[str], bool]:
        """
        Set the client keys (and the agent) as paramiko would try them.

        :return: why some keys could not be decrypted, and whether only the agent's keys remain
        :raises AuthenticationFailed: a key cannot be used and nothing else can log in
        """
        keys, problems = load_client_keys(self.client_keys, self.passphrase, self.password)
        agent_only = False
        if keys:
            # paramiko tries the default keys after the connection's own (look_for_keys).
            defaults = asyncssh.public_key.load_default_keypairs(self.passphrase)
            options["client_keys"] = [*keys, *(defaults if self.use_default_keys else ())]
        elif not self.use_default_keys:
            options["client_keys"] = None  # no usable key; the agent's keys are added on connecting
            agent_only = self.use_agent
        # else: asyncssh's default, the agent and ~/.ssh/id_* (paramiko's order after a failed key)
        if not self.use_agent:
            options["agent_path"] = None
        # paramiko goes on to the agent, the default keys and the password after a key it cannot
        # decrypt; with none of them, fail now (permanently), naming the key.
        other_ways = bool(keys) or self.password is not None or self.use_default_keys
        if problems and not (other_ways or (self.use_agent and os.environ.get("SSH_AUTH_SOCK"))):
            raise AuthenticationFailed(" ".join(problems))
        return problems, agent_only

    def _algorithms(self, kind: str, preferred: Sequence[str] = ()) -> list[str]:
        return algorithm_list(
            kind, preferred, disabled=dict(self.disabled_algorithms), compress=self.compress
        )

    def _host_key_algorithms(self) -> list[str]:
        """
        The server's host key types, those of the pinned and known keys first (as paramiko orders them).

        Only an order, never a restriction: a server without the pinned key's type still shows its
        key, so the refusal can name it.
        """
        policy = self.host_key_policy
        first: list[str] = []
        for key in (*policy.pinned_keys(), *policy.known_keys(self.host, "")[0]):
            first.extend(alg.decode("ascii") for alg in key.sig_algorithms)
        return self._algorithms("keys", first)


@dataclass(frozen=True)
class ConnectPlan:
    """
    What one connection attempt needs.

    :param options: keyword arguments of :func:`asyncssh.connect`
    :param key_problems: why some client keys could not be decrypted (named if authentication fails)
    :param agent_only: only the agent's keys remain; they are fetched on connecting
    """

    options: dict[str, Any]
    key_problems: tuple[str, ...]
    agent_only: bool
