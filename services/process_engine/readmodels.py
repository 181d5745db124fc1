"""Read models of the engine, each read by ``_id``: FerretDB v1 turns only an ``{_id: …}`` filter into SQL and
decodes every document of the collection for any other filter, so a hot path that filtered the instances (the
task lookup, the work list, the due timers) got slower with every case ever handled (issue 14).

- ``tasks``: one document per open user task, ``_id`` the task id: the case it belongs to and its work-list entry.
- ``worklists``: per organisation and lane (``gemeente:0957:behandelaar``) the entries of its open tasks by task
  id, spread over up to ``WORKLIST_SPREAD`` documents by a hash of the task id (``<list>/<part>``), and the list's
  own document listing the parts in use (``delen``). A work list is a read of the list and its parts, whatever the
  history; spread, because FerretDB v1 decodes a map of n entries in n² steps (2,000 open tasks of one gemeente:
  440 ms under the write lock for each change of its list). Lists written before the spread hold entries in the
  list's own document, which is still read, and emptied as those tasks change.
- ``timers``: the cases with a timer due on a UTC day (case → due time), spread over up to ``TIMER_SPREAD``
  documents per day by a hash of the case id (``<day>/<part>``), and the day's own document listing the parts in
  use (``delen``). The poller reads the days from its cursor up to today: a day, not a minute, so that moving
  the rehearsal clock years ahead costs a read per day rather than per minute; spread, because many cases can
  share a day (a regulation's deadline, trajectories that end on the first of a month), and FerretDB v1 decodes
  a map of n cases in n² steps (20,000 cases on one day: 1.1 s under the write lock for each timer set there;
  with 16 parts, 2,000 cases on one day still cost 12 ms a write, so 64). A day lists only the parts in use, so a
  day of a few cases costs a read or two.
  Days written before the spread hold their cases in the day's own document, which is still read.

The instance document stays the truth. Every instance write records in the same write what its read models must
become (``views_behind``, ``view_tasks``: every task id the read models may still list, with its work lists,
``timer_days``); :meth:`ReadModels.sync` applies that after the write (set and unset by key: idempotent, so
doing it twice is harmless) and then clears the mark with a revision-checked write that leaves the revision
alone. A crash between the two writes leaves the mark: the next write of the case carries it forward and
syncs again, and the engine's start repairs every marked case (:meth:`ReadModels.repair`).

That clear is not a write of its own when the process runs a relay (issue 14.3): it is owed to the relay like an
outbox clear (``servicekit.store.Published``), so the engine's next write of the case takes it along
(``InstanceStore.get`` hands the case out with the mark cleared), or the relay sets it in the statement that
clears the case's published commands, or the move of an ended case makes it moot; only a case that is not
written again within ``relay_clear_after_seconds`` gets a write of the relay's own.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import zlib
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

from bson import BSON, Binary
from bson.codec_options import CodecOptions
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from process_engine.packed import INSTANCE_PACKING
from servicekit.logging import get_logger
from servicekit.store import PUBLISHED, Document, Published

log = get_logger(__name__)

#: The organisation type a lane's work belongs to: a role alone is not enough (a ggz token with the role
#: "behandelaar" must never decide its own application).
LANE_ORGANISATIONS: Final = {"behandelaar": "gemeente", "ggz-instelling": "ggz", "uwv": "uwv",
                             "uwv-behandelaar": "uwv"}
#: Variables that tie a case to an organisation: a caller of that organisation type must match them.
ORGANISATION_VARIABLES: Final = {"gemeente": "gemeenteCode", "ggz": "ggzKvkNummer"}
#: The case variable the diagram sets to "uwv" when UWV decides the case (ips-cmd-2019, from grants' toetsing).
BESLUITVORMER: Final = "besluitvormer"
#: The organisation of UWV's work lists: UWV is one organisation, whatever a token's ``org`` says.
UWV: Final = "UWV"
#: The document in ``timers`` that holds the poller's cursor (the first day that may still hold due timers).
TIMER_CURSOR: Final = "cursor"
_VIEW_FIELDS: Final = ("views_behind", "view_tasks", "timer_days", "view_hash", "timer_at")
#: What the repair reads of an instance (not its state, journal or history).
_REPAIR_FIELDS: Final = {k: 1 for k in ("revision", "status", "user_tasks", "variables", "next_timer_at",
                                        "outbox", *_VIEW_FIELDS)}
#: The note in ``readmodel_state`` that the read models were built for the cases stored before them.
BUILT: Final = "built"
#: How many cases a process remembers the last synced revision of.
_SYNCED_MEMORY: Final = 10_000


def variable(variables: Mapping[str, Any], name: str) -> Any:
    """A case variable, or one level down (message variables hold the event data)."""
    if name in variables:
        return variables[name]
    for value in variables.values():
        if isinstance(value, dict) and name in value:
            return value[name]
    return None


def worklist_ids(lane: str | None, variables: Mapping[str, Any]) -> list[str]:
    """The work lists a task is on: one per organisation that may work on it (``org_type:org:lane``). A lane
    with an organisation type (``LANE_ORGANISATIONS``) is on that organisation's list only; a lane without one
    on the list of every organisation the case names."""
    lane_key = (lane or "").lower()
    owners: list[tuple[str, str]] = []
    for org_type, name in ORGANISATION_VARIABLES.items():
        value = variable(variables, name)
        if value is not None:
            owners.append((org_type, str(value)))
    if variables.get(BESLUITVORMER) == "uwv":
        owners.append(("uwv", UWV))
    wanted = LANE_ORGANISATIONS.get(lane_key)
    return [worklist_id(org_type, org, lane_key) for org_type, org in owners if wanted in (None, org_type)]


def worklist_id(org_type: str, org: str, lane: str) -> str:
    return f"{org_type}:{org}:{lane.lower()}"


#: Over how many documents the entries of one work list are spread (``worklist_part``).
WORKLIST_SPREAD: Final = 16


def worklist_part(list_id: str, task_id: str) -> str:
    """The document in ``worklists`` that holds a task's entry on a work list: the list and a part by the task."""
    return f"{list_id}/{zlib.crc32(task_id.encode()) % WORKLIST_SPREAD:x}"


