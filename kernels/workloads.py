"""Seeded, parameterised workloads that drive the allocator model.

Each workload is a jitted loop over the zone and an explicit RNG state (rng.py); all parameters
are arguments, so a sweep can vary any of them without recompiling.
"""

import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._jit import jit, jit_inline

from .check import check_node
from .compaction import alloc_pages_gfp, background
from .page_isolation import CONTIG_OK, cma_alloc, cma_release, offline_pages, online_pages
from .constants import (GFP_ATOMIC, MIGRATE_CMA, MIGRATE_UNMOVABLE, PAGE_ALLOC_COSTLY_ORDER,
                        PG_HEAD, PG_LRU, PG_PINNED, PGMIGRATE_SUCCESS, POLICY_V5_4, ZONE_MOVABLE,
                        ZP_BG_PENDING, ZP_MANAGED, ZP_POLICY, ZP_ZONE_IDX)
from .page_alloc import (alloc_pages, alloc_pages_inline, clear_flags_range,
                         drain_all_pages, free_owned, free_pages, get_pageblock_migratetype,
                         lru_add_file, page_zone, set_flags_range)
from .rng import randbelow, uniform


@jit
def _pick_order(rng, cum_weights):
    """Sample an order from cumulative weights (index = order)."""
    u = uniform(rng) * cum_weights[-1]
    for o in range(cum_weights.shape[0]):
        if u < cum_weights[o]:
            return o
    return cum_weights.shape[0] - 1


@jit_inline
def _background(node):
    """kswapd and kcompactd, when an allocation woke them (compaction.background())."""
    if node[0].zp[ZP_BG_PENDING]:
        background(node)


@jit
def longterm_pin(node, pfn, order):
    """pin_user_pages(FOLL_LONGTERM) of a movable block just faulted in
    (check_and_migrate_movable_pages(), mm/gup.c): a block in a CMA pageblock (every policy: 5.4
    has the CMA check) or in ZONE_MOVABLE (5.13+: not v5.4) is not long-term pinnable and is
    migrated first, to a page of GFP_USER (an UNMOVABLE request from the zones up to
    ZONE_NORMAL, no CMA: alloc_migration_target() with MR_LONGTERM_PIN); the pinned page is still
    an anonymous LRU page. No target: the pin fails (-ENOMEM) and the block stays where it is,
    unpinned. Returns where the block now is."""
    z = node[page_zone(node, pfn)]
    n = 1 << order
    in_cma = get_pageblock_migratetype(z, pfn) == MIGRATE_CMA
    in_movable = z.zp[ZP_ZONE_IDX] == ZONE_MOVABLE and z.zp[ZP_POLICY] != POLICY_V5_4
    if not (in_cma or in_movable):
        return pfn
    dst = alloc_pages(node, order, MIGRATE_UNMOVABLE, 0)
    if dst < 0:
        clear_flags_range(z.page_flags, pfn, n, PG_PINNED)
        return pfn
    dz = node[page_zone(node, dst)]
    set_flags_range(dz.page_flags, dst, n, PG_LRU | PG_PINNED)
    z.stat[PGMIGRATE_SUCCESS] += n
    free_pages(node, pfn)
    return dst


@jit
def smallpages(node, rng, ops, occupancy, cum_weights, mt, live, check_every):
    """`smallpages`: order-0 churn (optionally a small order mix) around a target occupancy.

    Below the target an operation allocates with probability 3/4, at or above it frees a random
    live block with probability 3/4, so occupancy wanders around the target while pages of every
    age are freed. Returns (live blocks, check error code, pfn of the error)."""
    managed = 0
    for i in range(len(node)):
        managed += node[i].zp[ZP_MANAGED]
    target = int(occupancy * managed)
    z = node[0]
    nlive = 0
    used = 0
    cap = live.shape[0]
    for i in range(ops):
        if nlive == 0:
            do_alloc = True
        elif nlive == cap:
            do_alloc = False
        elif used < target:
            do_alloc = uniform(rng) < 0.75
        else:
            do_alloc = uniform(rng) < 0.25
        if do_alloc:
            order = _pick_order(rng, cum_weights)
            pfn = alloc_pages(node, order, mt, 0)
            _background(node)
            if pfn >= 0:
                live[nlive] = pfn
                nlive += 1
                used += 1 << order
        else:
            k = randbelow(rng, nlive)
            pfn = live[k]
            nlive -= 1
            live[k] = live[nlive]
            used -= 1 << int(z.page_order[pfn])
            free_pages(node, pfn)
        if check_every > 0 and (i + 1) % check_every == 0:
            code, where = check_node(node)
            if code:
                return nlive, code, where
    return nlive, 0, -1


