"""The engine's vocabulary on top of SpiffWorkflow 3.2: constants, the injectable clock, the results and errors
every engine call speaks in, and service tasks as commands (see :mod:`process_engine.runtime` for the contracts).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, cast

from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser
from SpiffWorkflow.spiff.parser.task_spec import ServiceTaskParser
from SpiffWorkflow.spiff.specs.defaults import ServiceTask as SpiffServiceTask
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from process_engine.scripting import RestrictedScriptEngine

BPMN_NS: Final = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS: Final = "http://spiffworkflow.org/bpmn/schema/1.0/core"
FORM_SCHEMA_PROPERTY: Final = "formSchema"
MANDATE_PROPERTY: Final = "mandaat"

# Workflow-level (not task-level) data: invisible to scripts, never copied
# between tasks, serialized with the instance.
_CASE_ID_KEY: Final = "ips:case_id"
# Per service-task bookkeeping, kept in Spiff's task.internal_data.
_COMMAND_KEY: Final = "ips_command"
# Marks a completed task as reported in the case's history (take_new_history).
_HISTORY_KEY: Final = "ips_h"
_COMMAND_NAMESPACE: Final = uuid.UUID("5b0f3c1e-9a57-4d1e-8a43-3c2f7f0e6a10")
_TIMER_EVENT_TYPES: Final = frozenset(
    {"DurationTimerEventDefinition", "TimeDateEventDefinition", "CycleTimerEventDefinition"}
)
_ACTIVE_STATES: Final = TaskState.READY | TaskState.STARTED | TaskState.WAITING
_MAX_ENGINE_ROUNDS: Final = 100
_CACHE_SIZE: Final = 64
_TIMER_TOLERANCE: Final = timedelta(microseconds=1)


# --------------------------------------------------------------------------- clock

Clock = Callable[[], datetime]
_CLOCK: ContextVar[Clock | None] = ContextVar("ipsflow_engine_clock", default=None)


class _ClockedDatetime(datetime):
    """``datetime`` whose ``now()`` honours the clock set with :func:`use_clock`.

    Spiff 3.2 reads the time only through ``datetime.now(timezone.utc)`` in its
    timer module and offers no hook, so that module's ``datetime`` name is
    swapped for this subclass once at import. The override is context-local
    (ContextVar), so threads/tasks using real time are unaffected.
    """

    @classmethod
    def now(cls, tz: Any = None) -> _ClockedDatetime:
        clock = _CLOCK.get()
        if clock is None:
            return super().now(tz)
        value = clock()
        if value.tzinfo is None:
            raise ValueError("engine clock must return timezone-aware datetimes")
        value = value.astimezone(tz) if tz is not None else value
        return cls.fromtimestamp(value.timestamp(), value.tzinfo)


setattr(spiff_timer, "datetime", _ClockedDatetime)  # noqa: B010 - see _ClockedDatetime


@contextmanager
def use_clock(clock: Clock | datetime) -> Iterator[None]:
    """Make engine calls inside the block see ``clock`` as the current time.

    Accepts a fixed aware datetime or a zero-argument callable returning one.
    Affects when timers are scheduled (durations start at "now") and whether
    they are due. Spiff's own task bookkeeping (``last_state_change``) keeps
    using the real wall clock.
    """
    fn: Clock = (lambda: clock) if isinstance(clock, datetime) else clock
    token = _CLOCK.set(fn)
    try:
        yield
    finally:
        _CLOCK.reset(token)


# --------------------------------------------------------------------------- results and errors


@dataclass(frozen=True)
class Problem:
    """One deploy-time problem, pointing at a BPMN/DMN element where possible."""

    element_id: str | None
    file: str | None
    message: str
    #: What kind of element and code, e.g. "scriptTask/script", "sequenceFlow/conditionExpression",
    #: "inputEntry" (a DMN cell); None for problems that are not about code.
    kind: str | None = None


class DefinitionError(ValueError):
    """The uploaded definition cannot be deployed; ``problems`` says why."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: list[Problem] = list(problems)
        summary = "; ".join(f"{p.file or '?'}#{p.element_id or '-'}: {p.message}" for p in self.problems)
        super().__init__(f"invalid process definition: {summary}")


