from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.errors import InputError
from monitor.margin.remedy import Target
from monitor.model.events import AccountSnapshot, MarkPrice
from monitor.model.instruments import MaintenanceSchedule, MarginMode
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position, ScopeKey
from monitor.whatif import (
    Cross,
    Isolate,
    SetPrice,
    Shock,
    WhatIfResult,
    account_totals,
    combine_targets,
    parse_cross,
    parse_isolate,
    parse_price,
    parse_shock,
    parse_target_distance,
    parse_target_ratio,
    render_result,
    result_json,
    what_if,
    what_if_portfolio,
)

ONE_PCT = MaintenanceSchedule.flat(0.01)
CROSS = ScopeKey("generic", "acct", "cross")
ISO_ETH = ScopeKey("generic", "acct", "isolated:ETH")


def pos(symbol: str, size: float, entry: float, mark: float, **kw: object) -> Position:
    return Position(
        symbol=symbol, size=size, entry_price=entry, mark_price=mark, maintenance=ONE_PCT, **kw
    )  # type: ignore[arg-type]


def btc_long_eth_short(*, eth_isolated: float | None = None) -> AccountSnapshot:
    """10 000 collateral; BTC +1 @ 50 000 and ETH −10 @ 3 000, both at entry; 1 % maintenance."""
    eth = pos("ETH", -10.0, 3000.0, 3000.0)
    collateral = 10_000.0
    if eth_isolated is not None:
        eth = pos(
            "ETH",
            -10.0,
            3000.0,
            3000.0,
            margin_mode=MarginMode.ISOLATED,
            isolated_margin=eth_isolated,
        )
        collateral -= eth_isolated
    return AccountSnapshot(
        venue="generic",
        account="acct",
        cross_collateral=collateral,
        positions=(pos("BTC", 1.0, 50_000.0, 50_000.0), eth),
    )


def row(result: WhatIfResult, key: ScopeKey) -> tuple[object, object]:
    [r] = [r for r in result.scopes if r.key == key]
    return r.before, r.after


def test_no_scenario_changes_nothing() -> None:
    res = what_if([btc_long_eth_short()], [])
    before, after = row(res, CROSS)
    assert before == after
    assert res.prices == ()
    assert res.notes == ()


def test_uniform_shock_moves_every_price() -> None:
    res = what_if([btc_long_eth_short()], [Shock(-0.10)])
    before, after = row(res, CROSS)
    assert before is not None and after is not None
    # before: equity 10 000; mm = 0.01·50 000 + 0.01·30 000 = 800
    assert before.equity == pytest.approx(10_000.0)
    assert before.maintenance_margin == pytest.approx(800.0)
    # after −10 %: BTC 45 000 (−5 000), ETH 2 700 (short gains +3 000): equity 8 000
    # mm = 0.01·45 000 + 0.01·27 000 = 720; ratio 720 / 8 000 = 0.09
    assert after.equity == pytest.approx(8_000.0)
    assert after.maintenance_margin == pytest.approx(720.0)
    assert after.margin_ratio == pytest.approx(0.09)
    moved = sorted((p.symbol, p.before, p.after) for p in res.prices)
    assert moved == [
        ("BTC", 50_000.0, pytest.approx(45_000.0)),
        ("ETH", 3000.0, pytest.approx(2700.0)),
    ]


def test_one_price_and_shock_compound() -> None:
    res = what_if([btc_long_eth_short()], [SetPrice("BTC", 40_000.0), Shock(-0.10)])
    _, after = row(res, CROSS)
    assert after is not None
    # BTC 40 000·0.9 = 36 000 (−14 000); ETH 2 700 (+3 000): equity −1 000 → liquidatable
    assert after.equity == pytest.approx(-1_000.0)
    assert after.margin_ratio is None
    assert after.liquidatable
    assert res.notes == ("generic:acct/cross: liquidatable after the change",)


