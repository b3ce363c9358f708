"""Compaction and migration (mm/compaction.c, mm/migrate.c) and the allocation slow path that
calls direct compaction (mm/page_alloc.c __alloc_pages_slowpath).

The migrate scanner walks pageblocks from the zone start up, the free scanner from the zone end
down; they meet in the middle. A migrated block keeps its attributes (requested type, order, LRU,
owner slot) at its new pfn; the old block is freed to the buddy lists.

Simplifications (see MODEL.md): one block is migrated as soon as the migrate scanner finds it
(the kernel batches up to COMPACT_CLUSTER_MAX); no pageblock skip hints, no capture, no
fast_find_migrateblock / fast_isolate_freepages (they change cost, not the reachable layout).
"""

from ._jit import jit, jit_fold
from .constants import (
    ZP_CC_BASE, ALLOC_CMA, NR_SPLIT,
    ALLOC_FAIL, ALLOC_OPS, CACHED_FREE_PFN, CACHED_MIGRATE_PFN, CC_NR_FREEPAGES,
    COMPACT_CONSIDERED, COMPACT_DEFER_SHIFT, COMPACT_DEFERRED, COMPACT_FAIL, COMPACT_FREE_SCANNED,
    COMPACT_ISOLATED, COMPACT_MIGRATE_SCANNED, COMPACT_ORDER_FAILED, COMPACT_STALL,
    COMPACT_SUCCESS, MIGRATE_CMA, MIGRATE_MOVABLE, MIGRATE_TYPES,
    PAGE_ALLOC_COSTLY_ORDER, PG_BUDDY, PG_CONTIG, PG_HEAD, PG_ISOLATED, PG_LRU,
    PG_MASK, PG_PINNED, PGMIGRATE_FAIL, PGMIGRATE_SUCCESS, ZP_COMPACT_LARGE, ZP_MAX_ORDER,
    ZP_PAGEBLOCK_ORDER, ZP_WMARK_LOW, ZP_WMARK_MIN, ZP_ZONE_END,
    ZP_ZONE_IDX, ZP_ZONE_START, ZP_LOWMEM_RESERVE, ZP_CC, CC_SIZE, HPAGE_PMD_ORDER,
    MIGRATE_UNMOVABLE, ZP_BG_PENDING, ZP_IN_BACKGROUND, ZP_KCOMPACTD_ORDER, ZP_KCOMPACTD_HIGHEST,
    ZP_PROACTIVENESS, ZP_PROACTIVE_INTERVAL, ZP_PROACTIVE_COUNTDOWN, ZP_PROACTIVE_DEFER,
    BG_KSWAPD, BG_KCOMPACTD, BG_PROACTIVE, COMPACT_DAEMON_WAKE, PROACTIVE_COMPACT,
    GFP_NO_KSWAPD, GFP_NO_DIRECT_RECLAIM, GFP_COMPACT_FIRST, ZP_PCP, CCF_IGNORE_SKIP, CCF_DIRECT, ZP_BLOCKSKIP_FLUSH,
)
from .vmstat import fill_contig_page_info
from .page_alloc import (
    _del_page_from_free_list, _free_to_buddy, _list_add, _list_add_tail, _list_del,
    account_freepages, alloc_pages, alloc_pages_fast, clear_flags_range, find_suitable_fallback, gfp_migratetype, gfp_zone, get_page_from_freelist,
    free_pages, get_pageblock_migratetype, prep_new_page, reset_cached_positions, set_flags_range,
    should_try_claim_block, free_unref_page, pcp_allowed_order, drain_pages,
    get_pageblock_skip, set_pageblock_skip, reset_isolation_suitable_zone, compaction_suitable,
    zone_watermark_ok, wmark_pages, drain_all_pages, kswapd, free_owned,
    _highest_zone_idx,
)

# enum compact_result (include/linux/compaction.h), in the kernel's order
COMPACT_NOT_SUITABLE_ZONE = 0
COMPACT_SKIPPED = 1
COMPACT_DEFERRED_RESULT = 2
COMPACT_NO_SUITABLE_PAGE = 3
COMPACT_CONTINUE = 4
COMPACT_COMPLETE = 5
COMPACT_PARTIAL_SKIPPED = 6
COMPACT_CONTENDED = 7
COMPACT_SUCCESS_RESULT = 8

# enum compact_priority
COMPACT_PRIO_SYNC_FULL = 0   # MIN_COMPACT_PRIORITY: ignores block suitability of targets
COMPACT_PRIO_SYNC_LIGHT = 1
COMPACT_PRIO_ASYNC = 2       # INIT/DEF_COMPACT_PRIORITY: sources only of the request's type

COMPACT_MAX_DEFER_SHIFT = 6

