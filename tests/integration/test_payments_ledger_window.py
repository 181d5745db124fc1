"""The ledger per ggz keeps only its latest bookings (payments/grootboek.py), on the real server: every booking
counts once however many there are, also when repeated at once, after a move that died halfway, or when a move
comes between a booking's look-up and its write; and a ledger written before the window is moved out of it."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from payments.grootboek import INDELING, VENSTER, Grootboek
from payments.repository import PaymentsRepository

KVK = "12345678"


def bedrag(i: int) -> dict[str, dict[str, int]]:
    return {"totaal": {"besteld_cents": 100 + i}, "rijk": {"besteld_cents": 60 + i}, "gemeente": {"besteld_cents": 40}}


async def _repo(mongo: Any, namespace: str, naam: str) -> PaymentsRepository:
    repo = PaymentsRepository(mongo[f"{namespace}{naam}".replace(".", "_")])
    await repo.ensure_indexes()
    return repo


async def _klopt(repo: PaymentsRepository, sleutels: set[int]) -> dict[str, Any]:
    """The ledger, after checking that its totals are the sum of exactly the bookings ``sleutels``."""
    alle = await repo.boekingen_van(KVK)
    assert sorted(alle) == sorted(f"o-{i:04d}:besteld" for i in sleutels)
    kop = await repo.grootboek_van(KVK)
    assert kop is not None
    assert kop["totaal"]["besteld_cents"] == sum(100 + i for i in sleutels)
    assert kop["rijk"]["besteld_cents"] == sum(60 + i for i in sleutels)
    assert kop["gemeente"]["besteld_cents"] == 40 * len(sleutels)
    return kop


async def test_many_bookings_repeated_at_once_count_once_and_the_ledger_stays_small(mongo, namespace):
    repo = await _repo(mongo, namespace, "payments_venster")
    sleutels = list(range(300))
    rij = [i for i in sleutels for _ in range(2)]  # every booking delivered twice
    random.Random(14).shuffle(rij)
    uitkomst: dict[int, list[bool]] = {}

    async def werker(mijn: list[int]) -> None:
        for i in mijn:
            uitkomst.setdefault(i, []).append(await repo.boeken(KVK, f"o-{i:04d}:besteld", bedrag(i)))

    await asyncio.gather(*(werker(rij[k::6]) for k in range(6)))

    kop = await _klopt(repo, set(sleutels))
    assert all(sorted(u) == [False, True] for u in uitkomst.values())  # booked now once, found once
    assert len(kop.get("boekingen") or {}) <= VENSTER + 6  # a window, not 300 keys
    assert kop["tijdperk"] >= 300 // (VENSTER + 6)
    assert await repo.grootboek.database["grootboekposten"].count_documents({"kvk": KVK}) >= 300 - VENSTER - 6


async def test_a_move_that_died_after_copying_books_nothing_twice(mongo, namespace):
    repo = await _repo(mongo, namespace, "payments_verhuis")
    for i in range(20):
        assert await repo.boeken(KVK, f"o-{i:04d}:besteld", bedrag(i))
    kop = await repo.grootboek_van(KVK)
    assert kop is not None and len(kop["boekingen"]) == 20
    # the move copied the window and was killed before the ledger's write: the bookings are in both places
    await repo.ledger._kopieer(KVK, kop["boekingen"])
    for i in range(40):  # the first 20 again (both places hold them), 20 new, and moves on the way
        assert await repo.boeken(KVK, f"o-{i:04d}:besteld", bedrag(i)) == (i >= 20)
    await repo.boeken_samen(KVK, [(f"o-{i:04d}:besteld", bedrag(i)) for i in range(60)])
    await _klopt(repo, set(range(60)))


async def test_a_move_between_a_bookings_look_up_and_its_write_refuses_the_write(mongo, namespace):
    """The interleaving the ``tijdperk`` guard exists for: process A reads the ledger (its key not there), B books
    the same key and moves the window out, A looks in the moved bookings (before B's copy), and writes."""
    repo = await _repo(mongo, namespace, "payments_tijdperk")
    for i in range(VENSTER - 1):
        await repo.boeken(KVK, f"o-{i:04d}:besteld", bedrag(i))
    echt = repo.ledger.posten
    b = Grootboek(repo.grootboek, echt)
    doel = f"o-{VENSTER + 5:04d}:besteld"

    class Tussendoor:
        """``posten`` for A: right after A's look-up of its key, B books it and moves the window."""

        def __init__(self) -> None:
            self.gedaan = False

        def __getattr__(self, naam: str) -> Any:
            return getattr(echt, naam)

        async def find_one(self, *args: Any, **kwargs: Any) -> Any:
            found = await echt.find_one(*args, **kwargs)
            if not self.gedaan:
                self.gedaan = True
                assert found is None
                assert await b.boeken(KVK, doel, bedrag(VENSTER + 5))  # the window is full now
                kop = await b._kop(KVK)
                assert kop is not None and await b._verplaats(kop)
            return found

    a = Grootboek(repo.grootboek, Tussendoor())  # type: ignore[arg-type]
    assert await a.boeken(KVK, doel, bedrag(VENSTER + 5)) is False
    await _klopt(repo, set(range(VENSTER - 1)) | {VENSTER + 5})


async def test_bookings_with_other_fields_and_in_bulk_after_a_partial_attempt(mongo, namespace):
    repo = await _repo(mongo, namespace, "payments_samen")
    assert await repo.boeken(KVK, "o-0000:besteld", bedrag(0), zetten={"open_terugvorderingen.t-1": True})
    assert await repo.boeken(KVK, "o-0001:besteld", bedrag(1), zetten={"open_terugvorderingen.t-2": True},
                             wissen=("open_terugvorderingen.t-1",))
    assert not await repo.boeken(KVK, "o-0001:besteld", bedrag(1), wissen=("open_terugvorderingen.t-2",))
    kop = await repo.grootboek_van(KVK)
    assert kop is not None and kop["open_terugvorderingen"] == {"t-2": True}  # the refused repeat changed nothing
    alle = [(f"o-{i:04d}:besteld", bedrag(i)) for i in range(150)]
    await repo.boeken_samen(KVK, alle[:70] + alle[:5])  # a key twice in one call counts once
    await repo.boeken_samen(KVK, list(reversed(alle)))  # the repeat after a crash: only the 80 not yet booked
    kop = await _klopt(repo, set(range(150)))
    assert kop["open_terugvorderingen"] == {"t-2": True}


async def test_a_ledger_written_before_the_window_is_moved_out_of_it(mongo, namespace):
    repo = await _repo(mongo, namespace, "payments_oud")
    oud = {f"o-{i:04d}:besteld": bedrag(i) for i in range(500)}
    await repo.grootboek.insert_one({"_id": KVK, "revision": 501, "boekingen": oud,
                                     "totaal": {"besteld_cents": sum(100 + i for i in range(500))},
                                     "rijk": {"besteld_cents": sum(60 + i for i in range(500))},
                                     "gemeente": {"besteld_cents": 40 * 500},
                                     "open_terugvorderingen": {"t-9": True}})
    assert not await repo.boeken(KVK, "o-0007:besteld", bedrag(7))  # moved by the booking's own read
    kop = await repo.grootboek_van(KVK)
    assert kop is not None and kop["indeling"] == INDELING and not kop.get("boekingen")
    assert await repo.ledger.deel_uit() == 0  # nothing left to move; the start's move finds nothing
    assert await repo.boeken(KVK, "o-0500:besteld", bedrag(500))
    kop = await _klopt(repo, set(range(501)))
    assert kop["open_terugvorderingen"] == {"t-9": True}
    # at start: every old ledger of the database
    await repo.grootboek.insert_one({"_id": "87654321", "revision": 3, "boekingen": {"o-1:besteld": bedrag(1)},
                                     "totaal": {"besteld_cents": 101}})
    assert await repo.ledger.deel_uit() == 1
    assert await repo.boekingen_van("87654321") == {"o-1:besteld": bedrag(1)}
