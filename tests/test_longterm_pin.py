"""Long-term pins are migrated out of CMA and ZONE_MOVABLE first (check_and_migrate_movable_pages())."""

import numpy as np
import pytest

from farm.cell.simulate import run
from kernels import constants as C
from kernels.check import check_zone
from kernels.page_alloc import alloc_pages, boot_node, free_pages, get_pageblock_migratetype, page_zone
from kernels.workloads import longterm_pin
from kernels.zone import make_node

pytestmark = pytest.mark.kernels


def _pinned(node, mt=C.MIGRATE_MOVABLE, order=0):
    return alloc_pages(node, order, mt, C.PG_PINNED)


@pytest.mark.parametrize("policy, moved", [("v5.4", False), ("v6.1", True), ("v6.16", True)])
def test_a_pin_in_zone_movable_moves_to_zone_normal_from_5_13(policy, moved):
    node = make_node(8192, 8, 6, policy, movable_pages=4096, min_free_kbytes=64)
    boot_node(node)
    pfn = _pinned(node, order=1)
    assert node[page_zone(node, pfn)].zp[C.ZP_ZONE_IDX] == C.ZONE_MOVABLE
    got = longterm_pin(node, pfn, 1)
    check_zone(node)
    z = node[page_zone(node, got)]
    if not moved:
        assert got == pfn and z.page_flags[pfn] & C.PG_PINNED
        return
    assert z.zp[C.ZP_ZONE_IDX] == C.ZONE_NORMAL
    # GFP_USER: an unmovable request; the page is still an anonymous (LRU) page, now pinned
    assert z.page_mt[got] == C.MIGRATE_UNMOVABLE and z.page_order[got] == 1
    assert all(z.page_flags[q] & (C.PG_LRU | C.PG_PINNED) == C.PG_LRU | C.PG_PINNED for q in (got, got + 1))
    src = node[page_zone(node, pfn)]
    assert not src.page_flags[pfn] & (C.PG_HEAD | C.PG_PINNED | C.PG_LRU)
    assert int(src.stat[C.PGMIGRATE_SUCCESS]) == 2


@pytest.mark.parametrize("policy", ["v5.4", "v6.10"])
def test_a_pin_in_a_cma_pageblock_moves_out_in_every_release(policy):
    node = make_node(8192, 8, 6, policy, cma_pages=4096, min_free_kbytes=64)
    boot_node(node)
    z = node[0]
    # 6.x balancing puts some in the area early; 5.4 only once the rest of the zone is used
    pfns = [_pinned(node) for _ in range(6000)]
    in_cma = [p for p in pfns if get_pageblock_migratetype(z, p) == C.MIGRATE_CMA]
    assert in_cma
    for p in [p for p in pfns if p not in set(in_cma)][:200]:     # room outside the area
        free_pages(node, p)
    got = [longterm_pin(node, p, 0) for p in in_cma[:50]]
    check_zone(node)
    assert all(get_pageblock_migratetype(z, g) != C.MIGRATE_CMA for g in got)
    assert all(z.page_flags[g] & C.PG_PINNED for g in got)


def test_no_target_the_pin_fails_and_the_page_stays_unpinned():
    node = make_node(8192, 8, 6, "v6.10", movable_pages=4096, min_free_kbytes=64)
    boot_node(node)
    while alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, 0) >= 0:     # ZONE_NORMAL full
        pass
    pfn = _pinned(node)
    assert pfn >= 0 and longterm_pin(node, pfn, 0) == pfn
    z = node[page_zone(node, pfn)]
    assert z.page_flags[pfn] & C.PG_LRU and not z.page_flags[pfn] & C.PG_PINNED
    check_zone(node)


@pytest.mark.parametrize("policy, none_left", [("v6.15", True), ("v5.4", False)])
def test_pinned_workload_pages_leave_zone_movable(policy, none_left):
    nodes: list = []
    run({"workload": "mixed", "memory": "256M", "movable_fraction": 0.5, "pinned_fraction": 0.2,
         "ops": 20000, "policy": policy}, node_out=nodes)
    node = nodes[0]
    movable = [z for z in node if z.zp[C.ZP_ZONE_IDX] == C.ZONE_MOVABLE][0]
    s, e = int(movable.zp[C.ZP_ZONE_START]), int(movable.zp[C.ZP_ZONE_END])
    pinned = int(np.count_nonzero(movable.page_flags[s:e] & C.PG_PINNED))
    assert (pinned == 0) == none_left
