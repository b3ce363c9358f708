"""farm.real.trace: ftrace text (the kernel's own and trace-cmd's) -> the event table.

Real lines of the Linux 6.1 and 6.12 captures with their values read off by hand; the vectorised
readers against the line-by-line reference (tests/trace_reference.py) on real and
Hypothesis-generated text; malformed input; files; the CLI; and the whole 6.1 fragmenter trace
against counts taken with zcat and grep."""

import gzip
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import farm.real.trace as trace
from farm.cli import main
from farm.real.trace import COLUMNS, TraceError, parse_text, parse_trace, summarize, trace_info
from trace_reference import ReferenceError, reference_parse
from trace_strategies import lines as any_line
from trace_strategies import texts

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
FRAG61 = DATA / "kernel-6.1-fragmenter-2560m" / "trace.txt.gz"
FRAG612 = DATA / "kernel-6.12-fragmenter-2560m" / "trace.txt.gz"
needs_data = pytest.mark.skipif(not FRAG61.exists(), reason="the shared captures are not here")

# Real lines, and what each says, read off by hand. Integers not listed must be -1, strings None.
REAL = [
    # Linux 6.1
    ("            init-1       [000] .....     3.438053: tracing_mark_write: phase=work-start",
     dict(task="init", pid=1, cpu=0, ts=3.438053, event="tracing_mark_write", marker="phase=work-start",
          phase="work-start")),
    ("            init-1       [000] .....     3.440122: mm_page_alloc: page=(____ptrval____) pfn=0x2c84 order=1 "
     "migratetype=0 gfp_flags=GFP_KERNEL_ACCOUNT|__GFP_ZERO",
     dict(task="init", pid=1, cpu=0, ts=3.440122, event="mm_page_alloc", pfn=0x2c84, order=1, migratetype=0,
          gfp_flags="GFP_KERNEL_ACCOUNT|__GFP_ZERO")),
    ("           work2-100     [000] .....     3.443318: mm_page_free: page=(____ptrval____) pfn=0x15db9 order=0",
     dict(task="work2", pid=100, cpu=0, ts=3.443318, event="mm_page_free", pfn=0x15db9, order=0)),
    ("           work2-100     [000] ...2.     3.443415: mm_page_free_batched: page=(____ptrval____) pfn=0x15db9 "
     "order=0",
     dict(task="work2", pid=100, ts=3.443415, event="mm_page_free_batched", pfn=0x15db9, order=0)),
    ("           work2-100     [000] d..4.     3.469932: mm_page_alloc_zone_locked: page=(____ptrval____) pfn=0x20ec "
     "order=1 migratetype=2 percpu_refill=1",
     dict(task="work2", pid=100, ts=3.469932, event="mm_page_alloc_zone_locked", pfn=0x20ec, order=1,
          migratetype=2, percpu_refill=1)),
    ("           work2-100     [000] d..3.    10.743830: mm_page_pcpu_drain: page=(____ptrval____) pfn=0x5fb44 "
     "order=0 migratetype=1",
     dict(task="work2", pid=100, ts=10.74383, event="mm_page_pcpu_drain", pfn=0x5fb44, order=0, migratetype=1)),
    ("           work2-100     [000] d..3.     4.251414: mm_page_alloc_extfrag: page=(____ptrval____) pfn=0x1f800 "
     "alloc_order=0 fallback_order=10 pageblock_order=9 alloc_migratetype=0 fallback_migratetype=1 fragmenting=0 "
     "change_ownership=1",
     dict(task="work2", pid=100, ts=4.251414, event="mm_page_alloc_extfrag", pfn=0x1f800, alloc_order=0,
          fallback_order=10, pageblock_order=9, alloc_migratetype=0, fallback_migratetype=1, fragmenting=0,
          change_ownership=1)),
    ("            init-1       [000] .....    19.461463: mm_compaction_begin: zone_start=0x1 migrate_pfn=0x1 "
     "free_pfn=0xe00 zone_end=0x1000, mode=sync",
     dict(task="init", pid=1, ts=19.461463, event="mm_compaction_begin", zone_start=1, migrate_pfn=1,
          free_pfn=0xe00, zone_end=0x1000, mode="sync")),
    ("            init-1       [000] .....    19.531865: mm_compaction_end: zone_start=0x1000 migrate_pfn=0x5e600 "
     "free_pfn=0x5e700 zone_end=0x9ffdd, mode=sync status=complete",
     dict(task="init", pid=1, ts=19.531865, event="mm_compaction_end", zone_start=0x1000, migrate_pfn=0x5e600,
          free_pfn=0x5e700, zone_end=0x9ffdd, mode="sync", status="complete")),
    ("            init-1       [000] .....    19.461629: mm_compaction_finished: node=0 zone=DMA      order=-1 "
     "ret=continue",
     dict(task="init", pid=1, ts=19.461629, event="mm_compaction_finished", node=0, zone="DMA", order=-1,
          ret="continue")),
    ("            init-1       [000] .....    19.466262: mm_compaction_isolate_freepages: range=(0x9fe00 ~ 0x9fe80) "
     "nr_scanned=128 nr_taken=41",
     dict(task="init", pid=1, ts=19.466262, event="mm_compaction_isolate_freepages", start_pfn=0x9fe00,
          end_pfn=0x9fe80, nr_scanned=128, nr_taken=41)),
    ("            init-1       [000] .....    19.462059: mm_compaction_isolate_migratepages: range=(0x1 ~ 0x200) "
     "nr_scanned=384 nr_taken=0",
     dict(task="init", pid=1, ts=19.462059, event="mm_compaction_isolate_migratepages", start_pfn=1,
          end_pfn=0x200, nr_scanned=384, nr_taken=0)),
    ("            init-1       [000] .....    19.469247: mm_compaction_migratepages: nr_migrated=17 nr_failed=0",
     dict(task="init", pid=1, ts=19.469247, event="mm_compaction_migratepages", nr_migrated=17, nr_failed=0)),
    ("      kcompactd0-28      [000] .....     3.621022: mm_compaction_kcompactd_sleep: nid=0",
     dict(task="kcompactd0", pid=28, ts=3.621022, event="mm_compaction_kcompactd_sleep", node=0)),
    ("            init-1       [000] .N...    22.203945: mm_compaction_try_to_compact_pages: order=9 "
     "gfp_mask=GFP_HIGHUSER_MOVABLE|__GFP_NOWARN|__GFP_RETRY_MAYFAIL|__GFP_COMP|__GFP_THISNODE priority=2",
     dict(task="init", pid=1, ts=22.203945, event="mm_compaction_try_to_compact_pages", order=9, priority=2,
          gfp_flags="GFP_HIGHUSER_MOVABLE|__GFP_NOWARN|__GFP_RETRY_MAYFAIL|__GFP_COMP|__GFP_THISNODE")),
    # a failed allocation: NULL page, pfn printed as 0
    ("            init-1       [000] .....    22.532640: mm_page_alloc: page=0000000000000000 pfn=0x0 order=9 "
     "migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE|__GFP_NOWARN|__GFP_RETRY_MAYFAIL|__GFP_COMP|__GFP_THISNODE",
     dict(task="init", pid=1, ts=22.53264, event="mm_page_alloc", pfn=-1, order=9, migratetype=1,
          gfp_flags="GFP_HIGHUSER_MOVABLE|__GFP_NOWARN|__GFP_RETRY_MAYFAIL|__GFP_COMP|__GFP_THISNODE")),
    ("             cat-112     [000] d..1.    22.543133: mm_page_alloc_zone_locked: page=(____ptrval____) pfn=0x1a0 "
     "order=5 migratetype=0 percpu_refill=0",
     dict(task="cat", pid=112, ts=22.543133, event="mm_page_alloc_zone_locked", pfn=0x1a0, order=5, migratetype=0,
          percpu_refill=0)),
    ("            init-1       [000] .....    22.552888: tracing_mark_write: phase=hugepages-2m-done got=1052",
     dict(task="init", pid=1, ts=22.552888, event="tracing_mark_write", marker="phase=hugepages-2m-done got=1052",
          phase="hugepages-2m-done")),
    # Linux 6.12
    ("     ksoftirqd/0-17      [000] d.s3.     8.252092: mm_page_pcpu_drain: page=(____ptrval____) pfn=0x14e2 "
     "order=1 migratetype=2",
     dict(task="ksoftirqd/0", pid=17, ts=8.252092, event="mm_page_pcpu_drain", pfn=0x14e2, order=1,
          migratetype=2, irq=1)),
    # an RCU callback freeing a slab page in a softirq (irq-info third column `s`)
    ("            init-1       [000] .Ns4.    52.209204: mm_page_free: page=00000000b952bfec pfn=0x2d42 order=1",
     dict(task="init", pid=1, ts=52.209204, event="mm_page_free", pfn=0x2d42, order=1, irq=1)),
    ("     kworker/0:1-10      [000] d..2.     9.795714: mm_page_pcpu_drain: page=(____ptrval____) pfn=0x12281 "
     "order=0 migratetype=0",
     dict(task="kworker/0:1", pid=10, ts=9.795714, event="mm_page_pcpu_drain", pfn=0x12281, order=0,
          migratetype=0)),
    ("            init-1       [000] .....    17.502530: mm_compaction_defer_compaction: node=0 zone=DMA32    "
     "order=9 order_failed=9 consider=0 limit=2",
     dict(task="init", pid=1, ts=17.50253, event="mm_compaction_defer_compaction", node=0, zone="DMA32", order=9,
          order_failed=9, consider=0, limit=2)),
    ("            init-1       [000] .....    17.503773: mm_compaction_deferred: node=0 zone=DMA32    order=9 "
     "order_failed=9 consider=1 limit=2",
     dict(task="init", pid=1, ts=17.503773, event="mm_compaction_deferred", node=0, zone="DMA32", order=9,
          order_failed=9, consider=1, limit=2)),
    ("            init-1       [000] .....    17.388658: mm_compaction_defer_reset: node=0 zone=DMA32    order=9 "
     "order_failed=10 consider=1 limit=1",
     dict(task="init", pid=1, ts=17.388658, event="mm_compaction_defer_reset", node=0, zone="DMA32", order=9,
          order_failed=10, consider=1, limit=1)),
    ("            init-1       [000] .....    17.008728: mm_compaction_fast_isolate_freepages: range=(0x77800 ~ "
     "0x9fe00) nr_scanned=697 nr_taken=0",
     dict(task="init", pid=1, ts=17.008728, event="mm_compaction_fast_isolate_freepages", start_pfn=0x77800,
          end_pfn=0x9fe00, nr_scanned=697, nr_taken=0)),
    # a real 6.12 line: the kernel's unsigned long start pfn with its top bit set, kept bit for bit
    ("            init-1       [000] .....    17.008801: mm_compaction_fast_isolate_freepages: "
     "range=(0x800000000004ea00 ~ 0x4ea00) nr_scanned=13 nr_taken=0",
     dict(task="init", pid=1, ts=17.008801, event="mm_compaction_fast_isolate_freepages",
          start_pfn=0x800000000004ea00 - 2**64, end_pfn=0x4ea00, nr_scanned=13, nr_taken=0)),
    ("            init-1       [000] .N...    17.002982: mm_compaction_suitable: node=0 zone=DMA32    order=9 "
     "ret=continue",
     dict(task="init", pid=1, ts=17.002982, event="mm_compaction_suitable", node=0, zone="DMA32", order=9,
          ret="continue")),
    ("           work2-147     [000] d..3.     3.905992: mm_page_alloc_extfrag: page=(____ptrval____) pfn=0x1ec00 "
     "alloc_order=0 fallback_order=10 pageblock_order=9 alloc_migratetype=2 fallback_migratetype=1 fragmenting=0 "
     "change_ownership=1",
     dict(task="work2", pid=147, ts=3.905992, event="mm_page_alloc_extfrag", pfn=0x1ec00, alloc_order=0,
          fallback_order=10, pageblock_order=9, alloc_migratetype=2, fallback_migratetype=1, fragmenting=0,
          change_ownership=1)),
    ("            init-1       [000] .....     3.062607: mm_page_alloc: page=(____ptrval____) pfn=0x1495 order=0 "
     "migratetype=2 gfp_flags=GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_RECLAIMABLE",
     dict(task="init", pid=1, ts=3.062607, event="mm_page_alloc", pfn=0x1495, order=0, migratetype=2,
          gfp_flags="GFP_KERNEL|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_RECLAIMABLE")),
]

