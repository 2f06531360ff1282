"""Rendering of alert groups into messages (pure): plain text, Markdown or HTML, an email
subject, and the Telegram 4,096-character limit.

Formats (``fmt``): ``text``; ``markdown`` (CommonMark: the alert lines in ``**bold**``, the
specials of dynamic text escaped by :func:`md_escape`; apprise converts it to each service's
dialect); ``html`` (the alert lines in ``<b>…</b>``, every ``<``, ``>``, ``&`` and ``"`` of
dynamic text escaped by :func:`html_escape`, the same inside and outside the tags: what
Telegram's HTML parse mode requires; ``*``, ``_``, ``[`` and backticks are plain there).
:func:`to_plain` turns a rendered body back into plain text (the fallback when a service
refuses the markup).

A message says what crossed, its value and threshold, and the scope: equity, maintenance,
margin ratio, each position's mark, liquidation price and distance, funding cost per day,
the shock to liquidation (the smallest market-wide move that liquidates the scope), the
collateral at risk (the whole pool in cross, the allocation in isolated) and, in cross, the
position that drains the pool most. Times are UTC ISO 8601 (``2026-05-01T12:00:00Z``).
Money is in the scope's quote currency; fractions are shown as percentages.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor.alerts.engine import Transition, TransitionKind
from monitor.alerts.grouping import AlertGroup
from monitor.alerts.rules import DIRECTIONS, Direction, RuleKind, Severity
from monitor.margin.risk import ScopeRisk

TELEGRAM_LIMIT = 4096
TEXT = "text"
MARKDOWN = "markdown"
HTML = "html"
SEPARATOR = "\n\n"

RULE_TITLES: dict[str, str] = {
    RuleKind.MARGIN_RATIO: "margin ratio",
    RuleKind.LIQUIDATION_DISTANCE: "liquidation distance",
    RuleKind.EQUITY: "equity",
    RuleKind.DRAWDOWN: "drawdown from peak equity",
    RuleKind.FUNDING_COST: "funding cost per day",
    RuleKind.FUNDING_COST_PCT: "funding cost per day (of equity)",
    RuleKind.FUNDING_RATE: "funding rate (annualized)",
    RuleKind.FUNDING_RUNWAY: "funding runway",
    RuleKind.SHOCK: "shock to liquidation",
    RuleKind.OUTBOX_BACKLOG: "undelivered notifications",
    RuleKind.LIQUIDATED: "position liquidated",
    RuleKind.FEED_STALE: "feed stale",
    RuleKind.DELIVERY_FAILING: "notification delivery failing",
}
_PERCENT = {
    RuleKind.LIQUIDATION_DISTANCE,
    RuleKind.DRAWDOWN,
    RuleKind.FUNDING_COST_PCT,
    RuleKind.FUNDING_RATE,
    RuleKind.SHOCK,
}
_VERB = {
    TransitionKind.FIRED: "FIRING",
    TransitionKind.ESCALATED: "ESCALATED",
    TransitionKind.DEESCALATED: "EASED",
    TransitionKind.REPEAT: "STILL FIRING",
    TransitionKind.RESOLVED: "RESOLVED",
    TransitionKind.EVENT: "EVENT",
}


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str
    body: str


def iso(ts: float) -> str:
    """UTC ISO 8601 with a ``Z``, to the second (the raw number when out of the calendar)."""
    try:
        return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):
        return f"{ts:.0f} (epoch s)"


def duration(seconds: float) -> str:
    s = int(max(seconds, 0.0))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    if d:
        return f"{d}d{h}h"
    if h:
        return f"{h}h{m:02d}m"
    if m:
        return f"{m}m{s:02d}s"
    return f"{s}s"


def money(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:,.2f}"


def pct(x: float | None) -> str:
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "∞"
    return f"{x * 100:.2f}%"


def price(x: float | None) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    if abs(x) >= 1000:
        return f"{x:,.2f}"
    return f"{x:.6g}"


def rule_value(rule: str, x: float | None) -> str:
    """A value in the rule's units (percent for fractions, hours for the runway)."""
    if x is None:
        return "n/a"
    if math.isinf(x):
        return "∞ (equity ≤ 0)" if rule == RuleKind.MARGIN_RATIO else "∞"
    if rule in _PERCENT:
        return pct(x)
    if rule == RuleKind.MARGIN_RATIO:
        return f"{x:.4f} ({x * 100:.1f}%)"
    if rule == RuleKind.FUNDING_RUNWAY:
        return f"{x:.1f} h"
    if rule == RuleKind.OUTBOX_BACKLOG:
        return f"{x:.0f}"
    return money(x)


