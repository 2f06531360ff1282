"""Notification channels: any apprise URL, routed by severity, with secrets kept out of sight.

The ``[channels]`` TOML table, one sub-table per channel::

    [channels.telegram]
    url = "tgram://${TELEGRAM_BOT_TOKEN}/-1001234567890"
    min_severity = "warning"     # info | warning | critical (default: warning)
    send_resolved = true         # default true
    format = "text"              # text | markdown | html (default text; Telegram: html)
    min_interval = "1s"          # per chat; Telegram default 1 s
    per_minute = 20              # Telegram default 20 when a chat id is a group (< 0)
    max_length = 4096            # Telegram default 4096
    charts = true                # critical alerts carry a PNG chart of the scope (default false)

    [channels.email]
    url_file = "smtp_url"        # the whole URL from $CREDENTIALS_DIRECTORY/smtp_url
    min_severity = "critical"

Secrets: ``${NAME}`` in a URL is replaced by the environment variable ``NAME``;
``${file:NAME}`` (or ``${cred:NAME}``) by the contents of ``$CREDENTIALS_DIRECTORY/NAME``
(systemd ``LoadCredential=``), trailing newline stripped; ``url_file`` takes the whole URL
from such a file. A substituted value is **percent-encoded for the URL part it lands in**
(:func:`encode_for_part`): in the user or password (``scheme://USER:PASS@host``), a query
value or the fragment every reserved character is encoded (``:``, ``@``, ``/``, ``#``,
``?``, ``&``, ``+``, ``%`` …); in the host and path everything but ``:`` (a Telegram bot
token ``123:AA…`` sits in the host part). A reference that comes before ``://`` (the whole
URL or its scheme) is inserted as is. apprise decodes user, password and query values, so
``p:a@s/s#`` reaches the SMTP server as typed.

Masking: every substituted value is registered with the log redactor
(:func:`monitor.logs.register_secret`) in each spelling a library may log: as is,
percent-encoded (path, query, either case) and, for a URL password, the base64 of
``user:password`` that HTTP Basic authentication sends. **Short secrets**: a value shorter
than :data:`MIN_SECRET_LENGTH` (6) characters is never masked as a substring (it would turn
unrelated text such as ``error=400`` into ``error=***``); :meth:`Channel.scrub` masks it
only where it stands alone (no letter or digit on either side), and its base64 form is still
masked. A channel shows itself only by its name and :func:`channel_form` of its URL, never the
real one, in ``repr``, logs, the outbox's alerts and errors. apprise's own privacy form is not
used for that: it keeps a token's first and last characters (``tgram://1...9/``), the last
four of some (``...abcd``) and a token typed into a webhook's path whole.

Format: ``text`` is plain text; ``markdown`` is CommonMark that apprise converts to each
service's dialect; ``html`` is HTML. A Telegram channel (``tgram://``) written ``markdown`` or
``html`` is rendered as Telegram **HTML** (its legacy Markdown cannot escape inside bold text,
and a ``*`` or ``_`` in a venue-chosen name makes it refuse the message).
"""

from __future__ import annotations

import base64
import difflib
import inspect
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final
from urllib.parse import quote, quote_plus, unquote, urlsplit

from monitor.alerts.rules import Severity, parse_duration
from monitor.errors import ConfigError
from monitor.logs import redact, register_secret

#: secrets shorter than this are masked only as whole words (see the module docstring)
MIN_SECRET_LENGTH = 6

#: what a channel is, for delivery: ``telegram``, ``webhook`` (json/form/xml: one request per
#: message with an ``Idempotency-Key`` header), ``email`` or ``other``
KINDS = ("telegram", "webhook", "email", "other")
FORMATS = ("text", "markdown", "html")

_REF = re.compile(r"\$\{(?:(file|cred):)?([A-Za-z_][A-Za-z0-9_.-]*)\}")
_KEYS = (
    "url",
    "url_file",
    "min_severity",
    "send_resolved",
    "format",
    "min_interval",
    "per_minute",
    "max_length",
    "timeout",
    "charts",
)
_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")


def _spellings(s: str) -> set[str]:
    """How ``s`` may appear in a URL: as is, percent-encoded (path or query, either case)."""
    return {
        s,
        quote(s, safe=""),
        quote(s),
        quote(s, safe=":"),
        quote_plus(s),
        quote(s, safe="").lower(),
    }


def _short_pattern(s: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9]){re.escape(s)}(?![A-Za-z0-9])")


