from __future__ import annotations

import asyncio
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.clock import FakeClock
from monitor.sdnotify import MAX_VALUE, Notifier, one_line, watchdog_interval, watchdog_loop


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2.0)
    yield sock, str(path)
    sock.close()


def test_no_socket_means_no_op() -> None:
    n = Notifier(env={})
    assert not n.enabled
    assert n.ready() is False
    assert n.watchdog() is False


def test_messages_arrive_on_a_real_datagram_socket(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(env={"NOTIFY_SOCKET": path})
    assert n.enabled
    assert n.ready(status="2 accounts, 3 scopes")
    assert sock.recv(4096) == b"READY=1\nSTATUS=2 accounts, 3 scopes"
    assert n.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert n.status("line one\nline two")
    assert sock.recv(4096) == b"STATUS=line one line two"
    assert n.reloading()
    assert sock.recv(4096) == b"RELOADING=1"
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    assert n.notify(extend_timeout_usec=5_000_000)
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=5000000"
    assert n.extend_timeout(2.5)
    assert sock.recv(4096) == b"EXTEND_TIMEOUT_USEC=2500000"  # 2.5 s in µs
    n.close()


def test_abstract_namespace_socket() -> None:
    name = f"monitor-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(2.0)
    try:
        n = Notifier(env={"NOTIFY_SOCKET": "@" + name})
        assert n.ready()
        assert sock.recv(4096) == b"READY=1"
        n.close()
    finally:
        sock.close()


def test_vanished_socket_is_reported_not_raised(tmp_path: Path) -> None:
    n = Notifier(env={"NOTIFY_SOCKET": str(tmp_path / "gone.sock")})
    assert n.ready() is False
    assert n.watchdog() is False
    n.close()


def test_notifier_reads_os_environ_by_default(
    listener: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = listener
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    n = Notifier()
    assert n.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    n.close()


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "30000000"}, 15.0),  # 30 s / 2
        ({"WATCHDOG_USEC": "500000"}, 0.25),  # 0.5 s / 2
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "junk"}, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}, None),  # meant for pid 1
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    env: dict[str, str], expected: float | None
) -> None:
    assert watchdog_interval(env) == expected


def test_watchdog_interval_accepts_our_own_pid() -> None:
    env = {"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_interval(env) == 2.0


def drain(sock: socket.socket) -> list[bytes]:
    sock.setblocking(False)
    out: list[bytes] = []
    while True:
        try:
            out.append(sock.recv(4096))
        except BlockingIOError:
            return out


async def test_watchdog_loop_pings_at_the_interval(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    clock = FakeClock()
    n = Notifier(env={"NOTIFY_SOCKET": path})
    task = asyncio.create_task(watchdog_loop(n, 2.5, clock=clock))
    await clock.run_for(10.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # at t = 0, 2.5, 5, 7.5, 10
    assert drain(sock) == [b"WATCHDOG=1"] * 5
    n.close()


async def test_watchdog_loop_withholds_pings_while_unhealthy(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    clock = FakeClock()
    n = Notifier(env={"NOTIFY_SOCKET": path})
    state = {"ok": True}
    task = asyncio.create_task(watchdog_loop(n, 1.0, clock=clock, healthy=lambda: state["ok"]))
    await clock.run_for(1.0)  # pings at 0 and 1
    state["ok"] = False
    await clock.run_for(3.0)  # none at 2, 3, 4
    state["ok"] = True
    await clock.run_for(1.0)  # one at 5
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert drain(sock) == [b"WATCHDOG=1"] * 3
    n.close()


async def test_watchdog_loop_refuses_a_zero_interval() -> None:
    with pytest.raises(ValueError, match="positive"):
        await watchdog_loop(Notifier(env={}), 0.0, clock=FakeClock())


def test_a_receiver_that_does_not_read_never_blocks_the_sender(tmp_path: Path) -> None:
    """With the receiver's buffer full, notify returns False at once instead of blocking."""
    path = tmp_path / "full.sock"
    rx = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    rx.bind(str(path))
    try:
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        results = [n.watchdog() for _ in range(5000)]  # far beyond any datagram queue
        assert results[0] is True
        assert results[-1] is False
        n.close()
    finally:
        rx.close()


# -- venue-chosen text in STATUS= (issue 10 item 10) -----------------------------------------
def test_a_status_with_venue_chosen_text_stays_one_safe_assignment(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    n = Notifier(env={"NOTIFY_SOCKET": path})
    # a summary naming a scope of a HIP-3 coin whose deployer chose this name
    hostile = "worst 97.1% (hyperliquid:0xabc/iso:PWN\nMAINPID=1\r\nSTOPPING=1\x00\x1b[2J\u202e)"
    assert n.ready(status=hostile)
    payload = sock.recv(4096)
    assert b"\0" not in payload  # systemd drops a datagram with an embedded NUL, READY included
    assert payload.split(b"\n") == [
        b"READY=1",
        b"STATUS=worst 97.1% (hyperliquid:0xabc/iso:PWN MAINPID=1 STOPPING=1\\x00\\x1b[2J\\u202e)",
    ]
    n.close()


def test_a_long_status_is_cut_with_an_ellipsis(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    n = Notifier(env={"NOTIFY_SOCKET": path})
    assert n.status("x" * 5000)
    payload = sock.recv(65536).decode()
    assert payload == "STATUS=" + "x" * (MAX_VALUE - 1) + "…"  # 399 x and the ellipsis: 400
    n.close()


def test_a_lone_surrogate_in_a_status_is_sent_not_raised(
    listener: tuple[socket.socket, str],
) -> None:
    sock, path = listener
    n = Notifier(env={"NOTIFY_SOCKET": path})
    assert n.status("coin BTC\ud800")  # json.loads("\"\\ud800\"") gives one
    assert sock.recv(4096) == b"STATUS=coin BTC\\ud800"
    n.close()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain 3 scopes; 0 alerts firing", "plain 3 scopes; 0 alerts firing"),
        ("a\n\n\tb", "a b"),  # a run of breaks is one space
        ("a\u2028b\x85c\vd\fe", "a b c d e"),  # every line break python or systemd knows
        ("bell\x07", "bell\\x07"),
        (12, "12"),
    ],
)
def test_one_line(value: object, expected: str) -> None:
    assert one_line(value) == expected


def test_one_line_limit() -> None:
    assert one_line("abcdef", limit=4) == "abc…"
    assert one_line("abcd", limit=4) == "abcd"
