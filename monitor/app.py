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

Signals: SIGTERM/SIGINT stop the feeds, let the engine finish what is queued, drain the outbox
until ``daemon.drain_deadline``, close the store and exit 0. SIGHUP re-reads the configuration:
rules, channels, manual accounts and the log level apply at once, without touching the feed
connections; an invalid file keeps the old configuration running and logs why. Address accounts
added or removed need a restart (logged).

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
import math
import os
import signal
import sys
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import structlog

from monitor.alerts.engine import AlertStatus, Observation
from monitor.alerts.rules import AlertRules
from monitor.alerts.thresholds import thresholds_from_rules
from monitor.clock import Clock, SystemClock
from monitor.config import AccountKind, Config, load_config
from monitor.errors import ConfigError, FatalError, InputError, ParseError
from monitor.logs import configure_logging, set_level
from monitor.margin.risk import ScopeRisk
from monitor.model.events import (
    AccountSnapshot,
    Event,
    FeedState,
    FeedStatus,
    FundingPayment,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
    PositionUpdate,
)
from monitor.model.fastpath import Thresholds
from monitor.model.portfolio import Portfolio
from monitor.model.positions import AccountKey, ScopeKey
from monitor.notify import local
from monitor.notify.sender import AppriseSender, Sender
from monitor.notify.service import AlertService, observe
from monitor.sdnotify import Notifier, watchdog_interval, watchdog_loop
from monitor.store import history
from monitor.store.db import Store, StoreLockedError, open_store
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
#: every scope is evaluated in full at least this often (seconds): funding, shock and stress
SWEEP_INTERVAL = 5.0
TICK_INTERVAL = 1.0
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


@dataclass
class _Pending:
    samples: list[history.Sample] = field(default_factory=list)
    statuses: dict[str, tuple[ScopeRisk, dict[str, Any]]] = field(default_factory=dict)
    vanished: set[str] = field(default_factory=set)
    feeds: dict[tuple[str, str], FeedStatus] = field(default_factory=dict)
    funding: list[FundingPayment] = field(default_factory=list)


