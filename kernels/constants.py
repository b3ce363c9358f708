"""Names and numbers shared by the jitted model and its Python wrappers.

Everything a sweep can vary lives in the zone's parameter array (see zone.py), never here:
numba freezes module globals at compile time, so only true constants belong in this module.
"""

PAGE_SHIFT = 12
PAGE_ALLOC_COSTLY_ORDER = 3

# enum migratetype (include/linux/mmzone.h, with CONFIG_CMA and CONFIG_MEMORY_ISOLATION)
MIGRATE_UNMOVABLE = 0
MIGRATE_MOVABLE = 1
MIGRATE_RECLAIMABLE = 2
MIGRATE_PCPTYPES = 3
MIGRATE_HIGHATOMIC = 3
MIGRATE_CMA = 4
MIGRATE_ISOLATE = 5
MIGRATE_TYPES = 6
# As /proc/pagetypeinfo prints them.
MIGRATETYPE_NAMES = ("Unmovable", "Movable", "Reclaimable", "HighAtomic", "CMA", "Isolate")

# HPAGE_PMD_ORDER on x86-64 with 4 KiB pages: the order of a THP, whatever pageblock_order is
HPAGE_PMD_ORDER = 9

# Allocator policies (kernel versions whose fallback and free paths the model follows).
POLICY_V5_4 = 0
POLICY_V6_1 = 1
POLICY_V6_10 = 2
POLICY_V6_15 = 3
POLICY_NOMOBILITY = 4
POLICY_V6_16 = 5
POLICY_V6_17 = 6
POLICIES = {"v5.4": POLICY_V5_4, "v6.1": POLICY_V6_1, "v6.10": POLICY_V6_10,
            "v6.15": POLICY_V6_15, "v6.16": POLICY_V6_16, "v6.17": POLICY_V6_17,
            "nomobility": POLICY_NOMOBILITY}

# Fallback search variants (kernel-allocator.md 4.6) and free-path merge rules (5.1).
FALLBACK_A = 0      # <= 6.9: steal_suitable_fallback moves pages, __rmqueue retries
FALLBACK_B = 1      # 6.10-6.13: freelist hygiene
FALLBACK_D = 2      # 6.15+: __rmqueue_claim / __rmqueue_steal, sticky rmqueue_mode
MERGE_PRE_5_19 = 0  # only ISOLATE blocks refuse to merge at >= pageblock_order
MERGE_5_19 = 1      # migratetype_is_mergeable(), no re-typing
MERGE_HYGIENE = 2   # as 5.19 and re-type the merged buddy, split_large_buddy on free

# rmqueue_mode (6.15)
RMQUEUE_NORMAL = 0
RMQUEUE_CMA = 1
RMQUEUE_CLAIM = 2
RMQUEUE_STEAL = 3

# Per-page flag bits (page_flags array).
PG_BUDDY = 1      # head of a free block on a buddy free list (PageBuddy)
PG_HEAD = 2       # head of an allocated block
PG_RESERVED = 4   # hole / memblock reserved: never free, never movable
PG_LRU = 8        # page of a movable allocation (PageLRU): counted as movable by claim logic
PG_PINNED = 16    # movable but pinned: migration fails
PG_PCP = 32       # head of a block parked on a per-cpu list
PG_CONTIG = 64    # page held by alloc_contig_range() (CMA, gigantic pages): unmovable until released
PG_ISOLATED = 128 # head of a free block isolated by the compaction free scanner (cc->freepages)
PG_MASK = 0xFF    # all bits: flags are cleared with `&= PG_MASK ^ bit` (no negative masks)
# A bit of an allocation's `extra` argument beside the page flags above, never stored on a page:
# the request is GFP_ATOMIC (no __GFP_DIRECT_RECLAIM, __GFP_HIGH, no __GFP_NOMEMALLOC).
GFP_ATOMIC = 256
# More such bits: the request's gfp lacks __GFP_KSWAPD_RECLAIM (no kswapd wakeup, no
# ALLOC_KSWAPD), or lacks __GFP_DIRECT_RECLAIM (no direct reclaim): THP faults' GFP_TRANSHUGE_LIGHT.
GFP_NO_KSWAPD = 512
GFP_NO_DIRECT_RECLAIM = 1024
# The slow path compacts before it reclaims (a costly order, or order > 0 not movable):
# alloc_pages_fast() stops after the min watermark, and the caller compacts, then reclaims.
GFP_COMPACT_FIRST = 2048

