"""notifications as a real process with a capturing SMTP server (aiosmtpd): every beschikking gives exactly
one e-mail with the letter as PDF; with SMTP down the attempts are in the delivery log and the message goes
out once the server is back."""

from __future__ import annotations

import asyncio
import hashlib
import io
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import httpx
import pypdf
import pytest
from aiosmtpd.controller import Controller

from servicekit.envelope import CloudEvent
from tests.conftest import eventually
from tests.support.engine_driver import CommandDriver
from tests.support.processes import free_port
from tests.support.tokens import ADMIN, BEHEER_ZONDER_ROL, FUNCTIONEEL_BEHEERDER, PROCESBEHEERDER, bearer

VERSTUREN = "ips.bericht.versturen.v1"
ENGINE_NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
GGZ_NOORD = bearer("ggz-1", "ggz", "12345678", "aanvrager")
GGZ_ZUID = bearer("ggz-2", "ggz", "87654321", "aanvrager")
ROERMOND = bearer("behandelaar-1", "gemeente", "0957", "behandelaar")
MANDAAT = ("De Minister van Sociale Zaken en Werkgelegenheid, namens deze het college van burgemeester en "
           "wethouders van Roermond, voor deze, A. de Vries")
FAST = {"IPSFLOW_SMTP_BACKOFF_SECONDS": "[0.3, 0.6]", "IPSFLOW_SENDER_POLL_SECONDS": "0.2",
        "IPSFLOW_SMTP_TIMEOUT_SECONDS": "3", "IPSFLOW_SMTP_LEASE_SECONDS": "10",
        "IPSFLOW_SMTP_FROM": "Gemeente Roermond <noreply@roermond.example>"}


class Capture:
    """aiosmtpd handler that keeps every message it accepts."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 2.0.0 Ok: queued as TEST"


class SmtpServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.capture = Capture()
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        self.controller = Controller(self.capture, hostname="127.0.0.1", port=self.port)
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(free_port())
    yield server
    server.stop()


class Driver(CommandDriver):
    """The engine's side for one command type: ips.bericht.versturen.v1."""

    async def send(self, case: str, data: dict[str, Any], command_id: str | None = None,  # type: ignore[override]
                   now: datetime | None = None) -> CloudEvent:
        return await super().send(VERSTUREN, case, data, command_id, now)


def command_data(aanvraag_id: str, *, ggz: str = "12345678", gemeente: str = "0957") -> dict[str, Any]:
    kenmerk = f"IPS-{gemeente}-2026-{uuid.uuid4().hex[:8].upper()}"
    tekst = "\n".join([
        f"Aan: de ggz-instelling met KvK-nummer {ggz}", "Datum: 2 maart 2026", f"Ons kenmerk: {kenmerk}",
        f"Uw aanvraag: {aanvraag_id}", "Onderwerp: Besluit op uw aanvraag subsidie IPS-traject: toekenning", "",
        "Geachte heer, mevrouw,", "",
        "U hebt subsidie aangevraagd voor een IPS-traject van het type EPA. Wij kennen deze subsidie toe. Het "
        "subsidiebedrag is € 11.325,00 (inclusief btw).", "", "Hoogachtend,", "", MANDAAT, "", "Bezwaar",
        "Bent u het niet eens met dit besluit? Uw bezwaarschrift moet uiterlijk op 14 april 2026 zijn ontvangen.",
    ])
    return {
        "aanvraag_id": aanvraag_id, "gemeente_code": gemeente, "ggz_kvk_nummer": ggz,
        "beschikking": {"beschikkingId": str(uuid.uuid4()), "kenmerk": kenmerk, "soort": "toekenning",
                        "datum": "2026-03-02", "bezwaartermijnEinde": "2026-04-14", "bedragCents": 1_132_500,
                        "financiering": {"niveau": "budget", "rijkPercentage": 50, "gemeentenPercentage": 50},
                        "mandaat": MANDAAT, "gemeenteCode": gemeente, "tekst": tekst,
                        "regeling": "ips-gemeenten-2023"},
    }


