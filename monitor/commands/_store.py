"""Finding the daemon's store from ``--store`` or ``--config`` (shared by read-only commands)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from monitor.config import default_store_path, load_config


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


def store_path(args: argparse.Namespace) -> Path:
    """``--store``, else the ``[store]`` path of ``--config``, else the default location.
    Raises ConfigError for a bad configuration file."""
    if args.store is not None:
        return Path(args.store)
    if args.config is not None:
        return load_config(args.config).store.path
    return default_store_path(os.environ)
