"""The Prometheus exposition: a private :class:`prometheus_client.CollectorRegistry` (never the
global one) with one custom collector that turns a :class:`MetricsSnapshot`, read from the
source at scrape time, into metric families. Nothing is computed between scrapes.

Metrics (labels in braces; units in the name; every gauge is the daemon's latest figure):

=================================================  ==================================  ======
name                                               labels                              type
=================================================  ==================================  ======
monitor_scope_equity                               venue, account, label, scope        gauge
monitor_scope_maintenance_margin                   venue, account, label, scope        gauge
monitor_scope_margin_ratio                         venue, account, label, scope        gauge
monitor_scope_nearest_liquidation_distance_ratio   venue, account, label, scope        gauge
monitor_scope_shock_to_liquidation_ratio           venue, account, label, scope        gauge
monitor_scope_liquidatable                         venue, account, label, scope        gauge
monitor_scope_updated_timestamp_seconds            venue, account, label, scope        gauge
monitor_feed_state                                 venue, channel, state               gauge
monitor_feed_seconds_since_last_message            venue, channel ("*": the venue)     gauge
monitor_alerts_firing                              rule, severity                      gauge
monitor_outbox_backlog                             channel                             gauge
monitor_outbox_oldest_age_seconds                  channel                             gauge
monitor_engine_batch_duration_seconds              (none)                              histogram
monitor_feed_frames_total                          venue                               counter
monitor_feed_bad_frames_total                      venue                               counter
monitor_bot_ignored_updates_total                  (none)                              counter
=================================================  ==================================  ======

Fail closed: a scope whose margin ratio cannot be computed because it is liquidatable (equity
≤ 0) exports ``monitor_scope_margin_ratio`` as ``+Inf``, so ``monitor_scope_margin_ratio >= 1``
fires; other unknown figures are left out (no sample) rather than exported as a reassuring
number (a scope whose figures could not be computed has no ``monitor_scope_liquidatable``
sample either; its ``monitor_scope_updated_timestamp_seconds`` is there, its figures are
not). ``monitor_feed_state`` is an enum: 1 for the feed's current state, 0 for the others.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from monitor.model.events import FeedState
from monitor.notify.render import account_label
from monitor.ops.figures import (
    AlertCount,
    BatchTimings,
    FeedFigures,
    MetricsSnapshot,
    MetricsSource,
    OutboxFigures,
    ScopeFigures,
    VenueFrames,
)
from monitor.store import alert_state, history, outbox
from monitor.store.db import Store

SCOPE_LABELS = ("venue", "account", "label", "scope")
FEED_STATES: tuple[str, ...] = tuple(s.value for s in FeedState)
#: the store's per-venue row (channel "*"): only its last-message time is meaningful
ANY_CHANNEL = "*"


def _fmt(bound: float) -> str:
    return repr(float(bound))


class SnapshotCollector(Collector):
    """Yields the families of :attr:`current` (set by :class:`Exporter` just before each
    exposition is generated)."""

    def __init__(self) -> None:
        self.current = MetricsSnapshot()

    def collect(self) -> Iterator[Metric]:
        return iter(families(self.current))


def families(snap: MetricsSnapshot) -> list[Metric]:
    """The metric families of one snapshot (see the module table)."""
    out: list[Metric] = []

    def scope_gauge(name: str, doc: str) -> GaugeMetricFamily:
        g = GaugeMetricFamily(name, doc, labels=SCOPE_LABELS)
        out.append(g)
        return g

    equity = scope_gauge("monitor_scope_equity", "Scope equity (collateral + uPnL), quote ccy")
    maint = scope_gauge("monitor_scope_maintenance_margin", "Scope maintenance margin, quote ccy")
    ratio = scope_gauge(
        "monitor_scope_margin_ratio",
        "Maintenance / equity; >= 1 liquidatable; +Inf when equity <= 0",
    )
    dist = scope_gauge(
        "monitor_scope_nearest_liquidation_distance_ratio",
        "Smallest move against a position of the scope that liquidates it (fraction of price)",
    )
    shock = scope_gauge(
        "monitor_scope_shock_to_liquidation_ratio",
        "Smallest market-wide move (either way) that liquidates the scope (fraction)",
    )
    liq = scope_gauge("monitor_scope_liquidatable", "1 when the scope is liquidatable now")
    upd = scope_gauge(
        "monitor_scope_updated_timestamp_seconds", "When the daemon last computed the scope"
    )
    for s in snap.scopes:
        labels = [s.venue, s.account, s.label, s.scope]
        _add(equity, labels, s.equity)
        _add(maint, labels, s.maintenance_margin)
        if s.margin_ratio is None and s.liquidatable:
            ratio.add_metric(labels, math.inf)
        else:
            _add(ratio, labels, s.margin_ratio)
        _add(dist, labels, s.nearest_liquidation_distance)
        _add(shock, labels, s.shock_to_liquidation)
        if s.liquidatable or s.equity is not None:
            # figures that could not be computed (no equity) are not "not liquidatable"
            liq.add_metric(labels, 1.0 if s.liquidatable else 0.0)
        _add(upd, labels, s.updated_at)

    state = GaugeMetricFamily(
        "monitor_feed_state",
        "Feed state: 1 for the current one (connecting, live, stale, recovered, down)",
        labels=("venue", "channel", "state"),
    )
    age = GaugeMetricFamily(
        "monitor_feed_seconds_since_last_message",
        "Seconds since the venue's last message",
        labels=("venue", "channel"),
    )
    out += [state, age]
    for f in snap.feeds:
        _add(age, [f.venue, f.channel], f.seconds_since_message)
        if f.channel == ANY_CHANNEL:
            continue  # the venue's last-message row: its state is not a subscription's
        states = FEED_STATES if f.state in FEED_STATES else (*FEED_STATES, f.state)
        for st in states:
            state.add_metric([f.venue, f.channel, st], 1.0 if st == f.state else 0.0)

    firing = GaugeMetricFamily(
        "monitor_alerts_firing", "Alerts firing, by rule and severity", labels=("rule", "severity")
    )
    out.append(firing)
    for a in snap.alerts:
        firing.add_metric([a.rule, a.severity], float(a.firing))

    backlog = GaugeMetricFamily(
        "monitor_outbox_backlog", "Undelivered notifications per channel", labels=("channel",)
    )
    oldest = GaugeMetricFamily(
        "monitor_outbox_oldest_age_seconds",
        "Age of the oldest undelivered notification per channel",
        labels=("channel",),
    )
    out += [backlog, oldest]
    for o in snap.outbox:
        backlog.add_metric([o.channel], float(o.backlog))
        _add(oldest, [o.channel], o.oldest_age_seconds)

    if snap.batch_seconds is not None:
        h = snap.batch_seconds
        hist = HistogramMetricFamily(
            "monitor_engine_batch_duration_seconds",
            "Time the engine took per batch of events (apply, recompute, evaluate, write)",
        )
        hist.add_metric(
            [],
            [(_fmt(b), float(n)) for b, n in h.buckets] + [("+Inf", float(h.count))],
            h.total,
        )
        out.append(hist)

    frames = CounterMetricFamily(
        "monitor_feed_frames", "Frames received from the venue", labels=("venue",)
    )
    bad = CounterMetricFamily(
        "monitor_feed_bad_frames",
        "Frames refused (malformed; logged, counted, skipped)",
        labels=("venue",),
    )
    out += [frames, bad]
    for v in snap.frames:
        frames.add_metric([v.venue], float(v.frames))
        bad.add_metric([v.venue], float(v.bad_frames))
    if snap.bot_ignored is not None:
        ignored = CounterMetricFamily(
            "monitor_bot_ignored_updates",
            "Telegram updates from chats the bot does not answer (ignored)",
        )
        ignored.add_metric([], float(snap.bot_ignored))
        out.append(ignored)
    return out


def _add(family: GaugeMetricFamily, labels: list[str], value: float | None) -> None:
    if value is not None and not math.isnan(value):
        family.add_metric(labels, value)


class Exporter:
    """The exposition of a :class:`~monitor.ops.figures.MetricsSource`, on a private
    registry. :meth:`scrape` reads the source once and returns the text format (0.0.4)."""

    def __init__(self, source: MetricsSource) -> None:
        self.source = source
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = SnapshotCollector()
        self.registry.register(self.collector)
        self._lock = asyncio.Lock()

    async def scrape(self) -> bytes:
        snap = await self.source.metrics_snapshot()
        async with self._lock:  # one scrape never sees another's snapshot
            self.collector.current = snap
            # formatting thousands of samples takes tens of ms: off the event loop
            return await asyncio.to_thread(generate_latest, self.registry)


class StoreMetricsSource:
    """A :class:`~monitor.ops.figures.MetricsSource` reading what the daemon writes to its
    store every second (``scope_status``, ``feed_status``, ``alert_state``, ``outbox``), plus
    what only the process knows: ``frames()`` (per venue frame counters, e.g. from the feeds'
    stats), ``batch`` (the engine's :class:`BatchTimings`) and ``bot_ignored()`` (the Telegram
    bot's :attr:`~monitor.ops.bot.CommandBot.ignored`).

    ``labels`` maps ``"venue:account"`` to the account's configured label. ``now`` is the
    wall clock (epoch s), for ages.
    """

    def __init__(
        self,
        store: Store,
        *,
        labels: Mapping[str, str] | None = None,
        frames: Callable[[], Iterable[VenueFrames]] | None = None,
        batch: BatchTimings | None = None,
        bot_ignored: Callable[[], int] | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.labels = dict(labels or {})
        self.frames = frames
        self.batch = batch
        self.bot_ignored = bot_ignored
        self.now = now

    async def metrics_snapshot(self) -> MetricsSnapshot:
        now = self.now()
        view = await history.read_status(self.store)
        scopes = [self._scope(d) for d in view.scopes]
        feeds = [
            FeedFigures(
                venue=str(f["venue"]),
                channel=str(f["channel"]),
                state=str(f["state"]),
                seconds_since_message=(
                    None
                    if f["last_message_at"] is None
                    else max(now - float(f["last_message_at"]), 0.0)
                ),
            )
            for f in view.feeds
        ]
        state = await alert_state.load(self.store)
        counts = Counter(
            (rec.rule, str(rec.severity))
            for rec in state.alerts.values()
            if str(rec.status) == "firing"
        )
        alerts = [AlertCount(r, s, n) for (r, s), n in sorted(counts.items())]
        return MetricsSnapshot(
            scopes=scopes,
            feeds=feeds,
            alerts=alerts,
            outbox=await outbox_by_channel(self.store, now),
            frames=list(self.frames()) if self.frames is not None else [],
            batch_seconds=self.batch.figures() if self.batch is not None else None,
            bot_ignored=self.bot_ignored() if self.bot_ignored is not None else None,
        )

    def _scope(self, d: Mapping[str, object]) -> ScopeFigures:
        venue, account = str(d["venue"]), str(d["account"])

        def num(key: str) -> float | None:
            v = d.get(key)
            return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

        return ScopeFigures(
            venue=venue,
            account=account,
            scope=str(d["scope"]),
            # a dYdX child subaccount and a HIP-3 dex account carry their parent's label
            label=account_label(f"{venue}:{account}", self.labels) or "",
            equity=num("equity"),
            maintenance_margin=num("maintenance_margin"),
            margin_ratio=num("margin_ratio"),
            nearest_liquidation_distance=num("nearest_liquidation_distance"),
            shock_to_liquidation=num("shock_to_liquidation"),
            liquidatable=bool(d.get("liquidatable")),
            updated_at=num("updated_at"),
        )


async def outbox_by_channel(store: Store, now: float) -> list[OutboxFigures]:
    """Undelivered (pending or sending) outbox rows per channel and the oldest one's age."""
    async with store.read() as conn:
        rows = await conn.execute_fetchall(
            "SELECT channel, count(*), min(created_at) FROM outbox WHERE status IN (?, ?) "
            "GROUP BY channel ORDER BY channel",
            (outbox.PENDING, outbox.SENDING),
        )
    return [
        OutboxFigures(str(ch), int(n), None if oldest is None else max(now - float(oldest), 0.0))
        for ch, n, oldest in rows
    ]
