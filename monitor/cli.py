"""The ``monitor`` command line: ``monitor --help`` is the front door.

Each subcommand lives in ``monitor/commands/<name>.py`` and exposes
``register(subparsers) -> None``; its parser's ``func`` returns the exit code.

Exit codes: 0 success; 1 runtime failure; 2 bad input or configuration; 3 another instance
holds the store; 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence

from monitor import __version__

#: the explicit list of subcommand modules, in ``--help`` order
COMMANDS: tuple[str, ...] = (
    "run",
    "status",
    "history",
    "inspect",
    "check-config",
    "whatif",
    "record",
    "replay",
    "test-notify",
    "check-keys",
    "mute",
)

EPILOG = """\
examples:
  monitor run --config config/demo.toml --replay config/demo_recording.jsonl   # offline demo
  monitor run --config /etc/monitor/monitor.toml                              # the daemon
  monitor status --config /etc/monitor/monitor.toml
  monitor inspect config/examples/binance_cross_and_isolated.json
  monitor whatif config/examples/binance_cross_and_isolated.json --shock -10%
  monitor whatif config/examples/binance_cross_and_isolated.json --target-distance 15%
  monitor COMMAND --help        every command explains itself with an example

exit codes: 0 success; 1 runtime failure; 2 bad input or configuration; 3 another instance
holds the store.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="monitor",
        description=(
            "Live margin monitor for crypto perpetual futures: how close each cross pool and "
            "isolated position is to its maintenance requirement, with alerts before the "
            "exchange acts."
        ),
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        module = importlib.import_module(f"monitor.commands.{name.replace('-', '_')}")
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # our local apprise channels (monitorfile://, monitorconsole://) must be known before any
    # configuration's channel URLs are validated
    from monitor.notify import local  # noqa: PLC0415 (apprise is slow to import)

    local.register()
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Callable[[argparse.Namespace], int] | None = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        return func(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
