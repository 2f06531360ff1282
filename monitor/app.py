"""The composition root: ``monitor run``.

::

    feeds (one task each) ──put──▶ Inbox ──batch──▶ engine task: Portfolio.apply → risk
                                                        │  → AlertService.process (state +
                                                        │    outbox rows in one transaction)
                                                        ▼
    delivery worker task ◀── wake ──────────────── outbox (SQLite, WAL)
    status task: every second, latest figures, sampled history and feed health to SQLite,
                 STATUS= to systemd; watchdog task: WATCHDOG=1 while the engine is alive.

Start-up is the recovery path: load and validate the configuration, open the store (one
instance at a time), restore the alert state (nothing that already fired fires again), resume
undelivered outbox rows, apply manual accounts, start the feeds. ``READY=1`` is sent once every
address account has had its first snapshot (or after ``daemon.ready_timeout``).

Signals: SIGTERM/SIGINT stop the feeds, let the engine apply what its inbox holds (at most
0.5 s; scopes it still owes are decided again after the restart), drain the outbox until
``daemon.drain_deadline`` after the signal, close the store and exit 0. SIGHUP re-reads the
configuration: rules, channels, manual accounts and the log level apply at once, without
touching the feed connections; an invalid file keeps the old configuration running and logs
why. Address accounts added or removed need a restart (logged).

Replay mode (``--replay FILE``) runs the same engine, alerts and delivery on a recording instead
of live feeds, with the recording's receive times as the clock of the alert rules, and exits 0 at
its end once the outbox is drained: the offline demo.

Exit codes: 0 clean stop; 1 runtime failure (store unusable, crash); 2 bad configuration;
3 another instance holds the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import os
import signal
import sqlite3
import sys
import time
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from monitor.alerts.engine import AlertState
from monitor.alerts.rules import AlertRules
from monitor.clock import Clock, SystemClock
from monitor.config import AccountKind, Config, load_config
from monitor.engine import Engine, Input, Mutes, OutboxHealth, Reconfigure, Step
from monitor.errors import ConfigError, FatalError, InputError, ParseError
from monitor.extras import Extras, start_extras
from monitor.logs import configure_logging, set_level
from monitor.model.events import (
    AccountSnapshot,
    Event,
    FeedState,
    FeedStatus,
    FundingPayment,
)
from monitor.model.positions import AccountKey, ScopeKey
from monitor.notify import local
from monitor.notify.channels import Channel
from monitor.notify.delivery import DeliveryWorker
from monitor.notify.last_gasp import describe_store_failure, is_store_failure, last_gasp
from monitor.notify.outbound import labels_of
from monitor.notify.sender import AppriseSender, Sender
from monitor.sdnotify import Notifier, watchdog_interval, watchdog_loop
from monitor.shell import RiskView, persist, restore_alert_state
from monitor.store import history
from monitor.store.db import Store, StoreLockedError, open_store
from monitor.store.mutes import active_mutes
from monitor.store.outbox import backlog, resume
from monitor.venues.feed import Feed
from monitor.venues.inbox import Inbox
from monitor.venues.recording import events_of, read_recording
from monitor.venues.registry import PARSERS, build_feeds

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_LOCKED = 3

STATUS_INTERVAL = 1.0
#: how many times :data:`history.ROWS_PER_TRANSACTION` samples a flush that fell behind writes
#: per transaction at most (:func:`flush_rows`; 5,000, ~65 ms into a 1.7 GB store)
FLUSH_CATCH_UP = 20.0
#: a batch of events sweeps too when the last sweep slice is this old (seconds, monotonic):
#: under a steady stream of frames the sweep is not starved, and otherwise stays off the
#: frames' path
SWEEP_OVERDUE = 1.0
#: an engine step at least this long (seconds) is logged (``engine.slow_batch``)
SLOW_BATCH = 0.5
#: a step (receive and persist) aims at this long (seconds): the shell sizes the engine's
#: evaluation budget from the cost per evaluation of the last step that evaluated enough
STEP_TARGET = 0.1
#: the evaluation budget per step stays within these bounds
MIN_EVALUATIONS = 20
MAX_EVALUATIONS = 2000
#: at SIGTERM the engine may apply what its inbox holds for this long (seconds); work it
#: owes (scopes over its budget, the sweep) is not waited for: a restart decides it again
STOP_ENGINE_DEADLINE = 0.5
#: at shutdown, once the outbox is drained, the last status flush writes scope status rows for
#: at most this long (seconds; the samples, which are history, all go): after a crash's
#: ~400,000 evaluations at 1,000,000 positions the rows left took 8.7 s, and the engine
#: computes them again after a restart
EXIT_STATUS_BUDGET = 1.0
#: seconds the last direct message may take when the store becomes unusable
LAST_GASP_TIMEOUT = 10.0
#: the engine ticks (timers, sweep, readiness) at least this often while idle (seconds)
TICK_INTERVAL = 1.0
#: the mutes are re-read from the store this often (``monitor mute`` while the daemon runs)
MUTE_REFRESH = 1.0
#: the outbox backlog is re-read this often
HEALTH_REFRESH = 5.0
PRUNE_INTERVAL = 3600.0


def log() -> Any:
    return structlog.get_logger()


class ReplayClock:
    """Wall-clock sleeps and monotonic time, but ``now()`` is the recording's time."""

    def __init__(self, start: float) -> None:
        self.t = start
        self._real = SystemClock()
        self._released: float | None = None

    def now(self) -> float:
        if self._released is not None:
            return self.t + (self._real.monotonic() - self._released)
        return self.t

    def release(self) -> None:
        """The recording is over: from now on time runs on from its last instant, so the
        outbox's retries still come due while it drains."""
        self._released = self._real.monotonic()

    def monotonic(self) -> float:
        return self._real.monotonic()

    async def sleep(self, seconds: float) -> None:
        await self._real.sleep(seconds)


