"""``user:password@host`` masking fails closed: a password of any length and holding any
character but a blank (``/?#[]@:`` too) is masked; an ``e-mail field:address`` (``to:``,
``cc:``, ``from:``, ``mailto:``) is not a credential; the names the monitor logs (scope
keys, transition ids, ccxt and HIP-3 symbols, Hyperliquid ``0x…@dex`` accounts, feed
streams) stay whole; and the scan is linear in the text's length (long adversarial inputs
below would take hours with a quadratic scan; they run here in the suite's normal time)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import example, given
from hypothesis import strategies as st

from monitor.logs import MASK, configure_logging, redact, reset_logging

HL = "0x" + "1a" * 20


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    reset_logging()
    yield
    reset_logging()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # longer than 256 characters
        ("alice:" + "p" * 300 + "@smtp.example.com", "alice:***@smtp.example.com"),
        ("u:" + "x" * 5000 + "@h:587 then", "u:***@h:587 then"),
        # holding a character the old pattern stopped at
        ("alice:pa/ss@smtp.example.com:587", "alice:***@smtp.example.com:587"),
        ("alice:pa?ss@smtp.example.com", "alice:***@smtp.example.com"),
        ("alice:pa#ss@smtp.example.com", "alice:***@smtp.example.com"),
        ("alice:[pw]@smtp.example.com", "alice:***@smtp.example.com"),
        ("alice:p]w[@smtp.example.com", "alice:***@smtp.example.com"),
        ("alice:#?/[]@smtp.example.com", "alice:***@smtp.example.com"),
        ("alice:?start@smtp.example.com", "alice:***@smtp.example.com"),
        ("alice:/start@smtp.example.com", "alice:***@smtp.example.com"),
        # a scheme URL whose password holds an unencoded '@': masked up to the last '@'
        ("https://alice:p@ss@host/x", "https://alice:***@host/x"),
        ("json://u:a@b@c@hooks.example.com/x", "json://u:***@hooks.example.com/x"),
        # a scheme URL whose password holds '/': the URL pattern stops, this one masks it
        ("smtps://alice:pa/ss@smtp.example.com", "smtps://alice:***@smtp.example.com"),
        # an e-mail field word is a user like any other when a password follows it
        ("to:alice:pw@smtp.example.com", "to:***@smtp.example.com"),
        ("mailto:alice:pw@smtp.example.com", "mailto:***@smtp.example.com"),
        # a port-like start of a password when the user is not a host name
        ("alice:2024/pw@smtp.example.com", "alice:***@smtp.example.com"),
        # a time later in the word does not hide a credential
        ("ts=12:30:01,alice:pw@smtp.example.com", "ts=12:30:01,alice:***@smtp.example.com"),
    ],
)
def test_a_long_or_oddly_spelt_password_is_masked(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "to:bob@example.com",
        "TO:bob@example.com",
        "cc:carol@example.com",
        "bcc:dave@example.com",
        "from:monitor@example.com",
        "reply-to:ops@example.com",
        "mailto:bob@example.com",
        "sent to:bob@example.com, cc:carol@example.com",
    ],
)
def test_an_e_mail_field_and_its_address_are_not_a_credential(text: str) -> None:
    assert redact(text) == text


@pytest.mark.parametrize(
    "text",
    [
        # scope keys, alert keys and positions of accounts named with '@'
        "margin_ratio|bybit:ops@desk/cross",
        f"margin_ratio|hyperliquid:{HL}@xyz/cross",
        f"hyperliquid:{HL}@xyz/cross#xyz:TSLA",
        # transition ids
        "margin_ratio|hyperliquid:0xabc…def/cross@1777636801.000000/fired",
        f"margin_ratio|hyperliquid:{HL}@xyz/cross@1777636801.000000/resolved",
        "liquidation_distance|bybit:main/cross#BTC/USDT:USDT@1777636801.000000/fired",
        # symbols: ccxt, HIP-3, Hyperliquid spot (@index) in a position key and its scope
        "BTC/USDT:USDT",
        "xyz:TSLA",
        "hyperliquid:0xab/cross#@107",
        f"hyperliquid:{HL}@xyz/cross#@107",
        "hyperliquid:0xab/isolated:@107#@107",
        "liquidation_distance|hyperliquid:0xab/cross#@107@1777636801.000000/fired",
        # Hyperliquid dex accounts, in a feed's channel too, in an exception's text
        f"hyperliquid:{HL}@xyz",
        "hyperliquid:0x1111…1111@xyz",
        f"feed:hyperliquid/clearinghouseState:{HL}@xyz",
        f"KeyError('hyperliquid:{HL}@xyz')",
        # exchange streams named with '@' behind a host and port
        "wss://fstream.binance.com:443/ws/btcusdt@markPrice",
        "ws://127.0.0.1:54321/stream?streams=btcusdt@markPrice@1s",
        "127.0.0.1:9443/ws/btcusdt@markPrice",
        "localhost:25?from=monitor@localhost",
    ],
)
def test_the_names_the_monitor_logs_stay_whole(text: str) -> None:
    assert redact(text) == text


_user = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,11}", fullmatch=True).filter(
    lambda u: u.casefold() not in {"to", "cc", "bcc", "from", "mailto", "reply-to", "sender"}
)


def _query_after_host(password: str) -> bool:
    """An ``@`` in ``password`` followed by a host name and a ``?`` or ``#``: it reads as
    the credential's end and the rest as its query (``pw@smtp.example.com:587?to=bob@x``)."""
    m = re.search(r"@[^/?#]*[?#]", password)
    while m is not None:
        host = m.group()[1:-1]
        if "." in host or ":" in host or host.startswith("[") or host.lower() == "localhost":
            return True
        m = re.search(r"@[^/?#]*[?#]", password[m.start() + 1 :])
    return False


