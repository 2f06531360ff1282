"""The last gasp (issue 10 item 11): a real store made unusable (SQLite's own disk-full and
corruption errors), then one direct message through apprise to real loopback services: a
webhook server and aiosmtpd. Nothing goes through the outbox."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from monitor.errors import FatalError
from monitor.notify.channels import Channel, parse_channels
from monitor.notify.last_gasp import (
    MAX_ERROR,
    TITLE,
    describe_store_failure,
    gasp_body,
    is_store_failure,
    last_gasp,
)
from monitor.notify.sender import AppriseSender
from monitor.store import outbox
from monitor.store.db import Store, open_store
from monitor.store.outbox import OutboundMessage
from tests.notify.conftest import SmtpServer, WebhookServer, free_port

NOW = 1_778_000_000.0  # 2026-05-05T16:53:20Z


def channels(
    table: dict[str, dict[str, object]], env: dict[str, str] | None = None
) -> list[Channel]:
    return parse_channels(table, "t.toml", env=env or {}, credentials_dir=None)


def row(key: str, body: str = "x") -> OutboundMessage:
    return OutboundMessage(
        idem_key=key,
        channel="hook",
        group="hyperliquid:0xabc",
        severity="critical",
        title="t",
        body=body,
        body_format="text",
        notify_type="failure",
        created_at=NOW,
    )


async def fill_to_the_brim(store: Store) -> None:
    """The disk is full: the database may not grow by one page more (SQLite's own limit,
    raising the same SQLITE_FULL a full filesystem gives)."""
    [(pages,)] = list(await store.conn.execute_fetchall("PRAGMA page_count"))
    await store.conn.execute(f"PRAGMA max_page_count = {pages}")


async def a_failed_write(store: Store) -> BaseException:
    """What the daemon's next write raises: an outbox row too big for what is left."""
    with pytest.raises(sqlite3.Error) as info:
        async with store.transaction() as conn:
            await outbox.enqueue(conn, [row("k1", "y" * 200_000)])
    return info.value


@pytest.fixture
async def full_store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await open_store(tmp_path / "monitor.sqlite3")
    await fill_to_the_brim(store)
    yield store
    await store.close()


async def test_a_full_disk_gets_one_direct_message_to_the_webhook_and_the_email(
    full_store: Store, webhook: WebhookServer, smtp: SmtpServer
) -> None:
    exc = await a_failed_write(full_store)
    assert is_store_failure(exc)
    error = f"store {full_store.path}: {describe_store_failure(exc)}"
    assert "database or disk is full" in error
    chans = channels({"hook": {"url": webhook.url()}, "mail": {"url": smtp.url()}})

    sent = await last_gasp(chans, AppriseSender(), error, timeout=10.0, host="vps-1", now=NOW)

    assert sent == 2
    [(path, doc)] = webhook.posts
    assert path == "/hook"
    assert doc["title"] == TITLE
    assert doc["type"] == "failure"
    assert "The margin monitor on vps-1" in doc["message"]
    assert "exiting (code 1) at 2026-05-05T16:53:20Z" in doc["message"]
    assert f"Error: store {full_store.path}: database or disk is full" in doc["message"]
    assert webhook.headers[0]["Idempotency-Key"].startswith("last-gasp:")
    [mail] = smtp.messages
    assert mail["Subject"] == TITLE
    body = mail.get_body(preferencelist=("plain",))
    assert body is not None and "database or disk is full" in body.get_content()
    # nothing went through (or could have gone into) the outbox
    assert await outbox.backlog(full_store) == (0, None)


async def test_a_corrupted_store_is_a_store_failure_and_its_error_is_what_is_sent(
    tmp_path: Path, webhook: WebhookServer
) -> None:
    path = tmp_path / "monitor.sqlite3"
    store = await open_store(path)
    try:
        async with store.transaction() as conn:
            await outbox.enqueue(conn, [row(f"k{i}", "y" * 1000) for i in range(200)])
        await store.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        await store.conn.execute("PRAGMA cache_size = 0")  # read pages from the file again
        size = path.stat().st_size
        with path.open("r+b") as f:  # every page past the first overwritten: a bad disk
            f.seek(4096)
            f.write(os.urandom(size - 4096))
        with pytest.raises(sqlite3.DatabaseError) as info:
            async with store.transaction() as conn:
                await conn.execute("UPDATE outbox SET attempts = attempts + 1")
        assert is_store_failure(info.value)
        error = f"store {path}: {describe_store_failure(info.value)}"
        assert "database disk image is malformed" in error
        sent = await last_gasp(
            channels({"hook": {"url": webhook.url()}}), AppriseSender(), error, 10.0
        )
        assert sent == 1
        assert "database disk image is malformed" in webhook.posts[0][1]["message"]
    finally:
        await store.close()


