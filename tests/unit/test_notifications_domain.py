"""Notifications domain and letter: recipients, templates for every soort, the PDF's text, the retry schedule."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy

import pypdf
import pytest

from notifications.domain import (
    DATA_DIR,
    SOORTEN,
    Brief,
    Contacten,
    Herhaalschema,
    bedrag,
    bepaal_ontvangers,
    bericht_id,
    datum_nl,
    is_permanente_fout,
    message_id_header,
)
from notifications.letter import render_pdf
from notifications.mailer import Mail, opstellen
from notifications.sjablonen import Sjablonen
from servicekit.personal_data import holds_bsn_like_number as bevat_mogelijk_bsn

GGZ, GEMEENTE = "12345678", "0957"
MANDAAT = ("De Minister van Sociale Zaken en Werkgelegenheid, namens deze het college van burgemeester en "
           "wethouders van Roermond, voor deze, A. de Vries, beleidsmedewerker werk en inkomen")
TEKST = f"""Aan: de ggz-instelling met KvK-nummer {GGZ}
Datum: 2 januari 2025
Ons kenmerk: IPS-0957-2025-ABCDEF12
Uw aanvraag: aanvraag-1
Onderwerp: Besluit op uw aanvraag subsidie IPS-traject: toekenning

Geachte heer, mevrouw,

U hebt subsidie aangevraagd voor een IPS-traject. Wij kennen deze subsidie toe. Het subsidiebedrag is
€ 11.325,00 (inclusief btw).

Dit besluit is genomen op grond van de Subsidieregeling IPS-trajecten voor de gemeentelijke doelgroep.

Hoogachtend,

{MANDAAT}

