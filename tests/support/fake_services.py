"""A stand-in for grants/payments/... that answers engine commands over the real broker and counts them."""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

import aio_pika

from servicekit.broker import COMMANDS, EVENTS, Broker
from servicekit.envelope import CloudEvent, new_event

Reply = Callable[[CloudEvent], tuple[str, dict[str, Any]] | None]


def succeed(event: CloudEvent) -> tuple[str, dict[str, Any]]:
    return "ips.opdracht.voltooid.v1", {"kenmerk": f"K-{event.data.get('elementId')}", "dossier_nummer": "D-1"}


class FakeServices:
    """Consumes ``pattern`` on ips.commands; ``reply`` decides the answer (None: stay silent)."""

    def __init__(self, broker: Broker, pattern: str = "ips.test.#", reply: Reply = succeed) -> None:
        self.broker = broker
        self.pattern = pattern
        self.reply = reply
        self.received: Counter[str] = Counter()  # command id → deliveries
        self.by_type: Counter[str] = Counter()
        self.commands: list[CloudEvent] = []
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def start(self) -> None:
        self._channel = await self.broker.new_channel(prefetch=50)
        queue = await self._channel.declare_queue(self.broker.name("fake-services"), durable=True,
                                                  arguments={"x-queue-type": "quorum"})
        await queue.bind(self.broker.name(COMMANDS), routing_key=self.pattern)
        await queue.consume(self._on_message)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = CloudEvent.model_validate(json.loads(message.body))
        self.received[event.id] += 1
        if self.received[event.id] == 1:
            self.by_type[event.type] += 1
            self.commands.append(event)
        answer = self.reply(event)
        if answer is not None:
            type_, data = answer
            reply = new_event(type_, service="fake", subject=event.subject, data=data, caused_by=event,
                              event_id=f"reply-{event.id}")
            await self.broker.publish(reply, EVENTS)
        await message.ack()

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def wait_for(self, command_type: str, count: int = 1, timeout: float = 30) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while self.by_type[command_type] < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{command_type}: {self.by_type[command_type]} of {count} commands arrived")
            await asyncio.sleep(0.05)
