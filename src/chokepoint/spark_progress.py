"""How far a run's Spark jobs have got, for a progress bar: the tasks done of the stages a
job group ran, as Spark's status tracker reports them (Spark's own console bar shows one
stage at a time, and nothing of the rows)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

Report = Callable[[str, int, int], None]
"""(what is being done, how many of it are done, how many in all)."""


@contextmanager
def watched(spark: Any, label: str, report: Report, every: float = 0.5) -> Iterator[None]:
    """Run the body's Spark jobs in a job group named for ``label`` and report
    (``label``, tasks done, tasks in all) of their stages every ``every`` seconds from a
    thread, and all done when the body ends without an error (a stage Spark skips, its
    output being there already, never counts its tasks done)."""
    sc = spark.sparkContext
    group = f"chokepoint: {label}"
    sc.setJobGroup(group, label)
    tracker = sc.statusTracker()

    def tasks() -> tuple[int, int]:
        done = total = 0
        for job in tracker.getJobIdsForGroup(group):
            info = tracker.getJobInfo(job)
            for stage in info.stageIds if info is not None else ():
                found = tracker.getStageInfo(stage)
                if found is not None:
                    done += found.numCompletedTasks
                    total += found.numTasks
        return done, total

    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(every):
            report(label, *tasks())

    thread = threading.Thread(target=watch, name="spark-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
    total = tasks()[1]
    report(label, total, total)
