"""The alert state machine (pure): ``evaluate(obs, now, state, rules) -> (transitions, state)``.

Semantics follow Prometheus Alertmanager, kept pure and numeric:

* Each alert has a **key** (``rule|subject``) and is absent (inactive), ``pending`` or
  ``firing`` at one severity. A threshold rule's level fires when its value crosses ``fire``
  and stays active until it crosses back over ``clear`` (hysteresis); the active severity is
  the highest level that either crosses ``fire`` or, being at or below the current severity,
  has not yet crossed ``clear``.
* A non-critical level must hold for ``for`` seconds (``pending``) before it fires; critical
  fires at once. Leaving the fire side while pending drops the alert silently.
* While firing: a worse level **escalates** in place, a better one **de-escalates**, the same
  level **repeats** every ``repeat[severity]`` seconds, and crossing the last ``clear``
  **resolves** it.
* **Inhibition**: while any feed of a venue is stale or down, the threshold alerts of that
  venue's scopes are frozen (no fire, no repeat, no resolve: stale prices can't prove anything);
  the feed alert says so. One key has one severity, so a critical always replaces the warning
  of the same rule and subject.
* **Mutes** (:mod:`monitor.alerts.mutes`): a muted transition is still computed and recorded
  (``muted=True``) but not delivered, and ``last_sent`` is not advanced, so when the mute ends
  a still-active alert repeats at once. Muted repeats are not emitted at all.
* A position that vanishes while its liquidation distance was ≤ ``liquidated_near``, or that
  the venue reports as liquidated, gives one ``event`` transition (critical).

Times are epoch seconds (UTC) passed in as ``now``: nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from monitor.alerts.mutes import Mute, is_muted
from monitor.alerts.rules import (
    DIRECTIONS,
    SCOPE_RULES,
    AlertRules,
    Direction,
    Level,
    RuleKind,
    Severity,
)
from monitor.margin.risk import PositionRisk, ScopeRisk
from monitor.model.events import FeedState, FeedStatus
from monitor.model.positions import ScopeKey

HOURS_PER_YEAR = 24.0 * 365.0
MONITOR = "monitor"


class AlertStatus(StrEnum):
    PENDING = "pending"
    FIRING = "firing"


class TransitionKind(StrEnum):
    FIRED = "fired"
    ESCALATED = "escalated"
    DEESCALATED = "deescalated"
    REPEAT = "repeat"
    RESOLVED = "resolved"
    EVENT = "event"


NOTIFYING_KINDS = frozenset(
    {
        TransitionKind.FIRED,
        TransitionKind.ESCALATED,
        TransitionKind.DEESCALATED,
        TransitionKind.REPEAT,
    }
)


@dataclass(frozen=True, slots=True)
class Health:
    """The monitor's own health: channels whose rows expired undelivered, outbox backlog."""

    failing_channels: tuple[str, ...] = ()
    backlog: int = 0


@dataclass(frozen=True, slots=True)
class Observation:
    """What one engine batch saw.

    ``risks``: the scopes just recomputed. ``vanished``: scopes that no longer exist (their
    last position closed). ``liquidated``: (scope, symbol) the venue reported as liquidated.
    ``feeds``: feed status changes. ``health``: the monitor's own health, when known.
    ``forgotten``: scopes no longer monitored (their account left the configuration): their
    alerts resolve, and nothing is read into their disappearance. ``quarantined``: (account
    group, what went wrong) for events that could not be applied; each gives one critical
    ``bad_event`` notice. ``deleveraged``: (scope, symbol, what happened) for each position
    the venue auto-deleveraged: one critical ``adl`` notice each. ``venue_ratios``: (scope,
    the venue's own ratio scaled so that 1 is its liquidation level, the venue field it came
    from): evaluated with the ``margin_ratio`` rule on that scope.
    """

    risks: Sequence[ScopeRisk] = ()
    vanished: Sequence[ScopeKey] = ()
    forgotten: Sequence[ScopeKey] = ()
    liquidated: Sequence[tuple[ScopeKey, str]] = ()
    feeds: Sequence[FeedStatus] = ()
    health: Health | None = None
    quarantined: Sequence[tuple[str, str]] = ()
    deleveraged: Sequence[tuple[ScopeKey, str, str]] = ()
    venue_ratios: Sequence[tuple[ScopeKey, float, str]] = ()


