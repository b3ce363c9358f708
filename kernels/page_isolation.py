"""Page isolation, alloc_contig_range(), alloc_contig_pages(), CMA and memory offlining
(mm/page_isolation.c, mm/page_alloc.c, mm/cma.c, mm/memory_hotplug.c).

Two isolation regimes, selectable per zone (ZP_CONTIG_MAXORDER):
- "maxorder" (before 5.19): the range is rounded out to max(2^max_order, 2^pageblock_order) and
  every pageblock of the rounded range must be free of unmovable pages;
- "pageblock" (5.19+): pageblock granularity, only [start, end) is checked, and a free buddy
  larger than a pageblock that straddles the boundary is split (move_freepages_block_isolate).

Undoing an isolation (a failed or finished alloc_contig_range(), a failed offline) gives each
pageblock the caller's type before 6.17 (MOVABLE, or CMA for cma_alloc()), and its own type from
before the isolation from 6.17, where MIGRATE_ISOLATE is a pageblock bit of its own
(ZP_ISOLATE_RESTORE, the v6.17 policy).

Pages obtained by alloc_contig_range() are held as order-0 allocations flagged PG_CONTIG (the
kernel hands back 2^k pages of refcount 1; free_contig_range() frees them one by one).
"""

from ._jit import jit, jit_fold
from .compaction import GFP_RETRY, alloc_pages_gfp, move_block, split_folio
from .constants import (
    ALLOC_CMA, CC_SIZE, MIGRATE_CMA, MIGRATE_ISOLATE, POLICY_V5_4, ZP_CC, ZP_POLICY, MIGRATE_MOVABLE, NR_ISOLATE_PAGEBLOCK, PG_BUDDY,
    PG_CONTIG, PG_HEAD, PG_LRU, PG_PCP, PG_PINNED, PG_RESERVED, ZONE_MOVABLE,
    ZP_BOOT_TO_TAIL, ZP_CONTIG_MAXORDER, ZP_HUGETLB_SKIP, ZP_ISOLATE_RESTORE, ZP_ISO_SAVED_BASE,
    ZP_MAX_ORDER, ZP_PAGEBLOCK_ORDER,
    ZP_ZONE_END, ZP_ZONE_IDX, ZP_ZONE_START, PGALLOC, PGMIGRATE_FAIL, ZP_WMARK_MIN,
    NR_HUGETLB_DISSOLVED, NR_HUGETLB_REPLACED, HAZARD_OFFLINE_LOST, HAZARD_ONLINE_BEYOND,
)
from .page_alloc import (
    _del_page_from_free_list, _free_one_page, _free_range_boot, _move_freepages_block,
    account_freepages,
    change_pageblock_range, drain_all_pages, free_pages, get_page_from_freelist,
    fill_range, flags_in_range, get_pageblock_migratetype, page_zone, split_large_buddy,
)

# Why a contiguous allocation or an offline failed (index into a reason-count array)
CONTIG_OK = 0
FAIL_UNMOVABLE_IN_RANGE = 1    # an unmovable page inside [start, end)
FAIL_UNMOVABLE_OUTSIDE = 2     # an unmovable page outside the range, inside the isolated blocks
FAIL_HOLE = 3                  # a reserved page (hole, memblock) or an offline page
FAIL_MIGRATION = 4             # a movable page could not be migrated (pinned)
FAIL_NO_TARGET = 5             # no free memory to migrate into (-ENOMEM)
FAIL_BUSY = 6                  # already isolated, or not all free after migration
FAIL_ZONE = 7                  # the range is not inside one zone
FAIL_HUGETLB = 8               # alloc_contig_pages(): candidate holds hugetlb pages (6.3+)
FAIL_NO_RANGE = 9              # no candidate range at all (CMA area full, zone too small)
FAIL_OFFLINE_HANGS = 10        # hazard: test_pages_isolated() can never pass (a free buddy that
                               # starts before the block, or pages an earlier offline lost), and
                               # offline_pages() retries until a signal
NR_FAIL_REASONS = 11
FAIL_REASON_NAMES = ("ok", "unmovable_in_range", "unmovable_outside_range", "hole",
                     "migration_failed", "no_target_memory", "busy", "not_one_zone",
                     "hugetlb_in_range", "no_candidate", "offline_hangs")
