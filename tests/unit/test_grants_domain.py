"""The pure rules of grants: regulation choice, tariffs, deadlines, mandate, eligibility, letters."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError
from tests.unit.brief_scenarios import tekst_van

from grants.domain import (
    BeschikkingVerzoek,
    Criteria,
    Grond,
    MandaatOntbreekt,
    Ondertekenaar,
    controleer_mandaat,
    kies_regeling,
    mandaattekst,
    stel_beschikking_op,
    toets,
    weigeringsgronden,
)
from grants.regelingen import REGELINGEN_DIR, RegelingConfig, load_gemeenten, load_regelingen
from servicekit.kalender import bedrag, bezwaartermijn_einde, feestdagen

REGELINGEN = load_regelingen()
R2019, R2023 = REGELINGEN["ips-cmd-2019"], REGELINGEN["ips-gemeenten-2023"]
ALL = list(REGELINGEN.values())
GOED = Criteria(doelgroep=True, wil_betaald_werk=True, geen_ander_traject=True,
                certificaat_geldig_tot=date(2027, 1, 1))
ROERMOND = Ondertekenaar("behandelaar-1", "J. Jansen", frozenset({"toekenning", "afwijzing"}))


# ------------------------------------------------------------------------------------------ regulations

@pytest.mark.parametrize(("aanvraagdatum", "regeling", "binnen"), [
    (date(2019, 5, 1), "ips-cmd-2019", True),
    (date(2019, 11, 29), "ips-cmd-2019", True),
    (date(2019, 11, 30), "ips-cmd-2019", False),
    (date(2023, 2, 28), "ips-cmd-2019", False),
    (date(2023, 3, 1), "ips-gemeenten-2023", True),
    (date(2026, 12, 31), "ips-gemeenten-2023", True),
    (date(2027, 1, 1), "ips-gemeenten-2023", False),
    (date(2019, 4, 30), "ips-cmd-2019", False),
])
def test_the_regulation_is_chosen_by_application_date(aanvraagdatum, regeling, binnen):
    chosen = kies_regeling(ALL, aanvraagdatum)
    assert chosen.id == regeling
    assert chosen.aanvraagperiode.bevat(aanvraagdatum) is binnen


def test_tariffs_durations_and_types_come_from_the_configuration():
    assert R2023.tarief("CMD") == 800_000 and R2023.tarief("EPA") == 1_132_500
    assert R2019.tarief("CMD") == 800_000 and R2019.tarief("EPA") is None
    assert R2023.looptijd_maanden == {"CMD": 24, "EPA": 36} and R2019.looptijd_maanden["CMD"] == 24
    assert R2019.cap_per_gemeente == 5 and R2023.cap_per_gemeente is None
    assert [(p.id, p.plafond_cents) for p in R2023.budgetperioden] == [
        ("2023-2024", 2_150_000_000), ("2025", 1_000_000_000), ("2026", 1_010_000_000)]
    assert R2019.budgetperioden[0].plafond_cents == 75 * 800_000


def test_budget_period_by_date_with_fallback_to_the_nearest():
    assert R2023.budgetperiode(date(2024, 12, 31)).id == "2023-2024"
    assert R2023.budgetperiode(date(2025, 1, 1)).id == "2025"
    assert R2023.budgetperiode(date(2026, 6, 1)).id == "2026"
    assert R2023.budgetperiode(date(2027, 3, 1)).id == "2026"


def test_co_financing_per_case_in_2019_and_at_budget_level_in_2023():
    assert R2019.financiering(800_000) == {"niveau": "traject", "rijkCents": 400_000, "gemeenteCents": 400_000}
    split = R2023.financiering(1_132_500)
    assert split["niveau"] == "budget" and split["rijkPercentage"] == 50
    assert split["rijkCents"] + split["gemeenteCents"] == 1_132_500


def test_a_bad_regulation_file_is_refused_naming_the_field(tmp_path: Path):
    raw = json.loads((REGELINGEN_DIR / "ips-gemeenten-2023.json").read_text())
    raw["tarieven"] = {"CMD": 800_000}
    with pytest.raises(ValidationError, match="EPA"):
        RegelingConfig.model_validate(raw)
    raw = json.loads((REGELINGEN_DIR / "ips-gemeenten-2023.json").read_text())
    raw["mandaattekst"] = "zonder placeholders"
    with pytest.raises(ValidationError, match="mandaattekst"):
        RegelingConfig.model_validate(raw)
    raw = json.loads((REGELINGEN_DIR / "ips-gemeenten-2023.json").read_text())
    raw["onbekendVeld"] = 1
    with pytest.raises(ValidationError, match="onbekendVeld"):
        RegelingConfig.model_validate(raw)


# ---------------------------------------------------------------------------------------------- toetsing

def test_toetsing_deadline_competence_and_overdue_moment():
    t = toets(ALL, "0957", "0988", date(2026, 3, 1), datetime(2026, 3, 1, 23, 30, tzinfo=UTC))
    # 23:30 UTC on 1 March is 2 March in Amsterdam; 8 weeks later is Monday 27 April, Koningsdag 2026,
    # so the deadline moves to Tuesday 28 April (Algemene termijnenwet)
    assert t.regeling == "ips-gemeenten-2023" and t.binnen_aanvraagperiode
    assert not t.bevoegd and t.bevoegde_gemeente == "0988"
    assert t.beslisdatum == date(2026, 4, 28)
    assert t.beslistermijn_einde == date(2026, 4, 27)  # the statutory end itself, which Awb 4:15 extends
    # overdue from the start of 29 April in Amsterdam (summer time: 22:00 UTC the day before)
    assert t.beslistermijn_verstrijkt_op == datetime(2026, 4, 28, 22, 0, tzinfo=UTC)
    assert t.hersteltermijn == "P14D"
    assert toets(ALL, "0957", "0957", date(2026, 3, 1), datetime(2026, 3, 1, 9, tzinfo=UTC)).bevoegd


def test_a_decision_deadline_on_a_saturday_moves_to_the_monday():
    # received Saturday 7 March 2026: 8 weeks later is Saturday 2 May, so the decision is due Monday 4 May
    t = toets(ALL, "0957", "0957", date(2026, 3, 7), datetime(2026, 3, 7, 10, tzinfo=UTC))
    assert t.beslisdatum == date(2026, 5, 4)
    assert t.beslistermijn_verstrijkt_op == datetime(2026, 5, 4, 22, 0, tzinfo=UTC)
    # a deadline on a working day stays where it is: received Tuesday 3 March -> Tuesday 28 April
    assert toets(ALL, "0957", "0957", date(2026, 3, 3), datetime(2026, 3, 3, 10, tzinfo=UTC)).beslisdatum == \
        date(2026, 4, 28)


# ----------------------------------------------------------------------------------- objection deadline

@pytest.mark.parametrize(("verzonden", "einde"), [
    (date(2026, 11, 23), date(2027, 1, 4)),   # +42 days is a Monday
    (date(2027, 2, 15), date(2027, 3, 30)),   # +42 days is Easter Monday 2027-03-29
    (date(2026, 1, 17), date(2026, 3, 2)),    # +42 days is a Saturday -> Monday
    (date(2026, 11, 14), date(2026, 12, 28)),  # +42 days is 26 Dec (Saturday) -> Sunday 27 -> Monday 28
    (date(2025, 11, 13), date(2025, 12, 29)),  # +42 days is Christmas Day (Thursday) -> Friday 26th is 2e Kerstdag
    (date(2026, 3, 16), date(2026, 4, 28)),   # +42 days is Monday 27 April 2026: Koningsdag
    (date(2025, 3, 24), date(2025, 5, 6)),    # +42 days is Monday 5 May (bevrijdingsdag)
    # docs/domain.md: sent 2026-04-02, +42 days is Hemelvaartsdag 14 May, 15 May is gelijkgesteld, then a weekend
    (date(2026, 4, 2), date(2026, 5, 18)),
    (date(2027, 2, 12), date(2027, 3, 30)),   # +42 days is Goede Vrijdag 26 March 2027 -> Tuesday after Easter
])
def test_objection_deadline_six_weeks_moved_past_weekends_and_holidays(verzonden, einde):
    assert bezwaartermijn_einde(verzonden) == einde


def test_public_holidays_of_the_algemene_termijnenwet():
    f2027 = feestdagen(2027)
    assert {date(2027, 3, 29), date(2027, 5, 6), date(2027, 5, 17), date(2027, 4, 27)} <= f2027
    assert date(2027, 3, 26) in f2027  # Goede Vrijdag counts for the Atw (art. 3 lid 2)
    assert date(2027, 5, 7) in f2027  # gelijkgesteld by the Crown (art. 3 lid 3)
    assert date(2025, 4, 26) in feestdagen(2025)  # 27 April 2025 is a Sunday: Koningsdag on the 26th
    assert date(2025, 4, 27) not in feestdagen(2025)


# ------------------------------------------------------------------------------------------- mandate

def test_mandate_text_from_the_regulation_template():
    assert mandaattekst(R2023, "Roermond", ROERMOND) == (
        "De Minister van Sociale Zaken en Werkgelegenheid, namens deze het college van burgemeester en "
        "wethouders van Roermond, voor deze, J. Jansen")
    text = mandaattekst(R2019, "Weert", ROERMOND)
    assert "UWV" in text and "Weert" in text and text.endswith("J. Jansen")


def test_sub_mandate_limits_the_kinds_an_official_may_sign():
    controleer_mandaat("toekenning", ROERMOND)
    controleer_mandaat("afwijzing", ROERMOND)
    with pytest.raises(MandaatOntbreekt):
        controleer_mandaat("vaststelling", ROERMOND)  # an official without the vaststelling scope
    with pytest.raises(MandaatOntbreekt):
        controleer_mandaat("verdaging", ROERMOND)
    controleer_mandaat("vaststelling", Ondertekenaar("x", "X", frozenset({"vaststelling"})))


def test_only_system_decisions_go_without_a_named_official():
    for soort in ("afwijzing", "niet_behandelen", "doorzending"):
        controleer_mandaat(soort, None)
    for soort in ("toekenning", "verdaging", "vaststelling"):
        with pytest.raises(MandaatOntbreekt):
            controleer_mandaat(soort, None)


# ------------------------------------------------------------------------------------------ eligibility

def _codes(gronden: list[Grond]) -> list[str]:
    return [g.code for g in gronden]


def test_eligibility_grounds():
    start = date(2026, 6, 1)
    assert weigeringsgronden(R2023, "EPA", date(2026, 3, 1), start, GOED) == []
    assert _codes(weigeringsgronden(R2019, "CMD", date(2019, 11, 30), date(2020, 1, 1), GOED)) == [
        "buiten_aanvraagperiode"]
    assert _codes(weigeringsgronden(R2019, "EPA", date(2019, 6, 1), date(2019, 7, 1), GOED)) == [
        "trajecttype_niet_toegestaan"]
    alles_fout = Criteria(doelgroep=False, wil_betaald_werk=False, geen_ander_traject=False,
                          certificaat_geldig_tot=date(2026, 5, 31))
    assert _codes(weigeringsgronden(R2023, "CMD", date(2026, 3, 1), start, alles_fout)) == [
        "geen_doelgroep", "geen_wens_tot_werk", "ander_traject", "certificaat_ongeldig_op_startdatum"]
    zonder = Criteria(True, True, True, None)
    [grond] = weigeringsgronden(R2023, "CMD", date(2026, 3, 1), start, zonder)
    assert grond.code == "certificaat_ongeldig_op_startdatum" and "geen geldig certificaat" in grond.tekst
    # valid on the start date itself is valid
    op_de_dag = Criteria(True, True, True, start)
    assert weigeringsgronden(R2023, "CMD", date(2026, 3, 1), start, op_de_dag) == []


# -------------------------------------------------------------------------------------------- letters

def _verzoek(**kw) -> BeschikkingVerzoek:
    base = dict(aanvraag_id="A-1", soort="toekenning", gemeente_code="0957", gemeente_naam="Roermond",
                regeling=R2023, traject_type="EPA", bedrag_cents=1_132_500, gronden=(), motivering="",
                ondertekenaar=ROERMOND, datum=date(2026, 11, 23), kenmerk="IPS-0957-2026-ABCDEF12",
                ggz_kvk_nummer="12345678")
    base.update(kw)
    return BeschikkingVerzoek(**base)


def test_grant_letter_is_complete():
    b = stel_beschikking_op(_verzoek())
    assert bedrag(1_132_500) == "€ 11.325,00" and bedrag(800_000) == "€ 8.000,00"
    assert "€ 11.325,00" in tekst_van(b) and "Roermond" in tekst_van(b) and "12345678" in tekst_van(b)
    assert "36 maanden" in tekst_van(b) and "12 maanden" in tekst_van(b) and "50%" in tekst_van(b)
    assert b.mandaat in tekst_van(b) and "IPS-0957-2026-ABCDEF12" in tekst_van(b)
    assert b.bezwaartermijn_einde == date(2027, 1, 4) and "4 januari 2027" in tekst_van(b)
    assert b.financiering is not None and b.bedrag_cents == 1_132_500


def test_2019_grant_letter_states_the_4000_4000_split():
    b = stel_beschikking_op(_verzoek(regeling=R2019, traject_type="CMD", bedrag_cents=800_000,
                                     datum=date(2019, 9, 2)))
    assert b.financiering == {"niveau": "traject", "rijkCents": 400_000, "gemeenteCents": 400_000}
    assert "€ 4.000,00" in tekst_van(b) and "€ 8.000,00" in tekst_van(b)


def test_refusal_states_grounds_and_a_forwarding_notice_has_no_objection_clause():
    grond = Grond("subsidieplafond_bereikt", "Het subsidieplafond is bereikt.")
    afwijzing = stel_beschikking_op(_verzoek(soort="afwijzing", gronden=(grond,), ondertekenaar=None))
    assert "Het subsidieplafond is bereikt." in tekst_van(afwijzing) and afwijzing.bezwaartermijn_einde is not None
    assert afwijzing.bedrag_cents == 0 and "Bezwaar" in tekst_van(afwijzing)
    doorzending = stel_beschikking_op(_verzoek(soort="doorzending", ondertekenaar=None, van_gemeente_naam="Roermond",
                                               naar_gemeente_naam="Weert"))
    assert doorzending.bezwaartermijn_einde is None and "Bezwaar" not in tekst_van(doorzending)
    tekst = tekst_van(doorzending)
    assert "Roermond" in tekst and "Weert" in tekst and "2:3" in tekst
    verdaging = stel_beschikking_op(_verzoek(soort="verdaging", nieuwe_beslisdatum=date(2027, 2, 1),
                                             ondertekenaar=Ondertekenaar("x", "X", frozenset({"verdaging"}))))
    assert "4:14" in tekst_van(verdaging) and "1 februari 2027" in tekst_van(verdaging)


def test_a_letter_for_a_kind_outside_the_sub_mandate_is_not_written():
    with pytest.raises(MandaatOntbreekt):
        stel_beschikking_op(_verzoek(ondertekenaar=Ondertekenaar("x", "X", frozenset({"afwijzing"}))))


def test_gemeente_names_from_the_municipality_list():
    names = load_gemeenten()
    assert names["0957"] == "Roermond" and names["0988"] == "Weert"


def test_a_414_notice_must_precede_the_deadline_and_name_a_later_date():
    from datetime import date

    from grants.domain import verdaging_ongeldig

    today, deadline = date(2026, 4, 20), date(2026, 4, 27)
    assert verdaging_ongeldig(date(2026, 5, 25), deadline, today) is None
    assert "na 2026-04-27" in verdaging_ongeldig(date(2026, 4, 27), deadline, today)
    assert "na 2026-04-27" in verdaging_ongeldig(date(2026, 3, 1), deadline, today)
    assert "4:14" in verdaging_ongeldig(date(2026, 6, 1), deadline, date(2026, 4, 28))
    assert verdaging_ongeldig(None, deadline, today)
    assert verdaging_ongeldig(date(2026, 4, 21), None, today) is None
