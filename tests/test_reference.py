"""Tests of the pure-Python reference model alone. Expected numbers are derived by hand from
kernels/MODEL.md (derivations in the comments); Hypothesis drives random operation sequences
through check()."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reference import (CMA, ISOLATE, MOVABLE, POLICIES, RECLAIMABLE, UNMOVABLE, RefZone)

U, M, R = UNMOVABLE, MOVABLE, RECLAIMABLE
TAIL_POLICIES = ("v6.1", "v6.10", "v6.15", "v6.16", "nomobility")


def boot_type(policy):
    return U if policy == "nomobility" else M


def delta(before, after):
    return {k: after[k] - before[k] for k in after if after[k] != before[k]}


# --------------------------------------------------------------------------- boot


BOOT_GEOMETRIES = [
    # (nr_pages, max_order, pageblock_order, holes, buddyinfo)
    # exactly one max-order block
    (1024, 10, 9, (), [0] * 10 + [1]),
    # 3107 = 3 * 1024 + 32 + 2 + 1: 0, 1024, 2048 at order 10; 3072 has ctz 10 but only 35
    # pages remain: order 5; 3104 -> order 1; 3106 -> order 0.
    (3107, 10, 9, (), [1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 3]),
    # [0, 100): 0@6, 64@5, 96@2. [200, 1024): 200@3, 208@4, 224@5, 256@8, 512@9.
    # [1030, 4096): 1030@1, 1032@3, 1040@4, 1056@5, 1088@6, 1152@7, 1280@8, 1536@9, 2048@10,
    # 3072@10. Free pages 4096 - 100 - 6 = 3990.
    (4096, 10, 9, ((100, 200), (1024, 1030)), [0, 1, 1, 2, 2, 3, 2, 1, 2, 2, 2]),
    # pfn 0 reserved: 1@0, 2@1, 4@2, 8@3, 16@4, 32@5.
    (64, 5, 3, ((0, 1),), [1, 1, 1, 1, 1, 1]),
    # [0, 4): 0@2. [16, 28): 16@3 (16 + 16 > 28), 24@2.
    (32, 5, 2, ((4, 16), (28, 32)), [0, 0, 2, 1, 0, 0]),
]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("nr_pages,max_order,pb_order,holes,buddyinfo", BOOT_GEOMETRIES)
def test_boot_buddyinfo(policy, nr_pages, max_order, pb_order, holes, buddyinfo):
    z = RefZone(nr_pages, max_order, pb_order, policy=policy, holes=holes)
    z.check()
    assert z.buddyinfo() == buddyinfo
    free_pages = sum(n << o for o, n in enumerate(buddyinfo))
    hole_pages = sum(e - s for s, e in holes)
    assert free_pages == nr_pages - hole_pages
    c = z.counters()
    assert c.pop("nr_free_pages") == free_pages
    assert set(c.values()) == {0}, "event counters are zeroed after boot"
    nr_pageblocks = -(-nr_pages // (1 << pb_order))
    assert z.pageblock_types() == [boot_type(policy)] * nr_pageblocks
    assert {mt for (_, mt) in z.free_lists()} == {boot_type(policy)}
    assert z.pcp_lists() == {}


@pytest.mark.parametrize("policy", POLICIES)
def test_boot_list_order_head_vs_tail(policy):
    z = RefZone(4096, 10, 9, policy=policy)
    mt = boot_type(policy)
    if policy == "v5.4":
        assert z.free_lists() == {(10, mt): [3072, 2048, 1024, 0]}
    else:
        assert z.free_lists() == {(10, mt): [0, 1024, 2048, 3072]}
    # The first allocation takes the head of the order-10 list.
    assert z.alloc(0, M) == (3072 if policy == "v5.4" else 0)


@pytest.mark.parametrize("policy", POLICIES)
def test_boot_list_order_with_holes(policy):
    # Order-5 chunks at 64, 224, 1056 (see BOOT_GEOMETRIES). v5.4 frees without FPI_TO_TAIL:
    # 64's parent's buddy (0, order 6) is already free, so buddy_merge_likely puts it at the
    # tail; 224 (parent 192, its buddy 128 is in the hole) and 1056 (parent 1024, buddy 1088 not
    # yet freed) go to the head: [1056, 224, 64].
    z = RefZone(4096, 10, 9, policy=policy, holes=((100, 200), (1024, 1030)))
    mt = boot_type(policy)
    lists = z.free_lists()
    assert lists[(5, mt)] == ([1056, 224, 64] if policy == "v5.4" else [64, 224, 1056])
    assert lists[(10, mt)] == ([3072, 2048] if policy == "v5.4" else [2048, 3072])


@pytest.mark.parametrize("policy", POLICIES)
def test_boot_buddy_merge_likely_tail(policy):
    # 0@2 first; then 16@3; then 24@2, whose parent's buddy 16 is a free order-3 block: tail
    # even on v5.4 (which would otherwise insert at the head, giving [24, 0]).
    z = RefZone(32, 5, 2, policy=policy, holes=((4, 16), (28, 32)))
    mt = boot_type(policy)
    assert z.free_lists() == {(2, mt): [0, 24], (3, mt): [16]}


# --------------------------------------------------------------------------- split / merge steps


SPLIT_GEOMETRIES = [
    # (max_order, pageblock_order, nr_pages)
    (10, 9, 1 << 10),
    (10, 9, 1 << 11),
    (10, 3, 1 << 11),
    (18, 9, 1 << 18),
    (18, 4, 1 << 18),
    (18, 9, 1 << 19),
]


@pytest.mark.parametrize("policy", POLICIES)
@pytest.mark.parametrize("max_order,pb_order,nr_pages", SPLIT_GEOMETRIES)
def test_first_order0_allocation_split_and_merge_steps(policy, max_order, pb_order, nr_pages):
    z = RefZone(nr_pages, max_order, pb_order, policy=policy)
    boot_lists = z.free_lists()
    boot_info = z.buddyinfo()
    head = boot_lists[(max_order, boot_type(policy))][0]
    assert head == (nr_pages - (1 << max_order) if policy == "v5.4" else 0)

    # __rmqueue_smallest scans orders 0..M (M + 1 orders) and finds only the order-M block;
    # expand() splits it M times. Order 0 passes the watermark gate without scanning.
    assert z.alloc(0, M) == head
    c = z.counters()
    assert c["split_steps"] == max_order
    assert c["orders_scanned"] == max_order + 1
    assert (c["alloc_ops"], c["pgalloc"], c["alloc_fail"]) == (1, 1, 0)
    assert (c["merge_steps"], c["wmark_orders_scanned"]) == (0, 0)
    assert (c["fallback_claim"], c["fallback_steal"]) == (0, 0)
    assert c["nr_free_pages"] == nr_pages - 1
    assert z.buddyinfo()[:max_order] == [1] * max_order
    z.check()

    # Freeing it merges once per order back to M; an order-M block goes to the head, which
    # is where it came from, so the boot lists are restored exactly.
    z.free(head)
    c = z.counters()
    assert c["merge_steps"] == max_order
    assert (c["free_ops"], c["pgfree"]) == (1, 1)
    assert c["nr_free_pages"] == nr_pages
    assert z.free_lists() == boot_lists
    assert z.buddyinfo() == boot_info
    z.check()


def test_whole_block_consumed_costs_2k_minus_1_splits():
    # Consuming a whole order-k block one page at a time costs 2^k - 1 splits in total.
    z = RefZone(256, 8, 4, policy="v6.15", min_free_kbytes=0)
    assert [z.alloc(0, M) for _ in range(256)] == list(range(256))
    assert z.counters()["split_steps"] == 255
    assert z.alloc(0, M) == -1
    z.check()


# --------------------------------------------------------------------------- watermarks, pcp sizing


@pytest.mark.parametrize("nr_pages,holes,expected", [
    # 4 GiB: managed_kbytes 2^22, isqrt(2^26) = 8192 -> min 2048;
    # d = max(512, 2^20 * 10 // 10000 = 1048) = 1048.
    (1 << 20, (), (2048, 3096, 4144)),
    # 1 GiB: isqrt(2^24) = 4096 -> min 1024; d = max(256, 262) = 262.
    (1 << 18, (), (1024, 1286, 1548)),
    # 16 GiB: isqrt(2^28) = 16384 -> min 4096; d = max(1024, 4194) = 4194.
    (1 << 22, (), (4096, 8290, 12484)),
    # 4 MiB: isqrt(4096 * 16) = 256 -> min 64; d = max(16, 1) = 16.
    (1 << 10, (), (64, 80, 96)),
    # 1 MiB: isqrt(1024 * 16) = 128 (the floor) -> min 32; d = max(8, 0) = 8.
    (1 << 8, (), (32, 40, 48)),
    # 4 GiB with a 2 GiB hole: managed 2^19, isqrt(2^25) = 5792 -> min 1448;
    # d = max(362, 524) = 524.
    (1 << 20, ((0, 1 << 19),), (1448, 1972, 2496)),
])
def test_watermarks(nr_pages, holes, expected):
    z = RefZone(nr_pages, 10, 9, holes=holes)
    assert z.watermarks() == expected


def test_watermarks_given_min_free_kbytes():
    # min = 1000 / 4 = 250; d = max(62, 65536 * 10 // 10000 = 65) = 65.
    assert RefZone(1 << 16, 10, 9, min_free_kbytes=1000).watermarks() == (250, 315, 380)
    assert RefZone(1 << 16, 10, 9, min_free_kbytes=0).watermarks() == (0, 65, 130)


@pytest.mark.parametrize("nr_pages,expected", [
    # >= 1 GiB: min(managed >> 10, 256) // 4 = 64, rounddown_pow2(96) - 1 = 63.
    (1 << 18, (63, 1286)),
    (1 << 20, (63, 3096)),
    # 512 MiB: 128 // 4 = 32, rounddown_pow2(48) - 1 = 31; high = low = 905
    # (isqrt(2^23) = 2896, min 724, d = max(181, 131)).
    (1 << 17, (31, 905)),
    # 64 MiB: 16 // 4 = 4, rounddown_pow2(6) - 1 = 3; low = 256 + 64 = 320.
    (1 << 14, (3, 320)),
    # 16 MiB: 4 // 4 = 1, rounddown_pow2(1) - 1 = 0, raised to 1; high = max(low 160, 4).
    (1 << 12, (1, 160)),
])
def test_pcp_params(nr_pages, expected):
    assert RefZone(nr_pages, 10, 9, pcp=True).pcp_params() == expected


# --------------------------------------------------------------------------- pcp rules by policy
# A 64 MiB zone with min_free_kbytes = 0: batch 3 (16384 >> 10 = 16, 16 // 4 = 4,
# rounddown_pow2(6) - 1), low watermark 0 + max(0, 16) = 16, high watermark 32, managed / 8 = 2048.


def _pcp_zone(policy, pageblock_order=9, nr_cpus=1):
    return RefZone(1 << 14, 10, pageblock_order, policy=policy, pcp=True, min_free_kbytes=0,
                   nr_cpus=nr_cpus)


@pytest.mark.parametrize("policy,state", [
    ("v5.4", dict(high=18, high_min=18, high_max=18, flags=0)),           # 6 * batch
    ("v6.1", dict(high=16, high_min=16, high_max=16, flags=0)),           # max(low, 4 * batch)
    ("v6.15", dict(high=16, high_min=16, high_max=2048, flags=2)),        # PCPF_FREE_HIGH_BATCH
    ("v6.16", dict(high=16, high_min=16, high_max=2048, flags=2)),
])
def test_pcp_state_at_boot(policy, state):
    z = _pcp_zone(policy)
    assert z.pcp_state() == dict(state, alloc_factor=0, free_count=0, below_high=0)
    assert z.pcp_params() == (3, state["high"])
    assert z.decay_pcp_high() is False


def test_pcp_5_4_drains_a_batch_round_robin_from_movable():
    # Pageblocks of 4 pages. 18 order-0 allocations take 15360..15377 (six refills of 3).
    z = _pcp_zone("v5.4", pageblock_order=2)
    pfns = [z.alloc(0, M) for _ in range(18)]
    assert pfns == list(range(15360, 15378)) and z.pcp_count == 0
    for pfn in pfns:
        z.set_pageblock_migratetype(pfn, U if (pfn >> 2) % 2 == 0 else M)
    for pfn in pfns:
        z.free(pfn)
    # The 18th free reaches high = 18: free_pcppages_bulk(3) takes the MOVABLE tail (15364),
    # passes the empty RECLAIMABLE list (batch_free 2) and takes two from the UNMOVABLE tail.
    # (5.13+ would start at the freed page's list and take 15360..15362.)
    assert z.pcp_count == 15
    lists = z.pcp_lists()
    assert lists[U] == [15377, 15376] + list(range(15371, 15367, -1)) + [15363, 15362]
    assert lists[M] == list(range(15375, 15371, -1)) + [15367, 15366, 15365]
    z.check()


def test_pcp_6_7_refills_grow_high_and_alloc_factor_then_decay():
    z = _pcp_zone("v6.15")
    # nr_pcp_alloc: high 16 + 3 = 19, max_nr_alloc = max(19 - 0 - 3, 3) = 16 >= 3: alloc_factor 1.
    z.alloc(0, M)
    assert z.pcp_count == 2
    assert z.pcp_state() == dict(high=19, high_min=16, high_max=2048, alloc_factor=1, free_count=0,
                                 flags=2, below_high=0)
    z.alloc(0, M)
    z.alloc(0, M)
    # Empty again: batch 3 << 1 = 6, high 25, max_nr_alloc 22: alloc_factor 2, 6 pages.
    z.alloc(0, M)
    assert z.pcp_count == 5
    assert z.pcp_state()["high"] == 25 and z.pcp_state()["alloc_factor"] == 2
    # decay_pcp_high: high -= high >> 3 (25 -> 22 -> 20 -> 18 -> 16), nothing to drain.
    highs = []
    for _ in range(5):
        todo = z.decay_pcp_high()
        highs.append((z.pcp_state()["high"], todo))
    assert highs == [(22, True), (20, True), (18, True), (16, False), (16, False)]
    assert z.pcp_count == 5
    z.check()


@pytest.mark.parametrize("policy,left", [("v6.15", 0), ("v6.16", 6)])
def test_pcp_free_high_threshold(policy, left):
    # Three order-1 refills of max(3 >> 1, 2) = 2 blocks (free_count halved to 0), then three
    # frees. The third sees free_count 4 (2 per free), a previous high-order free and count
    # 6 >= batch: v6.15 (T = batch = 3) drains every pcp page (free_high, min(6, 3 << 5));
    # v6.16 (T = 3 + 16 // 2 = 11) keeps them (6 < high 16).
    z = _pcp_zone(policy)
    pfns = [z.alloc(1, M) for _ in range(6)]
    assert z.pcp_count == 0
    for pfn in pfns[:3]:
        z.free(pfn)
    assert z.pcp_count == left
    assert z.pcp_state()["flags"] == 3
    z.check()


# --------------------------------------------------------------------------- pcp on several CPUs
# MODEL.md, per-cpu lists, last bullet: each CPU has its own lists, count, high, alloc_factor,
# free_count and flags; batch, high_min and high_max are the zone's, zone_highsize() splitting
# the low watermark and managed / 8 over the CPUs. The 64 MiB zone above on two CPUs:
# high_min = max(16 // 2, 4 * 3) = 12 (the 4 * batch floor), high_max = max(16384 // 8 // 2, 12)
# = 1024. v6.15 boots with free_list[10][MOVABLE] = [0, 1024, ..., 15360] (FPI_TO_TAIL).


@pytest.mark.parametrize("policy,nr_cpus,high_min,high_max", [
    # 512 MiB, default min_free_kbytes: batch 31 (4 * batch = 124), low watermark 905 (see
    # test_pcp_params), managed / 8 = 131072 // 8 = 16384.
    ("v6.15", 1, 905, 16384),
    ("v6.15", 2, 452, 8192),        # 905 // 2, 16384 // 2
    ("v6.15", 3, 301, 5461),        # 905 // 3, 16384 // 3
    ("v6.15", 16, 124, 1024),       # 905 // 16 = 56 < 124: the floor; 16384 // 16
    ("v6.16", 2, 452, 8192),
    ("v6.1", 2, 452, 452),          # 6.1: high = max(905 // 2, 124), fixed
    ("v6.1", 16, 124, 124),
    ("v5.4", 2, 186, 186),          # 5.4: 6 * 31 on every CPU, not split
])
def test_pcp_high_splits_over_the_cpus(policy, nr_cpus, high_min, high_max):
    z = RefZone(1 << 17, 10, 9, policy=policy, pcp=True, nr_cpus=nr_cpus)
    flags = 2 if policy in ("v6.15", "v6.16") else 0      # PCPF_FREE_HIGH_BATCH under 6.7+
    for cpu in range(nr_cpus):
        # every CPU's high starts at high_min
        assert z.pcp_state(cpu) == dict(high=high_min, high_min=high_min, high_max=high_max,
                                        alloc_factor=0, free_count=0, flags=flags, below_high=0)
        assert z.pcp_lists_of(cpu) == {}
    assert z.pcp_params() == (31, high_min)


def test_pcp_small_zone_on_two_cpus_floor():
    z = _pcp_zone("v6.15", nr_cpus=2)
    assert z.pcp_state(1) == dict(high=12, high_min=12, high_max=1024, alloc_factor=0,
                                  free_count=0, flags=2, below_high=0)
    assert z.pcp_params() == (3, 12)


def test_pcp_each_cpu_refills_and_uses_its_own_lists():
    z = _pcp_zone("v6.15", nr_cpus=2)
    # CPU 0, list 1 (order 0, MOVABLE) empty: nr_pcp_alloc: high 12 + 3 = 15, max_nr_alloc =
    # max(15 - 0 - 3, 3) = 12 >= 3: alloc_factor 1, 3 pages. 0@10 splits: 0, then 1 (the order-0
    # remainder), then 2 (2@1 split, 3@0 stays free). Take the head 0.
    assert z.alloc(0, M, cpu=0) == 0
    assert z.pcp_lists_of(0) == {1: [1, 2]} and z.pcp_lists_of(1) == {}
    # CPU 1's list is empty: it refills its own, by the same numbers (its high 12 -> 15,
    # alloc_factor 1): 3 (free order 0), 4 (4@2 split: 6@1, 5@0), 5. CPU 0's list is untouched.
    assert z.alloc(0, M, cpu=1) == 3
    assert z.pcp_lists_of(1) == {1: [4, 5]} and z.pcp_lists() == {1: [1, 2]}
    for cpu in (0, 1):
        assert z.pcp_state(cpu) == dict(high=15, high_min=12, high_max=1024, alloc_factor=1,
                                        free_count=0, flags=2, below_high=0)
    # CPU 0 empties its list.
    assert [z.alloc(0, M, cpu=0), z.alloc(0, M, cpu=0)] == [1, 2]
    assert z.pcp_lists_of(0) == {}
    # Free 1 on CPU 1: head of CPU 1's list; alloc_factor 1 >> 1 = 0, free_count 1;
    # nr_pcp_high: count 3 < high 15, no drain.
    z.free(1, cpu=1)
    assert z.pcp_lists_of(1) == {1: [1, 4, 5]}
    # CPU 0 does not see page 1: its empty list refills from the buddy. nr_pcp_alloc: batch
    # 3 << 1 = 6, high 15 + 6 = 21, max_nr_alloc = max(21 - 0 - 3, 3) = 18: alloc_factor 2,
    # 6 pages: 6 (6@1 split, 7@0), 7, 8 (8@3 split: 12@2, 10@1, 9@0), 9, 10 (10@1 split, 11@0), 11.
    assert z.alloc(0, M, cpu=0) == 6
    assert z.pcp_lists_of(0) == {1: [7, 8, 9, 10, 11]}
    assert z.pcp_lists_of(1) == {1: [1, 4, 5]}
    assert z.pcp_state(0) == dict(high=21, high_min=12, high_max=1024, alloc_factor=2,
                                  free_count=0, flags=2, below_high=0)
    assert z.pcp_state(1) == dict(high=15, high_min=12, high_max=1024, alloc_factor=0,
                                  free_count=1, flags=2, below_high=0)
    # pcp pages: 5 on CPU 0 + 3 on CPU 1; CPU 0's free_count. The buddy gave 3 + 3 + 6 pages.
    assert z.pcp_counters() == {"pcp_count": 8, "pcp_free_factor": 0}
    assert z.pcp_count == 8
    assert z.counters()["nr_free_pages"] == (1 << 14) - 12
    z.check()
    # CPU 1 finds page 1 at the head of its own list (free_count 1 >> 1 = 0, no refill).
    assert z.alloc(0, M, cpu=1) == 1
    assert z.pcp_lists_of(1) == {1: [4, 5]}
    assert z.pcp_state(1)["free_count"] == 0 and z.pcp_state(1)["high"] == 15
    c = z.counters()
    assert (c["alloc_ops"], c["free_ops"], c["nr_free_pages"]) == (6, 1, (1 << 14) - 12)
    z.check()


def test_pcp_drain_drains_every_cpu_in_turn():
    z = _pcp_zone("v6.15", nr_cpus=2)
    # Nine order-0 allocations on CPU 0: a refill of 3 (0, 1, 2; high 15, alloc_factor 1), then
    # one of 6 (3..8; high 21, alloc_factor 2, as above). The buddy keeps 9@0, 10@1, 12@2, 16@4 ...
    assert [z.alloc(0, M) for _ in range(9)] == list(range(9))
    assert z.pcp_count == 0
    # Free 0 on CPU 0 (count 1 < high 21) and 4 on CPU 1 (count 1 < high 12): no drains.
    z.free(0, cpu=0)
    z.free(4, cpu=1)
    assert z.pcp_lists_of(0) == {1: [0]} and z.pcp_lists_of(1) == {1: [4]}
    assert z.free_lists()[(0, M)] == [9]
    assert z.pcp_counters() == {"pcp_count": 2, "pcp_free_factor": 1}
    assert z.counters()["nr_free_pages"] == (1 << 14) - 9
    # drain_all_pages(): CPU 0 first. 0's buddy 1 is allocated, and so is 2 (the buddy of its
    # parent): no merge, head of free_list[0]. Then CPU 1: 4 (buddy 5 allocated, parent's buddy
    # 6 allocated) at the head, before 0. (CPU 1 first would give [0, 4, 9].)
    z.drain()
    assert z.pcp_lists_of(0) == {} and z.pcp_lists_of(1) == {}
    assert z.free_lists()[(0, M)] == [4, 0, 9]
    # A drain leaves free_count alone (free_pcppages_bulk only lowers count).
    assert z.pcp_counters() == {"pcp_count": 0, "pcp_free_factor": 1}
    assert z.pcp_state(1)["free_count"] == 1
    assert z.counters()["nr_free_pages"] == (1 << 14) - 7
    z.check()


@pytest.mark.parametrize("policy", ("v5.4", "v6.1"))
def test_pcp_drain_on_two_cpus_older_rules(policy):
    # 5.4 and 6.1 refill max(3 >> 0, 2) = 3 pages. v5.4 boots to the head: free_list[10] =
    # [15360, ..., 0], so CPU 0 takes 15360, 15361, 15362; v6.1 (to the tail) takes 0, 1, 2.
    # CPU 1 refills its own three: the next three pages.
    z = _pcp_zone(policy, nr_cpus=2)
    base = 15360 if policy == "v5.4" else 0
    assert z.alloc(0, M, cpu=0) == base
    assert z.alloc(0, M, cpu=1) == base + 3
    assert z.pcp_lists_of(0) == {1: [base + 1, base + 2]}
    assert z.pcp_lists_of(1) == {1: [base + 4, base + 5]}
    # 6.1: high = max(16 // 2, 12) = 12 on each CPU; 5.4: 6 * 3 = 18.
    high = 18 if policy == "v5.4" else 12
    assert z.pcp_state(0)["high"] == z.pcp_state(1)["high"] == high
    z.drain()
    assert z.pcp_count == 0
    assert z.counters()["nr_free_pages"] == (1 << 14) - 2
    z.check()


def test_pcp_decay_runs_on_one_cpu():
    z = _pcp_zone("v6.15", nr_cpus=2)
    # CPU 0: one refill (high 15, alloc_factor 1, list [1, 2]).
    assert z.alloc(0, M, cpu=0) == 0
    # CPU 1: a refill of 3 (3, 4, 5; high 15), two allocations empty it, then a refill of
    # 3 << 1 = 6 (high 21, max_nr_alloc 18, alloc_factor 2): 6 (6@1, 7@0), 7, 8 (8@3: 12@2,
    # 10@1, 9@0), 9, 10 (10@1, 11@0), 11; it takes 6.
    assert [z.alloc(0, M, cpu=1) for _ in range(4)] == [3, 4, 5, 6]
    assert z.pcp_state(1)["high"] == 21 and z.pcp_lists_of(1) == {1: [7, 8, 9, 10, 11]}
    cpu0 = z.pcp_state(0)
    assert cpu0["high"] == 15
    # decay_pcp_high on CPU 1: high = max(5 - (3 << 5), high - high // 8, 12):
    # 21 - 2 = 19, 17, 15, 15 - 1 = 14, 13, 12 (no longer above high_min: todo False), 12.
    # count 5 never exceeds high: nothing to drain.
    got = []
    for _ in range(7):
        todo = z.decay_pcp_high(cpu=1)
        got.append((z.pcp_state(1)["high"], todo))
    assert got == [(19, True), (17, True), (15, True), (14, True), (13, True), (12, False),
                   (12, False)]
    assert z.pcp_lists_of(1) == {1: [7, 8, 9, 10, 11]}
    # CPU 0's high, lists and the rest of its state are left alone.
    assert z.pcp_state(0) == cpu0 and z.pcp_lists_of(0) == {1: [1, 2]}
    assert z.pcp_params() == (3, 15)
    # Now on CPU 0: 15 - 15 // 8 = 14 > 12: todo; CPU 1 stays at 12.
    assert z.decay_pcp_high(cpu=0) is True
    assert z.pcp_state(0)["high"] == 14 and z.pcp_state(1)["high"] == 12
    z.check()


def test_pcp_decay_drains_only_its_cpu():
    z = _pcp_zone("v6.15", nr_cpus=2)
    # 95 order-0 allocations on CPU 0. Refills (count 0 each time, max_nr_alloc = high - 3 never
    # binds): batch 3 << alloc_factor = 3, 6, 12, 24, 48 (93 pages; high 15, 21, 33, 57, 105;
    # alloc_factor 1..5), then 96 at the 94th (high 105 + 96 = 201, alloc_factor stays 5).
    # CPU 0 is left with 3 + 6 + 12 + 24 + 48 + 96 - 95 = 94 pages.
    pfns = [z.alloc(0, M, cpu=0) for _ in range(95)]
    assert z.pcp_state(0)["high"] == 201 and z.pcp_state(0)["alloc_factor"] == 5
    assert sum(len(lst) for lst in z.pcp_lists_of(0).values()) == 94
    # Free them all on CPU 1 (high 12; free_count = k after the k-th free). Drains at:
    #   k = 12: count 12 >= 12; high < 12 + 3: high 15; frees clamp(12, 3, 12 - 3) = 9 -> count 3
    #   k = 24: count 15 >= 15; high 27; frees clamp(24, 3, 15 - 3) = 12 -> count 3
    #   k = 48: count 27 >= 27; high 51; frees clamp(48, 3, 27 - 3) = 24 -> count 3
    # and at k = 95 count 3 + 47 = 50 < 51.
    for pfn in pfns:
        z.free(pfn, cpu=1)
    assert z.pcp_state(1) == dict(high=51, high_min=12, high_max=1024, alloc_factor=0,
                                  free_count=95, flags=2, below_high=0)
    assert sum(len(lst) for lst in z.pcp_lists_of(1).values()) == 50
    cpu0_state, cpu0_lists = z.pcp_state(0), z.pcp_lists_of(0)
    nr_free = z.counters()["nr_free_pages"]
    # Decay on CPU 1: high = max(50 - 96, 51 - 51 // 8 = 45, 12) = 45; 50 - 45 = 5 pages drained
    # (3, then 2) from CPU 1's lists; CPU 0 untouched.
    assert z.decay_pcp_high(cpu=1) is True
    assert z.pcp_state(1)["high"] == 45
    assert sum(len(lst) for lst in z.pcp_lists_of(1).values()) == 45
    assert z.counters()["nr_free_pages"] == nr_free + 5
    assert z.pcp_state(0) == cpu0_state and z.pcp_lists_of(0) == cpu0_lists
    assert z.pcp_counters() == {"pcp_count": 94 + 45, "pcp_free_factor": 0}
    # Decay on CPU 0: high = max(94 - 96, 201 - 25, 12) = 176 > count 94: no drain; CPU 1 stays.
    cpu1_lists = z.pcp_lists_of(1)
    assert z.decay_pcp_high(cpu=0) is True
    assert z.pcp_state(0)["high"] == 176 and z.pcp_state(1)["high"] == 45
    assert z.pcp_lists_of(0) == cpu0_lists and z.pcp_lists_of(1) == cpu1_lists
    z.check()


def test_pcp_cpu_arguments():
    with pytest.raises(ValueError):
        RefZone(64, 5, 4, nr_cpus=0)
    with pytest.raises(ValueError):
        RefZone(64, 5, 4, nr_cpus=17)
    z = RefZone(1 << 14, 10, 9, pcp=True, nr_cpus=16)
    # low watermark 320 (test_pcp_params): high_min = max(320 // 16, 4 * 3) = 20,
    # high_max = max(16384 // 8 // 16, 12) = 128
    assert (z.pcp_state(15)["high_min"], z.pcp_state(15)["high_max"]) == (20, 128)
    z2 = _pcp_zone("v6.15", nr_cpus=2)
    for call in (lambda: z2.alloc(0, M, cpu=2), lambda: z2.alloc(0, M, cpu=-1),
                 lambda: z2.decay_pcp_high(cpu=2), lambda: z2.pcp_state(2),
                 lambda: z2.pcp_lists_of(2)):
        with pytest.raises(ValueError):
            call()
    pfn = z2.alloc(0, M)
    with pytest.raises(ValueError):
        z2.free(pfn, cpu=2)
    z2.free(pfn, cpu=1)
    z2.check()


def test_check_detects_a_page_on_two_cpus():
    z = _pcp_zone("v6.15", nr_cpus=2)
    z.alloc(0, M, cpu=0)                     # CPU 0 holds 1 and 2
    z.pcps[1].lists[1][1] = None             # page 1 on CPU 1's list too
    z.pcps[1].count += 1
    with pytest.raises(AssertionError):
        z.check()


def test_watermark_gate():
    # N = 64, min_free_kbytes = 64: min 16, d = max(4, 0) = 4: low 20, high 24.
    z = RefZone(64, 5, 4, policy="v6.15", min_free_kbytes=64)
    assert z.watermarks() == (16, 20, 24)
    # 64 - 15 = 49 > 20; the order loop probes o=4 (empty) and o=5: 2 orders.
    assert z.alloc(4, M) == 0
    # 48 - 15 = 33 > 20; o=4 holds 16: 1 order.
    assert z.alloc(4, M) == 16
    # 32 - 15 = 17 <= low 20 fails the fast path; 17 > min 16 passes the slow path (2 orders).
    assert z.alloc(4, M) == 32
    # 16 <= 20 and 16 <= 16: both fail without scanning.
    assert z.alloc(0, M) == -1
    c = z.counters()
    assert (c["alloc_ops"], c["alloc_fail"], c["wmark_orders_scanned"]) == (4, 1, 5)
    assert c["nr_free_pages"] == 16
    z.check()


# --------------------------------------------------------------------------- free path details


@pytest.mark.parametrize("policy", ("v5.4", "v6.15"))
def test_runtime_free_to_tail_by_buddy_merge_likely(policy):
    # Six order-2 allocations: 0, 4, 8, 12, 16, 20 (free_list[3] = [24]). free(0): head.
    # free(16): buddy 20 allocated, parent 16's buddy 24 is a free order-3 block: tail.
    z = RefZone(32, 5, 4, policy=policy, min_free_kbytes=0)
    assert [z.alloc(2, M) for _ in range(6)] == [0, 4, 8, 12, 16, 20]
    z.free(0)
    z.free(16)
    assert z.free_lists() == {(2, M): [0, 16], (3, M): [24]}


@pytest.mark.parametrize("policy", ("v6.10", "v6.15", "nomobility"))
def test_split_large_buddy_on_free(policy):
    # An order-5 block freed on a hygiene policy goes through split_large_buddy: two order-4
    # chunks, the second merging with the first (one merge step even with no neighbour free).
    z = RefZone(64, 5, 4, policy=policy, min_free_kbytes=0)
    assert z.alloc(5, M) == 0
    z.free(0)
    assert z.counters()["merge_steps"] == 1
    z2 = RefZone(64, 5, 4, policy="v6.1", min_free_kbytes=0)
    assert z2.alloc(5, M) == 0
    z2.free(0)
    assert z2.counters()["merge_steps"] == 0


def test_free_errors():
    z = RefZone(32, 5, 4, min_free_kbytes=0)
    pfn = z.alloc(2, M)
    with pytest.raises(ValueError):
        z.free(pfn + 1)      # inside the block, not its head
    with pytest.raises(ValueError):
        z.free(8)            # free, not allocated
    z.free(pfn)
    with pytest.raises(ValueError):
        z.free(pfn)          # double free
    assert z.counters()["free_ops"] == 1
    z.check()


def test_bad_arguments():
    with pytest.raises(ValueError):
        RefZone(32, 5, 6)
    with pytest.raises(ValueError):
        RefZone(32, 5, 4, policy="v4.4")
    with pytest.raises(ValueError):
        RefZone(32, 5, 4, holes=((30, 40),))
    z = RefZone(32, 5, 4)
    with pytest.raises(ValueError):
        z.alloc(6, M)
    with pytest.raises(ValueError):
        z.alloc(0, CMA)


# --------------------------------------------------------------------------- non-mergeable types
# CMA and ISOLATE pageblocks have no public constructor; these tests set a pageblock's type
# directly while the pageblock is wholly allocated, which keeps every invariant.


def _two_allocated_pageblocks(policy):
    z = RefZone(32, 5, 4, policy=policy, min_free_kbytes=0)
    assert z.alloc(4, M) == 0
    assert z.alloc(4, M) == 16
    return z


@pytest.mark.parametrize("policy", ("v5.4", "v6.1"))
def test_cma_merge_rule_v54_vs_v61(policy):
    # Pageblock 1 CMA. free(16) finds its order-4 buddy 0 free in a MOVABLE pageblock.
    # v5.4 only refuses to merge with ISOLATE; v6.1 refuses non-mergeable types (CMA).
    z = _two_allocated_pageblocks(policy)
    z.set_pageblock_migratetype(16, CMA)
    z.free(0)
    z.free(16)
    if policy == "v5.4":
        assert z.free_lists() == {(5, CMA): [0]}
        assert z.counters()["merge_steps"] == 1
    else:
        assert z.free_lists() == {(4, M): [0], (4, CMA): [16]}
        assert z.counters()["merge_steps"] == 0
    assert z.counters()["nr_free_pages"] == 32
    z.check()


@pytest.mark.parametrize("policy", POLICIES[:4])
def test_isolate_never_merges(policy):
    z = _two_allocated_pageblocks(policy)
    z.set_pageblock_migratetype(16, ISOLATE)
    z.free(0)
    z.free(16)
    assert z.free_lists() == {(4, M): [0], (4, ISOLATE): [16]}
    assert z.counters()["merge_steps"] == 0
    assert z.counters()["nr_free_pages"] == 16       # ISOLATE pages are not counted
    # Freeing into an ISOLATE pageblock with pcp on bypasses the pcp lists.
    zp = RefZone(32, 5, 4, policy=policy, min_free_kbytes=0, pcp=True)
    assert zp.alloc(4, M) == 0                       # order 4 = P is a pcp order
    zp.set_pageblock_migratetype(0, ISOLATE)
    zp.free(0)
    assert zp.free_lists()[(4, ISOLATE)] == [0]
    z.check()
    zp.check()


def test_cma_balance_and_cma_fallback():
    # v6.1, pageblock 1 CMA and free: free_list[4][MOVABLE] = [0], free_list[4][CMA] = [16].
    z = _two_allocated_pageblocks("v6.1")
    z.set_pageblock_migratetype(16, CMA)
    z.free(0)
    z.free(16)
    # Free CMA 16 > 32 // 2 is false: MOVABLE list first: 0 (split 8@3 4@2 2@1 1@0).
    assert z.alloc(0, M) == 0
    # Now 16 > 31 // 2 = 15: the CMA balance rule serves the movable request from CMA.
    assert z.alloc(0, M) == 16
    assert z.free_lists() == {(0, M): [1], (1, M): [2], (2, M): [4], (3, M): [8],
                              (0, CMA): [17], (1, CMA): [18], (2, CMA): [20], (3, CMA): [24]}
    # An UNMOVABLE order-3 request may not count CMA pages: 30 - 15 - 7 = 8 > 0, and order 3
    # holds a MOVABLE block, so the gate passes (the CMA block alone would not count).
    before = z.counters()
    assert z.alloc(3, U) == 8
    assert delta(before, z.counters())["wmark_orders_scanned"] == 1
    z.check()


# --------------------------------------------------------------------------- readings of MODEL.md


def test_nomobility_has_no_alloc_cma():
    # N = 12290: twelve order-10 blocks and the order-1 block 12288. batch 3 (12290 >> 10 = 12).
    # With everything but 12288..12289 allocated, alloc(0, M) refills a pcp batch of 3: page 1
    # splits 12288 (2 orders scanned), page 2 takes 12289 (1), page 3 fails after smallest (11),
    # claim (11: should_try_claim_block is always true without mobility) and steal (11). No
    # CMA probe: gfp_migratetype() is UNMOVABLE, so ALLOC_CMA is not set. On v6.15 the same
    # request probes CMA (11) and its claim loop, finding no fallback block at any order, goes
    # down to order 0 (11): it stops below P // 2 = 4 only at an order that has one; v6.16 stops
    # at the first order below P // 2 (o=10..4 and o=3: 8).
    for policy, scans in (("nomobility", 2 + 1 + 11 + 11 + 11), ("v6.15", 2 + 1 + 11 + 11 + 11 + 11),
                          ("v6.16", 2 + 1 + 11 + 11 + 8 + 11)):
        z = RefZone(12290, 10, 9, policy=policy, pcp=True, min_free_kbytes=0)
        assert z.pcp_params()[0] == 3
        assert [z.alloc(10, U) for _ in range(12)] == list(range(0, 12288, 1024))
        before = z.counters()
        assert z.alloc(0, M) == 12288
        assert delta(before, z.counters())["orders_scanned"] == scans, policy
        assert z.pcp_lists() == {(0 if policy == "nomobility" else 1): [12289]}
        z.check()


# --------------------------------------------------------------------------- check() itself


def test_check_detects_unmerged_buddies():
    z = RefZone(32, 5, 4)
    z._del_page_from_free_list(0)
    z._add_to_free_list(0, 4, M, tail=True)
    z._add_to_free_list(16, 4, M, tail=True)
    with pytest.raises(AssertionError, match="unmerged"):
        z.check()


def test_check_detects_overlap_and_counts():
    z = RefZone(32, 5, 4)
    z._add_to_free_list(8, 3, M, tail=True)
    with pytest.raises(AssertionError, match="overlaps"):
        z.check()
    z = RefZone(32, 5, 4)
    z.nr_free[5] += 1
    with pytest.raises(AssertionError, match="nr_free"):
        z.check()
    z = RefZone(32, 5, 4)
    z.nr_free_pages -= 1
    with pytest.raises(AssertionError, match="NR_FREE_PAGES"):
        z.check()


def test_check_detects_type_mismatch_on_hygiene_policies():
    z = RefZone(32, 5, 4, policy="v6.15")
    z.set_pageblock_migratetype(16, U)
    with pytest.raises(AssertionError, match="covers pageblock 1"):
        z.check()
    z = RefZone(32, 5, 4, policy="v6.1")
    z.set_pageblock_migratetype(16, U)
    z.check()     # pre-hygiene policies allow type mismatches


def test_check_detects_missing_pages():
    z = RefZone(32, 5, 4, min_free_kbytes=0)
    pfn = z.alloc(0, M)
    del z.alloc_order[pfn], z.alloc_mt[pfn], z.alloc_pinned[pfn]
    with pytest.raises(AssertionError):
        z.check()


# --------------------------------------------------------------------------- random sequences


@st.composite
def zones(draw, big=False):
    if big:
        max_order = draw(st.integers(8, 10))
        pb_order = draw(st.integers(3, max_order))
        nr_pages = draw(st.integers(12288, 14000))
    else:
        max_order = draw(st.integers(1, 6))
        pb_order = draw(st.integers(1, max_order))
        nr_pages = draw(st.integers(1, 5 << max_order))
    holes = []
    for _ in range(draw(st.integers(0, 3))):
        start = draw(st.integers(0, nr_pages - 1))
        end = draw(st.integers(start, min(nr_pages, start + (1 << max_order) + 3)))
        holes.append((start, end))
    policy = draw(st.sampled_from(POLICIES))
    pcp = draw(st.booleans())
    mfk = draw(st.sampled_from([None, 0, 8]))
    return dict(nr_pages=nr_pages, max_order=max_order, pageblock_order=pb_order,
                policy=policy, holes=tuple(holes), pcp=pcp, min_free_kbytes=mfk)


def op_lists(max_ops):
    alloc = st.tuples(st.just("alloc"), st.integers(0, 12), st.sampled_from([U, M, R]), st.booleans())
    free = st.tuples(st.just("free"), st.integers(0, 10 ** 6))
    return st.lists(st.one_of(alloc, alloc, free), max_size=max_ops)


def run_ops(kw, ops, check_every=1):
    z = RefZone(**kw)
    z.check()
    boot = z.buddyinfo()
    live = []
    allocs = fails = 0
    for i, op in enumerate(ops):
        if op[0] == "alloc":
            order = min(op[1], kw["max_order"])
            pfn = z.alloc(order, op[2], pinned=op[3])
            allocs += 1
            if pfn < 0:
                fails += 1
            else:
                assert pfn % (1 << order) == 0
                live.append((pfn, order))
        elif live:
            pfn, _ = live.pop(op[1] % len(live))
            z.free(pfn)
        if i % check_every == 0:
            z.check()
    z.check()
    c = z.counters()
    assert (c["alloc_ops"], c["alloc_fail"]) == (allocs, fails)
    assert c["pgalloc"] - c["pgfree"] == sum(1 << o for _, o in live)
    assert c["nr_free_pages"] == sum(n << o for o, n in enumerate(z.buddyinfo()))
    assert c["nr_free_pages"] + c["pgalloc"] - c["pgfree"] + z.pcp_count == z.managed_pages
    # Free everything. Without pcp lists nothing is held back, and a fully merged free zone
    # is the boot decomposition again.
    for pfn, _ in live:
        z.free(pfn)
    z.check()
    if not kw["pcp"]:
        assert z.buddyinfo() == boot
        assert z.counters()["nr_free_pages"] == z.managed_pages
    return z


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kw=zones(), ops=op_lists(80))
def test_random_sequences_keep_invariants(kw, ops):
    run_ops(kw, ops)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kw=zones(big=True), ops=op_lists(150))
def test_random_sequences_large_zone_with_pcp_batches(kw, ops):
    kw["pcp"] = True
    run_ops(kw, ops, check_every=5)


def cpu_op_lists(max_ops):
    cpu = st.integers(0, 3)
    alloc = st.tuples(st.just("alloc"), st.integers(0, 12), st.sampled_from([U, M, R]), cpu)
    free = st.tuples(st.just("free"), st.integers(0, 10 ** 6), st.just(0), cpu)
    tick = st.tuples(st.just("tick"), st.just(0), st.just(0), cpu)
    drain = st.tuples(st.just("drain"), st.just(0), st.just(0), st.just(0))
    return st.lists(st.one_of(alloc, alloc, free, free, tick, drain), max_size=max_ops)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kw=zones(big=True), nr_cpus=st.integers(1, 4), ops=cpu_op_lists(200))
def test_random_sequences_on_several_cpus(kw, nr_cpus, ops):
    """Allocations and frees on random CPUs, decay on one CPU, drains: the invariants hold, the
    pcp pages are the sum over the CPUs, and a drain leaves no pcp page on any CPU."""
    kw = dict(kw, pcp=True, nr_cpus=nr_cpus)
    z = RefZone(**kw)
    live = []
    for i, (kind, a, mt, cpu) in enumerate(ops):
        cpu %= nr_cpus
        if kind == "alloc":
            pfn = z.alloc(min(a, kw["max_order"]), mt, cpu=cpu)
            if pfn >= 0:
                live.append(pfn)
        elif kind == "free" and live:
            z.free(live.pop(a % len(live)), cpu=cpu)
        elif kind == "tick":
            z.decay_pcp_high(cpu)
        elif kind == "drain":
            z.drain()
            assert z.pcp_count == 0
            assert all(z.pcp_lists_of(c) == {} for c in range(nr_cpus))
        per_cpu = [sum(len(lst) << z.pindex_to_order(i) for i, lst in z.pcp_lists_of(c).items())
                   for c in range(nr_cpus)]
        assert z.pcp_counters()["pcp_count"] == sum(per_cpu) == z.pcp_count
        assert z.pcp_lists() == z.pcp_lists_of(0)
        if i % 10 == 0:
            z.check()
    c = z.counters()
    assert c["nr_free_pages"] + c["pgalloc"] - c["pgfree"] + z.pcp_count == z.managed_pages
    for pfn in live:
        z.free(pfn, cpu=pfn % nr_cpus)
    z.drain()
    z.check()
    assert z.counters()["nr_free_pages"] == z.managed_pages


def test_thousands_of_operations_keep_invariants():
    import random

    rng = random.Random(1)
    for policy in POLICIES:
        z = RefZone(1 << 16, 10, 9, policy=policy, pcp=(policy == "v6.15"))
        live = []
        for _ in range(3000):
            if live and rng.random() < 0.45:
                z.free(live.pop(rng.randrange(len(live))))
            else:
                pfn = z.alloc(rng.choice([0, 0, 0, 1, 2, 3, 9]), rng.choice([U, M, M, R]))
                if pfn >= 0:
                    live.append(pfn)
        z.check()
        c = z.counters()
        assert c["alloc_ops"] + c["free_ops"] == 3000
