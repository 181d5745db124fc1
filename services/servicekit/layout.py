"""Moving documents written in an older layout into the current one, once, while the services run.

A ledger (grants' budget ledger, payments' ledger per ggz) marks its layout in ``indeling``. A document without the
current mark is moved by the service's start (all of them: a scan of a small collection) or by the first booking
or read that finds it (only that one). The move itself is the caller's: it writes what it needs elsewhere first,
then the document, checked on what it read (its revision), and answers whether that write went in. A document
changed meanwhile is read again and moved again; writing the same copies twice does no harm.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from pymongo.asynchronous.collection import AsyncCollection

from servicekit.store import Document

#: How often a document is read again when it keeps changing under the move.
ATTEMPTS = 50


async def move_to_layout(collection: AsyncCollection[Document], layout: str,
                         move: Callable[[Document], Awaitable[bool]], doc_id: Any = None) -> int:
    """Move every document of ``collection`` whose ``indeling`` is not ``layout`` (or only ``doc_id``) with
    ``move``; returns how many it moved."""
    if doc_id is None:
        found = await collection.find({"indeling": {"$ne": layout}}).to_list(None)
    else:
        found = [d for d in [await collection.find_one({"_id": doc_id})] if d is not None]
    moved = 0
    for first in found:
        doc: Document | None = first
        for attempt in range(ATTEMPTS):
            if attempt:
                doc = await collection.find_one({"_id": first["_id"]})
            if doc is None or doc.get("indeling") == layout:
                break
            if await move(doc):
                moved += 1
                break
        else:
            raise RuntimeError(f"{collection.name}/{first['_id']}: changed all the time while moving it to {layout}")
    return moved