INTS = [k for k, t in COLUMNS.items() if pa.types.is_integer(t) and k not in ("line", "cpu", "pid", "irq")]
STRS = [k for k, t in COLUMNS.items() if k not in INTS and k not in ("line", "ts", "cpu", "irq", "pid", "task", "event")]


def _rows_of(table, event):
    return table.filter(pc.equal(table.column("event").cast(pa.string()), event))


def _row(table, i=0):
    return {k: table.column(k)[i].as_py() for k in table.column_names}


@pytest.mark.parametrize("line,want", REAL, ids=[w["event"] + str(i) for i, (_, w) in enumerate(REAL)])
def test_real_lines(line, want):
    # the line three times: so that the column layout of the kernel's lines is the one read
    table = parse_text("\n".join([line] * 3) + "\n")
    assert table.num_rows == 3
    row = _row(table, 2)
    assert row["line"] == 3
    for k, v in want.items():
        assert row[k] == v, k
    for k in INTS:
        if k not in want:
            assert row[k] == -1, k
    for k in STRS:
        if k not in want:
            assert row[k] is None, k
    assert row["cpu"] == want.get("cpu", 0)
    assert row["irq"] == want.get("irq", 0)      # every line here has flags


def test_address_fields_are_unsigned_64_bit():
    line = ("            init-1       [000] .....    17.008801: mm_compaction_isolate_freepages: "
            "range=({} ~ 0x4ea00) nr_scanned=13 nr_taken=0\n")
    for value in (0x7FFFFFFFFFFFFFFF, 0x8000000000000000, 0x800000000004EA00, 0xFFFFFFFFFFFFFFFE):
        table = parse_text(line.format(hex(value)))
        assert np.asarray(table.column("start_pfn")).view(np.uint64)[0] == value
    with pytest.raises(TraceError, match="do not fit"):
        parse_text(line.format("0x" + "1" * 17))
    # 4.x kernels print a page's pfn in decimal
    free = "            init-1       [000] .....    17.008801: mm_page_free: pfn={} order=0\n"
    assert parse_text(free.format(2**64 - 1)).column("pfn")[0].as_py() == -1
    with pytest.raises(TraceError, match="more than 64 bits"):
        parse_text(free.format(2**64))
    table = parse_text(free.format(2**64) + free.format(5), lenient=True)
    assert trace_info(table)["malformed"] == 1 and table.column("pfn").to_pylist() == [5]


