"""Sensor: wait until a partner has finished writing a remote file (or every file of a glob)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowFailException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)

from airflow_provider_sftp_resume.core.errors import PermanentTransferError
from airflow_provider_sftp_resume.core.options import is_count
from airflow_provider_sftp_resume.core.watch.stability import StabilityWatch, StableSpec
from airflow_provider_sftp_resume.hooks.sftp import ResumableSFTPHook
from airflow_provider_sftp_resume.triggers.stable import SFTPFileStableTrigger

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow.providers.common.compat.sdk import Context


class SFTPFileStableSensor(BaseSensorOperator):
    """
    Wait until a remote file, or every match of a glob, keeps its size and mtime for ``quiet_period``.

    Put it before a download so that a file the partner is still writing is not fetched half-done.
    With ``deferrable=True`` the wait runs in the triggerer and holds no worker slot. Without it the
    sensor pokes in ``mode="poke"`` (``reschedule`` mode would forget what the last poke saw, so it
    is refused).

    Returns (XCom) a dict of the stable files: remote path -> ``[size, mtime]``.

    :param path: remote file, directory (with ``pattern``) or glob such as ``/in/*.csv`` (templated)
    :param sftp_conn_id: Airflow connection of type ``sftp``
    :param pattern: ``fnmatch`` pattern for names under a directory (templated)
    :param recursive: include subdirectories
    :param min_files: how many matching files must exist
    :param quiet_period: seconds the files must stay unchanged
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``)
    """

    template_fields: Sequence[str] = ("path", "pattern")
    ui_color = "#e0f2f1"

    def __init__(
        self,
        *,
        path: str,
        sftp_conn_id: str = ResumableSFTPHook.default_conn_name,
        pattern: str | None = None,
        recursive: bool = False,
        min_files: int = 1,
        quiet_period: float = 60.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.path = path
        self.sftp_conn_id = sftp_conn_id
        self.pattern = pattern
        self.recursive = recursive
        self.min_files = min_files
        self.quiet_period = quiet_period
        self.deferrable = deferrable
        if not is_count(min_files):
            raise ValueError(f"min_files must be an integer of at least 1, got {min_files!r}")
        if not isinstance(quiet_period, int | float) or quiet_period < 0:
            raise ValueError(f"quiet_period must be zero or more seconds, got {quiet_period!r}")
        if self.mode == "reschedule" and not deferrable:
            raise ValueError(
                "SFTPFileStableSensor compares successive pokes, which mode='reschedule' forgets. "
                "Use deferrable=True (no worker slot held) or mode='poke'."
            )
        self._watch: StabilityWatch | None = None

    def _spec(self) -> StableSpec:
        return StableSpec(self.path, self.pattern or None, self.recursive, self.min_files)

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        self.defer(
            timeout=timedelta(seconds=self.timeout),
            trigger=SFTPFileStableTrigger(
                self.sftp_conn_id,
                self.path,
                pattern=self.pattern or None,
                recursive=self.recursive,
                min_files=self.min_files,
                quiet_period=self.quiet_period,
                poll_interval=self.poke_interval,
            ),
            method_name="execute_complete",
        )
        return None

    def poke(self, context: Context) -> PokeReturnValue:
        if self._watch is None:
            self._watch = StabilityWatch(self.quiet_period, self.min_files)
        hook = ResumableSFTPHook(ssh_conn_id=self.sftp_conn_id)
        try:
            snapshot = hook.remote_snapshot(self._spec())
        except PermanentTransferError as exc:
            raise AirflowFailException(str(exc)) from exc
        stable = self._watch.observe(snapshot)
        self.log.info("%s: %s", self.path, self._watch.describe())
        return PokeReturnValue(
            is_done=stable, xcom_value={p: list(v) for p, v in snapshot.items()} if stable else None
        )

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Return the stable files, or fail with the trigger's message (without retry when permanent)."""
        if not event or event.get("status") != "stable":
            message = (event or {}).get("message", "the trigger ended without a result")
            if (event or {}).get("retriable") is False:
                raise AirflowFailException(message)
            raise AirflowException(message)
        self.log.info("%s is stable: %d file(s)", self.path, len(event["files"]))
        return event["files"]
