"""Sandbox for the Python code in BPMN and DMN content (scripts, conditions, expressions, DMN cells).

SpiffWorkflow evaluates every condition, timer expression, service-task parameter, DMN cell and script
task with ``eval``/``exec``. Process definitions are uploaded by administrators (soon by process owners
with a deploy button), not trusted code, so every piece of it goes through this module:

* **Compilation** with RestrictedPython (:func:`compile_script`), whose transformer refuses names and
  attributes starting with ``_``, frame/generator/coroutine/traceback/code attributes, ``exec``/``eval``
  and rewrites every attribute read, item read, iteration, unpacking and write into a call of a guard.
  :class:`_SandboxPolicy` adds our own rules on top (see there): no generator expressions, ``yield``,
  function/class definitions (so no decorators), lambda defaults, walrus, ``while``, ``try``/``raise``,
  ``with``, ``global``, imports, ``.format``, dangerous builtin names, and ``**`` only with a small literal
  exponent. The same compilation serves the deploy check (:func:`check_script`) and every evaluation, and
  is cached by source text: compiling is slow, the engine evaluates the same expressions thousands of times.
* **Guards** at run time: attribute reads only on plain data (str, numbers, list, dict, ...) and never of
  a denied name, item reads and iteration only on plain data, writes only into lists and dicts.
* **Builtins**: a short whitelist (:data:`SAFE_BUILTIN_NAMES`) plus our pure date helpers
  (:data:`PROCESS_FUNCTIONS`); no ``type``, ``getattr``, ``open``, ``eval``, ``__import__`` ...
* **A time budget** enforced with ``sys.settrace`` against runaway loops and comprehensions.

Known limits: the budget is checked between Python lines, so a single C-level operation
(``"x" * 10**9``, ``sorted`` of a huge list) is not interrupted, and memory use is not capped.
``range`` is bounded to :data:`MAX_RANGE` numbers for that reason.
"""

from __future__ import annotations

import ast
import operator
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from functools import lru_cache
from types import CodeType, FrameType
from typing import Any, Final, Literal

from RestrictedPython.compile import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import full_write_guard, guarded_iter_unpack_sequence, guarded_unpack_sequence
from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from servicekit import kalender

__all__ = [
    "DEFAULT_TIME_LIMIT_S",
    "FORBIDDEN_NAMES",
    "PROCESS_FUNCTIONS",
    "SAFE_BUILTIN_NAMES",
    "RestrictedEnvironment",
    "RestrictedScriptEngine",
    "ScriptRejected",
    "ScriptTimeout",
    "ServiceCallNotAllowed",
    "check_script",
    "compile_script",
    "guarded_getattr",
    "guarded_getitem",
    "guarded_getiter",
]

DEFAULT_TIME_LIMIT_S: Final = 0.1
MIN_STEPS_BEFORE_TIMEOUT: Final = 10_000  # see _deadline
MAX_POWER_EXPONENT: Final = 64
MAX_RANGE: Final = 10_000  # list(range(10**12)) would run in C, out of the budget's reach
COMPILE_CACHE_SIZE: Final = 4096

# Code compiled here uses Spiff's conventional filename so that its error-line reporting (which looks for
# '<string>' frames) keeps working, and so that the budget traces exactly the frames of sandboxed code.
_SCRIPT_FILENAME: Final = "<string>"


class ScriptRejected(ValueError):
    """The sandbox refused a script or expression: statically (see :func:`check_script`) or, at run time,
    an attribute, item or iteration a guard does not allow."""

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


# --------------------------------------------------------------------------- names and attributes

#: Builtin names a script may never use, not even as a variable: they reach the interpreter's internals,
#: namespaces or I/O. Most are not provided anyway; naming them here refuses them at deploy, with a reason,
#: instead of a NameError when a case reaches the element.
FORBIDDEN_NAMES: Final[frozenset[str]] = frozenset(
    {
        "type", "vars", "getattr", "setattr", "delattr", "hasattr", "eval", "exec", "compile", "open",
        "globals", "locals", "dir", "breakpoint", "input", "memoryview", "object", "super", "classmethod",
        "staticmethod", "property", "help", "exit", "quit", "print", "printed", "builtins", "iter", "next",
        "aiter", "anext", "bytearray", "bytes", "format", "reload", "callable", "issubclass", "id", "hash",
        # modules: none is in scope, but a helper that exposed one would open everything it imports
        "os", "sys", "operator", "importlib", "subprocess", "inspect", "gc", "ctypes", "posix", "pickle",
        "marshal", "shutil", "socket", "io",
    }
)  # fmt: skip