def test_price_of_one_instrument_leaves_the_others() -> None:
    res = what_if([btc_long_eth_short()], [SetPrice("ETH", 3300.0)])
    _, after = row(res, CROSS)
    assert after is not None
    # ETH short loses 10·300 = 3 000: equity 7 000; mm = 500 + 0.01·33 000 = 830
    assert after.equity == pytest.approx(7_000.0)
    assert after.maintenance_margin == pytest.approx(830.0)
    [btc] = [p for p in after.positions if p.symbol == "BTC"]
    assert btc.mark_price == 50_000.0


def test_isolate_moves_margin_out_of_the_cross_pool() -> None:
    res = what_if([btc_long_eth_short()], [Isolate("ETH", 2_000.0)])
    before_cross, after_cross = row(res, CROSS)
    before_iso, after_iso = row(res, ISO_ETH)
    assert before_cross is not None and after_cross is not None and after_iso is not None
    assert before_iso is None
    # cross after: 8 000 collateral, BTC only, mm 500
    assert after_cross.equity == pytest.approx(8_000.0)
    assert after_cross.maintenance_margin == pytest.approx(500.0)
    # isolated ETH: equity 2 000, mm 0.01·30 000 = 300
    assert after_iso.equity == pytest.approx(2_000.0)
    assert after_iso.maintenance_margin == pytest.approx(300.0)
    # BTC liquidation, before: 10 000 + (p − 50 000) = 0.01p + 300 → p = 40 300 / 0.99
    btc_before = next(p for p in before_cross.positions if p.symbol == "BTC")
    assert btc_before.liquidation_price == pytest.approx(40_300.0 / 0.99)
    # after: 8 000 + (p − 50 000) = 0.01p → p = 42 000 / 0.99: isolating ETH removed its hedge
    btc_after = next(p for p in after_cross.positions if p.symbol == "BTC")
    assert btc_after.liquidation_price == pytest.approx(42_000.0 / 0.99)
    # isolated ETH short: 2 000 − 10(p − 3 000) = 0.1p → p = 32 000 / 10.1
    [eth_after] = after_iso.positions
    assert eth_after.liquidation_price == pytest.approx(32_000.0 / 10.1)
    assert eth_after.margin_mode == "isolated"


def test_cross_returns_the_isolated_margin_to_the_pool() -> None:
    res = what_if([btc_long_eth_short(eth_isolated=2_000.0)], [Cross("ETH")])
    _, after_cross = row(res, CROSS)
    before_iso, after_iso = row(res, ISO_ETH)
    assert after_cross is not None and before_iso is not None
    assert after_iso is None
    # the same as the all-cross account: equity 10 000, mm 800
    assert after_cross.equity == pytest.approx(10_000.0)
    assert after_cross.maintenance_margin == pytest.approx(800.0)
    btc_after = next(p for p in after_cross.positions if p.symbol == "BTC")
    assert btc_after.liquidation_price == pytest.approx(40_300.0 / 0.99)


def test_isolating_more_than_the_pool_has_is_noted() -> None:
    res = what_if([btc_long_eth_short()], [Isolate("ETH", 12_000.0)])
    assert any("exceeds the cross pool's equity" in n for n in res.notes)
    _, after_cross = row(res, CROSS)
    assert after_cross is not None
    assert after_cross.equity == pytest.approx(-2_000.0)  # 10 000 − 12 000


def test_free_collateral_limit_is_noted_when_leverage_is_known() -> None:
    snap = AccountSnapshot(
        venue="generic",
        account="acct",
        cross_collateral=10_000.0,
        positions=(
            pos("BTC", 1.0, 50_000.0, 50_000.0, leverage=10.0),
            pos("ETH", -10.0, 3000.0, 3000.0, leverage=10.0),
        ),
    )
    # initial margin 5 000 + 3 000 = 8 000: free collateral 2 000 < 2 500
    res = what_if([snap], [Isolate("ETH", 2_500.0)])
    assert any("free collateral 2,000.00" in n for n in res.notes)


