"""Pages of the engine's list endpoints (NL API Design Rules: a bounded page, the next one behind a cursor in the
``Link`` header, rel="next"). The list stays the body, so a client that reads one page still gets a list.

A cursor is the sort key of the last item of the page (base64 of JSON): the next page starts after it, so an item
written meanwhile neither shifts the pages nor is repeated. The key must order the items totally (end it with the
item's id).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, TypeVar

from fastapi import Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pymongo.asynchronous.collection import AsyncCollection

T = TypeVar("T")
Key = tuple[Any, ...]

PAGE_DEFAULT, PAGE_MAX = 100, 500
PageSize = Annotated[int, Query(alias="pageSize", ge=1, le=PAGE_MAX, description="Hoeveel per pagina.")]
Cursor = Annotated[str | None, Query(max_length=400, description=(
    "Waar de pagina begint: uit de Link-header (rel=next) van de vorige pagina."))]


def encode(key: Key) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key)).encode()).decode()


def decode(cursor: str | None, size: int | None) -> Key | None:
    """The key a cursor names (of ``size`` parts, when known); a 400 (as any invalid parameter) for anything that
    is not one of ours."""
    if cursor is None:
        return None
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        if not isinstance(key, list) or not all(isinstance(k, (str, int)) for k in key):
            raise ValueError(key)
        if size is not None and len(key) != size:
            raise ValueError(key)
        return tuple(key)
    except (ValueError, TypeError) as exc:
        raise RequestValidationError([{"type": "value_error", "loc": ("query", "cursor"), "input": cursor,
                                       "msg": "Geen cursor van deze lijst."}]) from exc


def page(items: Sequence[T], key: Callable[[T], Key], page_size: int, cursor: str | None, request: Request,
         response: Response, *, descending: bool = False) -> list[T]:
    """One page of ``items`` in the order of ``key`` (descending: largest first), after ``cursor``; sets the
    Link header to the next page when there is one."""
    ordered = sorted(items, key=key, reverse=descending)
    after = decode(cursor, len(key(ordered[0])) if ordered else None)
    if after is not None:
        ordered = [i for i in ordered if (key(i) < after if descending else key(i) > after)]
    shown = ordered[:page_size]
    if len(ordered) > page_size:
        link(request, response, page_size, key(shown[-1]))
    return shown


def link(request: Request, response: Response, page_size: int, last: Key) -> None:
    next_url = request.url.include_query_params(pageSize=page_size, cursor=encode(last))
    response.headers["Link"] = f'<{next_url}>; rel="next"'



async def newest_first(collection: AsyncCollection[dict[str, Any]], field: str, projection: dict[str, Any],
                       page_size: int, cursor: str | None, request: Request,
                       response: Response) -> list[dict[str, Any]]:
    """One page of a collection, newest first by the time in ``field`` (then ``_id``), read by the database."""
    query: dict[str, Any] = {}
    after = decode(cursor, 2)
    if after is not None:  # the page after the cursor is older (or as old, with a larger id)
        at = datetime.fromisoformat(str(after[0]))
        query = {"$or": [{field: {"$lt": at}}, {field: at, "_id": {"$gt": after[1]}}]}
    docs = await collection.find(query, projection).sort([(field, -1), ("_id", 1)]) \
        .limit(page_size + 1).to_list(page_size + 1)
    if len(docs) > page_size:
        docs = docs[:page_size]
        link(request, response, page_size, (docs[-1][field].isoformat(), docs[-1]["_id"]))
    return docs
