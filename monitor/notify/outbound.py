"""Outbox rows from alert transitions: one message per (account group, channel), rendered in
the channel's dialect (:mod:`monitor.notify.render`), with a stable idempotency key
``sha1(transition ids of the group) : channel``; plus, for each feed that went stale or down,
one message of its own naming the alerts it holds (key ``sha1("held:" + transition id) :
channel``).

:func:`remedy_for` is the adapter the shell passes in (as ``remedy=``) to put the remedy in
a margin-ratio or liquidation-distance alert: the deposit, and the reduction of the draining
position, that bring the scope back to the clear level of the rule that fired."""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

from monitor.alerts.engine import (
    ACCOUNT_CHANNEL,
    NOTIFYING_KINDS,
    AlertRecord,
    AlertState,
    Transition,
    TransitionKind,
    account_held,
)
from monitor.alerts.grouping import AlertGroup, group_transitions
from monitor.alerts.rules import DIRECTIONS, AlertRules, RuleKind, Severity
from monitor.margin.remedy import ALERT_FRACTION_STEP, Remedy, Target
from monitor.margin.risk import ScopeRisk
from monitor.model.ids import PositionKey, ScopeKey, parse_subject
from monitor.model.portfolio import Portfolio
from monitor.notify.channels import Channel
from monitor.notify.render import (
    ENDED_WITHOUT_RECOVERY,
    REMEDY_RULES,
    Move,
    Rendered,
    RenderMemo,
    group_title,
    labelled_scope,
    notify_type,
    render_held,
    render_titled,
)
from monitor.ops.charts import ChartSpec, account_of, encode_specs, thresholds_from_rules
from monitor.store.outbox import OutboundMessage
from monitor.whatif import remedy_of

if TYPE_CHECKING:
    from monitor.config import AccountConfig


class RemedyOf(Protocol):
    """What the shell passes as ``remedy``: the remedy for one transition, or None;
    ``reduce`` False: the deposit only (see :data:`REDUCTIONS_PER_CALL`)."""

    def __call__(self, t: Transition, *, reduce: bool = ...) -> Remedy | None: ...


#: remedies with their reduction per :func:`build_messages` call (one engine step): the
#: reduction's search costs tens of evaluations of the scope, so in a burst (a crash: thousands
#: of alerts at once) the scopes decided first (the most urgent: the engine decides them in
#: that order) get it and the rest get the deposit, with a note
REDUCTIONS_PER_CALL = 50

#: remedies with their reduction per second across calls (:class:`ReductionBudget`): the
#: daemon's steps are small (~0.1 s each in a crash), so a per-call bound alone let a crash
#: compute nearly every reduction, ~0.5 ms each, on the event loop
REDUCTIONS_PER_SECOND = 50.0


class ReductionBudget:
    """How many remedies get their reduction, across :func:`build_messages` calls: a token
    bucket of ``burst`` reductions refilled at ``per_second`` (``now`` in epoch seconds; a
    clock that steps back refills nothing, and refilling resumes from its new time). A
    trader's few alerts always get theirs; in a crash the first each second do (the engine
    decides the most urgent first), the rest get the deposit and a note saying ``monitor
    whatif`` computes the reduction."""

    __slots__ = ("_at", "_tokens", "burst", "per_second")

    def __init__(
        self, per_second: float = REDUCTIONS_PER_SECOND, burst: float = REDUCTIONS_PER_SECOND
    ) -> None:
        self.per_second = per_second
        self.burst = burst
        self._tokens = burst
        self._at: float | None = None

    def take(self, now: float) -> bool:
        """One reduction at ``now``, if the budget has one left."""
        if self._at is not None and now > self._at:
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.per_second)
        # a clock stepped back refills nothing, and the bucket's time follows it: kept at the
        # old time, a clock set back an hour would refill nothing for that hour
        self._at = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False


_HELD_RULES = frozenset(k.value for k in DIRECTIONS) - {RuleKind.OUTBOX_BACKLOG.value}


