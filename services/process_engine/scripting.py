"""Restricted expression/script engine for BPMN and DMN content.

SpiffWorkflow evaluates every condition, timer expression, service-task
parameter, DMN entry and script task with plain ``eval``/``exec``. Process
definitions are uploaded by administrators, not trusted code, so this module
narrows what such code may do:

* static rules (:func:`check_script`), applied at deploy time by
  ``runtime.parse_definition`` *and* again (cached) before every evaluation:
  no imports, no names or attributes starting with ``_``, no ``while`` loops,
  no function/class definitions, no ``global``/``nonlocal``/``with``/``async``,
  no ``str.format`` (it can walk attributes from inside a string) and ``**``
  only with a small literal exponent (a huge power runs in C and cannot be
  interrupted);
* a whitelist of builtins (no ``type``, ``getattr``, ``open``, ``eval`` ...);
* a wall-clock deadline enforced with ``sys.settrace`` as a second line of
  defence against runaway ``for`` loops and comprehensions.

Known limits: the deadline is checked between Python lines, so a single
C-level operation (``"x" * 10**9``, ``sorted`` of a huge list) is not
interrupted, and memory use is not capped.
"""

from __future__ import annotations

import ast
import builtins
import calendar
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from functools import lru_cache
from types import CodeType, FrameType
from typing import Any, Final
from zoneinfo import ZoneInfo

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

__all__ = [
    "DEFAULT_TIME_LIMIT_S",
    "SAFE_BUILTIN_NAMES",
    "RestrictedEnvironment",
    "RestrictedScriptEngine",
    "ScriptRejected",
    "ScriptTimeout",
    "ServiceCallNotAllowed",
    "check_script",
]

DEFAULT_TIME_LIMIT_S: Final = 0.1
MIN_STEPS_BEFORE_TIMEOUT: Final = 10_000  # see _deadline
AMSTERDAM: Final = ZoneInfo("Europe/Amsterdam")
MAX_POWER_EXPONENT: Final = 64

# Money is modelled as integer cents throughout the project, so ``float`` is
# deliberately absent; ``True``/``False``/``None`` are keywords and need no entry.
SAFE_BUILTIN_NAMES: Final[frozenset[str]] = frozenset(
    {
        "len", "min", "max", "sum", "abs", "round", "int", "str", "bool",
        "list", "dict", "set", "tuple", "sorted", "any", "all", "range",
        "enumerate", "zip", "isinstance",
    }
)  # fmt: skip

_SAFE_BUILTINS: Final[dict[str, Any]] = {name: getattr(builtins, name) for name in SAFE_BUILTIN_NAMES}

# Methods that interpret a string as an attribute path ("{0.__class__}").
_FORBIDDEN_ATTRIBUTES: Final[frozenset[str]] = frozenset({"format", "format_map"})

# Code compiled here uses Spiff's conventional filename so that its
# error-line reporting (which looks for '<string>' frames) keeps working.
_SCRIPT_FILENAME: Final = "<string>"

_FORBIDDEN_NODES: Final[dict[type[ast.AST], str]] = {
    ast.Import: "imports are not allowed",
    ast.ImportFrom: "imports are not allowed",
    ast.While: "'while' loops are not allowed (use a bounded 'for' loop)",
    ast.FunctionDef: "function definitions are not allowed",
    ast.AsyncFunctionDef: "function definitions are not allowed",
    ast.ClassDef: "class definitions are not allowed",
    ast.Global: "'global' is not allowed",
    ast.Nonlocal: "'nonlocal' is not allowed",
    ast.With: "'with' is not allowed",
    ast.AsyncWith: "'with' is not allowed",
    ast.AsyncFor: "async code is not allowed",
    ast.Await: "async code is not allowed",
    ast.Yield: "generators are not allowed",
    ast.YieldFrom: "generators are not allowed",
    ast.Try: "'try' is not allowed",
    ast.TryStar: "'try' is not allowed",
    ast.Raise: "'raise' is not allowed",
}


class ScriptRejected(ValueError):
    """A script or expression broke one of the static rules (see :func:`check_script`)."""

    def __init__(self, violations: list[str]) -> None:
        super().__init__("; ".join(violations))
        self.violations = violations


class ScriptTimeout(RuntimeError):
    """A script ran past its deadline and was interrupted."""


class ServiceCallNotAllowed(RuntimeError):
    """Raised if anything asks the script engine to call a service synchronously.

    Service tasks are turned into asynchronous commands by the runtime; reaching
    ``call_service`` means a task spec was not replaced, which is a bug.
    """


def check_script(source: str) -> list[str]:
    """Statically check a script or expression.

    Returns human-readable violations (empty list = acceptable). A syntax
    error is reported as a violation rather than raised. Both statements and
    bare expressions are accepted, because every expression is also a valid
    expression statement.
    """
    try:
        tree = ast.parse(source, mode="exec")
    except SyntaxError as exc:
        return [f"syntax error on line {exc.lineno}: {exc.msg}"]
    violations: list[str] = []
    for node in ast.walk(tree):
        problem = _node_violation(node)
        if problem is not None:
            line = getattr(node, "lineno", None)
            violations.append(f"line {line}: {problem}" if line is not None else problem)
    return violations


