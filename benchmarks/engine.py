"""The tick path, frame to alert decision, at 10⁵–10⁶ positions, against a naive recompute.

A **micro-benchmark** of the pure layers (parser → inbox → portfolio fast path → alert
evaluation) in one process: no event loop, no store, no delivery, no daemon. What users run is
measured by ``benchmarks/daemon.py`` (``monitor run`` as a subprocess), and the README's
performance claims come from that one.

Run::

    .venv/bin/python benchmarks/engine.py                       # 100,000 positions
    .venv/bin/python benchmarks/engine.py --positions 1000000 --ticks 20000 --repeats 3

A synthetic book is generated from ``--seed``: N positions over N/5 accounts, one venue per
account (Hyperliquid, dYdX v4, Binance USDⓈ-M, Bybit, OKX), 20 % isolated, over 140 coins
listed on every venue (700 instruments) whose popularity is Zipf (s = 1: BTC carries ~18 % of
positions, ETH ~9 %); leverage mostly 1.5–5, a tail of 1 % at 10–30 so that some scopes sit near
the alert thresholds. The tick stream has the same skew: a tick is a random instrument (Zipf),
its price moves by a log-normal step (``--daily-vol`` scaled to the pace ``--feed-rate``,
see ``tick_stream``) and the venue's own WebSocket frame is built
as text (Hyperliquid ``activeAssetCtx``, dYdX ``v4_markets`` ``oraclePrices``, Binance
``markPriceUpdate``, Bybit ``tickers`` delta, OKX ``mark-price``). The frames are built before
the clock starts.

Fast path, per frame (timed from before the parse to after the decision)::

    parse (monitor.venues.<venue>.parse) → Inbox.put → Inbox.get_nowait → Portfolio.apply_fast
    → for each scope it reports: Portfolio.rearm (no threshold crossed: a new band, the
    decision stands) or else Portfolio.risk (full, with stress) → alerts.engine.evaluate (one
    Observation per frame) → Portfolio.arm (a new band from the alert thresholds)

and the alert timers (pending ``for``, repeats) run as empty evaluations of the alert state's
shards, each once a second, spread over the frames.

Before the clock starts every scope is evaluated once and armed. The naive baseline, in the same
process and on the same book, applies the same frames' events with ``Portfolio.apply`` and then
recomputes ``risk`` of **every** scope and evaluates them all, on ``--naive-ticks`` ticks (it
is slow). Figures: median over ``--repeats`` runs of ``--ticks`` frames each (ticks/s, position
updates/s = positions on the ticked instrument per second), latency p50/p99/max over all
frames, peak RSS (``ru_maxrss``, before the naive run and after it), bytes per position (RSS
growth while the book is built / N; and once every scope is armed and evaluated, with the alert
state) and the ratio fast / naive ticks/s. The last line printed is one JSON object.

The book is moved to the permanent GC generation after loading (``gc.freeze()``), as the daemon
should do after its snapshots: otherwise each full collection walks every position.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import os
import platform
import random
import resource
import statistics
import sys
import time
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from monitor.alerts.engine import AlertState, Observation, evaluate  # noqa: E402
from monitor.alerts.rules import AlertRules  # noqa: E402
from monitor.alerts.thresholds import thresholds_from_rules  # noqa: E402
from monitor.margin.risk import ScopeRisk  # noqa: E402
from monitor.model.events import AccountSnapshot, Event, InstrumentSpec, MarkPrice  # noqa: E402
from monitor.model.fastpath import Thresholds  # noqa: E402
from monitor.model.instruments import Instrument, MaintenanceSchedule, MarginMode  # noqa: E402
from monitor.model.portfolio import Portfolio  # noqa: E402
from monitor.model.positions import Position, ScopeKey  # noqa: E402
from monitor.venues.binance import parse as binance  # noqa: E402
from monitor.venues.bybit import parse as bybit  # noqa: E402
from monitor.venues.dydx.parse import DydxParser  # noqa: E402
from monitor.venues.hyperliquid.parse import HyperliquidParser  # noqa: E402
from monitor.venues.inbox import Inbox  # noqa: E402
from monitor.venues.okx import parse as okx  # noqa: E402

VENUES = ("hyperliquid", "dydx_v4", "binance_usdm", "bybit", "okx")
MAJORS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA", "AVAX", "LINK", "SUI")
Parser = Callable[[str, float], list[Event]]
EMPTY = AlertState()
TIMERS_EVERY_S = 1.0


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


# -- the synthetic market ---------------------------------------------------------------------
class Market:
    def __init__(self, coins: int, seed: int) -> None:
        rng = random.Random(seed)
        self.coins = [*MAJORS, *(f"C{i:03d}" for i in range(len(MAJORS), coins))][:coins]
        self.weights = [1.0 / (r + 1) for r in range(coins)]  # Zipf, s = 1
        self.cum = list(_cumulative(self.weights))
        self.price: dict[str, float] = {}
        for r, c in enumerate(self.coins):
            if c == "BTC":
                self.price[c] = 95_000.0
            elif c == "ETH":
                self.price[c] = 3_500.0
            else:
                self.price[c] = math.exp(rng.uniform(math.log(0.01), math.log(400.0 / (1 + r))))

    def pick(self, rng: random.Random) -> int:
        return _bisect(self.cum, rng.random() * self.cum[-1])


def _cumulative(ws: list[float]) -> list[float]:
    total = 0.0
    out = []
    for w in ws:
        total += w
        out.append(total)
    return out


def _bisect(cum: list[float], x: float) -> int:
    lo, hi = 0, len(cum) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if cum[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


def symbol(venue: str, coin: str) -> str:
    if venue == "hyperliquid":
        return coin
    if venue == "dydx_v4":
        return f"{coin}-USD"
    if venue == "okx":
        return f"{coin}-USDT-SWAP"
    return f"{coin}USDT"


def instrument(venue: str, coin: str, rank: int) -> Instrument:
    sym = symbol(venue, coin)
    big = rank < 2
    if venue == "hyperliquid":
        sched = (
            MaintenanceSchedule.from_hyperliquid_table([(0.0, 40.0), (150e6, 20.0)])
            if big
            else MaintenanceSchedule.from_max_leverage((20.0, 10.0, 5.0, 3.0)[min(rank // 10, 3)])
        )
        return Instrument(venue, sym, sched, funding_interval_hours=1.0)
    if venue == "dydx_v4":
        mmf = 0.03 if big else 0.05 if rank < 20 else 0.1
        return Instrument(
            venue,
            sym,
            MaintenanceSchedule.flat(mmf),
            funding_interval_hours=1.0,
            initial_margin_rate=mmf * 5 / 3,
        )
    if big:
        brackets = [(0.0, 0.004), (50_000.0, 0.005), (600_000.0, 0.01), (3e6, 0.025), (2e7, 0.05)]
    else:
        brackets = [(0.0, 0.01), (5_000.0, 0.015), (25_000.0, 0.02), (100_000.0, 0.05)]
    fee = 0.0005 if venue in ("okx", "bybit") else None
    return Instrument(venue, sym, MaintenanceSchedule.continuous(brackets), fee_rate=fee)


def build_book(pf: Portfolio, mk: Market, n_positions: int, seed: int) -> int:
    """Apply instrument specs and one snapshot per account; return the number of accounts."""
    rng = random.Random(seed + 1)
    for venue in VENUES:
        for r, coin in enumerate(mk.coins):
            pf.apply(InstrumentSpec(instrument(venue, coin, r)))
    made = 0
    n_accounts = 0
    while made < n_positions:
        venue = VENUES[n_accounts % len(VENUES)]
        k = min(rng.choice((1, 2, 3, 4, 5, 5, 6, 7, 8, 9)), n_positions - made)
        coins: set[int] = set()
        while len(coins) < k:
            coins.add(mk.pick(rng))
        lev = rng.uniform(10.0, 30.0) if rng.random() < 0.01 else rng.uniform(1.5, 5.0)
        positions = []
        cross_notional = 0.0
        for r in coins:
            coin = mk.coins[r]
            px = mk.price[coin]
            notional = math.exp(rng.gauss(math.log(5_000.0), 1.2))
            size = notional / px * (1 if rng.random() < 0.55 else -1)
            entry = px * math.exp(rng.gauss(0.0, 0.03))
            iso = rng.random() < 0.2
            if not iso:
                cross_notional += notional
            positions.append(
                Position(
                    symbol(venue, coin),
                    size,
                    entry,
                    MarginMode.ISOLATED if iso else MarginMode.CROSS,
                    isolated_margin=notional / lev if iso else None,
                    leverage=lev,
                    mark_price=px,
                    oracle_price=px,
                )
            )
        pf.apply(
            AccountSnapshot(
                venue, f"acct{n_accounts:07d}", cross_notional / lev + 10.0, tuple(positions)
            )
        )
        made += k
        n_accounts += 1
    return n_accounts


# -- frames -----------------------------------------------------------------------------------
def frame(venue: str, coin: str, px: float, i: int) -> str:
    """The venue's WebSocket frame for a new price of ``coin`` (minified JSON text)."""
    p = f"{px:.8g}"
    doc: object
    if venue == "hyperliquid":
        ctx = {
            "funding": "0.0000125",
            "openInterest": "27432.1532",
            "prevDayPx": p,
            "dayNtlVlm": "2145678901.23456",
            "premium": "0.00020001",
            "oraclePx": p,
            "markPx": p,
            "midPx": p,
            "impactPxs": [p, p],
            "dayBaseVlm": "22612.34521",
        }
        doc = {"channel": "activeAssetCtx", "data": {"coin": coin, "ctx": ctx}}
    elif venue == "dydx_v4":
        price = {
            "oraclePrice": p,
            "effectiveAt": "2026-05-05T16:53:21.512Z",
            "effectiveAtHeight": str(61_234_569 + i),
            "marketId": 0,
        }
        doc = {
            "type": "channel_data",
            "connection_id": "4c2d8a1e-6f3b-4d2a-9b7e-1a2b3c4d5e6f",
            "message_id": i,
            "channel": "v4_markets",
            "version": "1.0.0",
            "contents": {"oraclePrices": {f"{coin}-USD": price}},
        }
    elif venue == "binance_usdm":
        doc = {
            "e": "markPriceUpdate",
            "E": 1_778_000_001_000 + i,
            "s": f"{coin}USDT",
            "p": p,
            "i": p,
            "P": p,
            "r": "0.00006521",
            "T": 1_778_025_600_000,
        }
    elif venue == "bybit":
        data = {
            "symbol": f"{coin}USDT",
            "markPrice": p,
            "indexPrice": p,
            "fundingRate": "0.0000655",
            "bid1Price": p,
            "bid1Size": "1.204",
            "ask1Price": p,
            "ask1Size": "2.331",
        }
        doc = {
            "topic": f"tickers.{coin}USDT",
            "type": "delta",
            "data": data,
            "cs": 418_273_651_301,
            "ts": 1_778_000_001_112 + i,
        }
    else:
        inst = f"{coin}-USDT-SWAP"
        item = {"instType": "SWAP", "instId": inst, "markPx": p, "ts": str(1_778_000_001_200 + i)}
        doc = {"arg": {"channel": "mark-price", "instId": inst}, "data": [item]}
    return orjson.dumps(doc).decode()


