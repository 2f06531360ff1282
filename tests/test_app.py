"""``monitor run`` end to end, as a subprocess, against loopback venue servers and aiosmtpd.

The Hyperliquid stand-in speaks the venue's wire format (REST ``metaAndAssetCtxs`` and
``clearinghouseState``, WS subscriptions, ``activeAssetCtx`` pushes, pings). The test moves the
BTC price and reads the emails the daemon sends, the sd_notify datagrams it writes to a real
unix socket passed as ``NOTIFY_SOCKET``, and its exit codes.

The account: 1 BTC long, cross, entry 100,000, cross raw USD −90,000, so equity = price −
90,000 and maintenance = price / 80 (maxLeverage 40). Margin ratio at 100,000: 1,250/10,000 =
12.5 %; at 92,000: 1,150/2,000 = 57.5 % (warning at 50 %).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import sqlite3
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.notify.conftest import SmtpServer, free_port
from tests.venues.servers import Conn, HttpServer, WsServer, fixture, until

USER = "0x3333333333333333333333333333333333333333"
ROOT = Path(__file__).parents[1]


def account_state(price: float) -> dict[str, Any]:
    raw = -90_000.0
    return {
        "marginSummary": {
            "accountValue": str(raw + price),
            "totalNtlPos": str(price),
            "totalRawUsd": str(raw),
            "totalMarginUsed": str(price / 10),
        },
        "crossMarginSummary": {
            "accountValue": str(raw + price),
            "totalNtlPos": str(price),
            "totalRawUsd": str(raw),
            "totalMarginUsed": str(price / 10),
        },
        "crossMaintenanceMarginUsed": str(price / 80),
        "withdrawable": "0.0",
        "assetPositions": [
            {
                "type": "oneWay",
                "position": {
                    "coin": "BTC",
                    "szi": "1.0",
                    "leverage": {"type": "cross", "value": 10},
                    "entryPx": "100000.0",
                    "positionValue": str(price),
                    "unrealizedPnl": str(price - 100_000),
                    "returnOnEquity": "0.0",
                    "liquidationPx": None,
                    "marginUsed": str(price / 10),
                    "maxLeverage": 40,
                    "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"},
                },
            }
        ],
        "time": int(time.time() * 1000),
    }


@dataclass
class Venue:
    price: float = 100_000.0
    tick: float = 0.1
    conns: list[Conn] = field(default_factory=list)

    async def handler(self, conn: Conn) -> None:
        coins: list[str] = []
        pusher = asyncio.create_task(self._push(conn, coins))
        try:
            async for msg in conn.ws:
                conn.received.append(str(msg))
                d = json.loads(msg)
                if d.get("method") == "ping":
                    await conn.send({"channel": "pong"})
                    continue
                if d.get("method") != "subscribe":
                    continue
                sub = d["subscription"]
                await conn.send({"channel": "subscriptionResponse", "data": d})
                if sub["type"] == "activeAssetCtx":
                    coins.append(sub["coin"])
                elif sub["type"] == "clearinghouseState":
                    await conn.send(
                        {
                            "channel": "clearinghouseState",
                            "data": {
                                "dex": "",
                                "user": sub["user"],
                                "clearinghouseState": account_state(100_000.0),
                            },
                        }
                    )
        finally:
            pusher.cancel()

    async def _push(self, conn: Conn, coins: list[str]) -> None:
        base = fixture("hyperliquid", "ws_activeAssetCtx.json")
        while True:
            await asyncio.sleep(self.tick)
            for coin in list(coins):
                frame = json.loads(json.dumps(base))
                frame["data"]["coin"] = coin
                frame["data"]["ctx"]["markPx"] = str(self.price)
                frame["data"]["ctx"]["oraclePx"] = str(self.price)
                frame["data"]["ctx"]["funding"] = "0.0"
                await conn.send(frame)


def rest(http: HttpServer, venue: Venue) -> None:
    def info(body: str) -> tuple[int, str]:
        kind = json.loads(body)["type"]
        if kind == "metaAndAssetCtxs":
            meta, ctxs = fixture("hyperliquid", "rest_info_metaAndAssetCtxs_response.json")
            for asset, ctx in zip(meta["universe"], ctxs, strict=True):
                if asset["name"] == "BTC":  # the venue's current price, as the stream's
                    ctx["markPx"] = ctx["oraclePx"] = str(venue.price)
            return 200, json.dumps([meta, ctxs])
        if kind == "clearinghouseState":
            return 200, json.dumps(account_state(100_000.0))
        if kind == "userAbstraction":  # a standard account, as a new account answers
            return 200, '"default"'
        return 200, "[]"

    http.route("POST", "/info", info)


def write_config(path: Path, ws: str, http: str, smtp_port: int, warning: float = 0.5) -> None:
    path.write_text(f"""
