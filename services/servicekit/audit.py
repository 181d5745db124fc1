"""Logboek dataverwerkingen: who read or changed which application data, when, and with what outcome.

Every HTTP request of a person (a bearer token; the services' own AMQP traffic is no person) to a route that
serves or changes personal data leaves one record in the ``logboek`` collection of the service's own database:
- who: ``subject``, ``org_type``, ``org`` from the token;
- what: ``actie`` (read, list, create, update, upload, download), ``resource_type`` and ``resource_id``
  (an application, case or letter id; never a BSN or a name), ``onderdeel`` (a document or task of it);
- when: ``tijdstip`` (UTC), and ``trace_id``, the same as the response's ``X-Trace-Id``;
- outcome: the HTTP ``status`` (a refused attempt, 403 or 404, is recorded too).

A list request is one record with the ids it returned (``resource_ids``, at most ``MAX_IDS``), their number and
the filter it used, so "who saw application X" also finds the lists X was in.

The log is append-only: this module only inserts, and nothing in ipsflow updates or deletes a record.

A record that cannot be written fails the request: the answer is 503 problem+json instead of the data, and an
error is logged (``logboek.schrijven_mislukt``). Data is never handed out unrecorded. For a change the effect may
already be stored when the write fails; the caller repeats the request (with its Idempotency-Key it gets the same
result, and the record is written then).

Routes declare themselves with ``dependencies=[verwerking("read", "aanvraag", "aanvraag_id")]``; list routes
add the ids they return with ``noteer(request, ids=...)``. ``install_logboek`` adds the middleware that writes
the record once the status is known, and ``GET /api/v1/logboek`` for functioneel beheer.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, FastAPI, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field
from pydantic.alias_generators import to_camel
from pymongo import DESCENDING
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, DuplicateKeyError
from starlette.types import Message, Receive, Scope, Send

from servicekit.asgi import HttpMiddleware
from servicekit.auth import Principal, current_principal, forbid
from servicekit.http import API_PREFIX, problem, request_trace_id
from servicekit.logging import get_logger
from servicekit.personal_data import holds_bsn_like_number

log = get_logger(__name__)

COLLECTION = "logboek"
STATE_KEY = "ipsflow_verwerking"
#: A list record names at most this many ids (a page is at most 200 rows on every API; more is counted only).
MAX_IDS = 500
Actie = Literal["read", "list", "create", "update", "upload", "download"]
ACTIES: tuple[str, ...] = ("read", "list", "create", "update", "upload", "download")
_NIET_IN_FILTER = frozenset({"limit", "offset"})
# A lost connection to the database: the record is tried again after these pauses (seconds), ~1.5 s in all.
LOGBOEK_RETRY_PAUSES = (0.1, 0.4, 1.0)
# The declaration of the request being handled, for ``noteer`` deep in a route's helpers. The dependency runs in
# the request's own task (uvicorn starts one per request), so it never leaks into another request.
_HUIDIGE: ContextVar[Verwerking | None] = ContextVar("ipsflow_verwerking", default=None)


@dataclass
class Verwerking:
    """One request's processing of personal data, filled in while the request runs."""

    logboek: Logboek
    principal: Principal
    actie: str
    resource_type: str
    resource_id: str | None
    trace_id: str
    methode: str
    route: str
    onderdeel: str | None = None
    ids: list[str] | None = None
    aantal: int | None = None
    filter: dict[str, str] = field(default_factory=dict)

    def regel(self, status: int, service: str) -> dict[str, Any]:
        return {
            "_id": uuid.uuid4().hex, "tijdstip": datetime.now(UTC), "service": service,
            "subject": self.principal.subject, "org_type": self.principal.org_type, "org": self.principal.org,
            "actie": self.actie, "resource_type": self.resource_type, "resource_id": self.resource_id,
            "onderdeel": self.onderdeel, "resource_ids": self.ids[:MAX_IDS] if self.ids is not None else None,
            "aantal": self.aantal, "filter": self.filter or None, "trace_id": self.trace_id, "status": status,
            "methode": self.methode, "route": self.route,
        }


