"""farm validate replays what the captured machine did between the kernel's own requests: the
capture harness writing the `mid` snapshot before compact_memory and the `compacted` snapshot
before the hugetlb pool grows (Interludes), with the model's policy, leaving out the frees of the
pages a compaction migrates (inside mm_compaction_begin .. mm_compaction_end)."""

import gzip
from pathlib import Path

import pytest

from farm.real.replay import load_events, open_source, zone_starts
from farm.real.validate import interludes, validate

CAPTURE = Path(__file__).parent / "data" / "k6.12-fragmenter-512m"


def _from_the_text():
    """Counted from the trace text alone: mm_page_alloc lines from the `mid` marker to the
    first __GFP_RETRY_MAYFAIL allocation after `compacted`, and mm_page_free lines outside a
    compaction (1 vCPU: the text order is the CPU's)."""
    allocs = frees = 0
    phase, compacting = 0, False
    with gzip.open(CAPTURE / "trace.txt.gz", "rt") as f:
        for line in f:
            if "phase=mid" in line:
                phase = 1
            elif "phase=compacted" in line:
                phase = 2
            if not phase:
                continue
            if "mm_page_alloc:" in line:
                if phase == 2 and "__GFP_RETRY_MAYFAIL" in line:
                    break
                allocs += 1
            elif "mm_compaction_begin" in line:
                compacting = True
            elif "mm_compaction_end" in line:
                compacting = False
            elif "mm_page_free:" in line and not compacting:
                frees += 1
    return allocs, frees


def test_interludes_span_the_harness_activity_between_the_markers():
    capture, trace = open_source(CAPTURE)
    events = load_events(trace, lenient=True, zones=zone_starts(capture))
    probes = ["compact", "hugepages:order=9,count=256", "gigantic:count=1,size=1G"]
    ranges = interludes(events, probes)
    marks = {text.split()[0]: i for i, text in events.markers}
    assert set(ranges) == {0, 1}
    assert ranges[0] == (marks["phase=mid"], marks["phase=compacted"])
    first_pool = ranges[1][1]
    assert ranges[1][0] == marks["phase=compacted"] and first_pool > marks["phase=compacted"]
    assert events.order[first_pool] == 9
    assert interludes(events, ["hugepages:order=9,count=1"]) == {0: (marks["phase=compacted"], first_pool)}


def test_validate_replays_every_allocation_and_free_of_the_harness():
    v = validate(CAPTURE, with_policy=False)
    allocs, frees = _from_the_text()
    assert v["between_probes"]["allocs"] == allocs > 1000
    assert v["between_probes"]["frees"] == frees
    assert v["between_probes"]["alloc_failed"] == 0
