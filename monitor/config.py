"""The daemon's configuration: one TOML file, validated before anything starts.

``load_config(path, env=None) -> Config`` reads and checks everything; every problem raises
``ConfigError(file, "key.path", problem)``, and an unknown key names the nearest valid one
("did you mean ..."). Each section is a ``msgspec.Struct`` (the ``_…Table`` classes below)
converted by :func:`monitor.schema.convert`, which maps msgspec's errors to those messages;
the checks that span sections (accounts and their venues, overrides and accounts) follow.
Sections (``config/example.toml`` documents every key):

* ``[venues.<name>]``: feeds to run, named by their canonical venue name
  (:mod:`monitor.model.venues`: ``hyperliquid``, ``dydx`` native; ``binanceusdm``, ``bybit``,
  ``okx`` and any other ccxt exchange id through ccxt.pro). Endpoints (``ws_url``,
  ``rest_url``) override the defaults of native feeds; ccxt venues take ``options``/``urls``.
* ``[[accounts]]``: public addresses (``id = "hyperliquid:0x…"``, ``id = "dydx:ADDRESS/N"``,
  ``parent = true`` for a dYdX parent subaccount with its isolated children), accounts by
  read-only API key on CEXes (``id = "binanceusdm:NAME"``/``bybit:NAME``/``okx:NAME`` with
  ``api_key``/``secret``/``password`` given only as ``"${ENV}"`` or ``"credential:NAME"``)
  or manual accounts for any margin rule set (``venue``, ``name``, ``cross_collateral``,
  ``[[accounts.positions]]`` with the fields of the normalized snapshot, contracts.md §2).
* ``[rules]``: :func:`monitor.config_rules.parse_rules`; overrides must name configured
  accounts. ``[channels]``: ``monitor.notify.channels.parse_channels``. Their raw tables are
  kept on the ``Config`` too.
* ``[store]``: the SQLite file; by default ``$STATE_DIRECTORY/monitor.sqlite3`` (systemd's
  ``StateDirectory=``), else ``$XDG_STATE_HOME/monitor/monitor.sqlite3``, else
  ``~/.local/state/monitor/monitor.sqlite3``. Relative paths are taken from the config file's
  directory.
* ``[logging]``: ``level`` and ``format`` (``auto``/``json``/``console``).
* ``[daemon]``: drain deadline, watchdog, ready timeout, stale-feed alert delay, dead-man
  heartbeat URL and interval.
* ``[metrics]``: the Prometheus endpoint; ``[telegram_bot]``: the interactive bot.

Units: every interval takes a duration (``30`` seconds, ``"15s"``, ``"5m"``, ``"2h"``,
``"1d"``); every fraction a number or a percent string (``0.05``, ``"5%"``).

Venue names written as aliases (``dydx_v4``, ``binance_usdm``) are accepted and normalised to
the canonical name; each such spelling adds a line to ``Config.notes`` (printed by
``monitor check-config``, with the warnings about rule levels that can never fire).

Error messages never echo a secret: every message goes through :func:`monitor.logs.redact`,
and every secret read (API keys, tokens, heartbeat URL, channel ``${VAR}`` values) is
registered with the log redactor.
"""

from __future__ import annotations

import difflib
import importlib
import math
import os
import re
import sys
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final

import msgspec

from monitor.config_rules import override_keys, rule_notes
from monitor.errors import ConfigError, InputError
from monitor.logs import FORMATS, LEVELS, redact, register_secret
from monitor.model.events import AccountSnapshot
from monitor.model.ids import (
    FEED,
    MONITOR,
    FeedKey,
    IdError,
    MonitorKey,
    account_of,
    parse_user,
)
from monitor.model.positions import CROSS_SCOPE, AccountKey, ScopeKey
from monitor.model.venues import (
    BINANCE_USDM,
    BYBIT,
    DYDX,
    GENERIC,
    HYPERLIQUID,
    OKX,
    canonical,
    is_alias,
    rule_set_of,
    spec,
)
from monitor.model.venues import VENUES as VENUE_TABLE
from monitor.schema import (
    Fraction,
    Interval,
    Name,
    Number,
    Symbol,
    Text,
    convert,
    field_names,
    hidden_char,
    hidden_problem,
    join,
)
from monitor.snapshot import position_from_json
from monitor.units import describe

_FORBID: Final[dict[str, Any]] = {"forbid_unknown_fields": True, "frozen": True}

# -- the tables as written (msgspec Structs) ---------------------------------------------------


class _VenueTable(msgspec.Struct, **_FORBID):
    enabled: bool = True
    ws_url: Text | None = None
    rest_url: Text | None = None
    poll_interval: Interval | None = None
    stale_after: Interval | None = None
    ping_interval: Interval | None = None
    symbols: list[Symbol] = []
    options: dict[str, Any] = {}
    urls: dict[str, Any] = {}


class _AddressAccountTable(msgspec.Struct, **_FORBID):
    id: Text
    label: Name | None = None
    parent: bool = False


class _ApiKeyAccountTable(msgspec.Struct, **_FORBID):
    id: Text
    api_key: Text | None = None
    secret: Text | None = None
    password: Text | None = None
    allow_trading_key: bool = False
    label: Name | None = None
    rest_url: Text | None = None
    ws_url: Text | None = None
    portfolio_margin: bool = False


class _ManualAccountTable(msgspec.Struct, **_FORBID):
    venue: Text | None = None
    name: Name | None = None
    label: Name | None = None
    cross_collateral: Number | None = None
    feed: Text | None = None
    positions: list[dict[str, Any]] = []


class _AccountFileTable(msgspec.Struct, **_FORBID):
    file: Text


class _StoreTable(msgspec.Struct, **_FORBID):
    path: Text | None = None
    sample_interval: Interval = Interval(60.0)
    change_threshold: Fraction = Fraction(0.05)
    retention_days: Number = Number(30.0)


class _LoggingTable(msgspec.Struct, **_FORBID):
    level: Text = Text("info")
    format: Text = Text("auto")


class _DaemonTable(msgspec.Struct, **_FORBID):
    drain_deadline: Interval = Interval(20.0)
    watchdog: bool = True
    ready_timeout: Interval = Interval(60.0)
    stale_alert_after: Interval = Interval(120.0)
    heartbeat_url: Text | None = None
    heartbeat_interval: Interval = Interval(60.0)


class _MetricsTable(msgspec.Struct, **_FORBID):
    enabled: bool = False
    listen: Text = Text("127.0.0.1:9108")


class _TelegramBotTable(msgspec.Struct, **_FORBID):
    enabled: bool = False
    token: Text | None = None
    chat_ids: list[int] = []
    api_url: Text | None = None
    poll_timeout: Interval = Interval(30.0)
    history_hours: float = 6.0


