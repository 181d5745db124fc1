"""payments as a real process on the real broker and FerretDB with accounts of other SEPA countries and names
outside the EPC character set (issue 13 item 5): IBAN/BIC checked for every SEPA country, names transliterated
before the pain.001 is built, and the file still valid against the official XSD."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx

from payments.sepa import schema_errors
from tests.integration.test_payments_flow import AANMAKEN, BETAALBEHEER, aanmaken

EPC = re.compile(r"[A-Za-z0-9/\-?:().,'+ ]+")


async def test_accounts_of_sepa_countries_and_transliterated_names_in_a_valid_pain001(service, driver,
                                                                                      tmp_path: Path):
    rekeningen = {
        "debiteur": {"naam": "UWV", "iban": "NL32INGB0000012345", "bic": "INGBNL2A"},
        "ggz": {
            # Belgian and Polish accounts: countries the old eight-country check did not all know
            "20000001": {"naam": "GGZ Çelik & Nguyễn", "iban": "BE68 5390 0754 7034", "bic": "GKCCBEBB"},
            "20000002": {"naam": "Zoë’s GGZ – Łódź", "iban": "PL61109010140000071219812874", "bic": "WBKPPLPP"},
            # a valid IBAN, but no SEPA country: the order waits for an account, it never reaches a batch
            "20000003": {"naam": "GGZ Türkiye", "iban": "TR330006100519786457841326", "bic": "TGBATRIS"},
        },
    }
    path = tmp_path / "rekeningen.json"
    path.write_text(json.dumps(rekeningen, ensure_ascii=False), encoding="utf-8")
    payments = service("payments", IPSFLOW_REKENINGEN_FILE=str(path)).start()
    for case, kvk in (("S1", "20000001"), ("S2", "20000002"), ("S3", "20000003")):
        reply = await driver.call(AANMAKEN, case, aanmaken(case, kvk=kvk, bedrag=800_000))
        assert reply.type == "ips.opdracht.voltooid.v1", reply.data
        expected = "rekening_ontbreekt" if kvk == "20000003" else "gereed"
        assert reply.data["opdrachten"][0]["status"] == expected, (kvk, reply.data)

    async with httpx.AsyncClient(base_url=payments.url, timeout=30) as http:
        r = await http.post("/api/v1/betaalbatches", headers={**BETAALBEHEER, "Idempotency-Key": "sepa-1"})
        assert r.status_code == 201, r.text
        assert r.json()["aantal"] == 2
        xml = await http.get(f"/api/v1/betaalbatches/{r.json()['batchId']}/pain001", headers=BETAALBEHEER)
    assert xml.status_code == 200
    assert schema_errors(xml.content) == []
    text = xml.content.decode("utf-8")
    assert "<Nm>GGZ Celik + Nguyen</Nm>" in text and "<Nm>Zoe's GGZ - Lodz</Nm>" in text
    assert "<IBAN>BE68539007547034</IBAN>" in text and "<IBAN>PL61109010140000071219812874</IBAN>" in text
    assert "TR33" not in text
    for tag in ("Nm", "Ustrd"):
        for value in re.findall(rf"<{tag}>([^<]*)</{tag}>", text):
            assert EPC.fullmatch(value), value
