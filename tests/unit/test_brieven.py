"""Letters: the words come from templates, the same words as before for every kind of beschikking, and every
name prints as written in a PDF with an embedded Unicode font."""

from __future__ import annotations

import html
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import jinja2
import pypdf
import pytest
from tests.unit.brief_scenarios import UNICODE, scenarios

from grants.domain import stel_beschikking_op
from notifications.domain import Brief, Contact, Contacten
from notifications.letter import Lettertype, LettertypeOntbreekt, render_pdf
from notifications.sjablonen import Sjablonen

GOLDEN = Path(__file__).with_name("golden")
TEKSTEN: dict[str, str] = json.loads((GOLDEN / "beschikkingen.json").read_text(encoding="utf-8"))
BERICHTEN: dict[str, dict[str, Any]] = json.loads((GOLDEN / "berichten.json").read_text(encoding="utf-8"))
ROOT = Path(__file__).resolve().parents[2]
NAMEN = ("Çelik", "Nguyễn", "Øyvind", "Łukasz")
CONTACTEN = Contacten(ggz={"12345678": Contact("Stichting Ggz Çelik & Nguyễn", "ggz@example.org")},
                      gemeenten={"0957": Contact("Gemeente Roermond", "g@example.org")},
                      gemeentenamen={"0957": "Roermond"})


@pytest.fixture(scope="module")
def sjablonen() -> Sjablonen:
    return Sjablonen()


def _brief(naam: str, contacten: Contacten = CONTACTEN) -> Brief:
    """The letter as notifications gets it: grants' decision data through JSON (the event and the command)."""
    verzoek = scenarios()[naam]
    b = stel_beschikking_op(verzoek)
    beschikking = json.loads(json.dumps({
        "beschikkingId": f"b-{naam}", "kenmerk": b.kenmerk, "soort": b.soort, "datum": b.datum.isoformat(),
        "bezwaartermijnEinde": b.bezwaartermijn_einde.isoformat() if b.bezwaartermijn_einde else None,
        "bedragCents": b.bedrag_cents, "financiering": b.financiering, "mandaat": b.mandaat, "brief": b.brief}))
    return Brief.uit_beschikking(beschikking, "A-1", "0957", contacten, verzoek.ggz_kvk_nummer)


def pdf_text(data: bytes) -> str:
    return "\n".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(data)).pages)


# ------------------------------------------------------------------------------ the same words as before

@pytest.mark.parametrize("naam", sorted(TEKSTEN))
def test_the_templates_give_the_text_grants_wrote(sjablonen: Sjablonen, naam: str) -> None:
    """Objection clause, grounds, mandate chain and amounts: word for word what grants' code wrote."""
    assert sjablonen.beschikking_tekst(_brief(naam)) == TEKSTEN[naam]


@pytest.mark.parametrize("naam", sorted(BERICHTEN))
def test_mail_paragraphs_and_layout_are_unchanged(sjablonen: Sjablonen, naam: str) -> None:
    brief, golden = _brief(naam), BERICHTEN[naam]
    assert sjablonen.mail_tekst(brief) == golden["mail"]
    assert [list(a) for a in sjablonen.alineas(brief)] == golden["alineas"]
    # the same HTML; only the escaping of quotes differs (markupsafe writes &#39; where html.escape wrote &#x27;)
    assert html.unescape(sjablonen.brief_html(brief)) == html.unescape(golden["html"])


def test_the_scenarios_cover_every_kind_of_beschikking() -> None:
    from grants.domain import SOORTEN

    assert {v.soort for v in scenarios().values()} == set(SOORTEN)


def test_the_domain_produces_data_not_words() -> None:
    b = stel_beschikking_op(scenarios()["vaststelling_terugvordering"])
    assert not hasattr(b, "tekst")
    assert b.brief["verleendCents"] == 1_132_500 and b.brief["vastgesteldCents"] == 188_750
    assert b.brief["bezwaar"] == {"weken": 6, "einde": "2024-10-14"} and b.brief["mandaat"] == b.mandaat
    assert json.loads(json.dumps(b.brief)) == b.brief  # it travels as JSON


def test_a_field_the_data_lacks_fails_the_letter_instead_of_leaving_a_gap(sjablonen: Sjablonen) -> None:
    brief = _brief("toekenning_2023")
    assert brief.gegevens is not None
    gegevens = {k: v for k, v in brief.gegevens.items() if k != "looptijdMaanden"}
    with pytest.raises(jinja2.UndefinedError):
        sjablonen.beschikking_tekst(Brief(**{**brief.__dict__, "gegevens": gegevens}))


