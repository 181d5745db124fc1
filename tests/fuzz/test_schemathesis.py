"""Schemathesis against the OpenAPI of every service, as real processes on the real broker and FerretDB.

Every operation is called with generated input (valid and invalid) and a token of each organisation type
(ggz, gemeente, UWV, beheer with and without its admin roles); each answer must be documented (status code,
content type, schema) and no answer may be a server error. ``IPSFLOW_FUZZ_EXAMPLES`` sets the examples per
operation: 50 in ``make test``, 500 in ``make fuzz``; ``IPSFLOW_FUZZ_SEED`` is fixed unless ``random`` (``make fuzz``).
Upload routes get PDF bodies (``application/pdf``), and positive cases use the id of a real application now and
then, so that they get past the 404.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.support.infra import ROOT, Infra
from tests.support.ips import ADJUSTABLE, GGZ_A, PDF, ROERMOND, application
from tests.support.namespaces import temporary_namespace
from tests.support.processes import ServiceProcess
from tests.support.tokens import bearer

SERVICES = ("intake", "grants", "payments", "notifications", "process_engine")
#: A test environment: the rehearsal clock is on, so its routes are fuzzed as a trainer would use them.
SERVICE_ENV = {**ADJUSTABLE}
EXAMPLES = int(os.environ.get("IPSFLOW_FUZZ_EXAMPLES", "50"))
#: ``make test`` draws the same inputs every run (a red build means the code changed, not the dice); ``make fuzz``
#: sets ``IPSFLOW_FUZZ_SEED=random`` to explore. Any number replays a run.
SEED = os.environ.get("IPSFLOW_FUZZ_SEED", "20261129")


def _tokens() -> dict[str, dict[str, str]]:
    return {
        "ggz": bearer("fuzz-ggz", "ggz", GGZ_A, "aanvrager"),
        "gemeente": bearer("fuzz-behandelaar", "gemeente", ROERMOND, "behandelaar",
                           name="F. Fuzz, behandelaar", mandates=("toekenning", "afwijzing", "verdaging")),
        "uwv": bearer("fuzz-uwv", "uwv", "UWV", "budgetbeheerder", "betaalbeheerder"),
        "beheer": bearer("fuzz-beheer", "beheer", "ipsflow", "procesbeheerder", "functioneel-beheerder"),
        "beheer-zonder-rol": bearer("fuzz-lezer", "beheer", "ipsflow"),
    }


class Tokens:
    """Tokens live at most an hour (servicekit.auth); a long ``make fuzz`` gets fresh ones every half hour."""

    def __init__(self) -> None:
        self.minted: float | None = None
        self.tokens: dict[str, dict[str, str]] = {}

    def __getitem__(self, kind: str) -> dict[str, str]:
        if self.minted is None or time.monotonic() - self.minted > 1800:
            self.tokens, self.minted = _tokens(), time.monotonic()
        return self.tokens[kind]


TOKENS = Tokens()
KINDS = sorted(_tokens())
#: PDF bodies for the upload routes: a small valid one, one with more pages' worth of bytes, and random bytes
#: behind the PDF magic (which intake must refuse or store, never fail on).
schemathesis.openapi.media_type("application/pdf", st.one_of(
    st.just(PDF), st.just(PDF + b"%" + b"x" * 4000 + b"\n%%EOF\n"),
    st.binary(max_size=2000).map(lambda b: b"%PDF-1.7\n" + b)))


@pytest.fixture(scope="module")
def system(infra: Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """All five services in their own namespace, and one real application of the ggz to aim at."""
    log_dir: Path = tmp_path_factory.mktemp("fuzz-logs")
    with temporary_namespace(infra, "t") as namespace:
        procs = {name: ServiceProcess(name, infra, namespace, log_dir, extra_env=SERVICE_ENV) for name in SERVICES}
        try:
            for proc in procs.values():
                proc.start()
            submitted = httpx.post(f"{procs['intake'].url}/api/v1/aanvragen", json=application(),
                                   headers=TOKENS["ggz"], timeout=30)
            assert submitted.status_code == 201, submitted.text
            for name, proc in procs.items():  # the operations collected are the ones these processes serve
                served = httpx.get(f"{proc.url}/api/v1/openapi.json", timeout=30).json()
                assert served == DOCUMENTS[name], f"{name}: the OpenAPI served differs from the one collected"
            yield {"urls": {name: proc.url for name, proc in procs.items()}, "aanvraag": submitted.json()["id"],
                   "logs": log_dir}
        finally:
            for proc in procs.values():
                proc.stop()


def _openapi_documents() -> dict[str, dict[str, Any]]:
    """Each service's OpenAPI as the processes below serve it, built in a child process with their settings (the
    collection needs the operations before any service runs; ``system`` checks they are the same)."""
    script = ("import importlib, json, sys\n"
              f"docs = {{s: importlib.import_module(s + '.api').create().openapi() for s in {SERVICES!r}}}\n"
              "json.dump(docs, sys.stdout)")
    env = {**os.environ, **SERVICE_ENV, "IPSFLOW_ENVIRONMENT": "development",
           "PYTHONPATH": f"{ROOT / 'services'}{os.pathsep}{ROOT}"}
    done = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, timeout=120,
                          check=True)
    return dict(json.loads(done.stdout))


DOCUMENTS = _openapi_documents()
#: "Schema-valid request rejected": input the schema allows can still break a rule it cannot express (the
#: elfproef of a BSN, a start date after the application date, a stale If-Match); those are 400/412 by design.
#: Every other check runs: server errors, status codes, content types, response schemas and headers, invalid
#: input accepted, authentication ignored.
EXCLUDED_CHECKS = [positive_data_acceptance]
#: Path parameters that name an application (or the case of one): positive cases aim at the real one now and then.
_AANVRAAG_PARAMS = ("aanvraag_id", "case_id", "zaak_id")


def _fuzz_test(service: str) -> Any:
    schema = schemathesis.openapi.from_dict(DOCUMENTS[service])
    # Unknown query parameters are ignored, not refused (README, "API-randen"); tokens are ours, not generated.
    schema.config.generation.update(allow_extra_parameters=False, with_security_parameters=False)
    if SEED != "random":
        schema.config.seed = int(SEED)

    @schema.parametrize()
    @schema.given(kind=st.sampled_from(KINDS), aim=st.booleans())
    @settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def test(case: Any, kind: str, aim: bool, system: dict[str, Any]) -> None:
        if aim and case.meta is not None and case.meta.generation.mode == GenerationMode.POSITIVE:
            for name in _AANVRAAG_PARAMS:
                if case.path_parameters and name in case.path_parameters:
                    case.path_parameters[name] = system["aanvraag"]
        case.call_and_validate(base_url=system["urls"][service], headers=TOKENS[kind], timeout=30,
                               excluded_checks=EXCLUDED_CHECKS)

    test.__name__ = f"test_{service}"
    return test


test_intake = _fuzz_test("intake")
test_grants = _fuzz_test("grants")
test_payments = _fuzz_test("payments")
test_notifications = _fuzz_test("notifications")
test_process_engine = _fuzz_test("process_engine")
