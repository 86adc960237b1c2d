"""A short version of bench/bench_service.py: concurrent load with a kill -9 in the middle;
no 5xx, and every acknowledged determination is in an intact audit chain after restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_kill_9_mid_load_loses_no_acknowledged_record() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_service.py"),
                          "--clients", "8", "--seconds", "4", "--kill"],
                         capture_output=True, text=True, timeout=180, check=True).stdout
    assert "5xx: 0" in out
    assert "chain intact" in out
    assert "every acknowledged request is recorded" in out
    acknowledged = int(out.split("determinations acknowledged")[0].split(":")[-1])
    assert acknowledged > 0
