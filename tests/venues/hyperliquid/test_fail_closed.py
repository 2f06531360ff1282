"""Fail closed on Hyperliquid input (issue 10): magnitude bounds, ordering guards that cannot
block forever, venue-wide lists that degrade per entry; a hypothesis property over mutated
clearinghouseState frames driven through parser → Portfolio."""

from __future__ import annotations

import contextlib
import copy
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.model.events import AccountSnapshot, InstrumentSpec, MarkPrice
from monitor.model.portfolio import Portfolio
from monitor.venues.hyperliquid.parse import (
    MAX_FUTURE_SKEW,
    REST_RACE_WINDOW,
    RESYNC_AFTER,
    HyperliquidParser,
)

HL = Path(__file__).parents[2] / "fixtures" / "feeds" / "hyperliquid"
USER = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"
PUSH = json.loads((HL / "ws_clearinghouseState.json").read_text())
TIME_MS = PUSH["data"]["clearinghouseState"]["time"]  # 1778000000123
NOW = TIME_MS / 1000 + 0.5  # receive clock half a second after the venue's time


def push(time_ms: int | None = TIME_MS, **position: Any) -> str:
    d = copy.deepcopy(PUSH)
    if time_ms is not None:
        d["data"]["clearinghouseState"]["time"] = time_ms
    d["data"]["clearinghouseState"]["assetPositions"][0]["position"].update(position)
    return json.dumps(d)


# -- 10.1 magnitude bounds -------------------------------------------------------------------
@pytest.mark.parametrize(
    "position",
    [
        {"szi": "1e200", "entryPx": "1e200"},  # issue 10: equity NaN, every critical "resolved"
        {"szi": "1e303"},  # issue 10: math.fsum overflow killed the engine
        {"entryPx": "1e200"},
        {"positionValue": "1e300"},
        {"liquidationPx": "1e200"},
        {"leverage": {"type": "cross", "value": 10}, "szi": "-1e13"},
    ],
)
def test_position_figures_no_venue_can_produce_are_a_refused_frame(position: Any) -> None:
    with pytest.raises(ParseError, match=r"bound|positive|finite"):
        HyperliquidParser().parse(push(**position), NOW)


def test_huge_cash_and_absurd_prices_are_refused_too() -> None:
    d = json.loads(push())
    d["data"]["clearinghouseState"]["crossMarginSummary"]["totalRawUsd"] = "-1e303"
    with pytest.raises(ParseError, match="bound"):
        HyperliquidParser().parse(json.dumps(d), NOW)
    ctx = json.loads((HL / "ws_activeAssetCtx.json").read_text())
    ctx["data"]["ctx"]["markPx"] = "1e200"
    with pytest.raises(ParseError, match="beyond"):
        HyperliquidParser().parse(json.dumps(ctx), NOW)
    ctx["data"]["ctx"]["markPx"] = "95000"
    ctx["data"]["ctx"]["funding"] = "5"  # 500 % per hour
    with pytest.raises(ParseError, match="funding"):
        HyperliquidParser().parse(json.dumps(ctx), NOW)


def test_largest_plausible_position_still_parses() -> None:
    # 1e9 BTC at 1e5 = 1e14 USD notional: within every bound (sizes 1e12, USD 1e15)
    (snap,) = HyperliquidParser().parse(push(szi="1e9", positionValue="1e14"), NOW)
    assert isinstance(snap, AccountSnapshot)
    assert snap.positions[0].size == 1e9


# -- 10.3 ordering guards ----------------------------------------------------------------------
def test_time_ten_times_too_large_is_refused_and_does_not_freeze_the_account() -> None:
    p = HyperliquidParser()
    with pytest.raises(ParseError, match="implausible"):
        p.parse(push(TIME_MS * 10), NOW)  # 10x: ~17,000 years ahead of the receive clock
    # the next ordinary push is applied: the poisoned time never became the high-water mark
    (snap,) = p.parse(push(TIME_MS + 1000), NOW + 1)
    assert isinstance(snap, AccountSnapshot)


def test_time_within_the_skew_bound_is_accepted() -> None:
    ahead = int((NOW + MAX_FUTURE_SKEW - 1) * 1000)  # 59 s ahead: a skewed but sane clock
    assert len(HyperliquidParser().parse(push(ahead), NOW)) == 1


def test_rest_resnapshot_far_older_than_the_mark_resynchronises() -> None:
    p = HyperliquidParser()
    skewed = int((NOW + MAX_FUTURE_SKEW - 1) * 1000)
    p.parse(push(skewed), NOW)  # accepted, 59 s ahead
    rest = json.loads(push(TIME_MS))["data"]["clearinghouseState"]
    # 59 s − 0.5 s older than the mark: more than the 30 s race window → applied
    assert skewed / 1000 - TIME_MS / 1000 > REST_RACE_WINDOW
    (snap,) = p.parse_rest(f"clearinghouseState:{USER}", json.dumps(rest), NOW + 1)
    assert isinstance(snap, AccountSnapshot)
    assert p.ordering_resyncs == 1
    # the mark is now the REST state's time: a push 1 s later is in order again
    assert len(p.parse(push(TIME_MS + 1000), NOW + 2)) == 1


