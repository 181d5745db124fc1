"""User-task forms: the JSON-schema subset a form is checked against, the BSN-like numbers no free text may
hold, and the sub-mandate a decision needs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, cast

from SpiffWorkflow.task import Task

from process_engine.model import (
    FORM_SCHEMA_PROPERTY,
    FieldProblem,
)
from servicekit.personal_data import holds_bsn_like_number
from servicekit.vrije_tekst import CODE as BSN_CODE
from servicekit.vrije_tekst import REASON as BSN_IN_FREE_TEXT

# --------------------------------------------------------------------------- forms


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


