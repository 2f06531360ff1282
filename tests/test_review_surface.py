"""A newcomer's review of the operator's surface (issues 15 and 16): each finding as a test.

Mistyped scope words: the parser reads ``hyperliquid:0x…/crosss`` as an ACCOUNT named
``0x…/crosss`` (a scope word must be exact), so ``mute``, ``unmute`` and ``history`` refuse a
name whose last ``/`` segment is near a scope word, with the nearest one."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.commands import status
from monitor.commands._store import read_config, scope_typo
from monitor.logs import reset_logging
from tests.commands.test_mute import _targets, make_store
from tests.commands.test_status import ADDR as STATUS_ADDR
from tests.commands.test_status import NOW as STATUS_NOW
from tests.commands.test_status import make_store as make_status_store
from tests.commands.test_status import view_of

ADDR = "0x1111111111111111111111111111111111111111"
DYDX = "dydx1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq"


@pytest.fixture(autouse=True)
def _logging_back_to_defaults() -> Iterator[None]:
    yield
    reset_logging()


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("crosss", "cross"),
        ("Cross", "cross"),
        ("cros", "cross"),
        ("venue_ratio", "venue-ratio"),
        ("isolate:ETH", "isolated:ETH"),
        ("iso:ETH", "isolated:ETH"),
        ("isolated", "isolated:SYMBOL"),
    ],
)
def test_a_mistyped_scope_word_is_refused_with_the_nearest_scope(
    typed: str, meant: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_store(tmp_path / "m.db")
    code, out, err = _run(
        ["mute", f"hyperliquid:{ADDR}/{typed}", "--for", "1h", "--force", "--store", db], capsys
    )
    assert (code, out) == (2, "")
    assert err.startswith(
        f"monitor mute: TARGET: not a target: {typed!r} is not a scope; did you mean {meant!r}?"
    )
    assert _targets(db) == []  # nothing stored, even with --force


def test_a_mistyped_scope_on_an_api_key_account_is_refused_too(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Without the check, ``binanceusdm:main/crosss --force`` stored a mute on an account
    named ``main/crosss`` that no alert ever matches, and said "muted"."""
    db = make_store(tmp_path / "m.db", ("binanceusdm:main/cross",))
    code, out, err = _run(
        ["mute", "binanceusdm:main/crosss#BTCUSDT", "--for", "1h", "--force", "--store", db],
        capsys,
    )
    assert (code, out) == (2, "")
    assert "'crosss' is not a scope; did you mean 'cross'?" in err
    assert _targets(db) == []


def test_history_refuses_a_mistyped_scope_instead_of_an_empty_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_store(tmp_path / "m.db")
    code, out, err = _run(["history", f"hyperliquid:{ADDR}/crosss", "--store", db], capsys)
    assert (code, out) == (2, "")
    assert err.startswith(
        "monitor history: SCOPE: not a scope: 'crosss' is not a scope; did you mean 'cross'?"
    )


def test_unmute_refuses_a_mistyped_scope_rather_than_removing_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = make_store(tmp_path / "m.db")
    assert _run(["mute", f"hyperliquid:{ADDR}/cross", "--for", "1h", "--store", db], capsys)[0] == 0
    code, out, err = _run(["unmute", f"hyperliquid:{ADDR}/crosss", "--store", db], capsys)
    assert (code, out) == (2, "")
    assert "did you mean 'cross'?" in err
    assert _targets(db) == [f"hyperliquid:{ADDR}/cross"]  # the real mute is still there


@pytest.mark.parametrize(
    "text",
    [
        f"hyperliquid:{ADDR}/cross",
        f"hyperliquid:{ADDR}/venue-ratio",
        f"hyperliquid:{ADDR}/isolated:ETH#ETH",
        f"hyperliquid:{ADDR}",
        f"dydx:{DYDX}/0",
        f"dydx:{DYDX}/0/cross",
        "binanceusdm:main",
        "binanceusdm:desk/sub",  # an account name with a '/' of its own
        "binanceusdm:main%2Fcrosss",  # an account that really ends in /crosss, escaped
        "feed:okx/crosss",
        "monitor",
        "main desk",
    ],
)
def test_right_names_are_not_taken_for_typos(text: str) -> None:
    assert scope_typo(text) is None


# -- status: a configured account the store has no figures of ---------------------------------

OTHER = "0x" + "3" * 40


def _status_config(tmp_path: Path, db: Path) -> Path:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        "[venues.hyperliquid]\n\n"
        f'[[accounts]]\nid = "hyperliquid:{STATUS_ADDR}"\nlabel = "btc desk"\n\n'
        f'[[accounts]]\nid = "hyperliquid:{OTHER}"\nlabel = "HL desk"\n\n'
        f'[store]\npath = "{db}"\n'
    )
    return cfg