def mask(text: str, secrets: tuple[str, ...] | list[str]) -> str:
    """``text`` with each of ``secrets`` replaced by ``***``: as a substring when it has at
    least :data:`MIN_SECRET_LENGTH` characters, only where it stands alone otherwise."""
    for s in sorted(secrets, key=len, reverse=True):
        if not s:
            continue
        if len(s) >= MIN_SECRET_LENGTH:
            text = text.replace(s, "***")
        elif s in text:
            text = _short_pattern(s).sub("***", text)
    return text


def url_part(template: str, start: int, end: int) -> str:
    """Which part of the URL ``template`` the reference at ``template[start:end]`` lands in:
    ``whole`` (before ``://``), ``userinfo``, ``host``, ``path``, ``query`` or ``fragment``."""
    skel = _REF.sub(lambda m: "x" * len(m.group(0)), template)
    before, after = skel[:start], skel[end:]
    sep = before.find("://")
    if sep < 0:
        return "whole"
    rest = before[sep + 3 :]
    if "#" in rest:
        return "fragment"
    if "?" in rest:
        return "query"
    if "/" in rest:
        return "path"
    authority_after = re.split(r"[/?#]", after, maxsplit=1)[0]
    return "userinfo" if "@" in authority_after else "host"


def encode_for_part(value: str, part: str) -> str:
    """``value`` percent-encoded for ``part`` (see :func:`url_part`; UTF-8, RFC 3986)."""
    if part == "whole":
        return value
    if part in ("host", "path"):
        return quote(value, safe=":")
    return quote(value, safe="")


@dataclass(frozen=True, slots=True)
class Channel:
    """One destination. ``url`` is the real apprise URL (secrets in it): never log it; use
    ``name`` and ``redacted``. Intervals and ``timeout`` are seconds. ``format``: ``text`` |
    ``markdown`` | ``html`` (a Telegram channel written ``markdown`` is ``html``). ``secrets``:
    every spelling of the substituted values (see the module docstring). ``kind``: one of
    :data:`KINDS`, from apprise's plugin class. ``charts``: critical alerts carry a PNG chart
    (``charts = true`` in the table, and only for a service whose apprise plugin carries
    attachments; for the others it stays off, so nothing is drawn for nothing)."""

    name: str
    url: str = field(repr=False)
    redacted: str
    min_severity: Severity = Severity.WARNING
    send_resolved: bool = True
    format: str = "text"
    min_interval: float = 0.0
    per_minute: int | None = None
    max_length: int | None = None
    timeout: float = 30.0
    secrets: tuple[str, ...] = field(default=(), repr=False)
    kind: str = "other"
    charts: bool = False

    @property
    def label(self) -> str:
        """What to show: ``name (redacted-url)``."""
        return f"{self.name} ({self.redacted})"

    def body_limit(self, title: str) -> int | None:
        """Room for the body when ``title`` goes with it: services like Telegram fold the
        title into the text, so it counts against ``max_length`` (with a line break)."""
        if self.max_length is None:
            return None
        return max(self.max_length - len(title) - 8, 100)

    def accepts(self, severity: Severity) -> bool:
        return severity.rank >= self.min_severity.rank

    def scrub(self, text: str) -> str:
        """``text`` with this channel's secrets in every spelling (short ones only as whole
        words) and anything secret-looking masked."""
        return redact(mask(text, self.secrets))


def _resolve(
    template: str,
    source: str,
    path: str,
    *,
    env: Mapping[str, str],
    credentials_dir: Path | None,
    secrets: list[str],
) -> str:
    def sub(m: re.Match[str]) -> str:
        kind, name = m.group(1), m.group(2)
        if kind is None:
            if name not in env:
                raise ConfigError(source, path, f"environment variable {name} is not set")
            value = env[name]
        else:
            value = _credential(name, source, path, credentials_dir)
        if not value:
            raise ConfigError(source, path, f"secret {m.group(0)} is empty")
        encoded = encode_for_part(value, url_part(template, m.start(), m.end()))
        secrets.append(value)
        if encoded != value:
            secrets.append(encoded)
        return encoded

    return _REF.sub(sub, template)


def resolve_url(
    template: str,
    source: str,
    path: str,
    *,
    env: Mapping[str, str],
    credentials_dir: Path | None,
) -> tuple[str, tuple[str, ...]]:
    """Substitute ``${NAME}`` / ``${file:NAME}`` in a URL (each value percent-encoded for its
    part) and register every spelling of the secrets with the log redactor. Returns the URL
    and those spellings. Raises :class:`ConfigError` naming ``path`` (never a secret)."""
    found: list[str] = []
    url = _resolve(template, source, path, env=env, credentials_dir=credentials_dir, secrets=found)
    forms = _secret_forms(url, found)
    for f in forms:
        if len(f) >= MIN_SECRET_LENGTH:
            register_secret(f)
    return url, forms


