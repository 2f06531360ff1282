from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.model.events import FundingRate, MarkPrice
from monitor.venues.okx.parse import VENUE, OkxParser, parse

FIX = Path(__file__).parents[2] / "fixtures" / "feeds" / "okx"


def _frame(name: str) -> bytes:
    return (FIX / name).read_bytes()


def test_mark_price_push_gives_mark_without_oracle() -> None:
    # markPx "95038.7", ts "1778000001200" ms
    assert parse(_frame("ws_mark-price.json"), 2.0) == [
        MarkPrice(VENUE, "BTC-USDT-SWAP", 95038.7, None, 1778000001.2, 2.0)
    ]


def test_funding_push_gives_rate_interval_and_settlement_time() -> None:
    # fundingTime 1778025600000, nextFundingTime 1778054400000: (54400000-25600000)... = 28.8e6 ms
    # = 8 h; the current rate settles at fundingTime.
    assert parse(_frame("ws_funding-rate.json"), 2.0) == [
        FundingRate(VENUE, "BTC-USDT-SWAP", 0.0000652, 8.0, 1778025600.0, 1778000001.5, 2.0)
    ]


def test_four_hour_schedule_is_read_from_the_times() -> None:
    msg = json.loads(_frame("ws_funding-rate.json"))
    msg["data"][0]["nextFundingTime"] = str(1778025600000 + 4 * 3_600_000)
    msg["data"][0]["fundingRate"] = "-0.0003"
    (f,) = parse(json.dumps(msg), 0.0)
    assert isinstance(f, FundingRate)
    assert (f.interval_hours, f.rate) == (4.0, -0.0003)


@pytest.mark.parametrize(
    "frame",
    [
        "pong",
        b"pong",
        (FIX / "ws_subscribe_response_mark-price.json").read_bytes(),
        (FIX / "ws_subscribe_response_funding-rate.json").read_bytes(),
    ],
)
def test_pong_and_acks_give_no_events(frame: str | bytes) -> None:
    assert parse(frame, 0.0) == []


def test_error_event_raises_parse_error_with_code() -> None:
    with pytest.raises(ParseError) as info:
        parse(_frame("ws_error.json"), 0.0)
    assert info.value.venue == VENUE
    assert "60018" in info.value.problem


@pytest.mark.parametrize(
    ("field", "value"),
    [("markPx", "NaN"), ("markPx", ""), ("markPx", "-1"), ("instId", ""), ("ts", "x")],
)
def test_bad_mark_values_raise_parse_error(field: str, value: str) -> None:
    msg = json.loads(_frame("ws_mark-price.json"))
    msg["data"][0][field] = value
    with pytest.raises(ParseError):
        parse(json.dumps(msg), 0.0)


