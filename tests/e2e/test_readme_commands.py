"""The README's two commands work as written: CI runs the test command; the run command serves the system."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time

import httpx

from tests.support.infra import ROOT
from tests.support.namespaces import temporary_namespace


def _readme_commands() -> dict[str, str]:
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"## The two commands.*?```bash\n(.*?)```", readme, re.S)
    assert block, "README has a section with the two commands"
    commands = {}
    for line in block.group(1).splitlines():
        command = line.split("#")[0].strip()
        if command:
            commands["run" if "run" in command else "test"] = command
    return commands


def test_ci_runs_the_readme_test_command():
    commands = _readme_commands()
    assert set(commands) == {"run", "test"}
    ci = (ROOT / ".ci" / "run").read_text()
    assert re.search(rf"^{re.escape(commands['test'])}$", ci, re.M), ".ci/run runs the README's test command"


def test_readme_run_command_starts_everything_and_prints_the_api_docs(infra):
    # Its own namespace, removed afterwards, so a test run leaves neither queues nor demo data behind.
    with temporary_namespace(infra, "e2e") as namespace:
        _run_the_run_command(namespace)


def _run_the_run_command(namespace: str) -> None:
    command = _readme_commands()["run"]
    # Started as a shell starts a background job (SIGINT ignored): Ctrl-C must still stop everything cleanly.
    proc = subprocess.Popen(command, shell=True, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, preexec_fn=_ignore_sigint,
                            env={**os.environ, "PYTHONUNBUFFERED": "1", "IPSFLOW_NAMESPACE": namespace})
    seen: list[str] = []
    docs_urls: list[str] = []
    try:
        deadline = time.monotonic() + 300
        assert proc.stdout is not None
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            seen.append(line.rstrip())
            match = re.search(r"API docs: (http://\S+)", line)
            if match:
                docs_urls.append(match.group(1))
            if "Ctrl-C stops everything" in line:
                break
        output = "\n".join(seen)
        assert docs_urls, f"the run command prints where the API docs are; it printed:\n{output}"
        assert "demo data: 4 aanvragen ingediend" in output, output
        for url in docs_urls:
            page = httpx.get(url, timeout=10)
            assert page.status_code == 200 and "swagger-ui" in page.text
        intake = httpx.get("http://127.0.0.1:8001/ready", timeout=10)
        assert intake.json()["status"] == "ready"
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C
        rest, _ = proc.communicate(timeout=60)
        assert "[run] stopping" in rest and "a service stopped" not in rest, rest
        assert proc.returncode == 0, rest
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