class EngineError(RuntimeError):
    """Spiff failed while running an element (script error, bad expression...).

    The in-memory workflow is left in an undefined state: the caller must not
    persist it and should record an incident against the stored state instead.
    """

    def __init__(self, element_id: str | None, message: str) -> None:
        super().__init__(f"{element_id or '?'}: {message}")
        self.element_id = element_id
        self.message = message


class UnknownCommandError(LookupError):
    """No open command with that id (late, duplicate or cancelled reply)."""


class UnknownTaskError(LookupError):
    """No READY user task with that id."""


@dataclass(frozen=True)
class FieldProblem:
    """A single form field that failed validation; ``field`` is a dotted path."""

    field: str
    message: str
    code: str = "invalid"


class FormValidationError(ValueError):
    """User-task data did not match the task's form schema."""

    def __init__(self, element_id: str, problems: Sequence[FieldProblem]) -> None:
        self.element_id = element_id
        self.problems: list[FieldProblem] = list(problems)
        details = "; ".join(f"{p.field}: {p.message}" for p in self.problems)
        super().__init__(f"invalid data for {element_id}: {details}")


@dataclass(frozen=True)
class ParsedDefinition:
    """A validated, cached process definition. Treat as immutable and shareable."""

    content_hash: str
    process_id: str
    spec: Any
    subprocess_specs: Mapping[str, Any]
    file_names: tuple[str, ...]
    start_message_names: frozenset[str]
    message_usages: tuple[tuple[str | None, str, str], ...]  # (element id, file, message name)

    @property
    def message_names(self) -> frozenset[str]:
        """All message names the definition sends or waits for."""
        return frozenset(name for _, _, name in self.message_usages)


@dataclass(frozen=True)
class PendingCommand:
    """A command the caller must publish; the reply goes to complete/fail_command."""

    command_id: str
    command_type: str
    params: dict[str, Any]
    element_id: str
    task_id: str
    attempt: int


@dataclass(frozen=True)
class Incident:
    """A failed command with no matching error boundary; resolve via retry_incident."""

    command_id: str
    command_type: str
    element_id: str
    task_id: str
    attempt: int
    error_code: str
    message: str


@dataclass(frozen=True)
class UserTaskView:
    """A READY user task as shown in work lists."""

    task_id: str
    element_id: str
    name: str | None
    lane: str | None
    form_schema: dict[str, Any] | None
    #: Sub-mandate rule of the task (property ``mandaat``): which kind of decision each answer is, e.g.
    #: ``{"veld": "besluit", "soorten": {"toekennen": "toekenning"}}``; None when the task decides nothing.
    mandate: dict[str, Any] | None = None


@dataclass(frozen=True)
class HistoryEntry:
    """A completed BPMN element; ``ended_at`` is Spiff's (wall-clock) state-change time."""

    element_id: str
    name: str | None
    ended_at: datetime | None


@dataclass(frozen=True)
class KeptMessage:
    """A message that arrived before anything waited for it."""

    name: str
    payload: dict[str, Any]
    correlations: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StepResult:
    """What the caller must act on after the engine ran."""

    commands: list[PendingCommand]
    completed: bool
    next_timer_at: datetime | None
    waiting_messages: list[str]
    user_tasks: list[UserTaskView]


# --------------------------------------------------------------------------- service tasks as commands


class CommandServiceTask(SpiffServiceTask):  # type: ignore[misc]
    """Spiff service task that issues a command instead of calling a service.

    ``Task.run`` marks a task STARTED when its spec's ``_run`` returns None,
    and ``do_engine_steps`` only runs READY tasks, so returning None here
    parks the branch (other branches keep running) until the runtime calls
    ``Task.complete`` with the reply, or an error boundary cancels the task.
    """

    def _execute(self, task: Task) -> None:
        _issue_command(task, attempt=1)
        return None


def _issue_command(task: Task, attempt: int) -> dict[str, Any]:
    """Record a fresh command for ``task``; params are evaluated now, against task data."""
    spec = cast(CommandServiceTask, task.task_spec)
    case_id = str(task.workflow.top_workflow.data.get(_CASE_ID_KEY, ""))
    params = {name: p["value"] for name, p in spec.evaluate_params(task).items()}
    command_id = uuid.uuid5(_COMMAND_NAMESPACE, f"{case_id}/{task.id}/{attempt}")
    record: dict[str, Any] = {
        "id": str(command_id),
        "type": spec.operation_name,
        "params": params,
        "attempt": attempt,
        "status": "open",  # open -> (published) -> completed | failed | incident
        "published": False,
    }
    task.internal_data[_COMMAND_KEY] = record
    return record


