"""The decision letter as PDF: ``templates/brief.html.j2`` set by ``opmaak`` on fpdf2 (pure Python, no browser).

The text is set in a Unicode TrueType font embedded in the PDF (a subset of the glyphs used), so every name
prints as written ("Çelik", "Nguyễn", "Øyvind", "Łukasz"). The font comes from the operating system, not from
this repository: Debian's ``fonts-dejavu-core`` (``make deps`` and the Dockerfile install it). The service
refuses to start without it (``Lettertype.laad``): a legal document must never show "?" for a name.
"""

from __future__ import annotations

import copy
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time
from functools import cache
from io import BytesIO
from pathlib import Path
from types import SimpleNamespace
from typing import Any, BinaryIO

from fontTools import subset as ftsubset
from fontTools.ttLib import TTFont
from fpdf import FPDF
from fpdf import output as fpdf_output
from fpdf.fonts import SubsetMap, TTFFont
from fpdf.output import OutputProducer

from notifications import opmaak
from notifications.domain import Brief
from notifications.sjablonen import Sjablonen

DEJAVU = Path("/usr/share/fonts/truetype/dejavu")
FAMILIE = "DejaVuSans"


class LettertypeOntbreekt(RuntimeError):
    """The letter font is not installed; the service cannot write letters and must not start."""


@dataclass(frozen=True)
class Lettertype:
    """The regular and bold TrueType files (IPSFLOW_NOTIFICATIONS_LETTERTYPE and ..._LETTERTYPE_VET)."""

    normaal: Path = DEJAVU / "DejaVuSans.ttf"
    vet: Path = DEJAVU / "DejaVuSans-Bold.ttf"

    def laad(self) -> Lettertype:
        """Check at start-up that both files are there and are TrueType fonts; else LettertypeOntbreekt."""
        for pad in (self.normaal, self.vet):
            if not pad.is_file():
                raise LettertypeOntbreekt(
                    f"letter font {pad} not found: install the Debian package fonts-dejavu-core (make deps) or "
                    "set IPSFLOW_NOTIFICATIONS_LETTERTYPE and IPSFLOW_NOTIFICATIONS_LETTERTYPE_VET to TrueType "
                    "files with the glyphs of every name to print")
            with pad.open("rb") as fh:
                if fh.read(4) not in (b"\x00\x01\x00\x00", b"true"):
                    raise LettertypeOntbreekt(f"letter font {pad} is not a TrueType font")
        return self


class _Breedtes(TTFFont):
    """fpdf2's TrueType font with the width of a text summed by ``map`` instead of a generator (the layout,
    ``opmaak``, measures every word of a letter). The widths are whole numbers (font units), so the sum is
    exactly fpdf2's."""

    def get_text_width(self, text: str, font_size_pt: float,
                       text_shaping_params: dict[str, Any] | None) -> tuple[int, float]:
        if text_shaping_params or self.is_symbol:
            return super().get_text_width(text, font_size_pt, text_shaping_params)
        if font_size_pt > self.biggest_size_pt:
            self.biggest_size_pt = font_size_pt
        return len(text), sum(map(self.cw.__getitem__, map(ord, text))) * font_size_pt * 0.001


