"""payments' aggregates (payments.domain): the money rules as methods, and their documents round-trip."""

from __future__ import annotations

from datetime import date

import pytest

from payments import domain as d

ZAAK = d.Zaakgegevens("A1", "B-A1", "12345678", "0957", "ips-gemeenten-2023")
PER_ZAAK = {"rijkCents": 2, "gemeenteCents": 1}


def test_a_new_order_is_net_of_its_set_off_and_split_exactly() -> None:
    o = d.Betaalopdracht.nieuw("o1", ZAAK, "toekenning", 0, 10_001, [("t1", 4_000)], PER_ZAAK, rekening_geldig=True)
    assert (o.netto_cents, o.status) == (6_001, d.GEREED)
    assert o.aandeel.rijk_cents + o.aandeel.gemeente_cents == 10_001
    assert o.netto_aandeel.rijk_cents + o.netto_aandeel.gemeente_cents == 6_001
    assert [k for k, _ in o.boekingen_besteld()] == ["o1:besteld", "o1:verrekend"]
    assert d.Betaalopdracht.from_doc(o.nieuw_doc()) == o
    vol = d.Betaalopdracht.nieuw("o2", ZAAK, "toekenning", 0, 4_000, [("t1", 4_000)], PER_ZAAK, rekening_geldig=False)
    assert vol.status == d.VERREKEND  # nothing to transfer, so no account needed
    assert d.Betaalopdracht.nieuw("o3", ZAAK, "x", 0, 1, [], PER_ZAAK, rekening_geldig=False).status == \
        d.REKENING_ONTBREEKT


@pytest.mark.parametrize(("max_cents", "bedrag", "status"), [(2_500, 7_500, d.GEREED), (6_001, 4_000, d.VERREKEND)])
def test_a_reduction_never_takes_more_than_the_net_amount(max_cents: int, bedrag: int, status: str) -> None:
    o = d.Betaalopdracht.nieuw("o1", ZAAK, "toekenning", 0, 10_000, [("t1", 4_000)], PER_ZAAK, rekening_geldig=True)
    v = o.verlagen(max_cents, "V-A1", PER_ZAAK)
    assert (v.bedrag_cents, v.status) == (bedrag, status)
    assert v.verlaging is not None and v.verlaging.van_bedrag_cents == 10_000
    assert v.aandeel.rijk_cents + v.aandeel.gemeente_cents == v.bedrag_cents
    assert min(v.netto_aandeel.rijk_cents, v.netto_aandeel.gemeente_cents) >= 0
    assert v.oorspronkelijk_bedrag == 10_000 and "geannuleerd_door" not in v.verlaging_velden()
    heel = d.Betaalopdracht.nieuw("o2", ZAAK, "toekenning", 0, 5_000, [], PER_ZAAK, True).verlagen(9_999, "V", None)
    assert (heel.status, heel.geannuleerd_door, heel.bedrag_cents) == (d.GEANNULEERD, "vaststelling", 0)
    assert heel.telt_voor_vaststelling  # cancelled by the vaststelling: still counts as ordered


def test_the_case_is_settled_on_one_vaststelling_and_needs_its_financing_for_a_difference() -> None:
    zaak = d.Betaalzaak("A1")
    zaak.vaststelling_toetsen("V-1", 100, 100, None)  # no difference: nothing to split
    with pytest.raises(d.BetalingGeweigerd) as geen:
        zaak.vaststelling_toetsen("V-1", 90, 100, None)
    assert geen.value.code == "IPS-BETALING-002"
    zaak.verrekening_vastleggen(ZAAK, "V-1", [], {"soort": "geen"})
    with pytest.raises(d.BetalingGeweigerd) as ander:
        zaak.vaststelling_toetsen("V-2", 100, 100, PER_ZAAK)
    assert ander.value.code == "IPS-BETALING-003"
    assert d.Betaalzaak.from_doc(zaak.as_doc()) == zaak


def test_a_recovery_is_open_until_its_bar() -> None:
    v = d.verreken_vaststelling(70_000, 100_000, date(2024, 9, 1))
    t = d.Terugvordering.nieuw("t1", ZAAK, v, date(2024, 9, 1), PER_ZAAK, verrekenen=True)
    assert (t.bedrag_cents, t.open_cents, t.terugvorderen_uiterlijk) == (30_000, 30_000, date(2029, 9, 3))
    assert d.Terugvordering.from_doc(t.nieuw_doc()) == t
    assert not t.verjaard_op(date(2029, 9, 3)) and t.verjaard_op(date(2029, 9, 4))
    with pytest.raises(ValueError):
        d.Terugvordering.nieuw("t2", ZAAK, d.verreken_vaststelling(1, 0, date(2024, 9, 1)), date(2024, 9, 1),
                               PER_ZAAK, verrekenen=True)
