from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.model.events import (
    AccountSnapshot,
    FundingPayment,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
)
from monitor.model.instruments import MarginMode
from monitor.venues.hyperliquid.parse import HyperliquidParser, account_name, parse

HL = Path(__file__).parents[2] / "fixtures" / "feeds" / "hyperliquid"
USER = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"


def raw(name: str) -> str:
    return (HL / name).read_text()


def doc(name: str) -> Any:
    return json.loads(raw(name))


def test_active_asset_ctx_gives_mark_oracle_and_hourly_funding() -> None:
    parsed = HyperliquidParser().parse_frame(raw("ws_activeAssetCtx.json"), 1_778_000_000.5)
    assert parsed.channel == "activeAssetCtx:BTC"
    mark, funding = parsed.events
    assert mark == MarkPrice("hyperliquid", "BTC", 95031.0, 95012.0, None, 1_778_000_000.5)
    assert isinstance(funding, FundingRate)
    assert funding.rate == pytest.approx(0.0000125)  # "funding": "0.0000125", longs pay
    assert funding.interval_hours == 1.0
    assert funding.ts_recv == 1_778_000_000.5


def test_clearinghouse_state_push_becomes_snapshot_with_both_margin_modes() -> None:
    parsed = HyperliquidParser().parse_frame(raw("ws_clearinghouseState.json"), 5.0)
    assert parsed.channel == f"clearinghouseState:{USER}"
    (snap,) = parsed.events
    assert isinstance(snap, AccountSnapshot)
    assert snap.account == USER
    # cross collateral = totalRawUsd + Σ_cross szi·entryPx = -4190 + 0.05·93800 = 500
    assert snap.cross_collateral == pytest.approx(-4190.0 + 0.05 * 93800.0)
    btc, eth = snap.positions
    assert (btc.symbol, btc.size, btc.margin_mode) == ("BTC", 0.05, MarginMode.CROSS)
    assert btc.venue_liquidation_price == pytest.approx(84860.76)
    assert (eth.symbol, eth.size, eth.margin_mode) == ("ETH", -1.2, MarginMode.ISOLATED)
    # isolated margin = rawUsd + szi·entryPx = 5097.744 - 1.2·3540.1
    assert eth.isolated_margin == pytest.approx(5097.744 - 1.2 * 3540.1)
    assert snap.venue_equity == pytest.approx(561.55)
    assert snap.ts_recv == 5.0


def test_clearinghouse_state_of_a_hip3_dex_is_its_own_account() -> None:
    d = doc("ws_clearinghouseState.json")
    d["data"]["dex"] = "xyz"
    (snap,) = HyperliquidParser().parse(json.dumps(d), 0.0)
    assert isinstance(snap, AccountSnapshot)
    assert snap.account == f"{USER}@xyz" == account_name(USER, "xyz")


def test_older_clearinghouse_state_is_refused() -> None:
    p = HyperliquidParser()
    d = doc("ws_clearinghouseState.json")
    t = d["data"]["clearinghouseState"]["time"]
    p.parse(json.dumps(d), 0.0)
    d["data"]["clearinghouseState"]["time"] = t - 1000
    with pytest.raises(ParseError, match="out-of-order"):
        p.parse(json.dumps(d), 1.0)
    d["data"]["clearinghouseState"]["time"] = t + 1000
    assert len(p.parse(json.dumps(d), 2.0)) == 1


def _fundings(entries: list[tuple[int, str, str]], snapshot: bool) -> str:
    data: dict[str, Any] = {
        "user": USER,
        "fundings": [
            {
                "time": t,
                "coin": coin,
                "usdc": usdc,
                "szi": "0.05",
                "fundingRate": "0.0000125",
                "nSamples": None,
            }
            for t, coin, usdc in entries
        ],
    }
    if snapshot:
        data["isSnapshot"] = True
    return json.dumps({"channel": "userFundings", "data": data})


def test_user_fundings_are_emitted_once_even_when_the_snapshot_repeats() -> None:
    p = HyperliquidParser()
    h = 3_600_000
    snap = _fundings([(h, "BTC", "-0.059"), (2 * h, "BTC", "-0.06"), (2 * h, "ETH", "0.04")], True)
    first = p.parse_frame(snap, 10.0)
    assert first.channel == f"userFundings:{USER}"
    assert [
        (e.symbol, e.amount, e.ts_event) for e in first.events if isinstance(e, FundingPayment)
    ] == [
        ("BTC", -0.059, 3600.0),
        ("BTC", -0.06, 7200.0),
        ("ETH", 0.04, 7200.0),
    ]
    # after a reconnect the snapshot comes again, plus one new payment
    again = _fundings(
        [(2 * h, "BTC", "-0.06"), (2 * h, "ETH", "0.04"), (3 * h, "BTC", "-0.061")], True
    )
    assert [
        (e.symbol, e.amount) for e in p.parse(again, 20.0) if isinstance(e, FundingPayment)
    ] == [("BTC", -0.061)]
    update = _fundings([(4 * h, "BTC", "-0.05")], False)  # isSnapshot absent on updates
    (payment,) = p.parse(update, 30.0)
    assert isinstance(payment, FundingPayment)
    assert (payment.account, payment.amount, payment.rate) == (USER, -0.05, 0.0000125)


