"""Real loopback servers for the notification tests.

* :class:`TelegramStandIn`: an aiohttp server implementing the Bot API's
  ``POST /bot<token>/sendMessage`` with scripted replies: 200, 429 with ``retry_after``
  (Telegram's exact error body), or 5xx. It **parses the text as Telegram does** for its
  ``parse_mode`` (:func:`parse_telegram_html`, :func:`parse_telegram_markdown`: legacy
  Markdown, where a backslash escapes ``_ * ` [`` only *outside* an entity) and refuses what
  Telegram refuses with its 400 "Bad Request: can't parse entities: …"; it records what the
  user would see (``visible``) and the bold spans (``bold``). On ``&`` and ``>`` it is
  stricter than Telegram (it demands ``&amp;``/``&gt;`` as Telegram's documentation says).
* ``tgram_schema``: apprise's **real** Telegram plugin (``NotifyTelegram``), subclassed only
  to change its fixed ``notify_url`` (``https://api.telegram.org/bot``) to the stand-in and its
  schema to ``tgramtest://``, registered with apprise's plugin manager for the test and
  removed afterwards. Everything else (payload, HTML/Markdown, chat ids, error handling)
  is apprise's own code.
  ``sendPhoto`` and ``sendDocument`` take apprise's multipart uploads (the file's bytes kept
  in ``photos``/``documents``, a caption parsed like a message text); ``media_replies``
  scripts their statuses.
* :class:`WebhookServer`: receives apprise ``json://`` posts; can answer 500 for a while.
* :class:`SmtpServer`: aiosmtpd on 127.0.0.1 (a free port picked first: its Controller cannot
  use port 0); messages parsed with the standard library's email parser.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import html
import json
import re
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from monitor.store.db import Store, open_store

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


class EntityError(ValueError):
    """What Telegram answers 400 "Bad Request: can't parse entities: <this>" for."""


_TG_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}
_TAG_RE = re.compile(r'<(/?)([A-Za-z][A-Za-z0-9-]*)((?:\s+[a-z-]+="[^"<>]*")*)\s*>')
_ENTITY_RE = re.compile(r"&(?:lt|gt|amp|quot|#\d+|#x[0-9A-Fa-f]+);")
_BOLD = {"b", "strong"}


def _offset(text: str, i: int) -> int:
    return len(text[:i].encode("utf-8"))


def parse_telegram_html(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Telegram's HTML parse mode: the visible text and the (tag, text) of each entity."""
    out: list[str] = []
    stack: list[tuple[str, int]] = []
    spans: list[tuple[str, str]] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "<":
            m = _TAG_RE.match(text, i)
            name = m.group(2).lower() if m else text[i + 1 : i + 8]
            if m is None or name not in _TG_TAGS:
                raise EntityError(
                    f'Unsupported start tag "{name}" at byte offset {_offset(text, i)}'
                )
            if m.group(1):
                if not stack or stack[-1][0] != name:
                    raise EntityError(f"Unexpected end tag at byte offset {_offset(text, i)}")
                tag, start = stack.pop()
                spans.append((tag, "".join(out)[start:]))
            else:
                stack.append((name, len("".join(out))))
            i = m.end()
            continue
        if c == "&":
            m = _ENTITY_RE.match(text, i)
            if m is None:
                raise EntityError(f"Character entity expected at byte offset {_offset(text, i)}")
            out.append(html.unescape(m.group(0)))
            i = m.end()
            continue
        if c == ">":
            raise EntityError(f'Unexpected ">" at byte offset {_offset(text, i)}')
        out.append(c)
        i += 1
    if stack:
        raise EntityError(f"Can't find end tag corresponding to start tag {stack[-1][0]}")
    return "".join(out), spans


def parse_telegram_markdown(text: str) -> tuple[str, list[tuple[str, str]]]:
    """Telegram's legacy ``Markdown`` parse mode: ``*bold*``, ``_italic_``, ```code```,
    ``[text](url)``; a backslash escapes ``_ * ` [`` outside an entity only (inside one it is
    a visible character, and the entity ends at the next marker)."""
    out: list[str] = []
    spans: list[tuple[str, str]] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n and text[i + 1] in "_*`[":
            out.append(text[i + 1])
            i += 2
            continue
        if c in "*_`":
            marker = "```" if text.startswith("```", i) else c
            j = text.find(marker, i + len(marker))
            if j < 0:
                raise EntityError(
                    f"Can't find end of the entity starting at byte offset {_offset(text, i)}"
                )
            inner = text[i + len(marker) : j]
            spans.append(({"*": "b", "_": "i"}.get(marker, "code"), inner))
            out.append(inner)
            i = j + len(marker)
            continue
        if c == "[":
            m = re.compile(r"\[([^\]]*)\]\(([^)]*)\)").match(text, i)
            if m is None:
                raise EntityError(
                    f"Can't find end of the entity starting at byte offset {_offset(text, i)}"
                )
            spans.append(("a", m.group(1)))
            out.append(m.group(1))
            i = m.end()
            continue
        out.append(c)
        i += 1
    return "".join(out), spans


def _telegram_text(text: str, mode: str) -> tuple[str, list[tuple[str, str]]]:
    """What the user sees of ``text`` sent with ``parse_mode`` ``mode`` (lower case; "" for
    none) and its entity spans. Raises :class:`EntityError` where Telegram refuses it."""
    if mode == "html":
        return parse_telegram_html(text)
    if mode == "markdown":
        return parse_telegram_markdown(text)
    if mode == "":
        return text, []
    raise EntityError(f"the stand-in does not implement parse_mode {mode}")


