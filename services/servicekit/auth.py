"""Bearer JWT (RS256) authentication and the caller's organisation and roles.

Where the keys come from is configuration, read once when a service starts (``token_verifier``):
- ``IPSFLOW_JWT_PUBLIC_KEY_FILE``: the identity provider's public key (PEM), read once at start-up;
- ``IPSFLOW_JWT_JWKS_URL``: the identity provider's JWKS; the key set is cached
  (``IPSFLOW_JWT_JWKS_CACHE_SECONDS``) and a token with an unknown ``kid`` refreshes it once, at most once per
  ``IPSFLOW_JWT_JWKS_COOLDOWN_SECONDS`` (key rotation without letting random kids hammer the provider);
- neither: only with ``IPSFLOW_ENVIRONMENT=development`` the development key pair in ``.local/dev-keys``
  (which ``ipsflow token`` mints with); in any other environment the service refuses to start.

Claims: ``sub`` (user id), ``org_type`` (``ggz`` | ``gemeente`` | ``uwv`` | ``beheer``), ``org`` (KvK/AGB
number, CBS code or "UWV"), ``roles`` (list), ``iat`` and ``exp`` (at most ``IPSFLOW_JWT_MAX_LIFETIME_SECONDS``
apart, default one hour), optional ``name`` (the official's name and function as it appears under a decision)
and ``mandaten`` (the kinds of decisions this official may take by sub-mandate: ``toekenning``, ``afwijzing``,
``niet_behandelen``, ``vaststelling``, ...). 401 and 403 are problem+json; a 401 says in our words what is
wrong with the token, never the library's message.
"""

from __future__ import annotations

import functools
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Protocol

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from fastapi import Depends, HTTPException, Request
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from servicekit.logging import get_logger

ISSUER = "ipsflow-dev"
AUDIENCE = "ipsflow"
ORG_TYPES = ("ggz", "gemeente", "uwv", "beheer")
ALGORITHMS = ["RS256"]
#: The default (and the development tokens') lifetime: one hour between ``iat`` and ``exp``.
DEFAULT_MAX_LIFETIME_SECONDS = 3600
#: Functioneel beheer's two admin roles (README, "Rollen"): an org_type ``beheer`` token without them reads only.
PROCESBEHEERDER = "procesbeheerder"
FUNCTIONEEL_BEHEERDER = "functioneel-beheerder"
_ROOT = Path(__file__).resolve().parents[2]

log = get_logger(__name__)


class AuthSettings(BaseSettings):
    """How tokens are checked (prefix ``IPSFLOW_JWT_``)."""

    # An empty variable (a compose file's ``${X:-}``) means "not set", not "the current directory".
    model_config = SettingsConfigDict(env_prefix="IPSFLOW_JWT_", extra="ignore", env_ignore_empty=True)

    public_key_file: Path | None = None
    jwks_url: str | None = None
    issuer: str = ISSUER
    max_lifetime_seconds: int = Field(default=DEFAULT_MAX_LIFETIME_SECONDS, ge=60, le=24 * 3600)
    jwks_cache_seconds: float = Field(default=300, gt=0)
    jwks_cooldown_seconds: float = Field(default=30, ge=0)
    jwks_timeout_seconds: float = Field(default=5, gt=0)


class AuthConfigurationError(RuntimeError):
    """The service has no trustworthy way to check tokens and must not start."""


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
    """The development key pair, created on first use (never for production).

    Safe when several processes start at once on a fresh checkout (``ipsflow run`` starts five): one of them
    creates the pair, the others wait for it. A service reads the public key once, so a pair overwritten by a
    second creator would leave it trusting a key nobody mints with.
    """
    folder = dev_key_dir()
    private, public = folder / "jwt-private.pem", folder / "jwt-public.pem"
    if not private.exists():
        folder.mkdir(parents=True, exist_ok=True)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tmp_private, tmp_public = folder / f".jwt-private.{os.getpid()}.tmp", folder / f".jwt-public.{os.getpid()}.tmp"
        tmp_private.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()))
        tmp_private.chmod(0o600)
        tmp_public.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo))
        try:
            os.link(tmp_private, private)  # atomic: exactly one process wins
        except FileExistsError:
            tmp_public.unlink()
        except OSError:  # a file system without hard links: last writer wins, as before
            os.replace(tmp_private, private)
            os.replace(tmp_public, public)
        else:
            os.replace(tmp_public, public)
        finally:
            tmp_private.unlink(missing_ok=True)
    deadline = time.monotonic() + 10
    while not public.exists() and time.monotonic() < deadline:  # the winner is about to write it
        time.sleep(0.05)
    return private, public


