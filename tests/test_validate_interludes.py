"""farm validate replays what the captured machine did between the kernel's own requests: the
capture harness writing the `mid` snapshot before compact_memory and the `compacted` snapshot
before the hugetlb pool grows (Interludes), with the model's policy, leaving out the frees of the
pages a compaction migrates (inside mm_compaction_begin .. mm_compaction_end)."""

import gzip
from pathlib import Path

import numpy as np
import pytest

from farm.real.replay import load_events, open_source, zone_starts
from farm.real.validate import interludes, validate
from kernels import replay as R

CAPTURE = Path(__file__).parent / "data" / "k6.12-fragmenter-512m"


def _between_the_probes():
    """The trace text from the `mid` marker to the pool's first page (the first
    __GFP_RETRY_MAYFAIL allocation after `compacted`): (phase, line), phase 1 before `compacted`
    and 2 from it (1 vCPU: the text order is the CPU's)."""
    phase = 0
    with gzip.open(CAPTURE / "trace.txt.gz", "rt") as f:
        for line in f:
            if "phase=mid" in line:
                phase = 1
            elif "phase=compacted" in line:
                phase = 2
            if not phase:
                continue
            if phase == 2 and "mm_page_alloc:" in line and "__GFP_RETRY_MAYFAIL" in line:
                return
            yield phase, line


def _from_the_text():
    """Counted from the trace text alone: mm_page_alloc lines between the probes, and
    mm_page_free lines outside a compaction."""
    allocs = frees = 0
    compacting = False
    for _, line in _between_the_probes():
        if "mm_page_alloc:" in line:
            allocs += 1
        elif "mm_compaction_begin" in line:
            compacting = True
        elif "mm_compaction_end" in line:
            compacting = False
        elif "mm_page_free:" in line and not compacting:
            frees += 1
    return allocs, frees


def _allocs_around_compact_memory():
    """From the trace text: mm_page_alloc lines from the `mid` marker to the end of the last
    compaction before `compacted` (compact_memory's), and from there to the pool's first page."""
    before = after = 0
    for phase, line in _between_the_probes():
        if "mm_compaction_end" in line and phase == 1:
            before, after = before + after, 0
        elif "mm_page_alloc:" in line:
            after += 1
    return before, after


def test_interludes_span_the_harness_activity_between_the_markers():
    """The mid snapshot's activity goes before `compact`, up to the end of compact_memory's
    compaction; the compacted snapshot's process starts after compact_memory returns, so its
    allocations (before the `compacted` marker) go before `hugepages`, with what follows up to
    the pool's first page."""
    capture, trace = open_source(CAPTURE)
    events = load_events(trace, lenient=True, zones=zone_starts(capture))
    probes = ["compact", "hugepages:order=9,count=256", "gigantic:count=1,size=1G"]
    ranges = interludes(events, probes)
    marks = {text.split()[0]: i for i, text in events.markers}
    assert set(ranges) == {0, 1}
    split = ranges[0][1]
    assert ranges[0][0] == marks["phase=mid"] and marks["phase=mid"] < split < marks["phase=compacted"]
    first_pool = ranges[1][1]
    assert ranges[1][0] == split and first_pool > marks["phase=compacted"]
    assert events.order[first_pool] == 9
    allocs = [int(np.count_nonzero(events.kind[a:b] == R.EV_ALLOC)) for a, b in (ranges[0], ranges[1])]
    before, after = _allocs_around_compact_memory()
    assert allocs == [before, after] and after > 1000
    assert interludes(events, ["hugepages:order=9,count=1"]) == {0: (marks["phase=compacted"], first_pool)}


def test_validate_replays_every_allocation_and_free_of_the_harness():
    v = validate(CAPTURE, with_policy=False)
    allocs, frees = _from_the_text()
    assert v["between_probes"]["allocs"] == allocs > 1000
    assert v["between_probes"]["frees"] == frees
    assert v["between_probes"]["alloc_failed"] == 0
