from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.model.events import FundingRate, MarkPrice
from monitor.venues.binance.parse import VENUE, BinanceParser, parse

FIX = Path(__file__).parents[2] / "fixtures" / "feeds" / "binance"


def _frame(name: str) -> bytes:
    return (FIX / name).read_bytes()


BTC_MARK = MarkPrice(VENUE, "BTCUSDT", 95041.2, 95003.81304348, 1778000001.0, 7.5)
# r = "0.00006521" per 8 h interval, T = 1778025600000 ms -> 1778025600 s
BTC_FUNDING = FundingRate(VENUE, "BTCUSDT", 0.00006521, 8.0, 1778025600.0, 1778000001.0, 7.5)


def test_raw_mark_price_update_gives_mark_and_funding() -> None:
    assert parse(_frame("ws_markPriceUpdate.json"), 7.5) == [BTC_MARK, BTC_FUNDING]


def test_combined_wrapper_gives_the_same_events_as_raw() -> None:
    assert parse(_frame("ws_combined_markPriceUpdate.json"), 7.5) == [BTC_MARK, BTC_FUNDING]


@pytest.mark.parametrize("name", ["ws_markPrice_arr.json", "ws_combined_markPrice_arr.json"])
def test_all_market_array_gives_events_per_symbol_with_negative_funding(name: str) -> None:
    events = parse(_frame(name), 7.5)
    assert events[:2] == [BTC_MARK, BTC_FUNDING]
    eth_mark, eth_funding = events[2:]
    assert eth_mark == MarkPrice(VENUE, "ETHUSDT", 3513.01, 3512.77418182, 1778000001.0, 7.5)
    assert isinstance(eth_funding, FundingRate)
    assert eth_funding.rate == pytest.approx(-0.00001204, rel=1e-12)  # shorts pay longs
    assert eth_funding.rate < 0


def test_known_interval_overrides_default_eight_hours() -> None:
    events = parse(_frame("ws_markPriceUpdate.json"), 0.0, {"BTCUSDT": 4.0})
    assert isinstance(events[1], FundingRate)
    assert events[1].interval_hours == 4.0


def test_subscription_reply_gives_no_events() -> None:
    assert parse(_frame("ws_subscribe_response.json"), 0.0) == []


def test_error_reply_raises_parse_error_naming_venue() -> None:
    with pytest.raises(ParseError) as info:
        parse(_frame("ws_error.json"), 0.0)
    assert info.value.venue == VENUE
    assert "invalid stream" in info.value.problem


def test_delivery_contract_without_funding_gives_mark_only() -> None:
    u = json.loads(_frame("ws_markPriceUpdate.json"))
    u["r"], u["T"] = "", 0
    assert parse(json.dumps(u), 7.5) == [BTC_MARK]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("p", "NaN"),
        ("p", ""),
        ("p", "-1"),
        ("p", "abc"),
        ("s", ""),
        ("E", "soon"),
        ("i", "inf"),
        ("r", "nan"),
        ("e", "24hrTicker"),
    ],
)
def test_bad_values_raise_parse_error(field: str, value: str) -> None:
    u = json.loads(_frame("ws_markPriceUpdate.json"))
    u[field] = value
    with pytest.raises(ParseError):
        parse(json.dumps(u), 0.0)


@pytest.mark.parametrize("frame", [b"", b"not json", b"[1, 2]", b"{}", b"42", b'{"e": 1}', b"null"])
def test_garbage_raises_parse_error(frame: bytes) -> None:
    with pytest.raises(ParseError):
        parse(frame, 0.0)


def test_parse_error_keeps_a_truncated_copy_of_the_frame() -> None:
    frame = b"x" * 1000
    with pytest.raises(ParseError) as info:
        parse(frame, 0.0)
    assert info.value.frame == "x" * 200


@settings(max_examples=100, deadline=None)
@given(
    mark=st.floats(min_value=1e-8, max_value=1e9, allow_nan=False),
    rate=st.floats(min_value=-0.05, max_value=0.05, allow_nan=False),
)
def test_any_valid_update_roundtrips_its_numbers(mark: float, rate: float) -> None:
    u = json.loads(_frame("ws_markPriceUpdate.json"))
    u["p"], u["r"] = repr(mark), repr(rate)
    m, f = parse(json.dumps(u), 0.0)
    assert isinstance(m, MarkPrice)
    assert isinstance(f, FundingRate)
    assert m.mark == mark
    assert f.rate == rate
    assert math.copysign(1.0, f.rate) == math.copysign(1.0, rate)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_arbitrary_input_never_raises_anything_but_parse_error(frame: bytes | str) -> None:
    outcome: object
    try:
        outcome = parse(frame, 0.0)
    except ParseError as exc:
        outcome = exc.venue
    assert outcome == VENUE or isinstance(outcome, list)


def test_frame_parser_reports_the_mark_price_channel_and_control_frames() -> None:
    p = BinanceParser({"BTCUSDT": 4.0})
    parsed = p.parse_frame(_frame("ws_markPriceUpdate.json"), 7.5)
    assert parsed.channel == "markPrice"
    assert parsed.events[0] == BTC_MARK
    assert isinstance(parsed.events[1], FundingRate)
    assert parsed.events[1].interval_hours == 4.0
    control = p.parse_frame(_frame("ws_subscribe_response.json"), 7.5)
    assert (control.channel, control.events) == (None, [])


def test_rest_premium_index_gives_the_same_events_as_the_stream() -> None:
    # premiumIndex: markPrice "95041.20000000", indexPrice "95003.81304348",
    # lastFundingRate "0.00006521", nextFundingTime 1778025600000, time 1778000001000
    events = BinanceParser().parse_rest("premiumIndex", _frame("rest_premiumIndex.json"), 7.5)
    assert events == [BTC_MARK, BTC_FUNDING]


@pytest.mark.parametrize(
    ("name", "body"), [("exchangeInfo", b"{}"), ("premiumIndex", b"[{}]"), ("premiumIndex", b"x")]
)
def test_rest_bodies_we_do_not_know_raise_parse_error(name: str, body: bytes) -> None:
    with pytest.raises(ParseError):
        BinanceParser().parse_rest(name, body, 0.0)


def test_module_is_pure_no_io_or_clock_imports() -> None:
    import ast
    import importlib

    source = Path(
        importlib.import_module("monitor.venues.binance.parse").__file__ or ""
    ).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    io = {"asyncio", "socket", "websockets", "aiohttp", "aiosqlite", "apprise", "ccxt", "time"}
    assert imported.isdisjoint(io), imported & io