@pytest.mark.parametrize(
    "frame",
    [
        b"",
        b"ping",
        b"[]",
        b'{"arg":{"channel":"tickers"},"data":[]}',
        b'{"arg":{"channel":"mark-price"},"data":{}}',
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


def test_frame_parser_names_the_channel_of_each_push() -> None:
    p = OkxParser()
    assert p.parse_frame(_frame("ws_mark-price.json"), 1.0).channel == "mark-price"
    assert p.parse_frame(_frame("ws_funding-rate.json"), 1.0).channel == "funding-rate"
    assert p.parse_frame("pong", 1.0).channel is None
    assert p.parse(_frame("ws_mark-price.json"), 1.0) == parse(_frame("ws_mark-price.json"), 1.0)
    with pytest.raises(ParseError):
        p.parse_rest("instruments", b"{}", 0.0)


def test_module_is_pure_no_io_or_clock_imports() -> None:
    import ast
    import importlib

    module = importlib.import_module("monitor.venues.okx.parse")
    source = Path(module.__file__ or "").read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    io = {"asyncio", "socket", "websockets", "aiohttp", "aiosqlite", "apprise", "ccxt", "time"}
    assert imported.isdisjoint(io), imported & io


# -- bounds, per-item isolation and keepalive (issues 10.1, 10.4, 12.7) -----------------------
@pytest.mark.parametrize(
    ("name", "field", "value"),
    [
        ("ws_mark-price.json", "markPx", "1e200"),
        ("ws_mark-price.json", "markPx", "0"),
        ("ws_mark-price.json", "ts", "17780000012000"),
        ("ws_funding-rate.json", "fundingRate", "2"),
        ("ws_funding-rate.json", "fundingRate", "nan"),
        ("ws_funding-rate.json", "fundingTime", "-5"),
    ],
)
def test_absurd_magnitudes_are_refused(name: str, field: str, value: str) -> None:
    msg = json.loads(_frame(name))
    msg["data"][0][field] = value
    with pytest.raises(ParseError, match="out of bounds"):
        parse(json.dumps(msg), 0.0)


@pytest.mark.parametrize("bad", ["1e200", ["x"], None], ids=["absurd", "wrong_type", "null"])
def test_one_bad_item_of_a_push_costs_that_item_only(bad: object) -> None:
    msg = json.loads(_frame("ws_mark-price.json"))
    good = dict(msg["data"][0], instId="ETH-USDT-SWAP", markPx="3513.2")
    msg["data"] = [dict(msg["data"][0], markPx=bad), good]
    p = OkxParser()
    parsed = p.parse_frame(json.dumps(msg), 1.0)
    assert parsed.channel == "mark-price"
    # the good item: markPx "3513.2", ts "1778000001200" ms
    assert parsed.events == [MarkPrice(VENUE, "ETH-USDT-SWAP", 3513.2, None, 1778000001.2, 1.0)]
    (err,) = p.take_refused()
    assert "BTC-USDT-SWAP" in err.frame
    assert p.take_refused() == []
    with pytest.raises(ParseError):  # without a list to collect refusals: strict
        parse(json.dumps(msg), 1.0)


def test_push_whose_every_item_is_refused_is_not_data() -> None:
    msg = json.loads(_frame("ws_mark-price.json"))
    msg["data"][0]["markPx"] = "NaN"
    p = OkxParser()
    parsed = p.parse_frame(json.dumps(msg), 1.0)
    assert (parsed.channel, parsed.events) == (None, [])
    assert len(p.take_refused()) == 1


def test_text_pong_answers_the_keepalive() -> None:
    assert OkxParser().parse_frame("pong", 1.0).pong
    assert not OkxParser().parse_frame(_frame("ws_subscribe_response_mark-price.json"), 1.0).pong


MUTANTS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["NaN", "inf", "1e200", "-1", "0", "1e-300", "", "x", "95038.7"]),
    st.text(max_size=8),
)


@settings(max_examples=300, deadline=None)
@given(
    name=st.sampled_from(["ws_mark-price.json", "ws_funding-rate.json"]),
    field=st.sampled_from(
        ["instId", "markPx", "ts", "fundingRate", "fundingTime", "nextFundingTime"]
    ),
    value=MUTANTS,
    index=st.integers(min_value=0, max_value=1),
)
def test_mutated_items_are_refused_one_by_one_and_never_leak(
    name: str, field: str, value: object, index: int
) -> None:
    from monitor.model.events import Event
    from monitor.venues.okx.parse import MAX_ABS_RATE, MAX_PRICE, MIN_PRICE

    msg = json.loads(_frame(name))
    other = dict(msg["data"][0], instId="ETH-USDT-SWAP")
    msg["data"].append(other)
    msg["data"][index][field] = value
    p = OkxParser()
    parsed = p.parse_frame(json.dumps(msg), 1.0)
    refused = p.take_refused()
    events: list[Event] = parsed.events
    assert len({e.symbol for e in events}) + len(refused) == 2  # type: ignore[union-attr]
    for e in events:
        if isinstance(e, MarkPrice):
            assert MIN_PRICE <= e.mark <= MAX_PRICE
        else:
            assert isinstance(e, FundingRate)
            assert abs(e.rate) <= MAX_ABS_RATE
            assert e.interval_hours > 0
