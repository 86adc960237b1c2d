"""The shared audit writer of a multi-process server: batches from several processes'
writers chained into one intact log, ids as committed, and failures that acknowledge
nothing."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from chokepoint.service import audit
from chokepoint.service.audit_writer import (
    RemoteLog,
    WriterUnavailable,
    running_writer,
    start_in_thread,
)
from chokepoint.service.db import make_engine, migrate

ROOT = Path(__file__).resolve().parents[1]


def _records(tag: str, n: int) -> list[dict[str, object]]:
    return [audit.make_record("determination", f"{tag}:analyst", {"n": i, "tag": tag},
                              {"outcome": "undetermined", "i": i, "text": "中芯" * i}, "h")
            for i in range(n)]


def test_batches_from_several_writers_form_one_intact_chain(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    migrate(url)
    _, server = start_in_thread(url, str(tmp_path / "w.sock"))
    try:
        # three "processes", each with its own group writer sending to the shared one
        writers = [audit.GroupWriter(append=RemoteLog(str(tmp_path / "w.sock")).append)
                   for _ in range(3)]
        ids: list[int] = []
        lock = threading.Lock()

        def client(w: audit.GroupWriter, tag: str) -> None:
            futures = [w.submit(r) for r in _records(tag, 40)]
            got = [f.result(timeout=30) for f in futures]
            with lock:
                ids.extend(got)

        threads = [threading.Thread(target=client, args=(w, f"k{i}"))
                   for i, w in enumerate(writers) for _ in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for w in writers:
            w.close()
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(ids) == list(range(1, 241))  # every record acknowledged once, with its id
    intact, problems, count = audit.verify(make_engine(url))
    assert intact and not problems and count == 240
    stored = audit.record(make_engine(url), ids[0])
    assert stored is not None and stored["request"]["tag"].startswith("k")


def test_no_writer_no_acknowledgement(tmp_path: Path) -> None:
    writer = audit.GroupWriter(append=RemoteLog(str(tmp_path / "none.sock")).append)
    future = writer.submit(_records("k", 1)[0])
    with pytest.raises(WriterUnavailable, match="audit writer"):
        future.result(timeout=10)
    writer.close()


def test_a_failed_commit_is_reported_to_the_sender(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never-migrated.db'}"  # no tables: every append fails
    _, server = start_in_thread(url, str(tmp_path / "w.sock"))
    try:
        log = RemoteLog(str(tmp_path / "w.sock"))
        with pytest.raises(WriterUnavailable, match="audit writer: OperationalError"):
            log.append(_records("k", 2))
        log.close()
    finally:
        server.shutdown()
        server.server_close()


def test_writer_process_runs_is_restarted_and_stops(tmp_path: Path) -> None:
    import os
    import signal
    import time

    url = f"sqlite:///{tmp_path / 'p.db'}"
    migrate(url)
    with running_writer(url) as writer:
        log = RemoteLog(writer.path)
        assert log.append(_records("k", 3)) == [1, 2, 3]
        os.kill(writer.process.pid, signal.SIGKILL)  # the writer dies
        with pytest.raises(WriterUnavailable):
            log.append(_records("k", 1))  # nothing acknowledged while it is down
        deadline = time.monotonic() + 60
        while writer.restarts == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert writer.restarts == 1
        assert log.append(_records("k", 2)) == [4, 5]  # reconnects to the new one
    assert not Path(writer.path).exists()
    intact, problems, count = audit.verify(make_engine(url))
    assert intact and not problems and count == 5


def test_two_server_workers_under_load_keep_every_acknowledged_record() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_service.py"),
                          "--clients", "8", "--seconds", "3", "--server-workers", "2"],
                         capture_output=True, text=True, timeout=240, check=True).stdout
    assert "5xx: 0" in out and "chain intact" in out
    assert "every acknowledged request is recorded" in out
    assert int(out.split("determinations acknowledged")[0].split(":")[-1]) > 0
