"""The engine's decisions as pure functions: ``Engine.receive(inputs, now, mono)`` with no
store, no socket and no clock. Figures: one BTC long (size 1, entry 100, maintenance 1 %) on
cash c: at price p equity = c + p − 100, maintenance = 0.01·p, margin ratio = maintenance /
equity (critical at 0.9, clear 0.85)."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from monitor.alerts.engine import TransitionKind
from monitor.alerts.rules import RuleKind, Severity
from monitor.engine import Reconfigure
from monitor.engine.core import Owed
from monitor.model.events import (
    AccountSnapshot,
    Deleveraged,
    FundingRate,
    MarkPrice,
    VenueMarginRatio,
)
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.positions import AccountKey, Position, ScopeKey
from tests.engine.helpers import T0, VENUE, engine, long_btc, rules, snapshot


def _cross(account: str) -> ScopeKey:
    return ScopeKey(VENUE, account, "cross")


def test_ready_when_every_expected_account_has_its_first_snapshot() -> None:
    e, _ = engine(2, expected=[AccountKey(VENUE, "a0"), AccountKey(VENUE, "a1")])
    assert e.receive([snapshot("a0", 10.0, long_btc(10.0))], T0, 0.0).ready is None
    assert e.missing_accounts() == ["generic:a1"]
    step = e.receive([snapshot("a1", 10.0, long_btc(10.0))], T0 + 1, 1.0)
    assert step.ready is not None and "2 scopes" in step.ready
    assert e.receive([], T0 + 2, 2.0).ready is None  # said once


def test_ready_after_the_timeout_on_the_monotonic_clock_even_if_the_wall_clock_stands() -> None:
    e, _ = engine(1, expected=[AccountKey(VENUE, "a0")], ready_timeout=60.0, started=0.0)
    assert e.receive([], T0, 59.0).ready is None
    # the wall clock did not move (or went back), but 60 s passed: ready without a0
    assert e.receive([], T0 - 3600, 60.0).ready is not None


def test_a_crash_beyond_the_budget_is_decided_over_several_bounded_receives() -> None:
    # 25 accounts, each 1 BTC long on cash 10: at 91 every ratio is 0.91/1 = 91 % ≥ 90 %
    e, _ = engine(25, max_evaluations=10)
    e.receive([snapshot(f"a{i}", 10.0, long_btc(10.0)) for i in range(25)], T0, 0.0)
    assert e.evaluated == 25 and not e.busy  # account events are never deferred
    step = e.receive([MarkPrice(VENUE, "BTC", 91.0)], T0 + 1, 1.0, sweep=False)
    fired = [t for t in step.transitions if t.kind is TransitionKind.FIRED]
    assert len(step.risks) == 10 and len(fired) == 10 and e.busy
    assert e.carried == 15
    sizes = []
    while e.carried:
        s = e.receive([], T0 + 1, 1.0, sweep=False)
        sizes.append(len(s.risks))
        fired += [t for t in s.transitions if t.kind is TransitionKind.FIRED]
    assert sizes == [10, 5]  # 25 = 10 + 10 + 5
    assert sorted(t.group for t in fired) == sorted(f"generic:a{i}" for i in range(25))
    assert all(t.severity is Severity.CRITICAL for t in fired)


def test_the_sweep_is_owed_not_done_in_a_frames_batch_and_then_paid_in_slices() -> None:
    e, _ = engine(30, max_evaluations=8)
    e.receive([snapshot(f"a{i}", 1000.0, long_btc(1000.0)) for i in range(30)], T0, 0.0)
    base = e.evaluated  # 30, each evaluated once as its snapshot came in
    while e.busy:  # the first (full) sweep, in slices of at most 8
        assert len(e.receive([], T0, 0.0).risks) <= 8
    base = e.evaluated
    # 5 s later (SWEEP_INTERVAL): a whole round is owed; a frame's batch sweeps nothing
    step = e.receive([MarkPrice(VENUE, "BTC", 100.01)], T0 + 5, 5.0, sweep=False)
    assert step.risks == [] and e.busy
    slices = []
    while e.busy:
        slices.append(len(e.receive([], T0 + 5, 5.0).risks))
    assert slices == [8, 8, 8, 6]  # 30 scopes = 8 + 8 + 8 + 6
    assert e.evaluated == base + 30


def test_an_idle_book_is_not_swept_and_a_moved_one_is_swept_once() -> None:
    e, _ = engine(5)
    e.receive([snapshot(f"a{i}", 1000.0, long_btc(1000.0)) for i in range(5)], T0, 0.0)
    assert e.evaluated == 5
    for i in range(1, 30):  # 29 idle seconds: nothing moved, nothing to refresh
        e.receive([], T0 + i, float(i))
    assert e.evaluated == 5
    # 100 → 100.5 stays in every band (ratio ≈ 0.1 %): no decision, but figures to refresh
    assert e.receive([MarkPrice(VENUE, "BTC", 100.5)], T0 + 30, 30.0, sweep=False).risks == []
    for i in range(31, 40):
        e.receive([], T0 + i, float(i))
    assert e.evaluated == 10  # each of the 5 scopes swept once, then nothing again


def test_frames_that_repeat_the_market_start_no_sweep_round() -> None:
    """A venue pushes unchanged values (a keepalive, a quiet market): a price or funding
    event equal to what the market has changes no figure, so no round refreshes its holders
    (at 100,000 positions one such frame an instrument every 10 s kept 14–15 % of a core
    busy). A changed oracle, funding rate or interval is a change."""
    e, _ = engine(5)
    e.receive([snapshot(f"a{i}", 1000.0, long_btc(1000.0)) for i in range(5)], T0, 0.0)
    first = [MarkPrice(VENUE, "BTC", 100.5, oracle=100.4), FundingRate(VENUE, "BTC", 1e-5, 1.0)]
    e.receive(first, T0 + 1, 1.0, sweep=False)
    for i in range(2, 12):
        e.receive([], T0 + i, float(i))
    assert e.evaluated == 10  # the first prices: each scope swept once
    same = [MarkPrice(VENUE, "BTC", 100.5, oracle=100.4), FundingRate(VENUE, "BTC", 1e-5, 1.0)]
    for i in range(12, 40):
        e.receive(same if i % 2 else [MarkPrice(VENUE, "BTC", 100.5)], T0 + i, float(i))
    assert e.evaluated == 10
    t = 40.0
    for change in (
        MarkPrice(VENUE, "BTC", 100.5, oracle=100.3),
        FundingRate(VENUE, "BTC", 2e-5, 1.0),
        FundingRate(VENUE, "BTC", 2e-5, 8.0),
    ):
        before = e.evaluated
        e.receive([change], T0 + t, t, sweep=False)
        for _ in range(10):
            t += 1
            e.receive([], T0 + t, t)
        assert e.evaluated == before + 5, change


def test_a_scope_holding_several_moved_instruments_is_swept_once_per_round() -> None:
    # a round goes market by market (built at once, a 1,000,000-position round was a 2 s
    # step): a scope holding BTC and ETH, both moved, is still evaluated once
    eth = replace(long_btc(1000.0), symbol="ETH")
    e, _ = engine(3)
    e.receive([snapshot(f"a{i}", 1000.0, long_btc(1000.0), eth) for i in range(3)], T0, 0.0)
    e.receive([snapshot("b", 1000.0, replace(long_btc(1000.0), symbol="SOL"))], T0, 0.0)
    assert e.evaluated == 4
    moved = [MarkPrice(VENUE, "BTC", 100.5), MarkPrice(VENUE, "ETH", 100.5)]
    assert e.receive(moved, T0 + 1, 1.0, sweep=False).risks == []
    swept: list[ScopeKey] = []
    for i in range(2, 12):
        swept += [r.key for r in e.receive([], T0 + i, float(i)).risks]
    assert sorted(k.account for k in swept) == ["a0", "a1", "a2"]  # once each; SOL unmoved


def test_a_round_begun_when_nobody_held_the_moved_instrument_does_not_stall_the_sweep() -> None:
    # found by the fault property (a dYdX snapshot whose position status was null): the
    # account's only position goes, the price moves (a round of markets nobody holds), the
    # position comes back; a later move within its band must still be swept
    e, _ = engine(1)
    e.receive([snapshot("a0", 1000.0, long_btc(1000.0))], T0, 0.0)
    e.receive([snapshot("a0", 1000.0)], T0 + 1, 1.0)
    e.receive([MarkPrice(VENUE, "BTC", 100.2)], T0 + 2, 2.0)
    for i in range(3, 10):
        e.receive([], T0 + i, float(i))
    e.receive([snapshot("a0", 1000.0, long_btc(1000.0))], T0 + 10, 10.0)
    swept = e.receive([MarkPrice(VENUE, "BTC", 100.4)], T0 + 20, 20.0).risks
    for i in range(21, 30):
        swept += e.receive([], T0 + i, float(i)).risks
    assert [r.positions[0].mark_price for r in swept] == [100.4]


def test_an_event_that_raises_is_quarantined_once_per_account_and_the_engine_goes_on() -> None:
    # issue 10: two positions of 1e303 at entry 1 marked at 170,000 each carry an unrealized
    # PnL of 1e303 · 169,999 ≈ 1.7e308 (finite, under 1.8e308); their sum overflows math.fsum
    big = replace(long_btc(0.0, size=1e303, entry=1.0), mark_price=1.7e5)
    e, _ = engine(2)
    step = e.receive(
        [
            snapshot("a0", 10.0, big, replace(big, symbol="ETH")),
            snapshot("a1", 10.0, replace(long_btc(10.0), symbol="SOL")),
        ],
        T0,
        0.0,
    )
    [q] = step.quarantined
    assert q.account == "a0" and q.error.startswith("OverflowError")
    [notice] = [t for t in step.transitions if t.rule == RuleKind.BAD_EVENT.value]
    assert notice.severity is Severity.CRITICAL and notice.group == "generic:a0"
    assert _cross("a1") in {r.key for r in step.risks}  # the other account was evaluated
    again = e.receive([snapshot("a0", 10.0, big, replace(big, symbol="ETH"))], T0 + 1, 1.0)
    assert len(again.quarantined) == 1  # logged and counted each time...
    assert [
        t for t in again.transitions if t.rule == RuleKind.BAD_EVENT.value
    ] == []  # ...told once
    assert e.quarantine_count["generic"] == 2


def test_non_finite_figures_fire_margin_unknown_and_never_resolve_with_nan() -> None:
    e, _ = engine(1)
    e.receive([snapshot("a0", 10.0, long_btc(10.0))], T0, 0.0)
    fired = e.receive([MarkPrice(VENUE, "BTC", 91.0)], T0 + 1, 1.0).transitions
    assert [(t.rule, t.kind) for t in fired] == [("margin_ratio", TransitionKind.FIRED)]
    # szi/entryPx 1e200 (issue 10): notional 1e200 · 1e200 = inf, equity inf − inf = NaN
    bad = replace(long_btc(0.0, size=1e200, entry=1e200), symbol="DOGE")
    step = e.receive([snapshot("a0", 10.0, long_btc(10.0), bad)], T0 + 2, 2.0)
    [t] = step.transitions
    assert (t.rule, t.kind, t.severity) == (
        "margin_unknown",
        TransitionKind.FIRED,
        Severity.CRITICAL,
    )
    assert "cannot compute margin for generic:a0/cross" in t.detail and "equity nan" in t.detail
    # the margin ratio alert still holds, unresolved, while the figures stay unknown
    later = e.receive([MarkPrice(VENUE, "DOGE", 1e200)], T0 + 3, 3.0)
    assert not [t for t in later.transitions if t.kind is TransitionKind.RESOLVED]
    assert "margin_ratio|generic:a0/cross" in e.state.alerts
    # finite again: the unknown resolves; BTC is still at 91, so the margin ratio holds
    step = e.receive([snapshot("a0", 10.0, long_btc(10.0))], T0 + 4, 4.0)
    assert [(t.rule, t.kind) for t in step.transitions] == [
        ("margin_unknown", TransitionKind.RESOLVED)
    ]
    assert "margin_ratio|generic:a0/cross" in e.state.alerts
    # at 100 the ratio is 1/10 = 10 %: resolved, with a finite value
    step = e.receive([MarkPrice(VENUE, "BTC", 100.0)], T0 + 5, 5.0)
    [t] = step.transitions
    assert (t.rule, t.kind, t.value) == ("margin_ratio", TransitionKind.RESOLVED, 0.1)


def test_adl_is_one_critical_notice_with_the_pool_before_and_after() -> None:
    e, _ = engine(1)
    e.receive([snapshot("a0", 10.0, long_btc(10.0, size=2.0))], T0, 0.0)
    step = e.receive(
        [
            Deleveraged(VENUE, "a0", "BTC", -1.0, 100.0),
            snapshot("a0", 10.0, long_btc(10.0, size=1.0)),
        ],
        T0 + 1,
        1.0,
    )
    adl = [t for t in step.transitions if t.rule == RuleKind.ADL.value]
    assert len(adl) == 1 and adl[0].severity is Severity.CRITICAL
    assert adl[0].kind is TransitionKind.EVENT
    # before: equity 10, maintenance 0.01·2·100 = 2 → 20 %; after 1 BTC: 1/10 = 10 %
    assert "sold 1 at 100" in adl[0].detail
    assert "margin ratio 20.00%" in adl[0].detail and "margin ratio 10.00%" in adl[0].detail


def test_the_venues_own_margin_ratio_is_evaluated_with_the_margin_ratio_rule() -> None:
    e, _ = engine(1)
    # the venue says 0.95 with liquidation at 1.0: scaled 0.95 ≥ 0.9 → critical
    step = e.receive([VenueMarginRatio(VENUE, "a0", 0.95, 1.0, "uniMMR")], T0, 0.0)
    [t] = step.transitions
    assert (t.rule, t.kind, t.subject) == (
        "margin_ratio",
        TransitionKind.FIRED,
        "generic:a0/venue-ratio",
    )
    assert t.value == 0.95
    # NaN (liquidation level 0): holds, does not resolve
    step = e.receive([VenueMarginRatio(VENUE, "a0", 0.1, 0.0, "uniMMR")], T0 + 1, 1.0)
    assert step.transitions == []


def test_a_reload_without_the_account_removes_its_scope_at_once() -> None:
    e, keys = engine(2)
    e.receive([snapshot("a0", 10.0, long_btc(10.0)), snapshot("a1", 10.0, long_btc(10.0))], T0, 0.0)
    e.receive([MarkPrice(VENUE, "BTC", 91.0)], T0 + 1, 1.0)
    assert {k.split("|")[1] for k in e.state.alerts} == {"generic:a0/cross", "generic:a1/cross"}
    step = e.receive(
        [Reconfigure(rules(), frozenset(keys[1:]), removed=(keys[0],))], T0 + 2, 2.0, sweep=False
    )
    assert _cross("a0") in step.removed
    resolved = [t for t in step.transitions if t.kind is TransitionKind.RESOLVED]
    assert [(t.subject, t.detail) for t in resolved] == [
        ("generic:a0/cross", "no longer monitored")
    ]
    assert {k.split("|")[1] for k in e.state.alerts} == {"generic:a1/cross"}


def test_a_snapshot_no_longer_holding_an_alerted_isolated_scope_resolves_it() -> None:
    from monitor.model.instruments import MarginMode

    iso = replace(long_btc(0.0), margin_mode=MarginMode.ISOLATED, isolated_margin=10.0)
    e, _ = engine(1)
    e.receive([AccountSnapshot(VENUE, "a0", 0.0, (iso,))], T0, 0.0)
    e.receive([MarkPrice(VENUE, "BTC", 91.0)], T0 + 1, 1.0)
    assert "margin_ratio|generic:a0/isolated:BTC" in e.state.alerts
    step = e.receive([AccountSnapshot(VENUE, "a0", 10.0, ())], T0 + 2, 2.0)
    assert "margin_ratio|generic:a0/isolated:BTC" not in e.state.alerts
    assert ScopeKey(VENUE, "a0", "isolated:BTC") in step.removed


def test_a_restart_does_not_resolve_from_typed_in_marks_before_the_feed_prices_them() -> None:
    # issue 10.8: before the restart the account was critical at 91 (ratio 91 %)
    before, keys = engine(1, fed_manual=[AccountKey(VENUE, "a0")])
    before.receive([snapshot("a0", 10.0, long_btc(10.0))], T0, 0.0)
    before.receive([MarkPrice(VENUE, "BTC", 91.0)], T0 + 1, 1.0)
    assert "margin_ratio|generic:a0/cross" in before.state.alerts
    # the restart: the typed-in mark (100) would say ratio 10 % and resolve it
    e, _ = engine(1, state=before.state, fed_manual=keys, ready_timeout=60.0)
    step = e.receive([snapshot("a0", 10.0, long_btc(10.0))], T0 + 2, 0.0)
    assert step.transitions == [] and step.risks == []  # waits for the feed
    # the feed's first price: 91, still critical: nothing to say (no resolve, no new fire)
    step = e.receive([MarkPrice(VENUE, "BTC", 91.0)], T0 + 3, 1.0)
    assert [r.key for r in step.risks] == [_cross("a0")] and step.transitions == []
    assert "margin_ratio|generic:a0/cross" in e.state.alerts


def test_without_a_feed_price_after_the_wait_the_typed_in_mark_is_used_and_said() -> None:
    # typed-in mark 91: ratio 0.91 / 1 = 91 % (critical), but the feed never prices BTC
    pos = replace(long_btc(10.0), mark_price=91.0)
    e, _ = engine(1, fed_manual=[AccountKey(VENUE, "a0")], ready_timeout=60.0, started=0.0)
    assert e.receive([snapshot("a0", 10.0, pos)], T0, 0.0).transitions == []
    assert e.receive([], T0 + 59, 59.0).transitions == []
    # the wait is over: evaluated from the typed-in mark (fail closed: never left unwatched)
    [t] = e.receive([], T0 + 60, 60.0).transitions
    assert (t.rule, t.kind, t.severity) == ("margin_ratio", TransitionKind.FIRED, Severity.CRITICAL)
    assert "typed-in" in t.detail


def test_an_alert_from_a_typed_in_mark_says_so() -> None:
    pos = replace(long_btc(10.0), mark_price=91.0)
    e, _ = engine(1, fed_manual=[AccountKey(VENUE, "a0")], ready_timeout=0.0, started=0.0)
    [t] = e.receive([snapshot("a0", 10.0, pos)], T0, 0.0).transitions
    assert (t.rule, t.kind) == ("margin_ratio", TransitionKind.FIRED)
    assert (
        t.detail
        == "computed from the configured (typed-in) mark of BTC: the feed has not priced it yet"
    )


def test_the_sweep_takes_at_most_its_slice_per_receive_so_prices_come_first() -> None:
    e, _ = engine(12, sweep_slice=5)
    e.receive([snapshot(f"a{i}", 1000.0, long_btc(1000.0)) for i in range(12)], T0, 0.0)
    e.receive([MarkPrice(VENUE, "BTC", 100.01)], T0 + 5, 5.0, sweep=False)  # 12 owed
    slices = []
    while e.busy:
        slices.append(len(e.receive([], T0 + 5, 5.0).risks))
    assert slices == [5, 5, 2]  # 12 = 5 + 5 + 2


def test_in_a_crash_beyond_the_budget_the_accounts_nearest_liquidation_are_decided_first() -> None:
    # 12 accounts, 1 BTC long each at 100 on cash c_i = 13 − i: at 100 the margin ratio is
    # 1 / c_i (a0: 7.7 %, a11: 50 %), so the last to arrive is the nearest to liquidation.
    # At 95 each is evaluated (the move leaves every band); the budget of 4 per receive takes
    # the highest last ratios first, whatever the order the book lists them in
    e, _ = engine(12, max_evaluations=4)
    e.receive([snapshot(f"a{i}", 13.0 - i, long_btc(13.0 - i)) for i in range(12)], T0, 0.0)
    order: list[str] = []
    step = e.receive([MarkPrice(VENUE, "BTC", 95.0)], T0 + 1, 1.0, sweep=False)
    order += [r.key.account for r in step.risks]
    while e.carried:
        order += [r.key.account for r in e.receive([], T0 + 1, 1.0, sweep=False).risks]
    assert order[:4] == ["a11", "a10", "a9", "a8"]
    assert order == sorted(order, key=lambda a: -int(a[1:]))


def test_the_sweep_of_a_large_book_is_paced_by_its_rate_not_its_interval() -> None:
    e, _ = engine(40)
    e.sweep_rate = 2.0  # scopes per second
    e.receive([snapshot(f"a{i}", 1000.0, long_btc(1000.0)) for i in range(40)], T0, 0.0)
    while e.busy:
        e.receive([], T0, 0.0)
    base = e.evaluated
    e.receive([MarkPrice(VENUE, "BTC", 100.01)], T0, 0.0, sweep=False)  # all 40 to refresh
    for i in range(1, 11):  # 10 s: at most 2 scopes/s, not 40 per 5 s
        e.receive([], T0 + i, float(i))
    assert e.evaluated - base == 20


def test_a_feed_live_again_re_decides_only_the_venues_scopes_with_an_alert() -> None:
    # a1 on cash 1 at 100: ratio 1 / 1 = 100 % fires critical; a0 and a2 (cash 1000: 0.1 %)
    # hold nothing. The feed comes back: only a1 is decided again (a reconnect of a
    # 100,000-position book used to re-evaluate all of it in one go)
    from monitor.model.events import FeedState, FeedStatus

    e, _ = engine(3)
    e.receive(
        [
            snapshot("a0", 1000.0, long_btc(1000.0)),
            snapshot("a1", 1.0, long_btc(1.0)),
            snapshot("a2", 1000.0, long_btc(1000.0)),
        ],
        T0,
        0.0,
    )
    assert {k.split("|")[1] for k in e.book.alerts} == {"generic:a1/cross"}
    while e.busy:
        e.receive([], T0 + 1, 1.0)
    step = e.receive([FeedStatus(VENUE, "prices", FeedState.LIVE)], T0 + 2, 2.0, sweep=False)
    while e.busy:
        step.risks += e.receive([], T0 + 2, 2.0, sweep=False).risks
    assert [r.key.account for r in step.risks] == ["a1"]


def test_the_sweep_skips_a_scope_evaluated_since_its_round_began() -> None:
    e, _ = engine(5)
    e.receive([snapshot(f"a{i}", 1000.0, long_btc(1000.0)) for i in range(5)], T0, 0.0)
    while e.busy:
        e.receive([], T0, 0.0)
    base = e.evaluated
    # a move inside every band (figures to refresh: a round of 5 owed) and, in the same
    # receive, a new snapshot of a0 (evaluated now, at the new price): the round takes 4
    e.receive(
        [MarkPrice(VENUE, "BTC", 100.5), snapshot("a0", 1000.0, long_btc(1000.0))],
        T0 + 30,
        30.0,
        sweep=False,
    )
    assert e.evaluated == base + 1
    for i in range(31, 40):
        e.receive([], T0 + i, float(i))
    assert e.evaluated == base + 5


def test_inputs_over_the_apply_budget_wait_for_the_next_receive_in_order(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # an instrument specification changes every holder of the instrument (100,000 positions:
    # ~2 s at once): the inputs after the one that spends APPLY_WORK wait, in order
    from monitor.engine import core
    from monitor.model.events import InstrumentSpec
    from monitor.model.instruments import Instrument, MaintenanceSchedule

    e, _ = engine(4)
    e.receive([snapshot(f"a{i}", 1000.0, long_btc(1000.0)) for i in range(4)], T0, 0.0)
    monkeypatch.setattr(core, "APPLY_WORK", 3)
    spec = InstrumentSpec(Instrument(VENUE, "BTC", MaintenanceSchedule.flat(0.02)))
    e.receive([spec, MarkPrice(VENUE, "BTC", 95.0)], T0 + 1, 1.0, sweep=False)
    btc = e.portfolio.markets[(VENUE, "BTC")]
    assert btc.instrument == spec.instrument and btc.mark == 100.0  # the price waits
    assert e.busy and e.carried >= 1
    e.receive([MarkPrice(VENUE, "BTC", 96.0)], T0 + 1, 1.0, sweep=False)
    assert btc.mark == 96.0  # 95 first, then the new 96: the order is kept


def test_decide_seconds_counts_the_deciding_not_the_inputs_applied() -> None:
    # the shell sizes the evaluation budget from ``decide_seconds``: the engine reads the
    # timer it is given once before deciding and once after, never while applying inputs
    readings: list[str] = []
    ticks = iter([10.0, 10.25, 20.0, 20.5])

    def timer() -> float:
        readings.append("read")
        return next(ticks)

    eng, _ = engine(0, timer=timer)
    snaps = [snapshot(f"a{i}", 1000.0, long_btc(1000.0)) for i in range(50)]
    eng.receive(snaps, T0, 0.0)
    assert eng.decide_seconds == 0.25 and len(readings) == 2
    eng.receive([], T0 + 1, 1.0)
    assert eng.decide_seconds == 0.5
    untimed, _ = engine(0)
    untimed.receive(snaps, T0, 0.0)
    assert untimed.decide_seconds == 0.0


def test_prices_after_one_that_crossed_many_bands_wait_for_the_next_receive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a crash's first price of a popular instrument crosses every holder's band (1,000,000
    # positions: one 4.4 s step for 60 prices): the prices after it wait, in order
    from monitor.engine import core
    from monitor.model.instruments import MaintenanceSchedule
    from monitor.model.positions import Position

    eth = Position("ETH", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.01), mark_price=100.0)
    e, _ = engine(4)
    e.receive([snapshot(f"a{i}", 1000.0, long_btc(1000.0), eth) for i in range(4)], T0, 0.0)
    e.receive([MarkPrice(VENUE, "BTC", 100.0), MarkPrice(VENUE, "ETH", 100.0)], T0 + 1, 1.0)
    while e.busy:
        e.receive([], T0 + 1, 1.0)
    monkeypatch.setattr(core, "APPLY_WORK", 3)
    crash = [MarkPrice(VENUE, "BTC", 20.0), MarkPrice(VENUE, "ETH", 20.0)]
    e.receive(crash, T0 + 2, 2.0, sweep=False)
    markets = e.portfolio.markets
    assert markets[(VENUE, "BTC")].mark == 20.0
    assert markets[(VENUE, "ETH")].mark == 100.0  # 4 bands crossed ≥ 3: ETH waits
    assert e.busy
    e.receive([], T0 + 2, 2.0, sweep=False)
    assert markets[(VENUE, "ETH")].mark == 20.0


def test_a_slice_looks_at_a_bounded_number_of_queued_scopes_and_the_round_still_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A popular instrument's holders come up in a round, most evaluated already since it began
    (they hold another moved instrument): a slice looks at no more than ``SWEEP_LOOK × n`` of
    them (it took 35 ms for 50 scopes at 100k in the daemon), its market is queued
    ``SWEEP_EXPAND`` holders at a time, and every holder not evaluated yet is still swept once.

    30 accounts hold BTC and ETH; 6 more hold BTC only. Both prices move inside every band;
    the round queues ETH's 30 holders, then BTC's 36: 30 already done, 6 to sweep."""
    from monitor.engine import core

    monkeypatch.setattr(core, "SWEEP_LOOK", 2)
    monkeypatch.setattr(core, "SWEEP_EXPAND", 4)
    eth = replace(long_btc(1000.0), symbol="ETH")
    e, _ = engine(36, max_evaluations=1000)
    both = [snapshot(f"a{i:02d}", 1000.0, eth, long_btc(1000.0)) for i in range(30)]
    btc_only = [snapshot(f"b{i}", 1000.0, long_btc(1000.0)) for i in range(6)]
    e.receive([*both, *btc_only], T0, 0.0)
    while e.busy:
        e.receive([], T0, 0.0)
    e.receive(
        [MarkPrice(VENUE, "ETH", 100.5), MarkPrice(VENUE, "BTC", 100.5)], T0 + 1, 1.0, sweep=False
    )
    e.sweep_slice = 3  # n = 3 a slice: it looks at no more than 2 × 3 = 6 queued scopes
    swept: list[str] = []
    for i in range(2, 200):
        before = len(e._sweep_queue)
        got = [r.key.account for r in e.receive([], T0 + i, float(i)).risks]
        swept += got
        assert len(got) <= 3
        # what one slice took from the queue: looked at (≤ 6), beyond what it expanded
        assert before - len(e._sweep_queue) <= 6
        assert len(e._sweep_queue) <= 4  # a market is queued 4 holders at a time
        if sorted(swept) == sorted([f"a{j:02d}" for j in range(30)] + [f"b{j}" for j in range(6)]):
            break
    assert sorted(swept) == sorted([f"a{j:02d}" for j in range(30)] + [f"b{j}" for j in range(6)])
    assert len(swept) == len(set(swept))  # each once