def test_real_lines_together_phases_and_every_reader():
    text = "# tracer: nop\n#\n" + "\n".join(line for line, _ in REAL) + "\n"
    want = reference_parse(text)[0]
    for readers in (("layout", "line"), ("line",), ()):
        table = _with_readers(readers, parse_text, text)
        assert {k: table.column(k).to_pylist() for k in COLUMNS} == want
    table = parse_text(text)
    assert table.column("line").to_pylist() == list(range(3, 3 + len(REAL)))
    phases = table.column("phase").to_pylist()
    assert phases[:17] == ["work-start"] * 17                  # up to the next marker
    assert phases[17:] == ["hugepages-2m-done"] * (len(REAL) - 17)
    assert trace_info(table)["unknown_events"] == {} and trace_info(table)["malformed"] == 0


def _with_readers(readers, fn, *args, **kw):
    saved = trace._READERS
    trace._READERS = readers
    try:
        return fn(*args, **kw)
    finally:
        trace._READERS = saved


def test_events_before_the_first_marker_have_no_phase():
    table = parse_text(
        "            init-1       [000] .....     3.062607: mm_page_free: page=(____ptrval____) pfn=0x1 order=0\n"
        "            init-1       [000] .....     3.074386: tracing_mark_write: phase=work-start\n"
        "            init-1       [000] .....     3.074390: tracing_mark_write: not a phase\n"
        "            init-1       [000] .....     3.074391: mm_page_free: page=(____ptrval____) pfn=0x2 order=0\n")
    assert table.column("phase").to_pylist() == [None, "work-start", "work-start", "work-start"]
    assert table.column("marker").to_pylist() == [None, "phase=work-start", "not a phase", None]


