"""The C workloads of farm/real/workloads/ (run in the guest by the capture harness): each is
compiled with gcc -static -O2 -Wall -Werror and run natively on this host, with small sizes, to
check its parameters, its one-line summary and the counts the parameters imply. The THP workload
runs without defrag=/enabled=, so nothing is written to /sys."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import signal
import subprocess
from pathlib import Path

import pytest

from tools import require_tool

WORKLOADS = Path(__file__).resolve().parent.parent / "farm" / "real" / "workloads"
NAMES = ["fragmenter", "scatterer", "thp", "pagecache", "mixed"]
KEYS = {
    "fragmenter": "mb pages files files_kept pipes pipes_wanted seed holder",
    "scatterer": "fill_mb pages rounds freed pipes pipes_wanted seed holder",
    "thp": "mb rounds regions thp split split_left per_round enabled defrag",
    "pagecache": "dir fs files written read passes fsync",
    "mixed": "rounds anon_pages files files_kept tmpfs_bytes pipes pipes_wanted forks thp "
             "thp_regions seed holder",
}
PAIR = r"[a-z_]+=[^\s=]+"
MiB = 1 << 20


def known_params(name: str) -> list[str]:
    """The parameter names of the workload's `known` list, from its source."""
    src = (WORKLOADS / f"{name}.c").read_text()
    m = re.search(r"known\[\]\s*=\s*\{(.*?)NULL\s*\}", src, re.S)
    assert m, f"{name}.c has no known[] list"
    return re.findall(r'"([^"]+)"', m.group(1))


@pytest.fixture(scope="module")
def build(tmp_path_factory):
    """build(name) -> the path of the compiled workload (compiled once per module)."""
    gcc = require_tool("gcc", shutil.which("gcc"), "apt-get install -y gcc")
    out = tmp_path_factory.mktemp("workloads")
    built: dict[str, Path] = {}

    def compile_one(name: str) -> Path:
        if name in built:
            return built[name]
        exe = out / name
        cmd = [gcc, "-O2", "-Wall", "-Werror", "-o", str(exe), str(WORKLOADS / f"{name}.c")]
        static = subprocess.run([*cmd, "-static"], capture_output=True, text=True)
        if static.returncode != 0:
            # The harness builds with -static; a host without a static libc (libc.a) cannot, so
            # the test falls back to a dynamic build here. Warnings (-Werror) fail both builds.
            dynamic = subprocess.run(cmd, capture_output=True, text=True)
            assert dynamic.returncode == 0, f"gcc {name}.c:\n{dynamic.stderr}"
            assert "-lc" in static.stderr or "libc" in static.stderr, \
                f"gcc -static {name}.c:\n{static.stderr}"
        built[name] = exe
        return exe

    return compile_one


def parse_summary(name: str, stdout: str) -> dict[str, str]:
    """The key=value pairs of the one summary line `NAME: k=v k=v ...`, checked for format."""
    assert re.fullmatch(rf"{name}: {PAIR}(?: {PAIR})*\n", stdout), f"summary: {stdout!r}"
    pairs = [p.split("=", 1) for p in stdout.split()[1:]]
    assert [k for k, _ in pairs] == KEYS[name].split(), stdout
    return dict(pairs)


@contextlib.contextmanager
def workload(exe: Path, *args: str, limit_fds: int | None = None):
    """Run the workload; yield (its summary as a dict of ints where they are numbers, the
    completed process); kill the holder it printed afterwards."""
    def lower_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit_fds, limit_fds))

    proc = subprocess.run([str(exe), *args], capture_output=True, text=True, timeout=60,
                          preexec_fn=lower_limit if limit_fds else None)
    holder = re.search(r" holder=(\d+)", proc.stdout)
    try:
        assert proc.returncode == 0, f"exit {proc.returncode}: {proc.stderr}"
        assert proc.stderr == ""
        fields = parse_summary(exe.name, proc.stdout)
        yield {k: int(v) if re.fullmatch(r"-?\d+", v) else v for k, v in fields.items()}, proc
    finally:
        if holder:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(holder.group(1)), signal.SIGKILL)


def held_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


@pytest.mark.parametrize("name", NAMES)
def test_the_comment_block_documents_every_parameter_with_its_default(name):
    src = (WORKLOADS / f"{name}.c").read_text()
    assert src.startswith("/*\n")
    block = src[:src.index("*/")]
    documented = re.findall(r"^ \*   ([a-z_]+)=", block, re.M)
    assert documented == known_params(name)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("arg, key", [("bogus=1", "bogus"), ("noequals", "noequals")])
