"""Replaying a real kernel's page allocator trace into the model (MODEL.md, "Trace replay").

Events arrive as parallel arrays (kind, pfn, order, mt, aux0, aux1); farm/real/replay.py builds them
from the ftrace event table. Two modes:

- pinned: every event is applied at the pfn the kernel used. mm_page_alloc_zone_locked takes a
  block off the buddy lists (onto a pcp list when it was a per-cpu refill), mm_page_pcpu_drain
  puts a pcp page back on the buddy lists with the type the event names, mm_page_free of a pcp
  order parks the page on a pcp list (unless the free interrupted the holder of that CPU's pcp
  lock: then, as free_one_page(), to the buddy) and of any other order frees it to the buddy at
  once, and
  mm_page_alloc_extfrag re-types the pageblocks the kernel claimed. The model's own policy
  decides nothing except how freed pages merge, which is what the kernel's rules decide too.
- policy: only mm_page_alloc and mm_page_free are used. Each allocation is placed by the model's
  policy (pcp lists included), and each free ends the allocation that held that pfn in the real
  trace, at the same offset in the model's block.

Where the trace and the model's state disagree (a page the trace frees is already free in the
model, a page it takes is not free), the event is applied as far as it can be and counted; the
counts are returned so that a replay reports how faithful it was.
"""

from ._jit import jit, jit_fold
from .constants import (
    MAX_CPUS,
    MIGRATE_ISOLATE, MIGRATE_MOVABLE, MIGRATE_PCPTYPES, PCP_COUNT, PG_BUDDY,
    PG_CONTIG, PG_HEAD, PG_LRU, PG_MASK, PG_PCP, PG_PINNED, PG_RESERVED, PGALLOC, PGFREE,
    ALLOC_OPS, FREE_OPS, ZP_MAX_ORDER, ZP_PAGEBLOCK_ORDER, ZP_PCP_BASE, ZP_ZONE_END,
    MERGE_HYGIENE, ZP_MERGE, ZP_PCP, ZP_PCP_COUNT, ZP_CPU, ZP_NR_CPUS, ZP_PCP_BANKS, NR_PCP_LISTS,
)
from .check import check_node
from .page_alloc import (
    _add_to_free_list, _del_page_from_free_list, _free_one_page, _free_to_buddy, _list_add,
    _list_add_tail, _move_freepages_block, _pcp_del, account_freepages, alloc_pages,
    change_pageblock_range, free_unref_page, get_pageblock_migratetype, largest_aligned_order,
    order_to_pindex,
    pcp_allowed_order, move_to_free_list, decay_pcp_high, page_zone, pcp_switch_cpu,
    refresh_vm_stats,
)
from .page_isolation import find_head

# Event kinds of the replay arrays
EV_ALLOC = 0         # mm_page_alloc (pfn, order, mt)
EV_FREE = 1          # mm_page_free (pfn, order, aux0 = 1: straight to the buddy, the pcp lock
                     #   being held by the code the free interrupted)
EV_ZONE_LOCKED = 2   # mm_page_alloc_zone_locked (pfn, order, mt, aux0 = percpu_refill)
EV_DRAIN = 3         # mm_page_pcpu_drain (pfn, order, mt)
EV_EXTFRAG = 4       # mm_page_alloc_extfrag (pfn, order = alloc_order, mt = alloc_migratetype,
                     #   aux0 = change_ownership, aux1 = fallback_order)
EVENT_KIND_NAMES = ("mm_page_alloc", "mm_page_free", "mm_page_alloc_zone_locked",
                    "mm_page_pcpu_drain", "mm_page_alloc_extfrag")

