"""Airflow hook: the stock SFTP connection, plus a resumable download over the transfer engine."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.sftp.hooks.sftp import SFTPHook

from airflow_provider_sftp_resume.core.batch import BatchResult, RemoteSelection, download_selection
from airflow_provider_sftp_resume.core.postaction import download_with_post_action
from airflow_provider_sftp_resume.core.runner import AbortableRun
from airflow_provider_sftp_resume.core.sftp import SFTPSessionFactory, SSHEndpoint
from airflow_provider_sftp_resume.core.stability import Snapshot, StableSpec, take_snapshot
from airflow_provider_sftp_resume.core.tuning import SSH_WINDOW
from airflow_provider_sftp_resume.core.upload import UploadOptions, UploadResult, upload_file

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from airflow_provider_sftp_resume.core.download import DownloadOptions, DownloadResult
    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.postaction import RemotePostAction

KNOWN_HOSTS = "~/.ssh/known_hosts"
R = TypeVar("R")


class ResumableSFTPHook(SFTPHook):
    """
    Interact with SFTP like :class:`~airflow.providers.sftp.hooks.sftp.SFTPHook`, and download resumably.

    The connection is the stock ``sftp`` type with the same fields and extras (``key_file``,
    ``private_key``, ``private_key_passphrase``, ``host_key``, ``no_host_key_check``,
    ``allow_host_key_change``, ``look_for_keys``, ``conn_timeout``, ``ciphers``). Host keys are verified
    unless the connection explicitly turns that off.

    :param ssh_conn_id: the :ref:`sftp connection id<howto/connection:sftp>`
    :param connect_attempts: attempts to open the SSH connection before a try fails (transient
        errors only; authentication and host key errors fail at once)
    :param window: SSH channel receive window in bytes; ``None`` uses 64 MiB (an upper bound only)
    """

    hook_name = "SFTP (resumable)"

    def __init__(
        self,
        ssh_conn_id: str | None = SFTPHook.default_conn_name,
        *args: Any,
        connect_attempts: int = 3,
        window: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(ssh_conn_id, *args, **kwargs)
        self.connect_attempts = connect_attempts
        self.window = window
        self._running: AbortableRun[Any] | None = None

    def ssh_endpoint(self) -> SSHEndpoint:
        """Return the connection settings this hook resolved, in the engine's terms."""
        extras: dict[str, Any] = {}
        if self.ssh_conn_id is not None:
            extras = self.get_connection(self.ssh_conn_id).extra_dejson
        keys: tuple[str, ...] = ()
        if extras.get("private_key"):
            keys = (str(extras["private_key"]),)
        elif self.key_file:
            keys = (str(self.key_file),)
        trusted: tuple[str, ...] = ()
        if self.host_key is not None:
            trusted = (f"{self.host_key.get_name()} {self.host_key.get_base64()}",)
        known_hosts = os.path.expanduser(KNOWN_HOSTS)
        return SSHEndpoint(
            host=self.remote_host,
            port=int(self.port or 22),
            username=self.username,
            password=self.password.strip() if self.password else None,
            client_keys=keys,
            passphrase=extras.get("private_key_passphrase") or None,
            use_default_keys=bool(self.look_for_keys),
            trusted_host_keys=trusted,
            known_hosts_path=known_hosts if os.path.isfile(known_hosts) else None,
            verify_host_key=not (self.no_host_key_check or self.allow_host_key_change),
            connect_timeout=float(self.conn_timeout or 30),
            keepalive_interval=float(self.keepalive_interval or 0),
            ciphers=tuple(self.ciphers or ()),
            proxy_command=self.host_proxy_cmd,
            window=self.window or SSH_WINDOW,
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
            partial(_download_then, session, remote_path, local_path, options, post_action, logger=log)
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
        server = session.endpoint.describe()
        return self._run(
            partial(upload_file, session, local_path, remote_path, options, server=server, logger=log)
        )

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
        if not endpoint.verify_host_key:
            log.warning(
                "Host key verification is OFF for connection %s (the connection sets "
                "no_host_key_check or allow_host_key_change): the server's identity is not checked.",
                self.ssh_conn_id,
            )
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


async def _download_then(
    open_session: SFTPSessionFactory,
    remote_path: str,
    local_path: str,
    options: DownloadOptions | None,
    post_action: RemotePostAction | None,
    *,
    logger: Logger,
) -> DownloadResult:
    """Download, and only once the local copy is complete and verified, run the remote post-action."""
    return await download_with_post_action(
        open_session, remote_path, local_path, options, post_action, logger=logger
    )
