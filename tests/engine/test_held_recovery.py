"""A scope that crossed a level while its venue's prices were stale (its alerts held) is
decided again when the feed is live again, even though it had no alert when the feed went
stale. Before the fix only the venue's scopes with an alert were: this one kept the band its
held evaluation gave it, in its new zone, so ticks in that zone never evaluated it, and its
critical alert waited for a sweep round (longer on a large book; never while its prices
stood still).

Figures (tests/engine/helpers.py): 1 BTC long at 100 on cash c, maintenance 1 %: at price p
equity = c + p − 100 and maintenance = 0.01·p. Cash 10 at 100: 1 / 10 = 10 %. Cash 1.05 at
100: 1 / 1.05 = 95.2 % (critical ≥ 90 %); at 100.02: 1.0002 / 1.07 = 93.5 % (still critical)."""

from __future__ import annotations

from dataclasses import replace

from monitor.alerts.engine import AlertStatus
from monitor.alerts.rules import Severity
from monitor.engine import Engine
from monitor.model.events import BalanceUpdate, FeedState, FeedStatus, MarkPrice
from tests.engine.helpers import T0, VENUE, engine, long_btc, snapshot

KEY = "margin_ratio|generic:a0/cross"


def _margin_alerts(e: Engine) -> list[str]:
    return [k for k in e.state.alerts if k.startswith("margin_ratio|")]


def _critical(e: Engine) -> bool:
    alert = e.state.alerts.get(KEY)
    return alert is not None and alert.severity is Severity.CRITICAL


def test_a_scope_that_turned_critical_while_prices_were_stale_fires_once_they_are_live() -> None:
    e, _ = engine(1)
    e.receive([snapshot("a0", 10.0, long_btc(10.0)), MarkPrice(VENUE, "BTC", 100.0)], T0, 0.0)
    assert not e.state.alerts
    e.receive([FeedStatus(VENUE, "prices", FeedState.STALE)], T0 + 1, 1.0, sweep=False)
    # the balance drops while the prices are stale: 95.2 %, held
    e.receive([BalanceUpdate(VENUE, "a0", cross_collateral=1.05)], T0 + 2, 2.0, sweep=False)
    assert KEY not in e.state.alerts
    e.receive([FeedStatus(VENUE, "prices", FeedState.LIVE)], T0 + 3, 3.0, sweep=False)
    assert _critical(e)
    alert = e.state.alerts[KEY]
    assert alert.status is AlertStatus.FIRING or alert.due is not None


def test_ticks_in_the_held_zone_after_recovery_do_not_leave_it_unalerted() -> None:
    e, _ = engine(1)
    e.receive([snapshot("a0", 10.0, long_btc(10.0)), MarkPrice(VENUE, "BTC", 100.0)], T0, 0.0)
    e.receive([FeedStatus(VENUE, "prices", FeedState.STALE)], T0 + 1, 1.0, sweep=False)
    e.receive([BalanceUpdate(VENUE, "a0", cross_collateral=1.05)], T0 + 2, 2.0, sweep=False)
    e.receive([FeedStatus(VENUE, "prices", FeedState.RECOVERED)], T0 + 3, 3.0, sweep=False)
    for i, price in enumerate((100.01, 100.0, 100.02), start=4):
        e.receive([MarkPrice(VENUE, "BTC", price)], T0 + i, float(i), sweep=False)
        assert _critical(e)


def test_a_scope_still_held_by_another_stale_channel_is_decided_when_that_one_recovers() -> None:
    e, _ = engine(1)
    e.receive([snapshot("a0", 10.0, long_btc(10.0)), MarkPrice(VENUE, "BTC", 100.0)], T0, 0.0)
    e.receive(
        [
            FeedStatus(VENUE, "prices", FeedState.STALE),
            FeedStatus(VENUE, "funding", FeedState.STALE),
        ],
        T0 + 1,
        1.0,
        sweep=False,
    )
    e.receive([BalanceUpdate(VENUE, "a0", cross_collateral=1.05)], T0 + 2, 2.0, sweep=False)
    e.receive([FeedStatus(VENUE, "prices", FeedState.LIVE)], T0 + 3, 3.0, sweep=False)
    assert KEY not in e.state.alerts  # still held by the stale funding channel
    e.receive([FeedStatus(VENUE, "funding", FeedState.LIVE)], T0 + 4, 4.0, sweep=False)
    assert _critical(e)


# -- what recovery decides again: only the scopes whose held decision could differ ------------


