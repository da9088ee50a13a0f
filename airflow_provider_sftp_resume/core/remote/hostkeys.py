"""
Host keys checked as the stock hook (paramiko) checks them, never more permissively.

A key that differs from a pinned key, or from the known_hosts entry of the same type for this host,
is always rejected; a key that is neither pinned nor known is rejected unless the connection
relaxes that (and then, optionally, learned into known_hosts as paramiko's ``AutoAddPolicy`` does).
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass

import asyncssh


@dataclass(frozen=True)
class HostKeyPolicy:
    """
    Which host keys a server may show.

    :param host: the server's host name or address, as the connection names it
    :param port: its TCP port
    :param trusted_host_keys: host keys (OpenSSH public key lines) pinned for this server
    :param known_hosts_path: known_hosts file consulted for this server's keys
    :param verify_host_key: ``False`` accepts a key that is neither pinned nor known
    :param learn_host_keys: append such an accepted unknown key to ``known_hosts_path``
    """

    host: str
    port: int
    trusted_host_keys: tuple[str, ...] = ()
    known_hosts_path: str | None = None
    verify_host_key: bool = True
    learn_host_keys: bool = False

    def pinned_keys(self) -> list[asyncssh.SSHKey]:
        """The keys the connection pins."""
        return [asyncssh.import_public_key(line) for line in self.trusted_host_keys]

    def known_keys(self, host: str, addr: str) -> tuple[list[asyncssh.SSHKey], list[asyncssh.SSHKey]]:
        """The trusted and revoked keys known_hosts holds for this server (bad lines are skipped)."""
        if not self.known_hosts_path:
            return [], []
        try:
            with open(self.known_hosts_path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            return [], []  # paramiko ignores an unreadable known_hosts as well
        trusted: list[asyncssh.SSHKey] = []
        revoked: list[asyncssh.SSHKey] = []
        port = None if self.port == 22 else self.port
        for line in lines:
            try:
                matched = asyncssh.import_known_hosts(line).match(host, addr, port)
            except (ValueError, asyncssh.KeyImportError):
                continue
            trusted.extend(matched[0])
            revoked.extend(matched[2])
        return trusted, revoked

    def check(self, host: str, addr: str, key: asyncssh.SSHKey) -> str | None:
        """
        Decide on the host key a server offered; return why it is refused, or ``None`` to accept it.

        :param host: the host name connected to
        :param addr: its IP address
        :param key: the key the server offered
        """
        offered = f"{key.algorithm.decode('ascii')} key {key.get_fingerprint()}"
        known, revoked = self.known_keys(host, addr)
        if key in revoked:
            return (
                f"The host key of {self._server} is REVOKED: the server offered the {offered}, which "
                f"{self.known_hosts_path} marks @revoked. Do not connect; ask the server's owner."
            )
        same_type = [k for k in known if k.algorithm == key.algorithm]
        if same_type and key not in known:
            return self._changed_in_known_hosts(offered, same_type)
        pinned = self.pinned_keys()
        if pinned:
            return None if key in pinned else self._changed_from_pinned(offered, pinned)
        if key in known or not self.verify_host_key:
            return None
        where = self.known_hosts_path or "~/.ssh/known_hosts (no such file)"
        return (
            f"The host key of {self._server} is unknown: the server offered the {offered}, which is "
            f"neither in the connection's `host_key` extra nor in {where}. Check the fingerprint with "
            f"the server's owner (ssh-keyscan -p {self.port} {self.host} | ssh-keygen -lf -), then put "
            "the key line in the `host_key` extra; set `no_host_key_check` only if you accept the "
            "man-in-the-middle risk."
        )

    @property
    def _server(self) -> str:
        return f"{self.host}:{self.port}"

    def _changed_in_known_hosts(self, offered: str, expected_keys: list[asyncssh.SSHKey]) -> str:
        expected = ", ".join(k.get_fingerprint() for k in expected_keys)
        return (
            f"The host key of {self._server} has CHANGED: the server offered the {offered}, but "
            f"{self.known_hosts_path} holds {expected} for this host. Someone may be intercepting "
            "the connection (man-in-the-middle), or the server was reinstalled. Check the new "
            "fingerprint with the server's owner; if the change is genuine, remove the old entry "
            f"(ssh-keygen -R '{known_hosts_name(self.host, self.port)}' -f {self.known_hosts_path}) "
            "or pin the new key in the connection's `host_key` extra."
        )

    def _changed_from_pinned(self, offered: str, pinned: list[asyncssh.SSHKey]) -> str:
        expected = ", ".join(f"{k.algorithm.decode('ascii')} {k.get_fingerprint()}" for k in pinned)
        return (
            f"The host key of {self._server} has CHANGED: the server offered the {offered}, but the "
            f"connection's `host_key` extra pins {expected}. Someone may be intercepting the "
            "connection (man-in-the-middle), or the server's key was replaced. Check the new "
            "fingerprint with the server's owner before updating the `host_key` extra."
        )

    def learn(self, key: asyncssh.SSHKey) -> None:
        """Append an accepted unknown host key to known_hosts, as paramiko's ``AutoAddPolicy`` does."""
        if not (self.learn_host_keys and self.known_hosts_path):
            return
        kind, data = key.export_public_key("openssh").decode("ascii").split()[:2]
        line = f"{known_hosts_name(self.host, self.port)} {kind} {data}\n".encode("ascii")
        with contextlib.suppress(OSError):
            fd = os.open(self.known_hosts_path, os.O_WRONLY | os.O_APPEND)
            try:
                os.write(fd, line)  # one short append: concurrent tries never interleave lines
            finally:
                os.close(fd)


def known_hosts_name(host: str, port: int) -> str:
    """The host as known_hosts names it (``host``, or ``[host]:port`` off port 22)."""
    return host if port == 22 else f"[{host}]:{port}"


class HostKeyCheckingClient(asyncssh.SSHClient):
    """Hands every server host key to :meth:`HostKeyPolicy.check` and keeps the verdict."""

    def __init__(self, policy: HostKeyPolicy) -> None:
        self._policy = policy
        #: why the server's host key was refused, for the error message
        self.refusal: str | None = None

    def validate_host_public_key(self, host: str, addr: str, port: int, key: asyncssh.SSHKey) -> bool:
        self.refusal = self._policy.check(host, addr, key)
        if self.refusal is not None:
            return False
        if key not in self._policy.known_keys(host, addr)[0] and key not in self._policy.pinned_keys():
            self._policy.learn(key)
        return True