# page_mt of a reserved page that an offline lost: a free buddy straddling the block's end was
# taken off the free lists whole by __offline_isolated_pages(), and its pages beyond the block
# are neither free, nor in use, nor offline
PAGE_MT_LOST = 255
# page_mt of a reserved page of offline (or removed) memory: pfn_to_online_page() finds no page
# there, and the pfn walkers that ask it (isolation, alloc_contig_pages()) pass over it
PAGE_MT_OFFLINE = 254

MIGRATE_RETRIES = 5


@jit_fold
def find_head(z, pfn):
    """The head of the block (free, allocated or pcp) that covers pfn, or -1."""
    f = z.page_flags[pfn]
    if f & (PG_BUDDY | PG_HEAD | PG_PCP):
        return pfn
    for k in range(1, 31):
        cand = pfn & ~((1 << k) - 1)
        if cand < z.zp[ZP_ZONE_START]:
            return -1
        if z.page_flags[cand] & (PG_BUDDY | PG_HEAD | PG_PCP) and z.page_order[cand] >= k:
            return cand
    return -1


@jit_fold
def is_hugetlb(z, pfn):
    """PageHuge() of the head at pfn: a pool page of the hugepages probe (alloc_buddy_hugetlb_folio(),
    a buddy block of order >= 1 held PG_CONTIG). Gigantic pages and CMA allocations are held as
    order-0 PG_CONTIG pages and are not."""
    f = z.page_flags[pfn]
    return (f & PG_HEAD) != 0 and (f & PG_CONTIG) != 0 and z.page_order[pfn] >= 1


@jit_fold
def pfn_to_online_page(z, pfn):
    """pfn_to_online_page(): pfn when its memory is online, -1 when it was offlined or removed
    (memory holes with a memmap are online reserved pages)."""
    if (z.page_flags[pfn] & PG_RESERVED) and z.page_mt[pfn] == PAGE_MT_OFFLINE:
        return -1
    return pfn


@jit
def walk_start(z, pfn):
    """Where a walk over [pfn, ...) begins: the head of a block that starts before pfn and covers
    it, else pfn itself."""
    h = find_head(z, pfn)
    return h if 0 <= h < pfn else pfn


@jit_fold
def has_unmovable_pages(z, start, end, mt):
    """has_unmovable_pages(): the first unmovable pfn in [start, end), or -1. Reserved pages
    (holes) count as unmovable; in ZONE_MOVABLE nothing else does; free and pcp pages and LRU
    blocks are movable, and hugetlb pages (hugepage_migration_supported() on x86-64: the folio is
    skipped whole); every other allocation (kernel, contig-held, gigantic) is not."""
    block_mt = get_pageblock_migratetype(z, start)
    if block_mt == MIGRATE_CMA:
        return -1 if mt == MIGRATE_CMA else start
    zone_movable = z.zp[ZP_ZONE_IDX] == ZONE_MOVABLE
    p = walk_start(z, start)
    while p < end:
        f = z.page_flags[p]
        if f & PG_RESERVED:
            return max(p, start)
        order = int(z.page_order[p])
        if f & (PG_BUDDY | PG_PCP):
            p += 1 << order
        elif f & PG_HEAD:
            if not zone_movable and not (f & PG_LRU) and not is_hugetlb(z, p):
                return max(p, start)
            p += 1 << order
        else:
            p += 1
    return -1