@pytest.mark.parametrize(
    "name", ["ws_pong.json", "ws_subscriptionResponse_allMids.json", "ws_allMids.json"]
)
def test_control_frames_give_no_events(name: str) -> None:
    parsed = HyperliquidParser().parse_frame(raw(name), 0.0)
    assert parsed.events == []
    assert parsed.channel is None
    assert parsed.pong == (name == "ws_pong.json")


def test_greeting_text_is_ignored_but_other_text_is_an_error() -> None:
    assert HyperliquidParser().parse("Websocket connection established.", 0.0) == []
    with pytest.raises(ParseError, match="not JSON"):
        HyperliquidParser().parse("hello there", 0.0)


def test_error_frame_raises_but_already_subscribed_is_harmless() -> None:
    with pytest.raises(ParseError, match="venue error") as info:
        parse(raw("ws_error.json"), 0.0)
    assert info.value.venue == "hyperliquid"
    assert '"channel": "error"' in info.value.frame
    ok = json.dumps({"channel": "error", "data": "Already subscribed: {...}"})
    assert parse(ok, 0.0) == []


@pytest.mark.parametrize(
    ("mutate", "problem"),
    [
        (lambda c: c.update(markPx="NaN"), "finite"),
        (lambda c: c.update(markPx=""), "not a number"),
        (lambda c: c.update(markPx="-5"), "positive"),
        (lambda c: c.update(markPx=None), "expected a number"),
        (lambda c: c.update(markPx=[1]), "expected a number"),
        (lambda c: c.update(oraclePx="0"), "positive"),
        (lambda c: c.update(funding="abc"), "not a number"),
    ],
)
def test_bad_asset_ctx_values_raise_parse_error(mutate: Any, problem: str) -> None:
    d = doc("ws_activeAssetCtx.json")
    mutate(d["data"]["ctx"])
    with pytest.raises(ParseError, match=problem):
        parse(json.dumps(d), 0.0)


@pytest.mark.parametrize(
    "frame",
    [
        "[]",
        '{"channel": "activeAssetCtx"}',
        '{"channel": "activeAssetCtx", "data": {"coin": "BTC", "ctx": 5}}',
        '{"channel": "nope", "data": {}}',
        '{"channel": "clearinghouseState", "data": {"user": "0xa", "clearinghouseState": {}}}',
        '{"channel": "userFundings", "data": {"user": "0xa", "fundings": [{"time": 1}]}}',
    ],
)
def test_wrong_shapes_raise_parse_error(frame: str) -> None:
    with pytest.raises(ParseError):
        HyperliquidParser().parse(frame, 0.0)


def test_meta_and_asset_ctxs_give_tiered_specs_marks_and_funding() -> None:
    events = HyperliquidParser().parse_rest(
        "metaAndAssetCtxs", raw("rest_info_metaAndAssetCtxs_response.json"), 7.0
    )
    specs = {e.instrument.symbol: e.instrument for e in events if isinstance(e, InstrumentSpec)}
    marks = {e.symbol: e for e in events if isinstance(e, MarkPrice)}
    assert set(specs) == {"BTC", "ETH", "SOL", "LOOM"}
    btc = specs["BTC"].maintenance
    # table 56: [0, 40x] then [150M, 20x]: rates 1/(2·40)=0.0125 and 1/(2·20)=0.025;
    # deduction 150e6·(0.025-0.0125) = 1.875e6
    assert [t.floor for t in btc.tiers] == [0.0, 150_000_000.0]
    assert [t.rate for t in btc.tiers] == pytest.approx([0.0125, 0.025])
    assert btc.tiers[1].deduction == pytest.approx(150e6 * (0.025 - 0.0125))
    assert specs["BTC"].funding_interval_hours == 1.0
    # LOOM: table 3 is not listed, so maxLeverage 3 → 1/(2·3); strictIsolated
    assert specs["LOOM"].maintenance.tiers[0].rate == pytest.approx(1 / 6)
    assert specs["LOOM"].only_isolated
    assert not specs["ETH"].only_isolated
    assert (marks["ETH"].mark, marks["ETH"].oracle) == (3512.45, 3512.6)
    funding = {e.symbol: e.rate for e in events if isinstance(e, FundingRate)}
    assert funding["ETH"] == pytest.approx(-0.0000042)


