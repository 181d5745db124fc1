"""Parked messages (dead letters) over AMQP for the console: read them with why they were parked and whose case
they are, without personal data; replay them to their queue with publisher confirms; purge a parking lot.

Reading takes messages off the parking lot and puts every one back (requeue), as ``ipsflow dlq show`` does.
Replaying publishes a copy through ``ips.dlx`` with the consumer queue as routing key (so only that queue gets it,
never the other subscribers of its type), waits for the broker's confirm, and only then acknowledges the parked
original: a crash in between replays a message twice at worst, which the consumers' de-duplication absorbs.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aio_pika
from aio_pika.abc import AbstractIncomingMessage

from servicekit.broker import ATTEMPT_HEADER, DLX, ERROR_HEADER, QUEUE_HEADER
from servicekit.logging import PERSONAL_DATA_KEYS
from servicekit.personal_data import holds_bsn_like_number

#: How many parked messages one page looks through.
PEEK = 200
REPLAYED_HEADER = "x-ipsflow-replayed"
VERBORGEN = "«verborgen»"
#: Keys whose short values say nothing about a person: ids, codes, dates, amounts, kinds. Everything else in a
#: message body is hidden (deny by default); a value with a BSN-like number is hidden whatever its key.
_VEILIG = re.compile(r"(?i)(^|_)(id|code|kenmerk|nummer|type|soort|status|datum|op|attempt|versie|regeling|"
                     r"bedrag|cents|aantal|element|traject)$|(Id|Code|Kenmerk|Nummer|Type|Soort|Status|Datum|Op|"
                     r"Versie|Bedrag|Cents|Aantal)$|^(aanvraag_id|elementId|attempt|regeling|trajectType)$")
_ENVELOPE = ("id", "type", "source", "subject", "time", "correlationid", "causationid", "specversion")


def maskeer(waarde: Any, sleutel: str = "", diepte: int = 0) -> Any:
    """A message body's data as the console shows it: structure and safe values; the rest «verborgen»."""
    if sleutel.lower() in PERSONAL_DATA_KEYS or diepte > 6:
        return VERBORGEN
    if isinstance(waarde, dict):
        return {str(k): maskeer(v, str(k), diepte + 1) for k, v in list(waarde.items())[:50]}
    if isinstance(waarde, list):
        return [maskeer(v, sleutel, diepte + 1) for v in waarde[:20]]
    if waarde is None or isinstance(waarde, bool):
        return waarde
    tekst = str(waarde)
    if not _VEILIG.search(sleutel) or len(tekst) > 80 or holds_bsn_like_number(tekst):
        return VERBORGEN
    return waarde


def _tekst(waarde: Any) -> str:
    tekst = waarde.decode("utf-8", "replace") if isinstance(waarde, bytes) else str(waarde)
    return "«verborgen: bevat mogelijk een BSN»" if holds_bsn_like_number(tekst) else tekst[:300]


def x_death(headers: Mapping[str, Any]) -> list[dict[str, Any]]:
    """RabbitMQ's own record of why a message was dead-lettered: origin queue, reason, count."""
    out = []
    for entry in headers.get("x-death") or []:
        if isinstance(entry, Mapping):
            out.append({"wachtrij": _tekst(entry.get("queue", "")), "reden": _tekst(entry.get("reason", "")),
                        "aantal": entry.get("count", 0), "op": str(entry.get("time", ""))[:19]})
    return out


def herkomst(headers: Mapping[str, Any], queue: str) -> str:
    """The consumer queue a parked message came from: the one the consumer named when it parked it, else the one
    RabbitMQ dead-lettered it from (not a retry tier whose delay merely expired), else the parking lot's own."""
    if headers.get(QUEUE_HEADER):
        return _tekst(headers[QUEUE_HEADER])
    return next((d["wachtrij"] for d in x_death(headers) if d["reden"] != "expired"), queue)


def beschrijf(message: AbstractIncomingMessage, queue: str) -> dict[str, Any]:
    """One parked message as the page shows it (no personal data)."""
    headers = dict(message.headers or {})
    try:
        envelope = json.loads(message.body)
    except ValueError:
        envelope = None
    if not isinstance(envelope, dict):
        envelope = {}
    kop = {k: (_tekst(v) if k.startswith("x-ipsflow-") or k.startswith("x-first-death") or k == "x-delivery-count"
               else VERBORGEN) for k, v in headers.items() if k != "x-death"}
    return {
        "id": message.message_id, "type": envelope.get("type") or message.type, "zaak": envelope.get("subject"),
        "herkomst": herkomst(headers, queue),
        "reden": _tekst(headers.get(ERROR_HEADER, "")), "pogingen": headers.get(ATTEMPT_HEADER, 0),
        "teruggezet": headers.get(REPLAYED_HEADER, 0), "x_death": x_death(headers), "kop": kop,
        "envelop": {k: envelope.get(k) for k in _ENVELOPE if envelope.get(k) is not None},
        "data": maskeer(envelope.get("data")) if "data" in envelope else VERBORGEN,
    }