class Recent:
    """How fast an alert moved: each scope's margin ratio and each position's liquidation
    distance over the last ``window`` seconds (default 15 min), one sample per ``every``
    seconds (default 60 s) per scope, so memory stays bounded (≤ window / every + 1 samples
    per scope). Times are seconds on one clock for every call (the shell's ``now``).

    A scope's samples are one ``array('d')`` of rows, oldest first: the time, the scope's
    margin ratio, then one liquidation distance per position, in the order of the scope's
    ``symbols`` (a tuple shared by the scopes holding the same symbols); NaN where a value
    was unknown. A row is 8 B a value: a scope and its positions share its time and one
    array, where one array a subject (``scope`` and ``scope#SYMBOL``) cost ~190 B a
    position at one sample (tracemalloc of the daemon at 50,000 positions, see
    ``benchmarks/README.md``).

    Subjects are the transitions' (:attr:`Transition.subject`): ``venue:account/scope`` for
    the margin ratio and ``…#SYMBOL`` for a position's distance.

    The shell calls :meth:`record` with each step's recomputed scopes and passes the object
    to :func:`build_messages` as ``recent``; an alert then says ``up from 0.7100 (71.0%)
    12 min ago``: its value at the oldest sample in the window."""

    def __init__(self, window: float = 900.0, every: float = 60.0) -> None:
        self.window = window
        self.every = every
        self._by: dict[str, tuple[tuple[str, ...], array[float]]] = {}
        """scope → (its positions' symbols, [t, ratio, d_1 … d_n, t, …]), oldest row first"""
        self._symbols: dict[tuple[str, ...], tuple[str, ...]] = {}
        """one tuple per set of symbols in use (most scopes hold one of a few)"""
        self._pruned = -math.inf

    def _row(self, scope: str, symbols: tuple[str, ...], values: list[float], now: float) -> None:
        """Note ``values`` (the ratio, then the distance of each of ``symbols``; NaN:
        unknown) at ``now`` unless the scope has a row less than ``every`` old."""
        got = self._by.get(scope)
        if got is None:
            layout = self._symbols.setdefault(symbols, symbols)
            flat = array("d")
            self._by[scope] = (layout, flat)
        else:
            layout, flat = got
            width = len(layout) + 2
            if flat and now - flat[-width] < self.every:
                return
            if layout != symbols:
                values, layout, flat = self._relayout(scope, layout, flat, symbols, values)
        flat.append(now)
        flat.extend(values)
        width = len(layout) + 2
        while now - flat[0] > self.window:  # at most window / every + 1 rows
            del flat[:width]

    def _relayout(
        self,
        scope: str,
        layout: tuple[str, ...],
        flat: array[float],
        symbols: tuple[str, ...],
        values: list[float],
    ) -> tuple[list[float], tuple[str, ...], array[float]]:
        """``values`` (in the order of ``symbols``) in the scope's columns: a closed
        position keeps its column while a row holds its value, an opened one gets a column
        (NaN in the older rows)."""
        at = {s: i for i, s in enumerate(layout)}
        if all(s in at for s in symbols):  # closed positions only: the columns stand
            row = [values[0], *([math.nan] * len(layout))]
            for s, v in zip(symbols, values[1:], strict=True):
                row[1 + at[s]] = v
            return row, layout, flat
        width = len(layout) + 2
        held = set(symbols)
        closed = tuple(
            s
            for s in layout
            if s not in held and any(not math.isnan(v) for v in flat[2 + at[s] :: width])
        )
        new = self._symbols.setdefault(symbols + closed, symbols + closed)
        grown = array("d")
        for i in range(0, len(flat), width):
            grown.append(flat[i])
            grown.append(flat[i + 1])
            grown.extend(flat[i + 2 + at[s]] if s in at else math.nan for s in new)
        self._by[scope] = (new, grown)
        return [*values, *([math.nan] * len(closed))], new, grown

    def record(self, risks: Iterable[ScopeRisk], now: float) -> None:
        """Note each scope's margin ratio (subject ``venue:account/scope``) and each
        position's liquidation distance (``…#SYMBOL``) at ``now``; a scope none of whose
        values is known gets no row."""
        nan = math.nan
        every, by = self.every, self._by
        for r in risks:
            scope = str(r.key)
            got = by.get(scope)
            if got is not None and got[1] and now - got[1][-len(got[0]) - 2] < every:
                continue  # a row less than ``every`` old: nothing to build (``_row`` says so)
            ratio = r.margin_ratio
            values = [ratio if ratio is not None and math.isfinite(ratio) else nan]
            known = not math.isnan(values[0])
            for p in r.positions:
                d = p.liquidation_distance
                if d is not None and math.isfinite(d):
                    values.append(d)
                    known = True
                else:
                    values.append(nan)
            if known:
                self._row(scope, tuple(p.symbol for p in r.positions), values, now)
        if now - self._pruned > self.window:
            self._pruned = now
            gone = [
                scope
                for scope, (symbols, flat) in self._by.items()
                if now - flat[-len(symbols) - 2] > self.window
            ]
            for scope in gone:
                del self._by[scope]
            self._symbols = {s: s for s, _ in self._by.values()}

    def _column(self, subject: str) -> tuple[array[float], int, int] | None:
        """(the scope's rows, the subject's column, the row width), None without samples."""
        scope, sep, symbol = subject.partition("#")
        got = self._by.get(scope)
        if got is None:
            return None
        symbols, flat = got
        if not sep:
            return flat, 1, len(symbols) + 2
        try:
            return flat, 2 + symbols.index(symbol), len(symbols) + 2
        except ValueError:
            return None

    def samples(self, subject: str) -> list[tuple[float, float]]:
        """``subject``'s known samples as (time, value), oldest first (a copy)."""
        got = self._column(subject)
        if got is None:
            return []
        flat, col, width = got
        return [
            (flat[i], v) for i in range(0, len(flat), width) if not math.isnan(v := flat[i + col])
        ]

    def move(self, t: Transition, now: float) -> Move | None:
        """Where ``t``'s value stood at its oldest known sample in the window (margin ratio
        and liquidation distance alerts only); None without one at least ``every`` old."""
        if t.rule not in REMEDY_RULES:
            return None
        got = self._column(t.subject)
        if got is None:
            return None
        flat, col, width = got
        for i in range(0, len(flat), width):
            age = now - flat[i]
            if age <= self.window and not math.isnan(v := flat[i + col]):
                return Move(v, age) if age >= self.every else None
        return None


