"""servicekit's pure logic: envelope, HTTP problem details, body limit, retry tiers, log redaction.

No broker, no database: the ASGI middleware is driven with hand-written receive/send callables and the
broker's topology with a small fake channel that records what is declared.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any

import pydantic
import pytest
import structlog
from fastapi import Body
from fastapi.testclient import TestClient
from pydantic.alias_generators import to_camel

from servicekit.broker import DLX, EVENTS, Binding, Broker
from servicekit.consumer import _short
from servicekit.envelope import CloudEvent, deterministic_id, new_event, source_for
from servicekit.http import PROBLEM, BodyLimitMiddleware, create_app, validation_problem
from servicekit.logging import _drop_personal_data, configure_logging
from servicekit.settings import ServiceSettings

BSN = "999990019"  # a test BSN (passes the 11-proof); must never come back in a response or log line


# --- envelope -----------------------------------------------------------------------------------------------


def test_new_event_without_cause_starts_its_own_correlation() -> None:
    event = new_event("ips.aanvraag.ingediend.v1", service="intake", subject="zaak-1", data={"a": 1})
    assert event.correlationid == event.id
    assert event.causationid is None
    assert event.source == source_for("intake")
    assert event.source.endswith(":systeem:ipsflow-intake")
    assert event.time.tzinfo is not None


def test_new_event_carries_correlation_and_sets_causation_along_a_chain() -> None:
    root = new_event("ips.aanvraag.ingediend.v1", service="intake", subject="zaak-1")
    command = new_event(
        "ips.aanvraag.beoordelen.v1", service="process_engine", subject="zaak-1", caused_by=root
    )
    reply = new_event("ips.aanvraag.beoordeeld.v1", service="grants", subject="zaak-1", caused_by=command)

    assert command.causationid == root.id
    assert command.correlationid == root.id
    assert reply.causationid == command.id
    assert reply.correlationid == root.id, "the correlation id must survive more than one hop"
    assert len({root.id, command.id, reply.id}) == 3


def test_new_event_caused_by_a_message_without_correlation_uses_its_id() -> None:
    external = CloudEvent(
        id="ext-1", source="urn:x", type="ips.extern.ontvangen.v1", time=datetime(2025, 1, 1, tzinfo=UTC)
    )
    event = new_event("ips.aanvraag.ingediend.v1", service="intake", subject="z", caused_by=external)
    assert event.correlationid == "ext-1"
    assert event.causationid == "ext-1"


def test_new_event_uses_given_id_and_time() -> None:
    now = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
    event = new_event("ips.x.gedaan.v2", service="grants", subject=None, event_id="fixed-id", now=now)
    assert event.id == "fixed-id"
    assert event.correlationid == "fixed-id"
    assert event.time == now


def test_deterministic_id_is_stable_across_processes_and_releases() -> None:
    # Pinned: a retried step in a new process (or after an upgrade) must produce the very same message id,
    # or consumers would apply the command twice.
    assert deterministic_id("aanvraag-1", "beoordeel") == "b7e22af0-544e-5ecf-bad2-660ff76f84c5"
    assert deterministic_id("aanvraag-1", "beoordeel") == deterministic_id("aanvraag-1", "beoordeel")
    assert uuid.UUID(deterministic_id("a")).version == 5


def test_deterministic_id_differs_when_any_part_or_the_order_differs() -> None:
    ids = {
        deterministic_id("aanvraag-1", "beoordeel"),
        deterministic_id("aanvraag-2", "beoordeel"),
        deterministic_id("aanvraag-1", "betaal"),
        deterministic_id("beoordeel", "aanvraag-1"),
    }
    assert len(ids) == 4


@pytest.mark.parametrize(
    "bad_type",
    [
        "ips.aanvraag.ingediend",  # no version suffix
        "ips.Aanvraag.ingediend.v1",  # upper case
        "ips.aanvraag ingediend.v1",  # space
        "ips.aanvraag.ingediend.v",  # version without a number
        "ips.aanvraag.ingediend.v1.x",  # version not last
    ],
)
def test_event_type_outside_the_pattern_is_refused(bad_type: str) -> None:
    with pytest.raises(pydantic.ValidationError):
        new_event(bad_type, service="intake", subject="z")


def test_event_type_in_the_pattern_is_accepted() -> None:
    assert (
        new_event("ips.aanvraag.ingediend.v12", service="intake", subject="z").type
        == "ips.aanvraag.ingediend.v12"
    )


def test_envelope_round_trips_and_leaves_out_empty_fields() -> None:
    event = new_event(
        "ips.aanvraag.ingediend.v1", service="intake", subject=None, data={"gemeenteCode": "0363"}
    )
    raw = event.to_json()
    assert "subject" not in json.loads(raw)
    assert "causationid" not in json.loads(raw)
    assert CloudEvent.from_json(raw) == event


def test_envelope_refuses_unknown_top_level_fields() -> None:
    raw = json.loads(new_event("ips.a.b.v1", service="intake", subject="z").to_json())
    raw["bsn"] = BSN
    with pytest.raises(pydantic.ValidationError):
        CloudEvent.from_json(json.dumps(raw))


# --- HTTP problem details -----------------------------------------------------------------------------------


class _Portal(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    client_referentie: str = pydantic.Field(pattern=r"^[A-Za-z0-9]+$")
    gemeente_code: str = pydantic.Field(pattern=r"^[0-9]{4}$")


def _problem_body(response: Any) -> dict[str, Any]:
    return json.loads(bytes(response.body))


def test_validation_problem_names_fields_in_camel_case_and_is_400_problem_json() -> None:
    errors = [
        {
            "type": "string_pattern_mismatch",
            "loc": ("body", "gemeenteCode"),
            "msg": "String should match pattern",
            "input": "12",
        },
        {"type": "missing", "loc": ("body", "clientReferentie"), "msg": "Field required", "input": {}},
        {
            "type": "int_parsing",
            "loc": ("query", "pageSize"),
            "msg": "Input should be a valid integer",
            "input": "x",
        },
    ]
    response = validation_problem(errors)
    body = _problem_body(response)
    assert response.status_code == 400
    assert response.media_type == PROBLEM
    assert body["status"] == 400
    assert [p["name"] for p in body["invalidParams"]] == ["gemeenteCode", "clientReferentie", "pageSize"]
    assert body["invalidParams"][1]["reason"] == "is verplicht"


def test_validation_problem_keeps_nested_paths_and_fields_named_like_a_location() -> None:
    errors = [
        {"type": "missing", "loc": ("body", "bijlagen", 0, "mediaType"), "msg": "Field required"},
        {"type": "string_type", "loc": ("body", "document", "path"), "msg": "Input should be a valid string"},
        {"type": "string_type", "loc": ("body", "body"), "msg": "Input should be a valid string"},
    ]
    names = [p["name"] for p in _problem_body(validation_problem(errors))["invalidParams"]]
    assert names == ["bijlagen.0.mediaType", "document.path", "body"]


def test_validation_problem_names_body_for_invalid_json() -> None:
    errors = [
        {
            "type": "json_invalid",
            "loc": ("body", 17),
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": "Expecting ',' delimiter"},
        }
    ]
    params = _problem_body(validation_problem(errors))["invalidParams"]
    assert params == [{"name": "body", "code": "json_invalid", "reason": "is geen geldige JSON"}]


def test_validation_problem_never_echoes_input_values() -> None:
    try:
        _Portal.model_validate({"clientReferentie": BSN + "!", "gemeenteCode": BSN, "bsn": BSN})
    except pydantic.ValidationError as exc:
        errors = exc.errors()
    else:  # pragma: no cover - the data above is invalid by construction
        pytest.fail("expected a validation error")
    assert any(BSN in str(e.get("input")) for e in errors), "precondition: pydantic carries the input"
    response = validation_problem(errors)
    text = bytes(response.body).decode()
    assert BSN not in text
    assert {p["name"] for p in json.loads(text)["invalidParams"]} == {
        "clientReferentie",
        "gemeenteCode",
        "bsn",
    }


def test_app_turns_request_validation_into_named_400_without_echo() -> None:
    app = create_app("t", "t")

    @app.post("/api/v1/aanvragen")
    async def submit(aanvraag: _Portal) -> dict[str, str]:
        return {"ok": aanvraag.client_referentie}

    client = TestClient(app)
    bad = client.post("/api/v1/aanvragen", json={"clientReferentie": "abc", "gemeenteCode": BSN})
    assert bad.status_code == 400
    assert bad.headers["content-type"].startswith(PROBLEM)
    assert bad.headers["API-Version"]
    assert [p["name"] for p in bad.json()["invalidParams"]] == ["gemeenteCode"]
    assert BSN not in bad.text

    broken = client.post(
        "/api/v1/aanvragen",
        content=b'{"clientReferentie": "abc",',
        headers={"content-type": "application/json"},
    )
    assert broken.status_code == 400
    assert [p["name"] for p in broken.json()["invalidParams"]] == ["body"]

    good = client.post("/api/v1/aanvragen", json={"clientReferentie": "abc", "gemeenteCode": "0363"})
    assert good.status_code == 200
    assert good.json() == {"ok": "abc"}


def test_app_body_field_named_path_is_reported_by_its_own_name() -> None:
    app = create_app("t", "t")

    @app.post("/x")
    async def x(path: str = Body(embed=True)) -> dict[str, str]:
        return {"path": path}

    response = TestClient(app).post("/x", json={"path": 3})
    assert response.status_code == 400
    assert [p["name"] for p in response.json()["invalidParams"]] == ["path"]


# --- BodyLimitMiddleware, driven as a raw ASGI app ----------------------------------------------------------


class _EchoApp:
    """The wrapped application: reads the whole body like a framework would, answers 200 with it."""

    def __init__(self) -> None:
        self.calls = 0
        self.received: list[dict[str, Any]] = []

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.calls += 1
        body = b""
        while True:
            message = await receive()
            self.received.append(message)
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]}
        )
        await send({"type": "http.response.body", "body": body})


class _Client:
    """Fake receive/send: hands out the given messages in order, then disconnects; records what was sent."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        self.messages = list(messages)
        self.reads = 0
        self.sent: list[dict[str, Any]] = []

    async def receive(self) -> dict[str, Any]:
        self.reads += 1
        if self.messages:
            return self.messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(self, message: dict[str, Any]) -> None:
        self.sent.append(message)

    @property
    def status(self) -> int | None:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return starts[0]["status"] if starts else None

    @property
    def headers(self) -> dict[bytes, bytes]:
        starts = [m for m in self.sent if m["type"] == "http.response.start"]
        return dict(starts[0]["headers"]) if starts else {}

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def _scope(content_length: int | None = None) -> dict[str, Any]:
    headers = [(b"content-type", b"application/json")]
    if content_length is not None:
        headers.append((b"content-length", str(content_length).encode()))
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/aanvragen",
        "raw_path": b"/api/v1/aanvragen",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8001),
    }


