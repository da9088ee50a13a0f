"""Airflow hook: the stock SFTP connection, plus a resumable download over the transfer engine."""

from __future__ import annotations

import inspect
import os
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.sftp.hooks.sftp import SFTPHook
from airflow.providers.ssh.hooks.ssh import SSHHook

from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
from airflow_provider_sftp_resume.core.runner import AbortableRun
from airflow_provider_sftp_resume.core.transfers.batch import BatchResult, download_selection
from airflow_provider_sftp_resume.core.transfers.download import download_file
from airflow_provider_sftp_resume.core.transfers.to_s3 import copy_to_s3
from airflow_provider_sftp_resume.core.transfers.upload import UploadOptions, UploadResult, upload_file
from airflow_provider_sftp_resume.core.watch.stability import Snapshot, StableSpec, take_snapshot
from airflow_provider_sftp_resume.hooks.connection import (
    ConnectionOnce,
    host_key_warning,
    no_host_key_check_extra,
    ssh_endpoint,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine

    from airflow_provider_sftp_resume.core.destinations.s3.calls import S3Target
    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.remote.ssh import SSHEndpoint
    from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions, DownloadResult
    from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction
    from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
    from airflow_provider_sftp_resume.core.transfers.to_s3 import S3CopyResult

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
        # The stock __init__ reads the connection; hand it a reader that keeps what it read, so the
        # extras below come from that one read (an instance attribute shadows the classmethod).
        connection = ConnectionOnce(type(self).get_connection)
        vars(self)["get_connection"] = connection
        try:
            super().__init__(ssh_conn_id, *args, **kwargs)
        finally:
            del vars(self)["get_connection"]
        self.connect_attempts = int(
            connect_attempts if connect_attempts is not None else getattr(self, "conn_retry_attempts", 3)
        )
        self.window = window
        self._running: AbortableRun[Any] | None = None
        # The inherited no_host_key_check defaults to True before SSH provider 7.0.0: read the
        # connection ourselves, as the stock hook does, with the secure default.
        self._extra_options = connection.extras(self.ssh_conn_id)
        self._check_source = "the hook's no_host_key_check argument"
        if explicit_check is None:
            explicit_check, self._check_source = no_host_key_check_extra(self._extra_options)
        self.no_host_key_check = bool(explicit_check)
        if self.no_host_key_check and self.host_key is not None:
            raise ValueError("Must check host key when provided")

    def ssh_endpoint(self) -> SSHEndpoint:
        """Return the connection settings this hook resolved, in the engine's terms."""
        return ssh_endpoint(self, self._extra_options, self.window)

    def host_key_warning(self, endpoint: SSHEndpoint) -> str | None:
        """Say how the connection relaxes host key verification, and which setting does; ``None`` if not."""
        return host_key_warning(self, endpoint, self._extra_options, self._check_source)

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

    def copy_to_s3_resumable(
        self, remote_path: str, s3_client: Any, target: S3Target, options: DownloadOptions, **kwargs: Any
    ) -> S3CopyResult:
        """
        Copy ``remote_path`` into an S3 object, resuming the upload an earlier try left in the bucket.

        :param remote_path: the file on the server
        :param s3_client: a boto3 S3 client
        :param target: bucket, key and the prefix of the resume state
        :param options: verification, timeouts and other knobs
        :param kwargs: ``settings``, ``post_action``, ``logger`` of :func:`~.core.transfers.to_s3.copy_to_s3`
        """
        session, log = self._session(kwargs.pop("logger", None))
        return self._run(
            partial(copy_to_s3, session, remote_path, s3_client, target, options, logger=log, **kwargs)
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
