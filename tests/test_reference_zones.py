"""Tests of the reference model's nodes of several zones (RefNode) and zone spans (RefZone's
zone_start / zone_end): watermarks split over the zones, lowmem_reserve, the zonelist walk and
ALLOC_NOFRAGMENT. Expected numbers are derived by hand from mm/page_alloc.c of 6.12
(__setup_per_zone_wmarks(), setup_per_zone_lowmem_reserve(), get_page_from_freelist(),
alloc_flags_nofragment(), __rmqueue_claim()); the derivations are in the comments."""

import random

import pytest

from reference import (MOVABLE, POLICIES, RECLAIMABLE, UNMOVABLE, ZONE_DMA, ZONE_DMA32, ZONE_MOVABLE,
                       ZONE_NORMAL, RefNode, RefZone)

U, M, R = UNMOVABLE, MOVABLE, RECLAIMABLE
MOBILITY_POLICIES = tuple(p for p in POLICIES if p != "nomobility")


def delta(before, after):
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


# --------------------------------------------------------------------------- layout, validation


def test_zone_layout_and_absent_zones():
    n = RefNode(88, 3, 2, dma_end=8, dma32_end=16, movable_pages=64)
    n.check()
    assert n.nr_zones == 4
    assert [n.zone_idx(zi) for zi in range(4)] == [ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_MOVABLE]
    assert [(z.zone_start, z.zone_end) for z in n.zones] == [(0, 8), (8, 16), (16, 24), (24, 88)]
    # Each zone boots its own span: one order-3 block each, eight in ZONE_MOVABLE.
    assert [n.buddyinfo(zi) for zi in range(4)] == [[0, 0, 0, 1]] * 3 + [[0, 0, 0, 8]]
    assert n.free_lists(3) == {(3, M): list(range(24, 88, 8))}
    assert n.pageblock_types() == [M] * 22
    # DMA and Normal only: ZONE_DMA32's span [8, 0) is empty.
    n = RefNode(32, 3, 2, dma_end=8)
    assert [n.zone_idx(zi) for zi in range(n.nr_zones)] == [ZONE_DMA, ZONE_NORMAL]
    assert not n.populated(ZONE_DMA32)
    # Everything below 16 is DMA32, the rest Normal.
    n = RefNode(32, 3, 2, dma32_end=16)
    assert [n.zone_idx(zi) for zi in range(n.nr_zones)] == [ZONE_DMA32, ZONE_NORMAL]
    # The defaults: one Normal zone over the whole node, whose end need not be aligned.
    n = RefNode(37, 3, 2)
    assert n.nr_zones == 1 and n.zone_idx(0) == ZONE_NORMAL
    assert n.buddyinfo() == [1, 0, 1, 4]   # 0, 8, 16, 24 @3; 32 @2; 36 @0


@pytest.mark.parametrize("kw", [
    dict(dma_end=4),                          # not a multiple of 2^3
    dict(dma_end=8, dma32_end=12),
    dict(dma_end=16, dma32_end=8),            # DMA32 ending below DMA
    dict(movable_pages=4),                    # ZONE_MOVABLE would start at 28
    dict(dma32_end=24, movable_pages=16),     # ZONE_MOVABLE [16, 32) under DMA32's end
    dict(dma_end=40),                         # beyond the node
    dict(movable_pages=40),
])
def test_bad_zone_layouts(kw):
    with pytest.raises(ValueError):
        RefNode(32, 3, 2, **kw)


def test_bad_zone_spans():
    with pytest.raises(ValueError):
        RefZone(16, 3, 2, zone_start=8, zone_end=8)
    with pytest.raises(ValueError):
        RefZone(16, 3, 2, zone_start=0, zone_end=17)
    with pytest.raises(ValueError):
        RefZone(16, 3, 2, zone_idx=4)
    n = RefNode(32, 3, 2, dma_end=8)
    with pytest.raises(ValueError):
        n.free(40)
    with pytest.raises(ValueError):
        n.alloc(0, M, cpu=1)


