"""Contiguous allocation: compaction, isolation regimes, alloc_contig_range, offlining, probes."""

import numpy as np
import pytest

from farm.cell.simulate import run
from kernels import constants as C
from kernels.check import check_zone
from kernels.compaction import compact_node
from kernels.page_alloc import alloc_pages, boot_node, free_pages
from kernels.page_isolation import (
    CONTIG_OK, FAIL_HOLE, FAIL_MIGRATION, FAIL_UNMOVABLE_IN_RANGE, FAIL_UNMOVABLE_OUTSIDE,
    alloc_contig_range, offline_pages, online_pages,
)
from kernels.zone import make_node

pytestmark = pytest.mark.kernels


def _node(nr_pages=1 << 14, max_order=10, pageblock_order=9, maxorder=False, **kw):
    node = make_node(nr_pages, max_order, pageblock_order, contig_maxorder=maxorder, **kw)
    boot_node(node)
    return node


def _allocated(node):
    """(pfn, order, mt, flags) of every allocated block: what compaction must preserve (up to pfn)."""
    z = node[0]
    heads = np.flatnonzero(z.page_flags & C.PG_HEAD)
    return sorted((int(z.page_order[p]), int(z.page_mt[p]),
                   int(z.page_flags[p] & (C.PG_LRU | C.PG_PINNED | C.PG_CONTIG))) for p in heads)


def _unmovable_page_in_second_pageblock(node):
    """Fill the first max-order block's first pageblock with movable pages, then place one
    unmovable page: it claims a fresh block; return its pfn and that max-order block's start."""
    u = alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, 0)
    return u, u & ~((1 << 10) - 1)


@pytest.mark.parametrize("regime", ["pageblock", "maxorder"])
def test_the_threads_case(regime):
    # One unmovable page in pageblock A of a max-order block; ask for the other pageblock B.
    node = _node(maxorder=regime == "maxorder")
    movable = [alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0) for _ in range(300)]
    u = alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, 0)
    block = u & ~((1 << 10) - 1)
    a = u & ~((1 << 9) - 1)
    b = a ^ (1 << 9)
    assert block <= b < block + (1 << 10)
    check_zone(node)
    r_outside = alloc_contig_range(node, 0, b, b + 512, C.MIGRATE_MOVABLE)
    check_zone(node)
    r_inside = alloc_contig_range(node, 0, a, a + 512, C.MIGRATE_MOVABLE)
    check_zone(node)
    if regime == "maxorder":
        assert r_outside == FAIL_UNMOVABLE_OUTSIDE
    else:
        assert r_outside == CONTIG_OK
        z = node[0]
        assert all(z.page_flags[b + i] & C.PG_CONTIG for i in range(512))
    assert r_inside == FAIL_UNMOVABLE_IN_RANGE
    assert len(movable) == 300


@pytest.mark.parametrize("regime", ["pageblock", "maxorder"])
def test_a_boundary_pageblock_is_checked_whole(regime):
    """A range of 64 pages at the start of the pageblock that holds an unmovable page (not in the
    range): isolate_single_pageblock() (5.19+) checks the whole boundary pageblock, as
    set_migratetype_isolate() did before 5.19, so the isolation fails on the page outside the
    range; a range in a pageblock without one succeeds."""
    node = _node(maxorder=regime == "maxorder")
    [alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0) for _ in range(300)]
    u = alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, 0)
    a = u & ~((1 << 9) - 1)
    start = a if u >= a + 64 else a + 256
    assert not start <= u < start + 64
    assert alloc_contig_range(node, 0, start, start + 64, C.MIGRATE_MOVABLE) == FAIL_UNMOVABLE_OUTSIDE
    check_zone(node)
    other = (a ^ (1 << 9)) if regime == "pageblock" else (a + (1 << 10)) % (1 << 12)
    assert alloc_contig_range(node, 0, other, other + 64, C.MIGRATE_MOVABLE) == CONTIG_OK
    check_zone(node)


