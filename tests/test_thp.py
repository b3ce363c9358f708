"""THP faults by defrag mode (vma_thp_gfp_mask() and __alloc_pages_slowpath() of 6.12)."""

import numpy as np
import pytest

from farm.cell.simulate import thp_gfp
from kernels import compaction as K
from kernels import constants as C
from kernels.check import check_zone
from kernels.page_alloc import (_move_freepages_block, alloc_pages, boot_node, change_pageblock_range,
                                free_pages)
from kernels.zone import make_node

pytestmark = pytest.mark.kernels


@pytest.mark.parametrize("defrag, madvised, gfp", [
    ("always", True, K.GFP_THP), ("always", False, K.GFP_THP_NORETRY),
    ("defer", True, K.GFP_THP_DEFER), ("defer", False, K.GFP_THP_DEFER),
    ("defer+madvise", True, K.GFP_THP), ("defer+madvise", False, K.GFP_THP_DEFER),
    ("madvise", True, K.GFP_THP), ("madvise", False, K.GFP_THP_LIGHT),
    ("never", True, K.GFP_THP_LIGHT), ("never", False, K.GFP_THP_LIGHT),
])
def test_the_gfp_of_a_thp_fault(defrag, madvised, gfp):
    assert thp_gfp(defrag, madvised) == gfp


def _fragmented(unmovable_blocks):
    """16384 pages, max_order 10, pageblock_order 9: every other page of the zone allocated
    movable, so no order-9 block is free; with `unmovable_blocks` every pageblock is then typed
    Unmovable (its free pages moved along)."""
    node = make_node(1 << 14, 10, 9, "v6.15", min_free_kbytes=0)
    boot_node(node)
    z = node[0]
    pages = [alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0) for _ in range((1 << 14) - 64)]
    for i, p in enumerate(pages):
        if i % 2:
            free_pages(node, p)
    if unmovable_blocks:
        for b in range(1 << 5):
            _move_freepages_block(z, b << 9, C.MIGRATE_UNMOVABLE)
            change_pageblock_range(z, b << 9, 9, C.MIGRATE_UNMOVABLE)
    check_zone(node)
    return node


def _fault(node, gfp):
    z = node[0]
    before = z.stat.copy()
    pfn = K.alloc_pages_gfp(node, np.zeros(C.CC_SIZE, dtype=np.int64), 9, C.MIGRATE_MOVABLE, 0, gfp)
    d = z.stat - before
    return pfn, int(d[C.COMPACT_STALL]), int(d[C.COMPACT_MIGRATE_SCANNED])


@pytest.mark.parametrize("gfp", [K.GFP_THP, K.GFP_THP_NORETRY])
def test_a_fault_that_compaction_serves_at_once(gfp):
    # half the zone's pages are movable and free pages sit beside them: the first (local-node,
    # async) compaction makes an order-9 block
    pfn, stalls, _ = _fault(_fragmented(False), gfp)
    assert pfn >= 0 and stalls == 1


@pytest.mark.parametrize("gfp", [K.GFP_THP_LIGHT, K.GFP_THP_DEFER])
def test_no_direct_compaction_without_direct_reclaim(gfp):
    pfn, stalls, _ = _fault(_fragmented(False), gfp)
    assert pfn == -1 and stalls == 0


def test_failing_faults_compact_at_their_priorities():
    """Every pageblock Unmovable: async compaction takes sources only from Movable pageblocks
    (nothing to scan), so every attempt fails without deferring (only sync failures defer).
    The local-node attempt (__GFP_NORETRY): async, and as the result is neither SKIPPED nor
    DEFERRED, direct reclaim and async again (INIT_COMPACT_PRIORITY). Then the request itself:
    the same with __GFP_NORETRY; without, async and after direct reclaim sync-light
    (DEF_COMPACT_PRIORITY), which does scan the Unmovable pageblocks' pages (and finds no
    Movable pageblock to move them to), and a costly order without __GFP_RETRY_MAYFAIL stops."""
    assert _fault(_fragmented(True), K.GFP_THP_NORETRY) == (-1, 4, 0)
    pfn, stalls, scanned = _fault(_fragmented(True), K.GFP_THP)
    assert pfn == -1 and stalls == 4 and scanned > 0
