"""RabbitMQ through aio-pika: the exchanges, a consumer's queue family, confirmed publishing.

Topology (every name carries the settings' namespace prefix):

* ``ips.commands`` and ``ips.events``: durable topic exchanges, routing key = message type.
* ``ips.dlx``: durable direct exchange for everything that is dead-lettered or re-routed.
* per consumer queue ``Q`` (quorum): bound to its message types, and to ``ips.dlx`` with key ``Q`` so that
  retries and replays come back to this queue only, never to the other subscribers of the type.
* ``Q.retry.<n>`` (quorum, ``x-message-ttl``): wait queues that dead-letter back to ``Q`` after their delay.
* ``Q.dlq`` (quorum): the parking lot, bound to ``ips.dlx`` with key ``Q.dlq``; ``Q`` itself dead-letters
  there when RabbitMQ's delivery limit is exceeded (a consumer that crashes on a message again and again).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractQueue,
    AbstractRobustConnection,
    ExchangeType,
)
from aio_pika.connection import make_url

from servicekit.envelope import CONTENT_TYPE, CloudEvent
from servicekit.logging import get_logger
from servicekit.settings import ServiceSettings

log = get_logger(__name__)

COMMANDS = "ips.commands"
EVENTS = "ips.events"
DLX = "ips.dlx"
ATTEMPT_HEADER = "x-ipsflow-attempt"
ERROR_HEADER = "x-ipsflow-error"
QUEUE_HEADER = "x-ipsflow-queue"
DELIVERY_LIMIT = 20


@dataclass(frozen=True)
class Binding:
    exchange: str  # COMMANDS or EVENTS (without namespace)
    routing_key: str


def amqp_urls(setting: str) -> list[str]:
    """The node addresses of ``IPSFLOW_AMQP_URL``: one URL, or several separated by commas (the nodes of one
    RabbitMQ cluster, e.g. deploy/local/cluster.sh's three)."""
    return [url.strip() for url in setting.split(",") if url.strip()]


class FailoverConnection(aio_pika.RobustConnection):
    """aio-pika's robust connection over the nodes of a cluster: every (re)connection attempt takes the next
    address, so a process whose node died reconnects to a node that lives (the quorum queues have their replicas
    there) instead of waiting for the dead one to come back."""

    def __init__(self, urls: Sequence[str], first: int = 0, **kwargs: Any) -> None:
        self._nodes = [make_url(url, reconnect_interval=1) for url in urls]
        self._attempts = first
        super().__init__(self._nodes[first % len(self._nodes)], **kwargs)

    # aio-pika's RobustConnection makes each attempt in this (name-mangled) method, with self.url.
    async def _RobustConnection__connect_transport(self) -> None:
        self.url = self._nodes[self._attempts % len(self._nodes)]
        self._attempts += 1
        await super()._RobustConnection__connect_transport()  # type: ignore[misc]


class Broker:
    """One robust connection per process, a confirming publisher channel, one channel per consumer.

    ``publish`` returns only after the broker confirmed the message; an unroutable message (mandatory) or a
    nack raises, so callers such as the outbox relay keep what was not confirmed.
    """

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.ns = settings.namespace
        self._connection: AbstractRobustConnection | None = None
        self._channel: AbstractChannel | None = None
        self._exchanges: dict[str, AbstractExchange] = {}

    def name(self, base: str) -> str:
        return f"{self.ns}{base}"

    @property
    def is_connected(self) -> bool:
        return self._connection is not None and not self._connection.is_closed

    async def connect(self, handshake_seconds: float | None = None) -> None:
        """Connect, open the publisher channel and declare the exchanges. ``handshake_seconds`` bounds the first
        connection (TCP and the AMQP handshake): a broker that accepts the connection but never answers raises
        instead of hanging; once connected, the connection reconnects by itself."""
        # What connect_robust does, but holding the connection: a first attempt that fails or is cancelled must be
        # closed, or its reconnect loop keeps running and ignores the cancellation when the process wants to exit.
        # With several nodes, the first connection tries each in turn (one that is down at start-up is skipped).
        nodes = amqp_urls(self.settings.amqp_url)
        for first in range(len(nodes)):
            connection = FailoverConnection(
                nodes, first=first, client_properties={"connection_name": f"ipsflow-{self.settings.service_name}"},
            )
            try:
                await connection.connect(timeout=handshake_seconds)
                break
            except BaseException as exc:
                await connection.close()
                if first == len(nodes) - 1 or not isinstance(exc, Exception):
                    raise
                log.warning("broker.node_unreachable", node=first, error=type(exc).__name__)
        self._connection = connection
        self._channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        for base, kind in ((COMMANDS, ExchangeType.TOPIC), (EVENTS, ExchangeType.TOPIC), (DLX, ExchangeType.DIRECT)):
            self._exchanges[base] = await self._channel.declare_exchange(self.name(base), kind, durable=True)

    async def close(self) -> None:
        if self._connection is not None:
            await self._connection.close()
            self._connection = None

    async def new_channel(self, prefetch: int) -> AbstractChannel:
        assert self._connection is not None, "connect() first"
        channel = await self._connection.channel(publisher_confirms=True, on_return_raises=True)
        await channel.set_qos(prefetch_count=prefetch)
        return channel

    async def publish(self, event: CloudEvent, exchange: str, routing_key: str | None = None,
                      headers: Mapping[str, Any] | None = None) -> None:
        """Publish persistently and wait for the broker's confirm; ``exchange`` is COMMANDS or EVENTS."""
        await self.publish_raw(exchange, routing_key or event.type, event.to_json(), message_id=event.id,
                               type_=event.type, correlation_id=event.correlationid, headers=headers)

    async def publish_raw(self, exchange: str, routing_key: str, body: bytes, *, message_id: str | None,
                          type_: str | None = None, correlation_id: str | None = None,
                          headers: Mapping[str, Any] | None = None) -> None:
        assert self._channel is not None, "connect() first"
        message = aio_pika.Message(
            body,
            message_id=message_id,
            type=type_,
            correlation_id=correlation_id,
            content_type=CONTENT_TYPE,
            delivery_mode=aio_pika.DeliveryMode.PERSISTENT,
            headers=dict(headers or {}),
        )
        if exchange == "":
            target: AbstractExchange = self._channel.default_exchange
        else:
            target = self._exchanges[exchange]
        await target.publish(message, routing_key=routing_key, mandatory=True)

    async def declare_consumer_queue(self, channel: AbstractChannel, queue: str,
                                     bindings: Sequence[Binding]) -> AbstractQueue:
        """Declare ``queue`` with its retry tiers and parking lot; idempotent."""
        q = self.name(queue)
        dlx = self.name(DLX)
        dlq = await channel.declare_queue(f"{q}.dlq", durable=True, arguments={"x-queue-type": "quorum"})
        await dlq.bind(dlx, routing_key=f"{q}.dlq")
        main = await channel.declare_queue(q, durable=True, arguments={
            "x-queue-type": "quorum",
            "x-dead-letter-exchange": dlx,
            "x-dead-letter-routing-key": f"{q}.dlq",
            "x-delivery-limit": DELIVERY_LIMIT,
        })
        await main.bind(dlx, routing_key=q)
        for binding in bindings:
            await main.bind(self.name(binding.exchange), routing_key=binding.routing_key)
        for tier, delay in enumerate(self.settings.retry_delays_ms, start=1):
            await channel.declare_queue(f"{q}.retry.{tier}", durable=True, arguments={
                "x-queue-type": "quorum",
                "x-message-ttl": delay,
                "x-dead-letter-exchange": dlx,
                "x-dead-letter-routing-key": q,
            })
        return main

    def retry_queue(self, queue: str, attempt: int) -> str:
        """The wait queue for the given attempt number (1-based); later attempts reuse the last tier."""
        tiers = len(self.settings.retry_delays_ms)
        return f"{self.name(queue)}.retry.{min(attempt, tiers)}"
