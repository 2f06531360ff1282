"""``monitor mute`` and ``monitor unmute``: silence alerts for a while, persisted in the store.

Both subcommands live here (``register`` adds the two parsers).
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from monitor.alerts.mutes import Mute
from monitor.alerts.rules import RuleKind, parse_duration
from monitor.clock import SystemClock
from monitor.commands._store import Names, add_store_args, clean, locate, said, scope_typo
from monitor.config import Config
from monitor.errors import ConfigError, FatalError
from monitor.logs import configure_logging
from monitor.model.ids import (
    CROSS,
    AccountKey,
    FeedKey,
    IdError,
    MonitorKey,
    PositionKey,
    ScopeKey,
    Subject,
    account_of,
    parse_subject,
    parse_user,
)
from monitor.model.venues import DYDX, GENERIC, HYPERLIQUID, canonical
from monitor.notify.render import iso
from monitor.store import history
from monitor.store.db import open_store
from monitor.store.mutes import active_mutes, add_mute, remove_mutes

TARGET_HELP = (
    "what to mute: an account 'venue:account' (or its configured label, with --config), a "
    "scope 'venue:account/cross' or 'venue:account/isolated:SYMBOL', a position "
    "'venue:account/cross#SYMBOL', a feed 'feed:venue', or 'monitor'; the venue as in "
    "[venues] (old spellings like binance_usdm accepted)"
)
MUTE_DESCRIPTION = """\
Silence the alerts of a target for a while. Muted alerts are still evaluated and recorded, but
not sent; when the mute ends, an alert still active is sent at once. Critical alerts still go
out unless --critical is given. The mute is stored in the daemon's store, so it takes effect in
a running daemon within a second and survives restarts.

