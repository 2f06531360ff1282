from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import InputError, ParseError
from monitor.model.events import (
    AccountSnapshot,
    BalanceUpdate,
    FundingRate,
    InstrumentSpec,
    MarkPrice,
    PositionUpdate,
)
from monitor.model.instruments import MarginMode
from monitor.model.portfolio import Portfolio
from monitor.model.positions import ScopeKey
from monitor.venues.dydx.parse import VENUE, DydxParser
from monitor.venues.parsing import Bad, parse_error

DY = Path(__file__).parents[2] / "fixtures" / "feeds" / "dydx"
ADDR = "dydx1q8m3v5x9ljk2h7s0w4e6r8t0y2u4i6o8p0a2s4"
ACCOUNT = f"{ADDR}/0"
#: a receive time just after the fixtures' effectiveAt (2026-05-05T16:53:21Z)
NOW = 1_778_000_010.0


def raw(name: str) -> str:
    return (DY / name).read_text()


def doc(name: str) -> Any:
    return json.loads(raw(name))


def with_markets() -> DydxParser:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), 0.0)
    return p


def test_markets_snapshot_gives_specs_oracle_marks_and_hourly_funding() -> None:
    parsed = DydxParser().parse_frame(raw("ws_subscribed_v4_markets.json"), 2.0)
    assert parsed.channel == "v4_markets"
    specs = {
        e.instrument.symbol: e.instrument for e in parsed.events if isinstance(e, InstrumentSpec)
    }
    marks = {e.symbol: e for e in parsed.events if isinstance(e, MarkPrice)}
    funding = {e.symbol: e for e in parsed.events if isinstance(e, FundingRate)}
    assert set(specs) == {"BTC-USD", "ETH-USD", "TRUMP-USD"}
    btc = specs["BTC-USD"]
    assert btc.venue == VENUE
    assert btc.maintenance.tiers[0].rate == pytest.approx(0.012)  # MMF
    assert btc.initial_margin_rate == pytest.approx(0.02)  # IMF (no OI caps: upper = lower = 0)
    assert btc.funding_interval_hours == 1.0
    # TRUMP-USD has OI caps: f = (84512·11.2345 − 500000)/(1000000 − 500000); IMF = .05 + f·.95
    f = (84512 * 11.2345 - 500_000) / 500_000
    assert specs["TRUMP-USD"].initial_margin_rate == pytest.approx(0.05 + f * 0.95)
    assert (marks["BTC-USD"].mark, marks["BTC-USD"].oracle) == (95018.54, 95018.54)
    assert funding["ETH-USD"].rate == pytest.approx(-0.00000112)
    assert funding["ETH-USD"].interval_hours == 1.0


def test_rest_perpetual_markets_is_the_same_as_the_ws_snapshot() -> None:
    a = DydxParser().parse_rest("perpetualMarkets", raw("rest_perpetualMarkets.json"), 1.0)
    b = DydxParser().parse(raw("ws_subscribed_v4_markets.json"), 1.0)
    assert a == b


def test_oracle_price_update_gives_mark_equal_to_oracle_with_event_time() -> None:
    p = with_markets()
    parsed = p.parse_frame(raw("ws_channel_data_v4_markets_oraclePrices.json"), NOW)
    assert parsed.channel == "v4_markets"
    btc, eth = parsed.events
    assert isinstance(btc, MarkPrice)
    assert (btc.symbol, btc.mark, btc.oracle) == ("BTC-USD", 95021.07, 95021.07)
    # effectiveAt 2026-05-05T16:53:21.512Z
    assert btc.ts_event == pytest.approx(1_778_000_001.512)
    assert isinstance(eth, MarkPrice)
    assert eth.mark == 3512.994


def test_older_oracle_price_is_dropped() -> None:
    p = with_markets()
    p.parse(raw("ws_channel_batch_data_v4_markets.json"), NOW)  # BTC at height 61234570
    older = raw("ws_channel_data_v4_markets_oraclePrices.json")  # height 61234569
    assert [e.symbol for e in p.parse(older, NOW)] == ["ETH-USD"]


def test_trading_update_gives_funding_and_respecs_only_when_margin_changes() -> None:
    p = with_markets()
    events = p.parse(raw("ws_channel_data_v4_markets_trading.json"), 0.0)
    assert [type(e).__name__ for e in events] == ["FundingRate"]
    assert isinstance(events[0], FundingRate)
    assert events[0].rate == pytest.approx(0.00000571)
    change = {
        "type": "channel_data",
        "channel": "v4_markets",
        "contents": {"trading": {"BTC-USD": {"maintenanceMarginFraction": "0.03"}}},
    }
    (spec,) = p.parse(json.dumps(change), 0.0)
    assert isinstance(spec, InstrumentSpec)
    assert spec.instrument.maintenance.tiers[0].rate == pytest.approx(0.03)
    assert spec.instrument.initial_margin_rate == pytest.approx(0.02)  # kept from the snapshot


