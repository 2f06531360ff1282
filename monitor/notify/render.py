"""Rendering of alert groups into messages (pure): plain text, Markdown or HTML, an email
subject, and the Telegram 4,096-character limit.

Formats (``fmt``): ``text``; ``markdown`` (CommonMark: the alert lines in ``**bold**``, the
specials of dynamic text escaped by :func:`md_escape`; apprise converts it to each service's
dialect); ``html`` (the alert lines in ``<b>…</b>``, every ``<``, ``>``, ``&`` and ``"`` of
dynamic text escaped by :func:`html_escape`, the same inside and outside the tags: what
Telegram's HTML parse mode requires; ``*``, ``_``, ``[`` and backticks are plain there).
:func:`to_plain` turns a rendered body back into plain text (the fallback when a service
refuses the markup).

A message is shaped for a glance:

1. one bold line per alert (:func:`transition_line`): **who** (the account's ``label``, else
   its short id), **what** (the rule, on which scope or position), **how bad** (the value
   against the level it crossed, said truthfully: a repeat that still fires only because the
   *clear* level was not crossed back says so; a margin ratio ≥ 1 or a distance of 0 says
   LIQUIDATABLE) and **how it moved** (the previous severity, how long it has been active,
   its worst value);
2. the **remedy** (:func:`remedy_lines`): the deposit that brings the scope back to the clear
   level of the rule that fired, and the reduction of the draining position that does the
   same, each with the margin ratio and nearest liquidation distance it gives
   (:mod:`monitor.margin.remedy`, the venue's own rules, tiers re-checked);
3. the numbers (:func:`scope_lines`): equity, maintenance, margin ratio, collateral at risk,
   shock to liquidation, funding cost and runway (days and hours), each position's mark,
   liquidation price and distance.

Numbers go through :mod:`monitor.fmt` (significant digits at any magnitude, never ``4e+07``).
Times are UTC ISO 8601 (``2026-05-01T12:00:00Z``). Money is in the scope's quote currency;
fractions are shown as percentages. Every venue- or user-chosen string (labels, account ids,
symbols, details) has its control characters neutralised (:func:`one_line`).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from monitor import fmt as numfmt
from monitor.alerts.engine import AlertRecord, Transition, TransitionKind
from monitor.alerts.grouping import AlertGroup
from monitor.alerts.rules import DIRECTIONS, AlertRules, Direction, RuleKind, Severity
from monitor.margin.remedy import Figures, Remedy
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
    RuleKind.MARGIN_UNKNOWN: "margin cannot be computed",
    RuleKind.ADL: "auto-deleveraged",
    RuleKind.BAD_EVENT: "event refused",
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
#: the alert engine's reasons for ending an alert whose value never recovered (its position or
#: scope is gone, or its account left the configuration): such an end is not a "resolve"
ENDED_WITHOUT_RECOVERY: frozenset[str] = frozenset(
    {"position closed", "scope closed", "no longer monitored"}
)


def _verb(t: Transition) -> str:
    """``RESOLVED`` only for a value that came back; ``ENDED`` when the alert's subject went
    away while it fired (a closed or liquidated position says nothing about recovery)."""
    if t.kind is TransitionKind.RESOLVED and t.detail in ENDED_WITHOUT_RECOVERY:
        return "ENDED"
    return _VERB[t.kind]


#: rules whose alert gets a remedy (the deposit / the reduction back to the clear level)
REMEDY_RULES: frozenset[str] = frozenset(
    {RuleKind.MARGIN_RATIO.value, RuleKind.LIQUIDATION_DISTANCE.value}
)
_TITLE_SEP = " — "


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str
    body: str


def iso(ts: float) -> str:
    """UTC ISO 8601 with a ``Z``, to the second (the raw number when out of the calendar)."""
    text = _ISO.get(ts)
    if text is None:
        try:
            text = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        except (OverflowError, ValueError, OSError):
            text = f"{ts:.0f} (epoch s)"
        if len(_ISO) >= _ISO_MAX:
            _ISO.clear()
        _ISO[ts] = text
    return text


#: :func:`iso` of recent times (a burst's alerts share a few: their step's, their since);
#: emptied when it reaches :data:`_ISO_MAX` entries
_ISO: dict[float, str] = {}
_ISO_MAX = 4096


def duration(seconds: float) -> str:
    """``seconds`` as :func:`monitor.fmt.duration` shows it (``1 h 2 min``, ``3 d 4 h``)."""
    return numfmt.duration(seconds)


def money(x: float | None) -> str:
    """A quote-currency amount (:func:`monitor.fmt.money`); ``n/a`` when unknown."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return numfmt.money(x)