# alloc_flags of one get_page_from_freelist() walk (mm/internal.h; the model's own values)
ALLOC_CMA = 1             # may use MIGRATE_CMA free pages (gfp_to_alloc_flags_cma())
ALLOC_MIN_RESERVE = 2     # __GFP_HIGH: half the min watermark
ALLOC_NON_BLOCK = 4       # cannot reclaim: a further quarter of it
ALLOC_HIGHATOMIC = 8      # a high-order atomic request: may use (and reserves) HIGHATOMIC blocks
ALLOC_KSWAPD = 16         # __GFP_KSWAPD_RECLAIM: a boost wakes kswapd at the end of rmqueue()
ALLOC_RESERVES = ALLOC_MIN_RESERVE | ALLOC_NON_BLOCK | ALLOC_HIGHATOMIC

# Indices into the zone parameter array `zp` (int64). Filled in zone.py.
ZP_NR_PAGES = 0
ZP_MAX_ORDER = 1
ZP_PAGEBLOCK_ORDER = 2
ZP_POLICY = 3
ZP_FALLBACK = 4
ZP_MERGE = 5
ZP_BOOT_TO_TAIL = 6
ZP_MOBILITY_DISABLED = 7
ZP_WMARK_MIN = 8
ZP_WMARK_LOW = 9
ZP_WMARK_HIGH = 10
ZP_PCP = 11
ZP_PCP_BATCH = 12
ZP_PCP_HIGH = 13
ZP_MANAGED = 14
ZP_SECTION_SHIFT = 15     # section size in pages, as a shift
ZP_MEMBLOCK_SHIFT = 16    # memory block size in pages, as a shift
ZP_MOVE_TO_TAIL = 17      # move_to_free_list() appends at the tail (5.10+) rather than the head
ZP_PCP_THP_ORDER = 18     # the order of the THP pcp lists (5.13+; 0: order-0 lists only)
ZP_CMA_BALANCE = 19       # __rmqueue() serves movable requests from CMA when CMA holds most free memory
ZP_ZONE_START = 20        # zone_start_pfn: the zone spans [start, end) of the node's pfns
ZP_ZONE_END = 21
ZP_ZONE_IDX = 22          # ZONE_DMA, ZONE_DMA32, ZONE_NORMAL or ZONE_MOVABLE
ZP_NOFRAGMENT = 23        # ALLOC_NOFRAGMENT of the request being served (set around rmqueue())
ZP_COMPACT_LARGE = 24     # compaction migrates large folios below the target order (6.9+)
ZP_HUGETLB_SKIP = 25      # alloc_contig_pages() skips ranges holding hugetlb pages (6.3+)
ZP_CONTIG_MAXORDER = 26   # alloc_contig_range() isolates max(MAX_ORDER, pageblock) blocks (pre-5.19)
ZP_CMA_START = 27         # the CMA area [start, end) inside this zone (start == end: none)
ZP_CMA_END = 28
ZP_PCP_BASE = 29          # first pcp list in the zone's list_head / list_tail arrays
ZP_CC_BASE = 30           # first list of compaction's isolated free pages
ZP_CLAIM_STOP = 31        # __rmqueue_claim() stops at the first order too low to claim (6.16+)
ZP_ISOLATE_RESTORE = 32   # undoing an isolation restores each pageblock's own type (6.17+)
ZP_ISO_SAVED_BASE = 33    # list_head from here, by pageblock: its type before its isolation;
                          # list_tail from here, by pageblock: PB_migrate_skip (> 0: set)
