"""Pure rendering: who/what/how bad lines, truthful wording, figures, UTC times, subjects,
Markdown escaping, control characters, the Telegram limit."""

from __future__ import annotations

from monitor.alerts.engine import AlertRecord, AlertStatus, Transition, TransitionKind
from monitor.alerts.grouping import AlertGroup, group_transitions
from monitor.alerts.rules import AlertRules, Severity
from monitor.model.positions import ScopeKey
from monitor.notify.render import (
    TELEGRAM_LIMIT,
    batch_title,
    combine,
    fit,
    group_title,
    iso,
    md_escape,
    notify_type,
    one_line,
    render_group,
    render_held,
    scope_lines,
    transition_line,
    who,
)
from tests.alerts.helpers import position, scope

T0 = 1_777_636_800.0  # 2026-05-01T12:00:00Z
KEY = ScopeKey("hyperliquid", "0xabc", "cross")
ADDR = "0x1111111111111111111111111111111111111111"
LONG = ScopeKey("hyperliquid", ADDR, "cross")
LABELS = {f"hyperliquid:{ADDR}": "Main desk"}


def tr(kind: TransitionKind = TransitionKind.FIRED, **kw: object) -> Transition:
    base: dict[str, object] = {
        "id": "x",
        "kind": kind,
        "key": f"margin_ratio|{KEY}",
        "rule": "margin_ratio",
        "severity": Severity.CRITICAL,
        "group": "hyperliquid:0xabc",
        "subject": str(KEY),
        "at": T0,
        "since": T0,
        "value": 0.95,
        "threshold": 0.9,
    }
    base.update(kw)
    return Transition(**base)  # type: ignore[arg-type]


def long_tr(kind: TransitionKind = TransitionKind.FIRED, **kw: object) -> Transition:
    base: dict[str, object] = {"group": f"hyperliquid:{ADDR}", "subject": str(LONG)}
    return tr(kind, **(base | kw))


def test_iso_is_utc_with_z() -> None:
    assert iso(T0) == "2026-05-01T12:00:00Z"


def test_fired_message_has_value_threshold_and_scope_figures() -> None:
    risk = scope(
        0.95,
        equity=1000.0,
        positions=(position("BTC", mark=100.0, liq=96.0), position("ETH", mark=10.0, liq=5.0)),
        shock=0.04,
        funding_day=12.5,
        runway=30.0,
    )
    g = AlertGroup("hyperliquid:0xabc", (tr(risk=risk),))
    r = render_group(g, {})
    lines = r.body.splitlines()
    assert lines[0] == (
        "FIRING CRITICAL: hyperliquid:0xabc, cross: margin ratio 0.9500 (95.0%) ≥ 0.9000 "
        "(90.0%), the critical level (since 2026-05-01T12:00:00Z)"
    )
    # equity 1000, maintenance 0.95 · 1000 = 950
    assert (
        "Scope hyperliquid:0xabc/cross: equity 1,000.00, maintenance 950.00, margin ratio "
        "0.9500 (95.0%): not liquidatable" in lines
    )
    assert "Collateral at risk: 1,000.00 (the whole cross pool)" in lines
    assert "Shock to liquidation: 4.00% (down 4.00%, up n/a)" in lines
    # 30 h = 1 d 6 h
    assert "Funding cost per day: 12.50, runway 1 d 6 h" in lines
    assert "Drains the pool most: BTC" in lines
    # BTC: |100 − 96| / 100 = 4 %
    assert "• BTC long 1 @ mark 100: liq 96 (4.00% away), funding/day 0.00" in lines
    assert lines[-1] == "at 2026-05-01T12:00:00Z"
    assert r.title == "[CRITICAL] hyperliquid:0xabc — margin ratio 0.9500 (95.0%)"


def test_the_label_names_the_account_and_a_long_address_is_shortened() -> None:
    line = transition_line(long_tr(), LABELS)
    assert line.startswith("FIRING CRITICAL: Main desk, cross: margin ratio 0.9500 (95.0%)")
    line = transition_line(long_tr())
    assert line.startswith("FIRING CRITICAL: hyperliquid:0x1111…1111, cross: margin ratio")
    assert who("dydx:dydx1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq/0") == "dydx:dydx1q…qqqq/0"
    assert who("binanceusdm:main") == "binanceusdm:main"  # a name, not an address: whole
    assert who("feed:hyperliquid") == "feed:hyperliquid"
    pos = long_tr(rule="liquidation_distance", subject=f"{LONG}#BTC", value=0.02, threshold=0.05)

    assert transition_line(pos, LABELS).startswith(
        "FIRING CRITICAL: Main desk, cross BTC: liquidation distance 2.00% ≤ 5.00%, the critical "
        "level"
    )


