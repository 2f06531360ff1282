"""/metrics and /healthz served by a real aiohttp server on 127.0.0.1, reading a real SQLite
store; the exposition parsed by prometheus-client's own parser and checked by promtool."""

from __future__ import annotations

import asyncio
import math
import shutil
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.config import MetricsConfig, parse_config
from monitor.errors import FatalError
from monitor.ops.figures import BatchTimings, Health, MetricsSnapshot, VenueFrames
from monitor.ops.http import MetricsServer, serve_metrics
from monitor.ops.metrics import StoreMetricsSource
from tests.ops.conftest import NOW, Filled

LOOPBACK = MetricsConfig(enabled=True, host="127.0.0.1", port=0)


def _source(filled: Filled, batch: BatchTimings | None = None) -> StoreMetricsSource:
    return StoreMetricsSource(
        filled.store,
        labels={"generic:alice": "Alice main"},
        frames=lambda: [VenueFrames("hyperliquid", 120, 3), VenueFrames("dydx", 7, 0)],
        batch=batch,
        bot_ignored=lambda: 5,
        now=lambda: NOW,
    )


@pytest.fixture
async def server(filled: Filled) -> AsyncIterator[MetricsServer]:
    batch = BatchTimings()
    for seconds in (0.0004, 0.002, 0.002, 0.3):
        batch.observe(seconds)
    async with await serve_metrics(LOOPBACK, _source(filled, batch), lambda: (True, "")) as srv:
        yield srv


async def _get(url: str) -> tuple[int, str, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


def _samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def _scope(scope: str, account: str, label: str = "") -> frozenset[tuple[str, str]]:
    return frozenset(
        {"venue": "generic", "account": account, "label": label, "scope": scope}.items()
    )


async def test_metrics_expose_scopes_feeds_alerts_outbox_frames_and_batches(
    server: MetricsServer,
) -> None:
    status, ctype, text = await _get(server.url + "/metrics")
    assert status == 200
    assert ctype.startswith("text/plain")
    got = _samples(text)
    alice = _scope("cross", "alice", "Alice main")
    bob = _scope("cross", "bob")
    # alice: equity = collateral 1000 + uPnL 0; MM = 1 · 100 · 0.5 = 50; ratio 50 / 1000
    assert got[("monitor_scope_equity", alice)] == 1000.0
    assert got[("monitor_scope_maintenance_margin", alice)] == 50.0
    assert got[("monitor_scope_margin_ratio", alice)] == pytest.approx(0.05)
    assert got[("monitor_scope_liquidatable", alice)] == 0.0
    # a uniform move m: equity 1000 + 100·m vs MM 50·(1 + m) meet at m = −19, beyond −100 %:
    # no shock liquidates alice, so the figure is left out, not exported as a number
    assert ("monitor_scope_shock_to_liquidation_ratio", alice) not in got
    assert got[("monitor_scope_updated_timestamp_seconds", alice)] == NOW - 1.0
    # bob: equity −5 ≤ 0, liquidatable, ratio unknown → +Inf (fail closed)
    assert got[("monitor_scope_equity", bob)] == -5.0
    assert got[("monitor_scope_margin_ratio", bob)] == math.inf
    assert got[("monitor_scope_liquidatable", bob)] == 1.0
    assert got[("monitor_scope_nearest_liquidation_distance_ratio", bob)] == 0.0
    assert got[("monitor_scope_shock_to_liquidation_ratio", bob)] == 0.0
    # feeds: hyperliquid last message 2 s ago, dydx 45 s ago and stale
    hl = frozenset({"venue": "hyperliquid", "channel": "activeAssetCtx:BTC"}.items())
    dy = frozenset({"venue": "dydx", "channel": "v4_markets"}.items())
    assert got[("monitor_feed_seconds_since_last_message", hl)] == 2.0
    assert got[("monitor_feed_seconds_since_last_message", dy)] == 45.0
    assert got[("monitor_feed_state", dy | {("state", "stale")})] == 1.0
    assert got[("monitor_feed_state", dy | {("state", "live")})] == 0.0
    assert got[("monitor_feed_state", hl | {("state", "live")})] == 1.0
    # the venue's own row ("*") gives the age only, never a state
    star = frozenset({"venue": "dydx", "channel": "*"}.items())
    assert got[("monitor_feed_seconds_since_last_message", star)] == 45.0
    assert not any(k[0] == "monitor_feed_state" and ("channel", "*") in k[1] for k in got)
    # alerts: 2 critical shock, 1 critical margin_ratio, 1 warning feed_stale; pending excluded
    firing = {
        (dict(k[1])["rule"], dict(k[1])["severity"]): v
        for k, v in got.items()
        if k[0] == "monitor_alerts_firing"
    }
    assert firing == {
        ("margin_ratio", "critical"): 1.0,
        ("shock", "critical"): 2.0,
        ("feed_stale", "warning"): 1.0,
    }
    # outbox: tg has 2 rows, the oldest created 300 s ago; mail 1 row, 5 s
    tg = frozenset({("channel", "tg")})
    mail = frozenset({("channel", "mail")})
    assert got[("monitor_outbox_backlog", tg)] == 2.0
    assert got[("monitor_outbox_oldest_age_seconds", tg)] == 300.0
    assert got[("monitor_outbox_backlog", mail)] == 1.0
    assert got[("monitor_outbox_oldest_age_seconds", mail)] == 5.0
    # frames are counters (…_total)
    assert got[("monitor_feed_frames_total", frozenset({("venue", "hyperliquid")}))] == 120.0
    assert got[("monitor_feed_bad_frames_total", frozenset({("venue", "hyperliquid")}))] == 3.0
    assert got[("monitor_bot_ignored_updates_total", frozenset())] == 5.0
    # batches 0.4 ms, 2 ms, 2 ms, 300 ms: ≤ 0.5 ms → 1, ≤ 2.5 ms → 3, ≤ 0.5 s → 4
    b = "monitor_engine_batch_duration_seconds"
    assert got[(b + "_bucket", frozenset({("le", "0.0005")}))] == 1.0
    assert got[(b + "_bucket", frozenset({("le", "0.0025")}))] == 3.0
    assert got[(b + "_bucket", frozenset({("le", "0.25")}))] == 3.0
    assert got[(b + "_bucket", frozenset({("le", "0.5")}))] == 4.0
    assert got[(b + "_bucket", frozenset({("le", "+Inf")}))] == 4.0
    assert got[(b + "_count", frozenset())] == 4.0
    assert got[(b + "_sum", frozenset())] == pytest.approx(0.0004 + 0.002 + 0.002 + 0.3)


async def test_metrics_read_the_store_at_each_scrape_not_before(
    filled: Filled, server: MetricsServer
) -> None:
    from monitor.store import history

    _, _, before = await _get(server.url + "/metrics")
    async with filled.store.transaction() as conn:
        await conn.execute("DELETE FROM scope_status WHERE scope = ?", ("generic:bob/cross",))
    _, _, after = await _get(server.url + "/metrics")
    assert 'account="bob"' in before
    assert 'account="bob"' not in after
    assert len((await history.read_status(filled.store)).scopes) == 1


@pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool not installed (Debian: apt-get install -y prometheus)",
)
async def test_exposition_passes_promtool_check_metrics(server: MetricsServer) -> None:
    _, _, text = await _get(server.url + "/metrics")
    proc = await asyncio.create_subprocess_exec(
        "promtool",
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(text.encode()), 60)
    # promtool prints nothing and exits 0 when the exposition is clean (lint included)
    assert (proc.returncode, out.decode().strip()) == (0, "")


