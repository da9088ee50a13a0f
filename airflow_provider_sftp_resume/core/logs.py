"""The little the engine needs from a logger, so Airflow's task logger and ``logging`` both fit."""

from __future__ import annotations

import logging
from typing import Any, Protocol


class Logger(Protocol):
    """Anything with ``logging``-style ``info`` and ``warning`` taking %-format arguments."""

    def info(self, msg: str, /, *args: Any) -> Any: ...

    def warning(self, msg: str, /, *args: Any) -> Any: ...


def engine_logger(name: str) -> logging.Logger:
    """Return the engine's default logger (used when the caller passes none)."""
    return logging.getLogger(name)
