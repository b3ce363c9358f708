"""Tests of the reference model's highatomic reserve (RefZone / RefNode ``alloc(..., atomic=True)``).

Expected values are derived by hand, in the comments, from mm/page_alloc.c of 6.1 (policies v5.4
and v6.1) and 6.12 (v6.10, v6.15, v6.16, v6.17, nomobility): gfp_to_alloc_flags(),
__zone_watermark_unusable_free(), __zone_watermark_ok(), rmqueue_buddy(),
get_page_from_freelist()'s try_this_zone, reserve_highatomic_pageblock(),
unreserve_highatomic_pageblock(), should_reclaim_retry() and __alloc_pages_slowpath().

Most tests share one zone (``_reserved_zone``): 512 pages, MAX_PAGE_ORDER 4, pageblock_order 2
(pageblocks of 4 pages, 128 of them), min_free_kbytes 20. Watermarks (__setup_per_zone_wmarks()
for a zone that is all of lowmem): min = 20 / 4 = 5, low = 5 + max(5 / 4, 512 * 10 / 10000) = 6,
high = 7. An atomic request's slow path (ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK) tests
min - 5 / 2 = 3, then 3 - 3 / 4 = 3. managed / 100 = 5: 6.12 reserves at most ALIGN(5, 4) = 8
pages (2 pageblocks), 6.1 at most while the count is below 5 + 4 = 9 (3 pageblocks).
"""

import pytest

from reference import (ALLOC_HIGHATOMIC, ALLOC_MIN_RESERVE, ALLOC_NON_BLOCK, HIGHATOMIC, MOVABLE,
                       POLICIES, UNMOVABLE, ZONE_DMA32, ZONE_NORMAL, RefNode, RefZone,
                       gfp_to_alloc_flags)

U, M, HA = UNMOVABLE, MOVABLE, HIGHATOMIC
MOBILITY_POLICIES = tuple(p for p in POLICIES if p != "nomobility")
V61_RULES = ("v5.4", "v6.1")
# the policies whose boot lists are in ascending pfn order (FPI_TO_TAIL; v5.4 frees to the head)
TO_TAIL_MOBILITY = tuple(p for p in MOBILITY_POLICIES if p != "v5.4")


def delta(before, after):
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


def _types(z, changes, default=M):
    """The zone's expected pageblock types: ``default`` but for ``{pageblock: type}``."""
    out = [default] * z.nr_pageblocks
    for pb, mt in changes.items():
        out[pb] = mt
    return out


def _base(policy):
    # Boot frees the 32 order-4 blocks in ascending order: to the tail of free_list[4][MOVABLE]
    # (FPI_TO_TAIL), or on v5.4 to its head. 31 order-4 allocations take the list's head each
    # time and leave the block 496 (to the tail) or 0 (v5.4).
    return 0 if policy == "v5.4" else 496


def _reserved_zone(policy):
    """_reserved_zone: a zone (see the module docstring) with one pageblock reserved.

    1. 31 x alloc(4, M): the fast path passes while free - 15 > low 6, i.e. down to free = 32;
       free 512 -> 16, the block ``base`` left.
    2. alloc(3, M): 16 - 7 = 9 > 6: base@3; expand puts base+8@3 on the MOVABLE list. Free 8.
    3. alloc(1, M): 8 - 1 = 7 > 6: base+8 splits into base+12@2, base+10@1 and base+8@1,
       allocated. Free 6.
    4. alloc(1, U, atomic): fast path 6 - 1 = 5 <= low 6 fails. Slow path with ALLOC_MIN_RESERVE
       | ALLOC_NON_BLOCK | ALLOC_HIGHATOMIC: 5 > 3; the order loop finds base+10 at order 1.
       rmqueue_buddy(): __rmqueue_smallest(HIGHATOMIC) finds nothing; __rmqueue(1, U): no
       UNMOVABLE block; the fallback's largest MOVABLE block is base+12@2, a whole pageblock:
       claimed (pageblock (base+12)/4 -> UNMOVABLE), split into base+14@1 (UNMOVABLE) and
       base+12@1, allocated. reserve_highatomic_pageblock(base+12, 1): nothing reserved yet,
       pageblock UNMOVABLE (mergeable), order 1 < pageblock_order 2: the pageblock becomes
       HIGHATOMIC and its free page base+14 moves to free_list[1][HIGHATOMIC] (6.12:
       move_freepages_block(); 6.1: set_pageblock_migratetype() + move_freepages_block());
       nr_reserved_highatomic = 4. Free 4: base+10@1 MOVABLE, base+14@1 HIGHATOMIC.

    Returns the zone and {name: pfn} of the allocations."""
    z = RefZone(512, 4, 2, policy=policy, min_free_kbytes=20)
    assert z.watermarks() == (5, 6, 7)
    base = _base(policy)
    fills = [z.alloc(4, M) for _ in range(31)]
    assert sorted(fills) == [p for p in range(0, 512, 16) if p != base]
    a3 = z.alloc(3, M)
    a1 = z.alloc(1, M)
    before = z.counters()
    at = z.alloc(1, U, atomic=True)
    assert (a3, a1, at) == (base, base + 8, base + 12)
    d = delta(before, z.counters())
    d.pop("orders_scanned")      # the fallback's order loops differ by policy
    assert d == {"alloc_ops": 1, "pgalloc": 2, "split_steps": 1, "fallback_claim": 1,
                 "wmark_orders_scanned": 1, "nr_free_pages": -2,
                 "nr_reserved_highatomic": 4, "nr_free_highatomic": 2}
    z.check()
    return z, dict(first_fill=fills[0], a3=a3, a1=a1, atomic=at)


