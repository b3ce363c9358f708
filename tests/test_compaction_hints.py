"""Compaction as 6.12's mm/compaction.c runs it around the per-cpu lists and its own hints:
migrated sources freed through the running CPU's pcp lists and drained when the migrate scanner
leaves an order-aligned block it migrated from (compact_zone()'s check_drain); the pageblock skip
hints (isolation_suitable(), set by both scanners, reset by __reset_isolation_suitable() only
after a full direct compaction); the lowmem reserve of the request's highest zone in
compaction_suit_allocation_order(); -ENOMEM when the scanners meet ending the compaction as
complete, not contended; costly orders never escalating to sync-full (should_compact_retry())."""

import numpy as np
import pytest

from kernels import constants as C
from kernels import compaction as K
from kernels.check import check_node
from kernels.page_alloc import (alloc_pages, boot_node, drain_all_pages, free_pages, get_pageblock_skip,
                                reset_cached_positions, reset_isolation_suitable_zone,
                                set_pageblock_skip)
from kernels.replay import _mark_allocated, take_off_buddy
from kernels.zone import make_node

pytestmark = pytest.mark.kernels

PB = 16     # pageblock_order 4


def _full_node(policy="v6.15", pcp=True):
    """4096 pages, max_order 6, pageblock_order 4, pcp lists on: every page allocated as a
    movable order-0 (LRU) page, and the free block the watermark kept back (at the top of the
    zone) as an unmovable one; returns the node and the movable pages in pfn order."""
    node = make_node(4096, 6, 4, policy, pcp=pcp, min_free_kbytes=128)
    boot_node(node)
    pages = []
    while True:
        p = alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0)
        if p < 0:
            break
        pages.append(p)
    drain_all_pages(node)
    z = node[0]
    rest = [int(p) for p in range(4096) if z.page_flags[p] & C.PG_BUDDY]
    assert len(rest) == 1 and rest[0] == 4096 - 2 * PB      # the order-5 block
    assert take_off_buddy(z, rest[0], 4096) == 0
    _mark_allocated(z, rest[0], 5, C.MIGRATE_UNMOVABLE)
    return node, sorted(pages)


def _free(node, pfns):
    for p in pfns:
        free_pages(node, p)
    drain_all_pages(node)


def _sources_low_targets_high(node, pages):
    """Blocks 0-127 keep one LRU page each (pfn block + 1) and are otherwise free; blocks 128-255
    keep every page but their first: the migrate scanner has a source in each low block, the
    free scanner one free page in each high block."""
    held = set(pages)
    low = [p for p in held if p < 128 * PB and p % PB != 1]
    high = [p for p in held if p >= 128 * PB and p % PB == 0]
    _free(node, low + high)


def _cc():
    return np.zeros(C.CC_SIZE, dtype=np.int64)


def _migrated(node):
    return int(sum(int(z.stat[C.PGMIGRATE_SUCCESS]) for z in node))


def test_compact_memory_leaves_migrated_sources_on_the_pcp_lists():
    """compact_node() (order -1) frees each source through free_unref_page() and never drains:
    sources stay on the CPU's lists (as many as the model's `high` lets stay), not merged."""
    node, pages = _full_node()
    _sources_low_targets_high(node, pages)
    z = node[0]
    assert z.zp[C.ZP_PCP_COUNT] == 0
    K.compact_node(node, _cc())
    moved = _migrated(node)
    assert moved > 0
    on_pcp = [q for q in range(0, 128 * PB, PB) if z.page_flags[q + 1] & C.PG_PCP]
    assert len(on_pcp) > 0
    assert z.zp[C.ZP_PCP_COUNT] == int(np.count_nonzero(z.page_flags & C.PG_PCP))
    assert check_node(node)[0] == 0


