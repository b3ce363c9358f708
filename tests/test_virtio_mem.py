"""virtio-mem unplug (kernels/virtio_mem.py): exact tests of the driver's rules on hand-built nodes.

Every node here is 256 MiB (65536 pages) with pageblock order 9; the device is the node's top
128 MiB. An unmovable page in ZONE_NORMAL, or a pinned movable page in ZONE_MOVABLE, makes the
subblock that holds it busy; everything else can be migrated to the free memory below the device.
"""

import numpy as np
import pytest

from farm.cell.params import ParamError
from farm.cell.probes import run_probes
from farm.cell.simulate import run
from kernels import constants as C
from kernels.check import check_zone
from kernels.page_alloc import alloc_pages, boot_node, page_zone
from kernels.page_isolation import PAGE_MT_OFFLINE
from kernels.replay import _mark_allocated, take_off_buddy
from kernels.virtio_mem import (
    VIRTIO_MEM_BBM_BB_ADDED, VIRTIO_MEM_BBM_BB_UNUSED, VIRTIO_MEM_SBM_MB_KERNEL,
    VIRTIO_MEM_SBM_MB_KERNEL_PARTIAL, VIRTIO_MEM_SBM_MB_MOVABLE, VIRTIO_MEM_SBM_MB_MOVABLE_PARTIAL,
    VIRTIO_MEM_SBM_MB_UNUSED, virtio_mem_init, virtio_mem_resize, virtio_mem_sb_size,
)
from kernels.zone import make_node

pytestmark = pytest.mark.kernels

NR = 1 << 16
REGION = NR // 2
SB = 512                    # 2 MiB subblocks: the device block and the pageblock
MB = 8192                   # 32 MiB memory blocks


def _node(movable_pages=0, max_order=10, maxorder=False, memory_block_bits=25, section_bits=25):
    node = make_node(NR, max_order, 9, section_bits=section_bits,
                     memory_block_bits=memory_block_bits, movable_pages=movable_pages,
                     contig_maxorder=maxorder)
    boot_node(node)
    return node


def _busy(node, pfn):
    """Make pfn a page no alloc_contig_range() can take: unmovable in a kernel zone, pinned in
    ZONE_MOVABLE."""
    z = node[page_zone(node, pfn)]
    assert take_off_buddy(z, pfn, pfn + 1) == 0
    if int(z.zp[C.ZP_ZONE_IDX]) == C.ZONE_MOVABLE:
        _mark_allocated(z, pfn, 0, C.MIGRATE_MOVABLE)
        z.page_flags[pfn] |= C.PG_PINNED
    else:
        _mark_allocated(z, pfn, 0, C.MIGRATE_UNMOVABLE)


def _sb(block, sb):
    return REGION + (block - 4) * MB + sb * SB


def _plugged(vm, block):
    return [int(i) for i in np.flatnonzero(vm.sb_plugged[(block - 4) * 16:(block - 3) * 16])]


def _removed(node, block):
    z = node[page_zone(node, REGION + (block - 4) * MB)]
    start = REGION + (block - 4) * MB
    return bool(np.all(z.page_flags[start:start + MB] == C.PG_RESERVED)
                and np.all(z.page_mt[start:start + MB] == PAGE_MT_OFFLINE))


def test_the_subblock_size_of_each_release():
    # 5.19+: max(device block, pageblock); 5.8 to 5.18: also at least MAX_ORDER_NR_PAGES
    assert virtio_mem_sb_size(512, 9, 10, False) == 512
    assert virtio_mem_sb_size(512, 9, 10, True) == 1024
    assert virtio_mem_sb_size(2048, 9, 10, False) == 2048
    assert virtio_mem_sb_size(512, 9, 12, True) == 4096
    assert virtio_mem_sb_size(512, 9, 12, False) == 512