def task_documents(task_id: str, lane: str | None, variables: Mapping[str, Any]) -> list[str]:
    """The ``worklists`` documents a task's entry belongs in: a part of each work list it is on."""
    return [worklist_part(list_id, task_id) for list_id in worklist_ids(lane, variables)]


def task_entry(doc: Mapping[str, Any], task: Mapping[str, Any]) -> dict[str, Any]:
    """A task as a work list shows it (the API's TaskView): dates to sort on, no personal data."""
    variables = doc.get("variables") or {}
    raw = variables.get("aanvraag")
    aanvraag: Mapping[str, Any] = raw if isinstance(raw, dict) else {}
    return {"id": task["taskId"], "zaakId": doc["_id"], "elementId": task["elementId"], "naam": task.get("name"),
            "lane": task.get("lane"), "geclaimdDoor": task.get("claimedBy"), "sinds": task.get("since"),
            "ontvangenOp": aanvraag.get("ontvangenOp"), "beslisdatum": variables.get("beslisdatum"),
            "teLaat": variables.get("te_laat")}


def packed_entry(entry: Mapping[str, Any]) -> Binary:
    """A work list's entry as its part stores it: one binary (BSON) instead of ten values. FerretDB v1 decodes a
    part value by value at every change of one of its entries; measured for issue 14 with 125 entries a part, a
    change took 30 -> 8.5 ms and a read of a list's 16 parts 367 -> 112 ms."""
    return Binary(BSON.encode(entry))


def unpacked_entry(stored: Any, options: CodecOptions[Any]) -> dict[str, Any]:
    """An entry as :func:`packed_entry` stored it, or as stored before (a document)."""
    return BSON(stored).decode(codec_options=options) if isinstance(stored, bytes) else dict(stored)


def day_id(moment: datetime | date) -> str:
    return (moment.astimezone(UTC).date() if isinstance(moment, datetime) else moment).isoformat()


#: Over how many documents the timers of one day are spread (``timer_bucket``).
TIMER_SPREAD: Final = 64


def timer_bucket(moment: datetime, case_id: str) -> str:
    """The document in ``timers`` for a case's timer due at ``moment``: its day and a part by the case id."""
    return f"{day_id(moment)}/{zlib.crc32(case_id.encode()) % TIMER_SPREAD:x}"


def field_key(value: str) -> str:
    """A task or case id as a field name: no dots (a path) and no leading $ (an operator)."""
    return value.replace("%", "%25").replace(".", "%2E").replace("$", "%24")


def unfield_key(value: str) -> str:
    return value.replace("%24", "$").replace("%2E", ".").replace("%25", "%")


