"""The buddy allocator: free lists, split, merge, fallback, per-cpu lists (mm/page_alloc.c).

Each function opens with the kernel function it follows. Kernel `__name` is `_name` here.
All functions take the Zone NamedTuple `z` (zone.py) and are compiled with numba; with
NUMBA_DISABLE_JIT=1 they run as plain Python (the coverage pass of the test suite).
"""

import numpy as np

from ._jit import jit, jit_fold, jit_inline
from .vmstat import fragmentation_index

from .constants import (
    ZP_PCP_BASE, MAX_SPLIT_STEPS, MAX_MERGE_STEPS, MAX_ORDERS_SCANNED,
    ALLOC_FAIL, ALLOC_OPS, FALLBACK_A, FALLBACK_B, FALLBACK_CLAIM, FALLBACK_D, FALLBACK_STEAL,
    FREE_OPS, MERGE_HYGIENE, MERGE_PRE_5_19, MERGE_STEPS, MIGRATE_CMA, MIGRATE_HIGHATOMIC,
    MIGRATE_ISOLATE, MIGRATE_MOVABLE, MIGRATE_PCPTYPES, MIGRATE_RECLAIMABLE, MIGRATE_TYPES,
    MIGRATE_UNMOVABLE, NR_FREE_CMA_PAGES, NR_FREE_PAGES, NR_PCP_LISTS, NR_STATS, ORDERS_SCANNED,
    PAGE_ALLOC_COSTLY_ORDER, PCP_COUNT, PCP_DRAINS, PCP_FREE_FACTOR, PCP_REFILLS, PG_BUDDY,
    PG_CONTIG, PG_HEAD, PG_LRU, PG_MASK, PG_PCP, PG_PINNED, PG_RESERVED, PGALLOC, PGFREE, RMQUEUE_CLAIM, RMQUEUE_CMA,
    RMQUEUE_NORMAL, RMQUEUE_STEAL, SPLIT_STEPS, WMARK_ORDERS_SCANNED, ZP_BOOT_TO_TAIL,
    ZP_FALLBACK, ZP_CLAIM_STOP, ZP_MAX_ORDER, ZP_MERGE, ZP_MOBILITY_DISABLED, ZP_PAGEBLOCK_ORDER,
    ZP_PCP, ZP_PCP_BATCH, ZP_PCP_HIGH, ZP_WMARK_LOW, ZP_WMARK_MIN, ZP_MOVE_TO_TAIL,
    ZP_PCP_THP_ORDER, NR_LOWORDER_PCP_LISTS, ZP_CMA_BALANCE, ZP_ZONE_END, ZP_ZONE_START, ZP_ZONE_IDX, ZP_LOWMEM_RESERVE, ZP_NOFRAGMENT, ZP_NODE_DMA32,
    ZONE_MOVABLE, ZONE_NORMAL, CACHED_MIGRATE_PFN, CACHED_FREE_PFN, ZP_CMA_START, ZP_CMA_END,
    NR_ISOLATE_PAGEBLOCK, NR_RESERVED_HIGHATOMIC, NR_FREE_HIGHATOMIC, GFP_ATOMIC, ALLOC_CMA,
    ALLOC_MIN_RESERVE, ALLOC_NON_BLOCK, ALLOC_HIGHATOMIC, ALLOC_RESERVES, ZP_MANAGED, HIGHATOMIC_EVER,
    ZP_PCP_RULES, ZP_PCP_HIGH_MIN, ZP_PCP_HIGH_MAX, ZP_PCP_ALLOC_FACTOR, ZP_PCP_FLAGS, ZP_BELOW_HIGH,
    ZP_WMARK_HIGH, PCP_RULES_5_4, PCP_RULES_6_1, PCP_RULES_6_7, PCP_RULES_6_16, PCP_BATCH_SCALE_MAX,
    PCPF_PREV_FREE_HIGH_ORDER, PCPF_FREE_HIGH_BATCH, ZP_VMSTAT_INTERVAL, ZP_VMSTAT_COUNTDOWN,
    ZP_NR_CPUS, ZP_CPU, ZP_PCP_COUNT, ZP_PCP_BANKS, ZP_PCPS, PCPS_SLOTS, PCPS_UNTRACED,
    PCPS_VM_DIFF, ZP_VM_FREE, ZP_STAT_THRESHOLD,
    ZP_WMARK_BOOST, ZP_BOOSTED, ZP_BOOST_FACTOR, ZP_KSWAPD, ZP_KCOMPACTD, ZP_BG_PENDING,
    ZP_KSWAPD_ORDER, ZP_KSWAPD_HIGHEST, ZP_KSWAPD_FAILURES, ZP_KCOMPACTD_ORDER, ZP_KCOMPACTD_HIGHEST,
    ZP_LRU_BASE, ZP_LRU_CAP, ZP_LRU_HEAD, ZP_LRU_TAIL, ZP_NR_FILE, ZP_PROACTIVE_INTERVAL,
    ZP_PROACTIVE_COUNTDOWN, ZP_IN_BACKGROUND, BG_KSWAPD, BG_KCOMPACTD, BG_PROACTIVE,
    MAX_RECLAIM_RETRIES, SWAP_CLUSTER_MAX, DEF_PRIORITY, PGSTEAL_KSWAPD, PGSTEAL_DIRECT, PAGEOUTRUN,
    NR_WATERMARK_BOOSTS, ALLOC_KSWAPD, GFP_NO_KSWAPD, GFP_NO_DIRECT_RECLAIM, GFP_COMPACT_FIRST,
    ZP_ISO_SAVED_BASE, ZP_BLOCKSKIP_FLUSH,
)

# ---------------------------------------------------------------------------------------------
# Intrusive doubly linked lists over the pfn-indexed next/prev arrays (include/linux/list.h)


@jit_fold
def _list_add(head, tail, nxt, prv, li, pfn):
    """list_add(): insert at the head."""
    first = head[li]
    prv[pfn] = -1
    nxt[pfn] = first
    if first >= 0:
        prv[first] = pfn
    else:
        tail[li] = pfn
    head[li] = pfn


@jit_fold
def _list_add_tail(head, tail, nxt, prv, li, pfn):
    """list_add_tail(): insert at the tail."""
    last = tail[li]
    nxt[pfn] = -1
    prv[pfn] = last
    if last >= 0:
        nxt[last] = pfn
    else:
        head[li] = pfn
    tail[li] = pfn


@jit_fold
def _list_del(head, tail, nxt, prv, li, pfn):
    """list_del()."""
    p = prv[pfn]
    n = nxt[pfn]
    if p >= 0:
        nxt[p] = n
    else:
        head[li] = n
    if n >= 0:
        prv[n] = p
    else:
        tail[li] = p
    nxt[pfn] = -1
    prv[pfn] = -1


# ---------------------------------------------------------------------------------------------
# Per-page flags over a block. The index is unsigned: with a signed one numba checks every
# access for a negative index to wrap around, which keeps LLVM from vectorising the loop (a
# 2 MiB block took 226 ns, 12 ns unsigned).


@jit_fold
def set_flags_range(flags, pfn, nr_pages, bits):
    """flags[pfn:pfn + nr_pages] |= bits."""
    base = np.uint64(pfn)
    for k in range(np.uint64(nr_pages)):
        flags[base + k] |= bits


@jit_fold
def clear_flags_range(flags, pfn, nr_pages, bits):
    """flags[pfn:pfn + nr_pages] &= ~bits."""
    base = np.uint64(pfn)
    mask = PG_MASK ^ bits
    for k in range(np.uint64(nr_pages)):
        flags[base + k] &= mask


@jit_fold
def fill_range(a, pfn, nr_pages, value):
    """a[pfn:pfn + nr_pages] = value."""
    base = np.uint64(pfn)
    for k in range(np.uint64(nr_pages)):
        a[base + k] = value


@jit_fold
def flags_in_range(flags, pfn, nr_pages):
    """The union of the flags of flags[pfn:pfn + nr_pages] (one pass without an early exit, which
    LLVM vectorises)."""
    base = np.uint64(pfn)
    acc = 0
    for k in range(np.uint64(nr_pages)):
        acc |= flags[base + k]
    return acc


# ---------------------------------------------------------------------------------------------
# Free-list primitives (6.10+ names: raw list operations apart from accounting)


@jit_fold
def get_pageblock_migratetype(z, pfn):
    """get_pfnblock_migratetype()."""
    return int(z.pb_mt[pfn >> z.zp[ZP_PAGEBLOCK_ORDER]])


@jit
def change_pageblock_range(z, pfn, order, mt):
    """change_pageblock_range(): type every pageblock a block of `order` at `pfn` covers
    (set_pageblock_migratetype() when order < pageblock_order)."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    first = pfn >> pb_order
    n = 1
    if order > pb_order:
        n = 1 << (order - pb_order)
    for b in range(first, first + n):
        z.pb_mt[b] = mt


@jit_fold
def account_freepages(z, nr_pages, mt):
    """account_freepages(): NR_FREE_PAGES excludes ISOLATE; CMA and HIGHATOMIC (6.12's
    nr_free_highatomic) are also counted apart. stat[NR_FREE_PAGES] is the exact count; what
    zone_page_state() reads (ZP_VM_FREE) gets the loaded CPU's changes as
    __mod_zone_page_state() passes them on: once their sum passes stat_threshold."""
    if mt == MIGRATE_ISOLATE:
        return
    z.stat[NR_FREE_PAGES] += nr_pages
    s = ZP_PCPS + z.zp[ZP_CPU] * PCPS_SLOTS + PCPS_VM_DIFF
    x = z.zp[s] + nr_pages
    if abs(x) > z.zp[ZP_STAT_THRESHOLD]:
        z.zp[ZP_VM_FREE] += x
        x = 0
    z.zp[s] = x
    if mt == MIGRATE_CMA:
        z.stat[NR_FREE_CMA_PAGES] += nr_pages
    elif mt == MIGRATE_HIGHATOMIC:
        z.stat[NR_FREE_HIGHATOMIC] += nr_pages


@jit_inline
def _add_to_free_list(z, pfn, order, mt, tail):
    """__add_to_free_list() + set_buddy_order(): no accounting."""
    li = order * MIGRATE_TYPES + mt
    if tail:
        _list_add_tail(z.list_head, z.list_tail, z.next, z.prev, li, pfn)
    else:
        _list_add(z.list_head, z.list_tail, z.next, z.prev, li, pfn)
    z.page_flags[pfn] |= PG_BUDDY
    z.page_order[pfn] = order
    z.page_mt[pfn] = mt
    z.nr_free[order] += 1


@jit_inline
def _del_page_from_free_list(z, pfn, order, mt):
    """__del_page_from_free_list(): unlink, clear PageBuddy; no accounting."""
    li = order * MIGRATE_TYPES + mt
    _list_del(z.list_head, z.list_tail, z.next, z.prev, li, pfn)
    z.page_flags[pfn] &= PG_MASK ^ PG_BUDDY
    z.page_order[pfn] = -1
    z.nr_free[order] -= 1


@jit
def move_to_free_list(z, pfn, order, new_mt):
    """move_to_free_list(): move a free block to the tail of another type's list (the head
    before 5.10)."""
    old_mt = int(z.page_mt[pfn])
    li_old = order * MIGRATE_TYPES + old_mt
    li_new = order * MIGRATE_TYPES + new_mt
    _list_del(z.list_head, z.list_tail, z.next, z.prev, li_old, pfn)
    if z.zp[ZP_MOVE_TO_TAIL]:
        _list_add_tail(z.list_head, z.list_tail, z.next, z.prev, li_new, pfn)
    else:
        _list_add(z.list_head, z.list_tail, z.next, z.prev, li_new, pfn)
    z.page_mt[pfn] = new_mt
    account_freepages(z, -(1 << order), old_mt)
    account_freepages(z, 1 << order, new_mt)


@jit_inline
def expand(z, pfn, low, high, mt):
    """expand(): split a block of order `high` down to `low`, upper halves to the list heads.
    Returns the number of pages put back on free lists."""
    nr_added = 0
    while high > low:
        high -= 1
        size = 1 << high
        _add_to_free_list(z, pfn + size, high, mt, False)
        nr_added += size
        z.stat[SPLIT_STEPS] += 1
    return nr_added


@jit_inline
def page_del_and_expand(z, pfn, low, high, mt):
    """page_del_and_expand(): take a free block off its list and split it for an order-`low` request."""
    _del_page_from_free_list(z, pfn, high, mt)
    nr_pages = (1 << high) - expand(z, pfn, low, high, mt)
    account_freepages(z, -nr_pages, mt)
    # The type the page was served from (6.1 set_pcppage_migratetype()); allocation overwrites it.
    z.page_mt[pfn] = mt


# ---------------------------------------------------------------------------------------------
# Allocation


@jit_inline
def _rmqueue_smallest(z, order, mt):
    """__rmqueue_smallest(): first non-empty list of `mt` from `order` up; take its head."""
    max_order = z.zp[ZP_MAX_ORDER]
    for o in range(order, max_order + 1):
        z.stat[ORDERS_SCANNED] += 1
        pfn = z.list_head[o * MIGRATE_TYPES + mt]
        if pfn < 0:
            continue
        page_del_and_expand(z, pfn, order, o, mt)
        return pfn
    return -1


@jit_fold
def _fallback_type(start_mt, i):
    """fallbacks[start_mt][i]."""
    if start_mt == MIGRATE_UNMOVABLE:
        return MIGRATE_RECLAIMABLE if i == 0 else MIGRATE_MOVABLE
    if start_mt == MIGRATE_MOVABLE:
        return MIGRATE_RECLAIMABLE if i == 0 else MIGRATE_UNMOVABLE
    return MIGRATE_UNMOVABLE if i == 0 else MIGRATE_MOVABLE


@jit
def should_try_claim_block(z, order, start_mt):
    """should_try_claim_block() (6.15) == can_steal_fallback() (<= 6.14); `order` is the buddy's."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    if order >= pb_order:
        return True
    if order >= pb_order // 2:
        return True
    if start_mt == MIGRATE_RECLAIMABLE or start_mt == MIGRATE_UNMOVABLE:
        return True
    if z.zp[ZP_MOBILITY_DISABLED]:
        return True
    return False


