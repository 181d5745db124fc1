"""The rehearsal clock (servicekit/clock.py) as pure logic, with a fake real time; the CLI's parsing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
import typer
from tests.support.infra import ROOT

from ipsflow_cli.klok import lagging, parse_moment
from process_engine.bootstrap import load_catalogue
from servicekit.clock import (
    CLOCK_COMMAND,
    EX_CONFIG,
    AdjustableClock,
    ClockRefused,
    ClockState,
    SystemClock,
    make_clock,
)
from servicekit.settings import ServiceSettings

AMSTERDAM = ZoneInfo("Europe/Amsterdam")


class FakeRealTime:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def test_the_system_clock_is_real_utc_time_and_not_adjustable():
    clock = SystemClock()
    assert clock.adjustable is False and clock.state.offset == timedelta(0)
    assert clock().tzinfo is not None
    assert abs(clock() - datetime.now(UTC)) < timedelta(seconds=5)


def test_a_set_clock_reads_the_set_time_and_then_runs_on():
    real = FakeRealTime(datetime(2026, 11, 29, 3, 0, tzinfo=UTC))
    clock = AdjustableClock(real)
    assert clock() == real.now  # unset: real time
    target = datetime(2026, 3, 3, 9, 0, tzinfo=AMSTERDAM)
    assert clock.apply(clock.setting(target))
    assert clock() == target
    real.now += timedelta(hours=30)
    assert clock() == target + timedelta(hours=30)
    assert clock.apply(clock.setting(None))
    assert clock() == real.now and clock.state.offset == timedelta(0)


def test_a_setting_needs_a_timezone():
    with pytest.raises(ValueError, match="timezone"):
        AdjustableClock().setting(datetime(2026, 3, 3, 9, 0))


def test_the_later_setting_wins_whatever_order_they_arrive_in():
    base = datetime(2026, 11, 29, 3, 0, tzinfo=UTC)
    older = ClockState(timedelta(days=1), base)
    newer = ClockState(timedelta(days=2), base + timedelta(seconds=1))
    clock = AdjustableClock(FakeRealTime(base))
    assert clock.apply(newer)
    assert not clock.apply(older)
    assert not clock.apply(newer)  # a redelivery changes nothing
    assert clock.state == newer
    assert not clock.apply(ClockState(timedelta(days=9), None))  # a setting without a time never overrides one


def test_the_wire_form_round_trips_and_a_malformed_one_is_refused_without_echoing_it():
    state = ClockState(timedelta(days=-270, seconds=12.5), datetime(2026, 11, 29, 3, 0, tzinfo=UTC))
    data = state.to_data(datetime(2026, 3, 3, 8, 0, tzinfo=UTC))
    assert data["nu"].startswith("2026-03-03T08:00")
    assert ClockState.from_data(data) == state
    for broken in ({}, {**data, "verschuivingSeconden": "veel"}, {**data, "gezetOp": "gisteren"},
                   {**data, "gezetOp": "2026-11-29T03:00:00"}):
        with pytest.raises(ValueError) as refused:
            ClockState.from_data(broken)
        assert "veel" not in str(refused.value) and "gisteren" not in str(refused.value)


@pytest.mark.parametrize("environment", ["development", "test"])
def test_an_adjustable_clock_is_given_outside_production(environment):
    settings = ServiceSettings(adjustable_clock=True, environment=environment)
    assert isinstance(make_clock(settings), AdjustableClock)


def test_an_adjustable_clock_in_production_refuses_with_ex_config():
    with pytest.raises(ClockRefused) as refused:
        make_clock(ServiceSettings(adjustable_clock=True, environment="production"))
    assert refused.value.code == EX_CONFIG
    assert "production" in refused.value.reason


def test_production_without_the_setting_runs_on_real_time():
    assert isinstance(make_clock(ServiceSettings(environment="production")), SystemClock)


def test_the_clock_command_is_documented_but_no_diagram_may_name_it():
    readme = (ROOT / "bpmn" / "README.md").read_text()
    assert f"`{CLOCK_COMMAND}`" in readme
    catalogue = load_catalogue(str(ROOT / "bpmn" / "README.md"))
    assert catalogue is not None and "ips.aanvraag.toetsen.v1" in catalogue
    assert CLOCK_COMMAND not in catalogue


def test_the_cli_reads_dates_as_amsterdam_time():
    assert parse_moment("2026-03-03") == datetime(2026, 3, 3, 9, 0, tzinfo=AMSTERDAM)
    assert parse_moment("2026-04-29T14:30") == datetime(2026, 4, 29, 14, 30, tzinfo=AMSTERDAM)
    assert parse_moment("2026-04-29T14:30+00:00") == datetime(2026, 4, 29, 14, 30, tzinfo=UTC)
    with pytest.raises(typer.BadParameter):
        parse_moment("morgen")


def test_the_cli_names_every_service_not_yet_on_the_new_time():
    clocks = {"intake": {"verstelbaar": True, "verschuivingSeconden": 86400.2},
              "grants": {"verstelbaar": True, "verschuivingSeconden": 0.0},
              "payments": {"verstelbaar": False, "verschuivingSeconden": 0.0},
              "notifications": "onbereikbaar op http://127.0.0.1:8004 (ConnectError)"}
    assert lagging(clocks, 86400.0) == ["grants", "payments", "notifications"]