# --------------------------------------------------------------------------- zone spans


def test_zone_span_boots_only_its_span():
    # The node's pfns [0, 16); the zone owns [4, 16): 4 has ctz 2 -> 4@2; 8@3.
    z = RefZone(16, 3, 2, zone_start=4, min_free_kbytes=0)
    z.check()
    assert z.buddyinfo() == [0, 0, 1, 1]
    assert z.managed_pages == 12
    # 4@2's buddy 0@2 lies outside the zone: freeing 4 again does not look there.
    assert z.alloc(2, M) == 4
    z.free(4)
    assert z.free_lists() == {(2, M): [4], (3, M): [8]}
    z.check()


def test_pageblock_straddling_the_zone_start_is_not_claimed():
    # Zone [2, 8) of 8 pfns, P = 2: boot 2@1, 4@2. alloc(2, M) takes 4. alloc(0, U) (v6.15):
    # __rmqueue_claim finds 2@1 (MOVABLE) at order 1, but its pageblock [0, 4) is not wholly
    # inside the zone (prep_move_freepages_block: !zone_spans_pfn(zone, 0)): no claim.
    # __rmqueue_steal takes 2@1, expand() leaves 3@0 on the MOVABLE list.
    z = RefZone(8, 3, 2, zone_start=2, min_free_kbytes=0)
    assert z.alloc(2, M) == 4
    assert z.alloc(0, U) == 2
    assert z.free_lists() == {(0, M): [3]}
    assert z.pageblock_types() == [M, M]
    c = z.counters()
    assert (c["fallback_claim"], c["fallback_steal"]) == (0, 1)
    z.check()
    # The same free pages in a zone over [0, 8) whose pfns 0, 1 are holes: the pageblock is the
    # zone's, free 2 + alike (4 - 2 free - 0 movable) = 4 >= 2: claimed, 2@1 split on UNMOVABLE.
    z = RefZone(8, 3, 2, holes=((0, 2),), min_free_kbytes=0)
    assert z.alloc(2, M) == 4
    assert z.alloc(0, U) == 2
    assert z.free_lists() == {(0, U): [3]}
    assert z.pageblock_types() == [U, M]
    c = z.counters()
    assert (c["fallback_claim"], c["fallback_steal"]) == (1, 0)


# --------------------------------------------------------------------------- watermarks, reserves


# A 256 MiB node, M = 10, P = 9, pfn 0 reserved: DMA [0, 4096) 4095 managed, DMA32 [4096, 32768)
# 28672, Normal [32768, 49152) 16384, Movable [49152, 65536) 16384.
FOUR_ZONES = dict(nr_pages=65536, max_order=10, pageblock_order=9, holes=((0, 1),),
                  dma_end=4096, dma32_end=32768, movable_pages=16384)


def test_watermarks_split_by_managed_share():
    n = RefNode(**FOUR_ZONES)
    # calculate_min_free_kbytes(): lowmem = 4095 + 28672 + 16384 = 49151 pages (not Movable)
    # = 196604 kB; isqrt(196604 * 16 = 3145664) = 1773 (1773^2 = 3143529, 1774^2 = 3147076).
    assert n.min_free_kbytes == 1773
    # pages_min = 1773 >> 2 = 443; tmp = 443 * managed // 49151;
    # delta = max(tmp >> 2, managed * 10 // 10000).
    # DMA:    tmp = 1814085 // 49151 = 36;  delta = max(9, 4) = 9     -> (36, 45, 54)
    # DMA32:  tmp = 12701696 // 49151 = 258; delta = max(64, 28) = 64 -> (258, 322, 386)
    # Normal: tmp = 7258112 // 49151 = 147; delta = max(36, 16) = 36  -> (147, 183, 219)
    # Movable: min = clamp(16384 // 1024 = 16, 32, 128) = 32; delta from tmp = 147 as Normal's:
    #          max(36, 16) = 36 -> (32, 68, 104)
    assert [n.watermarks(zi) for zi in range(4)] == [
        (36, 45, 54), (258, 322, 386), (147, 183, 219), (32, 68, 104)]