def test_a_price_crossing_more_bands_than_a_receive_may_apply_is_reported_over_receives(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """30 accounts at 1 BTC from 100 on 10.00..10.29 of cash; BTC → 90.5 takes every scope
    out of its band and past critical. With room for 4 bands a receive, the first receive
    reports a few of them and the next receives the rest: the same criticals in the end as
    with unbounded room."""

    def crash(work: int) -> tuple[list[str], list[int]]:
        monkeypatch.setattr("monitor.engine.core.APPLY_WORK", work)
        e, _ = engine(30, max_evaluations=100)
        books = [snapshot(f"a{i}", 10.0 + 0.01 * i, long_btc(10.0 + 0.01 * i)) for i in range(30)]
        e.receive(books, T0, 0.0)
        while e.busy:
            e.receive([], T0, 0.0)
        step = e.receive([MarkPrice(VENUE, "BTC", 90.5)], T0 + 1, 1.0, sweep=False)
        fired = [t for t in step.transitions if t.kind is TransitionKind.FIRED]
        sizes = [len(step.risks)]
        while e.carried:
            s = e.receive([], T0 + 1, 1.0, sweep=False)
            sizes.append(len(s.risks))
            fired += [t for t in s.transitions if t.kind is TransitionKind.FIRED]
        return sorted(f"{t.group}:{t.severity.value}" for t in fired), sizes

    whole, whole_sizes = crash(5000)
    bounded, sizes = crash(4)
    assert whole_sizes == [30]  # unbounded room: every crossed scope in the first receive
    assert sizes[0] <= 4 and len(sizes) >= 30 // 4 and sum(sizes) == 30  # a few at a time
    # at 90.5: equity 0.5 + 0.01·i, maintenance 0.905: ratio ≥ 0.905 / 0.79 > 90 % for all
    assert bounded == whole == sorted(f"generic:a{i}:critical" for i in range(30))


def test_the_adl_notice_says_a_pool_past_zero_equity_is_liquidatable_not_unknown() -> None:
    # 2 BTC long from 100 on 10 of cash: at 94, equity 10 − 12 = −2 (no ratio: ≤ 0)
    e, _ = engine(1)
    e.receive([snapshot("a0", 10.0, long_btc(10.0, size=2.0))], T0, 0.0)
    e.receive([MarkPrice(VENUE, "BTC", 94.0)], T0 + 1, 1.0)
    step = e.receive([Deleveraged(VENUE, "a0", "BTC", -1.0, 94.0)], T0 + 2, 2.0)
    [adl] = [t for t in step.transitions if t.rule == RuleKind.ADL.value]
    assert "pool before: equity -2.00, maintenance 1.88, margin ratio ∞ (equity ≤ 0)" in adl.detail
    assert "unknown" not in adl.detail


def test_in_a_crash_a_scope_its_drawdown_puts_at_critical_comes_before_higher_ratios() -> None:
    # five accounts whose margin ratio goes up to a warning at 90 (1 BTC, maintenance 30 %:
    # 27 / (c − 10) = 82–87 %, drawdown 10 / c < 25 %) and one far from its maintenance
    # (0.1 %: ratio 4.5 %) whose equity falls 12 → 2 (drawdown 83 %: critical at 50 %). Ordered
    # by ratio alone it came last; its critical alert goes first
    r = rules(RuleKind.MARGIN_RATIO, RuleKind.DRAWDOWN)
    e, _ = engine(6, r=r, max_evaluations=2)

    def pos(rate: float) -> Position:
        return replace(long_btc(0.0), maintenance=MaintenanceSchedule.flat(rate))

    snaps = [snapshot(f"a{i}", 41.0 + 0.5 * i, pos(0.3)) for i in range(5)]
    e.receive([*snaps, snapshot("a5", 12.0, pos(0.001))], T0, 0.0)
    assert e.state.alerts == {}
    order: list[str] = []
    fired: list[tuple[str, str]] = []
    step = e.receive([MarkPrice(VENUE, "BTC", 90.0)], T0 + 1, 1.0, sweep=False)
    while True:
        order += [x.key.account for x in step.risks]
        fired += [(t.subject, t.rule) for t in step.transitions]
        if not e.carried:
            break
        step = e.receive([], T0 + 1, 1.0, sweep=False)
    assert sorted(order) == [f"a{i}" for i in range(6)]  # every one moved to a new zone
    assert order[0] == "a5"
    assert fired == [("generic:a5/cross", "drawdown")]  # the warnings wait for their `for`
    assert order[1:] == ["a0", "a1", "a2", "a3", "a4"]  # then by ratio


def test_owed_work_moves_up_to_a_lower_urgency_never_down() -> None:
    owed = Owed()
    keys = [ScopeKey(VENUE, f"a{i}", "cross") for i in range(4)]
    for key, urgency in zip(keys, (-0.5, -0.4, -0.3, -0.2), strict=True):
        owed.push(key, urgency)
    owed.push(keys[3], -1.5)  # a later price put it at critical: first now
    owed.push(keys[0], 0.0)  # never down
    owed.discard(keys[1])
    assert len(owed) == 3 and keys[1] not in owed
    assert [owed.pop() for _ in range(4)] == [keys[3], keys[0], keys[2], None]


def test_an_owed_warning_a_later_tick_of_its_one_instrument_puts_past_critical_moves_up() -> None:
    # a0–a2 hold ETH and a3 BTC (1 long at entry 100, maintenance 1 %: at price p the
    # ratio is 0.01·p / (c + p − 100)). ETH and BTC at 91 put a0–a2 at 85–87 % and a3 at
    # 81 %: warnings, owed behind a0–a2 (one evaluation a receive). BTC at 90.5 then puts a3
    # at 145 % (past its maintenance): owed since the first tick, which took its band, it
    # must come before the warnings. Before the fix no later tick of BTC reported it (its
    # band was gone and its instrument had reported it once), so it kept the place its 81 %
    # gave it: behind every warning owed
    def cash(ratio: float) -> float:
        return 100.0 - 91.0 + 0.91 / ratio

    e, _ = engine(4, max_evaluations=1)
    eth = Position("ETH", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.01), mark_price=100.0)
    snaps = [snapshot(f"a{i}", cash(0.85 + 0.01 * i), eth) for i in range(3)]
    e.receive([*snaps, snapshot("a3", cash(0.81), long_btc(0.0))], T0, 0.0)
    ticks = [MarkPrice(VENUE, "ETH", 91.0), MarkPrice(VENUE, "BTC", 91.0)]
    step = e.receive(ticks, T0 + 1, 1.0, sweep=False)
    order = [r.key.account for r in step.risks]
    assert order == ["a2"] and _cross("a3") in e._owed  # a3 owed at 81 %, behind a0 and a1
    step = e.receive([MarkPrice(VENUE, "BTC", 90.5)], T0 + 2, 2.0, sweep=False)
    (risk,) = step.risks
    assert risk.key.account == "a3" and risk.margin_ratio is not None and risk.margin_ratio > 1
    assert [(t.subject, t.rule, t.severity) for t in step.transitions] == [
        ("generic:a3/cross", "margin_ratio", Severity.CRITICAL)
    ]


