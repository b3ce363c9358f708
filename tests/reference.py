"""Pure-Python reference model of the Linux buddy page allocator: the test oracle.

Written from kernels/MODEL.md (the behavioural contract) and the kernel sources it cites
(mm/page_alloc.c of v5.4, v6.1, v6.10, v6.15 and v6.16 (v6.17 allocates and frees as v6.16: its
change, the standalone isolate bit, is in page isolation, which this model leaves out); mm/vmstat.c). It is deliberately plain:
free lists are ``OrderedDict``s whose key order is the list order (head first), free and
allocated blocks are dicts keyed by pfn, and every kernel function the contract names has a
method of the same name (kernel ``__name`` -> ``_name``, since a double underscore is mangled
inside a Python class). Clarity over speed; zones of ~2^16 pages and a few thousand operations
run in well under a second.

Conventions: ``max_order`` (M) is the largest order of a free block, inclusive (MAX_PAGE_ORDER);
``pageblock_order`` is P. A ``RefZone`` spans pfns ``[0, nr_pages)`` unless given a span
``[zone_start, zone_end)`` of a node of ``nr_pages`` pfns; a ``RefNode`` holds up to four zones.

Readings of MODEL.md where it leaves room (the numba model must make the same choices):

* ``ALLOC_CMA`` follows the *list* migratetype (``gfp_migratetype()``), so it is never set
  under ``nomobility`` even for MOVABLE requests (kernel ``gfp_to_alloc_flags_cma``).
* The pcp ``batch`` is ``max(1, zone_batchsize)`` (kernel ``zone_set_pageset_high_and_batch``);
  MODEL's formula alone gives 0 for zones under 8192 managed pages, which would never drain.
* A page that reaches a pcp list through ``rmqueue_bulk`` records the migratetype of the
  ``expand()`` that produced it (the free-list type it was split on; kernel 6.1's
  ``set_pcppage_migratetype`` in ``__rmqueue_smallest``); a page freed to pcp records its
  pageblock type. v5.4/v6.1 drains free with the recorded type; from 6.10 on drains use the
  pageblock's type at drain time.
* A pcp attempt that yields nothing falls through to the buddy path (6.1 ``rmqueue()``).
* The per-cpu rules follow the policy (``PCP_RULES``): ``v5.4`` the 5.4 rules (``high = 6 * batch``,
  a free at ``count >= high`` drains ``batch`` pages round robin over the three order-0 lists,
  MOVABLE first, with 5.4's carried-over ``batch_free``; no free_factor); ``v6.1`` the 6.1 rules
  (fixed ``high``, free_factor, free_high); ``v6.10`` and ``v6.15`` the 6.7 rules of 6.12's
  mm/page_alloc.c (``high`` tuned between ``high_min`` and ``high_max`` by ``nr_pcp_alloc()``,
  ``nr_pcp_high()`` and ``decay_pcp_high()``; alloc_factor; free_count; PCPF_* flags with
  PCPF_FREE_HIGH_BATCH always set; ZONE_BELOW_HIGH) with free_high at ``free_count >= batch``;
  ``v6.16``, ``v6.17`` and ``nomobility`` the same with 6.16's ``batch + high_min / 2``.
  ``free_count`` (``pcp_free_factor``) holds 6.1's free_factor or, under the 6.7 rules, free_count.
* ``high`` starts at ``high_min`` (the kernel's starts at 0 and is clamped on first use: the
  same numbers). ``clamp()`` is the kernel's: ``hi`` wins when ``lo > hi`` (tiny zones, where
  the low watermark exceeds managed / 8).
* CPUs (``nr_cpus``, 1..16): each CPU has its own ``PerCpuPages`` (lists, ``count``, ``high``,
  ``alloc_factor``, ``free_count``/free_factor, ``flags``); ``batch``, ``high_min`` and
  ``high_max`` are the zone's, with ``zone_highsize()`` splitting the low watermark (6.1 ``high``,
  6.7+ ``high_min``) and managed / 8 (6.7+ ``high_max``) over the CPUs; 5.4's ``6 * batch`` is
  not split. ``alloc``/``free``/``decay_pcp_high`` take the CPU they run on (default 0) and use
  only its lists and state; ``drain()`` is ``drain_all_pages()``: CPU 0, 1, ... in turn, each
  ``free_pcppages_bulk(count, 0)``. ZONE_BELOW_HIGH is the zone's. ``pcp_counters()`` reports
  the sum of the CPUs' pcp pages (``pcp_count``) and CPU 0's free_count/free_factor
  (``pcp_free_factor``) (not in ``counters()``, whose keys are the numba model's);
  ``pcp_lists()`` and ``pcp_params()`` are CPU 0's, ``pcp_lists_of(cpu)`` and
  ``pcp_state(cpu)`` any CPU's.
* ZONE_BELOW_HIGH is tracked only with pcp on (6.7 rules). In each watermark attempt
  (``get_page_from_freelist()``: low, then min) a zone not yet below its high watermark is first
  tested at the high watermark with the request's order and CMA setting: passing goes straight
  to ``rmqueue()`` (``goto try_this_zone``: the gate is not run; passing the high mark implies
  passing it), failing sets the flag and the gate follows. The orders that test visits count in
  ``wmark_orders_scanned``, as any ``__zone_watermark_ok`` loop. The clearing test after a free's
  drain is order 0 and visits none.
* Each iteration of an order loop counts one ``orders_scanned``, including the iteration of
  ``_rmqueue_claim`` that stops. At an order too low to claim, v6.16 stops (6.16's
  ``find_suitable_fallback`` returns -2 before it looks); v6.15 stops only if that order has a
  fallback block (``if (fallback_mt == -1) continue; if (!claim_block) break;``).
* ``wmark_orders_scanned`` counts every order the order loop of ``__zone_watermark_ok``
  visits (also orders with ``nr_free == 0``), none for order 0 or when the free-page test fails.
* ``nr_free_pages`` in ``counters()`` is the live NR_FREE_PAGES value, not an event counter:
  it is not zeroed after boot.
* Zones of a node (``RefNode``): ZONE_DMA ``[0, dma_end)``, ZONE_DMA32 ``[dma_end, dma32_end)``,
  ZONE_NORMAL ``[max(dma_end, dma32_end), nr_pages - movable_pages)``, ZONE_MOVABLE
  ``[nr_pages - movable_pages, nr_pages)``, boundaries multiples of ``2^M`` (so no buddy and no
  pageblock straddles two zones); a zone whose span is empty is absent (not populated); a span
  made only of holes is populated (its pages are present, not managed). The page arrays are
  indexed by absolute pfn; each zone has its own free lists, counters, watermarks, reserves and
  pcp lists (batch and high from its own managed pages and low watermark), the pageblock types
  are the node's. Boot frees each zone's span (largest aligned chunks per hole-free range);
  ``page_is_buddy()`` and ``buddy_merge_likely()`` require the buddy inside the zone,
  ``prep_move_freepages_block()`` a pageblock wholly inside it. With no DMA, DMA32 or Movable
  pages the node is one Normal zone and behaves as ``RefZone``.
* Watermarks of a node: 6.12's ``__setup_per_zone_wmarks()``: ``min_free_kbytes`` from the
  managed pages of every zone but ZONE_MOVABLE; ``tmp = pages_min * managed / lowmem_pages``;
  ``min = tmp``, ZONE_MOVABLE ``clamp(managed / 1024, 32, 128)`` (v5.4 and v6.1: ZONE_MOVABLE
  counts in ``lowmem_pages`` and gets ``min = tmp``, as 6.1's ``!is_highmem(zone)`` test does); ``delta = max(tmp / 4,
  managed * 10 / 10000)`` (``tmp``, also for ZONE_MOVABLE). A node with no managed page below
  ZONE_MOVABLE (the kernel would divide by zero) takes ``tmp = pages_min``, the one-zone value.
* ``lowmem_reserve``: 6.12's ``setup_per_zone_lowmem_reserve()`` with ratios DMA 256, DMA32 256,
  NORMAL 32, MOVABLE 0: ``lowmem_reserve[j]`` of zone ``i < j`` is the managed pages of zones
  ``i+1..j`` (absent: 0) over ratio ``i``; 0 for a zone with no managed pages. An allocation
  with ``highest_zoneidx = gfp_zone()`` (ZONE_MOVABLE for a MOVABLE request, ZONE_NORMAL
  otherwise, from the requested type even under ``nomobility``) fails a zone's watermark when
  ``free <= mark + lowmem_reserve[highest_zoneidx]``, in the ZONE_BELOW_HIGH test too; the
  test that clears ZONE_BELOW_HIGH after a pcp drain uses ``lowmem_reserve[ZONE_MOVABLE]``
  (``zone_watermark_ok(zone, 0, high_wmark_pages(zone), ZONE_MOVABLE, 0)``).
* Zonelist and ALLOC_NOFRAGMENT: the populated zones up to ``highest_zoneidx``, highest first;
  the preferred zone is the first. The fast path (low watermark) sets ALLOC_NOFRAGMENT when the
  preferred zone is ZONE_NORMAL and ZONE_DMA32 is populated (``alloc_flags_nofragment()``'s
  NUMA test, applied on every node, so a node of one Normal zone never sets it); if the whole
  walk finds nothing it is walked once more without the flag, still at the low watermark
  (``goto retry``); then the slow path's one walk at the min watermark without it. Under the
  flag a request below ``P`` runs the fallback's top-down loop (``__rmqueue_fallback()``, 6.15+
  ``__rmqueue_claim()``) only down to ``min_order = P``, and 6.15+ does not call
  ``__rmqueue_steal()``; pcp refills (``rmqueue_bulk()``) pass the flag on.
* ``RefNode.counters()`` sums every zone's counters (``nr_free_pages``: the node's free
  pages); ``alloc_ops`` and ``alloc_fail`` count once per ``alloc()`` call, whatever the
  number of zones and walks. ``free()`` frees in the zone that spans the pfn; ``drain()`` drains
  CPU 0, 1, ... in turn, each over every zone; ``decay_pcp_high(cpu)`` runs every zone's.
* The highatomic reserve: ``v5.4`` and ``v6.1`` follow 6.1's mm/page_alloc.c, the hygiene
  policies 6.12's. ``alloc(..., atomic=True)`` is a GFP_ATOMIC request (no
  __GFP_DIRECT_RECLAIM, __GFP_HIGH, no __GFP_NOMEMALLOC). The fast path is unchanged (low
  watermark, no reserve flags). The slow path's attempt at the min watermark (no
  ALLOC_NOFRAGMENT) gets ``gfp_to_alloc_flags()``'s flags: an atomic request ALLOC_MIN_RESERVE |
  ALLOC_NON_BLOCK, and ALLOC_HIGHATOMIC for order > 0; a non-atomic one none.
  ``__zone_watermark_ok()`` without ALLOC_RESERVES counts as unusable the free pages on the
  HIGHATOMIC lists (6.12 ``nr_free_highatomic``) or the whole reserve (6.1
  ``nr_reserved_highatomic``); with ALLOC_MIN_RESERVE ``min -= min / 2``, then with
  ALLOC_NON_BLOCK ``min -= min / 4``; with ALLOC_HIGHATOMIC a free HIGHATOMIC block counts in the
  high-order loop. ``rmqueue_buddy()``: ``__rmqueue_smallest(HIGHATOMIC)`` first with
  ALLOC_HIGHATOMIC, and again after a failed ``__rmqueue()`` with ALLOC_NON_BLOCK (the pcp list is
  tried first for pcp orders, as ever). A success with ALLOC_HIGHATOMIC runs
  ``reserve_highatomic_pageblock()``. If the min attempt fails, an atomic request fails (no direct
  reclaim); a non-atomic request reclaims directly (see Reclaim below; without page cache it
  reclaims nothing) and then, for order <= PAGE_ALLOC_COSTLY_ORDER, runs what the kernel's slow
  path ends with once reclaim makes no progress:
  ``should_reclaim_retry()``'s ``unreserve_highatomic_pageblock(ac, true)`` over the request's
  zonelist (highest zone first), converting to gfp_migratetype(), and while that returns true the
  min attempt again (the kernel first retries up to MAX_RECLAIM_RETRIES times while its
  reclaimable-page watermark test passes, and tries the high watermark in
  ``__alloc_pages_may_oom()``; neither is modelled). A costly non-atomic request fails without
  unreserving (``goto nopage`` before ``should_reclaim_retry()``). ``counters()`` report
  ``nr_reserved_highatomic`` and ``nr_free_highatomic`` (the free pages on HIGHATOMIC lists, also
  under the 6.1 policies, where the kernel keeps no such count).
* Reclaim (MODEL.md "Reclaim and background compaction"; mm/page_alloc.c and mm/vmscan.c of
  6.12), switched by the constructor keywords ``watermark_boost_factor`` (0: none), ``kswapd`` and
  ``pagecache``; the node-level state is a ``RefPgdat`` (``zone.pgdat``; a lone ``RefZone`` is a
  node of its own). Every request of the model has ALLOC_KSWAPD (GFP_KERNEL,
  GFP_HIGHUSER_MOVABLE and GFP_ATOMIC have __GFP_KSWAPD_RECLAIM); every non-atomic one
  __GFP_DIRECT_RECLAIM.
* ``boost_watermark()`` is 6.12's under every policy: nothing with the factor 0, in a zone whose
  managed pages are fewer than 4 pageblocks, or while ``mult_frac(high, factor, 10000)`` is 0;
  else the boost grows by a pageblock up to ``max(pageblock, mult_frac(...))``, and (ALLOC_KSWAPD)
  ZONE_BOOSTED_WATERMARK is set. It runs in steal_suitable_fallback() (v5.4-v6.10) after the
  HIGHATOMIC and ``current_order >= pageblock_order`` cases and before the whole_block test (so
  also for a block it may not claim), and in try_to_claim_block() (v6.15+) after the
  ``current_order >= pageblock_order`` case and before prep_move_freepages_block(), once per
  call; __rmqueue_steal() does not boost. ``nr_watermark_boosts`` counts the calls that boosted
  (also at the cap). At the end of rmqueue() (with or without a page) a set
  ZONE_BOOSTED_WATERMARK is cleared and wakeup_kswapd(zone, 0, 0, zone_idx(zone)) called, before
  reserve_highatomic_pageblock().
* ``wmark_pages()`` adds the boost to the mark of the watermark gate (low, min), of the 6.7+
  ZONE_BELOW_HIGH test (high) and of its clearing after a pcp drain, and to pgdat_balanced()'s
  and kswapd_shrink_node()'s high watermark. Both gate tests are zone_watermark_fast(): an
  order-0 ALLOC_MIN_RESERVE (GFP_ATOMIC) request in the slow path whose test fails in a boosted
  zone is tested again against the unboosted ``_watermark[WMARK_MIN]`` (also in the ZONE_BELOW_HIGH
  test, whose mark is the high watermark: the kernel's test only looks at the attempt's
  ALLOC_WMARK_MIN).
* The page cache: ``add_file(pfn)`` puts an allocated block (any order) at the tail of the node's
  LRU; ``file_pages()`` lists the cached heads oldest first; ``nr_file`` counts pages. A cached
  block is freed only by reclaim (``free()`` raises ValueError), through the free path (pcp
  included; counted in free_ops and pgfree) on the CPU reclaiming: CPU 0 for kswapd, the
  allocating CPU for direct reclaim. The LRU is a ring of as many slots as the node has pages
  (positions counting up; a block reclaimed from inside it leaves an empty slot; a full ring
  frees its oldest block before an add).
* A reclaim pass (shrink_node() on the one LRU) walks from the oldest block and reclaims each
  block of a zone up to ``reclaim_idx``; blocks of higher zones are skipped and keep their place
  (MODEL.md; the kernel moves them to the young end) and, as isolate_lru_folios() has it, do not
  count as scanned; a block counts its pages (``scan += nr_pages``). The pass stops once it has
  scanned ``nr_to_scan`` pages or reclaimed ``nr_to_reclaim``. Any pass that reclaims resets
  ``kswapd_failures`` (shrink_node(): "A successful direct reclaim run will revive a dormant
  kswapd").
* wakeup_kswapd(order, highest_zoneidx) (kswapd on, the zone managed): the order and the index
  are recorded (max) first; then nothing if kswapd is awake (woken, not yet run:
  ``kswapd_pending()``); a hopeless node (kswapd_failures >= 16) or one balanced for the order
  and not boosted up to the index does not wake it (kcompactd is not modelled). The slow path's
  wake_all_kswapds() calls it once, before the min attempt, with the request's order and
  gfp_zone(). pgdat_balanced() is some managed zone up to the index passing
  __zone_watermark_ok() at its boosted high watermark with lowmem_reserve[index] and no flags
  (true without such a zone); its order loops count in ``wmark_orders_scanned``.
* ``run_kswapd()`` is kswapd() from its wakeup to its next sleep: it reads and resets the order
  and index, runs balance_pgdat(), and, at the top of its loop, reads kswapd_order again (0: no
  wakeup happens meanwhile in a sequential model) for kswapd_try_to_sleep()'s
  prepare_kswapd_sleep(): a hopeless node or one balanced for that order lets it sleep; else it
  runs balance_pgdat() again at once, as the kernel's kswapd does (KSWAPD_HIGH_WMARK_HIT_QUICKLY).
  balance_pgdat() is 6.12's with MODEL.md's scan counts: PAGEOUTRUN; nr_boost_reclaim the boosts
  of the managed zones up to the index; priority 12 down to 1; an unbalanced node with a boost
  drops nr_boost_reclaim and restarts; a balanced one without it leaves (``goto out``); a boosted
  pass keeps priority 10; each pass asks nr_to_reclaim = sum of max(boosted high, 32) over the
  zones and scans max(nr_file >> priority, 32) pages; reclaiming nr_to_reclaim keeps the
  priority; compact_gap(order) reclaimed sets sc.order 0; a boosted pass that reclaims nothing
  stops; no reclaim at all (not via ``goto out``): kswapd_failures++; at the end the boosts it
  counted come off the zones (zones above the index keep theirs). The cache_trim_mode restart is
  left out (one LRU: it could reclaim nothing more).
* Direct reclaim (``_slow_path()``): after the min attempt a non-atomic request reclaims
  SWAP_CLUSTER_MAX pages of page cache of its zones (up to gfp_zone()) and, on progress, tries
  again; an order <= 3 request reclaims again while reclaim makes progress and, for order > 0,
  some zone of its zonelist (highest first, should_reclaim_retry()'s walk) has a free block of at
  least the order on a list the request may use (__zone_watermark_ok()'s order loop without its
  free-page test; its orders count in ``wmark_orders_scanned``); a costly order reclaims once. No
  progress (or no further reclaim): the forced highatomic unreserve; while it converts a block,
  ``goto retry``: the min attempt, then reclaim again as before. When the attempt after a reclaim
  that made progress fails, __alloc_pages_direct_reclaim() shrinks the reserve
  (``unreserve_highatomic_pageblock(ac, false)``: a zone keeps its last pageblock), drains every
  CPU's pcp lists (``drain_all_pages()``) and tries once more.
* ``reclaim_state()`` and ``reclaim_counters()`` have the shapes of the numba model's:
  ``boost`` and ``boosted`` per zone (lowest first), ``kswapd_highest_zoneidx`` -1 for none.
"""