# Allocation "gfp" modes of the model's slow path
GFP_NOCOMPACT = 0   # no direct compaction (atomic, or __GFP_DIRECT_RECLAIM clear)
GFP_NORETRY = 1     # one async direct compaction (THP faults, __GFP_NORETRY)
GFP_RETRY = 2       # __GFP_RETRY_MAYFAIL: async, then escalating priorities (hugetlb pool)
GFP_THP = 3         # a THP fault with GFP_TRANSHUGE (direct compaction allowed, no __GFP_NORETRY)
GFP_THP_NORETRY = 4  # a THP fault with GFP_TRANSHUGE | __GFP_NORETRY (defrag=always, not madvised)
GFP_THP_LIGHT = 5   # a THP fault with GFP_TRANSHUGE_LIGHT: no reclaim, no compaction, no kswapd
GFP_THP_DEFER = 6   # GFP_TRANSHUGE_LIGHT | __GFP_KSWAPD_RECLAIM (defrag=defer): wakes kswapd,
                    # which wakes kcompactd

ENOMEM = -12


# ---------------------------------------------------------------------------------------------
# Deferral (compaction_deferred / defer_compaction / compaction_defer_reset)


@jit_fold
def compaction_deferred(z, order):
    if order < z.stat[COMPACT_ORDER_FAILED]:
        return False
    limit = 1 << z.stat[COMPACT_DEFER_SHIFT]
    z.stat[COMPACT_CONSIDERED] += 1
    if z.stat[COMPACT_CONSIDERED] >= limit:
        z.stat[COMPACT_CONSIDERED] = limit
        return False
    z.stat[COMPACT_DEFERRED] += 1
    return True


@jit_fold
def defer_compaction(z, order):
    z.stat[COMPACT_CONSIDERED] = 0
    z.stat[COMPACT_DEFER_SHIFT] += 1
    if order < z.stat[COMPACT_ORDER_FAILED]:
        z.stat[COMPACT_ORDER_FAILED] = order
    if z.stat[COMPACT_DEFER_SHIFT] > COMPACT_MAX_DEFER_SHIFT:
        z.stat[COMPACT_DEFER_SHIFT] = COMPACT_MAX_DEFER_SHIFT


@jit_fold
def compaction_defer_reset(z, order, alloc_success):
    if alloc_success:
        z.stat[COMPACT_CONSIDERED] = 0
        z.stat[COMPACT_DEFER_SHIFT] = 0
    if order >= z.stat[COMPACT_ORDER_FAILED]:
        z.stat[COMPACT_ORDER_FAILED] = order + 1


@jit_fold
def compaction_restarting(z, order):
    """compaction_restarting(): compaction is about to be retried after the longest deferral."""
    if order < z.stat[COMPACT_ORDER_FAILED]:
        return False
    return (z.stat[COMPACT_DEFER_SHIFT] == COMPACT_MAX_DEFER_SHIFT
            and z.stat[COMPACT_CONSIDERED] >= 1 << z.stat[COMPACT_DEFER_SHIFT])


# ---------------------------------------------------------------------------------------------
# Suitability


@jit_fold
def compaction_suit_allocation_order(z, order, highest, alloc_flags):
    """compaction_suit_allocation_order() at the min watermark: SUCCESS when the order is
    allocatable already (with the lowmem reserve of the request's highest zone index), SKIPPED
    when compaction is not suitable, else CONTINUE."""
    if zone_watermark_ok(z, order, wmark_pages(z, ZP_WMARK_MIN), alloc_flags,
                         z.zp[ZP_LOWMEM_RESERVE + highest]):
        return COMPACT_SUCCESS_RESULT
    if not compaction_suitable(z, order, highest):
        return COMPACT_SKIPPED
    return COMPACT_CONTINUE


@jit_fold
def suitable_migration_target(z, pfn, cc_order, ignore_block_suitable):
    """suitable_migration_target(): never break up a free block of the target size; only
    MOVABLE or CMA pageblocks unless block suitability is ignored (sync-full priority)."""
    if z.page_flags[pfn] & PG_BUDDY:
        order = cc_order if cc_order > 0 else z.zp[ZP_PAGEBLOCK_ORDER]
        if z.page_order[pfn] >= order:
            return False
    if ignore_block_suitable:
        return True
    mt = get_pageblock_migratetype(z, pfn)
    return mt == MIGRATE_MOVABLE or mt == MIGRATE_CMA


@jit_fold
def suitable_migration_source(z, pfn, cc_mt, async_direct):
    """suitable_migration_source(): async direct compaction only takes pages from pageblocks of
    the request's type (MOVABLE requests: MOVABLE or CMA)."""
    if not async_direct:
        return True
    mt = get_pageblock_migratetype(z, pfn)
    if cc_mt == MIGRATE_MOVABLE:
        return mt == MIGRATE_MOVABLE or mt == MIGRATE_CMA
    return mt == cc_mt


# ---------------------------------------------------------------------------------------------
# The free scanner and compaction_alloc


