"""Review: ``monitor run`` with an account read by a read-only API key, end to end, as a
subprocess against the loopback Binance USDⓈ-M venue (tests/venues/cex/binance_mock.py):
signed REST, listen key, user-data stream. The test opens, resizes and closes a position on
the venue and reads ``monitor status`` (the daemon's store), the daemon's log and the
notifications written by a ``monitorfile://`` channel."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp import web

from tests.daemon_config import alerts, file_channel_and_store, margin_ratio_rules
from tests.venues.cex import test_binance as tb
from tests.venues.cex import test_bybit as ty
from tests.venues.cex.binance_mock import BinanceMock
from tests.venues.cex.bybit_mock import BybitMock
from tests.venues.servers import until

ROOT = Path(__file__).parents[1]


def write_config(
    path: Path, mock: BinanceMock, *, warning: float, stale_alert_after: str = "120s"
) -> None:
    rules = margin_ratio_rules(warning, warning * 0.9)
    rest = file_channel_and_store(ready_timeout=10, stale_alert_after=stale_alert_after)
    path.write_text(f"""

[[accounts]]
id = "binanceusdm:main"
api_key = "${{BN_KEY}}"
secret = "${{BN_SECRET}}"
rest_url = "{mock.url}"
ws_url = "{mock.ws_url}/ws"

{rules}{rest}""")


@contextlib.asynccontextmanager
async def daemon(cfg: Path, tmp: Path) -> AsyncIterator[asyncio.subprocess.Process]:
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "BN_KEY": tb.KEY,
        "BN_SECRET": tb.SECRET,
        "BY_KEY": ty.KEY,
        "BY_SECRET": ty.SECRET,
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
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        log.close()


async def status_until(cfg: Path, *want: str, limit: float = 10.0) -> str:
    """``monitor status`` once it shows every string of ``want`` (the daemon writes its
    status every second), else the last output."""
    loop = asyncio.get_running_loop()
    end = loop.time() + limit
    while True:
        out = await status(cfg)
        if all(w in out for w in want) or loop.time() > end:
            return out
        await asyncio.sleep(0.5)


async def status(cfg: Path, *extra: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "monitor",
        "status",
        "--config",
        str(cfg),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    out, _ = await proc.communicate()
    return out.decode()


def assert_no_secret(tmp: Path, *texts: str) -> None:
    """Neither the key nor the secret in the log, the notifications, any status output or
    anywhere in the store's bytes (outbox, alert state, feed details)."""
    blobs = [*texts, (tmp / "daemon.log").read_text(), alerts(tmp)]
    blobs += [f.read_bytes().decode("latin-1") for f in (tmp / "state").iterdir()]
    for blob in blobs:
        for secret in (tb.KEY, tb.SECRET, ty.KEY, ty.SECRET):
            assert secret not in blob and secret[:12] not in blob


