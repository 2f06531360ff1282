from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config import (
    AccountKind,
    Config,
    default_store_path,
    load_config,
    parse_config,
)
from monitor.errors import ConfigError
from monitor.model.instruments import MarginMode
from monitor.model.positions import ScopeKey

REPO = Path(__file__).resolve().parents[1]
HL = "0x" + "ab" * 20
DYDX = "dydx1" + "q" * 38
ENV = {"HOME": "/home/u"}


def load(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> Config:
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, env=ENV if env is None else env)


def error(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text, env)
    return info.value


def test_example_config_loads_and_documents_every_section() -> None:
    cfg = load_config(REPO / "config" / "example.toml", env=ENV)
    assert set(cfg.venues) >= {"hyperliquid", "dydx", "binanceusdm"}
    kinds = [a.kind for a in cfg.accounts]
    assert AccountKind.ADDRESS in kinds
    assert AccountKind.MANUAL in kinds
    text = (REPO / "config" / "example.toml").read_text()
    from monitor import config as mod

    for key in (
        *mod.VENUE_KEYS,
        *mod.ADDRESS_ACCOUNT_KEYS,
        *mod.MANUAL_ACCOUNT_KEYS,
        *mod.ACCOUNT_FILE_KEYS,
        *mod.API_KEY_ACCOUNT_KEYS,
        *mod.STORE_KEYS,
        *mod.LOGGING_KEYS,
        *mod.DAEMON_KEYS,
        *mod.METRICS_KEYS,
        *mod.TELEGRAM_BOT_KEYS,
        *(f"[{section}" for section in mod.SECTIONS),
    ):
        assert key in text, f"config/example.toml does not document {key!r}"


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    cfg = load(tmp_path, "")
    assert cfg.venues == {}
    assert cfg.accounts == ()
    assert cfg.store.path == Path("/home/u/.local/state/monitor/monitor.sqlite3")
    assert cfg.store.sample_interval == 60.0
    assert cfg.logging.level == "info"
    assert cfg.logging.format == "auto"
    assert cfg.daemon.drain_deadline == 20.0
    assert cfg.daemon.watchdog is True
    assert cfg.rules_table == {}
    assert cfg.channels_table == {}


def test_address_accounts(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        f"""
[[accounts]]
id = "hyperliquid:{HL.upper().replace("0X", "0x")}"
label = "main"

[[accounts]]
id = "dydx:{DYDX}/3"

[[accounts]]
id = "dydx:{DYDX}/0"
parent = true
""",
    )
    hl, sub, parent = cfg.accounts
    assert hl.kind is AccountKind.ADDRESS
    assert hl.rule_set == "hyperliquid"
    assert hl.account == HL  # lower-cased
    assert hl.feed == "hyperliquid"
    assert hl.display == "main"
    assert sub.rule_set == "dydx_v4"
    assert sub.account == f"{DYDX}/3"
    assert sub.subaccount == 3
    assert sub.parent is False
    assert sub.display == f"dydx:{DYDX}/3"
    assert parent.parent is True
    assert parent.subaccount == 0
    assert cfg.known_scopes() == ()  # learnt from the feeds
    # their feeds run with defaults although the file has no [venues] section
    assert sorted(cfg.venues) == ["dydx", "hyperliquid"]
    assert cfg.venues["dydx"].rule_set == "dydx_v4"
    assert cfg.venues["hyperliquid"].ws_url is None
    assert all(v.enabled and v.native for v in cfg.enabled_venues)


def test_config_is_read_only(tmp_path: Path) -> None:
    cfg = load(tmp_path, "[venues.binanceusdm]\noptions = { a = 1 }\n[rules]\n")
    with pytest.raises(TypeError):
        cfg.venues["x"] = cfg.venues["binanceusdm"]  # type: ignore[index]
    with pytest.raises(TypeError):
        cfg.venues["binanceusdm"].options["a"] = 2  # type: ignore[index]
    # reloading the same file gives an equal Config (SIGHUP can compare old and new)
    assert load(tmp_path, "[venues.binanceusdm]\noptions = { a = 1 }\n[rules]\n") == cfg


def test_manual_account_positions_become_a_snapshot(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
[venues.bybit]

[[accounts]]
venue = "bybit"
name = "uta"
cross_collateral = 10000

[[accounts.positions]]
symbol = "BTCUSDT"
size = 0.25
entry_price = 90000
maintenance = { rate = 0.005 }

[[accounts.positions]]
symbol = "SOLUSDT"
size = -100
entry_price = 150
margin_mode = "isolated"
isolated_margin = 1500
maintenance = { max_leverage = 20 }

[[accounts.positions]]
symbol = "DOGEUSDT"
size = 0
entry_price = 0.2
""",
    )
    [acct] = cfg.accounts
    assert acct.kind is AccountKind.MANUAL
    assert acct.feed == "bybit"  # the enabled venue with the same rule set
    snap = acct.snapshot
    assert snap is not None
    assert snap.venue == "bybit"
    assert snap.account == "uta"
    assert snap.cross_collateral == 10000.0
    btc, sol = snap.positions  # the zero-size DOGE position is dropped
    assert btc.maintenance is not None
    assert btc.maintenance.requirement(1000.0) == pytest.approx(5.0)  # 1000 · 0.005
    assert sol.margin_mode is MarginMode.ISOLATED
    assert sol.isolated_margin == 1500.0
    assert sol.maintenance is not None
    assert sol.maintenance.tiers[0].rate == pytest.approx(0.025)  # 1 / (2 · 20)
    assert cfg.known_scopes() == (
        ScopeKey("bybit", "uta", "cross"),
        ScopeKey("bybit", "uta", "isolated:SOLUSDT"),
    )


def test_manual_account_without_feed_keeps_declared_prices(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
[[accounts]]
venue = "generic"
name = "paper"
cross_collateral = 100
""",
    )
    assert cfg.accounts[0].feed is None


