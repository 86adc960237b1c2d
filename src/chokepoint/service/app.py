"""The HTTP API and web page (FastAPI). Every endpoint but /healthz and the page needs an API
key (header ``X-API-Key``); every determination and screening is kept in the audit log."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from concurrent.futures import Future
from contextlib import asynccontextmanager
from datetime import date
from importlib import resources
from typing import Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from chokepoint import __version__
from chokepoint.contract import InputError, loads_json, validate_transaction
from chokepoint.diff import rule_changes
from chokepoint.engine.determine import as_of
from chokepoint.rules.loader import default_rules
from chokepoint.sandbox.params import ParameterError
from chokepoint.sandbox.scenario import ScenarioError
from chokepoint.screening.service import determine_screened, screener_for
from chokepoint.service import audit
from chokepoint.service.db import default_url, make_engine, migrate
from chokepoint.service.keys import GRANTS, KeyCache
from chokepoint.service.sandbox_jobs import Jobs, RunRequest, describe, prepare

MAX_BODY = 1_000_000
MAX_RECORD_ID = 2**63 - 1  # audit record ids are 64-bit integers in SQLite and PostgreSQL
RATE_PER_SECOND = 500.0
"""Requests per second allowed per API key and server process, by default; a key may burst
to twice as many at once. ``chokepoint serve --rate-limit`` (or CHOKEPOINT_RATE_LIMIT)
sets another figure."""


class _BodyLimit:
    """Refuses bodies over MAX_BODY with 413 (declared or streamed), as plain ASGI."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope.get("headers", []):
            if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
                await JSONResponse({"detail": f"request body over {MAX_BODY} bytes"},
                                   413)(scope, receive, send)
                return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > MAX_BODY:
                raise HTTPException(413, detail=f"request body over {MAX_BODY} bytes")
            return message

        await self.app(scope, limited, send)


class _RateLimiter:
    """A token bucket per API key: ``rate`` requests per second, bursts of ``2 * rate`` (at
    least one request)."""

    def __init__(self, rate: float) -> None:
        self.rate, self.burst = rate, max(1.0, 2 * rate)
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def allow(self, key: str) -> bool:
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                return False
            self._buckets[key] = (tokens - 1, now)
            return True


def rate_limit_from(given: float | None) -> float:
    """The per-key rate limit: ``given``, else CHOKEPOINT_RATE_LIMIT, else the default;
    ValueError naming the variable when it is not a positive number."""
    if given is not None:
        return given
    text = os.environ.get("CHOKEPOINT_RATE_LIMIT")
    try:
        rate = float(text) if text else RATE_PER_SECOND
    except ValueError as exc:
        raise ValueError(f"CHOKEPOINT_RATE_LIMIT: not a number: {text!r}") from exc
    if not rate > 0:
        raise ValueError(f"CHOKEPOINT_RATE_LIMIT: must be above 0, not {text!r}")
    return rate


async def _recorded(future: Future[int]) -> int:
    """The audit record id once committed; if the record could not be stored, a 503 that
    says nothing was recorded (the answer is not given without its record)."""
    try:
        return await asyncio.wrap_future(future)
    except Exception as exc:
        raise HTTPException(503, detail="the audit log could not record this request, so "
                            "no answer is given; nothing was recorded - try again") from exc


