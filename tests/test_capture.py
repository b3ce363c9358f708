"""farm capture: a real kernel booted under qemu writes a capture folder that read_capture and
farm validate take; its arguments, initramfs and failures named on one line."""

import gzip
import os
import shutil
import subprocess

import numpy as np
import pytest
from tools import CAPTURE_KERNEL, require_capture_tools, require_tool

from farm.real import capture as cap
from farm.real.captures import PHASES, read_capture

KERNEL = CAPTURE_KERNEL


def test_arguments():
    assert cap.parse_memory("512M") == 512 and cap.parse_memory("2G") == 2048
    assert cap.parse_workload("fragmenter:mb=32,pipes=10", 512) == (
        "fragmenter", {"mb": 32, "pipes": 10, "file_every": 64, "keep_one_in": 4, "seed": 1})
    assert cap.parse_workload("fragmenter", 2560)[1]["mb"] == 1100
    # text values pass as they are; an empty one (the program's own default) is not passed
    assert cap.parse_workload("thp:defrag=defer+madvise", 1024) == (
        "thp", {"mb": 256, "rounds": 3, "split": 1, "defrag": "defer+madvise"})
    assert cap.parse_workload("scatterer", 1000)[1]["fill_mb"] == 600
    with pytest.raises(cap.CaptureFailed, match="characters"):
        cap.parse_workload("thp:defrag=a;reboot", 512)
    with pytest.raises(cap.CaptureFailed, match="whole number"):
        cap.parse_workload("scatterer:rounds=many", 512)
    assert cap.parse_hugepages("2M=300,1G=2", 512) == {"2m": 300, "1g": 2}
    assert cap.parse_hugepages(None, 512) == {"2m": 256, "1g": 1}
    for bad in (lambda: cap.parse_memory("lots"), lambda: cap.parse_workload("nope", 512),
                lambda: cap.parse_workload("fragmenter:size=3", 512),
                lambda: cap.parse_hugepages("3M=1", 512)):
        with pytest.raises(cap.CaptureFailed):
            bad()


def test_cpio_newc(tmp_path):
    cpio = require_tool("cpio", shutil.which("cpio"), "apt-get install -y cpio")
    c = cap.Cpio()
    c.dir("bin")
    c.file("bin/hello", b"hello\n")
    c.symlink("bin/hi", "hello")
    (tmp_path / "a.cpio").write_bytes(c.bytes())
    listing = subprocess.run([cpio, "-itv"], stdin=open(tmp_path / "a.cpio", "rb"), capture_output=True,
                             text=True, check=True).stdout
    assert "bin/hello" in listing and "bin/hi -> hello" in listing


def test_the_snapshot_program_reads_after_its_marker(tmp_path):
    """farm/real/guest/snapshot.c on this machine's /proc: the marker written first, then every
    snapshot file of the phase; --start writes 1 (tracing_on) after the reads."""
    require_tool("gcc", shutil.which("gcc"), "apt-get install -y gcc libc6-dev")
    if not os.access("/proc/kpageflags", os.R_OK):
        pytest.skip("/proc/kpageflags is readable by root only")
    exe = cap.compile_static(cap.GUEST_DIR / "snapshot.c", tmp_path, "the snapshot program")
    marker, start = tmp_path / "trace_marker", tmp_path / "tracing_on"
    marker.write_text("")
    start.write_text("")
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run([str(exe), "mid", str(out), "--marker", str(marker), "--start", str(start)], check=True)
    assert marker.read_text() == "phase=mid\n" and start.read_text() == "1\n"
    names = {p.name for p in out.iterdir()}
    assert {f"{k}.mid" for k in ("buddyinfo", "pagetypeinfo", "zoneinfo", "vmstat", "meminfo", "kpageflags")} <= names
    from farm.real.captures import read_buddyinfo, read_kpageflags
    assert read_buddyinfo(out / "buddyinfo.mid") and len(read_kpageflags(out / "kpageflags.mid")) > 0
    assert (out / "pageblocktypes.mid").exists() == os.path.exists("/proc/pageblocktypes")
    assert subprocess.run([str(exe)], capture_output=True).returncode == 2


def test_missing_qemu_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(cap.shutil, "which", lambda name: None)
    with pytest.raises(cap.CaptureFailed, match=r"^qemu-system-x86_64 is not installed"):
        cap.capture("bzImage", "512M", "fragmenter", tmp_path / "out")


