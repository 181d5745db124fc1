"""Logboek dataverwerkingen (servicekit.audit) on real service processes, the real broker and FerretDB.

Every read or change of an application by a person leaves one append-only record in the service's own database
(who, which resource, which action, when, the trace id of the response, the status); only beheer reads the log.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
import httpx
import pytest

from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from tests.conftest import eventually
from tests.support.tokens import bearer

GGZ = "12345678"
GGZ_HEADERS = bearer("trajectbegeleider-1", "ggz", GGZ, "indiener")
OTHER_GGZ = bearer("trajectbegeleider-9", "ggz", "87654321", "indiener")
ROERMOND = bearer("behandelaar-roermond", "gemeente", "0957", "behandelaar")
UWV = bearer("budgetbeheerder", "uwv", "UWV", "budgetbeheerder")
BEHEER = bearer("functioneel-beheerder", "beheer", "ipsflow", "functioneel-beheerder")
BSN = "123456782"

VALID: dict[str, Any] = {
    "clientReferentie": "K-7", "bsn": BSN, "gemeenteCode": "0957", "woongemeenteCode": "0957",
    "trajectType": "EPA", "aanvraagdatum": "2026-03-02", "gewensteStartdatum": "2026-12-01", "ggzKvkNummer": GGZ,
    "ondertekening": {"kandidaat": True, "ggzInstelling": True},
    "modelgetrouwheid": {"certificaatnummer": "PHR-2025-001", "geldigTot": "2027-06-30"},
    "doelgroep": {"uitkering": "bijstand", "wilBetaaldWerk": True, "andereReintegratie": False},
}


@pytest.fixture
def intake(service):
    return service("intake").start()


def _db(mongo, namespace: str, service: str):
    return mongo[f"{namespace}ipsflow_{service}".replace(".", "_")]


def logboek(url: str, headers: dict[str, str] | None = None, **params: Any) -> httpx.Response:
    return httpx.get(f"{url}/api/v1/logboek", params=params, headers=BEHEER if headers is None else headers,
                     timeout=10)


def _submit(url: str) -> str:
    response = httpx.post(f"{url}/api/v1/aanvragen", json=VALID, headers=GGZ_HEADERS, timeout=10)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def test_reading_an_application_is_recorded_with_the_trace_id_of_the_response(intake, mongo, namespace):
    aanvraag_id = _submit(intake.url)
    read = httpx.get(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}", headers=GGZ_HEADERS, timeout=10)
    assert read.status_code == 200
    trace_id = read.headers["X-Trace-Id"]

    found = logboek(intake.url, resourceId=aanvraag_id, actie="read")
    assert found.status_code == 200, found.text
    [entry] = found.json()["items"]
    assert entry["traceId"] == trace_id
    assert (entry["subject"], entry["orgType"], entry["organisatie"]) == ("trajectbegeleider-1", "ggz", GGZ)
    assert (entry["resourceType"], entry["resourceId"], entry["status"]) == ("aanvraag", aanvraag_id, 200)
    assert entry["route"] == "/api/v1/aanvragen/{aanvraag_id}" and entry["methode"] == "GET"
    assert datetime.now(UTC) - datetime.fromisoformat(entry["tijdstip"]) < timedelta(minutes=1)

    # the submission, a refused attempt of another ggz and a list are recorded too
    refused = httpx.get(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}", headers=OTHER_GGZ, timeout=10)
    assert refused.status_code in (403, 404)
    listed = httpx.get(f"{intake.url}/api/v1/aanvragen", headers=GGZ_HEADERS, timeout=10)
    assert listed.status_code == 200
    entries = logboek(intake.url, resourceId=aanvraag_id).json()["items"]
    by_trace = {e["traceId"]: e for e in entries}
    assert by_trace[refused.headers["X-Trace-Id"]]["status"] == refused.status_code
    assert by_trace[refused.headers["X-Trace-Id"]]["subject"] == "trajectbegeleider-9"
    listing = by_trace[listed.headers["X-Trace-Id"]]
    assert listing["actie"] == "list" and aanvraag_id in listing["resourceIds"] and listing["aantal"] == 1
    assert [e["actie"] for e in entries][-1] == "create", "newest first; the submission was the first"

    # a document download names the document as the part of the application
    upload = httpx.post(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}/documenten",
                        params={"soort": "overig", "bestandsnaam": "plan.pdf"}, content=b"%PDF-1.4\n%%EOF\n",
                        headers={**GGZ_HEADERS, "Content-Type": "application/pdf"}, timeout=10)
    assert upload.status_code == 201, upload.text
    document_id = upload.json()["id"]
    download = httpx.get(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}/documenten/{document_id}",
                         headers=GGZ_HEADERS, timeout=10)
    assert download.status_code == 200
    [entry] = logboek(intake.url, resourceId=aanvraag_id, actie="download").json()["items"]
    assert entry["onderdeel"] == document_id and entry["traceId"] == download.headers["X-Trace-Id"]
    [entry] = logboek(intake.url, resourceId=aanvraag_id, actie="upload").json()["items"]
    assert entry["onderdeel"] == document_id and entry["status"] == 201


@pytest.mark.parametrize("headers", [GGZ_HEADERS, ROERMOND, UWV])
async def test_only_beheer_reads_the_logboek(intake, headers):
    _submit(intake.url)
    refused = logboek(intake.url, headers)
    assert refused.status_code == 403
    assert refused.headers["content-type"] == "application/problem+json"
    assert logboek(intake.url, {}).status_code == 401


async def test_the_filters_and_the_page_bounds(intake):
    first, second = _submit(intake.url), _submit(intake.url)
    before = datetime.now(UTC)
    for aanvraag_id in (first, second):
        assert httpx.get(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}", headers=ROERMOND, timeout=10).is_success
    after = datetime.now(UTC)

    def ids(**params: Any) -> list[tuple[str, str | None]]:
        response = logboek(intake.url, **params)
        assert response.status_code == 200, response.text
        return [(e["actie"], e.get("resourceId")) for e in response.json()["items"]]

    assert ids(subject="behandelaar-roermond") == [("read", second), ("read", first)]
    assert ids(organisatie="0957", actie="read") == [("read", second), ("read", first)]
    assert ids(organisatie=GGZ, actie="create") == [("create", second), ("create", first)]
    assert ids(resourceId=first, actie="read") == [("read", first)]
    assert ids(actie="read", van=before.isoformat(), tot=after.isoformat()) == [("read", second), ("read", first)]
    assert ids(actie="create", van=after.isoformat()) == []
    assert ids(actie="read", limit=1) == [("read", second)]
    assert ids(actie="read", limit=1, offset=1) == [("read", first)]
    assert ids(subject="niemand") == []
    for bad in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"offset": 10**12}, {"actie": "delete"},
                {"van": "gisteren"}, {"van": "2026-01-01T00:00:00"}):
        response = logboek(intake.url, **bad)
        assert response.status_code == 400, (bad, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    # reading the log is recorded as well (by count: its rows are no application)
    reads_of_the_log = ids(actie="list", subject="functioneel-beheerder")
    assert reads_of_the_log and all(r == ("list", None) for r in reads_of_the_log)


async def test_the_logboek_never_holds_a_bsn(intake, mongo, namespace):
    aanvraag_id = _submit(intake.url)
    httpx.get(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}", headers=GGZ_HEADERS, timeout=10)
    # a BSN typed into a list filter: the filter is recorded, the number is not
    httpx.get(f"{intake.url}/api/v1/aanvragen", params={"zoek": BSN}, headers=GGZ_HEADERS, timeout=10)
    httpx.get(f"{intake.url}/api/v1/aanvragen", params={"zoek": "1234.56.782"}, headers=GGZ_HEADERS, timeout=10)
    # and one typed into a URL: the attempt is recorded, the number is not
    typed = httpx.get(f"{intake.url}/api/v1/aanvragen/{BSN}", headers=GGZ_HEADERS, timeout=10)
    assert typed.status_code == 404
    docs = await _db(mongo, namespace, "intake").logboek.find({}).to_list(None)
    assert len(docs) >= 4
    for doc in docs:
        raw = bson.encode(doc)
        assert BSN.encode() not in raw and b"1234.56.782" not in raw, doc
    assert [d["filter"] for d in docs if d["actie"] == "list" and d["filter"]] == [{"zoek": "[weggelaten]"}] * 2
    assert [d["resource_id"] for d in docs if d["trace_id"] == typed.headers["X-Trace-Id"]] == ["[weggelaten]"]


async def test_unauthenticated_requests_and_service_traffic_are_no_processing_by_a_person(intake, mongo, namespace):
    assert httpx.get(f"{intake.url}/api/v1/aanvragen", timeout=10).status_code == 401
    assert httpx.get(f"{intake.url}/health", timeout=10).status_code == 200
    assert await _db(mongo, namespace, "intake").logboek.count_documents({}) == 0


# ------------------------------------------------------------------------------------------ the other services

async def test_the_engine_records_who_read_a_case(service, settings_for, mongo, namespace):
    from pathlib import Path

    from tests.support.fake_services import FakeServices

    engine = service("process_engine").start(IPSFLOW_BPMN_DIR=str(Path(__file__).resolve().parents[1] / "bpmn"),
                                             IPSFLOW_CATALOGUE_FILE="")
    broker = Broker(settings_for("test-driver"))
    await broker.connect()
    fake = FakeServices(broker)
    await fake.start()
    try:
        await broker.publish(new_event("ips.test.gestart.v1", service="test", subject="zaak-logboek",
                                       data={"aanvraag_id": "L-1", "bedrag": 700_000, "gemeenteCode": "0957"}),
                             EVENTS)
        await broker.publish(new_event("ips.test.bevestigd.v1", service="test", subject="zaak-logboek",
                                       data={"bevestigd": True}), EVENTS)
        user = bearer("behandelaar-1", "gemeente", "0957", "behandelaar")

        async def readable() -> bool:
            return httpx.get(f"{engine.url}/api/v1/zaken/zaak-logboek", headers=user, timeout=10).status_code == 200
        await eventually(readable, timeout=30, what="the case")
        read = httpx.get(f"{engine.url}/api/v1/zaken/zaak-logboek", headers=user, timeout=10)
        weert = httpx.get(f"{engine.url}/api/v1/zaken/zaak-logboek",
                          headers=bearer("weert-1", "gemeente", "0988", "behandelaar"), timeout=10)
        assert weert.status_code == 403
        entries = logboek(engine.url, resourceId="zaak-logboek").json()["items"]
        by_trace = {e["traceId"]: e for e in entries}
        assert by_trace[read.headers["X-Trace-Id"]]["actie"] == "read"
        assert by_trace[read.headers["X-Trace-Id"]]["resourceType"] == "zaak"
        assert by_trace[weert.headers["X-Trace-Id"]]["status"] == 403
        assert logboek(engine.url, user).status_code == 403

        # a work list names the cases it showed; a task is recorded as a part of its case
        async def task_listed() -> bool:
            return bool(httpx.get(f"{engine.url}/api/v1/taken", headers=user, timeout=10).json())
        await eventually(task_listed, timeout=30, what="the user task")
        listed = httpx.get(f"{engine.url}/api/v1/taken", headers=user, timeout=10)
        [task] = listed.json()
        shown = httpx.get(f"{engine.url}/api/v1/taken/{task['id']}", headers=user, timeout=10)
        assert shown.status_code == 200
        by_trace = {e["traceId"]: e for e in logboek(engine.url, resourceId="zaak-logboek").json()["items"]}
        assert by_trace[listed.headers["X-Trace-Id"]]["actie"] == "list"
        assert by_trace[listed.headers["X-Trace-Id"]]["resourceIds"] == ["zaak-logboek"]
        task_read = by_trace[shown.headers["X-Trace-Id"]]
        assert (task_read["actie"], task_read["resourceId"], task_read["onderdeel"]) == ("read", "zaak-logboek",
                                                                                         task["id"])
    finally:
        await fake.stop()
        await broker.close()


@pytest.mark.parametrize(("package", "path", "resource"), [
    ("grants", "/api/v1/beschikkingen/B-onbekend", "beschikking"),
    ("notifications", "/api/v1/berichten/M-onbekend", "bericht"),
])
async def test_grants_and_notifications_record_reads_of_letters(service, package, path, resource):
    svc = service(package).start()
    attempt = httpx.get(f"{svc.url}{path}", headers=ROERMOND, timeout=10)
    assert attempt.status_code == 404
    [entry] = logboek(svc.url, actie="read").json()["items"]
    assert (entry["resourceType"], entry["resourceId"]) == (resource, path.rsplit("/", 1)[1])
    assert entry["status"] == 404 and entry["traceId"] == attempt.headers["X-Trace-Id"]
    assert logboek(svc.url, ROERMOND).status_code == 403
    assert json.dumps(logboek(svc.url).json()).count(BSN) == 0


async def test_ipsflow_logboek_prints_the_records_of_a_service(intake, monkeypatch):
    from typer.testing import CliRunner

    from ipsflow_cli.main import app

    aanvraag_id = _submit(intake.url)
    read = httpx.get(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}", headers=GGZ_HEADERS, timeout=10)
    monkeypatch.delenv("IPSFLOW_TOKEN", raising=False)
    runner = CliRunner()
    as_json = runner.invoke(app, ["logboek", "--url", intake.url, "--resource", aanvraag_id, "--actie", "read",
                                  "--json"])
    assert as_json.exit_code == 0, as_json.output
    [entry] = json.loads(as_json.output)
    assert entry["traceId"] == read.headers["X-Trace-Id"] and entry["subject"] == "trajectbegeleider-1"
    table = runner.invoke(app, ["logboek", "--url", intake.url, "--subject", "trajectbegeleider-1"],
                          env={"COLUMNS": "250"})
    assert table.exit_code == 0, table.output
    assert aanvraag_id in table.output and "create" in table.output and "read" in table.output
    ggz_token = GGZ_HEADERS["Authorization"].removeprefix("Bearer ")
    refused = runner.invoke(app, ["logboek", "--url", intake.url, "--token", ggz_token])
    assert refused.exit_code == 1 and "403" in refused.output