async def test_a_dead_or_refusing_channel_does_not_stop_the_others(
    webhook: WebhookServer, tmp_path: Path
) -> None:
    refusing = WebhookServer()
    await refusing.start()
    refusing.down = True  # answers 500
    try:
        chans = channels(
            {
                "gone": {"url": f"json://127.0.0.1:{free_port()}/x"},  # nothing listens
                "refusing": {"url": refusing.url()},
                "hook": {"url": webhook.url()},
            }
        )
        sent = await last_gasp(chans, AppriseSender(), "store: disk I/O error", timeout=10.0)
    finally:
        await refusing.stop()
    assert sent == 1  # only "hook" confirmed
    assert refusing.attempts == 1  # one message, no retries: there is no outbox to retry from
    assert len(webhook.posts) == 1


async def test_a_channel_that_never_answers_is_given_up_within_the_timeout(
    webhook: WebhookServer,
) -> None:
    held: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)  # accept, read nothing, answer nothing

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        chans = channels(
            {
                "mute": {"url": f"json://127.0.0.1:{port}/x", "timeout": 60},
                "hook": {"url": webhook.url()},
            }
        )
        started = time.monotonic()
        sent = await last_gasp(chans, AppriseSender(), "store: database or disk is full", 2.0)
        elapsed = time.monotonic() - started
    finally:
        for w in held:
            w.close()
        server.close()
        await server.wait_closed()
    assert sent == 1
    assert held  # the silent server was reached
    # bounded by the gasp's 2 s, not the channel's 60 s (1 s of slack for a loaded machine)
    assert elapsed < 3.0


async def test_the_error_is_masked_per_channel_and_has_no_control_characters(
    webhook: WebhookServer,
) -> None:
    token = "s3cr3t-hook-token-0123456789"
    chans = channels(
        {"hook": {"url": f"{webhook.url()}/${{HOOK_TOKEN}}"}}, env={"HOOK_TOKEN": token}
    )
    error = f"store /var/lib/monitor/x\x1b[2J\r\nFAKE LINE: {token} \u202e"
    assert await last_gasp(chans, AppriseSender(), error, timeout=10.0) == 1
    [(path, doc)] = webhook.posts
    assert path == f"/hook/{token}"  # the real URL was used...
    assert token not in doc["message"]  # ...but the message never shows it
    assert "x\\x1b[2J\\r\\nFAKE LINE: *** \\u202e" in doc["message"]


async def test_without_channels_nothing_is_sent() -> None:
    assert await last_gasp([], AppriseSender(), "store: disk full", timeout=1.0) == 0


def test_a_long_error_is_cut() -> None:
    body = gasp_body("E" * 5000, host="h", pid=1, at=NOW)
    [line] = [ln for ln in body.splitlines() if ln.startswith("Error: ")]
    assert line == "Error: " + "E" * (MAX_ERROR - 1) + "…"  # 499 E and the ellipsis: 500


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    try:
        try:
            raise inner
        except BaseException:
            raise outer  # noqa: B904 -- the implicit context is the point
    except BaseException as exc:
        return exc


@pytest.mark.parametrize(
    ("exc", "store_failure"),
    [
        (sqlite3.OperationalError("database or disk is full"), True),
        (sqlite3.DatabaseError("database disk image is malformed"), True),
        (sqlite3.OperationalError("attempt to write a readonly database"), True),
        (
            _chained(RuntimeError("persist failed"), sqlite3.OperationalError("disk I/O error")),
            True,
        ),
        (ValueError("a bug"), False),
        (FatalError("cannot bind the metrics port"), False),
        (None, False),
    ],
)
def test_which_failures_are_store_failures(exc: BaseException | None, store_failure: bool) -> None:
    assert is_store_failure(exc) is store_failure


def test_the_original_sqlite_error_comes_first() -> None:
    exc = _chained(
        sqlite3.OperationalError("cannot rollback - no transaction is active"),
        sqlite3.OperationalError("database or disk is full"),
    )
    assert describe_store_failure(exc) == (
        "database or disk is full (then: cannot rollback - no transaction is active)"
    )
    assert describe_store_failure(ValueError("x")) == "ValueError: x"
