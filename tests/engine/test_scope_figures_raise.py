"""A scope whose figures raise is decided fail-closed (unknown), never the end of the engine.

``Engine._decide`` evaluates every touched scope (``Portfolio.risk``) and gives it a price
band (``Portfolio.arm``); a price re-checks a band (``Portfolio.rearm``). When one scope's
figures raise there, the other scopes of the same ``receive`` are decided as usual, the
scope alarms ``margin_unknown`` (its other alerts neither fire nor resolve), the failure is
reported once (``Step.figures_failed``, logged by the shell) and the scope is evaluated again
on its next price until its figures compute again.

Figures: one BTC long (size 1, entry 100, maintenance 1 %) on cash 10: at price p the margin
ratio is 0.01·p / (10 + p − 100) (critical at 0.9, clear 0.85): 91 → 0.91 / 1 = 91 %, 100 →
1 / 10 = 10 %."""

from __future__ import annotations

import math
from pathlib import Path
from typing import ClassVar

import pytest
import structlog

from monitor.alerts.engine import Transition, TransitionKind
from monitor.alerts.rules import Severity
from monitor.engine import Engine
from monitor.model.events import MarkPrice
from monitor.model.instruments import MaintenanceSchedule, Tier
from monitor.model.positions import Position, ScopeKey
from tests.engine.helpers import T0, VENUE, engine, long_btc, snapshot


def _cross(account: str) -> ScopeKey:
    return ScopeKey(VENUE, account, "cross")


def _of(step_transitions: list[Transition], account: str) -> list[tuple[str, TransitionKind]]:
    subject = str(_cross(account))
    return [(t.rule, t.kind) for t in step_transitions if t.subject.startswith(subject)]


def _fired_critical_everywhere(e: Engine, accounts: int, at: float = 1.0) -> None:
    """BTC at 91: every account's critical fires (``at``: seconds after T0)."""
    step = e.receive([MarkPrice(VENUE, "BTC", 91.0)], T0 + at, at)
    for i in range(accounts):
        assert _of(step.transitions, f"a{i}") == [("margin_ratio", TransitionKind.FIRED)]


# -- a real input ------------------------------------------------------------------------------
def _absurd() -> tuple[Position, Position]:
    """Two positions a parser's bad scale (issue 10: ``szi``/``entryPx`` 1e200) could
    produce: each applies (values 1e154 and −1e308, sums finite), but each loses ~1e308, and
    ``compute_scope_risk`` sums the losses with ``math.fsum``, which raises ``OverflowError``
    ("intermediate overflow") instead of returning inf."""
    flat = MaintenanceSchedule.flat(0.01)
    long_ = Position("AAA", 1e154, 1e154, maintenance=flat, mark_price=1.0)
    short = Position("BBB", -1e154, 1.0, maintenance=flat, mark_price=1e154)
    return long_, short


