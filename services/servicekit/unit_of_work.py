"""One unit of work for every service: load an aggregate, call it, save it with its events, once per message.

The write rules of docs/adr/0002-embedded-outbox-and-idempotent-consumers.md in one place. A change of an
aggregate is one single-document write that holds, together:

* the aggregate's new state, revision-checked against the revision it was read at;
* the events it causes (the aggregate's own and the reply to the message), in the document's ``outbox``;
* the id of the message that caused it (an engine command's id, an HTTP Idempotency-Key), so a repeated message
  finds it and changes nothing.

A revision conflict (someone wrote since the read) reloads, calls the aggregate again on the fresh state and
retries; with ``expected_revision`` (an HTTP If-Match) it is the caller's ``RevisionMismatch`` instead. The store
is anything with ``get``/``insert``/``replace`` of ``servicekit.store.DocumentStore``, so handlers can be tested
against an in-memory store (tests/support/memory.py).

Two options serve hot paths (grants' order of receipt) without a hand-written loop of their own:

* ``current`` (per run): the document as the caller just read it, or None when the caller expects none; the first
  attempt uses it instead of reading again (a conflict reads, as always);
* ``fields`` (per unit of work): write only these fields over a stored document, a revision-checked ``$set``
  (``update`` of the store), so a field that another writer changes without raising the revision (grants' head
  ``bekend``, raised by ``$max``) keeps the value the database has rather than the one read.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Generic, Protocol, TypeVar, runtime_checkable

from servicekit.envelope import CloudEvent
from servicekit.store import ConcurrencyError, Document, DuplicateKeyError

A = TypeVar("A")
R = TypeVar("R")
Events = Sequence[tuple[CloudEvent, str]]

#: How many message ids a document remembers (older ones cannot come back: the broker's retries end sooner).
APPLIED_MEMORY = 100
MAX_CONFLICT_RETRIES = 50


class Store(Protocol):
    """The revision-checked document store the unit of work writes through (``DocumentStore``)."""

    async def get(self, doc_id: str) -> Document | None: ...

    async def insert(self, doc: Document, events: Events = ()) -> Document: ...

    async def replace(self, doc: Document, events: Events = ()) -> Document: ...


@runtime_checkable
class FieldStore(Store, Protocol):
    """A store that can also write some fields of a document only, revision-checked (``DocumentStore.update``)."""

    async def update(self, doc: Document, fields: Sequence[str], events: Events = ()) -> Document: ...


class _Read(Enum):
    READ = "read"


#: ``UnitOfWork.run``'s default ``current``: read the document first.
READ = _Read.READ
#: What ``current`` may be: the document as the caller read it, None (it found none) or READ.
Current = Document | _Read | None


class Missing(LookupError):
    """There is no document with this id and the caller gave no ``create``."""


class Unchanged(Exception):
    """Raised by a change that finds nothing to do (e.g. a newer state is stored already): nothing is written."""


class RevisionMismatch(ConcurrencyError):
    """The document is not at the revision the caller expected (``expected_revision``): not retried."""


def _no_events(aggregate: object) -> Events:
    return ()


@dataclass(frozen=True)
class Mapper(Generic[A]):
    """How an aggregate is read from and written to its document.

    ``dump`` gives the fields the aggregate owns; they are written over the document as loaded, so fields the
    aggregate does not know (outbox, applied ids, other keys) stay. ``events`` takes the events the aggregate
    recorded during the change (called once per write).
    """

    load: Callable[[Document], A]
    dump: Callable[[A], Document]
    events: Callable[[A], Events] = _no_events


def _same(doc: Document) -> Document:
    return doc


#: The document itself as the aggregate (a service that changes its dict in place; a field it deletes is not
#: written either, as the aggregate is the loaded document itself).
DOCUMENT: Mapper[Document] = Mapper(_same, _same)


@dataclass(frozen=True)
class Done(Generic[A, R]):
    """What a unit of work did: the aggregate after the change, what the change returned, the document as stored.

    ``repeated``: the message had been applied before (or the change raised Unchanged); nothing was written,
    ``result`` is None and ``doc`` is the document as found.
    """

    aggregate: A
    result: R | None
    doc: Document
    repeated: bool = False


def remember(doc: Document, message_id: str, field: str = "applied", memory: int = APPLIED_MEMORY) -> None:
    """Add ``message_id`` to the document's applied ids, keeping the last ``memory``."""
    seen = list(doc.get(field) or [])
    seen.append(message_id)
    doc[field] = seen[-memory:]