# Indices into the replay's counter array `rs`
RS_EVENTS = 0            # events applied
RS_FROM_BUDDY = 1        # mm_page_alloc of a page still on the buddy lists (capture, 6.10+ steal)
RS_FROM_UNKNOWN = 2      # mm_page_alloc of a page allocated in the model (pcp page at trace start)
RS_DRAIN_UNKNOWN = 3     # pcp drain of a page the model held as allocated (pcp page at trace start)
RS_TAKE_NOT_FREE = 4     # zone_locked / extfrag of pages that were not free in the model (pages)
RS_FREE_NOT_USED = 5     # free / drain of pages already free in the model (pages)
RS_CLAIMS = 6            # pageblocks re-typed by extfrag events
RS_FREE_TO_PCP = 7
RS_FREE_TO_BUDDY = 8
RS_ALLOC_FAILED = 9      # policy mode: the model could not place an allocation
RS_SAME_PFN = 10         # policy mode: allocations placed at the kernel's pfn
RS_ALLOCS = 11           # policy mode: allocations replayed
RS_FREE_SKIPPED = 12     # policy mode: frees of an allocation the model could not place
RS_SIZE = 16
RS_NAMES = ("events", "alloc_from_buddy", "alloc_from_unknown", "drain_unknown",
            "take_not_free_pages", "free_not_used_pages", "pageblocks_claimed", "free_to_pcp",
            "free_to_buddy", "alloc_failed", "same_pfn", "allocs", "free_skipped")


@jit
def _free_head_of(z, pfn):
    """The head of the free buddy block holding pfn, or -1."""
    h = find_head(z, pfn)
    if h >= 0 and (z.page_flags[h] & PG_BUDDY) and h + (1 << int(z.page_order[h])) > pfn:
        return h
    return -1


@jit_fold
def _give_back(z, start, end, mt):
    """Put [start, end) on the free lists in the largest naturally aligned pieces (list heads,
    as expand() does), without merging: the pieces' buddies are not free."""
    p = start
    while p < end:
        o = largest_aligned_order(p, end, z.zp[ZP_MAX_ORDER])
        _add_to_free_list(z, p, o, mt, False)
        account_freepages(z, 1 << o, mt)
        p += 1 << o


@jit
def take_off_buddy(z, start, end):
    """take_page_off_buddy() for a range: remove the free pages of [start, end) from the buddy
    lists; the rest of each free block they sit in goes back to that block's list. Returns the
    number of pages in the range that were not free."""
    not_free = 0
    p = start
    while p < end:
        h = _free_head_of(z, p)
        if h < 0:
            not_free += 1
            p += 1
            continue
        o = int(z.page_order[h])
        mt = int(z.page_mt[h])
        _del_page_from_free_list(z, h, o, mt)
        account_freepages(z, -(1 << o), mt)
        block_end = h + (1 << o)
        if h < p:
            _give_back(z, h, p, mt)
        if block_end > end:
            _give_back(z, end, block_end, mt)
            block_end = end
        p = block_end
    return not_free


@jit_fold
def _split_head(z, h):
    """split_page(): an allocated block becomes order-0 pages of the same type and flags."""
    o = int(z.page_order[h])
    bits = z.page_flags[h] & (PG_HEAD | PG_CONTIG)
    for q in range(h + 1, h + (1 << o)):
        z.page_flags[q] |= bits
        z.page_order[q] = 0
        z.page_mt[q] = z.page_mt[h]
        z.next[q] = -1
    z.page_order[h] = 0


@jit
def _pcp_owner(z, h):
    """The CPU whose pcp list holds block h (its list's order and type are recorded in
    page_order and page_mt): the CPU whose list of that (order, type) starts or ends where h's
    chain does, found from whichever end is nearer h. A trace's drains name the CPU that ran
    drain_all_pages(), not the one whose lists it drained, and a block of the initial state can
    sit on another CPU's list than the kernel's."""
    ncpu = z.zp[ZP_NR_CPUS]
    cur = z.zp[ZP_CPU]
    if ncpu == 1:
        return cur
    pindex = order_to_pindex(int(z.page_order[h]), int(z.page_mt[h]))
    base = z.zp[ZP_PCP_BASE] + pindex
    banks = z.zp[ZP_PCP_BANKS] + pindex
    a = h
    b = h
    while True:
        if z.prev[a] < 0:
            for c in range(ncpu):
                if z.list_head[base if c == cur else banks + c * NR_PCP_LISTS] == a:
                    return c
            return cur
        if z.next[b] < 0:
            for c in range(ncpu):
                if z.list_tail[base if c == cur else banks + c * NR_PCP_LISTS] == b:
                    return c
            return cur
        a = z.prev[a]
        b = z.next[b]


