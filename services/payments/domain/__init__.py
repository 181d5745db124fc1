"""The domain of payments, standard library and the shared legal calendar only, no I/O.

* ``regels``: the pure rules (payment schedule and funding splits, settlement, recovery and set-off);
* ``aggregaten``: the case, the payment order and the recovery as typed aggregates with those rules as methods.

Code imports ``payments.domain`` (``from payments import domain as d``); the split only keeps each file short.
"""

from payments.domain.aggregaten import (
    STOPBERICHT,
    VASTSTELLING_ANNULERING,
    Bedragen,
    Betaalopdracht,
    Betaalzaak,
    BetalingGeweigerd,
    Terugvordering,
    Verlaging,
    Zaakgegevens,
    boeking,
)
from payments.domain.regels import (
    BETAALD,
    DEFAULT_SCHEMA,
    DEFAULT_TERUGVORDERINGSTERMIJN_JAREN,
    GEANNULEERD,
    GEREED,
    IN_BATCH,
    NAMESPACE,
    OPEN,
    REKENING_ONTBREEKT,
    VERJAARD,
    VERREKEND,
    VOLDAAN,
    Aandeel,
    OpenTerugvordering,
    Verrekening,
    cents_als_euro,
    derived_id,
    financieringsaandeel,
    schema_bedragen,
    today_in_amsterdam,
    uitvoerdatum_toegestaan,
    verjaard,
    verlaging_aandeel,
    verreken_vaststelling,
    verrekenbaar,
    verrekening_verdelen,
)

__all__ = [
    "BETAALD", "DEFAULT_SCHEMA", "DEFAULT_TERUGVORDERINGSTERMIJN_JAREN", "GEANNULEERD", "GEREED", "IN_BATCH",
    "NAMESPACE", "OPEN", "REKENING_ONTBREEKT", "STOPBERICHT", "VASTSTELLING_ANNULERING", "VERJAARD", "VERREKEND",
    "VOLDAAN", "Aandeel", "Bedragen", "Betaalopdracht", "Betaalzaak", "BetalingGeweigerd", "OpenTerugvordering",
    "Terugvordering", "Verlaging", "Verrekening", "Zaakgegevens", "boeking", "cents_als_euro", "derived_id",
    "financieringsaandeel", "schema_bedragen", "today_in_amsterdam", "uitvoerdatum_toegestaan", "verjaard",
    "verlaging_aandeel", "verreken_vaststelling", "verrekenbaar", "verrekening_verdelen",
]
