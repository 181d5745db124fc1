"""Published outbox entries leave with the aggregate's next write instead of a clear of their own (issue 14.3).

The relay used to clear every published outbox with a write of its own right after the broker confirmed, so an
aggregate written three times cost three clears on top of its three writes. Now the relay owes the clear for
``relay_clear_after_seconds``; the store leaves the confirmed entries out of the next write, and only what no
write took along is cleared by the relay. Counted with a pymongo command listener on the real FerretDB; both
tests fail on the code before (three clears; an ended case with a published outbox did not move).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import monitoring

from notifications.domain import BEZIG, TE_VERSTUREN
from notifications.repository import BerichtenRepository
from process_engine.engine import Engine
from process_engine.readmodels import ReadModels, plan, worklist_id
from process_engine.repository import DefinitionRepository, InstanceRepository
from servicekit.broker import EVENTS, Broker
from servicekit.envelope import new_event
from servicekit.relay import OutboxRelay
from servicekit.store import PUBLISHED, DocumentStore, outbox_entry
from tests.conftest import StartedListener, eventually, listened_client
from tests.integration.test_engine_state import FILES, START, Clock, _drive
from tests.integration.test_engine_worklist import DECISION
from tests.integration.test_relay import _listening


class Writes(StartedListener):
    """Counts write statements per collection and kind: insert, replace, clear (a ``$set`` of the outbox only,
    the relay's), other updates, delete."""

    def __init__(self) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        collection = str(event.command.get(name))
        if name == "insert":
            self.counts[(collection, "insert")] += len(event.command.get("documents") or [])
        elif name == "delete":
            self.counts[(collection, "delete")] += len(event.command.get("deletes") or [])
        elif name == "update":
            for statement in event.command.get("updates") or []:
                self.counts[(collection, _kind(statement.get("u")))] += 1


def _kind(update: Any) -> str:
    if not isinstance(update, dict) or not all(str(k).startswith("$") for k in update):
        return "replace"
    if set(update) == {"$set"} and set(update["$set"]) <= {"outbox", "has_outbox"}:
        return "clear"
    if set(update) == {"$set"} and "views_behind" in update["$set"]:
        return "mark"  # the engine's read models are synced (readmodels.ReadModels.sync)
    return "update"


@pytest.fixture
async def counted(infra: Any) -> Any:
    writes = Writes()
    async with listened_client(infra, writes) as client:
        yield client, writes


async def test_an_aggregate_written_again_takes_the_published_entries_along_and_the_relay_clears_once(
        settings_for, counted, namespace):
    client, writes = counted
    settings = settings_for("meeliften", relay_poll_seconds=60.0)  # no idle scan: only wakes and owed clears
    broker, _, received = await _listening(settings, "meeliften-probe", prefetch=10)
    store = DocumentStore(client[f"{namespace}meeliften".replace(".", "_")], "zaken")
    relay = OutboxRelay(broker, [store.collection])
    task = asyncio.create_task(relay.run())
    try:
        await asyncio.sleep(0.5)  # the start-up scan found nothing
        writes.counts.clear()
        events = [new_event(f"ips.test.stap{n}.v1", service="test", subject="z-1", event_id=f"m-{n}")
                  for n in range(3)]
        doc = await store.insert({"_id": "z-1", "stap": 0}, [(events[0], EVENTS)])
        relay.wake("z-1", store.collection, written=doc)
        for n in (1, 2):  # written again once the previous event is out, as a case's next step is
            async def out(n: int = n) -> bool:
                return f"m-{n - 1}" in received

            await eventually(out, timeout=15, what=f"event m-{n - 1} published")
            doc = await store.replace({**doc, "stap": n}, [(events[n], EVENTS)])
            assert [entry["id"] for entry in doc["outbox"]] == [f"m-{n}"], "the published entry rode along"
            relay.wake("z-1", store.collection, written=doc)

        async def settled() -> bool:
            stored = await store.get("z-1")
            return stored is not None and not stored["has_outbox"] and "m-2" in received

        await eventually(settled, timeout=20, what="the last event published and its entry cleared")
        await asyncio.sleep(0.5)
        assert sorted(received) == ["m-0", "m-1", "m-2"]  # each once
        stored = await store.get("z-1")
        assert stored is not None and stored["revision"] == 3 and stored["outbox"] == []  # the ETag as written
        assert writes.counts == Counter({("zaken", "insert"): 1, ("zaken", "replace"): 2, ("zaken", "clear"): 1}), \
            writes.counts  # before: a clear after each of the three writes
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await broker.close()


async def test_an_ended_case_whose_commands_went_out_moves_without_clearing_its_outbox_first(counted, namespace):
    client, writes = counted
    repo = InstanceRepository(client[f"{namespace}meeliften_engine".replace(".", "_")])
    command = new_event("ips.test.opdracht.v1", service="process_engine", subject="zaak-1", event_id="c-1")
    doc = {"_id": "zaak-1", "status": "completed", "process_id": "p", "definition_hash": "h", "revision": 4,
           "started_at": datetime(2026, 1, 1, tzinfo=UTC), "variables": {}, "views_behind": False,
           "outbox": [outbox_entry(command, "ips.commands")], "has_outbox": True}
    await repo.collection.insert_one(doc)
    assert not await repo.move_closed(doc), "not while the broker has not confirmed the command"
    PUBLISHED.remember(repo.collection, "zaak-1", "c-1")  # what the engine's relay records on the confirm
    writes.counts.clear()
    assert await repo.move_closed(doc)
    assert await repo.collection.find_one({"_id": "zaak-1"}) is None
    closed = await repo.closed.find_one({"_id": "zaak-1"})
    assert closed is not None and "outbox" not in closed
    assert writes.counts == Counter({("closed_instances", "replace"): 1, ("closed_summaries", "replace"): 1,
                                     ("instances", "delete"): 1}), writes.counts  # no clear, no second try



async def test_the_read_models_mark_rides_along_the_next_write_and_an_ended_case_moves_without_it(
        counted, namespace):
    """With a relay in the process the engine owes the mark that a case's read models are synced to the relay (as
    an outbox clear); the case's next write takes it along, so no write of its own is left (before: one after
    each write that changed a task or a timer). Then the ended case, its commands confirmed, moves without a mark
    or an outbox clear first."""
    client, writes = counted
    db = client[f"{namespace}meeliften_views".replace(".", "_")]
    engine = Engine(DefinitionRepository(db), InstanceRepository(db), clock=Clock())
    await engine.instances.ensure_indexes()
    await engine.deploy(FILES, deployed_by="test")
    PUBLISHED.attach(lambda: None, 600.0)  # as a running relay does (nothing falls due during the test)
    try:
        writes.counts.clear()
        await engine.handle_event(new_event(START, service="test", subject="zaak-v", data={
            "aanvraag_id": "zaak-v", "bedrag": 700_000, "gemeenteCode": "0957"}))
        doc = await _drive(engine, "zaak-v", set(), until=lambda d: bool(d.get("user_tasks")))
        [task] = doc["user_tasks"]
        assert (await engine.instances.views.task(task["taskId"]))["case_id"] == "zaak-v"
        assert not doc.get("views_behind"), "the case as read: its read models are synced"
        await engine.complete_user_task("zaak-v", task["taskId"], DECISION, "behandelaar-1")
        done = await _drive(engine, "zaak-v", set())
        assert await engine.instances.views.task(task["taskId"]) is None
        assert writes.counts[("instances", "mark")] == 0, writes.counts  # before: 4
        assert writes.counts[("instances", "replace")] >= 5, writes.counts  # the case's own writes took them
        for entry in done["outbox"]:  # what the relay records when the broker confirms
            PUBLISHED.remember(engine.instances.collection, "zaak-v", entry["id"])
        before = writes.counts.copy()
        assert await engine.finish_closing() == 1
        assert await engine.instances.collection.find_one({"_id": "zaak-v"}) is None
        assert (await engine.instances.store.get("zaak-v"))["status"] == "completed"
        assert writes.counts - before == Counter({("closed_instances", "replace"): 1,
                                                  ("closed_summaries", "replace"): 1, ("instances", "delete"): 1})
    finally:
        PUBLISHED.detach()
        PUBLISHED.take_due(None)


async def test_the_senders_claim_of_a_letter_takes_its_published_event_along(counted, namespace):
    """notifications' sender claims a new letter a moment after it was stored, with a write of its own (not the
    store's): that write takes the event the broker confirmed out of the outbox, so the relay owes no clear."""
    client, writes = counted
    repo = BerichtenRepository(client[f"{namespace}meeliften_berichten".replace(".", "_")])
    now = datetime.now(UTC)
    event = new_event("ips.test.bericht.v1", service="notifications", subject="zaak-b", event_id="b-event")
    await repo.berichten.insert({"_id": "b-1", "status": TE_VERSTUREN, "volgende_poging": now}, [(event, EVENTS)])
    PUBLISHED.remember(repo.collection, "b-1", "b-event")  # the relay's confirm
    writes.counts.clear()
    claimed = await repo.claim("b-1", "token-1", now, now + timedelta(minutes=5))
    assert claimed is not None and claimed["outbox"] == [] and claimed["revision"] == 2
    stored = await repo.get("b-1")
    assert stored is not None and stored["status"] == BEZIG and stored["outbox"] == [] and not stored["has_outbox"]
    assert writes.counts == Counter({("berichten", "update"): 1}), writes.counts  # the claim, nothing to clear


async def test_a_task_removed_by_an_earlier_sync_of_the_case_is_not_removed_again(counted, namespace):
    """Two replies of one case at once: the second write read the case while the first one's sync was under way,
    so it still lists the task that write removed, and its sync removed it a second time (a task delete and a
    work-list $unset per case in bench_ips). The process remembers what it removed."""
    client, writes = counted
    views = ReadModels(client[f"{namespace}meeliften_taken".replace(".", "_")])
    since = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
    task = {"taskId": "t-1", "elementId": "beoordelen", "name": "Beoordelen", "lane": "behandelaar", "since": since}
    opened: dict[str, Any] = {"_id": "zaak-t", "revision": 1, "status": "running",
                              "variables": {"gemeenteCode": "0957"}, "user_tasks": [task]}
    plan(opened)
    await views.sync(opened)
    assert (await views.task("t-1"))["case_id"] == "zaak-t"
    done = {**opened, "revision": 2, "user_tasks": []}  # the task completed: its write lists it, to remove
    plan(done)
    racing = {**done, "revision": 3}  # read the case before the sync of ``done`` cleared its mark
    plan(racing)
    await views.sync(done)
    assert await views.task("t-1") is None
    writes.counts.clear()
    await views.sync(racing)
    assert writes.counts[("tasks", "delete")] == 0 and writes.counts[("worklists", "update")] == 0, writes.counts
    assert await views.worklist([worklist_id("gemeente", "0957", "behandelaar")]) == []


async def test_a_mark_the_repair_owes_and_a_clear_of_the_same_revision_clear_the_outbox_too(
        settings_for, counted, namespace):
    """Found by the chaos campaign (two engine replicas, SIGKILLs): after a restart the read models' repair synced
    a case from a projection without its outbox and owed the mark with that projection; the relay's clear of the
    same revision merged into it computed the outbox to write from the projection, so the statement set the mark
    and left the published commands in the outbox for good (no relay clears them again)."""
    client, writes = counted
    db = client[f"{namespace}meeliften_herstel".replace(".", "_")]
    views = ReadModels(db)
    command = new_event("ips.test.opdracht.v1", service="process_engine", subject="zaak-r", event_id="c-r")
    doc = {"_id": "zaak-r", "revision": 3, "status": "running", "variables": {}, "user_tasks": [],
           "views_behind": True, "view_tasks": {}, "timer_days": [], "view_hash": "x",
           "outbox": [outbox_entry(command, "ips.commands")], "has_outbox": True}
    await views.instances.insert_one(doc)
    relay = OutboxRelay(Broker(settings_for("meeliften-herstel")), [views.instances])  # not running: driven here
    PUBLISHED.attach(lambda: None, 600.0)  # as the running relay does
    try:
        assert await views.repair() == 1  # a restarted engine: the mark is owed, not written
        # the relay's start-up scan publishes the command (the broker confirms) and owes its clear
        PUBLISHED.remember(views.instances, "zaak-r", "c-r")
        PUBLISHED.owe(views.instances, await views.instances.find_one({"_id": "zaak-r"}), {"c-r"})
        writes.counts.clear()
        assert await relay.clear_owed(everything=True) == 1
        stored = await views.instances.find_one({"_id": "zaak-r"})
        assert stored["outbox"] == [] and not stored["has_outbox"] and not stored["views_behind"]
        assert stored["revision"] == 3
        assert writes.counts == Counter({("instances", "mark"): 1}), writes.counts  # one statement for both
    finally:
        PUBLISHED.detach()
        PUBLISHED.take_due(None)


async def test_a_redelivered_message_hands_the_commands_its_lost_write_stored_to_the_relay(counted, namespace):
    """Found by test_connection_cuts (answers of FerretDB dropped): a write that went through but whose answer was
    lost is retried; the redelivery finds its message applied and changed nothing, but the commands that write put
    in the outbox never reached the relay, which waited for its idle scan (minutes in the engine) while the case
    waited for them. The redelivery now hands the case to the relay."""
    client, _ = counted
    db = client[f"{namespace}meeliften_verloren".replace(".", "_")]
    engine = Engine(DefinitionRepository(db), InstanceRepository(db), clock=Clock())
    await engine.instances.ensure_indexes()
    await engine.deploy(FILES, deployed_by="test")
    handed: list[tuple[str, list[str]]] = []
    engine.on_outbox = lambda case_id, doc: handed.append((case_id, [e["id"] for e in doc["outbox"]]))
    start = new_event(START, service="test", subject="zaak-l", data={"aanvraag_id": "zaak-l", "bedrag": 700_000,
                                                                      "gemeenteCode": "0957"})
    await engine.handle_event(start)
    [(case_id, commands)] = handed
    assert case_id == "zaak-l" and commands
    handed.clear()  # as if the write's answer had been lost: the relay never got the case
    await engine.handle_event(start)  # the redelivery
    assert handed == [("zaak-l", commands)]
