"""Distinguishing behaviour of each allocator policy, on small states reached through
alloc/free sequences. Every expected pfn, list and pageblock type below is derived by hand
from kernels/MODEL.md (the derivation is in the comments), not from running a model.

Geometry unless stated: max_order M = 5, pageblock_order P = 4 (16-page pageblocks, 32-page
max-order blocks), min_free_kbytes = 0 so the watermarks are min = 0, low = high = 0 and only
an empty zone refuses an allocation.
"""

import pytest

pytestmark = pytest.mark.kernels

from reference import MOVABLE, RECLAIMABLE, UNMOVABLE

U, M, R = UNMOVABLE, MOVABLE, RECLAIMABLE
MOBILITY = ("v5.4", "v6.1", "v6.10", "v6.15", "v6.16")
ALL = MOBILITY + ("nomobility",)


def small_zone(zone_factory, policy, nr_pages=32, **kw):
    kw.setdefault("min_free_kbytes", 0)
    z = zone_factory(nr_pages=nr_pages, max_order=5, pageblock_order=4, policy=policy, **kw)
    z.check()
    return z


def counter_delta(before, after):
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


# --------------------------------------------------------------------------- boot


@pytest.mark.parametrize("policy", ALL)
def test_boot_insertion_order(zone_factory, policy):
    # Two order-5 blocks. FPI_TO_TAIL appends 0 then 32; v5.4 frees at the head: [32, 0].
    z = small_zone(zone_factory, policy, nr_pages=64)
    boot_mt = U if policy == "nomobility" else M
    order = [32, 0] if policy == "v5.4" else [0, 32]
    assert z.free_lists() == {(5, boot_mt): order}
    assert z.pageblock_types() == [boot_mt] * 4
    assert z.buddyinfo() == [0, 0, 0, 0, 0, 2]


# --------------------------------------------------------------------------- (a) small movable steal


def _only_small_unmovable_buddy(zone_factory, policy):
    """N = 32. alloc(0, U) claims the whole order-5 block (both pageblocks -> U) and splits it
    onto U lists: 16@4, 8@3, 4@2, 2@1, 1@0. Allocating 1, 16, 8 and 4 leaves only the order-1
    buddy at pfn 2 on free_list[1][UNMOVABLE]; every MOVABLE list is empty."""
    z = small_zone(zone_factory, policy)
    assert z.alloc(0, U) == 0
    assert z.free_lists() == {(0, U): [1], (1, U): [2], (2, U): [4], (3, U): [8], (4, U): [16]}
    assert z.pageblock_types() == [U, U]
    assert [z.alloc(0, U), z.alloc(4, U), z.alloc(3, U), z.alloc(2, U)] == [1, 16, 8, 4]
    assert z.free_lists() == {(1, U): [2]}
    z.check()
    return z


@pytest.mark.parametrize("policy", ["v5.4", "v6.1"])
def test_small_movable_fallback_moves_whole_buddy_pre_hygiene(zone_factory, policy):
    # Order-1 buddy is below P // 2 = 2: no whole-block steal for MOVABLE. steal_suitable_fallback
    # moves the whole buddy to free_list[1][MOVABLE]; the retried __rmqueue_smallest splits it
    # there, so the remainder 3 lands on the MOVABLE order-0 list inside an UNMOVABLE pageblock.
    z = _only_small_unmovable_buddy(zone_factory, policy)
    before = z.counters()
    assert z.alloc(0, M) == 2
    assert z.free_lists() == {(0, M): [3]}
    assert z.pageblock_types() == [U, U]
    d = counter_delta(before, z.counters())
    assert d["fallback_steal"] == 1 and "fallback_claim" not in d
    z.check()


@pytest.mark.parametrize("policy", ["v6.10", "v6.15", "v6.16"])
def test_small_movable_fallback_takes_only_the_chunk_hygiene(zone_factory, policy):
    # Hygiene: only the requested chunk is taken; expand() leaves the remainder 3 on the
    # block's own type, UNMOVABLE.
    z = _only_small_unmovable_buddy(zone_factory, policy)
    before = z.counters()
    assert z.alloc(0, M) == 2
    assert z.free_lists() == {(0, U): [3]}
    assert z.pageblock_types() == [U, U]
    d = counter_delta(before, z.counters())
    assert d["fallback_steal"] == 1 and "fallback_claim" not in d
    z.check()


