"""The application (aanvraag) as intake knows it. Pure and synchronous: standard library and servicekit.kalender only.

The aggregate changes state through its methods; methods called from the portal record domain events
(``ips.aanvraag.*``), methods called for engine commands return the command's result instead (the reply is
the event). Personal data the regulation does not need (nationality, address, gender, diagnosis) has no
place here; the BSN never enters the aggregate in clear text (the edge encrypts it).

The modules, each importing only those above it:

* ``begrippen``: event types, statuses, accepted values, errors, the range of the desired start date;
* ``gemeenten``: the municipality register with validity periods;
* ``onderdelen``: the parts of an application (signatures, documents, letters kept by reference, ...);
* ``aanvraag``: the aggregate and its rules.

The names below are the package's interface: ``from intake.domain import Aanvraag`` and the like.
"""

from __future__ import annotations

from intake.domain.aanvraag import (
    Aanvraag,
)
from intake.domain.begrippen import (
    AANGEVULD,
    AANVRAAG_AANGEVULD,
    AANVRAAG_BESLUITEN,
    AANVRAAG_INGEDIEND,
    AANVRAAG_INGETROKKEN,
    AANVRAAG_VOLGNUMMER_TOEGEKEND,
    AANVULLING_GEVRAAGD,
    AFGEWEZEN,
    BESLUIT_STATUSSEN,
    DOELGROEP_UITKERINGEN,
    DOORGEZONDEN,
    FINAL,
    IN_BEHANDELING,
    INGEDIEND,
    INGETROKKEN,
    NIET_BEHANDELD,
    ONTBREKEND,
    SOORT_AANVRAAGFORMULIER,
    SOORT_EINDVERSLAG,
    STARTDATUM_JAREN_NA,
    STARTDATUM_JAREN_VOOR,
    TOEGEKEND,
    TRAJECT_EINDVERSLAG_INGEDIEND,
    TRAJECT_STOPBERICHT,
    TRAJECT_VERLENGING_GEVRAAGD,
    UITKERINGEN,
    UPLOAD_SOORTEN,
    VASTGESTELD,
    VERLENGING_MAANDEN,
    DomainError,
    InvalidValue,
    startdatum_bereik,
    startdatum_ongeldig,
)
from intake.domain.gemeenten import (
    Gemeente,
    Gemeenteregister,
)
from intake.domain.onderdelen import (
    Besluit,
    DocumentInfo,
    Doelgroep,
    DomainEvent,
    Herstel,
    Modelgetrouwheid,
    Ondertekening,
    Stopbericht,
    Verlengingsverzoek,
    besluit_uit,
)

__all__ = [
    "AANGEVULD",
    "AANVRAAG_AANGEVULD",
    "AANVRAAG_BESLUITEN",
    "AANVRAAG_INGEDIEND",
    "AANVRAAG_INGETROKKEN",
    "AANVRAAG_VOLGNUMMER_TOEGEKEND",
    "AANVULLING_GEVRAAGD",
    "AFGEWEZEN",
    "BESLUIT_STATUSSEN",
    "DOELGROEP_UITKERINGEN",
    "DOORGEZONDEN",
    "FINAL",
    "INGEDIEND",
    "INGETROKKEN",
    "IN_BEHANDELING",
    "NIET_BEHANDELD",
    "ONTBREKEND",
    "SOORT_AANVRAAGFORMULIER",
    "SOORT_EINDVERSLAG",
    "STARTDATUM_JAREN_NA",
    "STARTDATUM_JAREN_VOOR",
    "TOEGEKEND",
    "TRAJECT_EINDVERSLAG_INGEDIEND",
    "TRAJECT_STOPBERICHT",
    "TRAJECT_VERLENGING_GEVRAAGD",
    "UITKERINGEN",
    "UPLOAD_SOORTEN",
    "VASTGESTELD",
    "VERLENGING_MAANDEN",
    "Aanvraag",
    "Besluit",
    "DocumentInfo",
    "Doelgroep",
    "DomainError",
    "DomainEvent",
    "Gemeente",
    "Gemeenteregister",
    "Herstel",
    "InvalidValue",
    "Modelgetrouwheid",
    "Ondertekening",
    "Stopbericht",
    "Verlengingsverzoek",
    "besluit_uit",
    "startdatum_bereik",
    "startdatum_ongeldig",
]
