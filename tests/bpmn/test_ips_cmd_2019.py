"""ips-cmd-2019 in the diagram (issue 13.2): UWV decides, with the gemeente's consent statement recorded first.

Runs bpmn/ips_traject.bpmn in-process with the replies of tests/bpmn/test_ips_traject.py; grants' toetsing says
who decides (``besluitvormer``). The real stack is in tests/integration/test_ips_cmd_2019.py.
"""

from __future__ import annotations

from datetime import timedelta

from tests.bpmn.test_ips_traject import AANVRAAG, Case, parsed, standard_replies, toetsing  # noqa: F401

from process_engine import runtime as rt

UWV_SIGNER = {"subject": "uwv-1", "naam": "P. de Vries, UWV", "mandaten": ["toekenning", "afwijzing", "verdaging"]}
GEMEENTE_SIGNER = {"subject": "behandelaar-0957", "naam": "A. de Vries", "mandaten": []}
CONSENT = {"instemming": "verleend", "instemmingKenmerk": "TV-2019-17", "instemmingDatum": "2019-05-20"}


def cmd_2019(parsed: rt.ParsedDefinition) -> Case:  # noqa: F811
    replies = standard_replies(**{"ips.aanvraag.toetsen.v1": lambda p: toetsing(
        regeling="ips-cmd-2019", besluitvormer="uwv")})
    return Case(parsed, replies, {**AANVRAAG, "trajectType": "CMD"})


def test_the_gemeente_records_its_consent_then_uwv_decides_and_grants_gets_the_consent(parsed):  # noqa: F811
    case = cmd_2019(parsed)
    consent = case.task()
    assert consent.element_id == "UserTask_instemming" and consent.lane == "Behandelaar"
    assert consent.mandate is None  # recording the statement is not a beschikking
    case.complete_task(CONSENT, GEMEENTE_SIGNER)
    decide = case.task()
    assert decide.element_id == "UserTask_beoordelen_uwv" and decide.lane == "UWV-behandelaar"
    assert rt.required_mandate(decide.mandate, {"besluit": "toekennen"}) == "toekenning"
    assert case.variables["besluitvormer"] == "uwv"
    assert case.variables["instemmingGemeente"] == {"verleend": True, "kenmerk": "TV-2019-17", "datum": "2019-05-20",
                                                    "gemeenteCode": "0957", "vastgelegdDoor": "behandelaar-0957"}
    case.complete_task({"besluit": "toekennen", "motivering": "Voldoet."}, UWV_SIGNER)
    besluit = case.last("ips.beschikking.opstellen.v1").params
    assert besluit["soort"] == "toekenning" and besluit["ondertekenaar"] == UWV_SIGNER
    assert besluit["instemming"]["kenmerk"] == "TV-2019-17" and besluit["instemming"]["verleend"] is True
    assert rt.active_element_ids(case.wf) == ["ReceiveTask_traject"]


def test_without_consent_uwv_cannot_grant_and_gets_the_task_back_but_may_refuse(parsed):  # noqa: F811
    case = cmd_2019(parsed)
    case.complete_task({**CONSENT, "instemming": "geweigerd"}, GEMEENTE_SIGNER)
    case.complete_task({"besluit": "toekennen", "motivering": "x"}, UWV_SIGNER)
    assert case.task().element_id == "UserTask_beoordelen_uwv"
    assert "ips.budget.vastleggen.v1" not in case.types()
    case.complete_task({"besluit": "afwijzen", "motivering": "Geen instemming van de gemeente."}, UWV_SIGNER)
    assert case.last("ips.beschikking.opstellen.v1").params["soort"] == "afwijzing"
    assert rt.is_completed(case.wf)


def test_a_2023_case_goes_to_the_gemeente_without_a_consent_task(parsed):  # noqa: F811
    case = Case(parsed, standard_replies())
    assert case.task().element_id == "UserTask_beoordelen"
    assert case.variables["besluitvormer"] == "gemeente" and case.variables["instemmingGemeente"] is None


def test_uwv_task_has_the_overdue_timer_and_the_withdrawal(parsed):  # noqa: F811
    case = cmd_2019(parsed)
    case.complete_task(CONSENT, GEMEENTE_SIGNER)
    case.advance(timedelta(days=60))
    assert case.variables["te_laat"] is True
    assert case.task().element_id == "UserTask_beoordelen_uwv"  # non-interrupting
    case.message("ips.aanvraag.ingetrokken.v1", {"aanvraagId": "a-1"})
    assert case.types()[-1] == "ips.budget.vrijgeven.v1" and rt.is_completed(case.wf)