@pytest.mark.slow
def test_capture_end_to_end(tmp_path):
    require_capture_tools()
    from farm.real.validate import validate
    out = tmp_path / "cap"
    r = cap.capture(KERNEL, "512M", "fragmenter:mb=48,pipes=64", out, hugepages="2M=64,1G=1",
                    timeout=300, log=lambda msg: None)
    names = [p for p, _ in r["phases"]]
    for phase in ("work-start", "work-end", "mid", "compacted", "hugepages-2m-done", "hugepages-1g-done",
                  "done"):
        assert phase in names
    c = read_capture(out)
    assert c["kernel_version"] is not None and c["trace"].endswith("trace.txt.gz")
    assert set(c["snapshots"]["buddyinfo"]) == {"before", "mid", "compacted", "after"}
    assert {"before", "mid"} <= set(c["snapshots"]["kpageflags"])
    assert c["trace_stats"]["overrun"] == 0 and c["trace_stats"]["entries"] > 0
    assert c["hugepages_2m_asked"] == 64 and 0 <= c["hugepages_2m"] <= 64
    assert c["work_log"].startswith("fragmenter: mb=48 pages=12288 ") and " pipes=64 " in c["work_log"]
    assert (out / "console.log").exists()
    with gzip.open(out / "trace.txt.gz", "rt") as f:
        markers = [line.split("tracing_mark_write: ")[1].strip() for line in f if "tracing_mark_write" in line]
    assert markers[:4] == ["phase=work-start", "phase=work-end", "phase=mid", "phase=compacted"]
    assert markers[4].startswith("phase=hugepages-2m-done got=") and markers[-1] == "phase=after"
    # the snapshots of a phase are taken right after its marker, by one process: at mid the
    # pinned replay meets buddyinfo.mid exactly
    assert {"before", "mid", "compacted", "after"} <= set(c["snapshots"]["kpageflags"])
    # the pageblocktypes module was built for this kernel and read at every snapshot; its counts
    # per zone and type are the kernel's own (pagetypeinfo's "Number of blocks type")
    assert c["pageblocktypes_err"] is None and set(c["snapshots"]["pageblocktypes"]) == set(PHASES)
    for phase in PHASES:
        for zone, z in c["pageblocktypes"][phase]["zones"].items():
            names, counts = np.unique(z["type"], return_counts=True)
            real = {k: n for k, n in c["pagetypeinfo"][phase]["blocks"][zone].items() if n}
            assert dict(zip(names.tolist(), counts.tolist())) == real, (phase, zone)
    v = validate(out, with_policy=False)
    assert v["buddyinfo_mid_l1"] is not None and 0 <= v["buddyinfo_mid_l1"] < 0.05
    assert v["pageblock_types_mid"]["blocks"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("workload, log", [
    ("scatterer:fill_mb=200,rounds=3000", r"scatterer: fill_mb=200 pages=51200 rounds=3000 freed=\d+ pipes=3000 "),
    ("thp:mb=64,rounds=2", r"thp: mb=64 rounds=2 regions=64 thp=[1-9]\d* split=1 split_left=0 .* enabled=madvise "),
    ("pagecache:mb=48,files=8", r"pagecache: dir=/mnt fs=ext2/3/4 files=8 written=50331648 read=100663296 "),
    ("mixed:rounds=2,anon_mb=32,tmpfs_mb=16,pipes=50,forks=4,thp_mb=8", r"mixed: rounds=2 .* pipes=100 pipes_wanted=100 forks=8 thp=[1-9]\d* "),
])
def test_every_workload_runs_in_the_guest(tmp_path, workload, log):
    require_capture_tools()
    import re

    from farm.real.validate import validate
    out = tmp_path / "cap"
    cap.capture(KERNEL, "512M", workload, out, hugepages="2M=16,1G=0", timeout=300, log=lambda msg: None)
    c = read_capture(out)
    assert re.match(log, c["work_log"]), c["work_log"]
    assert c["trace_stats"]["overrun"] == 0
    v = validate(out, with_policy=False)
    assert v["buddyinfo_mid_l1"] is not None


@pytest.mark.slow
def test_capture_oom_is_named(tmp_path):
    require_capture_tools()
    out = tmp_path / "oom"
    with pytest.raises(cap.CaptureFailed, match="OOM-killed"):
        cap.capture(KERNEL, "256M", "fragmenter:mb=600,pipes=16", out, hugepages="2M=1,1G=0",
                    timeout=300, log=lambda msg: None)
    assert (out / "console.log").exists()


@pytest.mark.slow
def test_capture_panic_and_lost_events_are_named(tmp_path):
    require_capture_tools()
    with pytest.raises(cap.CaptureFailed, match="panicked"):
        cap.capture(KERNEL, "256M", "fragmenter:mb=8,pipes=8", tmp_path / "panic", hugepages="2M=1,1G=0",
                    append="rdinit=/no-such-init", timeout=300, log=lambda msg: None)
    assert "Kernel panic" in (tmp_path / "panic" / "console.log").read_text(errors="replace")
    with pytest.raises(cap.CaptureFailed, match="trace events were lost"):
        cap.capture(KERNEL, "256M", "fragmenter:mb=48,pipes=16", tmp_path / "lost", hugepages="2M=1,1G=0",
                    trace_buffer_mb=1, timeout=300, log=lambda msg: None)
