"""The rules of the IPS regulations: pure, synchronous, standard library and the shared legal calendar only.

Every number that a regulation sets (windows, ceilings, caps, tariffs, durations, co-financing, deadlines)
comes from a ``Regeling`` built from configuration (``regelingen/*.json``); nothing here is a constant of
a regulation. What is a constant here is the law around them: the Awb (decision deadline from the day of
receipt, the objection period counted from the day after sending) and the Algemene termijnenwet, both counted
by ``servicekit.kalender``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime

# The calendar, the durations and the Dutch notation are the shared ones (one legal calendar for every service).
from servicekit.kalender import (
    amsterdam_dag,
    bedrag,
    begin_volgende_dag,
    bezwaartermijn_einde,
    datum_nl,
    einde_periode,
    laatste_dag,
    plus_duur,
    termijn_einde,
)

# --------------------------------------------------------------------------------------------------------------
# Regulations


@dataclass(frozen=True)
class Periode:
    van: date
    tot: date  # inclusive

    def bevat(self, dag: date) -> bool:
        return self.van <= dag <= self.tot


@dataclass(frozen=True)
class Budgetperiode:
    id: str
    periode: Periode
    plafond_cents: int


@dataclass(frozen=True)
class Cofinanciering:
    """Per trajectory (``traject``: fixed amounts per case) or for the budget as a whole (``budget``: shares)."""

    niveau: str  # "traject" | "budget"
    rijk_cents: int | None = None
    gemeente_cents: int | None = None
    rijk_percentage: int | None = None
    gemeenten_percentage: int | None = None


@dataclass(frozen=True)
class Betaalmoment:
    moment: str
    percentage: int


@dataclass(frozen=True)
class Regeling:
    id: str
    versie: str
    naam: str
    citeertitel: str
    aanvraagperiode: Periode
    besluitvormer: str  # "uwv" | "gemeente"
    mandaattekst: str  # template with {gemeente} and {ondertekenaar}
    budgetperioden: tuple[Budgetperiode, ...]
    cap_per_gemeente: int | None
    trajecttypen: tuple[str, ...]
    tarieven: Mapping[str, int]
    looptijd_maanden: Mapping[str, int]
    verlenging_max_maanden: int
    cofinanciering: Cofinanciering
    beslistermijn: str  # ISO 8601 duration, e.g. "P8W"
    hersteltermijn: str  # ISO 8601 duration, e.g. "P14D"
    bezwaartermijn_weken: int
    betaalschema: tuple[Betaalmoment, ...] = field(default_factory=tuple)
    vaststellingsregel: str = "pro_rata_months"
    terugvorderingstermijn_jaren: int = 5

    def tarief(self, traject_type: str) -> int | None:
        """The amount per trajectory in cents, or None when the type is not in this regulation."""
        if traject_type not in self.trajecttypen:
            return None
        return self.tarieven.get(traject_type)

    def budgetperiode(self, dag: date) -> Budgetperiode:
        """The budget period for a day; before the first its first, after the last its last."""
        for periode in self.budgetperioden:
            if periode.periode.bevat(dag):
                return periode
        ordered = sorted(self.budgetperioden, key=lambda p: p.periode.van)
        return ordered[0] if dag < ordered[0].periode.van else ordered[-1]

    def financiering(self, bedrag_cents: int) -> dict[str, object]:
        """How the amount is paid for: per case (2019: Rijk and gemeente of residence) or at budget level."""
        c = self.cofinanciering
        if c.niveau == "traject":
            return {"niveau": "traject", "rijkCents": c.rijk_cents, "gemeenteCents": c.gemeente_cents}
        rijk_pct = c.rijk_percentage or 0
        rijk = bedrag_cents * rijk_pct // 100
        return {"niveau": "budget", "rijkPercentage": rijk_pct, "gemeentenPercentage": c.gemeenten_percentage,
                "rijkCents": rijk, "gemeenteCents": bedrag_cents - rijk}


def kies_regeling(regelingen: Sequence[Regeling], aanvraagdatum: date) -> Regeling:
    """The regulation whose window holds the application date; outside every window the latest one whose
    window started before it (so that the refusal names the regulation it came too late for). Before every
    window: the earliest."""
    if not regelingen:
        raise ValueError("no regulations configured")
    for regeling in regelingen:
        if regeling.aanvraagperiode.bevat(aanvraagdatum):
            return regeling
    ordered = sorted(regelingen, key=lambda r: r.aanvraagperiode.van)
    started = [r for r in ordered if r.aanvraagperiode.van <= aanvraagdatum]
    return started[-1] if started else ordered[0]


# --------------------------------------------------------------------------------------------------------------
# Toetsing (competence, window, decision deadline)


@dataclass(frozen=True)
class Toetsing:
    regeling: str
    binnen_aanvraagperiode: bool
    bevoegd: bool
    bevoegde_gemeente: str
    beslisdatum: date  # the end of the beslistermijn, moved by the Atw
    beslistermijn_verstrijkt_op: datetime
    hersteltermijn: str
    beslistermijn_einde: date  # the statutory term's own end, before the Atw: Awb 4:15 extends this one


def toets(regelingen: Sequence[Regeling], gemeente_code: str, woongemeente_code: str, aanvraagdatum: date,
          ontvangen_op: datetime) -> Toetsing:
    """Which regulation applies, whether the addressed gemeente is competent (the client's gemeente of
    residence is), and when the decision is due (Awb 4:13: counted from the day of receipt; a deadline ending
    on a Saturday, Sunday or public holiday moves to the next working day, Algemene termijnenwet art. 1)."""
    regeling = kies_regeling(regelingen, aanvraagdatum)
    wettelijk_einde = plus_duur(amsterdam_dag(ontvangen_op), regeling.beslistermijn)
    beslisdatum = termijn_einde(wettelijk_einde)
    return Toetsing(
        regeling=regeling.id,
        binnen_aanvraagperiode=regeling.aanvraagperiode.bevat(aanvraagdatum),
        bevoegd=gemeente_code == woongemeente_code,
        bevoegde_gemeente=woongemeente_code,
        beslisdatum=beslisdatum,
        beslistermijn_verstrijkt_op=begin_volgende_dag(beslisdatum),
        hersteltermijn=regeling.hersteltermijn,
        beslistermijn_einde=wettelijk_einde,
    )


# --------------------------------------------------------------------------------------------------------------
# Eligibility


@dataclass(frozen=True)
class Grond:
    code: str
    tekst: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "tekst": self.tekst}


@dataclass(frozen=True)
class Criteria:
    """What intake established about the application (no personal data: only the facts that matter)."""

    doelgroep: bool
    wil_betaald_werk: bool
    geen_ander_traject: bool
    certificaat_geldig_tot: date | None


def weigeringsgronden(regeling: Regeling, traject_type: str, aanvraagdatum: date, gewenste_startdatum: date,
                      criteria: Criteria) -> list[Grond]:
    """Every ground of refusal that does not depend on the budget, in the order a letter states them."""
    gronden: list[Grond] = []
    periode = regeling.aanvraagperiode
    if not periode.bevat(aanvraagdatum):
        gronden.append(Grond("buiten_aanvraagperiode", (
            f"De aanvraag is gedaan op {datum_nl(aanvraagdatum)}. Op grond van de {regeling.citeertitel} kan een "
            f"aanvraag alleen worden ingediend van {datum_nl(periode.van)} tot en met {datum_nl(periode.tot)}. "
            "De aanvraag is buiten deze aanvraagperiode ingediend.")))
    if regeling.tarief(traject_type) is None:
        toegestaan = " of ".join(regeling.trajecttypen)
        gronden.append(Grond("trajecttype_niet_toegestaan", (
            f"De aanvraag betreft een IPS-traject van het type {traject_type}. De {regeling.citeertitel} voorziet "
            f"alleen in subsidie voor trajecten van het type {toegestaan}.")))
    if not criteria.doelgroep:
        gronden.append(Grond("geen_doelgroep", (
            "De kandidaat behoort niet tot de doelgroep van de regeling: hij of zij ontvangt geen uitkering op "
            "grond van de Participatiewet, de IOAW of de IOAZ en is ook geen niet-uitkeringsgerechtigde.")))
    if not criteria.wil_betaald_werk:
        gronden.append(Grond("geen_wens_tot_werk", (
            "Uit de aanvraag blijkt niet dat de kandidaat betaald werk wil verrichten. Dat is een voorwaarde "
            "voor een IPS-traject.")))
    if not criteria.geen_ander_traject:
        gronden.append(Grond("ander_traject", (
            "De kandidaat neemt al deel aan een ander re-integratietraject. Voor een kandidaat die al een ander "
            "traject volgt, wordt geen subsidie voor een IPS-traject verstrekt.")))
    tot = criteria.certificaat_geldig_tot
    if tot is None or tot < gewenste_startdatum:
        waarom = ("Er is geen geldig certificaat van modelgetrouwheid overgelegd." if tot is None else
                  f"Het certificaat van modelgetrouwheid is geldig tot {datum_nl(tot)}.")
        gronden.append(Grond("certificaat_ongeldig_op_startdatum", (
            f"{waarom} De ggz-instelling moet op de gewenste startdatum van het traject "
            f"({datum_nl(gewenste_startdatum)}) "
            "beschikken over een geldig certificaat van modelgetrouwheid van de IPS-methodiek.")))
    return gronden


def grond_gemeentelijk_maximum(regeling: Regeling, gemeente_naam: str) -> Grond:
    return Grond("gemeentelijk_maximum_bereikt", (
        f"Op grond van de {regeling.citeertitel} kunnen per gemeente ten hoogste {regeling.cap_per_gemeente} "
        f"trajecten worden gesubsidieerd. Voor de gemeente {gemeente_naam} is dit maximum bereikt."))


def grond_subsidieplafond(regeling: Regeling, periode: Budgetperiode) -> Grond:
    return Grond("subsidieplafond_bereikt", (
        f"Het subsidieplafond voor de periode {periode.id} van de {regeling.citeertitel} is bereikt. Het "
        "beschikbare bedrag wordt verdeeld in de volgorde van ontvangst van de volledige aanvragen. Verlening "
        "van de subsidie zou ertoe leiden dat het subsidieplafond wordt overschreden (artikel 4:25, tweede lid, "
        "van de Algemene wet bestuursrecht)."))


# --------------------------------------------------------------------------------------------------------------
# Beschikkingen

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


# --------------------------------------------------------------------------------------------------------------
# The trajectory after the grant: extension and vaststelling


def _maanden_verder(dag: date, maanden: int) -> tuple[int, int]:
    total = dag.year * 12 + dag.month - 1 + maanden
    return total // 12, total % 12 + 1


#: The last day of a trajectory of ``maanden`` months from ``start`` (servicekit.kalender.einde_periode).
geplande_einddatum = einde_periode


def verlengde_einddatum(einde: date, maanden: int) -> date:
    """A planned end date moved by ``maanden`` months, end-of-month aware: a period ending on the last day of
    a month ends on the last day of the month ``maanden`` later (2026-01-31 + 12 -> 2027-01-31; 2026-04-30 + 1
    -> 2026-05-31; 2027-02-28 + 12 -> 2028-02-29); otherwise on the same day, or that month's last day."""
    year, month = _maanden_verder(einde, maanden)
    laatste = laatste_dag(year, month)
    if einde.day == laatste_dag(einde.year, einde.month):
        return date(year, month, laatste)
    return date(year, month, min(einde.day, laatste))


