"""One way for tests, benchmarks and e2e tests to take a namespace and give it back (also when they fail).

The names carry their creation time (``ipsflow_cli.namespaces``), so the sweep at the start of a test session
removes what a killed run left behind once it is a day old.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

from ipsflow_cli.namespaces import DAY, Endpoints, Namespace, delete_namespace, new_namespace, sweep
from tests.support.infra import ROOT, Infra


def endpoints(infra: Infra) -> Endpoints:
    return Endpoints(infra.mongo_url, infra.management_url, infra.amqp_url)


def remove_namespace(infra: Infra, namespace: str) -> tuple[int, int]:
    """Delete the namespace's queues, exchanges and databases; a failure is a warning, not a test error (the
    session sweep removes what stays behind)."""
    try:
        return delete_namespace(endpoints(infra), namespace)
    except Exception as exc:  # cleanup must not hide the test's own outcome
        warnings.warn(f"namespace {namespace} not removed: {exc!r}", stacklevel=2)
        return 0, 0


@contextlib.contextmanager
def temporary_namespace(infra: Infra, kind: str = "t") -> Iterator[str]:
    """A fresh namespace for the ``with`` block, deleted afterwards whatever happened inside."""
    namespace = new_namespace(kind)
    try:
        yield namespace
    finally:
        remove_namespace(infra, namespace)


def seen_file() -> Path:
    return Path(os.environ.get("IPSFLOW_LOCAL_DIR", ROOT / ".local")) / "namespaces-seen.json"


def sweep_leftovers(infra: Infra, max_age: float = DAY) -> list[Namespace]:
    """Remove namespaces killed runs left behind (older than ``max_age``, no consumers); never fails a session."""
    try:
        return sweep(endpoints(infra), max_age=max_age, seen_file=seen_file())
    except Exception as exc:  # a sweep that cannot run leaves things as they were
        warnings.warn(f"sweep of old test namespaces did not run: {exc!r}", stacklevel=2)
        return []
