"""Subcommands of ``monitor``; each module exposes ``register(subparsers)``.

The command list is explicit, in ``monitor.cli.COMMANDS``.
"""
