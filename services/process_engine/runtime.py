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

import ast
import gzip
import hashlib
import json
import math
import re
import threading
import uuid
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, Final, Literal, cast

from lxml import etree
from SpiffWorkflow.bpmn.parser.util import full_tag
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, WorkflowConverter
from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer
from SpiffWorkflow.bpmn.specs.mixins.events.intermediate_event import BoundaryEvent
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.bpmn.specs.mixins.user_task import UserTask as UserTaskMixin
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.exceptions import SpiffWorkflowException, WorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR, SpiffBpmnParser
from SpiffWorkflow.spiff.parser.task_spec import ServiceTaskParser
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.serializer.task_spec import ServiceTaskConverter
from SpiffWorkflow.spiff.specs.defaults import ServiceTask as SpiffServiceTask
from SpiffWorkflow.spiff.specs.event_definitions import ErrorEventDefinition, MessageEventDefinition
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from servicekit.personal_data import holds_bsn_like_number
from servicekit.vrije_tekst import CODE as BSN_CODE
from servicekit.vrije_tekst import REASON as BSN_IN_FREE_TEXT

from .scripting import RestrictedScriptEngine, check_script

__all__ = [
    "CommandServiceTask",
    "DefinitionError",
    "EngineError",
    "FieldProblem",
    "FormValidationError",
    "HistoryEntry",
    "Incident",
    "KeptMessage",
    "ParsedDefinition",
    "PendingCommand",
    "Problem",
    "StepResult",
    "UnknownCommandError",
    "UnknownTaskError",
    "UserTaskView",
    "active_element_ids",
    "case_id_of",
    "complete_command",
    "complete_user_task",
    "content_hash",
    "deliver_kept_messages",
    "deliver_message",
    "deserialize",
    "fail_command",
    "fire_due_timers",
    "history",
    "is_completed",
    "next_timer_at",
    "outstanding_commands",
    "parse_definition",
    "ready_user_tasks",
    "retry_incident",
    "serialize",
    "start_instance",
    "step",
    "take_new_history",
    "use_clock",
    "validate_form",
    "waiting_message_names",
]

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

# The stored state names its process instead of holding its spec: the spec is ~80 % of the JSON and most of
# the (de)serialisation time (issue 14), and the instance document already records the definition's content
# hash, whose parsed spec is cached (parse_definition). Spiff's own converter embeds the spec; this one leaves
# it out and takes it from the ParsedDefinition handed to ``restore``.
_SPEC_NAME_KEY: Final = "ips_spec"


class _SpecLessWorkflowConverter(BpmnWorkflowConverter):  # type: ignore[misc]
    """BpmnWorkflowConverter without ``spec``/``subprocess_specs`` (unless the spec is per instance, see
    :func:`_spec_is_per_instance`); restores with the parsed spec, or with an embedded one (older states)."""

    def to_dict(self, workflow: BpmnWorkflow) -> dict[str, Any]:
        if _spec_is_per_instance(workflow.spec):
            return cast(dict[str, Any], super().to_dict(workflow))
        dct: dict[str, Any] = WorkflowConverter.to_dict(self, workflow)
        dct[_SPEC_NAME_KEY] = workflow.spec.name
        dct["subprocesses"] = self.mapping_to_dict(workflow.subprocesses)
        dct["bpmn_events"] = self.registry.convert(workflow.bpmn_events)
        return dct

    def from_dict(self, dct: dict[str, Any], parsed: ParsedDefinition | None = None) -> BpmnWorkflow:
        if parsed is None or _spec_is_per_instance(parsed.spec):
            if "spec" not in dct:
                raise ValueError("this state holds no spec of its own; restore it with its ParsedDefinition")
            return cast(BpmnWorkflow, super().from_dict(dct))
        # A state written with its spec (before issue 14) is upgraded here: its spec is the parsed one of
        # the same content hash, so the copy is dropped unread and the next save leaves it out.
        for key in ("spec", "subprocess_specs", _SPEC_NAME_KEY):
            dct.pop(key, None)
        workflow = self.target_class(parsed.spec, dict(parsed.subprocess_specs), script_engine=_SCRIPT_ENGINE,
                                     deserializing=True)
        workflow.tasks = self.mapping_from_dict(dct["tasks"], uuid.UUID, workflow=workflow)
        workflow.task_tree = workflow.tasks.get(uuid.UUID(dct["root"]))
        self.set_default_attributes(workflow, dct)
        self.subprocesses_from_dict(dct["subprocesses"], workflow)
        workflow.bpmn_events = self.registry.restore(dct.pop("bpmn_events", []))
        return cast(BpmnWorkflow, workflow)