@jit
def find_suitable_fallback(z, order, start_mt):
    """find_suitable_fallback(): the first fallback type with a free block at `order`, or -1."""
    if start_mt >= MIGRATE_PCPTYPES or z.nr_free[order] == 0:
        return -1
    for i in range(2):
        fb = _fallback_type(start_mt, i)
        if z.list_head[order * MIGRATE_TYPES + fb] >= 0:
            return fb
    return -1


@jit
def prep_move_freepages_block(z, pfn):
    """prep_move_freepages_block(): (ok, start_pfn, free pages, movable pages) of pfn's pageblock;
    ok is False if the block is not wholly inside the zone."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    start = (pfn >> pb_order) << pb_order
    end = start + (1 << pb_order)
    if start < z.zp[ZP_ZONE_START] or end > z.zp[ZP_ZONE_END]:
        return False, start, 0, 0
    nr_free = 0
    nr_movable = 0
    p = start
    while p < end:
        f = z.page_flags[p]
        if f & PG_BUDDY:
            nr = 1 << int(z.page_order[p])
            nr_free += nr
            p += nr
            continue
        if f & PG_LRU:
            nr_movable += 1
        p += 1
    return True, start, nr_free, nr_movable


@jit
def _move_freepages_block(z, start, new_mt):
    """Move every free block of the pageblock at `start` to the tail of new_mt's lists
    (the list walk of move_freepages() / __move_freepages_block()). Returns pages moved."""
    end = min(start + (1 << z.zp[ZP_PAGEBLOCK_ORDER]), z.zp[ZP_ZONE_END])
    moved = 0
    p = start
    while p < end:
        if z.page_flags[p] & PG_BUDDY:
            order = int(z.page_order[p])
            move_to_free_list(z, p, order, new_mt)
            moved += 1 << order
            p += 1 << order
        else:
            p += 1
    return moved


@jit_fold
def _alike_pages(z, start_mt, block_mt, nr_free, nr_movable):
    if start_mt == MIGRATE_MOVABLE:
        return nr_movable
    if block_mt == MIGRATE_MOVABLE:
        return (1 << z.zp[ZP_PAGEBLOCK_ORDER]) - (nr_free + nr_movable)
    return 0


@jit
def _claim_threshold_met(z, start_mt, block_mt, nr_free, nr_movable):
    alike = _alike_pages(z, start_mt, block_mt, nr_free, nr_movable)
    half = 1 << (z.zp[ZP_PAGEBLOCK_ORDER] - 1)
    return nr_free + alike >= half or z.zp[ZP_MOBILITY_DISABLED] != 0


@jit_fold
def steal_suitable_fallback_v6_1(z, pfn, start_mt, whole_block):
    """steal_suitable_fallback() as in 5.4-6.9: move the buddy (or every free page of its block)
    to start_mt's lists, claiming the block if enough of it is free or alike."""
    order = int(z.page_order[pfn])
    old_mt = get_pageblock_migratetype(z, pfn)
    if old_mt != MIGRATE_HIGHATOMIC:
        if order >= z.zp[ZP_PAGEBLOCK_ORDER]:
            change_pageblock_range(z, pfn, order, start_mt)
            z.stat[FALLBACK_CLAIM] += 1
            move_to_free_list(z, pfn, order, start_mt)
            return
        boost_watermark(z)
        if whole_block:
            ok, start, nr_free, nr_movable = prep_move_freepages_block(z, pfn)
            if ok:
                nr_free = _move_freepages_block(z, start, start_mt)
            if ok and nr_free > 0:
                if _claim_threshold_met(z, start_mt, old_mt, nr_free, nr_movable):
                    change_pageblock_range(z, pfn, 0, start_mt)
                    z.stat[FALLBACK_CLAIM] += 1
                else:
                    z.stat[FALLBACK_STEAL] += 1
                return
    z.stat[FALLBACK_STEAL] += 1
    move_to_free_list(z, pfn, order, start_mt)


@jit_fold
def nofragment_min_order(z, order):
    """The lowest order a fallback may take: under ALLOC_NOFRAGMENT an allocation below
    pageblock_order takes only whole pageblocks ("Do not steal pages from freelists belonging
    to other pageblocks"; the zonelist is walked again without the flag if that fails)."""
    if z.zp[ZP_NOFRAGMENT] and order < z.zp[ZP_PAGEBLOCK_ORDER]:
        return z.zp[ZP_PAGEBLOCK_ORDER]
    return order


@jit_fold
def _fallback_search(z, order, start_mt):
    """The search of __rmqueue_fallback() (<= 6.14): largest order first; a movable request that
    may not steal the block falls back to the smallest suitable order. Returns (order, type, can_steal)."""
    max_order = z.zp[ZP_MAX_ORDER]
    for o in range(max_order, nofragment_min_order(z, order) - 1, -1):
        z.stat[ORDERS_SCANNED] += 1
        fb = find_suitable_fallback(z, o, start_mt)
        if fb < 0:
            continue
        can_steal = should_try_claim_block(z, o, start_mt)
        if not can_steal and start_mt == MIGRATE_MOVABLE and o > order:
            for o2 in range(order, max_order + 1):
                z.stat[ORDERS_SCANNED] += 1
                fb = find_suitable_fallback(z, o2, start_mt)
                if fb >= 0:
                    return o2, fb, should_try_claim_block(z, o2, start_mt)
            return -1, -1, False
        return o, fb, can_steal
    return -1, -1, False


@jit_fold
def _rmqueue_fallback_v6_1(z, order, start_mt):
    """__rmqueue_fallback() 5.4-6.9: returns True when pages were moved to start_mt's lists."""
    o, fb, can_steal = _fallback_search(z, order, start_mt)
    if o < 0:
        return False
    pfn = z.list_head[o * MIGRATE_TYPES + fb]
    steal_suitable_fallback_v6_1(z, pfn, start_mt, can_steal)
    return True


@jit_fold
def steal_suitable_fallback_v6_10(z, pfn, current_order, order, start_mt, whole_block):
    """steal_suitable_fallback() 6.10-6.13 (freelist hygiene): claim the whole block, or take only
    the requested chunk and leave the remainder on the block's own type."""
    block_mt = get_pageblock_migratetype(z, pfn)
    if block_mt != MIGRATE_HIGHATOMIC:
        if current_order >= z.zp[ZP_PAGEBLOCK_ORDER]:
            _del_page_from_free_list(z, pfn, current_order, block_mt)
            account_freepages(z, -(1 << current_order), block_mt)
            change_pageblock_range(z, pfn, current_order, start_mt)
            nr_added = expand(z, pfn, order, current_order, start_mt)
            account_freepages(z, nr_added, start_mt)
            z.stat[FALLBACK_CLAIM] += 1
            return pfn
        boost_watermark(z)
        if whole_block:
            ok, start, nr_free, nr_movable = prep_move_freepages_block(z, pfn)
            if ok and _claim_threshold_met(z, start_mt, block_mt, nr_free, nr_movable):
                _move_freepages_block(z, start, start_mt)
                change_pageblock_range(z, start, 0, start_mt)
                z.stat[FALLBACK_CLAIM] += 1
                return _rmqueue_smallest(z, order, start_mt)
    page_del_and_expand(z, pfn, order, current_order, block_mt)
    z.stat[FALLBACK_STEAL] += 1
    return pfn


@jit_fold
def _rmqueue_fallback_v6_10(z, order, start_mt):
    """__rmqueue_fallback() 6.10-6.13."""
    o, fb, can_steal = _fallback_search(z, order, start_mt)
    if o < 0:
        return -1
    pfn = z.list_head[o * MIGRATE_TYPES + fb]
    return steal_suitable_fallback_v6_10(z, pfn, o, order, start_mt, can_steal)


@jit_fold
def try_to_claim_block(z, pfn, current_order, order, start_mt, block_mt):
    """try_to_claim_block() (6.15): take the whole block or nothing."""
    if current_order >= z.zp[ZP_PAGEBLOCK_ORDER]:
        _del_page_from_free_list(z, pfn, current_order, block_mt)
        account_freepages(z, -(1 << current_order), block_mt)
        change_pageblock_range(z, pfn, current_order, start_mt)
        nr_added = expand(z, pfn, order, current_order, start_mt)
        account_freepages(z, nr_added, start_mt)
        z.stat[FALLBACK_CLAIM] += 1
        return pfn
    boost_watermark(z)
    ok, start, nr_free, nr_movable = prep_move_freepages_block(z, pfn)
    if not ok:
        return -1
    if _claim_threshold_met(z, start_mt, block_mt, nr_free, nr_movable):
        _move_freepages_block(z, start, start_mt)
        change_pageblock_range(z, start, 0, start_mt)
        z.stat[FALLBACK_CLAIM] += 1
        return _rmqueue_smallest(z, order, start_mt)
    return -1


