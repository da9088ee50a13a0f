"""Trigger: wait in the triggerer until remote files stop changing (no worker slot held)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent
from asgiref.sync import sync_to_async

from airflow_provider_sftp_resume.core.errors import TransferError
from airflow_provider_sftp_resume.core.remote.sftp import SFTPSessionFactory
from airflow_provider_sftp_resume.core.watch.stability import StableSpec, wait_until_stable
from airflow_provider_sftp_resume.hooks.sftp import ResumableSFTPHook

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


class SFTPFileStableTrigger(BaseTrigger):
    """
    Fire once the remote file, or every match of a glob, has kept its size and mtime for a quiet period.

    Connection drops while waiting are retried on the next poll; a permanent error (credentials,
    host key, permissions, a watched name that cannot be downloaded) ends the wait with an error event
    (``retriable: false``), which fails the sensor without retries.

    :param sftp_conn_id: Airflow connection of type ``sftp``
    :param path: remote file, directory (with ``pattern``) or glob
    :param pattern: ``fnmatch`` pattern under a directory
    :param recursive: include subdirectories
    :param min_files: files that must exist
    :param quiet_period: seconds without change
    :param poll_interval: seconds between polls
    """

    def __init__(
        self,
        sftp_conn_id: str,
        path: str,
        *,
        pattern: str | None = None,
        recursive: bool = False,
        min_files: int = 1,
        quiet_period: float = 60.0,
        poll_interval: float = 10.0,
    ) -> None:
        # Named, not super(): mypy's untyped_calls_exclude (pyproject) applies to a callee it can name.
        BaseTrigger.__init__(self)
        self.sftp_conn_id = sftp_conn_id
        self.path = path
        self.pattern = pattern
        self.recursive = recursive
        self.min_files = min_files
        self.quiet_period = quiet_period
        self.poll_interval = poll_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "sftp_conn_id": self.sftp_conn_id,
                "path": self.path,
                "pattern": self.pattern,
                "recursive": self.recursive,
                "min_files": self.min_files,
                "quiet_period": self.quiet_period,
                "poll_interval": self.poll_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The hook reads the connection synchronously; in the triggerer that must not block the loop.
        endpoint = await sync_to_async(
            lambda: ResumableSFTPHook(ssh_conn_id=self.sftp_conn_id).ssh_endpoint()
        )()
        spec = StableSpec(self.path, self.pattern, self.recursive, self.min_files)
        while True:
            try:
                snapshot = await wait_until_stable(
                    SFTPSessionFactory(endpoint),
                    spec,
                    quiet_period=self.quiet_period,
                    poll_interval=self.poll_interval,
                    logger=self.log,
                )
            except TransferError as exc:
                if exc.retriable:
                    self.log.warning("Watching %s: %s; trying again", self.path, exc)
                    await asyncio.sleep(self.poll_interval)
                    continue
                yield TriggerEvent({"status": "error", "message": str(exc), "retriable": False})
                return
            yield TriggerEvent({"status": "stable", "files": {p: list(v) for p, v in snapshot.items()}})
            return