# --------------------------------------------------------------------------- alloc flags


def test_gfp_to_alloc_flags():
    # GFP_ATOMIC: __GFP_HIGH (ALLOC_MIN_RESERVE), no __GFP_DIRECT_RECLAIM and no
    # __GFP_NOMEMALLOC (ALLOC_NON_BLOCK), ALLOC_HIGHATOMIC for order > 0; GFP_KERNEL: none.
    assert gfp_to_alloc_flags(0, True) == ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK
    assert gfp_to_alloc_flags(1, True) == ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK | ALLOC_HIGHATOMIC
    assert gfp_to_alloc_flags(3, False) == 0


@pytest.mark.parametrize("policy", POLICIES)
def test_atomic_watermark_reductions(policy):
    # 64 pages, min_free_kbytes 52: min 13, low 13 + max(13 / 4, 0) = 16. __zone_watermark_ok()
    # with ALLOC_MIN_RESERVE: min -= min / 2 -> 13 - 6 = 7; with ALLOC_NON_BLOCK: min -= min / 4
    # -> 7 - 1 = 6. Order-0 requests until one fails, from free 64: the fast path passes while
    # free > 16 (48 pages), then a GFP_KERNEL request's slow path while free > 13 (3 more: 51),
    # an atomic one's while free > 6 (10 more: 58). Order 0: no ALLOC_HIGHATOMIC, no reserve.
    for atomic, n in ((False, 51), (True, 58)):
        z = RefZone(64, 4, 2, policy=policy, min_free_kbytes=52)
        assert z.watermarks() == (13, 16, 19)
        got = [z.alloc(0, M, atomic=atomic) for _ in range(n + 1)]
        assert -1 not in got[:n] and got[n] == -1
        assert z.counters()["nr_free_pages"] == 64 - n
        assert z.counters()["nr_reserved_highatomic"] == 0
        z.check()


# --------------------------------------------------------------------------- (a) fast path


@pytest.mark.parametrize("policy", POLICIES)
def test_atomic_request_that_passes_the_fast_path_reserves_nothing(policy):
    # On the fresh zone 512 - 1 > low 6: the fast path (ALLOC_WMARK_LOW, no reserve flags)
    # serves the atomic order-1 request exactly as a GFP_KERNEL one: no ALLOC_HIGHATOMIC, so
    # no HIGHATOMIC lists first and no reserve_highatomic_pageblock().
    z = RefZone(512, 4, 2, policy=policy, min_free_kbytes=20)
    twin = RefZone(512, 4, 2, policy=policy, min_free_kbytes=20)
    assert z.alloc(1, U, atomic=True) == twin.alloc(1, U)
    assert z.free_lists() == twin.free_lists()
    assert z.pageblock_types() == twin.pageblock_types()
    assert z.counters() == twin.counters()
    assert z.counters()["nr_reserved_highatomic"] == 0
    assert HA not in z.pageblock_types()
    z.check()


# --------------------------------------------------------------------------- (b) the reserve


@pytest.mark.parametrize("policy", MOBILITY_POLICIES)
def test_slow_path_atomic_request_reserves_its_pageblock(policy):
    # Derivation in _reserved_zone(), step 4; 6.12 and 6.1 reach the same state here.
    z, _ = _reserved_zone(policy)
    base = _base(policy)
    assert z.free_lists() == {(1, M): [base + 10], (1, HA): [base + 14]}
    assert z.pageblock_types() == _types(z, {(base + 12) >> 2: HA})
    c = z.counters()
    assert (c["nr_reserved_highatomic"], c["nr_free_highatomic"], c["nr_free_pages"]) == (4, 2, 4)


