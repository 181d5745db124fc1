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


def per_call_us(fn: Callable[[], Any], n: int) -> float:
    """Best of five rounds of n calls, in microseconds per call (best: least disturbed by other load)."""
    for _ in range(min(n, 200)):
        fn()
    rounds = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(n):
            fn()
        rounds.append((time.perf_counter() - started) / n * 1e6)
    return min(rounds)


def cold_us(module: ModuleType, n: int = 200) -> float:
    """First evaluation of a source text: a fresh source each call so the cache never serves it."""
    env = module.RestrictedEnvironment()
    started = time.perf_counter()
    for i in range(n):
        env.evaluate(f'besluit == "toekennen-{i}-{id(env)}"', dict(DATA))
    return (time.perf_counter() - started) / n * 1e6


def measure(module: ModuleType) -> dict[str, float]:
    env = module.RestrictedEnvironment()
    return {
        "condition, warm": per_call_us(lambda: env.evaluate(CONDITION, dict(DATA)), 20_000),
        "script, warm": per_call_us(lambda: env.execute(SCRIPT, dict(DATA)), 5_000),
        "condition, cold (compile)": cold_us(module),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--against", default="b662a1d")
    args = parser.parse_args()
    before = load_before(args.against)
    now = measure(scripting)
    then = measure(before) if before is not None else {}
    print(f"script sandbox, microseconds per evaluation (best of 5); before = {args.against}")
    for label, value in now.items():
        if label in then:
            print(f"  {label:<28} before {then[label]:8.1f}  now {value:8.1f}  ({value / then[label]:.2f}x)")
        else:
            print(f"  {label:<28} now {value:8.1f}")


if __name__ == "__main__":
    main()