def test_small_movable_fallback_orders_scanned(zone_factory):
    # orders_scanned of the alloc(0, MOVABLE) above, loop by loop (orders 0..5 = 6 per full scan):
    # v6.15, v6.16: smallest MOVABLE 6 + smallest CMA (ALLOC_CMA) 6 + claim o=5,4,3,2 (no buddy)
    #        and o=1 (should_try_claim_block false: stop, counted; in v6.15 because o=1 holds a
    #        fallback block) 5 + steal o=0,1 2 = 19.
    # v6.10: 6 + 6 + top-down o=5..1 5 + bottom-up o=0,1 2 = 19.
    # v6.1:  v6.10's 19 + the retried smallest o=0,1 2 = 21.
    expected = {"v6.16": 19, "v6.15": 19, "v6.10": 19, "v6.1": 21}
    for policy, scans in expected.items():
        z = _only_small_unmovable_buddy(zone_factory, policy)
        before = z.counters()
        z.alloc(0, M)
        d = counter_delta(before, z.counters())
        assert d["orders_scanned"] == scans, policy
        assert d.get("wmark_orders_scanned", 0) == 0   # order 0 passes the gate without a scan


# --------------------------------------------------------------------------- (b) claim >= pageblock_order


@pytest.mark.parametrize("policy", MOBILITY)
def test_fallback_on_max_order_buddy_claims_all_its_pageblocks(zone_factory, policy):
    # N = 64: order-5 blocks at 0 and 32; the head of free_list[5][MOVABLE] is 0 (32 on v5.4).
    # An UNMOVABLE request finds no UNMOVABLE/RECLAIMABLE page; the top-down fallback finds the
    # order-5 MOVABLE head, >= P, so both pageblocks it covers become UNMOVABLE and it is split
    # onto UNMOVABLE lists. The other order-5 block and its pageblocks stay MOVABLE.
    z = small_zone(zone_factory, policy, nr_pages=64)
    before = z.counters()
    if policy == "v5.4":
        assert z.alloc(0, U) == 32
        assert z.free_lists() == {(0, U): [33], (1, U): [34], (2, U): [36], (3, U): [40],
                                  (4, U): [48], (5, M): [0]}
        assert z.pageblock_types() == [M, M, U, U]
    else:
        assert z.alloc(0, U) == 0
        assert z.free_lists() == {(0, U): [1], (1, U): [2], (2, U): [4], (3, U): [8],
                                  (4, U): [16], (5, M): [32]}
        assert z.pageblock_types() == [U, U, M, M]
    d = counter_delta(before, z.counters())
    assert d["fallback_claim"] == 1 and "fallback_steal" not in d
    assert d["split_steps"] == 5
    z.check()


@pytest.mark.parametrize("policy", MOBILITY)
def test_fallback_on_pageblock_order_buddy_claims_that_pageblock(zone_factory, policy):
    # N = 32. alloc(4, M) takes 0 and leaves 16 on free_list[4][MOVABLE]. alloc(0, U) falls back
    # to that order-4 (= P) buddy: pageblock 1 becomes UNMOVABLE, pageblock 0 (allocated) stays.
    z = small_zone(zone_factory, policy)
    assert z.alloc(4, M) == 0
    assert z.free_lists() == {(4, M): [16]}
    assert z.alloc(0, U) == 16
    assert z.free_lists() == {(0, U): [17], (1, U): [18], (2, U): [20], (3, U): [24]}
    assert z.pageblock_types() == [M, U]
    assert z.counters()["fallback_claim"] == 1
    z.check()