def test_venues_native_ccxt_and_generic(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        """
[venues.hyperliquid]
ws_url = "ws://127.0.0.1:9999/ws"
rest_url = "http://127.0.0.1:9999"
poll_interval = 0.5
stale_after = 3
ping_interval = 1

[venues.binanceusdm]
symbols = ["BTCUSDT"]
options = { defaultType = "future" }
urls = { api = { ws = { public = "ws://127.0.0.1:1/ws" } } }

[venues.kraken]
enabled = false
""",
    )
    hl = cfg.venues["hyperliquid"]
    assert hl.native
    assert hl.rule_set == "hyperliquid"
    assert hl.ws_url == "ws://127.0.0.1:9999/ws"
    assert hl.poll_interval == 0.5
    b = cfg.venues["binanceusdm"]
    assert b.native  # a native price feed, with ccxt for its metadata (options and urls)
    assert b.rule_set == "binance_usdm"
    assert b.options == {"defaultType": "future"}
    assert b.symbols == ("BTCUSDT",)
    assert b.urls == {"api": {"ws": {"public": "ws://127.0.0.1:1/ws"}}}
    assert cfg.venues["kraken"].rule_set == "generic"
    assert [v.name for v in cfg.enabled_venues] == ["hyperliquid", "binanceusdm"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"STATE_DIRECTORY": "/var/lib/monitor", "HOME": "/h"}, "/var/lib/monitor/monitor.sqlite3"),
        ({"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}, "/var/lib/a/monitor.sqlite3"),
        ({"XDG_STATE_HOME": "/x/state", "HOME": "/h"}, "/x/state/monitor/monitor.sqlite3"),
        ({"XDG_STATE_HOME": "relative", "HOME": "/h"}, "/h/.local/state/monitor/monitor.sqlite3"),
        ({"HOME": "/h"}, "/h/.local/state/monitor/monitor.sqlite3"),
    ],
)
def test_default_store_path(env: dict[str, str], expected: str) -> None:
    assert default_store_path(env) == Path(expected)


