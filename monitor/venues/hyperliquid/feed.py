"""The Hyperliquid feed: REST bootstrap, WebSocket stream, REST polling beyond the user limit.

* At every (re)connect: ``POST {rest_url}/info {"type":"metaAndAssetCtxs"}`` (and once per
  HIP-3 dex named in ``dexes``) → instruments with their margin tiers, marks, oracle prices
  and funding.
* WebSocket (app-level ``{"method":"ping"}`` every ``app_ping_interval``; a missing
  ``{"channel":"pong"}`` forces a reconnect): ``activeAssetCtx`` for every watched coin and
  every coin an account holds (added live as positions appear); for each of the first
  ``ws_user_limit`` addresses ``clearinghouseState`` (per dex) and ``userFundings``.
* With ``resnapshot``, every address is also fetched over REST at each poll (a safety net).
* Account modes (``account_modes``, on by default): at every (re)connect and every
  ``mode_interval`` seconds, ``POST /info {"type":"userAbstraction","user":…}`` per address.
  Until an address's mode is known its account states are held back (a unified account's
  per-dex states are not its balance). A unified or portfolio-margin address is also
  subscribed to ``spotState`` and, where REST-fetched, ``spotClearinghouseState`` is fetched
  with its perp states; its snapshots are its pools (see
  :func:`~monitor.venues.hyperliquid.accounts.pooled_snapshots`).
* Fills (``account_events``, off until the engine consumes the events): ``userFills`` per
  streamed address → ``Deleveraged`` / ``Liquidated``; portfolio-margin accounts also yield
  ``VenueMarginRatio``. With it off those three event types are not emitted at all.
* Account silence budget (issue 10.5): every REST-fetched address has a budget
  (``account_silence_budget``, default 3 × the poll interval, at least 60 s); no account state
  of that address for longer emits ``FeedStatus(venue, "account:<address>", STALE, reason)``
  (the last REST error included), and the next state ``RECOVERED``.
* Ordering resync: when the parser gives up on an account's high-water mark (pushes kept being
  refused) the address is re-fetched over REST at once and ``feed.ordering_resync`` is logged.
* New listings: an account holding a coin no ``metaAndAssetCtxs`` listed triggers a fresh
  ``metaAndAssetCtxs`` of its dex (at most once a minute per dex).
* The venue allows 10 unique users per IP on WebSockets: the addresses beyond
  ``ws_user_limit`` are polled with ``POST /info {"type":"clearinghouseState"}`` every
  ``poll_interval`` seconds, stretched if needed so the polling stays within
  ``weight_budget_per_minute`` (a clearinghouseState request weighs 2 of the venue's
  1200/min per IP). The feed logs ``feed.rest_polling`` saying so.

Every URL is configurable (tests point them at loopback servers).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import aiohttp
import orjson
import structlog

from monitor.clock import Clock, SystemClock
from monitor.errors import ConfigError, ParseError
from monitor.model.events import (
    AccountSnapshot,
    Deleveraged,
    Event,
    FeedState,
    FeedStatus,
    Liquidated,
    VenueMarginRatio,
)
from monitor.venues.feed import Emit, FeedSettings, Recorder, Subscription, WsFeed, fetch_text
from monitor.venues.hyperliquid.accounts import is_pooled
from monitor.venues.hyperliquid.parse import VENUE, HyperliquidParser, account_name
from monitor.venues.watchdog import Staleness

log = structlog.get_logger()

WS_URL = "wss://api.hyperliquid.xyz/ws"
REST_URL = "https://api.hyperliquid.xyz"
PING = '{"method":"ping"}'
CLEARINGHOUSE_WEIGHT = 2
META_WEIGHT = 20
ABSTRACTION_WEIGHT = 20
META_REFRESH_MIN = 60.0
"""Seconds between two ``metaAndAssetCtxs`` fetches of one dex triggered by an unknown coin."""
_ACCOUNT_EVENTS = (Deleveraged, Liquidated, VenueMarginRatio)


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
    ``account_modes``: read each address's account abstraction mode (``userAbstraction``) and
    value unified / portfolio-margin accounts from the spot state; ``mode_interval`` re-reads
    it. ``account_events``: stream ``userFills`` and emit ``Deleveraged``/``Liquidated``/
    ``VenueMarginRatio``. ``account_silence_budget``: seconds without any account state of a
    REST-fetched address before it is reported STALE (None: 3 × the poll interval, ≥ 60 s).
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
    account_modes: bool = True
    mode_interval: float = 300.0
    account_events: bool = False
    account_silence_budget: float | None = None


def _ignore(_event: Event) -> None:
    """The emit of a feed that is not running."""


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
        self.parser.require_mode = options.account_modes
        self.parser.account_events = options.account_events
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
        self.resync_fetches = 0
        self.meta_refreshes = 0
        self._last_error: dict[str, str] = {}
        self._refresh_at: dict[str, float] = {}
        self._mode_at: float | None = None
        self._spot_subscribed: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._emit: Emit = _ignore
        self._emit_status: Emit = _ignore
        budget = options.account_silence_budget
        if budget is None:
            budget = max(3.0 * self.poll_interval(), 60.0)
        self.silence: dict[str, Staleness] = (
            {a: Staleness(VENUE, f"account:{a}", budget) for a in self.rest_addresses}
            if budget > 0
            else {}
        )
        """The account silence watchdogs, by address (REST-fetched addresses only)."""

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
            if o.account_events:
                subs.append(
                    Subscription(
                        f"userFills:{addr}", subscribe({"type": "userFills", "user": addr})
                    )
                )
            if addr in self._spot_subscribed:
                subs.append(self._spot_sub(addr))
        return subs

    def _spot_sub(self, addr: str) -> Subscription:
        return Subscription(f"spotState:{addr}", subscribe({"type": "spotState", "user": addr}))

    def _watch_held(self, event: Event) -> None:
        if isinstance(event, AccountSnapshot):
            known = self.parser.known_symbols
            for pos in event.positions:
                if pos.symbol not in self.coins:
                    self.coins[pos.symbol] = None
                    self.ws.subscribe_now(self._coin_sub(pos.symbol))
                if known and pos.symbol not in known:
                    dex = pos.symbol.split(":", 1)[0] if ":" in pos.symbol else ""
                    self._spawn(self._refresh_meta(dex))
            addr = event.account.partition("@")[0]
            wd = self.silence.get(addr)
            if wd is not None:
                status = wd.on_data(self.clock.monotonic())
                if status is not None:
                    log.info("feed.account_recovered", venue=VENUE, channel=status.channel)
                    self._emit_status(status)
            if self.parser.resync_wanted:
                self._resync()

    def _resync(self) -> None:
        """Re-fetch over REST the accounts whose pushes kept being refused."""
        for user in sorted(self.parser.resync_wanted):
            self.parser.resync_wanted.discard(user)
            log.warning(
                "feed.ordering_resync",
                venue=VENUE,
                account=user,
                reason="account pushes kept being refused as out of order: re-snapshotting",
            )
            self.resync_fetches += 1
            self._spawn(self._fetch_account(user))

    def _follow_mode(self, addr: str) -> None:
        """A streamed address found unified / portfolio-margin: subscribe its spot state."""
        mode = self.parser.mode(addr)
        if addr in self.ws_addresses and is_pooled(mode) and addr not in self._spot_subscribed:
            self._spot_subscribed.add(addr)
            self.ws.subscribe_now(self._spot_sub(addr))
            log.info("feed.account_mode", venue=VENUE, account=addr, mode=mode)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        if self._http is None:
            coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- running ---------------------------------------------------------------------------
    def poll_interval(self) -> float:
        """Seconds between polls of the REST-polled addresses, within the weight budget
        (a unified account's spot state, weight 2, is a stand-in for one more dex)."""
        o = self.options
        pooled = sum(1 for a in self.rest_addresses if is_pooled(self.parser.mode(a)))
        weight = CLEARINGHOUSE_WEIGHT * (len(self.rest_addresses) * len(o.dexes) + pooled)
        floor = 60.0 * weight / o.weight_budget_per_minute if weight else 0.0
        return max(o.poll_interval, floor)

    async def run(self, emit: Emit) -> None:
        account_events = self.options.account_events

        def emit_and_watch(event: Event) -> None:
            if not account_events and isinstance(event, _ACCOUNT_EVENTS):
                return  # not consumed by the engine yet (see HyperliquidOptions)
            emit(event)
            self._watch_held(event)

        self._emit_status = emit
        self._emit = emit_and_watch
        async with aiohttp.ClientSession() as http:
            self._http = http
            try:
                async with asyncio.TaskGroup() as tg:
                    tg.create_task(self.ws.run(emit_and_watch))
                    if self.rest_addresses:
                        tg.create_task(self._poll(http, emit_and_watch))
                    if self.silence:
                        tg.create_task(self._silence_watch(emit))
            finally:
                self._http = None
                for task in list(self._tasks):
                    task.cancel()

    async def _silence_watch(self, emit: Emit) -> None:
        """Report addresses without any account state for longer than their budget."""
        mono = self.clock.monotonic()
        for wd in self.silence.values():
            wd.arm(mono)
        while True:
            await self.clock.sleep(self.ws.settings.check_interval)
            if self.parser.resync_wanted:
                self._resync()
            mono = self.clock.monotonic()
            for addr, wd in self.silence.items():
                status = wd.check(mono)
                if status is None:
                    continue
                error = self._last_error.get(addr)
                mode = self.parser.mode(addr)
                detail = status.detail
                if mode is None and self.options.account_modes:
                    detail += "; account mode not known yet"
                if error:
                    detail += f"; last error: {error}"
                log.warning("feed.account_stale", venue=VENUE, channel=wd.channel, detail=detail)
                emit(
                    FeedStatus(VENUE, wd.channel, FeedState.STALE, detail, ts_recv=self.clock.now())
                )

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
        await self._read_modes(http, emit)

    async def _read_modes(self, http: aiohttp.ClientSession, emit: Emit) -> None:
        """Every address's account abstraction mode (one failure costs that address only)."""
        if not self.options.account_modes:
            return
        self._mode_at = self.clock.monotonic()
        for addr in dict.fromkeys((*self.ws_addresses, *self.polled_addresses)):
            try:
                text = await self._post(http, {"type": "userAbstraction", "user": addr})
                self._rest_events(f"userAbstraction:{addr}", text, emit)
                self._follow_mode(addr)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._last_error[addr] = f"userAbstraction: {str(exc)[:200]}"
                log.warning("feed.mode_failed", venue=VENUE, account=addr, error=str(exc)[:300])

    async def _refresh_meta(self, dex: str) -> None:
        """A fresh ``metaAndAssetCtxs`` of ``dex``: a coin held there is not listed yet."""
        now = self.clock.monotonic()
        last = self._refresh_at.get(dex)
        http = self._http
        if http is None or (last is not None and now - last < META_REFRESH_MIN):
            return
        self._refresh_at[dex] = now
        body = {"type": "metaAndAssetCtxs"}
        if dex:
            body["dex"] = dex
        try:
            text = await self._post(http, body)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("feed.meta_refresh_failed", venue=VENUE, dex=dex, error=str(exc)[:300])
            return
        self.meta_refreshes += 1
        log.info("feed.meta_refresh", venue=VENUE, dex=dex, reason="a held coin is not listed")
        self._rest_events(
            f"metaAndAssetCtxs:{dex}" if dex else "metaAndAssetCtxs", text, self._emit
        )

    async def _fetch_account(self, addr: str) -> None:
        """One REST snapshot of ``addr``: its perp state on every dex, and its spot state
        when the account is unified or portfolio-margin. Failures are logged, counted and kept
        as the address's last error (shown when it goes stale)."""
        http = self._http
        if http is None:
            return
        emit = self._emit
        bodies: list[tuple[str, dict[str, str]]] = []
        for dex in self.options.dexes:
            body = {"type": "clearinghouseState", "user": addr}
            if dex:
                body["dex"] = dex
            bodies.append((f"clearinghouseState:{account_name(addr, dex)}", body))
        if is_pooled(self.parser.mode(addr)):
            bodies.append(
                (f"spotClearinghouseState:{addr}", {"type": "spotClearinghouseState", "user": addr})
            )
        for name, body in bodies:
            try:
                text = await self._post(http, body)
                self.polls += 1
                self._rest_events(name, text, emit)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one bad reply must never end the polling
                self.poll_failures += 1
                self._last_error[addr] = f"{body['type']}: {str(exc)[:200]}"
                log.warning("feed.poll_failed", venue=VENUE, error=str(exc)[:300])

    def _rest_events(self, name: str, text: str, emit: Emit) -> None:
        now = self.clock.now()
        if self.recorder is not None:
            self.recorder(now, VENUE, f"rest:{name}", text)
        bad_before = self.parser.bad_entries
        try:
            events = self.parser.parse_rest(name, text, now)
        except ParseError as exc:
            self.ws.stats.bad_frames += 1
            user = name.partition(":")[2].partition("@")[0]
            if user:
                self._last_error[user] = f"{name.partition(':')[0]}: {exc.problem[:200]}"
            log.warning("feed.bad_frame", venue=VENUE, problem=exc.problem, frame=exc.frame)
            return
        skipped = self.parser.bad_entries - bad_before
        if skipped:
            log.warning(
                "feed.bad_entries",
                venue=VENUE,
                document=name,
                skipped=skipped,
                problems=self.parser.entry_problems[-min(skipped, 5) :],
                frame=text[:200],
            )
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
            o = self.options
            if o.account_modes and (
                self._mode_at is None or self.clock.monotonic() - self._mode_at >= o.mode_interval
            ):
                await self._read_modes(http, emit)
            for addr in self.rest_addresses:
                await self._fetch_account(addr)
            interval = self.poll_interval()  # a unified account adds its spot state
            await self.clock.sleep(interval)


ACCOUNT_KEYS = ("account_modes", "mode_interval", "account_events", "account_silence_budget")
"""The ``[venues.hyperliquid]`` keys read by :func:`account_options`."""


def account_options(table: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
    """Validate the account keys of a raw ``[venues.hyperliquid]`` TOML table; the
    :class:`HyperliquidOptions` fields to ``replace`` (absent keys keep the defaults).

    * ``account_modes`` (bool, default true): read ``userAbstraction`` and value unified /
      portfolio-margin accounts from the spot state;
    * ``mode_interval`` (seconds > 0, default 300): how often the mode is read again;
    * ``account_events`` (bool, default false): stream ``userFills`` and emit ``Deleveraged``,
      ``Liquidated`` and ``VenueMarginRatio`` (turn on once the engine consumes them);
    * ``account_silence_budget`` (seconds ≥ 0, default 3 × the poll interval and ≥ 60; 0
      disables): silence after which a REST-fetched account is reported stale.

    Raises :class:`monitor.errors.ConfigError` naming ``venues.hyperliquid.<key>``.
    """
    out: dict[str, Any] = {}
    for key in ("account_modes", "account_events"):
        if key in table:
            value = table[key]
            if not isinstance(value, bool):
                raise ConfigError(source, f"venues.hyperliquid.{key}", "expected true or false")
            out[key] = value
    for key, minimum in (("mode_interval", 0.0), ("account_silence_budget", -1.0)):
        if key in table:
            value = table[key]
            ok = isinstance(value, int | float) and not isinstance(value, bool)
            if not ok or not math.isfinite(value) or value <= minimum or value > 86_400 * 7:
                bound = "> 0" if minimum == 0.0 else ">= 0"
                raise ConfigError(
                    source, f"venues.hyperliquid.{key}", f"expected seconds {bound}, at most a week"
                )
            out[key] = float(value)
    return out


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


__all__: Sequence[str] = (
    "ACCOUNT_KEYS",
    "HyperliquidFeed",
    "HyperliquidOptions",
    "account_options",
    "default_ws_settings",
)
