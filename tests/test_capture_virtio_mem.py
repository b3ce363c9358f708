"""farm capture --virtio-mem: a virtio-mem device besides the boot memory, plugged before the
before snapshot and asked over QMP to shrink after mid; its option, /init and qemu command, and
one capture under qemu."""

import gzip
import json
import shutil
import socket
import threading
from pathlib import Path

import pytest
from tools import CAPTURE_KERNEL, require_capture_tools, require_tool

from farm.real import capture as cap
from farm.real.captures import read_iomem

KERNEL = CAPTURE_KERNEL
G, M = 1 << 30, 1 << 20


def test_option():
    assert cap.parse_virtio_mem("2G", 1024) == {
        "region_bytes": 2 * G, "block_bytes": None, "online": "movable", "requested": 0, "maxmem_mib": 3072, "boot_mib": 1024}
    vm = cap.parse_virtio_mem("1G,block=4M,online=normal,request=256M", 512)
    assert vm == {"region_bytes": G, "block_bytes": 4 * M, "online": "normal", "requested": 256 * M,
                  "maxmem_mib": 2048, "boot_mib": 512}
    # maxmem: boot + region rounded up to 1 GiB; a bare number is MiB, as --memory
    assert cap.parse_virtio_mem("1536", 1000)["maxmem_mib"] == 3072
    assert cap.parse_virtio_mem("3G,request=1073741824B", 1024)["requested"] == G
    for bad, what in [("", "expected SIZE"), ("lots", "SIZE: expected a size"),
                      ("1G,online=kernel", "online=kernel"), ("1G,zone=normal", "'zone=normal' is not one of"),
                      ("1G,block=3M", "power of two"), ("1G,block=512K", "power of two"),
                      ("1G,request=2G", "no larger than SIZE"), ("1G,request=3M", "multiple of the block"),
                      ("1001M", "multiple of the block size"), ("1G,block=4M,request=2M", "multiple of the block"),
                      ("1G,online", "'online' is not one of")]:
        with pytest.raises(cap.CaptureFailed, match=r"^--virtio-mem ") as e:
            cap.parse_virtio_mem(bad, 512)
        assert what in str(e.value), (bad, str(e.value))


def test_option_errors_come_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(cap.shutil, "which", lambda name: "/bin/true")
    with pytest.raises(cap.CaptureFailed, match=r"^--virtio-mem '1G,online=up'"):
        cap.capture("bzImage", "512M", "fragmenter", tmp_path / "out", virtio_mem="1G,online=up")
    with pytest.raises(cap.CaptureFailed, match=r"^--hugepages: not used with --virtio-mem"):
        cap.capture("bzImage", "512M", "fragmenter", tmp_path / "out", virtio_mem="1G", hugepages="2M=1")
    assert not (tmp_path / "out").exists()


def test_the_cli_passes_the_option():
    from farm.cli import build_parser
    args = build_parser().parse_args(["capture", "--kernel", "k", "--virtio-mem", "2G,online=normal", "-o", "d"])
    assert args.virtio_mem == "2G,online=normal"
    assert build_parser().parse_args(["capture", "--kernel", "k", "-o", "d"]).virtio_mem is None


def test_qemu_command():
    drives = [Path("/w/files.img"), Path("/w/trace.img")]
    normal = cap.qemu_command("qemu", "tcg", 512, 1, "bz", Path("/w/i.gz"), "console=ttyS0", drives)
    assert normal[normal.index("-m") + 1] == "512M" and "-qmp" not in normal and "-device" not in normal
    assert normal[normal.index("-append") + 1] == "console=ttyS0"
    vm = cap.parse_virtio_mem("1G,online=normal", 512)
    cmd = cap.qemu_command("qemu", "tcg", 512, 1, "bz", Path("/w/i.gz"), "console=ttyS0", drives, vm,
                           Path("/w/qmp.sock"))
    assert cmd[cmd.index("-m") + 1] == "512M,maxmem=2048M"
    assert cmd[cmd.index("-append") + 1] == "console=ttyS0 memhp_default_state=online"
    assert cmd[cmd.index("-object") + 1] == f"memory-backend-ram,id=vmem0,size={G}"
    assert cmd[cmd.index("-device") + 1] == f"virtio-mem-pci,id=vm0,memdev=vmem0,requested-size={G}"
    assert cmd[cmd.index("-qmp") + 1] == "unix:/w/qmp.sock,server=on,wait=off"
    assert [cmd[i + 1] for i, a in enumerate(cmd) if a == "-drive"] == [
        f"file={d},format=raw,if=virtio,cache=unsafe" for d in drives]
    vm = cap.parse_virtio_mem("2G,block=128M", 1024)
    cmd = cap.qemu_command("qemu", "tcg", 1024, 2, "bz", Path("/w/i.gz"), "c", drives, vm, Path("/w/q"))
    assert cmd[cmd.index("-device") + 1].endswith(f",requested-size={2 * G},block-size={128 * M}")
    assert cmd[cmd.index("-append") + 1] == "c memhp_default_state=online_movable"


