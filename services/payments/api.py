"""HTTP edge of payments: SEPA batches and orders for UWV's payment officers, the ledger per ggz.

The only module that knows HTTP. Every endpoint needs a bearer token: UWV with the role ``betaalbeheerder``
builds and books batches; it and ``beheer`` read everything; a ggz may read its own orders and ledger.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, Path, Query, Request, Response

from payments.bootstrap import Payments, PaymentsSettings, bootstrap
from payments.domain import OPEN, VERJAARD, today_in_amsterdam, uitvoerdatum_toegestaan, verjaard
from payments.handlers import BatchConflict, NietsTeBetalen
from payments.messages import (
    KVK,
    BatchAanmaken,
    BatchView,
    GrootboekView,
    OpdrachtView,
    TerugvorderingView,
)
from payments.sepa import SepaError
from servicekit.auth import Principal, PrincipalDep, forbid
from servicekit.bootstrap import service_app
from servicekit.http import API_PREFIX, problem
from servicekit.store import Document

AANDELEN = ("totaal", "rijk", "gemeente")
KOLOMMEN = ("besteld_cents", "geannuleerd_cents", "verrekend_cents", "betaald_cents", "teruggevorderd_cents")


def get_payments(request: Request) -> Payments:
    return request.app.state.payments  # type: ignore[no-any-return]


PaymentsDep = Annotated[Payments, Depends(get_payments)]
BatchId = Annotated[str, Path(max_length=100)]
KvkQuery = Annotated[str | None, Query(pattern=KVK, description="KvK-nummer van de ggz")]


def _betaalbeheer(principal: Principal) -> None:
    """Reading batches, orders and ledgers: UWV's betaalbeheerders, and beheer (org_type alone)."""
    if principal.org_type == "beheer" or (principal.org_type == "uwv" and principal.has_role("betaalbeheerder")):
        return
    raise forbid("Alleen UWV-betaalbeheerders en beheer.")


def _betalen(principal: Principal) -> None:
    """Building a batch and marking it sent or booked moves money: UWV's betaalbeheerders only. Functioneel
    beheer runs the system, not the payments (four eyes between who administers and who pays)."""
    if principal.org_type == "uwv" and principal.has_role("betaalbeheerder"):
        return
    raise forbid("Alleen een betaalbeheerder van UWV mag betaalbatches aanmaken, verzenden of boeken.")


def _mag_ggz_lezen(principal: Principal, kvk: str) -> None:
    if principal.org_type == "ggz" and principal.org == kvk:
        return
    _betaalbeheer(principal)


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(p.capitalize() for p in rest)


def _batch(doc: Document) -> dict[str, Any]:
    return {"batchId": doc["_id"], "status": doc["status"], "aantal": doc["aantal"],
            "controlSumCents": doc["control_sum_cents"], "opdrachten": doc["opdrachten"],
            "uitvoerdatum": doc["uitvoerdatum"], "aangemaaktOp": doc["aangemaakt_op"].isoformat(),
            "verzondenOp": doc["verzonden_op"].isoformat() if doc.get("verzonden_op") else None,
            "geboektOp": doc["geboekt_op"].isoformat() if doc.get("geboekt_op") else None}


def _opdracht(o: Document) -> dict[str, Any]:
    return {"opdrachtId": o["_id"], "aanvraagId": o["aanvraag_id"], "beschikkingId": o["beschikking_id"],
            "ggzKvkNummer": o["ggz_kvk_nummer"], "gemeenteCode": o["gemeente_code"], "regeling": o["regeling"],
            "moment": o["moment"], "bedragCents": o["bedrag_cents"], "verrekendCents": o["verrekend_cents"],
            "nettoCents": o["netto_cents"], "rijkCents": o["aandeel"]["rijk_cents"],
            "gemeenteCents": o["aandeel"]["gemeente_cents"], "status": o["status"], "batchId": o.get("batch_id")}