class UnitOfWork(Generic[A]):
    """Load -> call -> revision-checked save with outbox and applied message id, for one kind of aggregate."""

    def __init__(self, store: Store, mapper: Mapper[A], *, name: str = "", applied_field: str = "applied",
                 memory: int = APPLIED_MEMORY, retries: int = MAX_CONFLICT_RETRIES,
                 fields: Sequence[str] | None = None) -> None:
        if fields is not None and not isinstance(store, FieldStore):
            raise TypeError("writing some fields only needs a store with update (servicekit.store.DocumentStore)")
        self.store = store
        self.mapper = mapper
        #: None: the aggregate's fields are written over the whole document as loaded (``replace``); else only
        #: these fields (and the applied ids, the outbox) are written (``update``), see the module docstring.
        self.fields = None if fields is None else tuple(fields)
        self.name = name or getattr(getattr(store, "collection", None), "name", "document")
        self.applied_field = applied_field
        self.memory = memory
        self.retries = retries

    async def get(self, doc_id: str) -> A | None:
        doc = await self.store.get(doc_id)
        return None if doc is None else self.mapper.load(doc)

    def applied(self, doc: Document | None, message_id: str) -> bool:
        return doc is not None and message_id in (doc.get(self.applied_field) or [])

    async def run(self, doc_id: str, change: Callable[[A], R], *, message_id: str | None = None,
                  create: Callable[[], A] | None = None, reply: Callable[[R], Events] | None = None,
                  expected_revision: int | None = None, current: Document | _Read | None = READ) -> Done[A, R]:
        """Call ``change`` on the aggregate ``doc_id`` (or on ``create()`` when there is none) and save it.

        ``reply`` turns what ``change`` returned into events written with it (a command's reply). An exception
        from ``change`` writes nothing and propagates. Raises Missing (a LookupError) when the document does not
        exist and there is no ``create``; ConcurrencyError after ``retries`` conflicts. ``current``: the document
        as the caller just read it (with ``DOCUMENT`` the change works on that very dict), or None when the caller
        expects none (the first attempt inserts ``create()`` without a read); only the first attempt uses it.
        """
        known = current
        for _ in range(self.retries):
            loaded = await self.store.get(doc_id) if isinstance(known, _Read) else known
            known = READ
            if loaded is None:
                if create is None:
                    raise Missing(f"{self.name}/{doc_id} does not exist")
                aggregate, base = create(), {}
            else:
                if message_id is not None and self.applied(loaded, message_id):
                    return Done(self.mapper.load(loaded), None, loaded, repeated=True)
                if expected_revision is not None and loaded.get("revision") != expected_revision:
                    raise RevisionMismatch(f"{self.name}/{doc_id} is not at revision {expected_revision}")
                aggregate, base = self.mapper.load(loaded), loaded
            try:
                result = change(aggregate)
            except Unchanged:
                return Done(aggregate, None, loaded or {}, repeated=True)
            doc = {**base, **self.mapper.dump(aggregate)}
            if message_id is not None:
                remember(doc, message_id, self.applied_field, self.memory)
            events = [*self.mapper.events(aggregate), *(reply(result) if reply is not None else ())]
            try:
                if loaded is None:
                    stored = await self.store.insert(doc, events)
                elif self.fields is None:
                    stored = await self.store.replace(doc, events)
                else:
                    assert isinstance(self.store, FieldStore)  # checked in __init__
                    written = (*self.fields, self.applied_field) if message_id is not None else self.fields
                    stored = await self.store.update(doc, written, events)
            except (ConcurrencyError, DuplicateKeyError):
                if expected_revision is not None:
                    raise RevisionMismatch(f"{self.name}/{doc_id} changed since revision {expected_revision}") \
                        from None
                continue
            return Done(aggregate, result, stored)
        raise ConcurrencyError(f"{self.name}/{doc_id}: too many concurrent changes")