def test_init_script():
    args = ("fragmenter", ["mb=64", "pipes=32"], {"2m": 16, "1g": 1}, 65536, ["virtio_blk"])
    normal = cap.init_script(*args)
    vm = cap.parse_virtio_mem("1G,online=normal", 512)
    s = cap.init_script(*args, virtio_mem=vm, virtio_mem_modules=["virtio_mem"])
    # the normal path: compaction and hugetlb pages after mid, no unplug
    assert "snap compacted" in normal and "snap after" in normal and "virtio_mem" not in normal
    assert "unplug" not in normal and "read line" not in normal and "options/overwrite" not in normal
    # virtio-mem: the same up to mid, then the unplug and no compaction or hugetlb pages
    assert s[:s.index("echo > $T/trace\n")] == normal[:normal.index("echo > $T/trace\n")]
    assert s[s.index("for e in kmem/"):s.index("snap mid\n")] == normal[normal.index("for e in kmem/"):
                                                                        normal.index("snap mid\n")]
    assert "snap compacted" not in s and "snap after" not in s and "nr_hugepages" not in s
    order = [s.index(x) for x in (
        "echo 65536 > $T/buffer_size_kb",       # the trace buffer, in the boot memory
        "echo 0 > $T/options/overwrite",
        "for m in virtio_mem;",
        "/sys/bus/virtio/drivers/virtio_mem",
        "read k mt u < /proc/meminfo",           # MemTotal grown and stable
        "say phase=plugged",
        "mount -o remount,size=50% /tmp",        # half of all the memory, as without the device
        "> /out/memory_block_size_bytes",
        "memory_blocks before",
        "cat /proc/iomem > /out/iomem",         # after the plug: the device's region in it
        "/bin/snapshot before",
        "/bin/fragmenter mb=64 pipes=32",
        "snap mid",
        "memory_blocks mid",
        "trace_stats_mid.d",
        "mark unplug-request",
        "read line",
        "/bin/snapshot unplugged /out --marker $T/trace_marker 2> /out/unplugged.err",
        "memory_blocks unplugged",
        "cat /proc/iomem > /out/iomem.unplugged",
        "echo 0 > $T/tracing_on\nmkdir -p /out/trace_stats.d",
        "say phase=trace-dump",
        "writeout\n")]
    assert order == sorted(order)
    assert "[ $waited -ge 120 ] && fail" in s and "$same -lt 2" in s
    assert "done > /out/memory_blocks.$1" in s


def test_init_script_runs_in_a_shell(tmp_path):
    """The memory_blocks and MemTotal lines of the /init run by a POSIX shell against a fake
    /sys/devices/system/memory and /proc/meminfo."""
    sh = require_tool("sh", shutil.which("sh"))
    vm = cap.parse_virtio_mem("1G", 512)
    s = cap.init_script("fragmenter", [], {"2m": 0, "1g": 0}, 1024, [], vm, [])
    body = s[s.index("memory_blocks() {"):s.index("mem0=")]
    sysm = tmp_path / "memory"
    for n, state, zones in [(0, "online", "none"), (1, "online", "DMA32"), (10, "offline", "Normal Movable"),
                            (33, "online", "Movable")]:
        (sysm / f"memory{n}").mkdir(parents=True)
        (sysm / f"memory{n}" / "state").write_text(state + "\n")
        (sysm / f"memory{n}" / "valid_zones").write_text(zones + "\n")
    (sysm / "memory2").mkdir()
    (sysm / "memory2" / "state").write_text("online\n")            # no valid_zones
    (tmp_path / "out").mkdir()
    script = tmp_path / "t.sh"
    script.write_text(f"M={sysm}\n" + body.replace("/out/", f"{tmp_path}/out/") + "memory_blocks mid\n")
    import subprocess
    subprocess.run([sh, str(script)], check=True)
    assert (tmp_path / "out" / "memory_blocks.mid").read_text() == (
        "memory0 online none\nmemory1 online DMA32\nmemory2 online -\nmemory10 offline Normal Movable\n"
        "memory33 online Movable\n")