async def test_healthz_answers_200_while_healthy_and_503_with_the_reason_otherwise(
    filled: Filled,
) -> None:
    state = {"ok": True, "reason": ""}

    def healthy() -> tuple[bool, str]:
        return bool(state["ok"]), str(state["reason"])

    async with await serve_metrics(LOOPBACK, _source(filled), healthy) as srv:
        assert await _get(srv.url + "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")
        state.update(ok=False, reason="store write failed: disk I/O error\nsecond line")
        status, _, text = await _get(srv.url + "/healthz")
        assert (status, text) == (503, "store write failed: disk I/O error\n")


async def test_healthz_whose_check_raises_is_unhealthy(filled: Filled) -> None:
    def broken() -> tuple[bool, str]:
        raise RuntimeError("engine gone")

    async with await serve_metrics(LOOPBACK, _source(filled), broken) as srv:
        status, _, text = await _get(srv.url + "/healthz")
    assert status == 503
    assert text == "health check failed: RuntimeError\n"


class _Failing:
    async def metrics_snapshot(self) -> MetricsSnapshot:
        raise OSError("database is locked")


async def test_a_failing_source_answers_500_and_the_server_stays_up() -> None:
    async with await serve_metrics(LOOPBACK, _Failing(), lambda: (True, "")) as srv:
        status, _, text = await _get(srv.url + "/metrics")
        assert (status, text) == (500, "scrape failed: OSError\n")
        assert (await _get(srv.url + "/healthz"))[0] == 200


async def test_an_empty_snapshot_is_a_valid_exposition() -> None:
    class Empty:
        async def metrics_snapshot(self) -> MetricsSnapshot:
            return MetricsSnapshot()

    async with await serve_metrics(LOOPBACK, Empty(), lambda: (True, "")) as srv:
        status, _, text = await _get(srv.url + "/metrics")
    assert status == 200
    names = {f.name for f in text_string_to_metric_families(text)}
    assert "monitor_scope_equity" in names  # described, without samples
    assert not any(s for f in text_string_to_metric_families(text) for s in f.samples)


