"""Pure rendering: figures, UTC times, subject, Markdown escaping, the Telegram limit."""

from __future__ import annotations

from monitor.alerts.engine import Transition, TransitionKind
from monitor.alerts.grouping import AlertGroup, group_transitions
from monitor.alerts.rules import Severity
from monitor.model.positions import ScopeKey
from monitor.notify.render import (
    TELEGRAM_LIMIT,
    combine,
    fit,
    group_title,
    iso,
    md_escape,
    notify_type,
    render_group,
)
from tests.alerts.helpers import position, scope

T0 = 1_777_636_800.0  # 2026-05-01T12:00:00Z
KEY = ScopeKey("hyperliquid", "0xabc", "cross")


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
        "FIRING CRITICAL: margin ratio on hyperliquid:0xabc/cross: 0.9500 (95.0%) ≥ 0.9000 "
        "(90.0%), since 2026-05-01T12:00:00Z"
    )
    # equity 1000, maintenance 0.95 · 1000 = 950
    assert (
        "Scope hyperliquid:0xabc/cross: equity 1,000.00, maintenance 950.00, margin ratio "
        "0.9500 (95.0%)" in lines
    )
    assert "Collateral at risk: 1,000.00 (the whole cross pool)" in lines
    assert "Shock to liquidation: 4.00% (down 4.00%, up n/a)" in lines
    assert "Funding cost per day: 12.50, runway 30.0 h" in lines
    assert "Drains the pool most: BTC" in lines
    # BTC: |100 − 96| / 100 = 4 %
    assert "  BTC long 1 @ mark 100: liq 96 (4.00% away), funding/day 0.00" in lines
    assert lines[-1] == "at 2026-05-01T12:00:00Z"
    assert r.title == "[CRITICAL] hyperliquid:0xabc: margin ratio 0.9500 (95.0%)"


def test_isolated_scope_says_allocation() -> None:
    key = ScopeKey("binance_usdm", "main", "isolated:ETHUSDT")
    risk = scope(0.5, key=key, equity=250.0)
    g = AlertGroup("binance_usdm:main", (tr(risk=risk, subject=str(key)),))
    assert "Collateral at risk: 250.00 (this isolated allocation)" in render_group(g, {}).body


def test_resolved_says_how_long_and_worst() -> None:
    t = tr(TransitionKind.RESOLVED, at=T0 + 3725, value=0.5, peak=0.97, severity=Severity.WARNING)
    g = AlertGroup("hyperliquid:0xabc", (t,))
    r = render_group(g, {})
    # 3725 s = 1 h 2 min 5 s
    assert r.body.splitlines()[0] == (
        "RESOLVED WARNING: margin ratio on hyperliquid:0xabc/cross: now 0.5000 (50.0%); lasted "
        "1h02m, worst 0.9700 (97.0%)"
    )
    assert r.title.startswith("[RESOLVED] hyperliquid:0xabc: resolved: margin ratio")
    assert notify_type(g.severity, True) == "success"


def test_group_puts_worst_first_and_counts_more() -> None:
    a = tr(severity=Severity.WARNING, key="a", id="a", rule="shock", value=0.08, threshold=0.1)
    b = tr(key="b", id="b")
    c = tr(TransitionKind.RESOLVED, key="c", id="c", rule="drawdown")
    muted = tr(key="d", id="d", muted=True)
    (g,) = group_transitions([a, c, b, muted])
    assert [t.key for t in g.transitions] == ["b", "a", "c"]
    assert group_title(g).endswith("(+2 more)")
    assert g.severity is Severity.CRITICAL


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


def test_fit_and_combine() -> None:
    assert fit("short", 100) == "short"
    text, used = combine(["a" * 50, "b" * 50, "c" * 50], 110)
    assert used == 2 and text == "a" * 50 + "\n\n" + "b" * 50  # 50 + 2 + 50 = 102 ≤ 110
    text, used = combine(["x" * 500], 300)
    assert used == 1 and len(text) <= 300


def test_markdown_escapes_dynamic_text() -> None:
    assert md_escape("BTC_USD *x* [y] `z`") == "BTC\\_USD \\*x\\* \\[y] \\`z\\`"
    key = ScopeKey("okx", "main_acct", "cross")
    g = AlertGroup("okx:main_acct", (tr(subject=str(key), risk=scope(0.95, key=key)),))
    body = render_group(g, {}, fmt="markdown").body
    assert body.splitlines()[0].startswith("**FIRING CRITICAL: margin ratio on okx:main\\_acct")