@pytest.mark.timeout(120)
async def test_a_key_account_without_a_price_feed_alerts_on_its_margin_ratio_and_resolves_on_close(
    tmp_path: Path,
) -> None:
    """Only an ``[[accounts]]`` key (the README's example): before the fix the venue's native
    price feed started with no symbols, reported its connection ``down`` and so held every
    alert of the venue: the account's margin ratio crossed the warning and nothing fired.

    Wallet 10,000 USDT; 1 BTC long at 60,000, mark 60,000: notional 60,000, bracket 2
    (0.5 %, deduction 50): MM = 300 − 50 = 250; ratio 250 / 10,000 = 2.5 % ≥ 2 % (warning)."""
    cfg = tmp_path / "monitor.toml"
    async with BinanceMock(tb.KEY, tb.SECRET) as mock:
        write_config(cfg, mock, warning=0.02)
        async with daemon(cfg, tmp_path):
            await until(
                lambda: "daemon.ready" in (tmp_path / "daemon.log").read_text(), 30, "ready"
            )
            await until(lambda: bool(mock.sockets), 30, "the account stream")
            await mock.open("BTCUSDT", 1.0, 60_000.0)
            await until(lambda: "FIRING WARNING" in alerts(tmp_path), 30, "the warning")
            shown = await status_until(cfg, "binanceusdm:main/cross", "warning:margin_ratio")
            assert "binanceusdm:main/cross" in shown and "2.5%" in shown, shown
            assert "warning:margin_ratio" in shown, shown
            assert " down " not in shown, shown  # no feed reported down
            await mock.close("BTCUSDT", 60_000.0)
            await until(lambda: "RESOLVED" in alerts(tmp_path), 30, "the resolve")
            # the status is written every second, after the alert: wait for the flush
            loop = asyncio.get_running_loop()
            end = loop.time() + 10.0
            while True:
                closed = await status(cfg, "--json")
                (scope,) = json.loads(closed)["scopes"]
                if scope["positions"] == 0 or loop.time() > end:
                    break
                await asyncio.sleep(0.5)
            assert scope["positions"] == 0 and scope["equity"] == pytest.approx(10_000.0)
        assert_no_secret(tmp_path, shown, closed)


@pytest.mark.timeout(120)
async def test_a_key_account_follows_the_mark_of_each_rest_snapshot(tmp_path: Path) -> None:
    """Before the fix a snapshot's mark only seeded the instrument's price the first time,
    so with no price feed the position was priced at its first mark forever.

    1 BTC long at 60,000 on a 10,000 wallet: ratio 2.5 % (< 5 %, no alert). The mark falls
    to 52,000 (no trade; an ACCOUNT_UPDATE asks for a REST re-snapshot): equity 10,000 −
    8,000 = 2,000; notional 52,000, MM = 260 − 50 = 210; ratio 210 / 2,000 = 10.5 % ≥ 5 %."""
    cfg = tmp_path / "monitor.toml"
    async with BinanceMock(tb.KEY, tb.SECRET) as mock:
        write_config(cfg, mock, warning=0.05)
        async with daemon(cfg, tmp_path):
            await until(
                lambda: "daemon.ready" in (tmp_path / "daemon.log").read_text(), 30, "ready"
            )
            await until(lambda: bool(mock.sockets), 30, "the account stream")
            await mock.open("BTCUSDT", 1.0, 60_000.0)
            await asyncio.sleep(4)  # the stream update, then its REST re-snapshot (2 s)
            first = await status_until(cfg, "2.5%")
            assert "10,000.00" in first and "2.5%" in first, first
            assert alerts(tmp_path) == ""
            mock.marks["BTCUSDT"] = 52_000.0
            await mock.account_update("FUNDING_FEE", ["BTCUSDT"])
            await until(lambda: "FIRING WARNING" in alerts(tmp_path), 30, "the warning")
            shown = await status_until(cfg, "2,000.00", "10.5%")
            assert "2,000.00" in shown and "10.5%" in shown, shown


@pytest.mark.timeout(120)
async def test_a_trading_key_is_refused_down_with_its_account_named_and_masked(
    tmp_path: Path,
) -> None:
    """A key that can trade futures: the account is ``down`` naming it, no scope is shown,
    the key never appears whole."""
    cfg = tmp_path / "monitor.toml"
    async with BinanceMock(tb.KEY, tb.SECRET) as mock:
        mock.restrictions["enableFutures"] = True
        await mock.open("BTCUSDT", 1.0, 60_000.0)
        write_config(cfg, mock, warning=0.02)
        async with daemon(cfg, tmp_path):
            await until(lambda: "keys.down" in (tmp_path / "daemon.log").read_text(), 30, "down")
            await asyncio.sleep(1.5)
            shown = await status(cfg)
            assert "binanceusdm/account:main" in shown and "down" in shown, shown
            assert "binanceusdm:main/cross" not in shown, shown
            assert mock.calls("GET", "/fapi/v2/positionRisk") == 0  # never read
        assert_no_secret(tmp_path, shown)


