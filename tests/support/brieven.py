"""The words of a beschikking as notifications writes them, from grants' reply (its data): for tests that check
what a letter says without running notifications."""

from __future__ import annotations

from typing import Any

from notifications.domain import Brief, Contacten
from notifications.sjablonen import Sjablonen


def tekst(beschikking: dict[str, Any]) -> str:
    """The text notifications' templates make of ``beschikking`` (grants' reply data; it carries no words)."""
    assert "tekst" not in beschikking and beschikking.get("brief"), "grants sends the decision as data"
    brief = Brief.uit_beschikking(beschikking, str(beschikking["brief"]["aanvraagId"]),
                                  str(beschikking.get("gemeenteCode") or "0000"), Contacten({}, {}), None)
    return Sjablonen().beschikking_tekst(brief)