ZP_PCP_RULES = 34         # which kernel's per-cpu list rules: PCP_RULES_*
ZP_PCP_HIGH_MIN = 35      # pcp->high_min (6.7+: high is tuned between high_min and high_max)
ZP_PCP_HIGH_MAX = 36      # pcp->high_max
ZP_PCP_ALLOC_FACTOR = 37  # pcp->alloc_factor (6.7+): refills of order 0 grow to batch << alloc_factor
ZP_PCP_FLAGS = 38         # pcp->flags: PCPF_PREV_FREE_HIGH_ORDER | PCPF_FREE_HIGH_BATCH
ZP_BELOW_HIGH = 39        # ZONE_BELOW_HIGH: the zone fell below its high watermark (6.7+)
ZP_VMSTAT_INTERVAL = 40   # the simulated clock: a vmstat update every N allocator calls (0: none)
ZP_VMSTAT_COUNTDOWN = 41  # allocator calls left until the next vmstat update
ZP_NR_CPUS = 42           # CPUs, each with its own pcp lists and state (MODEL.md, per-cpu lists)
ZP_CPU = 43               # the CPU whose pcp lists and state are loaded (pcp_switch_cpu())
ZP_PCP_COUNT = 44         # pcp->count of that CPU (stat[PCP_COUNT] is the sum over the CPUs)
ZP_PCP_BANKS = 45         # list_head / list_tail from here: every CPU's pcp lists while unloaded
ZP_LOWMEM_RESERVE = 46    # from here, MAX_NR_ZONES slots: lowmem_reserve[highest_zoneidx]
ZP_NODE_DMA32 = 50        # the node has a populated ZONE_DMA32 (alloc_flags_nofragment())
ZP_PCPS = 51              # from here, PCPS_SLOTS per CPU: its pcp state while unloaded
MAX_CPUS = 16
PCPS_SLOTS = 7            # count, high, alloc_factor, free_count (free_factor), flags, untraced,
                          # vm_stat_diff
PCPS_UNTRACED = 5         # slot: pages counted on that CPU's lists that no list of the model holds
                          # (replay: pages a snapshot counts on the pcp lists that the trace never
                          # shows); they stay in count and are never drained
PCPS_VM_DIFF = 6          # slot: that CPU's vm_stat_diff[NR_FREE_PAGES], not yet in ZP_VM_FREE
                          # (always here, loaded CPU or not)
ZP_CC = ZP_PCPS + MAX_CPUS * PCPS_SLOTS   # from here, CC_SIZE slots: the compaction control of
                          # an allocation made inside the model (a hugetlb page's replacement)
CC_SIZE = 11
CCF_IGNORE_SKIP = 1      # cc[10] flags: cc->ignore_skip_hint
CCF_DIRECT = 2           # cc->direct_compaction
# watermark boosting (boost_watermark(), mm/page_alloc.c), per zone
ZP_WMARK_BOOST = ZP_CC + CC_SIZE      # zone->watermark_boost (wmark_pages() adds it)
ZP_BOOSTED = ZP_WMARK_BOOST + 1       # ZONE_BOOSTED_WATERMARK: wake kswapd at the end of rmqueue()
ZP_BOOST_FACTOR = ZP_WMARK_BOOST + 2  # vm.watermark_boost_factor (0: no boosting)
# kswapd, kcompactd and the page cache's LRU (mm/vmscan.c, mm/compaction.c): node state, kept
# in the first zone's zp
ZP_KSWAPD = ZP_WMARK_BOOST + 3        # kswapd runs (1) or not (0: the switch)
ZP_KCOMPACTD = ZP_WMARK_BOOST + 4     # kcompactd runs (1) or not
ZP_BG_PENDING = ZP_WMARK_BOOST + 5    # BG_KSWAPD | BG_KCOMPACTD: woken, runs after this call
ZP_KSWAPD_ORDER = ZP_WMARK_BOOST + 6  # pgdat->kswapd_order
ZP_KSWAPD_HIGHEST = ZP_WMARK_BOOST + 7  # pgdat->kswapd_highest_zoneidx (-1: MAX_NR_ZONES, none)
ZP_KSWAPD_FAILURES = ZP_WMARK_BOOST + 8  # pgdat->kswapd_failures
ZP_KCOMPACTD_ORDER = ZP_WMARK_BOOST + 9  # pgdat->kcompactd_max_order
ZP_KCOMPACTD_HIGHEST = ZP_WMARK_BOOST + 10  # pgdat->kcompactd_highest_zoneidx
ZP_LRU_BASE = ZP_WMARK_BOOST + 11     # the page cache: owner slots [base, base + cap) form a ring
ZP_LRU_CAP = ZP_WMARK_BOOST + 12      # of clean file pages, oldest at the head
ZP_LRU_HEAD = ZP_WMARK_BOOST + 13     # ring positions (counting up; slot = base + pos % cap)
ZP_LRU_TAIL = ZP_WMARK_BOOST + 14
ZP_NR_FILE = ZP_WMARK_BOOST + 15      # pages of the page cache (NR_FILE_PAGES)
ZP_PROACTIVENESS = ZP_WMARK_BOOST + 16  # vm.compaction_proactiveness (0: none)
ZP_PROACTIVE_INTERVAL = ZP_WMARK_BOOST + 17  # allocator calls per HPAGE_FRAG_CHECK_INTERVAL_MSEC
ZP_PROACTIVE_COUNTDOWN = ZP_WMARK_BOOST + 18
ZP_PROACTIVE_DEFER = ZP_WMARK_BOOST + 19  # intervals left to skip (proactive_defer)
ZP_IN_BACKGROUND = ZP_WMARK_BOOST + 20  # kswapd or kcompactd is running (no nested wakeups run)
ZP_BLOCKSKIP_FLUSH = ZP_WMARK_BOOST + 21  # zone->compact_blockskip_flush: clear the skip hints at the next reset
# the per-cpu vmstat counters of NR_FREE_PAGES (mm/vmstat.c): what zone_page_state() reads
ZP_VM_FREE = ZP_WMARK_BOOST + 22      # zone->vm_stat[NR_FREE_PAGES]: the CPUs' diffs folded so far
ZP_STAT_THRESHOLD = ZP_WMARK_BOOST + 23  # each CPU's stat_threshold (0: every change folds at once)
ZP_SIZE = ZP_WMARK_BOOST + 24
BG_KSWAPD = 1
BG_KCOMPACTD = 2
BG_PROACTIVE = 4
MAX_RECLAIM_RETRIES = 16
SWAP_CLUSTER_MAX = 32
DEF_PRIORITY = 12

