"""build_messages with labels, remedies and held alerts: the remedy against a real Portfolio
(the venue's maintenance schedule), held alerts from the real alert engine."""

from __future__ import annotations

from dataclasses import replace

from monitor.alerts.engine import (
    AlertState,
    Observation,
    Transition,
    TransitionKind,
    evaluate,
)
from monitor.alerts.rules import AlertRules, Level, RuleKind, Severity, ThresholdRule
from monitor.margin.remedy import Remedy, Target
from monitor.model.events import AccountSnapshot, FeedState, FeedStatus
from monitor.model.instruments import MaintenanceSchedule
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey
from monitor.notify.channels import Channel, parse_channels
from monitor.notify.outbound import (
    Recent,
    build_messages,
    held_by,
    labels_of,
    remedy_for,
    remedy_target,
)
from monitor.notify.render import who
from monitor.report import portfolio_of
from tests.alerts.helpers import scope

T0 = 1_777_636_800.0  # 2026-05-01T12:00:00Z
ADDR = "0x1111111111111111111111111111111111111111"
CROSS = ScopeKey("generic", "acct", "cross")
LABELS = {"generic:acct": "Main desk"}


def rules() -> AlertRules:
    """Margin ratio critical at 0.8 (clear 0.75); liquidation distance critical at 5 %
    (clear 6 %); every other rule off."""
    d = AlertRules.default()
    t = {k: ThresholdRule(k, ()) for k in d.thresholds}
    c = Severity.CRITICAL
    t[RuleKind.MARGIN_RATIO] = ThresholdRule(RuleKind.MARGIN_RATIO, (Level(c, 0.8, 0.75),))
    t[RuleKind.LIQUIDATION_DISTANCE] = ThresholdRule(
        RuleKind.LIQUIDATION_DISTANCE, (Level(c, 0.05, 0.06),)
    )
    return replace(d, thresholds=t)


def book(collateral: float = 600.0) -> Portfolio:
    """BTC +1 at 50 000 (entry = mark), 1 % maintenance: MM 500."""
    btc = Position(
        symbol="BTC",
        size=1.0,
        entry_price=50_000.0,
        mark_price=50_000.0,
        maintenance=MaintenanceSchedule.flat(0.01),
    )
    return portfolio_of([AccountSnapshot("generic", "acct", collateral, (btc,))])


def fired(rule: str = "margin_ratio", subject: str = str(CROSS), **kw: object) -> Transition:
    base: dict[str, object] = {
        "id": f"{rule}|{subject}@1/fired",
        "kind": TransitionKind.FIRED,
        "key": f"{rule}|{subject}",
        "rule": rule,
        "severity": Severity.CRITICAL,
        "group": "generic:acct",
        "subject": subject,
        "at": T0,
        "since": T0,
        "value": 500.0 / 600.0,
        "threshold": 0.8,
    }
    base.update(kw)
    return Transition(**base)  # type: ignore[arg-type]


def text_channel() -> Channel:
    (ch,) = parse_channels(
        {"hook": {"url": "json://127.0.0.1:9/x", "format": "text"}},
        "t",
        env={},
        credentials_dir=None,
    )
    return ch


def test_remedy_targets_the_clear_level_of_the_rule_that_fired() -> None:
    assert remedy_target(fired(), rules()) == Target(margin_ratio=0.75)
    dist = fired("liquidation_distance", f"{CROSS}#BTC", value=0.004, threshold=0.05)
    assert remedy_target(dist, rules()) == Target(distance=0.06)
    # a resolve, and a rule without a remedy, get none
    assert remedy_target(fired(kind=TransitionKind.RESOLVED), rules()) is None
    assert remedy_target(fired("drawdown"), rules()) is None


def test_remedy_for_a_margin_ratio_alert_on_a_real_portfolio() -> None:
    r = remedy_for(book(), fired(), rules())
    assert r is not None and r.key == CROSS and r.target == Target(margin_ratio=0.75)
    # deposit D = MM / 0.75 − equity = 500 / 0.75 − 600 = 66.67
    assert r.deposit is not None and abs(r.deposit - 66.666_666_7) < 1e-6
    # reduce: equity stays 600 (closed at entry, no fee); 500·(1 − x) = 0.75·600 → x = 0.1
    assert r.reduce_symbol == "BTC"
    # to an alert's precision (10⁻⁹ of the position; the target holds within TOLERANCE)
    assert r.reduce_fraction is not None and abs(r.reduce_fraction - 0.1) <= 1e-9


