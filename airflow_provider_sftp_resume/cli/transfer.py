"""One command's transfer: the engine call for ``get``, ``put`` or ``mirror``, retried on retriable errors."""

from __future__ import annotations

import getpass
import os
import posixpath
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_fixed

from airflow_provider_sftp_resume.core.errors import AuthenticationFailed, TransferError
from airflow_provider_sftp_resume.core.runner import AbortableRun
from airflow_provider_sftp_resume.core.transfers.batch import download_selection
from airflow_provider_sftp_resume.core.transfers.download import download_file
from airflow_provider_sftp_resume.core.transfers.upload import upload_file

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Coroutine

    from airflow_provider_sftp_resume.cli.endpoint import Target
    from airflow_provider_sftp_resume.core.logs import Logger
    from airflow_provider_sftp_resume.core.remote.protocol import SessionFactory
    from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions
    from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
    from airflow_provider_sftp_resume.core.transfers.upload_types import UploadOptions

DEFAULT_FILES_AT_ONCE = 4


class Outcome(Protocol):
    """What a try returns: one of the engine's results."""

    def to_dict(self) -> dict[str, Any]: ...


def retriable(exc: BaseException) -> bool:
    """Whether a new try can succeed (the engine's error tree says so)."""
    return isinstance(exc, TransferError) and exc.retriable


def local_target(local: str, remote: str) -> str:
    """``local``, or ``local/<remote's name>`` when ``local`` is a directory (as ``scp`` does)."""
    if local.endswith("/") or os.path.isdir(local):
        return os.path.join(local, posixpath.basename(remote.rstrip("/")))
    return local


def remote_target(remote: str, local: str) -> str:
    """``remote``, or ``remote/<local's name>`` when ``remote`` ends with ``/``."""
    return posixpath.join(remote, os.path.basename(local)) if remote.endswith("/") else remote


def get(
    args: argparse.Namespace, options: DownloadOptions, logger: Logger
) -> Callable[[SessionFactory], Coroutine[Any, Any, Outcome]]:
    """``sftp-resume get REMOTE LOCAL``: :func:`~...core.transfers.download.download_file`."""
    local = local_target(args.local, args.remote)

    async def one_try(session: SessionFactory) -> Outcome:
        return await download_file(session, args.remote, local, options, logger=logger)

    return one_try


def put(
    args: argparse.Namespace, options: UploadOptions, logger: Logger
) -> Callable[[SessionFactory], Coroutine[Any, Any, Outcome]]:
    """``sftp-resume put LOCAL REMOTE``: :func:`~...core.transfers.upload.upload_file`."""
    remote = remote_target(args.remote, args.local)

    async def one_try(session: SessionFactory) -> Outcome:
        return await upload_file(session, args.local, remote, options, logger=logger)

    return one_try


def mirror(
    args: argparse.Namespace, options: DownloadOptions, selection: RemoteSelection, logger: Logger
) -> Callable[[SessionFactory], Coroutine[Any, Any, Outcome]]:
    """``sftp-resume mirror REMOTE LOCAL_DIR``: :func:`~...core.transfers.batch.download_selection`."""
    local_dir = Path(os.path.abspath(args.local))
    files_at_once = args.connections or DEFAULT_FILES_AT_ONCE

    async def one_try(session: SessionFactory) -> Outcome:
        return await download_selection(
            session, selection, local_dir, options, concurrency=files_at_once, logger=logger
        )

    return one_try


class Tries:
    """
    Run a transfer, and again on retriable errors (``--retries``, ``--retry-delay``): each try resumes.

    A refused login without any password, at a terminal, asks for one once (as ``ssh`` does).

    :param transfer: one try, given a session factory
    :param target: where to connect
    :param retries: tries after the first one, on retriable errors only
    :param delay: seconds between tries
    :param logger: where retries are announced
    :param prompt: asks for a password
    """

    def __init__(
        self,
        transfer: Callable[[SessionFactory], Coroutine[Any, Any, Outcome]],
        target: Target,
        *,
        retries: int,
        delay: float,
        logger: Logger,
        prompt: Callable[[str], str] = getpass.getpass,
    ) -> None:
        self._transfer = transfer
        self._target = target
        self._retries = retries
        self._delay = delay
        self._log = logger
        self._prompt = prompt
        self.count = 0  # tries started

    def run(self) -> Outcome:
        """The last try's result. :raises BaseException: what ended the last try"""
        retrying = Retrying(
            stop=stop_after_attempt(self._retries + 1),
            wait=wait_fixed(self._delay),
            retry=retry_if_exception(retriable),
            before_sleep=self._announce,
            reraise=True,
        )
        return retrying(self._one)

    def _one(self) -> Outcome:
        self.count += 1
        try:
            return self._run_once()
        except AuthenticationFailed:
            if not self._target.can_prompt:
                raise
            endpoint = self._target.session.endpoint
            self._target = self._target.with_password(self._prompt(f"Password for {endpoint.describe()}: "))
            return self._run_once()

    def _run_once(self) -> Outcome:
        session = self._target.session
        return AbortableRun(lambda: self._transfer(session)).run()

    def _announce(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome is not None else None
        self._log.warning(
            "Try %d of %d failed (%s: %s); retrying in %g s, resuming from the kept bytes",
            state.attempt_number,
            self._retries + 1,
            type(error).__name__,
            error,
            self._delay,
        )
