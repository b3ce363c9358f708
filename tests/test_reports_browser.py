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


def test_validation_pages_in_a_browser(tmp_path):
    need_chromium()
    import numpy as np

    from farm.real.captures import KPF_BUDDY, KPF_LRU
    from farm.real.zonemap import kernel_zone_map, model_zone_map
    from kernels.page_alloc import alloc_pages, boot_node
    from kernels.zone import make_node
    from reports.validation import write_validation_report

    node = make_node(64 * 512, 10, 9, "v6.15")
    boot_node(node)
    for _ in range(300):
        alloc_pages(node, 0, 0, 0)
    kpf = np.full(64 * 512, np.uint64(1 << KPF_BUDDY))
    kpf[:5000] = np.uint64(1 << KPF_LRU)
    v = {"capture": "synthetic", "kernel": "6.12.0", "policy": "v6.10", "max_order": 10, "pageblock_order": 9,
         "buddyinfo_mid_l1": 0.01, "nr_free_mid_err": 0.001, "placement_agreement": 0.5,
         "policy_buddyinfo_mid_l1": 0.02, "buddyinfo_mid": {"real": [1, 2], "model": [2, 2]},
         "blocks_mid": {"real": {"Movable": 64}, "model": {"Movable": 63, "Unmovable": 1}},
         "hugepages_2m": {"asked": 5, "real": 5, "model": 5}, "hugepages_1g": {"asked": 0, "real": None, "model": None},
         "skipped": [], "zone_map_mid": {"zone": "Normal", "model": model_zone_map(node),
                                         "kernel": kernel_zone_map(kpf, 0, 64 * 512, 9)}}
    index = write_validation_report([v], tmp_path)
    for html, shot in ((index, None), (tmp_path / "synthetic.html", SCREENSHOTS / "validate-synthetic.png")):
        page = inspect(html, screenshot=shot)
        assert page.errors == []
        for img in page.images:
            assert img["error"] is None and img["width"] > 0 and img["height"] > 0, img
    assert len(inspect(tmp_path / "synthetic.html").images) == 1
