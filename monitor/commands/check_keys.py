"""``monitor check-keys``: confirm each API key of a configuration is valid and read-only,
without starting the daemon."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from monitor.clock import Clock, SystemClock
from monitor.errors import ConfigError, MonitorError
from monitor.logs import configure_logging, redact
from monitor.units import duration_arg
from monitor.venues.keys import (
    KeyAccount,
    KeyRejected,
    RateLimited,
    VenueUnavailable,
    key_accounts_from_toml,
    mask,
    private_venue,
)

HELP = "check that every API key of a configuration is valid and read-only"
DESCRIPTION = """\
For each [[accounts]] entry with an api_key (Binance USDⓈ-M, Bybit, OKX), ask the venue what
the key may do (Binance apiRestrictions, Bybit query-api, OKX account/config perm) and read the
account once, then print one line per account: its id, the key masked, and ok (read-only,
positions held) or REFUSED / FAILED with the reason. Nothing is stored and no stream is opened.

Keys and secrets come from ${ENV_VARS} or ${file:NAME} ($CREDENTIALS_DIRECTORY); they are never
printed. A key that can trade, withdraw or move funds is refused unless the account sets
allow_trading_key = true.
"""
EPILOG = """\
examples:
  monitor check-keys --config /etc/monitor/monitor.toml

exit codes: 0 every key is valid and acceptable; 1 at least one was refused or failed;
2 bad configuration or no key accounts.
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check-keys",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--config", metavar="FILE", type=Path, required=True, help="TOML configuration")
    p.add_argument(
        "--timeout",
        metavar="DURATION",
        type=duration_arg,
        default=30.0,
        help="time limit per account (default 30 s)",
    )
    p.set_defaults(func=run)


def load_key_accounts(config: Path, env: Mapping[str, str]) -> list[KeyAccount]:
    """The key accounts of ``config`` (raises :class:`ConfigError`)."""
    try:
        doc = tomllib.loads(config.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(str(config), None, f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(config), None, f"not valid TOML: {exc}") from None
    return key_accounts_from_toml(doc, str(config), env=env)


@dataclass(frozen=True, slots=True)
class KeyCheck:
    """The outcome for one account: ``ok``; ``verdict`` is ``ok``, ``REFUSED`` or
    ``FAILED``; ``detail`` the reason or what was read (key-free)."""

    account: KeyAccount
    ok: bool
    verdict: str
    detail: str

    def line(self, width: int) -> str:
        a = self.account
        return f"{a.id:<{width}}  key {mask(a.api_key)}  {self.verdict}: {self.detail}"


async def check_one(account: KeyAccount, clock: Clock, limit: float) -> KeyCheck:
    impl = private_venue(account, clock)
    try:
        async with asyncio.timeout(limit):
            perms = await impl.permissions()
            why = perms.refusal(account)
            if why is not None:
                return KeyCheck(account, False, "REFUSED", account.scrub(why))
            snap = await impl.snapshot(clock.now())
    except KeyRejected as exc:
        return KeyCheck(account, False, "FAILED", account.scrub(f"API key rejected: {exc}"))
    except (RateLimited, VenueUnavailable) as exc:
        return KeyCheck(
            account, False, "FAILED", account.scrub(f"{exc} (retry in {exc.retry_after:g}s)")
        )
    except TimeoutError:
        return KeyCheck(account, False, "FAILED", f"no answer within {limit:g}s")
    except MonitorError as exc:
        return KeyCheck(account, False, "FAILED", account.scrub(str(exc)))
    finally:
        await impl.aclose()
    n = len(snap.positions)
    trading = "" if perms.read_only else " (trading allowed by allow_trading_key)"
    return KeyCheck(
        account,
        True,
        "ok",
        f"{'read-only' if perms.read_only else 'NOT read-only'}{trading}; {perms.detail}; "
        f"{n} position{'' if n == 1 else 's'}",
    )


async def check_all(accounts: Sequence[KeyAccount], clock: Clock, limit: float) -> list[KeyCheck]:
    return list(await asyncio.gather(*(check_one(a, clock, limit) for a in accounts)))


def run(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)  # stdout is for the result
    try:
        accounts = load_key_accounts(args.config, os.environ)
    except ConfigError as exc:
        print(f"monitor check-keys: {redact(str(exc))}", file=sys.stderr)
        return 2
    if not accounts:
        print(
            f"monitor check-keys: {args.config}: no [[accounts]] with an api_key", file=sys.stderr
        )
        return 2
    results = asyncio.run(check_all(accounts, SystemClock(), args.timeout))
    width = max(len(a.id) for a in accounts)
    for r in results:
        print(redact(r.line(width)))
    return 0 if all(r.ok for r in results) else 1