@jit_fold
def _rmqueue_claim(z, order, start_mt):
    """__rmqueue_claim() (6.15): largest order first, stop at an order too low to claim. 6.15
    looks for a fallback block first and stops only at a too-low order that has one (an order
    without one is skipped: `if (fallback_mt == -1) continue; if (!claim_block) break;`); from
    6.16 find_suitable_fallback() returns -2 for a too-low order before it looks, and the loop
    stops at the first one ("advanced into orders too low to claim, abort")."""
    max_order = z.zp[ZP_MAX_ORDER]
    stop_first = z.zp[ZP_CLAIM_STOP]
    for o in range(max_order, nofragment_min_order(z, order) - 1, -1):
        z.stat[ORDERS_SCANNED] += 1
        claimable = should_try_claim_block(z, o, start_mt)
        if stop_first and not claimable:
            break
        fb = find_suitable_fallback(z, o, start_mt)
        if fb < 0:
            continue
        if not claimable:
            break
        pfn = z.list_head[o * MIGRATE_TYPES + fb]
        pfn = try_to_claim_block(z, pfn, o, order, start_mt, fb)
        if pfn >= 0:
            return pfn
    return -1


@jit_fold
def _rmqueue_steal(z, order, start_mt):
    """__rmqueue_steal() (6.15): smallest fallback block; the remainder stays on its own type."""
    max_order = z.zp[ZP_MAX_ORDER]
    for o in range(order, max_order + 1):
        z.stat[ORDERS_SCANNED] += 1
        fb = find_suitable_fallback(z, o, start_mt)
        if fb < 0:
            continue
        pfn = z.list_head[o * MIGRATE_TYPES + fb]
        page_del_and_expand(z, pfn, order, o, fb)
        z.stat[FALLBACK_STEAL] += 1
        return pfn
    return -1


