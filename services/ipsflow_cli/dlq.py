"""Parking-lot operations over AMQP (exact, unlike the management API's sampled statistics)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import aio_pika

from servicekit.broker import ATTEMPT_HEADER, DLX, ERROR_HEADER


async def peek(amqp_url: str, queue: str, limit: int) -> list[dict[str, Any]]:
    """Read up to ``limit`` parked messages and leave them parked (all are requeued at the end)."""
    connection = await aio_pika.connect(amqp_url)
    rows: list[dict[str, Any]] = []
    async with connection:
        channel = await connection.channel()
        dlq = await channel.get_queue(f"{queue}.dlq", ensure=True)
        held = []
        for _ in range(limit):
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            held.append(message)
            headers = message.headers or {}
            try:
                envelope = json.loads(message.body)
                subject, type_ = envelope.get("subject"), envelope.get("type")
            except (ValueError, AttributeError):
                subject, type_ = None, message.type or "(onleesbaar)"
            rows.append({"id": message.message_id, "type": type_, "subject": subject,
                         "attempts": headers.get(ATTEMPT_HEADER, 0), "reason": headers.get(ERROR_HEADER, "")})
        for message in held:
            await message.nack(requeue=True)
    return rows


async def replay(amqp_url: str, queue: str, namespace: str, limit: int,
                 progress: Callable[[int], None] | None = None) -> int:
    """Move parked messages back to ``queue`` through ``ips.dlx`` (routing key = the queue itself).

    Each message is acknowledged in the dlq only after the broker confirmed its re-publication, so a
    crash half-way loses nothing (at worst one message is replayed twice, which consumers tolerate). Only the
    messages parked when it began (the first get says how many stand behind it): one that fails again and is
    parked anew during the replay waits for the next one instead of going round until ``limit``.
    """
    connection = await aio_pika.connect(amqp_url)
    moved = 0
    async with connection:
        channel = await connection.channel(publisher_confirms=True)
        dlq = await channel.get_queue(f"{queue}.dlq", ensure=True)
        exchange = await channel.get_exchange(f"{namespace}{DLX}", ensure=True)
        at_start: int | None = None
        while moved < limit and (at_start is None or moved < at_start):
            message = await dlq.get(no_ack=False, fail=False)
            if message is None:
                break
            if at_start is None:
                at_start = 1 + (message.message_count or 0)
            headers = {k: v for k, v in (message.headers or {}).items() if k not in (ATTEMPT_HEADER, ERROR_HEADER)}
            headers["x-ipsflow-replayed"] = int(str((message.headers or {}).get("x-ipsflow-replayed", 0))) + 1
            await exchange.publish(
                aio_pika.Message(message.body, message_id=message.message_id, type=message.type,
                                 correlation_id=message.correlation_id, content_type=message.content_type,
                                 delivery_mode=aio_pika.DeliveryMode.PERSISTENT, headers=headers),
                routing_key=queue, mandatory=True)
            await message.ack()
            moved += 1
            if progress and moved % 100 == 0:
                progress(moved)
    return moved


async def purge(amqp_url: str, queue: str) -> int:
    connection = await aio_pika.connect(amqp_url)
    async with connection:
        channel = await connection.channel()
        dlq = await channel.get_queue(f"{queue}.dlq", ensure=True)
        result = await dlq.purge()
        return int(result.message_count or 0)