class Daemon:
    """Owns the running parts; ``engine_batch`` is the only writer of the portfolio."""

    def __init__(
        self,
        config: Config,
        store: Store,
        service: AlertService,
        clock: Clock,
        notifier: Notifier,
        *,
        replay: bool = False,
    ) -> None:
        self.config = config
        self.store = store
        self.service = service
        self.clock = clock
        self.notifier = notifier
        self.replay = replay
        self.portfolio = Portfolio(
            {v.name: v.rule_set for v in config.venues.values() if v.name != v.rule_set}
        )
        self.inbox = Inbox()
        self.sampler = history.Sampler(config.store.sample_interval, config.store.change_threshold)
        self.pending = _Pending()
        self.last_message: dict[str, float] = {}
        self.feed_states: dict[tuple[str, str], FeedStatus] = {}
        self.latest: dict[str, ScopeRisk] = {}
        self.seen_accounts: set[AccountKey] = set()
        self.ready = False
        self.started = clock.monotonic()
        self.engine_beat = clock.monotonic()
        self.batches = 0
        self._sweep_at: float | None = None
        self._sweep_queue: deque[ScopeKey] = deque()
        self._sweep_size = 0
        self._sweep_credit = 0.0
        self.full_sweep = False
        """Set by a reload: evaluate every scope against the new rules at the next batch."""
        self.evaluated = 0
        """Scopes evaluated in full so far (the rest of the ticks only compared bands)."""
        self.dropped: list[ScopeKey] = []
        """Scopes of accounts no longer configured, resolved at the next batch."""
        self.transitions: Counter[str] = Counter()
        self.idle = asyncio.Event()
        #: the engine's turn: a batch and an idle tick never interleave (one state owner)
        self.turn = asyncio.Lock()
        self._last_tick: float | None = None

    # -- accounts ----------------------------------------------------------------------------
    def expected_accounts(self) -> set[AccountKey]:
        return {a.key for a in self.config.accounts if a.kind is AccountKind.ADDRESS}

    def manual_snapshots(self) -> list[AccountSnapshot]:
        return [a.snapshot for a in self.config.accounts if a.snapshot is not None]

    # -- the engine --------------------------------------------------------------------------
    def _alerted_scopes(self, group: str) -> list[ScopeKey]:
        """The scopes of the account ``group`` ("venue:account") with an active alert."""
        venue, _, account = group.partition(":")
        prefix = group + "/"
        out: dict[ScopeKey, None] = {}
        for rec in self.service.state.alerts.values():
            base = rec.subject.split("#", 1)[0]
            if rec.group == group and base.startswith(prefix):
                out[ScopeKey(venue, account, base[len(prefix) :])] = None
        return list(out)

    def forget_unconfigured(self, removed: Sequence[AccountKey] = ()) -> None:
        """Resolve, at the next batch, the active alerts of accounts the configuration no
        longer has (restored after a restart, or of ``removed`` manual accounts, which also
        leave the portfolio). An address account's HIP-3 dex accounts (``0x…@dex``) count as
        configured with it."""
        configured = {str(a.key) for a in self.config.accounts}

        def known(group: str) -> bool:
            return group in configured or group.split("@", 1)[0] in configured

        groups = {
            r.group
            for r in self.service.state.alerts.values()
            if not r.group.startswith("feed:") and r.group != "monitor" and not known(r.group)
        }
        for group in sorted(groups):
            self.dropped.extend(self._alerted_scopes(group))
        for key in removed:
            self.dropped.extend(self.portfolio.drop_account(key))
        if self.dropped:
            log().info("accounts.forgotten", scopes=sorted(map(str, self.dropped)))

    def thresholds(self, key: ScopeKey) -> Thresholds:
        """The alert levels the scope's price band is built from (its peak for drawdown)."""
        peak = self.service.state.peaks.get(str(key))
        return thresholds_from_rules(self.service.rules, str(key.account_key), peak)

    def _sweep(self, now: float) -> list[ScopeKey]:
        """A round-robin slice of every scope, sized so that each is evaluated in full at
        least every ``SWEEP_INTERVAL`` seconds: funding, shock and stress figures are not
        part of the price bands."""
        if self._sweep_at is None or self.full_sweep:
            self._sweep_at = now
            self.full_sweep = False
            return self.portfolio.scope_keys()
        elapsed = max(now - self._sweep_at, 0.0)
        self._sweep_at = now
        if not self._sweep_queue:
            self._sweep_queue.extend(self.portfolio.scope_keys())
            self._sweep_size = len(self._sweep_queue)
        # a fractional credit, so a small book is not swept on every batch
        self._sweep_credit += self._sweep_size * min(elapsed / SWEEP_INTERVAL, 1.0)
        n = min(math.floor(self._sweep_credit), len(self._sweep_queue))
        self._sweep_credit -= n
        return [self._sweep_queue.popleft() for _ in range(n)]

    async def engine_batch(self, events: Sequence[Event], now: float) -> None:
        """Apply a batch and decide. Prices take the fast path: a scope is evaluated in full
        only when a price left its trigger band and crossed an alert level (``rearm``), when
        an account, position or instrument event touched it, or when the sweep reaches it."""
        touched: dict[ScopeKey, None] = {}
        moved: dict[ScopeKey, None] = {}
        liquidated: list[tuple[ScopeKey, str]] = []
        feeds: list[FeedStatus] = []
        portfolio = self.portfolio
        for ev in events:
            if isinstance(ev, MarkPrice | FundingRate):
                for key in portfolio.apply_fast(ev):
                    moved[key] = None
            else:
                for key in portfolio.apply(ev):
                    touched[key] = None
            venue = ev.instrument.venue if isinstance(ev, InstrumentSpec) else ev.venue
            if ev.ts_recv:
                self.last_message[venue] = max(self.last_message.get(venue, 0.0), ev.ts_recv)
            if isinstance(ev, AccountSnapshot):
                self.seen_accounts.add(AccountKey(ev.venue, ev.account))
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
                    # alerts held while the feed was stale are decided again at once
                    for key in portfolio.scope_keys():
                        if key.venue == ev.venue:
                            touched[key] = None
                feeds.append(ev)
                self.feed_states[(ev.venue, ev.channel)] = ev
                self.pending.feeds[(ev.venue, ev.channel)] = ev
            elif isinstance(ev, FundingPayment):
                self.pending.funding.append(ev)
        for key in moved:
            if key not in touched and portfolio.rearm(key, self.thresholds(key)):
                touched[key] = None
        forgotten, self.dropped = self.dropped, []  # accounts no longer configured
        for key in self._sweep(now):
            touched[key] = None
        obs: Observation = observe(portfolio, touched, liquidated=liquidated, feeds=feeds)
        if forgotten:
            obs = dataclasses.replace(obs, forgotten=forgotten)
        self.evaluated += len(obs.risks)
        for t in await self.service.process(obs, now):
            self.transitions[t.kind.value] += 1
        for risk in obs.risks:
            portfolio.arm(risk.key, self.thresholds(risk.key))
        firing = self._firing_by_scope()
        for risk in obs.risks:
            scope = str(risk.key)
            self.latest[scope] = risk
            doc = history.status_doc(risk, firing.get(scope, ()))
            doc["ts"] = now
            self.pending.statuses[scope] = (risk, doc)
            self.pending.vanished.discard(scope)
            if self.sampler.due(risk, now):
                sample = history.Sample.of(risk, now)
                self.sampler.taken(sample)
                self.pending.samples.append(sample)
        for key in obs.vanished:
            scope = str(key)
            self.latest.pop(scope, None)
            self.pending.statuses.pop(scope, None)
            self.pending.vanished.add(scope)
            self.sampler.forget(scope)
        self.batches += 1
        self.engine_beat = self.clock.monotonic()
        if self._last_tick is None or now - self._last_tick >= TICK_INTERVAL:
            for t in await self.service.tick(now):
                self.transitions[t.kind.value] += 1
            self._last_tick = now
        self._maybe_ready()

    def _firing_by_scope(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for rec in self.service.state.alerts.values():
            if rec.status is AlertStatus.FIRING:
                scope = rec.subject.split("#", 1)[0]
                what = f"{rec.severity.value}:{rec.rule}" + (f"#{rec.symbol}" if rec.symbol else "")
                out.setdefault(scope, []).append(what)
        return out

    def _maybe_ready(self) -> None:
        if self.ready:
            return
        if self.replay:
            self.ready = True
            self.notifier.ready(self.summary())
            return
        waited = self.clock.monotonic() - self.started
        if self.expected_accounts() <= self.seen_accounts or (
            waited >= self.config.daemon.ready_timeout
        ):
            self.ready = True
            missing = sorted(str(a) for a in self.expected_accounts() - self.seen_accounts)
            status = self.summary()
            if missing:
                status += f"; no snapshot yet from {', '.join(missing)}"
                log().warning("daemon.ready_without", accounts=missing)
            self.notifier.ready(status)
            log().info("daemon.ready", status=status)
            # the book is loaded: keep it out of the collector's full passes from now on
            gc.freeze()

    async def engine(self) -> None:
        while True:
            self.idle.set()
            events = await self.inbox.get_batch()
            self.idle.clear()
            async with self.turn:
                await self.engine_batch(events, self.clock.now())

    async def ticker(self) -> None:
        """Timers (``for`` durations, repeats, mute expiry) and readiness while idle."""
        while True:
            await self.clock.sleep(TICK_INTERVAL)
            self._maybe_ready()
            if self.inbox:  # the engine ticks while it works
                continue
            async with self.turn:  # never interleaved with an engine batch
                if self.full_sweep:
                    await self.engine_batch([], self.clock.now())
                    continue
                await self.service.tick(self.clock.now())
            self.engine_beat = self.clock.monotonic()

    # -- status, history ----------------------------------------------------------------------
    def summary(self) -> str:
        """One line for ``systemctl status`` and the log."""
        firing = sum(
            1 for r in self.service.state.alerts.values() if r.status is AlertStatus.FIRING
        )
        worst = max(
            (r for r in self.latest.values() if r.margin_ratio is not None),
            key=lambda r: r.margin_ratio or 0.0,
            default=None,
        )
        stale = sorted(
            {
                f"{v}/{c}"
                for (v, c), fs in self.feed_states.items()
                if fs.state.value in ("stale", "down")
            }
        )
        parts = [f"{len(self.latest)} scopes"]
        if worst is not None and worst.margin_ratio is not None:
            parts.append(f"worst margin ratio {worst.margin_ratio * 100:.1f}% ({worst.key})")
        parts.append(f"{firing} alerts firing")
        if stale:
            parts.append("stale: " + ", ".join(stale))
        return "; ".join(parts)

    async def flush(self) -> None:
        p, self.pending = self.pending, _Pending()
        now = self.clock.now()
        if p.samples or p.statuses or p.vanished:
            await history.record(self.store, p.samples, p.statuses.values(), p.vanished)
        if p.feeds or self.last_message:
            await history.record_feeds(self.store, p.feeds.values(), dict(self.last_message), now)
        if p.funding:
            await history.record_funding(self.store, p.funding)
        summary = self.summary()
        await history.set_daemon_status(
            self.store,
            {
                "pid": os.getpid(),
                "summary": summary,
                "replay": self.replay,
                "batches": self.batches,
                "config": str(self.config.source),
            },
            time.time(),
        )
        self.notifier.status(summary)

    async def status_loop(self) -> None:
        last_prune = -PRUNE_INTERVAL
        while True:
            await self.clock.sleep(STATUS_INTERVAL)
            await self.flush()
            mono = self.clock.monotonic()
            if mono - last_prune >= PRUNE_INTERVAL:
                last_prune = mono
                cutoff = self.clock.now() - self.config.store.retention_days * 86400.0
                removed = await history.prune(self.store, cutoff)
                if removed:
                    log().info("history.pruned", rows=removed)

    def healthy(self) -> bool:
        """The engine is alive: it is idle with nothing queued, or it made progress lately."""
        return not self.inbox or self.clock.monotonic() - self.engine_beat < 30.0

    # -- reload ------------------------------------------------------------------------------
    def reload(self, path: Path, env: Mapping[str, str]) -> bool:
        self.notifier.reloading()
        try:
            new = load_config(path, env=env)
        except Exception as exc:  # whatever is wrong with the new file, the old one runs on
            log().error("config.reload_failed", error=str(exc)[:500])
            self.notifier.ready(self.summary())
            return False
        old = self.config
        self.config = new
        self.service.update(rules_of(new), list(new.channels or ()))
        self.full_sweep = True  # the bands were built from the old thresholds
        manual = {a.key for a in new.accounts if a.snapshot is not None}
        self.forget_unconfigured(
            [a.key for a in old.accounts if a.snapshot is not None and a.key not in manual]
        )
        set_level(new.logging.level)
        for snap in self.manual_snapshots():
            self.inbox.put(snap)
        added = {a.key for a in new.accounts if a.kind is AccountKind.ADDRESS} - {
            a.key for a in old.accounts if a.kind is AccountKind.ADDRESS
        }
        removed = {a.key for a in old.accounts if a.kind is AccountKind.ADDRESS} - {
            a.key for a in new.accounts if a.kind is AccountKind.ADDRESS
        }
        if added or removed:
            log().warning(
                "config.restart_needed",
                added=sorted(map(str, added)),
                removed=sorted(map(str, removed)),
                reason="address accounts are subscribed at start",
            )
        log().info("config.reloaded", rules=True, channels=len(new.channels or ()))
        self.notifier.ready(self.summary())
        return True


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
    try:
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
        service = await AlertService.start(
            store,
            rules_of(config),
            list(config.channels or ()),
            sender=sender or AppriseSender(),
            clock=clock,
        )
        log().info(
            "daemon.starting",
            config=str(config.source),
            store=str(config.store.path),
            outbox_pending=pending,
            replay=str(opts.replay) if opts.replay else None,
        )
        daemon = Daemon(config, store, service, clock, notifier, replay=opts.replay is not None)
        daemon.forget_unconfigured()
        if opts.replay is not None and replay_clock is not None:
            return await _run_replay(daemon, opts.replay, opts.speed, replay_clock)
        return await _run_live(daemon, opts.config_path, env)
    finally:
        await store.close()
        notifier.close()


async def _shutdown(daemon: Daemon) -> int:
    """Drain the outbox within the deadline and write the last status."""
    worker = daemon.service.worker
    left = await worker.drain(daemon.clock.monotonic() + daemon.config.daemon.drain_deadline)
    await daemon.flush()
    log().info("daemon.stopped", undelivered=left)
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
        engine = asyncio.create_task(daemon.engine(), name="engine")
        tasks.append(engine)
        for feed in feeds:
            tasks.append(asyncio.create_task(_supervise(feed, daemon), name=f"feed:{feed.venue}"))
        tasks.append(asyncio.create_task(daemon.service.worker.run(), name="delivery"))
        tasks.append(asyncio.create_task(daemon.status_loop(), name="status"))
        tasks.append(asyncio.create_task(daemon.ticker(), name="ticker"))
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
                return EXIT_FAILURE
        daemon.notifier.stopping()
        log().info("daemon.stopping", reason="signal")
        feed_tasks = [t for t in tasks if t.get_name().startswith("feed:")]
        await _cancel(feed_tasks)
        # let the engine finish what is queued and the batch in hand
        while (daemon.inbox or not daemon.idle.is_set()) and not engine.done():  # noqa: ASYNC110 (two conditions of another task, only at shutdown)
            await asyncio.sleep(0.01)
        await _cancel([t for t in tasks if t.get_name() != "delivery"])
        return await _shutdown(daemon)
    finally:
        await _cancel(tasks)
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)


