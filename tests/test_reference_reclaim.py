"""Tests of the reference model's watermark boosting, page cache, kswapd and direct reclaim
(``RefZone`` / ``RefNode`` with ``watermark_boost_factor``, ``kswapd`` and ``pagecache``).

Expected values are derived by hand, in the comments, from MODEL.md ("Reclaim and background
compaction") and the 6.12 sources: mm/page_alloc.c boost_watermark(), steal_suitable_fallback() /
try_to_steal_block(), zone_watermark_fast(), rmqueue(), __alloc_pages_slowpath(); mm/vmscan.c
wakeup_kswapd(), pgdat_balanced(), balance_pgdat(), kswapd_shrink_node(), kswapd(),
kswapd_try_to_sleep(), prepare_kswapd_sleep(), isolate_lru_folios(), shrink_node(); for v6.15+
try_to_claim_block() (the boost right after the ``current_order >= pageblock_order`` return).

Watermarks of a zone that is all of lowmem (__setup_per_zone_wmarks()): min = min_free_kbytes / 4,
d = max(min / 4, managed * 10 / 10000), low = min + d, high = low + d.
"""

import pytest

from reference import (MOVABLE, POLICIES, UNMOVABLE, ZONE_MOVABLE, ZONE_NORMAL, RefNode, RefZone,
                       _slow_path, mult_frac)

U, M = UNMOVABLE, MOVABLE
MOBILITY_POLICIES = tuple(p for p in POLICIES if p != "nomobility")
STEAL_BOOSTS = ("v5.4", "v6.1", "v6.10")          # steal_suitable_fallback() boosts a steal too
STEAL_NO_BOOST = ("v6.15", "v6.16", "v6.17")      # __rmqueue_steal() does not boost
RECLAIM = dict(kswapd=True, pagecache=True)


def _recorded(m):
    """(kswapd_order, kswapd_highest_zoneidx)."""
    state = m.reclaim_state()
    return state["kswapd_order"], state["kswapd_highest_zoneidx"]


def _cache(z, n, order=0, mt=M):
    """Allocate ``n`` blocks and make each page cache at once; returns their pfns (LRU order)."""
    out = []
    for _ in range(n):
        pfn = z.alloc(order, mt)
        assert pfn >= 0
        assert z.add_file(pfn)
        out.append(pfn)
    return out


# ---------------------------------------------------------------------- boost arithmetic

def test_mult_frac_is_the_floor_of_x_times_numer_over_denom():
    # mult_frac(x, n, d) = (x / d) * n + ((x % d) * n) / d
    assert mult_frac(14, 15000, 10000) == 21          # 0 * 15000 + 14 * 15000 / 10000 = 21
    assert mult_frac(14, 5000, 10000) == 7
    assert mult_frac(14, 500, 10000) == 0             # 7000 / 10000
    assert mult_frac(123457, 15000, 10000) == 185185  # 12 * 15000 + 3457 * 15000 / 10000 = 180000 + 5185


@pytest.mark.parametrize("factor, boosts", [
    # 1024 pages, min_free_kbytes 40: min 10, d = max(10 / 4, 1024 * 10 / 10000) = 2, low 12,
    # high 14. max_boost = max(pageblock 4, mult_frac(14, factor, 10000)).
    (15000, [4, 8, 12, 16, 20, 21, 21]),   # mult_frac = 21: +4 each time, capped at 21
    (5000, [4, 7, 7]),                     # mult_frac = 7
    (1000, [4, 4]),                        # mult_frac = 1: the cap is the pageblock
])
def test_boost_grows_by_a_pageblock_up_to_the_cap(factor, boosts):
    z = RefZone(1024, 4, 2, min_free_kbytes=40, watermark_boost_factor=factor)
    assert z.watermarks() == (10, 12, 14)
    seen = []
    for _ in boosts:
        assert z.boost_watermark()          # it boosted (also when already at the cap)
        seen.append(z.reclaim_state()["boost"][0])
    assert seen == boosts
    assert z.reclaim_state()["boosted"] == [1]
    assert z.reclaim_counters()["nr_watermark_boosts"] == len(boosts)


