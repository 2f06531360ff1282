"""The delivery worker's questions to the outbox with a crash's backlog queued: in-process.

Run::

    .venv/bin/python benchmarks/outbox.py                    # 20,000 and 200,000 pending rows
    .venv/bin/python benchmarks/outbox.py --rows 50000 --repeat 9

Before every send the delivery worker asks which channels have due rows and how many
(``due_channels``), then claims a digest's rows (``claim``, 200) and marks them delivered;
between sends it asks every channel's oldest row (``heads``). A crash at 100,000 positions
queues ~20,000 rows for a webhook channel, one at 1,000,000 ~200,000.

Measured on the real store (a SQLite file in a temporary directory, WAL, the daemon's
migrations), two channels (a third of the rows on one): each question ``--repeat`` times, the
median. **Baseline**, in the same run: the same questions as the worker asked them before
migration 5, on a store without its partial index (``MIGRATIONS[:4]``) — each scanned every
pending row. Reported: milliseconds a question and the ratio baseline/now. The last line
printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from monitor.store import outbox
from monitor.store.db import MIGRATIONS, Store, open_store
from monitor.store.outbox import OutboundMessage

#: the worker's questions before migration 5 (monitor/store/outbox.py at 4e5dcf4)
_OLD_HEAD = (
    "(SELECT h.next_attempt_at FROM outbox h WHERE h.status = ? AND h.channel = c.channel "
    "ORDER BY h.id LIMIT 1)"
)
OLD_DUE = (
    "SELECT c.channel, sum(c.next_attempt_at <= ?) FROM outbox c WHERE c.status = ? "
    f"GROUP BY c.channel HAVING {_OLD_HEAD} <= ?"
)
OLD_HEADS = (
    f"SELECT c.channel, {_OLD_HEAD} FROM (SELECT DISTINCT channel FROM outbox WHERE status = ?) c"
)
OLD_CLAIM = "SELECT id FROM outbox WHERE status = ? AND channel = ? ORDER BY id LIMIT ?"


async def _filled(path: Path, rows: int, *, old: bool) -> Store:
    store = await open_store(path, migrations=MIGRATIONS[:4] if old else MIGRATIONS)
    body = "x" * 600  # a rendered alert's size
    msgs = [
        OutboundMessage(
            f"k{i}",
            "tg" if i % 3 == 0 else "hook",
            f"g{i}",
            "critical",
            "t",
            body,
            "text",
            "failure",
            1.0 + i * 1e-6,
        )
        for i in range(rows)
    ]
    async with store.transaction() as conn:
        await outbox.enqueue(conn, msgs)  # the schema of migration 4 has every column it writes
    return store


async def _median_ms(fn: Callable[[], Awaitable[Any]], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - t)
    return 1e3 * statistics.median(times)


async def _read(store: Store, sql: str, args: tuple[Any, ...]) -> list[Any]:
    async with store.read() as conn:
        return list(await conn.execute_fetchall(sql, args))


async def run(rows: int, repeat: int) -> dict[str, Any]:
    now = 10.0
    with tempfile.TemporaryDirectory() as d:
        new = await _filled(Path(d) / "new.db", rows, old=False)
        old = await _filled(Path(d) / "old.db", rows, old=True)
        try:
            out: dict[str, Any] = {"rows": rows}
            pairs: dict[str, tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[Any]]]] = {
                "due_channels": (
                    lambda: outbox.due_channels(new, now),
                    lambda: _read(old, OLD_DUE, (now, "pending", "pending", now)),
                ),
                "heads": (
                    lambda: outbox.heads(new),
                    lambda: _read(old, OLD_HEADS, ("pending", "pending")),
                ),
                "claim_200": (
                    lambda: _read(new, outbox._CLAIM, ("hook", 200)),
                    lambda: _read(old, OLD_CLAIM, ("pending", "hook", 200)),
                ),
            }
            for name, (now_q, old_q) in pairs.items():
                a = await _median_ms(now_q, repeat)
                b = await _median_ms(old_q, repeat)
                out[name] = {
                    "ms": round(a, 3),
                    "baseline_ms": round(b, 3),
                    "ratio": round(b / a, 1),
                }
            return out
        finally:
            await new.close()
            await old.close()


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--rows", type=int, action="append", help="pending rows (repeatable; default 20000, 200000)"
    )
    ap.add_argument("--repeat", type=int, default=7, help="times each question is asked")
    args = ap.parse_args()
    results = []
    for rows in args.rows or [20_000, 200_000]:
        r = asyncio.run(run(rows, args.repeat))
        results.append(r)
        for name in ("due_channels", "heads", "claim_200"):
            f = r[name]
            print(
                f"{rows:>8} rows  {name:<13} {f['ms']:>8.3f} ms   before migration 5 "
                f"{f['baseline_ms']:>8.3f} ms   × {f['ratio']}",
                file=sys.stderr,
            )
    print(json.dumps({"outbox": results}))


if __name__ == "__main__":
    main()