def public_key() -> bytes:
    """The development public key (``ipsflow run`` names an installation by it); services use ``token_verifier``."""
    return ensure_dev_keys()[1].read_bytes()


def mint_token(subject: str, org_type: str, org: str, roles: list[str],
               ttl_seconds: int = DEFAULT_MAX_LIFETIME_SECONDS, *, name: str = "",
               mandates: list[str] | None = None) -> str:
    """A development token signed with the key in ``.local/dev-keys``. Services refuse a ``ttl_seconds`` over
    their ``IPSFLOW_JWT_MAX_LIFETIME_SECONDS`` (default one hour, the default here)."""
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
    return AuthSettings().issuer


def unauthorized(detail: str) -> HTTPException:
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


# What we say for each way a token can be wrong; the library's own text never reaches the caller (it is English,
# and for a malformed token it can quote parts of it).
_REASONS: list[tuple[type[jwt.PyJWTError], str]] = [
    (jwt.ExpiredSignatureError, "Token verlopen."),
    (jwt.InvalidSignatureError, "Token heeft een onjuiste ondertekening."),
    (jwt.InvalidAlgorithmError, "Token is ondertekend met een niet toegestaan algoritme (alleen RS256)."),
    (jwt.InvalidAudienceError, "Token is niet voor ipsflow bedoeld (aud)."),
    (jwt.InvalidIssuerError, "Token komt niet van de erkende uitgever (iss)."),
    (jwt.ImmatureSignatureError, "Token is nog niet geldig (iat of nbf ligt in de toekomst)."),
    (jwt.InvalidIssuedAtError, "Token heeft een ongeldig uitgiftetijdstip (iat)."),
    (jwt.DecodeError, "Token is onleesbaar."),
]


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"Token mist het verplichte veld '{exc.claim}'."
    return next((text for kind, text in _REASONS if isinstance(exc, kind)), "Token ongeldig.")


class KeySource(Protocol):
    def key_for(self, token: str) -> Any:
        """The public key that must have signed ``token``; raises HTTPException (401/503) when there is none."""


class StaticKey:
    """One public key (PEM), read once: from a file at start-up, or the development key."""

    def __init__(self, pem: bytes, origin: str) -> None:
        try:
            self.key = serialization.load_pem_public_key(pem)
        except ValueError:
            raise AuthConfigurationError(f"{origin} holds no PEM public key") from None
        if not isinstance(self.key, rsa.RSAPublicKey):
            raise AuthConfigurationError(f"{origin} holds no RSA public key (tokens are RS256)")
        self.origin = origin

    @classmethod
    def from_file(cls, path: Path) -> StaticKey:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise AuthConfigurationError(
                f"IPSFLOW_JWT_PUBLIC_KEY_FILE={path} cannot be read ({exc.strerror})") from None
        return cls(pem, f"IPSFLOW_JWT_PUBLIC_KEY_FILE={path}")

    def key_for(self, token: str) -> Any:
        return self.key


