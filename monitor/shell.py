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

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from monitor.alerts.engine import AlertState, Transition, TransitionKind
from monitor.alerts.rules import RuleKind
from monitor.engine.core import Engine, Step
from monitor.margin.remedy import Remedy
from monitor.margin.risk import ScopeRisk
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
    """The latest figures per scope name for the renderers, and the recent values that say
    how fast an alert moved.

    ``by_name`` holds the figures of the step being written, and keeps after it only those
    of scopes with an alert (pending or firing): a later transition of theirs that was not
    computed with figures (a ``for`` delay run out, a repeat, a liquidation notice) shows
    these. A scope without alerts needs none kept (its next transition comes from an
    evaluation, with its figures): every scope's figures kept, with the engine's copy, were
    ~530 bytes a position (in-process at 50,000 positions)."""

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

    def settle(self, step: Step, alerted: Callable[[str], bool]) -> None:
        """After ``step``'s messages: drop its figures of scopes ``alerted`` says have no
        alert now."""
        by_name = self.by_name
        for r in step.risks:
            name = str(r.key)
            if not alerted(name):
                by_name.pop(name, None)


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

    With ``engine`` the messages carry the remedy (from its portfolio and rules) and, for a
    stale feed, the alerts it holds; ``labels`` (``venue:account`` → label) name accounts.
    With ``engine``, ``risks`` keeps afterwards only the figures of scopes with an alert
    (:meth:`RiskView.settle`)."""
    risks.update(step)
    try:
        return await _persist(store, step, channels, risks, now, engine=engine, labels=labels)
    finally:
        if engine is not None:
            risks.settle(step, engine.book.has_alerts)


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
    if step.delta is None and not step.transitions:
        return 0
    feed_news = any(t.rule == RuleKind.FEED_STALE.value for t in step.transitions)
    messages = build_messages(
        step.transitions,
        channels,
        risks.by_name,
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
        # one logger for the step's lines (bound now, so it is the current configuration's)
        info = log().bind().info
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
