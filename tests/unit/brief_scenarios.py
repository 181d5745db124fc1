"""Beschikkingen for every kind of letter and its variants, shared by the rendering tests.

``golden/beschikkingen.json`` holds the text each scenario had when grants still wrote the words itself
(generated from that code before the letter text moved to templates); the templates must give the same words.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Any

from grants.domain import (
    Beschikking,
    BeschikkingVerzoek,
    Criteria,
    Grond,
    Ondertekenaar,
    grond_gemeentelijk_maximum,
    grond_subsidieplafond,
    weigeringsgronden,
)
from grants.regelingen import load_regelingen

REGELINGEN = load_regelingen()
R2019, R2023 = REGELINGEN["ips-cmd-2019"], REGELINGEN["ips-gemeenten-2023"]
ALLES = frozenset({"toekenning", "afwijzing", "niet_behandelen", "verdaging", "vaststelling", "verlenging"})
JANSEN = Ondertekenaar("behandelaar-1", "J. Jansen", ALLES)
UNICODE = Ondertekenaar("behandelaar-2", "Łukasz Nguyễn-Çelik, Øyvind", ALLES)
SLECHT = Criteria(doelgroep=False, wil_betaald_werk=False, geen_ander_traject=False, certificaat_geldig_tot=None)
VERLOPEN = Criteria(doelgroep=True, wil_betaald_werk=True, geen_ander_traject=True,
                    certificaat_geldig_tot=date(2026, 1, 1))


def _verzoek(**kw: Any) -> BeschikkingVerzoek:
    base: dict[str, Any] = dict(
        aanvraag_id="A-1", soort="toekenning", gemeente_code="0957", gemeente_naam="Roermond", regeling=R2023,
        traject_type="EPA", bedrag_cents=1_132_500, gronden=(), motivering="", ondertekenaar=JANSEN,
        datum=date(2026, 11, 23), kenmerk="IPS-0957-2026-ABCDEF12", ggz_kvk_nummer="12345678")
    base.update(kw)
    return BeschikkingVerzoek(**base)


def scenarios() -> dict[str, BeschikkingVerzoek]:
    gronden = tuple(weigeringsgronden(R2023, "XYZ", date(2027, 2, 1), date(2027, 3, 1), SLECHT))
    plafond = grond_subsidieplafond(R2023, R2023.budgetperioden[0])
    return {
        "toekenning_2023": _verzoek(),
        "toekenning_2019_traject": _verzoek(regeling=R2019, traject_type="CMD", bedrag_cents=800_000,
                                            datum=date(2019, 9, 2)),
        "toekenning_motivering_zonder_kvk": _verzoek(motivering="Het plan van aanpak is volledig.",
                                                     ggz_kvk_nummer=None, datum=date(2026, 3, 2)),
        "toekenning_unicode": _verzoek(gemeente_naam="Súdwest-Fryslân", ondertekenaar=UNICODE,
                                       motivering="Besproken met mevrouw Çelik en de heer Nguyễn."),
        "afwijzing_systeem_gronden": _verzoek(soort="afwijzing", ondertekenaar=None, gronden=gronden),
        "afwijzing_plafond_cap": _verzoek(soort="afwijzing", ondertekenaar=None, gronden=(
            plafond, grond_gemeentelijk_maximum(R2019, "Roermond"))),
        "afwijzing_behandelaar": _verzoek(soort="afwijzing", motivering="Geen wens tot betaald werk gebleken.",
                                          gronden=(Grond("inhoudelijke_beoordeling", "Geen wens tot werk."),)),
        "afwijzing_certificaat": _verzoek(soort="afwijzing", ondertekenaar=None, gronden=tuple(
            weigeringsgronden(R2023, "EPA", date(2026, 3, 2), date(2026, 6, 1), VERLOPEN))),
        "niet_behandelen": _verzoek(soort="niet_behandelen", ondertekenaar=None, gronden=(
            Grond("ontbrekend", "Het trajectplan ontbreekt."),)),
        "doorzending": _verzoek(soort="doorzending", ondertekenaar=None, van_gemeente_naam="Roermond",
                                naar_gemeente_naam="Weert"),
        "doorzending_zonder_namen": _verzoek(soort="doorzending", ondertekenaar=None),
        "verdaging": _verzoek(soort="verdaging", nieuwe_beslisdatum=date(2027, 2, 1)),
        "verdaging_onbekend_met_grond": _verzoek(soort="verdaging", gronden=(
            Grond("advies", "Wij wachten op het advies van UWV."),)),
        "verlenging": _verzoek(soort="verlenging", traject_type="CMD", bedrag_cents=800_000,
                               datum=date(2026, 1, 5), nieuwe_einddatum=date(2027, 1, 31), maanden=12),
        "verlenging_onbekend": _verzoek(soort="verlenging", maanden=6),
        "afwijzing_verlenging_systeem": _verzoek(soort="afwijzing_verlenging", ondertekenaar=None, maanden=13,
                                                 gronden=(Grond("verlenging_te_lang", "Te lang."),)),
        "afwijzing_verlenging_zonder_maanden": _verzoek(soort="afwijzing_verlenging", gronden=(
            Grond("al_verlengd", "Het traject is al eerder verlengd."),)),
        "vaststelling_terugvordering": _verzoek(soort="vaststelling", bedrag_cents=1_132_500,
                                                vastgesteld_cents=188_750, datum=date(2024, 9, 2),
                                                motivering="Het traject liep 6 van de 36 maanden."),
        "vaststelling_rest": _verzoek(soort="vaststelling", traject_type="CMD", bedrag_cents=800_000,
                                      vastgesteld_cents=800_000, betaald_cents=400_000),
        "vaststelling_gelijk": _verzoek(soort="vaststelling", traject_type="CMD", bedrag_cents=800_000),
        "vaststelling_hoger_2019": _verzoek(soort="vaststelling", regeling=R2019, traject_type="CMD",
                                            bedrag_cents=800_000, vastgesteld_cents=900_000,
                                            betaald_cents=800_000, datum=date(2021, 12, 24)),
    }


def tekst_van(beschikking: Beschikking) -> str:
    """The words notifications' templates make of grants' decision data (as it travels: JSON)."""
    from notifications.domain import Brief, Contacten
    from notifications.sjablonen import Sjablonen

    gegevens = json.loads(json.dumps(beschikking.brief))
    brief = Brief.uit_beschikking({"beschikkingId": "b", "kenmerk": beschikking.kenmerk, "soort": beschikking.soort,
                                   "datum": beschikking.datum.isoformat(), "mandaat": beschikking.mandaat,
                                   "brief": gegevens}, "A-1", "0957", Contacten({}, {}), None)
    return Sjablonen().beschikking_tekst(brief)
