"""Prometheus metrics of a service process, served at ``/metrics`` (text format) by every service and the console.

Wired once, here and in the servicekit parts that do the work: the HTTP app factory (``install``), the consumer,
the outbox relay and the engine's timer poller and incidents. Labels hold only message types, queue names, HTTP
methods, route templates (``/api/v1/aanvragen/{aanvraag_id}``, never a path with an id in it) and status codes:
nothing about a case or a person, so ``/metrics`` needs no token, like ``/health``. It does show volumes per
route and message type; keep it off a public ingress (``deploy/k8s`` scrapes it inside the cluster).

Nothing here reads the database: relay lag and outbox depth come from what the relay already knows.
"""

from __future__ import annotations

import time

from fastapi import FastAPI, Response
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

from servicekit.asgi import HttpMiddleware

# Handler and HTTP latencies: a few ms (a duplicate) to tens of seconds (a letter's PDF on a loaded machine).
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Timer lateness: the poller ticks every second or so; minutes mean a stalled poller or a restart.
_LATENESS_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)

MESSAGES_HANDLED = Counter("ipsflow_messages_handled_total", "Messages a consumer handled and acknowledged.",
                           ["queue", "type"])
MESSAGES_FAILED = Counter("ipsflow_messages_failed_total",
                          "Messages whose handler failed: sent to a retry tier (retry) or to the parking lot (parked).",
                          ["queue", "type", "outcome"])
HANDLER_SECONDS = Histogram("ipsflow_message_handler_seconds", "Time a handler took, successful or not.",
                            ["queue", "type"], buckets=_LATENCY_BUCKETS)
EVENTS_PUBLISHED = Counter("ipsflow_outbox_published_total", "Events and commands the relay published (confirmed).")
RELAY_LAG = Histogram("ipsflow_relay_lag_seconds",
                      "From the write that filled an outbox (the writer's wake-up call) to the broker's confirm.",
                      buckets=_LATENCY_BUCKETS)
OUTBOX_DEPTH = Gauge("ipsflow_outbox_documents",
                     "Documents with unpublished events the relay knows of: named by writers and not yet published "
                     "(pending), or refused by the broker and waiting for a retry (held).", ["state"])
OUTBOX_SCAN_FOUND = Counter("ipsflow_outbox_scan_found_total",
                            "Documents the relay's periodic scan found with an outbox (left by a crash or a lost "
                            "wake-up call); it should stay near zero.")
TIMERS_FIRED = Counter("ipsflow_timers_fired_total", "Timers the process engine fired.")
TIMER_LATENESS = Histogram("ipsflow_timer_lateness_seconds", "How long after its due time a timer fired.",
                           buckets=_LATENESS_BUCKETS)
INCIDENTS = Counter("ipsflow_incidents_total", "Incidents the engine raised (a command failed for good).",
                    ["command_type"])
CASES_STARTED = Counter("ipsflow_cases_started_total", "Process instances (cases) the engine started.", ["process"])
HTTP_SECONDS = Histogram("ipsflow_http_request_duration_seconds", "HTTP requests by route template and status.",
                         ["method", "route", "status"], buckets=_LATENCY_BUCKETS)


def install(app: FastAPI) -> None:
    """``GET /metrics`` and the HTTP latency middleware (``servicekit.http.create_app`` calls this)."""

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST, headers={"Cache-Control": "no-store"})

    app.add_middleware(HttpMetricsMiddleware)


def route_template(scope: Scope) -> str:
    """The route's template (``/api/v1/zaken/{zaak_id}``), never the path itself: ids (and a BSN someone typed
    into a URL) must not become label values."""
    route = scope.get("route")
    if route is None:  # answered before routing (401 before the body, 413): find the route without running it
        router = getattr(scope.get("app"), "router", None)
        for candidate in getattr(router, "routes", ()):
            if candidate.matches(scope)[0] == Match.FULL:
                route = candidate
                break
    return str(getattr(route, "path_format", None) or getattr(route, "path", None) or "(geen route)")


class HttpMetricsMiddleware(HttpMiddleware):
    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            HTTP_SECONDS.labels(scope.get("method", ""), route_template(scope), str(status)).observe(
                time.perf_counter() - started)


def message_handled(queue: str, type_: str, seconds: float) -> None:
    MESSAGES_HANDLED.labels(queue, type_).inc()
    HANDLER_SECONDS.labels(queue, type_).observe(seconds)


def message_failed(queue: str, type_: str, outcome: str, seconds: float | None) -> None:
    MESSAGES_FAILED.labels(queue, type_, outcome).inc()
    if seconds is not None:
        HANDLER_SECONDS.labels(queue, type_).observe(seconds)


def timer_fired(lateness_seconds: float) -> None:
    TIMERS_FIRED.inc()
    TIMER_LATENESS.observe(max(lateness_seconds, 0.0))


def sample(name: str, labels: dict[str, str] | None = None) -> float:
    """The current value of a sample in this process (tests and the benchmarks read it; 0 when absent)."""
    from prometheus_client import REGISTRY

    value = REGISTRY.get_sample_value(name, labels or {})
    return 0.0 if value is None else value