def test_meta_of_a_hip3_dex_prefixes_coin_names() -> None:
    events = HyperliquidParser().parse_rest(
        "metaAndAssetCtxs:xyz", raw("rest_info_metaAndAssetCtxs_response.json"), 0.0
    )
    assert {e.instrument.symbol for e in events if isinstance(e, InstrumentSpec)} == {
        "xyz:BTC",
        "xyz:ETH",
        "xyz:SOL",
        "xyz:LOOM",
    }


def test_rest_clearinghouse_state_names_the_account_from_the_channel() -> None:
    (snap,) = HyperliquidParser().parse_rest(
        f"clearinghouseState:{USER}", raw("rest_info_clearinghouseState_response.json"), 3.0
    )
    assert isinstance(snap, AccountSnapshot)
    assert snap.account == USER
    assert len(snap.positions) == 2


def test_meta_with_a_missing_ctx_costs_only_the_unpaired_entry() -> None:
    d = doc("rest_info_metaAndAssetCtxs_response.json")
    d[1].pop()
    p = HyperliquidParser()
    events = p.parse_rest("metaAndAssetCtxs", json.dumps(d), 0.0)
    specs = [e.instrument.symbol for e in events if isinstance(e, InstrumentSpec)]
    assert specs == ["BTC", "ETH", "SOL"]  # LOOM, the 4th entry, has no context left
    assert p.bad_entries == 1
    assert "asset contexts" in p.entry_problems[0]


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200)))
def test_arbitrary_bytes_never_raise_anything_but_parse_error(frame: bytes | str) -> None:
    with contextlib.suppress(ParseError):
        HyperliquidParser().parse(frame, 0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    ),
    st.sampled_from(["activeAssetCtx", "clearinghouseState", "userFundings", "pong", "error"]),
)
def test_wrongly_typed_data_never_raises_anything_but_parse_error(data: Any, channel: str) -> None:
    frame = json.dumps({"channel": channel, "data": data})
    with contextlib.suppress(ParseError):
        HyperliquidParser().parse(frame, 0.0)


def test_mixed_case_addresses_name_the_lower_case_account() -> None:
    d = doc("ws_clearinghouseState.json")
    d["data"]["user"] = USER.upper().replace("0X", "0x")
    (snap,) = HyperliquidParser().parse(json.dumps(d), 0.0)
    assert isinstance(snap, AccountSnapshot)
    assert snap.account == USER


def test_funding_is_emitted_again_only_when_it_changes() -> None:
    p = HyperliquidParser()
    first = p.parse(raw("ws_activeAssetCtx.json"), 1.0)
    assert [type(e).__name__ for e in first] == ["MarkPrice", "FundingRate"]
    same = p.parse_frame(raw("ws_activeAssetCtx.json"), 2.0)
    assert [type(e).__name__ for e in same.events] == ["MarkPrice"]
    assert same.channel == "activeAssetCtx:BTC"
    d = doc("ws_activeAssetCtx.json")
    d["data"]["ctx"]["funding"] = "-0.00002"
    (_mark, funding) = p.parse(json.dumps(d), 3.0)
    assert isinstance(funding, FundingRate)
    assert funding.rate == pytest.approx(-0.00002)  # shorts pay now
    # the REST metadata always carries funding (a fresh start after a gap)
    rest = p.parse_rest("metaAndAssetCtxs", raw("rest_info_metaAndAssetCtxs_response.json"), 4.0)
    assert sum(isinstance(e, FundingRate) for e in rest) == 4


def test_fast_and_validating_paths_agree() -> None:
    frame = raw("ws_activeAssetCtx.json")
    fast = HyperliquidParser().parse(frame, 1.0)
    full = HyperliquidParser().parse_frame(frame, 1.0).events
    assert fast == full
    d = doc("ws_activeAssetCtx.json")
    d["data"]["ctx"]["markPx"] = 95031.0  # a JSON number: validating path, same result
    assert HyperliquidParser().parse(json.dumps(d), 1.0) == fast


def test_a_rest_state_older_than_the_last_push_is_skipped_quietly() -> None:
    p = HyperliquidParser()
    d = doc("ws_clearinghouseState.json")
    d["data"]["clearinghouseState"]["time"] += 5_000
    p.parse(json.dumps(d), 0.0)
    body = raw("rest_info_clearinghouseState_response.json")  # 5 s older than the push
    assert p.parse_rest(f"clearinghouseState:{USER}", body, 1.0) == []
    assert p.stale_rest_snapshots == 1
