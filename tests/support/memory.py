"""In-memory stand-ins for the document store, for unit tests of pure handler logic (no broker, no database).

``MemoryStore`` keeps ``servicekit.store.DocumentStore``'s contract: insert at revision 1 (DuplicateKeyError on
an existing id), replace only at the revision read (ConcurrencyError otherwise), events appended to the
document's ``outbox``. Documents are copied in and out, as a database would, so a test sees only what was saved.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
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

    @property
    def collection(self) -> Any:
        return _Collection(self.name)

    async def get(self, doc_id: str) -> Document | None:
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