@jit_fold
def _cc_add(z, pfn, order, tail):
    if tail:
        _list_add_tail(z.list_head, z.list_tail, z.next, z.prev, z.zp[ZP_CC_BASE] + order, pfn)
    else:
        _list_add(z.list_head, z.list_tail, z.next, z.prev, z.zp[ZP_CC_BASE] + order, pfn)
    z.page_flags[pfn] |= PG_ISOLATED
    z.page_order[pfn] = order
    z.stat[CC_NR_FREEPAGES] += 1 << order


@jit_fold
def _cc_del(z, pfn, order):
    _list_del(z.list_head, z.list_tail, z.next, z.prev, z.zp[ZP_CC_BASE] + order, pfn)
    z.page_flags[pfn] &= PG_MASK ^ PG_ISOLATED
    z.page_order[pfn] = -1
    z.stat[CC_NR_FREEPAGES] -= 1 << order


@jit_fold
def isolate_free_page(z, pfn, order):
    """__isolate_free_page(): take a free block off its list unless that would breach the min
    watermark. Returns the pages isolated (0 or 2^order)."""
    mt = int(z.page_mt[pfn])
    if not zone_watermark_ok(z, 0, z.zp[ZP_WMARK_MIN] + (1 << order), ALLOC_CMA, 0):
        return 0
    _del_page_from_free_list(z, pfn, order, mt)
    account_freepages(z, -(1 << order), mt)
    return 1 << order


@jit
def isolate_freepages_block(z, start, end):
    """isolate_freepages_block(): isolate every free block in [start, end) onto the compaction's
    free lists (at the tail, by order); a block scanned to its end gets the skip hint
    (update_pageblock_skip()). Returns pages isolated."""
    total = 0
    p = start
    while p < end:
        z.stat[COMPACT_FREE_SCANNED] += 1
        if z.page_flags[p] & PG_BUDDY:
            order = int(z.page_order[p])
            got = isolate_free_page(z, p, order)
            if got == 0:
                break
            _cc_add(z, p, order, True)
            total += got
            p += 1 << order
        else:
            p += 1
    if p >= end:
        set_pageblock_skip(z, start, 1)
    z.stat[COMPACT_ISOLATED] += total
    return total


@jit
def isolate_freepages(z, cc):
    """isolate_freepages(): the free scanner, pageblock by pageblock from cc free_pfn down,
    stopping short of the migrate scanner's pageblock; stops after the first block that gave
    pages. Blocks with the skip hint are passed over unless the hints are ignored.
    cc = [order, migrate_pfn, free_pfn, ignore_block_suitable, ...]."""
    pb = 1 << z.zp[ZP_PAGEBLOCK_ORDER]
    block = cc[2]
    low = ((cc[1] >> z.zp[ZP_PAGEBLOCK_ORDER]) + 1) << z.zp[ZP_PAGEBLOCK_ORDER]
    zone_start = z.zp[ZP_ZONE_START]
    zone_end = z.zp[ZP_ZONE_END]
    while block >= low:
        start = max(block, zone_start)
        end = min(block + pb, zone_end)
        got = 0
        if (suitable_migration_target(z, start, cc[0], cc[3] != 0)
                and ((cc[10] & CCF_IGNORE_SKIP) or not get_pageblock_skip(z, start))):
            got = isolate_freepages_block(z, start, end)
        block -= pb
        if got:
            break
    cc[2] = block