def _node_violation(node: ast.AST) -> str | None:
    """Return why a single AST node is forbidden, or None if it is fine."""
    for node_type, reason in _FORBIDDEN_NODES.items():
        if isinstance(node, node_type):
            return reason
    if isinstance(node, ast.Name) and node.id.startswith("_"):
        return f"name '{node.id}' starts with '_'"
    if isinstance(node, ast.Attribute):
        if node.attr.startswith("_"):
            return f"attribute '{node.attr}' starts with '_'"
        if node.attr in _FORBIDDEN_ATTRIBUTES:
            return f"'.{node.attr}()' is not allowed (use f-strings)"
    if isinstance(node, ast.arg) and node.arg.startswith("_"):
        return f"parameter '{node.arg}' starts with '_'"
    if isinstance(node, ast.keyword) and node.arg is not None and node.arg.startswith("_"):
        return f"keyword '{node.arg}' starts with '_'"
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Pow):
        return _power_violation(node.right)
    if isinstance(node, ast.AugAssign) and isinstance(node.op, ast.Pow):
        return _power_violation(node.value)
    return None


def _power_violation(exponent: ast.expr) -> str | None:
    """'**' is only allowed with a small literal exponent (see module docstring)."""
    ok = (
        isinstance(exponent, ast.Constant)
        and isinstance(exponent.value, int)
        and not isinstance(exponent.value, bool)
        and abs(exponent.value) <= MAX_POWER_EXPONENT
    )
    return None if ok else f"'**' needs a literal integer exponent of at most {MAX_POWER_EXPONENT}"


@lru_cache(maxsize=2048)
def _compile_checked(source: str, mode: str) -> CodeType:
    """Check and compile once per distinct source text (scripts repeat a lot)."""
    violations = check_script(source)
    if violations:
        raise ScriptRejected(violations)
    return compile(source, _SCRIPT_FILENAME, mode)


@contextmanager
def _deadline(seconds: float) -> Iterator[None]:
    """Interrupt script frames that run longer than ``seconds``.

    Only frames of code compiled by this module are traced (cheap), and any
    tracer that was active before (debugger, coverage) is restored afterwards.
    A script is stopped once it has taken MIN_STEPS_BEFORE_TIMEOUT steps (calls
    and lines of its own code) and used more than ``seconds`` of its thread's
    CPU time. The steps keep a pause that is not the script's doing (a garbage
    collection, a virtual machine descheduled: both count as CPU time) from
    failing a short expression; fresh-clone CI runs twice failed a one-line
    expression that way. A runaway loop takes that many steps in milliseconds.
    The wall clock is the cheap first test.
    """
    expires = time.monotonic() + seconds
    cpu_started = time.thread_time()
    steps = 0

    def local_trace(frame: FrameType, event: str, arg: Any) -> Any:
        nonlocal steps
        steps += 1
        if (steps >= MIN_STEPS_BEFORE_TIMEOUT and time.monotonic() > expires
                and time.thread_time() - cpu_started > seconds):
            raise ScriptTimeout(f"script exceeded its time limit of {seconds * 1000:.0f} ms")
        return local_trace

    def global_trace(frame: FrameType, event: str, arg: Any) -> Any:
        if frame.f_code.co_filename != _SCRIPT_FILENAME:
            return None
        return local_trace(frame, event, arg)

    previous = sys.gettrace()
    sys.settrace(global_trace)
    try:
        yield
    finally:
        sys.settrace(previous)


def einde_van_dag(datum: str) -> str:
    """The moment (UTC, ISO 8601) a legal day ends: midnight after ``datum`` (an ISO date) in Europe/Amsterdam.

    Awb deadlines are calendar days in the Netherlands; a timer on "the day after the deadline" needs the
    UTC instant, which moves with summer time. Pure, so scripts and timer expressions may call it.
    """
    day = date.fromisoformat(str(datum)[:10]) + timedelta(days=1)
    return datetime.combine(day, day_time(0), tzinfo=AMSTERDAM).astimezone(UTC).isoformat()


def einde_looptijd(start: str, maanden: int) -> str:
    """The last day (ISO date) of a period of ``maanden`` calendar months that starts on ``start``.

    2024-02-01 + 24 months ends on 2026-01-31: the day before the same day number in the end month. When the
    end month is too short for that day number (31 March + 1 month), the period ends on its last day.
    """
    begin = date.fromisoformat(str(start)[:10])
    month_index = begin.month - 1 + int(maanden)
    year, month = begin.year + month_index // 12, month_index % 12 + 1
    last_day = calendar.monthrange(year, month)[1]
    if begin.day > last_day:
        return date(year, month, last_day).isoformat()
    return (date(year, month, begin.day) - timedelta(days=1)).isoformat()


