"""``monitor run --replay``: the offline demo through the real engine, rules and delivery,
then ``status`` and ``history`` on the store it left."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from monitor.cli import main

ROOT = Path(__file__).parents[2]
CROSS = "hyperliquid:0x1111111111111111111111111111111111111111/cross"


@pytest.fixture
def demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The demo configuration and recording in a scratch directory (its store and the file
    channel land there)."""
    cfg = tmp_path / "config"
    cfg.mkdir()
    shutil.copy(ROOT / "config" / "demo.toml", cfg / "demo.toml")
    shutil.copy(ROOT / "config" / "demo_recording.jsonl", cfg / "demo_recording.jsonl")
    monkeypatch.chdir(tmp_path)
    return cfg


def test_demo_replay_fires_escalates_and_resolves_then_exits_0(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "run",
            "--config",
            str(demo / "demo.toml"),
            "--replay",
            str(demo / "demo_recording.jsonl"),
            "--log-format",
            "json",
        ]
    )
    out = capsys.readouterr()
    assert code == 0
    assert "notifications undelivered: 0" in out.err
    alerts = (demo.parent / "demo-out" / "alerts.txt").read_text()
    titles = [line for line in alerts.splitlines() if line.startswith("[")]
    # the crash: warnings then criticals on the cross pool; the rebound: resolves
    assert any(t.startswith("[WARNING]") for t in titles)
    assert any(t.startswith("[CRITICAL]") and "margin ratio" in t for t in titles)
    assert any(t.startswith("[RESOLVED]") for t in titles)
    first_critical = next(i for i, t in enumerate(titles) if t.startswith("[CRITICAL]"))
    last_resolved = max(i for i, t in enumerate(titles) if t.startswith("[RESOLVED]"))
    assert first_critical < last_resolved
    # the console channel printed the same alerts
    assert "[CRITICAL]" in out.out

    # status and history read the store the run left
    assert main(["status", "--config", str(demo / "demo.toml"), "--json"]) == 0
    status = json.loads(capsys.readouterr().out)
    scopes = {s["scope_key"]: s for s in status["scopes"]}
    assert CROSS in scopes
    assert scopes[CROSS]["active_alerts"] == []  # everything resolved by the end
    assert status["feeds"][0]["venue"] == "hyperliquid"
    assert main(["history", CROSS, "--config", str(demo / "demo.toml"), "--json"]) == 0
    samples = json.loads(capsys.readouterr().out)["samples"]
    ratios = [s["margin_ratio"] for s in samples]
    # calm (≈18 %), crash (above 70 %), rebound (≈19 %)
    assert ratios[0] == pytest.approx(0.18, abs=0.01)
    assert max(ratios) > 0.7
    assert ratios[-1] == pytest.approx(0.19, abs=0.01)
    assert main(["history", CROSS, "--config", str(demo / "demo.toml")]) == 0
    assert "█" in capsys.readouterr().out


def test_history_of_an_unknown_scope_exits_2_listing_the_known(
    demo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "run",
                "--config",
                str(demo / "demo.toml"),
                "--replay",
                str(demo / "demo_recording.jsonl"),
                "--log-format",
                "json",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["history", "nope:x/cross", "--config", str(demo / "demo.toml")]) == 2
    err = capsys.readouterr().err
    assert "unknown scope 'nope:x/cross'" in err and CROSS in err


def test_status_without_a_store_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "--store", str(tmp_path / "none.sqlite3")]) == 1
    assert "no store yet" in capsys.readouterr().err


def test_missing_recording_exits_2(demo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--config", str(demo / "demo.toml"), "--replay", "nope.jsonl"]) == 2
    assert "nope.jsonl" in capsys.readouterr().err
