"""A channel shows itself (``Channel.redacted``, ``Channel.label``: the outbox's log lines and
"delivery failing" alerts) by our own masked form of its URL, never apprise's privacy form,
which keeps a token's first and last characters (``tgram://1...0/``) and a token typed into
a webhook's path whole. The form: the scheme; the host when it reads as a public host name or
address (a Telegram bot token in the host place does not); ``***@`` for a user and password;
path segments that are plain words or numbers (``hooks``, ``-1001234``), every other one
``***``; query keys with their values masked."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest
from structlog.testing import capture_logs

from monitor.notify.channels import Channel, adhoc_channel, channel_form, parse_channels
from monitor.store.db import Store
from tests.notify.conftest import TG_TOKEN, TelegramStandIn, WebhookServer, free_port
from tests.notify.once import try_once

HOOK_TOKEN = "T0k3nAbCdEf9876xyzQ"
PASSWORD = "hunter2-Pass"


def _pieces(secret: str, size: int = 4) -> set[str]:
    """Every run of ``size`` characters of ``secret``, and apprise's ``first...last``."""
    runs = {secret[i : i + size] for i in range(len(secret) - size + 1)}
    return runs | {f"{secret[0]}...{secret[-1]}", f"...{secret[-4:]}"}


def _leaks(text: str, secret: str) -> list[str]:
    return sorted(p for p in _pieces(secret) if p in text)


def _one(url: str, env: dict[str, str] | None = None, **opts: object) -> Channel:
    (ch,) = parse_channels({"c": {"url": url, **opts}}, "t", env=env or {}, credentials_dir=None)
    return ch


@pytest.mark.parametrize(
    ("url", "env", "shown"),
    [
        ("tgram://${TG}/-1001234567890", {"TG": TG_TOKEN}, "tgram://***/-1001234567890"),
        (f"tgram://{TG_TOKEN}/-1001234567890", {}, "tgram://***/-1001234567890"),
        (
            "mailtos://alice:${PW}@smtp.example.com:587?to=bob@example.com",
            {"PW": PASSWORD},
            "mailtos://***@smtp.example.com:587?to=***",
        ),
        (f"mailtos://alice:{PASSWORD}@smtp.example.com", {}, "mailtos://***@smtp.example.com"),
        (
            "json://hooks.example.com/services/${HOOK}",
            {"HOOK": HOOK_TOKEN},
            "json://hooks.example.com/services/***",
        ),
        (
            f"json://hooks.example.com/services/{HOOK_TOKEN}",
            {},
            "json://hooks.example.com/services/***",
        ),
        (
            f"jsons://hooks.example.com/hooks?-token={HOOK_TOKEN}",
            {},
            "jsons://hooks.example.com/hooks?-token=***",
        ),
    ],
)
def test_a_channel_shows_scheme_public_host_and_plain_path_words_only(
    url: str, env: dict[str, str], shown: str
) -> None:
    ch = _one(url, env)
    assert ch.redacted == shown
    assert ch.label == f"c ({shown})"
    for secret in (TG_TOKEN.split(":")[1], PASSWORD, HOOK_TOKEN):
        assert _leaks(ch.label, secret) == []


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"tgram://{TG_TOKEN}/-100", "tgram://***/-100"),
        (f"json://127.0.0.1:9/hooks/{HOOK_TOKEN}", "json://127.0.0.1:9/hooks/***"),
        # a webhook's path word that is no common one may be a token: masked
        ("json://127.0.0.1:1/closed", "json://127.0.0.1:1/***"),
        ("json://127.0.0.1:1/hooks", "json://127.0.0.1:1/hooks"),
        ("discord://1234567890123456789/abcdefghijklmnopqrstuvwxyz012345", "discord://***/***"),
        ("slack://T1JJ3T3L2/A1BRTD4JD/TIiajkdnlazkcOXrIdevi7FQ", "slack://***/***/***"),
        (
            "pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
            "pover://***@***",
        ),
    ],
)
def test_an_adhoc_channel_is_shown_in_the_same_masked_form(url: str, shown: str) -> None:
    assert adhoc_channel(url, 0).redacted == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # ``other://``: no apprise scheme (``x://`` is apprise's X/Twitter, whose path holds
        # its keys: every segment masked, tests/notify/test_channels_path_secrets.py)
        # a host that is no public name: a bot token, a webhook id, capitals, a random label
        ("other://123456789:AAHsecret/", "other://***/"),
        ("other://Hooks.Example.com/", "other://***/"),
        ("other://a1b2c3d4e5f6g7h8.example.com/", "other://***/"),
        ("other://h.example.com:notaport/", "other://***/"),
        # public ones
        ("other://h.example.com:8443/a", "other://h.example.com:8443/a"),
        ("other://localhost/a", "other://localhost/a"),
        ("other://[::1]:9/a", "other://[::1]:9/a"),
        ("other://10.0.0.2/a", "other://10.0.0.2/a"),
        # path words: plain words and numbers shown, anything else masked
        ("other://h.io/api/v1/send", "other://h.io/api/***/send"),
        ("other://h.io/a%20b/-42/+15551234567", "other://h.io/***/-42/***"),
        ("other://h.io/a#frag", "other://h.io/a#…"),
        ("other://h.io/?to=a@b.c&Secret12345678Key=1", "other://h.io/?to=***&***=***"),
        ("not a url", "<not a URL>"),
    ],
)
def test_channel_form_rules(url: str, shown: str) -> None:
    assert channel_form(url) == shown


async def _fail_once(store: Store, ch: Channel) -> list[MutableMapping[str, Any]]:
    """Queue one row for ``ch``, let the real worker and apprise try it once; the logs."""
    with capture_logs() as logs:
        assert await try_once(store, ch) == 0
    return logs


async def test_a_failing_webhook_with_a_token_in_its_path_logs_no_part_of_it(
    store: Store, webhook: WebhookServer
) -> None:
    webhook.down = True
    ch = _one(f"json://127.0.0.1:{webhook.port}/services/{HOOK_TOKEN}")
    logs = await _fail_once(store, ch)
    assert webhook.attempts == 1  # apprise posted to the loopback server, which answered 500
    (retry,) = [e for e in logs if e["event"] == "outbox.retry"]
    assert retry["channel"] == f"c (json://127.0.0.1:{webhook.port}/services/***)"
    assert _leaks(repr(logs), HOOK_TOKEN) == []


async def test_a_failing_telegram_channel_logs_no_character_run_of_its_token(
    store: Store, telegram: TelegramStandIn, tgram_schema: str
) -> None:
    telegram.replies = [(500, None)]
    ch = _one(tgram_schema)
    logs = await _fail_once(store, ch)
    assert telegram.attempts == 1
    (retry,) = [e for e in logs if e["event"] == "outbox.retry"]
    assert retry["channel"] == "c (tgramtest://***/-1001234567890)"
    assert _leaks(repr(logs), TG_TOKEN.split(":")[1]) == []


async def test_an_unreachable_smtp_server_logs_no_part_of_the_password(store: Store) -> None:
    port = free_port()  # nobody listens: the connection is refused
    url = f"mailto://alice:{PASSWORD}@127.0.0.1:{port}?from=bot@example.com&to=bob@example.com"
    ch = _one(url, timeout=2)
    logs = await _fail_once(store, ch)
    (retry,) = [e for e in logs if e["event"] == "outbox.retry"]
    assert retry["channel"] == f"c (mailto://***@127.0.0.1:{port}?from=***&to=***)"
    assert _leaks(repr(logs), PASSWORD) == []
