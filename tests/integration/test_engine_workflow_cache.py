"""The engine keeps the workflow it last wrote per case (``engine.WorkflowCache``) and skips the restore when the
next message finds that state stored, on the real FerretDB: a case runs to the same end with and without the
cache, a state another process wrote in between is restored instead, and an attempt whose write lost keeps
nothing. The Engine runs in this process (as in tests/integration/test_engine_state.py), driven by hand."""

from __future__ import annotations

from typing import Any

import pytest

from process_engine import runtime as rt
from process_engine.engine import COMMAND_COMPLETED, Engine, WorkflowCache
from process_engine.repository import DefinitionRepository, InstanceRepository
from servicekit.envelope import new_event
from servicekit.store import ConcurrencyError
from tests.integration.test_engine_state import CONFIRMED, FILES, Clock, _drive, _start, _whats


async def _engine(mongo: Any, namespace: str, name: str, cache: bool = True) -> Engine:
    db = mongo[f"{namespace}{name}".replace(".", "_")]
    eng = Engine(DefinitionRepository(db), InstanceRepository(db), clock=Clock())
    if not cache:
        eng.workflows = WorkflowCache(size=0)
    await eng.deploy(FILES, deployed_by="test")
    return eng


@pytest.fixture
def restores(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The states the engine restored (``rt.deserialize`` calls), counted."""
    calls: list[str] = []
    deserialize = rt.deserialize

    def counted(parsed: rt.ParsedDefinition, blob: bytes) -> Any:
        calls.append(parsed.process_id)
        return deserialize(parsed, blob)

    monkeypatch.setattr(rt, "deserialize", counted)
    return calls


async def _reply(engine: Engine, case_id: str) -> None:
    """Answer the command the case's last write sent (as its service would)."""
    doc = await engine.instances.store.get(case_id)
    assert doc is not None and doc["outbox"]
    command = doc["outbox"][-1]["id"]
    reply = new_event(COMMAND_COMPLETED, service="test", subject=case_id,
                      data={"dossier_nummer": "D-1", "kenmerk": "K-1"}, event_id=f"reply-{command}")
    await engine.handle_event(reply.model_copy(update={"causationid": command}))


async def test_a_case_runs_to_the_same_end_with_the_kept_workflow_as_with_a_restore_per_message(
        mongo: Any, namespace: str, restores: list[str]) -> None:
    kept = await _engine(mongo, namespace, "cache_on")
    await _start(kept, "zaak-1")
    done_kept = await kept.with_log(await _drive(kept, "zaak-1", set()))
    restored_with_cache = len(restores)

    fresh = await _engine(mongo, namespace, "cache_off", cache=False)
    await _start(fresh, "zaak-1")
    done_fresh = await fresh.with_log(await _drive(fresh, "zaak-1", set()))
    restored_without = len(restores) - restored_with_cache

    # without the cache every message restores; with it none does (one process, nobody else writes the case)
    assert restored_without >= 5 and restored_with_cache == 0
    assert done_kept["status"] == done_fresh["status"] == "completed"
    assert _whats(done_kept) == _whats(done_fresh)
    assert [h["elementId"] for h in done_kept["history"]] == [h["elementId"] for h in done_fresh["history"]]
    assert done_kept["variables"] == done_fresh["variables"]
    assert kept.workflows._kept == {}  # a case that ended keeps nothing


async def test_a_state_another_process_wrote_is_restored_not_taken_from_the_cache(
        mongo: Any, namespace: str, restores: list[str]) -> None:
    first = await _engine(mongo, namespace, "replicas")
    second = Engine(first.definitions, first.instances, clock=first.clock)  # a replica on the same database
    await _start(first, "zaak-2")  # the first keeps the workflow of the state it wrote
    await _reply(second, "zaak-2")  # the second restores it and writes the next state
    assert len(restores) == 1
    # what the first kept is stale now: it must restore what the second wrote, which waits for the confirmation
    await first.handle_event(new_event(CONFIRMED, service="test", subject="zaak-2", data={"bevestigd": True}))
    assert len(restores) == 2
    doc = await first.instances.store.get("zaak-2")
    assert doc is not None
    # the stale workflow (still at the command) would have kept the message as one nothing waits for
    assert "bericht ontvangen" in _whats(doc) and "bericht bewaard" not in _whats(doc)
    assert "Task_bevestiging" not in doc["active_elements"]


async def test_an_attempt_whose_write_lost_leaves_no_workflow_behind(
        mongo: Any, namespace: str, restores: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    engine = await _engine(mongo, namespace, "lost")
    await _start(engine, "zaak-3")
    replace = engine.instances.store.replace
    lost: list[int] = []

    async def loses_once(doc: dict[str, Any], events: Any = ()) -> dict[str, Any]:
        if not lost:
            lost.append(doc["revision"])
            raise ConcurrencyError("another writer won")
        return await replace(doc, events)

    monkeypatch.setattr(engine.instances.store, "replace", loses_once)
    await _reply(engine, "zaak-3")
    # the first attempt used the kept workflow and changed it; its write lost, so the retry restored the state
    assert lost and len(restores) == 1
    doc = await engine.instances.store.get("zaak-3")
    assert doc is not None and _whats(doc).count("opdracht voltooid") == 1


async def _first_command(engine: Engine, case_id: str) -> str:
    doc = await engine.instances.collection.find_one({"_id": case_id})  # not through the store: not counted
    assert doc is not None and doc["outbox"]
    return str(doc["outbox"][-1]["id"])


async def test_a_message_after_this_process_wrote_the_case_is_applied_to_the_kept_document_without_a_read(
        mongo: Any, namespace: str, monkeypatch: pytest.MonkeyPatch) -> None:
    reads: dict[str, int] = {}
    for name, cache in (("reads_on", True), ("reads_off", False)):
        engine = await _engine(mongo, namespace, name, cache=cache)
        await _start(engine, "zaak-4")
        get = engine.instances.store.get
        counted: list[str] = []

        async def counting(doc_id: str, get: Any = get, counted: list[str] = counted) -> Any:
            counted.append(doc_id)
            return await get(doc_id)

        monkeypatch.setattr(engine.instances.store, "get", counting)
        # two messages: the command's answer (as its service would send it), then the confirmation it waits for
        command = await _first_command(engine, "zaak-4")
        reply = new_event(COMMAND_COMPLETED, service="test", subject="zaak-4",
                          data={"dossier_nummer": "D-1", "kenmerk": "K-1"}, event_id=f"reply-{command}")
        await engine.handle_event(reply.model_copy(update={"causationid": command}))
        await engine.handle_event(new_event(CONFIRMED, service="test", subject="zaak-4", data={"bevestigd": True}))
        reads[name] = len(counted)
        doc = await engine.instances.collection.find_one({"_id": "zaak-4"})  # as stored: packed (INSTANCE_PACKING)
        assert doc is not None and "journal" not in doc
        doc = engine.instances.store.unpacked(doc)
        assert {"opdracht voltooid", "bericht ontvangen"} <= set(_whats(doc))
    assert reads == {"reads_on": 0, "reads_off": 2}


async def test_the_kept_document_is_what_a_read_of_the_case_would_give(mongo: Any, namespace: str) -> None:
    engine = await _engine(mongo, namespace, "kept_doc")
    await _start(engine, "zaak-5")
    await _reply(engine, "zaak-5")
    stored = await engine.instances.collection.find_one({"_id": "zaak-5"})
    written = engine.workflows.take_written("zaak-5")
    assert written is not None and stored is not None
    stored = engine.instances.store.unpacked(stored)
    # the read models' mark (set after the write, leaving the revision alone) included
    assert stored["views_behind"] is False
    assert written[0] == stored


async def test_entries_this_processs_relay_cleared_do_not_come_back_with_a_write_of_the_kept_document(
        mongo: Any, namespace: str) -> None:
    engine = await _engine(mongo, namespace, "kept_clear")
    await _start(engine, "zaak-6")
    collection = engine.instances.collection
    doc = await collection.find_one({"_id": "zaak-6"})
    assert doc is not None
    sent = [entry["id"] for entry in doc["outbox"]]
    # as this process's relay does once the broker confirmed: remembered, then cleared without raising the revision
    for event_id in sent:
        engine.instances.store.published.remember(collection, "zaak-6", event_id)
    cleared = await collection.update_one({"_id": "zaak-6", "revision": doc["revision"]},
                                          {"$set": {"outbox": [], "has_outbox": False}})
    assert cleared.matched_count == 1
    reply = new_event(COMMAND_COMPLETED, service="test", subject="zaak-6",
                      data={"dossier_nummer": "D-1", "kenmerk": "K-1"}, event_id=f"reply-{sent[-1]}")
    await engine.handle_event(reply.model_copy(update={"causationid": sent[-1]}))
    after = await engine.instances.store.get("zaak-6")
    assert after is not None and after["revision"] == doc["revision"] + 1
    assert "opdracht voltooid" in _whats(after)
    assert not set(sent) & {entry["id"] for entry in after["outbox"]}