def test_trace_cmd_report_lines():
    text = "\n".join([
        "cpus=2",
        "            init-1     [000]  3.438053: print:                tracing_mark_write: phase=work-start",
        "           work2-100   [000]  3.440122: mm_page_alloc:        page=0xffffea0000b21000 pfn=0x2c84 order=1 "
        "migratetype=0 gfp_flags=GFP_KERNEL_ACCOUNT|__GFP_ZERO",
        "           work2-100   [000]  3.443318: mm_page_free:         page=0xffffea000056e640 pfn=0x15db9 order=0",
        "       kcompactd0-28   [001] d..3.  4.132846: mm_compaction_kcompactd_sleep: nid=0",
        "            init-1     [001]  22.532640: mm_page_alloc:        page=(nil) pfn=0x0 order=9 migratetype=1 "
        "gfp_flags=GFP_HIGHUSER_MOVABLE",
        "CPU 1 is empty",
    ]) + "\n"
    table = parse_text(text)
    rows = table.to_pylist()
    assert [r["event"] for r in rows] == ["tracing_mark_write", "mm_page_alloc", "mm_page_free",
                                          "mm_compaction_kcompactd_sleep", "mm_page_alloc"]
    assert [r["line"] for r in rows] == [2, 3, 4, 5, 6]
    assert rows[0]["marker"] == "phase=work-start"
    assert [r["phase"] for r in rows] == ["work-start"] * 5
    assert (rows[1]["task"], rows[1]["pid"], rows[1]["cpu"], rows[1]["ts"]) == ("work2", 100, 0, 3.440122)
    assert (rows[1]["pfn"], rows[1]["order"], rows[1]["migratetype"]) == (0x2c84, 1, 0)
    assert rows[1]["gfp_flags"] == "GFP_KERNEL_ACCOUNT|__GFP_ZERO"
    assert (rows[2]["pfn"], rows[2]["order"], rows[2]["migratetype"]) == (0x15db9, 0, -1)
    assert (rows[3]["task"], rows[3]["cpu"], rows[3]["node"]) == ("kcompactd0", 1, 0)
    assert rows[4]["pfn"] == -1 and rows[4]["order"] == 9          # (nil): trace-cmd's NULL
    assert {k: table.column(k).to_pylist() for k in COLUMNS} == reference_parse(text)[0]


