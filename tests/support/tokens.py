"""Bearer headers for tests, minted with the development key (the services under test trust it)."""

from __future__ import annotations

from servicekit.auth import mint_token


def bearer(subject: str, org_type: str, org: str, *roles: str, name: str = "",
           mandates: tuple[str, ...] = ()) -> dict[str, str]:
    token = mint_token(subject, org_type, org, list(roles), name=name, mandates=list(mandates))
    return {"Authorization": f"Bearer {token}"}


ADMIN = bearer("procesbeheerder", "beheer", "ipsflow", "procesbeheerder")
