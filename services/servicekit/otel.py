"""OpenTelemetry spans behind ``servicekit.tracing``, when ``IPSFLOW_OTEL_EXPORTER`` asks for them (off by default).

``none`` (default): nothing of the SDK is imported; the trace context still travels (``servicekit.tracing``).
``console``: spans as JSON on stderr (to try it out). ``otlp``: OTLP over HTTP to the collector that the standard
variables name (``OTEL_EXPORTER_OTLP_ENDPOINT``, ``OTEL_EXPORTER_OTLP_HEADERS``, ...).

An HTTP request is a server span, a handled message a consumer span; their parent is the incoming
``traceparent``, and their ids are what the events they create carry. Span names and attributes are message
types, queues, methods and route templates only: never a case id, a path with ids, or anything personal.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from servicekit import tracing

_provider: Any = None


def configure(service_name: str, exporter: str, span_exporter: Any = None) -> None:
    """Install the bridge for ``exporter`` (``none`` removes it). ``span_exporter`` replaces the exporter (tests)."""
    shutdown()
    if exporter == "none" and span_exporter is None:
        return
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor

    global _provider
    if span_exporter is not None:
        processor: Any = SimpleSpanProcessor(span_exporter)
    elif exporter == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        processor = BatchSpanProcessor(OTLPSpanExporter())
    elif exporter == "console":
        processor = BatchSpanProcessor(ConsoleSpanExporter(out=sys.stderr))
    else:
        raise ValueError(f"unknown OpenTelemetry exporter {exporter!r} (none, console or otlp)")
    _provider = TracerProvider(resource=Resource.create({"service.name": f"ipsflow-{service_name}"}))
    _provider.add_span_processor(processor)
    tracing.enable(_Bridge(_provider.get_tracer("ipsflow.servicekit")))


def shutdown() -> None:
    """Flush and remove the bridge (a stopping service sends what it still holds)."""
    global _provider
    tracing.enable(None)
    if _provider is not None:
        _provider.shutdown()
        _provider = None


class _Bridge:
    def __init__(self, tracer: Any) -> None:
        self.tracer = tracer

    @contextlib.contextmanager
    def span(self, name: str, parent: str | None, kind: str, attributes: dict[str, str]) -> Iterator[str]:
        from opentelemetry import context, trace
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        # No parent: a new trace (an empty context), never whatever span happens to be current.
        parent_context = (TraceContextTextMapPropagator().extract({"traceparent": parent}) if parent
                          else context.Context())
        kinds = {"server": trace.SpanKind.SERVER, "consumer": trace.SpanKind.CONSUMER}
        with self.tracer.start_as_current_span(name, context=parent_context, attributes=attributes,
                                               kind=kinds.get(kind, trace.SpanKind.INTERNAL)) as span:
            own = span.get_span_context()
            yield f"00-{own.trace_id:032x}-{own.span_id:016x}-{int(own.trace_flags):02x}"
