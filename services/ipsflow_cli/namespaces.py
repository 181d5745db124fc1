"""Namespaces of test, benchmark, e2e and acceptance runs on a broker and database: name, find, remove.

A run isolates itself by a prefix on every exchange, queue and database name (``ServiceSettings.namespace``). A
run removes its own namespace when it ends, also when it fails; a run that was killed cannot, so the names carry
their creation time (``t<base36 epoch seconds>x<6 hex>.``) and a sweep removes what is older than a day.

Names of the older formats (``t<8 hex>.``, ``bench<6-8 hex>.``, ``bench_engine_<8 hex>``, ``acc…``) carry no time.
They count as leftovers when none of their queues has a consumer and a sweep saw them more than ``max_age``
ago (first sightings are kept in a small JSON file); ``ipsflow stack sweep --legacy`` removes them at once.
Database names are the namespace with ``.`` replaced by ``_`` (MongoDB forbids dots there), so each
namespace is found in both places under one key: its AMQP prefix.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import time
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

KINDS = ("t", "bench", "e2e", "acc")
DAY = 24 * 3600.0
# The creation time is 6 base36 digits until 2038 (36**6 s after 1970); 5-7 keep the pattern valid either side.
_NEW = re.compile(r"^(?P<kind>t|bench|e2e|acc)(?P<created>[0-9a-z]{5,7})x(?P<rand>[0-9a-f]{6})[._]")
_LEGACY = re.compile(r"^(?:t[0-9a-f]{8}|bench[0-9a-f]{6,8}|acc[0-9a-z]{2,16})[._]")
_LEGACY_DB = re.compile(r"^bench_engine_[0-9a-f]{8}$")
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def _base36(n: int) -> str:
    out = ""
    while True:
        n, r = divmod(n, 36)
        out = _DIGITS[r] + out
        if n == 0:
            return out


def new_namespace(kind: str = "t", now: float | None = None) -> str:
    """A fresh namespace carrying its creation time, e.g. ``ttp8ugmx31b78c.`` (short: database names get it too)."""
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}")
    created = int(time.time() if now is None else now)
    return f"{kind}{_base36(created)}x{secrets.token_hex(3)}."


def classify(name: str) -> tuple[str, float | None] | None:
    """The namespace key (AMQP prefix, ending in ``.``) and creation time (epoch s, None when the name has none)
    of a queue, exchange or database name; None for names that belong to no run's namespace."""
    match = _NEW.match(name)
    if match:
        return match.group(0)[:-1] + ".", float(int(match.group("created"), 36))
    match = _LEGACY.match(name)
    if match:
        return match.group(0)[:-1] + ".", None
    if _LEGACY_DB.match(name):
        return name, None
    return None


@dataclass
class Endpoints:
    """Where a broker's management API and a MongoDB-wire server answer; URLs may carry credentials."""

    mongo_url: str
    management_url: str | None = None
    amqp_url: str = "amqp://guest:guest@127.0.0.1:5672/"

    @property
    def vhost(self) -> str:
        return urllib.parse.quote(urllib.parse.urlparse(self.amqp_url).path.lstrip("/") or "/", safe="")

    def management(self) -> httpx.Client:
        assert self.management_url is not None
        return httpx.Client(base_url=self.management_url, timeout=15)


@dataclass
class Namespace:
    key: str
    created: float | None
    queues: list[str]
    exchanges: list[str]
    databases: list[str]
    consumers: int = 0

    def age_seconds(self, now: float) -> float | None:
        return None if self.created is None else max(0.0, now - self.created)


def _namespace(found: dict[str, Namespace], name: str) -> Namespace | None:
    hit = classify(name)
    if hit is None:
        return None
    key, created = hit
    if key not in found:
        found[key] = Namespace(key, created, [], [], [])
    return found[key]


def scan(endpoints: Endpoints) -> list[Namespace]:
    """Every run namespace the broker or the database holds, with its queues, exchanges, databases, consumers."""
    import pymongo

    found: dict[str, Namespace] = {}
    if endpoints.management_url:
        with endpoints.management() as client:
            queues = client.get(f"/api/queues/{endpoints.vhost}", params={"columns": "name,consumers"})
            queues.raise_for_status()
            exchanges = client.get(f"/api/exchanges/{endpoints.vhost}", params={"columns": "name"})
            exchanges.raise_for_status()
            consumers = client.get(f"/api/consumers/{endpoints.vhost}")
            consumers.raise_for_status()
        # Both counts lag the broker by a statistics interval or more, each in its own way: take the larger.
        by_channel: dict[str, int] = {}
        for consumer in consumers.json():
            queue_name = (consumer.get("queue") or {}).get("name", "")
            by_channel[queue_name] = by_channel.get(queue_name, 0) + 1
        for queue in queues.json():
            ns = _namespace(found, queue["name"])
            if ns is not None:
                ns.queues.append(queue["name"])
                ns.consumers += max(int(queue.get("consumers") or 0), by_channel.get(queue["name"], 0))
        for exchange in exchanges.json():
            ns = _namespace(found, exchange["name"])
            if ns is not None:
                ns.exchanges.append(exchange["name"])
    mongo: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(endpoints.mongo_url, maxPoolSize=2, serverSelectionTimeoutMS=10_000) as mongo:
        for name in mongo.list_database_names():
            ns = _namespace(found, name)
            if ns is not None:
                ns.databases.append(name)
    return sorted(found.values(), key=lambda n: (n.created or 0, n.key))