async def test_status_names_a_configured_account_without_figures_as_unknown(
    tmp_path: Path,
) -> None:
    """Before: an address account whose feed never delivered a snapshot was simply absent
    from ``monitor status --config``: a trader reading the table saw only healthy rows."""
    db = tmp_path / "monitor.sqlite3"
    await make_status_store(db, {"pid": os.getpid(), "summary": "3 scopes"}, STATUS_NOW - 1)
    config = read_config(_status_config(tmp_path, db))
    view = await view_of(db)
    missing = status.without_figures(view.scopes, status.configured_accounts(config))
    assert [str(k) for k in missing] == [f"hyperliquid:{OTHER}"]
    text = status.render(view, STATUS_NOW, names=status.Names.of(config), missing=missing)
    lines = text.splitlines()
    assert all(len(line) <= 120 for line in lines)
    joined = " ".join(line.strip() for line in lines)
    assert (
        "hyperliquid:0x3333…3333 (HL desk): UNKNOWN, no figures yet (no snapshot from the venue,"
        " or the daemon has not run with this account)"
    ) in joined
    # the account with figures is not listed as unknown
    assert "(btc desk): UNKNOWN" not in joined


def test_status_json_lists_the_accounts_without_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "monitor.sqlite3"
    asyncio.run(make_status_store(db, {"pid": os.getpid(), "summary": "3 scopes"}, STATUS_NOW - 1))
    code, out, _ = _run(["status", "--json", "--config", str(_status_config(tmp_path, db))], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["accounts_without_figures"] == [
        {"account": f"hyperliquid:{OTHER}", "label": "HL desk"}
    ]


# -- the daemon's one-line summary (monitor/engine/core.py, the lead's) ------------------------


def test_the_summary_says_down_for_a_feed_that_is_down() -> None:
    from monitor.alerts.rules import AlertRules
    from monitor.engine.core import Engine
    from monitor.model.events import FeedState, FeedStatus

    engine = Engine(AlertRules.default())
    engine.receive(
        [FeedStatus("hyperliquid", "connection", FeedState.DOWN, "connect failed")], 100.0, 1.0
    )
    engine.receive([FeedStatus("okx", "tickers", FeedState.STALE, "silent 40s")], 101.0, 2.0)
    summary = engine.summary()
    assert "down: hyperliquid/connection" in summary
    assert "stale: okx/tickers" in summary
    assert "stale: hyperliquid" not in summary


# -- an alert's chart is headed by the account's label (monitor/notify/outbound.py, lead's) -----


def test_an_alert_chart_is_headed_by_the_label_and_short_scope() -> None:
    from monitor.notify.outbound import build_messages
    from monitor.ops.charts import decode_specs
    from tests.notify.test_chart_attachments import channel, fired

    scope = f"hyperliquid:{ADDR}/cross"
    t = fired(f"{scope}#BTC", group=f"hyperliquid:{ADDR}")
    (msg,) = build_messages(
        [t], [channel("json://127.0.0.1:9/hook")], {}, 1000.0, labels={f"hyperliquid:{ADDR}": "HL"}
    )
    (spec,) = decode_specs(msg.attach or "")
    assert spec.title == "HL (hyperliquid:0x1111…1111/cross)"


# -- mute: what a configuration makes known ------------------------------------------------------


def _mine(tmp_path: Path) -> Path:
    db = make_store(tmp_path / "m.db", ("generic:paper/cross",))
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        "[venues.hyperliquid]\n\n"
        f'[[accounts]]\nid = "hyperliquid:{ADDR}"\nlabel = "HL desk"\n\n'
        '[[accounts]]\nvenue = "generic"\nname = "paper"\ncross_collateral = 100.0\n\n'
        f'[store]\npath = "{db}"\n'
    )
    return cfg


