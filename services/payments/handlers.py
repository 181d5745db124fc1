"""Command handlers of payments (engine commands) and the batch operations the HTTP API calls.

Every handler is a sequence of steps that are each idempotent on their own (deterministic ids, inserts that
treat DuplicateKeyError as "already done", ledger bookings keyed by order id), ending with
``apply_command`` on the case document, which stores the reply and the command id in one write. A crash
anywhere means a redelivery that repeats the steps without a second effect and then replies.
"""

from __future__ import annotations

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
from servicekit.commands import Failure, command_params, replying
from servicekit.envelope import CloudEvent
from servicekit.logging import get_logger
from servicekit.store import Document
from servicekit.unit_of_work import Mapper, UnitOfWork

log = get_logger(__name__)
SERVICE = "payments"
Wake = Callable[..., None]

#: Raised for a batch request that does not fit the batch (domain rule; the API answers 409 or 422).
BatchConflict = d.BatchConflict


@dataclass(frozen=True)
class Rekeningen:
    debiteur: Rekening
    ggz: dict[str, Rekening]

    def voor(self, kvk: str) -> Rekening | None:
        rekening = self.ggz.get(kvk)
        return rekening if rekening is not None and rekening.geldig else None


@dataclass(frozen=True)
class Gelezen:
    """A case as a command's handler read it: the domain object and its document (None: none stored yet), which
    the command's write starts from (``_vastleggen``)."""

    zaak: d.Betaalzaak
    doc: Document | None


class NietsTeBetalen(Exception):
    """No order is ready for payment."""


#: The case aggregate through servicekit's unit of work (its document holds the replies and applied command ids).
ZAAK = Mapper(d.Betaalzaak.from_doc, d.Betaalzaak.as_doc)
#: Orders a stop notice still cancels: not (yet) in a batch.
NIET_IN_BATCH = (d.GEREED, d.REKENING_ONTBREEKT, d.VERREKEND)