def test_virtio_mem_unplug_over_qmp(tmp_path):
    """The host's QMP exchange against a fake QMP server whose size drops to the request in
    steps and then stays: the files it writes, and it stops when the size reaches the request."""
    path = tmp_path / "q.sock"
    srv = socket.socket(socket.AF_UNIX)
    srv.bind(str(path))
    srv.listen(1)
    seen = []

    def serve():
        conn, _ = srv.accept()
        f = conn.makefile("rw")
        f.write(json.dumps({"QMP": {"version": {}, "capabilities": []}}) + "\n")
        f.flush()
        size, steps = G, [768 * M, 768 * M, 256 * M, 0]
        for line in f:
            msg = json.loads(line)
            seen.append(msg)
            args = msg.get("arguments", {})
            if msg["execute"] == "qom-set":
                ret = {}
            elif msg["execute"] == "qom-get" and args["property"] == "size":
                ret = size
                if len(seen) > 4 and steps:
                    size = steps.pop(0)
                    f.write(json.dumps({"event": "MEMORY_DEVICE_SIZE_CHANGE", "data": {"size": size}}) + "\n")
            elif msg["execute"] == "qom-get":
                ret = 2 * M
            else:
                ret = {}
            f.write(json.dumps({"return": ret}) + "\n")
            f.flush()
        conn.close()
    t = threading.Thread(target=serve, daemon=True)
    t.start()
    vm = cap.parse_virtio_mem("1G,online=normal", 512)
    out = tmp_path / "cap"
    out.mkdir()
    r = cap.virtio_mem_unplug(path, vm, out, log=lambda msg: None, settle=5, poll=0.01)
    t.join(5)
    assert seen[0] == {"execute": "qmp_capabilities"}
    assert {"execute": "qom-set", "arguments": {"path": "/machine/peripheral/vm0", "property": "requested-size",
                                                "value": 0}} in seen
    assert r["size_before"] == G and r["size_after"] == 0 and r["reached_request"] and not r["timed_out"]
    assert [s for _, s in r["sizes"]] == [G, 768 * M, 256 * M, 0]
    assert (out / "virtio_mem_size_before").read_text() == f"{G}\n"
    assert (out / "virtio_mem_size_after").read_text() == "0\n"
    assert (out / "virtio_mem_requested").read_text() == "0\n"
    j = json.loads((out / "virtio_mem.json").read_text())
    assert set(j) >= {"region_bytes", "block_bytes", "online", "requested", "size_before", "size_after",
                      "seconds_to_settle", "sizes"}
    assert j["region_bytes"] == G and j["block_bytes"] == 2 * M and j["online"] == "normal"
    assert (out / "qmp.log").read_text().count("->") == len(seen)


def test_no_virtio_mem_in_the_kernel_is_named(tmp_path):
    k = {"config": {"CONFIG_VIRTIO_MEM": "y"}, "modules": None}
    assert cap.virtio_mem_modules(k) == []
    with pytest.raises(cap.CaptureFailed, match="no virtio_mem driver .CONFIG_VIRTIO_MEM is not set"):
        cap.virtio_mem_modules({"config": {"CONFIG_VIRTIO": "y"}, "modules": None})
    with pytest.raises(cap.CaptureFailed, match="builds virtio_mem as a module but no modules came"):
        cap.virtio_mem_modules({"config": {"CONFIG_VIRTIO_MEM": "m"}, "modules": None})
    (tmp_path / "kernel/drivers").mkdir(parents=True)
    with pytest.raises(cap.CaptureFailed, match="no virtio_mem module in"):
        cap.virtio_mem_modules({"config": {"CONFIG_VIRTIO_MEM": "m"}, "modules": str(tmp_path)})
    # found as needed_modules() finds the disks' modules, with its dependencies first
    (tmp_path / "kernel/drivers/virtio_mem.ko").write_bytes(b"\0depends=virtio,dep-a\0")
    (tmp_path / "kernel/drivers/dep_a.ko.gz").write_bytes(gzip.compress(b"\0depends=\0"))
    (tmp_path / "kernel/drivers/virtio.ko").write_bytes(b"\0depends=\0")
    got = cap.virtio_mem_modules({"config": {"CONFIG_VIRTIO_MEM": "m"}, "modules": str(tmp_path)}, ["virtio"])
    assert [n for n, _ in got] == ["dep_a", "virtio_mem"]