def test_store_path_relative_to_the_config_file_and_tilde(tmp_path: Path) -> None:
    cfg = load(tmp_path, '[store]\npath = "state/m.sqlite3"\nretention_days = 7')
    assert cfg.store.path == tmp_path / "state" / "m.sqlite3"
    assert cfg.store.retention_days == 7.0
    cfg = load(tmp_path, '[store]\npath = "~/m.sqlite3"')
    assert cfg.store.path == Path("/home/u/m.sqlite3")


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("[venue.hyperliquid]", "venue", "unknown key; did you mean 'venues'?"),
        ("[metric]", "metric", "unknown key; did you mean 'metrics'?"),
        ("[zzz]", "zzz", "unknown key (known: venues, accounts, rules, channels, store,"),
        ("[logging]\nlevl = 'info'", "logging.levl", "did you mean 'level'?"),
        ("[logging]\nlevel = 'verbose'", "logging.level", "expected one of"),
        ("[logging]\nformat = 'jsno'", "logging.format", "did you mean 'json'?"),
        ("[daemon]\ndrain_deadline = 0", "daemon.drain_deadline", "must be > 0"),
        ("[daemon]\ndrain_deadline = 301", "daemon.drain_deadline", "must be ≤ 300"),
        ("[daemon]\ndrain_deadline = 'soon'", "daemon.drain_deadline", "expected a duration"),
        ("[daemon]\nwatchdog = 1", "daemon.watchdog", "expected true or false"),
        ("[daemon]\nready_timeout = nan", "daemon.ready_timeout", "must be finite"),
        ("[store]\nsample_interval = -1", "store.sample_interval", "must be > 0"),
        ("[store]\nretention = 3", "store.retention", "did you mean 'retention_days'?"),
        ("[venues.hyperliquid]\nws_url = 'http://x'", "venues.hyperliquid.ws_url", "ws/wss"),
        ("[venues.hyperliquid]\nrest_url = 'x'", "venues.hyperliquid.rest_url", "http/https"),
        ("[venues.hyperliquid]\nstale = 3", "venues.hyperliquid.stale", "'stale_after'"),
        ("[venues.hyperliquid]\noptions = {a = 1}", "venues.hyperliquid.options", "only ccxt"),
        ("[venues.binanceusdm]\nsymbols = 'BTC'", "venues.binanceusdm.symbols", "a list"),
        (
            "[venues.kraken]\nws_url = 'wss://x'",
            "venues.kraken.ws_url",
            "only venues with a native feed (hyperliquid, dydx, binanceusdm, bybit, okx) take "
            "ws_url (use urls",
        ),
        ("[venues.kraken]\nping_interval = 5", "venues.kraken.ping_interval", "only venues with"),
        ("[venues.dydx]\nurls = {a = 1}", "venues.dydx.urls", "only ccxt venues take urls"),
        ("[venues.okx]\nurls = 3", "venues.okx.urls", "expected a table"),
        ("[venues.binanse]", "venues.binanse", "did you mean 'binance'?"),
        ("[venues.hyperliquid]\nenabled = 'yes'", "venues.hyperliquid.enabled", "true or false"),
        ("venues = 3", "venues", "expected a table"),
        ("[accounts]\nid = 'x'", "accounts", "[[accounts]]"),
        ("[[accounts]]\nlabel = 'x'", "accounts[0]", "needs either"),
        ("[[accounts]]\nid = 'hyperliquid:0x12'", "accounts[0].id", "not a Hyperliquid address"),
        ("[[accounts]]\nid = 'binance:0x12'", "accounts[0].id", "expected"),
        (f"[[accounts]]\nid = 'dydx:{DYDX}'", "accounts[0].id", "subaccount number"),
        (f"[[accounts]]\nid = 'dydx:{DYDX}/x'", "accounts[0].id", "subaccount number"),
        (f"[[accounts]]\nid = 'dydx:{DYDX}/128'\nparent = true", "accounts[0].id", "at most 127"),
        ("[[accounts]]\nid = 'dydx:cosmos1abc/0'", "accounts[0].id", "not a dYdX address"),
        (
            f"[[accounts]]\nid = 'hyperliquid:{HL}'\nparent = true",
            "accounts[0].parent",
            "only dYdX",
        ),
        (f"[[accounts]]\nid = 'hyperliquid:{HL}'\nlable = 'x'", "accounts[0].lable", "'label'"),
        (
            f"[venues.hyperliquid]\nenabled = false\n[[accounts]]\nid = 'hyperliquid:{HL}'",
            "accounts[0].id",
            "disabled",
        ),
        (
            f"[[accounts]]\nid = 'hyperliquid:{HL}'\n"
            f"[[accounts]]\nid = 'hyperliquid:0x{HL[2:].upper()}'",
            "accounts[1]",
            "the same account as accounts[0]",
        ),
        (
            "[[accounts]]\nvenue = 'binance'\nname = 'a'\ncross_collateral = 1",
            "accounts[0].venue",
            "did you mean 'binanceusdm'?",
        ),
        ("[[accounts]]\nvenue = 'okx'\ncross_collateral = 1", "accounts[0].name", "missing"),
        ("[[accounts]]\nvenue = 'okx'\nname = 'a'", "accounts[0].cross_collateral", "missing"),
        (
            "[[accounts]]\nvenue = 'okx'\nname = 'a'\ncross_collateral = 1\nfeed = 'okx'",
            "accounts[0].feed",
            "no [venues.okx]",
        ),
        (
            "[venues.bybit]\n[[accounts]]\nvenue = 'okx'\nname = 'a'\ncross_collateral = 1\n"
            "feed = 'bybit'",
            "accounts[0].feed",
            "prices the 'bybit' rule set",
        ),
        (
            "[[accounts]]\nvenue = 'okx'\nname = 'a'\ncross_collateral = 1\n"
            "[[accounts.positions]]\nsymbol = 'X'\nsize = 1\nentry_price = 1\n"
            "margin_mode = 'isolated'",
            "accounts[0].positions[0].isolated_margin",
            "required",
        ),
        (
            "[[accounts]]\nvenue = 'okx'\nname = 'a'\ncross_collateral = 1\n"
            "[[accounts.positions]]\nsymbol = 'X'\nsize = 1\nentry_prise = 1",
            "accounts[0].positions[0].entry_prise",
            "did you mean 'entry_price'?",
        ),
        (
            "[[accounts]]\nvenue = 'okx'\nname = 'a'\ncross_collateral = 1\n"
            "[[accounts.positions]]\nsymbol = 'X'\nsize = 1\nentry_price = 1\n"
            "maintenance = { rate = 1.5 }",
            "accounts[0].positions[0].maintenance.rate",
            "must be below 1",
        ),
        (
            "[[accounts]]\nvenue = 'okx'\nname = 'a'\ncross_collateral = 1\n"
            "[[accounts.positions]]\nsymbol = 'X'\nsize = 1\nentry_price = 1\n"
            "[[accounts.positions]]\nsymbol = 'X'\nsize = 2\nentry_price = 1\n",
            "accounts[0].positions[1].symbol",
            "a second position in 'X'",
        ),
    ],
)
def test_invalid_config_names_file_key_and_problem(
    tmp_path: Path, text: str, field: str, problem: str
) -> None:
    err = error(tmp_path, text)
    assert err.source == str(tmp_path / "monitor.toml")
    assert err.field == field
    assert problem in err.problem
    assert str(err).startswith(f"{tmp_path / 'monitor.toml'}: {field}: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_config(tmp_path / "nope.toml", env=ENV)


def test_invalid_toml_names_line(tmp_path: Path) -> None:
    err = error(tmp_path, "[logging]\nlevel = \n")
    assert err.field is None
    assert "not valid TOML" in err.problem
    assert "line 2" in err.problem


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "monitor.toml"
    path.write_bytes(b"[logging]\nlevel = '\xff'\n")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_config(path, env=ENV)


def test_errors_never_echo_a_secret(tmp_path: Path) -> None:
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"
    err = error(tmp_path, f"[venues.hyperliquid]\nws_url = 'http://u:{token}@host/{token}'")
    assert token not in str(err)
    assert "***" in str(err)


def test_channel_env_references_are_registered_as_secrets(tmp_path: Path) -> None:
    from monitor.logs import redact

    secret = "s3cr3t-from-the-environment-only"
    env = {**ENV, "TG_TOKEN": secret}
    path = tmp_path / "monitor.toml"
    # the [channels] table is parsed by monitor.notify.channels when it exists; whatever it
    # accepts, the value of a ${VAR} it references is masked in logs from here on
    path.write_text('[channels]\nx = "${TG_TOKEN}"\n', encoding="utf-8")
    with contextlib.suppress(ConfigError):  # the channels parser may reject this shape
        load_config(path, env=env)
    assert redact(f"token={secret}") == "token=***"


# -- bad input never crashes -------------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**6), max_value=10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["hyperliquid:" + HL, f"dydx:{DYDX}/0", "okx", "cross", "isolated", "BTC"]),
)
_keys = st.one_of(
    st.text(max_size=10),
    st.sampled_from(
        [
            "enabled",
            "ws_url",
            "rest_url",
            "poll_interval",
            "symbols",
            "options",
            "id",
            "parent",
            "venue",
            "name",
            "cross_collateral",
            "feed",
            "positions",
            "symbol",
            "size",
            "entry_price",
            "margin_mode",
            "isolated_margin",
            "maintenance",
            "rate",
            "tiers",
            "max_leverage",
            "path",
            "level",
            "format",
            "drain_deadline",
            "watchdog",
        ]
    ),
)
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_keys, inner, max_size=4)),
    max_leaves=12,
)
_docs = st.fixed_dictionaries(
    {},
    optional={
        "venues": st.one_of(
            _values,
            st.dictionaries(
                st.sampled_from(["hyperliquid", "dydx", "okx", "bybit", "kraken", "nope"]),
                _values,
                max_size=3,
            ),
        ),
        "accounts": st.one_of(_values, st.lists(st.dictionaries(_keys, _values), max_size=3)),
        "store": _values,
        "logging": _values,
        "daemon": _values,
        "metrics": _values,
        "telegram_bot": _values,
        "rules": st.one_of(
            _values,
            st.dictionaries(
                st.sampled_from(["margin_ratio", "for", "accounts", "repeat", "drawdown"]),
                _values,
                max_size=3,
            ),
        ),
    },
)


