"""The native OKX price feed: v5 public ``mark-price`` and ``funding-rate`` over websockets.

* WebSocket (feeds.md §4): ``{ws_url}`` = ``wss://ws.okx.com:8443/ws/v5/public``. After each
  (re)connect the feed sends ``{"op":"subscribe","args":[{"channel":"mark-price","instId":..},
  ..]}`` and the same for ``funding-rate``, at most ``SUBSCRIBE_CHUNK`` args per message.
* Keepalive: OKX drops a connection after 30 s without traffic; the feed sends the text
  ``ping`` every ``ping_interval`` (default 20 s) and reconnects when the text ``pong`` does not
  come within ``PONG_TIMEOUT``.
* Staleness, per channel: ``mark-price`` (pushes on change, at least every few seconds) with
  ``stale_after`` (default 30 s); ``funding-rate`` (pushes every 30–90 s) with
  ``max(FUNDING_STALE_AFTER, stale_after)``.
* No REST: the funding interval is in the ``funding-rate`` push (``nextFundingTime −
  fundingTime``) and OKX's position tiers are bounded in contracts, so maintenance comes from
  configuration (as with the ccxt feed).
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import orjson

from monitor.clock import Clock
from monitor.venues.feed import (
    Feed,
    FeedSettings,
    PriceFeed,
    Recorder,
    Subscription,
    WsFeed,
    watched_symbols,
)
from monitor.venues.okx.parse import VENUE, OkxParser

if TYPE_CHECKING:
    from monitor.config import AccountConfig, VenueConfig

WS_URL = "wss://ws.okx.com:8443/ws/v5/public"
PING = "ping"
PING_INTERVAL = 20.0
PONG_TIMEOUT = 8.0
SUBSCRIBE_CHUNK = 20
"""Args per subscribe message."""
DEFAULT_STALE_AFTER = 30.0
FUNDING_STALE_AFTER = 180.0
MARK_CHANNEL = "mark-price"
FUNDING_CHANNEL = "funding-rate"


def default_ws_settings(url: str = WS_URL) -> FeedSettings:
    return FeedSettings(
        url=url,
        protocol_ping_interval=None,
        protocol_ping_timeout=None,
        app_ping_message=PING,
        app_ping_interval=PING_INTERVAL,
        pong_timeout=PONG_TIMEOUT,
    )


def subscriptions(
    symbols: Sequence[str], max_silence: float, funding_max_silence: float
) -> list[Subscription]:
    out: list[Subscription] = []
    for channel, silence in ((MARK_CHANNEL, max_silence), (FUNDING_CHANNEL, funding_max_silence)):
        args = [{"channel": channel, "instId": s} for s in symbols]
        out += [
            Subscription(
                channel,
                orjson.dumps({"op": "subscribe", "args": args[i : i + SUBSCRIBE_CHUNK]}).decode(),
                silence,
            )
            for i in range(0, len(args), SUBSCRIBE_CHUNK)
        ]
    return out


def okx_feed(
    symbols: Sequence[str],
    ws: FeedSettings | None = None,
    *,
    max_silence: float = DEFAULT_STALE_AFTER,
    funding_max_silence: float = FUNDING_STALE_AFTER,
    clock: Clock | None = None,
    recorder: Recorder | None = None,
    rng: random.Random | None = None,
) -> PriceFeed:
    """The feed of ``symbols`` (OKX instrument ids, ``BTC-USDT-SWAP``)."""
    wanted = tuple(dict.fromkeys(symbols))
    subs = subscriptions(wanted, max_silence, funding_max_silence)
    feed = WsFeed(
        VENUE,
        OkxParser(),
        ws or default_ws_settings(),
        lambda: subs,
        clock=clock,
        recorder=recorder,
        rng=rng,
    )
    return PriceFeed(feed, wanted)


def build_okx_feed(
    venue: VenueConfig,
    accounts: Sequence[AccountConfig],
    clock: Clock | None,
    recorder: Recorder | None,
) -> Feed:
    """The ``FeedBuilder`` of ``[venues.okx]``: ``accounts`` are the accounts priced by this
    venue (the manual accounts' held symbols are watched beside ``symbols``). Keys: ``ws_url``,
    ``stale_after`` (s, mark-price; default 30; funding-rate takes the larger of it and 180),
    ``ping_interval`` (s, text ping, default 20; keep it under OKX's 30 s)."""
    ws = default_ws_settings(venue.ws_url or WS_URL)
    if venue.ping_interval is not None:
        ws = replace(ws, app_ping_interval=venue.ping_interval)
    stale = venue.stale_after if venue.stale_after is not None else DEFAULT_STALE_AFTER
    return okx_feed(
        watched_symbols(venue, accounts),
        ws,
        max_silence=stale,
        funding_max_silence=max(FUNDING_STALE_AFTER, stale),
        clock=clock,
        recorder=recorder,
    )