def test_nomobility_never_claims(zone_factory):
    z = small_zone(zone_factory, "nomobility", nr_pages=64)
    assert z.alloc(0, U) == 0
    assert z.free_lists() == {(0, U): [1], (1, U): [2], (2, U): [4], (3, U): [8],
                              (4, U): [16], (5, U): [32]}
    assert z.pageblock_types() == [U, U, U, U]
    c = z.counters()
    assert c["fallback_claim"] == 0 and c["fallback_steal"] == 0
    z.check()


# --------------------------------------------------------------------------- (c) claim threshold


def _half_movable_block(zone_factory, policy, extra_movable_page):
    """N = 32. alloc(3, M) -> 0 (16@4 and 8@3 on MOVABLE lists), alloc(4, M) -> 16. Pageblock 0
    then holds 8 LRU pages (0..7) and the free order-3 block 8. With ``extra_movable_page``,
    alloc(0, M) -> 8 splits that block: 12@2, 10@1, 9@0, leaving 9 LRU pages and 7 free ones."""
    z = small_zone(zone_factory, policy)
    assert z.alloc(3, M) == 0
    assert z.alloc(4, M) == 16
    if extra_movable_page:
        assert z.alloc(0, M) == 8
        assert z.free_lists() == {(0, M): [9], (1, M): [10], (2, M): [12]}
    else:
        assert z.free_lists() == {(3, M): [8]}
    z.check()
    return z


@pytest.mark.parametrize("policy", MOBILITY)
def test_claim_at_threshold(zone_factory, policy):
    # UNMOVABLE request into the MOVABLE pageblock 0: free = 8, movable = 8,
    # alike = 16 - (8 + 8) = 0; 8 + 0 >= 2^(P-1) = 8: claim. Free heads move to UNMOVABLE, the
    # block becomes UNMOVABLE, and __rmqueue_smallest(0, U) splits 8: 12@2, 10@1, 9@0.
    z = _half_movable_block(zone_factory, policy, extra_movable_page=False)
    before = z.counters()
    assert z.alloc(0, U) == 8
    assert z.free_lists() == {(0, U): [9], (1, U): [10], (2, U): [12]}
    assert z.pageblock_types() == [U, M]
    d = counter_delta(before, z.counters())
    assert d["fallback_claim"] == 1 and "fallback_steal" not in d
    z.check()


@pytest.mark.parametrize("policy", MOBILITY)
def test_claim_just_below_threshold(zone_factory, policy):
    # free = 7, movable = 9, alike = 0: 7 < 8, the pageblock is not claimed.
    z = _half_movable_block(zone_factory, policy, extra_movable_page=True)
    before = z.counters()
    pfn = z.alloc(0, U)
    if policy in ("v5.4", "v6.1"):
        # Top-down finds order 2 (12); move_freepages_block moves 9, 10, 12 to the UNMOVABLE
        # lists (tail) before the count; no claim, so they stay there in a MOVABLE pageblock
        # (type mismatch). The retried __rmqueue_smallest(0, U) takes 9.
        assert pfn == 9
        assert z.free_lists() == {(1, U): [10], (2, U): [12]}
    elif policy == "v6.10":
        # Top-down finds order 2 (12); no claim, so only the requested chunk is taken from that
        # buddy: expand(12, 0, 2, MOVABLE) puts 14@1 and 13@0 at the heads of MOVABLE lists.
        assert pfn == 12
        assert z.free_lists() == {(0, M): [13, 9], (1, M): [14, 10]}
    else:
        # v6.15: claim fails at orders 2, 1 and 0; __rmqueue_steal takes the smallest buddy, 9.
        assert pfn == 9
        assert z.free_lists() == {(1, M): [10], (2, M): [12]}
    assert z.pageblock_types() == [M, M]
    d = counter_delta(before, z.counters())
    assert d["fallback_steal"] == 1 and "fallback_claim" not in d
    z.check()