def delete_namespace(endpoints: Endpoints, namespace: str) -> tuple[int, int]:
    """Delete every queue and exchange whose name starts with ``namespace`` and every database whose name starts
    with it (dots as underscores). Returns (queues and exchanges removed, databases dropped)."""
    import pymongo

    if not namespace or not namespace.strip("._"):
        raise ValueError("refusing to delete an empty namespace (that would be everything)")
    removed = 0
    if endpoints.management_url:
        with endpoints.management() as client:
            for kind in ("queues", "exchanges"):
                listing = client.get(f"/api/{kind}/{endpoints.vhost}", params={"columns": "name"})
                listing.raise_for_status()
                for item in listing.json():
                    if item["name"].startswith(namespace):
                        response = client.delete(
                            f"/api/{kind}/{endpoints.vhost}/{urllib.parse.quote(item['name'], safe='')}")
                        if response.status_code != 404:  # gone already: someone else removed it
                            response.raise_for_status()
                        removed += 1
    prefix = namespace.replace(".", "_")
    dropped = 0
    mongo: pymongo.MongoClient[dict[str, Any]]
    with pymongo.MongoClient(endpoints.mongo_url, maxPoolSize=2, serverSelectionTimeoutMS=10_000) as mongo:
        for name in mongo.list_database_names():
            if name.startswith(prefix):
                mongo.drop_database(name)
                dropped += 1
    return removed, dropped


def _load_seen(path: Path | None) -> dict[str, float]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): float(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _save_seen(path: Path | None, seen: dict[str, float]) -> None:
    if path is None:
        return
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(seen, indent=1, sort_keys=True))
        tmp.replace(path)


def leftovers(namespaces: Iterable[Namespace], now: float, max_age: float, seen: dict[str, float] | None = None,
              legacy_now: bool = False) -> list[Namespace]:
    """The namespaces a sweep removes: none of their queues has a consumer (a run that still consumes is alive),
    and they are older than ``max_age`` seconds (by their name; for a name without a time: since ``seen`` first
    noted it, or at once with ``legacy_now``)."""
    seen = seen if seen is not None else {}
    out = []
    for ns in namespaces:
        if ns.consumers:
            continue
        if ns.created is not None:
            if now - ns.created > max_age:
                out.append(ns)
        elif legacy_now or now - seen.get(ns.key, now) > max_age:
            out.append(ns)
    return out


def sweep(endpoints: Endpoints, max_age: float = DAY, seen_file: Path | None = None,
          legacy_now: bool = False, now: float | None = None) -> list[Namespace]:
    """Remove the leftovers (see ``leftovers``); returns what it removed. Records first sightings of names
    without a time in ``seen_file`` so a later sweep can age them."""
    now = time.time() if now is None else now
    namespaces = scan(endpoints)
    seen = _load_seen(seen_file)
    present = {ns.key for ns in namespaces if ns.created is None}
    seen = {key: at for key, at in seen.items() if key in present}
    for key in present:
        seen.setdefault(key, now)
    removed = leftovers(namespaces, now, max_age, seen, legacy_now)
    for ns in removed:
        delete_namespace(endpoints, ns.key)
        seen.pop(ns.key, None)
    _save_seen(seen_file, seen)
    return removed


def describe_age(seconds: float | None) -> str:
    if seconds is None:
        return "onbekend"
    if seconds < 3600:
        return f"{int(seconds // 60)} min"
    if seconds < 2 * DAY:
        return f"{seconds / 3600:.1f} uur"
    return f"{seconds / DAY:.1f} dagen"


def summary(namespaces: Iterable[Namespace], now: float) -> list[dict[str, Any]]:
    return [{"namespace": ns.key, "queues": len(ns.queues), "exchanges": len(ns.exchanges),
             "databases": len(ns.databases), "consumers": ns.consumers, "age": describe_age(ns.age_seconds(now))}
            for ns in namespaces]
