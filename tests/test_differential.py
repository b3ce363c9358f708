"""The numba model against the pure-Python reference on the same operation sequences.

For every policy, with and without per-cpu lists, Hypothesis draws a zone geometry and a sequence of
allocations (some pinned, some GFP_ATOMIC) and frees. After every step both models must agree on the returned pfn, every free list
(contents and order), every pageblock type, the pcp lists and the counters; the kernel invariants are
checked on the numba model after every step and on the reference regularly.

The reclaim tests switch on watermark boosting (a drawn vm.watermark_boost_factor, 0 or 15000),
kswapd and the page cache: their sequences also turn live movable blocks into page cache
(``add_file``) and run kswapd, and both models must agree on the boosts, kswapd's state and
counters, the page cache (its blocks in LRU order) and whether kswapd is pending after every step.
"""

import os

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from kernels import constants as C
from kernels.model import Model
from reference import POLICIES, RefNode, RefZone

pytestmark = pytest.mark.kernels

settings.register_profile("default", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile("nojit", max_examples=6, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@st.composite
def geometries(draw, pcp=False):
    max_order = draw(st.integers(2, 7))
    pageblock_order = draw(st.integers(1, max_order))
    if pcp:
        # zone_batchsize() gives a batch above 1 only from 64 MiB: use a large zone, sparse checks
        nr_pages = draw(st.sampled_from([16384, 16384 + 2 ** max_order + 3]))
    else:
        nr_pages = draw(st.integers(2 ** max_order, 12 * 2 ** max_order))
    holes = []
    if draw(st.booleans()):
        start = draw(st.integers(0, nr_pages - 1))
        end = draw(st.integers(start + 1, min(nr_pages, start + 2 ** max_order)))
        # a zone with no page outside its holes has no memory to boot with (the kernel's
        # watermark setup divides by the lowmem zones' managed pages): not a geometry
        if end - start < nr_pages:
            holes.append((start, end))
    # small min_free_kbytes give a small pcp `high`, so pcp drains happen within a short sequence
    mfk = draw(st.sampled_from([0, 8, 64] if pcp else [None, 0, 4 * nr_pages // 16]))
    return dict(nr_pages=nr_pages, max_order=max_order, pageblock_order=pageblock_order,
                holes=holes, min_free_kbytes=mfk)


def operations(max_order, n):
    cpu = st.integers(0, 3)      # taken modulo the zone's CPUs
    # flags: 1 pinned, 2 GFP_ATOMIC
    alloc = st.tuples(st.just("alloc"), st.integers(0, max_order), st.sampled_from([0, 1, 1, 2]),
                      st.sampled_from([0, 0, 0, 1, 2, 2]), cpu)
    free = st.tuples(st.just("free"), st.integers(0, 10 ** 6), st.just(0), st.just(False), cpu)
    # a vmstat update (decay_pcp_high()) now and then
    tick = st.tuples(st.just("tick"), st.just(0), st.just(0), st.just(False), cpu)
    drain = st.tuples(st.just("drain"), st.just(0), st.just(0), st.just(False), cpu)
    return st.lists(st.one_of(alloc, alloc, free, alloc, alloc, free, tick, alloc, free, drain),
                    min_size=1, max_size=n)


def reclaim_operations(max_order, n):
    """Two phases of at least n / 4 and at most n / 2 operations each: the zone fills with movable
    blocks, about a third of them made page cache ("file", a, ...: live block a % len(live)
    becomes page cache if it is a movable block); then a mix heavy in unmovable and reclaimable
    requests, which fall back into the movable pageblocks (boosting the watermarks), with page
    cache, frees, kswapd runs ("kswapd", ...), vmstat ticks and drains."""
    cpu = st.integers(0, 3)
    flags = st.sampled_from([0, 0, 0, 0, 1, 2])
    fill_alloc = st.tuples(st.just("alloc"), st.one_of(st.just(max_order), st.integers(0, max_order)),
                           st.just(1), flags, cpu)
    # small unmovable and reclaimable requests: under pressure their fallbacks find only blocks
    # below pageblock_order, which boost the watermarks
    alloc = st.one_of(
        st.tuples(st.just("alloc"), st.integers(0, max_order), st.just(1), flags, cpu),
        st.tuples(st.just("alloc"), st.sampled_from([0, 0, 1, 2]), st.sampled_from([0, 2]), flags, cpu),
        st.tuples(st.just("alloc"), st.sampled_from([0, 0, 1, 2]), st.sampled_from([0, 2]), flags, cpu))
    free = st.tuples(st.just("free"), st.integers(0, 10 ** 6), st.just(0), st.just(False), cpu)
    tick = st.tuples(st.just("tick"), st.just(0), st.just(0), st.just(False), cpu)
    drain = st.tuples(st.just("drain"), st.just(0), st.just(0), st.just(False), cpu)
    add_file = st.tuples(st.just("file"), st.integers(0, 10 ** 6), st.just(0), st.just(False), cpu)
    run_kswapd = st.tuples(st.just("kswapd"), st.just(0), st.just(0), st.just(False), cpu)
    fill = st.lists(st.one_of(fill_alloc, fill_alloc, add_file), min_size=n // 4, max_size=n // 2)
    mix = st.lists(st.one_of(alloc, alloc, alloc, alloc, add_file, add_file, free, free, run_kswapd,
                             tick, drain), min_size=n // 4, max_size=n // 2)
    return st.tuples(fill, mix).map(lambda phases: phases[0] + phases[1])


STATE_NAMES = ("free lists", "pageblock types", "counters", "buddyinfo",
               "pcp lists and state of each CPU", "reclaim state", "reclaim counters",
               "kswapd pending", "page cache (LRU order)")


def _state(m, nr_cpus=1):
    zones = range(getattr(m, "nr_zones", 1))
    return ([m.free_lists(zi) for zi in zones] if len(zones) > 1 else m.free_lists(),
            m.pageblock_types(), m.counters(),
            [m.buddyinfo(zi) for zi in zones] if len(zones) > 1 else m.buddyinfo(),
            [[(m.pcp_lists_of(c, zi), m.pcp_state(c, zi)) for c in range(nr_cpus)] for zi in zones]
            if len(zones) > 1 else [(m.pcp_lists_of(c), m.pcp_state(c)) for c in range(nr_cpus)],
            m.reclaim_state(), m.reclaim_counters(), m.kswapd_pending(), m.file_pages())


@st.composite
def node_geometries(draw, pcp=False):
    """A node of DMA, DMA32 and Normal zones (some may be empty) and maybe ZONE_MOVABLE, each
    boundary a multiple of the max-order block."""
    max_order = draw(st.integers(2, 6))
    pageblock_order = draw(st.integers(1, max_order))
    unit = 1 << max_order
    if pcp:
        # zone_batchsize() gives a batch above 1 only from 64 MiB: large zones
        dma, dma32, normal, movable = 256, 4096, draw(st.sampled_from([0, 8192, 16384])), 0
        dma, dma32, normal = (x // unit * unit for x in (dma, dma32, normal))
    else:
        dma = draw(st.integers(0, 3)) * unit
        dma32 = dma + draw(st.integers(0, 6)) * unit
        normal = draw(st.integers(0, 8)) * unit
        movable = draw(st.sampled_from([0, 0, 2])) * unit
    nr_pages = dma32 + normal + movable
    if nr_pages - movable <= 0:
        normal += unit
        nr_pages += unit
    mfk = draw(st.sampled_from([0, 8, 64] if pcp else [None, None, 0, 4 * nr_pages // 16]))
    return dict(nr_pages=nr_pages, max_order=max_order, pageblock_order=pageblock_order,
                min_free_kbytes=mfk, dma_end=dma, dma32_end=dma32 if dma32 > dma else 0,
                movable_pages=movable, thp_enabled=draw(st.booleans()))


def _drive(geom, policy, pcp, ops, check_ref_every, nr_cpus=1, reclaim=None):
    """Run ``ops`` on both models and compare them after every step; ``reclaim``: the
    watermark_boost_factor / kswapd / pagecache keywords (default: all off). Returns (jit, ref)."""
    multi = "dma_end" in geom
    reclaim = reclaim or {}
    ref = (RefNode if multi else RefZone)(policy=policy, pcp=pcp, nr_cpus=nr_cpus, **geom, **reclaim)
    jit = Model(policy=policy, pcp=pcp, nr_cpus=nr_cpus, **geom, **reclaim)
    if multi:
        assert [jit.zone_idx(i) for i in range(jit.nr_zones)] == [ref.zone_idx(i) for i in range(ref.nr_zones)]
        assert [jit.lowmem_reserve(i) for i in range(jit.nr_zones)] == [
            ref.lowmem_reserve(i) for i in range(ref.nr_zones)]
        assert [jit.watermarks(i) for i in range(jit.nr_zones)] == [
            ref.watermarks(i) for i in range(ref.nr_zones)]
    assert _state(jit, nr_cpus) == _state(ref, nr_cpus), "boot states differ"
    live = []
    live_mt = {}
    for step, (kind, a, mt, flags, cpu) in enumerate(ops):
        cpu %= nr_cpus
        if kind == "alloc":
            # small orders dominate real traffic; keep a mix so fallbacks at every order happen
            order = a if a <= 3 else a % (geom["max_order"] + 1)
            pinned, atomic = bool(flags & 1), bool(flags & 2)
            p_ref = ref.alloc(order, mt, pinned, cpu=cpu, atomic=atomic)
            p_jit = jit.alloc(order, mt, pinned, cpu=cpu, atomic=atomic)
            assert p_jit == p_ref, (f"step {step}: alloc({order}, {mt}, atomic={atomic}) -> {p_jit} "
                                    f"vs reference {p_ref}")
            if p_ref >= 0:
                live.append(p_ref)
                live_mt[p_ref] = mt
        elif kind == "tick":
            assert jit.decay_pcp_high(cpu) == ref.decay_pcp_high(cpu), f"step {step}: decay_pcp_high"
        elif kind == "drain":
            jit.drain()
            ref.drain()
        elif kind == "kswapd":
            ran_ref = ref.run_kswapd()
            ran_jit = jit.run_kswapd()
            assert ran_jit == ran_ref, f"step {step}: run_kswapd() -> {ran_jit} vs reference {ran_ref}"
        elif kind == "file":
            if not live or live_mt[live[a % len(live)]] != 1:
                continue
            pfn = live.pop(a % len(live))
            added_ref = ref.add_file(pfn)
            added_jit = jit.add_file(pfn)
            assert added_jit == added_ref, (f"step {step}: add_file({pfn}) -> {added_jit} vs "
                                            f"reference {added_ref}")
        elif live:
            pfn = live.pop(a % len(live))
            ref.free(pfn, cpu=cpu)
            jit.free(pfn, cpu=cpu)
        else:
            continue
        sj, sr = _state(jit, nr_cpus), _state(ref, nr_cpus)
        for name, x, y in zip(STATE_NAMES, sj, sr):
            assert x == y, f"step {step} ({kind}): {name} differ"
        jit.check()
        if step % check_ref_every == 0:
            ref.check()
    ref.check()
    return jit, ref


@pytest.mark.parametrize("policy", POLICIES)
@given(data=st.data())
def test_same_pfns_and_free_lists_as_the_reference(policy, data):
    geom = data.draw(geometries())
    ops = data.draw(operations(geom["max_order"], 150))
    _drive(geom, policy, False, ops, check_ref_every=1)


@pytest.mark.parametrize("policy", POLICIES)
@given(data=st.data())
def test_same_pcp_behaviour_as_the_reference(policy, data):
    geom = data.draw(geometries(pcp=True))
    ops = data.draw(operations(geom["max_order"], 400))
    _drive(geom, policy, True, ops, check_ref_every=50, nr_cpus=data.draw(st.integers(1, 3)))


@pytest.mark.parametrize("policy", POLICIES)
@given(data=st.data())
def test_same_zonelist_walk_as_the_reference(policy, data):
    """Nodes of several zones: lowmem_reserve, the zonelist and ALLOC_NOFRAGMENT."""
    geom = data.draw(node_geometries())
    ops = data.draw(operations(geom["max_order"], 200))
    _drive(geom, policy, False, ops, check_ref_every=1)


@pytest.mark.parametrize("policy", POLICIES)
@given(data=st.data())
def test_same_pcp_behaviour_in_several_zones_as_the_reference(policy, data):
    geom = data.draw(node_geometries(pcp=True))
    ops = data.draw(operations(geom["max_order"], 300))
    _drive(geom, policy, True, ops, check_ref_every=50, nr_cpus=data.draw(st.integers(1, 2)))


@pytest.mark.parametrize("policy", POLICIES)
def test_long_mixed_sequence_under_pressure(policy):
    """A long deterministic sequence that fills the zone to its watermarks with all three types,
    so claim, steal and watermark failures all happen, then frees most of it. One unmovable
    allocation in four is GFP_ATOMIC: below the low watermark those reserve highatomic
    pageblocks, and failing order-0 requests unreserve them."""
    import random
    rnd = random.Random(policy)
    geom = dict(nr_pages=2048 + 96, max_order=6, pageblock_order=4, holes=[(700, 705)],
                min_free_kbytes=None)
    ops = []
    for i in range(1500):
        if i < 900 or rnd.random() < 0.4:
            mt = rnd.choice([0, 1, 1, 1, 2])
            flags = int(rnd.random() < 0.1) | (2 if mt == 0 and rnd.random() < 0.25 else 0)
            ops.append(("alloc", rnd.choice([0, 0, 0, 1, 2, 3, 4, 6]), mt, flags, 0))
        else:
            ops.append(("free", rnd.randrange(10 ** 6), 0, 0, 0))
    jit, _ = _drive(geom, policy, False, ops, check_ref_every=25)
    # the sequence reaches the reserve (and the reference agreed on every step of it)
    assert jit.zone.stat[C.HIGHATOMIC_EVER] > 0


# ---------------------------------------------------------------------- reclaim

# Per policy and test: half the profile's count (20 with the JIT, 3 in the coverage pass without it;
# RECLAIM_EXAMPLES overrides). No shrinking: the sequences are long and, in two phases of
# a minimum length, shrink little, while each attempt replays hundreds of operations; the failure
# names the first step where the models differ and what differs.
RECLAIM_EXAMPLES = int(os.environ.get("RECLAIM_EXAMPLES", 0)) or min(20, settings.default.max_examples // 2)
RECLAIM_SETTINGS = settings(max_examples=RECLAIM_EXAMPLES,
                            phases=(Phase.explicit, Phase.reuse, Phase.generate))


def _reclaim_options(data):
    return dict(watermark_boost_factor=data.draw(st.sampled_from([0, 15000, 15000])), kswapd=True,
                pagecache=True)


def _pressed(data, geom):
    """The pcp geometry with, two times in three, a min_free_kbytes that puts the min watermark
    at 4/5 or 9/10 of the pages (the low one near or past all of them): a few hundred operations
    do not fill 16384 pages down to the geometry's own few dozen."""
    mfk = data.draw(st.sampled_from([geom["min_free_kbytes"], geom["nr_pages"] * 16 // 5,
                                     geom["nr_pages"] * 18 // 5]))
    return dict(geom, min_free_kbytes=mfk)


@pytest.mark.parametrize("policy", POLICIES)
@RECLAIM_SETTINGS
@given(data=st.data())
def test_same_reclaim_as_the_reference(policy, data):
    """One zone, no pcp: boosts, kswapd, page cache and direct reclaim."""
    geom = data.draw(geometries())
    ops = data.draw(reclaim_operations(geom["max_order"], 150))
    _drive(geom, policy, False, ops, check_ref_every=1, reclaim=_reclaim_options(data))


@pytest.mark.parametrize("policy", POLICIES)
@RECLAIM_SETTINGS
@given(data=st.data())
def test_same_pcp_reclaim_as_the_reference(policy, data):
    geom = _pressed(data, data.draw(geometries(pcp=True)))
    ops = data.draw(reclaim_operations(geom["max_order"], 300))
    _drive(geom, policy, True, ops, check_ref_every=50, nr_cpus=data.draw(st.integers(1, 3)),
           reclaim=_reclaim_options(data))


@pytest.mark.parametrize("policy", POLICIES)
@RECLAIM_SETTINGS
@given(data=st.data())
def test_same_zonelist_reclaim_as_the_reference(policy, data):
    """Several zones: the zones kswapd and direct reclaim may take page cache from."""
    geom = data.draw(node_geometries())
    ops = data.draw(reclaim_operations(geom["max_order"], 200))
    _drive(geom, policy, False, ops, check_ref_every=1, reclaim=_reclaim_options(data))


@pytest.mark.parametrize("policy", POLICIES)
@RECLAIM_SETTINGS
@given(data=st.data())
def test_same_pcp_reclaim_in_several_zones_as_the_reference(policy, data):
    geom = _pressed(data, data.draw(node_geometries(pcp=True)))
    ops = data.draw(reclaim_operations(geom["max_order"], 300))
    _drive(geom, policy, True, ops, check_ref_every=50, nr_cpus=data.draw(st.integers(1, 2)),
           reclaim=_reclaim_options(data))


def _pressure_ops(seed, n_fill, n_mix, nr_cpus=1):
    """A deterministic pressure sequence: the zone fills with small movable blocks, half of them
    page cache; a third of the blocks are freed, leaving small holes in movable pageblocks; then
    a mix of all three types (unmovable ones sometimes GFP_ATOMIC, some pinned), whose
    unmovable and reclaimable requests fall back into those holes below pageblock_order and
    boost the watermarks, with page cache, frees, kswapd runs and vmstat ticks; then order-0
    movable requests, half of them page cache, that refill it."""
    import random
    rnd = random.Random(seed)
    ops = []
    for _ in range(n_fill):
        ops.append(("alloc", rnd.choice([0, 0, 0, 1]), 1, 0, rnd.randrange(nr_cpus)))
        if rnd.random() < 0.5:
            ops.append(("file", 10 ** 6 - 1, 0, 0, 0))      # the block just allocated
    for i in range(n_fill // 3):
        ops.append(("free", 2 * i, 0, 0, rnd.randrange(nr_cpus)))
    for _ in range(n_mix):
        r = rnd.random()
        cpu = rnd.randrange(nr_cpus)
        if r < 0.15:
            ops.append(("file", rnd.randrange(10 ** 6), 0, 0, cpu))
        elif r < 0.2:
            ops.append(("kswapd", 0, 0, 0, cpu))
        elif r < 0.22:
            ops.append(("tick", 0, 0, 0, cpu))
        elif r < 0.7:
            mt = rnd.choice([0, 0, 1, 1, 1, 2])
            flags = int(rnd.random() < 0.1) | (2 if mt == 0 and rnd.random() < 0.2 else 0)
            ops.append(("alloc", rnd.choice([0, 0, 0, 1, 1, 2, 3, 4, 6]), mt, flags, cpu))
        else:
            ops.append(("free", rnd.randrange(10 ** 6), 0, 0, cpu))
    # the zone refills with order-0 movable requests: below the min watermark they reclaim
    # directly (a costly request's reclaim stops at zones where compaction is ready)
    for _ in range(n_fill):
        ops.append(("alloc", 0, 1, 0, rnd.randrange(nr_cpus)))
        if rnd.random() < 0.5:
            ops.append(("file", 10 ** 6 - 1, 0, 0, 0))
    return ops


def _assert_reclaim_covered(policy, jit, ref):
    counters = jit.reclaim_counters()
    assert counters == ref.reclaim_counters()
    if policy != "nomobility":      # every pageblock is UNMOVABLE there: no fallback at all
        assert counters["nr_watermark_boosts"] > 0, counters
    assert counters["pageoutrun"] > 0, counters
    assert counters["pgsteal_kswapd"] > 0, counters
    assert counters["pgsteal_direct"] > 0, counters


@pytest.mark.parametrize("policy", POLICIES)
def test_long_pressure_sequence_with_reclaim(policy):
    """A long deterministic sequence under pressure with boosting (factor 15000), kswapd and
    page cache in one zone with a hole, pageblock_order = max_order (so that most fallbacks take
    blocks below pageblock_order): the comparison covered boosts, kswapd runs, kswapd reclaim and
    direct reclaim."""
    geom = dict(nr_pages=2048 + 96, max_order=6, pageblock_order=6, holes=[(700, 705)],
                min_free_kbytes=None)
    ops = _pressure_ops("reclaim " + policy, 1300, 1700)
    jit, ref = _drive(geom, policy, False, ops, check_ref_every=25,
                      reclaim=dict(watermark_boost_factor=15000, kswapd=True, pagecache=True))
    _assert_reclaim_covered(policy, jit, ref)


@pytest.mark.parametrize("policy", POLICIES)
def test_long_pressure_sequence_with_reclaim_in_several_zones(policy):
    """The same on a node of four zones (DMA, DMA32, Normal, Movable) with pcp on two CPUs:
    the page cache lies in every zone, kswapd and direct reclaim skip the zones above the index
    they reclaim for. Without the JIT (the coverage pass, 18 s a policy) two policies, one per
    fallback family, cover its lines; the JIT pass runs every policy."""
    if os.environ.get("NUMBA_DISABLE_JIT") and policy not in ("v6.1", "v6.15"):
        pytest.skip("the coverage pass runs this sequence for v6.1 and v6.15 only")
    geom = dict(nr_pages=3584, max_order=6, pageblock_order=6, min_free_kbytes=None, dma_end=256,
                dma32_end=2048, movable_pages=512, thp_enabled=False)
    ops = _pressure_ops("node reclaim " + policy, 2000, 2000, nr_cpus=2)
    jit, ref = _drive(geom, policy, True, ops, check_ref_every=200, nr_cpus=2,
                      reclaim=dict(watermark_boost_factor=15000, kswapd=True, pagecache=True))
    _assert_reclaim_covered(policy, jit, ref)