def test_a_repeat_below_the_fire_level_says_the_clear_level_holds_it() -> None:
    # critical fires at 0.90 and clears at 0.85 (defaults): 0.87 is still firing
    t = long_tr(TransitionKind.REPEAT, value=0.87, peak=0.97, at=T0 + 1200)
    assert transition_line(t, LABELS, AlertRules.default()) == (
        "STILL FIRING CRITICAL: Main desk, cross: margin ratio 0.8700 (87.0%), back below the "
        "critical level 0.9000 (90.0%) but not yet below its clear level 0.8500 (85.0%) "
        "(active 20 min; worst 0.9700 (97.0%))"
    )
    # without the rules it still never claims 0.87 ≥ 0.90
    assert "≥" not in transition_line(t)
    assert "but not yet below its clear level (active 20 min" in transition_line(t)


def test_a_repeat_above_the_fire_level_says_so() -> None:
    t = tr(TransitionKind.REPEAT, value=0.93, peak=0.97, at=T0 + 600)
    assert transition_line(t) == (
        "STILL FIRING CRITICAL: hyperliquid:0xabc, cross: margin ratio 0.9300 (93.0%) ≥ 0.9000 "
        "(90.0%), the critical level (active 10 min; worst 0.9700 (97.0%))"
    )


def test_an_escalation_says_what_it_was() -> None:
    t = tr(TransitionKind.ESCALATED, previous=Severity.WARNING, value=0.93, peak=0.93, at=T0 + 300)
    assert transition_line(t).endswith("the critical level (was warning; active 5 min)")


def test_a_ratio_of_exactly_one_and_a_zero_distance_are_liquidatable() -> None:
    assert transition_line(tr(value=1.0)) == (
        "FIRING CRITICAL: hyperliquid:0xabc, cross: margin ratio 1.0000 (100.0%): LIQUIDATABLE "
        "(critical level 0.9000 (90.0%)) (since 2026-05-01T12:00:00Z)"
    )
    assert "margin ratio ∞ (equity ≤ 0): LIQUIDATABLE" in transition_line(tr(value=float("inf")))
    d = tr(rule="liquidation_distance", subject=f"{KEY}#BTC", value=0.0, threshold=0.05)
    assert "cross BTC: liquidation distance 0.00%: LIQUIDATABLE (critical level 5.00%)" in (
        transition_line(d)
    )
    assert group_title([tr(value=1.0)], "hyperliquid:0xabc") == (
        "[CRITICAL] hyperliquid:0xabc — margin ratio 1.0000 (100.0%) LIQUIDATABLE"
    )


def test_a_scope_at_a_ratio_of_one_is_past_liquidation_in_its_figures() -> None:
    risk = scope(1.0, equity=1000.0, positions=(position("BTC", mark=100.0, liq=100.0),))
    lines = scope_lines(risk)
    assert lines[0].endswith("margin ratio 1.0000 (100.0%): LIQUIDATABLE (maintenance ≥ equity)")
    assert "Shock to liquidation: none left (past liquidation)" in lines
    assert "• BTC long 1 @ mark 100: liq 100 (past liquidation), funding/day 0.00" in lines


def test_an_empty_cross_pool_is_not_liquidatable() -> None:
    risk = scope(None, equity=100.0, positions=())
    lines = scope_lines(risk)
    assert lines[0] == (
        "Scope hyperliquid:0xabc/cross: equity 100.00, maintenance 0.00, margin ratio n/a "
        "(no positions): no positions"
    )
    assert not any("Shock" in line for line in lines)


