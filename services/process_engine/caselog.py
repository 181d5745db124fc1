"""A case's journal and history (split from engine.py): numbered entries, appended to the instance document and
moved from there into the case log (``case_log``) in buckets, so the document stays small however long the case
runs (issue 14). Pure functions on the document; the engine does the writes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from servicekit.store import Document


def next_seq(doc: Document) -> int:
    """The next number of a log entry (journal or history) of this case; one sequence for both."""
    if "log_seq" not in doc:  # a document from before issue 14: number its journal once
        doc["journal"] = [{"seq": i, **e} for i, e in enumerate(doc.get("journal", []), 1)]
        doc["log_seq"] = len(doc["journal"])
    doc["log_seq"] += 1
    return int(doc["log_seq"])


def journal(doc: Document, at: datetime, what: str, **details: Any) -> None:
    doc["journal"] = [*doc.get("journal", []), {"seq": next_seq(doc), "at": at, "what": what, **details}]


def take_archive(doc: Document, committed: int, tail_max: int) -> Document | None:
    """Move the log entries already stored in the instance (seq <= ``committed``) into a case log bucket, once
    there are ``tail_max`` of them. Only stored entries move: an attempt that loses the race (ConcurrencyError)
    wrote a bucket of entries that exist anyway, and a bucket written twice is the same bucket. Readers merge
    buckets and the document's tail by seq (:func:`merged`)."""
    old = [e for key in ("journal", "history") for e in doc.get(key, []) if e.get("seq", 0) <= committed]
    if len(old) < tail_max:
        return None
    first, last = min(e.get("seq", 0) for e in old), max(e.get("seq", 0) for e in old)
    bucket: Document = {"_id": f"{doc['_id']}/{first:09d}-{last:09d}", "case_id": doc["_id"]}
    for key in ("journal", "history"):
        bucket[key] = [e for e in doc.get(key, []) if e.get("seq", 0) <= committed]
        doc[key] = [e for e in doc.get(key, []) if e.get("seq", 0) > committed]
    doc["log_archived_to"] = last
    return bucket


def merged(doc: Document, buckets: Iterable[Document]) -> Document:
    """The instance with its whole journal and history (the case log's buckets and the document's tail), each
    in order, without the entries' numbers."""
    entries_of: Document = {"journal": [], "history": []}
    seen: set[int] = set()
    for source in [*buckets, doc]:
        for key in ("journal", "history"):
            for entry in source.get(key, []):
                seq = entry.get("seq")
                if seq is not None and seq in seen:
                    continue
                if seq is not None:
                    seen.add(seq)
                entries_of[key].append(entry)
    return {**doc, **{key: [{k: v for k, v in e.items() if k != "seq"}
                            for e in sorted(entries, key=lambda e: e.get("seq", 0))]
                      for key, entries in entries_of.items()}}
