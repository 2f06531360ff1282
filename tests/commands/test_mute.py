"""``monitor mute`` / ``monitor unmute``: persisted in the store, even while a daemon holds it."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.clock import SystemClock
from monitor.logs import reset_logging
from monitor.store.db import open_store
from monitor.store.mutes import active_mutes


@pytest.fixture(autouse=True)
def _logging_back_to_defaults() -> Iterator[None]:
    """The commands configure logging for the process; undo it for the next tests."""
    yield
    reset_logging()


def test_mute_list_unmute(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "m.db")
    before = SystemClock().now()
    assert (
        main(
            [
                "mute",
                "hyperliquid:0xabc",
                "--for",
                "2h",
                "--rule",
                "shock",
                "--store",
                db,
                "--reason",
                "rebalancing",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert out.startswith("muted hyperliquid:0xabc (rule shock) until ")
    assert out.rstrip().endswith("critical still sent")

    async def read() -> list[object]:
        store = await open_store(Path(db))
        try:
            return list(await active_mutes(store, SystemClock().now()))
        finally:
            await store.close()

    (m,) = asyncio.run(read())
    assert m.target == "hyperliquid:0xabc" and m.rule == "shock"  # type: ignore[attr-defined]
    assert m.reason == "rebalancing" and not m.critical  # type: ignore[attr-defined]
    # until = now + 2 h
    assert before + 7200 <= m.until <= SystemClock().now() + 7200  # type: ignore[attr-defined]

    assert main(["mute", "--list", "--store", db]) == 0
    assert capsys.readouterr().out.startswith("hyperliquid:0xabc  shock  until ")
    assert main(["unmute", "hyperliquid:0xabc", "--store", db]) == 0
    assert capsys.readouterr().out.strip() == "removed 1 mute of hyperliquid:0xabc"
    assert asyncio.run(read()) == []


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["mute", "not a target", "--for", "1h"], "not a target"),
        (["mute", "hl:0x1", "--for", "soon"], "duration"),
        (["mute", "hl:0x1"], "--for"),
        (["mute", "hl:0x1", "--for", "1h", "--rule", "margin"], "unknown rule 'margin'"),
    ],
)
def test_bad_arguments_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    assert main([*argv, "--store", str(tmp_path / "m.db")]) == 2
    assert words in capsys.readouterr().err


async def test_mute_while_the_daemon_holds_the_store(tmp_path: Path) -> None:
    db = tmp_path / "m.db"
    daemon = await open_store(db)  # holds the instance lock
    try:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "monitor",
            "mute",
            "feed:okx",
            "--for",
            "30m",
            "--critical",
            "--store",
            str(db),
            stdout=asyncio.subprocess.PIPE,
            env=dict(os.environ),
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
        assert proc.returncode == 0, out
        (m,) = await active_mutes(daemon, SystemClock().now())
        assert (m.target, m.critical) == ("feed:okx", True)
    finally:
        await daemon.close()


def test_an_absurd_duration_is_refused_before_anything_is_stored(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "s.sqlite3"
    assert main(["mute", "hyperliquid:0xabc", "--for", "99999999999d", "--store", str(store)]) == 2
    assert "at most 366 days" in capsys.readouterr().err
    assert main(["mute", "--list", "--store", str(store)]) == 0