def test_contig_range_migrates_movable_pages_and_keeps_every_page():
    node = _node()
    pfns = [alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0) for _ in range(700)]
    before = _allocated(node)
    assert alloc_contig_range(node, 0, 0, 512, C.MIGRATE_MOVABLE) == CONTIG_OK
    check_zone(node)
    z = node[0]
    after = [x for x in _allocated(node) if not x[2] & C.PG_CONTIG]
    assert after == before                          # the 512 movable pages moved, none lost
    assert z.stat[C.PGMIGRATE_SUCCESS] == 512       # exactly the pages that were in the range
    assert len(pfns) == 700


def test_pinned_page_makes_the_range_fail_and_changes_nothing():
    node = _node()
    for _ in range(100):
        alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0)
    pinned = alloc_pages(node, 0, C.MIGRATE_MOVABLE, C.PG_PINNED)
    blocks_before = node[0].pb_mt.copy()
    r = alloc_contig_range(node, 0, pinned & ~511, (pinned & ~511) + 512, C.MIGRATE_MOVABLE)
    assert r == FAIL_MIGRATION
    check_zone(node)
    assert (node[0].pb_mt == blocks_before).all()
    assert node[0].stat[C.NR_ISOLATE_PAGEBLOCK] == 0


def test_compaction_never_loses_or_duplicates_a_page():
    node = _node(nr_pages=1 << 15, owner_slots=1 << 15)
    rng = np.random.default_rng(5)
    pfns = []
    for i in range(20000):
        mt = C.MIGRATE_MOVABLE if rng.random() < 0.97 else C.MIGRATE_UNMOVABLE
        order = 0 if rng.random() < 0.9 else int(rng.integers(1, 4))
        pfns.append(alloc_pages(node, order, mt, 0))
    for p in rng.permutation([p for p in pfns if p >= 0])[:14000]:
        free_pages(node, int(p))
    before = _allocated(node)
    free_before = int(node[0].stat[C.NR_FREE_PAGES])
    cc = np.zeros(C.CC_SIZE, dtype=np.int64)
    compact_node(node, cc)
    check_zone(node)
    assert _allocated(node) == before
    assert int(node[0].stat[C.NR_FREE_PAGES]) == free_before
    assert node[0].stat[C.PGMIGRATE_SUCCESS] > 0
    # compaction produced more max-order blocks than it found
    assert node[0].nr_free[10] > 0


def test_migrated_blocks_carry_their_owner_slot():
    node = _node(owner_slots=64)
    z = node[0]
    for _ in range(300):
        alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0)
    pfn = alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0)
    z.owner[7] = pfn
    z.next[pfn] = 7
    assert alloc_contig_range(node, 0, pfn & ~511, (pfn & ~511) + 512, C.MIGRATE_MOVABLE) == CONTIG_OK
    moved = int(z.owner[7])
    assert moved != pfn and not (pfn & ~511) <= moved < (pfn & ~511) + 512
    assert z.page_flags[moved] & C.PG_HEAD and z.next[moved] == 7 and z.page_flags[moved] & C.PG_LRU
    check_zone(node)


@pytest.mark.parametrize("policy", ["v6.1", "v6.15"])
def test_equal_orders_make_the_two_regimes_identical(policy):
    base = {"memory": "128M", "max_order": 9, "pageblock_order": 9, "workload": "fragmenter",
            "policy": policy, "seed": 3,
            "probe": ["contig:size=2M,attempts=40", "gigantic:count=1,size=8M"]}
    a = run({**base, "isolation": "pageblock"})
    b = run({**base, "isolation": "maxorder"})
    assert a["probes"] == b["probes"]
    assert a["buddyinfo"] == b["buddyinfo"]
    assert a["probes"][0]["asked"] == 40


