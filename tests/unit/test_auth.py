"""Bearer tokens: signature, audience, issuer and the organisation claims decide; anything else is 401."""

from __future__ import annotations

import time

import jwt
import pytest
from fastapi import HTTPException

from servicekit.auth import AUDIENCE, ISSUER, ensure_dev_keys, mint_token, verify


def _signed(**claims: object) -> str:
    private, _ = ensure_dev_keys()
    now = int(time.time())
    body = {"sub": "u", "org_type": "gemeente", "org": "0957", "aud": AUDIENCE, "iss": ISSUER, "iat": now,
            "exp": now + 60, **claims}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, private.read_bytes(), algorithm="RS256")


def test_a_development_token_carries_name_and_sub_mandates():
    principal = verify(mint_token("j.jansen", "gemeente", "0957", ["Behandelaar"], name="J. Jansen",
                                  mandates=["Toekenning"]))
    assert (principal.org_type, principal.org, principal.name) == ("gemeente", "0957", "J. Jansen")
    assert principal.has_role("behandelaar") and principal.may_decide("toekenning")
    assert not principal.may_decide("vaststelling")


@pytest.mark.parametrize("claims", [{"iss": "https://elders.example"}, {"iss": None}, {"aud": "iets-anders"},
                                    {"exp": int(time.time()) - 10}, {"org": None}, {"org_type": "burger"}])
def test_wrong_issuer_audience_expiry_or_organisation_is_401(claims):
    with pytest.raises(HTTPException) as refused:
        verify(_signed(**claims))
    assert refused.value.status_code == 401


def test_the_accepted_issuer_is_configuration(monkeypatch):
    monkeypatch.setenv("IPSFLOW_JWT_ISSUER", "https://idp.gemeente.example")
    assert verify(_signed(iss="https://idp.gemeente.example")).org == "0957"
    with pytest.raises(HTTPException):
        verify(_signed())


@pytest.fixture(autouse=True)
def development(monkeypatch):
    """These tests check tokens against the development key, as a service in development does."""
    monkeypatch.setenv("IPSFLOW_ENVIRONMENT", "development")
    for name in ("IPSFLOW_JWT_PUBLIC_KEY_FILE", "IPSFLOW_JWT_JWKS_URL", "IPSFLOW_JWT_MAX_LIFETIME_SECONDS"):
        monkeypatch.delenv(name, raising=False)


def _other_key() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def _now() -> int:
    return int(time.time())


# (what is wrong, how the token is made, what the 401 says). Regression (issue 12): the old 401 passed on
# PyJWT's own English text ("Token ongeldig: Signature has expired"), and accepted tokens without iat or
# valid for 8 hours.
_WRONG_TOKENS = [
    ("verlopen", lambda: _signed(iat=_now() - 120, exp=_now() - 10), "Token verlopen."),
    ("andere sleutel", lambda: jwt.encode({"sub": "u", "org_type": "gemeente", "org": "0957", "aud": AUDIENCE,
                                            "iss": ISSUER, "iat": _now(), "exp": _now() + 60}, _other_key(),
                                           algorithm="RS256"),
     "Token heeft een onjuiste ondertekening."),
    ("te lang geldig", lambda: _signed(exp=_now() + 8 * 3600),
     "Token is te lang geldig (meer dan 3600 seconden tussen iat en exp)."),
    ("zonder iat", lambda: _signed(iat=None), "Token mist het verplichte veld 'iat'."),
    ("HS256", lambda: jwt.encode({"sub": "u", "org_type": "beheer", "org": "x", "aud": AUDIENCE, "iss": ISSUER,
                                  "iat": _now(), "exp": _now() + 60}, "geheim-van-minstens-32-tekens-lang!!",
                                 algorithm="HS256"),
     "Token is ondertekend met een niet toegestaan algoritme (alleen RS256)."),
    ("andere audience", lambda: _signed(aud="iets-anders"), "Token is niet voor ipsflow bedoeld (aud)."),
    ("andere uitgever", lambda: _signed(iss="https://elders.example"),
     "Token komt niet van de erkende uitgever (iss)."),
    ("uit de toekomst", lambda: _signed(iat=_now() + 600, exp=_now() + 900),
     "Token is nog niet geldig (iat of nbf ligt in de toekomst)."),
    ("onleesbaar", lambda: "dit.is.geen-token", "Token is onleesbaar."),
]


@pytest.mark.parametrize(("what", "make", "detail"), _WRONG_TOKENS, ids=[w[0] for w in _WRONG_TOKENS])
def test_a_401_says_what_is_wrong_in_our_words(development, what, make, detail):
    with pytest.raises(HTTPException) as refused:
        verify(make())
    assert refused.value.status_code == 401, what
    assert refused.value.detail == detail
    assert refused.value.headers == {"WWW-Authenticate": "Bearer"}


def test_the_maximum_lifetime_is_configuration_and_inclusive(development, monkeypatch):
    assert verify(_signed(exp=_now() + 3600)).org == "0957"
    monkeypatch.setenv("IPSFLOW_JWT_MAX_LIFETIME_SECONDS", "7200")
    assert verify(_signed(exp=_now() + 7200)).org == "0957"
    with pytest.raises(HTTPException) as refused:
        verify(_signed(exp=_now() + 7201))
    assert refused.value.detail == "Token is te lang geldig (meer dan 7200 seconden tussen iat en exp)."


def test_a_development_token_lives_one_hour_by_default(development):
    claims = jwt.decode(mint_token("j", "beheer", "ipsflow", []), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 3600
    assert verify(mint_token("j", "beheer", "ipsflow", [])).org_type == "beheer"
