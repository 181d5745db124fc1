"""servicekit.unit_of_work against an in-memory store: once per message, revision-checked, events with the change."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from tests.support.memory import MemoryStore

from servicekit.broker import EVENTS
from servicekit.commands import COMMAND_COMPLETED, COMMAND_FAILED, Failure, apply_command
from servicekit.envelope import CloudEvent, new_event
from servicekit.store import ConcurrencyError, Document
from servicekit.unit_of_work import DOCUMENT, Events, Mapper, RevisionMismatch, Unchanged, UnitOfWork


@dataclass
class Teller:
    """A small aggregate: counts, refuses to go above a maximum, records an event per step."""

    id: str
    stand: int = 0
    maximum: int = 3
    nieuw: list[CloudEvent] = field(default_factory=list)

    def verhogen(self, met: int) -> int:
        if self.stand + met > self.maximum:
            raise ValueError("boven het maximum")
        self.stand += met
        self.nieuw.append(new_event("test.verhoogd.v1", service="test", subject=self.id, data={"stand": self.stand}))
        return self.stand


def _events(t: Teller) -> Events:
    taken, t.nieuw = t.nieuw, []
    return [(e, EVENTS) for e in taken]


TELLER = Mapper[Teller](load=lambda d: Teller(d["_id"], d["stand"]), dump=lambda t: {"_id": t.id, "stand": t.stand},
                        events=_events)


def command(subject: str = "t1", cid: str = "cmd-1") -> CloudEvent:
    return new_event("test.doe.v1", service="test", subject=subject, data={}, event_id=cid)


async def test_a_change_is_saved_with_its_events_and_message_id_and_a_repeat_changes_nothing() -> None:
    store = MemoryStore()
    uow = UnitOfWork(store, TELLER)
    done = await uow.run("t1", lambda t: t.verhogen(2), message_id="m1", create=lambda: Teller("t1"))
    assert (done.result, done.repeated, done.doc["revision"]) == (2, False, 1)
    assert store.docs["t1"]["applied"] == ["m1"] and store.outbox_types("t1") == ["test.verhoogd.v1"]

    again = await uow.run("t1", lambda t: t.verhogen(1), message_id="m1")
    assert again.repeated and again.result is None and again.aggregate.stand == 2
    assert store.docs["t1"]["revision"] == 1 and store.writes == 1

    third = await uow.run("t1", lambda t: t.verhogen(1), message_id="m2")
    assert third.aggregate.stand == 3 and store.docs["t1"]["applied"] == ["m1", "m2"]
    assert store.outbox_types("t1") == ["test.verhoogd.v1", "test.verhoogd.v1"]  # the unpublished one stays


async def test_a_revision_conflict_reloads_and_calls_the_aggregate_again_on_the_fresh_state() -> None:
    store = MemoryStore(docs={"t1": {"_id": "t1", "stand": 0, "revision": 1, "eigen": "blijft"}})
    conflicts = [1]

    def concurrently(s: MemoryStore, doc: Document) -> None:
        if conflicts:
            conflicts.pop()
            s.bump("t1", stand=2)  # someone else counted meanwhile

    store.before_replace = concurrently
    done = await UnitOfWork(store, TELLER).run("t1", lambda t: t.verhogen(1), message_id="m1")
    assert done.result == 3 and store.docs["t1"]["stand"] == 3 and store.docs["t1"]["revision"] == 3
    assert store.docs["t1"]["eigen"] == "blijft"  # a field the aggregate does not map survives
    assert len(store.outbox_types("t1")) == 1  # the events of the lost attempt are not written


async def test_a_refusal_writes_nothing_and_an_unknown_document_without_create_is_a_lookup_error() -> None:
    store = MemoryStore(docs={"t1": {"_id": "t1", "stand": 3, "revision": 1}})
    with pytest.raises(ValueError, match="maximum"):
        await UnitOfWork(store, TELLER).run("t1", lambda t: t.verhogen(1), message_id="m1")
    assert store.writes == 0 and "applied" not in store.docs["t1"]
    with pytest.raises(LookupError):
        await UnitOfWork(store, TELLER).run("onbekend", lambda t: t.verhogen(1))


async def test_expected_revision_is_a_mismatch_not_a_retry() -> None:
    store = MemoryStore(docs={"t1": {"_id": "t1", "stand": 0, "revision": 4}})
    uow = UnitOfWork(store, TELLER)
    with pytest.raises(RevisionMismatch):
        await uow.run("t1", lambda t: t.verhogen(1), expected_revision=3)
    store.before_replace = lambda s, doc: s.bump("t1")
    with pytest.raises(RevisionMismatch):
        await uow.run("t1", lambda t: t.verhogen(1), expected_revision=4)
    assert store.docs["t1"]["stand"] == 0


async def test_endless_conflicts_give_up() -> None:
    store = MemoryStore(docs={"t1": {"_id": "t1", "stand": 0, "revision": 1}})
    store.before_replace = lambda s, doc: s.bump("t1")
    with pytest.raises(ConcurrencyError):
        await UnitOfWork(store, TELLER, retries=3).run("t1", lambda t: t.verhogen(1))
    assert store.docs["t1"]["revision"] == 4


async def test_apply_command_answers_once_with_the_reply_in_the_outbox() -> None:
    store = MemoryStore()

    def apply(doc: Document) -> dict[str, Any] | Failure:
        doc["n"] = doc.get("n", 0) + 1
        return {"n": doc["n"]} if doc["n"] < 2 else Failure("X-1", "te vaak")

    doc = await apply_command(store, "z1", command(cid="c1"), "test", apply, create=lambda: {"_id": "z1"})
    again = await apply_command(store, "z1", command(cid="c1"), "test", apply)
    assert doc["n"] == again["n"] == 1 and store.outbox_types("z1") == [COMMAND_COMPLETED]
    await apply_command(store, "z1", command(cid="c2"), "test", apply)
    assert store.outbox_types("z1") == [COMMAND_COMPLETED, COMMAND_FAILED]
    assert store.docs["z1"]["outbox"][0]["id"] == "c1:antwoord"  # derived from the command: a re-run is the same
    silent = await UnitOfWork(store, DOCUMENT).run("z1", lambda d: None, message_id="c3")
    assert silent.doc["revision"] == 3 and len(store.outbox_types("z1")) == 2


async def test_apply_command_with_the_document_the_caller_read_reads_it_only_after_a_conflict() -> None:
    """grants' beschikking_opstellen reads the zaak for its decision and hands it on: no second read, unless
    someone wrote the zaak in between; then the change runs again on what is stored."""
    store = MemoryStore(docs={"z1": {"_id": "z1", "n": 0, "revision": 1}})

    def apply(doc: Document) -> dict[str, Any]:
        doc["n"] += 1
        return {"n": doc["n"]}

    gelezen = await store.get("z1")
    reads = store.reads
    doc = await apply_command(store, "z1", command(cid="c1"), "test", apply, current=gelezen)
    assert doc["n"] == 1 and store.reads == reads and store.docs["z1"]["revision"] == 2

    oud = await store.get("z1")
    store.bump("z1", n=10)  # another writer since the caller's read
    reads = store.reads
    doc = await apply_command(store, "z1", command(cid="c2"), "test", apply, current=oud)
    assert doc["n"] == 11 and store.reads == reads + 1 and store.docs["z1"]["applied"] == ["c1", "c2"]

    nieuw = await apply_command(store, "z2", command(cid="c3"), "test", apply, create=lambda: {"_id": "z2", "n": 5},
                                current=None)  # the caller found none: inserted without a read
    assert nieuw["n"] == 6 and store.reads == reads + 1


async def test_applied_ids_are_bounded() -> None:
    store = MemoryStore(docs={"t1": {"_id": "t1", "stand": 0, "revision": 1}})
    uow = UnitOfWork(store, TELLER, memory=2)
    for i in range(3):
        await uow.run("t1", lambda t: t.stand, message_id=f"m{i}")
    assert store.docs["t1"]["applied"] == ["m1", "m2"]


async def test_a_change_that_finds_nothing_to_do_writes_nothing() -> None:
    store = MemoryStore(docs={"t1": {"_id": "t1", "stand": 2, "revision": 1}})

    def alleen_hoger(t: Teller) -> int:
        if t.stand >= 2:
            raise Unchanged
        return t.verhogen(1)

    done = await UnitOfWork(store, TELLER).run("t1", alleen_hoger, message_id="m1")
    assert done.repeated and done.result is None and store.writes == 0 and "applied" not in store.docs["t1"]


async def test_a_document_the_caller_just_read_saves_the_first_read_and_a_conflict_reads_again() -> None:
    store = MemoryStore(docs={"t1": {"_id": "t1", "stand": 0, "revision": 1}})
    uow = UnitOfWork(store, TELLER)
    gelezen = await store.get("t1")
    done = await uow.run("t1", lambda t: t.verhogen(1), current=gelezen)
    assert (done.result, store.reads, store.docs["t1"]["revision"]) == (1, 1, 2)  # no read of its own
    stale = {"_id": "t1", "stand": 0, "revision": 1}
    done = await uow.run("t1", lambda t: t.verhogen(1), current=stale)  # out of date: the write misses, re-read
    assert (done.result, store.reads, store.docs["t1"]["stand"]) == (2, 2, 2)
    new = await uow.run("t2", lambda t: t.verhogen(3), current=None, create=lambda: Teller("t2"))
    assert new.result == 3 and store.reads == 2  # expected to be new: inserted without a read
    taken = await uow.run("t2", lambda t: t.verhogen(-1), current=None, create=lambda: Teller("t2"))
    assert taken.result == 2 and store.reads == 3  # it existed: the insert failed, the read found it


async def test_writing_some_fields_only_keeps_what_another_writer_set_without_the_revision() -> None:
    store = MemoryStore(docs={"kop": {"_id": "kop", "tot": 4, "bekend": 6, "revision": 7}})
    kop = UnitOfWork(store, DOCUMENT, fields=("tot",))
    gelezen = await store.get("kop")
    assert gelezen is not None
    store.touch("kop", bekend=9)  # raised by $max after our read; the revision stays 7

    def schuif(d: Document) -> int:
        d["tot"] = 5
        return 5

    done = await kop.run("kop", schuif, current=gelezen)
    assert store.docs["kop"] == {"_id": "kop", "tot": 5, "bekend": 9, "revision": 8}
    assert done.doc["revision"] == 8
    replaced = UnitOfWork(store, DOCUMENT)  # the whole document as read would have lowered it
    store.touch("kop", bekend=10)
    await replaced.run("kop", schuif, current={**store.docs["kop"], "bekend": 9})
    assert store.docs["kop"]["bekend"] == 9
    store.before_replace = lambda s, doc: s.bump("kop") if doc["revision"] == 9 else None
    again = await kop.run("kop", lambda d: d.update(tot=6), message_id="m1")  # a conflict retries, as replace does
    assert store.docs["kop"]["tot"] == 6 and store.docs["kop"]["applied"] == ["m1"] and again.doc["revision"] == 11
    with pytest.raises(TypeError):
        UnitOfWork(object(), DOCUMENT, fields=("tot",))  # type: ignore[arg-type]
