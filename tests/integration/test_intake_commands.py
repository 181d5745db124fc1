"""The engine's commands to intake over the real broker: one reply each, a redelivery has no second effect,
and the ggz then reads status and decision documents over HTTP."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aio_pika
import httpx
import pytest

from servicekit.broker import COMMANDS, EVENTS, Broker
from servicekit.envelope import CloudEvent, new_event
from servicekit.kalender import termijn_einde
from tests.conftest import eventually
from tests.integration.test_intake_http import BSN, GGZ_HEADERS, ROERMOND, VALID, WEERT, submit, upload
from tests.support.queues import parked_ids


async def cleared_outbox(collection: Any, doc_id: str) -> Any:
    """The document once the relay has cleared its published outbox (it does so a moment after publishing, unless
    a write of the document took the entries along first: servicekit.relay)."""
    found: dict[str, Any] = {}

    async def cleared() -> bool:
        found["doc"] = await collection.find_one({"_id": doc_id})
        return found["doc"] is not None and not found["doc"].get("has_outbox")

    await eventually(cleared, timeout=20, what=f"the outbox of {doc_id} cleared")
    return found["doc"]


ENGINE_CLOCK = datetime(2026, 3, 2, 23, 30, tzinfo=UTC)  # already 3 March in Amsterdam
AMSTERDAM = ZoneInfo("Europe/Amsterdam")


class EngineStandIn:
    """Publishes commands like the process engine and records every event intake publishes."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.events: list[CloudEvent] = []
        self._channel: aio_pika.abc.AbstractChannel | None = None

    async def start(self) -> None:
        await self.broker.connect()
        self._channel = await self.broker.new_channel(prefetch=100)
        queue = await self._channel.declare_queue(self.broker.name("engine-stand-in"), exclusive=True)
        for key in ("ips.opdracht.#", "ips.aanvraag.#", "ips.traject.#"):
            await queue.bind(self.broker.name(EVENTS), routing_key=key)
        await queue.consume(self._on_message, no_ack=True)

    async def _on_message(self, message: aio_pika.abc.AbstractIncomingMessage) -> None:
        self.events.append(CloudEvent.model_validate(json.loads(message.body)))

    async def command(self, type_: str, aanvraag_id: str, command_id: str, clock: datetime = ENGINE_CLOCK,
                      **params: Any) -> CloudEvent:
        cmd = new_event(type_, service="process_engine", subject=aanvraag_id, event_id=command_id,
                        data={"aanvraag_id": aanvraag_id, "elementId": "Task_x", "attempt": 1, **params},
                        now=clock)
        await self.broker.publish(cmd, COMMANDS)
        return cmd

    def replies_to(self, command_id: str) -> list[CloudEvent]:
        return [e for e in self.events if e.causationid == command_id]

    async def ask(self, type_: str, aanvraag_id: str, command_id: str, clock: datetime = ENGINE_CLOCK,
                  **params: Any) -> CloudEvent:
        """Send the command twice (a redelivery), wait for the answer and check there is only one."""
        await self.command(type_, aanvraag_id, command_id, clock, **params)

        async def answered() -> bool:
            return bool(self.replies_to(command_id))
        await eventually(answered, timeout=20, what=f"the reply to {type_}")
        await self.command(type_, aanvraag_id, command_id, clock, **params)
        await asyncio.sleep(1.0)
        replies = self.replies_to(command_id)
        assert len(replies) == 1, f"{type_}: {len(replies)} replies"
        assert replies[0].id == f"{command_id}:antwoord" and replies[0].subject == aanvraag_id
        return replies[0]

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()
        await self.broker.close()


@pytest.fixture
async def engine(settings_for):
    stand_in = EngineStandIn(Broker(settings_for("engine-stand-in")))
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def _read(url: str, aanvraag_id: str, headers: dict[str, str] = GGZ_HEADERS) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/aanvragen/{aanvraag_id}", headers=headers, timeout=10)


