from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from chokepoint.rules.loader import default_rules
from chokepoint.rules.ruleset import RuleSet

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return default_rules()


class _Interrupted(Exception):
    pass


@pytest.fixture()
def interrupt() -> Callable[[Callable[[Callable[[int], None]], object], int], None]:
    """Runs ``start(progress)`` and stops it, as a crash would, once the progress reaches
    row ``at``; fails if the run ends without reaching it."""
    def run(start: Callable[[Callable[[int], None]], object], at: int) -> None:
        def progress(n: int) -> None:
            if n == at:
                raise _Interrupted
        with pytest.raises(_Interrupted):
            start(progress)
    return run
