"""The composition a service process is made of: settings, broker, database, consumers, outbox relay.

``bootstrap.py`` of each service builds one ``ServiceRuntime`` and registers its parts; nothing connects at
import time. ``lifespan`` plugs it into FastAPI so the HTTP process also consumes and relays.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from servicekit.auth import install_verifier
from servicekit.broker import COMMANDS, Binding, Broker
from servicekit.clock import CLOCK_COMMAND, AdjustableClock, Clock, ClockKeeper, make_clock
from servicekit.consumer import Consumer, Handler
from servicekit.logging import configure_logging, get_logger
from servicekit.relay import OutboxRelay
from servicekit.settings import ServiceSettings
from servicekit.store import Document, make_client

log = get_logger(__name__)


class ServiceRuntime:
    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.broker = Broker(settings)
        self.client = make_client(settings)
        self.db = self.client[settings.database_name()]
        # Refuses (exits) here, before anything connects, when an adjustable clock is asked for in production.
        self.clock: Clock = make_clock(settings)
        self.clock_keeper = (ClockKeeper(self.db, self.clock, settings.service_name)
                             if isinstance(self.clock, AdjustableClock) else None)
        self.consumers: list[Consumer] = []
        self.relay: OutboxRelay | None = None
        self._tasks: list[asyncio.Task[Any]] = []

    def add_consumer(self, queue: str, handlers: Mapping[str, Handler], bindings: Sequence[Binding],
                     fallback: Handler | None = None) -> Consumer:
        """Consume ``queue``; ``fallback`` takes every type without its own handler (the engine's case).

        With an adjustable clock the service's (first) queue also takes the clock broadcast."""
        if self.clock_keeper is not None and not self.consumers:
            handlers = {**handlers, CLOCK_COMMAND: self.clock_keeper.handle}
            bindings = [*bindings, Binding(COMMANDS, CLOCK_COMMAND)]
        consumer = Consumer(self.broker, queue, handlers, bindings, fallback)
        self.consumers.append(consumer)
        return consumer

    def add_relay(self, collections: Sequence[AsyncCollection[Document]]) -> OutboxRelay:
        if self.clock_keeper is not None:  # the clock document's outbox holds the broadcast a setting makes
            collections = [*collections, self.clock_keeper.collection]
            self.clock_keeper.on_outbox = lambda doc_id, collection: self._wake_relay(doc_id, collection)
        self.relay = OutboxRelay(self.broker, collections)
        return self.relay

    def _wake_relay(self, doc_id: str, collection: AsyncCollection[Document]) -> None:
        if self.relay is not None:
            self.relay.wake(doc_id, collection)

    async def start(self, connect_timeout: float = 60.0) -> None:
        configure_logging(self.settings.service_name, self.settings.log_level)
        deadline = asyncio.get_running_loop().time() + connect_timeout
        while True:
            try:
                await self.broker.connect()
                break
            except (ConnectionError, OSError) as exc:
                if asyncio.get_running_loop().time() > deadline:
                    raise
                log.warning("broker.waiting", error=str(exc))
                await asyncio.sleep(1)
        if self.clock_keeper is not None:
            # The stored setting before the first message or request: a restart keeps the rehearsal time.
            await self.clock_keeper.load()
            self._tasks.append(asyncio.create_task(self.clock_keeper.follow(self.settings.clock_refresh_seconds),
                                                   name="clock-follower"))
        for consumer in self.consumers:
            await consumer.start()
        if self.relay is not None:
            self._tasks.append(asyncio.create_task(self.relay.run(), name="outbox-relay"))
        log.info("service.started", database=self.db.name, namespace=self.settings.namespace or None)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for consumer in self.consumers:
            await consumer.stop()
        await self.broker.close()
        await self.client.close()

    async def ready_checks(self) -> dict[str, bool]:
        try:
            await self.client.admin.command("ping")
            mongo_ok = True
        except Exception:
            mongo_ok = False
        return {"mongodb": mongo_ok, "rabbitmq": self.broker.is_connected}

    @contextlib.asynccontextmanager
    async def lifespan(self, app: Any) -> AsyncIterator[None]:
        # Before anything connects: a service that cannot check tokens must not start at all (fails closed; the
        # log says why and uvicorn exits non-zero). The key is read here, once, not per request.
        configure_logging(self.settings.service_name, self.settings.log_level)
        await asyncio.to_thread(install_verifier, app, self.settings.environment)
        await self.start()
        try:
            yield
        finally:
            await self.stop()