# Attributes of frames (f_), generators (gi_), coroutines (cr_), async generators (ag_), tracebacks (tb_),
# code objects (co_) and old-style function internals (func_): each leads back to frames and globals.
_DENIED_ATTRIBUTE_PREFIXES: Final = ("f_", "gi_", "cr_", "ag_", "tb_", "co_", "func_", "im_")
# format/format_map walk attributes from inside a string ("{0.__class__}"); mro lists classes.
_DENIED_ATTRIBUTES: Final[frozenset[str]] = frozenset({"format", "format_map", "mro"}) | INSPECT_ATTRIBUTES


def attribute_refusal(name: str) -> str | None:
    """Why a script may not read or write attribute ``name`` (None: it may, on plain data)."""
    if name.startswith("_"):
        return f"attribute '{name}' starts with '_'"
    if name in _DENIED_ATTRIBUTES or name.startswith(_DENIED_ATTRIBUTE_PREFIXES):
        if name in ("format", "format_map"):
            return f"'.{name}()' is not allowed (use f-strings)"
        return f"attribute '{name}' is not allowed (frames, generators, tracebacks and code stay out of reach)"
    return None


# --------------------------------------------------------------------------- static policy


class _SandboxPolicy(RestrictingNodeTransformer):
    """RestrictedPython's transformer plus our own rules.

    RestrictedPython allows some constructs for which its guards are the only defence; here nothing
    needs them, so they are refused at compile time (that is: at deploy, naming the element):

    * generator expressions, ``yield``: a generator object carries a frame (``gi_frame``) whose
      ``f_back``/``f_globals`` reach the engine's modules; list comprehensions give the same without
      a generator object;
    * function and class definitions, and with them decorators; lambdas may stay (a sort key) but
      without defaults, which are evaluated once and kept on the function object;
    * ``while`` (use a bounded ``for``), ``try``/``raise`` (exception objects carry tracebacks),
      ``with``, ``global``, imports;
    * ``**`` only with a small literal exponent: a huge power runs in C where the budget cannot stop it;
    * ``.format``/``.format_map`` and the names in :data:`FORBIDDEN_NAMES`.

    * ``:=`` (walrus), which RestrictedPython allows, and ``async for`` inside comprehensions.

    ``match``, ``await``, ``async with``/``for`` and ``nonlocal`` are refused by RestrictedPython itself.
    Messages are ``line N: reason``.
    """

    def error(self, node: ast.AST, info: str) -> None:
        line = getattr(node, "lineno", None)
        message = f"line {line}: {info}" if line is not None else info
        if message not in self.errors:
            self.errors.append(message)

    def _refuse(self, node: ast.AST, reason: str) -> ast.AST:
        self.error(node, reason)
        return node

    def visit_GeneratorExp(self, node: ast.GeneratorExp) -> Any:
        self.error(node, "generator expressions are not allowed (use a list comprehension: [x for x in ...])")
        return self.node_contents_visit(node)

    def visit_Yield(self, node: ast.Yield) -> Any:
        return self._refuse(node, "generators are not allowed")

    def visit_YieldFrom(self, node: ast.YieldFrom) -> Any:
        return self._refuse(node, "generators are not allowed")

    def visit_FunctionDef(self, node: ast.FunctionDef) -> Any:
        return self._refuse(node, "function definitions (and decorators) are not allowed")

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> Any:
        return self._refuse(node, "async code is not allowed")

    def visit_ClassDef(self, node: ast.ClassDef) -> Any:
        return self._refuse(node, "class definitions are not allowed")

    def visit_Lambda(self, node: ast.Lambda) -> Any:
        if node.args.defaults or any(d is not None for d in node.args.kw_defaults):
            self.error(node, "lambda defaults are not allowed")
        return super().visit_Lambda(node)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> Any:
        # RestrictedPython allows ':=' (it checks the target name); in a condition it would set task
        # data as a side effect, and nothing here needs it.
        return self._refuse(node, "':=' (walrus) is not allowed")

    def visit_comprehension(self, node: ast.comprehension) -> Any:
        if node.is_async:
            self.error(node.target, "async code is not allowed")
        return super().visit_comprehension(node)

    def visit_While(self, node: ast.While) -> Any:
        self.error(node, "'while' loops are not allowed (use a bounded 'for' loop)")
        return self.node_contents_visit(node)

    def visit_Try(self, node: ast.Try) -> Any:
        return self._refuse(node, "'try' is not allowed")

    def visit_TryStar(self, node: ast.AST) -> Any:
        return self._refuse(node, "'try' is not allowed")

    def visit_Raise(self, node: ast.Raise) -> Any:
        return self._refuse(node, "'raise' is not allowed")

    def visit_With(self, node: ast.With) -> Any:
        return self._refuse(node, "'with' is not allowed")

    def visit_Global(self, node: ast.Global) -> Any:
        return self._refuse(node, "'global' is not allowed")

    def visit_Import(self, node: ast.Import) -> Any:
        return self._refuse(node, "imports are not allowed")

    def visit_ImportFrom(self, node: ast.ImportFrom) -> Any:
        return self._refuse(node, "imports are not allowed")

    def visit_Name(self, node: ast.Name) -> Any:
        if node.id.startswith("_") and node.id != "_":
            return self._refuse(node, f"name '{node.id}' starts with '_'")
        if node.id in FORBIDDEN_NAMES:
            return self._refuse(node, f"'{node.id}' is not available in scripts")
        return super().visit_Name(node)

    def visit_Attribute(self, node: ast.Attribute) -> Any:
        reason = attribute_refusal(node.attr)
        if reason is not None:
            self.error(node, reason)
            return self.node_contents_visit(node)
        return super().visit_Attribute(node)

    def visit_BinOp(self, node: ast.BinOp) -> Any:
        if isinstance(node.op, ast.Pow):
            self._check_power(node, node.right)
        return super().visit_BinOp(node)

    def visit_AugAssign(self, node: ast.AugAssign) -> Any:
        if isinstance(node.op, ast.Pow):
            self._check_power(node, node.value)
        return super().visit_AugAssign(node)

    def _check_power(self, node: ast.AST, exponent: ast.expr) -> None:
        ok = (
            isinstance(exponent, ast.Constant)
            and isinstance(exponent.value, int)
            and not isinstance(exponent.value, bool)
            and abs(exponent.value) <= MAX_POWER_EXPONENT
        )
        if not ok:
            self.error(node, f"'**' needs a literal integer exponent of at most {MAX_POWER_EXPONENT}")


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _compile(source: str, mode: Literal["exec", "eval"]) -> tuple[CodeType | None, tuple[str, ...]]:
    """Compile once per distinct source text and mode; refusals are cached too (as violations)."""
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    try:
        result = compiler(source, filename=_SCRIPT_FILENAME, policy=_SandboxPolicy)
    except (SyntaxError, ValueError) as exc:  # found by compile() after the transformer (e.g. 'await' outside async)
        return None, (f"syntax error: {exc}",)
    errors = tuple(_lower_syntax_error(e) for e in result.errors)
    if errors or result.code is None:
        return None, errors or ("the sandbox could not compile this code",)
    return result.code, ()


