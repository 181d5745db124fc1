"""Composition root of payments: builds everything from settings; nothing is created at import."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from payments.handlers import PaymentsHandlers, Rekeningen
from payments.rekening import Rekening
from payments.repository import PaymentsRepository
from servicekit.bootstrap import Service, compose, consume
from servicekit.settings import ServiceSettings

QUEUE = "payments"
OPDRACHTEN_AANMAKEN = "ips.betaling.opdrachten_aanmaken.v1"
STOPBERICHT_DOORGEVEN = "ips.traject.stopbericht_doorgeven.v1"
VERREKENEN = "ips.vaststelling.verrekenen.v1"
REKENINGEN_FILE = Path(__file__).resolve().parent / "data" / "rekeningen.json"


class PaymentsSettings(ServiceSettings):
    service_name: str = "payments"
    http_port: int = 8003
    rekeningen_file: Path = REKENINGEN_FILE  # IPSFLOW_REKENINGEN_FILE


def load_rekeningen(path: Path) -> Rekeningen:
    """The bank accounts: UWV as the payer and one per ggz (KvK). An invalid ggz account is kept (its
    orders wait as 'rekening_ontbreekt'); an invalid payer account stops the service."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    debiteur = Rekening(**raw["debiteur"])
    if not debiteur.geldig:
        raise ValueError(f"{path}: de rekening van de betaler (debiteur) is ongeldig")
    ggz = {kvk: Rekening(naam=r.get("naam", ""), iban=r.get("iban", ""), bic=r.get("bic", ""))
           for kvk, r in (raw.get("ggz") or {}).items()}
    return Rekeningen(debiteur, ggz)


@dataclass
class Payments(Service[PaymentsSettings]):
    repo: PaymentsRepository
    handlers: PaymentsHandlers


def bootstrap(settings: PaymentsSettings | None = None) -> Payments:
    settings, runtime = compose(settings, PaymentsSettings)
    repo = PaymentsRepository(runtime.db)
    relay = runtime.add_relay([repo.zaken.collection])
    handlers = PaymentsHandlers(repo, load_rekeningen(settings.rekeningen_file), wake=relay.wake,
                                clock=runtime.clock)
    consume(runtime, QUEUE, {OPDRACHTEN_AANMAKEN: handlers.opdrachten_aanmaken,
                             STOPBERICHT_DOORGEVEN: handlers.stopbericht_doorgeven, VERREKENEN: handlers.verrekenen})
    return Payments(settings, runtime, repo, handlers)
