"""``monitor status``: the scope the daemon's summary names carries its account's label."""

from __future__ import annotations

import os
from pathlib import Path

from monitor.commands import status
from monitor.commands._store import Names
from monitor.model.ids import AccountKey
from tests.commands.test_status import ADDR, NOW, make_store, view_of


async def test_the_summarys_worst_scope_is_short_and_labelled(tmp_path: Path) -> None:
    path = tmp_path / "monitor.sqlite3"
    summary = f"2 scopes; worst margin ratio 100.0% (hyperliquid:{ADDR}/cross); 0 alerts firing"
    await make_store(path, {"pid": os.getpid(), "summary": summary}, NOW - 1)
    names = Names({AccountKey("hyperliquid", ADDR): "btc desk"})
    lines = status.render(await view_of(path), NOW, names=names).splitlines()
    assert all(len(line) <= 120 for line in lines)
    assert lines[0] + " " + lines[1].strip() == (
        f"daemon: running, pid {os.getpid()}, updated 1 s ago: 2 scopes; worst margin ratio "
        "100.0% (hyperliquid:0x1111…2222/cross (btc desk)); 0 alerts firing"
    )
    # without labels the id is still shortened; text that is not a scope is left alone
    text = status.render(await view_of(path), NOW)
    assert "(hyperliquid:0x1111…2222/cross); 0" in text.splitlines()[0]
    assert status._named_summary("x (not a scope) y", names) == "x (not a scope) y"