def _secret_forms(url: str, values: list[str]) -> tuple[str, ...]:
    """Every spelling of ``values`` a library may log: as is, percent-encoded, and the base64
    ``user:password`` of HTTP Basic auth when one of them is in the URL's userinfo."""
    forms: set[str] = set()
    for v in values:
        forms |= _spellings(v)
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
    except ValueError:
        user = password = None
    if user is not None and password:
        # a URL password is a secret however it got there (${NAME}, url_file, typed in)
        u, p = unquote(user), unquote(password)
        forms |= _spellings(p)
        forms.add(base64.b64encode(f"{u}:{p}".encode()).decode())
    return tuple(sorted((f for f in forms if f), key=len, reverse=True))


def _register_hidden(url: str) -> None:
    """Register with the log redactor every spelling of :func:`hidden_parts` of ``url`` (of
    :data:`MIN_SECRET_LENGTH` characters or more)."""
    for f in _secret_forms(url, hidden_parts(url)):
        if len(f) >= MIN_SECRET_LENGTH:
            register_secret(f)


def _credential(name: str, source: str, path: str, credentials_dir: Path | None) -> str:
    if credentials_dir is None:
        raise ConfigError(
            source,
            path,
            f"credential {name!r} needs $CREDENTIALS_DIRECTORY (systemd "
            "LoadCredential=), which is not set",
        )
    if "/" in name or name in (".", ".."):
        raise ConfigError(source, path, f"credential name {name!r} must be a plain file name")
    file = credentials_dir / name
    try:
        return file.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(source, path, f"cannot read credential {file}: {exc.strerror}") from None


#: query keys every apprise URL may carry (``apprise.url.URLBase.parse_url`` reads them from
#: the query besides its ``template_args``)
_BASE_QUERY_KEYS: Final = frozenset({"user", "password", "pass", "port"})
#: apprise's prefixed query keys: ``+k`` header, ``-k`` query parameter, ``:k`` payload field
_PREFIX_WORDS: Final = {"+": "a header", "-": "a query parameter", ":": "a payload field"}
_QSD_KEY = re.compile(
    r"""["']([A-Za-z0-9_]+)["']\s+in\s+(?:results\[["']qsd["']\]|qsd)\b"""
    r"""|(?:results\[["']qsd["']\]|\bqsd)(?:\[|\.get\(\s*)["']([A-Za-z0-9_]+)["']"""
)
_FOR_TUPLE = re.compile(r"for\s+\w+\s+in\s+\(([^)]*)\)\s*:", re.S)
_LITERAL = re.compile(r"""["']([A-Za-z0-9_]+)["']""")


_QUERY_KEYS: dict[type, tuple[frozenset[str], frozenset[str]]] = {}


def query_keys(plugin: type) -> tuple[frozenset[str], frozenset[str]]:
    """The query keys apprise's ``plugin`` class reads (lower case, as apprise stores them)
    and the prefixes (``+``, ``-``, ``:``) it takes keys under (its ``template_kwargs``).

    Read from apprise itself: the plugin's ``template_args`` (aliases included), the keys every
    URL takes (:data:`_BASE_QUERY_KEYS`) and the keys its ``parse_url`` (and its bases') looks up
    in the query, found in their source. A key outside this set is dropped by apprise without
    a word (``json://host/?token=x`` sends no token: apprise wants ``?-token=x``)."""
    if plugin in _QUERY_KEYS:
        return _QUERY_KEYS[plugin]
    keys = set(_BASE_QUERY_KEYS)
    for cls in plugin.__mro__:
        keys.update(k.lower() for k in getattr(cls, "template_args", {}) or {})
        fn = cls.__dict__.get("parse_url")
        if fn is None:
            continue
        try:
            src = inspect.getsource(getattr(fn, "__func__", fn))
        except (OSError, TypeError):  # pragma: no cover - apprise ships its sources
            continue
        for m in _QSD_KEY.finditer(src):
            keys.add((m.group(1) or m.group(2)).lower())
        for body in _FOR_TUPLE.findall(src):
            keys.update(k.lower() for k in _LITERAL.findall(body))
    prefixes = {
        str(v.get("prefix"))
        for v in (getattr(plugin, "template_kwargs", {}) or {}).values()
        if isinstance(v, Mapping) and v.get("prefix") in _PREFIX_WORDS
    }
    _QUERY_KEYS[plugin] = (frozenset(keys), frozenset(prefixes))
    return _QUERY_KEYS[plugin]