@jit_fold
def find_large_buddy(z, pfn):
    """The head of a free buddy larger than a pageblock covering pfn, or -1."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    for k in range(pb_order, z.zp[ZP_MAX_ORDER] + 1):
        cand = pfn & ~((1 << k) - 1)
        if cand < z.zp[ZP_ZONE_START]:
            return -1
        if (z.page_flags[cand] & PG_BUDDY) and z.page_order[cand] > pb_order and \
                cand + (1 << int(z.page_order[cand])) > pfn:
            return cand
    return -1


@jit
def move_freepages_block_isolate(z, block):
    """move_freepages_block_isolate() (6.10; split_free_page() in 5.19-6.9): isolate one
    pageblock; a free buddy larger than a pageblock that covers it is split into pageblock
    chunks that go back to their own pageblocks' lists."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    # before 5.19 the isolated range covers whole max-order blocks: no buddy straddles it
    buddy = -1 if z.zp[ZP_CONTIG_MAXORDER] else find_large_buddy(z, block)
    if buddy >= 0:
        order = int(z.page_order[buddy])
        mt = int(z.page_mt[buddy])
        _del_page_from_free_list(z, buddy, order, mt)
        account_freepages(z, -(1 << order), mt)
        z.pb_mt[block >> pb_order] = MIGRATE_ISOLATE
        split_large_buddy(z, buddy, order, False)
        return
    _move_freepages_block(z, block, MIGRATE_ISOLATE)
    z.pb_mt[block >> pb_order] = MIGRATE_ISOLATE


@jit_fold
def set_migratetype_isolate(z, block, check_start, check_end, mt):
    """set_migratetype_isolate(): refuse if already isolated or if [check_start, check_end)
    holds an unmovable page; else isolate. Returns -1 on success, -2 if busy, else the pfn of
    the unmovable page."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    if z.pb_mt[block >> pb_order] == MIGRATE_ISOLATE:
        return -2
    bad = has_unmovable_pages(z, check_start, check_end, mt)
    if bad >= 0:
        return bad
    move_freepages_block_isolate(z, block)
    z.stat[NR_ISOLATE_PAGEBLOCK] += 1
    return -1


@jit_fold
def unset_migratetype_isolate(z, block, mt):
    """unset_migratetype_isolate(): give the pageblock the type `mt` and its free pages back; a
    free buddy of pageblock order or more whose buddy is not isolated is freed again so it can
    merge. `mt` is the caller's MOVABLE or CMA before 6.17, the block's own type from before the
    isolation from 6.17 (undo_isolate_page_range() chooses)."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    if z.pb_mt[block >> pb_order] != MIGRATE_ISOLATE:
        return
    max_order = z.zp[ZP_MAX_ORDER]
    f = z.page_flags[block]
    if f & PG_BUDDY:
        order = int(z.page_order[block])
        if pb_order <= order < max_order:
            buddy = block ^ (1 << order)
            if (z.zp[ZP_ZONE_START] <= buddy < z.zp[ZP_ZONE_END]
                    and (z.page_flags[buddy] & PG_BUDDY) and z.page_order[buddy] == order
                    and z.pb_mt[buddy >> pb_order] != MIGRATE_ISOLATE):
                _del_page_from_free_list(z, block, order, MIGRATE_ISOLATE)
                change_pageblock_range(z, block, order, mt)
                z.stat[NR_ISOLATE_PAGEBLOCK] -= 1
                _free_one_page(z, block, order, mt, True)
                return
    _move_freepages_block(z, block, mt)
    z.pb_mt[block >> pb_order] = mt
    z.stat[NR_ISOLATE_PAGEBLOCK] -= 1