def test_sbm_takes_the_highest_subblocks_first_and_skips_busy_ones():
    node = _node()
    _busy(node, _sb(7, 15) + 3)
    _busy(node, _sb(6, 3))
    vm = virtio_mem_init(node, REGION, REGION, SB, False)
    assert vm.in_sbm and vm.sb_size == SB and vm.sbs_per_mb == 16
    assert list(vm.mb_state) == [VIRTIO_MEM_SBM_MB_KERNEL] * 4
    # 20 subblocks: block 7 whole fails, then its subblocks 15 (busy) .. 0, then 6's 15 .. 11
    assert virtio_mem_resize(node, vm, REGION - 20 * SB) == 20 * SB
    assert vm.fake_offline_calls == 1 + 1 + 15 + 5
    assert _plugged(vm, 7) == [15]
    assert _plugged(vm, 6) == list(range(11))
    assert list(vm.mb_state) == [VIRTIO_MEM_SBM_MB_KERNEL] * 2 + [VIRTIO_MEM_SBM_MB_KERNEL_PARTIAL] * 2
    assert vm.removed_blocks == 0
    check_zone(node)
    # everything: the partial blocks first (7, then 6 from subblock 10 down), then 5 and 4
    # whole; a second pass retries the two busy subblocks and gives up
    calls = vm.fake_offline_calls
    assert virtio_mem_resize(node, vm, 0) == REGION - 20 * SB - 2 * SB
    assert vm.fake_offline_calls - calls == (1 + 11 + 1 + 1) + 2
    assert _plugged(vm, 7) == [15] and _plugged(vm, 6) == [3]
    assert vm.removed_blocks == 2 and _removed(node, 4) and _removed(node, 5)
    assert list(vm.mb_state) == [VIRTIO_MEM_SBM_MB_UNUSED] * 2 + [VIRTIO_MEM_SBM_MB_KERNEL_PARTIAL] * 2
    assert vm.reasons[1] == vm.reasons.sum() == 2 + 2 + 2     # unmovable_in_range, each request
    check_zone(node)


def test_zone_movable_retries_five_times_and_goes_first():
    # the top 64 MiB (blocks 6 and 7) in ZONE_MOVABLE, blocks 4 and 5 in ZONE_NORMAL
    node = _node(movable_pages=2 * MB)
    _busy(node, _sb(7, 0))
    _busy(node, _sb(5, 15))
    vm = virtio_mem_init(node, REGION, REGION, SB, False)
    assert list(vm.mb_state) == [VIRTIO_MEM_SBM_MB_KERNEL] * 2 + [VIRTIO_MEM_SBM_MB_MOVABLE] * 2
    z_movable = node[-1]
    managed = int(z_movable.zp[C.ZP_MANAGED])
    # 40 subblocks: the MOVABLE blocks first: 7 whole (5 tries), its subblocks 15..1, 0 (5
    # tries), then 6 whole; then the KERNEL block 5, not whole (9 subblocks are left to
    # find): its subblock 15 (1 try), 14 .. 6
    assert virtio_mem_resize(node, vm, REGION - 40 * SB) == 40 * SB
    assert vm.fake_offline_calls == 5 + 15 + 5 + 1 + 1 + 9
    assert _plugged(vm, 7) == [0] and _plugged(vm, 6) == []
    assert _plugged(vm, 5) == list(range(6)) + [15] and _plugged(vm, 4) == list(range(16))
    assert list(vm.mb_state) == [VIRTIO_MEM_SBM_MB_KERNEL, VIRTIO_MEM_SBM_MB_KERNEL_PARTIAL,
                                 VIRTIO_MEM_SBM_MB_UNUSED, VIRTIO_MEM_SBM_MB_MOVABLE_PARTIAL]
    # adjust_managed_page_count() for every subblock taken
    assert int(z_movable.zp[C.ZP_MANAGED]) == managed - (15 + 16) * SB
    # the next request starts with the partial blocks: MOVABLE_PARTIAL 7 (5 tries), then
    # KERNEL_PARTIAL 5 from its highest plugged subblock: 15 (busy, 1 try), then 5
    calls = vm.fake_offline_calls
    assert virtio_mem_resize(node, vm, vm.plugged_size - SB) == SB
    assert vm.fake_offline_calls - calls == 5 + 1 + 1
    assert _plugged(vm, 5) == list(range(5)) + [15]
    check_zone(node)