@dataclass(frozen=True, slots=True)
class AlertRecord:
    """One active (pending or firing) alert. ``subject``: what it is about (scope string,
    ``scope#SYMBOL``, ``feed:venue/channel``, ``monitor``); ``group``: the message it goes in
    (``venue:account``, ``feed:venue``, ``monitor``). ``due``: when a pending alert fires."""

    key: str
    rule: str
    subject: str
    group: str
    status: AlertStatus
    severity: Severity
    since: float
    venue: str | None = None
    symbol: str | None = None
    due: float | None = None
    fired_at: float | None = None
    last_sent: float | None = None
    value: float | None = None
    threshold: float | None = None
    peak: float | None = None


@dataclass(frozen=True, slots=True)
class AlertState:
    """Everything the engine remembers between evaluations.

    ``peaks``: peak equity per scope (drawdown); ``positions``: per scope, each position's
    last liquidation distance (liquidation detection); ``stale``: ``venue/channel`` of feeds
    now stale or down, with their state; ``mutes``: the mutes in force.
    """

    alerts: Mapping[str, AlertRecord] = field(default_factory=dict)
    peaks: Mapping[str, float] = field(default_factory=dict)
    positions: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    stale: Mapping[str, str] = field(default_factory=dict)
    mutes: tuple[Mute, ...] = ()

    def inhibited_venues(self) -> frozenset[str]:
        """Venues with a stale or down price/connection channel: all their alerts are held."""
        return held_venues(self.stale)


ACCOUNT_CHANNEL = "account:"
"""A feed channel ``account:ID`` is one account's stream: its staleness holds that account's
alerts only (a dYdX parent subscription ``ADDR/P`` covers its children ``ADDR/P+128k``)."""


def held_venues(stale: Mapping[str, str]) -> frozenset[str]:
    out = set()
    for k in stale:
        venue, _, channel = k.partition("/")
        if not channel.startswith(ACCOUNT_CHANNEL):
            out.add(venue)
    return frozenset(out)


def held_accounts(stale: Mapping[str, str]) -> frozenset[str]:
    """``venue:account`` groups whose account stream is stale or down."""
    out = set()
    for k in stale:
        venue, _, channel = k.partition("/")
        if channel.startswith(ACCOUNT_CHANNEL):
            out.add(f"{venue}:{channel[len(ACCOUNT_CHANNEL) :]}")
    return frozenset(out)


def account_held(group: str, accounts: frozenset[str]) -> bool:
    """True when the account ``group`` (``venue:account``) is covered by a stale stream."""
    if not accounts:
        return False
    if group in accounts or group.split("@", 1)[0] in accounts:
        return True
    venue, _, account = group.partition(":")
    address, slash, number = account.partition("/")
    if venue == "dydx" and slash and number.isdigit():
        return f"dydx:{address}/{int(number) % 128}" in accounts
    return False


@dataclass(frozen=True, slots=True)
class Transition:
    """One change worth telling: ``kind`` at ``at`` (epoch s). ``value``/``threshold`` are in
    the rule's units; ``since`` is when the alert became active; ``peak`` the worst value
    seen while active. ``risk`` is the scope's figures when this evaluation had them."""

    id: str
    kind: TransitionKind
    key: str
    rule: str
    severity: Severity
    group: str
    subject: str
    at: float
    since: float
    previous: Severity | None = None
    symbol: str | None = None
    value: float | None = None
    threshold: float | None = None
    peak: float | None = None
    muted: bool = False
    detail: str = ""
    risk: ScopeRisk | None = None


def alert_key(rule: str, subject: str) -> str:
    return f"{rule}|{subject}"


def _worse(direction: Direction, a: float, b: float) -> float:
    return max(a, b) if direction is Direction.ABOVE else min(a, b)


def active_level(
    levels: Sequence[Level], direction: Direction, value: float | None, current: Severity | None
) -> Level | None:
    """The level an alert should be at: the highest that crosses ``fire``, or that is at or
    below ``current`` (the firing severity) and has not crossed back over ``clear``."""
    if value is None or math.isnan(value):
        return None
    best: Level | None = None
    for lv in levels:
        if direction is Direction.ABOVE:
            crosses, holds = value >= lv.fire, value > lv.clear
        else:
            crosses, holds = value <= lv.fire, value < lv.clear
        active = crosses or (current is not None and lv.severity.rank <= current.rank and holds)
        if active and (best is None or lv.severity.rank > best.severity.rank):
            best = lv
    return best


