"""The daemon's configuration: one TOML file, validated before anything starts.

``load_config(path, env=None) -> Config`` reads and checks everything; every problem raises
``ConfigError(file, "key.path", problem)``, and an unknown key names the nearest valid one
("did you mean ..."). Sections (``config/example.toml`` documents every key):

* ``[venues.<name>]``: feeds to run. ``hyperliquid`` and ``dydx`` are native feeds; any ccxt
  exchange id (``binanceusdm``, ``bybit``, ``okx``, ...) runs through ccxt.pro. Endpoints
  (``ws_url``, ``rest_url``) override the defaults of the feed; intervals are in seconds.
* ``[[accounts]]``: public addresses (``id = "hyperliquid:0x…"``, ``id = "dydx:ADDRESS/N"``,
  ``parent = true`` for a dYdX parent subaccount with its isolated children) or manual
  accounts for any margin rule set (``venue``, ``name``, ``cross_collateral``,
  ``[[accounts.positions]]`` with the fields of the normalized snapshot, contracts.md §2).
* ``[rules]``/``[channels]``: parsed by ``monitor.alerts.rules.parse_rules`` and
  ``monitor.notify.channels.parse_channels`` when those modules are installed; their raw
  tables are always kept on the ``Config``. Channel URLs alone may use ``${ENV_VAR}``
  (substituted by ``parse_channels``); the values of the variables they name are registered
  with the log redactor.
* ``[store]``: the SQLite file; by default ``$STATE_DIRECTORY/monitor.sqlite3`` (systemd's
  ``StateDirectory=``), else ``$XDG_STATE_HOME/monitor/monitor.sqlite3``, else
  ``~/.local/state/monitor/monitor.sqlite3``. Relative paths are taken from the config file's
  directory.
* ``[logging]``: ``level`` and ``format`` (``auto``/``json``/``console``).
* ``[daemon]``: drain deadline, watchdog, ready timeout, stale-feed alert delay (seconds).

Error messages never echo a secret: every message goes through :func:`monitor.logs.redact`.
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

from monitor.errors import ConfigError, InputError
from monitor.logs import FORMATS, LEVELS, redact, register_secret
from monitor.model.events import AccountSnapshot
from monitor.model.positions import CROSS_SCOPE, AccountKey, ScopeKey
from monitor.model.venues import VENUES as VENUE_TABLE
from monitor.model.venues import canonical, rule_set_of
from monitor.snapshot import position_from_json

#: native feeds (our own websocket clients) and the margin rule set each one's accounts use
NATIVE_VENUES: Final[Mapping[str, str]] = {"hyperliquid": "hyperliquid", "dydx": "dydx_v4"}
#: ccxt ids with a dedicated margin rule set; any other ccxt id uses ``generic``
CCXT_RULE_SETS: Final[Mapping[str, str]] = {
    "binanceusdm": "binance_usdm",
    "bybit": "bybit",
    "okx": "okx",
}

SECTIONS: Final = ("venues", "accounts", "rules", "channels", "store", "logging", "daemon")
VENUE_KEYS: Final = (
    "enabled",
    "ws_url",
    "rest_url",
    "poll_interval",
    "stale_after",
    "ping_interval",
    "symbols",
    "options",
    "urls",
)
#: keys only native feeds use, and keys only ccxt venues use
NATIVE_ONLY_KEYS: Final = ("ws_url", "rest_url", "ping_interval")
CCXT_ONLY_KEYS: Final = ("options", "urls")
ADDRESS_ACCOUNT_KEYS: Final = ("id", "label", "parent")
MANUAL_ACCOUNT_KEYS: Final = ("venue", "name", "label", "cross_collateral", "feed", "positions")
STORE_KEYS: Final = ("path", "sample_interval", "change_threshold", "retention_days")
LOGGING_KEYS: Final = ("level", "format")
DAEMON_KEYS: Final = ("drain_deadline", "watchdog", "ready_timeout", "stale_alert_after")

_HL_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DYDX_ADDRESS = re.compile(r"dydx1[02-9ac-hj-np-z]{20,90}")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: dYdX subaccount numbers: parents 0..127, their isolated children n + 128·k
_DYDX_MAX_PARENT = 127
_DYDX_MAX_SUBACCOUNT = 128_000


class AccountKind(StrEnum):
    ADDRESS = "address"
    MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """One feed. ``None`` endpoints and intervals mean "the feed's own default".

    ``poll_interval``: seconds between REST polls where the feed polls (Hyperliquid addresses
    beyond the WebSocket limit; ccxt funding); ``stale_after``: seconds without data before a
    price subscription counts as stale; ``symbols``: instruments to watch beyond those held,
    as the venue names them (``BTC``, ``BTC-USD``, ``BTCUSDT``, ``BTC-USDT-SWAP``).
    Native feeds only: ``ws_url``, ``rest_url``, ``ping_interval`` (seconds between pings).
    ccxt venues only: ``options`` (the exchange's ccxt ``options``) and ``urls`` (deep-merged
    into its ccxt ``urls``, e.g. to point it at a test server).
    """

    name: str
    rule_set: str
    native: bool
    enabled: bool = True
    ws_url: str | None = None
    rest_url: str | None = None
    poll_interval: float | None = None
    stale_after: float | None = None
    ping_interval: float | None = None
    symbols: tuple[str, ...] = ()
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    urls: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """An account to watch.

    ``kind`` address: ``feed`` is the venue that streams it (``hyperliquid``/``dydx``),
    ``account`` the id the portfolio uses (HL: the lower-case address; dYdX:
    ``ADDRESS/N``), ``parent`` marks a dYdX parent subaccount.
    ``kind`` manual: ``snapshot`` holds the declared collateral and positions; ``feed`` is the
    venue whose prices revalue it (None: the prices declared in the file stay fixed).
    """

    kind: AccountKind
    rule_set: str
    account: str
    label: str | None = None
    feed: str | None = None
    address: str | None = None
    subaccount: int | None = None
    parent: bool = False
    snapshot: AccountSnapshot | None = None

    @property
    def venue(self) -> str:
        """The canonical venue name of this account's events (:mod:`monitor.model.venues`):
        the venue streaming an address account; for a manual account its ``venue``, or, for
        a ``generic`` one priced by a ccxt exchange, that exchange's id."""
        if self.snapshot is not None:
            return self.snapshot.venue
        return canonical(self.feed or self.rule_set)

    @property
    def key(self) -> AccountKey:
        return AccountKey(self.venue, self.account)

    @property
    def display(self) -> str:
        return self.label or f"{self.venue}:{self.account}"

    def known_scopes(self) -> tuple[ScopeKey, ...]:
        """Scopes known before any feed speaks: a manual account's cross pool and each
        isolated position; an address account's are learnt from its first snapshot."""
        if self.snapshot is None:
            return ()
        out = [ScopeKey(self.venue, self.account, CROSS_SCOPE)]
        out += [
            ScopeKey(self.venue, self.account, p.scope)
            for p in self.snapshot.positions
            if p.scope != CROSS_SCOPE
        ]
        return tuple(out)