def _chunks(*parts: bytes) -> list[dict[str, Any]]:
    return [{"type": "http.request", "body": p, "more_body": i < len(parts) - 1} for i, p in enumerate(parts)]


def _assert_refused(client: _Client, app: _EchoApp, limit: int) -> None:
    assert client.status == 400
    assert client.headers[b"content-type"] == PROBLEM.encode()
    problem = json.loads(client.body)
    assert problem["status"] == 400
    assert [p["name"] for p in problem["invalidParams"]] == ["body"]
    assert problem["invalidParams"][0]["code"] == "too_large"
    assert str(limit) in problem["detail"]
    assert app.calls == 0, "the application must not see an over-limit request"


async def test_body_limit_refuses_by_declared_content_length_without_reading() -> None:
    app = _EchoApp()
    client = _Client(_chunks(b"x" * 11))
    await BodyLimitMiddleware(app, max_bytes=10)(_scope(content_length=11), client.receive, client.send)
    _assert_refused(client, app, 10)
    assert client.reads == 0, "a declared oversize body is refused before any of it is read"


async def test_body_limit_refuses_streamed_chunks_that_add_up_over_the_limit() -> None:
    app = _EchoApp()
    # No Content-Length (chunked transfer): only counting the chunks can tell.
    client = _Client(_chunks(b"a" * 4, b"b" * 4, b"c" * 4, b"d" * 4))
    await BodyLimitMiddleware(app, max_bytes=10)(_scope(), client.receive, client.send)
    _assert_refused(client, app, 10)
    assert client.reads == 3, "reading stops at the chunk that crosses the limit"


