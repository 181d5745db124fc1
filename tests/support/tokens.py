"""Bearer headers for tests, minted with the development key (the services under test trust it)."""

from __future__ import annotations

from servicekit.auth import mint_token


def bearer(subject: str, org_type: str, org: str, *roles: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {mint_token(subject, org_type, org, list(roles))}"}


ADMIN = bearer("procesbeheerder", "beheer", "ipsflow", "procesbeheerder")
