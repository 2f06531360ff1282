"""The password of a ``scheme://user:password@host`` URL is masked however it is typed: with
an unencoded ``?``, ``#`` or ``/`` in it, starting with ``:`` or ``//``, holding blanks
(a passphrase); and the host stays shown where the URL makes it plain (an ``@`` after the
host, in the path or the query, ends no password: ``…:pw@smtp.gmail.com:587/?from=a@b.com``),
without showing any of a password holding an ``@`` (``p@ss``). A schemeless password starting
with ``:`` is masked unless the word reads as an IPv6 address (``fe80::1@eth0``). The scan
stays linear in the text (long adversarial inputs below; pytest-timeout is what would fail
on a quadratic scan)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from monitor.logs import MASK, configure_logging, redact, reset_logging


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    reset_logging()
    yield
    reset_logging()


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # gap 1: an unencoded '?' or '#' (or '/') typed into the password
        ("https://alice:p?ss@host/x", "https://alice:***@host/x"),
        ("https://alice:p?ss@host", "https://alice:***@host"),
        ("https://alice:p#ss@host", "https://alice:***@host"),
        ("https://alice:p#ss@host/x", "https://alice:***@host/x"),
        ("https://alice:?#/@host.example.com/x", "https://alice:***@host.example.com/x"),
        ("smtps://alice:a?b#c/d@smtp.example.com:465", "smtps://alice:***@smtp.example.com:465"),
        ("json://u:p?ss@hooks.example.com/x?y=1", "json://u:***@hooks.example.com/x?y=1"),
        # gap 2: starting with ':' or '//', or holding blanks
        ("https://alice::pw@host/x", "https://alice:***@host/x"),
        ("smtps://alice://pw@smtp.example.com", "smtps://alice:***@smtp.example.com"),
        ("smtps://alice:///pw@smtp.example.com/x", "smtps://alice:***@smtp.example.com/x"),
        ("https://alice:correct horse@host/x", "https://alice:***@host/x"),
        (
            "login https://alice:correct horse battery staple@smtp.example.com:587 failed",
            "login https://alice:***@smtp.example.com:587 failed",
        ),
        ("https://alice:p w@ss@host/x", "https://alice:***@host/x"),
        ('url="smtp://bob:my pass@mail.local"', 'url="smtp://bob:***@mail.local"'),
        # a schemeless password starting with ':'
        ("alice::pw@smtp.example.com", "alice:***@smtp.example.com"),
        (
            "login alice::pw@smtp.example.com:587 failed",
            "login alice:***@smtp.example.com:587 failed",
        ),
        # a schemeless user and a password starting with '//': the URL's user-only form,
        # masked unless the scheme is a common one (then it is a URL's user)
        ("alice://pw@smtp.example.com", "alice://***@smtp.example.com"),
        ("bob://hunter2@smtp.example.com:587", "bob://***@smtp.example.com:587"),
        # gap 3 kept closed: an '@' in the password is masked whole
        ("https://alice:p@ss@host/x", "https://alice:***@host/x"),
        ("https://alice:a@b/c@host/x", "https://alice:***@host/x"),
        ("https://alice:p@ss@host.example.com/x@y", "https://alice:***@host.example.com/x@y"),
    ],
)
def test_a_url_password_typed_any_way_is_masked(text: str, masked: str) -> None:
    assert redact(text) == masked


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # gap 3: an '@' in the query or path after a host name ends no password
        (
            "mailtos://user:pw@smtp.gmail.com:587/?from=a@b.com",
            "mailtos://user:***@smtp.gmail.com:587/?from=a@b.com",
        ),
        (
            "mailtos://user:pw@smtp.gmail.com:587?from=a@b.com&to=c@d.com",
            "mailtos://user:***@smtp.gmail.com:587?from=a@b.com&to=c@d.com",
        ),
        ("json://u:pw@hooks.example.com/x@y", "json://u:***@hooks.example.com/x@y"),
        ("json://u:pw@127.0.0.1:8080/x@y", "json://u:***@127.0.0.1:8080/x@y"),
        ("json://u:pw@[::1]:8080/x@y", "json://u:***@[::1]:8080/x@y"),
        ("json://u:pw@localhost/x@y#z@w", "json://u:***@localhost/x@y#z@w"),
        # a URL already masked is left as it is (a log line masked twice, an error quoting one)
        ("json://u:***@hooks.example.com/x@y", "json://u:***@hooks.example.com/x@y"),
        (
            "mailtos://user:***@smtp.gmail.com:587/?from=a@b.com",
            "mailtos://user:***@smtp.gmail.com:587/?from=a@b.com",
        ),
    ],
)
def test_the_host_of_a_url_stays_shown_when_an_at_sign_follows_it(text: str, masked: str) -> None:
    assert redact(text) == masked
    assert redact(masked) == masked


@pytest.mark.parametrize(
    "text",
    [
        # hosts and ports, with a path holding '@' (exchange streams), and prose after them
        "wss://fstream.binance.com:443/ws/btcusdt@markPrice",
        "ws://127.0.0.1:54321/stream?streams=btcusdt@markPrice@1s",
        "ws://localhost:8080/ws/btcusdt@markPrice",
        "ws://[::1]:8080/ws/btcusdt@markPrice",
        "connect to https://api.example.com:8443 failed; mail ops@example.com",
        "http://localhost:8080 then to:bob@example.com",
        "https://host.example.com:443/x and bob@example.com",
        # a URL's user (no password) under a common scheme
        "https://bob@example.com/x",
        "mailto://bob@example.com",
        "ssh://git@github.com/x",
        # the names the monitor logs
        "margin_ratio|bybit:ops@desk/cross",
        "BTC/USDT:USDT",
        "xyz:TSLA",
        "to:bob@example.com",
        "hyperliquid:0x1111…1111@xyz",
        # an IPv6 address with a zone-like '@'
        "fe80::1@eth0",
        "fe80::1:2@eth0",
    ],
)
def test_hosts_ports_and_names_around_urls_stay_whole(text: str) -> None:
    assert redact(text) == text


_user = st.from_regex(r"[A-Za-z][A-Za-z0-9._-]{0,11}", fullmatch=True)
#: any printable ASCII, blanks too, of any length; without an '@' (see the cases above),
#: '://' (a second URL) or blanks around it; not what reads as a port (``443/x``, or ``8080``
#: before a blank: ``https://host:8080 and …``)
_password = st.text(
    st.characters(codec="ascii", categories=["L", "N", "P", "S", "Zs"]), min_size=1, max_size=200
).filter(
    lambda p: (
        "@" not in p
        and "://" not in p
        and p.strip() == p
        and re.match(r"\d{1,5}(?:[/?#]| |\Z)", p) is None
    )
)
_scheme = st.sampled_from(["https", "smtps", "mailtos", "json", "ntfys", "tgram"])
_host = st.from_regex(r"[a-z][a-z0-9-]{0,9}(\.[a-z]{2,5}){1,2}(:[0-9]{2,5})?", fullmatch=True)
_tail = st.sampled_from(["", "/x", "/x@y", "?to=a@b.com", "#f", "/?from=a@b.com"])


@given(_scheme, _user, _password, _host, _tail)
def test_any_url_password_without_an_at_sign_is_masked(
    scheme: str, user: str, password: str, host: str, tail: str
) -> None:
    text = f"connect {scheme}://{user}:{password}@{host}{tail} failed"
    assert redact(text) == f"connect {scheme}://{user}:{MASK}@{host}{tail} failed"


def test_a_log_line_never_carries_a_passphrase_or_a_question_mark_password() -> None:
    out = io.StringIO()
    configure_logging("info", "json", stream=out)
    log = structlog.get_logger()
    log.error("smtp.failed", url="smtps://alice:correct horse battery@smtp.example.com:465")
    log.error("hook.failed", url="https://alice:Tr0ub?dor#3@hooks.example.com/x")
    text = out.getvalue()
    assert "horse" not in text and "Tr0ub" not in text and "dor#3" not in text
    first, second = (json.loads(line) for line in text.splitlines())
    assert first["url"] == "smtps://alice:***@smtp.example.com:465"
    assert second["url"] == "https://alice:***@hooks.example.com/x"


N = 200_000  # characters: a quadratic scan would step ~N²/2 = 2·10^10 times


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # many URL starts in one word, no '@'
        ("a://b:" * (N // 6), "a://b:" * (N // 6)),
        # many URL starts in one word, one host at the end: the last one's password masked
        ("a://b:" * (N // 6) + "c@h", "a://b:" * (N // 6 - 1) + "a://b:***@h"),
        # many URL starts separated by blanks, no '@' (each may cross blanks)
        ("a://b:c " * (N // 8), "a://b:c " * (N // 8)),
        # one URL start then many blank-separated words and one '@' at the end
        ("a://b:c" + " d" * (N // 2) + "@h.x", "a://b:***@h.x"),
        # many '@' stretches in one password, each a host without a dot
        ("a://b:" + "c@d?" * (N // 4), "a://b:***@d?"),
        # a long scheme-like run of 'a.' before '://'
        ("a." * (N // 2) + "://b:c@h.x", "a." * (N // 2) + "://b:***@h.x"),
        # many user-only URLs
        ("x://u@h " * (N // 8), "x://***@h " * (N // 8)),
    ],
    ids=["starts", "starts-host", "starts-blanks", "words", "stretches", "scheme", "users"],
)
def test_long_adversarial_urls_are_scanned_in_linear_time(text: str, expected: str) -> None:
    assert redact(text) == expected