def test_a_scope_waiting_for_its_feed_is_decided_at_its_last_instruments_first_price() -> None:
    # a0 (fed from typed-in marks) holds BTC and ETH; neither is priced by the feed yet. BTC's
    # first price reports it (still waiting for ETH); ETH's first then decides it. A scope
    # owed is given a band while it waits for its evaluation (so a later price can move it
    # up); one waiting for its feed must not be, or ETH's first price, within that band,
    # left it undecided until the wait ran out
    eth = Position("ETH", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.01), mark_price=100.0)
    e, _ = engine(1, fed_manual=[AccountKey(VENUE, "a0")], ready_timeout=60.0, started=0.0)
    assert e.receive([snapshot("a0", 20.0, long_btc(0.0), eth)], T0, 0.0).risks == []
    assert e.receive([MarkPrice(VENUE, "BTC", 95.0)], T0 + 1, 1.0).risks == []
    step = e.receive([MarkPrice(VENUE, "ETH", 99.0)], T0 + 2, 2.0)
    assert [r.key for r in step.risks] == [_cross("a0")]


def test_owed_work_at_an_unknown_urgency_comes_out_first_and_is_never_lost() -> None:
    # NaN compares false with everything: kept as the key's urgency, no heap entry ever
    # matched it, so ``pop`` skipped the key for good while ``in`` still said it was owed
    # (nothing could owe it again: a scope never evaluated again). Unknown is first of all
    owed = Owed()
    keys = [ScopeKey(VENUE, f"a{i}", "cross") for i in range(3)]
    owed.push(keys[0], -0.5)
    owed.push(keys[1], math.nan)
    owed.push(keys[2], -1.5)
    owed.push(keys[0], math.nan)  # moves up to first too
    assert [owed.pop() for _ in range(4)] == [keys[1], keys[0], keys[2], None]
    assert not owed
