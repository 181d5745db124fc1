"""The dossier of a case records each ``ips.aanvraag.ingediend.v1`` once, without an upsert (issue 14, history).

FerretDB v1 scans the whole collection for an upsert filtered on more than the _id, and the FerretDB front checks
only plain updates by _id: with 22,000 dossiers the old ``{_id, applied: {$ne}}`` upsert held the front's write lock
for 1.9 s per case in issue 14's history run. Real FerretDB; the statements counted with a command listener.
"""

from __future__ import annotations

from typing import Any

import pytest
from pymongo import monitoring

from notifications.handlers import NotificationHandlers
from servicekit.envelope import new_event
from tests.conftest import StartedListener, listened_client


class Statements(StartedListener):
    def __init__(self) -> None:
        self.seen: list[tuple[str, bool]] = []  # (command, upsert)

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in ("insert", "update"):
            upsert = any(u.get("upsert") for u in event.command.get("updates") or [])
            self.seen.append((event.command_name, upsert))


@pytest.fixture
async def counted(infra: Any) -> Any:
    statements = Statements()
    async with listened_client(infra, statements) as client:
        yield client, statements


def _ingediend(case_id: str, event_id: str) -> Any:
    return new_event("ips.aanvraag.ingediend.v1", service="intake", subject=case_id,
                     data={"gemeenteCode": "0363", "trajectType": "CMD"}, event_id=event_id)


async def test_a_case_is_recorded_once_per_message_with_an_insert_then_updates_and_never_an_upsert(
        counted: Any, namespace: str) -> None:
    client, statements = counted
    db = client[f"{namespace}dossiers".replace(".", "_")]
    handlers = NotificationHandlers(db)
    await db.dossiers.insert_one({"_id": "andere-zaak", "applied": ["x"], "berichten": 1})  # not alone in it
    statements.seen.clear()

    await handlers.aanvraag_ingediend(_ingediend("zaak-1", "m-1"))
    assert statements.seen == [("insert", False)]  # a new case: one insert
    await handlers.aanvraag_ingediend(_ingediend("zaak-1", "m-1"))  # redelivered
    await handlers.aanvraag_ingediend(_ingediend("zaak-1", "m-2"))  # a second message of the case

    dossier = await db.dossiers.find_one({"_id": "zaak-1"})
    assert dossier is not None
    assert dossier["applied"] == ["m-1", "m-2"] and dossier["berichten"] == 2
    assert dossier["gemeente_code"] == "0363" and dossier["laatste_bericht"] == "ips.aanvraag.ingediend.v1"
    assert not any(upsert for _, upsert in statements.seen), statements.seen