@jit_fold
def compact_scanners_met(z, cc):
    """compact_scanners_met(): the free scanner (cc[2]) is at or below the migrate scanner's
    (cc[1]) pageblock."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    return (cc[2] >> pb_order) <= (cc[1] >> pb_order)


@jit
def compaction_alloc(z, cc, order):
    """compaction_alloc() (6.9+): the smallest isolated free block of at least `order`, split on
    demand; runs the free scanner once when there is none. Returns the pfn or -1."""
    max_order = z.zp[ZP_MAX_ORDER]
    scanned = False
    while True:
        for o in range(order, max_order + 1):
            pfn = z.list_head[z.zp[ZP_CC_BASE] + o]
            if pfn >= 0:
                _cc_del(z, pfn, o)
                while o > order:
                    o -= 1
                    _cc_add(z, pfn + (1 << o), o, False)
                return pfn
        if scanned or compact_scanners_met(z, cc):
            return -1
        isolate_freepages(z, cc)
        scanned = True


@jit_fold
def release_freepages(z):
    """release_free_list(): give the compaction's unused isolated pages back to the buddy. The
    kernel's free scanner isolates only what the pending migration needs and leaves the rest of
    the block for next time, unmarked; the model isolates a whole block, so a block that gets
    pages back loses the skip hint it was given. Returns the highest pfn given back (-1: none)."""
    top = -1
    for o in range(z.zp[ZP_MAX_ORDER] + 1):
        while z.list_head[z.zp[ZP_CC_BASE] + o] >= 0:
            pfn = z.list_head[z.zp[ZP_CC_BASE] + o]
            _cc_del(z, pfn, o)
            _free_to_buddy(z, pfn, o, False)
            set_pageblock_skip(z, pfn, 0)
            top = max(top, pfn)
    return top


# ---------------------------------------------------------------------------------------------
# Migration


@jit_fold
def move_block(zs, src, zd, dst, order, via_pcp):
    """migrate_folio(): the block at src (zone zs) now lives at dst (zone zd), which the caller
    took from the free lists; dst gets every attribute. src is freed as folio_put() frees it:
    with `via_pcp`, free_unref_page() (the running CPU's pcp lists, where it stays until a
    drain, for the orders those lists take), else straight to the buddy (alloc_contig_range()
    and offlining, whose sources lie in isolated pageblocks, which free_unref_page() sends to the
    buddy). A piece of a split folio takes src's place in its owner's ring of pieces
    (split_folio())."""
    zd.page_flags[dst] |= PG_HEAD | (zs.page_flags[src] & PG_CONTIG)
    zd.page_order[dst] = order
    zd.page_mt[dst] = zs.page_mt[src]
    slot = zs.next[src]
    zd.next[dst] = slot
    if slot >= 0:
        zs.owner[slot] = dst
        ring = zs.prev[src]
        if ring >= 0:
            q = ring
            while zs.prev[q] != src:
                q = zs.prev[q]
            zs.prev[q] = dst
            zd.prev[dst] = ring
            zs.prev[src] = -1
    bits = zs.page_flags[src] & (PG_LRU | PG_PINNED)
    if bits:
        set_flags_range(zd.page_flags, dst, 1 << order, bits)
        clear_flags_range(zs.page_flags, src, 1 << order, PG_LRU | PG_PINNED)
    zs.page_flags[src] &= PG_MASK ^ (PG_HEAD | PG_CONTIG)
    zs.page_order[src] = -1
    zs.next[src] = -1
    n = 1 << order
    zs.stat[PGMIGRATE_SUCCESS] += n
    if via_pcp and zs.zp[ZP_PCP] and pcp_allowed_order(zs, order):
        free_unref_page(zs, src, order)
    else:
        _free_to_buddy(zs, src, order, False)


@jit
def split_folio(z, pfn, order):
    """split_folio() (try_split_folio() in migrate_pages() when no target of the folio's order
    could be allocated): the allocated block at pfn becomes 2^order order-0 blocks of the same
    type and flags. An owned block's pieces keep its owner slot and are linked in a ring through
    prev[] (unused on allocated pages), so that the owner frees them all (free_owned())."""
    slot = z.next[pfn]
    mt = z.page_mt[pfn]
    last = pfn + (1 << order) - 1
    for q in range(pfn, last + 1):
        z.page_flags[q] |= PG_HEAD
        z.page_order[q] = 0
        z.page_mt[q] = mt
        z.next[q] = slot
        if slot >= 0:
            z.prev[q] = q + 1 if q < last else pfn
    z.stat[NR_SPLIT] += 1


@jit_fold
def compaction_may_isolate(z, pfn, order, cc_order):
    """Which allocated blocks the migrate scanner isolates: LRU blocks; before 6.9 only order-0
    ones (compound pages were skipped), from 6.9 on those below the target order and below a
    pageblock (skip_isolation_on_order)."""
    if not (z.page_flags[pfn] & PG_LRU):
        return False
    if order == 0:
        return True
    if not z.zp[ZP_COMPACT_LARGE]:
        return False
    if cc_order >= 0 and order >= cc_order:
        return False
    return order < z.zp[ZP_PAGEBLOCK_ORDER]


@jit
def isolate_migratepages(z, cc):
    """isolate_migratepages() + migrate_pages() for one pageblock at cc migrate_pfn. A block with
    the skip hint is passed over unless the hints are ignored; a block scanned gets the hint
    (test_and_set_skip() when it isolates, unless the hints are ignored; at its end when it
    isolated nothing). Returns the number of pages isolated, or ENOMEM when no migration target
    could be found."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    start = max(cc[1], z.zp[ZP_ZONE_START])
    end = min(((cc[1] >> pb_order) + 1) << pb_order, z.zp[ZP_ZONE_END])
    cc[1] = end
    ignore_skip = (cc[10] & CCF_IGNORE_SKIP) != 0
    if not ignore_skip and get_pageblock_skip(z, start):
        return 0
    if not suitable_migration_source(z, start, cc[4], cc[5] != 0):
        return 0
    f = z.page_flags[start]
    if (f & PG_HEAD) and z.page_order[start] >= pb_order:
        set_pageblock_skip(z, start, 1)
        return 0   # pageblock_skip_persistent(): a compound page of pageblock size or more
    isolated = 0
    p = start
    while p < end:
        z.stat[COMPACT_MIGRATE_SCANNED] += 1
        f = z.page_flags[p]
        order = int(z.page_order[p])
        if f & PG_HEAD:
            if compaction_may_isolate(z, p, order, cc[0]):
                z.stat[COMPACT_ISOLATED] += 1 << order
                if isolated == 0 and not ignore_skip:
                    set_pageblock_skip(z, start, 1)
                isolated += 1 << order      # a pinned page too: isolated, its migration fails
                if f & PG_PINNED:
                    z.stat[PGMIGRATE_FAIL] += 1 << order
                else:
                    dst = compaction_alloc(z, cc, order)
                    if dst < 0 and order > 0:
                        split_folio(z, p, order)      # its base pages are migrated next
                        continue
                    if dst < 0:
                        return ENOMEM
                    move_block(z, p, z, dst, order, True)
            p += 1 << order
        elif order >= 0:
            p += 1 << order
        else:
            p += 1
    if isolated == 0:
        set_pageblock_skip(z, start, 1)
    return isolated


