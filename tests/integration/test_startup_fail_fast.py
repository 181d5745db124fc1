"""A service whose broker or database does not answer at start-up exits within its start-up timeout, with one
error line naming the dependency and its address (never the credentials), instead of hanging without a word."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from tests.support.listeners import silent_listener
from tests.support.processes import ServiceProcess, free_port

STARTUP_TIMEOUT = 4


@pytest.fixture
def silent_broker() -> Iterator[int]:
    with silent_listener() as port:
        yield port


def _failure_lines(proc: ServiceProcess) -> list[dict]:
    text = next(proc.log_dir.glob(f"{proc.package}-{proc.port}.log")).read_text()
    assert "s3cr3t" not in text, "credentials must never reach the log"
    lines = []
    for line in text.splitlines():
        if line.startswith("{") and '"startup.failed"' in line:
            lines.append(json.loads(line))
    return lines


def _start_and_time_exit(proc: ServiceProcess) -> tuple[int, float]:
    started = time.monotonic()
    proc.start(wait=False, IPSFLOW_STARTUP_TIMEOUT_SECONDS=str(STARTUP_TIMEOUT))
    code = proc.wait_exit(timeout=STARTUP_TIMEOUT + 40)  # import time on a busy machine included
    return code, time.monotonic() - started


def test_a_broker_that_accepts_but_never_answers_ends_the_start_with_its_name(infra, namespace, tmp_path,
                                                                              silent_broker):
    proc = ServiceProcess("grants", infra, namespace, tmp_path,
                          extra_env={"IPSFLOW_AMQP_URL": f"amqp://ipsuser:s3cr3t@127.0.0.1:{silent_broker}/"})
    try:
        code, seconds = _start_and_time_exit(proc)
    finally:
        proc.stop()
    assert code != 0
    [failure] = _failure_lines(proc)
    assert failure["dependency"] == "rabbitmq"
    assert failure["endpoint"] == f"127.0.0.1:{silent_broker}"
    assert failure["level"] == "error"
    assert f"did not answer within {STARTUP_TIMEOUT} s" in failure["detail"]
    assert seconds < STARTUP_TIMEOUT + 30, f"exited only after {seconds:.1f} s"


def test_a_database_that_does_not_answer_ends_the_start_with_its_name(infra, namespace, tmp_path):
    port = free_port()  # nothing listens there
    proc = ServiceProcess("intake", infra, namespace, tmp_path,
                          extra_env={"IPSFLOW_MONGO_URL": f"mongodb://ipsuser:s3cr3t@127.0.0.1:{port}/"})
    try:
        code, _seconds = _start_and_time_exit(proc)
    finally:
        proc.stop()
    assert code != 0
    [failure] = _failure_lines(proc)
    assert failure["dependency"] == "mongodb"
    assert failure["endpoint"] == f"127.0.0.1:{port}"