class _Schrift:
    """One TrueType file, parsed once per process (fpdf2's ``add_font`` parses the whole file, some 65 ms of CPU
    per style and letter here), and its subsets per set of glyphs.

    A letter gets a copy of the parsed font with a subset map of its own. fpdf2 subsets the font it embeds in
    place (``fontTools.subset``), which needs a whole font file decoded (another 60 ms); so the letter embeds
    the cached program for exactly its glyphs instead (``_Programma``): cut once per set of glyphs from the
    Latin part of the font (``LATIJN``, some 900 glyphs, about 20 ms) when it lies within it, else from the
    whole font, and then cut and written as fpdf2's output would (before session 13 fpdf2 did that second cut
    for every letter, about a third of notifications' CPU). ``test_brieven`` checks that the PDF is byte for
    byte what fpdf2 writes on its own."""

    BEWAARD = 128  # subsets kept, least recently used first out; each 10-40 KB
    # Latin with its extensions (Vietnamese included), combining accents, punctuation, currency signs
    LATIJN = (range(0x20, 0x250), range(0x300, 0x370), range(0x1E00, 0x1F00), range(0x2000, 0x2070),
              range(0x20A0, 0x20D0))

    def __init__(self, pad: Path, stijl: str) -> None:
        self.data = pad.read_bytes()
        self.model = _Breedtes(FPDF(), pad, f"{FAMILIE.lower()}{stijl}", stijl)
        self.model.close()  # only its tables' figures are used; each letter's embedded font is loaded anew
        self._programmas: OrderedDict[frozenset[str], _Programma] = OrderedDict()
        self._slot = threading.Lock()
        latijn = {self.model.cmap[c] for reeks in self.LATIJN for c in reeks if c in self.model.cmap}
        self._latijn = _subset(self.data, latijn)
        self._latijn_glyphs = frozenset(TTFont(BytesIO(self._latijn), lazy=True).getGlyphOrder())

    def voor(self, pdf: FPDF) -> TTFFont:
        """A copy for one letter: the parsed figures shared, what a letter fills in (subset, widths asked for,
        missing glyphs) its own."""
        font = copy.copy(self.model)
        font.i = len(pdf.fonts) + 1
        font.cw = copy.copy(self.model.cw)  # a defaultdict: asking a width it lacks adds it
        font.desc = copy.copy(self.model.desc)  # fpdf2's output sets its name, object id and font program
        font.missing_glyphs = []
        font.biggest_size_pt = 0
        font.subset = SubsetMap(font)
        return font

    def programma(self, glyphs: Iterable[str]) -> _Programma:
        """The embedded font program for ``glyphs``, as fpdf2's output would write it (cached)."""
        sleutel = frozenset(glyphs)
        with self._slot:
            programma = self._programmas.get(sleutel)
            if programma is not None:
                self._programmas.move_to_end(sleutel)
                return programma
        deel = _subset(self._latijn if sleutel <= self._latijn_glyphs else self.data, sleutel)
        # fpdf2's own pass (fpdf/output.py, _add_fonts) over the font reduced to these glyphs: its options, its
        # glyph ids, its save. Bounds were computed for these glyphs already, so the save need not expand them.
        ttfont = TTFont(BytesIO(deel), recalcTimestamp=False, recalcBBoxes=False)
        data = _snijd(ttfont, sleutel, glyph_names=False)
        programma = _Programma(data, {naam: ttfont.getGlyphID(naam) for naam in sleutel})
        with self._slot:
            self._programmas[sleutel] = programma
            while len(self._programmas) > self.BEWAARD:
                self._programmas.popitem(last=False)
        return programma


@dataclass(frozen=True)
class _Programma:
    """A letter's font program, cut to its glyphs: what fpdf2's output asks of the font it embeds (the glyph ids
    and the saved file). fpdf2 does not cut it again (``_Snijder``)."""

    data: bytes
    ids: dict[str, int]

    def getGlyphID(self, glyph_name: str) -> int:  # fontTools' name, as fpdf2 calls it
        return self.ids[glyph_name]

    def save(self, file: BinaryIO) -> None:
        file.write(self.data)

    def close(self) -> None:
        """Nothing to release (fpdf2 closes the fonts of a written PDF)."""


class _Snijder(ftsubset.Subsetter):  # type: ignore[misc]
    """fontTools' subsetter as fpdf2's output uses it, except that a font program cut already (a ``_Programma``,
    anything but a fontTools ``TTFont``) is left as it is. Every ``TTFont`` is cut as before."""

    def subset(self, font: Any) -> None:
        if isinstance(font, TTFont):
            super().subset(font)


# fpdf2's output reaches the subsetter through its module's ``ftsubset``; only ``Subsetter`` differs, and only for
# a _Programma (a font of this module's letters).
setattr(fpdf_output, "ftsubset", SimpleNamespace(Options=ftsubset.Options, Subsetter=_Snijder))  # noqa: B010