@jit_fold
def isolation_range(z, start, end):
    """The pageblock-aligned range alloc_contig_range() isolates."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    align = 1 << pb_order
    if z.zp[ZP_CONTIG_MAXORDER]:
        align = max(align, 1 << z.zp[ZP_MAX_ORDER])
    lo = start & ~(align - 1)
    hi = (end + align - 1) & ~(align - 1)
    return max(lo, z.zp[ZP_ZONE_START]), min(hi, z.zp[ZP_ZONE_END])


@jit
def start_isolate_page_range(z, start, end, mt, iso_start, iso_end):
    """start_isolate_page_range(): isolate every pageblock of [iso_start, iso_end). The unmovable
    check covers each whole pageblock: before 5.19 set_migratetype_isolate() checked its whole
    pageblock; from 5.19 isolate_single_pageblock() passes the whole boundary pageblocks, and an
    interior pageblock's intersection with [start, end) is the whole of it. Each block's type before isolation is kept (in list_head from
    zp[ZP_ISO_SAVED_BASE], by pageblock): from 6.17 isolation is a pageblock bit of its own
    (PB_migrate_isolate) and the type bits stay, so undoing restores them. Returns CONTIG_OK or a
    failure reason; undoes on failure."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    pb = 1 << pb_order
    block = iso_start
    while block < iso_end:
        if z.pb_mt[block >> pb_order] != MIGRATE_ISOLATE:
            z.list_head[z.zp[ZP_ISO_SAVED_BASE] + (block >> pb_order)] = z.pb_mt[block >> pb_order]
        lo = max(block, z.zp[ZP_ZONE_START])
        hi = min(block + pb, z.zp[ZP_ZONE_END])
        r = -1
        if lo < hi and pfn_to_online_page(z, lo) < 0:
            # __first_valid_page() finds no online page: the pageblock (offline memory, in
            # sections of at least a pageblock) is left as it is
            block += pb
            continue
        if lo < hi:
            r = set_migratetype_isolate(z, block, lo, hi, mt)
        elif z.pb_mt[block >> z.zp[ZP_PAGEBLOCK_ORDER]] == MIGRATE_ISOLATE:
            r = -2
        else:
            move_freepages_block_isolate(z, block)
            z.stat[NR_ISOLATE_PAGEBLOCK] += 1
        if r != -1:
            undo_isolate_page_range(z, iso_start, block, mt)
            if r == -2:
                return FAIL_BUSY
            if z.page_flags[r] & PG_RESERVED:
                return FAIL_HOLE
            if r < start or r >= end:
                return FAIL_UNMOVABLE_OUTSIDE
            return FAIL_UNMOVABLE_IN_RANGE
        block += pb
    return CONTIG_OK


