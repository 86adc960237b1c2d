from __future__ import annotations

import socket
import subprocess
import sys
import time
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


@pytest.fixture(autouse=True)
def _fresh_view_of_imported_lists() -> None:
    """Tests point CHOKEPOINT_DATA_DIR elsewhere from one to the next, faster than the
    second a process keeps its view of the imported lists (screening.service): each test
    starts by looking again."""
    from chokepoint.screening import service

    service._LISTS_STATE.clear()


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


MapRefused = Callable[[Path, Path, str, str], None]


@pytest.fixture()
def map_refused(tmp_path: Path, rules: RuleSet) -> MapRefused:
    """Checks that a book read with a column map is refused before anything is written:
    by the warnings before a run and by the run (BatchError matching ``error``), and by
    ``chokepoint batch`` (exit 2, ``stderr`` in its message)."""
    from chokepoint.batch.errors import BatchError
    from chokepoint.batch.run import layout_warnings, run_batch

    def check(book: Path, cmap: Path, error: str, stderr: str) -> None:
        out = tmp_path / "refused.csv"
        for call in (lambda: layout_warnings(book, cmap),
                     lambda: run_batch(book, out, rules, columns=cmap)):
            with pytest.raises(BatchError, match=error):
                call()
        assert not list(tmp_path.glob("refused.csv*"))
        done = subprocess.run([sys.executable, "-m", "chokepoint", "batch", str(book),
                               str(out), "--columns", str(cmap)],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 2 and stderr in done.stderr
        assert not list(tmp_path.glob("refused.csv*"))
    return check


Server = Callable[[list[str], dict[str, str]], tuple["subprocess.Popen[bytes]", int]]


@pytest.fixture(scope="session")
def start_server() -> Server:
    """Starts ``chokepoint serve`` on a free port with more arguments and an environment,
    and waits until it accepts connections: (the process, its port)."""
    def start(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen[bytes], int]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        proc = subprocess.Popen([sys.executable, "-m", "chokepoint", "serve", "--port",
                                 str(port), *args], env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    return proc, port
            except OSError:
                time.sleep(0.2)
        proc.kill()
        raise AssertionError(f"chokepoint serve {' '.join(args)} did not start")
    return start
