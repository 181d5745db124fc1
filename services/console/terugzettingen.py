"""Replaying a whole parking lot runs in the console's background (at most ``console_replay_per_second`` messages a
second, up to ``console_replay_max``: minutes for a large lot). Its state is a document here, so that the page of
the replay shows the progress from any console process, and the outcome afterwards; a replay whose process ended
before it did (no progress for ``STIL``) shows as interrupted: what it had not replayed is still parked."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from servicekit.store import Document

#: No progress for this long while "bezig": the process that ran it has gone.
STIL = timedelta(seconds=30)
#: Replayed messages kept on the replay's page (all are in the audit log).
GETOOND = 1000


class Terugzettingen:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.collection = db["terugzettingen"]

    async def begin(self, wachtrij: str, door: str, gevraagd: int | None) -> str:
        """A replay asked for (``gevraagd``: at most so many; ``None``: all), as 'bezig'; its id."""
        taak = secrets.token_urlsafe(12)
        nu = datetime.now(UTC)
        await self.collection.insert_one({"_id": taak, "wachtrij": wachtrij, "door": door, "gevraagd": gevraagd,
                                          "totaal": None, "gedaan": 0, "status": "bezig", "berichten": [],
                                          "fout": "", "op": nu, "bijgewerkt": nu})
        return taak

    async def voortgang(self, taak: str, gedaan: int, totaal: int | None) -> None:
        await self.collection.update_one({"_id": taak}, {"$set": {"gedaan": gedaan, "totaal": totaal,
                                                                  "bijgewerkt": datetime.now(UTC)}})

    async def einde(self, taak: str, berichten: list[dict[str, Any]], totaal: int | None, fout: str) -> None:
        kort = [{k: b.get(k) for k in ("id", "type", "zaak", "reden")} for b in berichten[:GETOOND]]
        await self.collection.update_one({"_id": taak}, {"$set": {
            "status": "afgebroken" if fout else "klaar", "gedaan": len(berichten), "totaal": totaal,
            "berichten": kort, "fout": fout, "bijgewerkt": datetime.now(UTC)}})

    async def get(self, taak: str) -> Document | None:
        doc = await self.collection.find_one({"_id": taak})
        return None if doc is None else _stand(doc)

    async def recent(self, wachtrij: str, aantal: int = 5) -> list[Document]:
        """The latest replays of one parking lot (without their messages), newest first, for the lot's page."""
        docs = await self.collection.find({"wachtrij": wachtrij}, {"berichten": 0}).sort("op", -1).limit(
            aantal).to_list(aantal)
        return [_stand(d) for d in docs]


def _stand(doc: Document) -> Document:
    bijgewerkt = doc["bijgewerkt"] if doc["bijgewerkt"].tzinfo else doc["bijgewerkt"].replace(tzinfo=UTC)
    if doc["status"] == "bezig" and datetime.now(UTC) - bijgewerkt > STIL:
        doc["status"] = "onderbroken"
    return doc
