"""The shared WebSocket shell of the native feeds (thin I/O around a pure parser).

One :class:`WsFeed` owns one connection to one venue and, forever:

1. connects (``websockets``; protocol keepalive pings where the venue wants them);
2. sends every subscription of the venue session again, in order; a *gating* subscription
   (dYdX ``v4_markets``) is answered before the ones after it are sent, because their
   snapshots need its data;
3. hands every frame to the venue's pure parser with its receive time and emits the events;
   a frame the parser refuses is logged (venue, truncated copy), counted and skipped. A parser
   that isolates the entries of venue-wide arrays (one refused entry costs that entry only)
   has a ``take_refused() -> list[ParseError]`` method (:class:`RefusesEntries`): after each
   frame the entries it refused are logged (venue, the entry's text), counted in
   ``FeedStats.bad_entries`` and skipped, while the frame's other events go on;
4. on a timer (``check_interval``): runs each subscription's staleness watchdog (silence longer
   than its ``max_silence`` emits a STALE ``FeedStatus`` and forces a reconnect; the next data
   emits RECOVERED), sends the venue's app-level ping and reconnects when its pong does not
   come within ``pong_timeout``, and reconnects ahead of a venue-imposed ``max_lifetime``
   (a planned renewal: no DOWN status and no backoff delay, unless the new dial fails);
5. after any drop (abrupt or clean close, refused or failed dial, stall, ping timeout) it emits
   a DOWN status on channel ``connection`` and waits a jittered, capped, exponentially growing
   delay that resets only after a connection stayed up ``stable_after`` seconds.

:class:`PriceFeed` is the native public price feed of Binance USDⓈ-M, Bybit and OKX: one
:class:`WsFeed` plus, where the venue's stream lacks it, REST metadata (funding intervals,
maintenance tiers) loaded at start, beside the stream, and refreshed on a period.

Time comes only from the injected :class:`monitor.clock.Clock`: ``now()`` stamps frames
(``ts_recv``), ``monotonic()`` measures silences and lifetimes, ``sleep()`` paces timers and
backoff. Every interval is a :class:`FeedSettings` field so tests run in fractions of a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import aiohttp
import orjson
import structlog
import websockets
from websockets.asyncio.client import ClientConnection

from monitor.clock import Clock, SystemClock
from monitor.errors import ParseError, RetryableError
from monitor.model.events import Event, FeedState, FeedStatus
from monitor.venues.backoff import Backoff
from monitor.venues.parsing import FrameParser
from monitor.venues.watchdog import Staleness

if TYPE_CHECKING:
    from monitor.config import AccountConfig, VenueConfig

log = structlog.get_logger()

Emit = Callable[[Event], None]
Recorder = Callable[[float, str, str, str], None]
"""``recorder(ts_recv, venue, channel, frame_text)``; see :mod:`monitor.venues.recording`."""

CONNECTION = "connection"
"""The ``FeedStatus.channel`` of the connection itself (LIVE/DOWN)."""


class RefusesEntries(Protocol):
    """A parser that refuses single entries of a frame instead of the whole frame."""

    def take_refused(self) -> list[ParseError]:
        """The entries refused since the last call (each with the venue and its own text)."""
        ...


class Feed(Protocol):
    """Anything that streams a venue's events: runs forever and reconnects itself."""

    venue: str

    async def run(self, emit: Emit) -> None: ...


@dataclass(frozen=True, slots=True)
class Subscription:
    """One subscription: ``key`` is the channel the parser reports for its data
    (``Parsed.channel``); ``message`` the exact text sent; ``max_silence`` (seconds) the
    staleness limit, None for event-driven channels that may legitimately stay quiet
    (account updates); ``gate``: send the following subscriptions only once this one
    delivered data (or ``FeedSettings.gate_timeout`` passed)."""

    key: str
    message: str
    max_silence: float | None = None
    gate: bool = False


