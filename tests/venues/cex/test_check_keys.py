"""``monitor check-keys`` against the three loopback venues, and the ``[[accounts]]`` keys it
reads (secrets only by reference, masked everywhere)."""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path
from typing import Any

import pytest

from monitor.commands import check_keys
from monitor.errors import ConfigError
from monitor.venues.keys import key_accounts_from_toml
from tests.venues.cex import test_binance as tb
from tests.venues.cex import test_bybit as ty
from tests.venues.cex import test_okx as to
from tests.venues.cex.binance_mock import BinanceMock
from tests.venues.cex.bybit_mock import BybitMock
from tests.venues.cex.okx_mock import OkxMock

ENV = {
    "BN_KEY": tb.KEY,
    "BN_SECRET": tb.SECRET,
    "BY_KEY": ty.KEY,
    "BY_SECRET": ty.SECRET,
    "OKX_KEY": to.KEY,
    "OKX_SECRET": to.SECRET,
    "OKX_PASS": to.PASS,
}


def config_text(bn: BinanceMock, by: BybitMock, ok: OkxMock) -> str:
    return f"""
[[accounts]]
id = "binanceusdm:main"
api_key = "${{BN_KEY}}"
secret = "${{BN_SECRET}}"
rest_url = "{bn.url}"

[[accounts]]
id = "bybit:uta"
api_key = "${{BY_KEY}}"
secret = "${{BY_SECRET}}"
rest_url = "{by.url}"

[[accounts]]
id = "okx:swap"
api_key = "${{OKX_KEY}}"
secret = "${{OKX_SECRET}}"
password = "${{OKX_PASS}}"
rest_url = "{ok.url}"

[[accounts]]
id = "hyperliquid:0x0000000000000000000000000000000000000001"
"""


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    check_keys.register(parser.add_subparsers())
    return parser.parse_args(["check-keys", *argv])


async def run_command(
    tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch, env: dict[str, str]
) -> int:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(text)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    # the command runs its own event loop; the loopback venues keep serving on ours
    return await asyncio.to_thread(check_keys.run, parse(["--config", str(cfg)]))


async def test_every_key_is_confirmed_read_only_and_masked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        BinanceMock(tb.KEY, tb.SECRET) as bn,
        BybitMock(ty.KEY, ty.SECRET) as by,
        OkxMock(to.KEY, to.SECRET, to.PASS) as ok,
    ):
        await bn.open("BTCUSDT", 0.1, 60_000.0)
        code = await run_command(tmp_path, config_text(bn, by, ok), monkeypatch, ENV)
    out = capsys.readouterr().out
    assert code == 0, out
    lines = out.strip().splitlines()
    assert len(lines) == 3  # the hyperliquid address account has no key
    assert lines[0].startswith("binanceusdm:main")
    assert "ok: read-only" in lines[0]
    assert "1 position" in lines[0]
    assert "vmPU…Eh8A" in lines[0]
    assert "bybit:uta" in lines[1]
    assert "ok: read-only" in lines[1]
    assert "okx:swap" in lines[2]
    assert "ok: read-only" in lines[2]
    for secret in ENV.values():
        assert secret not in out
    assert bn.bad_signatures == by.bad_signatures == ok.bad_signatures == 0


async def test_a_trading_key_is_refused_and_a_bad_key_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    async with (
        BinanceMock(tb.KEY, tb.SECRET) as bn,
        BybitMock(ty.KEY, ty.SECRET) as by,
        OkxMock(to.KEY, to.SECRET, to.PASS) as ok,
    ):
        bn.restrictions["enableFutures"] = True
        env = ENV | {"BY_KEY": "NOTTHEKEYATALL123"}
        code = await run_command(tmp_path, config_text(bn, by, ok), monkeypatch, env)
    out = capsys.readouterr().out
    assert code == 1
    bn_line, by_line, okx_line = out.strip().splitlines()
    assert "REFUSED" in bn_line
    assert "can trade" in bn_line
    assert "FAILED: API key rejected" in by_line
    assert "10003" in by_line
    assert "NOTTHEKEYATALL123" not in out
    assert "ok: read-only" in okx_line


async def test_a_literal_secret_in_the_file_is_a_configuration_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    text = '[[accounts]]\nid = "bybit:x"\napi_key = "${BY_KEY}"\nsecret = "plainsecret123"\n'
    code = await run_command(tmp_path, text, monkeypatch, ENV)
    err = capsys.readouterr().err
    assert code == 2
    assert "accounts[0].secret" in err
    assert "never the secret itself" in err
    assert "plainsecret123" not in err


def test_secrets_come_from_the_credentials_directory(tmp_path: Path) -> None:
    (tmp_path / "okx_secret").write_text("s3cr3t-from-file\n")
    doc: dict[str, Any] = {
        "accounts": [
            {
                "id": "okx:main",
                "api_key": "${K}",
                "secret": "${file:okx_secret}",
                "password": "${cred:okx_secret}",
            }
        ]
    }
    (acct,) = key_accounts_from_toml(
        doc, "m.toml", env={"K": "key-1234567890", "CREDENTIALS_DIRECTORY": str(tmp_path)}
    )
    assert acct.secret == "s3cr3t-from-file"  # trailing newline stripped
    assert acct.password == "s3cr3t-from-file"
    assert acct.venue == "okx"
    assert acct.allow_trading_key is False


@pytest.mark.parametrize(
    ("table", "where", "problem"),
    [
        ({"id": "binance_usdm:a", "api_key": "${NOPE}", "secret": "${K}"}, "api_key", "NOPE"),
        ({"id": "kraken:a", "api_key": "${K}", "secret": "${K}"}, "id", "cannot be read"),
        ({"id": "okx:a", "api_key": "${K}", "secret": "${K}"}, "password", "passphrase"),
        ({"id": "bybit", "api_key": "${K}", "secret": "${K}"}, "id", "venue:name"),
        ({"id": "bybit:a", "api_key": "${K}", "secret": "${K}", "colour": 1}, "colour", "unknown"),
        ({"id": "bybit:a", "api_key": "${K}", "secret": "${file:x}"}, "secret", "CREDENTIALS"),
        (
            {"id": "bybit:a", "api_key": "${K}", "secret": "${K}", "portfolio_margin": True},
            "portfolio_margin",
            "Binance",
        ),
        (
            {"id": "bybit:a", "api_key": "${K}", "secret": "${K}", "allow_trading_key": "yes"},
            "allow_trading_key",
            "true or false",
        ),
    ],
)
def test_bad_key_accounts_name_the_field(table: dict[str, Any], where: str, problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        key_accounts_from_toml({"accounts": [table]}, "m.toml", env={"K": "k" * 16})
    assert info.value.field == f"accounts[0].{where}"
    assert problem in info.value.problem


def test_the_same_account_twice_is_refused() -> None:
    t = {"id": "bybit:a", "api_key": "${K}", "secret": "${K}"}
    with pytest.raises(ConfigError, match="given twice"):
        key_accounts_from_toml({"accounts": [t, t]}, "m.toml", env={"K": "k" * 16})
