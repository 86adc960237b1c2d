"""Child processes of the service that end when the process that started them has gone.

The sandbox jobs' worker and the audit writer are started with ``spawn``; if the server is
killed (SIGKILL, or a SIGTERM whose shutdown returns before its pool has told the worker to
stop), they would be left running with nobody to talk to, each holding a few hundred MB.
A thread in each such child watches its parent: once the child has been handed to another
parent, it stops - as the caller says, or at once.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

INTERVAL = 0.5  # seconds between looks at the parent


def exit_with_parent(stop: Callable[[], None] | None = None) -> threading.Thread:
    """In a child process: end it once its parent is gone - ``stop()`` (which should make
    the process end by itself), else at once. Returns the watching thread (a daemon)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(INTERVAL)
        if stop is not None:
            stop()
            time.sleep(10 * INTERVAL)  # (it had its chance to end by itself)
        os._exit(0)

    thread = threading.Thread(target=watch, name="exit-with-parent", daemon=True)
    thread.start()
    return thread
