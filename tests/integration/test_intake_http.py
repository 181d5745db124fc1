"""The intake portal API over HTTP on a real intake process: contract, validation, authorization, documents."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support.tokens import bearer

GGZ = "12345678"
OTHER_GGZ = "87654321"
GGZ_HEADERS = bearer("trajectbegeleider-1", "ggz", GGZ, "indiener")
OTHER_GGZ_HEADERS = bearer("trajectbegeleider-9", "ggz", OTHER_GGZ, "indiener")
ROERMOND = bearer("behandelaar-roermond", "gemeente", "0957", "behandelaar")
WEERT = bearer("behandelaar-weert", "gemeente", "0988", "behandelaar")
UWV = bearer("budgetbeheerder", "uwv", "UWV", "budgetbeheerder")
BEHEER = bearer("procesbeheerder", "beheer", "ipsflow", "procesbeheerder")
BSN = "123456782"
PDF = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"

VALID: dict[str, Any] = {
    "clientReferentie": "K-7", "bsn": BSN, "gemeenteCode": "0957", "woongemeenteCode": "0957",
    "trajectType": "EPA", "aanvraagdatum": "2026-03-02", "gewensteStartdatum": "2026-12-01", "ggzKvkNummer": GGZ,
    "ggzAgbCode": "06123456", "ondertekening": {"kandidaat": True, "ggzInstelling": True},
    "modelgetrouwheid": {"certificaatnummer": "PHR-2025-001", "geldigTot": "2027-06-30"},
    "doelgroep": {"uitkering": "bijstand", "wilBetaaldWerk": True, "andereReintegratie": False},
}


@pytest.fixture
def intake(service):
    return service("intake").start()


def _db(mongo, namespace):
    return mongo[f"{namespace}ipsflow_intake".replace(".", "_")]


async def _count(mongo, namespace) -> int:
    return await _db(mongo, namespace).aanvragen.count_documents({})


def submit(url: str, body: dict[str, Any] | None = None, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/aanvragen", json=VALID if body is None else body,
                      headers=GGZ_HEADERS if headers is None else headers, timeout=10)


def upload(url: str, aanvraag_id: str, content: bytes = PDF, soort: str = "aanvraagformulier",
           content_type: str = "application/pdf", headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/aanvragen/{aanvraag_id}/documenten",
                      params={"soort": soort, "bestandsnaam": "aanvraag.pdf"}, content=content,
                      headers={**(GGZ_HEADERS if headers is None else headers), "Content-Type": content_type},
                      timeout=30)


def _without(key: str) -> dict[str, Any]:
    return {k: v for k, v in VALID.items() if k != key}


@pytest.mark.parametrize(("body", "field", "code"), [
    (b'{"clientReferentie": "K-7", ', "body", "json_invalid"),
    ({**VALID, "gemeenteCode": 957}, "gemeenteCode", "string_type"),
    ({**VALID, "gewensteStartdatum": "morgen"}, "gewensteStartdatum", "date_from_datetime_parsing"),
    ({**VALID, "trajectType": "PTSS"}, "trajectType", "literal_error"),
    ({**VALID, "nationaliteit": "NL"}, "nationaliteit", "extra_forbidden"),
    ({**VALID, "adres": "Markt 1, Roermond"}, "adres", "extra_forbidden"),
    ({**VALID, "geslacht": "v"}, "geslacht", "extra_forbidden"),
    ({**VALID, "diagnose": "F32.1"}, "diagnose", "extra_forbidden"),
    ({**VALID, "doelgroep": {**VALID["doelgroep"], "diagnose": "x"}}, "doelgroep.diagnose", "extra_forbidden"),
    (_without("ggzKvkNummer"), "ggzKvkNummer", "missing"),
    (_without("bsn"), "bsn", "missing"),
    ({**VALID, "bsn": "123456789"}, "bsn", "value_error"),
    ({**VALID, "bsn": "12345678"}, "bsn", "string_pattern_mismatch"),
    ({**VALID, "doelgroep": {**VALID["doelgroep"], "uitkering": "zw"}}, "doelgroep.uitkering", "literal_error"),
    ({**VALID, "gewensteStartdatum": "9999-12-31"}, "gewensteStartdatum", "buiten_bereik"),
    ({**VALID, "gewensteStartdatum": "2027-03-03"}, "gewensteStartdatum", "buiten_bereik"),  # > aanvraagdatum + 1y
    ({**VALID, "gewensteStartdatum": "2024-03-01"}, "gewensteStartdatum", "buiten_bereik"),  # < aanvraagdatum - 2y
    ({**_without("aanvraagdatum"), "gewensteStartdatum": "0001-01-01"}, "gewensteStartdatum", "buiten_bereik"),
    ({**VALID, "toelichting": "x" * 2001}, "toelichting", "string_too_long"),
    ({**VALID, "toelichting": "x" * 70_000}, "body", "too_large"),
    ({**VALID, "gemeenteCode": "0501"}, "gemeenteCode", "gemeente_ongeldig"),  # Brielle, merged 2023-01-01
    ({**VALID, "woongemeenteCode": "9999"}, "woongemeenteCode", "gemeente_ongeldig"),
    ({**VALID, "aanvraagdatum": "2099-01-01"}, "aanvraagdatum", "in_de_toekomst"),
])
async def test_bad_input_is_400_problem_naming_the_field(intake, mongo, namespace, body, field, code):
    before = await _count(mongo, namespace)
    kwargs: dict[str, Any] = ({"content": body, "headers": {**GGZ_HEADERS, "content-type": "application/json"}}
                              if isinstance(body, bytes) else {"json": body, "headers": GGZ_HEADERS})
    response = httpx.post(f"{intake.url}/api/v1/aanvragen", timeout=10, **kwargs)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 400
    assert {"name": field, "code": code} in [{"name": p["name"], "code": p["code"]} for p in problem["invalidParams"]]
    assert BSN not in response.text and "123456789" not in response.text, "input values are never echoed"
    assert await _count(mongo, namespace) == before, "nothing stored"


async def test_start_date_range_bounds_and_every_benefit_are_accepted(intake, mongo, namespace):
    for start in ("2024-03-02", "2027-03-02"):  # aanvraagdatum 2026-03-02 minus 2 years, plus 1 year
        response = submit(intake.url, {**VALID, "gewensteStartdatum": start})
        assert response.status_code == 201, response.text
    for uitkering in ("ww", "wia", "wajong", "anders"):
        response = submit(intake.url, {**VALID, "doelgroep": {**VALID["doelgroep"], "uitkering": uitkering}})
        assert response.status_code == 201, response.text
    assert await _count(mongo, namespace) == 6


async def test_gemeente_validity_follows_the_application_date(intake):
    in_2023 = {"gewensteStartdatum": "2023-02-01"}  # within a year of the application date
    brielle_before = submit(intake.url, {**VALID, **in_2023, "gemeenteCode": "0501", "woongemeenteCode": "0501",
                                         "aanvraagdatum": "2022-12-31"})
    assert brielle_before.status_code == 201, brielle_before.text
    voorne_before = submit(intake.url, {**VALID, **in_2023, "gemeenteCode": "1992", "aanvraagdatum": "2022-12-31"})
    assert voorne_before.status_code == 400
    assert voorne_before.json()["invalidParams"][0]["name"] == "gemeenteCode"
    assert submit(intake.url, {**VALID, **in_2023, "gemeenteCode": "1992",
                               "aanvraagdatum": "2023-01-01"}).status_code == 201


async def test_submission_is_stored_with_encrypted_bsn_and_idempotent_with_key(intake, mongo, namespace):
    headers = {**GGZ_HEADERS, "Idempotency-Key": "portal-42"}
    first = submit(intake.url, headers=headers)
    again = submit(intake.url, headers=headers)
    # a replay gets the original response: 201 and the same body (issue 13.3), marked as a replay
    assert (first.status_code, again.status_code) == (201, 201), first.text
    body = first.json()
    assert again.json() == body and again.headers["Idempotency-Replayed"] == "true"
    assert "Idempotency-Replayed" not in first.headers
    assert {k: body[k] for k in ("status", "gemeenteCode", "woongemeenteCode", "trajectType")} == {
        "status": "ingediend", "gemeenteCode": "0957", "woongemeenteCode": "0957", "trajectType": "EPA"}
    assert "ontvangenOp" in body and "bsn" not in body
    assert first.headers["API-Version"] == "1.0.0"
    assert first.headers["Location"] == f"/api/v1/aanvragen/{body['id']}"
    assert await _count(mongo, namespace) == 1
    other = submit(intake.url, {**VALID, "trajectType": "CMD"}, headers=headers)
    assert other.status_code == 422
    stored = await _db(mongo, namespace).aanvragen.find_one({"_id": body["id"]})
    assert BSN not in repr(stored)
    assert stored["bsn_versleuteld"].startswith("v1:")
    assert not {"nationaliteit", "adres", "geslacht", "diagnose"} & set(stored)
    read = httpx.get(f"{intake.url}/api/v1/aanvragen/{body['id']}", headers=GGZ_HEADERS, timeout=10)
    assert read.status_code == 200
    detail = read.json()
    assert detail["trajectType"] == "EPA" and detail["clientReferentie"] == "K-7"
    assert detail["aanvraagdatum"] == "2026-03-02" and detail["documenten"] == []
    assert BSN not in read.text


def test_every_endpoint_needs_a_token(intake):
    some_id = "00000000-0000-0000-0000-000000000000"
    calls = [("POST", "/api/v1/aanvragen", {"json": VALID}), ("GET", "/api/v1/aanvragen", {}),
             ("GET", f"/api/v1/aanvragen/{some_id}", {}),
             ("POST", f"/api/v1/aanvragen/{some_id}/documenten?soort=overig",
              {"content": PDF, "headers": {"Content-Type": "application/pdf"}}),
             ("GET", f"/api/v1/aanvragen/{some_id}/documenten/x", {}),
             ("POST", f"/api/v1/aanvragen/{some_id}/aanvullingen", {"json": {}}),
             ("POST", f"/api/v1/aanvragen/{some_id}/intrekking", {})]
    for method, path, kwargs in calls:
        response = httpx.request(method, f"{intake.url}{path}", timeout=10, **kwargs)
        assert response.status_code == 401, (method, path, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    bad = httpx.get(f"{intake.url}/api/v1/aanvragen", headers={"Authorization": "Bearer nonsense"}, timeout=10)
    assert bad.status_code == 401
    assert httpx.get(f"{intake.url}/health", timeout=10).status_code == 200


async def test_organisations_see_only_what_is_theirs(intake, mongo, namespace):
    for_other = submit(intake.url, {**VALID, "ggzKvkNummer": OTHER_GGZ})
    assert for_other.status_code == 403 and for_other.headers["content-type"] == "application/problem+json"
    assert submit(intake.url, headers=ROERMOND).status_code == 403
    assert await _count(mongo, namespace) == 0
    mine = submit(intake.url).json()["id"]
    theirs = submit(intake.url, {**VALID, "ggzKvkNummer": OTHER_GGZ, "gemeenteCode": "0988"},
                    headers=OTHER_GGZ_HEADERS).json()["id"]
    newest = submit(intake.url, {**VALID, "clientReferentie": "K-8"}).json()["id"]

    def status(headers: dict[str, str], aanvraag_id: str = mine) -> int:
        return httpx.get(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}", headers=headers, timeout=10).status_code

    assert status(GGZ_HEADERS) == 200
    assert status(OTHER_GGZ_HEADERS) == 403
    assert status(ROERMOND) == 200
    assert status(WEERT) == 403
    assert status(UWV) == 403
    assert status(BEHEER) == 200
    assert status(GGZ_HEADERS, "bestaat-niet") == 404
    gemeente_view = httpx.get(f"{intake.url}/api/v1/aanvragen/{mine}", headers=ROERMOND, timeout=10).json()
    assert "clientReferentie" not in gemeente_view

    listed = httpx.get(f"{intake.url}/api/v1/aanvragen", headers=GGZ_HEADERS, timeout=10).json()
    assert [a["id"] for a in listed["items"]] == [newest, mine], "own applications only, newest first"
    page = httpx.get(f"{intake.url}/api/v1/aanvragen", params={"limit": 1, "offset": 1}, headers=GGZ_HEADERS,
                     timeout=10).json()
    assert [a["id"] for a in page["items"]] == [mine]
    weert = httpx.get(f"{intake.url}/api/v1/aanvragen", headers=WEERT, timeout=10).json()
    assert [a["id"] for a in weert["items"]] == [theirs]
    assert httpx.get(f"{intake.url}/api/v1/aanvragen", headers=UWV, timeout=10).status_code == 403
    assert upload(intake.url, theirs).status_code == 403
    withdraw = httpx.post(f"{intake.url}/api/v1/aanvragen/{theirs}/intrekking", headers=GGZ_HEADERS, timeout=10)
    assert withdraw.status_code == 403


async def test_pdf_upload_is_read_back_byte_identical(intake, mongo, namespace):
    aanvraag_id = submit(intake.url).json()["id"]
    response = upload(intake.url, aanvraag_id)
    assert response.status_code == 201, response.text
    meta = response.json()
    assert meta["soort"] == "aanvraagformulier" and meta["grootte"] == len(PDF)
    assert meta["bestandsnaam"] == "aanvraag.pdf" and meta["contentType"] == "application/pdf"
    read = httpx.get(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}/documenten/{meta['id']}", headers=GGZ_HEADERS,
                     timeout=10)
    assert read.status_code == 200 and read.content == PDF
    assert read.headers["content-type"] == "application/pdf"
    assert httpx.get(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}/documenten/{meta['id']}", headers=WEERT,
                     timeout=10).status_code == 403
    detail = httpx.get(f"{intake.url}/api/v1/aanvragen/{aanvraag_id}", headers=GGZ_HEADERS, timeout=10).json()
    assert [d["id"] for d in detail["documenten"]] == [meta["id"]]
    stored = await _db(mongo, namespace).documenten.find_one({"_id": meta["id"]})
    assert stored["vertrouwelijkheid"] == "vertrouwelijk" and stored["aanvraag_id"] == aanvraag_id
    assert stored["uploaded_by"] == "trajectbegeleider-1" and len(stored["sha256"]) == 64


@pytest.mark.parametrize(("content", "content_type", "field", "code"), [
    (b"Hello, this is not a PDF", "application/pdf", "bestand", "geen_pdf"),
    (b"", "application/pdf", "bestand", "leeg"),
    (PDF, "text/plain", "bestand", "content_type"),
    (b"%PDF-" + b"0" * (10 * 1024 * 1024), "application/pdf", "body", "too_large"),
])
async def test_upload_refuses_what_is_not_a_pdf(intake, mongo, namespace, content, content_type, field, code):
    aanvraag_id = submit(intake.url).json()["id"]
    response = upload(intake.url, aanvraag_id, content=content, content_type=content_type)
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert {"name": field, "code": code} in [{"name": p["name"], "code": p["code"]}
                                             for p in response.json()["invalidParams"]]
    assert await _db(mongo, namespace).documenten.count_documents({}) == 0


def test_upload_soort_is_validated(intake):
    aanvraag_id = submit(intake.url).json()["id"]
    response = upload(intake.url, aanvraag_id, soort="paspoort")
    assert response.status_code == 400
    assert response.json()["invalidParams"][0]["name"] == "soort"


def test_supplement_only_when_asked_and_withdrawal(intake):
    aanvraag_id = submit(intake.url).json()["id"]
    url = f"{intake.url}/api/v1/aanvragen/{aanvraag_id}"
    early = httpx.post(f"{url}/aanvullingen", json={"ondertekening": {"kandidaat": True, "ggzInstelling": True}},
                       headers=GGZ_HEADERS, timeout=10)
    assert early.status_code == 409 and early.headers["content-type"] == "application/problem+json"
    bad = httpx.post(f"{url}/aanvullingen", json={"geslacht": "m"}, headers=GGZ_HEADERS, timeout=10)
    assert bad.status_code == 400 and bad.json()["invalidParams"][0]["name"] == "geslacht"
    etag = httpx.get(url, headers=GGZ_HEADERS, timeout=10).headers["ETag"]
    stale = httpx.post(f"{url}/intrekking", headers={**GGZ_HEADERS, "If-Match": '"999"'}, timeout=10)
    assert stale.status_code == 412 and stale.headers["content-type"] == "application/problem+json"
    withdrawn = httpx.post(f"{url}/intrekking", headers={**GGZ_HEADERS, "If-Match": etag}, timeout=10)
    assert withdrawn.status_code == 200, withdrawn.text
    assert withdrawn.headers["ETag"] != etag
    assert withdrawn.json()["status"] == "ingetrokken" and withdrawn.json()["ingetrokkenOp"]
    again = httpx.post(f"{url}/intrekking", headers=GGZ_HEADERS, timeout=10)
    assert again.status_code == 200 and again.json()["ingetrokkenOp"] == withdrawn.json()["ingetrokkenOp"]
    assert upload(intake.url, aanvraag_id).status_code == 409


def test_api_docs_are_served_without_a_cdn(intake):
    page = httpx.get(f"{intake.url}/api/v1/docs", timeout=10)
    assert page.status_code == 200
    assert "cdn." not in page.text and "unpkg" not in page.text
    assert "/api/v1/docs/static/swagger-ui-bundle.js" in page.text
    script = httpx.get(f"{intake.url}/api/v1/docs/static/swagger-ui-bundle.js", timeout=10)
    assert script.status_code == 200 and len(script.content) > 100_000
    spec = httpx.get(f"{intake.url}/api/v1/openapi.json", timeout=10).json()
    assert {"/api/v1/aanvragen", "/api/v1/aanvragen/{aanvraag_id}/documenten",
            "/api/v1/aanvragen/{aanvraag_id}/intrekking"} <= set(spec["paths"])