@dataclass(frozen=True)
class Verlengingstoets:
    toegestaan: bool
    weigeringsgronden: tuple[Grond, ...]
    nieuwe_einddatum: date | None


def toets_verlenging(regeling: Regeling, maanden: int, einddatum: date, eerdere_verlengingen: int) -> Verlengingstoets:
    """One extension of at most the regulation's ``verlenging_max_maanden`` months; the new end date when
    it may be granted (the gemeente still decides)."""
    gronden: list[Grond] = []
    maximum = regeling.verlenging_max_maanden
    if maanden < 1 or maanden > maximum:
        gronden.append(Grond("verlenging_te_lang" if maanden > maximum else "verlenging_ongeldig", (
            f"U vraagt een verlenging van {maanden} maanden. Op grond van de {regeling.citeertitel} kan een "
            f"traject met ten hoogste {maximum} maanden worden verlengd.")))
    if eerdere_verlengingen > 0:
        gronden.append(Grond("al_verlengd", (
            f"Het traject is al eerder verlengd. Op grond van de {regeling.citeertitel} kan een traject maar "
            "eenmaal worden verlengd.")))
    if gronden:
        return Verlengingstoets(False, tuple(gronden), None)
    return Verlengingstoets(True, (), verlengde_einddatum(einddatum, maanden))