def _grootboek(kvk: str, doc: Document | None) -> dict[str, Any]:
    doc = doc or {}
    result: dict[str, Any] = {"ggzKvkNummer": kvk}
    for aandeel in AANDELEN:
        cols = doc.get(aandeel) or {}
        result[aandeel] = {_camel(k): int(cols.get(k, 0)) for k in KOLOMMEN}
    result["openTerugvorderingen"] = sorted((doc.get("open_terugvorderingen") or {}).keys())
    return result


def create(settings: PaymentsSettings | None = None) -> FastAPI:
    payments = bootstrap(settings)
    # No logboek dataverwerkingen: orders and ledgers name organisations and their IBANs, no person (README).
    app = service_app(payments.runtime, "ipsflow payments",
                      "Betaalopdrachten, SEPA-batches (pain.001), grootboek per ggz, terugvordering.", logboek=False,
                      on_start=[payments.repo.ensure_indexes])
    app.state.payments = payments
    h = payments.handlers

    @app.post(f"{API_PREFIX}/betaalbatches", status_code=201, tags=["betaalbatches"], response_model=BatchView,
              responses={409: {"description": "Geen betaalopdrachten gereed"},
                         422: {"description": "Idempotency-Key hergebruikt voor een ander verzoek"}})
    async def batch_aanmaken(principal: PrincipalDep, svc: PaymentsDep, response: Response,
                             idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
                             body: Annotated[BatchAanmaken | None, Body()] = None) -> Any:
        _betalen(principal)
        if not idempotency_key or not idempotency_key.strip():
            return problem(400, "Idempotency-Key ontbreekt", "Een batch aanmaken vraagt een Idempotency-Key.",
                           invalid_params=[{"name": "Idempotency-Key", "code": "missing", "reason": "is verplicht"}])
        verzoek = body or BatchAanmaken()
        vandaag = today_in_amsterdam(payments.runtime.clock())
        if verzoek.uitvoerdatum is not None and not uitvoerdatum_toegestaan(verzoek.uitvoerdatum, vandaag):
            return problem(400, "Ongeldige invoer", "De uitvoerdatum ligt tussen vandaag en een jaar vooruit.",
                           type_="https://ipsflow.nl/problems/ongeldige-invoer",
                           invalid_params=[{"name": "uitvoerdatum", "code": "range",
                                            "reason": "ligt niet tussen vandaag en een jaar vooruit"}])
        try:
            doc = await h.batch_aanmaken(idempotency_key.strip(), verzoek.max_opdrachten, verzoek.uitvoerdatum,
                                         payments.runtime.clock())
        except BatchConflict as exc:
            return problem(422, "Idempotency-Key hergebruikt", str(exc))
        except NietsTeBetalen as exc:
            return problem(409, "Niets te betalen", str(exc))
        except SepaError as exc:
            return problem(500, "Batch niet geldig", str(exc))
        response.headers["Location"] = f"{API_PREFIX}/betaalbatches/{doc['_id']}"
        return _batch(doc)

    @app.get(f"{API_PREFIX}/betaalbatches/{{batch_id}}", tags=["betaalbatches"], response_model=BatchView)
    async def batch_lezen(batch_id: BatchId, principal: PrincipalDep, svc: PaymentsDep) -> Any:
        _betaalbeheer(principal)
        doc = await svc.repo.batch(batch_id)
        if doc is None:
            return problem(404, "Niet gevonden", "Deze batch bestaat niet.")
        return _batch(doc)

    @app.get(f"{API_PREFIX}/betaalbatches/{{batch_id}}/pain001", tags=["betaalbatches"], response_class=Response,
             responses={200: {"description": "SEPA pain.001.001.03", "content": {"application/xml": {
                 "schema": {"type": "string"}}}}, 409: {"description": "De batch wordt nog opgebouwd"}})
    async def batch_xml(batch_id: BatchId, principal: PrincipalDep, svc: PaymentsDep) -> Any:
        _betaalbeheer(principal)
        doc = await svc.repo.batch(batch_id)
        if doc is None:
            return problem(404, "Niet gevonden", "Deze batch bestaat niet.")
        if not doc.get("pain001"):
            return problem(409, "Batch niet klaar", "De batch wordt nog opgebouwd; herhaal het aanmaken.")
        return Response(doc["pain001"].encode(), media_type="application/xml",
                        headers={"Content-Disposition": f'attachment; filename="pain001-{batch_id}.xml"'})

    async def _overgang(batch_id: str, principal: Principal, stap: Any) -> Any:
        _betalen(principal)
        try:
            return _batch(await stap(batch_id, payments.runtime.clock()))
        except LookupError:
            return problem(404, "Niet gevonden", "Deze batch bestaat niet.")
        except BatchConflict as exc:
            return problem(409, "Conflict", str(exc))

    @app.post(f"{API_PREFIX}/betaalbatches/{{batch_id}}/verzonden", tags=["betaalbatches"], response_model=BatchView,
              responses={409: {"description": "Past niet bij de status van de batch"}})
    async def batch_verzonden(batch_id: BatchId, principal: PrincipalDep, svc: PaymentsDep) -> Any:
        return await _overgang(batch_id, principal, svc.handlers.batch_verzonden)

    @app.post(f"{API_PREFIX}/betaalbatches/{{batch_id}}/geboekt", tags=["betaalbatches"], response_model=BatchView,
              responses={409: {"description": "Past niet bij de status van de batch"}})
    async def batch_geboekt(batch_id: BatchId, principal: PrincipalDep, svc: PaymentsDep) -> Any:
        return await _overgang(batch_id, principal, svc.handlers.batch_geboekt)

    @app.get(f"{API_PREFIX}/betaalopdrachten", tags=["betaalopdrachten"], response_model=list[OpdrachtView])
    async def opdrachten(principal: PrincipalDep, svc: PaymentsDep, ggz: KvkQuery = None,
                         status: Annotated[str | None, Query(max_length=50)] = None) -> Any:
        if principal.org_type == "ggz":
            ggz = ggz or principal.org
        if ggz is None:
            _betaalbeheer(principal)
        else:
            _mag_ggz_lezen(principal, ggz)
        query: dict[str, Any] = {}
        if ggz is not None:
            query["ggz_kvk_nummer"] = ggz
        if status is not None:
            query["status"] = status
        docs = await svc.repo.opdrachten.find(query).sort([("aangemaakt_op", 1), ("_id", 1)]).to_list(None)
        return [_opdracht(o) for o in docs]

    @app.get(f"{API_PREFIX}/terugvorderingen", tags=["terugvorderingen"], response_model=list[TerugvorderingView])
    async def terugvorderingen(principal: PrincipalDep, svc: PaymentsDep,
                               ggz: Annotated[str, Query(pattern=KVK, description="KvK-nummer")]) -> Any:
        """A ggz's recoveries; ``verjaard`` is decided for today (Europe/Amsterdam), past the 5-year bar."""
        _mag_ggz_lezen(principal, ggz)
        vandaag = today_in_amsterdam(payments.runtime.clock())
        docs = await svc.repo.terugvorderingen.find({"ggz_kvk_nummer": ggz}).sort("_id", 1).to_list(None)
        result = []
        for t in docs:
            status = t["status"]
            if status == OPEN and verjaard(date.fromisoformat(t["terugvorderen_uiterlijk"]), vandaag):
                status = VERJAARD
            result.append({"terugvorderingId": t["_id"], "aanvraagId": t["aanvraag_id"],
                           "bedragCents": t["bedrag_cents"], "openCents": t["open_cents"],
                           "verrekend": t.get("verrekeningen") or {}, "vaststellingsdatum": t["vaststellingsdatum"],
                           "terugvorderenUiterlijk": t["terugvorderen_uiterlijk"], "status": status})
        return result

    @app.get(f"{API_PREFIX}/grootboek/{{kvk}}", tags=["grootboek"], response_model=GrootboekView)
    async def grootboek(kvk: Annotated[str, Path(pattern=KVK)], principal: PrincipalDep, svc: PaymentsDep) -> Any:
        _mag_ggz_lezen(principal, kvk)
        return _grootboek(kvk, await svc.repo.grootboek_van(kvk))

    return app