def test_remedy_for_a_scope_that_is_gone_is_none() -> None:
    gone = fired(subject="generic:other/cross", group="generic:other")
    assert remedy_for(book(), gone, rules()) is None


def test_the_remedy_is_in_the_message_between_the_alert_line_and_the_figures() -> None:
    p = book()
    risk = next(r for r in p.risks() if r.key == CROSS)
    t = replace(fired(), risk=risk)
    (msg,) = build_messages(
        [t],
        [text_channel()],
        {},
        T0,
        labels=LABELS,
        rules=rules(),
        remedy=lambda tr, reduce=True: remedy_for(p, tr, rules(), reduce=reduce),
    )
    lines = msg.body.splitlines()
    assert msg.title == "[CRITICAL] Main desk — margin ratio 0.8333 (83.3%)"
    # 500 / 600 = 0.8333
    assert lines[0] == (
        "FIRING CRITICAL: Main desk, cross: margin ratio 0.8333 (83.3%) ≥ 0.8000 (80.0%), "
        "the critical level (since 2026-05-01T12:00:00Z)"
    )
    # after the deposit: equity 666.67, 666.67 + (P − 50 000) = 0.01·P → P = 49 831.65,
    # 168.35 / 50 000 = 0.34 % away; after the cut: 0.9 BTC, 600 + 0.9·(P − 50 000) =
    # 0.009·P → P = 49 831.65 as well
    assert lines[1:6] == [
        "",
        "What to do on Main desk (generic:acct/cross):",
        "To get back to margin ratio 75% (its clear level):",
        "• deposit 66.67 → margin ratio 75.0%, nearest liquidation 0.34% away",
        "• or cut BTC by 0.1 (10.00%) → margin ratio 75.0%, nearest liquidation 0.34% away",
    ]
    assert lines[7].startswith(
        "Scope Main desk (generic:acct/cross): equity 600.00, maintenance 500.00"
    )


def test_a_remedy_that_raises_nothing_leaves_the_alert_without_one() -> None:
    (msg,) = build_messages(
        [fired()], [text_channel()], {}, T0, rules=rules(), remedy=lambda tr, reduce=True: None
    )
    assert "What to do" not in msg.body
    assert msg.body.splitlines()[0].startswith("FIRING CRITICAL: generic:acct, cross:")


def test_a_stale_feed_gets_a_message_of_its_own_naming_the_alerts_it_holds() -> None:
    key = ScopeKey("hyperliquid", ADDR, "cross")
    labels = {f"hyperliquid:{ADDR}": "Main desk"}
    r = AlertRules.default()
    # the margin ratio fires at 0.95 (critical 0.9), then the price feed goes stale
    ts, state = evaluate(Observation(risks=[scope(0.95, key=key)]), T0, AlertState(), r)
    assert [t.rule for t in ts] == ["margin_ratio"]
    stale = FeedStatus("hyperliquid", "allMids", FeedState.STALE, "no data for 30s")
    ts, state = evaluate(Observation(feeds=[stale]), T0 + 60, state, r)
    assert [(t.rule, t.kind.value) for t in ts] == [("feed_stale", "fired")]
    assert [h.rule for h in held_by(ts[0], state)] == ["margin_ratio"]
    feed_msg, held = build_messages(ts, [text_channel()], {}, T0 + 60, labels=labels, state=state)
    assert feed_msg.title.startswith("[WARNING] feed:hyperliquid — feed stale")
    assert held.title == "[HELD] feed:hyperliquid — 1 alert held while hyperliquid/allMids is stale"
    assert held.body.splitlines() == [
        "HELD: 1 alert frozen while hyperliquid/allMids is stale (no fire, no repeat, no "
        "resolve until it recovers; values as last seen):",
        "• CRITICAL Main desk, cross: margin ratio 0.9500 (95.0%) (firing since "
        "2026-05-01T12:00:00Z)",
        "",
        "at 2026-05-01T12:01:00Z",
    ]
    assert held.idem_key != feed_msg.idem_key and held.idem_key.endswith(":hook")
    # without the state, or once nothing is held, no such message
    assert len(build_messages(ts, [text_channel()], {}, T0 + 60)) == 1


