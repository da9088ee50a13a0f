"""
What the person at the terminal (or the log file under cron) sees.

On a terminal: a progress bar per file (:mod:`rich`, drawn on stderr), with the log lines printed
above it. Otherwise: plain log lines on stderr, one per line (no carriage returns), with the
engine's own progress lines every ``--progress-interval`` seconds. stdout is left for ``--json``.
"""

from __future__ import annotations

import logging
import posixpath
import sys
from typing import TYPE_CHECKING, TextIO

from rich.console import Console
from rich.logging import RichHandler
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

if TYPE_CHECKING:
    from types import TracebackType

    from airflow_provider_sftp_resume.core.options import ProgressCallback

PLAIN_FORMAT = "%(asctime)s %(levelname)s %(message)s"
LOGGER_NAME = "sftp_resume"
#: asyncio warns once per write to a socket the far end reset ("socket.send() raised exception."):
#: dozens of lines after a cut, which the engine reports once, with the offset kept.
QUIETER = {"asyncio": logging.ERROR}


class Display:
    """
    Log lines and, on a terminal, progress bars; a context manager around the transfer.

    :param quiet: warnings and errors only, no bar
    :param stream: where everything is written (stderr)
    """

    def __init__(self, *, quiet: bool, stream: TextIO | None = None) -> None:
        self._stream = stream or sys.stderr
        self.bar = not quiet and self._stream.isatty()
        self.log = logging.getLogger(LOGGER_NAME)
        self._handler: logging.Handler
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        level = logging.WARNING if quiet else logging.INFO
        if self.bar:
            console = Console(file=self._stream, stderr=True)
            self._handler = RichHandler(console=console, show_path=False, markup=False)
            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.percentage:>5.1f}%"),
                DownloadColumn(),  # decimal units, as the speed column and the engine's log lines
                TransferSpeedColumn(),
                TimeRemainingColumn(),
                console=console,
            )
        else:
            self._handler = logging.StreamHandler(self._stream)
            self._handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
        self._level = level
        self._saved: list[logging.Handler] = []

    @property
    def on_progress(self) -> ProgressCallback | None:
        """The engine's progress callback when a bar is drawn; ``None`` for log lines only."""
        return self._update if self._progress is not None else None

    def _update(self, name: str, done: int, total: int) -> None:
        assert self._progress is not None
        task = self._tasks.get(name)
        if task is None:  # the first report of a resumed file starts the bar at the kept bytes
            label = posixpath.basename(name.rstrip("/")) or name
            self._tasks[name] = self._progress.add_task(label, total=total, completed=done)
        else:
            self._progress.update(task, completed=done, total=total)

    def own_logging(self) -> None:
        """
        Send every log record to this display only.

        Importing Airflow (``--conn-id``) installs a root handler writing to stdout, which would mix
        log lines into ``--json``; call this again after it.
        """
        root = logging.getLogger()
        root.handlers = [self._handler]
        root.setLevel(self._level)
        for name, level in QUIETER.items():
            logging.getLogger(name).setLevel(level)

    def __enter__(self) -> Display:
        self._saved = logging.getLogger().handlers[:]
        self.own_logging()
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._progress is not None:
            self._progress.stop()
        logging.getLogger().handlers = self._saved
