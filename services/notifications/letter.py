"""The decision letter as PDF: the HTML of ``brief.html`` rendered with fpdf2 (pure Python, no browser).

fpdf2's core fonts are used (no font files to ship); their windows-1252 encoding covers Dutch text and the
euro sign. A character outside it is replaced rather than failing the letter.
"""

from __future__ import annotations

from datetime import UTC, datetime, time

from fpdf import FPDF

from notifications.domain import Brief, Sjablonen

ENCODING = "windows-1252"


class _Briefpapier(FPDF):
    def __init__(self, kenmerk: str) -> None:
        super().__init__(format="A4")
        self.kenmerk = kenmerk
        self.core_fonts_encoding = ENCODING

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font("Helvetica", size=8)
        self.cell(0, 10, f"Kenmerk {self.kenmerk} - pagina {self.page_no()}/{{nb}}", align="C")


# Typography the core fonts cannot draw (fpdf2 draws windows-1252 only where it overlaps Latin-1, plus the euro sign).
_PLAIN = str.maketrans({"\u2022": "-", "\u2013": "-", "\u2014": "-", "\u2018": "'", "\u2019": "'",
                        "\u201c": '"', "\u201d": '"', "\u2026": "...", "\u00a0": " "})


def _encodable(text: str) -> str:
    plain = text.translate(_PLAIN)
    return "".join(c if c == "\u20ac" or ord(c) < 0x80 or 0xA0 <= ord(c) <= 0xFF else "?" for c in plain)


def render_pdf(brief: Brief, sjablonen: Sjablonen) -> bytes:
    """The letter for ``brief`` as PDF bytes. The creation date is the letter's date, so the same
    beschikking always gives the same letter content."""
    pdf = _Briefpapier(_encodable(brief.kenmerk))
    pdf.set_title(_encodable(f"{brief.onderwerp} ({brief.kenmerk})"))
    pdf.set_author(_encodable(f"Gemeente {brief.gemeente_naam}"))
    pdf.set_creation_date(datetime.combine(brief.datum, time(0, 0), tzinfo=UTC))
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    pdf.set_font("Helvetica", size=10)
    # the default "disc" bullet is a character the core fonts cannot draw
    pdf.write_html(_encodable(sjablonen.brief_html(brief)), ul_bullet_char="-")
    return bytes(pdf.output())
