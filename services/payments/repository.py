"""MongoDB documents of payments and the guarded single-document updates that keep the money exact.

Collections (read by ``_id`` wherever it matters; FerretDB v1 scans for any other filter):

* ``zaken``: one per aanvraag: its order ids, financing, the vaststelling outcome; the command replies
  (outbox + ``applied``, see servicekit.commands).
* ``opdrachten``: one per payment order, ``_id`` derived from beschikking + moment + installment, so a
  repeated command finds it (DuplicateKeyError = already done). Claimed into a batch by a guarded update
  on ``status``.
* ``terugvorderingen``: one per recovery (``_id`` derived from the aanvraag); ``open_cents`` decreases by
  guarded set-offs keyed by the order id.
* ``grootboek``: one ledger per ggz (``_id`` = KvK): totals per funding share; every booking is keyed
  (``boekingen.<key>``) and applied with ``$exists: false`` + ``$inc`` so a retry never counts twice.
* ``batches``: SEPA batches, ``_id`` derived from the Idempotency-Key.

No transactions: each step is one guarded single-document update, so repeating any step after a crash finds
its effect already there.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from servicekit.store import Document, DocumentStore, DuplicateKeyError

AANDELEN = ("totaal", "rijk", "gemeente")


class PaymentsRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.zaken = DocumentStore(db, "zaken")
        self.opdrachten = db["opdrachten"]
        self.terugvorderingen = db["terugvorderingen"]
        self.grootboek = db["grootboek"]
        self.batches = db["batches"]

    async def ensure_indexes(self) -> None:
        await self.zaken.collection.create_index("has_outbox")

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
        docs = [await self.opdracht(i) for i in ids]
        return [d for d in docs if d is not None]

    async def status_zetten(self, opdracht_id: str, van: tuple[str, ...], naar: str, **velden: Any) -> bool:
        result = await self.opdrachten.update_one({"_id": opdracht_id, "status": {"$in": list(van)}},
                                                  {"$set": {"status": naar, **velden}})
        return result.matched_count == 1

    async def verlagen(self, opdracht_id: str, van: tuple[str, ...], velden: Mapping[str, Any],
                       verlaging: Mapping[str, Any]) -> bool:
        """Reduce an order still outside a batch (guarded on its status), once: ``verlaging`` records it."""
        result = await self.opdrachten.update_one(
            {"_id": opdracht_id, "status": {"$in": list(van)}, "verlaging": {"$exists": False}},
            {"$set": {**velden, "verlaging": dict(verlaging)}})
        return result.matched_count == 1

    async def verlaging_vastleggen(self, opdracht_id: str, verlaging: Mapping[str, Any]) -> bool:
        """Record that the order was not reduced (it was already in a batch), once."""
        result = await self.opdrachten.update_one({"_id": opdracht_id, "verlaging": {"$exists": False}},
                                                  {"$set": {"verlaging": dict(verlaging)}})
        return result.matched_count == 1

    async def uit_batch_halen(self, opdracht_id: str, batch_id: str, naar: str) -> bool:
        """Put an order claimed by a batch still being built back out of it."""
        result = await self.opdrachten.update_one({"_id": opdracht_id, "status": "in_batch", "batch_id": batch_id},
                                                  {"$set": {"status": naar, "batch_id": None}})
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
        return await self.grootboek.find_one({"_id": kvk})

    async def boeken(self, kvk: str, sleutel: str, bedragen: Mapping[str, Mapping[str, int]],
                     zetten: Mapping[str, Any] | None = None, wissen: tuple[str, ...] = ()) -> bool:
        """Book once per ``sleutel``: ``bedragen`` is {share: {column: cents}}. True when booked now, False
        when it was booked before. The ledger is created by the first booking."""
        key = f"boekingen.{sleutel}"
        inc = {f"{aandeel}.{kolom}": cents for aandeel, kolommen in bedragen.items()
               for kolom, cents in kolommen.items()}
        inc["revision"] = 1
        record = {aandeel: dict(kolommen) for aandeel, kolommen in bedragen.items()}
        update: dict[str, Any] = {"$inc": inc, "$set": {key: record, **(zetten or {})}}
        if wissen:
            update["$unset"] = {w: "" for w in wissen}
        for upsert in (True, False):
            try:
                result = await self.grootboek.update_one({"_id": kvk, key: {"$exists": False}}, update,
                                                         upsert=upsert)
            except DuplicateKeyError:
                continue  # the ledger exists (maybe just created by a concurrent booking): try without upsert
            return result.matched_count == 1 or result.upserted_id is not None
        return False

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
