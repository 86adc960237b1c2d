"""Children the service spawns (the sandbox jobs' worker, the audit writer) end when the
process that started them is killed, instead of running on with nobody to serve."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

STARTER = """
import multiprocessing, sys, time
from concurrent.futures import ProcessPoolExecutor
from chokepoint.service.orphans import exit_with_parent

def pid():
    import os
    return os.getpid()

if __name__ == "__main__":
    initializer = exit_with_parent if sys.argv[1] == "watched" else None
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                               initializer=initializer)
    print(pool.submit(pid).result(), flush=True)
    time.sleep(600)
"""


def _gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")  # (a zombie left to init has ended)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("watched", [True, False])
def test_a_pool_worker_ends_when_its_parent_is_killed(tmp_path: Path, watched: bool) -> None:
    script = tmp_path / "starter.py"
    script.write_text(STARTER)
    parent = subprocess.Popen([sys.executable, str(script),
                               "watched" if watched else "plain"],
                              stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        # (a watched child looks every INTERVAL, 0.5 s; the unwatched one shows what
        # happens without: after 4 intervals it still runs)
        deadline = time.time() + (5 if watched else 2)
        while time.time() < deadline and not _gone(child):
            time.sleep(0.1)
        assert _gone(child) is watched
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)


def test_the_audit_writer_commits_and_ends_when_its_supervisor_is_killed(
        tmp_path: Path) -> None:
    db = tmp_path / "audit.db"
    code = f"""
import sys, time
from chokepoint.service.audit_writer import running_writer
with running_writer("sqlite:///{db}") as writer:
    print(writer.process.pid, flush=True)
    time.sleep(600)
"""
    supervisor = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                                  text=True)
    assert supervisor.stdout is not None
    child = int(supervisor.stdout.readline())
    try:
        assert not _gone(child)
        os.kill(supervisor.pid, signal.SIGKILL)
        supervisor.wait(10)
        deadline = time.time() + 10
        while time.time() < deadline and not _gone(child):
            time.sleep(0.1)
        assert _gone(child)
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)