def _lower_syntax_error(message: str) -> str:
    """RestrictedPython reports syntax errors as 'Line N: SyntaxError: ...'; ours start 'syntax error'."""
    if message.startswith("Line ") and ": SyntaxError: " in message:
        line, _, rest = message.partition(": SyntaxError: ")
        return f"syntax error on line {line.removeprefix('Line ')}: {rest}"
    return message


def compile_script(source: str, mode: Literal["exec", "eval"]) -> CodeType:
    """Sandboxed code for ``source``, or :class:`ScriptRejected` with every violation found."""
    code, violations = _compile(source, mode)
    if code is None:
        raise ScriptRejected(list(violations))
    return code


def check_script(source: str, mode: Literal["exec", "eval"] = "exec") -> list[str]:
    """Statically check a script (``exec``) or an expression (``eval``) through the sandbox compiler, as the
    engine will compile it (used at deploy).

    Returns human-readable violations (empty list = acceptable); a syntax error is a violation.
    """
    return list(_compile(source, mode)[1])


# --------------------------------------------------------------------------- run-time guards

# Values a script may read attributes and items of, and iterate: what task data is made of (JSON) and
# what the allowed builtins return. Exact types, not subclasses: a subclass could bring its own methods.
_DATA_TYPES: Final[frozenset[type]] = frozenset({str, int, float, bool, list, tuple, dict, set, frozenset})
_ITERABLE_TYPES: Final[frozenset[type]] = frozenset(
    {str, list, tuple, dict, set, frozenset, range, enumerate, zip,
     type({}.keys()), type({}.values()), type({}.items())}
)  # fmt: skip
_SUBSCRIPTABLE_TYPES: Final[frozenset[type]] = frozenset({str, list, tuple, dict, range})
_MISSING: Final = object()


