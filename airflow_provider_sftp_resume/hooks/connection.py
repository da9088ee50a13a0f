"""
The stock ``sftp`` connection, as the stock hook resolved it, in the engine's terms (:class:`SSHEndpoint`).

Keys, host key policy, algorithms and timeouts are read as paramiko (the stock hook) reads them; the
one deliberate difference is the secure default of ``no_host_key_check`` (README, "Connection setup").
"""

from __future__ import annotations

import io
import os
from typing import TYPE_CHECKING, Any

from airflow_provider_sftp_resume.core.errors import AuthenticationFailed
from airflow_provider_sftp_resume.core.remote.algorithms import supported_ciphers
from airflow_provider_sftp_resume.core.remote.ssh import SSH_WINDOW, SSHEndpoint

if TYPE_CHECKING:
    from collections.abc import Callable

    import paramiko
    from airflow.providers.ssh.hooks.ssh import SSHHook

KNOWN_HOSTS = "~/.ssh/known_hosts"
#: seconds for the TCP connect when the connection sets no ``conn_timeout`` (paramiko: the OS default)
DEFAULT_CONN_TIMEOUT = 30.0
#: seconds for authentication when the hook sets no ``auth_timeout`` (paramiko's own default)
DEFAULT_AUTH_TIMEOUT = 30.0


class ConnectionOnce:
    """
    ``get_connection`` that fetches each connection once (on Airflow 3 every fetch asks the API server).

    The stock hook's ``__init__`` reads the connection and keeps only the fields it knows; this hook
    also needs a few extras, so it hands the stock ``__init__`` this reader and keeps what it read.

    :param fetch: the real ``get_connection``
    """

    def __init__(self, fetch: Callable[[str], Any]) -> None:
        self._fetch = fetch
        self._read: dict[str, Any] = {}

    def __call__(self, conn_id: str) -> Any:
        if conn_id not in self._read:
            self._read[conn_id] = self._fetch(conn_id)
        return self._read[conn_id]

    def extras(self, conn_id: str | None) -> dict[str, Any]:
        """The extras of ``conn_id`` (``{}`` without a connection), from the one fetch."""
        if conn_id is None:
            return {}
        extras: dict[str, Any] = self(conn_id).extra_dejson
        return extras


def ssh_endpoint(hook: SSHHook, extras: dict[str, Any], window: int | None) -> SSHEndpoint:
    """
    Translate what the stock hook resolved, and the connection's extras, into an :class:`SSHEndpoint`.

    :param hook: the hook, after the stock ``__init__`` read the connection
    :param extras: the connection's extras
    :param window: SSH channel receive window; ``None`` uses :data:`SSH_WINDOW`
    :raises ValueError: the ``ciphers`` extra names an algorithm asyncssh does not implement
    """
    keys: tuple[str, ...] = ()
    if extras.get("private_key"):
        keys = (str(extras["private_key"]),)
    elif hook.pkey is not None:
        keys = (_private_key_text(hook.pkey),)  # a paramiko key set on the hook in code
    elif hook.key_file:
        keys = (os.path.expanduser(str(hook.key_file)),)
    trusted: tuple[str, ...] = ()
    if hook.host_key is not None:
        trusted = (f"{hook.host_key.get_name()} {hook.host_key.get_base64()}",)
    relax_unknown = bool(hook.no_host_key_check)
    skip_known_hosts = bool(hook.allow_host_key_change)
    known_hosts = os.path.expanduser(KNOWN_HOSTS)
    known_hosts_path = known_hosts if not skip_known_hosts and os.path.isfile(known_hosts) else None
    disabled = hook.disabled_algorithms or {}
    return SSHEndpoint(
        host=hook.remote_host,
        port=int(hook.port or 22),
        username=hook.username,
        password=hook.password.strip() if hook.password else None,
        client_keys=keys,
        passphrase=extras.get("private_key_passphrase") or None,
        use_default_keys=bool(hook.look_for_keys),
        trusted_host_keys=trusted,
        known_hosts_path=known_hosts_path,
        verify_host_key=not (relax_unknown or skip_known_hosts),
        learn_host_keys=relax_unknown and known_hosts_path is not None,
        # The stock hook gives each phase its own limit (TCP connect, SSH banner, authentication);
        # one deadline for all of them never cuts a connection the stock hook completes.
        connect_timeout=float(hook.conn_timeout or DEFAULT_CONN_TIMEOUT)
        + float(hook.banner_timeout or 0)
        + float(hook.auth_timeout or DEFAULT_AUTH_TIMEOUT),
        keepalive_interval=float(hook.keepalive_interval or 0),
        ciphers=_ciphers(hook),
        disabled_algorithms=tuple(
            (str(kind), tuple(str(name) for name in names)) for kind, names in dict(disabled).items()
        ),
        compress=bool(hook.compress),
        proxy_command=hook.host_proxy_cmd,
        window=window or SSH_WINDOW,
    )


