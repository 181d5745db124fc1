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
            "betaalschema": [{"moment": "toekenning", "percentage": 60}, {"moment": "vaststelling", "percentage": 40}],
            "terugvorderingstermijnJaren": 5,
            "bevoegdeGemeente": "0957", "beslisdatum": "2026-04-27", "beslistermijnEinde": "2026-04-27",
            "beslistermijnVerstrijktOp": "2026-04-27T22:00:00+00:00", "hersteltermijn": "P14D", **overrides}


def volledigheid(volledig: bool = True) -> dict[str, Any]:
    missing = [] if volledig else [{"code": "handtekening", "omschrijving": "Handtekening"}]
    return {"volledig": volledig, "ontbrekend": missing,
            "volledigOntvangenOp": T0.isoformat(), "volgnummer": 7 if volledig else None, "criteria": CRITERIA}


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
                                               "bedragCents": p["bedrag_cents"], "budgetperiode": "2026",
                                               "financiering": {"niveau": "budget", "rijkPercentage": 50,
                                                                "gemeentenPercentage": 50}},
        "ips.budget.vastleggen.v1": lambda p: {"bevestigd": True, "bedragCents": 1132500, "budgetperiode": "2026"},
        "ips.budget.vrijgeven.v1": lambda p: {},
        "ips.beschikking.opstellen.v1": lambda p: {"beschikkingId": f"b-{p['soort']}", "soort": p["soort"],
                                                   "datum": "2026-03-02", "tekst": "..."},
        "ips.aanvraag.besluit_registreren.v1": lambda p: {},
        "ips.aanvraag.herstel_vragen.v1": lambda p: {"uiterlijk": "2026-03-16", "gevraagdOp": "2026-03-02"},
        "ips.aanvraag.doorzenden.v1": lambda p: {"gemeenteCode": p["naar_gemeente_code"]},
        "ips.bericht.versturen.v1": lambda p: {"berichtId": f"m-{p['beschikking']['beschikkingId']}"},
        "ips.betaling.opdrachten_aanmaken.v1": lambda p: {"opdrachten": [], "totaalCents": p["bedrag_cents"],
                                                          "betaaldCents": 0},
        "ips.budget.financieel_registreren.v1": lambda p: {},
        "ips.traject.stopbericht_doorgeven.v1": lambda p: {"geannuleerdeOpdrachten": []},
        "ips.vaststelling.berekenen.v1": lambda p: {"vastgesteldCents": 188750, "regel": "pro_rata_months",
                                                    "maanden": 6},
        "ips.vaststelling.verrekenen.v1": lambda p: {"betaaldCents": 1132500,
                                                     "saldoCents": p["vastgesteld_cents"] - 1132500,
                                                     "soort": "terugvordering"},
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
    assert reserve["volgnummer"] == 7  # intake's place in the order of receipt, on to grants' allocator
    task = case.task()
    assert task.element_id == "UserTask_beoordelen" and task.lane == "Behandelaar"
    assert rt.required_mandate(task.mandate, {"besluit": "toekennen"}) == "toekenning"
    case.complete_task({"besluit": "toekennen", "motivering": "Voldoet aan de regeling."})
    assert case.types()[3:] == ["ips.budget.vastleggen.v1", "ips.beschikking.opstellen.v1",
                                "ips.aanvraag.besluit_registreren.v1", "ips.bericht.versturen.v1",
                                "ips.betaling.opdrachten_aanmaken.v1", "ips.budget.financieel_registreren.v1"]
    besluit = case.last("ips.beschikking.opstellen.v1").params
    assert besluit["soort"] == "toekenning" and besluit["bedrag_cents"] == 1132500
    assert besluit["ondertekenaar"] == SIGNER and besluit["gemeente_code"] == "0957"
    assert case.last("ips.aanvraag.besluit_registreren.v1").params["status"] == "toegekend"
    payment = case.last("ips.betaling.opdrachten_aanmaken.v1").params
    assert payment["bedrag_cents"] == 1132500 and payment["moment"] == "toekenning"
    assert payment["betaalschema"] == [{"moment": "toekenning", "percentage": 60},
                                       {"moment": "vaststelling", "percentage": 40}]  # the regulation's schedule
    assert rt.active_element_ids(case.wf) == ["ReceiveTask_traject"]  # the trajectory runs
    assert case.variables["looptijd_maanden"] == 36
    assert case.variables["einddatum"] == "2029-03-31"  # started 2026-04-01, 36 months


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
                                "ips.aanvraag.besluit_registreren.v1", "ips.bericht.versturen.v1"]
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
    # the ggz was told "uiterlijk 16 maart": the term ends at midnight after that day in Amsterdam
    assert rt.next_timer_at(case.wf) == datetime.fromisoformat("2026-03-16T23:00:00+00:00")
    case.advance(datetime.fromisoformat("2026-03-16T22:30:00+00:00") - case.now)  # 23:30 on the last day
    assert "ips.beschikking.opstellen.v1" not in case.types()
    case.message("ips.aanvraag.aangevuld.v1", {"aanvraagId": "a-1", "aangevuldOp": "2026-03-16T22:30:00+00:00"})
    # Awb 4:15: asked on 2 March, supplemented on 16 March (Amsterdam): suspended 3..15 March, 13 days; the
    # statutory term (27 April) + 13 days ends on Sunday 10 May, so the Atw gives Monday 11 May
    assert case.variables["opgeschorte_dagen"] == 13
    assert case.variables["beslisdatum"] == "2026-05-11"
    assert rt.next_timer_at(case.wf) == datetime.fromisoformat("2026-05-11T22:00:00+00:00")
    assert case.types()[-2:] == ["ips.aanvraag.volledigheid_controleren.v1", "ips.budget.reserveren.v1"]
    assert case.task().element_id == "UserTask_beoordelen"


