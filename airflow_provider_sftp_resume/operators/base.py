"""What every resumable SFTP operator shares: the connection, the timing knobs, and how a try fails."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

from airflow.providers.common.compat.sdk import AirflowFailException, BaseOperator
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential

from airflow_provider_sftp_resume.core.errors import PermanentTransferError, TransferError, TransferLocked
from airflow_provider_sftp_resume.core.options import is_count
from airflow_provider_sftp_resume.core.resume.verify import parse_verify
from airflow_provider_sftp_resume.core.transfers.download import DownloadOptions
from airflow_provider_sftp_resume.core.transfers.postaction import RemotePostAction
from airflow_provider_sftp_resume.hooks.sftp import ResumableSFTPHook
from airflow_provider_sftp_resume.lineage import (
    Direction,
    TransferLineage,
    Written,
    hook_transfer_lineage,
    operator_lineage,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow_provider_sftp_resume.core.checksums.rule import ChecksumRule

R = TypeVar("R")


def _worth_retrying_in_try(error: BaseException) -> bool:
    return isinstance(error, TransferError) and error.retriable and not isinstance(error, TransferLocked)


class ResumableSFTPBaseOperator(BaseOperator):
    """
    Base of the resumable SFTP operators; not used on its own.

    Retriable failures (drops, stalls, remote changes) propagate so that Airflow's ``retries`` run
    the task again and the next try resumes; failures a retry cannot fix become
    :class:`~airflow.exceptions.AirflowFailException`. Every knob is checked when the DAG is parsed.

    :param sftp_conn_id: Airflow connection of type ``sftp``
    :param stall_timeout: seconds without any progress before the try fails as stalled
    :param connect_attempts: attempts to connect within one try (transient errors only)
    :param checkpoint_interval: seconds between durable checkpoints during the transfer
    :param progress_interval: seconds between progress lines in the task log
    :param skip_unchanged: do not transfer again when the destination provably matches the source
    :param preserve_mtime: give the destination the source's modification time
    :param transfer_attempts: resume within the same try this many times in all before failing the
        try (default 1: Airflow's own ``retries`` do the resuming, one try per attempt)
    :param max_bytes_per_second: bandwidth cap in bytes per second, shared by every connection,
        segment and file of the task; ``None`` for no cap (templated: a rendered string of digits
        is taken as the number)
    """

    ui_color = "#e0f2f1"
    #: which way the bytes go, for OpenLineage
    lineage_direction = Direction.DOWNLOAD

    def __init__(
        self,
        *,
        sftp_conn_id: str = ResumableSFTPHook.default_conn_name,
        stall_timeout: float = 60.0,
        connect_attempts: int = 3,
        checkpoint_interval: float = 0.5,
        progress_interval: float = 30.0,
        skip_unchanged: bool = True,
        preserve_mtime: bool = True,
        transfer_attempts: int = 1,
        max_bytes_per_second: int | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.sftp_conn_id = sftp_conn_id
        self.stall_timeout = stall_timeout
        self.connect_attempts = connect_attempts
        self.checkpoint_interval = checkpoint_interval
        self.progress_interval = progress_interval
        self.skip_unchanged = skip_unchanged
        self.preserve_mtime = preserve_mtime
        self.transfer_attempts = transfer_attempts
        self.max_bytes_per_second = max_bytes_per_second
        self._hook: ResumableSFTPHook | None = None
        self._result: dict[str, Any] | None = None  # the last successful try's XCom value
        for name in ("connect_attempts", "transfer_attempts"):
            value = getattr(self, name)
            if not is_count(value):
                raise ValueError(f"{name} must be an integer of at least 1, got {value!r}")

    def _download_options(
        self,
        verify: str | Sequence[str],
        *,
        create_intermediate_dirs: bool,
        expected_sha256: str | None = None,
        max_connections: int | None = None,
        checksums: ChecksumRule | None = None,
    ) -> DownloadOptions:
        """Download options from this operator's knobs; raises ``ValueError`` on a bad value."""
        return DownloadOptions(
            verify=parse_verify(verify),
            create_intermediate_dirs=create_intermediate_dirs,
            expected_sha256=expected_sha256 or None,
            stall_timeout=self.stall_timeout,
            checkpoint_interval=self.checkpoint_interval,
            progress_interval=self.progress_interval,
            skip_unchanged=self.skip_unchanged,
            preserve_mtime=self.preserve_mtime,
            max_connections=max_connections,
            max_bytes_per_second=self._bandwidth_cap(),
            checksums=checksums,
        )

    def _bandwidth_cap(self) -> int | None:
        """
        ``max_bytes_per_second`` as a number: a rendered template is a string of digits.

        A template not rendered yet (DAG parse time) counts as no cap here; it is checked once
        rendered, in ``execute``. Other values are checked by the transfer options.
        """
        value = self.max_bytes_per_second
        if not isinstance(value, str):
            return value
        text = value.strip()
        if "{{" in text or "{%" in text:
            return None
        if text.isascii() and text.isdigit():
            return int(text)
        raise ValueError(
            f"max_bytes_per_second must be a positive integer (bytes per second, e.g. 2000000 for "
            f"2 MB/s) or None for no cap, got {value!r}"
        )

    @staticmethod
    def _post_action(post_action: str | None, archive_dir: str | None) -> RemotePostAction | None:
        """Parse ``post_action``/``archive_dir``, failing the task (not retrying) on a bad value."""
        try:
            return RemotePostAction.parse(post_action, archive_dir)
        except ValueError as exc:
            raise AirflowFailException(str(exc)) from exc

    def _run_transfer(self, transfer: Callable[[ResumableSFTPHook], R]) -> R:
        """
        Run ``transfer`` with a fresh hook, resuming within the try up to ``transfer_attempts`` times.

        :raises AirflowFailException: a failure a retry cannot fix
        """
        self._hook = ResumableSFTPHook(ssh_conn_id=self.sftp_conn_id, connect_attempts=self.connect_attempts)
        hook = self._hook
        try:
            for attempt in Retrying(
                stop=stop_after_attempt(self.transfer_attempts),
                wait=wait_random_exponential(multiplier=1, max=30),
                retry=retry_if_exception(_worth_retrying_in_try),
                before_sleep=self._log_in_try_retry,
                reraise=True,
            ):
                with attempt:
                    result = transfer(hook)
        except PermanentTransferError as exc:
            raise AirflowFailException(str(exc)) from exc
        finally:
            self._hook = None
        return result

    def _log_in_try_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        self.log.warning("Attempt %d in this try failed (%s); resuming", state.attempt_number, error)

    def _lineage_ends(self) -> tuple[str, str, Written | None]:
        """The remote path, the local path and what was written (once known), for OpenLineage."""
        raise NotImplementedError

    def get_openlineage_facets_on_start(self) -> Any:
        """
        Return the OpenLineage datasets: the remote side on the SFTP host, the local side on this worker.

        Named as the stock ``SFTPOperator`` names them (see :mod:`airflow_provider_sftp_resume.lineage`).
        ``None`` when ``apache-airflow-providers-openlineage`` is not installed.
        """
        return operator_lineage(self._lineage(with_written=False))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """
        Return the datasets of :meth:`get_openlineage_facets_on_start`, the output with what was written.

        :param task_instance: the finished task instance (unused: ``execute`` keeps the result)
        """
        return operator_lineage(self._lineage(with_written=True))

    def _lineage(self, *, with_written: bool) -> TransferLineage:
        remote, local, written = self._lineage_ends()
        destination = local if self.lineage_direction is Direction.DOWNLOAD else remote
        return hook_transfer_lineage(
            ResumableSFTPHook(ssh_conn_id=self.sftp_conn_id),
            remote_paths=remote,
            local_paths=local,
            direction=self.lineage_direction,
            written={destination: written} if with_written and written else None,
        )

    def on_kill(self) -> None:
        """Abort the transfer: the engine writes a last checkpoint and closes the connection."""
        hook = self._hook
        if hook is not None:
            hook.abort()