@jit
def free_all(node, live, nlive):
    """Free every block still allocated (in allocation-array order), then drain the pcp lists."""
    for k in range(nlive):
        pfn = live[k]
        if node[0].page_flags[pfn] & PG_HEAD:
            free_pages(node, pfn)
    drain_all_pages(node)


def live_capacity(nr_pages: int, occupancy: float) -> int:
    """Room for the live-allocation array: the target plus slack for excursions above it."""
    return int(min(nr_pages, int(occupancy * nr_pages) + 65536))




# ---------------------------------------------------------------------------------------------
# Owned allocations: the workload keeps a slot per live block; the node's owner table maps a
# slot to the block's pfn and follows the block when compaction or offlining migrates it.


@jit
def _heap_push(ht, hs, st, t, slot):
    """Binary min-heap of (expiry, slot) on preallocated arrays; st[0] is its size."""
    i = st[0]
    st[0] += 1
    ht[i] = t
    hs[i] = slot
    while i > 0:
        parent = (i - 1) >> 1
        if ht[parent] < ht[i] or (ht[parent] == ht[i] and hs[parent] <= hs[i]):
            break
        ht[parent], ht[i] = ht[i], ht[parent]
        hs[parent], hs[i] = hs[i], hs[parent]
        i = parent


@jit
def _heap_pop(ht, hs, st):
    """Remove and return the slot with the earliest expiry."""
    top = hs[0]
    st[0] -= 1
    n = st[0]
    ht[0] = ht[n]
    hs[0] = hs[n]
    i = 0
    while True:
        l = 2 * i + 1
        r = l + 1
        m = i
        if l < n and (ht[l] < ht[m] or (ht[l] == ht[m] and hs[l] < hs[m])):
            m = l
        if r < n and (ht[r] < ht[m] or (ht[r] == ht[m] and hs[r] < hs[m])):
            m = r
        if m == i:
            break
        ht[m], ht[i] = ht[i], ht[m]
        hs[m], hs[i] = hs[i], hs[m]
        i = m
    return top


# ---------------------------------------------------------------------------------------------
# The expiry queue of the steady-state engine: a timing wheel of WHEEL one-operation buckets
# over the next WHEEL operations, and the binary heap above for expiries further away (moved
# into the wheel when they come within range). Each bucket is a singly linked list of slots
# through `wnext` (the latest added first); `wbits` is a bitmap of the non-empty buckets in
# 32-bit words, with a summary level per 32 words up to a single word, so the earliest
# expiry (the reclaim rule) is found in a few word reads. The state lives in preallocated
# arrays (expiry_queue()) and the counters ws[WS_WHEEL] and ws[WS_HEAP].

WHEEL_BITS = 20
WHEEL = 1 << WHEEL_BITS
_WB_LEVELS = (WHEEL_BITS + 4) // 5
_wb_words, _wb_offs, _n, _o = [], [], WHEEL, 0
for _ in range(_WB_LEVELS):
    _n = (_n + 31) >> 5
    _wb_words.append(_n)
    _wb_offs.append(_o)
    _o += _n
_WB_WORDS = np.array(_wb_words, dtype=np.int64)
_WB_OFF = np.array(_wb_offs, dtype=np.int64)
WB_SIZE = _o
_MASK32 = 0xFFFFFFFF
# count trailing zeros of a 32-bit word: de Bruijn multiplication of its lowest set bit
_DEBRUIJN32 = np.array([0, 1, 28, 2, 29, 14, 24, 3, 30, 22, 20, 15, 25, 17, 4, 8,
                        31, 27, 13, 23, 21, 19, 16, 7, 26, 12, 18, 6, 11, 5, 10, 9], dtype=np.int64)