The target must name something the monitor knows: an account of --config, or an account,
scope or feed the store has seen; otherwise it is refused with the nearest known name (--force
mutes it anyway, e.g. before the account's first snapshot). A mute on an account covers its
scopes and positions, never another account whose name starts the same.
"""
EXAMPLE_ACCOUNT = "hyperliquid:0x1111111111111111111111111111111111111111"
MUTE_EPILOG = f"""\
examples:
  monitor mute {EXAMPLE_ACCOUNT} --for 2h --config /etc/monitor/monitor.toml
  monitor mute binanceusdm:main/isolated:ETHUSDT --rule funding_rate --for 1d --store s.db
  monitor mute feed:okx --for 30m --critical --reason "venue maintenance" --store s.db
  monitor mute --list --config /etc/monitor/monitor.toml

exit codes: 0 done; 2 bad arguments or unknown target; 1 the store cannot be opened.
"""
UNMUTE_EPILOG = f"""\
examples:
  monitor unmute {EXAMPLE_ACCOUNT} --config /etc/monitor/monitor.toml
  monitor unmute {EXAMPLE_ACCOUNT} --rule shock --store s.db
"""
RULES = tuple(k.value for k in RuleKind)


#: the longest mute, seconds
MAX_MUTE = 366 * 86400.0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "mute",
        help="silence a target's alerts for a while",
        description=MUTE_DESCRIPTION,
        epilog=MUTE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("target", metavar="TARGET", nargs="?", help=TARGET_HELP)
    p.add_argument("--rule", metavar="RULE", help=f"only this rule ({', '.join(RULES)})")
    p.add_argument(
        "--for", dest="duration", metavar="DURATION", help="how long: seconds or 90s, 30m, 2h, 1d"
    )
    p.add_argument("--critical", action="store_true", help="silence critical alerts too")
    p.add_argument("--reason", default="", help="a note kept with the mute")
    p.add_argument(
        "--force", action="store_true", help="mute a target the monitor does not know (yet)"
    )
    add_store_args(p)
    p.add_argument("--list", action="store_true", help="list the mutes in force and exit")
    p.set_defaults(func=run_mute)

    u = sub.add_parser(
        "unmute",
        help="remove the mutes of a target",
        description="Remove the mutes of exactly TARGET (and --rule, when given).",
        epilog=UNMUTE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    u.add_argument("target", metavar="TARGET", help=TARGET_HELP)
    u.add_argument("--rule", metavar="RULE", help="only the mutes of this rule")
    add_store_args(u)
    u.set_defaults(func=run_unmute)


def _check(target: str | None, rule: str | None) -> str:
    """The canonical text of ``target`` (venue aliases and a checksummed Hyperliquid address
    normalised); ConfigError when it is not a target or ``rule`` is unknown."""
    return _parse(target, rule, Names())[0]


def _parse(
    target: str | None, rule: str | None, names: Names, *, shape: bool = True
) -> tuple[str, tuple[str, ...]]:
    """(canonical target text, notes for the user). A configured label names its account.
    ``shape``: refuse a Hyperliquid or dYdX account of an impossible shape (``mute``;
    ``unmute`` takes any target, to remove a mute stored before this check)."""
    if rule is not None and rule not in RULES:
        raise ConfigError("mute", "--rule", f"unknown rule {rule!r}; one of {', '.join(RULES)}")
    if target is None:
        raise ConfigError("mute", "TARGET", f"say what to mute ({TARGET_HELP})")
    labelled = names.by_label(target)
    if len(labelled) == 1:
        return str(labelled[0]), (f"{target!r} is the label of {labelled[0]}",)
    if len(labelled) > 1:
        which = ", ".join(sorted(map(str, labelled)))
        raise ConfigError("mute", "TARGET", f"label {target!r} names several accounts: {which}")
    typo = scope_typo(target)
    if typo is not None:
        raise ConfigError("mute", "TARGET", f"not a target: {typo}")
    try:
        parsed = parse_user(target)
    except IdError as exc:
        near = names.near_label(target)
        if near is not None:
            raise ConfigError(
                "mute", "TARGET", f"not a target: {exc}; did you mean the label {near}?"
            ) from None
        # IdError says what a target looks like; the whole help only when it does not
        hint = "" if "write " in str(exc) else f" ({TARGET_HELP})"
        raise ConfigError("mute", "TARGET", f"not a target: {exc}{hint}") from None
    if shape:
        try:
            _check_shape(parsed.subject)
        except IdError as exc:
            near = names.near_label(target.partition(":")[2])
            hint = f"did you mean the label {near}?" if near else "no mute could ever match it"
            raise ConfigError("mute", "TARGET", f"{exc}; {hint}") from None
    return str(parsed.subject), parsed.notes


_HL_ACCOUNT = re.compile(r"0x[0-9a-f]{40}(@[^@]+)?")
_DYDX_ACCOUNT = re.compile(r"dydx1[02-9ac-hj-np-z]{20,90}/[0-9]{1,6}")


def _check_shape(subject: Subject) -> None:
    """IdError when ``subject`` names a Hyperliquid or dYdX account that cannot exist (the
    wrong shape of address), which no mute, even ``--force``, could ever match."""
    key = account_of(subject)
    if key is None:
        return
    if key.venue == HYPERLIQUID and not _HL_ACCOUNT.fullmatch(key.account):
        raise IdError(
            f"{key.account!r} is not a Hyperliquid address (0x followed by 40 hex digits)"
        )
    if key.venue == DYDX and not _DYDX_ACCOUNT.fullmatch(key.account):
        raise IdError(f"{key.account!r} is not a dYdX subaccount (dydx1… address, '/', its number)")


def known_problem(subject: Subject, config: Config | None, known: history.Known) -> str | None:
    """Why ``subject`` names nothing the monitor knows (with the nearest known name), or None
    when it is known: an account of ``config`` or of the store; a scope the store has seen
    (or ``config`` declares), a position's scope likewise; a feed of a venue of ``config``
    or of the store; ``monitor``."""
    accounts = set(known.accounts)
    scopes = set(known.scopes)
    venues = set(known.feed_venues)
    labels: dict[str, str] = {}
    if config is not None:
        labels = {str(a.key): a.label for a in config.accounts if a.label}
        accounts |= {a.key for a in config.accounts}
        scopes |= set(config.known_scopes())
        # every account has a cross pool, before its first snapshot too
        scopes |= {ScopeKey(a.key.venue, a.key.account, CROSS) for a in config.accounts}
        venues |= {canonical(v) for v in config.venues}
        # a feed venue: "generic" (manual accounts, textbook rules) has no feed
        venues |= {a.venue for a in config.accounts if a.venue != GENERIC}
    if isinstance(subject, MonitorKey):
        return None
    if isinstance(subject, FeedKey):
        if subject.venue in venues:
            return None
        return _unknown("feed venue", subject.venue, sorted(venues))
    if isinstance(subject, AccountKey):
        if subject in accounts or (
            "@" in subject.account
            and AccountKey(subject.venue, subject.account.partition("@")[0]) in accounts
        ):
            return None
        return _unknown("account", str(subject), sorted(map(str, accounts)), labels)
    scope = subject.scope if isinstance(subject, PositionKey) else subject
    if scope in scopes:
        return None
    if scope.account_key not in accounts:
        return _unknown("account", str(scope.account_key), sorted(map(str, accounts)), labels)
    return _unknown("scope", str(scope), sorted(map(str, scopes)))


def _unknown(
    what: str, name: str, candidates: list[str], labels: Mapping[str, str] | None = None
) -> str:
    """``unknown WHAT 'NAME'`` with the nearest of ``candidates`` or of their ``labels``
    (candidate text → configured label): ``did you mean 'ID' (label)?`` or ``did you mean
    the label 'label' (ID)?``; without a near one, the first five known names."""
    if not candidates:
        return (
            f"unknown {what} {name!r}: the store knows none yet and no --config names one"
            " (--force to mute it anyway)"
        )
    labels = labels or {}

    def shown(c: str) -> str:
        return f"{c!r} ({labels[c]})" if c in labels else repr(c)

    def score(a: str, b: str) -> float:
        return difflib.SequenceMatcher(None, a, b).ratio()

    # the nearest id (at least 0.4 alike) or label (0.6: the part after a venue, any case)
    best = max(((score(name, c), c, False) for c in candidates), default=(0.0, "", False))
    bare = name.partition(":")[2] or name
    for ident, label in labels.items():
        alike = score(bare.casefold(), label.casefold())
        if alike >= 0.6 and alike > best[0]:
            best = (alike, ident, True)
    if best[2]:
        hint = f"; did you mean the label {labels[best[1]]!r} ({best[1]})?"
    elif best[0] >= 0.4:
        hint = f"; did you mean {shown(best[1])}?"
    else:
        hint = f" (known: {', '.join(shown(c) for c in candidates[:5])})"
    return f"unknown {what} {name!r}{hint} (--force to mute it anyway)"


def run_mute(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)  # stdout is for the result
    try:
        where = locate(args)
        names = Names.of(where.config)
        if args.list:
            return asyncio.run(_list(where.path, names))
        target, notes = _parse(args.target, args.rule, names)
        if args.duration is None:
            raise ConfigError("mute", "--for", "say for how long, e.g. --for 2h")
        secs = parse_duration(args.duration, "mute", "--for")
        if secs <= 0:
            raise ConfigError("mute", "--for", "must be > 0")
        if secs > MAX_MUTE:
            raise ConfigError("mute", "--for", "at most 366 days (unmute when you want it back)")
    except ConfigError as exc:
        print(f"monitor mute: {said(exc, 'mute')}", file=sys.stderr)
        return 2
    except FatalError as exc:
        print(f"monitor mute: {exc}", file=sys.stderr)
        return 1
    for note in notes:
        print(f"monitor mute: note: {clean(note)}", file=sys.stderr)
    now = SystemClock().now()
    mute = Mute(target, now + secs, args.rule, args.critical, args.reason)
    try:
        problem = asyncio.run(_add(where.path, mute, now, where.config, force=args.force))
    except FatalError as exc:
        print(f"monitor mute: {exc}", file=sys.stderr)
        return 1
    if problem is not None:
        print(f"monitor mute: {clean(problem)}", file=sys.stderr)
        return 2
    what = names.show(mute.key) + (f" (rule {args.rule})" if args.rule else "")
    crit = ", critical included" if args.critical else ", critical still sent"
    print(f"muted {clean(what)} until {iso(mute.until)}{crit}")
    longer = longer_mutes(mute, asyncio.run(_active(where.path)))
    if longer:
        until = max(m.until for m in longer)
        print(
            f"monitor mute: note: an earlier mute of {clean(what)} lasts until {iso(until)} "
            "and still applies: `monitor unmute` it first to end the mute sooner",
            file=sys.stderr,
        )
    return 0


async def _active(path: Path) -> list[Mute]:
    store = await open_store(path, lock=False, create=False)
    try:
        return await active_mutes(store, SystemClock().now())
    finally:
        await store.close()


def run_unmute(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)  # stdout is for the result
    try:
        where = locate(args)
        names = Names.of(where.config)
        target, notes = _parse(args.target, args.rule, names, shape=False)
    except ConfigError as exc:
        print(f"monitor unmute: {said(exc, 'mute', 'unmute')}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"monitor unmute: note: {clean(note)}", file=sys.stderr)
    try:
        n = asyncio.run(_remove(where.path, target, args.rule))
    except FatalError as exc:
        print(f"monitor unmute: {exc}", file=sys.stderr)
        return 1
    print(f"removed {n} mute{'s' if n != 1 else ''} of {clean(names.show(parse_subject(target)))}")
    return 0


async def _add(
    path: Path, mute: Mute, now: float, config: Config | None, *, force: bool
) -> str | None:
    """Store ``mute`` unless its target is unknown (and not ``force``): then the reason."""
    store = await open_store(path, lock=False, create=False)
    try:
        if not force:
            problem = known_problem(mute.key, config, await history.known(store))
            if problem is not None:
                return problem
        await add_mute(store, mute, now)
        return None
    finally:
        await store.close()


def longer_mutes(mute: Mute, active: Sequence[Mute]) -> list[Mute]:
    """The mutes in ``active`` of the same target and rule as ``mute`` that last longer (a
    new mute never shortens an older one: both are kept, the longer one still applies)."""
    return [m for m in active if m.key == mute.key and m.rule == mute.rule and m.until > mute.until]


async def _remove(path: Path, target: str, rule: str | None) -> int:
    store = await open_store(path, lock=False, create=False)
    try:
        return await remove_mutes(store, target, rule)
    finally:
        await store.close()


async def _list(path: Path, names: Names) -> int:
    store = await open_store(path, lock=False, create=False)
    try:
        mutes = await active_mutes(store, SystemClock().now())
    finally:
        await store.close()
    for m in mutes:
        rule = m.rule or "all rules"
        crit = "incl. critical" if m.critical else "critical sent"
        reason = f"  ({m.reason})" if m.reason else ""
        print(clean(f"{names.show(m.key)}  {rule}  until {iso(m.until)}  {crit}{reason}"))
    if not mutes:
        print("no mutes in force")
    return 0