#: the local channels (:mod:`monitor.notify.local`): no secret in them, shown whole
_LOCAL_SCHEMES: Final = ("monitorfile", "monitorconsole")
_DNS_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_IPV4: Final = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")
_IPV6: Final = re.compile(r"\[[0-9A-Fa-f:.]{2,45}\]")
#: a path segment shown as is: a lower-case word (a capital first allowed; '-', '_', '.')
#: or a number (a chat id). A mixed-case run of letters is a token (a Slack webhook token
#: holds no digit 1.5 % of the time, a Gotify one 9 %): masked
_PLAIN_SEGMENT: Final = re.compile(r"[A-Za-z][a-z_.-]{0,23}|-?\d{1,15}")
#: schemes whose path holds a bearer secret, every segment masked (a plain word too): those
#: whose apprise plugin puts a token it marks private after the host (Discord's and Slack's
#: webhook tokens, Gotify's, Mattermost's and the Apprise API's token...; a test reads
#: apprise to keep this complete) and ntfy's, whose topics apprise does not mark but whoever
#: knows one reads its alerts
SECRET_PATH_SCHEMES: Final = frozenset(
    {
        "acs", "apprise", "apprises", "awswhatsapp", "azure", "bark", "barks", "discord",
        "fcm", "fluxer", "fluxers", "gchat", "goalert", "goalerts", "gotify", "gotifys",
        "groupme", "guilded", "hassio", "hassios", "incidentio", "kakao", "kakaotalk",
        "kumulos", "mailgun", "mmost", "mmosts", "nctalk", "nctalks", "notica", "noticas",
        "notifico", "notificos", "notifyapp", "ntfy", "ntfys", "o365", "octopush", "pjet",
        "pjets", "prowl", "pushdeer", "pushdeers", "pushed", "reddit", "ringc", "ryver",
        "sendpulse", "ses", "slack", "smtp2go", "sns", "sparkpost", "synology", "synologys",
        "tweet", "twitter", "workflow", "workflows", "x", "zoom", "zulip",
    }
)  # fmt: skip
#: webhooks (apprise's json, form and xml, and its native ``https://`` forms such as
#: ``https://discord.com/api/webhooks/ID/TOKEN``): any path segment may be a token; only
#: these common path words, ``v1``-like versions and numbers are shown
_WEBHOOK_SCHEMES: Final = frozenset(
    {"json", "jsons", "form", "forms", "xml", "xmls", "http", "https"}
)
_PATH_WORDS: Final = frozenset(
    {
        "api", "apis", "hook", "hooks", "webhook", "webhooks", "services", "service",
        "notify", "notifications", "notification", "alert", "alerts", "event", "events",
        "incoming", "message", "messages", "send", "post", "push", "json", "xml", "form",
        "rest", "trigger", "triggers",
    }
)  # fmt: skip
_PATH_NUMBER_OR_VERSION: Final = re.compile(r"-?\d{1,15}|v\d{1,3}")
#: ntfy: ``mode=cloud`` in the query reads the host as one more topic
_NTFY_CLOUD: Final = re.compile(r"(?i)(?:^|&)mode=cloud(?:&|$)")
_NTFY_HOST: Final = "ntfy.sh"
_QUERY_KEY: Final = re.compile(r"[A-Za-z0-9_+:.-]{1,40}")


def _public_host(host: str) -> bool:
    """Whether ``host`` (as written) reads as a host name or address, not a token: an IPv4 or
    ``[IPv6]`` address, ``localhost``, or a lower-case DNS name with a dot, an alphabetic
    top-level label and no label that looks like a token (:func:`_secret_like`). A bot
    token (``123456789:AA…``), a webhook id, a name in capitals or with a random label are
    not."""
    if host == "localhost" or _IPV4.fullmatch(host) or _IPV6.fullmatch(host):
        return True
    labels = host.split(".")
    return (
        len(labels) >= 2
        and labels[-1].isalpha()
        and all(_DNS_LABEL.fullmatch(label) and not _secret_like(label) for label in labels)
    )


