"""Trace context and metrics as pure logic (issue 17, item 5): no broker, no database."""

from __future__ import annotations

import json
import re
from pathlib import Path

from fastapi import Request
from fastapi.testclient import TestClient
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from servicekit import metrics, tracing
from servicekit.envelope import CloudEvent, new_event
from servicekit.http import create_app

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"


def test_traceparent_is_parsed_as_w3c_says() -> None:
    assert tracing.parse(PARENT) == (TRACE, "00f067aa0ba902b7", "01")
    assert tracing.parse(f"01-{TRACE}-00f067aa0ba902b7-00-later-fields") == (TRACE, "00f067aa0ba902b7", "00")
    for invalid in (None, "", "garbage", f"ff-{TRACE}-00f067aa0ba902b7-01", f"00-{'0' * 32}-00f067aa0ba902b7-01",
                    f"00-{TRACE[:-1]}-00f067aa0ba902b7-01"):
        assert tracing.parse(invalid) is None, invalid


def test_a_message_created_while_handling_one_continues_its_trace_with_a_span_of_its_own() -> None:
    assert new_event("ips.test.gebeurd.v1", service="test", subject="z1").traceparent is None  # no trace: none
    with tracing.continued(PARENT, "ips.test.v1") as trace_id:
        assert trace_id == TRACE
        first = new_event("ips.test.gebeurd.v1", service="test", subject="z1")
        second = new_event("ips.test.gebeurd.v1", service="test", subject="z1")
    assert tracing.trace_id_of(first.traceparent) == tracing.trace_id_of(second.traceparent) == TRACE
    assert first.traceparent != second.traceparent != PARENT
    assert tracing.current() is None  # the context ends with the block
    # Outside any trace, a reply takes the trace of the message it answers.
    reply = new_event("ips.test.antwoord.v1", service="test", subject="z1", caused_by=first)
    assert tracing.trace_id_of(reply.traceparent) == TRACE
    # The envelope round-trips it; an old message without it still reads.
    assert CloudEvent.from_json(reply.to_json()).traceparent == reply.traceparent
    assert CloudEvent.from_json(b'{"id":"x","source":"s","type":"ips.x.v1","time":"2026-01-01T00:00:00Z"}'
                                ).traceparent is None


def test_an_invalid_incoming_traceparent_starts_a_new_trace() -> None:
    with tracing.continued("00-nonsense", "x") as trace_id:
        assert len(trace_id) == 32 and tracing.trace_id_of(tracing.current()) == trace_id


def _app() -> TestClient:
    app = create_app("test", "test")

    @app.get("/api/v1/zaken/{zaak_id}")
    async def zaak(zaak_id: str, request: Request) -> dict[str, str | None]:
        event = new_event("ips.test.gelezen.v1", service="test", subject=zaak_id)
        return {"trace": request.state.trace_id, "event": event.traceparent}

    return TestClient(app)


def test_http_continues_the_callers_trace_into_the_events_it_creates() -> None:
    answer = _app().get("/api/v1/zaken/abc", headers={"traceparent": PARENT})
    assert answer.headers["X-Trace-Id"] == TRACE
    assert tracing.trace_id_of(answer.json()["event"]) == TRACE


def test_metrics_label_routes_by_template_never_by_the_path_with_its_ids() -> None:
    client = _app()
    for path in ("/api/v1/zaken/zaak-111222333", "/api/v1/zaken/zaak-2", "/bestaat-niet-111222333"):
        client.get(path)
    text = client.get("/metrics").text
    assert "111222333" not in text and "zaak-2" not in text
    samples = [s for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "ipsflow_http_request_duration_seconds_count"]
    routes = {(s.labels["route"], s.labels["status"]): s.value for s in samples}
    assert routes[("/api/v1/zaken/{zaak_id}", "200")] >= 2
    assert routes[("(geen route)", "404")] >= 1


def test_the_dashboard_graphs_only_metrics_the_services_export() -> None:
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "ipsflow.json").read_text())
    exprs = " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_count", "_sum"), "gauge": ("",)}
    exported = {f.name + s for f in REGISTRY.collect() for s in suffixes.get(f.type, ())}
    assert metrics.HTTP_SECONDS._name + "_count" in exported
    graphed = set(re.findall(r"\bipsflow_[a-z_]+", exprs))
    assert len(graphed) >= 10
    assert graphed <= exported, graphed - exported


def test_with_an_exporter_requests_and_messages_are_spans_whose_ids_travel() -> None:
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from servicekit import otel

    exported = InMemorySpanExporter()
    otel.configure("test", "none", span_exporter=exported)
    try:
        with tracing.continued(PARENT, "ips.test.v1", attributes={"messaging.destination": "test"}) as trace_id:
            event = new_event("ips.test.gebeurd.v1", service="test", subject="z1")
        answer = _app().get("/api/v1/zaken/abc", headers={"traceparent": PARENT})
    finally:
        otel.shutdown()
    consumer, server = exported.get_finished_spans()
    assert trace_id == TRACE and tracing.trace_id_of(event.traceparent) == TRACE
    assert f"{consumer.context.trace_id:032x}" == TRACE and f"{consumer.parent.span_id:016x}" == "00f067aa0ba902b7"
    assert consumer.name == "ips.test.v1" and consumer.attributes["messaging.destination"] == "test"
    assert f"{server.context.trace_id:032x}" == TRACE and answer.headers["X-Trace-Id"] == TRACE
    assert tracing.parse(answer.json()["event"])[0] == TRACE
    # Off again: no spans, the context still travels.
    with tracing.continued(PARENT, "x"):
        assert tracing.trace_id_of(new_event("ips.t.v1", service="t", subject=None).traceparent) == TRACE
    assert len(exported.get_finished_spans()) == 2
