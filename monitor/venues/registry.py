"""The explicit registry of feeds and parsers (one dict each; nothing registers itself).

* :data:`PARSERS`: event venue name (as in recordings and events) → a new pure parser; used by
  ``monitor replay``. Native venues only: ccxt.pro venues parse inside ccxt, so their frames
  are neither recorded nor replayed.
* :data:`NATIVE_FEEDS`: ``[venues.<name>]`` name → a builder of that venue's feed from its
  :class:`~monitor.config.VenueConfig` and the address accounts it streams. Any other venue
  name is a ccxt exchange id and runs through :class:`~monitor.venues.ccxt_pro.feed.CcxtProFeed`.

Configuration keys used (all optional; ``config/example.toml`` documents them):
``ws_url``, ``rest_url``; ``symbols`` (Hyperliquid coins to watch beyond those held; a HIP-3
coin ``dex:COIN`` also makes the feed follow every account on that dex);
``stale_after`` (seconds of silence before a price channel is stale); ``ping_interval``
(Hyperliquid app ping, dYdX protocol ping); ``poll_interval`` (Hyperliquid: REST
re-snapshot of every account, default 30 s, and the polling of addresses beyond the
WebSocket user limit; ccxt: REST funding period); ccxt venues also take
``options`` and ``urls`` (deep-merged into the exchange's ccxt configuration).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import TYPE_CHECKING

import structlog

from monitor.clock import Clock
from monitor.model.venues import BINANCE_USDM, BYBIT, DYDX, HYPERLIQUID, OKX
from monitor.venues.binance.feed import build_binance_feed
from monitor.venues.binance.parse import BinanceParser
from monitor.venues.bybit.feed import build_bybit_feed
from monitor.venues.bybit.parse import BybitParser
from monitor.venues.dydx.feed import REST_URL, DydxFeed
from monitor.venues.dydx.feed import default_ws_settings as dydx_ws
from monitor.venues.dydx.parse import DydxParser
from monitor.venues.feed import Feed, Recorder, watched_symbols
from monitor.venues.hyperliquid.feed import HyperliquidFeed, HyperliquidOptions
from monitor.venues.hyperliquid.feed import default_ws_settings as hyperliquid_ws
from monitor.venues.hyperliquid.parse import HyperliquidParser
from monitor.venues.keys import KeyAccount, build_key_feed
from monitor.venues.okx.feed import build_okx_feed
from monitor.venues.okx.parse import OkxParser
from monitor.venues.parsing import FrameParser

if TYPE_CHECKING:
    from monitor.config import AccountConfig, Config, VenueConfig

log = structlog.get_logger()


def _hyperliquid_parser() -> FrameParser:
    parser = HyperliquidParser()
    parser.account_events = True  # ADL and liquidation fills, as the live feed streams them
    return parser


PARSERS: Mapping[str, Callable[[], FrameParser]] = MappingProxyType(
    {
        HYPERLIQUID: _hyperliquid_parser,
        DYDX: DydxParser,
        BINANCE_USDM: BinanceParser,
        BYBIT: BybitParser,
        OKX: OkxParser,
    }
)

FeedBuilder = Callable[
    ["VenueConfig", Sequence["AccountConfig"], Clock | None, Recorder | None], Feed
]


def _hyperliquid(
    venue: VenueConfig,
    accounts: Sequence[AccountConfig],
    clock: Clock | None,
    recorder: Recorder | None,
) -> Feed:
    ws = hyperliquid_ws(venue.ws_url) if venue.ws_url else hyperliquid_ws()
    if venue.ping_interval is not None:
        ws = replace(ws, app_ping_interval=venue.ping_interval)
    # HIP-3 coins are named "dex:COIN"; each dex is its own clearinghouse
    dexes = ("", *sorted({s.split(":", 1)[0] for s in venue.symbols if ":" in s}))
    options = HyperliquidOptions(
        coins=venue.symbols,
        dexes=dexes,
        addresses=tuple(a.address for a in accounts if a.address),
        resnapshot=True,
        poll_interval=30.0,
        account_events=True,  # ADL and liquidation fills: the engine alerts on them
    )
    if venue.rest_url:
        options = replace(options, rest_url=venue.rest_url)
    if venue.poll_interval is not None:
        options = replace(options, poll_interval=venue.poll_interval)
    if venue.stale_after is not None:
        options = replace(options, price_max_silence=venue.stale_after)
    return HyperliquidFeed(options, ws, clock=clock, recorder=recorder)


def _dydx(
    venue: VenueConfig,
    accounts: Sequence[AccountConfig],
    clock: Clock | None,
    recorder: Recorder | None,
) -> Feed:
    ws = dydx_ws(venue.ws_url) if venue.ws_url else dydx_ws()
    if venue.ping_interval is not None:
        ws = replace(ws, protocol_ping_interval=venue.ping_interval)
    subs = tuple(a.account for a in accounts if not a.parent)
    parents = tuple(a.account for a in accounts if a.parent)
    return DydxFeed(
        subs,
        parents,
        ws,
        rest_url=venue.rest_url or REST_URL,
        markets_max_silence=venue.stale_after if venue.stale_after is not None else 60.0,
        clock=clock,
        recorder=recorder,
    )


NATIVE_FEEDS: Mapping[str, FeedBuilder] = MappingProxyType(
    {
        HYPERLIQUID: _hyperliquid,
        DYDX: _dydx,
        BINANCE_USDM: build_binance_feed,
        BYBIT: build_bybit_feed,
        OKX: build_okx_feed,
    }
)


def _ccxt(venue: VenueConfig, held: Sequence[str], clock: Clock | None) -> Feed:
    # importing ccxt takes about a second: only when a ccxt venue is configured
    from monitor.venues.ccxt_pro.feed import CcxtProFeed  # noqa: PLC0415

    return CcxtProFeed(
        venue.name,
        tuple(dict.fromkeys([*venue.symbols, *held])),
        urls=venue.urls,
        options=venue.options,
        max_silence=venue.stale_after if venue.stale_after is not None else 30.0,
        funding_poll_interval=venue.poll_interval if venue.poll_interval is not None else 60.0,
        clock=clock,
    )


def build_feeds(
    config: Config, *, clock: Clock | None = None, recorder: Recorder | None = None
) -> list[Feed]:
    """One feed per enabled venue of ``config``, each given the address accounts it
    streams. ``recorder`` receives the raw frames of the native feeds."""
    feeds: list[Feed] = []
    for venue in config.enabled_venues:
        builder = NATIVE_FEEDS.get(venue.name)
        if builder in (_hyperliquid, _dydx):
            accounts = [a for a in config.accounts if a.feed == venue.name and a.address]
            feeds.append(builder(venue, accounts, clock, recorder))
        elif builder is not None:
            # a CEX price feed also watches the symbols its manual accounts hold
            accounts = [a for a in config.accounts if a.feed == venue.name]
            if not watched_symbols(venue, accounts) and any(
                a.kind.value == "api_key" and a.venue == venue.name for a in config.accounts
            ):
                # nothing to price: the API-key accounts read their marks from the venue
                # themselves. A price feed with no symbols would report its connection
                # down and so hold every alert of the venue, theirs included.
                log.info("feed.price_feed_skipped", venue=venue.name, reason="no symbols")
                continue
            feeds.append(builder(venue, accounts, clock, recorder))
        else:
            # the instruments the manual accounts priced by this venue hold are watched too
            held = [
                p.symbol
                for a in config.accounts
                if a.feed == venue.name and a.snapshot is not None
                for p in a.snapshot.positions
            ]
            feeds.append(_ccxt(venue, held, clock))
    for acct in config.accounts:
        if acct.kind.value == "api_key" and acct.credentials is not None:
            feeds.append(build_key_feed(key_account(acct), clock, recorder))
    return feeds


def key_account(acct: AccountConfig) -> KeyAccount:
    """The :class:`~monitor.venues.keys.KeyAccount` of a configured API-key account."""
    creds = acct.credentials
    assert creds is not None
    return KeyAccount(
        venue=acct.venue,
        name=acct.account,
        api_key=creds.api_key,
        secret=creds.secret,
        password=creds.password,
        allow_trading_key=acct.allow_trading_key,
        rest_url=acct.rest_url,
        ws_url=acct.ws_url,
        portfolio_margin=acct.portfolio_margin,
    )
