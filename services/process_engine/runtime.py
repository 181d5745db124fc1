"""Pure, synchronous engine core on top of SpiffWorkflow 3.2.

No I/O happens here: callers load a definition and an instance blob, call one
of the functions below, then persist the new blob and publish whatever the
returned :class:`StepResult` asks for (commands) in the same unit of work.

Contracts in short:

* Definitions are parsed once per content hash (:func:`parse_definition`) and
  every piece of embedded code is checked by :func:`scripting.check_script`.
* Service tasks never call out. Running one leaves the Spiff task STARTED and
  records a command in the task's ``internal_data``; :func:`step` reports it
  once. A reply arrives via :func:`complete_command` or :func:`fail_command`.
* Messages are delivered with Spiff's own ``MessageEventDefinition`` class;
  :func:`deliver_message` returns ``None`` when nothing waits for the message
  so the caller can keep it and retry after later steps.
* Timers never fire by themselves: a poller calls :func:`fire_due_timers` when
  :func:`next_timer_at` has passed. Time is injectable via :func:`use_clock`.
* Mutating functions run the engine and return a :class:`StepResult`.

Instances are not thread-safe; never share one workflow object between
coroutines or threads.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask as UserTaskMixin
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import WorkflowException
from SpiffWorkflow.spiff.specs.event_definitions import ErrorEventDefinition, MessageEventDefinition
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from process_engine.definitions import _embedded_code as _embedded_code  # tests reach it through runtime
from process_engine.definitions import (
    content_hash,
    parse_definition,
)
from process_engine.forms import (
    _form_schema,
    free_text_problems,
    required_mandate,
    validate_form,
)
from process_engine.model import (
    _CASE_ID_KEY,
    _SCRIPT_ENGINE,
    _TIMER_TOLERANCE,
    BPMN_NS,
    FORM_SCHEMA_PROPERTY,
    MANDATE_PROPERTY,
    SPIFF_NS,
    Clock,
    CommandServiceTask,
    DefinitionError,
    EngineError,
    FieldProblem,
    FormValidationError,
    HistoryEntry,
    Incident,
    KeptMessage,
    ParsedDefinition,
    PendingCommand,
    Problem,
    StepResult,
    UnknownCommandError,
    UnknownTaskError,
    UserTaskView,
    _has_explicit_result_variable,
    _issue_command,
    _tasks,
    active_element_ids,
    active_tasks,
    case_id_of,
    history,
    is_completed,
    take_new_history,
    use_clock,
)
from process_engine.scripting import RestrictedScriptEngine
from process_engine.state import (
    STATE_FORMAT,
    MigrationError,
    case_variables,
    deserialize,
    migrate,
    serialize,
)
from process_engine.stepping import (
    _command_tasks,
    _engine_error,
    _run_engine,
    next_timer_at,
    outstanding_commands,
    ready_user_tasks,
    step,
    waiting_message_names,
)

__all__ = [
    "BPMN_NS",
    "FORM_SCHEMA_PROPERTY",
    "MANDATE_PROPERTY",
    "SPIFF_NS",
    "STATE_FORMAT",
    "Clock",
    "CommandServiceTask",
    "DefinitionError",
    "EngineError",
    "FieldProblem",
    "FormValidationError",
    "HistoryEntry",
    "Incident",
    "KeptMessage",
    "MigrationError",
    "ParsedDefinition",
    "PendingCommand",
    "Problem",
    "RestrictedScriptEngine",
    "StepResult",
    "UnknownCommandError",
    "UnknownTaskError",
    "UserTaskView",
    "active_element_ids",
    "active_tasks",
    "case_id_of",
    "case_variables",
    "complete_command",
    "complete_user_task",
    "content_hash",
    "deliver_kept_messages",
    "deliver_message",
    "deserialize",
    "fail_command",
    "fire_due_timers",
    "free_text_problems",
    "history",
    "is_completed",
    "migrate",
    "next_timer_at",
    "outstanding_commands",
    "parse_definition",
    "ready_user_tasks",
    "required_mandate",
    "retry_incident",
    "serialize",
    "set_incident_variables",
    "start_instance",
    "step",
    "take_new_history",
    "use_clock",
    "validate_form",
    "waiting_message_names",
]

# --------------------------------------------------------------------------- instances


def start_instance(
    parsed: ParsedDefinition,
    message_name: str,
    payload: dict[str, Any],
    *,
    case_id: str,
    correlations: dict[str, Any] | None = None,
) -> tuple[BpmnWorkflow, StepResult]:
    """Create an instance and start it through its message start event.

    ``case_id`` is stored with the instance and makes command ids
    deterministic. Raises ValueError if ``message_name`` is not a start message.
    """
    if message_name not in parsed.start_message_names:
        raise ValueError(
            f"'{message_name}' does not start {parsed.process_id} "
            f"(start messages: {sorted(parsed.start_message_names)})"
        )
    workflow = BpmnWorkflow(parsed.spec, dict(parsed.subprocess_specs), script_engine=_SCRIPT_ENGINE)
    workflow.data[_CASE_ID_KEY] = case_id
    _run_engine(workflow)
    result = deliver_message(workflow, message_name, payload, correlations)
    if result is None:
        raise ValueError(f"start event for '{message_name}' did not accept the message")
    return workflow, result


def _find_open_command(workflow: BpmnWorkflow, command_id: str) -> tuple[Task, dict[str, Any]]:
    for task, record in _command_tasks(workflow):
        if record["id"] == command_id and record["status"] == "open":
            return task, record
    raise UnknownCommandError(f"no open command {command_id}")


def complete_command(workflow: BpmnWorkflow, command_id: str, result: dict[str, Any]) -> StepResult:
    """Apply a successful reply and continue the process.

    With a modelled ``resultVariable`` the result is stored under that name,
    otherwise its keys are merged into the task data. Raises
    :class:`UnknownCommandError` for late/duplicate replies (ack and drop them).
    """
    task, record = _find_open_command(workflow, command_id)
    spec = cast(CommandServiceTask, task.task_spec)
    if _has_explicit_result_variable(spec):
        task.data[spec.result_variable] = result
    else:
        task.data.update(result)
    record["status"] = "completed"
    try:
        task.complete()
    except WorkflowException as exc:
        raise _engine_error(exc) from exc
    return step(workflow)


def fail_command(
    workflow: BpmnWorkflow, command_id: str, error_code: str, message: str
) -> StepResult | Incident:
    """Apply a failed reply.

    Routes to an error boundary event on the service task when one catches
    ``error_code`` (an exact code match wins over a catch-all without code);
    the boundary receives ``{"code", "message"}`` as its payload. Otherwise the
    task stays parked and an :class:`Incident` is returned for the caller to
    store; :func:`retry_incident` re-issues the command.
    """
    task, record = _find_open_command(workflow, command_id)
    boundary = _matching_error_boundary(task, error_code)
    if boundary is None:
        record.update(status="incident", error_code=error_code, error_message=message)
        return Incident(
            command_id=record["id"],
            command_type=record["type"],
            element_id=task.task_spec.bpmn_id,
            task_id=str(task.id),
            attempt=int(record["attempt"]),
            error_code=error_code,
            message=message,
        )
    record.update(status="failed", error_code=error_code, error_message=message)
    definition = boundary.task_spec.event_definition
    event = BpmnEvent(
        ErrorEventDefinition(definition.name, code=error_code),
        payload={"code": error_code, "message": message},
    )
    # Targeted catch instead of workflow.catch(): the latter would hand the
    # error to *any* waiting error boundary in the process (e.g. the one on a
    # parallel branch's service task). These are the same two calls Spiff's
    # EventManager makes for a matching task.
    boundary.task_spec.catch(boundary, event)
    boundary.task_spec._update(boundary)
    return step(workflow)


def _matching_error_boundary(task: Task, error_code: str) -> Task | None:
    """Waiting error boundary on ``task``'s host: exact code first, then catch-all."""
    parent = task.parent
    if parent is None:
        return None
    candidates = [
        sibling
        for sibling in parent.children
        if isinstance(sibling.task_spec, BoundaryEvent)
        and isinstance(sibling.task_spec.event_definition, ErrorEventDefinition)
        and sibling.state == TaskState.WAITING
    ]
    exact = [c for c in candidates if c.task_spec.event_definition.code == error_code]
    catch_all = [c for c in candidates if c.task_spec.event_definition.code is None]
    return (exact or catch_all or [None])[0]