@pytest.mark.timeout(120)
async def test_a_rejected_key_alerts_critical_naming_the_account_and_the_venue_code_never_the_key(
    tmp_path: Path,
) -> None:
    """The venue knows another secret: every signed request is refused (-1022). The account
    is down from the start; after ``daemon.stale_alert_after`` a critical feed alert names the
    account and the reason."""
    cfg = tmp_path / "monitor.toml"
    async with BinanceMock(tb.KEY, "x" * 64) as mock:
        write_config(cfg, mock, warning=0.02, stale_alert_after="2s")
        async with daemon(cfg, tmp_path):
            await until(lambda: "FIRING CRITICAL" in alerts(tmp_path), 30, "the feed alert")
            shown = await status_until(cfg, "down")
        assert mock.bad_signatures >= 1
    text = alerts(tmp_path)
    assert "binanceusdm account:main is down" in text, text
    assert "binanceusdm/account:main" in shown and "down" in shown, shown
    assert_no_secret(tmp_path, shown)


@pytest.mark.timeout(120)
async def test_a_venue_that_dies_puts_the_account_down_and_alerts_critical(tmp_path: Path) -> None:
    """The venue goes away with a position open: the stream closes, REST cannot connect;
    the account goes down and, after ``daemon.stale_alert_after``, a critical alert says so,
    while the last figures stay shown."""
    cfg = tmp_path / "monitor.toml"
    mock = BinanceMock(tb.KEY, tb.SECRET)
    await mock.__aenter__()
    try:
        write_config(cfg, mock, warning=0.5, stale_alert_after="2s")
        async with daemon(cfg, tmp_path):
            await until(lambda: bool(mock.sockets), 30, "the account stream")
            await mock.open("BTCUSDT", 1.0, 60_000.0)
            await status_until(cfg, "2.5%")
            await mock.__aexit__(None, None, None)
            await until(lambda: "FIRING CRITICAL" in alerts(tmp_path), 30, "the feed alert")
            shown = await status_until(cfg, "down")
    finally:
        await mock.__aexit__(None, None, None)
    text = alerts(tmp_path)
    assert "FIRING CRITICAL: feed:binanceusdm, account:main: feed stale (" in text, text
    assert "binanceusdm:main/cross" in shown and "2.5%" in shown, shown  # the last figures
    assert_no_secret(tmp_path, shown)


def bybit_config(path: Path, mock: BybitMock) -> None:
    write_config(path, BinanceMock(tb.KEY, tb.SECRET), warning=0.5)
    body = path.read_text()
    account = f"""[[accounts]]
id = "bybit:uta"
api_key = "${{BY_KEY}}"
secret = "${{BY_SECRET}}"
rest_url = "{mock.url}"
ws_url = "{mock.ws_url}/v5/private"

"""
    path.write_text(body[: body.index("[[accounts]]")] + account + body[body.index("[rules]") :])


@pytest.mark.timeout(120)
async def test_a_bybit_key_account_follows_the_mark_its_position_stream_carries(
    tmp_path: Path,
) -> None:
    """Bybit pushes ``position`` rows with the venue's ``markPrice``; before the fix they
    did not move the instrument's price (a position's mark only seeded it once).

    Wallet 10,000 USDT, 1 BTC long at 20,000, mark 20,000: equity 10,000, maintenance
    (the mock's tier: 0.5 %) 1 × 20,000 × 0.005 = 100. The mark falls to 18,000 and the
    venue pushes the position and the wallet: equity 10,000 − 2,000 = 8,000, maintenance
    18,000 × 0.005 = 90, as the venue computes it."""
    cfg = tmp_path / "monitor.toml"
    async with BybitMock(ty.KEY, ty.SECRET) as mock:
        bybit_config(cfg, mock)
        async with daemon(cfg, tmp_path):
            await until(
                lambda: "daemon.ready" in (tmp_path / "daemon.log").read_text(), 30, "ready"
            )
            await until(lambda: bool(mock.sockets), 30, "the account stream")
            await mock.open("BTCUSDT", 1.0, 20_000.0)
            await status_until(cfg, "10,000.00", "1.0%")
            assert mock.mm(mock.positions["BTCUSDT"]) == pytest.approx(100.0)
            mock.marks["BTCUSDT"] = 18_000.0
            await mock.push_position("BTCUSDT")
            await mock.push_wallet()
            shown = await status_until(cfg, "8,000.00")
            doc = json.loads(await status(cfg, "--json"))
    (scope,) = doc["scopes"]
    assert "8,000.00" in shown, shown
    assert scope["equity"] == pytest.approx(8_000.0)
    assert scope["maintenance_margin"] == pytest.approx(mock.mm(mock.positions["BTCUSDT"]))
    assert scope["maintenance_margin"] == pytest.approx(90.0)
    assert_no_secret(tmp_path, shown, json.dumps(doc))