@jit
def _pcp_remove(z, h):
    """Take a block off the pcp list it sits on, whichever CPU's (_pcp_owner()); the count
    of that CPU drops."""
    cur = z.zp[ZP_CPU]
    c = _pcp_owner(z, h)
    pcp_switch_cpu(z, c)
    _pcp_del(z, order_to_pindex(int(z.page_order[h]), int(z.page_mt[h])), h)
    pcp_switch_cpu(z, cur)


@jit
def _unown(z, start, end):
    """Make every page of [start, end) that the model holds allocated or on a pcp list an unowned
    page (no flags), splitting blocks that stick out of the range. Free pages are left alone.
    Returns the number of free pages met."""
    free_met = 0
    p = start
    while p < end:
        f = z.page_flags[p]
        h = p if f & (PG_HEAD | PG_PCP | PG_BUDDY) else find_head(z, p)
        if h < 0 or (z.page_flags[p] & PG_RESERVED):
            p += 1
            continue
        o = int(z.page_order[h])
        hf = z.page_flags[h]
        if hf & PG_BUDDY:
            stop = min(h + (1 << o), end)
            free_met += stop - p
            p = stop
            continue
        if hf & PG_PCP:
            _pcp_remove(z, h)
            # the parts outside the range stay allocated, as order-0 pages
            for q in range(h, h + (1 << o)):
                if q < start or q >= end:
                    z.page_flags[q] |= PG_HEAD
                    z.page_order[q] = 0
            p = max(p, h)
            continue
        if h < start or h + (1 << o) > end:
            _split_head(z, h)
            continue
        for q in range(h, h + (1 << o)):
            z.page_flags[q] &= PG_MASK ^ (PG_HEAD | PG_CONTIG | PG_LRU | PG_PINNED)
        z.page_order[h] = -1
        z.next[h] = -1
        p = h + (1 << o)
    return free_met


@jit
def _mark_allocated(z, pfn, order, mt):
    """The block [pfn, pfn + 2^order) is allocated with type mt (PageLRU when movable)."""
    z.page_flags[pfn] |= PG_HEAD
    z.page_order[pfn] = order
    z.page_mt[pfn] = mt
    z.next[pfn] = -1
    if mt == MIGRATE_MOVABLE:
        for q in range(pfn, pfn + (1 << order)):
            z.page_flags[q] |= PG_LRU


@jit
def _to_pcp(z, pfn, order, mt, tail):
    """Park a block on the pcp list of (order, mt); mt >= MIGRATE_PCPTYPES goes to MOVABLE."""
    if mt >= MIGRATE_PCPTYPES:
        mt = MIGRATE_MOVABLE
    li = z.zp[ZP_PCP_BASE] + order_to_pindex(order, mt)
    if tail:
        _list_add_tail(z.list_head, z.list_tail, z.next, z.prev, li, pfn)
    else:
        _list_add(z.list_head, z.list_tail, z.next, z.prev, li, pfn)
    z.page_flags[pfn] |= PG_PCP
    z.page_order[pfn] = order
    z.page_mt[pfn] = mt
    z.stat[PCP_COUNT] += 1 << order
    z.zp[ZP_PCP_COUNT] += 1 << order


