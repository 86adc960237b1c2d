"""Schemathesis against the service's own OpenAPI spec: generated requests never give a 5xx.

Each operation is called with a key of the role that may use it (so the generated bodies and
parameters reach the handlers, not only the key check) and once more without a key, which
must be refused.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings

from chokepoint.service.app import create_app
from chokepoint.service.keys import create_key

_DIR = Path(tempfile.mkdtemp(prefix="chokepoint-schemathesis-"))
atexit.register(shutil.rmtree, _DIR, ignore_errors=True)
APP = create_app(f"sqlite:///{_DIR / 'audit.db'}")
KEYS = {role: create_key(APP.state.engine, role)
        for role in ("viewer", "analyst", "auditor", "admin")}
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


def _role(path: str) -> str:
    if path.startswith("/v1/audit"):
        return "auditor"
    if path.startswith(("/v1/rules", "/v1/diff")):
        return "viewer"
    return "analyst"


@schema.parametrize()
@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
def test_generated_requests_never_give_a_server_error(case: schemathesis.Case) -> None:
    with_key = case.call(headers={"X-API-Key": KEYS[_role(case.path)]})
    assert with_key.status_code < 500, (case.method, case.path, with_key.text[:500])
    without = case.call()
    assert without.status_code < 500, (case.method, case.path, without.text[:500])
    if case.path not in ("/healthz", "/"):  # no key: refused (or no such route/method)
        assert without.status_code in (401, 404, 405), (case.method, case.path,
                                                         without.status_code)
