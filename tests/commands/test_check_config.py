"""``monitor check-config``: summary on success, one line and exit 2 on error, no secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.commands.check_config import mask_url

REPO = Path(__file__).resolve().parents[2]
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_example_config_is_valid_and_summarised(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["check-config", str(REPO / "config" / "example.toml")], capsys)
    assert code == 0, err
    assert err == ""
    assert out.startswith(f"{REPO / 'config' / 'example.toml'}: OK\n")
    assert "venues (3):" in out
    assert "accounts (3):" in out
    assert 'binanceusdm:main "binance main" (manual, 2 positions, prices from binanceusdm)' in out
    assert "parent subaccount, live from dydx" in out
    # the manual account's cross pool and its isolated ETHUSDT position
    assert "scopes known now: 2 (binanceusdm:main/cross, binanceusdm:main/isolated:ETHUSDT)" in out
    assert "rules" in out
    assert "channels" in out
    assert "store: " in out
    assert "daemon: drain deadline 20 s" in out


def test_invalid_config_exits_2_with_one_line_on_stderr(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.toml"
    path.write_text("[logging]\nlevl = 'debug'\n")
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 2
    assert out == ""
    assert (
        err == f"monitor check-config: {path}: logging.levl: unknown key; did you mean 'level'?\n"
    )


def test_errors_never_show_secrets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "m.toml"
    path.write_text(f"[venues.hyperliquid]\nrest_url = 'https://bot:{TOKEN}@example.com/x y'\n")
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 2
    assert out == ""
    assert TOKEN not in err
    assert "venues.hyperliquid.rest_url" in err


def test_store_path_follows_state_directory(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "m.toml"
    path.write_text("")
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path / "state"))
    code, out, _ = run(["check-config", str(path)], capsys)
    assert code == 0
    assert f"store: {tmp_path / 'state' / 'monitor.sqlite3'} " in out
    assert "accounts (0):" in out


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"tgram://{TOKEN}/-1001234", "tgram://***/…"),
        (
            "mailtos://alice:hunter2@smtp.example.com:587?to=bob@example.com",
            "mailtos://alice:***@smtp.example.com:587?to=…",
        ),
        ("json://127.0.0.1:8080/hook?secret=abc", "json://127.0.0.1:8080/…?secret=…"),
        ("discord://1234/secret-webhook-token", "discord://1234/…"),
        ("not a url", "<not a URL>"),
    ],
)
def test_mask_url_hides_tokens_passwords_paths_and_query_values(url: str, shown: str) -> None:
    assert mask_url(url) == shown


def test_cli_subprocess_exit_codes(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[daemon]\ndrain_deadline = -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "check-config", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.strip() == (
        f"monitor check-config: {bad}: daemon.drain_deadline: must be > 0, got -1"
    )


def test_channel_secrets_from_the_environment_are_not_shown(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MONITOR_TEST_TG", TOKEN)
    path = tmp_path / "m.toml"
    path.write_text('[channels.tg]\nurl = "tgram://${MONITOR_TEST_TG}/-1001234567890"\n')
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 0, err
    assert TOKEN not in out
    assert "channels" in out
    assert "tg" in out


def test_missing_channel_secret_is_a_config_error_without_the_value(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("monitor.notify.channels")
    monkeypatch.delenv("MONITOR_TEST_MISSING", raising=False)
    path = tmp_path / "m.toml"
    path.write_text('[channels.tg]\nurl = "tgram://${MONITOR_TEST_MISSING}/-100123"\n')
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 2
    assert out == ""
    assert "channels.tg.url" in err
    assert "MONITOR_TEST_MISSING" in err


def test_summary_shows_overrides_ccxt_urls_channel_targets_and_notes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    uuid = "0f9a8b7c-6d5e-4f3a-9b8c-7d6e5f4a3b2c"
    monkeypatch.setenv("MONITOR_TEST_TG", TOKEN)
    monkeypatch.setenv("MONITOR_TEST_HB", uuid)
    path = tmp_path / "m.toml"
    path.write_text(
        """
[venues.binance_usdm]
urls = { api = { ws = { linear = "ws://127.0.0.1:9443/ws", public = "ws://127.0.0.1:1/ws" } } }

[venues.okx]

[[accounts]]
venue = "binanceusdm"
name = "main"
cross_collateral = 1000

[[accounts.positions]]
symbol = "BTCUSDT"
size = 0.1
entry_price = 60000
mark_price = 60000
maintenance = { rate = 0.004 }

