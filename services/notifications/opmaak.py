"""The letter set on the page: the small HTML of ``templates/brief.html.j2`` laid out by this module.

fpdf2's ``write_html`` broke lines character by character and asked the font for the width of the line again as
it grew; that was about half of a letter's CPU (``tests/perf/bench_letters.py``). This module reads the same
template, measures whole words with the font's own widths (the same integer font units fpdf2 uses) and breaks
lines greedily, then writes each line with ``FPDF.text`` at its place. What it knows:

- blocks ``h1``, ``h2``, ``h3``, ``p``; ``ul`` with ``li`` (a bullet, indented); ``table`` with ``tr`` and ``td``
  (column widths from the first row's ``width="NN%"``, as before; no borders);
- inline ``b``/``strong`` and ``font size="N"`` (points); ``br``.

Anything else in the template is an error (``Opmaakfout``), so a layout change that this module cannot set fails
the letter's tests instead of printing a letter with something missing. Whitespace collapses as in HTML.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from html.parser import HTMLParser

from fpdf import FPDF

BLOKKEN = ("h1", "h2", "h3", "p", "li")
_WIT = re.compile(r"[ \t\n\r\f]+")
INLINE = ("b", "strong", "font")


class Opmaakfout(ValueError):
    """The layout template uses HTML this module does not set."""


@dataclass(frozen=True)
class Stijl:
    """How a block is set: font size (pt), bold, colour, space above and below (mm), line height (x size)."""

    grootte: float = 10.0
    vet: bool = False
    kleur: tuple[int, int, int] = (0, 0, 0)
    boven: float = 0.0
    onder: float = 2.4
    regel: float = 1.3


KOPKLEUR = (150, 0, 0)
STIJLEN: dict[str, Stijl] = {
    "h1": Stijl(22, kleur=KOPKLEUR, onder=2.0, regel=1.15),
    "h2": Stijl(15, kleur=KOPKLEUR, boven=5.0, onder=2.0, regel=1.2),
    "h3": Stijl(12, kleur=KOPKLEUR, boven=3.0, onder=1.5),
    "p": Stijl(),
    "li": Stijl(onder=1.0),
    "td": Stijl(onder=0.0),
}
INSPRING = 6.0  # mm of a list item's text from the margin; the bullet stands in it
CELMARGE = 2.0  # mm between a table's columns
NA_TABEL = 5.0  # mm below a table
NA_LIJST = 1.4  # mm below a list, besides its last item's


@dataclass
class Stuk:
    """A piece of text in one style."""

    tekst: str
    vet: bool
    grootte: float | None  # points; None: the block's size


@dataclass
class Blok:
    soort: str
    stukken: list[Stuk] = field(default_factory=list)
    na: float = 0.0  # mm below it besides its style's (the last item of a list)


@dataclass
class Tabel:
    breedtes: list[float] = field(default_factory=list)  # fractions of the text width, from the first row
    rijen: list[list[Blok]] = field(default_factory=list)


class _Lezer(HTMLParser):
    """The template's HTML as a list of blocks and tables."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.uit: list[Blok | Tabel] = []
        self.blok: Blok | None = None
        self.tabel: Tabel | None = None
        self.vet = 0
        self.groottes: list[float | None] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag in BLOKKEN:
            self._nieuw(Blok(tag))
        elif tag in ("b", "strong"):
            self.vet += 1
        elif tag == "font":
            grootte = a.get("size")
            self.groottes.append(float(grootte) if grootte else None)
        elif tag == "br":
            self._tekst("\n")
        elif tag == "ul":
            self.blok = None
        elif tag == "table":
            self.blok = None
            self.tabel = Tabel()
            self.uit.append(self.tabel)
        elif tag == "tr" and self.tabel is not None:
            self.tabel.rijen.append([])
        elif tag == "td" and self.tabel is not None and self.tabel.rijen:
            self.blok = Blok("td")
            self.tabel.rijen[-1].append(self.blok)
            if len(self.tabel.rijen) == 1:
                self.tabel.breedtes.append(_procent(a.get("width")))
            elif len(self.tabel.rijen[-1]) > len(self.tabel.breedtes):
                raise Opmaakfout("a row of a table has more cells than its first row")
        else:
            raise Opmaakfout(f"the letter's layout cannot set <{tag}> here")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("b", "strong"):
            self.vet = max(0, self.vet - 1)
        elif tag == "font":
            if self.groottes:
                self.groottes.pop()
        elif tag == "ul":
            if self.uit and isinstance(self.uit[-1], Blok) and self.uit[-1].soort == "li":
                self.uit[-1].na = NA_LIJST
            self.blok = None
        elif tag in BLOKKEN or tag == "td":
            self.blok = None
        elif tag == "table":
            self.tabel = None
            self.blok = None

    def handle_data(self, data: str) -> None:
        # HTML's white space only (a no-break space stays, and keeps its words on one line)
        ingeklapt = _WIT.sub(" ", data)
        self._tekst(ingeklapt.strip(" ") or (" " if data else ""), ruw=ingeklapt)

    def _tekst(self, tekst: str, ruw: str = "") -> None:
        if not tekst:
            return
        if self.blok is None:
            if not ruw.strip(" ") and tekst != "\n":
                return  # whitespace between blocks
            if self.tabel is not None:
                raise Opmaakfout("text in a table outside a cell")
            self._nieuw(Blok("p"))
        assert self.blok is not None
        if ruw[:1] == " " and ruw.strip(" "):
            tekst = " " + tekst
        if ruw[-1:] == " " and ruw.strip(" "):
            tekst += " "
        grootte = next((g for g in reversed(self.groottes) if g is not None), None)
        self.blok.stukken.append(Stuk(tekst, self.vet > 0, grootte))

    def _nieuw(self, blok: Blok) -> None:
        if self.tabel is not None:
            raise Opmaakfout(f"<{blok.soort}> in a table")
        self.blok = blok
        self.uit.append(blok)