async def test_server_listens_on_loopback_only_by_default(filled: Filled, tmp_path: Path) -> None:
    store = {"path": str(tmp_path / "s.sqlite3")}
    doc = {"store": store, "metrics": {"enabled": True, "listen": "127.0.0.1:0"}}
    cfg = parse_config(doc, tmp_path / "m.toml").metrics
    async with await serve_metrics(cfg, _source(filled), lambda: (True, "")) as srv:
        assert srv.host == "127.0.0.1" and srv.port > 0
        assert srv.url == f"http://127.0.0.1:{srv.port}"
    default = parse_config({"store": store}, tmp_path / "m.toml").metrics
    assert (default.enabled, default.host, default.port) == (False, "127.0.0.1", 9108)


async def test_a_port_in_use_is_one_fatal_error_naming_the_address(filled: Filled) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = MetricsConfig(enabled=True, host="127.0.0.1", port=port)
        with pytest.raises(FatalError, match=rf"metrics: cannot listen on 127\.0\.0\.1:{port}"):
            await serve_metrics(cfg, _source(filled), lambda: (True, ""))


def test_batch_timings_bucket_inclusively_and_ignore_nonsense() -> None:
    t = BatchTimings(bounds=(0.001, 0.01))
    for s in (0.001, 0.0011, 0.5, -1.0, math.nan, math.inf):
        t.observe(s)
    f = t.figures()
    # 0.001 ≤ 0.001 → first bucket; 0.0011 → second; 0.5 only in +Inf (count)
    assert f.buckets == ((0.001, 1), (0.01, 2))
    assert f.count == 3
    assert f.total == pytest.approx(0.001 + 0.0011 + 0.5)
    with pytest.raises(ValueError, match="ascending"):
        BatchTimings(bounds=(0.01, 0.001))


def test_switched_off_parts_cost_no_import(tmp_path: Path) -> None:
    """What the daemon loads when every part is off (its config and figures) pulls in none of
    prometheus-client, python-telegram-bot, httpx or matplotlib."""
    code = (
        "import sys, monitor.cli, monitor.app, monitor.ops.figures\n"
        "heavy = [m for m in ('prometheus_client', 'telegram', 'httpx', 'matplotlib') "
        "if m in sys.modules]\n"
        "print(heavy)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert out.stdout.strip() == "[]"


def test_health_needs_a_recent_engine_beat_and_no_pending_store_error() -> None:
    clock = [100.0]
    health = Health(max_silence=30.0, monotonic=lambda: clock[0])
    assert health() == (False, "engine starting: no batch evaluated yet")
    health.beat()
    clock[0] = 130.0  # 30 s of silence: still within the limit
    assert health() == (True, "ok")
    clock[0] = 130.5
    assert health() == (False, "engine silent for 30s (limit 30s)")
    health.beat()
    health.store_failed("OperationalError: disk I/O error")
    assert health() == (False, "store error pending: OperationalError: disk I/O error")
    health.store_ok()
    assert health() == (True, "ok")


async def test_healthz_follows_a_health_object(filled: Filled) -> None:
    clock = [0.0]
    health = Health(max_silence=5.0, monotonic=lambda: clock[0])
    async with await serve_metrics(LOOPBACK, _source(filled), health) as srv:
        assert await _get(srv.url + "/healthz") == (
            503,
            "text/plain; charset=utf-8",
            "engine starting: no batch evaluated yet\n",
        )
        health.beat()
        assert (await _get(srv.url + "/healthz"))[0] == 200
        clock[0] = 6.0
        assert (await _get(srv.url + "/healthz"))[2] == "engine silent for 6s (limit 5s)\n"


async def test_a_scope_whose_figures_are_unknown_exports_no_liquidatable_sample(
    tmp_path: Path,
) -> None:
    """The status row of a scope whose figures raised (NaN figures, written as nulls) has no
    ``monitor_scope_liquidatable`` sample: a 0 there would read "not liquidatable"."""
    from dataclasses import replace

    from monitor.store import history
    from monitor.store.db import open_store
    from tests.ops.conftest import risk

    nan = math.nan
    known = risk("alice", 1000.0)
    unknown = replace(risk("carol", 1000.0), equity=nan, maintenance_margin=nan, margin_ratio=nan)
    store = await open_store(tmp_path / "m.db")
    try:
        docs = [(r.key, history.status_doc(r, [])) for r in (known, unknown)]
        for _, doc in docs:
            doc["ts"] = NOW - 1.0
        await history.record(store, [], docs)
        source = StoreMetricsSource(
            store, labels={}, frames=list, batch=None, bot_ignored=lambda: 0, now=lambda: NOW
        )
        async with await serve_metrics(LOOPBACK, source, lambda: (True, "")) as srv:
            _, _, text = await _get(srv.url + "/metrics")
    finally:
        await store.close()
    got = _samples(text)
    assert got[("monitor_scope_liquidatable", _scope("cross", "alice"))] == 0.0
    assert ("monitor_scope_liquidatable", _scope("cross", "carol")) not in got
    assert ("monitor_scope_margin_ratio", _scope("cross", "carol")) not in got
    assert got[("monitor_scope_updated_timestamp_seconds", _scope("cross", "carol"))] == NOW - 1.0