@settings(max_examples=200, deadline=None)
@given(doc=_docs)
def test_any_document_gives_a_config_or_a_config_error(doc: dict[str, object]) -> None:
    result: Config | ConfigError
    try:
        result = parse_config(doc, Path("/etc/monitor/fuzz.toml"), env=ENV)
    except ConfigError as err:
        result = err
    if isinstance(result, ConfigError):
        assert result.source == "/etc/monitor/fuzz.toml"
        assert result.problem
    else:
        assert isinstance(result, Config)


@settings(max_examples=100, deadline=None)
@given(
    section=st.sampled_from(["store", "logging", "daemon", "metrics", "telegram_bot"]),
    key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=15),
)
def test_every_unknown_key_is_named(section: str, key: str) -> None:
    from monitor import config as mod

    valid = {
        "store": mod.STORE_KEYS,
        "logging": mod.LOGGING_KEYS,
        "daemon": mod.DAEMON_KEYS,
        "metrics": mod.METRICS_KEYS,
        "telegram_bot": mod.TELEGRAM_BOT_KEYS,
    }
    if key in valid[section]:
        return
    with pytest.raises(ConfigError) as info:
        parse_config({section: {key: 1}}, Path("f.toml"), env=ENV)
    assert info.value.field == f"{section}.{key}"
    assert info.value.problem.startswith("unknown key")


def test_manual_account_on_a_generic_ccxt_exchange_is_priced_by_its_feed(tmp_path: Path) -> None:
    """kraken has no rule set of its own: its feed names events "kraken", so the account's
    snapshot does too, and the daemon's portfolio maps kraken to the generic rules."""
    from monitor.model.events import MarkPrice
    from monitor.model.portfolio import Portfolio

    cfg = load(
        tmp_path,
        """
[venues.kraken]
symbols = ["PF_XBTUSD"]

[[accounts]]
venue = "generic"
name = "k"
feed = "kraken"
cross_collateral = 1000.0

[[accounts.positions]]
symbol = "PF_XBTUSD"
size = 0.1
entry_price = 60000.0
mark_price = 60000.0
maintenance = { rate = 0.01 }
""",
    )
    (acct,) = cfg.accounts
    assert acct.snapshot is not None
    assert acct.snapshot.venue == "kraken"
    assert acct.key.venue == "kraken"
    p = Portfolio({v.name: v.rule_set for v in cfg.venues.values() if v.name != v.rule_set})
    p.apply(acct.snapshot)
    touched = p.apply(MarkPrice("kraken", "PF_XBTUSD", 59000.0))
    assert touched == [ScopeKey("kraken", "k", "cross")]
    risk = p.risk(touched[0])
    assert risk is not None
    assert risk.equity == pytest.approx(1000.0 - 0.1 * 1000.0)  # valued at the feed's price