[rules.liquidation_distance]
warning = 0.99

[rules.accounts."binanceusdm:main".margin_ratio]
warning = "60%"
critical = 0.8

[channels.tg]
url = "tgram://${MONITOR_TEST_TG}/-1001234567890"

[channels.file]
url = "monitorfile://out/alerts.txt"

[daemon]
heartbeat_url = "https://hc-ping.com/${MONITOR_TEST_HB}"
"""
    )
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    # the URLs the feeds really use: binanceusdm's native price feed streams from the venue
    # table's ws_url (never ccxt's api.ws.linear) and reads its metadata through ccxt's
    # api.fapiPublic; OKX's price feed streams from its ws_url and uses no ccxt
    assert lines[2] == (
        "  binanceusdm (native, rules binance_usdm; stream "
        "wss://fstream.binance.com/market/stream; rest https://fapi.binance.com)"
    )
    assert (
        lines[3] == "    metadata (ccxt REST) url api.fapiPublic = https://fapi.binance.com/fapi/v1"
    )
    assert lines[4] == "  okx (native, rules okx; stream wss://ws.okx.com:8443/ws/v5/public)"
    assert not any("api.ws.linear =" in line for line in lines)
    assert "overrides (1):" in lines
    assert (
        "  binanceusdm:main: margin_ratio warning 0.6 (clear 0.57), critical 0.8 (clear 0.76)"
        in lines
    )  # clear = fire − 5 % · fire: 0.6 − 0.03, 0.8 − 0.04
    assert "  file: monitorfile://out/alerts.txt (warning and above)" in lines
    assert any(line.startswith("  tg: tgram://") for line in lines)
    assert TOKEN not in out
    assert uuid not in out
    assert "heartbeat https://hc-ping.com/… every 60 s" in out
    assert "metrics: off" in lines
    assert "telegram bot: off" in lines
    alias, linear, url_key, book = lines[lines.index("notes (4):") + 1 :]
    assert alias == (
        "  venues.binance_usdm: 'binance_usdm' is an old spelling of 'binanceusdm'; "
        "write 'binanceusdm'"
    )
    assert linear == (
        "  venues.binanceusdm.urls.api.ws.linear: the binanceusdm price feed never uses it (it "
        "streams from ws_url; its ccxt REST metadata reads only urls.api.fapiPublic); set "
        "ws_url for the stream"
    )
    # the example's old sample: a key ccxt's binanceusdm does not even have
    assert url_key.startswith(
        "  venues.binanceusdm.urls.api.ws.public: ccxt's binanceusdm has no such key, so it "
        "is never read (it has: spot, margin, linear, "
    )
    # long 0.1 BTC at 60,000 with 1,000 collateral, mm rate 0.004: equity = mm at
    # 1,000 + 0.1·(p − 60,000) = 0.0004·p → p = 5,000 / 0.0996 ≈ 50,200.8;
    # distance = (60,000 − 50,200.8) / 60,000 ≈ 0.1633 ≤ 0.99: fires on the whole book
    assert book == (
        "  rules.liquidation_distance.warning 0.99 fires on every position of the current "
        "book (liquidation_distance now 0.1633)"
    )


def test_api_key_accounts_are_shown_with_masked_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "AKIAsecretkeyvalue0123456789"
    secret = "s3cr3t-value-never-shown-0123"
    monkeypatch.setenv("MONITOR_TEST_KEY", key)
    monkeypatch.setenv("MONITOR_TEST_SECRET", secret)
    path = tmp_path / "m.toml"
    path.write_text(
        '[[accounts]]\nid = "bybit:desk"\nlabel = "desk"\napi_key = "${MONITOR_TEST_KEY}"\n'
        'secret = "${MONITOR_TEST_SECRET}"\n'
    )
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 0, err
    assert '  bybit:desk "desk" (API key AKIA…, read-only key required, live)' in out
    assert key not in out
    assert secret not in out
    # no symbols to price: the bybit price feed is not started (the key account streams)
    assert (
        "  bybit (native, rules bybit; no price feed: no symbols listed or held by manual "
        "accounts; its API-key accounts stream their own marks)"
    ) in out


def test_literal_key_is_refused_in_one_line_without_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    literal = "typed-into-the-file-0123456789"
    path = tmp_path / "m.toml"
    path.write_text(f'[[accounts]]\nid = "okx:desk"\napi_key = "{literal}"\n')
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 2
    assert out == ""
    assert literal not in err
    assert err.startswith(f"monitor check-config: {path}: accounts[0].api_key: a literal secret")


def test_margin_ratio_in_percent_is_refused_with_the_hint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.toml"
    path.write_text("[rules.margin_ratio]\nwarning = 60\ncritical = 80\n")
    code, _, err = run(["check-config", str(path)], capsys)
    assert code == 2
    assert err == (
        f"monitor check-config: {path}: rules.margin_ratio.warning: 60 is above 1 (100 %), a "
        "fraction that margin_ratio never needs (a margin ratio is maintenance / equity, 1 = "
        'liquidatable); write 0.6 or "60%"\n'
    )


def test_demo_config_summary_shows_the_alert_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["check-config", str(REPO / "config" / "demo.toml")], capsys)
    assert code == 0, err
    assert "  file: monitorfile://demo-out/alerts.txt (info and above)" in out
    assert "notes" not in out  # the demo's settings can all fire


def test_native_cex_feeds_show_the_stream_and_metadata_urls_they_really_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.toml"
    path.write_text(
        """
