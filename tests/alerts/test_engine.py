"""The alert state machine: table tests with the arithmetic beside them, and properties."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.alerts.engine import (
    AlertState,
    AlertStatus,
    Health,
    Observation,
    Transition,
    TransitionKind,
    evaluate,
    with_mutes,
)
from monitor.alerts.mutes import Mute
from monitor.alerts.rules import AlertRules, Level, RuleKind, Severity, ThresholdRule
from monitor.model.events import FeedState, FeedStatus
from monitor.model.positions import ScopeKey
from tests.alerts.helpers import KEY, position, scope

T0 = 1_700_000_000.0
MR_KEY = f"margin_ratio|{KEY}"


def only_mr_rules(**kw: object) -> AlertRules:
    """Defaults with only the margin-ratio rule active: warning 0.8/0.75, critical 0.9/0.85."""
    d = AlertRules.default()
    t = {k: ThresholdRule(k, ()) for k in d.thresholds}
    t[RuleKind.MARGIN_RATIO] = d.thresholds[RuleKind.MARGIN_RATIO]
    return replace(d, thresholds=t, **kw)  # type: ignore[arg-type]


def run(
    values: Sequence[tuple[float, float | None]], rules: AlertRules, state: AlertState | None = None
) -> tuple[list[Transition], AlertState]:
    st_ = state or AlertState()
    out: list[Transition] = []
    for t, mr in values:
        tr, st_ = evaluate(Observation(risks=[scope(mr)]), t, st_, rules)
        out.extend(tr)
    return out, st_


def kinds(ts: Sequence[Transition], key: str = MR_KEY) -> list[tuple[str, str]]:
    return [(t.kind.value, t.severity.value) for t in ts if t.key == key]


def test_critical_fires_at_once_without_waiting_for() -> None:
    # 0.95 ≥ critical fire 0.9: critical has no `for`
    ts, state = run([(T0, 0.95)], only_mr_rules(pending_for=60.0))
    assert kinds(ts) == [("fired", "critical")]
    assert state.alerts[MR_KEY].status is AlertStatus.FIRING


def test_a_new_critical_is_recorded_as_a_warning_that_fires_at_once_would_be() -> None:
    """The critical's own path (one record, made firing) against the general one (a pending
    record that fires within the same evaluation: a warning with no ``for``): the same
    record but for its severity and threshold, and the same transition but for those."""
    rules = only_mr_rules(pending_for=0.0)
    muted = with_mutes(AlertState(), [Mute("hyperliquid:0xabc", T0 + 3600, critical=True)])
    for state in (AlertState(), muted):
        crit_ts, crit = run([(T0, 0.95)], rules, state)  # critical 0.9
        warn_ts, warn = run([(T0, 0.85)], rules, state)  # warning 0.8, fires at once
        c, w = crit.alerts[MR_KEY], warn.alerts[MR_KEY]
        assert c.severity is Severity.CRITICAL and w.severity is Severity.WARNING
        assert (
            replace(c, severity=w.severity, threshold=w.threshold, value=w.value, peak=w.peak) == w
        )
        assert (c.value, c.peak, c.threshold) == (0.95, 0.95, 0.9)
        assert len(crit_ts) == len(warn_ts) == 1
        same = {"severity": warn_ts[0].severity, "threshold": 0.8, "value": 0.85, "peak": 0.85}
        assert replace(crit_ts[0], **same, risk=warn_ts[0].risk, id=warn_ts[0].id) == warn_ts[0]


def test_warning_waits_for_its_for_duration() -> None:
    rules = only_mr_rules(pending_for=60.0)
    # 0.82 ≥ 0.8 → pending at T0; still pending at T0+59; fires at T0+60 (= since + for)
    ts, state = run([(T0, 0.82), (T0 + 59, 0.83)], rules)
    assert ts == []
    assert state.alerts[MR_KEY].status is AlertStatus.PENDING
    ts, state = run([(T0 + 60, 0.81)], rules, state)
    assert kinds(ts) == [("fired", "warning")]
    assert ts[0].since == T0 + 60 and ts[0].value == 0.81 and ts[0].threshold == 0.8


def test_pending_fires_on_timer_without_a_new_price() -> None:
    rules = only_mr_rules(pending_for=30.0)
    _, state = run([(T0, 0.85)], rules)
    ts, state = evaluate(Observation(), T0 + 30, state, rules)
    assert kinds(ts) == [("fired", "warning")]


def test_pending_dropped_silently_when_value_leaves_fire_side() -> None:
    rules = only_mr_rules(pending_for=60.0)
    # 0.78 is inside the band but the alert never fired: hysteresis applies only once firing
    ts, state = run([(T0, 0.82), (T0 + 10, 0.78), (T0 + 100, 0.78)], rules)
    assert ts == []
    assert MR_KEY not in state.alerts


def test_escalation_in_place_then_deescalation_then_resolve() -> None:
    rules = only_mr_rules(pending_for=0.0)
    ts, _ = run(
        [
            (T0, 0.81),  # ≥ 0.8 warning, for 0 → fired warning
            (T0 + 1, 0.91),  # ≥ 0.9 → escalated critical
            (T0 + 2, 0.86),  # > 0.85 critical clear → stays critical, repeat not due
            (T0 + 3, 0.84),  # ≤ 0.85 clears critical; 0.84 > 0.75 warning clear → deescalated
            (T0 + 4, 0.76),  # > 0.75 still warning
            (T0 + 5, 0.75),  # ≤ 0.75 → resolved
        ],
        rules,
    )
    assert kinds(ts) == [
        ("fired", "warning"),
        ("escalated", "critical"),
        ("deescalated", "warning"),
        ("resolved", "warning"),
    ]
    assert ts[1].previous is Severity.WARNING
    assert ts[-1].since == T0  # active since the fire
    assert ts[-1].peak == 0.91  # worst value while active


def test_repeat_interval_per_severity() -> None:
    rules = only_mr_rules(repeat={Severity.CRITICAL: 600.0, Severity.WARNING: 7200.0})
    ts, _ = run([(T0, 0.95), (T0 + 599, 0.95), (T0 + 600, 0.95), (T0 + 1199, 0.95)], rules)
    # fired at T0, repeat at T0+600 (600 after), not at T0+1199 (599 after the repeat)
    assert [(t.kind.value, t.at) for t in ts] == [("fired", T0), ("repeat", T0 + 600)]


def test_resolved_not_sent_when_disabled() -> None:
    ts, state = run([(T0, 0.95), (T0 + 1, 0.1)], only_mr_rules(send_resolved=False))
    assert kinds(ts) == [("fired", "critical")]
    assert MR_KEY not in state.alerts


def test_stale_feed_inhibits_and_says_so() -> None:
    rules = only_mr_rules()
    stale = FeedStatus("hyperliquid", "allMids", FeedState.STALE, "no data for 30s")
    ts, state = evaluate(Observation(risks=[scope(0.95)], feeds=[stale]), T0, AlertState(), rules)
    # the feed alert fires; the margin alert computed from stale prices does not
    assert [(t.rule, t.kind.value) for t in ts] == [("feed_stale", "fired")]
    assert "held" in ts[0].detail
    live = FeedStatus("hyperliquid", "allMids", FeedState.LIVE)
    ts, state = evaluate(Observation(risks=[scope(0.95)], feeds=[live]), T0 + 5, state, rules)
    assert [(t.rule, t.kind.value) for t in ts] == [
        ("feed_stale", "resolved"),
        ("margin_ratio", "fired"),
    ]


def test_feed_stale_alert_waits_for_the_configured_delay() -> None:
    """daemon.stale_alert_after (feed_stale_for): the alert waits 120 s; the inhibition of
    the venue's threshold alerts starts at once; a feed back within the delay says nothing."""
    rules = only_mr_rules(feed_stale_for=120.0)
    stale = FeedStatus("hyperliquid", "allMids", FeedState.STALE, "no data for 30s")
    ts, state = evaluate(Observation(risks=[scope(0.95)], feeds=[stale]), T0, AlertState(), rules)
    assert ts == []  # pending, and margin ratio 0.95 held by the stale feed
    ts, state = evaluate(Observation(), T0 + 119, state, rules)
    assert ts == []
    ts, state = evaluate(Observation(), T0 + 120, state, rules)
    assert [(t.rule, t.kind.value) for t in ts] == [("feed_stale", "fired")]
    # a short outage, back within the delay: nothing is sent
    ts, state2 = evaluate(Observation(feeds=[stale]), T0, AlertState(), rules)
    live = FeedStatus("hyperliquid", "allMids", FeedState.LIVE)
    ts, state2 = evaluate(Observation(feeds=[live]), T0 + 60, state2, rules)
    assert ts == []
    ts, state2 = evaluate(Observation(), T0 + 600, state2, rules)
    assert ts == []