def retry_incident(workflow: BpmnWorkflow, command_id: str) -> StepResult:
    """Re-issue the command behind an incident with attempt+1 (new command id).

    Parameters are re-evaluated against the current task data, so data fixed
    by an operator in the meantime is picked up.
    """
    for task, record in _command_tasks(workflow):
        if record["id"] == command_id and record["status"] == "incident":
            try:
                _issue_command(task, attempt=int(record["attempt"]) + 1)
            except Exception as exc:
                raise EngineError(task.task_spec.bpmn_id, f"cannot evaluate parameters: {exc}") from exc
            return step(workflow)
    raise UnknownCommandError(f"no incident for command {command_id}")


def set_incident_variables(workflow: BpmnWorkflow, command_id: str, values: Mapping[str, Any]) -> None:
    """Set case variables on the task behind an incident (and on the workflow where the case keeps them), so
    that :func:`retry_incident` evaluates the command's parameters against the corrected data."""
    for task, record in _command_tasks(workflow):
        if record["id"] == command_id and record["status"] == "incident":
            task.data.update(values)
            for name, value in values.items():
                if name in workflow.data:
                    workflow.data[name] = value
            return
    raise UnknownCommandError(f"no incident for command {command_id}")


# --------------------------------------------------------------------------- messages


def deliver_message(
    workflow: BpmnWorkflow,
    name: str,
    payload: dict[str, Any],
    correlations: dict[str, Any] | None = None,
) -> StepResult | None:
    """Deliver a message; ``None`` means nothing waited for it (keep it).

    Routing to the right instance is the caller's job (by case id); Spiff's
    correlation check only applies if the model defines correlation keys.
    The payload lands in task data under the modelled messageVariable.
    """
    if name not in waiting_message_names(workflow):
        return None
    event = BpmnEvent(MessageEventDefinition(name), payload, correlations or {})
    try:
        workflow.send_event(event)
    except WorkflowException as exc:
        # Spiff raises a bare WorkflowException when no waiting task accepts the
        # event (e.g. correlation mismatch); subclasses are real failures.
        if type(exc) is WorkflowException:
            return None
        raise _engine_error(exc) from exc
    return step(workflow)