async def test_incomplete_application_repaired_forwarded_and_decided(service, engine, mongo, namespace):
    intake = service("intake").start()
    incomplete = {k: v for k, v in VALID.items() if k != "modelgetrouwheid"}
    aanvraag_id = submit(intake.url, incomplete).json()["id"]
    assert upload(intake.url, aanvraag_id).status_code == 201

    async def submitted_event() -> bool:
        return any(e.type == "ips.aanvraag.ingediend.v1" for e in engine.events)
    await eventually(submitted_event, what="ips.aanvraag.ingediend.v1")
    ingediend = next(e for e in engine.events if e.type == "ips.aanvraag.ingediend.v1")
    assert ingediend.subject == aanvraag_id
    assert set(ingediend.data) == {"aanvraagId", "gemeenteCode", "woongemeenteCode", "trajectType", "aanvraagdatum",
                                   "gewensteStartdatum", "ggzKvkNummer", "ontvangenOp"}
    assert BSN not in ingediend.model_dump_json() and "K-7" not in ingediend.model_dump_json()
    ontvangen_op = ingediend.data["ontvangenOp"]

    check = await engine.ask("ips.aanvraag.volledigheid_controleren.v1", aanvraag_id, "cmd-volledig-1")
    assert check.type == "ips.opdracht.voltooid.v1"
    assert check.data["volledig"] is False and check.data["volledigOntvangenOp"] is None
    assert [m["code"] for m in check.data["ontbrekend"]] == ["modelgetrouwheidscertificaat"]
    assert check.data["criteria"] == {"doelgroep": True, "wilBetaaldWerk": True, "geenAnderTraject": True,
                                      "certificaatGeldigTot": None}

    # asked now (the ggz supplements on the real clock, within the repair period)
    now = datetime.now(UTC)
    gevraagd = now.astimezone(AMSTERDAM).date()
    uiterlijk = termijn_einde(gevraagd + timedelta(days=14)).isoformat()  # moved past a weekend or holiday (Atw)
    herstel = await engine.ask("ips.aanvraag.herstel_vragen.v1", aanvraag_id, "cmd-herstel-1", now,
                               ontbrekend=check.data["ontbrekend"], hersteltermijn="P14D")
    assert herstel.data == {"uiterlijk": uiterlijk, "gevraagdOp": gevraagd.isoformat()}
    detail = _read(intake.url, aanvraag_id).json()
    assert detail["status"] == "aanvulling_gevraagd"
    assert detail["herstel"]["uiterlijk"] == uiterlijk

    supplement = httpx.post(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}/aanvullingen",
                            json={"modelgetrouwheid": {"certificaatnummer": "PHR-9", "geldigTot": "2027-06-30"}},
                            headers=GGZ_HEADERS, timeout=10)
    assert supplement.status_code == 200, supplement.text
    assert supplement.json()["status"] == "aangevuld"

    async def supplemented_event() -> bool:
        return any(e.type == "ips.aanvraag.aangevuld.v1" for e in engine.events)
    await eventually(supplemented_event, what="ips.aanvraag.aangevuld.v1")
    aangevuld = next(e for e in engine.events if e.type == "ips.aanvraag.aangevuld.v1")
    assert aangevuld.data == {"aanvraagId": aanvraag_id, "aangevuldOp": aangevuld.data["aangevuldOp"]}

    complete = await engine.ask("ips.aanvraag.volledigheid_controleren.v1", aanvraag_id, "cmd-volledig-2")
    assert complete.data["volledig"] is True
    assert complete.data["volledigOntvangenOp"] == aangevuld.data["aangevuldOp"] != ontvangen_op
    assert complete.data["criteria"]["certificaatGeldigTot"] == "2027-06-30"
    assert _read(intake.url, aanvraag_id).json()["status"] == "in_behandeling"

    mededeling = {"beschikkingId": "B-1", "kenmerk": "IPS/2026/1", "soort": "doorzending", "datum": "2026-03-03",
                  "tekst": "Wij hebben uw aanvraag doorgezonden naar de gemeente Weert.\n"}
    forwarded = await engine.ask("ips.aanvraag.doorzenden.v1", aanvraag_id, "cmd-doorzenden-1",
                                 naar_gemeente_code="0988", mededeling=mededeling)
    assert forwarded.data == {"gemeenteCode": "0988", "doorgezondenVan": "0957"}
    detail = _read(intake.url, aanvraag_id).json()
    assert (detail["status"], detail["gemeenteCode"], detail["doorgezondenVan"]) == ("doorgezonden", "0988", "0957")
    assert detail["ontvangenOp"].replace("Z", "+00:00") == ontvangen_op, "the original receipt is kept"
    # the forwarding gemeente keeps its own record (issue 13.3): that it forwarded, to whom, and the notice only
    record = _read(intake.url, aanvraag_id, ROERMOND)
    assert record.status_code == 200
    assert (record.json()["status"], record.json()["doorgezondenNaar"]) == ("doorgezonden", "0988")
    assert record.json()["documenten"] == [] and "clientReferentie" not in record.json()
    assert _read(intake.url, aanvraag_id, WEERT).status_code == 200
    # the notice is listed by reference: notifications keeps the one copy of its text and PDF
    (notice,) = detail["beschikkingen"]
    assert (notice["soort"], notice["beschikkingId"], notice["brief"]) == ("doorzending", "B-1", "/api/v1/brieven/B-1")
    assert notice.get("documentId") is None and [d["soort"] for d in detail["documenten"]] == ["aanvraagformulier"]

    beschikking = {"beschikkingId": "B-2", "kenmerk": "IPS/2026/2", "soort": "toekenning", "datum": "2026-03-20",
                   "bezwaartermijnEinde": "2026-05-01", "bedragCents": 1_132_500,
                   "tekst": "Besluit: wij verlenen u een subsidie van EUR 11.325,00.\n"}
    decided = await engine.ask("ips.aanvraag.besluit_registreren.v1", aanvraag_id, "cmd-besluit-1",
                               status="toegekend", beschikking=beschikking)
    assert decided.type == "ips.opdracht.voltooid.v1" and decided.data == {}
    detail = _read(intake.url, aanvraag_id).json()
    assert detail["status"] == "toegekend"
    besluit = detail["besluit"]
    assert {k: besluit[k] for k in ("soort", "datum", "bezwaartermijnEinde", "bedragCents")} == {
        "soort": "toekenning", "datum": "2026-03-20", "bezwaartermijnEinde": "2026-05-01", "bedragCents": 1_132_500}
    assert (besluit["beschikkingId"], besluit["brief"], besluit["kenmerk"]) == (
        "B-2", "/api/v1/brieven/B-2", "IPS/2026/2")
    assert besluit.get("documentId") is None and [b["soort"] for b in detail["beschikkingen"]] == [
        "doorzending", "toekenning"]
    withdraw = httpx.post(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}/intrekking", headers=GGZ_HEADERS, timeout=10)
    assert withdraw.status_code == 409

    db = mongo[f"{namespace}ipsflow_intake".replace(".", "_")]
    assert await db.documenten.count_documents({}) == 1, "the upload only: intake keeps no copy of a letter"
    stored = await cleared_outbox(db.aanvragen, aanvraag_id)
    assert "Besluit: wij verlenen" not in repr(stored) and "doorgezonden naar" not in repr(stored)
    assert stored["outbox"] == [] and BSN not in repr(stored)
    assert BSN not in "".join(e.model_dump_json() for e in engine.events)


