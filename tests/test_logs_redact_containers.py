"""Secrets inside values the renderers write as their repr (bytes, bytearray, sets) are
masked like those in strings: a registered secret, a URL password, a bot token, and the
value of a key named like a secret."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from monitor.logs import MASK, configure_logging, register_secret, reset_logging

SECRET = "s3cr3t-api-value"
BOT = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsawQ"


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    reset_logging()
    out = io.StringIO()
    configure_logging("info", "json", stream=out, journald=False)
    register_secret(SECRET)
    yield out
    reset_logging()


def _logged(out: io.StringIO, **fields: Any) -> dict[str, Any]:
    structlog.get_logger().info("probe", **fields)
    doc: dict[str, Any] = json.loads(out.getvalue().splitlines()[-1])
    return doc


@pytest.mark.parametrize(
    "value",
    [
        f"frame {SECRET}".encode(),
        bytearray(f"frame {SECRET}".encode()),
        {f"{SECRET}"},
        frozenset({f"id {SECRET}"}),
        [b"nested " + SECRET.encode()],
        {"inner": {SECRET, "x"}},
    ],
    ids=["bytes", "bytearray", "set", "frozenset", "bytes-in-list", "set-in-dict"],
)
def test_a_registered_secret_in_bytes_or_a_set_is_masked(lines: io.StringIO, value: object) -> None:
    line = json.dumps(_logged(lines, data=value))
    assert SECRET not in line and MASK in line


def test_a_url_password_and_a_bot_token_in_bytes_are_masked(lines: io.StringIO) -> None:
    doc = _logged(lines, data=f"https://u:hunter2@h/x {BOT}".encode())
    assert "hunter2" not in doc["data"] and BOT not in doc["data"]
    # the text the renderer wrote before, masked: b'https://u:***@h/x ***'
    assert doc["data"] == f"b'https://u:{MASK}@h/x {MASK}'"


def test_bytes_under_a_secret_key_are_masked(lines: io.StringIO) -> None:
    doc = _logged(lines, api_key=b"abc123", nested={"token": bytearray(b"zz")})
    assert doc["api_key"] == MASK and doc["nested"] == {"token": MASK}


def test_bytes_and_sets_without_secrets_are_written_as_before(lines: io.StringIO) -> None:
    # the JSON renderer's fallback writes repr(): the same text as before
    doc = _logged(lines, raw=b"\x00ok", tags=frozenset({"a"}), n=3, x=1.5)
    assert doc["raw"] == repr(b"\x00ok") and doc["tags"] == repr(frozenset({"a"}))
    assert doc["n"] == 3 and doc["x"] == 1.5