def test_an_unknown_parameter_exits_2_with_one_line(build, name, arg, key):
    proc = subprocess.run([str(build(name)), arg], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2
    assert proc.stdout == ""
    known = ", ".join(known_params(name))
    assert proc.stderr == f"{name}: unknown parameter {key} (known: {known})\n"


@pytest.mark.parametrize("name, arg", [("scatterer", "rounds=abc"), ("thp", "mb=-3"),
                                       ("thp", "defrag=sometimes"), ("pagecache", "fsync=2"),
                                       ("mixed", "pipes=1x")])
def test_a_bad_value_exits_2_with_one_line(build, name, arg):
    proc = subprocess.run([str(build(name)), arg], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2
    assert proc.stdout == ""
    key = arg.split("=")[0]
    assert re.fullmatch(rf"{name}: bad value for {key}: .*\n", proc.stderr), proc.stderr


def test_scatterer_frees_pages_and_holds_one_pipe_a_round(build):
    exe = build("scatterer")
    with workload(exe, "fill_mb=4", "rounds=300", "seed=7") as (s, _):
        assert s["pages"] == 4 * 256 and s["rounds"] == 300 and s["seed"] == 7
        assert 300 <= s["freed"] <= 600          # 1 or 2 a round, distinct pages
        assert s["pipes_wanted"] == 300
        assert s["pipes"] == 300 or 0 < s["pipes"] < 300  # fewer: RLIMIT_NOFILE capped
        assert held_fds(s["holder"]) >= s["pipes"]
        first = s
    with workload(exe, "fill_mb=4", "rounds=300", "seed=7") as (s, _):
        assert {k: v for k, v in s.items() if k != "holder"} == \
            {k: v for k, v in first.items() if k != "holder"}, "not deterministic for a seed"


def test_fragmenter_interleaves_files_and_pipes_then_keeps_one_file_in_n(build, tmp_path):
    exe = build("fragmenter")
    with workload(exe, "mb=2", "pipes=40", "file_every=16", "keep_one_in=3", f"dir={tmp_path}") as (s, _):
        assert s["pages"] == 512 and s["files"] == 512 // 16 and s["pipes_wanted"] == 40
        assert s["pipes"] == 40 or 0 < s["pipes"] < 40
        kept = sorted(p.name for p in tmp_path.iterdir())
        assert len(kept) == s["files_kept"] and 0 < s["files_kept"] < s["files"]
        assert all(1 <= (tmp_path / n).stat().st_size // 4096 <= 8 for n in kept)
        assert held_fds(s["holder"]) >= s["pipes"]


def test_scatterer_stops_freeing_when_every_page_is_gone(build):
    with workload(build("scatterer"), "fill_mb=1", "rounds=300", "free_per_round=1") as (s, _):
        assert s["freed"] == 256 and s["pipes"] == 300


def test_scatterer_under_a_low_descriptor_limit_holds_what_fits(build):
    # as root with CAP_SYS_RESOURCE it raises the limit again; without, it lowers the count
    with workload(build("scatterer"), "fill_mb=1", "rounds=200", limit_fds=64) as (s, _):
        assert s["pipes_wanted"] == 200
        assert s["pipes"] == 200 or 0 < s["pipes"] < 64
        assert held_fds(s["holder"]) >= s["pipes"]


@pytest.mark.parametrize("split", [1, 0])
def test_thp_counts_the_huge_pages_of_each_round(build, split):
    with workload(build("thp"), "mb=4", "rounds=2", f"split={split}") as (s, _):
        assert s["regions"] == 4 and s["split"] == split
        rounds = [tuple(map(int, r.split("/"))) for r in s["per_round"].split(",")]
        assert len(rounds) == 2 and all(of == 2 and 0 <= got <= 2 for got, of in rounds)
        assert s["thp"] == sum(got for got, _ in rounds)
        assert s["split_left"] == (0 if split else s["thp"])
        assert s["enabled"] in ("always", "madvise", "never", "-")


def test_thp_rounds_an_odd_size_up_to_whole_huge_pages(build):
    with workload(build("thp"), "mb=3", "rounds=1") as (s, _):
        assert s["regions"] == 2


def test_pagecache_writes_and_reads_back_the_files_and_leaves_them(build, tmp_path):
    with workload(build("pagecache"), f"dir={tmp_path}", "mb=3", "files=7") as (s, _):
        assert s["dir"] == str(tmp_path) and s["files"] == 7
        assert s["written"] == 3 * MiB and s["read"] == 2 * 3 * MiB
        assert s["passes"] == 2 and s["fsync"] == 1
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == [f"pagecache-{i:04d}" for i in range(7)]
    assert sum(f.stat().st_size for f in files) == 3 * MiB
    assert all(f.stat().st_size % 4096 == 0 for f in files)


def test_pagecache_without_fsync_and_with_no_read_pass(build, tmp_path):
    with workload(build("pagecache"), f"dir={tmp_path}", "mb=1", "files=3", "passes=0",
                  "fsync=0") as (s, _):
        assert s["written"] == MiB and s["read"] == 0


def test_pagecache_reports_a_missing_directory(build, tmp_path):
    missing = tmp_path / "absent"
    proc = subprocess.run([str(build("pagecache")), f"dir={missing}"], capture_output=True,
                          text=True, timeout=10)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr == f"pagecache: error: stat {missing}: No such file or directory\n"


def test_mixed_does_each_part_every_round_and_keeps_the_pipes(build, tmp_path):
    args = (f"dir={tmp_path}", "rounds=2", "anon_mb=2", "tmpfs_mb=1", "pipes=20", "forks=2",
            "thp_mb=3")
    with workload(build("mixed"), *args) as (s, _):
        assert s["rounds"] == 2 and s["anon_pages"] == 2 * 2 * 256
        assert s["tmpfs_bytes"] == 2 * MiB
        assert 2 * 256 // 16 <= s["files"] <= 2 * 256
        assert s["forks"] == 4 and s["thp_regions"] == 4 and 0 <= s["thp"] <= 4
        assert s["pipes_wanted"] == 40 and s["pipes"] == 40
        assert held_fds(s["holder"]) >= 40
        kept = sorted(tmp_path.iterdir())
        assert len(kept) == s["files_kept"] <= s["files"]
        assert all(re.fullmatch(r"mixed-[01]-\d+", f.name) for f in kept)
