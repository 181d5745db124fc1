"""The intake API refuses bad input with 400 problem+json naming the field, and stores nothing."""

from __future__ import annotations

import httpx
import pytest

VALID = {"clientReferentie": "K-7", "gemeenteCode": "0957", "trajectType": "EPA",
         "gewensteStartdatum": "2026-12-01", "ggzKvkNummer": "12345678"}


@pytest.fixture
def intake(service):
    return service("intake").start()


async def _count(mongo, namespace) -> int:
    return await mongo[f"{namespace}ipsflow_intake".replace(".", "_")].aanvragen.count_documents({})


@pytest.mark.parametrize(("body", "field", "code"), [
    (b'{"clientReferentie": "K-7", ', "body", "json_invalid"),
    ({**VALID, "gemeenteCode": 957}, "gemeenteCode", "string_type"),
    ({**VALID, "gewensteStartdatum": "morgen"}, "gewensteStartdatum", "date_from_datetime_parsing"),
    ({**VALID, "trajectType": "PTSS"}, "trajectType", "literal_error"),
    ({**VALID, "nationaliteit": "NL"}, "nationaliteit", "extra_forbidden"),
    ({**VALID, "geslacht": "v"}, "geslacht", "extra_forbidden"),
    ({k: v for k, v in VALID.items() if k != "ggzKvkNummer"}, "ggzKvkNummer", "missing"),
    ({**VALID, "toelichting": "x" * 2001}, "toelichting", "string_too_long"),
    ({**VALID, "toelichting": "x" * 70_000}, "body", "too_large"),
])
async def test_bad_input_is_400_problem_naming_the_field(intake, mongo, namespace, body, field, code):
    before = await _count(mongo, namespace)
    kwargs = {"content": body, "headers": {"content-type": "application/json"}} if isinstance(body, bytes) \
        else {"json": body}
    response = httpx.post(f"{intake.url}/api/v1/aanvragen", timeout=10, **kwargs)
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert {"name": field, "code": code} in [{"name": p["name"], "code": p["code"]} for p in problem["invalidParams"]]
    assert "NL" not in response.text or field != "nationaliteit", "input values are never echoed"
    assert await _count(mongo, namespace) == before, "nothing stored"


async def test_valid_submission_is_stored_and_idempotent_with_key(intake, mongo, namespace):
    headers = {"Idempotency-Key": "portal-42"}
    first = httpx.post(f"{intake.url}/api/v1/aanvragen", json=VALID, headers=headers, timeout=10)
    again = httpx.post(f"{intake.url}/api/v1/aanvragen", json=VALID, headers=headers, timeout=10)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert first.headers["API-Version"] == "1.0.0"
    assert await _count(mongo, namespace) == 1
    other = httpx.post(f"{intake.url}/api/v1/aanvragen", json={**VALID, "trajectType": "CMD"}, headers=headers,
                       timeout=10)
    assert other.status_code == 422
    read = httpx.get(f"{intake.url}/api/v1/aanvragen/{first.json()['id']}", timeout=10)
    assert read.status_code == 200 and read.json()["trajectType"] == "EPA"


def test_api_docs_are_served_without_a_cdn(intake):
    page = httpx.get(f"{intake.url}/api/v1/docs", timeout=10)
    assert page.status_code == 200
    assert "cdn." not in page.text and "unpkg" not in page.text
    assert "/api/v1/docs/static/swagger-ui-bundle.js" in page.text
    script = httpx.get(f"{intake.url}/api/v1/docs/static/swagger-ui-bundle.js", timeout=10)
    assert script.status_code == 200 and len(script.content) > 100_000
    spec = httpx.get(f"{intake.url}/api/v1/openapi.json", timeout=10).json()
    assert "/api/v1/aanvragen" in spec["paths"]