def test_older_kernel_layouts():
    # 4.x: pfn in decimal, hashed pointers, 4-character flags, mm_page_free_batched with cold=
    text = ("          <idle>-0     [001] ..s1   123.456789: mm_page_free: page=00000000a1b2c3d4 pfn=74565 order=0\n"
            "          <idle>-0     [001] ..s1   123.456790: mm_page_free_batched: page=00000000a1b2c3d4 pfn=74565 "
            "order=0 cold=0\n"
            "            bash-812   [000] ....   124.000001: mm_page_alloc: page=000000001234abcd pfn=1048575 order=3 "
            "migratetype=1 gfp_flags=GFP_HIGHUSER_MOVABLE\n")
    rows = parse_text(text).to_pylist()
    assert [(r["task"], r["pid"], r["cpu"], r["pfn"], r["order"]) for r in rows] == [
        ("<idle>", 0, 1, 74565, 0), ("<idle>", 0, 1, 74565, 0), ("bash", 812, 0, 1048575, 3)]
    assert rows[2]["migratetype"] == 1


def test_unknown_events_are_kept_and_counted():
    text = ("          <idle>-0     [000] d..2.   1.000000: sched_switch: prev_comm=swapper/0 prev_pid=0 ==> "
            "next_comm=cat next_pid=7\n"
            "            init-1       [000] .....     1.5: mm_page_free: page=(____ptrval____) pfn=0x10 order=0\n"
            "          <idle>-0     [000] d..2.   2.000000: sched_switch: prev_comm=cat\n")
    table = parse_text(text)
    assert table.column("event").to_pylist() == ["sched_switch", "mm_page_free", "sched_switch"]
    assert trace_info(table)["unknown_events"] == {"sched_switch": 2}
    row = _row(table, 0)
    assert all(row[k] == -1 for k in INTS) and all(row[k] is None for k in STRS if k != "phase")


def test_lost_events_are_a_row_and_counted():
    text = ("            init-1       [000] .....     1.0: mm_page_free: page=(____ptrval____) pfn=0x10 order=0\n"
            "CPU:0 [LOST 1234 EVENTS]\n"
            "            init-1       [000] .....     2.0: mm_page_free: page=(____ptrval____) pfn=0x11 order=0\n")
    table = parse_text(text)
    assert table.column("event").to_pylist() == ["mm_page_free", "lost_events", "mm_page_free"]
    assert _row(table, 1)["marker"] == "CPU:0 [LOST 1234 EVENTS]" and _row(table, 1)["ts"] is None
    assert trace_info(table)["lost_events"] == 1234


# -- malformed input --------------------------------------------------------------------------

GOOD = "            init-1       [000] .....     3.440122: mm_page_free: page=(____ptrval____) pfn=0x2c84 order=1"


@pytest.mark.parametrize("bad,message", [
    ("not a trace line", "not an ftrace event line"),
    ("            init-1       [000] .....     3.440122: mm_page_free: page=(____ptrval____) pfn=0xzz order=1",
     "mm_page_free: fields do not fit its layout"),
    ("            init-1       [000] .....     3.440122: mm_page_alloc: page=(____ptrval____) pfn=0x1 order=0 "
     "migratetype=300 gfp_flags=GFP_KERNEL", "migratetype=300 out of range"),
    ("            init-1       [000] .....     3.440122 mm_page_free: page=(____ptrval____) pfn=0x1 order=1",
     "not an ftrace event line"),
])
def test_a_malformed_line_stops_with_its_number_and_text(bad, message):
    text = "\n".join(["# tracer: nop", GOOD, GOOD, bad, GOOD]) + "\n"
    with pytest.raises(TraceError) as e:
        parse_text(text, source="t.txt")
    assert (e.value.path, e.value.line, e.value.text, e.value.message) == ("t.txt", 4, bad, message)
    assert str(e.value).startswith(f"t.txt:4: {message}: ")
    table = parse_text(text, lenient=True)
    assert table.column("line").to_pylist() == [2, 3, 5]
    info = trace_info(table)
    assert info["malformed"] == 1 and info["malformed_examples"] == [{"line": 4, "message": message}]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from([line for line, _ in REAL]), min_size=1, max_size=12), st.data())
