"""The daemon's own path, as users run it: ``monitor run`` through idle, steady frames and a crash.

Run::

    .venv/bin/python benchmarks/daemon.py                      # 2,000 positions, about a minute
    .venv/bin/python benchmarks/daemon.py --positions 100000 --rate 1000 --naive-frames 20 \\
        --settle 45 --crash-wait 90                            # the README table, ~4 min
    .venv/bin/python benchmarks/daemon.py --positions 1000000 --book json --rate 1000 \\
        --naive-frames 0 --settle 300 --crash-wait 900         # the 1M run, ~15 min

What runs (everything on 127.0.0.1, bounded in count and time):

* a Hyperliquid stand-in speaking the venue's wire format: ``POST /info``
  ``metaAndAssetCtxs`` (a generated universe of ``--coins`` coins) and a websocket answering
  ``ping`` and ``subscribe`` and pushing ``activeAssetCtx`` frames;
* an aiohttp webhook receiving the daemon's ``json://`` notifications;
* ``python -m monitor run`` as a subprocess on a generated configuration: N positions over N/5
  manual accounts priced by that feed (1–9 positions each, 20 % isolated, Zipf (s = 1)
  instrument popularity, leverage 1.5–5 with 1 % at 8–15), ``NOTIFY_SOCKET`` a real unix socket.
  ``--book toml`` writes them as ``[[accounts]]`` tables; ``--book json`` as one
  ``[[accounts]] file = "book.json"`` entry (the same accounts; TOML is too slow to read at
  1,000,000 positions).

Phases, in order:

1. **start-up**: from the spawn to ``READY=1`` on the notify socket;
2. **idle** (``--idle`` s, no frames, from ``--settle`` s after READY so that the sweep the
   first prices cause is over; a ``--settle`` over the feed's 60 s staleness limit, the 1M
   runs', sees the feed go stale and reconnect before the idle phase): the daemon's CPU
   (utime + stime from ``/proc``), % of a core. With ``--keepalive`` every instrument's
   unchanged price goes out every 10 s through the settle and the idle phase, as a live venue
   keeps pushing (the feed never goes stale);
3. **steady** (``--steady`` s at ``--rate`` frames/s): random instruments (Zipf), log-normal steps
   of a 6 % daily volatility (× ``--stress``) scaled to the pace; plus 5 probe frames/s on an
   instrument of its own held by one probe account, alternating between a price where its margin
   ratio is 10 % and one where it is critical: each probe frame fires or resolves an alert.
   **Frame→decision** is the time from the probe frame's send to the daemon's ``alert.fired`` /
   ``alert.resolved`` log line (logged after the transaction commits), wall clock on both sides;
4. **crash**: every instrument's price × 0.7, the frames spread over 1 s. Then: time from the
   last crash frame until the last critical transition is seen committed (``transitions``
   table polled every 0.1 s from this process; waits until the count is still for ``--still`` s
   (default 5), at most ``--crash-wait`` s), and to the last webhook post (still as long);
   negative when all were in before the last (least popular) instrument's frame. Also: when
   the first, half and 90 % of those criticals were seen committed (the engine decides the
   scopes nearest liquidation first), and the first post. ``crash_delivered_s`` is the last
   post of any kind, which includes what follows the crash (resolutions as the sweep
   re-evaluates, later escalations); ``crash_criticals_delivered_s`` is when the last message
   carrying a critical was delivered (the outbox's ``delivered_at`` of critical rows queued
   since the crash): the issue's "delivered within 10 s";
5. **SIGTERM**: time to exit.

The daemon logs its longest engine batch at exit (``daemon.stopped longest_batch_s``). Peak RSS
is ``VmHWM`` (also read at READY and after the settle, ``peak_rss_ready_kb`` and
``peak_rss_settled_kb``: which phase reached it); bytes per position = (RSS ``--settle`` s
after READY, the book loaded and evaluated − RSS of the same daemon on a 1-position book once
READY) / N. (Before 2026-11-30 it took the RSS 1 s after READY, before manual accounts had
loaded: it understated the cost.)
``bytes_per_position_steady``: the same from the RSS 2 s after the steady phase. What a daemon
keeps per position grows while prices move, up to 15 minutes (the recent values an alert
quotes, "up from 71.0% 12 min ago": one sample a minute per scope and position), so a run with
``--steady 960`` measures what a long-running daemon holds.

**Fair naive baseline**, in this process on the same book and frames: ``Portfolio.apply`` of
each frame's event, full ``risk`` (with stress) of the scopes it touched, ``evaluate`` of those,
per frame (no bands, no conflation). Reported: steady frames/s it sustains and the crash's
compute time; the ratio daemon/baseline where both are measured the same way.

The last line printed is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import random
import signal
import socket
import sqlite3
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import websockets
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MAJORS = ("BTC", "ETH", "SOL", "XRP", "DOGE", "BNB", "ADA", "AVAX", "LINK", "SUI")
PROBE = "PRB"
PROBE_SAFE = 100.0
PROBE_HOT = 62.0
CRASH = 0.7


# -- the synthetic market and book ------------------------------------------------------------
@dataclass
class Market:
    coins: list[str]
    price: dict[str, float]
    weights: list[float]
    max_lev: dict[str, int]

    @classmethod
    def make(cls, n: int, rng: random.Random) -> Market:
        coins = [*MAJORS, *(f"C{i:03d}" for i in range(len(MAJORS), n))][:n]
        price: dict[str, float] = {}
        for r, c in enumerate(coins):
            price[c] = {"BTC": 95_000.0, "ETH": 3_500.0}.get(
                c, math.exp(rng.uniform(math.log(0.05), math.log(400.0 / (1 + r))))
            )
        weights = [1.0 / (r + 1) for r in range(n)]  # Zipf, s = 1
        max_lev = {c: (40 if c in MAJORS[:2] else 20 if c in MAJORS else 10) for c in coins}
        return cls(coins, price, weights, max_lev)

    def meta(self) -> str:
        coins = [*self.coins, PROBE]
        universe = [
            {"szDecimals": 4, "name": c, "maxLeverage": self.max_lev.get(c, 10)} for c in coins
        ]
        ctxs = [ctx(self.price.get(c, PROBE_SAFE)) for c in coins]
        return json.dumps([{"universe": universe, "marginTables": []}, ctxs])


def ctx(px: float) -> dict[str, Any]:
    p = f"{px:.8g}"
    return {
        "funding": "0.0000125",
        "openInterest": "1000.0",
        "prevDayPx": p,
        "dayNtlVlm": "1000000.0",
        "premium": "0.0001",
        "oraclePx": p,
        "markPx": p,
        "midPx": p,
        "impactPxs": [p, p],
        "dayBaseVlm": "1000.0",
    }


def frame(coin: str, px: float) -> str:
    return json.dumps({"channel": "activeAssetCtx", "data": {"coin": coin, "ctx": ctx(px)}})


def _g(x: float) -> float:
    """A number as the book writes it (10 significant digits, as the TOML book always did)."""
    return float(f"{x:.10g}")


def book_accounts(
    m: Market, positions: int, rng: random.Random
) -> tuple[list[dict[str, Any]], int]:
    """Manual Hyperliquid accounts (the keys of a manual ``[[accounts]]`` entry) holding
    ``positions`` positions, plus the probe account; returns (accounts, positions written)."""
    out: list[dict[str, Any]] = []
    written = 0
    n = 0
    while written < positions:
        n += 1
        k = min(rng.randint(1, 9), positions - written, len(m.coins))
        picked: dict[str, None] = {}
        while len(picked) < k:
            picked[rng.choices(m.coins, cum_weights=None, weights=m.weights)[0]] = None
        hot = rng.random() < 0.01
        cross_notional = 0.0
        lev_acct = rng.uniform(8, 15) if hot else rng.uniform(1.5, 5)
        rows: list[dict[str, Any]] = []
        for c in picked:
            px = m.price[c]
            notional = math.exp(rng.gauss(math.log(5_000.0), 1.0))
            side = 1.0 if rng.random() < 0.6 else -1.0
            size = side * notional / px
            entry = px * math.exp(rng.gauss(0.0, 0.03))
            lev = min(lev_acct, 0.8 * m.max_lev[c])
            row: dict[str, Any] = {
                "symbol": c, "size": _g(size), "entry_price": _g(entry), "mark_price": _g(px),
            }  # fmt: skip
            if rng.random() < 0.2:
                row["margin_mode"] = "isolated"
                row["isolated_margin"] = _g(notional / lev)
            else:
                cross_notional += notional / lev
            rows.append(row)
        out.append(
            {
                "venue": "hyperliquid",
                "name": f"a{n}",
                "cross_collateral": _g(max(cross_notional, 10.0)),
                "positions": rows,
            }
        )
        written += k
    # the probe: 10 PRB long at 100 with 950 collateral; equity = 950 + 10·(p − 100),
    # maintenance = 10·p/20 (maxLeverage 10): at 100 ratio 50/950 ≈ 5 %; at 62 31/570 ≈ 5.4 %…
    # so the collateral is sized for a critical at 62: 10·(62 − 100) = −380; equity 190 at
    # collateral 570: ratio 31/190 = 16 %. Use a 90 % ratio: collateral c with
    # 31 / (c − 380) ≥ 0.9 → c ≤ 414.4: c = 410 → 31/30 = 103 %; at 100 ratio 50/410 = 12 %
    out.append(
        {
            "venue": "hyperliquid",
            "name": "probe",
            "cross_collateral": 410,
            "positions": [
                {"symbol": PROBE, "size": 10, "entry_price": 100, "mark_price": PROBE_SAFE}
            ],
        }
    )
    return out, written


def _toml_value(v: Any) -> str:
    return f'"{v}"' if isinstance(v, str) else f"{v:.10g}" if isinstance(v, float) else str(v)


def book_toml(accounts: list[dict[str, Any]]) -> str:
    """The accounts as ``[[accounts]]`` tables."""
    out = []
    for a in accounts:
        head = "".join(f"{k} = {_toml_value(v)}\n" for k, v in a.items() if k != "positions")
        rows = "".join(
            "[[accounts.positions]]\n" + "".join(f"{k} = {_toml_value(v)}\n" for k, v in r.items())
            for r in a["positions"]
        )
        out.append("[[accounts]]\n" + head + rows)
    return "\n".join(out)


def write_book(
    m: Market, positions: int, rng: random.Random, kind: str, folder: Path
) -> tuple[str, int, int]:
    """The book as the configuration's accounts: ``toml`` (``[[accounts]]`` tables) or
    ``json`` (one ``file = "book.json"`` entry, the accounts in that file); returns (what
    goes in the configuration, positions written, bytes of the book)."""
    accounts, written = book_accounts(m, positions, rng)
    if kind == "json":
        data = json.dumps(accounts, separators=(",", ":")).encode()
        (folder / "book.json").write_bytes(data)
        return '[[accounts]]\nfile = "book.json"\n', written, len(data)
    text = book_toml(accounts)
    return text, written, len(text)


def config_toml(m: Market, ws: str, http: str, hook: str, book: str) -> str:
    symbols = ", ".join(f'"{c}"' for c in [*m.coins, PROBE])
    return f"""
