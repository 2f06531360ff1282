"""REST metadata for the native price feeds, through ccxt (funding intervals, maintenance tiers).

The native Binance USDⓈ-M, Bybit and OKX feeds stream prices over their own websockets, but the
metadata their streams do not carry comes from the same code the ccxt.pro feed bootstraps with
(:meth:`~monitor.venues.ccxt_pro.feed.CcxtProFeed.load_metadata`), over ccxt's REST client:

* Binance: ``GET /fapi/v1/exchangeInfo`` (which symbols are linear perpetuals) and
  ``GET /fapi/v1/fundingInfo`` (the symbols whose funding interval is not 8 h); no public
  maintenance brackets (they need an API key), so instruments come from configuration.
* Bybit: ``GET /v5/market/instruments-info`` (``fundingInterval`` per symbol) and
  ``GET /v5/market/risk-limit`` per symbol (public maintenance tiers → ``InstrumentSpec``).

One code path for the ccxt and native feeds means one set of tests for the tier conversion and
the interval rules. ccxt is imported only when metadata is first loaded (importing it takes
about a second).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from monitor.clock import Clock
from monitor.venues.backoff import Backoff
from monitor.venues.feed import Emit, Metadata, PriceFeed, WsFeed


def ccxt_metadata(
    exchange_id: str,
    venue: str,
    symbols: Sequence[str],
    *,
    urls: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    backoff: Callable[[], Backoff] = Backoff,
    clock: Clock | None = None,
) -> Metadata:
    """A :data:`~monitor.venues.feed.Metadata` loader for ``symbols`` (native ids) of the ccxt
    exchange ``exchange_id`` (one of the known plans: ``binanceusdm``, ``bybit``, ``okx``),
    whose events carry the venue name ``venue``. ``urls``/``options`` are deep-merged into
    ccxt's configuration (tests point ``urls`` at loopback); ``backoff`` paces the retries of
    the market list."""

    async def load(emit: Emit) -> Mapping[str, float]:
        # importing ccxt takes about a second: only when metadata is first wanted
        from monitor.venues.ccxt_pro.feed import CcxtProFeed  # noqa: PLC0415
        from monitor.venues.ccxt_pro.streams import KNOWN  # noqa: PLC0415

        plan = dataclasses.replace(KNOWN[exchange_id], venue=venue)
        feed = CcxtProFeed(
            exchange_id,
            symbols,
            urls=urls,
            options=options,
            plan=plan,
            backoff=backoff,
            clock=clock,
        )
        return await feed.load_metadata(emit)

    return load


def deep_merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` merged in, nested mappings merged key by key (ccxt's ``urls``)."""
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(old, Mapping) and isinstance(value, Mapping):
            out[key] = deep_merge(old, value)
        else:
            out[key] = value
    return out


def with_ccxt_metadata(
    feed: WsFeed,
    exchange_id: str,
    symbols: Sequence[str],
    *,
    load: bool = True,
    urls: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
    backoff: Callable[[], Backoff] = Backoff,
    interval: float | None = 3600.0,
    on_intervals: Callable[[Mapping[str, float]], None] | None = None,
) -> PriceFeed:
    """The native price ``feed`` of ``symbols`` with its REST metadata (funding intervals,
    maintenance tiers) loaded through ccxt's ``exchange_id`` beside the stream (``load``
    False: none), every ``interval`` seconds; ``on_intervals`` receives the learnt funding
    intervals (hours by symbol). Shared by the Binance and Bybit feeds."""
    loader = (
        ccxt_metadata(
            exchange_id,
            feed.venue,
            symbols,
            urls=urls,
            options=options,
            backoff=backoff,
            clock=feed.clock,
        )
        if load
        else None
    )
    return PriceFeed(
        feed, symbols, metadata=loader, on_intervals=on_intervals, metadata_interval=interval
    )
