"""ccxt unified structures → our events (pure: no I/O, no ccxt import, no clock).

ccxt hands the connector plain dicts (its "unified" ticker, funding-rate, leverage-tier and
market structures, see docs.ccxt.com). These functions turn them into events with the venue's
*native* symbol (``BTCUSDT``, ``BTC-USDT-SWAP``); the unified symbol (``BTC/USDT:USDT``) never
leaves the connector.

Units and signs: prices in the quote currency; ccxt timestamps are integer milliseconds and
become seconds here; a funding ``rate`` is the fraction paid per funding interval, positive when
longs pay shorts; ``interval_hours`` comes from the venue where it says so (the unified
``interval`` such as ``"8h"``, Bybit's ``fundingInterval`` in minutes), else the default 8 h.

Maintenance tiers (ccxt leverage-tier structure): each tier carries ``minNotional``,
``maxNotional`` and ``maintenanceMarginRate``; the venue's deduction sits only in ``info``
(Binance ``cum``, Bybit ``mmDeduction``). A schedule keeps those deductions when every tier
above the first has one; otherwise the deductions are derived so that the requirement is
continuous (``MaintenanceSchedule.continuous``), which is what the venues do.

Bounds (issue 10.1, as in the native parsers): prices outside ``[MIN_PRICE, MAX_PRICE]``,
funding rates with ``|rate| > MAX_ABS_RATE`` per interval and times past ``MAX_TS_MS`` are
refused (:class:`ParseError`), never passed on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.errors import ParseError
from monitor.model.events import Event, FundingRate, MarkPrice
from monitor.model.instruments import Instrument, MaintenanceSchedule, Tier

DEFAULT_INTERVAL_HOURS = 8.0
MIN_PRICE = 1e-12
MAX_PRICE = 1e9
MAX_ABS_RATE = 1.0
MAX_TS_MS = 10_000_000_000_000

_DEDUCTION_KEYS = ("cum", "mmDeduction")


@dataclass(frozen=True, slots=True)
class InfoFunding:
    """Where the funding rate sits inside a ticker's raw ``info`` (binanceusdm ``r``/``T``,
    bybit ``fundingRate``/``nextFundingTime``); the next-time key holds milliseconds."""

    rate_key: str
    next_ts_key: str | None = None


def _num(value: Any) -> float | None:
    """A finite float from a ccxt number or a decimal string; None when absent or empty."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"not a number: {value!r}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"not a finite number: {value!r}")
    return out


def _price(value: Any) -> float | None:
    out = _num(value)
    if out is not None and out <= 0.0:
        raise ValueError(f"price must be positive: {value!r}")
    if out is not None and not MIN_PRICE <= out <= MAX_PRICE:
        raise ValueError(f"price out of bounds: {value!r}")
    return out


def _rate(value: Any) -> float | None:
    out = _num(value)
    if out is not None and abs(out) > MAX_ABS_RATE:
        raise ValueError(f"funding rate out of bounds: {value!r}")
    return out


def _ms(value: Any) -> float | None:
    out = _num(value)
    if out is not None and out > MAX_TS_MS:
        raise ValueError(f"time out of bounds: {value!r}")
    return None if out is None or out <= 0.0 else out / 1000.0


def interval_hours(text: Any) -> float | None:
    """Hours of a ccxt funding ``interval`` string (``"8h"``, ``"1h"``, ``"30m"``)."""
    if not isinstance(text, str) or len(text) < 2:
        return None
    unit = {"h": 1.0, "m": 1.0 / 60.0, "d": 24.0}.get(text[-1])
    if unit is None:
        return None
    try:
        hours = float(text[:-1]) * unit
    except ValueError:
        return None
    return hours if hours > 0.0 and math.isfinite(hours) else None


def market_interval_hours(market: Mapping[str, Any]) -> float | None:
    """Funding interval a ccxt market's raw ``info`` states (Bybit ``fundingInterval``, minutes)."""
    info = market.get("info")
    if not isinstance(info, Mapping):
        return None
    minutes = info.get("fundingInterval")
    try:
        value = _num(minutes)
    except (TypeError, ValueError):
        return None
    return value / 60.0 if value is not None and value > 0.0 else None