def _spec_is_per_instance(spec: Any) -> bool:
    """Whether a running instance changes its spec. Spiff connects an event subprocess (or a collaboration
    participant) started by a message, signal, ... to the spec's start when it is first triggered
    (``BpmnStartTask.trigger_wf``); such a spec is not the parsed one any more, and sharing it would leak one
    instance's trigger into the others. Those instances keep their own copy, embedded in their state."""
    return bool(getattr(spec.start, "trigger_specs", None))


_SERIALIZER: Final = BpmnWorkflowSerializer(
    BpmnWorkflowSerializer.configure({**SPIFF_CONFIG, CommandServiceTask: ServiceTaskConverter,
                                      BpmnWorkflow: _SpecLessWorkflowConverter})
)


# --------------------------------------------------------------------------- definitions

_DEFINITION_CACHE: OrderedDict[tuple[str, str | None], ParsedDefinition] = OrderedDict()
_CACHE_LOCK = threading.Lock()

# (namespace, local name) of elements whose text is Python code for Spiff.
_CODE_ELEMENTS: Final[frozenset[tuple[str, str]]] = frozenset(
    {
        (BPMN_NS, "script"),
        (BPMN_NS, "conditionExpression"),
        (BPMN_NS, "timeDuration"),
        (BPMN_NS, "timeDate"),
        (BPMN_NS, "timeCycle"),
        (BPMN_NS, "loopCardinality"),
        (BPMN_NS, "completionCondition"),
        (BPMN_NS, "condition"),
        (BPMN_NS, "messagePath"),
        (SPIFF_NS, "preScript"),
        (SPIFF_NS, "postScript"),
        (SPIFF_NS, "messagePayload"),
        (SPIFF_NS, "payloadExpression"),
        (SPIFF_NS, "expression"),
    }
)
_DMN_CODE_PARENTS: Final = frozenset({"inputExpression", "outputEntry"})