def test_batched_update_handles_every_item() -> None:
    events = with_markets().parse(raw("ws_channel_batch_data_v4_markets.json"), NOW)
    assert [
        (type(e).__name__, e.symbol) for e in events if isinstance(e, MarkPrice | FundingRate)
    ] == [
        ("MarkPrice", "BTC-USD"),
        ("FundingRate", "ETH-USD"),
    ]


def test_subaccount_snapshot_then_delta_drive_the_engine() -> None:
    p = with_markets()
    snap_parsed = p.parse_frame(raw("ws_subscribed_v4_subaccounts.json"), 0.0)
    assert snap_parsed.channel == f"v4_subaccounts:{ACCOUNT}"
    (snap,) = snap_parsed.events
    assert isinstance(snap, AccountSnapshot)
    assert snap.account == ACCOUNT
    # collateral excl. uPnL = USDC + s·entry = 2623.746886 + 0.1·93750.5
    assert snap.cross_collateral == pytest.approx(2623.746886 + 0.1 * 93750.5)

    delta = p.parse(raw("ws_channel_data_v4_subaccounts.json"), 1.0)
    pos_update, balance = delta
    assert isinstance(pos_update, PositionUpdate)
    assert (pos_update.position.size, pos_update.position.entry_price) == (0.15, 94174.0)
    assert pos_update.position.margin_mode is MarginMode.CROSS
    assert isinstance(balance, BalanceUpdate)
    assert balance.cross_cash == pytest.approx(-2127.303114)  # SHORT USDC is negative

    engine = Portfolio()
    for e in [*p.parse(raw("ws_subscribed_v4_markets.json"), 0.0), snap, *delta]:
        engine.apply(e)
    equity, mm = engine.aggregates(ScopeKey(VENUE, ACCOUNT, "cross"))
    # equity = Q + s·oracle = -2127.303114 + 0.15·95018.54; MMR = |s|·oracle·MMF
    assert equity == pytest.approx(-2127.303114 + 0.15 * 95018.54)
    assert mm == pytest.approx(0.15 * 95018.54 * 0.012)


def test_closed_and_liquidated_positions_become_size_zero_updates() -> None:
    p = with_markets()
    p.parse(raw("ws_subscribed_v4_subaccounts.json"), 0.0)
    d = doc("ws_channel_data_v4_subaccounts.json")
    d["contents"]["perpetualPositions"][0]["status"] = "LIQUIDATED"
    del d["contents"]["assetPositions"]
    (update,) = p.parse(json.dumps(d), 0.0)
    assert isinstance(update, PositionUpdate)
    assert update.position.size == 0.0
    assert update.liquidated


def test_out_of_order_subaccount_block_is_refused() -> None:
    p = with_markets()
    p.parse(raw("ws_subscribed_v4_subaccounts.json"), 0.0)
    d = doc("ws_channel_data_v4_subaccounts.json")
    d["contents"]["blockHeight"] = "61234000"  # below the snapshot's 61234567
    with pytest.raises(ParseError, match="out-of-order"):
        p.parse(json.dumps(d), 0.0)


def test_delta_before_snapshot_is_refused() -> None:
    with pytest.raises(ParseError, match="before its snapshot"):
        with_markets().parse(raw("ws_channel_data_v4_subaccounts.json"), 0.0)


def _parent_snapshot() -> dict[str, Any]:
    sub = doc("rest_subaccount.json")["subaccount"]
    child = {
        "address": ADDR,
        "subaccountNumber": 128,
        "equity": "0",
        "freeCollateral": "0",
        "openPerpetualPositions": {
            "ETH-USD": {
                "market": "ETH-USD",
                "status": "OPEN",
                "side": "SHORT",
                "size": "-2",
                "entryPrice": "3500",
                "subaccountNumber": 128,
            }
        },
        "assetPositions": {
            "USDC": {"size": "7500", "symbol": "USDC", "side": "LONG", "assetId": "0"}
        },
    }
    return {
        "type": "subscribed",
        "channel": "v4_parent_subaccounts",
        "id": f"{ADDR}/0",
        "contents": {
            "subaccount": {
                "address": ADDR,
                "parentSubaccountNumber": 0,
                "equity": "0",
                "freeCollateral": "0",
                "childSubaccounts": [sub, child],
            },
            "blockHeight": "100",
        },
    }


