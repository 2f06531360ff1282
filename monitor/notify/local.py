"""Local channels, for the offline demo and for people without a chat service.

* ``monitorfile://PATH`` appends each message to the file ``PATH``, relative to the daemon's
  working directory (apprise folds ``///`` into ``//``, so there is no absolute form): a title
  line, the body, a blank line.
* ``monitorconsole://`` prints each message on standard output.

They are apprise plugins of ours, registered by :func:`register` (the daemon and
``monitor test-notify`` call it at start), so they go through the same outbox, routing and
delivery worker as Telegram or email.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()


def _path_of(url: str) -> Path:
    rest = url.split("://", 1)[1] if "://" in url else url
    rest = rest.split("?", 1)[0]
    return Path(rest)


def _write_file(
    body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kwargs: Any
) -> bool:
    path = _path_of(str(meta.get("url", "")))
    text = f"{title}\n{body}\n\n" if title else f"{body}\n\n"
    with _LOCK:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as fh:
            fh.write(text)
    return True


def _print(
    body: str, title: str, notify_type: str, meta: dict[str, Any], *args: Any, **kwargs: Any
) -> bool:
    text = f"{title}\n{body}\n" if title else f"{body}\n"
    with _LOCK:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()
    return True


def register() -> None:
    """Register the local schemas with apprise (idempotent)."""
    from apprise.apprise import N_MGR  # noqa: PLC0415 (apprise loads its plugins lazily)
    from apprise.decorators import notify  # noqa: PLC0415

    with _LOCK:
        if "monitorfile" not in N_MGR:
            notify(on="monitorfile", name="monitor local file")(_write_file)  # type: ignore[no-untyped-call]
        if "monitorconsole" not in N_MGR:
            notify(on="monitorconsole", name="monitor console")(_print)  # type: ignore[no-untyped-call]