def test_stale_feed_does_not_resolve_a_firing_alert() -> None:
    rules = only_mr_rules()
    _, state = run([(T0, 0.95)], rules)
    stale = FeedStatus("hyperliquid", "allMids", FeedState.DOWN)
    ts, state = evaluate(Observation(risks=[scope(0.1)], feeds=[stale]), T0 + 1, state, rules)
    assert [(t.rule, t.kind.value, t.severity.value) for t in ts] == [
        ("feed_stale", "fired", "critical")  # DOWN is critical
    ]
    assert state.alerts[MR_KEY].status is AlertStatus.FIRING
    # no repeat either while held, even long after the interval
    ts, state = evaluate(Observation(), T0 + 10_000, state, rules)
    assert [t.rule for t in ts] == ["feed_stale"]  # the feed alert itself repeats


def test_mute_silences_warning_but_critical_breaks_through() -> None:
    rules = only_mr_rules(pending_for=0.0)
    state = with_mutes(AlertState(), [Mute("hyperliquid:0xabc", T0 + 3600)])
    ts, state = run([(T0, 0.81)], rules, state)
    assert [(t.kind.value, t.muted) for t in ts] == [("fired", True)]
    ts, state = run([(T0 + 1, 0.95)], rules, state)
    assert [(t.kind.value, t.muted) for t in ts] == [("escalated", False)]


