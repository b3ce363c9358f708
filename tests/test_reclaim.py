"""Watermark boosting, kswapd, kcompactd and proactive compaction in the jitted model, on
hand-built states (MODEL.md, Reclaim and background compaction). The reference model checks
boosting, the page cache, kswapd and direct reclaim step by step (tests/test_differential.py);
these tests cover what it does not model: the kcompactd hand-offs, proactive compaction, THP
faults' gfp and the cell parameters."""

import numpy as np
import pytest

from kernels import compaction as K
from kernels import constants as C
from kernels.check import check_zone
from kernels.page_alloc import (alloc_pages, boost_watermark, boot_node, free_pages, lru_add_file,
                                wakeup_kswapd)
from kernels.zone import make_node

pytestmark = pytest.mark.kernels


def _node(nr_pages=1 << 14, policy="v6.15", pagecache=False, min_free_kbytes=256, **kw):
    node = make_node(nr_pages, 10, 9, policy, min_free_kbytes=min_free_kbytes,
                     pagecache_slots=nr_pages if pagecache else 0, **kw)
    boot_node(node)
    return node


def _fragment(node, keep=2):
    """Every page of the zone allocated movable, then all but one in `keep` freed: no free block
    above order 0 (keep=2), every pageblock Movable and holding movable pages. Returns the pages
    kept."""
    pages = []
    while True:
        p = alloc_pages(node, 0, C.MIGRATE_MOVABLE, C.GFP_NO_KSWAPD)
        if p < 0:
            break
        pages.append(p)
    kept = []
    for i, p in enumerate(sorted(pages)):
        if i % keep:
            free_pages(node, p)
        else:
            kept.append(p)
    return kept


def _mult_frac(x, n, d):
    return (x // d) * n + ((x % d) * n) // d


@pytest.mark.parametrize("policy", ["v5.4", "v6.1", "v6.10", "v6.15", "v6.17"])
def test_a_fallback_below_a_pageblock_boosts_and_wakes_kswapd(policy):
    node = _node(policy=policy, watermark_boost_factor=15000, kswapd=True)
    z = node[0]
    _fragment(node)
    assert alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, 0) >= 0
    high = int(z.zp[C.ZP_WMARK_HIGH])
    cap = max(512, _mult_frac(high, 15000, 10000))
    assert int(z.zp[C.ZP_WMARK_BOOST]) == min(512, cap)
    assert int(z.stat[C.NR_WATERMARK_BOOSTS]) == 1
    # rmqueue() cleared ZONE_BOOSTED_WATERMARK and woke kswapd
    assert z.zp[C.ZP_BOOSTED] == 0 and z.zp[C.ZP_BG_PENDING] & C.BG_KSWAPD
    check_zone(node)


def test_boosts_add_up_to_the_cap():
    node = _node(watermark_boost_factor=1000)     # cap: max(a pageblock, high / 10)
    z = node[0]
    z.zp[C.ZP_WMARK_BOOST] = 0
    got = [(boost_watermark(z), int(z.zp[C.ZP_WMARK_BOOST])) for _ in range(3)]
    assert got == [(True, 512)] * 3          # max(512, high/10) = 512 for this small high mark
    big = _node(nr_pages=1 << 16, min_free_kbytes=65536)    # high well above a pageblock
    zb = big[0]
    zb.zp[C.ZP_BOOST_FACTOR] = 15000
    cap = _mult_frac(int(zb.zp[C.ZP_WMARK_HIGH]), 15000, 10000)
    assert cap > 4 * 512
    steps = [int(zb.zp[C.ZP_WMARK_BOOST]) for _ in range(cap // 512 + 3) if boost_watermark(zb)]
    assert steps[:4] == [512, 1024, 1536, 2048] and steps[-1] == cap


def test_no_boost_with_the_factor_zero_or_in_a_small_zone():
    assert not boost_watermark(_node(watermark_boost_factor=0)[0])
    small = _node(nr_pages=1536, watermark_boost_factor=15000)[0]    # 4 pageblocks > 1536 pages
    assert not boost_watermark(small) and small.zp[C.ZP_WMARK_BOOST] == 0


def test_the_boost_raises_every_watermark_but_not_for_an_order0_high_priority_request():
    node = _node(watermark_boost_factor=15000)
    z = node[0]
    wmin = int(z.zp[C.ZP_WMARK_MIN])
    # leave free pages between the min watermark and min + boost
    while int(z.stat[C.NR_FREE_PAGES]) > wmin + 100:
        alloc_pages(node, 0, C.MIGRATE_MOVABLE, C.GFP_NO_KSWAPD)
    z.zp[C.ZP_WMARK_BOOST] = 512
    assert alloc_pages(node, 0, C.MIGRATE_MOVABLE, C.GFP_NO_KSWAPD) == -1
    # GFP_ATOMIC: __GFP_HIGH, checked against the unboosted min
    assert alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, C.GFP_ATOMIC | C.GFP_NO_KSWAPD) >= 0
    assert alloc_pages(node, 1, C.MIGRATE_UNMOVABLE, C.GFP_ATOMIC | C.GFP_NO_KSWAPD) == -1
    z.zp[C.ZP_WMARK_BOOST] = 0
    assert alloc_pages(node, 0, C.MIGRATE_MOVABLE, C.GFP_NO_KSWAPD) >= 0


def test_kswapd_reclaims_the_boost_then_kcompactd_compacts_for_a_pageblock():
    node = _node(watermark_boost_factor=15000, kswapd=True, kcompactd=True, pagecache=True)
    z = node[0]
    kept = _fragment(node)
    for p in kept[::2]:        # every fourth page is clean page cache, the rest anon or free
        assert lru_add_file(node, p)
    assert alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, 0) >= 0
    boost = int(z.zp[C.ZP_WMARK_BOOST])
    assert boost == 512 and z.zp[C.ZP_BG_PENDING] == C.BG_KSWAPD
    K.background(node)
    check_zone(node)
    # the node was balanced: kswapd reclaimed the boost, in passes of SWAP_CLUSTER_MAX, oldest
    # pages first, then cleared it and woke kcompactd for pageblock_order
    assert int(z.stat[C.PGSTEAL_KSWAPD]) == boost and int(z.stat[C.PAGEOUTRUN]) == 1
    assert z.zp[C.ZP_WMARK_BOOST] == 0 and z.zp[C.ZP_KSWAPD_FAILURES] == 0
    assert int(z.stat[C.COMPACT_DAEMON_WAKE]) == 1
    # what kswapd freed made no free pageblock (every fourth page): kcompactd made one
    assert int(z.nr_free[9:].sum()) > 0 and int(z.stat[C.PGMIGRATE_SUCCESS]) > 0
    assert z.zp[C.ZP_BG_PENDING] == 0 and z.zp[C.ZP_KCOMPACTD_ORDER] == 0


