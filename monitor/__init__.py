"""monitor: a live margin monitor for crypto perpetual futures.

The package is layered (see README "Architecture"):

* ``monitor.model``, ``monitor.margin``: pure domain model and margin math (no I/O, no clock).
* ``monitor.inspect``: one-shot readers of venue account documents.
* ``monitor.cli``: the command line, ``monitor --help``.
"""

__version__ = "0.1.0"
