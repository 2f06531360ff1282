"""``monitor status`` against real SQLite stores and real processes: it tells whether the
daemon runs, which store it read, and fits its tables in 120 columns."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from monitor.cli import main
from monitor.commands import status
from monitor.model.events import AccountSnapshot
from monitor.model.instruments import MaintenanceSchedule, MarginMode
from monitor.model.portfolio import Portfolio
from monitor.model.positions import Position
from monitor.store import history
from monitor.store.db import open_store

ADDR = "0x" + "1" * 36 + "2222"
NOW = 1_790_000_000.0  # 2026-09-21T13:33:20Z


def dead_pid() -> int:
    """The pid of a process that ran and was reaped: it no longer exists."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def make_store(
    path: Path, daemon: dict[str, object] | None, updated_at: float, *, alerts: int = 0
) -> None:
    """A store as the daemon leaves it: three scopes of one Hyperliquid account (a cross pool
    at a margin ratio of exactly 1, an empty cross pool, an isolated position) and a feed."""
    p = Portfolio()
    one_pct = MaintenanceSchedule.flat(0.01)
    # cross: BTC +1 at 50 000, 1 % → MM 500; collateral 500 → equity 500: ratio exactly 1
    p.apply(
        AccountSnapshot(
            "hyperliquid",
            ADDR,
            500.0,
            (Position("BTC", 1.0, 50_000.0, maintenance=one_pct, mark_price=50_000.0),),
        )
    )
    # a second account holding only an isolated SOL position; its cross pool holds 100
    sol = Position(
        "SOL",
        10.0,
        100.0,
        margin_mode=MarginMode.ISOLATED,
        isolated_margin=500.0,
        maintenance=one_pct,
        mark_price=100.0,
    )
    p.apply(AccountSnapshot("hyperliquid", ADDR[::-1], 100.0, (sol,)))
    names = [f"liquidation_distance:{'x' * 20}:{i}" for i in range(alerts)]
    statuses = []
    for r in p.risks(include_empty_cross=True):
        doc = history.status_doc(r, names if r.key.scope == "cross" else ())
        doc["ts"] = updated_at
        statuses.append((r.key, doc))
    store = await open_store(path)
    try:
        await history.record(store, [], statuses)
        if daemon is not None:
            await history.set_daemon_status(store, daemon, updated_at)
    finally:
        await store.close()


async def view_of(path: Path) -> history.StatusView:
    store = await open_store(path, lock=False)
    try:
        return await history.read_status(store)
    finally:
        await store.close()


def test_a_daemon_whose_process_is_gone_is_not_running_since_its_last_update(
    tmp_path: Path,
) -> None:
    # the issue: an exited daemon showed as "pid 8696, updated 18s ago"
    pid = dead_pid()
    assert not status.pid_alive(pid)
    state = status.daemon_state({"pid": pid}, NOW - 18, NOW)
    assert state == status.DaemonState(False, pid, NOW - 18, f"process {pid} is gone")


async def test_status_text_of_a_stopped_daemon(tmp_path: Path) -> None:
    pid = dead_pid()
    path = tmp_path / "monitor.sqlite3"
    await make_store(path, {"pid": pid, "summary": "3 scopes; 0 alerts firing"}, NOW - 18)
    text = status.render(await view_of(path), NOW, store=path, origin="--store")
    assert text.splitlines()[:4] == [
        f"store: {path} (--store)",
        f"daemon: not running since {iso(NOW - 18)} (process {pid} is gone)",
        "  its last summary: 3 scopes; 0 alerts firing",
        "  the figures below are as of then (18 s ago), not live",
    ]


async def test_a_live_process_that_stopped_writing_is_not_running(tmp_path: Path) -> None:
    path = tmp_path / "monitor.sqlite3"
    me = os.getpid()  # a process that certainly exists
    await make_store(path, {"pid": me, "summary": "ok"}, NOW - 65)
    text = status.render(await view_of(path), NOW)
    assert text.splitlines()[0] == (
        f"daemon: not running since {iso(NOW - 65)} (no update for 1 min 5 s; process {me} "
        "exists but is not writing)"
    )