def test_the_cross_pool_of_a_configured_account_is_known_before_its_first_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: "unknown scope 'hyperliquid:0x…/cross' (known: 'generic:paper/cross')", for
    the cross pool every account has, while the account itself was accepted."""
    cfg = _mine(tmp_path)
    code, out, err = _run(
        ["mute", f"hyperliquid:{ADDR}/cross", "--for", "1h", "--config", str(cfg)], capsys
    )
    assert (code, err) == (0, "")
    assert out.startswith(f"muted hyperliquid:{ADDR}/cross (HL desk) until ")
    # an isolated scope the store has never seen is still refused
    code, _, err = _run(
        ["mute", f"hyperliquid:{ADDR}/isolated:ETH", "--for", "1h", "--config", str(cfg)], capsys
    )
    assert code == 2 and "unknown scope" in err


def test_a_feed_mute_never_suggests_generic_which_has_no_feed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: "unknown feed venue 'binanceusdm' (known: 'generic', 'hyperliquid')", while
    feed:generic can never be stale (manual accounts have no feed)."""
    cfg = _mine(tmp_path)
    code, _, err = _run(["mute", "feed:binanceusdm", "--for", "1h", "--config", str(cfg)], capsys)
    assert code == 2
    assert "'generic'" not in err
    code, _, err = _run(["mute", "feed:generic", "--for", "1h", "--config", str(cfg)], capsys)
    assert code == 2 and "unknown feed venue 'generic'" in err


# -- test-notify --url never echoes a token ------------------------------------------------------


def test_an_unusable_url_given_on_the_command_line_is_not_echoed_with_its_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Before: "UNUSABLE: url[0]: not a URL apprise can use: telegrm://123:ABCDEFsecret/1"
    (the column beside it said "(not shown)")."""
    code, out, err = _run(["test-notify", "--url", "telegrm://123:ABCDEFsecret/1"], capsys)
    assert code == 1
    assert "ABCDEFsecret" not in out + err
    assert out.strip() == (
        "url0  (not shown)  UNUSABLE: url[0]: not a URL apprise can use (scheme 'telegrm'; the "
        "rest is not shown, it may hold a secret); apprise has no telegrm:// service; did you "
        "mean tgram://?"
    )


def test_status_names_a_dydx_child_and_a_dex_account_by_their_parents_label() -> None:
    """``monitor status``/``history``/``mute`` label a scope through Names: a dYdX child
    subaccount ``/128`` had no label (the configuration names its parent ``/0``)."""
    from monitor.commands._store import Names
    from monitor.model.ids import AccountKey

    dydx = "dydx1" + "q" * 38
    names = Names(
        {AccountKey("dydx", f"{dydx}/0"): "dydx desk", AccountKey("hyperliquid", ADDR): "HL"}
    )
    assert names.label(AccountKey("dydx", f"{dydx}/128")) == "dydx desk /128"
    assert names.label(AccountKey("dydx", f"{dydx}/1")) is None  # another parent: not configured
    assert names.label(AccountKey("hyperliquid", f"{ADDR}@xyz")) == "HL @xyz"
    assert names.show(AccountKey("dydx", f"{dydx}/128"), short=True) == (
        "dydx:dydx1q…qqqq/128 (dydx desk /128)"
    )


def test_a_shorter_mute_over_a_longer_one_says_the_longer_one_still_applies(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: "muted … until 01:00" while yesterday's 1-day mute of the same target went on
    silencing it (mutes stack; the longer one wins) and nothing said so."""
    db = make_store(tmp_path / "m.db")
    target = f"hyperliquid:{ADDR}"
    assert _run(["mute", target, "--for", "1d", "--store", db], capsys)[0] == 0
    code, out, err = _run(["mute", target, "--for", "1h", "--store", db], capsys)
    assert code == 0 and out.startswith(f"muted {target} until ")
    assert err.startswith(f"monitor mute: note: an earlier mute of {target} lasts until ")
    assert err.rstrip().endswith("`monitor unmute` it first to end the mute sooner")
    # a longer mute over a shorter one, or another rule: nothing to say
    code, _, err = _run(["mute", target, "--for", "2d", "--store", db], capsys)
    assert (code, err) == (0, "")
    code, _, err = _run(["mute", target, "--for", "1h", "--rule", "shock", "--store", db], capsys)
    assert (code, err) == (0, "")