async def _run_replay(daemon: Daemon, path: Path, speed: float, clock: ReplayClock) -> int:
    """Replay a recording through the engine, alerts and delivery; exit at its end."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    worker = asyncio.create_task(daemon.service.worker.run(), name="delivery")
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
                for snap in daemon.manual_snapshots():
                    await daemon.engine_batch([snap], clock.t)
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
                await daemon.engine_batch(events, clock.t)
            if daemon.batches % 200 == 0:
                await daemon.flush()
                if sys.stderr.isatty() and time.monotonic() - shown >= 2.0:  # progress
                    shown = time.monotonic()
                    print(
                        f"replaying: {daemon.batches} batches, at {_iso(record.ts_recv)}",
                        file=sys.stderr,
                    )
            await asyncio.sleep(0)  # let the delivery worker run
        daemon.notifier.stopping()
        clock.release()
        log().info("replay.finished", path=str(path), batches=daemon.batches, bad_frames=bad)
        code = await _shutdown(daemon)
        left, _ = await backlog(daemon.store)
        counts = ", ".join(f"{n} {k}" for k, n in sorted(daemon.transitions.items())) or "none"
        print(
            f"replay of {path} finished: {daemon.batches} batches, {len(daemon.latest)} scopes, "
            f"{bad} bad frames; alert transitions: {counts}; notifications undelivered: {left}",
            file=sys.stderr,
        )
        return code
    except InputError as exc:
        log().error("replay.failed", error=str(exc))
        print(f"monitor run: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    finally:
        await _cancel([worker])
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
