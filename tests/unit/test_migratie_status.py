"""A migration's status as the API shows it (process_engine/migratie.py): a background run that stopped writing
its progress (the engine stopped during the run) is "onderbroken", not "bezig" for ever; records from before
background runs are "klaar"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from process_engine.migratie import STIL_SECONDEN, _status

NU = datetime(2026, 11, 29, 10, 0, tzinfo=UTC)


def test_a_run_without_progress_for_too_long_is_interrupted() -> None:
    assert _status({"status": "bezig", "bijgewerkt": NU - timedelta(seconds=5)}, NU) == "bezig"
    assert _status({"status": "bezig", "bijgewerkt": NU - timedelta(seconds=STIL_SECONDEN + 1)}, NU) == "onderbroken"
    # the database gives naive UTC datetimes back
    stale = (NU - timedelta(seconds=STIL_SECONDEN + 1)).replace(tzinfo=None)
    assert _status({"status": "bezig", "bijgewerkt": stale}, NU) == "onderbroken"


def test_finished_failed_and_old_records() -> None:
    old = NU - timedelta(days=1)
    assert _status({"status": "klaar", "bijgewerkt": old}, NU) == "klaar"
    assert _status({"status": "mislukt", "bijgewerkt": old}, NU) == "mislukt"
    assert _status({}, NU) == "klaar"
