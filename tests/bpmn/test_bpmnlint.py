"""Every diagram passes bpmnlint's recommended rules (tools/bpmn/.bpmnlintrc), with no errors and no warnings.

The linter is the bpmnlint CLI installed by `make deps` (`npm ci` in tools/bpmn). SpiffWorkflow extension
elements (spiffworkflow:*) are unknown to bpmnlint's model and are ignored by it; they must not break the check.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ROOT / "tools" / "bpmn"
CONFIG = TOOLS / ".bpmnlintrc"
BPMNLINT = TOOLS / "node_modules" / "bpmnlint" / "bin" / "bpmnlint.js"

DIAGRAMS = sorted([*(ROOT / "bpmn").glob("*.bpmn"), *(ROOT / "tests" / "bpmn").glob("*.bpmn")])


def lint(*diagrams: Path) -> subprocess.CompletedProcess[str]:
    node = shutil.which("node")
    if node is None or not BPMNLINT.exists():
        pytest.fail("bpmnlint is not installed: run `make deps` (node + npm ci in tools/bpmn)")
    # --max-warnings=0: a warning of the recommended rules fails the check as well.
    return subprocess.run(
        [node, str(BPMNLINT), "--config", str(CONFIG), "--max-warnings=0", *map(str, diagrams)],
        cwd=TOOLS,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_there_are_diagrams_to_lint() -> None:
    assert DIAGRAMS, "no .bpmn files found in bpmn/ or tests/bpmn/"


@pytest.mark.parametrize("diagram", DIAGRAMS, ids=lambda p: str(p.relative_to(ROOT)))
def test_diagram_passes_bpmnlint_recommended(diagram: Path) -> None:
    result = lint(diagram)
    assert result.returncode == 0, (
        f"bpmnlint reports problems in {diagram.relative_to(ROOT)} (exit {result.returncode}):\n"
        f"{result.stdout}{result.stderr}"
    )


BROKEN = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"
                  xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
                  xmlns:di="http://www.omg.org/spec/DD/20100524/DI"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="Definitions_broken" targetNamespace="https://ipsflow.example/bpmn/broken">
  <bpmn:process id="broken_process" isExecutable="true">
    <bpmn:startEvent id="StartEvent_1" name="Start">
      <bpmn:outgoing>Flow_1</bpmn:outgoing>
    </bpmn:startEvent>
    <bpmn:exclusiveGateway id="Gateway_unlabeled">
      <bpmn:incoming>Flow_1</bpmn:incoming>
      <bpmn:outgoing>Flow_2</bpmn:outgoing>
      <bpmn:outgoing>Flow_3</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:endEvent id="EndEvent_1" name="Klaar">
      <bpmn:incoming>Flow_2</bpmn:incoming>
      <bpmn:incoming>Flow_3</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:serviceTask id="Task_orphan" name="Zonder inkomende flow">
      <bpmn:extensionElements>
        <spiffworkflow:serviceTaskOperator id="ips.test.niets.v1" />
      </bpmn:extensionElements>
    </bpmn:serviceTask>
    <bpmn:sequenceFlow id="Flow_1" sourceRef="StartEvent_1" targetRef="Gateway_unlabeled" />
    <bpmn:sequenceFlow id="Flow_2" sourceRef="Gateway_unlabeled" targetRef="EndEvent_1" />
    <bpmn:sequenceFlow id="Flow_3" sourceRef="Gateway_unlabeled" targetRef="EndEvent_1" />
  </bpmn:process>
  <bpmndi:BPMNDiagram id="BPMNDiagram_broken">
    <bpmndi:BPMNPlane id="BPMNPlane_broken" bpmnElement="broken_process">
      <bpmndi:BPMNShape id="StartEvent_1_di" bpmnElement="StartEvent_1">
        <dc:Bounds x="100" y="100" width="36" height="36" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Gateway_unlabeled_di" bpmnElement="Gateway_unlabeled" isMarkerVisible="true">
        <dc:Bounds x="200" y="93" width="50" height="50" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="EndEvent_1_di" bpmnElement="EndEvent_1">
        <dc:Bounds x="320" y="100" width="36" height="36" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNShape id="Task_orphan_di" bpmnElement="Task_orphan">
        <dc:Bounds x="180" y="220" width="100" height="80" />
      </bpmndi:BPMNShape>
      <bpmndi:BPMNEdge id="Flow_1_di" bpmnElement="Flow_1">
        <di:waypoint x="136" y="118" /><di:waypoint x="200" y="118" />
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="Flow_2_di" bpmnElement="Flow_2">
        <di:waypoint x="250" y="118" /><di:waypoint x="320" y="118" />
      </bpmndi:BPMNEdge>
      <bpmndi:BPMNEdge id="Flow_3_di" bpmnElement="Flow_3">
        <di:waypoint x="225" y="93" /><di:waypoint x="225" y="60" /><di:waypoint x="338" y="60" />
        <di:waypoint x="338" y="100" />
      </bpmndi:BPMNEdge>
    </bpmndi:BPMNPlane>
  </bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def test_the_check_reports_a_broken_diagram(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bpmn"
    broken.write_text(BROKEN, encoding="utf-8")
    result = lint(broken)
    report = result.stdout + result.stderr
    assert result.returncode != 0, f"bpmnlint accepted a broken diagram:\n{report}"
    # The orphan task (no incoming, no outgoing flow) and the gateway without a name.
    for element, rule in [
        ("Task_orphan", "no-disconnected"),
        ("Task_orphan", "no-implicit-start"),
        ("Gateway_unlabeled", "label-required"),
    ]:
        assert any(element in line and rule in line for line in report.splitlines()), (
            f"expected {rule} on {element} in:\n{report}"
        )
