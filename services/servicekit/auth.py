"""Bearer JWT (RS256) authentication and the caller's organisation and roles.

Production points ``IPSFLOW_JWT_PUBLIC_KEY_FILE`` at the identity provider's public key. For local use and
tests, ``ipsflow token`` mints tokens with a development key pair that is created once in ``.local/dev-keys``.
Claims: ``sub`` (user id), ``org_type`` (``ggz`` | ``gemeente`` | ``uwv`` | ``beheer``), ``org`` (KvK/AGB
number, CBS code or "UWV"), ``roles`` (list), optional ``name`` (the official's name and function as it
appears under a decision) and ``mandaten`` (the kinds of decisions this official may take by sub-mandate:
``toekenning``, ``afwijzing``, ``niet_behandelen``, ``vaststelling``, ...). 401 and 403 are problem+json.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, HTTPException, Request

ISSUER = "ipsflow-dev"
AUDIENCE = "ipsflow"
ORG_TYPES = ("ggz", "gemeente", "uwv", "beheer")
_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Principal:
    subject: str
    org_type: str
    org: str
    roles: frozenset[str] = field(default_factory=frozenset)
    name: str = ""
    mandates: frozenset[str] = field(default_factory=frozenset)

    def has_role(self, role: str) -> bool:
        return role.lower() in self.roles

    def may_decide(self, kind: str) -> bool:
        """Whether the sub-mandate of this official covers decisions of ``kind``."""
        return kind.lower() in self.mandates


def dev_key_dir() -> Path:
    return Path(os.environ.get("IPSFLOW_DEV_KEY_DIR", _ROOT / ".local" / "dev-keys"))


def ensure_dev_keys() -> tuple[Path, Path]:
    """The development key pair, created on first use (never for production)."""
    folder = dev_key_dir()
    private, public = folder / "jwt-private.pem", folder / "jwt-public.pem"
    if not private.exists():
        folder.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                              serialization.NoEncryption()))
        private.chmod(0o600)
        public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                         serialization.PublicFormat.SubjectPublicKeyInfo))
    return private, public


def public_key() -> bytes:
    configured = os.environ.get("IPSFLOW_JWT_PUBLIC_KEY_FILE")
    if configured:
        return Path(configured).read_bytes()
    return ensure_dev_keys()[1].read_bytes()


def mint_token(subject: str, org_type: str, org: str, roles: list[str], ttl_seconds: int = 8 * 3600, *,
               name: str = "", mandates: list[str] | None = None) -> str:
    if org_type not in ORG_TYPES:
        raise ValueError(f"org_type must be one of {ORG_TYPES}")
    private, _ = ensure_dev_keys()
    now = int(time.time())
    claims = {"sub": subject, "org_type": org_type, "org": org, "roles": [r.lower() for r in roles],
              "iss": ISSUER, "aud": AUDIENCE, "iat": now, "exp": now + ttl_seconds}
    if name:
        claims["name"] = name
    if mandates:
        claims["mandaten"] = [m.lower() for m in mandates]
    return jwt.encode(claims, private.read_bytes(), algorithm="RS256")


def expected_issuer() -> str:
    """The identity provider whose tokens count (``IPSFLOW_JWT_ISSUER``; the development issuer by default)."""
    return os.environ.get("IPSFLOW_JWT_ISSUER", ISSUER)


def verify(token: str, key: bytes | None = None) -> Principal:
    try:
        claims: dict[str, Any] = jwt.decode(token, key or public_key(), algorithms=["RS256"], audience=AUDIENCE,
                                            issuer=expected_issuer(),
                                            options={"require": ["sub", "exp", "aud", "iss"]})
    except jwt.PyJWTError as exc:
        raise HTTPException(401, f"Token ongeldig: {exc}", headers={"WWW-Authenticate": "Bearer"}) from None
    if claims.get("org_type") not in ORG_TYPES or not claims.get("org"):
        raise HTTPException(401, "Token mist organisatie (org_type/org).", headers={"WWW-Authenticate": "Bearer"})
    return Principal(str(claims["sub"]), str(claims["org_type"]), str(claims["org"]),
                     frozenset(str(r).lower() for r in claims.get("roles", [])),
                     name=str(claims.get("name") or ""),
                     mandates=frozenset(str(m).lower() for m in claims.get("mandaten", [])))


def current_principal(request: Request) -> Principal:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise HTTPException(401, "Bearer-token ontbreekt.", headers={"WWW-Authenticate": "Bearer"})
    key = getattr(request.app.state, "jwt_public_key", None)
    return verify(token.strip(), key)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def forbid(reason: str) -> HTTPException:
    return HTTPException(403, reason)
