"""An open case's document is stored packed (``process_engine.packed.INSTANCE_PACKING``) on the real FerretDB:
its state, journal, history, user tasks and variables in one binary field, what filters and partial updates
name left as fields; every reader sees the plain document, and documents written before the packing still read
and are packed by their next write."""

from __future__ import annotations

from typing import Any

import pytest

from process_engine.engine import Engine
from process_engine.packed import INSTANCE_PACKING
from process_engine.repository import DefinitionRepository, InstanceRepository
from servicekit import zaakindex
from servicekit.store import DocumentStore, Packing
from tests.integration.test_engine_state import FILES, Clock, _drive, _start, _whats

PACKED = INSTANCE_PACKING.fields
#: What the relay, the read models' marks, the timer lease and the filters of the case list and the
#: incidents read or write as fields.
LEFT_AS_FIELDS = {"_id", "process_id", "definition_hash", "status", "revision", "outbox", "has_outbox",
                  "active_elements", "incidents", "next_timer_at", "started_at", "views_behind", "view_tasks",
                  "timer_days", "timer_at"}


async def _engine(mongo: Any, namespace: str, name: str) -> Engine:
    db = mongo[f"{namespace}{name}".replace(".", "_")]
    engine = Engine(DefinitionRepository(db), InstanceRepository(db), clock=Clock())
    await engine.deploy(FILES, deployed_by="test")
    return engine


async def test_a_case_is_stored_packed_and_read_plain(mongo: Any, namespace: str) -> None:
    engine = await _engine(mongo, namespace, "packing")
    await _start(engine, "zaak-1")
    raw = await engine.instances.collection.find_one({"_id": "zaak-1"})
    assert raw is not None
    assert not PACKED & set(raw), PACKED & set(raw)
    assert LEFT_AS_FIELDS - {"views_behind", "view_tasks", "timer_days", "timer_at", "next_timer_at"} <= set(raw)
    assert isinstance(raw[INSTANCE_PACKING.into], bytes)

    doc = await engine.instances.store.get("zaak-1")
    assert doc is not None and INSTANCE_PACKING.into not in doc
    assert {"state", "journal", "history", "variables", "user_tasks", "applied"} <= set(doc)
    assert doc["started_at"].tzinfo is not None and all(e["at"].tzinfo is not None for e in doc["journal"])
    # what the engine kept of its own write is what a read gives (the workflow cache trusts that)
    written = engine.workflows.take_written("zaak-1")
    assert written is not None and written[0] == doc

    done = await engine.with_log(await _drive(engine, "zaak-1", set()))
    assert done["status"] == "completed" and "opdracht voltooid" in _whats(done)


async def test_a_document_written_before_the_packing_reads_as_it_is_and_is_packed_by_its_next_write(
        mongo: Any, namespace: str) -> None:
    engine = await _engine(mongo, namespace, "packing_old")
    await _start(engine, "zaak-2")
    plain = await engine.instances.store.get("zaak-2")
    assert plain is not None
    await engine.instances.collection.replace_one({"_id": "zaak-2"}, plain)  # as stored before the packing
    assert "journal" in (await engine.instances.collection.find_one({"_id": "zaak-2"}) or {})
    engine.workflows.take_written("zaak-2")  # forget the kept copy: the next message reads the case

    raw_seen: list[set[str]] = []
    replace = engine.instances.collection.replace_one

    async def seen(query: Any, doc: Any, *args: Any, **kwargs: Any) -> Any:
        raw_seen.append(set(doc))
        return await replace(query, doc, *args, **kwargs)

    engine.instances.collection.replace_one = seen  # type: ignore[method-assign]
    done = await engine.with_log(await _drive(engine, "zaak-2", set()))
    assert done["status"] == "completed" and "opdracht voltooid" in _whats(done)
    assert raw_seen and all(INSTANCE_PACKING.into in k and not PACKED & k for k in raw_seen)


async def test_the_repair_the_case_index_and_the_running_list_read_packed_cases(
        mongo: Any, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    # the test process has no allow-list of visible variables: the index shows them all here
    monkeypatch.setattr(zaakindex, "zichtbare_variabelen", lambda _process, _role, variables: dict(variables))
    engine = await _engine(mongo, namespace, "packing_readers")
    await _start(engine, "zaak-3")
    doc = await engine.instances.store.get("zaak-3")
    assert doc is not None and doc["variables"]

    index = zaakindex.ZaakIndex()
    await index.lees(engine.instances.summaries, engine.instances.collection, packing=INSTANCE_PACKING)
    assert index.zaken["zaak-3"]["variabelen"] == zaakindex.samenvatting(doc)["variabelen"] != {}
    unpacked_blind = zaakindex.ZaakIndex()  # a reader that forgets the packing sees no variables: the check bites
    await unpacked_blind.lees(engine.instances.collection)
    assert unpacked_blind.zaken["zaak-3"]["variabelen"] == {}

    # a crash after the write, before the read models: the repair reads the packed case and syncs it
    await engine.instances.collection.update_one({"_id": "zaak-3"}, {"$set": {"views_behind": True}})
    assert await engine.instances.views.repair() == 1
    assert not (await engine.instances.store.get("zaak-3") or {}).get("views_behind")

    found = await engine.instances.find_with_closed({"_id": "zaak-3"}, {"history": 1, "active_elements": 1})
    assert [d["history"] for d in found] == [doc["history"]]


async def test_an_update_of_a_packed_field_rewrites_the_body_and_keeps_the_rest(mongo: Any, namespace: str) -> None:
    db = mongo[f"{namespace}packing_update".replace(".", "_")]
    store = DocumentStore(db, "docs", packing=Packing(frozenset({"a", "b"})))
    first = await store.insert({"_id": "d", "a": [1, 2], "b": {"x": "y"}, "c": 1})
    changed = await store.update({**first, "a": [3], "c": 2}, ["a"])
    raw = await store.collection.find_one({"_id": "d"})
    assert raw is not None and set(raw) == {"_id", "body", "c", "revision", "outbox", "has_outbox"}
    assert raw["c"] == 1  # not among the fields updated: what the database holds
    assert await store.get("d") == {**changed, "c": 1} and changed["a"] == [3] and changed["b"] == {"x": "y"}
