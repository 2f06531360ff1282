"""The daemon's alert path without its tasks: a real :class:`~monitor.engine.Engine`, the
real shell (:func:`monitor.shell.persist`) on a real SQLite store, and a real delivery worker.
Tests drive it step by step with a fake clock."""

from __future__ import annotations

from collections.abc import Sequence

from monitor.alerts.engine import AlertState, Transition
from monitor.alerts.rules import AlertRules
from monitor.clock import Clock
from monitor.engine import Engine, Input, Mutes, OutboxHealth
from monitor.model.positions import AccountKey
from monitor.notify.channels import Channel
from monitor.notify.delivery import DeliveryConfig, DeliveryWorker
from monitor.notify.sender import Sender
from monitor.shell import RiskView, persist, restore_alert_state
from monitor.store import outbox
from monitor.store.db import Store
from monitor.store.mutes import active_mutes
from tests.notify import scenario


class Pipeline:
    def __init__(
        self,
        store: Store,
        engine: Engine,
        channels: Sequence[Channel],
        worker: DeliveryWorker,
        clock: Clock,
    ) -> None:
        self.store = store
        self.engine = engine
        self.channels = list(channels)
        self.worker = worker
        self.clock = clock
        self.risks = RiskView()

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
        accounts: Sequence[AccountKey] = (scenario.KEY.account_key,),
    ) -> Pipeline:
        """``accounts``: the configured accounts (restored alerts of others resolve)."""
        state = await restore_alert_state(store, clock.now())
        engine = Engine(rules, state=state, accounts=accounts, started=clock.monotonic())
        worker = DeliveryWorker(store, channels, sender, clock, config=delivery)
        return cls(store, engine, channels, worker, clock)

    @property
    def state(self) -> AlertState:
        return self.engine.state

    async def process(self, events: Sequence[Input]) -> list[Transition]:
        """One engine step at the clock's now, with the store's mutes and outbox health."""
        now = self.clock.now()
        count, _ = await outbox.backlog(self.store)
        inputs: list[Input] = [
            Mutes(tuple(await active_mutes(self.store, now))),
            OutboxHealth(count, self.worker.failing_channels),
            *events,
        ]
        step = self.engine.receive(inputs, now, self.clock.monotonic())
        if await persist(self.store, step, self.channels, self.risks, now, engine=self.engine):
            self.worker.wake()
        return step.transitions

    async def tick(self) -> list[Transition]:
        return await self.process([])