#: any printable ASCII but a blank, of any length; not what the documented exceptions keep:
#: a leading ':' (IPv6 ``fe80::1``) or '//' (a scheme), a ':0x…' tail (a Hyperliquid
#: ``0x…@dex``), a '/cross#' or '/isolated:…' tail (a position key's ``#@107``), an ``@``,
#: a host name and a query or fragment inside (see :func:`_query_after_host`)
_password = st.text(
    st.characters(codec="ascii", categories=["L", "N", "P", "S"]), min_size=1, max_size=400
).filter(
    lambda p: (
        not p.startswith((":", "//"))
        and re.search(r":0[xX][0-9a-fA-F]*\Z", p) is None
        and re.search(r"/(?:cross#|venue-ratio#|isolated:[^/#]*#?)\Z", p) is None
        and not _query_after_host(p)
    )
)
_host = st.from_regex(r"[a-z][a-z0-9-]{0,9}(\.[a-z]{2,5}){1,2}(:[0-9]{2,5})?", fullmatch=True)


@given(_user, _password, _host)
@example("alice", "p" * 300, "smtp.example.com")
@example("alice", "a/b?c#d[e]f@g:h", "smtp.example.com:587")
@example("alice", "p@ss@w/rd", "smtp.example.com")
@example("alice", "12:30:01", "smtp.example.com")
def test_any_password_of_any_length_and_characters_is_masked(
    user: str, password: str, host: str
) -> None:
    text = f"connect to {user}:{password}@{host} failed"
    assert redact(text) == f"connect to {user}:{MASK}@{host} failed"


def test_a_log_line_never_carries_a_long_password_holding_a_slash() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    secret = "Tr0ub4dor/&3?" + "x" * 300
    structlog.get_logger().error("smtp.failed", host=f"alice:{secret}@smtp.example.com:587")
    (line,) = out.getvalue().splitlines()
    assert "Tr0ub4dor" not in line
    assert json.loads(line)["host"] == "alice:***@smtp.example.com:587"


N = 200_000  # characters: a quadratic scan would step ~N²/2 = 2·10^10 times


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # many user candidates, no host: every one would scan to the end of the word
        ("|a:" * (N // 3), "|a:" * (N // 3)),
        # many user candidates and one host at the end: masked from the first
        ("|a:" * (N // 3) + "@h", "|a:***@h"),
        # many '@', each with a host after it, and one user at the start
        ("a:" + "@b" * (N // 2), "a:***@b"),
        # many '@' in a row, no user
        ("@" * N, "@" * N),
        # many '@' each followed by a name's path
        ("a:" + "@b/" * (N // 3), "a:" + "@b/" * (N // 3)),
        # many Hyperliquid-like tails and position-key tails
        ("x:0x1@" * (N // 6), "x:0x1@" * (N // 6)),
        ("x:" + "/cross#@1" * (N // 9), "x:" + "/cross#@1" * (N // 9)),
        # a long word of times, of host:port/paths, of e-mail fields, of IPv6-like users
        ("12:30:01@" * (N // 9), "12:30:01@" * (N // 9)),
        ("|h.x:1/" * (N // 7) + "@h", "|h.x:1/" * (N // 7) + "@h"),
        ("|to:" * (N // 4) + "@h", "|to:***@h"),
        # users whose password starts with ':' (no IPv6 address): masked from the first
        ("|a::" * (N // 4) + "@h", "|a:***@h"),
        ("|f::" * (N // 4) + "@h", "|f:***@h"),
        # hosts with a query, each ending the search for the password's end
        ("a:p" + "@h.x?" * (N // 5), "a:***" + "@h.x?" * (N // 5)),
    ],
    ids=[
        "users",
        "users-host",
        "hosts",
        "ats",
        "paths",
        "hex",
        "scopes",
        "times",
        "ports",
        "fields",
        "ipv6",
        "ipv6-hex",
        "queries",
    ],
)
def test_long_adversarial_words_are_scanned_in_linear_time(text: str, expected: str) -> None:
    assert redact(text) == expected
