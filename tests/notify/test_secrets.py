"""Secrets in channel URLs: percent-encoded for the URL part they land in (checked by a real
SMTP server that verifies the AUTH it receives), masked in every spelling a library may log,
and a short secret never masks unrelated text."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import pytest

from monitor.logs import redact
from monitor.notify.channels import encode_for_part, mask, parse_channels, url_part
from monitor.notify.sender import PERMANENT, AppriseSender
from tests.notify.conftest import SmtpServer, free_port

USER = "bot@example.com"
PASSWORD = "p:a@s/s#w%rd?x&y+z !"  # smtplib's AUTH takes ASCII only


@dataclass
class Authenticator:
    """aiosmtpd's authenticator: accepts USER / PASSWORD only; records what it received."""

    received: list[tuple[str, str]] = field(default_factory=list)

    def __call__(
        self, server: object, session: object, envelope: object, mechanism: str, data: Any
    ) -> Any:
        from aiosmtpd.smtp import AuthResult

        login = data.login.decode() if isinstance(data.login, bytes) else str(data.login)
        password = (
            data.password.decode() if isinstance(data.password, bytes) else str(data.password)
        )
        self.received.append((login, password))
        return AuthResult(success=(login, password) == (USER, PASSWORD), handled=False)


@pytest.fixture
async def smtp_auth() -> AsyncIterator[tuple[SmtpServer, Authenticator]]:
    from aiosmtpd.controller import Controller

    handler = SmtpServer(free_port())
    auth = Authenticator()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=handler.port,
        authenticator=auth,
        auth_require_tls=False,
    )
    await asyncio.to_thread(controller.start)
    yield handler, auth
    await asyncio.to_thread(controller.stop)


def smtp_channel(port: int, password: str) -> Any:
    (ch,) = parse_channels(
        {
            "mail": {
                "url": "mailto://${SMTP_USER}:${SMTP_PASS}@127.0.0.1:"
                f"{port}?from=bot@example.com&to=alice@example.com",
                "timeout": 5,
            }
        },
        "t",
        env={"SMTP_USER": USER, "SMTP_PASS": password},
        credentials_dir=None,
    )
    return ch


async def test_a_password_with_url_characters_logs_in_as_typed(
    smtp_auth: tuple[SmtpServer, Authenticator],
) -> None:
    """``:``, ``@``, ``/``, ``#``, ``%``, ``?``, ``&``, ``+``, a space and a ``!``:
    the SMTP server receives exactly the password set in ``$SMTP_PASS``."""
    handler, auth = smtp_auth
    ch = smtp_channel(handler.port, PASSWORD)
    r = await AppriseSender().send(ch, "Subject", "Body", "text", "failure")
    assert r.ok, r.error
    assert auth.received == [(USER, PASSWORD)]
    assert len(handler.messages) == 1
    assert PASSWORD not in ch.redacted and quote(PASSWORD, safe="") not in ch.redacted


async def test_a_wrong_password_is_a_permanent_failure(
    smtp_auth: tuple[SmtpServer, Authenticator],
) -> None:
    handler, auth = smtp_auth
    ch = smtp_channel(handler.port, "wrong:pass@word")
    r = await AppriseSender().send(ch, "Subject", "Body", "text", "failure")
    assert not r.ok and r.kind == PERMANENT  # 535: not retried for hours
    # (smtplib tries each mechanism the server offers; every try carried the password as set)
    assert set(auth.received) == {(USER, "wrong:pass@word")}
    assert handler.messages == []
    assert r.error is not None and "wrong:pass@word" not in r.error


@pytest.mark.parametrize(
    ("template", "part"),
    [
        ("${X}", "whole"),
        ("mailto://${X}@host", "userinfo"),
        ("mailto://user:${X}@host/p", "userinfo"),
        ("tgram://${X}/-100", "host"),
        ("json://host/hooks/${X}", "path"),
        ("json://host/x?+Auth=${X}&a=b", "query"),
        ("json://host/x#${X}", "fragment"),
        ("pover://${U}@${X}", "host"),
    ],
)
def test_the_url_part_of_a_reference(template: str, part: str) -> None:
    start = template.index("${X}")
    assert url_part(template, start, start + 4) == part


def test_encoding_per_part() -> None:
    assert encode_for_part("a:b@c/d#e", "userinfo") == "a%3Ab%40c%2Fd%23e"
    # a Telegram bot token stays as it is in the host part
    assert encode_for_part("123456:AAbb-_x", "host") == "123456:AAbb-_x"
    assert encode_for_part("a b/c?d", "path") == "a%20b%2Fc%3Fd"
    assert encode_for_part("a&b=c+d", "query") == "a%26b%3Dc%2Bd"
    assert encode_for_part("json://h/x?a=1", "whole") == "json://h/x?a=1"


def test_basic_auth_and_percent_encoded_forms_are_masked() -> None:
    user, password = "hookuser", "Sec:ret/Hook#42"
    (ch,) = parse_channels(
        {"hook": {"url": "json://${HOOK_USER}:${HOOK_PASS}@127.0.0.1:9/x"}},
        "t",
        env={"HOOK_USER": user, "HOOK_PASS": password},
        credentials_dir=None,
    )
    basic = base64.b64encode(f"{user}:{password}".encode()).decode()
    encoded = quote(password, safe="")
    for line in (
        f"Authorization: Basic {basic}",
        f"POST json://hookuser:{encoded}@127.0.0.1:9/x",
        f"password was {password}",
        f"lower {encoded.lower()}",
    ):
        for text in (redact(line), ch.scrub(line)):
            assert password not in text and basic not in text
            assert encoded not in text and encoded.lower() not in text
            assert "***" in text


def test_a_short_secret_masks_only_where_it_stands_alone() -> None:
    """Rule: a secret shorter than 6 characters is never masked inside a longer word or
    number (``error=400`` stays readable when the password is ``40``)."""
    (ch,) = parse_channels(
        {"mail": {"url": "mailto://bot:${P}@127.0.0.1:25?from=b@example.com&to=a@example.com"}},
        "t",
        env={"P": "40"},
        credentials_dir=None,
    )
    assert ch.scrub("HTTP error=400 after 40 s; code 1404") == (
        "HTTP error=400 after *** s; code 1404"
    )
    assert redact("error=400, port 4040") == "error=400, port 4040"
    assert mask("a 40b 40 x40", ["40"]) == "a 40b *** x40"
    assert mask("abcdef-secret", ["abcdef"]) == "***-secret"


def test_a_url_file_password_is_masked_in_its_basic_auth_form(tmp_path: Any) -> None:
    (tmp_path / "hook_url").write_text("json://alice:Hunter2%2Fx@127.0.0.1:9/x\n")
    (ch,) = parse_channels(
        {"hook": {"url_file": "hook_url"}}, "t", env={}, credentials_dir=tmp_path
    )
    basic = base64.b64encode(b"alice:Hunter2/x").decode()
    for text in (redact(f"Basic {basic}"), ch.scrub(f"Basic {basic} pw Hunter2/x")):
        assert basic not in text and "Hunter2" not in text