def _host_port(hostport: str) -> tuple[str, str, str, bool]:
    """``host[:port]`` of a URL's authority (``[IPv6]`` too) as (host, ``":"`` or ``""``,
    port, whether the port is absent or all digits)."""
    if hostport.startswith("["):
        host, _, tail = hostport.partition("]")
        port_sep, port = tail[:1], tail[1:]
        return host + "]", port_sep, port, tail == "" or (port_sep == ":" and _digits(port))
    host, port_sep, port = hostport.partition(":")
    return host, port_sep, port, not port_sep or _digits(port)


def _digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _segment_shown(scheme: str, seg: str) -> bool:
    """Whether the path segment ``seg`` of a ``scheme://`` URL is shown as is: never for
    :data:`SECRET_PATH_SCHEMES`; for :data:`_WEBHOOK_SCHEMES` a common path word
    (:data:`_PATH_WORDS`), a version (``v1``) or a number; for any other scheme a plain
    lower-case word or a number (apprise's public targets: a Telegram chat, a device)."""
    if not seg:
        return True
    if scheme in SECRET_PATH_SCHEMES:
        return False
    if scheme in _WEBHOOK_SCHEMES:
        return seg in _PATH_WORDS or _PATH_NUMBER_OR_VERSION.fullmatch(seg) is not None
    return _PLAIN_SEGMENT.fullmatch(seg) is not None


def _host_shown(scheme: str, host: str, ok: bool, path: str, query: str) -> bool:
    """Whether the host (and port) of a ``scheme://`` URL is shown: a public name or address
    (:func:`_public_host`); for ntfy only when it is the server, not a topic (apprise reads
    the host as a topic without a path after it or with ``mode=cloud``, unless it is
    ``ntfy.sh``)."""
    if not (ok and _public_host(host)):
        return False
    if scheme in ("ntfy", "ntfys") and host != _NTFY_HOST:
        return bool(path.strip("/")) and _NTFY_CLOUD.search(query) is None
    return True


def channel_form(url: str) -> str:
    """How a channel's ``url`` is shown (logs, the outbox, alerts, ``check-config``): our
    own masked form, which shows nothing of a secret, not even its first character.

    ``scheme://`` then: ``***@`` for a user and password; the host and port when the host
    reads as a public name or address (:func:`_public_host`; not an ntfy topic), else
    ``***``; each path segment :func:`_segment_shown` shows (none of a scheme whose path holds
    a secret, :data:`SECRET_PATH_SCHEMES`: ntfy topics, Gotify or Discord tokens; a common
    path word, a version or a number of a webhook's: ``hooks``, ``v1``; a plain lower-case
    word or a number of any other scheme's: a Telegram chat ``-1001234``), every other one
    ``***``; the query's keys with ``***`` for their values
    (a key that looks like a token: ``***`` too); ``#…`` for a fragment. A local channel
    (``monitorfile://``, ``monitorconsole://``) is shown whole (through the log redactor).
    Not a URL: ``<not a URL>``."""
    scheme, sep, rest = url.strip().partition("://")
    if not sep or not scheme or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return "<not a URL>"
    scheme = scheme.lower()
    if scheme in _LOCAL_SCHEMES:
        return redact(url.strip())
    rest, hash_, _fragment = rest.partition("#")
    rest, qmark, query = rest.partition("?")
    authority, slash, path = rest.partition("/")
    _userinfo, at, hostport = authority.rpartition("@")
    host, port_sep, port, ok = _host_port(hostport)
    shown = f"{scheme}://" + ("***@" if at else "")
    if _host_shown(scheme, host, ok, path, query):
        shown += f"{host}{port_sep}{port}"
    elif hostport:
        shown += "***"
    if slash:
        shown += "/" + "/".join(
            seg if _segment_shown(scheme, seg) else "***" for seg in path.split("/")
        )
    if qmark:
        keys = [item.partition("=")[0] for item in query.split("&") if item]
        shown += "?" + "&".join(
            f"{k if _QUERY_KEY.fullmatch(k) and not _secret_like(k) else '***'}=***" for k in keys
        )
    if hash_:
        shown += "#…"
    return shown


#: a query key whose value is a secret (``token``, ``apikey``, ``password``, ``auth``...)
_SECRETISH: Final = re.compile(r"(?i)(token|key|pass|secret|auth|sig)")