def test_bbm_when_a_subblock_would_not_be_smaller_than_a_memory_block():
    # before 5.19 at max_order 13 a subblock is 2^13 pages: a whole 32 MiB memory block, so the
    # driver runs in Big Block Mode; ZONE_MOVABLE blocks go first, a section at a time
    node = _node(movable_pages=2 * MB, max_order=13, maxorder=True)
    _busy(node, _sb(7, 4))
    _busy(node, _sb(5, 9))
    vm = virtio_mem_init(node, REGION, REGION, SB, True)
    assert not vm.in_sbm and vm.bb_size == MB
    # 3 big blocks: movable pass 7 (5 tries, busy), 6; any pass: 7 again (5), 5 (1, busy), 4;
    # the retry pass: 7 (5) in the movable pass, 7 (5) and 5 (1) in the last
    assert virtio_mem_resize(node, vm, REGION - 3 * MB) == 2 * MB
    assert vm.fake_offline_calls == 5 + 1 + 5 + 1 + 1 + 5 + 5 + 1
    assert list(vm.bb_state) == [VIRTIO_MEM_BBM_BB_UNUSED, VIRTIO_MEM_BBM_BB_ADDED,
                                 VIRTIO_MEM_BBM_BB_UNUSED, VIRTIO_MEM_BBM_BB_ADDED]
    assert vm.removed_blocks == 2 and _removed(node, 4) and _removed(node, 6)
    check_zone(node)


def test_isolation_passes_over_removed_memory():
    # before 5.19 at max_order 14, alloc_contig_range() isolates 64 MiB around each 32 MiB big
    # block: the block below the device's top one is isolated with its removed neighbour, whose
    # pageblocks __first_valid_page() skips (pfn_to_online_page() finds nothing there)
    node = _node(movable_pages=REGION, max_order=14, maxorder=True)
    vm = virtio_mem_init(node, REGION, REGION, SB, True)
    assert not vm.in_sbm
    assert virtio_mem_resize(node, vm, 0) == REGION
    assert vm.fake_offline_calls == 4 and vm.reasons.sum() == 0
    assert all(_removed(node, b) for b in range(4, 8))
    check_zone(node)


def test_bbm_rolls_a_big_block_back_when_a_later_section_fails():
    # 64 MiB memory blocks of two 32 MiB sections (Big Block Mode forced: the driver's
    # force_bbm); the driver fake-offlines a big block's sections upwards, and the busy page is
    # in the upper section of the top block
    node = _node(memory_block_bits=26)
    z = node[0]
    _busy(node, REGION + 3 * MB + 7)
    free_before = int(z.stat[C.NR_FREE_PAGES])
    managed = int(z.zp[C.ZP_MANAGED])
    vm = virtio_mem_init(node, REGION, REGION, SB, False, force_bbm=True)
    assert not vm.in_sbm and vm.bb_size == 2 * MB and vm.section_size == MB
    assert virtio_mem_resize(node, vm, REGION - 2 * MB) == 2 * MB
    # the top block: section 0 taken, section 1 fails, section 0 given back; then block 0
    assert vm.fake_offline_calls == 2 + 2
    assert list(vm.bb_state) == [VIRTIO_MEM_BBM_BB_UNUSED, VIRTIO_MEM_BBM_BB_ADDED]
    assert int(z.zp[C.ZP_MANAGED]) == managed - 2 * MB
    # the rolled-back section is free again: only the removed block left the free pages
    assert int(z.stat[C.NR_FREE_PAGES]) == free_before - 2 * MB
    assert not np.any(z.page_flags[REGION + 2 * MB:REGION + 3 * MB] & C.PG_CONTIG)
    check_zone(node)


def test_the_probe_reports_bytes_and_restores_the_cells_regime():
    node = _node(movable_pages=REGION)
    _busy(node, _sb(7, 15))
    p = {"max_order": 10, "pageblock_order": 9}
    cc = np.zeros(C.CC_SIZE, dtype=np.int64)
    out = run_probes(node, ["virtio-mem:unplug=128M,isolation=maxorder"], p, cc,
                     np.zeros(1, dtype=np.int64))[0]
    assert out["kind"] == "virtio-mem" and out["asked"] == 128 << 20
    # 4 MiB subblocks before 5.19: the busy one costs 4 MiB
    assert out["subblock"] == 4 << 20 and out["mode"] == "sbm" and out["isolation"] == "maxorder"
    assert out["obtained"] == (128 - 4) << 20
    # one reason per failed subblock (each after 5 tries): the whole block, its subblock, and
    # the subblock again on the retry pass
    assert out["failure_reasons"] == {"migration_failed": 3}
    assert out["fake_offline_calls"] == 5 + 7 + 5 + 3 + 5
    assert out["removed_blocks"] == 3
    assert all(int(z.zp[C.ZP_CONTIG_MAXORDER]) == 0 for z in node)
    check_zone(node)