@pytest.mark.parametrize("factor", [0, 500])
def test_no_boost_with_factor_0_or_a_zero_max_boost(factor):
    # factor 0: "if (!watermark_boost_factor) return false"; 500: mult_frac(14, 500, 10000) = 0:
    # "if (!max_boost) return false" (no fallback to a pageblock).
    z = RefZone(1024, 4, 2, min_free_kbytes=40, watermark_boost_factor=factor)
    assert not z.boost_watermark()
    assert z.reclaim_state()["boost"] == [0] and z.reclaim_state()["boosted"] == [0]
    assert z.reclaim_counters()["nr_watermark_boosts"] == 0


@pytest.mark.parametrize("holes, boosts", [((), True), (((15, 16),), False)])
def test_no_boost_in_a_zone_of_fewer_than_four_pageblocks(holes, boosts):
    # 16 pages, pageblock 4: "if ((pageblock_nr_pages * 4) > zone_managed_pages(zone))": 16 > 16
    # is false (boost); with one page a hole, 16 > 15 (no boost). min_free_kbytes 40 gives
    # high 14 (d = max(2, 0)), so max_boost is 21 either way.
    z = RefZone(16, 4, 2, min_free_kbytes=40, watermark_boost_factor=15000, holes=holes)
    assert z.watermarks() == (10, 12, 14)
    assert z.boost_watermark() is boosts
    assert z.reclaim_state()["boost"] == [4 if boosts else 0]


# ---------------------------------------------------------------------- where the boost happens

def _fallback_zone(policy, factor, kswapd):
    """64 pages, max_order 4, pageblock_order 2 (16 pageblocks), min_free_kbytes 4: min 1,
    d = max(0, 0) = 0, low = high = 1; max_boost = max(4, mult_frac(1, 15000, 10000) = 1) = 4."""
    return RefZone(64, 4, 2, policy=policy, min_free_kbytes=4, watermark_boost_factor=factor,
                   kswapd=kswapd)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("factor", [0, 15000])
@pytest.mark.parametrize("kswapd", [False, True])
def test_a_fallback_below_pageblock_order_boosts_and_wakes_kswapd(policy, factor, kswapd):
    z = _fallback_zone(policy, factor, kswapd)
    # 31 order-1 MOVABLE blocks: the fast path passes while free - 1 > low 1, so all pass
    # (the last one at free 4) and leave one free order-1 block (2 pages), below
    # pageblock_order 2, on the MOVABLE list; nothing woke kswapd.
    for _ in range(31):
        assert z.alloc(1, M) >= 0
    assert z.counters()["nr_free_pages"] == 2 and z.buddyinfo() == [0, 1, 0, 0, 0]
    assert z.reclaim_state()["kswapd_highest_zoneidx"] == -1
    # An UNMOVABLE order-0 request: free 2 > low 1 passes; no UNMOVABLE block, so the fallback
    # takes the MOVABLE order-1 block (v5.4-v6.10 steal_suitable_fallback(), v6.15+
    # try_to_claim_block()): below pageblock_order, so boost_watermark() runs (+4, the cap);
    # the block then claims its pageblock (free 2 + alike 0 >= 2). nomobility has no fallback
    # (the request's list is UNMOVABLE, like every pageblock's).
    assert z.alloc(0, U) >= 0
    boosted = factor and policy != "nomobility"
    state = z.reclaim_state()
    assert state["boost"] == [4 if boosted else 0]
    assert z.reclaim_counters()["nr_watermark_boosts"] == (1 if boosted else 0)
    # rmqueue() cleared ZONE_BOOSTED_WATERMARK and called wakeup_kswapd(zone, 0, 0, ZONE_NORMAL):
    # free 1 is not above high 1 + boost 4, so kswapd is woken (with kswapd on).
    assert state["boosted"] == [0]
    woken = bool(boosted and kswapd)
    assert z.kswapd_pending() is woken
    recorded = (state["kswapd_order"], state["kswapd_highest_zoneidx"])
    assert recorded == ((0, ZONE_NORMAL) if woken else (0, -1))


