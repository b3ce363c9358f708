"""require_tool: a test that needs a missing program is skipped on a developer's machine and fails
under CI=true. Each case runs pytest in a subprocess on a tiny test file."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

TINY = f"""
import shutil, sys
sys.path.insert(0, {str(TESTS)!r})
from tools import require_tool

def test_needs_a_missing_tool():
    require_tool("no-such-tool", shutil.which("no-such-tool"), "apt-get install no-such-tool")

def test_needs_a_path_that_does_not_exist():
    require_tool("gone", "/nonexistent/gone")

def test_needs_a_tool_that_is_there():
    assert require_tool("python", sys.executable) == sys.executable
"""


def run_pytest(tmp_path: Path, target: Path, ci: str | None, path: str | None = None) -> tuple[int, str]:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    if ci is not None:
        env["CI"] = ci
    if path is not None:
        env["PATH"] = path
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rfs", "-p", "no:cacheprovider",
                        "--rootdir", str(tmp_path), str(target)],
                       cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    return r.returncode, r.stdout + r.stderr


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "test_tiny.py"
    path.write_text(TINY)
    return path


@pytest.mark.parametrize("ci", [None, "false"])
def test_a_missing_tool_skips_outside_ci(tmp_path, tiny, ci):
    code, out = run_pytest(tmp_path, tiny, ci)
    assert code == 0, out
    assert "1 passed, 2 skipped" in out, out
    assert ("no-such-tool is not installed (install it: apt-get install no-such-tool); under CI=true this "
            "test fails instead") in out, out


@pytest.mark.parametrize("ci", ["true", "1"])
def test_a_missing_tool_fails_under_ci(tmp_path, tiny, ci):
    code, out = run_pytest(tmp_path, tiny, ci)
    assert code == 1, out
    assert "2 failed, 1 passed" in out, out
    assert ("no-such-tool is not installed (install it: apt-get install no-such-tool); CI=true: a test "
            "that needs no-such-tool fails instead of skipping") in out, out
    assert "gone is not installed; CI=true" in out, out


def test_the_browser_tests_fail_under_ci_without_chromium(tmp_path):
    """The report's browser test, with no Chromium on PATH: skipped, and failed under CI=true."""
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    target = TESTS / "test_reports_browser.py"
    n = sum(line.startswith("def test_") for line in target.read_text().splitlines())
    code, out = run_pytest(tmp_path, target, None, path=str(empty))
    assert code == 0 and f"{n} skipped" in out, out
    code, out = run_pytest(tmp_path, target, "true", path=str(empty))
    assert code == 1 and f"{n} failed" in out, out
    assert "chromium is not installed" in out, out
