"""The layering rules of docs/architecture.md, checked by parsing every import under services/ with ``ast``.

* a service's ``domain.py`` (or ``domain/`` package) imports only the standard library, its own domain and the
  pure shared modules (``PURE_SHARED``: the legal calendar and the elfproef), which import only the standard library;
* no package imports another first-party package, except that everyone may import ``servicekit``;
* ``servicekit`` imports no service.

Imports inside functions and ``if TYPE_CHECKING:`` blocks count too: they couple the code just the same.
Failures name the offending ``file:line``.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES_DIR = ROOT / "services"
SHARED = "servicekit"
SERVICES = ("intake", "grants", "payments", "notifications", "process_engine")
STDLIB = frozenset(sys.stdlib_module_names)
#: Shared modules that are pure and standard-library only, so domain code may use them (one legal calendar).
PURE_SHARED = frozenset({"servicekit.kalender", "servicekit.personal_data"})


@dataclass(frozen=True)
class Import:
    file: Path
    line: int
    module: str  # absolute dotted name

    @property
    def top(self) -> str:
        return self.module.split(".")[0]


def first_party_packages(root: Path) -> set[str]:
    return {p.name for p in root.iterdir() if p.is_dir() and (p / "__init__.py").is_file()}


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if any(part == "__pycache__" or part.endswith(".egg-info") for part in rel.parts):
            continue
        yield path


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(root: Path, path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    this = module_name(root, path)
    is_package = path.name == "__init__.py"
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(path, node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                base = node.module or ""
            else:
                # Relative: resolve against this module's package (``from . import x`` in pkg/mod.py → pkg).
                package = this.split(".") if is_package else this.split(".")[:-1]
                keep = len(package) - (node.level - 1)
                base = ".".join(package[: max(keep, 0)] + ([node.module] if node.module else []))
            if node.module is None:
                # ``from pkg import a, b``: each name may be a submodule, and that is what it depends on.
                found.extend(
                    Import(path, node.lineno, f"{base}.{alias.name}" if base else alias.name)
                    for alias in node.names
                )
            else:
                found.append(Import(path, node.lineno, base))
    return sorted(found, key=lambda i: i.line)


def is_domain_module(module: str, package: str) -> bool:
    parts = module.split(".")
    return len(parts) >= 2 and parts[0] == package and parts[1] == "domain"


def where(imp: Import, root: Path) -> str:
    return f"{imp.file.relative_to(root.parent)}:{imp.line}"


def layering_violations(root: Path) -> list[str]:
    """Every broken rule as ``file:line: why``; empty when the tree is clean."""
    ours = first_party_packages(root)
    problems: list[str] = []
    for path in python_files(root):
        module = module_name(root, path)
        package = module.split(".")[0]
        if package not in ours:
            continue  # a loose script beside the packages; not a service
        in_domain = is_domain_module(module, package)
        for imp in imports_of(root, path):
            if in_domain or module in PURE_SHARED:
                if imp.top in STDLIB or (in_domain and (is_domain_module(imp.module, package)
                                                         or imp.module in PURE_SHARED)):
                    continue
                problems.append(
                    f"{where(imp, root)}: domain code imports {imp.module} "
                    "(only the standard library and its own domain are allowed)" if in_domain else
                    f"{where(imp, root)}: the pure shared module {module} imports {imp.module} "
                    "(only the standard library is allowed)"
                )
                continue
            if imp.top not in ours or imp.top == package:
                continue
            if package == SHARED:
                problems.append(
                    f"{where(imp, root)}: servicekit imports the service {imp.top} "
                    "(shared code must not depend on a service)"
                )
            elif imp.top != SHARED:
                problems.append(
                    f"{where(imp, root)}: {package} imports {imp.module} "
                    "(services never import each other; only servicekit is shared)"
                )
    return problems


# --- the real tree ------------------------------------------------------------------------------------------


def test_the_services_tree_is_what_the_rules_are_about() -> None:
    # Guards against a vacuous pass: the scan must see servicekit, the services that exist and their domains.
    ours = first_party_packages(SERVICES_DIR)
    assert SHARED in ours
    assert {"intake", "notifications"} <= ours
    scanned = {module_name(SERVICES_DIR, p) for p in python_files(SERVICES_DIR)}
    assert "intake.domain" in scanned
    assert "servicekit.broker" in scanned
    unexpected = ours - {SHARED, "ipsflow_cli", "console", *SERVICES}
    assert not unexpected, f"new top-level packages need a place in the layering rules: {sorted(unexpected)}"


def test_services_keep_their_layers() -> None:
    problems = layering_violations(SERVICES_DIR)
    assert not problems, "layering broken:\n" + "\n".join(problems)


# --- the checker itself, on a small tree made for it -------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A small clean tree shaped like services/; tests break one rule at a time in it."""
    root = tmp_path / "services"
    _write(
        root,
        {
            "servicekit/__init__.py": "",
            "servicekit/store.py": "import json\nfrom pymongo import AsyncMongoClient\n",
            "intake/__init__.py": "",
            "intake/domain.py": (
                "from __future__ import annotations\nimport datetime\nfrom dataclasses import dataclass\n"
            ),
            "intake/api.py": (
                "from fastapi import FastAPI\nfrom servicekit.store import x\nfrom intake.domain import y\n"
            ),
            "grants/__init__.py": "",
            "grants/domain/__init__.py": "from . import budget\nfrom .budget import Ledger\n",
            "grants/domain/budget.py": "import decimal\nfrom grants.domain import caps\n",
            "grants/handlers.py": "def f():\n    from servicekit.consumer import PoisonMessage\n",
            "notifications/__init__.py": "",
            "ipsflow_cli/__init__.py": "",
            "ipsflow_cli/main.py": (
                "import typer\nfrom servicekit.broker import DLX\nfrom ipsflow_cli.run import r\n"
            ),
        },
    )
    return root


