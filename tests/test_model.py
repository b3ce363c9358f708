"""The numba model on its own: exact step arithmetic, boot state, determinism, invariants."""

import numpy as np
import pytest

from farm.cell.simulate import run
from kernels import constants as C
from kernels.check import ZoneCorrupt, check_zone
from kernels.model import Model

pytestmark = pytest.mark.kernels

POLICIES = list(C.POLICIES)


@pytest.mark.parametrize("max_order", [10, 13, 18])
def test_first_order0_allocation_costs_max_order_split_steps(max_order):
    # Fresh memory holds only order-max_order blocks: one order-0 request splits max_order times
    # (10 at 10, 18 at 18: the thread's "8 additional steps"), and freeing it merges as often.
    m = Model(1 << max_order << 1, max_order, 9)
    pfn = m.alloc(0, C.MIGRATE_MOVABLE)
    assert pfn == 0
    assert m.counters()["split_steps"] == max_order
    assert m.counters()["orders_scanned"] == max_order + 1
    # every upper half went to the head of its list: one free block at each order below max_order
    assert m.buddyinfo() == [1] * max_order + [1]
    m.free(pfn)
    assert m.counters()["merge_steps"] == max_order
    assert m.buddyinfo() == [0] * max_order + [2]
    m.check()


def test_consuming_a_whole_block_costs_one_split_per_page_less_one():
    # Published result #2: using up a 2^k block with order-0 requests costs 2^k - 1 splits.
    k = 6
    m = Model(1 << k, k, 3, min_free_kbytes=0)
    pfns = [m.alloc(0, C.MIGRATE_MOVABLE) for _ in range(1 << k)]
    assert sorted(pfns) == list(range(1 << k))
    assert m.counters()["split_steps"] == (1 << k) - 1
    assert m.alloc(0, C.MIGRATE_MOVABLE) == -1
    assert m.counters()["alloc_fail"] == 1


def test_watermark_min_stops_order0_allocations():
    # a 64-page zone: min_free_kbytes is clamped to 128 KiB = 32 pages; an order-0 request needs
    # more than `min` free pages, so exactly 64 - 32 allocations succeed
    m = Model(64, 6, 3)
    wmin, wlow, _ = m.watermarks()
    assert (wmin, wlow) == (32, 40)
    got = [m.alloc(0, C.MIGRATE_MOVABLE) for _ in range(64)]
    assert sum(p >= 0 for p in got) == 64 - wmin
    assert m.counters()["alloc_fail"] == wmin


@pytest.mark.parametrize("policy", POLICIES)
def test_boot_state_frees_largest_aligned_chunks(policy):
    # 4 MiB + 2 MiB + 12 KiB of memory with a hole of 8 pages at pfn 1030..1038
    nr = 1024 + 512 + 3
    m = Model(nr, 10, 9, policy=policy, holes=[(1030, 1038)])
    m.check()
    bi = m.buddyinfo()
    # [0,1024): order 10; [1024,1030): 1024 o2, 1028 o1; [1038,1539): 1038 o1, 1040 o4, 1056 o5,
    # 1088 o6, 1152 o7, 1280 o8, 1536 o1, 1538 o0 (hole-free run ends at nr)
    expect = [0] * 11
    for o in (10, 2, 1, 1, 4, 5, 6, 7, 8, 1, 0):
        expect[o] += 1
    assert bi == expect
    assert m.counters()["nr_free_pages"] == nr - 8
    assert all(c == 0 for k, c in m.counters().items() if k != "nr_free_pages")


def test_boot_list_order_v5_4_head_insertion_vs_fpi_to_tail():
    m_old = Model(4 << 10, 10, 9, policy="v5.4")
    m_new = Model(4 << 10, 10, 9, policy="v6.1")
    assert m_old.free_lists()[(10, C.MIGRATE_MOVABLE)] == [3072, 2048, 1024, 0]
    assert m_new.free_lists()[(10, C.MIGRATE_MOVABLE)] == [0, 1024, 2048, 3072]
    assert m_old.alloc(0, C.MIGRATE_MOVABLE) == 3072
    assert m_new.alloc(0, C.MIGRATE_MOVABLE) == 0


