from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.model.events import FundingRate, MarkPrice
from monitor.model.instruments import MaintenanceSchedule, Tier
from monitor.venues.ccxt_pro.convert import (
    InfoFunding,
    funding_rate_event,
    instrument,
    interval_hours,
    linear_swap_ids,
    market_interval_hours,
    schedule_from_tiers,
    ticker_events,
)

# a binanceusdm watch_mark_prices ticker, as ccxt 4.5.90 builds it from ws_markPriceUpdate.json
BINANCE_TICKER: dict[str, Any] = {
    "symbol": "BTC/USDT:USDT",
    "timestamp": 1778000001000,
    "info": {
        "e": "markPriceUpdate",
        "E": 1778000001000,
        "s": "BTCUSDT",
        "p": "95041.20000000",
        "i": "95003.81304348",
        "P": "94998.53226190",
        "r": "0.00006521",
        "T": 1778025600000,
    },
    "markPrice": 95041.2,
    "indexPrice": 95003.81304348,
    "bid": None,
    "last": None,
}


def test_ticker_gives_mark_and_funding_from_info() -> None:
    events = ticker_events(
        "binance_usdm", "BTCUSDT", BINANCE_TICKER, 5.0, funding=InfoFunding("r", "T")
    )
    assert events == [
        MarkPrice("binance_usdm", "BTCUSDT", 95041.2, 95003.81304348, 1778000001.0, 5.0),
        # r "0.00006521" per 8 h; T 1778025600000 ms -> s
        FundingRate("binance_usdm", "BTCUSDT", 0.00006521, 8.0, 1778025600.0, 1778000001.0, 5.0),
    ]


def test_ticker_without_funding_source_gives_mark_only() -> None:
    events = ticker_events("binance_usdm", "BTCUSDT", BINANCE_TICKER, 5.0)
    assert [type(e) for e in events] == [MarkPrice]


def test_ticker_without_mark_gives_nothing_and_default_interval_is_used() -> None:
    t = {"symbol": "X", "timestamp": None, "markPrice": None, "info": {"fundingRate": "-0.0002"}}
    (f,) = ticker_events(
        "bybit", "X", t, 1.0, funding=InfoFunding("fundingRate"), default_interval_hours=4.0
    )
    assert f == FundingRate("bybit", "X", -0.0002, 4.0, None, None, 1.0)


@pytest.mark.parametrize(
    "patch",
    [
        {"markPrice": float("nan")},
        {"markPrice": -1.0},
        {"markPrice": 0.0},
        {"indexPrice": float("inf")},
        {"markPrice": "abc"},
        {"markPrice": True},
        {"info": {"r": "nan", "T": 1}},
        {"info": {"r": [1], "T": 1}},
        {"timestamp": "soon"},
        # magnitudes no venue produces (issue 10.1)
        {"markPrice": 1e200},
        {"indexPrice": 1e-300},
        {"info": {"r": "5", "T": 1}},  # 500 % per interval
        {"timestamp": 17780000010000},  # ten times too large: year 2533
    ],
)
def test_bad_ticker_values_raise_parse_error(patch: dict[str, Any]) -> None:
    with pytest.raises(ParseError) as info:
        ticker_events(
            "binance_usdm",
            "BTCUSDT",
            {**BINANCE_TICKER, **patch},
            0.0,
            funding=InfoFunding("r", "T"),
        )
    assert info.value.venue == "binance_usdm"


# the okx watch_funding_rates structure for ws_funding-rate.json
OKX_FUNDING: dict[str, Any] = {
    "info": {
        "fundingRate": "0.0000652",
        "fundingTime": "1778025600000",
        "nextFundingTime": "1778054400000",
        "instId": "BTC-USDT-SWAP",
        "ts": "1778000001500",
    },
    "symbol": "BTC/USDT:USDT",
    "timestamp": None,
    "fundingRate": 6.52e-05,
    "fundingTimestamp": 1778025600000,
    "nextFundingRate": None,
    "nextFundingTimestamp": 1778054400000,
    "interval": "8h",
}