def test_generated_malformed_lines_give_a_clear_error(good, data):
    """Whatever line is put among real ones: the line the reference rejects is the one reported,
    lenient skips exactly the rejected ones, and nothing else is ever raised."""
    bad = data.draw(st.one_of(st.text(max_size=80), any_line()).map(lambda x: x.replace("\n", " ")))
    at = data.draw(st.integers(0, len(good)))
    text = "\n".join(good[:at] + [bad] + good[at:]) + "\n"
    try:
        reference_parse(text)
        want = None
    except ReferenceError as e:
        want = (e.line, e.message)
    try:
        parse_text(text, source="t")
        got = None
    except TraceError as e:
        got = (e.line, e.message)
        assert e.line == at + 1 and str(e).startswith(f"t:{at + 1}: ")
    assert got == want
    table = parse_text(text, lenient=True)
    assert trace_info(table)["malformed"] == (want is not None)
    assert table.column("line").to_pylist() == reference_parse(text, lenient=True)[0]["line"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(texts, st.sampled_from([("layout", "line"), ("line",), ()]))
def test_generated_text_is_read_as_the_reference_reads_it(text, readers):
    want, malformed = reference_parse(text, lenient=True)
    table = _with_readers(readers, parse_text, text, lenient=True)
    assert {k: table.column(k).to_pylist() for k in COLUMNS} == want
    assert trace_info(table)["malformed"] == len(malformed)
    try:
        reference_parse(text)
        first = None
    except ReferenceError as e:
        first = (e.line, e.message)
    try:
        _with_readers(readers, parse_text, text)
        got = None
    except TraceError as e:
        got = (e.line, e.message)
    assert got == first


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(any_line(), min_size=8, max_size=8))
def test_one_layout_with_odd_lines_among_it(odd):
    # enough lines of one layout for the fixed-column reader to take them, odd ones in between
    text = "\n".join([odd[0]] * 12 + odd + [odd[0]] * 4) + "\n"
    want, _ = reference_parse(text, lenient=True)
    table = parse_text(text, lenient=True)
    assert {k: table.column(k).to_pylist() for k in COLUMNS} == want


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_crash(raw):
    try:
        table = parse_text(raw, lenient=True)
    except TraceError:
        raise AssertionError("lenient parsing raised")
    want, _ = reference_parse(raw.decode("utf-8", "replace") + ("\n" if raw and not raw.endswith(b"\n") else ""),
                              lenient=True)
    assert {k: table.column(k).to_pylist() for k in COLUMNS} == want
    try:
        parse_text(raw)
    except TraceError as e:
        assert e.line is not None and e.line >= 1


# -- files --------------------------------------------------------------------------------------

def _decoded(table):
    return {k: table.column(k).to_pylist() for k in table.column_names}


def _sample_text():
    return "# tracer: nop\n" + "\n".join(line for line, _ in REAL) + "\n"


def test_plain_gzip_and_many_chunks_give_the_same_table(tmp_path):
    text = _sample_text() * 40
    plain, gz, multi = tmp_path / "t.txt", tmp_path / "t.txt.gz", tmp_path / "m.gz"
    plain.write_text(text)
    gz.write_bytes(gzip.compress(text.encode()))
    half = len(text) // 2
    multi.write_bytes(gzip.compress(text[:half].encode()) + gzip.compress(text[half:].encode()))
    want = _decoded(parse_trace(plain))
    assert len(want["line"]) == 40 * len(REAL)
    assert _decoded(parse_trace(gz)) == want
    assert _decoded(parse_trace(multi)) == want
    assert _decoded(parse_trace(plain, chunk_bytes=300)) == want        # a chunk every few lines
    assert _decoded(parse_trace(gz, chunk_bytes=1000, workers=1)) == want
    assert trace_info(parse_trace(gz))["lines"] == text.count("\n")


def test_line_numbers_count_across_chunks(tmp_path):
    lines = [line for line, _ in REAL] * 30
    lines[700] = "garbage"
    path = tmp_path / "t.txt"
    path.write_text("\n".join(lines) + "\n")
    for chunk in (2000, 1 << 20):
        with pytest.raises(TraceError) as e:
            parse_trace(path, chunk_bytes=chunk)
        assert e.value.line == 701
        table = parse_trace(path, lenient=True, chunk_bytes=chunk)
        assert table.num_rows == len(lines) - 1 and 701 not in table.column("line").to_pylist()


