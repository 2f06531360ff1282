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
        *mod.STORE_KEYS,
        *mod.LOGGING_KEYS,
        *mod.DAEMON_KEYS,
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
    assert not b.native
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
            "[venues.binanceusdm]\nws_url = 'wss://x'",
            "venues.binanceusdm.ws_url",
            "only hyperliquid and dydx take ws_url (use urls",
        ),
        ("[venues.okx]\nping_interval = 5", "venues.okx.ping_interval", "only hyperliquid"),
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
    section=st.sampled_from(["store", "logging", "daemon"]),
    key=st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=15),
)
def test_every_unknown_key_is_named(section: str, key: str) -> None:
    from monitor import config as mod

    valid = {"store": mod.STORE_KEYS, "logging": mod.LOGGING_KEYS, "daemon": mod.DAEMON_KEYS}
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
