"""The stored instance state without its process spec (issue 14): what it holds, that restoring it onto the
cached parsed definition gives back the same instance (subprocess, call activity, boundary timer and message
waits included), and that a state stored with its spec embedded, as before, still loads and continues."""

from __future__ import annotations

import gzip
import json
import zlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from SpiffWorkflow.bpmn.serializer import BpmnWorkflowSerializer
from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG
from SpiffWorkflow.spiff.serializer.task_spec import ServiceTaskConverter
from SpiffWorkflow.util.task import TaskState

from process_engine import runtime as rt
from process_engine import state

pytestmark = pytest.mark.unit

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
START, STOP = "ips.t.gestart.v1", "ips.t.stop.v1"

#: Spiff's serializer as the engine configured it before issue 14: the whole instance, spec included. Its
#: gzipped JSON is byte for byte what ``runtime.serialize`` stored then.
WITH_SPEC = BpmnWorkflowSerializer(
    BpmnWorkflowSerializer.configure({**SPIFF_CONFIG, rt.CommandServiceTask: ServiceTaskConverter}))

BPMN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core" id="D" targetNamespace="x">
  <bpmn:message id="M_start" name="ips.t.gestart.v1"/>
  <bpmn:message id="M_stop" name="ips.t.stop.v1"/>
  <bpmn:process id="hoofd" isExecutable="true">
    <bpmn:startEvent id="Begin"><bpmn:messageEventDefinition messageRef="M_start"><bpmn:extensionElements>
      <spiffworkflow:messageVariable>aanvraag</spiffworkflow:messageVariable></bpmn:extensionElements>
    </bpmn:messageEventDefinition></bpmn:startEvent>
    <bpmn:subProcess id="Sub" name="Deelproces">
      <bpmn:startEvent id="SubStart"/>
      <bpmn:serviceTask id="Registreer" name="Registreer">
        <bpmn:extensionElements><spiffworkflow:serviceTaskOperator id="ips.t.registreer.v1">
          <spiffworkflow:parameters><spiffworkflow:parameter id="nummer" type="str" value="aanvraag['nummer']"/>
          </spiffworkflow:parameters></spiffworkflow:serviceTaskOperator></bpmn:extensionElements>
      </bpmn:serviceTask>
      <bpmn:endEvent id="SubEnd"/>
      <bpmn:sequenceFlow id="S1" sourceRef="SubStart" targetRef="Registreer"/>
      <bpmn:sequenceFlow id="S2" sourceRef="Registreer" targetRef="SubEnd"/>
    </bpmn:subProcess>
    <bpmn:boundaryEvent id="Termijn" attachedToRef="Sub">
      <bpmn:timerEventDefinition><bpmn:timeDuration>"PT1H"</bpmn:timeDuration></bpmn:timerEventDefinition>
    </bpmn:boundaryEvent>
    <bpmn:boundaryEvent id="Gestopt" attachedToRef="Sub">
      <bpmn:messageEventDefinition messageRef="M_stop"/>
    </bpmn:boundaryEvent>
    <bpmn:callActivity id="Beoordeling" name="Beoordeling" calledElement="beoordeling"/>
    <bpmn:endEvent id="Einde"/>
    <bpmn:endEvent id="EndVerlopen"/>
    <bpmn:endEvent id="EndGestopt"/>
    <bpmn:sequenceFlow id="F1" sourceRef="Begin" targetRef="Sub"/>
    <bpmn:sequenceFlow id="F2" sourceRef="Sub" targetRef="Beoordeling"/>
    <bpmn:sequenceFlow id="F3" sourceRef="Beoordeling" targetRef="Einde"/>
    <bpmn:sequenceFlow id="F4" sourceRef="Termijn" targetRef="EndVerlopen"/>
    <bpmn:sequenceFlow id="F5" sourceRef="Gestopt" targetRef="EndGestopt"/>
  </bpmn:process>
  <bpmn:process id="beoordeling" isExecutable="true">
    <bpmn:startEvent id="CStart"/>
    <bpmn:userTask id="Beoordeel" name="Beoordeel"/>
    <bpmn:endEvent id="CEnd"/>
    <bpmn:sequenceFlow id="C1" sourceRef="CStart" targetRef="Beoordeel"/>
    <bpmn:sequenceFlow id="C2" sourceRef="Beoordeel" targetRef="CEnd"/>
  </bpmn:process>
