"""The dYdX v4 feed: REST markets bootstrap, the indexer WebSocket, account supervision.

* At every (re)connect: ``GET {rest_url}/perpetualMarkets`` → instruments (MMF, IMF), oracle
  prices, next funding rates.
* WebSocket: the ``connected`` greeting, then ``v4_markets`` (``batched`` configurable; a
  gating subscription: the account subscriptions are sent once it delivered its snapshot, since
  their snapshots are priced with it), ``v4_subaccounts`` for every ``<address>/<n>`` and
  ``v4_parent_subaccounts`` for every parent ``<address>/<n>``.
* Keepalive: the server pings every 30 s at protocol level (answered by ``websockets``); we
  also ping at protocol level every ``protocol_ping_interval`` so a dead server is noticed. The
  markets channel has a staleness limit (oracle prices move every block) that forces a
  reconnect.
* Accounts (which only speak on change): every ``resnapshot_interval`` seconds each
  subscription is fetched over REST (``/addresses/{a}/subaccountNumber/{n}`` or
  ``/addresses/{a}/parentSubaccountNumber/{n}``) and its snapshots emitted; a subscription
  whose deltas the parser refused is re-fetched at once (at most every
  ``resync_min_interval``). Data from either source feeds a silence budget per subscription:
  after ``account_max_silence`` seconds without any, ``FeedStatus(venue,
  "account:<address>/<n>", STALE, reason)`` is emitted once (the reason names the silence and
  the last REST error); the next data emits RECOVERED. Durations use the monotonic clock.
* Entries the parser skipped inside accepted frames (an unpriced market, one bad oracle entry)
  are logged with the venue and counted in ``stats.skipped_entries``.
"""

from __future__ import annotations

import asyncio
import random
import re

import aiohttp
import orjson
import structlog

from monitor.clock import Clock, SystemClock
from monitor.errors import ConfigError, ParseError, RetryableError
from monitor.model.events import Event, FeedState, FeedStatus
from monitor.venues.dydx.parse import VENUE, DydxParser
from monitor.venues.feed import Emit, FeedSettings, Recorder, Subscription, WsFeed, fetch_text
from monitor.venues.parsing import Parsed
from monitor.venues.watchdog import Staleness

log = structlog.get_logger()

WS_URL = "wss://indexer.dydx.trade/v4/ws"
REST_URL = "https://indexer.dydx.trade/v4"
_ID = re.compile(r"^[^/\s]+/[0-9]{1,6}$")


def default_ws_settings(url: str = WS_URL) -> FeedSettings:
    return FeedSettings(url=url, protocol_ping_interval=20.0, protocol_ping_timeout=20.0)


def check_ids(ids: tuple[str, ...], key: str) -> None:
    for ident in ids:
        if not _ID.match(ident):
            raise ConfigError("dydx", key, f"expected <address>/<number>, got {ident!r}")


class _Tap:
    """The parser as the WebSocket shell sees it: every accepted account frame counts as data
    for that subscription's silence budget; entries skipped inside accepted frames are logged
    and counted."""

    venue = VENUE

    def __init__(self, feed: DydxFeed) -> None:
        self.feed = feed
        self.parser = feed.parser

    def parse_frame(self, frame: str | bytes, ts_recv: float) -> Parsed:
        parsed = self.parser.parse_frame(frame, ts_recv)
        self.feed.after_frame(parsed.channel)
        return parsed

    def parse(self, frame: str | bytes, ts_recv: float) -> list[Event]:
        return self.parse_frame(frame, ts_recv).events

    def parse_rest(self, name: str, body: str | bytes, ts_recv: float) -> list[Event]:
        return self.parser.parse_rest(name, body, ts_recv)


