"""Fragmentation metrics as mm/vmstat.c defines them: buddyinfo, pagetypeinfo, unusable and
fragmentation (extfrag) indices."""

import numpy as np
from numba import njit

from ._jit import jit, jit_fold
from .constants import MIGRATE_CMA, MIGRATE_MOVABLE, MIGRATE_TYPES, PG_HEAD, PG_RESERVED, \
    ZP_MAX_ORDER, ZP_PAGEBLOCK_ORDER, ZP_ZONE_END, ZP_ZONE_START


@njit(cache=True)
def pagetypeinfo_free(z):
    """Free blocks per (migratetype, order): the list walk of pagetypeinfo_showfree_print()."""
    nr_orders = z.zp[ZP_MAX_ORDER] + 1
    out = np.zeros((MIGRATE_TYPES, nr_orders), dtype=np.int64)
    for o in range(nr_orders):
        for mt in range(MIGRATE_TYPES):
            p = z.list_head[o * MIGRATE_TYPES + mt]
            while p >= 0:
                out[mt, o] += 1
                p = z.next[p]
    return out


@njit(cache=True)
def pagetypeinfo_blocks(z):
    """(blocks per type, mixed blocks per type). Pageblocks made only of holes are not counted.
    Mixed (page_owner's showmixedcount): a block holding an allocation whose requested type
    differs from the block's, counted under the block's type (CMA under Movable)."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    zone_start = z.zp[ZP_ZONE_START]
    nr_pages = z.zp[ZP_ZONE_END]
    nr_blocks = z.pb_mt.shape[0]
    blocks = np.zeros(MIGRATE_TYPES, dtype=np.int64)
    mixed = np.zeros(MIGRATE_TYPES, dtype=np.int64)
    is_mixed = np.zeros(nr_blocks, dtype=np.bool_)
    for b in range(zone_start >> pb_order, (nr_pages + (1 << pb_order) - 1) >> pb_order):
        start = b << pb_order
        end = min(start + (1 << pb_order), nr_pages)
        for p in range(start, end):
            if not (z.page_flags[p] & PG_RESERVED):
                blocks[z.pb_mt[b]] += 1
                break
    pfn = zone_start
    while pfn < nr_pages:
        f = z.page_flags[pfn]
        order = np.int64(z.page_order[pfn])
        if (f & PG_HEAD) != 0:
            first = pfn >> pb_order
            last = (pfn + (1 << order) - 1) >> pb_order
            for b in range(first, last + 1):
                if z.pb_mt[b] != z.page_mt[pfn]:
                    is_mixed[b] = True
            pfn += 1 << order
        elif order >= 0:
            pfn += 1 << order
        else:
            pfn += 1
    for b in range(nr_blocks):
        if is_mixed[b]:
            t = z.pb_mt[b]
            if t == MIGRATE_CMA:
                t = MIGRATE_MOVABLE
            mixed[t] += 1
    return blocks, mixed


@jit_fold
def fill_contig_page_info(nr_free, order):
    """fill_contig_page_info(): (free_pages, free_blocks_total, free_blocks_suitable)."""
    free_pages = 0
    total = 0
    suitable = 0
    for o in range(nr_free.shape[0]):
        n = int(nr_free[o])
        free_pages += n << o
        total += n
        if o >= order:
            suitable += n << (o - order)
    return free_pages, total, suitable


@jit
def fragmentation_index(nr_free, order):
    """__fragmentation_index(): in thousandths; -1000 when the order would succeed."""
    free_pages, total, suitable = fill_contig_page_info(nr_free, order)
    if total == 0:
        return 0
    if suitable:
        return -1000
    return 1000 - (1000 + free_pages * 1000 // (1 << order)) // total


def unusable_index(nr_free) -> list[int]:
    """unusable_free_index() per order, in thousandths (1000 = nothing usable)."""
    nr_free = np.asarray(nr_free, dtype=np.int64)
    out = []
    for order in range(len(nr_free)):
        free_pages, _, suitable = fill_contig_page_info(nr_free, order)
        if free_pages == 0:
            out.append(1000)
        else:
            out.append(int((free_pages - (suitable << order)) * 1000 // free_pages))
    return out


def extfrag_index(nr_free) -> list[int]:
    """fragmentation_index() for every order."""
    nr_free = np.asarray(nr_free, dtype=np.int64)
    return [int(fragmentation_index(nr_free, order)) for order in range(len(nr_free))]
