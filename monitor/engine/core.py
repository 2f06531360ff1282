"""The engine (pure and synchronous): ``Engine.receive(inputs, now) -> Step``.

The one owner of the portfolio, the alert state, the sweep schedule, readiness and the status
and history decisions. It reads no clock, opens no socket and writes no file: what the shell
must do is in the :class:`Step` it returns, which the shell persists in one transaction.
The model is python-websockets' protocol object (data in, events and data out); the live
daemon, ``monitor run --replay`` and ``monitor replay`` drive the same engine.

Inputs are the feeds' events (:mod:`monitor.model.events`) and the shell's control inputs:

* :class:`Mutes`: the mutes in force (the store is their source of truth);
* :class:`OutboxHealth`: undelivered rows and channels whose rows expired;
* :class:`Reconfigure`: a reloaded configuration (rules, accounts; manual snapshots come in
  as ordinary :class:`~monitor.model.events.AccountSnapshot` events);
* an empty batch is an idle tick: timers (``for``, repeats), the sweep, readiness.

Per tick a price takes the fast path: a scope is evaluated in full only when a price left its
trigger band and crossed an alert level, when an account, position or instrument event touched
it, or when the round-robin sweep reaches it: every scope holding an instrument whose price or
funding moved since the last round is evaluated in full within :data:`SWEEP_INTERVAL` seconds,
or at :data:`SWEEP_RATE` scopes per second when the book is larger (funding, shock and stress
figures are not part of the bands: a large book's shock and funding figures are refreshed
less often, its price decisions never wait for them); a scope nothing moved is not swept at
all, so an idle book costs nothing. A reload sweeps every scope once.

Bounded work: inputs are applied until they have changed :data:`APPLY_WORK` holdings, or
crossed that many bands (the rest wait for the next ``receive``, in order; a price's crossed
bands beyond that are reported in the next receives, nearest first); at most
``max_evaluations`` scopes are evaluated in full per ``receive``: account events are decided
at once, prices that left their band, feeds live again and the sweep share the rest, and
what is left is carried to the next ``receive`` (:attr:`Engine.busy`: the shell steps again
at once, after yielding to the event loop).
Owed scopes are taken **most urgent first**: by the margin ratio of their last full
evaluation, highest first (a scope never evaluated, or whose ratio was unknown, before any),
so in a crash the accounts nearest liquidation are decided, written and notified before the
comfortable ones. The shell keeps the sweep out of frames' batches (``receive(...,
sweep=False)``) and sizes ``max_evaluations`` so a step stays short.

Fail closed: an event that raises while it is applied is quarantined (``Step.quarantined``,
one critical ``bad_event`` notice per account) and the engine goes on; a scope whose figures
are not finite alarms (``margin_unknown``) and resolves nothing. So does a scope whose
figures raise when it is evaluated (a margin-model bug on an odd tier, a sum that
overflows): it is decided as unknown (NaN figures), the other scopes of the receive as ever;
the failure is reported once until the scope recovers (``Step.figures_failed``,
``Step.figures_recovered``: the shell logs them), and the scope, kept without a price band,
is evaluated again on each price of its instruments until its figures compute. A scope
whose band cannot be built (``Portfolio.arm`` raises) is decided on its figures and
evaluated in full on each price instead of re-checked against a band.

Times: ``now`` is epoch seconds (UTC) as the alert rules see it (the recording's time in a
replay); ``mono`` is the shell's monotonic clock, used for readiness only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import heapq
import itertools
import math
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from monitor.alerts.engine import (
    AlertBook,
    AlertDelta,
    AlertState,
    Health,
    Observation,
    Transition,
    TransitionKind,
    account_held,
    decision_held,
    evaluate_in_place,
    held_accounts,
    held_venues,
    scope_of,
)
from monitor.alerts.mutes import Mute
from monitor.alerts.rules import AlertRules, RuleKind
from monitor.alerts.thresholds import AccountLevels, account_levels, thresholds_from_rules
from monitor.engine.status import Sample, Sampler, status_doc
from monitor.margin.risk import PositionRisk, ScopeRisk
from monitor.model.events import (
    AccountSnapshot,
    BalanceUpdate,
    Deleveraged,
    Event,
    FeedState,
    FeedStatus,
    FundingPayment,
    FundingRate,
    InstrumentSpec,
    Liquidated,
    MarkPrice,
    PositionUpdate,
    VenueMarginRatio,
)
from monitor.model.fastpath import Thresholds
from monitor.model.portfolio import Portfolio
from monitor.model.positions import CROSS_SCOPE, AccountKey, ScopeKey, isolated_scope

#: every scope whose instruments moved is evaluated in full at least this often (seconds):
#: funding, shock and stress (a book larger than ``SWEEP_RATE × SWEEP_INTERVAL`` scopes takes
#: longer: see :data:`SWEEP_RATE`)
SWEEP_INTERVAL = 5.0
#: the sweep evaluates at most this many scopes per second (of the alert clock): about a
#: quarter of a core at ~0.25 ms per full evaluation, so a large book's refresh stretches
#: (40,000 scopes: one round in 40 s) instead of saturating the core the prices need
SWEEP_RATE = 1000.0
#: timers (pending ``for``, repeats) run at most this often (seconds of ``now``)
TICK_INTERVAL = 1.0
#: rearms (a band check of a scope a price moved) allowed per full evaluation of the budget
REARMS_PER_EVALUATION = 4
#: a sweep slice of n scopes looks at most ``SWEEP_LOOK × n`` queued scopes (those evaluated
#: since the round began are skipped), and a round's market is queued ``SWEEP_EXPAND``
#: holders at a time: both bound a slice's cost when a popular instrument's holders (20,000
#: at 100k positions, 200,000 at 1M) come up, most of them evaluated already (one slice of
#: 50 scopes took 35 ms at 100k, in the daemon, looking through them)
SWEEP_LOOK = 8
SWEEP_EXPAND = 512
#: holdings an engine receive may change by applying inputs (an instrument specification
#: changes every holder of its instrument: 100,000 positions cost ~2 s at once; a price, the
#: holders whose band it crossed: a crash's 60 prices crossed 1,000,000 bands in one 4.4 s
#: step); the inputs after the one that crosses it wait for the next receive, in order
#: (:attr:`Engine.busy`), and a price reports no more bands than are left of it (the rest in
#: the next receives, nearest bound first: one price crossing its ~210,000 holders' bands was
#: a 1.45 s step at 1,000,000 positions)
APPLY_WORK = 5000
#: how much of an event a quarantine record keeps
QUARANTINE_COPY = 300
#: how much of an exception's text a :class:`FiguresFailed` keeps (type and message)
FIGURES_ERROR_COPY = 200


@dataclass(frozen=True, slots=True)
class Mutes:
    """The mutes in force, as the store has them."""

    mutes: tuple[Mute, ...]


@dataclass(frozen=True, slots=True)
class OutboxHealth:
    """The delivery side's health: undelivered rows, channels whose rows expired."""

    backlog: int
    failing_channels: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Reconfigure:
    """A reloaded configuration. ``accounts``: every configured account (address and
    manual); ``expected``: the address accounts whose first snapshot readiness waits for;
    ``removed``: manual accounts that left the configuration (they leave the portfolio)."""

    rules: AlertRules
    accounts: frozenset[AccountKey]
    expected: frozenset[AccountKey] = frozenset()
    removed: tuple[AccountKey, ...] = ()
    fed_manual: frozenset[AccountKey] = frozenset()
    """Manual accounts a configured feed prices (see :class:`Engine`)."""