def content_hash(files: Mapping[str, bytes]) -> str:
    """sha256 over the sorted file names and their bytes (length-prefixed, so unambiguous)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        for part in (name.encode("utf-8"), files[name]):
            digest.update(len(part).to_bytes(8, "big"))
            digest.update(part)
    return digest.hexdigest()


def parse_definition(
    files: Mapping[str, bytes],
    message_catalogue: set[str] | frozenset[str] | None = None,
    process_id: str | None = None,
) -> ParsedDefinition:
    """Parse and validate BPMN (``*.bpmn``) and DMN (``*.dmn``) files.

    Picks the single executable process (or ``process_id`` when several are
    executable). Raises :class:`DefinitionError` listing every problem found:
    XML/XSD/Spiff parse errors, code rejected by ``check_script``, invalid
    form schemas and (if a catalogue is given) unknown message names.
    Successful parses are cached by content hash; the catalogue check is
    repeated on every call because catalogues change independently.
    """
    key = (content_hash(files), process_id)
    with _CACHE_LOCK:
        parsed = _DEFINITION_CACHE.get(key)
        if parsed is not None:
            _DEFINITION_CACHE.move_to_end(key)
    if parsed is None:
        parsed = _parse_uncached(files, key[0], process_id)
        with _CACHE_LOCK:
            _DEFINITION_CACHE[key] = parsed
            while len(_DEFINITION_CACHE) > _CACHE_SIZE:
                _DEFINITION_CACHE.popitem(last=False)
    if message_catalogue is not None:
        unknown = [
            Problem(element_id, file, f"message '{name}' is not in the message catalogue")
            for element_id, file, name in parsed.message_usages
            if name not in message_catalogue
        ]
        if unknown:
            raise DefinitionError(unknown)
    return parsed


def _parse_uncached(files: Mapping[str, bytes], digest: str, process_id: str | None) -> ParsedDefinition:
    problems: list[Problem] = []
    parser = _IpsBpmnParser(validator=VALIDATOR)
    usages: list[tuple[str | None, str, str]] = []
    for name in sorted(files):
        root = _load_xml(name, files[name], problems)
        if root is None:
            continue
        problems.extend(_code_problems(root, name))
        if name.endswith(".bpmn"):
            problems.extend(_form_schema_problems(root, name))
            usages.extend(_message_usages(root, name))
        problems.extend(_add_to_parser(parser, root, name))
    if problems:
        raise DefinitionError(problems)
    chosen = _choose_process(parser, process_id)
    try:
        spec = parser.get_spec(chosen)
        subprocess_specs = parser.get_subprocess_specs(chosen)
    except ValidationException as exc:
        raise DefinitionError([_problem_from_validation(exc)]) from exc
    except SpiffWorkflowException as exc:
        raise DefinitionError([Problem(None, None, str(exc))]) from exc
    return ParsedDefinition(
        content_hash=digest,
        process_id=chosen,
        spec=spec,
        subprocess_specs=subprocess_specs,
        file_names=tuple(sorted(files)),
        start_message_names=_start_message_names(spec),
        message_usages=tuple(usages),
    )


def _load_xml(name: str, data: bytes, problems: list[Problem]) -> Any:
    """Parse XML safely (no entities, no network); record a problem on failure."""
    if not name.endswith((".bpmn", ".dmn")):
        problems.append(Problem(None, name, "unsupported file type (expected .bpmn or .dmn)"))
        return None
    xml_parser = etree.XMLParser(resolve_entities=False, no_network=True)
    try:
        return etree.fromstring(data, parser=xml_parser)
    except etree.XMLSyntaxError as exc:
        problems.append(Problem(None, name, f"XML syntax error: {exc}"))
        return None


def _add_to_parser(parser: _IpsBpmnParser, root: Any, name: str) -> list[Problem]:
    try:
        if name.endswith(".dmn"):
            parser.add_dmn_xml(root, filename=name)
        else:
            parser.add_bpmn_xml(root, filename=name)
    except ValidationException as exc:
        return [_problem_from_validation(exc, name)]
    return []


def _problem_from_validation(exc: ValidationException, file: str | None = None) -> Problem:
    line = f" (line {exc.line_number})" if getattr(exc, "line_number", "") else ""
    message = exc.args[0] if exc.args else str(exc)
    return Problem(getattr(exc, "id", None) or None, exc.file_name or file, f"{message}{line}")


def _choose_process(parser: _IpsBpmnParser, process_id: str | None) -> str:
    executable: list[str] = [str(pid) for pid in parser.get_process_ids()]
    if process_id is not None:
        if process_id not in executable:
            raise DefinitionError([Problem(process_id, None, "no executable process with this id")])
        return process_id
    if len(executable) != 1:
        found = ", ".join(executable) or "none"
        raise DefinitionError(
            [Problem(None, None, f"expected exactly one executable process, found: {found}")]
        )
    return executable[0]


def _owning_element(node: Any) -> Any:
    """The diagram element a piece of code belongs to (None if no ancestor has an id).

    Event definitions and loop characteristics carry ids of their own in
    bpmn-js output, but problems should point at the visible event/task.
    """
    current = node
    while current is not None:
        qname = etree.QName(current)
        skip = qname.localname.endswith("EventDefinition") or qname.localname.endswith("LoopCharacteristics")
        if not skip and qname.namespace != SPIFF_NS and current.get("id"):
            return current
        current = current.getparent()
    return None


def _owning_element_id(node: Any) -> str | None:
    """Id of the diagram element a piece of code belongs to (see :func:`_owning_element`)."""
    owner = _owning_element(node)
    return None if owner is None else cast(str, owner.get("id"))


def _code_location(node: Any) -> tuple[str | None, str]:
    """(element id, kind) of a piece of code: kind is "<element>/<code element>" such as
    "scriptTask/script" or "userTask/postScript", or the cell's own kind ("inputEntry") in a DMN."""
    owner = _owning_element(node)
    code_kind = etree.QName(node).localname
    if owner is None:
        return None, code_kind
    owner_kind = etree.QName(owner).localname
    return cast(str, owner.get("id")), owner_kind if owner is node else f"{owner_kind}/{code_kind}"