def test_a_node_without_page_cache_turns_hopeless_after_16_kswapd_runs():
    node = _node(watermark_boost_factor=15000, kswapd=True)
    z = node[0]
    _fragment(node)
    runs = []
    for _ in range(20):
        z.zp[C.ZP_WMARK_BOOST] = 512
        wakeup_kswapd(node, 0, C.ZONE_NORMAL, True)
        pending = bool(z.zp[C.ZP_BG_PENDING] & C.BG_KSWAPD)
        K.background(node)
        runs.append(pending)
    assert runs == [True] * 16 + [False] * 4
    assert int(z.stat[C.PAGEOUTRUN]) == 16 and z.zp[C.ZP_KSWAPD_FAILURES] == 16
    # hopeless: the boost set last stays
    assert z.zp[C.ZP_WMARK_BOOST] == 512


def test_a_deferred_thp_fault_without_page_cache_wakes_kcompactd_once_the_node_is_hopeless():
    """defrag=defer: the fault does nothing itself; kswapd, with nothing to reclaim, fails at
    order 9 and sleeps for order 0 (balanced), waking no kcompactd; once 16 failures made the
    node hopeless, the next fault's wakeup_kswapd() wakes kcompactd for order 9 itself (the
    request cannot reclaim), which compacts, and a later fault finds a free THP."""
    node = _node(kswapd=True, kcompactd=True)
    z = node[0]
    _fragment(node)
    cc = np.zeros(C.CC_SIZE, dtype=np.int64)
    got = []
    for i in range(20):
        got.append(K.alloc_pages_gfp(node, cc, 9, C.MIGRATE_MOVABLE, 0, K.GFP_THP_DEFER))
        K.background(node)
        if i == 15:
            assert int(z.stat[C.PAGEOUTRUN]) == 16 and int(z.stat[C.COMPACT_DAEMON_WAKE]) == 0
        if i == 16:
            assert int(z.stat[C.PAGEOUTRUN]) == 16 and int(z.stat[C.COMPACT_DAEMON_WAKE]) == 1
    assert got[:17] == [-1] * 17 and any(p >= 0 for p in got[17:])
    assert int(z.stat[C.COMPACT_STALL]) == 0        # no direct compaction
    check_zone(node)


def test_kswapd_that_reclaimed_a_compact_gap_for_a_thp_wakes_kcompactd_when_it_sleeps():
    """With page cache, kswapd woken for order 9 reclaims compact_gap(9) = 1024 pages, falls
    back to order 0, is balanced there and, going to sleep, wakes kcompactd for order 9
    (kswapd_try_to_sleep(alloc_order, reclaim_order))."""
    node = _node(kswapd=True, kcompactd=True, pagecache=True)
    z = node[0]
    kept = _fragment(node)
    for p in kept[::2]:
        assert lru_add_file(node, p)
    cc = np.zeros(C.CC_SIZE, dtype=np.int64)
    assert K.alloc_pages_gfp(node, cc, 9, C.MIGRATE_MOVABLE, 0, K.GFP_THP_DEFER) == -1
    K.background(node)
    assert int(z.stat[C.PAGEOUTRUN]) == 1 and int(z.stat[C.PGSTEAL_KSWAPD]) >= 1024
    assert int(z.stat[C.COMPACT_DAEMON_WAKE]) == 1 and z.zp[C.ZP_KSWAPD_FAILURES] == 0
    check_zone(node)


