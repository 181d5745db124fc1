"""Where the token keys come from: a key file read once, a JWKS with caching and rotation, and no key at all
(fails closed unless the environment is development)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import HTTPException
from fastapi.testclient import TestClient

from servicekit.auth import (
    AUDIENCE,
    ISSUER,
    AuthConfigurationError,
    AuthSettings,
    JwksKeys,
    PrincipalDep,
    StaticKey,
    TokenVerifier,
    install_verifier,
    token_verifier,
)
from servicekit.http import create_app


class Key:
    """An RSA key pair that signs tokens and publishes itself as a JWK under ``kid``."""

    def __init__(self, kid: str) -> None:
        self.kid = kid
        self.private = rsa.generate_private_key(public_exponent=65537, key_size=2048)

    def token(self, kid: str | None = "same", lifetime: int = 300, **claims: Any) -> str:
        now = int(time.time())
        body = {"sub": "u", "org_type": "gemeente", "org": "0957", "roles": ["behandelaar"], "aud": AUDIENCE,
                "iss": ISSUER, "iat": now, "exp": now + lifetime, **claims}
        headers = {} if kid is None else {"kid": self.kid if kid == "same" else kid}
        return jwt.encode(body, self.private, algorithm="RS256", headers=headers)

    def jwk(self) -> dict[str, Any]:
        jwk: dict[str, Any] = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.private.public_key()))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def pem(self) -> bytes:
        return self.private.public_key().public_bytes(serialization.Encoding.PEM,
                                                      serialization.PublicFormat.SubjectPublicKeyInfo)


class JwksServer:
    """A real HTTP server on loopback serving a JWKS the test can change; counts the requests."""

    def __init__(self) -> None:
        self.keys: list[Key] = []
        self.requests = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests += 1
                body = json.dumps({"keys": [k.jwk() for k in server.keys]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/.well-known/jwks.json"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def jwks() -> Iterator[JwksServer]:
    server = JwksServer()
    yield server
    server.close()


def _verifier(url: str, cache: float = 300, cooldown: float = 30) -> TokenVerifier:
    return TokenVerifier(JwksKeys(url, cache_seconds=cache, cooldown_seconds=cooldown))


def _refused(verifier: TokenVerifier, token: str) -> HTTPException:
    with pytest.raises(HTTPException) as refused:
        verifier.verify(token)
    return refused.value


def test_the_key_set_is_fetched_once_and_cached(jwks):
    a = Key("a")
    jwks.keys = [a]
    verifier = _verifier(jwks.url)
    for _ in range(20):
        assert verifier.verify(a.token()).org == "0957"
    assert jwks.requests == 1


def test_the_cached_key_set_expires(jwks):
    a = Key("a")
    jwks.keys = [a]
    verifier = _verifier(jwks.url, cache=0.3)
    verifier.verify(a.token())
    verifier.verify(a.token())
    time.sleep(0.4)
    verifier.verify(a.token())
    assert jwks.requests == 2


def test_a_rotated_key_is_fetched_once_and_the_old_one_stops_counting(jwks):
    old, new = Key("2026-01"), Key("2026-02")
    jwks.keys = [old]
    verifier = _verifier(jwks.url, cooldown=0.2)
    assert verifier.verify(old.token()).subject == "u"
    time.sleep(0.3)  # past the cooldown that the first fetch started
    jwks.keys = [new]  # the provider rotates
    assert verifier.verify(new.token()).subject == "u"  # unknown kid: one refresh, then accepted
    assert jwks.requests == 2
    for _ in range(5):
        assert verifier.verify(new.token()).subject == "u"
    assert jwks.requests == 2, "the refreshed set is cached again"
    assert _refused(verifier, old.token()).detail == "Token is ondertekend met een onbekende sleutel."


def test_unknown_kids_refresh_at_most_once_per_cooldown(jwks):
    a, stranger = Key("a"), Key("a")  # another key that claims a known kid is just a wrong signature
    jwks.keys = [a]
    verifier = _verifier(jwks.url, cooldown=60)
    verifier.verify(a.token())
    for i in range(50):
        refused = _refused(verifier, stranger.token(kid=f"random-{i}"))
        assert (refused.status_code, refused.detail) == (401, "Token is ondertekend met een onbekende sleutel.")
    assert jwks.requests == 1, "random kids must not make us hammer the identity provider"
    assert _refused(verifier, stranger.token()).detail == "Token heeft een onjuiste ondertekening."


def test_a_token_without_kid_is_refused_without_a_fetch(jwks):
    a = Key("a")
    jwks.keys = [a]
    refused = _refused(_verifier(jwks.url), a.token(kid=None))
    assert (refused.status_code, refused.detail) == (401, "Token mist de sleutelaanduiding (kid).")
    assert jwks.requests == 0


def test_an_unreachable_key_set_is_503_not_401(jwks):
    url = jwks.url
    jwks.close()
    refused = _refused(_verifier(url), Key("a").token())
    assert refused.status_code == 503 and "identity provider" in refused.detail


def test_production_starts_with_a_jwks_url_and_checks_lifetime(jwks):
    a = Key("a")
    jwks.keys = [a]
    verifier = token_verifier("production", AuthSettings(jwks_url=jwks.url, max_lifetime_seconds=600))
    assert verifier.verify(a.token(lifetime=600)).org == "0957"
    assert _refused(verifier, a.token(lifetime=601)).detail.startswith("Token is te lang geldig")


def test_a_key_file_is_read_once_at_start_up(tmp_path):
    first, second = Key("1"), Key("2")
    path = tmp_path / "idp.pem"
    path.write_bytes(first.pem())
    verifier = token_verifier("production", AuthSettings(public_key_file=path))
    path.write_bytes(second.pem())  # replacing the file later changes nothing until a restart
    assert verifier.verify(first.token()).org == "0957"
    assert _refused(verifier, second.token()).detail == "Token heeft een onjuiste ondertekening."
    path.unlink()
    assert verifier.verify(first.token()).org == "0957"


def test_an_app_checks_tokens_with_the_verifier_built_at_start_up(tmp_path, monkeypatch):
    """Through FastAPI: the request path never reads the key file (regression: it read it per request)."""
    key, other = Key("1"), Key("2")
    path = tmp_path / "idp.pem"
    path.write_bytes(key.pem())
    monkeypatch.setenv("IPSFLOW_JWT_PUBLIC_KEY_FILE", str(path))
    app = create_app("t", "t")

    @app.get("/wie")
    async def wie(principal: PrincipalDep) -> dict[str, str]:
        return {"org": principal.org}

    install_verifier(app, "production")
    path.write_bytes(other.pem())
    client = TestClient(app)
    assert client.get("/wie", headers={"Authorization": f"Bearer {key.token()}"}).json() == {"org": "0957"}
    refused = client.get("/wie", headers={"Authorization": f"Bearer {other.token()}"})
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["detail"] == "Token heeft een onjuiste ondertekening."


@pytest.mark.parametrize("environment", ["production", "test"])
def test_without_a_key_only_development_may_start(environment, tmp_path, monkeypatch):
    monkeypatch.setenv("IPSFLOW_DEV_KEY_DIR", str(tmp_path))
    with pytest.raises(AuthConfigurationError, match="IPSFLOW_JWT_PUBLIC_KEY_FILE or IPSFLOW_JWT_JWKS_URL"):
        token_verifier(environment, AuthSettings())
    from servicekit.auth import mint_token

    verifier = token_verifier("development", AuthSettings())
    assert (tmp_path / "jwt-public.pem").exists()
    assert verifier.verify(mint_token("j", "ggz", "12345678", [])).org == "12345678"


def test_an_app_without_a_started_verifier_refuses_in_production(monkeypatch):
    monkeypatch.setenv("IPSFLOW_ENVIRONMENT", "production")
    for name in ("IPSFLOW_JWT_PUBLIC_KEY_FILE", "IPSFLOW_JWT_JWKS_URL"):
        monkeypatch.delenv(name, raising=False)
    app = create_app("t", "t")

    @app.get("/wie")
    async def wie(principal: PrincipalDep) -> dict[str, str]:
        return {"org": principal.org}

    from servicekit.auth import mint_token

    response = TestClient(app).get("/wie", headers={"Authorization": f"Bearer {mint_token('j', 'ggz', '1', [])}"})
    assert response.status_code == 503


@pytest.mark.parametrize(("settings", "reason"), [
    ({"public_key_file": Path("/nonexistent/idp.pem")}, "cannot be read"),
    ({"jwks_url": "file:///etc/passwd"}, "http(s) URL"),
])
def test_a_bad_key_configuration_refuses_to_start(settings, reason):
    with pytest.raises(AuthConfigurationError, match=reason.replace("(", r"\(").replace(")", r"\)")):
        token_verifier("development", AuthSettings(**settings))


def test_a_key_file_without_an_rsa_public_key_refuses_to_start(tmp_path):
    path = tmp_path / "idp.pem"
    path.write_text("geen sleutel")
    with pytest.raises(AuthConfigurationError, match="no PEM public key"):
        token_verifier("production", AuthSettings(public_key_file=path))
    with pytest.raises(AuthConfigurationError, match="not both"):
        token_verifier("production", AuthSettings(public_key_file=path, jwks_url="https://idp.example/jwks"))


def test_an_empty_variable_counts_as_not_set(monkeypatch):
    monkeypatch.setenv("IPSFLOW_JWT_PUBLIC_KEY_FILE", "")
    monkeypatch.setenv("IPSFLOW_JWT_JWKS_URL", "")
    assert AuthSettings().public_key_file is None and AuthSettings().jwks_url is None


def test_a_static_key_must_be_rsa():
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(AuthConfigurationError, match="no RSA public key"):
        StaticKey(pem, "test")


def _public_key_seen(folder: str) -> bytes:
    import os

    os.environ["IPSFLOW_DEV_KEY_DIR"] = folder
    from servicekit.auth import ensure_dev_keys

    return ensure_dev_keys()[1].read_bytes()


def test_processes_starting_at_once_share_one_development_key_pair(tmp_path):
    """``ipsflow run`` starts five services on a fresh checkout and each reads the public key once: they must all
    get the key that matches the private key ``ipsflow token`` mints with (before: in 5 of 6 runs of six forked
    processes they saw several pairs; with spawned processes one crashed on a missing public key)."""
    import multiprocessing

    for attempt in range(3):
        folder = tmp_path / f"keys-{attempt}"
        with multiprocessing.get_context("fork").Pool(6) as pool:  # fork: no re-import, the race stays tight
            seen = pool.map(_public_key_seen, [str(folder)] * 6)
        private = serialization.load_pem_private_key((folder / "jwt-private.pem").read_bytes(), None)
        assert isinstance(private, rsa.RSAPrivateKey)
        expected = private.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo)
        assert set(seen) == {expected}
        assert sorted(p.name for p in folder.iterdir()) == ["jwt-private.pem", "jwt-public.pem"]
