"""The script sandbox's corpus of known escapes and a small process to put code in (issue 12, item 1).

Shared by tests/unit/test_script_sandbox.py (deploy check and run time) and
tests/integration/test_engine_sandbox.py (the deploy API of the running engine).
"""

from __future__ import annotations

from xml.sax.saxutils import escape

START = "ips.test.sandbox.v1"

#: Issue 12: passed the hand-written AST check at deploy and ran as the engine's OS user.
ISSUE_12_ESCAPE = (
    'g = (g.gi_frame.f_back.f_back.f_globals for x in [1])\n'
    'proof = list(g)[0]["sys"].modules["os"].popen("id").read()'
)

#: Known ways out of a Python sandbox. Payloads are harmless (``id``, reading a name): should one get through,
#: the test fails on ``proof`` being set rather than on damage.
ESCAPES: dict[str, str] = {
    # frames via generators, coroutines and async generators
    "issue-12-generator-frame-walk": ISSUE_12_ESCAPE,
    "generator-gi-frame-f-back": "g = (x for x in [1])\nproof = g.gi_frame.f_back.f_globals",
    "generator-gi-code": "proof = (x for x in [1]).gi_code.co_consts",
    "generator-inside-list-comprehension": "proof = [f.f_back for f in [(x for x in [1]).gi_frame]]",
    "yield-generator-function": "def g():\n    yield 1\nproof = g().gi_frame.f_back.f_globals",
    "yield-from": "def g():\n    yield from [1]\nproof = list(g())",
    "coroutine-cr-frame": "async def c():\n    pass\nproof = c().cr_frame.f_back.f_globals",
    "async-generator-ag-frame": "async def a():\n    yield 1\nproof = a().ag_frame.f_back",
    "async-comprehension": "proof = [x async for x in aanvraag]",
    "await": "proof = await aanvraag",
    # str.format and friends walk attributes from inside a string
    "str-format-attribute-walk": 'proof = "{0.__class__.__mro__}".format(aanvraag)',
    "str-format-function-globals": 'proof = "{0.__globals__[sys]}".format(einde_van_dag)',
    "str-format-map": 'proof = "{x.__class__}".format_map({"x": aanvraag})',
    "str-format-unbound": 'proof = str.format("{0.__globals__}", einde_van_dag)',
    "format-builtin": 'proof = format(einde_van_dag, "")',
    "f-string-dunder": 'proof = f"{einde_van_dag.__globals__}"',
    "percent-format-dunder": 'proof = "%s" % (einde_van_dag.__globals__,)',
    "percent-format-mapping-subclasses": 'proof = "%(a)s" % {"a": ().__class__.__subclasses__()}',
    # introspection builtins with computed names
    "type-subclasses": "proof = type(aanvraag).__subclasses__()",
    "type-three-arguments": 'proof = type("X", (), {"y": 1})',
    "vars-function": "proof = vars(einde_van_dag)",
    "getattr-computed-name": 'proof = getattr(einde_van_dag, "__glo" + "bals__")',
    "setattr": 'setattr(einde_van_dag, "x", 1)',
    "builtins-dunder-lookup": 'proof = __builtins__["__import__"]("os")',
    "builtins-name": "proof = builtins.open",
    # object.__subclasses__ through literals
    "subclasses-via-tuple-literal": "proof = ().__class__.__bases__[0].__subclasses__()",
    "subclasses-via-str-mro": 'proof = "".__class__.__mro__[1].__subclasses__()',
    "mro-method": "proof = str.mro()[1]",
    "object-subclasses": "proof = object.__subclasses__()",
    # exceptions carry tracebacks, tracebacks carry frames
    "exception-traceback": (
        "try:\n    x = 1 / 0\nexcept ZeroDivisionError as e:\n    proof = e.__traceback__.tb_frame.f_back.f_globals"
    ),
    "exception-with-traceback": (
        "try:\n    x = 1 / 0\nexcept ZeroDivisionError as e:\n    proof = e.with_traceback(None)"
    ),
    "raise": "raise SystemExit(1)",
    # functions, lambdas, decorators, walrus
    "lambda-default-generator": "f = lambda g=(x for x in [1]): g\nproof = f().gi_frame",
    "lambda-default-capture": "f = lambda a=aanvraag: a\nproof = f()",
    "walrus-in-comprehension": "proof = [(g := x) for x in [1]]",
    "walrus-expression": "(proof := einde_van_dag)",
    "decorator": "@einde_van_dag\ndef f():\n    pass",
    "class-definition": "class A:\n    pass\nproof = A.__subclasses__()",
    "nested-comprehension-frames": "proof = [[f for f in [g.gi_frame]] for g in [(x for x in [1])]]",
    "nested-comprehension-walrus": "proof = [[(y := z) for z in x] for x in [[1]]]",
    "function-globals": 'proof = einde_van_dag.__globals__["sys"]',
    "function-func-globals": "proof = einde_van_dag.func_globals",
    "function-code-object": "proof = einde_van_dag.__code__.co_consts",
    # imports, namespaces, code, I/O
    "import": 'import os\nproof = os.popen("id").read()',
    "import-from": "from os import popen",
    "dunder-import": 'proof = __import__("os").popen("id").read()',
    "globals": 'proof = globals()["sys"]',
    "locals": "proof = locals()",
    "dir": "proof = dir()",
    "eval": 'proof = eval("1")',
    "exec": 'exec("import os")',
    "compile": 'proof = compile("1", "x", "eval")',
    "open": 'proof = open("/etc/passwd").read()',
    "breakpoint": "breakpoint()",
    "input": "proof = input()",
    "memoryview": 'proof = memoryview(b"x")',
    "operator-attrgetter": 'proof = operator.attrgetter("__class__")(aanvraag)',
    "sys-modules": 'proof = sys.modules["os"]',
    # resources and control flow the budget cannot stop, guards a script could overwrite
    "while-loop": "while True:\n    pass",
    "huge-power": "proof = 10 ** 10 ** 10",
    "with-statement": 'with open("/etc/passwd") as f:\n    proof = 1',
    "global": "global einde_van_dag\neinde_van_dag = 1",
    "print": "print(aanvraag)",
    "guard-overwrite": "_getattr_ = lambda o, n: 1",
    "match-statement": 'match aanvraag:\n    case {"a": x}:\n        proof = x',
}