@jit
def undo_isolate_page_range(z, iso_start, iso_end, mt):
    """undo_isolate_page_range(): each isolated pageblock gets the caller's type `mt` back
    (before 6.17), or its own type from before the isolation (6.17+)."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    restore = z.zp[ZP_ISOLATE_RESTORE] != 0
    block = iso_start
    while block < iso_end:
        own = z.list_head[z.zp[ZP_ISO_SAVED_BASE] + (block >> pb_order)]
        unset_migratetype_isolate(z, block, own if restore else mt)
        block += 1 << pb_order


@jit
def migrate_range(node, zi, start, end, offlining):
    """__alloc_contig_migrate_range() / do_migrate_range(): move every LRU block in [start, end)
    to free memory outside the isolated blocks (alloc_migration_target(): the normal allocator,
    movable). A free hugetlb page (every pool page of the model is free): offlining leaves it to
    dissolve_free_hugetlb_folios() (scan_movable_pages() finds only in-use ones);
    alloc_contig_range() replaces it from 5.13 on (isolate_or_dissolve_huge_page() ->
    alloc_and_dissolve_hugetlb_folio(): a fresh page from alloc_buddy_hugetlb_folio(),
    __GFP_RETRY_MAYFAIL, then the old one is freed into its isolated pageblock; -ENOMEM when no
    fresh page can be had), and before 5.13 does not isolate it (a compound page), so the range
    stays busy. Returns CONTIG_OK, FAIL_MIGRATION (a pinned page) or FAIL_NO_TARGET."""
    z = node[zi]
    p = walk_start(z, start)
    while p < end:
        f = z.page_flags[p]
        order = int(z.page_order[p])
        if is_hugetlb(z, p):
            if not offlining and z.zp[ZP_POLICY] != POLICY_V5_4:
                cc = z.zp[ZP_CC:ZP_CC + CC_SIZE]
                cc[:] = 0
                if alloc_pages_gfp(node, cc, order, MIGRATE_MOVABLE, PG_CONTIG, GFP_RETRY) < 0:
                    return FAIL_NO_TARGET
                z.stat[NR_HUGETLB_REPLACED] += 1
                free_pages(node, p)
            p += 1 << order
        elif (f & PG_HEAD) and (f & PG_LRU):
            if f & PG_PINNED:
                z.stat[PGMIGRATE_FAIL] += (1 << order) * MIGRATE_RETRIES
                return FAIL_MIGRATION
            dzi, dst = get_page_from_freelist(node, order, MIGRATE_MOVABLE, ZONE_MOVABLE,
                                              ZP_WMARK_MIN, ALLOC_CMA, False)
            if dst < 0 and order > 0:
                split_folio(z, p, order)       # migrate_pages(): split, migrate the base pages
                continue
            if dst < 0:
                return FAIL_NO_TARGET
            node[dzi].stat[PGALLOC] += 1 << order
            move_block(z, p, node[dzi], dst, order, False)
            p += 1 << order
        elif order >= 0:
            p += 1 << order
        else:
            p += 1
    return CONTIG_OK


@jit
def test_pages_isolated(z, start, end):
    """test_pages_isolated(): every page of [start, end) is free on an isolated list."""
    p = walk_start(z, start)
    while p < end:
        if not (z.page_flags[p] & PG_BUDDY):
            return False
        if z.page_mt[p] != MIGRATE_ISOLATE:
            return False
        p += 1 << int(z.page_order[p])
    return True


@jit_fold
def take_isolated_range(z, start, end, mt):
    """isolate_freepages_range() + the trimming of alloc_contig_range(): take [start, end) off
    the isolated free lists as order-0 pages held by the caller (PG_CONTIG); the parts of the
    outer free blocks outside the range go back to the free lists."""
    p = walk_start(z, start)
    while p < end:
        order = int(z.page_order[p])
        size = 1 << order
        _del_page_from_free_list(z, p, order, MIGRATE_ISOLATE)
        for q in range(p, p + size):
            if q < start or q >= end:
                _free_one_page(z, q, 0, MIGRATE_ISOLATE, False)
            else:
                z.page_flags[q] |= PG_HEAD | PG_CONTIG
                z.page_order[q] = 0
                z.page_mt[q] = mt
                z.next[q] = -1
        p += size
    z.stat[PGALLOC] += end - start


@jit
def alloc_contig_range(node, zi, start, end, mt):
    """alloc_contig_range(start, end, MOVABLE or CMA). Returns CONTIG_OK or a failure reason."""
    z = node[zi]
    if start < z.zp[ZP_ZONE_START] or end > z.zp[ZP_ZONE_END]:
        return FAIL_ZONE
    iso_start, iso_end = isolation_range(z, start, end)
    ret = start_isolate_page_range(z, start, end, mt, iso_start, iso_end)
    if ret != CONTIG_OK:
        return ret
    drain_all_pages(node)
    ret = migrate_range(node, zi, start, end, False)
    if ret == CONTIG_OK and not test_pages_isolated(z, start, end):
        ret = FAIL_BUSY
    if ret == CONTIG_OK:
        take_isolated_range(z, start, end, mt)
    undo_isolate_page_range(z, iso_start, iso_end, mt)
    return ret


@jit
def free_contig_range(node, start, nr_pages):
    """free_contig_range(): free the pages one by one (they merge back up)."""
    for pfn in range(start, start + nr_pages):
        free_pages(node, pfn)


@jit_fold
def pfn_range_valid_contig(z, start, end):
    """pfn_range_valid_contig(): every page online and not reserved; from 6.3 on, no hugetlb
    (here: no page held as PG_CONTIG) in the range. Returns CONTIG_OK or the reason."""
    skip_huge = z.zp[ZP_HUGETLB_SKIP] != 0
    if not (flags_in_range(z.page_flags, start, end - start) & (PG_RESERVED | PG_CONTIG)):
        return CONTIG_OK
    for p in range(start, end):
        f = z.page_flags[p]
        if f & PG_RESERVED:
            return FAIL_HOLE
        if skip_huge and (f & PG_CONTIG):
            return FAIL_HUGETLB
    return CONTIG_OK


@jit
def alloc_contig_pages(node, nr_pages, reasons):
    """alloc_contig_pages(): try naturally aligned candidate ranges of nr_pages in each zone a
    non-movable request may use (gigantic hugetlb pages are not movable allocations); count
    every failed candidate's reason. Returns the first pfn or -1."""
    for zi in range(len(node)):
        z = node[zi]
        if z.zp[ZP_ZONE_IDX] == ZONE_MOVABLE:
            continue
        pfn = (z.zp[ZP_ZONE_START] + nr_pages - 1) // nr_pages * nr_pages
        while pfn + nr_pages <= z.zp[ZP_ZONE_END]:
            r = pfn_range_valid_contig(z, pfn, pfn + nr_pages)
            if r == CONTIG_OK:
                r = alloc_contig_range(node, zi, pfn, pfn + nr_pages, MIGRATE_MOVABLE)
                if r == CONTIG_OK:
                    return pfn
            reasons[r] += 1
            pfn += nr_pages
    return -1