def expiry_queue(slots: int):
    """Empty expiry-queue arrays for `slots` owner slots: (wheel, wnext, wbits, ht, hs)."""
    return (np.full(WHEEL, -1, dtype=np.int32), np.full(max(slots, 1), -1, dtype=np.int32),
            np.zeros(WB_SIZE, dtype=np.int64), np.zeros(max(slots, 1), dtype=np.int64),
            np.zeros(max(slots, 1), dtype=np.int32))


@intrinsic
def _prefetch_ptr(typingctx, arr, idx):
    if not isinstance(arr, types.Array) or not isinstance(idx, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        ary = context.make_array(signature.args[0])(context, builder, args[0])
        i = context.cast(builder, args[1], signature.args[1], types.intp)
        voidptr = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [voidptr, i32, i32, i32]), "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(builder.gep(ary.data, [i]), voidptr), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


def prefetch(a, i):
    """Hint that a[i] will be read soon: a prefetch instruction, no load, never a fault (an
    index out of range is harmless). A no-op when run as plain Python."""


@overload(prefetch)
def _prefetch_impl(a, i):
    return lambda a, i: _prefetch_ptr(a, i)


@jit
def _ctz32(m):
    return _DEBRUIJN32[(((m & -m) * 0x077CB531) >> 27) & 31]


@jit
def _wheel_add(wheel, wnext, wbits, ws, t, slot):
    """Add slot to the bucket of time t (t within the next WHEEL operations)."""
    b = t & (WHEEL - 1)
    if wheel[b] < 0:
        i = b
        for lvl in range(_WB_LEVELS):
            w = _WB_OFF[lvl] + (i >> 5)
            old = wbits[w]
            wbits[w] = old | (1 << (i & 31))
            if old != 0:
                break
            i >>= 5
    wnext[slot] = wheel[b]
    wheel[b] = slot
    ws[WS_WHEEL] += 1


@jit
def _wheel_clear(wbits, b):
    """Bucket b became empty: clear its bit, and summary bits whose word became zero."""
    for lvl in range(_WB_LEVELS):
        w = _WB_OFF[lvl] + (b >> 5)
        new = wbits[w] & ~(1 << (b & 31))
        wbits[w] = new
        if new != 0:
            break
        b >>= 5


@jit
def _wheel_find(wbits, pos):
    """The first non-empty bucket at or after pos (no wrap-around), or -1."""
    idx = pos
    for lvl in range(_WB_LEVELS):
        w = idx >> 5
        if w < _WB_WORDS[lvl]:
            m = wbits[_WB_OFF[lvl] + w] & ((_MASK32 << (idx & 31)) & _MASK32)
            if m != 0:
                b = (w << 5) | _ctz32(m)
                for lower in range(lvl - 1, -1, -1):
                    b = (b << 5) | _ctz32(wbits[_WB_OFF[lower] + b])
                return b
        idx = w + 1
    return -1


@jit
def _expiry_add(wheel, wnext, wbits, ht, hs, ws, now, t, slot):
    """Queue slot to expire at operation t > now."""
    if t - now < WHEEL:
        _wheel_add(wheel, wnext, wbits, ws, t, slot)
    else:
        _heap_push(ht, hs, ws, t, slot)


@jit
def _expiry_due(wheel, wnext, wbits, ht, hs, ws, now):
    """Take the slots that expire at operation `now` (called for every operation in turn):
    returns the first, the others follow through wnext (-1 ends); the caller lowers
    ws[WS_WHEEL] by one for each. Heap entries that came within WHEEL operations move to the
    wheel first, so the wheel holds exactly the expiries of [now, now + WHEEL)."""
    while ws[WS_HEAP] > 0 and ht[0] < now + WHEEL:
        t = ht[0]
        _wheel_add(wheel, wnext, wbits, ws, t, _heap_pop(ht, hs, ws))
    b = now & (WHEEL - 1)
    head = wheel[b]
    if head >= 0:
        wheel[b] = -1
        _wheel_clear(wbits, b)
    return head


