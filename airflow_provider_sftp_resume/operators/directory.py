"""Airflow operator: mirror a remote directory or glob, every file resumable on its own."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_sftp_resume.core.checksums.rule import ChecksumRule
from airflow_provider_sftp_resume.core.errors import BatchFailed, SomeFilesFailed
from airflow_provider_sftp_resume.core.options import is_count
from airflow_provider_sftp_resume.core.resume.verify import DEFAULT_VERIFY
from airflow_provider_sftp_resume.core.transfers.batch import MAX_CONCURRENCY
from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction
from airflow_provider_sftp_resume.core.transfers.selection import RemoteSelection
from airflow_provider_sftp_resume.lineage import Written
from airflow_provider_sftp_resume.operators.base import ResumableSFTPBaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_sftp_resume.core.transfers.batch import BatchResult
    from airflow_provider_sftp_resume.core.transfers.download_types import DownloadOptions
    from airflow_provider_sftp_resume.hooks.sftp import ResumableSFTPHook


class ResumableSFTPDirectoryDownloadOperator(ResumableSFTPBaseOperator):
    """
    Download every file of a remote directory or glob into a local directory, resuming each file.

    Each file gets its own ``.part`` and sidecar, as with
    :class:`~airflow_provider_sftp_resume.operators.sftp.ResumableSFTPDownloadOperator`; up to
    ``concurrency`` files move at once. A small file (up to 1 MiB) not yet present locally is
    fetched whole in one pass instead (open, then every read and the checks in one flight; no
    sidecar: a cut one starts again), and all of them share one SFTP session. What each file's
    durability is: ``docs/directories.md``. Files already complete and unchanged are skipped. When some
    files fail, the others still finish and the try fails afterwards, so the retry transfers only
    what is missing. Remote names are untrusted: a name or link that would land outside
    ``local_dir`` is refused (the task fails without retry, naming it) and nothing is written for it.

    Returns (XCom) a dict with totals (``files_total``, ``files_downloaded``, ``files_resumed``,
    ``files_skipped``, ``files_failed``, ``files_refused``, ``bytes_total``, ``bytes_transferred``)
    and ``files``, one entry per file. A failed try pushes the same dict under the XCom key
    ``batch_result``.

    :param remote_path: remote directory, or a glob such as ``/outgoing/*.csv`` (templated)
    :param local_dir: local directory to mirror into, created if missing (templated)
    :param pattern: ``fnmatch`` pattern for the file names under a directory (templated)
    :param recursive: descend into subdirectories (relative paths are kept locally)
    :param concurrency: files transferred at once; a file over 1 MiB gets an SFTP session of its own,
        small files share one (and up to ``concurrency`` more of them are opened ahead of their turn)
    :param verify: checks that prove kept bytes still match before resuming (see the single-file operator)
    :param post_action: ``"delete"`` or ``"move"`` each remote file once its local copy is complete and
        verified; ``None`` leaves them
    :param archive_dir: remote directory for ``post_action="move"`` (templated)
    :param max_bytes_per_second: bandwidth cap in bytes per second for the whole task, shared by the
        ``concurrency`` files in flight (the total, not per file; templated); ``None`` for no cap
    :param checksum_file_suffix: each file's checksum file is its remote path plus this suffix
        (``".sha256"``: ``data.csv`` is checked against ``data.csv.sha256``); files whose names end with
        it are mirrored too, but as checksum files, not checked against another
    :param checksum_file_missing: ``"fail"`` (that file fails, retriable) or ``"skip"``
    :param source_checksum: ``"auto"``, ``"check-file"``, ``"command"`` or ``None``, as for the
        single-file operator
    """

    template_fields: Sequence[str] = (
        "remote_path",
        "local_dir",
        "pattern",
        "archive_dir",
        "max_bytes_per_second",
    )

    def __init__(
        self,
        *,
        remote_path: str,
        local_dir: str,
        pattern: str | None = None,
        recursive: bool = False,
        concurrency: int = 4,
        verify: str | Sequence[str] = DEFAULT_VERIFY,
        post_action: str | None = None,
        archive_dir: str | None = None,
        checksum_file_suffix: str | None = None,
        checksum_file_missing: str = "fail",
        source_checksum: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.remote_path = remote_path
        self.local_dir = local_dir
        self.pattern = pattern
        self.recursive = recursive
        self.concurrency = concurrency
        self.verify = verify
        self.post_action = post_action
        self.archive_dir = archive_dir
        self.checksum_file_suffix = checksum_file_suffix
        self.checksum_file_missing = checksum_file_missing
        self.source_checksum = source_checksum
        if not is_count(concurrency, MAX_CONCURRENCY):
            raise ValueError(
                f"concurrency must be an integer from 1 to {MAX_CONCURRENCY}, got {concurrency!r}"
            )
        self._options()
        RemotePostAction.parse(post_action, archive_dir)

    def _options(self) -> DownloadOptions:
        checksums = ChecksumRule.of(
            checksum_file_suffix=self.checksum_file_suffix,
            checksum_file_missing=self.checksum_file_missing,
            source_checksum=self.source_checksum,
        )
        return self._download_options(self.verify, create_intermediate_dirs=True, checksums=checksums)

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            options = self._options()
            selection = RemoteSelection.parse(self.remote_path, self.pattern, self.recursive)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        post_action = self._post_action(self.post_action, self.archive_dir)

        def mirror(hook: ResumableSFTPHook) -> BatchResult:
            try:
                return hook.download_directory(
                    selection,
                    self.local_dir,
                    options,
                    concurrency=self.concurrency,
                    post_action=post_action,
                    logger=self.log,
                )
            except (SomeFilesFailed, BatchFailed) as exc:
                if exc.result is not None:
                    context["ti"].xcom_push(key="batch_result", value=exc.result.to_dict())
                raise

        self._result = self._run_transfer(mirror).to_dict()
        return self._result

    def _lineage_ends(self) -> tuple[str, str, Written | None]:
        written = None
        if self._result:
            written = Written(size=int(self._result["bytes_total"]), files=int(self._result["files_total"]))
        return self.remote_path, self.local_dir, written
