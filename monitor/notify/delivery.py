"""The outbox delivery worker.

``run()`` resumes rows a dead process left ``sending``, then keeps **one independent task per
channel** with due rows: a slow, failing or rate-limited channel never delays another (the
loop never waits for a round of all channels), and a channel has at most one send in flight,
so its messages go out in order. A channel's task claims its due rows (see
:func:`monitor.store.outbox.claim`: a row tried before goes alone), **coalesces** fresh rows
into one message (as many as fit the channel's ``max_length``; the rest wait for the next
slot; webhooks coalesce only into digests, below), sends it with the
:class:`~monitor.notify.sender.Sender`, and records the result by its kind.

**Webhooks and digests.** A webhook (``json://``, ``form://``, ``xml://``) gets one request
per message, each with its own idempotency key, while a few wait. When more than
``digest_after`` rows (default 20) are due on a webhook channel at once (a crash decides
thousands of accounts in seconds), they go as **digests** of up to ``digest`` rows (default
200) instead: one request whose title counts the alerts and names every account with its
worst severity (:func:`~monitor.notify.render.batch_title`), whose body holds every row's
text in order, with the idempotency key ``batch:`` + sha1 of the rows' keys. Nothing is
dropped or reordered. A digest the webhook answered with an error status (certainly not
received) may be formed again; one that timed out (it may have arrived) is sent again as the
same digest, with the same key, so the receiver can drop the repeat; one refused for good is
split (each row goes alone, so only the refused row fails). So 18,000 messages after a crash
are 90 requests, not 18,000. A backlog is claimed ``claim_digests`` digests (default 4) at a
time, sent one after another (never two of a channel at once), and marked delivered in the
transaction that claims the next ones: in a crash each store transaction waits for an engine
step, and a digest took two (see :meth:`DeliveryWorker._deliver`). Results:

* delivered → rows ``delivered``;
* ``format`` (the service refused the markup, e.g. Telegram's "can't parse entities") → the
  same message is re-sent **once** right away as plain text
  (:func:`~monitor.notify.render.to_plain`); if that fails too, it is handled as permanent;
* ``permanent`` (4xx other than 408/429, auth failure) → a coalesced message is split: each
  of its rows goes alone next (so a refused row never carries healthy rows with it); a single
  row is marked ``failed`` at once (never retried for hours) and the rows behind it go on;
  its channel is reported in :attr:`DeliveryWorker.failing_channels`;
* ``transient`` (timeouts, 5xx, 429, connection errors) → rows retried after an exponential
  backoff with jitter (``base · 2^(attempts−1)``, capped at ``max_backoff``, default 10 s, so
  a channel that comes back is probed within seconds; ±``jitter`` fraction), or exactly after
  the ``retry_after`` a 429 asked for (the channel is paused that long too). The channel waits
  for that row (order is kept). A row older than ``max_age`` is marked ``failed``. Rows the
  service answered with an error status (429, 5xx) certainly did not arrive and may be
  coalesced again; after a timeout or connection error each goes alone.

A channel in :attr:`DeliveryWorker.failing_channels` (the alert service turns it into the
"delivery failing" alert, which goes out through the channels that still work) stays there
until a later message on that channel gets through **and** ``failing_hold`` seconds (default
120) have passed since its last failed row, so a health check every few seconds cannot miss
a refusal followed by a success. Every failed row is also kept as a :class:`Failure` until
:meth:`DeliveryWorker.take_failures` collects it (for a per-message notice).

Charts: a row whose ``attach`` holds chart specs (a critical alert on a channel with
``charts = true``, see :func:`monitor.notify.outbound.chart_specs`) gets them rendered at
send time (:func:`monitor.ops.charts.render_attachments`: history read from the store,
matplotlib in a worker thread, at most ``chart_timeout`` s) into a fresh temporary
directory, attached, and the directory deleted after the send. A render that fails or takes
too long never holds the message back: the text goes without the picture (logged
``outbox.chart_failed``). Every try renders again. With no row asking for a chart, nothing
of this runs (matplotlib is never imported).

Rate limits are per channel (an apprise URL is one chat, or a few): at most one message per
``min_interval`` seconds and ``per_minute`` per rolling minute.

``drain(deadline)`` (``deadline`` on ``clock.monotonic()``) stops the loop and delivers what
is due until nothing is left or the deadline passes; undelivered rows stay in the outbox for
the next start. Times stored in the outbox are ``clock.now()`` epoch seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import random
import shutil
import tempfile
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from monitor.clock import Clock
from monitor.notify.channels import Channel
from monitor.notify.render import TEXT, batch_title, combine, to_plain
from monitor.notify.sender import FORMAT, PERMANENT, Sender, SendResult
from monitor.ops.charts import ChartSpec, decode_specs, render_attachments
from monitor.store import outbox
from monitor.store.db import Store
from monitor.store.outbox import OutboxItem


def log() -> Any:
    """A fresh logger per call: never a module-level proxy that a configuration done with
    ``cache_logger_on_first_use`` would pin for the life of the process."""
    return structlog.get_logger()


_TYPE_RANK = {"success": 0, "info": 1, "warning": 2, "failure": 3}


#: due rows counted per channel at most (:func:`monitor.store.outbox.due_channels`), unless
#: ``digest_after`` needs more
DUE_COUNT = 1000


@dataclass(frozen=True, slots=True)
class DeliveryConfig:
    """Seconds throughout. ``batch``: rows claimed per channel per send. ``max_backoff``: the
    longest wait between two tries of a failing channel (its probe interval).
    ``chart_timeout``: the longest wait for a message's charts before it goes without.
    ``digest_after``: more rows than this due on a webhook channel go as digests of up to
    ``digest`` rows (see the module docstring); ``claim_digests``: how many digests' rows a
    backlog's transaction claims at once (sent one after another; see
    :meth:`DeliveryWorker._deliver`)."""

    base_backoff: float = 2.0
    max_backoff: float = 10.0
    jitter: float = 0.2
    max_age: float = 6 * 3600.0
    batch: int = 50
    idle_poll: float = 5.0
    failing_hold: float = 120.0
    chart_timeout: float = 20.0
    digest_after: int = 20
    digest: int = 200
    claim_digests: int = 4


@dataclass(frozen=True, slots=True)
class Failure:
    """A row given up on: ``channel`` name, its ``label`` (name and redacted URL), the row's
    ``idem_key`` and ``title``, ``error`` (secrets masked), ``kind`` (``permanent``,
    ``format``, ``expired``, ``unconfigured``) and ``at`` (epoch s)."""

    channel: str
    label: str
    idem_key: str
    title: str
    error: str
    kind: str
    at: float


class RateLimiter:
    """At most one send per ``min_interval`` s and ``per_minute`` per rolling 60 s;
    ``pause(until)`` blocks until a time (a 429's retry_after)."""

    def __init__(self, min_interval: float, per_minute: int | None) -> None:
        self.min_interval = min_interval
        self.per_minute = per_minute
        self._sent: deque[float] = deque()
        self._paused_until = 0.0

    def next_allowed(self, now: float) -> float:
        t = self._paused_until
        if self._sent:
            t = max(t, self._sent[-1] + self.min_interval)
        if self.per_minute is not None:
            while self._sent and self._sent[0] <= now - 60.0:
                self._sent.popleft()
            if len(self._sent) >= self.per_minute:
                t = max(t, self._sent[-self.per_minute] + 60.0)
        return t

    def record(self, now: float) -> None:
        self._sent.append(now)
        keep = max(self.per_minute or 1, 1)
        while len(self._sent) > keep:
            self._sent.popleft()

    def pause(self, until: float) -> None:
        self._paused_until = max(self._paused_until, until)


class DeliveryWorker:
    """See the module docstring. Public surface for the daemon: :meth:`run` (a task),
    :meth:`drain`, :meth:`wake`, :meth:`set_channels`, :attr:`failing_channels`."""

    def __init__(
        self,
        store: Store,
        channels: Sequence[Channel],
        sender: Sender,
        clock: Clock,
        *,
        config: DeliveryConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.sender = sender
        self.clock = clock
        self.config = config or DeliveryConfig()
        self._rng = rng or random.Random()
        self._channels: dict[str, Channel] = {}
        self._limits: dict[str, RateLimiter] = {}
        self.set_channels(channels)
        self._wake = asyncio.Event()
        self._stopping = False
        self._failing: dict[str, str] = {}
        self._failed_at: dict[str, float] = {}
        self._failures: list[Failure] = []
        self._inflight: dict[str, asyncio.Task[int]] = {}
        # rows whose last failure was an error status: certainly not delivered, so they may
        # be coalesced again (any other row tried before goes alone)
        self._unsent: set[int] = set()
        # per webhook channel: the rows of a digest that timed out (it may have arrived), sent
        # again together, so the retry carries the same idempotency key
        self._again: dict[str, frozenset[int]] = {}
        self.delivered = 0

    # -- configuration ---------------------------------------------------------------------
    def set_channels(self, channels: Sequence[Channel]) -> None:
        """Replace the channels (config reload); rate-limit history is kept per name."""
        self._channels = {c.name: c for c in channels}
        for c in channels:
            lim = self._limits.get(c.name)
            if lim is None:
                self._limits[c.name] = RateLimiter(c.min_interval, c.per_minute)
            else:
                lim.min_interval, lim.per_minute = c.min_interval, c.per_minute

    @property
    def failing_channels(self) -> tuple[str, ...]:
        """Labels (name and redacted URL) of channels that refused a message for good or whose
        rows expired undelivered, until a later message on them gets through and
        ``failing_hold`` s have passed since the last failure."""
        return tuple(self._failing.values())

    def take_failures(self) -> list[Failure]:
        """The rows given up on since the last call (oldest first); at most 1,000 are kept."""
        out, self._failures = self._failures, []
        return out

    def _recovered(self, name: str, label: str, now: float) -> None:
        if name in self._failing and now - self._failed_at.get(name, 0.0) >= (
            self.config.failing_hold
        ):
            del self._failing[name]
            log().info("outbox.channel_recovered", channel=label)

    def wake(self) -> None:
        """New rows were enqueued: look now instead of at the next poll."""
        self._wake.set()

    # -- the loop --------------------------------------------------------------------------
    async def run(self) -> None:
        """Deliver until :meth:`drain` is called: one task per channel with due rows."""
        resumed = await outbox.resume(self.store)
        if resumed:
            log().info("outbox.resumed", rows=resumed)
        try:
            while not self._stopping:
                await self._spawn()
                await self._sleep_until_due()
        except asyncio.CancelledError:
            # cancelled without drain(): stop the sends in flight too (their rows stay
            # "sending" and are resent once at the next start)
            tasks = list(self._inflight.values())
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            raise

    async def _spawn(self) -> None:
        now = self.clock.now()
        due_now = await outbox.due_channels(self.store, now, upto=self._due_upto())
        if self._stopping:
            # :meth:`drain` began while the store answered: its own rounds send now (a task
            # started here would make it stop stepping and give up on the backlog)
            return
        for name, due in due_now.items():
            if name in self._inflight or not self._ready(name, now):
                continue
            task = asyncio.create_task(self._deliver(name, now, due), name=f"deliver:{name}")
            self._inflight[name] = task
            task.add_done_callback(lambda t, n=name: self._done(n, t))  # type: ignore[misc]

    def _done(self, name: str, task: asyncio.Task[int]) -> None:
        if self._inflight.get(name) is task:
            del self._inflight[name]
        if not task.cancelled() and task.exception() is not None:
            log().error("outbox.worker_error", channel=name, error=repr(task.exception()))
        self._wake.set()

    async def _sleep_until_due(self) -> None:
        now = self.clock.now()
        wait = self.config.idle_poll
        for name, due_at in (await outbox.heads(self.store)).items():
            if name in self._inflight:
                continue  # its task wakes the loop when it is done
            at = due_at
            lim = self._limits.get(name)
            if lim is not None:
                at = max(at, lim.next_allowed(now))
            wait = min(wait, max(at - now, 0.0))
        self._wake.clear()
        sleeper = asyncio.ensure_future(self.clock.sleep(max(wait, 0.001)))
        waker = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, waker}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for f in (sleeper, waker):
                f.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await f

    async def step(self) -> int:
        """One send for every channel with due rows (concurrently; a webhook's backlog goes
        digest after digest, see :meth:`_deliver`); returns how many rows were delivered. For
        tests and :meth:`drain`; :meth:`run` never waits for a whole round."""
        now = self.clock.now()
        due = await outbox.due_channels(self.store, now, upto=self._due_upto())
        names = [n for n in due if n not in self._inflight and self._ready(n, now)]
        if not names:
            return 0
        counts = await asyncio.gather(*(self._deliver(n, now, due[n]) for n in names))
        return sum(counts)

    def _due_upto(self) -> int:
        """How many of a channel's due rows to count: enough to tell more than
        ``digest_after`` (a larger ``digest_after`` than the store's default count of 1,000
        would never have seen a backlog to digest)."""
        return max(DUE_COUNT, self.config.digest_after + 1)

    def _ready(self, name: str, now: float) -> bool:
        lim = self._limits.get(name)
        return lim is None or lim.next_allowed(now) <= now

    def _limit(self, channel: Channel | None, due: int) -> int:
        """Rows to claim for one send: a webhook's one row, or a digest's ``digest`` when more
        than ``digest_after`` are due; ``batch`` for other channels."""
        if channel is None or channel.kind != "webhook":
            return self.config.batch
        return self.config.digest if due > self.config.digest_after else 1

    async def _deliver(self, name: str, now: float, due: int = 1) -> int:
        """Send ``name``'s due rows: one send, or, while a webhook channel has more than
        ``digest_after`` rows due (a crash's backlog), one digest after another in this task
        without going back to the loop between them. Returns the rows delivered.

        The store's one connection and lock also serve the engine's step transactions: while
        a crash keeps the engine busy, each transaction here waits about one engine step (of
        ~0.1 s). So a backlog is claimed ``claim_digests`` digests at a time, sent one after
        another, and the next transaction marks them delivered (each with the time its send
        ended), puts back the rows not sent and claims the next ones: one transaction for
        several digests, where a digest took two (its claim, its mark). A send that fails
        settles the digests sent before it, puts the ones after it back (unsent, uncounted:
        they are formed again) and records its own result as before. Cancelled (no
        :meth:`drain`), the claimed rows stay ``sending``: sent or not, they are sent again
        at the next start (:func:`monitor.store.outbox.resume`), each alone."""
        channel = self._channels.get(name)
        again = self._again.pop(name, frozenset())
        digests = bool(again) or (
            channel is not None and channel.kind == "webhook" and due > self.config.digest_after
        )
        # delivered rows (id, when) and rows claimed but not sent, for the next transaction
        delivered: list[tuple[int, float]] = []
        unsent: list[int] = []
        total = 0
        first = True
        try:
            while True:
                if not first:
                    now = self.clock.now()
                    if self._stopping or not self._ready(name, now):
                        return total
                if again:
                    limit = len(again)
                elif digests:
                    limit = self.config.digest * max(self.config.claim_digests, 1)
                else:
                    limit = self._limit(channel, due)
                alone = functools.partial(self._alone, again=again)
                items = await outbox.claim(
                    self.store, name, now, limit, alone=alone, delivered=delivered, release=unsent
                )
                delivered, unsent = [], []
                if again and any(i.id not in again for i in items):
                    # a digest is resent as it was: rows enqueued since wait for the next send
                    await outbox.release(self.store, [i.id for i in items if i.id not in again])
                    items = [i for i in items if i.id in again]
                if not items:
                    return total
                if not first and len(items) <= self.config.digest_after and not alone(items[0]):
                    # the backlog is over: the last few go one by one (the loop's next
                    # rounds); a row that must go alone is sent here, and the digests go on
                    unsent = [i.id for i in items]
                    return total
                channel = self._channels.get(name)
                sent, unsent, go_on = await self._send_claimed(
                    name, channel, items, now, digests=digests, again=bool(again),
                    delivered=delivered,
                )  # fmt: skip
                total += sent
                again = frozenset()
                first = False
                if not (go_on and digests):
                    return total
        except asyncio.CancelledError:
            delivered, unsent = [], []  # left "sending": resumed at the next start
            raise
        finally:
            if delivered or unsent:
                await outbox.settle(self.store, delivered, unsent)

    def _alone(self, item: OutboxItem, *, again: frozenset[int]) -> bool:
        """Whether ``item`` must go alone (:func:`monitor.store.outbox.claim`): tried before,
        unless the service answered its last try with an error status (it certainly did not
        arrive) or it belongs to the digest resent as it was (``again``)."""
        return item.attempts > 0 and item.id not in self._unsent and item.id not in again

    async def _send_claimed(
        self,
        name: str,
        channel: Channel | None,
        items: list[OutboxItem],
        now: float,
        *,
        digests: bool,
        again: bool,
        delivered: list[tuple[int, float]],
    ) -> tuple[int, list[int], bool]:
        """Send the claimed ``items`` (oldest first) as messages, in order: as many digests
        as they make when ``digests``, else one message. Appends each delivered row (id, time
        its send ended) to ``delivered``; returns the rows delivered, the ids claimed and
        not sent (for the caller to put back), and whether all went well (the caller may
        claim more)."""
        if channel is None:
            await outbox.mark_failed(self.store, [i.id for i in items], "channel not configured")
            log().warning(
                "outbox.failed", channel=name, rows=len(items), error="channel not configured"
            )
            reason = "channel not configured"
            self._note(name, name, items, error=reason, kind="unconfigured", now=now)
            return 0, [], False
        expired = [i for i in items if now - i.created_at > self.config.max_age]
        if expired:
            await self._fail(channel, expired, "too old: gave up after max_age", "expired")
            items = [i for i in items if now - i.created_at <= self.config.max_age]
        total = 0
        pos = 0
        while pos < len(items):
            if pos:
                now = self.clock.now()
                if (
                    not digests
                    or again
                    or self._stopping
                    or not self._ready(name, now)
                    or len(items) - pos <= self.config.digest_after
                ):
                    break
            per = self.config.digest if digests and not again else len(items)
            group = items[pos : pos + per]
            fmt = group[0].body_format
            same: list[OutboxItem] = []
            for i in group:
                if i.body_format != fmt:
                    break
                same.append(i)
            longest = batch_title([i.title for i in same])
            body, used = combine([i.body for i in same], channel.body_limit(longest))
            batch = group[:used]
            rest = [i.id for i in items[pos + used :]]
            if rest and (not digests or again):
                # the only message of this claim: the rest go back before it is sent (a
                # crash mid-send leaves them pending, not "sending")
                await outbox.release(self.store, rest)
                items, rest = items[: pos + used], []
            ok = await self._send_one(
                channel, batch, body, fmt, now, delivered=delivered, rest=rest
            )
            if not ok:
                return total, [], False
            total += used
            pos += used
        return total, [i.id for i in items[pos:]], True

    async def _send_one(
        self,
        channel: Channel,
        batch: list[OutboxItem],
        body: str,
        fmt: str,
        now: float,
        *,
        delivered: list[tuple[int, float]],
        rest: list[int],
    ) -> bool:
        """Send ``batch`` as one message with ``body``. Delivered: its rows join
        ``delivered``. Not delivered: the ``delivered`` rows are marked and the ``rest``
        (claimed behind it) put back first, then the result recorded by its kind; returns
        whether it was delivered."""
        name = channel.name
        used = len(batch)
        # the subject counts the alerts and names every account with its worst severity
        title = batch_title([i.title for i in batch])
        ntype = max((i.notify_type for i in batch), key=lambda t: _TYPE_RANK.get(t, 1))
        idem = batch[0].idem_key if used == 1 else _batch_key(batch)
        self._limits[name].record(now)
        files, directory = await self._render(channel, self._chart_specs(channel, batch), now)
        try:
            result, plain = await self._send(
                channel, title=title, body=body, fmt=fmt, ntype=ntype, idem=idem, files=files
            )
        finally:
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
        done = self.clock.now()
        ids = [i.id for i in batch]
        self._unsent.difference_update(ids)
        attempts = max(i.attempts + 1 for i in batch)
        if result.ok:
            delivered.extend((i, done) for i in ids)
            self.delivered += len(batch)
            self._recovered(name, channel.label, done)
            log().info(
                "outbox.delivered",
                channel=channel.label,
                rows=len(batch),
                coalesced=used > 1,
                attempts=attempts,
                plain_text=plain,
            )
            return True
        await outbox.settle(self.store, delivered, rest)
        delivered.clear()
        error = result.error or result.status
        if result.kind in (PERMANENT, FORMAT):
            await self._refused(channel, batch, result, error, done)
            return False
        if result.retry_after is not None:
            delay = result.retry_after
            self._limits[name].pause(done + delay)
        else:
            delay = self._backoff(attempts)
        retry_at = done + delay
        oldest = min(i.created_at for i in batch)
        if retry_at - oldest > self.config.max_age:
            await self._fail(channel, batch, error, "expired")
            return False
        await outbox.mark_retry(self.store, ids, retry_at, error)
        if result.answered:
            self._unsent.update(ids)
        elif len(ids) > 1 and channel.kind == "webhook":
            self._again[name] = frozenset(ids)
        log().warning(
            "outbox.retry",
            channel=channel.label,
            rows=len(batch),
            attempts=attempts,
            retry_in=round(delay, 3),
            retry_after=result.retry_after,
            error=error,
        )
        return False

    async def _send(
        self,
        channel: Channel,
        *,
        title: str,
        body: str,
        fmt: str,
        ntype: str,
        idem: str,
        files: Sequence[str],
    ) -> tuple[SendResult, bool]:
        """Send once; a refused markup is sent again once as plain text. Returns the result
        and whether the plain-text resend was used."""
        extra: dict[str, Any] = {"attach": files} if files else {}
        result = await self.sender.send(channel, title, body, fmt, ntype, idem_key=idem, **extra)
        if result.ok or result.kind != FORMAT or fmt == TEXT:
            return result, False
        log().warning(
            "outbox.markup_refused",
            channel=channel.label,
            error=result.error,
            action="resending once as plain text",
        )
        plain = to_plain(body, fmt)
        return (
            await self.sender.send(channel, title, plain, TEXT, ntype, idem_key=idem, **extra),
            True,
        )

    def _chart_specs(self, channel: Channel, batch: Sequence[OutboxItem]) -> list[ChartSpec]:
        """The charts the rows of ``batch`` ask for, when ``channel`` still has charts on
        (a reload may have turned them off); an unreadable ``attach`` is logged and skipped."""
        if not channel.charts:
            return []
        specs: list[ChartSpec] = []
        for i in batch:
            if not i.attach:
                continue
            try:
                specs.extend(decode_specs(i.attach))
            except ValueError as exc:
                log().warning(
                    "outbox.chart_failed", channel=channel.label, key=i.idem_key, error=str(exc)
                )
        return specs

    async def _render(
        self, channel: Channel, specs: Sequence[ChartSpec], now: float
    ) -> tuple[list[str], Path | None]:
        """The chart files for ``specs`` and the new temporary directory holding them (the
        caller deletes it); none when rendering fails or takes longer than
        ``chart_timeout`` (logged: the text goes alone; a render still running cleans up
        after itself when it ends)."""
        if not specs:
            return [], None
        directory: Path | None = None
        try:
            directory = Path(tempfile.mkdtemp(prefix="monitor-charts-"))
            task = asyncio.ensure_future(render_attachments(self.store, specs, directory, now))
            done, _ = await asyncio.wait({task}, timeout=self.config.chart_timeout)
            if not done:
                task.add_done_callback(functools.partial(_discard, directory=directory))
                directory = None
                raise TimeoutError(f"charts not ready after {self.config.chart_timeout:g}s")
            paths = task.result()
        except Exception as exc:  # a chart is a picture: never a reason not to send the text
            log().warning(
                "outbox.chart_failed",
                channel=channel.label,
                scopes=[s.scope for s in specs],
                error=f"{type(exc).__name__}: {exc}"[:300],
            )
            if directory is not None:
                shutil.rmtree(directory, ignore_errors=True)
            return [], None
        return [str(p) for p in paths], directory

    async def _refused(
        self,
        channel: Channel,
        batch: list[OutboxItem],
        result: SendResult,
        error: str,
        done: float,
    ) -> None:
        """A permanent refusal: a coalesced message is split (each row goes alone next, so
        the refused one cannot take healthy ones down with it); a single row fails now."""
        if len(batch) > 1:
            await outbox.mark_retry(self.store, [i.id for i in batch], done, error)
            log().warning("outbox.split", channel=channel.label, rows=len(batch), kind=result.kind)
            return
        await self._fail(channel, batch, f"refused ({result.kind}): {error}", result.kind)

    def _note(
        self,
        name: str,
        label: str,
        items: Sequence[OutboxItem],
        *,
        error: str,
        kind: str,
        now: float,
    ) -> None:
        for i in items:
            self._failures.append(Failure(name, label, i.idem_key, i.title, error, kind, now))
        del self._failures[:-1000]

    def _backoff(self, attempts: int) -> float:
        c = self.config
        base = min(c.max_backoff, c.base_backoff * 2.0 ** max(attempts - 1, 0))
        return max(base * (1.0 + c.jitter * self._rng.uniform(-1.0, 1.0)), 0.0)

    async def _fail(self, channel: Channel, items: list[OutboxItem], error: str, kind: str) -> None:
        await outbox.mark_failed(self.store, [i.id for i in items], error)
        now = self.clock.now()
        self._failing[channel.name] = channel.label
        self._failed_at[channel.name] = now
        self._note(channel.name, channel.label, items, error=error, kind=kind, now=now)
        log().error(
            "outbox.failed",
            channel=channel.label,
            rows=len(items),
            keys=[i.idem_key for i in items],
            error=error,
        )

    async def drain(self, deadline: float) -> int:
        """Stop the loop; let the sends in flight finish, then deliver what is due until none
        is left or ``clock.monotonic()`` reaches ``deadline``. Returns how many rows are still
        undelivered."""
        self._stopping = True
        self._wake.set()
        if self._inflight:
            remaining = deadline - self.clock.monotonic()
            await asyncio.wait(list(self._inflight.values()), timeout=max(remaining, 0.001))
        while not self._inflight:
            await self.step()
            count, _ = await outbox.backlog(self.store)
            remaining = deadline - self.clock.monotonic()
            if count == 0 or remaining <= 0:
                break
            now = self.clock.now()
            nxt = await outbox.next_due(self.store)
            waits = [nxt - now] if nxt is not None else []
            for name in self._limits:
                waits.append(self._limits[name].next_allowed(now) - now)
            wait = min([w for w in waits if w > 0] or [0.001])
            if wait >= remaining:
                break
            await self.clock.sleep(wait)
        count, _ = await outbox.backlog(self.store)
        if count:
            log().warning("outbox.drain_incomplete", undelivered=count)
        else:
            log().info("outbox.drained")
        return count


def _discard(task: asyncio.Future[list[Path]], directory: Path) -> None:
    """A late render's end: its files are not wanted any more."""
    if not task.cancelled():
        task.exception()  # retrieved, so asyncio does not report it as lost
    shutil.rmtree(directory, ignore_errors=True)


def _batch_key(batch: Sequence[OutboxItem]) -> str:
    """The idempotency key of a coalesced message: stable for the same rows."""
    joined = "\n".join(i.idem_key for i in batch)
    return "batch:" + hashlib.sha1(joined.encode(), usedforsecurity=False).hexdigest()
