"""virtio-mem: unplugging a paravirtualised memory device's memory from a running node
(drivers/virtio/virtio_mem.c, checked against 6.12).

The device owns a region of guest-physical memory that it plugs and unplugs in device blocks.
The driver adds the region to Linux in memory blocks and onlines them (ZONE_MOVABLE or a
kernel zone, as the onlining policy chose). When the host lowers the requested size, the driver
must give memory back:

- **Sub Block Mode** (SBM), when a subblock is smaller than a memory block: a memory block is
  unplugged subblock by subblock. A subblock of an online block is first taken from the buddy
  allocator with alloc_contig_range() ("fake-offlined", virtio_mem_fake_offline()); once every
  subblock of a block is unplugged, the block is offlined and removed
  (offline_and_remove_memory(), which skips the fake-offline pages).
- **Big Block Mode** (BBM), otherwise: a big block (at least a memory block) is fake-offlined a
  section at a time, then offlined and removed whole, or rolled back.

The subblock size (virtio_mem_init_hotplug()) is max(device block, pageblock) from 5.19, when
alloc_contig_range() became pageblock-granular; before it (5.8 to 5.18) the driver needed
max(device block, MAX_ORDER_NR_PAGES, pageblock). The model takes the earlier rule with the
"maxorder" isolation regime, so one cell gives both regimes' predictions side by side.

The model starts from a device whose region is fully plugged and online (what the driver does at
probe with memhp_default_state=online or online_movable) and handles one unplug request the way
virtio_mem_run_wq() does: it repeats the request, as the driver's retry timer would, until a pass
unplugs nothing more. A failed fake-offline costs nothing in the model; the kernel's transient
failures (pinned pages, pcp pages) are why the driver retries five times on ZONE_MOVABLE, and the
model calls alloc_contig_range() that often too. Memory blocks that are offline but still added
(OFFLINE / OFFLINE_PARTIAL) do not arise from this starting point and are not modelled.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from . import constants as C
from .page_alloc import fill_range, page_zone
from .page_isolation import (
    CONTIG_OK, FAIL_NO_TARGET, NR_FAIL_REASONS, PAGE_MT_OFFLINE, alloc_contig_range,
    free_contig_range, pfn_to_online_page,
)

# enum virtio_mem_sbm_mb_state
VIRTIO_MEM_SBM_MB_UNUSED = 0
VIRTIO_MEM_SBM_MB_PLUGGED = 1
VIRTIO_MEM_SBM_MB_OFFLINE = 2
VIRTIO_MEM_SBM_MB_OFFLINE_PARTIAL = 3
VIRTIO_MEM_SBM_MB_KERNEL = 4
VIRTIO_MEM_SBM_MB_KERNEL_PARTIAL = 5
VIRTIO_MEM_SBM_MB_MOVABLE = 6
VIRTIO_MEM_SBM_MB_MOVABLE_PARTIAL = 7

# enum virtio_mem_bbm_bb_state
VIRTIO_MEM_BBM_BB_UNUSED = 0
VIRTIO_MEM_BBM_BB_PLUGGED = 1
VIRTIO_MEM_BBM_BB_ADDED = 2
VIRTIO_MEM_BBM_BB_FAKE_OFFLINE = 3

#: virtio_mem_sbm_unplug_request(): partially plugged blocks first, ZONE_MOVABLE before kernel
#: zones (5.14+)
SBM_UNPLUG_ORDER = (VIRTIO_MEM_SBM_MB_OFFLINE_PARTIAL, VIRTIO_MEM_SBM_MB_OFFLINE,
                    VIRTIO_MEM_SBM_MB_MOVABLE_PARTIAL, VIRTIO_MEM_SBM_MB_KERNEL_PARTIAL,
                    VIRTIO_MEM_SBM_MB_MOVABLE, VIRTIO_MEM_SBM_MB_KERNEL)

FAKE_OFFLINE_RETRIES = 5        # virtio_mem_fake_offline(), on ZONE_MOVABLE
MAX_REQUEST_PASSES = 16         # the driver's retries of a request that made progress
EBUSY = 16
ENOMEM = 12


@dataclass
class VirtioMem:
    """struct virtio_mem, in pages."""
    addr: int                   # first pfn of the device region
    region_size: int            # pages
    device_block_size: int
    memory_block_size: int
    in_sbm: bool
    sb_size: int = 0            # SBM: pages per subblock
    sbs_per_mb: int = 0
    bb_size: int = 0            # BBM: pages per big block
    section_size: int = 0
    mb_state: np.ndarray = field(default=None)      # SBM, per memory block of the region
    sb_plugged: np.ndarray = field(default=None)    # SBM, per subblock of the region
    bb_state: np.ndarray = field(default=None)      # BBM, per big block of the region
    reasons: np.ndarray = field(default_factory=lambda: np.zeros(NR_FAIL_REASONS, dtype=np.int64))
    fake_offline_calls: int = 0     # alloc_contig_range() calls
    removed_blocks: int = 0         # memory blocks offlined and removed

    @property
    def plugged_size(self) -> int:
        if self.in_sbm:
            return int(np.count_nonzero(self.sb_plugged)) * self.sb_size
        return int(np.count_nonzero(self.bb_state != VIRTIO_MEM_BBM_BB_UNUSED)) * self.bb_size


def is_zone_movable_page(node, pfn: int) -> bool:
    """is_zone_movable_page(): pfn lies in ZONE_MOVABLE."""
    return int(node[page_zone(node, pfn)].zp[C.ZP_ZONE_IDX]) == C.ZONE_MOVABLE


def virtio_mem_sb_size(device_block_size: int, pageblock_order: int, max_order: int,
                       contig_maxorder: bool) -> int:
    """virtio_mem_init_hotplug()'s subblock size in pages: pageblock-based from 5.19, and
    max(MAX_ORDER_NR_PAGES, pageblock_nr_pages) before ("maxorder" isolation); at least the
    device block size either way."""
    sb = 1 << pageblock_order
    if contig_maxorder:
        sb = max(sb, 1 << max_order)
    return max(device_block_size, sb)


def virtio_mem_init(node, addr: int, region_size: int, device_block_size: int,
                    contig_maxorder: bool, force_bbm: bool = False) -> VirtioMem:
    """The device of [addr, addr + region_size) (pages), fully plugged, each memory block online
    in the zone that spans it. Raises ValueError for a region the driver could not use whole."""
    z0 = node[0]
    mb = 1 << int(z0.zp[C.ZP_MEMBLOCK_SHIFT])
    section = 1 << int(z0.zp[C.ZP_SECTION_SHIFT])
    if device_block_size < 1 or device_block_size & (device_block_size - 1):
        raise ValueError("the device block size must be a power of two pages")
    sb = virtio_mem_sb_size(device_block_size, int(z0.zp[C.ZP_PAGEBLOCK_ORDER]),
                            int(z0.zp[C.ZP_MAX_ORDER]), contig_maxorder)
    vm = VirtioMem(addr, region_size, device_block_size, mb, in_sbm=sb < mb and not force_bbm,
                   section_size=section)
    unit = mb if vm.in_sbm else max(device_block_size, mb)
    if addr % unit or region_size % unit or region_size <= 0:
        raise ValueError(f"the device region must be a positive multiple of {unit} pages, "
                         f"aligned to it")
    nr_mb = region_size // mb
    if vm.in_sbm:
        vm.sb_size, vm.sbs_per_mb = sb, mb // sb
        vm.sb_plugged = np.ones(nr_mb * vm.sbs_per_mb, dtype=bool)
        vm.mb_state = np.empty(nr_mb, dtype=np.int8)
        for i in range(nr_mb):
            vm.mb_state[i] = (VIRTIO_MEM_SBM_MB_MOVABLE if is_zone_movable_page(node, addr + i * mb)
                              else VIRTIO_MEM_SBM_MB_KERNEL)
    else:
        vm.bb_size = unit
        vm.bb_state = np.full(region_size // unit, VIRTIO_MEM_BBM_BB_ADDED, dtype=np.int8)
    return vm


def virtio_mem_fake_offline(node, vm: VirtioMem, pfn: int, nr_pages: int) -> int:
    """alloc_contig_range() the range away from the buddy: up to FAKE_OFFLINE_RETRIES tries on
    ZONE_MOVABLE, one elsewhere; -ENOMEM ends the request at once. 0, -EBUSY or -ENOMEM."""
    zi = page_zone(node, pfn)
    z = node[zi]
    is_movable = is_zone_movable_page(node, pfn)
    r = CONTIG_OK
    for _ in range(FAKE_OFFLINE_RETRIES):
        vm.fake_offline_calls += 1
        r = alloc_contig_range(node, zi, pfn, pfn + nr_pages, C.MIGRATE_MOVABLE)
        if r == FAIL_NO_TARGET:
            vm.reasons[r] += 1
            return -ENOMEM
        if r != CONTIG_OK and not is_movable:
            break
        if r != CONTIG_OK:
            continue
        z.zp[C.ZP_MANAGED] -= nr_pages          # adjust_managed_page_count()
        return 0
    vm.reasons[r] += 1
    return -EBUSY


def virtio_mem_fake_online(node, pfn: int, nr_pages: int) -> None:
    """Give a fake-offline range back to the buddy."""
    free_contig_range(node, pfn, nr_pages)
    node[page_zone(node, pfn)].zp[C.ZP_MANAGED] += nr_pages


def offline_and_remove_memory(node, vm: VirtioMem, pfn: int, nr_pages: int) -> None:
    """offline_and_remove_memory() of a range whose pages are all fake-offline: offlining skips
    them, and removal takes the memory (and its memmap) away; in the model its pages become
    offline reserved pages (PAGE_MT_OFFLINE), which pfn_to_online_page() does not find."""
    z = node[page_zone(node, pfn)]
    fill_range(z.page_flags, pfn, nr_pages, C.PG_RESERVED)
    fill_range(z.page_order, pfn, nr_pages, -1)
    fill_range(z.page_mt, pfn, nr_pages, PAGE_MT_OFFLINE)
    vm.removed_blocks += nr_pages // vm.memory_block_size


def _sb_pfn(vm: VirtioMem, mb_id: int, sb_id: int) -> int:
    return vm.addr + mb_id * vm.memory_block_size + sb_id * vm.sb_size


def _sbs(vm: VirtioMem, mb_id: int) -> np.ndarray:
    return vm.sb_plugged[mb_id * vm.sbs_per_mb:(mb_id + 1) * vm.sbs_per_mb]


def virtio_mem_sbm_unplug_sb_online(node, vm: VirtioMem, mb_id: int, sb_id: int, count: int) -> int:
    rc = virtio_mem_fake_offline(node, vm, _sb_pfn(vm, mb_id, sb_id), count * vm.sb_size)
    if rc:
        return rc
    _sbs(vm, mb_id)[sb_id:sb_id + count] = False        # the device accepts the request
    if vm.mb_state[mb_id] == VIRTIO_MEM_SBM_MB_KERNEL:
        vm.mb_state[mb_id] = VIRTIO_MEM_SBM_MB_KERNEL_PARTIAL
    elif vm.mb_state[mb_id] == VIRTIO_MEM_SBM_MB_MOVABLE:
        vm.mb_state[mb_id] = VIRTIO_MEM_SBM_MB_MOVABLE_PARTIAL
    return 0


def virtio_mem_sbm_try_remove_unplugged_mb(node, vm: VirtioMem, mb_id: int) -> None:
    """Once every subblock of a block is unplugged, offline and remove the block."""
    if _sbs(vm, mb_id).any():
        return
    offline_and_remove_memory(node, vm, vm.addr + mb_id * vm.memory_block_size,
                              vm.memory_block_size)
    vm.mb_state[mb_id] = VIRTIO_MEM_SBM_MB_UNUSED


def virtio_mem_sbm_unplug_any_sb_online(node, vm: VirtioMem, mb_id: int, nb_sb: list) -> int:
    """The whole block in one go when that many subblocks are wanted and all are plugged, else
    single subblocks from the highest down, skipping busy ones. nb_sb[0] counts down."""
    sbs = _sbs(vm, mb_id)
    done = False
    if nb_sb[0] >= vm.sbs_per_mb and sbs.all():
        rc = virtio_mem_sbm_unplug_sb_online(node, vm, mb_id, 0, vm.sbs_per_mb)
        if not rc:
            nb_sb[0] -= vm.sbs_per_mb
            done = True
        elif rc != -EBUSY:
            return rc
    if not done:
        sb_id = vm.sbs_per_mb - 1
        while sb_id >= 0 and nb_sb[0]:
            while sb_id >= 0 and not sbs[sb_id]:
                sb_id -= 1
            if sb_id < 0:
                break
            rc = virtio_mem_sbm_unplug_sb_online(node, vm, mb_id, sb_id, 1)
            if rc == 0:
                nb_sb[0] -= 1
            elif rc != -EBUSY:
                return rc
            sb_id -= 1
    virtio_mem_sbm_try_remove_unplugged_mb(node, vm, mb_id)
    return 0


def virtio_mem_sbm_unplug_request(node, vm: VirtioMem, diff: int) -> int:
    """Unplug `diff` pages in subblocks, the blocks of each state in SBM_UNPLUG_ORDER from the
    highest down. 0, -EBUSY (not all of it) or -ENOMEM."""
    nb_sb = [diff // vm.sb_size]
    if not nb_sb[0]:
        return 0
    for state in SBM_UNPLUG_ORDER:
        for mb_id in range(len(vm.mb_state) - 1, -1, -1):
            if vm.mb_state[mb_id] != state:
                continue
            if state in (VIRTIO_MEM_SBM_MB_OFFLINE, VIRTIO_MEM_SBM_MB_OFFLINE_PARTIAL):
                continue                                # not reached from the model's start
            rc = virtio_mem_sbm_unplug_any_sb_online(node, vm, mb_id, nb_sb)
            if rc or not nb_sb[0]:
                return rc
    return -EBUSY if nb_sb[0] else 0


def _bb_sections(vm: VirtioMem, bb_id: int):
    """The first pfn of each section of a big block (all online from the model's start)."""
    start = vm.addr + bb_id * vm.bb_size
    return range(start, start + vm.bb_size, vm.section_size)


def virtio_mem_bbm_offline_remove_and_unplug_bb(node, vm: VirtioMem, bb_id: int) -> int:
    """Fake-offline the big block a section at a time; on a failure give back what was taken
    (rollback), else offline and remove it. 0, -EBUSY or -ENOMEM."""
    vm.bb_state[bb_id] = VIRTIO_MEM_BBM_BB_FAKE_OFFLINE
    done = []
    for pfn in _bb_sections(vm, bb_id):
        rc = virtio_mem_fake_offline(node, vm, pfn, vm.section_size)
        if rc:
            for q in done:
                virtio_mem_fake_online(node, q, vm.section_size)
            vm.bb_state[bb_id] = VIRTIO_MEM_BBM_BB_ADDED
            return rc
        done.append(pfn)
    offline_and_remove_memory(node, vm, vm.addr + bb_id * vm.bb_size, vm.bb_size)
    vm.bb_state[bb_id] = VIRTIO_MEM_BBM_BB_UNUSED
    return 0


def _bb_is_movable(node, vm: VirtioMem, bb_id: int) -> bool:
    return all(is_zone_movable_page(node, pfn) for pfn in _bb_sections(vm, bb_id))


def virtio_mem_bbm_unplug_request(node, vm: VirtioMem, diff: int) -> int:
    """Three passes over the added big blocks from the highest down: offline ones (none from
    the model's start), then those wholly in ZONE_MOVABLE, then any."""
    nb_bb = diff // vm.bb_size
    if not nb_bb:
        return 0
    for i in (1, 2):
        for bb_id in range(len(vm.bb_state) - 1, -1, -1):
            if vm.bb_state[bb_id] != VIRTIO_MEM_BBM_BB_ADDED:
                continue
            if i == 1 and not _bb_is_movable(node, vm, bb_id):
                continue
            rc = virtio_mem_bbm_offline_remove_and_unplug_bb(node, vm, bb_id)
            if rc == -EBUSY:
                continue
            if not rc:
                nb_bb -= 1
            if rc or not nb_bb:
                return rc
    return -EBUSY if nb_bb else 0


def virtio_mem_unplug_request(node, vm: VirtioMem, diff: int) -> int:
    if vm.in_sbm:
        return virtio_mem_sbm_unplug_request(node, vm, diff)
    return virtio_mem_bbm_unplug_request(node, vm, diff)


def virtio_mem_resize(node, vm: VirtioMem, requested_size: int) -> int:
    """The host asks for `requested_size` pages plugged: handle it as virtio_mem_run_wq() and
    its retry timer do, until a pass gives nothing more back. Returns the pages unplugged."""
    before = vm.plugged_size
    for _ in range(MAX_REQUEST_PASSES):
        plugged = vm.plugged_size
        diff = plugged - requested_size
        if diff <= 0:
            break
        rc = virtio_mem_unplug_request(node, vm, diff)
        if rc == 0 or vm.plugged_size == plugged:
            break
    return before - vm.plugged_size


def virtio_mem_blocks_left(node, vm: VirtioMem) -> list[int]:
    """The device's memory blocks still added to Linux (as /sys/devices/system/memory lists them:
    memoryN with N = pfn / memory block), lowest first."""
    first = vm.addr // vm.memory_block_size
    out = []
    for i in range(vm.region_size // vm.memory_block_size):
        pfn = vm.addr + i * vm.memory_block_size
        if pfn_to_online_page(node[page_zone(node, pfn)], pfn) >= 0:
            out.append(first + i)
    return out
