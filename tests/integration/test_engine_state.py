"""The engine's instance documents on the real FerretDB since issue 14: the state without its spec, the
journal and history appended (and moved to the case log in buckets) instead of rewritten, and an instance
document stored in the format from before still upgrades and finishes.

The Engine runs in this process against the real database (as in tests/perf/bench_engine.py); replies,
the confirmation and the timer are driven by hand, so every step is deterministic."""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from bson.binary import Binary

from process_engine import engine as engine_module
from process_engine import runtime as rt
from process_engine.engine import COMMAND_COMPLETED, Engine
from process_engine.repository import DefinitionRepository, InstanceRepository, public_variables
from servicekit.envelope import new_event
from tests.unit.test_engine_state import WITH_SPEC

BPMN_DIR = Path(__file__).resolve().parents[1] / "bpmn"
FILES = {name: (BPMN_DIR / name).read_bytes() for name in ("test_process.bpmn", "test_decision.dmn")}
START, CONFIRMED = "ips.test.gestart.v1", "ips.test.bevestigd.v1"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def engine(mongo, namespace):
    db = mongo[f"{namespace}engine_state".replace(".", "_")]
    clock = Clock()
    eng = Engine(DefinitionRepository(db), InstanceRepository(db), clock=clock)
    await eng.instances.ensure_indexes()
    await eng.deploy(FILES, deployed_by="test")
    return eng


async def _drive(engine: Engine, case_id: str, answered: set[str],
                 until: Callable[[dict[str, Any]], bool] = lambda doc: doc["status"] == "completed") -> dict[str, Any]:
    """Answer every command, confirm, let the timer fire, until the case is completed (or ``until`` holds)."""
    clock: Callable[[], datetime] = engine.clock
    for _ in range(20):
        doc = await engine.instances.store.get(case_id)
        assert doc is not None
        if until(doc):
            return doc
        open_ = [o for o in doc.get("outbox", []) if o["id"] not in answered]
        for entry in open_:
            answered.add(entry["id"])
            reply = new_event(COMMAND_COMPLETED, service="test", subject=case_id,
                              data={"dossier_nummer": "D-1", "kenmerk": "K-1"}, event_id=f"reply-{entry['id']}")
            await engine.handle_event(reply.model_copy(update={"causationid": entry["id"]}))
        if open_:
            continue
        if CONFIRMED in doc["waiting_messages"]:
            await engine.handle_event(new_event(CONFIRMED, service="test", subject=case_id, data={"bevestigd": True}))
        elif doc.get("next_timer_at") is not None:
            assert isinstance(clock, Clock)
            clock.now = doc["next_timer_at"] + timedelta(seconds=1)
            assert await engine.fire_due_timers(scan=True) == 1
        else:
            raise AssertionError(f"{case_id} is stuck: {doc['active_elements']}")
    raise AssertionError(f"{case_id} did not complete")


async def _start(engine: Engine, case_id: str) -> None:
    await engine.handle_event(new_event(START, service="test", subject=case_id,
                                        data={"aanvraag_id": case_id, "bedrag": 120_000}))


def _whats(doc: dict[str, Any]) -> list[str]:
    return [j["what"] for j in doc["journal"]]


async def test_a_case_stores_a_spec_less_state_and_appends_its_log(engine: Engine) -> None:
    await _start(engine, "zaak-1")
    started = await engine.instances.store.get("zaak-1")
    assert started is not None and bytes(started["state"]).startswith(rt.STATE_FORMAT)
    assert [e["seq"] for e in started["journal"] + started["history"]] == list(range(1, started["log_seq"] + 1))
    done = await _drive(engine, "zaak-1", set())
    full = await engine.with_log(done)
    workflow = rt.deserialize(await engine.parsed(done["definition_hash"]), bytes(done["state"]))
    assert [h["elementId"] for h in full["history"]] == [h.element_id for h in rt.history(workflow)]
    assert _whats(full)[0] == "gestart" and _whats(full)[-1] == "afgerond"
    assert _whats(full).count("timer afgegaan") == 1 and _whats(full).count("opdracht voltooid") == 3
    assert "seq" not in full["journal"][0] and "seq" not in full["history"][0]
    assert await engine.instances.log_of("zaak-1") == []  # a short case keeps its log in the document


