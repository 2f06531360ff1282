"""Mutes persisted in the store."""

from __future__ import annotations

from pathlib import Path

from monitor.alerts.mutes import Mute
from monitor.store.db import open_store
from monitor.store.mutes import active_mutes, add_mute, remove_mutes


async def test_mutes_survive_reopen_expire_and_remove(tmp_path: Path) -> None:
    path = tmp_path / "m.db"
    store = await open_store(path)
    await add_mute(store, Mute("hl:0x1", 200.0, rule="shock", reason="maintenance"), 100.0)
    await add_mute(store, Mute("hl:0x2", 150.0, critical=True), 100.0)
    await store.close()
    store = await open_store(path)
    try:
        assert await active_mutes(store, 120.0) == [
            Mute("hl:0x1", 200.0, "shock", False, "maintenance"),
            Mute("hl:0x2", 150.0, None, True, ""),
        ]
        assert await active_mutes(store, 150.0) == [
            Mute("hl:0x1", 200.0, "shock", False, "maintenance")
        ]
        assert await remove_mutes(store, "hl:0x1", "margin_ratio") == 0
        assert await remove_mutes(store, "hl:0x1") == 1
        assert await active_mutes(store, 150.0) == []
    finally:
        await store.close()
