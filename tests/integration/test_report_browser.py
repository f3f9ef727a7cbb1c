"""The report in a real headless browser: Debian's chromium driven by playwright.

Only a browser tells whether the page really loads offline and its embedded plots decode. The
browser is the system's (/usr/bin/chromium), never one that playwright downloads. Without it
the test fails and says how to install it; ``OBJLAB_SKIP_BROWSER=1`` skips it deliberately.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from report_fixtures import build_fixture_run

from objlab.report.html import write_report
from objlab.report.plots import PLOTS

CHROMIUM = Path("/usr/bin/chromium")
INSTALL_HINT = (
    "the browser test needs Debian's chromium and the playwright package: "
    "`apt-get update -qq && apt-get install -y -qq chromium` and `pip install -e '.[test]'` "
    "(or set OBJLAB_SKIP_BROWSER=1 to skip this test)"
)

pytestmark = pytest.mark.browser


def require_browser():
    """playwright's ``sync_playwright``, after checking the system browser is there (else fail or skip)."""
    if os.environ.get("OBJLAB_SKIP_BROWSER") == "1":
        pytest.skip("OBJLAB_SKIP_BROWSER=1")
    if not CHROMIUM.is_file():
        pytest.fail(f"{CHROMIUM} not found: {INSTALL_HINT}", pytrace=False)
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"playwright is not installed: {INSTALL_HINT}", pytrace=False)
    return sync_playwright


def test_report_loads_without_errors_and_every_plot_renders(tmp_path):
    sync_playwright = require_browser()
    report = write_report(build_fixture_run(tmp_path / "run"))
    screenshot = tmp_path / "report.png"
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.on("console", lambda message: problems.append(f"console: {message.text}") if message.type == "error" else None)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.on("requestfailed", lambda request: problems.append(f"request failed: {request.url}"))
            page.goto(report.as_uri(), wait_until="load")
            images = page.evaluate(
                "Array.from(document.images).map(img => ({alt: img.alt, complete: img.complete,"
                " width: img.naturalWidth, shown: img.getBoundingClientRect().width}))"
            )
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    if target := os.environ.get("OBJLAB_SCREENSHOT_DIR"):
        Path(target).mkdir(parents=True, exist_ok=True)
        shutil.copy(screenshot, Path(target) / "report.png")

    assert problems == []
    assert [image["alt"] for image in images] == [plot.title for plot in PLOTS]
    for image in images:
        assert image["complete"] and image["width"] > 0 and image["shown"] > 0, image
    assert screenshot.stat().st_size > 10_000