def _delta(contents: dict[str, Any], channel: str = "v4_parent_subaccounts") -> str:
    return json.dumps(
        {"type": "channel_data", "channel": channel, "id": f"{ADDR}/0", "contents": contents}
    )


def test_parent_subscription_reports_one_pool_per_subaccount() -> None:
    p = with_markets()
    parsed = p.parse_frame(json.dumps(_parent_snapshot()), 0.0)
    assert parsed.channel == f"v4_parent_subaccounts:{ADDR}/0"
    parent, child = parsed.events
    assert isinstance(parent, AccountSnapshot) and isinstance(child, AccountSnapshot)
    assert (parent.account, child.account) == (ACCOUNT, f"{ADDR}/128")
    (eth,) = child.positions
    assert eth.margin_mode is MarginMode.CROSS  # the child's own pool
    # child collateral excl. uPnL = its USDC + s·entry = 7500 − 2·3500
    assert child.cross_collateral == pytest.approx(7500 - 2 * 3500)
    # the parent's pool: its own USDC 2623.746886 + 0.1·93750.5, nothing of the child's
    assert parent.cross_collateral == pytest.approx(2623.746886 + 0.1 * 93750.5)

    # the child's USDC moves: the child's pool changes, the parent's does not
    (update,) = p.parse(
        _delta(
            {
                "assetPositions": [
                    {"subaccountNumber": 128, "symbol": "USDC", "side": "LONG", "size": "8000"}
                ],
                "blockHeight": "101",
            }
        ),
        1.0,
    )
    assert update == BalanceUpdate(VENUE, f"{ADDR}/128", cross_cash=8000.0, ts_recv=1.0)

    # the child's position closes: a size-0 update of the child's account, no cash moves
    (closed,) = p.parse(
        _delta(
            {
                "perpetualPositions": [
                    {
                        "subaccountNumber": 128,
                        "market": "ETH-USD",
                        "side": "SHORT",
                        "status": "CLOSED",
                        "size": "0",
                        "entryPrice": "3500",
                    }
                ],
                "blockHeight": "102",
            }
        ),
        2.0,
    )
    assert isinstance(closed, PositionUpdate)
    assert (closed.account, closed.position.size) == (f"{ADDR}/128", 0.0)


def test_a_child_first_seen_in_a_delta_arrives_as_a_snapshot_of_its_own() -> None:
    p = with_markets()
    p.parse(json.dumps(_parent_snapshot()), 0.0)
    events = p.parse(
        _delta(
            {
                "assetPositions": [
                    {"subaccountNumber": 384, "symbol": "USDC", "side": "LONG", "size": "250"}
                ],
                "blockHeight": "101",
            }
        ),
        1.0,
    )
    assert events == [AccountSnapshot(VENUE, f"{ADDR}/384", 250.0, (), ts_recv=1.0)]


def test_a_delta_for_a_subaccount_of_another_parent_is_refused() -> None:
    p = with_markets()
    p.parse(json.dumps(_parent_snapshot()), 0.0)
    frame = _delta(
        {
            "assetPositions": [
                {"subaccountNumber": 129, "symbol": "USDC", "side": "LONG", "size": "1"}
            ]
        }
    )
    with pytest.raises(ParseError, match="not part of this subscription"):
        p.parse(frame, 1.0)
    assert f"{ADDR}/0" in p.resync


_MARKETS = ("BTC-USD", "ETH-USD")