@dataclass(frozen=True, slots=True)
class FeedSettings:
    """Connection settings of one feed. Durations in seconds."""

    url: str
    open_timeout: float = 10.0
    close_timeout: float = 2.0
    protocol_ping_interval: float | None = 20.0
    protocol_ping_timeout: float | None = 20.0
    app_ping_message: str | None = None
    app_ping_interval: float = 50.0
    pong_timeout: float = 10.0
    max_lifetime: float | None = None
    check_interval: float = 1.0
    gate_timeout: float = 10.0
    max_frame_bytes: int = 16 * 1024 * 1024
    backoff_initial: float = 0.5
    backoff_factor: float = 2.0
    backoff_cap: float = 30.0
    backoff_jitter: float = 0.25
    stable_after: float = 10.0

    def backoff(self, rng: random.Random | None = None) -> Backoff:
        return Backoff(
            initial=self.backoff_initial,
            factor=self.backoff_factor,
            cap=self.backoff_cap,
            jitter=self.backoff_jitter,
            stable_after=self.stable_after,
            rng=rng or random.Random(),
        )


@dataclass
class FeedStats:
    """Counters of one feed, for status output and tests."""

    connects: int = 0
    disconnects: int = 0
    frames: int = 0
    bad_frames: int = 0
    events: int = 0
    last_disconnect: str = ""
    stale_reconnects: int = 0
    ping_timeouts: int = 0
    lifetime_reconnects: int = 0
    bad_entries: int = 0
    """Entries of venue-wide arrays refused one by one (their frame's other entries went on)."""
    bad_by_problem: dict[str, int] = field(default_factory=dict)


