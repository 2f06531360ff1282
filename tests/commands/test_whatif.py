"""``monitor whatif``: before/after side by side, JSON, bad input (exit 2, one line)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.cli import main

# generic rules, 1 % maintenance; cross: 10 000 collateral, BTC +1 @ 50 000, ETH −10 @ 3 000
SNAP: dict[str, Any] = {
    "venue": "generic",
    "account": "acct",
    "cross_collateral": 10000,
    "positions": [
        {
            "symbol": "BTC",
            "size": 1,
            "entry_price": 50000,
            "mark_price": 50000,
            "maintenance": {"rate": 0.01},
        },
        {
            "symbol": "ETH",
            "size": -10,
            "entry_price": 3000,
            "mark_price": 3000,
            "maintenance": {"rate": 0.01},
        },
    ],
}


@pytest.fixture
def snapshot(tmp_path: Path) -> Path:
    path = tmp_path / "snap.json"
    path.write_text(json.dumps(SNAP))
    return path


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_json_before_and_after_of_an_isolation(
    snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["whatif", str(snapshot), "--isolate", "ETH=2000", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    assert doc["version"] == 1
    assert doc["scenarios"] == ["--isolate ETH=2000"]
    scopes = {s["scope"]: s for s in doc["scopes"]}
    assert set(scopes) == {"cross", "isolated:ETH"}
    assert scopes["isolated:ETH"]["before"] is None
    cross_b, cross_a = scopes["cross"]["before"], scopes["cross"]["after"]
    assert cross_b["equity"] == pytest.approx(10_000.0)
    assert cross_a["equity"] == pytest.approx(8_000.0)  # 2 000 moved out
    btc_b = next(p for p in cross_b["positions"] if p["symbol"] == "BTC")
    btc_a = next(p for p in cross_a["positions"] if p["symbol"] == "BTC")
    # BTC liquidation without ETH's hedge: 40 300 / 0.99 → 42 000 / 0.99
    assert btc_b["liquidation_price"] == pytest.approx(40_300.0 / 0.99)
    assert btc_a["liquidation_price"] == pytest.approx(42_000.0 / 0.99)
    iso = scopes["isolated:ETH"]["after"]
    assert iso["equity"] == pytest.approx(2_000.0)
    assert iso["maintenance_margin"] == pytest.approx(300.0)  # 0.01 · 30 000


def test_negative_shock_is_accepted_as_a_separate_argument(
    snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(["whatif", str(snapshot), "--shock", "-10%", "--json"], capsys)
    assert code == 0, err
    doc = json.loads(out)
    [cross] = doc["scopes"]
    # BTC 45 000 (−5 000), ETH 2 700 (+3 000): equity 8 000; mm 450 + 270 = 720
    assert cross["after"]["equity"] == pytest.approx(8_000.0)
    assert cross["after"]["maintenance_margin"] == pytest.approx(720.0)
    assert {p["symbol"]: p["after"] for p in doc["prices"]} == {
        "BTC": pytest.approx(45_000.0),
        "ETH": pytest.approx(2_700.0),
    }


def test_table_shows_both_sides(snapshot: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(["whatif", str(snapshot), "--price", "BTC=40000"], capsys)
    assert code == 0
    assert "scenario: --price BTC=40000" in out
    assert "before" in out
    assert "after" in out
    equity = next(line for line in out.splitlines() if line.strip().startswith("equity"))
    # before 10 000; after 10 000 − 10 000 = 0
    assert equity.split()[1:] == ["10,000.00", "0.00"]
    assert "LIQUIDATABLE" in out
    assert "note: generic:acct/cross: liquidatable after the change" in out


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--price", "DOGE=1"], "no position in 'DOGE'"),
        (["--shock", "-150%"], "above -100%"),
        (["--isolate", "ETH"], "SYMBOL=MARGIN"),
        (["--cross", "BTC"], "no position in 'BTC'"),
    ],
)
def test_bad_scenarios_exit_2_with_one_line(
    snapshot: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    code, out, err = run(["whatif", str(snapshot), *args], capsys)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1
    assert needle in err


def test_bad_file_names_file_and_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**SNAP, "cross_collateral": "lots"}))
    code, _, err = run(["whatif", str(bad), "--shock", "-5%"], capsys)
    assert code == 2
    assert str(bad) in err
    assert "cross_collateral" in err


def test_help_has_an_example() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "monitor", "whatif", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0
    assert "monitor whatif snapshot.json --shock -10%" in proc.stdout


HL_STATE = (
    Path(__file__).parents[1]
    / "fixtures"
    / "feeds"
    / "hyperliquid"
    / "rest_info_clearinghouseState_response.json"
)


async def test_live_form_fetches_from_a_loopback_venue() -> None:
    seen: list[dict[str, Any]] = []

    async def info(request: web.Request) -> web.Response:
        body = await request.json()
        seen.append(body)
        if body.get("type") == "userAbstraction":  # the account mode: a standard account
            mode = HL_STATE.parent / "rest_info_userAbstraction_response_disabled.json"
            return web.Response(text=mode.read_text(), content_type="application/json")
        return web.Response(text=HL_STATE.read_text(), content_type="application/json")

    app = web.Application()
    app.router.add_post("/info", info)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    addr = "0x" + "12" * 20
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "whatif",
            f"hyperliquid:{addr}",
            "--rest-url",
            f"http://127.0.0.1:{port}",
            "--shock",
            "-10%",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    finally:
        await runner.cleanup()
    assert proc.returncode == 0, err.decode()
    assert {"type": "clearinghouseState", "user": addr} in seen
    assert {"type": "userAbstraction", "user": addr} in seen
    doc = json.loads(out)
    assert doc["scenarios"] == ["--shock -10%"]
    for p in doc["prices"]:
        assert p["after"] == pytest.approx(p["before"] * 0.9)
    assert {s["account"] for s in doc["scopes"]} == {addr}


def test_live_form_unreachable_venue_exits_1(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "whatif",
            "hyperliquid:0x" + "12" * 20,
            "--rest-url",
            "http://127.0.0.1:9",
            "--timeout",
            "2",
            "--shock",
            "-5%",
        ]
    )
    _, err = capsys.readouterr()
    assert code == 1
    assert err.startswith("monitor whatif: hyperliquid: cannot reach the venue")


# -- issue 15: exact messages ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # a bare 10 was taken as +1000 %
        (
            ["--shock", "10"],
            "--shock 10: a bare number is a fraction (0.1 = 10%): write 10% for 10 percent, or 0.1",
        ),
        # the prefix used to be doubled: "monitor whatif: whatif: --price DOGE=1: ..."
        (["--price", "DOGE=1"], "--price DOGE=1: no position in 'DOGE' (held: BTC, ETH)"),
        (["--isolate", "ETH"], "--isolate ETH: expected SYMBOL=MARGIN"),
        (["--shock", "-150%"], "--shock -150%: a move must be above -100%"),
        (
            ["--target-distance", "15"],
            "--target-distance 15: a bare number is a fraction (0.1 = 10%): write 15% for "
            "15 percent, or 0.15",
        ),
        (
            ["--target-ratio", "50"],
            "--target-ratio 50: a bare number is a fraction (0.1 = 10%): write 50% for "
            "50 percent, or 0.5",
        ),
        (
            ["--target-ratio", "100%"],
            "--target-ratio 100%: a target margin ratio is between 0% and 100% (100% is "
            "liquidation)",
        ),
        (
            ["--target-distance", "abc"],
            "--target-distance abc: expected a percentage or a fraction such as 15% or 0.15",
        ),
    ],
)
def test_bad_flags_say_so_once_with_a_single_prefix(
    snapshot: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    code, out, err = run(["whatif", str(snapshot), *args], capsys)
    assert (code, out) == (2, "")
    assert err == f"monitor whatif: {message}\n"


def test_target_distance_prints_the_deposit_and_the_reduction(
    snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # equity 10 000, MM 500 (BTC) + 300 (ETH). 25 % below BTC's 50 000 is 37 500:
    # D = 800 − 500 + 375 − 1·(37 500 − 50 000) − 10 000 = 3 175 (ETH's own need is < 0).
    # Reduce BTC to q: 10 000 − 12 500·q ≥ 300 + 375·q → q ≤ 9 700 / 12 875 = 0.753398…
    # → cut 0.246602 (24.66 %); MM = 300 + 500·0.753398 = 676.70 → ratio 6.77 %
    code, out, err = run(["whatif", str(snapshot), "--target-distance", "25%"], capsys)
    assert code == 0, err
    tail = out.splitlines()[-3:]
    assert tail == [
        "to reach liquidation distance 25% on generic acct [cross]:",
        "  deposit 3,175.00 -> margin ratio 6.07%, nearest liquidation 25.00% away",
        "  or reduce BTC by 0.24660194 (24.66%) -> margin ratio 6.77%, nearest liquidation "
        "25.00% away",
    ]


def test_target_ratio_and_distance_together_and_as_json(
    snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # ratio 5 %: D = 800 / 0.05 − 10 000 = 6 000 (also clears 25 %: 3 175 < 6 000);
    # reduce BTC: 500·(1 − x) + 300 ≤ 500 → x = 0.6
    code, out, err = run(
        ["whatif", str(snapshot), "--target-ratio", "0.05", "--target-distance", "25%", "--json"],
        capsys,
    )
    assert code == 0, err
    doc = json.loads(out)
    assert doc["target"] == {"margin_ratio": 0.05, "liquidation_distance": 0.25}
    [fix] = doc["remedies"]
    assert (fix["scope"], fix["met"]) == ("cross", False)
    assert fix["deposit"] == pytest.approx(6_000.0)
    assert fix["after_deposit"]["margin_ratio"] == pytest.approx(0.05)
    assert fix["reduce"]["symbol"] == "BTC"
    assert fix["reduce"]["fraction"] == pytest.approx(0.6)
    assert fix["reduce"]["after"]["margin_ratio"] == pytest.approx(0.05)


def test_a_target_already_met_says_nothing_to_do(
    snapshot: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(["whatif", str(snapshot), "--target-ratio", "50%"], capsys)
    assert code == 0
    assert out.splitlines()[-2:] == [
        "to reach margin ratio 50% on generic acct [cross]:",
        "  already there (margin ratio 8.00%, nearest liquidation 18.59% away): nothing to do",
    ]