def test_direct_compaction_drains_when_the_scanner_leaves_a_block_it_migrated_from():
    """Order-4 (pageblock) compaction: after each block it migrated from, the migrate scanner
    is past the order-aligned block, and lru_add_drain_cpu_zone() empties the CPU's lists, so
    the sources merge and compaction succeeds with none left on the lists."""
    node, pages = _full_node()
    _sources_low_targets_high(node, pages)
    z = node[0]
    rc = K.compact_zone_order(z, _cc(), 4, C.MIGRATE_MOVABLE, K.COMPACT_PRIO_SYNC_LIGHT,
                              int(z.zp[C.ZP_ZONE_IDX]), True)
    assert _migrated(node) > 0
    assert rc == K.COMPACT_SUCCESS_RESULT
    assert z.zp[C.ZP_PCP_COUNT] == 0
    assert int(z.nr_free[4:].sum()) > 0
    assert check_node(node)[0] == 0


def test_suitability_keeps_the_lowmem_reserve_of_the_requests_zone():
    """A small ZONE_DMA with free blocks of every order is compacted for (and can serve) a
    request whose highest zone is its own, but not one that may use ZONE_NORMAL: the lowmem
    reserve ZONE_NORMAL's size puts on it exceeds its free memory."""
    node = make_node(131072, 6, 4, "v6.15", dma_end=256)
    boot_node(node)
    dma = node[0]
    assert dma.zp[C.ZP_ZONE_IDX] == C.ZONE_DMA and node[-1].zp[C.ZP_ZONE_IDX] == C.ZONE_NORMAL
    assert dma.zp[C.ZP_LOWMEM_RESERVE + C.ZONE_NORMAL] > int(dma.stat[C.NR_FREE_PAGES])
    assert K.compaction_suit_allocation_order(dma, 4, C.ZONE_DMA, 0) == K.COMPACT_SUCCESS_RESULT
    assert K.compaction_suit_allocation_order(dma, 4, C.ZONE_NORMAL, 0) == K.COMPACT_SKIPPED
    assert not K.compaction_suitable(dma, 4, C.ZONE_NORMAL)
    rc = K.compact_zone_order(dma, _cc(), 4, C.MIGRATE_MOVABLE, K.COMPACT_PRIO_ASYNC, C.ZONE_NORMAL, True)
    assert rc == K.COMPACT_SKIPPED


def _holes_low_lru_high(node, pages):
    """Blocks 0-63 hold non-LRU pages with every other page free (order-0 holes); blocks 64-255
    are full of LRU pages: no free page above the first LRU page."""
    z = node[0]
    low = [p for p in pages if p < 64 * PB]
    for p in low:
        z.page_flags[p] &= C.PG_MASK ^ C.PG_LRU
    _free(node, low[::2])


def test_no_target_when_the_scanners_meet_completes_the_compaction():
    """migrate_pages() returns -ENOMEM when the free scanner met the migrate scanner:
    compact_finished() then sees them met (cached positions reset, a direct compaction marks the
    skip hints for flushing): the compaction is not contended."""
    node, pages = _full_node()
    _holes_low_lru_high(node, pages)
    z = node[0]
    z.stat[C.CACHED_MIGRATE_PFN] = 1024           # not the zone's start: a partial compaction
    rc = K.compact_zone_order(z, _cc(), 4, C.MIGRATE_MOVABLE, K.COMPACT_PRIO_SYNC_LIGHT,
                              int(z.zp[C.ZP_ZONE_IDX]), True)
    assert rc == K.COMPACT_PARTIAL_SKIPPED
    assert (z.stat[C.CACHED_MIGRATE_PFN], z.stat[C.CACHED_FREE_PFN]) == (0, 4096 - PB)   # reset
    assert z.zp[C.ZP_BLOCKSKIP_FLUSH] == 1
    assert _migrated(node) == 0


def test_a_costly_order_never_compacts_at_sync_full():
    """Blocks 0-127 full of LRU pages; blocks 128-253 UNMOVABLE, non-LRU, every other page
    free: only sync-full (which ignores block suitability) could migrate into them.
    should_compact_retry() stops a costly order at sync-light (MIN_COMPACT_COSTLY_PRIORITY), so
    the pool's order-4 request fails without migrating; the same compaction at sync-full does
    migrate."""
    node, pages = _full_node()
    z = node[0]
    high = [p for p in pages if p >= 128 * PB]
    for p in high:
        z.page_flags[p] &= C.PG_MASK ^ C.PG_LRU
    z.pb_mt[128:254] = C.MIGRATE_UNMOVABLE
    _free(node, high[::2])
    assert K.alloc_pages_gfp(node, _cc(), 4, C.MIGRATE_MOVABLE, 0, K.GFP_RETRY) == -1
    assert _migrated(node) == 0
    K.compact_zone_order(z, _cc(), 4, C.MIGRATE_MOVABLE, K.COMPACT_PRIO_SYNC_FULL,
                         int(z.zp[C.ZP_ZONE_IDX]), True)
    assert _migrated(node) > 0


