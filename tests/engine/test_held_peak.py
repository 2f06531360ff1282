"""A scope whose equity rose past its recorded peak while a stale feed held its alerts is
decided again at recovery: its held evaluation did not record the new peak (a held scope's
figures decide nothing), and the band it kept has no equity level above the old peak's
``peak·(1 + PEAK_SLACK)``, so the rally's top and the fall from it went unseen. Before the
fix recovery left it out (its dry run crossed no level: drawdown 0 against the old peak),
no tick evaluated it again, and the sweep that finally did recorded the fallen equity as
the peak: the critical drawdown never fired.

Figures (tests/engine/helpers.py): 1 BTC long at 100, maintenance 1 %: at price p equity =
cash + p − 100. Cash 100 at 100: equity 100 (the peak). Drawdown critical at 50 %.
Cash 200 at 100: equity 200 (held). At 200: equity 300. At 40: equity 140, drawdown from
300 = (300 − 140) / 300 = 53.3 % ≥ 50 % (critical); from the stale peak 100: 0."""

from __future__ import annotations

import pytest

from monitor.alerts.rules import RuleKind, Severity
from monitor.model.events import BalanceUpdate, FeedState, FeedStatus, MarkPrice
from tests.engine.helpers import T0, VENUE, engine, long_btc, rules, snapshot

KEY = "drawdown|generic:a0/cross"


@pytest.mark.parametrize("channel", ["prices", "account:a0"])
def test_a_peak_made_while_held_still_measures_the_drawdown_after_recovery(channel: str) -> None:
    e, _ = engine(1, r=rules(RuleKind.MARGIN_RATIO, RuleKind.DRAWDOWN))
    e.receive([snapshot("a0", 100.0, long_btc(100.0)), MarkPrice(VENUE, "BTC", 100.0)], T0, 0.0)
    assert e.state.peaks["generic:a0/cross"] == 100.0
    e.receive([FeedStatus(VENUE, channel, FeedState.STALE)], T0 + 1, 1.0, sweep=False)
    # equity 200 while held: evaluated, its peak not recorded
    e.receive([BalanceUpdate(VENUE, "a0", cross_collateral=200.0)], T0 + 2, 2.0, sweep=False)
    e.receive([FeedStatus(VENUE, channel, FeedState.LIVE)], T0 + 3, 3.0, sweep=False)
    e.receive([MarkPrice(VENUE, "BTC", 200.0)], T0 + 4, 4.0, sweep=False)  # equity 300
    e.receive([MarkPrice(VENUE, "BTC", 40.0)], T0 + 5, 5.0, sweep=False)  # equity 140
    # and a sweep round after it, which evaluates every scope
    e.receive([], T0 + 20, 20.0)
    alert = e.state.alerts.get(KEY)
    assert alert is not None and alert.severity is Severity.CRITICAL  # 53.3 %


def test_a_scope_first_seen_while_held_records_its_first_peak_and_measures_from_it() -> None:
    """The account stream is stale from the start: the scope's only evaluation is held. It
    records the scope's first peak (100) all the same, so its band watches 100·1.02: the
    rally to equity 200 after recovery is evaluated (peak 200) and the fall to 40 is a
    drawdown of (200 − 40) / 200 = 80 % ≥ 50 %. Before the fix nothing evaluated it until
    the sweep, which recorded 40 as the peak. Recovery does not decide it again: its held
    decision (no alert, its first peak recorded) is the one recovery would make."""
    e, _ = engine(1, r=rules(RuleKind.MARGIN_RATIO, RuleKind.DRAWDOWN))
    e.receive(
        [
            FeedStatus(VENUE, "account:a0", FeedState.STALE),
            snapshot("a0", 100.0, long_btc(100.0)),
            MarkPrice(VENUE, "BTC", 100.0),
        ],
        T0,
        0.0,
    )
    assert e.state.peaks["generic:a0/cross"] == 100.0  # held: a first peak all the same
    live = e.receive([FeedStatus(VENUE, "account:a0", FeedState.LIVE)], T0 + 1, 1.0, sweep=False)
    assert live.risks == []
    e.receive([MarkPrice(VENUE, "BTC", 200.0)], T0 + 2, 2.0, sweep=False)  # equity 200
    e.receive([MarkPrice(VENUE, "BTC", 40.0)], T0 + 3, 3.0, sweep=False)  # equity 40
    e.receive([], T0 + 20, 20.0)
    alert = e.state.alerts.get(KEY)
    assert alert is not None and alert.severity is Severity.CRITICAL  # 80 %
