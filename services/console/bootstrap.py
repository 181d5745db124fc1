"""Composition root of the console: builds everything from settings; nothing connects at import."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from console.backends import Backends
from console.oidc import Oidc
from console.settings import ConsoleSettings
from console.terugzettingen import Terugzettingen
from servicekit.auth import Principal, TokenVerifier, token_verifier
from servicekit.store import Document, make_client


def _hash(session_id: str) -> str:
    # Stored hashed: whoever reads the database cannot take over a session from it.
    return hashlib.sha256(session_id.encode()).hexdigest()


@dataclass
class Session:
    id: str
    subject: str
    rollen: list[str]
    token: str
    csrf: str
    verloopt_op: datetime

    def mag(self, rol: str) -> bool:
        return rol in self.rollen


class Sessions:
    """The console's own sessions: the user's token stays here, the browser gets only a random id."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["sessions"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index("verloopt_op")

    async def create(self, principal: Principal, token: str, minutes: int, token_exp: datetime) -> tuple[str, Session]:
        session_id = secrets.token_urlsafe(32)
        session = Session(id=session_id, subject=principal.subject, rollen=sorted(principal.roles), token=token,
                          csrf=secrets.token_urlsafe(32),
                          verloopt_op=min(datetime.now(UTC) + timedelta(minutes=minutes), token_exp))
        await self.collection.insert_one({"_id": _hash(session_id), "subject": session.subject,
                                          "rollen": session.rollen, "token": token, "csrf": session.csrf,
                                          "verloopt_op": session.verloopt_op})
        return session_id, session

    async def get(self, session_id: str) -> Session | None:
        doc = await self.collection.find_one({"_id": _hash(session_id)})
        if doc is None:
            return None
        ends = doc["verloopt_op"] if doc["verloopt_op"].tzinfo else doc["verloopt_op"].replace(tzinfo=UTC)
        if ends <= datetime.now(UTC):
            await self.collection.delete_one({"_id": doc["_id"]})
            return None
        return Session(id=session_id, subject=doc["subject"], rollen=doc["rollen"], token=doc["token"],
                       csrf=doc["csrf"], verloopt_op=ends)

    async def end(self, session_id: str) -> None:
        await self.collection.delete_one({"_id": _hash(session_id)})


class Formulieren:
    """Forms that act (replay, purge) carry a one-time value, so that sending one again (a page refreshed after the
    answer, a double click) does nothing a second time. A used value is kept for a day."""

    BEWAAR = timedelta(days=1)

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["formulieren"]

    @staticmethod
    def nieuw() -> str:
        return secrets.token_urlsafe(16)

    async def eerste_keer(self, waarde: str) -> bool:
        """True the first time this form's value is sent, False every time after."""
        nu = datetime.now(UTC)
        await self.collection.delete_many({"op": {"$lt": nu - self.BEWAAR}})  # a day's actions: a small collection
        try:
            await self.collection.insert_one({"_id": hashlib.sha256(waarde.encode()).hexdigest(), "op": nu})
        except DuplicateKeyError:
            return False
        return True


class AuditLog:
    """Every console action: who, what, when, on which case, and the outcome (also written to the service log)."""

    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["audit"]

    async def record(self, wie: str, actie: str, zaak: str, uitkomst: str, details: dict[str, Any]) -> None:
        await self.collection.insert_one({"wie": wie, "actie": actie, "zaak": zaak, "uitkomst": uitkomst,
                                          "details": details, "op": datetime.now(UTC)})

    async def recent(self, limit: int = 200) -> list[Document]:
        return await self.collection.find({}, {"_id": 0}).sort("op", -1).limit(limit).to_list(limit)


@dataclass
class Console:
    settings: ConsoleSettings
    client: Any
    db: AsyncDatabase[Document]
    sessions: Sessions
    audit: AuditLog
    formulieren: Formulieren
    terugzettingen: Terugzettingen
    verifier: TokenVerifier
    backends: Backends
    oidc: Oidc
    taken: set[asyncio.Task[None]] = field(default_factory=set)

    def op_achtergrond(self, werk: Coroutine[Any, Any, None]) -> None:
        """Runs work after the answer (a replay of a whole parking lot), held until it ends."""
        taak = asyncio.create_task(werk)
        self.taken.add(taak)
        taak.add_done_callback(self.taken.discard)

    async def stop_achtergrond(self) -> None:
        for taak in self.taken:
            taak.cancel()
        await asyncio.gather(*self.taken, return_exceptions=True)


def bootstrap(settings: ConsoleSettings | None = None) -> Console:
    settings = settings or ConsoleSettings()
    client = make_client(settings)
    db = client[settings.database_name()]
    backends = Backends(settings)
    return Console(settings=settings, client=client, db=db, sessions=Sessions(db), audit=AuditLog(db),
                   formulieren=Formulieren(db), terugzettingen=Terugzettingen(db),
                   verifier=token_verifier(settings.environment), backends=backends,
                   oidc=Oidc(settings, db, backends.http))
