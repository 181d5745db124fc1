"""grants after the grant, as a real process on the real broker and FerretDB: the extension test and its
decisions, the vaststelling under both rules and its decision, the financial registration (a retry never
counts twice) and the reports (JSON and CSV) whose totals equal the ledger's."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import httpx

from grants.regelingen import REGELINGEN_DIR
from tests.integration.test_grants_commands import GGZ, ROERMOND, UWV_BEHEER, WEERT, _reserveren
from tests.support.brieven import tekst
from tests.support.engine_driver import CommandDriver as Driver
from tests.support.tokens import ADMIN, bearer

VOORLOPIG = bearer("behandelaar-2", "gemeente", "0957", "behandelaar")
VERLENGING = "ips.traject.verlenging_toetsen.v1"
VASTSTELLING = "ips.vaststelling.berekenen.v1"
FINANCIEEL = "ips.budget.financieel_registreren.v1"
OPSTELLEN = "ips.beschikking.opstellen.v1"
JANSEN = {"subject": "behandelaar-1", "naam": "J. Jansen", "mandaten": ["toekenning", "verlenging", "vaststelling"]}


async def _toetsen(driver: Driver, aid: str, gemeente: str = "0957", type_: str = "CMD") -> None:
    reply = await driver.call("ips.aanvraag.toetsen.v1", aid, {
        "aanvraag_id": aid, "gemeente_code": gemeente, "woongemeente_code": gemeente, "traject_type": type_,
        "aanvraagdatum": "2026-03-02", "ontvangen_op": "2026-03-02T09:15:00Z", "ggz_kvk_nummer": "12345678"})
    assert reply.type == "ips.opdracht.voltooid.v1"


def _beschikking(aid: str, soort: str, **extra: Any) -> dict[str, Any]:
    base = {"aanvraag_id": aid, "soort": soort, "gemeente_code": "0957", "regeling": "ips-gemeenten-2023",
            "traject_type": "CMD", "bedrag_cents": None, "gronden": [], "motivering": None, "ondertekenaar": JANSEN,
            "nieuwe_beslisdatum": None}
    return {**base, **extra}


def _verlenging(aid: str, maanden: int, einddatum: str, eerdere: int = 0) -> dict[str, Any]:
    return {"aanvraag_id": aid, "regeling": "ips-gemeenten-2023", "maanden": maanden, "einddatum": einddatum,
            "eerdere_verlengingen": eerdere}


def _epa_vaststelling(aid: str) -> dict[str, Any]:
    return {"aanvraag_id": aid, "regeling": "ips-gemeenten-2023", "bedrag_cents": 1_132_500,
            "startdatum": "2024-01-01", "geplande_einddatum": "2026-12-31", "werkelijke_einddatum": "2024-06-30",
            "looptijd_maanden": 36}


# --------------------------------------------------------------------------------------------- extension

async def test_one_extension_of_at_most_12_months(service, driver):
    service("grants").start()
    await _toetsen(driver, "V-1")
    te_lang = await driver.call(VERLENGING, "V-1", _verlenging("V-1", 13, "2026-01-31"))
    assert te_lang.type == "ips.opdracht.voltooid.v1"
    assert te_lang.data["toegestaan"] is False and te_lang.data["nieuweEinddatum"] is None
    assert [g["code"] for g in te_lang.data["weigeringsgronden"]] == ["verlenging_te_lang"]

    ok = await driver.call(VERLENGING, "V-1", _verlenging("V-1", 12, "2026-01-31"))
    assert ok.data == {"toegestaan": True, "weigeringsgronden": [], "nieuweEinddatum": "2027-01-31", "maanden": 12,
                       "einddatum": "2026-01-31"}

    zonder_mandaat = await driver.call(OPSTELLEN, "V-1", _beschikking(
        "V-1", "verlenging", ondertekenaar={"subject": "b-2", "naam": "P. Pietersen", "mandaten": ["toekenning"]}))
    assert zonder_mandaat.type == "ips.opdracht.mislukt.v1" and zonder_mandaat.data["code"] == "IPS-MANDAAT-001"

    # the new end date comes from the extension test recorded on the zaak when the engine does not pass it
    besluit = await driver.call(OPSTELLEN, "V-1", _beschikking("V-1", "verlenging"))
    assert besluit.type == "ips.opdracht.voltooid.v1"
    b = besluit.data
    assert b["soort"] == "verlenging" and b["nieuweEinddatum"] == "2027-01-31" and b["maanden"] == 12
    assert "31 januari 2027" in tekst(b) and "J. Jansen" in tekst(b) and "Bezwaar" in tekst(b)
    assert b["bezwaartermijnEinde"] is not None

    # a second request is refused even when the engine's count says there was none
    tweede = await driver.call(VERLENGING, "V-1", _verlenging("V-1", 6, "2027-01-31", eerdere=0))
    assert tweede.data["toegestaan"] is False
    assert [g["code"] for g in tweede.data["weigeringsgronden"]] == ["al_verlengd"]
    nog_een = await driver.call(OPSTELLEN, "V-1", _beschikking("V-1", "verlenging", nieuwe_einddatum="2027-07-31",
                                                                maanden=6))
    assert nog_een.type == "ips.opdracht.mislukt.v1" and nog_een.data["code"] == "IPS-VERLENGING-001"

    afwijzing = await driver.call(OPSTELLEN, "V-1", _beschikking(
        "V-1", "afwijzing_verlenging", ondertekenaar=None, maanden=6, gronden=tweede.data["weigeringsgronden"]))
    assert afwijzing.type == "ips.opdracht.voltooid.v1" and afwijzing.data["soort"] == "afwijzing_verlenging"
    assert "eenmaal" in tekst(afwijzing.data) and "Bezwaar" in tekst(afwijzing.data)


async def test_a_redelivered_extension_decision_counts_once(service, driver):
    service("grants").start()
    await _toetsen(driver, "V-2")
    data = _beschikking("V-2", "verlenging", nieuwe_einddatum="2027-01-31", maanden=12)
    first = await driver.send(OPSTELLEN, "V-2", data, command_id="cmd-V-2")
    await driver.send(OPSTELLEN, "V-2", data, command_id="cmd-V-2")
    reply = await driver.reply(first)
    assert reply.type == "ips.opdracht.voltooid.v1"
    await driver.send(OPSTELLEN, "V-2", data, command_id="cmd-V-2")
    await asyncio.sleep(1.0)
    assert {r.id for r in driver.replies["cmd-V-2"]} == {"cmd-V-2:antwoord"}
    assert all(r.type == "ips.opdracht.voltooid.v1" for r in driver.replies["cmd-V-2"])
    later = await driver.call(VERLENGING, "V-2", _verlenging("V-2", 3, "2027-01-31"))
    assert later.data["toegestaan"] is False


# ------------------------------------------------------------------------------------------ vaststelling

async def test_epa_stopped_after_six_months_pro_rata_and_its_decision(service, driver):
    grants = service("grants").start()
    await _toetsen(driver, "S-1", type_="EPA")
    v = await driver.call(VASTSTELLING, "S-1", _epa_vaststelling("S-1"))
    assert v.type == "ips.opdracht.voltooid.v1"
    assert (v.data["vastgesteldCents"], v.data["regel"], v.data["maanden"]) == (188_750, "pro_rata_months", 6)
    assert "€ 1.887,50" in v.data["toelichting"]

    zonder = await driver.call(OPSTELLEN, "S-1", _beschikking(
        "S-1", "vaststelling", traject_type="EPA", bedrag_cents=1_132_500, vastgesteld_cents=188_750,
        ondertekenaar={"subject": "b-2", "naam": "P. Pietersen", "mandaten": ["toekenning", "verlenging"]}))
    assert zonder.data["code"] == "IPS-MANDAAT-001"
    # vastgesteld_cents left out: taken from the calculation recorded on the zaak
    besluit = await driver.call(OPSTELLEN, "S-1", _beschikking("S-1", "vaststelling", traject_type="EPA",
                                                                bedrag_cents=1_132_500))
    b = besluit.data
    assert b["soort"] == "vaststelling" and b["bedragCents"] == 188_750 and b["vastgesteldCents"] == 188_750
    assert b["verleendCents"] == 1_132_500 and b["verschilCents"] == 943_750
    assert "€ 9.437,50" in tekst(b) and "terug" in tekst(b) and "Bezwaar" in tekst(b)
    stored = httpx.get(f"{grants.url}/api/v1/beschikkingen/{b['beschikkingId']}", headers=ROERMOND, timeout=10)
    assert stored.status_code == 200 and stored.json()["vastgesteldCents"] == 188_750


async def test_the_vaststellingsregel_flipped_to_full_in_configuration(service, driver, tmp_path: Path):
    config = tmp_path / "regelingen"
    config.mkdir()
    for source in REGELINGEN_DIR.glob("*.json"):
        data = json.loads(source.read_text(encoding="utf-8"))
        if data["id"] == "ips-gemeenten-2023":
            data["vaststellingsregel"] = "full"
        (config / source.name).write_text(json.dumps(data), encoding="utf-8")
    service("grants").start(IPSFLOW_REGELINGEN_DIR=str(config))
    v = await driver.call(VASTSTELLING, "S-2", _epa_vaststelling("S-2"))
    assert (v.data["vastgesteldCents"], v.data["regel"]) == (1_132_500, "full")


# ------------------------------------------------------------------------ financial registration, reports

def _ledger(grants, periode: str = "2026") -> dict[str, Any]:
    listed = httpx.get(f"{grants.url}/api/v1/budgetten", headers=UWV_BEHEER, timeout=10).json()
    return next(b for b in listed if b["regeling"] == "ips-gemeenten-2023" and b["periode"] == periode)


def _rapportage(grants, headers: dict[str, str], **params: Any) -> httpx.Response:
    return httpx.get(f"{grants.url}/api/v1/rapportages", params=params, headers=headers, timeout=10)


async def test_financial_registration_and_reports_add_up_to_the_ledger(service, driver):
    grants = service("grants").start()
    zaken = {"F-A": ("0957", "EPA", 1_132_500), "F-B": ("0988", "CMD", 800_000), "F-C": ("0957", "CMD", 800_000),
             "F-D": ("0957", "CMD", 800_000)}
    for aid, (gemeente, type_, _) in zaken.items():
        await _toetsen(driver, aid, gemeente, type_)
    slecht = {"doelgroep": False, "wilBetaaldWerk": True, "geenAnderTraject": True,
              "certificaatGeldigTot": "2030-01-01"}
    replies = {}
    for aid, (gemeente, type_, bedrag) in zaken.items():
        replies[aid] = await driver.call("ips.budget.reserveren.v1", aid, _reserveren(
            aid, gemeente=gemeente, type_=type_, bedrag=bedrag, criteria=slecht if aid == "F-C" else None))
    assert [replies[a].data["gereserveerd"] for a in zaken] == [True, True, False, True]
    for aid in ("F-A", "F-B"):  # F-D stays reserved
        assert (await driver.call("ips.budget.vastleggen.v1", aid, {"aanvraag_id": aid})).data["bevestigd"]
        assert (await driver.call(OPSTELLEN, aid, _beschikking(
            aid, "toekenning", gemeente_code=zaken[aid][0], traject_type=zaken[aid][1]))).data["soort"] == "toekenning"
    await driver.call(OPSTELLEN, "F-C", _beschikking("F-C", "afwijzing", ondertekenaar=None,
                                                      gronden=replies["F-C"].data["weigeringsgronden"]))

    # paid in advance, then vaststelling with recovery: the values are the case's new totals
    assert (await driver.call(FINANCIEEL, "F-A", {"aanvraag_id": "F-A", "betaald_cents": 1_132_500,
                                                  "teruggevorderd_cents": 0, "vastgesteld_cents": None})).data == {}
    totals = {"aanvraag_id": "F-A", "betaald_cents": 1_132_500, "teruggevorderd_cents": 943_750,
              "vastgesteld_cents": 188_750}
    first = await driver.send(FINANCIEEL, "F-A", totals, command_id="cmd-F-A-2")
    await driver.send(FINANCIEEL, "F-A", totals, command_id="cmd-F-A-2")
    assert (await driver.reply(first)).type == "ips.opdracht.voltooid.v1"
    await driver.send(FINANCIEEL, "F-A", totals)  # a new command with the same totals: no change either
    await driver.call(FINANCIEEL, "F-B", {"aanvraag_id": "F-B", "betaald_cents": 800_000, "teruggevorderd_cents": 0,
                                          "vastgesteld_cents": None})
    geen = await driver.call(FINANCIEEL, "F-C", {"aanvraag_id": "F-C", "betaald_cents": 1, "teruggevorderd_cents": 0,
                                                 "vastgesteld_cents": None})
    assert geen.type == "ips.opdracht.mislukt.v1" and geen.data["code"] == "IPS-BUDGET-001"
    await asyncio.sleep(1.0)

    ledger = _ledger(grants)
    assert ledger["vastgelegdCents"] == 1_932_500 and ledger["gereserveerdCents"] == 800_000
    assert (ledger["betaaldCents"], ledger["teruggevorderdCents"], ledger["vastgesteldCents"]) == (
        1_932_500, 943_750, 188_750)

    report = _rapportage(grants, UWV_BEHEER, jaar=2026)
    assert report.status_code == 200
    body = report.json()
    rows = {r["gemeenteCode"]: r for r in body["rijen"]}
    assert set(rows) == {"0957", "0988"}
    roermond, weert = rows["0957"], rows["0988"]
    assert (roermond["aanvragen"], roermond["toekenningen"], roermond["afwijzingen"]) == (3, 1, 1)
    assert roermond["weigeringsgronden"] == {"geen_doelgroep": 1}
    assert (roermond["vastgelegdCents"], roermond["gereserveerdCents"]) == (1_132_500, 800_000)
    assert (roermond["betaaldCents"], roermond["teruggevorderdCents"], roermond["vastgesteldCents"]) == (
        1_132_500, 943_750, 188_750)
    assert (weert["aanvragen"], weert["toekenningen"], weert["vastgelegdCents"], weert["betaaldCents"]) == (
        1, 1, 800_000, 800_000)
    assert roermond["plafondCents"] == ledger["plafondCents"] == 1_010_000_000
    assert roermond["beschikbaarCents"] == ledger["beschikbaarCents"]
    # report totals equal ledger totals
    for report_key, ledger_key in (("vastgelegdCents", "vastgelegdCents"), ("gereserveerdCents", "gereserveerdCents"),
                                   ("betaaldCents", "betaaldCents"), ("teruggevorderdCents", "teruggevorderdCents"),
                                   ("vastgesteldCents", "vastgesteldCents")):
        assert sum(r[report_key] for r in body["rijen"]) == ledger[ledger_key], report_key
    [totaal] = body["totalen"]
    assert totaal["vastgelegdCents"] == ledger["vastgelegdCents"] and totaal["aanvragen"] == 4
    assert _rapportage(grants, ADMIN, jaar=2026).json()["rijen"] == body["rijen"]

    # a gemeente sees only its own rows; ggz none; no token 401; a bad year 400
    own = _rapportage(grants, ROERMOND, jaar=2026).json()
    assert [r["gemeenteCode"] for r in own["rijen"]] == ["0957"] and own["gemeente"] == "0957"
    assert _rapportage(grants, VOORLOPIG, jaar=2026, gemeente="0957").status_code == 200
    assert _rapportage(grants, WEERT, jaar=2026, gemeente="0957").status_code == 403
    assert _rapportage(grants, GGZ, jaar=2026).status_code == 403
    assert httpx.get(f"{grants.url}/api/v1/rapportages?jaar=2026", timeout=10).status_code == 401
    assert _rapportage(grants, UWV_BEHEER, jaar="twintig").status_code == 400
    assert [r["gemeenteCode"] for r in _rapportage(grants, UWV_BEHEER, jaar=2026, gemeente="0988").json()["rijen"]
            ] == ["0988"]
    assert _rapportage(grants, UWV_BEHEER, jaar=2030).json()["rijen"] == []

    export = httpx.get(f"{grants.url}/api/v1/rapportages.csv", params={"jaar": 2026}, headers=UWV_BEHEER, timeout=10)
    assert export.status_code == 200 and export.headers["content-type"].startswith("text/csv")
    assert "attachment" in export.headers["content-disposition"]
    assert export.content.startswith(b"\xef\xbb\xbf")
    lines = list(csv.reader(io.StringIO(export.content.decode("utf-8-sig")), delimiter=";"))
    header = lines[0]
    parsed = {line[0]: dict(zip(header, line, strict=True)) for line in lines[1:]}
    assert parsed["0957"]["Gemeente"] == "Roermond" and parsed["0957"]["Vastgesteld (EUR)"] == "1887,50"
    assert parsed["0957"]["Teruggevorderd (EUR)"] == "9437,50" and parsed["0988"]["Vastgelegd (EUR)"] == "8000,00"
    assert parsed["0957"]["Afgewezen: geen_doelgroep"] == "1"
    own_csv = httpx.get(f"{grants.url}/api/v1/rapportages.csv", params={"jaar": 2026}, headers=WEERT, timeout=10)
    assert [line.split(";")[0] for line in own_csv.content.decode("utf-8-sig").splitlines()[1:]] == ["0988"]