[venues.hyperliquid]
ws_url = "{ws}"
rest_url = "{http}"
symbols = [{symbols}]
stale_after = 60
ping_interval = 5

[rules]
for = "30s"

[rules.margin_ratio]
warning = 0.5
warning_clear = 0.45
critical = 0.8
critical_clear = 0.75

[channels.hook]
url = "{hook}"
min_severity = "critical"
timeout = "10s"

[store]
path = "monitor.sqlite3"

[logging]
level = "info"
format = "json"

[daemon]
drain_deadline = 2
ready_timeout = 600

{book}
"""


# -- loopback servers ------------------------------------------------------------------------
@dataclass
class Servers:
    market: Market
    conns: list[Any] = field(default_factory=list)
    subscribed: set[str] = field(default_factory=set)
    posts: list[float] = field(default_factory=list)

    async def ws_handler(self, conn: Any) -> None:
        self.conns.append(conn)
        try:
            async for msg in conn:
                d = json.loads(msg)
                if d.get("method") == "ping":
                    await conn.send('{"channel":"pong"}')
                elif d.get("method") == "subscribe":
                    await conn.send(json.dumps({"channel": "subscriptionResponse", "data": d}))
                    sub = d["subscription"]
                    if sub.get("type") == "activeAssetCtx":
                        self.subscribed.add(sub["coin"])
        except websockets.ConnectionClosed:
            pass
        finally:
            self.conns.remove(conn)

    async def info(self, request: web.Request) -> web.Response:
        kind = json.loads(await request.text()).get("type")
        if kind == "metaAndAssetCtxs":
            return web.Response(text=self.market.meta(), content_type="application/json")
        return web.Response(text="[]", content_type="application/json")

    async def hook(self, request: web.Request) -> web.Response:
        await request.read()
        self.posts.append(time.time())
        return web.Response(text="ok")

    async def send(self, text: str) -> float:
        for c in list(self.conns):
            with contextlib.suppress(websockets.ConnectionClosed):
                await c.send(text)
        return time.time()


# -- the daemon process ----------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def status_kb(pid: int, name: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def log_lines(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            d = json.loads(line)
            if isinstance(d, dict):
                out.append(d)
    return out


def ts_of(d: dict[str, Any]) -> float:
    return datetime.fromisoformat(str(d["timestamp"]).replace("Z", "+00:00")).timestamp()


async def wait_for(cond: Any, limit: float, what: str) -> float:
    t0 = time.monotonic()
    while not cond():
        if time.monotonic() - t0 > limit:
            raise TimeoutError(f"no {what} within {limit:g} s")
        await asyncio.sleep(0.02)
    return time.monotonic() - t0


async def run_daemon(args: argparse.Namespace, positions: int, full: bool) -> dict[str, Any]:
    rng = random.Random(args.seed)
    m = Market.make(args.coins, rng)
    srv = Servers(m)
    tmp = Path(tempfile.mkdtemp(prefix="bench-daemon-"))
    app = web.Application()
    app.router.add_post("/info", srv.info)
    app.router.add_post("/hook", srv.hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    ws_server = await websockets.serve(srv.ws_handler, "127.0.0.1", 0, max_size=None)
    ws_port = next(iter(ws_server.sockets)).getsockname()[1]
    book, written, book_bytes = write_book(m, positions, rng, args.book, tmp)
    cfg = tmp / "monitor.toml"
    cfg.write_text(
        config_toml(
            m,
            f"ws://127.0.0.1:{ws_port}",
            f"http://127.0.0.1:{port}",
            f"json://127.0.0.1:{port}/hook",
            book,
        )
    )
    sock_path = tmp / "notify.sock"
    nsock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    nsock.bind(str(sock_path))
    nsock.setblocking(False)
    notes: list[str] = []

    def ready() -> bool:
        while True:
            try:
                notes.append(nsock.recv(65536).decode())
            except BlockingIOError:
                break
        return any("READY=1" in n.splitlines() for n in notes)

    env = {**os.environ, "NOTIFY_SOCKET": str(sock_path), "PYTHONPATH": str(ROOT)}
    logf = (tmp / "daemon.log").open("wb")
    t_spawn = time.monotonic()
    prof = ["-m", "cProfile", "-o", args.profile] if args.profile and full else []
    proc = await asyncio.create_subprocess_exec(
        sys.executable, *prof, "-m", "monitor", "run", "--config", str(cfg),
        stdout=logf, stderr=logf, env=env, cwd=tmp,
    )  # fmt: skip
    out: dict[str, Any] = {"positions": written, "book": args.book, "book_bytes": book_bytes}
    try:
        out["ready_s"] = await wait_for(ready, args.ready_wait, "READY=1")
        await wait_for(lambda: PROBE in srv.subscribed, 30, "subscriptions")
        await asyncio.sleep(1.0)  # the first REST prices are applied
        out["rss_ready_kb"] = status_kb(proc.pid, "VmRSS")
        out["peak_rss_ready_kb"] = status_kb(proc.pid, "VmHWM")  # where the peak is reached
        if not full:
            return out

        # -- idle ----------------------------------------------------------------------------
        async def keepalive() -> None:  # the venue keeps pushing (a feed silent 60 s is stale)
            while True:
                await asyncio.sleep(10.0)
                for c in [*m.coins, PROBE]:
                    await srv.send(frame(c, m.price.get(c, PROBE_SAFE)))

        quiet = asyncio.create_task(keepalive()) if args.keepalive else None
        await asyncio.sleep(args.settle)  # the first prices' sweep settles
        # the book loaded and evaluated (manual accounts load after READY): what it costs
        out["rss_settled_kb"] = status_kb(proc.pid, "VmRSS")
        out["peak_rss_settled_kb"] = status_kb(proc.pid, "VmHWM")
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        await asyncio.sleep(args.idle)
        if quiet is not None:
            quiet.cancel()
        out["idle_cpu_pct"] = 100 * (cpu_seconds(proc.pid) - c0) / (time.monotonic() - t0)
        # -- steady frames with probes -------------------------------------------------------
        sent_probe: list[tuple[float, bool]] = []
        step_scale = {c: (0.03 if c == "BTC" else 0.04 if c == "ETH" else 0.06) for c in m.coins}
        total_w = sum(m.weights)

        def walk(rate: float) -> str:
            """One frame of the random walk at ``rate`` frames/s: a coin drawn by popularity
            (Zipf), its price moved by a log-normal step of its volatility scaled to the pace;
            returns the coin."""
            i = rng.choices(range(len(m.coins)), weights=m.weights)[0]
            c = m.coins[i]
            share = m.weights[i] / total_w
            sigma = step_scale[c] * math.sqrt(1.0 / (86400.0 * rate * share))
            m.price[c] *= math.exp(rng.gauss(0.0, sigma * args.stress))
            return c

        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        n_frames = int(args.rate * args.steady)
        interval = 1.0 / args.rate
        hot = False
        next_probe = t0
        frames_sent = 0
        start = time.monotonic()
        while frames_sent < n_frames:
            now_m = time.monotonic()
            due = int((now_m - start) / interval) + 1
            while frames_sent < min(due, n_frames):
                c = walk(args.rate)
                await srv.send(frame(c, m.price[c]))
                frames_sent += 1
            if now_m >= next_probe:
                hot = not hot
                sent_probe.append(
                    (await srv.send(frame(PROBE, PROBE_HOT if hot else PROBE_SAFE)), hot)
                )
                next_probe = now_m + 0.2
            await asyncio.sleep(min(interval, 0.005))
        steady_s = time.monotonic() - t0
        out["steady_frames"] = frames_sent
        out["steady_rate"] = frames_sent / steady_s
        out["steady_cpu_pct"] = 100 * (cpu_seconds(proc.pid) - c0) / steady_s
        # back to safe before the crash, so the probe does not mix with it
        if hot:
            sent_probe.append((await srv.send(frame(PROBE, PROBE_SAFE)), False))
        await asyncio.sleep(2.0)
        # what the daemon holds once prices have moved for a while (the recent values of
        # every position re-evaluated: one sample a minute, 15 at most)
        out["rss_steady_kb"] = status_kb(proc.pid, "VmRSS")
        # -- crash ---------------------------------------------------------------------------
        db = sqlite3.connect(f"file:{tmp / 'monitor.sqlite3'}?mode=ro", uri=True, timeout=30)
        crash_start = time.time()
        posts_before = len(srv.posts)
        per = 1.0 / max(len(m.coins), 1)
        last_frame = crash_start
        for c in m.coins:
            m.price[c] *= CRASH
            last_frame = await srv.send(frame(c, m.price[c]))
            await asyncio.sleep(per)

        async def aftershocks() -> None:
            # --crash-rate: the market keeps ticking while the daemon works through the crash
            # (the steady phase's random walk, from the crashed prices); the probe's coin too,
            # every 10 s, or its subscription goes stale and the venue's alerts are held
            sent, start, probed = 0, time.monotonic(), time.monotonic()
            while True:
                if time.monotonic() - probed >= 10.0:
                    probed = time.monotonic()
                    await srv.send(frame(PROBE, m.price.get(PROBE, PROBE_SAFE)))
                due = int((time.monotonic() - start) * args.crash_rate) + 1
                while sent < due:
                    c = walk(args.crash_rate)
                    await srv.send(frame(c, m.price[c]))
                    sent += 1
                await asyncio.sleep(min(1.0 / args.crash_rate, 0.005))

        ticker = asyncio.create_task(keepalive() if args.crash_rate <= 0 else aftershocks())
        # incremental (the rows after the last one this poll saw): a count of every crash row
        # each 0.1 s took this process ~a core at 1,000,000 positions, beside the daemon's two
        q = (
            "SELECT count(CASE WHEN severity = 'critical' AND kind IN ('fired', 'escalated', "
            "'event') AND at >= ? AND subject NOT LIKE ? THEN 1 END), max(rowid) "
            "FROM transitions WHERE rowid > ?"
        )
        after = 0
        last_count, still_since = -1, time.monotonic()
        crash_deadline = time.monotonic() + args.crash_wait
        count, changed_at = 0, None
        seen: list[tuple[float, int]] = []  # (when this poll saw it, criticals committed)
        while time.monotonic() < crash_deadline:
            await asyncio.sleep(0.1)
            try:
                new, last = db.execute(q, (crash_start, "%:probe/%", after)).fetchone()
            except sqlite3.OperationalError:
                continue
            if last is not None:
                count, after = count + new, last
            if count != last_count:
                last_count, still_since = count, time.monotonic()
                changed_at = time.time()  # seen committed by this poll (0.1 s resolution)
                seen.append((changed_at, count))
            elif time.monotonic() - still_since >= args.still and len(srv.posts) > posts_before:
                break
        # delivery: posts still for --still s
        last_posts, still_since = -1, time.monotonic()
        while time.monotonic() < crash_deadline:
            if len(srv.posts) != last_posts:
                last_posts, still_since = len(srv.posts), time.monotonic()
            elif time.monotonic() - still_since >= args.still:
                break
            await asyncio.sleep(0.2)
        ticker.cancel()
        undelivered = db.execute(
            "SELECT count(*) FROM outbox WHERE status NOT IN ('delivered', 'expired', 'failed')"
        ).fetchone()[0]
        # the last message carrying a critical (the target), apart from the posts of
        # what follows the crash (resolutions, later escalations) that crash_delivered_s counts
        last_critical = db.execute(
            "SELECT max(delivered_at) FROM outbox WHERE severity = 'critical' "
            "AND notify_type = 'failure' AND created_at >= ? AND grp NOT LIKE '%:probe'",
            (crash_start,),
        ).fetchone()[0]
        db.close()
        crash_posts = srv.posts[posts_before:]
        out["crash_criticals"] = count
        out["crash_written_s"] = (changed_at - last_frame) if changed_at else None
        # the most urgent go first: when the first, half and 90 % of the criticals were in
        for name, share in (("first", 0.0), ("half", 0.5), ("p90", 0.9)):
            at = next((t for t, n in seen if n > 0 and n >= share * count), None)
            out[f"crash_written_{name}_s"] = (at - last_frame) if at is not None else None
        out["crash_posts"] = len(crash_posts)
        out["crash_delivered_s"] = (crash_posts[-1] - last_frame) if crash_posts else None
        out["crash_first_post_s"] = (crash_posts[0] - last_frame) if crash_posts else None
        out["crash_criticals_delivered_s"] = (
            (last_critical - last_frame) if last_critical is not None else None
        )
        out["crash_undelivered"] = undelivered
        out["crash_timed_out"] = time.monotonic() >= crash_deadline
        out["peak_rss_kb"] = status_kb(proc.pid, "VmHWM")
        # -- SIGTERM -------------------------------------------------------------------------
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        try:
            out["exit_code"] = await asyncio.wait_for(proc.wait(), 60)
            out["sigterm_s"] = time.monotonic() - t0
        except TimeoutError:
            out["exit_code"] = None
            out["sigterm_s"] = None
        logs = log_lines(tmp / "daemon.log")
        decisions = [
            ts_of(d)
            for d in logs
            if d.get("event") in ("alert.fired", "alert.resolved")
            and str(d.get("key", "")) == "margin_ratio|hyperliquid:probe/cross"
        ]
        lat = []
        for sent, _hot in sent_probe:
            after = [t for t in decisions if t >= sent - 0.001]
            if after:
                lat.append(min(after) - sent)
        out["probes"] = len(sent_probe)
        out["probe_decisions"] = len(decisions)
        if lat:
            lat.sort()
            out["latency_ms"] = {
                "p50": 1000 * statistics.median(lat),
                "p90": 1000 * lat[min(len(lat) - 1, int(0.90 * len(lat)))],
                "p99": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))],
                "max": 1000 * lat[-1],
                # with 50 probes p99 is the slowest (index 49): the slowest few, to judge it
                "slowest": [round(1000 * x, 1) for x in lat[-5:]],
            }
        stopped = [d for d in logs if d.get("event") == "daemon.stopped"]
        if stopped:
            out["longest_batch_s"] = stopped[-1].get("longest_batch_s")
        out["t_spawn_to_exit_s"] = time.monotonic() - t_spawn
        return out
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        logf.close()
        nsock.close()
        ws_server.close()
        await runner.cleanup()
        if args.keep:
            print(f"kept {tmp}", file=sys.stderr)


# -- the naive baseline ----------------------------------------------------------------------
def naive(args: argparse.Namespace, positions: int) -> dict[str, Any]:
    """Recompute only the scopes each frame touched, in full, and evaluate them (see module
    docstring), on the same seeded book and frames."""
    from monitor.alerts.engine import AlertState, Observation, evaluate
    from monitor.app import rules_of
    from monitor.config import load_config
    from monitor.model.portfolio import Portfolio
    from monitor.venues.hyperliquid.parse import HyperliquidParser

    rng = random.Random(args.seed)
    m = Market.make(args.coins, rng)
    with tempfile.TemporaryDirectory() as d:
        book, _, _ = write_book(m, positions, rng, args.book, Path(d))
        cfg = Path(d) / "monitor.toml"
        cfg.write_text(
            config_toml(m, "ws://127.0.0.1:1", "http://127.0.0.1:1", "json://127.0.0.1:1/h", book)
        )
        config = load_config(cfg, env={})
    rules = rules_of(config)
    parser = HyperliquidParser()
    pf = Portfolio()
    now = time.time()
    for ev in parser.parse_rest("metaAndAssetCtxs", m.meta(), now):
        pf.apply(ev)
    for a in config.accounts:
        if a.snapshot is not None:
            pf.apply(a.snapshot)
    state = AlertState()
    _, state = evaluate(Observation(risks=pf.risks()), now, state, rules)

    def one(text: str, t: float) -> int:
        nonlocal state
        touched: dict[Any, None] = {}
        for ev in parser.parse(text, t):
            touched.update(dict.fromkeys(pf.apply(ev)))
        risks = [r for k in touched if (r := pf.risk(k)) is not None]
        trs, state = evaluate(Observation(risks=risks), t, state, rules)
        return sum(1 for x in trs if x.severity.value == "critical" and x.kind.value == "fired")

    total_w = sum(m.weights)
    frames = []
    for _ in range(args.naive_frames):
        i = rng.choices(range(len(m.coins)), weights=m.weights)[0]
        c = m.coins[i]
        sigma = 0.06 * math.sqrt(1.0 / (86400.0 * args.rate * m.weights[i] / total_w))
        m.price[c] *= math.exp(rng.gauss(0.0, sigma))
        frames.append(frame(c, m.price[c]))
    t0 = time.perf_counter()
    for f in frames:
        one(f, now)
    steady = time.perf_counter() - t0
    t0 = time.perf_counter()
    crit = 0
    for c in m.coins:
        crit += one(frame(c, m.price[c] * CRASH), now + 1)
    crash = time.perf_counter() - t0
    return {
        "frames_per_s": len(frames) / steady if steady > 0 else None,
        "crash_compute_s": crash,
        "crash_criticals": crit,
    }


def main() -> None:
    run = __doc__.split("Run::", 1)[1].split("What runs", 1)[0]
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        epilog="examples:" + run + "The module's docstring says what each phase measures.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ap.add_argument(
        "--positions",
        type=int,
        default=2000,
        help="positions in the seeded book, over positions/5 manual accounts (default 2000)",
    )
    ap.add_argument("--coins", type=int, default=60, help="instruments the feed lists")
    ap.add_argument("--rate", type=float, default=200.0, help="steady frames/s")
    ap.add_argument("--steady", type=float, default=10.0, help="seconds of steady frames")
    ap.add_argument("--idle", type=float, default=10.0, help="seconds of idle")
    ap.add_argument("--settle", type=float, default=8.0, help="seconds after READY before idle")
    ap.add_argument("--stress", type=float, default=1.0, help="× the price steps")
    ap.add_argument(
        "--crash-wait",
        type=float,
        default=120.0,
        help="seconds at most to wait for the crash's criticals to be committed and posted",
    )
    ap.add_argument(
        "--still",
        type=float,
        default=5.0,
        help="the crash is over when no critical was committed (and no post made) for this "
        "many seconds; with --crash-rate, a step that stalls that long ends the count early: "
        "raise it",
    )
    ap.add_argument(
        "--crash-rate",
        type=float,
        default=0.0,
        help="frames/s the market keeps sending after the crash (0: one frame an instrument "
        "every 10 s, a keepalive)",
    )
    ap.add_argument(
        "--keepalive",
        action="store_true",
        help="through the settle and idle phases, send every instrument's unchanged price "
        "every 10 s (a live venue never goes silent; the feed then never goes stale)",
    )
    ap.add_argument(
        "--ready-wait", type=float, default=600.0, help="seconds at most to wait for READY=1"
    )
    ap.add_argument(
        "--naive-frames", type=int, default=200, help="frames of the naive baseline (0: none)"
    )
    ap.add_argument("--seed", type=int, default=7, help="the book's and the prices' seed")
    ap.add_argument(
        "--book",
        choices=("toml", "json"),
        default="toml",
        help='the manual accounts as [[accounts]] tables or as one file = "book.json" entry',
    )
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    ap.add_argument("--profile", help="run the daemon under cProfile, writing this file")
    args = ap.parse_args()
    base = asyncio.run(run_daemon(args, 1, full=False))
    res = asyncio.run(run_daemon(args, args.positions, full=True))
    res["rss_one_position_kb"] = base["rss_ready_kb"]
    res["bytes_per_position"] = (
        1024 * (res["rss_settled_kb"] - base["rss_ready_kb"]) / max(res["positions"], 1)
    )
    res["bytes_per_position_steady"] = (
        1024 * (res["rss_steady_kb"] - base["rss_ready_kb"]) / max(res["positions"], 1)
    )
    # --naive-frames 0: no baseline (at 1,000,000 positions it alone takes many minutes)
    res["naive"] = naive(args, args.positions) if args.naive_frames > 0 else None
    res["machine"] = (
        f"{platform.machine()} {os.cpu_count()} CPU, Python {platform.python_version()}"
    )
    for k, v in res.items():
        print(f"{k:>24}: {v}", file=sys.stderr)
    print(json.dumps(res, default=str))


if __name__ == "__main__":
    main()