def tick_stream(
    mk: Market, n: int, daily_vol: float, feed_rate: float, seed: int
) -> list[tuple[int, str]]:
    """``n`` (venue index, frame) pairs; each venue's prices follow their own random walk.

    The stream stands for ``feed_rate`` frames/s over all instruments, so an instrument with a
    share ``x`` of the ticks moves ``feed_rate·x`` times a second and each of its steps has a
    log-return stdev of ``vol·sqrt(1 / (86400·feed_rate·x))``, ``vol`` being its daily
    volatility: ``daily_vol`` for BTC, 1.3× for ETH, 2× for the others.
    """
    rng = random.Random(seed + 2)
    px = {(v, c): p for v in range(len(VENUES)) for c, p in mk.price.items()}
    total = mk.cum[-1]
    step = {}
    for r, c in enumerate(mk.coins):
        share = mk.weights[r] / total / len(VENUES)
        vol = daily_vol * (1.0 if r == 0 else 1.3 if r == 1 else 2.0)
        step[c] = vol * math.sqrt(1.0 / (86_400.0 * feed_rate * share))
    out = []
    for i in range(n):
        v = rng.randrange(len(VENUES))
        coin = mk.coins[mk.pick(rng)]
        p = px[(v, coin)] * math.exp(rng.gauss(0.0, step[coin]))
        px[(v, coin)] = p
        out.append((v, frame(VENUES[v], coin, p, i)))
    return out