Input = Event | Mutes | OutboxHealth | Reconfigure


@dataclass(frozen=True, slots=True)
class Quarantined:
    """An event that raised while it was applied: kept for the log, never applied again."""

    venue: str
    account: str | None
    error: str
    event: str


@dataclass(frozen=True, slots=True)
class FiguresFailed:
    """A scope whose figures raised when it was evaluated, reported once until it recovers.

    ``stage``: ``"figures"`` (``Portfolio.risk`` raised: the scope was decided as unknown)
    or ``"band"`` (``Portfolio.arm`` raised: decided on its figures, evaluated in full on
    each price meanwhile). ``error``: ``"Type: message"``, at most
    :data:`FIGURES_ERROR_COPY` characters (no figures of the scope beyond what the message
    says)."""

    key: ScopeKey
    stage: str
    error: str


@dataclass(slots=True)
class Step:
    """What the shell must do after one ``receive``.

    ``transitions``: alert transitions to log, record and notify (rendered per channel by the
    shell); ``delta``: the alert state changes to persist (None when nothing changed);
    ``risks``: the scopes evaluated in full, with ``statuses`` their status
    documents; ``removed``: scopes gone from the book (vanished or forgotten), whose status
    rows go; ``samples``: risk-history rows; ``feeds``: feed status changes; ``funding``:
    funding the venue booked; ``quarantined``: events that could not be applied;
    ``figures_failed``: scopes whose figures began to raise in this receive (each once until
    it recovers), ``figures_recovered``: scopes whose figures compute again;
    ``ready``: the status line, once, when the engine becomes ready.
    """

    transitions: list[Transition] = field(default_factory=list)
    delta: AlertDelta | None = None
    risks: list[ScopeRisk] = field(default_factory=list)
    statuses: dict[ScopeKey, dict[str, object]] = field(default_factory=dict)
    removed: list[ScopeKey] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    feeds: list[FeedStatus] = field(default_factory=list)
    funding: list[FundingPayment] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    figures_failed: list[FiguresFailed] = field(default_factory=list)
    figures_recovered: list[ScopeKey] = field(default_factory=list)
    ready: str | None = None

    @property
    def alert_state_changed(self) -> bool:
        return self.delta is not None


class Owed:
    """Scopes owed work, the most urgent first (a heap with membership; pure).

    ``push(key, urgency)``: lower urgency comes out first, ties in arrival order; a key
    already owed keeps its place, or moves up to ``urgency`` when that is lower (more urgent:
    a scope a later price put at critical); it never moves down. NaN counts as ``-inf``.
    ``discard`` forgets a key (its heap entries are skipped when they surface). Cost:
    O(log n) per push and pop."""

    __slots__ = ("_heap", "_in", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, ScopeKey]] = []
        self._in: dict[ScopeKey, float] = {}
        """Each owed key → its urgency (the heap entry that counts; older ones are skipped)."""
        self._seq = 0

    def push(self, key: ScopeKey, urgency: float) -> None:
        if math.isnan(urgency):  # NaN (unknown): first of all, as ``-inf`` (fail closed)
            urgency = -math.inf
        was = self._in.get(key)
        if was is not None and not urgency < was:
            return
        self._in[key] = urgency
        self._seq += 1
        heapq.heappush(self._heap, (urgency, self._seq, key))
        if was is not None:
            self._compact()

    def pop(self) -> ScopeKey | None:
        heap, owed = self._heap, self._in
        while heap:
            urgency, _, key = heapq.heappop(heap)
            if owed.get(key) == urgency:
                del owed[key]
                return key
        return None

    def discard(self, key: ScopeKey) -> None:
        if self._in.pop(key, None) is not None:
            self._compact()

    def _compact(self) -> None:
        if len(self._heap) > 2 * len(self._in) + 1024:  # the superseded entries go
            owed = self._in
            self._heap = [e for e in self._heap if owed.get(e[2]) == e[0]]
            heapq.heapify(self._heap)

    def __contains__(self, key: object) -> bool:
        return key in self._in

    def __len__(self) -> int:
        return len(self._in)

    def __bool__(self) -> bool:
        return bool(self._in)


@dataclass(slots=True)
class _Batch:
    """What one ``receive`` collected before deciding."""

    touched: dict[ScopeKey, None] = field(default_factory=dict)
    moved: dict[ScopeKey, None] = field(default_factory=dict)
    later: dict[ScopeKey, None] = field(default_factory=dict)
    """Scopes to decide again that may wait for the evaluation budget (a feed live again)."""
    liquidated: list[tuple[ScopeKey, str]] = field(default_factory=list)
    feeds: list[FeedStatus] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    deleveraged: list[tuple[ScopeKey, Deleveraged, ScopeRisk | None]] = field(default_factory=list)
    venue_ratios: list[tuple[ScopeKey, float, str]] = field(default_factory=list)


#: the scope of an account that carries the venue's own margin ratio (VenueMarginRatio)
VENUE_RATIO_SCOPE = "venue-ratio"


