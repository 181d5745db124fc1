"""servicekit.audit without a database: what a record holds, and that data never leaves unrecorded.

The store is replaced by an in-memory stand-in here only to make its write fail on purpose; the real collection is
exercised in tests/integration/test_logboek.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import Request
from fastapi.testclient import TestClient
from tests.support.tokens import bearer

from servicekit.audit import Logboek, install_logboek, noteer, verwerking
from servicekit.http import create_app

GGZ = bearer("trajectbegeleider-1", "ggz", "12345678", "indiener")


@pytest.fixture(autouse=True)
def development(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens are checked against the development key, as a service in development does."""
    monkeypatch.setenv("IPSFLOW_ENVIRONMENT", "development")


class _Collection:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.inserted: list[dict[str, Any]] = []

    async def insert_one(self, doc: dict[str, Any]) -> None:
        if self.fail:
            raise ConnectionError("database unreachable")
        self.inserted.append(doc)


def _app(fail: bool) -> tuple[TestClient, _Collection]:
    app = create_app("test", "test")
    collection = _Collection(fail)
    install_logboek(app, Logboek({"logboek": collection}, "test"))  # type: ignore[arg-type]

    @app.get("/api/v1/aanvragen/{aanvraag_id}", dependencies=[verwerking("read", "aanvraag", "aanvraag_id")])
    async def lezen(aanvraag_id: str) -> dict[str, str]:
        return {"id": aanvraag_id, "geheim": "gegevens van de aanvraag"}

    @app.get("/api/v1/aanvragen", dependencies=[verwerking("list", "aanvraag")])
    async def lijst(request: Request, status: str | None = None) -> list[str]:
        noteer(request, ids=["A-1", "A-2", "A-1"])
        return ["A-1", "A-2"]

    @app.get("/api/v1/openbaar")
    async def openbaar() -> dict[str, str]:
        return {"ok": "ja"}

    return TestClient(app), collection


def test_a_record_names_who_what_when_the_trace_and_the_outcome() -> None:
    client, collection = _app(fail=False)
    response = client.get("/api/v1/aanvragen/A-1", headers=GGZ)
    assert response.status_code == 200
    [record] = collection.inserted
    assert {k: record[k] for k in ("subject", "org_type", "org", "actie", "resource_type", "resource_id", "status",
                                   "methode", "route")} == {
        "subject": "trajectbegeleider-1", "org_type": "ggz", "org": "12345678", "actie": "read",
        "resource_type": "aanvraag", "resource_id": "A-1", "status": 200, "methode": "GET",
        "route": "/api/v1/aanvragen/{aanvraag_id}"}
    assert record["trace_id"] == response.headers["X-Trace-Id"]
    lijst = client.get("/api/v1/aanvragen", params={"status": "ingediend", "limit": "5"}, headers=GGZ)
    assert lijst.status_code == 200
    assert collection.inserted[-1]["resource_ids"] == ["A-1", "A-2"] and collection.inserted[-1]["aantal"] == 2
    assert collection.inserted[-1]["filter"] == {"status": "ingediend"}


def test_routes_without_a_declaration_and_requests_without_a_person_are_not_recorded() -> None:
    client, collection = _app(fail=False)
    assert client.get("/api/v1/openbaar", headers=GGZ).status_code == 200
    assert client.get("/api/v1/aanvragen/A-1").status_code == 401
    assert collection.inserted == []


@pytest.mark.parametrize("path", ["/api/v1/aanvragen/A-1", "/api/v1/aanvragen"])
def test_when_the_record_cannot_be_written_the_data_is_not_handed_out(path: str) -> None:
    client, _ = _app(fail=True)
    response = client.get(path, headers=GGZ)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert "geheim" not in response.text and "A-1" not in response.text
    assert response.json()["traceId"] == response.headers["X-Trace-Id"]


@pytest.mark.parametrize("value", ["0.0", "1700000000", "0"])
def test_logboek_filters_take_iso_moments_only(value: str) -> None:
    """Regression (fuzzing found it): a number was read as a Unix timestamp and answered 200, while the OpenAPI
    document promises an ISO 8601 date-time."""
    client, _ = _app(fail=False)
    beheer = bearer("beheerder-1", "beheer", "ipsflow", "functioneel-beheerder")
    response = client.get("/api/v1/logboek", params={"van": value}, headers=beheer)
    assert response.status_code == 400
    assert [p["name"] for p in response.json()["invalidParams"]] == ["van"]
    ok = client.get("/api/v1/logboek", params={"van": "2026-03-03T09:00:00+01:00"}, headers=beheer)
    assert ok.status_code != 400