def test_slow_path_reserve_without_mobility():
    # nomobility: everything is UNMOVABLE; steps 1-3 of _reserved_zone leave 506@1 and 508@2 on
    # the UNMOVABLE lists. The atomic order-1 request takes 506 from free_list[1][UNMOVABLE]
    # (no fallback); its pageblock [504, 508) (504@1 and 506@1 allocated) becomes HIGHATOMIC,
    # set_pageblock_migratetype() leaving types >= MIGRATE_PCPTYPES as they are: no free page
    # to move, nr_reserved_highatomic 4, nr_free_highatomic 0.
    z = RefZone(512, 4, 2, policy="nomobility", min_free_kbytes=20)
    for _ in range(31):
        z.alloc(4, M)
    assert (z.alloc(3, M), z.alloc(1, M)) == (496, 504)
    assert z.alloc(1, U, atomic=True) == 506
    assert z.free_lists() == {(2, U): [508]}
    assert z.pageblock_types() == _types(z, {126: HA}, default=U)
    c = z.counters()
    assert (c["nr_reserved_highatomic"], c["nr_free_highatomic"]) == (4, 0)
    z.check()


# --------------------------------------------------------------------------- (c) limits


@pytest.mark.parametrize("policy", POLICIES)
def test_reserve_limit_of_each_version(policy):
    # min_free_kbytes 3200: min 800, low 1000; an atomic request tests 800 - 400 = 400,
    # 400 - 100 = 300. Every atomic request fails the fast path (free <= 512) and passes the
    # slow one (free - 1 > 300). Seven atomic order-1 UNMOVABLE requests:
    #  1. claims the first order-4 block b (pageblocks b/4..b/4+3 UNMOVABLE), takes b@1 and
    #     leaves b+8@3, b+4@2, b+2@1; reserves pageblock b/4 (b+2 -> HIGHATOMIC): 4 pages.
    #  2. HIGHATOMIC first: b+2; reserve: its pageblock is HIGHATOMIC, not mergeable: nothing.
    #  3. no HIGHATOMIC page: b+4@2 splits, b+4 taken; reserves pageblock b/4+1 (b+6 moves): 8.
    #  4. HIGHATOMIC: b+6.
    #  5. b+8@3 splits (b+12@2, b+10@1), b+8 taken; 6.12: 8 >= ALIGN(512/100, 4) = 8, no more;
    #     6.1: 8 < 512/100 + 4 = 9: pageblock b/4+2 reserved (b+10 moves): 12.
    #  6. 6.12: b+10 from the UNMOVABLE list; 6.1: b+10 from the HIGHATOMIC list.
    #  7. b+12@2 splits (b+14@1 UNMOVABLE), b+12 taken; 6.1: 12 >= 9, nothing.
    z = RefZone(512, 4, 2, policy=policy, min_free_kbytes=3200)
    assert z.watermarks() == (800, 1000, 1200)
    b = 496 if policy == "v5.4" else 0
    other = U if policy == "nomobility" else M
    assert [z.alloc(1, U, atomic=True) for _ in range(7)] == [b + i for i in range(0, 14, 2)]
    pb = b >> 2
    if policy in V61_RULES:
        changes, reserved = {pb: HA, pb + 1: HA, pb + 2: HA, pb + 3: U}, 12
    else:
        changes, reserved = {pb: HA, pb + 1: HA, pb + 2: U, pb + 3: U}, 8
    assert z.pageblock_types() == _types(z, changes, default=other)
    assert {k: v for k, v in z.free_lists().items() if k[0] < 4} == {(1, U): [b + 14]}
    c = z.counters()
    assert (c["nr_reserved_highatomic"], c["nr_free_highatomic"]) == (reserved, 0)
    z.check()


@pytest.mark.parametrize("policy", TO_TAIL_MOBILITY)
def test_no_reserve_below_one_percent_of_a_pageblock_on_6_12(policy):
    # 399 managed pages: 399 / 100 = 3 < pageblock_nr_pages 4: 6.12 reserves nothing. 6.1's
    # limit is 3 + 4 = 7: reserves at 0 and 4 (< 7), not at 8. The same seven-request pattern
    # as above (five requests): 0, 2, 4, 6, 8.
    z = RefZone(399, 4, 2, policy=policy, min_free_kbytes=3200)
    assert [z.alloc(1, U, atomic=True) for _ in range(5)] == [0, 2, 4, 6, 8]
    if policy in V61_RULES:
        assert z.pageblock_types()[:4] == [HA, HA, U, U]
        assert z.counters()["nr_reserved_highatomic"] == 8
    else:
        assert z.pageblock_types()[:4] == [U, U, U, U]
        assert z.counters()["nr_reserved_highatomic"] == 0
    z.check()


