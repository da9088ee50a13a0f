"""Airflow operator: resumable, verified download of one SFTP file."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException, Asset

from airflow_provider_sftp_resume.core.checksums.rule import ChecksumRule
from airflow_provider_sftp_resume.core.resume.verify import DEFAULT_VERIFY
from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction
from airflow_provider_sftp_resume.lineage import Written
from airflow_provider_sftp_resume.operators.base import ResumableSFTPBaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions


class ResumableSFTPDownloadOperator(ResumableSFTPBaseOperator):
    """
    Download one file from an SFTP server, resuming where an earlier try stopped.

    Bytes go to ``<local_path>.part`` with a small sidecar recording the remote file's fingerprint
    and the durable offset. A retry (Airflow ``retries``), a cleared task or the next run writing the
    same ``local_path`` verifies the kept bytes against the server and continues from there; the
    complete file replaces ``local_path`` atomically. Connection drops, stalls and remote changes
    fail the try with a retriable error; problems a retry cannot fix (authentication, host key,
    remote directory, unusable local path, checksum mismatch) fail the task without retry.

    Returns (XCom) a dict: ``local_path``, ``remote_path``, ``size``, ``sha256``, ``resumed_from``,
    ``bytes_transferred``, ``verification_bytes``, ``seconds``, ``verify``, ``checks_passed``,
    ``restart_reason``, ``skipped``, ``checkpoints``, ``first_byte_seconds``, ``remote_mtime``,
    ``post_action``, ``source_checksum``.

    Assets in ``outlets`` (Datasets on Airflow 2.11) get an event when the try succeeds, as for any
    operator; its ``extra`` carries ``local_path``, ``size`` and ``sha256`` of the published file, so
    a DAG scheduled on the asset can check what it reads.

    :param remote_path: file on the server (templated)
    :param local_path: local file to write (templated)
    :param sftp_conn_id: Airflow connection of type ``sftp``
    :param verify: checks that prove kept bytes still match before resuming: ``size``, ``mtime``,
        ``tail``, ``overlap``, joined by ``+`` or as a list (``size`` is always included)
    :param expected_sha256: hex sha256 the finished file must have (templated); a fresh download
        that does not match fails without retry
    :param create_intermediate_dirs: create missing parent directories of ``local_path``
    :param stall_timeout: seconds without any data before the try fails as stalled
    :param connect_attempts: attempts to connect within one try (transient errors only)
    :param checkpoint_interval: seconds between durable checkpoints during the transfer
    :param progress_interval: seconds between progress lines in the task log
    :param skip_unchanged: do not download again when ``local_path`` provably matches the remote file
    :param preserve_mtime: give the local file the remote modification time (needed by
        ``skip_unchanged`` to recognise a file it downloaded)
    :param transfer_attempts: resume within the same try this many times in all before failing the
        try (default 1: Airflow's own ``retries`` do the resuming, one try per attempt)
    :param post_action: after the local file is complete and verified (never before): ``"delete"``
        the remote file, or ``"move"`` it into ``archive_dir``; ``None`` leaves it. A remote file that
        changed since it was downloaded is left in place.
    :param archive_dir: remote directory for ``post_action="move"`` (templated)
    :param max_connections: SSH connections for one large file, each fetching and checkpointing its
        own segments in a worker process of its own (one CPU each). ``None`` chooses: 2 for a file
        of 256 MiB or more on a path with a round trip under 5 ms when the worker may use four CPUs
        or more (cgroup CPU limits counted), else 1. Set 2-4 where the server throttles each connection;
        set 1 for servers that refuse several connections per user
    :param max_bytes_per_second: bandwidth cap in bytes per second over all connections of the
        task (templated); ``None`` for no cap. Under a cap the extra connections are read in this
        process, not in worker processes
    :param checksum_file: remote checksum file of ``remote_path`` (templated), such as
        ``"{{ params.path }}.sha256"``: ``sha256sum``/``md5sum`` output (the line for this file's name),
        ``SHA256 (name) = hex`` or a bare digest; md5, sha1, sha256 or sha512. The finished file must
        match it before it is published; a fresh copy that does not fails without retry
    :param checksum_file_missing: ``"fail"`` (default: the try fails and is retried, since partners
        often publish the checksum after the data) or ``"skip"`` (go on without it)
    :param source_checksum: ask the server for its digest of the file too: ``"check-file"`` (the SFTP
        extension; ProFTPD, Bitvise), ``"command"`` (``sha256sum`` over SSH; needs a shell account),
        ``"auto"`` (check-file where the server answers it, else nothing) or ``None`` (default)
    """

    template_fields: Sequence[str] = (
        "remote_path",
        "local_path",
        "expected_sha256",
        "archive_dir",
        "max_bytes_per_second",
        "checksum_file",
    )

    def __init__(
        self,
        *,
        remote_path: str,
        local_path: str,
        verify: str | Sequence[str] = DEFAULT_VERIFY,
        expected_sha256: str | None = None,
        create_intermediate_dirs: bool = False,
        max_connections: int | None = None,
        post_action: str | None = None,
        archive_dir: str | None = None,
        checksum_file: str | None = None,
        checksum_file_missing: str = "fail",
        source_checksum: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.remote_path = remote_path
        self.local_path = local_path
        self.verify = verify
        self.expected_sha256 = expected_sha256
        self.create_intermediate_dirs = create_intermediate_dirs
        self.max_connections = max_connections
        self.post_action = post_action
        self.archive_dir = archive_dir
        self.checksum_file = checksum_file
        self.checksum_file_missing = checksum_file_missing
        self.source_checksum = source_checksum
        # Fail at DAG parse time, not at 3 a.m.: every non-templated knob is checked here.
        self._options(expected_sha256=None, checksum_file=None)
        RemotePostAction.parse(post_action, archive_dir)

    def _options(self, expected_sha256: str | None, checksum_file: str | None) -> DownloadOptions:
        checksums = ChecksumRule.of(
            checksum_file,
            checksum_file_missing=self.checksum_file_missing,
            source_checksum=self.source_checksum,
        )
        return self._download_options(
            self.verify,
            create_intermediate_dirs=self.create_intermediate_dirs,
            expected_sha256=expected_sha256,
            max_connections=self.max_connections,
            checksums=checksums,
        )

    def execute(self, context: Context) -> dict[str, Any]:
        try:
            options = self._options(self.expected_sha256, self.checksum_file)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc
        post_action = self._post_action(self.post_action, self.archive_dir)
        result = self._run_transfer(
            lambda hook: hook.download_resumable(
                self.remote_path, self.local_path, options, post_action=post_action, logger=self.log
            )
        )
        self._result = result.to_dict()
        self._describe_outlet_events(context, self._result)
        return self._result

    def _describe_outlet_events(self, context: Context, result: dict[str, Any]) -> None:
        events = context.get("outlet_events")
        if events is None:  # execute() called without a task context
            return
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                events[outlet].extra.update(
                    {"local_path": result["local_path"], "size": result["size"], "sha256": result["sha256"]}
                )

    def _lineage_ends(self) -> tuple[str, str, Written | None]:
        written = Written(size=int(self._result["size"])) if self._result else None
        return self.remote_path, self.local_path, written
