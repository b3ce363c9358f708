"""A thin Python wrapper over the jitted model: validates input, exposes the state to tests.

The same interface as the pure-Python reference in tests/reference.py, so the two can be driven by
one operation sequence and compared after every step.
"""


from . import constants as C
from .check import check_zone
from .page_alloc import (alloc_pages, boot_node, decay_pcp_high, drain_all_pages, free_pages,
                         kswapd, lru_add_file, pcp_switch_cpu)
from .zone import make_node


class Model:
    """A node of the buddy allocator model, booted and ready: one ZONE_NORMAL, or the zones
    make_node() lays out for dma_end, dma32_end and movable_pages. The state readers take the
    zone's position in the node (`zi`, lowest zone first; default the first)."""

    def __init__(self, nr_pages, max_order, pageblock_order, policy="v6.15", holes=(), pcp=False,
                 min_free_kbytes=None, section_bits=27, memory_block_bits=None, nr_cpus=1,
                 dma_end=0, dma32_end=0, movable_pages=0, thp_enabled=False,
                 watermark_boost_factor=0, kswapd=False, pagecache=False):
        if pageblock_order > max_order:
            raise ValueError("pageblock_order must not exceed max_order")
        self.node = make_node(nr_pages, max_order, pageblock_order, policy, holes, pcp,
                              min_free_kbytes, section_bits, memory_block_bits, movable_pages,
                              nr_cpus=nr_cpus, dma_end=dma_end, dma32_end=dma32_end,
                              thp_enabled=thp_enabled, watermark_boost_factor=watermark_boost_factor,
                              kswapd=kswapd, pagecache_slots=nr_pages if pagecache else 0)
        self.nr_cpus = nr_cpus
        boot_node(self.node)
        self.zone = self.node[0]
        self.nr_zones = len(self.node)
        self.max_order = max_order
        self.pageblock_order = pageblock_order

    def zone_idx(self, zi):
        """The kernel's index (ZONE_DMA ...) of the zi-th zone of the node."""
        return int(self.node[zi].zp[C.ZP_ZONE_IDX])

    # operations (each on one CPU; CPU 0 is loaded between operations) -------------------
    def _on(self, cpu):
        if not 0 <= cpu < self.nr_cpus:
            raise ValueError(f"cpu {cpu} outside 0..{self.nr_cpus - 1}")
        for z in self.node:
            pcp_switch_cpu(z, cpu)

    def alloc(self, order, mt, pinned=False, cpu=0, atomic=False):
        """alloc_pages() on `cpu`; `atomic`: a GFP_ATOMIC request (MODEL.md, highatomic reserve)."""
        if not 0 <= order <= self.max_order:
            raise ValueError(f"order {order} outside 0..{self.max_order}")
        if mt not in (C.MIGRATE_UNMOVABLE, C.MIGRATE_MOVABLE, C.MIGRATE_RECLAIMABLE):
            raise ValueError(f"migratetype {mt} cannot be requested")
        self._on(cpu)
        extra = (C.PG_PINNED if pinned else 0) | (C.GFP_ATOMIC if atomic else 0)
        pfn = int(alloc_pages(self.node, order, mt, extra))
        self._on(0)
        return pfn

    def free(self, pfn, cpu=0):
        z = self.zone       # the page arrays are the node's
        if not (0 <= pfn < len(z.page_flags)) or not (z.page_flags[pfn] & C.PG_HEAD):
            raise ValueError(f"pfn {pfn} is not the head of an allocated block")
        self._on(cpu)
        free_pages(self.node, pfn)
        self._on(0)

    def drain(self):
        drain_all_pages(self.node)

    def add_file(self, pfn):
        """The allocated block at pfn becomes clean page cache (lru_add_file()): only reclaim
        frees it now. False when the node has no page cache."""
        z = self.zone
        if not (0 <= pfn < len(z.page_flags)) or not (z.page_flags[pfn] & C.PG_HEAD):
            raise ValueError(f"pfn {pfn} is not the head of an allocated block")
        return bool(lru_add_file(self.node, pfn))

    def file_pages(self):
        """The page cache's pages, oldest first (the heads of its blocks)."""
        first = self.zone
        base, cap = int(first.zp[C.ZP_LRU_BASE]), int(first.zp[C.ZP_LRU_CAP])
        out = []
        for pos in range(int(first.zp[C.ZP_LRU_HEAD]), int(first.zp[C.ZP_LRU_TAIL])):
            pfn = int(first.owner[base + pos % cap])
            if pfn >= 0:
                out.append(pfn)
        return out

    def kswapd_pending(self):
        """kswapd was woken and has not run yet."""
        return bool(self.zone.zp[C.ZP_BG_PENDING] & C.BG_KSWAPD)

    def run_kswapd(self):
        """Run kswapd if it was woken (kswapd(): balance_pgdat(), kswapd_try_to_sleep()); true if
        it ran. kcompactd is not modelled here: its wakeups are dropped."""
        first = self.zone
        ran = bool(first.zp[C.ZP_BG_PENDING] & C.BG_KSWAPD)
        first.zp[C.ZP_BG_PENDING] = 0
        if ran:
            kswapd(self.node)
            first.zp[C.ZP_BG_PENDING] = 0
        return ran

    def reclaim_state(self):
        """Each zone's watermark_boost and ZONE_BOOSTED_WATERMARK, and the node's kswapd_failures,
        kswapd_order and kswapd_highest_zoneidx (-1: none) and page cache size."""
        first = self.zone
        return {"boost": [int(z.zp[C.ZP_WMARK_BOOST]) for z in self.node],
                "boosted": [int(z.zp[C.ZP_BOOSTED]) for z in self.node],
                "kswapd_failures": int(first.zp[C.ZP_KSWAPD_FAILURES]),
                "kswapd_order": int(first.zp[C.ZP_KSWAPD_ORDER]),
                "kswapd_highest_zoneidx": int(first.zp[C.ZP_KSWAPD_HIGHEST]),
                "nr_file": int(first.zp[C.ZP_NR_FILE])}

    def decay_pcp_high(self, cpu=0):
        """One vmstat update on `cpu`: decay_pcp_high() of every zone (6.7+ pcp rules); true when
        any zone has more to do."""
        self._on(cpu)
        todo = False
        for z in self.node:
            todo |= bool(decay_pcp_high(z))
        self._on(0)
        return todo

    # state ------------------------------------------------------------------------------
    def _walk(self, head, nxt, li):
        out = []
        p = int(head[li])
        while p >= 0:
            out.append(p)
            p = int(nxt[p])
        return out

    def free_lists(self, zi=0):
        z = self.node[zi]
        out = {}
        for o in range(self.max_order + 1):
            for mt in range(C.MIGRATE_TYPES):
                lst = self._walk(z.list_head, z.next, o * C.MIGRATE_TYPES + mt)
                if lst:
                    out[(o, mt)] = lst
        return out

    def pcp_lists(self):
        return self.pcp_lists_of(0)

    def pcp_lists_of(self, cpu, zi=0):
        """{pindex: [pfns, head first]} of one CPU's non-empty pcp lists."""
        z = self.node[zi]
        self._on(cpu)
        out = {}
        for i in range(C.NR_PCP_LISTS):
            lst = self._walk(z.list_head, z.next, int(z.zp[C.ZP_PCP_BASE]) + i)
            if lst:
                out[i] = lst
        self._on(0)
        return out

    def pageblock_types(self):
        return [int(x) for x in self.zone.pb_mt]

    def counters(self):
        """The counters summed over the node's zones."""
        s = sum(z.stat for z in self.node)
        names = ("alloc_ops", "alloc_fail", "free_ops", "split_steps", "merge_steps",
                 "orders_scanned", "wmark_orders_scanned", "fallback_claim", "fallback_steal")
        idx = (C.ALLOC_OPS, C.ALLOC_FAIL, C.FREE_OPS, C.SPLIT_STEPS, C.MERGE_STEPS,
               C.ORDERS_SCANNED, C.WMARK_ORDERS_SCANNED, C.FALLBACK_CLAIM, C.FALLBACK_STEAL)
        out = {n: int(s[i]) for n, i in zip(names, idx)}
        out["pgalloc"] = int(s[C.PGALLOC])
        out["pgfree"] = int(s[C.PGFREE])
        out["nr_free_pages"] = int(s[C.NR_FREE_PAGES])
        out["nr_reserved_highatomic"] = int(s[C.NR_RESERVED_HIGHATOMIC])
        out["nr_free_highatomic"] = int(s[C.NR_FREE_HIGHATOMIC])
        return out

    def reclaim_counters(self):
        """The reclaim counters summed over the zones."""
        s = sum(z.stat for z in self.node)
        return {"nr_watermark_boosts": int(s[C.NR_WATERMARK_BOOSTS]), "pageoutrun": int(s[C.PAGEOUTRUN]),
                "pgsteal_kswapd": int(s[C.PGSTEAL_KSWAPD]), "pgsteal_direct": int(s[C.PGSTEAL_DIRECT])}

    def buddyinfo(self, zi=0):
        return [int(x) for x in self.node[zi].nr_free]

    def watermarks(self, zi=0):
        zp = self.node[zi].zp
        return int(zp[C.ZP_WMARK_MIN]), int(zp[C.ZP_WMARK_LOW]), int(zp[C.ZP_WMARK_HIGH])

    def lowmem_reserve(self, zi=0):
        zp = self.node[zi].zp
        return [int(x) for x in zp[C.ZP_LOWMEM_RESERVE:C.ZP_LOWMEM_RESERVE + C.MAX_NR_ZONES]]

    def pcp_params(self, zi=0):
        zp = self.node[zi].zp
        return int(zp[C.ZP_PCP_BATCH]), int(zp[C.ZP_PCP_HIGH])

    def pcp_state(self, cpu=0, zi=0):
        """A CPU's per-cpu list tuning state (6.7+: high between high_min and high_max,
        alloc_factor, free_count, flags; the zone's ZONE_BELOW_HIGH)."""
        z = self.node[zi]
        self._on(cpu)
        out = {"high": int(z.zp[C.ZP_PCP_HIGH]), "high_min": int(z.zp[C.ZP_PCP_HIGH_MIN]),
                "high_max": int(z.zp[C.ZP_PCP_HIGH_MAX]),
                "alloc_factor": int(z.zp[C.ZP_PCP_ALLOC_FACTOR]),
                "free_count": int(z.stat[C.PCP_FREE_FACTOR]), "flags": int(z.zp[C.ZP_PCP_FLAGS]),
                "below_high": int(z.zp[C.ZP_BELOW_HIGH])}
        self._on(0)
        return out

    def check(self):
        check_zone(self.node)