@pytest.mark.parametrize("policy", TO_TAIL_MOBILITY)
def test_reserve_of_a_block_above_pageblock_order(policy):
    # Atomic order-3 request (min_free_kbytes 3200 as above): claims 0@4 (pageblocks 0-3
    # UNMOVABLE), takes 0@3, leaves 8@3. reserve_highatomic_pageblock(0, 3): 6.12, order >=
    # pageblock_order: change_pageblock_range() over both pageblocks, nr += 1 << 3 = 8;
    # 6.1: only the page's pageblock, nr += 4.
    z = RefZone(512, 4, 2, policy=policy, min_free_kbytes=3200)
    assert z.alloc(3, U, atomic=True) == 0
    v61 = policy in V61_RULES
    assert z.pageblock_types()[:4] == ([HA, U, U, U] if v61 else [HA, HA, U, U])
    assert z.counters()["nr_reserved_highatomic"] == (4 if v61 else 8)
    # Freed: 6.12 splits it per pageblock (split_large_buddy), 0@2 and 4@2 HIGHATOMIC merge
    # (same type) into 0@3, which does not merge with 8@3 UNMOVABLE (HIGHATOMIC is not
    # mergeable); 6.1 frees 0@3 with pageblock 0's type, HIGHATOMIC, and the same holds.
    z.free(0)
    assert {k: v for k, v in z.free_lists().items() if k[0] < 4} == {(3, U): [8], (3, HA): [0]}
    assert z.counters()["nr_free_highatomic"] == 8
    # A non-atomic order-0 MOVABLE request fails (free 512 <= min 800), so it unreserves
    # (force): the first HIGHATOMIC page is 0@3. 6.12, order >= pageblock_order:
    # move_to_free_list() + change_pageblock_range() of both pageblocks, nr -= max(4, 8) = 8;
    # 6.1: set_pageblock_migratetype() of pageblock 0 and move_freepages_block() of it (0@3
    # moves whole), nr -= 4. The retry fails again, the next unreserve finds nothing: -1.
    assert z.alloc(0, M) == -1
    assert z.pageblock_types()[:4] == ([M, U, U, U] if v61 else [M, M, U, U])
    assert {k: v for k, v in z.free_lists().items() if k[0] < 4} == {(3, U): [8], (3, M): [0]}
    c = z.counters()
    assert (c["nr_reserved_highatomic"], c["nr_free_highatomic"], c["alloc_fail"]) == (0, 0, 1)
    z.check()        # 0@3 MOVABLE and 8@3 UNMOVABLE stay unmerged, as in the kernel


@pytest.mark.parametrize("policy", TO_TAIL_MOBILITY)
def test_reserve_of_a_pageblock_straddling_the_zone(policy):
    # A zone [1, 513) of a 513-pfn node: pageblock 0 ([0, 4)) straddles its start. Boot: 1@0,
    # 2@1, 4@2, 8@3, 16@4 ... 496@4, 512@0. Atomic order-1 MOVABLE (min_free_kbytes 3200: slow
    # path) takes 2, the only order-1 block. 6.12: prep_move_freepages_block() fails
    # (zone_spans_pfn(zone, 0) is false), move_freepages_block() returns -1: nothing reserved.
    # 6.1: nr += 4 and the pageblock is set HIGHATOMIC first; move_freepages_block() then starts
    # at the page itself (the pageblock's start is outside the zone): 2 is allocated, 3 its
    # tail, nothing moves, and the free 1@0 stays on the MOVABLE list in a HIGHATOMIC pageblock.
    z = RefZone(513, 4, 2, policy=policy, min_free_kbytes=3200, zone_start=1)
    assert z.managed_pages == 512
    assert z.free_lists()[(0, M)] == [1, 512]
    assert z.alloc(1, M, atomic=True) == 2
    assert {k: v for k, v in z.free_lists().items() if k[0] < 4} == {
        (0, M): [1, 512], (2, M): [4], (3, M): [8]}
    if policy in V61_RULES:
        assert z.pageblock_types()[0] == HA
        assert z.counters()["nr_reserved_highatomic"] == 4
    else:
        assert z.pageblock_types()[0] == M
        assert z.counters()["nr_reserved_highatomic"] == 0
    assert z.counters()["nr_free_highatomic"] == 0
    z.check()


# --------------------------------------------------------------------------- (d) HIGHATOMIC first


@pytest.mark.parametrize("policy", MOBILITY_POLICIES)
def test_later_atomic_high_order_request_takes_highatomic_first(policy):
    # From _reserved_zone: free(base+8) merges with base+10@1 into base+8@2 (MOVABLE; its
    # order-2 buddy base+12 is allocated). Free 6: base+8@2 MOVABLE, base+14@1 HIGHATOMIC.
    z, a = _reserved_zone(policy)
    base = _base(policy)
    z.free(a["a1"])
    assert z.free_lists() == {(1, HA): [base + 14], (2, M): [base + 8]}
    # Atomic order-1 UNMOVABLE: fast path 6 - 1 - 2 (6.12 nr_free_highatomic; 6.1
    # nr_reserved_highatomic: 6 - 1 - 4) <= 6 fails; slow path 5 > 3, and the order loop passes
    # at order 1 on the HIGHATOMIC list (ALLOC_HIGHATOMIC): 1 order. rmqueue_buddy() tries
    # __rmqueue_smallest(HIGHATOMIC) first: base+14 at order 1 (1 order scanned), rather than
    # claiming base+8@2. The reserve sees a HIGHATOMIC pageblock: nothing more.
    before = z.counters()
    assert z.alloc(1, U, atomic=True) == base + 14
    assert delta(before, z.counters()) == {
        "alloc_ops": 1, "pgalloc": 2, "orders_scanned": 1, "wmark_orders_scanned": 1,
        "nr_free_pages": -2, "nr_free_highatomic": -2}
    assert z.free_lists() == {(2, M): [base + 8]}
    assert z.pageblock_types() == _types(z, {(base + 12) >> 2: HA})
    assert z.counters()["nr_reserved_highatomic"] == 4
    z.check()


