"""``monitor check-config``: load and validate a configuration without starting anything."""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from monitor.config import AccountConfig, AccountKind, Config, VenueConfig, load_config
from monitor.config_rules import book_notes
from monitor.errors import ConfigError
from monitor.logs import redact
from monitor.model.portfolio import Portfolio
from monitor.model.venues import BINANCE_USDM, BYBIT, OKX, spec
from monitor.venues.ccxt_pro.metadata import deep_merge
from monitor.venues.feed import watched_symbols

#: the ccxt ``urls`` entries our feeds use, per exchange, shown by check-config: the native
#: Binance and Bybit price feeds stream from ``ws_url`` and read their REST metadata through
#: ccxt (these paths, defaulting to ``rest_url``); the OKX price feed uses no ccxt at all
#: (``monitor/venues/{binance,bybit,okx}/feed.py``). Any other ccxt id: ccxt's own stream.
CCXT_URL_PATHS: Final[Mapping[str, tuple[tuple[str, ...], ...]]] = {
    BINANCE_USDM: (("api", "fapiPublic"),),
    BYBIT: (("api", "public"),),
    OKX: (),
}
#: what the native feed of a ccxt exchange makes of ``rest_url`` for ccxt (the feed builders)
_REST_TO_CCXT: Final[Mapping[str, tuple[tuple[str, ...], str]]] = {
    BINANCE_USDM: (("api", "fapiPublic"), "{rest}/fapi/v1"),
    BYBIT: (("api", "public"), "{rest}"),
}

#: accounts and scopes listed one by one; a larger book (an ``[[accounts]] file``) is counted
LISTED: Final = 20