class _Document(msgspec.Struct, **_FORBID):
    venues: dict[str, dict[str, Any]] = {}
    accounts: list[dict[str, Any]] = []
    rules: dict[str, Any] = {}
    channels: dict[str, Any] = {}
    store: _StoreTable = msgspec.field(default_factory=_StoreTable)
    logging: _LoggingTable = msgspec.field(default_factory=_LoggingTable)
    daemon: _DaemonTable = msgspec.field(default_factory=_DaemonTable)
    metrics: _MetricsTable = msgspec.field(default_factory=_MetricsTable)
    telegram_bot: _TelegramBotTable = msgspec.field(default_factory=_TelegramBotTable)


SECTIONS: Final = field_names(_Document)
VENUE_KEYS: Final = field_names(_VenueTable)
#: keys only native feeds use, and keys only ccxt venues use
#: ccxt spot exchange ids whose perpetual futures have an id of their own (a newcomer's mistake)
SPOT_WITH_PERPS: Final = MappingProxyType(
    {"binance": "binanceusdm", "kucoin": "kucoinfutures", "kraken": "krakenfutures"}
)
NATIVE_ONLY_KEYS: Final = ("ws_url", "rest_url", "ping_interval")
CCXT_ONLY_KEYS: Final = ("options", "urls")
NATIVE_NAMES: Final = tuple(name for name, row in VENUE_TABLE.items() if row.native)
ADDRESS_ACCOUNT_KEYS: Final = field_names(_AddressAccountTable)
API_KEY_ACCOUNT_KEYS: Final = field_names(_ApiKeyAccountTable)
MANUAL_ACCOUNT_KEYS: Final = field_names(_ManualAccountTable)
ACCOUNT_FILE_KEYS: Final = field_names(_AccountFileTable)
STORE_KEYS: Final = field_names(_StoreTable)
LOGGING_KEYS: Final = field_names(_LoggingTable)
DAEMON_KEYS: Final = field_names(_DaemonTable)
METRICS_KEYS: Final = field_names(_MetricsTable)
TELEGRAM_BOT_KEYS: Final = field_names(_TelegramBotTable)

#: the venues whose accounts may be read with an API key (``id = "<venue>:NAME"``)
API_KEY_VENUES: Final = (BINANCE_USDM, BYBIT, OKX)

_HL_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
_DYDX_ADDRESS = re.compile(r"dydx1[02-9ac-hj-np-z]{20,90}")
_ACCOUNT_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_URL_REF = re.compile(r"\$\{(?:(file|cred):)?([A-Za-z_][A-Za-z0-9_.-]*)\}")
_SECRET_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
#: ``credential:NAME``, or ``${file:NAME}``/``${cred:NAME}`` as channel URLs spell it
_SECRET_CRED = re.compile(r"credential:([A-Za-z0-9_.-]+)|\$\{(?:file|cred):([A-Za-z0-9_.-]+)\}")
#: dYdX subaccount numbers: parents 0..127, their isolated children n + 128·k
_DYDX_MAX_PARENT = 127
_DYDX_CHILD_STRIDE = 128
_DYDX_MAX_SUBACCOUNT = 128_000
#: a JSON list as its entries' raw bytes, and any JSON value (``_Loader.book_entries``)
_RAW_LIST: Final = msgspec.json.Decoder(list[msgspec.Raw])
_ANY: Final = msgspec.json.Decoder()
#: in valid JSON: a string, whole (escapes and all), with the colon after it if it is a key
_JSON_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*"(\s*:)?', re.S)
#: a key's closing quote, blanks, its colon (the quick count of ``":`` misses these keys)
_SPACED_COLON: Final = re.compile(rb'"\s+:')
#: in valid JSON: a string (a key with its colon), a bracket or a comma
_JSON_TOKEN: Final = re.compile(rb'"(?:[^"\\]|\\.)*"\s*:?|[{}\[\],]', re.S)


class AccountKind(StrEnum):
    ADDRESS = "address"
    MANUAL = "manual"
    API_KEY = "api_key"