# --------------------------------------------------------------------------- (e) watermarks


def _two_zone_node(policy):
    """A node of ZONE_DMA32 [0, 512) and ZONE_NORMAL [512, 1024), MAX_PAGE_ORDER 4,
    pageblock_order 2, min_free_kbytes 40: pages_min 10, each zone 10 * 512 / 1024 = 5, low 6,
    high 7; DMA32's lowmem_reserve[NORMAL] = [MOVABLE] = 512 / 256 = 2. The zonelist of any
    request is Normal, DMA32 (ALLOC_NOFRAGMENT in the fast path: no effect below).

    1. Normal: 31 x alloc(4, M) (Normal's fast path passes down to free 32), alloc(3, M) ->
       1008 (16 - 7 = 9 > 6), alloc(1, M) -> 1016 (8 - 1 = 7 > 6; 1020@2, 1018@1 left): free 6.
    2. DMA32 (Normal fails: 6 - 15 <= 6): 31 x alloc(4, M) (DMA32 passes while free - 15 > 6 + 2)
       leave 496@4; alloc(2, M) -> 496 (13 > 8), alloc(1, M) -> 500 (11 > 8), alloc(1, M) -> 502
       (9 > 8): free 8, 504@3.
    3. alloc(1, U, atomic): fast path Normal 5 <= 6, DMA32 7 <= 8; slow path Normal 5 > 3:
       1020@2 claimed, 1020@1 taken, pageblock 255 reserved with 1022@1. Normal: free 4,
       1018@1 MOVABLE, 1022@1 HIGHATOMIC."""
    n = RefNode(1024, 4, 2, policy=policy, dma32_end=512, min_free_kbytes=40)
    assert [n.zone_idx(i) for i in range(n.nr_zones)] == [ZONE_DMA32, ZONE_NORMAL]
    assert n.watermarks(0) == n.watermarks(1) == (5, 6, 7)
    assert n.lowmem_reserve(0)[ZONE_NORMAL] == 2
    assert [n.alloc(4, M) for _ in range(31)] == list(range(512, 1008, 16))
    assert (n.alloc(3, M), n.alloc(1, M)) == (1008, 1016)
    assert [n.alloc(4, M) for _ in range(31)] == list(range(0, 496, 16))
    assert (n.alloc(2, M), n.alloc(1, M), n.alloc(1, M)) == (496, 500, 502)
    assert n.alloc(1, U, atomic=True) == 1020
    assert n.free_lists(1) == {(1, M): [1018], (1, HA): [1022]}
    assert n.free_lists(0) == {(3, M): [504]}
    assert n.pageblock_types()[255] == HA
    n.check()
    return n


@pytest.mark.parametrize("policy", TO_TAIL_MOBILITY)
def test_fast_path_watermark_excludes_the_reserved_free_pages(policy):
    # From _two_zone_node: free 1016 (merges with 1018 into 1016@2 MOVABLE), 1020 (its
    # pageblock is HIGHATOMIC: merges with 1022 into 1020@2 on the HIGHATOMIC list; not with
    # 1016@2, HIGHATOMIC is not mergeable) and DMA32's 496@2. Normal: free 8, of which 4 are
    # free HIGHATOMIC pages (6.12 nr_free_highatomic 4) and nr_reserved_highatomic is 4 (6.1).
    n = _two_zone_node(policy)
    for pfn in (1016, 1020, 496):
        n.free(pfn)
    assert n.free_lists(1) == {(2, M): [1016], (2, HA): [1020]}
    assert n.free_lists(0) == {(2, M): [496], (3, M): [504]}
    # alloc(1, M) in the fast path: Normal 8 - 1 - 4 = 3 <= low 6 fails, only because of the
    # reserve (8 - 1 = 7 > 6 would pass and take 1016); DMA32 12 - 1 = 11 > 6 + 2 passes:
    # 496@2 splits, 496 taken, 498@1 left.
    assert n.alloc(1, M) == 496
    assert n.free_lists(1) == {(2, M): [1016], (2, HA): [1020]}
    assert n.free_lists(0) == {(1, M): [498], (3, M): [504]}
    assert n.counters()["nr_reserved_highatomic"] == 4
    n.check()


