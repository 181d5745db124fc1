"""The durable orchestrator: events in, commands out, one MongoDB document per case.

Every change to an instance is load → deserialize → apply → serialize → revision-checked replace, with the
commands it causes in the same document's outbox and the id of the message it applied in ``applied``. A
crash anywhere before the replace leaves the message unacknowledged and the instance unchanged; a crash
after it is a redelivery that ``applied`` turns into a no-op. SpiffWorkflow runs in a worker thread, so that a
long step (scripts may take up to 100 ms each) does not hold up the event loop. That costs a hand-off per message:
run on the loop instead, the engine took about 6 % less CPU in bench_ips (session 14), which did not outweigh the
loop's responsiveness (design.md). A workflow object is used by one attempt at a time: the engine keeps the one
it last wrote per case (``WorkflowCache``) and hands it to the next attempt only if the stored state is still byte
for byte what it wrote, so that a reply seconds after the command skips the restore (issue 14: the largest part of
the engine's CPU).

Reply protocol: a service answers a command with ``ips.opdracht.voltooid.v1`` (data = the result) or
``ips.opdracht.mislukt.v1`` (data = {code, message}); ``causationid`` is the command id and ``subject`` the
case id. Any other event whose subject is a case id is delivered to that case as a BPMN message of the same
name; a message nothing waits for yet is kept in the instance and delivered once something does.
"""

from __future__ import annotations

import asyncio
import copy
import socket
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
from bson.binary import Binary
from bson.codec_options import CodecOptions

from process_engine import caselog, readmodels
from process_engine import runtime as rt
from process_engine.actions import CLAIMED_BY_OTHER as CLAIMED_BY_OTHER  # the API and migration import these here
from process_engine.actions import CaseNotYetKnown as CaseNotYetKnown
from process_engine.actions import Conflict as Conflict
from process_engine.actions import EngineActions
from process_engine.actions import NotFound as NotFound
from process_engine.repository import (
    CLOSED_COPY,
    DefinitionRepository,
    InstanceRepository,
    public_variables,
    remember_applied,
)
from servicekit import metrics, tracing, zaakindex
from servicekit.broker import COMMANDS
from servicekit.envelope import CloudEvent, source_for
from servicekit.logging import get_logger
from servicekit.store import ConcurrencyError, Document, DuplicateKeyError

log = get_logger(__name__)

SERVICE = "process_engine"
COMMAND_COMPLETED = "ips.opdracht.voltooid.v1"
COMMAND_FAILED = "ips.opdracht.mislukt.v1"
MAX_CONFLICT_RETRIES = 50
#: Log entries (journal and history) an instance document keeps before they move to the case log.
LOG_TAIL_MAX = 64
#: How many waiting moves of closed cases the timer poller tries per round.
CLOSING_PER_ROUND = 50


def _case_trace(doc: Document) -> str | None:
    """A command's ``traceparent``: the case's own trace, so one trace follows the case (a task completed over
    HTTP has a trace of its own, its response's X-Trace-Id); else the trace being handled now (a case started
    before traces were kept)."""
    case = tracing.trace_id_of(doc.get("traceparent"))
    return tracing.new_traceparent(case) if case else tracing.outgoing()


@dataclass
class LiveWorkflow:
    """A workflow object with the parsed definition it runs on."""

    parsed: rt.ParsedDefinition
    wf: Any


@dataclass
class Change:
    """What one attempt at mutating an instance produced."""

    doc: Document
    commands: list[rt.PendingCommand]
    #: Stored log entries that leave the instance document with this write (a case log bucket), if any.
    archive: Document | None = None
    #: The workflow whose state ``doc`` holds (kept for the case's next message once the write succeeded).
    workflow: LiveWorkflow | None = None


#: How many cases' workflows an engine process keeps between messages (a restored IPS case with its trajectory
#: running measured 124 KB in memory, its document 20-30 KB as BSON: 256 of them some 40 MB).
WORKFLOW_CACHE_MAX = 256

#: How a kept document is decoded: as the engine's client reads one (servicekit.store.make_client: tz_aware).
_KEPT_CODEC: CodecOptions[Document] = CodecOptions(tz_aware=True)