def _code_problems(root: Any, file: str) -> Iterator[Problem]:
    """Run every piece of code embedded in one document through the script sandbox (check_script), compiled
    as Spiff will run it: scripts as statements, everything else as an expression."""
    for element_id, kind, code in _embedded_code(root):
        mode: Literal["exec", "eval"] = "exec" if kind.endswith(_SCRIPT_KINDS) else "eval"
        for violation in check_script(code, mode):
            yield Problem(element_id, file, f"{violation} in `{code.strip()[:80]}`", kind)


# Code kinds Spiff executes as statements (script_engine.execute); everything else it evaluates.
_SCRIPT_KINDS: Final = ("/script", "/preScript", "/postScript")


def _embedded_code(root: Any) -> Iterator[tuple[str | None, str, str]]:
    """(owning element id, kind, code) for every piece of text Spiff will eval/exec."""
    for node in root.iter(etree.Element):
        qname = etree.QName(node)
        has_text = bool((node.text or "").strip())
        is_code = (qname.namespace, qname.localname) in _CODE_ELEMENTS or _is_correlation_expression(node)
        if has_text and is_code:
            yield *_code_location(node), node.text
        elif qname.namespace == SPIFF_NS and qname.localname == "parameter" and node.get("value"):
            yield *_code_location(node), node.get("value")
        elif has_text and qname.localname == "text":
            yield from _dmn_code(node)


def _is_correlation_expression(node: Any) -> bool:
    """formalExpression is code only inside a correlation retrieval expression
    (elsewhere, e.g. resource assignments, Spiff ignores it)."""
    parent = node.getparent()
    return (
        etree.QName(node).localname == "formalExpression"
        and parent is not None
        and etree.QName(parent).localname == "correlationPropertyRetrievalExpression"
    )


def _dmn_code(text_node: Any) -> Iterator[tuple[str | None, str, str]]:
    """DMN cells: input/output expressions are plain Python; input entries are
    unary tests ('>= 5', '"x"', '4 < ? < 6') that Spiff completes itself."""
    parent = text_node.getparent()
    kind = etree.QName(parent).localname if parent is not None else ""
    if kind in _DMN_CODE_PARENTS:
        yield *_code_location(parent), cast(str, text_node.text).strip()
    elif kind == "inputEntry" and text_node.text != "-":
        yield *_code_location(parent), _dmn_input_test(parent, cast(str, text_node.text))


# Spiff's DMNEngine.evaluate: a '?' outside quotes stands for the input value.
_DMN_QUESTION_MARK: Final = re.compile(r"""(\?)(?=(?:[^'"]|['"][^'"]*['"])*$)""")


def _dmn_input_test(entry: Any, text: str) -> str:
    """The expression Spiff 3.2 evaluates for an input entry (DMNEngine.evaluate), so that the deploy
    check sees exactly what will run: with a '?' the test itself (the input value is a variable
    ``dmninputexpr``); otherwise ``(input) == (test)``, or ``input`` + ``test`` when the test starts with
    an operator ('>= 5')."""
    test = _DMN_QUESTION_MARK.sub("dmninputexpr", text)
    if "dmninputexpr" in test:
        return test
    rule = entry.getparent()
    table = rule.getparent() if rule is not None else None
    inputs = [] if table is None else [n for n in table if etree.QName(n).localname == "input"]
    entries = [] if rule is None else [n for n in rule if etree.QName(n).localname == "inputEntry"]
    column = entries.index(entry)
    expression = "dmninputexpr"
    if column < len(inputs):
        texts = [n for n in inputs[column].iter(etree.Element) if etree.QName(n).localname == "text"]
        if texts and texts[0].text:
            expression = texts[0].text
    try:
        ast.parse(test)
    except SyntaxError:
        return f"{expression}{test}"
    return f"({expression}) == ({test})"


def _form_schema_problems(root: Any, file: str) -> Iterator[Problem]:
    for prop in root.iter(f"{{{SPIFF_NS}}}property"):
        if prop.get("name") != FORM_SCHEMA_PROPERTY:
            continue
        try:
            schema = json.loads(prop.get("value") or "")
        except json.JSONDecodeError as exc:
            yield Problem(_owning_element_id(prop), file, f"formSchema is not valid JSON: {exc}")
            continue
        if not isinstance(schema, dict):
            yield Problem(_owning_element_id(prop), file, "formSchema must be a JSON object")


