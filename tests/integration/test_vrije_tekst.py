"""Free text stays free of personal data (issue 12, item 4), on every real service, the broker and FerretDB.

Before: a motivering holding a BSN flowed into the case variables a ggz reads, the beschikking text, the intake
document and three AMQP commands (only notifications blocked the letter, which then was never sent); a
clientReferentie holding one was stored and its event published. Now both are refused with 400 naming the field,
and the number is nowhere: not in any database of the namespace, not on the broker.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from pathlib import Path
from typing import Any

import aio_pika
import bson
import httpx
import pytest

from process_engine.packed import INSTANCE_PACKING
from process_engine.runtime import STATE_FORMAT
from servicekit.broker import COMMANDS, EVENTS, Broker
from servicekit.zaakvariabelen import ENGINE_INTERN, INTERN, ZICHTBAAR
from tests.support.ips import ROERMOND, application, ggz, official, start_ips

# The client's own BSN in the applications is 111222333 (tests/support/ips.py); this is another test number.
BSN = "123456782"
WRITTEN = ("123456782", "1234.56.782", "123 456 782")
DECIDER = ("toekenning", "afwijzing", "verdaging", "niet_behandelen")


class Tap:
    """A queue on the namespace's command and event exchanges that keeps every message body."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.bodies: list[bytes] = []

    async def start(self) -> None:
        channel = await self.broker.new_channel(prefetch=100)
        queue = await channel.declare_queue(self.broker.name("vrije-tekst-tap"), durable=True,
                                            arguments={"x-queue-type": "quorum"})
        for exchange in (COMMANDS, EVENTS):
            await queue.bind(self.broker.name(exchange), routing_key="#")

        async def keep(message: aio_pika.abc.AbstractIncomingMessage) -> None:
            self.bodies.append(message.body)
            await message.ack()

        await queue.consume(keep)

    def types(self) -> list[str]:
        return [json.loads(b)["type"] for b in self.bodies]


@pytest.fixture
async def tap(settings_for):
    broker = Broker(settings_for("test-tap"))
    await broker.connect()
    found = Tap(broker)
    await found.start()
    yield found
    await broker.close()


def _holds(value: Any, needles: tuple[str, ...]) -> bool:
    """Whether a stored value holds one of the needles, also inside gzipped blobs (the engine's Spiff state)."""
    if isinstance(value, dict):
        return any(_holds(v, needles) for v in value.values())
    if isinstance(value, list):
        return any(_holds(v, needles) for v in value)
    if isinstance(value, bytes | bson.Binary):
        raw = bytes(value)
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        elif raw.startswith(STATE_FORMAT):  # the engine's state since issue 14
            raw = zlib.decompress(raw[len(STATE_FORMAT):])
        else:
            try:  # a packed body (servicekit.store.Packing): a BSON document, its own state blob inside
                return _holds(bson.decode(raw), needles)
            except Exception:  # not BSON: its bytes as they are
                pass
        return any(n.encode() in raw for n in needles)
    return isinstance(value, str) and any(n in value for n in needles)


async def _stored_anywhere(mongo, namespace: str, needles: tuple[str, ...]) -> list[str]:
    prefix = namespace.replace(".", "_")
    found = []
    for name in await mongo.list_database_names():
        if not name.startswith(prefix):
            continue
        db = mongo[name]
        for collection in await db.list_collection_names():
            async for doc in db[collection].find({}):
                if _holds(doc, needles):
                    found.append(f"{name}.{collection}/{doc.get('_id')}")
    return found


def _refused(response: httpx.Response, field: str) -> None:
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert [(p["name"], p["code"]) for p in response.json()["invalidParams"]] == [(field, "bevat_bsn")]
    assert not any(w in response.text for w in WRITTEN), "the value is never echoed"


