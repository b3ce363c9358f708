"""virtio-mem unplug against the pure-Python reference (tests/reference.py, RefVirtioMem).

The model (kernels/virtio_mem.py) runs on a real node and calls the model's alloc_contig_range;
the reference runs the driver logic of drivers/virtio/virtio_mem.c (6.12) on its own and asks an
oracle written here, from the kernel's alloc_contig_range rules, whether each attempt succeeds:

* pageblock regime (5.19+): the range fails iff a page of a pageblock it covers is allocated
  and unmovable or pinned (isolate_single_pageblock() checks boundary pageblocks whole);
* maxorder regime (before 5.19): the range is first rounded out to max(2^max_order,
  2^pageblock_order) boundaries, clamped to the zone, and the same check runs on that range.

Pages the device already took (fake-offline) count as unmovable; a BBM rollback gives them back.
Between two requests of a case some pinned pages are unpinned and some unmovable pages freed, so
blocks left partial by busy subblocks can give more back (which makes the state order visible).
The layouts keep plenty of free memory below the device, so migration never runs out (no
-ENOMEM). Compared: pages unplugged, the plugged subblocks (SBM) or big-block states (BBM), the
alloc_contig_range calls and the memory blocks removed; every zone passes check_zone()."""

import random

import numpy as np
import pytest

from kernels import constants as C
from kernels import virtio_mem as V
from kernels.check import check_zone
from kernels.page_alloc import boot_node, free_pages, page_zone
from kernels.replay import _mark_allocated, take_off_buddy
from kernels.zone import make_node, zone_spans
from reference import (RefVirtioMem, VM_BBM_ADDED, VM_BBM_FAKE_OFFLINE, VM_BBM_PLUGGED, VM_BBM_UNUSED,
                       VM_SBM_KERNEL, VM_SBM_KERNEL_PARTIAL, VM_SBM_MOVABLE, VM_SBM_MOVABLE_PARTIAL,
                       VM_SBM_OFFLINE, VM_SBM_OFFLINE_PARTIAL, VM_SBM_UNUSED)

pytestmark = pytest.mark.kernels

SBM_STATE = {V.VIRTIO_MEM_SBM_MB_UNUSED: VM_SBM_UNUSED, V.VIRTIO_MEM_SBM_MB_OFFLINE: VM_SBM_OFFLINE,
             V.VIRTIO_MEM_SBM_MB_OFFLINE_PARTIAL: VM_SBM_OFFLINE_PARTIAL,
             V.VIRTIO_MEM_SBM_MB_KERNEL: VM_SBM_KERNEL, V.VIRTIO_MEM_SBM_MB_KERNEL_PARTIAL: VM_SBM_KERNEL_PARTIAL,
             V.VIRTIO_MEM_SBM_MB_MOVABLE: VM_SBM_MOVABLE,
             V.VIRTIO_MEM_SBM_MB_MOVABLE_PARTIAL: VM_SBM_MOVABLE_PARTIAL}
BBM_STATE = {V.VIRTIO_MEM_BBM_BB_UNUSED: VM_BBM_UNUSED, V.VIRTIO_MEM_BBM_BB_PLUGGED: VM_BBM_PLUGGED,
             V.VIRTIO_MEM_BBM_BB_ADDED: VM_BBM_ADDED, V.VIRTIO_MEM_BBM_BB_FAKE_OFFLINE: VM_BBM_FAKE_OFFLINE}

# (name, max_order, pageblock_order, maxorder regime, section_bits, memory_block_bits,
#  nr_pages, region pages, device block sizes, force_bbm)
GEOMETRIES = [
    # SBM, pageblock regime: 1024-page memory blocks, subblocks of 16..128 pages
    ("sbm-pageblock", 6, 4, False, 20, 22, 8192, 4096, (1, 16, 32, 128), False),
    # SBM, maxorder regime: subblocks of at least 2^6 pages
    ("sbm-maxorder", 6, 4, True, 20, 22, 8192, 4096, (1, 16, 64, 256), False),
    # BBM, maxorder regime: 2^8-page max-order blocks fill a 256-page memory block; a device
    # block of 1024 pages makes big blocks of four memory blocks
    ("bbm-maxorder", 8, 4, True, 20, 20, 8192, 4096, (1, 256, 1024), False),
    # BBM, pageblock regime: a device block larger than the 256-page memory block; sections of 64
    ("bbm-pageblock", 6, 4, False, 18, 20, 8192, 4096, (256, 512, 1024), False),
    # BBM forced (the force_bbm module parameter) on an SBM-sized geometry
    ("bbm-forced", 6, 4, False, 20, 22, 8192, 4096, (16, 64), True),
]


