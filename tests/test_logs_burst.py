"""A burst of log lines (``logs.burst()``, issue 12): our lines written without a flush each,
flushed once at the burst's end (an exception too); outside a burst every line is flushed
at once; the text is the same either way."""

from __future__ import annotations

import asyncio
import contextvars
import io
import json
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from structlog.testing import capture_logs

from monitor import logs
from monitor.logs import configure_logging, reset_logging


class Stream(io.StringIO):
    """A stream that shows what its flushes let out: ``batches`` holds the text of each flush
    (what was written since the one before), ``unflushed`` what waits for the next."""

    def __init__(self) -> None:
        super().__init__()
        self.batches: list[str] = []
        self._sent = 0

    def flush(self) -> None:
        super().flush()
        text = self.getvalue()
        self.batches.append(text[self._sent :])
        self._sent = len(text)

    @property
    def flushed(self) -> str:
        return self.getvalue()[: self._sent]

    @property
    def unflushed(self) -> str:
        return self.getvalue()[self._sent :]


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    yield
    reset_logging()


def _configured() -> Stream:
    stream = Stream()
    configure_logging("info", "json", stream, journald=False)
    return stream


_TIMESTAMP = re.compile(r'"timestamp": "[^"]*"')


def _untimed(text: str) -> str:
    """``text`` with each line's timestamp made one (the lines are written at other times)."""
    return _TIMESTAMP.sub('"timestamp": "T"', text)


def _alert_lines(n: int) -> None:
    info = structlog.get_logger().bind().info
    for i in range(n):
        info(
            "alert.fired",
            key=f"margin_ratio|hyperliquid:0x1111…1111/cross#{i}",
            severity="critical",
            value=0.93,
            threshold=0.8,
            muted=False,
        )


def test_a_burst_of_lines_is_flushed_once_and_reads_as_the_unbatched_lines() -> None:
    n = 50
    unbatched = _configured()
    _alert_lines(n)
    assert len(unbatched.batches) == n  # outside a burst: a flush per line
    assert all(b.count("\n") == 1 for b in unbatched.batches)

    batched = _configured()
    with logs.burst():
        _alert_lines(n)
        assert batched.batches == []  # nothing flushed yet: the lines wait in the buffer
        assert batched.unflushed.count("\n") == n
    assert len(batched.batches) == 1  # the exit's one flush lets out all 50 lines
    assert batched.batches[0].count("\n") == n
    assert batched.unflushed == ""
    assert _untimed(batched.getvalue()) == _untimed(unbatched.getvalue())
    assert _untimed(batched.getvalue()).splitlines()[7] == (
        '{"key": "margin_ratio|hyperliquid:0x1111\\u20261111/cross#7", "severity": '
        '"critical", "value": 0.93, "threshold": 0.8, "muted": false, "event": '
        '"alert.fired", "level": "info", "timestamp": "T"}'
    )


def test_each_line_outside_a_burst_is_flushed_as_it_is_written() -> None:
    stream = _configured()
    log = structlog.get_logger()
    with logs.burst():
        log.info("inside")
    for i in range(3):
        log.warning("outside", i=i)
        assert stream.unflushed == ""  # flushed before info() returned
        assert stream.batches[-1].count("\n") == 1
    assert len(stream.batches) == 1 + 3  # the burst's one, then one per line


def test_an_exception_inside_a_burst_still_flushes_what_was_written() -> None:
    stream = _configured()
    log = structlog.get_logger()

    def fail_after_three_lines() -> None:
        with logs.burst():
            for i in range(3):
                log.info("line", i=i)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_after_three_lines()
    assert stream.unflushed == ""
    assert len(stream.batches) == 1
    assert [json.loads(line)["i"] for line in stream.batches[0].splitlines()] == [0, 1, 2]


def test_a_nested_burst_leaves_the_flush_to_the_outer_one() -> None:
    stream = _configured()
    log = structlog.get_logger()
    with logs.burst():
        log.info("a")
        with logs.burst():
            log.info("b")
        assert stream.batches == []  # the inner exit flushed nothing
        log.info("c")
    assert [json.loads(line)["event"] for line in stream.batches[0].splitlines()] == [
        "a",
        "b",
        "c",
    ]
    assert len(stream.batches) == 1


def test_a_line_from_another_thread_in_the_bursts_context_is_flushed_at_once() -> None:
    """A thread running a copy of the burst's context (``asyncio.to_thread`` copies it) is
    not the burst's: its line is flushed as it is written (with what waited before it)."""
    stream = _configured()
    log = structlog.get_logger()
    with logs.burst():
        log.info("mine")
        ctx = contextvars.copy_context()
        worker = threading.Thread(target=ctx.run, args=(lambda: log.info("theirs"),))
        worker.start()
        worker.join()
        assert stream.unflushed == ""
        assert '"event": "theirs"' in stream.flushed


async def test_a_task_started_in_a_burst_flushes_its_lines_after_the_burst() -> None:
    """A task inherits a copy of the context, the burst with it: once the burst is over its
    lines are flushed at once again (nothing sits in the buffer while the daemon idles)."""
    stream = _configured()
    gate = asyncio.Event()

    async def later() -> None:
        await gate.wait()
        structlog.get_logger().info("later")

    with logs.burst():
        task = asyncio.create_task(later())
    gate.set()
    await task
    assert stream.unflushed == ""
    assert '"event": "later"' in stream.batches[-1]


