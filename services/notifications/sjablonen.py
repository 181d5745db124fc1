"""The words of every letter and e-mail: Jinja2 templates in ``templates/`` (``beschikking/`` the decision
letters, ``mail/`` the e-mails, ``brief.html.j2`` the letter's layout for the PDF).

Grants takes a decision and sends it as data (``grants.domain.briefgegevens``: grounds, amounts, dates, the
mandate chain, the objection period and its end); the templates here turn that into the text of the
beschikking. A beschikking from an older grants that carries its own ``tekst`` and no data keeps that text.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import jinja2

from notifications.domain import TEMPLATES_DIR, Brief, alineas
from servicekit.kalender import bedrag, datum_nl  # the one Dutch notation of dates and amounts


def _datum(value: str | date) -> str:
    return datum_nl(value if isinstance(value, date) else date.fromisoformat(value))


def omgeving(folder: Path = TEMPLATES_DIR) -> jinja2.Environment:
    """Strict: a field the template names but the data lacks fails the letter instead of leaving a gap in a
    legal text. HTML templates escape what they insert; text templates do not."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(folder), undefined=jinja2.StrictUndefined,
        autoescape=jinja2.select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
        trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True)
    env.filters["datum"] = _datum
    env.filters["bedrag"] = bedrag
    return env


class Sjablonen:
    def __init__(self, folder: Path = TEMPLATES_DIR) -> None:
        self.folder = folder
        self.env = omgeving(folder)

    def heeft_mail(self, soort: str) -> bool:
        """Whether ``soort`` has an e-mail of its own (otherwise ``mail/algemeen.txt.j2`` is used)."""
        return (self.folder / "mail" / f"{soort}.txt.j2").is_file()

    def beschikking_tekst(self, brief: Brief) -> str:
        """The text of the beschikking, rendered from grants' data."""
        if brief.gegevens is None:
            return brief.tekst
        return self.env.get_template("beschikking/brief.txt.j2").render(b=brief.gegevens)

    def alineas(self, brief: Brief, tekst: str | None = None) -> list[tuple[str, str]]:
        """The letter body as (kind, text); the mandate and the objection clause are added when a text
        (from an older grants) lacks them."""
        tekst = self.beschikking_tekst(brief) if tekst is None else tekst
        blokken = alineas(tekst)
        aanvulling = self.env.get_template("beschikking/aanvulling.txt.j2").render(
            mandaat=brief.mandaat if brief.mandaat and brief.mandaat not in tekst else "",
            bezwaar_einde=brief.bezwaartermijn_einde if "Bezwaar" not in tekst else None,
            **_velden(brief))
        return blokken + alineas(aanvulling)

    def mail_tekst(self, brief: Brief) -> str:
        return self.env.get_template("mail/bericht.txt.j2").render(brief=brief, **_velden(brief))

    def brief_html(self, brief: Brief, tekst: str | None = None) -> str:
        delen: list[tuple[str, Any]] = []
        for soort, inhoud in self.alineas(brief, tekst):
            if soort == "li":
                if delen and delen[-1][0] == "ul":
                    delen[-1][1].append(inhoud)
                else:
                    delen.append(("ul", [inhoud]))
            else:
                delen.append((soort, inhoud))
        return self.env.get_template("brief.html.j2").render(brief=brief, delen=delen, **_velden(brief))


def _velden(brief: Brief) -> Mapping[str, Any]:
    return {**brief.velden(), "bedrag_cents": brief.bedrag_cents, "financiering": brief.financiering or {}}