def test_a_subaccount_number_in_other_digits_is_one_clear_error(tmp_path: Path) -> None:
    addr = "dydx1" + "q" * 38
    with pytest.raises(ConfigError) as exc:
        load(tmp_path, f'[[accounts]]\nid = "dydx:{addr}/²"\n')
    assert "subaccount number" in str(exc.value)


# -- one duration syntax, percent fractions --------------------------------------------------


@pytest.mark.parametrize(
    ("text", "read", "seconds"),
    [
        (
            "[venues.hyperliquid]\nstale_after = '15s'",
            lambda c: c.venues["hyperliquid"].stale_after,
            15.0,
        ),
        (
            "[venues.hyperliquid]\npoll_interval = '5m'",
            lambda c: c.venues["hyperliquid"].poll_interval,
            300.0,
        ),
        (
            "[venues.hyperliquid]\nping_interval = '250ms'",
            lambda c: c.venues["hyperliquid"].ping_interval,
            0.25,
        ),
        ("[venues.okx]\nstale_after = 30", lambda c: c.venues["okx"].stale_after, 30.0),
        ("[daemon]\ndrain_deadline = '1m'", lambda c: c.daemon.drain_deadline, 60.0),
        ("[daemon]\nready_timeout = '2m'", lambda c: c.daemon.ready_timeout, 120.0),
        ("[daemon]\nstale_alert_after = '1d'", lambda c: c.daemon.stale_alert_after, 86400.0),
        ("[daemon]\nheartbeat_interval = '1.5h'", lambda c: c.daemon.heartbeat_interval, 5400.0),
        ("[store]\nsample_interval = '2h'", lambda c: c.store.sample_interval, 7200.0),
    ],
)
def test_every_interval_key_takes_the_one_duration_syntax(
    tmp_path: Path, text: str, read: object, seconds: float
) -> None:
    cfg = load(tmp_path, text)
    assert callable(read)
    assert read(cfg) == seconds


def test_store_change_threshold_takes_a_percent_string(tmp_path: Path) -> None:
    assert load(tmp_path, "[store]\nchange_threshold = '5%'").store.change_threshold == 0.05


