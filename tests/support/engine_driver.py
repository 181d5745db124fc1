"""Plays the process engine towards one service: publishes commands on ips.commands, collects the replies.

Replies (``ips.opdracht.voltooid|mislukt.v1``) are read from a test queue bound to ips.events and filed by
their causation id, so a test can check that a command was answered exactly once and with which event id.
"""

from __future__ import annotations

import json
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

import aio_pika

from servicekit.broker import COMMANDS, EVENTS, Broker
from servicekit.envelope import CloudEvent, new_event
from tests.conftest import eventually


class CommandDriver:
    def __init__(self, broker: Broker, now: datetime | None = None, element_id: str = "Task_test") -> None:
        self.broker = broker
        self.now = now
        self.element_id = element_id
        self.replies: dict[str, list[CloudEvent]] = defaultdict(list)
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def start(self) -> None:
        self._channel = await self.broker.new_channel(prefetch=500)
        queue = await self._channel.declare_queue(self.broker.name("test-replies"), durable=True,
                                                  arguments={"x-queue-type": "quorum"})
        await queue.bind(self.broker.name(EVENTS), routing_key="ips.opdracht.#")
        await queue.consume(self._on_message)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        event = CloudEvent.model_validate(json.loads(message.body))
        assert event.causationid is not None
        self.replies[event.causationid].append(event)
        await message.ack()

    async def send(self, type_: str, case: str, data: dict[str, Any], command_id: str | None = None,
                   now: datetime | None = None) -> CloudEvent:
        """Publish a command as the engine does (its ``time`` is the engine's clock: ``now``)."""
        command = new_event(type_, service="process-engine", subject=case,
                            data={**data, "elementId": self.element_id, "attempt": 1},
                            event_id=command_id or str(uuid.uuid4()),
                            now=now or self.now or datetime.now(UTC))
        await self.broker.publish(command, COMMANDS)
        return command

    async def reply(self, command: CloudEvent, timeout: float = 30) -> CloudEvent:
        async def arrived() -> bool:
            return bool(self.replies.get(command.id))

        await eventually(arrived, timeout=timeout, what=f"the reply to {command.type} {command.id}")
        return self.replies[command.id][0]

    async def call(self, type_: str, case: str, data: dict[str, Any], **kw: Any) -> CloudEvent:
        return await self.reply(await self.send(type_, case, data), **kw)