async def test_body_limit_refuses_a_body_longer_than_its_content_length_claims() -> None:
    app = _EchoApp()
    client = _Client(_chunks(b"a" * 8, b"b" * 8))
    await BodyLimitMiddleware(app, max_bytes=10)(_scope(content_length=5), client.receive, client.send)
    _assert_refused(client, app, 10)


async def test_body_under_the_limit_reaches_the_app_unchanged() -> None:
    app = _EchoApp()
    parts = (b'{"client', b'Referentie": ', b'"abc"}')
    client = _Client(_chunks(*parts))
    await BodyLimitMiddleware(app, max_bytes=64)(_scope(), client.receive, client.send)
    assert client.status == 200
    assert client.body == b"".join(parts)
    assert app.calls == 1
    assert app.received[0] == {"type": "http.request", "body": b"".join(parts), "more_body": False}


async def test_body_of_exactly_the_limit_passes() -> None:
    app = _EchoApp()
    client = _Client(_chunks(b"x" * 5, b"y" * 5))
    await BodyLimitMiddleware(app, max_bytes=10)(_scope(content_length=10), client.receive, client.send)
    assert client.status == 200
    assert client.body == b"x" * 5 + b"y" * 5


async def test_body_limit_after_replay_the_app_reads_the_real_stream_again() -> None:
    # An app that keeps reading after the body (to notice a disconnect) must get the client's own messages.
    client = _Client(_chunks(b"ok"))
    seen: list[dict[str, Any]] = []

    async def listening_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(await receive())
        seen.append(await receive())
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    await BodyLimitMiddleware(listening_app, max_bytes=10)(_scope(), client.receive, client.send)
    assert seen == [{"type": "http.request", "body": b"ok", "more_body": False}, {"type": "http.disconnect"}]
    assert client.status == 204


