from __future__ import annotations

from pathlib import Path

import pytest

from chokepoint.rules.loader import default_rules
from chokepoint.rules.ruleset import RuleSet

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def rules() -> RuleSet:
    return default_rules()