def log_of(url: str, aanvraag_id: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{url}/api/v1/berichten", params={"aanvraagId": aanvraag_id}, headers=ADMIN, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def pdf_text(data: bytes) -> str:
    return " ".join(" ".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(data)).pages).split())


async def test_every_beschikking_gives_exactly_one_mail_with_the_letter(service, driver, smtp):
    smtp.start()
    notifications = service("notifications", IPSFLOW_SMTP_HOST="127.0.0.1", IPSFLOW_SMTP_PORT=str(smtp.port),
                            **FAST).start()
    data = command_data("A-1")
    kenmerk = data["beschikking"]["kenmerk"]
    first = await driver.send("A-1", data, command_id="cmd-bericht-1")
    await driver.send("A-1", data, command_id="cmd-bericht-1")  # redelivered
    reply = await driver.reply(first)
    assert reply.type == "ips.opdracht.voltooid.v1"
    assert reply.data["status"] == "te_versturen"
    assert reply.data["ontvangers"] == [{"rol": "aan", "organisatie": "ggz", "id": "12345678"},
                                        {"rol": "cc", "organisatie": "gemeente", "id": "0957"}]
    second = await driver.send("A-1", data, command_id="cmd-bericht-2")  # another command, same beschikking
    assert (await driver.reply(second)).data["berichtId"] == reply.data["berichtId"]

    async def sent() -> bool:
        return [b["status"] for b in log_of(notifications.url, "A-1")] == ["verzonden"]

    await eventually(sent, timeout=30, what="the message to be sent")
    await asyncio.sleep(1.5)  # room for a duplicate to show up
    assert len(smtp.capture.messages) == 1
    assert {r.id for r in driver.replies["cmd-bericht-1"]} == {"cmd-bericht-1:antwoord"}

    mail = smtp.capture.messages[0]
    assert mail["To"] == "IPS-team GGZ Voorbeeld Noord <ips@ggz-noord.example>"
    assert "werk-en-inkomen@roermond.example" in mail["Cc"]
    assert sorted(smtp.capture.envelopes[0][1]) == ["ips@ggz-noord.example", "werk-en-inkomen@roermond.example"]
    assert mail["Message-ID"] == f"<beschikking-{data['beschikking']['beschikkingId']}@roermond.example>"
    assert kenmerk in mail["Subject"]
    body = mail.get_body(("plain",))
    assert body is not None and kenmerk in body.get_content() and "111222333" not in body.get_content()
    (attachment,) = list(mail.iter_attachments())
    assert attachment.get_content_type() == "application/pdf"
    assert attachment.get_filename() == f"{kenmerk}.pdf"
    text = pdf_text(attachment.get_content())
    for expected in ("Gemeente Roermond", kenmerk, "€ 11.325,00", MANDAAT, "14 april 2026", "2 maart 2026"):
        assert expected in text, expected

    (entry,) = log_of(notifications.url, "A-1")
    assert entry["aan"] == ["ips@ggz-noord.example"] and entry["verzondenOp"]
    assert entry["smtpAntwoord"].startswith("250")
    assert [p["fout"] for p in entry["pogingen"]] == [None]
    bid = entry["id"]
    pdf = httpx.get(f"{notifications.url}/api/v1/berichten/{bid}/pdf", headers=GGZ_NOORD, timeout=10)
    assert pdf.status_code == 200 and pdf.headers["content-type"] == "application/pdf"
    assert pdf.content == attachment.get_content()
    assert httpx.get(f"{notifications.url}/api/v1/berichten/{bid}/pdf", headers=ROERMOND, timeout=10).status_code == 200
    assert httpx.get(f"{notifications.url}/api/v1/berichten/{bid}/pdf", headers=GGZ_ZUID, timeout=10).status_code == 403
    # a ggz lists its own messages and letters (issue 13.3), another ggz none of them
    own = httpx.get(f"{notifications.url}/api/v1/berichten", headers=GGZ_NOORD, timeout=10)
    assert own.status_code == 200 and bid in [b["id"] for b in own.json()]
    assert all(b["aan"] == ["ips@ggz-noord.example"] for b in own.json())
    assert httpx.get(f"{notifications.url}/api/v1/berichten", headers=GGZ_ZUID, timeout=10).json() == []
    assert httpx.get(f"{notifications.url}/api/v1/berichten", timeout=10).status_code == 401
    again = httpx.post(f"{notifications.url}/api/v1/berichten/{bid}/opnieuw", headers=ADMIN, timeout=10)
    assert again.status_code == 409