@pytest.mark.parametrize("policy", MOBILITY_POLICIES)
def test_a_fallback_of_a_whole_pageblock_does_not_boost(policy):
    # The first UNMOVABLE request of a fresh zone takes a MOVABLE order-4 block: current_order
    # >= pageblock_order returns before the boost.
    z = _fallback_zone(policy, 15000, True)
    assert z.alloc(0, U) >= 0
    assert z.counters()["fallback_claim"] == 1
    assert z.reclaim_state()["boost"] == [0]
    assert not z.kswapd_pending()


@pytest.mark.parametrize("policy", STEAL_BOOSTS + STEAL_NO_BOOST)
def test_a_steal_boosts_before_6_15_only(policy):
    z = _fallback_zone(policy, 15000, True)
    x = z.alloc(0, U)        # claims a 16-page MOVABLE block: x, x+1@0, x+2@1, x+4@2, x+8@3 UNMOVABLE
    assert z.alloc(3, U) == x + 8 and z.alloc(2, U) == x + 4
    assert z.alloc(0, U) == x + 1 and z.alloc(0, U) == x + 2      # splits x+2@1: x+3 free
    z.free(x + 1)            # its buddy x is allocated: x+1 and x+3 are free UNMOVABLE pages
    # 24 order-1 MOVABLE blocks take the 48 MOVABLE pages (the last at free 4: 3 > low 1).
    for _ in range(24):
        assert z.alloc(1, M) >= 0
    assert z.counters()["nr_free_pages"] == 2
    # A MOVABLE order-0 request finds only UNMOVABLE order-0 blocks: order 0 < pageblock_order / 2
    # = 1, so the block may not be claimed. v5.4-v6.10: __rmqueue_fallback() still calls
    # steal_suitable_fallback(), which boosts before its whole_block test, then takes the single
    # page; v6.15+: __rmqueue_claim() stops there and __rmqueue_steal() takes it without a boost.
    assert z.alloc(0, M) in (x + 1, x + 3)
    assert z.counters()["fallback_steal"] == 1
    boosted = policy in STEAL_BOOSTS
    assert z.reclaim_state()["boost"] == [4 if boosted else 0]
    assert z.kswapd_pending() is boosted


# ---------------------------------------------------------------------- boosted watermark gate

def test_the_boost_raises_the_allocation_watermarks():
    # 1024 pages, min_free_kbytes 40: (10, 12, 14). Boost 8: low 20, min 18.
    z = RefZone(1024, 4, 2, min_free_kbytes=40, watermark_boost_factor=15000, kswapd=True)
    for _ in range(1004):                     # free 1024 -> 20, all in the fast path (20 > 12)
        assert z.alloc(0, M) >= 0
    assert z.reclaim_state()["kswapd_highest_zoneidx"] == -1
    z.boost_watermark()
    z.boost_watermark()
    assert z.reclaim_state()["boost"] == [8]
    # free 20: the fast path fails (20 <= low 12 + 8); the slow path wakes kswapd
    # (wake_all_kswapds(): order 0, ZONE_MOVABLE for a MOVABLE request) and passes at min
    # 10 + 8 (20 > 18), then 19 > 18; at 18 it fails.
    assert z.alloc(0, M) >= 0
    assert z.reclaim_state()["kswapd_highest_zoneidx"] == ZONE_MOVABLE
    assert z.alloc(0, M) >= 0
    assert z.alloc(0, M) == -1
    assert z.counters()["nr_free_pages"] == 18


