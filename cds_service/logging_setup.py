"""Structured logs, one JSON line per event. Never patient identifiers, clinical values or tokens.

structlog is imported here without its optional pretty-printers for the console: ``structlog.dev`` and
``structlog.tracebacks`` import ``rich`` (and ``better_exceptions``) whenever they are installed, although only
``ConsoleRenderer`` and the traceback formatters use them, and this service renders every event with
``JSONRenderer``. ``rich`` is not a dependency of the service (it comes with the test tools), so the production image
never has it; in a development environment it would add ~5 MiB (rich, pygments, attrs) to every worker.
``cds_service.create_app`` imports this module before anything else imports structlog.
"""
from __future__ import annotations

import logging
import sys

import orjson

# optional extras structlog picks up at import for console output this service never produces
_CONSOLE_EXTRAS = ("rich", "better_exceptions")


def _import_structlog():
    """``import structlog``, with the console extras hidden from it if it is not imported yet.

    Only structlog's own import sees them as absent (``sys.modules[name] = None`` makes ``import name`` raise
    ImportError, which structlog handles); anything imported later can import them as usual."""
    if "structlog" in sys.modules:
        return sys.modules["structlog"]
    hidden = [name for name in _CONSOLE_EXTRAS if name not in sys.modules]
    for name in hidden:
        sys.modules[name] = None  # type: ignore[assignment]
    try:
        import structlog
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
    return structlog


structlog = _import_structlog()

_done = False


class _StderrLogger:
    """Writes each event line to the current sys.stderr (so test capture and redirection always see it)."""

    def msg(self, message: str) -> None:
        sys.stderr.write(message + "\n")
        sys.stderr.flush()

    log = debug = info = warning = warn = error = critical = exception = fatal = msg


def _json_line(event: dict, **_kw) -> str:
    """One event as a JSON line (orjson: the access log is written on every hook call); values JSON has no type
    for are written as their repr, as structlog's own renderer does."""
    return orjson.dumps(event, default=repr, option=orjson.OPT_NON_STR_KEYS).decode()


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
            structlog.processors.JSONRenderer(serializer=_json_line),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=_factory,
        cache_logger_on_first_use=True,
    )
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    _done = True
