"""In-memory stand-ins for the document store, for unit tests of pure handler logic (no broker, no database).

``MemoryStore`` keeps ``servicekit.store.DocumentStore``'s contract: insert at revision 1 (DuplicateKeyError on
an existing id), replace only at the revision read (ConcurrencyError otherwise), events appended to the
document's ``outbox``. Documents are copied in and out, as a database would, so a test sees only what was saved.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from servicekit.store import ConcurrencyError, Document, DuplicateKeyError, outbox_entry
from servicekit.unit_of_work import Events


@dataclass
class _Collection:
    name: str


@dataclass
class MemoryStore:
    name: str = "documenten"
    docs: dict[str, Document] = field(default_factory=dict)
    #: Called before each replace: a test writes here "concurrently" to provoke a revision conflict.
    before_replace: Callable[[MemoryStore, Document], None] | None = None
    writes: int = 0
    reads: int = 0

    @property
    def collection(self) -> Any:
        return _Collection(self.name)

    async def get(self, doc_id: str) -> Document | None:
        self.reads += 1
        doc = self.docs.get(doc_id)
        return copy.deepcopy(doc) if doc is not None else None

    async def insert(self, doc: Document, events: Events = ()) -> Document:
        if doc["_id"] in self.docs:
            raise DuplicateKeyError(f"{self.name}/{doc['_id']} exists")
        stored = _with_outbox({**copy.deepcopy(doc), "revision": 1}, events)
        self.docs[doc["_id"]] = stored
        self.writes += 1
        return copy.deepcopy(stored)

    async def replace(self, doc: Document, events: Events = ()) -> Document:
        if self.before_replace is not None:
            self.before_replace(self, doc)
        current = self.docs.get(doc["_id"])
        if current is None or current["revision"] != doc["revision"]:
            raise ConcurrencyError(f"{self.name}/{doc['_id']} changed since revision {doc['revision']}")
        stored = _with_outbox({**copy.deepcopy(doc), "revision": doc["revision"] + 1}, events)
        self.docs[doc["_id"]] = stored
        self.writes += 1
        return copy.deepcopy(stored)

    async def update(self, doc: Document, fields: Sequence[str], events: Events = ()) -> Document:
        """``DocumentStore.update``: only ``fields`` (and the outbox, with events) over the stored document."""
        if self.before_replace is not None:
            self.before_replace(self, doc)
        current = self.docs.get(doc["_id"])
        if current is None or current["revision"] != doc["revision"]:
            raise ConcurrencyError(f"{self.name}/{doc['_id']} changed since revision {doc['revision']}")
        written = {**copy.deepcopy(doc), "revision": doc["revision"] + 1}
        if events:
            _with_outbox(written, events)
            current.update(outbox=written["outbox"], has_outbox=written["has_outbox"])
        current.update({field: written[field] for field in fields}, revision=written["revision"])
        self.writes += 1
        return copy.deepcopy(written)

    def touch(self, doc_id: str, **fields: Any) -> None:
        """Another writer's change that leaves the revision alone (a ``$max`` counter)."""
        self.docs[doc_id].update(fields)

    def bump(self, doc_id: str, **fields: Any) -> None:
        """Another writer's change: set ``fields`` and raise the revision."""
        doc = self.docs[doc_id]
        doc.update(fields)
        doc["revision"] += 1

    def outbox_types(self, doc_id: str) -> list[str]:
        return [entry["routing_key"] for entry in self.docs[doc_id].get("outbox") or []]


def _with_outbox(doc: Document, events: Events) -> Document:
    outbox = list(doc.get("outbox") or [])
    outbox.extend(outbox_entry(event, exchange) for event, exchange in events)
    doc["outbox"] = outbox
    doc["has_outbox"] = bool(outbox)
    return doc


