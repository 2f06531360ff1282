"""A crash in one process: engine steps and store writes against the fair naive baseline.

On ``benchmarks/daemon.py``'s seeded book.

What ``benchmarks/daemon.py`` measures through a real ``monitor run`` (sockets, delivery, the
status flush, wall clock) this measures as CPU in one process, so a change to the engine or
to a step's write can be compared at a noise a daemon run does not reach. It is a
**micro-benchmark**: the README's figures come from ``daemon.py``.

Run::

    .venv/bin/python benchmarks/crash.py                      # 100,000 positions, ~1 min
    .venv/bin/python benchmarks/crash.py --positions 20000 --repeats 3

Each repeat builds ``daemon.py``'s book (``--seed``, ``--coins``) from its configuration text,
loads it and the first prices through ``Engine.receive`` (``monitor.app.build_engine``, the
daemon's engine), then sends every instrument's price × 0.7 at once and steps the engine the
way the daemon's loop does until it owes nothing: each step is ``Engine.receive`` then
``monitor.shell.persist`` into a real SQLite store (a temporary directory; ``checkpoint_apart``
as the live daemon sets it, the store's ``checkpoint`` after every second's worth of steps'
CPU, as its status loop), with the alert lines logged as JSON to a temporary file, and the
collector as ``monitor run`` sets it (``monitor.app.Freezer``: its thresholds, the book frozen
as it grows). Before 2026-12-01 this harness left the collector at Python's defaults: its full
collections walked the whole book, CPU the daemon does not spend (22.1 against 17.1 s of one
100k crash). The crash is timed with ``time.process_time`` (every thread of this process:
SQLite's too), from the crash's frames to the last step; ``criticals_half_cpu_s`` and
``criticals_all_cpu_s`` are the crash's CPU by the end of the step that wrote half and the last
of its critical alerts (``criticals``: critical transitions fired, escalated or told, as
``daemon.py`` counts them), the in-process side of ``daemon.py``'s time to every critical
written.

The **fair naive baseline** (``daemon.naive``, the same function ``daemon.py`` runs): apply each
crash frame's event, recompute in full only the scopes it touched and evaluate them, no store.
Both are reported with their ratio; one JSON line at the end, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

import daemon as bench  # noqa: E402  (benchmarks/daemon.py: the book, the frames, the baseline)

from monitor.alerts.engine import AlertState, TransitionKind  # noqa: E402
from monitor.alerts.rules import Severity  # noqa: E402
from monitor.app import Freezer, build_engine  # noqa: E402
from monitor.config import Config, load_config  # noqa: E402
from monitor.logs import configure_logging  # noqa: E402
from monitor.notify.outbound import labels_of  # noqa: E402
from monitor.shell import RiskView, persist  # noqa: E402
from monitor.store.db import open_store  # noqa: E402
from monitor.venues.hyperliquid.parse import HyperliquidParser  # noqa: E402

HOOK = "json://127.0.0.1:1/h"
CRITICAL = Severity.CRITICAL
#: the transitions ``daemon.py`` counts as the crash's criticals (a critical alert told)
ALERTING = frozenset({TransitionKind.FIRED, TransitionKind.ESCALATED, TransitionKind.EVENT})


def crash_once(positions: int, seed: int, coins: int) -> dict[str, Any]:
    """One repeat: build and load the book, then the crash; returns its figures."""
    rng = random.Random(seed)
    m = bench.Market.make(coins, rng)
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        book, _, _ = bench.write_book(m, positions, rng, "toml", tmp)
        cfg = tmp / "monitor.toml"
        cfg.write_text(bench.config_toml(m, "ws://127.0.0.1:1", "http://127.0.0.1:1", HOOK, book))
        # the collector as ``monitor run`` sets it: its thresholds, the configuration read
        # without collections and frozen, the book frozen as it grows (``Daemon._maybe_freeze``)
        Freezer.tune()
        with Freezer.paused():
            config = load_config(cfg, env={})
        with (tmp / "log.jsonl").open("w") as logfile:
            configure_logging("info", "json", logfile)
            return asyncio.run(_crash(config, m, tmp))


async def _crash(config: Config, m: Any, tmp: Path) -> dict[str, Any]:
    store = await open_store(tmp / "monitor.sqlite3")
    # as the live daemon sets its store (a revision before checkpoint_apart: SQLite's default,
    # as its daemon had; the same for checkpoint below)
    apart = getattr(store, "checkpoint_apart", None)
    if apart is not None:
        await apart()
    try:
        engine = build_engine(config, AlertState(), started=0.0)
        parser = HyperliquidParser()
        risks = RiskView()
        labels = labels_of(config.accounts)
        clock = {"now": time.time(), "mono": 0.0, "since_checkpoint": 0.0, "cpu": 0.0}
        criticals: list[tuple[float, int]] = []
        freezer = Freezer()

        async def step(inputs: list[Any], sweep: bool) -> tuple[int, int, float]:
            t0 = time.process_time()
            now, mono = clock["now"], clock["mono"]
            got = engine.receive(inputs, now, mono, sweep=sweep)
            await persist(store, got, config.channels, risks, now, engine=engine, labels=labels)
            size = len(engine.portfolio.accounts) + len(engine.ratios) + len(engine.book.alerts)
            freezer.step(size, len(got.risks))
            took = time.process_time() - t0
            clock["since_checkpoint"] += took
            clock["cpu"] += took
            crit = sum(1 for t in got.transitions if t.severity is CRITICAL and t.kind in ALERTING)
            if crit:
                criticals.append((clock["cpu"], crit))  # (the crash's CPU so far, criticals)
            if clock["since_checkpoint"] >= 1.0 and apart is not None:
                clock["since_checkpoint"] = 0.0  # the status loop's, once a second
                await store.checkpoint()
            return len(got.risks), len(got.transitions), took

        async def drain(inputs: list[Any], sweep: bool) -> tuple[int, int, int, float]:
            """Step with ``inputs``, then again while the engine owes work (as the daemon's
            loop does); (steps, scopes evaluated, transitions, longest step's CPU)."""
            evaluated, transitions, longest = await step(inputs, sweep)
            steps = 1
            while engine.busy:
                e, t, took = await step([], True)
                steps, evaluated, transitions = steps + 1, evaluated + e, transitions + t
                longest = max(longest, took)
            return steps, evaluated, transitions, longest

        def advance(seconds: float) -> None:
            clock["now"] += seconds
            clock["mono"] += seconds

        now = clock["now"]
        meta = parser.parse_rest("metaAndAssetCtxs", m.meta(), now)
        snaps = [a.snapshot for a in config.accounts if a.snapshot is not None]
        t0 = time.process_time()
        await drain([*meta, *snaps], True)
        load = time.process_time() - t0
        advance(1.0)
        now = clock["now"]
        prices = {c: m.price.get(c, bench.PROBE_SAFE) for c in [*m.coins, bench.PROBE]}
        await drain(
            [e for c, p in prices.items() for e in parser.parse(bench.frame(c, p), now)], True
        )
        advance(5.0)
        await drain([], True)  # the first prices' sweep, as a settled daemon has done
        advance(1.0)
        now = clock["now"]
        crash = [
            e for c in m.coins for e in parser.parse(bench.frame(c, m.price[c] * bench.CRASH), now)
        ]
        criticals.clear()
        clock["cpu"] = 0.0
        t0 = time.process_time()
        steps, evaluated, transitions, longest = await drain(crash, False)
        cpu = time.process_time() - t0
        total = sum(n for _, n in criticals)
        return {
            "load_cpu_s": round(load, 3),
            "crash_cpu_s": round(cpu, 3),
            "criticals": total,
            "criticals_half_cpu_s": round(_when(criticals, total / 2), 3),
            "criticals_all_cpu_s": round(_when(criticals, total), 3),
            "steps": steps,
            "evaluated": evaluated,
            "transitions": transitions,
            "longest_step_cpu_s": round(longest, 3),
        }
    finally:
        await store.close()


def _when(criticals: list[tuple[float, int]], count: float) -> float:
    """The crash's CPU (s) by the end of the step that wrote the ``count``-th critical."""
    seen = 0
    for cpu, n in criticals:
        seen += n
        if seen >= count:
            return cpu
    return math.nan


def main() -> None:
    run = __doc__.split("Run::", 1)[1].split("Each repeat", 1)[0]
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="examples:" + run,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument("--positions", type=int, default=100_000, help="positions in the book")
    ap.add_argument("--repeats", type=int, default=1, help="crashes (each on a fresh book)")
    ap.add_argument("--seed", type=int, default=7, help="the book's and the market's seed")
    ap.add_argument("--coins", type=int, default=60, help="instruments (Zipf popularity)")
    args = ap.parse_args()

    runs = []
    for i in range(args.repeats):
        r = crash_once(args.positions, args.seed, args.coins)
        runs.append(r)
        print(f"crash {i + 1}/{args.repeats}: {json.dumps(r)}", file=sys.stderr)
    naive_args = argparse.Namespace(
        seed=args.seed, coins=args.coins, book="toml", naive_frames=0, rate=1000
    )
    naive = bench.naive(naive_args, args.positions)  # crash only: no steady frames
    print(f"naive crash: {naive['crash_compute_s']:.3f} s", file=sys.stderr)
    median = statistics.median(r["crash_cpu_s"] for r in runs)
    out = {
        "positions": args.positions,
        "repeats": runs,
        "crash_cpu_s_median": median,
        "criticals_all_cpu_s_median": statistics.median(r["criticals_all_cpu_s"] for r in runs),
        "naive_crash_compute_s": round(naive["crash_compute_s"], 3),
        "ratio_to_naive": round(median / naive["crash_compute_s"], 3),
        "machine": f"{platform.machine()} {os.cpu_count()} CPU, Python {platform.python_version()}",
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
