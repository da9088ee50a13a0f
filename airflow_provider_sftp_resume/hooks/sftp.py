"""Airflow hook: the stock SFTP connection, plus a resumable download over the transfer engine."""

from __future__ import annotations

import inspect
import io
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.sftp.hooks.sftp import SFTPHook
from airflow.providers.ssh.hooks.ssh import SSHHook

from airflow_provider_sftp_resume.core.errors import AuthenticationFailed
from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
from airflow_provider_sftp_resume.core.remote.ssh import SSH_WINDOW, SSHEndpoint, supported_ciphers
from airflow_provider_sftp_resume.core.runner import AbortableRun
from airflow_provider_sftp_resume.core.transfers.batch import BatchResult, download_selection
from airflow_provider_sftp_resume.core.transfers.download import download_file
from airflow_provider_sftp_resume.core.transfers.upload import UploadOptions, UploadResult, upload_file
from airflow_provider_sftp_resume.core.watch.stability import Snapshot, StableSpec, take_snapshot

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    import paramiko

    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, DownloadResult
    from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction
    from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection

KNOWN_HOSTS = "~/.ssh/known_hosts"
#: seconds for the TCP connect when the connection sets no ``conn_timeout`` (paramiko: the OS default)
DEFAULT_CONN_TIMEOUT = 30.0
#: seconds for authentication when the hook sets no ``auth_timeout`` (paramiko's own default)
DEFAULT_AUTH_TIMEOUT = 30.0
R = TypeVar("R")


