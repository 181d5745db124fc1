"""The assessment of an application: which regulation, whether the addressed gemeente is competent, when the
decision is due (Awb 4:13 with the Algemene termijnenwet, counted by ``servicekit.kalender``), and every ground of
refusal that does not depend on the budget, with the words a letter states it in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from grants.domain.regeling import Budgetperiode, Regeling, kies_regeling
from servicekit.kalender import amsterdam_dag, begin_volgende_dag, datum_nl, plus_duur, termijn_einde


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