class DydxFeed:
    """Feed protocol implementation for dYdX v4 (see the module docstring). Durations in
    seconds; ``account_max_silence`` / ``resnapshot_interval`` None switch the account silence
    budget / the periodic REST re-snapshot off."""

    venue = VENUE

    def __init__(
        self,
        subaccounts: tuple[str, ...] = (),
        parent_subaccounts: tuple[str, ...] = (),
        ws: FeedSettings | None = None,
        *,
        rest_url: str = REST_URL,
        batched: bool = False,
        markets_max_silence: float = 60.0,
        account_max_silence: float | None = 180.0,
        resnapshot_interval: float | None = 60.0,
        resync_min_interval: float = 5.0,
        rest_timeout: float = 10.0,
        clock: Clock | None = None,
        recorder: Recorder | None = None,
        rng: random.Random | None = None,
    ) -> None:
        check_ids(subaccounts, "subaccounts")
        check_ids(parent_subaccounts, "parent_subaccounts")
        for name, value in (
            ("account_max_silence", account_max_silence),
            ("resnapshot_interval", resnapshot_interval),
        ):
            if value is not None and not value > 0:
                raise ConfigError("dydx", name, f"must be > 0 seconds, got {value!r}")
        self.subaccounts = subaccounts
        self.parent_subaccounts = parent_subaccounts
        self.rest_url = rest_url.rstrip("/")
        self.batched = batched
        self.markets_max_silence = markets_max_silence
        self.account_max_silence = account_max_silence
        self.resnapshot_interval = resnapshot_interval
        self.resync_min_interval = resync_min_interval
        self.rest_timeout = rest_timeout
        self.clock: Clock = clock or SystemClock()
        self.recorder = recorder
        self.parser = DydxParser()
        self.ws = WsFeed(
            VENUE,
            _Tap(self),
            ws or default_ws_settings(),
            self.subscriptions,
            clock=self.clock,
            recorder=recorder,
            on_connect=self._bootstrap,
            rng=rng,
        )
        self.skipped_entries = 0
        self._http: aiohttp.ClientSession | None = None
        self._emit: Emit | None = None
        self._parents = dict.fromkeys(parent_subaccounts, True)
        self._ids: dict[str, bool] = {**dict.fromkeys(subaccounts, False), **self._parents}
        self._budget: dict[str, Staleness] = {}
        if account_max_silence is not None:
            for ident in self._ids:
                self._budget[ident] = Staleness(VENUE, f"account:{ident}", account_max_silence)
        self._last_error: dict[str, str] = {}
        self._channels = {
            f"{ch}:{ident}": ident
            for ident, parent in self._ids.items()
            for ch in (("v4_parent_subaccounts",) if parent else ("v4_subaccounts",))
        }

    def subscriptions(self) -> list[Subscription]:
        subs = [
            Subscription(
                "v4_markets",
                orjson.dumps(
                    {"type": "subscribe", "channel": "v4_markets", "batched": self.batched}
                ).decode(),
                self.markets_max_silence,
                gate=True,
            )
        ]
        for channel, ids in (
            ("v4_subaccounts", self.subaccounts),
            ("v4_parent_subaccounts", self.parent_subaccounts),
        ):
            for ident in ids:
                msg = {"type": "subscribe", "channel": channel, "id": ident}
                # accounts only speak on change: their silence budget is kept here, with REST
                # re-snapshots, rather than by a reconnecting watchdog
                subs.append(Subscription(f"{channel}:{ident}", orjson.dumps(msg).decode(), None))
        return subs

    async def run(self, emit: Emit) -> None:
        self._emit = emit
        async with aiohttp.ClientSession() as http:
            self._http = http
            supervisor = asyncio.create_task(self._supervise(emit))
            try:
                await self.ws.run(emit)
            finally:
                supervisor.cancel()
                await asyncio.gather(supervisor, return_exceptions=True)
                self._http = None

    # -- data from the socket --------------------------------------------------------------
    def after_frame(self, channel: str | None) -> None:
        notes = self.parser.drain_notes()
        if notes:
            self.skipped_entries += len(notes)
            for note in notes:
                log.warning("feed.bad_entry", venue=VENUE, problem=note[:200])
        ident = self._channels.get(channel) if channel is not None else None
        if ident is not None:
            self._account_data(ident)

    def _account_data(self, ident: str) -> None:
        wd = self._budget.get(ident)
        if wd is None:
            return
        status = wd.on_data(self.clock.monotonic())
        if status is not None and self._emit is not None:
            log.info("feed.account_recovered", venue=VENUE, account=ident)
            self._emit(
                FeedStatus(
                    VENUE,
                    status.channel,
                    FeedState.RECOVERED,
                    "account data flowing again",
                    ts_recv=self.clock.now(),
                )
            )

    # -- account supervision ---------------------------------------------------------------
    async def _supervise(self, emit: Emit) -> None:
        """Periodic and on-demand REST re-snapshots; the accounts' silence budgets."""
        if not self._ids:
            return
        clock = self.clock
        start = clock.monotonic()
        for wd in self._budget.values():
            wd.arm(start)
        interval = self.resnapshot_interval
        next_at = dict.fromkeys(self._ids, start + (interval or 0.0))
        last_fetch: dict[str, float] = {}
        tick = min(self.ws.settings.check_interval, 1.0)
        while True:
            await clock.sleep(tick)
            mono = clock.monotonic()
            for ident, parent in self._ids.items():
                due = interval is not None and mono >= next_at[ident]
                wanted = ident in self.parser.resync and (
                    mono - last_fetch.get(ident, -1e18) >= self.resync_min_interval
                )
                if (due or wanted) and self.parser.markets:
                    last_fetch[ident] = mono
                    if interval is not None:
                        next_at[ident] = mono + interval
                    await self._resnapshot(ident, parent, emit)
            mono = clock.monotonic()
            for ident, wd in self._budget.items():
                status = wd.check(mono)
                if status is not None:
                    detail = status.detail
                    error = self._last_error.get(ident)
                    if error:
                        detail += f"; last REST re-snapshot failed: {error}"
                    log.warning("feed.account_stale", venue=VENUE, account=ident, detail=detail)
                    emit(
                        FeedStatus(
                            VENUE, status.channel, FeedState.STALE, detail, ts_recv=clock.now()
                        )
                    )

    async def _resnapshot(self, ident: str, parent: bool, emit: Emit) -> None:
        http = self._http
        if http is None:
            return
        address, _, number = ident.rpartition("/")
        kind = "parentSubaccountNumber" if parent else "subaccountNumber"
        name = f"{'parentSubaccount' if parent else 'subaccount'}:{ident}"
        url = f"{self.rest_url}/addresses/{address}/{kind}/{number}"
        try:
            text = await fetch_text(http, "GET", url, total_seconds=self.rest_timeout)
            now = self.clock.now()
            if self.recorder is not None:
                self.recorder(now, VENUE, f"rest:{name}", text)
            events = self.parser.parse_rest(name, text, now)
        except asyncio.CancelledError:
            raise
        except ParseError as exc:
            self.ws.stats.bad_frames += 1
            self._last_error[ident] = exc.problem[:160]
            log.warning(
                "feed.resnapshot_refused",
                venue=VENUE,
                account=ident,
                problem=exc.problem,
                frame=exc.frame,
            )
            return
        except RetryableError as exc:
            self._last_error[ident] = str(exc)[:160]
            log.warning("feed.resnapshot_failed", venue=VENUE, account=ident, error=str(exc)[:200])
            return
        except Exception as exc:  # a bug must not stop the supervision: logged in full
            self._last_error[ident] = f"{type(exc).__name__}"
            log.exception("feed.resnapshot_crashed", venue=VENUE, account=ident)
            return
        self._last_error.pop(ident, None)
        log.debug("feed.rest_resnapshot", venue=VENUE, account=ident, events=len(events))
        for e in events:
            emit(e)
        self._account_data(ident)

    async def _bootstrap(self, emit: Emit) -> None:
        http = self._http
        if http is None:
            return
        text = await fetch_text(
            http, "GET", f"{self.rest_url}/perpetualMarkets", total_seconds=self.rest_timeout
        )
        now = self.clock.now()
        if self.recorder is not None:
            self.recorder(now, VENUE, "rest:perpetualMarkets", text)
        try:
            events = self.parser.parse_rest("perpetualMarkets", text, now)
        except ParseError as exc:
            self.ws.stats.bad_frames += 1
            raise exc
        self.after_frame(None)
        for e in events:
            emit(e)