def test_an_account_stream_holds_only_that_account() -> None:
    a, b = ScopeKey("hyperliquid", "0xa", "cross"), ScopeKey("hyperliquid", "0xb", "cross")
    r = AlertRules.default()
    ts, state = evaluate(
        Observation(risks=[scope(0.95, key=a), scope(0.95, key=b)]), T0, AlertState(), r
    )
    stale = FeedStatus("hyperliquid", "account:0xa", FeedState.DOWN, "closed")
    ts, state = evaluate(Observation(feeds=[stale]), T0 + 1, state, r)
    (feed,) = [t for t in ts if t.rule == "feed_stale"]
    assert [h.group for h in held_by(feed, state)] == ["hyperliquid:0xa"]
    msgs = build_messages(ts, [text_channel()], {}, T0 + 1, state=state)
    held = msgs[-1]
    assert "HELD: 1 alert frozen while hyperliquid/account:0xa is down" in held.body
    assert held.severity == "critical"


def test_labels_of_the_configured_accounts() -> None:
    from monitor.config import AccountConfig, AccountKind

    accounts = [
        AccountConfig(
            AccountKind.ADDRESS, "hyperliquid", ADDR, label="Main desk", feed="hyperliquid"
        ),
        AccountConfig(AccountKind.ADDRESS, "hyperliquid", "0x2222", feed="hyperliquid"),
        AccountConfig(AccountKind.ADDRESS, "dydx_v4", "dydx1abc/0", label="Swing", feed="dydx"),
    ]
    labels = labels_of(accounts)
    assert labels == {f"hyperliquid:{ADDR}": "Main desk", "dydx:dydx1abc/0": "Swing"}
    # a dYdX child subaccount (128 + 0) is named after its parent
    assert who("dydx:dydx1abc/128", labels) == "Swing /128"
    assert who("dydx:dydx1abc/1", labels) == "dydx:dydx1abc/1"


def test_a_venue_ratio_alert_our_figures_do_not_reproduce_says_so_instead_of_a_deposit() -> None:
    # collateral 1 000: MM 500 / equity 1 000 = 0.5 by our figures, while the venue's own
    # ratio (0.92) fired the critical; liquidation: 1 000 + (P − 50 000) = 0.01·P →
    # P = 49 000 / 0.99 = 49 494.95, (50 000 − 49 494.95) / 50 000 = 1.01 % away
    p = book(1_000.0)
    t = fired(value=0.92, threshold=0.8)
    (msg,) = build_messages(
        [t],
        [text_channel()],
        {},
        T0,
        rules=rules(),
        remedy=lambda tr, reduce=True: remedy_for(p, tr, rules(), reduce=reduce),
    )
    lines = msg.body.splitlines()
    assert lines[3:5] == [
        "To get back to margin ratio 75% (its clear level):",
        "• by our figures the scope is already there (margin ratio 50.0%, nearest liquidation "
        "1.01% away); the alert comes from the venue's own figure: check the account at the venue",
    ]


def test_an_alert_says_how_fast_it_moved_from_the_recent_values() -> None:
    recent = Recent(window=900.0, every=10.0)
    recent.record(book(1_000.0).risks(), T0)  # 500 / 1 000 = 0.5
    recent.record(book(800.0).risks(), T0 + 300)  # 500 / 800 = 0.625
    now = book(600.0)
    recent.record(now.risks(), T0 + 720)  # 500 / 600 = 0.8333
    t = fired(at=T0 + 720, since=T0 + 720)
    (msg,) = build_messages([t], [text_channel()], {}, T0 + 720, rules=rules(), recent=recent)
    # the oldest sample in the window: 0.5, 720 s = 12 min before
    assert msg.body.splitlines()[0] == (
        "FIRING CRITICAL: generic:acct, cross: margin ratio 0.8333 (83.3%) ≥ 0.8000 (80.0%), the "
        "critical level (up from 0.5000 (50.0%) 12 min ago; since 2026-05-01T12:12:00Z)"
    )
    # BTC's distance: 1 000 + (P − 50 000) = 0.01·P → 1.01 % then; 600 → 0.20 %
    (dist,) = build_messages(
        [fired("liquidation_distance", f"{CROSS}#BTC", value=0.002, threshold=0.05, at=T0 + 720)],
        [text_channel()],
        {},
        T0 + 720,
        recent=recent,
    )
    assert "(down from 1.01% 12 min ago;" in dist.body.splitlines()[0]