HELP = "validate a configuration file and print what it would monitor"
DESCRIPTION = """\
Load FILE exactly as `monitor run` would (venues, accounts, rules, channels, store, logging,
daemon, metrics, telegram bot), without connecting to anything, and print a short summary:
the effective ccxt URLs of ccxt venues, per-account rule overrides, every channel's target
and notes (old venue spellings, ccxt `urls` keys the exchange never reads, rule levels that
can never fire or that fire on every scope of the manual accounts' current book). Secrets
(channel tokens, API keys, the heartbeat URL) are shown masked. On an error, print one line
naming the file, the key path and the problem on stderr and exit 2.
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


_UNUSABLE_SCHEME = re.compile(r"not a URL apprise can use \(scheme '([^']*)'")


def run(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        text = redact(str(exc))
        m = _UNUSABLE_SCHEME.search(exc.problem)
        if m is not None:
            # as test-notify: what apprise makes of the scheme (the rest may hold a secret)
            from monitor.commands.test_notify import scheme_hint  # noqa: PLC0415

            text += f"; {scheme_hint(m.group(1))}"
        print(f"monitor check-config: {text}", file=sys.stderr)
        return 2
    sys.stdout.write(summary(cfg))
    return 0


def summary(cfg: Config) -> str:
    """What the configuration would monitor, secrets masked (pure)."""
    lines = [f"{cfg.source}: OK"]
    notes: list[str] = list(cfg.notes)
    venues = cfg.enabled_venues
    if venues:
        lines.append(f"venues ({len(venues)}):")
        for v in venues:
            lines.extend(venue_lines(v, cfg, notes))
    else:
        lines.append("venues: none configured (accounts' venues run with defaults)")
    disabled = [v.name for v in cfg.venues.values() if not v.enabled]
    if disabled:
        lines.append(f"  disabled: {', '.join(disabled)}")
    lines.append(f"accounts ({len(cfg.accounts)}):")
    for a in cfg.accounts[:LISTED]:
        label = f' "{a.label}"' if a.label else ""
        if a.kind is AccountKind.ADDRESS:
            what = "parent subaccount, live" if a.parent else "address, live"
            lines.append(f"  {a.venue}:{a.account}{label} ({what} from {a.feed})")
        elif a.kind is AccountKind.API_KEY:
            key = a.credentials.masked_key() if a.credentials else "?"
            mode = "trading key allowed" if a.allow_trading_key else "read-only key required"
            lines.append(f"  {a.venue}:{a.account}{label} (API key {key}, {mode}, live)")
            lines.extend(f"    {e}" for e in key_endpoints(a))
        else:
            n = len(a.snapshot.positions) if a.snapshot else 0
            prices = f"prices from {a.feed}" if a.feed else "declared prices"
            lines.append(f"  {a.venue}:{a.account}{label} (manual, {n} positions, {prices})")
    rest = cfg.accounts[LISTED:]
    if rest:
        manual = [a.snapshot for a in rest if a.snapshot is not None]
        n = sum(len(s.positions) for s in manual)
        lines.append(f"  … and {len(rest)} more accounts ({len(manual)} manual, {n} positions)")
    scopes = cfg.known_scopes()
    live = sum(1 for a in cfg.accounts if a.kind is not AccountKind.MANUAL)
    scope_line = f"scopes known now: {len(scopes)}"
    if scopes:
        shown = [str(s) for s in scopes[:LISTED]]
        if len(scopes) > LISTED:
            shown.append(f"… and {len(scopes) - LISTED} more")
        scope_line += " (" + ", ".join(shown) + ")"
    if live:
        scope_line += f"; the scopes of {live} live account(s) come from their feeds"
    lines.append(scope_line)
    lines.extend(_rules_lines(cfg))
    lines.extend(_override_lines(cfg))
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
        f"stale-feed alert after {d.stale_alert_after:g} s, "
        + (
            f"heartbeat {d.heartbeat_target()} every {d.heartbeat_interval:g} s"
            if d.heartbeat_url
            else "no heartbeat URL"
        )
    )
    m = cfg.metrics
    lines.append(f"metrics: http://{m.listen}/metrics" if m.enabled else "metrics: off")
    tb = cfg.telegram_bot
    if tb.enabled:
        chats = ", ".join(str(c) for c in tb.chat_ids)
        api = f", API {redact(tb.api_url)}" if tb.api_url else ""
        lines.append(f"telegram bot: on, chats {chats}, token set (masked){api}")
    else:
        lines.append("telegram bot: off")
    notes.extend(_book_notes(cfg))
    if notes:
        lines.append(f"notes ({len(notes)}):")
        lines.extend(f"  {redact(n)}" for n in notes)
    return "\n".join(lines) + "\n"


def key_endpoints(a: AccountConfig) -> list[str]:
    """Where an API-key account's private feed connects: its REST base and its stream (the
    account's ``rest_url``/``ws_url`` or the venue client's defaults, as
    ``monitor/venues/{binance,bybit,okx}/private.py`` choose them)."""
    from monitor.venues.binance import private as binance  # noqa: PLC0415
    from monitor.venues.bybit import private as bybit  # noqa: PLC0415
    from monitor.venues.okx import private as okx  # noqa: PLC0415

    def mark(given: str | None) -> str:
        return " (set here)" if given else ""

    rest, ws = a.rest_url, a.ws_url
    if a.venue == BINANCE_USDM:
        if a.portfolio_margin:
            base, stream = rest or binance.PAPI_URL, ws or binance.PM_WS_URL
        else:
            base, stream = rest or binance.FAPI_URL, ws or binance.WS_URL
        # the key's permissions are read from the spot API
        extra = f"; key check {redact((rest or binance.SPOT_URL).rstrip('/'))}"
    elif a.venue == BYBIT:
        base, stream, extra = rest or bybit.REST_URL, ws or bybit.WS_URL, ""
    elif a.venue == OKX:
        base, stream, extra = rest or okx.REST_URL, ws or okx.WS_URL, ""
    else:
        return []
    return [
        f"rest {redact(base.rstrip('/'))}{mark(rest)}{extra}; "
        f"stream {redact(stream.rstrip('/') if a.venue == BINANCE_USDM else stream)}{mark(ws)}"
    ]


def venue_lines(v: VenueConfig, cfg: Config, notes: list[str]) -> list[str]:
    """The summary lines of one enabled venue: its kind, rule set, the URLs its feed really
    connects to (a native feed: ``ws_url``/``rest_url`` or the venue table's defaults; the
    ccxt REST metadata of the Binance and Bybit price feeds; ccxt's own for any other ccxt
    id) and the symbols it watches. Notes for settings nothing reads go to ``notes``. A CEX
    price feed with nothing to price beside API-key accounts is not started (as
    ``monitor.venues.registry.build_feeds`` does): said so instead of its URLs."""
    row = spec(v.name)
    priced = [a for a in cfg.accounts if a.feed == v.name]
    keyed = [a for a in cfg.accounts if a.kind is AccountKind.API_KEY and a.venue == v.name]
    if v.native and row.ccxt and keyed and not watched_symbols(v, priced):
        return [
            f"  {v.name} (native, rules {v.rule_set}; no price feed: no symbols listed or held "
            "by manual accounts; its API-key accounts stream their own marks)"
        ]
    kind = "native" if v.native else "ccxt"
    bits = [f"{kind}, rules {v.rule_set}"]
    ws = v.ws_url or (row.ws_url if v.native else None)
    rest = v.rest_url or (row.rest_url if v.native else None)
    if ws:
        bits.append(f"stream {redact(ws)}" + (" (ws_url)" if v.ws_url else ""))
    if rest and not (v.native and row.ccxt and v.name not in _REST_TO_CCXT):
        bits.append(f"rest {redact(rest)}" + (" (rest_url)" if v.rest_url else ""))
    if v.symbols:
        bits.append(f"watching {', '.join(v.symbols)}")
    out = [f"  {v.name} ({'; '.join(bits)})"]
    if not row.ccxt:
        return out
    if v.native and v.name not in _REST_TO_CCXT:
        # the OKX price feed: no REST, no ccxt
        for key, value in (("urls", v.urls), ("options", v.options), ("rest_url", v.rest_url)):
            if value:
                notes.append(
                    f"venues.{v.name}.{key}: the {v.name} price feed uses no REST and no ccxt, "
                    "so it is never read (its stream is ws_url)"
                )
        return out
    urls, url_notes = ccxt_urls(v, rest if v.native else None)
    out.extend(f"    {u}" for u in urls)
    notes.extend(url_notes)
    return out


def ccxt_urls(venue: VenueConfig, rest: str | None = None) -> tuple[list[str], list[str]]:
    """The effective ccxt URLs of ``venue`` (ccxt's defaults deep-merged with its ``urls``)
    that our feeds use, plus every URL it overrides; and notes for ``urls`` keys the exchange
    does not have (ccxt never reads them). ``rest``: the native price feed's REST base (the
    Binance and Bybit price feeds read their metadata through ccxt from it, under ``urls``);
    their stream is ``ws_url``, so a ``urls`` key for ccxt's streams is noted as unused."""
    ours: dict[str, Any] = {}
    if rest is not None and venue.name in _REST_TO_CCXT:
        path, template = _REST_TO_CCXT[venue.name]
        ours = _nest(path, template.format(rest=rest.rstrip("/")))
    try:
        default = _ccxt_urls(venue.name, {})
        given = deep_merge(ours, dict(venue.urls))
        merged = _ccxt_urls(venue.name, given) if given else default
    except Exception as exc:  # ccxt may raise anything here; this is only a summary
        return [f"urls: ccxt cannot build {venue.name}: {type(exc).__name__}"], []
    used = list(CCXT_URL_PATHS.get(venue.name, ()))
    paths = list(used)
    notes: list[str] = []
    for path in _leaves(venue.urls):
        parent = _lookup(default, path[:-1])
        if isinstance(parent, Mapping) and path[-1] not in parent:
            keys = ", ".join(str(k) for k in parent)
            notes.append(
                f"venues.{venue.name}.urls.{'.'.join(path)}: ccxt's {venue.name} has no such "
                f"key, so it is never read (it has: {keys})"
            )
        elif rest is not None and path not in used:
            what = "stream" if "ws" in path else "REST"
            notes.append(
                f"venues.{venue.name}.urls.{'.'.join(path)}: the {venue.name} price feed "
                f"never uses it (it streams from ws_url; its ccxt REST metadata reads only "
                f"{', '.join('urls.' + '.'.join(u) for u in used)})"
                + ("; set ws_url for the stream" if what == "stream" else "")
            )
        elif path not in paths:
            paths.append(path)
    shown = []
    for path in paths:
        value = _lookup(merged, path)
        if isinstance(value, str):
            mark = " (set here)" if _lookup(dict(venue.urls), path) is not None else ""
            role = "metadata (ccxt REST) " if rest is not None else ""
            shown.append(f"{role}url {'.'.join(path)} = {redact(value)}{mark}")
    return shown, notes