async def test_body_limit_client_gone_mid_body_calls_nothing_and_sends_nothing() -> None:
    app = _EchoApp()
    client = _Client([{"type": "http.request", "body": b"abc", "more_body": True}])  # then: disconnect
    await BodyLimitMiddleware(app, max_bytes=10)(_scope(), client.receive, client.send)
    assert app.calls == 0
    assert client.sent == []


async def test_body_limit_passes_non_http_scopes_through() -> None:
    seen: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    client = _Client([])
    await BodyLimitMiddleware(app, max_bytes=1)({"type": "lifespan"}, client.receive, client.send)
    assert seen == ["lifespan"]
    assert client.reads == 0


# --- broker topology and retry tiers ------------------------------------------------------------------------


class _FakeQueue:
    def __init__(self, name: str, arguments: dict[str, Any]) -> None:
        self.name = name
        self.arguments = arguments
        self.bindings: list[tuple[str, str]] = []

    async def bind(self, exchange: str, routing_key: str) -> None:
        self.bindings.append((exchange, routing_key))


class _FakeChannel:
    def __init__(self) -> None:
        self.queues: dict[str, _FakeQueue] = {}

    async def declare_queue(self, name: str, durable: bool, arguments: dict[str, Any]) -> _FakeQueue:
        assert durable
        queue = _FakeQueue(name, arguments)
        self.queues[name] = queue
        return queue


def _broker(**overrides: Any) -> Broker:
    return Broker(ServiceSettings(namespace="t1.", **overrides))


def test_retry_queue_picks_the_tier_of_the_attempt_and_reuses_the_last() -> None:
    broker = _broker(retry_delays_ms=[1_000, 5_000, 30_000])
    assert [broker.retry_queue("grants", attempt) for attempt in (1, 2, 3, 4, 9)] == [
        "t1.grants.retry.1",
        "t1.grants.retry.2",
        "t1.grants.retry.3",
        "t1.grants.retry.3",
        "t1.grants.retry.3",
    ]