# ---------------------------------------------------------------------------------------------
# Memory offlining and onlining (mm/memory_hotplug.c)


@jit
def dissolve_free_hugetlb_folios(node, zi, start, end):
    """dissolve_free_hugetlb_folios(): every free hugetlb page in [start, end) leaves the pool
    (max_huge_pages--, so the pool shrinks) and its pages are freed to the buddy, here into the
    isolated pageblocks of the block going offline."""
    z = node[zi]
    p = walk_start(z, start)
    while p < end:
        order = int(z.page_order[p])
        if is_hugetlb(z, p):
            z.stat[NR_HUGETLB_DISSOLVED] += 1
            free_pages(node, p)
        p += (1 << order) if order >= 0 else 1


@jit_fold
def _is_lost(z, p):
    """Page p is one an earlier offline lost (reserved, PAGE_MT_LOST)."""
    return (z.page_flags[p] & PG_RESERVED) != 0 and z.page_mt[p] == PAGE_MT_LOST


@jit_fold
def _lost_in(z, start, end):
    """Pages in [start, end) that an earlier offline lost."""
    for p in range(start, end):
        if _is_lost(z, p):
            return True
    return False


@jit_fold
def _give_to_buddy(z, start, end):
    """generic_online_page() for [start, end): the pages lose their offline state and are freed
    in the largest naturally aligned chunks (to the tail from 5.10)."""
    fill_range(z.page_flags, start, end - start, 0)
    fill_range(z.page_order, start, end - start, -1)
    fill_range(z.page_mt, start, end - start, 0)
    _free_range_boot(z, start, end, z.zp[ZP_BOOT_TO_TAIL] != 0)


@jit
def offline_pages(node, start, nr_pages):
    """offline_pages(): a memory block with no holes, in one zone, whose pageblocks can all be
    isolated and whose movable pages can all be migrated out, goes offline: its free pages leave
    the free lists and the pages become reserved. Returns CONTIG_OK or a failure reason.
    With max_order above the block's order (a kernel the #error of include/linux/mmzone.h does
    not let build: MAX_PAGE_ORDER + PAGE_SHIFT > SECTION_SIZE_BITS, and a memory block is at least
    a section) a free buddy can straddle the block; from 5.19 isolation splits it at the block's
    pageblocks (move_freepages_block_isolate()), before it does not:
    - a free buddy that starts before the block: the block's first page is a tail, which
      test_pages_isolated() (from start_pfn exactly) never passes, and offline_pages() retries
      until a signal: FAIL_OFFLINE_HANGS, and so for a block holding pages an earlier offline lost;
    - a free buddy that starts in the block and ends beyond it: test_pages_isolated() passes and
      __offline_isolated_pages() takes it off the free list whole; its pages beyond the block are
      lost (HAZARD_OFFLINE_LOST pages: reserved with PAGE_MT_LOST, not holes)."""
    end = start + nr_pages
    zi = page_zone(node, start)
    z = node[zi]
    if end > z.zp[ZP_ZONE_END]:
        return FAIL_ZONE
    if _lost_in(z, start, end):
        return FAIL_OFFLINE_HANGS
    if flags_in_range(z.page_flags, start, nr_pages) & PG_RESERVED:
        return FAIL_HOLE
    drain_all_pages(node)
    ret = start_isolate_page_range(z, start, end, MIGRATE_MOVABLE, start, end)
    if ret != CONTIG_OK:
        return ret
    ret = migrate_range(node, zi, start, end, True)
    if ret == CONTIG_OK:
        dissolve_free_hugetlb_folios(node, zi, start, end)
    if ret == CONTIG_OK:
        h = find_head(z, start)
        if 0 <= h < start and (z.page_flags[h] & PG_BUDDY):
            ret = FAIL_OFFLINE_HANGS
        elif not test_pages_isolated(z, start, end):
            ret = FAIL_BUSY
    if ret != CONTIG_OK:
        undo_isolate_page_range(z, start, end, MIGRATE_MOVABLE)
        return ret
    # __offline_isolated_pages(): the free pages leave the zone, each buddy whole
    p = start
    while p < end:
        order = int(z.page_order[p])
        _del_page_from_free_list(z, p, order, MIGRATE_ISOLATE)
        fill_range(z.page_flags, p, 1 << order, PG_RESERVED)
        fill_range(z.page_mt, p, 1 << order, PAGE_MT_OFFLINE)
        if p + (1 << order) > end:
            fill_range(z.page_mt, end, p + (1 << order) - end, PAGE_MT_LOST)
            z.stat[HAZARD_OFFLINE_LOST] += p + (1 << order) - end
        p += 1 << order
    return CONTIG_OK


