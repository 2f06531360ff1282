"""The daemon's optional parts switched on in the real `monitor run`: /metrics and /healthz
served while it runs, the dead-man heartbeat pinging a loopback endpoint, and a clean SIGTERM.
Off by default, they start nothing (tests/ops covers the import cost)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from tests.notify.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]


async def _get(session: aiohttp.ClientSession, url: str) -> tuple[int, str]:
    try:
        async with session.get(url) as resp:
            return resp.status, await resp.text()
    except aiohttp.ClientError:
        return 0, ""


@pytest.mark.timeout(90)
async def test_metrics_health_and_heartbeat_run_with_the_daemon(tmp_path: Path) -> None:
    pings: list[str] = []

    async def ping(request: web.Request) -> web.Response:
        pings.append(request.path)
        return web.Response(text="OK")

    app = web.Application()
    app.router.add_get("/ping/{uuid}", ping)
    app.router.add_post("/ping/{uuid}", ping)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_port = runner.addresses[0][1]
    metrics_port = free_port()
    cfg = tmp_path / "monitor.toml"
    cfg.write_text(
        f"""
[[accounts]]
venue = "generic"
name = "desk"
label = "the desk"
cross_collateral = 1000.0
[[accounts.positions]]
symbol = "BTC"
size = 1.0
entry_price = 10000.0
mark_price = 9500.0
maintenance = {{ rate = 0.05 }}

[store]
path = "{tmp_path / "s.sqlite3"}"

[daemon]
heartbeat_url = "http://127.0.0.1:{hook_port}/ping/${{HC_UUID}}"
heartbeat_interval = "1s"

[metrics]
enabled = true
listen = "127.0.0.1:{metrics_port}"
"""
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HC_UUID": "5f1e-secret-uuid"}
    log = (tmp_path / "daemon.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "monitor", "run", "--config", str(cfg),
        stdout=log, stderr=log, env=env, cwd=tmp_path,
    )  # fmt: skip
    base = f"http://127.0.0.1:{metrics_port}"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
            metrics = ""
            for _ in range(200):
                status, metrics = await _get(session, f"{base}/metrics")
                if status == 200 and "monitor_scope_equity{" in metrics:
                    break
                await asyncio.sleep(0.1)
            # equity = 1000 + (9500 − 10000) = 500, labelled with the account's label
            line = next(ln for ln in metrics.splitlines() if ln.startswith("monitor_scope_equity{"))
            assert 'label="the desk"' in line and 'scope="cross"' in line
            assert float(line.rsplit(" ", 1)[1]) == pytest.approx(500.0)
            status, body = await _get(session, f"{base}/healthz")
            assert status == 200, body
            for _ in range(100):
                if pings:
                    break
                await asyncio.sleep(0.1)
            assert pings and pings[0] == "/ping/5f1e-secret-uuid"
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        await runner.cleanup()
        log.close()
    text = (tmp_path / "daemon.log").read_text()
    assert "5f1e-secret-uuid" not in text  # the heartbeat URL's secret never reaches the log