@jit_fold
def _free_pages_one_by_one(z, start, end, mt):
    """Free every unowned, non-reserved page of [start, end) to the buddy (merging)."""
    for q in range(start, end):
        f = z.page_flags[q]
        if f & (PG_RESERVED | PG_HEAD | PG_PCP | PG_BUDDY):
            continue
        if _free_head_of(z, q) >= 0:
            continue
        _free_one_page(z, q, 0, mt, False)


@jit
def _exact(z, pfn, order, flag):
    return (z.page_flags[pfn] & flag) != 0 and z.page_order[pfn] == order


@jit_fold
def _free_block(z, pfn, order, mt, rs):
    """Free [pfn, pfn + 2^order) to the buddy, whatever the model held there (counting pages
    that were free already)."""
    end = pfn + (1 << order)
    if _exact(z, pfn, order, PG_HEAD):
        _unown(z, pfn, end)
        if mt < 0:
            _free_to_buddy(z, pfn, order, False)
        else:
            _free_one_page(z, pfn, order, mt, False)
        return
    rs[RS_FREE_NOT_USED] += _unown(z, pfn, end)
    _free_pages_one_by_one(z, pfn, end, get_pageblock_migratetype(z, pfn) if mt < 0 else mt)


@jit_fold
def _retype_claimed(z, pfn, fallback_order, mt, rs):
    """What mm_page_alloc_extfrag with change_ownership reports: the pageblocks of the fallback
    block (or pfn's pageblock) became mt, with their free pages."""
    pb_order = z.zp[ZP_PAGEBLOCK_ORDER]
    if fallback_order >= pb_order:
        base = pfn & ~((1 << fallback_order) - 1)
        n = 1 << (fallback_order - pb_order)
    else:
        base = (pfn >> pb_order) << pb_order
        n = 1
    for b in range(n):
        start = base + (b << pb_order)
        if start >= z.zp[ZP_ZONE_END]:
            break
        if z.pb_mt[start >> pb_order] != mt:
            rs[RS_CLAIMS] += 1
        change_pageblock_range(z, start, pb_order, mt)
        _move_freepages_block(z, start, mt)


@jit
def replay_pinned(node, kind, pfn, order, mt, aux0, aux1, cpu, first, last, rs, check_every):
    """Apply events [first, last) at their pfns, each in the zone that spans its pfn, with
    check_zone every `check_every` events (0: never). Event i runs on CPU cpu[i]: a refill or a
    free onto a pcp list goes to that CPU's list; an allocation or drain takes the block off the
    list it is on (_pcp_remove()). CPU 0 is loaded at the end. Returns (0, -1), or the first
    check error and the index of its event."""
    hygiene = node[0].zp[ZP_MERGE] == MERGE_HYGIENE
    for i in range(first, last):
        k = kind[i]
        p = pfn[i]
        z = node[page_zone(node, p)]
        pcp_switch_cpu(z, cpu[i])
        o = int(order[i])
        m = int(mt[i])
        end = p + (1 << o)
        if k == EV_ZONE_LOCKED:
            rs[RS_TAKE_NOT_FREE] += take_off_buddy(z, p, end)
            _unown(z, p, end)
            if aux0[i]:
                _to_pcp(z, p, o, m, True)
            else:
                _mark_allocated(z, p, o, m)
        elif k == EV_ALLOC:
            if _exact(z, p, o, PG_PCP):
                _pcp_remove(z, p)
            elif _free_head_of(z, p) >= 0:
                rs[RS_FROM_BUDDY] += 1
                take_off_buddy(z, p, end)
                _unown(z, p, end)
            else:
                if not _exact(z, p, o, PG_HEAD):
                    rs[RS_FROM_UNKNOWN] += 1
                _unown(z, p, end)
                take_off_buddy(z, p, end)
            _mark_allocated(z, p, o, m)
            z.stat[ALLOC_OPS] += 1
            z.stat[PGALLOC] += 1 << o
        elif k == EV_FREE:
            z.stat[FREE_OPS] += 1
            z.stat[PGFREE] += 1 << o
            block_mt = get_pageblock_migratetype(z, p)
            # aux0: the pcp lock was held by the code this free interrupted (free_one_page())
            if pcp_allowed_order(z, o) and block_mt != MIGRATE_ISOLATE and aux0[i] == 0:
                if _exact(z, p, o, PG_HEAD):
                    _unown(z, p, end)
                else:
                    rs[RS_FREE_NOT_USED] += _unown(z, p, end)
                    take_off_buddy(z, p, end)
                _to_pcp(z, p, o, block_mt, False)
                rs[RS_FREE_TO_PCP] += 1
            else:
                _free_block(z, p, o, -1, rs)
                rs[RS_FREE_TO_BUDDY] += 1
        elif k == EV_DRAIN:
            if _exact(z, p, o, PG_PCP):
                _pcp_remove(z, p)
                _free_one_page(z, p, o, m, False)
            else:
                if _exact(z, p, o, PG_HEAD):
                    rs[RS_DRAIN_UNKNOWN] += 1
                _free_block(z, p, o, m, rs)
        elif k == EV_EXTFRAG:
            if aux0[i]:
                _retype_claimed(z, p, int(aux1[i]), m, rs)
            elif not hygiene:
                # <= 6.9 steal of a single block: the free block moves to the requested type
                h = _free_head_of(z, p)
                if h >= 0 and int(z.page_mt[h]) != m:
                    move_to_free_list(z, h, int(z.page_order[h]), m)
            if hygiene and _free_head_of(z, p) >= 0:
                # 6.10+: the stolen page leaves the buddy here, without a zone_locked event
                take_off_buddy(z, p, end)
                _unown(z, p, end)
                _mark_allocated(z, p, o, m)
        rs[RS_EVENTS] += 1
        if check_every > 0 and (i - first + 1) % check_every == 0:
            code, where = check_node(node)
            if code:
                return code, i
    for zi in range(len(node)):
        pcp_switch_cpu(node[zi], 0)
    return 0, -1