def hidden_parts(url: str) -> list[str]:
    """The parts of ``url`` that :func:`channel_form` masks in the host and the path, as
    written: the host and port when the host is no public name (a bot token, a webhook id)
    or is an ntfy topic, each path segment :func:`channel_form` masks (a token typed into
    the path, an ntfy topic; a plain lower-case word a webhook's path masks is given with
    its ``/``, ``/word``: it may be a route name used elsewhere in the log), ntfy's
    ``?to=`` topics, and the query's values of a key that sends them as a header, a GET
    parameter or a payload field (``+H=v``, ``-k=v``, ``:k=v``) or is named like a secret
    (``token``, ``apikey``...; another value may be a plain word such as ``markdown`` that
    the log must keep).
    apprise's and urllib3's debug lines write the URL whole (``JSON POST URL: …/TOKEN``):
    :func:`parse_channel` registers these with the log redactor. The userinfo is not among
    them (a URL password is registered by :func:`_secret_forms`)."""
    scheme, sep, rest = url.strip().partition("://")
    scheme = scheme.lower()
    if not sep or scheme in _LOCAL_SCHEMES:
        return []
    rest, _, query = rest.partition("#")[0].partition("?")
    topics = scheme in ("ntfy", "ntfys")
    values: list[str] = []
    for item in query.split("&"):
        k, _, v = item.partition("=")
        if v and (
            k.startswith(("+", "%2B", "%2b", ":", "-"))
            or _SECRETISH.search(k)
            or (topics and k.lower() == "to")  # ntfy's ?to=TOPIC
        ):
            values += [v, unquote(v)]
    authority, _, path = rest.partition("/")
    hostport = authority.rpartition("@")[2]
    host, _, _, ok = _host_port(hostport)
    out = [] if not hostport or _host_shown(scheme, host, ok, path, query) else [hostport]
    for seg in path.split("/"):
        if _segment_shown(scheme, seg):
            continue
        if scheme in _WEBHOOK_SCHEMES and _PLAIN_SEGMENT.fullmatch(seg):
            # a route name ("closed", "monitor") as much as a token: with its '/', as the
            # URLs apprise and urllib3 log hold it, so the word stays readable elsewhere
            out.append("/" + seg)
        else:
            out.append(seg)
    return out + values


def _secret_like(key: str) -> bool:
    """True for a query key that looks like a token rather than a name: over 24 characters,
    or 12 and more mixing letters and digits."""
    bare = key.lstrip("+-:")
    mixed = any(c.isdigit() for c in bare) and any(c.isalpha() for c in bare)
    return len(bare) > 24 or (len(bare) >= 12 and mixed)


def unread_query_keys(url: str, plugin: object) -> list[str]:
    """One line per query key of ``url`` that apprise's ``plugin`` (an instance) never reads
    and so drops silently, with the nearest key it does read; ``[]`` when all are read.
    Values are never shown. Our own ``@notify`` channels (``monitorfile://``) take any key."""
    from apprise.decorators.base import CustomNotifyPlugin  # noqa: PLC0415

    if isinstance(plugin, CustomNotifyPlugin):
        return []
    known, prefixes = query_keys(type(plugin))
    scheme = urlsplit(url).scheme.lower()
    out: list[str] = []
    for item in urlsplit(url).query.split("&"):
        key = unquote(item.partition("=")[0]).strip()  # apprise keeps '+' (a header key)
        if not key or key.lower() in known:
            continue
        head, bare = key[0], key[1:]
        if head in _PREFIX_WORDS and head in prefixes and bare:
            continue
        if _secret_like(key):
            # a token written where a key goes: never echoed
            out.append(
                f"apprise drops a query key of {len(key)} characters (not shown: it may be a "
                f"secret) of a {scheme}:// URL silently; a value is written ?key=value"
            )
            continue
        if head in _PREFIX_WORDS:
            taken = ", ".join(f"'{p}'" for p in sorted(prefixes)) or "none"
            out.append(
                f"apprise drops the query key {key!r} of a {scheme}:// URL silently: it takes "
                f"no {head!r} keys ({_PREFIX_WORDS[head]}); prefixes it takes: {taken}"
            )
            continue
        near = difflib.get_close_matches(key.lower(), sorted(known), n=1, cutoff=0.75)
        ways = [f"'?{p}{key}=…' (sent as {_PREFIX_WORDS[p]})" for p in "-+:" if p in prefixes]
        hint = f"did you mean {near[0]!r}?" if near else ""
        if ways:
            sends = ", ".join(ways[:-1]) + (" or " if len(ways) > 1 else "") + ways[-1]
            hint = (hint + " Otherwise write " if hint else "write ") + sends
        elif not hint:
            hint = f"it reads: {', '.join(sorted(known))}"
        out.append(f"apprise drops the query key {key!r} of a {scheme}:// URL silently: {hint}")
    return out