Bezwaar
Bent u het niet eens met dit besluit? Uw bezwaarschrift moet uiterlijk op 13 februari 2025 zijn ontvangen.
"""


def beschikking(soort: str = "toekenning", **overrides: object) -> dict[str, object]:
    b: dict[str, object] = {
        "beschikkingId": "4d0c0e4e-1111-5222-8333-944444444444", "kenmerk": "IPS-0957-2025-ABCDEF12",
        "soort": soort, "datum": "2025-01-02", "bezwaartermijnEinde": "2025-02-13", "bedragCents": 1132500,
        "financiering": {"niveau": "budget", "rijkPercentage": 50, "gemeentenPercentage": 50},
        "mandaat": MANDAAT, "gemeenteCode": GEMEENTE, "tekst": TEKST,
    }
    b.update(overrides)
    return b


@pytest.fixture(scope="module")
def contacten() -> Contacten:
    return Contacten.load(DATA_DIR / "contacten.json", DATA_DIR / "gemeenten.csv")


@pytest.fixture(scope="module")
def sjablonen() -> Sjablonen:
    return Sjablonen()


def brief(contacten: Contacten, soort: str = "toekenning", **overrides: object) -> Brief:
    return Brief.uit_beschikking(beschikking(soort, **overrides), "aanvraag-1", GEMEENTE, contacten, GGZ)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


def test_amounts_and_dates_are_dutch() -> None:
    assert bedrag(1132500) == "€ 11.325,00"
    assert bedrag(188750) == "€ 1.887,50"
    assert bedrag(-5) == "€ -0,05"
    assert datum_nl(date(2025, 2, 13)) == "13 februari 2025"


def test_recipients_are_the_ggz_with_the_gemeente_in_cc(contacten: Contacten) -> None:
    o = bepaal_ontvangers(contacten, GGZ, GEMEENTE)
    assert o.compleet
    assert [c.email for c in o.aan] == ["ips@ggz-noord.example"]
    assert [c.email for c in o.cc] == ["werk-en-inkomen@roermond.example"]


def test_a_missing_contact_is_named_and_never_guessed(contacten: Contacten) -> None:
    o = bepaal_ontvangers(contacten, "99999999", "0014")
    assert not o.compleet
    assert o.ontbrekend == ("ggz:99999999", "gemeente:0014")
    assert o.aan == () and o.cc == ()
    assert not bepaal_ontvangers(contacten, None, GEMEENTE).compleet


def test_an_entry_without_an_address_counts_as_missing() -> None:
    c = Contacten.from_json({"ggz": {GGZ: {"naam": "x", "email": ""}}, "gemeenten": {}})
    assert c.ggz == {}


@pytest.mark.parametrize("soort", [*SOORTEN, "iets_nieuws"])
def test_every_soort_has_a_dutch_mail(contacten: Contacten, sjablonen: Sjablonen, soort: str) -> None:
    b = brief(contacten, soort)
    tekst = sjablonen.mail_tekst(b)
    assert tekst.startswith("Geachte IPS-team GGZ Voorbeeld Noord,")
    assert "IPS-0957-2025-ABCDEF12" in tekst
    assert "Roermond" in tekst
    assert "$" not in tekst and "{" not in tekst  # every field filled
    assert "13 februari 2025" in tekst  # the objection date
    assert not bevat_mogelijk_bsn(tekst)
    html = sjablonen.brief_html(b)
    assert "Gemeente Roermond" in html and "$" not in html and "{" not in html


def test_each_known_soort_has_its_own_template(sjablonen: Sjablonen) -> None:
    assert all(sjablonen.heeft_mail(s) for s in SOORTEN) and not sjablonen.heeft_mail("iets_nieuws")
    teksten = {sjablonen.mail_tekst(brief(Contacten({}, {}), s)) for s in SOORTEN}
    assert len(teksten) == len(SOORTEN)


def test_the_amount_is_in_the_mail_only_where_there_is_one(contacten: Contacten, sjablonen: Sjablonen) -> None:
    assert "€ 11.325,00" in sjablonen.mail_tekst(brief(contacten, "toekenning"))
    assert "€" not in sjablonen.mail_tekst(brief(contacten, "afwijzing", bedragCents=0))


@pytest.mark.parametrize("soort", SOORTEN)
def test_the_letter_pdf_renders_for_every_soort(contacten: Contacten, sjablonen: Sjablonen, soort: str) -> None:
    data = render_pdf(brief(contacten, soort), sjablonen)
    assert data.startswith(b"%PDF-")
    text = pdf_text(data)
    assert "Gemeente Roermond" in text
    assert "IPS-0957-2025-ABCDEF12" in text


def test_the_letter_holds_name_kenmerk_amount_mandate_and_objection_date(
        contacten: Contacten, sjablonen: Sjablonen) -> None:
    text = " ".join(pdf_text(render_pdf(brief(contacten), sjablonen)).split())
    assert "Gemeente Roermond" in text
    assert "IPS-0957-2025-ABCDEF12" in text
    assert "2 januari 2025" in text
    assert "€ 11.325,00" in text
    assert " ".join(MANDAAT.split()) in text
    assert "13 februari 2025" in text
    assert "Bezwaar" in text
    assert text.count("Ons kenmerk") == 1  # grants' header lines are shown once, in the letter's own table


def test_mandate_and_objection_are_added_when_the_text_lacks_them(contacten: Contacten) -> None:
    b = brief(contacten, tekst="Wij kennen de subsidie toe.")
    blokken = Sjablonen().alineas(b)
    assert ("p", MANDAAT) in blokken
    assert ("kop", "Bezwaar") in blokken
    assert any("13 februari 2025" in t for _, t in blokken)


def test_characters_outside_the_font_do_not_break_the_letter(contacten: Contacten, sjablonen: Sjablonen) -> None:
    data = render_pdf(brief(contacten, tekst="Wij kennen het toe ✓ — Ĳssel.\n\n- reden één\n- “reden” twee\n• drie"),
                      sjablonen)
    text = pdf_text(data)
    assert "Wij kennen het toe" in text and "reden één" in text


def test_the_bsn_guard_uses_the_eleven_test() -> None:
    assert bevat_mogelijk_bsn("client 111222333 in Roermond")
    assert not bevat_mogelijk_bsn("kvk 12345678, bedrag 1132500, kenmerk IPS-0957-2025-ABCDEF12")
    assert not bevat_mogelijk_bsn("nummer 123456789")  # fails the eleven test


# 123456782 passes the eleven test; a UUID whose last group holds it was blocked by the old guard
UUID_MET_ELFPROEF = "3f2b8c1e-4d5a-4b6c-9e7f-a123456782bc"


def test_the_bsn_guard_ignores_uuids_and_the_letters_own_ids() -> None:
    assert bevat_mogelijk_bsn("BSN 123456782 van de client")  # a real-looking BSN standing alone
    assert bevat_mogelijk_bsn("123456782")
    assert bevat_mogelijk_bsn("(bsn:123456782).")
    assert not bevat_mogelijk_bsn(f"Uw aanvraag: {UUID_MET_ELFPROEF}\nBeschikking {UUID_MET_ELFPROEF.upper()}")
    # a uuid does not hide a BSN next to it
    assert bevat_mogelijk_bsn(f"Uw aanvraag: {UUID_MET_ELFPROEF} client 123456782")
    # nine digits inside a hex id (no dashes) are no candidate
    assert not bevat_mogelijk_bsn("hash 3f2b8c1e4d5a4b6c9e7fa123456782bc")
    # the letter's own kenmerk and ids are taken out as whole tokens only
    assert bevat_mogelijk_bsn("Ons kenmerk: IPS-0957-2026-111222333")
    assert not bevat_mogelijk_bsn("Ons kenmerk: IPS-0957-2026-111222333", ["IPS-0957-2026-111222333"])
    assert not bevat_mogelijk_bsn("Uw aanvraag: A-111222333.", ["A-111222333", ""])
    assert bevat_mogelijk_bsn("Uw aanvraag: A-111222333 client 123456782", ["A-111222333"])
    assert bevat_mogelijk_bsn("client 111222333", ["1", "A"])  # a short id does not cut a number apart


def test_ids_and_message_id_derive_from_the_beschikking() -> None:
    assert bericht_id("b-1") == bericht_id("b-1") != bericht_id("b-2")
    assert message_id_header("b-1", "gemeente.example") == "<beschikking-b-1@gemeente.example>"


def test_the_mail_has_the_pdf_attached(contacten: Contacten, sjablonen: Sjablonen) -> None:
    b = brief(contacten)
    pdf = render_pdf(b, sjablonen)
    msg = opstellen(Mail(aan=[("GGZ", "ips@ggz-noord.example")], cc=[("Gemeente", "wi@roermond.example")],
                         onderwerp=b.onderwerp, tekst=sjablonen.mail_tekst(b),
                         message_id=message_id_header(b.beschikking_id, "x.example"), bijlage=pdf,
                         bestandsnaam=b.bestandsnaam), "noreply@x.example")
    parsed = message_from_bytes(msg.as_bytes(), policy=policy.default)
    assert parsed["Cc"] == "Gemeente <wi@roermond.example>"
    attachments = list(parsed.iter_attachments())
    assert [(a.get_content_type(), a.get_filename()) for a in attachments] == [
        ("application/pdf", "IPS-0957-2025-ABCDEF12.pdf")]
    assert attachments[0].get_content() == pdf


def test_retry_schedule_backs_off_then_repeats_then_stops() -> None:
    schema = Herhaalschema([5, 30, 120], max_pogingen=5)
    nu = datetime(2025, 1, 1, tzinfo=UTC)
    assert [schema.volgende(n, nu) for n in range(1, 6)] == [
        nu + timedelta(seconds=5), nu + timedelta(seconds=30), nu + timedelta(seconds=120),
        nu + timedelta(seconds=120), None]


def test_only_5xx_is_permanent() -> None:
    assert is_permanente_fout(550)
    assert not is_permanente_fout(421)
    assert not is_permanente_fout(None)
