"""HTTP edge of grants: budgets for UWV, beschikkingen, the configured regulations. The only module that
knows HTTP; every endpoint needs a bearer token."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Query, Request, Response

from grants import rapportage
from grants.bootstrap import Grants, GrantsSettings, bootstrap
from grants.handlers import beschikking_result
from grants.messages import Budget, PlafondWijzigen
from grants.repository import ledger_id
from servicekit.audit import verwerking
from servicekit.auth import Principal, PrincipalDep, forbid
from servicekit.bootstrap import service_app
from servicekit.http import API_PREFIX, problem
from servicekit.store import Document


def get_grants(request: Request) -> Grants:
    return request.app.state.grants  # type: ignore[no-any-return]


GrantsDep = Annotated[Grants, Depends(get_grants)]


def _budget(doc: Document) -> Budget:
    return Budget(regeling=doc["regeling"], periode=doc["periode"], plafond_cents=doc["plafond_cents"],
                  beschikbaar_cents=doc["beschikbaar_cents"], gereserveerd_cents=doc["gereserveerd_cents"],
                  vastgelegd_cents=doc["vastgelegd_cents"], betaald_cents=doc.get("betaald_cents", 0),
                  teruggevorderd_cents=doc.get("teruggevorderd_cents", 0),
                  vastgesteld_cents=doc.get("vastgesteld_cents", 0),
                  aantal_reserveringen=doc.get("aantal_reserveringen", 0), revision=doc.get("revision", 1))


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


def _rapportage_gemeente(principal: Principal, gemeente: str | None) -> str | None:
    """Which gemeente's rows the caller may see: a gemeente only its own, UWV and beheer any (None: all)."""
    if principal.org_type in ("uwv", "beheer"):
        return gemeente
    if principal.org_type == "gemeente":
        if gemeente is not None and gemeente != principal.org:
            raise forbid("Een gemeente ziet alleen haar eigen rapportage.")
        return principal.org
    raise forbid("Alleen gemeenten, UWV en beheer zien rapportages.")


async def _rijen(svc: Grants, jaar: int, gemeente: str | None) -> list[rapportage.Rij]:
    zaken, verzoeken, ledgers = await svc.repo.report_sources()
    return rapportage.bereken(jaar, svc.regelingen, svc.handlers.gemeenten, zaken, verzoeken, ledgers, gemeente)


JaarQuery = Annotated[int, Query(ge=2000, le=2100, description="Kalenderjaar; budgetperioden die het overlappen")]
GemeenteQuery = Annotated[str | None, Query(pattern=r"^\d{4}$", description="CBS-gemeentecode")]


def create(settings: GrantsSettings | None = None) -> FastAPI:
    grants = bootstrap(settings)

    async def ledgers() -> None:
        for regeling in grants.regelingen.values():
            for periode in regeling.budgetperioden:
                await grants.repo.ensure_ledger(regeling, periode.id)

    # Logboek dataverwerkingen (servicekit.audit): a beschikking is about one client's application.
    app = service_app(grants.runtime, "ipsflow grants", "Regelingen, subsidieplafonds en budgetten, beschikkingen.",
                      logboek=True, on_start=[grants.repo.ensure_indexes, ledgers],
                      background={"allocator": grants.allocator.run})
    app.state.grants = grants

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

    @app.get(f"{API_PREFIX}/rapportages", tags=["rapportages"])
    async def rapportages(principal: PrincipalDep, svc: GrantsDep, jaar: JaarQuery,
                          gemeente: GemeenteQuery = None) -> dict[str, Any]:
        """Per gemeente and budget period: applications, grants, refusals by ground, and committed / paid /
        recovered / vastgesteld amounts against the ceiling (cents). A gemeente sees only its own rows."""
        gemeente = _rapportage_gemeente(principal, gemeente)
        rijen = await _rijen(svc, jaar, gemeente)
        return {"jaar": jaar, "gemeente": gemeente, "rijen": [r.as_json() for r in rijen],
                "totalen": rapportage.totalen(rijen)}

    @app.get(f"{API_PREFIX}/rapportages.csv", tags=["rapportages"],
             responses={200: {"content": {"text/csv": {}}, "description": "CSV (puntkomma, UTF-8 met BOM)"}})
    async def rapportages_csv(principal: PrincipalDep, svc: GrantsDep, jaar: JaarQuery,
                              gemeente: GemeenteQuery = None) -> Response:
        gemeente = _rapportage_gemeente(principal, gemeente)
        naam = f"ips-rapportage-{jaar}{'-' + gemeente if gemeente else ''}.csv"
        return Response(rapportage.als_csv(await _rijen(svc, jaar, gemeente)).encode("utf-8"),
                        media_type="text/csv; charset=utf-8",
                        headers={"Content-Disposition": f'attachment; filename="{naam}"'})

    @app.get(f"{API_PREFIX}/beschikkingen/{{beschikking_id}}", tags=["beschikkingen"],
             dependencies=[verwerking("read", "beschikking", "beschikking_id")])
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
