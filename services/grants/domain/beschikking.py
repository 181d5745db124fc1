"""Beschikkingen: the kinds of decision, who may sign which (Awb 10:10 and the sub-mandate), the objection
period (counted from the day after sending, with the Atw), and the decision as data for the letter. The words of
the letter are notifications' templates; a 4:14 notice's own check is here too."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from grants.domain.regeling import Regeling
from grants.domain.toetsing import Grond
from servicekit.kalender import bezwaartermijn_einde

SOORTEN = ("toekenning", "afwijzing", "niet_behandelen", "doorzending", "verdaging", "vaststelling", "verlenging",
           "afwijzing_verlenging")
# System decisions may be taken without a named official; every other kind needs the matching sub-mandate.
ZONDER_ONDERTEKENAAR = frozenset({"afwijzing", "niet_behandelen", "doorzending", "afwijzing_verlenging"})
MANDAAT_SCOPE = {"toekenning": "toekenning", "afwijzing": "afwijzing", "niet_behandelen": "niet_behandelen",
                 "verdaging": "verdaging", "vaststelling": "vaststelling", "verlenging": "verlenging",
                 "afwijzing_verlenging": "afwijzing"}
MET_BEZWAAR = frozenset({"toekenning", "afwijzing", "niet_behandelen", "vaststelling", "verlenging",
                         "afwijzing_verlenging"})
# The kinds whose letter states an amount (bedrag_cents of the Beschikking).
MET_BEDRAG = frozenset({"toekenning", "vaststelling"})


class MandaatOntbreekt(Exception):
    """The official's sub-mandate does not cover this kind of decision (IPS-MANDAAT-001)."""


@dataclass(frozen=True)
class Ondertekenaar:
    subject: str
    naam: str
    mandaten: frozenset[str]


def controleer_mandaat(soort: str, ondertekenaar: Ondertekenaar | None) -> None:
    """Raise MandaatOntbreekt unless the decision may be signed as given (Awb 10:10 and the sub-mandate)."""
    if soort not in SOORTEN:
        raise ValueError(f"unknown kind of decision {soort!r}")
    if ondertekenaar is None:
        if soort in ZONDER_ONDERTEKENAAR:
            return
        raise MandaatOntbreekt(f"Een beschikking van de soort {soort} vraagt een gemandateerde ondertekenaar.")
    scope = MANDAAT_SCOPE.get(soort)  # a forwarding notice (Awb 2:3) is no decision: no scope needed
    if scope is not None and scope not in ondertekenaar.mandaten:
        raise MandaatOntbreekt(
            f"De ondertekenaar heeft geen ondermandaat voor beschikkingen van de soort {soort}.")


SYSTEEM_ONDERTEKENAAR = "de daartoe gemandateerde functionaris (besluit zonder tussenkomst van een medewerker)"


def mandaattekst(regeling: Regeling, gemeente_naam: str, ondertekenaar: Ondertekenaar | None) -> str:
    naam = ondertekenaar.naam if ondertekenaar and ondertekenaar.naam else SYSTEEM_ONDERTEKENAAR
    return regeling.mandaattekst.format(gemeente=gemeente_naam, ondertekenaar=naam)


@dataclass(frozen=True)
class BeschikkingVerzoek:
    aanvraag_id: str
    soort: str
    gemeente_code: str
    gemeente_naam: str
    regeling: Regeling
    traject_type: str
    bedrag_cents: int
    gronden: tuple[Grond, ...]
    motivering: str
    ondertekenaar: Ondertekenaar | None
    datum: date
    kenmerk: str
    ggz_kvk_nummer: str | None = None
    nieuwe_beslisdatum: date | None = None
    van_gemeente_naam: str | None = None
    naar_gemeente_naam: str | None = None
    # verlenging: the new planned end date and the months added
    nieuwe_einddatum: date | None = None
    maanden: int | None = None
    # vaststelling: bedrag_cents is the granted amount, vastgesteld_cents the final one (None: the granted
    # amount); betaald_cents what was paid so far (None: the advance of the regulation's payment schedule)
    vastgesteld_cents: int | None = None
    betaald_cents: int | None = None


@dataclass(frozen=True)
class Beschikking:
    """The decision as data. The words of the letter are notifications' templates (``beschikking/``);
    ``brief`` is everything they need, JSON-ready (dates ISO 8601, amounts in cents)."""

    kenmerk: str
    soort: str
    datum: date
    bezwaartermijn_einde: date | None
    bedrag_cents: int
    financiering: dict[str, object] | None
    mandaat: str
    brief: dict[str, object]


