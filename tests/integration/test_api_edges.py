"""Hard edges of the APIs on real service processes (issue 12, item 5): what an unauthenticated upload costs,
bounded integers, the document cap per application, the batch execution date and the clock's range."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from payments.domain import today_in_amsterdam
from tests.support.ips import ADJUSTABLE, KLOKBEHEER
from tests.support.tokens import bearer

GGZ = bearer("trajectbegeleider-1", "ggz", "12345678", "indiener")
BETAALBEHEER = bearer("uwv-betaal-1", "uwv", "UWV", "betaalbeheerder")
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
APPLICATION = {
    "clientReferentie": "K-7", "bsn": "123456782", "gemeenteCode": "0957", "woongemeenteCode": "0957",
    "trajectType": "EPA", "aanvraagdatum": "2026-03-02", "gewensteStartdatum": "2026-12-01",
    "ggzKvkNummer": "12345678", "ggzAgbCode": "06123456", "ondertekening": {"kandidaat": True, "ggzInstelling": True},
    "modelgetrouwheid": {"certificaatnummer": "PHR-2025-001", "geldigTot": "2027-06-30"},
    "doelgroep": {"uitkering": "bijstand", "wilBetaaldWerk": True, "andereReintegratie": False},
}
UPLOADS, UPLOAD_BYTES = 40, 10 * 1024 * 1024


def memory_mb(pid: int, field: str) -> float:
    """``VmRSS`` (now) or ``VmHWM`` (the peak so far) of a process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no {field}")


def _problem(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert [p["name"] for p in response.json()["invalidParams"]] == [field]


async def test_unauthenticated_uploads_do_not_grow_intake(service):
    """Regression: 40 unauthenticated 10 MB uploads at once took intake from 100 MB to 547 MB of memory (each
    body was buffered whole before the route found there was no token)."""
    intake = service("intake").start()
    pid = intake.proc.pid
    body = b"%PDF-" + b"0" * (UPLOAD_BYTES - 5)
    some_id = "00000000-0000-0000-0000-000000000000"
    limits = httpx.Limits(max_connections=UPLOADS, max_keepalive_connections=UPLOADS)
    async with httpx.AsyncClient(base_url=intake.url, timeout=120, limits=limits) as client:
        await client.get("/api/v1/aanvragen", headers=GGZ)  # warm: the first request imports and allocates
        before = memory_mb(pid, "VmHWM")

        async def upload(i: int) -> httpx.Response:
            headers = {"Content-Type": "application/pdf"}
            if i % 2:
                headers["Authorization"] = "Bearer verzonnen.token.waarde"
            return await client.post(f"/api/v1/aanvragen/{some_id}/documenten", params={"soort": "overig"},
                                     content=body, headers=headers)

        started = time.monotonic()
        responses = await asyncio.gather(*(upload(i) for i in range(UPLOADS)))
        peak = memory_mb(pid, "VmHWM")
    for response in responses:
        assert response.status_code == 401, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
    print(f"\n[api-edges] intake peak RSS {before:.0f} MB -> {peak:.0f} MB with {UPLOADS} unauthenticated "
          f"{UPLOAD_BYTES // 2**20} MB uploads at once ({time.monotonic() - started:.1f} s)")
    assert peak - before < 25, f"intake grew {peak - before:.0f} MB"


def test_integers_are_bounded_and_answered_as_problems(service):
    """Regression: offset=9223372036854775808 reached MongoDB and was answered 500 text/plain."""
    intake = service("intake").start()
    for offset in ("9223372036854775808", "9223372036854775807", "1000001", "-1"):
        response = httpx.get(f"{intake.url}/api/v1/aanvragen", params={"offset": offset}, headers=GGZ, timeout=10)
        _problem(response, 400, "offset")
    assert httpx.get(f"{intake.url}/api/v1/aanvragen", params={"offset": "1000000"}, headers=GGZ,
                     timeout=10).status_code == 200


def test_documents_per_application_are_capped(service):
    """IPSFLOW_INTAKE_MAX_DOCUMENTS (default 20): one more upload is 409; a repeated upload stays idempotent."""
    intake = service("intake", IPSFLOW_INTAKE_MAX_DOCUMENTS="2").start()
    with httpx.Client(base_url=intake.url, timeout=30, headers=GGZ) as client:
        created = client.post("/api/v1/aanvragen", json=APPLICATION)
        assert created.status_code == 201, created.text
        aanvraag_id = created.json()["id"]

        def upload(key: str) -> httpx.Response:
            return client.post(f"/api/v1/aanvragen/{aanvraag_id}/documenten", params={"soort": "overig"},
                               content=PDF, headers={**GGZ, "Content-Type": "application/pdf", "Idempotency-Key": key})

        first, second = upload("een"), upload("twee")
        assert first.status_code == second.status_code == 201, (first.text, second.text)
        third = upload("drie")
        assert third.status_code == 409, third.text
        assert third.headers["content-type"].startswith("application/problem+json")
        assert upload("twee").json()["id"] == second.json()["id"]  # the same upload again is no new document
        detail = client.get(f"/api/v1/aanvragen/{aanvraag_id}").json()
        assert len(detail["documenten"]) == 2


@pytest.mark.parametrize("uitvoerdatum", ["0001-01-01", "yesterday", "next-year-and-a-day", "9999-12-31"])
def test_a_batch_execution_date_lies_between_today_and_a_year_ahead(service, uitvoerdatum):
    """Regression: 0001-01-01 went into the pain.001 file."""
    payments = service("payments").start()
    today = today_in_amsterdam(datetime.now(UTC))  # the service's today: from 23:00 UTC on, the next day
    value = {"yesterday": (today - timedelta(days=1)).isoformat(),
             "next-year-and-a-day": (date(today.year + 1, today.month, min(today.day, 28)) + timedelta(days=4)
                                     ).isoformat()}.get(uitvoerdatum, uitvoerdatum)
    response = httpx.post(f"{payments.url}/api/v1/betaalbatches", json={"uitvoerdatum": value},
                          headers={**BETAALBEHEER, "Idempotency-Key": f"k-{uitvoerdatum}"}, timeout=10)
    _problem(response, 400, "uitvoerdatum")
    # within the range the request goes on (nothing is ready to pay here: 409)
    fine = httpx.post(f"{payments.url}/api/v1/betaalbatches", json={"uitvoerdatum": today.isoformat()},
                      headers={**BETAALBEHEER, "Idempotency-Key": "k-today"}, timeout=10)
    assert fine.status_code == 409, fine.text


def test_the_adjustable_clock_accepts_2019_to_ten_years_ahead(service):
    """Regression: any time was accepted (year 1 or 9999 moved every timer)."""
    engine = service("process_engine", **ADJUSTABLE).start(IPSFLOW_CATALOGUE_FILE="")
    now = datetime.now(UTC)
    for moment in ("0001-01-01T00:00:00+00:00", "2018-12-31T23:59:59+00:00",
                   (now + timedelta(days=3660 + 3)).isoformat(), "9999-01-01T00:00:00+00:00"):
        response = httpx.put(f"{engine.url}/api/v1/beheer/klok", json={"nu": moment}, headers=KLOKBEHEER, timeout=10)
        _problem(response, 400, "nu")
    for moment in ("2019-01-01T00:00:00+00:00", (now + timedelta(days=365 * 9)).isoformat()):
        response = httpx.put(f"{engine.url}/api/v1/beheer/klok", json={"nu": moment}, headers=KLOKBEHEER, timeout=10)
        assert response.status_code == 200, response.text
