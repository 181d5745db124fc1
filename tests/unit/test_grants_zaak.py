"""grants.domain.zaak: the aggregate over grants' record of one application (pure: no broker, no database)."""

from __future__ import annotations

from datetime import date
from typing import Any

from grants.domain import stel_vast, toets_verlenging
from grants.domain.zaak import Weigering, Zaak
from grants.regelingen import load_regelingen

REGELINGEN = load_regelingen()
R2023 = REGELINGEN["ips-gemeenten-2023"]
TYPE = R2023.trajecttypen[0]


def _beschikking(soort: str, id_: str = "b-1", **extra: Any) -> dict[str, Any]:
    return {"_id": id_, "kenmerk": f"IPS-0957-2026-{id_.upper()}", "soort": soort, "datum": "2026-03-02",
            "bedrag_cents": 0, "gronden": [], **extra}


def test_a_verlenging_is_registered_once_and_counted() -> None:
    doc: dict[str, Any] = {"_id": "a-1"}
    zaak = Zaak(doc)
    eerste = _beschikking("verlenging", "b-1", maanden=6, nieuwe_einddatum="2027-06-30")
    assert zaak.registreer_beschikking(eerste) is None
    assert zaak.verlengingen == 1
    assert doc["verlenging"] == {"beschikkingId": "b-1", "maanden": 6, "nieuweEinddatum": "2027-06-30",
                                 "datum": "2026-03-02"}
    # a second extension by another command is refused and changes nothing
    tweede = _beschikking("verlenging", "b-2", maanden=3, nieuwe_einddatum="2027-09-30")
    weigering = zaak.registreer_beschikking(tweede)
    assert weigering is not None and weigering.code == "IPS-VERLENGING-001"
    assert zaak.verlengingen == 1 and [b["id"] for b in doc["beschikkingen"]] == ["b-1"]
    # the same beschikking again (a retry of its command) is no second extension
    assert zaak.verlenging_weigering("b-1", "2027-06-30") is None


def test_a_verlenging_needs_its_new_end_date() -> None:
    assert Zaak({}).verlenging_weigering("b-1", None) == Weigering(
        "IPS-VERLENGING-002", "Een verlenging vraagt de nieuwe einddatum.")


def test_beschikkingen_are_listed_in_order_with_their_grounds() -> None:
    doc: dict[str, Any] = {"beschikkingen": [{"id": "old"}]}
    Zaak(doc).registreer_beschikking(_beschikking("afwijzing", "b-9", gronden=[{"code": "geen_doelgroep",
                                                                                "tekst": "..."}]))
    assert [b["id"] for b in doc["beschikkingen"]] == ["old", "b-9"]
    assert doc["beschikkingen"][1]["gronden"] == ["geen_doelgroep"]
    assert "verlengingen" not in doc


def test_a_beschikking_takes_what_its_command_leaves_out_from_the_zaak() -> None:
    zaak = Zaak({"traject_type": TYPE, "vergoeding": {"bedragCents": 123_00}, "ggz_kvk_nummer": "12345678",
                 "verlengingstoets": {"nieuweEinddatum": "2027-12-31", "maanden": 6},
                 "vaststelling": {"vastgesteldCents": 99_00}, "financieel": {"betaald_cents": 50_00}})
    leeg = dict(traject_type=None, bedrag_cents=None, nieuwe_einddatum=None, maanden=None, vastgesteld_cents=None,
                ggz_kvk_nummer=None)
    verlenging = zaak.beschikkingsgegevens("verlenging", R2023, **leeg)
    assert (verlenging.traject_type, verlenging.bedrag_cents, verlenging.nieuwe_einddatum, verlenging.maanden,
            verlenging.ggz_kvk_nummer) == (TYPE, 123_00, date(2027, 12, 31), 6, "12345678")
    assert verlenging.vastgesteld_cents is None and verlenging.betaald_cents == 50_00
    vaststelling = zaak.beschikkingsgegevens("vaststelling", R2023, **leeg)
    assert vaststelling.vastgesteld_cents == 99_00 and vaststelling.nieuwe_einddatum is None
    assert vaststelling.maanden is None  # only an extension's letter takes the months of the extension check
    # what the command states wins
    eigen = zaak.beschikkingsgegevens("verlenging", R2023, **{**leeg, "bedrag_cents": 1, "maanden": 2,
                                                                 "nieuwe_einddatum": date(2028, 1, 31)})
    assert (eigen.bedrag_cents, eigen.maanden, eigen.nieuwe_einddatum) == (1, 2, date(2028, 1, 31))


def test_without_a_reservation_the_amount_is_the_tariff() -> None:
    g = Zaak({}).beschikkingsgegevens("toekenning", R2023, traject_type=None, bedrag_cents=None,
                                      nieuwe_einddatum=None, maanden=None, vastgesteld_cents=None, ggz_kvk_nummer=None)
    assert g.traject_type == TYPE and g.bedrag_cents == R2023.tarief(TYPE)


def test_extension_check_and_vaststelling_are_recorded_as_the_engine_gets_them() -> None:
    doc: dict[str, Any] = {}
    zaak = Zaak(doc)
    t = toets_verlenging(R2023, 6, date(2027, 6, 30), zaak.verlengingen)
    result = zaak.leg_verlengingstoets_vast(t, 6, date(2027, 6, 30), "2026-03-02T09:00:00Z")
    assert result["toegestaan"] is True and result["nieuweEinddatum"] == "2027-12-31"
    assert doc["verlengingstoets"] == {**result, "op": "2026-03-02T09:00:00Z"}
    v = stel_vast("pro_rata_months", 120_00, date(2026, 1, 15), date(2026, 12, 31), date(2026, 6, 10), 12)
    uitkomst = zaak.leg_vaststelling_vast(v, 120_00, date(2026, 1, 15), date(2026, 6, 10), "2026-07-01T00:00:00Z")
    assert uitkomst["vastgesteldCents"] == 60_00 and uitkomst["verleendCents"] == 120_00
    assert doc["vaststelling"]["werkelijkeEinddatum"] == "2026-06-10"