@dataclass
class RunOptions:
    config_path: Path
    replay: Path | None = None
    speed: float = 0.0
    log_level: str | None = None
    log_format: str | None = None


def flush_rows(span: float) -> int:
    """Samples a flush writes per transaction when it covers ``span`` seconds of steps (since
    the previous flush started: its own duration, then the :data:`STATUS_INTERVAL` the
    status loop sleeps): :data:`history.ROWS_PER_TRANSACTION` per interval covered (250
    while the flushes keep up, a little more for a flush's own duration), up to
    :data:`FLUSH_CATCH_UP` times as many as they fall behind. Each transaction of a flush
    waits for an engine step; in a crash at 10⁶ positions the steps are ~0.1 s and the
    evaluations ~2,000 a second (a sample each), more than 250 rows a step can write: the
    samples fell minutes behind, and the shutdown wrote their backlog. Counting only the
    previous flush's duration (not the sleep) made SIGTERM after that crash 3.6 s instead of
    2.1 s (one run each). The status rows keep 250 a transaction: a flush that falls behind
    writes each scope's latest only (fewer rows, while the engine needs the time), and
    shutdown gives them a budget (:data:`EXIT_STATUS_BUDGET`). Writing every one of them as
    well made the crash at 10⁶ positions ~25 % slower (two runs)."""
    ratio = span / STATUS_INTERVAL
    return int(history.ROWS_PER_TRANSACTION * min(max(ratio, 1.0), FLUSH_CATCH_UP))


@dataclass
class _Pending:
    """Status and history deltas of the steps since the last flush (written once a second)."""

    samples: list[history.Sample] = field(default_factory=list)
    statuses: dict[str, tuple[ScopeKey, dict[str, Any]]] = field(default_factory=dict)
    """scope name → (scope, its status document): the figures themselves are not kept"""
    vanished: set[str] = field(default_factory=set)
    feeds: dict[tuple[str, str], FeedStatus] = field(default_factory=dict)
    funding: list[FundingPayment] = field(default_factory=list)

    def add(self, step: Step) -> None:
        for risk in step.risks:
            scope = str(risk.key)
            doc = step.statuses.get(risk.key)
            if doc is not None:
                self.statuses[scope] = (risk.key, dict(doc))
                self.vanished.discard(scope)
        for key in step.removed:
            scope = str(key)
            self.statuses.pop(scope, None)
            self.vanished.add(scope)
        self.samples.extend(step.samples)
        for fs in step.feeds:
            self.feeds[(fs.venue, fs.channel)] = fs
        self.funding.extend(step.funding)