def _ciphers(hook: SSHHook) -> tuple[str, ...]:
    """The ``ciphers`` extra (a list, or a comma-separated string), refused if asyncssh lacks a name."""
    ciphers = hook.ciphers or ()
    if isinstance(ciphers, str):
        ciphers = [name.strip() for name in ciphers.split(",") if name.strip()]
    unknown = sorted(set(map(str, ciphers)) - supported_ciphers())
    if unknown:
        raise ValueError(
            f"The `ciphers` extra of connection {hook.ssh_conn_id} names {', '.join(unknown)}, which "
            f"this hook cannot use; choose from {', '.join(sorted(supported_ciphers()))}."
        )
    return tuple(str(name) for name in ciphers)


def host_key_warning(
    hook: SSHHook, endpoint: SSHEndpoint, extras: dict[str, Any], check_source: str
) -> str | None:
    """
    Say how the connection relaxes host key verification, and which setting does; ``None`` if not.

    :param hook: the hook
    :param endpoint: what :func:`ssh_endpoint` made of it
    :param extras: the connection's extras
    :param check_source: the setting that gave ``no_host_key_check``
    """
    if endpoint.verify_host_key:
        return None
    sources = []
    if hook.allow_host_key_change:
        from_extra = str(extras.get("allow_host_key_change")).lower() == "true"
        sources.append(
            "the connection's `allow_host_key_change` extra"
            if from_extra
            else "allow_host_key_change set on the hook"
        )
    if hook.no_host_key_check:
        sources.append(check_source)
    because = " and ".join(sources)
    if endpoint.trusted_host_keys:
        return (
            f"Host key verification is RELAXED for connection {hook.ssh_conn_id} by {because}: "
            f"{KNOWN_HOSTS} is not consulted; the pinned `host_key` is still enforced."
        )
    if endpoint.known_hosts_path:
        return (
            f"Host key verification is RELAXED for connection {hook.ssh_conn_id} by {because}: an "
            f"unknown server's key is accepted and added to {endpoint.known_hosts_path}; a key that "
            "differs from the one known for the server is still refused."
        )
    return (
        f"Host key verification is OFF for connection {hook.ssh_conn_id} by {because}: any host "
        "key is accepted, the server's identity is not checked."
    )


def no_host_key_check_extra(extras: dict[str, Any]) -> tuple[bool, str]:
    """
    Read ``no_host_key_check`` as the stock hook does (``"true"`` in any case), defaulting to ``False``.

    :return: the value, and the setting that gave it (for the warning)
    """
    if extras.get("no_host_key_check") is not None:
        return str(
            extras["no_host_key_check"]
        ).lower() == "true", "the connection's `no_host_key_check` extra"
    if extras.get("ignore_hostkey_verification") is not None:  # deprecated spelling, still honoured
        value = str(extras["ignore_hostkey_verification"]).lower() == "true"
        return value, "the connection's deprecated `ignore_hostkey_verification` extra"
    return False, "no_host_key_check set on the hook"


def _private_key_text(pkey: paramiko.PKey) -> str:
    """The OpenSSH/PEM text of a paramiko key object (``hook.pkey`` set in code)."""
    signing_key = getattr(pkey, "_signing_key", None)  # paramiko's Ed25519Key cannot write itself
    if signing_key is not None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        text = Ed25519PrivateKey.from_private_bytes(bytes(signing_key)[:32]).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
        return text.decode("ascii")
    buffer = io.StringIO()
    try:
        pkey.write_private_key(buffer)
    except Exception as exc:  # a key type paramiko cannot export
        raise AuthenticationFailed(
            f"The {pkey.get_name()} key set as the hook's pkey cannot be exported ({exc}); use the "
            "connection's `key_file` or `private_key` extra instead."
        ) from None
    return buffer.getvalue()
