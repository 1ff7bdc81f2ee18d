"""Structured logs, one JSON line per event. Never patient identifiers, clinical values or tokens."""
from __future__ import annotations

import logging
import sys

import structlog

_done = False


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
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    _done = True
