"""The ggz's reports during the trajectory over HTTP on a real intake process with the real broker: extension
request, stopbericht deel 1 and beëindigingsverslag (409 unless granted, once where once, 403 for another ggz),
the ips.traject.* events with exactly the catalogue's data, and the letters of the trajectory registered."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from servicekit.broker import Broker
from servicekit.envelope import CloudEvent
from tests.conftest import eventually
from tests.integration.test_intake_commands import EngineStandIn, cleared_outbox
from tests.integration.test_intake_http import (
    BSN,
    GGZ_HEADERS,
    OTHER_GGZ_HEADERS,
    PDF,
    ROERMOND,
    UWV,
    submit,
)

VERLENGING = "ips.traject.verlenging_gevraagd.v1"
STOPBERICHT = "ips.traject.stopbericht.v1"
EINDVERSLAG = "ips.traject.eindverslag_ingediend.v1"
TOEKENNING = {"beschikkingId": "B-1", "kenmerk": "IPS/2026/1", "soort": "toekenning", "datum": "2026-03-20",
              "bezwaartermijnEinde": "2026-05-01", "bedragCents": 1_132_500,
              "tekst": "Besluit: wij verlenen u een subsidie van EUR 11.325,00.\n"}


@pytest.fixture
def intake(service):
    return service("intake").start()


@pytest.fixture
async def engine(settings_for):
    stand_in = EngineStandIn(Broker(settings_for("engine-stand-in")))
    await stand_in.start()
    yield stand_in
    await stand_in.stop()


def _url(intake: Any, aanvraag_id: str, tail: str = "") -> str:
    return f"{intake.url}/api/v1/aanvragen/{aanvraag_id}{tail}"


def verlengen(intake: Any, aanvraag_id: str, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(_url(intake, aanvraag_id, "/verlengingsverzoeken"), json=body or {"maanden": 12},
                      headers=GGZ_HEADERS if headers is None else headers, timeout=10)


def stoppen(intake: Any, aanvraag_id: str, einddatum: str = "2027-06-30",
            headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(_url(intake, aanvraag_id, "/stopberichten"), json={"einddatum": einddatum},
                      headers=GGZ_HEADERS if headers is None else headers, timeout=10)


def eindverslag(intake: Any, aanvraag_id: str, content: bytes = PDF, headers: dict[str, str] | None = None,
                content_type: str = "application/pdf") -> httpx.Response:
    return httpx.post(_url(intake, aanvraag_id, "/eindverslag"), params={"bestandsnaam": "eindverslag.pdf"},
                      content=content, timeout=30,
                      headers={**(GGZ_HEADERS if headers is None else headers), "Content-Type": content_type})


def read(intake: Any, aanvraag_id: str, headers: dict[str, str] = GGZ_HEADERS) -> httpx.Response:
    return httpx.get(_url(intake, aanvraag_id), headers=headers, timeout=10)


async def granted(intake: Any, engine: EngineStandIn, command_id: str = "cmd-toekenning") -> str:
    aanvraag_id = submit(intake.url).json()["id"]
    decided = await engine.ask("ips.aanvraag.besluit_registreren.v1", aanvraag_id, command_id, status="toegekend",
                               beschikking=TOEKENNING)
    assert decided.type == "ips.opdracht.voltooid.v1"
    assert read(intake, aanvraag_id).json()["status"] == "toegekend"
    return aanvraag_id


async def events_of(engine: EngineStandIn, type_: str, aanvraag_id: str, count: int = 1) -> list[CloudEvent]:
    """Wait for ``count`` events of the type for the application, then check no more arrive."""
    def found() -> list[CloudEvent]:
        return [e for e in engine.events if e.type == type_ and e.subject == aanvraag_id]

    async def arrived() -> bool:
        return len(found()) >= count
    await eventually(arrived, timeout=20, what=type_)
    await asyncio.sleep(0.5)
    assert len(found()) == count, f"{type_}: {len(found())} events"
    return found()


def assert_problem(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"


async def test_nothing_to_report_before_the_grant(intake, engine, mongo, namespace):
    aanvraag_id = submit(intake.url).json()["id"]
    assert_problem(verlengen(intake, aanvraag_id), 409)
    assert_problem(stoppen(intake, aanvraag_id), 409)
    assert_problem(eindverslag(intake, aanvraag_id), 409)
    refused = await engine.ask("ips.aanvraag.besluit_registreren.v1", aanvraag_id, "cmd-afwijzing",
                               status="afgewezen", beschikking={**TOEKENNING, "soort": "afwijzing"})
    assert refused.type == "ips.opdracht.voltooid.v1"
    assert_problem(verlengen(intake, aanvraag_id), 409)
    assert_problem(stoppen(intake, aanvraag_id), 409)
    assert_problem(eindverslag(intake, aanvraag_id), 409)
    db = mongo[f"{namespace}ipsflow_intake".replace(".", "_")]
    assert await db.documenten.count_documents({"soort": "beeindigingsverslag"}) == 0, "refused before storing"
    await asyncio.sleep(0.5)
    assert not [e for e in engine.events if e.type.startswith("ips.traject.")]
    assert_problem(verlengen(intake, "bestaat-niet"), 404)
    assert_problem(stoppen(intake, "bestaat-niet"), 404)
    assert_problem(eindverslag(intake, "bestaat-niet"), 404)


async def test_only_the_owning_ggz_reports(intake, engine):
    aanvraag_id = await granted(intake, engine)
    for headers in (OTHER_GGZ_HEADERS, ROERMOND, UWV):
        assert_problem(verlengen(intake, aanvraag_id, headers=headers), 403)
        assert_problem(stoppen(intake, aanvraag_id, headers=headers), 403)
        assert_problem(eindverslag(intake, aanvraag_id, headers=headers), 403)
    for path in ("/verlengingsverzoeken", "/stopberichten", "/eindverslag"):
        assert_problem(httpx.post(_url(intake, aanvraag_id, path), json={}, timeout=10), 401)
    detail = read(intake, aanvraag_id).json()
    assert detail["verlengingsverzoeken"] == [] and "stopbericht" not in detail
    assert detail["documenten"] == [] and [b["soort"] for b in detail["beschikkingen"]] == ["toekenning"]
    await asyncio.sleep(0.5)
    assert not [e for e in engine.events if e.type.startswith("ips.traject.")]


async def test_the_trajectory_from_grant_to_vaststelling(intake, engine, mongo, namespace):
    aanvraag_id = await granted(intake, engine)

    # extension request: validated, If-Match, idempotent with a key, one event with the catalogue's data
    too_long = verlengen(intake, aanvraag_id, {"maanden": 25})
    assert_problem(too_long, 400)
    assert too_long.json()["invalidParams"][0]["name"] == "maanden"
    assert_problem(verlengen(intake, aanvraag_id, {"maanden": 12, "diagnose": "F20"}), 400)
    etag = read(intake, aanvraag_id).headers["ETag"]
    assert_problem(verlengen(intake, aanvraag_id, headers={**GGZ_HEADERS, "If-Match": '"999"'}), 412)
    # free text with a BSN is refused, naming the field and not echoing it (issue 12: free text stays free of it)
    with_bsn = verlengen(intake, aanvraag_id, {"maanden": 12, "toelichting": "K-7 nodig; BSN " + BSN},
                         headers={**GGZ_HEADERS, "If-Match": etag})
    assert_problem(with_bsn, 400)
    assert [(p["name"], p["code"]) for p in with_bsn.json()["invalidParams"]] == [("toelichting", "bevat_bsn")]
    assert BSN not in with_bsn.text
    body = {"maanden": 12, "toelichting": "K-7 heeft nog begeleiding nodig"}
    keyed = {**GGZ_HEADERS, "If-Match": etag, "Idempotency-Key": "verlenging-1"}
    asked = verlengen(intake, aanvraag_id, body, headers=keyed)
    assert asked.status_code == 202, asked.text
    assert asked.headers["ETag"] != etag
    verzoek = asked.json()
    assert verzoek["maanden"] == 12 and verzoek["gevraagdOp"]
    again = verlengen(intake, aanvraag_id, body, headers={**GGZ_HEADERS, "Idempotency-Key": "verlenging-1"})
    assert again.status_code == 202 and again.json() == verzoek
    (event,) = await events_of(engine, VERLENGING, aanvraag_id)
    assert event.data == {"aanvraagId": aanvraag_id, "maanden": 12,
                          "gevraagdOp": verzoek["gevraagdOp"].replace("Z", "+00:00")}
    detail = read(intake, aanvraag_id).json()
    assert detail["status"] == "toegekend"
    assert [v["id"] for v in detail["verlengingsverzoeken"]] == [verzoek["id"]]

    # stopbericht deel 1: not before the start date, once, the status stays toegekend
    early = stoppen(intake, aanvraag_id, "2026-11-30")  # start 2026-12-01
    assert_problem(early, 400)
    assert early.json()["invalidParams"][0]["name"] == "einddatum"
    stopped = stoppen(intake, aanvraag_id, "2027-06-30")
    assert stopped.status_code == 202, stopped.text
    assert stopped.json()["einddatum"] == "2027-06-30" and stopped.headers["ETag"]
    assert_problem(stoppen(intake, aanvraag_id, "2027-07-31"), 409)
    assert_problem(verlengen(intake, aanvraag_id, {"maanden": 3}), 409)
    (event,) = await events_of(engine, STOPBERICHT, aanvraag_id)
    assert event.data == {"aanvraagId": aanvraag_id, "einddatum": "2027-06-30",
                          "gemeldOp": stopped.json()["gemeldOp"].replace("Z", "+00:00")}
    detail = read(intake, aanvraag_id).json()
    assert detail["status"] == "toegekend" and detail["stopbericht"]["einddatum"] == "2027-06-30"

    # beëindigingsverslag: a PDF like uploads, stored and announced once
    assert_problem(eindverslag(intake, aanvraag_id, b"geen pdf"), 400)
    assert_problem(eindverslag(intake, aanvraag_id, content_type="text/plain"), 400)
    key = {**GGZ_HEADERS, "Idempotency-Key": "eindverslag-1"}
    submitted = eindverslag(intake, aanvraag_id, headers=key)
    assert submitted.status_code == 201, submitted.text
    meta = submitted.json()
    assert meta["soort"] == "beeindigingsverslag" and meta["bestandsnaam"] == "eindverslag.pdf"
    assert submitted.headers["Location"].endswith(f"/documenten/{meta['id']}")
    retried = eindverslag(intake, aanvraag_id, headers=key)
    assert retried.status_code == 201 and retried.json() == meta
    assert_problem(eindverslag(intake, aanvraag_id), 409)
    (event,) = await events_of(engine, EINDVERSLAG, aanvraag_id)
    assert event.data == {"aanvraagId": aanvraag_id, "documentId": meta["id"],
                          "ingediendOp": meta["ontvangenOp"].replace("Z", "+00:00")}
    for headers in (GGZ_HEADERS, ROERMOND):
        content = httpx.get(_url(intake, aanvraag_id, f"/documenten/{meta['id']}"), headers=headers, timeout=10)
        assert content.status_code == 200 and content.content == PDF
    assert read(intake, aanvraag_id).json()["eindverslagDocumentId"] == meta["id"]

    # the letters of the trajectory: an extension letter keeps the status, the vaststelling sets it
    letters = [
        (None, {"beschikkingId": "B-2", "kenmerk": "IPS/2026/2", "soort": "verlenging", "tekst": "Verlengd.\n"}),
        ("toegekend", {"beschikkingId": "B-3", "kenmerk": "IPS/2026/3", "soort": "verlenging",
                       "tekst": "Verlengd tot 2027-12-31.\n"}),
        ("vastgesteld", {"beschikkingId": "B-4", "kenmerk": "IPS/2026/4", "soort": "vaststelling",
                         "datum": "2027-08-01", "bedragCents": 188_750, "tekst": "Vastgesteld op EUR 1.887,50.\n"}),
    ]
    for n, (status, letter) in enumerate(letters):
        reply = await engine.ask("ips.aanvraag.besluit_registreren.v1", aanvraag_id, f"cmd-brief-{n}",
                                 status=status, beschikking=letter)
        assert reply.type == "ips.opdracht.voltooid.v1" and reply.data == {}
        expected = "vastgesteld" if status == "vastgesteld" else "toegekend"
        assert read(intake, aanvraag_id).json()["status"] == expected
        if status is None or status == "toegekend":
            assert read(intake, aanvraag_id).json()["besluit"]["kenmerk"] == "IPS/2026/1", "the grant stays"
    detail = read(intake, aanvraag_id).json()
    assert detail["vaststelling"]["bedragCents"] == 188_750 and detail["vaststelling"]["kenmerk"] == "IPS/2026/4"
    assert detail["besluit"] == detail["vaststelling"], "the decision the status stands on"
    # the letters are listed by reference (notifications keeps their one copy); the report is a document
    assert [d["soort"] for d in detail["documenten"]] == ["beeindigingsverslag"]
    assert [b["kenmerk"] for b in detail["beschikkingen"]] == ["IPS/2026/1", "IPS/2026/2", "IPS/2026/3",
                                                              "IPS/2026/4"]
    ids = [TOEKENNING["beschikkingId"]] + [letter["beschikkingId"] for _, letter in letters]
    assert [(b["beschikkingId"], b["brief"]) for b in detail["beschikkingen"]] == [
        (i, f"/api/v1/brieven/{i}") for i in ids]
    assert all(b.get("documentId") is None for b in detail["beschikkingen"])
    assert_problem(eindverslag(intake, aanvraag_id), 409)

    # no personal data in any event; nothing left in the outbox; no duplicate documents
    published = "".join(e.model_dump_json() for e in engine.events)
    assert BSN not in published and "K-7" not in published and "begeleiding" not in published
    db = mongo[f"{namespace}ipsflow_intake".replace(".", "_")]
    assert await db.documenten.count_documents({"aanvraag_id": aanvraag_id}) == 1, "the report; no letter copies"
    stored = await cleared_outbox(db.aanvragen, aanvraag_id)
    assert stored["outbox"] == []
    for type_ in (VERLENGING, STOPBERICHT, EINDVERSLAG):
        await events_of(engine, type_, aanvraag_id)