@jit_fold
def compact_finished(z, cc):
    """__compact_finished()."""
    if compact_scanners_met(z, cc):
        reset_cached_positions(z)
        if cc[10] & CCF_DIRECT:
            z.zp[ZP_BLOCKSKIP_FLUSH] = 1    # kswapd clears the skip hints when it goes to sleep
        return COMPACT_COMPLETE if cc[6] else COMPACT_PARTIAL_SKIPPED
    if cc[8] > 0:
        # proactive compaction: until the zone's score is at most the low mark (cc[8])
        return COMPACT_CONTINUE if fragmentation_score_zone(z) > cc[8] else COMPACT_SUCCESS_RESULT
    order = cc[0]
    if order < 0:
        return COMPACT_CONTINUE
    mt = cc[4]
    max_order = z.zp[ZP_MAX_ORDER]
    for o in range(order, max_order + 1):
        base = o * MIGRATE_TYPES
        if z.list_head[base + mt] >= 0:
            return COMPACT_SUCCESS_RESULT
        if mt == MIGRATE_MOVABLE and z.list_head[base + MIGRATE_CMA] >= 0:
            return COMPACT_SUCCESS_RESULT
        if should_try_claim_block(z, o, mt) and find_suitable_fallback(z, o, mt) >= 0:
            return COMPACT_SUCCESS_RESULT
    return COMPACT_CONTINUE


@jit
def compact_zone(z, cc):
    """compact_zone(). cc (int64[CC_SIZE]) = [order (-1: whole zone), migrate_pfn, free_pfn,
    ignore_block_suitable, migratetype, async direct, whole_zone, result, proactive (its low
    fragmentation score mark; 0: not proactive), highest zone index of the request]."""
    order = cc[0]
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    if order >= 0 and cc[8] == 0:
        # nothing to do if the allocation would succeed, or if compaction is not suitable
        ret = compaction_suit_allocation_order(z, order, cc[9],
                                               ALLOC_CMA if cc[4] == MIGRATE_MOVABLE else 0)
        if ret != COMPACT_CONTINUE:
            cc[7] = ret
            return ret
        if compaction_restarting(z, order):
            reset_isolation_suitable_zone(z)
    if cc[6]:
        cc[1] = z.zp[ZP_ZONE_START]
        cc[2] = ((z.zp[ZP_ZONE_END] - 1) >> pb_order) << pb_order
    else:
        cc[1] = z.stat[CACHED_MIGRATE_PFN]
        cc[2] = z.stat[CACHED_FREE_PFN]
        if cc[1] == z.zp[ZP_ZONE_START] and cc[2] >= z.zp[ZP_ZONE_END] - (1 << pb_order):
            cc[6] = 1
    ret = COMPACT_CONTINUE
    last_migrated_pfn = -1
    while True:
        ret = compact_finished(z, cc)
        if ret != COMPACT_CONTINUE:
            break
        isolated = isolate_migratepages(z, cc)
        if isolated == ENOMEM:
            # migrate_pages() returns -ENOMEM when the scanners meet: compact_finished() sees it
            if not compact_scanners_met(z, cc):
                ret = COMPACT_CONTENDED
                break
            isolated = 0
        if isolated > 0:
            last_migrated_pfn = max(z.zp[ZP_ZONE_START], ((cc[1] - 1) >> pb_order) << pb_order)
        # check_drain: the migrate scanner left the order-aligned block it migrated from, so
        # the sources freed to this CPU's pcp lists are drained to merge (lru_add_drain_cpu_zone())
        if order > 0 and last_migrated_pfn >= 0 and last_migrated_pfn < (cc[1] >> order) << order:
            drain_pages(z)
            last_migrated_pfn = -1
    top = release_freepages(z)
    if ret != COMPACT_COMPLETE and ret != COMPACT_PARTIAL_SKIPPED:
        z.stat[CACHED_MIGRATE_PFN] = cc[1]
        z.stat[CACHED_FREE_PFN] = cc[2]
    if top >= 0:
        # the free scanner restarts at the highest block it gave pages back to (only upwards)
        z.stat[CACHED_FREE_PFN] = max(z.stat[CACHED_FREE_PFN], (top >> pb_order) << pb_order)
    cc[7] = ret
    return ret