def test_skip_hints_are_set_by_both_scanners_and_honoured_unless_ignored():
    node, pages = _full_node()
    _sources_low_targets_high(node, pages)
    z = node[0]
    idx = int(z.zp[C.ZP_ZONE_IDX])
    # a block with the hint is passed over by direct compaction below sync-full ...
    set_pageblock_skip(z, 0, 1)
    K.compact_zone_order(z, _cc(), 4, C.MIGRATE_MOVABLE, K.COMPACT_PRIO_SYNC_LIGHT, idx, True)
    assert z.page_flags[1] & C.PG_LRU            # its source stayed
    assert not (z.page_flags[PB + 1] & C.PG_LRU)  # the next block's was migrated
    # ... the migrate scanner marked the block it migrated from, the free scanner the block
    # it scanned to its end
    assert get_pageblock_skip(z, PB)
    assert get_pageblock_skip(z, 4096 - 3 * PB)
    # compact_memory ignores the hints
    K.compact_node(node, _cc())
    assert not (z.page_flags[1] & C.PG_LRU)


def test_skip_hints_are_reset_only_after_a_full_direct_compaction():
    """__reset_isolation_suitable() does nothing unless compact_blockskip_flush is set; then it
    clears the hint of each block where a sample (every 8th page) finds an LRU page (low half)
    or a free block (high half), and restarts the scanners at the first of each."""
    node, pages = _full_node()
    _sources_low_targets_high(node, pages)
    z = node[0]
    for b in range(0, 4096, PB):
        set_pageblock_skip(z, b, 1)
    reset_isolation_suitable_zone(z)
    assert all(get_pageblock_skip(z, b) for b in range(0, 4096, PB))
    z.zp[C.ZP_BLOCKSKIP_FLUSH] = 1
    reset_isolation_suitable_zone(z)
    assert z.zp[C.ZP_BLOCKSKIP_FLUSH] == 0
    # low half: the LRU page sits at block + 1, which the sample (block + 0, + 8) misses,
    # unless the block's first page is LRU
    assert get_pageblock_skip(z, 0)
    # high half: each block's first page is free (a free block's head): cleared; the last
    # two blocks (the unmovable allocation) keep theirs and the free scanner restarts below them
    assert not get_pageblock_skip(z, 4096 - 3 * PB)
    assert get_pageblock_skip(z, 4096 - PB)
    # no source block was found, so the scanners restart where the walks met ("leave no
    # distance"): the middle of the zone
    assert (z.stat[C.CACHED_MIGRATE_PFN], z.stat[C.CACHED_FREE_PFN]) == (2048, 2048 - PB)


def test_a_direct_compaction_whose_scanners_meet_asks_for_the_reset():
    node, pages = _full_node()
    _holes_low_lru_high(node, pages)
    z = node[0]
    K.compact_node(node, _cc())                   # not direct: no flush asked
    assert z.zp[C.ZP_BLOCKSKIP_FLUSH] == 0
    reset_cached_positions(z)
    K.compact_zone_order(z, _cc(), 4, C.MIGRATE_MOVABLE, K.COMPACT_PRIO_SYNC_LIGHT,
                         int(z.zp[C.ZP_ZONE_IDX]), False)    # kcompactd: not direct either
    assert z.zp[C.ZP_BLOCKSKIP_FLUSH] == 0
    reset_cached_positions(z)
    K.compact_zone_order(z, _cc(), 4, C.MIGRATE_MOVABLE, K.COMPACT_PRIO_SYNC_LIGHT,
                         int(z.zp[C.ZP_ZONE_IDX]), True)
    assert z.zp[C.ZP_BLOCKSKIP_FLUSH] == 1
