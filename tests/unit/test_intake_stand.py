"""intake.stand: the decision date with its Awb reason and the trajectory dates the portal shows (pure)."""

from __future__ import annotations

from datetime import date

from intake.stand import BESLISTERMIJN, OPSCHORTING, VERDAGING, Stand


def test_the_reason_follows_the_engine_and_a_414_notice_is_not_undone_by_a_later_check():
    st = Stand()
    st.beslistermijn(date(2026, 5, 7), 0)
    assert (st.beslisdatum, st.beslisdatum_reden) == (date(2026, 5, 7), BESLISTERMIJN)
    st.beslistermijn(date(2026, 5, 18), 7)
    assert (st.beslisdatum, st.beslisdatum_reden, st.opgeschorte_dagen) == (date(2026, 5, 18), OPSCHORTING, 7)
    st.brief({"soort": "verdaging", "brief": {"nieuweBeslisdatum": "2026-06-15"}}, None, None)
    assert (st.beslisdatum, st.beslisdatum_reden, st.oorspronkelijke_beslisdatum) == (
        date(2026, 6, 15), VERDAGING, date(2026, 5, 7))
    st.beslistermijn(date(2026, 5, 18), 7)  # redelivered: the notice's date stays
    assert st.beslisdatum == date(2026, 6, 15)


def test_overdue_is_after_the_day_and_a_late_decision_stays_overdue():
    st = Stand()
    assert st.te_laat(date(2030, 1, 1), None) is False  # no decision date known
    st.beslistermijn(date(2026, 5, 7), 0)
    assert st.te_laat(date(2026, 5, 7), None) is False  # the whole last day counts
    assert st.te_laat(date(2026, 5, 8), None) is True
    assert st.te_laat(date(2026, 6, 1), date(2026, 5, 7)) is False
    assert st.te_laat(date(2026, 5, 1), date(2026, 5, 8)) is True


def test_trajectory_dates_from_the_grant_and_the_extension_and_the_round_trip():
    st = Stand()
    st.brief({"soort": "toekenning"}, date(2026, 7, 1), date(2028, 6, 30))
    st.brief({"soort": "verlenging", "beschikkingId": "b-9", "nieuweEinddatum": "2029-06-30", "maanden": 12},
             None, None)
    st.brief({"soort": "toekenning"}, None, date(2028, 6, 30))  # a later registration does not undo it
    assert (st.startdatum, st.einddatum, st.verlenging_maanden, st.verlenging_beschikking_id) == (
        date(2026, 7, 1), date(2029, 6, 30), 12, "b-9")
    assert Stand.from_doc(st.to_doc()) == st and Stand.from_doc(None) == Stand()