class SlowStreamBinance(BinanceMock):
    """The loopback Binance whose listen key (so the user-data stream) waits for ``go``:
    the window between the daemon's REST snapshot and its stream subscription."""

    def __init__(self, api_key: str, secret: str) -> None:
        self.go = asyncio.Event()
        super().__init__(api_key, secret)

    async def _listen_key(self, request: web.Request) -> web.Response:
        if request.method == "POST":
            await self.go.wait()
        return await super()._listen_key(request)


@pytest.mark.timeout(120)
async def test_a_trade_between_the_rest_snapshot_and_the_stream_subscription_is_seen_at_once(
    tmp_path: Path,
) -> None:
    """The position is opened after the start-up snapshot was read and before the stream
    is up, so its ACCOUNT_UPDATE reaches nobody. Before the fix nothing re-read the
    account until the periodic re-snapshot (60 s): the monitor showed no position for up
    to a minute. 1 BTC at 60,000 on 10,000: ratio 250 / 10,000 = 2.5 %."""
    cfg = tmp_path / "monitor.toml"
    async with SlowStreamBinance(tb.KEY, tb.SECRET) as mock:
        write_config(cfg, mock, warning=0.5)
        async with daemon(cfg, tmp_path):
            await until(lambda: mock.calls("GET", "/fapi/v2/positionRisk") >= 1, 30, "snapshot")
            await mock.open("BTCUSDT", 1.0, 60_000.0)  # pushed to no stream
            mock.go.set()
            await until(lambda: bool(mock.sockets), 30, "the account stream")
            shown = await status_until(cfg, "2.5%", limit=15)
    assert "binanceusdm:main/cross" in shown and "2.5%" in shown, shown


@pytest.mark.timeout(120)
async def test_a_venue_echoing_the_key_and_secret_in_its_error_never_shows_them(
    tmp_path: Path,
) -> None:
    """A hostile (or chatty) venue answers the permission check with the key and the secret
    in its error text: the account is down with the venue's code, and neither appears in the
    log, ``monitor status``, the store or the alert sent (stale_alert_after 1 s)."""
    cfg = tmp_path / "monitor.toml"
    async with BinanceMock(tb.KEY, tb.SECRET) as mock:
        mock.fault(
            "/sapi/v1/account/apiRestrictions",
            401,
            {"code": -2015, "msg": f"Invalid API-key {tb.KEY} for secret {tb.SECRET}"},
            times=100,
        )
        write_config(cfg, mock, warning=0.5, stale_alert_after="1s")
        async with daemon(cfg, tmp_path):
            await until(lambda: "FIRING CRITICAL" in alerts(tmp_path), 30, "the feed alert")
            shown = await status_until(cfg, "down")
            doc = await status(cfg, "--json")
    assert "binanceusdm/account:main" in shown and "down" in shown, shown
    assert "-2015" in doc, doc  # the venue's code, in the feed's full detail
    assert_no_secret(tmp_path, shown, doc)