# Per-cpu list rules (ZP_PCP_RULES), by the release whose code they follow
PCP_RULES_5_4 = 0         # high = 6 * batch, a full list frees `batch` pages; order 0 only
PCP_RULES_6_1 = 1         # high from the low watermark, free_factor doubles the drain
PCP_RULES_6_7 = 2         # high tuned between high_min and high_max, alloc_factor, free_count, decay
PCP_RULES_6_16 = 3        # 6.7 + free_high only once free_count >= batch + high_min / 2
PCP_BATCH_SCALE_MAX = 5   # CONFIG_PCP_BATCH_SCALE_MAX (default 5)
PCPF_PREV_FREE_HIGH_ORDER = 1
PCPF_FREE_HIGH_BATCH = 2

ZONE_DMA = 0
ZONE_DMA32 = 1
ZONE_NORMAL = 2
ZONE_MOVABLE = 3
MAX_NR_ZONES = 4
ZONE_NAMES = ("DMA", "DMA32", "Normal", "Movable")
# sysctl_lowmem_reserve_ratio[] defaults (mm/page_alloc.c)
LOWMEM_RESERVE_RATIO = (256, 256, 32, 0)
# the x86-64 zone limits: ZONE_DMA below 16 MiB, ZONE_DMA32 below 4 GiB (in pages)
X86_64_DMA_END = (16 << 20) >> PAGE_SHIFT
X86_64_DMA32_END = (4 << 30) >> PAGE_SHIFT

