"""Zones of a node: lowmem_reserve, watermarks split over the lowmem zones, the zonelist and
ALLOC_NOFRAGMENT (MODEL.md, Zones), on the numba model and on the reference's RefNode, with
expected values worked out here from the kernel's formulas."""

from math import isqrt

import pytest

from kernels import constants as C
from kernels.model import Model
from reference import POLICIES, RefNode

pytestmark = pytest.mark.kernels

U, M = C.MIGRATE_UNMOVABLE, C.MIGRATE_MOVABLE
# a small node: max_order 5 (32 pages), pageblock_order 4 (16 pages)
MO, PB = 5, 4
DMA_END, DMA32_END, NR = 256, 1024, 2048
# the policies that group by mobility (nomobility has no fallback between types)
GROUPING = [p for p in POLICIES if p != "nomobility"]


@pytest.fixture(params=["model", "reference"])
def node_cls(request):
    return Model if request.param == "model" else RefNode


def _node(cls, policy, nr=NR, dma32_end=DMA32_END, **kw):
    return cls(nr, MO, PB, policy=policy, min_free_kbytes=kw.pop("min_free_kbytes", 0),
               dma_end=DMA_END, dma32_end=dma32_end, **kw)


def test_lowmem_reserve_and_watermarks_of_four_zones(node_cls):
    movable = 512
    n = node_cls(4096, MO, PB, policy="v6.15", dma_end=DMA_END, dma32_end=DMA32_END,
                 movable_pages=movable)
    managed = {C.ZONE_DMA: 256, C.ZONE_DMA32: 768, C.ZONE_NORMAL: 4096 - 1024 - movable,
               C.ZONE_MOVABLE: movable}
    assert [n.zone_idx(i) for i in range(n.nr_zones)] == [0, 1, 2, 3]
    # setup_per_zone_lowmem_reserve(): zone i keeps (managed of zones i+1..j) / ratio[i] from j
    assert n.lowmem_reserve(0) == [0, 768 // 256, (768 + 2560) // 256, (768 + 2560 + 512) // 256]
    assert n.lowmem_reserve(1) == [0, 0, 2560 // 256, (2560 + 512) // 256]
    assert n.lowmem_reserve(2) == [0, 0, 0, 512 // 32]
    assert n.lowmem_reserve(3) == [0, 0, 0, 0]
    # calculate_min_free_kbytes() over the lowmem zones, then each zone's share
    lowmem = 256 + 768 + 2560
    mfk = min(max(isqrt(lowmem * 4 * 16), 128), 262144)
    pages_min = mfk >> 2
    for zi, idx in enumerate((C.ZONE_DMA, C.ZONE_DMA32, C.ZONE_NORMAL, C.ZONE_MOVABLE)):
        share = pages_min * managed[idx] // lowmem
        wmin = min(max(managed[idx] // 1024, 32), 128) if idx == C.ZONE_MOVABLE else share
        delta = max(share // 4, managed[idx] * 10 // 10000)
        assert n.watermarks(zi) == (wmin, wmin + delta, wmin + 2 * delta), C.ZONE_NAMES[idx]


def _alloc_until_full(n, mt):
    """Base pages of type mt until an allocation fails: their pfns."""
    got = []
    while True:
        pfn = n.alloc(0, mt)
        if pfn < 0:
            return got
        got.append(pfn)


def _fill_then_fragment(n, zone_start, zone_end):
    """Allocate movable base pages until the node is full, then free every second page of the
    first pageblock of [zone_start, zone_end): the only free pages there are order-0 fragments
    of a Movable pageblock. Returns that pageblock's first pfn."""
    live = _alloc_until_full(n, M)
    block = next(p for p in sorted(live) if zone_start <= p and p % (1 << PB) == 0)
    assert block + (1 << PB) <= zone_end
    for pfn in range(block, block + (1 << PB), 2):
        n.free(pfn)
    return block, live


@pytest.mark.parametrize("policy", GROUPING)
def test_nofragment_prefers_a_whole_pageblock_in_dma32(node_cls, policy):
    """Normal holds only fragments of a Movable pageblock; DMA32 still has a free pageblock. An
    unmovable base page under ALLOC_NOFRAGMENT takes DMA32's pageblock, not Normal's fragment."""
    n = _node(node_cls, policy)
    # fill Normal: movable base pages come from the preferred zone until it reaches its low
    # watermark; the first that comes from DMA32 is given back
    while True:
        pfn = n.alloc(0, M)
        if pfn < DMA32_END:
            n.free(pfn)
            break
    for pfn in range(DMA32_END, DMA32_END + (1 << PB), 2):
        n.free(pfn)
    types_before = n.pageblock_types()
    pfn = n.alloc(0, U)
    assert DMA_END <= pfn < DMA32_END
    # the fragmented Normal pageblock keeps its type; a DMA32 pageblock became Unmovable
    after = n.pageblock_types()
    assert after[DMA32_END >> PB] == M
    assert after[pfn >> PB] == U and types_before[pfn >> PB] == M


@pytest.mark.parametrize("policy", GROUPING)
def test_nofragment_retries_without_the_flag(node_cls, policy):
    """No zone has a free pageblock: the zonelist is walked again without ALLOC_NOFRAGMENT and the
    request falls back into Normal's fragment."""
    n = _node(node_cls, policy)
    block, _ = _fill_then_fragment(n, DMA32_END, NR)
    pfn = n.alloc(0, U)
    assert block <= pfn < block + (1 << PB)


@pytest.mark.parametrize("policy", GROUPING)
def test_no_nofragment_without_zone_normal(node_cls, policy):
    """DMA and DMA32 only (an x86-64 machine of up to 4 GiB): the preferred zone is DMA32, so no
    ALLOC_NOFRAGMENT: the fragment in DMA32 is taken although DMA has free pageblocks."""
    n = _node(node_cls, policy, nr=DMA32_END)
    assert [n.zone_idx(i) for i in range(n.nr_zones)] == [C.ZONE_DMA, C.ZONE_DMA32]
    dma32 = [n.alloc(0, M) for _ in range(DMA32_END - DMA_END)]
    assert min(dma32) >= DMA_END
    for pfn in range(DMA_END, DMA_END + (1 << PB), 2):
        n.free(pfn)
    pfn = n.alloc(0, U)
    assert DMA_END <= pfn < DMA_END + (1 << PB)


def test_lowmem_reserve_keeps_dma_from_normal_requests(node_cls):
    """With Normal and DMA32 full, a GFP_KERNEL request may use DMA only while DMA's free pages
    stay above min + lowmem_reserve[ZONE_NORMAL] (the default ratios)."""
    n = node_cls(8192, MO, PB, policy="v6.15", min_free_kbytes=0, dma_end=DMA_END,
                 dma32_end=DMA32_END)
    reserve = n.lowmem_reserve(0)[C.ZONE_NORMAL]
    assert reserve == (768 + 8192 - 1024) // 256
    got = _alloc_until_full(n, U)
    in_dma = sum(1 for p in got if p < DMA_END)
    # __zone_watermark_ok(): fails once free <= min (0) + reserve
    assert in_dma == 256 - reserve
    assert sum(c << o for o, c in enumerate(n.buddyinfo(0))) == reserve


def test_probes_and_metrics_of_an_x86_64_node():
    """A 64 MiB x86_64 node is ZONE_DMA (16 MiB) and ZONE_DMA32: the contig probe's ranges lie in
    ZONE_DMA32, the zone GFP_KERNEL prefers (none fails for straddling two zones), and the
    result gives each zone's buddyinfo beside their sum."""
    from farm.cell.simulate import run
    res = run({"memory": "64M", "zones": "x86_64", "workload": "smallpages", "ops": 20000,
               "occupancy": 0.3, "probe": ["contig:size=2M,attempts=16"], "check_every": 5000})
    assert sorted(res["zones"]) == ["DMA", "DMA32"]
    assert res["buddyinfo"] == [a + b for a, b in zip(res["zones"]["DMA"]["buddyinfo"],
                                                      res["zones"]["DMA32"]["buddyinfo"])]
    probe = res["probes"][0]
    assert probe["asked"] == 16
    assert "not_one_zone" not in probe["failure_reasons"]
    assert probe["obtained"] == 16        # smallpages frees everything before the probes


def test_khugepaged_raises_min_free_kbytes(node_cls):
    """set_recommended_min_free_kbytes(): with THP enabled, 2 + 3 * 3 pageblocks per zone up to
    ZONE_NORMAL, at most a twentieth of managed less the boot-time high watermark. One 1 GiB
    Normal zone at pageblock_order 9: calculate_min_free_kbytes() gives sqrt(1 GiB in KiB * 16) =
    4096 KiB (min 1024 pages, high 1024 + 2 * max(256, 262) = 1548); recommended 11 * 512 = 5632
    pages (below (262144 - 1548) / 20 = 13029), so min is 5632 and the gap max(5632 / 4, 262)."""
    plain = node_cls(1 << 18, 10, 9, policy="v6.15")
    assert plain.watermarks(0) == (1024, 1024 + 262, 1024 + 2 * 262)
    thp = node_cls(1 << 18, 10, 9, policy="v6.15", thp_enabled=True)
    assert thp.watermarks(0) == (5632, 5632 + 1408, 5632 + 2 * 1408)
    # three zones triple the recommendation, which the twentieth then caps: DMA 256, DMA32 768
    # and Normal 3072 pages of pageblock_order 4 (16 pages): 3 * 11 * 16 = 528 pages, but the
    # twentieth of 4096 less the boot high watermarks is smaller
    n = node_cls(4096, MO, PB, policy="v6.15", dma_end=DMA_END, dma32_end=DMA32_END, thp_enabled=True)
    boot = node_cls(4096, MO, PB, policy="v6.15", dma_end=DMA_END, dma32_end=DMA32_END)
    free_buffer = sum(m - boot.watermarks(zi)[2] for zi, m in enumerate((256, 768, 3072)))
    calc_kb = isqrt(4096 * 4 * 16)                       # 512 KiB: min 128 pages before the raise
    pages_min = max(calc_kb, min(528, free_buffer // 20) * 4) >> 2
    assert pages_min > calc_kb >> 2
    assert [n.watermarks(zi)[0] for zi in range(3)] == [pages_min * m // 4096 for m in (256, 768, 3072)]


@pytest.mark.parametrize("name", ["k6.12-fragmenter-512m", "k6.12-pagecache-512m",
                                  "kmpo12-fragmenter-512m", "k6.12-thp-2560m",
                                  "k6.12-fragmenter-512m-smp2"])
def test_watermarks_of_real_kernels(name):
    """The watermarks 6.12 set on each capture (zoneinfo.before min, low, high of every zone),
    from the zones' managed pages: calculate_min_free_kbytes(), then khugepaged's raise. Managed
    pages move by a few pages after the kernel computed them (freed init memory), so each mark
    may be 1 off."""
    from pathlib import Path

    from farm.real.captures import read_capture
    from kernels.zone import min_free_kbytes_for, recommended_min_free_kbytes, setup_per_zone_wmarks
    cap = read_capture(Path(__file__).resolve().parent / "data" / name)
    zi = cap["zoneinfo"]["before"]
    managed = {C.ZONE_NAMES.index(k): v["managed"] for k, v in zi.items() if v.get("managed")}
    mfk = min_free_kbytes_for(sum(m for i, m in managed.items() if i != C.ZONE_MOVABLE))
    mfk = max(mfk, recommended_min_free_kbytes(managed, 9, setup_per_zone_wmarks(managed, mfk)))
    got = setup_per_zone_wmarks(managed, mfk)
    for idx, (wmin, low, high) in got.items():
        real = zi[C.ZONE_NAMES[idx]]
        assert abs(wmin - real["min"]) <= 1 and abs(low - real["low"]) <= 1 and abs(high - real["high"]) <= 1
    # without khugepaged's raise the marks are far below the kernel's
    plain = setup_per_zone_wmarks(managed, min_free_kbytes_for(sum(managed.values())))
    assert plain[C.ZONE_DMA32][0] < zi["DMA32"]["min"] / 2