async def test_smtp_down_is_retried_and_delivered_later(service, driver, smtp):
    notifications = service("notifications", IPSFLOW_SMTP_HOST="127.0.0.1", IPSFLOW_SMTP_PORT=str(smtp.port),
                            **FAST).start()  # nothing listens on smtp.port yet
    reply = await driver.reply(await driver.send("B-1", command_data("B-1")))
    assert reply.data["status"] == "te_versturen"  # answered at once, without waiting for SMTP

    async def attempts_logged() -> bool:
        (entry,) = log_of(notifications.url, "B-1")
        return entry["status"] in ("te_versturen", "bezig") and len(entry["pogingen"]) >= 3

    await eventually(attempts_logged, timeout=30, what="failed attempts in the delivery log")
    (entry,) = log_of(notifications.url, "B-1")
    assert all(p["fout"] for p in entry["pogingen"])
    assert entry["verzondenOp"] is None

    smtp.start()

    async def delivered() -> bool:
        (entry,) = log_of(notifications.url, "B-1")
        return entry["status"] == "verzonden"

    await eventually(delivered, timeout=30, what="delivery once SMTP is back")
    await asyncio.sleep(1.0)
    assert len(smtp.capture.messages) == 1
    (entry,) = log_of(notifications.url, "B-1")
    assert entry["pogingen"][-1]["fout"] is None and len(entry["pogingen"]) >= 4
    verzonden = httpx.get(f"{notifications.url}/api/v1/berichten", params={"status": "verzonden"}, headers=ADMIN,
                          timeout=10).json()
    assert [b["id"] for b in verzonden] == [entry["id"]]


async def test_out_of_attempts_is_mislukt_and_beheer_retries_it(service, driver, smtp):
    notifications = service("notifications", IPSFLOW_SMTP_HOST="127.0.0.1", IPSFLOW_SMTP_PORT=str(smtp.port),
                            IPSFLOW_SMTP_MAX_POGINGEN="2", **FAST).start()
    await driver.reply(await driver.send("C-1", command_data("C-1")))

    async def failed() -> bool:
        (entry,) = log_of(notifications.url, "C-1")
        return entry["status"] == "mislukt"

    await eventually(failed, timeout=30, what="status mislukt after the last attempt")
    (entry,) = log_of(notifications.url, "C-1")
    assert len(entry["pogingen"]) == 2
    smtp.start()
    await asyncio.sleep(1.0)
    assert smtp.capture.messages == []  # a failed message waits for beheer
    for not_allowed in (GGZ_NOORD, BEHEER_ZONDER_ROL, PROCESBEHEERDER):  # a retry is the functioneel-beheerder's
        refused = httpx.post(f"{notifications.url}/api/v1/berichten/{entry['id']}/opnieuw", headers=not_allowed,
                             timeout=10)
        assert refused.status_code == 403, refused.text
    assert log_of(notifications.url, "C-1")[0]["status"] == "mislukt"
    r = httpx.post(f"{notifications.url}/api/v1/berichten/{entry['id']}/opnieuw", headers=FUNCTIONEEL_BEHEERDER,
                   timeout=10)
    assert r.status_code == 200, r.text

    async def delivered() -> bool:
        (entry,) = log_of(notifications.url, "C-1")
        return entry["status"] == "verzonden"

    await eventually(delivered, timeout=30, what="delivery after opnieuw")
    assert len(smtp.capture.messages) == 1