def _has_explicit_result_variable(spec: CommandServiceTask) -> bool:
    """Spiff invents ``spiff__<id>_result`` when no resultVariable is modelled."""
    return (
        bool(spec.result_variable) and spec.result_variable != f"spiff__{spec.name.replace('-', '_')}_result"
    )


class _IpsBpmnParser(SpiffBpmnParser):  # type: ignore[misc]
    """Spiff's parser with service tasks mapped to :class:`CommandServiceTask`."""

    OVERRIDE_PARSER_CLASSES: ClassVar[dict[str, tuple[type, type]]] = {
        **SpiffBpmnParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (ServiceTaskParser, CommandServiceTask),
    }


_SCRIPT_ENGINE: Final = RestrictedScriptEngine()

# --------------------------------------------------------------------------- tasks of an instance


def _tasks(workflow: BpmnWorkflow, state: int) -> list[Task]:
    """Tasks in ``state`` in the top workflow and all its subprocesses, each once (Spiff 3.2's
    ``get_tasks`` of the top workflow already descends into subprocesses)."""
    tasks: dict[uuid.UUID, Task] = {t.id: t for t in workflow.get_tasks(state=state)}
    for sub in workflow.subprocesses.values():
        for task in sub.get_tasks(state=state):
            tasks.setdefault(task.id, task)
    return list(tasks.values())


def active_tasks(workflow: BpmnWorkflow) -> list[Task]:
    """The tasks that are ready, running or waiting, in the order Spiff walks them (one walk of the tree: hand
    it to :func:`active_element_ids` and ``case_variables`` when both are wanted)."""
    return _tasks(workflow, _ACTIVE_STATES)


def active_element_ids(workflow: BpmnWorkflow, active: list[Task] | None = None) -> list[str]:
    """Sorted BPMN ids of elements that are ready, running or waiting (``active``: :func:`active_tasks`, if
    taken already).

    Boundary events are left out: they are part of their host task.
    """
    ids = {
        t.task_spec.bpmn_id
        for t in (active_tasks(workflow) if active is None else active)
        if getattr(t.task_spec, "bpmn_id", None) and not isinstance(t.task_spec, BoundaryEvent)
    }
    return sorted(ids)


def case_id_of(workflow: BpmnWorkflow) -> str | None:
    """The case id given to :func:`start_instance`."""
    value = workflow.data.get(_CASE_ID_KEY)
    return None if value is None else str(value)


def is_completed(workflow: BpmnWorkflow) -> bool:
    """True once every path reached an end (or was cancelled)."""
    return bool(workflow.is_completed())


def history(workflow: BpmnWorkflow) -> list[HistoryEntry]:
    """Completed diagram elements in completion order."""
    done = [t for t in _tasks(workflow, TaskState.COMPLETED) if getattr(t.task_spec, "bpmn_id", None)]
    return _history_entries(done)


def take_new_history(workflow: BpmnWorkflow) -> list[HistoryEntry]:
    """Completed diagram elements not reported by an earlier call, in completion order; marks them reported.

    The mark is kept in the task's ``internal_data``, so it is saved atomically with the state that completed
    the task: the caller appends these entries to the case's history and never stores the whole list again.
    """
    done = [t for t in _tasks(workflow, TaskState.COMPLETED)
            if getattr(t.task_spec, "bpmn_id", None) and not t.internal_data.get(_HISTORY_KEY)]
    for task in done:
        task.internal_data[_HISTORY_KEY] = 1
    return _history_entries(done)


def _history_entries(done: list[Task]) -> list[HistoryEntry]:
    done.sort(key=lambda t: t.last_state_change)
    return [
        HistoryEntry(
            element_id=t.task_spec.bpmn_id,
            name=t.task_spec.bpmn_name,
            ended_at=datetime.fromtimestamp(t.last_state_change, UTC) if t.last_state_change else None,
        )
        for t in done
    ]
