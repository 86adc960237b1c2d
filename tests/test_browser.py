"""The web page in real Chromium (Playwright, Debian's /usr/bin/chromium, headless)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason="Chromium is not installed (make test installs it)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory,
           start_server: Any) -> Iterator[tuple[str, str]]:
    data = tmp_path_factory.mktemp("data")
    env = {**os.environ, "CHOKEPOINT_DATA_DIR": str(data)}
    url = f"sqlite:///{data / 'chokepoint.db'}"
    key = subprocess.run([sys.executable, "-m", "chokepoint", "keys", "create", "--role",
                          "admin", "--database", url], capture_output=True, text=True, env=env,
                         check=True).stdout.strip()
    proc, port = start_server(["--database", url], env)
    base = f"http://127.0.0.1:{port}"
    yield base, key
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def page(server):  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run"])
        pg = browser.new_page()
        base, key = server
        pg.goto(base + "/")
        pg.fill("#key", key)
        yield pg
        browser.close()


def test_fill_the_form_for_a_real_case_and_read_the_outcome(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    page.fill("#f-date", "2024-09-16")
    page.fill("#f-from", "US")
    page.fill("#f-to", "CN")
    page.fill("#f-model", "H100")
    page.fill("#f-made", "US")
    page.fill("#f-party", "Example Chengdu Analytics")
    page.click("#run-form")
    page.wait_for_selector("[data-testid=outcome-US]")
    assert page.inner_text("[data-testid=outcome-US]") == "license_required"
    assert "742.6(a)(6)" in page.inner_text("#result")
    page.screenshot(path=str(Path(os.environ.get("CHOKEPOINT_SCREENSHOTS", tmp_path))
                             / "determination.png"), full_page=True)


def test_screen_a_name(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#s-name", "中芯国际集成电路制造有限公司")
    page.click("#screen-form button")
    page.wait_for_selector("[data-testid=hit]")
    assert "Semiconductor Manufacturing International Corporation" in page.inner_text(
        "#screen-result")


def test_rules_by_date(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#r-date", "2024-12-02")
    page.click("#rules-form button")
    page.wait_for_selector("#rules-result table")
    assert "734.9(k)" in page.inner_text("#rules-result")


def test_run_and_open_a_sandbox_report(page) -> None:  # type: ignore[no-untyped-def]
    page.fill("#sb-months", "6")
    page.fill("#sb-flows", "300")
    page.click("#run-sandbox")
    page.wait_for_selector("[data-testid=sandbox-status]:has-text('done')", timeout=120_000)
    frame = page.frame_locator("#sandbox-report")
    assert "Multilateral (S1) vs unilateral FDP (S2)" in frame.locator("#s1-vs-s2").inner_text()
    assert frame.locator("#headline thead th").all_inner_texts()[1:] == [
        "multilateral", "unilateral-fdp"]
    page.wait_for_timeout(500)  # let the report paint before the screenshot
    page.locator("#sandbox-report").screenshot(path="/tmp/chokepoint-sandbox-page.png")
