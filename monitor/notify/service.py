"""The alert service: the one call the daemon makes per engine batch.

::

    service = await AlertService.start(store, rules, channels, sender=AppriseSender(),
                                       clock=SystemClock())
    worker_task = asyncio.create_task(service.worker.run())
    ...
    await service.process(Observation(risks=[...], vanished=[...]))   # per engine batch
    await service.tick()                                                # every few seconds
    ...
    await service.worker.drain(clock.monotonic() + 10)                  # at shutdown

``process`` refreshes the mutes from the store (at most every ``mute_refresh`` s, so
``monitor mute`` takes effect while the daemon runs), adds the monitor's own health (channels
failing, outbox backlog), runs the pure :func:`~monitor.alerts.engine.evaluate`, groups the
transitions per account, renders one message per group and channel (routed by severity), and
writes the new alert state, the transitions and the outbox rows in **one** transaction, then
wakes the delivery worker. A crash before the commit loses nothing that was promised: the
state is the old one, so the same transitions come again.

The idempotency key of a row is ``sha1(transition ids of the group) : channel``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from monitor.alerts.engine import (
    AlertState,
    Health,
    Observation,
    Transition,
    TransitionKind,
    evaluate,
    with_mutes,
)
from monitor.alerts.grouping import AlertGroup, group_transitions
from monitor.alerts.rules import AlertRules, RuleKind
from monitor.clock import Clock
from monitor.margin.risk import ScopeRisk
from monitor.model.events import FeedStatus
from monitor.model.portfolio import Portfolio
from monitor.model.positions import ScopeKey
from monitor.notify.channels import Channel
from monitor.notify.delivery import DeliveryConfig, DeliveryWorker
from monitor.notify.render import group_title, notify_type, render_group
from monitor.notify.sender import Sender
from monitor.store import alert_state, outbox
from monitor.store.db import Store
from monitor.store.mutes import active_mutes
from monitor.store.outbox import OutboundMessage


def log() -> Any:
    """A fresh logger per call: never a module-level proxy that a configuration done with
    ``cache_logger_on_first_use`` would pin for the life of the process."""
    return structlog.get_logger()


def build_messages(
    transitions: Sequence[Transition],
    channels: Sequence[Channel],
    risks: Mapping[str, ScopeRisk],
    now: float,
) -> list[OutboundMessage]:
    """Pure: one message per (group, channel) for the unmuted transitions a channel takes
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


def observe(
    portfolio: Portfolio,
    touched: Iterable[ScopeKey],
    *,
    liquidated: Sequence[tuple[ScopeKey, str]] = (),
    feeds: Sequence[FeedStatus] = (),
) -> Observation:
    """The observation of one engine batch: the risk of every touched scope that still
    exists, the touched scopes that vanished, and what the venue/feeds reported."""
    risks: list[ScopeRisk] = []
    vanished: list[ScopeKey] = []
    for key in dict.fromkeys(touched):
        risk = portfolio.risk(key)
        if risk is None:
            vanished.append(key)
        else:
            risks.append(risk)
    return Observation(risks=risks, vanished=vanished, liquidated=liquidated, feeds=feeds)


class AlertService:
    """Owns the alert state; see the module docstring. Use :meth:`start` to build it."""

    def __init__(
        self,
        store: Store,
        rules: AlertRules,
        channels: Sequence[Channel],
        worker: DeliveryWorker,
        clock: Clock,
        *,
        state: AlertState | None = None,
        mute_refresh: float = 1.0,
        health_refresh: float = 5.0,
    ) -> None:
        self.store = store
        self.rules = rules
        self.channels = list(channels)
        self.worker = worker
        self.clock = clock
        self.state = state or AlertState()
        self.mute_refresh = mute_refresh
        self.health_refresh = health_refresh
        self._mutes_at: float | None = None
        self._health_at: float | None = None
        self._last_health: Health | None = None
        self.risks: dict[str, ScopeRisk] = {}

    @classmethod
    async def start(
        cls,
        store: Store,
        rules: AlertRules,
        channels: Sequence[Channel],
        *,
        sender: Sender,
        clock: Clock,
        delivery: DeliveryConfig | None = None,
        mute_refresh: float = 1.0,
        health_refresh: float = 5.0,
    ) -> AlertService:
        """Restore the persisted alert state and build the delivery worker (not started:
        run ``service.worker.run()`` as a task)."""
        loaded = await alert_state.load(store)
        # Feed health is not inherited: the feeds report it again from scratch, and a fresh
        # watchdog never says "recovered" for a staleness it did not see, which would hold
        # the venue's alerts for good. A feed still stale alerts again after its delay.
        state = replace(
            loaded,
            stale={},
            alerts={k: r for k, r in loaded.alerts.items() if r.rule != RuleKind.FEED_STALE},
        )
        if state != loaded:
            async with store.transaction() as conn:
                await alert_state.save(conn, loaded, state, clock.now())
            log().info("alerts.feed_state_reset", feeds=sorted(loaded.stale))
        worker = DeliveryWorker(store, channels, sender, clock, config=delivery)
        log().info("alerts.restored", active=len(state.alerts))
        return cls(
            store,
            rules,
            channels,
            worker,
            clock,
            state=state,
            mute_refresh=mute_refresh,
            health_refresh=health_refresh,
        )

    def update(self, rules: AlertRules, channels: Sequence[Channel]) -> None:
        """Apply a reloaded configuration (SIGHUP); active alerts are kept."""
        self.rules = rules
        self.channels = list(channels)
        self.worker.set_channels(channels)

    async def _health(self, now: float) -> Health:
        if (
            self._last_health is None
            or self._health_at is None
            or now - self._health_at >= self.health_refresh
        ):
            count, _ = await outbox.backlog(self.store)
            self._last_health = Health(self.worker.failing_channels, count)
            self._health_at = now
        return replace(self._last_health, failing_channels=self.worker.failing_channels)

    async def process(self, obs: Observation, now: float | None = None) -> list[Transition]:
        """Evaluate one batch and persist its outcome in one transaction (see module doc)."""
        now = self.clock.now() if now is None else now
        if self._mutes_at is None or now - self._mutes_at >= self.mute_refresh:
            self.state = with_mutes(self.state, await active_mutes(self.store, now))
            self._mutes_at = now
        if obs.health is None:
            obs = replace(obs, health=await self._health(now))
        for r in obs.risks:
            self.risks[str(r.key)] = r
        for k in obs.vanished:
            self.risks.pop(str(k), None)
        transitions, new_state = evaluate(obs, now, self.state, self.rules)
        messages = build_messages(transitions, self.channels, self.risks, now)
        changed = (
            bool(transitions)
            or new_state.alerts != self.state.alerts
            or (new_state.peaks is not self.state.peaks and new_state.peaks != self.state.peaks)
            or (new_state.stale is not self.state.stale and new_state.stale != self.state.stale)
        )
        if changed:
            async with self.store.transaction() as conn:
                await alert_state.save(conn, self.state, new_state, now)
                await alert_state.record_transitions(conn, transitions)
                await outbox.enqueue(conn, messages)
        self.state = new_state
        for t in transitions:
            log().info(
                f"alert.{t.kind.value}",
                key=t.key,
                severity=t.severity.value,
                value=t.value,
                threshold=t.threshold,
                muted=t.muted,
            )
        if messages:
            self.worker.wake()
        return transitions

    async def tick(self, now: float | None = None) -> list[Transition]:
        """Timers only (pending ``for``, repeats, health): call every few seconds."""
        return await self.process(Observation(), now)