def _set_path(doc: Document, path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for part in parents:
        doc = doc.setdefault(part, {})
    doc[last] = value


def _unset_path(doc: Document, path: str) -> None:
    *parents, last = path.split(".")
    for part in parents:
        doc = doc.get(part) or {}
    doc.pop(last, None)


class MemoryPaymentsRepository:
    """payments.repository.PaymentsRepository's guarded steps for the engine commands, on dicts: each method keeps
    the guard of its MongoDB filter (status, ``$exists: false`` keys, ``open_cents`` never below zero)."""

    def __init__(self) -> None:
        self.zaken = MemoryStore("zaken")
        self.opdrachten: dict[str, Document] = {}
        self.terugvorderingen: dict[str, Document] = {}
        self.grootboek: dict[str, Document] = {}
        self.batches: dict[str, Document] = {}

    # orders
    async def opdracht(self, opdracht_id: str) -> Document | None:
        return copy.deepcopy(self.opdrachten.get(opdracht_id))

    async def opdracht_invoegen(self, doc: Document) -> Document:
        self.opdrachten.setdefault(doc["_id"], copy.deepcopy(doc))
        return copy.deepcopy(self.opdrachten[doc["_id"]])

    async def opdrachten_van(self, ids: list[str]) -> list[Document]:
        return [copy.deepcopy(self.opdrachten[i]) for i in ids if i in self.opdrachten]

    def _zetten(self, opdracht_id: str, velden: Mapping[str, Any]) -> bool:
        self.opdrachten[opdracht_id].update(copy.deepcopy(dict(velden)))
        self.opdrachten[opdracht_id]["revision"] = self.opdrachten[opdracht_id].get("revision", 0) + 1
        return True

    async def status_zetten(self, opdracht_id: str, van: tuple[str, ...], naar: str, **velden: Any) -> bool:
        o = self.opdrachten.get(opdracht_id)
        return o is not None and o["status"] in van and self._zetten(opdracht_id, {"status": naar, **velden})

    async def verlagen(self, opdracht_id: str, van: tuple[str, ...], velden: Mapping[str, Any],
                       verlaging: Mapping[str, Any]) -> bool:
        o = self.opdrachten.get(opdracht_id)
        return (o is not None and o["status"] in van and "verlaging" not in o
                and self._zetten(opdracht_id, {**velden, "verlaging": verlaging}))

    async def verlaging_vastleggen(self, opdracht_id: str, verlaging: Mapping[str, Any]) -> bool:
        o = self.opdrachten.get(opdracht_id)
        return o is not None and "verlaging" not in o and self._zetten(opdracht_id, {"verlaging": verlaging})

    async def in_bulk_zetten(self, opdrachten: Sequence[Document], van: str, velden: Mapping[str, Any],
                             pogingen: int = 5) -> list[Document]:
        gedaan = []
        for o in opdrachten:
            if await self.status_zetten(o["_id"], (van,), velden["status"],
                                        **{k: v for k, v in velden.items() if k != "status"}):
                gedaan.append(copy.deepcopy(self.opdrachten[o["_id"]]))
        return gedaan

    async def uit_batch_halen(self, opdracht_id: str, batch_id: str, naar: str) -> bool:
        o = self.opdrachten.get(opdracht_id)
        return (o is not None and o["status"] == "in_batch" and o.get("batch_id") == batch_id
                and self._zetten(opdracht_id, {"status": naar, "batch_id": None}))

    async def in_batch(self, batch_id: str) -> list[Document]:
        return [copy.deepcopy(o) for o in self.opdrachten.values() if o.get("batch_id") == batch_id]

    async def met_status(self, status: str, limit: int = 0) -> list[Document]:
        found = sorted((o for o in self.opdrachten.values() if o["status"] == status),
                       key=lambda o: (o["aangemaakt_op"], o["_id"]))
        return copy.deepcopy(found[:limit] if limit else found)

    # batches
    async def batch(self, batch_id: str) -> Document | None:
        return copy.deepcopy(self.batches.get(batch_id))

    async def batch_invoegen(self, doc: Document) -> None:
        self.batches.setdefault(doc["_id"], copy.deepcopy(doc))

    async def batch_zetten(self, batch_id: str, van: str, velden: Mapping[str, Any]) -> bool:
        batch = self.batches.get(batch_id)
        if batch is None or batch["status"] != van:
            return False
        batch.update(copy.deepcopy(dict(velden)))
        return True

    async def batch_vervallen(self, batch_id: str) -> None:
        if (self.batches.get(batch_id) or {}).get("status") == "opbouw":
            del self.batches[batch_id]

    # recoveries
    async def terugvordering(self, tid: str) -> Document | None:
        return copy.deepcopy(self.terugvorderingen.get(tid))

    async def terugvordering_invoegen(self, doc: Document) -> Document:
        self.terugvorderingen.setdefault(doc["_id"], copy.deepcopy(doc))
        return copy.deepcopy(self.terugvorderingen[doc["_id"]])

    async def verrekenen(self, tid: str, opdracht_id: str, cents: int) -> bool:
        t = self.terugvorderingen.get(tid)
        if t is None or t["status"] != "open" or t["open_cents"] < cents or opdracht_id in t["verrekeningen"]:
            return False
        t["open_cents"] -= cents
        t["verrekeningen"][opdracht_id] = cents
        return True

    async def verrekening_herstellen(self, tid: str, opdracht_id: str, cents: int) -> bool:
        t = self.terugvorderingen.get(tid)
        if t is None or opdracht_id in t.setdefault("hersteld", {}):
            return False
        t["open_cents"] += cents
        t["hersteld"][opdracht_id] = cents
        t["status"] = "open"
        return True

    async def terugvordering_status(self, tid: str, van: str, naar: str) -> bool:
        t = self.terugvorderingen.get(tid)
        if t is None or t["status"] != van:
            return False
        t["status"] = naar
        return True

    # ledger
    async def grootboek_van(self, kvk: str) -> Document | None:
        return copy.deepcopy(self.grootboek.get(kvk))

    async def boeken(self, kvk: str, sleutel: str, bedragen: Mapping[str, Mapping[str, int]],
                     zetten: Mapping[str, Any] | None = None, wissen: tuple[str, ...] = ()) -> bool:
        ledger = self.grootboek.setdefault(kvk, {"_id": kvk, "boekingen": {}})
        if sleutel in ledger["boekingen"]:
            return False
        for aandeel, kolommen in bedragen.items():
            for kolom, cents in kolommen.items():
                ledger.setdefault(aandeel, {})[kolom] = ledger.get(aandeel, {}).get(kolom, 0) + cents
        ledger["boekingen"][sleutel] = {aandeel: dict(kolommen) for aandeel, kolommen in bedragen.items()}
        await self.grootboek_zetten(kvk, zetten, wissen)
        return True

    async def boeken_samen(self, kvk: str, boekingen: Sequence[tuple[str, Mapping[str, Mapping[str, int]]]]) -> None:
        for sleutel, bedragen in boekingen:
            await self.boeken(kvk, sleutel, bedragen)

    async def grootboek_zetten(self, kvk: str, zetten: Mapping[str, Any] | None = None,
                               wissen: tuple[str, ...] = ()) -> None:
        ledger = self.grootboek.get(kvk)
        if ledger is None:
            return
        for path, value in (zetten or {}).items():
            _set_path(ledger, path, value)
        for path in wissen:
            _unset_path(ledger, path)
