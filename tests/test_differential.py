"""The numba model against the pure-Python reference on the same operation sequences.

For every policy, with and without per-cpu lists, Hypothesis draws a zone geometry and a sequence of
allocations (some pinned, some GFP_ATOMIC) and frees. After every step both models must agree on the returned pfn, every free list
(contents and order), every pageblock type, the pcp lists and the counters; the kernel invariants are
checked on the numba model after every step and on the reference regularly.
"""

import os

import pytest
from hypothesis import HealthCheck, given, settings
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


def _state(m, nr_cpus=1):
    zones = range(getattr(m, "nr_zones", 1))
    return ([m.free_lists(zi) for zi in zones] if len(zones) > 1 else m.free_lists(),
            m.pageblock_types(), m.counters(),
            [m.buddyinfo(zi) for zi in zones] if len(zones) > 1 else m.buddyinfo(),
            [[(m.pcp_lists_of(c, zi), m.pcp_state(c, zi)) for c in range(nr_cpus)] for zi in zones]
            if len(zones) > 1 else [(m.pcp_lists_of(c), m.pcp_state(c)) for c in range(nr_cpus)])


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


def _drive(geom, policy, pcp, ops, check_ref_every, nr_cpus=1):
    multi = "dma_end" in geom
    ref = (RefNode if multi else RefZone)(policy=policy, pcp=pcp, nr_cpus=nr_cpus, **geom)
    jit = Model(policy=policy, pcp=pcp, nr_cpus=nr_cpus, **geom)
    if multi:
        assert [jit.zone_idx(i) for i in range(jit.nr_zones)] == [ref.zone_idx(i) for i in range(ref.nr_zones)]
        assert [jit.lowmem_reserve(i) for i in range(jit.nr_zones)] == [
            ref.lowmem_reserve(i) for i in range(ref.nr_zones)]
        assert [jit.watermarks(i) for i in range(jit.nr_zones)] == [
            ref.watermarks(i) for i in range(ref.nr_zones)]
    assert _state(jit, nr_cpus) == _state(ref, nr_cpus), "boot states differ"
    live = []
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
        elif kind == "tick":
            assert jit.decay_pcp_high(cpu) == ref.decay_pcp_high(cpu), f"step {step}: decay_pcp_high"
        elif kind == "drain":
            jit.drain()
            ref.drain()
        elif live:
            pfn = live.pop(a % len(live))
            ref.free(pfn, cpu=cpu)
            jit.free(pfn, cpu=cpu)
        else:
            continue
        sj, sr = _state(jit, nr_cpus), _state(ref, nr_cpus)
        for name, x, y in zip(("free lists", "pageblock types", "counters", "buddyinfo",
                               "pcp lists and state of each CPU"), sj, sr):
            assert x == y, f"step {step} ({kind}): {name} differ"
        jit.check()
        if step % check_ref_every == 0:
            ref.check()
    ref.check()
    return jit


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
    jit = _drive(geom, policy, False, ops, check_ref_every=25)
    # the sequence reaches the reserve (and the reference agreed on every step of it)
    assert jit.zone.stat[C.HIGHATOMIC_EVER] > 0
