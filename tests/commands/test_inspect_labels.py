"""``monitor inspect --config FILE`` shows each account's configured label beside its id:
in the table's head line, in the JSON report (``"label"``), in the venue's-own-ratio line of
a unified Hyperliquid account and in the list of known API-key accounts."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from monitor.cli import main
from tests.commands.test_inspect import FEEDS, HL_MODE, venue_server

__all__ = ["venue_server"]  # the loopback Hyperliquid / dYdX REST stand-in (a fixture)

ADDR = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"
DYDX_ADDR = "dydx1" + "q8m3v5x9" * 5


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        "[[accounts]]\n"
        # written checksummed (mixed case): the report names it in lower case
        f'id = "hyperliquid:{ADDR.upper().replace("0X", "0x")}"\n'
        'label = "hl main"\n\n'
        "[[accounts]]\n"
        f'id = "dydx:{DYDX_ADDR}/0"\n'
        "parent = true\n"
        'label = "dydx desk"\n\n'
        "[[accounts]]\n"
        'id = "bybit:desk"\n'
        'api_key = "${BY_KEY}"\n'
        'secret = "${BY_SECRET}"\n'
        'label = "bybit desk"\n\n'
        f'[store]\npath = "{tmp_path / "m.db"}"\n'
    )
    return cfg


async def _inspect(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = await asyncio.to_thread(main, ["inspect", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


async def test_live_hyperliquid_table_and_json_carry_the_label(
    tmp_path: Path, venue_server: tuple[str, list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = venue_server
    cfg = str(_config(tmp_path))
    code, out, err = await _inspect(
        f"hyperliquid:{ADDR}", "--rest-url", base, "--config", cfg, capsys=capsys
    )
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"hyperliquid {ADDR} (hl main)  [cross]"
    code, out, err = await _inspect(
        f"hyperliquid:{ADDR}", "--rest-url", base, "--config", cfg, "--json", capsys=capsys
    )
    assert code == 0
    assert {(a["account"], a.get("label")) for a in json.loads(out)["accounts"]} == {
        (ADDR, "hl main")
    }


async def test_without_config_no_label_is_shown(
    venue_server: tuple[str, list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = venue_server
    code, out, _ = await _inspect(f"hyperliquid:{ADDR}", "--rest-url", base, capsys=capsys)
    assert code == 0
    assert out.splitlines()[0] == f"hyperliquid {ADDR}  [cross]"


async def test_portfolio_margin_ratio_line_names_the_label(
    tmp_path: Path, venue_server: tuple[str, list[Any]], capsys: pytest.CaptureFixture[str]
) -> None:
    base, _ = venue_server
    HL_MODE[0] = "portfolioMargin"
    try:
        code, out, err = await _inspect(
            f"hyperliquid:{ADDR}",
            "--rest-url",
            base,
            "--config",
            str(_config(tmp_path)),
            capsys=capsys,
        )
    finally:
        HL_MODE[0] = "disabled"
    assert code == 0
    assert err.startswith(f"hyperliquid:{ADDR} (hl main): the venue's own ")
    heads = [ln for ln in out.splitlines() if ln.startswith("hyperliquid ")]
    assert heads and all(" (hl main)  [" in h for h in heads)


def test_dydx_child_subaccounts_carry_the_parents_label(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = json.loads((FEEDS / "dydx" / "rest_subaccount.json").read_text())["subaccount"]
    sub["address"] = DYDX_ADDR
    child = dict(sub, subaccountNumber=128, openPerpetualPositions={})
    doc = {
        "subaccount": {
            "address": DYDX_ADDR,
            "parentSubaccountNumber": 0,
            "childSubaccounts": [sub, child],
        }
    }
    path = tmp_path / "parent.json"
    path.write_text(json.dumps(doc))
    markets = str(FEEDS / "dydx" / "rest_perpetualMarkets.json")
    code = main(["inspect", str(path), "--markets", markets, "--config", str(_config(tmp_path))])
    out = capsys.readouterr().out
    assert code == 0
    heads = [ln for ln in out.splitlines() if ln.startswith("dydx ")]
    assert heads == [
        f"dydx {DYDX_ADDR}/0 (dydx desk)  [cross]",
        f"dydx {DYDX_ADDR}/128 (dydx desk)  [cross]",
    ]


def test_unknown_key_account_lists_the_known_ones_with_labels(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["inspect", "okx:desk", "--config", str(_config(tmp_path))])
    err = capsys.readouterr().err
    assert code == 2
    assert "no account 'okx:desk' by API key (known: bybit:desk (bybit desk))" in err


def test_a_bad_config_is_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text("[[accounts]]\nid = 'hyperliquid:0x12'\n")
    code = main(["inspect", f"hyperliquid:{ADDR}", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith(f"monitor inspect: {cfg}: accounts[0]") and err.count("\n") == 1
