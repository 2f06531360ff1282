"""The error hierarchy of monitor.

::

    MonitorError                     base of everything we raise on purpose
    ├── InputError                   bad user input: a file, a field, a value (exit code 2)
    │   └── ConfigError              bad configuration: names the file, key path and problem
    ├── ParseError                   a venue frame we cannot use (logged, counted, skipped)
    ├── RetryableError               transient I/O: a dropped socket, a timeout, a 5xx, a 429
    └── FatalError                   cannot go on: store not writable, second instance

Retryable errors are retried with backoff; fatal ones stop start-up with one clear line.
"""

from __future__ import annotations


class MonitorError(Exception):
    """Base class of the errors monitor raises on purpose."""


class InputError(MonitorError):
    """Bad input. ``source`` is the file (or URL), ``field`` the offending key path."""

    def __init__(self, source: str, field: str | None, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")


class ConfigError(InputError):
    """Invalid configuration; ``field`` is the dotted key path."""


class ParseError(MonitorError):
    """A frame that cannot be parsed. ``venue`` names the venue, ``frame`` is a truncated copy."""

    def __init__(self, venue: str, problem: str, frame: str | bytes = "") -> None:
        self.venue = venue
        self.problem = problem
        text = frame.decode("utf-8", "replace") if isinstance(frame, bytes) else frame
        self.frame = text[:200]
        super().__init__(f"{venue}: {problem}")


class RetryableError(MonitorError):
    """A transient failure: retry with backoff."""


class FatalError(MonitorError):
    """A failure start-up cannot recover from."""