def test_offline_fails_on_hole_and_unmovable_page_and_succeeds_on_movable_block():
    block = 1 << 15
    node = _node(nr_pages=2 * block, holes=[(block + 100, block + 104)])
    assert offline_pages(node, block, block) == FAIL_HOLE
    for _ in range(2000):
        alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0)
    u = alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, 0)
    assert u < block
    assert offline_pages(node, 0, block) == FAIL_UNMOVABLE_IN_RANGE
    check_zone(node)
    free_pages(node, u)
    assert offline_pages(node, 0, block) == CONTIG_OK
    check_zone(node)
    z = node[0]
    assert (z.page_flags[0:block] == C.PG_RESERVED).all()
    # the 2000 movable pages were migrated to the upper half
    assert np.count_nonzero(z.page_flags[block:] & C.PG_LRU) == 2000
    online_pages(node, 0, block)
    check_zone(node)
    assert z.stat[C.NR_FREE_PAGES] == 2 * block - 4 - 2000


def test_everything_in_zone_movable_offlines_every_block():
    res = run({"memory": "256M", "movable_fraction": 1.0, "workload": "mixed", "ops": 20000,
               "mix": "movable=1", "occupancy": 0.6, "probe": ["offline:block=32M"],
               "check_every": 5000})
    probe = res["probes"][0]
    assert probe["asked"] == 8
    assert probe["obtained"] == 8
    assert probe["pages_migrated"] > 0


def test_zone_normal_blocks_with_unmovable_pages_do_not_offline():
    res = run({"memory": "256M", "workload": "mixed", "ops": 20000, "occupancy": 0.6,
               "probe": ["offline:block=32M"]})
    probe = res["probes"][0]
    assert probe["asked"] == 8
    assert probe["obtained"] < 8
    assert probe["failure_reasons"]["unmovable_in_range"] == 8 - probe["obtained"]


@pytest.mark.parametrize("workload", ["mixed", "thp", "cma", "hotplug", "fragmenter"])
def test_workloads_keep_every_invariant_and_are_deterministic(workload):
    p = {"memory": "64M", "workload": workload, "ops": 6000, "check_every": 500, "seed": 11,
         "period": 700, "hold": 300, "pcp": True}
    if workload == "cma":
        p.update(cma_size="16M", cma_chunk="2M")
    if workload == "hotplug":
        p.update(memory_block_size="128M", section_bits=23)
    a = run(p)
    b = run(p)
    assert a["counters"] == b["counters"] and a["buddyinfo"] == b["buddyinfo"]
    assert a["counters"]["alloc_ops"] > 0


@pytest.mark.heavy
def test_grouping_by_mobility_multiplies_order9_success_on_fragmenter():
    """Published result #1 (Mel Gorman): grouping pages by mobility makes order-9 allocations
    succeed far more often. On the fragmenter the model's factor is about 1.8 at 1 GiB."""
    probes = ["compact", "hugepages:order=9,count=512"]
    got = {pol: run({"memory": "1G", "workload": "fragmenter", "policy": pol, "probe": probes})
           ["probes"][1]["obtained"] for pol in ("v6.15", "nomobility")}
    assert got["v6.15"] >= 1.5 * got["nomobility"], got
    assert got["v6.15"] >= 480, got


def test_a_released_hugetlb_pool_frees_its_pages_before_the_next_probe():
    """hugepages:...,release=1 frees the pool when the probe ends: a 1 GiB page the held pool
    blocks is obtained after a released one, and the probe's own count is the same."""
    from farm.cell.simulate import run
    base = {"workload": "thp", "memory": "4G", "seed": 1}
    got = {}
    for release in ("", ",release=1"):
        r = run({**base, "probe": [f"hugepages:order=9,count=1024{release}", "gigantic:count=2"]})
        got[release] = [(p["kind"], p["obtained"]) for p in r["probes"]]
    assert got[""][0] == got[",release=1"][0] and got[""][0][1] > 0
    assert got[""][1] == ("gigantic", 0) and got[",release=1"][1] == ("gigantic", 1)


