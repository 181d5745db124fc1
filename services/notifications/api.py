"""HTTP edge of notifications: health and a read-only view for admins."""

from __future__ import annotations

from fastapi import FastAPI

from notifications.bootstrap import NotificationSettings, bootstrap
from servicekit.auth import PrincipalDep, forbid
from servicekit.http import API_PREFIX, add_health, create_app, problem


def create(settings: NotificationSettings | None = None) -> FastAPI:
    svc = bootstrap(settings)
    app = create_app("ipsflow notifications", "Berichten en brieven aan ggz-instellingen en gemeenten.",
                     lifespan=svc.runtime.lifespan)
    app.state.notifications = svc
    add_health(app, svc.runtime.ready_checks)

    @app.get(f"{API_PREFIX}/dossiers/{{zaak_id}}", tags=["dossiers"])
    async def dossier(zaak_id: str, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        if principal.org_type != "beheer":
            raise forbid("Alleen functioneel beheer mag dossiers van notificaties inzien.")
        doc = await svc.handlers.dossiers.find_one({"_id": zaak_id}, {"applied": 0})
        if doc is None:
            return problem(404, "Niet gevonden", "Geen dossier met dit kenmerk.")
        return {"id": doc["_id"], "berichten": doc["berichten"], "gemeenteCode": doc.get("gemeente_code"),
                "trajectType": doc.get("traject_type")}

    return app
