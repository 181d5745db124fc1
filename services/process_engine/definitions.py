"""Deploy-time: BPMN and DMN parsed once per content hash and checked (XML, Spiff, every piece of embedded
code through the script sandbox, form schemas, the message catalogue); problems point at their element.
"""

from __future__ import annotations

import ast
import hashlib
import json
import re
import threading
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any, Final, Literal, cast

from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.bpmn.specs.mixins.events.start_event import StartEvent
from SpiffWorkflow.exceptions import SpiffWorkflowException
from SpiffWorkflow.spiff.parser.process import VALIDATOR
from SpiffWorkflow.spiff.specs.event_definitions import MessageEventDefinition

from process_engine.model import (
    _CACHE_SIZE,
    BPMN_NS,
    FORM_SCHEMA_PROPERTY,
    SPIFF_NS,
    DefinitionError,
    ParsedDefinition,
    Problem,
    _IpsBpmnParser,
)
from process_engine.scripting import check_script

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


