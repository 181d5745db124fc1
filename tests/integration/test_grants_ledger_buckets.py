"""The budget ledger's entries in documents per aanvraag (grants/repository.py ``_boek``), on the real server: a
booking is two writes, a crash between the ledger's write and the document's loses nothing and books nothing
twice, concurrent bookings never over-commit and keep the totals equal to the entries, a booking of before session
14 is applied from its intent, and ledgers of older layouts are moved into documents per aanvraag."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime
from typing import Any

import pytest

from grants.regelingen import load_regelingen
from grants.repository import EMMERS_256, GROEPEN, INDELING, GrantsRepository, groep, ledger_id, post_id

AT = datetime(2026, 3, 1, tzinfo=UTC)
PLAFOND = 60_000_000


class Gestopt(Exception):
    """Stands for the process being killed between the ledger's write and the bucket's."""


async def _repo(mongo: Any, namespace: str, naam: str) -> tuple[GrantsRepository, str]:
    repo = GrantsRepository(mongo[f"{namespace}{naam}".replace(".", "_")])
    await repo.ensure_ledger(load_regelingen()["ips-cmd-2019"], "2019")
    return repo, ledger_id("ips-cmd-2019", "2019")


async def _klopt(repo: GrantsRepository, lid: str) -> dict[str, Any]:
    """The ledger with its entries, after checking that its totals are the sum of them."""
    [ledger] = await repo.posten_van([await repo.get_ledger(lid)])
    posten = ledger["reserveringen"].values()
    gereserveerd = sum(p["bedragCents"] for p in posten if p["status"] == "gereserveerd")
    vastgelegd = sum(p["bedragCents"] for p in posten if p["status"] == "vastgelegd")
    assert ledger["gereserveerd_cents"] == gereserveerd and ledger["vastgelegd_cents"] == vastgelegd
    assert ledger["plafond_cents"] - ledger["beschikbaar_cents"] == gereserveerd + vastgelegd
    assert ledger["beschikbaar_cents"] >= 0 and ledger["aantal_reserveringen"] == len(ledger["reserveringen"])
    for soort in ("betaald_cents", "vastgesteld_cents"):
        assert ledger.get(soort, 0) == sum(int(p.get(soort, 0)) for p in ledger["financieel"].values())
    return ledger


async def test_a_crash_between_the_ledger_and_its_bucket_loses_nothing_and_books_nothing_twice(mongo, namespace):
    repo, lid = await _repo(mongo, namespace, "grants_bak")
    echt = repo._haal_in

    async def gestopt(*args: Any) -> None:
        raise Gestopt

    repo._haal_in = gestopt  # type: ignore[method-assign]
    with pytest.raises(Gestopt):
        await repo.reserve_budget(lid, "a-1", 800_000, AT)
    assert await repo.posten.find_one({"_id": post_id(lid, "a-1")}) is None  # the entry is in the head only
    assert (await repo.get_ledger(lid))["boeking"][groep("a-1")]["post"]["bedragCents"] == 800_000
    assert (await repo.reservering(lid, "a-1"))["status"] == "gereserveerd"  # read from the ledger's last booking
    assert (await _klopt(repo, lid))["gereserveerd_cents"] == 800_000

    repo._haal_in = echt  # type: ignore[method-assign]
    assert await repo.reserve_budget(lid, "a-1", 800_000, AT)  # the redelivered command: held, not twice
    ledger = await _klopt(repo, lid)
    assert (ledger["beschikbaar_cents"], ledger["gereserveerd_cents"]) == (PLAFOND - 800_000, 800_000)
    post = await repo.posten.find_one({"_id": post_id(lid, "a-1")})
    assert post["versie"] == 1 and post["reserveringen"]["bedragCents"] == 800_000 and post["voornemens"] == {}

    repo._haal_in = gestopt  # type: ignore[method-assign]
    with pytest.raises(Gestopt):
        await repo.release_budget(lid, "a-1", 800_000)
    repo._haal_in = echt  # type: ignore[method-assign]
    assert await repo.reservering(lid, "a-1") is None  # the release stands, though the document is behind
    await repo.release_budget(lid, "a-1", 800_000)
    ledger = await _klopt(repo, lid)
    assert (ledger["beschikbaar_cents"], ledger["aantal_reserveringen"]) == (PLAFOND, 0)
    assert "reserveringen" not in await repo.posten.find_one({"_id": post_id(lid, "a-1")})


class _StoptBijHetGrootboek:
    """The ledger collection, but its first booking write stands for a kill just before it reached the server."""

    def __init__(self, echt: Any) -> None:
        self.echt, self.gestopt = echt, False

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        if not self.gestopt and "laatste" in str(args[1].get("$set")):
            self.gestopt = True
            raise Gestopt
        return await self.echt.update_one(*args, **kwargs)

    def __getattr__(self, naam: str) -> Any:
        return getattr(self.echt, naam)


async def test_a_crash_before_the_ledgers_write_leaves_nothing_and_books_once_on_retry(mongo, namespace):
    repo, lid = await _repo(mongo, namespace, "grants_bak_voor")
    echt = repo.budgetten
    repo.budgetten = _StoptBijHetGrootboek(echt)  # type: ignore[assignment]
    with pytest.raises(Gestopt):
        await repo.register_financial(lid, "a-2", "cmd-1", {"betaald_cents": 300})
    repo.budgetten = echt
    assert (await repo.posten_van([await repo.get_ledger(lid)]))[0]["financieel"] == {}  # nothing counts
    assert await repo.posten.find_one({"_id": post_id(lid, "a-2")}) is None  # and nothing was written
    assert (await repo.register_financial(lid, "a-2", "cmd-1", {"betaald_cents": 300}))["betaald_cents"] == 300
    assert (await repo.register_financial(lid, "a-2", "cmd-1", {"betaald_cents": 300}))["versie"] == 1
    ledger = await _klopt(repo, lid)
    assert ledger["betaald_cents"] == 300 and ledger["financieel"]["a-2"]["commands"] == ["cmd-1"]
    post = await repo.posten.find_one({"_id": post_id(lid, "a-2")})
    assert post["versie"] == 1 and post["voornemens"] == {}


class _Schrijfteller:
    """A collection that counts the writes made through it."""

    def __init__(self, echt: Any) -> None:
        self.echt, self.writes = echt, 0

    async def update_one(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return await self.echt.update_one(*args, **kwargs)

    async def insert_one(self, *args: Any, **kwargs: Any) -> Any:
        self.writes += 1
        return await self.echt.insert_one(*args, **kwargs)

    def __getattr__(self, naam: str) -> Any:
        return getattr(self.echt, naam)


async def test_a_booking_is_two_writes_the_ledgers_head_and_the_aanvraags_document(mongo, namespace):
    repo, lid = await _repo(mongo, namespace, "grants_bak_twee")
    repo.budgetten, repo.posten = _Schrijfteller(repo.budgetten), _Schrijfteller(repo.posten)  # type: ignore[assignment]
    assert await repo.reserve_budget(lid, "t-1", 800_000, AT)  # the first: the head, then the document inserted
    assert (repo.budgetten.writes, repo.posten.writes) == (1, 1)  # type: ignore[attr-defined]
    assert (await repo.commit_budget(lid, "t-1", 800_000, AT))["status"] == "vastgelegd"
    assert (repo.budgetten.writes, repo.posten.writes) == (2, 2)  # type: ignore[attr-defined]
    post = await repo.posten.find_one({"_id": post_id(lid, "t-1")})
    assert post["versie"] == 2 and post["reserveringen"]["status"] == "vastgelegd"
    assert (await _klopt(repo, lid))["vastgelegd_cents"] == 800_000


async def test_a_booking_of_before_session_14_named_by_the_head_is_applied_from_its_intent(mongo, namespace):
    """Until session 14 a booking wrote its intent into the aanvraag's document before the head named it; a head
    left by a kill between the two later writes of such a booking is applied from that intent."""
    repo, lid = await _repo(mongo, namespace, "grants_bak_voor14")
    g = groep("v-1")
    ander = next(a for a in (f"w-{i}" for i in range(400)) if groep(a) == g)  # a later booking of the same group
    await repo.posten.insert_one({"_id": post_id(lid, "v-1"), "ledger": lid, "aanvraag": "v-1", "voornemens": {
        "abc": {"soort": "reserveringen", "post": {"bedragCents": 800_000, "status": "gereserveerd", "at": AT}}}})
    await repo.budgetten.update_one({"_id": lid}, {"$inc": {"beschikbaar_cents": -800_000,
                                                            "gereserveerd_cents": 800_000, "aantal_reserveringen": 1},
                                                   "$set": {f"laatste.{g}": "1:abc:v-1"}})
    assert (await repo.reservering(lid, "v-1"))["status"] == "gereserveerd"
    assert (await _klopt(repo, lid))["reserveringen"]["v-1"]["bedragCents"] == 800_000
    assert await repo.reserve_budget(lid, ander, 800_000, AT)  # applies v-1's intent first
    post = await repo.posten.find_one({"_id": post_id(lid, "v-1")})
    assert post["versie"] == 1 and post["reserveringen"]["status"] == "gereserveerd" and post["voornemens"] == {}
    assert await repo.reserve_budget(lid, "v-1", 800_000, AT)  # held: not twice
    assert (await _klopt(repo, lid))["gereserveerd_cents"] == 1_600_000


async def test_concurrent_bookings_never_over_commit(mongo, namespace):
    repo, lid = await _repo(mongo, namespace, "grants_bak_samen")
    await repo.set_plafond(lid, 10 * 800_000, None)
    # 12 aanvragen of one group (their bookings take turns) and 4 of others (they do not wait for them)
    een = [a for a in (f"a-{i}" for i in range(40 * GROEPEN)) if groep(a) == groep("a-0")][:12]
    ids = een + [a for a in (f"b-{i}" for i in range(40)) if groep(a) != groep("a-0")][:4]
    assert len(ids) == 16
    # every aanvraag asked twice at once (a redelivery racing the first), 16 for room for 10
    results = await asyncio.gather(*(repo.reserve_budget(lid, a, 800_000, AT) for a in ids + ids))
    held = {a for a, ok in zip(ids + ids, results, strict=True) if ok}
    assert len(held) == 10
    ledger = await _klopt(repo, lid)
    assert ledger["beschikbaar_cents"] == 0 and set(ledger["reserveringen"]) == held
    # commits, releases and financial totals, all at once and each twice
    houden, teruggeven = sorted(held)[:5], sorted(held)[5:]
    await asyncio.gather(*(repo.commit_budget(lid, a, 800_000, AT) for a in houden * 2),
                         *(repo.release_budget(lid, a, 800_000) for a in teruggeven * 2),
                         *(repo.register_financial(lid, a, f"cmd-{a}", {"betaald_cents": 100})
                           for a in houden * 2))
    ledger = await _klopt(repo, lid)
    assert set(ledger["reserveringen"]) == set(houden)
    assert {p["status"] for p in ledger["reserveringen"].values()} == {"vastgelegd"}
    assert ledger["vastgelegd_cents"] == 5 * 800_000 and ledger["betaald_cents"] == 500
    assert all(ledger["financieel"][a]["commands"] == [f"cmd-{a}"] for a in houden)


async def test_bookings_killed_at_random_then_retried_leave_the_totals_equal_to_the_entries(mongo, namespace):
    """Random bookings on a few buckets, a random part of them cancelled at a random await (a kill), then every
    one repeated to its end (the redelivery): each aanvraag ends as its last step says, the totals agree."""
    repo, lid = await _repo(mongo, namespace, "grants_bak_kill")
    rnd = random.Random(20261129)
    ids = [f"k-{i}" for i in range(24)]
    stappen: list[tuple[str, str]] = []
    for a in ids:
        stappen.append(("reserveren", a))
        stappen += [(rnd.choice(["vastleggen", "vrijgeven", "financieel"]), a) for _ in range(rnd.randint(0, 2))]

    async def stap(soort: str, a: str) -> None:
        if soort == "reserveren":
            assert await repo.reserve_budget(lid, a, 100_000, AT)
        elif soort == "vastleggen":
            await repo.commit_budget(lid, a, 100_000, AT)
        elif soort == "vrijgeven":
            await repo.release_budget(lid, a, 100_000)
        else:
            await repo.register_financial(lid, a, f"{a}-fin", {"betaald_cents": 7, "vastgesteld_cents": None})

    gedood = 0
    for per_aanvraag in _per_aanvraag(stappen):
        for soort, a in per_aanvraag:
            taak = asyncio.ensure_future(stap(soort, a))
            await asyncio.sleep(rnd.choice([0, 0, 0.001, 0.003]))
            if not taak.done():
                taak.cancel()
                gedood += 1
            with _stil():
                await taak
            await stap(soort, a)  # the redelivery runs it to its end
    assert gedood > 0
    ledger = await _klopt(repo, lid)
    for a in ids:
        laatste = [s for s, x in stappen if x == a and s in ("reserveren", "vastleggen", "vrijgeven")]
        verwacht = None
        for s in laatste:
            verwacht = {"reserveren": "gereserveerd", "vrijgeven": None,
                        "vastleggen": verwacht and "vastgelegd"}[s]
        assert (ledger["reserveringen"].get(a) or {}).get("status") == verwacht, a


def _per_aanvraag(stappen: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    groepen: dict[str, list[tuple[str, str]]] = {}
    for s in stappen:
        groepen.setdefault(s[1], []).append(s)
    return list(groepen.values())


class _stil:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is asyncio.CancelledError


async def test_a_ledger_written_before_the_documents_per_aanvraag_is_moved_into_them(mongo, namespace):
    repo, _ = await _repo(mongo, namespace, "grants_bak_oud")
    oud_lid = "ips-cmd-2019:oud"
    reserveringen = {f"o-{i}": {"bedragCents": 800_000, "status": "vastgelegd" if i % 2 else "gereserveerd",
                                "at": AT} for i in range(300)}
    financieel = {f"o-{i}": {"betaald_cents": 50, "versie": 1, "commands": [f"f-{i}"]} for i in range(0, 300, 3)}
    vastgelegd = 150 * 800_000
    await repo.budgetten.insert_one({
        "_id": oud_lid, "regeling": "ips-cmd-2019", "periode": "oud", "plafond_cents": PLAFOND * 10,
        "beschikbaar_cents": PLAFOND * 10 - 300 * 800_000,
        "gereserveerd_cents": 150 * 800_000, "vastgelegd_cents": vastgelegd, "betaald_cents": 100 * 50,
        "reserveringen": reserveringen, "financieel": financieel, "revision": 7})

    assert await repo.deel_in() == 1
    kop = await repo.get_ledger(oud_lid)
    assert kop["indeling"] == INDELING and "reserveringen" not in kop and kop["aantal_reserveringen"] == 300
    ledger = await _klopt(repo, oud_lid)
    assert ledger["reserveringen"] == reserveringen and ledger["financieel"] == financieel
    posten = {p["_id"] for p in await repo.posten.find({"ledger": oud_lid}).to_list(None)}
    assert posten == {post_id(oud_lid, a) for a in reserveringen}
    assert await repo.deel_in() == 0  # once is enough

    assert await repo.reserve_budget(oud_lid, "o-0", 800_000, AT)  # held before the move: not twice
    assert (await repo.commit_budget(oud_lid, "o-0", 800_000, AT))["status"] == "vastgelegd"
    entry = await repo.register_financial(oud_lid, "o-0", "f-0", {"betaald_cents": 999, "vastgesteld_cents": None})
    assert entry["betaald_cents"] == 50  # f-0 was booked before the move
    ledger = await _klopt(repo, oud_lid)
    assert ledger["vastgelegd_cents"] == vastgelegd + 800_000

    # a ledger that a read or a booking finds in the old layout is moved first
    await repo.budgetten.insert_one({
        "_id": "ips-cmd-2019:oud2", "regeling": "ips-cmd-2019", "periode": "oud2", "plafond_cents": PLAFOND,
        "beschikbaar_cents": PLAFOND - 800_000, "gereserveerd_cents": 800_000, "vastgelegd_cents": 0,
        "reserveringen": {"x-1": {"bedragCents": 800_000, "status": "gereserveerd", "at": AT}}, "revision": 1})
    assert (await repo.reservering("ips-cmd-2019:oud2", "x-1"))["status"] == "gereserveerd"  # a read moves it too
    assert (await repo.get_ledger("ips-cmd-2019:oud2"))["indeling"] == INDELING
    assert await repo.reserve_budget("ips-cmd-2019:oud2", "x-1", 800_000, AT)
    assert await repo.reserve_budget("ips-cmd-2019:oud2", "x-2", 800_000, AT)
    ledger = await _klopt(repo, "ips-cmd-2019:oud2")
    assert set(ledger["reserveringen"]) == {"x-1", "x-2"} and ledger["gereserveerd_cents"] == 1_600_000


async def test_a_ledger_in_the_256_buckets_of_session_10_is_moved_with_its_last_booking_applied(mongo, namespace):
    repo, _ = await _repo(mongo, namespace, "grants_bak_256")
    lid = "ips-cmd-2019:emmers"
    # as session 10 stored it: entries in buckets, the head naming each bucket's stand; bucket "0b" is behind its
    # head (a kill after the head's write): its intent, the release of b-2, is what counts
    await repo.budgetten.insert_one({
        "_id": lid, "regeling": "ips-cmd-2019", "periode": "emmers", "plafond_cents": PLAFOND,
        "beschikbaar_cents": PLAFOND - 800_000, "gereserveerd_cents": 800_000, "vastgelegd_cents": 0,
        "betaald_cents": 40, "aantal_reserveringen": 1, "indeling": EMMERS_256, "revision": 9,
        "emmers": {"3a": "2:aaa", "0b": "5:ccc"}})
    await repo.posten.insert_many([
        {"_id": f"{lid}/3a", "ledger": lid, "versie": 2, "voornemens": {},
         "reserveringen": {"b-1": {"bedragCents": 800_000, "status": "gereserveerd", "at": AT}},
         "financieel": {"b-1": {"betaald_cents": 40, "versie": 1, "commands": ["f-1"]}}},
        {"_id": f"{lid}/0b", "ledger": lid, "versie": 4, "financieel": {},
         "reserveringen": {"b-2": {"bedragCents": 800_000, "status": "gereserveerd", "at": AT}},
         "voornemens": {"ccc": {"soort": "reserveringen", "aanvraag": "b-2", "post": None}}}])

    assert await repo.deel_in() == 1
    kop = await repo.get_ledger(lid)
    assert kop["indeling"] == INDELING and "emmers" not in kop and kop["aantal_reserveringen"] == 1
    ledger = await _klopt(repo, lid)
    assert set(ledger["reserveringen"]) == {"b-1"} and ledger["financieel"]["b-1"]["commands"] == ["f-1"]
    assert {p["_id"] for p in await repo.posten.find({"ledger": lid}).to_list(None)} == {post_id(lid, "b-1")}
    assert await repo.reserve_budget(lid, "b-1", 800_000, AT)  # held before the move: not twice
    assert await repo.reserve_budget(lid, "b-2", 800_000, AT)  # released before the move: reserved again
    assert (await _klopt(repo, lid))["gereserveerd_cents"] == 1_600_000
