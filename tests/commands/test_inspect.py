"""``monitor inspect``: reports, bad input (exit 2, one line naming file and field), live form."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.cli import main
from monitor.commands.inspect import fetch_live
from monitor.errors import InputError

FEEDS = Path(__file__).parents[1] / "fixtures" / "feeds"
HL_STATE = FEEDS / "hyperliquid" / "rest_info_clearinghouseState_response.json"

SNAP: dict[str, Any] = {
    "venue": "binance_usdm",
    "account": "main",
    "cross_collateral": 10000,
    "positions": [
        {
            "symbol": "BTCUSDT",
            "size": "0.5",
            "entry_price": 60000,
            "mark_price": 61000,
            "margin_mode": "cross",
            "leverage": 10,
            "maintenance": {"rate": 0.004},
            "funding_rate": 0.0001,
            "funding_interval_hours": 8,
        },
        {
            "symbol": "ETHUSDT",
            "size": 0,
            "entry_price": 3000,
            "mark_price": 3000,
            "maintenance": {"rate": 0.005},
        },
    ],
}


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(args)
    out = capsys.readouterr()
    return code, out.out, out.err


def write(tmp_path: Path, doc: Any, name: str = "snap.json") -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def test_json_report_is_one_document_with_the_contract_keys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["inspect", str(write(tmp_path, SNAP)), "--json"], capsys)
    assert code == 0 and err == ""
    report = json.loads(out)
    (scope,) = report["accounts"]
    for key in (
        "venue",
        "account",
        "scope",
        "equity",
        "maintenance_margin",
        "initial_margin",
        "margin_ratio",
        "free_collateral",
        "positions",
    ):
        assert key in scope
    # zero-size ETH ignored; equity = 10000 + 0.5·(61000 − 60000)
    assert [p["symbol"] for p in scope["positions"]] == ["BTCUSDT"]
    assert scope["equity"] == pytest.approx(10500.0)
    assert scope["maintenance_margin"] == pytest.approx(0.5 * 61000 * 0.004)
    assert scope["initial_margin"] == pytest.approx(0.5 * 61000 / 10)
    # funding: 0.5 × 61000 × 0.0001 / 8 per hour, × 24 per day
    assert scope["funding_cost_per_day"] == pytest.approx(0.5 * 61000 * 0.0001 / 8 * 24)
    pos = scope["positions"][0]
    # (★): P* = P − (Eq − MM)/(q·(1 − m))
    expected = 61000 - (10500 - 122.0) / (0.5 * (1 - 0.004))
    assert pos["liquidation_price"] == pytest.approx(expected, rel=1e-12)
    assert pos["liquidation_distance"] == pytest.approx((61000 - expected) / 61000)


def test_table_shows_ours_beside_the_venue_figure(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["inspect", str(HL_STATE)], capsys)
    assert code == 0
    assert "84,860.76" in out and "4,164.82" in out
    assert "venue says: equity 561.55" in out


def test_dydx_needs_markets_and_then_reports(capsys: pytest.CaptureFixture[str]) -> None:
    sub = FEEDS / "dydx" / "rest_subaccount.json"
    code, _, err = run(["inspect", str(sub)], capsys)
    assert code == 2 and "--markets" in err
    code, out, _ = run(
        [
            "inspect",
            str(sub),
            "--markets",
            str(FEEDS / "dydx" / "rest_perpetualMarkets.json"),
            "--json",
        ],
        capsys,
    )
    assert code == 0
    scope = json.loads(out)["accounts"][0]
    assert scope["equity"] == pytest.approx(scope["venue_equity"], rel=1e-6)
    assert scope["free_collateral"] == pytest.approx(scope["venue_free_collateral"], rel=1e-6)


BAD = [
    ("", None, "empty file"),
    ("{not json", None, "not valid JSON"),
    ({"venue": "kraken", "positions": []}, "venue", "known: hyperliquid, dydx, binanceusdm"),
    ({"venue": "okx", "cross_collateral": 1}, "positions", "missing"),
    (
        {
            "venue": "okx",
            "positions": [
                {
                    "symbol": "X",
                    "size": 1,
                    "entry_price": 1,
                    "mark_price": "NaN",
                    "maintenance": {"rate": 0.01},
                }
            ],
        },
        "positions[0].mark_price",
        "finite",
    ),
    (
        {
            "venue": "okx",
            "positions": [
                {
                    "symbol": "X",
                    "size": 1,
                    "entry_price": 1,
                    "mark_price": 1e999,
                    "maintenance": {"rate": 0.01},
                }
            ],
        },
        "positions[0].mark_price",
        "finite",
    ),
    (
        {
            "venue": "okx",
            "positions": [
                {
                    "symbol": "X",
                    "size": 1,
                    "entry_price": 1,
                    "mark_price": -5,
                    "maintenance": {"rate": 0.01},
                }
            ],
        },
        "positions[0].mark_price",
        "positive",
    ),
    (
        {
            "venue": "okx",
            "positions": [
                {
                    "symbol": "X",
                    "size": 1,
                    "entry_price": 1,
                    "margin_mode": "isolated",
                    "mark_price": 1,
                }
            ],
        },
        "positions[0].isolated_margin",
        "required",
    ),
    (
        {
            "venue": "okx",
            "positions": [{"symbol": "X", "size": 1, "entry_price": 1, "mark_prise": 1}],
        },
        "positions[0].mark_prise",
        "did you mean 'mark_price'",
    ),
    (
        {
            "venue": "okx",
            "positions": [
                {"symbol": "X", "size": 1, "entry_price": 1, "maintenance": {"rate": 1.5}}
            ],
        },
        "positions[0].maintenance.rate",
        "below 1",
    ),
]


@pytest.mark.parametrize(("doc", "field", "words"), BAD)
def test_bad_input_exits_2_with_one_line_naming_file_and_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: Any, field: str | None, words: str
) -> None:
    path = write(tmp_path, doc)
    code, out, err = run(["inspect", str(path), "--json"], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert str(path) in err
    if field:
        assert f"{path}: {field}:" in err
    assert words in err


def test_missing_file_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["inspect", str(tmp_path / "nope.json")], capsys)
    assert code == 2 and "nope.json: no such file" in err


def test_console_script_runs_as_a_subprocess() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "inspect", str(HL_STATE), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["version"] == 1


HL_MODE = ["disabled"]
"""The account mode the Hyperliquid stand-in reports (a fixture name suffix)."""


@pytest.fixture
async def venue_server() -> AsyncIterator[tuple[str, list[Any]]]:
    """A loopback stand-in for the Hyperliquid /info and dYdX indexer REST APIs."""
    seen: list[Any] = []

    async def info(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        hl = FEEDS / "hyperliquid"
        kind = body.get("type")
        if kind == "userAbstraction":  # the account mode: HL_MODE[0] ("disabled" by default)
            doc = hl / f"rest_info_userAbstraction_response_{HL_MODE[0]}.json"
            return web.Response(text=doc.read_text(), content_type="application/json")
        if kind == "spotClearinghouseState":
            mode = {"unifiedAccount": "unified"}.get(HL_MODE[0], HL_MODE[0])
            doc = hl / f"rest_info_spotClearinghouseState_response_{mode}.json"
            return web.Response(text=doc.read_text(), content_type="application/json")
        if kind != "clearinghouseState":
            return web.json_response({"error": "bad type"}, status=400)
        return web.Response(text=HL_STATE.read_text(), content_type="application/json")

    async def markets(request: web.Request) -> web.Response:
        seen.append(str(request.rel_url))
        return web.Response(
            text=(FEEDS / "dydx" / "rest_perpetualMarkets.json").read_text(),
            content_type="application/json",
        )

    async def subaccount(request: web.Request) -> web.Response:
        seen.append(str(request.rel_url))
        return web.Response(
            text=(FEEDS / "dydx" / "rest_subaccount.json").read_text(),
            content_type="application/json",
        )

    app = web.Application()
    app.router.add_post("/info", info)
    app.router.add_get("/v4/perpetualMarkets", markets)
    app.router.add_get("/v4/addresses/{addr}/subaccountNumber/{n}", subaccount)

    async def parent(request: web.Request) -> web.Response:
        seen.append(str(request.rel_url))
        child0 = json.loads((FEEDS / "dydx" / "rest_subaccount.json").read_text())["subaccount"]
        child = dict(child0, subaccountNumber=128, openPerpetualPositions={})
        doc = {
            "subaccount": {
                "address": child0["address"],
                "parentSubaccountNumber": 0,
                "childSubaccounts": [child0, child],
            }
        }
        return web.json_response(doc)

    app.router.add_get("/v4/addresses/{addr}/parentSubaccountNumber/{n}", parent)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield f"http://127.0.0.1:{port}", seen
    await runner.cleanup()


async def test_live_form_fetches_hyperliquid_and_dydx(venue_server: tuple[str, list[Any]]) -> None:
    base, seen = venue_server
    addr = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"
    (snap,) = await fetch_live("hyperliquid", addr, base, 5.0)
    # the account mode first (a standard account: no spot state), then its state
    assert seen[:2] == [
        {"type": "userAbstraction", "user": addr},
        {"type": "clearinghouseState", "user": addr},
    ]
    assert snap.account == addr and len(snap.positions) == 2
    del seen[:2]
    (dsnap,) = await fetch_live("dydx", "dydx1abc/0", base + "/v4", 5.0)
    assert seen == ["/v4/perpetualMarkets", "/v4/addresses/dydx1abc/subaccountNumber/0"]
    assert dsnap.venue_equity == pytest.approx(12125.600886)


async def test_live_unified_account_is_valued_from_its_spot_state(
    venue_server: tuple[str, list[Any]],
) -> None:
    base, seen = venue_server
    addr = "0x7a3b6f0e2d9c41b58e6f1c2d3e4f5a6b7c8d9e0f"
    HL_MODE[0] = "unifiedAccount"
    try:
        snaps = await fetch_live("hyperliquid", addr, base, 5.0)
    finally:
        HL_MODE[0] = "disabled"
    assert {"type": "spotClearinghouseState", "user": addr} in seen
    # one pool per collateral token, valued by the venue's own Unified Account Ratio figures
    assert snaps and all(s.account.startswith(addr) for s in snaps)
    assert all(s.venue_equity is not None for s in snaps)


def test_live_form_unreachable_venue_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(
        [
            "inspect",
            "hyperliquid:0x" + "1" * 40,
            "--rest-url",
            "http://127.0.0.1:9",
            "--timeout",
            "2",
        ],
        capsys,
    )
    assert code == 1 and "cannot reach" in err


def _dydx_parent(tmp_path: Path) -> Path:
    child0 = json.loads((FEEDS / "dydx" / "rest_subaccount.json").read_text())["subaccount"]
    child0["assetPositions"]["USDC"].update(side="SHORT", size="8375.05")
    child128 = {
        "address": child0["address"],
        "subaccountNumber": 128,
        "equity": "500",
        "freeCollateral": "500",
        "openPerpetualPositions": {},
        "assetPositions": {"USDC": {"symbol": "USDC", "side": "LONG", "size": "500"}},
    }
    doc = {
        "subaccount": {
            "address": child0["address"],
            "parentSubaccountNumber": 0,
            "equity": "99999",  # the sum over children: shown nowhere
            "childSubaccounts": [child0, child128],
        }
    }
    return write(tmp_path, doc, "parent.json")


def test_dydx_parent_subaccount_is_reported_one_pool_per_subaccount(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    markets = str(FEEDS / "dydx" / "rest_perpetualMarkets.json")
    code, out, err = run(
        ["inspect", str(_dydx_parent(tmp_path)), "--markets", markets, "--json"], capsys
    )
    assert (code, err) == (0, "")
    by = {s["account"].rpartition("/")[2]: s for s in json.loads(out)["accounts"]}
    assert set(by) == {"0", "128"}
    (btc,) = by["0"]["positions"]
    # subaccount 0 alone: −8,375.05 + 0.1·P = 0.0012·P ⇒ P = 84,767.71
    assert btc["liquidation_price"] == pytest.approx(84767.71, abs=0.01)
    assert by["128"]["equity"] == pytest.approx(500.0)
    assert by["128"]["venue_equity"] == pytest.approx(500.0)  # compared per subaccount
    assert "venue_equity" in by["0"] and by["0"]["venue_equity"] != 99999


def test_dydx_market_without_oracle_price_does_not_cost_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mdoc = json.loads((FEEDS / "dydx" / "rest_perpetualMarkets.json").read_text())
    mdoc["markets"]["NEW-USD"] = dict(
        mdoc["markets"]["ETH-USD"], ticker="NEW-USD", oraclePrice=None
    )
    markets = write(tmp_path, mdoc, "markets.json")
    sub = str(FEEDS / "dydx" / "rest_subaccount.json")
    code, out, _ = run(["inspect", sub, "--markets", str(markets), "--json"], capsys)
    assert code == 0
    (scope,) = json.loads(out)["accounts"]
    assert [p["symbol"] for p in scope["positions"]] == ["BTC-USD"]
    # an account holding the unpriced market is refused, naming it: never priced at a guess
    mdoc["markets"]["BTC-USD"]["oraclePrice"] = None
    write(tmp_path, mdoc, "markets.json")
    code, _, err = run(["inspect", sub, "--markets", str(markets)], capsys)
    assert code == 2
    assert "markets.BTC-USD: market not priced: no oracle price yet" in err


async def test_live_form_fetches_a_dydx_parent_one_pool_per_subaccount(
    venue_server: tuple[str, list[Any]],
) -> None:
    base, seen = venue_server
    snaps = await fetch_live("dydx", "dydx1abc/0", base + "/v4", 5.0, parent=True)
    assert seen == ["/v4/perpetualMarkets", "/v4/addresses/dydx1abc/parentSubaccountNumber/0"]
    assert [s.account.rpartition("/")[2] for s in snaps] == ["0", "128"]
    # the child holds only its USDC 2623.746886: its pool, not the parent's
    assert snaps[1].cross_collateral == pytest.approx(2623.746886)
    assert snaps[1].positions == ()


async def test_live_form_refuses_a_parent_number_above_127() -> None:
    with pytest.raises(InputError, match="0…127"):
        await fetch_live("dydx", "dydx1abc/128", "http://127.0.0.1:9/v4", 1.0, parent=True)


async def test_inspect_an_account_by_api_key_reads_it_with_its_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``monitor inspect binanceusdm:main --config FILE``: the key's permissions are checked,
    then one signed snapshot is reported (against the loopback Binance that verifies every
    signature)."""
    from tests.venues.cex import test_binance as tb
    from tests.venues.cex.binance_mock import BinanceMock

    async with BinanceMock(tb.KEY, tb.SECRET) as bn:
        await bn.open("BTCUSDT", 0.1, 60_000.0)
        cfg = tmp_path / "monitor.toml"
        cfg.write_text(
            "[[accounts]]\n"
            'id = "binanceusdm:main"\n'
            'api_key = "${BN_KEY}"\n'
            'secret = "${BN_SECRET}"\n'
            f'rest_url = "{bn.url}"\n'
        )
        monkeypatch.setenv("BN_KEY", tb.KEY)
        monkeypatch.setenv("BN_SECRET", tb.SECRET)
        code = await asyncio.to_thread(
            main, ["inspect", "binanceusdm:main", "--config", str(cfg), "--json"]
        )
        bad = bn.bad_signatures
    out = capsys.readouterr()
    assert code == 0, out.err
    doc = json.loads(out.out)
    assert {a["venue"] for a in doc["accounts"]} == {"binanceusdm"}
    symbols = [p["symbol"] for a in doc["accounts"] for p in a["positions"]]
    assert symbols == ["BTCUSDT"]
    assert bad == 0
    assert tb.SECRET not in out.out + out.err


def test_inspect_an_unknown_key_account_names_the_configured_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text("")
    code, _, err = run(["inspect", "bybit:desk", "--config", str(cfg)], capsys)
    assert code == 2
    assert "no account 'bybit:desk' by API key (known: none)" in err