@jit_fold
def compact_zone_order(z, cc, order, mt, prio, highest, direct):
    """compact_zone_order(): the compaction control of a compaction for an order; sync-full
    priority (MIN_COMPACT_PRIORITY) ignores the skip hints."""
    for i in range(cc.shape[0]):
        cc[i] = 0
    cc[0] = order
    cc[9] = highest
    cc[10] = (CCF_IGNORE_SKIP if prio == COMPACT_PRIO_SYNC_FULL else 0) | (CCF_DIRECT if direct else 0)
    cc[3] = 1 if prio == COMPACT_PRIO_SYNC_FULL else 0
    cc[4] = mt
    cc[5] = 1 if prio == COMPACT_PRIO_ASYNC else 0
    return compact_zone(z, cc)


@jit
def compact_node(node, cc):
    """compact_node() as /proc/sys/vm/compact_memory runs it: every zone, whole zone, sync."""
    for i in range(len(node)):
        z = node[i]
        for k in range(cc.shape[0]):
            cc[k] = 0
        cc[0] = -1
        cc[4] = MIGRATE_MOVABLE
        cc[6] = 1
        cc[10] = CCF_IGNORE_SKIP
        compact_zone(z, cc)


@jit
def try_to_compact_pages(node, cc, order, mt, highest, prio):
    """try_to_compact_pages(): compact each usable zone (up to `highest`, gfp_zone(), highest
    first) until one reports the allocation should succeed; defer zones whose full scans failed."""
    rc = COMPACT_SKIPPED
    for i in range(len(node) - 1, -1, -1):
        z = node[i]
        if z.zp[ZP_ZONE_IDX] > highest:
            continue
        if prio > COMPACT_PRIO_SYNC_FULL and compaction_deferred(z, order):
            rc = max(rc, COMPACT_DEFERRED_RESULT)
            continue
        status = compact_zone_order(z, cc, order, mt, prio, highest, True)
        rc = max(rc, status)
        if status == COMPACT_SUCCESS_RESULT:
            compaction_defer_reset(z, order, False)
            break
        if prio != COMPACT_PRIO_ASYNC and (status == COMPACT_COMPLETE or status == COMPACT_PARTIAL_SKIPPED):
            defer_compaction(z, order)
    return rc


@jit
def alloc_pages_direct_compact(node, cc, order, list_mt, mt, extra, prio):
    """__alloc_pages_direct_compact(): compact, then try the free lists at the min watermark."""
    rc = try_to_compact_pages(node, cc, order, list_mt, gfp_zone(mt), prio)
    if rc == COMPACT_SKIPPED:
        return -1, rc
    first = node[0]
    first.stat[COMPACT_STALL] += 1
    zi, pfn = get_page_from_freelist(node, order, list_mt, gfp_zone(mt), ZP_WMARK_MIN,
                                     ALLOC_CMA if list_mt == MIGRATE_MOVABLE else 0, False)
    if pfn >= 0:
        z = node[zi]
        prep_new_page(z, pfn, order, mt, extra)
        z.zp[ZP_BLOCKSKIP_FLUSH] = 0
        compaction_defer_reset(z, order, True)
        first.stat[COMPACT_SUCCESS] += 1
        return pfn, rc
    first.stat[COMPACT_FAIL] += 1
    return -1, rc


@jit
def _alloc_slowpath(node, cc, order, mt, extra, noretry, retry_mayfail):
    """__alloc_pages_slowpath() of a request that compacts before it reclaims (a costly order, or
    an order > 0 that is not movable): the min watermark after waking kswapd
    (alloc_pages_fast() with GFP_COMPACT_FIRST), async direct compaction (INIT_COMPACT_PRIORITY);
    with __GFP_NORETRY a SKIPPED or DEFERRED result ends it. Then the retry loop: the watermarks
    again, direct reclaim (a drain and one more try after progress: alloc_pages_fast()), and
    compaction at DEF_COMPACT_PRIORITY (sync-light), or INIT again with __GFP_NORETRY, which
    ends there, as does a costly order without __GFP_RETRY_MAYFAIL. should_compact_retry()
    lowers the priority after a failed compaction down to MIN_COMPACT_COSTLY_PRIORITY
    (sync-light) for a costly order, MIN_COMPACT_PRIORITY (sync-full, which ignores the skip
    hints) otherwise."""
    list_mt = gfp_migratetype(node, mt)
    pfn = alloc_pages_fast(node, order, mt, extra | GFP_COMPACT_FIRST)
    if pfn >= 0:
        return pfn
    pfn, rc = alloc_pages_direct_compact(node, cc, order, list_mt, mt, extra, COMPACT_PRIO_ASYNC)
    if pfn >= 0:
        return pfn
    if noretry and (rc == COMPACT_SKIPPED or rc == COMPACT_DEFERRED_RESULT):
        return -1
    prio = COMPACT_PRIO_ASYNC if noretry else COMPACT_PRIO_SYNC_LIGHT
    min_prio = COMPACT_PRIO_SYNC_LIGHT if order > PAGE_ALLOC_COSTLY_ORDER else COMPACT_PRIO_SYNC_FULL
    while True:
        pfn = alloc_pages_fast(node, order, mt, extra)
        if pfn >= 0:
            return pfn
        pfn, rc = alloc_pages_direct_compact(node, cc, order, list_mt, mt, extra, prio)
        if pfn >= 0:
            return pfn
        if noretry or (order > PAGE_ALLOC_COSTLY_ORDER and not retry_mayfail) or prio <= min_prio:
            return -1
        prio -= 1


