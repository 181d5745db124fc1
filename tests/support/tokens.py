"""Bearer headers for tests, minted with the development key (the services under test trust it)."""

from __future__ import annotations

from servicekit.auth import mint_token


def bearer(subject: str, org_type: str, org: str, *roles: str, name: str = "",
           mandates: tuple[str, ...] = ()) -> dict[str, str]:
    token = mint_token(subject, org_type, org, list(roles), name=name, mandates=list(mandates))
    return {"Authorization": f"Bearer {token}"}


#: Functioneel beheer by role (README, "Rollen"): org_type beheer alone reads; each admin action needs its role.
BEHEER_ZONDER_ROL = bearer("beheer-lezer", "beheer", "ipsflow")
PROCESBEHEERDER = bearer("procesbeheerder", "beheer", "ipsflow", "procesbeheerder")
FUNCTIONEEL_BEHEERDER = bearer("functioneel-beheerder", "beheer", "ipsflow", "functioneel-beheerder")
#: Both admin roles, for tests that walk a whole flow (deploy, then retry or move the clock).
ADMIN = bearer("beheerder", "beheer", "ipsflow", "procesbeheerder", "functioneel-beheerder")