def _dagen(duur: str) -> int:
    """Days in an ISO 8601 duration of days or weeks ("P14D", "P2W")."""
    text = str(duur).upper()
    if text.startswith("P") and text.endswith("D") and text[1:-1].isdigit():
        return int(text[1:-1])
    if text.startswith("P") and text.endswith("W") and text[1:-1].isdigit():
        return 7 * int(text[1:-1])
    raise ValueError(f"not a duration in days or weeks: {duur!r}")


def opgeschorte_beslisdatum(beslisdatum: str, uiterlijk: str, hersteltermijn: str, aangevuld_op: str | None) -> str:
    """Awb 4:15: the decision term is suspended from the day after the repair request until the day the
    application was supplemented. The request day is ``uiterlijk`` minus the hersteltermijn (that is how the
    deadline was set); the result is ``beslisdatum`` moved by the suspended days (ISO date).
    """
    if not aangevuld_op:
        return str(beslisdatum)[:10]
    gevraagd = date.fromisoformat(str(uiterlijk)[:10]) - timedelta(days=_dagen(hersteltermijn))
    moment = datetime.fromisoformat(str(aangevuld_op))
    aangevuld = moment.astimezone(AMSTERDAM).date() if moment.tzinfo else moment.date()
    opgeschort = max((aangevuld - gevraagd).days, 0)
    return (date.fromisoformat(str(beslisdatum)[:10]) + timedelta(days=opgeschort)).isoformat()


#: Functions of ours that every script and expression may call (pure, no I/O).
PROCESS_FUNCTIONS: Final[dict[str, Any]] = {"einde_van_dag": einde_van_dag, "einde_looptijd": einde_looptijd,
                                             "opgeschorte_beslisdatum": opgeschorte_beslisdatum}


def _script_globals(context: Mapping[str, Any], external_context: Mapping[str, Any] | None) -> dict[str, Any]:
    """Build the globals for one evaluation.

    Keys starting with '_' are dropped: scripts cannot name them anyway, and a
    data key called ``__builtins__`` would otherwise replace the whitelist.
    """
    namespace: dict[str, Any] = {}
    for source in (external_context or {}, context):
        namespace.update({k: v for k, v in source.items() if not k.startswith("_")})
    namespace.update(PROCESS_FUNCTIONS)
    namespace["__builtins__"] = dict(_SAFE_BUILTINS)
    return namespace


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]
    """Spiff script environment with static checks, whitelisted builtins and a deadline."""

    def __init__(self, time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> None:
        super().__init__({})
        self.time_limit_s = time_limit_s

    def evaluate(
        self, expression: str, context: dict[str, Any], external_context: dict[str, Any] | None = None
    ) -> Any:
        """Evaluate an expression against task data; never mutates ``context``."""
        code = _compile_checked(expression, "eval")
        namespace = _script_globals(context, external_context)
        with _deadline(self.time_limit_s):
            return eval(code, namespace)  # noqa: S307 - restricted: checked code, whitelisted builtins

    def execute(
        self, script: str, context: dict[str, Any], external_context: dict[str, Any] | None = None
    ) -> bool:
        """Run a script; its plain-data variables become the new task data.

        Callables (lambdas) and the names injected via ``external_context`` are
        not written back, mirroring Spiff's own environment. Keys starting with
        '_' were invisible to the script and are kept as they were.
        """
        code = _compile_checked(script, "exec")
        namespace = _script_globals(context, external_context)
        with _deadline(self.time_limit_s):
            exec(code, namespace)  # noqa: S102 - restricted: checked code, whitelisted builtins
        external = set(external_context or {})
        hidden = {k: v for k, v in context.items() if k.startswith("_")}
        result = {
            k: v
            for k, v in namespace.items()
            if k != "__builtins__" and k not in external and not callable(v)
        }
        context.clear()
        context.update(hidden)
        context.update(result)
        return True

    def call_service(self, context: dict[str, Any], **kwargs: Any) -> Any:
        """Refuse: service tasks are asynchronous commands (see runtime)."""
        raise ServiceCallNotAllowed(
            f"synchronous service calls are disabled (operation {kwargs.get('operation_name')!r})"
        )


class RestrictedScriptEngine(PythonScriptEngine):  # type: ignore[misc]
    """PythonScriptEngine bound to a :class:`RestrictedEnvironment`.

    ``validate`` keeps Spiff's contract of raising ``SyntaxError`` (the DMN
    engine relies on it to decide whether to add ``==``); the static rules are
    enforced when the code is compiled for evaluation.
    """

    def __init__(self, time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> None:
        super().__init__(environment=RestrictedEnvironment(time_limit_s))

    def call_service(self, task: Any, **kwargs: Any) -> Any:
        """Refuse outright. SpiffWorkflow 3.2.0's version masks every error
        behind a NameError (it references an undefined ``script``), so it is
        replaced rather than extended."""
        raise ServiceCallNotAllowed(
            f"service task {getattr(task.task_spec, 'bpmn_id', '?')} tried to call "
            f"{kwargs.get('operation_name')!r} synchronously; service tasks must emit commands"
        )