def test_recent_values_are_bounded_and_forget_what_left_the_window() -> None:
    recent = Recent(window=60.0, every=10.0)
    for i in range(1_000):  # one step a second for 1 000 s
        recent.record(book(1_000.0 - i * 0.1).risks(), T0 + i)
    t = fired(at=T0 + 999)
    move = recent.move(t, T0 + 999)
    # samples every 10 s, none older than 60 s: the oldest is from T0 + 940 (ratio 500 / 906)
    assert move is not None and move.seconds == 59.0
    assert abs(move.value - 500.0 / 906.0) < 1e-12
    assert recent.move(fired(rule="drawdown"), T0 + 999) is None  # no speed for other rules
    # after the window with nothing recorded, nothing is said
    assert recent.move(t, T0 + 999 + 120) is None


def test_the_remedy_is_computed_once_per_scope_rule_and_severity() -> None:
    p = book()
    asked: list[str] = []

    def remedy(t: Transition, *, reduce: bool = True) -> Remedy | None:
        asked.append(t.subject)
        return remedy_for(p, t, rules(), reduce=reduce)

    ts = [
        fired("liquidation_distance", f"{CROSS}#BTC", id="a", value=0.004, threshold=0.05),
        fired("liquidation_distance", f"{CROSS}#ETH", id="b", value=0.004, threshold=0.05),
        fired(id="c"),
    ]
    (msg,) = build_messages(ts, [text_channel()], {}, T0, rules=rules(), remedy=remedy)
    assert asked == [f"{CROSS}#BTC", str(CROSS)]
    # one heading for the scope, one block per target (distance 6 %, ratio 75 %)
    assert msg.body.count("What to do on generic:acct/cross:") == 1
    assert "To get back to liquidation distance 6% (its clear level):" in msg.body
    assert "To get back to margin ratio 75% (its clear level):" in msg.body


def test_in_a_burst_the_first_scopes_get_the_reduction_and_the_rest_the_deposit_and_a_note() -> (
    None
):
    # 60 accounts at once, each BTC +1 at 50 000 with MM 500 on 600 (ratio 83 % ≥ 80 %): the
    # first REDUCTIONS_PER_CALL remedies are whole, the rest give the deposit (500 / 0.75 −
    # 600 = 66.67) and say the reduction was not computed
    from monitor.margin.remedy import REDUCTION_SKIPPED
    from monitor.notify.outbound import REDUCTIONS_PER_CALL

    n = REDUCTIONS_PER_CALL + 10
    btc = Position("BTC", 1.0, 50_000.0, mark_price=50_000.0,
                   maintenance=MaintenanceSchedule.flat(0.01))  # fmt: skip
    p = portfolio_of([AccountSnapshot("generic", f"a{i:02d}", 600.0, (btc,)) for i in range(n)])
    got: list[Remedy | None] = []

    def remedy(t: Transition, *, reduce: bool = True) -> Remedy | None:
        got.append(remedy_for(p, t, rules(), reduce=reduce))
        return got[-1]

    ts = [
        fired(id=f"t{i}", group=f"generic:a{i:02d}", subject=f"generic:a{i:02d}/cross")
        for i in range(n)
    ]
    msgs = build_messages(ts, [text_channel()], {}, T0, rules=rules(), remedy=remedy)
    assert len(msgs) == n and len(got) == n
    for i, r in enumerate(got):
        assert r is not None and r.deposit is not None and abs(r.deposit - 66.666_666_7) < 1e-6
        if i < REDUCTIONS_PER_CALL:
            assert r.reduce_fraction is not None and r.reduce_note is None
        else:
            assert r.reduce_fraction is None and r.reduce_note == (
                f"{REDUCTION_SKIPPED}; `monitor whatif` with --target-ratio 75% computes it"
            )
    assert "• or cut BTC by" in msgs[0].body
    assert f"• note: {REDUCTION_SKIPPED}" in msgs[-1].body and "• deposit" in msgs[-1].body