SECRET_KEY = "AKIAsecretkeyvalue0123456789"
SECRET = "s3cr3t-value-never-shown-0123"
PASSPHRASE = "okx-passphrase-never-shown"


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (
            "[venues.hyperliquid]\nstale_after = 'soon'",
            "venues.hyperliquid.stale_after",
            "expected a duration like 30 (seconds), '15s'",
        ),
        (
            "[venues.hyperliquid]\nstale_after = '-5s'",
            "venues.hyperliquid.stale_after",
            "expected a duration",
        ),
        (
            "[venues.hyperliquid]\nstale_after = '0s'",
            "venues.hyperliquid.stale_after",
            "must be > 0, got '0s'",
        ),
        ("[store]\nsample_interval = true", "store.sample_interval", "got the boolean true"),
        (
            "[store]\nchange_threshold = '5'",
            "store.change_threshold",
            "a percent string like '80%'",
        ),
        ("[store]\nchange_threshold = 0", "store.change_threshold", "must be > 0"),
        ("[store]\nretention_days = 0", "store.retention_days", "must be > 0"),
        ("[daemon]\nheartbeat_interval = 0", "daemon.heartbeat_interval", "must be > 0, got 0"),
        ("[daemon]\nheartbeat_url = 'ftp://x/y'", "daemon.heartbeat_url", "http/https"),
        (
            "[daemon]\nheartbeat_url = 'https://hc/${NOPE}'",
            "daemon.heartbeat_url",
            "environment variable NOPE is not set",
        ),
        (
            "[daemon]\nheartbeat = 'https://hc/x'",
            "daemon.heartbeat",
            "did you mean 'heartbeat_url'?",
        ),
        ("[metrics]\nenable = true", "metrics.enable", "did you mean 'enabled'?"),
        ("[metrics]\nlisten = 'localhost'", "metrics.listen", 'expected "host:port"'),
        ("[metrics]\nlisten = 'h:70000'", "metrics.listen", 'expected "host:port"'),
        (
            "[metrics]\nenabled = 'yes'",
            "metrics.enabled",
            "expected true or false, got the string 'yes'",
        ),
        ("[telegram_bot]\nenabled = true", "telegram_bot.token", "missing"),
        (
            "[telegram_bot]\nenabled = true\ntoken = '123:abc'",
            "telegram_bot.token",
            "a literal secret is refused",
        ),
        (
            "[telegram_bot]\nchat_ids = ['x']",
            "telegram_bot.chat_ids[0]",
            "expected a whole number, got the string 'x'",
        ),
        ("[telegram_bot]\napi_url = 'x'", "telegram_bot.api_url", "http/https"),
        ("[telegram_bot]\nchat = [1]", "telegram_bot.chat", "did you mean 'chat_ids'?"),
        (
            "[[accounts]]\nid = 'binanceusdm:main'\nsecret = '${S}'",
            "accounts[0].api_key",
            "missing",
        ),
        (
            f"[[accounts]]\nid = 'binanceusdm:main'\napi_key = '{SECRET_KEY}'\nsecret = '${{S}}'",
            "accounts[0].api_key",
            'a literal secret is refused: write "${ENV_NAME}"',
        ),
        (
            "[[accounts]]\nid = 'bybit:main'\napi_key = '${K}'\nsecret = '${S}'",
            "accounts[0].api_key",
            "environment variable K is not set",
        ),
        (
            "[[accounts]]\nid = 'bybit:main'\napi_key = 'credential:k'\nsecret = '${S}'",
            "accounts[0].api_key",
            "needs $CREDENTIALS_DIRECTORY",
        ),
        ("[[accounts]]\nid = 'bybit:a b'\napi_key = '${K}'", "accounts[0].id", "NAME 1 to 64 of"),
        (f"[[accounts]]\nid = 'bybit:{'x' * 65}'", "accounts[0].id", "NAME 1 to 64 of"),
        (
            "[[accounts]]\nid = 'okx:desk'\napi_ky = '${K}'",
            "accounts[0].api_ky",
            "did you mean 'api_key'?",
        ),
        ("[[accounts]]\nid = 'binance:main'", "accounts[0].id", "did you mean 'binanceusdm'?"),
        (
            "[venues.okx]\nenabled = false\n[[accounts]]\nid = 'okx:desk'",
            "accounts[0].id",
            "disabled",
        ),
        (
            "[[accounts]]\nvenue = 'okx'\nname = 'a'\ncross_collateral = 1\n"
            "[[accounts.positions]]\nsymbol = 'X'\nsize = 1\nentry_price = 1\n"
            "margin_mode = 'isolated'\nisolated_margin = -5",
            "accounts[0].positions[0].isolated_margin",
            "must not be negative, got -5",
        ),
        (
            "[venues.binance_usdm]\n[venues.binanceusdm]",
            "venues.binanceusdm",
            "the same venue as [venues.binance_usdm]",
        ),
        ("[venues.generic]", "venues.generic", "not a venue"),
        (
            "[venues.okx]\n[[accounts]]\nvenue = 'okx'\nname = 'a'\ncross_collateral = 1\n"
            "feed = 'okk'",
            "accounts[0].feed",
            "no [venues.okk] section; did you mean 'okx'?",
        ),
        (
            "[rules.accounts.'hyperliquid:0xabc'.margin_ratio]\nwarning = 0.5",
            "rules.accounts.hyperliquid:0xabc",
            "no configured account is 'hyperliquid:0xabc' (no [[accounts]] configured)",
        ),
        (
            "[[accounts]]\nvenue = 'okx'\nname = 'desk'\ncross_collateral = 1\n"
            "[rules.accounts.'okx:dsk'.margin_ratio]\nwarning = 0.5",
            "rules.accounts.okx:dsk",
            "no configured account is 'okx:dsk'; did you mean 'okx:desk'?",
        ),
        (
            "[[accounts]]\nvenue = 'okx'\nname = 'desk'\ncross_collateral = 1\n"
            "[rules.accounts.'okx:desk'.margin_ratio]\nwarning = 80",
            "rules.accounts.okx:desk.margin_ratio.warning",
            'write 0.8 or "80%"',
        ),
    ],
)
def test_new_keys_and_checks_name_file_key_and_problem(
    tmp_path: Path, text: str, field: str, problem: str
) -> None:
    err = error(tmp_path, text)
    assert err.source == str(tmp_path / "monitor.toml")
    assert err.field == field
    assert problem in err.problem, err.problem
    assert SECRET_KEY not in str(err)


def _api_env(tmp_path: Path) -> dict[str, str]:
    creds = tmp_path / "creds"
    creds.mkdir(exist_ok=True)
    (creds / "okx-secret").write_text(SECRET + "\n", encoding="utf-8")
    return {**ENV, "K": SECRET_KEY, "P": PASSPHRASE, "CREDENTIALS_DIRECTORY": str(creds)}


