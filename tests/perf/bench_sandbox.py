"""Benchmark: one typical condition and one typical script through the script sandbox, now and before.

"Before" is services/process_engine/scripting.py as of ``--against`` (default b662a1d: the hand-written AST
check with the step/CPU budget, the last version before RestrictedPython), loaded from git into this same
process, so both are measured in one run on the same machine. Without git history only "now" is measured.
Warm = compiled code served from the cache by source text (what the engine does thousands of times);
cold = the first evaluation of a source text (compile included). Prints figures; not a test.

    PYTHONPATH=. .venv/bin/python tests/perf/bench_sandbox.py [--against <commit>]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from process_engine import scripting

CONDITION = 'besluit == "toekennen"'
SCRIPT = ('startdatum = aanvraag["gewensteStartdatum"]\n'
          "einddatum = einde_looptijd(startdatum, looptijd_maanden)\n"
          "verlengingen = 0\n"
          "werkelijke_einddatum = None")
DATA = {"besluit": "toekennen", "aanvraag": {"gewensteStartdatum": "2026-03-01", "aanvraagId": "A-1"},
        "looptijd_maanden": 24}


def load_before(commit: str) -> ModuleType | None:
    root = Path(__file__).resolve().parents[2]
    shown = subprocess.run(["git", "show", f"{commit}:services/process_engine/scripting.py"], cwd=root,
                           capture_output=True, text=True, check=False)
    if shown.returncode != 0:
        print(f"(no git history for {commit}: measuring the current sandbox only)")
        return None
    path = Path(tempfile.mkdtemp()) / "scripting_before.py"
    path.write_text(shown.stdout)
    spec = importlib.util.spec_from_file_location("scripting_before", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["scripting_before"] = module
    spec.loader.exec_module(module)
    return module


def best_us(calls: dict[str, Callable[[], Any]], n: int, rounds: int = 7) -> dict[str, float]:
    """Microseconds per call for each side, best of ``rounds`` rounds of n calls. The sides take turns
    round by round, so that a change in the machine's load (other processes) hits both alike."""
    for fn in calls.values():
        for _ in range(min(n, 200)):
            fn()
    best = {side: float("inf") for side in calls}
    for _ in range(rounds):
        for side, fn in calls.items():
            started = time.perf_counter()
            for _ in range(n):
                fn()
            best[side] = min(best[side], (time.perf_counter() - started) / n * 1e6)
    return best


def fresh_sources(module: ModuleType) -> Callable[[], Any]:
    """First evaluation of a source text (compile included): a new source each call, never served from cache."""
    env = module.RestrictedEnvironment()
    counter = iter(range(10**9))
    return lambda: env.evaluate(f'besluit == "toekennen-{next(counter)}"', dict(DATA))


def measure(modules: dict[str, ModuleType]) -> dict[str, dict[str, float]]:
    envs = {side: module.RestrictedEnvironment() for side, module in modules.items()}
    return {
        "condition, warm": best_us({side: (lambda e=env: e.evaluate(CONDITION, dict(DATA)))
                                    for side, env in envs.items()}, 20_000),
        "script, warm": best_us({side: (lambda e=env: e.execute(SCRIPT, dict(DATA)))
                                 for side, env in envs.items()}, 5_000),
        "condition, cold (compile)": best_us({side: fresh_sources(module) for side, module in modules.items()}, 200),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", default="b662a1d")
    args = parser.parse_args()
    before = load_before(args.against)
    modules = {"now": scripting} if before is None else {"before": before, "now": scripting}
    print(f"script sandbox, microseconds per evaluation (best of 7, sides alternating); before = {args.against}")
    for label, sides in measure(modules).items():
        if "before" in sides:
            print(f"  {label:<28} before {sides['before']:8.1f}  now {sides['now']:8.1f}"
                  f"  ({sides['now'] / sides['before']:.2f}x)")
        else:
            print(f"  {label:<28} now {sides['now']:8.1f}")


if __name__ == "__main__":
    main()
