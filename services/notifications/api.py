"""HTTP edge of notifications: the delivery log, the letters, retries, and the dossier view for admins.

Every endpoint needs a bearer token. The delivery log is for beheer, a retry for beheer with the role
``functioneel-beheerder``; a letter (and its log entry) may also be read by the ggz-instelling and the gemeente
it was addressed to.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Query, Request, Response

from notifications.bootstrap import Notifications, NotificationSettings, bootstrap
from notifications.domain import STATUSSEN, bericht_id
from notifications.handlers import Conflict
from notifications.messages import ID_PATTERN, Bericht, Brief
from servicekit.audit import noteer, verwerking
from servicekit.auth import FUNCTIONEEL_BEHEERDER, Principal, PrincipalDep, forbid, require_admin_role
from servicekit.bootstrap import service_app
from servicekit.http import API_PREFIX, problem
from servicekit.store import Document


def get_notifications(request: Request) -> Notifications:
    return request.app.state.notifications  # type: ignore[no-any-return]


NotificationsDep = Annotated[Notifications, Depends(get_notifications)]
ID = re.compile(ID_PATTERN.strip("^$"))


def _bericht(doc: Document) -> dict[str, Any]:
    return Bericht(
        id=doc["_id"], aanvraag_id=doc["aanvraag_id"], beschikking_id=doc["beschikking_id"], kenmerk=doc["kenmerk"],
        soort=doc["soort"], aan=[c["email"] for c in doc.get("aan") or []],
        cc=[c["email"] for c in doc.get("cc") or []], onderwerp=doc["onderwerp"], status=doc["status"],
        ontbrekend=doc.get("ontbrekend") or [], pogingen=doc.get("pogingen") or [],
        aangemaakt_op=doc["aangemaakt_op"], volgende_poging=doc.get("volgende_poging"),
        verzonden_op=doc.get("verzonden_op"), smtp_antwoord=doc.get("smtp_antwoord"), bijlage=doc["bijlage"],
        bijlage_bytes=doc["bijlage_bytes"], bijlage_sha256=doc["bijlage_sha256"],
    ).model_dump(by_alias=True, mode="json")


def _may_read(principal: Principal, doc: Document) -> bool:
    return (principal.org_type == "beheer"
            or (principal.org_type == "ggz" and bool(doc.get("aan")) and doc.get("ggz_kvk_nummer") == principal.org)
            or (principal.org_type == "gemeente" and bool(doc.get("cc"))
                and principal.org in (doc.get("cc_gemeenten") or [doc.get("gemeente_code")])))


async def _brief(s: Notifications, beschikking_id: str, principal: Principal) -> Document:
    """The stored letter of a beschikking (one message per beschikking: the id follows from it); 404 when there
    is none, 403 for anyone but beheer and the ggz-instelling and gemeente it is about."""
    doc = await s.repo.get(bericht_id(beschikking_id)) if ID.fullmatch(beschikking_id) else None
    if doc is None:
        raise HTTPException(404, "Geen brief bij deze beschikking.")
    if not (principal.org_type == "beheer"
            or (principal.org_type == "ggz" and doc.get("ggz_kvk_nummer") == principal.org)
            or (principal.org_type == "gemeente"
                and principal.org in (doc.get("cc_gemeenten") or [doc.get("gemeente_code")]))):
        raise forbid("Deze brief gaat niet over uw organisatie.")
    return doc


def create(settings: NotificationSettings | None = None) -> FastAPI:
    svc = bootstrap(settings)
    # Logboek dataverwerkingen (servicekit.audit): letters are about one client's application.
    app = service_app(svc.runtime, "ipsflow notifications", "Berichten en brieven aan ggz-instellingen en gemeenten.",
                      logboek=True, on_start=[svc.repo.ensure_indexes], background={"smtp-sender": svc.sender.run})
    app.state.notifications = svc

    @app.get(f"{API_PREFIX}/dossiers/{{zaak_id}}", tags=["dossiers"],
             dependencies=[verwerking("read", "zaak", "zaak_id")])
    async def dossier(zaak_id: str, principal: PrincipalDep):  # type: ignore[no-untyped-def]
        if principal.org_type != "beheer":
            raise forbid("Alleen functioneel beheer mag dossiers van notificaties inzien.")
        doc = await svc.handlers.dossiers.find_one({"_id": zaak_id}, {"applied": 0})
        if doc is None:
            return problem(404, "Niet gevonden", "Geen dossier met dit kenmerk.")
        return {"id": doc["_id"], "berichten": doc["berichten"], "gemeenteCode": doc.get("gemeente_code"),
                "trajectType": doc.get("traject_type")}

    @app.get(f"{API_PREFIX}/berichten", tags=["berichten"], dependencies=[verwerking("list", "bericht")],
             response_model=list[Bericht], responses={403: {"description": "Niet voor uw organisatietype"}})
    async def berichten(  # type: ignore[no-untyped-def]
            principal: PrincipalDep, s: NotificationsDep,
            status: Annotated[str | None, Query(pattern="^(" + "|".join(STATUSSEN) + ")$")] = None,
            aanvraag_id: Annotated[str | None, Query(alias="aanvraagId", max_length=100)] = None):
        """The delivery log (newest first, at most 500): recipients, subject, status and every attempt. Beheer
        sees all; a ggz-instelling only the messages and letters addressed to it, a gemeente those it was
        copied on (each with its letter at ``/brieven/{beschikkingId}``)."""
        if principal.org_type == "ggz":
            eigen: dict[str, Any] | None = {"ggz_kvk_nummer": principal.org}
        elif principal.org_type == "gemeente":
            eigen = {"$or": [{"gemeente_code": principal.org}, {"cc_gemeenten": principal.org}]}
        elif principal.org_type == "beheer":
            eigen = None
        else:
            raise forbid("Alleen functioneel beheer, ggz-instellingen en gemeenten zien berichten.")
        found = [_bericht(d) for d in await s.repo.log(status, aanvraag_id, eigen) if _may_read(principal, d)]
        noteer(ids=[b["id"] for b in found])
        return found

    @app.get(f"{API_PREFIX}/berichten/{{bericht_id}}", tags=["berichten"],
             dependencies=[verwerking("read", "bericht", "bericht_id")])
    async def bericht(bericht_id: str, principal: PrincipalDep, s: NotificationsDep):  # type: ignore[no-untyped-def]
        doc = await s.repo.get(bericht_id, licht=True)
        if doc is None:
            return problem(404, "Niet gevonden", "Geen bericht met dit id.")
        if not _may_read(principal, doc):
            raise forbid("Dit bericht is niet aan uw organisatie gericht.")
        return _bericht(doc)

    @app.get(f"{API_PREFIX}/berichten/{{bericht_id}}/pdf", tags=["berichten"],
             dependencies=[verwerking("download", "bericht", "bericht_id")],
             responses={200: {"content": {"application/pdf": {}}}})
    async def bericht_pdf(bericht_id: str, principal: PrincipalDep, s: NotificationsDep) -> Response:
        doc = await s.repo.get(bericht_id)
        if doc is None:
            return problem(404, "Niet gevonden", "Geen bericht met dit id.")
        if not _may_read(principal, doc):
            raise forbid("Deze brief is niet aan uw organisatie gericht.")
        return Response(await s.repo.pdf(doc), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{doc["bijlage"]}"',
                                 "Cache-Control": "no-store"})

    @app.get(f"{API_PREFIX}/brieven/{{beschikking_id}}", tags=["brieven"], response_model=Brief,
             dependencies=[verwerking("read", "brief", "beschikking_id")])
    async def brief(beschikking_id: str, principal: PrincipalDep, s: NotificationsDep) -> dict[str, Any]:
        """The letter of a beschikking as stored (its one copy, README "Letters"): the text; the PDF at
        ``/brieven/{beschikkingId}/pdf``. For the ggz-instelling and the gemeente of the beschikking, and beheer."""
        doc = await _brief(s, beschikking_id, principal)
        return Brief(beschikking_id=doc["beschikking_id"], bericht_id=doc["_id"], aanvraag_id=doc["aanvraag_id"],
                     kenmerk=doc["kenmerk"], soort=doc["soort"], datum=(doc.get("beschikking") or {}).get("datum"),
                     tekst=doc.get("brief_tekst") or (doc.get("beschikking") or {}).get("tekst") or "",
                     pdf=f"{API_PREFIX}/brieven/{doc['beschikking_id']}/pdf", bestandsnaam=doc["bijlage"],
                     pdf_bytes=doc["bijlage_bytes"], pdf_sha256=doc["bijlage_sha256"],
                     ).model_dump(by_alias=True, mode="json")

    @app.get(f"{API_PREFIX}/brieven/{{beschikking_id}}/pdf", tags=["brieven"],
             dependencies=[verwerking("download", "brief", "beschikking_id")],
             responses={200: {"content": {"application/pdf": {}}}})
    async def brief_pdf(beschikking_id: str, principal: PrincipalDep, s: NotificationsDep) -> Response:
        doc = await _brief(s, beschikking_id, principal)
        return Response(await s.repo.pdf(doc), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{doc["bijlage"]}"',
                                 "Cache-Control": "no-store"})

    @app.post(f"{API_PREFIX}/berichten/{{bericht_id}}/opnieuw", tags=["berichten"],
              dependencies=[verwerking("update", "bericht", "bericht_id")],
              responses={404: {"description": "Onbekend bericht"}, 409: {"description": "Al verzonden of bezig"}})
    async def opnieuw(bericht_id: str, principal: PrincipalDep, s: NotificationsDep):  # type: ignore[no-untyped-def]
        """Try a failed (or parked, or waiting) message now, with a fresh round of attempts."""
        require_admin_role(principal, FUNCTIONEEL_BEHEERDER, "een bericht opnieuw versturen")
        try:
            doc = await s.handlers.opnieuw(bericht_id)
        except LookupError:
            return problem(404, "Niet gevonden", "Geen bericht met dit id.")
        except Conflict as exc:
            return problem(409, "Conflict", str(exc))
        return _bericht(doc)

    return app