def test_watermarks_given_min_free_kbytes():
    # min_free_kbytes = 4096: pages_min = 1024. DMA + Normal halves of 8192 managed pages each.
    # tmp = 1024 * 8192 // 16384 = 512; delta = max(128, 8) = 128 -> (512, 640, 768) for both.
    n = RefNode(16384, 10, 9, min_free_kbytes=4096, dma_end=8192)
    assert n.watermarks(0) == n.watermarks(1) == (512, 640, 768)
    # Alone, the same zone would get all of pages_min: (1024, 1280, 1536).
    assert RefNode(8192, 10, 9, min_free_kbytes=4096).watermarks() == (1024, 1280, 1536)


def test_lowmem_reserve_four_zones():
    n = RefNode(**FOUR_ZONES)
    # lowmem_reserve[j] of zone i < j = managed(i+1 .. j) // ratio[i]; ratios 256, 256, 32, 0.
    # DMA:    28672 // 256 = 112; (28672 + 16384) // 256 = 176; 61440 // 256 = 240
    # DMA32:  16384 // 256 = 64; 32768 // 256 = 128
    # Normal: 16384 // 32 = 512
    assert [n.lowmem_reserve(zi) for zi in range(4)] == [
        [0, 112, 176, 240], [0, 0, 64, 128], [0, 0, 0, 512], [0, 0, 0, 0]]


def test_lowmem_reserve_three_zones():
    # DMA [0, 4096) 4096, DMA32 [4096, 12288) 8192, Normal [12288, 16384) with 100 pages of
    # holes: 3996. No ZONE_MOVABLE: its 0 pages add nothing to the [3] column.
    n = RefNode(16384, 10, 9, holes=((12288, 12388),), dma_end=4096, dma32_end=12288)
    # DMA:   8192 // 256 = 32; (8192 + 3996) // 256 = 12188 // 256 = 47; [3] as [2]
    # DMA32: 3996 // 256 = 15; [3] as [2]
    # Normal: ratio 32 over ZONE_MOVABLE's 0 pages: 0
    assert [n.lowmem_reserve(zi) for zi in range(3)] == [[0, 32, 47, 47], [0, 0, 15, 15], [0, 0, 0, 0]]
    # A zone with no managed pages (all of DMA a hole) keeps no reserve: `clear`. It is still
    # populated (the hole's pages are present), with tmp = 0 for its min watermark.
    n = RefNode(16384, 10, 9, holes=((0, 4096),), dma_end=4096, dma32_end=12288)
    assert n.nr_zones == 3
    assert n.lowmem_reserve(0) == [0, 0, 0, 0]
    assert n.lowmem_reserve(1) == [0, 0, 16, 16]   # 4096 // 256
    assert n.watermarks(0)[0] == 0


def test_pcp_sizes_per_zone():
    n = RefNode(**FOUR_ZONES, pcp=True, nr_cpus=2)
    # zone_batchsize(): b = min(managed >> 10, 256) // 4, batch = rounddown_pow2(b + b // 2) - 1,
    # at least 1. DMA: 3 // 4 = 0 -> 1 -> 0 -> 1. DMA32: 28 // 4 = 7 -> 10 -> 7.
    # Normal, Movable: 16 // 4 = 4 -> 6 -> 3.
    assert [z.pcp_batch for z in n.zones] == [1, 7, 3, 3]
    # high_min = max(low // 2 CPUs, 4 * batch); high_max = max(managed // 8 // 2, 4 * batch).
    # DMA: max(22, 4), max(255, 4). DMA32: max(161, 28), max(1792, 28).
    # Normal: max(91, 12), max(1024, 12). Movable: max(34, 12), max(1024, 12).
    assert [(n.pcp_state(1, zi)["high_min"], n.pcp_state(1, zi)["high_max"]) for zi in range(4)] == [
        (22, 255), (161, 1792), (91, 1024), (34, 1024)]


