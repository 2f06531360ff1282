"""Generic (textbook) rules: maintenance = notional·rate − deduction, everything mark-priced.

Used for any venue without a rule set of its own (contracts.md §2, ``"venue": "generic"``).
Liquidation price is formula (★) of margin-math.md; no liquidation penalty is assumed.
"""

from __future__ import annotations

from monitor.margin.base import RuleSet


class GenericRules(RuleSet):
    name = "generic"