def parsers() -> list[Parser]:
    return [
        HyperliquidParser().parse,
        DydxParser().parse,
        binance.parse,
        bybit.parse,
        okx.parse,
    ]


# -- the decision -----------------------------------------------------------------------------
class Decider:
    """The alert decision: the alert state split in ``shards`` by account (``evaluate`` is
    pure and its alerts, peaks and last distances are per scope, so with no stale feed an
    account's alerts depend on its own state only; a small shard keeps each evaluation's
    copies small), plus the thresholds each scope is armed with."""

    def __init__(self, pf: Portfolio, rules: AlertRules, shards: int = 256) -> None:
        self.pf = pf
        self.rules = rules
        self.states = [EMPTY] * shards
        self.transitions = 0
        self.evaluations = 0
        self.rearmed = 0
        self._next_timer = 0
        self._timers_due = 0.0

    def shard(self, key: ScopeKey) -> int:
        return zlib.crc32(f"{key.venue}:{key.account}".encode()) % len(self.states)

    def thresholds(self, key: ScopeKey) -> Thresholds:
        peak = self.states[self.shard(key)].peaks.get(str(key))
        return thresholds_from_rules(self.rules, f"{key.venue}:{key.account}", peak)

    def decide(self, keys: list[ScopeKey], now: float, *, screen: bool = True) -> None:
        """Scopes whose band was left: when no threshold was crossed (``rearm``) the
        decision stands and the scope only gets a new band; otherwise its full risk goes
        through the alert engine and it is armed again."""
        groups: dict[int, tuple[list[ScopeRisk], list[ScopeKey]]] = {}
        pf = self.pf
        for key in keys:
            if screen and not pf.rearm(key, self.thresholds(key)):
                self.rearmed += 1
                continue
            risks, vanished = groups.setdefault(self.shard(key), ([], []))
            r = pf.risk(key)
            if r is None:
                vanished.append(key)
            else:
                risks.append(r)
        for shard, (risks, vanished) in groups.items():
            self.tell(shard, Observation(risks=risks, vanished=vanished), now)
            for r in risks:
                pf.arm(r.key, self.thresholds(r.key))

    def tell(self, shard: int, obs: Observation, now: float) -> None:
        out, self.states[shard] = evaluate(obs, now, self.states[shard], self.rules)
        self.transitions += len(out)
        self.evaluations += len(obs.risks)

    def timers(self, now: float) -> None:
        """The alert timers (pending ``for``, repeats): one shard at a time, round robin,
        each shard once per ``TIMERS_EVERY_S``."""
        if now < self._timers_due:
            return
        self._timers_due = now + TIMERS_EVERY_S / len(self.states)
        shard = self._next_timer
        self._next_timer = (shard + 1) % len(self.states)
        if self.states[shard].alerts:
            self.tell(shard, Observation(), now)

    def alerts_active(self) -> int:
        return sum(len(st.alerts) for st in self.states)


