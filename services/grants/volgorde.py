"""Reservation requests in the order of receipt of complete applications (Awb 4:25).

``ips.budget.reserveren.v1`` stores a request; intake's ``ips.aanvraag.volgnummer_toegekend.v1`` and
``ips.aanvraag.ingetrokken.v1`` keep the places of the numbers (``volgorde``, repository.py); the allocator
(allocator.py) walks the numbers and calls ``decide`` for each request in turn, which reserves against the
gemeente's cap and the ledger of the budget period and answers the command. ``reservering`` and ``vrijgeven``
serve the later budget commands (handlers.py).

The request's document changes through servicekit's unit of work (docs/adr/0009): stored or replaced by a new
command (the command id is the message id), decided revision-checked against the version the allocator read,
released. The cap and the ledger, which hold every aanvraag's entry, keep their guarded ``$inc`` steps
(repository.py); each is keyed by the aanvraag id and comes before the request's write, which answers the command.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from grants.domain import (
    Criteria,
    Grond,
    Regeling,
    grond_gemeentelijk_maximum,
    grond_subsidieplafond,
    weigeringsgronden,
)
from grants.messages import Reserveren, VolgnummerIngetrokken, VolgnummerToegekend
from grants.repository import (
    AANGEKONDIGD,
    AANGEVRAAGD,
    AFWEZIG,
    GESLOTEN,
    VRIJGEGEVEN,
    GrantsRepository,
    cap_id,
    ledger_id,
)
from servicekit.broker import EVENTS
from servicekit.commands import Failure, Outcome, command_params, reply_to, replying
from servicekit.envelope import CloudEvent
from servicekit.kalender import amsterdam_dag
from servicekit.logging import get_logger
from servicekit.relay import Wake, no_relay
from servicekit.store import ConcurrencyError, Document
from servicekit.unit_of_work import DOCUMENT, Events, Unchanged, UnitOfWork

log = get_logger(__name__)
SERVICE = "grants"
WACHT, BESLOTEN = "wacht", "besloten"


class Reserveringen:
    """The reservation requests: stored by the consumer, decided in volgnummer order by the allocator."""

    def __init__(self, repo: GrantsRepository, regelingen: dict[str, Regeling], gemeente_naam: Callable[[str], str],
                 wake: Wake = no_relay,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.repo = repo
        self.regelingen = regelingen
        self.gemeente_naam = gemeente_naam
        self.wake = wake  # the outbox relay: a request's document holds a reply
        #: Business time (the rehearsal clock in test).
        self.clock = clock
        #: Wakes the allocator (bootstrap sets it): a request was stored or a number given back.
        self.volgorde_wakker: Callable[[], None] = lambda: None
        self._ensured: set[str] = set()  # ledgers and caps this process made sure exist (one upsert each)
        self._bekend = 0  # the highest number this process raised the head's ``bekend`` to (it never drops)
        self._verzoeken = UnitOfWork(repo.verzoeken, DOCUMENT)
        # the release writes its own field only: the request's outbox (its reply went out long ago) stays as it is
        self._vrijgave = UnitOfWork(repo.verzoeken, DOCUMENT, fields=("vrijgegeven_op",))

    async def reserveren(self, command: CloudEvent) -> None:
        """ips.budget.reserveren.v1: store the request; the allocator decides it in volgnummer order.

        Grounds that do not depend on the budget (window, type, target group, certificate) and a wrong
        amount are decided here at once. A redelivery (same command id) changes nothing; a new command for
        the same aanvraag replaces the request and is decided again (the ledger keeps at most one
        reservation per aanvraag). A request without a volgnummer (an application completed before numbering
        existed) and one whose number the order has passed are decided at once.
        """
        p = command_params(Reserveren, command)
        regeling = self.regelingen.get(p.regeling)
        now = datetime.now(UTC)
        peildatum = amsterdam_dag(p.volledig_ontvangen_op) if p.volledig_ontvangen_op else p.aanvraagdatum
        request: Document = {
            "_id": p.aanvraag_id, "command_id": command.id, "command": command.to_json().decode(),
            "regeling": p.regeling, "gemeente_code": p.gemeente_code, "traject_type": p.traject_type,
            "bedrag_cents": p.bedrag_cents, "volledig_ontvangen_op": p.volledig_ontvangen_op or
            datetime.combine(p.aanvraagdatum, datetime.min.time(), tzinfo=UTC),
            "ontvangen_door_grants": now, "status": WACHT, "volgnummer": p.volgnummer,
        }
        outcome: Outcome | None = None
        if regeling is None:
            outcome = Failure("IPS-REGELING-001", f"Onbekende regeling {p.regeling}.")
        else:
            request["budgetperiode"] = regeling.budgetperiode(peildatum).id
            tarief = regeling.tarief(p.traject_type)
            criteria = Criteria(p.criteria.doelgroep, p.criteria.wil_betaald_werk, p.criteria.geen_ander_traject,
                                p.criteria.certificaat_geldig_tot)
            gronden = weigeringsgronden(regeling, p.traject_type, p.aanvraagdatum, p.gewenste_startdatum, criteria)
            if tarief is not None and p.bedrag_cents != tarief:
                outcome = Failure("IPS-TARIEF-001", f"Het bedrag {p.bedrag_cents} is niet het tarief {tarief} "
                                                    f"van de regeling {regeling.id} voor {p.traject_type}.")
            elif gronden:
                outcome = self._refusal(request, gronden)
        events = []
        if outcome is not None:
            request.update(status=BESLOTEN, uitkomst=outcome if isinstance(outcome, dict) else
                           {"code": outcome.code, "message": outcome.message}, besloten_op=self.clock())
            events = [(reply_to(command, SERVICE, outcome), EVENTS)]
        eerder, geschreven = await self._store_request(request, events, command.id)
        self.wake(p.aanvraag_id, self.repo.verzoeken.collection, geschreven)
        if p.volgnummer is None:
            if outcome is None:
                await self.decide(p.aanvraag_id)
            return
        plaats = await self.repo.plaats(p.volgnummer)
        status = plaats["status"] if plaats is not None else AFWEZIG
        if plaats is not None and plaats.get("aanvraag_id") not in (None, p.aanvraag_id):  # another's number
            log.warning("reservering.volgnummer_van_een_ander", aanvraag_id=p.aanvraag_id, volgnummer=p.volgnummer)
            status = GESLOTEN
        if status in (AFWEZIG, VRIJGEGEVEN):
            # asked for before its announcement came, or after it was given back: the place says so, so a
            # request waits for it (an announced place needs no write: the allocator looks its request up)
            status = await self.repo.plaats_zetten(p.volgnummer, (AFWEZIG, VRIJGEGEVEN), AANGEVRAAGD,
                                                   {"aanvraag_id": p.aanvraag_id}, plaats)
            await self._ken(p.volgnummer)
        # Its turn has passed (closed: skipped or passed), or came already (a new command replaced a request
        # that was decided in turn): at once. The allocator reads the request after it closes a place, we
        # read the place after we stored the request: one of the two sees the other.
        if outcome is None and (status == GESLOTEN or eerder == BESLOTEN):
            log.info("reservering.na_de_beurt", aanvraag_id=p.aanvraag_id, volgnummer=p.volgnummer)
            await self.decide(p.aanvraag_id)
        self.volgorde_wakker()

    async def volgnummer_toegekend(self, event: CloudEvent) -> None:
        """ips.aanvraag.volgnummer_toegekend.v1 (intake): the number's place exists from now on, so the
        requests after it wait for it. Idempotent: a place that exists already is left as it is."""
        p = VolgnummerToegekend.model_validate(event.data)
        await self.repo.plaats_zetten(p.volgnummer, (AFWEZIG,), AANGEKONDIGD,
                                      {"aanvraag_id": p.aanvraag_id, "op": datetime.now(UTC)})
        await self._ken(p.volgnummer)

    async def ingetrokken(self, event: CloudEvent) -> None:
        """ips.aanvraag.ingetrokken.v1 (intake): a numbered application withdrawn before its request came
        gives its place back, so the requests after it need not wait for it. Its request, if the case still
        sends one, is decided in turn or, once the order passed it, at once."""
        p = VolgnummerIngetrokken.model_validate(event.data)
        if p.volgnummer is None:
            return
        if await self.repo.plaats_zetten(p.volgnummer, (AFWEZIG, AANGEKONDIGD), VRIJGEGEVEN,
                                         {"aanvraag_id": p.aanvraag_id}) == VRIJGEGEVEN:
            await self._ken(p.volgnummer)
        self.volgorde_wakker()

    async def _ken(self, nummer: int) -> None:
        """Make the head know ``nummer`` (one write, skipped when this process raised it that far already)."""
        if nummer > self._bekend:
            await self.repo.ken_nummer(nummer)
            self._bekend = nummer

    async def _store_request(self, request: Document, events: Events,
                             command_id: str) -> tuple[str | None, Document]:
        """Store (or replace) the request; returns the status of the request it replaced, if any, and the document
        as stored (or found). The first attempt inserts without a read (a request is new far more often than
        replaced)."""
        def store(stored: Document) -> str | None:
            if stored.get("command_id") == command_id:
                raise Unchanged  # a redelivery: already stored (and decided or waiting)
            eerder = stored.get("status")
            # the new request replaces the old one as a whole (no decision of the old one may stay), outbox kept
            kept = {veld: stored[veld] for veld in ("revision", "outbox") if veld in stored}
            stored.clear()
            stored.update(request, **kept)
            return None if eerder is None else str(eerder)

        done = await self._verzoeken.run(request["_id"], store, create=dict, current=None, reply=lambda _: events)
        return done.result, done.doc

    @staticmethod
    def _refusal(request: Document, gronden: list[Grond]) -> dict[str, Any]:
        return {"gereserveerd": False, "weigeringsgronden": [g.as_dict() for g in gronden],
                "bedragCents": request["bedrag_cents"], "financiering": None,
                "budgetperiode": request.get("budgetperiode"), "regeling": request["regeling"]}

    async def decide(self, request_id: str, request: Document | None = None) -> bool:
        """Decide one waiting request (the allocator calls this in order of receipt; ``request`` as it just read
        it). Each step is keyed by the aanvraag id, so repeating it after a crash has no second effect. Returns
        whether it decided."""
        if request is None:
            request = await self.repo.verzoeken.get(request_id)
        if request is None or request.get("status") != WACHT:
            return False
        regeling = self.regelingen[request["regeling"]]
        aanvraag_id, gemeente, bedrag = request["_id"], request["gemeente_code"], request["bedrag_cents"]
        at = self.clock()
        gronden: list[Grond] = []
        cid = cap_id(regeling.id, gemeente)
        if regeling.cap_per_gemeente is not None:
            if cid not in self._ensured:
                await self.repo.ensure_cap(regeling, gemeente)
                self._ensured.add(cid)
            if not await self.repo.reserve_cap(cid, aanvraag_id, at):
                gronden.append(grond_gemeentelijk_maximum(regeling, self.gemeente_naam(gemeente)))
        if not gronden:
            periode = next(b for b in regeling.budgetperioden if b.id == request["budgetperiode"])
            lid = ledger_id(regeling.id, periode.id)
            if lid not in self._ensured:
                await self.repo.ensure_ledger(regeling, periode.id)
                self._ensured.add(lid)
            if not await self.repo.reserve_budget(lid, aanvraag_id, bedrag, at):
                gronden.append(grond_subsidieplafond(regeling, periode))
                if regeling.cap_per_gemeente is not None:
                    await self.repo.release_cap(cid, aanvraag_id)
        if gronden:
            outcome = self._refusal(request, gronden)
        else:
            outcome = {"gereserveerd": True, "weigeringsgronden": [], "bedragCents": bedrag,
                       "financiering": regeling.financiering(bedrag), "budgetperiode": request["budgetperiode"],
                       "regeling": regeling.id}
        command = CloudEvent.from_json(request["command"])

        def besluit(verzoek: Document) -> Outcome:
            verzoek.update(status=BESLOTEN, uitkomst=outcome, besloten_op=at)
            return outcome

        try:  # against the version we decided on: any change since (RevisionMismatch) is not ours to overwrite
            done = await self._verzoeken.run(aanvraag_id, besluit, current=request,
                                             expected_revision=request["revision"], reply=replying(command, SERVICE))
        except ConcurrencyError:
            # decided by someone else meanwhile (two allocators, or the consumer), or replaced by a newer command
            if outcome["gereserveerd"]:
                await self._undo_if_refused(request, regeling)
            return False
        self.wake(aanvraag_id, self.repo.verzoeken.collection, done.doc)
        log.info("reservering.besloten", aanvraag_id=aanvraag_id, gereserveerd=outcome["gereserveerd"])
        return True

    async def _undo_if_refused(self, request: Document, regeling: Regeling) -> None:
        """We reserved, but the decision written first (the same command, decided at the same moment by
        someone else) refused: money was given back between their try and ours. Nobody was told about our
        reservation, so it goes back too."""
        stored = await self.repo.verzoeken.get(request["_id"])
        if (stored is None or stored.get("status") != BESLOTEN or stored.get("command_id") != request["command_id"]
                or (stored.get("uitkomst") or {}).get("gereserveerd")):
            return
        await self.repo.release_budget(ledger_id(regeling.id, request["budgetperiode"]), request["_id"],
                                       request["bedrag_cents"])
        if regeling.cap_per_gemeente is not None:
            await self.repo.release_cap(cap_id(regeling.id, request["gemeente_code"]), request["_id"])
        log.warning("reservering.dubbel_besloten", aanvraag_id=request["_id"])

    async def reservering(self, aanvraag_id: str) -> tuple[Document, str] | None:
        """The aanvraag's granted reservation request and the id of its ledger, or None when it holds none."""
        request = await self.repo.verzoeken.get(aanvraag_id)
        if request is None or request.get("status") != BESLOTEN or not (request.get("uitkomst") or {}).get(
                "gereserveerd"):
            return None
        return request, ledger_id(request["regeling"], request["budgetperiode"])

    async def vrijgeven(self, aanvraag_id: str, at: datetime) -> bool:
        """Give the reservation (and the gemeente's cap place) back; False when there is none. Idempotent."""
        found = await self.reservering(aanvraag_id)
        if found is None:
            return False
        request, lid = found
        await self.repo.release_budget(lid, aanvraag_id, request["bedrag_cents"])
        regeling = self.regelingen.get(request["regeling"])
        if regeling is not None and regeling.cap_per_gemeente is not None:
            await self.repo.release_cap(cap_id(regeling.id, request["gemeente_code"]), aanvraag_id)
        await self._vrijgave.run(aanvraag_id, lambda verzoek: verzoek.update(vrijgegeven_op=at), current=request)
        return True