def test_scopes_evaluated_in_the_quiet_zone_while_held_are_not_decided_again() -> None:
    """Recovery decides "no alert" for a scope whose held evaluation crossed no level, as
    that evaluation would have: it is not queued again (at 1,000,000 positions a feed stale
    through the start-up sweep queued ~400,000). The one that crossed a level is."""
    e, _ = engine(4)
    e.receive(
        [
            *(snapshot(f"a{i}", 10.0, long_btc(10.0)) for i in range(4)),
            MarkPrice(VENUE, "BTC", 100),
        ],
        T0,
        0.0,
    )
    e.receive([FeedStatus(VENUE, "prices", FeedState.STALE)], T0 + 1, 1.0, sweep=False)
    # every scope evaluated while held: three stay at 10 % or 9.1 %, a3 drops to 95.2 %
    held = e.receive(
        [
            BalanceUpdate(VENUE, "a0", cross_collateral=11.0),
            BalanceUpdate(VENUE, "a1", cross_collateral=10.5),
            BalanceUpdate(VENUE, "a2", cross_collateral=12.0),
            BalanceUpdate(VENUE, "a3", cross_collateral=1.05),
        ],
        T0 + 2,
        2.0,
        sweep=False,
    )
    assert len(held.risks) == 4 and not _margin_alerts(e)
    live = e.receive([FeedStatus(VENUE, "prices", FeedState.LIVE)], T0 + 3, 3.0, sweep=False)
    assert [str(r.key) for r in live.risks] == ["generic:a3/cross"]
    assert _margin_alerts(e) == ["margin_ratio|generic:a3/cross"]


def test_a_scope_back_in_the_quiet_zone_before_recovery_is_not_decided_again() -> None:
    e, _ = engine(1)
    e.receive([snapshot("a0", 10.0, long_btc(10.0)), MarkPrice(VENUE, "BTC", 100.0)], T0, 0.0)
    e.receive([FeedStatus(VENUE, "prices", FeedState.STALE)], T0 + 1, 1.0, sweep=False)
    e.receive([BalanceUpdate(VENUE, "a0", cross_collateral=1.05)], T0 + 2, 2.0, sweep=False)
    # held at 95.2 %, then back to 10 % while still held: nothing left to decide
    e.receive([BalanceUpdate(VENUE, "a0", cross_collateral=10.0)], T0 + 3, 3.0, sweep=False)
    live = e.receive([FeedStatus(VENUE, "prices", FeedState.LIVE)], T0 + 4, 4.0, sweep=False)
    assert live.risks == [] and not _margin_alerts(e)
    # and its band is the quiet one: a tick that takes it to critical is decided at once
    e.receive([BalanceUpdate(VENUE, "a0", cross_collateral=1.2)], T0 + 5, 5.0, sweep=False)
    e.receive([MarkPrice(VENUE, "BTC", 99.9)], T0 + 6, 6.0, sweep=False)
    assert _critical(e)  # 0.999 / 1.1 = 90.8 %


def test_a_scope_a_price_moved_to_critical_comes_before_a_backlog_of_safer_scopes() -> None:
    """Owed work is ordered by urgency, the highest margin ratio first. A scope a price took
    out of its band is ordered by its ratio at that price, not by its last evaluation's: the
    ETH holder, last seen at 50 %, crossed to 99 % and is decided in the same receive,
    ahead of ten scopes at 83 % that the feed's recovery queued (one evaluation a receive).

    Figures: 1 BTC long at 100 with cash 1.2: 1 / 1.2 = 83.3 % (warning, pending). 1 ETH long
    at 100 with cash 2: 1 / 2 = 50 %; at 99, (0.99) / (2 − 1) = 99 % (critical)."""
    e, _ = engine(11)
    eth = replace(long_btc(2.0), symbol="ETH")
    e.receive(
        [
            *(snapshot(f"a{i}", 1.2, long_btc(1.2)) for i in range(10)),
            snapshot("a10", 2.0, eth),
            MarkPrice(VENUE, "BTC", 100.0),
            MarkPrice(VENUE, "ETH", 100.0),
        ],
        T0,
        0.0,
    )
    assert len(e.state.alerts) == 10  # the warnings, pending their `for`
    e.receive([FeedStatus(VENUE, "prices", FeedState.STALE)], T0 + 1, 1.0, sweep=False)
    e.max_evaluations = 1
    step = e.receive(
        [FeedStatus(VENUE, "prices", FeedState.LIVE), MarkPrice(VENUE, "ETH", 99.0)],
        T0 + 2,
        2.0,
        sweep=False,
    )
    assert [str(r.key) for r in step.risks] == ["generic:a10/cross"]
    alert = e.state.alerts["margin_ratio|generic:a10/cross"]
    assert alert.severity is Severity.CRITICAL and alert.status is AlertStatus.FIRING