def test_a_scope_whose_figures_raise_alarms_unknown_and_the_others_are_decided() -> None:
    """A real input: the absurd positions of :func:`_absurd` make ``Portfolio.risk`` raise
    OverflowError for their scope (before the fix it ended ``receive``, and so the daemon's
    engine loop, at every restart)."""
    e, _ = engine(3)
    e.receive([snapshot(f"a{i}", 10.0, long_btc(10.0)) for i in range(3)], T0, 0.0)
    _fired_critical_everywhere(e, 3)
    # a1's snapshot turns absurd, and BTC back at 100 would resolve every critical
    step = e.receive(
        [snapshot("a1", 10.0, long_btc(10.0), *_absurd()), MarkPrice(VENUE, "BTC", 100.0)],
        T0 + 2,
        2.0,
    )
    # the others are decided as ever
    for account in ("a0", "a2"):
        assert _of(step.transitions, account) == [("margin_ratio", TransitionKind.RESOLVED)]
    # a1 alarms, and its critical is not resolved by figures nobody could compute
    (t,) = [t for t in step.transitions if t.subject == "generic:a1/cross"]
    assert (t.rule, t.kind, t.severity) == (
        "margin_unknown",
        TransitionKind.FIRED,
        Severity.CRITICAL,
    )
    assert "cannot compute margin for generic:a1/cross" in t.detail
    assert "OverflowError" in t.detail
    assert "margin_ratio|generic:a1/cross" in e.state.alerts
    # reported once, with what the log needs
    (failed,) = step.figures_failed
    assert failed.key == _cross("a1") and failed.stage == "figures"
    assert failed.error.startswith("OverflowError: intermediate overflow")
    assert e.figures_failures["generic"] == 1
    # unknown everywhere the engine keeps a figure: ranked worst, status without figures
    assert math.isnan(e.ratios[_cross("a1")])
    assert "worst: margin ratio unknown (generic:a1/cross)" in e.summary()
    doc = step.statuses[_cross("a1")]
    assert doc["margin_ratio"] is None and doc["equity"] is None and doc["positions"] == 3
    assert doc["liquidatable"] is None  # unknown: `monitor status --json` never says false

    # the next BTC price tries it again: still failing, not reported again, nothing resolved
    step = e.receive([MarkPrice(VENUE, "BTC", 100.5)], T0 + 3, 3.0)
    assert _cross("a1") in [r.key for r in step.risks]
    assert step.figures_failed == [] and step.transitions == []
    assert e.figures_failures["generic"] == 2

    # the venue's next snapshot has sane positions: the unknown resolves, and the critical
    # with the figures it can now be decided on (10 %)
    step = e.receive([snapshot("a1", 10.0, long_btc(10.0))], T0 + 4, 4.0)
    assert sorted(_of(step.transitions, "a1")) == [
        ("margin_ratio", TransitionKind.RESOLVED),
        ("margin_unknown", TransitionKind.RESOLVED),
    ]
    assert step.figures_recovered == [_cross("a1")]
    assert e.ratios[_cross("a1")] == pytest.approx(1.005 / 10.5)
    assert not e.book.has_alerts("generic:a1/cross")


# -- a fault-injecting maintenance schedule ---------------------------------------------------
class _Faulty(MaintenanceSchedule):
    """A flat 1 % schedule whose bracket lookup raises while ``broken`` (a margin-model bug
    on an odd tier): every maintenance figure of a position holding it raises, in
    ``Portfolio.risk``, ``rearm``, ``arm`` and the lazy refresh at a new price alike.
    Fault injection, given to the engine through its own public constructors (a
    ``Position``'s ``maintenance``)."""

    broken: ClassVar[bool] = False

    def index_for(self, notional: float) -> int:
        if type(self).broken:
            raise RuntimeError("odd tier")
        return super().index_for(notional)


def _faulty_btc() -> Position:
    return Position("BTC", 1.0, 100.0, maintenance=_Faulty((Tier(0.0, 0.01),)), mark_price=100.0)


