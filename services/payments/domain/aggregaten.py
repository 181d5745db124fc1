"""payments' aggregates: the case (Betaalzaak), the payment order (Betaalopdracht) and the recovery
(Terugvordering), typed, with the money rules as methods. Standard library and ``regels`` only, no I/O.

Handlers load them, call a method and store what it returns: the case through servicekit's unit of work, the
orders and recoveries through the guarded single-document steps of payments.repository (each repeatable on its
own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from payments.domain.regels import (
    BETAALD,
    GEANNULEERD,
    GEREED,
    OPEN,
    REKENING_ONTBREEKT,
    VERREKEND,
    Aandeel,
    OpenTerugvordering,
    Verrekening,
    financieringsaandeel,
    verjaard,
    verlaging_aandeel,
)

Bedragen = dict[str, dict[str, int]]  # a ledger booking: {share: {column: cents}}
VASTSTELLING_ANNULERING = "vaststelling"  # geannuleerd_door of an order cancelled by the vaststelling's reduction
STOPBERICHT = "stopbericht"  # geannuleerd_door of an order cancelled by the stop notice


def boeking(kolom: str, aandeel: Aandeel) -> Bedragen:
    """A ledger booking of ``aandeel`` in ``kolom``, for the whole and per funding share."""
    return {"totaal": {kolom: aandeel.rijk_cents + aandeel.gemeente_cents},
            "rijk": {kolom: aandeel.rijk_cents}, "gemeente": {kolom: aandeel.gemeente_cents}}


def _aandeel(raw: Mapping[str, Any]) -> Aandeel:
    return Aandeel(int(raw["rijk_cents"]), int(raw["gemeente_cents"]))


def _als_doc(a: Aandeel) -> dict[str, int]:
    return {"rijk_cents": a.rijk_cents, "gemeente_cents": a.gemeente_cents}


@dataclass(frozen=True)
class Zaakgegevens:
    """Who and what a case's money is for, as the engine's commands carry it."""

    aanvraag_id: str
    beschikking_id: str
    ggz_kvk_nummer: str
    gemeente_code: str
    regeling: str


@dataclass(frozen=True)
class Verlaging:
    """What a vaststelling took off one order (``cents`` 0: the order was already in a batch), recorded once."""

    beschikking_id: str
    cents: int
    van_bedrag_cents: int
    van_netto_cents: int
    aandeel: Aandeel

    def as_doc(self) -> dict[str, Any]:
        return {"beschikking_id": self.beschikking_id, "cents": self.cents, "van_bedrag_cents": self.van_bedrag_cents,
                "van_netto_cents": self.van_netto_cents, **_als_doc(self.aandeel)}

    @classmethod
    def from_doc(cls, raw: Mapping[str, Any]) -> Verlaging:
        return cls(raw["beschikking_id"], int(raw["cents"]), int(raw["van_bedrag_cents"]),
                   int(raw["van_netto_cents"]), _aandeel(raw))


@dataclass(frozen=True)
class Betaalopdracht:
    """A payment order (betaalopdracht): one installment of a case, net of what was set off against recoveries."""

    id: str
    zaak: Zaakgegevens
    moment: str
    termijn: int
    bedrag_cents: int
    verrekend_cents: int
    netto_cents: int
    verrekeningen: dict[str, int]  # recovery id -> cents set off
    aandeel: Aandeel  # of bedrag_cents
    netto_aandeel: Aandeel  # of netto_cents
    status: str
    geannuleerd_door: str | None = None
    verlaging: Verlaging | None = None

    @classmethod
    def nieuw(cls, opdracht_id: str, zaak: Zaakgegevens, moment: str, termijn: int, bedrag_cents: int,
              verrekeningen: Sequence[tuple[str, int]], financiering: Mapping[str, Any] | None,
              rekening_geldig: bool) -> Betaalopdracht:
        """The order of an installment: fully set off it needs no transfer (verrekend); without a valid bank
        account of the ggz it waits (rekening_ontbreekt); otherwise it is ready for the next batch."""
        verrekend = sum(c for _, c in verrekeningen)
        netto = bedrag_cents - verrekend
        status = VERREKEND if netto == 0 else GEREED if rekening_geldig else REKENING_ONTBREEKT
        return cls(opdracht_id, zaak, moment, termijn, bedrag_cents, verrekend, netto, dict(verrekeningen),
                   financieringsaandeel(bedrag_cents, financiering), financieringsaandeel(netto, financiering), status)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Betaalopdracht:
        verlaging = doc.get("verlaging")
        return cls(doc["_id"], Zaakgegevens(doc["aanvraag_id"], doc["beschikking_id"], doc["ggz_kvk_nummer"],
                                            doc["gemeente_code"], doc["regeling"]),
                   doc["moment"], int(doc.get("termijn") or 0), int(doc["bedrag_cents"]), int(doc["verrekend_cents"]),
                   int(doc["netto_cents"]), {k: int(v) for k, v in (doc.get("verrekeningen") or {}).items()},
                   _aandeel(doc["aandeel"]), _aandeel(doc["netto_aandeel"]), doc["status"],
                   doc.get("geannuleerd_door"), Verlaging.from_doc(verlaging) if verlaging else None)

    def nieuw_doc(self) -> dict[str, Any]:
        """The document of a new order (the rest of its fields are written by later steps)."""
        z = self.zaak
        return {"_id": self.id, "aanvraag_id": z.aanvraag_id, "beschikking_id": z.beschikking_id,
                "ggz_kvk_nummer": z.ggz_kvk_nummer, "gemeente_code": z.gemeente_code, "regeling": z.regeling,
                "moment": self.moment, "termijn": self.termijn, "bedrag_cents": self.bedrag_cents,
                "verrekend_cents": self.verrekend_cents, "netto_cents": self.netto_cents,
                "verrekeningen": dict(self.verrekeningen), "aandeel": _als_doc(self.aandeel),
                "netto_aandeel": _als_doc(self.netto_aandeel), "status": self.status, "batch_id": None}

    @property
    def ggz(self) -> str:
        return self.zaak.ggz_kvk_nummer

    @property
    def oorspronkelijk_bedrag(self) -> int:
        """What was ordered before a vaststelling reduced the order."""
        return self.verlaging.van_bedrag_cents if self.verlaging else self.bedrag_cents

    @property
    def telt_voor_vaststelling(self) -> bool:
        """Ordered for the case: every order but one cancelled for another reason than the vaststelling."""
        return not (self.status == GEANNULEERD and self.geannuleerd_door != VASTSTELLING_ANNULERING)

    def samenvatting(self) -> dict[str, Any]:
        """The order in a command's reply."""
        return {"opdrachtId": self.id, "moment": self.moment, "bedragCents": self.bedrag_cents,
                "verrekendCents": self.verrekend_cents, "nettoCents": self.netto_cents, "status": self.status,
                "rijkCents": self.aandeel.rijk_cents, "gemeenteCents": self.aandeel.gemeente_cents}

    def boekingen_besteld(self) -> list[tuple[str, Bedragen]]:
        """Ledger bookings of a new order: ordered (gross) and, when set off, the part set off."""
        boekingen = [(f"{self.id}:besteld", boeking("besteld_cents", self.aandeel))]
        if self.verrekend_cents:
            verrekend = Aandeel(self.aandeel.rijk_cents - self.netto_aandeel.rijk_cents,
                                self.aandeel.gemeente_cents - self.netto_aandeel.gemeente_cents)
            boekingen.append((f"{self.id}:verrekend", boeking("verrekend_cents", verrekend)))
        return boekingen

    def boeking_geannuleerd(self) -> tuple[str, Bedragen]:
        return f"{self.id}:geannuleerd", boeking("geannuleerd_cents", self.aandeel)

    def boeking_verrekening_hersteld(self) -> tuple[str, Bedragen] | None:
        """A cancelled order's set-off is undone (its recoveries are open again): the set-off booked back."""
        if not self.verrekeningen:
            return None
        terug = Aandeel(self.netto_aandeel.rijk_cents - self.aandeel.rijk_cents,
                        self.netto_aandeel.gemeente_cents - self.aandeel.gemeente_cents)
        return f"{self.id}:verrekend-hersteld", boeking("verrekend_cents", terug)

    def boeking_betaald(self) -> tuple[str, Bedragen]:
        return f"{self.id}:betaald", boeking("betaald_cents", self.netto_aandeel)

    def boeking_verlaagd(self) -> tuple[str, Bedragen] | None:
        if self.verlaging is None or not self.verlaging.cents:
            return None
        return f"{self.id}:verlaagd", boeking("geannuleerd_cents", self.verlaging.aandeel)

    @property
    def verlaagbaar(self) -> bool:
        """Still outside a batch, so a vaststelling can take money off it."""
        return self.status in (GEREED, REKENING_ONTBREEKT)

    @property
    def omschrijving(self) -> str:
        """The remittance text of its transfer."""
        return f"IPS-subsidie aanvraag {self.zaak.aanvraag_id} {self.moment}"

    def verlagen(self, max_cents: int, beschikking_id: str, financiering: Mapping[str, Any] | None) -> Betaalopdracht:
        """The order with up to ``max_cents`` taken off (never more than its net amount: what was set off against a
        recovery is settled already); nothing left makes it cancelled, nothing left to transfer set off."""
        cents = min(max_cents, self.netto_cents)
        minder = verlaging_aandeel(self.netto_aandeel, cents, financiering)
        bedrag, netto = self.bedrag_cents - cents, self.netto_cents - cents
        status = GEANNULEERD if bedrag == 0 else VERREKEND if netto == 0 else self.status
        return replace(
            self, bedrag_cents=bedrag, netto_cents=netto, status=status,
            aandeel=Aandeel(self.aandeel.rijk_cents - minder.rijk_cents,
                            self.aandeel.gemeente_cents - minder.gemeente_cents),
            netto_aandeel=Aandeel(self.netto_aandeel.rijk_cents - minder.rijk_cents,
                                  self.netto_aandeel.gemeente_cents - minder.gemeente_cents),
            geannuleerd_door=VASTSTELLING_ANNULERING if status == GEANNULEERD else self.geannuleerd_door,
            verlaging=Verlaging(beschikking_id, cents, self.bedrag_cents, self.netto_cents, minder))

    def verlaging_velden(self) -> dict[str, Any]:
        """The fields a reduction (``verlagen``) changed, to write over the stored order."""
        velden: dict[str, Any] = {"bedrag_cents": self.bedrag_cents, "netto_cents": self.netto_cents,
                                  "status": self.status, "aandeel": _als_doc(self.aandeel),
                                  "netto_aandeel": _als_doc(self.netto_aandeel)}
        if self.status == GEANNULEERD:
            velden["geannuleerd_door"] = self.geannuleerd_door
        return velden

    def niet_verlaagd(self, beschikking_id: str) -> Betaalopdracht:
        """An order found in a batch: nothing taken off, recorded so a repeated command decides the same."""
        return replace(self, verlaging=Verlaging(beschikking_id, 0, self.bedrag_cents, self.netto_cents, Aandeel(0, 0)))