def test_funding_structure_uses_settlement_time_interval_and_info_ts() -> None:
    assert funding_rate_event("okx", "BTC-USDT-SWAP", OKX_FUNDING, 2.0) == [
        FundingRate("okx", "BTC-USDT-SWAP", 6.52e-05, 8.0, 1778025600.0, 1778000001.5, 2.0)
    ]


def test_funding_structure_falls_back_to_next_timestamp_and_default_interval() -> None:
    fr = {
        "fundingRate": -0.001,
        "fundingTimestamp": None,
        "nextFundingTimestamp": 7200000,
        "interval": None,
        "timestamp": 3600000,
    }
    assert funding_rate_event("kucoinfutures", "XBTUSDTM", fr, 9.0, 4.0) == [
        FundingRate("kucoinfutures", "XBTUSDTM", -0.001, 4.0, 7200.0, 3600.0, 9.0)
    ]


def test_funding_structure_without_rate_gives_nothing_and_bad_rate_raises() -> None:
    assert funding_rate_event("okx", "X", {"fundingRate": None}, 0.0) == []
    with pytest.raises(ParseError):
        funding_rate_event("okx", "X", {"fundingRate": "inf"}, 0.0)


@pytest.mark.parametrize(
    ("text", "hours"),
    [
        ("8h", 8.0),
        ("1h", 1.0),
        ("4h", 4.0),
        ("30m", 0.5),
        ("1d", 24.0),
        ("h", None),
        ("xh", None),
        (None, None),
        ("8", None),
        ("0h", None),
    ],
)
def test_interval_strings(text: Any, hours: float | None) -> None:
    assert interval_hours(text) == hours


def test_market_interval_from_bybit_minutes() -> None:
    assert market_interval_hours({"info": {"fundingInterval": 480}}) == 8.0  # 480 min / 60
    assert market_interval_hours({"info": {"fundingInterval": "60"}}) == 1.0
    assert market_interval_hours({"info": {}}) is None
    assert market_interval_hours({"info": {"fundingInterval": "soon"}}) is None
    assert market_interval_hours({}) is None


def _tier(lo: float, hi: float, mmr: float, **info: Any) -> dict[str, Any]:
    return {"minNotional": lo, "maxNotional": hi, "maintenanceMarginRate": mmr, "info": info}


def test_tiers_with_venue_deductions_keep_them() -> None:
    # Binance-style brackets with cum: 0–50k at 0.4 %, 50k–250k at 0.5 % (cum 50)
    sched = schedule_from_tiers(
        [_tier(50_000, 250_000, 0.005, cum="50.0"), _tier(0, 50_000, 0.004, cum="0.0")]
    )
    assert sched.tiers == (Tier(0.0, 0.004, 0.0), Tier(50_000.0, 0.005, 50.0))
    # at 100k: 100,000 · 0.005 − 50 = 450
    assert sched.requirement(100_000.0) == pytest.approx(450.0)


def test_tiers_without_deductions_are_made_continuous() -> None:
    # OKX/ccxt-style: no deduction anywhere: d_1 = 2,000,000 · (0.0075 − 0.005) = 5,000
    sched = schedule_from_tiers(
        [
            _tier(0, 2_000_000, 0.005),
            _tier(2_000_000, 4_000_000, 0.0075),
            _tier(4_000_000, 6_000_000, 0.01),
        ]
    )
    assert (sched.tiers[1].floor, sched.tiers[1].rate) == (2_000_000.0, 0.0075)
    assert sched.tiers[1].deduction == pytest.approx(5_000.0)
    # d_2 = 5,000 + 4,000,000 · (0.01 − 0.0075) = 15,000
    assert sched.tiers[2].deduction == pytest.approx(15_000.0)
    below = sched.requirement(2_000_000.0 - 1e-6)
    above = sched.requirement(2_000_000.0)
    assert above == pytest.approx(below, abs=1e-6)