def test_the_reduction_budget_is_a_bucket_refilled_each_second() -> None:
    """50 a second, burst 50: 50 at T0, none left, 25 more half a second later (0.5 · 50); a
    clock that steps back refills nothing, then refills from its new time. (Times are binary
    fractions: epoch seconds are floats.)"""
    from monitor.notify.outbound import ReductionBudget

    b = ReductionBudget(per_second=50.0, burst=50.0)
    assert sum(b.take(T0) for _ in range(60)) == 50
    assert sum(b.take(T0 + 0.5) for _ in range(60)) == 25
    assert sum(b.take(T0 - 100.0) for _ in range(10)) == 0  # stepped back: nothing new
    assert sum(b.take(T0 - 99.875) for _ in range(10)) == 6  # 0.125 s later: 6.25 more
    assert sum(b.take(T0 + 1_000.0) for _ in range(60)) == 50  # never more than the burst


def test_a_clock_set_back_an_hour_does_not_starve_the_reductions_for_an_hour() -> None:
    """The bucket emptied at T0, then the wall clock set back an hour (NTP) and running on
    from there: one second later (T0 − 3600 + 1) the bucket has refilled 1 · 50 = 50, as it
    would on a clock that never stepped; kept at T0, it would stay empty until T0."""
    from monitor.notify.outbound import ReductionBudget

    b = ReductionBudget(per_second=50.0, burst=50.0)
    assert sum(b.take(T0) for _ in range(60)) == 50
    assert sum(b.take(T0 - 3_600.0) for _ in range(10)) == 0  # the step itself: nothing new
    assert sum(b.take(T0 - 3_599.0) for _ in range(60)) == 50


def test_across_steps_the_budget_bounds_the_reductions_of_a_crash() -> None:
    """A crash decided in 4 steps of 30 accounts 0.125 s apart (the daemon's steps are
    ~0.1 s): the per-step bound (50) alone would give all 120 their reduction; the budget
    shared across the steps (50 a second) gives 50 and 6.25 more every 0.125 s."""
    from monitor.notify.outbound import ReductionBudget

    n = 120
    btc = Position("BTC", 1.0, 50_000.0, mark_price=50_000.0,
                   maintenance=MaintenanceSchedule.flat(0.01))  # fmt: skip
    p = portfolio_of([AccountSnapshot("generic", f"a{i:03d}", 600.0, (btc,)) for i in range(n)])
    got: list[Remedy | None] = []

    def remedy(t: Transition, *, reduce: bool = True) -> Remedy | None:
        got.append(remedy_for(p, t, rules(), reduce=reduce))
        return got[-1]

    budget = ReductionBudget(per_second=50.0, burst=50.0)
    ts = [
        fired(id=f"t{i}", group=f"generic:a{i:03d}", subject=f"generic:a{i:03d}/cross")
        for i in range(n)
    ]
    for k in range(4):
        build_messages(ts[30 * k : 30 * (k + 1)], [text_channel()], {}, T0 + 0.125 * k,
                       rules=rules(), remedy=remedy, reductions=budget)  # fmt: skip
    reduced = [r is not None and r.reduce_fraction is not None for r in got]
    # T0: 30 of 50 tokens; T0 + 0.125: 20 left + 6.25 = 26 for 30 (0.25 left); then each
    # 0.125 s refills 6.25: 6.5 → 6 (0.5 left), 6.75 → 6
    assert sum(reduced[:30]) == 30 and sum(reduced[30:60]) == 26
    assert sum(reduced[60:90]) == 6 and sum(reduced[90:]) == 6
    assert all(r is not None and r.deposit is not None for r in got)  # the deposit always
    build_messages(ts[:30], [text_channel()], {}, T0 + 1.5, rules=rules(), remedy=remedy,
                   reductions=budget)  # fmt: skip
    assert sum(r is not None and r.reduce_fraction is not None for r in got[120:]) == 30