class Engine:
    """See the module docstring. Build it with the restored alert state and the rules."""

    def __init__(
        self,
        rules: AlertRules,
        *,
        state: AlertState | None = None,
        rule_sets: dict[str, str] | None = None,
        accounts: Iterable[AccountKey] = (),
        expected: Iterable[AccountKey] = (),
        sample_interval: float = 60.0,
        change_threshold: float = 0.05,
        ready_timeout: float = 60.0,
        started: float = 0.0,
        replay: bool = False,
        max_evaluations: int = 800,
        fed_manual: Iterable[AccountKey] = (),
        sweep_slice: int = 20,
        full: bool = False,
        timer: Callable[[], float] | None = None,
    ) -> None:
        self.rules = rules
        self.timer = timer
        """Seconds of some monotonic clock, given by the shell (``time.perf_counter``) to
        measure :attr:`decide_seconds`; the engine reads no clock of its own."""
        self.full = full
        """Evaluate every scope an event touches, prices included (no price bands): what
        ``monitor replay`` prints, one line per touched scope and frame."""
        self.max_evaluations = max_evaluations
        self.sweep_slice = sweep_slice
        """Scopes the sweep evaluates per receive at most: under load the sweep falls behind
        (its refresh interval stretches) rather than delay the price decisions. A slice is a
        step a price frame may wait behind: 50 scopes (~5–10 ms at 100,000 positions) set
        ``benchmarks/daemon.py``'s p99 frame→decision at 9–12 ms, 20 at 2.8–7.5 ms (with
        :data:`~monitor.store.history.ROWS_PER_TRANSACTION` 250; three runs).
        ``max_evaluations``: scopes evaluated in full per receive at most (the rest is owed;
        the shell may change it between receives to keep a step short)."""
        self.sweep_rate = SWEEP_RATE
        """Scopes the sweep evaluates per second at most (see :data:`SWEEP_RATE`)."""
        self._deferred: list[Input] = []
        """Inputs over the :data:`APPLY_WORK` of the receive that got them, in order."""
        self._levels: dict[str, AccountLevels] = {}
        """Each account's alert levels for its bands (kept until the rules change); accounts
        with equal levels share one object (:attr:`_shared_levels`)."""
        self._shared_levels: dict[AccountLevels, AccountLevels] = {}
        """One object per distinct levels: most accounts have no override of their own, and a
        copy each held ~57 B a position at 20,000 accounts."""
        self._owed = Owed()
        """Scopes to evaluate in full, over the budget of the receive that found them."""
        self._moved = Owed()
        """Scopes a price took out of their band, not yet re-checked (rearm)."""
        self.fed_manual = frozenset(fed_manual)
        """Manual accounts priced by a configured feed: their scopes are not evaluated from
        the typed-in marks while the feed has not priced them (issue 10.8), for at most
        ``ready_timeout``; after that they are, and their alerts say so."""
        self._waiting: dict[ScopeKey, None] = {}
        self._held: dict[ScopeKey, None] = {}
        """Scopes evaluated while a stale feed held their alerts, whose decision could change
        the alert state (:func:`~monitor.alerts.engine.decision_held`): their band keeps the
        zone of that evaluation, whose decision was held, so the feed's recovery decides them
        again (a scope with no alert then may have crossed a level meanwhile). A scope held
        in the quiet zone, with no new equity peak to record, is not kept: recovery would
        decide "no alert" too, and at 1,000,000 positions a feed stale through a start-up's
        sweep held ~400,000 of them."""
        self._clock = started
        self._dirty: dict[tuple[str, str], None] = {}
        """Instruments (venue, symbol) whose price or funding moved since the sweep last
        took them: only their holders have figures (funding, shock, stress) to refresh."""
        self._anchor: tuple[float, float] | None = None
        self.book = AlertBook(state, rules)
        """The alert state, owned and changed in place (indexed by scope, timers in a heap)."""
        self.portfolio = Portfolio(rule_sets)
        self.accounts = frozenset(accounts)
        self.expected = frozenset(expected)
        self.sampler = Sampler(sample_interval, change_threshold)
        self.ready_timeout = ready_timeout
        self.started = started
        self.replay = replay
        self.ready = False
        self.ratios: dict[ScopeKey, float | None] = {}
        """Each scope evaluated in full: its margin ratio at its latest evaluation
        (:func:`latest_ratio`: ``inf`` for positions and equity ≤ 0, NaN unknown, None for no
        positions and no ratio), what the summary and the order of owed work read. The full
        figures are not kept here: each step carries those it computed (:attr:`Step.risks`),
        and the shell keeps those of scopes with alerts for later messages."""
        self._worst = WorstRatio()
        self.seen_accounts: set[AccountKey] = set()
        self.last_message: dict[str, float] = {}
        self.feed_states: dict[tuple[str, str], FeedStatus] = {}
        self.health = Health()
        self.batches = 0
        self.decide_seconds = 0.0
        """Seconds (by :attr:`timer`; 0 without one) the last receive spent deciding (rearms,
        evaluations, alert rules), not applying its inputs: what the shell sizes
        ``max_evaluations`` from. A measurement only; nothing the engine decides depends on
        it."""
        self.evaluated = 0
        """Scopes evaluated in full so far (the rest of the ticks only compared bands)."""
        self.transitions: Counter[str] = Counter()
        self.quarantine_count: Counter[str] = Counter()
        self._quarantined_accounts: set[str] = set()
        self.figures_failures: Counter[str] = Counter()
        """Evaluations whose figures or band raised, per venue (every one, not once per
        scope)."""
        self._failing: dict[ScopeKey, None] = {}
        """Scopes whose last evaluation raised (:class:`FiguresFailed`): reported when they
        enter, kept without a band and evaluated in full on their next price (``_rearm``)
        until an evaluation succeeds."""
        self._full_sweep = True
        self._sweep_at: float | None = None
        self._sweep_queue: deque[ScopeKey] = deque()
        self._round_markets: deque[tuple[str, str]] = deque()
        """The markets of the current round whose holders are not in the queue yet: each is
        expanded when the queue runs dry (a round of 1,000,000 positions built at once was a
        2 s step)."""
        self._round_holders: Iterator[ScopeKey] | None = None
        """The rest of the market being expanded, :data:`SWEEP_EXPAND` holders at a time (a
        holder added or removed meanwhile may be missed or seen twice: the next round, or the
        round's own skip, covers it)."""
        self._round_at = -1
        """The receive (:attr:`batches`) in which the sweep's current round began: a scope
        evaluated in it or since is skipped by the round (its figures are fresh)."""
        self._evaluated_at: dict[ScopeKey, int] = {}
        """The receive in which each scope was last evaluated in full."""
        self._sweep_size = 0
        self._sweep_credit = 0.0
        self._last_tick: float | None = None
        self._dropped: list[ScopeKey] = []
        self._forget_unconfigured()

    # -- the one entry point ------------------------------------------------------------------
    def receive(
        self, inputs: Sequence[Input], now: float, mono: float | None = None, *, sweep: bool = True
    ) -> Step:
        """Apply ``inputs`` at ``now`` (epoch s) and decide; see the module docstring.

        Never raises for a bad event: it is quarantined. ``mono`` (monotonic seconds) drives
        the readiness timeout and every duration (:meth:`_alert_time`); ``now`` is what the
        transitions show. ``sweep`` False: no sweep slice in this receive (the shell keeps
        the sweep out of a frame's batch); it is owed, not lost. At most ``max_evaluations``
        scopes are evaluated in full per receive (see :attr:`busy`)."""
        step = Step()
        batch = _Batch()
        touched, moved, quarantined = batch.touched, batch.moved, batch.quarantined
        if self._deferred:
            inputs = [*self._deferred, *inputs]
            self._deferred = []
        work = 0
        bounded = not (self.full or self.replay)
        if self.portfolio.crossing and bounded:
            # the bands an earlier price left and its receive had no room to report
            for key in self.portfolio.cross(APPLY_WORK):
                moved[key] = None
                work += 1
        for i, item in enumerate(inputs):
            if work >= APPLY_WORK and bounded:
                self._deferred = list(inputs[i:])  # in order, first in the next receive
                break
            work += self._work(item)
            if isinstance(item, Mutes):
                self.book.mutes = tuple(item.mutes)
                continue
            if isinstance(item, OutboxHealth):
                self.health = Health(item.failing_channels, item.backlog)
                continue
            if isinstance(item, Reconfigure):
                self._reconfigure(item)
                continue
            crossed = len(moved)
            try:
                self._apply(item, batch, step, max(APPLY_WORK - work, 1) if bounded else None)
                # a price counts the bands it crossed (a crash's first price of a popular
                # instrument crosses every holder's): the prices after it wait
                work += len(moved) - crossed
            except Exception as exc:  # one bad event never stops the engine (fail closed)
                q = _quarantine(item, exc)
                step.quarantined.append(q)
                self.quarantine_count[q.venue] += 1
                group = f"{q.venue}:{q.account}" if q.account else q.venue
                if group not in self._quarantined_accounts:
                    self._quarantined_accounts.add(group)
                    quarantined.append(
                        (group, f"an update could not be applied ({q.error}); figures may be stale")
                    )
        t = self._alert_time(now, mono)
        self._clock = mono if mono is not None else now
        if self._waiting and self._waiting_over():
            # the feed never priced them: evaluate from the typed-in marks, and say so
            for key in self._waiting:
                self._owed.push(key, -math.inf)
            self._waiting.clear()
        # bounded: account events are decided now; prices that left their band and the
        # scopes owed share what is left of ``max_evaluations``, the most urgent first; the
        # rest waits for the next receive (``busy``), so one batch never holds the loop long
        owed, moved_q = self._owed, self._moved
        for key in touched:
            owed.discard(key)
            moved_q.discard(key)
        urgency = self._urgency
        for key in batch.later:
            if key not in touched:
                owed.push(key, urgency(key))
        for key in moved:
            # a scope queued to be checked keeps its place (another of its instruments may
            # report it again); one owed a full evaluation moves up if this price put it at
            # critical (a crash's prices come over several receives: a scope holding two
            # instruments may be owed, not critical yet, when its second one's price comes)
            if key in touched or key in moved_q:
                continue
            if key in owed:
                self._owe_now(key)
            else:
                moved_q.push(key, urgency(key))
        deciding = self.timer() if self.timer is not None else 0.0
        # the scopes prices took out of their band: a rearm each (cheaper than a full
        # evaluation, but not free), within a budget too
        rearms = self.max_evaluations * REARMS_PER_EVALUATION
        while rearms > 0 and moved_q:
            maybe = moved_q.pop()
            if maybe is None or maybe in owed:
                continue
            rearms -= 1
            if self._rearm(maybe):
                # urgent by where the price took it, not by its last evaluation's ratio: a
                # scope last seen safe that crossed into critical comes before a backlog
                self._owe_now(maybe)
        budget = max(self.max_evaluations - len(touched), 0)
        taken = 0
        while taken < budget and owed:
            due = owed.pop()
            if due is not None and due not in touched:
                touched[due] = None
                taken += 1
        forgotten, self._dropped = self._dropped, []
        limit = min(budget - taken, self.sweep_slice)
        for key in self._sweep(t, sweep, limit, touched):
            touched[key] = None

        self._decide(t, now, step, batch, forgotten=forgotten)
        if self.timer is not None:
            self.decide_seconds = self.timer() - deciding
        self.batches += 1
        self._maybe_ready(now if mono is None else mono, step)
        return step

    def _work(self, item: Input) -> int:
        """Holdings ``item`` changes when applied (see :data:`APPLY_WORK`)."""
        if isinstance(item, InstrumentSpec):
            m = self.portfolio.markets.get((item.instrument.venue, item.instrument.symbol))
            return 1 if m is None else len(m.holdings) + 1
        if isinstance(item, AccountSnapshot):
            return len(item.positions) + 1
        return 1

    def _alert_time(self, now: float, mono: float | None) -> float:
        """The time the alert rules measure durations with (``for``, repeats, the sweep):
        the wall clock at the first receive plus the monotonic time since (issue 10.9: an NTP
        step neither delays a pending alert nor hurries a repeat). A replay, or a caller
        without ``mono``, uses ``now`` (the recording's time)."""
        if mono is None or self.replay:
            return now
        if self._anchor is None:
            self._anchor = (now, mono)
        return self._anchor[0] + (mono - self._anchor[1])

    def _waiting_over(self) -> bool:
        """The wait for a feed's first prices (``ready_timeout`` from the start) is over."""
        return self._clock - self.started >= self.ready_timeout

    def _urgency(self, key: ScopeKey) -> float:
        """Order of owed work (lower first): minus the margin ratio of the scope's last full
        evaluation; a scope never evaluated or whose ratio was unknown comes first."""
        return _urgency_of(self.ratios.get(key))

    def _urgency_now(self, key: ScopeKey) -> float:
        """:meth:`_urgency` from the scope's quick figures at the latest prices, and before
        every other a scope they put at the critical level of its margin-ratio, equity or
        drawdown rule (:attr:`AccountLevels.critical`): in a crash, the scopes whose critical
        alert fires go first (by ratio), then the rest (the drawdown criticals of scopes
        far from their maintenance came last when only the ratio ordered them). First of all
        (unknown) when the figures raise: its evaluation decides it fail-closed (``_decide``)."""
        try:
            equity, mm = self.portfolio.quick_figures(key)
        except Exception:
            return -math.inf
        if not equity > 0.0:
            return -math.inf  # equity ≤ 0 (inf ratio), or not held / NaN (unknown)
        ratio = mm / equity
        urgency = _urgency_of(ratio)
        mr, floor, drawdown = self._account_levels(key.account_text).critical
        if ratio >= mr or equity <= floor:
            return urgency - 1.0
        peak = self.book.peaks.get(str(key))
        if peak is not None and peak > 0.0 and peak - equity >= drawdown * peak:
            return urgency - 1.0
        return urgency

    def _owe_now(self, key: ScopeKey) -> None:
        """Owe ``key`` a full evaluation at :meth:`_urgency_now` (or move it up to that).
        Owed short of critical, it is given a band (``Portfolio.arm``) meanwhile, so a later
        price that takes it across a level reports it again and moves it up: without one,
        the ticks of an instrument report an unarmed scope once, and a crash's later ticks
        left it at the place its first one gave it, behind every warning owed."""
        urgency = self._urgency_now(key)
        self._owed.push(key, urgency)
        if urgency <= _CRITICAL_FIRST or key in self._failing:
            return  # first anyway; or kept without a band (``_decide``)
        if key.account_key in self.fed_manual and self.portfolio.unpriced(key):
            return  # kept without a band until the feed prices it (``_decide``: waiting)
        with contextlib.suppress(Exception):  # its evaluation decides it fail-closed
            self.portfolio.arm(key, self._thresholds(key))

    @property
    def carried(self) -> int:
        """Scopes left for the next receive (over the budget): to evaluate, or to check;
        inputs not applied yet; and markets whose crossed bands are not all reported."""
        return (
            len(self._owed) + len(self._moved) + len(self._deferred) + len(self.portfolio.crossing)
        )

    @property
    def busy(self) -> bool:
        """Work is owed: inputs or scopes left over by the budgets, or a sweep slice due.
        The shell calls ``receive`` again at once (after yielding) instead of waiting."""
        return bool(self._owed or self._moved or self._deferred or self.portfolio.crossing) or (
            self._sweep_credit >= 1.0
            and bool(self._sweep_queue or self._round_markets or self._round_holders)
        )

    # -- applying events ----------------------------------------------------------------------
    def _apply(self, ev: Event, batch: _Batch, step: Step, room: int | None) -> None:
        """Apply ``ev``; a price reports at most about ``room`` bands it crossed (None: all),
        the rest in the next receives (:meth:`Portfolio.cross`)."""
        touched, moved, liquidated, feeds = (
            batch.touched,
            batch.moved,
            batch.liquidated,
            batch.feeds,
        )
        portfolio = self.portfolio
        if isinstance(ev, Deleveraged | Liquidated | VenueMarginRatio):
            self._account_event(ev, batch)
            return
        if isinstance(ev, MarkPrice | FundingRate) and not self.full:
            if not portfolio.unchanged(ev):
                # its holders' figures (funding, shock) are refreshed by the next sweep round;
                # a repeated value changes none, and starts no round
                self._dirty[(ev.venue, ev.symbol)] = None
            for key in portfolio.apply_fast(ev, room):
                moved[key] = None
        elif isinstance(ev, InstrumentSpec) and not self.full:
            # a venue's instrument list (every reconnect) touches every holder: decided
            # again within the evaluation budget, not in one batch
            batch.later.update(dict.fromkeys(portfolio.apply(ev)))
        else:
            for key in portfolio.apply(ev):
                touched[key] = None
        venue = ev.instrument.venue if isinstance(ev, InstrumentSpec) else ev.venue
        if ev.ts_recv and not isinstance(ev, FeedStatus):
            # a status report of our own feed is not a message from the venue: a feed that
            # never connected has no "last message"
            self.last_message[venue] = max(self.last_message.get(venue, 0.0), ev.ts_recv)
        if isinstance(ev, AccountSnapshot):
            seen = AccountKey(ev.venue, ev.account)
            held = portfolio.accounts.get(seen)
            self.seen_accounts.add(seen if held is None else held.key)  # one key an account
            # a snapshot is the whole account: scopes with active alerts (restored after a
            # restart) that it no longer has are gone
            for key in self._alerted_scopes(f"{ev.venue}:{ev.account}"):
                if portfolio.scope_state(key) is None:
                    touched[key] = None
        elif isinstance(ev, PositionUpdate) and ev.liquidated:
            liquidated.append(
                (ScopeKey(ev.venue, ev.account, ev.position.scope), ev.position.symbol)
            )
        elif isinstance(ev, FeedStatus):
            if ev.state in (FeedState.LIVE, FeedState.RECOVERED):
                # alerts held while the feed was stale are decided again, within the budget:
                # the venue's scopes with an alert
                prefix = ev.venue + ":"
                for group in self.book.groups():
                    if group.startswith(prefix):
                        batch.later.update(dict.fromkeys(self._alerted_scopes(group)))
                # and those evaluated while held, with or without an alert
                decided = [key for key in self._held if key.venue == ev.venue]
                for key in decided:
                    del self._held[key]
                batch.later.update(dict.fromkeys(decided))
            feeds.append(ev)
            self.feed_states[(ev.venue, ev.channel)] = ev
            step.feeds.append(ev)
        elif isinstance(ev, FundingPayment):
            step.funding.append(ev)

    def _scope_of(self, venue: str, account: str, symbol: str) -> ScopeKey:
        """The scope holding ``symbol`` in the account: its isolated scope when there is one,
        else the cross pool."""
        iso = ScopeKey(venue, account, isolated_scope(symbol))
        if self.portfolio.scope_state(iso) is not None or iso in self.ratios:
            return iso
        return ScopeKey(venue, account, CROSS_SCOPE)

    def _account_event(
        self, ev: Deleveraged | Liquidated | VenueMarginRatio, batch: _Batch
    ) -> None:
        """Events the venue reports about an account that are not state: ADL and
        liquidation fills, the venue's own margin ratio."""
        if ev.ts_recv:
            self.last_message[ev.venue] = max(self.last_message.get(ev.venue, 0.0), ev.ts_recv)
        if isinstance(ev, VenueMarginRatio):
            key = ScopeKey(ev.venue, ev.account, VENUE_RATIO_SCOPE)
            value = ev.ratio / ev.liquidation_at if ev.liquidation_at > 0 else math.nan
            batch.venue_ratios.append((key, value, ev.source))
            return
        key = self._scope_of(ev.venue, ev.account, ev.symbol)
        if isinstance(ev, Liquidated):
            batch.liquidated.append((key, ev.symbol))
            batch.touched[key] = None
            return
        # the pool as it stands before the fill: a venue sends the fill before the
        # position it changed (dYdX: in the same frame; the portfolio has the events applied
        # so far, so a position update after the fill is not in it yet)
        try:
            before: ScopeRisk | None = self.portfolio.risk(key, with_stress=False)
        except Exception:  # fail closed: the fill is told with the pool's figures unknown,
            before = None  # and the scope's own evaluation alarms margin_unknown
        batch.deleveraged.append((key, ev, before))
        batch.touched[key] = None

    def _thresholds(self, key: ScopeKey) -> Thresholds:
        """The alert levels the scope's price band is built from (its peak for drawdown)."""
        account = key.account_text
        peak = self.book.peaks.get(str(key))
        levels = self._account_levels(account)
        return thresholds_from_rules(self.rules, account, peak, levels=levels)

    def _account_levels(self, account: str) -> AccountLevels:
        levels = self._levels.get(account)
        if levels is None:
            got = account_levels(self.rules, account)
            levels = self._levels[account] = self._shared_levels.setdefault(got, got)
        return levels

    def _rearm(self, key: ScopeKey) -> bool:
        """``Portfolio.rearm``; True (evaluate it in full) for a scope whose last evaluation
        raised, or whose quick figures raise now: ``_decide`` decides it fail-closed."""
        failing = self._failing
        if failing and key in failing:
            return True
        try:
            return self.portfolio.rearm(key, self._thresholds(key))
        except Exception:
            return True

    # -- deciding -----------------------------------------------------------------------------
    def _decide(
        self, now: float, wall: float, step: Step, batch: _Batch, *, forgotten: Sequence[ScopeKey]
    ) -> None:
        """Evaluate at ``now`` (the alert time); ``wall`` is what people are shown."""
        liquidated, feeds, quarantined = batch.liquidated, batch.feeds, batch.quarantined
        risks: list[ScopeRisk] = []
        vanished: list[ScopeKey] = []
        by_key: dict[ScopeKey, ScopeRisk] = {}
        typed: dict[str, list[str]] = {}
        failed: dict[ScopeKey, str] = {}  # figures that raised: the exception's type
        waiting_over = self._waiting_over()
        for key in batch.touched:
            if key.account_key in self.fed_manual:
                unpriced = self.portfolio.unpriced(key)
                if unpriced and not waiting_over:
                    # not armed: the first tick of each instrument not priced yet reports it
                    self._waiting[key] = None
                    continue
                self._waiting.pop(key, None)
                if unpriced:
                    typed[str(key)] = unpriced
            # without the stress table: nothing the daemon decides or shows reads it (the
            # commands that print it compute their own); shock figures are computed
            try:
                risk = self.portfolio.risk(key, with_stress=False)
            except Exception as exc:  # fail closed: unknown, never the end of the engine
                failed[key] = self._figures_failed(key, "figures", exc, step)
                risk = self._unknown_risk(key, failed[key])
            if risk is None:
                vanished.append(key)
            else:
                risks.append(risk)
                by_key[key] = risk
        if forgotten and by_key:
            # a scope a reload forgot and an event after it (a second reload's snapshot, in
            # the same receive) brought back is monitored: forgetting it now would resolve
            # the alerts this evaluation decided, and its band would keep that decision
            forgotten = [key for key in forgotten if key not in by_key]
        deleveraged = [
            (key, ev.symbol, _adl_detail(ev, before, by_key.get(key)))
            for key, ev, before in batch.deleveraged
        ]
        timers_due = self._last_tick is None or now - self._last_tick >= TICK_INTERVAL
        busy = risks or vanished or forgotten or liquidated or feeds or quarantined
        if not (busy or deleveraged or batch.venue_ratios or timers_due):
            return
        if timers_due:
            self._last_tick = now
        obs = Observation(
            risks=risks,
            vanished=vanished,
            forgotten=forgotten,
            liquidated=liquidated,
            feeds=feeds,
            health=self.health if timers_due else None,
            quarantined=quarantined,
            deleveraged=deleveraged,
            venue_ratios=batch.venue_ratios,
        )
        transitions, delta = evaluate_in_place(obs, now, self.book, self.rules, wall=wall)
        if delta:
            step.delta = delta
        if typed:
            transitions = [_typed_in(t, typed) for t in transitions]
        if failed:
            why = {str(k): v for k, v in failed.items()}
            transitions = [_raised_in(t, why) for t in transitions]
        step.transitions = transitions
        for t in transitions:
            self.transitions[t.kind.value] += 1
        self.evaluated += len(risks)
        failing = self._failing
        for risk in risks:
            key = risk.key
            self._evaluated_at[key] = self.batches
            if failed and key in failed:
                self.portfolio.disarm(key)  # no band: its next price evaluates it again
            else:
                try:
                    self.portfolio.arm(key, self._thresholds(key))
                except Exception as exc:
                    # decided on its figures; without a band (an old one would keep a zone
                    # these figures left), each price of its instruments evaluates it
                    self.portfolio.disarm(key)
                    self._figures_failed(key, "band", exc, step)
                else:
                    if failing and key in failing:
                        del failing[key]
                        step.figures_recovered.append(key)
            ratio = self.ratios[key] = latest_ratio(risk)
            self._worst.record(key, ratio, self.ratios)
            doc: dict[str, object] = status_doc(risk, self.book.firing_of(str(key)))
            doc["ts"] = wall
            step.statuses[key] = doc
            if self.sampler.due(risk, wall):
                sample = Sample.of(risk, wall)
                self.sampler.taken(sample)
                step.samples.append(sample)
        step.risks = risks
        stale, held = self.book.stale, self._held
        if stale and risks:
            venues, accounts = held_venues(stale), held_accounts(stale)
            book, rules = self.book, self.rules
            for risk in risks:
                if (
                    risk.venue in venues or account_held(str(risk.key.account_key), accounts)
                ) and decision_held(risk, book, rules):
                    held[risk.key] = None  # its decision held: see :attr:`_held`
                else:
                    held.pop(risk.key, None)  # decided, or recovery would decide the same
        elif held:
            for risk in risks:
                held.pop(risk.key, None)
        for key in [*vanished, *forgotten]:
            self._held.pop(key, None)
            self._failing.pop(key, None)
            self.ratios.pop(key, None)
            self._evaluated_at.pop(key, None)
            self.sampler.forget(str(key))
            step.statuses.pop(key, None)
            step.removed.append(key)

    def _figures_failed(self, key: ScopeKey, stage: str, exc: Exception, step: Step) -> str:
        """Count a failed evaluation of ``key`` (``stage``: see :class:`FiguresFailed`) and
        report it in ``step`` unless the scope was failing already; return the exception's
        type name."""
        self.figures_failures[key.venue] += 1
        kind = type(exc).__name__
        if key not in self._failing:
            self._failing[key] = None
            error = f"{kind}: {exc}"[:FIGURES_ERROR_COPY]
            step.figures_failed.append(FiguresFailed(key, stage, error))
        return kind

    def _unknown_risk(self, key: ScopeKey, kind: str) -> ScopeRisk:
        """The figures of a scope whose figures raised (``kind``: the exception's type), as
        unknown: NaN where the alert rules read a figure, so the scope alarms
        ``margin_unknown`` and fires or resolves nothing else; its positions by symbol
        (size, entry, the market's last mark: inputs, not figures), so none reads as
        closed; the venue's own figures as it reported them. Reads the portfolio's state
        and computes nothing (it runs where the figures raised)."""
        nan = math.nan
        acct = self.portfolio.accounts.get(key.account_key)
        scope = None if acct is None else next((s for s in acct.scopes() if s.key == key), None)
        positions = []
        for h in () if scope is None else scope.holdings.values():
            leg, pos, mark = h.leg, h.position, h.market.mark
            positions.append(
                PositionRisk(
                    symbol=leg.symbol,
                    size=leg.size,
                    entry_price=leg.entry_price,
                    mark_price=nan if mark is None else mark,
                    notional=nan,
                    unrealized_pnl=nan,
                    margin_mode="isolated" if leg.isolated else "cross",
                    maintenance_margin=nan,
                    maintenance_rate=nan,
                    initial_margin=None,
                    liquidation_price=None,
                    liquidation_distance=None,
                    loss_if_liquidated=None,
                    funding_rate_per_hour=None,
                    funding_cost_per_day=nan,
                    leverage=leg.leverage,
                    venue_liquidation_price=pos.venue_liquidation_price,
                    venue_margin_used=pos.venue_margin_used,
                )
            )
        cross = acct is not None and scope is acct.cross
        veq, vfree, vmm = acct.venue_figures if acct is not None and cross else (None, None, None)
        return ScopeRisk(
            key=key,
            equity=nan,
            collateral=nan,
            maintenance_margin=nan,
            initial_margin=None,
            margin_ratio=nan,
            free_collateral=None,
            liquidatable=False,
            positions=tuple(positions),
            funding_cost_per_hour=nan,
            funding_cost_per_day=nan,
            funding_runway_hours=None,
            shock_down=None,
            shock_up=None,
            stress=(),
            collateral_at_risk=nan,
            nearest_liquidation_distance=None,
            drain_symbol=None,
            venue_equity=veq,
            venue_free_collateral=vfree,
            venue_maintenance=vmm,
            warnings=(f"its figures could not be computed ({kind})",),
        )

    def _sweep(
        self, now: float, allowed: bool, limit: int, fresh: Mapping[ScopeKey, None]
    ) -> list[ScopeKey]:
        """A round-robin slice of every scope, sized so that each is evaluated in full at
        least every :data:`SWEEP_INTERVAL` seconds (at most :attr:`sweep_rate` scopes per
        second: a larger book's round takes longer), at most ``limit`` scopes per receive
        (the rest is owed: :attr:`busy`). A full sweep (start, reload) owes every scope at
        once, but those evaluated in this receive (``fresh``), and is paid in slices like the
        rest. ``allowed`` False: credit accrues only."""
        if self._sweep_at is None:
            self._sweep_at = now
        if self._full_sweep:
            self._full_sweep = False
            self._sweep_at = now
            self._round_at = self.batches
            self._round_markets.clear()
            self._round_holders = None
            self._sweep_queue = deque(k for k in self.portfolio.scope_keys() if k not in fresh)
            self._sweep_size = len(self._sweep_queue)
            self._sweep_credit = float(self._sweep_size)

        else:
            elapsed = max(now - self._sweep_at, 0.0)
            self._sweep_at = now
            if not (self._sweep_queue or self._round_markets or self._round_holders):
                self._begin_round()
            # a fractional credit, so a small book is not swept on every batch; never more
            # than one round owed
            self._sweep_credit += min(
                self._sweep_size * min(elapsed / SWEEP_INTERVAL, 1.0), self.sweep_rate * elapsed
            )
            self._sweep_credit = min(self._sweep_credit, float(max(self._sweep_size, 1)))
        if not allowed:
            return []
        n = min(math.floor(self._sweep_credit), limit)
        out: list[ScopeKey] = []
        owed, markets = self._sweep_queue, self._round_markets
        evaluated, since = self._evaluated_at, self._round_at
        looked, look = 0, SWEEP_LOOK * n  # the rest waits for the next slice (``busy``)
        while len(out) < n and looked < look:
            if not owed:
                holders = self._round_holders
                if holders is not None:  # the market being expanded: its next holders
                    owed.extend(itertools.islice(holders, SWEEP_EXPAND))
                    if not owed:
                        self._round_holders = None
                    continue
                if markets:  # the next market of the round: its holders, when it comes
                    m = self.portfolio.markets.get(markets.popleft())
                    if m is not None:
                        self._round_holders = (h.scope.key for h in m.holdings)
                    continue
                if not self._dirty:
                    break
                # the rest of the round was fresh: the next round (what moved since) at once
                self._begin_round()
                since = self._round_at
                continue
            key = owed.popleft()
            looked += 1
            if evaluated.get(key, -1) < since:  # else: evaluated since the round began
                out.append(key)
        self._sweep_credit -= len(out)
        if not (owed or markets or self._round_holders or self._dirty):
            self._sweep_credit = 0.0  # nothing moved: no credit to hoard
        return out

    def _begin_round(self) -> None:
        """A sweep round: the scopes holding an instrument that moved since the last round
        (nothing else has figures to refresh: an idle book costs nothing), market by market
        as the queue runs dry (a scope holding several is evaluated once: the round skips
        what it evaluated already). Its size, for the pace, counts positions."""
        markets = self.portfolio.markets
        size = 0
        for key in self._dirty:
            m = markets.get(key)
            if m is not None and m.holdings:  # a market nobody holds has nothing to refresh
                self._round_markets.append(key)
                size += len(m.holdings)
        self._sweep_size = size
        self._dirty.clear()
        self._round_at = self.batches

    # -- accounts and configuration -----------------------------------------------------------
    def _alerted_scopes(self, group: str) -> list[ScopeKey]:
        """The scopes of the account ``group`` ("venue:account") with an active alert."""
        venue, _, account = group.partition(":")
        prefix = group + "/"
        out: dict[ScopeKey, None] = {}
        for k in self.book.keys_of_group(group):
            base = scope_of(self.book.alerts[k].subject)
            if base.startswith(prefix):
                out[ScopeKey(venue, account, base[len(prefix) :])] = None
        return list(out)

    def _forget_unconfigured(self, removed: Sequence[AccountKey] = ()) -> None:
        """Forget, at the next decision, the scopes of accounts the configuration no longer
        has: their alerts resolve, their status goes. An address account's HIP-3 dex
        accounts (``0x…@dex``) count as configured with it."""
        configured = {str(a) for a in self.accounts}

        def known(group: str) -> bool:
            return (
                group in configured
                or group.split("@", 1)[0] in configured
                or _dydx_parent(group) in configured
            )

        groups = {
            g
            for g in self.book.groups()
            if not g.startswith("feed:") and g != "monitor" and not known(g)
        }
        dropped: dict[ScopeKey, None] = dict.fromkeys(self._dropped)
        for group in sorted(groups):
            dropped.update(dict.fromkeys(self._alerted_scopes(group)))
        for key in removed:
            dropped.update(dict.fromkeys(self.portfolio.drop_account(key)))
        self._dropped = list(dropped)

    def _reconfigure(self, rc: Reconfigure) -> None:
        self.rules = rc.rules
        self._levels.clear()
        self._shared_levels.clear()
        self.fed_manual = rc.fed_manual
        self.book.reschedule(rc.rules)
        self.accounts = rc.accounts
        self.expected = rc.expected
        self._full_sweep = True  # the bands were built from the old thresholds
        self._forget_unconfigured(rc.removed)

    # -- readiness and summary ----------------------------------------------------------------
    def _maybe_ready(self, mono: float, step: Step) -> None:
        if self.ready:
            return
        if self.replay:
            self.ready = True
            step.ready = self.summary()
            return
        if self.expected <= self.seen_accounts or mono - self.started >= self.ready_timeout:
            self.ready = True
            missing = sorted(str(a) for a in self.expected - self.seen_accounts)
            status = self.summary()
            if missing:
                status += f"; no snapshot yet from {', '.join(missing)}"
            step.ready = status

    def missing_accounts(self) -> list[str]:
        return sorted(str(a) for a in self.expected - self.seen_accounts)

    def summary(self) -> str:
        """One line for ``systemctl status`` and the log."""
        firing = self.book.firing
        worst = self.worst()
        bad: dict[FeedState, list[str]] = {FeedState.DOWN: [], FeedState.STALE: []}
        for (v, c), fs in sorted(self.feed_states.items()):
            if fs.state in bad:
                bad[fs.state].append(f"{v}/{c}")
        parts = [f"{len(self.ratios)} scopes"]
        if worst is not None:
            key, ratio = worst
            if ratio == math.inf:  # ranked first: it has positions and no equity left
                parts.append(f"worst: equity ≤ 0, LIQUIDATABLE ({key})")
            elif math.isnan(ratio):  # ranked first: unknown alarms (fail closed)
                parts.append(f"worst: margin ratio unknown ({key})")
            else:
                parts.append(f"worst margin ratio {ratio * 100:.1f}% ({key})")
        parts.append(f"{firing} alerts firing")
        if bad[FeedState.DOWN]:
            parts.append("down: " + ", ".join(bad[FeedState.DOWN]))
        if bad[FeedState.STALE]:
            parts.append("stale: " + ", ".join(bad[FeedState.STALE]))
        return "; ".join(parts)

    def worst(self) -> tuple[ScopeKey, float] | None:
        """The scope with the highest latest margin ratio and that ratio (as in
        :attr:`ratios`; :class:`WorstRatio`); None when no scope has one."""
        return self._worst.of(self.ratios)

    @property
    def state(self) -> AlertState:
        """The alert state (a live read-only view of :attr:`book`)."""
        return self.book.view()


