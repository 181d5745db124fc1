"""Pure rules of intake: the BSN eleven test, municipality validity by date, completeness, repair deadlines."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from intake.domain import (
    AANVRAAG_AANGEVULD,
    AANVRAAG_INGEDIEND,
    AANVRAAG_INGETROKKEN,
    DOELGROEP_UITKERINGEN,
    UITKERINGEN,
    Aanvraag,
    DocumentInfo,
    Doelgroep,
    DomainError,
    Gemeenteregister,
    InvalidValue,
    Modelgetrouwheid,
    Ondertekening,
    startdatum_ongeldig,
)
from servicekit.kalender import plus_duur
from servicekit.personal_data import elfproef

CSV = Path(__file__).resolve().parents[2] / "services" / "intake" / "data" / "gemeenten.csv"
T0 = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def register() -> Gemeenteregister:
    return Gemeenteregister.from_csv(CSV.read_text(encoding="utf-8"))


@pytest.mark.parametrize("bsn", ["111222333", "123456782", "999998456"])
def test_elfproef_accepts_valid_bsns(bsn):
    assert elfproef(bsn)


@pytest.mark.parametrize("bsn", ["123456789", "111222334", "000000000", "12345678", "1234567820", "12345678a",
                                 "１２３４５６７８２"])
def test_elfproef_refuses_invalid_bsns(bsn):
    assert not elfproef(bsn)


def test_merged_gemeenten_are_valid_only_before_the_merger(register):
    assert register.geldig_op("0501", date(2022, 12, 31))  # Brielle
    assert not register.geldig_op("0501", date(2023, 1, 1))
    assert not register.geldig_op("1992", date(2022, 12, 31))  # Voorne aan Zee
    assert register.geldig_op("1992", date(2023, 1, 1))
    assert register.geldig_op("0957", date(2026, 6, 1))  # Roermond
    assert not register.geldig_op("9999", date(2026, 6, 1))


def test_the_register_counts_342_gemeenten_per_january_2026(register):
    rows = [line.split(",")[0] for line in CSV.read_text(encoding="utf-8").splitlines()[1:] if line]
    assert sum(register.geldig_op(code, date(2026, 1, 1)) for code in set(rows)) == 342


@pytest.mark.parametrize(("start", "duration", "expected"), [
    (date(2026, 3, 2), "P14D", date(2026, 3, 16)),
    (date(2026, 3, 2), "P2W", date(2026, 3, 16)),
    (date(2026, 1, 31), "P1M", date(2026, 2, 28)),
    (date(2024, 2, 29), "P1Y", date(2025, 2, 28)),
    (date(2026, 12, 20), "P1M14D", date(2027, 2, 3)),
])
def test_add_duration(start, duration, expected):
    assert plus_duur(start, duration) == expected


def test_add_duration_refuses_time_parts():
    with pytest.raises(ValueError):
        plus_duur(date(2026, 1, 1), "PT12H")


def aanvraag(*, kandidaat=True, ggz=True, geldig_tot: date | None = date(2027, 1, 1)) -> Aanvraag:
    return Aanvraag.indienen(
        id="a-1", client_referentie="K-1", gemeente_code="0957", woongemeente_code="0957", traject_type="CMD",
        aanvraagdatum=date(2026, 3, 2), gewenste_startdatum=date(2026, 4, 1), ggz_kvk_nummer="12345678",
        ontvangen_op=T0, ondertekening=Ondertekening(kandidaat, ggz),
        doelgroep=Doelgroep("bijstand", wil_betaald_werk=True, andere_reintegratie=False),
        modelgetrouwheid=None if geldig_tot is None else Modelgetrouwheid("C-1", geldig_tot))


def formulier(doc_id="d-1", soort="aanvraagformulier") -> DocumentInfo:
    return DocumentInfo(doc_id, soort, "f.pdf", "application/pdf", 10, "0" * 64, T0)


def test_ingediend_event_carries_the_catalogue_fields_only():
    a = aanvraag()
    (event,) = a.events
    assert event.type == AANVRAAG_INGEDIEND
    assert set(event.data) == {"aanvraagId", "gemeenteCode", "woongemeenteCode", "trajectType", "aanvraagdatum",
                               "gewensteStartdatum", "ggzKvkNummer", "ontvangenOp"}


def test_complete_at_first_check_counts_from_receipt():
    a = aanvraag()
    a.document_toevoegen(formulier())
    result = a.volledigheid_controleren()
    assert result["volledig"] is True and result["ontbrekend"] == []
    assert result["volledigOntvangenOp"] == T0.isoformat()
    assert result["criteria"] == {"doelgroep": True, "wilBetaaldWerk": True, "geenAnderTraject": True,
                                  "certificaatGeldigTot": "2027-01-01"}
    assert a.status == "in_behandeling"


@pytest.mark.parametrize(("kwargs", "with_form", "missing"), [
    ({"kandidaat": False}, True, ["ondertekening_kandidaat"]),
    ({"ggz": False}, True, ["ondertekening_ggz_instelling"]),
    ({"geldig_tot": None}, True, ["modelgetrouwheidscertificaat"]),
    ({}, False, ["aanvraagformulier"]),
])
def test_each_missing_item_makes_it_incomplete(kwargs, with_form, missing):
    a = aanvraag(**kwargs)
    if with_form:
        a.document_toevoegen(formulier())
    else:
        a.document_toevoegen(formulier(soort="overig"))
    result = a.volledigheid_controleren(("aanvraagformulier",))
    assert result["volledig"] is False
    assert [m["code"] for m in result["ontbrekend"]] == missing
    assert all(m["omschrijving"] for m in result["ontbrekend"])
    assert result["volledigOntvangenOp"] is None
    assert a.status == "ingediend"


def test_supplement_that_completes_counts_from_the_supplement():
    a = aanvraag(kandidaat=False)
    a.document_toevoegen(formulier())
    assert not a.volledigheid_controleren()["volledig"]
    assert a.herstel_vragen(["ondertekening_kandidaat"], "P14D", T0) == \
        {"uiterlijk": "2026-03-16", "gevraagdOp": "2026-03-02"}
    assert a.status == "aanvulling_gevraagd"
    later = datetime(2026, 3, 10, 8, 0, tzinfo=UTC)
    a.events.clear()
    a.aanvullen(later, ondertekening=Ondertekening(True, True))
    assert a.status == "aangevuld"
    assert [e.type for e in a.events] == [AANVRAAG_AANGEVULD]
    result = a.volledigheid_controleren()
    assert result["volledig"] and result["volledigOntvangenOp"] == later.isoformat()
    assert a.status == "in_behandeling"


def test_repair_deadline_uses_the_amsterdam_date():
    a = aanvraag()
    late_evening_utc = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)  # already 2 March in Amsterdam
    assert a.herstel_vragen([], "P14D", late_evening_utc) == {"uiterlijk": "2026-03-16", "gevraagdOp": "2026-03-02"}


def test_repair_deadline_ending_on_a_holiday_moves_to_the_next_working_day():
    # asked Friday 20 March 2026: 14 days later is Goede Vrijdag, then Easter and Tweede Paasdag -> Tuesday 7 April
    a = aanvraag()
    assert a.herstel_vragen([], "P14D", datetime(2026, 3, 20, 10, 0, tzinfo=UTC)) == \
        {"uiterlijk": "2026-04-07", "gevraagdOp": "2026-03-20"}
    # asked Friday 18 December 2026: 1 January 2027 is Nieuwjaarsdag, then a weekend -> Monday 4 January
    b = aanvraag()
    assert b.herstel_vragen([], "P14D", datetime(2026, 12, 18, 10, 0, tzinfo=UTC))["uiterlijk"] == "2027-01-04"


def test_supplement_only_when_asked():
    with pytest.raises(DomainError):
        aanvraag().aanvullen(T0)


def test_withdraw_until_decided():
    a = aanvraag()
    a.events.clear()
    assert a.intrekken(T0) is True
    assert a.intrekken(T0) is False
    assert [e.type for e in a.events] == [AANVRAAG_INGETROKKEN]
    decided = aanvraag()
    decided.besluit_registreren("toegekend", "b-1", {"soort": "toekenning"})
    with pytest.raises(DomainError):
        decided.intrekken(T0)


def test_forwarding_keeps_the_receipt_and_records_the_origin():
    a = aanvraag()
    assert a.doorzenden("0988", None) == {"gemeenteCode": "0988", "doorgezondenVan": "0957"}
    assert a.ontvangen_op == T0 and a.status == "doorgezonden"


def test_decision_after_withdrawal_is_recorded_but_status_stays():
    a = aanvraag()
    a.intrekken(T0)
    a.besluit_registreren("niet_behandeld", "b-1",
                          {"soort": "niet_behandelen", "bedragCents": 0, "kenmerk": "K"})
    assert a.status == "ingetrokken"
    assert a.besluit is not None and a.besluit.registratie_id == "b-1" and a.besluit.bedrag_cents == 0


# --- the repair deadline: the ggz may supplement through the end of herstel.uiterlijk (Amsterdam) ---------

def _asked() -> Aanvraag:
    a = aanvraag(kandidaat=False)
    assert a.herstel_vragen(["ondertekening_kandidaat"], "P14D", T0) == \
        {"uiterlijk": "2026-03-16", "gevraagdOp": "2026-03-02"}
    return a


def test_supplement_on_the_last_day_until_midnight_amsterdam_is_accepted():
    a = _asked()
    a.aanvullen(datetime(2026, 3, 16, 22, 59, 59, tzinfo=UTC), ondertekening=Ondertekening(True, True))  # 23:59:59 CET
    assert a.status == "aangevuld"


@pytest.mark.parametrize("moment", [datetime(2026, 3, 16, 23, 0, tzinfo=UTC),  # 00:00 on 17 March in Amsterdam
                                    datetime(2026, 4, 1, 12, 0, tzinfo=UTC)])
def test_supplement_after_the_repair_deadline_is_refused(moment):
    a = _asked()
    a.events.clear()
    with pytest.raises(DomainError, match="hersteltermijn"):
        a.aanvullen(moment, ondertekening=Ondertekening(True, True))
    assert a.status == "aanvulling_gevraagd" and a.aangevuld_op is None and a.events == []
    assert a.ondertekening == Ondertekening(False, True), "nothing changed"


# --- the target group: only bijstand, IOAW, IOAZ and no benefit at all ------------------------------------

@pytest.mark.parametrize(("uitkering", "in_doelgroep"), [
    ("bijstand", True), ("ioaw", True), ("ioaz", True), ("geen", True),
    ("ww", False), ("wia", False), ("wajong", False), ("anders", False),
])
def test_doelgroep_criterion_follows_the_benefit(uitkering, in_doelgroep):
    a = aanvraag()
    a.doelgroep = Doelgroep(uitkering, wil_betaald_werk=True, andere_reintegratie=False)
    assert a.volledigheid_controleren()["criteria"]["doelgroep"] is in_doelgroep


def test_every_accepted_benefit_is_known_to_the_domain():
    assert set(DOELGROEP_UITKERINGEN) < set(UITKERINGEN)
    assert set(UITKERINGEN) - set(DOELGROEP_UITKERINGEN) == {"ww", "wia", "wajong", "anders"}


# --- the desired start date: aanvraagdatum - 2 years .. aanvraagdatum + 1 year ----------------------------

@pytest.mark.parametrize(("aanvraagdatum", "start", "ok"), [
    (date(2026, 3, 2), date(2024, 3, 2), True),
    (date(2026, 3, 2), date(2024, 3, 1), False),
    (date(2026, 3, 2), date(2027, 3, 2), True),
    (date(2026, 3, 2), date(2027, 3, 3), False),
    (date(2026, 3, 2), date(9999, 12, 31), False),
    (date(2026, 3, 2), date(1, 1, 1), False),
    (date(2024, 2, 29), date(2025, 2, 28), True),  # a leap day plus a year clamps to 28 February
    (date(2024, 2, 29), date(2025, 3, 1), False),
    (date(9999, 6, 1), date(9999, 12, 31), True),  # no overflow at the end of the calendar
])
def test_desired_start_date_range(aanvraagdatum, start, ok):
    assert (startdatum_ongeldig(aanvraagdatum, start) is None) is ok


def test_indienen_refuses_a_start_date_out_of_range():
    with pytest.raises(InvalidValue) as refused:
        Aanvraag.indienen(
            id="a-1", client_referentie="K-1", gemeente_code="0957", woongemeente_code="0957", traject_type="CMD",
            aanvraagdatum=date(2026, 3, 2), gewenste_startdatum=date(9999, 12, 31), ggz_kvk_nummer="12345678",
            ontvangen_op=T0, ondertekening=Ondertekening(True, True),
            doelgroep=Doelgroep("bijstand", wil_betaald_werk=True, andere_reintegratie=False))
    assert refused.value.name == "gewensteStartdatum" and refused.value.code == "buiten_bereik"