@pytest.mark.parametrize("policy", MOBILITY)
def test_movable_request_claims_block_from_order_p_half(zone_factory, policy):
    # N = 32. alloc(0, U) claims both pageblocks UNMOVABLE (split: 16@4 8@3 4@2 2@1 1@0),
    # alloc(4, U) takes 16. alloc(0, M): the largest UNMOVABLE buddy is 8 (order 3 >= P // 2 = 2,
    # so a MOVABLE request may try the whole block). Pageblock 0 holds 15 free pages and no
    # LRU page: alike = movable = 0, 15 >= 8: claimed. Its free heads 1, 2, 4, 8 move to the
    # MOVABLE lists in pfn order and the order-0 head 1 is allocated.
    z = small_zone(zone_factory, policy)
    assert z.alloc(0, U) == 0
    assert z.alloc(4, U) == 16
    assert z.free_lists() == {(0, U): [1], (1, U): [2], (2, U): [4], (3, U): [8]}
    before = z.counters()
    assert z.alloc(0, M) == 1
    assert z.free_lists() == {(1, M): [2], (2, M): [4], (3, M): [8]}
    assert z.pageblock_types() == [M, U]
    d = counter_delta(before, z.counters())
    assert d["fallback_claim"] == 1 and "fallback_steal" not in d
    z.check()


# --------------------------------------------------------------------------- (d) merge rule at >= P


