"""The explicit registry of margin rule sets, by the venue name used in snapshots."""

from __future__ import annotations

from types import MappingProxyType

from monitor.margin.base import RuleSet
from monitor.margin.binance_usdm import BinanceUsdmRules
from monitor.margin.bybit import BybitRules
from monitor.margin.dydx_v4 import DydxV4Rules
from monitor.margin.generic import GenericRules
from monitor.margin.hyperliquid import HyperliquidRules
from monitor.margin.okx import OkxRules

RULES: MappingProxyType[str, RuleSet] = MappingProxyType(
    {
        "hyperliquid": HyperliquidRules(),
        "dydx_v4": DydxV4Rules(),
        "binance_usdm": BinanceUsdmRules(),
        "bybit": BybitRules(),
        "okx": OkxRules(),
        "generic": GenericRules(),
    }
)

VENUES: tuple[str, ...] = tuple(RULES)


class UnknownVenueError(KeyError):
    def __init__(self, venue: str) -> None:
        super().__init__(venue)
        self.venue = venue

    def __str__(self) -> str:
        return f"unknown venue {self.venue!r} (known: {', '.join(VENUES)})"


def rules_for(venue: str) -> RuleSet:
    try:
        return RULES[venue]
    except KeyError:
        raise UnknownVenueError(venue) from None
