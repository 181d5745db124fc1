"""The one BSN check (servicekit.personal_data), the VrijeTekst field type and the engine's form check."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ValidationError

from intake.messages import AanvraagIndienen, VerlengingVragen
from process_engine.runtime import free_text_problems
from servicekit.personal_data import bsn_like_numbers, elfproef, holds_bsn_like_number
from servicekit.vrije_tekst import VrijeTekst

BSN = "123456782"  # passes the elfproef; a test number, no person


@pytest.mark.parametrize("number", ["111222333", "123456782", "999998456"])
def test_elfproef_accepts_valid_bsns(number: str) -> None:
    assert elfproef(number)


@pytest.mark.parametrize("number", ["123456789", "111222334", "000000000", "12345678", "1234567820", "12345678a",
                                    "１２３４５６７８２"])
def test_elfproef_refuses_invalid_bsns(number: str) -> None:
    assert not elfproef(number)


@pytest.mark.parametrize("text", [
    "123456782", "bsn 123456782.", "(bsn:123456782)", "client 1234.56.782 heeft", "123.456.782", "123 456 782",
    "12-34-56-782", "123\u00a0456\u00a0782", "BSN: 1234 56 782", "nr123456782",
])
def test_bsn_like_numbers_as_a_person_writes_them_are_found(text: str) -> None:
    assert bsn_like_numbers(text) == [BSN]


@pytest.mark.parametrize("text", [
    "123456789",                       # fails the elfproef
    "1234.56.789",                     # grouped, fails the elfproef
    "op 2026-03-02 1 traject",         # mixed separators: a date and a number, no BSN
    "€ 1.234.567,89",                  # an amount: a one-digit group
    "12.34.56.78.2",                   # a one-digit group
    "1234.56.782.9",                   # ten digits in one run
    "1234567820",                      # ten digits
    "ABCDEF123456782",                 # inside a hex id
    "3f2b8c1e-4d5a-4b6c-9e7f-a123456782bc",  # inside a uuid
    "kvk 12345678, tel. 0475 123 456, IBAN NL91 ABNA 0417 1643 00",
    "Besluit van 14 mei 2026 over € 11.325,00 (kenmerk IPS-0957-2026-ABCDEF12)",
])
def test_dates_amounts_ids_and_other_numbers_are_no_bsn(text: str) -> None:
    assert not holds_bsn_like_number(text)


def test_own_ids_are_taken_out_as_whole_tokens_only() -> None:
    assert holds_bsn_like_number("kenmerk IPS-0957-2026-111222333")
    assert not holds_bsn_like_number("kenmerk IPS-0957-2026-111222333", ["IPS-0957-2026-111222333"])
    assert holds_bsn_like_number("client 111222333", ["1", "A"])


class _Form(BaseModel):
    tekst: VrijeTekst


def test_vrije_tekst_refuses_a_bsn_without_quoting_it() -> None:
    assert _Form(tekst="Akkoord, zie het plan van 2026-03-02.").tekst.startswith("Akkoord")
    with pytest.raises(ValidationError) as caught:
        _Form(tekst=f"client {BSN}")
    [error] = caught.value.errors(include_input=False)
    assert error["type"] == "bevat_bsn" and error["loc"] == ("tekst",)
    assert BSN not in error["msg"]


def test_portal_models_refuse_a_bsn_in_free_text_under_the_camel_case_name() -> None:
    body = {"clientReferentie": "1234.56.782", "bsn": BSN, "gemeenteCode": "0957", "woongemeenteCode": "0957",
            "trajectType": "CMD", "gewensteStartdatum": "2026-07-01", "ggzKvkNummer": "12345678",
            "ondertekening": {"kandidaat": True, "ggzInstelling": True},
            "doelgroep": {"uitkering": "bijstand", "wilBetaaldWerk": True, "andereReintegratie": False}}
    with pytest.raises(ValidationError) as caught:
        AanvraagIndienen.model_validate(body)
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [(("clientReferentie",), "bevat_bsn")]
    assert AanvraagIndienen.model_validate({**body, "clientReferentie": "KND-00001"}).bsn == BSN  # the BSN field
    with pytest.raises(ValidationError) as caught:
        VerlengingVragen.model_validate({"maanden": 6, "toelichting": f"voor {BSN} nodig"})
    assert caught.value.errors()[0]["loc"] == ("toelichting",)


def test_engine_forms_check_every_text_by_its_field_path() -> None:
    problems = free_text_problems({"besluit": "toekennen", "motivering": f"BSN {BSN}",
                                   "bijlagen": [{"omschrijving": "123 456 782"}], "bedrag": 123456782})
    assert [(p.field, p.code) for p in problems] == [("motivering", "bevat_bsn"),
                                                      ("bijlagen[0].omschrijving", "bevat_bsn")]
    assert all(BSN not in p.message for p in problems)
    assert free_text_problems({"besluit": "verdagen", "nieuweBeslisdatum": "2026-05-18", "motivering": "x"}) == []
