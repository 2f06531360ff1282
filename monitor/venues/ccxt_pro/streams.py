"""Which ccxt.pro streams each exchange gets its marks and funding from (pure data).

The best source per exchange (feeds.md §5.1, checked against ccxt 4.5.90):

=============  ======================================  ==========================================
ccxt id        marks                                   funding
=============  ======================================  ==========================================
binanceusdm    ``watch_mark_prices`` (markPrice@1s)    in the mark ticker's ``info`` (``r``, ``T``)
bybit          ``watch_tickers`` (tickers.{symbol})    in the ticker's ``info`` (``fundingRate``)
okx            ``watch_mark_prices`` (mark-price)      ``watch_funding_rates`` (funding-rate)
other          ``watch_mark_prices``, else             ``watch_funding_rates``, else REST
               ``watch_tickers``                       ``fetch_funding_rates`` on a timer
=============  ======================================  ==========================================

Maintenance tiers: Bybit's risk limits are public (``fetch_market_leverage_tiers``, bounds in
quote notional). Binance's leverage brackets need an API key and OKX's position tiers are
bounded in *contracts*, not notional, so both come from configuration. Other exchanges try
``fetch_leverage_tiers`` when ccxt has it and fall back to configuration.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from monitor.model.venues import BINANCE_USDM
from monitor.venues.ccxt_pro.convert import InfoFunding


class MarkSource(StrEnum):
    WATCH_MARK_PRICES = "watch_mark_prices"
    WATCH_TICKERS = "watch_tickers"


class FundingSource(StrEnum):
    IN_TICKER = "in_ticker"  # the mark stream's ticker carries it in ``info``
    WATCH_FUNDING_RATES = "watch_funding_rates"
    POLL_FUNDING_RATES = "fetch_funding_rates"  # REST on a timer
    NONE = "none"


class TierSource(StrEnum):
    FETCH_MARKET_LEVERAGE_TIERS = "fetch_market_leverage_tiers"  # one request per symbol
    FETCH_LEVERAGE_TIERS = "fetch_leverage_tiers"  # one request for all symbols
    CONFIG = "config"


@dataclass(frozen=True, slots=True)
class StreamPlan:
    """How one ccxt exchange is watched. ``venue`` names the events and the margin rule set;
    ``market_types`` restricts ccxt's ``fetchMarkets`` (None: ccxt's default); ``options`` are
    extra ccxt options merged under the caller's; ``max_connection_age`` (seconds) reconnects
    ahead of a venue-imposed connection lifetime."""

    exchange_id: str
    venue: str
    mark: MarkSource
    funding: FundingSource
    tiers: TierSource
    info_funding: InfoFunding | None = None
    market_types: tuple[str, ...] | None = None
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    max_connection_age: float | None = None


KNOWN: Mapping[str, StreamPlan] = MappingProxyType(
    {
        "binanceusdm": StreamPlan(
            exchange_id="binanceusdm",
            venue=BINANCE_USDM,
            mark=MarkSource.WATCH_MARK_PRICES,
            funding=FundingSource.IN_TICKER,
            tiers=TierSource.CONFIG,
            info_funding=InfoFunding("r", "T"),
            max_connection_age=23.5 * 3600.0,  # Binance drops every connection at 24 h
        ),
        "bybit": StreamPlan(
            exchange_id="bybit",
            venue="bybit",
            mark=MarkSource.WATCH_TICKERS,
            funding=FundingSource.IN_TICKER,
            tiers=TierSource.FETCH_MARKET_LEVERAGE_TIERS,
            info_funding=InfoFunding("fundingRate", "nextFundingTime"),
            market_types=("linear",),
        ),
        "okx": StreamPlan(
            exchange_id="okx",
            venue="okx",
            mark=MarkSource.WATCH_MARK_PRICES,
            funding=FundingSource.WATCH_FUNDING_RATES,
            tiers=TierSource.CONFIG,
            market_types=("swap",),
        ),
    }
)


class UnsupportedExchangeError(ValueError):
    """The exchange streams neither mark prices nor tickers in ccxt.pro."""


def plan_for(exchange_id: str, has: Mapping[str, Any]) -> StreamPlan:
    """The plan of ``exchange_id``: a known one, else derived from ccxt's ``has`` table.

    Other exchanges use their ccxt id as the venue name (and the ``generic`` rule set).
    """
    known = KNOWN.get(exchange_id)
    if known is not None:
        return known
    if has.get("watchMarkPrices"):
        mark = MarkSource.WATCH_MARK_PRICES
    elif has.get("watchTickers"):
        mark = MarkSource.WATCH_TICKERS
    else:
        raise UnsupportedExchangeError(
            f"ccxt.pro {exchange_id} has neither watchMarkPrices nor watchTickers"
        )
    if has.get("watchFundingRates"):
        funding = FundingSource.WATCH_FUNDING_RATES
    elif has.get("fetchFundingRates"):
        funding = FundingSource.POLL_FUNDING_RATES
    else:
        funding = FundingSource.NONE
    tiers = TierSource.FETCH_LEVERAGE_TIERS if has.get("fetchLeverageTiers") else TierSource.CONFIG
    return StreamPlan(
        exchange_id=exchange_id, venue=exchange_id, mark=mark, funding=funding, tiers=tiers
    )
