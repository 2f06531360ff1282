"""[metrics] and [telegram_bot] tables: defaults off, key-path errors, secrets resolved and never
echoed."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import ConfigError
from monitor.ops.settings import (
    MetricsConfig,
    OpsConfigError,
    TelegramBotConfig,
    parse_metrics,
    parse_telegram_bot,
)

TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def test_metrics_are_off_by_default_and_listen_on_loopback_9108() -> None:
    assert parse_metrics({}) == MetricsConfig(enabled=False, host="127.0.0.1", port=9108)


@pytest.mark.parametrize(
    ("listen", "host", "port"),
    [
        ("0.0.0.0:9200", "0.0.0.0", 9200),
        ("[::1]:9108", "::1", 9108),
        ("localhost:0", "localhost", 0),
    ],
)
def test_metrics_listen_forms(listen: str, host: str, port: int) -> None:
    cfg = parse_metrics({"enabled": True, "listen": listen})
    assert (cfg.enabled, cfg.host, cfg.port) == (True, host, port)


@pytest.mark.parametrize(
    ("table", "path", "problem"),
    [
        ({"listen": "9108"}, "metrics.listen", "HOST:PORT"),
        ({"listen": "127.0.0.1:70000"}, "metrics.listen", "above 65535"),
        ({"listen": 9108}, "metrics.listen", "HOST:PORT"),
        ({"listen": "bad host!:1"}, "metrics.listen", "HOST:PORT"),
        ({"enabled": "yes"}, "metrics.enabled", "true or false"),
        ({"listn": "x"}, "metrics.listn", "did you mean 'listen'"),
    ],
)
def test_metrics_errors_name_the_key_path(
    table: dict[str, object], path: str, problem: str
) -> None:
    with pytest.raises(OpsConfigError) as err:
        parse_metrics(table, "monitor.toml")
    assert err.value.field == path
    assert problem in str(err.value)
    assert str(err.value).startswith(f"monitor.toml: {path}: ")
    assert isinstance(err.value, ValueError) and isinstance(err.value, ConfigError)


def test_bot_is_off_by_default_and_needs_no_token_then() -> None:
    cfg = parse_telegram_bot({})
    assert cfg == TelegramBotConfig()
    assert not cfg.enabled
    off = parse_telegram_bot({"token": "${UNSET}", "chat_ids": [1]})
    assert not off.enabled and off.token == ""


def test_bot_token_comes_from_the_environment_and_stays_out_of_repr() -> None:
    cfg = parse_telegram_bot(
        {
            "enabled": True,
            "token": "${TELEGRAM_BOT_TOKEN}",
            "chat_ids": [42, -1001234567890],
            "api_url": "http://127.0.0.1:8081/bot",
            "poll_timeout": 5,
        },
        env={"TELEGRAM_BOT_TOKEN": TOKEN},
    )
    assert cfg.token == TOKEN
    assert cfg.chat_ids == frozenset({42, -1001234567890})
    assert cfg.api_url == "http://127.0.0.1:8081/bot"
    assert cfg.poll_timeout == 5.0 and cfg.history_hours == 6.0
    assert TOKEN not in repr(cfg)


def test_bot_token_from_a_systemd_credential(tmp_path: Path) -> None:
    (tmp_path / "telegram-bot-token").write_text(TOKEN + "\n")
    cfg = parse_telegram_bot(
        {"enabled": True, "token": "${file:telegram-bot-token}", "chat_ids": [1]},
        credentials_dir=tmp_path,
    )
    assert cfg.token == TOKEN


@pytest.mark.parametrize(
    ("table", "env", "path", "problem"),
    [
        ({"enabled": True, "chat_ids": [1]}, {}, "telegram_bot.token", "required"),
        ({"enabled": True, "token": "${T}"}, {"T": TOKEN}, "telegram_bot.chat_ids", "at least"),
        (
            {"enabled": True, "token": "${T}", "chat_ids": ["@me"]},
            {"T": TOKEN},
            "telegram_bot.chat_ids",
            "integer chat ids",
        ),
        (
            {"enabled": True, "token": "${T}", "chat_ids": [1]},
            {},
            "telegram_bot.token",
            "T is not set",
        ),
        (
            {"enabled": True, "token": "${T}", "chat_ids": [1], "api_url": "ftp://x"},
            {"T": TOKEN},
            "telegram_bot.api_url",
            "http(s)",
        ),
        (
            {"enabled": True, "token": "${T}", "chat_ids": [1], "poll_timeout": 0},
            {"T": TOKEN},
            "telegram_bot.poll_timeout",
            "> 0",
        ),
        ({"chat_id": [1]}, {}, "telegram_bot.chat_id", "did you mean 'chat_ids'"),
    ],
)
def test_bot_errors_name_the_key_path(
    table: dict[str, object], env: dict[str, str], path: str, problem: str
) -> None:
    with pytest.raises(OpsConfigError) as err:
        parse_telegram_bot(table, "monitor.toml", env=env)
    assert err.value.field == path
    assert problem in str(err.value)


def test_a_malformed_token_is_refused_without_echoing_it() -> None:
    almost = "123456789 AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"
    with pytest.raises(OpsConfigError) as err:
        parse_telegram_bot(
            {"enabled": True, "token": "${T}", "chat_ids": [1]}, "m.toml", env={"T": almost}
        )
    assert "does not look like a bot token" in str(err.value)
    assert "AAHdq" not in str(err.value)