@jit
def _expiry_pop_first(wheel, wnext, wbits, ht, hs, ws, now):
    """Remove and return the slot with the earliest expiry (after now's own were taken by
    _expiry_due); among equal expiries the latest queued. ws[WS_FRONT] = its expiry time."""
    if ws[WS_WHEEL] == 0:
        ws[WS_FRONT] = ht[0]
        return _heap_pop(ht, hs, ws)
    b = _wheel_find(wbits, now & (WHEEL - 1))
    if b < 0:
        b = _wheel_find(wbits, 0)
    slot = wheel[b]
    wheel[b] = wnext[slot]
    if wheel[b] < 0:
        _wheel_clear(wbits, b)
    ws[WS_WHEEL] -= 1
    ws[WS_FRONT] = now + ((b - now) & (WHEEL - 1))
    return slot


@jit
def _own(node, pfn, slot):
    z = node[0]
    z.owner[slot] = pfn
    z.next[pfn] = slot


@jit
def _retire(node, rng, wp, slot):
    """The end of a block's lifetime: it is freed, or, for a file page (a share
    PAGECACHE_FRACTION of the movable blocks of the small-order mix that are not pinned, drawn
    here only when the share is not 0), it stays as clean page cache, which only reclaim frees
    (lru_add_file()). Returns the pages the workload no longer holds."""
    z = node[0]
    pfn = z.owner[slot]
    frac = wp[WP_PAGECACHE_FRACTION]
    if (frac > 0 and (z.page_flags[pfn] & (PG_LRU | PG_PINNED)) == PG_LRU
            and z.page_order[pfn] <= PAGE_ALLOC_COSTLY_ORDER and uniform(rng) < frac):
        n = lru_add_file(node, pfn)
        if n:
            return n
    return free_owned(node, pfn)


@jit
def _exp_ops(rng, mean):
    """An exponentially distributed lifetime in operations (at least 1)."""
    u = uniform(rng)
    return 1 + int(-mean * np.log(1.0 - u))


# Engine parameters (float64 array `wp`), shared by mixed, thp, cma and hotplug
WP_OCCUPANCY = 0
WP_W_MOVABLE = 1          # class weights
WP_W_UNMOVABLE = 2
WP_W_RECLAIMABLE = 3
WP_LIFE_MOVABLE = 4       # mean lifetime in operations
WP_LIFE_UNMOVABLE = 5
WP_LIFE_RECLAIMABLE = 6
WP_THP_FRACTION = 7       # share of movable allocations that are THP faults (order 9)
WP_PINNED_FRACTION = 8    # share of movable allocations that are pinned
WP_PERIOD = 9             # every PERIOD operations: the periodic action
WP_ACTION = 10            # 0 none, 1 cma_alloc + release, 2 offline + online a memory block
WP_CMA_COUNT = 11         # pages per cma_alloc
WP_HOLD = 12              # operations a cma allocation / offline block is held
WP_THP_ORDER = 13
WP_THP_GFP = 14           # the THP fault's gfp mode (compaction.GFP_*, from thp_defrag and thp_madvise)
WP_ATOMIC_FRACTION = 15   # share of unmovable allocations of order > 0 that are GFP_ATOMIC
WP_PAGECACHE_FRACTION = 16  # share of movable small-order allocations that are file pages
WP_SIZE = 17

# Engine counters (int64 array `ws`)
WS_HEAP = 0               # expiries in the heap (beyond the wheel)
WS_FREE_SLOTS = 1
WS_USED = 2
WS_THP_FAULT_ALLOC = 3
WS_THP_FAULT_FALLBACK = 4
WS_ACTIONS = 5
WS_ACTION_OK = 6
WS_HELD_PFN = 7
WS_HELD_UNTIL = 8
WS_OPS = 9
WS_ALLOC_FAILED = 10
WS_WHEEL = 11             # expiries in the wheel
WS_FRONT = 12             # expiry time of the last block freed by the reclaim rule
WS_DRAWN = 13             # 1: the next allocation's random choices below are drawn
WS_NEXT_CLASS = 14
WS_NEXT_ORDER = 15
WS_NEXT_EXTRA = 16        # PG_PINNED, GFP_ATOMIC or 0
WS_NEXT_THP = 17          # 1: a THP fault
WS_NEXT_LIFE = 18         # lifetime in operations
WS_SIZE = 19


