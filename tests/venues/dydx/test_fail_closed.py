"""dYdX parser, fail closed (issue 10) and venue-exact events (issue 13): venue-wide lists
degrade per entry, magnitudes no venue produces are refused, ordering guards cannot block
forever, liquidation and deleveraging fills become events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from monitor.errors import ParseError
from monitor.model.events import (
    AccountSnapshot,
    BalanceUpdate,
    Deleveraged,
    InstrumentSpec,
    MarkPrice,
    PositionUpdate,
)
from monitor.model.portfolio import Portfolio
from monitor.model.positions import ScopeKey
from monitor.venues.dydx.parse import (
    HEIGHT_SLACK,
    RESNAPSHOT_AFTER,
    RESYNC_AFTER,
    VENUE,
    DydxParser,
)

DY = Path(__file__).parents[2] / "fixtures" / "feeds" / "dydx"
ADDR = "dydx1q8m3v5x9ljk2h7s0w4e6r8t0y2u4i6o8p0a2s4"
ACCOUNT = f"{ADDR}/0"
#: a receive time just after the fixtures' effectiveAt (2026-05-05T16:53:21Z)
NOW = 1_778_000_010.0
AT = "2026-05-05T16:53:21.512Z"


def raw(name: str) -> str:
    return (DY / name).read_text()


def doc(name: str) -> Any:
    return json.loads(raw(name))


def markets_with(**extra: dict[str, Any]) -> str:
    d = doc("ws_subscribed_v4_markets.json")
    for ticker, m in extra.items():
        d["contents"]["markets"][ticker.replace("_", "-")] = m
    return json.dumps(d)


def eth_like(**changes: Any) -> dict[str, Any]:
    m: dict[str, Any] = dict(doc("ws_subscribed_v4_markets.json")["contents"]["markets"]["ETH-USD"])
    m.update(changes)
    return m


def oracle(entries: dict[str, Any], *, batch: bool = False) -> str:
    contents: Any = {"oraclePrices": entries}
    return json.dumps(
        {
            "type": "channel_batch_data" if batch else "channel_data",
            "channel": "v4_markets",
            "contents": [contents] if batch else contents,
        }
    )


def price(p: str, h: str, at: str = AT) -> dict[str, str]:
    return {"oraclePrice": p, "effectiveAtHeight": h, "effectiveAt": at}


def account_delta(contents: dict[str, Any], channel: str = "v4_subaccounts") -> str:
    return json.dumps(
        {"type": "channel_data", "channel": channel, "id": ACCOUNT, "contents": contents}
    )


def with_account() -> DydxParser:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    p.parse(raw("ws_subscribed_v4_subaccounts.json"), NOW)  # block 61234567
    return p


# -- venue-wide lists degrade per entry ---------------------------------------------------------
def test_a_new_listing_with_null_oracle_price_costs_that_market_only_and_is_learnt_later() -> None:
    p = DydxParser()
    events = p.parse(markets_with(NEW_USD=eth_like(ticker="NEW-USD", oraclePrice=None)), NOW)
    specs = {e.instrument.symbol for e in events if isinstance(e, InstrumentSpec)}
    assert specs == {"BTC-USD", "ETH-USD", "TRUMP-USD"}  # NEW-USD skipped, not priced
    assert p.unpriced == {"NEW-USD": "no oracle price yet"}
    assert p.drain_notes() == ["market 'NEW-USD' not priced: no oracle price yet"]
    # its first price arrives, in the same batch as BTC's: both are used
    events = p.parse(
        oracle({"NEW-USD": price("2.5", "61234570"), "BTC-USD": price("95100", "61234570")}), NOW
    )
    spec, new_mark, btc = events
    assert isinstance(spec, InstrumentSpec) and spec.instrument.symbol == "NEW-USD"
    assert spec.instrument.maintenance.tiers[0].rate == pytest.approx(0.012)
    assert isinstance(new_mark, MarkPrice) and (new_mark.symbol, new_mark.mark) == ("NEW-USD", 2.5)
    assert isinstance(btc, MarkPrice) and btc.mark == 95100.0
    assert p.unpriced == {}


def test_one_unknown_market_in_an_oracle_batch_costs_that_entry_only() -> None:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    events = p.parse(
        oracle({"NOPE-USD": price("1", "61234570"), "BTC-USD": price("95100", "61234570")}), NOW
    )
    assert [(e.symbol, e.mark) for e in events if isinstance(e, MarkPrice)] == [
        ("BTC-USD", 95100.0)
    ]
    (note,) = p.drain_notes()
    assert "unknown market 'NOPE-USD'" in note


@pytest.mark.parametrize(
    "bad", [price("NaN", "61234570"), price("1e16", "61234570"), price("-1", "61234570"), "x"]
)
def test_one_bad_price_in_a_batch_costs_that_entry_only(bad: Any) -> None:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    for batch in (False, True):
        events = p.parse(
            oracle({"ETH-USD": bad, "BTC-USD": price("95100", "61234570")}, batch=batch), NOW
        )
        assert [e.symbol for e in events] == ["BTC-USD"]
        assert len(p.drain_notes()) == 1


def test_a_frame_without_any_usable_entry_is_refused() -> None:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    with pytest.raises(ParseError, match="beyond any venue"):
        p.parse(oracle({"BTC-USD": price("1e300", "61234570")}), NOW)


def test_a_market_listed_mid_session_is_learnt_from_trading_then_its_price() -> None:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    listing = {
        "type": "channel_data",
        "channel": "v4_markets",
        "contents": {
            "trading": {
                "NEW-USD": eth_like(ticker="NEW-USD", oraclePrice=None, nextFundingRate=None)
            }
        },
    }
    assert p.parse(json.dumps(listing), NOW) == []
    assert "NEW-USD" in p.unpriced
    events = p.parse(oracle({"NEW-USD": price("7", "61234570")}), NOW)
    assert [type(e).__name__ for e in events] == ["InstrumentSpec", "MarkPrice"]
    assert "NEW-USD" in p.markets


# -- magnitudes -------------------------------------------------------------------------------
@pytest.mark.parametrize("size", ["1e200", "1e303", "2e15"])
def test_a_position_size_no_venue_can_produce_is_refused_and_counts_towards_resync(
    size: str,
) -> None:
    p = with_account()
    d = doc("ws_channel_data_v4_subaccounts.json")
    d["contents"]["perpetualPositions"][0]["size"] = size
    with pytest.raises(ParseError, match="beyond any venue"):
        p.parse(json.dumps(d), NOW)
    assert ACCOUNT in p.resync  # the account asks for a REST re-snapshot


def test_a_refused_delta_changes_nothing() -> None:
    p = with_account()
    d = doc("ws_channel_data_v4_subaccounts.json")
    d["contents"]["assetPositions"][0]["size"] = "inf"  # positions valid, USDC not
    with pytest.raises(ParseError, match="finite"):
        p.parse(json.dumps(d), NOW)
    d = doc("ws_channel_data_v4_subaccounts.json")
    del d["contents"]["perpetualPositions"]
    (balance,) = p.parse(json.dumps(d), NOW)
    assert balance == BalanceUpdate(VENUE, ACCOUNT, cross_cash=-2127.303114, ts_recv=NOW)


# -- ordering guards ----------------------------------------------------------------------------
def test_a_poisoned_oracle_height_cannot_freeze_a_price() -> None:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    # the very first height has no reference: it is taken, ten times too large
    assert len(p.parse(oracle({"BTC-USD": price("95000", "612345690")}), NOW)) == 1
    dropped = [
        p.parse(oracle({"BTC-USD": price("95001", "61234570")}), NOW) for _ in range(RESYNC_AFTER)
    ]
    assert dropped == [[]] * RESYNC_AFTER  # older: dropped, RESYNC_AFTER times
    (mark,) = p.parse(oracle({"BTC-USD": price("95002", "61234571")}), NOW)
    assert isinstance(mark, MarkPrice) and mark.mark == 95002.0  # resynchronised
    assert "resynchronised" in p.drain_notes()[-1]
    (mark,) = p.parse(oracle({"BTC-USD": price("95003", "61234572")}), NOW)  # and flowing
    assert mark.mark == 95003.0


def test_a_height_beyond_the_plausible_bound_from_the_receive_clock_is_refused() -> None:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    p.parse(oracle({"BTC-USD": price("95000", "61234570")}), NOW)
    # 10 s later the bound is 61234570 + HEIGHT_SLACK + 10 blocks/s · 10 s
    limit = 61234570 + HEIGHT_SLACK + 100
    assert p.height_limit(NOW + 10) == limit
    with pytest.raises(ParseError, match="implausible block height"):
        p.parse(oracle({"BTC-USD": price("95001", str(limit + 1))}), NOW + 10)
    (mark,) = p.parse(oracle({"BTC-USD": price("95001", str(limit))}), NOW + 10)
    assert mark.mark == 95001.0


def test_a_venue_time_far_ahead_of_the_receive_clock_is_dropped_not_trusted() -> None:
    for fast in (True, False):
        p = DydxParser()
        p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
        entry = price("95000", "61234570", "2036-01-01T00:00:00Z")
        if not fast:
            entry["extra"] = "takes the validating path"
        (mark,) = p.parse(oracle({"BTC-USD": entry}), NOW)
        # the price is used; its time, ten years ahead of the receive clock, is not
        assert (mark.mark, mark.ts_event, mark.ts_recv) == (95000.0, None, NOW)
        assert p.implausible_times == 1
        (mark,) = p.parse(oracle({"BTC-USD": price("95001", "61234571")}), NOW)
        assert mark.ts_event == pytest.approx(1_778_000_001.512)  # a plausible one is kept


def test_an_implausible_account_block_is_refused_and_asks_for_a_re_snapshot() -> None:
    p = with_account()
    d = doc("ws_channel_data_v4_subaccounts.json")
    d["contents"]["blockHeight"] = "612345710"  # ten times too large
    with pytest.raises(ParseError, match="implausible block height"):
        p.parse(json.dumps(d), NOW)
    assert ACCOUNT in p.resync
    # nothing was applied: the real next block still goes through
    d["contents"]["blockHeight"] = "61234571"
    assert len(p.parse(json.dumps(d), NOW)) == 2


def test_out_of_order_deltas_ask_for_a_re_snapshot_after_a_few_in_a_row() -> None:
    p = with_account()
    d = doc("ws_channel_data_v4_subaccounts.json")
    d["contents"]["blockHeight"] = "61234000"
    for i in range(RESNAPSHOT_AFTER):
        assert ACCOUNT not in p.resync, i
        with pytest.raises(ParseError, match="out-of-order"):
            p.parse(json.dumps(d), NOW)
    assert ACCOUNT in p.resync


def test_a_rest_re_snapshot_always_resynchronises_the_account() -> None:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    poisoned = doc("ws_subscribed_v4_subaccounts.json")
    poisoned["contents"]["blockHeight"] = "99999999"  # no reference yet: taken
    p.parse(json.dumps(poisoned), NOW)
    d = doc("ws_channel_data_v4_subaccounts.json")
    with pytest.raises(ParseError, match="out-of-order"):
        p.parse(json.dumps(d), NOW)
    (snap,) = p.parse_rest(f"subaccount:{ACCOUNT}", raw("rest_subaccount.json"), NOW)
    assert isinstance(snap, AccountSnapshot) and snap.account == ACCOUNT
    assert ACCOUNT not in p.resync
    assert len(p.parse(json.dumps(d), NOW)) == 2  # block 61234571 is accepted again


# -- liquidation and deleveraging fills --------------------------------------------------------
def _fill(kind: str, side: str, size: str, price_: str = "80000", **extra: Any) -> dict[str, Any]:
    return {
        "id": "c5030bd3-cd85-5046-8f2a-518bbba6ec45",
        "subaccountId": "db535c19-b298-5ee8-bb59-e96c659a8bd4",
        "side": side,
        "liquidity": "TAKER",
        "type": kind,
        "clobPairId": "0",
        "size": size,
        "price": price_,
        "quoteAmount": "8000",
        "transactionHash": "C84B0BBCA8E713A2D46EFBA07F2D0A32C1F6E2440794A366B888503935E0EF40",
        "createdAt": "2026-05-05T16:53:30.000Z",
        "createdAtHeight": "61234571",
        "ticker": "BTC-USD",
        **extra,
    }


def test_a_liquidated_fill_marks_the_position_update_even_when_partial() -> None:
    p = with_account()
    contents = {
        "fills": [_fill("LIQUIDATED", "SELL", "0.05")],
        "perpetualPositions": [
            {
                "market": "BTC-USD",
                "side": "LONG",
                "status": "OPEN",
                "size": "0.05",
                "entryPrice": "93750.5",
                "subaccountNumber": 0,
            }
        ],
        "blockHeight": "61234571",
    }
    (update,) = p.parse(account_delta(contents), NOW)
    assert isinstance(update, PositionUpdate)
    assert (update.account, update.position.size, update.liquidated) == (ACCOUNT, 0.05, True)


def test_a_liquidated_fill_alone_reports_the_known_position_as_liquidated() -> None:
    p = with_account()
    (update,) = p.parse(account_delta({"fills": [_fill("LIQUIDATED", "SELL", "0.05")]}), NOW)
    assert isinstance(update, PositionUpdate)
    assert (update.position.size, update.position.entry_price, update.liquidated) == (
        0.1,
        93750.5,
        True,
    )


def test_an_offsetting_fill_is_auto_deleveraging_before_the_position_update() -> None:
    # indexer FillType: OFFSETTING "is for the offsetting subaccount in a deleveraging event":
    # this subaccount's profitable position was closed against a bankrupt one (ADL)
    p = with_account()
    contents = {
        "fills": [_fill("OFFSETTING", "SELL", "0.1", "96000"), _fill("LIMIT", "BUY", "1")],
        "perpetualPositions": [
            {
                "market": "BTC-USD",
                "side": "LONG",
                "status": "CLOSED",
                "size": "0",
                "entryPrice": "93750.5",
            }
        ],
        "blockHeight": "61234571",
    }
    adl, closed = p.parse(account_delta(contents), NOW)
    # 2026-05-05T16:53:30Z = 1778000010
    # a SELL of 0.1 took 0.1 off the long: the signed change of the position is −0.1
    assert adl == Deleveraged(VENUE, ACCOUNT, "BTC-USD", -0.1, 96000.0, 1_778_000_010.0, NOW)
    assert isinstance(closed, PositionUpdate)
    assert (closed.position.size, closed.liquidated) == (0.0, False)  # ADL is no liquidation
    engine = Portfolio()
    assert engine.apply(adl) == []  # the engine takes it and waits for the update


def test_a_deleveraged_fill_is_the_bankrupt_side_closed_by_the_venue() -> None:
    # DELEVERAGED "is for the subaccount that was deleveraged": the bankrupt one, closed
    # against offsetting positions: a liquidation for its owner
    p = with_account()
    (update,) = p.parse(account_delta({"fills": [_fill("DELEVERAGED", "SELL", "0.1")]}), NOW)
    assert isinstance(update, PositionUpdate) and update.liquidated


def test_an_offset_short_is_negative_and_child_fills_go_to_the_childs_account() -> None:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    parent = {
        "type": "subscribed",
        "channel": "v4_parent_subaccounts",
        "id": ACCOUNT,
        "contents": {
            "subaccount": {"address": ADDR, "parentSubaccountNumber": 0, "childSubaccounts": []}
        },
    }
    p.parse(json.dumps(parent), NOW)
    fill = _fill("OFFSETTING", "BUY", "2", "3600", ticker="ETH-USD", subaccountNumber=128)
    events = p.parse(account_delta({"fills": [fill]}, "v4_parent_subaccounts"), NOW)
    assert events[0] == Deleveraged(
        VENUE, f"{ADDR}/128", "ETH-USD", 2.0, 3600.0, 1_778_000_010.0, NOW
    )


def test_a_fill_without_subaccount_number_goes_to_the_subaccount_holding_the_market() -> None:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    child = {
        "address": ADDR,
        "subaccountNumber": 256,
        "openPerpetualPositions": {
            "ETH-USD": {"market": "ETH-USD", "side": "LONG", "size": "2", "entryPrice": "3400"}
        },
        "assetPositions": {"USDC": {"symbol": "USDC", "side": "LONG", "size": "100"}},
    }
    parent = {
        "type": "subscribed",
        "channel": "v4_parent_subaccounts",
        "id": ACCOUNT,
        "contents": {
            "subaccount": {
                "address": ADDR,
                "parentSubaccountNumber": 0,
                "childSubaccounts": [child],
            }
        },
    }
    p.parse(json.dumps(parent), NOW)
    fill = _fill("LIQUIDATED", "SELL", "1", "3000", ticker="ETH-USD")
    (update,) = p.parse(account_delta({"fills": [fill]}, "v4_parent_subaccounts"), NOW)
    assert isinstance(update, PositionUpdate)
    assert (update.account, update.position.size, update.liquidated) == (f"{ADDR}/256", 2.0, True)


def test_malformed_fills_are_refused() -> None:
    p = with_account()
    with pytest.raises(ParseError, match="side"):
        p.parse(account_delta({"fills": [_fill("OFFSETTING", "UP", "1")]}), NOW)
    with pytest.raises(ParseError, match="beyond any venue"):
        p.parse(account_delta({"fills": [_fill("LIQUIDATED", "SELL", "1e20")]}), NOW)


def test_the_engine_stays_finite_on_the_account_after_refused_huge_frames() -> None:
    p = with_account()
    engine = Portfolio()
    for e in [
        *p.parse(raw("ws_subscribed_v4_markets.json"), NOW),
        *p.parse(raw("ws_subscribed_v4_subaccounts.json"), NOW),
    ]:
        engine.apply(e)
    d = doc("ws_channel_data_v4_subaccounts.json")
    d["contents"]["perpetualPositions"][0].update(size="1e200", entryPrice="1e200")
    with pytest.raises(ParseError):
        p.parse(json.dumps(d), NOW)
    equity, _ = engine.aggregates(ScopeKey(VENUE, ACCOUNT, "cross"))
    # unchanged: USDC 2623.746886 + 0.1·95018.54
    assert equity == pytest.approx(2623.746886 + 0.1 * 95018.54)


def test_an_unhashable_message_type_is_a_bad_frame_not_a_crash() -> None:
    # found by the mutation property: {"type": []} raised TypeError out of the parser
    with pytest.raises(ParseError, match="unexpected message type"):
        DydxParser().parse(json.dumps({"type": [], "channel": "v4_markets"}), NOW)


def test_a_snapshot_of_another_subaccount_than_subscribed_is_refused() -> None:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    d = doc("ws_subscribed_v4_subaccounts.json")
    d["id"] = f"{ADDR}/3"  # the document says subaccount 0
    with pytest.raises(ParseError, match="snapshot of subaccount 0 on the subscription"):
        p.parse(json.dumps(d), NOW)
    del d["contents"]["subaccount"]["subaccountNumber"]  # unstated: the subscription's number
    (snap,) = p.parse(json.dumps(d), NOW)
    assert isinstance(snap, AccountSnapshot) and snap.account == f"{ADDR}/3"


def test_a_trading_update_with_a_null_oracle_price_keeps_the_known_price() -> None:
    p = DydxParser()
    p.parse(raw("ws_subscribed_v4_markets.json"), NOW)
    change = {
        "type": "channel_data",
        "channel": "v4_markets",
        "contents": {
            "trading": {"BTC-USD": {"maintenanceMarginFraction": "0.03", "oraclePrice": None}}
        },
    }
    (spec,) = p.parse(json.dumps(change), NOW)
    assert isinstance(spec, InstrumentSpec)
    assert spec.instrument.maintenance.tiers[0].rate == pytest.approx(0.03)
    assert p.markets["BTC-USD"].oracle_price == 95018.54  # the snapshot's, not "unpriced"
    assert p.unpriced == {}
