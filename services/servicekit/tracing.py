"""W3C trace context (``traceparent``) from HTTP into the CloudEvents and back, so one trace follows a case.

* An HTTP request continues the caller's ``traceparent`` (or starts a trace); its trace id is the response's
  ``X-Trace-Id`` (``servicekit.http``).
* Every event or command a service creates carries a ``traceparent`` (the CloudEvents distributed-tracing
  extension attribute): the trace id of what it is handling now, with a span id of its own.
* A consumer handles a message inside the message's trace, so what the handler publishes stays in it; the engine
  gives a case's commands the trace the case started in (``process_engine.engine``), so the whole case is one trace.
* The console's calls to the services send the trace on (``httpx_request_hook``).

Only trace and span ids travel: random hex, never anything about the case or a person.

OpenTelemetry (``IPSFLOW_OTEL_EXPORTER``: ``none`` (default), ``console`` or ``otlp``, the latter with the usual
``OTEL_EXPORTER_OTLP_ENDPOINT``): when ``none``, nothing of OpenTelemetry is imported or called and the cost is a
context variable per request and per message. Otherwise the HTTP requests and message handlers become spans
(``servicekit.otel``) whose ids are the ones that travel.
"""

from __future__ import annotations

import contextlib
import random
import re
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, Protocol

# Version 00's layout; a later version starts the same way (W3C: parse what is known), ff is invalid.
_TRACEPARENT = re.compile(r"(?!ff)[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(?:-.*)?")
_current: ContextVar[str | None] = ContextVar("ipsflow_traceparent", default=None)


class SpanBridge(Protocol):
    """What ``servicekit.otel`` provides when an exporter is configured (see ``enable``)."""

    def span(self, name: str, parent: str | None, kind: str, attributes: dict[str, str]) -> Any: ...


_bridge: SpanBridge | None = None


def parse(traceparent: str | None) -> tuple[str, str, str] | None:
    """(trace id, parent span id, flags) of a valid ``traceparent``; None for anything else."""
    if not traceparent:
        return None
    match = _TRACEPARENT.fullmatch(traceparent.strip().lower())
    if match is None or match.group(1) == "0" * 32:
        return None
    return match.group(1), match.group(2), match.group(3)


def trace_id_of(traceparent: str | None) -> str | None:
    parsed = parse(traceparent)
    return parsed[0] if parsed else None


# Ids as OpenTelemetry's SDK makes them (random.getrandbits): unique enough, no system call per message.
def _span_id() -> str:
    return f"{random.getrandbits(64) or 1:016x}"


def new_traceparent(trace_id: str | None = None, flags: str = "01") -> str:
    return f"00-{trace_id or f'{random.getrandbits(128) or 1:032x}'}-{_span_id()}-{flags}"


def current() -> str | None:
    """The ``traceparent`` of the request or message being handled now (None outside one)."""
    return _current.get()


def outgoing(fallback: str | None = None) -> str | None:
    """The ``traceparent`` for a message created now: the current trace (else ``fallback``'s), with a span id of
    its own, so each message is a separate hop. None when there is no trace at all."""
    parsed = parse(current()) or parse(fallback)
    if parsed is None:
        return None
    return new_traceparent(parsed[0], parsed[2])


@contextlib.contextmanager
def continued(traceparent: str | None, name: str, kind: str = "consumer",
              attributes: dict[str, str] | None = None) -> Iterator[str]:
    """Handle something inside the trace of ``traceparent`` (a new trace when it is missing or invalid).

    Yields the trace id. With OpenTelemetry enabled this is a span (named ``name``; ``attributes`` hold only
    message types, queues and route templates) whose context is what ``current`` returns."""
    parsed = parse(traceparent)
    if _bridge is not None:
        with _bridge.span(name, traceparent if parsed else None, kind, attributes or {}) as own:
            token = _current.set(own)
            try:
                yield own.split("-")[1]
            finally:
                _current.reset(token)
        return
    own = new_traceparent(parsed[0] if parsed else None, parsed[2] if parsed else "01")
    token = _current.set(own)
    try:
        yield own.split("-")[1]
    finally:
        _current.reset(token)


def httpx_request_hook(request: Any) -> None:
    """An ``httpx`` request hook: the call continues the current trace (the console's calls to the services)."""
    traceparent = outgoing()
    if traceparent is not None and "traceparent" not in request.headers:
        request.headers["traceparent"] = traceparent


def enable(bridge: SpanBridge | None) -> None:
    """Install (or remove, with None) the OpenTelemetry bridge; ``servicekit.otel.configure`` calls this."""
    global _bridge
    _bridge = bridge