# --------------------------------------------------------------------------- the zonelist


def test_movable_requests_prefer_zone_movable_and_normal_keeps_its_reserve():
    # DMA [0, 8), DMA32 [8, 16), Normal [16, 24), Movable [24, 88); min_free_kbytes = 0.
    # Watermarks: pages_min 0, so DMA, DMA32, Normal (0, 0, 0); Movable min = clamp(64 // 1024,
    # 32, 128) = 32, delta = max(0, 64 * 10 // 10000 = 0) = 0: (32, 32, 32).
    # Normal's lowmem_reserve[ZONE_MOVABLE] = 64 // 32 = 2; every other reserve is 0.
    n = RefNode(88, 3, 2, min_free_kbytes=0, dma_end=8, dma32_end=16, movable_pages=64)
    assert n.watermarks(3) == (32, 32, 32)
    assert n.lowmem_reserve(2) == [0, 0, 0, 2]
    # Movable requests: zonelist Movable, Normal, DMA32, DMA; ZONE_MOVABLE serves while its free
    # pages exceed 32: 32 order-0 pages, from the head block 24@3 on.
    got = [n.alloc(0, M) for _ in range(32)]
    assert got == list(range(24, 56))
    assert n.buddyinfo(3) == [0, 0, 0, 4]
    # Then Normal, while free - 0 > 0 + reserve 2: 8, 7, 6, 5, 4, 3 -> six pages 16..21.
    # (The preferred zone is ZONE_MOVABLE: no ALLOC_NOFRAGMENT.)
    got = [n.alloc(0, M) for _ in range(6)]
    assert got == [16, 17, 18, 19, 20, 21]
    assert n.free_lists(2) == {(1, M): [22]}
    # Normal's 2 free pages are kept from movable requests: DMA32 serves, 8@3 split.
    assert n.alloc(0, M) == 8
    assert n.free_lists(2) == {(1, M): [22]}
    # An unmovable request never uses ZONE_MOVABLE; its reserve index is ZONE_NORMAL (0 for
    # Normal), but it runs with ALLOC_NOFRAGMENT (preferred Normal, DMA32 populated): Normal has
    # only the sub-pageblock 22@1, so DMA32 claims its free pageblock 12@2 in the first walk.
    assert n.alloc(0, U) == 12
    assert n.pageblock_types()[2:4] == [M, U]
    assert n.free_lists(1) == {(0, M): [9], (1, M): [10], (0, U): [13], (1, U): [14]}
    n.check()


def test_lowmem_reserve_makes_dma_refuse_a_normal_request():
    # DMA [0, 8), Normal [8, 2056) (2048 pages), M = 3, P = 2, min_free_kbytes = 0.
    # DMA: lowmem_reserve[NORMAL] = [MOVABLE] = 2048 // 256 = 8; watermarks (0, 0, 0)
    # (delta = max(0, 8 * 10 // 10000) = 0). Normal: delta = 2048 * 10 // 10000 = 2: (0, 2, 4).
    n = RefNode(2056, 3, 2, min_free_kbytes=0, dma_end=8)
    assert n.lowmem_reserve(0) == [0, 0, 8, 8]
    assert n.watermarks(1) == (0, 2, 4)
    # 256 order-3 unmovable requests take all of Normal: at the low watermark while
    # 2048 - 8k - 7 > 2 (k <= 254), the last at min (8 - 7 = 1 > 0). DMA never passes for them
    # (8 - 7 = 1 <= 0 + 8).
    assert sorted(n.alloc(3, U) for _ in range(256)) == list(range(8, 2056, 8))
    assert n.buddyinfo(0) == [0, 0, 0, 1]
    before = n.counters()
    # Normal is empty; DMA's 8 free pages <= min 0 + lowmem_reserve[ZONE_NORMAL] 8: refused, at
    # both watermarks. The same for a movable request (reserve [ZONE_MOVABLE] = 8).
    assert n.alloc(0, U) == -1
    assert n.alloc(0, M) == -1
    assert delta(before, n.counters()) == {"alloc_ops": 2, "alloc_fail": 2}
    n.check()
    # With Normal 8 pages smaller the reserve is 2040 // 256 = 7 < 8: DMA serves. No DMA32, so
    # no ALLOC_NOFRAGMENT: DMA's MOVABLE block 0@3 is claimed (__rmqueue_claim at order 3).
    n = RefNode(2048, 3, 2, min_free_kbytes=0, dma_end=8)
    assert n.lowmem_reserve(0) == [0, 0, 7, 7]
    assert all(n.alloc(3, U) >= 8 for _ in range(255))
    assert n.alloc(0, U) == 0
    assert n.pageblock_types()[:2] == [U, U]
    n.check()