@jit
def real_owners(kind, pfn, order, nr_pages, alloc_of, offset_of, owner, base):
    """For policy replay: which allocation event each free ends in the real trace. For every
    mm_page_free event j, alloc_of[j] = index of the mm_page_alloc event that held pfn[j]
    (-1: a page allocated before the trace) and offset_of[j] = pfn[j] - that allocation's pfn.
    `owner` (nr_pages, int64) and `base` are scratch."""
    for q in range(nr_pages):
        owner[q] = -1
    for i in range(kind.shape[0]):
        k = kind[i]
        p = pfn[i]
        o = int(order[i])
        if k == EV_ALLOC:
            base[i] = p
            for q in range(p, min(p + (1 << o), nr_pages)):
                owner[q] = i
        elif k == EV_FREE:
            a = owner[p] if p < nr_pages else -1
            alloc_of[i] = a
            offset_of[i] = p - base[a] if a >= 0 else 0
            for q in range(p, min(p + (1 << o), nr_pages)):
                owner[q] = -1


@jit
def replay_policy(node, kind, pfn, order, mt, aux0, cpu, alloc_of, offset_of, placed, first, last,
                  rs, check_every, ts, ticks, tick_cpu):
    """Replay mm_page_alloc / mm_page_free events [first, last) with the model's policy placing
    every allocation (aux0: its `extra`, GFP_ATOMIC or 0); placed[i] is the model's pfn for
    allocation event i (-1: failed). A free
    with aux0 = 1 goes straight to the buddy (the kernel's free found the CPU's pcp lock held,
    whatever page it frees: see replay_pinned). The vmstat update's decay_pcp_high() and
    refresh_vm_stats() run on CPU tick_cpu[t] before the first event at or after each time
    ticks[t] (ascending, trace clock). Event i runs on CPU cpu[i] (its pcp lists and
    state: pcp_switch_cpu()); CPU 0 is loaded at the end."""
    t = 0
    while t < ticks.shape[0] and first < last and ticks[t] < ts[first]:
        t += 1
    for i in range(first, last):
        while t < ticks.shape[0] and ts[i] >= ticks[t]:
            for zi in range(len(node)):
                pcp_switch_cpu(node[zi], tick_cpu[t])
                decay_pcp_high(node[zi])
                refresh_vm_stats(node[zi])
            t += 1
        for zi in range(len(node)):
            pcp_switch_cpu(node[zi], cpu[i])
        k = kind[i]
        o = int(order[i])
        if k == EV_ALLOC:
            p = alloc_pages(node, o, int(mt[i]), aux0[i])
            placed[i] = p
            rs[RS_ALLOCS] += 1
            if p < 0:
                rs[RS_ALLOC_FAILED] += 1
            elif p == pfn[i]:
                rs[RS_SAME_PFN] += 1
        elif k == EV_FREE:
            a = alloc_of[i]
            if a >= 0:
                if placed[a] < 0:
                    rs[RS_FREE_SKIPPED] += 1
                    continue
                p = placed[a] + offset_of[i]
            else:
                p = pfn[i]
            end = p + (1 << o)
            z = node[page_zone(node, p)]
            z.stat[FREE_OPS] += 1
            z.stat[PGFREE] += 1 << o
            if _exact(z, p, o, PG_HEAD):
                _unown(z, p, end)
            else:
                rs[RS_FREE_NOT_USED] += _unown(z, p, end)
                if _free_head_of(z, p) >= 0:
                    continue
            if z.zp[ZP_PCP] and pcp_allowed_order(z, o) and aux0[i] == 0:
                free_unref_page(z, p, o)
            else:
                _free_to_buddy(z, p, o, False)
        else:
            continue
        rs[RS_EVENTS] += 1
        if check_every > 0 and rs[RS_EVENTS] % check_every == 0:
            code, where = check_node(node)
            if code:
                return code, i
    for zi in range(len(node)):
        pcp_switch_cpu(node[zi], 0)
    return 0, -1