async def test_supplement_after_the_repair_deadline_is_refused(service, engine, mongo, namespace):
    intake = service("intake").start()
    aanvraag_id = submit(intake.url, {k: v for k, v in VALID.items() if k != "modelgetrouwheid"}).json()["id"]
    asked_long_ago = datetime.now(UTC) - timedelta(days=30)
    herstel = await engine.ask("ips.aanvraag.herstel_vragen.v1", aanvraag_id, "cmd-herstel-laat", asked_long_ago,
                               ontbrekend=[{"code": "modelgetrouwheidscertificaat"}], hersteltermijn="P14D")
    gevraagd = asked_long_ago.astimezone(AMSTERDAM).date()
    uiterlijk = termijn_einde(gevraagd + timedelta(days=14)).isoformat()
    assert herstel.data == {"uiterlijk": uiterlijk, "gevraagdOp": gevraagd.isoformat()}
    before = _read(intake.url, aanvraag_id)

    late = httpx.post(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}/aanvullingen",
                      json={"modelgetrouwheid": {"certificaatnummer": "PHR-9", "geldigTot": "2027-06-30"}},
                      headers={**GGZ_HEADERS, "Idempotency-Key": "te-laat"}, timeout=10)
    assert late.status_code == 409, late.text
    assert late.headers["content-type"] == "application/problem+json"
    assert "hersteltermijn" in late.json()["detail"]
    after = _read(intake.url, aanvraag_id)
    assert after.json()["status"] == "aanvulling_gevraagd" and "aangevuldOp" not in after.json()
    assert after.headers["ETag"] == before.headers["ETag"], "nothing stored"
    stored = await mongo[f"{namespace}ipsflow_intake".replace(".", "_")].aanvragen.find_one({"_id": aanvraag_id})
    assert stored["modelgetrouwheid"] is None and not stored.get("idempotency_keys")
    await asyncio.sleep(0.5)
    assert not any(e.type == "ips.aanvraag.aangevuld.v1" for e in engine.events)


