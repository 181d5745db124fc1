"""The ggz's reports during the trajectory (pure domain and contracts): extension request, stopbericht deel 1,
beëindigingsverslag, and the letters of the trajectory (extension, vaststelling) registered on the application."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pydantic
import pytest
from tests.unit.test_intake_domain import aanvraag

from intake.domain import (
    TRAJECT_EINDVERSLAG_INGEDIEND,
    TRAJECT_STOPBERICHT,
    TRAJECT_VERLENGING_GEVRAAGD,
    Aanvraag,
    DocumentInfo,
    DomainError,
    InvalidValue,
    Verlengingsverzoek,
)
from intake.messages import BesluitRegistrerenParams, StopberichtMelden, VerlengingVragen
from intake.repository import from_doc, to_doc

LATER = datetime(2026, 9, 1, 10, 0, tzinfo=UTC)


def granted() -> Aanvraag:
    a = aanvraag()
    a.besluit_registreren("toegekend", "b-1",
                          {"soort": "toekenning", "kenmerk": "IPS/1", "bedragCents": 1_132_500})
    a.events.clear()
    return a


def verslag(doc_id: str = "v-1") -> DocumentInfo:
    return DocumentInfo(doc_id, "beeindigingsverslag", "verslag.pdf", "application/pdf", 10, "0" * 64, LATER)


def test_extension_request_emits_the_catalogue_fields_only():
    a = granted()
    assert a.verlenging_vragen(Verlengingsverzoek("r-1", 12, LATER, toelichting="Kandidaat heeft net werk."))
    (event,) = a.events
    assert event.type == TRAJECT_VERLENGING_GEVRAAGD
    assert event.data == {"aanvraagId": "a-1", "maanden": 12, "gevraagdOp": LATER.isoformat()}
    assert a.status == "toegekend" and [v.maanden for v in a.verlengingsverzoeken] == [12]


def test_extension_request_is_recorded_once_per_id_and_listed():
    a = granted()
    a.verlenging_vragen(Verlengingsverzoek("r-1", 12, LATER))
    assert a.verlenging_vragen(Verlengingsverzoek("r-1", 12, LATER)) is False
    assert len(a.events) == 1
    # a second request is recorded: refusing it (one extension) is the gemeente's decision, not the portal's
    assert a.verlenging_vragen(Verlengingsverzoek("r-2", 13, LATER))
    assert [v.id for v in a.verlengingsverzoeken] == ["r-1", "r-2"]


@pytest.mark.parametrize("status", ["ingediend", "in_behandeling", "afgewezen", "niet_behandeld", "ingetrokken",
                                    "vastgesteld"])
def test_extension_only_while_granted(status):
    a = aanvraag()
    a.status = status
    with pytest.raises(DomainError):
        a.verlenging_vragen(Verlengingsverzoek("r-1", 6, LATER))
    assert a.verlengingsverzoeken == [] and [e.type for e in a.events] == ["ips.aanvraag.ingediend.v1"]


def test_no_extension_after_a_stopbericht():
    a = granted()
    a.stopbericht_melden(date(2026, 8, 31), LATER)
    with pytest.raises(DomainError):
        a.verlenging_vragen(Verlengingsverzoek("r-1", 6, LATER))


def test_stopbericht_once_keeps_the_status_and_emits_the_catalogue_fields():
    a = granted()
    a.stopbericht_melden(date(2026, 8, 31), LATER)
    assert a.status == "toegekend"
    assert a.stopbericht is not None and a.stopbericht.einddatum == date(2026, 8, 31)
    (event,) = a.events
    assert event.type == TRAJECT_STOPBERICHT
    assert event.data == {"aanvraagId": "a-1", "einddatum": "2026-08-31", "gemeldOp": LATER.isoformat()}
    with pytest.raises(DomainError):
        a.stopbericht_melden(date(2026, 9, 30), LATER)
    assert len(a.events) == 1


def test_stopbericht_end_date_not_before_the_start():
    a = granted()  # start 2026-04-01
    a.stopbericht_melden(date(2026, 4, 1), LATER)  # the start date itself is allowed
    b = granted()
    with pytest.raises(InvalidValue) as refused:
        b.stopbericht_melden(date(2026, 3, 31), LATER)
    assert refused.value.name == "einddatum" and b.stopbericht is None and b.events == []


def test_stopbericht_only_while_granted():
    a = aanvraag()
    with pytest.raises(DomainError):
        a.stopbericht_melden(date(2026, 8, 31), LATER)


def test_final_report_once_as_a_document_with_its_event():
    a = granted()
    a.eindverslag_indienen(verslag())
    assert a.eindverslag_document_id == "v-1" and a.eindverslag_ingediend_op == LATER
    assert [d.id for d in a.documenten if d.soort == "beeindigingsverslag"] == ["v-1"]
    (event,) = a.events
    assert event.type == TRAJECT_EINDVERSLAG_INGEDIEND
    assert event.data == {"aanvraagId": "a-1", "documentId": "v-1", "ingediendOp": LATER.isoformat()}
    with pytest.raises(DomainError):
        a.eindverslag_indienen(verslag("v-2"))
    assert len(a.events) == 1 and len(a.documenten) == 1  # the report; the letter is listed by reference


def test_final_report_only_while_granted():
    with pytest.raises(DomainError):
        aanvraag().eindverslag_indienen(verslag())


def test_extension_letters_keep_the_grant_and_vaststelling_sets_the_status():
    a = granted()
    a.besluit_registreren(None, "b-2", {"soort": "verlenging", "kenmerk": "IPS/2"})
    a.besluit_registreren("toegekend", "b-3", {"soort": "verlenging", "kenmerk": "IPS/3"})
    assert a.status == "toegekend"
    assert a.besluit is not None and a.besluit.registratie_id == "b-1" and a.besluit.soort == "toekenning"
    a.besluit_registreren("vastgesteld", "b-4",
                          {"soort": "vaststelling", "kenmerk": "IPS/4", "bedragCents": 188_750})
    assert a.status == "vastgesteld"
    assert a.vaststelling is not None and a.vaststelling.bedrag_cents == 188_750
    assert a.besluit == a.vaststelling, "the decision the status stands on"
    assert [b.registratie_id for b in a.beschikkingen] == ["b-1", "b-2", "b-3", "b-4"]
    assert a.documenten == [], "letters are listed by reference; notifications keeps them"
    a.besluit_registreren("vastgesteld", "b-4", {"soort": "vaststelling"})
    assert len(a.beschikkingen) == 4, "the same letter twice is listed once"
    assert a.events == [], "letters come from the process: no portal events"


def test_unknown_status_is_refused():
    with pytest.raises(DomainError):
        granted().besluit_registreren("beeindigd", "b-2", {})


@pytest.mark.parametrize("status", ["toegekend", "afgewezen", "niet_behandeld", "vastgesteld", None, "None"])
def test_command_accepts_every_letter_status(status):
    params = BesluitRegistrerenParams.model_validate({"aanvraag_id": "a", "status": status, "beschikking": {}})
    assert params.status == (None if status == "None" else status)


def test_the_trajectory_survives_the_round_trip_through_the_document():
    a = granted()
    a.verlenging_vragen(Verlengingsverzoek("r-1", 12, LATER, toelichting="x"))
    a.stopbericht_melden(date(2026, 8, 31), LATER)
    a.eindverslag_indienen(verslag())
    a.besluit_registreren("vastgesteld", "b-4", {"soort": "vaststelling"})
    a.events.clear()
    back = from_doc(to_doc(a))
    assert back == a


@pytest.mark.parametrize("body", [{"maanden": 0}, {"maanden": 25}, {"maanden": "12"}, {"maanden": True}, {},
                                  {"maanden": 6, "diagnose": "F20"}, {"maanden": 6, "toelichting": "x" * 2001}])
def test_extension_request_contract(body):
    with pytest.raises(pydantic.ValidationError):
        VerlengingVragen.model_validate(body)


def test_extension_request_contract_accepts_1_to_24():
    assert VerlengingVragen.model_validate({"maanden": 24}).maanden == 24
    assert VerlengingVragen.model_validate({"maanden": 1, "toelichting": "kort"}).toelichting == "kort"


@pytest.mark.parametrize("body", [{}, {"einddatum": "morgen"}, {"einddatum": "2026-08-31", "reden": "ziek"}])
def test_stopbericht_contract(body):
    with pytest.raises(pydantic.ValidationError):
        StopberichtMelden.model_validate(body)