# -- the validated configuration ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VenueConfig:
    """One feed. ``None`` endpoints and intervals mean "the feed's own default".

    ``name``: the canonical venue name; ``poll_interval``: seconds between REST polls where
    the feed polls (Hyperliquid addresses beyond the WebSocket limit; ccxt funding);
    ``stale_after``: seconds without data before a price subscription counts as stale;
    ``symbols``: instruments to watch beyond those held, as the venue names them (``BTC``,
    ``BTC-USD``, ``BTCUSDT``, ``BTC-USDT-SWAP``). Native feeds only: ``ws_url``,
    ``rest_url``, ``ping_interval`` (seconds between pings). ccxt venues only: ``options``
    (the exchange's ccxt ``options``) and ``urls`` (deep-merged into its ccxt ``urls``, e.g.
    ``{api = {ws = {linear = "ws://127.0.0.1:9443/ws"}}}`` for binanceusdm).
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
class ApiCredentials:
    """A read-only API key of a CEX account (``secret``/``password`` as the venue issued
    them; ``password`` is OKX's passphrase, None elsewhere). Never shown: ``repr`` masks
    them, :meth:`masked_key` shows the first 4 characters of the key."""

    api_key: str
    secret: str
    password: str | None = None

    def masked_key(self) -> str:
        return f"{self.api_key[:4]}…"

    def __repr__(self) -> str:
        pw = "None" if self.password is None else "'***'"
        return f"ApiCredentials(api_key='{self.masked_key()}', secret='***', password={pw})"

    __str__ = __repr__


@dataclass(frozen=True, slots=True)
class AccountConfig:
    """An account to watch.

    ``kind`` address: ``feed`` is the venue that streams it (``hyperliquid``/``dydx``),
    ``account`` the id the portfolio uses (HL: the lower-case address; dYdX:
    ``ADDRESS/N``), ``parent`` marks a dYdX parent subaccount.
    ``kind`` api_key: ``feed`` is the CEX (``binanceusdm``/``bybit``/``okx``), ``account``
    the NAME of ``id = "<venue>:NAME"``, ``credentials`` its key (read-only unless
    ``allow_trading_key``).
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
    credentials: ApiCredentials | None = None
    allow_trading_key: bool = False
    rest_url: str | None = None
    ws_url: str | None = None
    portfolio_margin: bool = False
    _key: AccountKey | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def venue(self) -> str:
        """The canonical venue name of this account's events (:mod:`monitor.model.venues`):
        the venue streaming an address or API-key account; for a manual account its
        ``venue``, or, for a ``generic`` one priced by a ccxt exchange, that exchange's id."""
        if self.snapshot is not None:
            return self.snapshot.venue
        return canonical(self.feed or self.rule_set)

    @property
    def key(self) -> AccountKey:
        """``AccountKey(venue, account)``, built once: the engine's account lists, sets and
        reload diffs then share one key (and its text) per account instead of a copy each."""
        key = self._key
        if key is None:
            key = AccountKey(self.venue, self.account)
            object.__setattr__(self, "_key", key)
        return key

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
    unreachable this long raises an alert; ``heartbeat_url``: a dead-man's-switch URL
    (healthchecks.io style) to request every ``heartbeat_interval`` while healthy, None: off.
    The URL is a secret (its ``${ENV}`` references substituted, the whole URL registered with
    the log redactor): never log it, show :meth:`heartbeat_target`."""

    drain_deadline: float = 20.0
    watchdog: bool = True
    ready_timeout: float = 60.0
    stale_alert_after: float = 120.0
    heartbeat_url: str | None = field(default=None, repr=False)
    heartbeat_interval: float = 60.0

    def heartbeat_target(self) -> str | None:
        """``scheme://host[:port]/…``: the heartbeat URL without its secret parts."""
        if self.heartbeat_url is None:
            return None
        return _url_target(self.heartbeat_url)


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The Prometheus ``/metrics`` endpoint: off unless ``enabled``; ``listen`` as written
    (``host:port``, IPv6 as ``[::1]:9108``), ``host``/``port`` parsed (port 0: any free)."""

    enabled: bool = False
    listen: str = "127.0.0.1:9108"
    host: str = "127.0.0.1"
    port: int = 9108


@dataclass(frozen=True, slots=True)
class TelegramBotConfig:
    """The interactive Telegram bot: off unless ``enabled``. ``token`` (a secret, resolved
    from ``${ENV}`` or ``credential:NAME``; None while disabled), ``chat_ids`` the chats
    allowed to talk to it, ``api_url`` the Bot API base (None: Telegram's; set by tests),
    ``poll_timeout`` the long-poll wait (s), ``history_hours`` the period of ``/history``
    without one (h)."""

    enabled: bool = False
    token: str | None = field(default=None, repr=False)
    chat_ids: tuple[int, ...] = ()
    api_url: str | None = None
    poll_timeout: float = 30.0
    history_hours: float = 6.0


@dataclass(frozen=True, slots=True)
class Config:
    """Everything ``monitor run`` needs, validated.

    ``rules``/``channels`` hold the parsed objects (``AlertRules``, ``list[Channel]``) when
    ``monitor.alerts.rules``/``monitor.notify.channels`` are installed, else None;
    ``rules_table``/``channels_table`` are the raw TOML tables either way. ``notes``: lines
    for the operator that are not errors (aliases normalised, rule levels that can never
    fire or always fire), in file order.
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
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    telegram_bot: TelegramBotConfig = field(default_factory=TelegramBotConfig)
    notes: tuple[str, ...] = ()

    @property
    def enabled_venues(self) -> tuple[VenueConfig, ...]:
        return tuple(v for v in self.venues.values() if v.enabled)

    def known_scopes(self) -> tuple[ScopeKey, ...]:
        return tuple(s for a in self.accounts for s in a.known_scopes())


# -- entry point ------------------------------------------------------------------------------


def load_config(
    path: Path, *, env: Mapping[str, str] | None = None, secrets: bool = True
) -> Config:
    """Read and validate ``path``; raise ``ConfigError(file, key path, problem)``.

    ``secrets=False`` (for commands that only read the store: ``status``, ``history``,
    ``mute``): secret references are checked for their syntax but not read, so no environment
    variable or credential file is needed; ``credentials``, ``heartbeat_url`` and the Telegram
    ``token`` are then None and ``channels`` is None (not parsed)."""
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
    except RecursionError:
        raise ConfigError(source, None, "not valid TOML: nested too deeply") from None
    return parse_config(doc, path, env=env, secrets=secrets)


def parse_config(
    doc: Mapping[str, Any],
    path: Path,
    *,
    env: Mapping[str, str] | None = None,
    secrets: bool = True,
) -> Config:
    """Validate an already-parsed TOML document; ``path`` names it in errors and anchors
    relative store paths; ``secrets`` as for :func:`load_config`."""
    env = os.environ if env is None else env
    try:
        return _Loader(str(path), path, env, secrets=secrets).config(doc)
    except InputError as exc:
        raise ConfigError(exc.source, exc.field, redact(exc.problem)) from None


# -- the loader -------------------------------------------------------------------------------


class _Loader:
    def __init__(
        self, source: str, path: Path, env: Mapping[str, str], *, secrets: bool = True
    ) -> None:
        self.source = source
        self.path = path
        self.env = env
        self.secrets = secrets
        self.notes: list[str] = []

    def fail(self, key: str | None, problem: str) -> ConfigError:
        return ConfigError(self.source, key, redact(problem))

    def venue_name(self, written: str, path: str) -> str:
        """The canonical name of ``written``, noting an alias."""
        name = canonical(written)
        if is_alias(written):
            self.notes.append(
                f"{path}: {written.strip()!r} is an old spelling of {name!r}; write {name!r}"
            )
        return name

    # sections ----------------------------------------------------------------------------
    def config(self, raw: Mapping[str, Any]) -> Config:
        accounts_raw = raw.get("accounts", [])
        if not isinstance(accounts_raw, list):
            raise self.fail(
                "accounts",
                f"expected [[accounts]] entries (an array of tables), got {describe(accounts_raw)}",
            )
        doc = convert(raw, _Document, self.source)
        venues = self.venues(doc.venues)
        accounts = self.accounts(doc.accounts, venues)
        for acct in accounts:
            if acct.feed is not None and acct.feed not in venues:
                row = spec(acct.feed)
                venues[acct.feed] = VenueConfig(
                    name=acct.feed, rule_set=row.rule_set, native=row.native
                )
        store = self.store(doc.store)
        logging_ = LoggingConfig(
            level=self.choice(doc.logging.level, "logging.level", tuple(LEVELS)),
            format=self.choice(doc.logging.format, "logging.format", FORMATS),
        )
        daemon = self.daemon(doc.daemon)
        for ref in _env_refs(doc.channels):
            value = self.env.get(ref)
            if value:
                register_secret(value)
        rules = self.rules(doc.rules)
        if rules is not None:
            self.check_overrides(doc.rules, accounts)
            self.notes.extend(rule_notes(rules))
        return Config(
            source=self.path,
            venues=MappingProxyType(venues),
            accounts=accounts,
            store=store,
            logging=logging_,
            daemon=daemon,
            rules_table=MappingProxyType(dict(doc.rules)),
            channels_table=MappingProxyType(dict(doc.channels)),
            rules=rules,
            channels=self.channels(doc.channels),
            metrics=self.metrics(doc.metrics),
            telegram_bot=self.telegram_bot(doc.telegram_bot),
            notes=tuple(self.notes),
        )

    def choice(self, value: str, path: str, options: Iterable[str]) -> str:
        opts = tuple(options)
        if value.lower() not in opts:
            near = difflib.get_close_matches(value.lower(), opts, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise self.fail(path, f"expected one of {', '.join(opts)}, got {value!r}{hint}")
        return value.lower()

    def url(self, value: str | None, path: str, schemes: tuple[str, ...]) -> str | None:
        if value is None:
            return None
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in schemes or not rest or " " in value:
            raise self.fail(path, f"expected a {'/'.join(schemes)}:// URL, got {value[:80]!r}")
        return value

    def at_most(self, value: float | None, path: str, high: float) -> float | None:
        if value is not None and value > high:
            raise self.fail(path, f"must be ≤ {high:g}, got {value:g}")
        return None if value is None else float(value)

    def venues(self, tables: Mapping[str, Mapping[str, Any]]) -> dict[str, VenueConfig]:
        out: dict[str, VenueConfig] = {}
        written: dict[str, str] = {}
        for key, body in tables.items():
            prefix = f"venues.{key}"
            t = convert(body, _VenueTable, self.source, prefix)
            name = canonical(key)
            if name in written:
                raise self.fail(prefix, f"the same venue as [venues.{written[name]}]")
            if name == GENERIC:
                raise self.fail(prefix, "generic is a rule set without a feed, not a venue")
            row = VENUE_TABLE.get(name)
            if row is None:
                self.check_ccxt_id(name, prefix)
                row = spec(name)
                perp = SPOT_WITH_PERPS.get(name)
                if perp is not None:
                    self.notes.append(
                        f"[{prefix}]: ccxt's {name!r} is the spot exchange; its perpetual "
                        f"futures are {perp!r} (write [venues.{perp}] to follow perps)"
                    )
            written[name] = key
            if is_alias(key):
                self.venue_name(key, prefix)
            native = row.native
            refused = (() if native else NATIVE_ONLY_KEYS) + (() if row.ccxt else CCXT_ONLY_KEYS)
            for k in refused:
                if k in body:
                    other = (
                        "ccxt venues"
                        if k in CCXT_ONLY_KEYS
                        else "venues with a native feed (" + ", ".join(NATIVE_NAMES) + ")"
                    )
                    hint = " (use urls: merged into ccxt's urls)" if k.endswith("_url") else ""
                    raise self.fail(f"{prefix}.{k}", f"only {other} take {k}{hint}")
            out[name] = VenueConfig(
                name=name,
                rule_set=row.rule_set,
                native=native,
                enabled=t.enabled,
                ws_url=self.url(t.ws_url, f"{prefix}.ws_url", ("ws", "wss")),
                rest_url=self.url(t.rest_url, f"{prefix}.rest_url", ("http", "https")),
                poll_interval=self.at_most(t.poll_interval, f"{prefix}.poll_interval", 3600.0),
                stale_after=self.at_most(t.stale_after, f"{prefix}.stale_after", 86400.0),
                ping_interval=self.at_most(t.ping_interval, f"{prefix}.ping_interval", 3600.0),
                symbols=tuple(t.symbols),
                options=MappingProxyType(dict(t.options)),
                urls=MappingProxyType(dict(t.urls)),
            )
        return out

    def check_ccxt_id(self, name: str, path: str) -> None:
        import ccxt  # noqa: PLC0415  (0.25 s to import: only for venues we do not know by name)

        ids: list[str] = list(ccxt.exchanges)
        if name not in ids:
            candidates = [*VENUE_TABLE, *ids]
            near = difflib.get_close_matches(name, candidates, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise self.fail(path, f"unknown venue (not hyperliquid, dydx or a ccxt id){hint}")

    def accounts(
        self, entries: list[dict[str, Any]], venues: dict[str, VenueConfig]
    ) -> tuple[AccountConfig, ...]:
        out: list[AccountConfig] = []
        #: (file, entry path) of each account of ``out``, for :meth:`label_ids`
        places: list[tuple[str, str]] = []
        seen: dict[AccountKey, str] = {}
        #: label → (entry, account) of the account that has it (alerts name an account by
        #: its label: two accounts with one label would be told apart by nobody)
        labels: dict[str, tuple[str, AccountConfig]] = {}
        for i, t in enumerate(entries):
            prefix = f"accounts[{i}]"
            if "file" in t:
                for where, acct in self.account_file(t, prefix, venues):
                    if acct.key in seen:
                        other = seen[acct.key]
                        # an [[accounts]] entry is named with its file here ("accounts[0]"
                        # alone reads as an entry of the JSON file)
                        other = other if ": " in other else f"{self.source}: {other}"
                        raise ConfigError(where[0], where[1], f"the same account as {other}")
                    seen[acct.key] = f"{where[0]}: {where[1]}"
                    self.unique_label(acct, where, labels)
                    out.append(acct)
                    places.append(where)
                continue
            if "id" in t:
                venue = str(t["id"]).partition(":")[0] if isinstance(t["id"], str) else ""
                if canonical(venue) in API_KEY_VENUES:
                    acct = self.api_key_account(t, prefix, venues)
                else:
                    acct = self.address_account(t, prefix, venues)
            elif "venue" in t or "positions" in t or "cross_collateral" in t or "name" in t:
                acct = self.manual_account(t, prefix, venues)
            else:
                raise self.fail(
                    prefix,
                    'needs either id = "hyperliquid:0x…" / "dydx:ADDRESS/N" / '
                    '"binanceusdm:NAME" (bybit, okx), a manual account '
                    '(venue, name, cross_collateral, positions) or file = "book.json" '
                    "(a JSON list of manual accounts)",
                )
            if acct.key in seen:
                raise self.fail(prefix, f"the same account as {seen[acct.key]}")
            seen[acct.key] = prefix
            self.unique_label(acct, (self.source, prefix), labels)
            out.append(acct)
            places.append((self.source, prefix))
        self.label_ids(out, places)
        return tuple(out)

    def label_ids(self, accounts: list[AccountConfig], places: list[tuple[str, str]]) -> None:
        """Raise ``ConfigError(file, "<entry>.label", …)`` for a label that reads as a name
        ``monitor mute``/``history``/``status`` take (they try a label first, in any case:
        :meth:`monitor.commands._store.Names.by_label`): another account's ``venue:account``
        id (any case, an old venue spelling, a checksummed address), a dex or child account
        of it, a scope or position of any configured account (its own too: a mute by that
        label would silence the whole account), a feed (``feed:VENUE``) or ``monitor``. A
        label equal to its account's own id stays allowed (it names that account either way);
        so does a label with a ``:`` that names no configured account (``desk:main``).
        ``places``: (file, entry path) of each of ``accounts``.

        Only a label whose head (before its first ``:``) is ``feed`` or a configured account's
        venue in a spelling :func:`parse_user` reads as it (:func:`canonical`: an old name,
        capitals, blanks) can name one: any other (``desk:main``) is not parsed, and when no
        label is such, the ids are not even listed (a ``parse_user`` per label was ~0.2 s of
        ``load_config`` at 100k accounts labelled ``desk:…``, the ids ~0.2 s more)."""
        venues = frozenset(canonical(v) for v in {a.key.venue for a in accounts})
        risky = [
            i for i, a in enumerate(accounts) if a.label is not None and _may_name(a.label, venues)
        ]
        if not risky:
            return
        #: each account's id (casefolded) → the accounts that have it (ids differing only in
        #: case: manual names are case-sensitive, a label is read in any case)
        ids: dict[str, list[int]] = {}
        for i, a in enumerate(accounts):
            ids.setdefault(str(a.key).casefold(), []).append(i)
        parents = {
            (a.address, a.subaccount): i
            for i, a in enumerate(accounts)
            if a.parent and a.address is not None
        }
        for i in risky:
            acct, where = accounts[i], places[i]
            label = acct.label
            assert label is not None
            problem = _label_problem(
                label, acct, accounts=accounts, where=where, places=places, ids=ids, parents=parents
            )
            if problem is not None:
                raise ConfigError(
                    where[0],
                    f"{where[1]}.label",
                    redact(
                        f"{label!r} (the label of {acct.key}) {problem}: `monitor mute`, "
                        "`history` and `status` read a label before an id, and alerts head "
                        "with the label; choose another label"
                    ),
                )

    def unique_label(
        self,
        acct: AccountConfig,
        where: tuple[str, str],
        labels: dict[str, tuple[str, AccountConfig]],
    ) -> None:
        """Note ``acct``'s label (as written, stripped; compared case-sensitively) or raise
        ``ConfigError(file, "<entry>.label", …)`` naming the account that has it already.
        ``where``: (file, entry path) of ``acct``."""
        label = acct.label
        if label is None:
            return
        other = labels.get(label)
        if other is None:
            labels[label] = (f"{where[0]}: {where[1]}", acct)
            return
        # the other entry named with its file unless it is in this one
        other_where = other[0].removeprefix(f"{where[0]}: ")
        raise ConfigError(
            where[0],
            f"{where[1]}.label",
            redact(
                f"{label!r} (of {acct.key}) is already the label of {other_where} "
                f"({other[1].key}): give each account its own label, or alerts cannot "
                "tell the two apart"
            ),
        )

    def account_file(
        self, raw: Mapping[str, Any], prefix: str, venues: dict[str, VenueConfig]
    ) -> list[tuple[tuple[str, str], AccountConfig]]:
        """``[[accounts]] file = "book.json"``: a JSON list of manual accounts, each with the
        keys of a manual ``[[accounts]]`` entry (``venue``, ``name``, ``label``,
        ``cross_collateral``, ``feed``, ``positions``), for books too large to write as TOML
        (decoded by msgspec, several times faster than TOML: benchmarks/README.md). A relative
        path is relative to the configuration file. Errors name the book file and the entry:
        ``book.json: [12].positions[0].size: …``. Returns each account with (file, entry
        path)."""
        t = convert(raw, _AccountFileTable, self.source, prefix)
        file = self.resolve(t.file)
        try:
            data = file.read_bytes()
        except OSError as exc:
            why = "no such file" if isinstance(exc, FileNotFoundError) else exc.strerror or exc
            raise self.fail(f"{prefix}.file", f"cannot read {file}: {why}") from None
        # a UTF-8 byte-order mark (Windows PowerShell writes one) is skipped, as RFC 8259 allows
        data = data.removeprefix(b"\xef\xbb\xbf")
        source = str(file)
        book = _Loader(source, self.path, self.env, secrets=self.secrets)
        try:
            out = book.book_entries(data, venues)
        except Exception:  # any failure: the reference reading names it (or reads the book)
            book = _Loader(source, self.path, self.env, secrets=self.secrets)
            out = book.book_entries_reference(data, venues)
        self.notes.extend(book.notes)
        return out

    def book_entries(
        self, data: bytes, venues: dict[str, VenueConfig]
    ) -> list[tuple[tuple[str, str], AccountConfig]]:
        """The accounts of a JSON book, decoded one entry at a time: the list is split into
        its entries' raw bytes first (``msgspec.Raw``, views of ``data``), each entry is then
        decoded and validated and its dictionaries dropped before the next, so the decoded
        book is never whole in memory (at 1M positions it was ~0.6 KB a position of
        dictionaries, freed but left as fragmented heap). Any failure raises; the caller
        then reads the book with :meth:`book_entries_reference`, whose error is the one
        reported (a JSON list decodes entry by entry, so both readings accept the same
        books and build the same accounts)."""
        raws: list[Any] = _RAW_LIST.decode(data)
        source = self.source
        out: list[tuple[tuple[str, str], AccountConfig]] = []
        for j in range(len(raws)):
            raw = bytes(raws[j])
            entry = _ANY.decode(raw)
            raws[j] = None
            if _keys_repeated(raw, entry):  # the reference reading names the key
                raise ValueError(f"[{j}]: a key written twice in one object")
            where = f"[{j}]"
            if not isinstance(entry, dict):
                raise ConfigError(source, where, "expected a manual account")
            out.append(((source, where), self.manual_account(entry, where, venues)))
        return out

    def book_entries_reference(
        self, data: bytes, venues: dict[str, VenueConfig]
    ) -> list[tuple[tuple[str, str], AccountConfig]]:
        """The accounts of a JSON book, decoded whole: the reference reading, whose errors
        are the ones reported (the file, the entry and the field). A key written twice in one
        object is refused, named with its path (``[3].positions[0].size``): a JSON reader
        keeps the last and would drop the first without a word."""
        source = self.source
        try:
            entries = msgspec.json.decode(data)
        except msgspec.DecodeError as exc:
            raise ConfigError(source, None, f"not valid JSON: {exc}") from None
        except UnicodeDecodeError:  # msgspec checks the encoding of strings as it goes
            raise ConfigError(source, None, "not UTF-8 text") from None
        except RecursionError:
            raise ConfigError(source, None, "not valid JSON: nested too deeply") from None
        if not isinstance(entries, list):
            raise ConfigError(
                source, None, f"expected a JSON list of manual accounts, got {describe(entries)}"
            )
        # msgspec, like most JSON readers, keeps the last of two equal keys in one object:
        # the first would be ignored without a word
        repeated = _repeated_key(data) if _keys_repeated(data, entries) else None
        out: list[tuple[tuple[str, str], AccountConfig]] = []
        for j, entry in enumerate(entries):
            where = f"[{j}]"
            if repeated is not None and repeated[0][0] == j:
                path, key = repeated
                field_ = ""
                for seg in path:
                    field_ = join(field_, seg)
                raise ConfigError(
                    source,
                    join(field_, key),
                    f"the key {key!r} is written twice in one object (only the last would "
                    "count): write it once",
                )
            if not isinstance(entry, dict):
                raise ConfigError(
                    source, where, f"expected a manual account (a JSON object), got "
                    f"{describe(entry)}"
                )  # fmt: skip
            out.append(((source, where), self.manual_account(entry, where, venues)))
        return out

    def live_venue(self, venue: str, path: str, venues: dict[str, VenueConfig]) -> None:
        v = venues.get(venue)
        if v is not None and not v.enabled:
            raise self.fail(path, f"venue {venue!r} is disabled in [venues.{venue}]")

    def address_account(
        self, raw: Mapping[str, Any], prefix: str, venues: dict[str, VenueConfig]
    ) -> AccountConfig:
        t = convert(raw, _AddressAccountTable, self.source, prefix)
        p = f"{prefix}.id"
        written, sep, rest = t.id.partition(":")
        venue = canonical(written)
        if not sep or venue not in (HYPERLIQUID, DYDX):
            near = difflib.get_close_matches(venue, [HYPERLIQUID, DYDX, *API_KEY_VENUES], n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise self.fail(
                p,
                'expected "hyperliquid:0x…", "dydx:ADDRESS/N" or "binanceusdm:NAME" '
                f"(bybit, okx), got {t.id[:80]!r}{hint}",
            )
        self.venue_name(written, p)
        self.live_venue(venue, p, venues)
        rest = rest.strip()
        if venue == HYPERLIQUID:
            if t.parent:
                raise self.fail(f"{prefix}.parent", "only dYdX has parent subaccounts")
            if not _HL_ADDRESS.fullmatch(rest):
                raise self.fail(p, f"not a Hyperliquid address (0x + 40 hex digits): {rest!r}")
            address = rest.lower()
            return AccountConfig(
                kind=AccountKind.ADDRESS,
                rule_set=rule_set_of(HYPERLIQUID),
                account=address,
                label=t.label,
                feed=HYPERLIQUID,
                address=address,
            )
        address, slash, num = rest.partition("/")
        if not _DYDX_ADDRESS.fullmatch(address):
            raise self.fail(p, f"not a dYdX address (dydx1…): {address[:80]!r}")
        if not slash or not (num.isascii() and num.isdigit()):
            raise self.fail(p, "expected dydx:ADDRESS/N with N the subaccount number")
        n = int(num)
        limit = _DYDX_MAX_PARENT if t.parent else _DYDX_MAX_SUBACCOUNT
        if n > limit:
            what = "a parent subaccount number" if t.parent else "a subaccount number"
            raise self.fail(p, f"{what} is at most {limit}, got {n}")
        return AccountConfig(
            kind=AccountKind.ADDRESS,
            rule_set=rule_set_of(DYDX),
            account=f"{address}/{n}",
            label=t.label,
            feed=DYDX,
            address=address,
            subaccount=n,
            parent=t.parent,
        )

    def api_key_account(
        self, raw: Mapping[str, Any], prefix: str, venues: dict[str, VenueConfig]
    ) -> AccountConfig:
        t = convert(raw, _ApiKeyAccountTable, self.source, prefix)
        p = f"{prefix}.id"
        written, _, name = t.id.partition(":")
        venue = self.venue_name(written, p)
        name = name.strip()
        if not _ACCOUNT_NAME.fullmatch(name):
            raise self.fail(
                p,
                f'expected "{venue}:NAME" with NAME 1 to 64 of A-Z a-z 0-9 _ . -, '
                f"got {t.id[:80]!r}",
            )
        self.live_venue(venue, p, venues)
        api_key = self.secret_ref(t.api_key, f"{prefix}.api_key", required=True)
        secret = self.secret_ref(t.secret, f"{prefix}.secret", required=True)
        if venue == OKX:
            password = self.secret_ref(t.password, f"{prefix}.password", required=True)
        elif t.password is not None:
            raise self.fail(f"{prefix}.password", "only okx takes a password (its passphrase)")
        else:
            password = None
        creds = None
        if api_key is not None and secret is not None:
            creds = ApiCredentials(api_key, secret, password)
        return AccountConfig(
            kind=AccountKind.API_KEY,
            rule_set=rule_set_of(venue),
            account=name,
            label=t.label,
            feed=venue,
            credentials=creds,
            allow_trading_key=t.allow_trading_key,
            rest_url=self.url(t.rest_url, f"{prefix}.rest_url", ("http", "https")),
            ws_url=self.url(t.ws_url, f"{prefix}.ws_url", ("ws", "wss")),
            portfolio_margin=t.portfolio_margin,
        )

    def secret_ref(
        self, value: str | None, path: str, *, required: bool, resolve: bool = True
    ) -> str | None:
        """The secret ``value`` names: ``"${ENV_NAME}"`` or ``"credential:NAME"`` (also spelt
        ``"${file:NAME}"``/``"${cred:NAME}"``: the file ``$CREDENTIALS_DIRECTORY/NAME``,
        trailing newline stripped); registered with the
        log redactor. A literal value is refused (and never echoed). Not read (None) unless
        ``resolve`` and the loader reads secrets."""
        if value is None:
            if required:
                raise self.fail(path, 'missing: write "${ENV_NAME}" or "credential:NAME"')
            return None
        ref = _SECRET_ENV.fullmatch(value) or _SECRET_CRED.fullmatch(value)
        if ref is not None and not (resolve and self.secrets):
            return None
        if m := _SECRET_ENV.fullmatch(value):
            name = m.group(1)
            if name not in self.env:
                raise self.fail(path, f"environment variable {name} is not set")
            out = self.env[name].strip()
            what = f"environment variable {name}"
        elif m := _SECRET_CRED.fullmatch(value):
            name = m.group(1) or m.group(2)
            out = self.credential(name, path)
            what = f"credential {name!r}"
        else:
            if len(value) >= 8:  # mask a key typed into the file in any later log line
                register_secret(value)
            raise self.fail(
                path,
                'a literal secret is refused: write "${ENV_NAME}" (EnvironmentFile=) or '
                '"credential:NAME" (systemd LoadCredential=), so the key never sits in a '
                "file that is copied, backed up or shown",
            )
        if not out:
            raise self.fail(path, f"{what} is empty")
        register_secret(out)
        return out

    def credential(self, name: str, path: str) -> str:
        creds = self.env.get("CREDENTIALS_DIRECTORY")
        if not creds:
            raise self.fail(
                path,
                f"credential {name!r} needs $CREDENTIALS_DIRECTORY (systemd LoadCredential=), "
                "which is not set",
            )
        if name in (".", ".."):
            raise self.fail(path, f"credential name {name!r} must be a plain file name")
        file = Path(creds) / name
        try:
            return file.read_text(encoding="utf-8").rstrip("\r\n")
        except (OSError, UnicodeDecodeError) as exc:
            why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise self.fail(path, f"cannot read credential {file}: {why}") from None

    def manual_account(
        self, raw: Mapping[str, Any], prefix: str, venues: dict[str, VenueConfig]
    ) -> AccountConfig:
        t = convert(raw, _ManualAccountTable, self.source, prefix)
        known = tuple(VENUE_TABLE)
        if t.venue is None:
            raise self.fail(f"{prefix}.venue", f"missing (a venue: {', '.join(known)})")
        # one string per venue name, not one per account (a book names one venue 100,000 times)
        venue_name = sys.intern(canonical(t.venue))
        if venue_name not in VENUE_TABLE:
            near = difflib.get_close_matches(venue_name, known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(known)})"
            raise self.fail(f"{prefix}.venue", f"unknown venue {t.venue!r}{hint}")
        self.venue_name(t.venue, f"{prefix}.venue")
        rule_set = rule_set_of(venue_name)
        if t.name is None:
            raise self.fail(f"{prefix}.name", "missing (a name for this account)")
        if t.cross_collateral is None:
            raise self.fail(f"{prefix}.cross_collateral", "missing")
        feed: str | None
        if t.feed is not None:
            feed = self.venue_name(t.feed, f"{prefix}.feed")
            fv = venues.get(feed)
            if fv is None:
                near = difflib.get_close_matches(feed, list(venues), n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                raise self.fail(f"{prefix}.feed", f"no [venues.{feed}] section{hint}")
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
        positions = []
        symbols: set[str] = set()
        for j, item in enumerate(t.positions):
            ppath = f"{prefix}.positions[{j}]"
            pos = position_from_json(item, self.source, ppath)
            if (bad := hidden_char(pos.symbol)) is not None:
                raise self.fail(f"{ppath}.symbol", hidden_problem(bad, "symbol"))
            if pos.symbol in symbols:
                raise self.fail(f"{ppath}.symbol", f"a second position in {pos.symbol!r}")
            symbols.add(pos.symbol)
            if pos.isolated_margin is not None and pos.isolated_margin < 0:
                raise self.fail(
                    f"{ppath}.isolated_margin",
                    f"must not be negative, got {pos.isolated_margin:g} (the margin allocated "
                    "to the position, excluding its unrealized PnL)",
                )
            if pos.size != 0.0:
                positions.append(pos)
        return AccountConfig(
            kind=AccountKind.MANUAL,
            rule_set=rule_set,
            account=t.name,
            label=t.label,
            feed=feed,
            snapshot=AccountSnapshot(
                # a ccxt exchange without a rule set of its own names its events by its id
                venue=canonical(feed) if rule_set == GENERIC and feed is not None else venue_name,
                account=t.name,
                cross_collateral=float(t.cross_collateral),
                positions=tuple(positions),
            ),
        )

    def store(self, t: _StoreTable) -> StoreConfig:
        path = self.resolve(t.path) if t.path is not None else default_store_path(self.env)
        if t.change_threshold <= 0:
            raise self.fail("store.change_threshold", f"must be > 0, got {t.change_threshold:g}")
        if t.retention_days <= 0:
            raise self.fail("store.retention_days", f"must be > 0, got {t.retention_days:g}")
        return StoreConfig(
            path=path,
            sample_interval=float(t.sample_interval),
            change_threshold=float(t.change_threshold),
            retention_days=float(t.retention_days),
        )

    def resolve(self, raw: str) -> Path:
        home = self.env.get("HOME")
        # "~" and "~/…" only: "~x/book.json" is no file beside the home directory ("/home/ux")
        if (raw == "~" or raw.startswith("~/")) and home:
            raw = home + raw[1:]
        p = Path(raw)
        return p if p.is_absolute() else (self.path.parent / p)

    def daemon(self, t: _DaemonTable) -> DaemonConfig:
        url: str | None = None
        if t.heartbeat_url is not None and not self.secrets:
            self.url(t.heartbeat_url, "daemon.heartbeat_url", ("http", "https"))
        elif t.heartbeat_url is not None:
            url = self.secret_url(t.heartbeat_url, "daemon.heartbeat_url")
            register_secret(url)
            self.url(url, "daemon.heartbeat_url", ("http", "https"))
        return DaemonConfig(
            drain_deadline=_req(self.at_most(t.drain_deadline, "daemon.drain_deadline", 300.0)),
            watchdog=t.watchdog,
            ready_timeout=_req(self.at_most(t.ready_timeout, "daemon.ready_timeout", 3600.0)),
            stale_alert_after=float(t.stale_alert_after),
            heartbeat_url=url,
            heartbeat_interval=_req(
                self.at_most(t.heartbeat_interval, "daemon.heartbeat_interval", 86400.0)
            ),
        )

    def secret_url(self, template: str, path: str) -> str:
        """``template`` with ``${NAME}`` (environment) and ``${cred:NAME}``/``${file:NAME}``
        (``$CREDENTIALS_DIRECTORY/NAME``) substituted; each value registered as a secret."""

        def sub(m: re.Match[str]) -> str:
            kind, name = m.group(1), m.group(2)
            if kind is None:
                if name not in self.env:
                    raise self.fail(path, f"environment variable {name} is not set")
                value = self.env[name]
            else:
                value = self.credential(name, path)
            if not value:
                raise self.fail(path, f"secret {m.group(0)} is empty")
            register_secret(value)
            return value

        return _URL_REF.sub(sub, template)

    def metrics(self, t: _MetricsTable) -> MetricsConfig:
        host, port = self.listen(t.listen, "metrics.listen")
        return MetricsConfig(enabled=t.enabled, listen=str(t.listen), host=host, port=port)

    def listen(self, value: str, path: str) -> tuple[str, int]:
        host, sep, port = value.rpartition(":")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
            raise self.fail(
                path, f'expected "host:port" (e.g. "127.0.0.1:9108"), got {value[:80]!r}'
            )
        return host, int(port)

    def telegram_bot(self, t: _TelegramBotTable) -> TelegramBotConfig:
        api_url = self.url(t.api_url, "telegram_bot.api_url", ("http", "https"))
        # a literal token is refused even while the bot is off; it is read only when on
        token = self.secret_ref(t.token, "telegram_bot.token", required=False, resolve=t.enabled)
        if not (math.isfinite(t.history_hours) and t.history_hours > 0):
            raise self.fail("telegram_bot.history_hours", "must be a number of hours above 0")
        poll_timeout, history_hours = float(t.poll_timeout), float(t.history_hours)
        if not t.enabled:
            return TelegramBotConfig(
                enabled=False,
                chat_ids=tuple(t.chat_ids),
                api_url=api_url,
                poll_timeout=poll_timeout,
                history_hours=history_hours,
            )
        if t.token is None:
            raise self.fail(
                "telegram_bot.token",
                'missing: write "${TELEGRAM_BOT_TOKEN}" or "credential:NAME"',
            )
        if not t.chat_ids:
            raise self.fail(
                "telegram_bot.chat_ids", "missing: the chats allowed to use the bot, e.g. [123]"
            )
        return TelegramBotConfig(
            enabled=True,
            token=token,
            chat_ids=tuple(t.chat_ids),
            api_url=api_url,
            poll_timeout=poll_timeout,
            history_hours=history_hours,
        )

    def rules(self, table: Mapping[str, Any]) -> Any:
        parse = _optional("monitor.config_rules", "parse_rules")
        if parse is None:
            return None
        return parse(table, self.source)

    def check_overrides(
        self, table: Mapping[str, Any], accounts: tuple[AccountConfig, ...]
    ) -> None:
        """Every ``[rules.accounts."venue:account"]`` names a configured account (a dYdX
        parent's isolated children included); an alias venue is noted."""
        known = {f"{a.venue}:{a.account}": a for a in accounts}
        for norm, written in override_keys(table).items():
            path = f"rules.accounts.{written}"
            venue = written.partition(":")[0]
            if is_alias(venue):
                self.notes.append(
                    f"{path}: {venue.strip()!r} is an old spelling of {canonical(venue)!r}; "
                    f'write "{norm}"'
                )
            if norm in known or _dydx_child_of(norm, accounts):
                continue
            near = difflib.get_close_matches(norm, list(known), n=1, cutoff=0.5)
            if near:
                hint = f"; did you mean {near[0]!r}?"
            elif known:
                hint = f" (configured: {', '.join(list(known)[:6])})"
            else:
                hint = " (no [[accounts]] configured)"
            raise self.fail(path, f"no configured account is {norm!r}{hint}")

    def channels(self, table: Mapping[str, Any]) -> tuple[Any, ...] | None:
        parse = _optional("monitor.notify.channels", "parse_channels")
        if parse is None or not self.secrets:
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


def _dydx_child_of(key: str, accounts: tuple[AccountConfig, ...]) -> bool:
    """``dydx:ADDRESS/N`` is an isolated child (N = parent + 128·k) of a configured parent."""
    venue, _, rest = key.partition(":")
    address, _, num = rest.partition("/")
    if venue != DYDX or not (num.isascii() and num.isdigit()):
        return False
    n = int(num)
    return any(
        a.parent and a.address == address and n % _DYDX_CHILD_STRIDE == a.subaccount
        for a in accounts
    )


def _may_name(label: str, venues: frozenset[str]) -> bool:
    """Whether ``label`` may read as a name :func:`_label_problem` refuses: ``monitor`` (any
    case), or a ``:`` after ``feed`` or after a name :func:`canonical` makes one of
    ``venues`` (the configured accounts' venues; :func:`parse_user` reads the venue so)."""
    head, colon, _ = label.partition(":")
    if not colon:
        return label.casefold() == MONITOR
    return head.lower() == FEED or canonical(head) in venues


def _label_problem(
    label: str,
    acct: AccountConfig,
    *,
    accounts: list[AccountConfig],
    where: tuple[str, str],
    places: list[tuple[str, str]],
    ids: Mapping[str, list[int]],
    parents: Mapping[tuple[str, int | None], int],
) -> str | None:
    """What ``label`` (of ``acct``, at ``where``) would be taken for, or None (see
    :meth:`_Loader.label_ids`). ``ids``: each account's id (casefolded) → the indexes of the
    accounts that have it (another account before ``acct``: ``bybit:A`` beside ``bybit:a``);
    ``parents``: each dYdX parent's (address, subaccount) → its index."""

    def owner_of(text: str) -> int | None:
        found = ids.get(text.casefold(), ())
        return next((o for o in found if accounts[o] is not acct), found[0] if found else None)

    if label.casefold() == MONITOR:
        return "is the name of the monitor itself"
    try:
        subject = parse_user(label).subject
    except IdError:
        return None  # not an id: a plain label
    if isinstance(subject, MonitorKey):  # pragma: no cover - caught by the casefold above
        return "is the name of the monitor itself"
    if isinstance(subject, FeedKey):
        return f"is the name of the feed {subject}"
    key = account_of(subject)
    if key is None:  # pragma: no cover - every other subject has an account
        return None
    owner = owner_of(str(key))
    if owner is None and key.venue == HYPERLIQUID and "@" in key.account:
        # a HIP-3 dex account 0x…@dex belongs to the address 0x…
        owner = owner_of(f"{key.venue}:{key.account.partition('@')[0]}")
    if owner is None and key.venue == DYDX:
        address, _, num = key.account.partition("/")
        if num.isascii() and num.isdigit():
            owner = parents.get((address.casefold(), int(num) % _DYDX_CHILD_STRIDE))
    if owner is None:
        return None
    other = accounts[owner]
    same_id = str(subject).casefold() == str(other.key).casefold()
    kind = (
        "dex or child account"
        if isinstance(subject, AccountKey)
        else "scope"
        if isinstance(subject, ScopeKey)
        else "position"
    )
    if other is acct:
        if same_id:
            return None  # its own id
        return (
            f"names {subject}, a {kind} of its own account: a mute by this label would "
            "silence the whole account"
        )
    other_where = f"{places[owner][0]}: {places[owner][1]}".removeprefix(f"{where[0]}: ")
    if same_id:
        return f"is the id of {other_where} ({other.key})"
    return f"names {subject}, a {kind} of {other_where} ({other.key})"


def _url_target(url: str) -> str:
    """``scheme://host[:port]`` plus ``/…`` when there is more: no secret part shown."""
    scheme, sep, rest = url.partition("://")
    host = rest.split("/", 1)[0].split("?", 1)[0].rpartition("@")[2]
    more = "/…" if len(rest) > len(host) + 1 or "@" in rest.split("/", 1)[0] else ""
    return f"{scheme}{sep}{host}{more}"


def _keys_decoded(value: list[Any] | dict[str, Any]) -> int:
    """How many keys the dictionaries in ``value`` (nested ones too) hold."""
    n = 0
    todo: list[Any] = [value]
    while todo:
        v = todo.pop()
        if type(v) is dict:
            n += len(v)
            v = v.values()
        for x in v:
            kind = type(x)
            if kind is dict or kind is list:
                todo.append(x)
    return n


def _keys_repeated(text: bytes, value: Any) -> bool:
    """Whether an object of the valid JSON ``text``, decoded as ``value``, holds a key twice
    (a dictionary holds one key fewer for each repeat: the keys written and the keys decoded
    are then not as many). The quick count of ``":`` is every key (unless blanks stand
    before its colon: then the exact count) plus any string that starts with ``:`` or holds
    ``\\":``, so it equals the keys decoded only when no key repeats; any other count is
    checked with the exact one."""
    kind = type(value)
    if kind is not dict and kind is not list:
        return False
    decoded = _keys_decoded(value)
    if text.count(b'":') == decoded and _SPACED_COLON.search(text) is None:
        return False
    found = _JSON_STRING.findall(text)
    return len(found) - found.count(b"") != decoded


def _repeated_key(text: bytes) -> tuple[list[str | int], str] | None:
    """The first key (in the order written) repeated in one object of the valid JSON
    ``text``: the path of that object (list indices and keys) and the key, decoded (so
    ``"a"`` and ``"\\u0061"`` are one key). None if no key repeats."""
    # one frame per open bracket: [keys seen, current key] for an object, [None, index] for
    # a list; the current key or index of every frame but the last is the path
    frames: list[list[Any]] = []
    for m in _JSON_TOKEN.finditer(text):
        token = m.group()
        first = token[:1]
        if first == b'"':
            if token.endswith(b":"):
                key = _ANY.decode(token[:-1].rstrip())
                frame = frames[-1]
                if key in frame[0]:
                    return [f[1] for f in frames[:-1]], key
                frame[0].add(key)
                frame[1] = key
        elif first == b"{":
            frames.append([set(), ""])
        elif first == b"[":
            frames.append([None, 0])
        elif first == b",":
            if frames[-1][0] is None:
                frames[-1][1] += 1
        else:
            frames.pop()
    return None


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


def _env_refs(value: Any) -> list[str]:
    if isinstance(value, str):
        return _ENV_REF.findall(value)
    if isinstance(value, Mapping):
        return [r for v in value.values() for r in _env_refs(v)]
    if isinstance(value, list):
        return [r for v in value for r in _env_refs(v)]
    return []


def _req(v: float | None) -> float:
    assert v is not None
    return v
