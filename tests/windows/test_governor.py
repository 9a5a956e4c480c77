"""The overhead governor's decisions, from injected measurements and an injected clock."""

from __future__ import annotations

import logging

import pytest

from otelprof.windows.governor import OverheadGovernor, log_admission
from tests.windows.helpers import FakeClock


def _governor(clock: FakeClock, budget: float = 0.01, **kw: float) -> OverheadGovernor:
    return OverheadGovernor(
        budget, horizon_seconds=600.0, clock=clock, prior_cost_factors={"precise:wall": 2.0}, **kw
    )


def _run_app(
    governor: OverheadGovernor,
    clock: FakeClock,
    seconds: int,
    cpu_rate: float,
    agent_rate: float = 0.0,
) -> None:
    """The process burns ``cpu_rate`` CPU/s, of which the agent's threads ``agent_rate``."""
    for _ in range(seconds):
        clock.advance(1.0)
        governor.record_usage(cpu_rate, agent_rate, 1.0)


def test_no_window_before_the_application_rate_is_known():
    clock = FakeClock()
    governor = _governor(clock)
    _run_app(governor, clock, 5, 1.0)
    admission = governor.admit("precise:wall", 1.0)
    assert admission.seconds == 0.0 and admission.reason == "warming up"


def test_a_window_that_fits_the_budget_opens_in_full():
    clock = FakeClock()
    governor = _governor(clock)
    _run_app(governor, clock, 600, 1.0, 0.002)  # 600 CPU s -> 6 CPU s budget, 1.2 spent
    admission = governor.admit("precise:wall", 1.0)  # predicted 2 x 0.998 CPU s
    assert admission.seconds == 1.0 and admission.reason == ""
    assert admission.predicted_cpu_seconds == pytest.approx(2.0 * 0.998)
    assert admission.allowed_cpu_seconds == pytest.approx(6.0 - 1.2)


def test_a_window_too_big_for_the_budget_is_shortened_to_what_fits():
    clock = FakeClock()
    governor = _governor(clock)
    _run_app(governor, clock, 600, 1.0)
    _run_app(governor, clock, 1, 1.0, 1.2)  # the agent's threads have spent 1.2 CPU s
    admission = governor.admit("precise:wall", 10.0)  # predicted ~20 CPU s, ~4.8 left
    assert admission.reason == "shortened"
    usual_rate = 600.0 / 601.0  # the application's own CPU per second, outside windows
    assert admission.seconds == pytest.approx((6.01 - 1.2) / (2.0 * usual_rate))
    assert governor.shortened["precise:wall"] == 1


def test_a_window_is_skipped_when_less_than_the_minimum_would_fit():
    clock = FakeClock()
    governor = _governor(clock, min_window_seconds=0.5)
    _run_app(governor, clock, 600, 1.0)
    # A window that cost 4.5 CPU s: 1.5 CPU s left, and windows now cost 4.5 CPU s per second.
    governor.record_window("precise:wall", 1.0, 1.0 + 4.5)
    admission = governor.admit("precise:wall", 1.0)
    assert admission.seconds == 0.0 and admission.reason == "skipped"
    assert governor.skipped["precise:wall"] == 1


def test_the_cost_factor_is_learned_from_measured_windows():
    clock = FakeClock()
    governor = _governor(clock)
    _run_app(governor, clock, 100, 0.5)
    # A 2 s window during which the application used 1.4 CPU s instead of its usual 1.0.
    extra = governor.record_window("precise:wall", 2.0, 1.4)
    assert extra == pytest.approx(0.4)
    assert governor.cost_factors["precise:wall"] == pytest.approx(0.4)
    governor.record_window("precise:wall", 2.0, 2.0)  # then one at factor 1.0: averaged
    assert governor.cost_factors["precise:wall"] == pytest.approx(0.7)


def test_an_idle_application_teaches_nothing_about_cost():
    clock = FakeClock()
    governor = _governor(clock)
    _run_app(governor, clock, 100, 0.0)
    governor.record_window("precise:wall", 2.0, 0.0)
    assert governor.cost_factors["precise:wall"] == 2.0


def test_spending_leaves_the_budget_once_it_is_older_than_the_horizon():
    clock = FakeClock()
    governor = _governor(clock)
    _run_app(governor, clock, 600, 1.0)
    governor.record_window("precise:wall", 1.0, 1.0 + 5.9)  # leaves 0.1 CPU s of budget
    assert governor.admit("precise:wall", 1.0).reason == "skipped"
    _run_app(governor, clock, 601, 1.0)  # the expensive window is out of the horizon now
    assert governor.admit("precise:wall", 1.0).reason == ""


def test_counters_are_exported_as_attributes():
    clock = FakeClock()
    governor = _governor(clock)
    _run_app(governor, clock, 600, 1.0, 0.002)
    governor.admit("precise:wall", 1.0)
    governor.admit("precise:wall", 100.0)
    governor.note_on_demand("memory")
    attributes = dict(governor.attributes())
    assert attributes["otelprof.windows.opened"] == 3
    assert attributes["otelprof.windows.shortened"] == 1
    assert attributes["otelprof.windows.skipped"] == 0
    assert attributes["otelprof.overhead.cpu_ratio"] == pytest.approx(0.002)
    assert attributes["otelprof.overhead.budget"] == 0.01


def test_each_adjustment_is_logged_once(caplog: pytest.LogCaptureFixture):
    clock = FakeClock()
    governor = _governor(clock)
    _run_app(governor, clock, 600, 1.0)
    with caplog.at_level(logging.INFO, logger="otelprof"):
        log_admission("precise", 1.0, governor.admit("precise:wall", 1.0), 0.01)
        log_admission("precise", 10.0, governor.admit("precise:wall", 10.0), 0.01)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "shortened from 10 s to 3 s" in lines[0] and "1% CPU budget" in lines[0]


def test_a_saturated_application_is_charged_through_the_measured_slowdown():
    clock = FakeClock()
    governor = _governor(clock)
    _run_app(governor, clock, 100, 1.0)  # the application uses all the CPU it can get
    # During the window it used no more CPU (it just served less): the rate says nothing ...
    assert governor.record_window("precise:wall", 2.0, 2.0) == 0.0
    # ... but the probe ran 4 times slower: three quarters of that CPU went to the window.
    assert governor.record_window("precise:wall", 2.0, 2.0, slowdown=4.0) == pytest.approx(1.5)
    assert governor.cost_factors["precise:wall"] == pytest.approx(0.375)
