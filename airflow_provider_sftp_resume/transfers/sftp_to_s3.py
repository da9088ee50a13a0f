"""Airflow operator: SFTP straight into S3, resumable from any worker (the state lives in the bucket)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

try:
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook
except ImportError as exc:  # the amazon provider is an optional extra
    raise ImportError(
        "ResumableSFTPToS3Operator needs the Amazon provider: "
        "pip install 'airflow-provider-sftp-resume[amazon]'"
    ) from exc

from airflow.providers.common.compat.sdk import AirflowFailException, Asset

from airflow_provider_sftp_resume.core.destinations.s3.calls import DEFAULT_STATE_PREFIX, S3Target
from airflow_provider_sftp_resume.core.destinations.s3.manifest import CHECKSUMS
from airflow_provider_sftp_resume.core.destinations.s3.parts import MAX_PART_SIZE, MIN_PART_SIZE
from airflow_provider_sftp_resume.core.destinations.s3.settings import UploadSettings, merged_client_config
from airflow_provider_sftp_resume.core.errors import PermanentTransferError, RemoteFileNotFound
from airflow_provider_sftp_resume.core.resume.verify import DEFAULT_VERIFY
from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction
from airflow_provider_sftp_resume.hooks.sftp import ResumableSFTPHook
from airflow_provider_sftp_resume.lineage import (
    FileDataset,
    TransferLineage,
    Written,
    remote_namespace,
)
from airflow_provider_sftp_resume.operators.base import ResumableSFTPBaseOperator

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context


class ResumableSFTPToS3Operator(ResumableSFTPBaseOperator):
    """
    Copy one file from an SFTP server straight into S3, resuming where an earlier try stopped.

    A drop-in for the amazon provider's ``SFTPToS3Operator`` (single file): the bytes go from the
    SFTP reader into a multipart upload of ``s3_key``, without a local file. The resume state (upload
    id, part size, source fingerprint, the kept parts) is a small manifest object under
    ``state_prefix`` in the bucket, so a retry on any worker, with an empty disk, verifies the kept
    parts against the source and continues. The object appears only when it is complete and
    checked; an existing object at the key stays as it is until then.

    Returns (XCom) a dict: ``bucket``, ``key``, ``remote_path``, ``size``, ``sha256``,
    ``resumed_from``, ``bytes_transferred``, ``verification_bytes``, ``parts``, ``part_size``,
    ``seconds``, ``checks_passed``, ``restart_reason``, ``skipped``, ``etag``, ``version_id``,
    ``post_action``. No credentials are logged or returned.

    :param sftp_path: file on the SFTP server (templated)
    :param s3_bucket: target bucket (templated)
    :param s3_key: target key, a file name, not ending in ``/`` (templated)
    :param sftp_conn_id: Airflow connection of type ``sftp``
    :param s3_conn_id: Airflow AWS connection, read through the amazon provider's ``S3Hook``
        (``endpoint_url``, region, role assumption as configured there)
    :param aws_conn_id: the amazon provider's newer name for ``s3_conn_id``; wins when given
    :param fail_on_file_not_exist: fail when ``sftp_path`` does not exist; ``False`` logs and returns
    :param use_temp_file: accepted for compatibility and ignored: no temporary file is ever written
    :param verify: checks that prove kept parts still match before resuming: ``size``, ``mtime``,
        ``tail``, ``overlap``, joined by ``+`` or as a list
    :param expected_sha256: hex sha256 the object must have (templated)
    :param post_action: after the object is published and checked (or found unchanged by
        ``skip_unchanged``): ``"delete"`` the source or ``"move"`` it into ``archive_dir``; a retry
        whose source is gone because an earlier try's request was done but its reply lost reports
        ``already deleted`` / ``already moved to ...`` (the proof is a record in the bucket)
    :param archive_dir: remote directory for ``post_action="move"`` (templated)
    :param state_prefix: key prefix of the resume state objects (default ``_sftp_resume/``, outside
        the data prefix; give the bucket a lifecycle rule for it, see docs/s3.md)
    :param part_size: bytes per part (5 MiB..5 GiB); ``None`` picks one so 10,000 parts cover the file
    :param s3_checksum: per-part checksum sent to S3: ``"SHA256"``, ``"CRC32"`` or ``"off"`` (for
        S3-compatible stores that reject checksums)
    :param kwargs: the shared knobs of :class:`~.operators.base.ResumableSFTPBaseOperator`
    """

    template_fields: Sequence[str] = ("sftp_path", "s3_bucket", "s3_key", "expected_sha256", "archive_dir")
    ui_color = "#f0eee4"

    def __init__(
        self,
        *,
        sftp_path: str,
        s3_bucket: str,
        s3_key: str,
        s3_conn_id: str = "aws_default",
        aws_conn_id: str | None = None,
        fail_on_file_not_exist: bool = True,
        use_temp_file: bool = True,
        verify: str | Sequence[str] = DEFAULT_VERIFY,
        expected_sha256: str | None = None,
        post_action: str | None = None,
        archive_dir: str | None = None,
        state_prefix: str = DEFAULT_STATE_PREFIX,
        part_size: int | None = None,
        s3_checksum: str = "SHA256",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sftp_path, self.s3_bucket, self.s3_key = sftp_path, s3_bucket, s3_key
        self.s3_conn_id = aws_conn_id or s3_conn_id
        self.fail_on_file_not_exist = fail_on_file_not_exist
        self.use_temp_file = use_temp_file
        self.verify, self.expected_sha256 = verify, expected_sha256
        self.post_action, self.archive_dir = post_action, archive_dir
        self.state_prefix, self.part_size, self.s3_checksum = state_prefix, part_size, s3_checksum
        # Fail at DAG parse time, not at 3 a.m.: every non-templated knob is checked here.
        self._download_options(verify, create_intermediate_dirs=False)
        RemotePostAction.parse(post_action, archive_dir)
        self._settings()

    def _settings(self) -> UploadSettings:
        if self.s3_checksum not in CHECKSUMS:
            raise ValueError(f"s3_checksum must be one of {', '.join(CHECKSUMS)}, got {self.s3_checksum!r}")
        size = self.part_size
        if size is not None and (isinstance(size, bool) or not MIN_PART_SIZE <= size <= MAX_PART_SIZE):
            raise ValueError(
                f"part_size={size!r} is outside S3's limits: give bytes between 5 MiB ({MIN_PART_SIZE}) and "
                f"5 GiB ({MAX_PART_SIZE}), or None (automatic)"
            )
        if not self.state_prefix or self.state_prefix.startswith("/"):
            raise ValueError(f"state_prefix must be a key prefix such as {DEFAULT_STATE_PREFIX!r}")
        return UploadSettings(part_size=size, checksum=self.s3_checksum)

    def _s3_client(self) -> Any:
        """A boto3 client from the AWS connection, with the botocore settings the checksum knob needs."""
        configured = S3Hook(aws_conn_id=self.s3_conn_id).conn_config.botocore_config
        config = merged_client_config(configured, self.s3_checksum)
        return S3Hook(aws_conn_id=self.s3_conn_id, config=config).get_conn()

    def execute(self, context: Context) -> dict[str, Any] | None:
        try:
            options = self._download_options(
                self.verify, create_intermediate_dirs=False, expected_sha256=self.expected_sha256
            )
            target = S3Target(self.s3_bucket, self.s3_key, self.state_prefix)
        except (ValueError, PermanentTransferError) as exc:
            raise AirflowFailException(str(exc)) from exc
        settings, post_action = self._settings(), self._post_action(self.post_action, self.archive_dir)
        client = self._s3_client()
        try:
            result = self._run_transfer(
                lambda hook: hook.copy_to_s3_resumable(
                    self.sftp_path,
                    client,
                    target,
                    options,
                    settings=settings,
                    post_action=post_action,
                    logger=self.log,
                )
            )
        except RemoteFileNotFound:
            if self.fail_on_file_not_exist:
                raise
            self.log.info("File %s not found on the SFTP server; skipping the copy", self.sftp_path)
            return None
        self._result = result.to_dict()
        self._describe_outlet_events(context, self._result)
        return self._result

    def _describe_outlet_events(self, context: Context, result: dict[str, Any]) -> None:
        events = context.get("outlet_events")
        if events is None:  # execute() called without a task context
            return
        for outlet in self.outlets:
            if isinstance(outlet, Asset):
                events[outlet].extra.update({k: result[k] for k in ("bucket", "key", "size", "sha256")})

    def _lineage(self, *, with_written: bool) -> TransferLineage:
        """The source on the SFTP host, named as the stock SFTP operators do; the object as ``s3://bucket``."""
        hook = ResumableSFTPHook(ssh_conn_id=self.sftp_conn_id)
        written = Written(size=int(self._result["size"])) if with_written and self._result else None
        return TransferLineage(
            inputs=(FileDataset(remote_namespace(str(hook.remote_host), hook.port), self.sftp_path),),
            outputs=(FileDataset(f"s3://{self.s3_bucket}", self.s3_key, written),),
        )