async def test_long_logs_move_to_the_case_log_in_buckets_and_read_back_whole(engine: Engine,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    await _start(engine, "kort")
    whole = await engine.with_log(await _drive(engine, "kort", set()))
    monkeypatch.setattr(engine_module, "LOG_TAIL_MAX", 4)
    await _start(engine, "lang")
    done = await _drive(engine, "lang", set())
    buckets = await engine.instances.log_of("lang")
    assert len(buckets) >= 2 and all(b["case_id"] == "lang" for b in buckets)
    tail = done["journal"] + done["history"]
    assert len(tail) < len(whole["journal"]) + len(whole["history"])
    moved = [e["seq"] for b in buckets for e in b["journal"] + b["history"]]
    assert sorted(moved + [e["seq"] for e in tail]) == list(range(1, done["log_seq"] + 1))  # each entry once
    read = await engine.with_log(done)
    assert _whats(read) == _whats(whole)
    assert [h["elementId"] for h in read["history"]] == [h["elementId"] for h in whole["history"]]

    # a bucket written twice (a worker that lost the race and wrote an overlapping one) reads back once
    first = buckets[0]
    await engine.instances.append_log({**first, "_id": f"lang/{1:09d}-{2:09d}",
                                       "journal": [e for e in first["journal"] if e["seq"] <= 2],
                                       "history": [e for e in first["history"] if e["seq"] <= 2]})
    await engine.instances.append_log(first)  # the same bucket again: stored once
    assert len(await engine.instances.log_of("lang")) == len(buckets) + 1
    assert await engine.with_log(done) == read


async def test_an_instance_document_stored_before_issue_14_upgrades_and_finishes(engine: Engine) -> None:
    """The document exactly as the engine wrote it before: gzipped state with its spec, the whole history,
    a journal without numbers."""
    parsed = rt.parse_definition(FILES)
    event = new_event(START, service="test", subject="oud", data={"aanvraag_id": "oud", "bedrag": 120_000})
    with rt.use_clock(T0):
        workflow, result = rt.start_instance(parsed, START, dict(event.data), case_id="oud")
    [command] = result.commands
    old_state = WITH_SPEC.serialize_json(workflow, use_gzip=True)
    assert "spec" in json.loads(gzip.decompress(old_state))
    old = {"_id": "oud", "process_id": parsed.process_id, "definition_hash": parsed.content_hash,
           "status": "running", "started_at": T0, "kept": [], "incidents": [],
           "journal": [{"at": T0, "what": "gestart", "message": START}], "applied": [event.id],
           "correlation_id": event.id, "state": Binary(old_state),
           "active_elements": rt.active_element_ids(workflow), "waiting_messages": result.waiting_messages,
           "next_timer_at": result.next_timer_at, "timer_lease_until": None, "user_tasks": [],
           "has_user_tasks": False, "variables": public_variables(rt.case_variables(workflow)),
           "history": [{"elementId": h.element_id, "name": h.name, "endedAt": h.ended_at}
                       for h in rt.history(workflow)],
           "updated_at": T0, "revision": 1, "has_outbox": True,
           "outbox": [{"id": command.command_id, "exchange": "ips.commands", "routing_key": command.command_type,
                       "body": "{}"}]}
    await engine.instances.collection.insert_one(old)
    old_history = [h["elementId"] for h in old["history"]]
    assert await engine.with_log(await engine.instances.store.get("oud")) is not None  # readable as it is

    done = await _drive(engine, "oud", set())
    assert bytes(done["state"]).startswith(rt.STATE_FORMAT) and len(done["state"]) < len(old_state)
    full = await engine.with_log(done)
    assert _whats(full)[:2] == ["gestart", "opdracht voltooid"] and _whats(full)[-1] == "afgerond"
    history = [h["elementId"] for h in full["history"]]
    assert history[:len(old_history)] == old_history and len(history) == len(set(history))
    assert history == [h.element_id for h in rt.history(rt.deserialize(parsed, bytes(done["state"])))]
