"""Acceptance of issue 4 over HTTP: intake, grants and the process engine as real processes on the real broker
and database, running bpmn/ips_traject.bpmn. Each test gets its own namespace (fresh budgets, caps, clock)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from servicekit.kalender import begin_volgende_dag
from tests.support.ips import (
    GGZ_A,
    GGZ_B,
    MANDATES,
    PDF,
    PERIODE,
    ROERMOND,
    WEERT,
    IpsSystem,
    application,
    ggz,
    official,
    start_ips,
)
from tests.support.tokens import bearer


@pytest.fixture
async def ips(service):
    system = start_ips(service)
    yield system
    await system.close()


def _euro(cents: int) -> str:
    euros, rest = divmod(cents, 100)
    return f"€ {euros:,}".replace(",", ".") + f",{rest:02d}"


async def test_happy_path_cmd_and_epa_under_ips_gemeenten_2023(ips: IpsSystem):
    cmd = await ips.submit(application(trajectType="CMD"))
    epa = await ips.submit(application(trajectType="EPA"))
    roermond, weert = official(ROERMOND), official(WEERT)
    for case_id, cents in ((cmd, 800000), (epa, 1132500)):
        task = await ips.wait_task(case_id, roermond)
        assert task["elementId"] == "UserTask_beoordelen"
        # only the gemeente of the case sees and may act on it
        assert case_id not in [t["zaakId"] for t in await ips.tasks(weert)]
        assert (await ips.client.get(f"{ips.engine}/api/v1/taken/{task['id']}", headers=weert)).status_code == 403
        assert (await ips.client.get(f"{ips.engine}/api/v1/zaken/{case_id}", headers=weert)).status_code == 403
        refused = await ips.decide(task["id"], weert, besluit="toekennen", motivering="x")
        assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
        done = await ips.decide(task["id"], roermond, besluit="toekennen", motivering="Voldoet aan de regeling.")
        assert done.status_code == 200, done.text
        aanvraag = await ips.wait_status(case_id, "toegekend")
        besluit = aanvraag["besluit"]
        assert besluit["soort"] == "toekenning" and besluit["bedragCents"] == cents
        sent = date.fromisoformat(besluit["datum"])
        deadline = date.fromisoformat(besluit["bezwaartermijnEinde"])
        assert timedelta(days=42) <= deadline - sent <= timedelta(days=46)  # 6 weeks, moved past weekend/holiday
        assert deadline.weekday() < 5
        letter = await ips.letter_text(besluit["beschikkingId"])
        assert _euro(cents) in letter
        assert "namens deze het college van burgemeester en wethouders van Roermond" in letter
        assert "A. de Vries" in letter
        assert deadline.strftime("%-d") in letter and "bezwaar" in letter.lower()
        case = await ips.wait_case(case_id, lambda c: c["actieveElementen"] == ["ReceiveTask_traject"],
                                   "the trajectory to run after the payment orders")
        assert next(j for j in case["journaal"] if j["what"] == "taak afgerond")["by"] == "behandelaar-0957"
    # another ggz can neither read the application nor its letter
    other = await ips.client.get(f"{ips.intake}/api/v1/aanvragen/{cmd}", headers=ggz(GGZ_B))
    assert other.status_code == 403
    budgets = {b["periode"]: b for b in await ips.budgets() if b["regeling"] == "ips-gemeenten-2023"}
    assert budgets[PERIODE]["vastgelegdCents"] == 800000 + 1132500


async def test_an_official_without_the_grant_mandate_cannot_grant(ips: IpsSystem):
    case_id = await ips.submit(application())
    limited = official(ROERMOND, mandates=("afwijzing",))
    task = await ips.wait_task(case_id, limited)
    response = await ips.decide(task["id"], limited, besluit="toekennen", motivering="x")
    assert response.status_code == 403 and "toekenning" in response.json()["detail"]
    assert (await ips.case(case_id))["actieveElementen"] == ["UserTask_beoordelen"]


async def test_ips_cmd_2019_cap_window_and_co_financing(ips: IpsSystem):
    in_2019 = {"aanvraagdatum": "2019-06-03", "gewensteStartdatum": "2019-07-01",
               "modelgetrouwheid": {"certificaatnummer": "PHR-2019-7", "geldigTot": "2020-06-01"}}
    roermond = [await ips.submit(application(**in_2019)) for _ in range(6)]
    weert = await ips.submit(application(**in_2019, gemeenteCode=WEERT, woongemeenteCode=WEERT))
    late = await ips.submit(application(**{**in_2019, "aanvraagdatum": "2019-11-30"}))
    for case_id in roermond[:5]:
        await ips.wait_task(case_id, official(ROERMOND))
    await ips.wait_task(weert, official(WEERT))
    sixth = await ips.wait_status(roermond[5], "afgewezen")
    letter = await ips.letter_text(sixth["besluit"]["beschikkingId"])
    assert "maximum" in letter.lower()
    outside = await ips.wait_status(late, "afgewezen")
    assert "aanvraagperiode" in (await ips.letter_text(outside["besluit"]["beschikkingId"])).lower()
    # the first granted one records the Rijk/gemeente split of EUR 4,000 each; UWV decides, after the gemeente
    # recorded its consent statement (tests/integration/test_ips_cmd_2019.py)
    task = await ips.wait_task(roermond[0], official(ROERMOND))
    assert task["elementId"] == "UserTask_instemming"
    assert (await ips.decide(task["id"], official(ROERMOND), instemming="verleend", instemmingKenmerk="TV-1",
                             instemmingDatum="2019-05-20")).status_code == 200
    uwv = bearer("uwv-1", "uwv", "UWV", "uwv-behandelaar", name="P. Bakker, UWV", mandates=MANDATES)
    task = await ips.wait_task(roermond[0], uwv)
    assert (await ips.decide(task["id"], uwv, besluit="toekennen", motivering="ok")).status_code == 200
    granted = await ips.wait_status(roermond[0], "toegekend")
    case = await ips.case(roermond[0])
    split = case["variabelen"]["reservering"]["financiering"]
    assert (split["rijkCents"], split["gemeenteCents"]) == (400000, 400000)
    letter = await ips.letter_text(granted["besluit"]["beschikkingId"])
    assert "€ 4.000,00" in letter and "€ 8.000,00" in letter


async def test_ceiling_grants_in_order_of_receipt(ips: IpsSystem):
    year = PERIODE
    await ips.set_ceiling("ips-gemeenten-2023", year, 800000)  # room for exactly one CMD trajectory
    first = await ips.submit(application())
    second = await ips.submit(application())
    await ips.wait_task(first, official(ROERMOND))
    refused = await ips.wait_status(second, "afgewezen")
    assert "plafond" in (await ips.letter_text(refused["besluit"]["beschikkingId"])).lower()
    ledger = next(b for b in await ips.budgets() if b["regeling"] == "ips-gemeenten-2023" and b["periode"] == year)
    assert ledger["beschikbaarCents"] == 0 and ledger["gereserveerdCents"] == 800000


async def test_incomplete_application_hersteltermijn_expiry_and_supplement(ips: IpsSystem):
    incomplete = {"modelgetrouwheid": None}
    late = await ips.submit(application(**incomplete))
    in_time = await ips.submit(application(**incomplete))
    for case_id in (late, in_time):
        asked = await ips.wait_status(case_id, "aanvulling_gevraagd")
        assert asked["herstel"]["ontbrekend"]
    certificate = {"certificaatnummer": "PHR-1", "geldigTot": "2028-01-01"}
    supplement = await ips.client.post(f"{ips.intake}/api/v1/aanvragen/{in_time}/aanvullingen", headers=ggz(),
                                       json={"modelgetrouwheid": certificate})
    assert supplement.status_code == 200, supplement.text
    await ips.wait_task(in_time, official(ROERMOND))
    # the hersteltermijn ends with its last day, which the Atw moves past a weekend or holiday (14 days from a
    # Sunday end on a Monday): an hour into the next day it has passed
    einde = date.fromisoformat(asked["herstel"]["uiterlijk"])
    await ips.set_clock(begin_volgende_dag(einde) + timedelta(hours=1))
    niet = await ips.wait_status(late, "niet_behandeld")
    letter = await ips.letter_text(niet["besluit"]["beschikkingId"])
    assert "4:5" in letter
    assert (await ips.aanvraag(in_time))["status"] != "niet_behandeld"


async def test_wrong_gemeente_is_forwarded_and_keeps_the_receipt_date(ips: IpsSystem):
    case_id = await ips.submit(application(gemeenteCode=ROERMOND, woongemeenteCode=WEERT))
    received = (await ips.aanvraag(case_id))["ontvangenOp"]
    task = await ips.wait_task(case_id, official(WEERT))
    assert task["zaakId"] == case_id
    assert case_id not in [t["zaakId"] for t in await ips.tasks(official(ROERMOND))]
    aanvraag = await ips.aanvraag(case_id)
    assert aanvraag["gemeenteCode"] == WEERT and aanvraag["doorgezondenVan"] == ROERMOND
    assert aanvraag["ontvangenOp"] == received
    notices = [b for b in aanvraag["beschikkingen"] if b["soort"] == "doorzending"]
    assert notices, "the sender is told: the doorzending notice is among the letters"
    text = await ips.letter_text(notices[0]["beschikkingId"])
    assert "Weert" in text and "Roermond" in text


async def test_overdue_after_8_weeks_and_a_414_notice_moves_the_deadline(ips: IpsSystem):
    overdue = await ips.submit(application())
    postponed = await ips.submit(application())
    roermond = official(ROERMOND)
    task = await ips.wait_task(postponed, roermond)
    await ips.wait_task(overdue, roermond)
    new_date = (date.today() + timedelta(weeks=12)).isoformat()
    response = await ips.decide(task["id"], roermond, besluit="verdagen", motivering="Advies van de arbeidsdeskundige.",
                                nieuweBeslisdatum=new_date)
    assert response.status_code == 200, response.text
    await ips.wait_task(postponed, roermond)
    await ips.set_clock(datetime.now(UTC) + timedelta(weeks=8, days=2))
    await ips.wait_case(overdue, lambda c: c["variabelen"].get("te_laat") is True, "overdue flag")
    assert (await ips.case(postponed))["variabelen"].get("te_laat") is False
    notice = await ips.letters(postponed, "verdaging")
    assert notice and "4:14" in await ips.letter_text(notice[-1]["beschikkingId"])
    await ips.set_clock(datetime.now(UTC) + timedelta(weeks=12, days=2))
    await ips.wait_case(postponed, lambda c: c["variabelen"].get("te_laat") is True, "overdue after the new date")


async def test_refused_fields_and_other_organisations(ips: IpsSystem):
    for name, value in (("nationaliteit", "NL"), ("adres", "Markt 1"), ("geslacht", "v")):
        response = await ips.client.post(f"{ips.intake}/api/v1/aanvragen", json=application(**{name: value}),
                                         headers=ggz())
        assert response.status_code == 400
        assert name in [p["name"] for p in response.json()["invalidParams"]]
    case_id = await ips.submit(application())
    url = f"{ips.intake}/api/v1/aanvragen/{case_id}"
    assert (await ips.client.get(url, headers=ggz(GGZ_B))).status_code == 403
    assert (await ips.client.get(url, headers=official(WEERT))).status_code == 403  # Weert cannot read Roermond's
    assert (await ips.client.get(url, headers=official(ROERMOND))).status_code == 200
    upload = await ips.client.post(f"{ips.intake}/api/v1/aanvragen/{case_id}/documenten",
                                   params={"soort": "aanvraagformulier", "bestandsnaam": "aanvraag.pdf"},
                                   content=PDF, headers={**ggz(GGZ_A), "content-type": "application/pdf"})
    assert upload.status_code == 201, upload.text
    no_token = await ips.client.get(f"{ips.intake}/api/v1/aanvragen/{case_id}")
    assert no_token.status_code == 401
    assert (await ips.aanvraag(case_id))["id"] == case_id  # the owner reads it
