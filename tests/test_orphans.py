"""Children the service spawns (the sandbox jobs' worker, the audit writer) end when the
process that started them is killed, instead of running on with nobody to serve."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def _ends_with_parent(command: list[str], wait: float,
                     killed: Callable[[list[str]], None] | None = None) -> bool:
    """Starts ``command`` (a parent that prints a line: its child's pid, then any other
    words), kills it with SIGKILL, calls ``killed`` with the line's other words, and says
    whether the child has ended within ``wait`` seconds of the kill (it is killed after)."""
    parent = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    first, *words = parent.stdout.readline().split()
    child = int(first)
    try:
        assert not _gone(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(10)
        if killed is not None:
            killed(words)
        deadline = time.time() + wait
        while time.time() < deadline and not _gone(child):
            time.sleep(0.1)
        return _gone(child)
    finally:
        if not _gone(child):
            os.kill(child, signal.SIGKILL)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("watched", [True, False])
def test_a_pool_worker_ends_when_its_parent_is_killed(tmp_path: Path, watched: bool) -> None:
    script = tmp_path / "starter.py"
    script.write_text(STARTER)
    # (a watched child looks every INTERVAL, 0.5 s; the unwatched one shows what happens
    # without: after 4 intervals it still runs)
    assert _ends_with_parent([sys.executable, str(script), "watched" if watched else "plain"],
                             5 if watched else 2) is watched


LATE_CHILD = """
import os, sys, time
from chokepoint.service.orphans import exit_with_parent

parent = int(sys.argv[1])
while os.getppid() == parent:  # (still starting up when its parent is killed)
    time.sleep(0.05)
exit_with_parent(parent=parent if sys.argv[2] == "given" else None)
time.sleep(600)
"""

LATE_PARENT = """
import subprocess, sys, os, time
child = subprocess.Popen([sys.executable, sys.argv[1], str(os.getpid()), sys.argv[2]])
print(child.pid, flush=True)
time.sleep(600)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("given", [True, False])
def test_a_child_whose_parent_died_before_it_looked_ends(tmp_path: Path,
                                                         given: bool) -> None:
    (tmp_path / "child.py").write_text(LATE_CHILD)
    (tmp_path / "parent.py").write_text(LATE_PARENT)
    # (told its parent's pid, it ends at its first look; left to ask os.getppid() it
    # would take its new parent for the one that started it, and run on)
    assert _ends_with_parent([sys.executable, str(tmp_path / "parent.py"),
                              str(tmp_path / "child.py"), "given" if given else "asked"],
                             10 if given else 3) is given


def test_the_audit_writer_commits_and_ends_when_its_supervisor_is_killed(
        tmp_path: Path) -> None:
    from chokepoint.service import audit
    from chokepoint.service.audit_writer import RemoteLog, WriterUnavailable
    from chokepoint.service.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'audit.db'}"
    migrate(url)
    code = f"""
import sys, time
from chokepoint.service import audit
from chokepoint.service.audit_writer import RemoteLog, running_writer
with running_writer("{url}") as writer:
    RemoteLog(writer.path).append([audit.make_record("determination", "before", {{}},
                                                     {{}}, "h") for _ in range(3)])
    print(writer.process.pid, writer.path, flush=True)
    time.sleep(600)
"""
    late: list[int] = []

    def send_late(words: list[str]) -> None:
        # (a batch sent while the writer may still be serving, its supervisor gone: it is
        # either committed and acknowledged, or refused - never acknowledged and lost)
        with contextlib.suppress(WriterUnavailable):
            late.extend(RemoteLog(words[0]).append(
                [audit.make_record("determination", "after", {}, {}, "h")]))

    assert _ends_with_parent([sys.executable, "-c", code], 10, send_late)
    intact, problems, count = audit.verify(make_engine(url))
    assert intact and not problems
    assert count == 3 + len(late)  # the supervisor's three records, and any acknowledged


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().split(") ")[1].split()
        except (FileNotFoundError, IndexError):
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("when", ["listening", "starting"])
def test_serve_workers_end_when_the_supervisor_is_killed(tmp_path: Path, start_server: Any,
                                                         when: str) -> None:
    env = {**os.environ, "CHOKEPOINT_DATA_DIR": str(tmp_path / "data")}
    args = ["--workers", "2", "--database", f"sqlite:///{tmp_path / 'service.db'}"]
    if when == "listening":  # (the port is open; the workers may still be starting)
        server, _ = start_server(args, env)
    else:  # killed as soon as its workers exist, long before they can serve
        server = subprocess.Popen([sys.executable, "-m", "chokepoint", "serve", "--port",
                                   "0", *args], env=env, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    children: list[int] = []
    try:
        # (the audit writer, multiprocessing's resource tracker and the two workers)
        deadline = time.time() + 60
        while time.time() < deadline and len(children) < 4:
            time.sleep(0.05)
            children = _children(server.pid)
        assert len(children) >= 4
        os.kill(server.pid, signal.SIGKILL)
        server.wait(10)
        # (each ends within about 5.5 s of its look at the parent: orphans.py; the rest is
        # room for a loaded machine, where 15 s once did not do)
        deadline = time.time() + 30
        while time.time() < deadline and not all(_gone(c) for c in children):
            time.sleep(0.2)
        assert [c for c in children if not _gone(c)] == []
    finally:
        for c in children:
            if not _gone(c):
                os.kill(c, signal.SIGKILL)
        if server.poll() is None:
            server.kill()