def test_retry_queue_with_one_tier_always_uses_it() -> None:
    broker = _broker(retry_delays_ms=[250])
    assert {broker.retry_queue("q", attempt) for attempt in range(1, 6)} == {"t1.q.retry.1"}


def test_settings_refuse_an_empty_retry_tier_list() -> None:
    with pytest.raises(pydantic.ValidationError):
        ServiceSettings(retry_delays_ms=[])


async def test_every_retry_queue_the_consumer_can_pick_is_declared_and_leads_back() -> None:
    broker = _broker(retry_delays_ms=[200, 1_000], max_attempts=6)
    channel = _FakeChannel()
    await broker.declare_consumer_queue(channel, "grants", [Binding(EVENTS, "ips.aanvraag.ingediend.v1")])  # type: ignore[arg-type]

    for attempt in range(1, broker.settings.max_attempts):
        name = broker.retry_queue("grants", attempt)
        assert name in channel.queues, f"attempt {attempt} would publish to undeclared {name}"
        args = channel.queues[name].arguments
        assert args["x-dead-letter-exchange"] == f"t1.{DLX}"
        assert args["x-dead-letter-routing-key"] == "t1.grants", "a retry must come back to this queue only"
        assert args["x-queue-type"] == "quorum"
    assert channel.queues["t1.grants.retry.1"].arguments["x-message-ttl"] == 200
    assert channel.queues["t1.grants.retry.2"].arguments["x-message-ttl"] == 1_000

    main = channel.queues["t1.grants"]
    assert (f"t1.{DLX}", "t1.grants") in main.bindings
    assert (f"t1.{EVENTS}", "ips.aanvraag.ingediend.v1") in main.bindings
    assert main.arguments["x-dead-letter-routing-key"] == "t1.grants.dlq"
    assert channel.queues["t1.grants.dlq"].bindings == [(f"t1.{DLX}", "t1.grants.dlq")]


def test_consumer_reason_never_quotes_the_input() -> None:
    try:
        _Portal.model_validate({"clientReferentie": BSN + "!", "gemeenteCode": BSN})
    except pydantic.ValidationError as exc:
        reason = _short(exc)
    assert BSN not in reason
    assert "gemeenteCode" in reason or "gemeente_code" in reason
    assert len(_short(RuntimeError("x" * 2_000))) == 500


# --- logging ------------------------------------------------------------------------------------------------


def test_redaction_replaces_personal_data_keys_and_keeps_the_rest() -> None:
    event = {
        "event": "aanvraag.ontvangen",
        "bsn": BSN,
        "Naam": "Jansen",
        "case_id": "zaak-1",
        "correlation_id": "c-1",
    }
    out = _drop_personal_data(None, "info", event)
    assert out["bsn"] == "[weggelaten]"
    assert out["Naam"] == "[weggelaten]"
    assert out["case_id"] == "zaak-1"
    assert out["correlation_id"] == "c-1"
    assert out["event"] == "aanvraag.ontvangen"
    assert BSN not in json.dumps(out)


@pytest.fixture
def configured_logging() -> Any:
    configure_logging("test", "INFO")
    yield
    structlog.reset_defaults()
    structlog.contextvars.clear_contextvars()


def test_configured_pipeline_redacts_before_rendering(configured_logging: None) -> None:
    processors = structlog.get_config()["processors"]
    assert _drop_personal_data in processors
    renderer = next(i for i, p in enumerate(processors) if isinstance(p, structlog.processors.JSONRenderer))
    assert processors.index(_drop_personal_data) < renderer

    # Run the configured chain by hand (no output stream involved) and look at the rendered line.
    event: Any = {"event": "x", "bsn": BSN, "case_id": "zaak-1"}
    for processor in processors:
        event = processor(None, "info", event)
    assert isinstance(event, str)
    assert BSN not in event
    assert json.loads(event)["case_id"] == "zaak-1"
    assert json.loads(event)["service"] == "test"