class ResumableSFTPHook(SFTPHook):
    """
    Interact with SFTP like :class:`~airflow.providers.sftp.hooks.sftp.SFTPHook`, and download resumably.

    The connection is the stock ``sftp`` type with the same fields and extras, read as the stock hook
    reads them (README, "Connection setup", lists each extra and the few deliberate differences).
    Host keys are verified unless the connection explicitly relaxes that, whatever version of
    apache-airflow-providers-ssh is installed (before 7.0.0 its ``no_host_key_check`` defaulted to
    ``True``; here, and in the inherited paramiko methods, it defaults to ``False``).

    :param ssh_conn_id: the :ref:`sftp connection id<howto/connection:sftp>`
    :param connect_attempts: attempts to open the SSH connection before a try fails (transient
        errors only; authentication and host key errors fail at once); ``None`` uses the stock
        ``conn_retry_attempts`` (3)
    :param window: SSH channel receive window in bytes; ``None`` uses 64 MiB (an upper bound only)
    """

    hook_name = "SFTP (resumable)"

    def __init__(
        self,
        ssh_conn_id: str | None = SFTPHook.default_conn_name,
        *args: Any,
        connect_attempts: int | None = None,
        window: int | None = None,
        **kwargs: Any,
    ) -> None:
        explicit_check = kwargs.get("no_host_key_check")
        if "no_host_key_check" not in inspect.signature(SSHHook.__init__).parameters:
            kwargs.pop("no_host_key_check", None)  # SSH providers before 5.x have no such argument
        super().__init__(ssh_conn_id, *args, **kwargs)
        self.connect_attempts = int(
            connect_attempts if connect_attempts is not None else getattr(self, "conn_retry_attempts", 3)
        )
        self.window = window
        self._running: AbortableRun[Any] | None = None
        # The inherited no_host_key_check defaults to True before SSH provider 7.0.0: read the
        # connection ourselves, as the stock hook does, with the secure default.
        self._extra_options = self._read_extras()
        self._check_source = "the hook's no_host_key_check argument"
        if explicit_check is None:
            explicit_check, self._check_source = _no_host_key_check_extra(self._extra_options)
        self.no_host_key_check = bool(explicit_check)
        if self.no_host_key_check and self.host_key is not None:
            raise ValueError("Must check host key when provided")

    def _read_extras(self) -> dict[str, Any]:
        if self.ssh_conn_id is None:
            return {}
        extras: dict[str, Any] = self.get_connection(self.ssh_conn_id).extra_dejson
        return extras

    def ssh_endpoint(self) -> SSHEndpoint:
        """Return the connection settings this hook resolved, in the engine's terms."""
        extras = self._extra_options
        keys: tuple[str, ...] = ()
        if extras.get("private_key"):
            keys = (str(extras["private_key"]),)
        elif self.pkey is not None:
            keys = (_private_key_text(self.pkey),)  # a paramiko key set on the hook in code
        elif self.key_file:
            keys = (os.path.expanduser(str(self.key_file)),)
        trusted: tuple[str, ...] = ()
        if self.host_key is not None:
            trusted = (f"{self.host_key.get_name()} {self.host_key.get_base64()}",)
        relax_unknown = bool(self.no_host_key_check)
        skip_known_hosts = bool(self.allow_host_key_change)
        known_hosts = os.path.expanduser(KNOWN_HOSTS)
        known_hosts_path = known_hosts if not skip_known_hosts and os.path.isfile(known_hosts) else None
        ciphers = self.ciphers or ()
        if isinstance(ciphers, str):
            ciphers = [name.strip() for name in ciphers.split(",") if name.strip()]
        unknown = sorted(set(map(str, ciphers)) - supported_ciphers())
        if unknown:
            raise ValueError(
                f"The `ciphers` extra of connection {self.ssh_conn_id} names {', '.join(unknown)}, which "
                f"this hook cannot use; choose from {', '.join(sorted(supported_ciphers()))}."
            )
        disabled = self.disabled_algorithms or {}
        return SSHEndpoint(
            host=self.remote_host,
            port=int(self.port or 22),
            username=self.username,
            password=self.password.strip() if self.password else None,
            client_keys=keys,
            passphrase=extras.get("private_key_passphrase") or None,
            use_default_keys=bool(self.look_for_keys),
            trusted_host_keys=trusted,
            known_hosts_path=known_hosts_path,
            verify_host_key=not (relax_unknown or skip_known_hosts),
            learn_host_keys=relax_unknown and known_hosts_path is not None,
            # The stock hook gives each phase its own limit (TCP connect, SSH banner, authentication);
            # one deadline for all of them never cuts a connection the stock hook completes.
            connect_timeout=float(self.conn_timeout or DEFAULT_CONN_TIMEOUT)
            + float(self.banner_timeout or 0)
            + float(self.auth_timeout or DEFAULT_AUTH_TIMEOUT),
            keepalive_interval=float(self.keepalive_interval or 0),
            ciphers=tuple(str(name) for name in ciphers),
            disabled_algorithms=tuple(
                (str(kind), tuple(str(name) for name in names)) for kind, names in dict(disabled).items()
            ),
            compress=bool(self.compress),
            proxy_command=self.host_proxy_cmd,
            window=self.window or SSH_WINDOW,
        )

    def host_key_warning(self, endpoint: SSHEndpoint) -> str | None:
        """Say how the connection relaxes host key verification, and which setting does; ``None`` if not."""
        if endpoint.verify_host_key:
            return None
        extras = self._extra_options
        sources = []
        if self.allow_host_key_change:
            from_extra = str(extras.get("allow_host_key_change")).lower() == "true"
            sources.append(
                "the connection's `allow_host_key_change` extra"
                if from_extra
                else "allow_host_key_change set on the hook"
            )
        if self.no_host_key_check:
            sources.append(self._check_source)
        because = " and ".join(sources)
        if endpoint.trusted_host_keys:
            return (
                f"Host key verification is RELAXED for connection {self.ssh_conn_id} by {because}: "
                f"{KNOWN_HOSTS} is not consulted; the pinned `host_key` is still enforced."
            )
        if endpoint.known_hosts_path:
            return (
                f"Host key verification is RELAXED for connection {self.ssh_conn_id} by {because}: an "
                f"unknown server's key is accepted and added to {endpoint.known_hosts_path}; a key that "
                "differs from the one known for the server is still refused."
            )
        return (
            f"Host key verification is OFF for connection {self.ssh_conn_id} by {because}: any host "
            "key is accepted, the server's identity is not checked."
        )

    def download_resumable(
        self,
        remote_path: str,
        local_path: str,
        options: DownloadOptions | None = None,
        *,
        post_action: RemotePostAction | None = None,
        logger: Logger | None = None,
    ) -> DownloadResult:
        """
        Download ``remote_path`` into ``local_path``, resuming an earlier interrupted try.

        :param remote_path: the file on the server
        :param local_path: the local file to write (via ``<local_path>.part``)
        :param options: verification, timeouts and other knobs
        :param post_action: delete or move the remote file once the local copy is verified
        :param logger: where to tell the story; the hook's own log by default
        :return: what this try did
        :raises TransferError: see :mod:`airflow_provider_sftp_resume.core.errors`
        """
        session, log = self._session(logger)
        return self._run(
            partial(
                download_file, session, remote_path, local_path, options, post_action=post_action, logger=log
            )
        )

    def download_directory(
        self,
        selection: RemoteSelection,
        local_dir: str,
        options: DownloadOptions | None = None,
        *,
        concurrency: int = 4,
        post_action: RemotePostAction | None = None,
        logger: Logger | None = None,
    ) -> BatchResult:
        """
        Mirror the remote files of ``selection`` into ``local_dir``, each file resumable on its own.

        :param selection: remote directory or glob, pattern, recursion
        :param local_dir: local directory (relative paths under it mirror the remote tree)
        :param options: per-file verification, timeouts and other knobs
        :param concurrency: files transferred at once
        :param post_action: delete or move each remote file once its local copy is verified
        :param logger: where to tell the story; the hook's own log by default
        :raises SomeFilesFailed: some files failed and a retry can fix them
        :raises BatchFailed: some files failed or were refused for good
        """
        session, log = self._session(logger)
        return self._run(
            partial(
                download_selection,
                session,
                selection,
                Path(os.path.abspath(local_dir)),
                options,
                concurrency=concurrency,
                post_action=post_action,
                logger=log,
            )
        )

    def upload_resumable(
        self,
        local_path: str,
        remote_path: str,
        options: UploadOptions | None = None,
        *,
        logger: Logger | None = None,
    ) -> UploadResult:
        """
        Upload ``local_path`` to ``remote_path``, resuming an earlier interrupted try.

        :param local_path: the local file to send
        :param remote_path: the file to write on the server (via ``<remote_path><temp_suffix>``)
        :param options: temporary suffix, timeouts and other knobs
        :param logger: where to tell the story; the hook's own log by default
        :return: what this try did
        :raises TransferError: see :mod:`airflow_provider_sftp_resume.core.errors`
        """
        session, log = self._session(logger)
        return self._run(partial(upload_file, session, local_path, remote_path, options, logger=log))

    def remote_snapshot(self, spec: StableSpec) -> Snapshot:
        """
        Return size and mtime of the files ``spec`` watches (one poke of a stability sensor).

        :param spec: remote file, directory or glob to look at
        """
        session = SFTPSessionFactory(self.ssh_endpoint(), attempts=self.connect_attempts)

        async def look() -> Snapshot:
            async with session() as fs:
                return await take_snapshot(fs, spec)

        return self._run(look)

    def _session(self, logger: Logger | None) -> tuple[SFTPSessionFactory, Logger]:
        """Resolve the connection, warn about an unverified host key, and return a session factory."""
        endpoint = self.ssh_endpoint()
        log: Logger = logger or self.log
        warning = self.host_key_warning(endpoint)
        if warning:
            log.warning("%s", warning)
        log.info("Connecting to %s", endpoint.describe())
        return SFTPSessionFactory(endpoint, attempts=self.connect_attempts), log

    def _run(self, transfer: Callable[[], Coroutine[Any, Any, R]]) -> R:
        """Run one transfer on its own event loop, abortable from another thread by :meth:`abort`."""
        run = AbortableRun(transfer)
        self._running = run
        try:
            return run.run()
        finally:
            self._running = None

    def abort(self) -> None:
        """Stop a running :meth:`download_resumable` from another thread (``on_kill``)."""
        running = self._running
        if running is not None:
            running.abort()


def _no_host_key_check_extra(extras: dict[str, Any]) -> tuple[bool, str]:
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