@jit_fold
def _rmqueue(z, order, mt, alloc_cma, mode):
    """__rmqueue(): returns (pfn or -1, rmqueue_mode). `mode` is only used by the 6.15 policy.
    The usual first try, the requested type's own lists, is inlined; the rest is _rmqueue_slow."""
    if not (alloc_cma and z.zp[ZP_CMA_BALANCE] and z.stat[NR_FREE_CMA_PAGES] > z.stat[NR_FREE_PAGES] // 2):
        if z.zp[ZP_FALLBACK] != FALLBACK_D or mode == RMQUEUE_NORMAL:
            pfn = _rmqueue_smallest(z, order, mt)
            if pfn >= 0:
                return pfn, mode
            return _rmqueue_slow(z, order, mt, alloc_cma, mode, True)
    return _rmqueue_slow(z, order, mt, alloc_cma, mode, False)


@jit
def _rmqueue_slow(z, order, mt, alloc_cma, mode, tried):
    """The rest of __rmqueue(), after `_rmqueue_smallest(order, mt)` found nothing (`tried`),
    or all of it (CMA balancing first)."""
    if not tried and alloc_cma and z.zp[ZP_CMA_BALANCE] and z.stat[NR_FREE_CMA_PAGES] > z.stat[NR_FREE_PAGES] // 2:
        pfn = _rmqueue_smallest(z, order, MIGRATE_CMA)
        if pfn >= 0:
            return pfn, mode
    fallback = z.zp[ZP_FALLBACK]
    if fallback == FALLBACK_D:
        if mode == RMQUEUE_NORMAL and not tried:
            pfn = _rmqueue_smallest(z, order, mt)
            if pfn >= 0:
                return pfn, mode
        if mode <= RMQUEUE_CMA and alloc_cma:
            pfn = _rmqueue_smallest(z, order, MIGRATE_CMA)
            if pfn >= 0:
                return pfn, RMQUEUE_CMA
        if mode <= RMQUEUE_CLAIM:
            pfn = _rmqueue_claim(z, order, mt)
            if pfn >= 0:
                return pfn, RMQUEUE_NORMAL
        if z.zp[ZP_NOFRAGMENT]:
            return -1, mode
        pfn = _rmqueue_steal(z, order, mt)
        if pfn >= 0:
            return pfn, RMQUEUE_STEAL
        return -1, mode
    while True:
        if not tried:
            pfn = _rmqueue_smallest(z, order, mt)
            if pfn >= 0:
                return pfn, mode
        tried = False
        if alloc_cma:
            pfn = _rmqueue_smallest(z, order, MIGRATE_CMA)
            if pfn >= 0:
                return pfn, mode
        if fallback == FALLBACK_B:
            return _rmqueue_fallback_v6_10(z, order, mt), mode
        if not _rmqueue_fallback_v6_1(z, order, mt):
            return -1, mode


@jit_inline
def zone_watermark_ok(z, order, mark, alloc_flags, lowmem_reserve):
    """zone_watermark_ok() / zone_watermark_fast(): __zone_watermark_ok() of the free pages
    zone_page_state() reads (ZP_VM_FREE, the per-cpu vmstat diffs not yet folded in)."""
    return _watermark_ok(z, z.zp[ZP_VM_FREE], order, mark, alloc_flags, lowmem_reserve)


@jit_fold
def zone_watermark_ok_safe(z, order, mark, alloc_flags, lowmem_reserve):
    """zone_watermark_ok_safe() (and zone_page_state_snapshot() readers): the exact count of
    free pages, the CPUs' diffs included (the kernel takes the snapshot below the zone's
    percpu_drift_mark, where it can matter)."""
    return _watermark_ok(z, z.stat[NR_FREE_PAGES], order, mark, alloc_flags, lowmem_reserve)


@jit_fold
def _watermark_ok(z, free_pages, order, mark, alloc_flags, lowmem_reserve):
    """__zone_watermark_ok(): free pages less those the request may not use (the highatomic
    reserve without ALLOC_RESERVES: 6.12 its free pages, 6.1 all it reserved; CMA without
    ALLOC_CMA) above mark + lowmem_reserve, the mark lowered for __GFP_HIGH and non-blocking
    requests; for order > 0 also a free block of a usable type."""
    free = free_pages - ((1 << order) - 1)
    alloc_cma = alloc_flags & ALLOC_CMA
    if alloc_flags & ALLOC_RESERVES:
        if alloc_flags & ALLOC_MIN_RESERVE:
            mark -= mark // 2
            if alloc_flags & ALLOC_NON_BLOCK:
                mark -= mark // 4
    elif z.zp[ZP_MERGE] == MERGE_HYGIENE:
        free -= z.stat[NR_FREE_HIGHATOMIC]
    else:
        free -= z.stat[NR_RESERVED_HIGHATOMIC]
    if not alloc_cma:
        free -= z.stat[NR_FREE_CMA_PAGES]
    if free <= mark + lowmem_reserve:
        return False
    if order == 0:
        return True
    max_order = z.zp[ZP_MAX_ORDER]
    for o in range(order, max_order + 1):
        z.stat[WMARK_ORDERS_SCANNED] += 1
        if z.nr_free[o] == 0:
            continue
        base = o * MIGRATE_TYPES
        for mt in range(MIGRATE_PCPTYPES):
            if z.list_head[base + mt] >= 0:
                return True
        if alloc_cma and z.list_head[base + MIGRATE_CMA] >= 0:
            return True
        if (alloc_flags & ALLOC_HIGHATOMIC) and z.list_head[base + MIGRATE_HIGHATOMIC] >= 0:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# Per-cpu page lists (one CPU, 6.1 rules)


@jit_fold
def pcp_allowed_order(z, order):
    """pcp_allowed_order(): orders <= PAGE_ALLOC_COSTLY_ORDER and the THP order (pageblock_order
    up to 6.1, HPAGE_PMD_ORDER since); order 0 only before 5.13."""
    thp = z.zp[ZP_PCP_THP_ORDER]
    if not thp:
        return order == 0
    return order <= PAGE_ALLOC_COSTLY_ORDER or order == thp


@jit
def order_to_pindex(order, mt):
    """order_to_pindex(): order x pcp migratetype; THP: one list for MOVABLE, one for the rest."""
    if order > PAGE_ALLOC_COSTLY_ORDER:
        return NR_LOWORDER_PCP_LISTS + (1 if mt == MIGRATE_MOVABLE else 0)
    return order * MIGRATE_PCPTYPES + mt


@jit_fold
def pindex_to_order(z, pindex):
    if pindex >= NR_LOWORDER_PCP_LISTS:
        return z.zp[ZP_PCP_THP_ORDER]
    return pindex // MIGRATE_PCPTYPES


@jit_fold
def _pcp_del(z, pindex, pfn):
    _list_del(z.list_head, z.list_tail, z.next, z.prev, z.zp[ZP_PCP_BASE] + pindex, pfn)
    z.page_flags[pfn] &= PG_MASK ^ PG_PCP
    z.page_order[pfn] = -1
    nr = 1 << pindex_to_order(z, pindex)
    z.stat[PCP_COUNT] -= nr
    z.zp[ZP_PCP_COUNT] -= nr


@jit_fold
def rmqueue_bulk(z, order, count, pindex, mt, alloc_cma):
    """rmqueue_bulk(): refill a pcp list with `count` blocks, appended at the tail; one
    rmqueue_mode kept across the batch (6.15)."""
    mode = RMQUEUE_NORMAL
    allocated = 0
    z.stat[PCP_REFILLS] += 1
    for _ in range(count):
        pfn, mode = _rmqueue(z, order, mt, alloc_cma, mode)
        if pfn < 0:
            break
        _list_add_tail(z.list_head, z.list_tail, z.next, z.prev, z.zp[ZP_PCP_BASE] + pindex, pfn)
        z.page_flags[pfn] |= PG_PCP
        z.page_order[pfn] = order
        allocated += 1
    z.stat[PCP_COUNT] += allocated << order
    z.zp[ZP_PCP_COUNT] += allocated << order
    return allocated


@jit_fold
def nr_pcp_alloc(z, order):
    """nr_pcp_alloc() (6.7+): how many blocks a refill takes. Order-0 refills grow to
    batch << alloc_factor while allocations go on without frees, and each refill raises high
    by the batch (up to high_max) unless the zone is below its high watermark."""
    base_batch = z.zp[ZP_PCP_BATCH]
    high_min = z.zp[ZP_PCP_HIGH_MIN]
    high_max = z.zp[ZP_PCP_HIGH_MAX]
    high = min(max(z.zp[ZP_PCP_HIGH], high_min), high_max)
    z.zp[ZP_PCP_HIGH] = high
    if high < base_batch:
        return 1
    batch = base_batch if order else base_batch << z.zp[ZP_PCP_ALLOC_FACTOR]
    if high_min != high_max and not z.zp[ZP_BELOW_HIGH]:
        high = min(high + batch, high_max)
        z.zp[ZP_PCP_HIGH] = high
    if not order:
        max_nr_alloc = max(high - z.zp[ZP_PCP_COUNT] - base_batch, base_batch)
        if batch <= max_nr_alloc and z.zp[ZP_PCP_ALLOC_FACTOR] < PCP_BATCH_SCALE_MAX:
            z.zp[ZP_PCP_ALLOC_FACTOR] += 1
        batch = min(batch, max_nr_alloc)
    if batch > 1:
        batch = max(batch >> order, 2)
    return batch


@jit_fold
def _rmqueue_pcplist(z, order, mt, alloc_cma):
    """rmqueue_pcplist() / __rmqueue_pcplist(): refill an empty list, take its head."""
    pindex = order_to_pindex(order, mt)
    rules = z.zp[ZP_PCP_RULES]
    if rules != PCP_RULES_5_4:
        z.stat[PCP_FREE_FACTOR] >>= 1     # 6.1 free_factor, 6.7+ free_count
    if z.list_head[z.zp[ZP_PCP_BASE] + pindex] < 0:
        if rules >= PCP_RULES_6_7:
            batch = nr_pcp_alloc(z, order)
        else:
            batch = z.zp[ZP_PCP_BATCH]
            if batch > 1:
                batch = max(batch >> order, 2)
        rmqueue_bulk(z, order, batch, pindex, mt, alloc_cma)
    pfn = z.list_head[z.zp[ZP_PCP_BASE] + pindex]
    if pfn >= 0:
        _pcp_del(z, pindex, pfn)
    return pfn


@jit_fold
def _pcp_drain_one(z, pindex, recorded):
    """Take the coldest (tail) block off a pcp list and free it to the buddy lists. The type:
    `recorded` (<= 6.9 with no isolated pageblock in the zone) the one recorded with the page,
    else the pageblock's current type."""
    pfn = z.list_tail[z.zp[ZP_PCP_BASE] + pindex]
    mt = int(z.page_mt[pfn]) if recorded else get_pageblock_migratetype(z, pfn)
    _pcp_del(z, pindex, pfn)
    _free_one_page(z, pfn, pindex_to_order(z, pindex), mt, False)


@jit_fold
def pcp_untraced(z):
    """Pages in the loaded CPU's pcp count that no list of the model holds (PCPS_UNTRACED)."""
    return z.zp[ZP_PCPS + z.zp[ZP_CPU] * PCPS_SLOTS + PCPS_UNTRACED]


@jit_fold
def _free_pcppages_bulk(z, count, pindex):
    """free_pcppages_bulk(): round-robin over the lists from `pindex`, coldest (tail) pages first
    (5.13+); 5.4: over the three order-0 lists from MOVABLE, taking one more page from each
    list for every empty list passed (batch_free)."""
    count = min(count, z.zp[ZP_PCP_COUNT] - pcp_untraced(z))
    z.stat[PCP_DRAINS] += 1
    # <= 6.9: the type recorded with each page, unless the zone has isolated pageblocks
    # (has_isolate_pageblock(): "Pageblock could have been isolated meanwhile"); 6.10+: always
    # the pageblock's type
    recorded = z.zp[ZP_FALLBACK] == FALLBACK_A and z.stat[NR_ISOLATE_PAGEBLOCK] == 0
    if z.zp[ZP_PCP_RULES] == PCP_RULES_5_4:
        mt = 0
        batch_free = 0
        while count > 0:
            while True:
                batch_free += 1
                mt += 1
                if mt == MIGRATE_PCPTYPES:
                    mt = 0
                if z.list_head[z.zp[ZP_PCP_BASE] + mt] >= 0:
                    break
            if batch_free == MIGRATE_PCPTYPES:
                batch_free = count      # the only non-empty list: free from it alone
            while True:
                _pcp_drain_one(z, mt, recorded)
                count -= 1
                batch_free -= 1
                if count == 0 or batch_free == 0 or z.list_head[z.zp[ZP_PCP_BASE] + mt] < 0:
                    break
        return
    pindex -= 1
    while count > 0:
        while True:
            pindex += 1
            if pindex > NR_PCP_LISTS - 1:
                pindex = 0
            if z.list_head[z.zp[ZP_PCP_BASE] + pindex] >= 0:
                break
        order = pindex_to_order(z, pindex)
        while True:
            _pcp_drain_one(z, pindex, recorded)
            count -= 1 << order
            if count <= 0 or z.list_head[z.zp[ZP_PCP_BASE] + pindex] < 0:
                break


@jit_fold
def nr_pcp_free(z, high, batch, free_high):
    """nr_pcp_free(): how many pages to give back. 6.1: doubling with free_factor while frees
    continue (free_high: all); 6.7+: free_count clamped to [batch, high - batch] (free_high:
    up to batch << PCP_BATCH_SCALE_MAX)."""
    new_rules = z.zp[ZP_PCP_RULES] >= PCP_RULES_6_7
    if free_high:
        if new_rules:
            return min(z.zp[ZP_PCP_COUNT], batch << PCP_BATCH_SCALE_MAX)
        return z.zp[ZP_PCP_COUNT]
    if high < batch:
        return 1
    min_nr_free = batch
    max_nr_free = high - batch
    if new_rules:
        return min(max(z.stat[PCP_FREE_FACTOR], min_nr_free), max_nr_free)
    batch <<= z.stat[PCP_FREE_FACTOR]
    if batch < max_nr_free:
        z.stat[PCP_FREE_FACTOR] += 1
    return min(max(batch, min_nr_free), max_nr_free)


@jit_fold
def nr_pcp_high(z, batch, free_high):
    """nr_pcp_high() (6.7+, no reclaim in the model): clamp high into [high_min, high_max];
    below the high watermark shrink it by the pages being freed; a full list grows it to hold
    free_count + batch."""
    high_min = z.zp[ZP_PCP_HIGH_MIN]
    high_max = z.zp[ZP_PCP_HIGH_MAX]
    high = min(max(z.zp[ZP_PCP_HIGH], high_min), high_max)
    z.zp[ZP_PCP_HIGH] = high
    if high == 0:
        return 0
    if free_high:
        z.zp[ZP_PCP_HIGH] = max(high - (batch << PCP_BATCH_SCALE_MAX), high_min)
        return 0
    if high_min == high_max:
        return high
    free_count = z.stat[PCP_FREE_FACTOR]
    if z.zp[ZP_BELOW_HIGH]:
        z.zp[ZP_PCP_HIGH] = max(high - max(free_count, batch), high_min)
        high = max(z.zp[ZP_PCP_COUNT], high_min)
    elif z.zp[ZP_PCP_COUNT] >= high:
        need_high = free_count + batch
        if high < need_high:
            z.zp[ZP_PCP_HIGH] = min(max(need_high, high_min), high_max)
    return high


@jit_fold
def _free_high_v6_7(z, order, batch):
    """free_unref_page_commit() (6.7+): is this a run of high-order frees to drain at once?"""
    flags = z.zp[ZP_PCP_FLAGS]
    free_high = False
    if order and order <= PAGE_ALLOC_COSTLY_ORDER:
        threshold = batch
        if z.zp[ZP_PCP_RULES] >= PCP_RULES_6_16:
            threshold = batch + z.zp[ZP_PCP_HIGH_MIN] // 2
        free_high = (z.stat[PCP_FREE_FACTOR] >= threshold
                     and (flags & PCPF_PREV_FREE_HIGH_ORDER) != 0
                     and ((flags & PCPF_FREE_HIGH_BATCH) == 0 or z.zp[ZP_PCP_COUNT] >= batch))
        z.zp[ZP_PCP_FLAGS] = flags | PCPF_PREV_FREE_HIGH_ORDER
    elif flags & PCPF_PREV_FREE_HIGH_ORDER:
        z.zp[ZP_PCP_FLAGS] = flags ^ PCPF_PREV_FREE_HIGH_ORDER
    if z.stat[PCP_FREE_FACTOR] < (batch << PCP_BATCH_SCALE_MAX):
        z.stat[PCP_FREE_FACTOR] += 1 << order
    return free_high


@jit
def free_unref_page(z, pfn, order):
    """free_unref_page() + free_unref_page_commit(), by the zone's pcp rules."""
    mt = get_pageblock_migratetype(z, pfn)
    if mt >= MIGRATE_PCPTYPES:
        if mt == MIGRATE_ISOLATE:
            _free_to_buddy(z, pfn, order, False)
            return
    z.page_mt[pfn] = mt
    if mt >= MIGRATE_PCPTYPES:
        mt = MIGRATE_MOVABLE
    rules = z.zp[ZP_PCP_RULES]
    if rules >= PCP_RULES_6_7:
        z.zp[ZP_PCP_ALLOC_FACTOR] >>= 1
    pindex = order_to_pindex(order, mt)
    _list_add(z.list_head, z.list_tail, z.next, z.prev, z.zp[ZP_PCP_BASE] + pindex, pfn)
    z.page_flags[pfn] |= PG_PCP
    z.page_order[pfn] = order
    z.stat[PCP_COUNT] += 1 << order
    z.zp[ZP_PCP_COUNT] += 1 << order
    batch = z.zp[ZP_PCP_BATCH]
    if rules == PCP_RULES_5_4:
        if z.zp[ZP_PCP_COUNT] >= z.zp[ZP_PCP_HIGH]:
            _free_pcppages_bulk(z, batch, pindex)
        return
    if rules == PCP_RULES_6_1:
        free_high = z.stat[PCP_FREE_FACTOR] > 0 and order > 0 and order <= PAGE_ALLOC_COSTLY_ORDER
        high = 0 if free_high else z.zp[ZP_PCP_HIGH]
    else:
        free_high = _free_high_v6_7(z, order, batch)
        high = nr_pcp_high(z, batch, free_high)
    if z.zp[ZP_PCP_COUNT] >= high:
        _free_pcppages_bulk(z, nr_pcp_free(z, high, batch, free_high), pindex)
        if (rules >= PCP_RULES_6_7 and z.zp[ZP_BELOW_HIGH]
                and zone_watermark_ok(z, 0, wmark_pages(z, ZP_WMARK_HIGH), 0,
                                      z.zp[ZP_LOWMEM_RESERVE + ZONE_MOVABLE])):
            z.zp[ZP_BELOW_HIGH] = 0


@jit
def decay_pcp_high(z):
    """decay_pcp_high() (6.7+), from the vmstat update every second: lower high by an eighth
    (not below count - (batch << PCP_BATCH_SCALE_MAX), nor high_min) and drain what lies above
    it, a batch at a time. Returns whether more decay is to come."""
    if not z.zp[ZP_PCP] or z.zp[ZP_PCP_RULES] < PCP_RULES_6_7:
        return False
    high_min = z.zp[ZP_PCP_HIGH_MIN]
    batch = z.zp[ZP_PCP_BATCH]
    high = z.zp[ZP_PCP_HIGH]
    todo = False
    if high > high_min:
        high = max(z.zp[ZP_PCP_COUNT] - (batch << PCP_BATCH_SCALE_MAX), high - (high >> 3), high_min)
        z.zp[ZP_PCP_HIGH] = high
        if high > high_min:
            todo = True
    to_drain = z.zp[ZP_PCP_COUNT] - high
    while to_drain > 0:
        _free_pcppages_bulk(z, min(to_drain, batch), 0)
        todo = True
        to_drain -= batch
    return todo


@jit
def vmstat_tick(node):
    """The workloads' simulated clock: every ZP_VMSTAT_INTERVAL allocator calls (allocations
    and frees) is one second, when the vmstat update runs decay_pcp_high() and
    refresh_vm_stats() on every zone."""
    first = node[0]
    first.zp[ZP_VMSTAT_COUNTDOWN] -= 1
    if first.zp[ZP_VMSTAT_COUNTDOWN] <= 0:
        first.zp[ZP_VMSTAT_COUNTDOWN] = first.zp[ZP_VMSTAT_INTERVAL]
        for i in range(len(node)):
            decay_pcp_high(node[i])
            refresh_vm_stats(node[i])


@jit_fold
def refresh_vm_stats(z):
    """refresh_cpu_vm_stats() from the vmstat update: the loaded CPU's vm_stat_diff of
    NR_FREE_PAGES goes into the zone's counter."""
    s = ZP_PCPS + z.zp[ZP_CPU] * PCPS_SLOTS + PCPS_VM_DIFF
    z.zp[ZP_VM_FREE] += z.zp[s]
    z.zp[s] = 0


@jit_fold
def drain_pages(z):
    """drain_pages(): give every pcp page of the loaded CPU back to the buddy lists."""
    if z.zp[ZP_PCP_COUNT] > 0:
        _free_pcppages_bulk(z, z.zp[ZP_PCP_COUNT], 0)


@jit
def pcp_switch_cpu(z, cpu):
    """Load CPU `cpu`'s pcp lists and state (count, high, alloc_factor, free_count, flags) where
    the pcp functions work on them, saving the loaded CPU's; no page moves."""
    cur = z.zp[ZP_CPU]
    if cpu == cur:
        return
    base = z.zp[ZP_PCP_BASE]
    banks = z.zp[ZP_PCP_BANKS]
    s = ZP_PCPS + cur * PCPS_SLOTS
    z.zp[s] = z.zp[ZP_PCP_COUNT]
    z.zp[s + 1] = z.zp[ZP_PCP_HIGH]
    z.zp[s + 2] = z.zp[ZP_PCP_ALLOC_FACTOR]
    z.zp[s + 3] = z.stat[PCP_FREE_FACTOR]
    z.zp[s + 4] = z.zp[ZP_PCP_FLAGS]
    for i in range(NR_PCP_LISTS):
        z.list_head[banks + cur * NR_PCP_LISTS + i] = z.list_head[base + i]
        z.list_tail[banks + cur * NR_PCP_LISTS + i] = z.list_tail[base + i]
        z.list_head[base + i] = z.list_head[banks + cpu * NR_PCP_LISTS + i]
        z.list_tail[base + i] = z.list_tail[banks + cpu * NR_PCP_LISTS + i]
    s = ZP_PCPS + cpu * PCPS_SLOTS
    z.zp[ZP_PCP_COUNT] = z.zp[s]
    z.zp[ZP_PCP_HIGH] = z.zp[s + 1]
    z.zp[ZP_PCP_ALLOC_FACTOR] = z.zp[s + 2]
    z.stat[PCP_FREE_FACTOR] = z.zp[s + 3]
    z.zp[ZP_PCP_FLAGS] = z.zp[s + 4]
    z.zp[ZP_CPU] = cpu


# ---------------------------------------------------------------------------------------------
# Free path


@jit_inline
def _free_one_page(z, pfn, order, mt, to_tail):
    """__free_one_page(): merge with free buddies as far as the policy's rules allow, then put
    the block at the tail (FPI_TO_TAIL or buddy_merge_likely) or head of free_list[order][mt]."""
    max_order = z.zp[ZP_MAX_ORDER]
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    merge = z.zp[ZP_MERGE]
    zone_start = z.zp[ZP_ZONE_START]
    zone_end = z.zp[ZP_ZONE_END]
    while order < max_order:
        buddy = pfn ^ (1 << order)
        # page_is_buddy(): a free head of the same order in the same zone
        if (buddy < zone_start or buddy >= zone_end or not (z.page_flags[buddy] & PG_BUDDY)
                or z.page_order[buddy] != order):
            break
        if order >= pb_order:
            buddy_mt = get_pageblock_migratetype(z, buddy)
            if buddy_mt != mt:
                if merge == MERGE_PRE_5_19:
                    if mt == MIGRATE_ISOLATE or buddy_mt == MIGRATE_ISOLATE:
                        break
                elif mt >= MIGRATE_PCPTYPES or buddy_mt >= MIGRATE_PCPTYPES:
                    break
                if merge == MERGE_HYGIENE:
                    # "Match buddy type" (all pageblocks of the buddy: see MODEL.md)
                    change_pageblock_range(z, buddy, order, mt)
        list_mt = int(z.page_mt[buddy])
        _del_page_from_free_list(z, buddy, order, list_mt)
        account_freepages(z, -(1 << order), list_mt)
        pfn &= buddy
        order += 1
        z.stat[MERGE_STEPS] += 1
    if not to_tail:
        to_tail = buddy_merge_likely(z, pfn, order)
    account_freepages(z, 1 << order, mt)
    _add_to_free_list(z, pfn, order, mt, to_tail)


@jit_fold
def buddy_merge_likely(z, pfn, order):
    """buddy_merge_likely(): is the parent's buddy free, so that freeing our buddy would merge
    two levels? Then the block goes to the tail, where it is less likely to be allocated."""
    if order >= z.zp[ZP_MAX_ORDER] - 1:
        return False
    higher = pfn & ~((1 << (order + 1)) - 1)
    higher_buddy = higher ^ (1 << (order + 1))
    return (z.zp[ZP_ZONE_START] <= higher_buddy < z.zp[ZP_ZONE_END]
            and (z.page_flags[higher_buddy] & PG_BUDDY) != 0 and z.page_order[higher_buddy] == order + 1)


@jit_inline
def split_large_buddy(z, pfn, order, to_tail):
    """split_large_buddy() (6.10+): free a block larger than a pageblock one pageblock at a time,
    each with its own pageblock's type; __free_one_page merges them back where allowed."""
    end = pfn + (1 << order)
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    if order > pb_order:
        order = pb_order
    while pfn < end:
        _free_one_page(z, pfn, order, get_pageblock_migratetype(z, pfn), to_tail)
        pfn += 1 << order


@jit_inline
def _free_to_buddy(z, pfn, order, to_tail):
    """free_one_page(): the buddy part of freeing, per policy."""
    if z.zp[ZP_MERGE] == MERGE_HYGIENE:
        split_large_buddy(z, pfn, order, to_tail)
    else:
        _free_one_page(z, pfn, order, get_pageblock_migratetype(z, pfn), to_tail)


# ---------------------------------------------------------------------------------------------
# The page allocator's entry points


@jit_inline
def prep_new_page(z, pfn, order, mt, extra):
    """Record the allocation: head, order, requested type. A movable allocation is an LRU page
    on every page (and pinned if `extra` has PG_PINNED) unless `extra` has PG_CONTIG: a page the
    kernel holds outside the LRU (hugetlb), which the model never migrates."""
    z.page_flags[pfn] |= PG_HEAD
    z.page_order[pfn] = order
    z.page_mt[pfn] = mt
    z.next[pfn] = -1
    if extra & PG_CONTIG:
        z.page_flags[pfn] |= PG_CONTIG
    elif mt == MIGRATE_MOVABLE:
        set_flags_range(z.page_flags, pfn, 1 << order, PG_LRU | (extra & PG_PINNED))
    z.stat[PGALLOC] += 1 << order


@jit_fold
def rmqueue(z, order, mt, alloc_flags):
    """rmqueue(): the pcp list for pcp orders, falling through to the buddy lists when it
    yields nothing (rmqueue_buddy(): a high-order atomic request tries the HIGHATOMIC lists
    first, a non-blocking one after the rest failed)."""
    alloc_cma = alloc_flags & ALLOC_CMA
    if z.zp[ZP_PCP] and pcp_allowed_order(z, order):
        pfn = _rmqueue_pcplist(z, order, mt, alloc_cma)
        if pfn >= 0:
            return pfn
    if alloc_flags & ALLOC_HIGHATOMIC:
        pfn = _rmqueue_smallest(z, order, MIGRATE_HIGHATOMIC)
        if pfn >= 0:
            return pfn
    pfn, _ = _rmqueue(z, order, mt, alloc_cma, RMQUEUE_NORMAL)
    if pfn < 0 and alloc_flags & ALLOC_NON_BLOCK:
        pfn = _rmqueue_smallest(z, order, MIGRATE_HIGHATOMIC)
    return pfn


@jit_fold
def gfp_zone(mt):
    """gfp_zone(): the highest zone a request may use, from its gfp (the requested type, before
    gfp_migratetype()): ZONE_MOVABLE for __GFP_MOVABLE (GFP_HIGHUSER_MOVABLE), else ZONE_NORMAL
    (GFP_KERNEL)."""
    return ZONE_MOVABLE if mt == MIGRATE_MOVABLE else ZONE_NORMAL


@jit_fold
def alloc_flags_nofragment(node, highest):
    """alloc_flags_nofragment(): ALLOC_NOFRAGMENT when the preferred zone (the highest populated
    one the request may use) is ZONE_NORMAL and the node has a ZONE_DMA32 (the kernel assumes
    the latter on one node; a node of ZONE_NORMAL alone never sets the flag here)."""
    for i in range(len(node) - 1, -1, -1):
        idx = node[i].zp[ZP_ZONE_IDX]
        if idx <= highest:
            return idx == ZONE_NORMAL and node[i].zp[ZP_NODE_DMA32] != 0
    return False


@jit_inline
def get_page_from_freelist(node, order, mt, highest, wmark, alloc_flags, nofragment):
    """get_page_from_freelist(): walk the zonelist from the highest usable zone (`highest`,
    gfp_zone()) down; in each zone the watermark gate with lowmem_reserve[highest], then
    rmqueue() (with ALLOC_NOFRAGMENT when `nofragment`); when that finds nothing anywhere, walk
    again without ALLOC_NOFRAGMENT. A block taken with ALLOC_HIGHATOMIC reserves its pageblock
    (reserve_highatomic_pageblock()). Returns (zone index in the node, pfn) or (-1, -1)."""
    while True:
        zi, pfn = _zonelist_walk(node, order, mt, highest, wmark, alloc_flags, nofragment)
        if pfn >= 0 or not nofragment:
            if pfn >= 0 and alloc_flags & ALLOC_HIGHATOMIC:
                reserve_highatomic_pageblock(node[zi], pfn, order)
            return zi, pfn
        nofragment = False


@jit
def reserve_highatomic_pageblock(z, pfn, order):
    """reserve_highatomic_pageblock(): make the pageblock of a block just taken by a high-order
    atomic request HIGHATOMIC, with its free pages, up to about 1% of the zone. 6.12 (v6.10+):
    nothing when 1% is less than a pageblock, the limit rounded up to pageblocks, a pageblock
    not wholly in the zone is left alone, and a block of pageblock_order or more types its whole
    range; 6.1 (v5.4, v6.1): up to 1% plus a pageblock, the first pageblock only."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    pb = 1 << pb_order
    hygiene = z.zp[ZP_MERGE] == MERGE_HYGIENE
    share = z.zp[ZP_MANAGED] // 100
    if hygiene:
        if share < pb:
            return
        limit = (share + pb - 1) // pb * pb
    else:
        limit = share + pb
    if z.stat[NR_RESERVED_HIGHATOMIC] >= limit:
        return
    if get_pageblock_migratetype(z, pfn) >= MIGRATE_PCPTYPES:  # migratetype_is_mergeable()
        return
    if not hygiene:
        z.stat[NR_RESERVED_HIGHATOMIC] += pb
        z.stat[HIGHATOMIC_EVER] += 1
        change_pageblock_range(z, pfn, 0, MIGRATE_HIGHATOMIC)
        # 6.1 move_freepages_block(): from pfn when the block starts below the zone, nothing
        # when it ends beyond it
        start = (pfn >> pb_order) << pb_order
        if start < z.zp[ZP_ZONE_START]:
            start = pfn
        if start + pb <= z.zp[ZP_ZONE_END]:
            _move_freepages_block(z, start, MIGRATE_HIGHATOMIC)
        return
    if order < pb_order:
        ok, start, _, _ = prep_move_freepages_block(z, pfn)
        if not ok:
            return
        _move_freepages_block(z, start, MIGRATE_HIGHATOMIC)
        change_pageblock_range(z, start, 0, MIGRATE_HIGHATOMIC)
        z.stat[NR_RESERVED_HIGHATOMIC] += pb
    else:
        change_pageblock_range(z, pfn, order, MIGRATE_HIGHATOMIC)
        z.stat[NR_RESERVED_HIGHATOMIC] += 1 << order
    z.stat[HIGHATOMIC_EVER] += 1


@jit
def unreserve_highatomic_pageblock(node, highest, mt, force):
    """unreserve_highatomic_pageblock(): in the first zone of the zonelist that keeps more than
    a pageblock reserved (any reserve with `force`) and has a free HIGHATOMIC block, give the
    pageblock of the lowest-order one back to the request's type `mt` with its free pages.
    Returns whether a pageblock was given back."""
    for i in range(len(node) - 1, -1, -1):
        z = node[i]
        if z.zp[ZP_ZONE_IDX] > highest:
            continue
        pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
        pb = 1 << pb_order
        if not force and z.stat[NR_RESERVED_HIGHATOMIC] <= pb:
            continue
        hygiene = z.zp[ZP_MERGE] == MERGE_HYGIENE
        for order in range(z.zp[ZP_MAX_ORDER] + 1):
            pfn = z.list_head[order * MIGRATE_TYPES + MIGRATE_HIGHATOMIC]
            if pfn < 0:
                continue
            if get_pageblock_migratetype(z, pfn) == MIGRATE_HIGHATOMIC:
                size = max(pb, 1 << order) if hygiene else pb
                z.stat[NR_RESERVED_HIGHATOMIC] -= min(size, z.stat[NR_RESERVED_HIGHATOMIC])
            if not hygiene:
                # 6.1: set the pageblock's type, then move_freepages_block()
                change_pageblock_range(z, pfn, 0, mt)
                start = (pfn >> pb_order) << pb_order
                if start < z.zp[ZP_ZONE_START]:
                    start = pfn
                if start + pb <= z.zp[ZP_ZONE_END] and _move_freepages_block(z, start, mt) > 0:
                    return True
            elif order < pb_order:
                ok, start, _, _ = prep_move_freepages_block(z, pfn)
                if ok:
                    _move_freepages_block(z, start, mt)
                    change_pageblock_range(z, start, 0, mt)
                    return True
            else:
                move_to_free_list(z, pfn, order, mt)
                change_pageblock_range(z, pfn, order, mt)
                return True
    return False


@jit_inline
def _zonelist_walk(node, order, mt, highest, wmark, alloc_flags, nofragment):
    """One walk of get_page_from_freelist() over the zonelist."""
    for i in range(len(node) - 1, -1, -1):
        z = node[i]
        zone_idx = z.zp[ZP_ZONE_IDX]
        if zone_idx > highest:
            continue
        reserve = z.zp[ZP_LOWMEM_RESERVE + highest]
        # 6.7+: a zone above its high watermark is used without its own watermark check; one
        # below it is marked ZONE_BELOW_HIGH (pcp high shrinks there) and checked as usual
        above_high = False
        if z.zp[ZP_PCP] and z.zp[ZP_PCP_RULES] >= PCP_RULES_6_7 and not z.zp[ZP_BELOW_HIGH]:
            above_high = zone_watermark_ok(z, order, wmark_pages(z, ZP_WMARK_HIGH), alloc_flags, reserve)
            if not above_high:
                z.zp[ZP_BELOW_HIGH] = 1
        if not above_high and not zone_watermark_ok(z, order, wmark_pages(z, wmark), alloc_flags, reserve):
            # zone_watermark_fast(): an order-0 __GFP_HIGH request at the min watermark ignores
            # the boost
            if not (order == 0 and alloc_flags & ALLOC_MIN_RESERVE and z.zp[ZP_WMARK_BOOST]
                    and wmark == ZP_WMARK_MIN
                    and zone_watermark_ok(z, order, z.zp[ZP_WMARK_MIN], alloc_flags, reserve)):
                continue
        z.zp[ZP_NOFRAGMENT] = nofragment
        pfn = rmqueue(z, order, mt, alloc_flags)
        z.zp[ZP_NOFRAGMENT] = 0
        if z.zp[ZP_BOOSTED] and alloc_flags & ALLOC_KSWAPD:
            # rmqueue(): a boost wakes kswapd (ZONE_BOOSTED_WATERMARK)
            z.zp[ZP_BOOSTED] = 0
            wakeup_kswapd(node, 0, zone_idx, False)
        if pfn >= 0:
            return i, pfn
    return -1, -1


@jit
def alloc_pages(node, order, mt, extra):
    """__alloc_pages(): fast path at the low watermark, slow path at the min watermark (no
    reclaim). Returns the pfn of the block or -1 (counted in alloc_fail of the first zone)."""
    return alloc_pages_inline(node, order, mt, extra)


@jit_inline
def alloc_pages_inline(node, order, mt, extra):
    """alloc_pages(), inlined into a hot loop."""
    first = node[0]
    first.stat[ALLOC_OPS] += 1
    if first.zp[ZP_VMSTAT_INTERVAL] > 0:
        vmstat_tick(node)
    if first.zp[ZP_PROACTIVE_INTERVAL] > 0:
        proactive_tick(first)
    pfn = alloc_pages_fast(node, order, mt, extra)
    if pfn < 0:
        first.stat[ALLOC_FAIL] += 1
    return pfn


@jit_fold
def gfp_migratetype(node, mt):
    """gfp_migratetype(): every request is UNMOVABLE with grouping by mobility disabled."""
    return MIGRATE_UNMOVABLE if node[0].zp[ZP_MOBILITY_DISABLED] else mt


@jit_fold
def alloc_pages_fast(node, order, mt, extra):
    """get_page_from_freelist() at the low watermark, then at the min watermark; on success the
    block is prepared. Records the worst split and scan cost of one allocation."""
    splits = node_stat(node, SPLIT_STEPS)
    scanned = node_stat(node, ORDERS_SCANNED)
    list_mt = gfp_migratetype(node, mt)
    alloc_flags = ALLOC_CMA if list_mt == MIGRATE_MOVABLE else 0
    if not extra & GFP_NO_KSWAPD:
        alloc_flags |= ALLOC_KSWAPD
    may_reclaim = not extra & (GFP_ATOMIC | GFP_NO_DIRECT_RECLAIM)
    highest = gfp_zone(mt)
    # the fast path: low watermark, ALLOC_NOFRAGMENT as alloc_flags_nofragment() gives it; the
    # slow path: wake kswapd, then the min watermark, without it, with gfp_to_alloc_flags()'s
    # reserves for GFP_ATOMIC; then, for a request that may reclaim, direct reclaim and the end
    # of the slow path
    nofragment = alloc_flags_nofragment(node, highest)
    wmark = ZP_WMARK_LOW
    reclaims = 0
    drain_after_reclaim = False
    while True:
        # one call site, so that the inlined get_page_from_freelist is there once
        zi, pfn = get_page_from_freelist(node, order, list_mt, highest, wmark, alloc_flags, nofragment)
        if pfn >= 0:
            break
        if wmark == ZP_WMARK_LOW:
            if alloc_flags & ALLOC_KSWAPD:
                wakeup_kswapd(node, order, highest, may_reclaim)      # wake_all_kswapds()
            wmark = ZP_WMARK_MIN
            nofragment = False
            if extra & GFP_ATOMIC:
                alloc_flags |= ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK
                if order > 0:
                    alloc_flags |= ALLOC_HIGHATOMIC
            continue
        if not may_reclaim or extra & GFP_COMPACT_FIRST:
            break
        if drain_after_reclaim:
            # __alloc_pages_direct_reclaim(): a failure after reclaim made progress shrinks the
            # highatomic reserve and drains the pcp lists, and tries once more
            drain_after_reclaim = False
            unreserve_highatomic_pageblock(node, highest, list_mt, False)
            drain_all_pages(node)
            continue
        # __alloc_pages_direct_reclaim(), then should_reclaim_retry(): a costly order reclaims
        # once; a smaller one again while reclaim makes progress and (order > 0) a free block of
        # its order exists somewhere
        if ((reclaims == 0 or order <= PAGE_ALLOC_COSTLY_ORDER)
                and (order == 0 or reclaims == 0 or _has_free_block(node, order, highest, alloc_flags))
                and direct_reclaim(node, highest, order) > 0):
            reclaims += 1
            drain_after_reclaim = True
            continue
        # before failing a request that may retry (not costly), unreserve_highatomic_pageblock(force)
        if order > PAGE_ALLOC_COSTLY_ORDER or not unreserve_highatomic_pageblock(node, highest, list_mt, True):
            break
    record_max(node[0], MAX_SPLIT_STEPS, node_stat(node, SPLIT_STEPS) - splits)
    record_max(node[0], MAX_ORDERS_SCANNED, node_stat(node, ORDERS_SCANNED) - scanned)
    if pfn >= 0:
        prep_new_page(node[zi], pfn, order, mt, extra)
    return pfn


@jit_fold
def _has_free_block(node, order, highest, alloc_flags):
    """Some zone up to `highest` has a free block of at least `order` the request may use."""
    for i in range(len(node) - 1, -1, -1):      # the zonelist, highest zone first
        z = node[i]
        if z.zp[ZP_ZONE_IDX] <= highest and zone_watermark_ok_safe(z, order, -(1 << 62), alloc_flags, 0):
            return True
    return False


@jit_fold
def node_stat(node, idx):
    """A counter summed over the node's zones."""
    total = 0
    for i in range(len(node)):
        total += node[i].stat[idx]
    return total


@jit_fold
def record_max(z, idx, value):
    if value > z.stat[idx]:
        z.stat[idx] = value


@jit_fold
def page_zone(node, pfn):
    """Index in the node of the zone that spans pfn."""
    for i in range(len(node) - 1, 0, -1):
        if pfn >= node[i].zp[ZP_ZONE_START]:
            return i
    return 0


@jit_inline
def free_pages(node, pfn):
    """__free_pages(): pcp orders through the per-cpu lists, the rest straight to the buddy."""
    z = node[page_zone(node, pfn)]
    order = int(z.page_order[pfn])
    z.page_flags[pfn] &= PG_MASK ^ (PG_HEAD | PG_CONTIG)
    z.page_order[pfn] = -1
    slot = z.next[pfn]
    if slot >= 0:
        z.owner[slot] = -1
        z.next[pfn] = -1
    if z.page_flags[pfn] & PG_LRU:
        clear_flags_range(z.page_flags, pfn, 1 << order, PG_LRU | PG_PINNED)
    z.stat[FREE_OPS] += 1
    z.stat[PGFREE] += 1 << order
    if node[0].zp[ZP_VMSTAT_INTERVAL] > 0:
        vmstat_tick(node)
    merges = z.stat[MERGE_STEPS]
    if z.zp[ZP_PCP] and pcp_allowed_order(z, order):
        free_unref_page(z, pfn, order)
    else:
        _free_to_buddy(z, pfn, order, False)
    record_max(node[0], MAX_MERGE_STEPS, z.stat[MERGE_STEPS] - merges)


@jit
def drain_all_pages(node):
    """drain_all_pages(): every zone's pcp lists back to the buddy, CPU 0, 1, ... in turn."""
    for i in range(len(node)):
        z = node[i]
        cur = z.zp[ZP_CPU]
        for cpu in range(z.zp[ZP_NR_CPUS]):
            pcp_switch_cpu(z, cpu)
            drain_pages(z)
        pcp_switch_cpu(z, cur)


@jit
def boot_node(node):
    """Boot every zone of the node."""
    for i in range(len(node)):
        boot_zone(node[i])


@jit_fold
def largest_aligned_order(pfn, end, max_order):
    """The largest order <= max_order of a naturally aligned block at pfn that ends by `end`."""
    o = 0
    while o < max_order and (pfn & ((2 << o) - 1)) == 0 and pfn + (2 << o) <= end:
        o += 1
    return o


@jit
def _free_range_boot(z, start, end, to_tail):
    """__free_pages_memory(): free [start, end) in the largest naturally aligned chunks."""
    max_order = z.zp[ZP_MAX_ORDER]
    pfn = start
    while pfn < end:
        order = largest_aligned_order(pfn, end, max_order)
        _free_to_buddy(z, pfn, order, to_tail)
        pfn += 1 << order


@jit_fold
def boot_zone(z):
    """memblock_free_all() / __free_pages_core(): free every hole-free range in the largest
    naturally aligned chunks (FPI_TO_TAIL from 5.10 on); then cma_init_reserved_areas(): the CMA
    area one pageblock at a time; then zero the counters."""
    nr_pages = z.zp[ZP_ZONE_END]
    to_tail = z.zp[ZP_BOOT_TO_TAIL] != 0
    cma_start = z.zp[ZP_CMA_START]
    cma_end = z.zp[ZP_CMA_END]
    pfn = z.zp[ZP_ZONE_START]
    while pfn < nr_pages:
        if (z.page_flags[pfn] & PG_RESERVED) or (cma_start <= pfn < cma_end):
            pfn += 1
            continue
        end = pfn
        while end < nr_pages and not (z.page_flags[end] & PG_RESERVED) and not (cma_start <= end < cma_end):
            end += 1
        _free_range_boot(z, pfn, end, to_tail)
        pfn = end
    pb = 1 << z.zp[ZP_PAGEBLOCK_ORDER]
    for block in range(cma_start, cma_end, pb):
        _free_range_boot(z, block, block + pb, False)
    for i in range(NR_STATS):
        if i != NR_FREE_PAGES and i != NR_FREE_CMA_PAGES:
            z.stat[i] = 0
    reset_cached_positions(z)


@jit
def reset_cached_positions(z):
    """reset_cached_positions(): the migrate scanner restarts at the zone start, the free
    scanner at the zone's last pageblock."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    z.stat[CACHED_MIGRATE_PFN] = z.zp[ZP_ZONE_START]
    z.stat[CACHED_FREE_PFN] = ((z.zp[ZP_ZONE_END] - 1) >> pb_order) << pb_order


@jit_fold
def get_pageblock_skip(z, pfn):
    """get_pageblock_skip(): PB_migrate_skip, the compaction scanners' hint that the pageblock
    was scanned recently (kept in list_tail at zp[ZP_ISO_SAVED_BASE], by pageblock)."""
    return z.list_tail[z.zp[ZP_ISO_SAVED_BASE] + (pfn >> z.zp[ZP_PAGEBLOCK_ORDER])] > 0


@jit_fold
def set_pageblock_skip(z, pfn, value):
    z.list_tail[z.zp[ZP_ISO_SAVED_BASE] + (pfn >> z.zp[ZP_PAGEBLOCK_ORDER])] = value


@jit_fold
def pageblock_skip_persistent(z, pfn):
    """pageblock_skip_persistent(): pfn lies in an allocated block of pageblock order or more."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    for o in range(pb_order, z.zp[ZP_MAX_ORDER] + 1):
        head = (pfn >> o) << o
        if (z.page_flags[head] & PG_HEAD) and z.page_order[head] >= pb_order and head + (1 << z.page_order[head]) > pfn:
            return True
    return False


@jit_fold
def _reset_isolation_pfn(z, pfn, check_source, check_target):
    """__reset_isolation_pfn(): clear the pageblock's skip hint if a sample of its pages (every
    8th, from the block's start) finds an LRU page (check_source) or a free block's head
    (check_target); returns whether the block is a scanner's restart point."""
    zs = z.zp[ZP_ZONE_START]
    ze = z.zp[ZP_ZONE_END]
    if pfn < zs or pfn >= ze or pageblock_skip_persistent(z, pfn):
        return False
    if check_source and check_target and not get_pageblock_skip(z, pfn):
        return True
    if not check_source and check_target and get_pageblock_migratetype(z, pfn) != MIGRATE_MOVABLE:
        return False
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    p = max((pfn >> pb_order) << pb_order, zs)
    end = min((((pfn >> pb_order) + 1) << pb_order) - 1, ze - 1)
    while p <= end:
        if (check_source and (z.page_flags[p] & PG_LRU)) or (check_target and (z.page_flags[p] & PG_BUDDY)):
            set_pageblock_skip(z, p, 0)
            return True
        p += 1 << PAGE_ALLOC_COSTLY_ORDER
    return False


@jit
def reset_isolation_suitable_zone(z):
    """__reset_isolation_suitable(): only when a full direct compaction finished since the last
    reset (compact_blockskip_flush): walk the zone from both ends, clearing the skip hints of
    blocks that may be a source (low half) or target (high half), and restart the scanners at
    the first of each."""
    if not z.zp[ZP_BLOCKSKIP_FLUSH]:
        return
    z.zp[ZP_BLOCKSKIP_FLUSH] = 0
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    pb = 1 << pb_order
    migrate_pfn = z.zp[ZP_ZONE_START]
    free_pfn = z.zp[ZP_ZONE_END] - 1
    reset_migrate = free_pfn
    reset_free = migrate_pfn
    source_set = False
    free_set = False
    while migrate_pfn < free_pfn:
        if _reset_isolation_pfn(z, migrate_pfn, True, source_set) and migrate_pfn < reset_migrate:
            source_set = True
            reset_migrate = migrate_pfn
            z.stat[CACHED_MIGRATE_PFN] = reset_migrate
        if _reset_isolation_pfn(z, free_pfn, free_set, True) and free_pfn > reset_free:
            free_set = True
            reset_free = free_pfn
            z.stat[CACHED_FREE_PFN] = (reset_free >> pb_order) << pb_order
        migrate_pfn += pb
        free_pfn -= pb
    if reset_migrate >= reset_free:
        z.stat[CACHED_MIGRATE_PFN] = migrate_pfn
        z.stat[CACHED_FREE_PFN] = (free_pfn >> pb_order) << pb_order


@jit
def reset_isolation_suitable(node):
    for i in range(len(node)):
        reset_isolation_suitable_zone(node[i])


# ---------------------------------------------------------------------------------------------
# Watermark boosting, the page cache and reclaim (mm/page_alloc.c, mm/vmscan.c)


@jit_fold
def wmark_pages(z, which):
    """wmark_pages(): the zone's watermark (ZP_WMARK_MIN/LOW/HIGH) plus its watermark_boost."""
    return z.zp[which] + z.zp[ZP_WMARK_BOOST]


@jit_fold
def boost_watermark(z):
    """boost_watermark() (5.0+): a fallback below pageblock_order raises the zone's watermarks
    by a pageblock, up to watermark_boost_factor / 10000 of the high watermark (at least a
    pageblock); not in zones smaller than four pageblocks, nor with the factor 0. Returns
    whether it boosted (the caller then sets ZONE_BOOSTED_WATERMARK)."""
    factor = z.zp[ZP_BOOST_FACTOR]
    if factor == 0:
        return False
    pb = 1 << z.zp[ZP_PAGEBLOCK_ORDER]
    if pb * 4 > z.zp[ZP_MANAGED]:
        return False
    high = z.zp[ZP_WMARK_HIGH]
    max_boost = (high // 10000) * factor + ((high % 10000) * factor) // 10000   # mult_frac()
    if max_boost == 0:
        return False
    max_boost = max(pb, max_boost)
    z.zp[ZP_WMARK_BOOST] = min(z.zp[ZP_WMARK_BOOST] + pb, max_boost)
    z.zp[ZP_BOOSTED] = 1
    z.stat[NR_WATERMARK_BOOSTS] += 1
    return True


@jit
def free_owned(node, pfn):
    """Free what an owner holds at pfn: its block, or every piece of its split folio (a ring
    through prev[], split_folio()). Returns the pages freed."""
    z = node[0]
    if z.prev[pfn] < 0 or not (z.page_flags[pfn] & PG_HEAD):
        order = int(z.page_order[pfn])
        free_pages(node, pfn)
        return 1 << order
    freed = 0
    q = pfn
    while True:
        nxt = z.prev[q]
        z.prev[q] = -1
        free_pages(node, q)
        freed += 1
        if nxt == pfn:
            return freed
        q = nxt


@jit
def lru_add_file(node, pfn):
    """A page (or split folio) at pfn becomes clean page cache, at the tail of the node's LRU
    (the inactive file list, in the order pages joined it; no second chance for referenced
    pages). It takes an owner slot of the LRU's ring, so migration keeps track of it, and
    releases the slot of the owner it had (a workload's). A full ring first drops its oldest
    page. Returns the pages it took: 0 when the node has no page cache (the page is then left
    as it was, with its owner)."""
    first = node[0]
    cap = first.zp[ZP_LRU_CAP]
    if cap == 0:
        return 0
    base = first.zp[ZP_LRU_BASE]
    while first.zp[ZP_LRU_TAIL] - first.zp[ZP_LRU_HEAD] >= cap:
        slot = base + first.zp[ZP_LRU_HEAD] % cap
        old = first.owner[slot]
        if old >= 0:
            first.zp[ZP_NR_FILE] -= free_owned(node, old)
        first.zp[ZP_LRU_HEAD] += 1
    slot = base + first.zp[ZP_LRU_TAIL] % cap
    first.zp[ZP_LRU_TAIL] += 1
    old = first.next[pfn]
    if old >= 0:
        first.owner[old] = -1
    first.owner[slot] = pfn
    first.next[pfn] = slot
    n = 1 << int(first.page_order[pfn])
    if first.prev[pfn] >= 0 and first.page_flags[pfn] & PG_HEAD:
        n = 1                      # a split folio: every piece points at its owner slot
        q = first.prev[pfn]
        while q != pfn:
            first.next[q] = slot
            n += 1
            q = first.prev[q]
    first.zp[ZP_NR_FILE] += n
    return n


@jit
def shrink_page_cache(node, nr_to_reclaim, nr_to_scan, highest):
    """shrink_inactive_list() on the node's file LRU, clean pages only: from the oldest page,
    scan up to nr_to_scan pages (of zones up to `highest`, sc->reclaim_idx; pages of higher
    zones are skipped, not counted, and keep their place) and free them until nr_to_reclaim are
    freed. Returns the pages freed."""
    first = node[0]
    cap = first.zp[ZP_LRU_CAP]
    if cap == 0:
        return 0
    base = first.zp[ZP_LRU_BASE]
    pos = first.zp[ZP_LRU_HEAD]
    tail = first.zp[ZP_LRU_TAIL]
    reclaimed = 0
    scanned = 0
    while pos < tail and reclaimed < nr_to_reclaim and scanned < nr_to_scan:
        slot = base + pos % cap
        pfn = first.owner[slot]
        # isolate_lru_folios(): a folio of a zone above reclaim_idx is skipped and not counted
        # ("premature OOM"); the others count their pages
        if pfn >= 0 and node[page_zone(node, pfn)].zp[ZP_ZONE_IDX] <= highest:
            n = free_owned(node, pfn)
            scanned += n
            first.zp[ZP_NR_FILE] -= n
            reclaimed += n
        if pos == first.zp[ZP_LRU_HEAD] and first.owner[slot] < 0:
            first.zp[ZP_LRU_HEAD] += 1
        pos += 1
    return reclaimed


@jit_fold
def _highest_zone_idx(node):
    return node[len(node) - 1].zp[ZP_ZONE_IDX]


@jit
def pgdat_balanced(node, order, highest):
    """pgdat_balanced(): some zone up to `highest` meets its high watermark (boost included)
    for `order`, with lowmem_reserve[highest] and no reserves (zone_watermark_ok_safe())."""
    for i in range(len(node)):
        z = node[i]
        if z.zp[ZP_ZONE_IDX] > highest or z.zp[ZP_MANAGED] == 0:
            continue
        if zone_watermark_ok_safe(z, order, wmark_pages(z, ZP_WMARK_HIGH), 0,
                                  z.zp[ZP_LOWMEM_RESERVE + highest]):
            return True
    return False


@jit_fold
def pgdat_watermark_boosted(node, highest):
    for i in range(len(node)):
        if node[i].zp[ZP_ZONE_IDX] <= highest and node[i].zp[ZP_WMARK_BOOST]:
            return True
    return False


@jit
def wakeup_kcompactd(node, order, highest):
    """wakeup_kcompactd(): remember the largest order and the lowest zone index asked; kcompactd
    runs after the current call (compaction.py: kcompactd_do_work()), which checks
    kcompactd_node_suitable() first."""
    first = node[0]
    if order == 0 or not first.zp[ZP_KCOMPACTD]:
        return
    if first.zp[ZP_KCOMPACTD_ORDER] < order:
        first.zp[ZP_KCOMPACTD_ORDER] = order
    if first.zp[ZP_KCOMPACTD_HIGHEST] > highest:
        first.zp[ZP_KCOMPACTD_HIGHEST] = highest
    first.zp[ZP_BG_PENDING] |= BG_KCOMPACTD


@jit
def wakeup_kswapd(node, order, highest, direct_reclaim):
    """wakeup_kswapd(): record the order and zone index kswapd is to balance for; a node that
    is hopeless (MAX_RECLAIM_RETRIES kswapd runs without progress) or balanced and not boosted
    only wakes kcompactd, and only for a request that cannot reclaim directly; else kswapd runs
    after the current call (kswapd())."""
    first = node[0]
    if not first.zp[ZP_KSWAPD]:
        return
    if first.zp[ZP_KSWAPD_HIGHEST] < highest:
        first.zp[ZP_KSWAPD_HIGHEST] = highest
    if first.zp[ZP_KSWAPD_ORDER] < order:
        first.zp[ZP_KSWAPD_ORDER] = order
    if first.zp[ZP_IN_BACKGROUND] or first.zp[ZP_BG_PENDING] & BG_KSWAPD:
        return          # kswapd is awake already (not on its wait queue)
    if (first.zp[ZP_KSWAPD_FAILURES] >= MAX_RECLAIM_RETRIES
            or (pgdat_balanced(node, order, highest) and not pgdat_watermark_boosted(node, highest))):
        if not direct_reclaim:
            wakeup_kcompactd(node, order, highest)
        return
    first.zp[ZP_BG_PENDING] |= BG_KSWAPD


@jit
def balance_pgdat(node, order, highest):
    """balance_pgdat(): reclaim page cache until some zone up to `highest` meets its high
    watermark for `order`. A boost is reclaimed first (without writeback or swap, which the
    page cache does not need) while the node is balanced; an unbalanced node drops it and
    reclaims as usual. Each pass of the priority loop (DEF_PRIORITY down to 1) asks
    kswapd_shrink_node() for the zones' high watermarks (at least SWAP_CLUSTER_MAX each) and
    scans at most lru_size >> priority pages (SWAP_CLUSTER_MAX at least); once it has
    reclaimed compact_gap(order), kswapd balances for order 0. No progress: kswapd_failures++.
    Afterwards the boosts are cleared and, if there were any, kcompactd is woken for
    pageblock_order. Returns the order reclaimed for."""
    first = node[0]
    first.stat[PAGEOUTRUN] += 1
    nr_boost_reclaim = 0
    nr_to_reclaim = 0
    for i in range(len(node)):
        if node[i].zp[ZP_ZONE_IDX] <= highest:
            nr_boost_reclaim += node[i].zp[ZP_WMARK_BOOST]
            nr_to_reclaim += max(wmark_pages(node[i], ZP_WMARK_HIGH), SWAP_CLUSTER_MAX)
    boosted = nr_boost_reclaim > 0
    sc_order = order
    nr_reclaimed = 0
    priority = DEF_PRIORITY
    went_to_out = False
    while priority >= 1:
        balanced = pgdat_balanced(node, sc_order, highest)
        if not balanced and nr_boost_reclaim:
            nr_boost_reclaim = 0
            priority = DEF_PRIORITY        # restart
            continue
        if not nr_boost_reclaim and balanced:
            went_to_out = True
            break
        raise_priority = not (nr_boost_reclaim and priority == DEF_PRIORITY - 2)
        nr_to_scan = max(first.zp[ZP_NR_FILE] >> priority, SWAP_CLUSTER_MAX)
        got = shrink_page_cache(node, nr_to_reclaim, nr_to_scan, highest)
        first.stat[PGSTEAL_KSWAPD] += got
        nr_reclaimed += got
        if got:
            first.zp[ZP_KSWAPD_FAILURES] = 0
        if sc_order and nr_reclaimed >= (2 << sc_order):
            sc_order = 0
        if got >= nr_to_reclaim:
            raise_priority = False
        nr_boost_reclaim -= min(nr_boost_reclaim, got)
        if nr_boost_reclaim and not got:
            break
        if raise_priority or not got:
            priority -= 1
    if not went_to_out and nr_reclaimed == 0:
        first.zp[ZP_KSWAPD_FAILURES] += 1
    if boosted:
        for i in range(len(node)):
            if node[i].zp[ZP_ZONE_IDX] <= highest:
                node[i].zp[ZP_WMARK_BOOST] = 0
        wakeup_kcompactd(node, first.zp[ZP_PAGEBLOCK_ORDER], highest)
    return sc_order


@jit
def kswapd(node):
    """kswapd() from a wakeup to its next sleep: take the order and zone index it was woken for,
    balance_pgdat(); kswapd_try_to_sleep() lets it sleep only when the node is balanced (for the
    order reclaimed for, if a high-order reclaim fell back to order 0; else order 0) or
    hopeless, and then wakes kcompactd for the order it was woken for (or 0: none); until then
    it balances again for order 0."""
    first = node[0]
    order = first.zp[ZP_KSWAPD_ORDER]
    highest = first.zp[ZP_KSWAPD_HIGHEST]
    if highest < 0:
        highest = _highest_zone_idx(node)
    first.zp[ZP_KSWAPD_ORDER] = 0
    first.zp[ZP_KSWAPD_HIGHEST] = -1
    reclaim_order = balance_pgdat(node, order, highest)
    # a high-order reclaim that fell back to order 0 tries to sleep for the order it reclaimed
    # for; else the loop re-reads kswapd_order (0: nothing woke it meanwhile)
    alloc_order = order
    if reclaim_order >= order:
        alloc_order = reclaim_order = 0
    # kswapd_try_to_sleep(): a node neither balanced nor hopeless keeps kswapd awake, and it
    # balances again (for order 0) until it can sleep
    while not (first.zp[ZP_KSWAPD_FAILURES] >= MAX_RECLAIM_RETRIES
               or pgdat_balanced(node, reclaim_order, highest)):
        balance_pgdat(node, 0, highest)
        alloc_order = reclaim_order = 0
    reset_isolation_suitable(node)      # compaction may succeed now: forget the skip hints
    wakeup_kcompactd(node, alloc_order, highest)


EXTFRAG_THRESHOLD = 500      # sysctl_extfrag_threshold


@jit_fold
def compaction_suitable(z, order, highest):
    """compaction_suitable(): enough free memory for compaction to work with (the low watermark
    for costly orders, else min, plus compact_gap(), with the lowmem reserve the request's
    highest zone index keeps in this zone), and for costly orders a failure due to
    fragmentation, not lack of memory."""
    watermark = wmark_pages(z, ZP_WMARK_MIN) + (2 << order)
    if order > PAGE_ALLOC_COSTLY_ORDER:
        watermark += z.zp[ZP_WMARK_LOW] - z.zp[ZP_WMARK_MIN]
    if not zone_watermark_ok(z, 0, watermark, ALLOC_CMA, z.zp[ZP_LOWMEM_RESERVE + highest]):
        return False
    if order > PAGE_ALLOC_COSTLY_ORDER:
        fragindex = fragmentation_index(z.nr_free, order)
        if 0 <= fragindex <= EXTFRAG_THRESHOLD:
            return False
    return True


@jit_fold
def compaction_ready(z, order, highest):
    """compaction_ready() (mm/vmscan.c): reclaim for a costly order leaves the zone alone when
    the order is allocatable at the min watermark already, or compaction is suitable and the
    zone is above its high watermark plus compact_gap() (2 << order)."""
    reserve = z.zp[ZP_LOWMEM_RESERVE + highest]
    if zone_watermark_ok(z, order, wmark_pages(z, ZP_WMARK_MIN), 0, reserve):
        return True
    if not compaction_suitable(z, order, highest):
        return False
    return zone_watermark_ok_safe(z, 0, wmark_pages(z, ZP_WMARK_HIGH) + (2 << order), 0, reserve)


@jit
def direct_reclaim(node, highest, order):
    """__alloc_pages_direct_reclaim() -> try_to_free_pages(): reclaim SWAP_CLUSTER_MAX pages of
    page cache in the zones a request may use. For a costly order, shrink_zones() passes over
    the zones where compaction is ready (compaction_ready()) and reclaims only if some zone is
    not; do_try_to_free_pages() then reports progress (1) even when it reclaimed nothing
    ("aborted reclaim to try compaction"). Returns the pages reclaimed, or that 1. Progress from
    reclaimed pages resets kswapd_failures."""
    first = node[0]
    ready = False
    shrink = order <= PAGE_ALLOC_COSTLY_ORDER
    if not shrink:
        for i in range(len(node)):
            z = node[i]
            if z.zp[ZP_ZONE_IDX] > highest or z.zp[ZP_MANAGED] == 0:
                continue
            if compaction_ready(z, order, highest):
                ready = True
            else:
                shrink = True
    got = shrink_page_cache(node, SWAP_CLUSTER_MAX, 1 << 62, highest) if shrink else 0
    first.stat[PGSTEAL_DIRECT] += got
    if got:
        first.zp[ZP_KSWAPD_FAILURES] = 0
        return got
    return 1 if ready else 0


@jit_fold
def proactive_tick(first):
    """kcompactd's timer: every HPAGE_FRAG_CHECK_INTERVAL_MSEC of the simulated clock it looks at
    the node's fragmentation score (compaction.py: kcompactd())."""
    first.zp[ZP_PROACTIVE_COUNTDOWN] -= 1
    if first.zp[ZP_PROACTIVE_COUNTDOWN] <= 0:
        first.zp[ZP_PROACTIVE_COUNTDOWN] = first.zp[ZP_PROACTIVE_INTERVAL]
        first.zp[ZP_BG_PENDING] |= BG_PROACTIVE