class Freezer:
    """Keeps the book (accounts, positions, figures, alerts) in the collector's permanent
    generation.

    Each full collection walks every object of the oldest generation, and it found nothing
    in this daemon: the book's objects hold no cycles, reference counting frees them when
    replaced. Left alone, those walks cost 0.1–0.5 s each at 100,000 positions, inside
    whichever engine or delivery step allocated last (the 0.4 s p99 frame→decision of
    ``benchmarks/daemon.py`` at 100,000 positions), and 0.3 s or more per step while a
    1,000,000-position book loaded. So the book is frozen (``gc.freeze``, constant time)
    whenever :data:`EVERY` accounts, scopes or alerts were added, or scopes evaluated anew
    (each replaces its figures), since the last freeze: a full collection then walks at most
    what that much work left behind, whatever the book's size. The young generations are
    collected first, so the cycles made since (a reconnect's exception and traceback) are
    freed, not frozen."""

    #: allocations between young collections (CPython's default is 700): every tenth young
    #: collection of the middle generation may start a full one, so the default ran one every
    #: second or so under 1,000 frames/s; young collections cost what they find either way
    YOUNG = 10_000
    #: the book is frozen again after this many accounts, scopes or alerts added and scopes
    #: evaluated anew. The young collection before each freeze walks what that much work
    #: left: at 2,000, 17–40 ms pauses every few seconds under 1,000 frames/s at 100,000
    #: positions (each one a late decision); at 500, about 4–5 ms, four times as often
    EVERY = 500

    def __init__(self) -> None:
        self.size = 0  # accounts, scopes and alerts at the last freeze
        self.churn = 0  # evaluations since
        self.freezes = 0

    def step(self, size: int, evaluated: int) -> bool:
        """After an engine step of a book of ``size`` (accounts, scopes, alerts) that
        evaluated ``evaluated`` scopes; True when it froze."""
        self.churn += evaluated
        if max(size - self.size, 0) + self.churn >= self.EVERY:
            self.size = size
            self.freeze()
            return True
        return False

    @classmethod
    def tune(cls) -> None:
        """The daemon's collector thresholds (:data:`YOUNG`), first thing at start-up."""
        _, middle, old = gc.get_threshold()
        gc.set_threshold(cls.YOUNG, middle, old)

    @staticmethod
    @contextlib.contextmanager
    def paused() -> Iterator[None]:
        """No collection while the configuration is read, then all of it frozen: it lives as
        long as the daemon, and while a 1,000,000-position book was built, full collections
        walked it again and again, each longer than the last (up to ~1 s in-process)."""
        was = gc.isenabled()
        gc.disable()
        try:
            yield
        finally:
            if was:
                gc.enable()
        gc.freeze()

    def freeze(self) -> None:
        gc.collect(1)
        gc.freeze()
        self.churn = 0
        self.freezes += 1


