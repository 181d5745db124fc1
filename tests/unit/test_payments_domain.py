"""Unit tests of payments' pure rules and the pain.001 builder (against the official XSD)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import pytest

from payments import domain as d
from payments import rekening as r
from payments.sepa import Overboeking, SepaError, build_pain001, schema_errors, validate

UWV = r.Rekening("UWV", "NL32INGB0000012345", "INGBNL2A")
GGZ = r.Rekening("GGZ Demo Instelling", "NL91ABNA0417164300", "ABNANL2A")


@pytest.mark.parametrize("iban", [
    "NL91ABNA0417164300", "NL91 ABNA 0417 1643 00", "nl20ingb0001234567", "NL44RABO0123456789",
    "DE89370400440532013000", "BE68539007547034",
    # SEPA countries beyond the eight the old check knew, each with its own length and BBAN format
    "PL61109010140000071219812874", "ES9121000418450200051332", "IT60X0542811101000000123456",
    "FR1420041010050500013M02606", "PT50000201231234567890154", "IE29AIBK93115212345678", "FI2112345600000785",
    "SE4550000000058398257466", "DK5000400440116243", "NO9386011117947", "IS140159260076545510730339",
    "CH9300762011623852957", "LI21088100002324013AA", "GB33BUKB20201555555555", "MT84MALT011000012345MTLCAST001S",
    "MC5811222000010123456789030", "SM86U0322509800000000270100", "VA59001123000012345678",
    "AD1200012030200359100100", "HU42117730161111101800000000", "GI75NWBK000000007099453",
])
def test_valid_ibans_of_every_sepa_country(iban: str) -> None:
    assert r.iban_valid(iban)


@pytest.mark.parametrize("iban", ["NL92ABNA0417164300",  # check digits
                                  "NL91ABNA041716430",  # NL length 18
                                  "NL91ABNA04171643001",
                                  "NL911BNA0417164300",  # bank code letters
                                  "XX91ABNA0417164300", "", "NL91ABNA04171643O0",
                                  "IT60X0542811101000000123457",  # the Italian national check character (CIN)
                                  ])
def test_invalid_ibans(iban: str) -> None:
    assert not r.iban_valid(iban)


@pytest.mark.parametrize("iban", [
    "TR330006100519786457841326",  # a valid IBAN, but Turkey is no SEPA country: a SEPA transfer cannot pay it
    "BR1800360305000010009795493C1",  # idem, Brazil
    "PL101090101400000712198128",  # mod-97 right, but 22 BBAN digits where Poland has 24
    "GB14123420155555555555",  # mod-97 right, but a British bank code is four letters
])
def test_ibans_the_old_eight_country_check_accepted(iban: str) -> None:
    # regression (issue 13 item 5): the old check knew the lengths of 8 countries and accepted any other
    # mod-97-valid string
    assert not r.iban_valid(iban)


@pytest.mark.parametrize(("bic", "ok"), [("ABNANL2A", True), ("INGBNL2A", True), ("RABONL2UXXX", True),
                                         ("abnanl2a", True), ("DEUTDEFF500", True), ("BNPAFRPP", True),
                                         ("UBSWCHZH80A", True), ("ABNANL2", False), ("ABNANL2AXX", False),
                                         ("ABNA NL2A", False), ("", False),
                                         ("ABNAXX2A", False),  # no country XX (the old regex accepted it)
                                         ("1BNANL2A", True)])  # ISO 9362:2014: the party prefix is alphanumeric
def test_bic(bic: str, ok: bool) -> None:
    assert r.bic_valid(bic) is ok


def test_account_without_name_or_with_bad_iban_is_not_usable() -> None:
    assert GGZ.geldig
    assert not r.Rekening("", GGZ.iban, GGZ.bic).geldig
    assert not r.Rekening("Иванов", GGZ.iban, GGZ.bic).geldig  # nothing left in the EPC character set
    assert not r.Rekening("x", "NL00ABNA0417164300", GGZ.bic).geldig
    assert not r.Rekening("x", "TR330006100519786457841326", GGZ.bic).geldig


@pytest.mark.parametrize(("text", "epc"), [
    ("Çelik", "Celik"), ("Nguyễn", "Nguyen"), ("Nguyễn Văn Đức", "Nguyen Van Duc"),
    ("Straße & Söhne", "Strasse + Sohne"), ("Zoë O’Brien", "Zoe O'Brien"), ("Łódź", "Lodz"),
    ("Øster Æble", "Oster AEble"), ("ĳsselmeer", "ijsselmeer"), ("GGZ  Noord_BV; test!", "GGZ Noord-BV, test."),
    ("IPS-subsidie a1 (2026/03) ?:+", "IPS-subsidie a1 (2026/03) ?:+"), ("北京 GGZ", "GGZ"), ("", ""),
])
def test_sepa_text_is_transliterated_to_the_epc_character_set(text: str, epc: str) -> None:
    assert r.epc_tekst(text) == epc
    assert re.fullmatch(r"[A-Za-z0-9/\-?:().,'+ ]*", r.epc_tekst(text))


def test_epc_text_is_cut_after_transliteration() -> None:
    assert r.epc_tekst("Ærø " * 30, 70) == ("AEro " * 14).strip()
    assert len(r.epc_tekst("é" * 200, 140)) == 140


def test_default_schedule_is_full_advance() -> None:
    assert d.schema_bedragen(1_132_500, []) == [(0, "toekenning", 1_132_500)]


def test_schedule_last_installment_takes_the_rounding_rest() -> None:
    parts = d.schema_bedragen(100_001, [("toekenning", 33), ("toekenning", 33), ("vaststelling", 34)])
    assert parts == [(0, "toekenning", 33_000), (1, "toekenning", 33_000), (2, "vaststelling", 34_001)]
    assert sum(c for _, _, c in parts) == 100_001
    odd = d.schema_bedragen(1_132_501, [("toekenning", 80), ("vaststelling", 20)])
    assert odd == [(0, "toekenning", 906_000), (1, "vaststelling", 226_501)]


def test_schedule_must_add_up_to_100() -> None:
    with pytest.raises(ValueError):
        d.schema_bedragen(1000, [("toekenning", 80)])


def test_funding_split_budget_level_2023() -> None:
    f = {"niveau": "budget", "rijkPercentage": 50, "gemeentenPercentage": 50}
    assert d.financieringsaandeel(1_132_500, f) == d.Aandeel(566_250, 566_250)
    odd = d.financieringsaandeel(1_001, f)
    assert odd == d.Aandeel(500, 501) and odd.rijk_cents + odd.gemeente_cents == 1_001


def test_funding_split_per_case_2019_in_proportion() -> None:
    f = {"niveau": "traject", "rijkCents": 400_000, "gemeenteCents": 400_000}
    assert d.financieringsaandeel(800_000, f) == d.Aandeel(400_000, 400_000)
    part = d.financieringsaandeel(333_333, {"rijkCents": 400_000, "gemeenteCents": 400_000})
    assert part.rijk_cents + part.gemeente_cents == 333_333 and part.rijk_cents == 166_666


def test_funding_split_needs_known_financing() -> None:
    with pytest.raises(ValueError):
        d.financieringsaandeel(100, {})


def test_settlement_issue_example_pro_rata() -> None:
    v = d.verreken_vaststelling(188_750, 1_132_500, date(2024, 9, 1))
    assert v.soort == "terugvordering" and v.saldo_cents == -943_750
    # 5 years after 1 September 2024 is Saturday 1 September 2029: the Atw moves the last day to Monday 3 September
    assert v.terugvorderen_uiterlijk == date(2029, 9, 3)


def test_settlement_full_is_no_recovery_and_more_is_a_payment() -> None:
    assert d.verreken_vaststelling(1_132_500, 1_132_500, date(2024, 9, 1)).soort == "geen"
    more = d.verreken_vaststelling(1_000, 600, date(2024, 9, 1))
    assert (more.soort, more.saldo_cents, more.terugvorderen_uiterlijk) == ("nabetaling", 400, None)


def test_reduction_shares_are_exact_and_never_more_than_the_order_has_left() -> None:
    budget = {"niveau": "budget", "rijkPercentage": 50}
    netto = d.financieringsaandeel(1_132_500, budget)
    minder = d.verlaging_aandeel(netto, 943_750, budget)
    assert minder.rijk_cents + minder.gemeente_cents == 943_750
    assert d.verlaging_aandeel(netto, 1_132_500, budget) == netto  # the whole order: exactly its shares
    oneven = d.Aandeel(1, 2)  # 3 cents split 1 / 2: taking 2 at 50% may not leave the gemeente share negative
    for cents in range(4):
        deel = d.verlaging_aandeel(oneven, cents, budget)
        assert deel.rijk_cents + deel.gemeente_cents == cents
        assert 0 <= deel.rijk_cents <= 1 and 0 <= deel.gemeente_cents <= 2
    with pytest.raises(ValueError):
        d.verlaging_aandeel(oneven, 4, budget)


def test_recovery_bar_is_configurable_and_handles_29_february() -> None:
    assert d.verreken_vaststelling(0, 10, date(2024, 2, 29)).terugvorderen_uiterlijk == date(2029, 2, 28)
    assert d.verreken_vaststelling(0, 10, date(2024, 3, 1), termijn_jaren=3).terugvorderen_uiterlijk == date(2027, 3, 1)


def test_five_year_bar() -> None:
    uiterlijk = date(2029, 9, 1)
    assert not d.verjaard(uiterlijk, date(2029, 9, 1))
    assert d.verjaard(uiterlijk, date(2029, 9, 2))


def test_set_off_never_more_than_payment_or_open_amount() -> None:
    delen, netto = d.verrekening_verdelen(1_000, [("a", 300), ("b", 2_000)])
    assert delen == [("a", 300), ("b", 700)] and netto == 0
    delen, netto = d.verrekening_verdelen(1_000, [("a", 300)])
    assert delen == [("a", 300)] and netto == 700
    assert d.verrekening_verdelen(1_000, []) == ([], 1_000)


def test_only_live_recoveries_are_set_off_oldest_bar_first() -> None:
    ts = [d.OpenTerugvordering("late", 100, date(2030, 1, 1)), d.OpenTerugvordering("early", 100, date(2029, 1, 1)),
          d.OpenTerugvordering("barred", 100, date(2020, 1, 1)), d.OpenTerugvordering("done", 0, date(2029, 1, 1))]
    assert [t.id for t in d.verrekenbaar(ts, date(2025, 1, 1))] == ["early", "late"]


def test_derived_ids_are_deterministic_and_key_safe() -> None:
    a = d.derived_id("b-1", "toekenning", 0)
    assert a == d.derived_id("b-1", "toekenning", 0) != d.derived_id("b-1", "toekenning", 1)
    assert "." not in a and len(a) == 32


def _batch(n: int = 3) -> bytes:
    return build_pain001("batch-1", datetime(2026, 1, 5, 9, 30, tzinfo=UTC), date(2026, 1, 6), UWV,
                         [Overboeking(f"e2e{i}", 100_000 + i, GGZ, f"IPS-subsidie aanvraag a{i}") for i in range(n)])


def test_pain001_validates_against_the_official_xsd() -> None:
    xml = _batch()
    assert schema_errors(xml) == []
    validate(xml)
    text = xml.decode()
    assert "<NbOfTxs>3</NbOfTxs>" in text and "<CtrlSum>3000.03</CtrlSum>" in text
    assert "<IBAN>NL91ABNA0417164300</IBAN>" in text and 'Ccy="EUR"' in text


def test_pain001_with_transliterated_names_validates_and_holds_only_epc_characters() -> None:
    debiteur = r.Rekening("Uitvoeringsinstituut Werknemersverzekeringen (UWV) – Zoë", UWV.iban, UWV.bic)
    celik = r.Rekening("GGZ Çelik & Nguyễn", "DE89370400440532013000", "COBADEFFXXX")
    xml = build_pain001("batch-é", datetime(2026, 1, 5, 9, 30, tzinfo=UTC), date(2026, 1, 6), debiteur,
                        [Overboeking("e2e1", 100_000, celik, "IPS-subsidie aanvraag a1 – beschikking ‘b-1’")])
    assert schema_errors(xml) == []
    text = xml.decode()
    assert "<Nm>GGZ Celik + Nguyen</Nm>" in text
    assert "<Ustrd>IPS-subsidie aanvraag a1 - beschikking 'b-1'</Ustrd>" in text
    assert "<Nm>Uitvoeringsinstituut Werknemersverzekeringen (UWV) - Zoe</Nm>" in text
    for tag in ("Nm", "Ustrd"):
        for value in re.findall(rf"<{tag}>([^<]*)</{tag}>", text):
            assert re.fullmatch(r"[A-Za-z0-9/\-?:().,'+ ]+", value), value


def test_a_broken_pain001_does_not_validate() -> None:
    broken = _batch().replace(b"<PmtMtd>TRF</PmtMtd>", b"<PmtMtd>XXX</PmtMtd>")
    assert schema_errors(broken)
    with pytest.raises(SepaError):
        validate(broken)
    missing = _batch().replace(b"<ReqdExctnDt>2026-01-06</ReqdExctnDt>", b"")
    assert schema_errors(missing)
    assert schema_errors(b"<not xml")


def test_builder_refuses_bad_accounts_and_empty_batches() -> None:
    with pytest.raises(SepaError):
        build_pain001("b", datetime.now(UTC), date(2026, 1, 6), UWV, [])
    bad = r.Rekening("x", "NL92ABNA0417164300", "ABNANL2A")
    with pytest.raises(SepaError):
        build_pain001("b", datetime.now(UTC), date(2026, 1, 6), UWV, [Overboeking("e", 1, bad, "x")])
    with pytest.raises(SepaError):
        build_pain001("b", datetime.now(UTC), date(2026, 1, 6), UWV, [Overboeking("e", 0, GGZ, "x")])


def test_euro_amounts() -> None:
    assert d.cents_als_euro(1_132_500) == "11325.00" and d.cents_als_euro(5) == "0.05"
