"""bpmn/ips_traject.bpmn driven path by path on the pure runtime, with the services' replies scripted.

These tests pin what the diagram does (which commands, in which order, with which parameters) without any
broker or database; tests/integration/test_ips_regeling.py runs the same process on the real services.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from process_engine import runtime as rt
from process_engine.bootstrap import definition_files, load_catalogue

ROOT = Path(__file__).resolve().parents[2]
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
AANVRAAG = {"aanvraagId": "a-1", "gemeenteCode": "0957", "woongemeenteCode": "0957", "trajectType": "EPA",
            "aanvraagdatum": "2026-03-02", "gewensteStartdatum": "2026-04-01", "ggzKvkNummer": "12345678",
            "ontvangenOp": T0.isoformat()}
CRITERIA = {"doelgroep": True, "wilBetaaldWerk": True, "geenAnderTraject": True, "certificaatGeldigTot": "2027-01-01"}
SIGNER = {"subject": "j.jansen", "naam": "J. Jansen, beleidsmedewerker", "mandaten": ["toekenning", "afwijzing",
                                                                                       "verdaging"]}


@pytest.fixture(scope="module")
def parsed() -> rt.ParsedDefinition:
    return rt.parse_definition(definition_files(str(ROOT / "bpmn")), load_catalogue(str(ROOT / "bpmn" / "README.md")))


def toetsing(**overrides: Any) -> dict[str, Any]:
    return {"regeling": "ips-gemeenten-2023", "binnenAanvraagperiode": True, "bevoegd": True,
            "bevoegdeGemeente": "0957", "beslisdatum": "2026-04-27",
            "beslistermijnVerstrijktOp": "2026-04-27T22:00:00+00:00", "hersteltermijn": "P14D", **overrides}


def volledigheid(volledig: bool = True) -> dict[str, Any]:
    missing = [] if volledig else [{"code": "handtekening", "omschrijving": "Handtekening"}]
    return {"volledig": volledig, "ontbrekend": missing,
            "volledigOntvangenOp": T0.isoformat(), "criteria": CRITERIA}


class Case:
    """One instance plus the commands it issued, answered by ``replies`` (command type → result)."""

    def __init__(self, parsed: rt.ParsedDefinition, replies: dict[str, Callable[[dict[str, Any]], dict[str, Any]]],
                 aanvraag: dict[str, Any] | None = None, now: datetime = T0) -> None:
        self.now = now
        self.replies = replies
        self.issued: list[rt.PendingCommand] = []
        with rt.use_clock(self.now):
            self.wf, result = rt.start_instance(parsed, "ips.aanvraag.ingediend.v1", aanvraag or AANVRAAG,
                                                case_id="a-1")
        self._answer(result)

    def _answer(self, result: rt.StepResult) -> None:
        pending = list(result.commands)
        while pending:
            command = pending.pop(0)
            self.issued.append(command)
            reply = self.replies.get(command.command_type)
            if reply is None:
                continue  # left open: the test answers it itself
            with rt.use_clock(self.now):
                pending.extend(rt.complete_command(self.wf, command.command_id, reply(command.params)).commands)

    def types(self) -> list[str]:
        return [c.command_type for c in self.issued]

    def last(self, command_type: str) -> rt.PendingCommand:
        return [c for c in self.issued if c.command_type == command_type][-1]

    def task(self) -> rt.UserTaskView:
        (task,) = rt.ready_user_tasks(self.wf)
        return task

    def complete_task(self, data: dict[str, Any], signer: dict[str, Any] = SIGNER) -> None:
        with rt.use_clock(self.now):
            self._answer(rt.complete_user_task(self.wf, self.task().task_id, data, {"ondertekenaar": signer}))

    def message(self, name: str, payload: dict[str, Any]) -> None:
        with rt.use_clock(self.now):
            result = rt.deliver_message(self.wf, name, payload)
        assert result is not None, f"nothing waited for {name}"
        self._answer(result)

    def advance(self, delta: timedelta) -> None:
        self.now += delta
        self._answer(rt.fire_due_timers(self.wf, self.now))

    @property
    def variables(self) -> dict[str, Any]:
        return rt.case_variables(self.wf)


def standard_replies(**overrides: Callable[[dict[str, Any]], dict[str, Any]]) -> dict[str, Any]:
    replies: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
        "ips.aanvraag.toetsen.v1": lambda p: toetsing(),
        "ips.aanvraag.volledigheid_controleren.v1": lambda p: volledigheid(True),
        "ips.budget.reserveren.v1": lambda p: {"gereserveerd": True, "weigeringsgronden": [],
                                               "bedragCents": p["bedrag_cents"], "budgetperiode": "2026"},
        "ips.budget.vastleggen.v1": lambda p: {"bevestigd": True, "bedragCents": 1132500, "budgetperiode": "2026"},
        "ips.budget.vrijgeven.v1": lambda p: {},
        "ips.beschikking.opstellen.v1": lambda p: {"beschikkingId": f"b-{p['soort']}", "soort": p["soort"],
                                                   "tekst": "..."},
        "ips.aanvraag.besluit_registreren.v1": lambda p: {},
        "ips.aanvraag.herstel_vragen.v1": lambda p: {"uiterlijk": "2026-03-16"},
        "ips.aanvraag.doorzenden.v1": lambda p: {"gemeenteCode": p["naar_gemeente_code"]},
    }
    replies.update(overrides)
    return replies


def test_every_message_of_the_diagram_is_in_the_catalogue_and_every_catalogued_event_is_used(parsed):
    catalogue = load_catalogue(str(ROOT / "bpmn" / "README.md"))
    assert catalogue is not None
    xml = (ROOT / "bpmn" / "ips_traject.bpmn").read_text()
    in_diagram = set(re.findall(r'name="(ips\.[a-z0-9_.]+\.v[0-9]+)"', xml)) | set(
        re.findall(r'serviceTaskOperator id="(ips\.[a-z0-9_.]+\.v[0-9]+)"', xml))
    reply_events = {"ips.opdracht.voltooid.v1", "ips.opdracht.mislukt.v1"}
    assert in_diagram <= catalogue, in_diagram - catalogue
    assert catalogue - reply_events == in_diagram, (catalogue - reply_events) ^ in_diagram


def test_happy_path_epa_goes_from_submission_to_a_granted_beschikking(parsed):
    case = Case(parsed, standard_replies())
    assert case.types() == ["ips.aanvraag.toetsen.v1", "ips.aanvraag.volledigheid_controleren.v1",
                            "ips.budget.reserveren.v1"]
    reserve = case.last("ips.budget.reserveren.v1").params
    assert reserve["bedrag_cents"] == 1132500  # the DMN tariff for EPA under ips-gemeenten-2023
    assert reserve["volledig_ontvangen_op"] == T0.isoformat() and reserve["criteria"] == CRITERIA
    task = case.task()
    assert task.element_id == "UserTask_beoordelen" and task.lane == "Behandelaar"
    assert rt.required_mandate(task.mandate, {"besluit": "toekennen"}) == "toekenning"
    case.complete_task({"besluit": "toekennen", "motivering": "Voldoet aan de regeling."})
    assert case.types()[3:] == ["ips.budget.vastleggen.v1", "ips.beschikking.opstellen.v1",
                                "ips.aanvraag.besluit_registreren.v1"]
    besluit = case.last("ips.beschikking.opstellen.v1").params
    assert besluit["soort"] == "toekenning" and besluit["bedrag_cents"] == 1132500
    assert besluit["ondertekenaar"] == SIGNER and besluit["gemeente_code"] == "0957"
    assert case.last("ips.aanvraag.besluit_registreren.v1").params["status"] == "toegekend"
    assert rt.is_completed(case.wf)
    assert case.variables["looptijd_maanden"] == 36


def test_cmd_tariff_comes_from_the_dmn(parsed):
    case = Case(parsed, standard_replies(), {**AANVRAAG, "trajectType": "CMD"})
    assert case.last("ips.budget.reserveren.v1").params["bedrag_cents"] == 800000
    assert case.variables["looptijd_maanden"] == 24


def test_refused_reservation_leads_to_a_refusal_without_assessment(parsed):
    grounds = [{"code": "subsidieplafond_bereikt", "tekst": "Het subsidieplafond is bereikt."}]
    case = Case(parsed, standard_replies(**{"ips.budget.reserveren.v1": lambda p: {
        "gereserveerd": False, "weigeringsgronden": grounds, "bedragCents": 0}}))
    assert rt.ready_user_tasks(case.wf) == []
    besluit = case.last("ips.beschikking.opstellen.v1").params
    assert besluit["soort"] == "afwijzing" and besluit["gronden"] == grounds and besluit["ondertekenaar"] is None
    assert case.last("ips.aanvraag.besluit_registreren.v1").params["status"] == "afgewezen"
    assert rt.is_completed(case.wf)


def test_official_refuses_then_the_reservation_is_released_first(parsed):
    case = Case(parsed, standard_replies())
    case.complete_task({"besluit": "afwijzen", "motivering": "Geen wens tot betaald werk gebleken."})
    assert case.types()[3:] == ["ips.budget.vrijgeven.v1", "ips.beschikking.opstellen.v1",
                                "ips.aanvraag.besluit_registreren.v1"]
    besluit = case.last("ips.beschikking.opstellen.v1").params
    assert besluit["gronden"] == [{"code": "inhoudelijke_beoordeling", "tekst": "Geen wens tot betaald werk gebleken."}]
    assert besluit["ondertekenaar"] == SIGNER


def test_wrong_gemeente_forwards_to_the_competent_one_and_moves_the_case(parsed):
    case = Case(parsed, standard_replies(**{"ips.aanvraag.toetsen.v1": lambda p: toetsing(
        bevoegd=False, bevoegdeGemeente="0988")}))
    assert case.types()[:3] == ["ips.aanvraag.toetsen.v1", "ips.beschikking.opstellen.v1",
                                "ips.aanvraag.doorzenden.v1"]
    notice = case.issued[1].params
    assert notice["soort"] == "doorzending"
    assert (notice["van_gemeente_code"], notice["naar_gemeente_code"]) == ("0957", "0988")
    assert case.issued[2].params["naar_gemeente_code"] == "0988"
    assert case.variables["gemeenteCode"] == "0988"  # the task list scopes the assessment to Weert now
    assert case.last("ips.budget.reserveren.v1").params["gemeente_code"] == "0988"
    assert case.task().element_id == "UserTask_beoordelen"


def test_incomplete_then_supplemented_in_time_continues(parsed):
    answers = iter([volledigheid(False), volledigheid(True)])
    case = Case(parsed, standard_replies(**{"ips.aanvraag.volledigheid_controleren.v1": lambda p: next(answers)}))
    assert case.types()[-1] == "ips.aanvraag.herstel_vragen.v1"
    assert case.last("ips.aanvraag.herstel_vragen.v1").params["hersteltermijn"] == "P14D"
    assert rt.next_timer_at(case.wf) == T0 + timedelta(days=14)
    case.advance(timedelta(days=5))
    case.message("ips.aanvraag.aangevuld.v1", {"aanvraagId": "a-1"})
    assert case.types()[-2:] == ["ips.aanvraag.volledigheid_controleren.v1", "ips.budget.reserveren.v1"]
    assert case.task().element_id == "UserTask_beoordelen"


def test_incomplete_and_hersteltermijn_expires_gives_niet_behandelen(parsed):
    case = Case(parsed, standard_replies(**{"ips.aanvraag.volledigheid_controleren.v1": lambda p: volledigheid(False)}))
    case.advance(timedelta(days=13))
    assert "ips.beschikking.opstellen.v1" not in case.types()
    case.advance(timedelta(days=1, seconds=1))
    besluit = case.last("ips.beschikking.opstellen.v1").params
    assert besluit["soort"] == "niet_behandelen" and besluit["gronden"][0]["code"] == "aanvraag_onvolledig"
    assert "Handtekening" in besluit["motivering"]
    assert case.last("ips.aanvraag.besluit_registreren.v1").params["status"] == "niet_behandeld"
    assert rt.is_completed(case.wf)


def test_decision_deadline_flags_overdue_and_a_414_notice_sets_a_new_date(parsed):
    case = Case(parsed, standard_replies())
    deadline = datetime.fromisoformat("2026-04-27T22:00:00+00:00")  # end of 27 April in Amsterdam (CEST)
    assert rt.next_timer_at(case.wf) == deadline
    case.advance(deadline - case.now - timedelta(seconds=1))
    assert case.variables["te_laat"] is False
    # a 4:14 notice before the deadline moves it
    case.complete_task({"besluit": "verdagen", "motivering": "Advies nodig.", "nieuweBeslisdatum": "2026-05-25"})
    notice = case.last("ips.beschikking.opstellen.v1").params
    assert notice["soort"] == "verdaging" and notice["nieuwe_beslisdatum"] == "2026-05-25"
    assert case.last("ips.aanvraag.besluit_registreren.v1").params["status"] is None
    assert rt.next_timer_at(case.wf) == datetime.fromisoformat("2026-05-25T22:00:00+00:00")
    case.advance(timedelta(days=7))
    assert case.variables["te_laat"] is False
    case.advance(timedelta(days=30))
    assert case.variables["te_laat"] is True  # flagged, and the official can still decide
    case.complete_task({"besluit": "toekennen", "motivering": "Akkoord."})
    assert rt.is_completed(case.wf)


def test_verdagen_without_a_new_date_is_refused_by_the_form(parsed):
    case = Case(parsed, standard_replies())
    with pytest.raises(rt.FormValidationError) as refused:
        case.complete_task({"besluit": "verdagen", "motivering": "x"})
    assert [p.field for p in refused.value.problems] == ["nieuweBeslisdatum"]


def test_withdrawal_during_assessment_releases_the_budget(parsed):
    case = Case(parsed, standard_replies())
    case.message("ips.aanvraag.ingetrokken.v1", {"aanvraagId": "a-1"})
    assert case.types()[-1] == "ips.budget.vrijgeven.v1"
    assert rt.is_completed(case.wf)
