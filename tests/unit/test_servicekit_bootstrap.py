"""servicekit.bootstrap: what the services' composition roots and apps share (queue bindings, the app's lifespan)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi.testclient import TestClient

from servicekit.bootstrap import compose, consume, service_app
from servicekit.broker import COMMANDS, EVENTS, Binding
from servicekit.runtime import ServiceRuntime
from servicekit.settings import ServiceSettings


async def _handler(_envelope: Any) -> None:
    return None


async def _other(_envelope: Any) -> None:
    return None


def _runtime() -> ServiceRuntime:
    # Nothing connects until start(): building one is safe in a unit test.
    return compose(None, lambda: ServiceSettings(service_name="proef"))[1]


def test_commands_are_bound_on_the_commands_exchange_and_events_on_the_events_exchange() -> None:
    runtime = _runtime()
    consumer = consume(runtime, "proef", {"ips.a.doen.v1": _handler}, events={"ips.b.gebeurd.v1": _other})
    assert consumer.queue == "proef"
    assert consumer.handlers == {"ips.a.doen.v1": _handler, "ips.b.gebeurd.v1": _other}
    assert consumer.bindings == [Binding(COMMANDS, "ips.a.doen.v1"), Binding(EVENTS, "ips.b.gebeurd.v1")]
    assert runtime.consumers == [consumer]


def test_given_settings_are_used_and_missing_ones_are_read() -> None:
    mine = ServiceSettings(service_name="eigen")
    settings, runtime = compose(mine, lambda: ServiceSettings(service_name="gelezen"))
    assert settings is mine and runtime.settings is mine
    assert compose(None, lambda: ServiceSettings(service_name="gelezen"))[0].service_name == "gelezen"


def test_the_lifespan_starts_the_runtime_then_the_steps_then_the_loops_and_stops_in_reverse() -> None:
    runtime = _runtime()
    events: list[str] = []

    @contextlib.asynccontextmanager
    async def runtime_lifespan(_app: Any) -> AsyncIterator[None]:
        events.append("runtime gestart")
        yield
        events.append("runtime gestopt")

    runtime.lifespan = runtime_lifespan  # type: ignore[method-assign,assignment]

    async def indexes() -> None:
        events.append("indexen")

    async def ledgers() -> None:
        events.append("grootboeken")

    async def loop() -> None:
        events.append("lus draait")
        try:
            await asyncio.Event().wait()
        finally:
            events.append("lus gestopt")

    app = service_app(runtime, "proef", "proef", logboek=False, on_start=[indexes, ledgers],
                      background={"lus": loop})
    with TestClient(app) as client:
        assert client.get("/health").json() == {"status": "ok"}
        assert events[:3] == ["runtime gestart", "indexen", "grootboeken"]
    assert events == ["runtime gestart", "indexen", "grootboeken", "lus draait", "lus gestopt", "runtime gestopt"]
    assert "/api/v1/logboek" not in {getattr(r, "path", "") for r in app.routes}
    with_logboek = service_app(_runtime(), "proef", "proef", logboek=True)
    assert "/api/v1/logboek" in {getattr(r, "path", "") for r in with_logboek.routes}