@jit
def _pick_class(rng, wp):
    total = wp[WP_W_MOVABLE] + wp[WP_W_UNMOVABLE] + wp[WP_W_RECLAIMABLE]
    u = uniform(rng) * total
    if u < wp[WP_W_MOVABLE]:
        return 1
    if u < wp[WP_W_MOVABLE] + wp[WP_W_UNMOVABLE]:
        return 0
    return 2


@jit
def _draw_allocation(rng, wp, cum_orders, ws):
    """Draw the random choices of the next allocation, in this order: class, order, pinned and
    THP fault (movable only) or GFP_ATOMIC (unmovable of order > 0, drawn only when the share is
    not 0), lifetime. Drawn one allocation ahead, so that the wheel bucket
    of its expiry can be prefetched."""
    cls = _pick_class(rng, wp)
    ws[WS_NEXT_CLASS] = cls
    ws[WS_NEXT_ORDER] = _pick_order(rng, cum_orders[cls])
    ws[WS_NEXT_EXTRA] = 0
    ws[WS_NEXT_THP] = 0
    if cls == 1:
        if uniform(rng) < wp[WP_PINNED_FRACTION]:
            ws[WS_NEXT_EXTRA] = PG_PINNED
        if wp[WP_THP_FRACTION] > 0 and uniform(rng) < wp[WP_THP_FRACTION]:
            ws[WS_NEXT_THP] = 1
    elif (cls == 0 and ws[WS_NEXT_ORDER] > 0 and wp[WP_ATOMIC_FRACTION] > 0
            and uniform(rng) < wp[WP_ATOMIC_FRACTION]):
        ws[WS_NEXT_EXTRA] = GFP_ATOMIC
    if cls == 0:
        mean = wp[WP_LIFE_UNMOVABLE]
    elif cls == 1:
        mean = wp[WP_LIFE_MOVABLE]
    else:
        mean = wp[WP_LIFE_RECLAIMABLE]
    ws[WS_NEXT_LIFE] = _exp_ops(rng, mean)
    ws[WS_DRAWN] = 1