def test_runway_in_days_and_tiny_prices_and_huge_sizes_with_significant_digits() -> None:
    pepe = position("PEPE", mark=0.000013, liq=0.0000104347, size=40_000_000.0)
    risk = scope(0.5, positions=(pepe,), runway=224_534.6)
    lines = scope_lines(risk)
    # 224 534.6 h = 9 355 d 14.6 h, the minutes cut
    assert "Funding cost per day: 0.00, runway 9,355 d 14 h" in lines
    # (0.000013 − 0.0000104347) / 0.000013 = 19.73 %; entry and liquidation stay distinct
    assert lines[-1] == (
        "• PEPE long 40,000,000 @ mark 0.000013: liq 0.0000104347 (19.73% away), funding/day 0.00"
    )
    runway = tr(rule="funding_runway", value=224_534.6, threshold=24.0)
    assert "funding runway 9,355 d 14 h" in transition_line(runway)


def test_resolved_says_how_long_and_worst() -> None:
    t = tr(TransitionKind.RESOLVED, at=T0 + 3725, value=0.5, peak=0.97, severity=Severity.WARNING)
    g = AlertGroup("hyperliquid:0xabc", (t,))
    r = render_group(g, {})
    # 3725 s = 1 h 2 min 5 s
    assert r.body.splitlines()[0] == (
        "RESOLVED WARNING: hyperliquid:0xabc, cross: margin ratio now 0.5000 (50.0%); lasted "
        "1 h 2 min, worst 0.9700 (97.0%)"
    )
    assert r.title == "[RESOLVED] hyperliquid:0xabc — resolved: margin ratio"
    assert notify_type(g.severity, True) == "success"


def test_group_puts_worst_first_and_counts_the_alerts_in_the_title() -> None:
    a = tr(severity=Severity.WARNING, key="a", id="a", rule="shock", value=0.08, threshold=0.1)
    b = tr(key="b", id="b")
    c = tr(TransitionKind.RESOLVED, key="c", id="c", rule="drawdown")
    muted = tr(key="d", id="d", muted=True)
    (g,) = group_transitions([a, c, b, muted])
    assert [t.key for t in g.transitions] == ["b", "a", "c"]
    assert group_title(g) == (
        "[CRITICAL] hyperliquid:0xabc — 3 alerts: margin ratio 0.9500 (95.0%), shock to "
        "liquidation 8.00%, resolved: drawdown from peak equity"
    )
    assert g.severity is Severity.CRITICAL


def test_batch_title_counts_alerts_and_names_every_account_with_its_worst_severity() -> None:
    """The issue's example: 4 messages whose subject named only the first account."""
    first = group_title(
        AlertGroup(
            "hyperliquid:0x2222",
            (tr(rule="liquidation_distance", subject="x#BTC", value=0.02, threshold=0.05),),
        )
    )
    three = group_title(
        AlertGroup(f"hyperliquid:{ADDR}", (long_tr(id="1"), long_tr(id="2"), long_tr(id="3"))),
        labels=LABELS,
    )
    warn = group_title(AlertGroup("okx:swing", (tr(severity=Severity.WARNING, value=0.81),)))
    gone = group_title(AlertGroup("okx:swing", (tr(TransitionKind.RESOLVED),)))
    assert three.startswith("[CRITICAL] Main desk — 3 alerts: ")
    # 1 + 3 + 1 + 1 = 6 alerts; okx:swing's worst is the warning
    assert batch_title([first, three, warn, gone]) == (
        "6 alerts: [CRITICAL] hyperliquid:0x2222 (1), [CRITICAL] Main desk (3), "
        "[WARNING] okx:swing (2)"
    )
    assert batch_title([first]) == first


def test_held_alerts_are_listed_in_a_message_of_their_own() -> None:
    feed = tr(
        rule="feed_stale",
        severity=Severity.WARNING,
        group="feed:hyperliquid",
        subject="feed:hyperliquid/allMids",
        value=None,
        threshold=None,
        at=T0 + 60,
    )
    rec = AlertRecord(
        key=f"margin_ratio|{LONG}",
        rule="margin_ratio",
        subject=str(LONG),
        group=f"hyperliquid:{ADDR}",
        status=AlertStatus.FIRING,
        severity=Severity.CRITICAL,
        since=T0,
        venue="hyperliquid",
        value=0.95,
    )
    r = render_held(feed, [rec], labels=LABELS)
    assert r.title == "[HELD] feed:hyperliquid — 1 alert held while hyperliquid/allMids is stale"
    assert r.body.splitlines()[1] == (
        "• CRITICAL Main desk, cross: margin ratio 0.9500 (95.0%) (firing since "
        "2026-05-01T12:00:00Z)"
    )


