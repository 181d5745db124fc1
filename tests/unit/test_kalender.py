"""The one legal calendar (servicekit/kalender.py): Algemene termijnenwet, Awb 4:15, durations, Dutch notation."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest

from servicekit import kalender as k

# ------------------------------------------------------------------------------------------------ Easter


@pytest.mark.parametrize(("jaar", "pasen"), [
    (2024, date(2024, 3, 31)), (2025, date(2025, 4, 20)), (2026, date(2026, 4, 5)), (2027, date(2027, 3, 28)),
    (2028, date(2028, 4, 16)), (2038, date(2038, 4, 25)),  # the latest possible Easter
    (2285, date(2285, 3, 22)),  # the earliest possible Easter
])
def test_easter_is_computed(jaar, pasen):
    assert k.paasdag(jaar) == pasen
    assert pasen.weekday() == 6


# ------------------------------------------------------------------------------- Atw art. 3: the holidays


def test_the_holidays_of_2026_by_name():
    dagen = {d: k.feestdag(d) for d in sorted(k.feestdagen(2026))}
    assert dagen[date(2026, 1, 1)] == "Nieuwjaarsdag"
    assert dagen[date(2026, 4, 3)] == "Goede Vrijdag"
    assert dagen[date(2026, 4, 6)] == "Tweede Paasdag"
    assert dagen[date(2026, 4, 27)] == "Koningsdag"
    assert dagen[date(2026, 5, 5)] == "Bevrijdingsdag"
    assert dagen[date(2026, 5, 14)] == "Hemelvaartsdag"
    assert dagen[date(2026, 5, 25)] == "Tweede Pinksterdag"
    assert dagen[date(2026, 12, 25)] == "Eerste Kerstdag" and dagen[date(2026, 12, 26)] == "Tweede Kerstdag"
    assert "gelijkgestelde dag" in str(dagen[date(2026, 1, 2)])
    assert "gelijkgestelde dag" in str(dagen[date(2026, 5, 15)])


@pytest.mark.parametrize("goede_vrijdag", [date(2025, 4, 18), date(2026, 4, 3), date(2027, 3, 26), date(2028, 4, 14)])
def test_good_friday_is_a_holiday_for_the_atw(goede_vrijdag):
    # art. 3 lid 2: "Voor de toepassing van deze wet wordt de Goede Vrijdag met de in het vorige lid genoemde
    # dagen gelijkgesteld" (the old code and a unit test said it was not)
    assert k.feestdag(goede_vrijdag) == "Goede Vrijdag"
    assert not k.is_werkdag(goede_vrijdag)
    # a term ending on Good Friday runs on past Easter and Easter Monday to the Tuesday
    assert k.termijn_einde(goede_vrijdag) == goede_vrijdag + timedelta(days=4)


@pytest.mark.parametrize("jaar", [2025, 2031, 2036])
def test_koningsdag_on_a_sunday_is_celebrated_on_the_saturday_before(jaar):
    assert date(jaar, 4, 27).weekday() == 6
    assert k.koningsdag(jaar) == date(jaar, 4, 26)
    assert k.feestdag(date(jaar, 4, 26)) == "Koningsdag" and k.feestdag(date(jaar, 4, 27)) is None
    assert k.koningsdag(2026) == date(2026, 4, 27)  # a Monday: the birthday itself


@pytest.mark.parametrize("jaar", [2025, 2026, 2027, 2029, 2030])
def test_bevrijdingsdag_counts_every_year_not_only_in_a_lustrum_year(jaar):
    assert k.feestdag(date(jaar, 5, 5)) == "Bevrijdingsdag"


# ------------------------------------------------------------------- Atw art. 3 lid 3: gelijkstellingen (data)

GELIJKGESTELD = [date(2026, 1, 2), date(2026, 5, 15), date(2027, 5, 7), date(2028, 4, 28), date(2028, 5, 26),
                 date(2023, 4, 28), date(2023, 5, 19), date(2024, 5, 10), date(2024, 12, 27), date(2025, 5, 30)]


@pytest.mark.parametrize("dag", GELIJKGESTELD)
def test_each_gelijkgestelde_dag_is_no_working_day_and_a_term_runs_past_it(dag):
    assert dag.weekday() == 4  # all of them are bridge Fridays
    assert dag in k.feestdagen(dag.year)
    assert not k.is_werkdag(dag)
    assert k.termijn_einde(dag) == dag + timedelta(days=3)  # the Monday after
    assert str(k.feestdag(dag)).startswith("gelijkgestelde dag (Besluit gelijkstelling")  # only by the besluit


def test_the_gelijkstellingen_are_data_with_their_source():
    shipped = k.gelijkstellingen()
    assert {g.datum for g in shipped} == set(GELIJKGESTELD)
    for g in shipped:
        # the citation title names the day it makes a holiday: a typo in the date would not go unnoticed
        assert k.datum_nl(g.datum) in g.besluit and g.besluit.startswith("Besluit gelijkstelling")
    raw = json.loads(k.GELIJKSTELLINGEN_FILE.read_text(encoding="utf-8"))
    assert all({"datum", "besluit", "staatscourant"} <= set(e) for e in raw["gelijkstellingen"])


def test_a_new_besluit_is_a_data_change_and_an_entry_without_its_besluit_is_refused():
    text = json.dumps({"gelijkstellingen": [
        {"datum": "2029-05-11", "besluit": "Besluit gelijkstelling van 11 mei 2029", "staatscourant": "Stcrt. 2028, 1"},
    ]})
    [g] = k.laad_gelijkstellingen(text)
    assert (g.datum, g.staatscourant) == (date(2029, 5, 11), "Stcrt. 2028, 1")
    with pytest.raises(ValueError, match="besluit"):
        k.laad_gelijkstellingen(json.dumps({"gelijkstellingen": [{"datum": "2029-05-11", "besluit": " "}]}))
    with pytest.raises(ValueError):
        k.laad_gelijkstellingen(json.dumps({"gelijkstellingen": [{"datum": "11-05-2029", "besluit": "x"}]}))


# ---------------------------------------------------------------------------------- Atw art. 1 and terms


@pytest.mark.parametrize(("einde", "verlengd"), [
    (date(2026, 3, 4), date(2026, 3, 4)),  # a Wednesday stays
    (date(2026, 3, 7), date(2026, 3, 9)),  # Saturday -> Monday
    (date(2026, 12, 25), date(2026, 12, 28)),  # Christmas on a Friday, then the weekend
    (date(2026, 12, 31), date(2026, 12, 31)),  # New Year's Eve is no holiday
    (date(2026, 1, 1), date(2026, 1, 5)),  # Nieuwjaarsdag, 2 January gelijkgesteld, weekend
    (date(2027, 1, 1), date(2027, 1, 4)),  # Nieuwjaarsdag on a Friday
    (date(2027, 12, 25), date(2027, 12, 27)),  # Christmas on a Saturday, Tweede Kerstdag a Sunday
    (date(2028, 4, 27), date(2028, 5, 1)),  # Koningsdag Thursday, 28 April gelijkgesteld, weekend
])
def test_atw_art_1_moves_the_end_past_weekends_holidays_and_the_year_end(einde, verlengd):
    assert k.termijn_einde(einde) == verlengd


def test_the_example_of_domain_md_objection_term():
    # sent 2026-04-02: 6 weeks end on 14 May (Hemelvaartsdag), 15 May is gelijkgesteld, then a weekend
    assert date(2026, 4, 2) + timedelta(weeks=6) == date(2026, 5, 14)
    assert k.bezwaartermijn_einde(date(2026, 4, 2)) == date(2026, 5, 18)


def test_termijn_vanaf_counts_the_duration_then_applies_the_atw():
    assert k.termijn_vanaf(date(2026, 3, 2), "P8W") == date(2026, 4, 28)  # 27 April 2026 is Koningsdag
    assert k.termijn_vanaf(date(2026, 3, 20), "P14D") == date(2026, 4, 7)  # Good Friday, Easter, Easter Monday
    assert k.termijn_vanaf(date(2026, 12, 18), "P2W") == date(2027, 1, 4)  # across the year end


def test_the_recovery_bar_is_five_years_then_the_atw():
    assert k.terugvordering_uiterlijk(date(2024, 9, 1), 5) == date(2029, 9, 3)  # 1 Sept 2029 is a Saturday
    assert k.terugvordering_uiterlijk(date(2024, 2, 29), 5) == date(2029, 2, 28)
    assert k.terugvordering_uiterlijk(date(2019, 1, 2), 5) == date(2024, 1, 2)


# -------------------------------------------------------------------------------------- Awb 4:15 + Atw


@pytest.mark.parametrize(("gevraagd", "aangevuld", "dagen"), [
    (date(2026, 3, 2), date(2026, 3, 16), 13),  # 3..15 March: "tot de dag" leaves out the day of the supplement
    (date(2026, 3, 2), date(2026, 3, 6), 3),
    (date(2026, 3, 2), date(2026, 3, 3), 0),  # supplemented the day after the request
    (date(2026, 3, 2), date(2026, 3, 2), 0),
    (date(2026, 3, 2), None, 0),
    (date(2026, 12, 30), date(2027, 1, 5), 5),  # across the year end: calendar days, holidays included
])
def test_the_suspension_runs_from_the_day_after_the_request_up_to_the_day_of_the_supplement(gevraagd, aangevuld,
                                                                                            dagen):
    assert k.opschortingsdagen(gevraagd, aangevuld) == dagen


def test_4_15_across_a_weekend_extends_the_statutory_term_then_applies_the_atw():
    # received Monday 2 March 2026: statutory end Monday 27 April (Koningsdag), the Atw would give 28 April.
    # Asked that day, supplemented Friday 6 March: 3 days suspended, 27 April + 3 = Thursday 30 April.
    assert k.opgeschorte_termijn_einde(date(2026, 4, 27), date(2026, 3, 2), date(2026, 3, 6)) == date(2026, 4, 30)
    # the old way (days added to the already moved 28 April, counting the day of the supplement) gave Saturday 2 May
    assert (k.termijn_einde(date(2026, 4, 27)) + timedelta(days=4)).weekday() == 5
    # an extended term that ends on a Saturday runs on to the Monday
    assert k.opgeschorte_termijn_einde(date(2026, 4, 29), date(2026, 3, 2), date(2026, 3, 6)) == date(2026, 5, 4)


def test_4_15_across_a_holiday_and_a_gelijkgestelde_dag():
    # received Thursday 12 March 2026: statutory end Thursday 7 May. Asked that day, supplemented Friday 20 March:
    # 7 days -> 14 May Hemelvaartsdag, 15 May gelijkgesteld, weekend -> Monday 18 May
    assert k.opgeschorte_termijn_einde(date(2026, 5, 7), date(2026, 3, 12), date(2026, 3, 20)) == date(2026, 5, 18)
    # across Good Friday and Easter 2027
    assert k.opgeschorte_termijn_einde(date(2027, 3, 19), date(2027, 1, 4), date(2027, 1, 12)) == date(2027, 3, 30)


def test_nothing_suspended_is_just_the_atw():
    assert k.opgeschorte_termijn_einde(date(2026, 4, 27), date(2026, 3, 2), None) == date(2026, 4, 28)


# --------------------------------------------------------------------------------------------- durations


@pytest.mark.parametrize(("start", "duur", "einde"), [
    (date(2026, 3, 2), "P8W", date(2026, 4, 27)), (date(2026, 3, 2), "P14D", date(2026, 3, 16)),
    (date(2026, 1, 31), "P1M", date(2026, 2, 28)), (date(2024, 2, 29), "P1Y", date(2025, 2, 28)),
    (date(2026, 12, 20), "P1M14D", date(2027, 2, 3)), (date(2026, 12, 31), "P1D", date(2027, 1, 1)),
])
def test_iso_durations(start, duur, einde):
    assert k.is_duur(duur)
    assert k.plus_duur(start, duur) == einde


@pytest.mark.parametrize("duur", ["P", "PT12H", "P1H", "14D", "", "P-1D", "p14d"])
def test_what_is_no_date_duration(duur):
    assert not k.is_duur(duur)
    with pytest.raises(ValueError):
        k.plus_duur(date(2026, 1, 1), duur)


def test_periods_of_months_and_years():
    assert k.einde_periode(date(2024, 2, 1), 24) == date(2026, 1, 31)
    assert k.einde_periode(date(2023, 3, 31), 1) == date(2023, 4, 30)
    assert k.einde_periode(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert k.einde_periode(date(2026, 12, 1), 1) == date(2026, 12, 31)
    assert k.plus_jaren(date(2024, 2, 29), 1) == date(2025, 2, 28)
    assert k.plus_jaren(date(2026, 3, 2), -2) == date(2024, 3, 2)
    assert k.plus_jaren(date(5, 1, 1), -10) == date.min and k.plus_jaren(date(9995, 1, 1), 10) == date.max


def test_the_amsterdam_day_and_the_moment_it_ends():
    assert k.amsterdam_dag(datetime(2026, 3, 1, 23, 30, tzinfo=UTC)) == date(2026, 3, 2)  # CET
    assert k.amsterdam_dag(datetime(2026, 6, 1, 21, 59, tzinfo=UTC)) == date(2026, 6, 1)  # CEST
    assert k.amsterdam_dag(datetime(2026, 6, 1, 22, 0)) == date(2026, 6, 2)  # naive is UTC
    assert k.begin_volgende_dag(date(2026, 4, 28)) == datetime(2026, 4, 28, 22, 0, tzinfo=UTC)
    assert k.begin_volgende_dag(date(2026, 12, 31)) == datetime(2026, 12, 31, 23, 0, tzinfo=UTC)


# ------------------------------------------------------------------------------------------ Dutch notation


def test_dutch_dates_and_amounts():
    assert k.datum_nl(date(2026, 5, 18)) == "18 mei 2026"
    assert k.datum_nl(date(2027, 1, 4)) == "4 januari 2027"
    assert k.bedrag(1_132_500) == "€ 11.325,00"
    assert k.bedrag(188_750) == "€ 1.887,50"
    assert k.bedrag(5) == "€ 0,05" and k.bedrag(0) == "€ 0,00"
    assert k.bedrag(-943_750) == "€ -9.437,50"
    assert k.bedrag(1_010_000_000) == "€ 10.100.000,00"
    assert k.euro_decimaal(188_750) == "1887,50" and k.euro_decimaal(-5) == "-0,05"