@dataclass
class Parkeerplaats:
    """The parking lot ``<queue>.dlq`` of one consumer queue (full names, with namespace)."""

    amqp_url: str
    namespace: str
    queue: str

    @property
    def dlq(self) -> str:
        return f"{self.queue}.dlq"

    async def lees(self, limit: int = PEEK) -> tuple[int, list[dict[str, Any]]]:
        """How many messages are parked (exact) and the first ``limit`` of them, all left parked.

        The count comes from the broker's answer to each get (how many are still ready behind it), not from a
        passive declare: for a quorum queue RabbitMQ 3.10 answers that with 0 when its query of the queue takes
        over 250 ms (``rabbit_quorum_queue:stat/1``), which a busy broker does."""
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            dlq = await channel.declare_queue(self.dlq, passive=True)  # refuses a parking lot that does not exist
            held: list[AbstractIncomingMessage] = []
            try:
                achter = 0
                while len(held) < limit:
                    message = await dlq.get(no_ack=False, fail=False)
                    if message is None:
                        achter = 0
                        break
                    held.append(message)
                    achter = message.message_count or 0
                return len(held) + achter, [beschrijf(m, self.queue) for m in held]
            finally:
                for message in held:
                    await message.nack(requeue=True)

    async def terugzetten(self, ids: set[str] | None, limit: int, per_seconde: float,
                          voortgang: Callable[[dict[str, Any]], None] | None = None,
                          bij_start: Callable[[int], None] | None = None) -> list[dict[str, Any]]:
        """Replay parked messages to the consumer queue: those with these message ids (``None``: every one, up to
        ``limit``), at most ``per_seconde`` a second. Each is acknowledged in the parking lot only after the
        broker confirmed its copy. Returns what was replayed (as ``beschrijf`` shows it); ``voortgang`` hears of
        each, ``bij_start`` how many were parked when it began."""
        connection = await aio_pika.connect(self.amqp_url)
        gedaan: list[dict[str, Any]] = []
        async with connection:
            channel = await connection.channel(publisher_confirms=True)
            dlq = await channel.declare_queue(self.dlq, passive=True)
            exchange = await channel.get_exchange(f"{self.namespace}{DLX}", ensure=True)
            overgeslagen: list[AbstractIncomingMessage] = []
            # Only the messages parked when the replay began: the first get says how many stood behind it (a
            # passive declare's count can be a false 0, see ``lees``). One that fails again and is parked anew
            # during the replay waits for the next one.
            bij_begin: int | None = None
            genomen = 0
            try:
                while bij_begin is None or genomen < bij_begin:
                    if len(gedaan) >= limit or (ids is not None and len(gedaan) >= len(ids)):
                        break
                    message = await dlq.get(no_ack=False, fail=False)
                    if message is None:
                        break
                    if bij_begin is None:
                        bij_begin = 1 + (message.message_count or 0)
                        if bij_start:
                            bij_start(bij_begin)
                    genomen += 1
                    if ids is not None and message.message_id not in ids:
                        overgeslagen.append(message)
                        continue
                    beschreven = beschrijf(message, self.queue)
                    headers = {k: v for k, v in (message.headers or {}).items()
                               if k not in (ATTEMPT_HEADER, ERROR_HEADER, "x-death")}
                    headers[REPLAYED_HEADER] = int(str((message.headers or {}).get(REPLAYED_HEADER, 0))) + 1
                    await exchange.publish(
                        aio_pika.Message(message.body, message_id=message.message_id, type=message.type,
                                         correlation_id=message.correlation_id, content_type=message.content_type,
                                         delivery_mode=aio_pika.DeliveryMode.PERSISTENT, headers=headers),
                        routing_key=self.queue, mandatory=True)  # returns after the broker's confirm
                    await message.ack()
                    gedaan.append(beschreven)
                    if voortgang:
                        voortgang(beschreven)
                    await asyncio.sleep(1 / per_seconde)
            finally:
                for message in overgeslagen:
                    await message.nack(requeue=True)
        return gedaan

    async def legen(self) -> int:
        connection = await aio_pika.connect(self.amqp_url)
        async with connection:
            channel = await connection.channel()
            dlq = await channel.declare_queue(self.dlq, passive=True)
            result = await dlq.purge()
            return int(result.message_count or 0)