_WORST_SLACK = 3.0
""":class:`WorstRatio` rebuilds its heap past this many entries a scope. At 1.5 instead of 3
the daemon's RSS did not move beyond the noise (100,000 positions, two runs each), and the
rebuild (13–29 ms at 40,000 scopes) came four times as often, a stall a price frame may wait
behind."""


class WorstRatio:
    """The scope with the highest latest margin ratio, without a pass over every scope
    (``summary`` runs every second; a book has 10⁵ scopes).

    A heap of (−rank, order, scope) of every evaluation :meth:`record` was told of; an entry
    is current while the scope's latest ratio still has its rank, and stale ones are dropped
    as they surface. Amortised O(log scopes) per record and query; the heap is rebuilt from
    the latest ratios when it holds more than three times as many entries
    (:data:`_WORST_SLACK`). Fail closed: a scope holding positions with equity ≤ 0 (ratio
    ``inf``, :func:`latest_ratio`) or whose ratio is NaN (unknown) ranks above every finite
    ratio (:func:`_rank`); a scope without positions and no ratio (None) is not ranked."""

    __slots__ = ("_heap", "_seq")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, ScopeKey]] = []
        self._seq = 0

    def record(
        self, key: ScopeKey, ratio: float | None, latest: Mapping[ScopeKey, float | None]
    ) -> None:
        """``key``'s ``ratio``, just stored in ``latest`` (scope → its latest ratio). The
        heap is rebuilt from ``latest`` here too, so it stays bounded when :meth:`of` is never
        asked (a replay, a report: one entry per evaluation would pile up)."""
        heap = self._heap
        if len(heap) > _WORST_SLACK * len(latest) + 16:
            self._rebuild(latest)  # ``key`` among them
            return
        rank = _rank(ratio)
        if rank is not None:
            self._seq += 1
            heapq.heappush(heap, (-rank, self._seq, key))

    def _rebuild(self, latest: Mapping[ScopeKey, float | None]) -> None:
        # in O(scopes) (heapify): 13–29 ms at 40,000 scopes, once per twice as many
        # evaluations
        heap = self._heap
        heap[:] = [
            (-rank, i, k)
            for i, (k, r) in enumerate(latest.items())
            if (rank := _rank(r)) is not None
        ]
        heapq.heapify(heap)
        self._seq = len(latest)

    def of(self, latest: Mapping[ScopeKey, float | None]) -> tuple[ScopeKey, float] | None:
        """The scope of ``latest`` (scope → its latest ratio, each recorded when computed)
        with the highest rank, and its ratio; None when none is ranked. Ties: the one
        recorded first."""
        heap = self._heap
        if len(heap) > _WORST_SLACK * len(latest) + 16:
            self._rebuild(latest)
        while heap:
            neg, _, key = heap[0]
            ratio = latest.get(key)
            if ratio is not None and _rank(ratio) == -neg:
                return key, ratio
            heapq.heappop(heap)
        return None


