"""ips-cmd-2019 as the regulation says (issue 13.2), on the real stack: UWV decides, with the gemeente's consent
statement (toestemmingsverklaring) recorded first by the gemeente's official; the gemeente cannot decide.

intake, grants, payments, notifications and the process engine run as real processes on the real broker and
database (bpmn/ips_traject.bpmn)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from tests.support.ips import MANDATES, PDF, ROERMOND, IpsSystem, application, ggz, official, start_ips
from tests.support.tokens import bearer

IN_2019 = {"aanvraagdatum": "2019-06-03", "gewensteStartdatum": "2019-07-01",
           "modelgetrouwheid": {"certificaatnummer": "PHR-2019-7", "geldigTot": "2020-06-01"}}
CONSENT = {"instemming": "verleend", "instemmingKenmerk": "TV-2019-0957-17", "instemmingDatum": "2019-05-20"}


def uwv_official(mandates: tuple[str, ...] = MANDATES) -> dict[str, str]:
    return bearer("uwv-beoordelaar-1", "uwv", "UWV", "uwv-behandelaar", name="P. Bakker, UWV", mandates=mandates)


@pytest.fixture
async def ips(service):
    system = start_ips(service)
    yield system
    await system.close()


async def _consent(ips: IpsSystem, case_id: str, **form: str) -> None:
    task = await ips.wait_task(case_id, official(ROERMOND))
    assert task["elementId"] == "UserTask_instemming"
    done = await ips.decide(task["id"], official(ROERMOND), **{**CONSENT, **form})
    assert done.status_code == 200, done.text


async def test_uwv_decides_with_the_gemeentes_consent_and_the_gemeente_gets_403(ips: IpsSystem):
    case_id = await ips.submit(application(**IN_2019))
    gemeente, uwv = official(ROERMOND), uwv_official()
    # before the consent is recorded UWV has nothing to decide; the gemeente records it
    await ips.wait_task(case_id, gemeente)
    assert case_id not in [t["zaakId"] for t in await ips.tasks(uwv)]
    await _consent(ips, case_id)

    task = await ips.wait_task(case_id, uwv)
    assert task["elementId"] == "UserTask_beoordelen_uwv" and task["lane"] == "UWV-behandelaar"
    # the gemeente's official neither sees nor decides it, whatever its mandates
    assert case_id not in [t["zaakId"] for t in await ips.tasks(gemeente)]
    refused = await ips.decide(task["id"], gemeente, besluit="toekennen", motivering="Akkoord.")
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    # a UWV official without the grant sub-mandate is refused too
    limited = await ips.decide(task["id"], uwv_official(("afwijzing",)), besluit="toekennen", motivering="x")
    assert limited.status_code == 403 and "toekenning" in limited.json()["detail"]
    # a UWV token of another role (budget management) does not get the task
    budget = bearer("budgetbeheer", "uwv", "UWV", "budgetbeheerder", mandates=MANDATES)
    assert (await ips.decide(task["id"], budget, besluit="toekennen", motivering="x")).status_code == 403

    done = await ips.decide(task["id"], uwv, besluit="toekennen", motivering="Voldoet aan de regeling.")
    assert done.status_code == 200, done.text
    granted = await ips.wait_status(case_id, "toegekend")
    beschikking_id = granted["besluit"]["beschikkingId"]
    letter = await ips.letter_text(beschikking_id)
    assert "namens deze de Raad van bestuur van het Uitvoeringsinstituut werknemersverzekeringen" in letter
    assert "met instemming van het college van burgemeester en wethouders van Roermond" in letter
    assert "P. Bakker, UWV" in letter
    # grants keeps the consent statement with the beschikking
    response = await ips.client.get(f"{ips.grants}/api/v1/beschikkingen/{beschikking_id}", headers=gemeente)
    assert response.status_code == 200, response.text
    assert response.json()["instemming"] == {"kenmerk": "TV-2019-0957-17", "datum": "2019-05-20",
                                             "gemeenteCode": ROERMOND, "verleend": True}
    case = await ips.case(case_id)
    assert case["variabelen"]["instemmingGemeente"]["vastgelegdDoor"] == "behandelaar-0957"
    assert case["variabelen"]["ondertekenaar"]["subject"] == "uwv-beoordelaar-1"
    # UWV reads the case it decided, the gemeente too; UWV still reads no 2023 case (below)
    assert (await ips.client.get(f"{ips.engine}/api/v1/zaken/{case_id}", headers=uwv)).status_code == 200


async def test_without_consent_uwv_gets_the_task_back_and_may_refuse(ips: IpsSystem):
    case_id = await ips.submit(application(**IN_2019))
    await _consent(ips, case_id, instemming="geweigerd")
    uwv = uwv_official()
    task = await ips.wait_task(case_id, uwv)
    assert (await ips.decide(task["id"], uwv, besluit="toekennen", motivering="x")).status_code == 200
    again = await ips.wait_task(case_id, uwv)  # a grant without consent is not possible: the task comes back
    assert again["elementId"] == "UserTask_beoordelen_uwv"
    assert (await ips.aanvraag(case_id))["status"] not in ("toegekend",)
    done = await ips.decide(again["id"], uwv, besluit="afwijzen", motivering="De gemeente stemt niet in.")
    assert done.status_code == 200, done.text
    refused = await ips.wait_status(case_id, "afgewezen")
    assert "De gemeente stemt niet in." in await ips.letter_text(refused["besluit"]["beschikkingId"])


async def test_a_2023_case_stays_with_the_gemeente_and_uwv_does_not_see_it(ips: IpsSystem):
    case_id = await ips.submit(application())
    task = await ips.wait_task(case_id, official(ROERMOND))
    assert task["elementId"] == "UserTask_beoordelen"
    uwv = uwv_official()
    assert (await ips.client.get(f"{ips.engine}/api/v1/zaken/{case_id}", headers=uwv)).status_code == 403
    assert (await ips.decide(task["id"], uwv, besluit="toekennen", motivering="x")).status_code == 403


TRAJECT = (*MANDATES, "verlenging", "vaststelling")


async def _uwvs_task(ips: IpsSystem, case_id: str, element: str, uwv: dict[str, str], gemeente: dict[str, str],
                     **form: str) -> dict:
    """The case's task is UWV's: in lane UWV-behandelaar, not in the gemeente's work list, and the gemeente's
    official (with every mandate) gets 403 on it."""
    task = await ips.wait_task(case_id, uwv)
    assert task["elementId"] == element and task["lane"] == "UWV-behandelaar"
    assert case_id not in [t["zaakId"] for t in await ips.tasks(gemeente)]
    refused = await ips.decide(task["id"], gemeente, **form)
    assert refused.status_code == 403 and refused.headers["content-type"] == "application/problem+json"
    return task


async def test_uwv_decides_the_extension_and_the_vaststelling_and_the_gemeente_gets_403(ips: IpsSystem):
    """Issue 13: under ips-cmd-2019 UWV decides the extension and the vaststelling too, not the gemeente."""
    await ips.set_clock(datetime(2019, 6, 3, 9, tzinfo=UTC))  # the trajectory (2019-07-01, 24 months) runs "now"
    case_id = await ips.submit(application(**IN_2019))
    await _consent(ips, case_id)
    uwv, gemeente = uwv_official(TRAJECT), official(ROERMOND, TRAJECT)
    task = await ips.wait_task(case_id, uwv)
    assert (await ips.decide(task["id"], uwv, besluit="toekennen", motivering="Akkoord.")).status_code == 200
    await ips.wait_case(case_id, lambda c: c["actieveElementen"] == ["ReceiveTask_traject"], "a running trajectory")

    asked = await ips.client.post(f"{ips.intake}/api/v1/aanvragen/{case_id}/verlengingsverzoeken",
                                  json={"maanden": 12}, headers=ggz())
    assert asked.status_code == 202, asked.text
    task = await _uwvs_task(ips, case_id, "UserTask_verlenging_uwv", uwv, gemeente, besluit="toekennen",
                            motivering="Akkoord.")
    limited = await ips.decide(task["id"], uwv_official(MANDATES), besluit="toekennen", motivering="x")
    assert limited.status_code == 403 and "verlenging" in limited.json()["detail"]
    done = await ips.decide(task["id"], uwv, besluit="toekennen", motivering="Plaatsing in zicht.")
    assert done.status_code == 200, done.text
    extension = await ips.wait_letter(case_id, "verlenging")
    letter = await ips.letter_text(extension["beschikkingId"])
    assert "30 juni 2022" in letter and "P. Bakker, UWV" in letter
    assert "Uitvoeringsinstituut werknemersverzekeringen" in letter
    case = await ips.wait_case(case_id, lambda c: c["variabelen"].get("einddatum") == "2022-06-30"
                               and c["actieveElementen"] == ["ReceiveTask_traject"], "the new end date")
    assert case["variabelen"]["ondertekenaar"]["subject"] == "uwv-beoordelaar-1"
    # UWV reads what it decided the extension on
    seen = await ips.client.get(f"{ips.engine}/api/v1/zaken/{case_id}", headers=uwv)
    assert seen.status_code == 200 and seen.json()["variabelen"]["verlengingstoets"]["toegestaan"] is True

    stop = await ips.client.post(f"{ips.intake}/api/v1/aanvragen/{case_id}/stopberichten", headers=ggz(),
                                 json={"einddatum": "2019-12-31"})
    assert stop.status_code == 202, stop.text
    await ips.wait_case(case_id, lambda c: c["actieveElementen"] == ["ReceiveTask_eindverslag"], "the report wait")
    report = await ips.client.post(f"{ips.intake}/api/v1/aanvragen/{case_id}/eindverslag",
                                   params={"bestandsnaam": "eindverslag.pdf"}, content=PDF,
                                   headers={**ggz(), "content-type": "application/pdf"})
    assert report.status_code == 201, report.text
    task = await _uwvs_task(ips, case_id, "UserTask_vaststelling_uwv", uwv, gemeente, besluit="vaststellen",
                            motivering="x")
    # another UWV official, whose sub-mandate covers only the vaststelling, settles it (grants checks the
    # recorded signer's mandates again: they must be this official's, not a mix with the one before)
    settler = bearer("uwv-vaststeller-2", "uwv", "UWV", "uwv-behandelaar", name="R. Smit, UWV",
                     mandates=("vaststelling",))
    done = await ips.decide(task["id"], settler, besluit="vaststellen", motivering="Traject vroegtijdig beëindigd.")
    assert done.status_code == 200, done.text
    case = await ips.wait_case(case_id, lambda c: c["status"] == "completed", "the settlement", timeout=120)
    # 6 of 24 months (2019-07-01 .. 2019-12-31) of EUR 8,000, pro rata
    assert case["variabelen"]["vaststelling"]["vastgesteldCents"] == 200000
    vastgesteld = await ips.wait_status(case_id, "vastgesteld")
    letter = await ips.letter_text(vastgesteld["besluit"]["beschikkingId"])
    assert "R. Smit, UWV" in letter and "€ 2.000,00" in letter
