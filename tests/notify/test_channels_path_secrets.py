"""A secret in a channel URL's path is masked even when it is a plain lower-case word, in
the channel's shown form (``Channel.redacted``, ``Channel.label``: the outbox's log lines,
"delivery failing" alerts, ``check-config``) and in the log (apprise and urllib3 write the
URL whole at debug: the masked parts are registered with the redactor).

:func:`monitor.notify.channels.channel_form` showed every lower-case word of a path: an
ntfy topic (``ntfys://ntfy.sh/mytopic``: whoever knows it reads the alerts; in
``ntfy://TOPIC`` the topic is the host), a Gotify, Mattermost or Apprise API token, a
Discord or Slack webhook token (``https://discord.com/api/webhooks/ID/TOKEN`` too) and a
token in a json/form/xml webhook's path, when it held no capital and no digit. Now the
path of a scheme whose apprise plugin puts a private token there, and ntfy's, is masked
whole; a webhook's (json, form, xml, http, https) shows only common path words
(``hooks``, ``services``, ``api``, ``v1``); the path of any other scheme is apprise's
public targets (a Telegram chat, a Pushover device), shown as before."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog

from monitor.logs import configure_logging, reset_logging
from monitor.notify.channels import (
    SECRET_PATH_SCHEMES,
    Channel,
    adhoc_channel,
    channel_form,
    parse_channels,
)
from monitor.store.db import Store
from tests.notify.conftest import WebhookServer
from tests.notify.once import try_once

TOPIC = "deskalerts"  # an ntfy topic: lower-case letters only (each case adds a word)
TOKEN = "lowercasetoken"  # with that word, at most 24 lower-case letters: a "plain word" before


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    reset_logging()
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    yield out
    reset_logging()


def _one(url: str) -> Channel:
    (ch,) = parse_channels({"c": {"url": url}}, "t", env={}, credentials_dir=None)
    return ch


@pytest.mark.parametrize(
    ("url", "shown", "secret"),
    [
        (f"ntfys://ntfy.example.com/{TOPIC}alpha", "ntfys://ntfy.example.com/***", TOPIC + "alpha"),
        (f"ntfy://ntfy.sh/{TOPIC}bravo", "ntfy://ntfy.sh/***", TOPIC + "bravo"),
        (f"ntfy://ntfy.sh/{TOPIC}charlie/v1", "ntfy://ntfy.sh/***/***", TOPIC + "charlie"),
        # the topic as the host (apprise's cloud form): a dotted topic read as a host name
        ("ntfy://desk.alerts.private", "ntfy://***", "desk.alerts.private"),
        (f"ntfy://{TOPIC}echo", "ntfy://***", TOPIC + "echo"),
        (f"https://ntfy.sh/{TOPIC}foxtrot", "https://ntfy.sh/***", TOPIC + "foxtrot"),
        # mode=cloud reads the host as one more topic
        (
            f"ntfys://ntfy.example.com/{TOPIC}golf?mode=cloud",
            "ntfys://***/***?mode=***",
            TOPIC + "golf",
        ),
        # apprise's private path tokens
        (
            f"gotify://gotify.example.com/{TOKEN}hotel",
            "gotify://gotify.example.com/***",
            TOKEN + "hotel",
        ),
        (f"mmost://chat.example.com/{TOKEN}india", "mmost://chat.example.com/***", TOKEN + "india"),
        (
            f"apprise://apprise.example.com/{TOKEN}juliet",
            "apprise://apprise.example.com/***",
            TOKEN + "juliet",
        ),
        (f"discord://123456789012345678/{TOKEN}kilo", "discord://***/***", TOKEN + "kilo"),
        (f"slack://T1JJ3T3L2/A1BRTD4JD/{TOKEN}lima", "slack://***/***/***", TOKEN + "lima"),
        # apprise's native https forms
        (
            f"https://discord.com/api/webhooks/123456789012345678/{TOKEN}mike",
            "https://discord.com/api/webhooks/***/***",
            TOKEN + "mike",
        ),
        (
            f"https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/{TOKEN}november",
            "https://hooks.slack.com/services/***/***/***",
            TOKEN + "november",
        ),
        # a token in a json/form/xml webhook's path
        (
            f"json://hooks.example.com/hooks/{TOKEN}oscar",
            "json://hooks.example.com/hooks/***",
            TOKEN + "oscar",
        ),
        (
            f"form://hooks.example.com/{TOKEN}papa/v1",
            "form://hooks.example.com/***/v1",
            TOKEN + "papa",
        ),
        (
            f"xmls://hooks.example.com/api/{TOKEN}quebec",
            "xmls://hooks.example.com/api/***",
            TOKEN + "quebec",
        ),
    ],
)
def test_a_lower_case_secret_in_the_path_is_masked_in_the_name_and_the_log(
    url: str, shown: str, secret: str, json_log: io.StringIO
) -> None:
    ch = _one(url)
    assert ch.redacted == shown  # was the secret, whole
    assert secret not in ch.label
    assert adhoc_channel(url, 0).redacted == shown
    # what apprise's and urllib3's debug lines do: write the URL whole
    structlog.get_logger().debug("apprise.line", text=f"Loaded URL: {url}", channel=ch.label)
    text = json_log.getvalue()  # apprise's own debug lines from parsing the URL, and ours
    assert secret not in text
    (line,) = (d for d in map(json.loads, text.splitlines()) if d["event"] == "apprise.line")
    assert line["channel"] == f"c ({shown})"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        # apprise's public targets: a Telegram chat, a Pushover device
        ("tgram://123456789:AAHsecretAAHsecretAAHsecretAAHsecret/-1001234", "tgram://***/-1001234"),
        ("pover://Uuserkey12345@Aapptoken12345/phone", "pover://***@***/phone"),
        # a webhook's common path words and numbers
        ("json://hooks.example.com/api/v2/hooks/42", "json://hooks.example.com/api/v2/hooks/42"),
        ("https://hooks.example.com/services/notify", "https://hooks.example.com/services/notify"),
        # the ntfy server's own name stays shown
        ("ntfys://ntfy.sh/x1", "ntfys://ntfy.sh/***"),
    ],
)
def test_public_targets_and_common_path_words_stay_shown(url: str, shown: str) -> None:
    assert channel_form(url) == shown


def test_every_apprise_scheme_with_a_private_path_token_is_listed() -> None:
    """Read from apprise itself: every plugin whose URL templates put a token apprise marks
    private after the host (``{schema}://{host}/{token}``) has its schemes in
    :data:`SECRET_PATH_SCHEMES`. Fails when an apprise upgrade adds one."""
    import re

    from apprise.manager_plugins import NotificationManager

    missing: set[str] = set()
    for plugin in NotificationManager().plugins():
        tokens = getattr(plugin, "template_tokens", {}) or {}
        private = False
        for template in getattr(plugin, "templates", ()) or ():
            path = template.partition("://")[2].partition("/")[2]
            if any(tokens.get(n, {}).get("private") for n in re.findall(r"\{(\w+)\}", path)):
                private = True
        if not private:
            continue
        for attr in ("protocol", "secure_protocol"):
            value = getattr(plugin, attr, None)
            names = [value] if isinstance(value, str) else list(value or ())
            missing |= {n.lower() for n in names} - SECRET_PATH_SCHEMES
    assert missing == set()
    assert {"ntfy", "ntfys"} <= SECRET_PATH_SCHEMES  # topics: not marked private by apprise


@pytest.mark.parametrize(
    "path",
    [f"ntfy://127.0.0.1:{{port}}/{TOPIC}", f"gotify://127.0.0.1:{{port}}/{TOKEN}"],
    ids=["ntfy-topic", "gotify-token"],
)
async def test_a_failing_delivery_logs_no_part_of_a_path_secret_at_debug(
    store: Store, webhook: WebhookServer, json_log: io.StringIO, path: str
) -> None:
    webhook.down = True
    url = path.format(port=webhook.port)
    ch = _one(url)
    assert await try_once(store, ch) == 0
    assert webhook.attempts == 1  # apprise posted to the loopback server, which answered 500
    text = json_log.getvalue()
    assert "127.0.0.1" in text  # apprise's and urllib3's debug lines are there…
    secret = url.rpartition("/")[2]
    assert secret not in text  # …without the topic or token