async def test_a_benefit_outside_the_target_group_fails_the_doelgroep_criterion(service, engine):
    intake = service("intake").start()
    aanvraag_id = submit(intake.url, {**VALID, "doelgroep": {**VALID["doelgroep"], "uitkering": "ww"}}).json()["id"]
    check = await engine.ask("ips.aanvraag.volledigheid_controleren.v1", aanvraag_id, "cmd-volledig-ww")
    assert check.type == "ips.opdracht.voltooid.v1"
    assert check.data["criteria"]["doelgroep"] is False


async def test_withdrawn_application_still_records_the_decision(service, engine):
    intake = service("intake").start()
    aanvraag_id = submit(intake.url).json()["id"]
    withdrawn = httpx.post(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}/intrekking", headers=GGZ_HEADERS,
                           timeout=10)
    assert withdrawn.status_code == 200

    async def withdrawn_event() -> bool:
        return any(e.type == "ips.aanvraag.ingetrokken.v1" for e in engine.events)
    await eventually(withdrawn_event, what="ips.aanvraag.ingetrokken.v1")
    await engine.ask("ips.aanvraag.besluit_registreren.v1", aanvraag_id, "cmd-besluit-x", status="niet_behandeld",
                     beschikking={"soort": "niet_behandelen", "kenmerk": "IPS/2026/9", "tekst": "Niet behandeld."})
    detail = _read(intake.url, aanvraag_id).json()
    assert detail["status"] == "ingetrokken" and detail["besluit"]["soort"] == "niet_behandelen"


async def test_commands_that_can_never_be_handled_are_parked(service, engine, settings_for):
    service("intake").start()
    await engine.command("ips.aanvraag.volledigheid_controleren.v1", "bestaat-niet", "cmd-onbekend")
    await engine.command("ips.aanvraag.herstel_vragen.v1", "bestaat-niet", "cmd-slecht", hersteltermijn="twee weken")
    dlq = engine.broker.name("intake.dlq")

    async def parked() -> bool:
        return sorted(await parked_ids(settings_for("probe").amqp_url, dlq)) == ["cmd-onbekend", "cmd-slecht"]
    await eventually(parked, timeout=20, what="both commands in intake.dlq")
    assert engine.replies_to("cmd-onbekend") == [] and engine.replies_to("cmd-slecht") == []
