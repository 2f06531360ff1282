"""A token typed into a channel URL's path or host (not through ``${ENV}``) stays out of the
log at ``level = "debug"``.

apprise writes the URL whole in its own debug lines (``Loaded JSON URL: json://…/TOKEN``,
``JSON POST URL: http://…/TOKEN``) and so does urllib3 (``"POST /services/TOKEN HTTP/1.1"``):
only ``${ENV}``/``${file:…}`` values and a URL password were registered with the log
redactor, so a webhook token written into the URL reached journald whole once an operator
turned debug logging on to look at a failing channel. The parts of the URL its shown form
masks (:func:`monitor.notify.channels.channel_form`: a host that is no public name, every
path segment that is not a plain word or number) and the query values sent as a header or
a GET parameter (``+H=…``, ``-k=…``) or named like a secret are now registered as secrets."""

from __future__ import annotations

import io
from collections.abc import Iterator

import pytest

from monitor.logs import configure_logging, reset_logging
from monitor.notify.channels import adhoc_channel, parse_channels
from monitor.store.db import Store
from tests.notify.conftest import WebhookServer
from tests.notify.once import try_once

#: typed into the URL, no ${ENV}: letters and digits, as webhook tokens are
TOKEN = "Wh7kTok3nQpL9xZ2vB4n"
#: for the ad hoc (``--url``) channel
ADHOC_TOKEN = "Ad9hocT0kenRr5Ss6Tt7"


@pytest.fixture
def debug_log() -> Iterator[io.StringIO]:
    reset_logging()
    out = io.StringIO()
    configure_logging("debug", "json", stream=out)
    yield out
    reset_logging()


async def _fail_once(store: Store, url: str, *, adhoc: bool) -> None:
    if adhoc:
        ch = adhoc_channel(url, 0)
    else:
        (ch,) = parse_channels({"c": {"url": url}}, "t", env={}, credentials_dir=None)
    assert await try_once(store, ch) == 0


@pytest.mark.parametrize(("token", "adhoc"), [(TOKEN, False), (ADHOC_TOKEN, True)])
async def test_a_token_typed_into_a_webhook_path_is_not_in_the_debug_log(
    store: Store, webhook: WebhookServer, debug_log: io.StringIO, token: str, adhoc: bool
) -> None:
    webhook.down = True
    await _fail_once(store, f"json://127.0.0.1:{webhook.port}/services/{token}", adhoc=adhoc)
    assert webhook.attempts == 1  # apprise posted to the loopback server, which answered 500
    text = debug_log.getvalue()
    assert "JSON POST URL: http://127.0.0.1" in text  # apprise's debug line is there…
    assert "/services/***" in text  # …with the path word kept and the token masked
    assert token not in text


async def test_a_token_in_a_header_or_get_parameter_of_the_query_is_not_in_the_debug_log(
    store: Store, webhook: WebhookServer, debug_log: io.StringIO
) -> None:
    webhook.down = True
    header, param = "Hd8rT0kenAa1Bb2Cc3Dd", "Gp7aramT0kEe4Ff5Gg6H"
    url = (
        f"json://127.0.0.1:{webhook.port}/services?+X-Auth={header}&-token={param}&format=markdown"
    )
    await _fail_once(store, url, adhoc=False)
    assert webhook.attempts == 1
    text = debug_log.getvalue()
    assert "Loaded JSON URL: json://127.0.0.1" in text
    assert header not in text and param not in text
