"""The municipalities: the CBS list with validity periods (mergers), read from data/gemeenten.csv."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True)
class Gemeente:
    code: str
    naam: str
    geldig_vanaf: date
    geldig_tot: date | None  # exclusive: the day of the merger

    def geldig_op(self, dag: date) -> bool:
        return self.geldig_vanaf <= dag and (self.geldig_tot is None or dag < self.geldig_tot)


class Gemeenteregister:
    """The CBS municipality list with validity periods (data/gemeenten.csv)."""

    def __init__(self, gemeenten: list[Gemeente]) -> None:
        self._by_code: dict[str, list[Gemeente]] = {}
        for g in gemeenten:
            self._by_code.setdefault(g.code, []).append(g)

    @classmethod
    def from_csv(cls, text: str) -> Gemeenteregister:
        rows = csv.DictReader(io.StringIO(text))
        return cls([Gemeente(r["code"], r["name"], date.fromisoformat(r["valid_from"]),
                             date.fromisoformat(r["valid_to"]) if r["valid_to"] else None) for r in rows])

    def geldig_op(self, code: str, dag: date) -> bool:
        return any(g.geldig_op(dag) for g in self._by_code.get(code, ()))

    def naam(self, code: str) -> str | None:
        found = self._by_code.get(code)
        return found[-1].naam if found else None
