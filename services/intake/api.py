"""HTTP edge of intake: the ggz portal API. The only module that knows HTTP.

Every endpoint except /health, /ready and the docs needs a bearer JWT. A ggz-instelling sees and changes only
its own applications; a gemeente reads those addressed to it now; beheer reads all; UWV none.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Header, Query, Request, Response

from intake.bootstrap import Intake, IntakeSettings, bootstrap
from intake.domain import DOORGEZONDEN, INGETROKKEN, Aanvraag, Besluit, DocumentInfo, Verlengingsverzoek
from intake.handlers import (
    Conflict,
    Forbidden,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    PreconditionFailed,
    doorgezonden_door,
    may_read,
)
from intake.messages import (
    AanvraagAanvullen,
    AanvraagDetail,
    AanvraagIndienen,
    AanvraagLijst,
    AanvraagOntvangen,
    AanvraagSamenvatting,
    BeslistermijnView,
    BesluitView,
    DocumentMetadata,
    GrondView,
    HerstelView,
    StopberichtMelden,
    StopberichtView,
    TrajectView,
    VerlengingsverzoekView,
    VerlengingVragen,
)
from intake.stand import stand
from servicekit.audit import noteer, verwerking
from servicekit.auth import Principal, PrincipalDep
from servicekit.bootstrap import service_app
from servicekit.http import API_PREFIX, problem
from servicekit.kalender import amsterdam_dag
from servicekit.vrije_tekst import VrijeTekst

AANVRAGEN = f"{API_PREFIX}/aanvragen"
UPLOAD_PATH = rf"{AANVRAGEN}/[^/]+/(?:documenten|eindverslag)/?"
# A key is stored with the application (to recognise a repeat), so it may not hold a BSN either.
IdempotencyKey = Annotated[VrijeTekst | None, Header(max_length=200)]
IfMatch = Annotated[str | None, Header(max_length=100, description="De ETag van de gelezen aanvraag.")]
_PROBLEMS: dict[int | str, dict[str, Any]] = {400: {"description": "Ongeldige invoer (problem+json)"},
             401: {"description": "Geen of ongeldig token (problem+json)"},
             403: {"description": "Niet van uw organisatie (problem+json)"},
             404: {"description": "Niet gevonden (problem+json)"}}

# Logboek dataverwerkingen (servicekit.audit): every route below serves or changes an application.
_INDIENEN = verwerking("create", "aanvraag")
_LIJST = verwerking("list", "aanvraag")
_LEZEN = verwerking("read", "aanvraag", "aanvraag_id")
_WIJZIGEN = verwerking("update", "aanvraag", "aanvraag_id")
_MELDEN = verwerking("create", "aanvraag", "aanvraag_id")
_UPLOADEN = verwerking("upload", "aanvraag", "aanvraag_id")
_DOWNLOADEN = verwerking("download", "aanvraag", "aanvraag_id", "document_id")

_PDF_BODY: dict[str, Any] = {"requestBody": {"required": True, "content": {
    "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}}
#: A change with If-Match and Idempotency-Key can also answer these.
_WIJZIGING: dict[int | str, dict[str, Any]] = {412: {"description": "If-Match verouderd"},
                                               422: {"description": "Idempotency-Key hergebruikt"}}
_TRAJECT: dict[int | str, dict[str, Any]] = {
    **_PROBLEMS, 409: {"description": "De aanvraag is niet toegekend, of dit is al gemeld"},
    412: {"description": "If-Match verouderd"}, 422: {"description": "Idempotency-Key hergebruikt"}}


def get_intake(request: Request) -> Intake:
    return request.app.state.intake  # type: ignore[no-any-return]


IntakeDep = Annotated[Intake, Depends(get_intake)]


def create(settings: IntakeSettings | None = None) -> FastAPI:
    intake = bootstrap(settings)
    handlers = intake.handlers
    app = service_app(intake.runtime, "ipsflow intake",
                      "Portaal-API voor ggz-instellingen: IPS-subsidieaanvragen indienen en volgen.", logboek=True,
                      on_start=[intake.aanvragen.ensure_indexes],
                      body_limits=[(UPLOAD_PATH, intake.settings.max_document_bytes)])
    app.state.intake = intake

    @app.exception_handler(InvalidInput)
    async def on_invalid(_r: Request, exc: InvalidInput) -> Response:
        return problem(400, "Ongeldige invoer", "Een of meer velden zijn ongeldig; er is niets opgeslagen.",
                       type_="https://ipsflow.nl/problems/ongeldige-invoer", invalid_params=exc.params)

    @app.exception_handler(NotFound)
    async def on_not_found(_r: Request, _exc: NotFound) -> Response:
        return problem(404, "Niet gevonden", "Geen aanvraag of document met dit kenmerk.")

    @app.exception_handler(Forbidden)
    async def on_forbidden(_r: Request, exc: Forbidden) -> Response:
        return problem(403, "Geen toegang", str(exc))

    @app.exception_handler(Conflict)
    async def on_conflict(_r: Request, exc: Conflict) -> Response:
        return problem(409, "Conflict", str(exc))

    @app.exception_handler(PreconditionFailed)
    async def on_precondition(_r: Request, _exc: PreconditionFailed) -> Response:
        return problem(412, "Voorwaarde niet vervuld", "De aanvraag is gewijzigd sinds u haar las; lees haar opnieuw.")

    @app.exception_handler(IdempotencyConflict)
    async def on_idempotency(_r: Request, _exc: IdempotencyConflict) -> Response:
        return problem(422, "Idempotency-Key al gebruikt", "Deze Idempotency-Key hoort bij een ander verzoek.")

    @app.post(AANVRAGEN, status_code=201, response_model=AanvraagOntvangen, response_model_by_alias=True,
              dependencies=[_INDIENEN],
              tags=["aanvragen"], responses={**_PROBLEMS, 422: {"description": "Idempotency-Key hergebruikt"}})
    async def aanvraag_indienen(body: AanvraagIndienen, principal: PrincipalDep, request: Request,
                                response: Response, idempotency_key: IdempotencyKey = None) -> AanvraagOntvangen:
        """Dien een aanvraag in. Een herhaald verzoek met dezelfde Idempotency-Key en dezelfde inhoud krijgt het
        oorspronkelijke antwoord terug (201, dezelfde body; header ``Idempotency-Replayed: true``), ook als de
        aanvraag sindsdien verder is; de actuele stand staat op ``GET /aanvragen/{id}``."""
        result = await handlers.submit(principal, body, idempotency_key)
        a = result.aanvraag
        noteer(request, resource_id=a.id)
        response.status_code = 201
        if result.created:
            # the version just stored (revision 1): a change sent back with it as If-Match is accepted
            response.headers["ETag"] = _etag(a)
        else:
            response.headers["Idempotency-Replayed"] = "true"
        response.headers["Location"] = f"{AANVRAGEN}/{a.id}"
        return AanvraagOntvangen.model_validate(result.bevestiging)

    @app.get(AANVRAGEN, response_model=AanvraagLijst, response_model_by_alias=True, tags=["aanvragen"],
             dependencies=[_LIJST],
             responses=_PROBLEMS)
    async def aanvragen_lijst(principal: PrincipalDep, request: Request,
                              limit: Annotated[int, Query(ge=1, le=200)] = 50,
                              offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0) -> AanvraagLijst:
        """De aanvragen van uw organisatie, nieuwste eerst."""
        found = await handlers.list_for(principal, limit, offset)
        noteer(request, ids=[a.id for a in found])
        nu = handlers.clock()
        return AanvraagLijst(items=[_samenvatting(a, principal, nu) for a in found], limit=limit, offset=offset)

    @app.get(f"{AANVRAGEN}/{{aanvraag_id}}", response_model=AanvraagDetail, response_model_by_alias=True,
             dependencies=[_LEZEN],
             response_model_exclude_none=True, tags=["aanvragen"], responses=_PROBLEMS)
    async def aanvraag_lezen(aanvraag_id: str, principal: PrincipalDep, response: Response) -> AanvraagDetail:
        """Status, data, herstelverzoek, besluit en documenten van een aanvraag (ETag: de versie)."""
        aanvraag = await handlers.read(principal, aanvraag_id)
        response.headers["ETag"] = _etag(aanvraag)
        return _detail(aanvraag, principal, handlers.clock())

    @app.post(f"{AANVRAGEN}/{{aanvraag_id}}/documenten", status_code=201, response_model=DocumentMetadata,
              dependencies=[_UPLOADEN],
              response_model_by_alias=True, tags=["documenten"],
              responses={**_PROBLEMS, 409: {"description": "Aanvraag afgesloten, of al het maximum aantal documenten "
                                                           "(IPSFLOW_INTAKE_MAX_DOCUMENTS)"},
                         422: {"description": "Idempotency-Key hergebruikt"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/pdf": {"schema": {"type": "string", "format": "binary"}}}}})
    async def document_uploaden(
            aanvraag_id: str, request: Request, principal: PrincipalDep,
            soort: Annotated[Literal["aanvraagformulier", "modelgetrouwheidscertificaat", "overig"], Query()],
            bestandsnaam: Annotated[VrijeTekst | None, Query(max_length=200)] = None,
            idempotency_key: IdempotencyKey = None) -> DocumentMetadata:
        """Voeg een pdf toe (de body is het bestand zelf, Content-Type application/pdf; max. 10 MB)."""
        content = await request.body()
        info = await handlers.upload(principal, aanvraag_id, soort, bestandsnaam,
                                     request.headers.get("content-type", ""), content, idempotency_key)
        noteer(request, onderdeel=info.id)
        return _document(info)

    @app.get(f"{AANVRAGEN}/{{aanvraag_id}}/documenten/{{document_id}}", tags=["documenten"],
             dependencies=[_DOWNLOADEN],
             responses={**_PROBLEMS, 200: {"content": {"application/pdf": {}, "text/plain": {}}}})
    async def document_lezen(aanvraag_id: str, document_id: str, principal: PrincipalDep) -> Response:
        """De inhoud van een document: pdf voor uploads, tekst voor besluiten en mededelingen."""
        info, content = await handlers.document_content(principal, aanvraag_id, document_id)
        return Response(content, media_type=info.content_type, headers={
            "Content-Disposition": f'attachment; filename="{info.bestandsnaam}"',
            "X-Content-Type-Options": "nosniff", "Cache-Control": "no-store"})

    @app.post(f"{AANVRAGEN}/{{aanvraag_id}}/aanvullingen", response_model=AanvraagDetail,
              dependencies=[_WIJZIGEN],
              response_model_by_alias=True, response_model_exclude_none=True, tags=["aanvragen"],
              responses={**_PROBLEMS, 409: {"description": "Er is geen aanvulling gevraagd"}, **_WIJZIGING})
    async def aanvraag_aanvullen(aanvraag_id: str, body: AanvraagAanvullen, principal: PrincipalDep,
                                 response: Response, idempotency_key: IdempotencyKey = None,
                                 if_match: IfMatch = None) -> AanvraagDetail:
        """Vul een onvolledige aanvraag aan (alleen na een herstelverzoek). Upload documenten vooraf."""
        aanvraag = await handlers.aanvullen(principal, aanvraag_id, body, idempotency_key, _revision(if_match))
        response.headers["ETag"] = _etag(aanvraag)
        return _detail(aanvraag, principal, handlers.clock())

    @app.post(f"{AANVRAGEN}/{{aanvraag_id}}/intrekking", response_model=AanvraagDetail,
              dependencies=[_WIJZIGEN],
              response_model_by_alias=True, response_model_exclude_none=True, tags=["aanvragen"],
              responses={**_PROBLEMS, 409: {"description": "Er is al besloten"}, **_WIJZIGING})
    async def aanvraag_intrekken(aanvraag_id: str, principal: PrincipalDep, response: Response,
                                 idempotency_key: IdempotencyKey = None, if_match: IfMatch = None) -> AanvraagDetail:
        """Trek de aanvraag in; kan tot er een besluit is."""
        aanvraag = await handlers.intrekken(principal, aanvraag_id, idempotency_key, _revision(if_match))
        response.headers["ETag"] = _etag(aanvraag)
        return _detail(aanvraag, principal, handlers.clock())

    @app.post(f"{AANVRAGEN}/{{aanvraag_id}}/verlengingsverzoeken", status_code=202, dependencies=[_MELDEN],
              response_model=VerlengingsverzoekView, response_model_by_alias=True, response_model_exclude_none=True,
              tags=["traject"], responses=_TRAJECT)
    async def verlenging_vragen(aanvraag_id: str, body: VerlengingVragen, principal: PrincipalDep,
                                response: Response, idempotency_key: IdempotencyKey = None,
                                if_match: IfMatch = None) -> VerlengingsverzoekView:
        """Vraag verlenging van het lopende traject (alleen bij een toegekende aanvraag). De gemeente beslist
        bij beschikking; het wettelijke maximum en de ene verlenging worden daar getoetst."""
        aanvraag, verzoek = await handlers.verlenging_vragen(principal, aanvraag_id, body, idempotency_key,
                                                             _revision(if_match))
        response.headers["ETag"] = _etag(aanvraag)
        return _verzoek(verzoek)

    @app.post(f"{AANVRAGEN}/{{aanvraag_id}}/stopberichten", status_code=202, response_model=StopberichtView,
              dependencies=[_MELDEN],
              response_model_by_alias=True, tags=["traject"], responses=_TRAJECT)
    async def stopbericht_melden(aanvraag_id: str, body: StopberichtMelden, principal: PrincipalDep,
                                 response: Response, idempotency_key: IdempotencyKey = None,
                                 if_match: IfMatch = None) -> StopberichtView:
        """Stopbericht deel 1: het traject eindigt voortijdig op de einddatum (niet voor de startdatum).
        Eén keer, alleen bij een toegekende aanvraag; de status blijft toegekend."""
        aanvraag, stopbericht = await handlers.stopbericht_melden(principal, aanvraag_id, body, idempotency_key,
                                                                  _revision(if_match))
        response.headers["ETag"] = _etag(aanvraag)
        return StopberichtView(einddatum=stopbericht.einddatum, gemeld_op=stopbericht.gemeld_op)

    @app.post(f"{AANVRAGEN}/{{aanvraag_id}}/eindverslag", status_code=201, response_model=DocumentMetadata,
              dependencies=[_UPLOADEN],
              response_model_by_alias=True, tags=["traject"], responses=_TRAJECT, openapi_extra=_PDF_BODY)
    async def eindverslag_indienen(aanvraag_id: str, request: Request, principal: PrincipalDep,
                                   response: Response,
                                   bestandsnaam: Annotated[VrijeTekst | None, Query(max_length=200)] = None,
                                   idempotency_key: IdempotencyKey = None,
                                   if_match: IfMatch = None) -> DocumentMetadata:
        """Dien het beëindigingsverslag in (de body is de pdf zelf; max. 10 MB). Eén keer, alleen bij een
        toegekende aanvraag."""
        content = await request.body()
        info = await handlers.eindverslag_indienen(principal, aanvraag_id, bestandsnaam,
                                                   request.headers.get("content-type", ""), content,
                                                   idempotency_key, _revision(if_match))
        response.headers["Location"] = f"{AANVRAGEN}/{aanvraag_id}/documenten/{info.id}"
        noteer(request, onderdeel=info.id)
        return _document(info)

    return app


def _verzoek(v: Verlengingsverzoek) -> VerlengingsverzoekView:
    return VerlengingsverzoekView(id=v.id, maanden=v.maanden, toelichting=v.toelichting, gevraagd_op=v.gevraagd_op)


def _besluit(b: Besluit) -> BesluitView:
    return BesluitView(soort=b.soort, datum=b.datum, bezwaartermijn_einde=b.bezwaartermijn_einde,
                       bedrag_cents=b.bedrag_cents, document_id=b.document_id, kenmerk=b.kenmerk,
                       beschikking_id=b.beschikking_id,
                       brief=f"{API_PREFIX}/brieven/{b.beschikking_id}" if b.beschikking_id else None,
                       gronden=[GrondView.model_validate(g) for g in b.gronden])


def _etag(a: Aanvraag) -> str:
    return f'"{a.revision}"'


def _revision(if_match: str | None) -> int | None:
    """The revision of an If-Match ETag; an unknown or malformed tag matches nothing (-1), so the write fails."""
    if if_match is None or if_match.strip() == "*":
        return None
    tag = if_match.strip().removeprefix("W/").strip('"')
    return int(tag) if tag.isdigit() else -1


def _owner(a: Aanvraag, principal: Principal) -> bool:
    return principal.org_type == "ggz" and principal.org == a.ggz_kvk_nummer


def _document(d: DocumentInfo) -> DocumentMetadata:
    return DocumentMetadata(id=d.id, soort=d.soort, bestandsnaam=d.bestandsnaam, content_type=d.content_type,
                            grootte=d.grootte, sha256=d.sha256, ontvangen_op=d.ontvangen_op)


def _besloten_op(a: Aanvraag) -> date | None:
    """The day of the decision on the application (the letter's date), if there is one."""
    datum = a.besluit.datum if a.besluit and a.besluit.soort in ("toekenning", "afwijzing", "niet_behandelen") \
        else None
    return date.fromisoformat(datum[:10]) if datum else None


def _beslistermijn(a: Aanvraag, nu: datetime) -> BeslistermijnView | None:
    st = stand(a)
    if st.beslisdatum is None or st.beslisdatum_reden is None:
        return None
    return BeslistermijnView.model_validate({
        "beslisdatum": st.beslisdatum, "reden": st.beslisdatum_reden,
        "oorspronkelijkeBeslisdatum": st.oorspronkelijke_beslisdatum, "opgeschorteDagen": st.opgeschorte_dagen,
        "teLaat": a.status != INGETROKKEN and st.te_laat(amsterdam_dag(nu), _besloten_op(a))})


def _traject(a: Aanvraag) -> TrajectView | None:
    st = stand(a)
    if st.startdatum is None and st.einddatum is None:
        return None
    return TrajectView(startdatum=st.startdatum, einddatum=st.einddatum, verlenging_maanden=st.verlenging_maanden,
                       verlenging_beschikking_id=st.verlenging_beschikking_id)


def _samenvatting(a: Aanvraag, principal: Principal, nu: datetime) -> AanvraagSamenvatting:
    if doorgezonden_door(principal, a) and not may_read(principal, a):  # its record of the forwarding
        return AanvraagSamenvatting(id=a.id, status=DOORGEZONDEN, aanvraagdatum=a.aanvraagdatum,
                                    ontvangen_op=a.ontvangen_op, gemeente_code=a.gemeente_code,
                                    woongemeente_code=a.woongemeente_code, traject_type=a.traject_type,
                                    doorgezonden_naar=a.gemeente_code)
    termijn = _beslistermijn(a, nu)
    return AanvraagSamenvatting(id=a.id, status=a.status,
                                beslisdatum=termijn.beslisdatum if termijn else None,
                                te_laat=termijn.te_laat if termijn else None,
                                beschikking_id=a.besluit.beschikking_id if a.besluit else None,
                                einddatum=stand(a).einddatum,
                                client_referentie=a.client_referentie if _owner(a, principal) else None,
                                aanvraagdatum=a.aanvraagdatum, ontvangen_op=a.ontvangen_op,
                                gemeente_code=a.gemeente_code, woongemeente_code=a.woongemeente_code,
                                traject_type=a.traject_type)


def _doorzendingsrecord(a: Aanvraag) -> AanvraagDetail:
    """What the gemeente that forwarded an application (Awb 2:3) keeps seeing: that it forwarded it, to whom,
    and the forwarding notice; what it had when it received it, and nothing the competent gemeente added later."""
    return AanvraagDetail(
        id=a.id, status=DOORGEZONDEN, aanvraagdatum=a.aanvraagdatum, gewenste_startdatum=a.gewenste_startdatum,
        ontvangen_op=a.ontvangen_op, gemeente_code=a.gemeente_code, woongemeente_code=a.woongemeente_code,
        doorgezonden_van=a.doorgezonden_van, doorgezonden_naar=a.gemeente_code, traject_type=a.traject_type,
        ggz_kvk_nummer=a.ggz_kvk_nummer,
        beschikkingen=[_besluit(x) for x in a.beschikkingen if x.soort == "doorzending"])


def _detail(a: Aanvraag, principal: Principal, nu: datetime) -> AanvraagDetail:
    if doorgezonden_door(principal, a) and not may_read(principal, a):
        return _doorzendingsrecord(a)
    b = a.besluit
    return AanvraagDetail(
        id=a.id, status=a.status, client_referentie=a.client_referentie if _owner(a, principal) else None,
        aanvraagdatum=a.aanvraagdatum, gewenste_startdatum=a.gewenste_startdatum, ontvangen_op=a.ontvangen_op,
        volledig_ontvangen_op=a.volledig_ontvangen_op, aangevuld_op=a.aangevuld_op, ingetrokken_op=a.ingetrokken_op,
        gemeente_code=a.gemeente_code, woongemeente_code=a.woongemeente_code, doorgezonden_van=a.doorgezonden_van,
        traject_type=a.traject_type, ggz_kvk_nummer=a.ggz_kvk_nummer,
        herstel=HerstelView(ontbrekend=a.herstel.ontbrekend, uiterlijk=a.herstel.uiterlijk) if a.herstel else None,
        beslistermijn=_beslistermijn(a, nu), traject=_traject(a),
        besluit=_besluit(b) if b else None,
        vaststelling=_besluit(a.vaststelling) if a.vaststelling else None,
        beschikkingen=[_besluit(x) for x in a.beschikkingen],
        verlengingsverzoeken=[_verzoek(v) for v in a.verlengingsverzoeken],
        stopbericht=StopberichtView(einddatum=a.stopbericht.einddatum, gemeld_op=a.stopbericht.gemeld_op)
        if a.stopbericht else None,
        eindverslag_document_id=a.eindverslag_document_id,
        documenten=[_document(d) for d in a.documenten],
    )