class TelegramStandIn(_Server):
    """``replies``: a queue of (status, retry_after) to answer with, then 200s. ``visible``
    and ``bold``: per delivered message, the text the user sees and its bold spans;
    ``refused``: the entity errors answered. ``refuse_containing``: answer 400 (Telegram's
    "Bad Request: message is too long" body) to a text holding it. ``delays``: seconds to
    wait before answering the next requests (the message counts as received: a client that
    gives up earlier does not know it arrived)."""

    def __init__(self) -> None:
        super().__init__()
        self.messages: list[dict[str, Any]] = []
        self.tokens: list[str] = []
        self.attempts = 0
        self.replies: list[tuple[int, int | None]] = []
        self.visible: list[str] = []
        self.bold: list[list[str]] = []
        self.refused: list[str] = []
        self.refuse_containing: str | None = None
        self.delays: list[float] = []
        self.photos: list[bytes] = []
        self.documents: list[bytes] = []
        self.captions: list[str] = []
        self.media_replies: list[int] = []
        self.media_attempts = 0
        self.app.router.add_post("/bot{token}/sendMessage", self._send)
        self.app.router.add_post("/bot{token}/sendPhoto", self._media)
        self.app.router.add_post("/bot{token}/sendDocument", self._media)

    def _entities_refused(self, exc: EntityError) -> web.Response:
        """Telegram's 400 for markup it cannot parse."""
        self.refused.append(str(exc))
        return web.json_response(
            {
                "ok": False,
                "error_code": 400,
                "description": f"Bad Request: can't parse entities: {exc}",
            },
            status=400,
        )

    async def _media(self, request: web.Request) -> web.Response:
        """``sendPhoto``/``sendDocument`` as multipart/form-data: the file field (``photo`` or
        ``document``) and the form fields (``chat_id``, ``caption``, ``parse_mode``)."""
        self.media_attempts += 1
        key = "photo" if request.path.endswith("/sendPhoto") else "document"
        form = await request.post()
        upload = form.get(key)
        if upload is None or isinstance(upload, str):
            return web.json_response(
                {"ok": False, "error_code": 400, "description": f"Bad Request: no {key}"},
                status=400,
            )
        data = upload.file.read()
        caption = str(form.get("caption", ""))
        mode = str(form.get("parse_mode") or "").lower()
        try:
            visible = _telegram_text(caption, mode)[0]
        except EntityError as exc:
            return self._entities_refused(exc)
        if self.media_replies:
            status = self.media_replies.pop(0)
            if status != 200:
                return web.json_response(
                    {"ok": False, "error_code": status, "description": "Internal Server Error"},
                    status=status,
                )
        (self.photos if key == "photo" else self.documents).append(data)
        self.captions.append(visible)
        self.tokens.append(request.match_info["token"])
        return web.json_response({"ok": True, "result": {"message_id": 100 + len(self.photos)}})

    async def _send(self, request: web.Request) -> web.Response:
        self.attempts += 1
        payload = await request.json()
        if self.refuse_containing and self.refuse_containing in str(payload.get("text")):
            self.refused.append("message is too long")
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: message is too long"},
                status=400,
            )
        mode = str(payload.get("parse_mode") or "").lower()
        text = str(payload.get("text", ""))
        try:
            visible, spans = _telegram_text(text, mode)
        except EntityError as exc:
            return self._entities_refused(exc)
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
        self.visible.append(visible)
        self.bold.append([t for tag, t in spans if tag in _BOLD or tag == "b"])
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
        return web.json_response({"ok": True, "result": {"message_id": len(self.messages)}})


class WebhookServer(_Server):
    """Receives apprise ``json://`` posts (``posts``, with their ``headers``). ``down``:
    answer 500. ``delays``: seconds to wait before answering the next posts (recorded as
    received first). ``refuse_containing``: answer 400 to a message holding it.
    ``statuses``: answer the next posts with these statuses (200 records the post; 429 comes
    with ``Retry-After: 1``; anything else is not recorded)."""

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[tuple[str, dict[str, Any]]] = []
        self.headers: list[dict[str, str]] = []
        self.attempts = 0
        self.down = False
        self.delays: list[float] = []
        self.refuse_containing: str | None = None
        self.statuses: list[int] = []
        self.app.router.add_post("/{path:.*}", self._post)

    async def _post(self, request: web.Request) -> web.Response:
        self.attempts += 1
        if self.down:
            return web.Response(status=500, text="down")
        status = self.statuses.pop(0) if self.statuses else 200
        if status == 429:
            return web.Response(status=429, text="slow down", headers={"Retry-After": "1"})
        if status != 200:
            return web.Response(status=status, text="error")
        doc = json.loads(await request.text())
        if self.refuse_containing and self.refuse_containing in str(doc.get("message")):
            return web.Response(status=400, text="refused")
        self.posts.append((request.path, doc))
        self.headers.append(dict(request.headers))
        if self.delays:
            await asyncio.sleep(self.delays.pop(0))
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


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A real store in ``tmp_path`` (a test file may define its own, seeded one)."""
    s = await open_store(tmp_path / "m.db")
    yield s
    await s.close()
