"""Real loopback servers for the notification tests.

* :class:`TelegramStandIn`: an aiohttp server implementing the Bot API's
  ``POST /bot<token>/sendMessage`` with scripted replies: 200, 429 with ``retry_after``
  (Telegram's exact error body), or 5xx.
* ``tgram_schema``: apprise's **real** Telegram plugin (``NotifyTelegram``), subclassed only
  to change its fixed ``notify_url`` (``https://api.telegram.org/bot``) to the stand-in and its
  schema to ``tgramtest://``, registered with apprise's plugin manager for the test and
  removed afterwards. Everything else (payload, HTML/Markdown, chat ids, error handling)
  is apprise's own code.
* :class:`WebhookServer`: receives apprise ``json://`` posts; can answer 500 for a while.
* :class:`SmtpServer`: aiosmtpd on 127.0.0.1 (a free port picked first: its Controller cannot
  use port 0); messages parsed with the standard library's email parser.
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import pytest
from aiohttp import web

TG_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"  # a made-up token of the real shape


class _Server:
    def __init__(self) -> None:
        self.app = web.Application()
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        self.runner = web.AppRunner(self.app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class TelegramStandIn(_Server):
    """``replies``: a queue of (status, retry_after) to answer with, then 200s."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.tokens: list[str] = []
        self.attempts = 0
        self.replies: list[tuple[int, int | None]] = []
        self.app.router.add_post("/bot{token}/sendMessage", self._send)

    async def _send(self, request: web.Request) -> web.Response:
        self.attempts += 1
        payload = await request.json()
        if self.replies:
            status, retry_after = self.replies.pop(0)
            if status == 429:
                return web.json_response(
                    {
                        "ok": False,
                        "error_code": 429,
                        "description": f"Too Many Requests: retry after {retry_after}",
                        "parameters": {"retry_after": retry_after},
                    },
                    status=429,
                )
            if status != 200:
                return web.json_response(
                    {"ok": False, "error_code": status, "description": "Internal Server Error"},
                    status=status,
                )
        self.tokens.append(request.match_info["token"])
        self.messages.append(payload)
        return web.json_response({"ok": True, "result": {"message_id": len(self.messages)}})


class WebhookServer(_Server):
    def __init__(self) -> None:
        super().__init__()
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.attempts = 0
        self.down = False
        self.app.router.add_post("/{path:.*}", self._post)

    async def _post(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.down:
            return web.Response(status=500, text="down")
        self.posts.append((request.path, json.loads(await request.text())))
        return web.Response(status=200, text="ok")

    def url(self, path: str = "hook") -> str:
        return f"json://127.0.0.1:{self.port}/{path}"


@dataclass
class SmtpServer:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append(msg)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=bot@example.com&to=alice@example.com"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
async def telegram() -> AsyncIterator[TelegramStandIn]:
    srv = TelegramStandIn()
    await srv.start()
    yield srv
    await srv.stop()


@pytest.fixture
def tgram_schema(telegram: TelegramStandIn) -> Iterator[str]:
    """Registers ``tgramtest://`` → the real Telegram plugin posting to the stand-in."""
    from apprise.manager_plugins import NotificationManager
    from apprise.plugins.telegram import NotifyTelegram

    def parse_url(url: str) -> dict[str, Any] | None:
        results = NotifyTelegram.parse_url("tgram://" + url.split("://", 1)[1])
        if results is not None:
            results["schema"] = "tgramtest"
        return results

    plugin = type(
        "StandInTelegram",
        (NotifyTelegram,),
        {
            "notify_url": f"http://127.0.0.1:{telegram.port}/bot",
            "secure_protocol": "tgramtest",
            "protocol": None,
            "parse_url": staticmethod(parse_url),
        },
    )
    manager = NotificationManager()
    assert manager.add(plugin, force=True)
    yield f"tgramtest://{TG_TOKEN}/-1001234567890"
    manager.remove("tgramtest", unload=False)
