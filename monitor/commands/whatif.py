"""``monitor whatif``: an account's risk before and after a hypothetical change."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

from monitor.commands.inspect import LIVE, LiveFetchError, fetch_live
from monitor.errors import InputError
from monitor.margin.remedy import Target
from monitor.snapshot import load_document
from monitor.units import duration_arg
from monitor.whatif import (
    Scenario,
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
)

HELP = "risk before and after a price move or a cross/isolated change, side by side"
DESCRIPTION = """\
Apply hypothetical changes to an account document and print every margin scope's risk before
and after, side by side: equity, maintenance, margin ratio, free collateral, liquidation price
and distance per position, and the market-wide move that would liquidate the scope.

PATH is read like `monitor inspect` reads it: a normalized account snapshot (or a list of
them), a Hyperliquid clearinghouseState, or a dYdX subaccount (with --markets); or, live,
hyperliquid:0xADDRESS or dydx:ADDRESS/N, fetched from the venue's public REST API.

Scenarios (combine freely; they apply in this order):
  --isolate SYMBOL=MARGIN  move a cross position to isolated margin MARGIN (excluding its
                           unrealized PnL), taken from the cross pool
  --cross SYMBOL           move an isolated position into the cross pool, its margin with it
  --price SYMBOL=PRICE     set one instrument's price (ETH matches ETHUSDT, ETH-USD, ...)
  --shock MOVE             move every price at once: -10% (or -0.1); shocks compound;
                           a bare number is a fraction, so 10 is refused (write 10%)

Remedies (after the scenarios), for every scope holding positions:
  --target-distance D      the deposit, and the reduction of the draining position, that put
                           every liquidation price at least D away (15% or 0.15)
  --target-ratio R         the same for a margin ratio (maintenance / equity) of at most R
                           (0.5 or 50%); both flags together: both must hold
Both use the venue's own maintenance rules, tiers re-checked at the new size. A reduction
keeps the realized PnL in a cross pool; an isolated margin is assumed released pro rata
(except dYdX, whose isolated positions are subaccounts).
"""
EPILOG = """\
examples:
  monitor whatif snapshot.json --shock -10%
  monitor whatif snapshot.json --price ETH=2800 --price BTC=90000
  monitor whatif snapshot.json --isolate SOL=500            # would isolating SOL help BTC?
  monitor whatif snapshot.json --cross SOL --shock -5% --json
  monitor whatif hyperliquid:0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f --isolate ETH=1000
  monitor whatif snapshot.json --target-distance 15%       # deposit or cut to get 15 % back
  monitor whatif snapshot.json --shock -10% --target-ratio 0.5

exit codes: 0 printed; 2 bad input (one line on stderr naming the file or flag);
1 the venue could not be reached (live form).
"""

# "-10%" looks like an option to argparse; let negative numbers with a % sign through
_NEGATIVE = re.compile(r"^-\d+(\.\d*)?%?$|^-\.\d+%?$")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "whatif",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p._negative_number_matcher = _NEGATIVE
    p.add_argument("path", metavar="PATH", help="JSON file, or hyperliquid:0x… / dydx:ADDR/N")
    p.add_argument("--markets", metavar="PATH", type=Path, help="dYdX /v4/perpetualMarkets body")
    p.add_argument("--shock", metavar="MOVE", action="append", default=[], help="e.g. -10%%")
    p.add_argument(
        "--price", metavar="SYMBOL=PRICE", action="append", default=[], help="e.g. ETH=2800"
    )
    p.add_argument(
        "--isolate", metavar="SYMBOL=MARGIN", action="append", default=[], help="e.g. SOL=500"
    )
    p.add_argument("--cross", metavar="SYMBOL", action="append", default=[], help="e.g. SOL")
    p.add_argument(
        "--target-distance",
        metavar="D",
        action="append",
        default=[],
        help="remedy: liquidation at least D away, e.g. 15%%",
    )
    p.add_argument(
        "--target-ratio",
        metavar="R",
        action="append",
        default=[],
        help="remedy: margin ratio at most R, e.g. 0.5 or 50%%",
    )
    p.add_argument(
        "--json", action="store_true", help="print exactly one JSON document and nothing else"
    )
    p.add_argument("--rest-url", metavar="URL", help="live form: the venue's REST base URL")
    p.add_argument(
        "--timeout",
        type=duration_arg,
        default=15.0,
        metavar="DURATION",
        help="live form: HTTP timeout",
    )
    p.set_defaults(func=run)


def scenarios_of(args: argparse.Namespace) -> list[Scenario]:
    out: list[Scenario] = []
    out += [parse_isolate(t) for t in args.isolate]
    out += [parse_cross(t) for t in args.cross]
    out += [parse_price(t) for t in args.price]
    out += [parse_shock(t) for t in args.shock]
    return out


def target_of(args: argparse.Namespace) -> Target | None:
    targets = [parse_target_distance(t) for t in args.target_distance]
    targets += [parse_target_ratio(t) for t in args.target_ratio]
    return combine_targets(targets)


def run(args: argparse.Namespace) -> int:
    try:
        scenarios = scenarios_of(args)
        target = target_of(args)
        live = LIVE.match(args.path) if not Path(args.path).exists() else None
        if live:
            snapshots = asyncio.run(
                fetch_live(live.group(1), live.group(2), args.rest_url, args.timeout)
            )
        else:
            snapshots = load_document(Path(args.path), args.markets)
        result = what_if(snapshots, scenarios, target=target)
    except InputError as exc:
        print(f"monitor whatif: {exc}", file=sys.stderr)
        return 2
    except LiveFetchError as exc:
        print(f"monitor whatif: {exc}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(json.dumps(result_json(result), allow_nan=False) + "\n")
    else:
        sys.stdout.write(render_result(result))
    return 0
