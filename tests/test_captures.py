"""farm.real.captures on the real capture folders: numbers read off the files by hand, and the
snapshots agreeing with each other where the kernel says they must."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from farm.real import captures
from farm.real.captures import (KPF_BITS, KPF_BUDDY, CaptureError, read_buddyinfo, read_capture, read_kpageflags,
                           read_pagetypeinfo, read_zoneinfo)

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
F61 = DATA / "kernel-6.1-fragmenter-2560m"
F612 = DATA / "kernel-6.12-fragmenter-2560m"
MIX = DATA / "kernel-6.1-mixed-1536m"
pytestmark = pytest.mark.skipif(not F61.exists(), reason="the shared captures are not here")


def test_buddyinfo_mid():
    # Node 0, zone    DMA32   1693   1630   1468   1474   1477   1483   1044    598    223      9    244
    assert read_buddyinfo(F61 / "buddyinfo.mid") == {
        "DMA": [0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 3],
        "DMA32": [1693, 1630, 1468, 1474, 1477, 1483, 1044, 598, 223, 9, 244]}
    assert read_buddyinfo(F612 / "buddyinfo.before")["DMA32"] == [1, 3, 0, 2, 2, 1, 1, 4, 2, 1, 541]
    assert read_buddyinfo(F612 / "buddyinfo.compacted")["DMA32"] == [1582, 1423, 1264, 1183, 1216, 1192, 868, 473,
                                                                     190, 6, 244]


def test_pagetypeinfo_mid():
    p = read_pagetypeinfo(F61 / "pagetypeinfo.mid")
    assert (p["pageblock_order"], p["pages_per_block"], p["capped"]) == (9, 512, [])
    assert p["free"]["DMA32"] == {
        "Unmovable": [164, 35, 26, 21, 3, 1, 0, 1, 1, 0, 0],
        "Movable": [1529, 1583, 1439, 1452, 1472, 1482, 1044, 596, 221, 8, 244],
        "Reclaimable": [0, 12, 3, 1, 2, 0, 0, 1, 1, 1, 0],
        "HighAtomic": [0] * 11, "Isolate": [0] * 11}
    assert p["free"]["DMA"]["Movable"] == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 3]
    assert p["blocks"] == {
        "DMA": {"Unmovable": 1, "Movable": 7, "Reclaimable": 0, "HighAtomic": 0, "Isolate": 0},
        "DMA32": {"Unmovable": 168, "Movable": 1096, "Reclaimable": 8, "HighAtomic": 0, "Isolate": 0}}
    assert "mixed_blocks" not in p


@pytest.mark.parametrize("folder", [F61, F612, MIX], ids=lambda p: p.name)
def test_pagetypeinfo_adds_up_to_buddyinfo_in_every_snapshot(folder):
    """mm/vmstat.c prints both from the same free lists: per order, the free blocks of every type
    of a zone are its buddyinfo count (the snapshots were taken back to back, the system idle)."""
    c = read_capture(folder)
    assert c["snapshots"]["pagetypeinfo"]
    for phase in c["snapshots"]["pagetypeinfo"]:
        pt, bi = c["pagetypeinfo"][phase], c["buddyinfo"][phase]
        for zone, counts in bi.items():
            assert [sum(t[o] for t in pt["free"][zone].values()) for o in range(11)] == counts, (phase, zone)
        # pageblocks of a zone: its span rounded to pageblocks
        assert sum(pt["blocks"]["DMA"].values()) == 8


def test_zoneinfo_6_1():
    z = read_zoneinfo(F61 / "zoneinfo.before")
    assert list(z) == ["DMA", "DMA32", "Normal", "Movable", "Device"]
    dma, dma32 = z["DMA"], z["DMA32"]
    assert {k: dma[k] for k in ("node", "start_pfn", "spanned", "present", "managed", "min", "low", "high",
                                "free", "boost", "cma")} == dict(
        node=0, start_pfn=1, spanned=4095, present=3998, managed=3840, min=68, low=85, high=102, free=3712,
        boost=0, cma=0)
    assert dma["protection"] == [0, 2455, 2455, 2455, 2455]
    assert dma["per_node"]["nr_slab_unreclaimable"] == 2573 and dma["per_node"]["nr_kernel_stack"] == 752
    assert dma["stats"]["nr_free_pages"] == 3712
    assert (dma32["start_pfn"], dma32["spanned"], dma32["present"], dma32["managed"]) == (4096, 651229, 651229, 631233)
    assert (dma32["min"], dma32["low"], dma32["high"], dma32["free"]) == (11195, 13993, 16791, 554092)
    assert dma32["pagesets"] == [{"cpu": 0, "count": 2635, "high": 13993, "batch": 63}]
    assert (dma32["vm_stats_threshold"], dma32["node_unreclaimable"]) == (12, 0)
    assert "per_node" not in dma32
    assert z["Normal"]["start_pfn"] is None and z["Normal"]["managed"] == 0 and z["Normal"]["pagesets"] == []


def test_zoneinfo_6_12_has_promo_and_a_larger_pcp_high():
    dma32 = read_zoneinfo(F612 / "zoneinfo.before")["DMA32"]
    assert (dma32["promo"], dma32["managed"], dma32["free"]) == (19589, 629917, 555683)
    assert dma32["pagesets"] == [{"cpu": 0, "count": 1734, "high": 78462, "batch": 63}]
    assert dma32["start_pfn"] + dma32["spanned"] == 0x9ffdd         # the zone_end compaction prints


def test_kpageflags_before_agrees_with_buddyinfo_meminfo_and_vmstat():
    flags = read_kpageflags(F61 / "kpageflags.before.gz")
    assert flags.dtype == np.uint64 and len(flags) == 655360           # 2560 MiB of 4 KiB pfns
    buddy = ((flags >> np.uint64(KPF_BUDDY)) & np.uint64(1)).astype(bool)
    c = read_capture(F61)
    free = sum(n << order for zone in c["buddyinfo"]["before"].values() for order, n in enumerate(zone))
    # every page of a free buddy block has KPF_BUDDY (fs/proc/page.c: is_free_buddy_page)
    assert int(buddy.sum()) == free == c["vmstat"]["before"]["nr_free_pages"] == \
        c["meminfo"]["before"]["MemFree"] // 4 == 557804
    assert not buddy[:256].any() and buddy[384]            # the first free pages of DMA
    reserved = (flags >> np.uint64(captures.KPF_RESERVED)) & np.uint64(1)
    assert reserved[0] == 1 and reserved[0x9f] == 1          # pfn 0 and the hole below 640 KiB


def test_kpf_bits_are_the_kernels():
    # include/uapi/linux/kernel-page-flags.h, include/linux/kernel-page-flags.h
    names = ["LOCKED", "ERROR", "REFERENCED", "UPTODATE", "DIRTY", "LRU", "ACTIVE", "SLAB", "WRITEBACK", "RECLAIM",
             "BUDDY", "MMAP", "ANON", "SWAPCACHE", "SWAPBACKED", "COMPOUND_HEAD", "COMPOUND_TAIL", "HUGE",
             "UNEVICTABLE", "HWPOISON", "NOPAGE", "KSM", "THP", "OFFLINE", "ZERO_PAGE", "IDLE", "PGTABLE"]
    internal = ["RESERVED", "MLOCKED", "MAPPEDTODISK", "PRIVATE", "PRIVATE_2", "OWNER_PRIVATE", "ARCH", "UNCACHED",
                "SOFTDIRTY", "ARCH_2"]
    assert KPF_BITS == {**{n: i for i, n in enumerate(names)}, **{n: 32 + i for i, n in enumerate(internal)}}
    assert captures.KPF_SLAB == 7 and captures.KPF_LRU == 5 and captures.KPF_NOPAGE == 20


def test_read_capture():
    c = read_capture(F61)
    assert (c["kernel"], c["kernel_version"]) == ("6.1.0-56-cloud-amd64", (6, 1))
    assert c["uname"].startswith("Linux (none) 6.1.0-56-cloud-amd64 ")
    assert (c["hugepages_2m"], c["hugepages_2m_asked"], c["hugepages_1g"], c["hugepages_1g_asked"]) == (1052, 3000, 0, 2)
    assert c["hugepages_1g_err"] is None
    assert c["snapshots"] == {"buddyinfo": ["before", "mid", "compacted", "after"],
                              "pagetypeinfo": ["before", "mid", "compacted", "after"], "zoneinfo": ["before"],
                              "vmstat": ["before", "mid", "compacted", "after"],
                              "meminfo": ["before", "mid", "compacted", "after"],
                              "kpageflags": ["before", "mid", "after"], "pageblocktypes": []}
    assert c["pageblocktypes"] == {} and c["pageblocktypes_err"] is None
    assert c["trace"] == str(F61 / "trace.txt.gz")
    assert c["trace_stats"]["entries"] == 1525631 and c["trace_stats"]["overrun"] == 0
    assert c["cmdline"] == "console=ttyS0 quiet transparent_hugepage=madvise"
    ram = [(r["start"], r["end"]) for r in c["iomem"] if r["name"] == "System RAM"]
    assert ram == [(0x1000, 0x9fbff), (0x100000, 0x9ffdcfff)]
    c = read_capture(F612)
    assert (c["kernel"], c["kernel_version"], c["hugepages_2m"]) == ("6.12.117+deb12-cloud-amd64", (6, 12), 1043)
    c = read_capture(MIX)
    assert (c["hugepages_2m"], c["hugepages_1g"], c["hugepages_1g_asked"]) == (400, None, 1)   # empty: not recorded
    assert c["snapshots"]["kpageflags"] == [] and c["iomem"] is None and c["snapshots"]["vmstat"] == ["after"]


def test_errors_name_the_file_and_line(tmp_path):
    p = tmp_path / "buddyinfo"
    p.write_text("Node 0, zone      DMA      0      1\nNode 0, zone    DMA32   12   x\n")
    with pytest.raises(CaptureError) as e:
        read_buddyinfo(p)
    assert (e.value.line, str(e.value)) == (2, f"{p}:2: expected numbers, got '12 x'")
    p.write_text("Page block order: 9\nsomething else\n")
    with pytest.raises(CaptureError, match=r":2: not a pagetypeinfo line"):
        read_pagetypeinfo(p)
    p.write_bytes(gzip.compress(b"\0" * 12))
    with pytest.raises(CaptureError, match="12 bytes is not a whole number of 8-byte entries"):
        read_kpageflags(p)
    with pytest.raises(CaptureError, match="cannot read"):
        read_zoneinfo(tmp_path / "missing")
    with pytest.raises(CaptureError, match="not a folder"):
        read_capture(tmp_path / "missing")


def test_capped_pagetypeinfo_counts(tmp_path):
    # since 5.4 mm/vmstat.c stops counting a free list at 100000 and prints ">100000"
    p = tmp_path / "pagetypeinfo"
    p.write_text("Page block order: 9\nPages per block:  512\n\n"
                 "Free pages count per migrate type at order       0      1 \n"
                 "Node    0, zone   Normal, type      Movable >100000   7 \n\n"
                 "Number of blocks type     Unmovable      Movable \n"
                 "Node 0, zone   Normal          3          900 \n"
                 "Node 1, zone   Normal          1          100 \n")
    got = read_pagetypeinfo(p)
    assert got["free"] == {"Normal": {"Movable": [100000, 7]}}
    assert got["capped"] == [("Normal", "Movable", 0)]
    assert got["blocks"] == {"Normal": {"Unmovable": 3, "Movable": 900}, "node1/Normal": {"Unmovable": 1, "Movable": 100}}