class Daemon:
    """The shell around one :class:`~monitor.engine.Engine`: inbox → ``engine.receive`` →
    persist the step in one transaction → wake delivery. One engine task, no lock: mutes,
    outbox health and reloads reach the engine as inputs of its next step."""

    def __init__(
        self,
        config: Config,
        store: Store,
        engine: Engine,
        worker: DeliveryWorker,
        *,
        clock: Clock,
        notifier: Notifier,
        replay: bool = False,
    ) -> None:
        self.config = config
        self.store = store
        self.engine = engine
        self.worker = worker
        self.channels: list[Channel] = list(config.channels or ())
        self.clock = clock
        self.notifier = notifier
        self.replay = replay
        self.inbox = Inbox()
        self.controls: deque[Input] = deque()
        self.risks = RiskView()
        self.pending = _Pending()
        self.engine_beat = clock.monotonic()
        self.enqueued = 0
        """Outbox rows written since the replay's delivery last ran."""
        self.longest_batch = 0.0
        """The longest engine step so far (seconds of CPU-bound work between awaits)."""
        self.labels = labels_of(config.accounts)
        """``venue:account`` → the label people know it by (alert messages)."""
        self.extras = Extras()
        """The optional parts (heartbeat, metrics, bot) once started."""
        self.idle = asyncio.Event()
        self._mutes_at: float | None = None
        self._swept_at: float | None = None
        self.stop_requested = False
        """Set at shutdown: the engine task returns after the step in hand (never cancelled
        inside a store transaction)."""
        self._health_at: float | None = None
        self.freezer = Freezer()
        """When the book is moved out of the collector's way (:class:`Freezer`)."""
        self._flushing = asyncio.Lock()
        self._cut_at: float | None = None
        """Monotonic time after which a flush leaves status rows out (set at shutdown)."""
        self._flushed_at: float | None = None
        """Monotonic time of the last flush's start: what the next one covers."""
        self.statuses_left_out = 0
        self._checkpoint_failing = False

    # -- accounts ----------------------------------------------------------------------------
    def manual_snapshots(self) -> list[AccountSnapshot]:
        return [a.snapshot for a in self.config.accounts if a.snapshot is not None]

    @property
    def ready(self) -> bool:
        return self.engine.ready

    # -- the engine --------------------------------------------------------------------------
    async def _refresh(self, now: float) -> list[Input]:
        """The store's inputs when due: mutes every second, outbox health every 5 s."""
        out: list[Input] = []
        mono = self.clock.monotonic()
        if self._mutes_at is None or mono - self._mutes_at >= MUTE_REFRESH:
            self._mutes_at = mono
            out.append(Mutes(tuple(await active_mutes(self.store, now))))
        if self._health_at is None or mono - self._health_at >= HEALTH_REFRESH:
            self._health_at = mono
            count, _ = await backlog(self.store)
            out.append(OutboxHealth(count, self.worker.failing_channels))
        return out

    async def step(self, events: Sequence[Input], now: float) -> Step:
        """One engine step: the due store inputs and queued controls, then ``events``;
        persist the outcome and wake delivery."""
        controls = list(self.controls)
        self.controls.clear()
        inputs: list[Input] = [*controls, *await self._refresh(now), *events]
        mono = self.clock.monotonic()
        sweep = (
            not events
            or self.replay
            or self._swept_at is None
            or mono - self._swept_at >= SWEEP_OVERDUE
        )
        if sweep:
            self._swept_at = mono
        started = time.perf_counter()
        step = self.engine.receive(inputs, now, mono, sweep=sweep)
        took = time.perf_counter() - started
        self.extras.observe_batch(took)
        self.longest_batch = max(self.longest_batch, took)
        if took >= SLOW_BATCH:
            log().warning(
                "engine.slow_batch",
                seconds=round(took, 3),
                inputs=len(inputs),
                evaluated=len(step.risks),
                transitions=len(step.transitions),
                carried=self.engine.carried,
            )
        persisting = time.perf_counter()
        enqueued = await persist(
            self.store, step, self.channels, self.risks, now,
            engine=self.engine, labels=self.labels,
        )  # fmt: skip
        # applying inputs is bounded apart (``APPLY_WORK``): a step of a loading book must
        # not read as costly evaluations and starve them
        deciding = self.engine.decide_seconds + time.perf_counter() - persisting
        self._size_budget(len(step.risks), deciding)
        self._maybe_freeze(len(step.risks))
        if enqueued:
            self.enqueued += enqueued
            self.worker.wake()
        self.pending.add(step)
        self.engine_beat = self.clock.monotonic()
        if step.ready is not None:
            self._became_ready(step.ready)
        return step

    def _size_budget(self, evaluated: int, seconds: float) -> None:
        """Size the engine's evaluation budget so a step's deciding and persisting (rendering
        included) take about :data:`STEP_TARGET`: from the cost per evaluation of this step,
        when it evaluated enough scopes to tell. A crash is then decided in steps of ~0.1 s,
        each written in one transaction, with the event loop (watchdog, signals, delivery)
        running between them, whatever the machine's speed or load."""
        if evaluated < MIN_EVALUATIONS or seconds <= 0.0:
            return
        budget = STEP_TARGET * evaluated / seconds
        self.engine.max_evaluations = int(min(max(budget, MIN_EVALUATIONS), MAX_EVALUATIONS))

    def _maybe_freeze(self, evaluated: int) -> None:
        """Keep the book out of the collector's full passes (:class:`Freezer`)."""
        engine = self.engine
        size = len(engine.portfolio.accounts) + len(engine.ratios) + len(engine.book.alerts)
        self.freezer.step(size, evaluated)

    def _became_ready(self, status: str) -> None:
        missing = self.engine.missing_accounts()
        if missing and not self.replay:
            log().warning("daemon.ready_without", accounts=missing)
        self.notifier.ready(status)
        log().info("daemon.ready", status=status)
        # the book is loaded: keep it out of the collector's full passes from now on
        self.freezer.freeze()

    async def engine_loop(self) -> None:
        """The one engine task: a batch of events, or an idle tick every second. While the
        engine owes work (scopes over its per-batch budget, a sweep slice) it steps again
        at once, after yielding, so the watchdog, signals and delivery run between slices."""
        while not self.stop_requested:
            self.idle.set()
            if self.engine.busy:
                await asyncio.sleep(0)
                events = self.inbox.get_nowait()
            else:
                events = await self.inbox.get_batch(idle_after=TICK_INTERVAL)
            self.idle.clear()
            await self.step(events, self.clock.now())

    # -- status, history ----------------------------------------------------------------------
    def summary(self) -> str:
        """One line for ``systemctl status`` and the log."""
        return self.engine.summary()

    async def flush(self) -> None:
        """Write the status and history the steps left since the last flush. One flush at a
        time: shutdown's last flush may start while the status loop's (shielded) still
        writes a large book in several transactions; interleaved, the older one's later
        transactions would overwrite newer figures."""
        async with self._flushing:
            await self._flush()

    def cut_statuses(self, after: float) -> None:
        """From ``after`` seconds on, flushes (the one under way included) leave the scope
        status rows they have not written out: at shutdown, a cache the engine computes again
        after a restart (the samples, which are history, all go). From now on they write in
        larger transactions (``history.record``'s ``hurry``)."""
        self._cut_at = self.clock.monotonic() + after

    def _cut(self) -> bool:
        return self._cut_at is not None and self.clock.monotonic() >= self._cut_at

    def _exiting(self) -> bool:
        """Shutting down (:meth:`cut_statuses` was called): no engine step waits for the
        store, so a flush writes its rows in larger transactions."""
        return self._cut_at is not None

    async def _flush(self) -> None:
        p, self.pending = self.pending, _Pending()
        now = self.clock.now()
        mono = self.clock.monotonic()
        span = STATUS_INTERVAL if self._flushed_at is None else mono - self._flushed_at
        self._flushed_at = mono
        if p.samples or p.statuses or p.vanished:
            self.statuses_left_out += await history.record(
                self.store,
                p.samples,
                p.statuses.values(),
                p.vanished,
                samples_per_transaction=flush_rows(span),
                cut=self._cut,
                hurry=self._exiting,
            )
        last_message = dict(self.engine.last_message)
        if p.feeds or last_message:
            await history.record_feeds(self.store, p.feeds.values(), last_message, now)
        if p.funding:
            await history.record_funding(self.store, p.funding)
        summary = self.summary()
        await history.set_daemon_status(
            self.store,
            {
                "pid": os.getpid(),
                "summary": summary,
                "replay": self.replay,
                "batches": self.engine.batches,
                "config": str(self.config.source),
            },
            time.time(),
        )
        self.notifier.status(summary)

    async def checkpoint(self) -> None:
        """Copy the store's WAL into its database beside the writes, not inside one of them
        (:meth:`Store.checkpoint`; the live daemon's store leaves it to this, once a second
        after the flush). A failure is logged once until a checkpoint succeeds again: the
        store's own connection still checkpoints once the WAL is large
        (:data:`~monitor.store.db.WAL_SAFETY_PAGES`), and a store that cannot be written
        stops the daemon through its writes."""
        try:
            await self.store.checkpoint()
        except sqlite3.Error as exc:
            if not self._checkpoint_failing:
                log().warning("store.checkpoint_failed", error=str(exc)[:200])
            self._checkpoint_failing = True
            return
        if self._checkpoint_failing:
            log().info("store.checkpoint_recovered")
        self._checkpoint_failing = False

    async def status_loop(self) -> None:
        last_prune = -PRUNE_INTERVAL
        while True:
            await self.clock.sleep(STATUS_INTERVAL)
            # shielded: a shutdown cancelling this task never cuts a transaction in half (the
            # flush finishes; the next one waits for the store's mutex)
            await asyncio.shield(asyncio.ensure_future(self.flush()))
            await asyncio.shield(asyncio.ensure_future(self.checkpoint()))
            mono = self.clock.monotonic()
            if mono - last_prune >= PRUNE_INTERVAL:
                last_prune = mono
                cutoff = self.clock.now() - self.config.store.retention_days * 86400.0
                removed = await asyncio.shield(
                    asyncio.ensure_future(history.prune(self.store, cutoff))
                )
                if removed:
                    log().info("history.pruned", rows=removed)

    def healthy(self) -> bool:
        """The engine is alive: it is idle with nothing queued, or it made progress lately."""
        return not self.inbox or self.clock.monotonic() - self.engine_beat < 30.0

    # -- reload ------------------------------------------------------------------------------
    def reload(self, path: Path, env: Mapping[str, str]) -> bool:
        """Re-read the configuration: rules, channels, manual accounts and the log level
        apply at the engine's next step; an invalid file keeps the old one running."""
        self.notifier.reloading()
        try:
            with Freezer.paused():  # a large book's objects, built without collections
                new = load_config(path, env=env)
        except Exception as exc:  # whatever is wrong with the new file, the old one runs on
            log().error("config.reload_failed", error=str(exc)[:500])
            self.notifier.ready(self.summary())
            return False
        old = self.config
        self.config = new
        self.channels = list(new.channels or ())
        self.labels = labels_of(new.accounts)
        self.worker.set_channels(self.channels)
        manual = {a.key for a in new.accounts if a.snapshot is not None}
        self.controls.append(
            reconfigure(
                new, [a.key for a in old.accounts if a.snapshot is not None and a.key not in manual]
            )
        )
        set_level(new.logging.level)
        for snap in self.manual_snapshots():
            self.inbox.put(snap)
        added = {a.key for a in new.accounts if a.kind is not AccountKind.MANUAL} - {
            a.key for a in old.accounts if a.kind is not AccountKind.MANUAL
        }
        removed = {a.key for a in old.accounts if a.kind is not AccountKind.MANUAL} - {
            a.key for a in new.accounts if a.kind is not AccountKind.MANUAL
        }
        if added or removed:
            log().warning(
                "config.restart_needed",
                added=sorted(map(str, added)),
                removed=sorted(map(str, removed)),
                reason="address accounts are subscribed at start",
            )
        log().info("config.reloaded", rules=True, channels=len(self.channels))
        self.notifier.ready(self.summary())
        return True