def pct(x: float | None) -> str:
    """A fraction as a percentage (:func:`monitor.fmt.pct`); ``∞`` and ``n/a`` as such."""
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞"
    return numfmt.pct(x)


def price(x: float | None) -> str:
    """A price with 6 significant digits at any magnitude (``0.000013``, ``97,123.5``)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    return numfmt.price(x)


def rule_value(rule: str, x: float | None) -> str:
    """A value in the rule's units (percent for fractions, days and hours for the runway)."""
    if x is None or math.isnan(x):
        return "n/a"
    if math.isinf(x):
        return "∞ (equity ≤ 0)" if rule == RuleKind.MARGIN_RATIO else "∞"
    # x is finite from here: pct() and money() would only check it again
    if rule in _PERCENT:
        return numfmt.pct(x)
    if rule == RuleKind.MARGIN_RATIO:
        return f"{x:.4f} ({x * 100:.1f}%)"
    if rule == RuleKind.FUNDING_RUNWAY:
        return numfmt.hours(x)
    if rule == RuleKind.OUTBOX_BACKLOG:
        return f"{x:.0f}"
    return numfmt.money(x)


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


# C0 and C1 controls, DEL, the line and paragraph separators, and the invisible format
# characters that reorder or hide text (bidi embeddings/overrides/isolates, zero-width ones)
_CONTROL = re.compile(
    "[\x00-\x1f\x7f-\x9f\u2028\u2029\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)


def one_line(text: str) -> str:
    """``text`` with line breaks and other control characters (a venue- or user-chosen name
    may hold them: C0/C1 controls, DEL, line separators, bidi overrides and isolates,
    zero-width characters) replaced by spaces: one rendered line never becomes two, and a
    name never reorders or hides the text around it."""
    if text.isprintable():  # none of them is printable: the common case skips the regex
        return text
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


# -- who ------------------------------------------------------------------------------------


_LONG_ID = re.compile(r"^(0x[0-9a-fA-F]{16,}|dydx1[0-9a-z]{20,})([/@].*)?$")


def short_account(account: str) -> str:
    """An account id as people can read it: a venue address (``0x…`` hex, ``dydx1…``) as
    its first 6 and last 4 characters (``0x1111…1111``, a dYdX ``/N`` and a Hyperliquid
    HIP-3 dex's ``@dex`` kept); anything else
    (an API-key account's name) whole."""
    m = _LONG_ID.match(account)
    if m is None:
        return account
    return numfmt.short_id(m.group(1)) + (m.group(2) or "")


def scope_name(scope_key: str) -> str:
    """A scope key ``venue:account/scope`` with an address account shortened
    (``hyperliquid:0x1111…1111/cross``)."""
    venue, sep, rest = scope_key.partition(":")
    account, slash, scope = rest.rpartition("/")
    if not sep or not slash:
        return scope_key
    return f"{venue}:{short_account(account)}/{scope}"


def labelled_scope(scope_key: str, labels: Mapping[str, str] | None = None) -> str:
    """A scope as people know it, for the "Scope …" and "What to do on …" lines: the
    account's label then the short scope name (``Main desk (hyperliquid:0x1111…1111/cross)``),
    or the short scope name alone when the account has no label."""
    name = scope_name(scope_key)
    venue, _, rest = scope_key.partition(":")
    account, slash, _scope = rest.rpartition("/")
    if not slash:
        return name
    label = _label_of(f"{venue}:{account}", labels or {})
    return f"{one_line(label)} ({name})" if label else name


def _label_of(group: str, labels: Mapping[str, str]) -> str | None:
    label = labels.get(group)
    if label:
        return label
    if "@" in group:
        # a Hyperliquid HIP-3 dex account (ADDR@dex) is configured as its address
        address, _, dex = group.partition("@")
        parent = labels.get(address)
        return f"{parent} @{dex}" if parent else None
    if not group.startswith("dydx:"):
        return None
    # a dYdX child subaccount (ADDR/N, N ≥ 128) is configured with its parent (ADDR/N mod 128)
    address, slash, number = group.partition("/")
    if not slash or not number.isdigit() or int(number) < 128:
        return None
    parent = labels.get(f"{address}/{int(number) % 128}")
    return f"{parent} /{number}" if parent else None


def account_label(group: str, labels: Mapping[str, str]) -> str | None:
    """The configured label of the account ``group`` (``venue:account``), or None: its own,
    else a dYdX child subaccount's parent's with its number (``Main desk /128``), else a
    Hyperliquid HIP-3 dex account's address's with the dex (``Main desk @xyz``). Raw (not
    made one-line)."""
    return _label_of(group, labels)


def who(group: str, labels: Mapping[str, str] | None = None) -> str:
    """The name people know for an alert group: the account's ``label`` (``labels`` maps
    ``venue:account`` to it; a dYdX child subaccount ``/128`` gets its parent's label and its
    number: ``Main desk /128``), else ``venue:`` and the account id (an address shortened:
    ``hyperliquid:0x1111…1111``); ``feed:…`` and ``monitor`` groups as they are."""
    label = _label_of(group, labels or {})
    if label:
        return one_line(label)
    venue, sep, account = group.partition(":")
    if not sep or venue == "feed":
        return one_line(group)
    return one_line(f"{venue}:{short_account(account)}")


def where(subject: str, group: str) -> str:
    """What in the account an alert is about: the scope (``cross``, ``isolated:ETH``) and
    the position's symbol (``cross BTC``), when ``subject`` (``venue:account/scope#SYMBOL``) is in
    ``group``; "" for feed and monitor alerts."""
    base, sep, symbol = subject.partition("#")
    if base.startswith(group + "/"):
        scope = base[len(group) + 1 :]
    elif ":" in base and not base.startswith("feed:"):
        venue, _, rest = base.partition(":")
        account, slash, sc = rest.rpartition("/")
        scope = f"{venue}:{short_account(account)}/{sc}" if slash else base
    else:
        return ""
    return f"{scope} {symbol}" if sep else scope


def _past_liquidation(rule: str, value: float | None) -> bool:
    if value is None or math.isnan(value):
        return False
    if rule == RuleKind.MARGIN_RATIO:
        return value >= 1.0
    if rule in (RuleKind.LIQUIDATION_DISTANCE, RuleKind.SHOCK):
        return value <= 0.0
    return False


def _clear_of(t: Transition, rules: AlertRules | None) -> float | None:
    """The clear level of the level that fired ``t`` (per-account override included)."""
    if rules is None or t.rule not in DIRECTIONS:
        return None
    account = t.group if ":" in t.group and not t.group.startswith("feed:") else None
    rule = rules.rule(RuleKind(t.rule), account)
    level = rule.level(t.severity, t.symbol) if rule is not None else None
    return level.clear if level is not None else None


def _how_bad(t: Transition, rules: AlertRules | None) -> str:
    """The value against the level, said truthfully."""
    direction = _DIRECTION[t.rule]
    value = rule_value(t.rule, t.value)
    sev = t.severity.value
    if _past_liquidation(t.rule, t.value):
        tail = (
            f" ({sev} level {rule_value(t.rule, t.threshold)})" if t.threshold is not None else ""
        )
        return f"{value}: LIQUIDATABLE{tail}"
    if t.threshold is None or t.value is None or math.isnan(t.value):
        return value  # unknown: never "back below" anything
    threshold = rule_value(t.rule, t.threshold)
    crossed = t.value >= t.threshold if direction is Direction.ABOVE else t.value <= t.threshold
    if crossed:
        op = "≥" if direction is Direction.ABOVE else "≤"
        return f"{value} {op} {threshold}, the {sev} level"
    # still active only because the clear level was not crossed back (hysteresis)
    side = "below" if direction is Direction.ABOVE else "above"
    clear = _clear_of(t, rules)
    text = f"{value}, back {side} the {sev} level {threshold} but not yet {side} its clear level"
    if clear is None:
        return text
    return f"{text} {rule_value(t.rule, clear)}"


#: :data:`DIRECTIONS` by the rule's name
_DIRECTION: dict[str, Direction] = {k.value: d for k, d in DIRECTIONS.items()}


@dataclass(frozen=True, slots=True)
class Move:
    """Where an alert's value stood ``seconds`` ago (``value`` in the rule's units)."""

    value: float
    seconds: float


def _moved(t: Transition, move: Move | None = None) -> str:
    """How it moved: from what value how long ago, the previous severity, how long active,
    the worst value."""
    bits = []
    if move is not None and t.value is not None and math.isfinite(t.value):
        if move.value != t.value:
            way = "up" if t.value > move.value else "down"
            bits.append(f"{way} from {rule_value(t.rule, move.value)} {duration(move.seconds)} ago")
        else:
            bits.append(f"unchanged for {duration(move.seconds)}")
    if t.previous is not None:
        bits.append(f"was {t.previous.value}")
    if t.kind is not TransitionKind.FIRED and t.at > t.since:
        bits.append(f"active {duration(t.at - t.since)}")
    if (
        t.kind is not TransitionKind.FIRED
        and t.peak is not None
        and t.value is not None
        and t.peak != t.value
    ):
        bits.append(f"worst {rule_value(t.rule, t.peak)}")
    if t.kind is TransitionKind.FIRED:
        bits.append(f"since {iso(t.since)}")
    return "; ".join(bits)


def transition_line(
    t: Transition,
    labels: Mapping[str, str] | None = None,
    rules: AlertRules | None = None,
    move: Move | None = None,
) -> str:
    """One line: ``VERB SEVERITY: WHO, SCOPE [SYMBOL]: rule value vs level (how it moved)``.

    ``labels``: ``venue:account`` → the account's label. ``rules``: the alert rules, to name
    the clear level of a repeat that no longer crosses its fire level. ``move``: where the
    value stood a while ago (``up from 71.0% 12 min ago``)."""
    return _transition_line(t, who(t.group, labels), rules, move)


def _transition_line(t: Transition, name: str, rules: AlertRules | None, move: Move | None) -> str:
    """:func:`transition_line` with ``name``, :func:`who` of ``t.group``, given."""
    verb = _verb(t)
    sev = t.severity.value.upper()
    place = where(t.subject, t.group)
    head = f"{verb} {sev}: {name}" + (f", {place}" if place else "")
    head += f": {_label(t)}"
    if t.kind is TransitionKind.EVENT or t.rule not in DIRECTIONS:
        return f"{head}" + (f" ({t.detail})" if t.detail else "") + f" at {iso(t.at)}"
    value = rule_value(t.rule, t.value)
    if t.kind is TransitionKind.RESOLVED:
        peak = f", worst {rule_value(t.rule, t.peak)}" if t.peak is not None else ""
        lasted = f"lasted {duration(t.at - t.since)}{peak}"
        if t.detail in ENDED_WITHOUT_RECOVERY:
            # the value never came back: it is the last one seen, not "now"
            return f"{head} no longer watched ({t.detail}), last {value}; {lasted}"
        why = f" ({t.detail})" if t.detail else ""
        return f"{head} now {value}{why}; {lasted}"
    moved = _moved(t, move)
    return f"{head} {_how_bad(t, rules)}" + (f" ({moved})" if moved else "")


# -- the numbers -------------------------------------------------------------------------------


def _scope_state(risk: ScopeRisk) -> str:
    """The scope's state in words. Figures that could not be computed (NaN) read as unknown:
    a NaN margin ratio compares false with 1, which read "not liquidatable"."""
    if not risk.positions:
        # an empty pool cannot be liquidated; a negative balance is still a debt
        if risk.figures_unknown:
            return "no positions, equity unknown"
        return "no positions" if risk.equity >= 0.0 else "no positions, negative balance"
    if risk.margin_ratio is None:
        return "LIQUIDATABLE (equity at or below zero)"
    if risk.liquidatable or risk.margin_ratio >= 1.0:
        return "LIQUIDATABLE (maintenance ≥ equity)"
    if risk.figures_unknown:
        return "UNKNOWN (its figures could not be computed)"
    return "not liquidatable"


def _past(risk: ScopeRisk) -> bool:
    return bool(risk.positions) and (
        risk.liquidatable or risk.margin_ratio is None or risk.margin_ratio >= 1.0
    )


def scope_lines(risk: ScopeRisk, labels: Mapping[str, str] | None = None) -> list[str]:
    """The figures of one scope, one per line (positions indented). Past liquidation, the
    shock and the distances say so instead of a figure at a price still to come. ``labels``:
    ``venue:account`` → label, named before the short scope key."""
    cross = risk.scope == "cross"
    past = _past(risk)
    if risk.margin_ratio is not None:
        ratio = rule_value(RuleKind.MARGIN_RATIO, risk.margin_ratio)
    else:
        ratio = "n/a (no positions)" if not risk.positions else "∞ (equity ≤ 0)"
    lines = [
        f"Scope {labelled_scope(str(risk.key), labels)}: equity {money(risk.equity)}, maintenance "
        f"{money(risk.maintenance_margin)}, margin ratio {ratio}: {_scope_state(risk)}",
        f"Collateral at risk: {money(risk.collateral_at_risk)} "
        f"({'the whole cross pool' if cross else 'this isolated allocation'})",
    ]
    if past:
        lines.append("Shock to liquidation: none left (past liquidation)")
    elif risk.positions:
        lines.append(
            f"Shock to liquidation: {pct(risk.shock_to_liquidation)} (down "
            f"{pct(risk.shock_down)}, up {pct(risk.shock_up)})"
        )
    runway = risk.funding_runway_hours
    lines.append(
        f"Funding cost per day: {money(risk.funding_cost_per_day)}"
        + (f", runway {numfmt.hours(runway)}" if runway is not None else "")
    )
    if cross and risk.drain_symbol is not None and len(risk.positions) > 1:
        lines.append(f"Drains the pool most: {risk.drain_symbol}")
    for p in risk.positions:
        side = "long" if p.size > 0 else "short"
        if past:
            liq = f"liq {price(p.liquidation_price)} (past liquidation)"
        else:
            liq = f"liq {price(p.liquidation_price)} ({pct(p.liquidation_distance)} away)"
        lines.append(
            f"• {p.symbol} {side} {numfmt.size(abs(p.size))} @ mark {price(p.mark_price)}: "
            f"{liq}, funding/day {money(p.funding_cost_per_day)}"
        )
    return lines


# -- the remedy --------------------------------------------------------------------------------


def figures_text(f: Figures) -> str:
    """What a remedy leads to: ``margin ratio 85.0%, nearest liquidation 6.1% away``."""
    if f.margin_ratio is None and f.maintenance_margin == 0.0:
        return "nothing left at risk"
    ratio = "∞ (equity ≤ 0)" if f.margin_ratio is None else f"{f.margin_ratio * 100:.1f}%"
    dist = f.nearest_liquidation_distance
    text = f"margin ratio {ratio}, nearest liquidation "
    text += "none" if dist is None else f"{pct(dist)} away"
    if f.liquidatable or f.margin_ratio is None or f.margin_ratio >= 1.0:
        text += " (LIQUIDATABLE)"
    return text


def _ceil_sig(x: float, sig: int) -> float:
    """``x`` (≥ 0) rounded up to ``sig`` significant digits, float noise (1e-9 relative)
    forgiven: a cut or a deposit is never understated (``0.0999999999`` → ``0.1``)."""
    if x <= 0.0 or not math.isfinite(x):
        return x
    step = 10.0 ** (math.floor(math.log10(x)) - sig + 1)
    return math.ceil(x / step * (1.0 - 1e-9)) * step


def _ceil_cents(x: float) -> float:
    return math.ceil(x * 100.0 * (1.0 - 1e-12)) / 100.0


def remedy_lines(r: Remedy) -> list[str]:
    """The remedy as lines: the deposit back to the target (the clear level of the rule that
    fired), then the reduction of the draining position, each with what it gives."""
    head = f"To get back to {r.target} (its clear level):"
    if r.met:
        # the alert fired on a figure ours do not reproduce (the venue's own margin ratio)
        return [
            head,
            f"• by our figures the scope is already there ({figures_text(r.now)}); the alert "
            "comes from the venue's own figure: check the account at the venue",
        ]
    if r.deposit is None or r.after_deposit is None:
        return [head, f"• UNKNOWN: {r.unknown}"]
    deposit = _ceil_cents(r.deposit) if r.deposit >= 1.0 else _ceil_sig(r.deposit, 3)
    lines = [head, f"• deposit {money(deposit)} → {figures_text(r.after_deposit)}"]
    if r.reduce_size is not None and r.reduce_fraction is not None and r.after_reduction:
        frac = "all of it" if r.reduce_fraction >= 1.0 else pct(r.reduce_fraction)
        cut = _ceil_sig(r.reduce_size, 6)
        lines.append(
            f"• or cut {r.reduce_symbol} by {numfmt.size(cut)} ({frac}) → "
            f"{figures_text(r.after_reduction)}"
        )
    if r.reduce_note:
        lines.append(f"• note: {r.reduce_note}")
    return lines


# -- titles ------------------------------------------------------------------------------------


def _title_who(group: str, labels: Mapping[str, str] | None) -> str:
    # the title grammar separates who from what with " — ": never inside a name
    return who(group, labels).replace(_TITLE_SEP, " - ")


def _title_what(t: Transition) -> str:
    symbol = t.subject.partition("#")[2]
    what = f"{symbol} {_label(t)}" if symbol else _label(t)
    if t.kind is TransitionKind.RESOLVED:
        return f"ended ({t.detail}): {what}" if _verb(t) == "ENDED" else f"resolved: {what}"
    if t.value is not None and t.rule in DIRECTIONS:
        what = f"{what} {rule_value(t.rule, t.value)}"
        if _past_liquidation(t.rule, t.value):
            what += " LIQUIDATABLE"
    return what


def group_title(
    group: AlertGroup | Sequence[Transition],
    name: str | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> str:
    """The email subject of one group: ``[WORST] WHO — N alerts: first, second, …`` (one alert:
    ``[WORST] WHO — what value``). ``N`` counts the alerts in the message; ``WHO`` is the
    account's label (else its short id). One line: control characters become spaces."""
    ts = group.transitions if isinstance(group, AlertGroup) else tuple(group)
    gname = name if name is not None else (group.group if isinstance(group, AlertGroup) else "")
    name_text = _title_who(gname, labels)
    if not ts:
        return f"[monitor] {name_text}"
    active = [t for t in ts if t.kind is not TransitionKind.RESOLVED]
    worst = max((t.severity for t in active), key=lambda s: s.rank, default=None)
    ended = any(_verb(t) == "ENDED" for t in ts)
    tag = worst.value.upper() if worst is not None else ("ENDED" if ended else "RESOLVED")
    if len(ts) == 1:
        return one_line(f"[{tag}] {name_text}{_TITLE_SEP}{_title_what(ts[0])}")
    whats = ", ".join(_title_what(t) for t in ts[:3])
    more = f", +{len(ts) - 3} more" if len(ts) > 3 else ""
    return one_line(f"[{tag}] {name_text}{_TITLE_SEP}{len(ts)} alerts: {whats}{more}")


_TITLE = re.compile(r"^\[([A-Z]+)\] (.*?)" + _TITLE_SEP + r"(?:(\d+) alerts: )?")
_TAG_RANK = {"RESOLVED": -1, "ENDED": -1, "INFO": 0, "WARNING": 1, "CRITICAL": 2}


def batch_title(titles: Sequence[str]) -> str:
    """The subject of several messages sent as one (the delivery worker coalesces a
    channel's pending rows): ``4 alerts: [CRITICAL] Main desk (3), [WARNING] Swing (1)``:
    how many alerts in all, and every account with its worst severity and its count, worst
    first. ``titles``: the subjects :func:`group_title` made for each message."""
    if len(titles) == 1:
        return titles[0]
    order: list[str] = []
    worst: dict[str, str] = {}
    count: dict[str, int] = {}
    for title in titles:
        m = _TITLE.match(title)
        if m is None:
            tag, name, n = "INFO", title, 1
        else:
            tag, name, n = m.group(1), m.group(2), int(m.group(3) or 1)
        if name not in worst:
            order.append(name)
            worst[name], count[name] = tag, 0
        elif _TAG_RANK.get(tag, 0) > _TAG_RANK.get(worst[name], 0):
            worst[name] = tag
        count[name] += n
    order.sort(key=lambda name: -_TAG_RANK.get(worst[name], 0))
    total = sum(count.values())
    parts = ", ".join(f"[{worst[n]}] {n} ({count[n]})" for n in order)
    return f"{total} alert{'s' if total != 1 else ''}: {parts}"


# -- one message -------------------------------------------------------------------------------


def render_group(
    group: AlertGroup,
    risks: Mapping[str, ScopeRisk],
    fmt: str = TEXT,
    limit: int | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    rules: AlertRules | None = None,
    remedies: Mapping[str, Remedy] | None = None,
    moves: Mapping[str, Move] | None = None,
) -> Rendered:
    """One message for one group: the alert lines (bold), then the remedies, then the
    figures of each scope. ``risks``: latest figures per scope name (``venue:account/scope``),
    used when a transition carries none. ``labels``: ``venue:account`` → label.
    ``rules``: for the clear levels named by repeats. ``remedies``: transition id → the
    remedy computed for it (:func:`monitor.notify.outbound.remedy_for`). ``moves``:
    transition id → where its value stood a while ago (:class:`monitor.notify.outbound.Recent`)."""
    return render_titled(
        group,
        group_title(group, labels=labels),
        risks,
        fmt,
        limit,
        labels=labels,
        rules=rules,
        remedies=remedies,
        moves=moves,
    )


class RenderMemo:
    """The plain (unstyled) lines made for one batch of messages, reused by the next channel
    that renders the same alerts (only the styling differs by channel): each transition's,
    each remedy's and each scope's lines by the object (kept, so an id is never reused; not
    by the transition's id, which two notices of one subject in one batch share, e.g. two
    ADL fills), with ``names``, :func:`who` by group. Valid for one set of ``risks``,
    ``labels``, ``rules``, ``remedies`` and ``moves``: one :func:`render_titled` caller's
    batch."""

    __slots__ = ("_lines", "_remedies", "_scopes", "names")

    def __init__(self) -> None:
        self._lines: dict[int, tuple[Transition, str]] = {}
        self.names: dict[str, str] = {}
        self._remedies: dict[int, tuple[Remedy, list[str]]] = {}
        self._scopes: dict[int, tuple[ScopeRisk, list[str]]] = {}

    def line(
        self,
        t: Transition,
        labels: Mapping[str, str] | None,
        rules: AlertRules | None,
        moves: Mapping[str, Move] | None,
    ) -> str:
        """:func:`transition_line` of ``t`` (``labels``, ``rules``, ``moves``: the batch's)."""
        hit = self._lines.get(id(t))
        if hit is None or hit[0] is not t:
            name = self.names.get(t.group)
            if name is None:
                name = self.names[t.group] = who(t.group, labels)
            move = (moves or {}).get(t.id)
            hit = self._lines[id(t)] = (t, _transition_line(t, name, rules, move))
        return hit[1]

    def remedy(self, r: Remedy) -> list[str]:
        """:func:`remedy_lines` of ``r``."""
        hit = self._remedies.get(id(r))
        if hit is None or hit[0] is not r:
            hit = self._remedies[id(r)] = (r, remedy_lines(r))
        return hit[1]

    def scope(self, risk: ScopeRisk, labels: Mapping[str, str] | None) -> list[str]:
        """:func:`scope_lines` of ``risk`` (``labels``: the batch's)."""
        hit = self._scopes.get(id(risk))
        if hit is None or hit[0] is not risk:
            hit = self._scopes[id(risk)] = (risk, scope_lines(risk, labels))
        return hit[1]


def render_titled(
    group: AlertGroup,
    title: str,
    risks: Mapping[str, ScopeRisk],
    fmt: str = TEXT,
    limit: int | None = None,
    *,
    labels: Mapping[str, str] | None = None,
    rules: AlertRules | None = None,
    remedies: Mapping[str, Remedy] | None = None,
    moves: Mapping[str, Move] | None = None,
    memo: RenderMemo | None = None,
) -> Rendered:
    """:func:`render_group` with its ``title`` (:func:`group_title` of ``group`` and
    ``labels``) already made (the caller needed it for the body's limit). ``memo``: the
    plain lines already made for another channel in the same batch (the same ``risks``,
    ``labels``, ``rules``, ``remedies`` and ``moves``), reused and added to."""
    if memo is None:
        memo = RenderMemo()
    lines: list[str] = []
    for t in group.transitions:
        lines.append(_styled(memo.line(t, labels, rules, moves), fmt, bold=True))
    by_scope: dict[str, list[Remedy]] = {}
    for t in group.transitions:
        r = (remedies or {}).get(t.id)
        if r is None or t.kind is TransitionKind.RESOLVED:
            continue
        same = by_scope.setdefault(str(r.key), [])
        if all(x.target != r.target for x in same):
            same.append(r)
    for scope_key, found in by_scope.items():
        lines.append("")
        lines.append(_styled(f"What to do on {labelled_scope(scope_key, labels)}:", fmt))
        for r in found:
            for line in memo.remedy(r):
                lines.append(_styled(line, fmt))
    seen: set[str] = set()
    for t in group.transitions:
        if t.kind is TransitionKind.RESOLVED:
            continue  # shows no figures: none asked for (``risks`` may compute them)
        scope_subject = t.subject.split("#", 1)[0]
        if scope_subject in seen:
            continue
        risk = t.risk or risks.get(scope_subject)
        if risk is None:
            continue
        seen.add(scope_subject)
        lines.append("")
        for line in memo.scope(risk, labels):
            lines.append(_styled(line, fmt))
    lines.append("")
    lines.append(f"at {iso(group.at)}")
    body = "\n".join(lines)
    if limit is not None:
        body = fit(body, limit)
    return Rendered(title, body)


def render_held(
    feed: Transition,
    held: Sequence[AlertRecord],
    fmt: str = TEXT,
    limit: int | None = None,
    *,
    labels: Mapping[str, str] | None = None,
) -> Rendered:
    """The message of its own that says which alerts a stale or down feed holds: while
    ``feed`` (a ``feed_stale`` transition) is active, the threshold alerts in ``held`` are
    frozen (no fire, no repeat, no resolve) at their last values."""
    source = feed.subject.removeprefix("feed:")
    venue, _, channel = source.partition("/")
    # the engine's detail says "VENUE CHANNEL is down" or "… is stale"
    state = "down" if f"{venue} {channel} is down" in feed.detail else "stale"
    if not feed.detail and feed.severity is Severity.CRITICAL:
        state = "down"
    n = len(held)
    title = one_line(
        f"[HELD] {_title_who(feed.group, labels)}{_TITLE_SEP}{n} alert{'s' if n != 1 else ''} "
        f"held while {source} is {state}"
    )
    lines = [
        _styled(
            f"HELD: {n} alert{'s' if n != 1 else ''} frozen while {source} is {state} (no fire, "
            "no repeat, no resolve until it recovers; values as last seen):",
            fmt,
            bold=True,
        )
    ]
    for rec in sorted(held, key=lambda r: (-r.severity.rank, r.subject)):
        state = "firing" if rec.status.value == "firing" else "pending"
        place = where(rec.subject, rec.group)
        lines.append(
            _styled(
                f"• {rec.severity.value.upper()} {who(rec.group, labels)}"
                + (f", {place}" if place else "")
                + f": {RULE_TITLES.get(rec.rule, rec.rule)} {rule_value(rec.rule, rec.value)}"
                + f" ({state} since {iso(rec.since)})",
                fmt,
            )
        )
    lines.append("")
    lines.append(f"at {iso(feed.at)}")
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
