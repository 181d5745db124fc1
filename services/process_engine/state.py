"""An instance's state as stored: Spiff's JSON without the process spec, compressed (issue 14), restored onto
the parsed definition of its content hash; and the move of a waiting instance onto a newer definition.
"""

from __future__ import annotations

import gzip
import json
import os
import uuid
import zlib
from typing import Any, Final, cast

from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.serializer.default.workflow import BpmnWorkflowConverter, TaskConverter, WorkflowConverter
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.serializer.task_spec import ServiceTaskConverter
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskState

from process_engine.model import (
    _ACTIVE_STATES,
    _SCRIPT_ENGINE,
    CommandServiceTask,
    ParsedDefinition,
    _tasks,
    active_element_ids,
)

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


#: Set to 1 (the tests do) to have every kept task dict compared with a fresh one: a difference raises.
_CHECK_KEPT: Final = os.environ.get("IPSFLOW_ENGINE_CHECK_KEPT_TASKS") == "1"
_KEPT_ATTRIBUTE: Final = "_ips_kept_dict"


class KeptTaskDiffers(AssertionError):
    """A finished task's kept dict is not what Spiff's converter gives now (only with ``_CHECK_KEPT``)."""


class _KeptTaskConverter(TaskConverter):  # type: ignore[misc]
    """Spiff's task converter, keeping the dict of a finished task on the task (issue 14).

    The engine keeps a case's workflow in memory between messages (``WorkflowCache``) and serialises it after
    each one. Most of an IPS case's tasks are finished (32 of 49 once the trajectory runs), and converting them
    again is most of the serialiser's time: each task's data is compared with its parent's (Spiff stores the
    delta) and its ``internal_data`` (the command record) is converted value by value.

    A finished task's dict is reused while everything it was made from is unchanged: the task's state, its time
    and trigger, its parent and children, which data dicts it and its parent hold, and how many entries its
    ``internal_data`` has (``take_new_history`` adds one). What this cannot see is a finished task's data or
    ``internal_data`` changed in place. Spiff gives a task the data of its parent as copies and changes only
    unfinished tasks; the engine changes ``internal_data`` only of started command tasks and marks history
    (``take_new_history``) before it serialises. ``IPSFLOW_ENGINE_CHECK_KEPT_TASKS=1`` makes every reuse compare
    the kept dict with a fresh one, and the test suite runs with it.

    Measured on an IPS case whose trajectory runs (49 tasks): ``to_dict`` 1.1 -> 0.27 ms once the dicts are kept,
    the same JSON byte for byte; the kept dicts take about 60 KB per case, 15 MB for a full ``WorkflowCache``.
    """

    def to_dict(self, task: Task) -> dict[str, Any]:
        if not task.has_state(TaskState.COMPLETED | TaskState.CANCELLED):
            return cast(dict[str, Any], super().to_dict(task))
        parent = task.parent
        key = (task.state, task.last_state_change, task.triggered, task._parent, tuple(task._children),
               id(task.data), len(task.internal_data),
               None if parent is None else (id(parent.data), parent.state, parent.last_state_change))
        kept = getattr(task, _KEPT_ATTRIBUTE, None)
        if kept is not None and kept[0] == key:
            if _CHECK_KEPT:  # the registry adds the typename to the dict it was given
                fresh, was = super().to_dict(task), {k: v for k, v in kept[1].items() if k != "typename"}
                if fresh != was:
                    raise KeptTaskDiffers(f"task {task.id} ({task.task_spec.name}): kept {was!r}, now {fresh!r}")
            return cast(dict[str, Any], kept[1])
        dct = cast(dict[str, Any], super().to_dict(task))
        setattr(task, _KEPT_ATTRIBUTE, (key, dct))
        return dct


_SERIALIZER: Final = BpmnWorkflowSerializer(
    BpmnWorkflowSerializer.configure({**SPIFF_CONFIG, CommandServiceTask: ServiceTaskConverter,
                                      BpmnWorkflow: _SpecLessWorkflowConverter, Task: _KeptTaskConverter})
)


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


def case_variables(workflow: BpmnWorkflow, active: list[Any] | None = None) -> dict[str, Any]:
    """The data the case currently carries: workflow data plus the data of every active task (``active``:
    ``model.active_tasks``, if taken already).

    In SpiffWorkflow data lives on tasks and flows along the branches, so the active tasks hold what the
    process knows now; the workflow's own data holds what was set for the whole instance.
    """
    merged: dict[str, Any] = {}
    active = _tasks(workflow, _ACTIVE_STATES) if active is None else list(active)
    if not active and getattr(workflow, "last_task", None) is not None:
        active = [workflow.last_task]  # a finished case: what its last step knew
    for task in active:
        merged.update(task.data)
    merged.update({k: v for k, v in workflow.data.items() if k != "data_objects"})
    # BPMN data objects hold case-level facts (e.g. an overdue flag set by a branch that has ended)
    merged.update(workflow.data.get("data_objects") or {})
    return merged
