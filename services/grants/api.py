"""HTTP edge of grants: budgets for UWV, beschikkingen, the configured regulations. The only module that
knows HTTP; every endpoint needs a bearer token."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request, Response

from grants.bootstrap import Grants, GrantsSettings, bootstrap
from grants.handlers import beschikking_result
from grants.messages import Budget, PlafondWijzigen
from grants.repository import ledger_id
from servicekit.auth import PrincipalDep, forbid
from servicekit.http import API_PREFIX, add_health, create_app, problem
from servicekit.store import Document


def get_grants(request: Request) -> Grants:
    return request.app.state.grants  # type: ignore[no-any-return]


GrantsDep = Annotated[Grants, Depends(get_grants)]


def _budget(doc: Document) -> Budget:
    return Budget(regeling=doc["regeling"], periode=doc["periode"], plafond_cents=doc["plafond_cents"],
                  beschikbaar_cents=doc["beschikbaar_cents"], gereserveerd_cents=doc["gereserveerd_cents"],
                  vastgelegd_cents=doc["vastgelegd_cents"],
                  aantal_reserveringen=len(doc.get("reserveringen") or {}), revision=doc.get("revision", 1))


def _regeling_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _regeling_json(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, dict):
        return {k: _regeling_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_regeling_json(v) for v in value]
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def create(settings: GrantsSettings | None = None) -> FastAPI:
    grants = bootstrap(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with grants.runtime.lifespan(app):
            await grants.repo.ensure_indexes()
            for regeling in grants.regelingen.values():
                for periode in regeling.budgetperioden:
                    await grants.repo.ensure_ledger(regeling, periode.id)
            task = asyncio.create_task(grants.allocator.run(), name="allocator")
            try:
                yield
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = create_app("ipsflow grants", "Regelingen, subsidieplafonds en budgetten, beschikkingen.", lifespan=lifespan)
    app.state.grants = grants
    add_health(app, grants.runtime.ready_checks)

    @app.get(f"{API_PREFIX}/regelingen", tags=["regelingen"])
    async def regelingen(principal: PrincipalDep, svc: GrantsDep) -> list[dict[str, Any]]:
        return [_regeling_json(r) for r in svc.regelingen.values()]

    @app.get(f"{API_PREFIX}/budgetten", response_model=list[Budget], response_model_by_alias=True, tags=["budgetten"])
    async def budgetten(principal: PrincipalDep, svc: GrantsDep):  # type: ignore[no-untyped-def]
        if principal.org_type not in ("uwv", "beheer"):
            raise forbid("Alleen UWV en beheer zien de budgetten.")
        docs = await svc.repo.all_ledgers()
        return [_budget(d) for d in sorted(docs, key=lambda d: d["_id"])]

    @app.put(f"{API_PREFIX}/budgetten/{{regeling}}/{{periode}}", response_model=Budget,
             response_model_by_alias=True, tags=["budgetten"],
             responses={409: {"description": "Plafond lager dan gereserveerd + vastgelegd"},
                        412: {"description": "If-Match past niet bij de huidige revisie"}})
    async def plafond_wijzigen(  # type: ignore[no-untyped-def]
            regeling: str, periode: str, body: PlafondWijzigen, principal: PrincipalDep, svc: GrantsDep,
            response: Response, if_match: Annotated[str | None, Header(max_length=50)] = None):
        if principal.org_type != "uwv" or not principal.has_role("budgetbeheerder"):
            raise forbid("Alleen een budgetbeheerder van UWV mag een subsidieplafond wijzigen.")
        r = svc.regelingen.get(regeling)
        if r is None or periode not in {p.id for p in r.budgetperioden}:
            return problem(404, "Niet gevonden", "Onbekende regeling of budgetperiode.")
        expected = None
        if if_match is not None:
            try:
                expected = int(if_match.strip().strip('W/').strip('"'))
            except ValueError:
                return problem(412, "Voorwaarde niet vervuld", "If-Match is geen revisie van dit budget.")
        lid = ledger_id(regeling, periode)
        if await svc.repo.get_ledger(lid) is None and expected is None:
            await svc.repo.create_ledger(regeling, periode, body.plafond_cents)
        for _ in range(20):
            updated = await svc.repo.set_plafond(lid, body.plafond_cents, expected)
            if updated is not None:
                response.headers["ETag"] = f'"{updated["revision"]}"'
                return _budget(updated)
            current = await svc.repo.get_ledger(lid)
            if current is None:
                return problem(404, "Niet gevonden", "Dit budget bestaat (nog) niet.")
            if expected is not None and current.get("revision") != expected:
                return problem(412, "Voorwaarde niet vervuld", "Het budget is intussen gewijzigd.")
            if body.plafond_cents < current["gereserveerd_cents"] + current["vastgelegd_cents"]:
                return problem(409, "Plafond te laag", "Het nieuwe plafond is lager dan wat al gereserveerd en "
                               "vastgelegd is.", gereserveerdCents=current["gereserveerd_cents"],
                               vastgelegdCents=current["vastgelegd_cents"])
        return problem(409, "Conflict", "Het budget verandert te vaak; probeer het opnieuw.")

    @app.get(f"{API_PREFIX}/beschikkingen/{{beschikking_id}}", tags=["beschikkingen"])
    async def beschikking(beschikking_id: str, principal: PrincipalDep, svc: GrantsDep) -> Any:
        doc = await svc.repo.beschikkingen.get(beschikking_id)
        if doc is None:
            return problem(404, "Niet gevonden", "Geen beschikking met dit kenmerk.")
        gemeenten = {doc.get("gemeente_code"), doc.get("van_gemeente_code")} - {None}
        allowed = (principal.org_type == "beheer"
                   or (principal.org_type == "gemeente" and principal.org in gemeenten)
                   or (principal.org_type == "ggz" and doc.get("ggz_kvk_nummer") == principal.org))
        if not allowed:
            raise forbid("Deze beschikking hoort niet bij uw organisatie.")
        return {**beschikking_result(doc), "aanvraagId": doc["aanvraag_id"], "regeling": doc.get("regeling"),
                "trajectType": doc.get("traject_type"), "gronden": doc.get("gronden") or [],
                "ggzKvkNummer": doc.get("ggz_kvk_nummer")}

    return app
