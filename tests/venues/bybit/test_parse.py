from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.model.events import FundingRate, MarkPrice
from monitor.venues.bybit.parse import VENUE, BybitParser, parse

FIX = Path(__file__).parents[2] / "fixtures" / "feeds" / "bybit"


def _frame(name: str) -> bytes:
    return (FIX / name).read_bytes()


def test_snapshot_gives_mark_with_index_and_funding_with_next_time() -> None:
    assert parse(_frame("ws_tickers_snapshot.json"), 3.0) == [
        # ts 1778000001012 ms -> 1778000001.012 s
        MarkPrice(VENUE, "BTCUSDT", 95041.73, 95004.02, 1778000001.012, 3.0),
        # fundingRate "0.0000652" per 8 h; nextFundingTime "1778025600000" ms
        FundingRate(VENUE, "BTCUSDT", 0.0000652, 8.0, 1778025600.0, 1778000001.012, 3.0),
    ]


def test_delta_gives_only_what_it_carries() -> None:
    # the delta has markPrice, indexPrice and fundingRate but no nextFundingTime
    assert parse(_frame("ws_tickers_delta.json"), 3.0, {"BTCUSDT": 4.0}) == [
        MarkPrice(VENUE, "BTCUSDT", 95044.10, 95006.35, 1778000001.112, 3.0),
        FundingRate(VENUE, "BTCUSDT", 0.0000655, 4.0, None, 1778000001.112, 3.0),
    ]


def test_delta_without_mark_or_funding_gives_nothing() -> None:
    msg = json.loads(_frame("ws_tickers_delta.json"))
    msg["data"] = {"symbol": "BTCUSDT", "bid1Price": "95043.90"}
    assert parse(json.dumps(msg), 0.0) == []


def test_negative_funding_keeps_its_sign() -> None:
    msg = json.loads(_frame("ws_tickers_delta.json"))
    msg["data"] = {"symbol": "ETHUSDT", "fundingRate": "-0.0001"}
    (f,) = parse(json.dumps(msg), 0.0)
    assert isinstance(f, FundingRate)
    assert f.rate == -0.0001


@pytest.mark.parametrize("name", ["ws_subscribe_response.json", "ws_pong.json"])
def test_acks_and_pongs_give_no_events(name: str) -> None:
    assert parse(_frame(name), 0.0) == []


def test_failed_subscribe_raises_parse_error_with_message() -> None:
    with pytest.raises(ParseError) as info:
        parse(_frame("ws_subscribe_error.json"), 0.0)
    assert info.value.venue == VENUE
    assert "Invalid topic" in info.value.problem


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("markPrice", "NaN"),
        ("markPrice", "0"),
        ("markPrice", "x"),
        ("indexPrice", "-5"),
        ("fundingRate", "inf"),
        ("symbol", ""),
        ("nextFundingTime", "later"),
    ],
)
def test_bad_values_raise_parse_error(field: str, value: str) -> None:
    msg = json.loads(_frame("ws_tickers_snapshot.json"))
    msg["data"][field] = value
    with pytest.raises(ParseError):
        parse(json.dumps(msg), 0.0)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"pong?",
        b"[]",
        b'{"topic":"orderbook.1.BTCUSDT","data":{}}',
        b'{"topic":"tickers.BTCUSDT","data":[],"ts":1}',
        b'{"topic":"tickers.BTCUSDT"}',
    ],
)
def test_garbage_raises_parse_error(frame: bytes) -> None:
    with pytest.raises(ParseError):
        parse(frame, 0.0)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.text(max_size=64))
def test_arbitrary_input_never_raises_anything_but_parse_error(frame: bytes | str) -> None:
    outcome: object
    try:
        outcome = parse(frame, 0.0)
    except ParseError as exc:
        outcome = exc.venue
    assert outcome == VENUE or isinstance(outcome, list)


def test_frame_parser_keeps_the_next_funding_time_across_deltas() -> None:
    p = BybitParser()
    snap = p.parse_frame(_frame("ws_tickers_snapshot.json"), 1.0)
    assert snap.channel == "tickers"
    delta = p.parse(_frame("ws_tickers_delta.json"), 2.0)
    funding = delta[1]
    assert isinstance(funding, FundingRate)
    # the delta has no nextFundingTime; the snapshot's 1778025600000 ms still holds
    assert (funding.rate, funding.next_funding_ts) == (0.0000655, 1778025600.0)
    assert p.parse_frame(_frame("ws_pong.json"), 3.0).channel is None


