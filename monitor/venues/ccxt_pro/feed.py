"""The ccxt.pro feed: marks, funding and maintenance tiers of linear swaps (I/O shell).

One :class:`CcxtProFeed` watches one ccxt exchange (``binanceusdm``, ``bybit``, ``okx`` or any
ccxt.pro exchange that streams mark prices or tickers) for a list of *native* symbols
(``BTCUSDT``, ``BTC-USDT-SWAP``) and emits our events with those symbols and the venue name of
its :class:`~monitor.venues.ccxt_pro.streams.StreamPlan` (``binance_usdm``, ``bybit``, ``okx``,
else the ccxt id).

What it does, in order:

1. ``load_markets`` (retried with backoff until it succeeds), keeps the linear swaps whose
   native ids were asked for (others are logged as ``feed.unknown_symbol`` and dropped);
2. reads the funding interval of each symbol (``fetch_funding_intervals`` where ccxt has it,
   else the market's ``fundingInterval``, else 8 h);
3. emits one :class:`InstrumentSpec` per symbol whose maintenance schedule is known: the
   configured one (``maintenance``), else the venue's public tiers where the plan says so;
4. runs one watch loop per stream (marks; funding when it is a separate stream or a REST poll)
   and a staleness watchdog.

ccxt does not resubscribe after a drop and can hang silently (feeds.md §5.3). Each watch loop
therefore catches ``ccxt.NetworkError`` (``RequestTimeout`` included), exchange error frames
(``ccxt.ExchangeError``) and ccxt's failures on malformed frames, backs off with a jittered,
capped :class:`~monitor.venues.backoff.Backoff`, and calls ``watch_*`` again, which reconnects
and resubscribes. The watchdog checks each stream's :class:`~monitor.venues.watchdog.Staleness`
every ``check_interval`` seconds: past ``max_silence`` it emits ``FeedStatus(STALE)``, cancels
the pending watch and closes the exchange's websocket clients, which forces a fresh connection
and subscription (repeated every ``max_silence`` while the stream stays silent). The first data
afterwards emits ``RECOVERED``. A stream that fails emits ``FeedStatus(DOWN)`` once per outage
and ``FeedStatus(LIVE)`` when data flows again without having gone stale.

Garbage frames: in ccxt 4.5.90 a frame that ccxt itself fails on (text that starts like JSON
but does not parse, e.g. ``[1,2,``; a binary frame that is not UTF-8; any exception from the
exchange's message handler) raises inside ccxt's receive loop, which then stops reading while
the socket stays open: prices would stop, silently, until the watchdog's ``max_silence``. Every
websocket client the exchange creates is therefore guarded (:func:`guard_clients`): such a
frame is logged (venue, truncated copy), counted as ``bad_frame`` and the connection is failed
at once with :class:`GarbageFrameError` (a ``ccxt.NetworkError``), so the watch loops report
DOWN, back off and reconnect and resubscribe as after any drop.

Failures are classified: :class:`GarbageFrameError` a bad frame (counted once, when the frame
arrives), any other ``ccxt.NetworkError`` a disconnect, any other ``ccxt.BaseError``
a venue error (an error frame or an HTTP error), and ``LookupError``/``TypeError``/
``ValueError``/``AttributeError`` raised by ccxt on a body or frame of the wrong shape a bad
frame; all three are counted in :attr:`CcxtProFeed.errors` and retried with backoff. Anything
else is a bug and propagates.

Venues that cut connections after a fixed lifetime (Binance: 24 h) are reconnected on purpose
a little earlier (``max_connection_age``), without a DOWN report or a backoff delay.

Updates that arrive between two ``watch_*`` calls are not lost: after each call the loop emits
every ticker (or funding rate) of its symbols that ccxt's cache replaced since the last emission.

All intervals are seconds and configurable; ``clock`` supplies time and sleep.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ccxt
import ccxt.pro
import structlog

from monitor.clock import Clock, SystemClock
from monitor.errors import ParseError
from monitor.model.events import Event, FeedState, FeedStatus, InstrumentSpec
from monitor.model.instruments import MaintenanceSchedule
from monitor.venues.backoff import Backoff
from monitor.venues.ccxt_pro import convert
from monitor.venues.ccxt_pro.streams import (
    KNOWN,
    FundingSource,
    MarkSource,
    StreamPlan,
    TierSource,
    plan_for,
)
from monitor.venues.watchdog import Staleness

log = structlog.get_logger()

Emit = Callable[[Event], None]

DATA_DEFECTS = (LookupError, TypeError, ValueError, AttributeError)
"""What ccxt raises when a venue sends a body or frame of the wrong shape: retried like a
venue error and counted as ``bad_frame``. Anything else from our own code propagates."""


class GarbageFrameError(ccxt.NetworkError):  # type: ignore[misc]
    """A frame ccxt could not handle; the connection that carried it is dropped on purpose."""


OnGarbage = Callable[[Any, str, BaseException], None]
"""``on_garbage(client, frame_text, exc)``: called once per frame ccxt failed on."""


def guard_clients(exchange: Any, on_garbage: OnGarbage) -> None:
    """Make every websocket client of ``exchange`` survive a frame it cannot handle.

    ccxt (4.5.90) runs ``client.handle_message`` in a done-callback of its receive task and
    schedules the next read only when it returns: an exception there ends the reading for
    good while the socket stays open. The guard wraps each client's ``handle_message`` (an
    instance attribute shadowing the method, so ccxt's own calls go through it): on an
    exception it calls ``on_garbage`` and fails the client with :class:`GarbageFrameError`,
    which rejects every pending ``watch_*`` and closes the socket; the next ``watch_*`` dials
    a new connection and subscribes again.
    """
    make_client = exchange.client

    def client(url: str) -> Any:
        c = make_client(url)
        if getattr(c, "_monitor_guarded", False):
            return c
        handle = c.handle_message

        def guarded(message: Any) -> None:
            try:
                handle(message)
            except Exception as exc:
                frame = _frame_text(getattr(message, "data", message))
                on_garbage(c, frame, exc)
                c.on_error(GarbageFrameError(f"bad frame: {type(exc).__name__}: {exc}"[:200]))

        c.handle_message = guarded
        c._monitor_guarded = True
        return c

    exchange.client = client


def _frame_text(data: Any) -> str:
    if isinstance(data, bytes | bytearray):
        return bytes(data[:200]).decode("utf-8", "replace")
    return str(data)[:200]


def _deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = _deep_merge(old, value)
        else:
            out[key] = value
    return out


@dataclass(eq=False)
class _Stream:
    """State of one watched stream (``name`` is the FeedStatus channel)."""

    name: str
    staleness: Staleness
    backoff: Backoff
    state: FeedState = FeedState.CONNECTING
    task: asyncio.Future[Any] | None = None
    forced_at: float = 0.0
    live_since: float | None = None
    rotating: bool = False
    seen: dict[str, Any] = field(default_factory=dict)


class CcxtProFeed:
    """Marks and funding of ``symbols`` (native ids) on one ccxt.pro exchange.

    ``urls``/``options``/``streaming`` are deep-merged into ccxt's constructor config (point
    ``urls`` at loopback in tests, feeds.md §5.2); ``maintenance`` maps a native symbol to its
    schedule and wins over fetched tiers; ``max_silence`` (marks) and ``funding_max_silence``
    are the staleness limits in seconds; ``funding_poll_interval`` the REST funding period
    where no funding stream exists; ``max_connection_age`` (seconds) reconnects on purpose
    before a venue-imposed lifetime (None: the plan's, 23.5 h on Binance; ``math.inf``: never);
    ``plan`` overrides the stream plan (for example to poll funding over REST);
    ``backoff`` builds one Backoff per stream.
    """

    def __init__(
        self,
        exchange_id: str,
        symbols: Sequence[str],
        *,
        urls: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        streaming: Mapping[str, Any] | None = None,
        maintenance: Mapping[str, MaintenanceSchedule] | None = None,
        max_silence: float = 30.0,
        funding_max_silence: float = 180.0,
        funding_poll_interval: float = 60.0,
        check_interval: float = 1.0,
        max_connection_age: float | None = None,
        plan: StreamPlan | None = None,
        backoff: Callable[[], Backoff] = Backoff,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(getattr(ccxt.pro, exchange_id, None), type):
            raise ValueError(f"ccxt.pro has no exchange {exchange_id!r}")
        self.exchange_id = exchange_id
        known = KNOWN.get(exchange_id)
        given = plan or known
        self.venue = given.venue if given is not None else exchange_id
        self._known = known
        exchange_class = getattr(ccxt.pro, exchange_id)
        self.plan: StreamPlan = plan or known or plan_for(exchange_id, exchange_class().has)
        """The stream plan: a known one, else derived from ccxt's ``has`` table (raises
        :class:`~monitor.venues.ccxt_pro.streams.UnsupportedExchangeError` when the exchange
        streams neither mark prices nor tickers)."""
        self.symbols = tuple(dict.fromkeys(symbols))
        self._urls = dict(urls or {})
        self._options = dict(options or {})
        self._streaming = dict(streaming or {})
        self._maintenance = dict(maintenance or {})
        self._max_silence = max_silence
        self._funding_max_silence = funding_max_silence
        self._funding_poll_interval = funding_poll_interval
        self._check_interval = check_interval
        if max_connection_age is None and known is not None:
            max_connection_age = known.max_connection_age
        self._max_connection_age = max_connection_age
        self._backoff = backoff
        self._clock: Clock = clock or SystemClock()
        self.errors: Counter[str] = Counter()
        """Problems seen so far, by kind (``disconnect``, ``venue_error``, ``bad_frame``,
        ``stale``, ``unknown_symbol``): the per-venue counters operators look at."""
        self._log = log.bind(venue=self.venue, exchange=exchange_id)

    # -- construction ---------------------------------------------------------------------
    def _exchange_config(self) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if self._known is not None:
            options = dict(self._known.options)
            if self._known.market_types is not None:
                options["fetchMarkets"] = {"types": list(self._known.market_types)}
        options = _deep_merge(options, self._options)
        config: dict[str, Any] = {"enableRateLimit": True, "newUpdates": True, "options": options}
        if self._urls:
            config["urls"] = self._urls
        if self._streaming:
            config["streaming"] = self._streaming
        return config

    def _new_exchange(self) -> Any:
        exchange = getattr(ccxt.pro, self.exchange_id)(self._exchange_config())
        guard_clients(exchange, self._garbage)
        return exchange

    def _garbage(self, client: Any, frame: str, exc: BaseException) -> None:
        self.errors["bad_frame"] += 1
        self._log.warning(
            "feed.bad_frame",
            problem=f"ccxt failed on a frame ({type(exc).__name__}: {exc}); reconnecting"[:200],
            frame=frame,
            count=self.errors["bad_frame"],
        )

    # -- the Feed protocol ----------------------------------------------------------------
    async def run(self, emit: Emit) -> None:
        """Run until cancelled: bootstrap, then watch and reconnect forever."""
        exchange = self._new_exchange()
        try:
            plan = self.plan
            ids = await self._load_markets(exchange, emit)
            if not ids:
                self._log.error("feed.no_symbols", asked=list(self.symbols))
                emit(
                    FeedStatus(
                        self.venue,
                        "markets",
                        FeedState.DOWN,
                        "none of the configured symbols is a linear swap here",
                        ts_recv=self._clock.now(),
                    )
                )
                return
            intervals = await self._funding_intervals(exchange, ids)
            await self._emit_instruments(exchange, plan, ids, intervals, emit)
            await self._watch_all(exchange, plan, ids, intervals, emit)
        finally:
            await exchange.close()

    async def load_metadata(self, emit: Emit) -> dict[str, float]:
        """The bootstrap alone, over ccxt's REST client, for a feed that streams prices natively
        (:mod:`monitor.venues.binance.feed`, ...): load the markets (retried with backoff until
        they load), read the funding intervals and emit one :class:`InstrumentSpec` per symbol
        whose maintenance schedule is known (configured, else the venue's public tiers).
        Returns the funding interval in hours of each known symbol; the exchange's sessions
        are closed before it returns. Status of the ``markets`` REST channel is not emitted
        (the price stream does not depend on it): failures are logged and counted."""
        exchange = self._new_exchange()

        def no_status(event: Event) -> None:
            if not isinstance(event, FeedStatus):
                emit(event)

        try:
            ids = await self._load_markets(exchange, no_status)
            if not ids:
                self._log.error("feed.no_symbols", asked=list(self.symbols))
                return {}
            intervals = await self._funding_intervals(exchange, ids)
            await self._emit_instruments(exchange, self.plan, ids, intervals, no_status)
            return intervals
        finally:
            await exchange.close()

    # -- bootstrap ------------------------------------------------------------------------
    async def _load_markets(self, exchange: Any, emit: Emit) -> dict[str, str]:
        """Native id → unified symbol of the configured symbols, retrying until it loads."""
        stream = _Stream("markets", Staleness(self.venue, "markets", 1.0), self._backoff())
        reload = False
        while True:
            try:
                await exchange.load_markets(reload)
                available = convert.linear_swap_ids(exchange.markets or {})
                if available:
                    break
                # a 200 with an HTML page or an empty list: ccxt "loads" no markets at all
                raise ccxt.BadResponse(f"{self.exchange_id}: no linear swaps in the market list")
            except (ccxt.BaseError, *DATA_DEFECTS) as exc:
                reload = True
                await self._failed(stream, exc, emit)
        stream.backoff.on_connected(self._clock.monotonic())
        if stream.state is FeedState.DOWN:
            emit(FeedStatus(self.venue, "markets", FeedState.LIVE, ts_recv=self._clock.now()))
        ids: dict[str, str] = {}
        for symbol in self.symbols:
            unified = available.get(symbol)
            if unified is None:
                self.errors["unknown_symbol"] += 1
                self._log.warning("feed.unknown_symbol", symbol=symbol)
            else:
                ids[symbol] = unified
        self._log.info("feed.markets_loaded", symbols=list(ids), markets=len(available))
        return ids

    async def _funding_intervals(self, exchange: Any, ids: Mapping[str, str]) -> dict[str, float]:
        """Funding interval (hours) per native symbol: what ``fetch_funding_intervals`` says
        where ccxt has it (Binance lists only symbols off the 8 h default), else the market's
        own ``fundingInterval`` (Bybit), else 8 h."""
        out = {
            s: convert.market_interval_hours(exchange.markets[u]) or convert.DEFAULT_INTERVAL_HOURS
            for s, u in ids.items()
        }
        if not exchange.has.get("fetchFundingIntervals"):
            return out
        try:
            by_unified = await exchange.fetch_funding_intervals(list(ids.values()))
        except (ccxt.BaseError, *DATA_DEFECTS) as exc:
            self._log.warning("feed.intervals_unavailable", error=repr(exc)[:200])
            return out
        for s, u in ids.items():
            entry = by_unified.get(u) if isinstance(by_unified, Mapping) else None
            hours = convert.interval_hours(entry.get("interval")) if entry else None
            if hours is not None:
                out[s] = hours
        return out

    async def _emit_instruments(
        self,
        exchange: Any,
        plan: StreamPlan,
        ids: Mapping[str, str],
        intervals: Mapping[str, float],
        emit: Emit,
    ) -> None:
        schedules = dict(await self._fetch_tiers(exchange, plan, ids))
        schedules.update({s: m for s, m in self._maintenance.items() if s in ids})
        now = self._clock.now()
        for symbol, unified in ids.items():
            schedule = schedules.get(symbol)
            if schedule is None:
                self._log.warning("feed.no_maintenance", symbol=symbol, source=plan.tiers)
                continue
            market = exchange.markets[unified]
            inst = convert.instrument(self.venue, symbol, market, schedule, intervals[symbol])
            emit(InstrumentSpec(inst, None, now))

    async def _fetch_tiers(
        self, exchange: Any, plan: StreamPlan, ids: Mapping[str, str]
    ) -> Iterable[tuple[str, MaintenanceSchedule]]:
        wanted = [s for s in ids if s not in self._maintenance]
        if not wanted or plan.tiers is TierSource.CONFIG:
            return []
        by_unified: dict[str, Any] = {}
        if plan.tiers is TierSource.FETCH_LEVERAGE_TIERS:
            try:
                fetched = await exchange.fetch_leverage_tiers([ids[s] for s in wanted])
                by_unified = dict(fetched)
            except (ccxt.BaseError, *DATA_DEFECTS) as exc:
                self._log.warning("feed.tiers_unavailable", error=repr(exc)[:200])
        else:
            for s in wanted:  # one request per symbol: a failure costs only that symbol
                try:
                    by_unified[ids[s]] = await exchange.fetch_market_leverage_tiers(ids[s])
                except (ccxt.BaseError, *DATA_DEFECTS) as exc:
                    self._log.warning("feed.tiers_unavailable", symbol=s, error=repr(exc)[:200])
        out: list[tuple[str, MaintenanceSchedule]] = []
        for s in wanted:
            tiers = by_unified.get(ids[s])
            if not tiers:
                continue
            try:
                out.append((s, convert.schedule_from_tiers(tiers)))
            except (*DATA_DEFECTS,) as exc:
                self.errors["bad_frame"] += 1
                self._log.warning("feed.bad_tiers", symbol=s, error=str(exc)[:200])
        return out

    # -- watching -------------------------------------------------------------------------
    async def _watch_all(
        self,
        exchange: Any,
        plan: StreamPlan,
        ids: Mapping[str, str],
        intervals: Mapping[str, float],
        emit: Emit,
    ) -> None:
        unified = [ids[s] for s in ids]
        native = {u: s for s, u in ids.items()}
        now = self._clock.monotonic()
        marks = self._stream("marks", self._max_silence, now)
        streams = [marks]

        def on_tickers() -> list[Event]:
            return self._collect(
                marks,
                exchange.tickers,
                native,
                lambda s, t, ts: convert.ticker_events(
                    self.venue,
                    s,
                    t,
                    ts,
                    funding=plan.info_funding if plan.funding is FundingSource.IN_TICKER else None,
                    default_interval_hours=intervals[s],
                ),
            )

        def watch_marks() -> Awaitable[Any]:
            if plan.mark is MarkSource.WATCH_MARK_PRICES:
                return exchange.watch_mark_prices(unified)  # type: ignore[no-any-return]
            return exchange.watch_tickers(unified)  # type: ignore[no-any-return]

        async with asyncio.TaskGroup() as tg:
            tg.create_task(self._watch_loop(marks, watch_marks, on_tickers, emit))
            if plan.funding in (
                FundingSource.WATCH_FUNDING_RATES,
                FundingSource.POLL_FUNDING_RATES,
            ):
                funding = self._stream("funding", self._funding_max_silence, now)
                streams.append(funding)

                def on_funding() -> list[Event]:
                    return self._collect(
                        funding,
                        exchange.fundingRates,
                        native,
                        lambda s, r, ts: convert.funding_rate_event(
                            self.venue, s, r, ts, intervals[s]
                        ),
                    )

                if plan.funding is FundingSource.WATCH_FUNDING_RATES:
                    tg.create_task(
                        self._watch_loop(
                            funding, lambda: exchange.watch_funding_rates(unified), on_funding, emit
                        )
                    )
                else:
                    tg.create_task(
                        self._poll_funding(
                            exchange,
                            funding,
                            unified=unified,
                            native=native,
                            intervals=intervals,
                            emit=emit,
                        )
                    )
            tg.create_task(self._watchdog(exchange, streams, emit))

    def _stream(self, name: str, max_silence: float, now: float) -> _Stream:
        stream = _Stream(name, Staleness(self.venue, name, max_silence), self._backoff())
        stream.staleness.arm(now)
        return stream

    def _collect(
        self,
        stream: _Stream,
        cache: Any,  # ccxt's cache or a REST result: a dict unless the venue misbehaved
        native: Mapping[str, str],
        convert_one: Callable[[str, Any, float], list[Event]],
    ) -> list[Event]:
        """Events of every cached structure of our symbols that changed since last time."""
        ts_recv = self._clock.now()
        out: list[Event] = []
        if not isinstance(cache, Mapping):
            self.errors["bad_frame"] += 1
            self._log.warning("feed.bad_frame", problem="not a mapping", frame=repr(cache)[:200])
            return out
        for unified, symbol in native.items():
            item = cache.get(unified)
            if item is None or stream.seen.get(unified) is item:
                continue
            stream.seen[unified] = item  # held, so its id cannot be reused by a new one
            if not isinstance(item, Mapping):
                self.errors["bad_frame"] += 1
                self._log.warning("feed.bad_frame", problem="not a mapping", frame=repr(item)[:200])
                continue
            try:
                out.extend(convert_one(symbol, item, ts_recv))
            except ParseError as exc:
                self.errors["bad_frame"] += 1
                self._log.warning("feed.bad_frame", problem=exc.problem, frame=exc.frame)
        return out

    async def _watch_loop(
        self,
        stream: _Stream,
        watch: Callable[[], Awaitable[Any]],
        collect: Callable[[], list[Event]],
        emit: Emit,
    ) -> None:
        while True:
            task = asyncio.ensure_future(watch())
            stream.task = task
            try:
                await asyncio.wait({task})
            except asyncio.CancelledError:
                task.cancel()
                raise
            finally:
                stream.task = None
            if task.cancelled():
                exc: BaseException = ccxt.NetworkError("watch cancelled by the staleness watchdog")
            else:
                failure = task.exception()
                if failure is None:
                    self._data(stream, emit)
                    for event in collect():
                        emit(event)
                    continue
                exc = failure
            await self._failed(stream, exc, emit)

    async def _poll_funding(
        self,
        exchange: Any,
        stream: _Stream,
        *,
        unified: list[str],
        native: Mapping[str, str],
        intervals: Mapping[str, float],
        emit: Emit,
    ) -> None:
        while True:
            try:
                rates = await exchange.fetch_funding_rates(unified)
            except (ccxt.BaseError, *DATA_DEFECTS) as exc:
                await self._failed(stream, exc, emit)
                continue
            self._data(stream, emit)
            for event in self._collect(
                stream,
                rates,
                native,
                lambda s, r, ts: convert.funding_rate_event(self.venue, s, r, ts, intervals[s]),
            ):
                emit(event)
            await self._clock.sleep(self._funding_poll_interval)

    def _data(self, stream: _Stream, emit: Emit) -> None:
        now = self._clock.monotonic()
        recovered = stream.staleness.on_data(now)
        if recovered is not None:
            self._log.info("feed.recovered", channel=stream.name)
            emit(_restamp(recovered, self._clock.now()))
        elif stream.state is not FeedState.LIVE:
            self._log.info("feed.live", channel=stream.name)
            emit(FeedStatus(self.venue, stream.name, FeedState.LIVE, ts_recv=self._clock.now()))
        if stream.state is not FeedState.LIVE:
            stream.backoff.on_connected(now)
            stream.live_since = now
        elif stream.live_since is None:  # first data on a connection we rotated
            stream.live_since = now
        stream.state = FeedState.LIVE
        stream.rotating = False

    async def _failed(self, stream: _Stream, exc: BaseException, emit: Emit) -> None:
        """Classify ``exc``, report DOWN once per outage, and sleep the backoff delay."""
        if stream.rotating:  # our own planned reconnect: no outage to report, no delay
            stream.rotating = False
            return
        counted = False
        if isinstance(exc, GarbageFrameError):
            kind, counted = "bad_frame", True  # counted by _garbage, once per frame
        elif isinstance(exc, ccxt.NetworkError):
            kind = "disconnect"
        elif isinstance(exc, ccxt.BaseError):
            kind = "venue_error"
        elif isinstance(exc, DATA_DEFECTS):
            kind = "bad_frame"  # ccxt failed on a malformed frame or body
        else:
            raise exc
        if not counted:
            self.errors[kind] += 1
        now = self._clock.monotonic()
        detail = f"{type(exc).__name__}: {exc}"[:200]
        if stream.state is not FeedState.DOWN:
            stream.backoff.on_disconnected(now)
            stream.state = FeedState.DOWN
            emit(
                FeedStatus(
                    self.venue, stream.name, FeedState.DOWN, detail, ts_recv=self._clock.now()
                )
            )
        delay = stream.backoff.next_delay()
        self._log.warning("feed.retry", channel=stream.name, kind=kind, error=detail, delay=delay)
        await self._clock.sleep(delay)

    async def _watchdog(self, exchange: Any, streams: Sequence[_Stream], emit: Emit) -> None:
        while True:
            await self._clock.sleep(self._check_interval)
            now = self._clock.monotonic()
            for stream in streams:
                status = stream.staleness.check(now)
                again = (
                    status is None
                    and stream.staleness.stale
                    and now - stream.forced_at >= stream.staleness.max_silence
                )
                if status is not None:
                    self.errors["stale"] += 1
                    self._log.warning("feed.stale", channel=stream.name, detail=status.detail)
                    emit(_restamp(status, self._clock.now()))
                if status is not None or again:
                    stream.forced_at = now
                    self._force_reconnect(exchange, stream)
                elif self._due_for_rotation(stream, now):
                    self._log.info("feed.rotate", channel=stream.name)
                    for other in streams:  # the clients are shared: every stream reconnects
                        if other.state is FeedState.LIVE:
                            other.rotating = True
                            other.live_since = None
                    self._force_reconnect(exchange, stream)

    def _due_for_rotation(self, stream: _Stream, now: float) -> bool:
        age = self._max_connection_age
        return (
            age is not None
            and stream.live_since is not None
            and stream.state is FeedState.LIVE
            and now - stream.live_since >= age
        )

    def _force_reconnect(self, exchange: Any, stream: _Stream) -> None:
        """Reject and cancel the pending watch and drop every websocket client, so the next
        ``watch_*`` call dials a new connection and subscribes again."""
        error = ccxt.NetworkError(f"{self.exchange_id} {stream.name} stale: forcing a reconnect")
        for client in list((exchange.clients or {}).values()):
            client.on_error(error)
        if stream.task is not None and not stream.task.done():
            stream.task.cancel()
        self._log.info("feed.resubscribe", channel=stream.name)


def _restamp(status: FeedStatus, ts_recv: float) -> FeedStatus:
    """Staleness stamps with the monotonic clock; events carry wall-clock receive times."""
    return FeedStatus(status.venue, status.channel, status.state, status.detail, ts_recv=ts_recv)