# --------------------------------------------------------------------------- ALLOC_NOFRAGMENT
#
# The node of the next tests: M = 3, P = 2 (pageblocks of 4 pages), DMA [0, 8), DMA32 [8, 16),
# Normal [16, 24), min_free_kbytes = 0: every watermark and reserve is 0 (pages_min 0, deltas
# managed * 10 // 10000 = 0, reserves 16 // 256 = 0), so a zone passes while it has a free page.
NOFRAG_NODE = dict(nr_pages=24, max_order=3, pageblock_order=2, min_free_kbytes=0,
                   dma_end=8, dma32_end=16)


def fragment_normal(z, whole_pageblock):
    """Three movable order-0 pages from Normal's 16@3: 16 (expand leaves 20@2, 18@1, 17@0), 17,
    18 (18@1 split: 19@0). Pageblock [16, 20) is partly used (3 PageLRU pages, 19 free); 20@2 is
    a free MOVABLE pageblock, which an order-2 movable request takes unless ``whole_pageblock``.
    Movable requests are served from Normal's MOVABLE lists without any fallback."""
    assert [z.alloc(0, M) for _ in range(3)] == [16, 17, 18]
    if not whole_pageblock:
        assert z.alloc(2, M) == 20


@pytest.mark.parametrize("policy", MOBILITY_POLICIES)
def test_nofragment_claims_a_whole_pageblock(policy):
    n = RefNode(**NOFRAG_NODE, policy=policy)
    fragment_normal(n, whole_pageblock=True)
    assert n.free_lists(2) == {(0, M): [19], (2, M): [20]}
    # alloc(0, U): preferred Normal, DMA32 populated: ALLOC_NOFRAGMENT. No UNMOVABLE page; the
    # fallback search runs from order 3 down to min_order = P = 2 and finds 20@2: the whole
    # pageblock is claimed (typed UNMOVABLE, split into 22@1, 21@0), not the fragment 19.
    assert n.alloc(0, U) == 20
    assert n.pageblock_types() == [M, M, M, M, M, U]
    assert n.free_lists(2) == {(0, M): [19], (0, U): [21], (1, U): [22]}
    n.check()
    # A single Normal zone (RefZone over [16, 24) of the same 24 pfns), without the flag, takes
    # the same block: the fallback search is largest-first from order M, so it reaches 20@2
    # before the fragment either way. ALLOC_NOFRAGMENT matters only when the zone has no free
    # fallback block of pageblock_order or more (the next tests).
    z = RefZone(24, 3, 2, policy=policy, min_free_kbytes=0, zone_start=16)
    fragment_normal(z, whole_pageblock=True)
    assert z.alloc(0, U) == 20
    assert z.free_lists() == n.free_lists(2)