def test_checker_accepts_a_clean_tree(tree: Path) -> None:
    assert layering_violations(tree) == []


def test_checker_reports_each_broken_rule_with_file_and_line(tree: Path) -> None:
    _write(
        tree,
        {
            "intake/domain.py": (
                "import datetime\n\nfrom pydantic import BaseModel\nfrom servicekit.envelope import e\n"
            ),
            "grants/domain/budget.py": "import decimal\nfrom grants.repository import Repo\n",
            "grants/handlers.py": "def f():\n    from intake.domain import Aanvraag\n",
            "servicekit/runtime.py": "import asyncio\nif True:\n    import notifications.bootstrap\n",
            "ipsflow_cli/run.py": "from grants import handlers\n",
        },
    )
    problems = layering_violations(tree)
    assert sorted(p.split(": ")[0] for p in problems) == [
        "services/grants/domain/budget.py:2",
        "services/grants/handlers.py:2",
        "services/intake/domain.py:3",
        "services/intake/domain.py:4",
        "services/ipsflow_cli/run.py:1",
        "services/servicekit/runtime.py:3",
    ]
    assert any("servicekit imports the service notifications" in p for p in problems)
    assert any("grants imports intake.domain" in p for p in problems)
    assert any("domain code imports pydantic" in p for p in problems)
    assert any("domain code imports grants.repository" in p for p in problems)


def test_domain_may_not_import_a_sibling_that_is_not_domain(tree: Path) -> None:
    _write(tree, {"intake/domain.py": "from .rules import x\n", "intake/rules.py": ""})
    assert layering_violations(tree) == [
        "services/intake/domain.py:1: domain code imports intake.rules "
        "(only the standard library and its own domain are allowed)",
    ]


def test_relative_imports_resolve_to_the_importing_package(tree: Path) -> None:
    mods = [i.module for i in imports_of(tree, tree / "grants/domain/__init__.py")]
    assert mods == ["grants.domain.budget", "grants.domain.budget"]
    _write(tree, {"intake/api.py": "from . import domain\nfrom .domain import Aanvraag\nfrom .. import x\n"})
    mods = [i.module for i in imports_of(tree, tree / "intake/api.py")]
    assert mods == ["intake.domain", "intake.domain", "x"]


def test_domain_may_use_the_pure_shared_calendar_which_must_stay_standard_library_only(tree: Path) -> None:
    _write(tree, {"servicekit/kalender.py": "import json\nfrom datetime import date\n",
                  "intake/domain.py": "from servicekit.kalender import plus_duur\nimport servicekit.kalender\n"})
    assert layering_violations(tree) == []
    _write(tree, {"servicekit/kalender.py": "import json\nfrom pydantic import B\nfrom servicekit.store import s\n",
                  "intake/domain.py": "from servicekit.kalender import plus_duur\nfrom servicekit.store import x\n"})
    assert sorted(p.split(": ")[0] for p in layering_violations(tree)) == [
        "services/intake/domain.py:2", "services/servicekit/kalender.py:2", "services/servicekit/kalender.py:3"]
