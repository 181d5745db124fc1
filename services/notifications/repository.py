"""The ``berichten`` collection (one document per beschikking) and its guarded updates.

Every write bumps ``revision``: ``apply_command`` and the outbox relay write revision-checked, so a sender
update can never be overwritten by a stale copy. Filters other than ``{_id: ...}`` scan the collection on
FerretDB v1; the scans here (due messages, the delivery log) read a projection without the PDF.

A letter's PDF (about 25 KB) is kept in ``brief_pdfs`` by its SHA-256, written once before the message that names
it (``bijlage_sha256``), not in the message: FerretDB v1 decodes and re-encodes a whole document for every update,
and a message is updated three to four times (claim, outcome, outbox), each time with its PDF. Messages written
before keep theirs inline until their next whole write; :meth:`BerichtenRepository.pdf` reads either.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bson import Binary
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure

from notifications.domain import BEZIG, MISLUKT, TE_VERSTUREN, VERZONDEN
from servicekit.envelope import CloudEvent
from servicekit.store import Document, DocumentStore, DuplicateKeyError

# What the delivery log and the sender's scan read: everything but the heavy and internal fields.
LICHT = {"pdf": 0, "outbox": 0, "applied": 0, "tekst": 0, "brief_tekst": 0}
LOG_LIMIT = 500


class BerichtStore(DocumentStore):
    """``berichten``, with the ``pdf`` a write carries stored apart in ``brief_pdfs`` (see the module docstring)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        super().__init__(db, "berichten")
        self.pdfs = db["brief_pdfs"]

    async def _pdf_apart(self, doc: Document) -> Document:
        """``doc`` without its PDF, once the PDF is stored by its hash (the same letter twice is stored once)."""
        if doc.get("pdf") is None:
            return doc
        pdf = bytes(doc["pdf"])
        sha = hashlib.sha256(pdf).hexdigest()
        with contextlib.suppress(DuplicateKeyError):
            await self.pdfs.insert_one({"_id": sha, "pdf": Binary(pdf)})
        return {**{k: v for k, v in doc.items() if k != "pdf"}, "bijlage_sha256": sha}

    async def insert(self, doc: Document, events: Sequence[tuple[CloudEvent, str]] = ()) -> Document:
        return await super().insert(await self._pdf_apart(doc), events)

    async def replace(self, doc: Document, events: Sequence[tuple[CloudEvent, str]] = ()) -> Document:
        return await super().replace(await self._pdf_apart(doc), events)

    async def update(self, doc: Document, fields: Sequence[str],
                     events: Sequence[tuple[CloudEvent, str]] = ()) -> Document:
        if "pdf" not in fields:  # an inline PDF (written before) stays where it is: nothing to store apart
            return await super().update(doc, fields, events)
        fields = [*(f for f in fields if f != "pdf"), "bijlage_sha256"]
        return await super().update(await self._pdf_apart(doc), fields, events)


