"""check_zone(): the kernel's invariants over the whole zone state (VM_BUG_ON, as one function).

Used after every step by the tests and by `farm simulate --check`. The jitted walk returns an
error code and the pfn where it found the problem; the wrapper turns that into a message.
"""

import numpy as np
from ._jit import jit

from .constants import (
    ZP_PCP_BASE, ZP_NR_CPUS, ZP_CPU, ZP_PCP_COUNT, ZP_PCP_BANKS, ZP_PCPS, PCPS_SLOTS, PCPS_UNTRACED,
    PCPS_VM_DIFF, ZP_VM_FREE, ZP_STAT_THRESHOLD,
    MERGE_HYGIENE, MERGE_PRE_5_19, MIGRATE_ISOLATE, MIGRATE_PCPTYPES, MIGRATE_TYPES,
    NR_FREE_CMA_PAGES, NR_FREE_PAGES, NR_PCP_LISTS, PCP_COUNT, PG_BUDDY, PG_HEAD, PG_PCP,
    PG_RESERVED, MIGRATE_CMA, MIGRATE_HIGHATOMIC, NR_FREE_HIGHATOMIC, HIGHATOMIC_EVER, ZP_MAX_ORDER, ZP_MERGE, ZP_PAGEBLOCK_ORDER, ZP_ZONE_END, ZP_ZONE_START,
)

ERRORS = {
    1: "free block head not naturally aligned or order above max_order",
    2: "page inside a free block is not plain (overlap with a hole, allocation or another block)",
    3: "page belongs to no block (neither free, allocated, on a pcp list nor reserved)",
    4: "free list link broken (prev/next disagree) or list holds a page that is not its free head",
    5: "nr_free[order] disagrees with the lengths of that order's lists",
    6: "NR_FREE_PAGES disagrees with the pages on non-ISOLATE free lists",
    7: "free + allocated + pcp + reserved pages do not add up to the zone",
    8: "two free buddies left unmerged where the merge rules allow a merge",
    9: "free block on a list of another type than its pageblock (freelist hygiene)",
    10: "pcp list broken or pcp count wrong",
    11: "a free page is counted on a list it is not on (head on no list)",
    12: "NR_FREE_CMA_PAGES disagrees with the pages on CMA free lists",
    13: "nr_free_highatomic disagrees with the pages on HIGHATOMIC free lists",
    14: "a piece of a split folio is not order 0 or its ring leads to a page of another owner",
    15: "the zone's NR_FREE_PAGES counter and the CPUs' vmstat diffs do not add up to the free pages, "
        "or a diff exceeds stat_threshold",
}