[venues.hyperliquid]
ws_url = "{ws}"
rest_url = "{http}"
stale_after = 10
ping_interval = 1

[[accounts]]
id = "hyperliquid:{USER}"

[rules]
for = "0s"

[rules.margin_ratio]
warning = {warning}
warning_clear = {warning - 0.05}
critical = 0.95
critical_clear = 0.9

[rules.liquidation_distance]
enabled = false
[rules.shock]
enabled = false
[rules.drawdown]
enabled = false
[rules.funding_cost_pct]
enabled = false
[rules.funding_rate]
enabled = false
[rules.funding_runway]
enabled = false

[channels.mail]
url = "mailto://127.0.0.1:{smtp_port}?from=bot@example.com&to=alice@example.com"
min_severity = "warning"
timeout = "5s"

[store]
path = "state/monitor.sqlite3"

[logging]
level = "info"
format = "json"

[daemon]
drain_deadline = 5
ready_timeout = 20
""")


class Notify:
    """A real AF_UNIX datagram socket, as systemd passes in NOTIFY_SOCKET."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.messages: list[str] = []

    def poll(self) -> list[str]:
        while True:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except BlockingIOError:
                return self.messages

    def has(self, line: str) -> bool:
        return any(line in m.splitlines() for m in self.poll())

    def close(self) -> None:
        self.sock.close()


@dataclass
class Smtp:
    handler: SmtpServer
    controller: Any = None

    async def start(self) -> None:
        from aiosmtpd.controller import Controller

        self.controller = Controller(self.handler, hostname="127.0.0.1", port=self.handler.port)
        await asyncio.to_thread(self.controller.start)

    async def stop(self) -> None:
        await asyncio.to_thread(self.controller.stop)

    def subjects(self) -> list[str]:
        return [str(m["subject"]) for m in self.handler.messages]