async def test_a_bsn_in_the_motivering_is_refused_and_reaches_no_variable_letter_document_or_command(
        service, tap, mongo, namespace):
    ips = start_ips(service)
    try:
        case_id = await ips.submit(application())
        decider = official(ROERMOND, DECIDER)
        task = await ips.wait_task(case_id, decider)
        for written in WRITTEN:
            _refused(await ips.decide(task["id"], decider, besluit="toekennen",
                                      motivering=f"Akkoord; de kandidaat (BSN {written}) voldoet."), "motivering")
        still = await ips.wait_task(case_id, decider)
        assert still["id"] == task["id"], "the task is still open: nothing was completed"

        done = await ips.decide(task["id"], decider, besluit="toekennen",
                                motivering="Akkoord; voldoet aan de regeling.")
        assert done.status_code == 200, done.text
        aanvraag = await ips.wait_status(case_id, "toegekend", timeout=90)
        letter = await ips.letter_text(aanvraag["besluit"]["beschikkingId"])
        assert "Akkoord; voldoet aan de regeling." in letter
        await asyncio.sleep(1)  # let the last commands and replies pass the tap

        assert await _stored_anywhere(mongo, namespace, WRITTEN) == []
        assert "ips.beschikking.opstellen.v1" in tap.types() and "ips.bericht.versturen.v1" in tap.types()
        assert not [b for b in tap.bodies if any(w.encode() in b for w in WRITTEN)]

        # the case API: a ggz reads its case without the official's working data, the gemeente with it
        as_ggz = await ips.client.get(f"{ips.engine}/api/v1/zaken/{case_id}", headers=ggz())
        assert as_ggz.status_code == 200, as_ggz.text
        seen_by_ggz = set(as_ggz.json()["variabelen"])
        assert {"motivering", "besluit", "ondertekenaar", "reservering"}.isdisjoint(seen_by_ggz)
        assert {"aanvraag", "beschikking", "beslisdatum"} <= seen_by_ggz
        assert seen_by_ggz <= ZICHTBAAR["ips_traject"]["ggz"]
        as_gemeente = await ips.client.get(f"{ips.engine}/api/v1/zaken/{case_id}", headers=decider)
        assert as_gemeente.json()["variabelen"]["motivering"] == "Akkoord; voldoet aan de regeling."

        # every variable the running case really holds is on the allow-list or internal (nothing merged silently)
        engine_db = mongo[f"{namespace}ipsflow_process_engine".replace(".", "_")]
        stored = (await engine_db.instances.find_one({"_id": case_id})  # or moved there when it ended
                  or await engine_db.closed_instances.find_one({"_id": case_id}))
        INSTANCE_PACKING.unpack(stored, engine_db.instances.codec_options)  # a closed copy is plain: unchanged
        known = set().union(*ZICHTBAAR["ips_traject"].values()) | INTERN["ips_traject"] | ENGINE_INTERN
        assert set(stored["variables"]) <= known, set(stored["variables"]) - known
    finally:
        await ips.close()


async def test_a_bsn_as_client_referentie_is_refused_and_nothing_is_stored_or_published(service, tap, mongo,
                                                                                       namespace):
    intake = service("intake").start()
    headers = ggz()
    for written in ("123456782", "1234.56.782"):
        response = httpx.post(f"{intake.url}/api/v1/aanvragen", json=application(clientReferentie=written),
                              headers=headers, timeout=10)
        _refused(response, "clientReferentie")
    # an Idempotency-Key is stored with the application too
    keyed = httpx.post(f"{intake.url}/api/v1/aanvragen", json=application(clientReferentie="KND-122"),
                       headers={**headers, "Idempotency-Key": "aanvraag-123456782"}, timeout=10)
    _refused(keyed, "idempotency-key")
    fine = httpx.post(f"{intake.url}/api/v1/aanvragen", json=application(clientReferentie="KND-123"),
                      headers=headers, timeout=10)
    assert fine.status_code == 201, fine.text

    # the valid application is also numbered in the order of receipt (its volgnummer announcement carries no
    # free text); the refused ones are neither published nor numbered
    volgnummer = "ips.aanvraag.volgnummer_toegekend.v1"

    async def published() -> list[str]:
        for _ in range(100):
            if "ips.aanvraag.ingediend.v1" in tap.types() and volgnummer in tap.types():
                break
            await asyncio.sleep(0.1)
        return tap.types()

    types = await published()
    assert types.count(volgnummer) == 1, types
    assert [t for t in types if t != volgnummer] == ["ips.aanvraag.ingediend.v1"], "only the valid one is published"
    db = mongo[f"{namespace}ipsflow_intake".replace(".", "_")]
    assert await db.aanvragen.count_documents({}) == 1
    assert await _stored_anywhere(mongo, namespace, ("123456782", "1234.56.782")) == []
    assert not [b for b in tap.bodies if b"123456782" in b or b"1234.56.782" in b]


def test_the_tap_and_scan_helpers_see_a_bsn(tmp_path: Path) -> None:
    blob = bson.Binary(gzip.compress(json.dumps({"motivering": "BSN 1234.56.782"}).encode()))
    assert _holds({"state": blob}, WRITTEN)
    state = bson.Binary(STATE_FORMAT + zlib.compress(json.dumps({"motivering": "BSN 1234.56.782"}).encode(), 1))
    assert _holds({"state": state}, WRITTEN)
    body = INSTANCE_PACKING.pack({"_id": "z", "state": state}, bson.DEFAULT_CODEC_OPTIONS)
    assert "state" not in body and _holds(body, WRITTEN)  # inside the packed body, inside its compressed state
    assert _holds({"a": [{"b": "x 123456782"}]}, WRITTEN)
    assert not _holds({"a": "111222333", "b": 123456782}, WRITTEN)