@pytest.mark.parametrize("policy", MOBILITY_POLICIES)
def test_nofragment_falls_through_to_dma32(policy):
    n = RefNode(**NOFRAG_NODE, policy=policy)
    fragment_normal(n, whole_pageblock=False)
    assert n.free_lists(2) == {(0, M): [19]}
    before = n.counters()
    # ALLOC_NOFRAGMENT: Normal has only the order-0 fragment 19, below P: its fallback search
    # (orders 3, 2) finds nothing and 6.15+ does not steal. DMA32 (free 8 > 0) claims its
    # whole MOVABLE block 8@3: pageblocks 2, 3 become UNMOVABLE, expand leaves 12@2, 10@1, 9@0.
    assert n.alloc(0, U) == 8
    assert n.pageblock_types() == [M, M, U, U, M, M]
    assert n.free_lists(1) == {(0, U): [9], (1, U): [10], (2, U): [12]}
    assert n.free_lists(2) == {(0, M): [19]}
    # orders_scanned: Normal __rmqueue_smallest 0..3 (4) + fallback 3, 2 (2); DMA32 smallest 4
    # + fallback at order 3 (1; v5.4/v6.1 then retry __rmqueue_smallest: 4 more).
    retry = 4 if policy in ("v5.4", "v6.1") else 0
    assert delta(before, n.counters()) == {
        "alloc_ops": 1, "orders_scanned": 11 + retry, "fallback_claim": 1, "split_steps": 3,
        "pgalloc": 1, "nr_free_pages": -1}
    n.check()
    # On a single Normal zone the request falls back inside it: the pageblock [16, 20) has 1 free
    # and 3 movable pages (alike 4 - 1 - 3 = 0, 1 < 2: no claim), so 19 is stolen and the
    # pageblock stays MOVABLE.
    z = RefZone(24, 3, 2, policy=policy, min_free_kbytes=0, zone_start=16)
    fragment_normal(z, whole_pageblock=False)
    assert z.alloc(0, U) == 19
    assert z.pageblock_types() == [M] * 6
    assert (z.counters()["fallback_claim"], z.counters()["fallback_steal"]) == (0, 1)
    # So does a node without ZONE_DMA32 (DMA [0, 16) + Normal): no ALLOC_NOFRAGMENT.
    n = RefNode(**dict(NOFRAG_NODE, dma_end=16, dma32_end=0), policy=policy)
    fragment_normal(n, whole_pageblock=False)
    assert n.alloc(0, U) == 19


@pytest.mark.parametrize("policy", MOBILITY_POLICIES)
def test_nofragment_reaches_pcp_refills(policy):
    # The same with pcp lists (batch 1 in these 8-page zones): Normal's refill (rmqueue_bulk)
    # runs with ALLOC_NOFRAGMENT and gets nothing, the buddy path after it neither; DMA32's
    # refill claims 8@3. A refill without the flag would have stolen 19.
    n = RefNode(**NOFRAG_NODE, policy=policy, pcp=True)
    fragment_normal(n, whole_pageblock=False)
    assert n.alloc(0, U) == 8
    assert n.pageblock_types() == [M, M, U, U, M, M]
    assert n.free_lists(2) == {(0, M): [19]}
    n.check()


@pytest.mark.parametrize("policy", MOBILITY_POLICIES)
def test_nofragment_retry_when_no_zone_has_a_whole_pageblock(policy):
    n = RefNode(**NOFRAG_NODE, policy=policy)
    # All 24 pages as movable order-0 pages (Normal, then DMA32, then DMA), then one page back
    # in each zone: 3, 11, 19 on the MOVABLE order-0 lists (their buddies are held).
    assert sorted(n.alloc(0, M) for _ in range(24)) == list(range(24))
    for pfn in (3, 11, 19):
        n.free(pfn)
    before = n.counters()
    # First walk with ALLOC_NOFRAGMENT: no zone has a fallback block of order >= 2. Then
    # `goto retry` without it, still at the low watermark: Normal, first in the zonelist,
    # steals 19 (its pageblock: 1 free + alike 4 - 1 - 3 = 0 < 2, no claim).
    assert n.alloc(0, U) == 19
    assert n.pageblock_types() == [M] * 6
    # orders_scanned: first walk, per zone smallest 0..3 (4) + fallback 3, 2 (2): 18. Retry in
    # Normal: smallest 4 + fallback 3..0 (4) + v6.15/v6.16 __rmqueue_steal at order 0 (1) or
    # v5.4/v6.1 the retried __rmqueue_smallest (1); v6.10 takes the page in the fallback.
    retry = 8 if policy == "v6.10" else 9
    assert delta(before, n.counters()) == {
        "alloc_ops": 1, "orders_scanned": 18 + retry, "fallback_steal": 1, "pgalloc": 1,
        "nr_free_pages": -1}
    n.check()


