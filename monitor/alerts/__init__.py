"""Alerts (pure): rules, the hysteresis/for/repeat/resolve state machine, mutes, grouping."""