def latest_ratio(risk: ScopeRisk) -> float | None:
    """What :attr:`Engine.ratios` keeps of ``risk``: its margin ratio (maintenance / equity,
    NaN when unknown); ``inf`` when it holds positions and equity ≤ 0 (the ratio is None:
    liquidatable); None without positions and without a ratio."""
    ratio = risk.margin_ratio
    if ratio is None:
        return math.inf if risk.positions else None
    return ratio


def _rank(ratio: float | None) -> float | None:
    """How bad a scope is for :class:`WorstRatio`: its ratio (:func:`latest_ratio`), NaN
    (unknown) ranked ``inf`` with equity ≤ 0 (fail closed); None: not ranked."""
    if ratio is None:
        return None
    return math.inf if math.isnan(ratio) else ratio


def _typed_in(t: Transition, typed: Mapping[str, list[str]]) -> Transition:
    """``t`` saying so when its scope was valued at typed-in marks (the feed had not priced
    those symbols)."""
    symbols = typed.get(t.subject.split("#", 1)[0])
    if not symbols:
        return t
    note = (
        "computed from the configured (typed-in) mark of "
        + ", ".join(symbols)
        + ": the feed has not priced it yet"
    )
    return dataclasses.replace(t, detail=f"{t.detail}; {note}" if t.detail else note)