# -- runs -------------------------------------------------------------------------------------
def run_fast(
    pf: Portfolio, decider: Decider, frames: list[tuple[int, str]], parse: list[Parser]
) -> dict[str, Any]:
    inbox = Inbox()
    lat: list[float] = []
    touched_positions = 0
    reported = 0
    perf = time.perf_counter
    markets = pf.markets
    t_start = perf()
    for v, text in frames:
        t0 = perf()
        decider.timers(t0)  # alert timers, each shard once a second
        for ev in parse[v](text, t0):
            inbox.put(ev)
        keys: list[ScopeKey] = []
        for ev in inbox.get_nowait():
            keys.extend(pf.apply_fast(ev))
            if type(ev) is MarkPrice:
                m = markets.get((ev.venue, ev.symbol))
                touched_positions += len(m.holdings) if m is not None else 0
        if keys:
            reported += len(keys)
            decider.decide(keys, t0)
        lat.append(perf() - t0)
    elapsed = perf() - t_start
    return {
        "elapsed_s": elapsed,
        "ticks_per_s": len(frames) / elapsed,
        "position_updates_per_s": touched_positions / elapsed,
        "latencies": lat,
        "scopes_reported": reported,
    }


def run_naive(
    pf: Portfolio, decider: Decider, frames: list[tuple[int, str]], parse: list[Parser]
) -> dict[str, Any]:
    """Every frame: ``apply``, then the full risk of every scope and its evaluation."""
    inbox = Inbox()
    perf = time.perf_counter
    lat = []
    for v, text in frames:
        t0 = perf()
        for ev in parse[v](text, t0):
            inbox.put(ev)
        for ev in inbox.get_nowait():
            pf.apply(ev)
        groups: dict[int, list[ScopeRisk]] = {}
        for r in pf.risks():
            groups.setdefault(decider.shard(r.key), []).append(r)
        for shard, risks in groups.items():
            decider.tell(shard, Observation(risks=risks), t0)
        lat.append(perf() - t0)
    return {"ticks_per_s": len(frames) / sum(lat), "latencies": lat}


