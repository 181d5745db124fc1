"""The benchmark's fast path for history (tests/perf/bench_ips.py): copies of a case's documents get fresh ids,
the same fresh id for the same old id in every document of one copy, and stay valid BSON."""

from __future__ import annotations

import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

import bson
import pytest
from tests.perf.bench_ips import (
    _bucket_256,
    _copy_raw,
    _grow,
    _grow_buckets,
    _grow_ledger_window,
    _grow_parts,
    _remap,
    _timer_part,
    _worklist_part,
)

from payments.grootboek import post_id
from process_engine.readmodels import packed_entry, timer_bucket, unpacked_entry, worklist_part

CASE = "3f1c2a9e-8b7d-4c6e-9a1b-2c3d4e5f6a7b"
BESCHIKKING = "a45ed7b5-6db2-4b5a-b348-33c70fd5c7e4"
EVENT = "525f582c6bcf40b7be623cc04d9177a3"


def instance() -> dict:
    return {"_id": CASE, "revision": 7, "at": datetime(2026, 6, 1, tzinfo=UTC),
            "beschikking": {"id": BESCHIKKING, "kenmerk": f"IPS-0957-2026-{BESCHIKKING[:8].upper()}"},
            "applied": [EVENT], "state": bson.Binary(zlib.compress(CASE.encode() * 3, 1))}


def test_a_copy_has_new_ids_mapped_the_same_way_in_every_document_and_stays_valid_bson() -> None:
    copied = bson.decode(_copy_raw(bson.encode(instance()), "c1"))
    other_doc = bson.decode(_copy_raw(bson.encode({"_id": f"{CASE}/000000001-000000064", "case_id": CASE}), "c1"))
    new_case = copied["_id"]
    assert new_case != CASE and uuid.UUID(new_case)
    assert other_doc == {"_id": f"{new_case}/000000001-000000064", "case_id": new_case}
    new_b = copied["beschikking"]["id"]
    assert new_b != BESCHIKKING and copied["beschikking"]["kenmerk"] == f"IPS-0957-2026-{new_b[:8].upper()}"
    assert len(copied["applied"][0]) == 32 and copied["applied"][0] != EVENT
    assert copied["revision"] == 7 and copied["at"] == datetime(2026, 6, 1)
    # the compressed workflow state is Spiff's own and is left as it was
    assert bytes(copied["state"]) == bytes(instance()["state"])


def test_copies_differ_from_each_other_and_the_text_form_maps_like_the_bson_form() -> None:
    first = bson.decode(_copy_raw(bson.encode(instance()), "c1"))["_id"]
    second = bson.decode(_copy_raw(bson.encode(instance()), "c2"))["_id"]
    assert first != second
    assert _remap(CASE, {}, "c1") == first


def test_a_shared_document_gets_the_entries_of_every_copy_next_to_the_templates() -> None:
    other = "0b9e3d44-1c2f-4a8b-9e7d-6f5a4b3c2d1e"
    ledger = {"_id": "ips-gemeenten-2023:2026", "beschikbaar_cents": 100,
              "reserveringen": {CASE: {"bedrag": 5}, other: {"bedrag": 6}}, "log": [{"zaak": CASE}, {"zaak": other}]}
    grown = _grow(ledger, {CASE, other}, [(CASE, "c1"), (CASE, "c2"), (other, "c3")])
    assert grown["beschikbaar_cents"] == 100
    assert len(grown["reserveringen"]) == 5 and len(grown["log"]) == 5
    assert grown["reserveringen"][_remap(CASE, {}, "c2")] == {"bedrag": 5}
    assert {"zaak": _remap(other, {}, "c3")} in grown["log"]


class _Buckets:
    """Records replace_one calls: the pure logic of spreading entries over buckets, no server."""

    def __init__(self) -> None:
        self.docs: dict[str, dict] = {}

    async def replace_one(self, filter_: dict, doc: dict, upsert: bool = False) -> None:
        assert upsert and filter_ == {"_id": doc["_id"]}
        self.docs[doc["_id"]] = doc

    async def update_one(self, filter_: dict, update: dict, upsert: bool = False) -> None:
        assert upsert and list(update) == ["$addToSet"]
        doc = self.docs.setdefault(filter_["_id"], {"_id": filter_["_id"]})
        for field_, spec in update["$addToSet"].items():
            doc[field_] = sorted(set(doc.get(field_, [])) | set(spec["$each"]))


async def test_the_copies_of_ledger_entries_go_to_the_bucket_of_their_own_id() -> None:
    lid = "ips-gemeenten-2023:2026"
    template = {"_id": f"{lid}/{_bucket_256(CASE)}", "ledger": lid, "versie": 3,
                "reserveringen": {CASE: {"bedragCents": 5}}, "financieel": {CASE: {"betaald_cents": 1}}}
    buckets = _Buckets()
    copies = [(CASE, f"c{k}") for k in range(40)]
    written = await _grow_buckets(buckets, [template], {CASE}, copies)
    assert written == len(buckets.docs) > 10  # 41 ids over 256 buckets
    found = {}
    for doc in buckets.docs.values():
        for aid, entry in doc["reserveringen"].items():
            assert doc["_id"] == f"{lid}/{_bucket_256(aid)}" and entry == {"bedragCents": 5}
            found[aid] = doc
    assert set(found) == {CASE} | {_remap(CASE, {}, salt) for _, salt in copies}
    assert buckets.docs[template["_id"]]["versie"] == 3  # level with the ledger's head
    assert all("versie" not in d for i, d in buckets.docs.items() if i != template["_id"])