def test_a_beschikking_from_an_older_grants_keeps_its_own_text(sjablonen: Sjablonen) -> None:
    oud = {"beschikkingId": "b-oud", "kenmerk": "K-1", "soort": "toekenning", "datum": "2026-03-02",
           "tekst": "Wij kennen de subsidie toe.\n"}
    brief = Brief.uit_beschikking(oud, "A-1", "0957", CONTACTEN, "12345678")
    assert sjablonen.beschikking_tekst(brief) == "Wij kennen de subsidie toe.\n"


# ------------------------------------------------------------------------------------- Unicode in the PDF

def test_names_outside_latin_1_print_exactly(sjablonen: Sjablonen) -> None:
    """Regression: the PDF core fonts printed "?" for these (windows-1252 only)."""
    brief = _brief("toekenning_unicode")
    tekst = sjablonen.beschikking_tekst(brief)
    data = render_pdf(brief, sjablonen, tekst=tekst)
    text = pdf_text(data)
    flat = " ".join(text.split())
    for naam in NAMEN:
        assert naam in text
    assert "Stichting Ggz Çelik & Nguyễn" in flat  # the addressee, from the contacts
    assert UNICODE.naam in flat  # the signatory in the mandate chain
    assert "Súdwest-Fryslân" in flat  # the gemeente in the text
    assert "Besproken met mevrouw Çelik en de heer Nguyễn." in flat
    assert text.count("?") == tekst.count("?")  # only the text's own question marks


def test_the_font_is_embedded(sjablonen: Sjablonen) -> None:
    reader = pypdf.PdfReader(io.BytesIO(render_pdf(_brief("toekenning_2023"), sjablonen)))
    fonts = reader.pages[0]["/Resources"]["/Font"]
    basisnamen = set()
    for ref in fonts.values():
        font = ref.get_object()
        basisnamen.add(str(font["/BaseFont"]))
        descendant = font["/DescendantFonts"][0].get_object()
        assert "/FontFile2" in descendant["/FontDescriptor"]  # the TrueType program is in the file
    assert basisnamen and all(n.split("+")[-1].startswith("DejaVuSans") for n in basisnamen)


def test_the_font_parsed_once_per_process_gives_the_pdf_fpdf2_writes_on_its_own(sjablonen: Sjablonen) -> None:
    """The font is parsed once per process and its subsets are cached per set of glyphs (letter.py, _Schrift);
    each letter must still be byte for byte what fpdf2 writes when it loads the font itself: the first letter
    of a set of glyphs (subset made), the same letter again (subset from the cache), and letters in between
    with other glyphs, so that a copy of the parsed font does not carry one letter's glyphs into the next; and
    glyphs outside the Latin part that new subsets are cut from (Greek, Cyrillic, a check mark)."""
    namen = ["toekenning_unicode", "toekenning_2023", "afwijzing_behandelaar", "toekenning_unicode"]
    for naam in namen:
        brief = _brief(naam)
        data = render_pdf(brief, sjablonen)
        assert data == render_pdf(brief, sjablonen, voorbereid=False), naam
    text = pdf_text(data)
    assert all(n in text for n in NAMEN)
    brief = _brief("toekenning_2023")
    tekst = sjablonen.beschikking_tekst(brief) + "\nBesproken met Σωκράτης Παπαδόπουλος en Дмитрий Иванов ✓.\n"
    data = render_pdf(brief, sjablonen, tekst=tekst)
    assert data == render_pdf(brief, sjablonen, tekst=tekst, voorbereid=False)
    assert "Σωκράτης Παπαδόπουλος en Дмитрий Иванов" in " ".join(pdf_text(data).split())


def test_a_missing_font_is_named_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(LettertypeOntbreekt, match="fonts-dejavu-core"):
        Lettertype(tmp_path / "weg.ttf").laad()
    nep = tmp_path / "nep.ttf"
    nep.write_text("geen lettertype")
    with pytest.raises(LettertypeOntbreekt, match="not a TrueType font"):
        Lettertype(nep, nep).laad()
    assert Lettertype().laad() == Lettertype()


def test_the_service_does_not_start_without_its_font(tmp_path: Path) -> None:
    env = {**os.environ, "IPSFLOW_NOTIFICATIONS_LETTERTYPE": str(tmp_path / "weg.ttf"),
           "IPSFLOW_ENVIRONMENT": "development", "PYTHONPATH": f"{ROOT / 'services'}{os.pathsep}{ROOT}"}
    proc = subprocess.run([sys.executable, "-m", "notifications"], env=env, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode != 0
    assert "cannot start" in proc.stderr and "weg.ttf" in proc.stderr and "fonts-dejavu-core" in proc.stderr
    assert "Traceback" not in proc.stderr
