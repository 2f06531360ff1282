"""``monitor check-config``: load and validate a configuration without starting anything."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from monitor.config import AccountKind, Config, load_config
from monitor.errors import ConfigError
from monitor.logs import redact

HELP = "validate a configuration file and print what it would monitor"
DESCRIPTION = """\
Load FILE exactly as `monitor run` would (venues, accounts, rules, channels, store, logging,
daemon), without connecting to anything, and print a short summary. Channel URLs are shown
with their secrets masked. On an error, print one line naming the file, the key path and the
problem on stderr and exit 2.
"""
EPILOG = """\
examples:
  monitor check-config config/example.toml
  monitor check-config /etc/monitor/monitor.toml && systemctl reload monitor

exit codes: 0 valid; 2 invalid (one line on stderr).
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "check-config",
        help=HELP,
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("file", metavar="FILE", type=Path, help="the TOML configuration")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        print(f"monitor check-config: {redact(str(exc))}", file=sys.stderr)
        return 2
    sys.stdout.write(summary(cfg))
    return 0


def summary(cfg: Config) -> str:
    """What the configuration would monitor, secrets masked (pure)."""
    lines = [f"{cfg.source}: OK"]
    venues = cfg.enabled_venues
    if venues:
        lines.append(f"venues ({len(venues)}):")
        for v in venues:
            kind = "native" if v.native else "ccxt"
            bits = [f"{kind}, rules {v.rule_set}"]
            if v.ws_url:
                bits.append(f"ws {redact(v.ws_url)}")
            if v.rest_url:
                bits.append(f"rest {redact(v.rest_url)}")
            if v.symbols:
                bits.append(f"watching {', '.join(v.symbols)}")
            lines.append(f"  {v.name} ({'; '.join(bits)})")
    else:
        lines.append("venues: none configured (accounts' venues run with defaults)")
    disabled = [v.name for v in cfg.venues.values() if not v.enabled]
    if disabled:
        lines.append(f"  disabled: {', '.join(disabled)}")
    lines.append(f"accounts ({len(cfg.accounts)}):")
    for a in cfg.accounts:
        label = f' "{a.label}"' if a.label else ""
        if a.kind is AccountKind.ADDRESS:
            what = "parent subaccount, live" if a.parent else "address, live"
            lines.append(f"  {a.venue}:{a.account}{label} ({what} from {a.feed})")
        else:
            n = len(a.snapshot.positions) if a.snapshot else 0
            prices = f"prices from {a.feed}" if a.feed else "declared prices"
            lines.append(f"  {a.venue}:{a.account}{label} (manual, {n} positions, {prices})")
    scopes = cfg.known_scopes()
    live = sum(1 for a in cfg.accounts if a.kind is AccountKind.ADDRESS)
    scope_line = f"scopes known now: {len(scopes)}"
    if scopes:
        scope_line += " (" + ", ".join(str(s) for s in scopes) + ")"
    if live:
        scope_line += f"; the scopes of {live} address account(s) come from their feeds"
    lines.append(scope_line)
    lines.extend(_rules_lines(cfg))
    lines.extend(_channel_lines(cfg))
    s = cfg.store
    lines.append(
        f"store: {s.path} (history every {s.sample_interval:g} s or on a margin-ratio move of "
        f"{s.change_threshold:g}, kept {s.retention_days:g} days)"
    )
    lines.append(f"logging: level {cfg.logging.level}, format {cfg.logging.format}")
    d = cfg.daemon
    lines.append(
        f"daemon: drain deadline {d.drain_deadline:g} s, watchdog "
        f"{'on' if d.watchdog else 'off'}, ready timeout {d.ready_timeout:g} s, "
        f"stale-feed alert after {d.stale_alert_after:g} s"
    )
    return "\n".join(lines) + "\n"


def _rules_lines(cfg: Config) -> list[str]:
    rules = cfg.rules
    if rules is None:
        keys = ", ".join(cfg.rules_table) or "none"
        return [f"rules: not checked (the rules module is not installed); [rules] keys: {keys}"]
    thresholds = getattr(rules, "thresholds", None)
    if not isinstance(thresholds, dict):
        return ["rules: OK"]
    out = ["rules:"]
    for kind, rule in thresholds.items():
        if not getattr(rule, "enabled", True):
            continue
        levels = getattr(rule, "levels", ())
        if not levels:
            continue
        parts = [
            f"{getattr(lv, 'severity', '?')} {getattr(lv, 'fire', '?'):g} "
            f"(clear {getattr(lv, 'clear', '?'):g})"
            for lv in levels
        ]
        out.append(f"  {kind}: {', '.join(parts)}")
    if len(out) == 1:
        out[0] = "rules: none enabled"
    return out


def _channel_lines(cfg: Config) -> list[str]:
    channels = cfg.channels
    if channels is None:
        keys = ", ".join(cfg.channels_table) or "none"
        return [
            f"channels: not checked (the channels module is not installed); [channels] keys: {keys}"
        ]
    if not channels:
        return ["channels: none (alerts are only logged)"]
    out = [f"channels ({len(channels)}):"]
    for i, ch in enumerate(channels):
        name = getattr(ch, "name", None) or f"#{i + 1}"
        redacted = getattr(ch, "redacted", None)
        if isinstance(redacted, str):
            shown = redact(redacted)  # the channel's own privacy form (apprise)
        else:
            urls = _urls_of(ch)
            shown = ", ".join(mask_url(u) for u in urls) if urls else "(no URL)"
        severity = getattr(ch, "min_severity", None)
        extra = f" ({severity} and above)" if severity is not None else ""
        out.append(f"  {name}: {shown}{extra}")
    return out


def _urls_of(ch: object) -> list[str]:
    for attr in ("urls", "url"):
        value = getattr(ch, attr, None)
        if isinstance(value, str):
            return [value]
        if isinstance(value, Iterable) and not isinstance(value, bytes | dict):
            return [v for v in value if isinstance(v, str)]
    return []


def mask_url(url: str) -> str:
    """``scheme://[user@]host[:port]`` plus ``/…`` for a path and the query's key names: the
    parts of an apprise URL that carry tokens and passwords (password, path, query values)
    are never shown; the URL goes through the log redactor before and after."""
    try:
        parts = urlsplit(redact(url))
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    if not parts.scheme:
        return "<not a URL>"
    user = f"{parts.username}@" if parts.username and parts.password is None else ""
    if parts.password is not None:
        user = f"{parts.username or ''}:***@"
    shown = f"{parts.scheme}://{user}{host}{port}"
    if parts.path.strip("/"):
        shown += "/…"
    if parts.query:
        keys = [kv.split("=", 1)[0] for kv in parts.query.split("&") if kv]
        shown += "?" + "&".join(f"{k}=…" for k in keys)
    return redact(shown)