def test_nofragment_retry_is_at_the_low_watermark():
    # DMA32 [0, 8), Normal [8, 16). All 16 pages allocated movable (watermarks 0), then freed:
    # Normal 9, 10, 11, 13, 15 (9@0, 10@1, 13@0, 15@0: 5 pages), DMA32 1, 2, 3, 5, 6, 7 (1@0,
    # 2@1, 5@0, 6@1: 6 pages): no whole free pageblock anywhere.
    n = RefNode(16, 3, 2, min_free_kbytes=0, dma32_end=8)
    assert sorted(n.alloc(0, M) for _ in range(16)) == list(range(16))
    for pfn in (9, 10, 11, 13, 15, 1, 2, 3, 5, 6, 7):
        n.free(pfn)
    assert n.buddyinfo(1) == [3, 1, 0, 0] and n.buddyinfo(0) == [2, 2, 0, 0]
    # Raise both zones' watermarks to (4, 5, 6), as a larger min_free_kbytes would.
    for z in n.zones:
        z.wmark_min, z.wmark_low, z.wmark_high = 4, 5, 6
    normal_before = n.free_lists(1)
    # Fast path: Normal fails the low watermark (5 <= 5); DMA32 passes (6 > 5) but has no
    # block of order >= 2. Retry without ALLOC_NOFRAGMENT at the low watermark: Normal fails
    # again; DMA32 falls back to the head of its order-1 MOVABLE list, 6@1 (freed last, at the
    # head), whose pageblock [4, 8) has 3 free pages + alike 4 - 3 - 1 = 0 >= 2: claimed, 5 and
    # 6@1 move to UNMOVABLE and the order-0 page 5 is taken. (A retry at the min watermark would
    # have let Normal, 5 > 4, claim its own pageblock [8, 12) and return 9.)
    assert n.alloc(0, U) == 5
    assert n.pageblock_types() == [M, U, M, M]
    assert n.free_lists(0) == {(0, M): [1], (1, M): [2], (1, U): [6]}
    assert n.free_lists(1) == normal_before
    n.check()


def test_no_nofragment_for_a_preferred_dma32_zone():
    # No Normal zone: the preferred zone is DMA32, so no ALLOC_NOFRAGMENT; DMA32 (after 3
    # movable pages 0, 1, 2 and 4@2 taken) steals its fragment 3 rather than using DMA.
    n = RefNode(16, 3, 2, min_free_kbytes=0, dma_end=8, dma32_end=16)
    assert [n.zone_idx(zi) for zi in range(n.nr_zones)] == [ZONE_DMA, ZONE_DMA32]
    assert [n.alloc(0, M) for _ in range(3)] == [8, 9, 10]
    assert n.alloc(2, M) == 12
    assert n.alloc(0, U) == 11


# --------------------------------------------------------------------------- one zone = RefZone


