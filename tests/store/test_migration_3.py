"""Migration 3: one venue spelling in every stored key; mutes keep their target's parts.
Also the store's identity lock and ``create=False``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.errors import FatalError
from monitor.store.db import MIGRATIONS, StoreLockedError, lock_path, open_store
from monitor.store.mutes import active_mutes, remove_mutes

OLD = MIGRATIONS[:2]  # the schema of a store written before migration 3


async def _old_store(path: Path) -> None:
    store = await open_store(path, migrations=OLD)
    doc = {
        "key": "margin_ratio|dydx_v4:dydx1qq/0/cross",
        "subject": "dydx_v4:dydx1qq/0/cross",
        "group": "dydx_v4:dydx1qq/0",
        "venue": "dydx_v4",
    }
    async with store.transaction() as conn:
        await conn.execute(
            "INSERT INTO alert_state VALUES (?, ?, 1.0)", (doc["key"], json.dumps(doc))
        )
        # the same alert already written under the new spelling after an upgrade: it wins
        await conn.execute(
            "INSERT INTO alert_state VALUES (?, ?, 2.0)",
            ("shock|binanceusdm:main/cross", json.dumps({"key": "new"})),
        )
        await conn.execute(
            "INSERT INTO alert_state VALUES (?, ?, 1.0)",
            ("shock|binance_usdm:main/cross", json.dumps({"key": "old"})),
        )
        await conn.execute(
            "INSERT INTO engine_meta VALUES ('stale', ?)",
            (json.dumps({"binance_usdm/tickers": "down"}),),
        )
        await conn.execute(
            "INSERT INTO transitions VALUES ('t1', 'feed_stale|feed:dydx_v4', 'fire', "
            "'feed_stale', 'warning', 'feed:dydx_v4', 'feed:dydx_v4/markets', 5.0, NULL, NULL,"
            " 0, '')"
        )
        for target in ("binance_usdm:main", "hyperliquid:0xabc/cross#BTC", "monitor", "bad"):
            await conn.execute(
                "INSERT INTO mutes (target, until, created_at) VALUES (?, 1e12, 1.0)", (target,)
            )
        await conn.execute(
            "INSERT INTO risk_history (scope, ts) VALUES ('binance_usdm:main/cross', 1.0)"
        )
        await conn.execute(
            "INSERT INTO scope_status VALUES ('dydx_v4:dydx1qq/0/cross', 'dydx_v4', "
            "'dydx1qq/0', 1.0, '{}')"
        )
        await conn.execute(
            "INSERT INTO feed_status VALUES ('dydx_v4', 'markets', 'live', '', 1.0, NULL)"
        )
        await conn.execute(
            "INSERT INTO funding_paid VALUES ('binance_usdm', 'main', 'BTCUSDT', 1.0, 2.0, NULL)"
        )
    await store.close()


async def test_an_old_store_migrates_venue_spellings_and_mute_parts(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    await _old_store(path)
    store = await open_store(path)
    try:
        assert await store.schema_version() == len(MIGRATIONS)
        async with store.read() as conn:
            state = dict(await conn.execute_fetchall("SELECT key, doc FROM alert_state"))
            stale = (await conn.execute_fetchall("SELECT doc FROM engine_meta"))[0][0]
            tr = (await conn.execute_fetchall("SELECT key, grp, subject FROM transitions"))[0]
            mutes = list(
                await conn.execute_fetchall(
                    "SELECT target, kind, venue, account, scope, symbol, channel FROM mutes"
                    " ORDER BY id"
                )
            )
            rh = await conn.execute_fetchall(
                "SELECT scope, venue, account, scope_name FROM risk_history"
            )
            ss = await conn.execute_fetchall(
                "SELECT scope, venue, account, scope_name FROM scope_status"
            )
            fs = await conn.execute_fetchall("SELECT venue FROM feed_status")
            fp = await conn.execute_fetchall("SELECT venue FROM funding_paid")
        assert set(state) == {"margin_ratio|dydx:dydx1qq/0/cross", "shock|binanceusdm:main/cross"}
        assert json.loads(state["shock|binanceusdm:main/cross"]) == {"key": "new"}
        assert json.loads(state["margin_ratio|dydx:dydx1qq/0/cross"]) == {
            "key": "margin_ratio|dydx:dydx1qq/0/cross",
            "subject": "dydx:dydx1qq/0/cross",
            "group": "dydx:dydx1qq/0",
            "venue": "dydx",
        }
        assert json.loads(stale) == {"binanceusdm/tickers": "down"}
        assert tuple(tr) == ("feed_stale|feed:dydx", "feed:dydx", "feed:dydx/markets")
        assert [tuple(m) for m in mutes] == [
            ("binanceusdm:main", "account", "binanceusdm", "main", None, None, None),
            (
                "hyperliquid:0xabc/cross#BTC",
                "position",
                "hyperliquid",
                "0xabc",
                "cross",
                "BTC",
                None,
            ),
            ("monitor", "monitor", None, None, None, None, None),
            ("bad", "invalid", None, None, None, None, None),
        ]
        assert [tuple(r) for r in rh] == [
            ("binanceusdm:main/cross", "binanceusdm", "main", "cross")
        ]
        assert [tuple(r) for r in ss] == [("dydx:dydx1qq/0/cross", "dydx", "dydx1qq/0", "cross")]
        assert [tuple(r) for r in fs] == [("dydx",)]
        assert [tuple(r) for r in fp] == [("binanceusdm",)]
        # the hand-written "bad" row is skipped, not fatal; the others are in force
        assert [m.target for m in await active_mutes(store, 10.0)] == [
            "binanceusdm:main",
            "hyperliquid:0xabc/cross#BTC",
            "monitor",
        ]
        # removal compares identities: the old spelling finds the migrated row
        assert await remove_mutes(store, "binanceusdm:main") == 1
    finally:
        await store.close()


async def test_two_spellings_of_one_store_cannot_both_hold_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    link = tmp_path / "link.db"
    link.symlink_to(path)
    first = await open_store(path)
    try:
        assert lock_path(link) == lock_path(path) == tmp_path / "s.db.lock"
        with pytest.raises(StoreLockedError):
            await open_store(link)
        cwd = os.getcwd()
        os.chdir(tmp_path)
        try:
            with pytest.raises(StoreLockedError):
                await open_store(Path("./sub/../s.db"))
        finally:
            os.chdir(cwd)
    finally:
        await first.close()


def test_another_process_with_a_symlinked_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    (tmp_path / "sub").mkdir()
    link = tmp_path / "sub" / "alias.db"
    link.symlink_to(path)
    code = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from monitor.store.db import open_store, StoreLockedError\n"
        "async def main():\n"
        "    s = await open_store(Path(sys.argv[1]))\n"
        "    print('locked', flush=True)\n"
        "    sys.stdin.readline()\n"
        "    await s.close()\n"
        "asyncio.run(main())\n"
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", code, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None
        lines = iter(holder.stdout.readline, "")  # structlog's lines come first
        assert any(line.strip() == "locked" for line in lines)
        probe = subprocess.run(
            [sys.executable, "-c", code, str(link)],
            input="\n",
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert probe.returncode != 0
        assert "in use by another monitor process" in probe.stderr
        assert "locked" not in probe.stdout
    finally:
        assert holder.stdin is not None
        holder.stdin.write("\n")
        holder.stdin.close()
        holder.wait(timeout=30)


async def test_create_false_refuses_a_missing_store_and_creates_nothing(tmp_path: Path) -> None:
    path = tmp_path / "typo" / "monitor.db"
    with pytest.raises(FatalError, match=r"no store at .*does not exist"):
        await open_store(path, lock=False, create=False)
    assert not path.exists() and not path.parent.exists()
    with pytest.raises(FatalError, match="is not a file"):
        await open_store(tmp_path, lock=False, create=False)


async def test_history_rows_keep_the_parts_of_their_scope_key(tmp_path: Path) -> None:
    from monitor.store import history

    store = await open_store(tmp_path / "h.db")
    try:
        odd = "okx:a%23b/isolated:X%2FY"  # account "a#b", scope "isolated:X/Y"
        await history.record(
            store, [history.Sample(odd, 1.0, 1.0, 0.5, 0.5, 0.1, 0.2, 0.2, 0.0)], []
        )
        async with store.read() as conn:
            rows = await conn.execute_fetchall(
                "SELECT venue, account, scope_name FROM risk_history"
            )
        assert [tuple(r) for r in rows] == [("okx", "a#b", "isolated:X/Y")]
        assert [s.scope for s in await history.read_history(store, odd, 0.0)] == [odd]
    finally:
        await store.close()


async def test_a_sample_taken_from_a_scope_key_writes_its_parts_without_parsing(
    tmp_path: Path,
) -> None:
    # the daemon's samples carry their key: the columns come from it, and the parse cache
    # (what held ~100 B a position at 40,000 scopes) is not filled
    from monitor.model.ids import ScopeKey
    from monitor.store import history

    history._PARTS.clear()
    key = ScopeKey("okx", "a#b", "isolated:X/Y")
    sample = history.Sample(str(key), 1.0, 1.0, 0.5, 0.5, 0.1, 0.2, 0.2, 0.0, key=key)
    store = await open_store(tmp_path / "h.db")
    try:
        await history.record(store, [sample], [])
        async with store.read() as conn:
            rows = await conn.execute_fetchall(
                "SELECT scope, venue, account, scope_name FROM risk_history"
            )
        assert [tuple(r) for r in rows] == [
            ("okx:a%23b/isolated:X%2FY", "okx", "a#b", "isolated:X/Y")
        ]
        assert history._PARTS == {}
        # read back, a sample has no key and equals the one written
        assert await history.read_history(store, str(key), 0.0) == [sample]
    finally:
        await store.close()
