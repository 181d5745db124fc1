"""The composition a service process is made of: settings, broker, database, consumers, outbox relay.

``bootstrap.py`` of each service builds one ``ServiceRuntime`` and registers its parts; nothing connects at
import time. ``lifespan`` plugs it into FastAPI so the HTTP process also consumes and relays.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from typing import Any

from aiormq.exceptions import AMQPConnectionError
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import PyMongoError

from servicekit import otel
from servicekit.auth import install_verifier
from servicekit.broker import COMMANDS, Binding, Broker
from servicekit.clock import CLOCK_COMMAND, AdjustableClock, Clock, ClockKeeper, make_clock
from servicekit.consumer import Consumer, Handler
from servicekit.logging import configure_logging, get_logger
from servicekit.relay import OutboxRelay
from servicekit.settings import ServiceSettings
from servicekit.store import Document, make_client

log = get_logger(__name__)


class DependencyUnavailable(RuntimeError):
    """RabbitMQ or MongoDB did not answer within the start-up timeout; the process should exit."""

    def __init__(self, dependency: str, address: str, seconds: float) -> None:
        super().__init__(f"{dependency} at {address} did not answer within {seconds:g} s; "
                         "is it running? (local stack: ipsflow stack status)")
        self.dependency = dependency
        self.address = address


def address_of(url: str) -> str:
    """Host, port and path of a connection URL without user and password: safe for logs and error messages."""
    nodes = [one.strip() for one in url.split(",")]
    # the nodes of a broker cluster are whole URLs (servicekit.broker.amqp_urls); a MongoDB seed list is one URL
    # whose host part holds the commas (mongodb://u:p@db1:27017,db2:27017/ips)
    if len(nodes) > 1 and all("://" in one for one in nodes):
        return ",".join(address_of(one) for one in nodes)
    parts = urllib.parse.urlsplit(url)
    path = parts.path if parts.path not in ("", "/") else ""
    return f"{parts.netloc.rsplit('@', 1)[-1]}{path}"


@contextlib.asynccontextmanager
async def in_background(run: Coroutine[Any, Any, None], name: str) -> AsyncIterator[asyncio.Task[None]]:
    """Run a loop of the service's own (grants' allocator, notifications' SMTP sender, the engine's timer poller)
    while the block runs; cancelled and awaited when it ends, so a stopping service leaves no task behind."""
    task = asyncio.create_task(run, name=name)
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


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

    async def start(self, connect_timeout: float | None = None) -> None:
        """Connect to RabbitMQ and MongoDB (waiting at most ``connect_timeout`` seconds, by default the setting
        ``startup_timeout_seconds``), then start consumers and the relay. Raises DependencyUnavailable."""
        configure_logging(self.settings.service_name, self.settings.log_level)
        otel.configure(self.settings.service_name, self.settings.otel_exporter)
        await self._connect_dependencies(
            self.settings.startup_timeout_seconds if connect_timeout is None else connect_timeout)
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

    async def _connect_dependencies(self, seconds: float) -> None:
        # Without a bound, a broker that accepts the TCP connection but never answers the AMQP handshake kept a
        # service hanging at start-up without a single log line. Now each dependency gets the time that is left,
        # and the one that does not answer is named in one error line, with its address and never credentials.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        steps: list[tuple[str, str, Callable[[float], Awaitable[None]]]] = [
            ("rabbitmq", address_of(self.settings.amqp_url), self._connect_broker),
            ("mongodb", address_of(self.settings.mongo_url), self._ping_database),
        ]
        for dependency, address, attempt in steps:
            while True:
                remaining = max(deadline - loop.time(), 0.5)
                try:
                    # The attempt has its own bound; this one only guards against a library that ignores it.
                    await asyncio.wait_for(attempt(remaining), timeout=remaining + 5)
                    break
                except (OSError, AMQPConnectionError, PyMongoError) as exc:  # TimeoutError is an OSError
                    if loop.time() + 1 >= deadline:
                        failure = DependencyUnavailable(dependency, address, seconds)
                        log.error("startup.failed", dependency=dependency, endpoint=address, waited_seconds=seconds,
                                  error=type(exc).__name__, detail=str(failure))
                        raise failure from None
                    log.warning("startup.waiting", dependency=dependency, endpoint=address, error=type(exc).__name__)
                    await asyncio.sleep(1)

    async def _connect_broker(self, seconds: float) -> None:
        try:
            await self.broker.connect(handshake_seconds=seconds)
        except BaseException:
            with contextlib.suppress(Exception):
                await self.broker.close()
            raise

    async def _ping_database(self, seconds: float) -> None:
        await asyncio.wait_for(self.client.admin.command("ping"), timeout=seconds)

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
        otel.shutdown()

    async def ready_checks(self) -> dict[str, bool]:
        try:
            # Bounded: /ready must answer, also (and especially) when the database does not.
            await asyncio.wait_for(self.client.admin.command("ping"), timeout=3)
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
