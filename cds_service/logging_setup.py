"""Structured logs, one JSON line per event. Never patient identifiers, clinical values or tokens."""
from __future__ import annotations

import logging
import sys

import structlog

_done = False


class _StderrLogger:
    """Writes each event line to the current sys.stderr (so test capture and redirection always see it)."""

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _factory(*_args) -> _StderrLogger:
    return _StderrLogger()


def configure_logging(level: int = logging.INFO) -> None:
    global _done
    if _done:
        return
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_factory,
        cache_logger_on_first_use=True,
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    _done = True
