"""Hugetlb pages in a range: alloc_contig_range() replaces a free pool page (5.13+), offlining
dissolves it (dissolve_free_hugetlb_folios()), and the pool is freed wherever its pages went."""

import numpy as np
import pytest

from farm.cell.params import ParamError, parse_probe
from farm.cell.probes import free_hugetlb_pool, run_probes
from kernels import constants as C
from kernels.check import check_zone
from kernels.compaction import GFP_RETRY, alloc_pages_gfp
from kernels.page_alloc import boot_node
from kernels.page_isolation import (
    CONTIG_OK, FAIL_BUSY, FAIL_NO_TARGET, alloc_contig_range, has_unmovable_pages, is_hugetlb,
    offline_pages, online_pages,
)
from kernels.zone import make_node

pytestmark = pytest.mark.kernels


def _node(policy, nr_pages=1 << 14):
    node = make_node(nr_pages, 10, 9, policy=policy, min_free_kbytes=64)
    boot_node(node)
    return node


def _hugetlb(node):
    z = node[0]
    return [int(p) for p in np.flatnonzero(z.page_flags & C.PG_HEAD) if is_hugetlb(z, int(p))]


def _grow_pool(node, count):
    cc = np.zeros(C.CC_SIZE, dtype=np.int64)
    return [alloc_pages_gfp(node, cc, 9, C.MIGRATE_MOVABLE, C.PG_CONTIG, GFP_RETRY) for _ in range(count)]


@pytest.mark.parametrize("policy", ["v6.1", "v6.10", "v6.16", "v6.17"])
def test_alloc_contig_range_replaces_a_free_hugetlb_page(policy):
    node = _node(policy)
    z = node[0]
    h, = _grow_pool(node, 1)
    assert h >= 0 and _hugetlb(node) == [h]
    assert has_unmovable_pages(z, h, h + 512, C.MIGRATE_MOVABLE) == -1
    free_before = int(z.stat[C.NR_FREE_PAGES])
    assert alloc_contig_range(node, 0, h, h + 512, C.MIGRATE_MOVABLE) == CONTIG_OK
    check_zone(node)
    # the range is held by the caller, the pool still has one page, outside the range
    assert all(z.page_flags[q] & C.PG_CONTIG and z.page_order[q] == 0 for q in range(h, h + 512))
    pool = _hugetlb(node)
    assert len(pool) == 1 and not h <= pool[0] < h + 512
    assert int(z.stat[C.NR_HUGETLB_REPLACED]) == 1
    assert int(z.stat[C.NR_FREE_PAGES]) == free_before - 512


def test_before_5_13_a_hugetlb_page_keeps_the_range_busy():
    node = _node("v5.4")
    z = node[0]
    h, = _grow_pool(node, 1)
    free_before = int(z.stat[C.NR_FREE_PAGES])
    types = z.pb_mt.copy()
    assert alloc_contig_range(node, 0, h, h + 512, C.MIGRATE_MOVABLE) == FAIL_BUSY
    check_zone(node)
    assert _hugetlb(node) == [h] and int(z.stat[C.NR_FREE_PAGES]) == free_before
    assert (z.pb_mt == types).all()


def test_no_fresh_page_for_the_replacement_fails_with_enomem_and_keeps_the_pool():
    node = _node("v6.10")
    z = node[0]
    pool = []
    while True:
        got = _grow_pool(node, 1)[0]
        if got < 0:
            break
        pool.append(got)
    assert len(pool) >= 20
    h = pool[len(pool) // 2]
    types = z.pb_mt.copy()
    assert alloc_contig_range(node, 0, h, h + 512, C.MIGRATE_MOVABLE) == FAIL_NO_TARGET
    check_zone(node)
    assert sorted(_hugetlb(node)) == sorted(pool)
    assert (z.pb_mt == types).all()
    assert int(z.stat[C.NR_HUGETLB_REPLACED]) == 0


@pytest.mark.parametrize("policy", ["v5.4", "v6.1", "v6.16"])
def test_offlining_dissolves_free_hugetlb_pages_and_the_pool_shrinks(policy):
    node = _node(policy)
    z = node[0]
    pool = _grow_pool(node, 3)
    block = pool[1] & ~((1 << 11) - 1)          # its 8 MiB memory block
    inside = [p for p in pool if block <= p < block + (1 << 11)]
    assert offline_pages(node, block, 1 << 11) == CONTIG_OK
    check_zone(node)
    assert int(z.stat[C.NR_HUGETLB_DISSOLVED]) == len(inside) >= 1
    assert sorted(_hugetlb(node)) == sorted(set(pool) - set(inside))
    online_pages(node, block, 1 << 11)
    check_zone(node)


def test_the_pool_is_freed_wherever_its_pages_went():
    node = _node("v6.10")
    z = node[0]
    free0 = int(z.stat[C.NR_FREE_PAGES])
    specs = ["hugepages:order=9,count=6", "contig:size=2M,attempts=32", "offline:block=8M"]
    cc = np.zeros(C.CC_SIZE, dtype=np.int64)
    out = run_probes(node, specs, {"max_order": 10, "pageblock_order": 9}, cc, np.zeros(1, np.int64))
    assert out[0]["obtained"] == 6
    # the contig probe moved pool pages out of its ranges, the offline probe dissolved some
    assert int(z.stat[C.NR_HUGETLB_REPLACED]) > 0 and int(z.stat[C.NR_HUGETLB_DISSOLVED]) > 0
    assert _hugetlb(node) == [] and free_hugetlb_pool(node) == 0
    check_zone(node)
    assert int(z.stat[C.NR_FREE_PAGES]) + int(z.stat[C.PCP_COUNT]) == free0


def test_a_hugepages_probe_needs_a_compound_order():
    with pytest.raises(ParamError, match="order must be at least 1"):
        parse_probe("hugepages:order=0,count=4")