def random_ops(rng, n_ops, max_order, nr_cpus, p_alloc=0.5):
    ops = []
    for _ in range(n_ops):
        r = rng.random()
        cpu = rng.randrange(nr_cpus)
        if r < p_alloc:
            ops.append(("alloc", rng.choice([0, 0, 0, 1, 2, 3, max_order]), rng.choice([U, M, M, R]), cpu))
        elif r < 0.9:
            ops.append(("free", rng.randrange(1 << 30), 0, cpu))
        elif r < 0.97:
            ops.append(("tick", 0, 0, cpu))
        else:
            ops.append(("drain", 0, 0, 0))
    return ops


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("geom,p_alloc", [
    (dict(nr_pages=3000, max_order=6, pageblock_order=4, holes=((100, 140), (2000, 2003)),
          pcp=True, nr_cpus=2), 0.5),
    (dict(nr_pages=700, max_order=5, pageblock_order=5, pcp=False, min_free_kbytes=8), 0.5),
    (dict(nr_pages=9000, max_order=10, pageblock_order=9, pcp=True, nr_cpus=1, min_free_kbytes=0), 0.5),
    # Allocation-heavy on 295 managed pages: down at the watermarks (34, 42, 50), failures,
    # ZONE_BELOW_HIGH.
    (dict(nr_pages=300, max_order=4, pageblock_order=2, holes=((40, 45),), pcp=True, nr_cpus=2), 0.8),
])
def test_single_zone_node_equals_refzone(policy, geom, p_alloc):
    rng = random.Random(f"{policy}-{geom['nr_pages']}")
    node = RefNode(policy=policy, **geom)
    zone = RefZone(policy=policy, **geom)
    nr_cpus = geom.get("nr_cpus", 1)

    def same():
        assert node.free_lists() == zone.free_lists()
        assert node.buddyinfo() == zone.buddyinfo()
        assert node.pageblock_types() == zone.pageblock_types()
        assert node.counters() == zone.counters()
        assert node.watermarks() == zone.watermarks()
        for cpu in range(nr_cpus):
            assert node.pcp_lists_of(cpu) == zone.pcp_lists_of(cpu)
            assert node.pcp_state(cpu) == zone.pcp_state(cpu)

    same()
    assert node.lowmem_reserve() == [0, 0, 0, 0]
    live = []
    for step, (kind, a, mt, cpu) in enumerate(random_ops(rng, 400, geom["max_order"], nr_cpus, p_alloc)):
        if kind == "alloc":
            p = node.alloc(a, mt, cpu=cpu)
            assert p == zone.alloc(a, mt, cpu=cpu), f"step {step}"
            if p >= 0:
                live.append(p)
        elif kind == "free" and live:
            p = live.pop(a % len(live))
            node.free(p, cpu=cpu)
            zone.free(p, cpu=cpu)
        elif kind == "tick":
            assert node.decay_pcp_high(cpu) == zone.decay_pcp_high(cpu)
        elif kind == "drain":
            node.drain()
            zone.drain()
        same()
    node.check()


# --------------------------------------------------------------------------- random nodes


@pytest.mark.parametrize("policy", POLICIES)
def test_random_sequences_on_four_zones_keep_invariants(policy):
    rng = random.Random(policy)
    n = RefNode(4096 + 640, 6, 4, policy=policy, holes=((0, 1), (700, 770)), pcp=policy != "v6.1",
                nr_cpus=2, min_free_kbytes=16, dma_end=256, dma32_end=1024, movable_pages=1024)
    live = []
    for step, (kind, a, mt, cpu) in enumerate(random_ops(rng, 600, 6, 2)):
        if kind == "alloc":
            p = n.alloc(a, mt, cpu=cpu)
            if p >= 0:
                z = n.zone_of(p)
                # An unmovable or reclaimable request never lands in ZONE_MOVABLE.
                assert mt == M or z.zone_idx != ZONE_MOVABLE
                live.append(p)
        elif kind == "free" and live:
            n.free(live.pop(a % len(live)), cpu=cpu)
        elif kind == "tick":
            n.decay_pcp_high(cpu)
        elif kind == "drain":
            n.drain()
            assert n.pcp_count == 0
        if step % 50 == 0:
            n.check()
    c = n.counters()
    assert c["nr_free_pages"] + c["pgalloc"] - c["pgfree"] + n.pcp_count == n.managed_pages
    assert c["nr_free_pages"] == sum(sum(k << o for o, k in enumerate(n.buddyinfo(zi)))
                                     for zi in range(n.nr_zones))
    for p in live:
        n.free(p)
    n.drain()
    n.check()
    assert n.counters()["nr_free_pages"] == n.managed_pages