async def test_a_missing_contact_parks_the_message(service, driver, smtp):
    smtp.start()
    notifications = service("notifications", IPSFLOW_SMTP_HOST="127.0.0.1", IPSFLOW_SMTP_PORT=str(smtp.port),
                            **FAST).start()
    reply = await driver.reply(await driver.send("D-1", command_data("D-1", ggz="99999999", gemeente="0014")))
    assert reply.type == "ips.opdracht.voltooid.v1"
    assert reply.data["status"] == "geen_adres" and reply.data["ontvangers"] == []
    (entry,) = log_of(notifications.url, "D-1")
    assert entry["status"] == "geen_adres"
    assert entry["ontbrekend"] == ["ggz:99999999", "gemeente:0014"] and entry["aan"] == []
    r = httpx.post(f"{notifications.url}/api/v1/berichten/{entry['id']}/opnieuw", headers=ADMIN, timeout=10)
    assert r.status_code == 409 and r.headers["content-type"] == "application/problem+json"
    await asyncio.sleep(1.0)
    assert smtp.capture.messages == []


async def test_two_senders_never_send_the_same_message(service, driver, smtp):
    smtp.start()
    env = {"IPSFLOW_SMTP_HOST": "127.0.0.1", "IPSFLOW_SMTP_PORT": str(smtp.port), **FAST}
    first = service("notifications", **env).start()
    service("notifications", **env).start()  # a second process on the same queue and database
    cases = [f"E-{n}" for n in range(12)]
    for case in cases:
        await driver.send(case, command_data(case))

    async def all_sent() -> bool:
        r = httpx.get(f"{first.url}/api/v1/berichten", params={"status": "verzonden"}, headers=ADMIN, timeout=10)
        return len(r.json()) == len(cases)

    await eventually(all_sent, timeout=60, what="every message sent")
    await asyncio.sleep(1.5)
    ids = [m["Message-ID"] for m in smtp.capture.messages]
    assert len(ids) == len(cases) == len(set(ids))


async def test_ids_in_the_letter_do_not_block_it_but_a_bsn_does(service, driver, smtp):
    smtp.start()
    notifications = service("notifications", IPSFLOW_SMTP_HOST="127.0.0.1", IPSFLOW_SMTP_PORT=str(smtp.port),
                            **FAST).start()
    # the aanvraag id is a UUID whose last group holds 123456782, which passes the eleven test
    aanvraag_id = "3f2b8c1e-4d5a-4b6c-9e7f-a123456782bc"
    data = command_data(aanvraag_id)
    data["beschikking"]["beschikkingId"] = "9a8b7c6d-1e2f-4a3b-8c9d-0e111222333f"
    reply = await driver.reply(await driver.send(aanvraag_id, data))
    assert reply.data["status"] == "te_versturen"

    async def sent() -> bool:
        return [b["status"] for b in log_of(notifications.url, aanvraag_id)] == ["verzonden"]

    await eventually(sent, timeout=30, what="the message to be sent")

    met_bsn = command_data("E-1")
    met_bsn["beschikking"]["tekst"] += "\nDe client met BSN 123456782 is aangemeld."
    blocked = await driver.reply(await driver.send("E-1", met_bsn))
    assert blocked.data["status"] == "geblokkeerd"
    await asyncio.sleep(1.0)
    assert len(smtp.capture.messages) == 1