# Indices into the counter array `stat` (int64). Names with a /proc/vmstat twin use its name.
NR_FREE_PAGES = 0
NR_FREE_CMA_PAGES = 1
ALLOC_OPS = 2
ALLOC_FAIL = 3
FREE_OPS = 4
SPLIT_STEPS = 5
MERGE_STEPS = 6
ORDERS_SCANNED = 7
WMARK_ORDERS_SCANNED = 8
FALLBACK_CLAIM = 9
FALLBACK_STEAL = 10
PGALLOC = 11
PGFREE = 12
PCP_COUNT = 13
PCP_FREE_FACTOR = 14      # the loaded CPU's pcp free_factor (6.1) / free_count (6.7+)
PCP_REFILLS = 15
PCP_DRAINS = 16
COMPACT_STALL = 17
COMPACT_SUCCESS = 18
COMPACT_FAIL = 19
COMPACT_MIGRATE_SCANNED = 20
COMPACT_FREE_SCANNED = 21
COMPACT_ISOLATED = 22
PGMIGRATE_SUCCESS = 23
PGMIGRATE_FAIL = 24
COMPACT_DEFERRED = 25
# zone state kept with the counters (not reported as events)
CACHED_MIGRATE_PFN = 26    # zone->compact_cached_migrate_pfn
CACHED_FREE_PFN = 27       # zone->compact_cached_free_pfn
COMPACT_CONSIDERED = 28    # zone->compact_considered
COMPACT_DEFER_SHIFT = 29   # zone->compact_defer_shift
COMPACT_ORDER_FAILED = 30  # zone->compact_order_failed
NR_ISOLATE_PAGEBLOCK = 31  # zone->nr_isolate_pageblock
CC_NR_FREEPAGES = 32       # pages on the running compaction's free lists
MAX_SPLIT_STEPS = 33       # the most split steps one allocation took (worst case)
MAX_MERGE_STEPS = 34       # the most merge steps one free took
MAX_ORDERS_SCANNED = 35    # the most free-list orders one allocation probed
NR_RESERVED_HIGHATOMIC = 36  # zone->nr_reserved_highatomic
NR_FREE_HIGHATOMIC = 37    # zone->nr_free_highatomic (6.12): free pages on the HIGHATOMIC lists
NR_SPLIT = 38              # large folios split by migration (migrate_pages_stats.nr_split)
HIGHATOMIC_EVER = 39       # pageblocks ever reserved highatomic (check.py: unmerged buddies allowed)
NR_HUGETLB_REPLACED = 40   # free hugetlb pages alloc_contig_range() replaced (alloc_and_dissolve_hugetlb_folio())
NR_HUGETLB_DISSOLVED = 41  # free hugetlb pages offlining dissolved (dissolve_free_hugetlb_folios())
PGSTEAL_KSWAPD = 42        # page cache pages kswapd reclaimed
PGSTEAL_DIRECT = 43        # page cache pages direct reclaim reclaimed
PAGEOUTRUN = 44            # kswapd runs (balance_pgdat())
COMPACT_DAEMON_WAKE = 45   # kcompactd runs (kcompactd_do_work())
NR_WATERMARK_BOOSTS = 46   # boost_watermark() raised the zone's boost
PROACTIVE_COMPACT = 47     # proactive compactions (proactive_compact_node())
# hazards of a max_order above the memory block's order (page_isolation.py: offline_pages(),
# online_pages()); 0 wherever the kernel builds (MAX_PAGE_ORDER + PAGE_SHIFT <= SECTION_SIZE_BITS)
HAZARD_OFFLINE_LOST = 48   # pages beyond an offlined block that __offline_isolated_pages() took
HAZARD_ONLINE_BEYOND = 49  # pages beyond an onlined block that online_pages_range() freed
NR_STATS = 50
COUNTER_NAMES = (
    "nr_free_pages", "nr_free_cma", "alloc_ops", "alloc_fail", "free_ops", "split_steps",
    "merge_steps", "orders_scanned", "wmark_orders_scanned", "fallback_claim", "fallback_steal",
    "pgalloc_normal", "pgfree", "pcp_count", "pcp_free_factor", "pcp_refills", "pcp_drains",
    "compact_stall", "compact_success", "compact_fail", "compact_migrate_scanned",
    "compact_free_scanned", "compact_isolated", "pgmigrate_success", "pgmigrate_fail",
    "compact_deferred", "compact_cached_migrate_pfn", "compact_cached_free_pfn",
    "compact_considered", "compact_defer_shift", "compact_order_failed", "nr_isolate_pageblock",
    "cc_nr_freepages", "max_split_steps", "max_merge_steps", "max_orders_scanned",
    "nr_reserved_highatomic", "nr_free_highatomic", "nr_split", "highatomic_ever",
    "nr_hugetlb_replaced", "nr_hugetlb_dissolved", "pgsteal_kswapd", "pgsteal_direct",
    "pageoutrun", "compact_daemon_wake", "nr_watermark_boosts", "proactive_compact",
    "hazard_offline_lost_pages", "hazard_online_beyond_block_pages",
)

# Per-cpu lists: orders 0..3 x (UNMOVABLE, MOVABLE, RECLAIMABLE), then two THP lists: UNMOVABLE and
# RECLAIMABLE share one, MOVABLE has the other (NR_PCP_THP = 2; "mm/page_alloc: separate THP PCP
# into movable and non-movable categories", in 6.10 and in the 6.1 stable series).
NR_LOWORDER_PCP_LISTS = (PAGE_ALLOC_COSTLY_ORDER + 1) * MIGRATE_PCPTYPES
NR_PCP_THP = 2
NR_PCP_LISTS = NR_LOWORDER_PCP_LISTS + NR_PCP_THP