def _message_usages(root: Any, file: str) -> Iterator[tuple[str | None, str, str]]:
    """(element id, file, message name) for every element referring to a message."""
    names = {m.get("id"): m.get("name") for m in root.iter(f"{{{BPMN_NS}}}message")}
    for node in root.iter(etree.Element):
        ref = node.get("messageRef")
        local = etree.QName(node).localname
        if ref is None or local == "correlationPropertyRetrievalExpression":
            continue
        name = names.get(ref) or ref
        yield _owning_element_id(node), file, name


def _start_message_names(spec: Any) -> frozenset[str]:
    return frozenset(
        ts.event_definition.name
        for ts in spec.task_specs.values()
        if isinstance(ts, StartEvent) and isinstance(ts.event_definition, MessageEventDefinition)
    )


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


def case_id_of(workflow: BpmnWorkflow) -> str | None:
    """The case id given to :func:`start_instance`."""
    value = workflow.data.get(_CASE_ID_KEY)
    return None if value is None else str(value)


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


def _tasks(workflow: BpmnWorkflow, state: int) -> list[Task]:
    """Tasks in ``state`` in the top workflow and all its subprocesses, each once (Spiff 3.2's
    ``get_tasks`` of the top workflow already descends into subprocesses)."""
    tasks: dict[uuid.UUID, Task] = {t.id: t for t in workflow.get_tasks(state=state)}
    for sub in workflow.subprocesses.values():
        for task in sub.get_tasks(state=state):
            tasks.setdefault(task.id, task)
    return list(tasks.values())


def is_completed(workflow: BpmnWorkflow) -> bool:
    """True once every path reached an end (or was cancelled)."""
    return bool(workflow.is_completed())


def active_element_ids(workflow: BpmnWorkflow) -> list[str]:
    """Sorted BPMN ids of elements that are ready, running or waiting.

    Boundary events are left out: they are part of their host task.
    """
    ids = {
        t.task_spec.bpmn_id
        for t in _tasks(workflow, _ACTIVE_STATES)
        if getattr(t.task_spec, "bpmn_id", None) and not isinstance(t.task_spec, BoundaryEvent)
    }
    return sorted(ids)


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


# --------------------------------------------------------------------------- commands


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


def waiting_message_names(workflow: BpmnWorkflow) -> list[str]:
    """Sorted names of messages something in the instance currently waits for."""
    names = {ev.name for ev in workflow.waiting_events() if ev.event_type == MessageEventDefinition.__name__}
    return sorted(names)


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


def _form_schema(task: Task) -> dict[str, Any] | None:
    return _json_property(task, FORM_SCHEMA_PROPERTY)


def _json_property(task: Task, name: str) -> dict[str, Any] | None:
    properties = getattr(task.task_spec, "extensions", {}).get("properties", {})
    raw = properties.get(name)
    return cast(dict[str, Any], json.loads(raw)) if raw else None


def required_mandate(mandate: Mapping[str, Any] | None, data: Mapping[str, Any]) -> str | None:
    """The kind of decision completing a task with ``data`` takes, per its ``mandaat`` property (or None)."""
    if not mandate:
        return None
    answer = data.get(str(mandate.get("veld", "")))
    kinds: Mapping[str, Any] = mandate.get("soorten", {})
    kind = kinds.get(str(answer)) if answer is not None else None
    return str(kind) if kind else None


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
    task.task_spec.add_data_from_form(task, {**data, **(recorded or {})})
    try:
        task.run()
    except WorkflowException as exc:
        raise _engine_error(exc) from exc
    return step(workflow)


def free_text_problems(data: Any, path: str = "") -> list[FieldProblem]:
    """Every text in the form data that holds a BSN-like number (``servicekit.personal_data``), by field path.

    Whatever a form holds becomes a case variable, and from there a beschikking, a document and commands; so
    every string is checked, whatever its schema says (a form without a schema too). The value is never quoted.
    """
    if isinstance(data, str):
        return ([FieldProblem(path or "(form)", BSN_IN_FREE_TEXT, BSN_CODE)]
                if holds_bsn_like_number(data) else [])
    prefix = f"{path}." if path else ""
    if isinstance(data, Mapping):
        return [p for key, value in data.items() for p in free_text_problems(value, f"{prefix}{key}")]
    if isinstance(data, list | tuple):
        return [p for i, value in enumerate(data) for p in free_text_problems(value, f"{path or '(form)'}[{i}]")]
    return []