</bpmn:definitions>
"""


@pytest.fixture(scope="module")
def parsed() -> rt.ParsedDefinition:
    return rt.parse_definition({"deelprocessen.bpmn": BPMN.encode()}, process_id="hoofd")


def _started(parsed: rt.ParsedDefinition) -> tuple[BpmnWorkflow, rt.StepResult]:
    with rt.use_clock(T0):
        return rt.start_instance(parsed, START, {"nummer": "N-1"}, case_id="zaak-1")


def _whole(workflow: BpmnWorkflow) -> dict[str, Any]:
    """Everything Spiff knows of the instance, its spec included, as plain data (to compare two instances)."""
    return json.loads(WITH_SPEC.serialize_json(workflow))


def _state_json(blob: bytes) -> dict[str, Any]:
    assert blob.startswith(rt.STATE_FORMAT)
    return json.loads(zlib.decompress(blob[len(rt.STATE_FORMAT):]))


def _same(a: BpmnWorkflow, b: BpmnWorkflow) -> None:
    assert _whole(a) == _whole(b)
    assert rt.active_element_ids(a) == rt.active_element_ids(b)
    assert rt.next_timer_at(a) == rt.next_timer_at(b)
    assert rt.waiting_message_names(a) == rt.waiting_message_names(b)
    assert rt.outstanding_commands(a) == rt.outstanding_commands(b)
    assert rt.ready_user_tasks(a) == rt.ready_user_tasks(b)
    assert rt.case_variables(a) == rt.case_variables(b)


def test_the_state_names_its_process_and_holds_no_spec(parsed: rt.ParsedDefinition) -> None:
    workflow, _ = _started(parsed)
    blob = rt.serialize(workflow)
    state = _state_json(blob)
    assert "spec" not in state and "subprocess_specs" not in state
    assert state["ips_spec"] == "hoofd"
    assert state["subprocesses"], "the running subprocess is part of the state"
    with_spec = WITH_SPEC.serialize_json(workflow)
    assert len(zlib.decompress(blob[len(rt.STATE_FORMAT):])) * 2 < len(with_spec)


def test_round_trip_in_a_subprocess_waiting_on_a_command_a_timer_and_a_message(parsed: rt.ParsedDefinition) -> None:
    workflow, result = _started(parsed)
    assert rt.active_element_ids(workflow) == ["Registreer", "Sub"]
    assert rt.waiting_message_names(workflow) == [STOP]
    assert rt.next_timer_at(workflow) == T0 + timedelta(hours=1)
    [command] = result.commands
    restored = rt.deserialize(parsed, rt.serialize(workflow))
    _same(restored, workflow)
    assert rt.serialize(restored) == rt.serialize(workflow)
    assert restored.spec is parsed.spec  # re-attached, not a copy per instance
    assert isinstance(restored.script_engine, rt.RestrictedScriptEngine)

    # in the call activity: the user task of the called process
    with rt.use_clock(T0):
        result = rt.complete_command(restored, command.command_id, {"dossier": "D-1"})
    [task] = result.user_tasks
    assert task.element_id == "Beoordeel" and rt.next_timer_at(restored) is None
    again = rt.deserialize(parsed, rt.serialize(restored))
    _same(again, restored)
    assert rt.complete_user_task(again, task.task_id, {"oordeel": "goed"}).completed
    assert [h.element_id for h in rt.history(again)][-3:] == ["CEnd", "Beoordeling", "Einde"]


def test_a_restored_instance_fires_its_boundary_timer(parsed: rt.ParsedDefinition) -> None:
    workflow, _ = _started(parsed)
    restored = rt.deserialize(parsed, rt.serialize(workflow))
    assert rt.fire_due_timers(restored, T0 + timedelta(hours=1)).completed
    assert "EndVerlopen" in [h.element_id for h in rt.history(restored)]
    assert rt.outstanding_commands(restored) == []


def test_a_restored_instance_takes_its_boundary_message(parsed: rt.ParsedDefinition) -> None:
    workflow, _ = _started(parsed)
    restored = rt.deserialize(parsed, rt.serialize(workflow))
    result = rt.deliver_message(restored, STOP, {"reden": "ingetrokken"})
    assert result is not None and result.completed
    assert "EndGestopt" in [h.element_id for h in rt.history(restored)]


def test_a_state_stored_with_its_spec_before_issue_14_loads_and_continues(parsed: rt.ParsedDefinition) -> None:
    workflow, result = _started(parsed)
    old = WITH_SPEC.serialize_json(workflow, use_gzip=True)
    assert old[:2] == b"\x1f\x8b" and "spec" in json.loads(gzip.decompress(old))
    restored = rt.deserialize(parsed, old)
    _same(restored, workflow)
    assert restored.spec is parsed.spec  # the embedded copy is dropped: the next save is spec-less
    assert rt.serialize(restored).startswith(rt.STATE_FORMAT)
    with rt.use_clock(T0):
        [task] = rt.complete_command(restored, result.commands[0].command_id, {}).user_tasks
    assert rt.complete_user_task(restored, task.task_id, {}).completed


def test_a_state_of_another_process_or_no_state_is_refused(parsed: rt.ParsedDefinition) -> None:
    workflow, _ = _started(parsed)
    other = rt.parse_definition({"x.bpmn": BPMN.replace('id="hoofd"', 'id="ander"').encode()}, process_id="ander")
    for blob in (rt.serialize(workflow), WITH_SPEC.serialize_json(workflow, use_gzip=True)):
        with pytest.raises(ValueError, match="instance is of process hoofd, not ander"):
            rt.deserialize(other, blob)
    with pytest.raises(ValueError, match="not an instance state"):
        rt.deserialize(parsed, b'{"tasks": {}}')


def test_history_is_reported_once_and_the_mark_survives_a_round_trip(parsed: rt.ParsedDefinition) -> None:
    workflow, result = _started(parsed)
    first = [h.element_id for h in rt.take_new_history(workflow)]
    assert first[0] == "Begin" and "SubStart" in first
    restored = rt.deserialize(parsed, rt.serialize(workflow))
    assert rt.take_new_history(restored) == []
    with rt.use_clock(T0):
        rt.complete_command(restored, result.commands[0].command_id, {})
    later = [h.element_id for h in rt.take_new_history(restored)]
    assert "Registreer" in later and not set(later) & set(first)
    assert [h.element_id for h in rt.history(restored)] == first + later


def _forget_kept(workflow: BpmnWorkflow) -> None:
    for task in workflow.get_tasks():
        task.__dict__.pop(state._KEPT_ATTRIBUTE, None)


def test_a_finished_tasks_kept_dict_gives_the_state_a_fresh_conversion_gives(parsed: rt.ParsedDefinition) -> None:
    workflow, result = _started(parsed)
    first = rt.serialize(workflow)
    finished = [t for t in workflow.get_tasks() if t.has_state(TaskState.COMPLETED | TaskState.CANCELLED)]
    assert finished and all(hasattr(t, state._KEPT_ATTRIBUTE) for t in finished)
    assert not any(hasattr(t, state._KEPT_ATTRIBUTE) for t in workflow.get_tasks() if t not in finished)
    kept = {t.id: getattr(t, state._KEPT_ATTRIBUTE)[1] for t in finished}
    assert rt.serialize(workflow) == first  # from the kept dicts
    assert all(getattr(t, state._KEPT_ATTRIBUTE)[1] is kept[t.id] for t in finished)
    with rt.use_clock(T0):
        [task] = rt.complete_command(workflow, result.commands[0].command_id, {"dossier": "D-1"}).user_tasks
    rt.take_new_history(workflow)  # as the engine does before it serialises: a finished task gets a mark
    after_reply = rt.serialize(workflow)
    _forget_kept(workflow)
    assert rt.serialize(workflow) == after_reply
    rt.complete_user_task(workflow, task.task_id, {"oordeel": "goed"})
    done = rt.serialize(workflow)
    _forget_kept(workflow)
    assert rt.serialize(workflow) == done
    _same(rt.deserialize(parsed, done), workflow)


@pytest.mark.skipif(not state._CHECK_KEPT, reason="IPSFLOW_ENGINE_CHECK_KEPT_TASKS is off (tests/conftest.py sets it)")
def test_the_check_finds_a_finished_task_changed_in_place(parsed: rt.ParsedDefinition) -> None:
    workflow, _ = _started(parsed)
    rt.serialize(workflow)
    [begin] = [t for t in workflow.get_tasks() if t.task_spec.name == "Begin"]
    begin.data["aanvraag"]["nummer"] = "N-2"  # what neither Spiff nor the engine does to a finished task
    with pytest.raises(state.KeptTaskDiffers, match=r"kept .*, now "):
        rt.serialize(workflow)
