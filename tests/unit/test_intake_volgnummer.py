"""The volgnummer: an application's place in the order of receipt, given once, when it becomes complete
(issue 14 item 4; grants' allocator decides reservations strictly in this order)."""

from __future__ import annotations

from datetime import timedelta

from tests.unit.test_intake_domain import T0, aanvraag

from intake.domain import (
    AANVRAAG_INGETROKKEN,
    AANVRAAG_VOLGNUMMER_TOEGEKEND,
    AANVULLING_GEVRAAGD,
    Ondertekening,
)


def test_a_complete_application_misses_its_number_until_it_gets_one_and_gets_it_once():
    a = aanvraag()
    assert a.mist_volgnummer()
    a.volgnummer_toekennen(7)
    a.volgnummer_toekennen(8)  # never a second one
    assert a.volgnummer == 7 and not a.mist_volgnummer()
    announced = [e for e in a.events if e.type == AANVRAAG_VOLGNUMMER_TOEGEKEND]
    assert [e.data for e in announced] == [{"aanvraagId": a.id, "volgnummer": 7}]
    result = a.volledigheid_controleren()
    assert result["volledig"] and result["volgnummer"] == 7


def test_an_incomplete_application_gets_its_number_with_the_aanvulling_that_completes_it():
    a = aanvraag(kandidaat=False)
    assert not a.mist_volgnummer()
    assert a.volledigheid_controleren()["volgnummer"] is None
    a.herstel_vragen(["ondertekening_kandidaat"], "P14D", T0)
    assert a.status == AANVULLING_GEVRAAGD and not a.mist_volgnummer()
    a.aanvullen(T0 + timedelta(days=1), ondertekening=Ondertekening(kandidaat=True, ggz_instelling=True))
    assert a.mist_volgnummer()
    assert not a.mist_volgnummer(("aanvraagformulier",))  # a required upload still missing: not complete


def test_a_withdrawal_names_the_number_so_grants_can_give_the_place_back():
    a = aanvraag()
    a.volgnummer_toekennen(3)
    a.intrekken(T0 + timedelta(hours=1))
    withdrawn = next(e for e in a.events if e.type == AANVRAAG_INGETROKKEN)
    assert withdrawn.data["volgnummer"] == 3
    b = aanvraag(kandidaat=False)
    b.intrekken(T0)
    assert "volgnummer" not in next(e for e in b.events if e.type == AANVRAAG_INGETROKKEN).data