def _raised_in(t: Transition, failed: Mapping[str, str]) -> Transition:
    """``t`` saying why, when it is the ``margin_unknown`` alert of a scope whose figures
    raised (``failed``: scope name → the exception's type) and does not resolve it."""
    kind = failed.get(t.subject)
    if kind is None or t.rule != RuleKind.MARGIN_UNKNOWN.value or t.kind is TransitionKind.RESOLVED:
        return t
    return dataclasses.replace(t, detail=f"{t.detail}; its figures raised {kind} (see the log)")


#: the urgencies :meth:`Engine._urgency_now` gives the scopes its quick figures put at a
#: critical level, and unknown ones, are at or below this (:func:`_urgency_of` is above it)
_CRITICAL_FIRST = -1.0


def _urgency_of(ratio: float | None) -> float:
    """A margin ratio as an urgency of owed work (lower first), in (−1, 0]: −r/(1 + r), which
    orders as −r does and leaves room below −1 for :meth:`Engine._urgency_now`'s critical
    scopes; an unknown one (None, NaN) or ``inf`` (equity ≤ 0) first of all (fail closed)."""
    if ratio is None or not math.isfinite(ratio):
        return -math.inf
    r = max(ratio, 0.0)
    return -r / (1.0 + r)


def _quarantine(item: Event, exc: Exception) -> Quarantined:
    venue = item.instrument.venue if isinstance(item, InstrumentSpec) else item.venue
    account = (
        item.account
        if isinstance(item, AccountSnapshot | PositionUpdate | BalanceUpdate | FundingPayment)
        else None
    )
    return Quarantined(
        venue=venue,
        account=account,
        error=f"{type(exc).__name__}: {exc}"[:200],
        event=repr(item)[:QUARANTINE_COPY],
    )


