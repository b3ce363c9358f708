"""Zone state: every field declared here, with its dtype, and built from resolved parameters.

The state is one NamedTuple of NumPy arrays handed to module-level jitted functions (no jitclass).
Only heads carry block information: a free block's head has PG_BUDDY, its order and its list's
migratetype; an allocated block's head has PG_HEAD, its order and the requested migratetype.
PG_LRU / PG_PINNED / PG_RESERVED are per page.
"""

from math import isqrt
from typing import NamedTuple

import numpy as np

from . import constants as C


class Zone(NamedTuple):
    zp: np.ndarray          # int64[ZP_SIZE]   parameters (constants.ZP_*)
    page_order: np.ndarray  # int8[N]          order of a free / allocated / pcp head, -1 elsewhere
    page_flags: np.ndarray  # uint8[N]         PG_* bits
    page_mt: np.ndarray     # uint8[N]         free head: its list; allocated head: requested type; pcp: recorded type
    next: np.ndarray        # int32[N]         intrusive list links (free lists and pcp lists), -1 = none
    prev: np.ndarray        # int32[N]
    pb_mt: np.ndarray       # uint8[nr_pageblocks]   pageblock migratetype
    list_head: np.ndarray   # int32[lists]     heads of every list of the zone: free_area[order].free_list[mt]
                            #                  at order*MIGRATE_TYPES+mt, then the pcp lists from
                            #                  zp[ZP_PCP_BASE], then compaction's isolated free pages by
                            #                  order from zp[ZP_CC_BASE], then by pageblock from
                            #                  zp[ZP_ISO_SAVED_BASE] its type before an isolation
                            #                  (not a list head) (one array: numba passes
                            #                  every field of the tuple, and fewer fields keep the
                            #                  hot calls inlined and cheap)
    list_tail: np.ndarray   # int32[lists]
    nr_free: np.ndarray     # int64[NR]        free_area[order].nr_free
    stat: np.ndarray        # int64[NR_STATS]  counters (constants.NR_FREE_PAGES ...) and zone state
    owner: np.ndarray       # int32[slots]     owner slot -> pfn of the block it holds (shared); an
                            #                  allocated head keeps its slot in next[] (-1: none),
                            #                  so migration can tell the owner where its block went


def policy_behaviour(policy: str) -> tuple[int, int, int, int]:
    """(fallback variant, merge rule, boot frees to tail, mobility disabled) for a policy name."""
    if policy == "v5.4":
        return C.FALLBACK_A, C.MERGE_PRE_5_19, 0, 0
    if policy == "v6.1":
        return C.FALLBACK_A, C.MERGE_5_19, 1, 0
    if policy == "v6.10":
        return C.FALLBACK_B, C.MERGE_HYGIENE, 1, 0
    if policy in ("v6.15", "v6.16", "v6.17"):
        return C.FALLBACK_D, C.MERGE_HYGIENE, 1, 0
    if policy == "nomobility":
        return C.FALLBACK_D, C.MERGE_HYGIENE, 1, 1
    raise ValueError(f"unknown policy {policy!r}")


def min_free_kbytes_for(managed_pages: int) -> int:
    """calculate_min_free_kbytes(): sqrt(lowmem_kbytes * 16), clamped to [128, 262144]."""
    lowmem_kbytes = managed_pages << (C.PAGE_SHIFT - 10)
    return min(max(isqrt(lowmem_kbytes * 16), 128), 262144)


def _rounddown_pow_of_two(n: int) -> int:
    return 1 << (n.bit_length() - 1)


def pcp_rules(policy: str) -> int:
    """The per-cpu list rules of the release a policy follows (MODEL.md, per-cpu lists)."""
    return {"v5.4": C.PCP_RULES_5_4, "v6.1": C.PCP_RULES_6_1, "v6.10": C.PCP_RULES_6_7,
            "v6.15": C.PCP_RULES_6_7}.get(policy, C.PCP_RULES_6_16)


