"""The offline demo's market: a crash and rebound of BTC, ETH and SOL with a funding spike.

``python -m monitor.demo OUT.jsonl`` writes the recording bundled as
``config/demo_recording.jsonl``; the same command always writes the same bytes (no randomness
beyond a fixed seed, no clock). The recording holds Hyperliquid wire frames, one JSON object per
line, in the format of ``monitor record`` (``monitor/venues/recording.py``)::

    {"ts_recv": 1778000000.0, "venue": "hyperliquid", "channel": "...", "frame": "<raw text>"}

Market (30 minutes from 2026-05-05 16:53:20 UTC):

* 0–5 min calm; 5–11 min a crash: BTC −11.5 %, ETH −8 %, SOL −7.5 %; 11–15 min at the bottom;
  15–23 min a rebound to about −1 %; calm again to the end.
* SOL's hourly funding spikes from 0.00125 % to 0.25 % between minutes 10 and 17.

Two accounts:

* ``0x1111…``, **cross**: a BTC long (2 BTC at 95,000) hedged by an ETH short (−20 ETH at
  3,500) on 21,000 of equity. The hedge is imperfect: BTC falls further than ETH, the pool's
  margin ratio climbs from 18 % to about 71 % at the bottom.
* ``0x2222…``, **isolated**: a SOL long (100 SOL at 180) on 2,000 of isolated margin; its
  liquidation price is 164.10, 1.4 % below the bottom of the crash.
"""

from __future__ import annotations

import json
import math
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

T0 = 1_778_000_000.0
DURATION = 1800.0
STEP = 5.0
STATE_EVERY = 60.0

#: coin → (start price, crash depth, max leverage, margin table id)
COINS: dict[str, tuple[float, float, int, int]] = {
    "BTC": (95_000.0, 0.115, 40, 56),
    "ETH": (3_500.0, 0.08, 25, 55),
    "SOL": (180.0, 0.075, 20, 54),
}
TABLES: dict[int, tuple[str, list[tuple[str, int]]]] = {
    54: ("tiered 20x", [("0.0", 20), ("70000000.0", 10)]),
    55: ("tiered 25x", [("0.0", 25), ("100000000.0", 15)]),
    56: ("tiered 40x", [("0.0", 40), ("150000000.0", 20)]),
}
CROSS_USER = "0x1111111111111111111111111111111111111111"
ISOLATED_USER = "0x2222222222222222222222222222222222222222"
#: user → list of (coin, szi, entry, leverage type, leverage value, isolated margin)
ACCOUNTS: dict[str, tuple[float, list[tuple[str, float, float, str, int, float]]]] = {
    # (cross raw USD balance, positions); cross equity = raw + Σ szi·mark
    CROSS_USER: (
        21_000.0 - (2.0 * 95_000.0 - 20.0 * 3_500.0),
        [
            ("BTC", 2.0, 95_000.0, "cross", 10, 0.0),
            ("ETH", -20.0, 3_500.0, "cross", 10, 0.0),
        ],
    ),
    ISOLATED_USER: (500.0, [("SOL", 100.0, 180.0, "isolated", 10, 2_000.0)]),
}
BASE_FUNDING = 0.0000125
SPIKE_FUNDING = 0.0025


def _ease(x: float) -> float:
    """0 → 1 smoothly over x in [0, 1]."""
    x = min(max(x, 0.0), 1.0)
    return 0.5 - 0.5 * math.cos(math.pi * x)


def drawdown(t: float, depth: float) -> float:
    """Fractional move of the market at ``t`` seconds (negative in the crash)."""
    if t < 300:
        return 0.0
    if t < 660:
        return -depth * _ease((t - 300) / 360)
    if t < 900:
        return -depth
    if t < 1380:
        return -depth + (depth - 0.01) * _ease((t - 900) / 480)
    return -0.01


def funding(coin: str, t: float) -> float:
    if coin == "SOL" and 600 <= t < 1020:
        return SPIKE_FUNDING
    return BASE_FUNDING


def _s(x: float, digits: int = 6) -> str:
    return f"{x:.{digits}f}".rstrip("0").rstrip(".") if "." in f"{x:.{digits}f}" else f"{x}"


def _meta() -> list[Any]:
    universe = [
        {"szDecimals": 2, "name": c, "maxLeverage": lev, "marginTableId": tid}
        for c, (_, _, lev, tid) in COINS.items()
    ]
    tables = [
        [
            tid,
            {
                "description": desc,
                "marginTiers": [{"lowerBound": lb, "maxLeverage": ml} for lb, ml in tiers],
            },
        ]
        for tid, (desc, tiers) in TABLES.items()
    ]
    ctxs = [_ctx(c, 0.0, p0) for c, (p0, _, _, _) in COINS.items()]
    return [{"universe": universe, "marginTables": tables, "collateralToken": 0}, ctxs]


def _ctx(coin: str, t: float, mark: float) -> dict[str, Any]:
    oracle = mark * (1 - 0.0002)
    return {
        "funding": _s(funding(coin, t), 8),
        "openInterest": "1000.0",
        "prevDayPx": _s(COINS[coin][0], 2),
        "dayNtlVlm": "1000000.0",
        "premium": "0.0002",
        "oraclePx": _s(oracle, 4),
        "markPx": _s(mark, 4),
        "midPx": _s(mark, 4),
        "impactPxs": [_s(mark * 0.9999, 4), _s(mark * 1.0001, 4)],
        "dayBaseVlm": "100.0",
    }