[venues.bybit]
ws_url = "ws://127.0.0.1:9/v5/public/linear"
rest_url = "http://127.0.0.1:9"

[venues.binanceusdm]
rest_url = "http://127.0.0.1:8/"
urls = { api = { fapiPublic = "http://127.0.0.1:7/fapi/v1" } }

[venues.okx]
urls = { api = { rest = "http://127.0.0.1:6" } }
"""
    )
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[1:7] == [
        "venues (3):",
        "  bybit (native, rules bybit; stream ws://127.0.0.1:9/v5/public/linear (ws_url); "
        "rest http://127.0.0.1:9 (rest_url))",
        # the bybit feed's metadata: ccxt's api.public set to rest_url
        "    metadata (ccxt REST) url api.public = http://127.0.0.1:9",
        "  binanceusdm (native, rules binance_usdm; stream wss://fstream.binance.com/market/"
        "stream; rest http://127.0.0.1:8/ (rest_url))",
        # urls wins over rest_url (deep-merged after it, as the feed does)
        "    metadata (ccxt REST) url api.fapiPublic = http://127.0.0.1:7/fapi/v1 (set here)",
        "  okx (native, rules okx; stream wss://ws.okx.com:8443/ws/v5/public)",
    ]
    assert (
        "  venues.okx.urls: the okx price feed uses no REST and no ccxt, so it is never read "
        "(its stream is ws_url)"
    ) in lines


def test_the_stream_shown_is_the_feed_modules_default() -> None:
    """check-config prints the venue table's ws_url; the feeds connect to their module's."""
    from monitor.model.venues import spec
    from monitor.venues.binance import feed as binance
    from monitor.venues.bybit import feed as bybit
    from monitor.venues.okx import feed as okx

    assert spec("binanceusdm").ws_url == binance.WS_URL
    assert spec("binanceusdm").rest_url == binance.REST_URL
    assert spec("bybit").ws_url == bybit.WS_URL
    assert spec("bybit").rest_url == bybit.REST_URL
    assert spec("okx").ws_url == okx.WS_URL
    from monitor.venues.dydx import feed as dydx
    from monitor.venues.hyperliquid import feed as hyperliquid

    assert (spec("hyperliquid").ws_url, spec("hyperliquid").rest_url) == (
        hyperliquid.WS_URL,
        hyperliquid.REST_URL,
    )
    assert (spec("dydx").ws_url, spec("dydx").rest_url) == (dydx.WS_URL, dydx.REST_URL)


def test_the_examples_local_test_server_sample_is_what_the_binance_feed_reads(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue: the example's ccxt `urls` sample used a key binanceusdm never reads. Its
    sample lines, uncommented, point the stream and the metadata at the local server and
    check-config notes no key that nothing reads."""
    text = (REPO / "config" / "example.toml").read_text()
    samples = [
        '# ws_url = "ws://127.0.0.1:9443/market/stream"',
        '# rest_url = "http://127.0.0.1:9443"',
    ]
    for line in samples:
        assert line in text
        text = text.replace(line, line[2:])
    path = tmp_path / "example.toml"
    path.write_text(text)
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    head = next(line for line in lines if line.startswith("  binanceusdm ("))
    assert "stream ws://127.0.0.1:9443/market/stream (ws_url)" in head
    assert "rest http://127.0.0.1:9443 (rest_url)" in head
    assert lines[lines.index(head) + 1] == (
        "    metadata (ccxt REST) url api.fapiPublic = http://127.0.0.1:9443/fapi/v1"
    )
    assert "never read" not in out and "never uses" not in out