@pytest.mark.parametrize("gfp", [K.GFP_THP_LIGHT, K.GFP_THP, K.GFP_THP_NORETRY])
def test_transhuge_gfp_never_wakes_kswapd(gfp):
    node = _node(kswapd=True, kcompactd=True)
    z = node[0]
    _fragment(node, keep=2)
    K.alloc_pages_gfp(node, np.zeros(C.CC_SIZE, dtype=np.int64), 9, C.MIGRATE_MOVABLE, 0, gfp)
    assert z.zp[C.ZP_BG_PENDING] == 0


def test_direct_reclaim_frees_page_cache_for_a_request_below_min():
    node = _node(pagecache=True)
    z = node[0]
    kept = _fragment(node, keep=1)             # every page allocated down to the min watermark
    while alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, C.GFP_ATOMIC) >= 0:     # and the reserves
        pass
    for p in kept[:64]:
        lru_add_file(node, p)
    assert alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, C.GFP_ATOMIC) == -1     # atomic: no reclaim
    assert int(z.stat[C.PGSTEAL_DIRECT]) == 0
    # SWAP_CLUSTER_MAX pages at a time until the zone is above its min watermark
    free0, wmin = int(z.stat[C.NR_FREE_PAGES]), int(z.zp[C.ZP_WMARK_MIN])
    rounds = -(-(wmin + 1 - free0) // 32)
    assert rounds >= 2
    assert alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, 0) >= 0
    assert int(z.stat[C.PGSTEAL_DIRECT]) == 32 * rounds and int(z.zp[C.ZP_NR_FILE]) == 64 - 32 * rounds
    # the oldest pages went first
    assert all(not z.page_flags[p] & C.PG_HEAD for p in kept[:32 * rounds])
    assert all(z.page_flags[p] & C.PG_HEAD for p in kept[32 * rounds:64])
    check_zone(node)


def test_proactive_compaction_runs_on_the_clock_until_the_score_is_low():
    node = _node(kcompactd=True, compaction_proactiveness=20, proactive_interval_ops=50)
    z = node[0]
    kept = _fragment(node)
    for p in kept[:64]:
        free_pages(node, p)
    z.zp[C.ZP_PROACTIVE_COUNTDOWN] = 50      # the clock ticked through _fragment's allocations
    z.zp[C.ZP_BG_PENDING] = 0
    assert K.fragmentation_score_node(node) > 90
    for i in range(49):
        assert alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0) >= 0
        K.background(node)
    assert int(z.stat[C.PROACTIVE_COMPACT]) == 0
    alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0)
    K.background(node)
    assert int(z.stat[C.PROACTIVE_COMPACT]) == 1
    score = K.fragmentation_score_node(node)
    assert score <= 80 and int(z.stat[C.PGMIGRATE_SUCCESS]) > 0
    for i in range(50):
        alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0)
        K.background(node)
    assert int(z.stat[C.PROACTIVE_COMPACT]) == 1         # at most 90 now: nothing to do
    check_zone(node)


def test_proactive_compaction_without_progress_waits_64_intervals():
    node = _node(kcompactd=True, compaction_proactiveness=20, proactive_interval_ops=1)
    z = node[0]
    _fragment(node)
    # every movable page pinned: nothing can move, the score cannot fall
    for p in np.flatnonzero(z.page_flags & C.PG_HEAD):
        z.page_flags[p] |= C.PG_PINNED
    runs = []
    for i in range(130):
        alloc_pages(node, 0, C.MIGRATE_MOVABLE, C.GFP_NO_KSWAPD)
        K.background(node)
        runs.append(int(z.stat[C.PROACTIVE_COMPACT]))
    assert runs[0] == 1 and runs[63] == 1 and runs[64] == 2 and runs[128] == 3


def test_cells_follow_the_kernel_defaults_and_switches():
    from farm.cell.simulate import run
    base = {"memory": "256M", "workload": "mixed", "occupancy": 0.8, "pagecache_fraction": 0.5,
            "ops": 100000}
    on = run(base)["counters"]
    again = run(base)["counters"]
    off = run({**base, "kswapd": False})["counters"]
    assert on == again
    assert on["pageoutrun"] > 0 and on["pgsteal_kswapd"] > 0
    assert off["pageoutrun"] == 0 and off["pgsteal_kswapd"] == 0 and off["pgsteal_direct"] > 0