@jit
def alloc_pages_gfp(node, cc, order, mt, extra, gfp):
    """__alloc_pages() with the slow path: fast path (low watermark), min watermark, direct
    reclaim, and for costly orders (and for any order > 0 that is not movable) when `gfp` allows
    direct compaction first (_alloc_slowpath()): GFP_NORETRY (__GFP_NORETRY) and GFP_RETRY
    (__GFP_RETRY_MAYFAIL, the hugetlb pool's). A movable request of a smaller order reclaims
    without compacting. The fast path and the min watermark wake kswapd and reclaim directly as
    alloc_pages_fast() does.
    THP faults (GFP_THP, GFP_THP_NORETRY: vma_thp_gfp_mask() with __GFP_DIRECT_RECLAIM) follow
    6.12's alloc_pages_mpol(): first a local-node attempt with __GFP_THISNODE | __GFP_NORETRY,
    then the request itself, with __GFP_NORETRY for GFP_THP_NORETRY; a costly order without
    __GFP_RETRY_MAYFAIL fails after its first retry. GFP_TRANSHUGE has no
    __GFP_KSWAPD_RECLAIM: these faults never wake kswapd.
    GFP_THP_LIGHT (GFP_TRANSHUGE_LIGHT) neither reclaims nor compacts nor wakes kswapd;
    GFP_THP_DEFER wakes kswapd (and through it kcompactd) but does nothing itself."""
    if gfp == GFP_THP_LIGHT:
        return alloc_pages(node, order, mt, extra | GFP_NO_KSWAPD | GFP_NO_DIRECT_RECLAIM)
    if gfp == GFP_THP_DEFER:
        return alloc_pages(node, order, mt, extra | GFP_NO_DIRECT_RECLAIM)
    if gfp == GFP_NOCOMPACT or order == 0:
        return alloc_pages(node, order, mt, extra)
    if gfp == GFP_THP or gfp == GFP_THP_NORETRY:
        extra |= GFP_NO_KSWAPD      # GFP_TRANSHUGE has __GFP_DIRECT_RECLAIM, not __GFP_KSWAPD_RECLAIM
    first = node[0]
    first.stat[ALLOC_OPS] += 1
    if order <= PAGE_ALLOC_COSTLY_ORDER and gfp_migratetype(node, mt) == MIGRATE_MOVABLE:
        pfn = alloc_pages_fast(node, order, mt, extra)
    elif gfp == GFP_THP or gfp == GFP_THP_NORETRY:
        pfn = _alloc_slowpath(node, cc, order, mt, extra, True, False)
        if pfn < 0:
            pfn = _alloc_slowpath(node, cc, order, mt, extra, gfp == GFP_THP_NORETRY, False)
    else:
        pfn = _alloc_slowpath(node, cc, order, mt, extra, gfp == GFP_NORETRY, gfp == GFP_RETRY)
    if pfn < 0:
        first.stat[ALLOC_FAIL] += 1
    return pfn


# ---------------------------------------------------------------------------------------------
# kcompactd: background and proactive compaction (mm/compaction.c)


@jit_fold
def extfrag_for_order(z, order):
    """extfrag_for_order(): the share (percent) of the zone's free pages not in free blocks of
    at least `order`."""
    free_pages, _, suitable = fill_contig_page_info(z.nr_free, order)
    if free_pages == 0:
        return 0
    return (free_pages - (suitable << order)) * 100 // free_pages


@jit_fold
def fragmentation_score_zone(z):
    """fragmentation_score_zone(): extfrag_for_order(COMPACTION_HPAGE_ORDER = HPAGE_PMD_ORDER)."""
    return extfrag_for_order(z, HPAGE_PMD_ORDER)


@jit
def fragmentation_score_node(node):
    """fragmentation_score_node(): the zones' scores weighted by their share of the node's
    pages (present pages: the zone spans here)."""
    total = 0
    for i in range(len(node)):
        total += node[i].zp[ZP_ZONE_END] - node[i].zp[ZP_ZONE_START]
    score = 0
    for i in range(len(node)):
        z = node[i]
        score += (z.zp[ZP_ZONE_END] - z.zp[ZP_ZONE_START]) * fragmentation_score_zone(z) // (total + 1)
    return score