@pytest.mark.parametrize("policy", ALL)
@pytest.mark.parametrize("first", [0, 16])
def test_merge_across_pageblock_types(zone_factory, policy, first):
    # alloc(4, M) -> 0; alloc(4, U) claims pageblock 1 (order-4 buddy) -> 16. Types [M, U].
    # Freeing both: the second free finds its order-4 buddy free in a pageblock of the other
    # type. UNMOVABLE and MOVABLE are both mergeable: every policy merges (one merge step) to an
    # order-5 block on the list of the type freed last. v5.4/v6.1 leave the pageblock types as
    # they were; hygiene policies re-type the buddy's pageblock to the freeing type.
    z = small_zone(zone_factory, policy)
    assert z.alloc(4, M) == 0
    assert z.alloc(4, U) == 16
    nomob = policy == "nomobility"
    assert z.pageblock_types() == ([U, U] if nomob else [M, U])
    second = 16 - first
    z.free(first)
    z.check()
    before = z.counters()
    z.free(second)
    assert counter_delta(before, z.counters())["merge_steps"] == 1
    last_mt = U if nomob else [M, U][second // 16]
    assert z.free_lists() == {(5, last_mt): [0]}
    if nomob:
        assert z.pageblock_types() == [U, U]
    elif policy in ("v5.4", "v6.1"):
        assert z.pageblock_types() == [M, U]
    else:
        assert z.pageblock_types() == [last_mt, last_mt]
    z.check()


@pytest.mark.parametrize("policy", ["v6.1", "v6.15"])
def test_split_of_merged_mixed_block(zone_factory, policy):
    # N = 32. alloc(4, U) falls back to the order-5 MOVABLE block (>= P): both pageblocks become
    # UNMOVABLE, 0 is returned and 16 goes to free_list[4][UNMOVABLE]. alloc(4, M) falls back to
    # that order-4 (= P) buddy and claims pageblock 1 MOVABLE. free(16) puts it on
    # free_list[4][MOVABLE]; free(0) (UNMOVABLE) merges with it into an order-5 UNMOVABLE block.
    # v6.1 keeps pageblock 1 MOVABLE; v6.15 re-types it UNMOVABLE. An UNMOVABLE order-0 request
    # then splits the block onto UNMOVABLE lists: on v6.1 the order-4 half 16 sits on an
    # UNMOVABLE list inside a MOVABLE pageblock (a type mismatch).
    z = small_zone(zone_factory, policy)
    assert z.alloc(4, U) == 0
    assert z.pageblock_types() == [U, U]
    assert z.free_lists() == {(4, U): [16]}
    assert z.alloc(4, M) == 16
    assert z.pageblock_types() == [U, M]
    z.free(16)
    assert z.free_lists() == {(4, M): [16]}
    z.free(0)
    assert z.free_lists() == {(5, U): [0]}
    assert z.pageblock_types() == ([U, M] if policy == "v6.1" else [U, U])
    assert z.alloc(0, U) == 0
    assert z.free_lists() == {(0, U): [1], (1, U): [2], (2, U): [4], (3, U): [8], (4, U): [16]}
    z.check()


# --------------------------------------------------------------------------- (e) nomobility


def test_nomobility_serves_everything_from_unmovable(zone_factory):
    # N = 64, all pageblocks UNMOVABLE, boot free_list[5][UNMOVABLE] = [0, 32].
    z = small_zone(zone_factory, "nomobility", nr_pages=64)
    assert z.free_lists() == {(5, U): [0, 32]}
    # alloc(0, M) splits 0 onto UNMOVABLE lists: 16@4, 8@3, 4@2, 2@1, 1@0.
    assert z.alloc(0, M) == 0
    assert z.alloc(0, R) == 1
    assert z.alloc(1, U) == 2
    assert z.alloc(4, M) == 16
    assert z.alloc(5, R) == 32
    assert z.free_lists() == {(2, U): [4], (3, U): [8]}
    # 12 free pages: an order-4 request fails the watermark gate (12 - 15 <= 0) at both marks.
    assert z.alloc(4, M) == -1
    assert z.alloc(3, M) == 8
    assert z.alloc(2, R) == 4
    assert z.free_lists() == {}
    assert z.alloc(0, M) == -1
    c = z.counters()
    assert (c["alloc_fail"], c["fallback_claim"], c["fallback_steal"]) == (2, 0, 0)
    assert c["nr_free_pages"] == 0
    assert z.pageblock_types() == [U] * 4
    z.check()
    # Merge steps: free(1) merges with 0 (1), free(2) with 0..1 (1), free(32) is an order-5
    # block > P, so split_large_buddy frees it as 32 and 48 which merge again (1), free(4)
    # merges with 0..3, 8..15 and 16..31 (3): 6 in all. free(8) goes to the tail of
    # free_list[3] (its parent's buddy 16 is a free order-4 block), which is invisible here.
    before = z.counters()
    for pfn in (0, 1, 2, 16, 32, 8, 4):
        z.free(pfn)
        z.check()
    d = counter_delta(before, z.counters())
    assert d["merge_steps"] == 6 and d["free_ops"] == 7 and d["pgfree"] == 64
    assert z.free_lists() == {(5, U): [0, 32]}
    assert z.pageblock_types() == [U] * 4


def test_mobility_grouping_contrast(zone_factory):
    # The same first request on v6.15 claims a MOVABLE block for RECLAIMABLE.
    z = small_zone(zone_factory, "v6.15", nr_pages=64)
    assert z.alloc(0, R) == 0
    assert z.pageblock_types() == [R, R, M, M]
    assert z.counters()["fallback_claim"] == 1


# --------------------------------------------------------------------------- buddy_merge_likely


@pytest.mark.parametrize("policy", ALL)
def test_free_goes_to_tail_when_parent_buddy_is_free(zone_factory, policy):
    # N = 32. Six order-2 allocations take 0, 4, 8 (splits 8@3 -> 12@2), 12, 16 (splits
    # 16@4 -> 24@3, 20@2), 20; free_list[3] = [24]. free(0): its buddy 4 is allocated, its
    # parent's buddy 8 is not a free order-3 block: head. free(16): buddy 20 allocated, parent
    # (16)'s buddy 24 is a free order-3 block: tail. The next order-2 request takes 0.
    z = small_zone(zone_factory, policy)
    mt = U if policy == "nomobility" else M
    assert [z.alloc(2, M) for _ in range(6)] == [0, 4, 8, 12, 16, 20]
    assert z.free_lists() == {(3, mt): [24]}
    z.free(0)
    z.free(16)
    assert z.free_lists() == {(2, mt): [0, 16], (3, mt): [24]}
    assert z.counters()["merge_steps"] == 0
    assert z.alloc(2, M) == 0
    z.check()


# --------------------------------------------------------------------------- pcp


def test_pcp_refill_and_drain(zone_factory):
    # The 6.1 rules. N = 16384, M = 5, P = 4, min_free_kbytes = 0: watermarks (0, 16, 32); batch:
    # b = min(16384 >> 10, 256) // 4 = 4, rounddown_pow2(4 + 2) - 1 = 3; high = max(16, 12) = 16.
    z = small_zone(zone_factory, "v6.1", nr_pages=16384, pcp=True)
    assert z.watermarks() == (0, 16, 32)
    assert z.pcp_params() == (3, 16)
    assert z.pcp_lists() == {}
    # alloc(0, M): pcp list 1 (order 0, MOVABLE) is empty: rmqueue_bulk of max(3, 2) = 3 pages.
    # Page 0 splits the first order-5 block (5 splits, 6 orders scanned): 16@4 8@3 4@2 2@1 1@0;
    # page 1 is the order-0 head (1 scanned); page 2 splits 2 (2 scanned, 1 split): 3@0.
    # pcp list [0, 1, 2], the head 0 is returned.
    assert z.alloc(0, M) == 0
    assert z.pcp_lists() == {1: [1, 2]}
    c = z.counters()
    assert (c["split_steps"], c["orders_scanned"], c["pgalloc"]) == (6, 9, 1)
    assert c["nr_free_pages"] == 16384 - 3
    # free(0): to the head of pcp list 1; count 3 < high.
    z.free(0)
    assert z.pcp_lists() == {1: [0, 1, 2]}
    # alloc(3, M): pcp list 10 (order 3, MOVABLE); rmqueue_bulk of max(3 >> 3, 2) = 2 pages:
    # 8 (free order-3 block) and 16 (order-4 block split: 24@3). count = 3 + 16 = 19; head 8
    # returned, count 11.
    assert z.alloc(3, M) == 8
    assert z.pcp_lists() == {1: [0, 1, 2], 10: [16]}
    # free(8): head of list 10, count 19 >= 16: drain to_free = clamp(3 << 0, 3, 13) = 3 pages
    # starting at list 10: its tail 16 (8 pages) is freed, merges with 24 into an order-4 block
    # (its order-4 buddy 0 sits on pcp), inserted at the head of free_list[4][MOVABLE].
    z.free(8)
    assert z.pcp_lists() == {1: [0, 1, 2], 10: [8]}
    fl = z.free_lists()
    assert fl[(0, M)] == [3] and fl[(2, M)] == [4] and fl[(4, M)] == [16]
    assert (3, M) not in fl and (1, M) not in fl
    assert fl[(5, M)] == list(range(32, 16384, 32))
    c = z.counters()
    assert (c["merge_steps"], c["split_steps"], c["orders_scanned"]) == (1, 7, 12)
    assert (c["pgalloc"], c["pgfree"], c["nr_free_pages"]) == (9, 9, 16384 - 11)
    assert c["wmark_orders_scanned"] == 1
    # A pcp hit does not touch the buddy lists.
    assert z.alloc(0, M) == 0
    assert z.pcp_lists() == {1: [1, 2], 10: [8]}
    z.check()


@pytest.mark.parametrize("policy, claim_scans", [("v6.15", 11), ("v6.16", 8)])
def test_the_claim_loop_below_the_orders_that_may_claim(zone_factory, policy, claim_scans):
    # N = 12290: twelve order-10 blocks and the order-1 block 12288; batch 3. With the twelve
    # blocks allocated UNMOVABLE, alloc(0, M) refills a pcp batch of 3: page 1 splits 12288 (2
    # orders scanned), page 2 takes 12289 (1), page 3 finds nothing: smallest (11), CMA (11),
    # claim, steal (11). Nothing is free at any order, so the claim loop finds no fallback block:
    # v6.15 skips each empty order down to 0 (11), v6.16 stops at the first order below
    # P // 2 = 4 that may not claim (o=10..4 and o=3: 8).
    z = zone_factory(nr_pages=12290, max_order=10, pageblock_order=9, policy=policy, pcp=True,
                     min_free_kbytes=0)
    assert [z.alloc(10, U) for _ in range(12)] == list(range(0, 12288, 1024))
    before = z.counters()
    assert z.alloc(0, M) == 12288
    assert counter_delta(before, z.counters())["orders_scanned"] == 2 + 1 + 11 + 11 + claim_scans + 11
    z.check()


@pytest.mark.parametrize("policy", ["v6.15", "v6.16"])
def test_pcp_sticky_steal_mode_v615(zone_factory, policy):
    # N = 12288 = 12 order-10 blocks, M = 10, P = 9, min_free_kbytes = 0: watermarks (0, 12, 24);
    # batch: b = 12 // 4 = 3, rounddown_pow2(3 + 1) - 1 = 3; high = max(12, 12) = 12.
    z = zone_factory(nr_pages=12288, max_order=10, pageblock_order=9, policy=policy, pcp=True,
                     min_free_kbytes=0)
    assert z.pcp_params() == (3, 12)
    # Order 10 is no pcp order: eleven buddy allocations take the first eleven blocks.
    assert [z.alloc(10, M) for _ in range(11)] == list(range(0, 11264, 1024))
    # alloc(0, U): rmqueue_bulk of 3; the first page claims the last order-10 block (pageblocks
    # 22, 23 -> UNMOVABLE) and splits it onto UNMOVABLE lists; pages 11264, 11265, 11266.
    assert z.alloc(0, U) == 11264
    # alloc(9, U): order 9 = P is a pcp order: batch max(3 >> 9, 2) = 2, only 11776 is found.
    assert z.alloc(9, U) == 11776
    # Orders 4..8 go to the buddy directly and empty those UNMOVABLE lists.
    assert [z.alloc(o, U) for o in (8, 7, 6, 5, 4)] == [11520, 11392, 11328, 11296, 11280]
    assert z.free_lists() == {(0, U): [11267], (2, U): [11268], (3, U): [11272]}
    assert z.counters()["nr_free_pages"] == 13
    before = z.counters()
    # The pcp rules of 6.7+: high started at high_min 12 and grew by the batch at each refill
    # (12 + 3 + 3 = 18); alloc(4, U) found 29 - 15 = 14 pages <= the high watermark 24, so the
    # zone is below it (ZONE_BELOW_HIGH) and high grows no more. The first refill raised
    # alloc_factor to 1, so this refill is 3 << 1 = 6 pages (max_nr_alloc = max(18 - 2 - 3, 3)).
    assert (z.pcp_state()["high"], z.pcp_state()["alloc_factor"], z.pcp_state()["below_high"]) == (18, 1, 1)
    # alloc(0, M), 13 free pages > low 12. Batch of 6 in one rmqueue_mode:
    #  page 1 (NORMAL): smallest MOVABLE 11 + smallest CMA 11 + claim o=10..4 (7, nothing
    #    free) + o=3 (too low to claim, and 11272 is a fallback block there: both stop) 1 + steal
    #    o=0 1: takes 11267; mode becomes STEAL.
    #  page 2 (STEAL): steal o=0,1,2 (3): splits 11268 (2 splits): 11270@1, 11269@0 UNMOVABLE.
    #  page 3 (STEAL): steal o=0 (1): 11269.
    #  page 4 (STEAL): steal o=0,1 (2): splits 11270 (1 split): 11271@0.
    #  page 5 (STEAL): steal o=0 (1): 11271.
    #  page 6 (STEAL): steal o=0..3 (4): splits 11272 (3 splits): 11276@2, 11274@1, 11273@0.
    assert z.alloc(0, M) == 11267
    d = counter_delta(before, z.counters())
    assert d["orders_scanned"] == 31 + 3 + 1 + 2 + 1 + 4
    assert d["split_steps"] == 2 + 1 + 3
    assert d["fallback_steal"] == 6 and "fallback_claim" not in d
    assert z.free_lists() == {(0, U): [11273], (1, U): [11274], (2, U): [11276]}
    assert z.pcp_lists() == {0: [11265, 11266], 1: [11268, 11269, 11270, 11271, 11272]}
    assert z.pcp_state()["alloc_factor"] == 2
    assert z.pageblock_types() == [M] * 22 + [U, U]
    assert z.counters()["nr_free_pages"] == 7
    z.check()