def test_frame_parser_without_snapshot_leaves_next_funding_unknown() -> None:
    (_, funding) = BybitParser().parse(_frame("ws_tickers_delta.json"), 2.0)
    assert isinstance(funding, FundingRate)
    assert funding.next_funding_ts is None
    with pytest.raises(ParseError):
        BybitParser().parse_rest("tickers", b"{}", 0.0)


def test_module_is_pure_no_io_or_clock_imports() -> None:
    import ast
    import importlib

    module = importlib.import_module("monitor.venues.bybit.parse")
    source = Path(module.__file__ or "").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    io = {"asyncio", "socket", "websockets", "aiohttp", "aiosqlite", "apprise", "ccxt", "time"}
    assert imported.isdisjoint(io), imported & io


# -- bounds, keepalive and data-vs-control (issues 10.1, 12.7) -------------------------------
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("markPrice", "1e200"),
        ("markPrice", "1e-300"),
        ("indexPrice", "5e10"),
        ("fundingRate", "3"),
        ("fundingRate", "-inf"),
        ("nextFundingTime", "17780256000000"),
    ],
)
def test_absurd_magnitudes_are_refused(field: str, value: str) -> None:
    msg = json.loads(_frame("ws_tickers_snapshot.json"))
    msg["data"][field] = value
    with pytest.raises(ParseError, match="out of bounds"):
        parse(json.dumps(msg), 0.0)


def test_absurd_envelope_time_is_refused() -> None:
    msg = json.loads(_frame("ws_tickers_snapshot.json"))
    msg["ts"] = 17780000010120  # ten times too large
    with pytest.raises(ParseError, match="out of bounds"):
        parse(json.dumps(msg), 0.0)


def test_frame_parser_reports_the_pong_to_the_keepalive_and_acks_as_control() -> None:
    p = BybitParser()
    assert p.parse_frame(_frame("ws_pong.json"), 1.0).pong
    assert p.parse_frame(b'{"op":"pong","args":["1778000001000"]}', 1.0).pong
    ack = p.parse_frame(_frame("ws_subscribe_response.json"), 1.0)
    assert (ack.channel, ack.events, ack.pong) == (None, [], False)


def test_delta_without_mark_or_funding_still_proves_the_stream_alive() -> None:
    msg = {
        "topic": "tickers.BTCUSDT",
        "type": "delta",
        "data": {"symbol": "BTCUSDT", "bid1Price": "95040.00"},
        "cs": 1,
        "ts": 1778000001112,
    }
    parsed = BybitParser().parse_frame(json.dumps(msg), 1.0)
    assert (parsed.channel, parsed.events) == ("tickers", [])


def test_recorded_funding_intervals_are_read_back_and_checked() -> None:
    p = BybitParser()
    assert p.parse_rest("fundingIntervals", b'{"BTCUSDT": 1}', 0.0) == []
    funding = p.parse(_frame("ws_tickers_snapshot.json"), 1.0)[1]
    assert isinstance(funding, FundingRate)
    assert funding.interval_hours == 1.0
    with pytest.raises(ParseError):
        p.parse_rest("fundingIntervals", b'{"BTCUSDT": -8}', 0.0)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(
        ["symbol", "markPrice", "indexPrice", "fundingRate", "nextFundingTime", "bid1Price"]
    ),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**20), max_value=10**20),
        st.floats(allow_nan=False, allow_infinity=False),
        st.sampled_from(["NaN", "inf", "1e200", "-1", "0", "1e-300", "", "x", "95041.73"]),
        st.text(max_size=8),
    ),
)
def test_mutated_tickers_are_refused_whole_or_delivered_within_bounds(
    field: str, value: object
) -> None:
    from monitor.venues.bybit.parse import MAX_ABS_RATE, MAX_PRICE, MIN_PRICE

    msg = json.loads(_frame("ws_tickers_snapshot.json"))
    msg["data"][field] = value
    try:
        events = BybitParser().parse_frame(json.dumps(msg), 1.0).events
    except ParseError as exc:  # refused whole, naming the venue
        events, venue = [], exc.venue
    else:
        venue = VENUE
    assert venue == VENUE
    for e in events:
        if isinstance(e, MarkPrice):
            assert MIN_PRICE <= e.mark <= MAX_PRICE
            assert e.oracle is None or MIN_PRICE <= e.oracle <= MAX_PRICE
        else:
            assert isinstance(e, FundingRate)
            assert abs(e.rate) <= MAX_ABS_RATE