class JwksKeys:
    """The identity provider's key set (JWKS), cached; an unknown ``kid`` refreshes it once per cooldown."""

    def __init__(self, url: str, cache_seconds: float = 300, cooldown_seconds: float = 30,
                 timeout_seconds: float = 5) -> None:
        try:
            self.client = jwt.PyJWKClient(url, cache_jwk_set=True, lifespan=cache_seconds,
                                          cooldown_duration=cooldown_seconds, timeout=timeout_seconds)
        except jwt.PyJWKClientError:
            raise AuthConfigurationError(f"IPSFLOW_JWT_JWKS_URL must be an http(s) URL, not {url!r}") from None
        self.origin = f"IPSFLOW_JWT_JWKS_URL={url}"

    def prefetch(self) -> None:
        """Fetch the key set once at start-up, so the first request does not wait; a failure is only logged
        (the provider may come up later; requests then answer 503 until it does)."""
        try:
            self.client.get_jwk_set()
        except jwt.PyJWTError as exc:
            log.warning("auth.jwks_unavailable", url=self.client.uri, error=type(exc).__name__)

    def key_for(self, token: str) -> Any:
        try:
            kid = jwt.get_unverified_header(token).get("kid")
        except jwt.PyJWTError:
            raise unauthorized("Token is onleesbaar.") from None
        if not isinstance(kid, str) or not kid:
            raise unauthorized("Token mist de sleutelaanduiding (kid).")
        try:
            return self.client.get_signing_key(kid).key
        except jwt.PyJWKClientConnectionError as exc:
            log.error("auth.jwks_unavailable", url=self.client.uri, error=str(exc)[:200])
            raise HTTPException(503, "De sleutels van de identity provider zijn nu niet op te halen; probeer het "
                                     "later opnieuw.") from None
        except jwt.PyJWTError:
            raise unauthorized("Token is ondertekend met een onbekende sleutel.") from None


class TokenVerifier:
    """Checks a bearer token: signature (RS256) by a trusted key, issuer, audience, lifetime, organisation."""

    def __init__(self, keys: KeySource, issuer: str = ISSUER,
                 max_lifetime_seconds: int = DEFAULT_MAX_LIFETIME_SECONDS) -> None:
        self.keys = keys
        self.issuer = issuer
        self.max_lifetime_seconds = max_lifetime_seconds

    def verify(self, token: str) -> Principal:
        key = self.keys.key_for(token)
        try:
            claims: dict[str, Any] = jwt.decode(token, key, algorithms=ALGORITHMS, audience=AUDIENCE,
                                                issuer=self.issuer,
                                                options={"require": ["sub", "exp", "iat", "aud", "iss"]})
        except jwt.PyJWTError as exc:
            raise unauthorized(_reason(exc)) from None
        # A stolen token is only worth its lifetime: the provider must not hand out longer ones than we accept.
        if int(claims["exp"]) - int(claims["iat"]) > self.max_lifetime_seconds:
            raise unauthorized(f"Token is te lang geldig (meer dan {self.max_lifetime_seconds} seconden tussen "
                               "iat en exp).")
        if claims.get("org_type") not in ORG_TYPES or not claims.get("org"):
            raise unauthorized("Token mist organisatie (org_type/org).")
        roles, mandates = claims.get("roles", []), claims.get("mandaten", [])
        if not isinstance(roles, list) or not isinstance(mandates, list):
            raise unauthorized("Token heeft ongeldige rollen of mandaten (geen lijst).")
        return Principal(str(claims["sub"]), str(claims["org_type"]), str(claims["org"]),
                         frozenset(str(r).lower() for r in roles), name=str(claims.get("name") or ""),
                         mandates=frozenset(str(m).lower() for m in mandates))


def token_verifier(environment: str, settings: AuthSettings | None = None) -> TokenVerifier:
    """The verifier a service starts with; AuthConfigurationError when it must not start.

    Fails closed: without a configured key file or JWKS URL only ``environment == "development"`` falls back to
    the development key (a forgotten setting in production must not mean "trust a key lying on disk").
    """
    s = settings or AuthSettings()
    keys: KeySource
    if s.public_key_file and s.jwks_url:
        raise AuthConfigurationError("set IPSFLOW_JWT_PUBLIC_KEY_FILE or IPSFLOW_JWT_JWKS_URL, not both")
    if s.public_key_file:
        keys = StaticKey.from_file(s.public_key_file)
    elif s.jwks_url:
        keys = JwksKeys(s.jwks_url, s.jwks_cache_seconds, s.jwks_cooldown_seconds, s.jwks_timeout_seconds)
    elif environment == "development":
        public = ensure_dev_keys()[1]
        keys = StaticKey(public.read_bytes(), f"development key {public}")
    else:
        raise AuthConfigurationError(
            f"no key to check bearer tokens with (IPSFLOW_ENVIRONMENT={environment}): set "
            "IPSFLOW_JWT_PUBLIC_KEY_FILE or IPSFLOW_JWT_JWKS_URL; only IPSFLOW_ENVIRONMENT=development uses the "
            "development key in .local/dev-keys")
    return TokenVerifier(keys, s.issuer, s.max_lifetime_seconds)


