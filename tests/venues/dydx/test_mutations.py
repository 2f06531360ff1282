"""Mutated dYdX frames through parser → engine (issue 10, "Done when"): whatever one field of
a real frame is replaced with, the parser either emits events or raises ParseError, the engine
takes every event it emits, and every pool's equity and maintenance stay finite."""

from __future__ import annotations

import copy
import json
import math
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.errors import ParseError
from monitor.model.portfolio import Portfolio
from monitor.venues.dydx.parse import DydxParser

DY = Path(__file__).parents[2] / "fixtures" / "feeds" / "dydx"
ADDR = "dydx1q8m3v5x9ljk2h7s0w4e6r8t0y2u4i6o8p0a2s4"
NOW = 1_778_000_010.0


def load(name: str) -> Any:
    return json.loads((DY / name).read_text())


def parent_snapshot() -> dict[str, Any]:
    child0 = load("rest_subaccount.json")["subaccount"]
    child128 = copy.deepcopy(child0)
    child128["subaccountNumber"] = 128
    return {
        "type": "subscribed",
        "channel": "v4_parent_subaccounts",
        "id": f"{ADDR}/0",
        "contents": {
            "subaccount": {
                "address": ADDR,
                "parentSubaccountNumber": 0,
                "childSubaccounts": [child0, child128],
            },
            "blockHeight": "61234567",
        },
    }


def parent_delta() -> dict[str, Any]:
    d = load("ws_channel_data_v4_subaccounts.json")
    d["channel"] = "v4_parent_subaccounts"
    for p in d["contents"]["perpetualPositions"]:
        p["subaccountNumber"] = 128
    d["contents"]["fills"] = [
        {
            "type": "LIQUIDATED",
            "side": "SELL",
            "size": "0.05",
            "price": "90000",
            "ticker": "BTC-USD",
            "createdAt": "2026-05-05T16:53:30.000Z",
            "subaccountNumber": 0,
        },
        {
            "type": "OFFSETTING",
            "side": "BUY",
            "size": "1",
            "price": "3500",
            "ticker": "ETH-USD",
            "createdAt": "2026-05-05T16:53:30.000Z",
        },
    ]
    return d


SETUP = ["ws_subscribed_v4_markets.json", "ws_subscribed_v4_subaccounts.json"]
FRAMES: list[Any] = [
    load("ws_subscribed_v4_markets.json"),
    load("ws_channel_data_v4_markets_oraclePrices.json"),
    load("ws_channel_batch_data_v4_markets.json"),
    load("ws_channel_data_v4_markets_trading.json"),
    load("ws_subscribed_v4_subaccounts.json"),
    load("ws_channel_data_v4_subaccounts.json"),
    parent_snapshot(),
    parent_delta(),
]
NASTY = st.sampled_from(
    [
        None,
        "",
        "NaN",
        "inf",
        "-inf",
        "1e200",
        "-1e303",
        1e300,
        -1e308,
        "1e15",
        "-0",
        0,
        "0",
        -1,
        "99999999999999999999",
        True,
        [],
        {},
        "\u0661",
        "x" * 300,
    ]
)


def leaves(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in leaves(v, (*path, k))] or [path]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in leaves(v, (*path, i))] or [path]
    return [path]


def put(doc: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    out = copy.deepcopy(doc)
    node = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_frames_never_crash_the_parser_or_leave_a_non_finite_pool(
    data: st.DataObject,
) -> None:
    parser = DydxParser()
    engine = Portfolio()
    for name in SETUP:
        for e in parser.parse((DY / name).read_text(), NOW):
            engine.apply(e)
    for _ in range(data.draw(st.integers(1, 4), label="frames")):
        frame = data.draw(st.sampled_from(FRAMES), label="frame")
        paths = leaves(frame)
        path = paths[data.draw(st.integers(0, len(paths) - 1), label="leaf")]
        mutated = put(frame, path, data.draw(NASTY, label="value"))
        try:
            events = parser.parse(json.dumps(mutated), NOW)
        except ParseError:
            continue
        for e in events:
            engine.apply(e)  # never raises
        for key in engine.scope_keys():
            equity, mm = engine.aggregates(key)
            assert math.isfinite(equity) and math.isfinite(mm), (key, path, mutated)
