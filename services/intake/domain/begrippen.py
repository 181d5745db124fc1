"""The terms of intake's domain: event types, statuses, the values the portal accepts, the missing items and
their texts, the errors, and the range of the desired start date (counted by ``servicekit.kalender``)."""

from __future__ import annotations

from datetime import date

from servicekit.kalender import plus_jaren

AANVRAAG_INGEDIEND = "ips.aanvraag.ingediend.v1"
AANVRAAG_AANGEVULD = "ips.aanvraag.aangevuld.v1"
AANVRAAG_INGETROKKEN = "ips.aanvraag.ingetrokken.v1"
#: The application's place in the order of receipt (grants' allocator); for grants, not a message for the case.
AANVRAAG_VOLGNUMMER_TOEGEKEND = "ips.aanvraag.volgnummer_toegekend.v1"
TRAJECT_VERLENGING_GEVRAAGD = "ips.traject.verlenging_gevraagd.v1"
TRAJECT_STOPBERICHT = "ips.traject.stopbericht.v1"
TRAJECT_EINDVERSLAG_INGEDIEND = "ips.traject.eindverslag_ingediend.v1"

INGEDIEND = "ingediend"
IN_BEHANDELING = "in_behandeling"
AANVULLING_GEVRAAGD = "aanvulling_gevraagd"
AANGEVULD = "aangevuld"
DOORGEZONDEN = "doorgezonden"
TOEGEKEND = "toegekend"
AFGEWEZEN = "afgewezen"
NIET_BEHANDELD = "niet_behandeld"
INGETROKKEN = "ingetrokken"
VASTGESTELD = "vastgesteld"
AANVRAAG_BESLUITEN = (TOEGEKEND, AFGEWEZEN, NIET_BEHANDELD)  # the decision on the application itself
BESLUIT_STATUSSEN = (*AANVRAAG_BESLUITEN, VASTGESTELD)
FINAL = (*BESLUIT_STATUSSEN, INGETROKKEN)

# What the portal accepts as the candidate's benefit; only DOELGROEP_UITKERINGEN (Participatiewet, IOAW, IOAZ,
# or none: a niet-uitkeringsgerechtigde) belong to the regulation's target group.
DOELGROEP_UITKERINGEN = ("bijstand", "ioaw", "ioaz", "geen")
UITKERINGEN = (*DOELGROEP_UITKERINGEN, "ww", "wia", "wajong", "anders")
# The desired start date lies within [aanvraagdatum - 2 years, aanvraagdatum + 1 year].
STARTDATUM_JAREN_VOOR = 2
STARTDATUM_JAREN_NA = 1
SOORT_AANVRAAGFORMULIER = "aanvraagformulier"
UPLOAD_SOORTEN = (SOORT_AANVRAAGFORMULIER, "modelgetrouwheidscertificaat", "overig")
SOORT_EINDVERSLAG = "beeindigingsverslag"
VERLENGING_MAANDEN = range(1, 25)  # what the portal accepts; the regulation's maximum is decided by grants

# Missing items of an incomplete application: code and the Dutch text the ggz sees in the repair request.
ONTBREKEND = {
    "ondertekening_kandidaat": "De aanvraag is niet ondertekend door de kandidaat.",
    "ondertekening_ggz_instelling": "De aanvraag is niet ondertekend door de ggz-instelling.",
    "modelgetrouwheidscertificaat": "De geldigheidsdatum van het modelgetrouwheidscertificaat ontbreekt.",
    "aanvraagformulier": "Het ondertekende aanvraagformulier (pdf) is niet bijgevoegd.",
}


class DomainError(Exception):
    """A rule of the aggregate refuses the change (the portal shows it as a conflict)."""


class InvalidValue(ValueError):
    """A value the aggregate refuses given its state (the portal shows it as invalid input on ``name``)."""

    def __init__(self, name: str, code: str, reason: str) -> None:
        super().__init__(f"{name}: {reason}")
        self.name, self.code, self.reason = name, code, reason


# --- dates (counted by the shared legal calendar, servicekit.kalender) ---------------------------------------


def startdatum_bereik(aanvraagdatum: date) -> tuple[date, date]:
    """The first and last acceptable desired start date for an application dated ``aanvraagdatum``."""
    return plus_jaren(aanvraagdatum, -STARTDATUM_JAREN_VOOR), plus_jaren(aanvraagdatum, STARTDATUM_JAREN_NA)


def startdatum_ongeldig(aanvraagdatum: date, gewenste_startdatum: date) -> InvalidValue | None:
    """Why ``gewenste_startdatum`` is refused for an application dated ``aanvraagdatum``, or None."""
    eerste, laatste = startdatum_bereik(aanvraagdatum)
    if eerste <= gewenste_startdatum <= laatste:
        return None
    return InvalidValue("gewensteStartdatum", "buiten_bereik",
                        f"niet eerder dan {STARTDATUM_JAREN_VOOR} jaar voor en niet later dan "
                        f"{STARTDATUM_JAREN_NA} jaar na de aanvraagdatum")