def deliver_kept_messages(
    workflow: BpmnWorkflow, kept: Sequence[KeptMessage]
) -> tuple[list[KeptMessage], StepResult | None]:
    """Retry kept messages in arrival order until none is accepted.

    Returns the messages still not accepted and the last step result (None if
    nothing was delivered). Loops because one delivery can make the instance
    wait for another kept message.
    """
    remaining = list(kept)
    last: StepResult | None = None
    progress = True
    while progress and remaining:
        progress = False
        for message in list(remaining):
            result = deliver_message(workflow, message.name, message.payload, message.correlations)
            if result is not None:
                remaining.remove(message)
                last, progress = result, True
                break
    return remaining, last


# --------------------------------------------------------------------------- timers


def fire_due_timers(workflow: BpmnWorkflow, now: datetime) -> StepResult:
    """Fire every timer due at or before ``now``, running the engine with ``now`` as the clock."""
    # Spiff only fires when due < now (strict); nudging by 1 µs makes a poller
    # that selects ``next_timer_at <= now`` never wake up for nothing.
    with use_clock(now + _TIMER_TOLERANCE):
        try:
            workflow.refresh_timers()
        except WorkflowException as exc:
            raise _engine_error(exc) from exc
        return step(workflow)


# --------------------------------------------------------------------------- user tasks


def complete_user_task(workflow: BpmnWorkflow, task_id: str, data: dict[str, Any],
                       recorded: Mapping[str, Any] | None = None) -> StepResult:
    """Validate ``data`` against the task's form schema, store it (plus ``recorded``: facts the engine adds,
    such as who signed, which the form itself may not set) and continue.

    Raises :class:`UnknownTaskError` if no such READY user task exists and
    :class:`FormValidationError` (listing every field problem) if the data
    does not match; the instance is untouched in both cases.
    """
    task = _ready_user_task(workflow, task_id)
    schema = _form_schema(task)
    problems = validate_form(schema, data) if schema is not None else []
    problems.extend(free_text_problems(data))
    if problems:
        raise FormValidationError(task.task_spec.bpmn_id, problems)
    submitted = {**data, **(recorded or {})}
    # SpiffWorkflow deep-merges form data into what the task inherited: a list such as the signer's
    # ``mandaten`` would become a mix of the previous signer's and this one's. What is submitted replaces.
    for name in submitted:
        task.data.pop(name, None)
    task.task_spec.add_data_from_form(task, submitted)
    try:
        task.run()
    except WorkflowException as exc:
        raise _engine_error(exc) from exc
    return step(workflow)


def _ready_user_task(workflow: BpmnWorkflow, task_id: str) -> Task:
    try:
        wanted = uuid.UUID(str(task_id))
    except ValueError as exc:
        raise UnknownTaskError(f"not a task id: {task_id!r}") from exc
    for task in _tasks(workflow, TaskState.READY):
        if task.id == wanted and isinstance(task.task_spec, UserTaskMixin):
            return task
    raise UnknownTaskError(f"no ready user task {task_id}")


