"""The HTML report in a real headless browser (Debian's chromium; CI installs it).

Every figure must decode to an image with a non-zero natural size, the page must log no console
error, and a full-page screenshot is written for a person to look at:
build/screenshots/report-golden.png (or $BUDDYFARM_SCREENSHOT_DIR/report-golden.png).
"""

import os
from pathlib import Path

import pytest

from browser import find_chromium, inspect
from reports import render
from reports.golden import MANIFEST, SOURCE, golden_frame
from reports.report import build_report
from tools import require_tool

CHROMIUM = find_chromium()
SCREENSHOTS = Path(os.environ.get("BUDDYFARM_SCREENSHOT_DIR", Path(__file__).resolve().parent.parent / "build"
                                  / "screenshots"))


def need_chromium() -> str:
    """Every test here needs Chromium: skipped without it, failed under CI=true (CI installs it)."""
    return require_tool("chromium", CHROMIUM, "apt-get install -y chromium")


def test_html_report_in_a_browser(tmp_path):
    need_chromium()
    doc = build_report(golden_frame(), SOURCE, MANIFEST)
    html, _ = render.write(doc, tmp_path)
    shot = SCREENSHOTS / "report-golden.png"
    page = inspect(html, screenshot=shot)
    assert page.title == doc.title
    assert len(page.images) == len(doc.figures())
    for img in page.images:
        assert img["error"] is None and img["width"] > 0 and img["height"] > 0, img
    assert page.errors == []
    assert shot.stat().st_size > 10_000 and page.height > 2000
    print(f"screenshot: {shot}")


def test_the_check_sees_broken_images_and_console_errors(tmp_path):
    need_chromium()
    page = tmp_path / "broken.html"
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"><title>x</title></head><body>'
                    '<img alt="ok" src="data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAA'
                    'DUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==">'
                    '<img alt="broken" src="data:image/png;base64,AAAA">'
                    '<script>console.error("boom")</script></body></html>')
    r = inspect(page)
    by_alt = {i["alt"]: i for i in r.images}
    assert by_alt["ok"]["width"] == 1 and by_alt["ok"]["error"] is None
    assert by_alt["broken"]["width"] == 0 and by_alt["broken"]["error"]
    assert any("boom" in e for e in r.errors)
