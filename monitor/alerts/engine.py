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

Times are epoch seconds (UTC) passed in as ``now``: nothing here reads a clock. The daemon
passes a ``now`` that advances with the monotonic clock (durations never jump with the wall
clock) and the wall clock as ``wall`` for what people see (:func:`evaluate_in_place`).

Cost: :func:`evaluate` is pure and copies the state it is given (O(state)); an engine keeps an
:class:`AlertBook` (alerts indexed by scope and group, timers in a heap) and calls
:func:`evaluate_in_place`, whose cost follows the scopes evaluated and the timers due, and
which returns the :class:`AlertDelta` to persist.
"""

from __future__ import annotations

import heapq
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
from monitor.model.fastpath import PEAK_SLACK
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
    detail: str = ""
    """Why an event-driven alert is active (a feed's error, an expired channel), kept so a
    pending alert fires, and repeats, with its reason."""


@dataclass(frozen=True, slots=True)
class AlertState:
    """Everything the engine remembers between evaluations.

    ``peaks``: peak equity per scope (drawdown); ``positions``: per scope, the last
    liquidation distance of each position that was within ``liquidated_near`` of its
    liquidation price (a position that closes from there is reported liquidated; the others
    are not kept); ``stale``: ``venue/channel`` of feeds
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


def scope_of(subject: str) -> str:
    """The scope an alert subject belongs to (``scope#SYMBOL`` → ``scope``)."""
    return subject.split("#", 1)[0]


#: a held or muted alert whose timer came due is looked at again this much later (seconds)
RECHECK = 1.0


@dataclass(frozen=True, slots=True)
class AlertDelta:
    """What one evaluation changed in an :class:`AlertBook`, for the store: ``upserts`` (the
    records as they are now), ``deletes`` (keys gone), ``peaks`` ((scope, peak equity or None
    when it went)) and ``stale`` (the whole stale-feed map when it changed, else None)."""

    upserts: tuple[AlertRecord, ...] = ()
    deletes: tuple[str, ...] = ()
    peaks: tuple[tuple[str, float | None], ...] = ()
    stale: Mapping[str, str] | None = None

    def __bool__(self) -> bool:
        return bool(self.upserts or self.deletes or self.peaks or self.stale is not None)


class AlertBook:
    """The alert state one engine owns and changes in place, indexed so that the cost of an
    evaluation is proportional to what it looks at, not to the number of active alerts:

    * ``alerts`` by key, with an index by scope (the subject before ``#``) and by group;
    * a heap of timers: when each pending alert is due (``due``) and when each firing one is
      due a repeat (``last_sent + repeat[severity]``); an evaluation pops only those due;
    * ``peaks``, ``positions``, ``stale``, ``mutes`` as in :class:`AlertState`.

    :func:`evaluate_in_place` changes it and returns the :class:`AlertDelta`; :func:`evaluate`
    stays pure by working on a fresh book built from an :class:`AlertState` (O(state))."""

    __slots__ = (
        "_by_group",
        "_by_scope",
        "_due",
        "_heap",
        "alerts",
        "firing",
        "held",
        "mutes",
        "peaks",
        "positions",
        "stale",
    )

    def __init__(self, state: AlertState | None = None, rules: AlertRules | None = None) -> None:
        state = state if state is not None else AlertState()
        self.alerts: dict[str, AlertRecord] = {}
        self.peaks: dict[str, float] = dict(state.peaks)
        self.positions: dict[str, Mapping[str, float | None]] = dict(state.positions)
        self.stale: dict[str, str] = dict(state.stale)
        self.mutes: tuple[Mute, ...] = state.mutes
        self._by_scope: dict[str, dict[str, None]] = {}
        self._by_group: dict[str, dict[str, None]] = {}
        self._due: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []
        self.firing = 0
        """How many of ``alerts`` are firing (kept by :meth:`put` and :meth:`drop`)."""
        self.held: dict[str, None] = {}
        """Alerts whose timer came due while a stale feed held them (re-checked every
        :data:`RECHECK` seconds, and at once when a feed recovers)."""
        for key, rec in state.alerts.items():
            self.put(key, rec, rules)

    # -- records and their indexes -------------------------------------------------------------
    def put(self, key: str, rec: AlertRecord, rules: AlertRules | None) -> None:
        old = self.alerts.get(key)
        if old is None:
            self._by_scope.setdefault(scope_of(rec.subject), {})[key] = None
            self._by_group.setdefault(rec.group, {})[key] = None
        elif old.status is AlertStatus.FIRING:
            self.firing -= 1
        if rec.status is AlertStatus.FIRING:
            self.firing += 1
        self.alerts[key] = rec
        if rules is not None:
            self.schedule(key, rec, rules)

    def drop(self, key: str) -> AlertRecord | None:
        rec = self.alerts.pop(key, None)
        if rec is None:
            return None
        if rec.status is AlertStatus.FIRING:
            self.firing -= 1
        for index, name in ((self._by_scope, scope_of(rec.subject)), (self._by_group, rec.group)):
            keys = index.get(name)
            if keys is not None:
                keys.pop(key, None)
                if not keys:
                    del index[name]
        self._due.pop(key, None)
        self.held.pop(key, None)
        return rec

    def has_alerts(self, scope: str) -> bool:
        """``scope`` (``venue:account/scope``) has an alert, its own or one of its
        positions', pending or firing."""
        return scope in self._by_scope

    def keys_of(self, scope: str) -> list[str]:
        """Keys of the alerts of ``scope`` and of its positions (a copy: safe to change)."""
        return list(self._by_scope.get(scope, ()))

    def keys_of_group(self, group: str) -> list[str]:
        """Keys of the alerts of message group ``group`` (``venue:account``, ...)."""
        return list(self._by_group.get(group, ()))

    def groups(self) -> list[str]:
        return list(self._by_group)

    def firing_of(self, scope: str) -> list[str]:
        """``severity:rule[#SYMBOL]`` of the firing alerts of ``scope``."""
        out = []
        for k in self._by_scope.get(scope, ()):
            rec = self.alerts[k]
            if rec.status is AlertStatus.FIRING:
                out.append(
                    f"{rec.severity.value}:{rec.rule}" + (f"#{rec.symbol}" if rec.symbol else "")
                )
        return out

    # -- timers --------------------------------------------------------------------------------
    @staticmethod
    def due_of(rec: AlertRecord, rules: AlertRules) -> float | None:
        """When ``rec`` next needs a look with nothing new about it: a pending alert at its
        ``due``, a firing one when its repeat is due (at once when it was never sent)."""
        if rec.status is AlertStatus.PENDING:
            return rec.due
        if rec.last_sent is None:
            return -math.inf
        t = rec.last_sent + rules.repeat_for(rec.severity)
        return t if t < math.inf else None

    def schedule(self, key: str, rec: AlertRecord, rules: AlertRules) -> None:
        self.set_due(key, self.due_of(rec, rules))

    def set_due(self, key: str, t: float | None) -> None:
        if t is None or math.isnan(t):
            self._due.pop(key, None)
            return
        if self._due.get(key) == t:
            return
        self._due[key] = t
        heapq.heappush(self._heap, (t, key))
        if len(self._heap) > 2 * len(self._due) + 1024:  # drop the superseded entries
            self._heap = [(t, k) for k, t in self._due.items()]
            heapq.heapify(self._heap)

    def pop_due(self, now: float) -> list[str]:
        """Keys whose timer is at or before ``now``; they leave the heap (reschedule them)."""
        out = []
        heap, due = self._heap, self._due
        while heap and heap[0][0] <= now:
            t, key = heapq.heappop(heap)
            if due.get(key) == t:
                del due[key]
                out.append(key)
        return out

    def reschedule(self, rules: AlertRules) -> None:
        """Every timer again (the repeat intervals changed: a reload)."""
        self._due.clear()
        self._heap.clear()
        for key, rec in self.alerts.items():
            self.schedule(key, rec, rules)

    def view(self) -> AlertState:
        """The book as an :class:`AlertState` (the live maps, not a copy: read only)."""
        return AlertState(
            alerts=self.alerts,
            peaks=self.peaks,
            positions=self.positions,
            stale=self.stale,
            mutes=self.mutes,
        )


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


#: each rule's name, read without the enum's ``value`` property (every rule of every scope)
_RULE_NAMES: dict[RuleKind, str] = {k: k.value for k in RuleKind}


class _Eval:
    """One evaluation's working copy (local and short-lived; the function stays pure)."""

    def __init__(
        self, book: AlertBook, now: float, rules: AlertRules, wall: float | None = None
    ) -> None:
        self.now = now
        self.wall = now if wall is None else wall
        self._wall_text = f"{self.wall:.6f}"  # in every transition's id
        self.rules = rules
        self.book = book
        self.alerts: Mapping[str, AlertRecord] = book.alerts
        self.peaks: Mapping[str, float] = book.peaks
        self.positions: Mapping[str, Mapping[str, float | None]] = book.positions
        self.out: list[Transition] = []
        self.touched: set[str] = set()
        self.events_done: set[str] = set()
        self.changed: dict[str, bool] = {}
        """Keys changed by this evaluation → whether the key existed before it."""
        self.peaks_changed: dict[str, None] = {}
        self.stale_changed = False
        self.event_ids: dict[str, int] = {}
        """Ids of this evaluation's EVENT transitions → how many have it (two ADL fills of
        one position in one batch: the second is ``…/event#1``)."""

    @property
    def stale(self) -> Mapping[str, str]:
        return self.book.stale

    @property
    def mutes(self) -> tuple[Mute, ...]:
        return self.book.mutes

    def _put(self, key: str, rec: AlertRecord) -> None:
        old = self.alerts.get(key)
        if old is not rec and key not in self.changed:
            self.changed[key] = old is not None
        self.book.put(key, rec, self.rules)

    def _drop(self, key: str) -> None:
        if key in self.alerts and key not in self.changed:
            self.changed[key] = True
        self.book.drop(key)

    def _set_peak(self, scope: str, peak: float | None) -> None:
        if peak is None:
            if self.book.peaks.pop(scope, None) is None:
                return
        else:
            self.book.peaks[scope] = peak
        self.peaks_changed[scope] = None

    def delta(self) -> AlertDelta:
        alerts = self.alerts
        return AlertDelta(
            upserts=tuple(alerts[k] for k in self.changed if k in alerts),
            deletes=tuple(k for k, existed in self.changed.items() if existed and k not in alerts),
            peaks=tuple((s, self.peaks.get(s)) for s in self.peaks_changed),
            stale=dict(self.book.stale) if self.stale_changed else None,
        )

    # -- emitting ------------------------------------------------------------------------------
    def _muted(self, rec: AlertRecord, severity: Severity) -> bool:
        return is_muted(self.mutes, rec.subject, rec.rule, severity is Severity.CRITICAL, self.wall)

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
        tid = f"{rec.key}@{self._wall_text}/{kind.value}"
        if kind is TransitionKind.EVENT:
            # notices are facts, each its own: ids unique within the batch (the history's
            # primary key; the renderers key figures by id)
            seen = self.event_ids.get(tid, 0)
            self.event_ids[tid] = seen + 1
            if seen:
                tid = f"{tid}#{seen}"
        self.out.append(
            Transition(
                id=tid,
                kind=kind,
                key=rec.key,
                rule=rec.rule,
                severity=rec.severity,
                group=rec.group,
                subject=rec.subject,
                at=self.wall,
                # shown to people: the wall clock less the (monotonic) time it has been active
                since=self.wall
                - (self.now - (rec.fired_at if rec.fired_at is not None else rec.since)),
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
        self._drop(rec.key)
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
        key = alert_key(_RULE_NAMES[kind], subject)
        prev = self.alerts.get(key)
        direction = DIRECTIONS[kind]
        if prev is None:
            # the common case (every rule of every scope evaluated): nothing active, and
            # nothing to add to ``touched`` unless a record is made (the timers only look at
            # keys that have one)
            if value is None or math.isnan(value):
                return  # nothing to fire on (unknown proves nothing: fail closed)
            rule = self.rules.rule(kind, account)
            if rule is None:
                return
            lv = active_level(rule.levels_for(symbol), direction, value, None)
            if lv is None:
                return
            self.touched.add(key)
            if lv.severity is Severity.CRITICAL:
                # fires at once (a critical has no ``for``): the record :meth:`_fire` would
                # make of a pending one, made once (a crash makes one per scope and position)
                name = _RULE_NAMES[kind]
                muted = is_muted(self.mutes, subject, name, True, self.wall)
                rec = AlertRecord(
                    key=key,
                    rule=name,
                    subject=subject,
                    group=group,
                    status=AlertStatus.FIRING,
                    severity=lv.severity,
                    since=self.now,
                    venue=venue,
                    symbol=symbol,
                    fired_at=self.now,
                    last_sent=None if muted else self.now,
                    value=value,
                    threshold=lv.fire,
                    peak=value,
                )
                self._emit(TransitionKind.FIRED, rec, muted=muted, risk=risk)
                self._put(key, rec)
                return
        else:
            self.touched.add(key)
            if value is not None and math.isnan(value):
                return  # unknown: proves nothing, so it neither fires nor resolves (fail closed)
            rule = self.rules.rule(kind, account)
            levels = rule.levels_for(symbol) if rule is not None else ()
            current = prev.severity if prev.status is AlertStatus.FIRING else None
            lv = active_level(levels, direction, value, current)
            if lv is None:
                if value is None:
                    # the figure no longer exists (no liquidation price, no move that
                    # liquidates, no positions): said so, never the last value's "now 0.00%"
                    self._resolve(replace(prev, value=None), _GONE.get(kind, ""), risk)
                else:
                    self._resolve(replace(prev, value=value), "", risk)
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
            self._put(key, rec)
            return
        peak = value if prev.peak is None else _worse(direction, prev.peak, value)
        rec = replace(prev, value=value, threshold=lv.fire, peak=peak)
        self._put(key, self._keep_firing(rec, lv.severity, "", risk))

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
            rec = replace(rec, detail=detail)
            if pending_for > 0.0:
                self._put(key, replace(rec, due=self.now + pending_for))
                return
            self._put(key, self._fire(rec, detail, None))
            return
        if prev.status is AlertStatus.PENDING:
            rec = replace(prev, severity=severity, detail=detail)
            due = prev.due
            self._put(key, self._fire(rec, detail, None) if due is None or self.now >= due else rec)
            return
        self._put(key, self._keep_firing(replace(prev, detail=detail), severity, detail, None))

    # -- scopes ----------------------------------------------------------------------------
    def scope(self, risk: ScopeRisk, inhibited: bool) -> None:
        subject = str(risk.key)
        account = str(risk.key.account_key)
        unknown = _unknown_figures(risk) if risk.figures_unknown else ""
        if unknown:
            # no distance is known: the kept ones stand (a position near its liquidation
            # price that vanishes next is still told "liquidated")
            kept = self.positions.get(subject, {})
            cur = {p.symbol: kept.get(p.symbol, p.liquidation_distance) for p in risk.positions}
        else:
            cur = {p.symbol: p.liquidation_distance for p in risk.positions}
        self._closed(risk.key, cur, risk)
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
            self.touched.update(self.book.keys_of(subject))
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
            if risk.equity > 0 and subject not in self.peaks:
                # a scope's first peak is recorded even from held figures: its band then
                # watches ``peak·(1 + slack)``, so a rally while held is evaluated (and kept
                # for recovery, :func:`decision_held`); without one nothing but a decision
                # would see the rally's top (a fresh store's whole book, if its feed is stale
                # through the start-up evaluation). A later, higher equity replaces it.
                self._set_peak(subject, risk.equity)
            self.touched.update(self.book.keys_of(subject))
            return
        peak = self.peaks.get(subject)
        if risk.equity > 0 and (peak is None or risk.equity > peak):
            self._set_peak(subject, risk.equity)
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
        """Positions of ``key`` that are gone now (``cur``: symbol → liquidation distance of
        those it holds): one that was within ``liquidated_near`` of its liquidation price is
        reported liquidated (unconfirmed; judged by its kept distance or, when none was kept
        after a reload or a restart, by its liquidation-distance alert's last value, which
        ``near`` may now cover), and the alerts on every position it no longer
        holds resolve ("position closed"; also those restored after a restart, whose position
        closed while the daemon was away)."""
        subject = str(key)
        prev = self.positions.get(subject, {})
        for sym, dist in prev.items():
            if sym in cur:
                continue
            near = dist is not None and dist <= self.rules.liquidated_near
            if near and f"{subject}#{sym}" not in self.events_done:
                self._liquidated(key, sym, confirmed=False, last_distance=dist)
        for k in self.book.keys_of(subject):
            rec = self.alerts[k]
            _, sep, sym = rec.subject.partition("#")
            if sep and sym not in cur:
                # no distance kept (a reload raised ``near`` or switched the notice on, a
                # restart): its distance alert holds the last one (fail closed)
                dist = rec.value if rec.rule == RuleKind.LIQUIDATION_DISTANCE.value else None
                near = dist is not None and dist <= self.rules.liquidated_near
                if near and rec.subject not in self.events_done:
                    self._liquidated(key, sym, confirmed=False, last_distance=dist)
                self.touched.add(k)
                self._resolve(rec, "position closed", risk)
        # kept: only the positions whose closing would say "liquidated" (within
        # ``liquidated_near`` of their liquidation price); a dict per scope of every
        # position's distance was ~86 bytes a position (in-process at 50,000) for none
        near_now = self.rules.liquidated_near if self.rules.liquidated_enabled else -math.inf
        kept = {s: d for s, d in cur.items() if d is not None and d <= near_now}
        if kept:
            self.book.positions[subject] = kept
        else:
            self.book.positions.pop(subject, None)

    def forgotten(self, key: ScopeKey) -> None:
        subject = str(key)
        self.book.positions.pop(subject, None)
        for k in self.book.keys_of(subject):
            self.touched.add(k)
            self._resolve(self.alerts[k], "no longer monitored", None)
        self._set_peak(subject, None)

    def vanished(self, key: ScopeKey) -> None:
        subject = str(key)
        self._closed(key, {}, None)
        for k in self.book.keys_of(subject):
            self.touched.add(k)
            self._resolve(self.alerts[k], "scope closed", None)
        self._set_peak(subject, None)

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
        self._notice(
            RuleKind.LIQUIDATED,
            subject,
            str(key.account_key),
            detail,
            venue=key.venue,
            symbol=symbol,
            value=last_distance,
        )

    def quarantined(self, group: str, detail: str) -> None:
        """One critical notice: an event of ``group`` (an account) could not be applied."""
        venue = group.split(":", 1)[0] if ":" in group else None
        self._notice(RuleKind.BAD_EVENT, group, group, detail, venue=venue)

    def adl(self, key: ScopeKey, symbol: str, detail: str) -> None:
        """One critical notice: the venue auto-deleveraged ``symbol`` of scope ``key``."""
        subject = f"{key}#{symbol}"
        group = str(key.account_key)
        self._notice(RuleKind.ADL, subject, group, detail, venue=key.venue, symbol=symbol)

    def _notice(
        self,
        rule: RuleKind,
        subject: str,
        group: str,
        detail: str,
        *,
        venue: str | None,
        symbol: str | None = None,
        value: float | None = None,
    ) -> None:
        """One critical EVENT transition (a fact the venue reported, not a state that
        resolves): muted like any alert of its subject."""
        rec = AlertRecord(
            key=alert_key(rule.value, subject),
            rule=rule.value,
            subject=subject,
            group=group,
            status=AlertStatus.FIRING,
            severity=Severity.CRITICAL,
            since=self.now,
            venue=venue,
            symbol=symbol,
            value=value,
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
            if self.book.stale.get(fk) != fs.state.value:
                self.book.stale[fk] = fs.state.value
                self.stale_changed = True
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
            if fk in self.book.stale:
                del self.book.stale[fk]
                self.stale_changed = True
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
        this evaluation did not look at: only the alerts whose timer came due (a heap)."""
        inhibited = held_venues(self.stale)
        accounts = held_accounts(self.stale)
        book = self.book
        if self.stale_changed and book.held:  # a feed recovered: what it held is due again
            for key in list(book.held):
                rec = self.alerts.get(key)
                if rec is not None:
                    book.schedule(key, rec, self.rules)
            book.held.clear()
        for key in book.pop_due(self.now):
            rec = self.alerts.get(key)
            if rec is None:
                continue
            if key in self.touched:
                book.schedule(key, rec, self.rules)
                continue
            if rec.rule in _HELD_RULES and (
                (rec.venue is not None and rec.venue in inhibited)
                or account_held(rec.group, accounts)
            ):
                book.set_due(key, self.now + RECHECK)  # held: looked at again later
                book.held[key] = None
                continue
            book.held.pop(key, None)
            if rec.status is AlertStatus.PENDING:
                if rec.due is not None and self.now >= rec.due:
                    self._put(key, self._fire(rec, rec.detail, None))
            else:
                self._put(key, self._maybe_repeat(rec, rec.detail, None))
            rec = self.alerts[key]
            t = book.due_of(rec, self.rules)
            if t is not None and t <= self.now:  # muted: its repeat waits for the mute's end
                book.set_due(key, self.now + RECHECK)


_HELD_RULES = frozenset(k.value for k in DIRECTIONS) - {RuleKind.OUTBOX_BACKLOG.value}


def _unknown_figures(risk: ScopeRisk) -> str:
    """Which of the scope's core figures are not finite ("" when all are: the text of
    :attr:`ScopeRisk.figures_unknown`)."""
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


def decision_held(risk: ScopeRisk, book: AlertBook, rules: AlertRules) -> bool:
    """Whether deciding ``risk`` could change the alert state, were its decision not held
    by a stale feed: a dry run of the threshold rules of :meth:`_Eval.scope` (nothing is
    changed). True when the scope or one of its positions has an alert (it may resolve or
    escalate), or when a rule of the scope or of a position has a level active for its
    value; False for a scope with no alert whose figures cross no level.

    The engine keeps only these scopes to decide again when the feed recovers: the others'
    decision ("no alert") is the one recovery would make. Also True when the scope has a
    drawdown rule and its equity is above its recorded peak by more than the band's
    :data:`~monitor.model.fastpath.PEAK_SLACK` (or it has none): a held decision does not
    record the peak, and the band the scope keeps has no equity level above the old peak's
    ``peak·(1 + slack)``, so nothing but a decision would record the rally's top; a fall from
    it would then measure drawdown from the stale peak, and a sweep would record the fallen
    equity as the peak. Within the slack the band still watches ``peak·(1 + slack)``, and
    the recorded peak lags the true one by less than the slack, as between any two
    evaluations. A scope with no peak yet (a new one, or every scope on a fresh store) gets
    its first from the held evaluation itself (:meth:`_Eval.scope`), so that is no reason
    either: before that, a fresh store whose feed was stale through the start-up evaluation
    had its whole book decided again at recovery (1,000,000 positions: 4 of 50 probes
    decided, idle 68 % of a core). Unknown figures are not a reason: they alarm
    even while held.

    Cost: O(rules × positions), no allocation beyond the rule lookups."""
    subject = str(risk.key)
    if book.has_alerts(subject):
        return True
    account = str(risk.key.account_key)
    peak = book.peaks.get(subject)
    rule_of, directions = rules.rule, DIRECTIONS
    if risk.equity > 0 and peak is not None and risk.equity > peak * (1.0 + PEAK_SLACK):
        drawdown = rule_of(RuleKind.DRAWDOWN, account)
        if drawdown is not None and drawdown.levels_for(None):
            return True  # a peak :meth:`_Eval.scope` would record, past the band's slack
    for kind in SCOPE_RULES:
        value = _scope_value(kind, risk, peak)
        if value is None or math.isnan(value):
            continue
        rule = rule_of(kind, account)
        if rule is not None and active_level(rule.levels_for(None), directions[kind], value, None):
            return True
    distance = rule_of(RuleKind.LIQUIDATION_DISTANCE, account)
    funding = rule_of(RuleKind.FUNDING_RATE, account)
    for p in risk.positions:
        for rule, kind, value in (
            (distance, RuleKind.LIQUIDATION_DISTANCE, p.liquidation_distance),
            (funding, RuleKind.FUNDING_RATE, _annualized(p)),
        ):
            if rule is None or value is None or math.isnan(value):
                continue
            if active_level(rule.levels_for(p.symbol), directions[kind], value, None):
                return True
    return False


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


#: why a rule's figure is None, said in its resolve (``now n/a (…)``)
_GONE: dict[RuleKind, str] = {
    RuleKind.MARGIN_RATIO: "no positions left",
    RuleKind.LIQUIDATION_DISTANCE: "no liquidation price: nothing liquidates the position",
    RuleKind.SHOCK: "no market-wide move liquidates it",
    RuleKind.DRAWDOWN: "no peak equity to measure from",
}


def _annualized(p: PositionRisk) -> float | None:
    if p.funding_rate_per_hour is None:
        return None
    return abs(p.funding_rate_per_hour) * HOURS_PER_YEAR


def evaluate(
    obs: Observation, now: float, state: AlertState, rules: AlertRules
) -> tuple[list[Transition], AlertState]:
    """Evaluate one batch at ``now`` (epoch s); return the transitions and the new state.
    Pure: ``state`` is not changed (the work is done on a copy, O(size of the state)); an
    engine that keeps its state between batches uses :func:`evaluate_in_place`.

    Order: feed status changes first (so inhibition applies to this batch), then the venue's
    liquidation reports, the recomputed scopes, vanished scopes, monitor health, and last the
    timers of every alert this batch did not touch (pending ``for`` and repeats).
    """
    book = AlertBook(state, rules)
    transitions, _ = evaluate_in_place(obs, now, book, rules)
    return transitions, book.view()


def evaluate_in_place(
    obs: Observation,
    now: float,
    book: AlertBook,
    rules: AlertRules,
    *,
    wall: float | None = None,
) -> tuple[list[Transition], AlertDelta]:
    """:func:`evaluate` on a book the caller owns, changed in place; returns the transitions
    and what changed. The cost is proportional to the scopes in ``obs`` and the alerts whose
    timer came due, not to the number of active alerts.

    ``now`` is the time durations are measured on (``for``, repeats: monotonic in the
    daemon); ``wall`` (default ``now``) is the wall clock: the transitions' ``at`` and id,
    and the mutes' expiry (a mute's end is a wall-clock instant the user typed)."""
    ev = _Eval(book, now, rules, wall)
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
    return ev.out, ev.delta()


def with_mutes(state: AlertState, mutes: Sequence[Mute]) -> AlertState:
    """``state`` with the mutes in force replaced (the store is their source of truth)."""
    return replace(state, mutes=tuple(mutes))