def test_mute_with_critical_silences_everything_and_expiry_repeats() -> None:
    rules = only_mr_rules()
    mute = Mute("hyperliquid:0xabc/cross", T0 + 100, rule="margin_ratio", critical=True)
    ts, state = run([(T0, 0.95), (T0 + 50, 0.96)], rules, with_mutes(AlertState(), [mute]))
    assert [(t.kind.value, t.muted) for t in ts] == [("fired", True)]
    # the mute ends at T0+100: the still-active alert repeats at once (never delivered before)
    ts, state = run([(T0 + 100, 0.96)], rules, state)
    assert [(t.kind.value, t.muted) for t in ts] == [("repeat", False)]


def test_mute_of_another_rule_does_not_apply() -> None:
    mute = Mute("hyperliquid:0xabc", T0 + 100, rule="shock")
    ts, _ = run([(T0, 0.95)], only_mr_rules(), with_mutes(AlertState(), [mute]))
    assert [t.muted for t in ts] == [False]


def test_vanished_near_liquidation_is_a_liquidation_event() -> None:
    rules = only_mr_rules()
    # BTC at 100 with liq 99 → distance 1 % ≤ near 2 %
    near = scope(0.5, positions=(position("BTC", mark=100.0, liq=99.0), position("ETH")))
    _, state = evaluate(Observation(risks=[near]), T0, AlertState(), rules)
    gone = scope(0.5, positions=(position("ETH"),))
    ts, state = evaluate(Observation(risks=[gone]), T0 + 1, state, rules)
    ev = [t for t in ts if t.kind is TransitionKind.EVENT]
    assert [(t.rule, t.subject, t.severity.value) for t in ev] == [
        ("liquidated", f"{KEY}#BTC", "critical")
    ]
    assert "near its liquidation price" in ev[0].detail


