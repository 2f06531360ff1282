"""``monitor history SCOPE``: margin ratio and equity over time, from the daemon's store."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor.alerts.rules import parse_duration
from monitor.commands._store import add_store_args, store_path
from monitor.config import load_config
from monitor.errors import ConfigError, FatalError
from monitor.logs import configure_logging
from monitor.store import history
from monitor.store.db import open_store
from monitor.thin import thin_extremes

DESCRIPTION = """\
Show one scope's margin ratio and equity over time as a terminal chart: one row per sample
(evenly thinned to --rows), the margin ratio drawn as a bar (a full bar is 100 %, liquidation).
The daemon samples every [store] sample_interval seconds and whenever the margin ratio moves by
change_threshold. SCOPE is as `monitor status` prints it: VENUE:ACCOUNT/SCOPE.

--png FILE also writes the same period as a picture: margin ratio and nearest liquidation
distance over time, with the alert thresholds of --config (the defaults without it) drawn
(needs matplotlib: pip install 'monitor[ops]').
"""
EPILOG = """\
examples:
  monitor history hyperliquid:0x1111111111111111111111111111111111111111/cross \
      --config config/demo.toml
  monitor history binance_usdm:main/isolated:ETHUSDT --since 24h --store s.sqlite3 --json
  monitor history hyperliquid:0x1111111111111111111111111111111111111111/cross \
      --since 6h --config config/demo.toml --png btc-6h.png

exit codes: 0 shown; 1 the store cannot be opened or FILE cannot be written;
2 unknown scope or bad arguments.
"""
BAR = 30


def register(sub: Any) -> None:
    p = sub.add_parser(
        "history",
        help="margin ratio and equity of a scope over time",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("scope", metavar="SCOPE", help="VENUE:ACCOUNT/SCOPE, as `monitor status` shows")
    add_store_args(p)
    p.add_argument("--since", metavar="DURATION", help="only the last DURATION (90s, 30m, 2h, 1d)")
    p.add_argument(
        "--rows",
        type=int,
        default=40,
        metavar="N",
        help="at most N rows in the chart (default 40; --json gives every sample)",
    )
    p.add_argument("--json", action="store_true", help="every sample as one JSON document")
    p.add_argument(
        "--png",
        type=Path,
        metavar="FILE",
        help="also write the period as a PNG chart with the alert thresholds drawn",
    )
    p.set_defaults(func=main)


def main(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)
    try:
        path = store_path(args)
        since = 0.0
        if args.since:
            since = time.time() - parse_duration(args.since, "history", "--since")
        if args.rows < 2:
            raise ConfigError("history", "--rows", "must be at least 2")
    except ConfigError as exc:
        print(f"monitor history: {exc}", file=sys.stderr)
        return 2
    if not path.exists():
        print(f"monitor history: {path}: no store yet (has the daemon run?)", file=sys.stderr)
        return 1
    try:
        samples, known = asyncio.run(_read(path, args.scope, since))
    except FatalError as exc:
        print(f"monitor history: {exc}", file=sys.stderr)
        return 1
    if not samples and args.scope not in known:
        hint = ", ".join(known[:10]) or "none yet"
        print(f"monitor history: unknown scope {args.scope!r} (known: {hint})", file=sys.stderr)
        return 2
    if args.png is not None:
        try:
            write_png(args, samples)
        except ConfigError as exc:
            print(f"monitor history: {exc}", file=sys.stderr)
            return 2
        except (OSError, ImportError) as exc:
            print(f"monitor history: {args.png}: {_why(exc)}", file=sys.stderr)
            return 1
    if args.json:
        print(json.dumps({"scope": args.scope, "samples": [asdict(s) for s in samples]}))
    elif args.png is not None:
        print(f"{args.png}: chart of {args.scope}, {len(samples)} samples")
    else:
        print(render(args.scope, samples, args.rows))
    return 0


def _why(exc: Exception) -> str:
    if isinstance(exc, ImportError):
        return "charts need matplotlib: pip install 'monitor[ops]'"
    return (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)


def write_png(args: argparse.Namespace, samples: list[history.Sample]) -> None:
    """The chart of ``samples`` to ``args.png`` (atomically: a temporary file renamed over it),
    with the thresholds of ``args.config`` when given. Raises ConfigError, OSError or
    ImportError (no matplotlib)."""
    from monitor.ops.charts import account_of, render_png, thresholds_from_rules  # noqa: PLC0415

    rules = None
    source = ""
    if args.config is not None:
        rules = load_config(args.config).rules
        source = f"thresholds of {Path(args.config).name}"
    png = render_png(
        args.scope, samples, thresholds_from_rules(rules, account_of(args.scope), source)
    )
    target = Path(args.png)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(png)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


async def _read(path: Any, scope: str, since: float) -> tuple[list[history.Sample], list[str]]:
    store = await open_store(path, lock=False)
    try:
        return await history.read_history(store, scope, since), await history.scopes(store)
    finally:
        await store.close()


def thin(samples: list[history.Sample], rows: int) -> list[history.Sample]:
    """At most ``rows`` samples: each of ``rows`` consecutive buckets keeps its worst (the
    highest margin ratio; an unknown one counts as the worst), so thinning never hides the
    moment that mattered."""
    return thin_extremes(samples, rows, lambda s: s.margin_ratio)


def render(scope: str, samples: list[history.Sample], rows: int) -> str:
    if not samples:
        return f"{scope}: no samples in that period"
    out = [
        f"{scope}: {len(samples)} samples",
        "",
        f"{'time (UTC)':20}  {'equity':>14}  {'margin ratio':>12}  "
        f"{'nearest liq':>11}  0% {'':{BAR - 6}}100%",
    ]
    for s in thin(samples, rows):
        t = datetime.fromtimestamp(s.ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ratio = s.margin_ratio
        fill = 0 if ratio is None else min(round(ratio * BAR), BAR)
        bar = "█" * fill + "·" * (BAR - fill)
        eq = "—" if s.equity is None else f"{s.equity:,.2f}"
        mr = "—" if ratio is None else f"{ratio * 100:.1f}%"
        nl = "—" if s.nearest_liq is None else f"{s.nearest_liq * 100:.2f}%"
        out.append(f"{t:20}  {eq:>14}  {mr:>12}  {nl:>11}  {bar}")
    return "\n".join(out)