@dataclass(frozen=True)
class Terugvordering:
    """A recovery (terugvordering) of what was paid beyond the vastgesteld amount; set off or collected."""

    id: str
    zaak: Zaakgegevens
    bedrag_cents: int
    open_cents: int
    aandeel: Aandeel
    vaststellingsdatum: date
    terugvorderen_uiterlijk: date
    verrekenen: bool  # may be set off against later payments to the ggz
    status: str = OPEN

    @classmethod
    def nieuw(cls, terugvordering_id: str, zaak: Zaakgegevens, v: Verrekening, vaststellingsdatum: date,
              financiering: Mapping[str, Any] | None, verrekenen: bool) -> Terugvordering:
        if v.soort != "terugvordering" or v.terugvorderen_uiterlijk is None:
            raise ValueError("geen terugvordering")
        bedrag = -v.saldo_cents
        return cls(terugvordering_id, zaak, bedrag, bedrag, financieringsaandeel(bedrag, financiering),
                   vaststellingsdatum, v.terugvorderen_uiterlijk, verrekenen)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Terugvordering:
        return cls(doc["_id"], Zaakgegevens(doc["aanvraag_id"], doc["beschikking_id"], doc["ggz_kvk_nummer"],
                                            doc["gemeente_code"], doc["regeling"]),
                   int(doc["bedrag_cents"]), int(doc["open_cents"]), _aandeel(doc["aandeel"]),
                   date.fromisoformat(doc["vaststellingsdatum"]), date.fromisoformat(doc["terugvorderen_uiterlijk"]),
                   bool(doc["verrekenen"]), doc["status"])

    def nieuw_doc(self) -> dict[str, Any]:
        z = self.zaak
        return {"_id": self.id, "aanvraag_id": z.aanvraag_id, "beschikking_id": z.beschikking_id,
                "ggz_kvk_nummer": z.ggz_kvk_nummer, "gemeente_code": z.gemeente_code, "regeling": z.regeling,
                "bedrag_cents": self.bedrag_cents, "open_cents": self.open_cents, "aandeel": _als_doc(self.aandeel),
                "vaststellingsdatum": self.vaststellingsdatum.isoformat(),
                "terugvorderen_uiterlijk": self.terugvorderen_uiterlijk.isoformat(), "verrekenen": self.verrekenen,
                "status": self.status, "verrekeningen": {}}

    def verjaard_op(self, vandaag: date) -> bool:
        """Open but past its bar: no longer set off nor collected (Awb 4:57)."""
        return self.status == OPEN and verjaard(self.terugvorderen_uiterlijk, vandaag)

    def als_open(self) -> OpenTerugvordering | None:
        return OpenTerugvordering(self.id, self.open_cents, self.terugvorderen_uiterlijk) if self.status == OPEN \
            else None

    def boeking(self) -> tuple[str, Bedragen]:
        return f"{self.id}:teruggevorderd", boeking("teruggevorderd_cents", self.aandeel)