@pytest.mark.parametrize("policy", MOBILITY_POLICIES)
def test_6_1_counts_the_whole_reserve_unusable_6_12_only_its_free_pages(policy):
    # From _reserved_zone: free(base+8) (free 6), the atomic order-1 request takes base+14 from
    # the HIGHATOMIC list (as in the test above; free 4, no free HIGHATOMIC page left but 4
    # pages still reserved), then free(base) (base@3 MOVABLE; its buddy base+8@2 is of another
    # order): free 12, base@3 and base+8@2 MOVABLE.
    z, a = _reserved_zone(policy)
    base = _base(policy)
    z.free(a["a1"])
    assert z.alloc(1, U, atomic=True) == base + 14
    z.free(a["a3"])
    assert z.free_lists() == {(2, M): [base + 8], (3, M): [base]}
    c = z.counters()
    assert (c["nr_free_pages"], c["nr_reserved_highatomic"], c["nr_free_highatomic"]) == (12, 4, 0)
    # alloc(2, M): 6.12 subtracts nr_free_highatomic (0): 12 - 3 = 9 > 6 passes and takes
    # base+8@2. 6.1 subtracts nr_reserved_highatomic (4): 12 - 3 - 4 = 5 <= 6 and <= min 5
    # fail; unreserving finds no free HIGHATOMIC page (false): the request fails.
    if policy in V61_RULES:
        assert z.alloc(2, M) == -1
        assert z.counters()["alloc_fail"] == 1
    else:
        assert z.alloc(2, M) == base + 8
    z.check()


# --------------------------------------------------------------------------- (f) unreserve


@pytest.mark.parametrize("policy", MOBILITY_POLICIES)
def test_failing_request_unreserves_then_succeeds(policy):
    # From _reserved_zone, free(base+8): free 6 = base+8@2 MOVABLE + base+14@1 HIGHATOMIC.
    z, a = _reserved_zone(policy)
    base = _base(policy)
    z.free(a["a1"])
    # alloc(0, U), not atomic: fast path 6 - 2 (6.1: 6 - 4) <= 6, slow path <= min 5 (no
    # reserve flags: the reserve stays unusable): both fail. Order 0 <= PAGE_ALLOC_COSTLY_ORDER:
    # should_reclaim_retry() -> unreserve_highatomic_pageblock(ac, true): order 0 has no
    # HIGHATOMIC page, order 1 has base+14; its pageblock is HIGHATOMIC: nr -= 4 (6.12:
    # max(4, 2)); the pageblock is converted to ac->migratetype UNMOVABLE (6.12:
    # move_freepages_block(), order 1 < pageblock_order; 6.1: set_pageblock_migratetype() +
    # move_freepages_block()), base+14 to free_list[1][UNMOVABLE]. Retry: 6 > 5 passes;
    # __rmqueue_smallest(0, U) splits base+14: base+15@0 left.
    before = z.counters()
    assert z.alloc(0, U) == base + 14
    d = delta(before, z.counters())
    assert d == {"alloc_ops": 1, "pgalloc": 1, "split_steps": 1, "orders_scanned": 2,
                 "nr_free_pages": -1, "nr_reserved_highatomic": -4, "nr_free_highatomic": -2}
    assert z.free_lists() == {(0, U): [base + 15], (2, M): [base + 8]}
    assert z.pageblock_types() == _types(z, {(base + 12) >> 2: U})
    z.check()


@pytest.mark.parametrize("policy", MOBILITY_POLICIES)
def test_costly_request_does_not_unreserve(policy):
    # From _reserved_zone, free(base+8) and the first order-4 fill block: free 22 = 16 + 4
    # MOVABLE + 2 HIGHATOMIC. alloc(4, M), order 4 > PAGE_ALLOC_COSTLY_ORDER: fast path
    # 22 - 15 - 2 = 5 <= 6 (6.1: 22 - 15 - 4 = 3), slow path <= min 5: fails, and the slow path
    # goes to nopage before should_reclaim_retry(): nothing unreserved. (Without the reserve,
    # 22 - 15 = 7 passes both watermarks: the failure is due to the reserve alone.)
    z, a = _reserved_zone(policy)
    base = _base(policy)
    z.free(a["a1"])
    z.free(a["first_fill"])
    before = z.counters()
    assert z.alloc(4, M) == -1
    assert delta(before, z.counters()) == {"alloc_ops": 1, "alloc_fail": 1}
    assert z.pageblock_types() == _types(z, {(base + 12) >> 2: HA})
    assert z.free_lists()[(1, HA)] == [base + 14]
    # An order-3 request (not costly) in the same state passes: 22 - 7 - 2 > 6.
    assert z.alloc(3, M) == a["first_fill"]
    z.check()


