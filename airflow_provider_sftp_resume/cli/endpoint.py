"""
Where to connect: an Airflow connection (``--conn-id``, read by the hook) or the explicit flags.

Airflow is imported only for ``--conn-id``; the explicit flags build an
:class:`~...core.remote.ssh.SSHEndpoint` directly. Passwords come from an environment variable or a
prompt, never from the command line.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import asyncssh

from airflow_provider_sftp_resume.cli.arguments import PASSWORD_ENV
from airflow_provider_sftp_resume.cli.knobs import UsageError
from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Mapping

KNOWN_HOSTS = "~/.ssh/known_hosts"
#: Flags that describe the server themselves, so they cannot be combined with ``--conn-id``.
EXPLICIT = ("host", "port", "user", "key", "known_hosts", "host_key", "no_host_key_check", "password_env")
RELAXED = (
    "Host key verification is RELAXED by --no-host-key-check: a server whose key is neither in "
    "known_hosts nor pinned is accepted, and an attacker in the path would not be noticed (a key that "
    "differs from the known or pinned one is still refused). Prefer --known-hosts or --host-key."
)


class ConnectionSetupError(Exception):
    """The Airflow connection cannot be read or used; a person must fix it (a permanent failure)."""


@dataclass(frozen=True)
class Target:
    """
    The server to talk to.

    :param session: opens SFTP sessions to it
    :param warning: how host key verification is relaxed, to be shown first; ``None`` if it is not
    :param can_prompt: no password was given and a person at a terminal could type one
    """

    session: SFTPSessionFactory
    warning: str | None = None
    can_prompt: bool = False

    def with_password(self, password: str) -> Target:
        """The same server, logging in with ``password``."""
        endpoint = replace(self.session.endpoint, password=password)
        return Target(replace(self.session, endpoint=endpoint), self.warning, can_prompt=False)


def resolve(
    args: argparse.Namespace,
    *,
    environ: Mapping[str, str] = os.environ,
    prompt: Callable[[str], str] = getpass.getpass,
    interactive: bool = False,
    airflow_loaded: Callable[[], None] = lambda: None,
) -> Target:
    """
    The server from ``--conn-id`` or the explicit flags.

    :param args: the parsed command line
    :param environ: where ``--password-env`` and ``SFTP_PASSWORD`` are read
    :param prompt: asks for the password (``--password-prompt``)
    :param interactive: stdin is a terminal (a password may be asked for after a refused login)
    :param airflow_loaded: called once Airflow is imported (``--conn-id``), before the connection is read
    :raises UsageError: the flags contradict each other or name something missing
    :raises ConnectionSetupError: the Airflow connection cannot be read
    """
    if args.conn_id:
        given = [
            f"--{name.replace('_', '-')}" for name in EXPLICIT if getattr(args, name) not in (None, [], False)
        ]
        if given or args.password_prompt:
            given += ["--password-prompt"] if args.password_prompt else []
            raise UsageError(
                f"--conn-id takes the server, login, keys and host keys from the Airflow connection; "
                f"leave out {', '.join(given)} (or drop --conn-id)."
            )
        return _from_airflow(args.conn_id, airflow_loaded)
    if not args.host:
        raise UsageError("Say where to connect: --host HOST (with --user, --key, ...) or --conn-id ID.")
    password = _password(args, environ, prompt)
    endpoint = SSHEndpoint(
        host=args.host,
        port=args.port or 22,
        username=args.user or getpass.getuser(),
        password=password,
        client_keys=tuple(os.path.expanduser(key) for key in args.key),
        trusted_host_keys=tuple(_pinned(line) for line in args.host_key),
        known_hosts_path=_known_hosts(args.known_hosts),
        verify_host_key=not args.no_host_key_check,
        connect_timeout=args.connect_timeout,
    )
    return Target(
        SFTPSessionFactory(endpoint),
        RELAXED if args.no_host_key_check else None,
        can_prompt=password is None and interactive,
    )


def _password(
    args: argparse.Namespace, environ: Mapping[str, str], prompt: Callable[[str], str]
) -> str | None:
    if args.password_prompt:
        if args.password_env:
            raise UsageError("Give either --password-env or --password-prompt, not both.")
        return prompt(f"Password for {args.user or getpass.getuser()}@{args.host}: ")
    if args.password_env:
        if args.password_env not in environ:
            raise UsageError(
                f"--password-env {args.password_env}: that environment variable is not set. Export it, "
                "or use --password-prompt."
            )
        return environ[args.password_env]
    return environ.get(PASSWORD_ENV)


def _known_hosts(given: str | None) -> str | None:
    if given is not None:
        path = os.path.expanduser(given)
        if not os.path.isfile(path):
            raise UsageError(f"--known-hosts {given}: no such file. Give an existing known_hosts file.")
        return path
    default = os.path.expanduser(KNOWN_HOSTS)
    return default if os.path.isfile(default) else None


def _pinned(line: str) -> str:
    try:
        asyncssh.import_public_key(line)
    except (asyncssh.KeyImportError, ValueError):
        raise UsageError(
            f"--host-key {line[:40]!r}: not an OpenSSH public key line. Give it as 'ssh-ed25519 AAAA...' "
            "(ssh-keyscan prints them)."
        ) from None
    return line.strip()


def _from_airflow(conn_id: str, airflow_loaded: Callable[[], None]) -> Target:
    """Read the connection exactly as the operators do: through :class:`ResumableSFTPHook`."""
    try:
        from airflow_provider_sftp_resume.hooks.sftp import ResumableSFTPHook
    except ImportError as exc:
        raise ConnectionSetupError(
            f"--conn-id needs Apache Airflow, which cannot be imported here ({exc}). Install the package "
            "with Airflow, or give --host, --user and --key instead."
        ) from None
    airflow_loaded()
    try:
        hook = ResumableSFTPHook(ssh_conn_id=conn_id)
        endpoint = hook.ssh_endpoint()
    except Exception as exc:  # AirflowNotFoundException, a bad extra: whatever Airflow says, shown as is
        raise ConnectionSetupError(
            f"Cannot use the Airflow connection {conn_id!r}: {type(exc).__name__}: {exc}. Define it "
            f"(AIRFLOW_CONN_{conn_id.upper()} or `airflow connections add`), or give --host instead."
        ) from None
    return Target(
        SFTPSessionFactory(endpoint, attempts=hook.connect_attempts), hook.host_key_warning(endpoint)
    )
