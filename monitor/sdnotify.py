"""The systemd notification protocol (sd_notify(3)) in a few lines of our own.

``$NOTIFY_SOCKET`` names an AF_UNIX datagram socket: a filesystem path, or an abstract-namespace
name when it starts with ``@`` (sent as a leading NUL byte). Each message is newline-separated
``KEY=VALUE`` lines: ``READY=1``, ``STATUS=…``, ``WATCHDOG=1``, ``RELOADING=1``, ``STOPPING=1``.

Values are made safe for the protocol (:func:`one_line`): a value is one line (line breaks
and tabs become spaces), other control characters (NUL, ESC, C1, bidi overrides) are written
as escapes (:func:`monitor.logs.escape_controls`), and it is cut to :data:`MAX_VALUE`
characters (ending in ``…``). A ``STATUS=`` can carry venue-chosen text (an instrument or
account name in the summary): a newline in it would forge another assignment
(``READY=1``, ``MAINPID=``), and a NUL makes systemd drop the whole datagram ("embedded NUL
bytes"), so a ``READY=1`` sent with it would be lost and the unit would time out at start.

Without ``NOTIFY_SOCKET`` every call is a no-op that returns False, so the daemon runs the same
outside systemd. Send failures (the manager went away) are logged once per kind, never raised:
notification is advisory and must not stop the daemon.

``watchdog_interval()`` is how often to send ``WATCHDOG=1``: half of ``$WATCHDOG_USEC`` (in
seconds), or None when the watchdog is off or meant for another process (``$WATCHDOG_PID``).
``watchdog_loop()`` sends it from a task on the event loop, so a blocked or dead loop stops the
pings (and systemd restarts us); it must never be tied to exchange availability.
"""

from __future__ import annotations

import os
import re
import socket
from collections.abc import Callable, Mapping
from typing import Final

import structlog

from monitor.clock import Clock
from monitor.logs import escape_controls

log = structlog.get_logger()

#: the longest value sent (characters, after escaping; a longer one is cut, ending in "…"):
#: ``systemctl status`` shows one line, and the datagram stays far below any socket limit
MAX_VALUE: Final = 400
_BREAKS = re.compile(r"[\r\n\t\v\f\x85\u2028\u2029]+")


def one_line(value: object, limit: int = MAX_VALUE) -> str:
    """``str(value)`` as one safe line: runs of line breaks and tabs become one space, other
    control characters their escapes (``\\x00``, ``\\x1b``, ``\\u202e``), cut to
    ``limit`` characters with a trailing ``…``."""
    text = escape_controls(_BREAKS.sub(" ", str(value)))
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text


def _address(value: str) -> str | bytes:
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value


class Notifier:
    """Sends state to systemd; a no-op when ``NOTIFY_SOCKET`` is not set.

    ``env`` defaults to :data:`os.environ` (read once, at construction).
    """

    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        value = env.get("NOTIFY_SOCKET", "")
        self._addr: str | bytes | None = _address(value) if value else None
        self._sock: socket.socket | None = None
        self._failed = False

    @property
    def enabled(self) -> bool:
        return self._addr is not None

    def notify(self, **fields: object) -> bool:
        """Send ``KEY=VALUE`` lines (keys upper-cased, values through :func:`one_line`); True
        when the datagram was sent."""
        if self._addr is None or not fields:
            return False
        lines = []
        for key, value in fields.items():
            lines.append(f"{key.upper()}={one_line(value)}")
        payload = "\n".join(lines).encode("utf-8", "backslashreplace")
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # never block the event loop: a receiver that does not read (its buffer
                # full) loses this datagram instead of freezing the daemon
                self._sock.setblocking(False)
            self._sock.sendto(payload, self._addr)
        except OSError as exc:
            if not self._failed:
                log.warning("sdnotify.failed", error=str(exc))
                self._failed = True
            return False
        self._failed = False
        return True

    def ready(self, status: str | None = None) -> bool:
        if status is None:
            return self.notify(READY=1)
        return self.notify(READY=1, STATUS=status)

    def status(self, text: str) -> bool:
        return self.notify(STATUS=text)

    def watchdog(self) -> bool:
        return self.notify(WATCHDOG=1)

    def reloading(self) -> bool:
        return self.notify(RELOADING=1)

    def stopping(self) -> bool:
        return self.notify(STOPPING=1)

    def extend_timeout(self, seconds: float) -> bool:
        """Ask for ``seconds`` more before systemd's start/stop timeout hits
        (``EXTEND_TIMEOUT_USEC``), e.g. while a long drain makes progress."""
        return self.notify(EXTEND_TIMEOUT_USEC=max(int(seconds * 1_000_000), 0))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(env: Mapping[str, str] | None = None) -> float | None:
    """Seconds between ``WATCHDOG=1`` pings: half of ``WATCHDOG_USEC``; None when disabled."""
    env = os.environ if env is None else env
    raw = env.get("WATCHDOG_USEC")
    if not raw:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None
    try:
        usec = int(raw)
    except ValueError:
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000 / 2.0


async def watchdog_loop(
    notifier: Notifier,
    interval: float,
    *,
    clock: Clock,
    healthy: Callable[[], bool] | None = None,
) -> None:
    """Send ``WATCHDOG=1`` now and every ``interval`` seconds until cancelled.

    ``healthy`` (optional) is asked before each ping; while it returns False no ping is sent,
    so systemd's ``WatchdogSec=`` runs out and the unit is restarted. Use it for the daemon's
    own liveness (the engine task is alive), never for a venue's.
    """
    if interval <= 0.0:
        raise ValueError("the watchdog interval must be positive")
    skipping = False
    while True:
        if healthy is None or healthy():
            notifier.watchdog()
            skipping = False
        elif not skipping:
            log.warning("sdnotify.watchdog_withheld")
            skipping = True
        await clock.sleep(interval)
