"""Parse cost per frame: our native parsers vs ``orjson.loads`` vs the ccxt path.

Run::

    .venv/bin/python benchmarks/parsers.py            # default: 7 rounds of ~0.2 s per path
    .venv/bin/python benchmarks/parsers.py --rounds 11 --batch-seconds 0.3

For every WebSocket fixture frame of every venue (``tests/fixtures/feeds/<venue>/``) it measures,
in the same process and run, the median µs per frame of

* ``native``: our pure parser (``monitor.venues.<venue>.parse``, the ``FrameParser`` class the
  live feed runs), from the frame text to events;
* ``orjson``: ``orjson.loads`` of the same text (the floor any JSON parser pays);
* ``build``: constructing the same event objects the parser returned, alone (how much of
  ``native`` is the frozen-dataclass events rather than decoding and checking);
* ``ccxt``: ccxt.pro's own path for the same text, ``client.handle_text_or_binary_message``
  (orjson decode, ``handle_message``, parse to a unified ticker/funding structure, cache and
  resolve; feeds.md §5.4), with the exchange's markets loaded from the fixtures (no network).

and prints a table, then one JSON line (``{"benchmark": "parsers", ...}``) for machines. The
target is ``native / orjson <= 3``. Each path is timed in batches (one ``perf_counter`` pair per
batch, so the timer's own cost is spread out); a round's figure is batch time / frames, and the
median over the rounds is reported. The paths take turns within each round and the ratio is
the median of the per-round ratios, so load from other processes skews it less. Stateful
parsers (dYdX, Hyperliquid) are primed first (dYdX with its ``v4_markets`` snapshot) and
reused, as in the live feed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FEEDS = ROOT / "tests" / "fixtures" / "feeds"

# venue → WS frame fixtures measured
FRAMES: dict[str, list[str]] = {
    "binance": [
        "ws_markPriceUpdate.json",
        "ws_combined_markPriceUpdate.json",
        "ws_markPrice_arr.json",
    ],
    "bybit": ["ws_tickers_snapshot.json", "ws_tickers_delta.json"],
    "okx": ["ws_mark-price.json", "ws_funding-rate.json"],
    "hyperliquid": ["ws_activeAssetCtx.json", "ws_clearinghouseState.json"],
    "dydx": [
        "ws_channel_data_v4_markets_oraclePrices.json",
        "ws_channel_batch_data_v4_markets.json",
        "ws_channel_data_v4_markets_trading.json",
    ],
}


def text(venue: str, name: str) -> str:
    """The fixture as one compact WS text frame (venues send minified JSON)."""
    return orjson.dumps(orjson.loads((FEEDS / venue / name).read_bytes())).decode()


def _batch_size(fn: Callable[[str], object], frame: str, batch_seconds: float) -> int:
    n = 1
    while True:  # double until a batch takes a quarter of the target, then scale
        t0 = time.perf_counter()
        for _ in range(n):
            fn(frame)
        spent = time.perf_counter() - t0
        if spent >= batch_seconds / 4 or n >= 1 << 22:
            return max(1, int(n * batch_seconds / max(spent, 1e-9)))
        n *= 2


def measure(
    paths: dict[str, Callable[[str], object]], frame: str, rounds: int, batch_seconds: float
) -> tuple[dict[str, float], float | None]:
    """Median µs per call of each path, and the median per-round ``native/orjson`` ratio.

    The paths are timed in turn within each round (interleaved), so a change in machine load
    during the run hits all of them alike and the ratio stays fair.
    """
    sizes = {name: _batch_size(fn, frame, batch_seconds) for name, fn in paths.items()}
    samples: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(rounds):
        for name, fn in paths.items():
            n = sizes[name]
            t0 = time.perf_counter()
            for _ in range(n):
                fn(frame)
            samples[name].append((time.perf_counter() - t0) / n * 1e6)
    medians = {name: statistics.median(v) for name, v in samples.items()}
    ratio = None
    if "native" in samples:
        ratio = statistics.median(
            a / b for a, b in zip(samples["native"], samples["orjson"], strict=True)
        )
    return medians, ratio


# -- native parsers ------------------------------------------------------------------------
def native_parsers(missing: list[str]) -> dict[str, Callable[[str, float], object]]:
    out: dict[str, Callable[[str, float], object]] = {}
    # the parsers the native feeds run (refused entries collected, Bybit's funding merge)
    from monitor.venues.binance.parse import BinanceParser
    from monitor.venues.bybit.parse import BybitParser
    from monitor.venues.okx.parse import OkxParser

    out.update(binance=BinanceParser().parse, bybit=BybitParser().parse, okx=OkxParser().parse)
    try:
        from monitor.venues.hyperliquid.parse import HyperliquidParser

        out["hyperliquid"] = HyperliquidParser().parse
    except ImportError as exc:
        missing.append(f"hyperliquid native parser: {exc}")
    try:
        from monitor.venues.dydx.parse import DydxParser

        dydx = DydxParser()
        dydx.parse(text("dydx", "ws_subscribed_v4_markets.json"), 0.0)
        out["dydx"] = dydx.parse
    except ImportError as exc:
        missing.append(f"dydx native parser: {exc}")
    return out


# -- ccxt ----------------------------------------------------------------------------------
def _body(venue: str, name: str) -> Any:
    return orjson.loads((FEEDS / venue / name).read_bytes())


BYBIT_INSTRUMENTS = {  # v5 instruments-info shape; not in the shared fixtures
    "retCode": 0,
    "retMsg": "OK",
    "result": {
        "category": "linear",
        "list": [
            {
                "symbol": s,
                "contractType": "LinearPerpetual",
                "status": "Trading",
                "baseCoin": b,
                "quoteCoin": "USDT",
                "settleCoin": "USDT",
                "launchTime": "0",
                "deliveryTime": "0",
                "priceScale": "2",
                "fundingInterval": 480,
                "leverageFilter": {
                    "minLeverage": "1",
                    "maxLeverage": "100",
                    "leverageStep": "0.01",
                },
                "priceFilter": {"minPrice": "0.1", "maxPrice": "1999999", "tickSize": "0.1"},
                "lotSizeFilter": {"maxOrderQty": "100", "minOrderQty": "0.001", "qtyStep": "0.001"},
            }
            for s, b in (("BTCUSDT", "BTC"), ("ETHUSDT", "ETH"))
        ],
        "nextPageCursor": "",
    },
    "time": 1778000000000,
}
OKX_INSTRUMENTS = {  # v5 public/instruments shape; not in the shared fixtures
    "code": "0",
    "msg": "",
    "data": [
        {
            "instId": "BTC-USDT-SWAP",
            "instType": "SWAP",
            "instFamily": "BTC-USDT",
            "uly": "BTC-USDT",
            "ctType": "linear",
            "ctVal": "0.01",
            "ctValCcy": "BTC",
            "ctMult": "1",
            "settleCcy": "USDT",
            "state": "live",
            "lever": "100",
            "lotSz": "0.01",
            "minSz": "0.01",
            "tickSz": "0.1",
            "listTime": "1606468572000",
            "expTime": "",
            "baseCcy": "",
            "quoteCcy": "",
            "optType": "",
            "alias": "",
        }
    ],
}


async def _ccxt_exchanges(missing: list[str]) -> dict[str, tuple[Any, Any]]:
    """venue → (exchange, ws client) with markets loaded from fixtures, never dialled."""
    import ccxt.pro

    async def const(value: Any) -> Any:
        return value

    made: dict[str, tuple[Any, Any]] = {}

    async def setup(venue: str, ex: Any, patch: dict[str, Any], url: str) -> None:
        try:
            for attr, fn in patch.items():
                setattr(ex, attr, fn)
            await ex.load_markets()
            made[venue] = (ex, ex.client(url))
        except Exception as exc:  # report and go on: the benchmark measures what it can
            missing.append(f"ccxt {ex.id}: {type(exc).__name__}: {exc}"[:200])
            await ex.close()

    bn = ccxt.pro.binanceusdm()
    await setup(
        "binance",
        bn,
        {
            "fapiPublicGetExchangeInfo": lambda params=None: const(
                _body("binance", "rest_exchangeInfo.json")
            )
        },
        "wss://fstream.binance.com/market/ws/0",
    )
    by = ccxt.pro.bybit({"options": {"fetchMarkets": {"types": ["linear"]}}})
    await setup(
        "bybit",
        by,
        {"publicGetV5MarketInstrumentsInfo": lambda params=None: const(BYBIT_INSTRUMENTS)},
        "wss://stream.bybit.com/v5/public/linear",
    )
    ok = ccxt.pro.okx({"options": {"fetchMarkets": {"types": ["swap"]}}})
    await setup(
        "okx",
        ok,
        {"publicGetPublicInstruments": lambda params=None: const(OKX_INSTRUMENTS)},
        "wss://ws.okx.com:8443/ws/v5/public",
    )

    def hl_info(params: Any = None) -> Any:
        kind = (params or {}).get("type")
        if kind == "spotMeta":
            return const(_body("hyperliquid", "rest_info_spotMeta_response.json"))
        return const(_body("hyperliquid", "rest_info_metaAndAssetCtxs_response.json"))

    hl = ccxt.pro.hyperliquid({"options": {"fetchMarkets": {"types": ["swap"]}}})
    await setup("hyperliquid", hl, {"publicPostInfo": hl_info}, "wss://api.hyperliquid.xyz/ws")
    missing.append("ccxt dydx: ccxt.pro dydx streams no tickers or markets (feeds.md §5.1)")
    return made


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--batch-seconds", type=float, default=0.2)
    args = ap.parse_args(argv)
    return asyncio.run(_run(args.rounds, args.batch_seconds))


async def _run(rounds: int, batch_seconds: float) -> int:
    missing: list[str] = []
    natives = native_parsers(missing)
    exchanges = await _ccxt_exchanges(missing)
    rows: list[dict[str, Any]] = []
    try:
        for venue, names in FRAMES.items():
            for name in names:
                frame = text(venue, name)
                row: dict[str, Any] = {"venue": venue, "frame": name, "bytes": len(frame)}
                parse = natives.get(venue)
                paths: dict[str, Callable[[str], object]] = {"orjson": orjson.loads}
                row["events"] = None
                if parse is not None:
                    paths["native"] = lambda f, p=parse: p(f, 1.0)
                    # the same event objects built alone: what the frozen dataclasses cost
                    made = [(type(e), _values(e)) for e in parse(frame, 1.0)]  # type: ignore[attr-defined]
                    row["events"] = len(made)
                    paths["build"] = lambda _f, m=made: [cls(*vals) for cls, vals in m]
                if venue in exchanges:
                    client = exchanges[venue][1]
                    try:
                        client.handle_text_or_binary_message(frame)
                        paths["ccxt"] = client.handle_text_or_binary_message
                    except Exception as exc:  # a frame ccxt cannot take is reported, not fatal
                        missing.append(f"ccxt {venue} {name}: {type(exc).__name__}: {exc}"[:200])
                medians, ratio = measure(paths, frame, rounds, batch_seconds)
                row["orjson_us"] = medians["orjson"]
                row["native_us"] = medians.get("native")
                row["events_us"] = medians.get("build")
                row["ccxt_us"] = medians.get("ccxt")
                row["native_over_orjson"] = ratio
                rows.append(row)
    finally:
        for ex, _ in exchanges.values():
            await ex.close()

    head = f"{'venue':<12}{'frame':<46}{'bytes':>6}{'native µs':>11}{'orjson µs':>11}"
    head += f"{'ratio':>7}{'ccxt µs':>10}{'ccxt/nat':>9}{'events':>7}{'build µs':>10}"
    print(head)
    print("-" * len(head))
    for r in rows:
        nat, orj, cc = r["native_us"], r["orjson_us"], r["ccxt_us"]
        print(
            f"{r['venue']:<12}{r['frame']:<46}{r['bytes']:>6}"
            f"{_f(nat):>11}{_f(orj):>11}{_f(r['native_over_orjson'], 2):>7}"
            f"{_f(cc):>10}{_f(cc / nat if cc and nat else None, 1):>9}"
            f"{r.get('events', '-'):>7}{_f(r['events_us']):>10}"
        )
    ratios = [r["native_over_orjson"] for r in rows if r["native_over_orjson"] is not None]
    within = all(x <= 3.0 for x in ratios)
    print(f"\nnative within 3x of orjson.loads on every frame: {'yes' if within else 'NO'}")
    for m in missing:
        print(f"not measured: {m}")
    print(
        json.dumps(
            {
                "benchmark": "parsers",
                "python": platform.python_version(),
                "machine": platform.machine(),
                "rounds": rounds,
                "results": [
                    {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                    for r in rows
                ],
                "max_native_over_orjson": round(max(ratios), 3) if ratios else None,
                "within_3x": within,
                "missing": missing,
            }
        )
    )
    return 0


def _values(event: Any) -> tuple[Any, ...]:
    if isinstance(event, msgspec.Struct):
        return tuple(getattr(event, name) for name in event.__struct_fields__)
    return tuple(getattr(event, f.name) for f in dataclasses.fields(event) if f.init)


def _f(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


if __name__ == "__main__":
    raise SystemExit(main())
