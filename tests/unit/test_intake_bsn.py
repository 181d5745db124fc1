"""The BSN is encrypted at rest: round trip, bound to its application, absent from the stored document."""

from __future__ import annotations

import base64
import json
import os
from datetime import UTC, date, datetime

import pytest
from cryptography.exceptions import InvalidTag

from intake.bsn import BsnCipher, load_key
from intake.domain import Aanvraag, Doelgroep, Ondertekening
from intake.repository import to_doc

BSN = "123456782"


def test_round_trip_and_binding_to_the_application():
    cipher = BsnCipher(os.urandom(32))
    stored = cipher.encrypt(BSN, "aanvraag-1")
    assert cipher.decrypt(stored, "aanvraag-1") == BSN
    assert stored != cipher.encrypt(BSN, "aanvraag-1"), "a fresh nonce each time"
    with pytest.raises(InvalidTag):
        cipher.decrypt(stored, "aanvraag-2")
    with pytest.raises(InvalidTag):
        BsnCipher(os.urandom(32)).decrypt(stored, "aanvraag-1")


def test_stored_document_does_not_contain_the_bsn():
    cipher = BsnCipher(os.urandom(32))
    a = Aanvraag.indienen(id="a-1", client_referentie="K-1", gemeente_code="0957", woongemeente_code="0957",
                          traject_type="EPA", aanvraagdatum=date(2026, 3, 2), gewenste_startdatum=date(2026, 4, 1),
                          ggz_kvk_nummer="12345678", ontvangen_op=datetime(2026, 3, 2, tzinfo=UTC),
                          ondertekening=Ondertekening(True, True), doelgroep=Doelgroep("geen", True, False))
    doc = {**to_doc(a), "bsn_versleuteld": cipher.encrypt(BSN, a.id),
           "request_hash": cipher.mac(json.dumps({"bsn": BSN}).encode())}
    text = json.dumps(doc, default=str)
    assert BSN not in text
    assert all(BSN not in json.dumps(e.data) for e in a.events)


def test_configured_key_must_be_32_bytes_of_base64():
    key = os.urandom(32)
    assert load_key(base64.b64encode(key).decode()) == key
    with pytest.raises(ValueError):
        load_key(base64.b64encode(b"short").decode())
    with pytest.raises(ValueError):
        load_key("not base64!!")


def test_dev_key_is_created_once(tmp_path, monkeypatch):
    monkeypatch.setenv("IPSFLOW_DEV_KEY_DIR", str(tmp_path))
    first = load_key("")
    assert (tmp_path / "bsn.key").exists() and len(first) == 32
    assert load_key("") == first