def reconfigure(config: Config, removed: Sequence[AccountKey] = ()) -> Reconfigure:
    """The engine input that applies ``config`` (a reload)."""
    return Reconfigure(
        rules=rules_of(config),
        accounts=frozenset(a.key for a in config.accounts),
        expected=frozenset(a.key for a in config.accounts if a.kind is not AccountKind.MANUAL),
        removed=tuple(removed),
        fed_manual=fed_manual(config),
    )


def fed_manual(config: Config) -> frozenset[AccountKey]:
    """The manual accounts a configured feed prices (issue 10.8)."""
    return frozenset(
        a.key for a in config.accounts if a.kind is AccountKind.MANUAL and a.feed is not None
    )


def build_engine(
    config: Config, state: AlertState, *, started: float, replay: bool = False
) -> Engine:
    """The engine for ``config`` with the restored alert ``state``."""
    return Engine(
        rules_of(config),
        state=state,
        rule_sets={v.name: v.rule_set for v in config.venues.values() if v.name != v.rule_set},
        accounts=[a.key for a in config.accounts],
        expected=[a.key for a in config.accounts if a.kind is not AccountKind.MANUAL],
        sample_interval=config.store.sample_interval,
        change_threshold=config.store.change_threshold,
        ready_timeout=config.daemon.ready_timeout,
        started=started,
        replay=replay,
        fed_manual=fed_manual(config),
        timer=time.perf_counter,
    )


