"""A loopback Telegram Bot API stand-in (aiohttp on 127.0.0.1, port 0) speaking the Bot API's
wire format: ``POST /bot<token>/<method>`` with form or multipart bodies, answers
``{"ok": true, "result": …}`` or ``{"ok": false, "error_code": …, "description": …}``.

Methods: ``getMe``, ``deleteWebhook``, ``getUpdates`` (long polling: holds the request up to
``timeout`` seconds until an update with ``update_id >= offset`` exists), ``sendMessage``,
``sendPhoto`` (multipart, the photo's bytes kept). A wrong token gets 401 as Telegram answers;
``getme_failures`` first getMe calls answer 502."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw0"  # a made-up token of the real shape


@dataclass
class Sent:
    method: str
    chat_id: int
    text: str | None = None
    parse_mode: str | None = None
    caption: str | None = None
    photo: bytes | None = None


@dataclass
class BotApi:
    token: str = TOKEN
    getme_failures: int = 0
    updates: list[dict[str, Any]] = field(default_factory=list)
    sent: list[Sent] = field(default_factory=list)
    calls: list[str] = field(default_factory=list)
    port: int = 0

    def __post_init__(self) -> None:
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self._next_update = 1
        self._next_message = 1
        self._closing = False

    @property
    def url(self) -> str:
        """What ``[telegram_bot] api_url`` takes: the token is appended to it."""
        return f"http://127.0.0.1:{self.port}/bot"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        async with self._changed:  # release pending long polls, so the server closes at once
            self._closing = True
            self._changed.notify_all()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the test's side -------------------------------------------------------------------
    async def say(
        self, text: str, chat_id: int, *, date: float, user: str = "ann", user_id: int = 7
    ) -> None:
        """A user writes ``text`` in chat ``chat_id`` (a command gets its bot_command entity,
        as Telegram marks it)."""
        msg: dict[str, Any] = {
            "message_id": self._next_message,
            "date": int(date),
            "chat": {"id": chat_id, "type": "private" if chat_id > 0 else "group"},
            "from": {"id": user_id, "is_bot": False, "first_name": user, "username": user},
            "text": text,
        }
        if text.startswith("/"):
            msg["entities"] = [
                {"type": "bot_command", "offset": 0, "length": len(text.split(maxsplit=1)[0])}
            ]
        self._next_message += 1
        async with self._changed:
            self.updates.append({"update_id": self._next_update, "message": msg})
            self._next_update += 1
            self._changed.notify_all()

    async def replies(self, n: int, within: float = 15.0) -> list[Sent]:
        """Wait until at least ``n`` messages were sent by the bot; all of them."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: len(self.sent) >= n)

        await asyncio.wait_for(enough(), within)
        return list(self.sent)

    async def called(self, method: str, n: int, within: float = 15.0) -> None:
        """Wait until ``method`` was called at least ``n`` times."""

        async def enough() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: self.calls.count(method) >= n)

        await asyncio.wait_for(enough(), within)

    # -- the Bot API's side ----------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        async with self._changed:
            self.calls.append(method)
            self._changed.notify_all()
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        form = await request.post()
        if method == "getMe":
            if self.getme_failures > 0:
                self.getme_failures -= 1
                return _error(502, "Bad Gateway")
            return _ok(
                {"id": 123456789, "is_bot": True, "first_name": "monitor", "username": "mon_bot"}
            )
        if method == "deleteWebhook":
            return _ok(True)
        if method == "getUpdates":
            return _ok(await self._get_updates(form))
        if method == "sendMessage":
            return await self._record(
                Sent(
                    "sendMessage",
                    int(str(form["chat_id"])),
                    text=str(form["text"]),
                    parse_mode=str(form.get("parse_mode")) if "parse_mode" in form else None,
                )
            )
        if method == "sendPhoto":
            photo = form["photo"]
            data = photo.file.read() if isinstance(photo, web.FileField) else None
            return await self._record(
                Sent(
                    "sendPhoto",
                    int(str(form["chat_id"])),
                    caption=str(form["caption"]) if "caption" in form else None,
                    photo=data,
                )
            )
        return _error(404, "Not Found")

    async def _get_updates(self, form: Any) -> list[dict[str, Any]]:
        offset = int(str(form.get("offset", 0)))
        timeout = float(str(form.get("timeout", 0)))
        async with self._changed:
            # confirming (offset past them) removes updates, as Telegram forgets them
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
            self._changed.notify_all()
            if not self.updates and timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(
                        self._changed.wait_for(lambda: bool(self.updates) or self._closing),
                        timeout,
                    )
            return list(self.updates)

    async def _record(self, sent: Sent) -> web.Response:
        async with self._changed:
            self.sent.append(sent)
            self._changed.notify_all()
        result: dict[str, Any] = {
            "message_id": 1000 + len(self.sent),
            "date": 0,
            "chat": {"id": sent.chat_id, "type": "private"},
        }
        if sent.text is not None:
            result["text"] = sent.text
        if sent.photo is not None:
            result["photo"] = [
                {"file_id": "p", "file_unique_id": "p", "width": 1000, "height": 600}
            ]
        return _ok(result)


def _ok(result: Any) -> web.Response:
    return web.json_response({"ok": True, "result": result}, dumps=json.dumps)


def _error(code: int, description: str) -> web.Response:
    return web.json_response(
        {"ok": False, "error_code": code, "description": description}, status=code
    )
