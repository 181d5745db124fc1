"""Services as real processes: without a key they refuse to start unless the environment is development; a key
file is read once at start-up; the clock and the UWV actions keep their roles."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from servicekit.auth import AUDIENCE, ISSUER
from tests.support.tokens import (
    ADMIN,
    BEHEER_ZONDER_ROL,
    FUNCTIONEEL_BEHEERDER,
    PROCESBEHEERDER,
    bearer,
)

BPMN_DIR = str(Path(__file__).resolve().parents[1] / "bpmn")
NO_KEY = {"IPSFLOW_JWT_PUBLIC_KEY_FILE": "", "IPSFLOW_JWT_JWKS_URL": ""}  # empty counts as not set


def _key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _public_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _token(key: rsa.RSAPrivateKey, lifetime: int = 600) -> dict[str, str]:
    now = int(time.time())
    claims = {"sub": "idp-user", "org_type": "uwv", "org": "UWV", "roles": ["budgetbeheerder"], "aud": AUDIENCE,
              "iss": ISSUER, "iat": now, "exp": now + lifetime}
    return {"Authorization": f"Bearer {jwt.encode(claims, key, algorithm='RS256')}"}


def _log(proc) -> str:  # type: ignore[no-untyped-def]
    return (proc.log_dir / f"{proc.package}-{proc.port}.log").read_text()


def test_without_a_key_a_production_service_refuses_to_start(service):
    """Regression (issue 12): it started and trusted the development key lying in .local/dev-keys."""
    for environment in ("production", "test"):
        grants = service("grants").start(wait=False, IPSFLOW_ENVIRONMENT=environment, **NO_KEY)
        code = grants.wait_exit(timeout=60)
        assert code != 0
        log = _log(grants)
        assert '"event": "auth.not_configured"' in log
        assert "set IPSFLOW_JWT_PUBLIC_KEY_FILE or IPSFLOW_JWT_JWKS_URL" in log
        assert "service.started" not in log, "it must refuse before it connects to anything"
        grants.stop()


def test_without_a_key_a_development_service_starts_on_the_development_key(service):
    grants = service("grants").start(IPSFLOW_ENVIRONMENT="development", **NO_KEY)
    assert httpx.get(f"{grants.url}/api/v1/regelingen", headers=ADMIN, timeout=10).status_code == 200
    assert '"event": "auth.configured"' in _log(grants)


def test_a_production_service_reads_its_key_file_once_and_refuses_everything_else(service, tmp_path):
    idp, rotated = _key(), _key()
    key_file = tmp_path / "idp-public.pem"
    key_file.write_bytes(_public_pem(idp))
    grants = service("grants", IPSFLOW_ENVIRONMENT="production", IPSFLOW_JWT_PUBLIC_KEY_FILE=str(key_file),
                     IPSFLOW_JWT_JWKS_URL="").start()
    url = f"{grants.url}/api/v1/budgetten"
    assert httpx.get(url, headers=_token(idp), timeout=10).status_code == 200
    dev = httpx.get(url, headers=ADMIN, timeout=10)  # the development key means nothing here
    assert dev.status_code == 401 and dev.json()["detail"] == "Token heeft een onjuiste ondertekening."
    too_long = httpx.get(url, headers=_token(idp, lifetime=2 * 3600), timeout=10)
    assert too_long.status_code == 401
    assert too_long.json()["detail"] == "Token is te lang geldig (meer dan 3600 seconden tussen iat en exp)."
    # Regression (issue 12): the key file was read on every request. Now a new key counts after a restart only.
    key_file.write_bytes(_public_pem(rotated))
    assert httpx.get(url, headers=_token(idp), timeout=10).status_code == 200
    assert httpx.get(url, headers=_token(rotated), timeout=10).status_code == 401
    grants.stop()
    grants.start()
    assert httpx.get(url, headers=_token(rotated), timeout=10).status_code == 200
    assert httpx.get(url, headers=_token(idp), timeout=10).status_code == 401


def test_moving_the_clock_needs_the_functioneel_beheerder(service):
    engine = service("process_engine").start(IPSFLOW_BPMN_DIR=BPMN_DIR, IPSFLOW_CATALOGUE_FILE="",
                                             IPSFLOW_ADJUSTABLE_CLOCK="true")
    clock = f"{engine.url}/api/v1/beheer/klok"
    assert httpx.get(clock, headers=BEHEER_ZONDER_ROL, timeout=10).status_code == 200  # reading: org_type beheer
    moment = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    for not_allowed in (BEHEER_ZONDER_ROL, PROCESBEHEERDER, bearer("g", "gemeente", "0957", "functioneel-beheerder")):
        refused = httpx.put(clock, headers=not_allowed, json={"nu": moment}, timeout=10)
        assert refused.status_code == 403, refused.text
    assert abs(httpx.get(clock, headers=BEHEER_ZONDER_ROL, timeout=10).json()["verschuivingSeconden"]) < 60
    moved = httpx.put(clock, headers=FUNCTIONEEL_BEHEERDER, json={"nu": moment}, timeout=10)
    assert moved.status_code == 200, moved.text
    assert moved.json()["verschuivingSeconden"] > 29 * 24 * 3600


def test_a_budget_ceiling_stays_with_uwv_budgetbeheerder(service):
    grants = service("grants").start()
    url = f"{grants.url}/api/v1/budgetten/ips-gemeenten-2023/2026"
    for not_allowed in (BEHEER_ZONDER_ROL, ADMIN, bearer("b", "beheer", "ipsflow", "budgetbeheerder")):
        assert httpx.put(url, headers=not_allowed, json={"plafondCents": 10}, timeout=10).status_code == 403


def test_intake_outside_development_refuses_to_start_without_a_bsn_key(service, tmp_path):
    """Regression (issue 12, fail closed): intake fell back to the development BSN key in .local/dev-keys, so a
    production intake without IPSFLOW_INTAKE_BSN_KEY encrypted BSNs with a key lying next to the data."""
    key_file = tmp_path / "idp-public.pem"
    key_file.write_bytes(_public_pem(_key()))
    intake = service("intake").start(wait=False, IPSFLOW_ENVIRONMENT="production", IPSFLOW_INTAKE_BSN_KEY="",
                                     IPSFLOW_JWT_PUBLIC_KEY_FILE=str(key_file), IPSFLOW_JWT_JWKS_URL="")
    assert intake.wait_exit(timeout=60) == 78
    log = _log(intake)
    assert '"event": "service.refused"' in log and "IPSFLOW_INTAKE_BSN_KEY is not set" in log