class BetalingGeweigerd(Exception):
    """A command the case cannot carry out: the BPMN catches ``code`` with an error boundary."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Betaalzaak:
    """The case (one per aanvraag): its orders, financing, end date and vaststelling outcome. Its document also
    holds the command replies (outbox) and applied command ids, written by servicekit's unit of work."""

    id: str
    opdrachten: list[str] = field(default_factory=list)
    aanvraag_id: str | None = None
    ggz_kvk_nummer: str | None = None
    gemeente_code: str | None = None
    regeling: str | None = None
    financiering: dict[str, Any] | None = None
    bedrag_cents: int | None = None
    einddatum: str | None = None
    verrekening: dict[str, Any] | None = None

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Betaalzaak:
        return cls(doc["_id"], list(doc.get("opdrachten") or []), doc.get("aanvraag_id"), doc.get("ggz_kvk_nummer"),
                   doc.get("gemeente_code"), doc.get("regeling"), doc.get("financiering"), doc.get("bedrag_cents"),
                   doc.get("einddatum"), doc.get("verrekening"))

    def as_doc(self) -> dict[str, Any]:
        velden = {"_id": self.id, "aanvraag_id": self.aanvraag_id,
                  "opdrachten": list(self.opdrachten), "ggz_kvk_nummer": self.ggz_kvk_nummer,
                  "gemeente_code": self.gemeente_code, "regeling": self.regeling, "financiering": self.financiering,
                  "bedrag_cents": self.bedrag_cents, "einddatum": self.einddatum, "verrekening": self.verrekening}
        return {k: v for k, v in velden.items() if v is not None}

    def _gegevens(self, zaak: Zaakgegevens, opdrachten: Sequence[str]) -> None:
        self.aanvraag_id, self.ggz_kvk_nummer = zaak.aanvraag_id, zaak.ggz_kvk_nummer
        self.gemeente_code, self.regeling = zaak.gemeente_code, zaak.regeling
        self.opdrachten = list(dict.fromkeys([*self.opdrachten, *opdrachten]))

    def opdrachten_vastleggen(self, zaak: Zaakgegevens, financiering: dict[str, Any], bedrag_cents: int,
                              nieuw: Sequence[Betaalopdracht], eerder: Sequence[Betaalopdracht]) -> dict[str, Any]:
        """Record the orders of one moment; the reply tells what they are and what the case has paid so far."""
        self._gegevens(zaak, [o.id for o in nieuw])
        self.financiering, self.bedrag_cents = financiering, bedrag_cents
        betaald = sum(o.netto_cents for o in [*eerder, *nieuw] if o.status == BETAALD)
        return {"opdrachten": [o.samenvatting() for o in nieuw], "totaalCents": sum(o.bedrag_cents for o in nieuw),
                "betaaldCents": betaald}

    def stopbericht(self, einddatum: date, geannuleerd: Sequence[str]) -> dict[str, Any]:
        self.einddatum = einddatum.isoformat()
        return {"geannuleerdeOpdrachten": list(geannuleerd)}

    def vaststelling_toetsen(self, beschikking_id: str, vastgesteld_cents: int, besteld_cents: int,
                             financiering: Mapping[str, Any] | None) -> None:
        """A case is settled on one vaststelling; any difference needs the case's financing to split it."""
        if self.verrekening is not None and self.verrekening.get("beschikkingId") != beschikking_id:
            raise BetalingGeweigerd("IPS-BETALING-003", "deze aanvraag is al verrekend op een andere vaststelling")
        if besteld_cents != vastgesteld_cents and financiering is None:
            raise BetalingGeweigerd("IPS-BETALING-002", "financiering van de zaak onbekend")

    def verrekening_vastleggen(self, zaak: Zaakgegevens, beschikking_id: str, nieuw: Sequence[str],
                               uitkomst: dict[str, Any]) -> dict[str, Any]:
        self._gegevens(zaak, nieuw)
        self.verrekening = {"beschikkingId": beschikking_id, **uitkomst}
        return uitkomst


