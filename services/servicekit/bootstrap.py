"""What every service's composition root (``<service>/bootstrap.py``) and app (``<service>/api.py``) do alike.

A composition root takes its settings (from the environment unless a test gives them), builds one
``ServiceRuntime`` from them, its repositories and handlers, and one consumer whose commands are bound on the
commands exchange and events on the events exchange. Its app adds the service's routes to ``service_app``: the
shared conventions (``create_app``), the runtime in the lifespan with the service's start-up steps and
background loops inside it, ``/health`` and ``/ready``, the rehearsal clock route and, for a service that holds
personal data, the Logboek dataverwerkingen. Nothing here connects at import or when called; the lifespan does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from fastapi import FastAPI

from servicekit.audit import Logboek, install_logboek
from servicekit.broker import COMMANDS, EVENTS, Binding
from servicekit.clock_api import add_clock_route
from servicekit.consumer import Consumer, Handler
from servicekit.http import add_health, create_app
from servicekit.runtime import ServiceRuntime, in_background
from servicekit.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


@dataclass
class Service(Generic[S]):
    """The parts every service has; a service's own composition adds its repositories and handlers."""

    settings: S
    runtime: ServiceRuntime


def compose(settings: S | None, default: Callable[[], S]) -> tuple[S, ServiceRuntime]:
    """A composition root's first step: the settings (``default()`` reads them from the environment) and the
    runtime built from them."""
    chosen = settings if settings is not None else default()
    return chosen, ServiceRuntime(chosen)


def consume(runtime: ServiceRuntime, queue: str, commands: Mapping[str, Handler],
            events: Mapping[str, Handler] | None = None) -> Consumer:
    """The service's queue: each command type bound on the commands exchange, each event type on the events
    exchange, each with its handler."""
    events = events or {}
    bindings = [Binding(COMMANDS, t) for t in commands] + [Binding(EVENTS, t) for t in events]
    return runtime.add_consumer(queue, {**commands, **events}, bindings)


def service_app(runtime: ServiceRuntime, title: str, description: str, *, logboek: bool,
                on_start: Sequence[Callable[[], Awaitable[Any]]] = (),
                background: Mapping[str, Callable[[], Coroutine[Any, Any, None]]] | None = None,
                body_limits: Sequence[tuple[str, int]] = ()) -> FastAPI:
    """A service's app without its own routes. Its lifespan starts the runtime (token keys, broker,
    database, consumers, relay), then runs ``on_start`` in order (indexes, ledgers) and ``background`` loops by
    name; on the way out the loops are cancelled before the runtime stops. ``logboek``: record declared reads
    and writes of personal data (servicekit.audit)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with runtime.lifespan(app), contextlib.AsyncExitStack() as loops:
            for step in on_start:
                await step()
            for name, run in (background or {}).items():
                await loops.enter_async_context(in_background(run(), name))
            yield

    app = create_app(title, description, lifespan=lifespan, body_limits=body_limits)
    if logboek:
        install_logboek(app, Logboek(runtime.db, runtime.settings.service_name))
    add_health(app, runtime.ready_checks)
    add_clock_route(app, runtime.clock)
    return app
