"""Pure layer: no I/O, no clock reads."""