def test_a_reconfigured_stream_in_a_burst_is_flushed_with_the_old_one() -> None:
    first = _configured()
    log = structlog.get_logger()
    with logs.burst():
        log.info("one")
        second = _configured()  # a reload: the lines go to the new stream from here
        log.info("two")
        assert first.batches == second.batches == []
    assert first.unflushed == second.unflushed == ""
    assert [json.loads(b)["event"] for b in first.batches] == ["one"]
    assert [json.loads(b)["event"] for b in second.batches] == ["two"]


def test_capture_logs_captures_lines_of_a_burst() -> None:
    stream = _configured()
    with capture_logs() as captured, logs.burst():
        structlog.get_logger().info("alert.fired", key="k")
    assert captured == [{"event": "alert.fired", "key": "k", "log_level": "info"}]
    assert stream.getvalue() == ""


class _BrokenFlush(Stream):
    def flush(self) -> None:
        raise OSError("broken pipe")


def test_a_failed_flush_at_the_end_of_a_burst_is_raised_unless_the_body_raised() -> None:
    stream = _BrokenFlush()
    configure_logging("info", "json", stream, journald=False)
    log = structlog.get_logger()
    with pytest.raises(OSError, match="broken pipe"), logs.burst():
        log.info("a")

    def fail() -> None:
        with logs.burst():
            log.info("b")
            raise KeyError("b")

    with pytest.raises(KeyError):  # the body's error, not the flush's
        fail()


class _SlowStream(Stream):
    """Writes a character at a time, letting other threads run between them."""

    def write(self, s: str) -> int:
        for c in s:
            super().write(c)
            time.sleep(0)
        return len(s)


def test_lines_of_threads_never_interleave_in_or_out_of_a_burst() -> None:
    stream = _SlowStream()
    configure_logging("info", "json", stream, journald=False)

    def writer(n: int) -> None:
        log = structlog.get_logger()
        with logs.burst():
            for i in range(20):
                log.info("line", thread=n, i=i)
        for i in range(20, 40):
            log.info("line", thread=n, i=i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 4 * 40
    for n in range(4):
        assert [e["i"] for e in lines if e["thread"] == n] == list(range(40))
    assert stream.unflushed == ""


def test_the_log_file_holds_every_line_of_a_burst_once_it_ends(tmp_path: Path) -> None:
    """A real file, read through another handle: the lines are there once the burst is
    over."""
    path = tmp_path / "daemon.log"
    with path.open("w", encoding="utf-8") as out:
        configure_logging("info", "json", out, journald=False)
        with logs.burst():
            _alert_lines(200)
        assert path.read_text(encoding="utf-8").count('"alert.fired"') == 200


async def test_a_steps_alert_lines_reach_the_stream_in_one_flush(tmp_path: Path) -> None:
    """The shell's step (:func:`monitor.shell.persist`, a real engine and SQLite store): the
    alert lines of a step that fires on four accounts at once are flushed together, and none
    waits in the buffer once the step is persisted."""
    from monitor.alerts.rules import parse_rules
    from monitor.clock import FakeClock
    from monitor.model.events import AccountSnapshot
    from monitor.model.instruments import MaintenanceSchedule
    from monitor.model.positions import Position, ScopeKey
    from monitor.notify.channels import parse_channels
    from monitor.notify.sender import AppriseSender
    from monitor.store.db import open_store
    from tests.notify import scenario
    from tests.notify.pipeline import Pipeline

    names = [f"acct{i}" for i in range(4)]
    keys = [ScopeKey(scenario.VENUE, name, "cross") for name in names]

    def account(name: str) -> AccountSnapshot:
        """Long 1 BTC from 10,000, 1,000 of collateral, maintenance 5 %: at 9,500 equity
        500, maintenance 475, ratio 0.95 ≥ critical 0.9."""
        btc = Position(
            "BTC", 1.0, 10_000.0, maintenance=MaintenanceSchedule.flat(0.05), mark_price=10_000.0
        )
        return AccountSnapshot(scenario.VENUE, name, cross_collateral=1_000.0, positions=(btc,))

    stream = _configured()
    (hook,) = parse_channels(
        {"hook": {"url": "json://127.0.0.1:9/x", "min_severity": "info"}},
        "t",
        env={},
        credentials_dir=None,
    )
    store = await open_store(tmp_path / "monitor.db")
    try:
        clock = FakeClock(start=1_777_636_800.0)
        service = await Pipeline.start(
            store,
            parse_rules(scenario.RULES_TABLE, "t"),
            [hook],
            sender=AppriseSender(),
            clock=clock,
            accounts=tuple(k.account_key for k in keys),
        )
        assert await service.process([account(name) for name in names]) == []  # ratio 0.5
        clock.advance(1.0)
        fired = await service.process([scenario.price(9_500.0)])
        assert [t.kind.value for t in fired] == ["fired"] * 4  # one per account
    finally:
        await store.close()
    assert stream.unflushed == ""
    alert_batches = [b for b in stream.batches if '"alert.fired"' in b]
    assert len(alert_batches) == 1  # the step's four lines, one flush
    assert alert_batches[0].count('"alert.fired"') == 4