@settings(max_examples=100, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from([0, 128, 256, 384]),
        st.tuples(
            st.integers(-50_000, 50_000),
            st.dictionaries(
                st.sampled_from(_MARKETS),
                st.tuples(
                    st.integers(-20, 20).filter(bool).map(lambda x: x / 10),
                    st.integers(1_000, 100_000),
                ),
                max_size=2,
            ),
        ),
        min_size=1,
        max_size=4,
    ),
    st.lists(
        st.tuples(st.sampled_from([0, 128, 256, 384, 512]), st.integers(-50_000, 50_000)),
        max_size=5,
    ),
)
def test_a_childs_collateral_never_backs_another_subaccounts_positions(
    subs: dict[int, tuple[int, dict[str, tuple[float, int]]]], moves: list[tuple[int, int]]
) -> None:
    """Whatever the children hold and however their USDC moves, each subaccount's pool equity is
    its own USDC + Σ its own s·oracle, and nothing else."""

    def usdc(n: int, q: float) -> dict[str, Any]:
        return {
            "subaccountNumber": n,
            "symbol": "USDC",
            "side": "LONG" if q >= 0 else "SHORT",
            "size": str(abs(q)),
        }

    children = [
        {
            "address": ADDR,
            "subaccountNumber": n,
            "assetPositions": {"USDC": usdc(n, q)},
            "openPerpetualPositions": {
                m: {
                    "market": m,
                    "status": "OPEN",
                    "side": "LONG" if sz > 0 else "SHORT",
                    "size": str(sz),
                    "entryPrice": str(e),
                }
                for m, (sz, e) in pos.items()
            },
        }
        for n, (q, pos) in subs.items()
    ]
    frame = {
        "type": "subscribed",
        "channel": "v4_parent_subaccounts",
        "id": f"{ADDR}/0",
        "contents": {
            "subaccount": {
                "address": ADDR,
                "parentSubaccountNumber": 0,
                "childSubaccounts": children,
            }
        },
    }
    p = with_markets()
    engine = Portfolio()
    for e in p.parse(raw("ws_subscribed_v4_markets.json"), 0.0):
        engine.apply(e)
    for e in p.parse(json.dumps(frame), 0.0):
        engine.apply(e)
    cash = {n: float(q) for n, (q, _) in subs.items()}
    cash.setdefault(0, 0.0)
    for n, q in moves:
        for e in p.parse(_delta({"assetPositions": [usdc(n, q)]}), 1.0):
            engine.apply(e)
        cash[n] = float(q)
    oracle = {m: p.markets[m].oracle_price for m in _MARKETS}
    for n, q in cash.items():
        held = subs.get(n, (0, {}))[1]
        equity, _ = engine.aggregates(ScopeKey(VENUE, f"{ADDR}/{n}", "cross"))
        # equity of subaccount n = its own Q + Σ its own s·oracle
        assert equity == pytest.approx(
            q + sum(sz * oracle[m] for m, (sz, _) in held.items()), abs=1e-6
        )


def test_empty_subscribed_contents_for_unknown_subaccount_gives_no_event() -> None:
    frame = json.dumps(
        {"type": "subscribed", "channel": "v4_subaccounts", "id": f"{ADDR}/9", "contents": {}}
    )
    assert with_markets().parse_frame(frame, 0.0).events == []


def test_control_frames() -> None:
    p = DydxParser()
    assert p.parse_frame(raw("ws_connected.json"), 0.0).channel is None
    assert p.parse(raw("ws_unsubscribed_v4_markets.json"), 0.0) == []


@pytest.mark.parametrize(
    ("frame", "problem"),
    [
        (raw("ws_error.json"), "venue error: Invalid channel"),
        ("not json", "not JSON"),
        ('{"type": "channel_data", "channel": "v4_markets", "contents": {}}', "without"),
        (
            '{"type":"channel_data","channel":"v4_markets","contents":'
            '{"oraclePrices":{"BTC-USD":{"oraclePrice":"NaN"}}}}',
            "finite",
        ),
        (
            '{"type":"channel_data","channel":"v4_markets","contents":'
            '{"oraclePrices":{"BTC-USD":{"oraclePrice":""}}}}',
            "not a number",
        ),
        (
            '{"type":"channel_data","channel":"v4_markets","contents":'
            '{"oraclePrices":{"NOPE-USD":{"oraclePrice":"1"}}}}',
            "unknown market",
        ),
        ('{"type": "wat"}', "unexpected message type"),
    ],
)
def test_bad_frames_raise_parse_error(frame: str, problem: str) -> None:
    with pytest.raises(ParseError, match=problem) as info:
        with_markets().parse(frame, 0.0)
    assert info.value.venue == VENUE


def test_negative_size_on_a_long_position_is_refused() -> None:
    p = with_markets()
    p.parse(raw("ws_subscribed_v4_subaccounts.json"), 0.0)
    d = doc("ws_channel_data_v4_subaccounts.json")
    d["contents"]["perpetualPositions"][0]["size"] = "-0.15"
    with pytest.raises(ParseError, match="negative size"):
        p.parse(json.dumps(d), 0.0)


@settings(max_examples=200, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=20,
    ),
    st.sampled_from(["channel_data", "channel_batch_data", "subscribed"]),
    st.sampled_from(["v4_markets", "v4_subaccounts", "v4_parent_subaccounts"]),
)
def test_wrongly_typed_contents_never_raise_anything_but_parse_error(
    contents: Any, kind: str, channel: str
) -> None:
    frame = json.dumps({"type": kind, "channel": channel, "id": f"{ADDR}/0", "contents": contents})
    p = with_markets()
    p.parse(raw("ws_subscribed_v4_subaccounts.json"), 0.0)
    with contextlib.suppress(ParseError):
        p.parse(frame, 0.0)