def ticker_events(
    venue: str,
    symbol: str,
    ticker: Mapping[str, Any],
    ts_recv: float,
    *,
    funding: InfoFunding | None = None,
    default_interval_hours: float = DEFAULT_INTERVAL_HOURS,
) -> list[Event]:
    """Events of one ccxt ticker (from ``watch_mark_prices`` or ``watch_tickers``).

    ``mark`` is the unified ``markPrice`` and ``oracle`` the ``indexPrice``; a ticker without a
    mark price gives no :class:`MarkPrice`. With ``funding`` the rate is read from ``info``.
    Raises :class:`ParseError` on non-numeric, non-finite or non-positive prices.
    """
    try:
        ts_event = _ms(ticker.get("timestamp"))
        out: list[Event] = []
        mark = _price(ticker.get("markPrice"))
        if mark is not None:
            oracle = _price(ticker.get("indexPrice"))
            out.append(MarkPrice(venue, symbol, mark, oracle, ts_event, ts_recv))
        if funding is not None:
            info = ticker.get("info")
            if isinstance(info, Mapping):
                rate = _rate(info.get(funding.rate_key))
                if rate is not None:
                    nxt = _ms(info.get(funding.next_ts_key)) if funding.next_ts_key else None
                    out.append(
                        FundingRate(
                            venue, symbol, rate, default_interval_hours, nxt, ts_event, ts_recv
                        )
                    )
    except (TypeError, ValueError) as exc:
        raise ParseError(venue, f"bad ticker: {exc}", repr(dict(ticker))) from None
    return out


def funding_rate_event(
    venue: str,
    symbol: str,
    rate: Mapping[str, Any],
    ts_recv: float,
    default_interval_hours: float = DEFAULT_INTERVAL_HOURS,
) -> list[Event]:
    """The :class:`FundingRate` of one ccxt funding-rate structure (none when it has no rate).

    ``next_funding_ts`` is the settlement the current rate is paid at: ccxt's
    ``fundingTimestamp`` (OKX ``fundingTime``, Binance ``nextFundingTime``), else
    ``nextFundingTimestamp``. The interval is the unified ``interval`` when ccxt gives one.
    """
    try:
        value = _rate(rate.get("fundingRate"))
        if value is None:
            return []
        next_ts = _ms(rate.get("fundingTimestamp"))
        if next_ts is None:
            next_ts = _ms(rate.get("nextFundingTimestamp"))
        hours = interval_hours(rate.get("interval")) or default_interval_hours
        ts_event = _ms(rate.get("timestamp"))
        info = rate.get("info")
        if ts_event is None and isinstance(info, Mapping):
            ts_event = _ms(info.get("ts"))  # OKX: ccxt leaves the unified timestamp empty
    except (TypeError, ValueError) as exc:
        raise ParseError(venue, f"bad funding rate: {exc}", repr(dict(rate))) from None
    return [FundingRate(venue, symbol, value, hours, next_ts, ts_event, ts_recv)]


def schedule_from_tiers(tiers: Sequence[Mapping[str, Any]]) -> MaintenanceSchedule:
    """A maintenance schedule from ccxt leverage tiers whose bounds are notionals (quote).

    Raises ``ValueError`` when the tiers are empty, not numeric or not increasing.
    """
    rows: list[tuple[float, float, float | None]] = []
    for tier in sorted(tiers, key=lambda t: _num(t.get("minNotional")) or 0.0):
        floor = _num(tier.get("minNotional")) or 0.0
        rate = _num(tier.get("maintenanceMarginRate"))
        if rate is None:
            raise ValueError(f"tier without maintenanceMarginRate: {tier!r}")
        info = tier.get("info")
        deduction = None
        if isinstance(info, Mapping):
            for key in _DEDUCTION_KEYS:
                deduction = _num(info.get(key))
                if deduction is not None:
                    break
        rows.append((floor, rate, deduction))
    if not rows:
        raise ValueError("no leverage tiers")
    if all(d is not None for _, _, d in rows[1:]):
        _, first_rate, first_d = rows[0]
        built = [Tier(0.0, first_rate, first_d or 0.0)]
        built += [Tier(f, r, d or 0.0) for f, r, d in rows[1:]]
        return MaintenanceSchedule(tuple(built), kind="tiers")
    return MaintenanceSchedule.continuous([(f, r) for f, r, _ in rows], kind="tiers")


def instrument(
    venue: str,
    symbol: str,
    market: Mapping[str, Any],
    maintenance: MaintenanceSchedule,
    default_interval_hours: float = DEFAULT_INTERVAL_HOURS,
) -> Instrument:
    """Our :class:`Instrument` for a ccxt linear-swap market; ``fee_rate`` is ccxt's ``taker``
    fee for the market (the fee to close, which OKX and Bybit count in maintenance). The
    funding interval is the market's own ``fundingInterval`` when it states one, else
    ``default_interval_hours``."""
    try:
        taker = _num(market.get("taker"))
    except (TypeError, ValueError):
        taker = None
    return Instrument(
        venue=venue,
        symbol=symbol,
        maintenance=maintenance,
        funding_interval_hours=market_interval_hours(market) or default_interval_hours,
        fee_rate=taker,
    )


def linear_swap_ids(markets: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    """Native id → unified symbol of the linear perpetual swaps among ccxt's ``markets``."""
    out: dict[str, str] = {}
    for unified, market in markets.items():
        if market.get("swap") and market.get("linear") and isinstance(market.get("id"), str):
            out[market["id"]] = unified
    return out
