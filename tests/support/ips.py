"""The IPS system under test: intake, grants and the process engine as real processes, driven over HTTP.

Used by the acceptance tests of the regulation and by the benchmark. Every call goes through the public APIs
with bearer tokens of the role that would make it in real life.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from tests.support.tokens import bearer

GGZ_A, GGZ_B = "12345678", "87654321"
ROERMOND, WEERT = "0957", "0988"
MANDATES = ("toekenning", "afwijzing", "verdaging", "niet_behandelen")
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"

_counter = itertools.count(1)
# Pinned inside ips-gemeenten-2023's window, so the tests do not change meaning when the calendar moves on. The
# budget period follows the receipt date and falls back to this date when the receipt lies outside every period.
AANVRAAGDATUM = "2026-06-01"
PERIODE = "2026"


def ggz(kvk: str = GGZ_A) -> dict[str, str]:
    return bearer(f"medewerker-{kvk}", "ggz", kvk, "aanvrager")


def official(gemeente: str = ROERMOND, mandates: tuple[str, ...] = MANDATES, name: str = "") -> dict[str, str]:
    return bearer(f"behandelaar-{gemeente}", "gemeente", gemeente, "behandelaar",
                  name=name or f"A. de Vries, beleidsmedewerker werk en inkomen ({gemeente})", mandates=mandates)


UWV = bearer("budgetbeheer", "uwv", "UWV", "budgetbeheerder")
#: Functional admin of a test environment: moves the rehearsal clock (servicekit/clock.py).
KLOKBEHEER = bearer("klokbeheer", "beheer", "ipsflow", "functioneel-beheerder")
#: Rehearsal clock on in every service: the system under test is a test environment (the engine broadcasts it).
ADJUSTABLE = {"IPSFLOW_ADJUSTABLE_CLOCK": "true"}
ADMIN = bearer("beheerder", "beheer", "ipsflow", "procesbeheerder", "functioneel-beheerder")  # moves the clock


def application(**overrides: Any) -> dict[str, Any]:
    """A complete application of GGZ_A for a client in Roermond, addressed to Roermond."""
    n = next(_counter)
    body: dict[str, Any] = {
        "clientReferentie": f"KND-{n:05d}", "bsn": "111222333", "gemeenteCode": ROERMOND,
        "woongemeenteCode": ROERMOND, "trajectType": "CMD", "aanvraagdatum": AANVRAAGDATUM,
        "gewensteStartdatum": "2026-07-01", "ggzKvkNummer": GGZ_A,
        "ondertekening": {"kandidaat": True, "ggzInstelling": True},
        "modelgetrouwheid": {"certificaatnummer": "PHR-2025-0042", "geldigTot": "2028-01-01"},
        "doelgroep": {"uitkering": "bijstand", "wilBetaaldWerk": True, "andereReintegratie": False},
    }
    body.update(overrides)
    return body


def start_ips(service: Any, smtp_port: int | None = None, grants_env: dict[str, str] | None = None,
              **engine_env: str) -> IpsSystem:
    """Every service of the regulation as a real process (the `service` fixture), all on one adjustable clock.

    Without ``smtp_port`` notifications points at a port where nothing listens: its mails stay queued
    (retried), which does not hold up the process.
    """
    grants = service("grants", **ADJUSTABLE, **(grants_env or {})).start()
    intake = service("intake", **ADJUSTABLE).start()
    payments = service("payments", **ADJUSTABLE).start()
    notifications = service("notifications", IPSFLOW_SMTP_HOST="127.0.0.1",
                            IPSFLOW_SMTP_PORT=str(smtp_port or 9), **ADJUSTABLE).start()
    engine = service("process_engine", IPSFLOW_TIMER_SCAN_SECONDS="1", **{**ADJUSTABLE, **engine_env}).start()
    return IpsSystem(intake=intake.url, grants=grants.url, engine=engine.url, payments=payments.url,
                     notifications=notifications.url)


@dataclass
class IpsSystem:
    intake: str
    grants: str
    engine: str
    payments: str = ""
    notifications: str = ""
    client: httpx.AsyncClient = field(default_factory=lambda: httpx.AsyncClient(timeout=30))

    async def submit(self, body: dict[str, Any], token: dict[str, str] | None = None) -> str:
        response = await self.client.post(f"{self.intake}/api/v1/aanvragen", json=body,
                                          headers=token or ggz(body.get("ggzKvkNummer", GGZ_A)))
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    async def aanvraag(self, aanvraag_id: str, token: dict[str, str] | None = None) -> dict[str, Any]:
        response = await self.client.get(f"{self.intake}/api/v1/aanvragen/{aanvraag_id}", headers=token or ggz())
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_status(self, aanvraag_id: str, *statuses: str, token: dict[str, str] | None = None,
                          timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            current = await self.aanvraag(aanvraag_id, token)
            if current["status"] in statuses:
                return current
            if time.monotonic() > deadline:
                raise AssertionError(f"aanvraag {aanvraag_id} stayed {current['status']}, wanted {statuses}")
            await asyncio.sleep(0.2)

    async def case(self, case_id: str) -> dict[str, Any]:
        response = await self.client.get(f"{self.engine}/api/v1/zaken/{case_id}", headers=ADMIN)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def wait_case(self, case_id: str, check: Any, what: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            response = await self.client.get(f"{self.engine}/api/v1/zaken/{case_id}", headers=ADMIN)
            if response.status_code == 200 and check(response.json()):
                return dict(response.json())
            if time.monotonic() > deadline:
                raise AssertionError(f"case {case_id}: timed out waiting for {what}: "
                                     f"{response.status_code} {response.text[:2000]}")
            await asyncio.sleep(0.2)

    async def tasks(self, token: dict[str, str]) -> list[dict[str, Any]]:
        """The whole work list, page after page (the engine pages it: Link rel="next")."""
        found: list[dict[str, Any]] = []
        url: str | None = f"{self.engine}/api/v1/taken"
        while url is not None:
            response = await self.client.get(url, headers=token)
            assert response.status_code == 200, response.text
            found.extend(response.json())
            url = response.links.get("next", {}).get("url")
        return found

    async def wait_task(self, case_id: str, token: dict[str, str], timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            mine = [t for t in await self.tasks(token) if t["zaakId"] == case_id]
            if mine:
                return mine[0]
            if time.monotonic() > deadline:
                case = await self.case(case_id)
                raise AssertionError(f"no task for {case_id}: active {case['actieveElementen']}, "
                                     f"incidents {case['incidenten']}, journal {case['journaal'][-5:]}")
            await asyncio.sleep(0.2)

    async def decide(self, task_id: str, token: dict[str, str], **form: Any) -> httpx.Response:
        return await self.client.post(f"{self.engine}/api/v1/taken/{task_id}/afronden",
                                      json={"gegevens": form}, headers=token)

    async def set_clock(self, moment: datetime, timeout: float = 30) -> None:
        """Move the rehearsal clock (through the engine, which tells every service) and wait, as
        ``ipsflow klok set`` does, until every service reports the new time."""
        response = await self.client.put(f"{self.engine}/api/v1/beheer/klok", json={"nu": moment.isoformat()},
                                         headers=KLOKBEHEER)
        assert response.status_code == 200, response.text
        offset = response.json()["verschuivingSeconden"]
        deadline = time.monotonic() + timeout
        while True:
            clocks = await self.clocks()
            behind = {name: c.get("verschuivingSeconden") for name, c in clocks.items()
                      if abs(float(c.get("verschuivingSeconden") or 0) - offset) > 1}
            if not behind:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"services not on the new clock after {timeout}s: {behind}, engine {offset}")
            await asyncio.sleep(0.1)

    async def clocks(self) -> dict[str, dict[str, Any]]:
        """``GET /api/v1/beheer/klok`` of every service."""
        found = {}
        for name, url in self.urls().items():
            response = await self.client.get(f"{url}/api/v1/beheer/klok", headers=KLOKBEHEER)
            assert response.status_code == 200, (name, response.text)
            found[name] = dict(response.json())
        return found

    def urls(self) -> dict[str, str]:
        return {name: url for name, url in (("intake", self.intake), ("grants", self.grants),
                                            ("payments", self.payments), ("notifications", self.notifications),
                                            ("process_engine", self.engine)) if url}

    async def budgets(self) -> list[dict[str, Any]]:
        response = await self.client.get(f"{self.grants}/api/v1/budgetten", headers=UWV)
        assert response.status_code == 200, response.text
        return list(response.json())

    async def set_ceiling(self, regeling: str, periode: str, cents: int) -> dict[str, Any]:
        response = await self.client.put(f"{self.grants}/api/v1/budgetten/{regeling}/{periode}",
                                         json={"plafondCents": cents}, headers=UWV)
        assert response.status_code == 200, response.text
        return dict(response.json())

    async def document_text(self, aanvraag_id: str, document_id: str, token: dict[str, str] | None = None) -> str:
        response = await self.client.get(f"{self.intake}/api/v1/aanvragen/{aanvraag_id}/documenten/{document_id}",
                                         headers=token or ggz())
        assert response.status_code == 200, response.text
        return response.text

    async def letters(self, aanvraag_id: str, soort: str) -> list[dict[str, Any]]:
        """The letters of kind ``soort`` that intake lists for the application (by reference, oldest first)."""
        return [b for b in (await self.aanvraag(aanvraag_id))["beschikkingen"] if b["soort"] == soort]

    async def wait_letter(self, aanvraag_id: str, soort: str, count: int = 1, timeout: float = 90) -> dict[str, Any]:
        """The ``count``-th letter of kind ``soort`` listed for the ggz (waits for it)."""
        deadline = time.monotonic() + timeout
        while True:
            found = await self.letters(aanvraag_id, soort)
            if len(found) >= count:
                return found[count - 1]
            if time.monotonic() > deadline:
                case = await self.case(aanvraag_id)
                raise AssertionError(f"{aanvraag_id}: {len(found)} '{soort}' letters, wanted {count}; "
                                     f"active {case['actieveElementen']}, incidents {case['incidenten']}")
            await asyncio.sleep(0.25)

    async def letter_text(self, beschikking_id: str, token: dict[str, str] | None = None,
                          timeout: float = 60) -> str:
        """The text of a beschikking's letter from its one copy at notifications (``GET /brieven/{id}``); waits
        for notifications to have written it (intake may list the letter a moment earlier)."""
        assert beschikking_id, "a letter is referred to by its beschikking id"
        deadline = time.monotonic() + timeout
        while True:
            response = await self.client.get(f"{self.notifications}/api/v1/brieven/{beschikking_id}",
                                             headers=token or ggz())
            if response.status_code == 200:
                return str(response.json()["tekst"])
            assert response.status_code == 404 and time.monotonic() < deadline, (response.status_code,
                                                                                   response.text)
            await asyncio.sleep(0.25)

    async def close(self) -> None:
        await self.client.aclose()
