"""A work list's entries spread over several documents (process_engine/readmodels.py ``worklist_part``), on the
real server: many open tasks of one gemeente are all on its list, none in one document of them all, a task that
ends or moves leaves its part, and a list written before the spread is still read and emptied as its tasks
change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from process_engine.readmodels import WORKLIST_SPREAD, ReadModels, plan, worklist_id, worklist_part

SINCE = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LIST = worklist_id("gemeente", "0957", "behandelaar")


def _task(i: int, claimed: str | None = None) -> dict[str, Any]:
    return {"taskId": f"taak-{i}", "elementId": "beoordelen", "name": "Aanvraag beoordelen", "lane": "behandelaar",
            "since": SINCE, "claimedBy": claimed}


async def _write(views: ReadModels, doc: dict[str, Any]) -> dict[str, Any]:
    """Write a case and sync its read models, as the engine does."""
    doc["revision"] = doc.get("revision", 0) + 1
    plan(doc)
    await views.instances.replace_one({"_id": doc["_id"]}, doc, upsert=True)
    await views.sync(doc)
    return doc


def _case(i: int, gemeente: str = "0957", **task: Any) -> dict[str, Any]:
    return {"_id": f"zaak-{i}", "status": "running", "user_tasks": [_task(i, **task)],
            "variables": {"gemeenteCode": gemeente}}


async def test_the_open_tasks_of_one_gemeente_are_spread_and_all_on_its_list(mongo, namespace):
    views = ReadModels(mongo[f"{namespace}engine_werklijst".replace(".", "_")])
    docs = [await _write(views, _case(i)) for i in range(60)]

    whole = await views.worklists.find_one({"_id": LIST})
    parts = {worklist_part(LIST, f"taak-{i}") for i in range(60)}
    assert {f"{LIST}/{p}" for p in whole["delen"]} == parts and len(parts) > WORKLIST_SPREAD // 2
    assert "e" not in whole  # the list's own document lists the parts only
    stored = [(await views.worklists.find_one({"_id": p}))["e"] for p in parts]
    assert sum(map(len, stored)) == 60 and max(map(len, stored)) < 60
    assert all(isinstance(entry, bytes) for part in stored for entry in part.values())  # packed: one value each
    assert sorted(e["id"] for e in await views.worklist([LIST])) == sorted(f"taak-{i}" for i in range(60))

    # a claim changes the entry in its part; an ended case leaves; a case that moves to Weert moves its task
    docs[0]["user_tasks"] = [_task(0, claimed="behandelaar-1")]
    await _write(views, docs[0])
    docs[1]["status"] = "completed"
    await _write(views, docs[1])
    docs[2]["variables"] = {"gemeenteCode": "0988"}
    await _write(views, docs[2])
    shown = {e["id"]: e for e in await views.worklist([LIST])}
    assert len(shown) == 58 and "taak-1" not in shown and "taak-2" not in shown
    assert shown["taak-0"]["geclaimdDoor"] == "behandelaar-1"
    weert = worklist_id("gemeente", "0988", "behandelaar")
    assert [e["id"] for e in await views.worklist([weert])] == ["taak-2"]
    assert (await views.worklists.find_one({"_id": worklist_part(LIST, "taak-2")}))["e"].get("taak-2") is None


async def test_a_list_written_before_the_spread_is_still_read_and_emptied(mongo, namespace):
    views = ReadModels(mongo[f"{namespace}engine_werklijst_oud".replace(".", "_")])
    # as the engine stored it before: the entries in the list's own document, the instances naming the list
    old = [_case(i) for i in range(3)]
    await views.worklists.insert_one({"_id": LIST, "e": {f"taak-{i}": {"id": f"taak-{i}", "zaakId": f"zaak-{i}"}
                                                         for i in range(3)}})
    for doc in old:
        plan(doc)
        doc.update(revision=1, views_behind=False, view_tasks={
            doc["user_tasks"][0]["taskId"]: {"lists": [LIST], "h": "from-before"}})
        await views.instances.insert_one(doc)
    assert sorted(e["id"] for e in await views.worklist([LIST])) == ["taak-0", "taak-1", "taak-2"]

    old[0]["user_tasks"] = [_task(0, claimed="behandelaar-1")]  # a change moves the entry into its part
    old[1]["status"] = "completed"  # an end removes it from the list's own document
    for doc in old[:2]:
        await _write(views, doc)
    whole = await views.worklists.find_one({"_id": LIST})
    assert sorted(whole["e"]) == ["taak-2"] and whole["delen"] == [worklist_part(LIST, "taak-0").rsplit("/")[1]]
    shown = {e["id"]: e for e in await views.worklist([LIST])}
    assert sorted(shown) == ["taak-0", "taak-2"] and shown["taak-0"]["geclaimdDoor"] == "behandelaar-1"
    stored = await views.instances.find_one({"_id": "zaak-0"})
    assert stored["view_tasks"]["taak-0"]["lists"] == [worklist_part(LIST, "taak-0")]
