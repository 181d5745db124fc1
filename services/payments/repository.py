"""MongoDB documents of payments and the guarded single-document updates that keep the money exact.

Collections (read by ``_id`` wherever it matters; FerretDB v1 scans for any other filter):

* ``zaken``: one per aanvraag: its order ids, financing, the vaststelling outcome; the command replies
  (outbox + ``applied``, see servicekit.commands).
* ``opdrachten``: one per payment order, ``_id`` derived from beschikking + moment + installment, so a
  repeated command finds it (DuplicateKeyError = already done). Every write raises its ``revision``, so a
  batch claims and books its orders with revision-checked updates in bulk (``in_bulk_zetten``); the other
  writes are guarded on ``status``.
* ``terugvorderingen``: one per recovery (``_id`` derived from the aanvraag); ``open_cents`` decreases by
  guarded set-offs keyed by the order id.
* ``grootboek``: one ledger per ggz (``_id`` = KvK): totals per funding share and the latest bookings; every
  booking is keyed and counted once. ``grootboekposten``: the older bookings, one document each (grootboek.py).
* ``batches``: SEPA batches, ``_id`` derived from the Idempotency-Key.

No transactions: each step is one guarded single-document update, so repeating any step after a crash finds
its effect already there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase

from payments.grootboek import Grootboek
from servicekit.store import Document, DocumentStore, DuplicateKeyError

AANDELEN = ("totaal", "rijk", "gemeente")
#: Statements per bulk command. The local FerretDB front sends up to 64 revision-checked statements that raise
#: the revision as one command (deploy/ferretdb/update.go); any other bulk goes there one statement at a time.
BULK = 64
#: An order's fields that tell whether a bulk statement for it went in (see ``in_bulk_zetten``).
_KENMERK = ("status", "batch_id")


class PaymentsRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.zaken = DocumentStore(db, "zaken")
        self.opdrachten = db["opdrachten"]
        self.terugvorderingen = db["terugvorderingen"]
        self.grootboek = db["grootboek"]
        self.ledger = Grootboek(self.grootboek, db["grootboekposten"])
        self.batches = db["batches"]

    async def ensure_indexes(self) -> None:
        await self.zaken.collection.create_index("has_outbox")
        await self.ledger.ensure_indexes()

    # ------------------------------------------------------------------------------------------ orders

    async def opdracht(self, opdracht_id: str) -> Document | None:
        return await self.opdrachten.find_one({"_id": opdracht_id})

    async def opdracht_invoegen(self, doc: Document) -> Document:
        """Insert the order unless it exists; returns what is stored (a twin's write wins)."""
        try:
            await self.opdrachten.insert_one(doc)
            return doc
        except DuplicateKeyError:
            existing = await self.opdracht(doc["_id"])
            assert existing is not None
            return existing

    async def opdrachten_van(self, ids: list[str]) -> list[Document]:
        """The orders by ``_id`` (FerretDB indexes only ``_id`` lookups), BULK at a time in parallel."""
        docs: list[Document | None] = []
        for start in range(0, len(ids), BULK):
            docs.extend(await asyncio.gather(*(self.opdracht(i) for i in ids[start:start + BULK])))
        return [d for d in docs if d is not None]

    async def status_zetten(self, opdracht_id: str, van: tuple[str, ...], naar: str, **velden: Any) -> bool:
        result = await self.opdrachten.update_one({"_id": opdracht_id, "status": {"$in": list(van)}},
                                                  {"$set": {"status": naar, **velden}, "$inc": {"revision": 1}})
        return result.matched_count == 1

    async def in_bulk_zetten(self, opdrachten: Sequence[Document], van: str, velden: Mapping[str, Any],
                             pogingen: int = 5) -> list[Document]:
        """Set ``velden`` (with ``status``) on each order, read while it had status ``van``, with revision-checked
        updates in bulk commands of BULK; returns the orders updated now, as stored.

        An order changed since it was read is read again: one still in ``van`` is tried again at its new
        revision, one that left it (another batch claimed it, a vaststelling cancelled it) is left alone. Each
        statement is one atomic single-document update, so a crash between commands leaves every order either
        updated or not, and the caller's retry finds which. Orders stored before they had a revision are
        updated one by one, guarded on their status."""
        gedaan: list[Document] = []
        for start in range(0, len(opdrachten), BULK):
            open_ = list(opdrachten[start:start + BULK])
            for _ in range(pogingen):
                zonder = [o for o in open_ if not isinstance(o.get("revision"), int)]
                met = [o for o in open_ if isinstance(o.get("revision"), int)]
                for o in zonder:
                    if await self.status_zetten(o["_id"], (van,), velden["status"],
                                                **{k: v for k, v in velden.items() if k != "status"}):
                        gedaan.append({**o, **velden, "revision": 1})
                if not met:
                    break
                result = await self.opdrachten.bulk_write(
                    [UpdateOne({"_id": o["_id"], "revision": o["revision"]},
                               {"$set": dict(velden), "$inc": {"revision": 1}}) for o in met], ordered=False)
                if result.matched_count == len(met):
                    gedaan.extend({**o, **velden, "revision": o["revision"] + 1} for o in met)
                    break
                open_ = []
                for o, vers in zip(met, await self.opdrachten_van_of_none([o["_id"] for o in met]), strict=True):
                    if vers is None:
                        continue
                    verwacht = {**{k: o.get(k) for k in _KENMERK}, **{k: velden[k] for k in _KENMERK if k in velden}}
                    if all(vers.get(k) == v for k, v in verwacht.items()):
                        gedaan.append(vers)  # this statement went in (maybe written again since)
                    elif vers["status"] == van:
                        open_.append(vers)  # changed, still waiting: again at its new revision
                if not open_:
                    break
        return gedaan

    async def opdrachten_van_of_none(self, ids: Sequence[str]) -> list[Document | None]:
        return list(await asyncio.gather(*(self.opdracht(i) for i in ids)))

    async def verlagen(self, opdracht_id: str, van: tuple[str, ...], velden: Mapping[str, Any],
                       verlaging: Mapping[str, Any]) -> bool:
        """Reduce an order still outside a batch (guarded on its status), once: ``verlaging`` records it."""
        result = await self.opdrachten.update_one(
            {"_id": opdracht_id, "status": {"$in": list(van)}, "verlaging": {"$exists": False}},
            {"$set": {**velden, "verlaging": dict(verlaging)}, "$inc": {"revision": 1}})
        return result.matched_count == 1

    async def verlaging_vastleggen(self, opdracht_id: str, verlaging: Mapping[str, Any]) -> bool:
        """Record that the order was not reduced (it was already in a batch), once."""
        result = await self.opdrachten.update_one({"_id": opdracht_id, "verlaging": {"$exists": False}},
                                                  {"$set": {"verlaging": dict(verlaging)}, "$inc": {"revision": 1}})
        return result.matched_count == 1

    async def uit_batch_halen(self, opdracht_id: str, batch_id: str, naar: str) -> bool:
        """Put an order claimed by a batch still being built back out of it."""
        result = await self.opdrachten.update_one({"_id": opdracht_id, "status": "in_batch", "batch_id": batch_id},
                                                  {"$set": {"status": naar, "batch_id": None}, "$inc": {"revision": 1}})
        return result.matched_count == 1

    # --------------------------------------------------------------------------------------- recoveries

    async def terugvordering(self, tid: str) -> Document | None:
        return await self.terugvorderingen.find_one({"_id": tid})

    async def terugvordering_invoegen(self, doc: Document) -> Document:
        try:
            await self.terugvorderingen.insert_one(doc)
            return doc
        except DuplicateKeyError:
            existing = await self.terugvordering(doc["_id"])
            assert existing is not None
            return existing

    async def verrekenen(self, tid: str, opdracht_id: str, cents: int) -> bool:
        """Set ``cents`` of the order off against the recovery, once per order and never below zero."""
        key = f"verrekeningen.{opdracht_id}"
        result = await self.terugvorderingen.update_one(
            {"_id": tid, "status": "open", "open_cents": {"$gte": cents}, key: {"$exists": False}},
            {"$inc": {"open_cents": -cents}, "$set": {key: cents}})
        return result.matched_count == 1

    async def verrekening_herstellen(self, tid: str, opdracht_id: str, cents: int) -> bool:
        """Undo the set-off of a cancelled order, once."""
        key = f"hersteld.{opdracht_id}"
        result = await self.terugvorderingen.update_one(
            {"_id": tid, key: {"$exists": False}},
            {"$inc": {"open_cents": cents}, "$set": {key: cents, "status": "open"}})
        return result.matched_count == 1

    async def terugvordering_status(self, tid: str, van: str, naar: str) -> bool:
        result = await self.terugvorderingen.update_one({"_id": tid, "status": van}, {"$set": {"status": naar}})
        return result.matched_count == 1

    # ------------------------------------------------------------------------------------------ ledger

    async def grootboek_van(self, kvk: str) -> Document | None:
        return await self.ledger.van(kvk)

    async def boekingen_van(self, kvk: str) -> dict[str, Any]:
        return await self.ledger.boekingen_van(kvk)

    async def boeken(self, kvk: str, sleutel: str, bedragen: Mapping[str, Mapping[str, int]],
                     zetten: Mapping[str, Any] | None = None, wissen: tuple[str, ...] = ()) -> bool:
        """Book once per ``sleutel``: ``bedragen`` is {share: {column: cents}}. True when booked now, False
        when it was booked before. The ledger is created by the first booking (grootboek.py)."""
        return await self.ledger.boeken(kvk, sleutel, bedragen, zetten, wissen)

    async def boeken_samen(self, kvk: str, boekingen: Sequence[tuple[str, Mapping[str, Mapping[str, int]]]]) -> None:
        """Book several keyed bookings of one ledger together, each once (grootboek.py)."""
        await self.ledger.boeken_samen(kvk, boekingen)

    async def grootboek_zetten(self, kvk: str, zetten: Mapping[str, Any] | None = None,
                               wissen: tuple[str, ...] = ()) -> None:
        update: dict[str, Any] = {}
        if zetten:
            update["$set"] = dict(zetten)
        if wissen:
            update["$unset"] = {w: "" for w in wissen}
        if update:
            await self.grootboek.update_one({"_id": kvk}, update)

    # ----------------------------------------------------------------------------------------- batches

    async def batch(self, batch_id: str) -> Document | None:
        return await self.batches.find_one({"_id": batch_id})

    async def batch_invoegen(self, doc: Document) -> None:
        """Insert the batch unless it exists (a retry with the same Idempotency-Key finds it)."""
        with contextlib.suppress(DuplicateKeyError):
            await self.batches.insert_one(doc)

    async def batch_zetten(self, batch_id: str, van: str, velden: Mapping[str, Any]) -> bool:
        """Move the batch on from status ``van`` (guarded on it, so a step is taken once)."""
        result = await self.batches.update_one({"_id": batch_id, "status": van}, {"$set": dict(velden)})
        return result.matched_count == 1

    async def batch_vervallen(self, batch_id: str) -> None:
        """Drop a batch that found nothing to pay while it was being built."""
        await self.batches.delete_one({"_id": batch_id, "status": "opbouw"})

    async def in_batch(self, batch_id: str) -> list[Document]:
        """The orders a batch claimed (also before a restart)."""
        return await self.opdrachten.find({"batch_id": batch_id}).to_list(None)

    async def met_status(self, status: str, limit: int = 0) -> list[Document]:
        """Orders with ``status``, oldest first (``limit`` 0: all)."""
        cursor = self.opdrachten.find({"status": status}).sort([("aangemaakt_op", 1), ("_id", 1)])
        return await (cursor.limit(limit) if limit else cursor).to_list(None)