def test_watermarks_and_pcp_sizes_of_a_4g_zone():
    m = Model(1 << 20, 10, 9)
    # min_free_kbytes = sqrt(4 GiB in KiB * 16) = 8192 KiB = 2048 pages; delta = max(512, 1048)
    assert m.watermarks() == (2048, 2048 + 1048, 2048 + 2 * 1048)
    assert m.pcp_params() == (63, 3096)


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("pcp", [False, True])
def test_smallpages_frees_everything_back_to_the_boot_buddyinfo(policy, pcp):
    base = {"memory": "64M", "policy": policy, "pcp": pcp, "ops": 0}
    initial = run(base)["buddyinfo"]
    res = run({**base, "ops": 30000, "order_mix": "0=6,1=2,2=1,3=1", "migratetype": "movable",
               "check_every": 997})
    assert res["counters"]["alloc_ops"] > 10000
    assert res["counters"]["split_steps"] > 0 and res["counters"]["merge_steps"] > 0
    assert res["buddyinfo"] == initial
    assert res["nr_free_pages"] == 16384


@pytest.mark.parametrize("policy", POLICIES)
def test_unmovable_churn_keeps_invariants(policy):
    res = run({"memory": "32M", "policy": policy, "ops": 20000, "occupancy": 1.0,
               "migratetype": "unmovable", "order_mix": "0=4,3=1", "check_every": 101, "pcp": True})
    # memory pressure was reached: the watermarks refused some allocations
    assert res["counters"]["alloc_fail"] > 0


def test_same_seed_same_counters_other_seed_differs():
    p = {"memory": "256M", "ops": 50000, "order_mix": "0=3,1=1,3=1", "migratetype": "unmovable",
         "pcp": True}
    a = run({**p, "seed": 7})
    b = run({**p, "seed": 7})
    c = run({**p, "seed": 8})
    for key in ("counters", "buddyinfo", "pagetypeinfo", "unusable_index", "extfrag_index"):
        assert a[key] == b[key]
    assert a["counters"] != c["counters"]


def test_larger_max_order_costs_more_splits_per_allocation_on_fresh_memory():
    # the worst case grows with max_order, the amortised cost of smallpages barely does
    r10 = run({"memory": "1G", "max_order": 10, "ops": 50000, "seed": 3})["counters"]
    r18 = run({"memory": "1G", "max_order": 18, "ops": 50000, "seed": 3})["counters"]
    assert r18["split_steps"] > r10["split_steps"]
    assert r18["split_steps"] - r10["split_steps"] < r10["alloc_ops"] // 100


def _corrupt(mutator):
    m = Model(1 << 12, 10, 9, policy="v6.15")
    pfn = m.alloc(0, C.MIGRATE_MOVABLE)
    m.check()
    mutator(m.zone, pfn)
    with pytest.raises(ZoneCorrupt):
        check_zone(m.zone)


def test_check_zone_catches_overlap():
    _corrupt(lambda z, pfn: z.page_flags.__setitem__(pfn + 1, C.PG_HEAD))


def test_check_zone_catches_nr_free_drift():
    _corrupt(lambda z, pfn: z.nr_free.__setitem__(3, z.nr_free[3] + 1))


def test_check_zone_catches_free_page_accounting():
    _corrupt(lambda z, pfn: z.stat.__setitem__(C.NR_FREE_PAGES, z.stat[C.NR_FREE_PAGES] - 1))


def test_check_zone_catches_unmerged_buddies():
    def split_top(z, pfn):
        # turn the free order-10 block at 1024 into two unmerged order-9 halves
        from kernels.page_alloc import _add_to_free_list, _del_page_from_free_list
        _del_page_from_free_list(z, 1024, 10, C.MIGRATE_MOVABLE)
        _add_to_free_list(z, 1024, 9, C.MIGRATE_MOVABLE, False)
        _add_to_free_list(z, 1536, 9, C.MIGRATE_MOVABLE, False)
    _corrupt(split_top)


def test_check_zone_catches_hygiene_violation():
    def retype(z, pfn):
        z.pb_mt[3] = C.MIGRATE_UNMOVABLE
    _corrupt(retype)


def test_check_zone_catches_broken_links():
    def unlink(z, pfn):
        head = z.list_head[1 * C.MIGRATE_TYPES + C.MIGRATE_MOVABLE]
        z.prev[head] = 5
    _corrupt(unlink)


def test_state_is_compact():
    from kernels.zone import state_bytes_per_page
    m = Model(1 << 18, 10, 9)
    assert state_bytes_per_page(m.zone) < 12
    assert isinstance(m.zone.page_flags, np.ndarray)
