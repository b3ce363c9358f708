"""The slow path of a costly request (__alloc_pages_slowpath() of 6.12): direct compaction before
direct reclaim, and the hugetlb pool that stops growing at its first failure."""

import numpy as np
import pytest

from farm.cell.probes import run_probes
from kernels import compaction as K
from kernels import constants as C
from kernels.check import check_zone
from kernels.model import Model

pytestmark = pytest.mark.kernels


def _fragmented_two_cpus():
    """16384 pages, max_order 10, pageblock_order 9, pcp lists on two CPUs: every other page
    allocated movable (no free order-9 block), then 8 of the allocated pages freed on CPU 1,
    where they stay on its pcp lists."""
    m = Model(1 << 14, 10, 9, policy="v6.10", pcp=True, nr_cpus=2, min_free_kbytes=64)
    pages = [m.alloc(0, C.MIGRATE_MOVABLE) for _ in range((1 << 14) - 256)]
    for i, p in enumerate(pages):
        if i % 2:
            m.free(p)
    m.drain()
    for p in pages[0:16:2]:
        m.free(p, cpu=1)
    return m


def _cpu_counts(m):
    out = []
    for c in range(m.nr_cpus):
        m._on(c)
        out.append(int(m.zone.zp[C.ZP_PCP_COUNT]))
    m._on(0)
    return out


def test_a_costly_request_compacts_before_it_reclaims():
    """No order-9 block is free, compaction is ready (enough free pages), and async compaction
    can make the block: the kernel compacts first and never gets to direct reclaim, whose
    "progress" (compaction_ready()) would drain every CPU's lists. CPU 1's pages stay where they
    are; only CPU 0's (the compaction's own CPU, check_drain) may be drained."""
    m = _fragmented_two_cpus()
    assert _cpu_counts(m)[1] == 8
    z = m.zone
    before = z.stat.copy()
    cc = np.zeros(C.CC_SIZE, dtype=np.int64)
    pfn = K.alloc_pages_gfp(m.node, cc, 9, C.MIGRATE_MOVABLE, C.PG_CONTIG, K.GFP_RETRY)
    d = z.stat - before
    assert pfn >= 0
    assert int(d[C.COMPACT_STALL]) == 1 and int(d[C.COMPACT_SUCCESS]) == 1
    assert int(d[C.PGSTEAL_DIRECT]) == 0
    assert _cpu_counts(m)[1] == 8
    check_zone(m.node)


def test_the_hugetlb_pool_stops_at_its_first_failure():
    """set_max_huge_pages() ends the pool's growth at the first allocation that fails (one node:
    alloc_pool_huge_folio() tries it once): one failed allocation, however many were asked."""
    m = Model(1 << 13, 10, 9, policy="v6.10", min_free_kbytes=64)
    z = m.zone
    before = int(z.stat[C.ALLOC_FAIL])
    out = run_probes(m.node, ["hugepages:order=9,count=64"], {"max_order": 10, "pageblock_order": 9},
                     np.zeros(C.CC_SIZE, dtype=np.int64), np.zeros(1, np.int64))
    assert 0 < out[0]["obtained"] < 16
    assert int(z.stat[C.ALLOC_FAIL]) - before == 1
    check_zone(m.node)
