"""A letter's PDF is stored apart from its message (``brief_pdfs``, by its SHA-256) on the real FerretDB: a new
message is written without it, a message stored before with its PDF inline still gives it and loses it at its
next whole write, and a PDF that is gone is an error, never an empty attachment."""

from __future__ import annotations

import hashlib
import uuid
from typing import Any

import pytest

from notifications.repository import BerichtenRepository

PDF = b"%PDF-1.4 " + b"brief " * 4000


def _repo(mongo: Any, namespace: str, name: str) -> BerichtenRepository:
    return BerichtenRepository(mongo[f"{namespace}{name}".replace(".", "_")])


async def test_a_new_message_is_stored_without_its_pdf_and_gives_it(mongo: Any, namespace: str) -> None:
    repo = _repo(mongo, namespace, "pdf_apart")
    bid = str(uuid.uuid4())
    stored = await repo.berichten.insert({"_id": bid, "status": "te_versturen", "pdf": PDF, "bijlage": "b.pdf"})
    raw = await repo.collection.find_one({"_id": bid})
    assert raw is not None and "pdf" not in raw and raw["bijlage_sha256"] == hashlib.sha256(PDF).hexdigest()
    assert "pdf" not in stored and await repo.pdf(raw) == PDF
    # the same letter written again (a redelivered command, a re-addressed message) is stored once
    await repo.berichten.replace({**stored, "pdf": PDF})
    assert await repo.berichten.pdfs.count_documents({}) == 1


async def test_a_message_stored_with_its_pdf_inline_gives_it_and_loses_it_at_its_next_write(
        mongo: Any, namespace: str) -> None:
    repo = _repo(mongo, namespace, "pdf_inline")
    bid = str(uuid.uuid4())
    await repo.collection.insert_one({"_id": bid, "revision": 1, "status": "te_versturen", "pdf": PDF,
                                      "bijlage_sha256": hashlib.sha256(PDF).hexdigest(), "outbox": []})
    before = await repo.get(bid)
    assert before is not None and await repo.pdf(before) == PDF
    await repo.berichten.replace({**before, "teller": 1})
    after = await repo.get(bid)
    assert after is not None and "pdf" not in after and after["teller"] == 1 and await repo.pdf(after) == PDF


async def test_a_pdf_that_is_gone_is_an_error(mongo: Any, namespace: str) -> None:
    repo = _repo(mongo, namespace, "pdf_gone")
    bid = str(uuid.uuid4())
    await repo.berichten.insert({"_id": bid, "status": "te_versturen", "pdf": PDF})
    await repo.berichten.pdfs.delete_many({})
    doc = await repo.get(bid)
    assert doc is not None
    with pytest.raises(LookupError, match="is not stored"):
        await repo.pdf(doc)
