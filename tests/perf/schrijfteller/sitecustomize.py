"""Benchmark only: counts the database writes of a service process per collection (``bench_ips.py
--writes-by-collection`` puts this directory first on the services' PYTHONPATH; Python imports
``sitecustomize`` at start-up). A pymongo command listener counts every insert, update, delete and
findAndModify command (as FerretDB's ``serverStatus`` does) and the statements in it, per database and
collection, and writes the totals to ``$IPSFLOW_BENCH_WRITES_DIR/<pid>.json`` every 0.2 s. Nothing of this is
in the services' code."""

from __future__ import annotations

import json
import os
import threading
import time
from collections import Counter
from pathlib import Path

from pymongo import monitoring

_MAP = os.environ.get("IPSFLOW_BENCH_WRITES_DIR")
# the command's field that lists its statements
_STATEMENTS = {"insert": "documents", "update": "updates", "delete": "deletes", "findAndModify": None}


class _Teller(monitoring.CommandListener):
    def __init__(self) -> None:
        self.totals: Counter[str] = Counter()
        self.lock = threading.Lock()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name not in _STATEMENTS:
            return
        key = f"{event.database_name}.{event.command.get(name)}.{name}"
        field = _STATEMENTS[name]
        # a bulk write sends its statements in a document sequence, which the event shows as a list
        statements = list(event.command.get(field) or ()) if field else []
        with self.lock:
            self.totals[key] += 1
            self.totals[key + "#statements"] += len(statements) or 1
            if name == "update":
                for statement in statements:
                    self.totals[f"{key}#{_soort(statement.get('u'))}"] += 1


def _soort(update: object) -> str:
    """What an update statement does: a replacement, an outbox clear (the relay's), or other operators."""
    if not isinstance(update, dict) or not update or not all(str(k).startswith("$") for k in update):
        return "replace"
    if set(update) == {"$set"} and set(update["$set"]) <= {"outbox", "has_outbox"}:
        return "outbox clear"
    return "operators " + ",".join(sorted(update))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _write(teller: _Teller, folder: Path) -> None:
    target, tmp = folder / f"{os.getpid()}.json", folder / f".{os.getpid()}.json"
    while True:
        with teller.lock:
            data = dict(teller.totals)
        tmp.write_text(json.dumps(data))
        tmp.replace(target)
        time.sleep(0.2)


if _MAP:
    _teller = _Teller()
    monitoring.register(_teller)
    threading.Thread(target=_write, args=(_teller, Path(_MAP)), daemon=True, name="bench-schrijfteller").start()