def _dydx_parent(group: str) -> str | None:
    """``dydx:ADDR/P`` for a dYdX child pool ``dydx:ADDR/P+128k`` (a parent subscription
    reports its children as pools of their own), else None."""
    venue, _, account = group.partition(":")
    address, slash, number = account.partition("/")
    if venue != "dydx" or not slash or not (number.isascii() and number.isdigit()):
        return None
    return f"{venue}:{address}/{int(number) % 128}"


def _figures(r: ScopeRisk | None) -> str:
    """A pool's equity, maintenance and margin ratio, for the ADL notice: the ratio is
    "∞ (equity ≤ 0)" past zero equity (liquidatable, not unknown); the whole is "unknown"
    when the figures could not be computed (not finite: :attr:`ScopeRisk.figures_unknown`)."""
    if r is None or r.figures_unknown:
        return "unknown"
    mr = r.margin_ratio
    if mr is None:
        ratio = "∞ (equity ≤ 0)" if r.positions else "n/a (no positions)"
    else:
        ratio = f"{mr:.2%}"
    return f"equity {r.equity:,.2f}, maintenance {r.maintenance_margin:,.2f}, margin ratio {ratio}"


def _adl_detail(ev: Deleveraged, before: ScopeRisk | None, after: ScopeRisk | None) -> str:
    side = "bought" if ev.size > 0 else "sold"
    return (
        f"the venue auto-deleveraged (ADL) {ev.symbol}: {side} {abs(ev.size):g} at "
        f"{ev.price:,.6g}; pool before: {_figures(before)}; after: {_figures(after)}"
    )


def rule_sets_for(venues: Iterable[tuple[str, str]]) -> dict[str, str]:
    """``{venue name: rule set}`` for the portfolio, from (name, rule set) pairs."""
    return {name: rs for name, rs in venues if name != rs}


__all__ = [
    "Engine",
    "FiguresFailed",
    "Input",
    "Mutes",
    "OutboxHealth",
    "Quarantined",
    "Reconfigure",
    "Step",
    "rule_sets_for",
]
