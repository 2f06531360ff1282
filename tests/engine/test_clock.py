"""Durations run on the monotonic clock (issue 10.9): a wall clock stepped back or forward
(NTP, a VM resumed) neither delays a pending alert, nor hurries it, nor hurries a repeat;
the transitions still show the wall clock. One BTC long on cash 10 (entry 100, maintenance
1 %): at 91.1 equity = 10 + 91.1 − 100 = 1.1, maintenance 0.911, ratio 82.8 % (warning ≥ 80 %,
critical ≥ 90 %); at 91: 0.91 / 1 = 91 % (critical)."""

from __future__ import annotations

from monitor.alerts.engine import TransitionKind
from monitor.alerts.rules import Severity
from monitor.model.events import MarkPrice
from tests.engine.helpers import T0, VENUE, engine, long_btc, rules, snapshot

FOR = rules(pending_for=60.0, repeat={Severity.WARNING: 3600.0, Severity.CRITICAL: 120.0})
HOUR = 3600.0


def _pending_warning(wall_later: float, mono_later: float) -> list[TransitionKind]:
    e, _ = engine(1, r=FOR)
    e.receive([snapshot("a0", 10.0, long_btc(10.0))], T0, 0.0)
    assert e.receive([MarkPrice(VENUE, "BTC", 91.1)], T0, 0.0).transitions == []  # pending
    return [t.kind for t in e.receive([], wall_later, mono_later).transitions]


def test_a_wall_clock_stepped_back_does_not_delay_a_pending_alert() -> None:
    # 60 s of monotonic time have passed; the wall clock says an hour earlier
    assert _pending_warning(T0 - HOUR, 60.0) == [TransitionKind.FIRED]


def test_a_wall_clock_stepped_forward_does_not_hurry_a_pending_alert() -> None:
    # 10 s of monotonic time; the wall clock jumped an hour ahead
    assert _pending_warning(T0 + HOUR, 10.0) == []


def test_a_wall_clock_stepped_forward_does_not_hurry_a_repeat_and_shows_wall_time() -> None:
    e, _ = engine(1, r=FOR)
    e.receive([snapshot("a0", 10.0, long_btc(10.0))], T0, 0.0)
    [fired] = e.receive([MarkPrice(VENUE, "BTC", 91.0)], T0, 0.0).transitions
    assert fired.severity is Severity.CRITICAL
    assert e.receive([], T0 + HOUR, 10.0).transitions == []  # 10 s, not an hour
    [rep] = e.receive([], T0 + HOUR + 110.0, 120.0).transitions  # 120 s: the repeat is due
    assert rep.kind is TransitionKind.REPEAT
    assert rep.at == T0 + HOUR + 110.0  # what people see is the wall clock
    assert rep.since == T0 + HOUR + 110.0 - 120.0  # active for 120 s (monotonic)


def test_a_replay_runs_on_the_recordings_time() -> None:
    e, _ = engine(1, r=FOR, replay=True)
    e.receive([snapshot("a0", 10.0, long_btc(10.0))], T0, 0.0)
    e.receive([MarkPrice(VENUE, "BTC", 91.1)], T0, 0.0)
    # the recording's clock moved 60 s while the process's monotonic clock barely did
    assert [t.kind for t in e.receive([], T0 + 60.0, 0.001).transitions] == [TransitionKind.FIRED]