def test_order0_gfp_high_is_checked_against_the_unboosted_min():
    # (10, 12, 14). GFP_ATOMIC in the slow path: ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK, the mark
    # m - m/2, then less a quarter: unboosted min 10 -> 5 -> 4; boosted min 18 -> 9 -> 7.
    z = RefZone(1024, 4, 2, min_free_kbytes=40, watermark_boost_factor=15000)
    for _ in range(1014):                     # free 10: the non-atomic requests stop here
        assert z.alloc(0, M) >= 0
    assert z.alloc(0, M) == -1
    for _ in range(3):                        # atomic down to free 7 (each passes at 4)
        assert z.alloc(0, U, atomic=True) >= 0
    assert z.counters()["nr_free_pages"] == 7
    z.boost_watermark()
    z.boost_watermark()                       # boost 8
    # order 1: 7 - 1 = 6 <= 7 at the boosted min, and zone_watermark_fast() makes no exception
    # for order > 0 (without the boost 6 > 4 would pass).
    assert z.alloc(1, U, atomic=True) == -1
    # order 0: 7 <= 7 at the boosted min fails, then "Ignore watermark boosting for __GFP_HIGH
    # order-0 allocations when checking the min watermark": 7 > 4 passes.
    assert z.alloc(0, U, atomic=True) >= 0
    # a request without __GFP_HIGH has no exception: 6 <= 18
    assert z.alloc(0, M) == -1
    assert z.counters()["nr_free_pages"] == 6


# ---------------------------------------------------------------------- the page cache

def test_page_cache_is_an_lru_of_allocated_blocks():
    z = RefZone(256, 4, 2, min_free_kbytes=0, **RECLAIM)
    a, b = z.alloc(0, M), z.alloc(2, M)
    assert z.add_file(b) and z.add_file(a)
    assert z.file_pages() == [b, a]                       # oldest first: the order of lru_add_file()
    assert z.reclaim_state()["nr_file"] == 5              # pages: 4 + 1
    with pytest.raises(ValueError):
        z.free(a)                                         # only reclaim frees page cache
    with pytest.raises(ValueError):
        z.add_file(a)                                     # already page cache
    with pytest.raises(ValueError):
        z.add_file(a + 1)                                 # not the head of an allocated block
    plain = RefZone(256, 4, 2, min_free_kbytes=0)         # no page cache: refused, nothing changes
    c = plain.alloc(0, M)
    assert plain.add_file(c) is False
    assert plain.file_pages() == [] and plain.reclaim_state()["nr_file"] == 0
    plain.free(c)


def test_a_pass_scans_pages_oldest_first_skipping_higher_zones():
    # A node of DMA32 [0, 64), Normal [64, 128), Movable [128, 192); min_free_kbytes 0. MOVABLE
    # requests are served from ZONE_MOVABLE first, UNMOVABLE ones from ZONE_NORMAL.
    n = RefNode(192, 4, 2, min_free_kbytes=0, dma32_end=64, movable_pages=64, **RECLAIM)
    m1 = n.alloc(0, M)
    n1 = n.alloc(1, U)
    m2 = n.alloc(0, M)
    n2 = n.alloc(0, U)
    n3 = n.alloc(0, U)
    assert [n.zone_of(p).zone_idx for p in (m1, n1, m2, n2, n3)] == [3, 2, 3, 2, 2]
    for p in (m1, n1, m2, n2, n3):
        assert n.add_file(p)
    assert n.file_pages() == [m1, n1, m2, n2, n3] and n.reclaim_state()["nr_file"] == 6
    # One pass for ZONE_NORMAL scanning 3 pages (isolate_lru_folios(): skipped folios are not
    # counted, a folio counts its pages): m1 skipped, n1 (2 pages), m2 skipped, n2 (3 pages):
    # done. The skipped pages keep their place (MODEL.md).
    assert n.pgdat.shrink_page_cache(ZONE_NORMAL, 3, 100, 0) == 3
    assert n.file_pages() == [m1, m2, n3]
    # Direct reclaim for an UNMOVABLE request (its zones: up to ZONE_NORMAL) takes what is left
    # there, SWAP_CLUSTER_MAX at most: n3.
    assert n.pgdat.direct_reclaim(ZONE_NORMAL, 0) == 1
    assert n.file_pages() == [m1, m2]
    assert n.reclaim_counters()["pgsteal_direct"] == 1
    # For ZONE_MOVABLE everything is eligible.
    assert n.pgdat.direct_reclaim(ZONE_MOVABLE, 0) == 2
    assert n.file_pages() == [] and n.reclaim_state()["nr_file"] == 0
    n.check()


# ---------------------------------------------------------------------- kswapd