def test_api_key_accounts_read_their_keys_from_env_and_credentials(tmp_path: Path) -> None:
    from monitor.logs import redact

    cfg = load(
        tmp_path,
        """
[[accounts]]
id = "okx:desk"
api_key = "${K}"
secret = "credential:okx-secret"
password = "${P}"
label = "okx desk"

[[accounts]]
id = "binance_usdm:main"
api_key = "${K}"
secret = "credential:okx-secret"
allow_trading_key = true
""",
        env=_api_env(tmp_path),
    )
    okx, binance = cfg.accounts
    assert okx.kind is AccountKind.API_KEY
    assert (okx.venue, okx.account, okx.rule_set, okx.feed) == ("okx", "desk", "okx", "okx")
    assert okx.credentials is not None
    assert okx.credentials.api_key == SECRET_KEY
    assert okx.credentials.secret == SECRET  # the trailing newline of the file stripped
    assert okx.credentials.password == PASSPHRASE
    assert okx.allow_trading_key is False
    assert okx.display == "okx desk"
    # the alias is normalised, with a note
    assert binance.key.venue == "binanceusdm"
    assert binance.rule_set == "binance_usdm"
    assert binance.allow_trading_key is True
    assert binance.credentials is not None and binance.credentials.password is None
    assert any("'binance_usdm' is an old spelling of 'binanceusdm'" in n for n in cfg.notes)
    # their venues' public price feeds run with defaults
    assert cfg.venues["okx"].native is True
    assert cfg.venues["binanceusdm"].rule_set == "binance_usdm"
    # never shown: repr masks, and the values are registered with the log redactor
    for shown in (repr(okx), repr(okx.credentials), str(cfg)):
        assert SECRET_KEY not in shown
        assert SECRET not in shown
        assert PASSPHRASE not in shown
    assert "AKIA…" in repr(okx.credentials)
    assert redact(f"key={SECRET_KEY} s={SECRET} p={PASSPHRASE}") == "key=*** s=*** p=***"


def test_a_literal_api_key_is_refused_and_never_echoed(tmp_path: Path) -> None:
    from monitor.logs import redact

    literal = "literal-key-typed-in-the-file-42"
    err = error(
        tmp_path,
        f"[[accounts]]\nid = 'okx:desk'\napi_key = '{literal}'\nsecret = '${{K}}'\n"
        "password = '${P}'",
        env=_api_env(tmp_path),
    )
    assert err.field == "accounts[0].api_key"
    assert literal not in str(err)
    assert redact(literal) == "***"  # masked in any later log line too


def test_okx_needs_a_password_and_others_refuse_one(tmp_path: Path) -> None:
    env = _api_env(tmp_path)
    err = error(tmp_path, "[[accounts]]\nid = 'okx:d'\napi_key = '${K}'\nsecret = '${K}'", env)
    assert (err.field, err.problem) == (
        "accounts[0].password",
        'missing: write "${ENV_NAME}" or "credential:NAME"',
    )
    err = error(
        tmp_path,
        "[[accounts]]\nid = 'bybit:d'\napi_key = '${K}'\nsecret = '${K}'\npassword = '${P}'",
        env,
    )
    assert err.field == "accounts[0].password"
    assert "only okx takes a password" in err.problem


def test_api_key_account_and_manual_account_of_the_same_name_are_one_account(
    tmp_path: Path,
) -> None:
    err = error(
        tmp_path,
        "[[accounts]]\nvenue = 'bybit'\nname = 'main'\ncross_collateral = 1\n"
        "[[accounts]]\nid = 'bybit:main'\napi_key = '${K}'\nsecret = '${K}'",
        _api_env(tmp_path),
    )
    assert (err.field, err.problem) == ("accounts[1]", "the same account as accounts[0]")


def test_venue_aliases_are_normalised_with_a_note(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        f"""
[venues.binance_usdm]
symbols = ["BTCUSDT"]

[[accounts]]
id = "dydx_v4:{DYDX}/0"

[[accounts]]
venue = "binance_usdm"
name = "main"
cross_collateral = 100
feed = "binance_usdm"

[rules.accounts."binance_usdm:main".margin_ratio]
warning = 0.6
""",
    )
    assert sorted(cfg.venues) == ["binanceusdm", "dydx"]
    dydx, manual = cfg.accounts
    assert dydx.key.venue == "dydx"
    assert dydx.feed == "dydx"
    assert manual.feed == "binanceusdm"
    assert manual.key.venue == "binanceusdm"
    assert set(cfg.rules.accounts) == {"binanceusdm:main"}
    assert cfg.notes == (
        "venues.binance_usdm: 'binance_usdm' is an old spelling of 'binanceusdm'; "
        "write 'binanceusdm'",
        "accounts[0].id: 'dydx_v4' is an old spelling of 'dydx'; write 'dydx'",
        "accounts[1].venue: 'binance_usdm' is an old spelling of 'binanceusdm'; "
        "write 'binanceusdm'",
        "accounts[1].feed: 'binance_usdm' is an old spelling of 'binanceusdm'; write 'binanceusdm'",
        "rules.accounts.binance_usdm:main: 'binance_usdm' is an old spelling of "
        "'binanceusdm'; write \"binanceusdm:main\"",
    )


def test_overrides_match_mixed_case_addresses_and_dydx_children(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        f"""
[[accounts]]
id = "hyperliquid:{HL}"

[[accounts]]
id = "dydx:{DYDX}/3"
parent = true

[rules.accounts."hyperliquid:{HL.upper().replace("0X", "0x")}".margin_ratio]
warning = 0.6

[rules.accounts."dydx:{DYDX}/131".shock]
critical = 0.2
""",
    )
    # the isolated child 131 = 3 + 128 · 1 of parent 3; the address lower-cased as its alerts
    assert set(cfg.rules.accounts) == {f"hyperliquid:{HL}", f"dydx:{DYDX}/131"}
    err = error(
        tmp_path,
        f'[[accounts]]\nid = "dydx:{DYDX}/3"\nparent = true\n'
        f'[rules.accounts."dydx:{DYDX}/132".shock]\ncritical = 0.2\n',
    )
    assert err.field == f"rules.accounts.dydx:{DYDX}/132"  # 132 = 4 + 128: parent 4's child