async def test_the_copies_of_a_days_timers_go_to_the_part_of_their_own_case() -> None:
    due = datetime(2027, 1, 25, 23, 59, 59, tzinfo=UTC)
    template = {"_id": timer_bucket(due, CASE), "c": {CASE: due}}
    timers = _Buckets()
    copies = [(CASE, f"c{k}") for k in range(40)]
    written = await _grow_parts(timers, [template], {CASE}, copies, "c", _timer_part)
    parts = {i: d for i, d in timers.docs.items() if "/" in i}
    assert written == len(parts) > 8  # 41 cases over 64 parts
    assert {f"2027-01-25/{p}" for p in timers.docs["2027-01-25"]["delen"]} == set(parts)
    found = {case: part for part, d in parts.items() for case in d["c"]}
    assert set(found) == {CASE} | {_remap(CASE, {}, salt) for _, salt in copies}
    assert all(part == timer_bucket(due, case) for case, part in found.items())


def test_an_entry_keyed_by_an_id_of_one_case_is_grown_with_that_case() -> None:
    order = "42fcc1f4f4e5533ab8fd0fc81feabfe8"  # a payment order of CASE: its documents hold this id
    ledger = {"_id": "12345678", "boekingen": {f"{order}:besteld": {"rijk": {"besteld": 5}}}, "revision": 3}
    grown = _grow(ledger, {CASE}, [(CASE, "c1"), (CASE, "c2")], {order: CASE})
    assert len(grown["boekingen"]) == 3 and grown["revision"] == 3
    assert grown["boekingen"][f"{_remap(order, {}, 'c2')}:besteld"] == {"rijk": {"besteld": 5}}
    assert len(_grow(ledger, {CASE}, [(CASE, "c1")])["boekingen"]) == 1  # without owners: named by no case


class _Posts:
    """Records insert_many calls into ``grootboekposten``: the pure logic of the ledger's copy, no server."""

    def __init__(self) -> None:
        self.docs: dict[str, dict] = {}

    def __getitem__(self, name: str) -> _Posts:
        assert name == "grootboekposten"
        return self

    async def insert_many(self, docs: list[dict], ordered: bool = True) -> None:
        assert not ordered
        for doc in docs:
            self.docs[doc["_id"]] = doc


async def test_the_copies_of_a_ggz_ledgers_bookings_go_to_the_moved_bookings_and_the_window_stays() -> None:
    order = "42fcc1f4f4e5533ab8fd0fc81feabfe8"
    ledger = {"_id": "12345678", "indeling": "venster", "tijdperk": 2,
              "boekingen": {f"{order}:besteld": {"rijk": {"besteld": 5}}, "o-other:besteld": {}}}
    posts = _Posts()
    assert await _grow_ledger_window(posts, ledger, {CASE}, [(CASE, "c1"), (CASE, "c2")], {order: CASE}) == 2
    new = f"{_remap(order, {}, 'c2')}:besteld"
    assert set(posts.docs) == {post_id("12345678", f"{_remap(order, {}, s)}:besteld") for s in ("c1", "c2")}
    assert posts.docs[post_id("12345678", new)] == {"_id": post_id("12345678", new), "kvk": "12345678",
                                                      "sleutel": new, "boeking": {"rijk": {"besteld": 5}}}


@pytest.mark.parametrize("packed", [False, True], ids=["entries as documents", "entries packed"])
async def test_the_copies_of_a_work_lists_tasks_go_to_the_part_of_their_own_task(packed: bool) -> None:
    task = "9b2e4f7a-1c3d-4e5f-8a9b-0c1d2e3f4a5b"  # the task of CASE: its documents hold this id
    lijst = "gemeente:0957:behandelaar"
    entry: Any = {"id": task, "zaakId": CASE}
    template = {"_id": worklist_part(lijst, task), "e": {task: packed_entry(entry) if packed else entry}}
    lists = _Buckets()
    copies = [(CASE, f"c{k}") for k in range(40)]
    written = await _grow_parts(lists, [template], {CASE}, copies, "e", _worklist_part, {task: CASE})
    parts = {i: d for i, d in lists.docs.items() if "/" in i}
    assert written == len(parts) > 8  # 41 tasks over 16 parts
    assert {f"{lijst}/{p}" for p in lists.docs[lijst]["delen"]} == set(parts)
    found = {key: (part, unpacked_entry(entry, bson.DEFAULT_CODEC_OPTIONS)) for part, d in parts.items()
             for key, entry in d["e"].items()}
    assert all(isinstance(e, bytes) == packed for d in parts.values() for e in d["e"].values())
    assert set(found) == {task} | {_remap(task, {}, salt) for _, salt in copies}
    for key, (part, entry) in found.items():
        assert part == worklist_part(lijst, key) and entry["id"] == key  # the entry's ids remapped with its key
    assert {entry["zaakId"] for _, entry in found.values()} == {CASE} | {_remap(CASE, {}, s) for _, s in copies}
