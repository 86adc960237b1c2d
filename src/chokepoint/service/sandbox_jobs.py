"""Sandbox runs as background jobs: validated when requested (a bad scenario or parameter is
a 422 naming it, before anything is queued), run one at a time in a separate process (so a
long sweep never takes the API's CPU), their summary and self-contained report stored in
the database. A run that a restart interrupted is marked failed at start-up, never left
'running' for ever."""

from __future__ import annotations

import json
import multiprocessing
import os
import socket
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from chokepoint.rules.ruleset import RuleSet
from chokepoint.sandbox.report import write
from chokepoint.sandbox.run import Plan, execute, plan
from chokepoint.sandbox.scenario import SHIPPED, Scenario
from chokepoint.service.db import SandboxRun, make_engine, now
from chokepoint.service.orphans import exit_with_parent


class RunRequest(BaseModel):
    """A sandbox run: shipped scenario names or inline scenario objects, and the run's size
    (bounded, so one request cannot occupy the server for hours)."""

    model_config = ConfigDict(extra="forbid")

    scenarios: list[str | dict[str, Any]] = Field(min_length=1, max_length=8)
    months: int = Field(default=60, ge=1, le=120)
    flows: int = Field(default=20_000, ge=100, le=200_000)
    sweep: int = Field(default=0, ge=0, le=64)
    seed: int = Field(default=7, ge=0, le=2**31)
    parameters: dict[str, float] = Field(default_factory=dict)


def prepare(req: RunRequest, rules: RuleSet) -> Plan:
    """The validated plan (ScenarioError / ParameterError name what is wrong)."""
    from chokepoint.sandbox.scenario import ScenarioError

    named: list[str | Scenario] = []
    for i, s in enumerate(req.scenarios):
        if isinstance(s, str):
            if s not in SHIPPED:  # never a path on the server's disk
                raise ScenarioError(f"scenarios[{i}]: unknown scenario '{s}' (shipped: "
                                    f"{', '.join(SHIPPED)})")
            named.append(s)
        else:
            named.append(Scenario.parse(s, f"scenarios[{i}]"))
    return plan(named, rules, months=req.months, flows=req.flows, seed=req.seed,
                overrides=dict(req.parameters))


def _set(engine: Engine, run_id: int, **values: Any) -> None:
    with Session(engine) as s, s.begin():
        s.execute(update(SandboxRun).where(SandboxRun.id == run_id).values(**values))


def run_job(url: str, run_id: int, request: str) -> None:
    """One run, in the job process: the plan is rebuilt from the stored request."""
    from chokepoint.rules.loader import default_rules

    engine = make_engine(url)
    try:
        _set(engine, run_id, status="running", owner=_me())
        req = RunRequest.model_validate_json(request)
        p = prepare(req, default_rules())
        result = execute(p, sweep=req.sweep, progress=lambda done, total: _set(
            engine, run_id, done=done, total=total))
        with tempfile.TemporaryDirectory() as tmp:
            data = write(result, p, Path(tmp), inline=True)
            html = (Path(tmp) / "report.html").read_text(encoding="utf-8")
        _set(engine, run_id, status="done", finished_at=now(), summary=json.dumps(data),
             report=html)
    except Exception as exc:  # noqa: BLE001 - the job records any failure
        _set(engine, run_id, status="failed", finished_at=now(),
             error=f"{type(exc).__name__}: {exc}")
    finally:
        engine.dispose()


def _me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _alive(owner: str | None) -> bool:
    """Is the owning process still running? Unknown (another host, no owner) counts as not,
    except for another host, which this process cannot see."""
    if not owner or ":" not in owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


class Jobs:
    def __init__(self, engine: Engine, url: str) -> None:
        self.engine, self.url = engine, url
        self.pool = ProcessPoolExecutor(max_workers=1,
                                        mp_context=multiprocessing.get_context("spawn"),
                                        initializer=exit_with_parent,
                                        initargs=(None, os.getpid()))
        # runs whose owning process is gone were interrupted (a restart, a crash); runs of
        # another live worker of this service are left alone
        with Session(engine) as s, s.begin():
            stale = [r.id for r in s.scalars(select(SandboxRun).where(
                SandboxRun.status.in_(("queued", "running")))) if not _alive(r.owner)]
            if stale:
                s.execute(update(SandboxRun).where(SandboxRun.id.in_(stale)).values(
                    status="failed", finished_at=now(),
                    error="interrupted: the process running it stopped before it finished"))

    def submit(self, req: RunRequest, user: str) -> int:
        with Session(self.engine) as s, s.begin():
            row = SandboxRun(created_at=now(), user=user, status="queued",
                             request=req.model_dump_json(), owner=_me())
            s.add(row)
            s.flush()
            run_id = row.id
        self.pool.submit(run_job, self.url, run_id, req.model_dump_json())
        return run_id

    def get(self, run_id: int) -> SandboxRun | None:
        with Session(self.engine) as s:
            return s.get(SandboxRun, run_id)

    def recent(self, limit: int = 20) -> list[SandboxRun]:
        with Session(self.engine) as s:
            return list(s.scalars(select(SandboxRun).order_by(SandboxRun.id.desc())
                                  .limit(limit)))

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


def describe(row: SandboxRun, with_summary: bool = True) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": row.id, "status": row.status, "user": row.user,
        "created_at": row.created_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "request": json.loads(row.request), "error": row.error,
        "progress": None if row.total is None else {"done": row.done, "total": row.total},
        "report": f"/v1/sandbox/runs/{row.id}/report" if row.status == "done" else None}
    if with_summary and row.summary is not None:
        out["summary"] = json.loads(row.summary)
    return out