def test_rest_state_racing_a_push_is_skipped_quietly() -> None:
    p = HyperliquidParser()
    p.parse(push(TIME_MS + 2000), NOW + 2)
    rest = json.loads(push(TIME_MS))["data"]["clearinghouseState"]  # 2 s older: a race
    assert p.parse_rest(f"clearinghouseState:{USER}", json.dumps(rest), NOW + 3) == []
    assert (p.stale_rest_snapshots, p.ordering_resyncs) == (1, 0)


def test_pushes_that_keep_being_refused_resynchronise_and_ask_for_a_resnapshot() -> None:
    p = HyperliquidParser()
    p.parse(push(TIME_MS + 50_000), NOW + 50)  # a mark 50 s ahead of what follows
    for i in range(RESYNC_AFTER - 1):
        with pytest.raises(ParseError, match="out-of-order"):
            p.parse(push(TIME_MS + i), NOW + 51 + i)
    assert p.resync_wanted == set()
    (snap,) = p.parse(push(TIME_MS + 10), NOW + 60)  # the 3rd in a row: taken as the truth
    assert isinstance(snap, AccountSnapshot)
    assert (p.ordering_resyncs, p.resync_wanted) == (1, {USER})
    assert len(p.parse(push(TIME_MS + 11), NOW + 61)) == 1  # and the stream flows again


# -- 10.4 venue-wide lists degrade per entry --------------------------------------------------
def meta() -> Any:
    return json.loads((HL / "rest_info_metaAndAssetCtxs_response.json").read_text())


def test_one_bad_asset_ctx_costs_that_entry_only() -> None:
    d = meta()
    d[1][1]["markPx"] = None  # ETH's context is unusable
    d[0]["universe"][2]["maxLeverage"] = "lots"  # SOL's universe entry too
    d[0]["marginTables"][0] = ["x"]  # and one margin table
    p = HyperliquidParser()
    events = p.parse_rest("metaAndAssetCtxs", json.dumps(d), NOW)
    specs = [e.instrument.symbol for e in events if isinstance(e, InstrumentSpec)]
    marks = [e.symbol for e in events if isinstance(e, MarkPrice)]
    assert specs == marks == ["BTC", "LOOM"]
    assert p.bad_entries == 3
    assert p.known_symbols == {"BTC", "LOOM"}


def test_listing_learnt_when_it_appears_in_a_later_meta() -> None:
    p = HyperliquidParser()
    d = meta()
    p.parse_rest("metaAndAssetCtxs", json.dumps(d), NOW)
    assert "NEWCOIN" not in p.known_symbols
    d[0]["universe"].append({"szDecimals": 0, "name": "NEWCOIN", "maxLeverage": 3})
    d[1].append(dict(d[1][0], markPx="1.5", oraclePx="1.49"))
    events = p.parse_rest("metaAndAssetCtxs", json.dumps(d), NOW + 60)
    assert "NEWCOIN" in p.known_symbols
    assert any(isinstance(e, MarkPrice) and e.symbol == "NEWCOIN" for e in events)


# -- property: mutated frames never crash the parser nor freeze the account -----------------
_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["1e200", "-1e303", "nan", "inf", "", "0", "-0", "1e-320", "x"]),
    st.text(max_size=5),
    st.just([]),
    st.just({}),
)
_PATHS = [
    ("crossMarginSummary", "totalRawUsd"),
    ("crossMarginSummary", "accountValue"),
    ("crossMaintenanceMarginUsed",),
    ("withdrawable",),
    ("time",),
    ("assetPositions",),
    *[("assetPositions", 0, "position", k) for k in ("szi", "entryPx", "positionValue")],
    *[("assetPositions", 0, "position", k) for k in ("maxLeverage", "liquidationPx", "coin")],
    ("assetPositions", 1, "position", "leverage", "rawUsd"),
    ("assetPositions", 1, "position", "leverage", "type"),
    ("assetPositions", 1, "position", "leverage"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutations=st.lists(st.tuples(st.sampled_from(_PATHS), _VALUES), min_size=1, max_size=4),
    time_factor=st.sampled_from([1, 10, 1000, 0]),
)
def test_mutated_states_never_crash_never_go_non_finite_never_freeze(
    mutations: list[tuple[tuple[Any, ...], Any]], time_factor: int
) -> None:
    p = HyperliquidParser()
    portfolio = Portfolio()
    d = copy.deepcopy(PUSH)
    d["data"]["clearinghouseState"]["time"] = TIME_MS * time_factor
    for path, value in mutations:
        node: Any = d["data"]["clearinghouseState"]
        with contextlib.suppress(KeyError, IndexError, TypeError):
            for key in path[:-1]:
                node = node[key]
            node[path[-1]] = copy.deepcopy(value)
    with contextlib.suppress(ParseError):  # a refused frame is fine: anything else is a bug
        for ev in p.parse(json.dumps(d), NOW):
            portfolio.apply(ev)
    for r in portfolio.risks():
        for v in (r.equity, r.maintenance_margin, r.margin_ratio):
            assert v is None or math.isfinite(v), r
    # never frozen: the next sane push of the account is applied whatever came before
    events = p.parse(push(TIME_MS + 5_000), NOW + 5)
    assert [type(e) for e in events] == [AccountSnapshot]
    for ev in events:
        portfolio.apply(ev)
    assert all(math.isfinite(r.equity) for r in portfolio.risks())
