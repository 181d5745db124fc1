"""The console's OpenID Connect sign-in (authorization code flow with PKCE) against a small provider run by this
test: discovery, the redirect to the provider and back, the code exchange, the ID token's signature, audience and
nonce, and the services' own check of the access token (a gemeente official's token gets 403)."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives import serialization
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse

from servicekit.auth import ensure_dev_keys, mint_token
from tests.support.processes import free_port

CLIENT_ID, CLIENT_SECRET = "ipsflow-console", "geheim-van-de-console"


class Provider:
    """An OpenID provider that signs in whoever ``identity`` names, without asking (the user's consent is not
    what this test is about)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.identity: tuple[str, str, str, list[str]] = ("f.beheer", "beheer", "ipsflow", ["functioneel-beheerder"])
        self.codes: dict[str, dict[str, str]] = {}
        self.exchanges = 0
        private_pem = ensure_dev_keys()[0].read_bytes()
        self.private = private_pem
        public = serialization.load_pem_private_key(private_pem, password=None).public_key()
        self.jwk = {**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public)), "kid": "k1", "use": "sig",
                    "alg": "RS256"}
        app = FastAPI()

        @app.get("/.well-known/openid-configuration")
        async def discovery() -> dict[str, str]:
            return {"issuer": self.url, "authorization_endpoint": f"{self.url}/authorize",
                    "token_endpoint": f"{self.url}/token", "jwks_uri": f"{self.url}/jwks"}

        @app.get("/jwks")
        async def jwks() -> dict[str, Any]:
            return {"keys": [self.jwk]}

        @app.get("/authorize")
        async def authorize(request: Request) -> RedirectResponse:
            q = request.query_params
            assert q["client_id"] == CLIENT_ID and q["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = {"nonce": q["nonce"], "challenge": q["code_challenge"], "redirect": q["redirect_uri"]}
            back = urllib.parse.urlencode({"code": code, "state": q["state"]})
            return RedirectResponse(f"{q['redirect_uri']}?{back}", status_code=303)

        @app.post("/token")
        async def token(request: Request) -> JSONResponse:
            form = {k: v[0] for k, v in urllib.parse.parse_qs((await request.body()).decode()).items()}
            grant = self.codes.pop(form.get("code", ""), None)
            challenge = base64.urlsafe_b64encode(hashlib.sha256(form.get("code_verifier", "").encode()).digest())
            if (grant is None or form.get("client_secret") != CLIENT_SECRET
                    or challenge.rstrip(b"=").decode() != grant["challenge"]
                    or form.get("redirect_uri") != grant["redirect"]):
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            self.exchanges += 1
            sub, org_type, org, roles = self.identity
            now = int(time.time())
            id_token = jwt.encode({"iss": self.url, "aud": CLIENT_ID, "sub": sub, "nonce": grant["nonce"],
                                   "iat": now, "exp": now + 300}, self.private, algorithm="RS256",
                                  headers={"kid": "k1"})
            return JSONResponse({"access_token": mint_token(sub, org_type, org, roles), "id_token": id_token,
                                 "token_type": "Bearer"})

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider()
    thread = threading.Thread(target=p.server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not p.server.started:
        assert time.monotonic() < deadline, "the test provider did not start"
        time.sleep(0.05)
    yield p
    p.server.should_exit = True
    thread.join(timeout=10)


def test_sign_in_with_openid_connect(service, provider: Provider) -> None:
    console = service("console")
    console.start(IPSFLOW_CONSOLE_OIDC_DISCOVERY_URL=f"{provider.url}/.well-known/openid-configuration",
                  IPSFLOW_CONSOLE_OIDC_CLIENT_ID=CLIENT_ID, IPSFLOW_CONSOLE_OIDC_CLIENT_SECRET=CLIENT_SECRET,
                  IPSFLOW_CONSOLE_OIDC_REDIRECT_URL=f"{console.url}/oidc/terug")
    browser = httpx.Client(base_url=console.url, timeout=30, follow_redirects=True)
    assert 'href="/oidc/start"' in browser.get("/aanmelden").text
    signed_in = browser.get("/oidc/start")  # → provider → /oidc/terug → /
    # (the overview itself answers 502 here: no engine runs in this test)
    assert signed_in.url.path == "/" and [r.status_code for r in signed_in.history] == [303, 303, 303]
    assert provider.exchanges == 1
    audit = browser.get("/audit")
    assert audit.status_code == 200 and "f.beheer" in audit.text and "aanmelden" in audit.text

    # A state that is not this browser's is refused before any code exchange.
    stranger = httpx.Client(base_url=console.url, timeout=30)
    start = stranger.get("/oidc/start")
    at_provider = httpx.get(start.headers["location"], timeout=10)
    back = urllib.parse.urlparse(at_provider.headers["location"])
    forged = dict(urllib.parse.parse_qsl(back.query), state="een-andere-state")
    refused = stranger.get(f"/oidc/terug?{urllib.parse.urlencode(forged)}")
    assert refused.status_code == 403 and provider.exchanges == 1
    # The real state, but used twice: the second time is refused too.
    assert stranger.get(f"/oidc/terug?{back.query}").status_code == 303
    assert stranger.get(f"/oidc/terug?{back.query}").status_code == 403

    # A gemeente official signed in at the same provider gets 403 and no session.
    provider.identity = ("j.jansen", "gemeente", "0957", ["behandelaar"])
    official = httpx.Client(base_url=console.url, timeout=30, follow_redirects=True)
    answer = official.get("/oidc/start")
    assert answer.status_code == 403 and "alleen voor functioneel beheer" in answer.text
    assert official.get("/", follow_redirects=False).status_code == 303
