"""The native Binance USDⓈ-M price feed: mark price streams over websockets, metadata over REST.

* WebSocket (feeds.md §3): ``{ws_url}`` is the combined-stream endpoint of the ``market``
  category, ``wss://fstream.binance.com/market/stream`` (the legacy ``/ws`` host was retired in
  April 2026). After each (re)connect the feed sends ``{"method":"SUBSCRIBE","params":[...],
  "id":n}`` with ``<symbol>@markPrice@1s`` per watched symbol, at most ``SUBSCRIBE_CHUNK``
  streams per message; above ``ALL_MARKET_ABOVE`` symbols it subscribes the all-market
  ``!markPrice@arr@1s`` instead and the parser keeps only the watched symbols. Frames arrive in
  the wrapper ``{"stream":..,"data":..}``; acks ``{"result":null,"id":n}``.
* Keepalive: the server pings every 3 min (answered by ``websockets``); we ping at protocol level
  every ``ping_interval`` (default 20 s, one control frame against the venue's 10 messages/s)
  and reconnect when the pong does not come. Binance ends every connection at 24 h: the feed
  renews it after ``MAX_LIFETIME`` (23.5 h).
* Staleness: one channel, ``markPrice`` (updates every second), with the silence budget
  ``stale_after`` (default 30 s): past it STALE, a reconnect, RECOVERED on the next data.
* Metadata (:mod:`monitor.venues.ccxt_pro.metadata`): ccxt REST ``exchangeInfo`` and
  ``fundingInfo`` at start and every ``poll_interval`` (default 1 h): funding intervals (those
  off 8 h) go to the parser; Binance's maintenance brackets need an API key, so no instrument is
  emitted (they come from configuration).

Bad input: a refused frame or array entry is logged with a truncated copy, counted and skipped
(:class:`~monitor.venues.feed.WsFeed`); events carry ``VENUE`` of
:mod:`monitor.venues.binance.parse`.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from monitor.clock import Clock
from monitor.venues.backoff import Backoff
from monitor.venues.binance.parse import CHANNEL, VENUE, BinanceParser
from monitor.venues.ccxt_pro.metadata import deep_merge, with_ccxt_metadata
from monitor.venues.feed import (
    Feed,
    FeedSettings,
    PriceFeed,
    Recorder,
    Subscription,
    WsFeed,
    watched_symbols,
)

if TYPE_CHECKING:
    from monitor.config import AccountConfig, VenueConfig

WS_URL = "wss://fstream.binance.com/market/stream"
REST_URL = "https://fapi.binance.com"
EXCHANGE_ID = "binanceusdm"
MAX_LIFETIME = 23.5 * 3600.0
"""Seconds after which a connection is renewed, ahead of Binance's 24 h cut."""
SUBSCRIBE_CHUNK = 50
"""Streams per SUBSCRIBE message."""
ALL_MARKET_ABOVE = 200
"""Above this many symbols, subscribe ``!markPrice@arr@1s`` (ccxt's safe per-connection
stream count is 200; the documented limit is 1024)."""
DEFAULT_STALE_AFTER = 30.0
DEFAULT_METADATA_INTERVAL = 3600.0


def default_ws_settings(url: str = WS_URL) -> FeedSettings:
    return FeedSettings(
        url=url,
        protocol_ping_interval=20.0,
        protocol_ping_timeout=20.0,
        max_lifetime=MAX_LIFETIME,
    )


def streams_of(symbols: Sequence[str]) -> list[str]:
    """The stream names for ``symbols`` (``BTCUSDT`` → ``btcusdt@markPrice@1s``), or the
    all-market stream above :data:`ALL_MARKET_ABOVE` symbols."""
    if len(symbols) > ALL_MARKET_ABOVE:
        return ["!markPrice@arr@1s"]
    return [f"{s.lower()}@markPrice@1s" for s in symbols]


def subscriptions(symbols: Sequence[str], max_silence: float) -> list[Subscription]:
    streams = streams_of(symbols)
    return [
        Subscription(
            CHANNEL,
            orjson.dumps(
                {
                    "method": "SUBSCRIBE",
                    "params": streams[i : i + SUBSCRIBE_CHUNK],
                    "id": i // SUBSCRIBE_CHUNK + 1,
                }
            ).decode(),
            max_silence,
        )
        for i in range(0, len(streams), SUBSCRIBE_CHUNK)
    ]


def binance_feed(
    symbols: Sequence[str],
    ws: FeedSettings | None = None,
    *,
    max_silence: float = DEFAULT_STALE_AFTER,
    metadata: bool = True,
    metadata_urls: Mapping[str, Any] | None = None,
    metadata_options: Mapping[str, Any] | None = None,
    metadata_interval: float | None = DEFAULT_METADATA_INTERVAL,
    metadata_backoff: Callable[[], Backoff] = Backoff,
    clock: Clock | None = None,
    recorder: Recorder | None = None,
    rng: random.Random | None = None,
) -> PriceFeed:
    """The feed of ``symbols`` (Binance ids, ``BTCUSDT``). ``metadata_urls`` are ccxt ``urls``
    for the REST metadata (e.g. ``{"api": {"fapiPublic": ".../fapi/v1"}}``)."""
    wanted = tuple(dict.fromkeys(symbols))
    parser = BinanceParser(symbols=set(wanted) if len(wanted) > ALL_MARKET_ABOVE else None)
    subs = subscriptions(wanted, max_silence)
    feed = WsFeed(
        VENUE,
        parser,
        ws or default_ws_settings(),
        lambda: subs,
        clock=clock,
        recorder=recorder,
        rng=rng,
    )
    return with_ccxt_metadata(
        feed,
        EXCHANGE_ID,
        wanted,
        load=metadata,
        urls=metadata_urls,
        options=metadata_options,
        backoff=metadata_backoff,
        interval=metadata_interval,
        on_intervals=parser.set_intervals,
    )


def build_binance_feed(
    venue: VenueConfig,
    accounts: Sequence[AccountConfig],
    clock: Clock | None,
    recorder: Recorder | None,
) -> Feed:
    """The ``FeedBuilder`` of ``[venues.binanceusdm]``: ``accounts`` are the accounts priced by
    this venue (the manual accounts' held symbols are watched beside ``symbols``). Keys:
    ``ws_url``, ``rest_url`` (REST base for metadata, default ``https://fapi.binance.com``),
    ``stale_after`` (s, default 30), ``ping_interval`` (s, protocol ping, default 20),
    ``poll_interval`` (s between metadata refreshes, default 3600), ``urls``/``options``
    (deep-merged into ccxt's configuration for the metadata)."""
    ws = default_ws_settings(venue.ws_url or WS_URL)
    if venue.ping_interval is not None:
        ws = replace(ws, protocol_ping_interval=venue.ping_interval)
    rest = (venue.rest_url or REST_URL).rstrip("/")
    urls: dict[str, Any] = {"api": {"fapiPublic": f"{rest}/fapi/v1"}}
    return binance_feed(
        watched_symbols(venue, accounts),
        ws,
        max_silence=venue.stale_after if venue.stale_after is not None else DEFAULT_STALE_AFTER,
        metadata_urls=deep_merge(urls, venue.urls),
        metadata_options=venue.options,
        metadata_interval=(
            venue.poll_interval if venue.poll_interval is not None else DEFAULT_METADATA_INTERVAL
        ),
        clock=clock,
        recorder=recorder,
    )
