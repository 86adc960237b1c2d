from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chokepoint.rules.loader import default_rules
from chokepoint.rules.ruleset import RuleSet

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"


@pytest.fixture(autouse=True, scope="session")
def _columnar_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Answers the columnar engine keeps between runs (batch.columnar.cache) go to a
    directory of this test session's, not the user's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CHOKEPOINT_CACHE_DIR", str(tmp_path_factory.mktemp("columnar-cache")))
        yield


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
