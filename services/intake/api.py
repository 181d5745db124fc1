"""HTTP edge of intake: the ggz portal API. The only module that knows HTTP."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, FastAPI, Header, Request, Response

from intake.bootstrap import Intake, IntakeSettings, bootstrap
from intake.handlers import IdempotencyConflict, submit_application
from intake.messages import AanvraagIndienen, AanvraagOntvangen
from servicekit.http import API_PREFIX, add_health, create_app, problem


def get_intake(request: Request) -> Intake:
    return request.app.state.intake  # type: ignore[no-any-return]


IntakeDep = Annotated[Intake, Depends(get_intake)]


def create(settings: IntakeSettings | None = None) -> FastAPI:
    intake = bootstrap(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with intake.runtime.lifespan(app):
            await intake.aanvragen.ensure_indexes()
            yield

    app = create_app("ipsflow intake", "Portaal-API voor ggz-instellingen: IPS-subsidieaanvragen indienen en volgen.",
                     lifespan=lifespan)
    app.state.intake = intake
    add_health(app, intake.runtime.ready_checks)

    @app.post(f"{API_PREFIX}/aanvragen", status_code=201, response_model=AanvraagOntvangen,
              response_model_by_alias=True, tags=["aanvragen"],
              responses={400: {"description": "Ongeldige invoer (problem+json)"},
                         422: {"description": "Idempotency-Key hergebruikt voor een ander verzoek"}})
    async def aanvraag_indienen(body: AanvraagIndienen, svc: IntakeDep, response: Response,
                                idempotency_key: Annotated[str | None, Header(max_length=200)] = None):  # type: ignore[no-untyped-def]
        try:
            result = await submit_application(body, svc.aanvragen, idempotency_key)
        except IdempotencyConflict:
            return problem(422, "Idempotency-Key al gebruikt",
                           "Deze Idempotency-Key hoort bij een ander verzoek.")
        if svc.runtime.relay is not None:
            svc.runtime.relay.wake(result.aanvraag.id)
        a = result.aanvraag
        response.status_code = 201 if result.created else 200
        response.headers["Location"] = f"{API_PREFIX}/aanvragen/{a.id}"
        return AanvraagOntvangen(id=a.id, status=a.status, ontvangen_op=a.ontvangen_op,
                                 gemeente_code=a.gemeente_code, traject_type=a.traject_type)

    @app.get(f"{API_PREFIX}/aanvragen/{{aanvraag_id}}", response_model=AanvraagOntvangen,
             response_model_by_alias=True, tags=["aanvragen"])
    async def aanvraag_lezen(aanvraag_id: str, svc: IntakeDep):  # type: ignore[no-untyped-def]
        a = await svc.aanvragen.get(aanvraag_id)
        if a is None:
            return problem(404, "Niet gevonden", "Geen aanvraag met dit kenmerk.")
        return AanvraagOntvangen(id=a.id, status=a.status, ontvangen_op=a.ontvangen_op,
                                 gemeente_code=a.gemeente_code, traject_type=a.traject_type)

    return app
