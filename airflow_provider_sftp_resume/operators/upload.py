"""Airflow operator: resumable, verified upload of one file to an SFTP server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_sftp_resume.core.checksums.rule import ChecksumRule
from airflow_provider_sftp_resume.core.transfers.upload import DEFAULT_TEMP_SUFFIX, UploadOptions
from airflow_provider_sftp_resume.lineage import Direction, Written
from airflow_provider_sftp_resume.operators.base import ResumableSFTPBaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context


class ResumableSFTPUploadOperator(ResumableSFTPBaseOperator):
    """
    Upload one local file to an SFTP server, resuming where an earlier try stopped.

    Bytes go to ``<remote_path><temp_suffix>`` on the server (``.part`` by default). A retry
    resumes at the offset the server acknowledged, after re-reading the last 64 KiB it kept and
    comparing them with the local file; a local file that changed since starts over. When all bytes
    are acknowledged, the remote size and last 64 KiB are checked, the modification time is set
    (a server that refuses only costs a warning), and the temporary file is renamed over
    ``remote_path`` with ``posix-rename@openssh.com``; servers without it get a plain rename, or,
    when ``remote_path`` exists, a rename of the old file aside, the rename, and removal of the old
    file (not atomic: ``remote_path`` is briefly absent).

    Resume state lives in a small sidecar ``<local_path>.upload-<id>.json`` next to the local file
    (or in ``state_dir``).

    Returns (XCom) a dict: ``local_path``, ``remote_path``, ``size``, ``sha256`` (of what was sent),
    ``remote_size``, ``resumed_from``, ``bytes_transferred``, ``verification_bytes``, ``seconds``,
    ``rename``, ``mtime_preserved``, ``restart_reason``, ``skipped``, ``checkpoints``,
    ``source_checksum``, ``remote_checksum``.

    :param local_path: local file to send (templated)
    :param remote_path: file to write on the server (templated)
    :param temp_suffix: suffix of the remote temporary file
    :param create_intermediate_dirs: create missing remote parent directories
    :param state_dir: local directory for the resume sidecar when the source directory is read-only
        (templated)
    :param max_bytes_per_second: bandwidth cap in bytes per second (templated); ``None`` for no cap
    :param checksum_file: local checksum file of ``local_path`` (templated; formats as for downloads):
        what was sent must match it before the rename, else the task fails without retry and the
        remote file is not touched
    :param checksum_file_missing: ``"fail"`` (default; retriable) or ``"skip"``
    :param source_checksum: ask the server for its digest of the uploaded temporary file before the
        rename: ``"check-file"``, ``"command"``, ``"auto"`` or ``None`` (default), as for downloads
    """

    template_fields: Sequence[str] = (
        "local_path",
        "remote_path",
        "state_dir",
        "max_bytes_per_second",
        "checksum_file",
    )
    lineage_direction = Direction.UPLOAD

    def __init__(
        self,
        *,
        local_path: str,
        remote_path: str,
        temp_suffix: str = DEFAULT_TEMP_SUFFIX,
        create_intermediate_dirs: bool = False,
        state_dir: str | None = None,
        checksum_file: str | None = None,
        checksum_file_missing: str = "fail",
        source_checksum: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.local_path = local_path
        self.remote_path = remote_path
        self.temp_suffix = temp_suffix
        self.create_intermediate_dirs = create_intermediate_dirs
        self.state_dir = state_dir
        self.checksum_file = checksum_file
        self.checksum_file_missing = checksum_file_missing
        self.source_checksum = source_checksum
        self._options(checksum_file=None)  # fail at DAG parse time on a bad knob

    def _options(self, checksum_file: str | None) -> UploadOptions:
        checksums = ChecksumRule.of(
            checksum_file,
            checksum_file_missing=self.checksum_file_missing,
            source_checksum=self.source_checksum,
        )
        return UploadOptions(
            temp_suffix=self.temp_suffix,
            create_intermediate_dirs=self.create_intermediate_dirs,
            stall_timeout=self.stall_timeout,
            checkpoint_interval=self.checkpoint_interval,
            progress_interval=self.progress_interval,
            skip_unchanged=self.skip_unchanged,
            preserve_mtime=self.preserve_mtime,
            state_dir=self.state_dir or None,
            max_bytes_per_second=self._bandwidth_cap(),
            checksums=checksums,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            options = self._options(self.checksum_file)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        result = self._run_transfer(
            lambda hook: hook.upload_resumable(self.local_path, self.remote_path, options, logger=self.log)
        )
        self._result = result.to_dict()
        return self._result

    def _lineage_ends(self) -> tuple[str, str, Written | None]:
        written = Written(size=int(self._result["remote_size"])) if self._result else None
        return self.remote_path, self.local_path, written