@jit
def steady_state(node, cc, rng, ops, wp, cum_orders, slots, wheel, wnext, wbits, ht, hs, ws, reasons,
                 area, check_every):
    """The engine of `mixed`, `thp`, `cma` and `hotplug`: a steady state of movable, unmovable and
    reclaimable allocations with exponential lifetimes around a target occupancy.

    Each operation first frees every block whose lifetime has ended, then allocates one block (a
    class by weight, an order from the class's small-order mix `cum_orders[class]`, then its
    lifetime, all drawn one allocation ahead by _draw_allocation; a movable allocation is a THP
    fault of order THP_ORDER with probability THP_FRACTION: direct compaction as its gfp mode
    THP_GFP allows (thp_defrag, thp_madvise), falling back to an order-0 page). At or above the
    target occupancy the operation frees the block that would expire first instead (reclaim;
    among equal expiries the one queued last, see _expiry_pop_first). Every PERIOD operations the
    periodic action runs (cma_alloc of CMA_COUNT pages, or offlining a random memory block of the
    `area` list), held for HOLD operations. Expiries are kept in the expiry queue (wheel ... hs, see
    expiry_queue()). Returns (check error code, pfn).

    The operations between two periodic events or checks run in _steady_ops, a loop without the
    rare paths: kept apart, the hot loop compiles to code about twice as fast."""
    managed = 0
    for i in range(len(node)):
        managed += node[i].zp[ZP_MANAGED]
    target = int(wp[WP_OCCUPANCY] * managed)
    period = int(wp[WP_PERIOD])
    action = int(wp[WP_ACTION])
    t0 = ws[WS_OPS]
    step = 0
    while step < ops:
        end = ops
        if check_every > 0:
            end = min(end, (step // check_every + 1) * check_every)
        first_done = False
        if action != 0:
            if _next_event(ws, t0, period, step) == step:
                now = t0 + step
                ws[WS_USED] -= _free_due(node, rng, wp, slots, wheel, wnext, wbits, ht, hs, ws, now)
                if ws[WS_HELD_PFN] >= 0 and now >= ws[WS_HELD_UNTIL]:
                    _periodic_undo(node, action, ws, area)
                if period > 0 and step % period == period - 1 and ws[WS_HELD_PFN] < 0:
                    _periodic_do(node, rng, action, wp, ws, area, reasons, now)
                first_done = True
            end = min(end, _next_event(ws, t0, period, step + 1))
        _steady_ops(node, cc, rng, wp, cum_orders, slots, wheel, wnext, wbits, ht, hs, ws, t0 + step,
                    t0 + end, target, first_done)
        step = end
        if check_every > 0 and step % check_every == 0:
            code, where = check_node(node)
            if code:
                ws[WS_OPS] = t0 + step
                return code, where
    ws[WS_OPS] = t0 + ops
    return 0, -1


@jit
def _next_event(ws, t0, period, step):
    """The first operation (counted from this call's start t0) at or after `step` where the
    periodic action is undone (a held allocation or block whose HOLD ended) or runs."""
    if ws[WS_HELD_PFN] >= 0:
        return max(step, ws[WS_HELD_UNTIL] - t0)
    if period <= 0:
        return 1 << 62
    return step + (period - 1 - step % period)


@jit
def _free_due(node, rng, wp, slots, wheel, wnext, wbits, ht, hs, ws, now):
    """Retire every block whose lifetime ends at `now`; returns the pages the workload no
    longer holds."""
    freed = 0
    slot = _expiry_due(wheel, wnext, wbits, ht, hs, ws, now)
    while slot >= 0:
        freed += _retire(node, rng, wp, slot)
        slots[ws[WS_FREE_SLOTS]] = slot
        ws[WS_FREE_SLOTS] += 1
        ws[WS_WHEEL] -= 1
        slot = wnext[slot]
    return freed


@jit
def _steady_ops(node, cc, rng, wp, cum_orders, slots, wheel, wnext, wbits, ht, hs, ws, start, end,
                target, first_done):
    """Operations start..end-1 of steady_state (no periodic event among them; when first_done,
    operation `start` has freed its expired blocks already)."""
    thp_order = int(wp[WP_THP_ORDER])
    thp_gfp = int(wp[WP_THP_GFP])
    for now in range(start, end):
        if not (first_done and now == start):
            ws[WS_USED] -= _free_due(node, rng, wp, slots, wheel, wnext, wbits, ht, hs, ws, now)
        if ws[WS_USED] >= target and ws[WS_WHEEL] + ws[WS_HEAP] > 0:
            slot = _expiry_pop_first(wheel, wnext, wbits, ht, hs, ws, now)
            ws[WS_USED] -= _retire(node, rng, wp, slot)
            slots[ws[WS_FREE_SLOTS]] = slot
            ws[WS_FREE_SLOTS] += 1
        elif ws[WS_FREE_SLOTS] > 0:
            if ws[WS_DRAWN] == 0:
                _draw_allocation(rng, wp, cum_orders, ws)
            cls = ws[WS_NEXT_CLASS]
            order = ws[WS_NEXT_ORDER]
            extra = ws[WS_NEXT_EXTRA]
            thp = ws[WS_NEXT_THP] != 0
            t = now + ws[WS_NEXT_LIFE]
            _draw_allocation(rng, wp, cum_orders, ws)
            # the next allocation's expiry bucket, if it comes at the next operation
            tn = (now + 1 + ws[WS_NEXT_LIFE]) & (WHEEL - 1)
            prefetch(wheel, tn)
            prefetch(wbits, tn >> 5)
            prefetch(wheel, t & (WHEEL - 1))
            pfn = -1
            if thp:
                pfn = alloc_pages_gfp(node, cc, thp_order, 1, extra, thp_gfp)
                if pfn >= 0:
                    order = thp_order
                    ws[WS_THP_FAULT_ALLOC] += 1
                else:
                    ws[WS_THP_FAULT_FALLBACK] += 1
                    order = 0
            if pfn < 0:
                pfn = alloc_pages_inline(node, order, cls, extra)
            if pfn >= 0 and extra & PG_PINNED:
                pfn = longterm_pin(node, pfn, order)
            _background(node)
            if pfn >= 0:
                ws[WS_FREE_SLOTS] -= 1
                slot = slots[ws[WS_FREE_SLOTS]]
                _own(node, pfn, slot)
                ws[WS_USED] += 1 << order
                _expiry_add(wheel, wnext, wbits, ht, hs, ws, now, t, slot)
            else:
                ws[WS_ALLOC_FAILED] += 1


@jit
def _periodic_do(node, rng, action, wp, ws, area, reasons, now):
    ws[WS_ACTIONS] += 1
    if action == 1:
        # area = [cma_start, cma_end, align]; the bitmap lives after them
        pfn = cma_alloc(node, area[0], area[1], int(wp[WP_CMA_COUNT]), area[2], area[4:], reasons)
        if pfn >= 0:
            ws[WS_ACTION_OK] += 1
            ws[WS_HELD_PFN] = pfn
            ws[WS_HELD_UNTIL] = now + int(wp[WP_HOLD])
    else:
        # area = [first block pfn, block pages, number of blocks]
        k = randbelow(rng, area[2])
        start = area[0] + k * area[1]
        r = offline_pages(node, start, area[1])
        reasons[r] += 1
        if r == CONTIG_OK:
            ws[WS_ACTION_OK] += 1
            ws[WS_HELD_PFN] = start
            ws[WS_HELD_UNTIL] = now + int(wp[WP_HOLD])


@jit
def _periodic_undo(node, action, ws, area):
    if action == 1:
        cma_release(node, area[0], ws[WS_HELD_PFN], area[3], area[4:])
    else:
        online_pages(node, ws[WS_HELD_PFN], area[1])
    ws[WS_HELD_PFN] = -1


@jit
def steady_state_drain(node, ws, action, area):
    """End of a steady-state run: nothing is freed (the final state is what probes look at),
    but a held CMA allocation or offline block is given back."""
    if action != 0 and ws[WS_HELD_PFN] >= 0:
        _periodic_undo(node, action, ws, area)


@jit
def fragmenter(node, rng, nr_anon, holders, files_every, file_pages_max, keep_file_one_in,
               reclaimable_every, kind, files, check_every):
    """`fragmenter`, the shape of work2.c and of mmtests' stress-highalloc: interleave movable
    anon pages and page-cache files (1..file_pages_max pages every `files_every` anon pages) with
    long-lived unmovable pages (a pipe buffer every nr_anon/holders anon pages, `holders` of
    them) and reclaimable slab (an inode page every `reclaimable_every` files); then free every
    anon page and the pages of all files but one in `keep_file_one_in`; the kept files' pages
    join the page cache's LRU (when the node has one), which reclaim may free. `kind[slot]` records what
    each owner slot holds; `files[2f], files[2f+1]` the first slot and page count of file f.
    Returns (check code, pfn, files kept, pipes held)."""
    nslots = 0
    nfiles = 0
    pipes = 0
    stride = nr_anon // max(holders, 1) + 1
    for i in range(nr_anon):
        pfn = alloc_pages(node, 0, 1, 0)
        if pfn >= 0:
            _own(node, pfn, nslots)
            kind[nslots] = 0          # anon
            nslots += 1
        if i % files_every == 0:
            k = randbelow(rng, file_pages_max) + 1
            first = nslots
            for w in range(k):
                pfn = alloc_pages(node, 0, 1, 0)
                if pfn >= 0:
                    _own(node, pfn, nslots)
                    kind[nslots] = 1  # page cache
                    nslots += 1
            files[2 * nfiles] = first
            files[2 * nfiles + 1] = nslots - first
            nfiles += 1
            if nfiles % reclaimable_every == 0:
                pfn = alloc_pages(node, 0, 2, 0)
                if pfn >= 0:
                    _own(node, pfn, nslots)
                    kind[nslots] = 3  # inode / dentry slab, kept
                    nslots += 1
        if i % stride == 0 and pipes < holders:
            pfn = alloc_pages(node, 0, 0, 0)
            if pfn >= 0:
                _own(node, pfn, nslots)
                kind[nslots] = 2      # pipe buffer, held by the long-lived holder
                nslots += 1
                pipes += 1
        _background(node)
        if check_every > 0 and (i + 1) % check_every == 0:
            code, where = check_node(node)
            if code:
                return code, where, 0, pipes
    kept = 0
    for f in range(nfiles):
        if randbelow(rng, keep_file_one_in) == 0:
            kept += 1
            # the kept file's pages stay in the page cache: reclaim may free them
            for sl in range(files[2 * f], files[2 * f] + files[2 * f + 1]):
                if lru_add_file(node, node[0].owner[sl]):
                    kind[sl] = 4      # page cache, no longer the workload's
            continue
        for sl in range(files[2 * f], files[2 * f] + files[2 * f + 1]):
            free_owned(node, node[0].owner[sl])
            kind[sl] = -1
    for sl in range(nslots):
        if kind[sl] == 0:
            free_owned(node, node[0].owner[sl])
            kind[sl] = -1
    return 0, -1, kept, pipes


@jit
def scatterer(node, rng, nr_fill, rounds, free_per_round, live, check_every):
    """`scatterer`, the shape of farm/real/workloads/scatterer.c: allocate `nr_fill` movable
    order-0 pages (anonymous memory), then for `rounds` rounds free 1..free_per_round of them
    at random (each page once) and allocate one unmovable order-0 page (a pipe buffer), which
    stays allocated; finally free every anonymous page left, in allocation-array order. With
    memory tight, the unmovable pages land in the holes the frees make in movable pageblocks.
    `live` holds the owner slots of the anonymous pages (swap-remove): the node's owner slot i
    follows the page of the i-th allocation wherever compaction moves it. Returns (check code,
    pfn, unmovable pages allocated, pages freed by the rounds)."""
    nlive = 0
    for i in range(nr_fill):
        pfn = alloc_pages(node, 0, 1, 0)
        if pfn >= 0:
            _own(node, pfn, nlive)
        _background(node)
        if pfn < 0:
            break
        live[nlive] = nlive
        nlive += 1
    pipes = 0
    freed = 0
    for r in range(rounds):
        n = 1 + randbelow(rng, free_per_round)
        for k in range(n):
            if nlive == 0:
                break
            j = randbelow(rng, nlive)
            slot = live[j]
            nlive -= 1
            live[j] = live[nlive]
            free_owned(node, node[0].owner[slot])
            freed += 1
        if alloc_pages(node, 0, 0, 0) >= 0:
            pipes += 1
        _background(node)
        if check_every > 0 and (r + 1) % check_every == 0:
            code, where = check_node(node)
            if code:
                return code, where, pipes, freed
    for j in range(nlive):
        free_owned(node, node[0].owner[live[j]])
    return 0, -1, pipes, freed


@jit
def run_ops(node, is_alloc, orders, victims, mt, live, out):
    """A recorded operation sequence (the reference-model benchmark runs the same one): an
    allocation of orders[i], or the free of live block victims[i] % (live blocks) (swap-remove).
    out[i] = the pfn allocated (-1: failed) or freed. Returns the live blocks left."""
    nlive = 0
    for i in range(is_alloc.shape[0]):
        if is_alloc[i] or nlive == 0:
            pfn = alloc_pages(node, int(orders[i]), mt, 0)
            out[i] = pfn
            if pfn >= 0:
                live[nlive] = pfn
                nlive += 1
        else:
            k = victims[i] % nlive
            pfn = live[k]
            nlive -= 1
            live[k] = live[nlive]
            out[i] = pfn
            free_pages(node, pfn)
    return nlive