@dataclass(slots=True)
class _Kept:
    state: bytes
    parsed: rt.ParsedDefinition
    wf: Any
    #: The document as written (BSON), and what a later write that leaves the revision alone set on it.
    doc: bytes
    revision: int
    mark: dict[str, Any]


class WorkflowCache:
    """Per case the document and the workflow object this process last wrote, so that the case's next message
    needs neither the read of its instance document nor ``rt.deserialize`` (issue 14: the instance document was
    read about nine times per case, 40 % of FerretDB's reading).

    An entry is taken out while an attempt uses it (no two attempts share a workflow) and put back only with what
    that attempt wrote. A kept document may be stale: another process may have written the case since. That
    write raised the revision, so the attempt's revision-checked write misses and the retry reads the case
    (:meth:`Engine._mutate`). What changes a document without raising the revision is the relay's outbox clear
    and the read models' mark: entries this process's relay confirmed are left out of every write anyway
    (``servicekit.store.Published``), and the mark is noted here (:meth:`marked`) and re-planned by each write.
    An outbox entry another process's relay confirmed and cleared in between comes back with the write and is
    published again; consumers drop a message id they have applied (ADR 0002), as after any redelivery.
    After a read (no kept document, or a miss), the kept workflow is used only when the document read holds
    exactly its state (the bytes compared) and the same parsed definition. A failed or abandoned attempt leaves
    nothing behind, and the next one reads and restores."""

    def __init__(self, size: int = WORKFLOW_CACHE_MAX) -> None:
        self.size = size
        self._kept: OrderedDict[str, _Kept] = OrderedDict()

    def take(self, case_id: str, parsed: rt.ParsedDefinition, state: bytes) -> Any | None:
        """The workflow of ``state`` on ``parsed``, if kept (after a read of the case)."""
        kept = self._kept.pop(case_id, None)
        if kept is None or kept.parsed is not parsed or kept.state != state:
            return None
        return kept.wf

    def take_written(self, case_id: str) -> tuple[Document, LiveWorkflow] | None:
        """The document this process last wrote of the case (a fresh copy) with its workflow, if kept."""
        kept = self._kept.pop(case_id, None)
        if kept is None:
            return None
        doc = bson.decode(kept.doc, codec_options=_KEPT_CODEC)
        doc.update(kept.mark)
        return doc, LiveWorkflow(kept.parsed, kept.wf)

    def keep(self, case_id: str, change: Change, stored: Document) -> None:
        """``stored`` was written (``change.doc`` with its revision and outbox)."""
        if change.workflow is None or stored.get("status") != "running" or self.size <= 0:
            return
        self._kept[case_id] = _Kept(bytes(stored["state"]), change.workflow.parsed, change.workflow.wf,
                                    bson.encode(stored), stored["revision"], {})
        while len(self._kept) > self.size:
            self._kept.popitem(last=False)

    def marked(self, case_id: str, revision: int, fields: dict[str, Any] | None) -> None:
        """The read models' mark of ``revision`` (set, or owed to the relay): the kept document gets it too."""
        kept = self._kept.get(case_id)
        if kept is not None and fields and kept.revision == revision:
            kept.mark.update(fields)



Clock = Callable[[], datetime]


