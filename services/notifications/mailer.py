"""SMTP delivery: the e-mail with the letter attached, sent with smtplib in a worker thread.

SMTP has no idempotency: a server that accepted a message and a crash before we recorded that means a resend
later. The Message-ID header is derived from the beschikking, so the receiving side can recognise it.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, parseaddr


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    user: str
    password: str
    starttls: bool
    afzender: str
    timeout: float


@dataclass(frozen=True)
class Mail:
    aan: list[tuple[str, str]]   # (naam, email)
    cc: list[tuple[str, str]]
    onderwerp: str
    tekst: str
    message_id: str
    bijlage: bytes
    bestandsnaam: str


# CRLF line ends (smtplib sends bytes as they are, and bare LF is not SMTP); headers are not folded below the
# SMTP limit, so the Message-ID stays on one line for the receivers that dedupe on it.
WIRE = policy.SMTP.clone(max_line_length=998)


class SmtpFout(Exception):
    """A failed attempt; ``code`` is the SMTP reply code when the server gave one."""

    def __init__(self, message: str, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


def opstellen(mail: Mail, afzender: str, nu: datetime | None = None) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = afzender
    msg["To"] = ", ".join(formataddr(a) for a in mail.aan)
    if mail.cc:
        msg["Cc"] = ", ".join(formataddr(a) for a in mail.cc)
    msg["Subject"] = mail.onderwerp
    msg["Message-ID"] = mail.message_id
    msg["Date"] = format_datetime(nu or datetime.now(UTC))
    msg["Auto-Submitted"] = "auto-generated"
    msg.set_content(mail.tekst)
    msg.add_attachment(mail.bijlage, maintype="application", subtype="pdf", filename=mail.bestandsnaam)
    return msg


def _send(config: SmtpConfig, mail: Mail) -> str:
    msg = opstellen(mail, config.afzender)
    ontvangers = [a[1] for a in mail.aan + mail.cc]
    try:
        with smtplib.SMTP(config.host, config.port, timeout=config.timeout) as smtp:
            smtp.ehlo()
            if config.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if config.user:
                smtp.login(config.user, config.password)
            code, resp = smtp.mail(_adres(config.afzender))
            if code != 250:
                raise SmtpFout(f"MAIL FROM geweigerd: {code}", code)
            geweigerd = []
            for ontvanger in ontvangers:
                code, resp = smtp.rcpt(ontvanger)
                if code not in (250, 251):
                    geweigerd.append(code)
            if len(geweigerd) == len(ontvangers):
                smtp.rset()
                # Only the codes: a refusal text usually repeats the address.
                raise SmtpFout(f"alle ontvangers geweigerd: {geweigerd}", geweigerd[0])
            code, resp = smtp.data(msg.as_bytes(policy=WIRE))
            if code != 250:
                raise SmtpFout(f"DATA geweigerd: {code}", code)
            antwoord = f"{code} {resp.decode(errors='replace')}"
            if geweigerd:
                antwoord += f" (ontvanger(s) geweigerd: {geweigerd})"
            return antwoord
    except SmtpFout:
        raise
    except smtplib.SMTPResponseException as exc:
        raise SmtpFout(f"{type(exc).__name__}: {exc.smtp_code}", exc.smtp_code) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise SmtpFout(f"{type(exc).__name__}: {exc}") from None


def _adres(afzender: str) -> str:
    return parseaddr(afzender)[1] or afzender


async def verstuur(config: SmtpConfig, mail: Mail) -> str:
    """Send ``mail``; returns the server's reply to DATA (e.g. '250 OK'). Raises SmtpFout."""
    return await asyncio.to_thread(_send, config, mail)