def labels_of(accounts: Iterable[AccountConfig]) -> dict[str, str]:
    """``venue:account`` → ``label`` for the configured accounts that have one (what
    :func:`build_messages` takes as ``labels``)."""
    return {str(a.key): a.label for a in accounts if a.label}


def remedy_target(t: Transition, rules: AlertRules) -> Target | None:
    """The target of ``t``'s remedy: the clear level of the level that fired (the account's
    override if any): ``margin_ratio`` → ``Target(margin_ratio=clear)``,
    ``liquidation_distance`` → ``Target(distance=clear)``. None for other rules, for a
    resolve, and when the clear level is not a fraction in (0, 1)."""
    if t.rule not in REMEDY_RULES or t.kind not in NOTIFYING_KINDS:
        return None
    rule = rules.rule(RuleKind(t.rule), t.group)
    level = rule.level(t.severity, t.symbol) if rule is not None else None
    if level is None or not 0.0 < level.clear < 1.0:
        return None
    if t.rule == RuleKind.MARGIN_RATIO:
        return Target(margin_ratio=level.clear)
    return Target(distance=level.clear)


def remedy_for(
    portfolio: Portfolio, t: Transition, rules: AlertRules, *, reduce: bool = True
) -> Remedy | None:
    """The remedy for alert ``t`` on the scope its subject names (``venue:account/scope``,
    a position's ``#SYMBOL`` dropped), computed on ``portfolio`` (the engine's, at the same
    step) with :func:`monitor.whatif.remedy_of` toward :func:`remedy_target`. None when the
    rule has no remedy or the scope is gone. The transition's figures (``t.risk``, computed
    at the same step) are the remedy's starting point. Never raises (a remedy is advice: the
    alert goes out without it rather than not at all)."""
    target = remedy_target(t, rules)
    if target is None:
        return None
    if t.risk is not None:
        key = t.risk.key
    else:
        try:
            subject = parse_subject(t.subject)
        except ValueError:
            return None
        if isinstance(subject, PositionKey):
            key = subject.scope
        elif isinstance(subject, ScopeKey):
            key = subject
        else:
            return None
    try:
        return remedy_of(
            portfolio, key, target, fraction_step=ALERT_FRACTION_STEP, reduce=reduce, risk=t.risk
        )
    except (KeyError, ValueError, ArithmeticError):
        return None