def local_url_problem(url: str) -> str | None:
    """Why a ``monitorfile://`` URL would write somewhere else than it says, or None: apprise
    folds ``monitorfile:///tmp/a`` into ``monitorfile://tmp/a``, a path under the daemon's
    working directory (:mod:`monitor.notify.local`), so an absolute path is refused."""
    head, sep, rest = url.partition("://")
    if sep and head.lower() == "monitorfile" and rest.startswith("/"):
        where = rest.lstrip("/").split("?", 1)[0]
        return (
            f"monitorfile:// takes a path relative to the daemon's working directory (apprise "
            f"folds '///' into '//': this would write {where!r} under it, not /{where}); "
            f"write monitorfile://{where} and run the daemon from /, or a relative path"
        )
    return None


def _inspect(url: str) -> tuple[str, str, list[str], bool] | None:
    """apprise's privacy form of ``url`` (secrets masked), the channel's kind (see
    :data:`KINDS`), the query keys apprise would drop (:func:`unread_query_keys`) and whether
    its plugin carries attachments, or None if apprise can't parse it."""
    import apprise  # noqa: PLC0415 -- apprise is slow to import; only channels need it
    from apprise.plugins.custom_form import NotifyForm  # noqa: PLC0415
    from apprise.plugins.custom_json import NotifyJSON  # noqa: PLC0415
    from apprise.plugins.custom_xml import NotifyXML  # noqa: PLC0415
    from apprise.plugins.email import NotifyEmail  # noqa: PLC0415
    from apprise.plugins.telegram import NotifyTelegram  # noqa: PLC0415

    plugin = apprise.Apprise.instantiate(url, suppress_exceptions=True)
    if plugin is None:
        return None
    text: object = plugin.url(privacy=True)  # type: ignore[no-untyped-call]
    if isinstance(plugin, NotifyTelegram):
        kind = "telegram"
    elif isinstance(plugin, NotifyJSON | NotifyForm | NotifyXML):
        kind = "webhook"
    elif isinstance(plugin, NotifyEmail):
        kind = "email"
    else:
        kind = "other"
    return (
        str(text),
        kind,
        unread_query_keys(url, plugin),
        bool(getattr(plugin, "attachment_support", False)),
    )


def _defaults(url: str, kind: str = "other") -> dict[str, object]:
    scheme = urlsplit(url).scheme.lower()
    if kind == "telegram" or scheme in ("tgram", "telegram"):
        chats = [p for p in urlsplit(url).path.split("/") if p]
        group = any(c.startswith("-") for c in chats)
        return {"min_interval": 1.0, "per_minute": 20 if group else None, "max_length": 4096}
    return {}