@pytest.mark.parametrize("pageblock_order, nr_boosts, boost, reclaimed", [
    (5, 2, 64, 64),      # pageblock 32: boost 64 = two passes of 32
    (4, 3, 48, 64),      # pageblock 16: boost 48, reclaimed in passes of 32: 64
    (4, 1, 16, 32),
])
def test_kswapd_on_a_boosted_balanced_node_reclaims_the_boost(pageblock_order, nr_boosts, boost,
                                                             reclaimed):
    # 4096 pages, min_free_kbytes 256: min 64, d = max(16, 4) = 16, low 80, high 96;
    # max_boost = mult_frac(96, 15000, 10000) = 144.
    z = RefZone(4096, 6, pageblock_order, min_free_kbytes=256, watermark_boost_factor=15000, **RECLAIM)
    assert z.watermarks() == (64, 80, 96)
    cached = _cache(z, 200)
    for _ in range(nr_boosts):
        z.boost_watermark()
    assert z.reclaim_state()["boost"] == [boost]
    # The next allocation's rmqueue() sees ZONE_BOOSTED_WATERMARK: wakeup_kswapd(zone, 0, 0,
    # ZONE_NORMAL): free 3895 is above high 96 + boost (balanced) but the node is boosted: woken.
    assert z.alloc(0, M) >= 0
    assert z.kswapd_pending()
    assert z.run_kswapd()
    # balance_pgdat(0, ZONE_NORMAL): nr_boost_reclaim = boost, the node balanced throughout.
    # Each pass asks for max(96 + boost, 32) and scans max(nr_file >> priority, 32) = 32 pages
    # (nr_file <= 200): 32 reclaimed per pass, nr_boost_reclaim -= 32, until it is 0; then
    # "if (!nr_boost_reclaim && balanced) goto out". The boost is cleared.
    assert z.reclaim_counters() == {"nr_watermark_boosts": nr_boosts, "pageoutrun": 1,
                                    "pgsteal_kswapd": reclaimed, "pgsteal_direct": 0}
    assert z.file_pages() == cached[reclaimed:]           # the oldest went first
    assert z.reclaim_state() == {"boost": [0], "boosted": [0], "kswapd_failures": 0,
                                 "kswapd_order": 0, "kswapd_highest_zoneidx": -1,
                                 "nr_file": 200 - reclaimed}
    assert not z.kswapd_pending() and not z.run_kswapd()  # asleep: it runs only when woken


def test_kswapd_on_a_node_unbalanced_by_its_boost_drops_it_and_reclaims_to_the_boosted_high():
    # (64, 80, 96), pageblock 16: three boosts make 48, high 96 + 48 = 144.
    z = RefZone(4096, 6, 4, min_free_kbytes=256, watermark_boost_factor=15000, **RECLAIM)
    cached = _cache(z, 200)
    for _ in range(3765):                      # free 4096 - 200 - 3765 = 131
        assert z.alloc(0, M) >= 0
    for _ in range(3):
        z.boost_watermark()
    # 131 > low 80 + 48: the fast path passes; rmqueue() wakes kswapd for ZONE_NORMAL: free
    # 130 is not above the boosted high 144: not balanced, woken.
    assert z.alloc(0, M) >= 0
    assert z.kswapd_pending() and z.counters()["nr_free_pages"] == 130
    assert z.run_kswapd()
    # balance_pgdat(): pgdat_balanced() at the boosted high fails (130 <= 144) while
    # nr_boost_reclaim = 48: "ignore boosting ... and restart" with nr_boost_reclaim 0. Pass
    # (priority 12): nr_to_reclaim = max(144, 32), 32 pages scanned and reclaimed; 162 > 144:
    # balanced, out. (Balanced against the unboosted high 96 it would reclaim the boost, 64.)
    assert z.reclaim_counters()["pgsteal_kswapd"] == 32
    assert z.file_pages() == cached[32:]
    assert z.reclaim_state()["boost"] == [0]               # cleared at out: all of it was counted