def test_unreserve_without_force_keeps_the_last_pageblock():
    # unreserve_highatomic_pageblock(ac, false) skips a zone with nr_reserved_highatomic <=
    # pageblock_nr_pages (the kernel's direct-reclaim call, not on the model's path).
    z, _ = _reserved_zone("v6.15")
    assert z.unreserve_highatomic_pageblock(U, force=False) is False
    assert z.counters()["nr_reserved_highatomic"] == 4
    assert z.unreserve_highatomic_pageblock(U, force=True) is True
    assert z.counters()["nr_reserved_highatomic"] == 0
    assert z.unreserve_highatomic_pageblock(U, force=True) is False
    z.check()


# --------------------------------------------------------------------------- (g) order-0 atomic


@pytest.mark.parametrize("policy", MOBILITY_POLICIES)
def test_atomic_order0_takes_highatomic_when_rmqueue_fails(policy):
    # From _reserved_zone, free the atomic page base+12: its pageblock is HIGHATOMIC, it merges
    # with base+14@1 into base+12@2 HIGHATOMIC. Free 6: base+10@1 MOVABLE, 4 HIGHATOMIC.
    z, a = _reserved_zone(policy)
    base = _base(policy)
    z.free(a["atomic"])
    assert z.free_lists() == {(1, M): [base + 10], (2, HA): [base + 12]}
    # Atomic order-0 MOVABLE requests: ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK, no ALLOC_HIGHATOMIC
    # (order 0). Fast path 6 - 4 <= 6 fails (both versions subtract 4); slow path tests 3.
    #  1. 6 > 3: __rmqueue(0, M) splits base+10@1 (not the HIGHATOMIC lists first): base+10.
    #  2. 5 > 3: base+11.
    #  3. 4 > 3: __rmqueue() finds nothing (no MOVABLE page, no fallback); ALLOC_NON_BLOCK:
    #     __rmqueue_smallest(HIGHATOMIC) splits base+12@2: base+12, leaving base+14@1, base+13@0.
    #  4. 3 <= 3: fails (atomic: no unreserve).
    assert [z.alloc(0, M, atomic=True) for _ in range(4)] == [base + 10, base + 11, base + 12, -1]
    assert z.free_lists() == {(0, HA): [base + 13], (1, HA): [base + 14]}
    c = z.counters()
    assert (c["nr_reserved_highatomic"], c["nr_free_highatomic"], c["alloc_fail"]) == (4, 3, 1)
    z.check()


# --------------------------------------------------------------------------- (h) node


@pytest.mark.parametrize("policy", TO_TAIL_MOBILITY)
def test_node_unreserve_walks_the_zonelist_highest_zone_first(policy):
    n = _two_zone_node(policy)
    # 4. alloc(1, U, atomic) again: Normal fails the slow path too (4 - 1 = 3 <= 3); DMA32
    #    7 > 3 + 2: 504@3 claimed (pageblocks 126, 127 UNMOVABLE), 504@1 taken, 508@2 and
    #    506@1 left; pageblock 126 reserved with 506. DMA32: free 6.
    assert n.alloc(1, U, atomic=True) == 504
    assert n.free_lists(0) == {(1, HA): [506], (2, U): [508]}
    assert [z.counters()["nr_reserved_highatomic"] for z in n.zones] == [4, 4]
    # 5. free DMA32's 500 (500@1 MOVABLE; its buddy 502 is allocated): DMA32 free 8.
    n.free(500)
    # alloc(0, U): Normal 4 - 2 (6.1: - 4) <= low 6 and <= min 5; DMA32 8 - 2 = 6 (6.1: 4)
    # <= 6 + 2 and <= 5 + 2: all fail. unreserve (force) walks the zonelist from the top:
    # Normal's 1022 -> pageblock 255 UNMOVABLE; retry: Normal 4 <= 5, DMA32 still 6 <= 7.
    # Next unreserve: Normal has no HIGHATOMIC page, DMA32's 506 -> pageblock 126 UNMOVABLE;
    # retry: Normal fails, DMA32 8 > 7: 506@1 splits, 506 taken, 507@0 left.
    assert n.alloc(0, U) == 506
    assert n.free_lists(1) == {(1, M): [1018], (1, U): [1022]}
    assert n.free_lists(0) == {(0, U): [507], (1, M): [500], (2, U): [508]}
    assert n.pageblock_types()[255] == n.pageblock_types()[126] == U
    c = n.counters()
    assert (c["nr_reserved_highatomic"], c["nr_free_highatomic"], c["alloc_fail"]) == (0, 0, 0)
    n.check()


@pytest.mark.parametrize("policy", TO_TAIL_MOBILITY)
def test_node_unreserve_stops_at_the_first_zone_and_honours_highest_zoneidx(policy):
    n = _two_zone_node(policy)
    assert n.alloc(1, U, atomic=True) == 504      # as above: DMA32 reserves pageblock 126
    # A zonelist up to ZONE_DMA32 leaves Normal out: DMA32's block is converted.
    assert n.unreserve_highatomic_pageblock(M, True, ZONE_DMA32) is True
    assert (n.pageblock_types()[255], n.pageblock_types()[126]) == (HA, M)
    # The full zonelist converts Normal's and stops there.
    assert n.unreserve_highatomic_pageblock(M, True) is True
    assert n.pageblock_types()[255] == M
    assert n.unreserve_highatomic_pageblock(M, True) is False
    # RefNode.counters() sums the new keys over the zones.
    assert n.counters()["nr_reserved_highatomic"] == 0
    n.check()


