"""MongoDB documents of grants and the guarded single-document updates that keep budget and caps exact.

Collections (all looked up by ``_id``; FerretDB v1 scans for any other filter):

* ``zaken``: one per aanvraag (regulation, competent gemeente, toetsing, beschikkingen); command replies.
* ``reserveringsverzoeken``: one per aanvraag: the reservation request in order of receipt and its reply.
* ``budgetten``: one ledger per regulation and budget period: ``plafond_cents``, ``beschikbaar_cents``,
  ``gereserveerd_cents``, ``vastgelegd_cents`` and ``reserveringen.<aanvraagId>``; after the grant also
  ``betaald_cents``, ``teruggevorderd_cents``, ``vastgesteld_cents`` and ``financieel.<aanvraagId>`` (the
  case's totals, so the ledger totals are always the sum of its cases).
* ``caps``: one per regulation and gemeente where the regulation caps the number of trajectories.
* ``beschikkingen``: the letters, ``_id`` derived from the command id.
* ``leases``: who runs the allocator.
* ``volgorde``: the order of receipt: one small document per volgnummer and the head ``kop`` (allocator.py).

No transactions: every change is one guarded update keyed by the aanvraag id, so repeating a step after a
crash finds the effect already there and does nothing twice. ``beschikbaar`` is stored (not computed) so a
reservation is ``{beschikbaar_cents: {$gte: amount}}`` + ``$inc``: no ``$expr`` needed, never over-committed.
The places and the head of ``volgorde`` change through servicekit's unit of work (revision-checked); the ledgers
and caps hold every aanvraag's entry, so they keep their guarded ``$inc`` steps (docs/adr/0009).
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from grants.domain import Regeling
from servicekit.store import ConcurrencyError, Document, DocumentStore, DuplicateKeyError
from servicekit.unit_of_work import DOCUMENT, READ, Missing, Unchanged, UnitOfWork

GERESERVEERD, VASTGELEGD = "gereserveerd", "vastgelegd"
KOP = "kop"
#: A volgnummer's place in the order of receipt: announced by intake, asked for (the request waits), given
#: back before it was asked for (withdrawn), or closed (decided, given back and passed, or skipped).
AANGEKONDIGD, AANGEVRAAGD, VRIJGEGEVEN, GESLOTEN = "aangekondigd", "aangevraagd", "vrijgegeven", "gesloten"
AFWEZIG = "afwezig"  # in plaats_zetten's ``van``: the place may not exist yet


def ledger_id(regeling: str, periode: str) -> str:
    return f"{regeling}:{periode}"


def plaats_id(nummer: int) -> str:
    """A volgnummer's document id: a string, because FerretDB v1 finds only string ids without a scan."""
    return f"nr-{nummer}"


def cap_id(regeling: str, gemeente_code: str) -> str:
    return f"{regeling}:{gemeente_code}"


class GrantsRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.zaken = DocumentStore(db, "zaken")
        self.verzoeken = DocumentStore(db, "reserveringsverzoeken")
        self.beschikkingen = DocumentStore(db, "beschikkingen")
        self.budgetten = db["budgetten"]
        self.caps = db["caps"]
        self.leases = db["leases"]
        self.volgorde = DocumentStore(db, "volgorde")
        self._plaatsen = UnitOfWork(self.volgorde, DOCUMENT, retries=20)
        # the head: only ``tot`` is written, so a ``bekend`` raised meanwhile (``$max``, revision unchanged) stays
        self._kop = UnitOfWork(self.volgorde, DOCUMENT, fields=("tot",), retries=20)

    async def ensure_indexes(self) -> None:
        for store in (self.zaken, self.verzoeken):
            await store.collection.create_index("has_outbox")

    # ------------------------------------------------------------------------------------------ ledgers

    async def ensure_ledger(self, regeling: Regeling, periode_id: str) -> None:
        """Create the ledger from the configured ceiling unless it exists (an admin may have changed it)."""
        periode = next(p for p in regeling.budgetperioden if p.id == periode_id)
        with contextlib.suppress(DuplicateKeyError):  # another process created it at the same moment
            await self.budgetten.update_one(
                {"_id": ledger_id(regeling.id, periode_id)},
                {"$setOnInsert": {"regeling": regeling.id, "periode": periode_id,
                                  "plafond_cents": periode.plafond_cents, "beschikbaar_cents": periode.plafond_cents,
                                  "gereserveerd_cents": 0, "vastgelegd_cents": 0, "reserveringen": {},
                                  "revision": 1}},
                upsert=True)

    async def reserve_budget(self, lid: str, aanvraag_id: str, bedrag_cents: int, at: datetime) -> bool:
        """Reserve ``bedrag_cents`` for the aanvraag; True when it holds a reservation afterwards (now or
        from an earlier attempt), False when the ceiling does not allow it."""
        key = f"reserveringen.{aanvraag_id}"
        result = await self.budgetten.update_one(
            {"_id": lid, "beschikbaar_cents": {"$gte": bedrag_cents}, key: {"$exists": False}},
            {"$inc": {"beschikbaar_cents": -bedrag_cents, "gereserveerd_cents": bedrag_cents, "revision": 1},
             "$set": {key: {"bedragCents": bedrag_cents, "status": GERESERVEERD, "at": at}}})
        if result.matched_count == 1:
            return True
        return await self.reservering(lid, aanvraag_id) is not None

    async def reservering(self, lid: str, aanvraag_id: str) -> dict[str, Any] | None:
        doc = await self.budgetten.find_one({"_id": lid}, {f"reserveringen.{aanvraag_id}": 1})
        if doc is None:
            return None
        entry: dict[str, Any] | None = (doc.get("reserveringen") or {}).get(aanvraag_id)
        return entry

    async def commit_budget(self, lid: str, aanvraag_id: str, bedrag_cents: int, at: datetime) -> dict[str, Any] | None:
        """Move a reservation to committed; guarded by its status so a retry is harmless. Returns the
        reservation as it stands afterwards, or None when there is none."""
        key = f"reserveringen.{aanvraag_id}"
        await self.budgetten.update_one(
            {"_id": lid, f"{key}.status": GERESERVEERD},
            {"$inc": {"gereserveerd_cents": -bedrag_cents, "vastgelegd_cents": bedrag_cents, "revision": 1},
             "$set": {f"{key}.status": VASTGELEGD, f"{key}.vastgelegdOp": at}})
        return await self.reservering(lid, aanvraag_id)

    async def release_budget(self, lid: str, aanvraag_id: str, bedrag_cents: int) -> None:
        """Give a reservation (reserved or committed) back to ``beschikbaar``; nothing when there is none."""
        key = f"reserveringen.{aanvraag_id}"
        for status, counter in ((GERESERVEERD, "gereserveerd_cents"), (VASTGELEGD, "vastgelegd_cents")):
            result = await self.budgetten.update_one(
                {"_id": lid, f"{key}.status": status},
                {"$unset": {key: ""},
                 "$inc": {"beschikbaar_cents": bedrag_cents, counter: -bedrag_cents, "revision": 1}})
            if result.matched_count == 1:
                return

    async def register_financial(self, lid: str, aanvraag_id: str, command_id: str,
                                 totalen: dict[str, int | None]) -> dict[str, Any]:
        """Set the case's paid / recovered / vastgesteld totals on the ledger and move the ledger totals by
        the difference, in one update guarded by the case's entry version (compare-and-set): a retry of the
        same command finds its id in the entry and changes nothing. A None total keeps the value it had.
        Returns the entry as it stands afterwards."""
        key = f"financieel.{aanvraag_id}"
        for _ in range(50):
            doc = await self.budgetten.find_one({"_id": lid}, {key: 1})
            if doc is None:
                raise LookupError(f"budgetten/{lid} does not exist")
            old: dict[str, Any] = (doc.get("financieel") or {}).get(aanvraag_id) or {}
            if command_id in (old.get("commands") or []):
                return old
            new = {veld: (waarde if waarde is not None else int(old.get(veld, 0)))
                   for veld, waarde in totalen.items()}
            inc = {veld: new[veld] - int(old.get(veld, 0)) for veld in new}
            versie = int(old.get("versie", 0))
            entry = {**new, "versie": versie + 1, "commands": [*(old.get("commands") or []), command_id]}
            guard: dict[str, Any] = {"_id": lid}
            guard[f"{key}.versie" if old else key] = versie if old else {"$exists": False}
            result = await self.budgetten.update_one(
                guard, {"$set": {key: entry}, "$inc": {**inc, "revision": 1}})
            if result.matched_count == 1:
                return entry
        raise RuntimeError(f"budgetten/{lid}: too many concurrent changes to {key}")

    async def report_sources(self) -> tuple[list[Document], list[Document], list[Document]]:
        """Zaken, reservation requests and ledgers as the reports need them (scans; a year is small)."""
        zaken = await self.zaken.collection.find(
            {}, {"_id": 1, "regeling": 1, "gemeente_code": 1, "aanvraagdatum": 1, "beschikkingen": 1}).to_list(None)
        verzoeken = await self.verzoeken.collection.find(
            {}, {"_id": 1, "regeling": 1, "budgetperiode": 1, "gemeente_code": 1, "uitkomst": 1}).to_list(None)
        return zaken, verzoeken, await self.all_ledgers()

    async def all_ledgers(self) -> list[Document]:
        return await self.budgetten.find({}).to_list(None)

    async def get_ledger(self, lid: str) -> Document | None:
        return await self.budgetten.find_one({"_id": lid})

    async def set_plafond(self, lid: str, nieuw: int, expected_revision: int | None) -> Document | None:
        """Set the ceiling, moving ``beschikbaar`` by the difference in one guarded update.

        Returns the updated ledger; None when the guard missed (changed meanwhile, or the new ceiling is
        below what is reserved and committed): the caller re-reads to tell which.
        """
        doc = await self.budgetten.find_one({"_id": lid}, {"reserveringen": 0})
        if doc is None:
            return None
        verschil = nieuw - doc["plafond_cents"]
        guard: dict[str, Any] = {"_id": lid, "plafond_cents": doc["plafond_cents"],
                                 "beschikbaar_cents": {"$gte": max(0, -verschil)}}
        if expected_revision is not None:
            guard["revision"] = expected_revision
        updated: Document | None = await self.budgetten.find_one_and_update(
            guard, {"$set": {"plafond_cents": nieuw}, "$inc": {"beschikbaar_cents": verschil, "revision": 1}},
            return_document=ReturnDocument.AFTER)  # FerretDB v1: no projection in findAndModify
        return updated

    async def create_ledger(self, regeling: str, periode: str, plafond_cents: int) -> bool:
        try:
            await self.budgetten.insert_one({
                "_id": ledger_id(regeling, periode), "regeling": regeling, "periode": periode,
                "plafond_cents": plafond_cents, "beschikbaar_cents": plafond_cents, "gereserveerd_cents": 0,
                "vastgelegd_cents": 0, "reserveringen": {}, "revision": 1})
        except DuplicateKeyError:
            return False
        return True

    # --------------------------------------------------------------------------------------------- caps

    async def ensure_cap(self, regeling: Regeling, gemeente_code: str) -> None:
        with contextlib.suppress(DuplicateKeyError):
            await self.caps.update_one(
                {"_id": cap_id(regeling.id, gemeente_code)},
                {"$setOnInsert": {"regeling": regeling.id, "gemeente_code": gemeente_code,
                                  "maximum": regeling.cap_per_gemeente, "beschikbaar": regeling.cap_per_gemeente,
                                  "reserveringen": {}}},
                upsert=True)

    async def reserve_cap(self, cid: str, aanvraag_id: str, at: datetime) -> bool:
        key = f"reserveringen.{aanvraag_id}"
        result = await self.caps.update_one(
            {"_id": cid, "beschikbaar": {"$gte": 1}, key: {"$exists": False}},
            {"$inc": {"beschikbaar": -1}, "$set": {key: at}})
        if result.matched_count == 1:
            return True
        doc = await self.caps.find_one({"_id": cid}, {key: 1})
        return doc is not None and aanvraag_id in (doc.get("reserveringen") or {})

    async def release_cap(self, cid: str, aanvraag_id: str) -> None:
        key = f"reserveringen.{aanvraag_id}"
        await self.caps.update_one({"_id": cid, key: {"$exists": True}},
                                   {"$unset": {key: ""}, "$inc": {"beschikbaar": 1}})

    # -------------------------------------------------------------------------------- allocator support

    # The order of receipt (allocator.py): one document per volgnummer (``_id`` nr-<number>) and the head
    # ``kop`` (``tot``: every number up to it is done; ``bekend``: the highest number announced or asked for).
    # Every filter is {_id} or {_id, revision}: FerretDB v1 scans the collection for any other filter, and the
    # local stack's proxy answers {_id, revision} without a scan (deploy/ferretdb/cas.go).

    async def kop(self) -> Document:
        return await self.volgorde.get(KOP) or {"_id": KOP, "tot": 0, "bekend": 0, "revision": 0}

    async def ken_nummer(self, nummer: int) -> None:
        """Raise ``bekend`` to ``nummer`` (``$max`` never lowers it; it leaves ``revision``, which guards ``tot``).
        One write without a read, like notifications' dossier upsert: not an aggregate change (ADR 0009)."""
        await self.volgorde.collection.update_one(
            {"_id": KOP}, {"$max": {"bekend": nummer}, "$setOnInsert": {"tot": 0, "revision": 1}}, upsert=True)

    async def schuif_op(self, van: int, naar: int, kop: Document | None = None) -> Document | None:
        """Move the head from ``van`` to ``naar``, checked on its revision (``kop``: the head as the caller knows
        it, from ``kop()`` or the previous move). Returns the head as written, or None when the head is not at
        ``van`` (someone else moved it)."""
        def schuif(doc: Document) -> None:
            if int(doc.get("tot", 0)) != van:
                raise Unchanged
            doc["tot"] = naar

        try:  # a head never written (revision 0) is inserted, with ``bekend`` at least where it now stands
            done = await self._kop.run(KOP, schuif, create=lambda: {"_id": KOP, "tot": 0, "bekend": naar},
                                       current=READ if kop is None else kop if kop.get("revision") else None)
        except ConcurrencyError:
            return None  # moved again and again meanwhile: the caller reads the head anew
        return None if done.repeated else done.doc

    async def plaats(self, nummer: int) -> Document | None:
        return await self.volgorde.get(plaats_id(nummer))

    async def plaats_zetten(self, nummer: int, van: tuple[str, ...], naar: str, velden: Document,
                            gelezen: Document | None = None) -> str:
        """Move the place ``nummer`` from a status in ``van`` (or from absent, when ``van`` holds AFWEZIG) to
        ``naar``, checked on its revision (``gelezen``: the place as the caller just read it). Returns the status
        it has afterwards (``naar`` when this call moved it)."""
        def zet(plaats: Document) -> None:
            if plaats.get("status", AFWEZIG) not in van:
                raise Unchanged
            plaats.update(status=naar, **velden)

        # the first attempt trusts the caller's read (a copy: the change works on it); only an announcement expects
        # no place, and inserts it without a read
        try:
            done = await self._plaatsen.run(
                plaats_id(nummer), zet, create=(lambda: {"_id": plaats_id(nummer)}) if AFWEZIG in van else None,
                current=dict(gelezen) if gelezen is not None else None if van == (AFWEZIG,) else READ)
        except Missing:
            return AFWEZIG
        return str(done.doc.get("status", AFWEZIG)) if done.repeated else naar

    async def take_lease(self, name: str, holder: str, now: datetime, until: datetime) -> bool:
        """Hold the named lease until ``until`` if it is free, expired or already ours (revision-checked)."""
        doc = await self.leases.find_one({"_id": name})
        if doc is None:
            try:
                await self.leases.insert_one({"_id": name, "holder": holder, "until": until, "revision": 1})
            except DuplicateKeyError:
                return False
            return True
        if doc["holder"] != holder and doc["until"] > now:
            return False
        result = await self.leases.update_one(
            {"_id": name, "revision": doc["revision"]},
            {"$set": {"holder": holder, "until": until}, "$inc": {"revision": 1}})
        return result.matched_count == 1

    async def drop_lease(self, name: str, holder: str, now: datetime) -> None:
        doc = await self.leases.find_one({"_id": name})
        if doc is not None and doc["holder"] == holder:
            await self.leases.update_one({"_id": name, "revision": doc["revision"]},
                                         {"$set": {"until": now},
                                          "$inc": {"revision": 1}})