def _nest(path: tuple[str, ...], value: str) -> dict[str, Any]:
    out: dict[str, Any] = {path[-1]: value}
    for k in reversed(path[:-1]):
        out = {k: out}
    return out


def _ccxt_urls(name: str, urls: dict[str, Any]) -> dict[str, Any]:
    import ccxt  # noqa: PLC0415 (slow to import: only for ccxt venues)
    import ccxt.pro  # noqa: PLC0415

    cls = getattr(ccxt.pro, name, None) or getattr(ccxt, name)
    exchange = cls({"urls": urls} if urls else {})
    hostname = str(getattr(exchange, "hostname", "") or "")
    urls_out: dict[str, Any] = _implode(exchange.urls, hostname)
    return urls_out


def _implode(value: Any, hostname: str) -> Any:
    if isinstance(value, str):
        return value.replace("{hostname}", hostname) if hostname else value
    if isinstance(value, Mapping):
        return {k: _implode(v, hostname) for k, v in value.items()}
    return value


def _leaves(tree: Mapping[str, Any], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for k, v in tree.items():
        if isinstance(v, Mapping):
            out.extend(_leaves(v, (*prefix, str(k))))
        else:
            out.append((*prefix, str(k)))
    return out


def _lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for k in path:
        if not isinstance(tree, Mapping) or k not in tree:
            return None
        tree = tree[k]
    return tree


def _book_notes(cfg: Config) -> tuple[str, ...]:
    """Rule levels that fire on every scope/position of the manual accounts' declared book."""
    manual = [a for a in cfg.accounts if a.snapshot is not None]
    if cfg.rules is None or not manual:
        return ()
    rule_sets = {v.name: v.rule_set for v in cfg.venues.values() if v.name != v.rule_set}
    rule_sets.update({a.venue: a.rule_set for a in manual if a.venue != a.rule_set})
    book = Portfolio(rule_sets)
    for a in manual:
        assert a.snapshot is not None
        book.apply(a.snapshot)
    ratios: dict[str, list[float]] = {}
    distances: dict[str, list[float]] = {}
    for r in book.risks():
        acct = f"{r.key.venue}:{r.key.account}"
        if r.margin_ratio is not None:
            ratios.setdefault(acct, []).append(r.margin_ratio)
        distances.setdefault(acct, []).extend(
            p.liquidation_distance for p in r.positions if p.liquidation_distance is not None
        )
    return book_notes(cfg.rules, ratios, distances)


def _override_lines(cfg: Config) -> list[str]:
    accounts = getattr(cfg.rules, "accounts", None)
    if not isinstance(accounts, Mapping) or not accounts:
        return []
    out = [f"overrides ({len(accounts)}):"]
    for acct, rules in accounts.items():
        parts = []
        for kind, rule in rules.items():
            if not rule.enabled:
                parts.append(f"{kind} off")
                continue
            levels = ", ".join(
                f"{lv.severity} {lv.fire:g} (clear {lv.clear:g})" for lv in rule.levels
            )
            parts.append(f"{kind} {levels or 'no levels'}")
        out.append(f"  {acct}: {'; '.join(parts)}")
    return out


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
        url = getattr(ch, "url", None)
        if isinstance(url, str) and url.lower().startswith(LOCAL_SCHEMES):
            shown = redact(url)  # a local file or the console: no secret, the path matters
        elif isinstance(redacted, str):
            shown = redact(redacted)  # the channel's masked form (channels.channel_form)
        else:
            urls = _urls_of(ch)
            shown = ", ".join(mask_url(u) for u in urls) if urls else "(no URL)"
        severity = getattr(ch, "min_severity", None)
        extra = f" ({severity} and above)" if severity is not None else ""
        out.append(f"  {name}: {shown}{extra}")
    return out


#: the local channels (:mod:`monitor.notify.local`): their URL is shown whole
LOCAL_SCHEMES: Final = ("monitorfile://", "monitorconsole://")


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
