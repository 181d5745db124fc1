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


# Fresh lists for every case: the engine merges a recorded signer into the one before it (SpiffWorkflow's deep
# merge), so a module-level signer shared between cases would carry another case's mandates.
UWV_TRAJECT = {**UWV_SIGNER, "mandaten": ("toekenning", "afwijzing", "verlenging", "vaststelling")}


def _signer(signer: dict) -> dict:
    return {**signer, "mandaten": list(signer["mandaten"])}


def _granted_by_uwv(parsed: rt.ParsedDefinition, **replies) -> Case:  # noqa: F811
    case = Case(parsed, standard_replies(**{"ips.aanvraag.toetsen.v1": lambda p: toetsing(
        regeling="ips-cmd-2019", besluitvormer="uwv"), **replies}), {**AANVRAAG, "trajectType": "CMD"})
    case.complete_task(CONSENT, {**GEMEENTE_SIGNER, "mandaten": []})
    case.complete_task({"besluit": "toekennen", "motivering": "Voldoet."}, _signer(UWV_TRAJECT))
    assert rt.active_element_ids(case.wf) == ["ReceiveTask_traject"]
    return case


def test_uwv_decides_the_extension_and_the_vaststelling_of_a_cmd_2019_case(parsed):  # noqa: F811
    # issue 13: under the regulation UWV decides the extension and the vaststelling too, not the gemeente
    toets = {"toegestaan": True, "weigeringsgronden": [], "nieuweEinddatum": "2029-03-31"}
    case = _granted_by_uwv(parsed, **{"ips.traject.verlenging_toetsen.v1": lambda p: toets})
    case.message("ips.traject.verlenging_gevraagd.v1", {"aanvraagId": "a-1", "maanden": 12})
    extension = case.task()
    assert extension.element_id == "UserTask_verlenging_uwv" and extension.lane == "UWV-behandelaar"
    assert rt.required_mandate(extension.mandate, {"besluit": "toekennen"}) == "verlenging"
    case.complete_task({"besluit": "toekennen", "motivering": "Plaatsing in zicht."}, _signer(UWV_TRAJECT))
    letter = case.last("ips.beschikking.opstellen.v1").params
    assert letter["soort"] == "verlenging" and letter["ondertekenaar"] == _signer(UWV_TRAJECT)
    assert case.variables["einddatum"] == "2029-03-31" and case.variables["verlengingen"] == 1

    case.message("ips.traject.stopbericht.v1", {"aanvraagId": "a-1", "einddatum": "2026-09-30"})
    case.message("ips.traject.eindverslag_ingediend.v1", {"aanvraagId": "a-1", "documentId": "d-9"})
    settlement = case.task()
    assert settlement.element_id == "UserTask_vaststelling_uwv" and settlement.lane == "UWV-behandelaar"
    assert rt.required_mandate(settlement.mandate, {"besluit": "vaststellen"}) == "vaststelling"
    case.complete_task({"besluit": "vaststellen", "motivering": "Traject beëindigd."}, _signer(UWV_TRAJECT))
    letter = case.last("ips.beschikking.opstellen.v1").params
    assert letter["soort"] == "vaststelling" and letter["ondertekenaar"] == _signer(UWV_TRAJECT)
    assert case.last("ips.aanvraag.besluit_registreren.v1").params["status"] == "vastgesteld"
    assert rt.is_completed(case.wf)


def test_uwv_refuses_a_cmd_2019_extension_in_its_own_lane(parsed):  # noqa: F811
    toets = {"toegestaan": True, "weigeringsgronden": [], "nieuweEinddatum": "2029-03-31"}
    case = _granted_by_uwv(parsed, **{"ips.traject.verlenging_toetsen.v1": lambda p: toets})
    case.message("ips.traject.verlenging_gevraagd.v1", {"aanvraagId": "a-1", "maanden": 12})
    assert case.task().lane == "UWV-behandelaar"
    case.complete_task({"besluit": "afwijzen", "motivering": "Geen voortgang."}, _signer(UWV_TRAJECT))
    refusal = case.last("ips.beschikking.opstellen.v1").params
    assert refusal["soort"] == "afwijzing_verlenging" and refusal["gronden"][0]["tekst"] == "Geen voortgang."
    assert rt.active_element_ids(case.wf) == ["ReceiveTask_traject"]


def test_a_2023_case_keeps_extension_and_vaststelling_with_the_gemeente(parsed):  # noqa: F811
    toets = {"toegestaan": True, "weigeringsgronden": [], "nieuweEinddatum": "2029-03-31"}
    case = Case(parsed, standard_replies(**{"ips.traject.verlenging_toetsen.v1": lambda p: toets}))
    case.complete_task({"besluit": "toekennen", "motivering": "Akkoord."})
    case.message("ips.traject.verlenging_gevraagd.v1", {"aanvraagId": "a-1", "maanden": 12})
    assert (case.task().element_id, case.task().lane) == ("UserTask_verlenging", "Behandelaar")
    case.complete_task({"besluit": "toekennen", "motivering": "Akkoord."})
    case.message("ips.traject.stopbericht.v1", {"aanvraagId": "a-1", "einddatum": "2026-09-30"})
    case.message("ips.traject.eindverslag_ingediend.v1", {"aanvraagId": "a-1", "documentId": "d-9"})
    assert (case.task().element_id, case.task().lane) == ("UserTask_vaststelling", "Behandelaar")


def test_the_recorded_signer_is_the_one_who_decided_not_a_mix_with_the_one_before(parsed):  # noqa: F811
    # The engine once let SpiffWorkflow deep-merge a signer into the previous one: the list of mandates of a
    # UWV official who may only settle came out as the previous signer's ["toekenning"], and grants would
    # check (and the beschikking record) the wrong sub-mandate.
    case = _granted_by_uwv(parsed)
    case.message("ips.traject.stopbericht.v1", {"aanvraagId": "a-1", "einddatum": "2026-09-30"})
    case.message("ips.traject.eindverslag_ingediend.v1", {"aanvraagId": "a-1", "documentId": "d-9"})
    settler = {"subject": "uwv-2", "naam": "R. Smit, UWV", "mandaten": ["vaststelling"]}
    case.complete_task({"besluit": "vaststellen", "motivering": "Traject beëindigd."}, dict(settler))
    assert case.last("ips.beschikking.opstellen.v1").params["ondertekenaar"] == settler
    assert case.variables["ondertekenaar"] == settler
