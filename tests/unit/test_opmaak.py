"""The letter's own layout (notifications/opmaak.py): what it reads from the template, how it breaks lines and
pages, and that nothing of the text is lost on the way to the PDF."""

from __future__ import annotations

import io

import pypdf
import pytest
from fpdf import FPDF

from notifications import opmaak
from notifications.letter import FAMILIE, Lettertype, _Briefpapier
from notifications.opmaak import Blok, Opmaakfout, Stuk, Tabel, Zetter

TEKST = ("De subsidie wordt voor 50% door het Rijk en voor 50% door de gemeenten gezamenlijk (via het "
         "Gemeentefonds) gefinancierd. UWV betaalt het subsidiebedrag aan u uit; Súdwest-Fryslân en Łukasz "
         "Nguyễn-Çelik staan erin zoals geschreven.")


def _pdf() -> FPDF:
    pdf = _Briefpapier("IPS-0957-2026-ABCDEF12", Lettertype().laad())
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    return pdf


def _tekst(pdf: FPDF) -> list[str]:
    return [p.extract_text() for p in pypdf.PdfReader(io.BytesIO(bytes(pdf.output()))).pages]


def test_the_template_html_becomes_blocks_tables_and_styled_pieces() -> None:
    inhoud = opmaak.lees(
        '<h1>Gemeente &amp; zo</h1>\n<p><font size="9">klein</font></p>\n<p><b>Aan:</b> Stichting  X\n</p>'
        '<table width="100%"><tr><td width="35%"><b>Datum</b></td><td width="65%">1 mei</td></tr>'
        '<tr><td>Kenmerk</td><td>K-1</td></tr></table>\n<ul><li>een</li><li>twee</li></ul>')
    assert [type(d).__name__ for d in inhoud] == ["Blok", "Blok", "Blok", "Tabel", "Blok", "Blok"]
    kop, klein, aan, tabel, een, twee = inhoud
    assert isinstance(kop, Blok) and kop.soort == "h1" and kop.stukken == [Stuk("Gemeente & zo", False, None)]
    assert isinstance(klein, Blok) and klein.stukken == [Stuk("klein", False, 9.0)]
    assert isinstance(aan, Blok) and aan.stukken == [Stuk("Aan:", True, None), Stuk(" Stichting X ", False, None)]
    assert isinstance(tabel, Tabel) and tabel.breedtes == [0.35, 0.65] and len(tabel.rijen) == 2
    assert [c.stukken[0].tekst for c in tabel.rijen[1]] == ["Kenmerk", "K-1"]
    assert isinstance(een, Blok) and isinstance(twee, Blok) and (een.soort, twee.soort) == ("li", "li")
    assert een.na == 0 and twee.na == opmaak.NA_LIJST  # the space below a list hangs on its last item


@pytest.mark.parametrize("html", ['<img src="x.png">', "<p><i>schuin</i></p>", "<table><tr><td>x</td></tr></table>",
                                  '<table width="100%"><tr><td width="50%"><p>x</p></td></tr></table>',
                                  '<table><tr><td width="50%">a</td></tr><tr><td>b</td><td>c</td></tr></table>'])
def test_html_the_layout_cannot_set_fails_instead_of_vanishing(html: str) -> None:
    with pytest.raises(Opmaakfout):
        opmaak.lees(html)


def test_lines_fit_the_width_and_keep_every_word_in_order() -> None:
    pdf = _pdf()
    zetter = Zetter(pdf, FAMILIE)
    stukken = [Stuk("Aan:", True, None), Stuk(" " + TEKST, False, None)]
    for breedte in (40.0, 75.0, 170.0):
        regels = zetter.regels(stukken, opmaak.STIJLEN["p"], breedte)
        assert len(regels) > 1 if breedte < 170 else len(regels) >= 1
        for regel in regels:
            inhoud = sum(w.breedte for w in regel) + sum(w.spatie for w in regel[:-1])
            assert inhoud <= breedte + 1e-6
        woorden = [w.tekst for regel in regels for w in regel]
        assert " ".join(woorden) == "Aan: " + TEKST
        assert regels[0][0].vet and not regels[0][1].vet


def test_a_word_longer_than_the_line_is_cut_and_nothing_of_it_lost() -> None:
    pdf = _pdf()
    zetter = Zetter(pdf, FAMILIE)
    lang = "Arbeidsongeschiktheidsverzekeringsmaatschappijenbeleidsvoornemensaanvraagformulieren"
    regels = zetter.regels([Stuk(f"een {lang} twee", False, None)], opmaak.STIJLEN["p"], 50.0)
    assert "".join(w.tekst for r in regels for w in r if w.tekst not in ("een", "twee")) == lang
    assert all(sum(w.breedte for w in r) <= 50.0 + 1e-6 for r in regels)


def test_a_no_break_space_is_kept_and_keeps_its_words_on_one_line() -> None:
    [blok] = opmaak.lees("<p>bedrag\n  €\u00a011.325,00 \u00a0</p>")
    assert isinstance(blok, Blok) and blok.stukken == [Stuk("bedrag €\u00a011.325,00 \u00a0", False, None)]
    zetter = Zetter(_pdf(), FAMILIE)
    regels = zetter.regels(blok.stukken, opmaak.STIJLEN["p"], 30.0)
    assert [w.tekst for r in regels for w in r] == ["bedrag", "€\u00a011.325,00", "\u00a0"]


def test_glued_pieces_in_two_styles_get_no_space_between_them() -> None:
    zetter = Zetter(_pdf(), FAMILIE)
    woorden = list(zetter.woorden([Stuk("vet", True, None), Stuk("dun en", False, None)], opmaak.STIJLEN["p"]))
    assert [(w.tekst, w.vet, w.spatie > 0) for w in woorden if w] == [
        ("vet", True, False), ("dun", False, True), ("en", False, False)]


def test_a_long_letter_runs_onto_more_pages_with_the_footer_on_each_and_every_word_printed() -> None:
    pdf = _pdf()
    alineas = [f"Alinea {i}. {TEKST}" for i in range(40)]
    html = "<h1>Gemeente Roermond</h1>" + "".join(
        f"<h3>Kop {i}</h3>" if i % 7 == 0 else f"<p>{a}</p>" for i, a in enumerate(alineas))
    opmaak.zet(pdf, html, FAMILIE)
    paginas = _tekst(pdf)
    assert len(paginas) >= 3
    for n, pagina in enumerate(paginas, 1):
        assert f"pagina {n}/{len(paginas)}" in pagina
    voet = "Kenmerk IPS-0957-2026-ABCDEF12 - pagina"
    alles = " ".join(" ".join(r for p in paginas for r in p.splitlines() if not r.startswith(voet)).split())
    for i, a in enumerate(alineas):
        assert (f"Kop {i}" if i % 7 == 0 else a) in alles
    for pagina in paginas[1:]:  # no page starts with what a heading left behind at the bottom of the last
        assert not pagina.rstrip().splitlines()[-2].startswith("Kop")