def test_a_scope_whose_maintenance_raises_recovers_on_a_later_price_by_itself() -> None:
    """Fault injection (:class:`_Faulty`): a1's BTC position raises in every maintenance
    figure from the second price on; a0 holds the same instrument with sane rules."""
    _Faulty.broken = False
    try:
        e, _ = engine(2)
        e.receive(
            [snapshot("a0", 10.0, long_btc(10.0)), snapshot("a1", 10.0, _faulty_btc())], T0, 0.0
        )
        _fired_critical_everywhere(e, 2)
        _Faulty.broken = True
        step = e.receive([MarkPrice(VENUE, "BTC", 100.0)], T0 + 2, 2.0)
        assert _of(step.transitions, "a0") == [("margin_ratio", TransitionKind.RESOLVED)]
        assert _of(step.transitions, "a1") == [("margin_unknown", TransitionKind.FIRED)]
        (unknown,) = [t for t in step.transitions if t.rule == "margin_unknown"]
        assert unknown.subject == "generic:a1/cross" and "RuntimeError" in unknown.detail
        assert [(f.key, f.error) for f in step.figures_failed] == [
            (_cross("a1"), "RuntimeError: odd tier")
        ]
        # still broken: tried again on the next price, alarmed still, reported once
        step = e.receive([MarkPrice(VENUE, "BTC", 99.0)], T0 + 3, 3.0)
        assert _cross("a1") in [r.key for r in step.risks]
        assert step.transitions == [] and step.figures_failed == []
        # fixed (or the tier left behind): the next price decides it on its true figures,
        # 0.01·100 / (10 + 100 − 100) = 10 %, so the critical resolves too
        _Faulty.broken = False
        step = e.receive([MarkPrice(VENUE, "BTC", 100.0)], T0 + 4, 4.0)
        assert sorted(_of(step.transitions, "a1")) == [
            ("margin_ratio", TransitionKind.RESOLVED),
            ("margin_unknown", TransitionKind.RESOLVED),
        ]
        assert step.figures_recovered == [_cross("a1")]
        assert e.ratios[_cross("a1")] == 0.1
        # armed again: a price inside its band evaluates nothing
        evaluated = e.evaluated
        step = e.receive([MarkPrice(VENUE, "BTC", 100.01)], T0 + 5, 5.0, sweep=False)
        assert step.risks == [] and e.evaluated == evaluated
        # and a crash is decided for both again
        _fired_critical_everywhere(e, 2, at=6.0)
    finally:
        _Faulty.broken = False


class _HighTierFaulty(MaintenanceSchedule):
    """A flat 1 % schedule whose bracket lookup raises, while ``broken``, for a notional
    above 10,000 only (a bug on a far tier): the quick figures and the band at today's
    price compute, ``Portfolio.risk`` does not (its shock search values the position up to
    ×1000). Fault injection, through a ``Position``'s ``maintenance``."""

    broken: ClassVar[bool] = False

    def index_for(self, notional: float) -> int:
        if type(self).broken and notional > 10_000.0:
            raise RuntimeError("odd far tier")
        return super().index_for(notional)


def test_a_scope_whose_figures_raise_in_a_sweep_is_tried_again_on_its_next_price() -> None:
    """Fault injection (:class:`_HighTierFaulty`): the sweep finds a1's figures raising
    while its price stayed inside its band; its next price evaluates it again (a band
    re-check alone would find nothing crossed and keep the unknown until the next sweep),
    and once the figures compute the unknown resolves."""
    schedule = _HighTierFaulty((Tier(0.0, 0.01),))
    btc = Position("BTC", 1.0, 100.0, maintenance=schedule, mark_price=100.0)
    try:
        e, _ = engine(1)
        e.receive([snapshot("a0", 10.0, btc)], T0, 0.0)
        _HighTierFaulty.broken = True
        step = e.receive([MarkPrice(VENUE, "BTC", 100.01)], T0 + 1, 1.0, sweep=False)
        assert step.risks == []  # inside its band
        step = e.receive([], T0 + 6, 6.0)  # the sweep's round
        assert _of(step.transitions, "a0") == [("margin_unknown", TransitionKind.FIRED)]
        assert [f.error for f in step.figures_failed] == ["RuntimeError: odd far tier"]
        step = e.receive([MarkPrice(VENUE, "BTC", 100.02)], T0 + 7, 7.0, sweep=False)
        assert [r.key for r in step.risks] == [_cross("a0")]  # tried again
        assert step.transitions == [] and step.figures_failed == []
        _HighTierFaulty.broken = False
        step = e.receive([MarkPrice(VENUE, "BTC", 100.03)], T0 + 8, 8.0, sweep=False)
        assert _of(step.transitions, "a0") == [("margin_unknown", TransitionKind.RESOLVED)]
        assert step.figures_recovered == [_cross("a0")]
    finally:
        _HighTierFaulty.broken = False


