"""grants as a real process on the real broker and FerretDB: engine commands in, replies out.

Commands are published on ips.commands like the engine does; replies are read from a test queue bound to
ips.events (``ips.opdracht.#``).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from grants.regelingen import REGELINGEN_DIR
from servicekit.broker import EVENTS
from servicekit.envelope import new_event
from tests.support.brieven import tekst
from tests.support.tokens import ADMIN, bearer

UWV_BEHEER = bearer("uwv-budget-1", "uwv", "UWV", "budgetbeheerder")
ROERMOND = bearer("behandelaar-1", "gemeente", "0957", "behandelaar")
WEERT = bearer("weert-1", "gemeente", "0988", "behandelaar")
GGZ = bearer("ggz-1", "ggz", "12345678", "aanvrager")
ANDERE_GGZ = bearer("ggz-2", "ggz", "87654321", "aanvrager")
GOED = {"doelgroep": True, "wilBetaaldWerk": True, "geenAnderTraject": True, "certificaatGeldigTot": "2030-01-01"}
ENGINE_NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def _reserveren(aanvraag_id: str, *, regeling: str = "ips-gemeenten-2023", gemeente: str = "0957",
                type_: str = "CMD", bedrag: int = 800_000, aanvraagdatum: str = "2026-03-02",
                volledig: datetime | None = None, criteria: dict[str, Any] | None = None,
                volgnummer: int | None = None) -> dict[str, Any]:
    data = {"aanvraag_id": aanvraag_id, "regeling": regeling, "gemeente_code": gemeente, "traject_type": type_,
            "bedrag_cents": bedrag, "aanvraagdatum": aanvraagdatum, "gewenste_startdatum": "2026-06-01",
            "volledig_ontvangen_op": (volledig or datetime.now(UTC)).isoformat(),
            "criteria": criteria or GOED}
    if volgnummer is not None:
        data["volgnummer"] = volgnummer
    return data


async def announce(driver: Any, aanvraag_id: str, volgnummer: int) -> None:
    """intake's announcement of an application's place in the order of receipt (no subject: not for a case)."""
    await driver.broker.publish(new_event("ips.aanvraag.volgnummer_toegekend.v1", service="intake", subject=None,
                                          data={"aanvraagId": aanvraag_id, "volgnummer": volgnummer}), EVENTS)


def _budget(grants, regeling: str, periode: str) -> dict[str, Any]:
    listed = httpx.get(f"{grants.url}/api/v1/budgetten", headers=UWV_BEHEER, timeout=10).json()
    return next(b for b in listed if b["regeling"] == regeling and b["periode"] == periode)


def _set_plafond(grants, regeling: str, periode: str, cents: int) -> httpx.Response:
    return httpx.put(f"{grants.url}/api/v1/budgetten/{regeling}/{periode}", json={"plafondCents": cents},
                     headers=UWV_BEHEER, timeout=10)


# ------------------------------------------------------------------------------------------------ tests

async def test_toetsen_chooses_the_regulation_and_the_deadline(service, driver):
    service("grants").start()
    reply = await driver.call("ips.aanvraag.toetsen.v1", "A-toets", {
        "aanvraag_id": "A-toets", "gemeente_code": "0957", "woongemeente_code": "0988", "traject_type": "EPA",
        "aanvraagdatum": "2026-03-02", "ontvangen_op": "2026-03-02T09:15:00Z"})
    assert reply.type == "ips.opdracht.voltooid.v1" and reply.subject == "A-toets"
    t = reply.data
    assert t["regeling"] == "ips-gemeenten-2023" and t["binnenAanvraagperiode"] is True
    assert t["bevoegd"] is False and t["bevoegdeGemeente"] == "0988"
    # 2 March + 8 weeks is Koningsdag (Monday 27 April 2026): the deadline moves to the next working day
    assert t["beslisdatum"] == "2026-04-28" and t["beslistermijnVerstrijktOp"] == "2026-04-28T22:00:00Z"
    assert t["hersteltermijn"] == "P14D" and t["tariefCents"] == 1_132_500
    # the regulation's payment schedule and recovery term, exactly as configured, for the process to pass on
    config = json.loads((REGELINGEN_DIR / "ips-gemeenten-2023.json").read_text(encoding="utf-8"))
    assert t["betaalschema"] == config["betaalschema"] == [{"moment": "toekenning", "percentage": 100}]
    assert t["terugvorderingstermijnJaren"] == config["terugvorderingstermijnJaren"] == 5

    late = await driver.call("ips.aanvraag.toetsen.v1", "A-laat", {
        "aanvraag_id": "A-laat", "gemeente_code": "0957", "woongemeente_code": "0957", "traject_type": "CMD",
        "aanvraagdatum": "2019-11-30", "ontvangen_op": "2019-11-30T09:00:00Z"})
    assert late.data["regeling"] == "ips-cmd-2019" and late.data["binnenAanvraagperiode"] is False
    refused = await driver.call("ips.budget.reserveren.v1", "A-laat", _reserveren(
        "A-laat", regeling="ips-cmd-2019", aanvraagdatum="2019-11-30"))
    assert refused.data["gereserveerd"] is False
    assert [g["code"] for g in refused.data["weigeringsgronden"]] == ["buiten_aanvraagperiode"]


async def test_2019_cap_of_five_per_gemeente_and_the_4000_4000_split(service, driver):
    grants = service("grants").start()
    start = datetime.now(UTC) - timedelta(hours=1)
    commands = []
    for i in range(6):  # the gemeente's cap follows the order of receipt too (the volgnummer)
        commands.append(await driver.send("ips.budget.reserveren.v1", f"R19-{i}", _reserveren(
            f"R19-{i}", regeling="ips-cmd-2019", aanvraagdatum="2019-06-03", volledig=start + timedelta(minutes=i),
            volgnummer=i + 1)))
    weert = await driver.send("ips.budget.reserveren.v1", "W19-0", _reserveren(
        "W19-0", regeling="ips-cmd-2019", gemeente="0988", aanvraagdatum="2019-06-03",
        volledig=start + timedelta(minutes=10), volgnummer=7))
    replies = [await driver.reply(c) for c in commands]
    assert [r.data["gereserveerd"] for r in replies] == [True] * 5 + [False]
    assert [g["code"] for g in replies[5].data["weigeringsgronden"]] == ["gemeentelijk_maximum_bereikt"]
    assert "Roermond" in replies[5].data["weigeringsgronden"][0]["tekst"]
    assert replies[0].data["financiering"] == {"niveau": "traject", "rijkCents": 400_000, "gemeenteCents": 400_000}
    assert replies[0].data["budgetperiode"] == "2019"
    assert (await driver.reply(weert)).data["gereserveerd"] is True  # another gemeente is not affected

    epa = await driver.call("ips.budget.reserveren.v1", "R19-epa", _reserveren(
        "R19-epa", regeling="ips-cmd-2019", gemeente="0935", type_="EPA", bedrag=800_000, aanvraagdatum="2019-06-03"))
    assert [g["code"] for g in epa.data["weigeringsgronden"]] == ["trajecttype_niet_toegestaan"]
    wrong = await driver.call("ips.budget.reserveren.v1", "R19-bedrag", _reserveren(
        "R19-bedrag", regeling="ips-cmd-2019", gemeente="0935", bedrag=700_000, aanvraagdatum="2019-06-03"))
    assert wrong.type == "ips.opdracht.mislukt.v1" and wrong.data["code"] == "IPS-TARIEF-001"

    # releasing one of Roermond's five makes room again; the released money is back in the ledger
    assert (await driver.call("ips.budget.vrijgeven.v1", "R19-0", {"aanvraag_id": "R19-0", "reden": "ingetrokken"})
            ).data == {}
    again = await driver.call("ips.budget.reserveren.v1", "R19-5", _reserveren(
        "R19-5", regeling="ips-cmd-2019", aanvraagdatum="2019-06-03"))
    assert again.data["gereserveerd"] is True
    nothing = await driver.call("ips.budget.vrijgeven.v1", "R19-none", {"aanvraag_id": "R19-none", "reden": "x"})
    assert nothing.type == "ips.opdracht.voltooid.v1" and nothing.data == {}

    confirmed = await driver.call("ips.budget.vastleggen.v1", "R19-1", {"aanvraag_id": "R19-1"})
    assert confirmed.data["bevestigd"] is True and confirmed.data["bedragCents"] == 800_000
    assert confirmed.data["budgetperiode"] == "2019"
    twice = await driver.call("ips.budget.vastleggen.v1", "R19-1", {"aanvraag_id": "R19-1"})
    assert twice.data["bevestigd"] is True  # a second confirmation commits nothing twice
    missing = await driver.call("ips.budget.vastleggen.v1", "R19-none", {"aanvraag_id": "R19-none"})
    assert missing.type == "ips.opdracht.mislukt.v1" and missing.data["code"] == "IPS-BUDGET-001"

    ledger = _budget(grants, "ips-cmd-2019", "2019")
    assert ledger["aantalReserveringen"] == 6  # R19-1..5 and W19-0
    assert ledger["vastgelegdCents"] == 800_000 and ledger["gereserveerdCents"] == 5 * 800_000
    assert ledger["beschikbaarCents"] == ledger["plafondCents"] - 6 * 800_000

    letter = await driver.call("ips.beschikking.opstellen.v1", "R19-1", {
        "aanvraag_id": "R19-1", "soort": "toekenning", "gemeente_code": "0957", "regeling": "ips-cmd-2019",
        "traject_type": "CMD", "bedrag_cents": 800_000, "gronden": [], "motivering": "",
        "ondertekenaar": {"subject": "uwv-1", "naam": "P. de Vries", "mandaten": ["toekenning"]},
        "nieuwe_beslisdatum": None, "instemming": {"verleend": True, "kenmerk": "TV-1", "datum": "2019-05-20",
                                                   "gemeenteCode": "0957"}})
    assert letter.data["instemming"]["kenmerk"] == "TV-1"
    # UWV grants an ips-cmd-2019 case only with the gemeente's consent statement (issue 13.2)
    for instemming in (None, {"verleend": False, "kenmerk": "TV-2", "datum": "2019-05-20", "gemeenteCode": "0957"},
                       {"verleend": True, "kenmerk": "TV-3", "datum": "2019-05-20", "gemeenteCode": "0988"}):
        refused = await driver.call("ips.beschikking.opstellen.v1", "R19-2", {
            "aanvraag_id": "R19-2", "soort": "toekenning", "gemeente_code": "0957", "regeling": "ips-cmd-2019",
            "traject_type": "CMD", "bedrag_cents": 800_000, "gronden": [], "motivering": "",
            "ondertekenaar": {"subject": "uwv-1", "naam": "P. de Vries", "mandaten": ["toekenning"]},
            "instemming": instemming})
        assert refused.type == "ips.opdracht.mislukt.v1" and refused.data["code"] == "IPS-INSTEMMING-001", instemming
    assert letter.data["financiering"] == {"niveau": "traject", "rijkCents": 400_000, "gemeenteCents": 400_000}
    assert "€ 4.000,00" in tekst(letter.data) and "Roermond" in tekst(letter.data)


async def test_with_8000_left_the_earlier_received_application_gets_it(service, driver):
    grants = service("grants").start()
    assert _set_plafond(grants, "ips-gemeenten-2023", "2026", 800_000).status_code == 200
    now = datetime.now(UTC)
    await announce(driver, "C-eerder", 1)  # intake numbered both when they became complete
    await announce(driver, "C-later", 2)
    later = await driver.send("ips.budget.reserveren.v1", "C-later", _reserveren(
        "C-later", aanvraagdatum="2026-03-02", volledig=now, volgnummer=2))
    await asyncio.sleep(2.0)  # the earlier completed one is delivered later, however much later: the later waits
    assert not driver.replies.get(later.id)
    earlier = await driver.send("ips.budget.reserveren.v1", "C-eerder", _reserveren(
        "C-eerder", aanvraagdatum="2026-03-02", volledig=now - timedelta(seconds=1), volgnummer=1))
    got, lost = await driver.reply(earlier), await driver.reply(later)
    assert got.data["gereserveerd"] is True and got.data["budgetperiode"] == "2026"
    assert lost.data["gereserveerd"] is False
    assert [g["code"] for g in lost.data["weigeringsgronden"]] == ["subsidieplafond_bereikt"]
    ledger = _budget(grants, "ips-gemeenten-2023", "2026")
    assert ledger["beschikbaarCents"] == 0 and ledger["gereserveerdCents"] == 800_000

    # the ceiling cannot go below what is reserved; raising it makes room by the difference
    low = _set_plafond(grants, "ips-gemeenten-2023", "2026", 700_000)
    assert low.status_code == 409 and low.headers["content-type"].startswith("application/problem+json")
    raised = _set_plafond(grants, "ips-gemeenten-2023", "2026", 1_600_000)
    assert raised.status_code == 200 and raised.json()["beschikbaarCents"] == 800_000
    stale = httpx.put(f"{grants.url}/api/v1/budgetten/ips-gemeenten-2023/2026", json={"plafondCents": 1},
                      headers={**UWV_BEHEER, "If-Match": '"1"'}, timeout=10)
    assert stale.status_code == 412
    assert _set_plafond(grants, "ips-gemeenten-2023", "1999", 1).status_code == 404
    forbidden = httpx.put(f"{grants.url}/api/v1/budgetten/ips-gemeenten-2023/2026", json={"plafondCents": 1},
                          headers=bearer("uwv-2", "uwv", "UWV", "medewerker"), timeout=10)
    assert forbidden.status_code == 403
    assert httpx.get(f"{grants.url}/api/v1/budgetten", headers=ROERMOND, timeout=10).status_code == 403
    assert httpx.get(f"{grants.url}/api/v1/budgetten", timeout=10).status_code == 401
    assert httpx.get(f"{grants.url}/api/v1/budgetten", headers=ADMIN, timeout=10).status_code == 200


async def test_a_redelivered_command_reserves_once_and_answers_with_the_same_reply(service, driver):
    grants = service("grants").start()
    before = _budget(grants, "ips-gemeenten-2023", "2026")
    data = _reserveren("D-1", aanvraagdatum="2026-03-02", volgnummer=1)
    first = await driver.send("ips.budget.reserveren.v1", "D-1", data, command_id="cmd-D-1")
    await driver.send("ips.budget.reserveren.v1", "D-1", data, command_id="cmd-D-1")
    reply = await driver.reply(first)
    assert reply.data["gereserveerd"] is True
    await driver.send("ips.budget.reserveren.v1", "D-1", data, command_id="cmd-D-1")  # after it was answered
    await asyncio.sleep(1.5)
    assert {r.id for r in driver.replies["cmd-D-1"]} == {"cmd-D-1:antwoord"}
    after = _budget(grants, "ips-gemeenten-2023", "2026")
    assert after["gereserveerdCents"] - before["gereserveerdCents"] == 800_000
    assert after["aantalReserveringen"] == before["aantalReserveringen"] + 1


async def test_beschikking_needs_the_mandate_and_is_readable_by_its_parties_only(service, driver):
    grants = service("grants").start()
    await driver.call("ips.aanvraag.toetsen.v1", "B-1", {
        "aanvraag_id": "B-1", "gemeente_code": "0957", "woongemeente_code": "0957", "traject_type": "EPA",
        "aanvraagdatum": "2026-03-02", "ontvangen_op": "2026-03-02T09:15:00Z", "ggz_kvk_nummer": "12345678"})
    params = {"aanvraag_id": "B-1", "soort": "toekenning", "gemeente_code": "0957", "regeling": "ips-gemeenten-2023",
              "traject_type": "EPA", "bedrag_cents": 1_132_500, "gronden": [], "motivering": "Voldoet aan de regeling.",
              "ondertekenaar": {"subject": "behandelaar-1", "naam": "J. Jansen", "mandaten": ["afwijzing"]},
              "nieuwe_beslisdatum": None}
    refused = await driver.call("ips.beschikking.opstellen.v1", "B-1", params)
    assert refused.type == "ips.opdracht.mislukt.v1" and refused.data["code"] == "IPS-MANDAAT-001"

    params["ondertekenaar"]["mandaten"] = ["toekenning", "afwijzing"]
    reply = await driver.call("ips.beschikking.opstellen.v1", "B-1", params)
    assert reply.type == "ips.opdracht.voltooid.v1"
    b = reply.data
    assert b["soort"] == "toekenning" and b["datum"] == "2026-11-23" and b["bezwaartermijnEinde"] == "2027-01-04"
    assert b["bedragCents"] == 1_132_500 and b["kenmerk"].startswith("IPS-0957-2026-")
    assert "€ 11.325,00" in tekst(b) and "Roermond" in tekst(b) and "J. Jansen" in tekst(b)
    assert "namens deze het college van burgemeester en wethouders van Roermond" in tekst(b)

    url = f"{grants.url}/api/v1/beschikkingen/{b['beschikkingId']}"
    shown = httpx.get(url, headers=ROERMOND, timeout=10).json()
    assert shown["kenmerk"] == b["kenmerk"]
    # the decision as data: its words, text and PDF are kept once, by notifications (GET /brieven/{id})
    assert "tekst" not in shown and shown["brief"]["mandaat"] == b["mandaat"] and shown["brief"]["bezwaar"] == {
        "weken": 6, "einde": "2027-01-04"}
    assert httpx.get(url, headers=GGZ, timeout=10).status_code == 200  # the ggz it is addressed to
    assert httpx.get(url, headers=ADMIN, timeout=10).status_code == 200
    assert httpx.get(url, headers=WEERT, timeout=10).status_code == 403
    assert httpx.get(url, headers=ANDERE_GGZ, timeout=10).status_code == 403
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(f"{grants.url}/api/v1/beschikkingen/onbekend", headers=ADMIN, timeout=10).status_code == 404

    forwarded = await driver.call("ips.beschikking.opstellen.v1", "B-2", {
        "aanvraag_id": "B-2", "soort": "doorzending", "gemeente_code": "0957", "regeling": "ips-gemeenten-2023",
        "traject_type": "CMD", "bedrag_cents": None, "gronden": [], "motivering": None, "ondertekenaar": None,
        "nieuwe_beslisdatum": None, "van_gemeente_code": "0957", "naar_gemeente_code": "0988"})
    assert forwarded.data["bezwaartermijnEinde"] is None and "Weert" in tekst(forwarded.data)

    regelingen = httpx.get(f"{grants.url}/api/v1/regelingen", headers=GGZ, timeout=10).json()
    assert {r["id"] for r in regelingen} == {"ips-cmd-2019", "ips-gemeenten-2023"}


async def test_a_414_notice_after_the_deadline_or_without_a_later_date_fails(service, driver):
    service("grants").start()
    params = {"aanvraag_id": "V-1", "soort": "verdaging", "gemeente_code": "0957", "regeling": "ips-gemeenten-2023",
              "traject_type": "CMD", "gronden": [], "motivering": "Advies nodig.",
              "ondertekenaar": {"subject": "behandelaar-1", "naam": "J. Jansen", "mandaten": ["verdaging"]}}
    # the engine's clock (the command's time) is ENGINE_NOW, 2026-11-23
    too_early = await driver.call("ips.beschikking.opstellen.v1", "V-1", {
        **params, "huidige_beslisdatum": "2026-12-14", "nieuwe_beslisdatum": "2026-12-10"})
    assert too_early.type == "ips.opdracht.mislukt.v1" and too_early.data["code"] == "IPS-VERDAGING-001"
    too_late = await driver.call("ips.beschikking.opstellen.v1", "V-1", {
        **params, "huidige_beslisdatum": "2026-11-20", "nieuwe_beslisdatum": "2027-01-10"})
    assert too_late.data["code"] == "IPS-VERDAGING-001" and "4:14" in too_late.data["message"]
    sent = await driver.call("ips.beschikking.opstellen.v1", "V-1", {
        **params, "huidige_beslisdatum": "2026-12-14", "nieuwe_beslisdatum": "2027-01-25"})
    assert sent.type == "ips.opdracht.voltooid.v1" and sent.data["soort"] == "verdaging"
