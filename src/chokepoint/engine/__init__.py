"""The determination engine: pure functions from facts and rules to a determination.

Nothing here reads files, parses YAML or talks to a user; the engine knows logic, not
regulations (every number, date, country and ECCN lives in the rule files).
"""

from chokepoint.engine.determine import determine

__all__ = ["determine"]
