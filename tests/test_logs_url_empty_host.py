"""A URL's password is masked when no host follows its ``@`` (an empty host: a ``${HOST}``
left empty, a URL an exception quotes as invalid): ``smtp://alice:hunter2@:587``. The
rewritten URL scan read the password's end as the ``@`` a host follows, and with none it
showed the password whole (the scan before it masked these). A URL whose user is an e-mail
address typed with its ``@`` (``smtps://alice@example.com:pw@smtp.gmail.com:465/``) hides its
password too (both scans showed it when a path or query followed the host)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from monitor.logs import redact, reset_logging


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    reset_logging()
    yield
    reset_logging()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("smtp://alice:hunter2@:587", "smtp://alice:***@:587"),
        ("https://alice:hunter2@:443/x", "https://alice:***@:443/x"),
        ("https://alice:hunter2@/path", "https://alice:***@/path"),
        ("https://alice:hunter2@", "https://alice:***@"),
        ("https://alice:hunter2@?x=1", "https://alice:***@?x=1"),
        ("https://alice:hunter2@#top", "https://alice:***@#top"),
        ("login https://alice:p@ss@/x failed", "login https://alice:***@/x failed"),
    ],
)
def test_a_url_password_before_an_empty_host_is_masked(text: str, masked: str) -> None:
    assert redact(text) == masked
    assert "hunter2" not in redact(text)


def test_an_invalid_url_quoted_by_an_exception_shows_none_of_its_password() -> None:
    # the '@' of the query's address is read as the password's end: more is masked, never less
    shown = redact("InvalidURL('mailtos://alice:hunter2@:587?to=bob@example.com')")
    assert "hunter2" not in shown
    assert shown.startswith("InvalidURL('mailtos://alice:***@")


@pytest.mark.parametrize(
    "text",
    [
        # a host and its port, then a path holding '@' (a venue's stream): no password
        "wss://fstream.binance.com:443/stream?streams=btcusdt@markPrice/ethusdt@markPrice",
        "ws://localhost:8080/ws/btcusdt@markPrice",
        "http://127.0.0.1:8080/x failed; contact admin@example.com",
        "http://myhost:8080 failed; contact admin@example.com",
        "https://host.example.com:8443 said hi to bob@example.com",
    ],
)
def test_a_host_and_port_before_an_at_in_the_path_stays_shown(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # an e-mail address typed as the user, its '@' unencoded, then a path or a query
        (
            "smtps://alice@example.com:hunter2@smtp.gmail.com:465/",
            "smtps://alice@example.com:***@smtp.gmail.com:465/",
        ),
        (
            "https://alice@example.com:hunter2@hooks.example.com/x",
            "https://alice@example.com:***@hooks.example.com/x",
        ),
        (
            "login smtp://ops@desk.example.com:hunter2@mail.local/ failed",
            "login smtp://ops@desk.example.com:***@mail.local/ failed",
        ),
    ],
)
def test_a_url_whose_user_is_an_e_mail_address_hides_its_password(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        # a user, then a host and its port: no password
        "wss://bob@fstream.binance.com:443/ws/btcusdt@markPrice",
        "https://bob@host.example.com:8443/x?from=a@b.com",
        "https://bob@host.example.com/path@x",
    ],
)
def test_a_url_user_then_a_host_and_port_stays_shown(text: str) -> None:
    assert redact(text) == text