def test_crlf_no_final_newline_empty_and_non_utf8(tmp_path):
    line = REAL[1][0]
    p = tmp_path / "crlf.txt"
    p.write_bytes((line + "\r\n" + line).encode())
    assert parse_trace(p).column("gfp_flags").to_pylist() == ["GFP_KERNEL_ACCOUNT|__GFP_ZERO"] * 2
    p.write_bytes(b"")
    assert parse_trace(p).num_rows == 0 and parse_trace(p).schema.names == list(COLUMNS)
    p.write_bytes(b"           w\xffrk-9     [000] .....     1.000000: mm_page_free: page=(____ptrval____) pfn=0x1 "
                  b"order=0\n")
    assert parse_trace(p).column("task").to_pylist() == ["w\ufffdrk"]


@pytest.mark.parametrize("make,message", [
    (lambda p: None, "cannot read: No such file or directory"),
    (lambda p: p.mkdir(), "is a folder, not a trace file"),
    (lambda p: p.write_bytes(gzip.compress(GOOD.encode() * 50)[:-30]), "truncated gzip file"),
    (lambda p: p.write_bytes(b"\x1f\x8b\x08garbage"), "not a valid gzip file"),
])
def test_files_that_cannot_be_read(tmp_path, make, message):
    p = tmp_path / "trace"
    make(p)
    with pytest.raises(TraceError) as e:
        parse_trace(p)
    assert e.value.line is None and e.value.message.startswith(message)
    assert str(e.value).startswith(f"{p}: {message}")


def test_threads_give_the_same_table():
    text = (_sample_text() * 200).encode()
    chunks = [text[i:i + 60000] for i in range(0, len(text), 60000)]
    # re-cut at newlines as the reader does
    pieces, left = [], b""
    for c in chunks:
        c = left + c
        cut = c.rfind(b"\n") + 1
        pieces.append(c[:cut])
        left = c[cut:]
    one = trace._parse_chunks(pieces, "t", False, workers=1)
    four = trace._parse_chunks(pieces, "t", False, workers=4)
    assert _decoded(one) == _decoded(four)


# -- summary and the CLI ------------------------------------------------------------------------

def test_summary():
    s = summarize(parse_text(_sample_text()))
    assert s["events"] == len(REAL)
    assert s["events_per_type"]["mm_page_alloc"] == 3
    assert s["failed_allocations"] == 1
    assert s["orders"]["mm_page_alloc"] == {0: 1, 1: 1}                # the failed order-9 one is left out
    assert s["orders"]["mm_page_alloc_zone_locked"] == {1: 1, 5: 1}
    assert s["migratetypes"]["mm_page_pcpu_drain"] == {"Unmovable": 1, "Movable": 1, "Reclaimable": 1}
    assert s["percpu_refill"] == {0: 1, 1: 1}
    assert [p["phase"] for p in s["phases"]] == ["work-start", "hugepages-2m-done"]
    assert [p["events"] for p in s["phases"]] == [17, len(REAL) - 17]
    assert s["phases"][1]["first_ts"] == 22.552888
    assert s["unknown_events"] == {} and s["malformed"] == 0
    assert "hugepages-2m-done" in trace.format_summary(s)


