"""OpenID Connect sign-in for production: the authorization code flow with PKCE.

The console redirects to the provider's authorization endpoint with a random ``state``, ``nonce`` and PKCE
challenge (kept in its own database, the state also in a short-lived cookie), takes the code back on
``/oidc/terug``, exchanges it at the token endpoint (httpx, client secret), checks the ID token (signature from
the provider's JWKS, issuer, audience = client id, nonce) and keeps the access token server-side: that token is
what the services accept (``IPSFLOW_JWT_*``), so the console checks it with the services' own verifier.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import time
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
from pymongo.asynchronous.database import AsyncDatabase

from console.settings import ConsoleSettings
from servicekit.store import Document

#: How long a started sign-in may take at the provider.
PENDING_MINUTES = 10


class OidcError(RuntimeError):
    """The sign-in did not complete; the message is for the user (Dutch), never the provider's own text."""


class Oidc:
    def __init__(self, settings: ConsoleSettings, db: AsyncDatabase[Document], http: httpx.AsyncClient) -> None:
        self.settings = settings
        self.pending = db["oidc_pending"]
        self.http = http
        self._config: dict[str, Any] | None = None
        self._config_at = 0.0
        self._jwks: jwt.PyJWKClient | None = None

    @property
    def configured(self) -> bool:
        s = self.settings
        return bool(s.console_oidc_discovery_url and s.console_oidc_client_id and s.console_oidc_redirect_url)

    async def config(self) -> dict[str, Any]:
        if self._config is None or time.monotonic() - self._config_at > 3600:
            try:
                response = await self.http.get(self.settings.console_oidc_discovery_url)
                response.raise_for_status()
                config = response.json()
            except (httpx.HTTPError, ValueError) as exc:
                raise OidcError("De aanmeldvoorziening (OpenID Connect) is niet bereikbaar.") from exc
            if not all(k in config for k in ("issuer", "authorization_endpoint", "token_endpoint", "jwks_uri")):
                raise OidcError("De aanmeldvoorziening beschrijft zich niet volledig (discovery).")
            self._config, self._config_at = config, time.monotonic()
            self._jwks = jwt.PyJWKClient(config["jwks_uri"], cache_keys=True)
        return self._config

    async def start(self) -> tuple[str, str]:
        """(the provider's authorization URL, state for the cookie)."""
        config = await self.config()
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        await self.pending.insert_one({"_id": hashlib.sha256(state.encode()).hexdigest(), "nonce": nonce,
                                       "verifier": verifier,
                                       "verloopt_op": datetime.now(UTC) + timedelta(minutes=PENDING_MINUTES)})
        query = urllib.parse.urlencode({
            "response_type": "code", "client_id": self.settings.console_oidc_client_id,
            "redirect_uri": self.settings.console_oidc_redirect_url, "scope": self.settings.console_oidc_scope,
            "state": state, "nonce": nonce, "code_challenge": challenge, "code_challenge_method": "S256"})
        return f"{config['authorization_endpoint']}?{query}", state

    async def finish(self, code: str, state: str, cookie_state: str) -> str:
        """The access token for this sign-in; OidcError when anything does not match."""
        if not code or not state or not secrets.compare_digest(state.encode(), cookie_state.encode()):
            raise OidcError("De aanmelding hoort niet bij deze browser (state); begin opnieuw.")
        pending = await self.pending.find_one_and_delete({"_id": hashlib.sha256(state.encode()).hexdigest()})
        if pending is None:
            raise OidcError("Deze aanmelding is al gebruikt of onbekend; begin opnieuw.")
        ends = pending["verloopt_op"]
        if (ends if ends.tzinfo else ends.replace(tzinfo=UTC)) < datetime.now(UTC):
            raise OidcError("De aanmelding duurde te lang; begin opnieuw.")
        config = await self.config()
        try:
            response = await self.http.post(config["token_endpoint"], data={
                "grant_type": "authorization_code", "code": code,
                "redirect_uri": self.settings.console_oidc_redirect_url,
                "client_id": self.settings.console_oidc_client_id,
                "client_secret": self.settings.console_oidc_client_secret.get_secret_value(),
                "code_verifier": pending["verifier"]})
            tokens = response.json() if response.status_code == 200 else {}
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcError("De aanmeldvoorziening gaf geen token.") from exc
        access, id_token = tokens.get("access_token"), tokens.get("id_token")
        if not isinstance(access, str) or not isinstance(id_token, str):
            raise OidcError("De aanmeldvoorziening gaf geen token.")
        assert self._jwks is not None
        try:
            # PyJWKClient fetches with urllib (blocking): in a thread.
            key = (await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, id_token)).key
            claims = jwt.decode(id_token, key, algorithms=["RS256"], audience=self.settings.console_oidc_client_id,
                                issuer=config["issuer"])
        except jwt.PyJWTError as exc:
            raise OidcError("Het ID-token van de aanmeldvoorziening klopt niet.") from exc
        if not secrets.compare_digest(str(claims.get("nonce", "")).encode(), pending["nonce"].encode()):
            raise OidcError("Het ID-token hoort niet bij deze aanmelding (nonce).")
        return access