def _parse_day(value: str | None, name: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError as exc:
        raise HTTPException(422, detail=[{"loc": ["query", name],
                                          "msg": "not a date (YYYY-MM-DD)"}]) from exc


WRITER_SOCKET = "CHOKEPOINT_AUDIT_WRITER"
"""The environment variable naming the Unix socket of a shared audit writer (set by
``chokepoint serve --workers N``; see ``audit_writer``)."""


def app_from_env() -> FastAPI:
    """The app for ``uvicorn --factory`` with several workers (URL and shared audit writer
    from the environment). Each worker stops as on a SIGTERM (requests in flight answered,
    the audit queue flushed) once the supervising process has gone, killed or not."""
    import signal

    from chokepoint.service.orphans import exit_with_parent, parent_from_env

    exit_with_parent(lambda: os.kill(os.getpid(), signal.SIGTERM), parent_from_env())
    return create_app(None, audit_writer=os.environ.get(WRITER_SOCKET))


def create_app(database_url: str | None = None, rate_limit: float | None = None,
               audit_writer: str | None = None) -> FastAPI:
    """The app on a database (default: SQLite in the data directory, or
    CHOKEPOINT_DATABASE_URL), with ``rate_limit`` requests per second per key (default:
    CHOKEPOINT_RATE_LIMIT, or RATE_PER_SECOND). Audit records are appended by this
    process, or sent to the shared writer process listening on the Unix socket
    ``audit_writer`` (``audit_writer`` module)."""
    url = database_url or default_url()
    migrate(url)
    engine: Engine = make_engine(url)
    rules = default_rules()
    limiter = _RateLimiter(rate_limit_from(rate_limit))
    if audit_writer:
        from chokepoint.service.audit_writer import RemoteLog  # POSIX only (Unix socket)

        writer = audit.GroupWriter(append=RemoteLog(audit_writer).append)
    else:
        writer = audit.GroupWriter(engine)
    jobs = Jobs(engine, url)
    keys = KeyCache(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        writer.close()  # commit what is queued before the process ends
        jobs.close()
    app = FastAPI(title="chokepoint", version=__version__, lifespan=lifespan,
                  description="Export controls on advanced chips and chipmaking tools as "
                              "cited, dated rules.")
    app.add_middleware(_BodyLimit)
    app.state.engine = engine

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": "internal error"}, 500)  # never a stack trace

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": [{"loc": list(e["loc"]), "msg": e["msg"]}
                                        for e in exc.errors()]}, 422)

    def need(grant: str) -> Any:
        def check(request: Request) -> str:
            presented = request.headers.get("x-api-key", "")
            found = keys.check(presented) if presented else None
            if found is None:
                raise HTTPException(401, detail="a valid X-API-Key header is required")
            prefix, role = found
            if grant not in GRANTS[role]:
                raise HTTPException(403, detail=f"role '{role}' may not use this endpoint")
            if not limiter.allow(prefix):
                raise HTTPException(429, detail="rate limit exceeded")
            return f"{prefix}:{role}"
        return Depends(check)

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "rules_version": rules.content_hash, "engine": __version__}

    @app.get("/", response_class=HTMLResponse)
    def page() -> str:
        return resources.files("chokepoint.service").joinpath("page.html").read_text()

    @app.post("/v1/determinations")
    async def determinations(request: Request, user: str = need("determine"),
                             on: str | None = Query(None, alias="date")) -> Any:
        try:
            body = loads_json(await request.body() or b"null")
        except json.JSONDecodeError as exc:
            raise HTTPException(422, detail=[{"loc": ["body"], "msg": f"not JSON: {exc.msg}"}]
                                ) from exc
        override = _parse_day(on, "date")
        items = body if isinstance(body, list) else [body]
        txns = []
        for i, t in enumerate(items):
            try:
                txns.append(validate_transaction(t, i, assertions=rules.assertions))
            except InputError as exc:
                raise HTTPException(422, detail=[{"loc": ["body", i], "msg": str(exc)}]
                                    ) from exc
        def work() -> list[tuple[str, Any]]:
            pending = []
            for t in txns:
                d = determine_screened(t, rules, as_of(t, override, date.today()))
                text = audit.canonical(d)  # serialised once: for the log and the reply
                rec = audit.make_record("determination", user, t, text, d["rules_version"])
                pending.append((text, writer.submit(rec)))
            return pending

        parts = []
        for text, fut in await run_in_threadpool(work):
            audit_id = await _recorded(fut)  # acknowledged once committed
            parts.append(text[:-1] + f', "audit_id": {audit_id}}}')
        payload = ("[" + ", ".join(parts) + "]") if isinstance(body, list) else parts[0]
        return Response(payload, media_type="application/json")

    @app.post("/v1/screen")
    async def screen(request: Request, user: str = need("screen")) -> Any:
        try:
            body = loads_json(await request.body() or b"{}")
        except json.JSONDecodeError as exc:
            raise HTTPException(422, detail=[{"loc": ["body"], "msg": "not JSON"}]) from exc
        name = body.get("name") if isinstance(body, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise HTTPException(422, detail=[{"loc": ["body", "name"], "msg": "required"}])
        on = _parse_day(body.get("date"), "date") or date.today()
        threshold = float(body.get("threshold", 0.75))
        def work() -> dict[str, Any]:
            # (one index per set of entries in force, rebuilt when a list is imported)
            hits = [h.as_dict() for h in screener_for(rules, on).screen(
                name, body.get("country"), threshold)]
            fut = writer.submit(audit.make_record("screening", user, body, hits,
                                                  rules.content_hash))
            return {"hits": hits, "audit_future": fut}

        result = await run_in_threadpool(work)
        result["audit_id"] = await _recorded(result.pop("audit_future"))
        return result

    @app.get("/v1/rules")
    def rules_in_force(user: str = need("rules"), on: str | None = None) -> Any:
        day = _parse_day(on, "on") or date.today()
        out = []
        for pid, prov in sorted(rules.provisions.items()):
            v = prov.version_on(day)
            if v is not None:
                out.append({"id": pid, "regime": prov.regime, "role": prov.role,
                            "title": prov.title, "citation": v.citation.short(),
                            "evidence": v.citation.evidence,
                            "in_force_from": v.from_.isoformat()})
        return {"on": day.isoformat(), "rules_version": rules.content_hash, "rules": out}

    @app.get("/v1/rules/{rule_id:path}")
    def rule_detail(rule_id: str, user: str = need("rules"), on: str | None = None) -> Any:
        day = _parse_day(on, "on") or date.today()
        prov = rules.provisions.get(rule_id)
        if prov is None:
            raise HTTPException(404, detail=f"no rule '{rule_id}'")
        v = prov.version_on(day)
        return {"id": rule_id, "title": prov.title, "explain": prov.explain,
                "regime": prov.regime, "role": prov.role, "on": day.isoformat(),
                "in_force": v is not None,
                "version": None if v is None else {
                    "from": v.from_.isoformat(), "citation": v.citation.model_dump(mode="json"),
                    "review_policy": v.review_policy, "note": v.note},
                "versions": [{"from": x.from_.isoformat(), "citation": x.citation.short()}
                             for x in prov.versions]}

    @app.get("/v1/diff")
    def diff(user: str = need("diff"), date_from: str = Query(alias="from"),
             date_to: str = Query(alias="to")) -> Any:
        d1, d2 = _parse_day(date_from, "from"), _parse_day(date_to, "to")
        assert d1 is not None and d2 is not None
        if d2 < d1:
            raise HTTPException(422, detail=[{"loc": ["query", "to"], "msg": "before 'from'"}])
        return {"from": d1.isoformat(), "to": d2.isoformat(),
                "changes": rule_changes(rules, d1, d2)}

    @app.get("/v1/audit")
    def audit_list(user: str = need("audit"),
                   after: int = Query(0, ge=0, le=MAX_RECORD_ID),
                   limit: int = Query(100, ge=1, le=1000)) -> Any:
        return {"records": audit.listing(engine, limit, after)}

    @app.get("/v1/audit/{record_id}")
    def audit_record(user: str = need("audit"),
                     record_id: int = Path(ge=1, le=MAX_RECORD_ID)) -> Any:
        found = audit.record(engine, record_id)
        if found is None:
            raise HTTPException(404, detail=f"no audit record {record_id}")
        return found

    @app.post("/v1/sandbox/runs", status_code=202)
    async def sandbox_run(request: Request, user: str = need("sandbox")) -> Any:
        try:
            body = loads_json(await request.body() or b"null")
        except json.JSONDecodeError as exc:
            raise HTTPException(422, detail=[{"loc": ["body"], "msg": f"not JSON: {exc.msg}"}]
                                ) from exc
        try:
            req = RunRequest.model_validate(body)
        except ValidationError as exc:
            raise HTTPException(422, detail=[{"loc": ["body", *e["loc"]], "msg": e["msg"]}
                                             for e in exc.errors()]) from exc
        try:
            await run_in_threadpool(prepare, req, rules)  # validate before queueing
        except (ScenarioError, ParameterError) as exc:
            raise HTTPException(422, detail=[{"loc": ["body", "scenarios"], "msg": str(exc)}]
                                ) from exc
        run_id = jobs.submit(req, user)
        fut = writer.submit(audit.make_record("sandbox_run", user, body, {"run_id": run_id},
                                              rules.content_hash))
        audit_id = await _recorded(fut)
        return {"id": run_id, "status": "queued", "audit_id": audit_id,
                "href": f"/v1/sandbox/runs/{run_id}"}

    @app.get("/v1/sandbox/runs")
    def sandbox_runs(user: str = need("sandbox")) -> Any:
        return {"runs": [describe(r, with_summary=False) for r in jobs.recent()]}

    @app.get("/v1/sandbox/runs/{run_id}")
    def sandbox_run_status(user: str = need("sandbox"),
                           run_id: int = Path(ge=1, le=MAX_RECORD_ID)) -> Any:
        row = jobs.get(run_id)
        if row is None:
            raise HTTPException(404, detail=f"no sandbox run {run_id}")
        return describe(row)

    @app.get("/v1/sandbox/runs/{run_id}/report", response_class=HTMLResponse)
    def sandbox_report(user: str = need("sandbox"),
                       run_id: int = Path(ge=1, le=MAX_RECORD_ID)) -> Any:
        row = jobs.get(run_id)
        if row is None:
            raise HTTPException(404, detail=f"no sandbox run {run_id}")
        if row.report is None:
            raise HTTPException(409, detail=f"sandbox run {run_id} is {row.status}")
        return HTMLResponse(row.report)

    return app