def test_vanished_far_from_liquidation_is_just_a_close() -> None:
    rules = only_mr_rules()
    far = scope(0.1, positions=(position("BTC", mark=100.0, liq=50.0),))  # 50 % away
    _, state = evaluate(Observation(risks=[far]), T0, AlertState(), rules)
    ts, _ = evaluate(Observation(vanished=[KEY]), T0 + 1, state, rules)
    assert ts == []


def test_venue_reported_liquidation_fires_once() -> None:
    rules = only_mr_rules()
    near = scope(0.5, positions=(position("BTC", mark=100.0, liq=99.0),))
    _, state = evaluate(Observation(risks=[near]), T0, AlertState(), rules)
    ts, _ = evaluate(Observation(vanished=[KEY], liquidated=[(KEY, "BTC")]), T0 + 1, state, rules)
    ev = [t for t in ts if t.kind is TransitionKind.EVENT]
    assert len(ev) == 1
    assert ev[0].detail == "the venue reports the position was liquidated"


def test_liquidation_distance_is_per_position() -> None:
    d = AlertRules.default()
    # BTC: |100 − 96| / 100 = 4 % ≤ critical 5 %; ETH: 50 % away
    risk = scope(0.1, positions=(position("BTC", liq=96.0), position("ETH", liq=50.0)))
    ts, _ = evaluate(Observation(risks=[risk]), T0, AlertState(), d)
    fired = [(t.rule, t.subject, t.severity.value) for t in ts]
    assert fired == [("liquidation_distance", f"{KEY}#BTC", "critical")]
    assert abs((ts[0].value or 0) - 0.04) < 1e-12


def test_drawdown_from_peak_equity() -> None:
    d = AlertRules.default()
    rules = replace(d, pending_for=0.0)
    # peak 1000; 740 → (1000 − 740) / 1000 = 26 % ≥ warning 25 %
    _, state = evaluate(Observation(risks=[scope(0.1, equity=1000.0)]), T0, AlertState(), rules)
    ts, state = evaluate(Observation(risks=[scope(0.1, equity=740.0)]), T0 + 1, state, rules)
    dd = [t for t in ts if t.rule == "drawdown"]
    assert [(t.kind.value, t.severity.value) for t in dd] == [("fired", "warning")]
    assert abs((dd[0].value or 0) - 0.26) < 1e-12
    assert state.peaks[str(KEY)] == 1000.0


def test_funding_rate_annualized_per_symbol_bound() -> None:
    d = AlertRules.default()
    fr = ThresholdRule(
        RuleKind.FUNDING_RATE,
        (Level(Severity.WARNING, 1.0, 0.9),),
        symbols={"BTC": (Level(Severity.WARNING, 0.5, 0.45),)},
    )
    rules = replace(d, pending_for=0.0, thresholds={**d.thresholds, RuleKind.FUNDING_RATE: fr})
    # 0.00007 /h · 8760 h = 0.6132 APR: ≥ BTC bound 0.5, < global bound 1.0 for ETH
    risk = scope(
        0.1,
        positions=(
            position("BTC", funding_per_hour=0.00007, size=0.0001),
            position("ETH", funding_per_hour=-0.00007, size=0.0001),
        ),
    )
    ts, _ = evaluate(Observation(risks=[risk]), T0, AlertState(), rules)
    assert [(t.rule, t.symbol) for t in ts] == [("funding_rate", "BTC")]
    assert abs((ts[0].value or 0) - 0.00007 * 8760) < 1e-12


def test_equity_at_or_below_zero_counts_as_margin_ratio_infinite() -> None:
    ts, _ = run([(T0, None)], only_mr_rules())
    assert kinds(ts) == [("fired", "critical")]