def test_node_counters_sum_the_highatomic_counts():
    n = _two_zone_node("v6.15")
    n.alloc(1, U, atomic=True)
    c = n.counters()
    assert (c["nr_reserved_highatomic"], c["nr_free_highatomic"]) == (8, 4)
    assert c["nr_free_pages"] == sum(z.counters()["nr_free_pages"] for z in n.zones)


# --------------------------------------------------------------------------- frees and pcp


@pytest.mark.parametrize("policy", ("v6.1", "v6.10", "v6.15", "v6.16", "v6.17", "nomobility"))
def test_pcp_free_into_a_highatomic_pageblock(policy):
    # pcp on; min_free_kbytes 3200 (every atomic request takes the slow path, every other one
    # fails). batch 1. The atomic order-1 request refills its pcp list with one page: 0@4 is
    # claimed (6.1 and 6.12) or taken (nomobility) and split, 0@1 goes through the pcp list
    # and is returned; pageblock 0 is reserved with 2@1.
    z = RefZone(512, 4, 2, policy=policy, min_free_kbytes=3200, pcp=True)
    twin = RefZone(512, 4, 2, policy=policy, min_free_kbytes=3200, pcp=True)
    for zone in (z, twin):
        assert zone.alloc(1, U, atomic=True) == 0
        assert {k: v for k, v in zone.free_lists().items() if k[0] < 4} == {
            (1, HA): [2], (2, U): [4], (3, U): [8]}
        # free_unref_page(): pageblock type HIGHATOMIC >= MIGRATE_PCPTYPES and not ISOLATE:
        # onto the MOVABLE pcp list of order 1 (pindex 1 * 3 + MOVABLE = 4); no drain (count 2
        # < high).
        zone.free(0)
        assert zone.pcp_lists() == {4: [0]}
        zone.check()
    # Drained as is: 6.1 frees with the type recorded at free (HIGHATOMIC), 6.12 with the
    # pageblock's (HIGHATOMIC): 0@1 merges with 2@1 into 0@2 on the HIGHATOMIC list (not with
    # 4@2: HIGHATOMIC is not mergeable).
    z.drain()
    assert {k: v for k, v in z.free_lists().items() if k[0] < 4} == {
        (2, HA): [0], (2, U): [4], (3, U): [8]}
    assert z.counters()["nr_free_highatomic"] == 4
    z.check()
    # The twin unreserves while 0 sits on the pcp list: alloc(0, M) fails (free <= min 800);
    # pageblock 0 goes to the request's list type (MOVABLE; UNMOVABLE under nomobility) with
    # the free 2@1; the retry fails, nothing more to unreserve: -1. The pcp page is untouched.
    conv = U if policy == "nomobility" else M
    assert twin.alloc(0, M) == -1
    assert twin.pageblock_types()[0] == conv
    assert twin.pcp_lists() == {4: [0]}
    twin.drain()
    if policy == "v6.1":
        # 6.1: drained with the recorded HIGHATOMIC type: 0@1 merges with 2@1 (below the
        # pageblock order, whatever their lists) into 0@2 on the HIGHATOMIC list, in a MOVABLE
        # pageblock; HIGHATOMIC vs 4@2's UNMOVABLE pageblock: no further merge.
        assert {k: v for k, v in twin.free_lists().items() if k[0] < 4} == {
            (2, HA): [0], (2, U): [4], (3, U): [8]}
        assert twin.counters()["nr_free_highatomic"] == 4
    else:
        # 6.12: drained with the pageblock's current type: 0@1 merges with 2@1, then with 4@2
        # and 8@3 (mergeable types; the hygiene merge retypes the buddy's pageblocks) into
        # 0@4 on the converted type's list.
        assert {k: v for k, v in twin.free_lists().items() if k[0] < 4} == {}
        assert twin.free_lists()[(4, conv)][0] == 0
        assert twin.counters()["nr_free_highatomic"] == 0
    assert twin.counters()["nr_reserved_highatomic"] == 0
    twin.check()


# --------------------------------------------------------------------------- check()


def test_check_detects_highatomic_miscounts():
    z, _ = _reserved_zone("v6.15")
    z.nr_free_highatomic += 1
    with pytest.raises(AssertionError, match="nr_free_highatomic"):
        z.check()
    z.nr_free_highatomic -= 1
    z.nr_reserved_highatomic += 4          # 6.12: one HIGHATOMIC pageblock, 4 pages
    with pytest.raises(AssertionError, match="nr_reserved_highatomic"):
        z.check()
    z.nr_reserved_highatomic -= 4
    z.check()