@jit_fold
def fragmentation_score_wmark(proactiveness, low):
    wmark_low = max(100 - proactiveness, 5)
    return wmark_low if low else min(wmark_low + 10, 100)


@jit
def kcompactd_do_work(node, cc):
    """kcompactd_do_work(), when kcompactd_node_suitable(): compact each zone up to the zone
    index it was woken for, lowest first, for the largest order asked (sync-light, the
    migratetype of GFP_KERNEL: a free block of that order of any type it may claim ends it);
    deferred zones and zones where the order is allocatable or compaction unsuitable are
    skipped. Success resets the deferral; a full pass drains the pcp lists and defers."""
    first = node[0]
    order = first.zp[ZP_KCOMPACTD_ORDER]
    highest = first.zp[ZP_KCOMPACTD_HIGHEST]
    first.zp[ZP_KCOMPACTD_ORDER] = 0
    first.zp[ZP_KCOMPACTD_HIGHEST] = _highest_zone_idx(node)
    suitable = False
    for i in range(len(node)):
        z = node[i]
        if z.zp[ZP_ZONE_IDX] <= highest and compaction_suit_allocation_order(z, order, highest, 0) == COMPACT_CONTINUE:
            suitable = True
    if not suitable or order == 0:
        return
    first.stat[COMPACT_DAEMON_WAKE] += 1
    for i in range(len(node)):
        z = node[i]
        if z.zp[ZP_ZONE_IDX] > highest:
            continue
        if compaction_deferred(z, order):
            continue
        if compaction_suit_allocation_order(z, order, z.zp[ZP_ZONE_IDX], 0) != COMPACT_CONTINUE:
            continue
        status = compact_zone_order(z, cc, order, MIGRATE_UNMOVABLE, COMPACT_PRIO_SYNC_LIGHT, highest, False)
        if status == COMPACT_SUCCESS_RESULT:
            compaction_defer_reset(z, order, False)
        elif status == COMPACT_PARTIAL_SKIPPED or status == COMPACT_COMPLETE:
            drain_all_pages(node)
            defer_compaction(z, order)


@jit
def proactive_compact_node(node, cc):
    """kcompactd's timer (every HPAGE_FRAG_CHECK_INTERVAL_MSEC): when the node's fragmentation
    score is above the high mark (compaction_proactiveness 20: 90), compact_node(proactive):
    every zone, whole, sync-light, each until its own score is at most the low mark (80). No
    progress (the node's score did not fall) defers the next check 64 intervals
    (default_timeout << COMPACT_MAX_DEFER_SHIFT)."""
    first = node[0]
    proactiveness = first.zp[ZP_PROACTIVENESS]
    if proactiveness == 0:
        return
    if first.zp[ZP_PROACTIVE_DEFER] > 0:
        first.zp[ZP_PROACTIVE_DEFER] -= 1
        return
    prev = fragmentation_score_node(node)
    if prev <= fragmentation_score_wmark(proactiveness, False):
        return
    first.stat[PROACTIVE_COMPACT] += 1
    low = fragmentation_score_wmark(proactiveness, True)
    for i in range(len(node)):
        for k in range(cc.shape[0]):
            cc[k] = 0
        cc[0] = -1
        cc[4] = MIGRATE_UNMOVABLE
        cc[6] = 1
        cc[8] = low
        cc[10] = CCF_IGNORE_SKIP
        compact_zone(node[i], cc)
    if fragmentation_score_node(node) >= prev:
        first.zp[ZP_PROACTIVE_DEFER] = (1 << COMPACT_MAX_DEFER_SHIFT) - 1


@jit
def background(node):
    """What kswapd and kcompactd do when woken (or kcompactd's timer fires), run after the
    allocator call that woke them: the model is sequential, the kernel runs them on other CPUs
    meanwhile. kswapd may wake kcompactd in turn. A wakeup resets kcompactd's timer."""
    first = node[0]
    if first.zp[ZP_BG_PENDING] == 0 or first.zp[ZP_IN_BACKGROUND]:
        return
    first.zp[ZP_IN_BACKGROUND] = 1
    cc = first.zp[ZP_CC:ZP_CC + CC_SIZE]
    while first.zp[ZP_BG_PENDING]:
        pending = first.zp[ZP_BG_PENDING]
        if pending & BG_KSWAPD:
            first.zp[ZP_BG_PENDING] = pending ^ BG_KSWAPD
            kswapd(node)
        elif pending & BG_KCOMPACTD:
            first.zp[ZP_BG_PENDING] = pending ^ BG_KCOMPACTD
            kcompactd_do_work(node, cc)
            first.zp[ZP_PROACTIVE_COUNTDOWN] = first.zp[ZP_PROACTIVE_INTERVAL]
        else:
            first.zp[ZP_BG_PENDING] = pending ^ BG_PROACTIVE
            proactive_compact_node(node, cc)
    first.zp[ZP_IN_BACKGROUND] = 0