class BerichtenRepository:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.berichten = BerichtStore(db)
        self.collection = self.berichten.collection

    async def pdf(self, doc: Document) -> bytes:
        """The PDF of a message read whole: inline (written before ``brief_pdfs``) or by its hash."""
        if doc.get("pdf") is not None:
            return bytes(doc["pdf"])
        found = await self.berichten.pdfs.find_one({"_id": doc["bijlage_sha256"]})
        if found is None:
            raise LookupError(f"bericht {doc['_id']}: its PDF {doc['bijlage_sha256'][:12]} is not stored")
        return bytes(found["pdf"])

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("has_outbox")
        await self.collection.create_index("status")

    async def get(self, bericht_id: str, *, licht: bool = False) -> Document | None:
        return await self.collection.find_one({"_id": bericht_id}, LICHT if licht else None)

    async def due(self, now: datetime, limit: int = 50) -> list[Document]:
        """Messages to try now: waiting ones whose time has come, and claims whose lease ran out."""
        wachtend = await self.collection.find(
            {"status": TE_VERSTUREN, "volgende_poging": {"$lte": now}},
            {"_id": 1, "revision": 1, "volgende_poging": 1}).sort("volgende_poging", 1).limit(limit).to_list(None)
        verlopen = await self.collection.find(
            {"status": BEZIG, "lease_tot": {"$lte": now}}, {"_id": 1, "revision": 1}).limit(limit).to_list(None)
        return verlopen + wachtend

    async def claim(self, bericht_id: str, token: str, now: datetime, lease_tot: datetime) -> Document | None:
        """Take the message for one send attempt: a revision-checked update from an eligible state, so two
        senders never both win. Returns the claimed document (with the PDF), or None."""
        for _ in range(5):
            doc = await self.collection.find_one({"_id": bericht_id})
            if doc is None or not _eligible(doc, now):
                return None
            change: Document = {"status": BEZIG, "claim": token, "lease_tot": lease_tot}
            outbox = self.berichten.published.drop_confirmed(self.collection, doc)
            if len(outbox) != len(doc.get("outbox") or []):  # the published event rides along (servicekit.store)
                change.update(outbox=outbox, has_outbox=bool(outbox))
            try:
                result = await self.collection.update_one(
                    {"_id": bericht_id, "revision": doc["revision"]}, {"$set": change, "$inc": {"revision": 1}})
            except ConnectionFailure:
                # The answer was lost, not necessarily the write: our token stored means the claim is ours (left
                # unknown, the message waited for its lease, minutes, before any sender tried it again).
                stored = await self._na_verbroken_verbinding(bericht_id)
                if stored is not None and stored.get("claim") == token:
                    return stored
                continue
            if result.modified_count == 1:
                doc.update(change, revision=doc["revision"] + 1)
                if "outbox" in change:
                    self.berichten.published.written(self.collection, doc)
                return doc
        return None

    async def mark_sent(self, bericht_id: str, token: str, now: datetime, antwoord: str) -> bool:
        """False when our claim was lost (the lease ran out and another sender took it)."""
        return await self._uitkomst(bericht_id, token, {
            "$set": {"status": VERZONDEN, "verzonden_op": now, "smtp_antwoord": antwoord, "claim": None,
                     "lease_tot": None, "volgende_poging": None},
            "$push": {"pogingen": {"op": now, "fout": None, "smtp_code": _code(antwoord)}},
            "$inc": {"revision": 1, "teller": 1}})

    async def mark_failed(self, bericht_id: str, token: str, now: datetime, fout: str, code: int | None,
                          volgende: datetime | None) -> bool:
        """Record the failed attempt; ``volgende`` None means no more attempts (status mislukt)."""
        status: dict[str, Any] = ({"status": TE_VERSTUREN, "volgende_poging": volgende} if volgende is not None
                                  else {"status": MISLUKT, "volgende_poging": None})
        return await self._uitkomst(bericht_id, token, {
            "$set": {**status, "claim": None, "lease_tot": None},
            "$push": {"pogingen": {"op": now, "fout": fout[:300], "smtp_code": code}},
            "$inc": {"revision": 1, "teller": 1}})

    async def _uitkomst(self, bericht_id: str, token: str, update: Document) -> bool:
        """Write an attempt's outcome while the claim is ours. A lost answer is looked up, not guessed: our claim
        gone means our write went through; still ours, the write is tried again (a sent message left claimed was
        sent a second time once its lease ran out)."""
        for poging in range(3):
            try:
                result = await self.collection.update_one({"_id": bericht_id, "status": BEZIG, "claim": token},
                                                          update)
                return result.modified_count == 1
            except ConnectionFailure:
                if poging == 2:
                    raise
                stored = await self._na_verbroken_verbinding(bericht_id)
                if stored is None or stored.get("claim") != token:
                    return stored is not None
        return False

    async def _na_verbroken_verbinding(self, bericht_id: str) -> Document | None:
        """The message as stored after a write whose connection broke before the answer (the write may or may
        not have happened). The driver refuses at once while it reconnects, so this tries for a few seconds."""
        for wacht in (0.2, 0.5, 1.0, 2.0):
            await asyncio.sleep(wacht)
            with contextlib.suppress(ConnectionFailure):
                return await self.collection.find_one({"_id": bericht_id})
        return await self.collection.find_one({"_id": bericht_id})

    async def log(self, status: str | None, aanvraag_id: str | None,
                  eigen: Document | None = None) -> list[Document]:
        """The delivery log, newest first; ``eigen`` narrows it to one organisation's messages."""
        query: Document = dict(eigen or {})
        if status:
            query["status"] = status
        if aanvraag_id:
            query["aanvraag_id"] = aanvraag_id
        docs = await self.collection.find(query, LICHT).sort("aangemaakt_op", -1).limit(LOG_LIMIT).to_list(None)
        return docs


def _eligible(doc: Document, now: datetime) -> bool:
    if doc.get("status") == TE_VERSTUREN:
        moment = doc.get("volgende_poging")
        return moment is not None and moment <= now
    if doc.get("status") == BEZIG:
        lease = doc.get("lease_tot")
        return lease is not None and lease <= now
    return False


def _code(antwoord: str) -> int | None:
    head = antwoord[:3]
    return int(head) if head.isdigit() else None