def test_probe_specs_are_canonical_and_release_is_optional():
    from farm.cell.params import ParamError, parse_probe
    # left out, an optional setting is not in the canonical spec, so stored cells keep their ids
    assert parse_probe("hugepages:count=8")[2] == "hugepages:order=9,count=8"
    assert parse_probe("hugepages:count=8,release=1")[2] == "hugepages:order=9,count=8,release=1"
    assert parse_probe("contig:attempts=4")[2] == "contig:size=2M,attempts=4"
    for bad, words in (("hugepages:count=8,release=2", "release is 0 or 1"),
                       ("hugepages:order=9", "needs count"), ("contig:isolation=x", "isolation is pageblock")):
        with pytest.raises(ParamError, match=words):
            parse_probe(bad)


@pytest.mark.parametrize("policy, kept", [("v6.16", C.MIGRATE_MOVABLE), ("v6.17", C.MIGRATE_UNMOVABLE)])
def test_undoing_an_isolation_restores_the_pageblock_type_from_6_17(policy, kept):
    """1025 unmovable pages: the first takes pfn 0 and claims the order-10 buddy 0 (pageblocks 0
    and 1 become UNMOVABLE), the 1025th claims the next one and takes pfn 1024 (block 2). The
    first 1024 are freed: blocks 0 and 1 are UNMOVABLE and free. Undoing an isolation gives a
    block the caller's type (MOVABLE) before 6.17, and its own type back from 6.17, where
    MIGRATE_ISOLATE is a pageblock bit of its own: after a successful alloc_contig_range() of
    block 1 (its pages freed again), and after a failed one over blocks 0 and 2 (block 0
    isolated, then block 2's unmovable page refuses and block 0's isolation is undone)."""
    PB = 1 << 9
    node = _node(nr_pages=8 * PB, policy=policy)
    z = node[0]
    pfns = [alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, 0) for _ in range(1025)]
    assert pfns == list(range(1025))
    for p in pfns[:1024]:
        free_pages(node, p)
    assert list(z.pb_mt[:3]) == [C.MIGRATE_UNMOVABLE] * 3
    assert alloc_contig_range(node, 0, PB, 2 * PB, C.MIGRATE_MOVABLE) == CONTIG_OK
    assert z.pb_mt[1] == kept and z.stat[C.NR_ISOLATE_PAGEBLOCK] == 0
    for p in range(PB, 2 * PB):
        free_pages(node, p)
    assert z.pb_mt[1] == kept
    check_zone(node)
    assert alloc_contig_range(node, 0, 0, 3 * PB, C.MIGRATE_MOVABLE) == FAIL_UNMOVABLE_IN_RANGE
    assert z.pb_mt[0] == kept and z.pb_mt[2] == C.MIGRATE_UNMOVABLE
    assert z.stat[C.NR_ISOLATE_PAGEBLOCK] == 0
    check_zone(node)


@pytest.mark.parametrize("pageblock_order", [8, 10])
def test_thp_faults_are_pmd_order_whatever_the_pageblock_order(pageblock_order):
    """A THP is HPAGE_PMD_ORDER (9 on x86-64): with pageblock_order 8 or 10 the thp workload's
    huge allocations are still order 9 (the small-order mix stops at order 3)."""
    nodes = []
    run({"workload": "thp", "memory": "256M", "ops": 20000, "seed": 1, "max_order": 11,
         "pageblock_order": pageblock_order}, node_out=nodes)
    z = nodes[0][0]
    heads = np.flatnonzero(z.page_flags & C.PG_HEAD)
    orders = np.asarray(z.page_order[heads], dtype=np.int64)
    assert (orders == 9).sum() > 0
    assert set(orders.tolist()) <= {0, 1, 2, 3, 9}


# max_order above the memory block's order: the #error of include/linux/mmzone.h keeps a buddy
# inside a section on every release; these are what the releases' code would do without it.

def _straddling(policy, maxorder):
    """64 MiB, max_order 12 (16 MiB buddies), 4 MiB memory blocks (order 10), booted free: every
    block lies inside a free 16 MiB buddy."""
    node = _node(nr_pages=1 << 14, max_order=12, maxorder=maxorder, policy=policy)
    z = node[0]
    assert int(z.page_order[0]) == 12 and z.page_flags[0] & C.PG_BUDDY
    return node, z