def _ready_user_task(workflow: BpmnWorkflow, task_id: str) -> Task:
    try:
        wanted = uuid.UUID(str(task_id))
    except ValueError as exc:
        raise UnknownTaskError(f"not a task id: {task_id!r}") from exc
    for task in _tasks(workflow, TaskState.READY):
        if task.id == wanted and isinstance(task.task_spec, UserTaskMixin):
            return task
    raise UnknownTaskError(f"no ready user task {task_id}")


_JSON_TYPES: Final[dict[str, Callable[[Any], bool]]] = {
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "string": lambda v: isinstance(v, str),
    "boolean": lambda v: isinstance(v, bool),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v),
    "null": lambda v: v is None,
}


def validate_form(schema: Mapping[str, Any], data: Any, path: str = "") -> list[FieldProblem]:
    """Check ``data`` against a JSON-schema subset and return every problem.

    Supported: type (incl. lists of types), required, properties,
    additionalProperties: false, enum, minimum/maximum, minLength/maxLength,
    items. Unknown keywords are ignored.
    """
    where = path or "(form)"
    expected = schema.get("type")
    if expected is not None:
        types = expected if isinstance(expected, list) else [expected]
        if not any(_JSON_TYPES.get(t, lambda v: True)(data) for t in types):
            return [FieldProblem(where, f"must be of type {' or '.join(types)}")]
    problems: list[FieldProblem] = []
    if "enum" in schema and data not in schema["enum"]:
        problems.append(FieldProblem(where, f"must be one of {schema['enum']}"))
    if "const" in schema and data != schema["const"]:
        problems.append(FieldProblem(where, f"must be {schema['const']!r}"))
    if "pattern" in schema and isinstance(data, str) and re.search(schema["pattern"], data) is None:
        problems.append(FieldProblem(where, f"must match {schema['pattern']}"))
    if isinstance(schema.get("if"), dict):
        # if/then/else: the condition is checked quietly, the chosen branch reports its problems
        branch = schema.get("then") if not validate_form(schema["if"], data, path) else schema.get("else")
        if isinstance(branch, dict):
            problems.extend(validate_form(branch, data, path))
    problems.extend(_range_problems(schema, data, where))
    if isinstance(data, dict):
        problems.extend(_object_problems(schema, data, path))
    if isinstance(data, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(data):
            problems.extend(validate_form(schema["items"], item, f"{where}[{index}]"))
    return problems


def _range_problems(schema: Mapping[str, Any], data: Any, where: str) -> Iterable[FieldProblem]:
    if isinstance(data, int | float) and not isinstance(data, bool):
        if "minimum" in schema and data < schema["minimum"]:
            yield FieldProblem(where, f"must be at least {schema['minimum']}")
        if "maximum" in schema and data > schema["maximum"]:
            yield FieldProblem(where, f"must be at most {schema['maximum']}")
    if isinstance(data, str):
        if "minLength" in schema and len(data) < schema["minLength"]:
            yield FieldProblem(where, f"must have at least {schema['minLength']} characters")
        if "maxLength" in schema and len(data) > schema["maxLength"]:
            yield FieldProblem(where, f"must have at most {schema['maxLength']} characters")


def _object_problems(schema: Mapping[str, Any], data: dict[str, Any], path: str) -> Iterable[FieldProblem]:
    properties: Mapping[str, Any] = schema.get("properties", {})
    prefix = f"{path}." if path else ""
    for name in schema.get("required", []):
        if name not in data:
            yield FieldProblem(f"{prefix}{name}", "is required")
    for name, value in data.items():
        if name in properties:
            yield from validate_form(properties[name], value, f"{prefix}{name}")
        elif schema.get("additionalProperties") is False:
            yield FieldProblem(f"{prefix}{name}", "is not an allowed field")


# --------------------------------------------------------------------------- persistence


#: How a state blob starts: this prefix, then zlib (level 1) of Spiff's JSON without the spec. Blobs
#: written before issue 14 are gzip (``\x1f\x8b``) of the JSON with the spec, and still load.
STATE_FORMAT: Final = b"IPS2"
_GZIP_MAGIC: Final = b"\x1f\x8b"
#: zlib level 1: the spec-less JSON of an IPS case is 15-25 KB and compresses about 5x at level 1 in
#: ~0.1 ms; higher levels save a few hundred bytes for several times the time (measured for issue 14).
_ZLIB_LEVEL: Final = 1


def serialize(workflow: BpmnWorkflow) -> bytes:
    """The instance's state without its spec (see :data:`STATE_FORMAT`). Store as opaque bytes: restoring
    depends on the exact JSON (key order), so never re-encode it."""
    text = cast(str, _SERIALIZER.serialize_json(workflow))
    return STATE_FORMAT + zlib.compress(text.encode("utf-8"), _ZLIB_LEVEL)


def deserialize(parsed: ParsedDefinition, blob: bytes) -> BpmnWorkflow:
    """Restore an instance saved with :func:`serialize` (or, before issue 14, with the spec embedded and
    gzipped) onto ``parsed``, with the restricted script engine (Spiff would otherwise restore it with its
    unrestricted default).

    Raises ValueError if the blob belongs to another process or is no state at all.
    """
    if blob.startswith(STATE_FORMAT):
        text = zlib.decompress(blob[len(STATE_FORMAT):])
    elif blob.startswith(_GZIP_MAGIC):
        text = gzip.decompress(blob)
    else:
        raise ValueError("not an instance state")
    dct = json.loads(text)
    current = dct.get(_SERIALIZER.VERSION_KEY) == _SERIALIZER.VERSION
    name = dct.get(_SPEC_NAME_KEY) or (dct.get("spec") or {}).get("name")
    if name != parsed.process_id:
        raise ValueError(f"instance is of process {name}, not {parsed.process_id}")
    _SERIALIZER.migrate(dct)
    # An older serializer version may rewrite the embedded spec in its migration: restore that one as it is.
    workflow = _SERIALIZER.from_dict(dct, parsed=parsed if current else None)
    workflow.script_engine = _SCRIPT_ENGINE
    return cast(BpmnWorkflow, workflow)


# --------------------------------------------------------------------------- migration


def migrate(workflow: BpmnWorkflow, target: ParsedDefinition) -> list[str]:
    """Move a waiting instance onto ``target`` (same process, newer version).

    Tasks are aligned by BPMN element id; READY/WAITING branches are re-predicted on the new spec.
    Refuses (MigrationError) when an element the instance is active in no longer exists. Returns the
    element ids that were dropped from the prediction.
    """
    from SpiffWorkflow.bpmn.util.diff import diff_workflow, migrate_workflow

    if workflow.spec.name != target.process_id:
        raise MigrationError(f"instance is of process {workflow.spec.name}, not {target.process_id}")
    active = set(active_element_ids(workflow))
    top_diff, sub_diffs = diff_workflow(_SERIALIZER.registry, workflow, target.spec, dict(target.subprocess_specs))
    missing = sorted(active & {spec.bpmn_id for spec in top_diff.removed if getattr(spec, "bpmn_id", None)})
    if missing:
        raise MigrationError(f"active element(s) {', '.join(missing)} do not exist in the new definition")
    if any(diff is None for diff in sub_diffs.values()):
        raise MigrationError("a running subprocess has no counterpart in the new definition")
    removed = migrate_workflow(top_diff, workflow, target.spec)
    for sp_id, diff in sub_diffs.items():
        if diff is not None:
            sub = workflow.subprocesses[sp_id]
            migrate_workflow(diff, sub, target.subprocess_specs.get(sub.spec.name, sub.spec))
    workflow.subprocess_specs = dict(target.subprocess_specs)
    return [t.task_spec.bpmn_id for t in removed if getattr(t.task_spec, "bpmn_id", None)]


class MigrationError(ValueError):
    """The instance cannot move to the requested definition."""


def case_variables(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The data the case currently carries: workflow data plus the data of every active task.

    In SpiffWorkflow data lives on tasks and flows along the branches, so the active tasks hold what the
    process knows now; the workflow's own data holds what was set for the whole instance.
    """
    merged: dict[str, Any] = {}
    active = _tasks(workflow, _ACTIVE_STATES)
    if not active and getattr(workflow, "last_task", None) is not None:
        active = [workflow.last_task]  # a finished case: what its last step knew
    for task in active:
        merged.update(task.data)
    merged.update({k: v for k, v in workflow.data.items() if k != "data_objects"})
    # BPMN data objects hold case-level facts (e.g. an overdue flag set by a branch that has ended)
    merged.update(workflow.data.get("data_objects") or {})
    return merged