def plan(doc: Document) -> None:
    """Record in ``doc`` (about to be written) what its read models must become; call after every change.

    Marks the document behind when what the read models would show differs from what the last write recorded
    (a hash), or when the last write's sync never finished. ``view_tasks`` keeps every task id the read models
    may still hold, with its work lists and the hash of the entry last synced (None: never), and ``timer_days``
    every timers document that may still name the case (``timer_bucket``; a day before the spread), so that the
    sync removes what is gone even after a crash and writes only what changed.
    """
    running = doc.get("status") == "running"
    variables = doc.get("variables") or {}
    tasks = {t["taskId"]: (task_entry(doc, t), task_documents(t["taskId"], t.get("lane"), variables))
             for t in (doc.get("user_tasks") or [])} if running else {}
    due = doc.get("next_timer_at") if running else None
    digest = _digest([tasks, due])
    if not doc.get("views_behind") and doc.get("view_hash") == digest:
        return
    listed: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (doc.get("view_tasks") or {}).items()}
    for task_id, (_entry, lists) in tasks.items():
        known = listed.setdefault(task_id, {"lists": [], "h": None})
        known["lists"] = sorted(set(known["lists"]) | set(lists))
    days = set(doc.get("timer_days") or [])
    if due is not None:
        days.add(timer_bucket(due, str(doc["_id"])))
    doc.update(views_behind=True, view_tasks=listed, timer_days=sorted(days), view_hash=digest)


def _digest(value: Any) -> str:
    shown = json.dumps(value, sort_keys=True, default=_stored_form)
    return hashlib.sha1(shown.encode(), usedforsecurity=False).hexdigest()