# The tables fpdf2 drops from an embedded font (fpdf/output.py, OutputProducer._add_fonts); a subset made
# with other options would keep glyphs (GSUB's closure) that change the embedded program.
_FPDF_LAAT_WEG = ["FFTM", "GDEF", "GPOS", "GSUB", "MATH", "hdmx", "meta", "sbix", "CBDT", "CBLC", "EBDT", "EBLC",
                  "EBSC", "SVG ", "CPAL", "COLR"]


def _fpdf_opties(glyph_names: bool) -> Any:
    opties = ftsubset.Options(notdef_outline=True, recommended_glyphs=True, glyph_names=glyph_names)
    opties.drop_tables += _FPDF_LAAT_WEG
    return opties


def _subset(font: bytes, glyphs: Iterable[str]) -> bytes:
    """``font`` cut to ``glyphs`` with fpdf2's own options (fpdf/output.py, _add_fonts), keeping the glyph
    names that fpdf2's pass looks up."""
    return _snijd(TTFont(BytesIO(font), recalcTimestamp=False, lazy=True), glyphs, glyph_names=True)


def _snijd(ttfont: TTFont, glyphs: Iterable[str], glyph_names: bool) -> bytes:
    """Cut ``ttfont`` to ``glyphs`` in place with fpdf2's options; the file it saves."""
    subsetter = ftsubset.Subsetter(_fpdf_opties(glyph_names))
    subsetter.populate(glyphs=sorted(glyphs))
    subsetter.subset(ttfont)
    uit = BytesIO()
    ttfont.save(uit)
    return uit.getvalue()


@cache
def _schrift(pad: Path, stijl: str) -> _Schrift:
    return _Schrift(pad, stijl)


class _MetDeelfonts(OutputProducer):
    """fpdf2's output, with each cached font's embedded program taken from the cache (``_Schrift.programma``)."""

    def bufferize(self) -> bytearray:
        assert isinstance(self.fpdf, _Briefpapier)
        for sleutel, schrift in self.fpdf.schriften.items():
            font = self.fpdf.fonts[sleutel]
            assert isinstance(font, TTFFont)
            font.ttfont = schrift.programma(font.subset.get_all_glyph_names())
        return super().bufferize()


class _Briefpapier(FPDF):
    def __init__(self, kenmerk: str, lettertype: Lettertype, voorbereid: bool = True) -> None:
        super().__init__(format="A4")
        self.kenmerk = kenmerk
        self.schriften: dict[str, _Schrift] = {}
        # Regular and bold only: brief.html.j2 uses no italic, and the data is escaped, so no <i> can appear.
        for stijl, pad in (("", lettertype.normaal), ("B", lettertype.vet)):
            if voorbereid:
                schrift = _schrift(pad, stijl)
                self.fonts[schrift.model.fontkey] = schrift.voor(self)
                self.schriften[schrift.model.fontkey] = schrift
            else:
                self.add_font(FAMILIE, stijl, str(pad))

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(FAMILIE, size=8)
        self.cell(0, 10, f"Kenmerk {self.kenmerk} - pagina {self.page_no()}/{{nb}}", align="C")


def render_pdf(brief: Brief, sjablonen: Sjablonen, lettertype: Lettertype | None = None,
               tekst: str | None = None, *, voorbereid: bool = True) -> bytes:
    """The letter for ``brief`` (with ``tekst``, the beschikking's text, when already rendered) as PDF bytes.
    The creation date is the letter's date, so the same beschikking always gives the same letter content.
    ``voorbereid=False`` loads the fonts the way fpdf2 does on its own (per letter): the reference that the
    process-wide font cache must equal byte for byte."""
    pdf = _Briefpapier(brief.kenmerk, lettertype or Lettertype(), voorbereid)
    pdf.set_title(f"{brief.onderwerp} ({brief.kenmerk})")
    pdf.set_author(f"Gemeente {brief.gemeente_naam}")
    pdf.set_creation_date(datetime.combine(brief.datum, time(0, 0), tzinfo=UTC))
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    pdf.set_font(FAMILIE, size=10)
    opmaak.zet(pdf, sjablonen.brief_html(brief, tekst), FAMILIE)
    return bytes(pdf.output(output_producer_class=_MetDeelfonts if voorbereid else OutputProducer))