@jit
def _check_zone(z):
    zone_start = z.zp[ZP_ZONE_START]
    nr_pages = z.zp[ZP_ZONE_END]
    max_order = z.zp[ZP_MAX_ORDER]
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    merge = z.zp[ZP_MERGE]
    nr_free_pages = 0
    nr_free_cma = 0
    nr_free_highatomic = 0
    free_pages = 0
    used_pages = 0
    pcp_pages = 0
    reserved = 0
    nr_free_heads = 0
    pfn = zone_start
    while pfn < nr_pages:
        f = z.page_flags[pfn]
        if f & PG_RESERVED:
            if f & (PG_BUDDY | PG_HEAD | PG_PCP):
                return 2, pfn
            reserved += 1
            pfn += 1
            continue
        order = np.int64(z.page_order[pfn])
        if f & PG_BUDDY:
            if order < 0 or order > max_order or (pfn & ((1 << order) - 1)) != 0:
                return 1, pfn
            if pfn + (1 << order) > nr_pages:
                return 1, pfn
            for q in range(pfn + 1, pfn + (1 << order)):
                if z.page_flags[q] != 0:
                    return 2, q
            size = 1 << order
            free_pages += size
            nr_free_heads += 1
            mt = z.page_mt[pfn]
            if mt != MIGRATE_ISOLATE:
                nr_free_pages += size
            if mt == MIGRATE_CMA:
                nr_free_cma += size
            elif mt == MIGRATE_HIGHATOMIC:
                nr_free_highatomic += size
            # unmerged buddies
            if order < max_order:
                buddy = pfn ^ size
                if (zone_start <= buddy < nr_pages and (z.page_flags[buddy] & PG_BUDDY) != 0
                        and z.page_order[buddy] == order):
                    mergeable = True
                    if order >= pb_order and z.stat[HIGHATOMIC_EVER] > 0:
                        # an unreserved highatomic pageblock is not merged with its free buddy
                        # until something frees into it (unreserve_highatomic_pageblock())
                        mergeable = False
                    elif order >= pb_order:
                        a = z.pb_mt[pfn >> pb_order]
                        b = z.pb_mt[buddy >> pb_order]
                        if a != b:
                            if merge == MERGE_PRE_5_19:
                                mergeable = a != MIGRATE_ISOLATE and b != MIGRATE_ISOLATE
                            else:
                                mergeable = a < MIGRATE_PCPTYPES and b < MIGRATE_PCPTYPES
                    if mergeable:
                        return 8, pfn
            if merge == MERGE_HYGIENE:
                first = pfn >> pb_order
                last = (pfn + size - 1) >> pb_order
                for b in range(first, last + 1):
                    if z.pb_mt[b] != mt:
                        return 9, pfn
            pfn += size
            continue
        if f & (PG_HEAD | PG_PCP):
            if order < 0 or pfn + (1 << order) > nr_pages:
                return 3, pfn
            for q in range(pfn + 1, pfn + (1 << order)):
                if z.page_flags[q] & (PG_BUDDY | PG_HEAD | PG_PCP | PG_RESERVED):
                    return 2, q
            if f & PG_HEAD:
                used_pages += 1 << order
                ring = z.prev[pfn]
                if ring >= 0 and (order != 0 or not (z.page_flags[ring] & PG_HEAD)
                                  or z.page_order[ring] != 0 or z.next[ring] != z.next[pfn]):
                    return 14, pfn
            else:
                pcp_pages += 1 << order
            pfn += 1 << order
            continue
        return 3, pfn
    if free_pages + used_pages + pcp_pages + reserved != nr_pages - zone_start:
        return 7, -1
    if nr_free_pages != z.stat[NR_FREE_PAGES]:
        return 6, -1
    if nr_free_cma != z.stat[NR_FREE_CMA_PAGES]:
        return 12, -1
    if nr_free_highatomic != z.stat[NR_FREE_HIGHATOMIC]:
        return 13, -1
    # lists: links, membership, counts
    listed = 0
    for o in range(max_order + 1):
        n = 0
        for mt in range(MIGRATE_TYPES):
            li = o * MIGRATE_TYPES + mt
            p = z.list_head[li]
            prev = -1
            while p >= 0:
                if (z.prev[p] != prev or not (z.page_flags[p] & PG_BUDDY)
                        or z.page_order[p] != o or z.page_mt[p] != mt):
                    return 4, p
                n += 1
                if n > nr_pages - zone_start:
                    return 4, p
                prev = p
                p = z.next[p]
            if z.list_tail[li] != prev:
                return 4, prev
        if n != z.nr_free[o]:
            return 5, o
        listed += n
    if listed != nr_free_heads:
        return 11, -1
    pcp_count = 0
    untraced_all = 0
    folded = z.zp[ZP_VM_FREE]      # the zone's NR_FREE_PAGES counter, plus each CPU's diff below
    for cpu in range(z.zp[ZP_NR_CPUS]):
        d = z.zp[ZP_PCPS + cpu * PCPS_SLOTS + PCPS_VM_DIFF]
        if abs(d) > z.zp[ZP_STAT_THRESHOLD]:
            return 15, cpu
        folded += d
        # the loaded CPU's lists sit at ZP_PCP_BASE, the others' in their bank
        if cpu == z.zp[ZP_CPU]:
            base = z.zp[ZP_PCP_BASE]
            cpu_count = z.zp[ZP_PCP_COUNT]
        else:
            base = z.zp[ZP_PCP_BANKS] + cpu * NR_PCP_LISTS
            cpu_count = z.zp[ZP_PCPS + cpu * PCPS_SLOTS]
        counted = 0
        for pindex in range(NR_PCP_LISTS):
            p = z.list_head[base + pindex]
            prev = -1
            while p >= 0:
                if z.prev[p] != prev or not (z.page_flags[p] & PG_PCP):
                    return 10, p
                counted += 1 << np.int64(z.page_order[p])
                prev = p
                p = z.next[p]
            if z.list_tail[base + pindex] != prev:
                return 10, prev
        untraced = z.zp[ZP_PCPS + cpu * PCPS_SLOTS + PCPS_UNTRACED]
        if counted + untraced != cpu_count:
            return 10, -1
        pcp_count += counted
        untraced_all += untraced
    if pcp_count != pcp_pages or pcp_count + untraced_all != z.stat[PCP_COUNT]:
        return 10, -1
    if folded != z.stat[NR_FREE_PAGES]:
        return 15, -1
    return 0, -1


@jit
def check_node(node):
    """_check_zone() of every zone: the first error found."""
    for i in range(len(node)):
        code, pfn = _check_zone(node[i])
        if code:
            return code, pfn
    return 0, -1


class ZoneCorrupt(AssertionError):
    """An invariant of the buddy allocator does not hold."""


def check_zone(z) -> None:
    """Raise ZoneCorrupt naming the broken invariant and the pfn where it was found. `z` is a
    zone or a node (tuple of zones)."""
    code, pfn = check_node(z) if isinstance(z, tuple) and not hasattr(z, "_fields") else _check_zone(z)
    if code:
        where = f" at pfn {pfn}" if pfn >= 0 else ""
        raise ZoneCorrupt(f"check_zone: {ERRORS[code]}{where}")