def install_verifier(app: Any, environment: str) -> TokenVerifier:
    """Build the verifier once at start-up and put it on ``app.state``; logs why and raises when it cannot."""
    try:
        verifier = token_verifier(environment)
    except AuthConfigurationError as exc:
        log.error("auth.not_configured", reason=str(exc), environment=environment)
        raise
    if isinstance(verifier.keys, JwksKeys):
        verifier.keys.prefetch()
    log.info("auth.configured", keys=getattr(verifier.keys, "origin", ""), issuer=verifier.issuer,
             max_lifetime_seconds=verifier.max_lifetime_seconds)
    app.state.token_verifier = verifier
    return verifier


@functools.lru_cache(maxsize=8)
def _default_verifier(environment: str, key_file: str, jwks_url: str, issuer: str, max_lifetime: str) -> TokenVerifier:
    return token_verifier(environment)


def default_verifier() -> TokenVerifier:
    """The verifier of this process's environment, for callers without a started service (``verify`` without a
    key, an app whose lifespan did not run); built once per configuration."""
    from servicekit.settings import ServiceSettings

    env = os.environ.get
    return _default_verifier(ServiceSettings().environment, env("IPSFLOW_JWT_PUBLIC_KEY_FILE", ""),
                             env("IPSFLOW_JWT_JWKS_URL", ""), env("IPSFLOW_JWT_ISSUER", ""),
                             env("IPSFLOW_JWT_MAX_LIFETIME_SECONDS", ""))


def verify(token: str, key: bytes | None = None) -> Principal:
    """Check ``token`` against ``key`` (PEM), or against the configured keys of this process."""
    if key is not None:
        s = AuthSettings()
        return TokenVerifier(StaticKey(key, "given key"), s.issuer, s.max_lifetime_seconds).verify(token)
    return default_verifier().verify(token)


#: Where a request keeps the principal its token was verified as (``request.state``): the token-before-body
#: middleware (servicekit.http) verifies a request with a body before the route does, and the route's dependency
#: takes that result instead of checking the signature a second time.
VERIFIED_STATE = "geverifieerd_token"


@dataclass(frozen=True)
class _Verified:
    token: str
    principal: Principal


def current_principal(request: Request) -> Principal:
    """The caller, from the bearer token; each request's token is verified once (the result stays on
    ``request.state`` for the rest of the request, never longer)."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise unauthorized("Bearer-token ontbreekt.")
    verified = getattr(request.state, VERIFIED_STATE, None)
    if isinstance(verified, _Verified) and verified.token == token:
        return verified.principal
    principal = _verify(request, token)
    setattr(request.state, VERIFIED_STATE, _Verified(token, principal))
    return principal


def _verify(request: Request, token: str) -> Principal:
    verifier: TokenVerifier | None = getattr(request.app.state, "token_verifier", None)
    if verifier is None:
        try:
            verifier = default_verifier()
        except AuthConfigurationError as exc:
            log.error("auth.not_configured", reason=str(exc))
            raise HTTPException(503, "Deze dienst kan tokens niet controleren; neem contact op met beheer.") from None
    return verifier.verify(token)


PrincipalDep = Annotated[Principal, Depends(current_principal)]


def forbid(reason: str) -> HTTPException:
    return HTTPException(403, reason)


def require_admin_role(principal: Principal, role: str, action: str) -> None:
    """Admin actions need org_type ``beheer`` and the named role; org_type ``beheer`` alone only reads."""
    if principal.org_type != "beheer" or not principal.has_role(role):
        raise forbid(f"Alleen functioneel beheer met de rol '{role}' mag {action}.")
