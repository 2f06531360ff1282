"""The daemon's optional parts, each off by default and imported only when switched on:
the dead-man heartbeat (``[daemon] heartbeat_url``), Prometheus ``/metrics`` and
``/healthz`` (``[metrics]``) and the Telegram command bot (``[telegram_bot]``).

:func:`start_extras` starts what the configuration asks for and returns an :class:`Extras`
whose :meth:`~Extras.close` stops it all; with everything off it starts nothing and imports
nothing (no task, no socket, no prometheus-client, telegram or matplotlib import).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from monitor.clock import Clock

if TYPE_CHECKING:
    from monitor.alerts.rules import AlertRules
    from monitor.config import Config
    from monitor.model.portfolio import Portfolio
    from monitor.store.db import Store
    from monitor.venues.feed import Feed


@dataclass
class Extras:
    """What :func:`start_extras` started; ``close`` stops it all."""

    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    closers: list[Callable[[], Any]] = field(default_factory=list)
    batch: Any = None
    """The engine batch-duration histogram (``BatchTimings``) when metrics are on."""
    metrics_port: int | None = None

    def observe_batch(self, seconds: float) -> None:
        if self.batch is not None:
            self.batch.observe(seconds)

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        for close in reversed(self.closers):
            with contextlib.suppress(Exception):
                result = close()
                if asyncio.iscoroutine(result):
                    await result


async def start_extras(
    config: Config,
    store: Store,
    clock: Clock,
    *,
    healthy: Callable[[], tuple[bool, str]],
    feeds: Sequence[Feed] = (),
    rules: Callable[[], AlertRules | None] | None = None,
    portfolio: Callable[[], Portfolio | None] | None = None,
) -> Extras:
    """Start the optional parts ``config`` switches on (see the module docstring).
    ``healthy()``: (engine healthy, why not). Raises :class:`~monitor.errors.FatalError` when
    the metrics address cannot be bound."""
    extras = Extras()
    if config.daemon.heartbeat_url:
        from monitor.notify.heartbeat import heartbeat_loop  # noqa: PLC0415

        extras.tasks.append(
            asyncio.create_task(
                heartbeat_loop(
                    config.daemon.heartbeat_url,
                    config.daemon.heartbeat_interval,
                    lambda: healthy()[0],
                    clock,
                ),
                name="heartbeat",
            )
        )
    bot = None
    if config.telegram_bot.enabled and config.telegram_bot.token:
        from monitor.ops.bot import start_bot  # noqa: PLC0415

        labels = {str(a.key): a.label for a in config.accounts if a.label}
        bot = await start_bot(
            config.telegram_bot, store, rules=rules, portfolio=portfolio, labels=labels
        )
        extras.closers.append(bot.stop)
    if config.metrics.enabled:
        from monitor.ops.figures import BatchTimings, VenueFrames  # noqa: PLC0415
        from monitor.ops.http import serve_metrics  # noqa: PLC0415
        from monitor.ops.metrics import StoreMetricsSource  # noqa: PLC0415

        def frames() -> list[VenueFrames]:
            out = []
            for f in feeds:
                stats = getattr(f, "stats", None)
                if stats is not None and hasattr(stats, "frames"):
                    out.append(VenueFrames(f.venue, stats.frames, stats.bad_frames))
            return out

        extras.batch = BatchTimings()
        ignored = bot
        source = StoreMetricsSource(
            store,
            labels={str(a.key): a.label for a in config.accounts if a.label},
            frames=frames,
            batch=extras.batch,
            bot_ignored=(lambda: ignored.ignored) if ignored is not None else None,
        )
        server = await serve_metrics(config.metrics, source, healthy)
        extras.metrics_port = server.port
        extras.closers.append(server.close)
    return extras