# Batch statuses
OPBOUW, AANGEMAAKT, VERZONDEN, GEBOEKT = "opbouw", "aangemaakt", "verzonden", "geboekt"


class BatchConflict(Exception):
    """The request cannot be carried out in the batch's current state (HTTP 409), or the Idempotency-Key
    belongs to another request (HTTP 422)."""


@dataclass(frozen=True)
class Betaalbatch:
    """A SEPA batch (pain.001) of ready orders: built (opbouw, aangemaakt), sent to the bank, booked."""

    id: str
    status: str
    verzoek: dict[str, Any]  # what was asked with the Idempotency-Key: the same key must ask the same
    aangemaakt_op: datetime
    uitvoerdatum: date
    opdrachten: tuple[str, ...] = ()
    control_sum_cents: int = 0

    @staticmethod
    def verzoek_van(max_opdrachten: int, uitvoerdatum: date | None) -> dict[str, Any]:
        return {"maxOpdrachten": max_opdrachten, "uitvoerdatum": uitvoerdatum.isoformat() if uitvoerdatum else None}

    @classmethod
    def nieuw(cls, batch_id: str, max_opdrachten: int, uitvoerdatum: date | None, nu: datetime,
              vandaag: date) -> Betaalbatch:
        """A batch being built; executed on ``uitvoerdatum`` or, without one, today."""
        return cls(batch_id, OPBOUW, cls.verzoek_van(max_opdrachten, uitvoerdatum), nu, uitvoerdatum or vandaag)

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Betaalbatch:
        return cls(doc["_id"], doc["status"], dict(doc["verzoek"]), doc["aangemaakt_op"],
                   date.fromisoformat(doc["uitvoerdatum"]), tuple(doc.get("opdrachten") or ()),
                   int(doc.get("control_sum_cents") or 0))

    def nieuw_doc(self) -> dict[str, Any]:
        return {"_id": self.id, "status": self.status, "verzoek": dict(self.verzoek),
                "aangemaakt_op": self.aangemaakt_op, "uitvoerdatum": self.uitvoerdatum.isoformat(),
                "opdrachten": list(self.opdrachten),
                "aantal": len(self.opdrachten), "control_sum_cents": self.control_sum_cents}

    def zelfde_verzoek(self, verzoek: Mapping[str, Any]) -> None:
        if dict(verzoek) != self.verzoek:
            raise BatchConflict("deze Idempotency-Key hoort bij een ander verzoek")

    @property
    def in_opbouw(self) -> bool:
        return self.status == OPBOUW

    def afronden(self, opdrachten: Sequence[Betaalopdracht]) -> dict[str, Any]:
        """The fields of the built batch: its orders in id order, their count and control sum."""
        if not self.in_opbouw:
            raise BatchConflict(f"batch heeft status {self.status}")
        geordend = sorted(opdrachten, key=lambda o: o.id)
        return {"status": AANGEMAAKT, "opdrachten": [o.id for o in geordend], "aantal": len(geordend),
                "control_sum_cents": sum(o.netto_cents for o in geordend)}

    def verzenden(self, nu: datetime) -> dict[str, Any] | None:
        """The change to 'verzonden' (None: sent already, nothing to change)."""
        if self.status == AANGEMAAKT:
            return {"status": VERZONDEN, "verzonden_op": nu}
        if self.status in (VERZONDEN, GEBOEKT):
            return None
        raise BatchConflict(f"batch heeft status {self.status}")

    def te_boeken(self) -> bool:
        """Whether the bank's booking is still to be recorded (False: booked already)."""
        if self.status == GEBOEKT:
            return False
        if self.status != VERZONDEN:
            raise BatchConflict(f"batch heeft status {self.status}; eerst verzonden melden")
        return True