def test_incomplete_and_hersteltermijn_expires_gives_niet_behandelen(parsed):
    case = Case(parsed, standard_replies(**{"ips.aanvraag.volledigheid_controleren.v1": lambda p: volledigheid(False)}))
    case.advance(datetime.fromisoformat("2026-03-16T22:59:59+00:00") - case.now)
    assert "ips.beschikking.opstellen.v1" not in case.types()
    case.advance(timedelta(seconds=2))
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
    assert rt.active_element_ids(case.wf) == ["ReceiveTask_traject"]


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


def granted(parsed: rt.ParsedDefinition, **replies: Any) -> Case:
    aanvraag = {**AANVRAAG, "trajectType": "CMD", "gewensteStartdatum": "2024-02-01"}
    case = Case(parsed, standard_replies(**replies), aanvraag, now=datetime(2024, 1, 15, 9, tzinfo=UTC))
    case.complete_task({"besluit": "toekennen", "motivering": "Akkoord."})
    assert rt.active_element_ids(case.wf) == ["ReceiveTask_traject"]
    return case


def test_extension_once_by_the_gemeente_and_a_second_is_refused_without_assessment(parsed):
    toets = iter([{"toegestaan": True, "weigeringsgronden": [], "nieuweEinddatum": "2027-01-31"},
                  {"toegestaan": False, "nieuweEinddatum": None,
                   "weigeringsgronden": [{"code": "al_verlengd", "tekst": "Het traject is al eenmaal verlengd."}]}])
    case = granted(parsed, **{"ips.traject.verlenging_toetsen.v1": lambda p: next(toets)})
    assert case.variables["einddatum"] == "2026-01-31"  # CMD started 2024-02-01: 24 months
    case.message("ips.traject.verlenging_gevraagd.v1", {"aanvraagId": "a-1", "maanden": 12})
    asked = case.last("ips.traject.verlenging_toetsen.v1").params
    assert (asked["maanden"], asked["einddatum"], asked["eerdere_verlengingen"]) == (12, "2026-01-31", 0)
    task = case.task()
    assert task.element_id == "UserTask_verlenging"
    assert rt.required_mandate(task.mandate, {"besluit": "toekennen"}) == "verlenging"
    case.complete_task({"besluit": "toekennen", "motivering": "Goede voortgang."})
    letter = case.last("ips.beschikking.opstellen.v1").params
    assert letter["soort"] == "verlenging" and letter["nieuwe_einddatum"] == "2027-01-31"
    assert case.variables["einddatum"] == "2027-01-31" and case.variables["verlengingen"] == 1
    assert rt.active_element_ids(case.wf) == ["ReceiveTask_traject"]
    # the second request: grants refuses it, the refusal goes out without a task
    case.message("ips.traject.verlenging_gevraagd.v1", {"aanvraagId": "a-1", "maanden": 3})
    assert case.last("ips.traject.verlenging_toetsen.v1").params["eerdere_verlengingen"] == 1
    refusal = case.last("ips.beschikking.opstellen.v1").params
    assert refusal["soort"] == "afwijzing_verlenging" and refusal["gronden"][0]["code"] == "al_verlengd"
    assert refusal["ondertekenaar"] is None
    assert case.variables["einddatum"] == "2027-01-31"
    assert rt.active_element_ids(case.wf) == ["ReceiveTask_traject"]