def held_by(feed: Transition, state: AlertState) -> list[AlertRecord]:
    """The threshold alerts (pending or firing) that the stale or down feed of ``feed`` (a
    ``feed_stale`` transition, subject ``feed:VENUE/CHANNEL``) holds in ``state``: every
    one of the venue's for a price or connection channel, the account's for an
    ``account:ID`` stream."""
    venue, _, channel = feed.subject.removeprefix("feed:").partition("/")
    out = []
    for rec in state.alerts.values():
        if rec.rule not in _HELD_RULES:
            continue
        if channel.startswith(ACCOUNT_CHANNEL):
            account = f"{venue}:{channel[len(ACCOUNT_CHANNEL) :]}"
            if account_held(rec.group, frozenset({account})):
                out.append(rec)
        elif rec.venue == venue:
            out.append(rec)
    return out


def chart_specs(
    transitions: Iterable[Transition],
    rules: AlertRules | None,
    labels: Mapping[str, str] | None = None,
) -> list[ChartSpec]:
    """One :class:`~monitor.ops.charts.ChartSpec` per scope (first seen first) of the
    unmuted critical alerts among ``transitions`` that fire, escalate, de-escalate or repeat
    on a scope (subject ``venue:account/scope``, a position's ``#SYMBOL`` dropped), with the
    margin-ratio and liquidation-distance fire levels of that account in ``rules`` (the
    defaults when None)."""
    out: dict[str, ChartSpec] = {}
    for t in transitions:
        if t.muted or t.severity != Severity.CRITICAL or t.kind not in NOTIFYING_KINDS:
            continue
        scope = t.subject.split("#", 1)[0]
        account = account_of(scope)
        if account is None or scope in out:
            continue
        source = "alert rules" if rules is not None else ""
        th = thresholds_from_rules(rules, account, source)
        out[scope] = ChartSpec(scope, th, title=labelled_scope(scope, labels))
    return list(out.values())


def _message(
    idem: str,
    ch: Channel,
    *,
    group: str,
    severity: str,
    rendered: Rendered,
    ntype: str,
    now: float,
    attach: str | None = None,
) -> OutboundMessage:
    digest = hashlib.sha1(idem.encode(), usedforsecurity=False).hexdigest()
    return OutboundMessage(
        idem_key=f"{digest}:{ch.name}",
        channel=ch.name,
        group=group,
        severity=severity,
        title=rendered.title,
        body=rendered.body,
        body_format=ch.format,
        notify_type=ntype,
        created_at=now,
        attach=attach,
    )


