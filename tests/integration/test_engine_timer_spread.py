"""The engine's due timers spread over several documents per day (process_engine/readmodels.py ``timer_bucket``),
on the real server: many cases due on one day are found by the poller, none in one document of them all, and a
day written before the spread is still read and emptied as its cases move."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from process_engine.readmodels import TIMER_SPREAD, ReadModels, plan, timer_bucket

DAY = datetime(2027, 1, 25, 23, 59, 59, tzinfo=UTC)


async def _case(views: ReadModels, case_id: str, due: datetime, **stored: Any) -> dict[str, Any]:
    """A running case with a timer due at ``due``, written and synced as the engine does."""
    doc: dict[str, Any] = {"_id": case_id, "status": "running", "revision": 1, "next_timer_at": due,
                           "user_tasks": [], "variables": {}, **stored}
    plan(doc)
    await views.instances.replace_one({"_id": case_id}, doc, upsert=True)
    await views.sync(doc)
    return doc


async def test_the_cases_of_one_day_are_spread_and_all_found_when_due(mongo, namespace):
    views = ReadModels(mongo[f"{namespace}engine_timers".replace(".", "_")])
    cases = [f"zaak-{i}" for i in range(60)]
    for k, case_id in enumerate(cases):
        await _case(views, case_id, DAY - timedelta(minutes=k))

    day = await views.timers.find_one({"_id": "2027-01-25"})
    parts = {timer_bucket(DAY, c) for c in cases}
    assert {f"2027-01-25/{p}" for p in day["delen"]} == parts and len(parts) > TIMER_SPREAD // 2
    sizes = [len((await views.timers.find_one({"_id": p}))["c"]) for p in parts]
    assert sum(sizes) == 60 and max(sizes) < 60
    assert "c" not in day  # the day's own document lists the parts only

    due, cursor = await views.due_cases(date(2027, 1, 20), DAY - timedelta(minutes=30))
    assert sorted(due) == sorted(cases[30:]) and cursor == date(2027, 1, 25)
    due, _ = await views.due_cases(date(2027, 1, 20), DAY)
    assert sorted(due) == sorted(cases)

    # a case whose timer moves leaves its part of the old day
    moved = await views.instances.find_one({"_id": "zaak-0"})
    moved.update(next_timer_at=DAY + timedelta(days=3), revision=2)
    plan(moved)
    await views.instances.replace_one({"_id": "zaak-0"}, moved)
    await views.sync(moved)
    due, _ = await views.due_cases(date(2027, 1, 20), DAY)
    assert "zaak-0" not in due and len(due) == 59
    assert (await views.due_cases(date(2027, 1, 26), DAY + timedelta(days=3)))[0] == ["zaak-0"]


async def test_a_day_written_before_the_spread_is_still_read_and_emptied(mongo, namespace):
    views = ReadModels(mongo[f"{namespace}engine_timers_oud".replace(".", "_")])
    # as the engine stored it before: the case in the day's own document, the instance naming the day
    await views.timers.insert_one({"_id": "2027-01-25", "c": {"zaak-oud": DAY}})
    old = {"_id": "zaak-oud", "status": "running", "revision": 3, "next_timer_at": DAY, "user_tasks": [],
           "variables": {}, "timer_days": ["2027-01-25"], "timer_at": DAY, "views_behind": False}
    await views.instances.insert_one(old)
    assert (await views.due_cases(date(2027, 1, 25), DAY))[0] == ["zaak-oud"]

    old.update(next_timer_at=DAY + timedelta(hours=-1), revision=4)
    plan(old)
    assert old["timer_days"] == sorted(["2027-01-25", timer_bucket(DAY, "zaak-oud")])
    await views.instances.replace_one({"_id": "zaak-oud"}, old)
    await views.sync(old)
    assert (await views.timers.find_one({"_id": "2027-01-25"})).get("c") == {}
    assert (await views.due_cases(date(2027, 1, 25), DAY))[0] == ["zaak-oud"]  # now from its part
    assert (await views.instances.find_one({"_id": "zaak-oud"}))["timer_days"] == [timer_bucket(DAY, "zaak-oud")]