def grants_command(aanvraag_id: str) -> tuple[dict[str, Any], str]:
    """ips.bericht.versturen.v1 as the engine sends it today: grants' decision as data (no words), taken by an
    official whose name is outside Latin-1; and the text the templates make of it."""
    from grants.domain import stel_beschikking_op
    from tests.support.brieven import tekst
    from tests.unit.brief_scenarios import scenarios

    b = stel_beschikking_op(scenarios()["toekenning_unicode"])
    beschikking = {"beschikkingId": str(uuid.uuid4()), "kenmerk": b.kenmerk, "soort": b.soort,
                   "datum": b.datum.isoformat(), "bezwaartermijnEinde": b.bezwaartermijn_einde.isoformat()
                   if b.bezwaartermijn_einde else None, "bedragCents": b.bedrag_cents, "financiering": b.financiering,
                   "mandaat": b.mandaat, "gemeenteCode": "0957", "brief": {**b.brief, "aanvraagId": aanvraag_id}}
    data = {"aanvraag_id": aanvraag_id, "gemeente_code": "0957", "ggz_kvk_nummer": "12345678",
            "beschikking": beschikking}
    return data, tekst(beschikking)


async def test_the_letter_is_written_from_grants_data_kept_once_and_names_print_exactly(
        service, driver, smtp, mongo, namespace):
    """Regression (issue 13.4): with the PDF core fonts these names printed as "?"."""
    smtp.start()
    notifications = service("notifications", IPSFLOW_SMTP_HOST="127.0.0.1", IPSFLOW_SMTP_PORT=str(smtp.port),
                            **FAST).start()
    data, verwacht = grants_command("U-1")
    bid = data["beschikking"]["beschikkingId"]
    assert "Łukasz Nguyễn-Çelik, Øyvind" in verwacht and "Súdwest-Fryslân" in verwacht
    reply = await driver.reply(await driver.send("U-1", data))
    assert reply.data["status"] == "te_versturen"

    async def sent() -> bool:
        return [b["status"] for b in log_of(notifications.url, "U-1")] == ["verzonden"]

    await eventually(sent, timeout=30, what="the message to be sent")
    (attachment,) = list(smtp.capture.messages[0].iter_attachments())
    text = pdf_text(attachment.get_content())
    for naam in ("Çelik", "Nguyễn", "Øyvind", "Łukasz", "Łukasz Nguyễn-Çelik, Øyvind", "Súdwest-Fryslân",
                 "Besproken met mevrouw Çelik en de heer Nguyễn."):
        assert naam in text, naam
    assert text.count("?") == verwacht.count("?"), "no name turned into question marks"

    # the one copy: text and PDF, served by the letter's beschikking id to the ggz and the gemeente it is about
    url = f"{notifications.url}/api/v1/brieven/{bid}"
    brief = httpx.get(url, headers=GGZ_NOORD, timeout=10)
    assert brief.status_code == 200, brief.text
    assert brief.json()["tekst"] == verwacht and brief.json()["pdf"] == f"/api/v1/brieven/{bid}/pdf"
    assert brief.json()["berichtId"] == reply.data["berichtId"] and brief.json()["kenmerk"] in text
    pdf = httpx.get(f"{url}/pdf", headers=ROERMOND, timeout=10)
    assert pdf.status_code == 200 and pdf.content == attachment.get_content()
    assert brief.json()["pdfSha256"] == hashlib.sha256(pdf.content).hexdigest()
    assert httpx.get(url, headers=ADMIN, timeout=10).status_code == 200
    assert httpx.get(url, headers=GGZ_ZUID, timeout=10).status_code == 403
    assert httpx.get(f"{url}/pdf", headers=bearer("x", "gemeente", "0988", "behandelaar"), timeout=10
                     ).status_code == 403
    assert httpx.get(url, timeout=10).status_code == 401
    assert httpx.get(f"{notifications.url}/api/v1/brieven/{uuid.uuid4()}", headers=ADMIN, timeout=10
                     ).status_code == 404
    db = mongo[f"{namespace}ipsflow_notifications".replace(".", "_")]
    stored = await db.berichten.find({"beschikking_id": bid}).to_list(None)
    assert len(stored) == 1 and stored[0]["brief_tekst"] == verwacht and "pdf" not in stored[0]
    # the PDF apart, once, by its hash (the message is updated without it: repository.py)
    apart = await db.brief_pdfs.find_one({"_id": stored[0]["bijlage_sha256"]})
    assert apart is not None and bytes(apart["pdf"]) == pdf.content