class _Eval:
    """One evaluation's working copy (local and short-lived; the function stays pure)."""

    def __init__(self, state: AlertState, now: float, rules: AlertRules) -> None:
        self.now = now
        self.rules = rules
        self.alerts: dict[str, AlertRecord] = dict(state.alerts)
        # copy-on-write: the input state is never mutated, each map is copied at most once
        self.peaks: Mapping[str, float] = state.peaks
        self.positions: Mapping[str, Mapping[str, float | None]] = state.positions
        self.stale = state.stale
        self._peaks_w: dict[str, float] | None = None
        self._positions_w: dict[str, Mapping[str, float | None]] | None = None
        self.mutes = state.mutes
        self.out: list[Transition] = []
        self.touched: set[str] = set()
        self.events_done: set[str] = set()

    def _peaks(self) -> dict[str, float]:
        if self._peaks_w is None:
            self._peaks_w = dict(self.peaks)
            self.peaks = self._peaks_w
        return self._peaks_w

    def _positions(self) -> dict[str, Mapping[str, float | None]]:
        if self._positions_w is None:
            self._positions_w = dict(self.positions)
            self.positions = self._positions_w
        return self._positions_w

    # -- emitting ------------------------------------------------------------------------------
    def _muted(self, rec: AlertRecord, severity: Severity) -> bool:
        return is_muted(self.mutes, rec.subject, rec.rule, severity is Severity.CRITICAL, self.now)

    def _emit(
        self,
        kind: TransitionKind,
        rec: AlertRecord,
        *,
        previous: Severity | None = None,
        muted: bool = False,
        detail: str = "",
        risk: ScopeRisk | None = None,
    ) -> None:
        self.out.append(
            Transition(
                id=f"{rec.key}@{self.now:.6f}/{kind.value}",
                kind=kind,
                key=rec.key,
                rule=rec.rule,
                severity=rec.severity,
                group=rec.group,
                subject=rec.subject,
                at=self.now,
                since=rec.fired_at if rec.fired_at is not None else rec.since,
                previous=previous,
                symbol=rec.symbol,
                value=rec.value,
                threshold=rec.threshold,
                peak=rec.peak,
                muted=muted,
                detail=detail,
                risk=risk,
            )
        )

    def _fire(self, rec: AlertRecord, detail: str, risk: ScopeRisk | None) -> AlertRecord:
        muted = self._muted(rec, rec.severity)
        rec = replace(
            rec,
            status=AlertStatus.FIRING,
            fired_at=self.now,
            due=None,
            last_sent=None if muted else self.now,
        )
        self._emit(TransitionKind.FIRED, rec, muted=muted, detail=detail, risk=risk)
        return rec

    def _resolve(self, rec: AlertRecord, detail: str, risk: ScopeRisk | None) -> None:
        del self.alerts[rec.key]
        if rec.status is AlertStatus.FIRING and self.rules.send_resolved:
            self._emit(
                TransitionKind.RESOLVED,
                rec,
                muted=self._muted(rec, rec.severity),
                detail=detail,
                risk=risk,
            )

    def _keep_firing(
        self,
        rec: AlertRecord,
        severity: Severity,
        detail: str,
        risk: ScopeRisk | None,
    ) -> AlertRecord:
        """An alert that is firing and should stay so at ``severity``."""
        if severity is not rec.severity:
            kind = (
                TransitionKind.ESCALATED
                if severity.rank > rec.severity.rank
                else TransitionKind.DEESCALATED
            )
            previous = rec.severity
            muted = self._muted(rec, severity)
            rec = replace(rec, severity=severity, last_sent=rec.last_sent if muted else self.now)
            self._emit(kind, rec, previous=previous, muted=muted, detail=detail, risk=risk)
            return rec
        return self._maybe_repeat(rec, detail, risk)

    def _maybe_repeat(self, rec: AlertRecord, detail: str, risk: ScopeRisk | None) -> AlertRecord:
        last = rec.last_sent
        if last is not None and self.now - last < self.rules.repeat_for(rec.severity):
            return rec
        if self._muted(rec, rec.severity):
            return rec
        rec = replace(rec, last_sent=self.now)
        self._emit(TransitionKind.REPEAT, rec, detail=detail, risk=risk)
        return rec

    # -- threshold alerts ------------------------------------------------------------------
    def threshold(
        self,
        kind: RuleKind,
        subject: str,
        group: str,
        value: float | None,
        *,
        account: str | None,
        venue: str | None,
        symbol: str | None = None,
        risk: ScopeRisk | None = None,
    ) -> None:
        key = alert_key(kind.value, subject)
        self.touched.add(key)
        rule = self.rules.rule(kind, account)
        prev = self.alerts.get(key)
        levels = rule.levels_for(symbol) if rule is not None else ()
        direction = DIRECTIONS[kind]
        current = prev.severity if prev is not None and prev.status is AlertStatus.FIRING else None
        if value is not None and math.isnan(value):
            return  # unknown: proves nothing, so it neither fires nor resolves (fail closed)
        lv = active_level(levels, direction, value, current)
        if lv is None:
            if prev is not None:
                rec = prev if value is None else replace(prev, value=value)
                self._resolve(rec, "", risk)
            return
        assert value is not None  # a level is only active for a value
        if prev is None or prev.status is AlertStatus.PENDING:
            wait = 0.0
            if lv.severity is not Severity.CRITICAL and rule is not None:
                wait = self.rules.pending_for_rule(rule)
            since = prev.since if prev is not None else self.now
            rec = AlertRecord(
                key=key,
                rule=kind.value,
                subject=subject,
                group=group,
                status=AlertStatus.PENDING,
                severity=lv.severity,
                since=since,
                venue=venue,
                symbol=symbol,
                due=since + wait,
                value=value,
                threshold=lv.fire,
                peak=value
                if prev is None or prev.peak is None
                else _worse(direction, prev.peak, value),
            )
            if self.now >= since + wait:
                rec = self._fire(rec, "", risk)
            self.alerts[key] = rec
            return
        peak = value if prev.peak is None else _worse(direction, prev.peak, value)
        rec = replace(prev, value=value, threshold=lv.fire, peak=peak)
        self.alerts[key] = self._keep_firing(rec, lv.severity, "", risk)

    # -- direct alerts (state, not threshold) ----------------------------------------------
    def direct(
        self,
        rule: RuleKind,
        subject: str,
        group: str,
        severity: Severity | None,
        *,
        detail: str,
        venue: str | None = None,
        pending_for: float = 0.0,
    ) -> None:
        """An event-driven alert: ``severity`` None resolves it. With ``pending_for`` > 0 it
        stays pending that long (seconds) before it fires; resolved while pending, it is
        dropped without a word."""
        key = alert_key(rule.value, subject)
        self.touched.add(key)
        prev = self.alerts.get(key)
        if severity is None:
            if prev is not None:
                self._resolve(prev, detail, None)
            return
        if prev is None:
            rec = AlertRecord(
                key=key,
                rule=rule.value,
                subject=subject,
                group=group,
                status=AlertStatus.PENDING,
                severity=severity,
                since=self.now,
                venue=venue,
            )
            if pending_for > 0.0:
                self.alerts[key] = replace(rec, due=self.now + pending_for)
                return
            self.alerts[key] = self._fire(rec, detail, None)
            return
        if prev.status is AlertStatus.PENDING:
            rec = replace(prev, severity=severity)
            due = prev.due
            self.alerts[key] = (
                self._fire(rec, detail, None) if due is None or self.now >= due else rec
            )
            return
        self.alerts[key] = self._keep_firing(prev, severity, detail, None)

    # -- scopes ----------------------------------------------------------------------------
    def scope(self, risk: ScopeRisk, inhibited: bool) -> None:
        subject = str(risk.key)
        account = str(risk.key.account_key)
        cur = {p.symbol: p.liquidation_distance for p in risk.positions}
        self._closed(risk.key, cur, risk)
        # alerts on positions the scope no longer holds (restored after a restart, when the
        # positions' last distances were not): the position closed while we were away
        for k, rec in list(self.alerts.items()):
            base, sep, sym = rec.subject.partition("#")
            if sep and base == subject and sym not in cur and k not in self.touched:
                self.touched.add(k)
                self._resolve(rec, "position closed", risk)
        unknown = _unknown_figures(risk)
        if unknown:
            # fail closed: nothing computed from these figures may fire or resolve; the scope
            # alarms until its figures are finite again
            self.direct(
                RuleKind.MARGIN_UNKNOWN,
                subject,
                account,
                Severity.CRITICAL,
                detail=f"cannot compute margin for {subject}: {unknown}",
                venue=risk.venue,
            )
            self.touched.update(
                k for k, r in self.alerts.items() if r.subject.split("#", 1)[0] == subject
            )
            return
        if alert_key(RuleKind.MARGIN_UNKNOWN.value, subject) in self.alerts:
            self.direct(
                RuleKind.MARGIN_UNKNOWN,
                subject,
                account,
                None,
                detail=f"the margin of {subject} is computable again",
                venue=risk.venue,
            )
        if inhibited:
            self.touched.update(
                k for k, r in self.alerts.items() if r.subject.split("#", 1)[0] == subject
            )
            return
        peak = self.peaks.get(subject)
        if risk.equity > 0 and (peak is None or risk.equity > peak):
            self._peaks()[subject] = risk.equity
            peak = risk.equity
        venue = risk.venue
        for kind in SCOPE_RULES:
            self.threshold(
                kind,
                subject,
                account,
                _scope_value(kind, risk, peak),
                account=account,
                venue=venue,
                risk=risk,
            )
        for p in risk.positions:
            psub = f"{subject}#{p.symbol}"
            self.threshold(
                RuleKind.LIQUIDATION_DISTANCE,
                psub,
                account,
                p.liquidation_distance,
                account=account,
                venue=venue,
                symbol=p.symbol,
                risk=risk,
            )
            self.threshold(
                RuleKind.FUNDING_RATE,
                psub,
                account,
                _annualized(p),
                account=account,
                venue=venue,
                symbol=p.symbol,
                risk=risk,
            )

    def _closed(
        self, key: ScopeKey, cur: Mapping[str, float | None], risk: ScopeRisk | None
    ) -> None:
        """Positions of ``key`` that were there last time and are gone now."""
        subject = str(key)
        prev = self.positions.get(subject, {})
        for sym, dist in prev.items():
            if sym in cur:
                continue
            psub = f"{subject}#{sym}"
            near = dist is not None and dist <= self.rules.liquidated_near
            if near and psub not in self.events_done:
                self._liquidated(key, sym, confirmed=False, last_distance=dist)
            for k, rec in list(self.alerts.items()):
                if rec.subject == psub:
                    self.touched.add(k)
                    self._resolve(rec, "position closed", risk)
        if cur:
            self._positions()[subject] = dict(cur)
        elif subject in self.positions:
            del self._positions()[subject]

    def forgotten(self, key: ScopeKey) -> None:
        subject = str(key)
        if subject in self.positions:
            del self._positions()[subject]
        for k, rec in list(self.alerts.items()):
            if rec.subject == subject or rec.subject.startswith(subject + "#"):
                self.touched.add(k)
                self._resolve(rec, "no longer monitored", None)
        if subject in self.peaks:
            del self._peaks()[subject]

    def vanished(self, key: ScopeKey) -> None:
        subject = str(key)
        self._closed(key, {}, None)
        for k, rec in list(self.alerts.items()):
            if rec.subject == subject or rec.subject.startswith(subject + "#"):
                self.touched.add(k)
                self._resolve(rec, "scope closed", None)
        if subject in self.peaks:
            del self._peaks()[subject]

    def _liquidated(
        self, key: ScopeKey, symbol: str, *, confirmed: bool, last_distance: float | None
    ) -> None:
        if not self.rules.liquidated_enabled:
            return
        subject = f"{key}#{symbol}"
        self.events_done.add(subject)
        detail = (
            "the venue reports the position was liquidated"
            if confirmed
            else "the position vanished while near its liquidation price"
            + (f" (last distance {last_distance:.2%})" if last_distance is not None else "")
        )
        rec = AlertRecord(
            key=alert_key(RuleKind.LIQUIDATED.value, subject),
            rule=RuleKind.LIQUIDATED.value,
            subject=subject,
            group=str(key.account_key),
            status=AlertStatus.FIRING,
            severity=Severity.CRITICAL,
            since=self.now,
            venue=key.venue,
            symbol=symbol,
            value=last_distance,
        )
        self._emit(
            TransitionKind.EVENT, rec, muted=self._muted(rec, Severity.CRITICAL), detail=detail
        )

    def quarantined(self, group: str, detail: str) -> None:
        """One critical notice: an event of ``group`` (an account) could not be applied."""
        rec = AlertRecord(
            key=alert_key(RuleKind.BAD_EVENT.value, group),
            rule=RuleKind.BAD_EVENT.value,
            subject=group,
            group=group,
            status=AlertStatus.FIRING,
            severity=Severity.CRITICAL,
            since=self.now,
            venue=group.split(":", 1)[0] if ":" in group else None,
        )
        self._emit(
            TransitionKind.EVENT, rec, muted=self._muted(rec, Severity.CRITICAL), detail=detail
        )

    def adl(self, key: ScopeKey, symbol: str, detail: str) -> None:
        """One critical notice: the venue auto-deleveraged ``symbol`` of scope ``key``."""
        subject = f"{key}#{symbol}"
        rec = AlertRecord(
            key=alert_key(RuleKind.ADL.value, subject),
            rule=RuleKind.ADL.value,
            subject=subject,
            group=str(key.account_key),
            status=AlertStatus.FIRING,
            severity=Severity.CRITICAL,
            since=self.now,
            venue=key.venue,
            symbol=symbol,
        )
        self._emit(
            TransitionKind.EVENT, rec, muted=self._muted(rec, Severity.CRITICAL), detail=detail
        )

    def venue_ratio(self, key: ScopeKey, value: float, source: str) -> None:
        """The venue's own margin ratio (scaled: 1 = the venue liquidates), with the
        ``margin_ratio`` rule; non-finite values hold (fail closed)."""
        account = str(key.account_key)
        self.threshold(
            RuleKind.MARGIN_RATIO, str(key), account, value, account=account, venue=key.venue
        )

    def liquidated(self, key: ScopeKey, symbol: str) -> None:
        if f"{key}#{symbol}" not in self.events_done:
            self._liquidated(key, symbol, confirmed=True, last_distance=None)

    # -- feeds and health ------------------------------------------------------------------
    def feed(self, fs: FeedStatus) -> None:
        fk = f"{fs.venue}/{fs.channel}"
        subject = f"feed:{fk}"
        if fs.state in (FeedState.STALE, FeedState.DOWN):
            self.stale = {**self.stale, fk: fs.state.value}
            if not self.rules.feed_stale_enabled:
                return
            sev = (
                Severity.CRITICAL if fs.state is FeedState.DOWN else self.rules.feed_stale_severity
            )
            detail = (
                f"{fs.venue} {fs.channel} is {fs.state.value}"
                + (f": {fs.detail}" if fs.detail else "")
                + f"; alerts computed from {fs.venue} prices are held until it recovers"
            )
            self.direct(
                RuleKind.FEED_STALE,
                subject,
                f"feed:{fs.venue}",
                sev,
                detail=detail,
                venue=fs.venue,
                pending_for=self.rules.feed_stale_for,
            )
        elif fs.state in (FeedState.LIVE, FeedState.RECOVERED):
            if fk in self.stale:
                self.stale = {k: v for k, v in self.stale.items() if k != fk}
            self.direct(
                RuleKind.FEED_STALE,
                subject,
                f"feed:{fs.venue}",
                None,
                detail=f"{fs.venue} {fs.channel} is live again",
                venue=fs.venue,
            )

    def health(self, h: Health) -> None:
        sev = self.rules.delivery_failing_severity if h.failing_channels else None
        if not self.rules.delivery_failing_enabled:
            sev = None
        detail = (
            "messages failed on: " + ", ".join(h.failing_channels)
            if h.failing_channels
            else "delivery works again"
        )
        self.direct(RuleKind.DELIVERY_FAILING, MONITOR, MONITOR, sev, detail=detail)
        self.threshold(
            RuleKind.OUTBOX_BACKLOG,
            MONITOR,
            MONITOR,
            float(h.backlog),
            account=None,
            venue=None,
        )

    # -- timers ----------------------------------------------------------------------------
    def timers(self) -> None:
        """Pending alerts whose ``for`` ran out and firing alerts due a repeat, among those
        this evaluation did not look at."""
        inhibited = held_venues(self.stale)
        accounts = held_accounts(self.stale)
        for key, rec in list(self.alerts.items()):
            if key in self.touched:
                continue
            if rec.rule in _HELD_RULES and (
                (rec.venue is not None and rec.venue in inhibited)
                or account_held(rec.group, accounts)
            ):
                continue
            if rec.status is AlertStatus.PENDING:
                if rec.due is not None and self.now >= rec.due:
                    self.alerts[key] = self._fire(rec, "", None)
            else:
                self.alerts[key] = self._maybe_repeat(rec, "", None)

    def state(self) -> AlertState:
        return AlertState(
            alerts=self.alerts,
            peaks=self.peaks,
            positions=self.positions,
            stale=self.stale,
            mutes=self.mutes,
        )


