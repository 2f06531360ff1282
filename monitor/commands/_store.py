"""Finding the daemon's store from ``--store`` or ``--config`` (shared by read-only commands).

Reading the store never needs a channel's secrets: with ``--config`` the file is validated
without its ``[channels]`` table, so ``monitor status --config /etc/monitor/monitor.toml``
works in an admin's shell that lacks the daemon's ``${TELEGRAM_TOKEN}``.
"""

from __future__ import annotations

import argparse
import os
import tomllib
from pathlib import Path

from monitor.config import default_store_path, parse_config
from monitor.errors import ConfigError


def add_store_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--store", type=Path, metavar="PATH", help="the daemon's SQLite store")
    g.add_argument(
        "--config",
        "-c",
        type=Path,
        metavar="FILE",
        help="the daemon's configuration (its [store] path is used)",
    )


def store_location(args: argparse.Namespace) -> tuple[Path, str]:
    """(path, where it came from): ``--store``, else the ``[store]`` path of ``--config``
    (validated without its ``[channels]``), else the default location. The second item is
    what ``monitor status`` prints: ``--store``, ``[store] path of FILE``, ``default
    location``. Raises ConfigError for a bad configuration file."""
    if args.store is not None:
        return Path(args.store), "--store"
    if args.config is not None:
        config = Path(args.config)
        try:
            doc = tomllib.loads(config.read_bytes().decode("utf-8"))
        except FileNotFoundError:
            raise ConfigError(str(config), None, "no such file") from None
        except OSError as exc:
            raise ConfigError(str(config), None, f"cannot read: {exc.strerror or exc}") from None
        except UnicodeDecodeError:
            raise ConfigError(str(config), None, "not UTF-8 text") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(config), None, f"not valid TOML: {exc}") from None
        without_channels = {k: v for k, v in doc.items() if k != "channels"}
        # no secret is read: API keys, the heartbeat URL and the bot token stay unresolved
        path = parse_config(without_channels, config, secrets=False).store.path
        return path, f"[store] of {config}"
    return default_store_path(os.environ), "default location"


def store_path(args: argparse.Namespace) -> Path:
    """``--store``, else the ``[store]`` path of ``--config``, else the default location.
    Raises ConfigError for a bad configuration file."""
    return store_location(args)[0]