@jit
def online_pages(node, start, nr_pages):
    """online_pages(): the block's pageblocks become MOVABLE and online_pages_range() frees its
    pages to the buddy (to the tail from 5.10, FPI_TO_TAIL), in chunks of order
    min(max_order, __ffs(pfn)) from 5.10 (5.10: max_order; 6.1 and 6.12: the __ffs form), with
    no clamp at the block's end: the #error of include/linux/mmzone.h keeps a chunk inside a
    section. 5.4 took order min(max_order, get_order(pages left)), which for a block of a power of
    two pages is the block (and order 0 where the pfn is not aligned to it).
    A chunk beyond the block: the kernel frees pages that are not the block's
    (HAZARD_ONLINE_BEYOND pages). The model frees only the block, and pages beyond it that an
    earlier offline lost (the kernel's chunk gives them back); pages in use or free beyond it,
    which the kernel would free a second time, it leaves as they are."""
    zi = page_zone(node, start)
    z = node[zi]
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    max_order = z.zp[ZP_MAX_ORDER]
    end = start + nr_pages
    for b in range(start >> pb_order, (end + (1 << pb_order) - 1) >> pb_order):
        if z.pb_mt[b] == MIGRATE_ISOLATE:
            z.stat[NR_ISOLATE_PAGEBLOCK] -= 1
        z.pb_mt[b] = MIGRATE_MOVABLE
    _give_to_buddy(z, start, end)
    if z.zp[ZP_POLICY] == POLICY_V5_4:
        return
    # the kernel's chunks: the last one that starts in the block may end beyond it
    pfn = start
    reach = end
    while pfn < end:
        order = max_order
        if pfn:
            low = 0
            while not (pfn >> low) & 1:
                low += 1
            order = min(max_order, low)
        reach = max(reach, pfn + (1 << order))
        pfn += 1 << order
    reach = min(reach, z.zp[ZP_ZONE_END])
    if reach > end:
        z.stat[HAZARD_ONLINE_BEYOND] += reach - end
        p = end
        while p < reach:
            if _is_lost(z, p):
                q = p
                while q < reach and _is_lost(z, q):
                    q += 1
                _give_to_buddy(z, p, q)
                p = q
            else:
                p += 1


# ---------------------------------------------------------------------------------------------
# CMA (mm/cma.c)


@jit
def cma_alloc(node, cma_start, cma_end, count, align, bitmap, reasons):
    """cma_alloc(): the first free, `align`-aligned run of `count` pages of the CMA area whose
    alloc_contig_range(..., CMA) succeeds; on -EBUSY the next aligned start is tried. `bitmap`
    marks pages of the area handed out. Returns the pfn or -1."""
    zi = page_zone(node, cma_start)
    pos = 0
    size = cma_end - cma_start
    while pos + count <= size:
        busy = -1
        for i in range(pos, pos + count):
            if bitmap[i]:
                busy = i
        if busy >= 0:
            pos = (busy + align) // align * align
            continue
        r = alloc_contig_range(node, zi, cma_start + pos, cma_start + pos + count, MIGRATE_CMA)
        if r == CONTIG_OK:
            for i in range(pos, pos + count):
                bitmap[i] = 1
            return cma_start + pos
        reasons[r] += 1
        pos += align
    reasons[FAIL_NO_RANGE] += 1
    return -1


@jit_fold
def cma_release(node, cma_start, pfn, count, bitmap):
    free_contig_range(node, pfn, count)
    for i in range(pfn - cma_start, pfn - cma_start + count):
        bitmap[i] = 0