def md_escape(text: str) -> str:
    """Escape the Markdown specials ``\\ _ * ` [`` with a backslash. Bodies are CommonMark;
    apprise converts them to each service's dialect (Telegram channels get HTML instead:
    see :mod:`monitor.notify.channels`)."""
    out = []
    for ch in text:
        if ch in "\\_*`[":
            out.append("\\")
        out.append(ch)
    return "".join(out)


def html_escape(text: str) -> str:
    """Escape ``& < > "`` as HTML entities (Telegram's HTML mode takes ``&amp; &lt; &gt;
    &quot;``); nothing else needs escaping, inside or outside a tag."""
    return html.escape(text, quote=True).replace("&#x27;", "'")


_MD_BOLD = re.compile(r"^\*\*(.*)\*\*$")
_MD_ESCAPED = re.compile(r"\\([\\_*`\[])")
_TAG = re.compile(r"<[^<>]*>")


def to_plain(body: str, fmt: str) -> str:
    """A body rendered in ``fmt`` as plain text: the bold markers and escapes of our own
    ``markdown`` dropped, the tags of ``html`` removed and its entities decoded."""
    if fmt == MARKDOWN:
        lines = []
        for line in body.split("\n"):
            m = _MD_BOLD.match(line)
            lines.append(_MD_ESCAPED.sub(r"\1", m.group(1) if m else line))
        return "\n".join(lines)
    if fmt == HTML:
        return html.unescape(_TAG.sub("", body))
    return body


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]")


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters (a venue- or user-chosen name
    may hold them) replaced by spaces: one rendered line never becomes two."""
    return _CONTROL.sub(" ", text)


def _styled(line: str, fmt: str, *, bold: bool = False) -> str:
    line = one_line(line)
    if fmt == MARKDOWN:
        return f"**{md_escape(line)}**" if bold else md_escape(line)
    if fmt == HTML:
        return f"<b>{html_escape(line)}</b>" if bold else html_escape(line)
    return line


def _label(t: Transition) -> str:
    return RULE_TITLES.get(t.rule, t.rule)


def transition_line(t: Transition) -> str:
    """One line: what happened, value against threshold, subject, since when."""
    verb = _VERB[t.kind]
    sev = t.severity.value.upper()
    head = f"{verb} {sev}: {_label(t)} on {t.subject}"
    if t.kind is TransitionKind.EVENT or t.rule in (
        RuleKind.FEED_STALE,
        RuleKind.DELIVERY_FAILING,
    ):
        return f"{head}" + (f" ({t.detail})" if t.detail else "") + f" at {iso(t.at)}"
    direction = DIRECTIONS.get(RuleKind(t.rule)) if t.rule in DIRECTIONS else None
    op = "≥" if direction is Direction.ABOVE else "≤"
    value = rule_value(t.rule, t.value)
    if t.kind is TransitionKind.RESOLVED:
        peak = f", worst {rule_value(t.rule, t.peak)}" if t.peak is not None else ""
        why = f" ({t.detail})" if t.detail else ""
        return f"{head}: now {value}{why}; lasted {duration(t.at - t.since)}{peak}"
    threshold = rule_value(t.rule, t.threshold)
    change = f" (was {t.previous.value})" if t.previous is not None else ""
    return f"{head}: {value} {op} {threshold}{change}, since {iso(t.since)}"


def scope_lines(risk: ScopeRisk) -> list[str]:
    """The figures of one scope, one per line (positions indented)."""
    cross = risk.scope == "cross"
    mr = risk.margin_ratio if risk.margin_ratio is not None else math.inf  # equity ≤ 0
    lines = [
        f"Scope {risk.key}: equity {money(risk.equity)}, maintenance "
        f"{money(risk.maintenance_margin)}, margin ratio "
        f"{rule_value(RuleKind.MARGIN_RATIO, mr)}",
        f"Collateral at risk: {money(risk.collateral_at_risk)} "
        f"({'the whole cross pool' if cross else 'this isolated allocation'})",
        f"Shock to liquidation: {pct(risk.shock_to_liquidation)} (down {pct(risk.shock_down)},"
        f" up {pct(risk.shock_up)})",
        f"Funding cost per day: {money(risk.funding_cost_per_day)}"
        + (
            f", runway {risk.funding_runway_hours:.1f} h"
            if risk.funding_runway_hours is not None
            else ""
        ),
    ]
    if cross and risk.drain_symbol is not None and len(risk.positions) > 1:
        lines.append(f"Drains the pool most: {risk.drain_symbol}")
    for p in risk.positions:
        side = "long" if p.size > 0 else "short"
        lines.append(
            f"  {p.symbol} {side} {abs(p.size):g} @ mark {price(p.mark_price)}: liq "
            f"{price(p.liquidation_price)} ({pct(p.liquidation_distance)} away), funding/day "
            f"{money(p.funding_cost_per_day)}"
        )
    return lines


def group_title(group: AlertGroup | Sequence[Transition], name: str | None = None) -> str:
    """The email subject: worst severity, group, first alert, and how many more (one line:
    control characters of names become spaces)."""
    ts = group.transitions if isinstance(group, AlertGroup) else tuple(group)
    gname = name if name is not None else (group.group if isinstance(group, AlertGroup) else "")
    gname = one_line(gname)
    if not ts:
        return f"[monitor] {gname}"
    first = ts[0]
    active = [t for t in ts if t.kind is not TransitionKind.RESOLVED]
    worst = max((t.severity for t in active), key=lambda s: s.rank, default=None)
    tag = worst.value.upper() if worst is not None else "RESOLVED"
    what = _label(first)
    if first.kind is TransitionKind.RESOLVED:
        what = f"resolved: {what}"
    elif first.value is not None and first.rule in DIRECTIONS:
        what = f"{what} {rule_value(first.rule, first.value)}"
    more = f" (+{len(ts) - 1} more)" if len(ts) > 1 else ""
    return f"[{tag}] {gname}: {what}{more}"


def render_group(
    group: AlertGroup,
    risks: Mapping[str, ScopeRisk],
    fmt: str = TEXT,
    limit: int | None = None,
) -> Rendered:
    """One message for one group. ``risks``: latest figures per scope subject
    (``venue:account/scope``), used when a transition carries none."""
    title = group_title(group)
    lines: list[str] = []
    for t in group.transitions:
        lines.append(_styled(transition_line(t), fmt, bold=True))
    seen: set[str] = set()
    for t in group.transitions:
        scope_subject = t.subject.split("#", 1)[0]
        risk = t.risk or risks.get(scope_subject)
        if risk is None or scope_subject in seen or t.kind is TransitionKind.RESOLVED:
            continue
        seen.add(scope_subject)
        lines.append("")
        for line in scope_lines(risk):
            lines.append(_styled(line, fmt))
    lines.append("")
    lines.append(f"at {iso(group.at)}")
    body = "\n".join(lines)
    if limit is not None:
        body = fit(body, limit)
    return Rendered(title, body)


def fit(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters at a line boundary, saying how much was cut."""
    if len(text) <= limit:
        return text
    lines = text.split("\n")
    kept: list[str] = []
    size = 0
    for i, line in enumerate(lines):
        note = f"… ({len(lines) - i} more lines cut)"
        if size + len(line) + 1 + len(note) > limit:
            kept.append(note)
            return "\n".join(kept)[:limit]
        kept.append(line)
        size += len(line) + 1
    return "\n".join(kept)[:limit]  # pragma: no cover


def combine(bodies: Sequence[str], limit: int | None) -> tuple[str, int]:
    """Join as many leading ``bodies`` as fit within ``limit`` (at least one, cut if need
    be); returns the text and how many were used."""
    if not bodies:
        return "", 0
    text = bodies[0]
    used = 1
    for b in bodies[1:]:
        candidate = text + SEPARATOR + b
        if limit is not None and len(candidate) > limit:
            break
        text = candidate
        used += 1
    if limit is not None:
        text = fit(text, limit)
    return text, used


def notify_type(severity: Severity, resolved_only: bool) -> str:
    """apprise's notify type for a message: failure (critical), warning, info, success."""
    if resolved_only:
        return "success"
    return {"critical": "failure", "warning": "warning"}.get(severity.value, "info")