def test_stopbericht_then_report_then_vaststelling_and_settlement(parsed):
    case = granted(parsed)
    case.message("ips.traject.stopbericht.v1", {"aanvraagId": "a-1", "einddatum": "2024-06-30"})
    assert case.last("ips.traject.stopbericht_doorgeven.v1").params["einddatum"] == "2024-06-30"
    assert rt.active_element_ids(case.wf) == ["ReceiveTask_eindverslag"]
    case.message("ips.traject.eindverslag_ingediend.v1", {"aanvraagId": "a-1", "documentId": "d-9"})
    calc = case.last("ips.vaststelling.berekenen.v1").params
    assert (calc["startdatum"], calc["geplande_einddatum"], calc["werkelijke_einddatum"]) == (
        "2024-02-01", "2026-01-31", "2024-06-30")
    task = case.task()
    assert task.element_id == "UserTask_vaststelling"
    assert rt.required_mandate(task.mandate, {"besluit": "vaststellen"}) == "vaststelling"
    case.complete_task({"besluit": "vaststellen", "motivering": "Traject vroegtijdig beëindigd."})
    letter = case.last("ips.beschikking.opstellen.v1").params
    assert letter["soort"] == "vaststelling" and letter["vastgesteld_cents"] == 188750
    assert case.last("ips.aanvraag.besluit_registreren.v1").params["status"] == "vastgesteld"
    settle = case.last("ips.vaststelling.verrekenen.v1").params
    assert settle["vastgesteld_cents"] == 188750 and settle["terugvorderingstermijn_jaren"] == 5
    booked = case.last("ips.budget.financieel_registreren.v1").params
    assert (booked["betaald_cents"], booked["teruggevorderd_cents"]) == (1132500, 1132500 - 188750)
    assert rt.is_completed(case.wf)


def test_the_planned_end_date_ends_the_trajectory_without_a_stopbericht(parsed):
    case = granted(parsed)
    assert rt.next_timer_at(case.wf) == datetime.fromisoformat("2026-01-31T23:00:00+00:00")
    case.advance(datetime.fromisoformat("2026-02-01T00:00:00+00:00") - case.now)
    assert rt.active_element_ids(case.wf) == ["ReceiveTask_eindverslag"]
    assert "ips.traject.stopbericht_doorgeven.v1" not in case.types()


@pytest.mark.parametrize(("start", "months", "end"), [
    ("2024-02-01", 24, "2026-01-31"), ("2024-01-01", 36, "2026-12-31"), ("2024-02-01", 36, "2027-01-31"),
    ("2023-03-31", 1, "2023-04-30"), ("2024-02-29", 12, "2025-02-28"), ("2024-01-31", 1, "2024-02-29"),
])
def test_einde_looptijd_is_the_day_before_the_same_day_n_months_later_or_the_month_end(start, months, end):
    from process_engine.procesfuncties import einde_looptijd

    assert einde_looptijd(start, months) == end


@pytest.mark.parametrize(("gevraagd", "aangevuld", "dagen"), [
    ("2026-03-02", "2026-03-07T10:00:00+00:00", 4),   # suspended 3, 4, 5 and 6 March: not the day of the supplement
    ("2026-03-02", "2026-03-06T23:30:00+00:00", 4),   # 00:30 on 7 March in Amsterdam
    ("2026-03-02", "2026-03-03T08:00:00+00:00", 0),   # supplemented the day after the request
    ("2026-03-02", "2026-03-02T12:00:00+00:00", 0),   # supplemented the same day
    ("2026-03-02", None, 0),
])
def test_opschortingsdagen_follow_awb_4_15(gevraagd, aangevuld, dagen):
    from process_engine.procesfuncties import opschortingsdagen

    assert opschortingsdagen(gevraagd, aangevuld) == dagen


@pytest.mark.parametrize(("einde", "dagen", "beslisdatum"), [
    # received Monday 2 March 2026: the statutory term ends on Koningsdag 27 April; asked that day, supplemented on
    # Friday 6 March: 3 days suspended -> Thursday 30 April (the old rule added 4 days to the moved 28 April and
    # ended on Saturday 2 May)
    ("2026-04-27", 3, "2026-04-30"),
    ("2026-04-27", 0, "2026-04-28"),  # nothing suspended: the Atw moves the statutory end past Koningsdag
    # received Thursday 12 March: term ends 7 May; asked that day, supplemented Friday 20 March: 7 days -> Hemelvaart
    # 14 May, gelijkgesteld 15 May, weekend -> Monday 18 May (the old rule: 15 May)
    ("2026-05-07", 7, "2026-05-18"),
    ("2027-03-19", 7, "2027-03-30"),  # 26 March 2027 is Goede Vrijdag, then Easter -> Tuesday 30 March
    ("2026-12-21", 11, "2027-01-04"),  # across the year end: 1 January 2027, then a weekend
])
def test_beslisdatum_na_opschorting_extends_the_statutory_term_then_applies_the_atw(einde, dagen, beslisdatum):
    from process_engine.procesfuncties import beslisdatum_na_opschorting

    assert beslisdatum_na_opschorting(einde, dagen) == beslisdatum