def test_control_characters_of_venue_chosen_strings_are_neutralised() -> None:
    nasty = "desk\x1b[31m\u202eevil\u200b\x85x"
    assert one_line(nasty) == "desk [31m evil  x"
    label = {"hyperliquid:0xabc": "Main\ndesk\r\u2028"}
    g = AlertGroup(
        "hyperliquid:0xabc",
        (tr(subject=f"{KEY}#BT\x07C", rule="liquidation_distance", value=0.02, threshold=0.05),),
    )
    r = render_group(g, {}, labels=label)
    assert "\x07" not in r.body and "\n" not in r.title and "\r" not in r.body
    assert r.body.splitlines()[0].startswith("FIRING CRITICAL: Main desk  , cross BT C:")


def test_telegram_limit_cuts_at_a_line_and_says_so() -> None:
    many = tuple(
        tr(
            key=f"k{i}",
            id=f"k{i}",
            subject=f"{KEY}#SYM{i}",
            rule="liquidation_distance",
            value=0.01,
            threshold=0.05,
        )
        for i in range(200)
    )
    r = render_group(AlertGroup("hyperliquid:0xabc", many), {}, limit=TELEGRAM_LIMIT)
    assert len(r.body) <= TELEGRAM_LIMIT
    assert r.body.splitlines()[-1].endswith("more lines cut)")
    # 200 alerts, 3 named in the subject
    assert group_title(AlertGroup("hyperliquid:0xabc", many)).endswith(", +197 more")


def test_fit_and_combine() -> None:
    assert fit("short", 100) == "short"
    text, used = combine(["a" * 50, "b" * 50, "c" * 50], 110)
    assert used == 2 and text == "a" * 50 + "\n\n" + "b" * 50  # 50 + 2 + 50 = 102 ≤ 110
    text, used = combine(["x" * 500], 300)
    assert used == 1 and len(text) <= 300


def test_markdown_escapes_dynamic_text() -> None:
    assert md_escape("BTC_USD *x* [y] `z`") == "BTC\\_USD \\*x\\* \\[y] \\`z\\`"
    key = ScopeKey("okx", "main_acct", "cross")
    t = tr(group="okx:main_acct", subject=str(key), risk=scope(0.95, key=key))
    body = render_group(AlertGroup("okx:main_acct", (t,)), {}, fmt="markdown").body
    assert body.splitlines()[0].startswith("**FIRING CRITICAL: okx:main\\_acct, cross: margin")


def test_an_unknown_value_claims_no_side_of_any_level() -> None:
    line = transition_line(
        tr(TransitionKind.REPEAT, value=float("nan")), None, AlertRules.default()
    )
    assert line == ("STILL FIRING CRITICAL: hyperliquid:0xabc, cross: margin ratio n/a")


def test_a_scope_whose_figures_are_unknown_reads_unknown_never_not_liquidatable() -> None:
    """The engine's fail-closed figures (NaN) of a scope whose computation raised: the
    state line says unknown; a NaN ratio compares false with 1 and read "not liquidatable"."""
    from dataclasses import replace

    nan = float("nan")
    unknown = replace(scope(0.5), equity=nan, maintenance_margin=nan, margin_ratio=nan)
    assert unknown.figures_unknown and not scope(0.5).figures_unknown
    (state, *_) = scope_lines(unknown)
    assert state.endswith("margin ratio n/a: UNKNOWN (its figures could not be computed)")
    # no positions: the balance is unknown too, not a negative one
    (empty, *_) = scope_lines(replace(unknown, positions=()))
    assert empty.endswith(": no positions, equity unknown")
    # a venue that says the scope is liquidatable is believed over unknown figures
    (liq, *_) = scope_lines(replace(unknown, liquidatable=True))
    assert liq.endswith("LIQUIDATABLE (maintenance ≥ equity)")


def test_a_scope_whose_equity_overflowed_reads_unknown_as_its_alert_says() -> None:
    """+inf equity (an overflow) gives a margin ratio of 0, which read "not liquidatable" in
    the very message of the ``margin_unknown`` alert the engine raises for it."""
    from dataclasses import replace

    inf = float("inf")
    overflowed = replace(scope(0.5), equity=inf, margin_ratio=0.0)
    assert overflowed.figures_unknown
    (state, *_) = scope_lines(overflowed)
    assert state.endswith("UNKNOWN (its figures could not be computed)")
