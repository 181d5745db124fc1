"""The decision letter as PDF: ``templates/brief.html.j2`` rendered with fpdf2 (pure Python, no browser).

The text is set in a Unicode TrueType font embedded in the PDF (a subset of the glyphs used), so every name
prints as written ("Çelik", "Nguyễn", "Øyvind", "Łukasz"). The font comes from the operating system, not from
this repository: Debian's ``fonts-dejavu-core`` (``make deps`` and the Dockerfile install it). The service
refuses to start without it (``Lettertype.laad``): a legal document must never show "?" for a name.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time
from pathlib import Path

from fpdf import FPDF

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


class _Briefpapier(FPDF):
    def __init__(self, kenmerk: str, lettertype: Lettertype) -> None:
        super().__init__(format="A4")
        self.kenmerk = kenmerk
        self.add_font(FAMILIE, "", str(lettertype.normaal))
        # Regular and bold only: brief.html.j2 uses no italic, and the data is escaped, so no <i> can appear.
        # Each add_font parses the whole TrueType file (about 0.2 s here), so no more are registered than used.
        self.add_font(FAMILIE, "B", str(lettertype.vet))

    def footer(self) -> None:
        self.set_y(-15)
        self.set_font(FAMILIE, size=8)
        self.cell(0, 10, f"Kenmerk {self.kenmerk} - pagina {self.page_no()}/{{nb}}", align="C")


def render_pdf(brief: Brief, sjablonen: Sjablonen, lettertype: Lettertype | None = None,
               tekst: str | None = None) -> bytes:
    """The letter for ``brief`` (with ``tekst``, the beschikking's text, when already rendered) as PDF bytes.
    The creation date is the letter's date, so the same beschikking always gives the same letter content."""
    pdf = _Briefpapier(brief.kenmerk, lettertype or Lettertype())
    pdf.set_title(f"{brief.onderwerp} ({brief.kenmerk})")
    pdf.set_author(f"Gemeente {brief.gemeente_naam}")
    pdf.set_creation_date(datetime.combine(brief.datum, time(0, 0), tzinfo=UTC))
    pdf.set_margins(20, 20, 20)
    pdf.set_auto_page_break(True, margin=20)
    pdf.add_page()
    pdf.set_font(FAMILIE, size=10)
    pdf.write_html(sjablonen.brief_html(brief, tekst), font_family=FAMILIE, ul_bullet_char="\u2022")
    return bytes(pdf.output())
