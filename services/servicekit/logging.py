"""structlog JSON logging with the correlation id and case id bound from context.

Personal data never reaches a log line: keys that can carry it are removed by a processor, as a safety net
behind the rule that code does not log them in the first place.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

#: Keys that can carry personal or health data (docs/domain.md). Logs blank them; APIs leave them out.
PERSONAL_DATA_KEYS = frozenset({"bsn", "burgerservicenummer", "naam", "name", "adres", "address", "geboortedatum",
                                "diagnose", "diagnosis", "nationaliteit", "nationality", "geslacht", "gender"})
# Logs also blank whole payloads: a message body or event data may hold any of the above.
_FORBIDDEN_KEYS = PERSONAL_DATA_KEYS | {"body", "data"}


def _drop_personal_data(_logger: Any, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    for key in list(event):
        if key.lower() in _FORBIDDEN_KEYS:
            event[key] = "[weggelaten]"
    return event


def configure_logging(service: str, level: str = "INFO") -> None:
    """Configure structlog once per process: one JSON object per line on stderr."""
    logging.basicConfig(format="%(message)s", stream=sys.stderr, level=level.upper())
    for noisy in ("aiormq", "aio_pika", "pymongo", "uvicorn.access", "spiff", "spiff.task", "spiff.workflow",
                  "spiff.metrics"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            _drop_personal_data,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


bind_context = structlog.contextvars.bind_contextvars
bound_context = structlog.contextvars.bound_contextvars
clear_context = structlog.contextvars.clear_contextvars