class _BandFaulty(MaintenanceSchedule):
    """Two tiers (1 % below a notional of 1e9, 2 % from it) whose upper tier's bounds raise:
    ``Portfolio.risk`` of a small position never reads them (its bracket is the first, and
    its liquidation price is in it too), the price band (``arm``: the maintenance slope over
    every tier) does. Fault injection, through a ``Position``'s ``maintenance``."""

    def bounds(self, index: int) -> tuple[float, float]:
        if index > 0:
            raise ZeroDivisionError("odd tier bounds")
        return super().bounds(index)


def test_a_scope_whose_band_raises_is_evaluated_on_every_price_instead() -> None:
    """Fault injection (:class:`_BandFaulty`): a1's figures compute, its band does not. Each
    price then evaluates it in full (it keeps no band that would never fire), so its alerts
    follow the price as a0's do."""
    schedule = _BandFaulty((Tier(0.0, 0.01), Tier(1e9, 0.02)))
    btc = Position("BTC", 1.0, 100.0, maintenance=schedule, mark_price=100.0)
    e, _ = engine(2)
    step = e.receive([snapshot("a0", 10.0, long_btc(10.0)), snapshot("a1", 10.0, btc)], T0, 0.0)
    assert [(f.key, f.stage, f.error) for f in step.figures_failed] == [
        (_cross("a1"), "band", "ZeroDivisionError: odd tier bounds")
    ]
    assert step.statuses[_cross("a1")]["margin_ratio"] == 0.1  # its figures are sound
    assert not [t for t in step.transitions if t.rule == "margin_unknown"]
    for n, (price, kind) in enumerate(
        [
            (91.0, TransitionKind.FIRED),
            (100.0, TransitionKind.RESOLVED),
            (91.0, TransitionKind.FIRED),
        ]
    ):
        step = e.receive([MarkPrice(VENUE, "BTC", price)], T0 + 1 + n, 1.0 + n)
        for account in ("a0", "a1"):
            assert _of(step.transitions, account) == [("margin_ratio", kind)], (n, account)
        assert step.figures_failed == []  # reported once
    assert e.figures_failures["generic"] == 4


# -- the shell logs it once and renders its alert ---------------------------------------------
async def test_the_daemon_path_logs_a_failing_scope_once_and_sends_its_alert(
    tmp_path: Path,
) -> None:
    """The real shell on a real store (``tests.notify.pipeline``): the failure is logged once
    (venue, account, scope, the error's type and message, no figures), its recovery once,
    and the ``margin_unknown`` alert is rendered and queued like any other."""
    from monitor.alerts.rules import parse_rules
    from monitor.clock import FakeClock
    from monitor.notify.channels import parse_channels
    from monitor.notify.sender import AppriseSender
    from monitor.store import outbox
    from monitor.store.db import open_store
    from tests.notify import scenario
    from tests.notify.pipeline import Pipeline

    clock = FakeClock(start=1_777_636_800.0)
    (hook,) = parse_channels(
        {"hook": {"url": "json://127.0.0.1:9/x", "min_severity": "info"}},
        "t",
        env={},
        credentials_dir=None,
    )
    store = await open_store(tmp_path / "monitor.db")
    try:
        service = await Pipeline.start(
            store,
            parse_rules(scenario.RULES_TABLE, "t"),
            [hook],
            sender=AppriseSender(),
            clock=clock,
            accounts=(_cross("a1").account_key,),
        )
        with structlog.testing.capture_logs() as logged:
            await service.process([snapshot("a1", 10.0, long_btc(10.0), *_absurd())])
            clock.advance(1.0)
            await service.process([MarkPrice(VENUE, "BTC", 100.5)])
            clock.advance(1.0)
            await service.process([snapshot("a1", 10.0, long_btc(10.0))])
        failed = [x for x in logged if x["event"] == "engine.scope_figures_failed"]
        assert failed == [
            {
                "event": "engine.scope_figures_failed",
                "log_level": "error",
                "venue": "generic",
                "account": "a1",
                "scope": "cross",
                "stage": "figures",
                "error": "OverflowError: intermediate overflow in fsum",
            }
        ]
        recovered = [x for x in logged if x["event"] == "engine.scope_figures_recovered"]
        assert [(x["account"], x["scope"]) for x in recovered] == [("a1", "cross")]
        bodies = [row.body for row in await outbox.items(store)]
        (body,) = [b for b in bodies if "cannot compute margin for generic:a1/cross" in b]
        # figures nobody could compute never read as a reassuring state
        assert "margin ratio n/a: UNKNOWN (its figures could not be computed)" in body
        assert "not liquidatable" not in body
    finally:
        await store.close()


