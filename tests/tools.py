"""Tests that need an outside program (Chromium, and later qemu).

On a developer's machine such a test is skipped when the program is missing, with the way to
install it. Under CI (environment variable CI=true, as .ci/run and most CI services set it) it
fails instead: CI installs the program, so a missing one means a broken CI image, and a skip would
hide it.

    from tools import require_tool

    def test_report_in_a_browser():
        chromium = require_tool("chromium", find_chromium(), "apt-get install -y chromium")
        ...

Called from a fixture instead, a missing program under CI=true is an error at setup rather than a
failure: the run fails just the same.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest


def under_ci() -> bool:
    """True when the environment says this is CI: CI=true (or 1, yes)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require_tool(name: str, path: str | os.PathLike | None, install: str = "") -> str:
    """The path of the program `name` (`path`, as `shutil.which` or a finder returns it).

    When `path` is None, empty or not an existing file: skip the calling test, or under CI=true
    fail it, with a message naming the program and how to install it."""
    if path and Path(path).exists():
        return str(path)
    message = f"{name} is not installed" + (f" (install it: {install})" if install else "")
    if under_ci():
        pytest.fail(f"{message}; CI=true: a test that needs {name} fails instead of skipping",
                    pytrace=False)
    pytest.skip(f"{message}; under CI=true this test fails instead")


#: the kernel end-to-end captures boot: a Debian package spec, or a bzImage path
CAPTURE_KERNEL = os.environ.get("BUDDYFARM_TEST_KERNEL", "linux-image-6.12.*-cloud-amd64-unsigned")


def require_capture_tools() -> None:
    """What `farm capture` needs to boot CAPTURE_KERNEL: qemu, gcc, busybox, make, and apt-get
    unless the kernel is a file (require_tool() for each)."""
    require_tool("qemu-system-x86_64", shutil.which("qemu-system-x86_64"), "apt-get install -y qemu-system-x86")
    require_tool("gcc", shutil.which("gcc"), "apt-get install -y gcc libc6-dev")
    require_tool("busybox", shutil.which("busybox") or "/bin/busybox", "apt-get install -y busybox-static")
    require_tool("make", shutil.which("make"), "apt-get install -y make")
    if not Path(CAPTURE_KERNEL).exists():
        require_tool("apt-get", shutil.which("apt-get"), "a Debian system, or BUDDYFARM_TEST_KERNEL=bzImage")