def test_api_key_accounts_show_the_endpoints_their_private_clients_use(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from monitor.clock import SystemClock
    from monitor.config import load_config
    from monitor.venues.binance.private import BinancePrivate
    from monitor.venues.bybit.private import BybitPrivate
    from monitor.venues.keys import KeySettings
    from monitor.venues.okx.private import OkxPrivate
    from monitor.venues.registry import key_account

    for name in ("K", "S", "P"):
        monkeypatch.setenv(f"MONITOR_TEST_{name}", "x" * 24)
    keys = 'api_key = "${MONITOR_TEST_K}"\nsecret = "${MONITOR_TEST_S}"\n'
    path = tmp_path / "m.toml"
    path.write_text(
        f'[[accounts]]\nid = "binanceusdm:main"\n{keys}'
        f'[[accounts]]\nid = "binanceusdm:pm"\n{keys}portfolio_margin = true\n'
        f'[[accounts]]\nid = "bybit:desk"\n{keys}rest_url = "http://127.0.0.1:9/"\n'
        f'[[accounts]]\nid = "okx:desk"\n{keys}password = "${{MONITOR_TEST_P}}"\n'
        'ws_url = "ws://127.0.0.1:8/ws/v5/private"\n'
    )
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 0, err
    lines = out.splitlines()

    def under(account: str) -> str:
        return lines[next(i for i, ln in enumerate(lines) if ln.startswith(f"  {account} ")) + 1]

    clients = {a.key: key_account(a) for a in load_config(path).accounts}
    clock, settings = SystemClock(), KeySettings()
    bn = BinancePrivate(clients[next(k for k in clients if k.account == "main")], clock, settings)
    pm = BinancePrivate(clients[next(k for k in clients if k.account == "pm")], clock, settings)
    by = BybitPrivate(clients[next(k for k in clients if k.venue == "bybit")], clock, settings)
    ok = OkxPrivate(clients[next(k for k in clients if k.venue == "okx")], clock, settings)
    assert under("binanceusdm:main") == (
        f"    rest {bn.trade_base}; key check {bn.spot}; stream {bn.ws_base}"
    )
    assert under("binanceusdm:pm") == (
        f"    rest {pm.trade_base}; key check {pm.spot}; stream {pm.ws_base}"
    )
    assert under("bybit:desk") == f"    rest {by.base} (set here); stream {by.ws_url}"
    assert under("okx:desk") == f"    rest {ok.base}; stream {ok.ws_url} (set here)"
    assert pm.trade_base == "https://papi.binance.com" and by.base == "http://127.0.0.1:9"


def test_a_large_account_file_is_summarised_not_printed_account_by_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # a book of 20,000 accounts printed 20,000 account lines and a 1 MB "scopes known now"
    # line; the first accounts and scopes are shown, then how many more
    book = [
        {
            "venue": "bybit",
            "name": f"a{i}",
            "cross_collateral": 100,
            "positions": [
                {"symbol": "BTCUSDT", "size": 1, "entry_price": 100},
                {
                    "symbol": "SOLUSDT",
                    "size": -1,
                    "entry_price": 10,
                    "margin_mode": "isolated",
                    "isolated_margin": 5,
                },
            ],
        }
        for i in range(500)
    ]
    (tmp_path / "book.json").write_text(json.dumps(book), encoding="utf-8")
    path = tmp_path / "m.toml"
    path.write_text('[venues.bybit]\n[[accounts]]\nfile = "book.json"\n', encoding="utf-8")
    code, out, err = run(["check-config", str(path)], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert "accounts (500):" in lines
    assert "  bybit:a0 (manual, 2 positions, prices from bybit)" in lines
    assert "  bybit:a19 (manual, 2 positions, prices from bybit)" in lines
    assert "  bybit:a20 (manual, 2 positions, prices from bybit)" not in lines
    assert "  … and 480 more accounts (480 manual, 960 positions)" in lines
    assert len(lines) < 80 and max(map(len, lines)) < 1000
    scopes = next(line for line in lines if line.startswith("scopes known now"))
    assert scopes.startswith("scopes known now: 1000 (bybit:a0/cross, bybit:a0/isolated:SOLUSDT")
    assert scopes.endswith(", … and 980 more)")