def test_bybit_first_tier_empty_deduction_counts_as_zero() -> None:
    sched = schedule_from_tiers(
        [_tier(0, 2e6, 0.005, mmDeduction=""), _tier(2e6, 2.6e6, 0.0056, mmDeduction="1200")]
    )
    assert sched.tiers == (Tier(0.0, 0.005, 0.0), Tier(2e6, 0.0056, 1200.0))


@pytest.mark.parametrize(
    "tiers",
    [
        [],
        [{"minNotional": 0, "maintenanceMarginRate": None}],
        [_tier(0, 1, 0.01), _tier(0, 2, 0.02)],
        [_tier(0, 1, 1.5)],
    ],
)
def test_unusable_tiers_raise_value_error(tiers: list[dict[str, Any]]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the defect
        schedule_from_tiers(tiers)


def test_instrument_takes_interval_and_taker_fee_from_the_market() -> None:
    sched = MaintenanceSchedule.flat(0.005)
    market = {"taker": 0.00055, "info": {"fundingInterval": 240}}
    inst = instrument("bybit", "BTCUSDT", market, sched)
    assert (inst.venue, inst.symbol, inst.maintenance) == ("bybit", "BTCUSDT", sched)
    assert inst.funding_interval_hours == 4.0  # 240 min
    assert inst.fee_rate == 0.00055
    assert instrument("okx", "X", {}, sched, 8.0).funding_interval_hours == 8.0


def test_linear_swap_ids_skip_spot_inverse_and_futures() -> None:
    markets = {
        "BTC/USDT:USDT": {"id": "BTCUSDT", "swap": True, "linear": True},
        "BTC/USDT": {"id": "BTCUSDT", "swap": False, "linear": None, "spot": True},
        "BTC/USD:BTC": {"id": "BTCUSD", "swap": True, "linear": False},
        "BTC/USDT:USDT-260626": {"id": "BTCUSDT_260626", "swap": False, "linear": True},
    }
    assert linear_swap_ids(markets) == {"BTCUSDT": "BTC/USDT:USDT"}


@settings(max_examples=100, deadline=None)
@given(
    rates=st.lists(st.floats(min_value=0.001, max_value=0.5), min_size=1, max_size=6),
    steps=st.lists(st.floats(min_value=1.0, max_value=1e7), min_size=6, max_size=6),
)
def test_derived_schedules_are_continuous_at_every_floor(
    rates: list[float], steps: list[float]
) -> None:
    floors = [0.0]
    for step in steps[: len(rates) - 1]:
        floors.append(floors[-1] + step)
    sched = schedule_from_tiers(
        [_tier(lo, lo + 1, r) for lo, r in zip(floors, sorted(rates), strict=True)]
    )
    for t in sched.tiers[1:]:
        prev = sched.tiers[sched.index_for(t.floor) - 1]
        left = t.floor * prev.rate - prev.deduction
        assert sched.requirement(t.floor) == pytest.approx(left, rel=1e-9, abs=1e-6)


def test_module_is_pure_no_io_or_clock_imports() -> None:
    import ast
    import importlib

    source = Path(
        importlib.import_module("monitor.venues.ccxt_pro.convert").__file__ or ""
    ).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    io = {"asyncio", "socket", "websockets", "aiohttp", "aiosqlite", "apprise", "ccxt", "time"}
    assert imported.isdisjoint(io), imported & io


@pytest.mark.parametrize(
    "patch", [{"fundingRate": -2.0}, {"fundingTimestamp": 1e15}], ids=["rate", "time"]
)
def test_absurd_funding_structures_are_refused(patch: dict[str, Any]) -> None:
    with pytest.raises(ParseError, match="out of bounds"):
        funding_rate_event("okx", "BTC-USDT-SWAP", {**OKX_FUNDING, **patch}, 0.0)
