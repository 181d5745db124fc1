"""SEPA credit transfer initiation, ISO 20022 pain.001.001.03: our builder, checked against the official XSD.

The XML is built here with the standard library; ``validate`` checks it against ``schemas/pain.001.001.03.xsd``
(the ISO 20022 schema, see schemas/README.md for its source) with lxml. A batch is only handed out when its
XML validates.
"""

from __future__ import annotations

import functools
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

from lxml import etree

from payments.domain import cents_als_euro
from payments.rekening import Rekening, bic_valid, epc_tekst, iban_valid, normalise_iban

NS = "urn:iso:std:iso:20022:tech:xsd:pain.001.001.03"
XSD = Path(__file__).resolve().parent / "schemas" / "pain.001.001.03.xsd"


@dataclass(frozen=True)
class Overboeking:
    end_to_end_id: str  # max 35 characters: the order id
    bedrag_cents: int
    crediteur: Rekening
    omschrijving: str  # unstructured remittance information, max 140; ids only, never personal data


class SepaError(ValueError):
    """The batch cannot be expressed as a valid pain.001 (bad account, empty batch, schema violation)."""


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    element = ET.SubElement(parent, f"{{{NS}}}{tag}", attrs)
    if text is not None:
        element.text = text
    return element


def _account(parent: ET.Element, tag: str, iban: str) -> None:
    _sub(_sub(_sub(parent, tag), "Id"), "IBAN", normalise_iban(iban))


def _agent(parent: ET.Element, tag: str, bic: str) -> None:
    _sub(_sub(_sub(parent, tag), "FinInstnId"), "BIC", bic.strip().upper())


def build_pain001(message_id: str, created_at: datetime, uitvoerdatum: date, debiteur: Rekening,
                  overboekingen: Sequence[Overboeking]) -> bytes:
    """One message, one payment information block (one debtor account, one execution date), SEPA service
    level, charges shared (SLEV). Raises SepaError on an account that is not valid or an empty batch."""
    if not overboekingen:
        raise SepaError("een batch zonder betalingen")
    if not debiteur.geldig:
        raise SepaError("de rekening van de betaler (UWV) is ongeldig")
    for o in overboekingen:
        if not (iban_valid(o.crediteur.iban) and bic_valid(o.crediteur.bic) and epc_tekst(o.crediteur.naam)):
            raise SepaError(f"ongeldige rekening voor betaling {o.end_to_end_id}")
        if o.bedrag_cents <= 0:
            raise SepaError(f"betaling {o.end_to_end_id} heeft geen positief bedrag")
    aantal = str(len(overboekingen))
    totaal = cents_als_euro(sum(o.bedrag_cents for o in overboekingen))
    ET.register_namespace("", NS)
    document = ET.Element(f"{{{NS}}}Document")
    root = _sub(document, "CstmrCdtTrfInitn")
    header = _sub(root, "GrpHdr")
    _sub(header, "MsgId", message_id[:35])
    _sub(header, "CreDtTm", created_at.replace(microsecond=0, tzinfo=None).isoformat())
    _sub(header, "NbOfTxs", aantal)
    _sub(header, "CtrlSum", totaal)
    # names and remittance information in the EPC character set ("Çelik" -> "Celik"), then cut to the field
    _sub(_sub(header, "InitgPty"), "Nm", epc_tekst(debiteur.naam, 140))
    info = _sub(root, "PmtInf")
    _sub(info, "PmtInfId", f"{message_id[:31]}-001")
    _sub(info, "PmtMtd", "TRF")
    _sub(info, "BtchBookg", "true")
    _sub(info, "NbOfTxs", aantal)
    _sub(info, "CtrlSum", totaal)
    _sub(_sub(_sub(info, "PmtTpInf"), "SvcLvl"), "Cd", "SEPA")
    _sub(info, "ReqdExctnDt", uitvoerdatum.isoformat())
    _sub(_sub(info, "Dbtr"), "Nm", epc_tekst(debiteur.naam, 70))
    _account(info, "DbtrAcct", debiteur.iban)
    _agent(info, "DbtrAgt", debiteur.bic)
    _sub(info, "ChrgBr", "SLEV")
    for o in overboekingen:
        tx = _sub(info, "CdtTrfTxInf")
        _sub(_sub(tx, "PmtId"), "EndToEndId", o.end_to_end_id[:35])
        _sub(_sub(tx, "Amt"), "InstdAmt", cents_als_euro(o.bedrag_cents), Ccy="EUR")
        _agent(tx, "CdtrAgt", o.crediteur.bic)
        _sub(_sub(tx, "Cdtr"), "Nm", epc_tekst(o.crediteur.naam, 70))
        _account(tx, "CdtrAcct", o.crediteur.iban)
        _sub(_sub(tx, "RmtInf"), "Ustrd", epc_tekst(o.omschrijving, 140))
    xml: bytes = ET.tostring(document, encoding="UTF-8", xml_declaration=True)
    return xml


@functools.cache
def _schema() -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(XSD)))


def schema_errors(xml: bytes) -> list[str]:
    """Every violation of the official pain.001.001.03 schema (empty when valid)."""
    try:
        doc = etree.fromstring(xml, parser=etree.XMLParser(resolve_entities=False, no_network=True))
    except etree.XMLSyntaxError as exc:
        return [f"geen geldige XML: {exc}"]
    schema = _schema()
    if schema.validate(doc):
        return []
    return [f"regel {e.line}: {e.message}" for e in schema.error_log]


def validate(xml: bytes) -> None:
    errors = schema_errors(xml)
    if errors:
        raise SepaError("pain.001 voldoet niet aan het XSD: " + "; ".join(errors[:5]))
