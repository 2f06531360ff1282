"""A ``user:password@host`` credential written without a scheme (an SMTP host string, a
library's error text) is masked like the password of a ``scheme://`` URL; timestamps, IPv6
addresses, e-mail addresses and ``venue:account`` names are left alone.

A ``venue:account@x/scope`` name is not a ``user:password@host``: a manual account's name
may hold ``@`` (``ops@desk``), and a ccxt symbol's ``:`` (``BTC/USDT:USDT``) stands before
the ``@`` of a transition id. Without a scheme, a credential's host has no path after it, so
a ``/`` after the host means a name, left whole in the logs; the credentials themselves are
still masked."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from monitor.errors import ConfigError
from monitor.logs import configure_logging, redact, reset_logging
from monitor.notify.channels import adhoc_channel

HL = "0x" + "1a" * 20  # a Hyperliquid address: 0x + 40 hex digits


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    reset_logging()
    yield
    reset_logging()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("alice:hunter2@smtp.example.com:587", "alice:***@smtp.example.com:587"),
        ("smtp host bob:s3cr3t@mail.local refused", "smtp host bob:***@mail.local refused"),
        ('host="bob:s3cr3t@mail.local"', 'host="bob:***@mail.local"'),
        ("(alice:pw@10.0.0.2:25)", "(alice:***@10.0.0.2:25)"),
        ("alice:pw@[2001:db8::1]:587", "alice:***@[2001:db8::1]:587"),
        # an e-mail address as the user: the password is what lies between ':' and the host
        ("alice@example.com:hunter2@smtp.example.com", "alice@example.com:***@smtp.example.com"),
        # a password holding ':' or '@' is masked whole (up to the last '@' of the word)
        ("a:b:c@h", "a:***@h"),
        ("alice:p@ss@smtp.example.com", "alice:***@smtp.example.com"),
        ("alice:p%40ss@smtp.example.com", "alice:***@smtp.example.com"),
        # with a scheme: the URL pattern and this one agree
        ("smtps://alice:hunter2@smtp.example.com", "smtps://alice:***@smtp.example.com"),
        ("s://u:p@ss@h", "s://u:***@h"),
        ("u:" + "p" * 256 + "@h", "u:***@h"),  # the longest password masked
    ],
)
def test_a_schemeless_user_password_at_host_has_its_password_masked(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "12:30:01@host",
        "at 12:30:45@primary",
        "2026-11-30T12:30:01Z@worker",
        "2026-11-30T12:30:01.123+00:00@worker",
        "2026-11-30 12:30:01@worker",
        "fe80::1@eth0",
        "[2001:db8::1]:587",
        "user@[2001:db8::1]",
        "2001:db8::1",
        "alice@example.com",
        "a@b.c",
        "mailto:bob@example.com",
        "MAILTO:bob@example.com",
        "localhost:25?from=monitor@localhost",
        "hyperliquid:0xabc/cross",
        "dydx:dydx1abc/0",
        f"hyperliquid:{HL}@xyz",
        f"hyperliquid:{HL}@xyz/cross#xyz:TSLA",
        "hyperliquid:0x1111…1111@xyz",
        f"feed:hyperliquid/clearinghouseState:{HL}@xyz",
        "alert k|hyperliquid:0xab/cross to bob@example.com",
        "alice:@host",  # no password to mask
        "to: bob@example.com",
    ],
)
def test_what_only_looks_like_user_password_at_host_is_left_alone(text: str) -> None:
    assert redact(text) == text


_user = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,11}", fullmatch=True)
_password = st.text(
    st.characters(codec="ascii", categories=["L", "N", "P", "S"], exclude_characters="/?#[]@:\\"),
    min_size=1,
    max_size=16,
).filter(lambda p: not p.lower().startswith("0x"))
_host = st.from_regex(r"[a-z][a-z0-9-]{0,9}(\.[a-z]{2,5}){1,2}(:[0-9]{2,5})?", fullmatch=True)


@given(_user, _password, _host)
def test_any_user_password_host_loses_its_password(user: str, password: str, host: str) -> None:
    text = f"connect to {user}:{password}@{host} failed"
    assert redact(text) == f"connect to {user}:***@{host} failed"


@given(
    st.from_regex(r"[a-z0-9._+-]{1,12}@[a-z0-9-]{1,10}\.[a-z]{2,5}", fullmatch=True),
    st.from_regex(r"[0-9a-f]{40}", fullmatch=True),
    st.from_regex(r"[a-z]{1,6}", fullmatch=True),
    st.from_regex(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}Z", fullmatch=True),
)
def test_emails_hyperliquid_accounts_and_timestamps_are_never_masked(
    email: str, address: str, dex: str, stamp: str
) -> None:
    for text in (
        email,
        f"hyperliquid:0x{address}@{dex}/cross",
        f"hyperliquid:0x{address.upper()}@{dex}",
        f"{stamp}@{dex}",
        f"to {email} at {stamp}",
    ):
        assert redact(text) == text


def test_a_log_line_and_an_exception_never_carry_the_schemeless_password() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = structlog.get_logger()
    log.error("smtp.failed", host="alice:hunter2@smtp.example.com:587")
    try:
        raise ConnectionError("login refused for bob:s3cr3t@mail.local")
    except ConnectionError:
        log.exception("send.failed")
    text = out.getvalue()
    assert "hunter2" not in text and "s3cr3t" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["host"] == "alice:***@smtp.example.com:587"
    assert second["exception"][0]["exc_value"] == "login refused for bob:***@mail.local"


def test_a_channel_url_without_a_scheme_is_refused_without_its_password() -> None:
    # monitor/notify/channels.py masks its errors and names with the same redact()
    with pytest.raises(ConfigError) as info:
        adhoc_channel("alice:hunter2@smtp.example.com:587", 0)
    assert "hunter2" not in str(info.value)
    assert "alice:***@smtp.example.com:587" in str(info.value)


# -- names with an ``@``: ``venue:account@x/scope`` is not a credential --------------------


@pytest.mark.parametrize(
    "text",
    [
        # a manual account named ops@desk: its scope, an alert key, a position's subject
        "bybit:ops@desk/cross",
        "margin_ratio|bybit:ops@desk/cross",
        "liquidation_distance|okx:alice@fund.example/isolated:BTC-USDT-SWAP#BTC-USDT-SWAP",
        # transition ids of a ccxt position (the symbol holds ':') and of an isolated scope
        "liquidation_distance|bybit:main/cross#BTC/USDT:USDT@1777636801.000000/fired",
        "margin_ratio|bybit:main/isolated:BTC/USDT:USDT@1777636801.000000/resolved",
        "liquidation_distance|hyperliquid:0xab/cross#xyz:TSLA@1777636801.000000/fired",
    ],
)
def test_names_with_a_path_after_the_at_sign_are_left_alone(text: str) -> None:
    assert redact(text) == text


def test_an_alert_line_of_an_account_named_with_an_at_sign_keeps_its_name() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    structlog.get_logger().info("alert.fired", key="margin_ratio|bybit:ops@desk/cross")
    (line,) = out.getvalue().splitlines()
    assert json.loads(line)["key"] == "margin_ratio|bybit:ops@desk/cross"


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("alice:hunter2@smtp.example.com:587", "alice:***@smtp.example.com:587"),
        ("login alice:hunter2@smtp.example.com failed", "login alice:***@smtp.example.com failed"),
        (
            "alice:hunter2@smtp.example.com, then /var/log",
            "alice:***@smtp.example.com, then /var/log",
        ),
        # with a scheme, a path after the host changes nothing (the URL pattern)
        ("smtps://alice:hunter2@smtp.example.com/x", "smtps://alice:***@smtp.example.com/x"),
    ],
)
def test_credentials_without_a_path_are_still_masked(text: str, masked: str) -> None:
    assert redact(text) == masked