def test_heartbeat_url_is_a_secret(tmp_path: Path) -> None:
    from monitor.logs import redact

    uuid = "0f9a8b7c-6d5e-4f3a-9b8c-7d6e5f4a3b2c"
    cfg = load(
        tmp_path,
        '[daemon]\nheartbeat_url = "https://hc-ping.com/${HB}"\nheartbeat_interval = "30s"',
        env={**ENV, "HB": uuid},
    )
    assert cfg.daemon.heartbeat_url == f"https://hc-ping.com/{uuid}"
    assert cfg.daemon.heartbeat_interval == 30.0
    assert cfg.daemon.heartbeat_target() == "https://hc-ping.com/…"
    assert uuid not in repr(cfg.daemon)
    assert uuid not in redact(f"GET https://hc-ping.com/{uuid} failed")
    assert load(tmp_path, "").daemon.heartbeat_url is None


def test_metrics_and_telegram_bot(tmp_path: Path) -> None:
    token = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"
    off = load(tmp_path, "")
    assert off.metrics.enabled is False
    assert (off.metrics.host, off.metrics.port) == ("127.0.0.1", 9108)
    assert off.telegram_bot.enabled is False
    assert off.telegram_bot.token is None
    cfg = load(
        tmp_path,
        """
[metrics]
enabled = true
listen = "[::1]:0"

[telegram_bot]
enabled = true
token = "${TG}"
chat_ids = [-1001234567890, 42]
api_url = "http://127.0.0.1:8081"
""",
        env={**ENV, "TG": token},
    )
    assert (cfg.metrics.enabled, cfg.metrics.host, cfg.metrics.port) == (True, "::1", 0)
    bot = cfg.telegram_bot
    assert (bot.enabled, bot.token, bot.chat_ids) == (True, token, (-1001234567890, 42))
    assert bot.api_url == "http://127.0.0.1:8081"
    assert token not in repr(bot)
    # a disabled bot does not need its token's variable
    assert load(tmp_path, '[telegram_bot]\ntoken = "${UNSET_TG}"').telegram_bot.token is None
    err = error(tmp_path, '[telegram_bot]\nenabled = true\ntoken = "${TG}"', {**ENV, "TG": token})
    assert err.field == "telegram_bot.chat_ids"


def test_rule_levels_that_can_never_fire_are_noted(tmp_path: Path) -> None:
    cfg = load(
        tmp_path,
        "[rules.margin_ratio]\nwarning = 0\ncritical = 1\n"
        "[rules.liquidation_distance]\ncritical = 0\n",
    )
    assert cfg.notes == (
        "rules.margin_ratio.warning 0: fires on every scope (margin_ratio is never below 0)",
        "rules.margin_ratio.critical 1: fires only at 1, when it is too late to act "
        "(a margin ratio is maintenance / equity, 1 = liquidatable)",
        "rules.liquidation_distance.critical 0: can never fire before liquidation "
        "(liquidation_distance is never below 0)",
    )


def test_store_readers_load_without_any_secret(tmp_path: Path) -> None:
    """status/history/mute only need the store: secrets=False checks the references' syntax
    and reads none of them (no variable is set here)."""
    text = """
[[accounts]]
id = "okx:desk"
api_key = "${UNSET_K}"
secret = "credential:unset"
password = "${UNSET_P}"

[telegram_bot]
enabled = true
token = "${UNSET_TG}"
chat_ids = [1]

[channels.tg]
url = "tgram://${UNSET_TG}/-100123"

[daemon]
heartbeat_url = "https://hc-ping.com/${UNSET_HB}"

[store]
path = "state/m.sqlite3"
"""
    path = tmp_path / "monitor.toml"
    path.write_text(text, encoding="utf-8")
    cfg = load_config(path, env=ENV, secrets=False)
    assert cfg.store.path == tmp_path / "state" / "m.sqlite3"
    (acct,) = cfg.accounts
    assert acct.key.venue == "okx"
    assert acct.credentials is None
    assert cfg.telegram_bot.enabled is True
    assert cfg.telegram_bot.token is None
    assert cfg.daemon.heartbeat_url is None
    assert cfg.channels is None
    # with secrets (the default), the first missing one is an error
    err = error(tmp_path, text)
    assert (err.field, err.problem) == (
        "accounts[0].api_key",
        "environment variable UNSET_K is not set",
    )
    # a literal key stays refused either way, and so does a literal bot token while off
    path.write_text("[[accounts]]\nid = 'okx:d'\napi_key = 'literal-key-0123'\n")
    with pytest.raises(ConfigError, match="a literal secret is refused"):
        load_config(path, env=ENV, secrets=False)
    err = error(tmp_path, "[telegram_bot]\ntoken = '123456:literal-token'")
    assert err.field == "telegram_bot.token"
    assert "a literal secret is refused" in err.problem
