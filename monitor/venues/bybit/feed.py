"""The native Bybit price feed: v5 public linear tickers over websockets, metadata over REST.

* WebSocket (feeds.md §4): ``{ws_url}`` = ``wss://stream.bybit.com/v5/public/linear``. After each
  (re)connect the feed sends ``{"req_id":"sub-n","op":"subscribe","args":["tickers.BTCUSDT",..]}``
  with at most ``SUBSCRIBE_CHUNK`` topics per message; each topic pushes a snapshot, then deltas
  (only the changed fields; the parser never invents the missing ones).
* Keepalive: the app-level ``{"req_id":"ping","op":"ping"}`` every ``ping_interval`` (default
  20 s, Bybit's recommendation); a pong (``{"op":"ping","ret_msg":"pong",..}``) must come within
  ``PONG_TIMEOUT`` or the feed reconnects.
* Staleness: one channel, ``tickers``, silence budget ``stale_after`` (default 30 s); any
  ticker push counts, a delta of other fields included.
* Metadata (:mod:`monitor.venues.ccxt_pro.metadata`): ccxt REST ``instruments-info``
  (``fundingInterval`` → the parser) and ``risk-limit`` per symbol (public maintenance tiers →
  one ``InstrumentSpec`` per symbol) at start and every ``poll_interval`` (default 1 h).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import orjson

from monitor.clock import Clock
from monitor.venues.backoff import Backoff
from monitor.venues.bybit.parse import CHANNEL, VENUE, BybitParser
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

WS_URL = "wss://stream.bybit.com/v5/public/linear"
REST_URL = "https://api.bybit.com"
EXCHANGE_ID = "bybit"
PING = '{"req_id":"ping","op":"ping"}'
PING_INTERVAL = 20.0
PONG_TIMEOUT = 10.0
SUBSCRIBE_CHUNK = 10
"""Topics per subscribe message."""
DEFAULT_STALE_AFTER = 30.0
DEFAULT_METADATA_INTERVAL = 3600.0


def default_ws_settings(url: str = WS_URL) -> FeedSettings:
    return FeedSettings(
        url=url,
        protocol_ping_interval=None,
        protocol_ping_timeout=None,
        app_ping_message=PING,
        app_ping_interval=PING_INTERVAL,
        pong_timeout=PONG_TIMEOUT,
    )


def subscriptions(symbols: Sequence[str], max_silence: float) -> list[Subscription]:
    topics = [f"tickers.{s}" for s in symbols]
    return [
        Subscription(
            CHANNEL,
            orjson.dumps(
                {
                    "req_id": f"sub-{i // SUBSCRIBE_CHUNK + 1}",
                    "op": "subscribe",
                    "args": topics[i : i + SUBSCRIBE_CHUNK],
                }
            ).decode(),
            max_silence,
        )
        for i in range(0, len(topics), SUBSCRIBE_CHUNK)
    ]


def bybit_feed(
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
    """The feed of ``symbols`` (Bybit linear ids, ``BTCUSDT``). ``metadata_urls`` are ccxt
    ``urls`` for the REST metadata (e.g. ``{"api": {"public": "https://..."}}``)."""
    wanted = tuple(dict.fromkeys(symbols))
    parser = BybitParser()
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


def build_bybit_feed(
    venue: VenueConfig,
    accounts: Sequence[AccountConfig],
    clock: Clock | None,
    recorder: Recorder | None,
) -> Feed:
    """The ``FeedBuilder`` of ``[venues.bybit]``: ``accounts`` are the accounts priced by this
    venue (the manual accounts' held symbols are watched beside ``symbols``). Keys: ``ws_url``,
    ``rest_url`` (REST base for metadata, default ``https://api.bybit.com``), ``stale_after``
    (s, default 30), ``ping_interval`` (s, app ping, default 20), ``poll_interval`` (s between
    metadata refreshes, default 3600), ``urls``/``options`` (merged into ccxt's configuration
    for the metadata)."""
    ws = default_ws_settings(venue.ws_url or WS_URL)
    if venue.ping_interval is not None:
        ws = replace(ws, app_ping_interval=venue.ping_interval)
    rest = (venue.rest_url or REST_URL).rstrip("/")
    return bybit_feed(
        watched_symbols(venue, accounts),
        ws,
        max_silence=venue.stale_after if venue.stale_after is not None else DEFAULT_STALE_AFTER,
        metadata_urls=deep_merge({"api": {"public": rest}}, venue.urls),
        metadata_options=venue.options,
        metadata_interval=(
            venue.poll_interval if venue.poll_interval is not None else DEFAULT_METADATA_INTERVAL
        ),
        clock=clock,
        recorder=recorder,
    )
