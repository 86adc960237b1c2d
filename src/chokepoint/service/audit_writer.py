"""One audit writer for several server processes.

The audit log is one hash chain, so its appends are serialised. When every server process
appends by itself, each holds the chain's lock while its own busy interpreter lets the
appending thread run only now and then; the lock, not the processors, then limits the
service. With ``chokepoint serve --workers N`` the appends go instead to one writer
process, which does nothing else: the workers send it their batches of records over a
Unix socket, it commits them (merging the batches of all workers into few transactions)
and answers with the records' ids. A worker acknowledges a request only after that
answer, that is, after the commit - as a single process does.

Messages are length-prefixed JSON: a list of records one way; ``{"ids": [...]}`` or
``{"error": "..."}`` back.
"""

from __future__ import annotations

import multiprocessing
import os
import shutil
import socket
import socketserver
import struct
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from chokepoint.service.audit import GroupWriter
from chokepoint.service.db import make_engine
from chokepoint.service.orphans import exit_with_parent

_LENGTH = struct.Struct("!I")


class WriterUnavailable(RuntimeError):
    """The shared audit writer could not be reached or did not answer."""


def _send(sock: socket.socket, value: Any) -> None:
    data = orjson.dumps(value)
    sock.sendall(_LENGTH.pack(len(data)) + data)


def _receive(sock: socket.socket) -> Any:
    def exactly(n: int) -> bytes:
        chunks, left = [], n
        while left:
            chunk = sock.recv(left)
            if not chunk:
                raise ConnectionError("the audit writer closed the connection")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)

    (size,) = _LENGTH.unpack(exactly(_LENGTH.size))
    return orjson.loads(exactly(size))


class RemoteLog:
    """A worker's side: ``append`` sends a batch to the writer process and returns the ids
    it committed. One connection, used by the worker's one ``GroupWriter`` thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._sock: socket.socket | None = None

    def _connect(self) -> socket.socket:
        if self._sock is None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.connect(self.path)
            except OSError as exc:
                sock.close()
                raise WriterUnavailable(f"audit writer at {self.path}: {exc}") from exc
            self._sock = sock
        return self._sock

    def append(self, records: list[dict[str, Any]]) -> list[int]:
        sock = self._connect()
        try:
            _send(sock, records)
            answer = _receive(sock)
        except (OSError, ConnectionError) as exc:
            # not retried: the writer may have committed the batch before the connection
            # broke, and a second send would store it twice
            self.close()
            raise WriterUnavailable(f"audit writer at {self.path}: {exc}") from exc
        if "error" in answer:
            raise WriterUnavailable(f"audit writer: {answer['error']}")
        ids: list[int] = answer["ids"]
        return ids

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    writer: GroupWriter


class _Handler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        writer = self.server.writer  # type: ignore[attr-defined]
        while True:
            try:
                records = _receive(self.request)
            except (OSError, ConnectionError):
                return
            futures = [writer.submit(r) for r in records]
            try:
                answer: dict[str, Any] = {"ids": [f.result() for f in futures]}
            except Exception as exc:  # the batch failed: nothing of it is acknowledged
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            try:
                _send(self.request, answer)
            except OSError:
                return


def serve_writer(url: str, path: str, ready: Any = None, parent: int | None = None) -> None:
    """Run the writer process: commit the batches sent to the Unix socket ``path``, until
    the process is stopped. ``ready`` (an Event) is set once it accepts connections;
    ``parent``: the pid of the process that started it."""
    Path(path).unlink(missing_ok=True)
    writer = GroupWriter(make_engine(url), max_batch=1024)
    with _Server(path, _Handler) as server:
        server.writer = writer
        os.chmod(path, 0o600)
        if ready is not None:  # (a process of its own: it ends when its supervisor has gone,
            exit_with_parent(server.shutdown, parent)  # after committing what it holds)
            ready.set()
        try:
            server.serve_forever(poll_interval=0.2)
        finally:
            writer.close()


def start_in_thread(url: str, path: str) -> tuple[threading.Thread, _Server]:
    """The writer in a thread of this process (for tests): its thread and server (call
    ``server.shutdown()`` to stop it)."""
    Path(path).unlink(missing_ok=True)
    server = _Server(path, _Handler)
    server.writer = GroupWriter(make_engine(url), max_batch=1024)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    return thread, server


class SupervisedWriter:
    """The writer process, started again if it dies (the workers' next batch reconnects;
    what it had not committed was never acknowledged)."""

    def __init__(self, url: str, path: str) -> None:
        self.url, self.path = url, path
        self.ctx = multiprocessing.get_context("spawn")
        self.restarts = 0
        self._stopping = threading.Event()
        self.process = self._start()
        self._watch = threading.Thread(target=self._watch_loop, name="audit-writer-watch",
                                       daemon=True)
        self._watch.start()

    def _start(self) -> Any:
        ready = self.ctx.Event()
        process = self.ctx.Process(target=serve_writer,
                                   args=(self.url, self.path, ready, os.getpid()),
                                   name="chokepoint-audit-writer", daemon=True)
        process.start()
        if not ready.wait(60):
            process.terminate()
            raise WriterUnavailable("the audit writer process did not start")
        return process

    def _watch_loop(self) -> None:
        while not self._stopping.is_set():
            self.process.join(0.5)
            if self.process.is_alive() or self._stopping.is_set():
                continue
            try:
                self.process = self._start()
                self.restarts += 1
            except WriterUnavailable:
                self._stopping.wait(5)  # try again later; requests fail meanwhile

    def stop(self) -> None:
        self._stopping.set()
        self._watch.join(10)
        self.process.terminate()
        self.process.join(10)


@contextmanager
def running_writer(url: str) -> Iterator[SupervisedWriter]:
    """A writer process for the database at ``url``, running (and restarted if it dies)
    while the block runs; yields it (``.path``: its socket). It is stopped after the
    block, that is after the server's workers, which have by then sent it everything they
    acknowledged."""
    where = tempfile.mkdtemp(prefix="chokepoint-audit-")
    try:
        writer = SupervisedWriter(url, os.path.join(where, "writer.sock"))
        try:
            yield writer
        finally:
            writer.stop()
    finally:
        shutil.rmtree(where, ignore_errors=True)