def test_symbols_match_by_base_coin() -> None:
    snap = AccountSnapshot(
        venue="binance_usdm",
        account="a",
        cross_collateral=1000.0,
        positions=(pos("ETHUSDT", 1.0, 3000.0, 3000.0),),
    )
    res = what_if([snap], [SetPrice("eth", 2800.0)])
    [change] = res.prices
    assert (change.symbol, change.after) == ("ETHUSDT", 2800.0)


def test_unknown_symbol_is_an_input_error_naming_what_is_held() -> None:
    with pytest.raises(InputError, match=r"no position in 'DOGE' \(held: BTC, ETH\)"):
        what_if([btc_long_eth_short()], [SetPrice("DOGE", 0.2)])
    with pytest.raises(InputError, match="no position in 'ETH'"):
        what_if([btc_long_eth_short()], [Cross("ETH")])  # ETH is cross already


def test_venue_figures_are_not_carried_into_the_after_side() -> None:
    snap = AccountSnapshot(
        venue="generic",
        account="acct",
        cross_collateral=10_000.0,
        positions=(pos("BTC", 1.0, 50_000.0, 50_000.0, venue_liquidation_price=40_000.0),),
        venue_equity=10_000.0,
    )
    res = what_if([snap], [Shock(-0.05)])
    before, after = row(res, CROSS)
    assert before is not None and after is not None
    assert before.positions[0].venue_liquidation_price == 40_000.0
    assert before.venue_equity == 10_000.0
    assert after.positions[0].venue_liquidation_price is None
    assert after.venue_equity is None


def test_oracle_priced_rules_move_with_the_shock() -> None:
    p = pos("BTC-USD", 1.0, 50_000.0, 50_000.0, oracle_price=50_000.0)
    snap = AccountSnapshot(
        venue="dydx_v4", account="d/0", cross_collateral=10_000.0, positions=(p,)
    )
    res = what_if([snap], [Shock(-0.20)])
    [r] = res.scopes
    assert r.after is not None
    # dYdX values at the oracle: 40 000 → equity 10 000 − 10 000 = 0
    assert r.after.equity == pytest.approx(0.0, abs=1e-6)


def test_live_portfolio_gives_the_same_answer_as_its_snapshot() -> None:
    portfolio = Portfolio()
    portfolio.apply(btc_long_eth_short(eth_isolated=2_000.0))
    portfolio.apply(MarkPrice("generic", "BTC", 48_000.0))
    portfolio.apply(MarkPrice("generic", "ETH", 3_100.0))
    res = what_if_portfolio(portfolio, [])
    for change in res.scopes:
        live = portfolio.risk(change.key)
        assert live is not None and change.before is not None
        assert change.before.equity == pytest.approx(live.equity)
        assert change.before.maintenance_margin == pytest.approx(live.maintenance_margin)
        assert change.after == change.before
    # and a scenario on top of the live prices: BTC 48 000 → 43 200, ETH 3 100 → 2 790
    res = what_if_portfolio(portfolio, [Shock(-0.10)])
    _, after = row(res, CROSS)
    assert after is not None
    # cross: 8 000 + (43 200 − 50 000) = 1 200
    assert after.equity == pytest.approx(1_200.0)
    assert portfolio.risk(CROSS).equity == pytest.approx(6_000.0)  # unchanged: 8 000 − 2 000


@settings(max_examples=100, deadline=None)
@given(
    margin=st.floats(min_value=1.0, max_value=9_000.0),
    btc=st.floats(min_value=30_000.0, max_value=70_000.0),
    eth=st.floats(min_value=1_500.0, max_value=4_500.0),
)
def test_moving_a_position_between_scopes_preserves_total_equity(
    margin: float, btc: float, eth: float
) -> None:
    snap = btc_long_eth_short()
    res = what_if([snap], [Isolate("ETH", margin), SetPrice("BTC", btc), SetPrice("ETH", eth)])
    total_after = math.fsum(r.after.equity for r in res.scopes if r.after is not None)
    # all cross at these prices: 10 000 + (btc − 50 000) − 10(eth − 3 000)
    expected = 10_000.0 + (btc - 50_000.0) - 10.0 * (eth - 3_000.0)
    assert total_after == pytest.approx(expected, rel=1e-9, abs=1e-6)
    # and the maintenance is the same sum, only split differently
    mm_after = math.fsum(r.after.maintenance_margin for r in res.scopes if r.after is not None)
    assert mm_after == pytest.approx(0.01 * btc + 0.01 * 10 * eth, rel=1e-9)


