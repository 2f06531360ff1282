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


# -- bounds and per-entry isolation (issue 10.1, 10.4) ---------------------------------------
def _arr(**btc_changes: object) -> list[dict[str, object]]:
    arr: list[dict[str, object]] = json.loads(_frame("ws_markPrice_arr.json"))
    arr[0].update(btc_changes)
    return arr


ETH_MARK = MarkPrice(VENUE, "ETHUSDT", 3513.01, 3512.77418182, 1778000001.0, 7.5)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("p", "1e200"),  # finite, but no venue quotes that
        ("p", "1e-300"),
        ("i", "1e12"),
        ("r", "5"),  # 500 % per interval
        ("r", "-inf"),
        ("E", 17780000010000),  # ten times too large: year 2533
        ("T", -1),
    ],
)
def test_absurd_magnitudes_are_refused(field: str, value: object) -> None:
    u = json.loads(_frame("ws_markPriceUpdate.json"))
    u[field] = value
    with pytest.raises(ParseError, match="out of bounds"):
        parse(json.dumps(u), 0.0)


@pytest.mark.parametrize(
    "bad",
    [{"p": "NaN"}, {"p": "1e200"}, {"p": ["x"]}, {"E": "soon"}, {"s": ""}, {"r": "7"}],
    ids=["nan", "absurd", "wrong_type", "bad_time", "no_symbol", "absurd_rate"],
)
@pytest.mark.parametrize("wrapped", [False, True], ids=["bare", "combined"])
def test_one_bad_entry_of_the_all_market_array_costs_that_entry_only(
    bad: dict[str, object], wrapped: bool
) -> None:
    arr = _arr(**bad)
    frame = json.dumps({"stream": "!markPrice@arr@1s", "data": arr} if wrapped else arr)
    refused: list[ParseError] = []
    events = parse(frame, 7.5, refused=refused)
    assert events[0] == ETH_MARK  # ETHUSDT, the good entry, is delivered
    assert [type(e) for e in events] == [MarkPrice, FundingRate]
    (err,) = refused
    assert err.venue == VENUE
    assert '"BTCUSDT"' in err.frame or '"s":""' in err.frame  # the entry's own text
    with pytest.raises(ParseError):  # without a list to collect refusals: strict
        parse(frame, 7.5)


def test_frame_parser_keeps_refused_entries_until_taken() -> None:
    p = BinanceParser()
    parsed = p.parse_frame(json.dumps(_arr(p="NaN")), 7.5)
    assert parsed.channel == "markPrice"
    assert parsed.events[0] == ETH_MARK
    (err,) = p.take_refused()
    assert "mark price out of bounds" in err.problem
    assert p.take_refused() == []


def test_array_whose_every_entry_is_refused_is_not_data() -> None:
    arr = _arr(p="NaN")
    arr[1]["p"] = "-3"
    p = BinanceParser()
    parsed = p.parse_frame(json.dumps(arr), 7.5)
    assert (parsed.channel, parsed.events) == (None, [])  # the channel's silence goes on
    assert len(p.take_refused()) == 2


def test_symbol_filter_keeps_only_the_watched_symbols_and_still_counts_as_data() -> None:
    p = BinanceParser(symbols={"ETHUSDT"})
    parsed = p.parse_frame(_frame("ws_markPrice_arr.json"), 7.5)
    assert parsed.channel == "markPrice"
    assert [e.symbol for e in parsed.events] == ["ETHUSDT", "ETHUSDT"]
    other = BinanceParser(symbols={"SOLUSDT"}).parse_frame(_frame("ws_markPrice_arr.json"), 7.5)
    assert (other.channel, other.events) == ("markPrice", [])


def test_known_intervals_can_be_replaced_once_metadata_arrives() -> None:
    p = BinanceParser()
    before = p.parse(_frame("ws_markPriceUpdate.json"), 7.5)[1]
    p.set_intervals({"BTCUSDT": 4.0})
    after = p.parse(_frame("ws_markPriceUpdate.json"), 7.5)[1]
    assert isinstance(before, FundingRate)
    assert isinstance(after, FundingRate)
    assert (before.interval_hours, after.interval_hours) == (8.0, 4.0)


def test_recorded_funding_intervals_are_read_back_and_checked() -> None:
    p = BinanceParser()
    assert p.parse_rest("fundingIntervals", b'{"BTCUSDT": 4}', 0.0) == []
    funding = p.parse(_frame("ws_markPriceUpdate.json"), 7.5)[1]
    assert isinstance(funding, FundingRate)
    assert funding.interval_hours == 4.0
    for body in (b"[]", b'{"BTCUSDT": 0}', b'{"BTCUSDT": 1e9}', b'{"BTCUSDT": "8"}', b"x"):
        with pytest.raises(ParseError):
            p.parse_rest("fundingIntervals", body, 0.0)


MUTANTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["NaN", "inf", "-inf", "1e200", "-1", "0", "1e-300", "", "x", "95041.2"]),
    st.text(max_size=8),
    st.lists(st.integers(), max_size=2),
)


@settings(max_examples=300, deadline=None)
@given(
    field=st.sampled_from(["e", "E", "s", "p", "i", "r", "T"]),
    value=MUTANTS,
    index=st.integers(min_value=0, max_value=1),
    wrapped=st.booleans(),
)
def test_mutated_array_entries_are_refused_one_by_one_and_never_leak(
    field: str, value: object, index: int, wrapped: bool
) -> None:
    from monitor.venues.binance.parse import MAX_ABS_RATE, MAX_PRICE, MIN_PRICE

    arr = json.loads(_frame("ws_markPrice_arr.json"))
    arr[index][field] = value
    frame = json.dumps({"stream": "!markPrice@arr@1s", "data": arr} if wrapped else arr)
    p = BinanceParser()
    parsed = p.parse_frame(frame, 1.0)  # an array never raises for one bad entry
    refused = p.take_refused()
    symbols = {e.symbol for e in parsed.events}
    assert len(symbols) + len(refused) == 2  # each entry: delivered or refused, never both
    assert arr[1 - index]["s"] in symbols  # the untouched entry always gets through
    for e in parsed.events:
        if isinstance(e, MarkPrice):
            assert MIN_PRICE <= e.mark <= MAX_PRICE
            assert e.oracle is None or MIN_PRICE <= e.oracle <= MAX_PRICE
        else:
            assert isinstance(e, FundingRate)
            assert abs(e.rate) <= MAX_ABS_RATE


def test_refusals_nobody_takes_are_capped() -> None:
    from monitor.venues.binance.parse import KEEP_REFUSED

    p = BinanceParser()
    frame = json.dumps(_arr(p="NaN"))
    for _ in range(KEEP_REFUSED + 5):
        p.parse(frame, 1.0)  # as a replay would, never taking them
    assert len(p.take_refused()) == KEEP_REFUSED