@pytest.mark.parametrize("order, blocks", [(0, 924), (2, 231)])
def test_kswapd_on_an_unbalanced_node_reclaims_past_the_high_watermark(order, blocks):
    # 1024 pages, min_free_kbytes 400: min 100, d = max(25, 1) = 25, low 125, high 150.
    z = RefZone(1024, 4, 2, min_free_kbytes=400, **RECLAIM)
    assert z.watermarks() == (100, 125, 150)
    # 924 pages of page cache in blocks of `order`; the last ones pass only at the min
    # watermark (order 0: 101 > 100; order 2: 104 - 3 > 100), leaving free 100, and the first
    # fast-path failure (free <= 125) woke kswapd for order `order`... the largest order asked:
    cached = _cache(z, blocks, order)
    assert z.counters()["nr_free_pages"] == 100
    assert z.kswapd_pending()
    assert z.reclaim_state()["kswapd_order"] == order
    assert z.reclaim_state()["kswapd_highest_zoneidx"] == ZONE_MOVABLE
    assert z.run_kswapd()
    # balance_pgdat(order, ZONE_MOVABLE), no boost. Pass 1 (priority 12): free 100 <= 150, not
    # balanced; nr_to_reclaim = max(150, 32) = 150, nr_to_scan = max(924 >> 12, 32) = 32 pages
    # (8 blocks of order 2): 32 < 150 so the priority drops; 32 >= compact_gap(2) = 16: sc.order
    # = 0. Pass 2 (priority 11): free 132 <= 150: 32 more. Pass 3: free 164 > 150: balanced.
    per_block = 1 << order
    assert z.reclaim_counters()["pgsteal_kswapd"] == 64
    assert z.reclaim_counters()["pageoutrun"] == 1
    assert z.counters()["nr_free_pages"] == 164
    assert z.file_pages() == cached[64 // per_block:]
    assert z.reclaim_state()["kswapd_failures"] == 0
    assert _recorded(z) == (0, -1)
    assert not z.kswapd_pending()


def test_wakeups_record_the_largest_order_and_index():
    z = RefZone(1024, 4, 2, min_free_kbytes=400, **RECLAIM)
    for _ in range(899):                      # free 125: the next fast path fails
        assert z.alloc(0, M) >= 0
    assert not z.kswapd_pending()
    assert z.alloc(1, U) >= 0                 # wake_all_kswapds(1, ZONE_NORMAL): woken
    assert z.kswapd_pending()
    assert _recorded(z) == (1, ZONE_NORMAL)
    assert z.alloc(0, M) >= 0                 # awake already: only max(order), max(index)
    assert _recorded(z) == (1, ZONE_MOVABLE)
    off = RefZone(1024, 4, 2, min_free_kbytes=400, pagecache=True)     # no kswapd: nothing
    for _ in range(901):
        assert off.alloc(0, M) >= 0
    assert not off.kswapd_pending() and not off.run_kswapd()
    assert off.reclaim_state()["kswapd_highest_zoneidx"] == -1


def test_kswapd_failures_reach_16_and_then_wakeups_do_not_wake_kswapd():
    # No page cache: nothing to reclaim. (100, 125, 150) as above.
    z = RefZone(1024, 4, 2, min_free_kbytes=400, kswapd=True)
    for _ in range(924):
        assert z.alloc(0, M) >= 0
    assert z.kswapd_pending()
    assert z.run_kswapd()
    # Each balance_pgdat() goes through priorities 12..1 reclaiming nothing: kswapd_failures++.
    # kswapd_try_to_sleep(): the node is neither balanced (100 <= 150) nor hopeless, so kswapd
    # does not sleep and balances again, until kswapd_failures == MAX_RECLAIM_RETRIES (16).
    assert z.reclaim_state()["kswapd_failures"] == 16
    assert z.reclaim_counters()["pageoutrun"] == 16
    assert not z.kswapd_pending()
    # A hopeless node: wakeup_kswapd() records the order and index but does not wake kswapd.
    assert z.alloc(2, U) == -1
    assert _recorded(z) == (2, ZONE_NORMAL)
    assert not z.kswapd_pending() and not z.run_kswapd()
    # A boost stays: kswapd, which would clear it, is not woken.
    z.boost_watermark()
    assert z.alloc(0, U) == -1
    assert not z.kswapd_pending()


def test_direct_reclaim_progress_revives_a_hopeless_kswapd():
    z = RefZone(1024, 4, 2, min_free_kbytes=400, **RECLAIM)
    got = [z.alloc(0, M) for _ in range(924)]
    assert z.run_kswapd() and z.reclaim_state()["kswapd_failures"] == 16   # no page cache yet
    for pfn in got[:10]:
        assert z.add_file(pfn)
    # free 100: the fast path fails, wakeup_kswapd() on a hopeless node; the min attempt fails
    # (100 <= 100); direct reclaim frees the 10 cached pages and resets kswapd_failures
    # (shrink_node(): "A successful direct reclaim run will revive a dormant kswapd"); 110 > 100.
    assert z.alloc(0, U) >= 0
    assert not z.kswapd_pending()
    assert z.reclaim_counters()["pgsteal_direct"] == 10
    assert z.reclaim_state()["kswapd_failures"] == 0
    # free 109 <= low 125: the next request wakes kswapd again.
    assert z.alloc(0, U) >= 0
    assert z.kswapd_pending()


# ---------------------------------------------------------------------- direct reclaim

@pytest.mark.parametrize("nr_cached, reclaimed", [(5, 5), (40, 32)])
def test_direct_reclaim_lets_an_allocation_below_min_succeed(nr_cached, reclaimed):
    # (10, 12, 14): 1014 MOVABLE pages leave free 10; the first nr_cached are page cache.
    z = RefZone(1024, 4, 2, min_free_kbytes=40, pagecache=True)
    got = [z.alloc(0, M) for _ in range(1014)]
    assert min(got) >= 0 and z.counters()["nr_free_pages"] == 10
    for pfn in got[:nr_cached]:
        assert z.add_file(pfn)
    # UNMOVABLE order 0: fast path 10 <= 12, min 10 <= 10; direct reclaim: SWAP_CLUSTER_MAX (32)
    # pages of page cache, oldest first; then 10 + reclaimed > 10: it succeeds.
    assert z.alloc(0, U) >= 0
    assert z.reclaim_counters()["pgsteal_direct"] == reclaimed
    assert z.file_pages() == got[reclaimed:nr_cached]
    assert z.counters()["nr_free_pages"] == 10 + reclaimed - 1
    assert z.counters()["alloc_fail"] == 0
    # Without page cache the same request fails.
    plain = RefZone(1024, 4, 2, min_free_kbytes=40, pagecache=True)
    for _ in range(1014):
        plain.alloc(0, M)
    assert plain.alloc(0, U) == -1
    assert plain.counters()["alloc_fail"] == 1


def test_pages_reclaimed_onto_the_pcp_lists_count_once_drained():
    # v5.4 with pcp: order-0 pcp lists only, batch max(1, zone_batchsize()) = 1, high 6 * 1 = 6.
    # (10, 12, 14) as above.
    z = RefZone(1024, 4, 2, policy="v5.4", pcp=True, min_free_kbytes=40, pagecache=True)
    cached = _cache(z, 5)                # each a pcp refill of one page, taken at once
    assert z.pcp_counters()["pcp_count"] == 0
    for _ in range(504):                 # order-1 blocks (no pcp list): free 1019 -> 11
        assert z.alloc(1, M) >= 0
    assert z.counters()["nr_free_pages"] == 11
    # alloc(1, M): the fast path and the min attempt fail (11 - 1 <= 10); direct reclaim frees
    # the 5 cached pages to the pcp list (count 5 < high 6: no drain), which NR_FREE_PAGES does
    # not count: the attempt fails again. __alloc_pages_direct_reclaim(): unreserve(ac, false)
    # (no reserve), drain_all_pages(): free 16, and the attempt once more: 15 > 10, it succeeds.
    assert z.alloc(1, M) >= 0
    assert z.reclaim_counters()["pgsteal_direct"] == 5
    assert z.pcp_counters()["pcp_count"] == 0
    assert z.counters()["nr_free_pages"] == 14
    assert z.counters()["alloc_fail"] == 0
    assert z.file_pages() == [] and cached


def test_direct_reclaim_takes_only_the_page_cache_of_the_request_zones():
    # DMA32 [0, 64), Normal [64, 128), Movable [128, 192), v6.15, min_free_kbytes 32: pages_min
    # 8 over lowmem 128: DMA32 and Normal min 4; their page cache and the Movable zone's.
    n = RefNode(192, 4, 2, policy="v6.15", min_free_kbytes=32, dma32_end=64, movable_pages=64,
                **RECLAIM)
    movable = _cache(n, 3)                   # in ZONE_MOVABLE
    assert {n.zone_of(p).zone_idx for p in movable} == {ZONE_MOVABLE}
    unmovable = _cache(n, 3, mt=U)           # in ZONE_NORMAL
    # UNMOVABLE order-0 requests use Normal and DMA32 down to their min watermarks; the first
    # one that fails there reclaims directly for ZONE_NORMAL: the three unmovable cached pages,
    # not the Movable zone's, which keep their place.
    while n.reclaim_counters()["pgsteal_direct"] == 0:
        assert n.alloc(0, U) >= 0
    assert n.reclaim_counters()["pgsteal_direct"] == 3
    assert n.file_pages() == movable
    assert not set(unmovable) & set(n.file_pages())
    # kswapd was woken for ZONE_NORMAL: it reclaims nothing there (the cache left is the
    # Movable zone's) and, the node unbalanced, runs until it is hopeless.
    assert n.kswapd_pending() and n.reclaim_state()["kswapd_highest_zoneidx"] == ZONE_NORMAL
    assert n.run_kswapd()
    assert n.reclaim_counters()["pgsteal_kswapd"] == 0
    assert n.file_pages() == movable
    assert n.reclaim_state()["kswapd_failures"] == 16
    n.check()


@pytest.mark.parametrize("order, atomic, reclaims, retry, unreserves, calls", [
    # GFP_ATOMIC: the min attempt, then "if (!can_direct_reclaim) goto nopage".
    (0, True, [], [], [], ["attempt"]),
    # order 0: reclaim; progress: the attempt, and as it fails (__alloc_pages_direct_reclaim()'s
    # "!page && !drained") unreserve_highatomic_pageblock(ac, false), drain_all_pages() and the
    # attempt once more; reclaim again (no free-block test at order 0); no progress:
    # should_reclaim_retry()'s unreserve(ac, true); it converted a block: goto retry (the
    # attempt, then reclaim again); no progress, nothing to unreserve: fail.
    (0, False, [32, 0, 0], [], [False, True, False],
     ["attempt", "reclaim", "attempt", "unreserve(False)", "drain", "attempt", "reclaim",
      "unreserve(True)", "attempt", "reclaim", "unreserve(True)"]),
    # order 2: before each further reclaim, a free block of the order must exist somewhere.
    (2, False, [32, 32, 0], [True, True], [False, False, False],
     ["attempt", "reclaim", "attempt", "unreserve(False)", "drain", "attempt", "retry?", "reclaim",
      "attempt", "unreserve(False)", "drain", "attempt", "retry?", "reclaim", "unreserve(True)"]),
    (1, False, [32], [False], [False, False],
     ["attempt", "reclaim", "attempt", "unreserve(False)", "drain", "attempt", "retry?",
      "unreserve(True)"]),
    # a costly order reclaims once, and never unreserves with force
    (4, False, [32], [], [False],
     ["attempt", "reclaim", "attempt", "unreserve(False)", "drain", "attempt"]),
    (4, False, [0], [], [], ["attempt", "reclaim"]),
])
def test_the_direct_reclaim_retry_loop(order, atomic, reclaims, retry, unreserves, calls):
    log = []
    reclaims, retry, unreserves = list(reclaims), list(retry), list(unreserves)

    def attempt(wmark, alloc_flags):
        log.append("attempt")

    def unreserve(force):
        log.append(f"unreserve({force})")
        return unreserves.pop(0)

    def step(name, answers):
        def call(*args):
            log.append(name)
            return answers.pop(0) if answers is not None else None
        return call

    assert _slow_path(attempt, order, atomic, unreserve, step("reclaim", reclaims),
                      step("retry?", retry), step("drain", None)) is None
    assert log == calls
    assert not reclaims and not retry and not unreserves