def pct(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, math.ceil(q * len(s)) - 1))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--positions", type=int, default=100_000)
    ap.add_argument("--ticks", type=int, default=20_000, help="frames per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--naive-ticks", type=int, default=3)
    ap.add_argument("--coins", type=int, default=140, help="coins (× 5 venues = instruments)")
    ap.add_argument("--daily-vol", type=float, default=0.03, help="BTC's daily volatility")
    ap.add_argument(
        "--feed-rate",
        type=float,
        default=20_000.0,
        help="frames/s the stream stands for (sets the price step per tick, see tick_stream)",
    )
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)

    rss0 = rss_bytes()
    t = time.perf_counter()
    mk = Market(args.coins, args.seed)
    pf = Portfolio()
    n_accounts = build_book(pf, mk, args.positions, args.seed)
    gc.collect()
    rss_book = rss_bytes()
    build_s = time.perf_counter() - t
    n_scopes = len(pf.scope_keys())

    rules = AlertRules.default()
    decider = Decider(pf, rules)
    t = time.perf_counter()
    every = pf.scope_keys()
    for i in range(0, len(every), 2000):  # evaluate and arm every scope
        decider.decide(every[i : i + 2000], 0.0, screen=False)
    del every
    gc.collect()
    rss_armed = rss_bytes()
    arm_s = time.perf_counter() - t
    alerts_active = decider.alerts_active()
    frames = tick_stream(
        mk, args.ticks * args.repeats + args.naive_ticks, args.daily_vol, args.feed_rate, args.seed
    )
    parse = parsers()
    gc.collect()
    gc.freeze()

    runs = []
    lat: list[float] = []
    for r in range(args.repeats):
        chunk = frames[r * args.ticks : (r + 1) * args.ticks]
        res = run_fast(pf, decider, chunk, parse)
        lat.extend(res.pop("latencies"))
        runs.append(res)
        print(
            f"run {r + 1}: {res['ticks_per_s']:,.0f} ticks/s, "
            f"{res['position_updates_per_s']:,.0f} position updates/s, "
            f"{res['scopes_reported']} scopes reported",
            file=sys.stderr,
        )
    peak_fast = peak_rss_bytes()
    naive_decider = Decider(pf, rules)
    naive_decider.states = list(decider.states)
    naive = run_naive(pf, naive_decider, frames[args.repeats * args.ticks :], parse)
    fast_tps = statistics.median(r["ticks_per_s"] for r in runs)
    result = {
        "benchmark": "engine",
        "positions": args.positions,
        "accounts": n_accounts,
        "scopes": n_scopes,
        "instruments": len(pf.markets),
        "ticks": args.ticks,
        "daily_vol": args.daily_vol,
        "feed_rate": args.feed_rate,
        "repeats": args.repeats,
        "ticks_per_s": round(fast_tps),
        "position_updates_per_s": round(
            statistics.median(r["position_updates_per_s"] for r in runs)
        ),
        "latency_p50_us": round(pct(lat, 0.50) * 1e6, 1),
        "latency_p99_us": round(pct(lat, 0.99) * 1e6, 1),
        "latency_max_us": round(max(lat) * 1e6, 1),
        "scopes_reported_per_tick": round(
            statistics.median(r["scopes_reported"] for r in runs) / args.ticks, 4
        ),
        "naive_ticks": args.naive_ticks,
        "naive_ticks_per_s": round(naive["ticks_per_s"], 4),
        "speedup": round(fast_tps / naive["ticks_per_s"]),
        "peak_rss_mb": round(peak_fast / 2**20, 1),
        "peak_rss_with_naive_mb": round(peak_rss_bytes() / 2**20, 1),
        "book_rss_mb": round((rss_book - rss0) / 2**20, 1),
        "bytes_per_position": round((rss_book - rss0) / args.positions),
        "bytes_per_position_armed_with_alert_state": round((rss_armed - rss0) / args.positions),
        "alerts_active_at_start": alerts_active,
        "build_s": round(build_s, 1),
        "arm_all_s": round(arm_s, 1),
        "python": platform.python_version(),
    }
    w = max(len(k) for k in result)
    for k, v in result.items():
        print(f"{k:<{w}}  {v}", file=sys.stderr)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