def stel_beschikking_op(v: BeschikkingVerzoek) -> Beschikking:
    """Take the decision; raises MandaatOntbreekt when the signatory may not take this kind of decision."""
    controleer_mandaat(v.soort, v.ondertekenaar)
    r = v.regeling
    mandaat = mandaattekst(r, v.gemeente_naam, v.ondertekenaar)
    einde = bezwaartermijn_einde(v.datum, r.bezwaartermijn_weken) if v.soort in MET_BEZWAAR else None
    bedrag_cents = v.bedrag_cents
    if v.soort == "vaststelling" and v.vastgesteld_cents is not None:
        bedrag_cents = v.vastgesteld_cents
    financiering = r.financiering(bedrag_cents) if v.soort in MET_BEDRAG else None
    return Beschikking(kenmerk=v.kenmerk, soort=v.soort, datum=v.datum, bezwaartermijn_einde=einde,
                       bedrag_cents=bedrag_cents if v.soort in MET_BEDRAG else 0,
                       financiering=financiering, mandaat=mandaat,
                       brief=briefgegevens(v, mandaat, einde, financiering))


def _iso(dag: date | None) -> str | None:
    return dag.isoformat() if dag else None


def briefgegevens(v: BeschikkingVerzoek, mandaat: str, bezwaar_einde: date | None,
                  financiering: dict[str, object] | None) -> dict[str, object]:
    """What the letter states, as data: the grounds, amounts, dates, the mandate chain and the objection
    clause's period and end. Notifications renders the words from this (and from nothing else)."""
    r = v.regeling
    gegevens: dict[str, object] = {
        "soort": v.soort, "kenmerk": v.kenmerk, "datum": v.datum.isoformat(), "aanvraagId": v.aanvraag_id,
        "ggzKvkNummer": v.ggz_kvk_nummer, "gemeenteNaam": v.gemeente_naam, "citeertitel": r.citeertitel,
        "trajectType": v.traject_type, "gronden": [g.tekst for g in v.gronden], "motivering": v.motivering,
        "mandaat": mandaat, "bezwaar": ({"weken": r.bezwaartermijn_weken, "einde": bezwaar_einde.isoformat()}
                                        if bezwaar_einde else None),
    }
    if v.soort == "toekenning":
        gegevens.update(bedragCents=v.bedrag_cents, financiering=financiering,
                        looptijdMaanden=r.looptijd_maanden.get(v.traject_type),
                        verlengingMaxMaanden=r.verlenging_max_maanden)
    elif v.soort == "doorzending":
        gegevens.update(vanGemeenteNaam=v.van_gemeente_naam, naarGemeenteNaam=v.naar_gemeente_naam)
    elif v.soort == "verdaging":
        gegevens["nieuweBeslisdatum"] = _iso(v.nieuwe_beslisdatum)
    elif v.soort in ("verlenging", "afwijzing_verlenging"):
        gegevens.update(nieuweEinddatum=_iso(v.nieuwe_einddatum), maanden=v.maanden)
    elif v.soort == "vaststelling":
        verleend = v.bedrag_cents
        gegevens.update(
            verleendCents=verleend,
            vastgesteldCents=v.vastgesteld_cents if v.vastgesteld_cents is not None else verleend,
            betaaldCents=v.betaald_cents if v.betaald_cents is not None else voorschot_cents(r, verleend),
            terugvorderingstermijnJaren=r.terugvorderingstermijn_jaren)
    return gegevens


def voorschot_cents(regeling: Regeling, verleend_cents: int) -> int:
    """What the payment schedule pays before the vaststelling (the moments other than ``vaststelling``)."""
    percentage = sum(b.percentage for b in regeling.betaalschema if b.moment != "vaststelling")
    return verleend_cents * percentage // 100


def verdaging_ongeldig(nieuwe: date | None, huidige: date | None, vandaag: date) -> str | None:
    """Why a 4:14 notice cannot be sent (or None): it must come before the current decision date has passed,
    and name a later date than both that date and today."""
    if nieuwe is None:
        return "Geef de nieuwe beslisdatum op."
    if huidige is not None and vandaag > huidige:
        return (f"De beslistermijn is op {huidige.isoformat()} verstreken; de beslissing kan alleen vóór het einde "
                "van de termijn worden verdaagd (artikel 4:14 Awb).")
    grens = max(vandaag, huidige) if huidige is not None else vandaag
    if nieuwe <= grens:
        return f"De nieuwe beslisdatum moet na {grens.isoformat()} liggen."
    return None
