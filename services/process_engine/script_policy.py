"""The static half of the script sandbox: what RestrictedPython's transformer refuses on top of its own rules,
at compile time (so at deploy, naming the element). ``scripting`` compiles every script and expression with
:class:`SandboxPolicy` and uses :func:`attribute_refusal` again in its run-time attribute guard."""

from __future__ import annotations

import ast
from typing import Any, Final

from RestrictedPython.transformer import INSPECT_ATTRIBUTES, RestrictingNodeTransformer

MAX_POWER_EXPONENT: Final = 64


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


class SandboxPolicy(RestrictingNodeTransformer):
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
