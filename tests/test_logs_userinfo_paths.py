"""A ``venue:account@x/scope`` name is not a ``user:password@host``: a manual account's name
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

from monitor.logs import configure_logging, redact, reset_logging


@pytest.fixture(autouse=True)
def _reset() -> Iterator[None]:
    reset_logging()
    yield
    reset_logging()


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