def parse_channel(
    name: str,
    table: Mapping[str, object],
    source: str,
    *,
    env: Mapping[str, str],
    credentials_dir: Path | None,
) -> Channel:
    path = f"channels.{name}"
    if not _NAME.match(name):
        raise ConfigError(source, path, "a channel name uses letters, digits, '_', '-', '.'")
    for key in table:
        if key not in _KEYS:
            near = difflib.get_close_matches(key, _KEYS, n=1, cutoff=0.5)
            hint = f"; did you mean {near[0]!r}?" if near else f"; valid keys: {', '.join(_KEYS)}"
            raise ConfigError(source, f"{path}.{key}", f"unknown key {key!r}{hint}")
    if ("url" in table) == ("url_file" in table):
        raise ConfigError(source, path, "set exactly one of url, url_file")
    if "url" in table:
        raw = table["url"]
        if not isinstance(raw, str) or not raw.strip():
            raise ConfigError(source, f"{path}.url", "expected an apprise URL string")
        url, forms = resolve_url(
            raw.strip(), source, f"{path}.url", env=env, credentials_dir=credentials_dir
        )
        secrets = list(forms)
        _register_hidden(url)  # before apprise reads it (it logs the URL at debug)
    else:
        ref = table["url_file"]
        if not isinstance(ref, str) or not ref:
            raise ConfigError(source, f"{path}.url_file", "expected a credential file name")
        url = _credential(ref, source, f"{path}.url_file", credentials_dir).strip()
        secrets = [url, *_secret_forms(url, [url])]
        for s in secrets:
            if len(s) >= MIN_SECRET_LENGTH:
                register_secret(s)
    local = local_url_problem(url)
    if local is not None:
        raise ConfigError(source, f"{path}.url", local)
    inspected = _inspect(url)
    if inspected is None:
        # never echo the URL: a literal token in it was not registered as a secret
        scheme = urlsplit(url).scheme or "?"
        raise ConfigError(
            source,
            f"{path}.url",
            f"not a URL apprise can use (scheme {scheme!r}; the rest is not shown, it may hold "
            "a secret)",
        )
    _privacy, kind, unread, attachments = inspected
    if unread:
        raise ConfigError(source, f"{path}.url", mask(unread[0], secrets))
    if "url_file" in table:
        redacted = f"{urlsplit(url).scheme}://… (credential {table['url_file']})"
    else:
        # a plain word of the path may be a substituted secret: masked by its spellings
        redacted = redact(mask(channel_form(url), secrets))
    opts: dict[str, object] = _defaults(url, kind)
    opts.update({k: v for k, v in table.items() if k not in ("url", "url_file")})
    min_sev = opts.get("min_severity", "warning")
    if not isinstance(min_sev, str) or min_sev not in ("info", "warning", "critical"):
        raise ConfigError(
            source, f"{path}.min_severity", f"expected info, warning or critical, got {min_sev!r}"
        )
    send_resolved = opts.get("send_resolved", True)
    if not isinstance(send_resolved, bool):
        raise ConfigError(source, f"{path}.send_resolved", "expected true or false")
    charts = opts.get("charts", False)
    if not isinstance(charts, bool):
        raise ConfigError(source, f"{path}.charts", "expected true or false")
    fmt = opts.get("format", "text")
    if fmt not in FORMATS:
        raise ConfigError(source, f"{path}.format", f"expected text, markdown or html, got {fmt!r}")
    if kind == "telegram" and fmt == "markdown":
        fmt = "html"  # see the module docstring: Telegram's Markdown cannot escape in bold
    min_interval = parse_duration(opts.get("min_interval", 0.0), source, f"{path}.min_interval")
    timeout = parse_duration(opts.get("timeout", 30.0), source, f"{path}.timeout")
    if timeout <= 0:
        raise ConfigError(source, f"{path}.timeout", "must be > 0")
    per_minute = _opt_int(opts.get("per_minute"), source, f"{path}.per_minute")
    max_length = _opt_int(opts.get("max_length"), source, f"{path}.max_length")
    if max_length is not None and max_length < 200:
        raise ConfigError(source, f"{path}.max_length", "must be at least 200 characters")
    return Channel(
        name=name,
        url=url,
        redacted=redacted,
        min_severity=Severity(min_sev),
        send_resolved=send_resolved,
        format=str(fmt),
        min_interval=min_interval,
        per_minute=per_minute,
        max_length=max_length,
        timeout=timeout,
        secrets=tuple(dict.fromkeys(secrets)),
        kind=kind,
        charts=charts and attachments,
    )


def _opt_int(value: object, source: str, path: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise ConfigError(source, path, f"expected a positive whole number, got {value!r}")
    if isinstance(value, float) and (not math.isfinite(value) or value != int(value)):
        raise ConfigError(source, path, f"expected a positive whole number, got {value!r}")
    return int(value)


def parse_channels(
    table: Mapping[str, object],
    source: str,
    *,
    env: Mapping[str, str],
    credentials_dir: Path | None,
) -> list[Channel]:
    """Parse the ``[channels]`` table (one sub-table per channel, in order).

    Raises :class:`ConfigError` naming ``channels.<name>.<key>``; the message never contains
    a secret value.
    """
    out = []
    for name, sub in table.items():
        if not isinstance(sub, Mapping):
            raise ConfigError(source, f"channels.{name}", 'expected a table with url = "…"')
        out.append(parse_channel(name, sub, source, env=env, credentials_dir=credentials_dir))
    return out


def adhoc_channel(url: str, index: int) -> Channel:
    """A channel from a bare URL (``monitor test-notify --url``), every severity."""
    raw = url.strip()
    local = local_url_problem(raw)
    if local is not None:
        raise ConfigError("--url", f"url[{index}]", local)
    _register_hidden(raw)  # before apprise reads it (it logs the URL at debug)
    inspected = _inspect(raw)
    if inspected is None:
        raise ConfigError("--url", f"url[{index}]", f"not a URL apprise can use: {redact(raw)}")
    _privacy, kind, unread, _ = inspected
    if unread:
        raise ConfigError("--url", f"url[{index}]", redact(unread[0]))
    opts = _defaults(raw, kind)
    return Channel(
        name=f"url{index}",
        url=raw,
        redacted=redact(channel_form(raw)),
        min_severity=Severity.INFO,
        max_length=opts.get("max_length"),  # type: ignore[arg-type]
        kind=kind,
    )