@pytest.mark.parametrize("policy", ["v5.4", "v6.10"])
def test_before_5_19_offlining_takes_a_straddling_buddy_whole_and_loses_the_rest(policy):
    """Isolation does not split the buddy: the first block offlines, and
    __offline_isolated_pages() takes the whole 16 MiB buddy off the free lists; the 12 MiB beyond
    the block are lost (not holes). The next block holds lost pages: test_pages_isolated() never
    passes and offline_pages() would retry until a signal."""
    from kernels.page_isolation import FAIL_OFFLINE_HANGS, PAGE_MT_LOST
    node, z = _straddling(policy, True)
    block = 1 << 10
    free_before = int(z.stat[C.NR_FREE_PAGES])
    assert offline_pages(node, 0, block) == CONTIG_OK
    check_zone(node)
    assert int(z.stat[C.HAZARD_OFFLINE_LOST]) == 3 * block
    assert (z.page_mt[block:4 * block] == PAGE_MT_LOST).all() and (z.page_mt[:block] != PAGE_MT_LOST).all()
    assert int(z.stat[C.NR_FREE_PAGES]) == free_before - 4 * block
    assert offline_pages(node, block, block) == FAIL_OFFLINE_HANGS
    online_pages(node, 0, block)
    check_zone(node)
    if policy == "v5.4":
        # get_order(pages left): one chunk, the block; the lost pages stay lost
        assert int(z.stat[C.HAZARD_ONLINE_BEYOND]) == 0
        assert int(z.stat[C.NR_FREE_PAGES]) == free_before - 3 * block
        assert offline_pages(node, block, block) == FAIL_OFFLINE_HANGS
    else:
        # __ffs(0): a 16 MiB chunk, which gives the lost 12 MiB back; the buddy forms again,
        # and the next block starts on one of its tails
        assert int(z.stat[C.HAZARD_ONLINE_BEYOND]) == 3 * block
        assert int(z.stat[C.NR_FREE_PAGES]) == free_before
        assert int(z.page_order[0]) == 12 and z.page_flags[0] & C.PG_BUDDY
        assert offline_pages(node, block, block) == FAIL_OFFLINE_HANGS
    check_zone(node)


def test_from_5_19_isolation_splits_the_buddy_and_onlining_frees_beyond_the_block():
    """Pageblock isolation splits the straddling buddy: every block offlines and nothing is
    lost. Onlining frees chunks of min(max_order, __ffs(pfn)) with no clamp: the block at 0
    frees 16 MiB (12 MiB of other blocks'), the one at 8 MiB 8 MiB (4 MiB beyond), those at 4 and
    12 MiB only themselves. The model frees the block only and counts the rest."""
    node, z = _straddling("v6.10", False)
    block = 1 << 10
    free_before = int(z.stat[C.NR_FREE_PAGES])
    beyond = []
    for start in range(0, 1 << 14, block):
        assert offline_pages(node, start, block) == CONTIG_OK
        assert int(z.stat[C.HAZARD_OFFLINE_LOST]) == 0
        before = int(z.stat[C.HAZARD_ONLINE_BEYOND])
        online_pages(node, start, block)
        beyond.append(int(z.stat[C.HAZARD_ONLINE_BEYOND]) - before)
        check_zone(node)
    assert beyond[:4] == [3 * block, 0, block, 0]
    assert beyond == beyond[:4] * 4
    assert int(z.stat[C.NR_FREE_PAGES]) == free_before


def test_a_block_of_the_max_order_or_larger_has_no_hazard():
    """Where the kernel builds (a block at least the largest buddy) neither hazard shows."""
    node = _node(nr_pages=1 << 14, max_order=10, maxorder=True, policy="v6.10")
    z = node[0]
    for start in range(0, 1 << 14, 1 << 10):
        assert offline_pages(node, start, 1 << 10) == CONTIG_OK
        online_pages(node, start, 1 << 10)
    assert int(z.stat[C.HAZARD_OFFLINE_LOST]) == 0 and int(z.stat[C.HAZARD_ONLINE_BEYOND]) == 0
    check_zone(node)
