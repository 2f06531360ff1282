"""The Hyperliquid feed: REST bootstrap, WebSocket stream, REST polling beyond the user limit.

* At every (re)connect: ``POST {rest_url}/info {"type":"metaAndAssetCtxs"}`` (and once per
  HIP-3 dex named in ``dexes``) → instruments with their margin tiers, marks, oracle prices
  and funding.
* WebSocket (app-level ``{"method":"ping"}`` every ``app_ping_interval``; a missing
  ``{"channel":"pong"}`` forces a reconnect): ``activeAssetCtx`` for every watched coin and
  every coin an account holds (added live as positions appear); for each of the first
  ``ws_user_limit`` addresses ``clearinghouseState`` (per dex) and ``userFundings``.
* With ``resnapshot``, every address is also fetched over REST at each poll (a safety net).
* The venue allows 10 unique users per IP on WebSockets: the addresses beyond
  ``ws_user_limit`` are polled with ``POST /info {"type":"clearinghouseState"}`` every
  ``poll_interval`` seconds, stretched if needed so the polling stays within
  ``weight_budget_per_minute`` (a clearinghouseState request weighs 2 of the venue's
  1200/min per IP). The feed logs ``feed.rest_polling`` saying so.

Every URL is configurable (tests point them at loopback servers).
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

import aiohttp
import orjson
import structlog

from monitor.clock import Clock, SystemClock
from monitor.errors import ParseError
from monitor.model.events import AccountSnapshot, Event
from monitor.venues.feed import Emit, FeedSettings, Recorder, Subscription, WsFeed, fetch_text
from monitor.venues.hyperliquid.parse import VENUE, HyperliquidParser, account_name

log = structlog.get_logger()

WS_URL = "wss://api.hyperliquid.xyz/ws"
REST_URL = "https://api.hyperliquid.xyz"
PING = '{"method":"ping"}'
CLEARINGHOUSE_WEIGHT = 2
META_WEIGHT = 20


def default_ws_settings(url: str = WS_URL) -> FeedSettings:
    """Hyperliquid closes a connection that sent nothing for 60 s: app ping every 50 s."""
    return FeedSettings(
        url=url,
        protocol_ping_interval=None,
        protocol_ping_timeout=None,
        app_ping_message=PING,
        app_ping_interval=50.0,
        pong_timeout=15.0,
    )


@dataclass(frozen=True, slots=True)
class HyperliquidOptions:
    """What to stream and how. Durations in seconds.

    ``resnapshot``: also fetch the websocket-streamed accounts over REST every poll, a safety
    net for a push channel that goes quiet without a disconnect (account channels only speak
    on change, so no staleness limit can catch that).
    """

    coins: tuple[str, ...] = ()
    addresses: tuple[str, ...] = ()
    dexes: tuple[str, ...] = ("",)
    rest_url: str = REST_URL
    ws_user_limit: int = 10
    resnapshot: bool = False
    poll_interval: float = 10.0
    weight_budget_per_minute: float = 600.0
    price_max_silence: float = 60.0
    account_max_silence: float | None = None
    rest_timeout: float = 10.0


def subscribe(subscription: dict[str, str]) -> str:
    return orjson.dumps({"method": "subscribe", "subscription": subscription}).decode()


class HyperliquidFeed:
    """Feed protocol implementation for Hyperliquid (see the module docstring)."""

    venue = VENUE

    def __init__(
        self,
        options: HyperliquidOptions,
        ws: FeedSettings | None = None,
        *,
        clock: Clock | None = None,
        recorder: Recorder | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.options = options
        self.clock: Clock = clock or SystemClock()
        self.recorder = recorder
        self.parser = HyperliquidParser()
        self.coins: dict[str, None] = dict.fromkeys(options.coins)
        addresses = list(dict.fromkeys(options.addresses))
        self.ws_addresses = tuple(addresses[: options.ws_user_limit])
        self.polled_addresses = tuple(addresses[options.ws_user_limit :])
        self.rest_addresses = tuple(addresses) if options.resnapshot else self.polled_addresses
        """Addresses fetched over REST every poll."""
        self.ws = WsFeed(
            VENUE,
            self.parser,
            ws or default_ws_settings(),
            self.subscriptions,
            clock=self.clock,
            recorder=recorder,
            on_connect=self._bootstrap,
            rng=rng,
        )
        self._http: aiohttp.ClientSession | None = None
        self.polls = 0
        self.poll_failures = 0

    # -- subscriptions ---------------------------------------------------------------------
    def _coin_sub(self, coin: str) -> Subscription:
        return Subscription(
            f"activeAssetCtx:{coin}",
            subscribe({"type": "activeAssetCtx", "coin": coin}),
            self.options.price_max_silence,
        )

    def subscriptions(self) -> list[Subscription]:
        o = self.options
        subs = [self._coin_sub(c) for c in self.coins]
        for addr in self.ws_addresses:
            for dex in o.dexes:
                body = {"type": "clearinghouseState", "user": addr}
                if dex:
                    body["dex"] = dex
                subs.append(
                    Subscription(
                        f"clearinghouseState:{account_name(addr, dex)}",
                        subscribe(body),
                        o.account_max_silence,
                    )
                )
            subs.append(
                Subscription(
                    f"userFundings:{addr}", subscribe({"type": "userFundings", "user": addr})
                )
            )
        return subs

    def _watch_held(self, event: Event) -> None:
        if isinstance(event, AccountSnapshot):
            for pos in event.positions:
                if pos.symbol not in self.coins:
                    self.coins[pos.symbol] = None
                    self.ws.subscribe_now(self._coin_sub(pos.symbol))

    # -- running ---------------------------------------------------------------------------
    def poll_interval(self) -> float:
        """Seconds between polls of the REST-polled addresses, within the weight budget."""
        o = self.options
        weight = CLEARINGHOUSE_WEIGHT * len(self.rest_addresses) * len(o.dexes)
        floor = 60.0 * weight / o.weight_budget_per_minute if weight else 0.0
        return max(o.poll_interval, floor)

    async def run(self, emit: Emit) -> None:
        def emit_and_watch(event: Event) -> None:
            self._watch_held(event)
            emit(event)

        async with aiohttp.ClientSession() as http:
            self._http = http
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.ws.run(emit_and_watch))
                    if self.rest_addresses:
                        tg.create_task(self._poll(http, emit_and_watch))
            finally:
                self._http = None

    async def _post(self, http: aiohttp.ClientSession, body: dict[str, str]) -> str:
        return await fetch_text(
            http,
            "POST",
            f"{self.options.rest_url.rstrip('/')}/info",
            json_body=body,
            total_seconds=self.options.rest_timeout,
        )

    async def _bootstrap(self, emit: Emit) -> None:
        http = self._http
        if http is None:
            return
        for dex in self.options.dexes:
            body = {"type": "metaAndAssetCtxs"}
            if dex:
                body["dex"] = dex
            name = f"metaAndAssetCtxs:{dex}" if dex else "metaAndAssetCtxs"
            text = await self._post(http, body)
            self._rest_events(name, text, emit)

    def _rest_events(self, name: str, text: str, emit: Emit) -> None:
        now = self.clock.now()
        if self.recorder is not None:
            self.recorder(now, VENUE, f"rest:{name}", text)
        try:
            events = self.parser.parse_rest(name, text, now)
        except ParseError as exc:
            self.ws.stats.bad_frames += 1
            log.warning("feed.bad_frame", venue=VENUE, problem=exc.problem, frame=exc.frame)
            return
        for e in events:
            emit(e)

    async def _poll(self, http: aiohttp.ClientSession, emit: Emit) -> None:
        interval = self.poll_interval()
        if self.polled_addresses:
            log.info(
                "feed.rest_polling",
                venue=VENUE,
                addresses=len(self.polled_addresses),
                interval=round(interval, 3),
                reason=f"more addresses than the venue's websocket limit of "
                f"{self.options.ws_user_limit} users per IP",
            )
        if self.options.resnapshot:
            log.info(
                "feed.rest_resnapshot",
                venue=VENUE,
                addresses=len(self.ws_addresses),
                interval=round(interval, 3),
            )
        while True:
            for addr in self.rest_addresses:
                for dex in self.options.dexes:
                    body = {"type": "clearinghouseState", "user": addr}
                    if dex:
                        body["dex"] = dex
                    try:
                        text = await self._post(http, body)
                        self.polls += 1
                        self._rest_events(
                            f"clearinghouseState:{account_name(addr, dex)}", text, emit
                        )
                    except asyncio.CancelledError:
                        raise
                    except Exception as exc:  # one bad reply must never end the polling
                        self.poll_failures += 1
                        log.warning("feed.poll_failed", venue=VENUE, error=str(exc)[:300])
            await self.clock.sleep(interval)


def feed_from_options(
    options: HyperliquidOptions,
    *,
    ws_url: str = WS_URL,
    ws_overrides: dict[str, float | str | None] | None = None,
    clock: Clock | None = None,
    recorder: Recorder | None = None,
) -> HyperliquidFeed:
    """A feed with the default WebSocket settings, some of them overridden by name."""
    settings = default_ws_settings(ws_url)
    if ws_overrides:
        settings = replace(settings, **ws_overrides)  # type: ignore[arg-type]
    return HyperliquidFeed(options, settings, clock=clock, recorder=recorder)


__all__: Sequence[str] = ("HyperliquidFeed", "HyperliquidOptions", "default_ws_settings")