async def test_a_running_daemon(tmp_path: Path) -> None:
    path = tmp_path / "monitor.sqlite3"
    me = os.getpid()
    await make_store(path, {"pid": me, "summary": "3 scopes"}, NOW - 1)
    text = status.render(await view_of(path), NOW)
    assert text.splitlines()[0] == f"daemon: running, pid {me}, updated 1 s ago: 3 scopes"


async def test_a_store_the_daemon_never_wrote_to(tmp_path: Path) -> None:
    path = tmp_path / "monitor.sqlite3"
    await make_store(path, None, NOW - 1)
    text = status.render(await view_of(path), NOW)
    assert text.splitlines()[0] == "daemon: not running (it never wrote a status to this store)"


async def test_ratio_of_one_and_empty_pools_are_worded_truthfully(tmp_path: Path) -> None:
    path = tmp_path / "monitor.sqlite3"
    await make_store(path, {"pid": os.getpid()}, NOW - 1)
    text = status.render(await view_of(path), NOW)
    rows = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    short = "0x1111…2222"
    # margin ratio 500 / 500 = 100 %: the liquidation boundary itself
    cross = rows[f"hyperliquid:{short}/cross"]
    assert cross.split()[1:6] == ["500.00", "100.0%", "LIQUIDATABLE", "past", "past"]
    # the isolated-only account's cross pool: 100 and no positions, not "LIQUIDATABLE"
    empty = rows[f"hyperliquid:{fmt_short(ADDR[::-1])}/cross"]
    assert empty.split()[1:5] == ["100.00", "no", "positions", "—"]
    # SOL isolated: equity 500, MM 10 → 2.0 %; P* = (500 − 1 000)/(0.1 − 10) = 50.505 → 49.5 %
    sol = rows[f"hyperliquid:{fmt_short(ADDR[::-1])}/isolated:SOL"]
    assert sol.split()[1:4] == ["500.00", "2.0%", "49.5%"]


def fmt_short(account: str) -> str:
    return f"{account[:6]}…{account[-4:]}"


async def test_every_line_fits_120_columns(tmp_path: Path) -> None:
    path = tmp_path / "monitor.sqlite3"
    summary = "; ".join(f"hyperliquid:{ADDR}/cross margin ratio 50%" for _ in range(4))
    await make_store(path, {"pid": dead_pid(), "summary": summary}, NOW - 5, alerts=4)
    text = status.render(await view_of(path), NOW, store=path, origin="--store")
    assert max(len(line) for line in text.splitlines()) <= 120
    assert "…" in text  # the alerts column was cut to fit
    assert f"{ADDR[:6]}…" in text


def test_status_command_reads_the_config_store_without_channel_secrets(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "state" / "monitor.sqlite3"
    pid = dead_pid()
    asyncio.run(make_store(path, {"pid": pid, "summary": "stopped"}, NOW))
    capsys.readouterr()  # the store's own log lines while it was made
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        '[store]\npath = "state/monitor.sqlite3"\n'
        '[channels.tg]\nurl = "tgram://${NOT_SET_IN_THIS_SHELL}/-100123"\n'
    )
    assert main(["status", "--config", str(cfg)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"store: {path} ([store] of {cfg})"
    assert out[1] == f"daemon: not running since {iso(NOW)} (process {pid} is gone)"
    assert main(["status", "--config", str(cfg), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["store"] == str(path)
    assert doc["daemon_running"] is False
    assert doc["daemon_not_running_because"] == f"process {pid} is gone"


def test_a_missing_store_names_where_its_path_came_from(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "none.sqlite3"
    assert main(["status", "--store", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"monitor status: {path} (--store): no store yet (has the daemon run?)\n"
    )
    assert not path.exists()  # reading never creates a store


def test_a_bad_config_is_one_line_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["status", "--config", str(tmp_path / "nope.toml")]) == 2
    assert capsys.readouterr().err == f"monitor status: {tmp_path / 'nope.toml'}: no such file\n"


@pytest.mark.parametrize("pid", [0, -1, 2**40])
def test_impossible_pids_are_not_alive(pid: int) -> None:
    assert not status.pid_alive(pid)


def test_a_status_without_a_pid_is_not_running() -> None:
    state = status.daemon_state({"summary": "x"}, NOW, NOW)
    assert state == status.DaemonState(False, None, NOW, "its status names no process")