@pytest.mark.parametrize(
    ("text", "move"),
    [("-10%", -0.10), ("+5%", 0.05), ("5%", 0.05), ("-0.25", -0.25), ("-12.5 %", -0.125)],
)
def test_parse_shock(text: str, move: float) -> None:
    assert parse_shock(text).move == pytest.approx(move)


@pytest.mark.parametrize("text", ["", "ten", "-100%", "-150%", "--5%", "5%%"])
def test_parse_shock_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_shock(text)


def test_parse_pairs() -> None:
    assert parse_price("ETH=2800") == SetPrice("ETH", 2800.0)
    assert parse_price("BTC=95_000") == SetPrice("BTC", 95_000.0)
    assert parse_isolate("SOL=500.5") == Isolate("SOL", 500.5)
    assert parse_cross(" SOL ") == Cross("SOL")
    for bad in ("ETH", "=5", "ETH=abc", "ETH=-1", "ETH=0", "ETH=nan"):
        with pytest.raises(InputError):
            parse_price(bad)
    with pytest.raises(InputError):
        parse_cross("  ")


def test_scenarios_print_as_their_flags() -> None:
    assert str(Shock(-0.1)) == "--shock -10%"
    assert str(SetPrice("ETH", 2800.0)) == "--price ETH=2800"
    assert str(Isolate("SOL", 500.0)) == "--isolate SOL=500"
    assert str(Cross("SOL")) == "--cross SOL"


def test_isolated_position_keeps_mode_when_only_prices_move() -> None:
    res = what_if([btc_long_eth_short(eth_isolated=2_000.0)], [SetPrice("ETH", 3_100.0)])
    _, after = row(res, ISO_ETH)
    assert after is not None
    # 2 000 − 10·100 = 1 000; mm = 0.01·31 000 = 310
    assert after.equity == pytest.approx(1_000.0)
    assert after.maintenance_margin == pytest.approx(310.0)


def test_account_totals_and_output_forms() -> None:
    res = what_if([btc_long_eth_short()], [Isolate("ETH", 2_000.0)])
    [total] = account_totals(res)
    assert (total.venue, total.account) == ("generic", "acct")
    # a move between scopes changes no total: equity 10 000, maintenance 500 + 300
    assert total.equity_before == pytest.approx(10_000.0)
    assert total.equity_after == pytest.approx(10_000.0)
    assert total.maintenance_before == pytest.approx(800.0)
    assert total.maintenance_after == pytest.approx(800.0)
    doc = result_json(res)
    assert doc["accounts"][0]["equity_after"] == pytest.approx(10_000.0)
    assert [s["scope"] for s in doc["scopes"]] == ["cross", "isolated:ETH"]
    text = render_result(res)
    assert "account generic acct: equity 10,000.00 -> 10,000.00" in text
    assert "ETH loss if liquidated" in text


def test_isolating_caps_what_a_position_can_lose() -> None:
    res = what_if([btc_long_eth_short()], [Isolate("ETH", 2_000.0)])
    before_cross, _ = row(res, CROSS)
    _, after_iso = row(res, ISO_ETH)
    assert before_cross is not None and after_iso is not None
    eth_cross = next(p for p in before_cross.positions if p.symbol == "ETH")
    [eth_iso] = after_iso.positions
    # in cross: 10 000 − 10(p − 3 000) = 500 + 0.1p → liq 39 500 / 10.1; equity there equals
    # maintenance 500 + 0.1·liq; the pool loses the rest of its 10 000
    liq_cross = 39_500.0 / 10.1
    assert eth_cross.loss_if_liquidated == pytest.approx(10_000.0 - (500.0 + 0.1 * liq_cross))
    # isolated with 2 000: liq 32 000 / 10.1; it loses 2 000 − 0.1·liq at most
    liq_iso = 32_000.0 / 10.1
    assert eth_iso.loss_if_liquidated == pytest.approx(2_000.0 - 0.1 * liq_iso)


