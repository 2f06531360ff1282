from __future__ import annotations

from pathlib import Path

import ccxt.pro
import pytest

from monitor.margin.registry import RULES
from monitor.model.venues import rule_set_of
from monitor.venues.ccxt_pro.streams import (
    KNOWN,
    FundingSource,
    MarkSource,
    TierSource,
    UnsupportedExchangeError,
    plan_for,
)


def test_known_venue_names_are_canonical_and_have_margin_rule_sets() -> None:
    assert {p.venue for p in KNOWN.values()} == {"binanceusdm", "bybit", "okx"}
    assert all(rule_set_of(p.venue) in RULES for p in KNOWN.values())


def test_binanceusdm_marks_carry_funding_and_tiers_come_from_config() -> None:
    plan = plan_for("binanceusdm", {})
    assert (plan.mark, plan.funding, plan.tiers) == (
        MarkSource.WATCH_MARK_PRICES,
        FundingSource.IN_TICKER,
        TierSource.CONFIG,
    )
    assert plan.info_funding is not None
    assert (plan.info_funding.rate_key, plan.info_funding.next_ts_key) == ("r", "T")


def test_bybit_uses_tickers_and_public_risk_limits() -> None:
    plan = plan_for("bybit", {})
    assert (plan.mark, plan.funding, plan.tiers) == (
        MarkSource.WATCH_TICKERS,
        FundingSource.IN_TICKER,
        TierSource.FETCH_MARKET_LEVERAGE_TIERS,
    )
    assert plan.market_types == ("linear",)


def test_okx_has_separate_mark_and_funding_streams() -> None:
    plan = plan_for("okx", {})
    assert (plan.mark, plan.funding) == (
        MarkSource.WATCH_MARK_PRICES,
        FundingSource.WATCH_FUNDING_RATES,
    )
    assert plan.market_types == ("swap",)


def test_known_plans_use_methods_the_installed_ccxt_has() -> None:
    for exchange_id, plan in KNOWN.items():
        cls = getattr(ccxt.pro, exchange_id)
        assert callable(getattr(cls, plan.mark.value))
        if plan.funding is FundingSource.WATCH_FUNDING_RATES:
            assert callable(cls.watch_funding_rates)
        if plan.tiers is TierSource.FETCH_MARKET_LEVERAGE_TIERS:
            assert callable(cls.fetch_market_leverage_tiers)


@pytest.mark.parametrize(
    ("has", "mark", "funding", "tiers"),
    [
        (
            {"watchMarkPrices": True, "watchFundingRates": True, "fetchLeverageTiers": True},
            MarkSource.WATCH_MARK_PRICES,
            FundingSource.WATCH_FUNDING_RATES,
            TierSource.FETCH_LEVERAGE_TIERS,
        ),
        (
            {"watchTickers": True, "fetchFundingRates": True},
            MarkSource.WATCH_TICKERS,
            FundingSource.POLL_FUNDING_RATES,
            TierSource.CONFIG,
        ),
        (
            {"watchMarkPrices": True, "watchTickers": True, "fetchFundingRates": "emulated"},
            MarkSource.WATCH_MARK_PRICES,
            FundingSource.POLL_FUNDING_RATES,
            TierSource.CONFIG,
        ),
        ({"watchTickers": True}, MarkSource.WATCH_TICKERS, FundingSource.NONE, TierSource.CONFIG),
    ],
)
def test_other_exchanges_get_the_best_stream_ccxt_has(
    has: dict[str, object], mark: MarkSource, funding: FundingSource, tiers: TierSource
) -> None:
    plan = plan_for("someexchange", has)
    assert (plan.venue, plan.mark, plan.funding, plan.tiers) == (
        "someexchange",
        mark,
        funding,
        tiers,
    )


def test_exchange_without_mark_or_ticker_stream_is_refused() -> None:
    with pytest.raises(UnsupportedExchangeError, match="neither"):
        plan_for("nostream", {"watchTrades": True})


def test_a_real_generic_exchange_plan_from_ccxt_has() -> None:
    # aster streams mark prices (watchMarkPrices) and has only REST funding (feeds.md §5.1)
    plan = plan_for("aster", ccxt.pro.aster().has)
    assert plan.venue == "aster"
    assert plan.mark is MarkSource.WATCH_MARK_PRICES
    assert plan.funding is FundingSource.POLL_FUNDING_RATES


def test_module_is_pure_no_io_or_clock_imports() -> None:
    import ast
    import importlib

    source = Path(
        importlib.import_module("monitor.venues.ccxt_pro.streams").__file__ or ""
    ).read_text()
    imported: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    io = {"asyncio", "socket", "websockets", "aiohttp", "aiosqlite", "apprise", "ccxt", "time"}
    assert imported.isdisjoint(io), imported & io
