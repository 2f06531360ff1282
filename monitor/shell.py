"""The I/O half of the engine step: restore the alert state, persist a :class:`Step` in one
transaction, render its notifications per channel, log what it decided.

The engine (:mod:`monitor.engine`) decides and the shell writes. ``persist`` writes the alert
state delta, the transitions and the outbox rows of one step in **one** SQLite transaction,
so a crash before the commit loses nothing that was promised (the state is the old one, so
the same transitions come again) and a crash after it loses nothing either (the outbox is
durable). The idempotency key of an outbox row is ``sha1(transition ids of the group) :
channel``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from monitor.alerts.engine import AlertState, Transition, TransitionKind
from monitor.alerts.grouping import AlertGroup, group_transitions
from monitor.alerts.rules import RuleKind
from monitor.engine.core import Step
from monitor.margin.risk import ScopeRisk
from monitor.notify.channels import Channel
from monitor.notify.render import group_title, notify_type, render_group
from monitor.store import alert_state, outbox
from monitor.store.db import Store
from monitor.store.outbox import OutboundMessage


def log() -> Any:
    """A fresh logger per call (never a module-level proxy pinned by structlog's cache)."""
    return structlog.get_logger()


async def restore_alert_state(store: Store, now: float) -> AlertState:
    """The persisted alert state, less feed health.

    Feed health is not inherited: the feeds report it again from scratch, and a fresh
    watchdog never says "recovered" for a staleness it did not see, which would hold the
    venue's alerts for good. A feed still stale alerts again after its delay."""
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


def build_messages(
    transitions: Sequence[Transition],
    channels: Sequence[Channel],
    risks: Mapping[str, ScopeRisk],
    now: float,
) -> list[OutboundMessage]:
    """One message per (group, channel) for the unmuted transitions a channel takes
    (severity ≥ its ``min_severity``; resolves only if it ``send_resolved``)."""
    out: list[OutboundMessage] = []
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
            title = group_title(sub)
            rendered = render_group(sub, risks, ch.format, ch.body_limit(title))
            resolved_only = all(t.kind is TransitionKind.RESOLVED for t in mine)
            digest = hashlib.sha1(sub.id.encode(), usedforsecurity=False).hexdigest()
            out.append(
                OutboundMessage(
                    idem_key=f"{digest}:{ch.name}",
                    channel=ch.name,
                    group=sub.group,
                    severity=max((t.severity for t in mine), key=lambda s: s.rank).value,
                    title=rendered.title,
                    body=rendered.body,
                    body_format=ch.format,
                    notify_type=notify_type(sub.severity, resolved_only),
                    created_at=now,
                )
            )
    return out


class RiskView:
    """The latest figures per scope name, kept from the steps for the renderers."""

    def __init__(self) -> None:
        self.by_name: dict[str, ScopeRisk] = {}

    def update(self, step: Step) -> None:
        for r in step.risks:
            self.by_name[str(r.key)] = r
        for k in step.removed:
            self.by_name.pop(str(k), None)


async def persist(
    store: Store, step: Step, channels: Sequence[Channel], risks: RiskView, now: float
) -> int:
    """Write ``step``'s alert state delta, transitions and outbox rows in one transaction
    and log them; return the number of outbox rows written (wake delivery when > 0)."""
    risks.update(step)
    for q in step.quarantined:
        log().error(
            "engine.event_quarantined",
            venue=q.venue,
            account=q.account,
            error=q.error,
            event=q.event,
        )
    if step.state_after is None and not step.transitions:
        return 0
    messages = build_messages(step.transitions, channels, risks.by_name, now)
    async with store.transaction() as conn:
        if step.state_after is not None and step.state_before is not None:
            await alert_state.save(conn, step.state_before, step.state_after, now)
        await alert_state.record_transitions(conn, step.transitions)
        await outbox.enqueue(conn, messages)
    for t in step.transitions:
        log().info(
            f"alert.{t.kind.value}",
            key=t.key,
            severity=t.severity.value,
            value=t.value,
            threshold=t.threshold,
            muted=t.muted,
        )
    return len(messages)