VASTSTELLINGSREGELS = ("full", "pro_rata_months")


@dataclass(frozen=True)
class Vaststelling:
    vastgesteld_cents: int
    regel: str
    maanden: int
    toelichting: str


def gelopen_maanden(start: date, einde: date) -> int:
    """The calendar months in which the trajectory ran: from the month of ``start`` up to and including the
    month of ``einde`` (0 when it ended before it started)."""
    if einde < start:
        return 0
    return (einde.year - start.year) * 12 + einde.month - start.month + 1


def deel_half_naar_boven(teller: int, noemer: int) -> int:
    """teller / noemer rounded to whole cents, a half rounded up (non-negative numbers)."""
    quotient, rest = divmod(teller, noemer)
    return quotient + (1 if 2 * rest >= noemer else 0)


def stel_vast(regel: str, verleend_cents: int, startdatum: date, geplande_einde: date,
              werkelijke_einde: date | None, looptijd_maanden: int) -> Vaststelling:
    """The final amount under the regulation's rule.

    ``full``: the granted amount. ``pro_rata_months``: granted * months run / looptijd_maanden, where months
    run are the calendar months from the start month up to and including the month it ended (the planned end
    when it ran its course), at most the looptijd (an extension adds time, not money); half a cent rounds up.
    """
    if regel not in VASTSTELLINGSREGELS:
        raise ValueError(f"unknown vaststellingsregel {regel!r}")
    if looptijd_maanden < 1:
        raise ValueError("looptijd_maanden must be positive")
    einde = werkelijke_einde or geplande_einde
    maanden = min(gelopen_maanden(startdatum, einde), looptijd_maanden)
    vroeg = werkelijke_einde is not None and werkelijke_einde < geplande_einde
    verloop = (f"Het traject is gestart op {datum_nl(startdatum)} en " +
               (f"voortijdig beëindigd op {datum_nl(einde)}" if vroeg else f"geëindigd op {datum_nl(einde)}") +
               f"; het liep in {gelopen_maanden(startdatum, einde)} kalendermaanden.")
    if regel == "full":
        return Vaststelling(verleend_cents, regel, maanden, (
            f"{verloop} De regeling stelt de subsidie vast op het verleende bedrag van {bedrag(verleend_cents)}."))
    vastgesteld = deel_half_naar_boven(verleend_cents * maanden, looptijd_maanden)
    return Vaststelling(vastgesteld, regel, maanden, (
        f"{verloop} De regeling stelt de subsidie vast naar rato van de maanden waarin het traject liep: "
        f"{maanden} van de {looptijd_maanden} maanden van {bedrag(verleend_cents)} is {bedrag(vastgesteld)}."))


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
