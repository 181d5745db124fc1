"""The engine's read models on the real FerretDB (issue 14): the open tasks, the work lists per organisation and
lane and the due timers are kept in step with the instances, are repaired after a crash between the two writes,
and the API reads them by _id: the task lookup and a work list page by page.

The engine runs in this process (as in test_engine_state.py) and its HTTP API through httpx's ASGI transport, so
every step is deterministic; the broker is not needed."""

from __future__ import annotations

from datetime import date
from typing import Any

import httpx
import pytest

from process_engine.api import create
from process_engine.bootstrap import EngineSettings
from process_engine.engine import Engine
from process_engine.readmodels import worklist_id
from servicekit.auth import install_verifier
from servicekit.envelope import new_event
from tests.integration.test_engine_state import FILES, START, Clock, _drive
from tests.support.tokens import ADMIN, bearer

ROERMOND = bearer("behandelaar-1", "gemeente", "0957", "behandelaar")
WEERT = bearer("behandelaar-2", "gemeente", "0988", "behandelaar")
LIST = worklist_id("gemeente", "0957", "behandelaar")
DECISION = {"akkoord": True, "toelichting": "Akkoord", "toegekend_bedrag": 100_000}


@pytest.fixture
async def app(settings_for):
    settings = settings_for("process_engine", EngineSettings, bpmn_dir="", catalogue_file="",
                            environment="development")
    application = create(settings)
    install_verifier(application, "development")  # what the lifespan does, which the ASGI transport skips
    engine: Engine = application.state.pe.engine
    engine.clock = Clock()
    await engine.instances.ensure_indexes()
    await engine.deploy(FILES, deployed_by="test")
    yield application
    await application.state.pe.runtime.client.close()


async def _to_user_task(engine: Engine, case_id: str, gemeente: str = "0957") -> dict[str, Any]:
    """Start a case of the test process and drive it (replies, confirmation, its 2 s timer, fired through the
    day bucket: ``fire_due_timers(scan=True)``) to its user task."""
    await engine.handle_event(new_event(START, service="test", subject=case_id,
                                        data={"aanvraag_id": case_id, "bedrag": 700_000, "gemeenteCode": gemeente}))
    return await _drive(engine, case_id, set(), until=lambda doc: bool(doc.get("user_tasks")))


async def test_read_models_follow_the_case_and_are_repaired_after_a_crash_between_the_writes(app):
    engine: Engine = app.state.pe.engine
    views = engine.instances.views
    doc = await _to_user_task(engine, "zaak-1")
    [task] = doc["user_tasks"]
    assert (await views.task(task["taskId"]))["case_id"] == "zaak-1"
    assert [e["zaakId"] for e in await views.worklist([LIST])] == ["zaak-1"]
    assert await views.worklist([worklist_id("gemeente", "0988", "behandelaar")]) == []
    assert not (await engine.instances.store.get("zaak-1")).get("views_behind")

    # A crash after the instance write that opened the task, before its read models were written: the instance
    # is as that write left it (marked; the task and the timer it set not yet synced: no hash, no timer_at), the
    # read models miss both. The repair at start puts them right.
    await engine.instances.collection.update_one({"_id": "zaak-1"}, {"$set": {
        "views_behind": True, f"view_tasks.{task['taskId']}.h": None, "timer_at": None}})
    await views.tasks.delete_one({"_id": task["taskId"]})
    await views.worklists.delete_many({})  # the list and its parts
    await views.timers.delete_many({})
    assert await views.repair() == 1
    assert (await views.task(task["taskId"]))["case_id"] == "zaak-1"
    assert [e["id"] for e in await views.worklist([LIST])] == [task["taskId"]]
    repaired = await engine.instances.store.get("zaak-1")
    assert not repaired.get("views_behind")
    # the task's 14-day boundary timer is back in the bucket of its day, where the poller looks for it
    assert repaired["next_timer_at"] is not None
    assert await views.due_cases(date(2026, 3, 1), repaired["next_timer_at"]) == (["zaak-1"], date(2026, 3, 16))

    await engine.complete_user_task("zaak-1", task["taskId"], DECISION, "behandelaar-1")
    assert await views.task(task["taskId"]) is None
    assert await views.worklist([LIST]) == []


async def test_the_work_list_is_paged_and_a_task_is_found_by_its_id(app):
    engine: Engine = app.state.pe.engine
    for i in range(3):
        await _to_user_task(engine, f"zaak-{i}")
    await _to_user_task(engine, "zaak-weert", gemeente="0988")
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://engine") as client:
        first = await client.get("/api/v1/taken", params={"pageSize": 2}, headers=ROERMOND)
        assert first.status_code == 200, first.text
        assert len(first.json()) == 2
        second = await client.get(first.links["next"]["url"], headers=ROERMOND)
        assert len(second.json()) == 1 and "next" not in second.links
        listed = first.json() + second.json()
        assert sorted(t["zaakId"] for t in listed) == ["zaak-0", "zaak-1", "zaak-2"]  # Weert's is not on it
        assert [t["zaakId"] for t in (await client.get("/api/v1/taken", headers=WEERT)).json()] == ["zaak-weert"]
        assert len((await client.get("/api/v1/taken", headers=ADMIN)).json()) == 4  # beheer sees every task
        bad = await client.get("/api/v1/taken", params={"cursor": "geen-cursor"}, headers=ROERMOND)
        assert bad.status_code == 400

        task_id = listed[0]["id"]
        shown = await client.get(f"/api/v1/taken/{task_id}", headers=ROERMOND)
        assert shown.status_code == 200 and shown.json()["zaakId"] == listed[0]["zaakId"]
        assert (await client.get(f"/api/v1/taken/{task_id}", headers=WEERT)).status_code == 403
        done = await client.post(f"/api/v1/taken/{task_id}/afronden", headers=ROERMOND,
                                 json={"gegevens": DECISION})
        assert done.status_code == 200, done.text
        assert (await client.get(f"/api/v1/taken/{task_id}", headers=ROERMOND)).status_code == 404
        left = (await client.get("/api/v1/taken", headers=ROERMOND)).json()
        assert sorted(t["zaakId"] for t in left) == sorted(t["zaakId"] for t in listed[1:])