def test_cli_parse_and_summary(tmp_path, capsys):
    src = tmp_path / "t.txt.gz"
    src.write_bytes(gzip.compress(_sample_text().encode()))
    out = tmp_path / "events.parquet"
    assert main(["trace", "parse", str(src), "-o", str(out)]) == 0
    assert f"{len(REAL)} events" in capsys.readouterr().out
    assert _decoded(pq.read_table(out)) == _decoded(parse_trace(src))
    assert main(["trace", "summary", str(out), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["events"] == len(REAL) and s["phases"][0]["phase"] == "work-start"
    assert main(["trace", "summary", str(src)]) == 0
    assert "events per type:" in capsys.readouterr().out


def test_cli_errors_exit_2_with_one_line(tmp_path, capsys):
    src = tmp_path / "t.txt"
    src.write_text(GOOD + "\nnot a trace line\n" + GOOD + "\n")
    out = tmp_path / "e.parquet"
    assert main(["trace", "parse", str(src), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"farm trace: error: {src}:2: not an ftrace event line: 'not a trace line'\n"
    assert not out.exists()
    assert main(["trace", "summary", str(src)]) == 2
    assert capsys.readouterr().err.startswith(f"farm trace: error: {src}:2: ")
    assert main(["trace", "parse", str(src), "-o", str(out), "--lenient"]) == 0
    assert "1 malformed lines skipped" in capsys.readouterr().out
    assert pq.read_table(out).num_rows == 2
    assert main(["trace", "summary", str(src), "--lenient", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["malformed"] == 1
    assert main(["trace", "summary", str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == f"farm trace: error: {tmp_path / 'missing'}: cannot read: No such file or directory\n"


def test_console_script_reports_without_a_traceback(tmp_path):
    src = tmp_path / "t.txt"
    src.write_text("rubbish\n")
    farm = Path(sys.executable).with_name("farm")
    cmd = [str(farm)] if farm.exists() else [sys.executable, "-m", "farm.cli"]
    r = subprocess.run(cmd + ["trace", "parse", str(src), "-o", str(tmp_path / "x.parquet")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr == f"farm trace: error: {src}:1: not an ftrace event line: 'rubbish'\n"


def test_bench_trace_runs(tmp_path, capsys):
    src = tmp_path / "t.txt"
    src.write_text(_sample_text() * 10)
    assert main(["bench", "--trace", str(src), "--quick", "-o", str(tmp_path / "b.json")]) == 0
    rows = json.loads((tmp_path / "b.json").read_text())["results"]
    assert [r["events"] for r in rows] == [10 * len(REAL)] * 2 and rows[1]["threads"] == 1
    assert "events_per_s" in capsys.readouterr().out


# -- the real traces ----------------------------------------------------------------------------

@needs_data
def test_real_trace_slices_every_reader():
    """Every reader on the opening and the compaction/hugepage end of the 6.12 trace, against the
    reference."""
    with gzip.open(FRAG612, "rt") as f:
        lines = f.read().split("\n")
    text = "\n".join(lines[:4000] + lines[-24000:])
    want, _ = reference_parse(text)
    for readers in (("layout", "line"), ("line",)):
        table = _with_readers(readers, parse_text, text)
        assert {k: table.column(k).to_pylist() for k in COLUMNS} == want


@needs_data
@pytest.mark.slow
def test_whole_6_1_fragmenter_trace():
    """Counts taken independently: `zcat trace.txt.gz | grep -c ': EVENT: '` per event, `wc -l`,
    `grep -n tracing_mark_write` for the markers' lines."""
    table = parse_trace(FRAG61)
    info = trace_info(table)
    assert info["lines"] == 1525643 and info["events"] == 1525631        # 12 header lines
    assert info["malformed"] == 0 and info["unknown_events"] == {} and info["lost_events"] == 0
    counts = summarize(table)["events_per_type"]
    assert counts == {
        "mm_page_alloc": 308614, "mm_page_free": 306576, "mm_page_pcpu_drain": 304088,
        "mm_page_alloc_zone_locked": 303576, "mm_page_free_batched": 297807,
        "mm_compaction_finished": 1503, "mm_compaction_isolate_migratepages": 1498,
        "mm_compaction_isolate_freepages": 830, "mm_compaction_migratepages": 577,
        "mm_compaction_suitable": 486, "mm_compaction_kcompactd_sleep": 37,
        "mm_compaction_try_to_compact_pages": 19, "tracing_mark_write": 6, "mm_compaction_begin": 5,
        "mm_compaction_end": 5, "mm_page_alloc_extfrag": 4}
    markers = _rows_of(table, "tracing_mark_write")
    assert markers.column("line").to_pylist() == [13, 1489881, 1503988, 1513664, 1525402, 1525643]
    assert markers.column("marker").to_pylist() == [
        "phase=work-start", "phase=work-end", "phase=mid", "phase=compacted", "phase=hugepages-2m-done got=1052",
        "phase=hugepages-1g-done got=0"]
    phases = {p["phase"]: p["events"] for p in summarize(table)["phases"]}
    assert phases == {"work-start": 1489881 - 13, "work-end": 1503988 - 1489881, "mid": 1513664 - 1503988,
                      "compacted": 1525402 - 1513664, "hugepages-2m-done": 1525643 - 1525402,
                      "hugepages-1g-done": 1}
    # the 1052 order-9 pages the hugetlb pool got (hugepages_2m) are the successful order-9
    # allocations, after one that failed
    alloc = _rows_of(table, "mm_page_alloc")
    order9 = alloc.filter(pc.equal(alloc.column("order"), 9)).column("pfn").to_pylist()
    assert sum(p >= 0 for p in order9) == 1052 == int((FRAG61.parent / "hugepages_2m").read_text())
    assert sum(p < 0 for p in order9) == 1