_HELD_RULES = frozenset(k.value for k in DIRECTIONS) - {RuleKind.OUTBOX_BACKLOG.value}


def _unknown_figures(risk: ScopeRisk) -> str:
    """Which of the scope's core figures are not finite ("" when all are)."""
    bad = [
        f"{name} {value}"
        for name, value in (
            ("equity", risk.equity),
            ("maintenance margin", risk.maintenance_margin),
            ("collateral", risk.collateral),
        )
        if not math.isfinite(value)
    ]
    bad += [
        f"{p.symbol} notional {p.notional}" for p in risk.positions if not math.isfinite(p.notional)
    ]
    return ", ".join(bad)


def _scope_value(kind: RuleKind, risk: ScopeRisk, peak: float | None) -> float | None:
    if kind is RuleKind.MARGIN_RATIO:
        if risk.margin_ratio is not None:
            return risk.margin_ratio
        return math.inf if risk.positions else None
    if kind is RuleKind.EQUITY:
        return risk.equity
    if kind is RuleKind.DRAWDOWN:
        if peak is None or peak <= 0:
            return None
        return max(peak - risk.equity, 0.0) / peak
    if kind is RuleKind.FUNDING_COST:
        return risk.funding_cost_per_day
    if kind is RuleKind.FUNDING_COST_PCT:
        if risk.equity > 0:
            return risk.funding_cost_per_day / risk.equity
        return math.inf if risk.funding_cost_per_day > 0 else None
    if kind is RuleKind.FUNDING_RUNWAY:
        return risk.funding_runway_hours
    if kind is RuleKind.SHOCK:
        return risk.shock_to_liquidation if risk.positions else None
    raise ValueError(f"not a scope rule: {kind}")  # pragma: no cover