_symbols = st.sampled_from(["BTC", "ETH", "SOL"])
_positions = st.lists(
    st.builds(
        lambda sym, size, entry, mark, iso, margin, rate: Position(
            symbol=sym,
            size=size,
            entry_price=entry,
            mark_price=mark,
            margin_mode=MarginMode.ISOLATED if iso else MarginMode.CROSS,
            isolated_margin=margin if iso else None,
            maintenance=MaintenanceSchedule.flat(rate),
        ),
        _symbols,
        st.floats(min_value=-50, max_value=50).filter(lambda x: abs(x) > 1e-3),
        st.floats(min_value=1, max_value=100_000),
        st.floats(min_value=1, max_value=100_000),
        st.booleans(),
        st.floats(min_value=1, max_value=50_000),
        st.floats(min_value=0.001, max_value=0.2),
    ),
    max_size=3,
    unique_by=lambda p: p.symbol,
)
_scenarios = st.lists(
    st.one_of(
        st.builds(Shock, st.floats(min_value=-0.9, max_value=2.0)),
        st.builds(SetPrice, _symbols, st.floats(min_value=0.01, max_value=1e6)),
        st.builds(Isolate, _symbols, st.floats(min_value=0.01, max_value=1e5)),
        st.builds(Cross, _symbols),
    ),
    max_size=4,
)


@settings(max_examples=150, deadline=None)
@given(
    positions=_positions,
    collateral=st.floats(min_value=-1e5, max_value=1e6),
    scenarios=_scenarios,
    venue=st.sampled_from(["generic", "binance_usdm", "bybit", "okx", "hyperliquid"]),
)
def test_any_book_and_scenarios_give_a_result_or_an_input_error(
    positions: list[Position], collateral: float, scenarios: list[object], venue: str
) -> None:
    snap = AccountSnapshot(
        venue=venue, account="a", cross_collateral=collateral, positions=tuple(positions)
    )
    try:
        res = what_if([snap], scenarios)  # type: ignore[arg-type]
    except InputError as err:
        problem = err.problem
        assert "no position in" in problem
        return
    assert render_result(res)
    assert result_json(res)["version"] == 1
    prices_only = all(isinstance(s, Shock | SetPrice) for s in scenarios)
    if not prices_only:
        # structure alone (at unchanged prices) never creates or destroys equity
        structural = [s for s in scenarios if isinstance(s, Isolate | Cross)]
        [total] = account_totals(what_if([snap], structural))  # type: ignore[arg-type]
        assert total.equity_after == pytest.approx(total.equity_before, rel=1e-9, abs=1e-6)


def test_cross_pool_with_cash_but_no_positions_is_shown_and_counted() -> None:
    # regression (found by the property test): cross then isolate again with more margin
    snap = AccountSnapshot(
        venue="generic",
        account="a",
        cross_collateral=0.0,
        positions=(
            pos("BTC", 1.0, 1.0, 1.0, margin_mode=MarginMode.ISOLATED, isolated_margin=1.0),
        ),
    )
    res = what_if([snap], [Cross("BTC"), Isolate("BTC", 2.0)])
    cross_before, cross_after = row(res, ScopeKey("generic", "a", "cross"))
    assert cross_before is None or cross_before.equity == 0.0
    assert cross_after is not None
    assert cross_after.equity == pytest.approx(-1.0)  # 0 + 1 returned − 2 taken
    [total] = account_totals(res)
    assert total.equity_after == pytest.approx(total.equity_before)  # 1 = −1 + 2


# -- issue 15: truthful wording ------------------------------------------------------------------


def lines_of(text: str, label: str) -> list[list[str]]:
    """The cells of every table row named ``label`` (split on runs of 2+ spaces)."""
    out = []
    for line in text.splitlines():
        cells = [c for c in re.split(r"\s{2,}", line.strip()) if c]
        if cells and cells[0] == label:
            out.append(cells[1:])
    return out


