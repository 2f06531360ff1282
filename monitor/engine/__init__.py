"""The engine: ``Engine.receive(inputs, now) -> Step`` (pure; see :mod:`monitor.engine.core`)."""

from monitor.engine.core import (
    Engine,
    Input,
    Mutes,
    OutboxHealth,
    Quarantined,
    Reconfigure,
    Step,
)

__all__ = ["Engine", "Input", "Mutes", "OutboxHealth", "Quarantined", "Reconfigure", "Step"]