def _state(user: str, marks: dict[str, float], t: float) -> dict[str, Any]:
    raw_cross, legs = ACCOUNTS[user]
    positions: list[dict[str, Any]] = []
    cross_value = cross_ntl = cross_used = cross_mm = 0.0
    iso_raw_total = iso_used_total = iso_ntl = 0.0
    for coin, szi, entry, kind, lev, iso_margin in legs:
        mark = marks[coin]
        value = abs(szi) * mark
        upnl = szi * (mark - entry)
        m = 1.0 / (2 * COINS[coin][2])
        lev_obj: dict[str, Any] = {"type": kind, "value": lev}
        if kind == "isolated":
            raw = iso_margin - szi * entry
            lev_obj["rawUsd"] = _s(raw)
            used = raw + szi * mark
            liq = raw / (abs(szi) * (m - (1 if szi > 0 else -1)))
            iso_raw_total += raw
            iso_used_total += used
            iso_ntl += value
        else:
            used = value / lev
            cross_value += szi * mark
            cross_ntl += value
            cross_used += used
            cross_mm += value * m
            liq = math.nan  # filled in below, once the pool's totals are known
        positions.append(
            {
                "coin": coin,
                "szi": _s(szi, 4),
                "leverage": lev_obj,
                "entryPx": _s(entry, 2),
                "positionValue": _s(value),
                "unrealizedPnl": _s(upnl),
                "returnOnEquity": _s(upnl / (abs(szi) * entry / lev), 8),
                "liquidationPx": liq,
                "marginUsed": _s(used),
                "maxLeverage": COINS[coin][2],
                "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"},
            }
        )
    cross_av = raw_cross + cross_value
    for p, (coin, szi, _, kind, _, _) in zip(positions, legs, strict=True):
        if kind == "cross":
            m = 1.0 / (2 * COINS[coin][2])
            side = 1 if szi > 0 else -1
            mark = marks[coin]
            liq = mark - side * (cross_av - cross_mm) / (abs(szi) * (1 - side * m))
            p["liquidationPx"] = _s(liq, 6) if 0 < liq < 1e15 else None
        else:
            p["liquidationPx"] = _s(p["liquidationPx"], 6)
    return {
        "marginSummary": {
            "accountValue": _s(cross_av + iso_used_total),
            "totalNtlPos": _s(cross_ntl + iso_ntl),
            "totalRawUsd": _s(raw_cross + iso_raw_total),
            "totalMarginUsed": _s(cross_used + iso_used_total),
        },
        "crossMarginSummary": {
            "accountValue": _s(cross_av),
            "totalNtlPos": _s(cross_ntl),
            "totalRawUsd": _s(raw_cross),
            "totalMarginUsed": _s(cross_used),
        },
        "crossMaintenanceMarginUsed": _s(cross_mm),
        "withdrawable": _s(max(cross_av - cross_used, 0.0)),
        "assetPositions": [{"type": "oneWay", "position": p} for p in positions],
        "time": int((T0 + t) * 1000),
    }


def frames() -> Iterator[dict[str, Any]]:
    """Every recorded line of the demo, in time order."""
    rng = random.Random(20260505)
    yield {
        "ts_recv": T0,
        "venue": "hyperliquid",
        "channel": "rest:metaAndAssetCtxs",
        "frame": json.dumps(_meta(), separators=(",", ":")),
    }
    t = 0.0
    noise = dict.fromkeys(COINS, 0.0)
    while t <= DURATION:
        marks: dict[str, float] = {}
        for coin, (p0, depth, _, _) in COINS.items():
            noise[coin] = 0.8 * noise[coin] + rng.gauss(0.0, 0.0004)
            marks[coin] = round(
                p0 * (1.0 + drawdown(t, depth) + noise[coin]), 1 if p0 > 1000 else 3
            )
            frame = {
                "channel": "activeAssetCtx",
                "data": {"coin": coin, "ctx": _ctx(coin, t, marks[coin])},
            }
            yield {
                "ts_recv": round(T0 + t, 3),
                "venue": "hyperliquid",
                "channel": "activeAssetCtx",
                "frame": json.dumps(frame, separators=(",", ":")),
            }
        if t % STATE_EVERY == 0:
            for user in ACCOUNTS:
                frame = {
                    "channel": "clearinghouseState",
                    "data": {"dex": "", "user": user, "clearinghouseState": _state(user, marks, t)},
                }
                yield {
                    "ts_recv": round(T0 + t + 0.5, 3),
                    "venue": "hyperliquid",
                    "channel": "clearinghouseState",
                    "frame": json.dumps(frame, separators=(",", ":")),
                }
        t += STEP


def write(path: Path) -> int:
    lines = [json.dumps(f, separators=(",", ":")) for f in frames()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return len(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m monitor.demo OUT.jsonl", file=sys.stderr)
        return 2
    n = write(Path(args[0]))
    print(f"wrote {n} frames to {args[0]}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