def test_delivery_failing_and_backlog_health() -> None:
    d = AlertRules.default()
    ts, state = evaluate(
        Observation(health=Health(failing_channels=("tgram://…",), backlog=60)),
        T0,
        AlertState(),
        d,
    )
    # delivery failing → critical (default); backlog 60 ≥ 50 with for 0 → warning
    assert sorted((t.rule, t.severity.value) for t in ts) == [
        ("delivery_failing", "critical"),
        ("outbox_backlog", "warning"),
    ]
    ts, _ = evaluate(Observation(health=Health(backlog=10)), T0 + 1, state, d)
    assert sorted((t.rule, t.kind.value) for t in ts) == [
        ("delivery_failing", "resolved"),
        ("outbox_backlog", "resolved"),
    ]


def test_per_account_override() -> None:
    d = AlertRules.default()
    strict = {
        RuleKind.MARGIN_RATIO: ThresholdRule(
            RuleKind.MARGIN_RATIO, (Level(Severity.CRITICAL, 0.3, 0.25),)
        )
    }
    rules = replace(only_mr_rules(), accounts={"hyperliquid:0xabc": strict})
    assert d.rule(RuleKind.MARGIN_RATIO, "hyperliquid:0xabc") is d.thresholds[RuleKind.MARGIN_RATIO]
    ts, _ = run([(T0, 0.35)], rules)  # 0.35 ≥ 0.3 in this account only
    assert kinds(ts) == [("fired", "critical")]
    other = ScopeKey("hyperliquid", "0xdef", "cross")
    ts, _ = evaluate(Observation(risks=[scope(0.35, key=other)]), T0, AlertState(), rules)
    assert ts == []


# -- properties ----------------------------------------------------------------------------

STEPS = st.lists(
    st.tuples(
        st.floats(min_value=0.0, max_value=400.0),
        st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.5)),
    ),
    min_size=1,
    max_size=40,
)


def _timeline(steps: list[tuple[float, float | None]]) -> list[tuple[float, float | None]]:
    t = T0
    out = []
    for dt, v in steps:
        t += dt
        out.append((t, v))
    return out


PROP_RULES = only_mr_rules(
    pending_for=30.0, repeat={Severity.WARNING: 300.0, Severity.CRITICAL: 120.0}
)


@settings(max_examples=200, deadline=None)
@given(STEPS)
def test_never_two_fires_without_a_resolve(steps: list[tuple[float, float | None]]) -> None:
    ts, _ = run(_timeline(steps), PROP_RULES)
    active = False
    for t in ts:
        if t.kind is TransitionKind.FIRED:
            assert not active
            active = True
        elif t.kind is TransitionKind.RESOLVED:
            assert active
            active = False
        else:
            assert active


@settings(max_examples=200, deadline=None)
@given(STEPS)
def test_no_repeat_sooner_than_its_interval(steps: list[tuple[float, float | None]]) -> None:
    ts, _ = run(_timeline(steps), PROP_RULES)
    last_sent: float | None = None
    for t in ts:
        if t.kind is TransitionKind.REPEAT:
            assert last_sent is not None
            assert t.at - last_sent >= PROP_RULES.repeat[t.severity]
        last_sent = t.at


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.0, 50.0), st.floats(min_value=0.7501, max_value=0.8499)),
        min_size=1,
        max_size=40,
    )
)
def test_flapping_inside_the_band_fires_once(steps: list[tuple[float, float]]) -> None:
    # start above critical fire (0.9), then flap between warning clear (0.75) and critical
    # clear (0.85): one fire, then at most a de-escalation to warning; never a resolve or a
    # second fire. Repeats are pushed out of the way by a long interval.
    rules = only_mr_rules(repeat={Severity.WARNING: 1e9, Severity.CRITICAL: 1e9})
    ts, _ = run([(T0, 0.95), *_timeline([(dt + 1.0, v) for dt, v in steps])], rules)
    assert [t.kind for t in ts].count(TransitionKind.FIRED) == 1
    assert TransitionKind.RESOLVED not in [t.kind for t in ts]
    assert len(ts) <= 2


@settings(max_examples=100, deadline=None)
@given(STEPS)
def test_inhibition_holds_while_stale(steps: list[tuple[float, float | None]]) -> None:
    stale = FeedStatus("hyperliquid", "allMids", FeedState.STALE)
    _, state = evaluate(Observation(feeds=[stale]), T0 - 1, AlertState(), PROP_RULES)
    ts, _ = run(_timeline(steps), PROP_RULES, state)
    assert [t for t in ts if t.rule == "margin_ratio"] == []


