"""`ipsflow run` waits for every service with one deadline, says what it waits for, and reports a service whose
process ended at once, with the end of its log (issue 18: a busy machine, a service that dies at start-up)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ipsflow_cli import run


def _processes(code: str) -> list[subprocess.Popen[bytes]]:
    return [subprocess.Popen([sys.executable, "-c", code]) for _ in run.SERVICES]


def test_a_service_that_stops_at_start_up_is_reported_with_its_log(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    for package, _ in run.SERVICES:
        (tmp_path / f"{package}.log").write_text(f"{package} line 1\n{package}: database unreachable\n")
    processes = _processes("raise SystemExit(3)")
    for process in processes:
        process.wait()
    started = time.monotonic()
    assert run._wait_all_ready(processes, tmp_path, timeout=60) is False
    assert time.monotonic() - started < 10  # not the whole deadline
    out = capsys.readouterr().out
    assert "intake stopped at start-up (exit 3)" in out
    assert "intake: database unreachable" in out


def test_services_that_never_answer_are_named_after_the_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(run, "SERVICES", [("intake", 1), ("grants", 2)])  # ports nobody listens on
    answered = {1}  # intake answers, grants does not
    monkeypatch.setattr(run, "_answers_ready", lambda port: port in answered)
    processes = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"]) for _ in range(2)]
    try:
        assert run._wait_all_ready(processes, tmp_path, timeout=1) is False
    finally:
        for process in processes:
            process.kill()
    out = capsys.readouterr().out
    assert "not ready after 1 s: grants;" in out and "intake" not in out.split("not ready")[1]


def test_all_ready_is_said_once_every_service_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    calls: list[int] = []

    def answers(port: int) -> bool:
        calls.append(port)
        return len(calls) > len(run.SERVICES)  # nobody on the first round, everyone on the second
    monkeypatch.setattr(run, "_answers_ready", answers)
    processes = _processes("import time; time.sleep(30)")
    try:
        assert run._wait_all_ready(processes, tmp_path, timeout=30) is True
    finally:
        for process in processes:
            process.kill()
    assert "all services ready after" in capsys.readouterr().out