class _Reconnect(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class WsFeed:
    """The reconnecting WebSocket loop around one venue parser (see the module docstring).

    ``subscriptions`` is called at every (re)connect, so it may reflect the current wishes;
    ``on_connect`` (optional) runs before each connection attempt (REST bootstrap).
    """

    def __init__(
        self,
        venue: str,
        parser: FrameParser,
        settings: FeedSettings,
        subscriptions: Callable[[], Sequence[Subscription]],
        *,
        clock: Clock | None = None,
        recorder: Recorder | None = None,
        on_connect: Callable[[Emit], Awaitable[None]] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.venue = venue
        self.parser = parser
        self.settings = settings
        self._subscriptions = subscriptions
        self.clock: Clock = clock or SystemClock()
        self.recorder = recorder
        self.on_connect = on_connect
        self.backoff = settings.backoff(rng)
        self.stats = FeedStats()
        self.watchdogs: dict[str, Staleness] = {}
        self._log = log.bind(venue=venue)
        self._pong_at = 0.0
        self._gates: dict[str, asyncio.Event] = {}
        self._extra: asyncio.Queue[Subscription] | None = None
        self._renewing = False
        take = getattr(parser, "take_refused", None)
        self._take_refused: Callable[[], list[ParseError]] | None = take if callable(take) else None

    # -- the forever loop ------------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        s = self.settings
        emit(
            FeedStatus(
                self.venue, CONNECTION, FeedState.CONNECTING, s.url, ts_recv=self.clock.now()
            )
        )
        while True:
            self._renewing = False
            try:
                reason = await self._connect_once(emit)
            except Exception as exc:  # a bug in a session: logged in full, the feed goes on
                self._log.exception("feed.session_failed")
                reason = f"error: {_describe(exc)}"
            self.stats.disconnects += 1
            self.stats.last_disconnect = reason
            self.backoff.on_disconnected(self.clock.monotonic())
            if self._renewing:  # planned: the venue's lifetime is near, not an outage
                self._log.info("feed.renewing", reason=reason)
                continue
            delay = self.backoff.next_delay()
            emit(
                FeedStatus(self.venue, CONNECTION, FeedState.DOWN, reason, ts_recv=self.clock.now())
            )
            self._log.warning("feed.disconnected", reason=reason, retry_in=round(delay, 3))
            await self.clock.sleep(delay)

    async def _connect_once(self, emit: Emit) -> str:
        s = self.settings
        if self.on_connect is not None:
            try:
                await self.on_connect(emit)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # REST bootstrap must not stop the stream
                self._log.warning("feed.bootstrap_failed", error=_describe(exc))
        try:
            async with websockets.connect(
                s.url,
                open_timeout=s.open_timeout,
                close_timeout=s.close_timeout,
                ping_interval=s.protocol_ping_interval,
                ping_timeout=s.protocol_ping_timeout,
                max_size=s.max_frame_bytes,
            ) as ws:
                self.stats.connects += 1
                self.backoff.on_connected(self.clock.monotonic())
                self._log.info("feed.connected", url=s.url)
                emit(
                    FeedStatus(
                        self.venue, CONNECTION, FeedState.LIVE, s.url, ts_recv=self.clock.now()
                    )
                )
                try:
                    return await self._session(ws, emit)
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(ws.close(), s.close_timeout)
        except asyncio.CancelledError:
            raise
        except websockets.ConnectionClosed as exc:
            return _closed_reason(exc)
        except (OSError, TimeoutError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
            return f"connect failed: {_describe(exc)}"

    async def _session(self, ws: ClientConnection, emit: Emit) -> str:
        subs = list(self._subscriptions())
        mono = self.clock.monotonic()
        wanted = {sub.key for sub in subs}
        for key in [k for k in self.watchdogs if k not in wanted]:
            # no longer subscribed: no longer watched; a staleness it reported is over, or the
            # engine would hold the venue's alerts for a channel that will never recover
            if self.watchdogs.pop(key).stale:
                emit(
                    FeedStatus(
                        self.venue,
                        key,
                        FeedState.LIVE,
                        "no longer subscribed",
                        ts_recv=self.clock.now(),
                    )
                )
        for sub in subs:
            self._add_watchdog(sub)
            self.arm(sub.key)
        self._gates = {sub.key: asyncio.Event() for sub in subs if sub.gate}
        extra: asyncio.Queue[Subscription] = asyncio.Queue()
        self._extra = extra
        self._pong_at = mono
        reader = asyncio.create_task(self._reader(ws, emit))
        tasks = [
            reader,
            asyncio.create_task(self._ticker(ws, emit, mono)),
            asyncio.create_task(self._subscriber(ws, subs, extra)),
        ]
        try:
            while True:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    exc = t.exception()
                    if isinstance(exc, _Reconnect):
                        return exc.reason
                    if isinstance(exc, websockets.ConnectionClosed):
                        return _closed_reason(exc)
                    if exc is not None:
                        raise exc
                    if t is reader:
                        code, why = ws.close_code, ws.close_reason
                        if code is None or code == 1006:
                            return "connection lost (1006)"
                        return f"closed by venue ({code}{': ' + why if why else ''})"
                tasks = [t for t in tasks if not t.done()]
        finally:
            self._extra = None
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _subscriber(
        self, ws: ClientConnection, subs: list[Subscription], extra: asyncio.Queue[Subscription]
    ) -> None:
        for sub in subs:
            self.arm(sub.key)
            await ws.send(sub.message)
            self._log.debug("feed.subscribed", channel=sub.key)
            gate = self._gates.get(sub.key)
            if gate is not None:
                sleeper = asyncio.ensure_future(self.clock.sleep(self.settings.gate_timeout))
                waiter = asyncio.ensure_future(gate.wait())
                await asyncio.wait([sleeper, waiter], return_when=asyncio.FIRST_COMPLETED)
                sleeper.cancel()
                waiter.cancel()
                if not gate.is_set():
                    self._log.warning("feed.gate_timeout", channel=sub.key)
        while True:
            sub = await extra.get()
            self._add_watchdog(sub)
            self.arm(sub.key)
            await ws.send(sub.message)
            self._log.info("feed.subscribed", channel=sub.key)

    def subscribe_now(self, sub: Subscription) -> None:
        """Send ``sub`` on the live connection, if there is one. The caller must also make
        ``subscriptions()`` return it, so it is sent again after a reconnect."""
        if self._extra is not None:
            self._extra.put_nowait(sub)

    def _add_watchdog(self, sub: Subscription) -> None:
        if sub.max_silence is None:
            return
        wd = self.watchdogs.get(sub.key)
        if wd is None or wd.max_silence != sub.max_silence:
            self.watchdogs[sub.key] = Staleness(self.venue, sub.key, sub.max_silence)

    def arm(self, key: str) -> None:
        wd = self.watchdogs.get(key)
        if wd is not None:
            wd.arm(self.clock.monotonic())

    async def _reader(self, ws: ClientConnection, emit: Emit) -> None:
        parser = self.parser
        stats = self.stats
        clock = self.clock
        recorder = self.recorder
        async for message in ws:
            now = clock.now()
            stats.frames += 1
            try:
                parsed = parser.parse_frame(message, now)
            except ParseError as exc:
                self._refused_entries()
                self._bad_frame(exc)
                if recorder is not None:
                    recorder(now, self.venue, "ws", _text(message))
                continue
            except Exception as exc:  # a parser bug must not cost the feed: count, go on
                self._log.exception("feed.parser_failed", frame=_text(message)[:200])
                self._bad_frame(ParseError(self.venue, f"parser failed: {exc!r}"[:120], message))
                if recorder is not None:
                    recorder(now, self.venue, "ws", _text(message))
                continue
            if recorder is not None:
                recorder(now, self.venue, parsed.channel or "ws", _text(message))
            if self._take_refused is not None:
                self._refused_entries()
            if parsed.pong:
                self._pong_at = clock.monotonic()
            key = parsed.channel
            if key is not None:
                wd = self.watchdogs.get(key)
                if wd is not None:
                    status = wd.on_data(clock.monotonic())
                    if status is not None:
                        self._log.info("feed.recovered", channel=key)
                        emit(dataclasses.replace(status, ts_recv=now))
                gate = self._gates.get(key)
                if gate is not None:
                    gate.set()
            for event in parsed.events:
                emit(event)
            stats.events += len(parsed.events)

    async def _ticker(self, ws: ClientConnection, emit: Emit, connected_at: float) -> None:
        s = self.settings
        clock = self.clock
        last_ping = connected_at
        ping_sent: float | None = None
        while True:
            await clock.sleep(s.check_interval)
            mono = clock.monotonic()
            for wd in self.watchdogs.values():
                status = wd.check(mono)
                if status is not None:
                    self._log.warning("feed.stale", channel=wd.channel, detail=status.detail)
                    emit(dataclasses.replace(status, ts_recv=clock.now()))
                last = wd.last_data
                if wd.stale and last is not None and mono - last > wd.max_silence:
                    self.stats.stale_reconnects += 1
                    raise _Reconnect(f"stale: {wd.channel}")
            if s.app_ping_message is not None:
                if ping_sent is not None and self._pong_at < ping_sent:
                    if mono - ping_sent > s.pong_timeout:
                        self.stats.ping_timeouts += 1
                        raise _Reconnect(f"no pong within {s.pong_timeout:g}s")
                elif mono - last_ping >= s.app_ping_interval:
                    await ws.send(s.app_ping_message)
                    last_ping = ping_sent = mono
            if s.max_lifetime is not None and mono - connected_at >= s.max_lifetime:
                self.stats.lifetime_reconnects += 1
                self._renewing = True
                raise _Reconnect(f"connection lifetime {s.max_lifetime:g}s reached")

    def _refused_entries(self) -> None:
        take = self._take_refused
        if take is None:
            return
        for exc in take():
            self.stats.bad_entries += 1
            self._count_problem(exc, "feed.bad_entry", self.stats.bad_entries)

    def _bad_frame(self, exc: ParseError) -> None:
        stats = self.stats
        stats.bad_frames += 1
        self._count_problem(exc, "feed.bad_frame", stats.bad_frames)

    def _count_problem(self, exc: ParseError, event: str, count: int) -> None:
        stats = self.stats
        problem = exc.problem[:80]
        n = stats.bad_by_problem.get(problem, 0) + 1
        if problem in stats.bad_by_problem or len(stats.bad_by_problem) < 1_000:
            stats.bad_by_problem[problem] = n
        # each bad frame is logged once; a flood of the same problem is thinned out
        if n <= 10 or n & (n - 1) == 0:
            self._log.warning(event, problem=exc.problem, frame=exc.frame, count=count)


Metadata = Callable[[Emit], Awaitable[Mapping[str, float]]]
"""``await metadata(emit)``: load a venue's REST metadata, emit its ``InstrumentSpec`` events and
return the funding interval (hours) of each symbol it knows."""


class PriceFeed:
    """A native public price feed: ``ws`` streams the prices; ``metadata`` (optional) runs
    beside it, at start and then every ``metadata_interval`` seconds (after a failure, every
    ``metadata_retry`` seconds), and hands the funding intervals it learns to
    ``on_intervals`` (the parser's ``set_intervals``). The stream never waits for REST: until
    the intervals are known, funding events carry the parser's default interval. Each load's
    intervals are also recorded (``rest:fundingIntervals``, ``{"SYMBOL": hours}``) when the
    feed records, and the Binance and Bybit parsers read that record back on replay.

    With no ``symbols`` there is nothing to subscribe: the feed reports its connection DOWN
    once ("no symbols to watch") and idles instead of dialling.
    """

    def __init__(
        self,
        ws: WsFeed,
        symbols: Sequence[str],
        *,
        metadata: Metadata | None = None,
        on_intervals: Callable[[Mapping[str, float]], None] | None = None,
        metadata_interval: float | None = 3600.0,
        metadata_retry: float = 60.0,
    ) -> None:
        self.venue = ws.venue
        self.ws = ws
        self.symbols = tuple(dict.fromkeys(symbols))
        self._metadata = metadata
        self._on_intervals = on_intervals
        self._metadata_interval = metadata_interval
        self._metadata_retry = metadata_retry
        self.metadata_loads = 0
        self.metadata_failures = 0

    @property
    def stats(self) -> FeedStats:
        return self.ws.stats

    async def run(self, emit: Emit) -> None:
        clock = self.ws.clock
        if not self.symbols:
            log.warning("feed.no_symbols", venue=self.venue)
            emit(
                FeedStatus(
                    self.venue,
                    CONNECTION,
                    FeedState.DOWN,
                    "no symbols to watch (set symbols, or price a manual account by this venue)",
                    ts_recv=clock.now(),
                )
            )
            await asyncio.Event().wait()
        async with asyncio.TaskGroup() as tg:
            tg.create_task(self.ws.run(emit))
            if self._metadata is not None:
                tg.create_task(self._refresh(self._metadata, emit))

    async def _refresh(self, metadata: Metadata, emit: Emit) -> None:
        clock = self.ws.clock
        while True:
            try:
                intervals = await metadata(emit)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # REST metadata must never stop the price stream
                self.metadata_failures += 1
                log.warning("feed.metadata_failed", venue=self.venue, error=_describe(exc))
                await clock.sleep(self._metadata_retry)
                continue
            self.metadata_loads += 1
            if self._on_intervals is not None:
                self._on_intervals(intervals)
            recorder = self.ws.recorder
            if recorder is not None:  # so that a replay prices funding as the live feed did
                body = orjson.dumps(dict(intervals)).decode()
                recorder(clock.now(), self.venue, "rest:fundingIntervals", body)
            log.info("feed.metadata_loaded", venue=self.venue, symbols=len(intervals))
            if self._metadata_interval is None:
                return
            await clock.sleep(self._metadata_interval)


def held_symbols(accounts: Sequence[AccountConfig]) -> list[str]:
    """The symbols the manual accounts among ``accounts`` hold (in order, once each)."""
    held = [p.symbol for a in accounts if a.snapshot is not None for p in a.snapshot.positions]
    return list(dict.fromkeys(held))


def watched_symbols(venue: VenueConfig, accounts: Sequence[AccountConfig]) -> tuple[str, ...]:
    """``venue.symbols``, then the symbols its manual accounts hold, once each."""
    return tuple(dict.fromkeys([*venue.symbols, *held_symbols(accounts)]))


async def fetch_text(
    http: aiohttp.ClientSession,
    method: str,
    url: str,
    *,
    json_body: object | None = None,
    total_seconds: float = 10.0,
) -> str:
    """One REST call; the body text. Transport failures, timeouts and non-2xx statuses raise
    :class:`RetryableError` (callers log them and try again later)."""
    try:
        async with http.request(
            method, url, json=json_body, timeout=aiohttp.ClientTimeout(total=total_seconds)
        ) as resp:
            raw = await resp.read()
            # a garbled body (a proxy's, a truncated one) must not escape as a decode error
            body = raw.decode(resp.charset or "utf-8", "replace")
            if resp.status >= 300:
                raise RetryableError(f"{method} {url}: HTTP {resp.status}: {body[:120]}")
            return body
    except (aiohttp.ClientError, TimeoutError, LookupError) as exc:
        raise RetryableError(f"{method} {url}: {_describe(exc)}") from exc


def _text(message: str | bytes) -> str:
    return message if isinstance(message, str) else message.decode("utf-8", "replace")


def _closed_reason(exc: websockets.ConnectionClosed) -> str:
    rcvd = exc.rcvd
    if rcvd is None:
        sent = exc.sent
        if sent is not None and sent.code == 1011:  # we failed it: keepalive ping timeout
            return f"closed by us ({sent.code}: {sent.reason or 'internal error'})"
        return "connection lost (1006)"
    return f"closed by venue ({rcvd.code}{': ' + rcvd.reason if rcvd.reason else ''})"


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]
