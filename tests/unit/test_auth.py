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