@pytest.mark.slow
def test_capture_with_virtio_mem_end_to_end(tmp_path):
    """512 MiB of boot memory and a 1 GiB device onlined to ZONE_NORMAL: plugged before the before
    snapshot, shrunk over QMP after mid (about 90 s under TCG, most of it the 60 s the host waits
    for the size to stay the same when it does not reach 0)."""
    require_capture_tools()
    from farm.real.captures import read_capture
    out = tmp_path / "cap"
    r = cap.capture(KERNEL, "512M", "fragmenter:mb=200,pipes=64", out, virtio_mem="1G,online=normal",
                    timeout=600, log=lambda msg: None)
    names = [p for p, _ in r["phases"]]
    for phase in ("plugged", "work-start", "work-end", "mid", "unplug-request", "unplugged", "done"):
        assert phase in names
    assert "compacted" not in names and "after" not in names
    for name in ("virtio_mem_requested", "virtio_mem_size_before", "virtio_mem_size_after", "virtio_mem.json",
                 "memory_block_size_bytes", "memory_blocks.before", "memory_blocks.mid", "memory_blocks.unplugged",
                 "iomem.unplugged", "kpageflags.unplugged.gz", "buddyinfo.unplugged", "zoneinfo.unplugged",
                 "trace_stats.mid", "qmp.log"):
        assert (out / name).exists(), name
    before = int((out / "virtio_mem_size_before").read_text())
    after = int((out / "virtio_mem_size_after").read_text())
    assert before == 1 << 30 and 0 <= after <= before and int((out / "virtio_mem_requested").read_text()) == 0
    j = json.loads((out / "virtio_mem.json").read_text())
    assert j["size_after"] == after and j["online"] == "normal" and j["sizes"][0] == [0.0, before]
    assert r["virtio_mem"]["size_after"] == after
    # the device's region, and the plugged memory in it as System RAM
    assert any(e["name"].startswith("virtio") and e["depth"] == 0 and e["start"] >= 1 << 32
               for e in read_iomem(out / "iomem"))
    blocks = [line.split() for line in (out / "memory_blocks.mid").read_text().splitlines()]
    assert len(blocks) >= 8 and all(b[0].startswith("memory") and b[1] in ("online", "offline") for b in blocks)
    block = int((out / "memory_block_size_bytes").read_text(), 16)
    hot = [b for b in blocks if int(b[0][6:]) * block >= 1 << 32]
    assert len(hot) == (1 << 30) // block and all(b[2] == "Normal" for b in hot)
    # the boot memory's blocks stay; the device's blocks it gave back all of left
    left = [line.split()[0] for line in (out / "memory_blocks.unplugged").read_text().splitlines()]
    assert {b[0] for b in blocks if b not in hot} <= set(left) <= {b[0] for b in blocks}
    assert len(left) <= len(blocks) - (before - after) // block + (after + block - 1) // block
    c = read_capture(out)
    assert set(c["snapshots"]["buddyinfo"]) >= {"before", "mid"}
    assert c["trace_stats"]["entries"] > 0
    with gzip.open(out / "trace.txt.gz", "rt") as f:
        markers = [line.split("tracing_mark_write: ")[1].strip() for line in f if "tracing_mark_write" in line]
    lost = (out / "trace_lost_after_mid").exists()
    assert markers[:4] == ["phase=work-start", "phase=work-end", "phase=mid", "phase=unplug-request"]
    assert lost or markers[-1] == "phase=unplugged"
    # the model, replayed to mid, predicts how much the driver gave back: within 10% of the kernel
    # (the device region comes from iomem's virtio line, its block size from virtio_mem.json)
    from farm.real.validate import format_validation, validate
    v = validate(out, with_policy=False)
    assert v["buddyinfo_mid_l1"] < 0.05
    m = v["virtio_mem"]
    assert m["asked"] == 1 << 30 and m["real"] == before - after and m["online"] == "normal"
    assert abs(m["model"] - m["real"]) <= 0.10 * m["real"], m
    assert m["model_maxorder"] is not None and "virtio-mem unplug (normal)" in format_validation(v)
    # the device's memory blocks each side still has (memoryN), and the kernel's hold what it kept
    assert m["blocks_left"] == [int(b[0][6:]) for b in hot if b[0] in left]
    assert len(m["blocks_left"]) * block >= after and len(m["model_blocks_left"]) * block >= (1 << 30) - m["model"]
