"""The last gasp through a whole ``monitor run`` (issue 10 follow-up): the store becomes
unusable while the daemon runs → one direct message to a loopback webhook (apprise
``json://``) saying the store failed, exit code 1, and neither the message nor the log holds
the channel's secret.

Two real ways for a running daemon's store to fail, without root:

* the disk is full, as the kernel says it to this process: its file-size limit
  (``RLIMIT_FSIZE``, set on the running process with ``prlimit``) drops to 1 byte, so every
  write to the database or its WAL past the first byte fails with ``EFBIG`` (Python ignores
  ``SIGXFSZ``), which SQLite reports as "disk I/O error";
* the database file is replaced by a directory under the daemon (an operator's mistake, a
  restore gone wrong). In rollback-journal mode SQLite notices that the path no longer names
  the file it has open and refuses every write ("attempt to write a readonly database",
  ``SQLITE_READONLY_DBMOVED``); in the store's WAL mode it does not, and the daemon goes on
  writing to a file nobody will open again: that test is an expected failure until the store
  checks its file itself.

Permissions (a read-only file or directory) are not tried: the tests may run as root, which
they do not stop, and a file already open stays writable anyway.

The daemon writes its status every ``STATUS_INTERVAL`` (1 s), so the failure surfaces within
about a second. Its output goes to pipes, not files: pipes are not limited by
``RLIMIT_FSIZE``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import resource
import sqlite3
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from monitor.notify.last_gasp import TITLE
from tests.notify.conftest import WebhookServer

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "hook-s3cr3t-0a1b2c3d4e5f"  # the webhook's secret path segment, given by ${HOOK_TOKEN}


def config(tmp: Path, hook: WebhookServer) -> Path:
    cfg = tmp / "monitor.toml"
    cfg.write_text(
        f"""
[[accounts]]
venue = "generic"
name = "desk"
cross_collateral = 1000.0
[[accounts.positions]]
symbol = "BTC"
size = 1.0
entry_price = 10000.0
mark_price = 9500.0
maintenance = {{ rate = 0.05 }}

[channels.hook]
url = "{hook.url()}/${{HOOK_TOKEN}}"

[store]
path = "{tmp / "state" / "monitor.sqlite3"}"

[logging]
level = "info"
format = "json"
"""
    )
    return cfg


class Daemon:
    """``monitor run`` as a subprocess; its stdout and stderr lines collected from pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        assert proc.stdout is not None and proc.stderr is not None
        self.readers = [
            asyncio.create_task(self._read(proc.stdout)),
            asyncio.create_task(self._read(proc.stderr)),
        ]

    async def _read(self, stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            self.lines.append(raw.decode(errors="replace"))

    def events(self, name: str) -> list[dict[str, Any]]:
        out = []
        for line in self.lines:
            try:
                doc = json.loads(line)
            except ValueError:
                continue
            if isinstance(doc, dict) and doc.get("event") == name:
                out.append(doc)
        return out

    async def until(self, what: Callable[[], object], limit: float = 30.0) -> None:
        for _ in range(int(limit / 0.05)):
            if what():
                return
            if self.proc.returncode is not None:
                break
            await asyncio.sleep(0.05)
        raise AssertionError(f"never happened; output:\n{''.join(self.lines)[-4000:]}")

    async def exit_code(self, limit: float) -> int:
        code = await asyncio.wait_for(self.proc.wait(), limit)
        await asyncio.gather(*self.readers)
        return code


@pytest.fixture
async def hook() -> AsyncIterator[WebhookServer]:
    server = WebhookServer()
    await server.start()
    yield server
    await server.stop()


@contextlib.asynccontextmanager
async def start(tmp: Path, hook: WebhookServer) -> AsyncIterator[Daemon]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HOOK_TOKEN": TOKEN}
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "run", "--config", str(config(tmp, hook)),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=tmp,
    )  # fmt: skip
    daemon = Daemon(proc)
    try:
        # started, and a status written since: the store works before it is broken
        await daemon.until(lambda: daemon.events("daemon.started") and _status_written(tmp))
        yield daemon
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for reader in daemon.readers:
            reader.cancel()


def _status_written(tmp: Path) -> bool:
    db = tmp / "state" / "monitor.sqlite3"
    if not db.is_file():
        return False
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
            return "daemon_status" in tables and bool(
                conn.execute("SELECT count(*) FROM daemon_status").fetchone()[0]
            )
    except sqlite3.Error:
        return False


async def gasped(daemon: Daemon, hook: WebhookServer) -> dict[str, Any]:
    """The daemon exits 1 after one last-gasp post; returns that post's document."""
    assert await daemon.exit_code(15.0) == 1
    gasps = [(path, doc) for path, doc in hook.posts if doc.get("title") == TITLE]
    assert len(gasps) == 1, hook.posts
    [(path, doc)] = gasps
    assert path == f"/hook/{TOKEN}"  # the configured URL, secret and all, was used...
    text = json.dumps(doc)
    assert TOKEN not in text  # ...but the message never shows the secret
    assert doc["type"] == "failure"
    assert "cannot write its store and is exiting (code 1)" in doc["message"]
    output = "".join(daemon.lines)
    assert TOKEN not in output  # nor does the log
    [logged] = daemon.events("daemon.last_gasp")
    assert logged["sent"] == 1 and logged["channels"] == 1
    return doc


@pytest.mark.timeout(90)
async def test_a_disk_full_under_a_running_daemon_sends_one_last_gasp_and_exits_1(
    tmp_path: Path, hook: WebhookServer
) -> None:
    async with start(tmp_path, hook) as daemon:
        _, hard = resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE)
        resource.prlimit(daemon.proc.pid, resource.RLIMIT_FSIZE, (1, hard))
        doc = await gasped(daemon, hook)
        store = tmp_path / "state" / "monitor.sqlite3"
        assert f"Error: store {store}: disk I/O error" in doc["message"]


@pytest.mark.timeout(90)
async def test_a_store_replaced_by_a_directory_sends_one_last_gasp_and_exits_1(
    tmp_path: Path, hook: WebhookServer
) -> None:
    store = tmp_path / "state" / "monitor.sqlite3"
    async with start(tmp_path, hook) as daemon:
        store.rename(tmp_path / "state" / "moved.sqlite3")
        store.mkdir()
        doc = await gasped(daemon, hook)
        assert f"Error: store {store}: " in doc["message"]
        assert "replaced" in doc["message"]
