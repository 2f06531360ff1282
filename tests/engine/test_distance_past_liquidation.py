"""A position's liquidation distance once its scope is past maintenance is 0, whether or not a
liquidation price still exists: its critical ``liquidation_distance`` alert never "resolves"
because the pool sank deeper.

Figures: cross account, cash 10, BTC long 1 from 100 and ETH short 0.01 from 100, maintenance
1 % flat. At BTC 90 equity is 10 − 10 = 0: liquidatable, and the ETH short's liquidation price
(where 0 + 0.01·(100 − P) = 0.9 + 0.0001·P) is P = 9.90, so its distance is 0. At BTC 80
equity is −10 and no ETH price brings it back to maintenance (−9 − 0.01·P < 0 for every
P ≥ 0): no liquidation price. Before the fix the distance was then None (read "no liquidation
price: cannot be liquidated") and the ETH critical resolved while the pool was ten under
water. Seen in ``benchmarks/daemon.py``'s 100k crash: 71 such resolves."""

from __future__ import annotations

from monitor.alerts.engine import TransitionKind
from monitor.alerts.rules import RuleKind
from monitor.margin.risk import liquidation_distance
from monitor.model.events import MarkPrice
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.positions import Position
from tests.engine.helpers import T0, VENUE, engine, long_btc, rules, snapshot


def _short_eth() -> Position:
    return Position(
        "ETH", -0.01, 100.0, maintenance=MaintenanceSchedule.flat(0.01), mark_price=100.0
    )


def test_a_liquidatable_scope_puts_every_position_at_distance_zero() -> None:
    assert liquidation_distance(-0.01, 100.0, None, True) == 0.0
    assert liquidation_distance(-0.01, 100.0, None, False) is None
    assert liquidation_distance(1.0, 100.0, 90.0, False) == 0.1


def test_a_distance_critical_does_not_resolve_when_the_pool_sinks_past_any_liquidation_price() -> (
    None
):
    e, _ = engine(1, r=rules(RuleKind.LIQUIDATION_DISTANCE))
    e.receive([snapshot("a0", 10.0, long_btc(10.0), _short_eth())], T0, 0.0)
    step = e.receive([MarkPrice(VENUE, "BTC", 90.0)], T0 + 1, 1.0)
    fired = {t.subject for t in step.transitions if t.kind is TransitionKind.FIRED}
    assert fired == {"generic:a0/cross#BTC", "generic:a0/cross#ETH"}
    step = e.receive([MarkPrice(VENUE, "BTC", 80.0)], T0 + 2, 2.0)
    assert [t for t in step.transitions if t.kind is TransitionKind.RESOLVED] == []
    (eth,) = [r for r in step.risks[0].positions if r.symbol == "ETH"]
    assert eth.liquidation_price is None and eth.liquidation_distance == 0.0
    assert set(e.state.alerts) == {
        "liquidation_distance|generic:a0/cross#BTC",
        "liquidation_distance|generic:a0/cross#ETH",
    }


def test_a_resolve_whose_figure_no_longer_exists_says_why_not_the_last_value() -> None:
    """A critical liquidation distance (1 BTC long from 100, maintenance 1 %, cash 10: the
    liquidation price is where 10 + p − 100 = 0.01·p, p = 90.91, 4.3 % under 95) whose pool
    is then topped up to 1,000: no price liquidates it any more (1,000 + p − 100 ≥ 0.01·p for
    every p ≥ 0), so the figure is None. The resolve says so (``now n/a (…)``); before, it
    carried the last value and read "now 4.31%" for a risk that is gone."""
    from monitor.notify.render import transition_line

    e, _ = engine(1, r=rules(RuleKind.LIQUIDATION_DISTANCE))
    e.receive([snapshot("a0", 10.0, long_btc(10.0))], T0, 0.0)
    step = e.receive([MarkPrice(VENUE, "BTC", 95.0)], T0 + 1, 1.0)
    (fired,) = [t for t in step.transitions if t.kind is TransitionKind.FIRED]
    assert fired.severity.value == "critical" and fired.subject == "generic:a0/cross#BTC"
    step = e.receive([snapshot("a0", 1000.0, long_btc(1000.0))], T0 + 2, 2.0)
    (resolved,) = step.transitions
    assert (resolved.subject, resolved.kind) == ("generic:a0/cross#BTC", TransitionKind.RESOLVED)
    assert resolved.value is None
    assert resolved.detail == "no liquidation price: nothing liquidates the position"
    line = transition_line(resolved)
    assert "now n/a (no liquidation price: nothing liquidates the position)" in line, line
