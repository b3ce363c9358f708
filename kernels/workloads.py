"""Seeded, parameterised workloads that drive the allocator model.

Each workload is a jitted loop over the zone and an explicit RNG state (rng.py); all parameters
are arguments, so a sweep can vary any of them without recompiling.
"""

import numpy as np
from ._jit import jit

from .check import check_node
from .compaction import GFP_NORETRY, alloc_pages_gfp
from .page_isolation import CONTIG_OK, cma_alloc, cma_release, offline_pages, online_pages
from .constants import PG_HEAD, PG_PINNED, ZP_MANAGED
from .page_alloc import alloc_pages, drain_all_pages, free_pages
from .rng import randbelow, uniform


@jit
def _pick_order(rng, cum_weights):
    """Sample an order from cumulative weights (index = order)."""
    u = uniform(rng) * cum_weights[-1]
    for o in range(cum_weights.shape[0]):
        if u < cum_weights[o]:
            return o
    return cum_weights.shape[0] - 1


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


@jit
def _own(node, pfn, slot):
    z = node[0]
    z.owner[slot] = pfn
    z.next[pfn] = slot


@jit
def _release(node, slot):
    """Free the block a slot holds; returns the pages freed."""
    pfn = node[0].owner[slot]
    order = int(node[0].page_order[pfn])
    free_pages(node, pfn)
    return 1 << order


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
WP_SIZE = 14

# Engine counters (int64 array `ws`)
WS_HEAP = 0
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
WS_SIZE = 11


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
def steady_state(node, cc, rng, ops, wp, cum_orders, slots, ht, hs, ws, reasons, area, check_every):
    """The engine of `mixed`, `thp`, `cma` and `hotplug`: a steady state of movable, unmovable and
    reclaimable allocations with exponential lifetimes around a target occupancy.

    Each operation first frees every block whose lifetime has ended, then allocates one block (a
    class by weight, an order from the class's small-order mix `cum_orders[class]`; a movable
    allocation is a THP fault of order THP_ORDER with probability THP_FRACTION: direct compaction
    once (__GFP_NORETRY), falling back to an order-0 page). At or above the target occupancy the
    operation frees the block that would expire first instead (reclaim). Every PERIOD operations
    the periodic action runs (cma_alloc of CMA_COUNT pages, or offlining a random memory block
    of the `area` list), held for HOLD operations. Returns (check error code, pfn)."""
    managed = 0
    for i in range(len(node)):
        managed += node[i].zp[ZP_MANAGED]
    target = int(wp[WP_OCCUPANCY] * managed)
    life = (wp[WP_LIFE_UNMOVABLE], wp[WP_LIFE_MOVABLE], wp[WP_LIFE_RECLAIMABLE])
    thp_order = int(wp[WP_THP_ORDER])
    period = int(wp[WP_PERIOD])
    action = int(wp[WP_ACTION])
    t0 = ws[WS_OPS]
    for step in range(ops):
        now = t0 + step
        while ws[WS_HEAP] > 0 and ht[0] <= now:
            slot = _heap_pop(ht, hs, ws)
            ws[WS_USED] -= _release(node, slot)
            slots[ws[WS_FREE_SLOTS]] = slot
            ws[WS_FREE_SLOTS] += 1
        if action != 0 and ws[WS_HELD_PFN] >= 0 and now >= ws[WS_HELD_UNTIL]:
            _periodic_undo(node, action, ws, area)
        if action != 0 and period > 0 and step % period == period - 1 and ws[WS_HELD_PFN] < 0:
            _periodic_do(node, rng, action, wp, ws, area, reasons, now)
        if ws[WS_USED] >= target and ws[WS_HEAP] > 0:
            slot = _heap_pop(ht, hs, ws)
            ws[WS_USED] -= _release(node, slot)
            slots[ws[WS_FREE_SLOTS]] = slot
            ws[WS_FREE_SLOTS] += 1
        elif ws[WS_FREE_SLOTS] > 0:
            cls = _pick_class(rng, wp)
            order = _pick_order(rng, cum_orders[cls])
            extra = 0
            pfn = -1
            if cls == 1:
                if uniform(rng) < wp[WP_PINNED_FRACTION]:
                    extra = PG_PINNED
                if wp[WP_THP_FRACTION] > 0 and uniform(rng) < wp[WP_THP_FRACTION]:
                    pfn = alloc_pages_gfp(node, cc, thp_order, 1, extra, GFP_NORETRY)
                    if pfn >= 0:
                        order = thp_order
                        ws[WS_THP_FAULT_ALLOC] += 1
                    else:
                        ws[WS_THP_FAULT_FALLBACK] += 1
                        order = 0
            if pfn < 0:
                pfn = alloc_pages(node, order, cls, extra)
            if pfn >= 0:
                ws[WS_FREE_SLOTS] -= 1
                slot = slots[ws[WS_FREE_SLOTS]]
                _own(node, pfn, slot)
                ws[WS_USED] += 1 << order
                _heap_push(ht, hs, ws, now + _exp_ops(rng, life[cls]), slot)
            else:
                ws[WS_ALLOC_FAILED] += 1
        if check_every > 0 and (step + 1) % check_every == 0:
            code, where = check_node(node)
            if code:
                return code, where
    ws[WS_OPS] = t0 + ops
    return 0, -1


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
    anon page and the pages of all files but one in `keep_file_one_in`. `kind[slot]` records what
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
        if check_every > 0 and (i + 1) % check_every == 0:
            code, where = check_node(node)
            if code:
                return code, where, 0, pipes
    kept = 0
    for f in range(nfiles):
        if randbelow(rng, keep_file_one_in) == 0:
            kept += 1
            continue
        for sl in range(files[2 * f], files[2 * f] + files[2 * f + 1]):
            free_pages(node, node[0].owner[sl])
            kind[sl] = -1
    for sl in range(nslots):
        if kind[sl] == 0:
            free_pages(node, node[0].owner[sl])
            kind[sl] = -1
    return 0, -1, kept, pipes


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