def test_a_margin_ratio_of_exactly_one_is_liquidatable() -> None:
    # BTC +1 at 50 000, 1 % → MM 500; collateral 500 → equity 500: ratio 500 / 500 = 1
    snap = AccountSnapshot("generic", "acct", 500.0, (pos("BTC", 1.0, 50_000.0, 50_000.0),))
    text = render_result(what_if([snap], []))
    assert lines_of(text, "margin ratio") == [["100.00%", "100.00%"]]
    assert lines_of(text, "state") == [
        ["LIQUIDATABLE (maintenance ≥ equity)", "LIQUIDATABLE (maintenance ≥ equity)"]
    ]
    assert lines_of(text, "BTC liq distance") == [["past liquidation", "past liquidation"]]


def test_past_liquidation_there_is_no_loss_if_liquidated_figure() -> None:
    # a 10 % drop takes 5 000 from an equity of 1 000: past liquidation after the change.
    # Before: P* = (1 000 − 50 000) / (0.01 − 1) = 49 494.95, where equity = MM = 494.95,
    # so the loss is 1 000 − 494.95 = 505.05
    snap = AccountSnapshot("generic", "acct", 1_000.0, (pos("BTC", 1.0, 50_000.0, 50_000.0),))
    text = render_result(what_if([snap], [Shock(-0.10)]))
    assert lines_of(text, "BTC loss if liquidated") == [["505.05", "past liquidation"]]
    assert lines_of(text, "shock to liquidation") == [["down 1.0% / up —", "past liquidation"]]
    assert lines_of(text, "margin ratio") == [["50.00%", "— (equity ≤ 0)"]]
    assert lines_of(text, "state") == [["ok", "LIQUIDATABLE (equity at or below zero)"]]


def test_an_empty_cross_pool_is_not_called_liquidatable() -> None:
    # only an isolated ETH position; the cross pool holds 100 and nothing else
    eth = pos("ETH", -10.0, 3000.0, 3000.0, margin_mode=MarginMode.ISOLATED, isolated_margin=2e3)
    snap = AccountSnapshot("generic", "acct", 100.0, (eth,))
    text = render_result(what_if([snap], []))
    states = lines_of(text, "state")
    assert states[0] == ["no positions", "no positions"]  # the cross pool comes first
    assert states[1] == ["ok", "ok"]
    assert lines_of(text, "funding runway")[0] == ["—", "—"]


def test_runway_prints_in_days_and_hours() -> None:
    # long 1 BTC at 50 000, funding 0.01 %/h (interval 1 h): pays 5/h; headroom
    # 10 000 − 500 = 9 500 → 1 900 h = 79 d 4 h
    btc = pos("BTC", 1.0, 50_000.0, 50_000.0, funding_rate=0.0001, funding_interval_hours=1.0)
    snap = AccountSnapshot("generic", "acct", 10_000.0, (btc,))
    text = render_result(what_if([snap], []))
    assert lines_of(text, "funding runway") == [["79 d 4 h", "79 d 4 h"]]


def test_tiny_prices_and_large_sizes_print_with_their_digits() -> None:
    # 40 million PEPE long at 0.000013 (notional 520), 12 % maintenance, collateral 420:
    # P* = (Eq − s·P) / (q·m − s) = (420 − 520) / (4.8e6 − 4e7) = 100 / 3.52e7 = 0.00000284091
    # (a lone position: it does not move with the price); printed as 0.0000028 before
    pepe = Position(
        symbol="PEPE",
        size=4e7,
        entry_price=0.000013,
        mark_price=0.000013,
        maintenance=MaintenanceSchedule.flat(0.12),
    )
    snap = AccountSnapshot("generic", "acct", 420.0, (pepe,))
    text = render_result(what_if([snap], [SetPrice("PEPE", 0.0000104)]))
    assert lines_of(text, "PEPE size") == [["+40,000,000", "+40,000,000"]]
    assert lines_of(text, "PEPE price") == [["0.000013", "0.0000104"]]
    assert lines_of(text, "PEPE liq price") == [["0.00000284091", "0.00000284091"]]
    assert "generic PEPE: 0.000013 -> 0.0000104" in text
    assert text.startswith("scenario: --price PEPE=0.0000104\n")
    assert "e+" not in text and "e-" not in text