from collections import OrderedDict
from math import isqrt

UNMOVABLE, MOVABLE, RECLAIMABLE, HIGHATOMIC, CMA, ISOLATE = range(6)
MIGRATE_PCPTYPES = 3
MIGRATE_TYPES = 6
MT_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")

POLICIES = ("v5.4", "v6.1", "v6.10", "v6.15", "v6.16", "v6.17", "nomobility")
_FALLBACK_A = ("v5.4", "v6.1")          # __rmqueue_fallback + steal_suitable_fallback (pre-hygiene)
_FALLBACK_B = ("v6.10",)                # hygiene steal_suitable_fallback
_FALLBACK_D = ("v6.15", "v6.16", "v6.17", "nomobility")   # __rmqueue_claim / __rmqueue_steal, sticky rmqueue_mode
_HYGIENE = ("v6.10", "v6.15", "v6.16", "v6.17", "nomobility")

# mm/page_alloc.c fallbacks[]: HIGHATOMIC, CMA and ISOLATE never fall back and are never used.
FALLBACKS = {
    UNMOVABLE: (RECLAIMABLE, MOVABLE),
    MOVABLE: (RECLAIMABLE, UNMOVABLE),
    RECLAIMABLE: (UNMOVABLE, MOVABLE),
}

RMQUEUE_NORMAL, RMQUEUE_CMA, RMQUEUE_CLAIM, RMQUEUE_STEAL = range(4)

PAGE_ALLOC_COSTLY_ORDER = 3
NR_LOWORDER_PCP_LISTS = (PAGE_ALLOC_COSTLY_ORDER + 1) * MIGRATE_PCPTYPES   # orders 0..3 x U/M/R
NR_PCP_LISTS = NR_LOWORDER_PCP_LISTS + 2   # THP: one list for UNMOVABLE + RECLAIMABLE, one for MOVABLE
HPAGE_PMD_ORDER = 9

# Per-cpu list rules by policy (MODEL.md "Per-cpu lists"): 5.4, 6.1, or 6.7-6.15 (mm/page_alloc.c
# of 6.12) with the free_high threshold of 6.7 or of 6.16.
PCP_RULES = {"v5.4": "5.4", "v6.1": "6.1", "v6.10": "6.7", "v6.15": "6.7",
             "v6.16": "6.16", "v6.17": "6.16", "nomobility": "6.16"}
CONFIG_PCP_BATCH_SCALE_MAX = 5
MIN_PERCPU_PAGELIST_HIGH_FRACTION = 8
PCPF_PREV_FREE_HIGH_ORDER = 1 << 0
PCPF_FREE_HIGH_BATCH = 1 << 1
MAX_CPUS = 16

# Zones of a node (include/linux/mmzone.h, x86-64 with CONFIG_ZONE_DMA and CONFIG_ZONE_DMA32; no
# HIGHMEM; ZONE_DEVICE holds no managed pages and is left out).
ZONE_DMA, ZONE_DMA32, ZONE_NORMAL, ZONE_MOVABLE = range(4)
MAX_NR_ZONES = 4
ZONE_NAMES = ("DMA", "DMA32", "Normal", "Movable")
# mm/page_alloc.c sysctl_lowmem_reserve_ratio[] (6.12): DMA 256, DMA32 256, NORMAL 32, MOVABLE 0.
SYSCTL_LOWMEM_RESERVE_RATIO = (256, 256, 32, 0)
WMARK_MIN, WMARK_LOW, WMARK_HIGH = range(3)
SWAP_CLUSTER_MAX = 32
WATERMARK_SCALE_FACTOR = 10
# Reclaim (mm/vmscan.c, include/linux/mmzone.h, mm/internal.h of 6.12).
DEF_PRIORITY = 12
MAX_RECLAIM_RETRIES = 16
NO_ZONEIDX = -1          # pgdat->kswapd_highest_zoneidx == MAX_NR_ZONES: none recorded
RECLAIM_COUNTER_NAMES = ("nr_watermark_boosts", "pageoutrun", "pgsteal_kswapd", "pgsteal_direct")

COUNTER_NAMES = ("alloc_ops", "alloc_fail", "free_ops", "split_steps", "merge_steps",
                 "orders_scanned", "wmark_orders_scanned", "fallback_claim", "fallback_steal",
                 "pgalloc", "pgfree")
# The live values counters() reports next to the event counters (summed over a node's zones).
GAUGE_NAMES = ("nr_free_pages", "nr_reserved_highatomic", "nr_free_highatomic")

# alloc_flags of mm/internal.h (6.1 and 6.12 alike) that the highatomic reserve reads.
ALLOC_OOM = 0x08
ALLOC_NON_BLOCK = 0x10
ALLOC_MIN_RESERVE = 0x20
ALLOC_HIGHATOMIC = 0x200
ALLOC_RESERVES = ALLOC_NON_BLOCK | ALLOC_MIN_RESERVE | ALLOC_HIGHATOMIC | ALLOC_OOM


def migratetype_is_mergeable(mt):
    return mt < MIGRATE_PCPTYPES


def gfp_zone(mt):
    """highest_zoneidx of a request (gfp_zone()): GFP_HIGHUSER_MOVABLE for a MOVABLE request
    (ZONE_MOVABLE), GFP_KERNEL otherwise (ZONE_NORMAL). ``mt`` is the *requested* type, before
    gfp_migratetype() (``nomobility`` keeps __GFP_MOVABLE in the mask)."""
    return ZONE_MOVABLE if mt == MOVABLE else ZONE_NORMAL


def min_free_kbytes_of(lowmem_managed_pages):
    """calculate_min_free_kbytes(): isqrt(lowmem kbytes * 16) clamped to [128, 262144]. The
    kernel's lowmem is nr_free_buffer_pages() (managed pages above the high watermark of the zones
    GFP_USER may use); at boot, before the watermarks are set, that is their managed pages."""
    return clamp(isqrt(lowmem_managed_pages * 4 * 16), 128, 262144)


def gfp_to_alloc_flags(order, atomic):
    """The reserve flags gfp_to_alloc_flags() gives the slow path: GFP_ATOMIC (__GFP_HIGH, no
    __GFP_DIRECT_RECLAIM, no __GFP_NOMEMALLOC) gets ALLOC_MIN_RESERVE and ALLOC_NON_BLOCK, and
    ALLOC_HIGHATOMIC for order > 0; GFP_KERNEL and the other requests of the model none."""
    if not atomic:
        return 0
    flags = ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK
    if order > 0:
        flags |= ALLOC_HIGHATOMIC
    return flags


def rounddown_pow_of_two(n):
    return 1 << (n.bit_length() - 1)


def clamp(val, lo, hi):
    """The kernel's clamp() (include/linux/minmax.h ``__clamp``): ``hi`` wins when lo > hi."""
    return hi if val >= hi else (lo if val <= lo else val)


def mult_frac(x, numer, denom):
    """include/linux/math.h mult_frac(): ``x * numer / denom`` without overflowing ``x * numer``
    (the same integer for non-negative operands)."""
    quot, rem = divmod(x, denom)
    return quot * numer + rem * numer // denom


def _slow_path(attempt, order, atomic, unreserve, direct_reclaim=None, may_retry_reclaim=None,
               drain=None):
    """__alloc_pages_slowpath() as far as the model goes (wake_all_kswapds() has run before it).
    ``attempt(wmark, alloc_flags)`` is one get_page_from_freelist() (pfn or None),
    ``unreserve(force)`` unreserve_highatomic_pageblock(ac, force) over the request's zonelist,
    ``direct_reclaim()`` one __perform_reclaim() (the pages reclaimed), ``drain()``
    drain_all_pages(NULL), and ``may_retry_reclaim(alloc_flags)`` MODEL.md's stand-in for
    should_reclaim_retry()'s watermark test: a free block of the order, on a list the request may
    use, in some zone of its zonelist.

    The attempt at the min watermark with gfp_to_alloc_flags()'s reserve flags (no
    ALLOC_NOFRAGMENT); then an atomic request, which may not reclaim, fails (``if
    (!can_direct_reclaim) goto nopage``). Else, round the ``retry:`` loop: direct reclaim
    (__alloc_pages_direct_reclaim(): SWAP_CLUSTER_MAX pages of page cache) and, if it made
    progress, the attempt again; if that fails, ``unreserve_highatomic_pageblock(ac, false)``,
    ``drain_all_pages()`` and the attempt once more (``drained``); on no progress the kernel
    skips all three (``goto out``). A costly order reclaims once (``costly_order &&
    !__GFP_RETRY_MAYFAIL: goto nopage``, before should_reclaim_retry()); an order <=
    PAGE_ALLOC_COSTLY_ORDER request reclaims again while reclaim makes progress and, for order >
    0, ``may_retry_reclaim()`` holds (checked before each further reclaim). When it may not
    reclaim again or reclaim made no progress, a non-costly request gets should_reclaim_retry()'s
    ``unreserve_highatomic_pageblock(ac, true)``: while that converts a pageblock, ``goto retry``:
    the attempt again, then reclaim again (the free-block test first) as before. Not modelled
    (MODEL.md leaves them out): the second attempt and wake_all_kswapds() at ``retry:``,
    should_reclaim_retry()'s MAX_RECLAIM_RETRIES no-progress loops and its free-page test."""
    alloc_flags = gfp_to_alloc_flags(order, atomic)
    pfn = attempt(WMARK_MIN, alloc_flags)
    if pfn is not None or atomic:
        return pfn
    reclaims = 0
    while True:
        if (direct_reclaim is not None
                and (reclaims == 0 or order <= PAGE_ALLOC_COSTLY_ORDER)
                and (order == 0 or reclaims == 0 or may_retry_reclaim(alloc_flags))
                and direct_reclaim() > 0):
            reclaims += 1
            pfn = attempt(WMARK_MIN, alloc_flags)
            if pfn is None:
                # pages pinned on the per-cpu lists or in high alloc reserves: shrink them, retry
                unreserve(False)
                if drain is not None:
                    drain()
                pfn = attempt(WMARK_MIN, alloc_flags)
        elif order > PAGE_ALLOC_COSTLY_ORDER or not unreserve(True):
            return None
        else:
            pfn = attempt(WMARK_MIN, alloc_flags)
        if pfn is not None:
            return pfn


class PerCpuPages:
    """struct per_cpu_pages of one CPU: its lists (an OrderedDict per pindex, head first), its
    page count and its tuning state. ``batch``, ``high_min`` and ``high_max`` are the zone's
    (the same on every CPU) and live on ``RefZone``."""

    def __init__(self, cpu, high, flags):
        self.cpu = cpu
        self.lists = [OrderedDict() for _ in range(NR_PCP_LISTS)]
        self.count = 0
        self.high = high
        self.alloc_factor = 0     # 6.7+
        # 6.1 free_factor; free_count under the 6.7+ rules (one counter so the two compare).
        self.free_factor = 0
        self.flags = flags        # 6.7+: PCPF_*


