"""``monitor inspect``: a one-shot risk report of an account document (contracts.md §1)."""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp

from monitor.errors import ConfigError, InputError, RetryableError
from monitor.model.events import AccountSnapshot, VenueMarginRatio
from monitor.model.ids import AccountKey
from monitor.model.venues import DYDX, canonical
from monitor.report import render_table, report_json, risks_of
from monitor.snapshot import load_document
from monitor.units import duration_arg
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
A Hyperliquid unified or portfolio-margin account is valued from its spot state (one pool per
collateral token), the venue's own ratio printed beside. An account configured by read-only
API key is read with its key: binanceusdm:NAME, bybit:NAME or okx:NAME with --config FILE.
"""
EPILOG = """\
examples:
  monitor inspect config/examples/hyperliquid_clearinghouseState.json
  monitor inspect subaccount.json --markets perpetualMarkets.json --json
  monitor inspect hyperliquid:0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f
  monitor inspect binanceusdm:main --config /etc/monitor/monitor.toml

exit codes: 0 report printed; 2 bad input (one line on stderr naming the file and field);
1 the venue could not be reached (live form).
"""

HL_REST = "https://api.hyperliquid.xyz"
DYDX_REST = "https://indexer.dydx.trade/v4"
LIVE = re.compile(r"^(hyperliquid|dydx):(.+)$")
KEYED = re.compile(r"^(binanceusdm|binance_usdm|bybit|okx):([A-Za-z0-9_.-]{1,64})$")


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
        "--config",
        metavar="FILE",
        type=Path,
        help="the configuration: its account labels are shown beside the ids; for "
        "binanceusdm:NAME / bybit:NAME / okx:NAME it holds the API key",
    )
    p.add_argument(
        "--timeout",
        type=duration_arg,
        default=15.0,
        metavar="DURATION",
        help="live form: HTTP timeout (default 15)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        names = _names(args.config)
        key = KEYED.match(args.path) if not Path(args.path).exists() else None
        live = LIVE.match(args.path) if not Path(args.path).exists() else None
        if key:
            snaps = [asyncio.run(fetch_key_account(args.path, args.config, args.timeout))]
        elif live:
            snaps = asyncio.run(
                fetch_live(
                    live.group(1),
                    live.group(2),
                    args.rest_url,
                    args.timeout,
                    parent=args.parent,
                    names=names,
                )
            )
        else:
            snaps = load_document(Path(args.path), args.markets, own_marks=True)
    except (InputError, ConfigError) as exc:
        print(f"monitor inspect: {exc}", file=sys.stderr)
        return 2
    except LiveFetchError as exc:
        print(f"monitor inspect: {exc}", file=sys.stderr)
        return 1
    risks = risks_of(snaps, include_empty_cross=True)
    risks = [r for r in risks if r.positions or r.scope == "cross"]
    labels = {
        (r.venue, r.account): lab
        for r in risks
        if (lab := label_of(names, r.venue, r.account)) is not None
    }
    if args.json:
        sys.stdout.write(json.dumps(report_json(risks, labels), allow_nan=False) + "\n")
    else:
        sys.stdout.write(render_table(risks, labels) + "\n")
    return 0


def _names(config: Path | None) -> Mapping[AccountKey, str]:
    """The account labels of ``config`` (read without its channels: no secret needed), or
    none without ``--config``. Raises ConfigError."""
    if config is None:
        return {}
    from monitor.commands._store import Names, read_config  # noqa: PLC0415

    return Names.of(read_config(config)).labels


def label_of(names: Mapping[AccountKey, str], venue: str, account: str) -> str | None:
    """The configured label of the account ``venue``/``account`` as a report names it: the
    venue by any of its spellings, a Hyperliquid address in any case, a HIP-3 dex account
    ``0x…@dex`` by its address's label, a dYdX child subaccount ``ADDR/128`` by its parent's
    (``ADDR/0``). None when it has none."""
    if not names:
        return None
    v = canonical(venue)
    candidates = [account, account.lower(), account.partition("@")[0].lower()]
    if v == DYDX:
        candidates.append(dydx.parent_account(account))
    for acct in candidates:
        for key, label in names.items():
            if key.venue == v and key.account == acct:
                return label
    return None


def _named(names: Mapping[AccountKey, str], venue: str, account: str) -> str:
    """``venue:account``, followed by `` (label)`` when it has one."""
    label = label_of(names, venue, account)
    return f"{venue}:{account}" + (f" ({label})" if label else "")


class LiveFetchError(Exception):
    pass


async def fetch_key_account(
    ident: str, config: Path | None, http_timeout: float
) -> AccountSnapshot:
    """The live account ``venue:name`` configured by read-only API key in ``config``: its
    permissions are checked first (a key that can trade is refused unless the file allows
    it), then one signed REST snapshot is read."""
    if config is None:
        raise InputError(ident, None, "an account by API key needs --config FILE (its keys)")
    from monitor.commands._store import read_config  # noqa: PLC0415
    from monitor.config import AccountConfig, AccountKind, Config, load_config  # noqa: PLC0415
    from monitor.venues import keys  # noqa: PLC0415
    from monitor.venues.registry import key_account  # noqa: PLC0415

    venue, _, name = ident.partition(":")
    wanted = AccountKey(canonical(venue), name)

    def keyed(cfg: Config) -> list[AccountConfig]:
        return [a for a in cfg.accounts if a.kind is AccountKind.API_KEY]

    # looked up without reading any secret; the key itself is read once the account exists
    listed = keyed(read_config(config))
    if not any(a.key == wanted for a in listed):
        known = [f"{a.venue}:{a.account}" + (f" ({a.label})" if a.label else "") for a in listed]
        raise InputError(
            str(config),
            "accounts",
            f"no account {ident!r} by API key (known: {', '.join(known) or 'none'})",
        )
    found = [a for a in keyed(load_config(config)) if a.key == wanted]
    try:
        return await asyncio.wait_for(keys.read_key_account(key_account(found[0])), http_timeout)
    except keys.NotReadOnly as exc:
        raise InputError(ident, "api_key", str(exc)) from None
    except (keys.KeyRejected, keys.RateLimited, keys.VenueUnavailable, TimeoutError) as exc:
        raise LiveFetchError(f"{ident}: {exc or type(exc).__name__}") from None
    except RetryableError as exc:
        raise LiveFetchError(f"{ident}: {exc}") from None


async def fetch_live(
    venue: str,
    ident: str,
    rest_url: str | None,
    http_timeout: float,
    *,
    parent: bool = False,
    names: Mapping[AccountKey, str] | None = None,
) -> list[AccountSnapshot]:
    """The live account: Hyperliquid ``clearinghouseState``, or a dYdX subaccount (``parent``:
    the parent subaccount with its children, one snapshot per subaccount). ``names``: the
    configured labels, shown beside the account in what is printed here."""
    client_timeout = aiohttp.ClientTimeout(total=http_timeout)
    try:
        async with aiohttp.ClientSession(timeout=client_timeout) as session:
            if venue == "hyperliquid":
                if not re.fullmatch(r"0x[0-9a-fA-F]{40}", ident):
                    raise InputError(
                        f"hyperliquid:{ident}", "address", "expected 0x followed by 40 hex digits"
                    )
                url = (rest_url or HL_REST).rstrip("/") + "/info"
                user = ident.lower()

                async def info(kind: str) -> Any:
                    async with session.post(url, json={"type": kind, "user": user}) as resp:
                        return await _json(resp, f"{url} ({kind})")

                # the account mode decides which document holds the balances: a unified or
                # portfolio-margin account is valued from its spot state (account modes)
                abstraction = await info("userAbstraction")
                state = await info("clearinghouseState")
                mode = hyperliquid.abstraction_mode(abstraction, f"{url} (userAbstraction)")
                spot = await info("spotClearinghouseState") if hyperliquid.is_pooled(mode) else None
                docs = hyperliquid.account_documents(
                    user, abstraction, {"": state}, spot, source=url
                )
                for d in docs:
                    if isinstance(d, VenueMarginRatio):
                        print(
                            f"{_named(names or {}, d.venue, d.account)}: the venue's own "
                            f"{d.source} is "
                            f"{d.ratio:.4f} (it liquidates above {d.liquidation_at:g})",
                            file=sys.stderr,
                        )
                return [d for d in docs if isinstance(d, AccountSnapshot)]
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