@contextlib.asynccontextmanager
async def daemon(cfg: Path, sock: Path, tmp: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {
        **os.environ,
        "NOTIFY_SOCKET": str(sock),
        "WATCHDOG_USEC": "1000000",
        "PYTHONPATH": str(ROOT),
    }
    log = (tmp / "daemon.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "run",
        "--config",
        str(cfg),
        stdout=log,
        stderr=log,
        env=env,
        cwd=tmp,
    )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        log.close()


async def exited(proc: asyncio.subprocess.Process, limit: float) -> int:
    try:
        return await asyncio.wait_for(proc.wait(), limit)
    except TimeoutError:
        # leave a traceback of every thread in daemon.log (PYTHONFAULTHANDLER) to see why
        proc.send_signal(signal.SIGABRT)
        await proc.wait()
        raise


@pytest.mark.timeout(180)
async def test_daemon_end_to_end(tmp_path: Path) -> None:
    venue = Venue()
    http = HttpServer()
    rest(http, venue)
    smtp = Smtp(SmtpServer(free_port()))
    await smtp.start()
    notify = Notify(tmp_path / "notify.sock")
    cfg = tmp_path / "monitor.toml"
    try:
        async with WsServer(venue.handler) as ws, http:
            write_config(cfg, ws.url, http.url, smtp.handler.port)

            # -- start: READY once the account's snapshot is in, WATCHDOG from the loop ----
            async with daemon(cfg, notify.path, tmp_path) as proc:
                await until(lambda: notify.has("READY=1"), 30, "READY=1")
                await until(lambda: notify.has("WATCHDOG=1"), 10, "WATCHDOG=1")
                assert any(
                    line.startswith("STATUS=") for m in notify.poll() for line in m.splitlines()
                )
                # READY may come from the REST snapshot before the socket is accepted
                await until(lambda: bool(ws.conns), 10, "a websocket connection")
                first_conn = ws.conns[0]
                subs = [m for m in first_conn.received_json() if m.get("method") == "subscribe"]
                assert {"type": "clearinghouseState", "user": USER} in [
                    s["subscription"] for s in subs
                ]

                # -- a price path across the threshold: one fire, then one resolve ----------
                venue.price = 92_000.0
                await until(lambda: len(smtp.handler.messages) >= 1, 30, "the warning email")
                fired = smtp.subjects()[0]
                assert "WARNING" in fired and "margin ratio" in fired
                body = smtp.handler.messages[0].get_content()
                assert "57.5%" in body  # 1,150 / 2,000
                venue.price = 100_000.0
                await until(lambda: len(smtp.handler.messages) >= 2, 30, "the resolve email")
                assert "RESOLVED" in smtp.subjects()[1]
                await asyncio.sleep(1.0)
                assert len(smtp.handler.messages) == 2  # no repeat, no flapping

                # -- SIGHUP with a lower threshold: takes effect without a reconnect ---------
                write_config(cfg, ws.url, http.url, smtp.handler.port, warning=0.1)
                proc.send_signal(signal.SIGHUP)
                await until(lambda: len(smtp.handler.messages) >= 3, 30, "email after reload")
                assert "WARNING" in smtp.subjects()[2]  # 12.5 % ≥ 10 %
                assert len(ws.conns) == 1  # the feed connection was kept
                assert notify.has("RELOADING=1")

                # -- SIGTERM: STOPPING=1 and exit 0 within the drain deadline ----------------
                started = time.monotonic()
                proc.send_signal(signal.SIGTERM)
                assert await exited(proc, 15) == 0
                assert time.monotonic() - started < 10
                assert notify.has("STOPPING=1")

            # -- restart: nothing fires again (the warning is still active) ------------------
            sent = len(smtp.handler.messages)
            async with daemon(cfg, notify.path, tmp_path) as proc:
                notify.messages.clear()
                await until(lambda: notify.has("READY=1"), 30, "READY=1 after restart")
                await asyncio.sleep(2.0)
                assert len(smtp.handler.messages) == sent

                # -- mail server down, an alert is enqueued, SIGKILL before delivery ----------
                await smtp.stop()
                # the warning (≥ 10 %) is still active: go critical (≥ 95 %)
                venue.price = 90_600.0  # equity 600, MM 1,132.5: ratio 189 %
                await until(lambda: _pending(tmp_path) >= 1, 30, "an undelivered outbox row")
                proc.kill()
                await exited(proc, 10)

            smtp = Smtp(SmtpServer(smtp.handler.port))
            await smtp.start()
            venue.price = 90_600.0
            async with daemon(cfg, notify.path, tmp_path) as proc:
                await until(lambda: len(smtp.handler.messages) >= 1, 40, "the pending email")
                await asyncio.sleep(2.0)
                subjects = smtp.subjects()
                assert len(subjects) == 1, subjects  # delivered exactly once, nothing re-fired
                assert "CRITICAL" in subjects[0]
                proc.send_signal(signal.SIGTERM)
                assert await exited(proc, 15) == 0
        log = (tmp_path / "daemon.log").read_text()
        assert "alert.fired" in log
        assert "Traceback" not in log
    finally:
        notify.close()
        with contextlib.suppress(Exception):
            await smtp.stop()


def _pending(tmp: Path) -> int:
    import sqlite3

    db = tmp / "state" / "monitor.sqlite3"
    if not db.exists():
        return 0
    with contextlib.closing(sqlite3.connect(db, timeout=5)) as conn:
        try:
            row = conn.execute(
                "SELECT COUNT(*) FROM outbox WHERE status IN ('pending', 'sending')"
            ).fetchone()
        except sqlite3.OperationalError:
            return 0
    return int(row[0])


async def run_monitor(cfg: Path) -> tuple[int | None, str]:
    """``monitor run --config cfg`` as a subprocess that is expected to stop by itself."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "run",
        "--config",
        str(cfg),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    _, err = await proc.communicate()
    return proc.returncode, err.decode()


@pytest.mark.timeout(60)
async def test_bad_config_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[store]\npaht = "x"\n')
    code, err = await run_monitor(cfg)
    assert code == 2
    assert f"{cfg}: store.paht" in err
    assert "did you mean 'path'" in err


@pytest.mark.timeout(60)
async def test_second_instance_on_the_same_store_is_refused(tmp_path: Path) -> None:
    from monitor.store.db import open_store

    cfg = tmp_path / "m.toml"
    cfg.write_text('[store]\npath = "s.sqlite3"\n')
    store = await open_store(tmp_path / "s.sqlite3")
    try:
        code, err = await run_monitor(cfg)
    finally:
        await store.close()
    assert code == 3
    assert "s.sqlite3" in err


async def test_engine_evaluates_a_scope_only_when_its_band_is_left_or_swept(
    tmp_path: Path,
) -> None:
    """In process: small moves inside the scope's band cost no evaluation; a move across the
    margin-ratio warning is evaluated and fires; the sweep re-evaluates everything within
    SWEEP_INTERVAL seconds."""
    from monitor.alerts.engine import AlertState
    from monitor.alerts.rules import AlertRules, parse_rules
    from monitor.app import Daemon, build_engine
    from monitor.config import parse_config
    from monitor.engine.core import SWEEP_INTERVAL
    from monitor.model.events import AccountSnapshot, MarkPrice
    from monitor.model.instruments import MaintenanceSchedule
    from monitor.model.positions import Position
    from monitor.notify.delivery import DeliveryWorker
    from monitor.sdnotify import Notifier
    from monitor.store.db import open_store

    class NoSender:
        async def send(self, *args: Any) -> Any:
            raise AssertionError("no channel is configured")

    config = parse_config({"store": {"path": str(tmp_path / "s.sqlite3")}}, tmp_path / "m.toml")
    rules: AlertRules = parse_rules(
        {"for": 0, "margin_ratio": {"warning": 0.5, "warning_clear": 0.45}}, "t"
    )
    store = await open_store(tmp_path / "s.sqlite3")
    try:
        clock = _Clock()
        config = dataclasses.replace(config, rules=rules)
        engine = build_engine(config, AlertState(), started=0.0)
        worker = DeliveryWorker(store, [], NoSender(), clock)  # type: ignore[arg-type]
        daemon = Daemon(config, store, engine, worker, clock=clock, notifier=Notifier({}))
        # 1 BTC long at 100, cash −90: equity = price − 90, MM = price·0.01
        pos = Position(
            "BTC", 1.0, 100.0, maintenance=MaintenanceSchedule.flat(0.01), mark_price=100.0
        )
        await daemon.step([AccountSnapshot("generic", "a", 10.0, (pos,))], 0.0)
        assert daemon.engine.evaluated == 1
        # ratio ≈ 10 %, equity within 2 % of its peak (10.2 is a threshold: a new peak)
        for i, px in enumerate((100.1, 99.9, 100.15)):
            clock.t = 0.1 * (i + 1)
            await daemon.step([MarkPrice("generic", "BTC", px)], clock.t)
        assert daemon.engine.evaluated == 1
        # 90.9: equity 0.9, MM 0.909 → ratio 101 %: the band is left, evaluated, fires
        clock.t = 0.5
        await daemon.step([MarkPrice("generic", "BTC", 90.9)], clock.t)
        assert daemon.engine.evaluated == 2
        firing = {r.rule for r in daemon.engine.state.alerts.values() if r.status == "firing"}
        assert "margin_ratio" in firing
        # a frame's batch does not sweep (the last slice is 0.5 s old, under SWEEP_OVERDUE)
        clock.t = 0.9
        await daemon.step([MarkPrice("generic", "BTC", 90.9)], clock.t)
        assert daemon.engine.evaluated == 2
        # nothing moves, but the idle tick's sweep comes round within SWEEP_INTERVAL
        clock.t = 1.0 + SWEEP_INTERVAL
        await daemon.step([], clock.t)
        assert daemon.engine.evaluated == 3
    finally:
        await store.close()


@pytest.mark.timeout(60)
async def test_unwritable_store_is_one_clear_fatal_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[store]\npath = "{blocker}/monitor.sqlite3"\n')
    code, err = await run_monitor(cfg)
    assert code == 1
    lines = [ln for ln in err.splitlines() if ln.startswith("monitor run:")]
    assert len(lines) == 1 and str(blocker) in lines[0]


# -- restarts and reloads, in process, on a real store ---------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(0)


class _NoSender:
    async def send(self, *args: Any) -> Any:
        raise AssertionError("no channel is configured")


async def _daemon(tmp: Path, doc: dict[str, Any] | None = None) -> Any:
    from monitor.app import Daemon, build_engine
    from monitor.config import parse_config
    from monitor.notify.delivery import DeliveryWorker
    from monitor.sdnotify import Notifier
    from monitor.shell import restore_alert_state
    from monitor.store.db import open_store

    base: dict[str, Any] = {"store": {"path": str(tmp / "s.sqlite3")}, "rules": {"for": 0}}
    config = parse_config({**base, **(doc or {})}, tmp / "m.toml")
    store = await open_store(tmp / "s.sqlite3")
    clock = _Clock()
    engine = build_engine(config, await restore_alert_state(store, clock.now()), started=0.0)
    worker = DeliveryWorker(store, [], _NoSender(), clock)  # type: ignore[arg-type]
    daemon = Daemon(config, store, engine, worker, clock=clock, notifier=Notifier({}))
    return daemon, store, clock


def _firing(daemon: Any) -> set[str]:
    return {k for k, r in daemon.engine.state.alerts.items() if r.status == "firing"}


def _near(symbol: str, mode: str = "cross") -> Any:
    from monitor.model.instruments import MaintenanceSchedule, MarginMode
    from monitor.model.positions import Position

    # 1 long at 100, MM 1 %; with 10 of collateral P* = 90.9 (9 % away: a warning)
    return Position(
        symbol,
        1.0,
        100.0,
        MarginMode(mode),
        isolated_margin=10.0 if mode == "isolated" else None,
        maintenance=MaintenanceSchedule.flat(0.01),
        mark_price=100.0,
    )


async def test_after_a_restart_alerts_of_positions_closed_meanwhile_resolve(
    tmp_path: Path,
) -> None:
    from monitor.model.events import AccountSnapshot

    d, store, _ = await _daemon(tmp_path)
    await d.step(
        [AccountSnapshot("generic", "a", 10.0, (_near("BTC"), _near("ETH", "isolated")))], 0.0
    )
    assert {
        "liquidation_distance|generic:a/cross#BTC",
        "liquidation_distance|generic:a/isolated:ETH#ETH",
    } <= _firing(d)
    await store.close()
    # the process restarts; meanwhile both positions were closed
    d, store, clock = await _daemon(tmp_path)
    assert "liquidation_distance|generic:a/cross#BTC" in _firing(d)  # restored
    clock.t = 1000.0
    await d.step([AccountSnapshot("generic", "a", 500.0, ())], 1000.0)
    assert not any(k.endswith(("#BTC", "#ETH")) or "isolated:ETH" in k for k in _firing(d))
    assert d.engine.transitions["resolved"] >= 2
    await store.close()


async def test_a_restart_does_not_inherit_feed_staleness(tmp_path: Path) -> None:
    from monitor.model.events import AccountSnapshot, FeedState, FeedStatus, MarkPrice

    d, store, _ = await _daemon(tmp_path, {"daemon": {"stale_alert_after": 0.001}})
    await d.step([FeedStatus("generic", "prices", FeedState.STALE, "silent")], 0.0)
    assert d.engine.state.stale
    await store.close()
    d, store, _ = await _daemon(tmp_path)
    assert d.engine.state.stale == {}
    assert not any(k.startswith("feed_stale") for k in _firing(d))
    # so the venue's threshold alerts are not held: a position near liquidation fires
    await d.step([AccountSnapshot("generic", "a", 10.0, (_near("BTC"),))], 1.0)
    await d.step([MarkPrice("generic", "BTC", 92.0)], 2.0)
    assert "liquidation_distance|generic:a/cross#BTC" in _firing(d)
    await store.close()


async def test_a_reload_without_a_manual_account_resolves_its_alerts(tmp_path: Path) -> None:
    manual = {
        "accounts": [
            {
                "venue": "generic",
                "name": "old",
                "cross_collateral": 10.0,
                "positions": [
                    {
                        "symbol": "BTC",
                        "size": 1.0,
                        "entry_price": 100.0,
                        "mark_price": 100.0,
                        "maintenance": {"rate": 0.01},
                    }
                ],
            }
        ]
    }
    d, store, clock = await _daemon(tmp_path, manual)
    await d.step(d.manual_snapshots(), 0.0)
    assert "liquidation_distance|generic:old/cross#BTC" in _firing(d)
    cfg = tmp_path / "m.toml"
    cfg.write_text(f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n[rules]\nfor = 0\n')
    assert d.reload(cfg, {})
    clock.t = 5.0
    await d.step([], 5.0)
    assert not any("generic:old" in k for k in _firing(d))
    assert d.engine.transitions["event"] == 0  # a removed account is not a liquidation
    assert d.engine.portfolio.scope_keys() == []
    # and its scope leaves `status` at once: the step removed it
    assert not d.engine.ratios
    assert "generic:old/cross" in d.pending.vanished
    await store.close()


async def test_a_reload_reads_the_edited_account_file_and_keeps_it_when_broken(
    tmp_path: Path,
) -> None:
    import json

    def book(collateral: float) -> str:
        position = {
            "symbol": "BTC",
            "size": 1.0,
            "entry_price": 100.0,
            "mark_price": 100.0,
            "maintenance": {"rate": 0.01},
        }
        account = {"venue": "generic", "name": "f", "cross_collateral": collateral}
        return json.dumps([{**account, "positions": [position]}])

    (tmp_path / "book.json").write_text(book(10.0))
    d, store, clock = await _daemon(tmp_path, {"accounts": [{"file": "book.json"}]})
    await d.step(d.manual_snapshots(), 0.0)
    assert "liquidation_distance|generic:f/cross#BTC" in _firing(d)
    cfg = tmp_path / "m.toml"
    cfg.write_text(
        f'[store]\npath = "{tmp_path / "s.sqlite3"}"\n[rules]\nfor = 0\n'
        '[[accounts]]\nfile = "book.json"\n'
    )
    # a broken edit keeps the running book
    (tmp_path / "book.json").write_bytes(b"[{")
    assert not d.reload(cfg, {})
    assert d.manual_snapshots()[0].cross_collateral == 10.0
    # the collateral topped up in the file: SIGHUP, and the alert resolves
    (tmp_path / "book.json").write_text(book(1000.0))
    assert d.reload(cfg, {})
    assert d.manual_snapshots()[0].cross_collateral == 1000.0
    clock.t = 5.0
    await d.step(d.inbox.get_nowait(), 5.0)  # what the reload queued: the book's snapshots
    assert not any("generic:f" in k for k in _firing(d))
    await store.close()


async def test_a_flush_started_while_another_runs_never_leaves_older_figures_behind(
    tmp_path: Path,
) -> None:
    """Shutdown's last flush can start while the status loop's (shielded, so it runs on)
    is still writing a large book in transactions of 1,000 rows: the older flush's later
    transactions must not overwrite the newer figures."""
    from monitor.model.events import AccountSnapshot
    from monitor.store import history

    d, store, clock = await _daemon(tmp_path)
    names = [f"a{i:04d}" for i in range(2500)]

    async def book(collateral: float, t: float) -> None:
        clock.t = t
        await d.step([AccountSnapshot("generic", n, collateral, (_near("BTC"),)) for n in names], t)
        while d.engine.busy:  # evaluated over several steps (the evaluation budget)
            await d.step([], t)

    await book(10.0, 0.0)
    assert len(d.pending.statuses) == len(names)
    statuses = dict(d.pending.statuses)
    older = asyncio.ensure_future(d.flush())  # the status loop's
    await asyncio.sleep(0)
    # the steps meanwhile: every scope's figures newer (as a step's pending statuses)
    d.pending.statuses = {k: (r, {**doc, "equity": 500.0}) for k, (r, doc) in statuses.items()}
    await d.flush()  # shutdown's
    await older
    view = await history.read_status(store)
    equities = {doc["equity"] for doc in view.scopes}
    assert equities == {500.0}, f"{len(view.scopes)} scopes, equities {sorted(equities)}"
    await store.close()


async def test_replay_clock_runs_on_after_the_recording_so_retries_come_due() -> None:
    from monitor.app import ReplayClock

    clock = ReplayClock(0.0)
    clock.t = 1_778_000_000.0
    assert clock.now() == 1_778_000_000.0
    await asyncio.sleep(0.02)
    assert clock.now() == 1_778_000_000.0  # the recording's time, not the wall's
    clock.release()
    await asyncio.sleep(0.05)
    assert clock.now() >= 1_778_000_000.0 + 0.04


async def test_a_feed_that_stops_or_crashes_is_reported_down_and_restarted(
    tmp_path: Path,
) -> None:
    """A feed ending (a ccxt venue with nothing to watch) or crashing must not stop the
    daemon: it is reported down, started again, and reported recovered once data flows."""
    from monitor.app import _supervise
    from monitor.model.events import FeedState, FeedStatus, MarkPrice

    class Flaky:
        venue = "flaky"

        def __init__(self) -> None:
            self.runs = 0

        async def run(self, emit: Any) -> None:
            self.runs += 1
            if self.runs == 1:
                return  # nothing to watch
            if self.runs == 2:
                raise RuntimeError("a bug")
            emit(MarkPrice("flaky", "X", 1.0))
            await asyncio.Event().wait()

    d, store, _ = await _daemon(tmp_path)
    feed = Flaky()
    task = asyncio.create_task(_supervise(feed, d))
    try:
        await until(lambda: feed.runs >= 3 and len(d.inbox) >= 4, 5.0, "three runs")
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()
    events = d.inbox.get_nowait()
    states = [(e.state, e.detail[:20]) for e in events if isinstance(e, FeedStatus)]
    assert states[0] == (FeedState.DOWN, "the feed stopped (no")
    assert states[1][0] is FeedState.DOWN and "a bug" in states_detail(events)
    assert any(isinstance(e, MarkPrice) for e in events)
    assert states[-1][0] is FeedState.RECOVERED


def states_detail(events: list[Any]) -> str:
    from monitor.model.events import FeedStatus

    return " ".join(e.detail for e in events if isinstance(e, FeedStatus))


async def test_a_flush_that_fell_behind_writes_its_samples_in_larger_transactions(
    tmp_path: Path,
) -> None:
    """A flush covering many seconds of steps (the flushes fell behind the engine, as in a
    crash at 10⁶ positions) writes more samples a transaction, so the history catches up
    instead of leaving its backlog to the shutdown; the status rows stay 250 a transaction
    (a flush behind writes each scope's latest only, while the engine needs the time)."""
    from monitor.app import FLUSH_CATCH_UP, flush_rows
    from monitor.model.events import AccountSnapshot
    from monitor.store import history

    # the span since the previous flush started: its duration, then the loop's 1 s sleep
    rows = history.ROWS_PER_TRANSACTION
    assert flush_rows(1.0) == flush_rows(0.2) == flush_rows(0.0) == rows
    assert flush_rows(1.2) == int(1.2 * rows)  # a flush of 0.2 s
    assert flush_rows(4.0) == 4 * rows  # the previous one took 3 s: the flushes fell behind
    assert flush_rows(1e6) == int(FLUSH_CATCH_UP * rows)

    d, store, clock = await _daemon(tmp_path)
    names = [f"a{i:04d}" for i in range(900)]
    begun: list[str] = []

    async def book(collateral: float, t: float) -> tuple[int, int]:
        """(rows the flush writes, transactions it takes for them)"""
        clock.t = t
        await d.step([AccountSnapshot("generic", n, collateral, (_near("BTC"),)) for n in names], t)
        while d.engine.busy:
            await d.step([], t)
        rows = len(d.pending.statuses) + len(d.pending.samples)
        begun.clear()
        await d.flush()
        return rows, len(begun) - 1  # less the daemon status row (this daemon has no feed)

    try:
        await store.conn.set_trace_callback(
            lambda sql: begun.append(sql) if sql.startswith("BEGIN") else None
        )
        # the first flush covers one interval: 250 rows a transaction (the 900 samples in
        # 4, the last with 100 status rows; the other 800 status rows in 4 more)
        rows, transactions = await book(10.0, 1.0)
        assert rows == 2 * len(names)  # a status row and a sample a scope
        assert transactions == 8
        # the next covers 4 s of steps (the flush before took 3 s): the 900 samples in one
        # transaction (up to 1,000), then the status rows 250 at a time (4)
        rows, transactions = await book(20.0, 5.0)
        assert rows == 2 * len(names)
        assert transactions == 1 + 4
        await store.conn.set_trace_callback(lambda sql: None)
        assert len((await history.read_status(store)).scopes) == len(names)
    finally:
        await store.close()


async def test_the_status_loop_checkpoints_the_store(tmp_path: Path) -> None:
    """Each turn of the status loop, after its flush, copies the WAL into the database file
    (the live daemon's own commits leave that to it): the flushed status row reaches the
    file itself, read here without the WAL."""
    from monitor.model.events import AccountSnapshot

    d, store, _ = await _daemon(tmp_path)
    path = tmp_path / "s.sqlite3"
    try:
        await store.checkpoint_apart()
        await d.step([AccountSnapshot("generic", "a", 1_000.0, (_near("BTC"),))], 0.0)
        assert _status_rows_in_file(path) == 0  # in the WAL only, if anywhere yet
        loop = asyncio.create_task(d.status_loop())
        try:
            await until(lambda: _status_rows_in_file(path) == 1, 5, "the row in the file")
        finally:
            loop.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loop
    finally:
        await store.close()


async def test_a_failing_checkpoint_is_reported_once_until_one_succeeds(tmp_path: Path) -> None:
    from structlog.testing import capture_logs

    d, store, _ = await _daemon(tmp_path)
    path = tmp_path / "s.sqlite3"
    try:
        os.rename(path, tmp_path / "away.sqlite3")
        with capture_logs() as logs:
            for _ in range(3):
                await d.checkpoint()  # never raises: the writes stop a daemon, not this
            os.rename(tmp_path / "away.sqlite3", path)
            await d.checkpoint()
            await d.checkpoint()
        events = [e["event"] for e in logs if e["event"].startswith("store.checkpoint")]
        assert events == ["store.checkpoint_failed", "store.checkpoint_recovered"]
        assert "moved or deleted" in logs[0]["error"]
    finally:
        await store.close()


def _status_rows_in_file(path: Path) -> int:
    """Scope status rows in the database file itself, its WAL ignored (``immutable``)."""
    conn = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM scope_status").fetchone()[0])
    except sqlite3.OperationalError:  # not even the schema is in the file yet
        return 0
    finally:
        conn.close()