class RefPgdat:
    """The node-level reclaim state of ``struct pglist_data`` (MODEL.md "Reclaim and background
    compaction"), shared by the zones of a node (a lone ``RefZone`` has one of its own):

    * the page cache: clean file blocks on one LRU (the inactive file list), a ring of ``cap``
      slots (as many as the node has pages) at positions ``head .. tail - 1`` counting up; a block
      reclaimed from inside the ring leaves an empty slot, the head moves past empty slots; a full
      ring (``tail - head == cap``) drops its oldest block (freed, not counted as reclaim) before
      an add. ``nr_file`` counts pages (NR_FILE_PAGES).
    * kswapd: ``kswapd_order``, ``kswapd_highest_zoneidx`` (``NO_ZONEIDX`` for MAX_NR_ZONES, none
      recorded), ``kswapd_failures``, ``pending`` (woken and not yet run: kswapd is awake), and
      the index kswapd() keeps in its own ``highest_zoneidx`` between runs.
    * counters: PAGEOUTRUN (balance_pgdat() calls), PGSTEAL_KSWAPD, PGSTEAL_DIRECT (pages).

    With ``kswapd`` off there is no kswapd thread: wakeup_kswapd() records nothing and wakes
    nothing. Without ``pagecache`` add_file() refuses and reclaim finds nothing. kcompactd is
    not modelled: its wakeups are dropped."""

    def __init__(self, zones, nr_pages, kswapd=False, pagecache=False):
        self.zones = zones               # lowest first; the node's list (RefNode.zones) or [zone]
        self.kswapd_enabled = bool(kswapd)
        self.pagecache = bool(pagecache)
        self.lru_cap = int(nr_pages) if pagecache else 0
        self.lru_slot = {}               # ring position -> head pfn of a cached block
        self.lru_pos = {}                # head pfn -> ring position
        self.lru_head = 0
        self.lru_tail = 0
        self.nr_file = 0
        self.kswapd_order = 0
        self.kswapd_highest_zoneidx = NO_ZONEIDX
        self.kswapd_failures = 0
        self.pending = False
        self.kswapd_zoneidx = MAX_NR_ZONES - 1   # kswapd()'s local highest_zoneidx
        self.c = dict.fromkeys(("pageoutrun", "pgsteal_kswapd", "pgsteal_direct"), 0)

    # ------------------------------------------------------------------ zones

    def zone_of(self, pfn):
        for z in self.zones:
            if z.zone_start <= pfn < z.zone_end:
                return z
        return None

    def zones_upto(self, highest_zoneidx):
        """The managed zones of index <= highest_zoneidx, lowest first (managed_zone())."""
        return [z for z in self.zones if z.zone_idx <= highest_zoneidx and z.managed_pages > 0]

    # ------------------------------------------------------------------ the page cache

    def lru_add_file(self, zone, pfn):
        """lru_add_file(): the allocated block at ``pfn`` of ``zone`` joins the LRU tail. False
        without page cache."""
        if pfn not in zone.alloc_order:
            raise ValueError(f"pfn {pfn} is not the head of an allocated block")
        if pfn in self.lru_pos:
            raise ValueError(f"pfn {pfn} is page cache already")
        if not self.pagecache:
            return False
        if self.lru_tail - self.lru_head >= self.lru_cap:
            # a full ring drops its oldest block
            old = self.lru_slot[self.lru_head]
            self._lru_del(old)
            self.zone_of(old)._free_block(old, 0)
        self.lru_slot[self.lru_tail] = pfn
        self.lru_pos[pfn] = self.lru_tail
        self.lru_tail += 1
        self.nr_file += 1 << zone.alloc_order[pfn]
        return True

    def _lru_del(self, pfn):
        pos = self.lru_pos.pop(pfn)
        del self.lru_slot[pos]
        self.nr_file -= 1 << self.zone_of(pfn).alloc_order[pfn]
        while self.lru_head < self.lru_tail and self.lru_head not in self.lru_slot:
            self.lru_head += 1

    def file_pages(self):
        """The heads of the cached blocks, oldest first."""
        return [self.lru_slot[p] for p in range(self.lru_head, self.lru_tail) if p in self.lru_slot]

    def shrink_page_cache(self, reclaim_idx, nr_to_scan, nr_to_reclaim, cpu):
        """shrink_node() on the model's one LRU: from the oldest block, free (the free path on
        ``cpu``) each block of a zone up to ``reclaim_idx``; blocks of zones above it are skipped
        (isolate_lru_folios(): not counted as scanned) and keep their place. Stops once
        ``nr_to_scan`` pages were scanned or ``nr_to_reclaim`` reclaimed (every page scanned is
        clean and reclaimed). Returns the pages reclaimed; progress resets kswapd_failures
        ("A successful direct reclaim run will revive a dormant kswapd")."""
        reclaimed = 0
        pos = self.lru_head
        while pos < self.lru_tail and reclaimed < nr_to_scan and reclaimed < nr_to_reclaim:
            pfn = self.lru_slot.get(pos)
            pos += 1
            if pfn is None:
                continue
            z = self.zone_of(pfn)
            if z.zone_idx > reclaim_idx:
                continue
            order = z.alloc_order[pfn]
            self._lru_del(pfn)
            z._free_block(pfn, cpu)
            reclaimed += 1 << order
        if reclaimed:
            self.kswapd_failures = 0
        return reclaimed

    # ------------------------------------------------------------------ direct reclaim

    def direct_reclaim(self, highest_zoneidx, cpu, order=0):
        """__perform_reclaim() -> try_to_free_pages(): SWAP_CLUSTER_MAX pages of page cache in
        the request's zones (MODEL.md: no priority loop, the oldest eligible pages). For an
        order above PAGE_ALLOC_COSTLY_ORDER, shrink_zones() skips each zone where compaction
        is ready and shrinks the node only if one is not; nothing reclaimed with a ready zone
        is still progress (do_try_to_free_pages() returns 1)."""
        ready = shrink = False
        for z in self.zones_upto(highest_zoneidx):
            if order > PAGE_ALLOC_COSTLY_ORDER and z.compaction_ready(order, highest_zoneidx):
                ready = True
            else:
                shrink = True
        reclaimed = (self.shrink_page_cache(highest_zoneidx, float("inf"), SWAP_CLUSTER_MAX, cpu)
                     if shrink else 0)
        self.c["pgsteal_direct"] += reclaimed
        return reclaimed or int(ready)

    # ------------------------------------------------------------------ kswapd

    def pgdat_balanced(self, order, highest_zoneidx):
        """pgdat_balanced(): some managed zone up to highest_zoneidx, lowest first, passes
        zone_watermark_ok_safe() at its boosted high watermark with lowmem_reserve[highest_zoneidx]
        (alloc_flags 0: no ALLOC_CMA, no reserves); true when there is no such zone. Its
        __zone_watermark_ok() order loops count in ``wmark_orders_scanned`` as any."""
        zones = self.zones_upto(highest_zoneidx)
        if not zones:
            return True
        return any(z._zone_watermark_ok(order, z.high_wmark_pages(), False,
                                        reserve=z.lowmem_reserve[highest_zoneidx])
                   for z in zones)

    def pgdat_watermark_boosted(self, highest_zoneidx):
        return any(z.watermark_boost for z in self.zones_upto(highest_zoneidx))

    def wakeup_kswapd(self, zone, order, highest_zoneidx):
        """wakeup_kswapd(zone, gfp, order, highest_zoneidx): record the order and the index
        (max); unless kswapd is awake already, wake it if the node is not hopeless and either
        unbalanced for the order or boosted (else the kernel would only wake kcompactd)."""
        if not self.kswapd_enabled or zone.managed_pages == 0:
            return
        if self.kswapd_highest_zoneidx == NO_ZONEIDX or self.kswapd_highest_zoneidx < highest_zoneidx:
            self.kswapd_highest_zoneidx = highest_zoneidx
        if self.kswapd_order < order:
            self.kswapd_order = order
        if self.pending:
            return
        if self.kswapd_failures >= MAX_RECLAIM_RETRIES or (
                self.pgdat_balanced(order, highest_zoneidx)
                and not self.pgdat_watermark_boosted(highest_zoneidx)):
            return
        self.pending = True

    def wake_all_kswapds(self, order, zonelist, highest_zoneidx):
        """wake_all_kswapds(): wakeup_kswapd() once for the node, through its first managed zone
        of the zonelist."""
        for z in zonelist:
            if z.managed_pages > 0:
                self.wakeup_kswapd(z, order, highest_zoneidx)
                return

    def _kswapd_highest_zoneidx(self, prev):
        cur = self.kswapd_highest_zoneidx
        return prev if cur == NO_ZONEIDX else cur

    def prepare_kswapd_sleep(self, order, highest_zoneidx):
        """prepare_kswapd_sleep(): a hopeless node, or one balanced for the order."""
        return (self.kswapd_failures >= MAX_RECLAIM_RETRIES
                or self.pgdat_balanced(order, highest_zoneidx))

    def kswapd(self):
        """kswapd() from its wakeup to its next sleep: read and reset the order and index,
        balance_pgdat(), then kswapd_try_to_sleep() (a sequential model has no premature
        wakeup, so its two prepare_kswapd_sleep() tests agree); if the node is neither balanced
        for the order reclaimed for nor hopeless, kswapd does not sleep and balances again.
        Returns False (nothing run) unless kswapd was woken."""
        if not self.pending:
            return False
        self.pending = False
        alloc_order = self.kswapd_order
        hz = self._kswapd_highest_zoneidx(self.kswapd_zoneidx)
        self.kswapd_order = 0
        self.kswapd_highest_zoneidx = NO_ZONEIDX
        while True:
            reclaim_order = self.balance_pgdat(alloc_order, hz)
            if reclaim_order >= alloc_order:
                # the top of kswapd()'s loop: the order and index of later wakeups (none here)
                alloc_order = reclaim_order = self.kswapd_order
                hz = self._kswapd_highest_zoneidx(hz)
            # kswapd_try_to_sleep(): wakeup_kcompactd(alloc_order) before sleeping is dropped
            if self.prepare_kswapd_sleep(reclaim_order, hz):
                break
            alloc_order = self.kswapd_order
            hz = self._kswapd_highest_zoneidx(hz)
            self.kswapd_order = 0
            self.kswapd_highest_zoneidx = NO_ZONEIDX
        self.kswapd_zoneidx = hz
        return True

    def balance_pgdat(self, order, highest_zoneidx):
        """balance_pgdat() on the page cache (MODEL.md's scan counts). Returns sc.order."""
        self.c["pageoutrun"] += 1
        zones = self.zones_upto(highest_zoneidx)
        # Account for the reclaim boost; the zone boost is left in place meanwhile.
        zone_boosts = {id(z): z.watermark_boost for z in zones}
        nr_boost_reclaim = sum(zone_boosts.values())
        boosted = nr_boost_reclaim > 0
        sc_order = order
        sc_nr_reclaimed = 0
        balanced_out = False
        restart = True
        while restart:
            restart = False
            priority = DEF_PRIORITY
            while True:
                raise_priority = True
                balanced = self.pgdat_balanced(sc_order, highest_zoneidx)
                # an imbalanced node ignores the boost and restarts
                if not balanced and nr_boost_reclaim:
                    nr_boost_reclaim = 0
                    restart = True
                    break
                if not nr_boost_reclaim and balanced:
                    balanced_out = True
                    break
                # Limit the priority of boosting to avoid reclaim writeback
                if nr_boost_reclaim and priority == DEF_PRIORITY - 2:
                    raise_priority = False
                # kswapd_shrink_node(): the zones' high watermarks, at least SWAP_CLUSTER_MAX each
                nr_to_reclaim = sum(max(z.high_wmark_pages(), SWAP_CLUSTER_MAX) for z in zones)
                nr_to_scan = max(self.nr_file >> priority, SWAP_CLUSTER_MAX)
                nr_reclaimed = self.shrink_page_cache(highest_zoneidx, nr_to_scan, nr_to_reclaim, 0)
                self.c["pgsteal_kswapd"] += nr_reclaimed
                sc_nr_reclaimed += nr_reclaimed
                if sc_order and sc_nr_reclaimed >= 2 << sc_order:     # compact_gap()
                    sc_order = 0
                if nr_reclaimed >= nr_to_reclaim:
                    raise_priority = False
                nr_boost_reclaim -= min(nr_boost_reclaim, nr_reclaimed)
                # If reclaim made no progress for a boost, stop reclaim
                if nr_boost_reclaim and not nr_reclaimed:
                    break
                if raise_priority or not nr_reclaimed:
                    priority -= 1
                if priority < 1:
                    break
            if balanced_out:
                break
        if not balanced_out and not sc_nr_reclaimed:
            self.kswapd_failures += 1
        # out: if reclaim was boosted, take the boosts this run accounted for off the zones
        if boosted:
            for z in zones:
                if zone_boosts[id(z)]:
                    z.watermark_boost -= min(z.watermark_boost, zone_boosts[id(z)])
            # wakeup_kcompactd(pgdat, pageblock_order, highest_zoneidx): not modelled
        return sc_order

    # ------------------------------------------------------------------ views and invariants

    def reclaim_state(self):
        return {"boost": [z.watermark_boost for z in self.zones],
                "boosted": [z.boosted_watermark for z in self.zones],
                "kswapd_failures": self.kswapd_failures,
                "kswapd_order": self.kswapd_order,
                "kswapd_highest_zoneidx": self.kswapd_highest_zoneidx,
                "nr_file": self.nr_file}

    def reclaim_counters(self):
        out = {"nr_watermark_boosts": sum(z.nr_watermark_boosts for z in self.zones)}
        out.update(self.c)
        return out

    def check(self):
        """The LRU ring's invariants: each cached block an allocated head of its zone, listed
        once, at a position inside the ring; the head on a block; NR_FILE_PAGES its pages."""
        assert len(self.lru_pos) == len(self.lru_slot), "LRU maps disagree"
        assert 0 <= self.lru_tail - self.lru_head <= self.lru_cap, (
            f"LRU ring [{self.lru_head}, {self.lru_tail}) over {self.lru_cap} slots")
        pages = 0
        for pfn, pos in self.lru_pos.items():
            assert self.lru_slot.get(pos) == pfn, f"cached block {pfn} not at its position {pos}"
            assert self.lru_head <= pos < self.lru_tail, f"cached block {pfn} outside the ring"
            z = self.zone_of(pfn)
            assert z is not None and pfn in z.alloc_order, f"cached block {pfn} is not allocated"
            pages += 1 << z.alloc_order[pfn]
        assert pages == self.nr_file, f"nr_file {self.nr_file}, cached pages {pages}"
        assert not self.lru_pos or self.lru_head in self.lru_slot, "the LRU head is an empty slot"
        assert self.pagecache or not self.lru_pos, "page cache without pagecache"
        assert self.kswapd_enabled or (not self.pending and self.kswapd_order == 0
                                       and self.kswapd_highest_zoneidx == NO_ZONEIDX), (
            "kswapd state without kswapd")
        for z in self.zones:
            pb = 1 << z.pageblock_order
            cap = max(pb, mult_frac(z.wmark_high, z.watermark_boost_factor, 10000))
            assert 0 <= z.watermark_boost <= cap, (
                f"watermark_boost {z.watermark_boost} outside [0, {cap}]")


def _geometry(nr_pages, max_order, pageblock_order, policy):
    """The sizes as ints, after the checks every zone and node makes."""
    nr_pages, max_order, pageblock_order = int(nr_pages), int(max_order), int(pageblock_order)
    if policy not in POLICIES:
        raise ValueError(f"unknown policy {policy!r}; expected one of {POLICIES}")
    if nr_pages < 1:
        raise ValueError(f"nr_pages must be >= 1, got {nr_pages}")
    return nr_pages, max_order, pageblock_order


