"""servicekit.store.Packing, pure logic: what is packed, what stays a field, and that a document comes back as it
went in (times with their zone, key order, nested values)."""

from __future__ import annotations

from datetime import UTC, datetime

import bson
from bson.codec_options import CodecOptions

from servicekit.store import Packing

PACKING = Packing(frozenset({"journal", "variables", "state"}))
TZ = CodecOptions(tz_aware=True, tzinfo=UTC)


def _doc() -> dict[str, object]:
    return {"_id": "z-1", "status": "running", "revision": 3,
            "journal": [{"seq": 1, "at": datetime(2026, 11, 30, 2, 0, 0, 123000, tzinfo=UTC), "what": "gestart"}],
            "variables": {"aanvraag": {"gemeenteCode": "0957", "bedrag": 1132500}, "te_laat": False},
            "state": b"IPS2\x00\x01", "outbox": [{"id": "e-1", "body": "{}"}]}


def test_the_named_fields_go_into_one_binary_and_come_back_as_they_were() -> None:
    doc = _doc()
    packed = PACKING.pack(doc, TZ)
    assert set(packed) == {"_id", "status", "revision", "outbox", "body"}
    assert isinstance(packed["body"], bson.Binary)
    # through BSON, as the database would keep it
    stored = bson.decode(bson.encode(packed), codec_options=TZ)
    assert PACKING.unpack(stored, TZ) == doc
    assert list(PACKING.unpack(bson.decode(bson.encode(packed), codec_options=TZ), TZ)["variables"]) == [
        "aanvraag", "te_laat"]


def test_a_document_without_a_body_is_left_alone() -> None:
    doc = _doc()
    assert PACKING.unpack(dict(doc), TZ) == doc


def test_a_field_the_document_lacks_is_not_invented() -> None:
    packed = PACKING.pack({"_id": "z-2", "journal": []}, TZ)
    assert PACKING.unpack(bson.decode(bson.encode(packed), codec_options=TZ), TZ) == {"_id": "z-2", "journal": []}


def test_a_projection_reads_the_body_only_when_it_asks_for_a_packed_field() -> None:
    assert PACKING.projection({"status": 1, "outbox": 1}) == {"status": 1, "outbox": 1}
    assert PACKING.projection({"status": 1, "variables": 1, "journal": 1}) == {"status": 1, "body": 1}
    assert PACKING.projection({"journal": 0}) == {}  # an exclusion of a packed field cannot hold: dropped