@jit
def build_state(z, free_start, free_order, alloc_pfn, alloc_order, alloc_mt, pcp_pfn, pcp_order,
                pcp_mt):
    """Initial state of a replay: free blocks (already decomposed, in pfn order, appended to the
    tails of their pageblock type's lists), allocated blocks, and pcp blocks."""
    for i in range(free_start.shape[0]):
        p = free_start[i]
        o = int(free_order[i])
        m = get_pageblock_migratetype(z, p)
        _add_to_free_list(z, p, o, m, True)
        account_freepages(z, 1 << o, m)
    for i in range(alloc_pfn.shape[0]):
        _mark_allocated(z, alloc_pfn[i], int(alloc_order[i]), int(alloc_mt[i]))
    for i in range(pcp_pfn.shape[0]):
        _to_pcp(z, pcp_pfn[i], int(pcp_order[i]), int(pcp_mt[i]), True)


@jit
def first_touch(kind, pfn, order, mt, nr_pages, seen, out_pfn, out_order, out_mt):
    """Pages on a pcp list when the trace starts: blocks whose first event is an mm_page_alloc
    (taken from a pcp list, no zone_locked before it) or a pcp drain, with the type that event
    names. Writes them to out_* and returns how many. `seen` (nr_pages, uint8) is scratch."""
    n = 0
    for i in range(kind.shape[0]):
        k = kind[i]
        if k == EV_EXTFRAG:
            continue
        p = pfn[i]
        if p < 0 or p >= nr_pages:
            continue
        o = int(order[i])
        if not seen[p] and (k == EV_ALLOC or k == EV_DRAIN):
            untouched = True
            for q in range(p, min(p + (1 << o), nr_pages)):
                if seen[q]:
                    untouched = False
                    break
            if untouched and n < out_pfn.shape[0]:
                out_pfn[n] = p
                out_order[n] = o
                out_mt[n] = mt[i]
                n += 1
        for q in range(p, min(p + (1 << o), nr_pages)):
            seen[q] = 1
    return n