@dataclass(frozen=True, slots=True)
class StoreConfig:
    """``sample_interval``: seconds between risk-history samples per scope;
    ``change_threshold``: a sample is also taken when a scope's margin ratio moved by at least
    this much (absolute, e.g. 0.05 = 5 points) since its last sample; ``retention_days``:
    history older than this is pruned."""

    path: Path
    sample_interval: float = 60.0
    change_threshold: float = 0.05
    retention_days: float = 30.0


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    level: str = "info"
    format: str = "auto"


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    """Seconds. ``drain_deadline``: how long shutdown may spend delivering the outbox (keep
    it well under the unit's ``TimeoutStopSec=``); ``watchdog``: send ``WATCHDOG=1`` when
    systemd asks for it; ``ready_timeout``: send ``READY=1`` after this long even if some
    account has not produced its first snapshot; ``stale_alert_after``: a feed silent or
    unreachable this long raises an alert."""

    drain_deadline: float = 20.0
    watchdog: bool = True
    ready_timeout: float = 60.0
    stale_alert_after: float = 120.0


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``monitor run`` needs, validated.

    ``rules``/``channels`` hold the parsed objects (``AlertRules``, ``list[Channel]``) when
    ``monitor.alerts.rules``/``monitor.notify.channels`` are installed, else None;
    ``rules_table``/``channels_table`` are the raw TOML tables either way.
    """

    source: Path
    venues: Mapping[str, VenueConfig]
    accounts: tuple[AccountConfig, ...]
    store: StoreConfig
    logging: LoggingConfig
    daemon: DaemonConfig
    rules_table: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    channels_table: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    rules: Any = None
    channels: tuple[Any, ...] | None = None

    @property
    def enabled_venues(self) -> tuple[VenueConfig, ...]:
        return tuple(v for v in self.venues.values() if v.enabled)

    def known_scopes(self) -> tuple[ScopeKey, ...]:
        return tuple(s for a in self.accounts for s in a.known_scopes())


# -- entry point ------------------------------------------------------------------------------


def load_config(path: Path, *, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate ``path``; raise ``ConfigError(file, key path, problem)``."""
    env = os.environ if env is None else env
    source = str(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(source, None, "no such file") from None
    except OSError as exc:
        raise ConfigError(source, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(source, None, "not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(source, None, f"not valid TOML: {exc}") from None
    return parse_config(doc, path, env=env)


def parse_config(
    doc: Mapping[str, Any], path: Path, *, env: Mapping[str, str] | None = None
) -> Config:
    """Validate an already-parsed TOML document; ``path`` names it in errors and anchors
    relative store paths."""
    env = os.environ if env is None else env
    try:
        return _Loader(str(path), path, env).config(doc)
    except InputError as exc:
        raise ConfigError(exc.source, exc.field, redact(exc.problem)) from None


# -- the loader -------------------------------------------------------------------------------


class _Loader:
    def __init__(self, source: str, path: Path, env: Mapping[str, str]) -> None:
        self.source = source
        self.path = path
        self.env = env

    def fail(self, key: str | None, problem: str) -> ConfigError:
        return ConfigError(self.source, key, redact(problem))

    # generic checks ----------------------------------------------------------------------
    def table(self, value: Any, key: str) -> Mapping[str, Any]:
        if not isinstance(value, Mapping):
            raise self.fail(key, f"expected a table, got {_kind(value)}")
        return value

    def known(self, table: Mapping[str, Any], keys: Sequence[str], prefix: str) -> None:
        for k in table:
            if k not in keys:
                near = difflib.get_close_matches(k, keys, n=1, cutoff=0.6)
                hint = f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(keys)})"
                raise self.fail(_join(prefix, k), f"unknown key{hint}")

    def number(
        self,
        table: Mapping[str, Any],
        key: str,
        prefix: str,
        *,
        default: float | None,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
    ) -> float | None:
        p = _join(prefix, key)
        if key not in table:
            return default
        v = table[key]
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.fail(p, f"expected a number, got {_kind(v)}")
        x = float(v)
        if not math.isfinite(x):
            raise self.fail(p, f"must be finite, got {v!r}")
        if low is not None and (x <= low if low_open else x < low):
            raise self.fail(p, f"must be {'>' if low_open else '≥'} {low:g}, got {v!r}")
        if high is not None and x > high:
            raise self.fail(p, f"must be ≤ {high:g}, got {v!r}")
        return x

    def req_number(self, table: Mapping[str, Any], key: str, prefix: str, **kw: Any) -> float:
        v = self.number(table, key, prefix, default=None, **kw)
        if v is None:
            raise self.fail(_join(prefix, key), "missing")
        return v

    def boolean(self, table: Mapping[str, Any], key: str, prefix: str, default: bool) -> bool:
        v = table.get(key, default)
        if not isinstance(v, bool):
            raise self.fail(_join(prefix, key), f"expected true or false, got {_kind(v)}")
        return v

    def string(
        self, table: Mapping[str, Any], key: str, prefix: str, default: str | None = None
    ) -> str | None:
        if key not in table:
            return default
        v = table[key]
        if not isinstance(v, str) or not v.strip():
            raise self.fail(_join(prefix, key), f"expected a non-empty string, got {_kind(v)}")
        return v.strip()

    def choice(
        self, table: Mapping[str, Any], key: str, prefix: str, options: Sequence[str], default: str
    ) -> str:
        v = self.string(table, key, prefix, default)
        assert v is not None
        if v.lower() not in options:
            near = difflib.get_close_matches(v.lower(), options, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise self.fail(
                _join(prefix, key), f"expected one of {', '.join(options)}, got {v!r}{hint}"
            )
        return v.lower()

    def url(
        self, table: Mapping[str, Any], key: str, prefix: str, schemes: Sequence[str]
    ) -> str | None:
        v = self.string(table, key, prefix)
        if v is None:
            return None
        scheme, sep, rest = v.partition("://")
        if not sep or scheme.lower() not in schemes or not rest or " " in v:
            raise self.fail(
                _join(prefix, key), f"expected a {'/'.join(schemes)}:// URL, got {v[:80]!r}"
            )
        return v

    # sections ----------------------------------------------------------------------------
    def config(self, doc: Mapping[str, Any]) -> Config:
        self.known(doc, SECTIONS, "")
        venues = self.venues(doc.get("venues", {}))
        accounts = self.accounts(doc.get("accounts", []), venues)
        for acct in accounts:
            # an address account's feed runs with its defaults when it has no section
            if acct.kind is AccountKind.ADDRESS and acct.feed and acct.feed not in venues:
                venues[acct.feed] = VenueConfig(
                    name=acct.feed, rule_set=NATIVE_VENUES[acct.feed], native=True
                )
        store = self.store(self.table(doc.get("store", {}), "store"))
        logging_ = self.logging(self.table(doc.get("logging", {}), "logging"))
        daemon = self.daemon(self.table(doc.get("daemon", {}), "daemon"))
        rules_table = self.table(doc.get("rules", {}), "rules")
        channels_table = self.table(doc.get("channels", {}), "channels")
        for ref in _env_refs(channels_table):
            value = self.env.get(ref)
            if value:
                register_secret(value)
        return Config(
            source=self.path,
            venues=MappingProxyType(venues),
            accounts=accounts,
            store=store,
            logging=logging_,
            daemon=daemon,
            rules_table=MappingProxyType(dict(rules_table)),
            channels_table=MappingProxyType(dict(channels_table)),
            rules=self.rules(rules_table),
            channels=self.channels(channels_table),
        )

    def venues(self, value: Any) -> dict[str, VenueConfig]:
        tbl = self.table(value, "venues")
        out: dict[str, VenueConfig] = {}
        for name, body in tbl.items():
            prefix = f"venues.{name}"
            t = self.table(body, prefix)
            self.known(t, VENUE_KEYS, prefix)
            native = name in NATIVE_VENUES
            if not native:
                _check_ccxt_id(name, self)
            rule_set = NATIVE_VENUES.get(name) or CCXT_RULE_SETS.get(name, "generic")
            symbols_raw = t.get("symbols", [])
            if not isinstance(symbols_raw, list) or not all(
                isinstance(s, str) and s.strip() for s in symbols_raw
            ):
                raise self.fail(f"{prefix}.symbols", "expected a list of instrument names")
            options = self.table(t.get("options", {}), f"{prefix}.options")
            urls = self.table(t.get("urls", {}), f"{prefix}.urls")
            for key in NATIVE_ONLY_KEYS if not native else CCXT_ONLY_KEYS:
                if key in t:
                    other = "ccxt venues" if native else "hyperliquid and dydx"
                    hint = " (use urls: merged into ccxt's urls)" if key.endswith("_url") else ""
                    raise self.fail(f"{prefix}.{key}", f"only {other} take {key}{hint}")
            out[name] = VenueConfig(
                name=name,
                rule_set=rule_set,
                native=native,
                enabled=self.boolean(t, "enabled", prefix, True),
                ws_url=self.url(t, "ws_url", prefix, ("ws", "wss")),
                rest_url=self.url(t, "rest_url", prefix, ("http", "https")),
                poll_interval=self.number(
                    t, "poll_interval", prefix, default=None, low=0.0, low_open=True, high=3600.0
                ),
                stale_after=self.number(
                    t, "stale_after", prefix, default=None, low=0.0, low_open=True, high=86400.0
                ),
                ping_interval=self.number(
                    t, "ping_interval", prefix, default=None, low=0.0, low_open=True, high=3600.0
                ),
                symbols=tuple(s.strip() for s in symbols_raw),
                options=MappingProxyType(dict(options)),
                urls=MappingProxyType(dict(urls)),
            )
        return out

    def accounts(self, value: Any, venues: dict[str, VenueConfig]) -> tuple[AccountConfig, ...]:
        if isinstance(value, Mapping):
            raise self.fail("accounts", "expected [[accounts]] entries (an array of tables)")
        if not isinstance(value, list):
            raise self.fail("accounts", f"expected an array of tables, got {_kind(value)}")
        out: list[AccountConfig] = []
        seen: dict[AccountKey, str] = {}
        for i, body in enumerate(value):
            prefix = f"accounts[{i}]"
            t = self.table(body, prefix)
            if "id" in t:
                acct = self.address_account(t, prefix, venues)
            elif "venue" in t or "positions" in t or "cross_collateral" in t or "name" in t:
                acct = self.manual_account(t, prefix, venues)
            else:
                raise self.fail(
                    prefix,
                    'needs either id = "hyperliquid:0x…" / "dydx:ADDRESS/N" '
                    "or a manual account (venue, name, cross_collateral, positions)",
                )
            if acct.key in seen:
                raise self.fail(prefix, f"the same account as {seen[acct.key]}")
            seen[acct.key] = prefix
            out.append(acct)
        return tuple(out)

    def address_account(
        self, t: Mapping[str, Any], prefix: str, venues: dict[str, VenueConfig]
    ) -> AccountConfig:
        self.known(t, ADDRESS_ACCOUNT_KEYS, prefix)
        raw = self.string(t, "id", prefix)
        assert raw is not None
        p = f"{prefix}.id"
        venue, sep, rest = raw.partition(":")
        venue = venue.strip().lower()
        if not sep or venue not in NATIVE_VENUES:
            raise self.fail(p, f'expected "hyperliquid:0x…" or "dydx:ADDRESS/N", got {raw[:80]!r}')
        v = venues.get(venue)
        if v is not None and not v.enabled:
            raise self.fail(p, f"venue {venue!r} is disabled in [venues.{venue}]")
        parent = self.boolean(t, "parent", prefix, False)
        label = self.string(t, "label", prefix)
        rest = rest.strip()
        if venue == "hyperliquid":
            if parent:
                raise self.fail(f"{prefix}.parent", "only dYdX has parent subaccounts")
            if not _HL_ADDRESS.fullmatch(rest):
                raise self.fail(p, f"not a Hyperliquid address (0x + 40 hex digits): {rest!r}")
            address = rest.lower()
            return AccountConfig(
                kind=AccountKind.ADDRESS,
                rule_set="hyperliquid",
                account=address,
                label=label,
                feed="hyperliquid",
                address=address,
            )
        address, slash, num = rest.partition("/")
        if not _DYDX_ADDRESS.fullmatch(address):
            raise self.fail(p, f"not a dYdX address (dydx1…): {address[:80]!r}")
        if not slash or not (num.isascii() and num.isdigit()):
            raise self.fail(p, "expected dydx:ADDRESS/N with N the subaccount number")
        n = int(num)
        limit = _DYDX_MAX_PARENT if parent else _DYDX_MAX_SUBACCOUNT
        if n > limit:
            what = "a parent subaccount number" if parent else "a subaccount number"
            raise self.fail(p, f"{what} is at most {limit}, got {n}")
        return AccountConfig(
            kind=AccountKind.ADDRESS,
            rule_set="dydx_v4",
            account=f"{address}/{n}",
            label=label,
            feed="dydx",
            address=address,
            subaccount=n,
            parent=parent,
        )

    def manual_account(
        self, t: Mapping[str, Any], prefix: str, venues: dict[str, VenueConfig]
    ) -> AccountConfig:
        self.known(t, MANUAL_ACCOUNT_KEYS, prefix)
        written = self.string(t, "venue", prefix)
        known = tuple(VENUE_TABLE)
        if written is None:
            raise self.fail(f"{prefix}.venue", f"missing (a venue: {', '.join(known)})")
        venue_name = canonical(written)
        if venue_name not in VENUE_TABLE:
            near = difflib.get_close_matches(venue_name, known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(known)})"
            raise self.fail(f"{prefix}.venue", f"unknown venue {written!r}{hint}")
        rule_set = rule_set_of(venue_name)
        name = self.string(t, "name", prefix)
        if name is None:
            raise self.fail(f"{prefix}.name", "missing (a name for this account)")
        collateral = self.req_number(t, "cross_collateral", prefix)
        feed = self.string(t, "feed", prefix)
        if feed is not None:
            fv = venues.get(feed)
            if fv is None:
                raise self.fail(f"{prefix}.feed", f"no [venues.{feed}] section")
            if not fv.enabled:
                raise self.fail(f"{prefix}.feed", f"venue {feed!r} is disabled")
            if fv.rule_set != rule_set:
                raise self.fail(
                    f"{prefix}.feed",
                    f"venue {feed!r} prices the {fv.rule_set!r} rule set, not {rule_set!r}",
                )
        else:
            feed = next(
                (v.name for v in venues.values() if v.enabled and v.rule_set == rule_set), None
            )
        raw_positions = t.get("positions", [])
        if not isinstance(raw_positions, list):
            raise self.fail(f"{prefix}.positions", "expected [[accounts.positions]] entries")
        positions = []
        symbols: set[str] = set()
        for j, item in enumerate(raw_positions):
            ppath = f"{prefix}.positions[{j}]"
            pos = position_from_json(item, self.source, ppath)
            if pos.symbol in symbols:
                raise self.fail(f"{ppath}.symbol", f"a second position in {pos.symbol!r}")
            symbols.add(pos.symbol)
            if pos.size != 0.0:
                positions.append(pos)
        return AccountConfig(
            kind=AccountKind.MANUAL,
            rule_set=rule_set,
            account=name,
            label=self.string(t, "label", prefix),
            feed=feed,
            snapshot=AccountSnapshot(
                # a ccxt exchange without a rule set of its own names its events by its id
                venue=canonical(feed) if rule_set == "generic" and feed is not None else venue_name,
                account=name,
                cross_collateral=collateral,
                positions=tuple(positions),
            ),
        )

    def store(self, t: Mapping[str, Any]) -> StoreConfig:
        self.known(t, STORE_KEYS, "store")
        raw = self.string(t, "path", "store")
        path = self.resolve(raw) if raw is not None else default_store_path(self.env)
        return StoreConfig(
            path=path,
            sample_interval=_req(
                self.number(t, "sample_interval", "store", default=60.0, low=0.0, low_open=True)
            ),
            change_threshold=_req(
                self.number(t, "change_threshold", "store", default=0.05, low=0.0, low_open=True)
            ),
            retention_days=_req(
                self.number(t, "retention_days", "store", default=30.0, low=0.0, low_open=True)
            ),
        )

    def resolve(self, raw: str) -> Path:
        home = self.env.get("HOME")
        if raw.startswith("~") and home:
            raw = home + raw[1:]
        p = Path(raw)
        return p if p.is_absolute() else (self.path.parent / p)

    def logging(self, t: Mapping[str, Any]) -> LoggingConfig:
        self.known(t, LOGGING_KEYS, "logging")
        return LoggingConfig(
            level=self.choice(t, "level", "logging", tuple(LEVELS), "info"),
            format=self.choice(t, "format", "logging", FORMATS, "auto"),
        )

    def daemon(self, t: Mapping[str, Any]) -> DaemonConfig:
        self.known(t, DAEMON_KEYS, "daemon")
        return DaemonConfig(
            drain_deadline=_req(
                self.number(
                    t, "drain_deadline", "daemon", default=20.0, low=0.0, low_open=True, high=300.0
                )
            ),
            watchdog=self.boolean(t, "watchdog", "daemon", True),
            ready_timeout=_req(
                self.number(
                    t, "ready_timeout", "daemon", default=60.0, low=0.0, low_open=True, high=3600.0
                )
            ),
            stale_alert_after=_req(
                self.number(t, "stale_alert_after", "daemon", default=120.0, low=0.0, low_open=True)
            ),
        )

    def rules(self, table: Mapping[str, Any]) -> Any:
        parse = _optional("monitor.alerts.rules", "parse_rules")
        if parse is None:
            return None
        return parse(table, self.source)

    def channels(self, table: Mapping[str, Any]) -> tuple[Any, ...] | None:
        parse = _optional("monitor.notify.channels", "parse_channels")
        if parse is None:
            return None
        creds = self.env.get("CREDENTIALS_DIRECTORY")
        return tuple(
            parse(table, self.source, env=self.env, credentials_dir=Path(creds) if creds else None)
        )


# -- helpers ----------------------------------------------------------------------------------


def default_store_path(env: Mapping[str, str]) -> Path:
    """``$STATE_DIRECTORY`` (systemd; the first of a colon-separated list), else
    ``$XDG_STATE_HOME/monitor``, else ``~/.local/state/monitor``; file ``monitor.sqlite3``."""
    state = env.get("STATE_DIRECTORY", "").split(":")[0]
    if state:
        return Path(state) / "monitor.sqlite3"
    xdg = env.get("XDG_STATE_HOME", "")
    if xdg and Path(xdg).is_absolute():
        return Path(xdg) / "monitor" / "monitor.sqlite3"
    home = env.get("HOME") or str(Path.home())
    return Path(home) / ".local" / "state" / "monitor" / "monitor.sqlite3"


def _optional(module: str, name: str) -> Any:
    """``module.name`` when that module exists, else None (a missing dependency of the module
    itself is a real error and propagates)."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name is not None and module.startswith(exc.name):
            return None
        raise
    return getattr(mod, name, None)


def _check_ccxt_id(name: str, loader: _Loader) -> None:
    if name in CCXT_RULE_SETS:
        return
    import ccxt  # noqa: PLC0415  (0.25 s to import: only for venues we do not know by name)

    ids: list[str] = list(ccxt.exchanges)
    if name not in ids:
        candidates = [*NATIVE_VENUES, *ids]
        near = difflib.get_close_matches(name, candidates, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise loader.fail(
            f"venues.{name}", f"unknown venue (not hyperliquid, dydx or a ccxt id){hint}"
        )


def _env_refs(value: Any) -> list[str]:
    if isinstance(value, str):
        return _ENV_REF.findall(value)
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in _env_refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _env_refs(v)]
    return []


def _join(prefix: str, key: str) -> str:
    return f"{prefix}.{key}" if prefix else key


def _req(v: float | None) -> float:
    assert v is not None
    return v


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    return type(value).__name__