class RefZone:
    """One zone with buddy free lists, pageblock migratetypes and optional per-cpu lists on
    ``nr_cpus`` CPUs, following the policy named by ``policy``.

    The page arrays are indexed by absolute pfn over the node's ``nr_pages`` pfns; the zone owns
    ``[zone_start, zone_end)`` (default: all of them) and is the kernel's zone ``zone_idx``
    (ZONE_NORMAL by default). ``holes`` are the node's. The keywords RefNode passes in:
    ``pageblock_mt``, the node's pageblock types (a list shared by its zones); ``watermarks``,
    (min, low, high) computed over the node instead of for this zone alone; ``lowmem_reserve``,
    the zone's four reserves (default 0). ``watermark_boost_factor`` is vm.watermark_boost_factor
    (0: no boosting); ``kswapd`` and ``pagecache`` switch on kswapd and the page cache of the
    zone's node (``self.pgdat``, a ``RefPgdat``: a lone zone is a node of its own; RefNode gives
    its zones the node's)."""

    def __init__(self, nr_pages, max_order, pageblock_order, policy="v6.15", holes=(), pcp=False,
                 min_free_kbytes=None, nr_cpus=1, zone_start=0, zone_end=None, zone_idx=ZONE_NORMAL,
                 pageblock_mt=None, watermarks=None, lowmem_reserve=None, watermark_boost_factor=0,
                 kswapd=False, pagecache=False):
        nr_pages, max_order, pageblock_order = _geometry(nr_pages, max_order, pageblock_order, policy)
        zone_start = int(zone_start)
        zone_end = nr_pages if zone_end is None else int(zone_end)
        if not 0 <= zone_start < zone_end <= nr_pages:
            raise ValueError(f"zone span [{zone_start}, {zone_end}) is empty or not inside [0, {nr_pages})")
        if isinstance(zone_idx, bool) or zone_idx not in range(MAX_NR_ZONES):
            raise ValueError(f"zone_idx must be one of 0..{MAX_NR_ZONES - 1}, got {zone_idx!r}")
        if not 1 <= pageblock_order <= max_order:
            raise ValueError(f"need 1 <= pageblock_order <= max_order, got {pageblock_order}, {max_order}")
        if isinstance(nr_cpus, bool) or int(nr_cpus) != nr_cpus or not 1 <= nr_cpus <= MAX_CPUS:
            raise ValueError(f"nr_cpus must be an integer in 1..{MAX_CPUS}, got {nr_cpus!r}")
        self.nr_cpus = int(nr_cpus)
        self.nr_pages = nr_pages
        self.zone_start = zone_start
        self.zone_end = zone_end
        self.zone_idx = int(zone_idx)
        self.max_order = max_order
        self.pageblock_order = pageblock_order
        self.policy = policy
        self.hygiene = policy in _HYGIENE
        self.mobility_disabled = policy == "nomobility"
        self.pcp = bool(pcp)

        # PageReserved pages (holes, memblock reservations): never free, never merged across.
        self.reserved = bytearray(nr_pages)
        for start, end in holes:
            start, end = int(start), int(end)
            if not 0 <= start <= end <= nr_pages:
                raise ValueError(f"hole ({start}, {end}) is not inside [0, {nr_pages})")
            self.reserved[start:end] = b"\x01" * (end - start)
        # Holes inside the span are the zone's reserved (present, not managed) pages.
        self.nr_reserved = self.reserved.count(1, zone_start, zone_end)
        self.managed_pages = (zone_end - zone_start) - self.nr_reserved

        # Free blocks: head pfn -> order and -> list migratetype; one OrderedDict per list.
        self.free_area = [[OrderedDict() for _ in range(MIGRATE_TYPES)] for _ in range(max_order + 1)]
        self.nr_free = [0] * (max_order + 1)
        self.free_order = {}
        self.free_mt = {}
        self.nr_free_pages = 0       # NR_FREE_PAGES: every list but ISOLATE
        self.nr_free_cma_pages = 0   # NR_FREE_CMA_PAGES
        self.nr_free_highatomic = 0  # 6.12 zone->nr_free_highatomic: free pages on HIGHATOMIC lists
        self.nr_reserved_highatomic = 0   # zone->nr_reserved_highatomic
        # Pageblocks that have ever been HIGHATOMIC: check() does not require their free blocks
        # to be merged with their buddies above pageblock_order (see check()).
        self.ever_highatomic = set()

        # Allocated blocks: head pfn -> order / requested migratetype / pinned; PageLRU per page.
        self.alloc_order = {}
        self.alloc_mt = {}
        self.alloc_pinned = {}
        self.lru = bytearray(nr_pages)

        boot_mt = UNMOVABLE if self.mobility_disabled else MOVABLE
        self.nr_pageblocks = (nr_pages + (1 << pageblock_order) - 1) >> pageblock_order
        if pageblock_mt is None:
            pageblock_mt = [boot_mt] * self.nr_pageblocks
        elif len(pageblock_mt) != self.nr_pageblocks:
            raise ValueError(f"pageblock_mt has {len(pageblock_mt)} entries for "
                             f"{self.nr_pageblocks} pageblocks")
        self.pageblock_mt = pageblock_mt   # the node's, shared by its zones

        if lowmem_reserve is None:
            lowmem_reserve = [0] * MAX_NR_ZONES
        if len(lowmem_reserve) != MAX_NR_ZONES:
            raise ValueError(f"lowmem_reserve needs {MAX_NR_ZONES} entries, got {len(lowmem_reserve)}")
        self.lowmem_reserve = [int(r) for r in lowmem_reserve]
        if watermarks is None:
            self._setup_per_zone_wmarks(min_free_kbytes)
        else:
            self.min_free_kbytes = None if min_free_kbytes is None else int(min_free_kbytes)
            self.wmark_min, self.wmark_low, self.wmark_high = (int(w) for w in watermarks)

        # Per-cpu lists: one PerCpuPages per CPU; a pcp page -> order / recorded type / list / CPU.
        self.pcp_order = {}
        self.pcp_mt = {}
        self.pcp_pindex = {}
        self.pcp_cpu = {}
        self.pcp_rules = PCP_RULES[policy]
        self.pcp_tuned = self.pcp_rules in ("6.7", "6.16")   # high tuned between high_min/high_max
        self.below_high = 0                # 6.7+: ZONE_BELOW_HIGH, the zone's (shared by the CPUs)
        self.pcp_batch = max(1, self._zone_batchsize())
        flags = 0
        if self.pcp_rules == "5.4":
            # pageset_set_batch(): 6 * batch on every CPU, not split
            self.pcp_high_min = self.pcp_high_max = 6 * self.pcp_batch
        else:
            # zone_highsize(): the low watermark split over the CPUs, at least 4 * batch
            self.pcp_high_min = max(self.wmark_low // self.nr_cpus, self.pcp_batch << 2)
            self.pcp_high_max = self.pcp_high_min
            if self.pcp_tuned:
                # zone_highsize(MIN_PERCPU_PAGELIST_HIGH_FRACTION): managed / 8 over the CPUs
                self.pcp_high_max = max(
                    self.managed_pages // MIN_PERCPU_PAGELIST_HIGH_FRACTION // self.nr_cpus,
                    self.pcp_batch << 2)
                # zone_pcp_update_cacheinfo(): any current x86-64 part
                flags = PCPF_FREE_HIGH_BATCH
        # Every CPU's high starts at high_min (6.1 and 5.4: the fixed high).
        self.pcps = [PerCpuPages(cpu, self.pcp_high_min, flags) for cpu in range(self.nr_cpus)]

        # Watermark boosting (boost_watermark()) and the node's reclaim state.
        factor = int(watermark_boost_factor)
        if factor < 0:
            raise ValueError(f"watermark_boost_factor must be >= 0, got {watermark_boost_factor!r}")
        self.watermark_boost_factor = factor
        self.watermark_boost = 0            # zone->watermark_boost
        self.boosted_watermark = 0          # ZONE_BOOSTED_WATERMARK
        self.nr_watermark_boosts = 0        # boost_watermark() calls that boosted
        self.pgdat = RefPgdat([self], nr_pages, kswapd=kswapd, pagecache=pagecache)

        self.c = dict.fromkeys(COUNTER_NAMES, 0)
        self._memblock_free_all()
        self.c = dict.fromkeys(COUNTER_NAMES, 0)

    # ------------------------------------------------------------------ geometry helpers

    def get_pageblock_migratetype(self, pfn):
        return self.pageblock_mt[pfn >> self.pageblock_order]

    def set_pageblock_migratetype(self, pfn, mt):
        self.pageblock_mt[pfn >> self.pageblock_order] = mt

    def change_pageblock_range(self, pfn, order, mt):
        """Set every pageblock covered by the block ``(pfn, order)``, order >= P."""
        first = pfn >> self.pageblock_order
        for pb in range(first, first + (1 << (order - self.pageblock_order))):
            self.pageblock_mt[pb] = mt

    def _retype_covered_pageblocks(self, pfn, order, mt):
        """Hygiene merge: the model re-types every pageblock the buddy covers (MODEL.md)."""
        first = pfn >> self.pageblock_order
        last = (pfn + (1 << order) - 1) >> self.pageblock_order
        for pb in range(first, last + 1):
            self.pageblock_mt[pb] = mt

    def _is_free_head(self, pfn, order):
        """page_is_buddy(): a free head of exactly ``order`` in this zone."""
        return self.zone_start <= pfn < self.zone_end and self.free_order.get(pfn) == order

    # ------------------------------------------------------------------ free-list primitives

    def _account_freepages(self, nr, mt):
        """account_freepages() (6.12): NR_FREE_PAGES but for ISOLATE, NR_FREE_CMA_PAGES and
        nr_free_highatomic by list type (kept under the 6.1 policies too, as a plain count)."""
        if mt != ISOLATE:
            self.nr_free_pages += nr
        if mt == CMA:
            self.nr_free_cma_pages += nr
        elif mt == HIGHATOMIC:
            self.nr_free_highatomic += nr

    def _add_to_free_list(self, pfn, order, mt, tail):
        lst = self.free_area[order][mt]
        lst[pfn] = None
        if not tail:
            lst.move_to_end(pfn, last=False)
        self.free_order[pfn] = order
        self.free_mt[pfn] = mt
        self.nr_free[order] += 1
        self._account_freepages(1 << order, mt)

    def _del_page_from_free_list(self, pfn):
        order = self.free_order.pop(pfn)
        mt = self.free_mt.pop(pfn)
        del self.free_area[order][mt][pfn]
        self.nr_free[order] -= 1
        self._account_freepages(-(1 << order), mt)
        return order, mt

    def move_to_free_list(self, pfn, new_mt):
        """list_move_tail onto free_list[order][new_mt] (list_move, the head, before 5.10)."""
        order, _ = self._del_page_from_free_list(pfn)
        self._add_to_free_list(pfn, order, new_mt, tail=self.policy != "v5.4")

    def get_page_from_free_area(self, order, mt):
        lst = self.free_area[order][mt]
        return next(iter(lst)) if lst else None

    def free_area_empty(self, order, mt):
        return not self.free_area[order][mt]

    # ------------------------------------------------------------------ boot

    def _memblock_free_all(self):
        """memblock_free_all -> __free_pages_memory -> __free_pages_core for every hole-free
        range of the zone's span: largest naturally aligned chunks, FPI_TO_TAIL except on v5.4."""
        to_tail = self.policy != "v5.4"
        n = self.zone_end
        pfn = self.zone_start
        while pfn < n:
            if self.reserved[pfn]:
                pfn = self.reserved.find(0, pfn, n)
                if pfn < 0:
                    break
                continue
            end = self.reserved.find(1, pfn, n)
            if end < 0:
                end = n
            self._free_pages_memory(pfn, end, to_tail)
            pfn = end

    def _free_pages_memory(self, start, end, to_tail):
        pfn = start
        while pfn < end:
            order = self.max_order if pfn == 0 else min(self.max_order, (pfn & -pfn).bit_length() - 1)
            while pfn + (1 << order) > end:
                order -= 1
            self.free_one_page(pfn, order, to_tail)
            pfn += 1 << order

    # ------------------------------------------------------------------ watermarks, pcp sizing

    def _setup_per_zone_wmarks(self, min_free_kbytes):
        """calculate_min_free_kbytes + __setup_per_zone_wmarks for a node of this zone alone (its
        managed pages are all of lowmem, so it gets all of pages_min)."""
        if min_free_kbytes is None:
            min_free_kbytes = min_free_kbytes_of(self.managed_pages)
        self.min_free_kbytes = int(min_free_kbytes)
        self.wmark_min = self.min_free_kbytes >> 2
        d = max(self.wmark_min >> 2, self.managed_pages * WATERMARK_SCALE_FACTOR // 10000)
        self.wmark_low = self.wmark_min + d
        self.wmark_high = self.wmark_low + d

    def _zone_batchsize(self):
        batch = min(self.managed_pages >> 10, 256) // 4
        if batch < 1:
            batch = 1
        return rounddown_pow_of_two(batch + batch // 2) - 1

    def wmark_pages(self, wmark):
        """wmark_pages(): ``_watermark[wmark] + watermark_boost``."""
        return (self.wmark_min, self.wmark_low, self.wmark_high)[wmark] + self.watermark_boost

    def high_wmark_pages(self):
        return self.wmark_pages(WMARK_HIGH)

    def fragmentation_index(self, order):
        """__fragmentation_index() in thousandths (-1000: a free block of the order exists)."""
        blocks = [self.nr_free[o] for o in range(self.max_order + 1)]
        total = sum(blocks)
        if total == 0:
            return 0
        free_pages = sum(n << o for o, n in enumerate(blocks))
        if any(blocks[o] for o in range(order, self.max_order + 1)):
            return -1000
        return 1000 - (1000 + free_pages * 1000 // (1 << order)) // total

    def compaction_ready(self, order, highest_zoneidx):
        """compaction_ready() of mm/vmscan.c: the order allocatable at the min watermark, or
        compaction suitable (__compaction_suitable(): order-0 at the low watermark plus
        compact_gap(), ALLOC_CMA, and a fragmentation index above vm.extfrag_threshold 500) and
        the zone above high + compact_gap(); all with lowmem_reserve[highest_zoneidx]."""
        reserve = self.lowmem_reserve[highest_zoneidx]
        gap = 2 << order
        if self._zone_watermark_ok(order, self.wmark_pages(WMARK_MIN), False, reserve=reserve):
            return True
        if not self._zone_watermark_ok(0, self.wmark_pages(WMARK_LOW) + gap, True, reserve=reserve):
            return False
        if 0 <= self.fragmentation_index(order) <= 500:
            return False
        return self._zone_watermark_ok(0, self.high_wmark_pages() + gap, False, reserve=reserve)

    def boost_watermark(self):
        """boost_watermark() of 6.12 (every policy, MODEL.md), then, as every request of the
        model has ALLOC_KSWAPD, ZONE_BOOSTED_WATERMARK when it boosted. Not with the factor 0,
        nor in a zone of fewer than 4 pageblocks of managed pages, nor while ``mult_frac(high,
        factor, 10000)`` is 0; else the boost grows by a pageblock up to ``max(pageblock,
        mult_frac(...))``. Returns whether it boosted (the boost may already be at its cap)."""
        if not self.watermark_boost_factor:
            return False
        pb = 1 << self.pageblock_order
        # Don't bother in zones that are unlikely to produce results.
        if pb * 4 > self.managed_pages:
            return False
        max_boost = mult_frac(self.wmark_high, self.watermark_boost_factor, 10000)
        if not max_boost:
            return False
        max_boost = max(pb, max_boost)
        self.watermark_boost = min(self.watermark_boost + pb, max_boost)
        self.nr_watermark_boosts += 1
        self.boosted_watermark = 1
        return True

    # ------------------------------------------------------------------ allocation

    def _cpu_pcp(self, cpu):
        """The PerCpuPages of ``cpu`` (ValueError outside 0..nr_cpus-1)."""
        if isinstance(cpu, bool) or int(cpu) != cpu or not 0 <= cpu < self.nr_cpus:
            raise ValueError(f"cpu must be an integer in 0..{self.nr_cpus - 1}, got {cpu!r}")
        return self.pcps[int(cpu)]

    @property
    def pcp_count(self):
        """Pages on the pcp lists of every CPU (the zone's NR_PCP count)."""
        return sum(pcp.count for pcp in self.pcps)

    def _check_request(self, order, mt):
        order = int(order)
        mt = int(mt)
        if not 0 <= order <= self.max_order:
            raise ValueError(f"order {order} outside [0, {self.max_order}]")
        if mt not in FALLBACKS:
            raise ValueError(f"allocation migratetype must be UNMOVABLE, MOVABLE or RECLAIMABLE, got {mt}")
        return order, mt

    def alloc(self, order, mt, pinned=False, cpu=0, atomic=False):
        """__alloc_pages for one zone without compaction, running on ``cpu``: fast path at the
        low watermark; then the slow path: wake_all_kswapds(), the attempt at the min watermark
        with gfp_to_alloc_flags()'s reserve flags (``atomic``: GFP_ATOMIC), direct reclaim for a
        non-atomic request (see _slow_path()); then, for a non-atomic request of order <=
        PAGE_ALLOC_COSTLY_ORDER, unreserve_highatomic_pageblock(force) and the min attempt again
        while it unreserves a block. Returns the pfn or -1."""
        pcp = self._cpu_pcp(cpu)
        order, mt = self._check_request(order, mt)
        atomic = bool(atomic)
        self.c["alloc_ops"] += 1
        # gfp_migratetype(): everything is UNMOVABLE with grouping by mobility disabled.
        list_mt = UNMOVABLE if self.mobility_disabled else mt
        alloc_cma = list_mt == MOVABLE
        highest_zoneidx = gfp_zone(mt)

        def attempt(wmark, alloc_flags):
            return self.try_this_zone(pcp, order, mt, list_mt, alloc_cma, pinned, wmark,
                                      highest_zoneidx, nofragment=False, alloc_flags=alloc_flags)

        pfn = attempt(WMARK_LOW, 0)
        if pfn is None:
            pgdat = self.pgdat
            # if (alloc_flags & ALLOC_KSWAPD) wake_all_kswapds(order, gfp_mask, ac)
            pgdat.wake_all_kswapds(order, [self], highest_zoneidx)
            pfn = _slow_path(attempt, order, atomic,
                             lambda force: self.unreserve_highatomic_pageblock(list_mt, force),
                             lambda: pgdat.direct_reclaim(highest_zoneidx, cpu, order),
                             lambda flags: self.has_free_block(order, alloc_cma, flags),
                             self.drain)
        if pfn is not None:
            return pfn
        self.c["alloc_fail"] += 1
        return -1

    def has_free_block(self, order, alloc_cma, alloc_flags):
        """A free block of ``order`` or more on a list the request may use (__zone_watermark_ok()'s
        order loop: U, M, R, CMA with ALLOC_CMA, HIGHATOMIC with ALLOC_HIGHATOMIC): MODEL.md's
        stand-in for should_reclaim_retry()'s watermark test, without its free-page test. The
        orders it probes count in ``wmark_orders_scanned`` as that loop's do."""
        return self._zone_watermark_ok(order, -(1 << 62), alloc_cma, alloc_flags=alloc_flags)

    def try_this_zone(self, pcp, order, mt, list_mt, alloc_cma, pinned, wmark, highest_zoneidx,
                      nofragment, alloc_flags=0):
        """One zone of get_page_from_freelist()'s zonelist walk at watermark ``wmark``
        (WMARK_LOW or WMARK_MIN) on the CPU whose PerCpuPages is ``pcp``: the watermark test
        with ``lowmem_reserve[highest_zoneidx]`` and the reserve flags ``alloc_flags``
        (ALLOC_MIN_RESERVE, ALLOC_NON_BLOCK, ALLOC_HIGHATOMIC), then rmqueue() with
        ALLOC_NOFRAGMENT if ``nofragment``; after a success with ALLOC_HIGHATOMIC,
        reserve_highatomic_pageblock(). Returns the pfn, or None to go on to the next zone."""
        reserve = self.lowmem_reserve[highest_zoneidx]
        mark = self.wmark_pages(wmark)      # boosted
        # get_page_from_freelist() (6.7+): unless the zone is already below its high
        # watermark, check the (boosted) high watermark for this request first: pass ->
        # try_this_zone (the zone's own, lower, watermark is not checked), fail -> set
        # ZONE_BELOW_HIGH and go on to check_alloc_wmark. Both tests are zone_watermark_fast()
        # with the request's alloc_flags (so both have its order-0 __GFP_HIGH exception).
        if self.pcp and self.pcp_tuned and not self.below_high:
            if self.zone_watermark_fast(order, self.high_wmark_pages(), alloc_cma, reserve,
                                        alloc_flags, wmark):
                mark = None
            else:
                self.below_high = 1
        if mark is not None and not self.zone_watermark_fast(order, mark, alloc_cma, reserve,
                                                             alloc_flags, wmark):
            return None
        pfn = self.rmqueue(pcp, order, list_mt, alloc_cma, nofragment, alloc_flags)
        if pfn is None:
            return None
        self._prep_new_page(pfn, order, mt, pinned)
        # If this is a high-order atomic allocation then check if the pageblock should be
        # reserved for the future.
        if alloc_flags & ALLOC_HIGHATOMIC:
            self.reserve_highatomic_pageblock(pfn, order)
        return pfn

    def zone_watermark_fast(self, order, mark, alloc_cma, reserve, alloc_flags, wmark):
        """zone_watermark_fast() (its order-0 shortcut gives __zone_watermark_ok()'s answer):
        when the test fails for an order-0 ALLOC_MIN_RESERVE (__GFP_HIGH) request at the min
        watermark (``wmark``: the attempt's ALLOC_WMARK_*) of a boosted zone, the test again at
        the unboosted ``_watermark[WMARK_MIN]``, whatever ``mark`` was."""
        if self._zone_watermark_ok(order, mark, alloc_cma, reserve=reserve, alloc_flags=alloc_flags):
            return True
        if (order == 0 and alloc_flags & ALLOC_MIN_RESERVE and self.watermark_boost
                and wmark == WMARK_MIN):
            return self._zone_watermark_ok(0, self.wmark_min, alloc_cma, reserve=reserve,
                                           alloc_flags=alloc_flags)
        return False

    def _prep_new_page(self, pfn, order, mt, pinned):
        self.alloc_order[pfn] = order
        self.alloc_mt[pfn] = mt
        self.alloc_pinned[pfn] = bool(pinned)
        if mt == MOVABLE:
            self.lru[pfn:pfn + (1 << order)] = b"\x01" * (1 << order)
        self.c["pgalloc"] += 1 << order

    def _zone_watermark_ok(self, order, mark, alloc_cma, count=True, reserve=0, alloc_flags=0):
        """__zone_watermark_ok with ``reserve`` the zone's lowmem_reserve[highest_zoneidx] and
        ``alloc_flags`` the request's reserve flags; zone_watermark_fast()'s order-0 shortcut
        gives the same answer. Every order its loop visits adds to ``wmark_orders_scanned``
        unless ``count`` is false."""
        # __zone_watermark_unusable_free(): without rights to the reserves, the free pages
        # reserved for highatomic are unusable: 6.12 nr_free_highatomic, 6.1 (and 5.4) the whole
        # nr_reserved_highatomic.
        free = self.nr_free_pages - ((1 << order) - 1)
        if not alloc_flags & ALLOC_RESERVES:
            free -= self.nr_free_highatomic if self.hygiene else self.nr_reserved_highatomic
        if not alloc_cma:
            free -= self.nr_free_cma_pages
        wmin = mark
        if alloc_flags & ALLOC_RESERVES:
            # __GFP_HIGH allows access to 50% of the min reserve; non-blocking allocations
            # (GFP_ATOMIC) to a quarter more.
            if alloc_flags & ALLOC_MIN_RESERVE:
                wmin -= wmin // 2
                if alloc_flags & ALLOC_NON_BLOCK:
                    wmin -= wmin // 4
            if alloc_flags & ALLOC_OOM:
                wmin -= wmin // 2
        if free <= wmin + reserve:
            return False
        if order == 0:
            return True
        for o in range(order, self.max_order + 1):
            if count:
                self.c["wmark_orders_scanned"] += 1
            if self.nr_free[o] == 0:
                continue
            for mt in range(MIGRATE_PCPTYPES):
                if not self.free_area_empty(o, mt):
                    return True
            if alloc_cma and not self.free_area_empty(o, CMA):
                return True
            if alloc_flags & (ALLOC_HIGHATOMIC | ALLOC_OOM) and not self.free_area_empty(o, HIGHATOMIC):
                return True
        return False

    def _pcp_allowed_order(self, order):
        if self.policy == "v5.4":          # high-order pcp lists arrived in 5.13
            return order == 0
        return order <= PAGE_ALLOC_COSTLY_ORDER or order == self._thp_order()

    def _thp_order(self):
        """The THP pcp order: pageblock_order in 6.1, HPAGE_PMD_ORDER from 6.10."""
        return self.pageblock_order if self.policy == "v6.1" else HPAGE_PMD_ORDER

    def rmqueue(self, pcp, order, mt, alloc_cma, nofragment=False, alloc_flags=0):
        """rmqueue() on the CPU whose PerCpuPages is ``pcp``; ``nofragment``: ALLOC_NOFRAGMENT;
        ``alloc_flags``: the reserve flags rmqueue_buddy() reads. At its end (``out:``, with a
        page or without), a request with ALLOC_KSWAPD (every one here) clears
        ZONE_BOOSTED_WATERMARK and calls wakeup_kswapd(zone, 0, 0, zone_idx(zone))."""
        pfn = None
        if self.pcp and self._pcp_allowed_order(order):
            pfn = self._rmqueue_pcplist(pcp, order, mt, alloc_cma, nofragment)
        if pfn is None:
            pfn = self.rmqueue_buddy(order, mt, alloc_cma, nofragment, alloc_flags)
        if self.boosted_watermark:
            self.boosted_watermark = 0
            self.pgdat.wakeup_kswapd(self, 0, self.zone_idx)
        return pfn

    def rmqueue_buddy(self, order, mt, alloc_cma, nofragment=False, alloc_flags=0):
        """rmqueue_buddy(): with ALLOC_HIGHATOMIC the HIGHATOMIC lists first; if __rmqueue()
        fails, ALLOC_OOM and ALLOC_NON_BLOCK (order-0 atomic) requests may take from them."""
        got = None
        if alloc_flags & ALLOC_HIGHATOMIC:
            got = self._rmqueue_smallest(order, HIGHATOMIC)
        if got is None:
            got = self._rmqueue(order, mt, alloc_cma, [RMQUEUE_NORMAL], nofragment)
            if got is None and alloc_flags & (ALLOC_OOM | ALLOC_NON_BLOCK):
                got = self._rmqueue_smallest(order, HIGHATOMIC)
        return None if got is None else got[0]

    def _rmqueue(self, order, mt, alloc_cma, mode, nofragment=False):
        """__rmqueue. Returns (pfn, migratetype of the split that produced it) or None.
        ``mode`` is a one-element list holding the sticky rmqueue_mode (policy D only).
        ``nofragment`` (ALLOC_NOFRAGMENT): the fallbacks take only blocks of pageblock_order or
        more for a smaller request, and policy D does not steal."""
        # Balance movable allocations between regular and CMA areas.
        if (alloc_cma and self.policy != "v5.4"
                and self.nr_free_cma_pages > self.nr_free_pages // 2):
            got = self._rmqueue_smallest(order, CMA)
            if got is not None:
                return got

        if self.policy in _FALLBACK_A:
            while True:
                got = self._rmqueue_smallest(order, mt)
                if got is not None:
                    return got
                if alloc_cma:
                    got = self._rmqueue_smallest(order, CMA)
                    if got is not None:
                        return got
                if not self._rmqueue_fallback(order, mt, nofragment):
                    return None

        if self.policy in _FALLBACK_B:
            got = self._rmqueue_smallest(order, mt)
            if got is None and alloc_cma:
                got = self._rmqueue_smallest(order, CMA)
            if got is None:
                got = self._rmqueue_fallback(order, mt, nofragment)
            return got

        # Variant D: fall through NORMAL -> CMA -> CLAIM -> STEAL from the current mode.
        assert self.policy in _FALLBACK_D
        m = mode[0]
        if m == RMQUEUE_NORMAL:
            got = self._rmqueue_smallest(order, mt)
            if got is not None:
                return got
            m = RMQUEUE_CMA
        if m == RMQUEUE_CMA:
            if alloc_cma:
                got = self._rmqueue_smallest(order, CMA)
                if got is not None:
                    mode[0] = RMQUEUE_CMA
                    return got
            m = RMQUEUE_CLAIM
        if m == RMQUEUE_CLAIM:
            got = self._rmqueue_claim(order, mt, nofragment)
            if got is not None:
                mode[0] = RMQUEUE_NORMAL
                return got
        # case RMQUEUE_STEAL: if (!(alloc_flags & ALLOC_NOFRAGMENT)) __rmqueue_steal()
        if nofragment:
            return None
        got = self._rmqueue_steal(order, mt)
        if got is not None:
            mode[0] = RMQUEUE_STEAL
        return got

    def _rmqueue_smallest(self, order, mt):
        """__rmqueue_smallest: the head of the first non-empty free_list[o][mt], o >= order."""
        for o in range(order, self.max_order + 1):
            self.c["orders_scanned"] += 1
            pfn = self.get_page_from_free_area(o, mt)
            if pfn is None:
                continue
            self._del_page_from_free_list(pfn)
            self.expand(pfn, order, o, mt)
            return pfn, mt
        return None

    def expand(self, pfn, low, high, mt):
        """expand(): the upper half of each split goes to the head of free_list[high][mt]."""
        while high > low:
            high -= 1
            self._add_to_free_list(pfn + (1 << high), high, mt, tail=False)
            self.c["split_steps"] += 1

    # ------------------------------------------------------------------ fallback helpers

    def can_steal_fallback(self, order, start_mt):
        """can_steal_fallback (A, B) == should_try_claim_block (D); ``order`` is the buddy's."""
        if order >= self.pageblock_order:
            return True
        if order >= self.pageblock_order // 2 or start_mt in (RECLAIMABLE, UNMOVABLE):
            return True
        return self.mobility_disabled

    should_try_claim_block = can_steal_fallback

    def find_suitable_fallback(self, order, start_mt):
        """Returns the first fallback type with a non-empty list at ``order``, or -1."""
        if self.nr_free[order] == 0:
            return -1
        for fb in FALLBACKS[start_mt]:
            if not self.free_area_empty(order, fb):
                return fb
        return -1

    def _pageblock_span(self, pfn):
        start = pfn & ~((1 << self.pageblock_order) - 1)
        return start, start + (1 << self.pageblock_order)

    def prep_move_freepages_block(self, pfn):
        """Count the free pages (by buddy heads) and PageLRU pages of pfn's pageblock.
        Returns (start, free heads in pfn order, nr_free, nr_movable), or None if the
        pageblock is not wholly inside the zone."""
        start, end = self._pageblock_span(pfn)
        # zone_spans_pfn(zone, start) && zone_spans_pfn(zone, end - 1)
        if start < self.zone_start or end > self.zone_end:
            return None
        heads = []
        free = 0
        p = start
        while p < end:
            o = self.free_order.get(p)
            if o is not None:
                heads.append(p)
                free += 1 << o
                p += 1 << o
                continue
            o = self.alloc_order.get(p)
            if o is None:
                o = self.pcp_order.get(p)
            p += 1 if o is None else 1 << o
        movable = self.lru.count(1, start, end)
        return start, heads, free, movable

    def _alike_pages(self, start_mt, block_mt, free, movable):
        if start_mt == MOVABLE:
            return movable
        if block_mt == MOVABLE:
            return (1 << self.pageblock_order) - (free + movable)
        return 0

    def _claim_threshold_met(self, free, alike):
        return free + alike >= (1 << (self.pageblock_order - 1)) or self.mobility_disabled

    def move_freepages_block(self, heads, new_mt):
        """Move each free head (ascending pfn) to the tail of free_list[its order][new_mt]."""
        for p in heads:
            self.move_to_free_list(p, new_mt)

    # ------------------------------------------------------------------ fallback A and B

    def _rmqueue_fallback(self, order, start_mt, nofragment=False):
        """__rmqueue_fallback of v5.4-v6.13: top-down search for the largest fallback buddy,
        bottom-up instead for small movable requests that may not steal the block. With
        ALLOC_NOFRAGMENT and ``order < P`` the top-down search stops at P (``min_order``);
        find_smallest is unchanged (it cannot be reached then: orders >= P may always steal).
        A: returns True after stealing (the caller retries __rmqueue_smallest).
        B: returns (pfn, split type) or None."""
        found = None
        min_order = self._nofragment_min_order(order, nofragment)
        for o in range(self.max_order, min_order - 1, -1):
            self.c["orders_scanned"] += 1
            fb = self.find_suitable_fallback(o, start_mt)
            if fb == -1:
                continue
            can_steal = self.can_steal_fallback(o, start_mt)
            if not can_steal and start_mt == MOVABLE and o > order:
                break   # find_smallest
            found = (o, fb, can_steal)
            break
        else:
            return False if self.policy in _FALLBACK_A else None
        if found is None:
            for o in range(order, self.max_order + 1):
                self.c["orders_scanned"] += 1
                fb = self.find_suitable_fallback(o, start_mt)
                if fb != -1:
                    found = (o, fb, self.can_steal_fallback(o, start_mt))
                    break
            assert found is not None, "find_smallest found no fallback the top-down scan had seen"
        o, fb, can_steal = found
        pfn = self.get_page_from_free_area(o, fb)
        if self.policy in _FALLBACK_A:
            self.steal_suitable_fallback(pfn, o, start_mt, can_steal)
            return True
        return self._steal_suitable_fallback_hygiene(pfn, o, order, start_mt, can_steal)

    def steal_suitable_fallback(self, pfn, current_order, start_mt, whole_block):
        """steal_suitable_fallback, v5.4-v6.9 (variant A): moves whole buddies or the whole
        pageblock's free pages to start_mt's lists before deciding whether to claim."""
        old_mt = self.get_pageblock_migratetype(pfn)
        if old_mt != HIGHATOMIC:
            if current_order >= self.pageblock_order:
                self.change_pageblock_range(pfn, current_order, start_mt)
                self.c["fallback_claim"] += 1
                self.move_to_free_list(pfn, start_mt)
                return
            # Boost watermarks to increase reclaim pressure (before the whole_block test)
            self.boost_watermark()
            if whole_block:
                prep = self.prep_move_freepages_block(pfn)
                if prep is not None:
                    _, heads, free, movable = prep
                    self.move_freepages_block(heads, start_mt)
                    alike = self._alike_pages(start_mt, old_mt, free, movable)
                    if self._claim_threshold_met(free, alike):
                        self.set_pageblock_migratetype(pfn, start_mt)
                        self.c["fallback_claim"] += 1
                    else:
                        # Free pages now sit on start_mt lists in a block of another type.
                        self.c["fallback_steal"] += 1
                    return
        # single_page
        self.move_to_free_list(pfn, start_mt)
        self.c["fallback_steal"] += 1

    def _steal_suitable_fallback_hygiene(self, pfn, current_order, order, start_mt, whole_block):
        """steal_suitable_fallback, v6.10 (variant B): claim the whole block, or take only
        the requested chunk and leave the remainders on the block's own type."""
        block_mt = self.get_pageblock_migratetype(pfn)
        if block_mt != HIGHATOMIC:
            if current_order >= self.pageblock_order:
                self._del_page_from_free_list(pfn)
                self.change_pageblock_range(pfn, current_order, start_mt)
                self.expand(pfn, order, current_order, start_mt)
                self.c["fallback_claim"] += 1
                return pfn, start_mt
            # Boost watermarks to increase reclaim pressure (before the whole_block test)
            self.boost_watermark()
            if whole_block:
                prep = self.prep_move_freepages_block(pfn)
                if prep is not None:
                    start, heads, free, movable = prep
                    alike = self._alike_pages(start_mt, block_mt, free, movable)
                    if self._claim_threshold_met(free, alike):
                        self.move_freepages_block(heads, start_mt)
                        self.set_pageblock_migratetype(start, start_mt)
                        self.c["fallback_claim"] += 1
                        return self._rmqueue_smallest(order, start_mt)
        # single_page: page_del_and_expand onto the block's type
        self._del_page_from_free_list(pfn)
        self.expand(pfn, order, current_order, block_mt)
        self.c["fallback_steal"] += 1
        return pfn, block_mt

    # ------------------------------------------------------------------ fallback D

    def _nofragment_min_order(self, order, nofragment):
        """``min_order`` of __rmqueue_fallback / __rmqueue_claim: ``if (order < pageblock_order
        && alloc_flags & ALLOC_NOFRAGMENT) min_order = pageblock_order;``"""
        if nofragment and order < self.pageblock_order:
            return self.pageblock_order
        return order

    def _rmqueue_claim(self, order, start_mt, nofragment=False):
        """__rmqueue_claim (v6.15, v6.16): top-down to ``min_order``; try to claim a whole
        pageblock. At an order too low to claim, v6.16 stops; v6.15 stops only if that order has
        a fallback block and goes on to the next order if not."""
        min_order = self._nofragment_min_order(order, nofragment)
        for o in range(self.max_order, min_order - 1, -1):
            self.c["orders_scanned"] += 1
            may_claim = self.should_try_claim_block(o, start_mt)
            if self.policy in ("v6.16", "v6.17") and not may_claim:
                break
            fb = self.find_suitable_fallback(o, start_mt)
            if fb == -1:
                continue
            if not may_claim:
                break
            pfn = self.get_page_from_free_area(o, fb)
            got = self.try_to_claim_block(pfn, o, order, start_mt, fb)
            if got is not None:
                return got
        return None

    def try_to_claim_block(self, pfn, current_order, order, start_mt, block_mt):
        if current_order >= self.pageblock_order:
            self._del_page_from_free_list(pfn)
            self.change_pageblock_range(pfn, current_order, start_mt)
            self.expand(pfn, order, current_order, start_mt)
            self.c["fallback_claim"] += 1
            return pfn, start_mt
        # Boost watermarks to increase reclaim pressure, before the block is looked at
        self.boost_watermark()
        prep = self.prep_move_freepages_block(pfn)
        if prep is None:
            return None
        start, heads, free, movable = prep
        alike = self._alike_pages(start_mt, block_mt, free, movable)
        if not self._claim_threshold_met(free, alike):
            return None
        self.move_freepages_block(heads, start_mt)
        self.set_pageblock_migratetype(start, start_mt)
        self.c["fallback_claim"] += 1
        return self._rmqueue_smallest(order, start_mt)

    def _rmqueue_steal(self, order, start_mt):
        """__rmqueue_steal (v6.15): bottom-up; take the smallest fallback buddy, remainders
        stay on the fallback type's lists."""
        for o in range(order, self.max_order + 1):
            self.c["orders_scanned"] += 1
            fb = self.find_suitable_fallback(o, start_mt)
            if fb == -1:
                continue
            pfn = self.get_page_from_free_area(o, fb)
            self._del_page_from_free_list(pfn)
            self.expand(pfn, order, o, fb)
            self.c["fallback_steal"] += 1
            return pfn, fb
        return None

    # ------------------------------------------------------------------ highatomic reserve

    def reserve_highatomic_pageblock(self, pfn, order):
        """reserve_highatomic_pageblock() after an ALLOC_HIGHATOMIC allocation of ``(pfn,
        order)``: 6.12's for the hygiene policies, 6.1's for v5.4 and v6.1."""
        pb = 1 << self.pageblock_order
        managed = self.managed_pages
        if self.hygiene:
            # The number reserved: minimum 1 pageblock, maximum roughly 1% of the zone; none
            # if 1% of the zone is below a pageblock.
            if managed // 100 < pb:
                return
            max_managed = (managed // 100 + pb - 1) // pb * pb     # ALIGN(managed / 100, pb)
        else:
            # Limit the number reserved to 1 pageblock or roughly 1% of a zone.
            max_managed = managed // 100 + pb
        if self.nr_reserved_highatomic >= max_managed:
            return
        mt = self.get_pageblock_migratetype(pfn)
        # Only reserve normal pageblocks (i.e., they can merge with others).
        if not migratetype_is_mergeable(mt):
            return
        if self.hygiene:
            if order < self.pageblock_order:
                # move_freepages_block() == -1: the pageblock is not wholly in the zone
                if self._move_freepages_block(pfn, HIGHATOMIC) < 0:
                    return
                self.nr_reserved_highatomic += pb
            else:
                self.change_pageblock_range(pfn, order, HIGHATOMIC)
                self.nr_reserved_highatomic += 1 << order
                self._note_highatomic(pfn, order)
        else:
            # 6.1: the page's (first) pageblock only, whatever the order
            self.nr_reserved_highatomic += pb
            self.set_pageblock_migratetype(pfn, HIGHATOMIC)
            self._move_freepages_block_v61(pfn, HIGHATOMIC)
            self._note_highatomic(pfn, 0)

    def unreserve_highatomic_pageblock(self, mt, force):
        """unreserve_highatomic_pageblock() for this zone of the request's zonelist: convert the
        pageblock of the first free HIGHATOMIC page (lowest order, list head) to ``mt``
        (ac->migratetype, i.e. gfp_migratetype()). Without ``force`` a zone keeps its last
        pageblock. Returns True when a block was converted (the kernel's ``ret``)."""
        pb = 1 << self.pageblock_order
        P = self.pageblock_order
        if not force and self.nr_reserved_highatomic <= pb:
            return False
        for order in range(self.max_order + 1):
            pfn = self.get_page_from_free_area(order, HIGHATOMIC)
            if pfn is None:
                continue
            block_mt = self.get_pageblock_migratetype(pfn)
            if self.hygiene:
                # 6.12: adjust the count once per pageblock(s), never below zero
                if block_mt == HIGHATOMIC:
                    size = min(max(pb, 1 << order), self.nr_reserved_highatomic)
                    self.nr_reserved_highatomic -= size
                if order < P:
                    ret = self._move_freepages_block(pfn, mt)
                else:
                    self.move_to_free_list(pfn, mt)
                    self.change_pageblock_range(pfn, order, mt)
                    ret = 1
                if ret > 0:
                    return True
            else:
                # 6.1: set the page's pageblock type, then move its free pages
                if block_mt == HIGHATOMIC:
                    self.nr_reserved_highatomic -= min(pb, self.nr_reserved_highatomic)
                self.set_pageblock_migratetype(pfn, mt)
                if self._move_freepages_block_v61(pfn, mt):
                    return True
        return False

    def _note_highatomic(self, pfn, order):
        """Remember the pageblocks of ``(pfn, order)`` as having been HIGHATOMIC (check())."""
        first = pfn >> self.pageblock_order
        last = (pfn + (1 << order) - 1) >> self.pageblock_order
        self.ever_highatomic.update(range(first, last + 1))

    def _move_freepages_block(self, pfn, new_mt):
        """6.12's move_freepages_block(): every free page of pfn's pageblock to the tail of
        new_mt's lists (pfn order), then the pageblock's type. Returns the pages moved, or -1
        (nothing done) if the pageblock is not wholly inside the zone."""
        prep = self.prep_move_freepages_block(pfn)
        if prep is None:
            return -1
        start, heads, free, _ = prep
        self.move_freepages_block(heads, new_mt)
        self.set_pageblock_migratetype(start, new_mt)
        if new_mt == HIGHATOMIC:
            self._note_highatomic(start, 0)
        return free

    def _move_freepages_block_v61(self, pfn, new_mt):
        """6.1's move_freepages_block(zone, page, new_mt, NULL): the free pages from the
        pageblock's start (from ``pfn`` if the start is outside the zone; nothing if its end is)
        to its end, each to the tail of new_mt's lists (the head under v5.4); the pageblock
        type is the caller's. Returns the pages moved."""
        start, end = self._pageblock_span(pfn)
        if not self.zone_start <= start < self.zone_end:
            start = pfn
        if not self.zone_start <= end - 1 < self.zone_end:
            return 0
        moved = 0
        p = start
        while p < end:
            o = self.free_order.get(p)
            if o is None:
                p += 1
                continue
            self.move_to_free_list(p, new_mt)
            moved += 1 << o
            p += 1 << o
        return moved

    # ------------------------------------------------------------------ per-cpu lists
    # Every function below works on one CPU's ``struct per_cpu_pages`` (``pcp``), as the
    # kernel's do; batch, high_min, high_max and ZONE_BELOW_HIGH are the zone's.

    def order_to_pindex(self, order, mt):
        if order > PAGE_ALLOC_COSTLY_ORDER:
            return NR_LOWORDER_PCP_LISTS + (1 if mt == MOVABLE else 0)
        return order * MIGRATE_PCPTYPES + mt

    def pindex_to_order(self, pindex):
        if pindex >= NR_LOWORDER_PCP_LISTS:
            return self._thp_order()
        return pindex // MIGRATE_PCPTYPES

    def _pcp_add(self, pcp, pfn, order, mt_recorded, pindex, tail):
        lst = pcp.lists[pindex]
        lst[pfn] = None
        if not tail:
            lst.move_to_end(pfn, last=False)
        self.pcp_order[pfn] = order
        self.pcp_mt[pfn] = mt_recorded
        self.pcp_pindex[pfn] = pindex
        self.pcp_cpu[pfn] = pcp.cpu
        pcp.count += 1 << order

    def _pcp_del(self, pcp, pfn):
        order = self.pcp_order.pop(pfn)
        mt = self.pcp_mt.pop(pfn)
        pindex = self.pcp_pindex.pop(pfn)
        cpu = self.pcp_cpu.pop(pfn)
        assert cpu == pcp.cpu, f"pcp page {pfn} of CPU {cpu} taken from CPU {pcp.cpu}'s lists"
        del pcp.lists[pindex][pfn]
        pcp.count -= 1 << order
        return order, mt

    def _rmqueue_pcplist(self, pcp, order, mt, alloc_cma, nofragment=False):
        """rmqueue_pcplist + __rmqueue_pcplist: refill an empty list with rmqueue_bulk
        (nr_pcp_alloc() pages under the 6.7+ rules), take the head."""
        # On allocation, reduce the number of pages batch freed (6.1 free_factor, 6.7+ free_count;
        # 5.4 has neither and the counter stays 0).
        pcp.free_factor >>= 1
        pindex = self.order_to_pindex(order, mt)
        lst = pcp.lists[pindex]
        if not lst:
            if self.pcp_tuned:
                count = self.nr_pcp_alloc(pcp, order)
            else:
                # 5.4 rmqueue_bulk(pcp->batch) (order 0 only, batch >= 1: the same numbers);
                # 6.1 __rmqueue_pcplist
                batch = self.pcp_batch
                count = max(batch >> order, 2) if batch > 1 else 1
            self.rmqueue_bulk(pcp, order, count, mt, alloc_cma, pindex, nofragment)
        if not lst:
            return None
        pfn = next(iter(lst))
        self._pcp_del(pcp, pfn)
        return pfn

    def nr_pcp_alloc(self, pcp, order):
        """nr_pcp_alloc (6.7+): how many pages to refill; grows ``high`` and ``alloc_factor``."""
        base_batch = self.pcp_batch
        high_min, high_max = self.pcp_high_min, self.pcp_high_max
        high = pcp.high = clamp(pcp.high, high_min, high_max)
        # PCP disabled or boot pageset
        if high < base_batch:
            return 1
        batch = base_batch if order else base_batch << pcp.alloc_factor
        # If we had larger pcp->high, we could avoid to allocate from zone.
        if high_min != high_max and not self.below_high:
            high = pcp.high = min(high + batch, high_max)
        if not order:
            max_nr_alloc = max(high - pcp.count - base_batch, base_batch)
            # Double the number of pages allocated each time there is a subsequent allocation
            # of order-0 pages without any freeing.
            if batch <= max_nr_alloc and pcp.alloc_factor < CONFIG_PCP_BATCH_SCALE_MAX:
                pcp.alloc_factor += 1
            batch = min(batch, max_nr_alloc)
        if batch > 1:
            batch = max(batch >> order, 2)
        return batch

    def rmqueue_bulk(self, pcp, order, count, mt, alloc_cma, pindex, nofragment=False):
        mode = [RMQUEUE_NORMAL]   # one sticky rmqueue_mode for the whole batch
        for _ in range(count):
            got = self._rmqueue(order, mt, alloc_cma, mode, nofragment)
            if got is None:
                break
            pfn, split_mt = got
            self._pcp_add(pcp, pfn, order, split_mt, pindex, tail=True)

    def free_unref_page(self, pcp, pfn, order):
        """free_unref_page + free_unref_page_commit: to the head of the pcp list, then drain
        by the policy's rules (5.4, 6.1, 6.7+)."""
        mt = self.get_pageblock_migratetype(pfn)
        if mt == ISOLATE:
            self._free_one_page(pfn, order, mt, to_tail=False)
            return
        list_mt = MOVABLE if mt >= MIGRATE_PCPTYPES else mt
        pindex = self.order_to_pindex(order, list_mt)
        if self.pcp_rules == "5.4":
            self._pcp_add(pcp, pfn, order, mt, pindex, tail=False)
            if pcp.count >= pcp.high:
                self.free_pcppages_bulk_5_4(pcp, self.pcp_batch)
            return
        if self.pcp_rules == "6.1":
            self._pcp_add(pcp, pfn, order, mt, pindex, tail=False)
            # free_high: a high-order free while frees run without allocations drains everything
            free_high = pcp.free_factor > 0 and 0 < order <= PAGE_ALLOC_COSTLY_ORDER
            high = 0 if free_high else pcp.high
            if pcp.count >= high:
                self.free_pcppages_bulk(pcp, self._nr_pcp_free(pcp, high, free_high), pindex)
            return
        self._free_unref_page_commit(pcp, pfn, order, mt, pindex)

    def _free_unref_page_commit(self, pcp, pfn, order, mt, pindex):
        """free_unref_page_commit (6.7+, mm/page_alloc.c of 6.12; 6.16's free_high threshold)."""
        # On freeing, reduce the number of pages that are batch allocated.
        pcp.alloc_factor >>= 1
        self._pcp_add(pcp, pfn, order, mt, pindex, tail=False)
        batch = self.pcp_batch
        free_high = False
        if 0 < order <= PAGE_ALLOC_COSTLY_ORDER:
            threshold = batch if self.pcp_rules == "6.7" else batch + self.pcp_high_min // 2
            free_high = (pcp.free_factor >= threshold
                         and bool(pcp.flags & PCPF_PREV_FREE_HIGH_ORDER)
                         and (not pcp.flags & PCPF_FREE_HIGH_BATCH or pcp.count >= batch))
            pcp.flags |= PCPF_PREV_FREE_HIGH_ORDER
        elif pcp.flags & PCPF_PREV_FREE_HIGH_ORDER:
            pcp.flags &= ~PCPF_PREV_FREE_HIGH_ORDER
        if pcp.free_factor < batch << CONFIG_PCP_BATCH_SCALE_MAX:
            pcp.free_factor += 1 << order
        high = self.nr_pcp_high(pcp, batch, free_high)
        if pcp.count >= high:
            self.free_pcppages_bulk(pcp, self.nr_pcp_free(pcp, batch, high, free_high), pindex)
            # zone_watermark_ok(zone, 0, high_wmark_pages(zone), ZONE_MOVABLE, 0): no ALLOC_CMA,
            # no reserve flags (the highatomic reserve is unusable), lowmem_reserve[ZONE_MOVABLE]
            if self.below_high and self._zone_watermark_ok(0, self.high_wmark_pages(), False, count=False,
                                                           reserve=self.lowmem_reserve[ZONE_MOVABLE]):
                self.below_high = 0

    def nr_pcp_high(self, pcp, batch, free_high):
        """nr_pcp_high (6.7+): the count at which a free drains; tunes ``high``. ZONE_RECLAIM_ACTIVE
        is not modelled, as MODEL.md omits it (the kernel sets it for balance_pgdat()'s run, when
        kswapd's reclaimed pages are freed through here)."""
        high_min, high_max = self.pcp_high_min, self.pcp_high_max
        high = pcp.high = clamp(pcp.high, high_min, high_max)
        if not high:
            return 0
        if free_high:
            pcp.high = max(high - (batch << CONFIG_PCP_BATCH_SCALE_MAX), high_min)
            return 0
        if high_min == high_max:
            return high
        if self.below_high:
            free_count = max(pcp.free_factor, batch)
            pcp.high = max(high - free_count, high_min)
            high = max(pcp.count, high_min)
        elif pcp.count >= high:
            need_high = pcp.free_factor + batch
            # pcp->high should be large enough to hold batch freed pages
            if pcp.high < need_high:
                pcp.high = clamp(need_high, high_min, high_max)
        return high

    def nr_pcp_free(self, pcp, batch, high, free_high):
        """nr_pcp_free (6.7+)."""
        # Free as much as possible if batch freeing high-order pages.
        if free_high:
            return min(pcp.count, batch << CONFIG_PCP_BATCH_SCALE_MAX)
        # PCP disabled or boot pageset
        if high < batch:
            return 1
        # Leave at least pcp->batch pages on the list
        return clamp(pcp.free_factor, batch, high - batch)

    def _nr_pcp_free(self, pcp, high, free_high):
        """nr_pcp_free (6.1): grows free_factor."""
        batch = self.pcp_batch
        if free_high:
            return pcp.count
        if high < batch:
            return 1
        min_nr_free, max_nr_free = batch, high - batch
        to_free = batch << pcp.free_factor
        if to_free < max_nr_free:
            pcp.free_factor += 1
        return min(max(to_free, min_nr_free), max_nr_free)

    def decay_pcp_high(self, cpu=0):
        """decay_pcp_high (6.7+) of ``cpu``'s pcp, from that CPU's vmstat update: decay its
        ``high`` towards high_min and drain its pages above it, ``batch`` at a time. Returns the
        kernel's ``todo``; a no-op returning False under the 5.4 and 6.1 rules or with pcp off."""
        pcp = self._cpu_pcp(cpu)
        if not (self.pcp and self.pcp_tuned):
            return False
        high_min, batch = self.pcp_high_min, self.pcp_batch
        todo = False
        # Decrease pcp->high periodically to try to free possible idle PCP pages.
        if pcp.high > high_min:
            pcp.high = max(pcp.count - (batch << CONFIG_PCP_BATCH_SCALE_MAX),
                           pcp.high - (pcp.high >> 3), high_min)
            if pcp.high > high_min:
                todo = True
        to_drain = pcp.count - pcp.high
        while to_drain > 0:
            chunk = min(to_drain, batch)
            self.free_pcppages_bulk(pcp, chunk, 0)
            todo = True
            to_drain -= chunk
        return todo

    def drain_pages(self, pcp):
        """drain_pages() of one CPU for this zone: free_pcppages_bulk(count, 0) (the 5.4
        free_pcppages_bulk under the 5.4 rules)."""
        if self.pcp_rules == "5.4":
            self.free_pcppages_bulk_5_4(pcp, pcp.count)
        else:
            self.free_pcppages_bulk(pcp, pcp.count, 0)

    def drain(self):
        """drain_all_pages(): every CPU's pcp pages back to the buddy, CPU 0, 1, ... in turn.
        A no-op with pcp off."""
        if not self.pcp:
            return
        for pcp in self.pcps:
            self.drain_pages(pcp)

    def free_pcppages_bulk(self, pcp, count, pindex):
        """free_pcppages_bulk (5.13+): round-robin over ``pcp``'s non-empty lists starting at
        ``pindex``; from each list free pages from the tail with the migratetype recorded when
        they went on the pcp list (v6.1) or their pageblock's current type (6.10+)."""
        count = min(count, pcp.count)
        pindex -= 1
        while count > 0:
            while True:
                pindex += 1
                if pindex >= NR_PCP_LISTS:
                    pindex = 0
                if pcp.lists[pindex]:
                    break
            lst = pcp.lists[pindex]
            while True:
                pfn = next(reversed(lst))
                order, mt = self._pcp_del(pcp, pfn)
                if self.hygiene:
                    mt = self.get_pageblock_migratetype(pfn)
                count -= 1 << order
                self._free_one_page(pfn, order, mt, to_tail=False)
                if count <= 0 or not lst:
                    break

    def free_pcppages_bulk_5_4(self, pcp, count):
        """free_pcppages_bulk (5.4): ``pcp``'s three order-0 lists round robin, MOVABLE first;
        each visit takes up to ``batch_free`` pages (one more per list passed, all of them once
        only one list is left) from the tail, freed with the type recorded on the pcp list.
        ``batch_free`` carries over between visits, as in the kernel."""
        count = min(count, pcp.count)
        mt = 0
        batch_free = 0
        while count:
            while True:
                batch_free += 1
                mt += 1
                if mt == MIGRATE_PCPTYPES:
                    mt = 0
                if pcp.lists[mt]:
                    break
            lst = pcp.lists[mt]
            # This is the only non-empty list. Free them all.
            if batch_free == MIGRATE_PCPTYPES:
                batch_free = count
            while True:
                pfn = next(reversed(lst))
                order, rec_mt = self._pcp_del(pcp, pfn)
                self._free_one_page(pfn, order, rec_mt, to_tail=False)
                # } while (--count && --batch_free && !list_empty(list));
                count -= 1
                if not count:
                    break
                batch_free -= 1
                if not batch_free or not lst:
                    break

    # ------------------------------------------------------------------ free path

    def free(self, pfn, cpu=0):
        """__free_pages running on ``cpu``: the pcp path (that CPU's lists) for pcp orders,
        else free_one_page. A block of the page cache is not the caller's to free (only reclaim
        frees it): ValueError."""
        pfn = int(pfn)
        if pfn in self.pgdat.lru_pos:
            raise ValueError(f"pfn {pfn} is page cache: only reclaim frees it")
        self._free_block(pfn, cpu)

    def _free_block(self, pfn, cpu):
        pcp = self._cpu_pcp(cpu)
        order = self.alloc_order.get(pfn)
        if order is None:
            raise ValueError(f"pfn {pfn} is not the head of an allocated block")
        del self.alloc_order[pfn]
        del self.alloc_mt[pfn]
        del self.alloc_pinned[pfn]
        self.lru[pfn:pfn + (1 << order)] = bytes(1 << order)
        self.c["free_ops"] += 1
        self.c["pgfree"] += 1 << order
        if self.pcp and self._pcp_allowed_order(order):
            self.free_unref_page(pcp, pfn, order)
        else:
            self.free_one_page(pfn, order, to_tail=False)

    def free_one_page(self, pfn, order, to_tail):
        """free_one_page: v6.10+ frees blocks larger than a pageblock per pageblock
        (split_large_buddy); earlier policies free the block with its first pageblock's type."""
        if self.hygiene:
            self.split_large_buddy(pfn, order, to_tail)
        else:
            self._free_one_page(pfn, order, self.get_pageblock_migratetype(pfn), to_tail)

    def split_large_buddy(self, pfn, order, to_tail):
        """split_large_buddy (v6.10+): a block larger than a pageblock is freed one pageblock
        at a time, in address order, each chunk with its own pageblock's type."""
        end = pfn + (1 << order)
        order = min(order, self.pageblock_order)
        while pfn < end:
            self._free_one_page(pfn, order, self.get_pageblock_migratetype(pfn), to_tail)
            pfn += 1 << order

    def _free_one_page(self, pfn, order, mt, to_tail):
        """__free_one_page: merge with free buddies, then insert at head or tail."""
        P = self.pageblock_order
        while order < self.max_order:
            buddy = pfn ^ (1 << order)
            if not self._is_free_head(buddy, order):
                break
            buddy_mt = mt
            if order >= P:
                buddy_mt = self.get_pageblock_migratetype(buddy)
                if not self._may_merge(mt, buddy_mt):
                    break
            self._del_page_from_free_list(buddy)
            if self.hygiene and buddy_mt != mt:
                self._retype_covered_pageblocks(buddy, order, mt)
            pfn &= ~(1 << order)
            order += 1
            self.c["merge_steps"] += 1
        if not to_tail:
            to_tail = self.buddy_merge_likely(pfn, order)
        self._add_to_free_list(pfn, order, mt, tail=to_tail)

    def _may_merge(self, mt, buddy_mt):
        """Merge rule at orders >= pageblock_order."""
        if mt == buddy_mt:
            return True
        if self.policy == "v5.4":
            return mt != ISOLATE and buddy_mt != ISOLATE
        return migratetype_is_mergeable(mt) and migratetype_is_mergeable(buddy_mt)

    def buddy_merge_likely(self, pfn, order):
        """True if the buddy of our parent block is free: our own buddy is probably about
        to be freed too, so keep this block at the tail where it is less likely reused."""
        if order >= self.max_order - 1:
            return False
        parent = pfn & ~((1 << (order + 1)) - 1)
        return self._is_free_head(parent ^ (1 << (order + 1)), order + 1)

    # ------------------------------------------------------------------ public views

    def free_lists(self):
        out = {}
        for order in range(self.max_order + 1):
            for mt in range(MIGRATE_TYPES):
                lst = self.free_area[order][mt]
                if lst:
                    out[(order, mt)] = list(lst)
        return out

    def pageblock_types(self):
        return list(self.pageblock_mt)

    def pcp_lists(self):
        """CPU 0's pcp lists: {pindex: [pfns, head first]} for the non-empty lists."""
        return self.pcp_lists_of(0)

    def pcp_lists_of(self, cpu):
        """``cpu``'s pcp lists, as pcp_lists()."""
        pcp = self._cpu_pcp(cpu)
        if not self.pcp:
            return {}
        return {i: list(lst) for i, lst in enumerate(pcp.lists) if lst}

    def counters(self):
        """The event counters and the live NR_FREE_PAGES: the same keys as the numba model's
        ``Model.counters()``, which the differential test compares exactly."""
        out = dict(self.c)
        out["nr_free_pages"] = self.nr_free_pages
        out["nr_reserved_highatomic"] = self.nr_reserved_highatomic
        out["nr_free_highatomic"] = self.nr_free_highatomic
        return out

    def pcp_counters(self):
        """The model's pcp stat counters (MODEL.md, per-cpu lists, CPUs): ``pcp_count``, the
        pages on every CPU's pcp lists, and ``pcp_free_factor``, CPU 0's free_count (6.1:
        free_factor). Kept out of counters() while Model.counters() does not report them."""
        return {"pcp_count": self.pcp_count, "pcp_free_factor": self.pcps[0].free_factor}

    def buddyinfo(self):
        return list(self.nr_free)

    def watermarks(self):
        return (self.wmark_min, self.wmark_low, self.wmark_high)

    def pcp_params(self):
        """(batch, CPU 0's high)."""
        return (self.pcp_batch, self.pcps[0].high)

    # ------------------------------------------------------------------ reclaim (the zone's node)

    def add_file(self, pfn):
        """The allocated block at ``pfn`` becomes clean page cache at the LRU tail
        (lru_add_file()): only reclaim frees it now. False (nothing done) without page cache."""
        pfn = int(pfn)
        return self.pgdat.lru_add_file(self, pfn)

    def file_pages(self):
        """The heads of the page cache's blocks, oldest first."""
        return self.pgdat.file_pages()

    def kswapd_pending(self):
        """kswapd was woken and has not run yet."""
        return self.pgdat.pending

    def run_kswapd(self):
        """kswapd() if it was woken (balance_pgdat() until kswapd_try_to_sleep() sleeps); True
        if it ran. kcompactd wakeups are dropped."""
        return self.pgdat.kswapd()

    def reclaim_state(self):
        """The zone's boost and ZONE_BOOSTED_WATERMARK (one-element lists), and the node's
        kswapd_failures, kswapd_order, kswapd_highest_zoneidx (-1: none) and nr_file (pages)."""
        return self.pgdat.reclaim_state()

    def reclaim_counters(self):
        """nr_watermark_boosts, pageoutrun, pgsteal_kswapd and pgsteal_direct."""
        return self.pgdat.reclaim_counters()

    def pcp_state(self, cpu=0):
        """``cpu``'s pcp tuning state: ``high`` between the zone's ``high_min`` and ``high_max``
        (equal, and equal to ``high``, under the 5.4 and 6.1 rules), ``alloc_factor``,
        ``free_count`` (6.1: free_factor; 5.4: 0), ``flags`` (PCPF_*) and the zone's
        ZONE_BELOW_HIGH."""
        pcp = self._cpu_pcp(cpu)
        return {"high": pcp.high, "high_min": self.pcp_high_min, "high_max": self.pcp_high_max,
                "alloc_factor": pcp.alloc_factor, "free_count": pcp.free_factor,
                "flags": pcp.flags, "below_high": self.below_high}

    # ------------------------------------------------------------------ invariants

    def check(self):
        """Assert the allocator invariants (MODEL.md; kernel-allocator.md section 11.5)."""
        n, M, P = self.nr_pages, self.max_order, self.pageblock_order
        zs, ze = self.zone_start, self.zone_end
        owner = bytearray(n)   # 1 free, 2 allocated, 3 pcp, 4 hole

        def claim(start, size, what, tag):
            end = start + size
            assert zs <= start and end <= ze, f"{what} [{start}, {end}) outside the zone [{zs}, {ze})"
            if owner.count(0, start, end) != size:
                clash = next(p for p in range(start, end) if owner[p])
                kinds = {1: "a free block", 2: "an allocated block", 3: "a pcp page", 4: "a hole"}
                raise AssertionError(f"{what} [{start}, {end}) overlaps {kinds[owner[clash]]} at pfn {clash}")
            owner[start:end] = bytes([tag]) * size

        owner[:] = self.reserved.translate(bytes([0, 4]) + bytes(254))

        # Free lists: each head on exactly the list its records name.
        seen = 0
        free_pages = 0
        nr_free_pages = 0
        nr_free_cma = 0
        nr_free_highatomic = 0
        for order in range(M + 1):
            on_lists = 0
            for mt in range(MIGRATE_TYPES):
                for pfn in self.free_area[order][mt]:
                    on_lists += 1
                    assert self.free_order.get(pfn) == order and self.free_mt.get(pfn) == mt, (
                        f"free head {pfn} on list ({order}, {MT_NAMES[mt]}) but recorded as "
                        f"({self.free_order.get(pfn)}, {self.free_mt.get(pfn)})")
                    assert pfn % (1 << order) == 0, f"free head {pfn} of order {order} not naturally aligned"
                    claim(pfn, 1 << order, f"free block {pfn} order {order}", 1)
                    free_pages += 1 << order
                    if mt != ISOLATE:
                        nr_free_pages += 1 << order
                    if mt == CMA:
                        nr_free_cma += 1 << order
                    if mt == HIGHATOMIC:
                        nr_free_highatomic += 1 << order
            assert on_lists == self.nr_free[order], (
                f"nr_free[{order}] = {self.nr_free[order]} but the lists hold {on_lists} blocks")
            seen += on_lists
        assert seen == len(self.free_order) == len(self.free_mt), (
            f"{len(self.free_order)} free heads recorded, {seen} on lists")
        assert all(0 <= o <= M for o in self.free_order.values()), "free block order outside [0, max_order]"
        assert nr_free_pages == self.nr_free_pages, (
            f"NR_FREE_PAGES = {self.nr_free_pages}, free pages on non-ISOLATE lists = {nr_free_pages}")
        assert nr_free_cma == self.nr_free_cma_pages, (
            f"NR_FREE_CMA_PAGES = {self.nr_free_cma_pages}, free pages on CMA lists = {nr_free_cma}")
        assert nr_free_highatomic == self.nr_free_highatomic, (
            f"nr_free_highatomic = {self.nr_free_highatomic}, free pages on HIGHATOMIC lists = "
            f"{nr_free_highatomic}")
        # nr_reserved_highatomic: under 6.12's rules (hygiene) every reserve and unreserve moves
        # whole pageblocks and the count with them, so it is the zone's HIGHATOMIC pageblocks;
        # 6.1 reserves only the first pageblock of a large block and lets pcp drains and merges
        # by the recorded type put HIGHATOMIC-list pages in other pageblocks, so only its range.
        zone_pbs = range(zs >> P, ((ze - 1) >> P) + 1)
        if self.hygiene:
            nr_ha = sum(1 for pb in zone_pbs if self.pageblock_mt[pb] == HIGHATOMIC)
            assert self.nr_reserved_highatomic == nr_ha << P, (
                f"nr_reserved_highatomic = {self.nr_reserved_highatomic}, {nr_ha} HIGHATOMIC "
                f"pageblocks of {1 << P} pages")
        assert self.nr_reserved_highatomic >= 0, "nr_reserved_highatomic below zero"
        assert all(self.pageblock_mt[pb] != HIGHATOMIC or pb in self.ever_highatomic for pb in zone_pbs), (
            "a HIGHATOMIC pageblock the reserve never made")

        alloc_pages = 0
        lru = bytearray(n)
        for pfn, order in self.alloc_order.items():
            assert pfn % (1 << order) == 0, f"allocated block {pfn} of order {order} not naturally aligned"
            claim(pfn, 1 << order, f"allocated block {pfn} order {order}", 2)
            alloc_pages += 1 << order
            if self.alloc_mt[pfn] == MOVABLE:
                lru[pfn:pfn + (1 << order)] = b"\x01" * (1 << order)
        assert lru == self.lru, "PageLRU does not match the pages of allocated MOVABLE blocks"

        # Every CPU's pcp lists: each page on the list and CPU its records name, claimed once
        # across all CPUs; each CPU's count is the pages on its own lists.
        pcp_pages = 0
        pcp_heads = 0
        if not self.pcp:
            assert not self.pcp_order, "pages on pcp lists with pcp disabled"
        assert len(self.pcps) == self.nr_cpus, f"{len(self.pcps)} pcp sets for {self.nr_cpus} CPUs"
        for cpu, pcp in enumerate(self.pcps):
            assert pcp.cpu == cpu, f"pcp set {cpu} names CPU {pcp.cpu}"
            cpu_pages = 0
            for pindex, lst in enumerate(pcp.lists):
                for pfn in lst:
                    order = self.pcp_order[pfn]
                    assert self.pcp_cpu[pfn] == cpu, f"pcp page {pfn} on CPU {cpu} recorded on CPU {self.pcp_cpu[pfn]}"
                    assert self.pcp_pindex[pfn] == pindex, f"pcp page {pfn} recorded on list {self.pcp_pindex[pfn]}"
                    assert order == self.pindex_to_order(pindex), f"pcp page {pfn} order {order} on list {pindex}"
                    assert pfn % (1 << order) == 0, f"pcp page {pfn} of order {order} not naturally aligned"
                    claim(pfn, 1 << order, f"pcp page {pfn} order {order} (CPU {cpu})", 3)
                    cpu_pages += 1 << order
                    pcp_heads += 1
            assert cpu_pages == pcp.count, f"CPU {cpu} pcp count {pcp.count} but its lists hold {cpu_pages} pages"
            pcp_pages += cpu_pages
        assert pcp_heads == len(self.pcp_order) == len(self.pcp_mt) == len(self.pcp_pindex) == len(self.pcp_cpu), (
            f"{len(self.pcp_order)} pcp pages recorded, {pcp_heads} on lists")
        assert pcp_pages == self.pcp_count, f"pcp count {self.pcp_count} but lists hold {pcp_pages} pages"

        assert self.nr_reserved == self.reserved.count(1, zs, ze), "holes of the span miscounted"
        total = free_pages + alloc_pages + pcp_pages + self.nr_reserved
        assert total == ze - zs, (f"free {free_pages} + allocated {alloc_pages} + pcp {pcp_pages} + "
                                  f"holes {self.nr_reserved} = {total} != the zone's {ze - zs} pages")

        # Every pair of free buddies the merge rule would have merged is merged. Above
        # pageblock_order, not where a pageblock has ever been HIGHATOMIC: unreserving converts
        # a free HIGHATOMIC block without merging it with a free buddy it may now merge with,
        # and 6.1 frees by the type recorded on the pcp list, not the pageblock's.
        for pfn, order in self.free_order.items():
            if order >= M:
                continue
            buddy = pfn ^ (1 << order)
            if buddy < pfn or self.free_order.get(buddy) != order:
                continue
            if order >= P:
                a = self.get_pageblock_migratetype(pfn)
                b = self.get_pageblock_migratetype(buddy)
                if not self._may_merge(a, b):
                    continue
                first = pfn >> P
                if self.ever_highatomic.intersection(range(first, first + (2 << (order - P)))):
                    continue
            raise AssertionError(f"free buddies {pfn} and {buddy} of order {order} left unmerged")

        if self.pgdat.zones == [self]:
            self.pgdat.check()
        if self.mobility_disabled:
            # set_pageblock_migratetype() maps only the types below MIGRATE_PCPTYPES
            assert all(mt in (UNMOVABLE, HIGHATOMIC) for mt in self.pageblock_mt), (
                "nomobility with a pageblock neither UNMOVABLE nor HIGHATOMIC")
        # Hygiene: a free block's list type is the type of every pageblock it covers.
        if self.hygiene:
            for pfn, order in self.free_order.items():
                mt = self.free_mt[pfn]
                first = pfn >> P
                last = (pfn + (1 << order) - 1) >> P
                for pb in range(first, last + 1):
                    assert self.pageblock_mt[pb] == mt, (
                        f"free block {pfn} order {order} on the {MT_NAMES[mt]} list covers pageblock "
                        f"{pb} of type {MT_NAMES[self.pageblock_mt[pb]]}")


class RefNode:
    """A node of up to four zones over pfns ``[0, nr_pages)``: ZONE_DMA ``[0, dma_end)``,
    ZONE_DMA32 ``[dma_end, dma32_end)``, ZONE_NORMAL ``[max(dma_end, dma32_end), nr_pages -
    movable_pages)`` and ZONE_MOVABLE ``[nr_pages - movable_pages, nr_pages)``; a zone whose span
    is empty is not populated. Each zone is a ``RefZone`` over the node's page arrays, sharing
    the node's pageblock types; watermarks (``__setup_per_zone_wmarks()``) and lowmem_reserve
    (``setup_per_zone_lowmem_reserve()``) are computed over the node as 6.12 does, the pcp
    batch and high of each zone from that zone's managed pages and low watermark.

    ``alloc()`` is __alloc_pages(): the zonelist of the populated zones up to gfp_zone(), highest
    first; the fast path at the low watermark with ALLOC_NOFRAGMENT when the preferred zone is
    ZONE_NORMAL and ZONE_DMA32 is populated, walked once more without it if it found nothing;
    then the slow path's attempt at the min watermark. With ``dma_end = dma32_end =
    movable_pages = 0`` the node is one Normal zone and behaves as ``RefZone``."""

    def __init__(self, nr_pages, max_order, pageblock_order, policy="v6.15", holes=(), pcp=False,
                 min_free_kbytes=None, nr_cpus=1, dma_end=0, dma32_end=0, movable_pages=0,
                 thp_enabled=False, watermark_boost_factor=0, kswapd=False, pagecache=False):
        nr_pages, max_order, pageblock_order = _geometry(nr_pages, max_order, pageblock_order, policy)
        if not 1 <= pageblock_order <= max_order:
            raise ValueError(f"need 1 <= pageblock_order <= max_order, got {pageblock_order}, {max_order}")
        dma_end, dma32_end, movable_pages = int(dma_end), int(dma32_end), int(movable_pages)
        movable_start = nr_pages - movable_pages
        align = 1 << max_order
        if not 0 <= dma_end <= nr_pages or dma_end % align:
            raise ValueError(f"dma_end {dma_end} must be a multiple of {align} in [0, {nr_pages}]")
        if not (dma32_end == 0 or dma_end <= dma32_end <= nr_pages) or dma32_end % align:
            raise ValueError(f"dma32_end {dma32_end} must be 0 or a multiple of {align} in "
                             f"[dma_end = {dma_end}, {nr_pages}]")
        if not 0 <= movable_pages <= nr_pages or (movable_pages and movable_start % align):
            raise ValueError(f"movable_pages {movable_pages}: the ZONE_MOVABLE start {movable_start} "
                             f"must be a multiple of {align} in [0, {nr_pages}]")
        normal_start = max(dma_end, dma32_end)
        if normal_start > movable_start:
            raise ValueError(f"ZONE_MOVABLE [{movable_start}, {nr_pages}) overlaps the zones below "
                             f"{normal_start}")
        self.nr_pages = nr_pages
        self.max_order = max_order
        self.pageblock_order = pageblock_order
        self.policy = policy
        self.pcp = bool(pcp)
        self.mobility_disabled = policy == "nomobility"

        spans = ((0, dma_end), (dma_end, dma32_end), (normal_start, movable_start),
                 (movable_start, nr_pages))
        # Managed pages per zone index (0 for an absent zone): the span less its holes.
        reserved = bytearray(nr_pages)
        for start, end in holes:
            start, end = int(start), int(end)
            if not 0 <= start <= end <= nr_pages:
                raise ValueError(f"hole ({start}, {end}) is not inside [0, {nr_pages})")
            reserved[start:end] = b"\x01" * (end - start)
        managed = [max(0, e - s) - (reserved.count(1, s, e) if e > s else 0) for s, e in spans]

        # calculate_min_free_kbytes(): nr_free_buffer_pages() covers the zones up to ZONE_NORMAL.
        buffer_pages = sum(managed[i] for i in range(MAX_NR_ZONES) if i != ZONE_MOVABLE)
        # __setup_per_zone_wmarks(): 6.12 leaves ZONE_MOVABLE out of lowmem_pages and gives it
        # highmem's small min; 5.4 and 6.1 count it as lowmem ("!is_highmem(zone)")
        movable_highmem = policy not in ("v5.4", "v6.1")
        lowmem_pages = buffer_pages if movable_highmem else sum(managed)
        if min_free_kbytes is None:
            min_free_kbytes = min_free_kbytes_of(buffer_pages)
            if thp_enabled:
                # set_recommended_min_free_kbytes() (mm/khugepaged.c), run when khugepaged starts
                # after the boot-time watermarks are set: 2 + MIGRATE_PCPTYPES^2 pageblocks per
                # populated zone up to ZONE_NORMAL, at most a twentieth of nr_free_buffer_pages()
                # (managed less the high watermark), and only ever raising min_free_kbytes
                boot = self._setup_per_zone_wmarks(min_free_kbytes, managed, lowmem_pages,
                                                   movable_highmem)
                populated = [i for i, (s, e) in enumerate(spans) if e > s and i != ZONE_MOVABLE]
                per_zone = (1 << pageblock_order) * (2 + MIGRATE_PCPTYPES * MIGRATE_PCPTYPES)
                free_buffer = sum(max(managed[i] - boot[i][2], 0) for i in populated)
                recommended_kb = min(per_zone * len(populated), free_buffer // 20) * 4
                min_free_kbytes = max(min_free_kbytes, recommended_kb)
        self.min_free_kbytes = int(min_free_kbytes)
        wmarks = self._setup_per_zone_wmarks(self.min_free_kbytes, managed, lowmem_pages,
                                             movable_highmem)
        reserves = self._setup_per_zone_lowmem_reserve(managed)

        boot_mt = UNMOVABLE if self.mobility_disabled else MOVABLE
        nr_pageblocks = (nr_pages + (1 << pageblock_order) - 1) >> pageblock_order
        self.pageblock_mt = [boot_mt] * nr_pageblocks

        # The populated zones, lowest first; each boots its own span.
        self.zones = []
        for idx, (start, end) in enumerate(spans):
            if end <= start:
                continue
            self.zones.append(RefZone(
                nr_pages, max_order, pageblock_order, policy=policy, holes=holes, pcp=pcp,
                min_free_kbytes=self.min_free_kbytes, nr_cpus=nr_cpus, zone_start=start,
                zone_end=end, zone_idx=idx, pageblock_mt=self.pageblock_mt,
                watermarks=wmarks[idx], lowmem_reserve=reserves[idx],
                watermark_boost_factor=watermark_boost_factor))
        self.nr_zones = len(self.zones)
        # The node's reclaim state (page cache, kswapd), shared by its zones.
        self.pgdat = RefPgdat(self.zones, nr_pages, kswapd=kswapd, pagecache=pagecache)
        for z in self.zones:
            z.pgdat = self.pgdat
        self.nr_cpus = self.zones[0].nr_cpus
        # The node's own counters: one alloc_ops per alloc() call, one alloc_fail per failed one.
        self.c = {"alloc_ops": 0, "alloc_fail": 0}

    # ------------------------------------------------------------------ setup

    @staticmethod
    def _setup_per_zone_wmarks(min_free_kbytes, managed, lowmem_pages, movable_highmem=True):
        """__setup_per_zone_wmarks() of 6.12 (of 6.1 without `movable_highmem`) for every zone
        index: (min, low, high)."""
        pages_min = min_free_kbytes >> 2
        out = []
        for idx, zone_managed in enumerate(managed):
            # tmp = pages_min * managed / lowmem_pages. The kernel would divide by zero with no
            # managed lowmem; the reference then reads it as the single-zone formula.
            tmp = pages_min * zone_managed // lowmem_pages if lowmem_pages else pages_min
            if idx == ZONE_MOVABLE and movable_highmem:
                wmin = clamp(zone_managed // 1024, SWAP_CLUSTER_MAX, 128)
            else:
                wmin = tmp
            delta = max(tmp >> 2, zone_managed * WATERMARK_SCALE_FACTOR // 10000)
            out.append((wmin, wmin + delta, wmin + 2 * delta))
        return out

    @staticmethod
    def _setup_per_zone_lowmem_reserve(managed):
        """setup_per_zone_lowmem_reserve() of 6.12: lowmem_reserve[j] of zone i < j is the managed
        pages of zones i+1..j over sysctl_lowmem_reserve_ratio[i]; all 0 for a zone with no managed
        pages or ratio 0 (and for ZONE_MOVABLE, the top zone)."""
        out = [[0] * MAX_NR_ZONES for _ in range(MAX_NR_ZONES)]
        for i in range(MAX_NR_ZONES - 1):
            ratio = SYSCTL_LOWMEM_RESERVE_RATIO[i]
            clear = not ratio or not managed[i]
            upper = 0
            for j in range(i + 1, MAX_NR_ZONES):
                upper += managed[j]
                out[i][j] = 0 if clear else upper // ratio
        return out

    # ------------------------------------------------------------------ zones

    def populated(self, zone_idx):
        """populated_zone() of the node's zone ``zone_idx``."""
        return any(z.zone_idx == zone_idx for z in self.zones)

    def zone_idx(self, zi):
        """The kernel zone index of the ``zi``-th populated zone (lowest first)."""
        return self.zones[zi].zone_idx

    def zone_of(self, pfn):
        """The zone spanning ``pfn`` (page_zone()), or None."""
        for z in self.zones:
            if z.zone_start <= pfn < z.zone_end:
                return z
        return None

    def zonelist(self, highest_zoneidx):
        """The node's zonelist filtered to ``highest_zoneidx``: populated zones, highest first."""
        return [z for z in reversed(self.zones) if z.zone_idx <= highest_zoneidx]

    @property
    def managed_pages(self):
        return sum(z.managed_pages for z in self.zones)

    @property
    def pcp_count(self):
        return sum(z.pcp_count for z in self.zones)

    # ------------------------------------------------------------------ allocation and free

    def alloc(self, order, mt, pinned=False, cpu=0, atomic=False):
        """__alloc_pages on ``cpu`` without compaction (``atomic``: GFP_ATOMIC, see
        RefZone.alloc()); direct reclaim takes page cache of the zonelist's zones. Returns the
        pfn or -1."""
        self.zones[0]._cpu_pcp(cpu)
        cpu = int(cpu)
        order, mt = self.zones[0]._check_request(order, mt)
        atomic = bool(atomic)
        self.c["alloc_ops"] += 1
        list_mt = UNMOVABLE if self.mobility_disabled else mt   # gfp_migratetype()
        alloc_cma = list_mt == MOVABLE                          # gfp_to_alloc_flags_cma()
        highest_zoneidx = gfp_zone(mt)                          # the requested type's gfp
        zonelist = self.zonelist(highest_zoneidx)
        if zonelist:
            def get_page_from_freelist(wmark, alloc_flags, nofrag=False):
                # the zonelist walk, and its `goto retry` without ALLOC_NOFRAGMENT
                while True:
                    for z in zonelist:
                        pfn = z.try_this_zone(z.pcps[cpu], order, mt, list_mt, alloc_cma, pinned,
                                              wmark, highest_zoneidx, nofrag, alloc_flags)
                        if pfn is not None:
                            return pfn
                    if not nofrag:
                        return None
                    nofrag = False

            # alloc_flags_nofragment(preferred zone): ZONE_NORMAL with ZONE_DMA32 populated
            # (the kernel's NUMA test, applied on every node).
            nofragment = zonelist[0].zone_idx == ZONE_NORMAL and self.populated(ZONE_DMA32)
            # Fast path at the low watermark, then the slow path (wake_all_kswapds() first).
            pfn = get_page_from_freelist(WMARK_LOW, 0, nofragment)
            if pfn is None:
                pgdat = self.pgdat
                pgdat.wake_all_kswapds(order, zonelist, highest_zoneidx)
                pfn = _slow_path(get_page_from_freelist, order, atomic,
                                 lambda force: self.unreserve_highatomic_pageblock(list_mt, force,
                                                                                   highest_zoneidx),
                                 lambda: pgdat.direct_reclaim(highest_zoneidx, cpu, order),
                                 # should_reclaim_retry() walks the zonelist, highest zone first
                                 lambda flags: any(z.has_free_block(order, alloc_cma, flags)
                                                   for z in zonelist),
                                 self.drain)
            if pfn is not None:
                return pfn
        self.c["alloc_fail"] += 1
        return -1

    def unreserve_highatomic_pageblock(self, mt, force=True, highest_zoneidx=ZONE_MOVABLE):
        """unreserve_highatomic_pageblock() over the zonelist up to ``highest_zoneidx``, highest
        zone first, converting to ``mt``; True once a zone converted a block."""
        return any(z.unreserve_highatomic_pageblock(mt, force)
                   for z in self.zonelist(highest_zoneidx))

    def free(self, pfn, cpu=0):
        """__free_pages on ``cpu`` in the zone that spans ``pfn``."""
        pfn = int(pfn)
        z = self.zone_of(pfn)
        if z is None:
            raise ValueError(f"pfn {pfn} is not the head of an allocated block")
        z.free(pfn, cpu)

    # ------------------------------------------------------------------ reclaim

    def add_file(self, pfn):
        """The allocated block at ``pfn`` becomes page cache (RefZone.add_file())."""
        pfn = int(pfn)
        z = self.zone_of(pfn)
        if z is None:
            raise ValueError(f"pfn {pfn} is not the head of an allocated block")
        return self.pgdat.lru_add_file(z, pfn)

    def file_pages(self):
        return self.pgdat.file_pages()

    def kswapd_pending(self):
        return self.pgdat.pending

    def run_kswapd(self):
        return self.pgdat.kswapd()

    def reclaim_state(self):
        """Each zone's boost and ZONE_BOOSTED_WATERMARK (lowest zone first), and the node's
        kswapd_failures, kswapd_order, kswapd_highest_zoneidx (-1: none) and nr_file."""
        return self.pgdat.reclaim_state()

    def reclaim_counters(self):
        """nr_watermark_boosts summed over the zones, and the node's pageoutrun,
        pgsteal_kswapd and pgsteal_direct."""
        return self.pgdat.reclaim_counters()

    def drain(self):
        """drain_all_pages(NULL): CPU 0, 1, ... in turn, each draining every populated zone
        (drain_pages()). A no-op with pcp off."""
        if not self.pcp:
            return
        for cpu in range(self.nr_cpus):
            for z in self.zones:
                z.drain_pages(z.pcps[cpu])

    def decay_pcp_high(self, cpu=0):
        """refresh_cpu_vm_stats() on ``cpu``: decay_pcp_high() of every populated zone; True if
        any zone has more to do."""
        todo = False
        for z in self.zones:
            if z.decay_pcp_high(cpu):
                todo = True
        return todo

    # ------------------------------------------------------------------ public views

    def free_lists(self, zi=0):
        return self.zones[zi].free_lists()

    def buddyinfo(self, zi=0):
        return self.zones[zi].buddyinfo()

    def pcp_lists_of(self, cpu, zi=0):
        return self.zones[zi].pcp_lists_of(cpu)

    def pcp_state(self, cpu=0, zi=0):
        return self.zones[zi].pcp_state(cpu)

    def watermarks(self, zi=0):
        return self.zones[zi].watermarks()

    def lowmem_reserve(self, zi=0):
        return list(self.zones[zi].lowmem_reserve)

    def pageblock_types(self):
        return list(self.pageblock_mt)

    def counters(self):
        """Every zone's counters summed over the node (RefZone.counters()'s keys; nr_free_pages,
        nr_reserved_highatomic and nr_free_highatomic are the node's), with the node's alloc_ops
        and alloc_fail."""
        out = dict.fromkeys(COUNTER_NAMES + GAUGE_NAMES, 0)
        for z in self.zones:
            for k, v in z.counters().items():
                out[k] += v
        for k, v in self.c.items():
            out[k] += v
        return out

    def check(self):
        """Every zone's invariants; the zones tile the node in index order and share its
        pageblock types; no free block, pcp page or allocated block lies outside its zone."""
        assert self.zones, "a node without a populated zone"
        end = 0
        for z in self.zones:
            assert z.zone_start == end, f"zone {ZONE_NAMES[z.zone_idx]} starts at {z.zone_start}, not {end}"
            end = z.zone_end
            assert z.pageblock_mt is self.pageblock_mt, (
                f"zone {ZONE_NAMES[z.zone_idx]} has its own pageblock types")
        assert end == self.nr_pages, f"the zones end at {end}, the node at {self.nr_pages}"
        idxs = [z.zone_idx for z in self.zones]
        assert idxs == sorted(set(idxs)), f"zone indices {idxs} not increasing"
        assert self.pgdat.zones is self.zones and all(z.pgdat is self.pgdat for z in self.zones), (
            "a zone without the node's reclaim state")
        self.pgdat.check()
        for z in self.zones:
            z.check()
            name = ZONE_NAMES[z.zone_idx]
            for what, blocks in (("free block", z.free_order), ("pcp page", z.pcp_order),
                                 ("allocated block", z.alloc_order)):
                for pfn, order in blocks.items():
                    assert z.zone_start <= pfn and pfn + (1 << order) <= z.zone_end, (
                        f"{what} {pfn} order {order} of zone {name} crosses its span "
                        f"[{z.zone_start}, {z.zone_end})")


# ---------------------------------------------------------------------------------------------
# virtio-mem memory unplug (drivers/virtio/virtio_mem.c of Linux 6.12)
# ---------------------------------------------------------------------------------------------
#
# Written from the driver source, not from kernels/virtio_mem.py. Every size is in 4 KiB pages
# and every pfn an offset from the start of the device region. The readings the model makes
# (and this reference shares):
#
# * The region starts fully plugged, every memory block added and online: SBM state MOVABLE
#   when the block lies in ZONE_MOVABLE, else KERNEL; BBM state ADDED. So OFFLINE and
#   OFFLINE_PARTIAL never occur (they are kept in the state order all the same).
# * Subblock size (virtio_mem_init_hotplug()): max(device block, 2^pageblock_order) from 5.19
#   on ("pageblock" regime); before 5.19 ("maxorder" regime) max(device block, 2^max_order,
#   2^pageblock_order). SBM when the subblock is smaller than a memory block (and BBM is not
#   forced), else BBM with big blocks of max(device block, memory block).
# * The host always accepts an unplug request, and offline_and_remove_memory() of a block whose
#   memory is all fake-offline always succeeds.
# * A host request is repeated (the driver's retry timer, virtio_mem_run_wq() on -EBUSY or
#   -ENOMEM) until a pass unplugs nothing more, at most 16 passes, and not once plugged <=
#   requested.
# * alloc_contig_range() is the caller's: fake_offline(start, nr) makes ONE attempt on
#   [start, start + nr) and answers 'ok', 'busy' or 'nomem'; fake_online(start, nr), when given,
#   is told of a range given back (virtio_mem_fake_online() on a BBM rollback).

VM_SBM_OFFLINE_PARTIAL = "OFFLINE_PARTIAL"
VM_SBM_OFFLINE = "OFFLINE"
VM_SBM_MOVABLE_PARTIAL = "MOVABLE_PARTIAL"
VM_SBM_KERNEL_PARTIAL = "KERNEL_PARTIAL"
VM_SBM_MOVABLE = "MOVABLE"
VM_SBM_KERNEL = "KERNEL"
VM_SBM_UNUSED = "UNUSED"
VM_BBM_ADDED = "ADDED"
VM_BBM_FAKE_OFFLINE = "FAKE_OFFLINE"
VM_BBM_PLUGGED = "PLUGGED"
VM_BBM_UNUSED = "UNUSED"

# virtio_mem_sbm_unplug_request(): partially plugged blocks first, ZONE_MOVABLE before kernel
VM_SBM_UNPLUG_ORDER = (VM_SBM_OFFLINE_PARTIAL, VM_SBM_OFFLINE, VM_SBM_MOVABLE_PARTIAL,
                       VM_SBM_KERNEL_PARTIAL, VM_SBM_MOVABLE, VM_SBM_KERNEL)
VM_MAX_PASSES = 16
VM_MOVABLE_TRIES = 5          # virtio_mem_fake_offline(): retry_count < 5 on ZONE_MOVABLE
VM_OK, VM_EBUSY, VM_ENOMEM = 0, "EBUSY", "ENOMEM"


class RefVirtioMem:
    """One virtio-mem device whose region is ``region_pages`` pages, ``block_is_movable[i]``
    telling whether memory block i of the region lies in ZONE_MOVABLE.

    SBM: ``plugged[mb][sb]`` (True = plugged) and ``mb_state[mb]``; BBM: ``bb_state[bb]``.
    ``fake_offline_calls`` counts alloc_contig_range() attempts, ``removed_blocks`` the Linux
    memory blocks removed (a big block removes bb_size / memory block of them)."""

    def __init__(self, region_pages, memory_block_pages, section_pages, device_block_pages,
                 pageblock_order, max_order, maxorder_regime, block_is_movable, force_bbm=False):
        assert region_pages % memory_block_pages == 0, "region not a whole number of memory blocks"
        assert memory_block_pages % section_pages == 0
        assert len(block_is_movable) == region_pages // memory_block_pages
        self.region_pages = region_pages
        self.mb_pages = memory_block_pages
        self.section_pages = section_pages
        self.block_is_movable = list(block_is_movable)
        sb = max(device_block_pages, 1 << pageblock_order)
        if maxorder_regime:
            sb = max(sb, 1 << max_order)
        self.in_sbm = sb < memory_block_pages and not force_bbm
        self.fake_offline_calls = 0
        self.removed_blocks = 0
        self.plugged_pages = region_pages
        if self.in_sbm:
            self.sb_size = sb
            self.sbs_per_mb = memory_block_pages // sb
            nr_mb = region_pages // memory_block_pages
            self.plugged = [[True] * self.sbs_per_mb for _ in range(nr_mb)]
            self.mb_state = [VM_SBM_MOVABLE if m else VM_SBM_KERNEL for m in block_is_movable]
            self.bb_size = 0
            self.bb_state = []
        else:
            self.bb_size = max(device_block_pages, memory_block_pages)
            assert region_pages % self.bb_size == 0, "region not a whole number of big blocks"
            self.bb_state = [VM_BBM_ADDED] * (region_pages // self.bb_size)
            self.sb_size = 0
            self.sbs_per_mb = 0
            self.plugged = []
            self.mb_state = []
        self._cb = None
        self._online_cb = None

    # --- the driver's main loop -----------------------------------------------------------

    def resize(self, requested_pages, fake_offline, fake_online=None):
        """The host asks for ``requested_pages`` plugged: run unplug passes (virtio_mem_run_wq()
        -> virtio_mem_unplug_request()) until one unplugs nothing, at most 16; return the pages
        unplugged."""
        self._cb, self._online_cb = fake_offline, fake_online
        total = 0
        for _ in range(VM_MAX_PASSES):
            if self.plugged_pages <= requested_pages:
                break
            before = self.plugged_pages
            diff = self.plugged_pages - requested_pages
            if self.in_sbm:
                self.sbm_unplug_request(diff)
            else:
                self.bbm_unplug_request(diff)
            done = before - self.plugged_pages
            total += done
            if done == 0:
                break
        self._cb = self._online_cb = None
        return total

    def is_movable_at(self, pfn):
        """is_zone_movable_page(pfn_to_page(pfn)) for an offset in the region."""
        return self.block_is_movable[pfn // self.mb_pages]

    def fake_offline(self, pfn, nr_pages):
        """virtio_mem_fake_offline(): five alloc_contig_range() tries on ZONE_MOVABLE, one
        elsewhere; -ENOMEM returns at once."""
        is_movable = self.is_movable_at(pfn)
        for _ in range(VM_MOVABLE_TRIES):
            self.fake_offline_calls += 1
            rc = self._cb(pfn, nr_pages)
            assert rc in ("ok", "busy", "nomem"), rc
            if rc == "nomem":
                return VM_ENOMEM
            if rc != "ok" and not is_movable:
                break
            if rc != "ok":
                continue
            return VM_OK
        return VM_EBUSY

    def fake_online(self, pfn, nr_pages):
        """virtio_mem_fake_online(): the range goes back to the buddy."""
        if self._online_cb is not None:
            self._online_cb(pfn, nr_pages)

    # --- SBM -------------------------------------------------------------------------------

    def sbm_unplug_request(self, diff):
        """virtio_mem_sbm_unplug_request(): visit the blocks state by state in
        VM_SBM_UNPLUG_ORDER, each state's blocks from the highest id down."""
        self._nb_sb = diff // self.sb_size
        if not self._nb_sb:
            return VM_OK
        for state in VM_SBM_UNPLUG_ORDER:
            for mb in range(len(self.mb_state) - 1, -1, -1):
                if self.mb_state[mb] != state:
                    continue
                rc = self.sbm_unplug_any_sb(mb)
                if rc != VM_OK or not self._nb_sb:
                    return rc
        return VM_EBUSY if self._nb_sb else VM_OK

    def sbm_unplug_any_sb(self, mb):
        state = self.mb_state[mb]
        if state in (VM_SBM_KERNEL_PARTIAL, VM_SBM_KERNEL, VM_SBM_MOVABLE_PARTIAL, VM_SBM_MOVABLE):
            return self.sbm_unplug_any_sb_online(mb)
        raise AssertionError(f"block {mb} in state {state}: offline blocks are not modelled")

    def _all_plugged(self, mb):
        return all(self.plugged[mb])

    def _all_unplugged(self, mb):
        return not any(self.plugged[mb])

    def sbm_unplug_any_sb_online(self, mb):
        """Whole block in one shot when at least sbs_per_mb subblocks are wanted and all are
        plugged; else (or on -EBUSY) single subblocks from the highest down, skipping busy ones;
        then remove the block if nothing in it is plugged."""
        if self._nb_sb >= self.sbs_per_mb and self._all_plugged(mb):
            rc = self.sbm_unplug_sb_online(mb, 0, self.sbs_per_mb)
            if rc == VM_OK:
                self._nb_sb -= self.sbs_per_mb
                return self._sbm_unplugged(mb)
            if rc != VM_EBUSY:
                return rc
        sb = self.sbs_per_mb - 1
        while sb >= 0 and self._nb_sb:
            while sb >= 0 and not self.plugged[mb][sb]:
                sb -= 1
            if sb < 0:
                break
            rc = self.sbm_unplug_sb_online(mb, sb, 1)
            if rc == VM_EBUSY:
                sb -= 1
                continue
            if rc != VM_OK:
                return rc
            self._nb_sb -= 1
            sb -= 1
        return self._sbm_unplugged(mb)

    def _sbm_unplugged(self, mb):
        """virtio_mem_sbm_try_remove_unplugged_mb() (never fails here)."""
        if self._all_unplugged(mb):
            self.mb_state[mb] = VM_SBM_UNUSED
            self.removed_blocks += 1
        return VM_OK

    def sbm_unplug_sb_online(self, mb, sb, count):
        """virtio_mem_sbm_unplug_sb_online(): fake-offline, unplug, mark the block partial."""
        start = mb * self.mb_pages + sb * self.sb_size
        nr = count * self.sb_size
        rc = self.fake_offline(start, nr)
        if rc != VM_OK:
            return rc
        for i in range(sb, sb + count):
            assert self.plugged[mb][i]
            self.plugged[mb][i] = False
        self.plugged_pages -= nr
        if self.mb_state[mb] == VM_SBM_KERNEL:
            self.mb_state[mb] = VM_SBM_KERNEL_PARTIAL
        elif self.mb_state[mb] == VM_SBM_MOVABLE:
            self.mb_state[mb] = VM_SBM_MOVABLE_PARTIAL
        return VM_OK

    # --- BBM -------------------------------------------------------------------------------

    def bb_is_movable(self, bb):
        """virtio_mem_bbm_bb_is_movable(): every (online) section in ZONE_MOVABLE."""
        start = bb * self.bb_size
        return all(self.is_movable_at(p) for p in range(start, start + self.bb_size, self.section_pages))

    def bbm_unplug_request(self, diff):
        """virtio_mem_bbm_unplug_request(): three passes over the ADDED big blocks from the
        highest id down: offline ones (none here), ZONE_MOVABLE-only ones, any."""
        nb_bb = diff // self.bb_size
        if not nb_bb:
            return VM_OK
        for i in range(3):
            for bb in range(len(self.bb_state) - 1, -1, -1):
                if self.bb_state[bb] != VM_BBM_ADDED:
                    continue
                if i == 0:          # virtio_mem_bbm_bb_is_offline(): all blocks are online
                    continue
                if i == 1 and not self.bb_is_movable(bb):
                    continue
                rc = self.bbm_offline_remove_and_unplug_bb(bb)
                if rc == VM_EBUSY:
                    continue
                if rc == VM_OK:
                    nb_bb -= 1
                if rc != VM_OK or not nb_bb:
                    return rc
        return VM_EBUSY if nb_bb else VM_OK

    def bbm_offline_remove_and_unplug_bb(self, bb):
        """Fake-offline the big block a section at a time; on failure give back the sections
        taken so far and return the error; else remove and unplug it."""
        assert self.bb_state[bb] == VM_BBM_ADDED
        self.bb_state[bb] = VM_BBM_FAKE_OFFLINE
        start = bb * self.bb_size
        end = start + self.bb_size
        for pfn in range(start, end, self.section_pages):
            rc = self.fake_offline(pfn, self.section_pages)
            if rc != VM_OK:
                for q in range(start, pfn, self.section_pages):
                    self.fake_online(q, self.section_pages)
                self.bb_state[bb] = VM_BBM_ADDED
                return rc
        self.removed_blocks += self.bb_size // self.mb_pages
        self.bb_state[bb] = VM_BBM_UNUSED
        self.plugged_pages -= self.bb_size
        return VM_OK
