"""Command handlers of payments (engine commands) and the batch operations the HTTP API calls.

Every handler is a sequence of steps that are each idempotent on their own (deterministic ids, inserts that
treat DuplicateKeyError as "already done", ledger bookings keyed by order id), ending with
``apply_command`` on the case document, which stores the reply and the command id in one write. A crash
anywhere means a redelivery that repeats the steps without a second effect and then replies.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from payments import domain as d
from payments.messages import OpdrachtenAanmaken, StopberichtDoorgeven, Verrekenen
from payments.rekening import Rekening
from payments.repository import PaymentsRepository
from payments.sepa import Overboeking, build_pain001, validate
from servicekit.commands import Failure, apply_command, command_params
from servicekit.envelope import CloudEvent
from servicekit.logging import get_logger
from servicekit.store import Document, DuplicateKeyError

log = get_logger(__name__)
SERVICE = "payments"
Wake = Callable[..., None]

# Batch statuses
OPBOUW, AANGEMAAKT, VERZONDEN, GEBOEKT = "opbouw", "aangemaakt", "verzonden", "geboekt"


@dataclass(frozen=True)
class Rekeningen:
    debiteur: Rekening
    ggz: dict[str, Rekening]

    def voor(self, kvk: str) -> Rekening | None:
        rekening = self.ggz.get(kvk)
        return rekening if rekening is not None and rekening.geldig else None


VASTSTELLING = "vaststelling"  # geannuleerd_door of an order cancelled by the vaststelling's reduction


def _oorspronkelijk_bedrag(o: Document) -> int:
    """What was ordered before a vaststelling reduced the order."""
    verlaging = o.get("verlaging")
    return int(verlaging["van_bedrag_cents"]) if verlaging else int(o["bedrag_cents"])


class BatchConflict(Exception):
    """The request cannot be carried out in the batch's current state (HTTP 409)."""


class NietsTeBetalen(Exception):
    """No order is ready for payment."""


def _opdracht_samenvatting(o: Document) -> dict[str, Any]:
    return {"opdrachtId": o["_id"], "moment": o["moment"], "bedragCents": o["bedrag_cents"],
            "verrekendCents": o["verrekend_cents"], "nettoCents": o["netto_cents"], "status": o["status"],
            "rijkCents": o["aandeel"]["rijk_cents"], "gemeenteCents": o["aandeel"]["gemeente_cents"]}


def _ledger_bedragen(kolom: str, aandeel: d.Aandeel) -> dict[str, dict[str, int]]:
    return {"totaal": {kolom: aandeel.rijk_cents + aandeel.gemeente_cents},
            "rijk": {kolom: aandeel.rijk_cents}, "gemeente": {kolom: aandeel.gemeente_cents}}