def pcp_sizes(managed_pages: int, low_wmark: int, nr_cpus: int = 1,
              rules: int = C.PCP_RULES_6_1) -> tuple[int, int, int, int]:
    """zone_batchsize() and zone_highsize() (percpu_pagelist_high_fraction = 0):
    (batch, high, high_min, high_max). 5.4: high = 6 * batch. 6.1: high from the low watermark
    split over the CPUs, at least 4 * batch. 6.7+: that is high_min; high_max is managed / 8
    (MIN_PERCPU_PAGELIST_HIGH_FRACTION) split likewise; high starts at 0 and is clamped to
    high_min on first use."""
    b = min(managed_pages >> 10, (1 << 20) >> C.PAGE_SHIFT) // 4
    b = max(b, 1)
    batch = _rounddown_pow_of_two(b + b // 2) - 1
    batch = max(batch, 1)
    high_min, high_max = pcp_high_bounds(batch, managed_pages, low_wmark, nr_cpus, rules)
    return batch, high_min, high_min, high_max


def stat_threshold(managed_pages: int, nr_cpus: int) -> int:
    """calculate_normal_threshold() (mm/vmstat.c): how far a CPU's vm_stat_diff may drift before
    it is folded into the zone's counter, 2 * fls(cpus) * (1 + fls(managed in 128 MiB units)),
    at most 125."""
    mem = int(managed_pages) >> (27 - C.PAGE_SHIFT)
    return min(125, 2 * int(nr_cpus).bit_length() * (1 + mem.bit_length()))


def pcp_high_bounds(batch: int, managed_pages: int, low_wmark: int, nr_cpus: int,
                    rules: int) -> tuple[int, int]:
    """zone_highsize() for a batch: (high_min, high_max). 5.4: both 6 * batch; 6.1: both the low
    watermark split over the CPUs, at least 4 * batch; 6.7+: that, and managed / 8
    (MIN_PERCPU_PAGELIST_HIGH_FRACTION) split likewise, at least 4 * batch."""
    if rules == C.PCP_RULES_5_4:
        return 6 * batch, 6 * batch
    high_min = max(low_wmark // nr_cpus, batch << 2)
    if rules == C.PCP_RULES_6_1:
        return high_min, high_min
    return high_min, max(managed_pages // 8 // nr_cpus, batch << 2)


def make_node(nr_pages: int, max_order: int, pageblock_order: int, policy: str = "v6.15",
              holes=(), pcp: bool = False, min_free_kbytes: int | None = None,
              section_bits: int = 27, memory_block_bits: int | None = None,
              movable_pages: int = 0, owner_slots: int = 0, contig_maxorder: bool = False,
              cma_pages: int = 0, vmstat_interval_ops: int = 0, nr_cpus: int = 1,
              dma_end: int = 0, dma32_end: int = 0, thp_enabled: bool = False,
              watermark_boost_factor: int = 0, kswapd: bool = False, kcompactd: bool = False,
              compaction_proactiveness: int = 0, proactive_interval_ops: int = 0,
              pagecache_slots: int = 0) -> tuple:
    """Allocate the arrays of a node (no page free yet: see page_alloc.boot_node).

    The node's zones, lowest first, each present when its span is not empty: ZONE_DMA over
    [0, dma_end), ZONE_DMA32 over [dma_end, dma32_end), ZONE_NORMAL up to nr_pages -
    movable_pages and ZONE_MOVABLE over the rest (zone_spans()). With dma_end = dma32_end = 0
    the node is one ZONE_NORMAL (plus ZONE_MOVABLE). The zones share the pfn-indexed page arrays
    (the memmap) and the pageblock bitmap; each has its own free lists, counters, watermarks and
    pcp lists. With `thp_enabled` (and min_free_kbytes not given), min_free_kbytes is raised as
    khugepaged does when THP is enabled (recommended_min_free_kbytes()).

    Reclaim and background compaction are off unless asked (the kernel's defaults are
    watermark_boost_factor 15000, kswapd and kcompactd running, compaction_proactiveness 20):
    `pagecache_slots` owner slots after the `owner_slots` of a workload form the page cache's
    LRU ring; `proactive_interval_ops` allocator calls make one HPAGE_FRAG_CHECK_INTERVAL_MSEC
    of kcompactd's timer (0: no timer)."""
    fallback, merge, boot_to_tail, mobility_disabled = policy_behaviour(policy)
    nr_pageblocks = (nr_pages + (1 << pageblock_order) - 1) >> pageblock_order
    page_flags = np.zeros(nr_pages, dtype=np.uint8)
    for start, end in holes:
        page_flags[start:end] = C.PG_RESERVED
    initial_mt = C.MIGRATE_UNMOVABLE if mobility_disabled else C.MIGRATE_MOVABLE
    shared = dict(
        page_order=np.full(nr_pages, -1, dtype=np.int8),
        page_flags=page_flags,
        page_mt=np.zeros(nr_pages, dtype=np.uint8),
        next=np.full(nr_pages, -1, dtype=np.int32),
        prev=np.full(nr_pages, -1, dtype=np.int32),
        pb_mt=np.full(nr_pageblocks, initial_mt, dtype=np.uint8),
        owner=np.full(max(owner_slots + pagecache_slots, 1), -1, dtype=np.int32),
    )
    spans = zone_spans(nr_pages, movable_pages, dma_end, dma32_end)
    reserved = page_flags & C.PG_RESERVED
    managed = {idx: (e - s) - int(np.count_nonzero(reserved[s:e])) for idx, s, e in spans}
    # calculate_min_free_kbytes(): nr_free_buffer_pages(), the zones up to ZONE_NORMAL;
    # __setup_per_zone_wmarks(): the lowmem zones; 6.12 leaves ZONE_MOVABLE out of them and gives
    # it highmem's small min, 6.1 counts it as lowmem (both sources checked; v6.10+ policies
    # follow 6.12, v5.4 and v6.1 follow 6.1)
    buffer_pages = sum(m for idx, m in managed.items() if idx != C.ZONE_MOVABLE)
    movable_highmem = policy not in ("v5.4", "v6.1")
    reserves = lowmem_reserves(managed)
    kernel_zone = kernel_zone_span(spans)
    if min_free_kbytes is None:
        min_free_kbytes = min_free_kbytes_for(buffer_pages)
        if thp_enabled:
            min_free_kbytes = max(min_free_kbytes, recommended_min_free_kbytes(
                managed, pageblock_order, setup_per_zone_wmarks(managed, min_free_kbytes, movable_highmem)))
    wmarks = setup_per_zone_wmarks(managed, min_free_kbytes, movable_highmem)

    rules = pcp_rules(policy)
    if not 1 <= nr_cpus <= C.MAX_CPUS:
        raise ValueError(f"nr_cpus {nr_cpus} outside 1..{C.MAX_CPUS}")
    zones = []
    for idx, start, end in spans:
        zp = np.zeros(C.ZP_SIZE, dtype=np.int64)
        wmin, wlow, whigh = wmarks[idx]
        batch, high, high_min, high_max = pcp_sizes(managed[idx], wlow, nr_cpus, rules)
        zp[C.ZP_NR_PAGES] = nr_pages
        zp[C.ZP_ZONE_START] = start
        zp[C.ZP_ZONE_END] = end
        zp[C.ZP_ZONE_IDX] = idx
        zp[C.ZP_LOWMEM_RESERVE:C.ZP_LOWMEM_RESERVE + C.MAX_NR_ZONES] = reserves[idx]
        zp[C.ZP_NODE_DMA32] = int(C.ZONE_DMA32 in managed)
        zp[C.ZP_MAX_ORDER] = max_order
        zp[C.ZP_PAGEBLOCK_ORDER] = pageblock_order
        zp[C.ZP_POLICY] = C.POLICIES[policy]
        zp[C.ZP_FALLBACK] = fallback
        zp[C.ZP_MERGE] = merge
        zp[C.ZP_BOOT_TO_TAIL] = boot_to_tail
        zp[C.ZP_MOBILITY_DISABLED] = mobility_disabled
        zp[C.ZP_WMARK_MIN] = wmin
        zp[C.ZP_WMARK_LOW] = wlow
        zp[C.ZP_WMARK_HIGH] = whigh
        zp[C.ZP_PCP] = int(pcp)
        zp[C.ZP_PCP_BATCH] = batch
        zp[C.ZP_PCP_HIGH] = high
        zp[C.ZP_PCP_RULES] = rules
        zp[C.ZP_PCP_HIGH_MIN] = high_min
        zp[C.ZP_PCP_HIGH_MAX] = high_max
        # a CPU whose share of the last-level cache exceeds 3 * batch pages keeps a batch on
        # its lists through runs of high-order frees (zone_pcp_update_cacheinfo(), 6.7+)
        zp[C.ZP_PCP_FLAGS] = C.PCPF_FREE_HIGH_BATCH if rules >= C.PCP_RULES_6_7 else 0
        zp[C.ZP_NR_CPUS] = nr_cpus
        for cpu in range(nr_cpus):    # every CPU's state while not loaded (CPU 0 is loaded)
            slots = C.ZP_PCPS + cpu * C.PCPS_SLOTS
            zp[slots + 1] = high
            zp[slots + 4] = zp[C.ZP_PCP_FLAGS]
        if pcp and rules >= C.PCP_RULES_6_7:
            zp[C.ZP_VMSTAT_INTERVAL] = zp[C.ZP_VMSTAT_COUNTDOWN] = vmstat_interval_ops
        zp[C.ZP_MANAGED] = managed[idx]
        zp[C.ZP_SECTION_SHIFT] = section_bits - C.PAGE_SHIFT
        zp[C.ZP_MEMBLOCK_SHIFT] = (memory_block_bits or section_bits) - C.PAGE_SHIFT
        modern = int(policy != "v5.4")
        zp[C.ZP_MOVE_TO_TAIL] = modern
        # THP pcp lists (5.13+) of pageblock_order until HPAGE_PMD_ORDER replaced it (6.10 has it)
        zp[C.ZP_PCP_THP_ORDER] = (0 if policy == "v5.4" else pageblock_order if policy == "v6.1"
                                  else C.HPAGE_PMD_ORDER)
        zp[C.ZP_CMA_BALANCE] = modern
        zp[C.ZP_COMPACT_LARGE] = int(merge == C.MERGE_HYGIENE)
        zp[C.ZP_HUGETLB_SKIP] = int(merge == C.MERGE_HYGIENE)
        zp[C.ZP_CONTIG_MAXORDER] = int(contig_maxorder)
        zp[C.ZP_CLAIM_STOP] = int(policy in ("v6.16", "v6.17"))
        zp[C.ZP_ISOLATE_RESTORE] = int(policy == "v6.17")
        zp[C.ZP_BOOST_FACTOR] = watermark_boost_factor
        # node state, read from the first zone
        zp[C.ZP_KSWAPD] = int(kswapd)
        zp[C.ZP_KCOMPACTD] = int(kcompactd)
        zp[C.ZP_KSWAPD_HIGHEST] = -1
        zp[C.ZP_KCOMPACTD_HIGHEST] = spans[-1][0]
        zp[C.ZP_LRU_BASE] = owner_slots
        zp[C.ZP_LRU_CAP] = pagecache_slots
        zp[C.ZP_PROACTIVENESS] = compaction_proactiveness
        zp[C.ZP_PROACTIVE_INTERVAL] = zp[C.ZP_PROACTIVE_COUNTDOWN] = proactive_interval_ops
        if kernel_zone and idx == kernel_zone[0] and cma_pages:
            # the CMA area sits at the top of the highest zone below ZONE_MOVABLE, aligned as cma_init_reserved_mem()
            # requires (pageblock; max(MAX_ORDER, pageblock) before 5.19)
            align = 1 << (max(max_order, pageblock_order) if contig_maxorder else pageblock_order)
            cma_end = end // align * align
            zp[C.ZP_CMA_START] = cma_end - cma_pages
            zp[C.ZP_CMA_END] = cma_end
            shared["pb_mt"][(cma_end - cma_pages) >> pageblock_order:cma_end >> pageblock_order] = C.MIGRATE_CMA
        nr_orders = max_order + 1
        zp[C.ZP_PCP_BASE] = nr_orders * C.MIGRATE_TYPES
        zp[C.ZP_CC_BASE] = zp[C.ZP_PCP_BASE] + C.NR_PCP_LISTS
        zp[C.ZP_ISO_SAVED_BASE] = zp[C.ZP_CC_BASE] + nr_orders
        zp[C.ZP_PCP_BANKS] = zp[C.ZP_ISO_SAVED_BASE] + nr_pageblocks
        nr_lists = zp[C.ZP_PCP_BANKS] + C.NR_PCP_LISTS * nr_cpus
        zones.append(Zone(
            zp=zp,
            list_head=np.full(nr_lists, -1, dtype=np.int32),
            list_tail=np.full(nr_lists, -1, dtype=np.int32),
            nr_free=np.zeros(nr_orders, dtype=np.int64),
            stat=np.zeros(C.NR_STATS, dtype=np.int64),
            **shared,
        ))
    return tuple(zones)


def zone_spans(nr_pages: int, movable_pages: int = 0, dma_end: int = 0,
               dma32_end: int = 0) -> list[tuple[int, int, int]]:
    """(zone index, start pfn, end pfn) of each populated zone, lowest first: ZONE_DMA below
    dma_end, ZONE_DMA32 below dma32_end, ZONE_NORMAL below nr_pages - movable_pages, ZONE_MOVABLE
    above (an x86-64 node: dma_end = X86_64_DMA_END, dma32_end = X86_64_DMA32_END)."""
    movable_start = nr_pages - movable_pages
    bounds = ((C.ZONE_DMA, 0, dma_end), (C.ZONE_DMA32, dma_end, dma32_end),
              (C.ZONE_NORMAL, max(dma_end, dma32_end), movable_start),
              (C.ZONE_MOVABLE, movable_start, nr_pages))
    spans = []
    for idx, start, end in bounds:
        start, end = min(start, movable_start), min(end, movable_start)
        if idx == C.ZONE_MOVABLE:
            start, end = movable_start, nr_pages
        if end > start:
            spans.append((idx, start, end))
    return spans


def kernel_zone_span(spans: list[tuple[int, int, int]]) -> tuple[int, int, int] | None:
    """The span (zone index, start, end) of the zone GFP_KERNEL prefers: the highest below
    ZONE_MOVABLE; None when there is none."""
    lower = [span for span in spans if span[0] != C.ZONE_MOVABLE]
    return lower[-1] if lower else None


def setup_per_zone_wmarks(managed: dict[int, int], min_free_kbytes: int,
                          movable_highmem: bool = True) -> dict[int, tuple[int, int, int]]:
    """__setup_per_zone_wmarks(): (min, low, high) of each zone. The lowmem zones share
    min_free_kbytes by their managed pages; 6.12 counts ZONE_MOVABLE out of them and gives it
    highmem's min, managed/1024 clamped to [SWAP_CLUSTER_MAX, 128] (`movable_highmem`); 6.1
    counts it in (both sources checked: policies v6.10 on follow 6.12, v5.4 and v6.1 follow 6.1).
    Either way the gaps are max(share / 4, managed * watermark_scale_factor / 10000)."""
    lowmem = sum(m for idx, m in managed.items() if idx != C.ZONE_MOVABLE or not movable_highmem)
    pages_min = min_free_kbytes >> (C.PAGE_SHIFT - 10)
    out = {}
    for idx, m in managed.items():
        tmp = pages_min * m // lowmem if lowmem else 0
        wmin = min(max(m // 1024, 32), 128) if idx == C.ZONE_MOVABLE and movable_highmem else tmp
        delta = max(tmp // 4, m * 10 // 10000)
        out[idx] = (wmin, wmin + delta, wmin + 2 * delta)
    return out


def recommended_min_free_kbytes(managed: dict[int, int], pageblock_order: int,
                                wmarks: dict[int, tuple[int, int, int]]) -> int:
    """set_recommended_min_free_kbytes() (mm/khugepaged.c), which raises min_free_kbytes when
    khugepaged starts with THP enabled: per populated zone up to ZONE_NORMAL, two free
    pageblocks plus MIGRATE_PCPTYPES^2 pageblocks for the fallbacks, at most 5% of
    nr_free_buffer_pages() (managed less the high watermark of the boot-time watermarks
    `wmarks`), in KiB."""
    lowmem = [idx for idx in managed if idx != C.ZONE_MOVABLE]      # populated: present pages
    pageblock = 1 << pageblock_order
    recommended = pageblock * len(lowmem) * (2 + C.MIGRATE_PCPTYPES * C.MIGRATE_PCPTYPES)
    buffer_pages = sum(max(managed[idx] - wmarks[idx][2], 0) for idx in lowmem)
    return min(recommended, buffer_pages // 20) << (C.PAGE_SHIFT - 10)


def kernel_zone_index(node) -> int:
    """Index in the node of the zone GFP_KERNEL prefers: the highest below ZONE_MOVABLE (the
    first zone when the node is ZONE_MOVABLE alone)."""
    lower = [i for i, z in enumerate(node) if int(z.zp[C.ZP_ZONE_IDX]) != C.ZONE_MOVABLE]
    return lower[-1] if lower else 0


def lowmem_reserves(managed: dict[int, int]) -> dict[int, list[int]]:
    """setup_per_zone_lowmem_reserve(): lowmem_reserve[j] of zone i is the managed pages of the
    zones i+1..j over sysctl_lowmem_reserve_ratio[i] (0 for a zone without pages or ratio 0)."""
    out = {}
    for i in range(C.MAX_NR_ZONES):
        ratio = C.LOWMEM_RESERVE_RATIO[i]
        clear = not ratio or not managed.get(i, 0)
        row, upper = [0] * C.MAX_NR_ZONES, 0
        for j in range(i + 1, C.MAX_NR_ZONES):
            upper += managed.get(j, 0)
            row[j] = 0 if clear else upper // ratio
        out[i] = row
    return out


def state_bytes_per_page(node) -> float:
    """Bytes of model state per simulated page (all arrays of every zone, shared ones once)."""
    if isinstance(node, Zone):
        node = (node,)
    seen = {}
    for z in node:
        for a in z:
            seen[id(a)] = a.nbytes
    return sum(seen.values()) / int(node[0].zp[C.ZP_NR_PAGES])