def process(script: str = "x = 1", pre: str = "y = 1", post: str = "z = 1",
             condition: str = "x == 1") -> dict[str, bytes]:
    """A message-started process: an embedded subprocess with pre- and postScript (Spiff runs neither on a
    script task, and waits on a plain task), a script task and a conditional flow."""
    bpmn = f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
                  id="Defs_sandbox" targetNamespace="https://ipsflow.example/test">
  <bpmn:message id="Message_start" name="{START}" />
  <bpmn:process id="sandbox" isExecutable="true">
    <bpmn:startEvent id="Start_sandbox">
      <bpmn:outgoing>F0</bpmn:outgoing>
      <bpmn:messageEventDefinition id="Def_start" messageRef="Message_start" />
    </bpmn:startEvent>
    <bpmn:subProcess id="Task_evil" name="Evil too">
      <bpmn:extensionElements>
        <spiffworkflow:preScript>{escape(pre)}</spiffworkflow:preScript>
        <spiffworkflow:postScript>{escape(post)}</spiffworkflow:postScript>
      </bpmn:extensionElements>
      <bpmn:incoming>F0</bpmn:incoming><bpmn:outgoing>F1</bpmn:outgoing>
      <bpmn:startEvent id="Sub_start"><bpmn:outgoing>S1</bpmn:outgoing></bpmn:startEvent>
      <bpmn:endEvent id="Sub_end"><bpmn:incoming>S1</bpmn:incoming></bpmn:endEvent>
      <bpmn:sequenceFlow id="S1" sourceRef="Sub_start" targetRef="Sub_end" />
    </bpmn:subProcess>
    <bpmn:scriptTask id="Script_evil" name="Evil">
      <bpmn:incoming>F1</bpmn:incoming><bpmn:outgoing>F2</bpmn:outgoing>
      <bpmn:script>{escape(script)}</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:exclusiveGateway id="Gateway_evil" default="Flow_default">
      <bpmn:incoming>F2</bpmn:incoming>
      <bpmn:outgoing>Flow_evil</bpmn:outgoing><bpmn:outgoing>Flow_default</bpmn:outgoing>
    </bpmn:exclusiveGateway>
    <bpmn:endEvent id="End_sandbox">
      <bpmn:incoming>Flow_evil</bpmn:incoming><bpmn:incoming>Flow_default</bpmn:incoming>
    </bpmn:endEvent>
    <bpmn:sequenceFlow id="F0" sourceRef="Start_sandbox" targetRef="Task_evil" />
    <bpmn:sequenceFlow id="F1" sourceRef="Task_evil" targetRef="Script_evil" />
    <bpmn:sequenceFlow id="F2" sourceRef="Script_evil" targetRef="Gateway_evil" />
    <bpmn:sequenceFlow id="Flow_evil" sourceRef="Gateway_evil" targetRef="End_sandbox">
      <bpmn:conditionExpression>{escape(condition)}</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="Flow_default" sourceRef="Gateway_evil" targetRef="End_sandbox" />
  </bpmn:process>
</bpmn:definitions>"""
    return {"evil.bpmn": bpmn.encode()}