@jit
def untraced_pcp_allocs(kind, pfn, order, mt, aux0, cpu, zone, rec_of, recs, lists, out_at, out_pfn):
    """Allocations the trace does not show: alloc_pages_bulk() (vmalloc'd memory such as a forked
    task's kernel stack) takes pages off the head of a CPU's order-0 pcp list without an
    mm_page_alloc event. A refill (mm_page_alloc_zone_locked, percpu_refill) appends its pages to
    the tail of (CPU, order, type)'s list in event order; frees add at the head and drains take
    from the tail, so the refilled pages of one list leave it by allocation in refill order. When
    a traced allocation takes a refilled page while pages refilled before it into the same list
    have neither been allocated nor drained, those pages left by an untraced allocation before
    it. Each zone has its own lists: `zone` gives the zone of each event's page. Writes, for
    each, the index of the revealing event (out_at, ascending) and the page (out_pfn); returns
    how many. Scratch, filled with -1: rec_of (int64, a page per pfn: its live refill record),
    recs (int64 [4, events]: page, next record of the list, list, done), lists (int64
    [2, zones * MAX_CPUS * 64 * 8]: oldest record not known gone, newest record)."""
    n_ev = kind.shape[0]
    nr_pages = rec_of.shape[0]
    rec_pfn = recs[0]
    rec_next = recs[1]
    rec_list = recs[2]
    done = recs[3]
    head = lists[0]
    tail = lists[1]
    nrec = 0
    n = 0
    for i in range(n_ev):
        k = kind[i]
        p = pfn[i]
        if p < 0 or p >= nr_pages:
            continue
        if k == EV_ZONE_LOCKED:
            if aux0[i] != 1:
                continue
            if cpu[i] < 0 or cpu[i] >= MAX_CPUS or order[i] >= 64 or mt[i] < 0 or mt[i] >= 8:
                continue
            lid = ((zone[i] * MAX_CPUS + cpu[i]) * 64 + order[i]) * 8 + mt[i]
            if lid >= head.shape[0]:
                continue
            r = nrec
            nrec += 1
            rec_pfn[r] = p
            rec_list[r] = lid
            old = rec_of[p]
            if old >= 0:
                done[old] = 1
            rec_of[p] = r
            if tail[lid] >= 0:
                rec_next[tail[lid]] = r
            else:
                head[lid] = r
            tail[lid] = r
        elif k == EV_ALLOC or k == EV_DRAIN or k == EV_FREE:
            r = rec_of[p]
            if r < 0:
                continue
            rec_of[p] = -1
            lid = rec_list[r]
            if k == EV_ALLOC and order[i] == (lid // 8) % 64:
                h = head[lid]
                while h >= 0 and h != r:
                    if done[h] < 0 and n < out_at.shape[0]:
                        out_at[n] = i
                        out_pfn[n] = rec_pfn[h]
                        n += 1
                        rec_of[rec_pfn[h]] = -1
                    done[h] = 1
                    h = rec_next[h]
            done[r] = 1
            h = head[lid]
            while h >= 0 and done[h] >= 0:
                h = rec_next[h]
            head[lid] = h
            if h < 0:
                tail[lid] = -1
    return n


@jit
def decompose_free(is_free, start, end, max_order, out_pfn, out_order):
    """Cut the free pages of [start, end) into the largest naturally aligned blocks of at most
    max_order (what the buddy allocator's merging leaves when nothing stops a merge). Returns
    the number of blocks."""
    n = 0
    p = start
    while p < end:
        if not is_free[p]:
            p += 1
            continue
        q = p
        while q < end and is_free[q]:
            q += 1
        while p < q:
            o = largest_aligned_order(p, q, max_order)
            out_pfn[n] = p
            out_order[n] = o
            n += 1
            p += 1 << o
    return n
