"""Closed cases leave the open ones (issue 14) on the real FerretDB: a case that ends moves from ``instances`` to
``closed_instances`` (and a summary to ``closed_summaries``), every reader still finds it, and a crash between
the two writes of the move (or before the first) neither loses nor duplicates it: the next start finishes it.

The engine runs in this process (as in test_engine_state.py); a crash is the process stopping between two writes,
which is what a SIGKILL leaves: the writes before it are in the database, the ones after it are not. The SIGKILL
of a real engine process during a burst is tests/integration/test_engine_chaos.py."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest

from process_engine.engine import Engine
from process_engine.repository import DefinitionRepository, InstanceRepository
from servicekit import zaakindex
from servicekit.envelope import new_event
from tests.integration.test_engine_state import FILES, START, T0, Clock, _drive
from tests.integration.test_engine_worklist import app  # noqa: F401  (the engine's API in this process)
from tests.support.tokens import ADMIN


@pytest.fixture
async def db(mongo, namespace):
    return mongo[f"{namespace}engine_closed".replace(".", "_")]


async def _engine(db: Any) -> Engine:
    """An engine process: a new one after a 'crash' shares only the database with the one before."""
    engine = Engine(DefinitionRepository(db), InstanceRepository(db), clock=Clock())
    await engine.instances.ensure_indexes()
    await engine.deploy(FILES, deployed_by="test")
    return engine


async def _where(db: Any, case_id: str) -> tuple[int, int, int]:
    """How often the case is in instances, closed_instances and closed_summaries."""
    return (await db.instances.count_documents({"_id": case_id}),
            await db.closed_instances.count_documents({"_id": case_id}),
            await db.closed_summaries.count_documents({"_id": case_id}))


async def _completed(engine: Engine, case_id: str) -> dict[str, Any]:
    """Drive the case to its end; no relay runs here, so its last write still holds events in its outbox and it
    waits in ``instances`` (the move waits for the relay), as it would until the relay published them."""
    await engine.handle_event(new_event(START, service="test", subject=case_id,
                                        data={"aanvraag_id": case_id, "bedrag": 120_000}))
    done = await _drive(engine, case_id, set())
    assert done["has_outbox"] and await _where(engine.instances.collection.database, case_id) == (1, 0, 0)
    return done


async def _relayed(db: Any, case_id: str) -> None:
    """What the relay does after publishing: the outbox cleared, the revision left alone."""
    await db.instances.update_one({"_id": case_id}, {"$set": {"outbox": [], "has_outbox": False}})


async def test_an_ended_case_moves_out_of_the_open_ones_and_is_still_found(db) -> None:
    engine = await _engine(db)
    done = await _completed(engine, "zaak-1")
    assert done["status"] == "completed"
    await _relayed(db, "zaak-1")
    assert await engine.finish_closing() == 1  # the timer poller's next tick
    assert await _where(db, "zaak-1") == (0, 1, 1)
    closed = await db.closed_instances.find_one({"_id": "zaak-1"})
    assert "outbox" not in closed and "views_behind" not in closed and closed["state"]  # the case, whole
    # the engine's readers: the case, its log, and a late message that must not start or revive it
    found = await engine.instances.store.get("zaak-1")
    assert found is not None and found["status"] == "completed"
    assert [j["what"] for j in (await engine.with_log(found))["journal"]][-1] == "afgerond"
    await engine.handle_event(new_event(START, service="test", subject="zaak-1",
                                        data={"aanvraag_id": "zaak-1", "bedrag": 120_000}))
    await engine.handle_event(new_event("ips.test.bevestigd.v1", service="test", subject="zaak-1", data={}))
    assert await _where(db, "zaak-1") == (0, 1, 1)
    # the case index reads the open cases' documents and the closed ones' summaries
    index = zaakindex.ZaakIndex()
    await index.lees(engine.instances.summaries, engine.instances.collection)
    assert [z["id"] for z in index.zoek({"status": "completed"}, zaakindex.Criteria(), 0, 10)[1]] == ["zaak-1"]


async def test_a_crash_between_the_two_writes_of_the_move_neither_loses_nor_duplicates_the_case(db) -> None:
    engine = await _engine(db)
    moves = engine.instances.move_closed

    async def crash_after_the_copy(doc: dict[str, Any]) -> bool:
        # the first write of the move (the copy and its summary), then the process is gone: no delete
        instances = engine.instances.collection
        engine.instances.collection = db["no_such_collection"]  # the delete reaches nothing
        try:
            await moves(doc)
        finally:
            engine.instances.collection = instances
        raise SystemExit("killed")

    await _completed(engine, "zaak-2")
    await _relayed(db, "zaak-2")
    engine.instances.move_closed = crash_after_the_copy  # type: ignore[method-assign]
    with pytest.raises(SystemExit):
        await engine.finish_closing()
    assert await _where(db, "zaak-2") == (1, 1, 1)  # in both for now; readers take the open one
    assert (await engine.instances.store.get("zaak-2"))["status"] == "completed"
    index = zaakindex.ZaakIndex()
    await index.lees(engine.instances.summaries, engine.instances.collection)
    assert index.zoek({}, zaakindex.Criteria(), 0, 10)[0] == 1  # one case, not two

    restarted = await _engine(db)
    assert await restarted.finish_closing(at_start=True) == 1
    assert await _where(db, "zaak-2") == (0, 1, 1)
    assert (await restarted.instances.store.get("zaak-2"))["status"] == "completed"


async def test_a_crash_after_the_last_write_before_the_move_is_finished_by_the_next_start(db) -> None:
    engine = await _engine(db)
    await _completed(engine, "zaak-3")
    await _relayed(db, "zaak-3")  # and then the process is gone, before the move
    assert await _where(db, "zaak-3") == (1, 0, 0)
    # a redelivered start event meanwhile finds the case (ended, not yet moved): no second case
    restarted = await _engine(db)
    await restarted.handle_event(new_event(START, service="test", subject="zaak-3",
                                           data={"aanvraag_id": "zaak-3", "bedrag": 120_000}))
    assert await _where(db, "zaak-3") == (0, 1, 1)  # and its handling moved it
    assert await restarted.finish_closing(at_start=True) == 0  # nothing left


async def test_a_case_whose_outbox_is_not_yet_published_moves_after_the_relay_cleared_it(db) -> None:
    engine = await _engine(db)
    await engine.handle_event(new_event(START, service="test", subject="zaak-4",
                                        data={"aanvraag_id": "zaak-4", "bedrag": 120_000}))
    # the events of the case's last write are still to be published: the move waits for the relay
    await engine.cancel("zaak-4", "beheerder")
    assert (await db.instances.find_one({"_id": "zaak-4"}))["has_outbox"]
    assert await engine.finish_closing(at_start=True) == 0
    assert await _where(db, "zaak-4") == (1, 0, 0)
    await db.instances.update_one({"_id": "zaak-4"}, {"$set": {"has_outbox": False, "outbox": []}})  # the relay
    assert await engine.finish_closing() == 1
    assert await _where(db, "zaak-4") == (0, 1, 1)


async def test_the_case_api_finds_a_closed_case_and_every_list_is_paged(app) -> None:  # noqa: F811
    engine: Engine = app.state.pe.engine
    for case_id in ("zaak-a", "zaak-b", "zaak-c"):
        await _completed(engine, case_id)
        await _relayed(engine.instances.collection.database, case_id)
    assert await engine.finish_closing() == 3
    await engine.deploy({**FILES, "test_process.bpmn": FILES["test_process.bpmn"] + b"<!-- v2 -->"},
                        deployed_by="test")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine") as client:
        shown = await client.get("/api/v1/zaken/zaak-a", headers=ADMIN)
        assert shown.status_code == 200 and shown.json()["status"] == "completed"
        # the case list before its index is read: the closed cases' summaries, page by page
        first = await client.get("/api/v1/zaken", params={"limit": 2}, headers=ADMIN)
        assert first.json()["totaal"] == 3 and len(first.json()["zaken"]) == 2
        rest = await client.get(first.links["next"]["url"], headers=ADMIN)
        assert len(rest.json()["zaken"]) == 1 and "next" not in rest.links
        assert {z["id"] for z in first.json()["zaken"] + rest.json()["zaken"]} == {"zaak-a", "zaak-b", "zaak-c"}
        # what the closed cases completed still counts in the version's statistics
        versions = await client.get("/api/v1/procesdefinities", params={"pageSize": 1}, headers=ADMIN)
        assert versions.status_code == 200 and [v["versie"] for v in versions.json()] == [1]
        later = await client.get(versions.links["next"]["url"], headers=ADMIN)
        assert [v["versie"] for v in later.json()] == [2] and "next" not in later.links
        statistics = await client.get(f"/api/v1/procesdefinities/{versions.json()[0]['hash']}/statistiek",
                                      headers=ADMIN)
        assert statistics.json()["zaken"] == 3
        # the migrations newest first, paged by the database (same time: by id)
        migraties = engine.instances.collection.database["migraties"]
        await migraties.insert_many([{"_id": f"m-{i}", "op": T0 + timedelta(minutes=min(i, 2)), "zaken": [],
                                      "doel_hash": "h", "process_id": "p", "door": "beheerder", "verplaatst": 0,
                                      "geblokkeerd": 0, "mislukt": 0} for i in range(4)])
        seen = []
        url: str | None = "/api/v1/migraties?pageSize=3"
        while url:
            answer = await client.get(url, headers=ADMIN)
            assert answer.status_code == 200, answer.text
            seen += [m["id"] for m in answer.json()]
            url = answer.links.get("next", {}).get("url")
        assert seen == ["m-2", "m-3", "m-1", "m-0"]
        for path in ("/api/v1/procesdefinities", "/api/v1/incidenten", "/api/v1/taken", "/api/v1/migraties"):
            assert (await client.get(path, params={"cursor": "geen-cursor"}, headers=ADMIN)).status_code == 400
            assert (await client.get(path, params={"pageSize": 501}, headers=ADMIN)).status_code == 400