def build_messages(
    transitions: Sequence[Transition],
    channels: Sequence[Channel],
    risks: Mapping[str, ScopeRisk],
    now: float,
    *,
    labels: Mapping[str, str] | None = None,
    rules: AlertRules | None = None,
    remedy: RemedyOf | None = None,
    state: AlertState | None = None,
    recent: Recent | None = None,
    reductions: ReductionBudget | None = None,
) -> list[OutboundMessage]:
    """One message per (group, channel) for the unmuted transitions a channel takes
    (severity ≥ its ``min_severity``; resolves only if it ``send_resolved``).

    ``labels``: ``venue:account`` → the account's label, shown instead of its id.
    ``rules``: the alert rules (a repeat that still fires only because its clear level was
    not crossed names that level). ``remedy``: the remedy of one transition
    (``lambda t, reduce=True: remedy_for(engine.portfolio, t, engine.rules, reduce=reduce)``),
    asked once per margin-ratio or liquidation-distance alert and scope, with its reduction
    for the first :data:`REDUCTIONS_PER_CALL`. ``state``: the alert state after the step;
    with it, each feed that fired stale or down also gets a message of its own listing the
    alerts it holds (none when it holds none). ``recent``: the recent values (:class:`Recent`)
    that say how fast a margin-ratio or liquidation-distance alert moved. ``reductions``: the
    budget of reductions across calls (:class:`ReductionBudget`), on top of the per-call one.

    A channel with ``charts = true`` gets, on a message holding a critical alert on a scope,
    the charts to attach (``attach``: :func:`chart_specs` as JSON, thresholds from
    ``rules``); the delivery worker renders them when it sends the message."""
    out: list[OutboundMessage] = []
    remedies: dict[str, Remedy] = {}
    if remedy is not None:
        # one computation per (scope, rule, severity): every position of a scope shares it
        done: dict[tuple[str, str, str], Remedy | None] = {}
        for t in transitions:
            if (
                not t.muted
                and t.rule in REMEDY_RULES
                and t.kind in NOTIFYING_KINDS
                and any(ch.accepts(t.severity) for ch in channels)  # nobody reads it else
            ):
                ident = (t.subject.split("#", 1)[0], t.rule, t.severity.value)
                if ident not in done:
                    reduce = len(done) < REDUCTIONS_PER_CALL and (
                        reductions is None or reductions.take(now)
                    )
                    done[ident] = remedy(t, reduce=reduce)
                r = done[ident]
                if r is not None:
                    remedies[t.id] = r
    moves: dict[str, Move] = {}
    if recent is not None:
        for t in transitions:
            m = recent.move(t, now)
            if m is not None:
                moves[t.id] = m
    # several channels: the plain lines, made once for all of them, and each set of alerts'
    # title (kept until the end of the batch: not worth it for one channel)
    memo = RenderMemo() if len(channels) > 1 else None
    titles: dict[tuple[str, ...], str] = {}
    for group in group_transitions(transitions):
        for ch in channels:
            mine = tuple(
                t
                for t in group.transitions
                if ch.accepts(t.severity)
                and (t.kind is not TransitionKind.RESOLVED or ch.send_resolved)
            )
            if not mine:
                continue
            sub = AlertGroup(group.group, mine)
            if memo is None:
                title = group_title(sub, labels=labels)
            else:
                ids = tuple(t.id for t in mine)
                found = titles.get(ids)
                if found is None:
                    found = titles[ids] = group_title(sub, labels=labels)
                title = found
            rendered = render_titled(
                sub,
                title,
                risks,
                ch.format,
                ch.body_limit(title),
                labels=labels,
                rules=rules,
                remedies=remedies,
                moves=moves,
                memo=memo,
            )
            # an alert ENDED by its position or scope going away is no success
            resolved_only = all(
                t.kind is TransitionKind.RESOLVED and t.detail not in ENDED_WITHOUT_RECOVERY
                for t in mine
            )
            severity = max((t.severity for t in mine), key=lambda s: s.rank).value
            ntype = notify_type(sub.severity, resolved_only)
            specs = chart_specs(mine, rules, labels) if ch.charts else []
            out.append(
                _message(
                    sub.id,
                    ch,
                    group=sub.group,
                    severity=severity,
                    rendered=rendered,
                    ntype=ntype,
                    now=now,
                    attach=encode_specs(specs) if specs else None,
                )
            )
    if state is not None:
        out.extend(_held_messages(transitions, channels, state, labels, now))
    return out


def _held_messages(
    transitions: Sequence[Transition],
    channels: Sequence[Channel],
    state: AlertState,
    labels: Mapping[str, str] | None,
    now: float,
) -> list[OutboundMessage]:
    out: list[OutboundMessage] = []
    for t in transitions:
        if t.rule != RuleKind.FEED_STALE or t.muted:
            continue
        if t.kind not in (TransitionKind.FIRED, TransitionKind.ESCALATED):
            continue
        held = held_by(t, state)
        if not held:
            continue
        for ch in channels:
            if not ch.accepts(t.severity):
                continue
            probe = render_held(t, held, ch.format, None, labels=labels)
            rendered = render_held(t, held, ch.format, ch.body_limit(probe.title), labels=labels)
            ntype = notify_type(t.severity, False)
            out.append(
                _message(
                    f"held:{t.id}",
                    ch,
                    group=t.group,
                    severity=t.severity.value,
                    rendered=rendered,
                    ntype=ntype,
                    now=now,
                )
            )
    return out