def test_probe_errors_name_the_problem():
    node = _node()
    p = {"max_order": 10, "pageblock_order": 9}
    cc = np.zeros(C.CC_SIZE, dtype=np.int64)
    bitmap = np.zeros(1, dtype=np.int64)
    with pytest.raises(ParamError, match="no ZONE_MOVABLE; give device"):
        run_probes(node, ["virtio-mem:unplug=64M"], p, cc, bitmap)
    with pytest.raises(ParamError, match="larger than the device"):
        run_probes(node, ["virtio-mem:unplug=64M,device=32M"], p, cc, bitmap)
    with pytest.raises(ParamError, match="multiple of 8192 pages"):
        run_probes(node, ["virtio-mem:unplug=2M,device=48M"], p, cc, bitmap)
    with pytest.raises(ParamError, match="isolation is pageblock or maxorder"):
        run_probes(node, ["virtio-mem:unplug=2M,isolation=none"], p, cc, bitmap)


def test_a_cell_with_the_probe_is_deterministic_and_keeps_every_invariant():
    raw = dict(memory="512M", max_order=10, workload="scatterer", ops=60000, movable_fraction=0.0,
               section_bits=25, memory_block_size="32M", probe=["virtio-mem:unplug=256M,device=256M"])
    nodes = []
    a = run(raw, node_out=nodes)
    check_zone(nodes[0])
    b = run(raw)
    assert a["probes"] == b["probes"]
    pr = a["probes"][0]
    assert 0 < pr["obtained"] <= pr["asked"] and pr["obtained"] % (2 << 20) == 0


def test_a_captures_device_region_comes_from_iomem(tmp_path):
    from farm.real.captures import read_iomem
    from farm.real.replay import virtio_mem_region
    (tmp_path / "iomem").write_text(
        "00000000-00000fff : Reserved\n"
        "00001000-0009fbff : System RAM\n"
        "00100000-3ffdffff : System RAM\n"
        "  01000000-01ffffff : Kernel code\n"
        "fe000000-fe003fff : 0000:00:04.0\n"
        "  fe000000-fe003fff : virtio-pci-modern\n"
        "100000000-17fffffff : virtio0\n"
        "  100000000-107ffffff : System RAM (virtio_mem)\n"
        "  118000000-11fffffff : System RAM (virtio_mem)\n")
    assert virtio_mem_region({"iomem": read_iomem(tmp_path / "iomem")}) == (1 << 20, 1 << 19)
    # a virtio disk's BAR is not a device region
    (tmp_path / "iomem").write_text("00100000-3ffdffff : System RAM\nfe000000-fe003fff : virtio1\n")
    assert virtio_mem_region({"iomem": read_iomem(tmp_path / "iomem")}) is None
    assert virtio_mem_region({}) is None


def test_a_captures_virtio_mem_record_is_read_once_with_the_capture(tmp_path):
    from farm.real.captures import CaptureError, read_capture
    from farm.real.replay import virtio_mem_block
    (tmp_path / "virtio_mem.json").write_text(
        '{"size_before": 2147483648, "size_after": 94371840, "requested": 0, "block_bytes": 4194304}')
    c = read_capture(tmp_path)
    assert c["virtio_mem"]["size_after"] == 94371840 and virtio_mem_block(c) == 4 << 20
    assert virtio_mem_block({}) is None
    (tmp_path / "virtio_mem.json").write_text('{"size_before": 1}')
    with pytest.raises(CaptureError, match=r"virtio_mem.json: not a virtio-mem record"):
        read_capture(tmp_path)