class PaymentsHandlers:
    def __init__(self, repo: PaymentsRepository, rekeningen: Rekeningen, wake: Wake,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.repo = repo
        #: Business time (the rehearsal clock in test): order and batch dates; commands carry the engine's time.
        self.clock = clock
        self.rekeningen = rekeningen
        self._wake = wake

    def wake(self, doc: Document) -> None:
        collection: AsyncCollection[Document] = self.repo.zaken.collection
        self._wake(doc["_id"], collection, doc)

    # ------------------------------------------------------------------------------------ orders (shared)

    async def _opdracht(self, *, opdracht_id: str, zaak: dict[str, Any], moment: str, index: int, bedrag_cents: int,
                        financiering: dict[str, Any], verrekenen: bool, vandaag: date, nu: datetime) -> Document:
        """Create the order once (set off against open recoveries of the ggz when allowed) and book it."""
        existing = await self.repo.opdracht(opdracht_id)
        if existing is None:
            kvk = zaak["ggz_kvk_nummer"]
            delen = await self._verrekenen(kvk, opdracht_id, bedrag_cents, vandaag) if verrekenen else []
            verrekend = sum(c for _, c in delen)
            netto = bedrag_cents - verrekend
            aandeel = d.financieringsaandeel(bedrag_cents, financiering)
            netto_aandeel = d.financieringsaandeel(netto, financiering)
            if netto == 0:
                status = d.VERREKEND
            else:
                status = d.GEREED if self.rekeningen.voor(kvk) is not None else d.REKENING_ONTBREEKT
            existing = await self.repo.opdracht_invoegen({
                "_id": opdracht_id, "aanvraag_id": zaak["aanvraag_id"], "beschikking_id": zaak["beschikking_id"],
                "ggz_kvk_nummer": kvk, "gemeente_code": zaak["gemeente_code"], "regeling": zaak["regeling"],
                "moment": moment, "termijn": index, "bedrag_cents": bedrag_cents, "verrekend_cents": verrekend,
                "netto_cents": netto, "verrekeningen": {rid: c for rid, c in delen},
                "aandeel": {"rijk_cents": aandeel.rijk_cents, "gemeente_cents": aandeel.gemeente_cents},
                "netto_aandeel": {"rijk_cents": netto_aandeel.rijk_cents,
                                  "gemeente_cents": netto_aandeel.gemeente_cents},
                "status": status, "batch_id": None, "aangemaakt_op": nu, "revision": 0})
            if status == d.REKENING_ONTBREEKT:
                log.warning("opdracht.rekening_ontbreekt", opdracht_id=opdracht_id, ggz=kvk)
        await self._boek_opdracht(existing)
        return existing

    async def _verrekenen(self, kvk: str, opdracht_id: str, bedrag_cents: int, vandaag: date) -> list[tuple[str, int]]:
        """Set the payment off against the ggz's open recoveries (oldest bar first); repeatable: a set-off
        this order already made (before a crash) is found and counted, never made twice."""
        ledger = await self.repo.grootboek_van(kvk) or {}
        open_ids = sorted((ledger.get("open_terugvorderingen") or {}).keys())
        delen: list[tuple[str, int]] = []
        kandidaten: list[d.OpenTerugvordering] = []
        for tid in open_ids:
            t = await self.repo.terugvordering(tid)
            if t is None:
                continue
            gedaan = (t.get("verrekeningen") or {}).get(opdracht_id)
            if gedaan:
                delen.append((tid, int(gedaan)))
                continue
            uiterlijk = date.fromisoformat(t["terugvorderen_uiterlijk"])
            if t["status"] == d.OPEN and d.verjaard(uiterlijk, vandaag):
                await self._verjaren(t)
                continue
            if t["status"] == d.OPEN:
                kandidaten.append(d.OpenTerugvordering(tid, int(t["open_cents"]), uiterlijk))
        plan, _ = d.verrekening_verdelen(bedrag_cents - sum(c for _, c in delen),
                                         [(t.id, t.open_cents) for t in d.verrekenbaar(kandidaten, vandaag)])
        for tid, cents in plan:
            if await self.repo.verrekenen(tid, opdracht_id, cents):
                delen.append((tid, cents))
                t = await self.repo.terugvordering(tid)
                if t is not None and t["open_cents"] == 0 and await self.repo.terugvordering_status(tid, d.OPEN,
                                                                                                    d.VOLDAAN):
                    await self.repo.grootboek_zetten(kvk, wissen=(f"open_terugvorderingen.{tid}",))
        return delen

    async def _verjaren(self, t: Document) -> None:
        """Past the 5-year bar: no longer set off nor collected (Awb 4:57)."""
        if await self.repo.terugvordering_status(t["_id"], d.OPEN, d.VERJAARD):
            log.info("terugvordering.verjaard", terugvordering_id=t["_id"])
        await self.repo.grootboek_zetten(t["ggz_kvk_nummer"], wissen=(f"open_terugvorderingen.{t['_id']}",))

    async def _boek_opdracht(self, o: Document) -> None:
        kvk = o["ggz_kvk_nummer"]
        bruto = d.Aandeel(o["aandeel"]["rijk_cents"], o["aandeel"]["gemeente_cents"])
        await self.repo.boeken(kvk, f"{o['_id']}:besteld", _ledger_bedragen("besteld_cents", bruto))
        if o["verrekend_cents"]:
            netto = d.Aandeel(o["netto_aandeel"]["rijk_cents"], o["netto_aandeel"]["gemeente_cents"])
            verrekend = d.Aandeel(bruto.rijk_cents - netto.rijk_cents, bruto.gemeente_cents - netto.gemeente_cents)
            await self.repo.boeken(kvk, f"{o['_id']}:verrekend", _ledger_bedragen("verrekend_cents", verrekend))

    # --------------------------------------------------------------------------------- engine commands

    async def opdrachten_aanmaken(self, command: CloudEvent) -> None:
        """``ips.betaling.opdrachten_aanmaken.v1``: the orders of ``moment`` in the payment schedule.

        Order ids derive from beschikking + moment + installment: a redelivered command, or a second
        command for the same beschikking and moment, finds them and creates nothing new.
        """
        p: OpdrachtenAanmaken = command_params(OpdrachtenAanmaken, command)
        zaak_doc = await self.repo.zaken.get(p.aanvraag_id)
        if zaak_doc is not None and command.id in (zaak_doc.get("applied") or []):
            return
        vandaag = d.today_in_amsterdam(command.time)
        schema = [(b.moment, b.percentage) for b in p.betaalschema or []] or list(d.DEFAULT_SCHEMA)
        zaak = {"aanvraag_id": p.aanvraag_id, "beschikking_id": p.beschikking_id, "ggz_kvk_nummer": p.ggz_kvk_nummer,
                "gemeente_code": p.gemeente_code, "regeling": p.regeling}
        failure: Failure | None = None
        opdrachten: list[Document] = []
        try:
            d.financieringsaandeel(p.bedrag_cents, p.financiering)  # refuse unusable financing before any write
            termijnen = [t for t in d.schema_bedragen(p.bedrag_cents, schema) if t[1] == p.moment]
            for index, moment, cents in termijnen:
                opdrachten.append(await self._opdracht(
                    opdracht_id=d.derived_id(p.beschikking_id, moment, index), zaak=zaak, moment=moment,
                    index=index, bedrag_cents=cents, financiering=p.financiering, verrekenen=p.verrekenen,
                    vandaag=vandaag, nu=self.clock()))
        except ValueError as exc:
            failure = Failure("IPS-BETALING-001", str(exc))
        ids = [o["_id"] for o in opdrachten]
        eerdere = await self.repo.opdrachten_van([i for i in (zaak_doc or {}).get("opdrachten", []) if i not in ids])

        def apply(doc: Document) -> dict[str, Any] | Failure:
            if failure is not None:
                return failure
            doc.update({k: v for k, v in zaak.items() if k != "beschikking_id"})
            doc["financiering"] = p.financiering
            doc["bedrag_cents"] = p.bedrag_cents
            doc["opdrachten"] = list(dict.fromkeys([*(doc.get("opdrachten") or []), *ids]))
            betaald = sum(o["netto_cents"] for o in [*eerdere, *opdrachten] if o["status"] == d.BETAALD)
            return {"opdrachten": [_opdracht_samenvatting(o) for o in opdrachten],
                    "totaalCents": sum(o["bedrag_cents"] for o in opdrachten), "betaaldCents": betaald}

        doc = await apply_command(self.repo.zaken, p.aanvraag_id, command, SERVICE, apply,
                                  create=lambda: {"_id": p.aanvraag_id, "opdrachten": []})
        self.wake(doc)
        log.info("betaling.opdrachten", aanvraag_id=p.aanvraag_id, aantal=len(ids))

    async def stopbericht_doorgeven(self, command: CloudEvent) -> None:
        """``ips.traject.stopbericht_doorgeven.v1``: cancel the case's orders not yet in a batch for moments
        after the end date (every moment but the grant). With a 100% advance there is nothing to cancel."""
        p: StopberichtDoorgeven = command_params(StopberichtDoorgeven, command)
        zaak_doc = await self.repo.zaken.get(p.aanvraag_id)
        if zaak_doc is not None and command.id in (zaak_doc.get("applied") or []):
            return
        opdrachten = await self.repo.opdrachten_van(list((zaak_doc or {}).get("opdrachten") or []))
        geannuleerd: list[str] = []
        for o in opdrachten:
            if o["moment"] == "toekenning":
                continue
            if o["status"] == d.GEANNULEERD and o.get("geannuleerd_door") == "stopbericht":
                geannuleerd.append(o["_id"])
                await self._boek_annulering(o)
                continue
            if await self.repo.status_zetten(o["_id"], (d.GEREED, d.REKENING_ONTBREEKT, d.VERREKEND),
                                             d.GEANNULEERD, geannuleerd_door="stopbericht",
                                             einddatum=p.einddatum.isoformat()):
                geannuleerd.append(o["_id"])
                await self._boek_annulering(o)

        def apply(doc: Document) -> dict[str, Any]:
            doc["einddatum"] = p.einddatum.isoformat()
            return {"geannuleerdeOpdrachten": geannuleerd}

        doc = await apply_command(self.repo.zaken, p.aanvraag_id, command, SERVICE, apply,
                                  create=lambda: {"_id": p.aanvraag_id, "opdrachten": []})
        self.wake(doc)

    async def _boek_annulering(self, o: Document) -> None:
        kvk = o["ggz_kvk_nummer"]
        bruto = d.Aandeel(o["aandeel"]["rijk_cents"], o["aandeel"]["gemeente_cents"])
        await self.repo.boeken(kvk, f"{o['_id']}:geannuleerd", _ledger_bedragen("geannuleerd_cents", bruto))
        verrekeningen = o.get("verrekeningen") or {}
        if not verrekeningen:
            return
        for tid, cents in verrekeningen.items():  # the set-off is undone: the recovery is open again
            await self.repo.verrekening_herstellen(tid, o["_id"], int(cents))
        netto = d.Aandeel(o["netto_aandeel"]["rijk_cents"], o["netto_aandeel"]["gemeente_cents"])
        terug = d.Aandeel(netto.rijk_cents - bruto.rijk_cents, netto.gemeente_cents - bruto.gemeente_cents)
        await self.repo.boeken(kvk, f"{o['_id']}:verrekend-hersteld", _ledger_bedragen("verrekend_cents", terug),
                               zetten={f"open_terugvorderingen.{tid}": True for tid in verrekeningen})

    async def verrekenen(self, command: CloudEvent) -> None:
        """``ips.vaststelling.verrekenen.v1``: the vastgesteld amount against what was ordered for the case.

        Below it: the case's orders not yet in a batch are reduced (or cancelled) first, since money not yet
        paid is simply not paid; only what was already paid or is in a batch beyond the vastgesteld amount is
        recovered (with the 5-year bar). Above it: the remainder is paid. Each order's reduction is recorded
        on the order once, so a redelivered command reduces nothing twice and gives the same answer.
        """
        p: Verrekenen = command_params(Verrekenen, command)
        zaak_doc = await self.repo.zaken.get(p.aanvraag_id)
        if zaak_doc is not None and command.id in (zaak_doc.get("applied") or []):
            return
        zaak_doc = zaak_doc or {}
        financiering = zaak_doc.get("financiering") or p.financiering
        nabetaling_id = d.derived_id(p.beschikking_id, "vaststelling", "nabetaling")
        terugvordering_id = d.derived_id(p.aanvraag_id, "terugvordering")
        eerder = zaak_doc.get("verrekening")
        opdrachten = [o for o in await self.repo.opdrachten_van([i for i in zaak_doc.get("opdrachten") or []
                                                                  if i != nabetaling_id])
                      if not (o["status"] == d.GEANNULEERD and o.get("geannuleerd_door") != VASTSTELLING)]
        besteld = sum(_oorspronkelijk_bedrag(o) for o in opdrachten)
        failure: Failure | None = None
        verlaagd = 0
        if eerder is not None and eerder.get("beschikkingId") != p.beschikking_id:
            failure = Failure("IPS-BETALING-003", "deze aanvraag is al verrekend op een andere vaststelling")
        elif besteld != p.vastgesteld_cents and financiering is None:
            failure = Failure("IPS-BETALING-002", "financiering van de zaak onbekend")
        elif besteld > p.vastgesteld_cents:
            try:
                verlaagd = await self._open_opdrachten_verlagen(opdrachten, besteld - p.vastgesteld_cents,
                                                                p.beschikking_id, financiering)
            except ValueError as exc:
                failure = Failure("IPS-BETALING-001", str(exc))
        v = d.verreken_vaststelling(p.vastgesteld_cents, besteld - verlaagd, p.vaststellingsdatum,
                                    p.terugvorderingstermijn_jaren)
        zaak = {"aanvraag_id": p.aanvraag_id, "beschikking_id": p.beschikking_id, "ggz_kvk_nummer": p.ggz_kvk_nummer,
                "gemeente_code": p.gemeente_code, "regeling": p.regeling}
        result: dict[str, Any] | Failure = {"betaaldCents": v.betaald_cents, "saldoCents": v.saldo_cents,
                                            "soort": v.soort, "terugvorderingId": None,
                                            "terugvorderenUiterlijk": None, "opdrachtId": None,
                                            "verlaagdCents": verlaagd}
        nieuwe: list[str] = []
        if failure is not None:
            result = failure
        elif v.soort == "nabetaling":
            assert financiering is not None and isinstance(result, dict)
            o = await self._opdracht(opdracht_id=nabetaling_id, zaak=zaak, moment="vaststelling", index=0,
                                     bedrag_cents=v.saldo_cents, financiering=financiering, verrekenen=p.verrekenen,
                                     vandaag=d.today_in_amsterdam(command.time), nu=self.clock())
            nieuwe.append(o["_id"])
            result["opdrachtId"] = o["_id"]
        elif v.soort == "terugvordering":
            assert financiering is not None and v.terugvorderen_uiterlijk is not None and isinstance(result, dict)
            bedrag = -v.saldo_cents
            aandeel = d.financieringsaandeel(bedrag, financiering)
            t = await self.repo.terugvordering_invoegen({
                "_id": terugvordering_id, "aanvraag_id": p.aanvraag_id, "beschikking_id": p.beschikking_id,
                "ggz_kvk_nummer": p.ggz_kvk_nummer, "gemeente_code": p.gemeente_code, "regeling": p.regeling,
                "bedrag_cents": bedrag, "open_cents": bedrag,
                "aandeel": {"rijk_cents": aandeel.rijk_cents, "gemeente_cents": aandeel.gemeente_cents},
                "vaststellingsdatum": p.vaststellingsdatum.isoformat(),
                "terugvorderen_uiterlijk": v.terugvorderen_uiterlijk.isoformat(),
                "verrekenen": p.verrekenen, "status": d.OPEN, "verrekeningen": {}, "aangemaakt_op": self.clock()})
            zetten = {f"open_terugvorderingen.{t['_id']}": True} if t["verrekenen"] else {}
            await self.repo.boeken(p.ggz_kvk_nummer, f"{t['_id']}:teruggevorderd",
                                   _ledger_bedragen("teruggevorderd_cents", aandeel), zetten=zetten)
            result["terugvorderingId"] = t["_id"]
            result["terugvorderenUiterlijk"] = t["terugvorderen_uiterlijk"]

        def apply(doc: Document) -> dict[str, Any] | Failure:
            if isinstance(result, Failure):
                return result
            doc.update({k: v for k, v in zaak.items() if k != "beschikking_id"})
            doc["opdrachten"] = list(dict.fromkeys([*(doc.get("opdrachten") or []), *nieuwe]))
            doc["verrekening"] = {"beschikkingId": p.beschikking_id, **result}
            return result

        doc = await apply_command(self.repo.zaken, p.aanvraag_id, command, SERVICE, apply,
                                  create=lambda: {"_id": p.aanvraag_id, "opdrachten": []})
        self.wake(doc)
        log.info("vaststelling.verrekend", aanvraag_id=p.aanvraag_id, soort=v.soort, verlaagd_cents=verlaagd)

    async def _open_opdrachten_verlagen(self, opdrachten: list[Document], verschil_cents: int, beschikking_id: str,
                                        financiering: dict[str, Any] | None) -> int:
        """Reduce the case's orders not yet in a batch by up to ``verschil_cents`` in total (the latest
        installment first) and return the total reduced. Repeatable: a reduction already recorded on an order
        is counted as it is; an order found in a batch is recorded as not reduced, so the outcome of each
        order is fixed the first time it is looked at."""
        totaal = 0
        for o in sorted(opdrachten, key=lambda o: (-int(o.get("termijn") or 0), o["_id"])):
            verlaging = o.get("verlaging")
            if verlaging is None:
                if totaal >= verschil_cents:
                    continue
                o = await self._verlagen(o, verschil_cents - totaal, beschikking_id, financiering)
                verlaging = o["verlaging"]
            if verlaging["cents"]:
                await self.repo.boeken(o["ggz_kvk_nummer"], f"{o['_id']}:verlaagd", _ledger_bedragen(
                    "geannuleerd_cents", d.Aandeel(verlaging["rijk_cents"], verlaging["gemeente_cents"])))
            totaal += int(verlaging["cents"])
        return totaal

    async def _verlagen(self, o: Document, max_cents: int, beschikking_id: str,
                        financiering: dict[str, Any] | None) -> Document:
        """Take up to ``max_cents`` off one order if it is still outside a batch (never more than its net
        amount: what was set off against a recovery is settled already). Returns the order as stored."""
        for _ in range(10):  # the order may change status under us (account restored, claimed by a batch)
            if o.get("verlaging") is not None:
                return o
            if o["status"] in (d.GEREED, d.REKENING_ONTBREEKT):
                cents = min(max_cents, int(o["netto_cents"]))
                netto = d.Aandeel(o["netto_aandeel"]["rijk_cents"], o["netto_aandeel"]["gemeente_cents"])
                minder = d.verlaging_aandeel(netto, cents, financiering)
                bedrag, netto_cents = o["bedrag_cents"] - cents, o["netto_cents"] - cents
                status = d.GEANNULEERD if bedrag == 0 else d.VERREKEND if netto_cents == 0 else o["status"]
                verlaging = {"beschikking_id": beschikking_id, "cents": cents, "van_bedrag_cents": o["bedrag_cents"],
                             "van_netto_cents": o["netto_cents"], "rijk_cents": minder.rijk_cents,
                             "gemeente_cents": minder.gemeente_cents}
                velden: dict[str, Any] = {
                    "bedrag_cents": bedrag, "netto_cents": netto_cents, "status": status,
                    "aandeel": {"rijk_cents": o["aandeel"]["rijk_cents"] - minder.rijk_cents,
                                "gemeente_cents": o["aandeel"]["gemeente_cents"] - minder.gemeente_cents},
                    "netto_aandeel": {"rijk_cents": netto.rijk_cents - minder.rijk_cents,
                                      "gemeente_cents": netto.gemeente_cents - minder.gemeente_cents}}
                if status == d.GEANNULEERD:
                    velden["geannuleerd_door"] = VASTSTELLING
                if await self.repo.verlagen(o["_id"], (o["status"],), velden, verlaging):
                    log.info("opdracht.verlaagd", opdracht_id=o["_id"], cents=cents, status=status)
                    return {**o, **velden, "verlaging": verlaging}
            else:
                niet = {"beschikking_id": beschikking_id, "cents": 0, "van_bedrag_cents": o["bedrag_cents"],
                        "van_netto_cents": o["netto_cents"], "rijk_cents": 0, "gemeente_cents": 0}
                if await self.repo.verlaging_vastleggen(o["_id"], niet):
                    return {**o, "verlaging": niet}
            fresh = await self.repo.opdracht(o["_id"])
            assert fresh is not None
            o = fresh
        raise RuntimeError(f"opdracht {o['_id']} bleef veranderen tijdens de verrekening")

    # ------------------------------------------------------------------------------------------ batches

    async def batch_aanmaken(self, sleutel: str, max_opdrachten: int, uitvoerdatum: date | None,
                             nu: datetime) -> Document:
        """Create (or finish) the batch of ``sleutel`` (the Idempotency-Key): claim up to ``max_opdrachten``
        ready orders with revision-checked updates in bulk, then freeze the list, control sum and pain.001 XML.

        Restartable: orders carry the batch id once claimed, so a retry after a crash finds them, claims
        the rest and finishes the same batch. Two batches never take the same order (each claim is checked
        against the revision of the order as read with ``status: gereed``, and every write raises it).
        """
        batch_id = d.derived_id("batch", sleutel)
        verzoek = {"maxOpdrachten": max_opdrachten, "uitvoerdatum": uitvoerdatum.isoformat() if uitvoerdatum else None}
        with contextlib.suppress(DuplicateKeyError):  # a retry with the same key: finish (or return) that batch
            await self.repo.batches.insert_one({
                "_id": batch_id, "status": OPBOUW, "verzoek": verzoek, "aangemaakt_op": nu,
                "uitvoerdatum": (uitvoerdatum or d.today_in_amsterdam(nu)).isoformat(), "opdrachten": [],
                "aantal": 0, "control_sum_cents": 0})
        batch = await self.repo.batch(batch_id)
        assert batch is not None
        if batch["verzoek"] != verzoek:
            raise BatchConflict("deze Idempotency-Key hoort bij een ander verzoek")
        if batch["status"] != OPBOUW:
            return batch
        await self._rekeningen_herstellen()
        geclaimd = await self.repo.opdrachten.find({"batch_id": batch_id}).to_list(None)
        while (nodig := max_opdrachten - len(geclaimd)) > 0:
            kandidaten = await self.repo.opdrachten.find({"status": d.GEREED}).sort(
                [("aangemaakt_op", 1), ("_id", 1)]).limit(nodig).to_list(None)
            if not kandidaten:
                break
            klaar: list[Document] = []
            for o in kandidaten:
                if self.rekeningen.voor(o["ggz_kvk_nummer"]) is None:  # the account was removed or made invalid
                    if await self.repo.status_zetten(o["_id"], (d.GEREED,), d.REKENING_ONTBREEKT):
                        log.warning("opdracht.rekening_ontbreekt", opdracht_id=o["_id"], ggz=o["ggz_kvk_nummer"])
                    continue
                klaar.append(o)
            geclaimd.extend(await self.repo.in_bulk_zetten(klaar, d.GEREED,
                                                           {"status": d.IN_BATCH, "batch_id": batch_id}))
            # another batch took some of these: look for the next ready ones
        geclaimd = await self._zonder_rekening_terugzetten(batch_id, geclaimd)
        if not geclaimd:
            await self.repo.batches.delete_one({"_id": batch_id, "status": OPBOUW})
            raise NietsTeBetalen("geen betaalopdrachten gereed voor betaling")
        geclaimd.sort(key=lambda o: o["_id"])
        overboekingen = []
        for o in geclaimd:
            rekening = self.rekeningen.voor(o["ggz_kvk_nummer"])
            assert rekening is not None  # _zonder_rekening_terugzetten kept only orders with a valid account
            overboekingen.append(Overboeking(o["_id"], o["netto_cents"], rekening,
                                             f"IPS-subsidie aanvraag {o['aanvraag_id']} {o['moment']}"))
        xml = build_pain001(batch_id, batch["aangemaakt_op"], date.fromisoformat(batch["uitvoerdatum"]),
                            self.rekeningen.debiteur, overboekingen)
        validate(xml)
        await self.repo.batches.update_one(
            {"_id": batch_id, "status": OPBOUW},
            {"$set": {"status": AANGEMAAKT, "opdrachten": [o["_id"] for o in geclaimd], "aantal": len(geclaimd),
                      "control_sum_cents": sum(o["netto_cents"] for o in geclaimd), "pain001": xml.decode(),
                      "aangemaakt_klaar_op": self.clock()}})
        final = await self.repo.batch(batch_id)
        assert final is not None
        log.info("batch.aangemaakt", batch_id=batch_id, aantal=final["aantal"])
        return final

    async def _zonder_rekening_terugzetten(self, batch_id: str, geclaimd: list[Document]) -> list[Document]:
        """Orders claimed (maybe before a restart) whose ggz no longer has a valid account in the configuration
        go back out of the batch being built and wait as 'rekening_ontbreekt'; the batch goes on without them."""
        houden: list[Document] = []
        for o in geclaimd:
            if self.rekeningen.voor(o["ggz_kvk_nummer"]) is not None:
                houden.append(o)
            elif await self.repo.uit_batch_halen(o["_id"], batch_id, d.REKENING_ONTBREEKT):
                log.warning("opdracht.uit_batch.rekening_ontbreekt", opdracht_id=o["_id"], batch_id=batch_id,
                            ggz=o["ggz_kvk_nummer"])
        return houden

    async def _rekeningen_herstellen(self) -> None:
        """Orders that waited for a bank account become ready once the configuration holds a valid one."""
        wachtend = await self.repo.opdrachten.find({"status": d.REKENING_ONTBREEKT}).to_list(None)
        for o in wachtend:
            if self.rekeningen.voor(o["ggz_kvk_nummer"]) is not None:
                await self.repo.status_zetten(o["_id"], (d.REKENING_ONTBREEKT,), d.GEREED)

    async def batch_verzonden(self, batch_id: str, nu: datetime) -> Document:
        batch = await self._batch(batch_id)
        if batch["status"] == AANGEMAAKT:
            await self.repo.batches.update_one({"_id": batch_id, "status": AANGEMAAKT},
                                               {"$set": {"status": VERZONDEN, "verzonden_op": nu}})
            batch = await self._batch(batch_id)
        if batch["status"] not in (VERZONDEN, GEBOEKT):
            raise BatchConflict(f"batch heeft status {batch['status']}")
        return batch

    async def batch_geboekt(self, batch_id: str, nu: datetime) -> Document:
        """Book every order of a sent batch: order 'betaald', ledger paid += net amount. Repeatable."""
        batch = await self._batch(batch_id)
        if batch["status"] == GEBOEKT:
            return batch
        if batch["status"] != VERZONDEN:
            raise BatchConflict(f"batch heeft status {batch['status']}; eerst verzonden melden")
        opdrachten = await self.repo.opdrachten_van(batch["opdrachten"])
        te_betalen = [o for o in opdrachten if o["status"] == d.IN_BATCH]
        betaald = {o["_id"] for o in await self.repo.in_bulk_zetten(te_betalen, d.IN_BATCH,
                                                                     {"status": d.BETAALD, "betaald_op": nu})}
        for o in te_betalen:  # kept changing under the bulk updates (never seen): by status, as before
            if o["_id"] not in betaald:
                await self.repo.status_zetten(o["_id"], (d.IN_BATCH,), d.BETAALD, betaald_op=nu)
        per_ggz: dict[str, list[tuple[str, dict[str, dict[str, int]]]]] = {}
        for o in opdrachten:  # every order, also those marked paid before a crash: each key is booked once
            netto = d.Aandeel(o["netto_aandeel"]["rijk_cents"], o["netto_aandeel"]["gemeente_cents"])
            per_ggz.setdefault(o["ggz_kvk_nummer"], []).append(
                (f"{o['_id']}:betaald", _ledger_bedragen("betaald_cents", netto)))
        for kvk, boekingen in per_ggz.items():
            await self.repo.boeken_samen(kvk, boekingen)
        await self.repo.batches.update_one({"_id": batch_id, "status": VERZONDEN},
                                           {"$set": {"status": GEBOEKT, "geboekt_op": nu}})
        return await self._batch(batch_id)

    async def _batch(self, batch_id: str) -> Document:
        batch = await self.repo.batch(batch_id)
        if batch is None:
            raise LookupError(batch_id)
        return batch
