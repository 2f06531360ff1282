"""A token made of letters only is masked in a channel's shown form (``Channel.redacted``,
``Channel.label``: the outbox's log lines and "delivery failing" alerts).

:func:`monitor.notify.channels.channel_form` showed every path segment of up to 24 letters
as a plain word. A Slack webhook token is 24 characters of ``[A-Za-z0-9]``: about 1.5 % of
them hold no digit ((52/62)^24 ≈ 0.0146) and were shown whole; a Gotify application token
(15 characters, ``A`` and 14 of ``[A-Za-z0-9._-]``) has no digit about 9 % of the time. A
plain word is now lower case (a capital first allowed: ``Alerts``); a mixed-case run of
letters is masked like any other token."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from monitor.notify.channels import Channel, adhoc_channel, channel_form, parse_channels
from monitor.store.db import Store
from tests.notify.conftest import WebhookServer
from tests.notify.once import try_once

#: a Slack webhook token (24 characters) that happens to hold no digit
SLACK_TOKEN = "XbVqTnLwRmKsPdYcHgZfJaEu"
#: a Gotify application token (15 characters) that happens to hold no digit
GOTIFY_TOKEN = "AbKqLmNoPrStUvW"


def _pieces(secret: str, size: int = 4) -> set[str]:
    return {secret[i : i + size] for i in range(len(secret) - size + 1)}


def _leaks(text: str, secret: str) -> list[str]:
    return sorted(p for p in _pieces(secret) if p in text)


def _one(url: str) -> Channel:
    (ch,) = parse_channels({"c": {"url": url}}, "t", env={}, credentials_dir=None)
    return ch


@pytest.mark.parametrize(
    ("url", "shown", "secret"),
    [
        (
            f"https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/{SLACK_TOKEN}",
            "https://hooks.slack.com/services/***/***/***",
            SLACK_TOKEN,
        ),
        (f"slack://T1JJ3T3L2/A1BRTD4JD/{SLACK_TOKEN}", "slack://***/***/***", SLACK_TOKEN),
        (
            f"gotify://gotify.example.com/{GOTIFY_TOKEN}",
            "gotify://gotify.example.com/***",
            GOTIFY_TOKEN,
        ),
    ],
)
def test_a_token_of_letters_only_is_masked_in_the_channels_name(
    url: str, shown: str, secret: str
) -> None:
    ch = _one(url)
    assert ch.redacted == shown  # was …/XbVqTnLwRmKsPdYcHgZfJaEu, …/AbKqLmNoPrStUvW
    assert _leaks(ch.label, secret) == []
    assert adhoc_channel(url, 0).redacted == shown


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("other://h.io/hooks/services/send", "other://h.io/hooks/services/send"),
        ("other://h.io/Alerts/desk-ops/a.b_c", "other://h.io/Alerts/desk-ops/a.b_c"),
        ("other://h.io/-1001234567890", "other://h.io/-1001234567890"),
        ("other://h.io/AlErTs/aBc", "other://h.io/***/***"),
    ],
)
def test_lower_case_words_and_numbers_stay_shown(url: str, shown: str) -> None:
    assert channel_form(url) == shown


async def test_a_failing_webhook_with_a_letters_only_token_logs_no_part_of_it(
    store: Store, webhook: WebhookServer
) -> None:
    webhook.down = True
    ch = _one(f"json://127.0.0.1:{webhook.port}/services/{SLACK_TOKEN}")
    with capture_logs() as logs:
        assert await try_once(store, ch) == 0
    assert webhook.attempts == 1  # apprise posted to the loopback server, which answered 500
    (retry,) = [e for e in logs if e["event"] == "outbox.retry"]
    assert retry["channel"] == f"c (json://127.0.0.1:{webhook.port}/services/***)"
    assert _leaks(repr(logs), SLACK_TOKEN) == []
