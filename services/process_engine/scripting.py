"""Sandbox for the Python code in BPMN and DMN content (scripts, conditions, expressions, DMN cells).

SpiffWorkflow evaluates every condition, timer expression, service-task parameter, DMN cell and script
task with ``eval``/``exec``. Process definitions are uploaded by administrators (soon by process owners
with a deploy button), not trusted code, so every piece of it goes through this module:

* **Compilation** with RestrictedPython (:func:`compile_script`), whose transformer refuses names and
  attributes starting with ``_``, frame/generator/coroutine/traceback/code attributes, ``exec``/``eval``
  and rewrites every attribute read, item read, iteration, unpacking and write into a call of a guard.
  :class:`~process_engine.script_policy.SandboxPolicy` (module ``script_policy``, the static half) adds our own
  rules on top (see there): no generator expressions, ``yield``,
  function/class definitions (so no decorators), lambda defaults, walrus, ``while``, ``try``/``raise``,
  ``with``, ``global``, imports, ``.format``, dangerous builtin names, and ``**`` only with a small literal
  exponent. The same compilation serves the deploy check (:func:`check_script`) and every evaluation, and
  is cached by source text: compiling is slow, the engine evaluates the same expressions thousands of times.
* **Guards** at run time: attribute reads only on plain data (str, numbers, list, dict, ...) and never of
  a denied name, item reads and iteration only on plain data, writes only into lists and dicts.
* **Builtins**: a short whitelist (:data:`SAFE_BUILTIN_NAMES`) plus our pure date helpers
  (:data:`PROCESS_FUNCTIONS`, module ``procesfuncties``); no ``type``, ``getattr``, ``open``, ``eval``,
  ``__import__`` ...
* **A time budget** enforced with ``sys.settrace`` against runaway loops and comprehensions.

Known limits: the budget is checked between Python lines, so a single C-level operation
(``"x" * 10**9``, ``sorted`` of a huge list) is not interrupted, and memory use is not capped.
``range`` is bounded to :data:`MAX_RANGE` numbers for that reason.
"""

from __future__ import annotations

import operator
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from functools import lru_cache
from types import CodeType, FrameType
from typing import Any, Final, Literal

from RestrictedPython.compile import compile_restricted_eval, compile_restricted_exec
from RestrictedPython.Guards import full_write_guard, guarded_iter_unpack_sequence, guarded_unpack_sequence
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment

from process_engine.procesfuncties import PROCESS_FUNCTIONS
from process_engine.script_policy import FORBIDDEN_NAMES, SandboxPolicy, attribute_refusal

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


# --------------------------------------------------------------------------- compilation


@lru_cache(maxsize=COMPILE_CACHE_SIZE)
def _compile(source: str, mode: Literal["exec", "eval"]) -> tuple[CodeType | None, tuple[str, ...]]:
    """Compile once per distinct source text and mode; refusals are cached too (as violations)."""
    compiler = compile_restricted_eval if mode == "eval" else compile_restricted_exec
    try:
        result = compiler(source, filename=_SCRIPT_FILENAME, policy=SandboxPolicy)
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
