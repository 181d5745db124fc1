"""The rules of the IPS regulations: pure, synchronous, standard library and the shared legal calendar only.

Every number that a regulation sets (windows, ceilings, caps, tariffs, durations, co-financing, deadlines)
comes from a ``Regeling`` built from configuration (``regelingen/*.json``); nothing here is a constant of
a regulation. What is a constant here is the law around them: the Awb (decision deadline from the day of
receipt, the objection period counted from the day after sending) and the Algemene termijnenwet, both counted
by ``servicekit.kalender``.

The modules, each importing only those above it:

* ``regeling``: the regulation model and which regulation an application falls under;
* ``toetsing``: competence, window and decision deadline; the grounds of refusal that do not depend on the budget;
* ``beschikking``: the kinds of decision, the mandate, the objection period, the decision as data for the letter;
* ``traject``: the trajectory after the grant (one extension, the vaststelling);
* ``zaak``: the aggregate, grants' record of one application and the rules over it.

The names below are the package's interface: ``from grants.domain import Regeling`` and the like.
"""

from __future__ import annotations

from grants.domain.beschikking import (
    MANDAAT_SCOPE,
    MET_BEDRAG,
    MET_BEZWAAR,
    SOORTEN,
    SYSTEEM_ONDERTEKENAAR,
    ZONDER_ONDERTEKENAAR,
    Beschikking,
    BeschikkingVerzoek,
    MandaatOntbreekt,
    Ondertekenaar,
    briefgegevens,
    controleer_mandaat,
    mandaattekst,
    stel_beschikking_op,
    verdaging_ongeldig,
    voorschot_cents,
)
from grants.domain.regeling import (
    Betaalmoment,
    Budgetperiode,
    Cofinanciering,
    Periode,
    Regeling,
    kies_regeling,
)
from grants.domain.toetsing import (
    Criteria,
    Grond,
    Toetsing,
    grond_gemeentelijk_maximum,
    grond_subsidieplafond,
    toets,
    weigeringsgronden,
)
from grants.domain.traject import (
    VASTSTELLINGSREGELS,
    Vaststelling,
    Verlengingstoets,
    deel_half_naar_boven,
    gelopen_maanden,
    geplande_einddatum,
    stel_vast,
    toets_verlenging,
    verlengde_einddatum,
)
from grants.domain.zaak import (
    MET_VERLENGINGSTOETS,
    Beschikkingsgegevens,
    Weigering,
    Zaak,
)

__all__ = [
    "MANDAAT_SCOPE",
    "MET_BEDRAG",
    "MET_BEZWAAR",
    "MET_VERLENGINGSTOETS",
    "SOORTEN",
    "SYSTEEM_ONDERTEKENAAR",
    "VASTSTELLINGSREGELS",
    "ZONDER_ONDERTEKENAAR",
    "Beschikking",
    "BeschikkingVerzoek",
    "Beschikkingsgegevens",
    "Betaalmoment",
    "Budgetperiode",
    "Cofinanciering",
    "Criteria",
    "Grond",
    "MandaatOntbreekt",
    "Ondertekenaar",
    "Periode",
    "Regeling",
    "Toetsing",
    "Vaststelling",
    "Verlengingstoets",
    "Weigering",
    "Zaak",
    "briefgegevens",
    "controleer_mandaat",
    "deel_half_naar_boven",
    "gelopen_maanden",
    "geplande_einddatum",
    "grond_gemeentelijk_maximum",
    "grond_subsidieplafond",
    "kies_regeling",
    "mandaattekst",
    "stel_beschikking_op",
    "stel_vast",
    "toets",
    "toets_verlenging",
    "verdaging_ongeldig",
    "verlengde_einddatum",
    "voorschot_cents",
    "weigeringsgronden",
]