class Logboek:
    """The ``logboek`` collection of one service's database. Insert and query only: there is no update or delete."""

    def __init__(self, db: AsyncDatabase[dict[str, Any]], service: str) -> None:
        self.collection = db[COLLECTION]
        self.service = service

    async def vastleggen(self, verwerking: Verwerking, status: int) -> None:
        """Insert the record; a lost connection is tried again with the same ``_id`` (the insert may have gone
        through and only its answer been lost: then the retry meets its own record). Only when every try failed
        does the caller refuse the response."""
        regel = verwerking.regel(status, self.service)
        for attempt, pause in enumerate((*LOGBOEK_RETRY_PAUSES, None)):
            try:
                await self.collection.insert_one(regel)
                return
            except DuplicateKeyError:
                if attempt:  # an earlier try of this very record went through
                    return
                raise
            except ConnectionFailure:
                if pause is None:
                    raise
                await asyncio.sleep(pause)

    async def zoeken(self, *, subject: str | None = None, organisatie: str | None = None,
                     resource_id: str | None = None, actie: str | None = None, van: datetime | None = None,
                     tot: datetime | None = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        """Records matching every given filter, newest first. ``resource_id`` also finds the lists it was in."""
        query: dict[str, Any] = {}
        if subject:
            query["subject"] = subject
        if organisatie:
            query["org"] = organisatie
        if actie:
            query["actie"] = actie
        if resource_id:
            query["$or"] = [{"resource_id": resource_id}, {"resource_ids": resource_id}]
        if van or tot:
            query["tijdstip"] = {**({"$gte": van} if van else {}), **({"$lt": tot} if tot else {})}
        cursor = self.collection.find(query).sort([("tijdstip", DESCENDING), ("_id", DESCENDING)])
        return await cursor.skip(offset).limit(limit).to_list(limit)


def verwerking(actie: Actie, resource_type: str, id_param: str | None = None,
               onderdeel_param: str | None = None) -> Any:
    """A route dependency: this route processes personal data; record it in the service's logboek.

    ``id_param`` names the path parameter that holds the resource id, ``onderdeel_param`` the one of a part of
    it (a document). The caller must be authenticated: without a valid token nothing is recorded (no person).
    """

    async def declare(request: Request, principal: Annotated[Principal, Depends(current_principal)]) -> Verwerking:
        params = request.path_params
        route = getattr(request.scope.get("route"), "path", request.url.path)
        found = Verwerking(
            logboek=request.app.state.logboek, principal=principal, actie=actie, resource_type=resource_type,
            resource_id=_id(params[id_param]) if id_param and id_param in params else None,
            onderdeel=_id(params[onderdeel_param]) if onderdeel_param and onderdeel_param in params else None,
            trace_id=request_trace_id(request), methode=request.method, route=_id(route),
            filter={k: _filterwaarde(v) for k, v in request.query_params.items() if k not in _NIET_IN_FILTER}
            if actie == "list" else {})
        request.scope.setdefault("state", {})[STATE_KEY] = found
        _HUIDIGE.set(found)
        return found

    return Depends(declare)


def _filterwaarde(value: str) -> str:
    # A filter value is an id or a code; should someone type a BSN into one, it does not reach the log.
    return "[weggelaten]" if holds_bsn_like_number(value) else value[:100]


def _id(value: Any) -> str:
    # Ids come from the URL: a BSN typed into one (GET /aanvragen/<bsn>) is left out of the log as well.
    text = str(value)
    return "[weggelaten]" if holds_bsn_like_number(text) else text[:200]


def noteer(request: Request | None = None, *, resource_type: str | None = None, resource_id: str | None = None,
           onderdeel: str | None = None, ids: Sequence[str] | None = None, aantal: int | None = None) -> None:
    """Complete the record of this request once the route knows more (a new id, the ids a list returned).
    Without ``request``: the request being handled in this task."""
    found = request.scope.get("state", {}).get(STATE_KEY) if request is not None else _HUIDIGE.get()
    if not isinstance(found, Verwerking):
        return
    if resource_type is not None:
        found.resource_type = resource_type
    if resource_id is not None:
        found.resource_id = _id(resource_id)
    if onderdeel is not None:
        found.onderdeel = _id(onderdeel)
    if ids is not None:
        found.ids = list(dict.fromkeys(_id(i) for i in ids))
        found.aantal = len(found.ids)
    if aantal is not None:
        found.aantal = aantal


class LogboekMiddleware(HttpMiddleware):
    """Writes the record of a declared request when its response starts (the status is known, nothing is sent
    yet); a failed write turns the response into 503 problem+json, so nothing leaves unrecorded."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        replaced = False

        async def send_recorded(message: Message) -> None:
            nonlocal replaced
            if message["type"] == "http.response.start":
                found = scope.get("state", {}).get(STATE_KEY)
                if isinstance(found, Verwerking):
                    try:
                        await found.logboek.vastleggen(found, int(message["status"]))
                    except Exception as exc:
                        log.error("logboek.schrijven_mislukt", actie=found.actie, resource_type=found.resource_type,
                                  trace_id=found.trace_id, status=message["status"], fout=type(exc).__name__)
                        replaced = True
                        await _unavailable(found.trace_id)(scope, receive, send)
                        return
            elif replaced:
                return
            await send(message)

        await self.app(scope, receive, send_recorded)


def _unavailable(trace_id: str) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    return problem(503, "Niet beschikbaar",
                   "Het logboek dataverwerkingen kan dit verzoek nu niet vastleggen; probeer het later opnieuw.",
                   type_="https://ipsflow.nl/problems/logboek-niet-beschikbaar", traceId=trace_id,
                   headers={"X-Trace-Id": trace_id, "Retry-After": "5"})


class _Out(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)


class LogboekRegel(_Out):
    id: str
    tijdstip: datetime
    service: str
    subject: str
    org_type: str
    organisatie: str
    actie: str
    resource_type: str
    resource_id: str | None = None
    onderdeel: str | None = None
    resource_ids: list[str] | None = Field(default=None, description="Bij een lijst: de ids die zij teruggaf.")
    aantal: int | None = None
    filter: dict[str, str] | None = None
    trace_id: str = Field(description="Gelijk aan de X-Trace-Id van het antwoord op het verzoek.")
    status: int = Field(description="De HTTP-status van het antwoord.")
    methode: str
    route: str


class LogboekPagina(_Out):
    items: list[LogboekRegel]
    limit: int
    offset: int


def _regel(doc: dict[str, Any]) -> LogboekRegel:
    return LogboekRegel(
        id=doc["_id"], tijdstip=doc["tijdstip"], service=doc["service"], subject=doc["subject"],
        org_type=doc["org_type"], organisatie=doc["org"], actie=doc["actie"], resource_type=doc["resource_type"],
        resource_id=doc.get("resource_id"), onderdeel=doc.get("onderdeel"), resource_ids=doc.get("resource_ids"),
        aantal=doc.get("aantal"), filter=doc.get("filter"), trace_id=doc["trace_id"], status=doc["status"],
        methode=doc["methode"], route=doc["route"])


_PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Ongeldige filter (problem+json)"}, 401: {"description": "Geen of ongeldig token"},
    403: {"description": "Alleen functioneel beheer"}, 503: {"description": "Logboek niet beschikbaar"}}
Tekst = Annotated[str | None, Query(max_length=200)]
_ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")


def _iso_moment(value: object) -> object:
    # Pydantic also reads a number as a Unix timestamp ("0.0" -> 1970); the schema promises an ISO 8601 date-time.
    if isinstance(value, str) and not _ISO_MOMENT.match(value):
        raise ValueError("geen ISO 8601-tijdstip (bijvoorbeeld 2026-03-03T09:00:00+01:00)")
    return value


Moment = Annotated[datetime | None, BeforeValidator(_iso_moment)]


def install_logboek(app: FastAPI, logboek: Logboek) -> None:
    """Record declared requests in ``logboek`` and serve ``GET /api/v1/logboek`` (functioneel beheer only)."""
    app.state.logboek = logboek
    app.add_middleware(LogboekMiddleware)

    @app.get(f"{API_PREFIX}/logboek", response_model=LogboekPagina, response_model_by_alias=True,
             response_model_exclude_none=True, tags=["logboek"], responses=_PROBLEMS)
    async def logboek_lezen(
            request: Request, gelezen: Annotated[Verwerking, verwerking("list", "logboek")],
            subject: Tekst = None, organisatie: Tekst = None,
            resource_id: Annotated[str | None, Query(alias="resourceId", max_length=200)] = None,
            actie: Annotated[Actie | None, Query()] = None,
            van: Annotated[Moment, Query(description="Vanaf dit tijdstip (ISO 8601, met tijdzone).")] = None,
            tot: Annotated[Moment, Query(description="Tot dit tijdstip (ISO 8601, met tijdzone).")] = None,
            limit: Annotated[int, Query(ge=1, le=200)] = 50,
            offset: Annotated[int, Query(ge=0, le=100_000)] = 0) -> LogboekPagina | JSONResponse:
        """Logboek dataverwerkingen van deze service: wie welke gegevens las of wijzigde, nieuwste eerst."""
        if gelezen.principal.org_type != "beheer":
            raise forbid("Alleen functioneel beheer mag het logboek dataverwerkingen inzien.")
        for moment in (van, tot):
            if moment is not None and moment.tzinfo is None:
                return problem(400, "Ongeldige invoer", "Geef tijdstippen met tijdzone.",
                               type_="https://ipsflow.nl/problems/ongeldige-invoer",
                               invalid_params=[{"name": "van" if moment is van else "tot", "code": "timezone",
                                                "reason": "tijdzone ontbreekt"}])
        docs = await logboek.zoeken(subject=subject, organisatie=organisatie, resource_id=resource_id, actie=actie,
                                    van=van, tot=tot, limit=limit, offset=offset)
        noteer(request, aantal=len(docs))  # reading the log is recorded too, by count: its rows are no application
        return LogboekPagina(items=[_regel(d) for d in docs], limit=limit, offset=offset)
