"""A position that closes within ``liquidated_near`` of its liquidation price is reported
liquidated also when the alert state kept no distance for it: after a reload that raised
``[rules.liquidated] near`` or switched the notice on (the state keeps only the positions
within the OLD ``near``, none while the notice is off, and the engine re-evaluates every
scope after a reload at ``SWEEP_RATE`` = 1,000 scopes a second: 100 s for 100,000 scopes),
and after a restart (the distances are not stored). Its liquidation-distance alert (pending
or firing, stored) holds the last distance: that one is judged against ``near``.

Before the state kept every position's distance, so a reload never lost one."""

from __future__ import annotations

from dataclasses import replace

from monitor.alerts.engine import AlertState, Observation, TransitionKind, evaluate
from monitor.alerts.rules import AlertRules
from tests.alerts.helpers import KEY, position, scope

T0 = 1_700_000_000.0
DIST = f"liquidation_distance|{KEY}#BTC"
LIQ = f"liquidated|{KEY}#BTC"


def _held(rules: AlertRules) -> AlertState:
    """BTC 4 % from its liquidation price (mark 100, liq. 96: |100 − 96| / 100 = 0.04): a
    critical liquidation-distance alert (≤ 5 %); ETH 50 % away."""
    risk = scope(0.1, positions=(position("BTC", liq=96.0), position("ETH", liq=50.0)))
    ts, state = evaluate(Observation(risks=[risk]), T0, AlertState(), rules)
    assert [(t.key, t.kind) for t in ts] == [(DIST, TransitionKind.FIRED)]
    return state


def _closed(state: AlertState, rules: AlertRules) -> list[tuple[str, TransitionKind, str]]:
    closed = scope(0.1, positions=(position("ETH", liq=50.0),))
    ts, _ = evaluate(Observation(risks=[closed]), T0 + 1, state, rules)
    return [(t.key, t.kind, t.detail) for t in ts]


def test_a_reload_that_raises_near_reports_a_position_closing_within_the_new_near() -> None:
    rules = replace(AlertRules.default(), pending_for=0.0)  # near 2 %: BTC (4 %) not kept
    state = _held(rules)
    assert str(KEY) not in state.positions
    reloaded = replace(rules, liquidated_near=0.05)  # 4 % ≤ 5 %: its closing is a liquidation
    assert _closed(state, reloaded) == [
        (LIQ, TransitionKind.EVENT, "the position vanished while near its liquidation price "
         "(last distance 4.00%)"),
        (DIST, TransitionKind.RESOLVED, "position closed"),
    ]  # fmt: skip


def test_a_reload_that_switches_the_notice_on_reports_a_position_closing_near() -> None:
    off = replace(AlertRules.default(), pending_for=0.0, liquidated_enabled=False)
    state = _held(off)  # nothing kept while the notice is off
    assert dict(state.positions) == {}
    on = replace(off, liquidated_enabled=True, liquidated_near=0.05)
    assert [k for k, kind, _ in _closed(state, on) if kind is TransitionKind.EVENT] == [LIQ]


def test_after_a_restart_a_position_closed_near_liquidation_is_reported() -> None:
    rules = replace(AlertRules.default(), pending_for=0.0, liquidated_near=0.05)
    state = _held(rules)
    assert dict(state.positions) == {str(KEY): {"BTC": 0.04}}
    restored = AlertState(alerts=state.alerts)  # what the store gives back: no distances
    assert _closed(restored, rules) == [
        (LIQ, TransitionKind.EVENT, "the position vanished while near its liquidation price "
         "(last distance 4.00%)"),
        (DIST, TransitionKind.RESOLVED, "position closed"),
    ]  # fmt: skip


def test_a_position_both_kept_and_alerted_is_reported_once() -> None:
    rules = replace(AlertRules.default(), pending_for=0.0, liquidated_near=0.05)
    state = _held(rules)
    assert [kind for _, kind, _ in _closed(state, rules)] == [
        TransitionKind.EVENT,
        TransitionKind.RESOLVED,
    ]


def test_a_position_closing_outside_near_is_not_reported_from_its_alert() -> None:
    rules = replace(AlertRules.default(), pending_for=0.0)  # near 2 % < 4 %
    state = _held(rules)
    assert _closed(AlertState(alerts=state.alerts), rules) == [
        (DIST, TransitionKind.RESOLVED, "position closed")
    ]


def test_a_vanished_scope_reports_its_alerted_position_after_a_reload() -> None:
    rules = replace(AlertRules.default(), pending_for=0.0)
    state = _held(rules)
    reloaded = replace(rules, liquidated_near=0.05)
    ts, _ = evaluate(Observation(vanished=[KEY]), T0 + 1, state, reloaded)
    assert [(t.key, t.kind) for t in ts] == [
        (LIQ, TransitionKind.EVENT),
        (DIST, TransitionKind.RESOLVED),
    ]
