"""The `scatterer` workload (kernels/workloads.py), the model's twin of farm/real/workloads/scatterer.c."""

import numpy as np
import pytest

from farm.cell.params import resolve
from farm.cell.simulate import run
from kernels import constants as C


@pytest.mark.kernels
def test_counts_follow_the_parameters_exactly():
    r = run({"workload": "scatterer", "memory": "16M", "fill": 0.5, "rounds": 300, "free_per_round": 3,
             "seed": 4, "check_every": 50})
    c = r["counters"]
    nr_fill = int(0.5 * 4096)
    assert c["alloc_fail"] == 0
    assert c["alloc_ops"] == nr_fill + 300 and c["scatterer_pipes"] == 300
    assert 300 <= c["scatterer_freed"] <= 900
    # every anonymous page is freed, by a round or at the end; the unmovable ones stay
    assert c["free_ops"] == nr_fill
    assert r["nr_free_pages"] + r["counters"].get("pcp_count", 0) <= 4096 - 300


def test_defaults():
    p = resolve({"workload": "scatterer"})
    assert (p["fill"], p["rounds"], p["free_per_round"]) == (0.9, 20000, 2)
    assert resolve({"workload": "scatterer", "fill": 0.43})["fill"] == 0.43
    assert resolve({"workload": "fragmenter"})["fill"] == 0.43


def unmovable_blocks(node) -> int:
    z = node[0]
    heads = np.flatnonzero((z.page_flags & C.PG_HEAD) != 0)
    unmov = heads[z.page_mt[heads] == C.MIGRATE_UNMOVABLE]
    return len(np.unique(unmov >> int(z.zp[C.ZP_PAGEBLOCK_ORDER])))


@pytest.mark.parametrize("switch", [{"watermark_boost_factor": 0}, {"kcompactd": False}])
def test_tight_memory_scatters_the_unmovable_pages_over_the_pageblocks(switch):
    """2000 unmovable pages fit in 4 pageblocks: with memory loose they get fresh pageblocks
    claimed whole; with it tight they fall into the holes the frees make in movable pageblocks,
    unless the fallbacks' watermark boosts get kcompactd to make free pageblocks (below)."""
    spread = {}
    for fill in (0.3, 0.9):
        nodes: list = []
        run({"workload": "scatterer", "memory": "64M", "fill": fill, "rounds": 2000, "seed": 1, **switch},
            node_out=nodes)
        spread[fill] = unmovable_blocks(nodes[0])
    assert spread[0.3] <= 5
    assert spread[0.9] >= 6 * spread[0.3]


def test_boosts_get_kcompactd_to_gather_the_unmovable_pages():
    """The kernel's defaults: a fallback into a movable pageblock boosts the watermark and wakes
    kswapd, which (with no page cache to reclaim) hands over to kcompactd for pageblock_order; the
    pageblocks it frees take the unmovable pages whole, as with memory loose."""
    nodes: list = []
    r = run({"workload": "scatterer", "memory": "64M", "fill": 0.9, "rounds": 2000, "seed": 1}, node_out=nodes)
    c = r["counters"]
    assert c["nr_watermark_boosts"] > 0 and c["pageoutrun"] > 0 and c["compact_daemon_wake"] > 0
    assert c["pgmigrate_success"] > 0 and c["pgsteal_kswapd"] == 0
    assert unmovable_blocks(nodes[0]) <= 6


def test_pages_that_compaction_moved_are_freed_where_they_went():
    """kcompactd migrates anonymous pages of the scatterer; the workload frees each page where
    it is now (owner slots), so the zone holds together after every round."""
    r = run({"workload": "scatterer", "memory": "64M", "fill": 0.9, "rounds": 2000, "seed": 1,
             "check_every": 1})
    assert r["counters"]["pgmigrate_success"] > 0