def rules_of(config: Config) -> AlertRules:
    """The alert rules of ``config``, with the feed-stale delay from ``[daemon]``."""
    rules = config.rules if isinstance(config.rules, AlertRules) else AlertRules.default()
    return dataclasses.replace(rules, feed_stale_for=config.daemon.stale_alert_after)


async def _open(config: Config) -> Store:
    return await open_store(config.store.path)


async def run(
    opts: RunOptions,
    *,
    env: Mapping[str, str] | None = None,
    clock: Clock | None = None,
    sender: Sender | None = None,
) -> int:
    env = dict(os.environ) if env is None else env
    local.register()  # before the channels are validated
    Freezer.tune()
    try:
        with Freezer.paused():
            config = load_config(opts.config_path, env=env)
    except ConfigError as exc:
        configure_logging(opts.log_level or "info", opts.log_format or "auto")
        log().error("config.invalid", error=str(exc))
        print(f"monitor run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    configure_logging(
        opts.log_level or config.logging.level, opts.log_format or config.logging.format
    )
    notifier = Notifier(env)
    replay_clock: ReplayClock | None = None
    if opts.replay is not None:
        if not opts.replay.exists():
            print(f"monitor run: {opts.replay}: no such recording", file=sys.stderr)
            return EXIT_CONFIG
        replay_clock = ReplayClock(0.0)
        clock = replay_clock
    clock = clock or SystemClock()
    try:
        store = await _open(config)
    except StoreLockedError as exc:
        log().error("store.locked", error=str(exc))
        print(f"monitor run: {exc}", file=sys.stderr)
        return EXIT_LOCKED
    except FatalError as exc:
        log().error("store.unusable", error=str(exc))
        print(f"monitor run: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    try:
        pending = await resume(store)
        state = await restore_alert_state(store, clock.now())
        worker = DeliveryWorker(
            store, list(config.channels or ()), sender or AppriseSender(), clock
        )
        log().info(
            "daemon.starting",
            config=str(config.source),
            store=str(config.store.path),
            outbox_pending=pending,
            replay=str(opts.replay) if opts.replay else None,
        )
        engine = build_engine(
            config, state, started=clock.monotonic(), replay=opts.replay is not None
        )
        daemon = Daemon(
            config, store, engine, worker, clock=clock, notifier=notifier,
            replay=opts.replay is not None,
        )  # fmt: skip
        if opts.replay is not None and replay_clock is not None:
            return await _run_replay(daemon, opts.replay, opts.speed, replay_clock)
        # the live daemon's commits never copy the WAL into the database themselves: the
        # status loop checkpoints beside them (a crash's steps took it in turns otherwise)
        await store.checkpoint_apart()
        try:
            return await _run_live(daemon, opts.config_path, env)
        except FatalError as exc:  # an optional part that cannot start (a taken metrics port)
            log().error("daemon.start_failed", error=str(exc))
            print(f"monitor run: {exc}", file=sys.stderr)
            return EXIT_FAILURE
    finally:
        await store.close()
        notifier.close()


async def _shutdown(daemon: Daemon, signalled: float | None = None, *, cut: bool = True) -> int:
    """Drain the outbox until ``drain_deadline`` after ``signalled`` (monotonic; default now)
    and write the last status. ``cut``: the status rows get :data:`EXIT_STATUS_BUDGET` seconds
    after the drain (a live daemon; a replay writes them all: its store is its result)."""
    start = daemon.clock.monotonic() if signalled is None else signalled
    left = await daemon.worker.drain(start + daemon.config.daemon.drain_deadline)
    if cut:
        daemon.cut_statuses(EXIT_STATUS_BUDGET)
    await daemon.flush()
    log().info(
        "daemon.stopped",
        undelivered=left,
        longest_batch_s=round(daemon.longest_batch, 6),
        statuses_left_out=daemon.statuses_left_out,
    )
    return EXIT_OK


async def _run_live(daemon: Daemon, config_path: Path, env: Mapping[str, str]) -> int:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    reload_requested = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, reload_requested.set)
    for snap in daemon.manual_snapshots():
        daemon.inbox.put(snap)
    feeds = build_feeds(daemon.config, clock=daemon.clock)
    tasks: list[asyncio.Task[Any]] = []
    try:
        engine = asyncio.create_task(daemon.engine_loop(), name="engine")
        tasks.append(engine)
        for feed in feeds:
            tasks.append(asyncio.create_task(_supervise(feed, daemon), name=f"feed:{feed.venue}"))
        tasks.append(asyncio.create_task(daemon.worker.run(), name="delivery"))
        tasks.append(asyncio.create_task(daemon.status_loop(), name="status"))
        interval = watchdog_interval(env)
        if interval is not None and daemon.config.daemon.watchdog:
            tasks.append(
                asyncio.create_task(
                    watchdog_loop(
                        daemon.notifier,
                        interval,
                        clock=daemon.clock,
                        healthy=lambda: not engine.done() and daemon.healthy(),
                    ),
                    name="watchdog",
                )
            )
        engine_task = engine

        def healthy() -> tuple[bool, str]:
            if engine_task.done():
                return False, "the engine task ended"
            if not daemon.healthy():
                return False, "the engine made no progress for 30 s with events queued"
            return True, "ok"

        extras = await start_extras(
            daemon.config,
            daemon.store,
            daemon.clock,
            healthy=healthy,
            feeds=feeds,
            rules=lambda: daemon.engine.rules,
            portfolio=lambda: daemon.engine.portfolio,
        )
        daemon.extras = extras
        log().info("daemon.started", feeds=[f.venue for f in feeds])
        while not stop.is_set():
            waiter = asyncio.create_task(stop.wait())
            reloader = asyncio.create_task(reload_requested.wait())
            await asyncio.wait([waiter, reloader, *tasks], return_when=asyncio.FIRST_COMPLETED)
            waiter.cancel()
            reloader.cancel()
            if reload_requested.is_set():
                reload_requested.clear()
                daemon.reload(config_path, env)
            crashed = [t for t in tasks if t.done()]
            for t in crashed:
                exc = t.exception() if not t.cancelled() else None
                log().error(
                    "daemon.task_died",
                    task=t.get_name(),
                    error=repr(exc) if exc else ("cancelled" if t.cancelled() else "returned"),
                )
                daemon.notifier.stopping()
                await _cancel(tasks)
                if exc is not None and is_store_failure(exc):
                    # the outbox is gone with the store: one direct message, then exit 1
                    where = f"store {daemon.config.store.path}: {describe_store_failure(exc)}"
                    sent = await last_gasp(
                        daemon.channels, daemon.worker.sender, where, LAST_GASP_TIMEOUT
                    )
                    log().error("daemon.last_gasp", channels=len(daemon.channels), sent=sent)
                return EXIT_FAILURE
        daemon.notifier.stopping()
        signalled = daemon.clock.monotonic()
        log().info("daemon.stopping", reason="signal")
        feed_tasks = [t for t in tasks if t.get_name().startswith("feed:")]
        await _cancel(feed_tasks)
        # let the engine apply what its inbox holds and finish the step in hand, for at most
        # STOP_ENGINE_DEADLINE: what it had not decided is decided again after the restart (the
        # store holds the state of the last step written)
        until = signalled + STOP_ENGINE_DEADLINE

        def working() -> bool:
            return bool(daemon.inbox or not daemon.idle.is_set())

        while working() and not engine.done() and daemon.clock.monotonic() < until:  # noqa: ASYNC110 (conditions of another task, only at shutdown)
            await asyncio.sleep(0.01)
        daemon.stop_requested = True
        with contextlib.suppress(Exception):  # it ended with an error: logged by its done check
            await asyncio.wait_for(asyncio.shield(engine), STOP_ENGINE_DEADLINE + 5.0)
        await _cancel([t for t in tasks if t.get_name() != "delivery"])
        return await _shutdown(daemon, signalled)
    finally:
        await _cancel(tasks)
        await daemon.extras.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def _run_replay(daemon: Daemon, path: Path, speed: float, clock: ReplayClock) -> int:
    """Replay a recording through the engine, alerts and delivery; exit at its end."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    # delivery runs in step with the recording (after each step that enqueued something), so
    # a replay delivers the same messages in the same order every time
    parsers = {name: factory() for name, factory in PARSERS.items()}
    bad = 0
    try:
        previous: float | None = None
        shown = time.monotonic()
        for record in read_recording(path):
            if stop.is_set():
                break
            if speed > 0 and previous is not None and record.ts_recv > previous:
                await asyncio.sleep((record.ts_recv - previous) / speed)
            if previous is None:  # manual accounts join at the recording's first instant
                clock.t = record.ts_recv
                await daemon.step(daemon.manual_snapshots(), clock.t)
            previous = record.ts_recv
            clock.t = max(clock.t, record.ts_recv)
            parser = parsers.get(record.venue)
            if parser is None:
                bad += 1
                continue
            try:
                events = events_of(parser, record)
            except ParseError as exc:
                bad += 1
                log().warning(
                    "feed.bad_frame", venue=exc.venue, problem=exc.problem, frame=exc.frame
                )
                continue
            if events:
                await daemon.step(events, clock.t)
            if daemon.enqueued:
                daemon.enqueued = 0
                await daemon.worker.step()
            if daemon.engine.batches % 200 == 0:
                await daemon.flush()
                if sys.stderr.isatty() and time.monotonic() - shown >= 2.0:  # progress
                    shown = time.monotonic()
                    print(
                        f"replaying: {daemon.engine.batches} batches, at {_iso(record.ts_recv)}",
                        file=sys.stderr,
                    )
            await asyncio.sleep(0)  # let signals and logging run
        daemon.notifier.stopping()
        clock.release()
        log().info("replay.finished", path=str(path), batches=daemon.engine.batches, bad_frames=bad)
        code = await _shutdown(daemon, cut=False)
        left, _ = await backlog(daemon.store)
        counts = (
            ", ".join(f"{n} {k}" for k, n in sorted(daemon.engine.transitions.items())) or "none"
        )
        print(
            f"replay of {path} finished: {daemon.engine.batches} batches, "
            f"{len(daemon.engine.ratios)} scopes, "
            f"{bad} bad frames; alert transitions: {counts}; notifications undelivered: {left}",
            file=sys.stderr,
        )
        return code
    except InputError as exc:
        log().error("replay.failed", error=str(exc))
        print(f"monitor run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


FEED_RESTART_DELAY = 30.0


async def _supervise(feed: Feed, daemon: Daemon) -> None:
    """Run a feed for ever. A feed reconnects by itself; one that returns (nothing it can
    watch) or crashes (a bug) is reported down, so its venue shows in ``status`` and alerts,
    and started again after a pause, while every other venue goes on being monitored."""
    down = False

    def emit(event: Event) -> None:
        nonlocal down
        if down and not isinstance(event, FeedStatus):
            down = False  # data again after a restart
            daemon.inbox.put(
                FeedStatus(
                    feed.venue,
                    "feed",
                    FeedState.RECOVERED,
                    "data again",
                    ts_recv=daemon.clock.now(),
                )
            )
        daemon.inbox.put(event)

    while True:
        try:
            await feed.run(emit)
            problem = "the feed stopped (nothing it can watch?)"
            log().error("feed.ended", venue=feed.venue)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            problem = f"the feed crashed: {exc!r}"[:300]
            log().exception("feed.crashed", venue=feed.venue)
        down = True
        daemon.inbox.put(
            FeedStatus(feed.venue, "feed", FeedState.DOWN, problem, ts_recv=daemon.clock.now())
        )
        await daemon.clock.sleep(FEED_RESTART_DELAY)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def _cancel(tasks: Sequence[asyncio.Task[Any]]) -> None:
    for t in tasks:
        t.cancel()
    for t in tasks:
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await t
