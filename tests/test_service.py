"""The HTTP API: auth and roles per endpoint, validation, audit chain and tamper detection."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

from chokepoint.service import audit
from chokepoint.service.app import MAX_BODY, create_app
from chokepoint.service.keys import create_key

EXAMPLE = {"id": "t1", "date": "2024-09-16", "from_country": "US", "to_country": "CN",
           "exporter": {"name": "Example Inc", "country": "US", "headquartered_in": "US"},
           "item": {"kind": "chip", "made_in": "US",
                    "chip": {"tops": 375, "bit_length": 16, "die_area_mm2": 720,
                             "datacenter": True}},
           "parties": [{"role": "end_user", "name": "Example Cloud", "country": "CN",
                        "headquartered_in": "CN", "designations": []}],
           "end_uses": []}


PG = os.environ.get("CHOKEPOINT_TEST_PG_URL", "")


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    if not PG:
        pytest.skip("no PostgreSQL (make test starts one: scripts/test-services.sh)")
    name = f"chokepoint_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG, isolation_level="AUTOCOMMIT")
    with admin.connect() as con:
        con.execute(text(f'CREATE DATABASE "{name}"'))
    url = PG.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as con:
        con.execute(text(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         f"WHERE datname = '{name}'"))
        con.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture()
def service(database: str) -> Iterator[tuple[TestClient, dict[str, str], str]]:
    url = database
    app = create_app(url)
    engine = app.state.engine
    keys = {role: create_key(engine, role) for role in ("viewer", "analyst", "auditor", "admin")}
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, keys, url


def h(key: str) -> dict[str, str]:
    return {"X-API-Key": key}


def test_healthz_and_page_need_no_key(service) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = service
    assert client.get("/healthz").json()["status"] == "ok"
    page = client.get("/")
    assert page.status_code == 200 and "<h1>chokepoint</h1>" in page.text
    # no external CDN or any other outside address: the machine may have no internet
    assert "http://" not in page.text and "https://" not in page.text
    assert "<script src" not in page.text and "<link" not in page.text


ENDPOINTS = [("post", "/v1/determinations", "analyst", "viewer"),
             ("post", "/v1/screen", "analyst", "auditor"),
             ("get", "/v1/rules", "viewer", None),
             ("get", "/v1/rules/734.9(k)", "viewer", None),
             ("get", "/v1/diff?from=2024-12-01&to=2024-12-02", "analyst", "viewer"),
             ("get", "/v1/audit", "auditor", "analyst"),
             ("get", "/v1/audit/1", "auditor", "viewer"),
             ("post", "/v1/sandbox/runs", "analyst", "auditor"),
             ("get", "/v1/sandbox/runs", "analyst", "viewer"),
             ("get", "/v1/sandbox/runs/1", "analyst", "viewer"),
             ("get", "/v1/sandbox/runs/1/report", "analyst", "auditor")]
SMALL_RUN = {"scenarios": ["multilateral", "unilateral-fdp"], "months": 6, "flows": 300}


def _wait(client: TestClient, key: str, run_id: int) -> dict:  # type: ignore[type-arg]
    import time

    deadline = time.time() + 120
    while time.time() < deadline:
        r = client.get(f"/v1/sandbox/runs/{run_id}", headers=h(key)).json()
        if r["status"] in ("done", "failed"):
            return r  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"sandbox run {run_id} did not finish")


@pytest.mark.parametrize(("method", "path", "role", "wrong"), ENDPOINTS)
def test_every_endpoint_refuses_missing_bad_and_wrong_role_keys(  # type: ignore[no-untyped-def]
        service, method, path, role, wrong) -> None:
    client, keys, _ = service
    body = {"json": EXAMPLE} if path.endswith("determinations") else (
        {"json": {"name": "SMIC"}} if path.endswith("screen") else (
            {"json": SMALL_RUN} if method == "post" and path.endswith("runs") else {}))
    call = getattr(client, method)
    assert call(path, **body).status_code == 401
    assert call(path, headers=h("ck_000000000000_nope"), **body).status_code == 401
    if wrong:
        assert call(path, headers=h(keys[wrong]), **body).status_code == 403
    if path.endswith("/v1/audit/1"):
        client.post("/v1/determinations", json=EXAMPLE, headers=h(keys["analyst"]))
    if path.startswith("/v1/sandbox/runs/1"):
        run = client.post("/v1/sandbox/runs", json=SMALL_RUN, headers=h(keys["analyst"]))
        _wait(client, keys["analyst"], run.json()["id"])
    expected = 202 if method == "post" and path.endswith("/runs") else 200
    assert call(path, headers=h(keys[role]), **body).status_code == expected


def test_determination_is_audited_and_reproducible(service) -> None:  # type: ignore[no-untyped-def]
    client, keys, _ = service
    d = client.post("/v1/determinations", json=EXAMPLE, headers=h(keys["analyst"])).json()
    assert d["outcome"] == "license_required" and d["audit_id"] == 1
    rec = client.get("/v1/audit/1", headers=h(keys["auditor"])).json()
    assert rec["request"]["id"] == "t1" and rec["response"]["outcome"] == "license_required"
    assert rec["rules_version"] == d["rules_version"] and rec["prev_hash"] == ""
    many = client.post("/v1/determinations?date=2022-10-20", json=[EXAMPLE, EXAMPLE],
                       headers=h(keys["analyst"])).json()
    assert [x["as_of"] for x in many] == ["2022-10-20", "2022-10-20"]
    assert len(client.get("/v1/audit", headers=h(keys["auditor"])).json()["records"]) == 3


def test_validation_errors_name_the_field_and_size_limit(service) -> None:  # type: ignore[no-untyped-def]
    client, keys, _ = service
    bad = client.post("/v1/determinations", json={**EXAMPLE, "to_country": "China"},
                      headers=h(keys["analyst"]))
    assert bad.status_code == 422 and "to_country" in bad.text
    # Python's JSON reader takes NaN and Infinity: refused, naming the field
    chip = {**EXAMPLE["item"], "chip": {**EXAMPLE["item"].get("chip", {}), "tops": "X"}}
    body = json.dumps({**EXAMPLE, "item": chip}).replace('"X"', "Infinity").encode()
    inf = client.post("/v1/determinations", content=body,
                      headers={**h(keys["analyst"]), "Content-Type": "application/json"})
    assert inf.status_code == 422 and "item.chip.tops: not a finite number" in inf.text
    typo = client.post("/v1/determinations", json={**EXAMPLE, "assertions": ["back-end-only"]},
                       headers=h(keys["analyst"]))
    assert typo.status_code == 422 and "did you mean 'back_end_only'" in typo.text
    twice = json.dumps(EXAMPLE)[:-1] + ', "to_country": "NL"}'
    dup = client.post("/v1/determinations", content=twice.encode(),
                      headers={**h(keys["analyst"]), "Content-Type": "application/json"})
    assert dup.status_code == 422 and "duplicate key 'to_country'" in dup.text
    big = client.post("/v1/determinations", content=b"x" * (MAX_BODY + 1),
                      headers={**h(keys["analyst"]), "Content-Type": "application/json"})
    assert big.status_code == 413
    assert client.get("/v1/rules?on=2024-02-30", headers=h(keys["viewer"])).status_code == 422
    assert client.get("/v1/rules/999.9", headers=h(keys["viewer"])).status_code == 404
    # ids beyond 64 bits are refused as input, not passed to the database (schemathesis found it)
    for url in ("/v1/audit/9223372036854775808", "/v1/audit?after=9223372036854775808",
                "/v1/audit?limit=0"):
        refused = client.get(url, headers=h(keys["auditor"]))
        assert refused.status_code == 422, (url, refused.text)


def test_rules_by_date_and_screening(service) -> None:  # type: ignore[no-untyped-def]
    client, keys, _ = service
    before = client.get("/v1/rules?on=2024-12-01", headers=h(keys["viewer"])).json()
    after = client.get("/v1/rules?on=2024-12-02", headers=h(keys["viewer"])).json()
    assert "734.9(k)" not in {r["id"] for r in before["rules"]}
    assert "734.9(k)" in {r["id"] for r in after["rules"]}
    hits = client.post("/v1/screen", json={"name": "中芯国际集成电路制造有限公司"},
                       headers=h(keys["analyst"])).json()["hits"]
    assert hits[0]["entry_id"] == "smic" and hits[0]["matched_name"].startswith("中芯")


def test_screening_follows_a_list_imported_while_the_server_runs(  # type: ignore[no-untyped-def]
        service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from chokepoint.screening import service as screening

    client, keys, _ = service
    monkeypatch.setenv("CHOKEPOINT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setattr(screening, "LISTS_CHECKED_EVERY", 0.0)

    def best() -> float:
        hits = client.post("/v1/screen", json={"name": "Example Trading Corp",
                                               "date": "2025-06-01"},
                           headers=h(keys["analyst"])).json()["hits"]
        return max((hit["score"] for hit in hits), default=0.0)

    assert best() < 0.9
    screening.import_list(Path(__file__).parent / "fixtures" / "lists" / "watch.csv")
    assert best() == 1.0


def test_audit_verify_detects_a_tampered_row(service) -> None:  # type: ignore[no-untyped-def]
    client, keys, url = service
    for _ in range(3):
        client.post("/v1/determinations", json=EXAMPLE, headers=h(keys["analyst"]))
    cli = [sys.executable, "-m", "chokepoint", "audit", "verify", "--database", url]
    ok = subprocess.run(cli, capture_output=True, text=True, check=False)
    assert ok.returncode == 0 and "3 records checked: chain intact" in ok.stdout
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as con:  # someone edits a row directly in the database
        con.execute(text("UPDATE audit_records SET response = replace(response, "
                         "'license_required', 'no_license_required') WHERE id = 2"))
    broken = subprocess.run(cli, capture_output=True, text=True, check=False)
    assert broken.returncode == 1 and "record 2: its content was altered" in broken.stderr
    with engine.begin() as con:
        con.execute(text("DELETE FROM audit_records WHERE id = 2"))
    intact, problems, _ = audit.verify(engine)
    assert not intact and any("missing" in p for p in problems)


def test_removing_the_last_record_is_detected(service) -> None:  # type: ignore[no-untyped-def]
    client, keys, _ = service
    for _ in range(2):
        client.post("/v1/determinations", json=EXAMPLE, headers=h(keys["analyst"]))
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with engine.begin() as con:
        con.execute(text("DELETE FROM audit_records WHERE id = 2"))
    intact, problems, _ = audit.verify(engine)
    assert not intact and "chain head" in problems[0]


def test_concurrent_appends_keep_one_chain(service) -> None:  # type: ignore[no-untyped-def]
    client, _, _ = service
    engine = client.app.state.engine  # type: ignore[attr-defined]
    with ThreadPoolExecutor(max_workers=8) as pool:
        ids = list(pool.map(lambda i: audit.append(engine, "test", "t", {"i": i}, {}, "r"),
                            range(40)))
    assert sorted(ids) == list(range(1, 41))
    assert audit.verify(engine)[0]


def test_sandbox_run_is_a_background_job_with_summary_and_report(  # type: ignore[no-untyped-def]
        service) -> None:
    client, keys, _ = service
    r = client.post("/v1/sandbox/runs", json=SMALL_RUN, headers=h(keys["analyst"]))
    assert r.status_code == 202 and r.json()["status"] == "queued"
    done = _wait(client, keys["analyst"], r.json()["id"])
    assert done["status"] == "done" and done["error"] is None
    assert done["progress"] == {"done": 2, "total": 2}  # two scenarios, no sweep
    assert list(done["summary"]) == ["multilateral", "unilateral-fdp"]
    assert len(done["summary"]["multilateral"]["leverage"]) == 6
    report = client.get(done["report"], headers=h(keys["analyst"]))
    assert report.status_code == 200 and "At a glance" in report.text
    assert "data:image/png;base64," in report.text  # self-contained: plots inline
    rec = client.get(f"/v1/audit/{r.json()['audit_id']}", headers=h(keys["auditor"])).json()
    assert rec["kind"] == "sandbox_run" and rec["response"] == {"run_id": r.json()["id"]}
    listed = client.get("/v1/sandbox/runs", headers=h(keys["analyst"])).json()["runs"]
    assert listed[0]["id"] == r.json()["id"] and "summary" not in listed[0]


def test_sandbox_run_errors_name_the_scenario_or_parameter(  # type: ignore[no-untyped-def]
        service) -> None:
    client, keys, _ = service
    k = h(keys["analyst"])
    bad = client.post("/v1/sandbox/runs", json={"scenarios": ["/etc/passwd"]}, headers=k)
    assert bad.status_code == 422 and "unknown scenario '/etc/passwd'" in bad.text
    bad = client.post("/v1/sandbox/runs", json={**SMALL_RUN, "parameters": {"kappa": 1}},
                      headers=k)
    assert bad.status_code == 422 and "unknown model parameter 'kappa'" in bad.text
    bad = client.post("/v1/sandbox/runs", json={**SMALL_RUN, "flows": 10**9}, headers=k)
    assert bad.status_code == 422 and "flows" in bad.text
    inline = {"name": "x", "title": "x", "changes": [{"rule": "nope", "from": "2023-01-01",
                                                      "in_force": False}]}
    bad = client.post("/v1/sandbox/runs", json={"scenarios": [inline]}, headers=k)
    assert bad.status_code == 422 and "unknown rule 'nope'" in bad.text
    assert client.get("/v1/sandbox/runs/99", headers=k).status_code == 404
    assert client.get("/v1/sandbox/runs", headers=k).json()["runs"] == []  # nothing queued


def test_a_run_interrupted_by_a_restart_is_marked_failed(database: str) -> None:
    from sqlalchemy.orm import Session

    from chokepoint.service.db import SandboxRun, make_engine, migrate, now

    migrate(database)
    engine = make_engine(database)
    import socket

    here = socket.gethostname()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()
    with Session(engine) as s, s.begin():
        s.add(SandboxRun(created_at=now(), user="x", status="running", request="{}",
                         owner=f"{here}:{dead}"))  # its process has exited
        s.add(SandboxRun(created_at=now(), user="x", status="running", request="{}",
                         owner=f"{here}:{os.getpid()}"))  # another live worker's run
    engine.dispose()
    app = create_app(database)  # the restart
    with TestClient(app) as client:
        key = create_key(app.state.engine, "analyst")
        r = client.get("/v1/sandbox/runs/1", headers=h(key)).json()
        live = client.get("/v1/sandbox/runs/2", headers=h(key)).json()
    assert r["status"] == "failed" and "stopped before it finished" in r["error"]
    assert live["status"] == "running"


def test_key_cache_sees_a_revoked_key_after_its_ttl(tmp_path: Path) -> None:
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from chokepoint.service.db import ApiKey, make_engine, migrate
    from chokepoint.service.keys import KeyCache

    url = f"sqlite:///{tmp_path / 'k.db'}"
    migrate(url)
    engine = make_engine(url)
    key = create_key(engine, "analyst")
    cached, fresh = KeyCache(engine, ttl=3600), KeyCache(engine, ttl=0)
    assert cached.check(key) == fresh.check(key) == (key.split("_")[1], "analyst")
    assert cached.check(key[:-1] + "x") is None  # a wrong secret, same prefix
    with Session(engine) as s, s.begin():
        s.execute(update(ApiKey).values(revoked=1))
    assert fresh.check(key) is None  # ttl 0: the database is read again
    assert cached.check(key) is not None  # within its ttl the cached record still stands


def test_the_chain_digest_keeps_its_format() -> None:
    """The digest is the SHA-256 of json.dumps(record, sort_keys=True, ensure_ascii=False)
    after the previous hash: records written by earlier versions must still verify."""
    import hashlib
    import json

    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(st.dictionaries(st.sampled_from(["created_at", "kind", "user", "request",
                                            "response", "rules_version", "engine_version"]),
                           st.text(), min_size=7, max_size=7))
    def check(rec: dict[str, str]) -> None:
        body = json.dumps(rec, sort_keys=True, ensure_ascii=False)
        try:
            want = hashlib.sha256(("p\n" + body).encode()).hexdigest()
        except UnicodeEncodeError:
            return  # a lone surrogate cannot be stored as UTF-8 in either version
        assert audit._digest("p", rec) == want

    check()


def test_canonical_json_takes_what_orjson_refuses() -> None:
    assert audit.canonical({"b": 1, "a": [1.5, "x"]}) == '{"a":[1.5,"x"],"b":1}'
    assert audit.canonical({"n": 10**30}) == '{"n":' + str(10**30) + "}"


def test_each_key_is_rate_limited_on_its_own(tmp_path: Path) -> None:
    """One request per five seconds per key, bursts of one: the second request at once is
    refused with 429; another key is not affected; the bucket refills with time. (Five
    seconds leave room for a slow first request on a loaded machine.)"""
    import time

    app = create_app(f"sqlite:///{tmp_path / 'rate.db'}", rate_limit=0.2)
    engine = app.state.engine
    first, second = create_key(engine, "viewer"), create_key(engine, "viewer")
    with TestClient(app, raise_server_exceptions=False) as client:
        codes = [client.get("/v1/rules", headers=h(first)).status_code for _ in range(2)]
        assert codes == [200, 429]
        assert client.get("/v1/rules", headers=h(second)).status_code == 200
        time.sleep(5.1)  # a token comes back every 5 s
        assert client.get("/v1/rules", headers=h(first)).status_code == 200


def test_rate_limit_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path
                                         ) -> None:
    monkeypatch.setenv("CHOKEPOINT_RATE_LIMIT", "fast")
    with pytest.raises(ValueError, match="CHOKEPOINT_RATE_LIMIT: not a number"):
        create_app(f"sqlite:///{tmp_path / 'rate.db'}")
    monkeypatch.setenv("CHOKEPOINT_RATE_LIMIT", "0.2")
    app = create_app(f"sqlite:///{tmp_path / 'rate2.db'}")
    key = create_key(app.state.engine, "viewer")
    with TestClient(app, raise_server_exceptions=False) as client:
        codes = [client.get("/v1/rules", headers=h(key)).status_code for _ in range(2)]
    assert codes == [200, 429]


def test_no_answer_without_its_audit_record(tmp_path: Path) -> None:
    """The audit writer unreachable: 503 saying nothing was recorded, no determination."""
    app = create_app(f"sqlite:///{tmp_path / 'a.db'}",
                     audit_writer=str(tmp_path / "no-writer.sock"))
    key = create_key(app.state.engine, "analyst")
    with TestClient(app, raise_server_exceptions=False) as client:
        r = client.post("/v1/determinations", json=EXAMPLE, headers=h(key))
        assert r.status_code == 503 and "nothing was recorded" in r.json()["detail"]
        assert "outcome" not in r.text
        s = client.post("/v1/screen", json={"name": "Huawei"}, headers=h(key))
        assert s.status_code == 503
    assert audit.verify(app.state.engine)[2] == 0


def test_serve_refuses_a_bad_rate_limit_before_starting(tmp_path: Path) -> None:
    env = {**os.environ, "CHOKEPOINT_RATE_LIMIT": "fast", "CHOKEPOINT_DATA_DIR": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "chokepoint", "serve", "--port", "1",
                          "--database", f"sqlite:///{tmp_path / 'x.db'}"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "CHOKEPOINT_RATE_LIMIT: not a number: 'fast'" in out.stderr
    assert "Traceback" not in out.stderr