def _annualized(p: PositionRisk) -> float | None:
    if p.funding_rate_per_hour is None:
        return None
    return abs(p.funding_rate_per_hour) * HOURS_PER_YEAR


def evaluate(
    obs: Observation, now: float, state: AlertState, rules: AlertRules
) -> tuple[list[Transition], AlertState]:
    """Evaluate one batch at ``now`` (epoch s); return the transitions and the new state.

    Order: feed status changes first (so inhibition applies to this batch), then the venue's
    liquidation reports, the recomputed scopes, vanished scopes, monitor health, and last the
    timers of every alert this batch did not touch (pending ``for`` and repeats).
    """
    ev = _Eval(state, now, rules)
    for fs in obs.feeds:
        ev.feed(fs)
    for key, sym in obs.liquidated:
        ev.liquidated(key, sym)
    for group, detail in obs.quarantined:
        ev.quarantined(group, detail)
    inhibited = held_venues(ev.stale)
    accounts = held_accounts(ev.stale)
    for risk in obs.risks:
        ev.scope(risk, risk.venue in inhibited or account_held(str(risk.key.account_key), accounts))
    for key, value, source in obs.venue_ratios:
        ev.venue_ratio(key, value, source)
    for key, symbol, detail in obs.deleveraged:
        ev.adl(key, symbol, detail)
    for key in obs.vanished:
        ev.vanished(key)
    for key in obs.forgotten:
        ev.forgotten(key)
    if obs.health is not None:
        ev.health(obs.health)
    ev.timers()
    return ev.out, ev.state()


def with_mutes(state: AlertState, mutes: Sequence[Mute]) -> AlertState:
    """``state`` with the mutes in force replaced (the store is their source of truth)."""
    return replace(state, mutes=tuple(mutes))
