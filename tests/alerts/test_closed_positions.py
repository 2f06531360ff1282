"""Positions that close (issue 12.6, memory): the alert state keeps the last liquidation
distance only of positions within ``liquidated_near`` of their liquidation price (those whose
closing says "liquidated"); every alert on a closed position still resolves."""

from __future__ import annotations

from dataclasses import replace

from monitor.alerts.engine import AlertState, Observation, TransitionKind, evaluate
from monitor.alerts.rules import AlertRules
from tests.alerts.helpers import KEY, position, scope

T0 = 1_700_000_000.0


def test_only_positions_near_liquidation_are_remembered() -> None:
    rules = AlertRules.default()  # liquidated_near 2 %
    # BTC 1 % from its liquidation price, ETH 50 %, SOL unknown (no liquidation price)
    risk = scope(
        0.1,
        positions=(
            position("BTC", mark=100.0, liq=99.0),
            position("ETH", mark=100.0, liq=50.0),
            position("SOL", mark=100.0, liq=None),
        ),
    )
    _, state = evaluate(Observation(risks=[risk]), T0, AlertState(), rules)
    assert dict(state.positions) == {str(KEY): {"BTC": 0.01}}
    # nothing near: the scope has no entry at all
    calm = scope(0.1, positions=(position("ETH", mark=100.0, liq=50.0),))
    _, state = evaluate(Observation(risks=[calm]), T0 + 1, state, rules)
    assert dict(state.positions) == {}


def test_nothing_is_remembered_when_the_liquidated_notice_is_off() -> None:
    rules = replace(AlertRules.default(), liquidated_enabled=False)
    risk = scope(0.1, positions=(position("BTC", mark=100.0, liq=99.0),))
    _, state = evaluate(Observation(risks=[risk]), T0, AlertState(), rules)
    assert dict(state.positions) == {}


def test_an_alert_on_a_position_far_from_liquidation_resolves_when_it_closes() -> None:
    rules = replace(AlertRules.default(), pending_for=0.0)
    # BTC 4 % from liquidation: a critical liquidation-distance alert (≤ 5 %), but not
    # within liquidated_near (2 %): its closing is not a liquidation, and it is not kept
    risk = scope(0.1, positions=(position("BTC", liq=96.0), position("ETH", liq=50.0)))
    ts, state = evaluate(Observation(risks=[risk]), T0, AlertState(), rules)
    key = f"liquidation_distance|{KEY}#BTC"
    assert [(t.key, t.kind.value) for t in ts] == [(key, "fired")]
    assert str(KEY) not in state.positions
    closed = scope(0.1, positions=(position("ETH", liq=50.0),))
    ts, state = evaluate(Observation(risks=[closed]), T0 + 1, state, rules)
    assert [(t.key, t.kind, t.detail) for t in ts] == [
        (key, TransitionKind.RESOLVED, "position closed")
    ]
    assert key not in state.alerts


def test_a_scope_that_vanishes_resolves_its_position_alerts_as_closed() -> None:
    rules = replace(AlertRules.default(), pending_for=0.0)
    risk = scope(0.1, positions=(position("BTC", liq=96.0),))
    _, state = evaluate(Observation(risks=[risk]), T0, AlertState(), rules)
    ts, state = evaluate(Observation(vanished=[KEY]), T0 + 1, state, rules)
    assert [(t.rule, t.kind, t.detail) for t in ts] == [
        ("liquidation_distance", TransitionKind.RESOLVED, "position closed")
    ]
    assert state.alerts == {}
