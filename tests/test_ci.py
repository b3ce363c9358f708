""".ci/run stops at the first step that fails and runs the README's test command.

The script runs in a copy of the project folder with stand-ins for apt-get, python3, pip and python
on PATH (nothing is installed, no test runs): each records its call and fails when told to."""

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tools import require_tool

ROOT = Path(__file__).resolve().parent.parent
CI_RUN = ROOT / ".ci" / "run"
BASH = shutil.which("bash")

STUB = """#!{bash}
echo "{name} $* CI=${{CI:-}} NUMBA_DISABLE_JIT=${{NUMBA_DISABLE_JIT:-}}" >> "$CI_LOG"
case " {name} $* " in *" $FAIL_AT "*) exit 3;; esac
{body}
"""
# `python3 -m venv .venv` makes a virtual environment whose activate puts pip and python on PATH
VENV = """if [ "$1 $2" = "-m venv" ]; then
    mkdir -p "$3/bin"
    echo 'PATH="'"$PWD/$3"'/bin:$PATH"; export PATH' > "$3/bin/activate"
    for tool in pip python; do
        sed "s/{name}/$tool/g" "$STUB_TEMPLATE" > "$3/bin/$tool"; chmod +x "$3/bin/$tool"
    done
fi"""


def readme_test_command() -> str:
    block = re.search(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return block.splitlines()[1].rsplit(" && ", 1)[1]


#: What .ci/run installs when missing: the command it looks for -> the Debian packages.
INSTALLED = {"chromium": "chromium", "qemu-system-x86_64": "qemu-system-x86", "busybox": "busybox-static",
             "gcc": "gcc libc6-dev", "make": "make", "cpio": "cpio"}


def run_ci(tmp_path: Path, fail_at: str = "", present=tuple(INSTALLED)) -> tuple[int, list[str]]:
    require_tool("bash", BASH)
    project = tmp_path / "project"
    (project / ".ci").mkdir(parents=True)
    shutil.copy(CI_RUN, project / ".ci" / "run")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("dirname", "rm", "mkdir", "chmod", "sed"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    template = tmp_path / "stub"
    template.write_text(STUB.format(bash=BASH, name="{name}", body=""))
    tools = {"python3": VENV, "apt-get": ""} | {name: "" for name in present}
    for name, body in tools.items():
        (bin_dir / name).write_text(STUB.format(bash=BASH, name=name, body=body))
        (bin_dir / name).chmod(0o755)
    log = tmp_path / "calls"
    log.touch()
    env = {"PATH": str(bin_dir), "CI_LOG": str(log), "FAIL_AT": fail_at or "-never-",
           "STUB_TEMPLATE": str(template), "HOME": str(tmp_path)}
    r = subprocess.run([BASH, str(project / ".ci" / "run")], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=60)
    return r.returncode, [line.split(" CI=")[0] for line in log.read_text().splitlines()]


def test_every_step_runs_in_order_with_the_readme_test_command(tmp_path):
    code, calls = run_ci(tmp_path)
    assert code == 0
    assert readme_test_command() == "python -m pytest -q"
    assert calls == ["python3 -m venv .venv", "pip install -q -e .[test]", "python -m pytest -q",
                     "python -m pytest -q -m kernels"]
    log = (tmp_path / "calls").read_text().splitlines()
    assert log[-1].endswith("NUMBA_DISABLE_JIT=1") and not log[-2].endswith("NUMBA_DISABLE_JIT=1")
    assert all(" CI=true " in line for line in log), "tests run with CI=true: a missing tool fails them"


@pytest.mark.parametrize("missing", [("chromium",), ("qemu-system-x86_64", "busybox"), tuple(INSTALLED)])
def test_missing_tools_are_installed(tmp_path, missing):
    code, calls = run_ci(tmp_path, present=[t for t in INSTALLED if t not in missing])
    assert code == 0
    packages = " ".join(INSTALLED[t] for t in INSTALLED if t in missing)
    assert calls[:2] == ["apt-get update -qq", f"apt-get install -y -qq --no-install-recommends {packages}"]
    assert calls[2:] == ["python3 -m venv .venv", "pip install -q -e .[test]", "python -m pytest -q",
                         "python -m pytest -q -m kernels"]


@pytest.mark.parametrize("fail_at, ran", [
    ("update", ["apt-get update -qq"]),
    ("venv", ["python3 -m venv .venv"]),
    ("install", ["python3 -m venv .venv", "pip install -q -e .[test]"]),
    ("pytest", ["python3 -m venv .venv", "pip install -q -e .[test]", "python -m pytest -q"]),
])
def test_a_failing_step_stops_the_script(tmp_path, fail_at, ran):
    code, calls = run_ci(tmp_path, fail_at=fail_at, present=() if fail_at == "update" else tuple(INSTALLED))
    assert code == 3
    assert calls == ran