@pytest.mark.parametrize(("uiterlijk", "termijn", "aangevuld", "expected"), [
    ("2026-03-16", "P14D", "2026-03-07T10:00:00+00:00", "2026-05-01"),  # 4 days suspended
    ("2026-03-16", "P2W", "2026-03-06T23:30:00+00:00", "2026-05-01"),   # 00:30 on 7 March in Amsterdam
    ("2026-03-16", "P14D", "2026-03-02T12:00:00+00:00", "2026-04-28"),  # same day: 27 April is Koningsdag
    ("2026-03-16", "P14D", None, "2026-04-27"),
])
def test_the_helper_of_earlier_diagram_versions_counts_the_same_way(uiterlijk, termijn, aangevuld, expected):
    from process_engine.procesfuncties import opgeschorte_beslisdatum

    assert opgeschorte_beslisdatum("2026-04-27", uiterlijk, termijn, aangevuld) == expected


def test_a_supplement_across_a_holiday_and_a_gelijkgestelde_dag_moves_the_timer(parsed):
    answers = iter([volledigheid(False), volledigheid(True)])
    case = Case(parsed, standard_replies(**{
        "ips.aanvraag.toetsen.v1": lambda p: toetsing(beslisdatum="2026-05-07", beslistermijnEinde="2026-05-07"),
        "ips.aanvraag.volledigheid_controleren.v1": lambda p: next(answers),
        "ips.aanvraag.herstel_vragen.v1": lambda p: {"uiterlijk": "2026-03-26", "gevraagdOp": "2026-03-12"}}))
    case.message("ips.aanvraag.aangevuld.v1", {"aanvraagId": "a-1", "aangevuldOp": "2026-03-20T09:00:00+00:00"})
    assert case.variables["opgeschorte_dagen"] == 7
    assert case.variables["beslisdatum"] == "2026-05-18"  # 14 May Hemelvaart, 15 May gelijkgesteld, weekend
    assert rt.next_timer_at(case.wf) == datetime.fromisoformat("2026-05-18T22:00:00+00:00")  # the overdue timer
    assert case.task().element_id == "UserTask_beoordelen"
    # a 4:14 notice is checked against the same date
    case.complete_task({"besluit": "verdagen", "motivering": "Advies nodig.", "nieuweBeslisdatum": "2026-06-15"})
    assert case.last("ips.beschikking.opstellen.v1").params["huidige_beslisdatum"] == "2026-05-18"


def test_two_supplements_extend_the_term_by_both_suspensions(parsed):
    answers = iter([volledigheid(False), volledigheid(False), volledigheid(True)])
    asked = iter([{"uiterlijk": "2026-03-16", "gevraagdOp": "2026-03-02"},
                  {"uiterlijk": "2026-03-24", "gevraagdOp": "2026-03-10"}])
    case = Case(parsed, standard_replies(**{"ips.aanvraag.volledigheid_controleren.v1": lambda p: next(answers),
                                            "ips.aanvraag.herstel_vragen.v1": lambda p: next(asked)}))
    case.message("ips.aanvraag.aangevuld.v1", {"aanvraagId": "a-1", "aangevuldOp": "2026-03-10T09:00:00+00:00"})
    assert case.variables["opgeschorte_dagen"] == 7  # 3..9 March
    case.message("ips.aanvraag.aangevuld.v1", {"aanvraagId": "a-1", "aangevuldOp": "2026-03-13T09:00:00+00:00"})
    assert case.variables["opgeschorte_dagen"] == 9  # and 11, 12 March
    assert case.variables["beslisdatum"] == "2026-05-06"  # 27 April + 9 days, a Wednesday


def test_a_414_notice_grants_refuses_sends_the_official_back_to_the_task(parsed):
    replies = standard_replies()
    del replies["ips.beschikking.opstellen.v1"]  # answered by hand below
    case = Case(parsed, replies)
    case.complete_task({"besluit": "verdagen", "motivering": "x", "nieuweBeslisdatum": "2026-03-01"})
    notice = case.last("ips.beschikking.opstellen.v1")
    assert notice.params["huidige_beslisdatum"] == "2026-04-27"
    with rt.use_clock(case.now):
        outcome = rt.fail_command(case.wf, notice.command_id, "IPS-VERDAGING-001",
                                  "De nieuwe beslisdatum moet na 2026-04-27 liggen.")
    assert not isinstance(outcome, rt.Incident)
    assert case.task().element_id == "UserTask_beoordelen"  # back with the official, nothing was sent
    assert "ips.aanvraag.besluit_registreren.v1" not in case.types()
    assert rt.next_timer_at(case.wf) == datetime.fromisoformat("2026-04-27T22:00:00+00:00")