def test_check_config_says_what_apprise_makes_of_an_unusable_scheme(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before: check-config said only "not a URL apprise can use (scheme 'telegrm'; …)",
    while test-notify on the same file added "did you mean tgram://?"."""
    cfg = tmp_path / "monitor.toml"
    cfg.write_text('[channels.tg]\nurl = "telegrm://123456:AAAAliteralTOKEN/-100123"\n')
    code, out, err = _run(["check-config", str(cfg)], capsys)
    assert (code, out) == (2, "")
    assert err.strip() == (
        f"monitor check-config: {cfg}: channels.tg.url: not a URL apprise can use (scheme "
        "'telegrm'; the rest is not shown, it may hold a secret); apprise has no telegrm:// "
        "service; did you mean tgram://?"
    )
    assert "AAAAliteralTOKEN" not in err


def test_a_remedy_after_a_scenario_says_it_is_for_the_shocked_book(
    capsys: pytest.CaptureFixture[str],
) -> None:
    doc = Path(__file__).resolve().parents[1] / "config/examples/binance_cross_and_isolated.json"
    code, out, _ = _run(["whatif", str(doc), "--shock", "-5%", "--target-ratio", "0.5"], capsys)
    assert code == 0
    heads = [ln for ln in out.splitlines() if ln.startswith("to reach ")]
    assert heads and all(" after the scenario " in ln for ln in heads)
    code, out, _ = _run(["whatif", str(doc), "--target-ratio", "0.5"], capsys)
    assert code == 0 and " after the scenario " not in out


# -- per-account overrides and the sub-accounts a configured account brings ---------------------


@pytest.mark.parametrize(
    ("configured", "reported"),
    [
        (f"hyperliquid:{ADDR}", f"{ADDR}@xyz"),
        (f"dydx:{'dydx1' + 'q' * 38}/0", f"{'dydx1' + 'q' * 38}/128"),
    ],
)
def test_an_accounts_override_applies_to_its_dex_and_child_scopes(
    configured: str, reported: str
) -> None:
    from monitor.alerts.engine import AlertState, Observation, evaluate
    from monitor.config_rules import parse_rules
    from monitor.model.events import AccountSnapshot
    from monitor.model.instruments import MaintenanceSchedule
    from monitor.model.portfolio import Portfolio
    from monitor.model.positions import Position

    # override: critical at a margin ratio of 0.4 (global default 0.9)
    rules = parse_rules(
        {"accounts": {configured: {"margin_ratio": {"warning": 0.3, "critical": 0.4}}}}, "t"
    )
    venue = configured.partition(":")[0]
    # collateral 20, BTC +1 at 100, maintenance 10 %: MM 10 / equity 20 = 0.5 ≥ 0.4
    btc = Position("BTC", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.1), mark_price=100.0)
    p = Portfolio()
    p.apply(AccountSnapshot(venue, reported, 20.0, (btc,)))
    ts, _ = evaluate(Observation(risks=p.risks()), 1000.0, AlertState(), rules)
    fired = [(t.rule, t.severity.value) for t in ts if t.rule == "margin_ratio"]
    assert fired == [("margin_ratio", "critical")]


def test_a_mute_on_an_address_covers_its_hip3_dex_positions() -> None:
    from monitor.alerts.mutes import Mute, is_muted

    mute = Mute(f"hyperliquid:{ADDR}", 2000.0)
    dex = f"hyperliquid:{ADDR}@xyz/isolated:xyz:TSLA#xyz:TSLA"
    assert is_muted([mute], dex, "liquidation_distance", False, 1000.0)
    # never another address, nor the address from a dex account's mute
    other = "hyperliquid:0x" + "2" * 40 + "@xyz/cross"
    assert not is_muted([mute], other, "margin_ratio", False, 1000.0)
    dex_mute = Mute(f"hyperliquid:{ADDR}@xyz", 2000.0)
    assert not is_muted([dex_mute], f"hyperliquid:{ADDR}/cross", "margin_ratio", False, 1000.0)


def test_the_summary_names_an_underwater_scope_as_the_worst() -> None:
    """Two accounts: one at a 10 % ratio, one whose equity fell below zero (ratio None): the
    summary names the underwater one as the worst, never the 10 % one (fail closed)."""
    from monitor.alerts.rules import AlertRules
    from monitor.engine.core import Engine
    from monitor.model.events import AccountSnapshot, MarkPrice
    from monitor.model.instruments import MaintenanceSchedule
    from monitor.model.positions import Position

    sched = MaintenanceSchedule.flat(0.01)
    engine = Engine(AlertRules.default())
    # healthy: 1 BTC at 100, 100 collateral: equity 100, maintenance 1 → ratio 1 %
    # underwater: 1 BTC long from 100 with 5 of collateral, price 90: equity 5 − 10 = −5
    engine.receive(
        [
            AccountSnapshot(
                "generic", "ok", 100.0, (Position("BTC", 1.0, 100.0, maintenance=sched),)
            ),
            AccountSnapshot(
                "generic", "under", 5.0, (Position("BTC", 1.0, 100.0, maintenance=sched),)
            ),
            MarkPrice("generic", "BTC", 90.0),
        ],
        100.0,
        1.0,
    )
    for _ in range(20):
        if not engine.busy:
            break
        engine.receive([], 100.0, 1.0)
    summary = engine.summary()
    assert "worst: equity ≤ 0, LIQUIDATABLE (generic:under/cross)" in summary, summary