@settings(max_examples=100, deadline=None)
@given(STEPS)
def test_mutes_hold_for_non_critical(steps: list[tuple[float, float | None]]) -> None:
    state = with_mutes(AlertState(), [Mute("hyperliquid:0xabc", T0 + 1e9)])
    ts, _ = run(_timeline(steps), PROP_RULES, state)
    for t in ts:
        assert t.muted == (t.severity is not Severity.CRITICAL) or t.kind is TransitionKind.REPEAT
        if t.kind is TransitionKind.REPEAT:
            assert t.severity is Severity.CRITICAL


def test_pure_modules_import_no_io() -> None:
    """monitor/alerts and the renderer take data and return data: no I/O imports."""
    import ast
    from pathlib import Path

    import monitor

    root = Path(monitor.__file__).parent
    files = [*sorted((root / "alerts").glob("*.py")), root / "notify" / "render.py"]
    banned = {
        "asyncio",
        "aiosqlite",
        "sqlite3",
        "apprise",
        "ccxt",
        "socket",
        "time",
        "aiohttp",
        "websockets",
        "structlog",
        "random",
        "monitor.store",
        "monitor.clock",
    }
    for f in files:
        for node in ast.walk(ast.parse(f.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            for name in names:
                assert not any(name == b or name.startswith(b + ".") for b in banned), (f, name)


def test_scope_rules_table() -> None:
    d = AlertRules.default()
    eq = ThresholdRule(RuleKind.EQUITY, (Level(Severity.WARNING, 500.0, 525.0),))
    fc = ThresholdRule(RuleKind.FUNDING_COST, (Level(Severity.WARNING, 20.0, 19.0),))
    rules = replace(
        d,
        pending_for=0.0,
        thresholds={**d.thresholds, RuleKind.EQUITY: eq, RuleKind.FUNDING_COST: fc},
    )
    # equity 400 ≤ 500; funding 30/day ≥ 20 and 30 / 400 = 7.5 % ≥ 1 %; runway 20 h ≤ 24 h
    # (critical); shock 4 % ≤ 5 % (critical); margin ratio 0.1 and distance 50 %: quiet
    risk = scope(0.1, equity=400.0, funding_day=30.0, runway=20.0, shock=0.04)
    ts, _ = evaluate(Observation(risks=[risk]), T0, AlertState(), rules)
    got = {(t.rule, t.severity.value): t.value for t in ts}
    assert set(got) == {
        ("equity", "warning"),
        ("funding_cost", "warning"),
        ("funding_cost_pct", "warning"),
        ("funding_runway", "critical"),
        ("shock", "critical"),
    }
    assert abs((got["funding_cost_pct", "warning"] or 0) - 30.0 / 400.0) < 1e-12


def test_inhibition_lasts_while_any_feed_of_the_venue_is_stale() -> None:
    rules = only_mr_rules()
    a = FeedStatus("hyperliquid", "allMids", FeedState.STALE)
    b = FeedStatus("hyperliquid", "webData2", FeedState.STALE)
    _, state = evaluate(Observation(feeds=[a, b]), T0, AlertState(), rules)
    live_a = FeedStatus("hyperliquid", "allMids", FeedState.RECOVERED)
    ts, state = evaluate(Observation(risks=[scope(0.95)], feeds=[live_a]), T0 + 1, state, rules)
    assert [(t.rule, t.kind.value) for t in ts] == [("feed_stale", "resolved")]
    assert state.inhibited_venues() == {"hyperliquid"}
    other = ScopeKey("dydx_v4", "x", "cross")  # another venue is not held
    ts, _ = evaluate(Observation(risks=[scope(0.95, key=other)]), T0 + 2, state, rules)
    assert [(t.rule, t.subject) for t in ts] == [("margin_ratio", str(other))]