class Engine(EngineActions):
    def __init__(self, definitions: DefinitionRepository, instances: InstanceRepository,
                 message_catalogue: set[str] | None = None, clock: Clock | None = None,
                 worker_id: str | None = None, lease_seconds: float = 30.0) -> None:
        self.definitions = definitions
        self.instances = instances
        self.catalogue = message_catalogue
        self.clock = clock or (lambda: datetime.now(UTC))
        self.worker_id = worker_id or f"{socket.gethostname()}-{uuid.uuid4().hex[:6]}"
        self.lease = timedelta(seconds=lease_seconds)
        #: Called with the case id and the document as written whenever a write put commands in its outbox.
        self.on_outbox: Callable[[str, Document], None] = lambda _case_id, _doc: None
        #: Called with every instance document this engine wrote (the case explorer's index, zaakindex.py).
        self.on_write: Callable[[Document], None] = lambda _doc: None
        #: That index, once the API has one (``running_cases`` answers from it).
        self.case_index: zaakindex.ZaakIndex | None = None
        # Timers this worker set itself, fired from memory; a slower scan of the database finds the rest
        # (other workers', and this worker's after a restart). FerretDB v1 scans every document for a
        # non-_id filter, so a 250 ms scan of a large collection would cost more than it is worth.
        self._due: dict[str, datetime] = {}
        self._parsed: dict[str, rt.ParsedDefinition] = {}
        self._start_index: dict[str, str] = {}  # start message → process id (latest deployment)
        #: Cases that ended and still wait to move out of ``instances`` (``_close``); the timer poller retries.
        self._closing: set[str] = set()
        self.workflows = WorkflowCache()

    # ------------------------------------------------------------------ definitions
    async def deploy(self, files: dict[str, bytes], deployed_by: str,
                     comment: str | None = None) -> tuple[Document, bool]:
        """Validate and store a definition once by content hash. Raises rt.DefinitionError with problems."""
        parsed = await asyncio.to_thread(rt.parse_definition, files, self.catalogue)
        doc = {
            "_id": parsed.content_hash,
            "process_id": parsed.process_id,
            # a list, not a dict: FerretDB refuses keys with a dot (file names)
            "files": [{"name": name, "xml": data.decode()} for name, data in sorted(files.items())],
            "start_messages": sorted(parsed.start_message_names),
            "messages": sorted(parsed.message_names),
            "deployed_at": self.clock(),
            "deployed_by": deployed_by,
            "comment": comment,
        }
        created = await self.definitions.add(doc)
        self._parsed[parsed.content_hash] = parsed
        for name in parsed.start_message_names:
            self._start_index[name] = parsed.process_id
        stored = await self.definitions.get(parsed.content_hash)
        assert stored is not None
        log.info("definition.deployed", process=parsed.process_id, hash=parsed.content_hash[:12],
                 version=stored["version"], new=created)
        return stored, created

    async def load_index(self) -> None:
        for doc in await self.definitions.all():
            for name in doc.get("start_messages", []):
                self._start_index[name] = doc["process_id"]

    async def parsed(self, content_hash: str) -> rt.ParsedDefinition:
        if content_hash not in self._parsed:
            doc = await self.definitions.get(content_hash)
            if doc is None:
                raise NotFound(f"definition {content_hash}")
            files = {f["name"]: f["xml"].encode() for f in doc["files"]}
            self._parsed[content_hash] = await asyncio.to_thread(rt.parse_definition, files, None)
        return self._parsed[content_hash]

    # ------------------------------------------------------------------ events in
    async def handle_event(self, event: CloudEvent) -> None:
        """Consumer entry point for every domain event. Idempotent per event id."""
        case_id = event.subject
        if not case_id:
            return
        if event.type in (COMMAND_COMPLETED, COMMAND_FAILED):
            await self._mutate(case_id, event.id, lambda wf, doc: self._apply_reply(wf, doc, event))
            return
        if (event.type in self._start_index and await self.instances.store.get(case_id) is None
                and await self._start(case_id, event)):
            return
        await self._mutate(case_id, event.id, lambda wf, doc: self._apply_message(wf, doc, event),
                           missing_ok=True)

    async def _start(self, case_id: str, event: CloudEvent) -> bool:
        content_hash = await self.definitions.latest_hash(self._start_index[event.type])
        assert content_hash is not None
        parsed = await self.parsed(content_hash)

        def run() -> Change:
            workflow, result = rt.start_instance(parsed, event.type, event.data, case_id=case_id)
            doc: Document = {"_id": case_id, "process_id": parsed.process_id, "definition_hash": parsed.content_hash,
                             "status": "running", "started_at": self.clock(), "kept": [], "incidents": [],
                             "journal": [], "history": [], "log_seq": 0,
                             "applied": [event.id], "correlation_id": event.correlationid or event.id,
                             # the case's trace: every command of the case continues it (servicekit.tracing)
                             "traceparent": tracing.outgoing(event.traceparent)}
            self._journal(doc, "gestart", message=event.type)
            self._journal_sent(doc, result.commands)
            return Change(self._snapshot(workflow, doc, result), result.commands,
                          workflow=LiveWorkflow(parsed, workflow))

        change = await asyncio.to_thread(run)
        try:
            stored = await self.instances.store.insert(change.doc, self._command_events(change))
        except DuplicateKeyError:
            return False  # another worker started it; deliver to the existing instance instead
        self.workflows.keep(case_id, change, stored)
        self.on_outbox(case_id, stored)
        self._remember_timer(change.doc)
        self.on_write(stored)
        self.workflows.marked(case_id, stored["revision"], await self.instances.views.sync(stored))
        await self._close(stored)
        metrics.CASES_STARTED.labels(parsed.process_id).inc()
        log.info("instance.started", case_id=case_id, process=parsed.process_id)
        return True

    def _apply_reply(self, wf: Any, doc: Document, event: CloudEvent) -> list[rt.PendingCommand] | None:
        command_id = event.causationid or ""
        try:
            if event.type == COMMAND_COMPLETED:
                result = rt.complete_command(wf, command_id, dict(event.data))
                self._journal(doc, "opdracht voltooid", command=command_id)
                return self._after(wf, doc, result)
            outcome = rt.fail_command(wf, command_id, str(event.data.get("code", "onbekend")),
                                      str(event.data.get("message", ""))[:500])
        except rt.UnknownCommandError:
            log.info("reply.ignored", command_id=command_id, reason="no open command (late or duplicate)")
            return None
        if isinstance(outcome, rt.Incident):
            doc["incidents"] = [*doc.get("incidents", []), {
                "commandId": outcome.command_id, "commandType": outcome.command_type,
                "elementId": outcome.element_id, "attempt": outcome.attempt, "errorCode": outcome.error_code,
                "message": outcome.message, "at": self.clock(), "resolved": False}]
            self._journal(doc, "incident", element=outcome.element_id, code=outcome.error_code, command=command_id)
            log.warning("instance.incident", element=outcome.element_id, code=outcome.error_code)
            # Counted when raised; a write that loses a revision race raises it once more (rare, and visible).
            metrics.INCIDENTS.labels(outcome.command_type).inc()
            return self._after(wf, doc, rt.step(wf))
        self._journal(doc, "fout afgehandeld door error boundary", command=command_id)
        return self._after(wf, doc, outcome)

    def _apply_message(self, wf: Any, doc: Document, event: CloudEvent) -> list[rt.PendingCommand] | None:
        result = rt.deliver_message(wf, event.type, dict(event.data))
        if result is None:
            doc["kept"] = [*doc.get("kept", []), {"id": event.id, "name": event.type, "payload": dict(event.data)}]
            self._journal(doc, "bericht bewaard", message=event.type)
            return []
        self._journal(doc, "bericht ontvangen", message=event.type)
        return self._after(wf, doc, result)

    def _after(self, wf: Any, doc: Document, result: rt.StepResult) -> list[rt.PendingCommand]:
        """Deliver kept messages the instance now waits for; collect every new command."""
        commands = list(result.commands)
        kept = [rt.KeptMessage(k["name"], k["payload"]) for k in doc.get("kept", [])]
        if kept:
            remaining, extra = rt.deliver_kept_messages(wf, kept)
            if extra is not None:
                commands.extend(extra.commands)
                self._journal(doc, "bewaard bericht afgeleverd")
            names = [(m.name, m.payload) for m in remaining]
            doc["kept"] = [k for k in doc.get("kept", []) if (k["name"], k["payload"]) in names]
        self._journal_sent(doc, commands)
        return commands

    def _journal_sent(self, doc: Document, commands: list[rt.PendingCommand]) -> None:
        # The console's case page lists every command a case sent next to its reply (issue 15).
        for c in commands:
            self._journal(doc, "opdracht verstuurd", command=c.command_id, type=c.command_type,
                          element=c.element_id, attempt=c.attempt)

    # ------------------------------------------------------------------ closed cases leave the open ones
    async def _close(self, doc: Document) -> None:
        """Move a case that has ended out of ``instances`` (``InstanceRepository.move_closed``). When it cannot
        move yet (events still in its outbox) or the move fails, the timer poller tries again
        (``finish_closing``); a crash before that leaves it for the next start."""
        if doc.get("status") == "running" or doc.get(CLOSED_COPY):
            return
        try:
            moved = await self.instances.move_closed(doc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the case has ended all the same; it moves on a later try
            log.warning("instance.move_failed", case_id=doc["_id"], error=f"{type(exc).__name__}: {exc}")
            moved = False
        if moved:
            self._closing.discard(doc["_id"])
        else:
            self._closing.add(doc["_id"])

    async def finish_closing(self, at_start: bool = False, most: int | None = None) -> int:
        """Try the moves that waited (each case read by ``_id``; at most ``most`` of them); ``at_start`` instead
        the moves a crash or another process left (a scan of ``instances``, which holds the open cases only, and
        after an upgrade every closed case stored before the move existed). Returns how many moved."""
        # at start a list of its own, not the set the poller's rounds take from: the two seldom try one case at
        # once (harmless when they do: the copy is written twice, one delete misses)
        ids = await self.instances.closing() if at_start else list(self._closing)[:most]
        moved = 0
        for case_id in ids:
            doc = await self.instances.store.get_open(case_id)
            if doc is None:  # moved by another process meanwhile
                self._closing.discard(case_id)
                continue
            await self.instances.views.sync(doc)
            await self._close(doc)
            moved += case_id not in self._closing
        return moved

    async def running_cases(self, process_id: str) -> list[Document]:
        """The running cases of a process, each ``_id``, ``definition_hash`` and ``active_elements`` (the studio's
        comparison). From the case index in memory once it is read (no query; other engine processes' writes
        reach it at its next re-read); until then a filter on ``instances``, which holds the open cases only."""
        index = self.case_index
        if index is not None and index.gereed:
            _, zaken = index.zoek({"processId": process_id, "status": "running"}, zaakindex.Criteria(), 0,
                                  len(index.zaken))
            return [{"_id": z["id"], "definition_hash": z["definitieHash"], "active_elements": z["actieveElementen"]}
                    for z in zaken]
        return await self.instances.collection.find({"process_id": process_id, "status": "running"},
                                                    {"_id": 1, "definition_hash": 1, "active_elements": 1}
                                                    ).to_list(None)

    # ------------------------------------------------------------------ timers
    def _remember_timer(self, doc: Document) -> None:
        due = doc.get("next_timer_at")
        if due is not None and doc.get("status") == "running":
            self._due[doc["_id"]] = due
        else:
            self._due.pop(doc["_id"], None)

    async def fire_due_timers(self, scan: bool = True) -> int:
        """One poll: fire the due timers of every instance whose lease this worker takes.

        ``scan=False`` looks only at the timers this worker knows from its own writes (cheap, every tick);
        ``scan=True`` asks the database (finds timers set by other workers or before a restart).
        """
        now = self.clock()
        fired = 0
        if scan:
            due_ids = await self._due_from_buckets(now)
        else:
            due_ids = [case_id for case_id, due in self._due.items() if due <= now]
        candidates = [d for d in [await self.instances.store.get(i) for i in due_ids] if d is not None]
        for doc in candidates:
            self._remember_timer(doc)
        candidates = [d for d in candidates if d.get("next_timer_at") is not None and d["next_timer_at"] <= now
                      and d.get("status") == "running"]
        for doc in candidates:
            if not await self.instances.take_timer_lease(doc, self.worker_id, now + self.lease, now):
                continue
            await self._mutate(doc["_id"], None, lambda wf, d: self._fire(wf, d, now))
            fired += 1
            metrics.timer_fired((self.clock() - doc["next_timer_at"]).total_seconds())
        return fired

    async def _due_from_buckets(self, now: datetime) -> list[str]:
        """The cases with a timer due by ``now``, from the day buckets (``readmodels``) since the cursor; moves
        the cursor past the days that hold no timer any more."""
        views = self.instances.views
        first = await views.timer_cursor()
        if first is None:
            return []  # no timer was ever set
        due, cursor = await views.due_cases(first, now)
        if cursor > first:
            await views.save_timer_cursor(cursor)
        return due

    def _fire(self, wf: Any, doc: Document, now: datetime) -> list[rt.PendingCommand] | None:
        due = rt.next_timer_at(wf)
        if due is None or due > now:
            return None
        result = rt.fire_due_timers(wf, now)
        self._journal(doc, "timer afgegaan", due=due)
        return self._after(wf, doc, result)

    async def run_timer_poller(self, interval: float, scan_every: float = 5.0) -> None:
        last_scan = -scan_every
        loop = asyncio.get_running_loop()
        # the moves a crash left (or, after an upgrade, every closed case still in instances): beside the timers
        sweep = asyncio.create_task(self._sweep_closed())
        try:
            await self._poll_timers(interval, scan_every, last_scan, loop)
        finally:
            sweep.cancel()

    async def _sweep_closed(self) -> None:
        try:
            moved = await self.finish_closing(at_start=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the ones found stay in the set: the poller's rounds try them again
            log.error("instances.sweep_failed", error=f"{type(exc).__name__}: {exc}")
            return
        if moved:
            log.warning("instances.closed_moved", cases=moved)

    async def _poll_timers(self, interval: float, scan_every: float, last_scan: float,
                           loop: asyncio.AbstractEventLoop) -> None:
        while True:
            try:
                scan = loop.time() - last_scan >= scan_every
                if scan:
                    last_scan = loop.time()
                await self.fire_due_timers(scan=scan)
                if self._closing:  # moves that waited for the relay: a few per round
                    await self.finish_closing(most=CLOSING_PER_ROUND)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # keep polling; the error is logged and retried next tick
                log.error("timers.poll_failed", error=f"{type(exc).__name__}: {exc}")
            await asyncio.sleep(interval)

    # ------------------------------------------------------------------ the one way an instance changes
    async def _mutate(self, case_id: str, message_id: str | None,
                      apply: Callable[[Any, Document], list[rt.PendingCommand] | None], *,
                      missing_ok: bool = False, user_action: bool = False) -> Document:
        for round_ in range(MAX_CONFLICT_RETRIES):
            # A message first tries the document this process last wrote, if kept (no read); a write that misses
            # reads the case. A user action or a timer reads: it may refuse on what it finds (a task another
            # replica created since), and a refusal is not retried.
            written = self.workflows.take_written(case_id) if round_ == 0 and message_id else None
            if written is not None:
                doc, live = self.instances.store.with_owed(written[0]), written[1]
            else:
                found = await self.instances.store.get(case_id)
                if found is None:
                    if missing_ok:
                        raise CaseNotYetKnown(f"no case {case_id} (yet) for this message")
                    raise NotFound(f"case {case_id}")
                doc, live = found, None
            if message_id and message_id in doc.get("applied", []):
                # A redelivery after a write whose answer was lost (or a sync that failed): the commands that write
                # put in the outbox never reached the relay (the relay's idle scan is minutes away), and the sync
                # may be unfinished.
                if doc.get("has_outbox"):
                    self.on_outbox(case_id, doc)
                await self.instances.views.sync(doc)
                return doc
            if doc["status"] != "running":
                await self.instances.views.sync(doc)
                await self._close(doc)
                if user_action:
                    raise Conflict(f"case is {doc['status']}")
                return doc
            committed = doc.get("log_seq", 0)  # log entries up to here are stored: they may move to the case log
            state = bytes(doc["state"])
            if live is not None:
                parsed, kept = live.parsed, live.wf
            else:
                parsed = await self.parsed(doc["definition_hash"])
                kept = self.workflows.take(case_id, parsed, state)

            def attempt(doc: Document = doc, parsed: rt.ParsedDefinition = parsed,
                        committed: int = committed, kept: Any = kept, state: bytes = state) -> Change | None:
                wf = kept if kept is not None else rt.deserialize(parsed, state)
                with rt.use_clock(self.clock):
                    commands = apply(wf, doc)
                if commands is None:
                    return None
                if message_id:
                    remember_applied(doc, message_id)
                result = rt.StepResult(commands, rt.is_completed(wf), rt.next_timer_at(wf),
                                       rt.waiting_message_names(wf), rt.ready_user_tasks(wf))
                return Change(self._snapshot(wf, doc, result), commands, self._take_archive(doc, committed),
                              LiveWorkflow(parsed, wf))

            change = await asyncio.to_thread(attempt)
            if change is None:
                if message_id:  # nothing to do, but remember the id so the redelivery is cheap
                    try:
                        remember_applied(doc, message_id)
                        await self.instances.store.replace(doc)
                    except ConcurrencyError:
                        if live is not None:
                            continue  # the kept document was stale: read the case and look again
                return doc
            if change.archive is not None:  # first: a crash before the replace leaves the entries in both
                await self.instances.append_log(change.archive)
            try:
                stored = await self.instances.store.replace(change.doc, self._command_events(change))
            except ConcurrencyError:
                continue
            self.workflows.keep(case_id, change, stored)
            if change.commands:
                self.on_outbox(case_id, stored)
            self._remember_timer(stored)
            self.on_write(stored)
            self.workflows.marked(case_id, stored["revision"], await self.instances.views.sync(stored))
            await self._close(stored)
            return stored
        raise ConcurrencyError(f"case {case_id}: too many concurrent changes")

    def _snapshot(self, wf: Any, doc: Document, result: rt.StepResult) -> Document:
        previous = {t["taskId"]: t for t in doc.get("user_tasks", [])}
        if any("seq" not in h for h in doc.get("history", [])):
            doc["history"] = []  # the whole list, as stored before issue 14: taken anew from the state below
        # before serialising: the state records which elements the history has reported
        doc["history"] = [*doc.get("history", []), *({"seq": self._next_seq(doc), "elementId": h.element_id,
                                                      "name": h.name, "endedAt": h.ended_at}
                                                     for h in rt.take_new_history(wf))]
        doc["state"] = Binary(rt.serialize(wf))
        active = rt.active_tasks(wf)  # one walk of the task tree for both
        doc["active_elements"] = rt.active_element_ids(wf, active)
        doc["waiting_messages"] = result.waiting_messages
        doc["next_timer_at"] = result.next_timer_at
        doc["timer_lease_until"] = None
        doc["user_tasks"] = [{
            "taskId": t.task_id, "elementId": t.element_id, "name": t.name, "lane": t.lane,
            "formSchema": t.form_schema, "mandate": t.mandate,
            "claimedBy": previous.get(t.task_id, {}).get("claimedBy"),
            "since": previous.get(t.task_id, {}).get("since") or self.clock(),
        } for t in result.user_tasks]
        doc["has_user_tasks"] = bool(doc["user_tasks"])
        # a copy: the workflow lives on in ``WorkflowCache``, and a script there may change a nested value in place
        # (the case index keeps the written document's variables)
        doc["variables"] = copy.deepcopy(public_variables(rt.case_variables(wf, active)))
        doc["updated_at"] = self.clock()
        if result.completed and doc.get("status") == "running":
            doc["status"] = "completed"
            doc["completed_at"] = self.clock()
            doc["next_timer_at"] = None
            self._journal(doc, "afgerond")
        readmodels.plan(doc)
        return doc

    def _command_events(self, change: Change) -> list[tuple[CloudEvent, str]]:
        case_id = change.doc["_id"]
        correlation = change.doc.get("correlation_id")
        return [(CloudEvent(id=c.command_id, source=source_for(SERVICE),
                            type=c.command_type, subject=case_id, time=self.clock(),
                            data={**c.params, "elementId": c.element_id, "attempt": c.attempt},
                            correlationid=correlation, traceparent=_case_trace(change.doc)), COMMANDS)
                for c in change.commands]

    def _journal(self, doc: Document, what: str, **details: Any) -> None:
        caselog.journal(doc, self.clock(), what, **details)

    @staticmethod
    def _next_seq(doc: Document) -> int:
        return caselog.next_seq(doc)

    @staticmethod
    def _take_archive(doc: Document, committed: int) -> Document | None:
        return caselog.take_archive(doc, committed, LOG_TAIL_MAX)

    async def with_log(self, doc: Document) -> Document:
        """The instance with its whole journal and history (``caselog.merged``)."""
        return caselog.merged(doc, await self.instances.log_of(doc["_id"]) if doc.get("log_archived_to") else [])
