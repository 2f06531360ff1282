"""``monitor inspect``: a one-shot risk report of an account document (contracts.md §1)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from pathlib import Path
from typing import Any

import aiohttp

from monitor.errors import InputError
from monitor.model.events import AccountSnapshot
from monitor.report import render_table, report_json, risks_of
from monitor.snapshot import load_document
from monitor.venues.dydx import accounts as dydx
from monitor.venues.hyperliquid import accounts as hyperliquid

HELP = "print the risk report of an account document (or a live public address)"
DESCRIPTION = """\
Print the margin risk of every scope (the cross pool, each isolated position) of one account:
equity, maintenance, margin ratio, free collateral, liquidation price and distance per position,
funding cost and runway, and the uniform market move that would liquidate the scope.

PATH is auto-detected as a Hyperliquid clearinghouseState (REST body or WS push), a dYdX v4
subaccount (needs --markets, a /v4/perpetualMarkets body), or a normalized account snapshot
(or a JSON list of them, each priced with its own marks). A dYdX parent subaccount is
reported as one pool per subaccount (ADDRESS/N for the parent and each child N + 128·k), since
on chain every subaccount is its own margin pool; markets without an oracle price are skipped.
Where the venue reports its own figure (Hyperliquid liquidationPx,
dYdX equity and freeCollateral) it is shown beside ours.

The live form fetches the same documents from the venue's public REST API:
  hyperliquid:0xADDRESS        dydx:ADDRESS/SUBACCOUNT   (--parent: the parent and its children)
"""
EPILOG = """\
examples:
  monitor inspect config/examples/hyperliquid_clearinghouseState.json
  monitor inspect subaccount.json --markets perpetualMarkets.json --json
  monitor inspect hyperliquid:0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f

exit codes: 0 report printed; 2 bad input (one line on stderr naming the file and field);
1 the venue could not be reached (live form).
"""

HL_REST = "https://api.hyperliquid.xyz"
DYDX_REST = "https://indexer.dydx.trade/v4"
LIVE = re.compile(r"^(hyperliquid|dydx):(.+)$")


def register(sub: Any) -> None:
    p = sub.add_parser(
        "inspect",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("path", metavar="PATH", help="JSON file, or hyperliquid:0x… / dydx:ADDR/N")
    p.add_argument(
        "--markets",
        metavar="PATH",
        type=Path,
        help="dYdX /v4/perpetualMarkets body (oracle prices, margin fractions)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print exactly one JSON document (the risk report) and nothing else",
    )
    p.add_argument(
        "--rest-url", metavar="URL", help="override the venue's REST base URL (live form)"
    )
    p.add_argument(
        "--parent",
        action="store_true",
        help="live dydx:ADDRESS/N: fetch parent subaccount N (0-127) with its children, "
        "one pool per subaccount",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=15.0,
        metavar="SECONDS",
        help="live form: HTTP timeout (default 15)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        live = LIVE.match(args.path) if not Path(args.path).exists() else None
        if live:
            snaps = asyncio.run(
                fetch_live(
                    live.group(1), live.group(2), args.rest_url, args.timeout, parent=args.parent
                )
            )
        else:
            snaps = load_document(Path(args.path), args.markets, own_marks=True)
    except InputError as exc:
        print(f"monitor inspect: {exc}", file=sys.stderr)
        return 2
    except LiveFetchError as exc:
        print(f"monitor inspect: {exc}", file=sys.stderr)
        return 1
    risks = risks_of(snaps, include_empty_cross=True)
    risks = [r for r in risks if r.positions or r.scope == "cross"]
    if args.json:
        sys.stdout.write(json.dumps(report_json(risks), allow_nan=False) + "\n")
    else:
        sys.stdout.write(render_table(risks) + "\n")
    return 0


class LiveFetchError(Exception):
    pass


async def fetch_live(
    venue: str, ident: str, rest_url: str | None, http_timeout: float, *, parent: bool = False
) -> list[AccountSnapshot]:
    """The live account: Hyperliquid ``clearinghouseState``, or a dYdX subaccount (``parent``:
    the parent subaccount with its children, one snapshot per subaccount)."""
    client_timeout = aiohttp.ClientTimeout(total=http_timeout)
    try:
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            if venue == "hyperliquid":
                if not re.fullmatch(r"0x[0-9a-fA-F]{40}", ident):
                    raise InputError(
                        f"hyperliquid:{ident}", "address", "expected 0x followed by 40 hex digits"
                    )
                url = (rest_url or HL_REST).rstrip("/") + "/info"
                body = {"type": "clearinghouseState", "user": ident}
                async with session.post(url, json=body) as resp:
                    doc = await _json(resp, url)
                return [hyperliquid.clearinghouse_to_snapshot(doc, url, account=ident)]
            m = re.fullmatch(r"([a-z0-9]+)/([0-9]{1,6})", ident)
            if not m:
                raise InputError(f"dydx:{ident}", "address", "expected ADDRESS/SUBACCOUNT_NUMBER")
            if parent and int(m.group(2)) >= dydx.CHILD_STRIDE:
                raise InputError(f"dydx:{ident}", "address", "a parent subaccount is 0…127")
            base = (rest_url or DYDX_REST).rstrip("/")
            markets_url = f"{base}/perpetualMarkets"
            kind = "parentSubaccountNumber" if parent else "subaccountNumber"
            sub_url = f"{base}/addresses/{m.group(1)}/{kind}/{m.group(2)}"
            async with session.get(markets_url) as resp:
                mdoc = await _json(resp, markets_url)
            async with session.get(sub_url) as resp:
                sdoc = await _json(resp, sub_url)
            read = dydx.read_markets(mdoc, markets_url)
            return dydx.subaccount_snapshots(
                sdoc, read.infos, sub_url, markets_source=markets_url, skipped=read.skipped
            )
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise LiveFetchError(
            f"{venue}: cannot reach the venue: {exc or type(exc).__name__}"
        ) from None


async def _json(resp: Any, url: str) -> Any:
    if resp.status != 200:
        text = (await resp.read()).decode("utf-8", "replace")[:200]
        raise LiveFetchError(f"{url}: HTTP {resp.status}: {text}")
    try:
        return json.loads((await resp.read()).decode("utf-8", "replace"))
    except json.JSONDecodeError as exc:
        raise InputError(url, None, f"not valid JSON ({exc.msg})") from None