def guarded_getattr(obj: Any, name: str, default: Any = _MISSING) -> Any:
    """``obj.name`` in a script: never a denied name, and only on plain data."""
    if type(name) is not str:
        raise ScriptRejected(["attribute names must be text"])
    reason = attribute_refusal(name)
    if reason is not None:
        raise ScriptRejected([reason])
    if type(obj) not in _DATA_TYPES:
        raise ScriptRejected([f"attributes of {type(obj).__name__} objects are not available in scripts"])
    if default is _MISSING:
        return getattr(obj, name)
    return getattr(obj, name, default)


def guarded_getitem(obj: Any, key: Any) -> Any:
    """``obj[key]`` in a script: only on plain data (mappings, sequences, text)."""
    if type(obj) not in _SUBSCRIPTABLE_TYPES:
        raise ScriptRejected([f"items of {type(obj).__name__} objects are not available in scripts"])
    return obj[key]


def guarded_getiter(obj: Any) -> Iterator[Any]:
    """``for x in obj`` (and comprehensions, unpacking) in a script: only over plain data."""
    if type(obj) not in _ITERABLE_TYPES:
        raise ScriptRejected([f"{type(obj).__name__} objects cannot be iterated in scripts"])
    return iter(obj)


# RestrictedPython's unpacking helpers (untyped); they are always handed our iteration guard.
_RP_ITER_UNPACK: Final[Callable[..., Any]] = guarded_iter_unpack_sequence
_RP_UNPACK: Final[Callable[..., Any]] = guarded_unpack_sequence


def _guarded_iter_unpack_sequence(it: Any, spec: Any, _getiter_: Any) -> Any:
    """``for a, b in it``: RestrictedPython's unpacking, always with our iteration guard."""
    return _RP_ITER_UNPACK(it, spec, guarded_getiter)


def _guarded_unpack_sequence(it: Any, spec: Any, _getiter_: Any) -> Any:
    """``a, b = it``: RestrictedPython's unpacking, always with our iteration guard."""
    return _RP_UNPACK(it, spec, guarded_getiter)


_INPLACE_OPERATORS: Final[dict[str, Callable[[Any, Any], Any]]] = {
    "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
    "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow, "<<=": operator.ilshift,
    ">>=": operator.irshift, "|=": operator.ior, "^=": operator.ixor, "&=": operator.iand,
}  # fmt: skip


def _inplacevar(op: str, target: Any, value: Any) -> Any:
    """``n += 1``: RestrictedPython turns augmented assignment of a name into this call."""
    function = _INPLACE_OPERATORS.get(op)
    if function is None:
        raise ScriptRejected([f"operator '{op}' is not allowed"])
    return function(target, value)


def _apply(function: Any, *args: Any, **kwargs: Any) -> Any:
    """``f(*args, **kwargs)``: RestrictedPython routes calls with unpacking through this."""
    return function(*args, **kwargs)


# --------------------------------------------------------------------------- builtins