def test_an_adl_fill_on_a_scope_whose_figures_raise_is_still_told_as_an_adl() -> None:
    """The venue's ADL fill reads the pool's figures before it (``Portfolio.risk``): when
    they raise, the fill is still the ADL notice, with the pool's figures unknown, beside
    ``margin_unknown`` (before: the exception made the whole event a ``bad_event`` notice,
    and the ADL itself was never told)."""
    from monitor.alerts.rules import RuleKind
    from monitor.model.events import Deleveraged

    _Faulty.broken = False
    try:
        e, _ = engine(1)
        e.receive([snapshot("a0", 10.0, _faulty_btc())], T0, 0.0)
        _Faulty.broken = True
        step = e.receive([Deleveraged(VENUE, "a0", "BTC", -1.0, 94.0)], T0 + 1, 1.0)
        rules = sorted(t.rule for t in step.transitions)
        assert rules == [RuleKind.ADL.value, "margin_unknown"]
        (adl,) = [t for t in step.transitions if t.rule == RuleKind.ADL.value]
        assert adl.severity is Severity.CRITICAL
        assert "the venue auto-deleveraged (ADL) BTC: sold 1 at 94" in adl.detail
        assert "pool before: unknown; after: unknown" in adl.detail
    finally:
        _Faulty.broken = False


def test_a_position_near_liquidation_that_vanishes_while_its_figures_raise_is_still_told() -> None:
    """Fault injection (:class:`_Faulty`): at 92 a0's BTC long (cash 10, liquidation at
    (100 − 10) / 0.99 = 90.91) is 1.19 % from its liquidation price, within
    ``liquidated_near`` (2 %): the engine keeps that distance, so the position's vanishing
    says "liquidated" (no distance alert holds it: only the margin-ratio rule is on, at
    46 %). Its figures then raise for one evaluation (unknown: no distance), and the venue's
    next snapshot no longer has the position. Before the fix the unknown evaluation dropped
    the kept distance, and the liquidation went untold."""
    _Faulty.broken = False
    try:
        e, _ = engine(1)
        e.receive([snapshot("a0", 10.0, _faulty_btc())], T0, 0.0)
        step = e.receive([MarkPrice(VENUE, "BTC", 92.0)], T0 + 1, 1.0)
        assert [r.key for r in step.risks] == [_cross("a0")] and step.transitions == []
        _Faulty.broken = True
        step = e.receive([MarkPrice(VENUE, "BTC", 91.0)], T0 + 2, 2.0)
        assert _of(step.transitions, "a0") == [("margin_unknown", TransitionKind.FIRED)]
        _Faulty.broken = False
        step = e.receive([snapshot("a0", 10.0)], T0 + 3, 3.0)
        assert ("liquidated", TransitionKind.EVENT) in [(t.rule, t.kind) for t in step.transitions]
        (t,) = [t for t in step.transitions if t.rule == "liquidated"]
        assert t.subject == "generic:a0/cross#BTC" and "last distance 1.19%" in t.detail
    finally:
        _Faulty.broken = False
