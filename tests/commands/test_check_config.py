"""``monitor check-config``: summary on success, one line and exit 2 on error, no secrets."""

from __future__ import annotations

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