class PaymentsHandlers:
    def __init__(self, repo: PaymentsRepository, rekeningen: Rekeningen, wake: Wake,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.repo = repo
        #: Business time (the rehearsal clock in test): order and batch dates; commands carry the engine's time.
        self.clock = clock
        self.rekeningen = rekeningen
        self._wake = wake
        self.zaken = UnitOfWork(repo.zaken, ZAAK, name="zaken")

    def wake(self, doc: Document) -> None:
        collection: AsyncCollection[Document] = self.repo.zaken.collection
        self._wake(doc["_id"], collection, doc)

    async def _zaak(self, aanvraag_id: str, command: CloudEvent) -> Gelezen | None:
        """The case as it is now (with its document as read, None: none yet), or None when it has applied
        ``command`` already (a redelivery)."""
        doc = await self.repo.zaken.get(aanvraag_id)
        if self.zaken.applied(doc, command.id):
            return None
        return Gelezen(d.Betaalzaak.from_doc(doc) if doc is not None else d.Betaalzaak(aanvraag_id), doc)

    async def _vastleggen(self, aanvraag_id: str, command: CloudEvent,
                          change: Callable[[d.Betaalzaak], dict[str, Any] | Failure], gelezen: Gelezen) -> None:
        """The case's change with the command id and the reply, in one write (servicekit.unit_of_work), on the
        document ``_zaak`` read (no second read; a conflict reads it again)."""
        done = await self.zaken.run(aanvraag_id, change, message_id=command.id, reply=replying(command, SERVICE),
                                    create=lambda: d.Betaalzaak(aanvraag_id), current=gelezen.doc)
        self.wake(done.doc)

    async def _opdrachten(self, ids: list[str]) -> list[d.Betaalopdracht]:
        return [d.Betaalopdracht.from_doc(o) for o in await self.repo.opdrachten_van(ids)]

    # ------------------------------------------------------------------------------------ orders (shared)

    async def _opdracht(self, *, opdracht_id: str, zaak: d.Zaakgegevens, moment: str, index: int, bedrag_cents: int,
                        financiering: dict[str, Any], verrekenen: bool, vandaag: date,
                        nu: datetime) -> d.Betaalopdracht:
        """Create the order once (set off against open recoveries of the ggz when allowed) and book it."""
        doc = await self.repo.opdracht(opdracht_id)
        if doc is None:
            kvk = zaak.ggz_kvk_nummer
            delen = await self._verrekenen(kvk, opdracht_id, bedrag_cents, vandaag) if verrekenen else []
            nieuw = d.Betaalopdracht.nieuw(opdracht_id, zaak, moment, index, bedrag_cents, delen, financiering,
                                           rekening_geldig=self.rekeningen.voor(kvk) is not None)
            doc = await self.repo.opdracht_invoegen({**nieuw.nieuw_doc(), "aangemaakt_op": nu, "revision": 0})
            if nieuw.status == d.REKENING_ONTBREEKT:
                log.warning("opdracht.rekening_ontbreekt", opdracht_id=opdracht_id, ggz=kvk)
        opdracht = d.Betaalopdracht.from_doc(doc)
        for sleutel, bedragen in opdracht.boekingen_besteld():
            await self.repo.boeken(opdracht.ggz, sleutel, bedragen)
        return opdracht

    async def _verrekenen(self, kvk: str, opdracht_id: str, bedrag_cents: int, vandaag: date) -> list[tuple[str, int]]:
        """Set the payment off against the ggz's open recoveries (oldest bar first); repeatable: a set-off
        this order already made (before a crash) is found and counted, never made twice."""
        ledger = await self.repo.grootboek_van(kvk) or {}
        open_ids = sorted((ledger.get("open_terugvorderingen") or {}).keys())
        delen: list[tuple[str, int]] = []
        kandidaten: list[d.OpenTerugvordering] = []
        for tid in open_ids:
            doc = await self.repo.terugvordering(tid)
            if doc is None:
                continue
            if gedaan := (doc.get("verrekeningen") or {}).get(opdracht_id):
                delen.append((tid, int(gedaan)))
                continue
            t = d.Terugvordering.from_doc(doc)
            if t.verjaard_op(vandaag):
                await self._verjaren(t)
            elif (open_ := t.als_open()) is not None:
                kandidaten.append(open_)
        plan, _ = d.verrekening_verdelen(bedrag_cents - sum(c for _, c in delen),
                                         [(t.id, t.open_cents) for t in d.verrekenbaar(kandidaten, vandaag)])
        for tid, cents in plan:
            if await self.repo.verrekenen(tid, opdracht_id, cents):
                delen.append((tid, cents))
                doc = await self.repo.terugvordering(tid)
                if doc is not None and doc["open_cents"] == 0 and await self.repo.terugvordering_status(
                        tid, d.OPEN, d.VOLDAAN):
                    await self.repo.grootboek_zetten(kvk, wissen=(f"open_terugvorderingen.{tid}",))
        return delen

    async def _verjaren(self, t: d.Terugvordering) -> None:
        """Past the 5-year bar: no longer set off nor collected (Awb 4:57)."""
        if await self.repo.terugvordering_status(t.id, d.OPEN, d.VERJAARD):
            log.info("terugvordering.verjaard", terugvordering_id=t.id)
        await self.repo.grootboek_zetten(t.zaak.ggz_kvk_nummer, wissen=(f"open_terugvorderingen.{t.id}",))

    # --------------------------------------------------------------------------------- engine commands

    async def opdrachten_aanmaken(self, command: CloudEvent) -> None:
        """``ips.betaling.opdrachten_aanmaken.v1``: the orders of ``moment`` in the payment schedule.

        Order ids derive from beschikking + moment + installment: a redelivered command, or a second
        command for the same beschikking and moment, finds them and creates nothing new.
        """
        p: OpdrachtenAanmaken = command_params(OpdrachtenAanmaken, command)
        if (gelezen := await self._zaak(p.aanvraag_id, command)) is None:
            return
        zaak_nu = gelezen.zaak
        vandaag = d.today_in_amsterdam(command.time)
        schema = [(b.moment, b.percentage) for b in p.betaalschema or []] or list(d.DEFAULT_SCHEMA)
        zaak = d.Zaakgegevens(p.aanvraag_id, p.beschikking_id, p.ggz_kvk_nummer, p.gemeente_code, p.regeling)
        failure: Failure | None = None
        opdrachten: list[d.Betaalopdracht] = []
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
        ids = [o.id for o in opdrachten]
        eerdere = await self._opdrachten([i for i in zaak_nu.opdrachten if i not in ids])
        await self._vastleggen(p.aanvraag_id, command, lambda z: failure or z.opdrachten_vastleggen(
            zaak, p.financiering, p.bedrag_cents, opdrachten, eerdere), gelezen)
        log.info("betaling.opdrachten", aanvraag_id=p.aanvraag_id, aantal=len(ids))

    async def stopbericht_doorgeven(self, command: CloudEvent) -> None:
        """``ips.traject.stopbericht_doorgeven.v1``: cancel the case's orders not yet in a batch for moments
        after the end date (every moment but the grant). With a 100% advance there is nothing to cancel."""
        p: StopberichtDoorgeven = command_params(StopberichtDoorgeven, command)
        if (gelezen := await self._zaak(p.aanvraag_id, command)) is None:
            return
        zaak_nu = gelezen.zaak
        geannuleerd: list[str] = []
        for o in await self._opdrachten(zaak_nu.opdrachten):
            if o.moment == "toekenning":
                continue
            if (o.status == d.GEANNULEERD and o.geannuleerd_door == d.STOPBERICHT) or await self.repo.status_zetten(
                    o.id, NIET_IN_BATCH, d.GEANNULEERD, geannuleerd_door=d.STOPBERICHT,
                    einddatum=p.einddatum.isoformat()):
                geannuleerd.append(o.id)
                await self._boek_annulering(o)
        await self._vastleggen(p.aanvraag_id, command, lambda z: z.stopbericht(p.einddatum, geannuleerd), gelezen)

    async def _boek_annulering(self, o: d.Betaalopdracht) -> None:
        await self.repo.boeken(o.ggz, *o.boeking_geannuleerd())
        if (herstel := o.boeking_verrekening_hersteld()) is None:
            return
        for tid, cents in o.verrekeningen.items():  # the set-off is undone: the recovery is open again
            await self.repo.verrekening_herstellen(tid, o.id, cents)
        await self.repo.boeken(o.ggz, *herstel,
                               zetten={f"open_terugvorderingen.{tid}": True for tid in o.verrekeningen})

    async def verrekenen(self, command: CloudEvent) -> None:
        """``ips.vaststelling.verrekenen.v1``: the vastgesteld amount against what was ordered for the case.

        Below it: the case's orders not yet in a batch are reduced (or cancelled) first, since money not yet
        paid is simply not paid; only what was already paid or is in a batch beyond the vastgesteld amount is
        recovered (with the 5-year bar). Above it: the remainder is paid. Each order's reduction is recorded
        on the order once, so a redelivered command reduces nothing twice and gives the same answer.
        """
        p: Verrekenen = command_params(Verrekenen, command)
        if (gelezen := await self._zaak(p.aanvraag_id, command)) is None:
            return
        zaak_nu = gelezen.zaak
        financiering = zaak_nu.financiering or p.financiering
        nabetaling_id = d.derived_id(p.beschikking_id, "vaststelling", "nabetaling")
        opdrachten = [o for o in await self._opdrachten([i for i in zaak_nu.opdrachten if i != nabetaling_id])
                      if o.telt_voor_vaststelling]
        besteld = sum(o.oorspronkelijk_bedrag for o in opdrachten)
        failure: Failure | None = None
        verlaagd = 0
        try:
            zaak_nu.vaststelling_toetsen(p.beschikking_id, p.vastgesteld_cents, besteld, financiering)
            if besteld > p.vastgesteld_cents:
                verlaagd = await self._open_opdrachten_verlagen(opdrachten, besteld - p.vastgesteld_cents,
                                                                p.beschikking_id, financiering)
        except d.BetalingGeweigerd as exc:
            failure = Failure(exc.code, exc.message)
        except ValueError as exc:
            failure = Failure("IPS-BETALING-001", str(exc))
        v = d.verreken_vaststelling(p.vastgesteld_cents, besteld - verlaagd, p.vaststellingsdatum,
                                    p.terugvorderingstermijn_jaren)
        zaak = d.Zaakgegevens(p.aanvraag_id, p.beschikking_id, p.ggz_kvk_nummer, p.gemeente_code, p.regeling)
        result: dict[str, Any] = {"betaaldCents": v.betaald_cents, "saldoCents": v.saldo_cents, "soort": v.soort,
                                  "terugvorderingId": None, "terugvorderenUiterlijk": None, "opdrachtId": None,
                                  "verlaagdCents": verlaagd}
        nieuwe: list[str] = []
        if failure is None and v.soort == "nabetaling":
            assert financiering is not None
            o = await self._opdracht(opdracht_id=nabetaling_id, zaak=zaak, moment="vaststelling", index=0,
                                     bedrag_cents=v.saldo_cents, financiering=financiering, verrekenen=p.verrekenen,
                                     vandaag=d.today_in_amsterdam(command.time), nu=self.clock())
            nieuwe.append(o.id)
            result["opdrachtId"] = o.id
        elif failure is None and v.soort == "terugvordering":
            nieuw = d.Terugvordering.nieuw(d.derived_id(p.aanvraag_id, "terugvordering"), zaak, v,
                                           p.vaststellingsdatum, financiering, p.verrekenen)
            t = d.Terugvordering.from_doc(await self.repo.terugvordering_invoegen(
                {**nieuw.nieuw_doc(), "aangemaakt_op": self.clock()}))
            zetten = {f"open_terugvorderingen.{t.id}": True} if t.verrekenen else {}
            await self.repo.boeken(p.ggz_kvk_nummer, *t.boeking(), zetten=zetten)
            result["terugvorderingId"] = t.id
            result["terugvorderenUiterlijk"] = t.terugvorderen_uiterlijk.isoformat()
        await self._vastleggen(p.aanvraag_id, command, lambda z: failure or z.verrekening_vastleggen(
            zaak, p.beschikking_id, nieuwe, result), gelezen)
        log.info("vaststelling.verrekend", aanvraag_id=p.aanvraag_id, soort=v.soort, verlaagd_cents=verlaagd)

    async def _open_opdrachten_verlagen(self, opdrachten: list[d.Betaalopdracht], verschil_cents: int,
                                        beschikking_id: str, financiering: dict[str, Any] | None) -> int:
        """Reduce the case's orders not yet in a batch by up to ``verschil_cents`` in total (the latest
        installment first) and return the total reduced. Repeatable: a reduction already recorded on an order
        is counted as it is; an order found in a batch is recorded as not reduced, so the outcome of each
        order is fixed the first time it is looked at."""
        totaal = 0
        for o in sorted(opdrachten, key=lambda o: (-o.termijn, o.id)):
            if o.verlaging is None:
                if totaal >= verschil_cents:
                    continue
                o = await self._verlagen(o, verschil_cents - totaal, beschikking_id, financiering)
            assert o.verlaging is not None
            if (boeking := o.boeking_verlaagd()) is not None:
                await self.repo.boeken(o.ggz, *boeking)
            totaal += o.verlaging.cents
        return totaal

    async def _verlagen(self, o: d.Betaalopdracht, max_cents: int, beschikking_id: str,
                        financiering: dict[str, Any] | None) -> d.Betaalopdracht:
        """Take up to ``max_cents`` off one order if it is still outside a batch. Returns the order as stored."""
        for _ in range(10):  # the order may change status under us (account restored, claimed by a batch)
            if o.verlaging is not None:
                return o
            if o.verlaagbaar:
                verlaagd = o.verlagen(max_cents, beschikking_id, financiering)
                assert verlaagd.verlaging is not None
                if await self.repo.verlagen(o.id, (o.status,), verlaagd.verlaging_velden(),
                                            verlaagd.verlaging.as_doc()):
                    log.info("opdracht.verlaagd", opdracht_id=o.id, cents=verlaagd.verlaging.cents,
                             status=verlaagd.status)
                    return verlaagd
            else:
                niet = o.niet_verlaagd(beschikking_id)
                assert niet.verlaging is not None
                if await self.repo.verlaging_vastleggen(o.id, niet.verlaging.as_doc()):
                    return niet
            fresh = await self.repo.opdracht(o.id)
            assert fresh is not None
            o = d.Betaalopdracht.from_doc(fresh)
        raise RuntimeError(f"opdracht {o.id} bleef veranderen tijdens de verrekening")

    # ------------------------------------------------------------------------------------------ batches

    async def batch_aanmaken(self, sleutel: str, max_opdrachten: int, uitvoerdatum: date | None,
                             nu: datetime) -> Document:
        """Create (or finish) the batch of ``sleutel`` (the Idempotency-Key): claim up to ``max_opdrachten``
        ready orders with revision-checked updates in bulk, then freeze the list, control sum and pain.001 XML.

        Restartable: orders carry the batch id once claimed, so a retry after a crash finds them, claims
        the rest and finishes the same batch. Two batches never take the same order (each claim is checked
        against the revision of the order as read with ``status: gereed``, and every write raises it).
        """
        nieuw = d.Betaalbatch.nieuw(d.derived_id("batch", sleutel), max_opdrachten, uitvoerdatum, nu,
                                    d.today_in_amsterdam(nu))
        await self.repo.batch_invoegen(nieuw.nieuw_doc())  # a retry with the same key: finish (or return) that one
        batch = d.Betaalbatch.from_doc(await self._batch(nieuw.id))
        batch.zelfde_verzoek(nieuw.verzoek)
        if not batch.in_opbouw:
            return await self._batch(batch.id)
        await self._rekeningen_herstellen()
        geclaimd = await self.repo.in_batch(batch.id)
        while (nodig := max_opdrachten - len(geclaimd)) > 0:
            kandidaten = await self.repo.met_status(d.GEREED, nodig)
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
                                                           {"status": d.IN_BATCH, "batch_id": batch.id}))
            # another batch took some of these: look for the next ready ones
        opdrachten = [d.Betaalopdracht.from_doc(o) for o in await self._zonder_rekening_terugzetten(batch.id, geclaimd)]
        if not opdrachten:
            await self.repo.batch_vervallen(batch.id)
            raise NietsTeBetalen("geen betaalopdrachten gereed voor betaling")
        velden = batch.afronden(opdrachten)
        overboekingen = []
        for opdracht in sorted(opdrachten, key=lambda o: o.id):
            rekening = self.rekeningen.voor(opdracht.ggz)
            assert rekening is not None  # _zonder_rekening_terugzetten kept only orders with a valid account
            overboekingen.append(Overboeking(opdracht.id, opdracht.netto_cents, rekening, opdracht.omschrijving))
        xml = build_pain001(batch.id, batch.aangemaakt_op, batch.uitvoerdatum, self.rekeningen.debiteur,
                            overboekingen)
        validate(xml)
        await self.repo.batch_zetten(batch.id, d.OPBOUW, {**velden, "pain001": xml.decode(),
                                                          "aangemaakt_klaar_op": self.clock()})
        final = await self._batch(batch.id)
        log.info("batch.aangemaakt", batch_id=batch.id, aantal=final["aantal"])
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
        for o in await self.repo.met_status(d.REKENING_ONTBREEKT):
            if self.rekeningen.voor(o["ggz_kvk_nummer"]) is not None:
                await self.repo.status_zetten(o["_id"], (d.REKENING_ONTBREEKT,), d.GEREED)

    async def batch_verzonden(self, batch_id: str, nu: datetime) -> Document:
        batch = d.Betaalbatch.from_doc(await self._batch(batch_id))
        if (velden := batch.verzenden(nu)) is not None:
            await self.repo.batch_zetten(batch_id, batch.status, velden)
        return await self._batch(batch_id)

    async def batch_geboekt(self, batch_id: str, nu: datetime) -> Document:
        """Book every order of a sent batch: order 'betaald', ledger paid += net amount. Repeatable."""
        batch = d.Betaalbatch.from_doc(await self._batch(batch_id))
        if not batch.te_boeken():
            return await self._batch(batch_id)
        opdrachten = await self.repo.opdrachten_van(list(batch.opdrachten))
        te_betalen = [o for o in opdrachten if o["status"] == d.IN_BATCH]
        betaald = {o["_id"] for o in await self.repo.in_bulk_zetten(te_betalen, d.IN_BATCH,
                                                                     {"status": d.BETAALD, "betaald_op": nu})}
        for o in te_betalen:  # kept changing under the bulk updates (never seen): by status, as before
            if o["_id"] not in betaald:
                await self.repo.status_zetten(o["_id"], (d.IN_BATCH,), d.BETAALD, betaald_op=nu)
        per_ggz: dict[str, list[tuple[str, d.Bedragen]]] = {}
        for opdracht in map(d.Betaalopdracht.from_doc, opdrachten):  # also those paid before a crash: once per key
            per_ggz.setdefault(opdracht.ggz, []).append(opdracht.boeking_betaald())
        for kvk, boekingen in per_ggz.items():
            await self.repo.boeken_samen(kvk, boekingen)
        await self.repo.batch_zetten(batch_id, d.VERZONDEN, {"status": d.GEBOEKT, "geboekt_op": nu})
        return await self._batch(batch_id)

    async def _batch(self, batch_id: str) -> Document:
        batch = await self.repo.batch(batch_id)
        if batch is None:
            raise LookupError(batch_id)
        return batch
