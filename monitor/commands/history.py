"""``monitor history SCOPE``: margin ratio and equity over time, from the daemon's store."""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import math
import os
import sys
import time
from dataclasses import fields
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from monitor import fmt
from monitor.alerts.rules import parse_duration
from monitor.commands._store import (
    Names,
    add_store_args,
    clean,
    locate,
    read_config,
    said,
    scope_typo,
)
from monitor.config import Config
from monitor.errors import ConfigError, FatalError
from monitor.logs import configure_logging
from monitor.model.ids import AccountKey, IdError, ScopeKey, account_of, parse_subject, parse_user
from monitor.store import history
from monitor.store.db import open_store
from monitor.thin import thin_extremes

DESCRIPTION = """\
Show one scope's margin ratio and equity over time as a terminal chart: one row per sample
(evenly thinned to --rows), the margin ratio drawn as a bar (a full bar is 100 %, liquidation).
The daemon samples every [store] sample_interval seconds and whenever the margin ratio moves by
change_threshold. SCOPE is as `monitor status` prints it: VENUE:ACCOUNT/SCOPE (the venue as
in [venues], old spellings accepted); an account (VENUE:ACCOUNT, or its label with --config)
means its cross pool.

--png FILE also writes the same period as a picture: margin ratio and nearest liquidation
distance over time, with the alert thresholds of --config (the defaults without it) drawn
(needs matplotlib: pip install 'monitor[ops]').
"""
EPILOG = """\
examples:
  monitor history hyperliquid:0x1111111111111111111111111111111111111111/cross \
      --config config/demo.toml
  monitor history binanceusdm:main/isolated:ETHUSDT --since 24h --store s.sqlite3 --json
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
    p.add_argument(
        "scope",
        metavar="SCOPE",
        help="VENUE:ACCOUNT/SCOPE as `monitor status` shows, or an account (or its label)",
    )
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


def resolve_scope(text: str, names: Names) -> tuple[ScopeKey, tuple[str, ...]]:
    """The scope SCOPE names, with notes for the user: a label or an account means its cross
    pool; venue aliases and checksummed addresses are normalised. Raises ConfigError."""
    labelled = names.by_label(text)
    notes: tuple[str, ...] = ()
    if len(labelled) == 1:
        key: object = labelled[0]
        notes = (f"{text!r} is the label of {labelled[0]}",)
    else:
        typo = scope_typo(text)
        if typo is not None:
            raise ConfigError("history", "SCOPE", f"not a scope: {typo}")
        try:
            parsed = parse_user(text)
        except IdError as exc:
            near = names.near_label(text)
            hint = f"; did you mean the label {near}?" if near else ""
            raise ConfigError("history", "SCOPE", f"not a scope: {exc}{hint}") from None
        key, notes = parsed.subject, parsed.notes
    if isinstance(key, AccountKey):
        return ScopeKey(key.venue, key.account, "cross"), (*notes, f"{key} means its cross pool")
    if isinstance(key, ScopeKey):
        return key, notes
    raise ConfigError("history", "SCOPE", f"{text!r} is not a scope (VENUE:ACCOUNT/SCOPE)")


def _with_label(scope: str, names: Names) -> str:
    """``'scope'``, followed by `` (label)`` when its account has one."""
    try:
        label = names.label(account_of(parse_subject(scope)))
    except IdError:
        label = None
    return f"{scope!r} ({label})" if label else repr(scope)


def main(args: argparse.Namespace) -> int:
    configure_logging("warning", stream=sys.stderr)
    try:
        where = locate(args)
        path = where.path
        names = Names.of(where.config)
        scope, notes = resolve_scope(args.scope, names)
        since = 0.0
        if args.since:
            since = time.time() - parse_duration(args.since, "history", "--since")
        if args.rows < 2:
            raise ConfigError("history", "--rows", "must be at least 2")
    except ConfigError as exc:
        print(f"monitor history: {said(exc, 'history')}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"monitor history: note: {clean(note)}", file=sys.stderr)
    name = str(scope)
    if not path.exists():
        print(f"monitor history: {path}: no store yet (has the daemon run?)", file=sys.stderr)
        return 1
    try:
        samples, known = asyncio.run(_read(path, name, since))
    except FatalError as exc:
        print(f"monitor history: {exc}", file=sys.stderr)
        return 1
    if not samples and name not in known:
        near = difflib.get_close_matches(name, known, n=1, cutoff=0.4)
        hint = (
            f"did you mean {_with_label(near[0], names)}?"
            if near
            else f"known: {', '.join(_with_label(k, names) for k in known[:10]) or 'none yet'}"
        )
        print(f"monitor history: {clean(f'unknown scope {name!r} ({hint})')}", file=sys.stderr)
        return 2
    title = names.show(scope)
    if args.png is not None:
        try:
            write_png(args, samples, name, where.config, names.show(scope, short=True))
        except ConfigError as exc:
            print(f"monitor history: {exc}", file=sys.stderr)
            return 2
        except (OSError, ImportError, ValueError) as exc:
            print(f"monitor history: {args.png}: {_why(exc)}", file=sys.stderr)
            return 1
    if args.json:
        doc = {
            "scope": name,
            "label": names.label(scope.account_key),
            "samples": [{k: _finite(getattr(s, k)) for k in _COLUMNS} for s in samples],
        }
        print(json.dumps(doc))
    elif args.png is not None:
        print(clean(f"{args.png}: chart of {title}, {len(samples)} samples"))
    else:
        print(render(clean(title), samples, args.rows))
    return 0


def _finite(x: Any) -> Any:
    """Non-finite numbers as None (strict JSON has no NaN)."""
    return None if isinstance(x, float) and not math.isfinite(x) else x


def _why(exc: Exception) -> str:
    if isinstance(exc, ImportError):
        return "charts need matplotlib: pip install 'monitor[ops]'"
    return (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)


def write_png(
    args: argparse.Namespace,
    samples: list[history.Sample],
    scope: str,
    config: Config | None = None,
    title: str = "",
) -> None:
    """The chart of ``samples`` to ``args.png`` (atomically: a temporary file renamed over it),
    headed ``title`` (else ``scope``), with the thresholds of ``config`` (``--config``, read
    without its channels: no secret needed) when given, else of ``args.config``. Raises
    ConfigError, OSError, ValueError or ImportError (no matplotlib)."""
    from monitor.ops.charts import account_of, render_png, thresholds_from_rules  # noqa: PLC0415

    rules = None
    source = ""
    if config is None and args.config is not None:
        config = read_config(Path(args.config))
    if config is not None:
        rules = config.rules
        source = f"thresholds of {Path(args.config).name}" if args.config else "thresholds"
    th = thresholds_from_rules(rules, account_of(scope), source)
    png = render_png(scope, samples, th, title=title)
    target = Path(args.png)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(png)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


async def _read(path: Any, scope: str, since: float) -> tuple[list[history.Sample], list[str]]:
    store = await open_store(path, lock=False, create=False)
    try:
        return await history.read_history(store, scope, since), await history.scopes(store)
    finally:
        await store.close()


#: the figures of a sample ``--json`` prints (a sample's ``key`` is the store's business)
_COLUMNS = tuple(f.name for f in fields(history.Sample) if f.name != "key")


def thin(samples: list[history.Sample], rows: int) -> list[history.Sample]:
    """At most ``rows`` samples: each of ``rows`` consecutive buckets keeps its worst (the
    highest margin ratio; an unknown one counts as the worst), so thinning never hides the
    moment that mattered."""
    return thin_extremes(samples, rows, lambda s: s.margin_ratio)


def _pct(x: Any, places: int) -> str:
    """A fraction as a percentage; absurd magnitudes in exponent form so the row keeps its
    width."""
    return f"{x * 100:.3g}%" if abs(x) >= 1e4 else fmt.pct(x, places)


def _real(x: object) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x)


def _iso(ts: object) -> str:
    """ISO 8601 UTC; a time no calendar holds (1e300, NaN, a text) as itself, never raising."""
    if not _real(ts):
        return clean(f"{ts!r}")[:20]
    try:
        return datetime.fromtimestamp(float(ts), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")  # type: ignore[arg-type]
    except (OverflowError, ValueError, OSError):
        return f"{ts:.6g}"[:20]


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
        t = _iso(s.ts)
        ratio = s.margin_ratio if _real(s.margin_ratio) else None
        fill = 0 if ratio is None else max(min(round(ratio * BAR), BAR), 0)
        bar = "█" * fill + "·" * (BAR - fill)
        eq = fmt.money(s.equity) if _real(s.equity) else "—"
        mr = "—" if ratio is None else _pct(ratio, 1)
        nl = _pct(s.nearest_liq, 2) if _real(s.nearest_liq) else "—"
        out.append(f"{t:20}  {eq:>14}  {mr:>12}  {nl:>11}  {bar}")
    return "\n".join(out)
