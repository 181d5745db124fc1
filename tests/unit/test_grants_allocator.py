"""The allocator's rule for the number after the head (grants/allocator.py ``stap``): pure, no database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from grants.allocator import BESLIS, DOOR, SLUIT, SLUIT_GAT, SLUIT_STIL, WACHTEN, stap

NU = datetime(2026, 5, 1, 12, tzinfo=UTC)
GAT, STIL = 30.0, timedelta(seconds=300)
AANGEKONDIGD = {"status": "aangekondigd", "aanvraag_id": "A", "op": NU - timedelta(seconds=10)}


def _stap(plaats, verzoek=None, nummer=5, bekend=9, gat_gezien=None, mono=1000.0):
    return stap(plaats, verzoek, nummer, bekend, gat_gezien, mono, NU, GAT, STIL)


def test_a_request_is_decided_as_soon_as_its_number_is_next_whatever_its_age():
    assert _stap(AANGEKONDIGD, "wacht") == BESLIS
    assert _stap({"status": "aangevraagd", "aanvraag_id": "A"}, "wacht") == BESLIS  # came before its announcement
    assert _stap({"status": "vrijgegeven", "aanvraag_id": "A"}, "wacht") == BESLIS  # withdrawn, asked anyway


def test_an_announced_number_holds_the_ones_after_it_until_its_request_comes_or_it_is_stuck():
    assert _stap(AANGEKONDIGD) == WACHTEN
    assert _stap({**AANGEKONDIGD, "op": NU - timedelta(seconds=299)}) == WACHTEN
    assert _stap({**AANGEKONDIGD, "op": NU - timedelta(seconds=300)}) == SLUIT_STIL


def test_decided_given_back_and_closed_numbers_hold_nobody_up():
    assert _stap(AANGEKONDIGD, "besloten") == DOOR  # refused at once on grounds that do not depend on money
    assert _stap({"status": "vrijgegeven", "aanvraag_id": "A"}) == SLUIT
    assert _stap({"status": "gesloten"}) == DOOR


def test_a_missing_number_below_a_known_one_is_a_gap_skipped_after_its_bound_and_nothing_beyond_is_idle():
    assert _stap(None, nummer=10, bekend=9) == WACHTEN  # nothing announced beyond the head
    assert _stap(None, gat_gezien=None) == WACHTEN
    assert _stap(None, gat_gezien=1000.0 - 29.9) == WACHTEN
    assert _stap(None, gat_gezien=1000.0 - 30.0) == SLUIT_GAT