def _bounded_range(*args: int) -> range:
    """``range`` with at most MAX_RANGE numbers (``list(range(10**12))`` would run in C)."""
    numbers = range(*args)
    if len(numbers) > MAX_RANGE:
        raise ValueError(f"range() of more than {MAX_RANGE} numbers is not allowed in scripts")
    return numbers


def _iterating(function: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a builtin that iterates its argument in C so the iteration guard sees that argument."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if len(args) == 1:
            guarded_getiter(args[0])
        return function(*args, **kwargs)

    wrapper.__name__ = function.__name__
    return wrapper


def _zip(*iterables: Iterable[Any]) -> zip[Any]:
    for iterable in iterables:
        guarded_getiter(iterable)
    return zip(*iterables, strict=False)


def _enumerate(iterable: Iterable[Any], start: int = 0) -> enumerate[Any]:
    guarded_getiter(iterable)
    return enumerate(iterable, start)


# Money is modelled as integer cents throughout the project, so ``float`` is deliberately absent;
# ``True``/``False``/``None`` are keywords and need no entry. The types stay real types so that
# ``isinstance(o, dict)`` works; their constructors iterate in C, but the only iterables a script can
# reach are plain data (generator expressions are refused, and no builtin returns a foreign iterator).
_SAFE_BUILTINS: Final[dict[str, Any]] = {
    "len": len, "abs": abs, "round": round, "isinstance": isinstance,
    "int": int, "str": str, "bool": bool, "list": list, "dict": dict, "set": set, "tuple": tuple,
    "min": _iterating(min), "max": _iterating(max), "sum": _iterating(sum), "sorted": _iterating(sorted),
    "any": _iterating(any), "all": _iterating(all),
    "range": _bounded_range, "enumerate": _enumerate, "zip": _zip,
}  # fmt: skip

#: The builtins a script may use (documented in bpmn/README.md).
SAFE_BUILTIN_NAMES: Final[frozenset[str]] = frozenset(_SAFE_BUILTINS)

# Names RestrictedPython's rewritten code calls. Scripts cannot name or overwrite them ('_' prefix).
_GUARDS: Final[dict[str, Any]] = {
    "_getattr_": guarded_getattr,
    "_getitem_": guarded_getitem,
    "_getiter_": guarded_getiter,
    "_iter_unpack_sequence_": _guarded_iter_unpack_sequence,
    "_unpack_sequence_": _guarded_unpack_sequence,
    "_write_": full_write_guard,  # item/attribute writes only into list and dict
    "_inplacevar_": _inplacevar,
    "_apply_": _apply,
}


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
    return kalender.begin_volgende_dag(date.fromisoformat(str(datum)[:10])).isoformat()


def einde_looptijd(start: str, maanden: int) -> str:
    """The last day (ISO date) of a period of ``maanden`` calendar months that starts on ``start``.

    2024-02-01 + 24 months ends on 2026-01-31: the day before the same day number in the end month. When the
    end month is too short for that day number (31 March + 1 month), the period ends on its last day.
    """
    return kalender.einde_periode(date.fromisoformat(str(start)[:10]), int(maanden)).isoformat()


def _dag(moment: str) -> date:
    """The Amsterdam day of an ISO timestamp (a bare date, or a naive timestamp, is taken as it is)."""
    value = datetime.fromisoformat(str(moment))
    return kalender.amsterdam_dag(value) if value.tzinfo else value.date()


def opschortingsdagen(gevraagd_op: str, aangevuld_op: str | None) -> int:
    """Awb 4:15 lid 1 sub a: the days the decision term is suspended, from the day after the request to complete
    (``gevraagd_op``, the day intake asked) up to, not including, the day of the supplement (``aangevuld_op``, a
    timestamp, its Amsterdam day). No supplement: 0."""
    if not aangevuld_op:
        return 0
    return kalender.opschortingsdagen(date.fromisoformat(str(gevraagd_op)[:10]), _dag(aangevuld_op))


def beslisdatum_na_opschorting(beslistermijn_einde: str, opgeschorte_dagen: int) -> str:
    """The decision date (ISO) when the statutory term, which ends on ``beslistermijn_einde`` (grants' toetsing:
    receipt + beslistermijn, before the Atw), is extended by ``opgeschorte_dagen`` (Awb 4:15); the Algemene
    termijnenwet then moves the end of the extended term past a weekend or holiday."""
    einde = date.fromisoformat(str(beslistermijn_einde)[:10]) + timedelta(days=int(opgeschorte_dagen))
    return kalender.termijn_einde(einde).isoformat()


def opgeschorte_beslisdatum(beslisdatum: str, uiterlijk: str, hersteltermijn: str, aangevuld_op: str | None) -> str:
    """For diagram versions deployed before ``opschortingsdagen``/``beslisdatum_na_opschorting`` (their running
    cases still call it): the request day is ``uiterlijk`` minus the hersteltermijn and the statutory end is not
    known, so ``beslisdatum`` stands in for it; the days and the Atw are counted as above."""
    if not aangevuld_op:
        return str(beslisdatum)[:10]
    einde = date.fromisoformat(str(uiterlijk)[:10])
    gevraagd = einde - (kalender.plus_duur(einde, str(hersteltermijn).upper()) - einde)
    dagen = kalender.opschortingsdagen(gevraagd, _dag(aangevuld_op))
    return beslisdatum_na_opschorting(beslisdatum, dagen)


#: Functions of ours that every script and expression may call (pure, no I/O).
PROCESS_FUNCTIONS: Final[dict[str, Any]] = {"einde_van_dag": einde_van_dag, "einde_looptijd": einde_looptijd,
                                             "opschortingsdagen": opschortingsdagen,
                                             "beslisdatum_na_opschorting": beslisdatum_na_opschorting,
                                             "opgeschorte_beslisdatum": opgeschorte_beslisdatum}


def _script_globals(context: Mapping[str, Any], external_context: Mapping[str, Any] | None) -> dict[str, Any]:
    """Build the globals for one evaluation.

    Keys starting with '_' are dropped: scripts cannot name them anyway, and a data key called
    ``__builtins__`` or ``_getattr_`` would otherwise replace the whitelist or a guard. The builtins
    are a fresh copy each time, so nothing one evaluation does can reach the next.
    """
    namespace: dict[str, Any] = {}
    for source in (external_context or {}, context):
        namespace.update({k: v for k, v in source.items() if not k.startswith("_")})
    namespace.update(PROCESS_FUNCTIONS)
    namespace.update(_GUARDS)
    namespace["__builtins__"] = dict(_SAFE_BUILTINS)
    return namespace


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):  # type: ignore[misc]
    """Spiff script environment: sandboxed compilation, guards, whitelisted builtins and a deadline.

    Every evaluation compiles its source through the sandbox (cached by source text): nothing a stored
    definition says about having been checked is trusted.
    """

    def __init__(self, time_limit_s: float = DEFAULT_TIME_LIMIT_S) -> None:
        super().__init__({})
        self.time_limit_s = time_limit_s

    def evaluate(
        self, expression: str, context: dict[str, Any], external_context: dict[str, Any] | None = None
    ) -> Any:
        """Evaluate an expression against task data; never mutates ``context``."""
        code = compile_script(expression, "eval")
        namespace = _script_globals(context, external_context)
        with _deadline(self.time_limit_s):
            return eval(code, namespace)  # noqa: S307 - sandboxed: RestrictedPython code, guards, whitelisted builtins

    def execute(
        self, script: str, context: dict[str, Any], external_context: dict[str, Any] | None = None
    ) -> bool:
        """Run a script; its plain-data variables become the new task data.

        Callables (lambdas, our functions), the names injected via ``external_context`` and names
        starting with '_' (guards, RestrictedPython's temporaries) are not written back. Keys starting
        with '_' were invisible to the script and are kept as they were.
        """
        code = compile_script(script, "exec")
        namespace = _script_globals(context, external_context)
        with _deadline(self.time_limit_s):
            exec(code, namespace)  # noqa: S102 - sandboxed: RestrictedPython code, guards, whitelisted builtins
        external = set(external_context or {})
        hidden = {k: v for k, v in context.items() if k.startswith("_")}
        result = {
            k: v
            for k, v in namespace.items()
            if not k.startswith("_") and k not in external and not callable(v)
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
    engine relies on it to decide whether to add ``==``); the sandbox rules are
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