class ContigOracle:
    """One alloc_contig_range() attempt on [start, start + nr) of the device region, from the
    kernel's rules; remembers what the device took."""

    def __init__(self, region_start, bad, spans, max_order, pageblock_order, maxorder):
        self.region_start = region_start
        self.bad = set(bad)                  # absolute pfns: allocated unmovable or pinned
        self.taken = set()                   # absolute pfns the device fake-offlined
        self.spans = spans
        self.align = 1 << (max(max_order, pageblock_order) if maxorder else pageblock_order)
        self.maxorder = maxorder

    def _zone_of(self, pfn):
        for _, start, end in self.spans:
            if start <= pfn < end:
                return start, end
        raise AssertionError(pfn)

    def fake_offline(self, off, nr):
        start = self.region_start + off
        end = start + nr
        lo = start - start % self.align
        hi = -(-end // self.align) * self.align
        if self.maxorder:
            zs, ze = self._zone_of(start)
            lo, hi = max(lo, zs), min(hi, ze)
        for pfn in range(lo, hi):
            if pfn in self.bad or pfn in self.taken:
                return "busy"
        self.taken.update(range(start, end))
        return "ok"

    def fake_online(self, off, nr):
        start = self.region_start + off
        for pfn in range(start, start + nr):
            assert pfn in self.taken, f"gave back pfn {pfn}, never taken"
            self.taken.discard(pfn)


def _place(node, pfn, mt, pinned=False):
    z = node[page_zone(node, pfn)]
    assert take_off_buddy(z, pfn, pfn + 1) == 0, f"pfn {pfn} not free"
    _mark_allocated(z, pfn, 0, mt)
    if pinned:
        z.page_flags[pfn] |= C.PG_PINNED


def _case(rng, geometry):
    """A random layout of one geometry: (name, node kwargs, device kwargs, pages to place,
    requests)."""
    name, M, P, maxorder, sec_bits, mb_bits, nr_pages, region, devs, force = geometry
    mb = 1 << (mb_bits - C.PAGE_SHIFT)
    dev = rng.choice(devs)
    nr_mb = region // mb
    where = rng.choice(["normal", "movable", "straddle", "movable-below"])
    movable = {"normal": 0, "movable": region, "movable-below": region + 2 * mb,
               "straddle": rng.randrange(1, nr_mb) * mb}[where]
    region_start = nr_pages - region
    places = {}
    for _ in range(rng.choice([0, 1, 3, 8, 20])):
        pfn = region_start + rng.randrange(region)
        in_movable = pfn >= nr_pages - movable
        kind = rng.choice(["pinned", "lru"] if in_movable else ["unmovable", "unmovable", "pinned", "lru"])
        places[pfn] = kind
    # a cluster of unmovable pages in one block, so that some block cannot go whole
    if rng.random() < 0.5:
        base = region_start + rng.randrange(nr_mb) * mb
        for _ in range(4):
            pfn = base + rng.randrange(mb)
            places[pfn] = "pinned" if pfn >= nr_pages - movable else "unmovable"
    sb = max(dev, 1 << P, (1 << M) if maxorder else 1)
    unit = sb if sb < mb and not force else max(dev, mb)
    requests = []
    plugged = region
    for _ in range(rng.choice([1, 2, 3])):
        k = rng.randrange(0, plugged // unit + 1)
        want = plugged - k * unit - rng.choice([0, 0, 1, unit // 2])
        want = max(0, want)
        requests.append(want)
        plugged = max(0, want - rng.choice([0, unit]))
    # before each later request, some pinned pages are unpinned and some unmovable pages freed
    blocking = sorted(p for p, k in places.items() if k != "lru")
    releases = [[]]
    for _ in requests[1:]:
        rng.shuffle(blocking)
        cut = rng.randrange(len(blocking) + 1) // 2
        releases.append(sorted(blocking[:cut]))
        blocking = blocking[cut:]
    return dict(name=f"{name}/{where}/dev{dev}", M=M, P=P, maxorder=maxorder, sec_bits=sec_bits,
                mb_bits=mb_bits, nr_pages=nr_pages, region=region, dev=dev, movable=movable,
                force=force, places=places, requests=requests, releases=releases)


def _run(case, ref_variant=None):
    c = case
    node = make_node(c["nr_pages"], c["M"], c["P"], policy="v6.15", section_bits=c["sec_bits"],
                     memory_block_bits=c["mb_bits"], movable_pages=c["movable"],
                     contig_maxorder=c["maxorder"])
    boot_node(node)
    region_start = c["nr_pages"] - c["region"]
    bad = []
    for pfn, kind in sorted(c["places"].items()):
        if kind == "unmovable":
            _place(node, pfn, C.MIGRATE_UNMOVABLE)
            bad.append(pfn)
        elif kind == "pinned":
            _place(node, pfn, C.MIGRATE_MOVABLE, pinned=True)
            bad.append(pfn)
        else:
            _place(node, pfn, C.MIGRATE_MOVABLE)
    check_zone(node)
    vm = V.virtio_mem_init(node, region_start, c["region"], c["dev"], c["maxorder"], force_bbm=c["force"])
    mb = 1 << (c["mb_bits"] - C.PAGE_SHIFT)
    sec = 1 << (c["sec_bits"] - C.PAGE_SHIFT)
    spans = zone_spans(c["nr_pages"], c["movable"])
    movable_start = c["nr_pages"] - c["movable"]
    cls = ref_variant or RefVirtioMem
    ref = cls(c["region"], mb, sec, c["dev"], c["P"], c["M"], c["maxorder"],
              [region_start + i * mb >= movable_start for i in range(c["region"] // mb)],
              force_bbm=c["force"])
    oracle = ContigOracle(region_start, bad, spans, c["M"], c["P"], c["maxorder"])
    assert bool(vm.in_sbm) == ref.in_sbm, f"{c['name']}: model in_sbm {vm.in_sbm}, reference {ref.in_sbm}"
    if ref.in_sbm:
        assert (vm.sb_size, vm.sbs_per_mb) == (ref.sb_size, ref.sbs_per_mb), (
            f"{c['name']}: model subblocks {vm.sb_size} x {vm.sbs_per_mb}, reference {ref.sb_size} x {ref.sbs_per_mb}")
    else:
        assert vm.bb_size == ref.bb_size, f"{c['name']}: model big block {vm.bb_size}, reference {ref.bb_size}"
    for step, want in enumerate(c["requests"]):
        for pfn in c["releases"][step]:
            z = node[page_zone(node, pfn)]
            if c["places"][pfn] == "pinned":
                z.page_flags[pfn] &= C.PG_MASK ^ C.PG_PINNED     # unpinned: migratable again
            else:
                free_pages(node, pfn)
            oracle.bad.discard(pfn)
        check_zone(node)
        got = V.virtio_mem_resize(node, vm, want)
        check_zone(node)
        exp = ref.resize(want, oracle.fake_offline, oracle.fake_online)
        where = f"{c['name']} request {step} ({want} pages)"
        assert got == exp, f"{where}: model unplugged {got}, reference {exp}"
        if ref.in_sbm:
            plugged = [bool(b) for b in np.asarray(vm.sb_plugged).ravel()]
            assert plugged == [b for row in ref.plugged for b in row], f"{where}: plugged subblocks"
            assert [SBM_STATE[int(s)] for s in vm.mb_state] == ref.mb_state, f"{where}: block states"
        else:
            assert [BBM_STATE[int(s)] for s in vm.bb_state] == ref.bb_state, f"{where}: big-block states"
        assert vm.fake_offline_calls == ref.fake_offline_calls, (
            f"{where}: model {vm.fake_offline_calls} alloc_contig_range calls, reference {ref.fake_offline_calls}")
        assert vm.removed_blocks == ref.removed_blocks, (
            f"{where}: model removed {vm.removed_blocks} blocks, reference {ref.removed_blocks}")
    for z in node:
        check_zone(z)
    return ref


def _partial_order_case():
    """Blocks 0-1 kernel, 2-3 movable, 64 subblocks of 16 pages each; a pin in the top subblock
    of block 3. Request 0 leaves block 3 MOVABLE_PARTIAL (its top subblock busy) and block 1
    KERNEL_PARTIAL; the pin goes; request 1 wants one subblock more: MOVABLE_PARTIAL is visited
    before KERNEL_PARTIAL, so block 3's last subblock goes and block 3 is removed."""
    region_start = 8192 - 4096
    pin = region_start + 4096 - 1
    return dict(name="sbm-pageblock/straddle/dev16/partial-order", M=6, P=4, maxorder=False,
                sec_bits=20, mb_bits=22, nr_pages=8192, region=4096, dev=16, movable=2048,
                force=False, places={pin: "pinned"}, requests=[4096 - 137 * 16, 4096 - 138 * 16],
                releases=[[], [pin]])


def _cases():
    rng = random.Random(0x7669_7274)
    out = [_partial_order_case()]
    for g in GEOMETRIES:
        for _ in range(24):
            out.append(_case(rng, g))
    return out


CASES = _cases()


@pytest.mark.parametrize("case", CASES, ids=[f"{i}-{c['name']}" for i, c in enumerate(CASES)])
def test_model_matches_the_reference(case):
    _run(case)


def test_the_cases_cover_what_they_should():
    """The seeded layouts reach both modes, both regimes, every zone placement, busy blocks,
    partial blocks and removals (run on the reference alone)."""
    seen = set()
    for c in CASES:
        seen.add(("mode", c["name"].split("/")[0]))
        seen.add(("where", c["name"].split("/")[1]))
    for g in GEOMETRIES:
        assert ("mode", g[0]) in seen
    for w in ("normal", "movable", "straddle", "movable-below"):
        assert ("where", w) in seen


def test_reference_fake_offline_tries():
    """virtio_mem_fake_offline() in the reference alone: 5 tries on ZONE_MOVABLE, 1 elsewhere,
    -ENOMEM at once; a busy subblock is skipped for the next one down, -ENOMEM ends the request
    (and a pass that frees nothing ends the host request)."""
    top_down = [(16 * i, 16) for i in range(63, -1, -1)]
    for movable, answer, log_want in ((True, "busy", [r for r in top_down for _ in range(5)]),
                                      (False, "busy", top_down),
                                      (True, "nomem", top_down[:1]), (False, "nomem", top_down[:1])):
        ref = RefVirtioMem(1024, 1024, 256, 16, 4, 6, False, [movable])
        log = []
        assert ref.resize(1024 - 16, lambda s, n: log.append((s, n)) or answer) == 0
        assert log == log_want
        assert ref.fake_offline_calls == len(log_want) and ref.removed_blocks == 0
