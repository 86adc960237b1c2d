"""Child processes of the service that end when the process that started them has gone.

The sandbox jobs' worker and the audit writer are started with ``spawn``; if the server is
killed (SIGKILL, or a SIGTERM whose shutdown returns before its pool has told the worker to
stop), they would be left running with nobody to talk to, each holding a few hundred MB.
A thread in each such child watches its parent: once the child has been handed to another
parent, it stops - as the caller says, or at once.

A child still starting up when its parent is killed has already been handed on when it
first looks, so it cannot learn its parent from ``os.getppid()``: the parent passes its own
pid (``PARENT_PID`` in the environment for children it does not start itself).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable

INTERVAL = 0.5  # seconds between looks at the parent
PARENT_PID = "CHOKEPOINT_PARENT_PID"
"""The environment variable a parent sets to its pid before starting children through a
library (uvicorn's workers), for ``parent_from_env``."""


def parent_from_env() -> int | None:
    """The pid a parent left in ``PARENT_PID``, if any."""
    value = os.environ.get(PARENT_PID, "")
    return int(value) if value.isdigit() else None


def exit_with_parent(stop: Callable[[], None] | None = None,
                     parent: int | None = None) -> threading.Thread:
    """In a child process: end it once ``parent`` (the pid of the process that started it;
    default: its parent now) is gone - ``stop()`` (which should make the process end by
    itself), else at once; at the first look if it had gone before this call. Returns the
    watching thread (a daemon)."""
    if parent is None:
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
