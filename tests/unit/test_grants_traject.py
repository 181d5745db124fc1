"""The pure rules after the grant: planned and extended end dates, the extension test, the vaststelling
(full / pro_rata_months), the extension and vaststelling letters, and the report rows and CSV."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
from datetime import date
from pathlib import Path

import pytest
from tests.unit.brief_scenarios import tekst_van

from grants.domain import (
    BeschikkingVerzoek,
    Grond,
    MandaatOntbreekt,
    Ondertekenaar,
    deel_half_naar_boven,
    gelopen_maanden,
    geplande_einddatum,
    stel_beschikking_op,
    stel_vast,
    toets_verlenging,
    verlengde_einddatum,
)
from grants.messages import BeschikkingOpstellen, FinancieelRegistreren, VaststellingBerekenen
from grants.rapportage import als_csv, bereken, euro, perioden_in_jaar, totalen
from grants.regelingen import REGELINGEN_DIR, load_regelingen

REGELINGEN = load_regelingen()
R2019, R2023 = REGELINGEN["ips-cmd-2019"], REGELINGEN["ips-gemeenten-2023"]
GEMEENTEN = {"0957": "Roermond", "0988": "Weert"}


# ------------------------------------------------------------------------------------------ end dates

@pytest.mark.parametrize(("start", "maanden", "einde"), [
    (date(2024, 2, 1), 24, date(2026, 1, 31)),
    (date(2024, 1, 1), 36, date(2026, 12, 31)),
    (date(2024, 3, 1), 24, date(2026, 2, 28)),
    (date(2024, 1, 15), 24, date(2026, 1, 14)),
    (date(2023, 3, 31), 1, date(2023, 4, 30)),  # April has no 31st: the whole of April
    (date(2024, 1, 31), 1, date(2024, 2, 29)),
    (date(2024, 1, 30), 1, date(2024, 2, 29)),
    (date(2024, 1, 29), 1, date(2024, 2, 28)),
])
def test_planned_end_is_start_plus_the_duration_minus_one_day(start, maanden, einde):
    assert geplande_einddatum(start, maanden) == einde


@pytest.mark.parametrize(("einde", "maanden", "nieuw"), [
    (date(2026, 1, 31), 12, date(2027, 1, 31)),
    (date(2026, 2, 28), 12, date(2027, 2, 28)),
    (date(2026, 4, 30), 1, date(2026, 5, 31)),  # end of month stays end of month
    (date(2027, 2, 28), 12, date(2028, 2, 29)),  # into a leap year
    (date(2026, 1, 14), 6, date(2026, 7, 14)),
    (date(2026, 1, 30), 1, date(2026, 2, 28)),
])
def test_extended_end_date_is_end_of_month_aware(einde, maanden, nieuw):
    assert verlengde_einddatum(einde, maanden) == nieuw


def test_cmd_started_1_february_2024_extended_by_12_months_ends_31_january_2027():
    t = toets_verlenging(R2023, 12, geplande_einddatum(date(2024, 2, 1), 24), 0)
    assert t.toegestaan and t.weigeringsgronden == () and t.nieuwe_einddatum == date(2027, 1, 31)


def test_13_months_and_a_second_extension_are_refused():
    te_lang = toets_verlenging(R2023, 13, date(2026, 1, 31), 0)
    assert not te_lang.toegestaan and te_lang.nieuwe_einddatum is None
    assert [g.code for g in te_lang.weigeringsgronden] == ["verlenging_te_lang"]
    assert "ten hoogste 12 maanden" in te_lang.weigeringsgronden[0].tekst
    tweede = toets_verlenging(R2023, 6, date(2027, 1, 31), 1)
    assert not tweede.toegestaan and [g.code for g in tweede.weigeringsgronden] == ["al_verlengd"]
    beide = toets_verlenging(R2023, 24, date(2027, 1, 31), 1)
    assert [g.code for g in beide.weigeringsgronden] == ["verlenging_te_lang", "al_verlengd"]
    assert [g.code for g in toets_verlenging(R2023, 0, date(2027, 1, 31), 0).weigeringsgronden] == [
        "verlenging_ongeldig"]


def test_the_maximum_extension_comes_from_the_regulation():
    zes = dataclasses.replace(R2023, verlenging_max_maanden=6)
    assert not toets_verlenging(zes, 7, date(2026, 1, 31), 0).toegestaan
    assert toets_verlenging(zes, 6, date(2026, 1, 31), 0).nieuwe_einddatum == date(2026, 7, 31)


# ------------------------------------------------------------------------------------------ vaststelling

def test_epa_stopped_after_six_months_pro_rata_and_full():
    pro_rata = stel_vast("pro_rata_months", 1_132_500, date(2024, 1, 1), date(2026, 12, 31), date(2024, 6, 30), 36)
    assert (pro_rata.vastgesteld_cents, pro_rata.maanden, pro_rata.regel) == (188_750, 6, "pro_rata_months")
    assert 1_132_500 - pro_rata.vastgesteld_cents == 943_750
    assert "€ 1.887,50" in pro_rata.toelichting and "6 van de 36" in pro_rata.toelichting
    full = stel_vast("full", 1_132_500, date(2024, 1, 1), date(2026, 12, 31), date(2024, 6, 30), 36)
    assert (full.vastgesteld_cents, full.maanden, full.regel) == (1_132_500, 6, "full")


def test_months_run_count_started_calendar_months_and_never_exceed_the_duration():
    assert gelopen_maanden(date(2024, 1, 1), date(2024, 6, 30)) == 6
    assert gelopen_maanden(date(2024, 1, 15), date(2024, 2, 3)) == 2
    assert gelopen_maanden(date(2024, 1, 15), date(2024, 1, 15)) == 1
    assert gelopen_maanden(date(2024, 1, 15), date(2024, 1, 14)) == 0
    # ran its course, even started mid-month (25 calendar months): the full amount, not more
    v = stel_vast("pro_rata_months", 800_000, date(2024, 1, 15), date(2026, 1, 14), None, 24)
    assert (v.vastgesteld_cents, v.maanden) == (800_000, 24)
    # extended by 12 months: an extension adds time, not money
    v = stel_vast("pro_rata_months", 800_000, date(2024, 2, 1), date(2027, 1, 31), None, 24)
    assert v.vastgesteld_cents == 800_000
    nooit = stel_vast("pro_rata_months", 800_000, date(2024, 2, 1), date(2026, 1, 31), date(2024, 1, 31), 24)
    assert nooit.vastgesteld_cents == 0


def test_pro_rata_rounds_half_a_cent_up():
    assert deel_half_naar_boven(5, 2) == 3 and deel_half_naar_boven(7, 3) == 2 and deel_half_naar_boven(8, 3) == 3
    # 800000 * 7 / 24 = 233333.33 -> 233333; 1132500 * 1 / 36 = 31458.33 -> 31458; 101 * 1 / 2 -> 51 (half up)
    assert stel_vast("pro_rata_months", 800_000, date(2024, 1, 1), date(2025, 12, 31), date(2024, 7, 2), 24
                     ).vastgesteld_cents == 233_333
    assert stel_vast("pro_rata_months", 1_132_500, date(2024, 1, 1), date(2026, 12, 31), date(2024, 1, 2), 36
                     ).vastgesteld_cents == 31_458
    assert stel_vast("pro_rata_months", 101, date(2024, 1, 1), date(2024, 2, 29), date(2024, 1, 31), 2
                     ).vastgesteld_cents == 51
    with pytest.raises(ValueError, match="vaststellingsregel"):
        stel_vast("half", 100, date(2024, 1, 1), date(2024, 1, 31), None, 1)


def test_the_vaststellingsregel_is_configuration_per_regulation(tmp_path: Path):
    assert R2023.vaststellingsregel == "pro_rata_months"
    for source in REGELINGEN_DIR.glob("*.json"):
        data = json.loads(source.read_text(encoding="utf-8"))
        if data["id"] == "ips-gemeenten-2023":
            data["vaststellingsregel"] = "full"
        (tmp_path / source.name).write_text(json.dumps(data), encoding="utf-8")
    flipped = load_regelingen(tmp_path)
    assert flipped["ips-gemeenten-2023"].vaststellingsregel == "full"
    assert flipped["ips-cmd-2019"].vaststellingsregel == "pro_rata_months"
    regel = flipped["ips-gemeenten-2023"].vaststellingsregel
    assert stel_vast(regel, 1_132_500, date(2024, 1, 1), date(2026, 12, 31), date(2024, 6, 30), 36
                     ).vastgesteld_cents == 1_132_500


# --------------------------------------------------------------------------------------------- letters

JANSEN = Ondertekenaar("behandelaar-1", "J. Jansen", frozenset({"toekenning", "verlenging", "vaststelling",
                                                                 "afwijzing"}))


def _verzoek(**kw) -> BeschikkingVerzoek:
    base = dict(aanvraag_id="A-1", soort="verlenging", gemeente_code="0957", gemeente_naam="Roermond",
                regeling=R2023, traject_type="CMD", bedrag_cents=800_000, gronden=(), motivering="",
                ondertekenaar=JANSEN, datum=date(2026, 1, 5), kenmerk="IPS-0957-2026-ABCDEF12",
                ggz_kvk_nummer="12345678", nieuwe_einddatum=date(2027, 1, 31), maanden=12)
    base.update(kw)
    return BeschikkingVerzoek(**base)


def test_extension_letter_states_the_new_end_date_mandate_and_objection_clause():
    b = stel_beschikking_op(_verzoek())
    assert "12 maanden" in tekst_van(b) and "31 januari 2027" in tekst_van(b) and "eenmaal" in tekst_van(b)
    assert b.mandaat in tekst_van(b) and "J. Jansen" in tekst_van(b) and "Roermond" in tekst_van(b)
    assert b.bezwaartermijn_einde == date(2026, 2, 16)
    assert "16 februari 2026" in tekst_van(b) and "Bezwaar" in tekst_van(b)
    assert b.bedrag_cents == 0 and b.financiering is None
    with pytest.raises(MandaatOntbreekt):
        stel_beschikking_op(_verzoek(ondertekenaar=Ondertekenaar("x", "X", frozenset({"toekenning"}))))
    with pytest.raises(MandaatOntbreekt):  # an extension is never a system decision
        stel_beschikking_op(_verzoek(ondertekenaar=None))


def test_refused_extension_states_the_grounds_with_or_without_an_official():
    grond = Grond("verlenging_te_lang", "U vraagt een verlenging van 13 maanden.")
    systeem = stel_beschikking_op(_verzoek(soort="afwijzing_verlenging", gronden=(grond,), maanden=13,
                                           nieuwe_einddatum=None, ondertekenaar=None))
    tekst = tekst_van(systeem)
    assert "U vraagt een verlenging van 13 maanden." in tekst and "wijzen uw verzoek af" in tekst
    assert "zonder tussenkomst" in systeem.mandaat and "Bezwaar" in tekst_van(systeem)
    assert stel_beschikking_op(_verzoek(soort="afwijzing_verlenging", gronden=(grond,), ondertekenaar=Ondertekenaar(
        "y", "Y", frozenset({"afwijzing"})))).mandaat.endswith("Y")
    with pytest.raises(MandaatOntbreekt):
        stel_beschikking_op(_verzoek(soort="afwijzing_verlenging", gronden=(grond,), ondertekenaar=Ondertekenaar(
            "z", "Z", frozenset({"verlenging"}))))


def test_vaststelling_letter_with_recovery_remainder_or_nothing():
    terug = stel_beschikking_op(_verzoek(soort="vaststelling", traject_type="EPA", bedrag_cents=1_132_500,
                                         vastgesteld_cents=188_750, datum=date(2024, 9, 2)))
    assert terug.bedrag_cents == 188_750 and terug.financiering is not None
    assert "€ 1.887,50" in tekst_van(terug) and "€ 11.325,00" in tekst_van(terug) and "€ 9.437,50" in tekst_van(terug)
    assert "terug" in tekst_van(terug) and "4:57" in tekst_van(terug) and "5 jaar" in tekst_van(terug)
    assert "Bezwaar" in tekst_van(terug) and terug.bezwaartermijn_einde == date(2024, 10, 14)
    rest = stel_beschikking_op(_verzoek(soort="vaststelling", bedrag_cents=800_000, vastgesteld_cents=800_000,
                                        betaald_cents=400_000))
    tekst = tekst_van(rest)
    assert "resterende bedrag van € 4.000,00" in tekst and "gelijk aan het verleende bedrag" in tekst
    gelijk = stel_beschikking_op(_verzoek(soort="vaststelling", bedrag_cents=800_000, vastgesteld_cents=None))
    assert gelijk.bedrag_cents == 800_000 and "niets terug te betalen" in tekst_van(gelijk)
    with pytest.raises(MandaatOntbreekt):
        stel_beschikking_op(_verzoek(soort="vaststelling", ondertekenaar=Ondertekenaar(
            "x", "X", frozenset({"toekenning"}))))


# --------------------------------------------------------------------------------------------- reports

def _ledger(periode: str, plafond: int, reserveringen: dict, financieel: dict | None = None) -> dict:
    vastgelegd = sum(e["bedragCents"] for e in reserveringen.values() if e["status"] == "vastgelegd")
    gereserveerd = sum(e["bedragCents"] for e in reserveringen.values() if e["status"] == "gereserveerd")
    return {"_id": f"ips-gemeenten-2023:{periode}", "regeling": "ips-gemeenten-2023", "periode": periode,
            "plafond_cents": plafond, "beschikbaar_cents": plafond - vastgelegd - gereserveerd,
            "gereserveerd_cents": gereserveerd, "vastgelegd_cents": vastgelegd, "reserveringen": reserveringen,
            "financieel": financieel or {}}


def _zaak(aid: str, gemeente: str, *soorten: tuple[str, list[str]], datum: str = "2026-03-02") -> dict:
    return {"_id": aid, "regeling": "ips-gemeenten-2023", "gemeente_code": gemeente, "aanvraagdatum": datum,
            "beschikkingen": [{"soort": s, "gronden": g} for s, g in soorten]}


def _verzoek_doc(aid: str, gemeente: str, periode: str = "2026", gronden: tuple[str, ...] = ()) -> dict:
    return {"_id": aid, "regeling": "ips-gemeenten-2023", "budgetperiode": periode, "gemeente_code": gemeente,
            "uitkomst": {"gereserveerd": not gronden, "weigeringsgronden": [{"code": c} for c in gronden]}}


ZAKEN = [
    _zaak("A", "0957", ("toekenning", [])),
    _zaak("B", "0957", ("toekenning", []), ("verlenging", [])),
    _zaak("C", "0957", ("afwijzing", ["subsidieplafond_bereikt"])),
    _zaak("D", "0988", ("afwijzing", ["geen_doelgroep", "certificaat_ongeldig_op_startdatum"])),
    _zaak("E", "0988", ("niet_behandelen", [])),
    _zaak("F", "0988"),  # still running
    _zaak("G", "0957", ("toekenning", []), datum="2024-05-01"),  # period 2023-2024: not in 2026
]
VERZOEKEN = [_verzoek_doc("A", "0957"), _verzoek_doc("B", "0957"), _verzoek_doc("C", "0957", gronden=(
    "subsidieplafond_bereikt",)), _verzoek_doc("D", "0988", gronden=("geen_doelgroep",)),
    _verzoek_doc("F", "0988"), _verzoek_doc("G", "0957", periode="2023-2024")]
LEDGERS = [
    _ledger("2026", 1_010_000_000, {"A": {"bedragCents": 1_132_500, "status": "vastgelegd"},
                                    "B": {"bedragCents": 800_000, "status": "vastgelegd"},
                                    "F": {"bedragCents": 800_000, "status": "gereserveerd"}},
            {"A": {"betaald_cents": 1_132_500, "teruggevorderd_cents": 943_750, "vastgesteld_cents": 188_750},
             "B": {"betaald_cents": 800_000, "teruggevorderd_cents": 0, "vastgesteld_cents": 0}}),
    _ledger("2023-2024", 2_150_000_000, {"G": {"bedragCents": 800_000, "status": "vastgelegd"}}),
]


def test_report_rows_per_gemeente_and_period():
    assert perioden_in_jaar(REGELINGEN.values(), 2026) == [("ips-gemeenten-2023", "2026")]
    assert perioden_in_jaar(REGELINGEN.values(), 2020) == [("ips-cmd-2019", "2019")]
    rijen = bereken(2026, REGELINGEN, GEMEENTEN, ZAKEN, VERZOEKEN, LEDGERS)
    roermond, weert = (r.as_json() for r in rijen)
    assert roermond["gemeenteNaam"] == "Roermond" and roermond["budgetperiode"] == "2026"
    assert (roermond["aanvragen"], roermond["toekenningen"], roermond["afwijzingen"], roermond["verlengingen"]) == (
        3, 2, 1, 1)
    assert roermond["weigeringsgronden"] == {"subsidieplafond_bereikt": 1}
    assert roermond["vastgelegdCents"] == 1_932_500 and roermond["gereserveerdCents"] == 0
    assert (roermond["betaaldCents"], roermond["teruggevorderdCents"], roermond["vastgesteldCents"]) == (
        1_932_500, 943_750, 188_750)
    assert roermond["plafondCents"] == 1_010_000_000 and roermond["beschikbaarCents"] == 1_010_000_000 - 2_732_500
    assert (weert["aanvragen"], weert["afwijzingen"], weert["nietBehandeld"], weert["gereserveerdCents"]) == (
        3, 1, 1, 800_000)
    assert weert["weigeringsgronden"] == {"certificaat_ongeldig_op_startdatum": 1, "geen_doelgroep": 1}
    # the totals equal the ledger's
    [t] = totalen(rijen)
    assert t["vastgelegdCents"] == LEDGERS[0]["vastgelegd_cents"]
    assert t["gereserveerdCents"] == LEDGERS[0]["gereserveerd_cents"]
    assert t["aanvragen"] == 6 and t["toekenningen"] == 2
    # a gemeente's own rows only; the earlier period in its own year
    assert [r.gemeente_code for r in bereken(2026, REGELINGEN, GEMEENTEN, ZAKEN, VERZOEKEN, LEDGERS, "0988")] == [
        "0988"]
    [oud] = bereken(2024, REGELINGEN, GEMEENTEN, ZAKEN, VERZOEKEN, LEDGERS)
    assert (oud.budgetperiode, oud.aanvragen, oud.vastgelegd_cents) == ("2023-2024", 1, 800_000)


def test_report_csv_is_semicolon_separated_dutch_euros_with_a_bom():
    text = als_csv(bereken(2026, REGELINGEN, GEMEENTEN, ZAKEN, VERZOEKEN, LEDGERS))
    assert text.startswith("\ufeff") and "\r\n" in text
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff")), delimiter=";"))
    header, roermond = rows[0], rows[1]
    assert header[:4] == ["Gemeentecode", "Gemeente", "Regeling", "Budgetperiode"] and "Vastgelegd (EUR)" in header
    assert "Afgewezen: subsidieplafond_bereikt" in header
    line = dict(zip(header, roermond, strict=True))
    assert line["Gemeente"] == "Roermond" and line["Vastgelegd (EUR)"] == "19325,00"
    assert line["Vastgesteld (EUR)"] == "1887,50" and line["Teruggevorderd (EUR)"] == "9437,50"
    assert line["Subsidieplafond (EUR)"] == "10100000,00" and line["Afgewezen: subsidieplafond_bereikt"] == "1"
    assert euro(5) == "0,05" and euro(-150) == "-1,50"
    assert als_csv([]).count("\r\n") == 1


# ------------------------------------------------------------------------------------- command parameters

def test_command_parameters_as_the_bpmn_renders_them():
    v = VaststellingBerekenen.model_validate({
        "aanvraag_id": "A-1", "regeling": "ips-gemeenten-2023", "bedrag_cents": 1_132_500,
        "startdatum": "2024-01-01T00:00:00+01:00", "geplande_einddatum": "2026-12-31", "werkelijke_einddatum": "None",
        "looptijd_maanden": 36, "elementId": "Task_x", "attempt": 1})
    assert v.werkelijke_einddatum is None and v.startdatum == date(2024, 1, 1)
    b = BeschikkingOpstellen.model_validate({
        "aanvraag_id": "A-1", "soort": "afwijzing_verlenging", "gemeente_code": "0957",
        "regeling": "ips-gemeenten-2023", "nieuwe_einddatum": "", "maanden": 13, "bedrag_cents": 0})
    assert b.nieuwe_einddatum is None and b.maanden == 13
    f = FinancieelRegistreren.model_validate({"aanvraag_id": "A-1", "betaald_cents": 1_132_500,
                                              "teruggevorderd_cents": 0, "vastgesteld_cents": 0})
    assert f.vastgesteld_cents == 0
    with pytest.raises(ValueError, match="betaald_cents"):
        FinancieelRegistreren.model_validate({"aanvraag_id": "A-1", "betaald_cents": -1, "teruggevorderd_cents": 0})