def _oracle_frame(entries: dict[str, Any]) -> str:
    return json.dumps(
        {
            "type": "channel_data",
            "channel": "v4_markets",
            "id": None,
            "contents": {"oraclePrices": entries},
        }
    )


def test_fast_path_equals_the_validating_path() -> None:
    frame = raw("ws_channel_data_v4_markets_oraclePrices.json")
    fast = with_markets().parse(frame, NOW)
    full = with_markets().parse_frame(frame, NOW).events
    assert fast == full
    assert len(fast) == 2


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"oraclePrice": 5, "effectiveAtHeight": "1"}, None),  # a JSON number is accepted
        ({"oraclePrice": True, "effectiveAtHeight": "1"}, "expected a number"),
        ({"oraclePrice": "1", "effectiveAtHeight": 7}, None),  # an int height is accepted
        ({"oraclePrice": "1", "effectiveAtHeight": "x"}, "block height"),
        ({"oraclePrice": "1", "effectiveAtHeight": ""}, "block height"),
        ({"oraclePrice": "1", "effectiveAtHeight": "\u00b2"}, "block height"),  # a unicode digit
        ({"oraclePrice": "inf", "effectiveAtHeight": "1"}, "finite"),
        ({"oraclePrice": "0", "effectiveAtHeight": "1"}, "positive"),
        ({"effectiveAtHeight": "1"}, "expected a number"),
        ("nope", "expected an object"),
    ],
)
def test_unusual_oracle_entries_take_the_validating_path(entry: Any, problem: str | None) -> None:
    p = with_markets()
    frame = _oracle_frame({"BTC-USD": entry})
    if problem is None:
        (mark,) = p.parse(frame, 0.0)
        assert isinstance(mark, MarkPrice)
    else:
        with pytest.raises(ParseError, match=problem):
            p.parse(frame, 0.0)


def test_heights_compare_numerically_on_both_paths() -> None:
    p = with_markets()
    at = "2026-05-05T16:53:21.512Z"

    def entry(h: str) -> dict[str, str]:
        return {"oraclePrice": "1", "effectiveAtHeight": h, "effectiveAt": at}

    assert len(p.parse(_oracle_frame({"BTC-USD": entry("100")}), NOW)) == 1
    assert p.parse(_oracle_frame({"BTC-USD": entry("99")}), NOW) == []  # shorter: older
    assert p.parse(_oracle_frame({"BTC-USD": entry("098")}), NOW) == []
    assert len(p.parse(_oracle_frame({"BTC-USD": entry("100")}), NOW)) == 1  # same block
    assert len(p.parse(_oracle_frame({"BTC-USD": entry("1000")}), NOW)) == 1
    assert p.parse_frame(_oracle_frame({"BTC-USD": entry("999")}), NOW).events == []


def _validating(p: DydxParser, frame: str) -> list[Any]:
    """The general (validating) path only, bypassing the fast ones."""
    try:
        return p._frame(json.loads(frame), NOW).events
    except (Bad, InputError) as exc:
        raise parse_error(VENUE, exc, frame) from None


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(["BTC-USD", "ETH-USD", "TRUMP-USD"]),
        st.fixed_dictionaries(
            {
                "oraclePrice": st.one_of(
                    st.floats(allow_nan=True, allow_infinity=True).map(str),
                    st.integers(-5, 10**6),
                    st.text(max_size=5),
                ),
                "effectiveAtHeight": st.one_of(
                    st.integers(0, 10**9).map(str), st.integers(0, 10**9), st.text(max_size=4)
                ),
                "effectiveAt": st.just("2026-05-05T16:53:21.512Z"),
            }
        ),
        min_size=1,
        max_size=3,
    ),
    st.booleans(),
)
def test_parse_and_the_validating_path_agree_on_any_oracle_update(
    entries: dict[str, Any], batched: bool
) -> None:
    frame = _oracle_frame(entries)
    if batched:
        d = json.loads(frame)
        d["type"] = "channel_batch_data"
        d["contents"] = [d["contents"], {"trading": {"ETH-USD": {"nextFundingRate": "0.0001"}}}]
        frame = json.dumps(d)
    outcomes = []
    for fast in (True, False):
        p = with_markets()
        try:
            events = p.parse(frame, NOW) if fast else _validating(p, frame)
            outcomes.append(("ok", events))
        except ParseError as exc:
            outcomes.append(("error", exc.problem))
    assert outcomes[0] == outcomes[1]
    if batched and outcomes[0][0] == "ok":
        assert isinstance(outcomes[0][1][-1], FundingRate)
