"""The last gasp: one direct notification when the store becomes unusable.

Every notification normally goes through the durable outbox in the SQLite store. When the
store itself fails (disk full: ``sqlite3.OperationalError: database or disk is full``;
corruption: ``sqlite3.DatabaseError: database disk image is malformed``; the file gone or
read-only), nothing can be queued any more and the daemon must exit 1 — silently, unless it
says so first. :func:`last_gasp` sends **one** critical message to every channel at once,
straight through the sender (apprise), bypassing the outbox and the per-channel rate limits,
and returns how many channels confirmed it. It never raises and never takes longer than
``timeout`` seconds: a channel that does not answer in time is given up (its plugin's own
connect and read timeouts are lowered to fit, so no send outlives the daemon for long).

Each channel's copy has the channel's secrets masked (:meth:`Channel.scrub`) and control
characters neutralised: the error text may quote a path or SQLite's message.

The shell decides when: :func:`is_store_failure` tells a store failure (an
``sqlite3.Error`` anywhere in the exception's cause or context chain) from other crashes.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import socket
import sqlite3
import time
from collections.abc import Sequence
from typing import Any, Final

import structlog

from monitor.logs import escape_controls
from monitor.notify.channels import Channel
from monitor.notify.sender import Sender

#: the title of the message (also the email subject)
TITLE: Final = "[CRITICAL] monitor stopped: its store is unusable"
#: at most this much of the error text goes into the message (characters)
MAX_ERROR: Final = 500
#: apprise's notification type of the message (red in the services that colour it)
NOTIFY_TYPE: Final = "failure"


def log() -> Any:
    """A fresh logger per call (never a module-level proxy pinned by structlog's cache)."""
    return structlog.get_logger()


def is_store_failure(exc: BaseException | None) -> bool:
    """True when ``exc``, or an exception in its ``__cause__``/``__context__`` chain, is an
    ``sqlite3.Error`` (``OperationalError``: disk full, read-only, I/O error, locked for
    good; ``DatabaseError``: corruption; ...): the store can no longer take writes."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, sqlite3.Error):
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


def describe_store_failure(exc: BaseException) -> str:
    """The SQLite errors of ``exc``'s chain as one line, the original first: a disk-full
    ``INSERT`` ends SQLite's transaction itself, so the store's ``ROLLBACK`` then raises
    "cannot rollback - no transaction is active", which hides the real cause in
    ``__context__``. Gives ``"database or disk is full (then: cannot rollback - no
    transaction is active)"``; ``type: message`` of ``exc`` when the chain has none."""
    found: list[str] = []
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, sqlite3.Error):
            text = str(cur) or type(cur).__name__
            if text not in found:
                found.append(text)
        cur = cur.__cause__ or cur.__context__
    if not found:
        return f"{type(exc).__name__}: {exc}"
    first, *later = reversed(found)
    return first + (f" (then: {'; '.join(later)})" if later else "")


def gasp_body(error: str, *, host: str, pid: int, at: float) -> str:
    """The message text (plain text). ``error``: why the store failed; ``at``: epoch seconds
    (shown in UTC)."""
    when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
    text = escape_controls(error.strip())
    if len(text) > MAX_ERROR:
        text = text[: MAX_ERROR - 1] + "…"
    return (
        f"The margin monitor on {escape_controls(host)} (pid {pid}) cannot write its store "
        f"and is exiting (code 1) at {when}.\n"
        f"Error: {text}\n"
        "Until it is restarted with a usable store, NO margin, liquidation or feed alerts "
        "are evaluated or sent: watch your positions on the venues directly.\n"
        "Check the disk (df -h) and the store file (sqlite3 FILE 'PRAGMA integrity_check'), "
        "then restart the service (systemctl restart monitor)."
    )


async def last_gasp(
    channels: Sequence[Channel],
    sender: Sender,
    error: str,
    timeout: float,  # noqa: ASYNC109 -- the signature the shell calls; a bound on the whole
    *,
    host: str | None = None,
    now: float | None = None,
) -> int:
    """Send one critical "store unusable" message to every channel at once; return how many
    confirmed delivery (0 to ``len(channels)``).

    ``error``: the failure as text (e.g. ``f"store {path}: {exc}"``), masked per channel.
    ``timeout``: seconds for the whole attempt (> 0); each channel's own ``timeout`` is
    lowered to ``timeout / 2`` at most, so its connect and read timeouts fit. ``host`` and
    ``now`` (epoch seconds) default to this machine's name and the wall clock (shown to the
    reader only). Never raises: a sender error, a refusal or a timeout counts as not sent
    and is logged (``last_gasp.failed``), with the channel's label only.
    """
    if not channels:
        log().error("last_gasp.no_channels")
        return 0
    bound = max(timeout, 0.01)
    body = gasp_body(
        error,
        host=socket.gethostname() if host is None else host,
        pid=os.getpid(),
        at=time.time() if now is None else now,
    )
    idem_key = f"last-gasp:{os.getpid()}:{int(time.monotonic() * 1000)}"

    async def one(channel: Channel) -> bool:
        quick = dataclasses.replace(channel, timeout=min(channel.timeout, bound / 2))
        try:
            result = await sender.send(
                quick,
                TITLE,
                channel.scrub(body),
                "text",
                NOTIFY_TYPE,
                idem_key=f"{idem_key}:{channel.name}",
            )
        except Exception as exc:  # a sender bug must not stop the others
            log().error(
                "last_gasp.failed",
                channel=channel.label,
                error=channel.scrub(f"{type(exc).__name__}: {exc}"),
            )
            return False
        if not result.ok:
            log().error("last_gasp.failed", channel=channel.label, error=result.error)
        return result.ok

    tasks = [asyncio.ensure_future(one(c)) for c in channels]
    done, pending = await asyncio.wait(tasks, timeout=bound)
    for t in pending:
        t.cancel()
    if pending:
        await asyncio.wait(pending, timeout=1.0)  # let the cancellations land
        late = [c.label for c, t in zip(channels, tasks, strict=True) if t in pending]
        log().error("last_gasp.timed_out", channels=late, timeout=bound)
    sent = sum(1 for t in done if not t.cancelled() and t.exception() is None and t.result())
    log().critical("last_gasp.sent", sent=sent, channels=len(channels))
    return sent


__all__ = [
    "MAX_ERROR",
    "TITLE",
    "describe_store_failure",
    "gasp_body",
    "is_store_failure",
    "last_gasp",
]
