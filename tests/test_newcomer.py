"""A newcomer's first hour, scripted: the README's quick start, a configuration with the ten
mistakes people make first, a feed that never connects, a mute with a typo. Every message is
asserted as the newcomer reads it (issue: "The operator's surface")."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
from pathlib import Path

import pytest

from monitor.cli import main

ROOT = Path(__file__).resolve().parents[1]
ADDR = "0x1111111111111111111111111111111111111111"


def quick_start_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```(?:sh|bash|console)?\n(.*?)```", section, re.S)


def test_the_quick_start_has_two_blocks_the_demo_then_the_tests() -> None:
    demo, tests = quick_start_blocks()
    assert "monitor run --config config/demo.toml --replay config/demo_recording.jsonl" in demo
    assert "python -m pytest" in tests


def test_the_quick_starts_demo_runs_to_its_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the demo writes beside the repository (../demo-out from config/): run a copy
    (tmp_path / "config").mkdir()
    for name in ("demo.toml", "demo_recording.jsonl"):
        (tmp_path / "config" / name).write_bytes((ROOT / "config" / name).read_bytes())
    monkeypatch.chdir(tmp_path)
    code = main(["run", "--config", "config/demo.toml", "--replay", "config/demo_recording.jsonl"])
    err = capsys.readouterr().err
    assert code == 0
    assert "replay of config/demo_recording.jsonl finished" in err
    assert "notifications undelivered: 0" in err


BASE = f"""
[[accounts]]
id = "hyperliquid:{ADDR}"
label = "main desk"
"""

MISTAKES = [
    # (what the newcomer wrote, the line check-config answers)
    (
        "[rules.margin_ratio]\nwarning = 60\ncritical = 80",
        "rules.margin_ratio.warning: 60 is above 1 (100 %), a fraction that margin_ratio never "
        'needs (a margin ratio is maintenance / equity, 1 = liquidatable); write 0.6 or "60%"',
    ),
    (
        "[rules.drawdown]\nwarning = 80",
        "rules.drawdown.warning: 80 is above 1 (100 %), a fraction that drawdown never needs (a "
        'drawdown is (peak − equity) / peak, 1 = everything lost); write 0.8 or "80%"',
    ),
    (
        "[rules.liquidation_distance]\nwarning = 8",
        "rules.liquidation_distance.warning: 8 is above 1 (100 %), a fraction that "
        "liquidation_distance never needs (a liquidation distance is |mark − liq. price| / "
        'mark); write 0.08 or "8%"',
    ),
    (
        '[rules.accounts."hyperliquid:0x2222222222222222222222222222222222222222".margin_ratio]'
        "\nwarning = 0.5",
        "rules.accounts.hyperliquid:0x2222222222222222222222222222222222222222: no configured "
        "account is 'hyperliquid:0x2222222222222222222222222222222222222222' (configured: "
        f"hyperliquid:{ADDR})",
    ),
    (
        '[venues.hyperliquid]\nstale_afer = "15s"',
        "venues.hyperliquid.stale_afer: unknown key; did you mean 'stale_after'?",
    ),
    (
        '[daemon]\ndrain_deadline = "soon"',
        "daemon.drain_deadline: expected a duration like 30 (seconds), '15s', '5m', '2h' or "
        "'1d', got the string 'soon'",
    ),
    ('[[channels]]\nurl = "tgram://x"', "channels: expected a table, got a list"),
    (
        '[channels.tg]\nurl = "tgram://123:abc/456"\nmin_severity = "critcal"',
        "channels.tg.min_severity: expected info, warning or critical, got 'critcal'",
    ),
    (
        '[[accounts]]\nid = "binanceusdm:main"\napi_key = "AKIAREALKEYINFILE"\nsecret = "${S}"',
        "accounts[1].api_key:",
    ),
    ('[[accounts]]\nid = "hyperliquid:0x12"', "accounts[1].id: not a Hyperliquid address"),
    # an eleventh, met later: a webhook token apprise would drop without a word
    (
        '[channels.hook]\nurl = "json://hooks.example.com/in?token=AKIAREALKEYINFILE"',
        "channels.hook.url: apprise drops the query key 'token' of a json:// URL silently: write "
        "'?-token=…' (sent as a query parameter), '?+token=…' (sent as a header) or "
        "'?:token=…' (sent as a payload field)",
    ),
]


@pytest.mark.parametrize(("mistake", "answer"), MISTAKES)
def test_ten_first_mistakes_each_get_one_line_naming_file_key_and_fix(
    mistake: str, answer: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(BASE + "\n" + mistake + "\n")
    assert main(["check-config", str(cfg)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith(f"monitor check-config: {cfg}: {answer}")
    assert "AKIAREALKEYINFILE" not in err[0]  # a key pasted into the file is never echoed


def test_spot_binance_gets_a_note_pointing_to_the_perpetuals(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(BASE + "\n[venues.binance]\n")
    assert main(["check-config", str(cfg)]) == 0
    out = capsys.readouterr().out
    assert (
        "  [venues.binance]: ccxt's 'binance' is the spot exchange; its perpetual futures are "
        "'binanceusdm' (write [venues.binanceusdm] to follow perps)"
    ) in out.splitlines()


@pytest.mark.timeout(180)
async def test_a_feed_that_never_connects_is_down_with_its_reason_and_a_mute_typo_is_refused(
    tmp_path: Path,
) -> None:
    store = tmp_path / "s.sqlite3"
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        BASE
        + f"""
[venues.hyperliquid]
ws_url = "ws://127.0.0.1:9/ws"
rest_url = "http://127.0.0.1:9"

[store]
path = "{store}"

[daemon]
ready_timeout = "1s"
"""
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "daemon.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "run", "--config", str(cfg),
        stdout=log, stderr=log, env=env, cwd=tmp_path,
    )  # fmt: skip

    async def cli(*argv: str) -> tuple[int, str, str]:
        p = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", *argv,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )  # fmt: skip
        out, err = await p.communicate()
        return p.returncode or 0, out.decode(), err.decode()

    try:
        status = ""
        # a wall-clock deadline, not a count: on a loaded machine the daemon (and each status
        # process) may take many seconds to start
        deadline = asyncio.get_running_loop().time() + 120
        while asyncio.get_running_loop().time() < deadline:
            code, status, _ = await cli("status", "--config", str(cfg))
            if code == 0 and "connect failed" in status:
                break
            await asyncio.sleep(0.2)
        lines = status.splitlines()
        assert lines[0] == f"store: {store} ([store] of {cfg})"
        venue = next(ln for ln in lines if ln.startswith("hyperliquid "))
        # never connected: down (not "live"), with the reason the socket gave
        assert venue.split()[1] == "down"
        assert "connect failed" in venue
        assert venue.split()[4] == "—"  # no message ever came from it: no "last message"
        # a typo in the address: refused, with the account it probably meant
        typo = ADDR[:-1] + "2"
        code, _, err = await cli("mute", f"hyperliquid:{typo}", "--for", "1h", "--config", str(cfg))
        assert code == 2
        assert err.strip() == (
            f"monitor mute: unknown account 'hyperliquid:{typo}'; did you mean "
            f"'hyperliquid:{ADDR}' (main desk)? (--force to mute it anyway)"
        )
        # the label works as a target
        code, out, err = await cli("mute", "main desk", "--for", "1h", "--config", str(cfg))
        assert code == 0, err
        assert out.startswith(f"muted hyperliquid:{ADDR} (main desk) until ")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()