def _stored_form(value: Any) -> str:
    """A time as MongoDB keeps it (milliseconds, UTC), so a value read back hashes like the one written."""
    if isinstance(value, datetime):
        value = value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
        return str(value.replace(microsecond=value.microsecond // 1000 * 1000).isoformat())
    return str(value)


async def _with_parts(collection: AsyncCollection[Document], whole_id: str) -> list[Document]:
    """A spread document (a work list, a day of timers) and the parts it lists in ``delen``, each read by ``_id``,
    the parts at once; the whole itself may still hold entries written before the spread. Missing ones left out."""
    whole = await collection.find_one({"_id": whole_id}) or {}
    parts = await asyncio.gather(*(collection.find_one({"_id": f"{whole_id}/{part}"})
                                   for part in whole.get("delen") or []))
    return [whole, *(p for p in parts if p is not None)]


class ReadModels:
    def __init__(self, db: AsyncDatabase[Document], published: Published | None = None) -> None:
        #: Where the mark's clear is owed to the relay (see the module docstring); the instances' store's ledger.
        self.published = PUBLISHED if published is None else published
        self.tasks = db["tasks"]
        self.worklists = db["worklists"]
        self.timers = db["timers"]
        self.instances = db["instances"]
        self.state = db["readmodel_state"]
        # Two writes of one case in this process may finish their syncs out of order: the older one must not
        # overwrite the newer one's entries (another process's sync is ordered by the next write or the repair).
        self._locks: dict[str, asyncio.Lock] = {}
        self._synced: dict[str, int] = {}
        # The tasks of a case whose entries this process removed. A write that read the case while its sync was
        # under way (two replies of one case at once) still lists the task, and its sync removed it a second
        # time: about one task delete and one work-list $unset per case (bench_ips). A task id never comes back.
        self._removed: dict[str, set[str]] = {}
        self._cursor_set = False
        #: parts (of a day's timers, of a work list) this process has listed in their whole's ``delen`` (never
        #: unlisted: a part that holds nothing any more costs a read of it; forgotten by ``repair``)
        self._listed_buckets: set[str] = set()

    async def ensure_indexes(self) -> None:
        # Read by _id only; this index is for the start-up repair on MongoDB (FerretDB ignores it).
        await self.instances.create_index("views_behind", sparse=True)

    async def sync(self, doc: Document, again: bool = False) -> dict[str, Any] | None:
        """Bring the read models in line with ``doc`` as stored (see the module docstring), then clear its mark.
        Returns the mark set (or owed to the relay) on ``doc``'s revision; None if nothing was synced.

        Idempotent: every write sets or unsets a key to what ``doc`` says. A newer write of the case makes the
        clear miss; that write carries the mark and syncs itself. A revision this process synced before is not
        synced again (its mark may still be owed to the relay), unless ``again`` (the repair: its plan says what
        the read models miss, whatever this process did before).
        """
        if not doc.get("views_behind"):
            return None
        case_id = doc["_id"]
        lock = self._locks.setdefault(case_id, asyncio.Lock())
        async with lock:
            synced = self._synced.get(case_id, 0)
            if synced > doc["revision"] or (synced == doc["revision"] and not again):
                # a newer write of the case was synced already (this one would undo it), or this one was and only
                # its mark is still owed (an ended case waiting to move read it again: nothing to write)
                return None
            mark = await self._apply(doc)
            self._synced[case_id] = doc["revision"]
        if len(self._locks) > _SYNCED_MEMORY:
            for key in [k for k, v in self._locks.items() if not v.locked()][:len(self._locks) // 2]:
                self._locks.pop(key, None)
                self._synced.pop(key, None)
                self._removed.pop(key, None)
        return mark

    async def _apply(self, doc: Document) -> dict[str, Any]:
        case_id = doc["_id"]
        running = doc.get("status") == "running"
        current = {t["taskId"]: t for t in (doc.get("user_tasks") or [])} if running else {}
        listed: dict[str, dict[str, Any]] = doc.get("view_tasks") or {}
        variables = doc.get("variables") or {}
        kept: dict[str, dict[str, Any]] = {}
        for task_id, known in listed.items():
            task = current.get(task_id)
            key = f"e.{field_key(task_id)}"
            lists: list[str] = known.get("lists") or []
            if task is None:
                removed = self._removed.setdefault(case_id, set())
                if task_id in removed:
                    continue  # by this process, for an earlier write of the case (see ``__init__``)
                for list_id in lists:
                    await self.worklists.update_one({"_id": list_id}, {"$unset": {key: ""}})
                await self.tasks.delete_one({"_id": task_id})
                removed.add(task_id)
                continue
            entry = task_entry(doc, task)
            now_on = task_documents(task_id, task.get("lane"), variables)
            digest = _digest([entry, now_on])
            kept[task_id] = {"lists": now_on, "h": digest}
            if known.get("h") == digest and lists == now_on:
                continue  # synced as it is
            await self.tasks.replace_one({"_id": task_id}, {"case_id": case_id, "lists": now_on, "entry": entry},
                                         upsert=True)
            for list_id in lists:  # a part of a work list, or a list itself (an entry from before the spread)
                if list_id in now_on:
                    await self._list_part(self.worklists, list_id)
                    await self.worklists.update_one({"_id": list_id}, {"$set": {key: packed_entry(entry)}},
                                                    upsert=True)
                else:
                    await self.worklists.update_one({"_id": list_id}, {"$unset": {key: ""}})
        due = doc.get("next_timer_at") if running else None
        due_bucket = timer_bucket(due, case_id) if due is not None else None
        case_key = f"c.{field_key(case_id)}"
        for bucket in doc.get("timer_days") or []:
            if bucket != due_bucket:
                await self.timers.update_one({"_id": bucket}, {"$unset": {case_key: ""}})
        if due_bucket is not None and (_stored_form(doc.get("timer_at")) != _stored_form(due)
                                       or doc.get("timer_days") != [due_bucket]):
            due_day = due_bucket.partition("/")[0]
            await self._list_part(self.timers, due_bucket)
            await self.timers.update_one({"_id": due_bucket}, {"$set": {case_key: due}}, upsert=True)
            if not self._cursor_set:  # the poller reads from the cursor: it must exist, at or before this day
                cursor = await self.timer_cursor()
                if cursor is None or cursor.isoformat() > due_day:
                    await self.save_timer_cursor(date.fromisoformat(due_day))
                self._cursor_set = True
        mark = {"views_behind": False, "view_tasks": kept, "timer_days": [due_bucket] if due_bucket else [],
                "timer_at": due}
        # A relay runs: owed to it (see the module docstring); only with the whole document, as the relay computes
        # the outbox it writes with the mark from the document it holds (a projection without one left the
        # published entries in the outbox for good).
        if self.published.wake is not None and "outbox" in doc:
            self.published.owe(self.instances, doc, set(), fields=mark)
            return mark
        await self.instances.update_one(  # like the relay's clear: checked on the revision, leaves it alone
            {"_id": case_id, "revision": doc["revision"]}, {"$set": mark})
        return mark

    async def _list_part(self, collection: AsyncCollection[Document], part_id: str) -> None:
        """Have the part's whole (a day of timers, a work list) list it in ``delen`` before the part holds
        anything, so that a read of the whole finds it (once per part and process: ``_listed_buckets``)."""
        if part_id in self._listed_buckets:
            return
        whole, _, part = part_id.rpartition("/")
        await collection.update_one({"_id": whole}, {"$addToSet": {"delen": part}}, upsert=True)
        if len(self._listed_buckets) > 4096:
            self._listed_buckets.clear()
        self._listed_buckets.add(part_id)

    def synced(self, doc: Document) -> bool:
        """Whether this process synced the read models for ``doc`` at its revision (or a later one)."""
        return not doc.get("views_behind") or self._synced.get(doc["_id"], 0) >= doc["revision"]

    async def repair(self) -> int:
        """Sync every case whose read models a crash left behind (``views_behind``) and, the first time, build
        them for the running cases stored before they existed (``view_hash`` missing; then ``built`` is noted
        so later starts skip that). The filters scan the instances on FerretDB: the engine runs this once per
        start, in the background (:meth:`repair_in_background`), never on a hot path."""
        self._listed_buckets.clear()  # a repair trusts no memory of the read models
        done = 0
        queries: list[dict[str, Any]] = [{"views_behind": True}]
        if await self.state.find_one({"_id": BUILT}) is None:
            queries.append({"view_hash": {"$exists": False}, "status": "running"})
        for query in queries:
            async for doc in self.instances.find(query, INSTANCE_PACKING.projection(_REPAIR_FIELDS)):
                plan(INSTANCE_PACKING.unpack(doc, self.instances.codec_options))
                if not doc.get("views_behind"):
                    continue
                marked = await self.instances.update_one(  # the plan, stored first: a crash now is repaired again
                    {"_id": doc["_id"], "revision": doc["revision"]},
                    {"$set": {k: doc[k] for k in _VIEW_FIELDS if k in doc}})
                if marked.matched_count == 1:  # else written meanwhile: that write syncs itself
                    await self.sync(doc, again=True)
                    done += 1
        await self.state.replace_one({"_id": BUILT}, {"at": datetime.now(UTC)}, upsert=True)
        return done

    async def repair_in_background(self) -> None:
        try:
            repaired = await self.repair()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next start tries again; the cases' own next writes sync them meanwhile
            log.error("readmodels.repair_failed", error=f"{type(exc).__name__}: {exc}")
            return
        if repaired:
            log.warning("readmodels.repaired", cases=repaired)

    # ------------------------------------------------------------------ reads
    async def task(self, task_id: str) -> Document | None:
        return await self.tasks.find_one({"_id": task_id})

    async def worklist(self, list_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The entries of these work lists (each read by ``_id``), each task once."""
        entries: dict[str, dict[str, Any]] = {}
        for list_id in dict.fromkeys(list_ids):
            for doc in await _with_parts(self.worklists, list_id):
                for stored in (doc.get("e") or {}).values():
                    entry = unpacked_entry(stored, self.worklists.codec_options)
                    entries[entry["id"]] = entry
        return list(entries.values())

    async def open_tasks(self, after: str | None, limit: int) -> list[dict[str, Any]]:
        """Every open task (functioneel beheer), by task id. A filter on the ``tasks`` collection: it holds open
        tasks only, so it grows with the work in progress, never with the history."""
        query: dict[str, Any] = {"_id": {"$gt": after}} if after else {}
        docs = await self.tasks.find(query).sort("_id", 1).limit(limit).to_list(limit)
        return [d["entry"] for d in docs]

    async def due_cases(self, first_day: date, now: datetime) -> tuple[list[str], date]:
        """Cases with a timer due at ``now`` from the day buckets ``first_day`` … today, and the first day that
        still holds a timer (the cursor to start from next time)."""
        today = now.astimezone(UTC).date()
        due: list[str] = []
        cursor: date | None = None
        day = min(first_day, today)
        while day <= today:
            cases = [item for doc in await _with_parts(self.timers, day.isoformat())
                     for item in (doc.get("c") or {}).items()]
            for key, at in cases:
                if at.tzinfo is None:
                    at = at.replace(tzinfo=UTC)
                if at <= now:
                    due.append(unfield_key(key))
                if cursor is None:
                    cursor = day
            day += timedelta(days=1)
        return due, cursor or today

    async def timer_cursor(self) -> date | None:
        doc = await self.timers.find_one({"_id": TIMER_CURSOR})
        return date.fromisoformat(doc["day"]) if doc else None

    async def save_timer_cursor(self, day: date) -> None:
        await self.timers.replace_one({"_id": TIMER_CURSOR}, {"day": day.isoformat()}, upsert=True)
