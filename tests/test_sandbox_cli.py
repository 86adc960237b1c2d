"""`chokepoint sandbox`: the files it writes, its errors, and the report in real Chromium."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chokepoint.sandbox.flows import generate, write_flows
from chokepoint.sandbox.params import values
from chokepoint.sandbox.run import HEADLINE
from chokepoint.sandbox.world import default_world

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "chokepoint", "sandbox", *args],
                          capture_output=True, text=True, cwd=ROOT, check=False)


@pytest.fixture(scope="module")
def out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("sandbox")
    r = run("multilateral", "unilateral-fdp", "hybrid-2024", "--out", str(d), "--months", "30",
            "--flows", "3000", "--sweep", "--samples", "3")
    assert r.returncode == 0, r.stderr
    return d


def test_summary_is_keyed_by_scenario_with_every_headline_output(out: Path) -> None:
    data = json.loads((out / "summary.json").read_text())
    assert list(data) == ["multilateral", "unilateral-fdp", "hybrid-2024"]
    for entry in data.values():
        for key in HEADLINE:
            assert isinstance(entry[key], float | int) and entry[key] >= 0
        assert len(entry["leverage"]) == 30
        assert entry["bands"]["samples"] == 3
        assert entry["rules_version"]
    assert data["multilateral"]["stockpile_usd"] > data["unilateral-fdp"]["stockpile_usd"]
    assert [b["id"] for b in data["hybrid-2024"]["backtests"]][0] == "imports-2023"
    meta = json.loads((out / "run.json").read_text())
    assert meta["flows"]["rows"] == 3000 and meta["engine_evaluations"] > 0


def test_monthly_series_for_a_spreadsheet(out: Path) -> None:
    import csv

    with (out / "monthly.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 3 * 30 and rows[0]["scenario"] == "multilateral"
    assert {"leverage", "blocked_usd", "stockpile_usd"} <= set(rows[0])
    assert float(rows[0]["leverage"]) >= 0


def test_plots_are_real_pngs(out: Path) -> None:
    for name in ("leverage.png", "blocked.png", "lpf_gap.png", "stockpile.png", "totals.png"):
        data = (out / name).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 10_000, name
    assert not list(out.glob(".*.tmp"))  # nothing half-written left behind


def test_errors_name_the_scenario_or_parameter(tmp_path: Path) -> None:
    r = run("no-such-scenario", "--out", str(tmp_path))
    assert r.returncode == 2 and "no-such-scenario" in r.stderr
    r = run("baseline", "--out", str(tmp_path), "--param", "grandfathering=7")
    assert r.returncode == 2 and "grandfathering = 7.0 lies outside its range" in r.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntitle: bad\nchanges:\n  - rule: '999.9'\n    from: 2023-01-01\n"
                   "    in_force: false\n")
    r = run(str(bad), "--out", str(tmp_path))
    assert r.returncode == 2 and "unknown rule '999.9'" in r.stderr
    assert not (tmp_path / "summary.json").exists()


def test_a_users_flow_table_and_scenario_file(tmp_path: Path) -> None:
    flows = tmp_path / "flows.parquet"
    write_flows(generate(default_world(), values(), flows=600, months=12, seed=1), flows)
    scenario = tmp_path / "korea.yaml"
    scenario.write_text("name: korea-joins\ntitle: Korea adopts equivalent controls\n"
                        "changes:\n  - group: Supp4:742\n    from: 2023-01-01\n"
                        "    members: [JP, NL, GB, AU, KR]\nparameters:\n  grandfathering: 0.8\n"
                        "retaliation:\n  - {date: 2023-06-01, measure: a hypothetical ban}\n")
    r = run(str(scenario), "hybrid-2024", "--out", str(tmp_path / "o"), "--flows-file",
            str(flows), "--months", "12")
    assert r.returncode == 0, r.stderr
    data = json.loads((tmp_path / "o" / "summary.json").read_text())
    assert data["korea-joins"]["parameters"]["grandfathering"] == 0.8
    assert len(data["korea-joins"]["leverage"]) == 12
    assert data["korea-joins"]["retaliation"]["events"] == [
        {"date": "2023-06-01", "measure": "a hypothetical ban"}]


@pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                    reason="Chromium is not installed (make test installs it)")
def test_report_opens_in_chromium_with_the_s1_s2_comparison(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1200, "height": 1300})
        page.goto((out / "report.html").as_uri())
        glance = page.locator("#s1-vs-s2").inner_text()
        assert "Multilateral (S1) vs unilateral FDP (S2)" in glance and "stockpile" in glance
        widths = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert len(widths) >= 6 and min(widths) > 300  # every plot loaded
        headers = page.locator("#headline thead th").all_inner_texts()
        assert headers[1:] == ["multilateral", "unilateral-fdp", "hybrid-2024"]
        assert page.locator("#parameters tbody tr").count() >= 20
        page.screenshot(path=str(out / "report.png"))
        browser.close()
    assert (out / "report.png").stat().st_size > 50_000