def _procent(waarde: str | None) -> float:
    if not waarde or not waarde.endswith("%"):
        raise Opmaakfout("the first row of a table gives each cell a width in per cent")
    return float(waarde[:-1]) / 100


def lees(html: str) -> list[Blok | Tabel]:
    """The blocks of the layout template's output."""
    lezer = _Lezer()
    lezer.feed(html)
    lezer.close()
    return lezer.uit


# ------------------------------------------------------------------------------------------------ setting


@dataclass
class _Woord:
    tekst: str
    vet: bool
    grootte: float
    breedte: float  # mm, without a space after it
    spatie: float  # mm of a space after it in its style; 0 when the word is glued to the next


Regel = list[_Woord]


class Zetter:
    """Sets blocks on an FPDF page from its top margin, breaking pages before its bottom margin (the page's
    footer is fpdf2's, called as a page is added)."""

    def __init__(self, pdf: FPDF, familie: str) -> None:
        self.pdf = pdf
        self.familie = familie
        self.y = pdf.t_margin
        self.links = pdf.l_margin
        self.breedte = pdf.w - pdf.l_margin - pdf.r_margin
        self.onderrand = pdf.h - pdf.b_margin
        self._maat: dict[tuple[str, bool, float], float] = {}

    # -- measuring

    def _meet(self, tekst: str, vet: bool, grootte: float) -> float:
        sleutel = (tekst, vet, grootte)
        maat = self._maat.get(sleutel)
        if maat is None:
            font = self.pdf.fonts[f"{self.familie.lower()}{'B' if vet else ''}"]
            maat = font.get_text_width(tekst, grootte, None)[1] / self.pdf.k
            self._maat[sleutel] = maat
        return maat

    def woorden(self, stukken: list[Stuk], stijl: Stijl) -> Iterator[_Woord | None]:
        """The words of a block's pieces; None for a forced line break."""
        vorige: _Woord | None = None
        for stuk in stukken:
            grootte = stuk.grootte or stijl.grootte
            vet = stuk.vet or stijl.vet
            regels = stuk.tekst.split("\n")
            for i, regel in enumerate(regels):
                if i:
                    if vorige is not None:
                        vorige.spatie = 0
                        yield vorige
                        vorige = None
                    yield None
                delen = regel.split(" ")
                for j, deel in enumerate(delen):
                    if j and vorige is not None:  # a space ends the word before it
                        vorige.spatie = self._meet(" ", vorige.vet, vorige.grootte)
                        yield vorige
                        vorige = None
                    if not deel:
                        continue
                    woord = self._woord(deel, vet, grootte)
                    if vorige is not None:  # glued to the piece before (e.g. "<b>x</b>y"): no space between them
                        vorige.spatie = 0
                        yield vorige
                    vorige = woord
        if vorige is not None:
            vorige.spatie = 0
            yield vorige

    def regels(self, stukken: list[Stuk], stijl: Stijl, breedte: float) -> list[Regel]:
        """Greedy line breaking: as many words on a line as fit; a word longer than a line is cut."""
        uit: list[Regel] = []
        regel: Regel = []
        gebruikt = 0.0
        for woord in self.woorden(stukken, stijl):
            if woord is None:
                uit.append(regel)
                regel, gebruikt = [], 0.0
                continue
            if regel and gebruikt + woord.breedte > breedte + 1e-6:
                uit.append(regel)
                regel, gebruikt = [], 0.0
            while woord.breedte > breedte + 1e-6:
                kop, woord = self._knip(woord, breedte)
                uit.append([kop])
            regel.append(woord)
            gebruikt += woord.breedte + woord.spatie
        if regel:
            uit.append(regel)
        return uit

    def _knip(self, woord: _Woord, breedte: float) -> tuple[_Woord, _Woord]:
        n = len(woord.tekst) - 1
        while n > 1 and self._meet(woord.tekst[:n], woord.vet, woord.grootte) > breedte:
            n -= 1
        return (self._woord(woord.tekst[:n], woord.vet, woord.grootte),
                self._woord(woord.tekst[n:], woord.vet, woord.grootte, woord.spatie))

    def _woord(self, tekst: str, vet: bool, grootte: float, spatie: float = 0.0) -> _Woord:
        return _Woord(tekst, vet, grootte, self._meet(tekst, vet, grootte), spatie)

    # -- writing

    @staticmethod
    def _grootte(regel: Regel, stijl: Stijl) -> float:
        """A line's font size: its largest word's (points)."""
        return max((w.grootte for w in regel), default=stijl.grootte)

    def hoogte(self, regel: Regel, stijl: Stijl) -> float:
        return self._grootte(regel, stijl) * stijl.regel * 25.4 / 72

    def _ruimte(self, nodig: float) -> None:
        """A new page unless ``nodig`` mm fit below the current position."""
        if self.y + nodig > self.onderrand and self.y > self.pdf.t_margin:
            self.pdf.add_page()
            self.y = self.pdf.t_margin

    def schrijf(self, regel: Regel, x: float, y: float, stijl: Stijl) -> None:
        """One line with its baseline at ``y`` + the line's ascent: runs of one style in one text object."""
        basis = y + self._grootte(regel, stijl) * 25.4 / 72 * (0.5 * (stijl.regel - 1) + 0.8)
        i = 0
        while i < len(regel):
            j = i
            tekst = ""
            breedte = 0.0
            while j < len(regel) and regel[j].vet == regel[i].vet and regel[j].grootte == regel[i].grootte:
                laatste = j == len(regel) - 1
                tekst += regel[j].tekst + ("" if laatste or not regel[j].spatie else " ")
                breedte += regel[j].breedte + (0 if laatste else regel[j].spatie)
                j += 1
            self.pdf.set_font(self.familie, "B" if regel[i].vet else "", regel[i].grootte)
            self.pdf.text(x, basis, tekst)
            x += breedte
            i = j

    def blok(self, blok: Blok, eerste: bool) -> None:
        stijl = STIJLEN[blok.soort]
        links, breedte = self.links, self.breedte
        if blok.soort == "li":
            links, breedte = links + INSPRING, breedte - INSPRING
        regels = self.regels(blok.stukken, stijl, breedte)
        if not regels:
            return
        if not eerste:
            self.y += stijl.boven
        geheel = sum(self.hoogte(r, stijl) for r in regels)
        if blok.soort.startswith("h"):  # a heading goes to the next page with two lines of what follows
            self._ruimte(geheel + 2 * self.hoogte([], STIJLEN["p"]))
        else:  # a block starts where two of its lines (or all of it) fit
            self._ruimte(min(geheel, 2 * self.hoogte(regels[0], stijl)))
        self.pdf.set_text_color(*stijl.kleur)
        for n, regel in enumerate(regels):
            hoogte = self.hoogte(regel, stijl)
            self._ruimte(hoogte)
            if blok.soort == "li" and n == 0:
                grootte = regel[0].grootte if regel else stijl.grootte
                self.schrijf([_Woord("\u2022", False, grootte, 0, 0)], self.links + 1.5, self.y, stijl)
            self.schrijf(regel, links, self.y, stijl)
            self.y += hoogte
        self.y += stijl.onder + blok.na
        self.pdf.set_text_color(0, 0, 0)

    def tabel(self, tabel: Tabel) -> None:
        stijl = STIJLEN["td"]
        breedtes = [f * self.breedte for f in tabel.breedtes]
        for rij in tabel.rijen:
            kolommen = []
            x = self.links
            for cel, kolombreedte in zip(rij, breedtes, strict=False):  # the reader refused longer rows
                kolommen.append((x, self.regels(cel.stukken, stijl, kolombreedte - CELMARGE)))
                x += kolombreedte
            hoogte = max((sum(self.hoogte(r, stijl) for r in regels) for _, regels in kolommen), default=0)
            self._ruimte(hoogte)
            for x, regels in kolommen:
                y = self.y
                for regel in regels:
                    self.schrijf(regel, x, y, stijl)
                    y += self.hoogte(regel, stijl)
            self.y += hoogte
        self.y += NA_TABEL

    def zet(self, inhoud: list[Blok | Tabel]) -> None:
        for n, deel in enumerate(inhoud):
            if isinstance(deel, Tabel):
                self.tabel(deel)
            else:
                self.blok(deel, eerste=n == 0)


def zet(pdf: FPDF, html: str, familie: str) -> None:
    """Set the layout template's output ``html`` on ``pdf`` from its current page's top margin."""
    Zetter(pdf, familie).zet(lees(html))
