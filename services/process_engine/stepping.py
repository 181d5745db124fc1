"""Stepping a workflow and what a step reports (split from runtime.py, which re-exports every public name here).

:func:`step` runs the engine until it settles and reports the commands to send (once), whether the case has
ended, its next timer, the messages it waits for and its ready user tasks. Pure and synchronous, like runtime.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask as UserTaskMixin
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from process_engine.forms import _form_schema, _json_property
from process_engine.model import (
    _COMMAND_KEY,
    _MAX_ENGINE_ROUNDS,
    _TIMER_EVENT_TYPES,
    MANDATE_PROPERTY,
    CommandServiceTask,
    EngineError,
    PendingCommand,
    StepResult,
    UserTaskView,
    _tasks,
    is_completed,
)


def step(workflow: BpmnWorkflow) -> StepResult:
    """Run every engine task that can run, then report what the caller must do.

    Commands are reported once (they are marked published in the instance
    state, so persist the instance together with the outbox entries).
    """
    _run_engine(workflow)
    return StepResult(
        commands=_take_unpublished_commands(workflow),
        completed=is_completed(workflow),
        next_timer_at=next_timer_at(workflow),
        waiting_messages=waiting_message_names(workflow),
        user_tasks=ready_user_tasks(workflow),
    )


def _run_engine(workflow: BpmnWorkflow) -> None:
    """do_engine_steps until quiescent.

    Spiff refreshes timers only at the *end* of do_engine_steps, so a timer
    found due there is READY but not yet run; hence the loop.
    """
    try:
        for _ in range(_MAX_ENGINE_ROUNDS):
            workflow.do_engine_steps()
            if not any(not t.task_spec.manual for t in _tasks(workflow, TaskState.READY)):
                return
    except WorkflowException as exc:
        raise _engine_error(exc) from exc
    raise EngineError(None, f"engine did not settle after {_MAX_ENGINE_ROUNDS} rounds")


def _engine_error(exc: WorkflowException) -> EngineError:
    spec = getattr(exc, "task_spec", None)
    return EngineError(getattr(spec, "bpmn_id", None) or getattr(spec, "name", None), str(exc))


def _command_tasks(workflow: BpmnWorkflow) -> Iterator[tuple[Task, dict[str, Any]]]:
    for task in _tasks(workflow, TaskState.STARTED):
        record = task.internal_data.get(_COMMAND_KEY)
        if isinstance(task.task_spec, CommandServiceTask) and isinstance(record, dict):
            yield task, record


def _to_pending(task: Task, record: Mapping[str, Any]) -> PendingCommand:
    return PendingCommand(
        command_id=record["id"],
        command_type=record["type"],
        params=dict(record["params"]),
        element_id=task.task_spec.bpmn_id,
        task_id=str(task.id),
        attempt=int(record["attempt"]),
    )


def _take_unpublished_commands(workflow: BpmnWorkflow) -> list[PendingCommand]:
    commands = []
    for task, record in _command_tasks(workflow):
        if record["status"] == "open" and not record["published"]:
            record["published"] = True
            commands.append(_to_pending(task, record))
    return commands


def outstanding_commands(workflow: BpmnWorkflow) -> list[PendingCommand]:
    """Every command still waiting for a reply, published or not (for re-sends)."""
    return [_to_pending(t, r) for t, r in _command_tasks(workflow) if r["status"] == "open"]



def waiting_message_names(workflow: BpmnWorkflow) -> list[str]:
    """Sorted names of messages something in the instance currently waits for."""
    names = {ev.name for ev in workflow.waiting_events() if ev.event_type == MessageEventDefinition.__name__}
    return sorted(names)



def next_timer_at(workflow: BpmnWorkflow) -> datetime | None:
    """Earliest due time (UTC) among waiting timer events, if any.

    Contract for pollers: call :func:`fire_due_timers` once ``next_timer_at <= now``.
    """
    due: list[datetime] = []
    for event in workflow.waiting_events():
        if event.event_type in _TIMER_EVENT_TYPES and isinstance(event.value, str):
            parsed = spiff_timer.TimerEventDefinition.get_datetime(event.value)
            due.append(datetime.fromtimestamp(parsed.timestamp(), UTC))
    return min(due, default=None)



def ready_user_tasks(workflow: BpmnWorkflow) -> list[UserTaskView]:
    """READY user tasks with their lane and form schema."""
    return [
        UserTaskView(
            task_id=str(t.id),
            element_id=t.task_spec.bpmn_id,
            name=t.task_spec.bpmn_name,
            lane=t.task_spec.lane,
            form_schema=_form_schema(t),
            mandate=_json_property(t, MANDATE_PROPERTY),
        )
        for t in _tasks(workflow, TaskState.READY)
        if isinstance(t.task_spec, UserTaskMixin)
    ]
