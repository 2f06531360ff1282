"""The I/O half of the engine step: restore the alert state, persist a :class:`Step` in one
transaction, render its notifications per channel, log what it decided.

The engine (:mod:`monitor.engine`) decides and the shell writes. ``persist`` writes the alert
state delta, the transitions and the outbox rows of one step in **one** SQLite transaction,
so a crash before the commit loses nothing that was promised (the state is the old one, so
the same transitions come again) and a crash after it loses nothing either (the outbox is
durable). The idempotency key of an outbox row is ``sha1(transition ids of the group) :
channel`` (:mod:`monitor.notify.outbound`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from monitor import logs
from monitor.alerts.engine import AlertState, Transition, TransitionKind
from monitor.alerts.rules import RuleKind
from monitor.engine.core import Engine, Step
from monitor.margin.remedy import Remedy
from monitor.margin.risk import ScopeRisk
from monitor.model.ids import IdError, ScopeKey, parse_subject
from monitor.model.portfolio import Portfolio
from monitor.notify.channels import Channel
from monitor.notify.outbound import (
    Recent,
    ReductionBudget,
    RemedyOf,
    build_messages,
    remedy_for,
)
from monitor.store import alert_state, outbox
from monitor.store.db import Store

#: the log event of each transition kind (``alert.fired``...)
_EVENTS: dict[TransitionKind, str] = {k: f"alert.{k.value}" for k in TransitionKind}


def log() -> Any:
    """A fresh logger per call (never a module-level proxy pinned by structlog's cache)."""
    return structlog.get_logger()


async def restore_alert_state(store: Store, now: float) -> AlertState:
    """The persisted alert state, less feed health.

    Feed health is not inherited: the feeds report it again from scratch, and a fresh
    watchdog never says "recovered" for a staleness it did not see, which would hold the
    venue's alerts for good. A feed still stale alerts again after its delay."""
    async with store.transaction() as conn:
        await alert_state.migrate_peaks(conn)
    loaded = await alert_state.load(store)
    state = replace(
        loaded,
        stale={},
        alerts={k: r for k, r in loaded.alerts.items() if r.rule != RuleKind.FEED_STALE},
    )
    if state != loaded:
        async with store.transaction() as conn:
            await alert_state.save(conn, loaded, state, now)
        log().info("alerts.feed_state_reset", feeds=sorted(loaded.stale))
    log().info("alerts.restored", active=len(state.alerts))
    return state


def _remedy(engine: Engine) -> RemedyOf:
    def remedy(t: Transition, *, reduce: bool = True) -> Remedy | None:
        return remedy_for(engine.portfolio, t, engine.rules, reduce=reduce)

    return remedy


class RiskView:
    """The figures per scope name for the renderers, and the recent values that say how fast
    an alert moved.

    ``by_name`` holds the figures of the step being written. With an engine, nothing else is
    kept: a later transition that carries no figures of its own (a ``for`` delay run out, a
    repeat, a notice) shows the scope's figures at the latest prices, computed from the
    engine's portfolio when its message is built (:class:`LiveFigures`). Keeping every
    alerted scope's last figures instead cost ~2.5 KB a scope (in-process, after a crash at
    100,000 positions): ~0.5 GB at 10⁶ positions once most have an alert. Without an engine
    (a bare pipeline), ``by_name`` keeps the last figures of every scope."""

    def __init__(self) -> None:
        self.by_name: dict[str, ScopeRisk] = {}
        self.recent = Recent()
        self.reductions = ReductionBudget()

    def update(self, step: Step) -> None:
        """Add ``step``'s figures (before its messages are built)."""
        for r in step.risks:
            self.by_name[str(r.key)] = r
        for k in step.removed:
            self.by_name.pop(str(k), None)

    def figures(self, engine: Engine | None) -> Mapping[str, ScopeRisk]:
        """What the renderers read for the step being written: ``by_name``, and with
        ``engine`` the figures of any other scope at the latest prices."""
        if engine is None:
            return self.by_name
        return LiveFigures(self.by_name, engine.portfolio)

    def settle(self) -> None:
        """After a step's messages (with an engine): drop its figures."""
        self.by_name.clear()


class LiveFigures(Mapping[str, ScopeRisk]):
    """Figures by scope name (``venue:account/scope``): the step's own (``step``), else the
    scope's at the portfolio's latest prices (``Portfolio.risk`` without the stress table,
    as the engine evaluates), computed on the first lookup and kept for this object's life
    (one step's messages). A name that is not a scope, or a scope the portfolio does not
    hold (liquidated, removed), has none. Iterating gives the step's figures only."""

    __slots__ = ("_memo", "_portfolio", "_step")

    def __init__(self, step: Mapping[str, ScopeRisk], portfolio: Portfolio) -> None:
        self._step = step
        self._portfolio = portfolio
        self._memo: dict[str, ScopeRisk | None] = {}

    def __getitem__(self, name: str) -> ScopeRisk:
        got = self._step.get(name)
        if got is not None:
            return got
        if name in self._memo:
            got = self._memo[name]
        else:
            got = self._memo[name] = self._compute(name)
        if got is None:
            raise KeyError(name)
        return got

    def _compute(self, name: str) -> ScopeRisk | None:
        try:
            key = parse_subject(name)
        except IdError:
            return None
        if not isinstance(key, ScopeKey):
            return None
        try:
            return self._portfolio.risk(key, with_stress=False)
        except Exception as exc:  # a message goes out without figures rather than not at all
            log().warning("figures.unavailable", scope=name, error=repr(exc)[:200])
            return None

    def __iter__(self) -> Iterator[str]:
        return iter(self._step)

    def __len__(self) -> int:
        return len(self._step)


async def persist(
    store: Store,
    step: Step,
    channels: Sequence[Channel],
    risks: RiskView,
    now: float,
    *,
    engine: Engine | None = None,
    labels: Mapping[str, str] | None = None,
) -> int:
    """Write ``step``'s alert state delta, transitions and outbox rows in one transaction
    and log them; return the number of outbox rows written (wake delivery when > 0).

    With ``engine`` the messages carry the remedy (from its portfolio and rules), the figures
    of scopes the step did not evaluate (:class:`LiveFigures`) and, for a stale feed, the
    alerts it holds; ``labels`` (``venue:account`` → label) name accounts. With ``engine``,
    ``risks`` keeps no figures after the step (:meth:`RiskView.settle`)."""
    risks.update(step)
    try:
        return await _persist(store, step, channels, risks, now, engine=engine, labels=labels)
    finally:
        if engine is not None:
            risks.settle()


async def _persist(
    store: Store,
    step: Step,
    channels: Sequence[Channel],
    risks: RiskView,
    now: float,
    *,
    engine: Engine | None,
    labels: Mapping[str, str] | None,
) -> int:
    risks.recent.record(step.risks, now)
    for q in step.quarantined:
        log().error(
            "engine.event_quarantined",
            venue=q.venue,
            account=q.account,
            error=q.error,
            event=q.event,
        )
    for f in step.figures_failed:
        # once per scope until it recovers (the engine decides it as unknown meanwhile)
        log().error(
            "engine.scope_figures_failed",
            venue=f.key.venue,
            account=f.key.account,
            scope=f.key.scope,
            stage=f.stage,
            error=f.error,
        )
    for key in step.figures_recovered:
        log().info(
            "engine.scope_figures_recovered", venue=key.venue, account=key.account, scope=key.scope
        )
    if step.delta is None and not step.transitions:
        return 0
    feed_news = any(t.rule == RuleKind.FEED_STALE.value for t in step.transitions)
    messages = build_messages(
        step.transitions,
        channels,
        risks.figures(engine),
        now,
        labels=labels,
        rules=engine.rules if engine is not None else None,
        remedy=_remedy(engine) if engine is not None else None,
        state=engine.state if engine is not None and feed_news else None,
        recent=risks.recent,
        reductions=risks.reductions,
    )
    async with store.transaction() as conn:
        if step.delta is not None:
            await alert_state.save_delta(conn, step.delta, now)
        await alert_state.record_transitions(conn, step.transitions)
        await outbox.enqueue(conn, messages)
    if step.transitions:
        # one logger for the step's lines (bound now, so it is the current configuration's),
        # and one flush for them all (a write system call each, 70,000 in a crash)
        info = log().bind().info
        with logs.burst():
            for t in step.transitions:
                info(
                    _EVENTS[t.kind],
                    key=t.key,
                    severity=t.severity.value,
                    value=t.value,
                    threshold=t.threshold,
                    muted=t.muted,
                )
    return len(messages)