def test_remedies_follow_the_scenarios() -> None:
    # after a 10 % drop BTC is at 45 000: equity 10 000 − 5 000 + 3 000 (ETH short gains)
    # = 8 000; MM = 450 + 270 = 720; ratio 9 % → target 6 %: deposit 720 / 0.06 − 8 000 = 4 000
    res = what_if([btc_long_eth_short()], [Shock(-0.10)], target=Target(margin_ratio=0.06))
    [fix] = res.remedies
    assert fix.now.margin_ratio == pytest.approx(0.09)
    assert fix.deposit == pytest.approx(4_000.0)
    assert result_json(res)["remedies"][0]["deposit"] == pytest.approx(4_000.0)
    assert "remedies" not in result_json(what_if([btc_long_eth_short()], []))


@pytest.mark.parametrize(
    ("text", "value"), [("15%", 0.15), ("0.15", 0.15), (" 7.5 % ", 0.075), (".2", 0.2)]
)
def test_parse_targets(text: str, value: float) -> None:
    assert parse_target_distance(text).distance == pytest.approx(value)
    assert parse_target_ratio(text).margin_ratio == pytest.approx(value)


@pytest.mark.parametrize("text", ["10", "1", "-5%", "0", "100%", "150%", "x", "nan"])
def test_parse_targets_rejects(text: str) -> None:
    with pytest.raises(InputError):
        parse_target_distance(text)
    with pytest.raises(InputError):
        parse_target_ratio(text)


def test_a_bare_shock_of_one_or_more_is_refused_not_multiplied() -> None:
    with pytest.raises(InputError, match=r"write 10% for 10 percent, or 0\.1"):
        parse_shock("10")
    assert parse_shock("0.5").move == pytest.approx(0.5)
    assert parse_shock("10%").move == pytest.approx(0.1)


def test_combined_targets_keep_the_last_of_each_kind() -> None:
    assert combine_targets([]) is None
    both = combine_targets([Target(distance=0.1), Target(margin_ratio=0.5), Target(distance=0.2)])
    assert both == Target(margin_ratio=0.5, distance=0.2)


def test_an_isolated_margin_released_pro_rata_is_explained_within_120_columns() -> None:
    # Binance isolated SOL: 10 @ 100, 1 % maintenance, margin 20 → equity 20, MM 10, ratio 50 %
    sol = pos("SOL", 10.0, 100.0, 100.0, margin_mode=MarginMode.ISOLATED, isolated_margin=20.0)
    snap = AccountSnapshot("binance_usdm", "acct", 0.0, (sol,))
    text = render_result(what_if([snap], [], target=Target(margin_ratio=0.25)))
    assert max(len(line) for line in text.splitlines()) <= 120
    # deposit: 10 / 0.25 − 20 = 20
    assert "  deposit 20.00 -> margin ratio 25.00%, nearest liquidation " in text
    assert "  or reduce SOL by 10 (all of it) -> nothing left at risk" in text
    assert "  note: only closing all of SOL reaches margin ratio 25%: its isolated" in text


def test_a_remedy_on_an_unknown_schedule_is_shown_as_unknown() -> None:
    btc = Position("BTC", 1.0, 50_000.0, mark_price=50_000.0)  # no maintenance schedule
    res = what_if([AccountSnapshot("generic", "acct", 1_000.0, (btc,))], [], target=Target(0.5))
    assert render_result(res).splitlines()[-2:] == [
        "to reach margin ratio 50% on generic acct [cross]:",
        "  UNKNOWN: maintenance schedule unknown for BTC: no remedy computed",
    ]
    doc = result_json(res)["remedies"][0]
    assert doc["deposit"] is None and doc["unknown"].startswith("maintenance schedule unknown")
