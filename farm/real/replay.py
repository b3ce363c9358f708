"""Replay a real kernel trace into the model (validate.py judges the model against what the kernel did).

- `initial_state()`: the zone as the capture's `before` snapshot shows it. From kpageflags when
  the capture has it (every page KPF_BUDDY is free; allocated pages are movable when on the LRU),
  else synthesised from buddyinfo and pagetypeinfo. Each pageblock's type is the kernel's own
  where the capture recorded it (pageblocktypes.before), else inferred from the trace.
- `replay()`: the trace's events up to a phase marker or timestamp, pinned (at the kernel's
  pfns) or by the model's policy, then probes on the state reached.

The replay models every populated zone of the node the trace's page events fall in (DMA and DMA32
on a guest of up to 4 GiB, DMA, DMA32 and Normal above), each with its own free lists, watermarks,
lowmem_reserve and pcp lists as zoneinfo gives them, so that policy replay walks the zonelist as
the kernel does (ALLOC_NOFRAGMENT included). The main zone, whose figures the single-zone fields of
the result give, is the one most events fall in. The model's node spans pfns [0, last zone end),
everything below the first zone a hole, so every pfn and every buddy alignment is the kernel's.
Without kpageflags only the main zone is replayed (its state is synthesised from its snapshots).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kernels import constants as C
from kernels import page_alloc as P
from kernels import replay as R
from kernels.check import ERRORS, check_zone
from kernels.page_alloc import reset_cached_positions
from kernels.vmstat import pagetypeinfo_free
from kernels.zone import make_node, pcp_high_bounds, policy_behaviour, stat_threshold

from .captures import KPF_BUDDY, KPF_COMPOUND_HEAD, KPF_COMPOUND_TAIL, KPF_LRU, KPF_NOPAGE, \
    KPF_RESERVED, read_capture
from .trace import read_table, trace_info

MODES = ("pinned", "policy")
# kernel version -> the model policy whose rules it follows (MODEL.md, policies)
_POLICY_BY_VERSION = ((5, 19, "v5.4"), (6, 10, "v6.1"), (6, 15, "v6.10"), (6, 16, "v6.15"), (6, 17, "v6.16"))
_KIND = {"mm_page_alloc": R.EV_ALLOC, "mm_page_free": R.EV_FREE,
         "mm_page_alloc_zone_locked": R.EV_ZONE_LOCKED, "mm_page_pcpu_drain": R.EV_DRAIN,
         "mm_page_alloc_extfrag": R.EV_EXTFRAG}


class ReplayError(ValueError):
    """Input a replay cannot use (names the file or option)."""


def policy_for_kernel(version: tuple[int, int] | None) -> str:
    """The policy of the model that follows a kernel release's allocator."""
    if version is None:
        return "v6.17"
    for major, minor, policy in _POLICY_BY_VERSION:
        if version < (major, minor):
            return policy
    return "v6.17"


#: The geometry of the kernels the shared captures come from (x86-64 defaults), for a lone trace.
DEFAULT_MAX_ORDER = 10
DEFAULT_PAGEBLOCK_ORDER = 9


def capture_geometry(capture: dict) -> dict[str, int | None]:
    """The geometry of the kernel a capture was taken on, from its snapshots: 'max_order', the
    largest order, from the columns of /proc/buddyinfo (one per order, 0 to MAX_PAGE_ORDER; before
    6.4 the kernel named that count MAX_ORDER, from 6.4 MAX_ORDER and then MAX_PAGE_ORDER is the
    largest order itself, and the model's max_order is the largest order either way), and
    'pageblock_order' from /proc/pagetypeinfo ("Page block order"). None for what the capture has
    no snapshot of. Raises ReplayError when its snapshots disagree."""
    columns = {len(counts) for snap in (capture.get("buddyinfo") or {}).values() for counts in snap.values()}
    for snap in (capture.get("pagetypeinfo") or {}).values():
        columns |= {len(counts) for zone in snap["free"].values() for counts in zone.values()}
    orders = {snap["pageblock_order"] for snap in (capture.get("pagetypeinfo") or {}).values()
              if snap.get("pageblock_order") is not None}
    where = capture.get("path", "the capture")
    if len(columns) > 1:
        raise ReplayError(f"{where}: the buddyinfo and pagetypeinfo snapshots have {sorted(columns)} "
                          "orders: they come from kernels of different geometry")
    if len(orders) > 1:
        raise ReplayError(f"{where}: the pagetypeinfo snapshots give pageblock orders {sorted(orders)}")
    max_order = columns.pop() - 1 if columns else None
    pageblock_order = orders.pop() if orders else None
    if max_order is not None and max_order < 1:
        raise ReplayError(f"{where}: buddyinfo has one order column only")
    return {"max_order": max_order, "pageblock_order": pageblock_order}


def resolve_geometry(capture: dict, max_order: int | None, pageblock_order: int | None) -> dict:
    """max_order and pageblock_order of a replay: the options where given, else the capture's own
    (capture_geometry()), else the defaults (a lone trace); 'from' says where each came from."""
    found = capture_geometry(capture)
    out: dict = {"from": {}}
    for key, given, default in (("max_order", max_order, DEFAULT_MAX_ORDER),
                                ("pageblock_order", pageblock_order, DEFAULT_PAGEBLOCK_ORDER)):
        if given is not None:
            out[key], out["from"][key] = given, "option"
        elif found[key] is not None:
            out[key], out["from"][key] = found[key], "capture"
        else:
            out[key], out["from"][key] = default, "default"
    out["capture"] = found
    return out


# -- events -------------------------------------------------------------------------------------


@dataclass
class Events:
    kind: np.ndarray
    pfn: np.ndarray
    order: np.ndarray
    mt: np.ndarray
    aux0: np.ndarray
    aux1: np.ndarray
    fallback_mt: np.ndarray
    ts: np.ndarray
    markers: list[tuple[int, str]]     # (index in these arrays of the next event, marker text)
    source: str = ""
    vmstat_runs: np.ndarray = field(default_factory=lambda: np.zeros(0))  # decay_drain_runs()
    vmstat_runs_cpu: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    vmstat_updates: np.ndarray | None = None   # vmstat_update_times(): None when not traced
    vmstat_updates_cpu: np.ndarray | None = None
    kcompactd_timer: np.ndarray | None = None  # kcompactd_timer_times(): None when not traced
    cpu: np.ndarray | None = None              # the CPU of each event
    # EVF_* bits of each event: inside a compaction of its task (compaction_windows()), an
    # allocation with __GFP_RETRY_MAYFAIL (a hugetlb pool page's request)
    flags: np.ndarray | None = None
    first_seen: tuple | None = None            # first_event_index()'s cache
    parse: dict = field(default_factory=dict)   # what the parse counted (trace.trace_info())

    def __len__(self) -> int:
        return len(self.kind)


def _col(table, name, dtype, fill=-1):
    a = table.column(name)
    return np.asarray(pc.fill_null(a, fill).to_numpy(zero_copy_only=False), dtype=dtype)


# gfp names as ftrace prints them (show_gfp_flags(): composite masks first) that include
# __GFP_DIRECT_RECLAIM
_DIRECT_RECLAIM = {"GFP_KERNEL", "GFP_KERNEL_ACCOUNT", "GFP_NOFS", "GFP_NOIO", "GFP_USER",
                   "GFP_HIGHUSER", "GFP_HIGHUSER_MOVABLE", "GFP_TRANSHUGE", "GFP_TRANSHUGE_LIGHT",
                   "__GFP_RECLAIM", "__GFP_DIRECT_RECLAIM"}


def gfp_atomic(gfp_flags: str | None) -> bool:
    """Is a request of these ftrace gfp flags GFP_ATOMIC as gfp_to_alloc_flags() sees it:
    __GFP_HIGH (GFP_ATOMIC has it), no __GFP_DIRECT_RECLAIM, no __GFP_NOMEMALLOC?"""
    names = set((gfp_flags or "").split("|"))
    return (("GFP_ATOMIC" in names or "__GFP_HIGH" in names) and not names & _DIRECT_RECLAIM
            and "__GFP_NOMEMALLOC" not in names)


def pcp_locked_frees(names: np.ndarray, cpu: np.ndarray, pid: np.ndarray, irq: np.ndarray) -> np.ndarray:
    """The mm_page_free rows whose free found this CPU's pcp lock held by the code it interrupted,
    so free_unref_page()'s pcp_spin_trylock() failed and free_one_page() put the page straight on
    the buddy lists (6.2+, where the pcp lock leaves interrupts on). The trace shows the holder:
    free_unref_folios() (free_unref_page_list() before 6.10) holds the lock while it emits
    mm_page_free_batched for each page of its batch (and mm_page_pcpu_drain when that batch drains
    the list). A free in an interrupt (irq = 1) of the same task on the same CPU whose last
    process-context event was one of those is such a free; anything else in process context ends
    the batch. A trace without irq flags (irq = -1) shows none. The lock may have been dropped
    without a trace event before the interrupt came: load_events() keeps only the frees whose page
    the trace does not show on a pcp list afterwards."""
    import pandas as pd
    proc = irq != 1
    state = np.where(names == "mm_page_free_batched", 1.0, 0.0)
    state[(names == "mm_page_pcpu_drain") | ~proc] = np.nan
    frame = pd.DataFrame({"cpu": cpu, "state": state, "pid": np.where(proc, pid, -1).astype(float)})
    frame.loc[~proc, "pid"] = np.nan
    filled = frame.groupby("cpu")[["state", "pid"]].ffill()
    return ((irq == 1) & (names == "mm_page_free") & (filled["state"].to_numpy() == 1)
            & (filled["pid"].to_numpy() == pid))


def interrupt_frees_in_order(names: np.ndarray, cpu: np.ndarray, pid: np.ndarray, irq: np.ndarray,
                             pfn: np.ndarray, ts: np.ndarray):
    """The rows in the order of their list operations where the trace's order is the order of
    the tracepoints: __alloc_pages() emits mm_page_alloc after get_page_from_freelist() has taken
    the page (and prep_new_page() has zeroed it), so frees that come in between (an interrupt, or
    another task that preempted the allocating one) show before the allocation that had already
    taken its page. A run of such frees on a CPU (in an interrupt, or of another task), directly
    followed on that CPU by a process-context mm_page_alloc that took none of the freed pages, is
    put after that allocation (with its timestamp): had the frees come first, the allocation
    would have taken the last page freed onto its list, or the two touch different lists and
    their order does not matter. Returns (row order, timestamps), or (None, ts) when nothing
    moves."""
    n = len(names)
    key = np.arange(n, dtype=np.float64)
    ts = ts.copy()
    moved = False
    is_free = names == "mm_page_free"
    is_alloc = (names == "mm_page_alloc") & (irq != 1)
    for c in np.unique(cpu):
        r = np.flatnonzero(cpu == c)
        f = is_free[r]
        ends = np.flatnonzero(f[:-1] & is_alloc[r[1:]])
        for j in ends:
            a = r[j + 1]
            k = j + 1
            while k > 0 and f[k - 1] and (irq[r[k - 1]] == 1 or pid[r[k - 1]] != pid[a]):
                k -= 1
            run = r[k:j + 1]
            if not len(run) or (pfn[run] == pfn[a]).any():
                continue
            key[run] = a + np.arange(1, len(run) + 1) / (len(run) + 1)
            ts[run] = ts[a]
            moved = True
    if not moved:
        return None, ts
    return np.argsort(key, kind="stable"), ts


def zone_starts(capture: dict | None) -> np.ndarray:
    """The start pfns of the zones zoneinfo.before lists (every node), ascending; empty without."""
    zi = ((capture or {}).get("zoneinfo") or {}).get("before") or {}
    return np.array(sorted({int(z["start_pfn"]) for z in zi.values()
                            if z.get("start_pfn") is not None and z.get("spanned")}), dtype=np.int64)


#: vm.compaction_proactiveness's default (sysctl_compaction_proactiveness, mm/compaction.c);
#: `farm capture` leaves it
KERNEL_COMPACTION_PROACTIVENESS = 20
EVF_COMPACTING = 1
EVF_RETRY_MAYFAIL = 2


def compaction_windows(table: pa.Table, names: np.ndarray) -> np.ndarray:
    """Which rows of the trace lie inside a compaction (mm_compaction_begin .. mm_compaction_end)
    of their own task: the frees of the pages it migrates, as opposed to what the task or others
    do between compactions."""
    inside = np.zeros(len(names), dtype=bool)
    begin, end = names == "mm_compaction_begin", names == "mm_compaction_end"
    if not begin.any():
        return inside
    pid = _col(table, "pid", np.int64, 0)
    for p in np.unique(pid[begin]):
        rows = np.flatnonzero(pid == p)
        depth = np.cumsum(begin[rows].astype(np.int64)) - np.cumsum(end[rows].astype(np.int64))
        inside[rows] = (depth > 0) | end[rows]
    return inside


def load_events(trace, source: str = "", lenient: bool = False, zones: np.ndarray | None = None) -> Events:
    """The replayable events of a trace file, Parquet event table or pyarrow Table, in order.
    mm_page_free_batched is left out: the kernel emits mm_page_free for the same page too.
    With `lenient`, lines the parser cannot read are skipped and counted (`Events.parse`)."""
    table = trace if isinstance(trace, pa.Table) else read_table(trace, lenient)
    source = source or (str(trace) if not isinstance(trace, pa.Table) else "<table>")
    names = np.asarray(pc.cast(table.column("event"), pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    kind = np.full(len(names), -1, dtype=np.int8)
    for name, k in _KIND.items():
        kind[names == name] = k
    pfn = _col(table, "pfn", np.int64)
    order = _col(table, "order", np.int64)
    mt = _col(table, "migratetype", np.int64)
    aux0 = np.zeros(len(kind), dtype=np.int64)
    aux1 = np.zeros(len(kind), dtype=np.int64)
    fallback_mt = np.full(len(kind), -1, dtype=np.int64)
    zl = kind == R.EV_ZONE_LOCKED
    aux0[zl] = _col(table, "percpu_refill", np.int64)[zl]
    ef = kind == R.EV_EXTFRAG
    if ef.any():
        order[ef] = _col(table, "alloc_order", np.int64)[ef]
        mt[ef] = _col(table, "alloc_migratetype", np.int64)[ef]
        aux0[ef] = _col(table, "change_ownership", np.int64)[ef]
        aux1[ef] = _col(table, "fallback_order", np.int64)[ef]
        fallback_mt[ef] = _col(table, "fallback_migratetype", np.int64)[ef]
    # allocations: aux0 = GFP_ATOMIC for a GFP_ATOMIC request (policy replay's `extra`); flags
    # EVF_RETRY_MAYFAIL for a __GFP_RETRY_MAYFAIL one
    flags = np.where(compaction_windows(table, names), EVF_COMPACTING, 0).astype(np.int8)
    al = np.flatnonzero(kind == R.EV_ALLOC)
    if len(al) and "gfp_flags" in table.column_names:
        gfp = pc.cast(table.column("gfp_flags"), pa.string()).take(pa.array(al))
        distinct = [v for v in pc.unique(gfp).to_pylist() if v]

        def having(values):
            return np.asarray(pc.fill_null(pc.is_in(gfp, value_set=pa.array(values, pa.string())), False)
                              .to_numpy(zero_copy_only=False), dtype=bool)
        aux0[al[having([v for v in distinct if gfp_atomic(v)])]] = C.GFP_ATOMIC
        flags[al[having([v for v in distinct if "__GFP_RETRY_MAYFAIL" in v])]] |= EVF_RETRY_MAYFAIL
    if "irq" in table.column_names:
        locked = pcp_locked_frees(names, _col(table, "cpu", np.int64, 0), _col(table, "pid", np.int64),
                                  _col(table, "irq", np.int64))
        aux0[locked & (kind == R.EV_FREE)] = 1
    ts = _col(table, "ts", np.float64, 0.0)
    cpu = _col(table, "cpu", np.int64, 0)
    if "irq" in table.column_names and len(names):
        rows, ts = interrupt_frees_in_order(names, cpu, _col(table, "pid", np.int64),
                                            _col(table, "irq", np.int64), pfn, ts)
        if rows is not None:
            names, kind, pfn, order, mt, aux0, aux1, fallback_mt, flags, cpu = (
                a[rows] for a in (names, kind, pfn, order, mt, aux0, aux1, fallback_mt, flags, cpu))
            table = table.take(pa.array(rows))
    marker_rows = np.nonzero(names == "tracing_mark_write")[0]
    markers_text = table.column("marker").to_pylist() if len(marker_rows) else []
    keep = (kind >= 0) & (pfn >= 0) & (order >= 0)
    # a marker's position: how many kept events precede it
    before = np.cumsum(keep) - keep
    markers = [(int(before[i]), str(markers_text[i] or "").strip()) for i in marker_rows]
    runs, runs_cpu = decay_drain_runs(table, names, ts)
    updates, updates_cpu = vmstat_update_times(table, names, ts)
    timer = kcompactd_timer_times(table, names, ts)
    kind, pfn, aux0 = kind[keep], pfn[keep], aux0[keep]
    _unless_on_a_pcp_list(kind, pfn, aux0)
    events = Events(kind, pfn, order[keep], mt[keep], aux0, aux1[keep],
                    fallback_mt[keep], ts[keep], markers, source, parse=trace_info(table),
                    vmstat_runs=runs, vmstat_runs_cpu=runs_cpu, vmstat_updates=updates, kcompactd_timer=timer,
                    vmstat_updates_cpu=updates_cpu, cpu=cpu[keep], flags=flags[keep])
    return with_untraced_allocs(events, zones)


def with_untraced_allocs(events: Events, zones: np.ndarray | None = None) -> Events:
    """The events with the allocations the trace does not show put back (R.untraced_pcp_allocs():
    pages alloc_pages_bulk() took off a pcp list), each an order-0 mm_page_alloc of its list's
    type on its list's CPU, just before the traced allocation that reveals it. Counted in
    `parse["untraced_pcp_allocs"]`. `zones`: the zones' start pfns (zone_starts()), each zone
    having its own pcp lists; without, one zone."""
    n_ev = len(events)
    if n_ev == 0:
        return events
    nr_pages = int(events.pfn.max()) + 1
    at = np.empty(n_ev, np.int64)
    pages = np.empty(n_ev, np.int64)
    cpu = events.cpu if events.cpu is not None else np.zeros(n_ev, np.int64)
    nz = max(len(zones), 1) if zones is not None else 1
    zone = (np.clip(np.searchsorted(zones, events.pfn, side="right") - 1, 0, nz - 1)
            if zones is not None and len(zones) else np.zeros(n_ev, np.int64))
    n = R.untraced_pcp_allocs(events.kind, events.pfn, events.order, events.mt, events.aux0, cpu,
                              zone.astype(np.int64), np.full(nr_pages, -1, np.int64),
                              np.full((4, n_ev), -1, np.int64),
                              np.full((2, nz * C.MAX_CPUS * 64 * 8), -1, np.int64), at, pages)
    events.parse["untraced_pcp_allocs"] = int(n)
    if n == 0:
        return events
    at, pages = at[:n], pages[:n]
    # the synthetic event j goes before event at[j]: new positions
    shift = np.searchsorted(at, np.arange(n_ev), side="right")     # synthetic events before i
    new_pos = np.arange(n_ev) + shift
    syn_pos = at + np.arange(n)
    total = n_ev + n

    def merged(a, fill):
        out = np.empty(total, a.dtype)
        out[new_pos] = a
        out[syn_pos] = fill
        return out
    # the revealing event's CPU, order 0, type: the list's own (the event's)
    kind = merged(events.kind, R.EV_ALLOC)
    pfn = merged(events.pfn, 0)
    pfn[syn_pos] = pages
    order = merged(events.order, 0)
    mt = merged(events.mt, 0)
    mt[syn_pos] = events.mt[at]
    aux0 = merged(events.aux0, 0)
    aux1 = merged(events.aux1, 0)
    fallback_mt = merged(events.fallback_mt, -1)
    ts = merged(events.ts, 0.0)
    ts[syn_pos] = events.ts[at]
    cpu_new = merged(cpu, 0)
    cpu_new[syn_pos] = cpu[at]
    flags = merged(events.flags, 0) if events.flags is not None else None
    # a marker before event i now comes before new position of i (or the end)
    markers = [(int(new_pos[i]) if i < n_ev else total, text) for i, text in events.markers]
    return replace(events, kind=kind, pfn=pfn, order=order, mt=mt, aux0=aux0, aux1=aux1,
                   fallback_mt=fallback_mt, ts=ts, markers=markers, cpu=cpu_new, flags=flags,
                   first_seen=None)


def vmstat_update_times(table: pa.Table, names: np.ndarray, ts: np.ndarray):
    """When each CPU's vmstat update ran, exactly: workqueue_execute_start of vmstat_update
    (`farm capture` traces it; the work is bound to its CPU). (times, cpus), or (None, None) when
    the trace has no workqueue_execute_start at all."""
    start = names == "workqueue_execute_start"
    if "function" not in table.column_names or not start.any():
        return None, None
    function = np.asarray(pc.cast(table.column("function"), pa.string()).to_numpy(zero_copy_only=False),
                          dtype=object)
    pick = start & (function == "vmstat_update")
    return ts[pick].astype(np.float64), _col(table, "cpu", np.int64, 0)[pick]


def kcompactd_timer_times(table: pa.Table, names: np.ndarray, ts: np.ndarray) -> np.ndarray | None:
    """When kcompactd woke on its timer (HPAGE_FRAG_CHECK_INTERVAL_MSEC) and looked at the
    node's fragmentation score (should_proactive_compact_node()): kcompactd() emits
    mm_compaction_kcompactd_sleep before each wait, so the first event of its task after one is
    when that wait ended: the next sleep (nothing to do) or the proactive compaction's
    mm_compaction_begin. A wait that wakeup_kcompactd() ended starts kcompactd_do_work(), whose
    first event is mm_compaction_suitable (compaction_suit_allocation_order()): not a timer.
    None when the trace has no mm_compaction_kcompactd_sleep."""
    sleep = names == "mm_compaction_kcompactd_sleep"
    if not sleep.any() or "pid" not in table.column_names:
        return None
    pid = _col(table, "pid", np.int64, 0)
    out = []
    for p in np.unique(pid[sleep]):
        rows = np.flatnonzero(pid == p)
        after = rows[1:][sleep[rows[:-1]]]            # the row after each of its sleeps
        out.append(ts[after[names[after] != "mm_compaction_suitable"]])
    return np.sort(np.concatenate(out)).astype(np.float64)


def decay_drain_runs(table: pa.Table, names: np.ndarray, ts: np.ndarray):
    """When each CPU's vmstat update ran, as far as the trace shows it: the first event of each
    run of mm_page_pcpu_drain events by a kworker bound to that CPU (`kworker/N:...` on CPU N:
    vmstat_update() is work on mm_percpu_wq, bound to its CPU; decay_pcp_high() drains from
    there). (times, cpus)."""
    empty = np.zeros(0), np.zeros(0, np.int64)
    if "task" not in table.column_names or not len(names):
        return empty
    task = np.asarray(pc.cast(table.column("task"), pa.string()).to_numpy(zero_copy_only=False),
                      dtype=object)
    cpu = _col(table, "cpu", np.int64, 0)
    idx = np.flatnonzero(names == "mm_page_pcpu_drain")
    bound = np.array([isinstance(task[i], str) and task[i].startswith(f"kworker/{cpu[i]}:")
                      for i in idx], dtype=bool)
    idx = idx[bound] if len(idx) else idx
    if not len(idx):
        return empty
    pid = _col(table, "pid", np.int64)
    prev = np.concatenate([[-2], idx[:-1]])
    start = (prev != idx - 1) | (pid[idx] != pid[np.maximum(idx - 1, 0)])
    return ts[idx[start]].astype(np.float64), cpu[idx[start]]


def _unless_on_a_pcp_list(kind: np.ndarray, pfn: np.ndarray, aux0: np.ndarray) -> None:
    """Clear aux0 (straight to the buddy) on the frees whose page's next event shows it on a pcp
    list: a pcp drain of it, or an allocation of it without a zone_locked event before it."""
    cand = np.flatnonzero((kind == R.EV_FREE) & (aux0 == 1))
    if len(cand) == 0:
        return
    order = np.lexsort((np.arange(len(pfn)), pfn))        # by pfn, then in trace order
    pos = np.empty(len(pfn), np.int64)
    pos[order] = np.arange(len(pfn))
    nxt = pos[cand] + 1
    has = nxt < len(order)
    later = order[np.minimum(nxt, len(order) - 1)]
    same = has & (pfn[later] == pfn[cand])
    on_pcp = same & ((kind[later] == R.EV_DRAIN) | (kind[later] == R.EV_ALLOC))
    aux0[cand[on_pcp]] = 0


def marker_index(events: Events, marker: str) -> int | None:
    """The position of the first marker `phase=NAME` (`marker`: as written in the trace, or NAME),
    or None when the trace has none."""
    key = marker if "=" in marker else f"phase={marker}"
    return next((i for i, text in events.markers if text == key or text.startswith(key + " ")), None)


def stop_index(events: Events, until: str | None = None, until_ts: float | None = None) -> int:
    """Where a replay stops: at the marker `phase=NAME` (`until`, as written in the trace), at
    the first event after `until_ts` seconds, or at the end."""
    stop = len(events)
    if until:
        found = marker_index(events, until)
        if found is None:
            known = ", ".join(sorted({t.split()[0] for _, t in events.markers})) or "none"
            raise ReplayError(f"--until {until}: no such marker in {events.source} (markers: {known})")
        stop = found
    if until_ts is not None:
        stop = min(stop, int(np.searchsorted(events.ts, until_ts, side="right")))
    return stop


# -- the zone and its initial state --------------------------------------------------------------


@dataclass
class Geometry:
    zone: str
    zone_start: int
    zone_end: int
    wmark: tuple[int, int, int] | None = None
    managed: int | None = None
    pcp_batch: int | None = None
    pcp_high: int | None = None
    pcp_count: int | None = None
    nr_cpus: int = 1
    pcp_highs: tuple = ()          # each CPU's pcp high, as zoneinfo gives them
    protection: tuple = ()         # lowmem_reserve[] as zoneinfo gives it
    pcp_counts: tuple = ()         # each CPU's pcp count, as zoneinfo gives them
    # every zone replayed, lowest first (each a Geometry of its own); the fields above are the
    # main zone's: the one most of the trace's page events fall in
    zones: tuple = ()

    @property
    def span_start(self) -> int:
        return self.zones[0].zone_start if self.zones else self.zone_start

    @property
    def span_end(self) -> int:
        return self.zones[-1].zone_end if self.zones else self.zone_end

    def replayed(self) -> tuple:
        """The zones the replay models, lowest first."""
        return self.zones or (self,)

    def main_only(self) -> "Geometry":
        return replace(self, zones=())


def _zone_geo(key: str, start: int, end: int, z: dict) -> Geometry:
    pagesets = z.get("pagesets") or []
    cpu = pagesets[0] if pagesets else {}
    return Geometry(key.split(":")[-1], start, end, (z.get("min"), z.get("low"), z.get("high")),
                    z.get("managed"), cpu.get("batch"), cpu.get("high"), cpu.get("count"),
                    max(len(pagesets), 1), tuple(ps.get("high") for ps in pagesets),
                    tuple(z.get("protection") or ()), tuple(ps.get("count") for ps in pagesets))


def zone_geometry(capture: dict, events: Events | None) -> Geometry:
    """The zones of the node the trace's page events fall in, from zoneinfo.before (or the
    events alone): the main zone (most events) and, in `zones`, every populated zone of its
    node with a name the model knows (DMA, DMA32, Normal, Movable), all of which the replay
    models, as the kernel's zonelist walks them."""
    zi = (capture.get("zoneinfo") or {}).get("before")
    if zi:
        spans = []
        for key, z in zi.items():
            start, spanned = z.get("start_pfn"), z.get("spanned")
            if start is None or not spanned:
                continue
            spans.append((key, int(start), int(start) + int(spanned), z))
        if events is not None and len(events):
            inside = [(np.count_nonzero((events.pfn >= s) & (events.pfn < e)), key, s, e, z)
                      for key, s, e, z in spans]
            inside.sort(key=lambda x: -x[0])
            _, key, s, e, z = inside[0]
        else:
            key, s, e, z = max(spans, key=lambda x: x[2] - x[1])
        main = _zone_geo(key, s, e, z)
        node = z.get("node")
        mine = sorted((x for x in spans if x[3].get("node") == node and x[3].get("managed")),
                      key=lambda x: x[1])
        names = [k.split(":")[-1] for k, _, _, _ in mine]
        known = all(n in C.ZONE_NAMES for n in names) and names == sorted(names, key=C.ZONE_NAMES.index)
        if len(mine) > 1 and known and key.split(":")[-1] in names:
            return replace(main, zones=tuple(_zone_geo(*x) for x in mine))
        return main
    if events is None or not len(events):
        raise ReplayError(f"{capture.get('path')}: no zoneinfo.before and no events to size the zone")
    return Geometry("Normal", 0, int(events.pfn.max()) + 1)


@dataclass
class InitialState:
    geometry: Geometry
    pb_mt: np.ndarray                 # pageblock types (whole node, blocks below the zone unused)
    reserved: np.ndarray              # bool per pfn: holes and memblock-reserved pages
    free_pfn: np.ndarray
    free_order: np.ndarray
    alloc_pfn: np.ndarray
    alloc_order: np.ndarray
    alloc_mt: np.ndarray
    pcp_pfn: np.ndarray
    pcp_order: np.ndarray
    pcp_mt: np.ndarray
    source: str
    notes: list[str] = field(default_factory=list)
    pcp_cpu: np.ndarray | None = None     # the CPU whose list holds each pcp block (None: CPU 0)
    # pageblocks without a memmap (kpageflags' KPF_NOPAGE on every page: an absent section, such
    # as the PCI hole below 4 GiB), which /proc/pagetypeinfo does not count (None: none known)
    absent_blocks: np.ndarray | None = None


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.nonzero(d == 1)[0].tolist(), np.nonzero(d == -1)[0].tolist()))


def infer_pageblock_types(events: Events, nr_blocks: int, pageblock_order: int,
                          default: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The type of each pageblock when the trace starts, as the trace shows it: the type a pcp
    drain freed into it with (the pageblock's type when the page was freed), or the type a claim
    took it from (mm_page_alloc_extfrag fallback_migratetype), whichever comes first; else the
    list type of the first block taken from it (zone_locked); else `default`. Returns the types
    and, per block, which evidence decided (0 default, 1 drain/claim, 2 zone_locked)."""
    out = default.copy()
    how = np.zeros(nr_blocks, dtype=np.int8)
    k, pfn, mt = events.kind, events.pfn, events.mt
    idx = np.arange(len(k))
    strong_i, strong_b, strong_mt = [], [], []
    d = k == R.EV_DRAIN
    strong_i.append(idx[d])
    strong_b.append(pfn[d] >> pageblock_order)
    strong_mt.append(mt[d])
    for i in np.nonzero((k == R.EV_EXTFRAG) & (events.aux0 == 1))[0]:
        fo = int(events.aux1[i])
        if fo >= pageblock_order:
            base = int(pfn[i]) & ~((1 << fo) - 1)
            blocks = np.arange(base >> pageblock_order, (base >> pageblock_order) + (1 << (fo - pageblock_order)))
        else:
            blocks = np.array([int(pfn[i]) >> pageblock_order])
        # the type the block had before the claim: the fallback type of the event
        strong_i.append(np.full(len(blocks), i))
        strong_b.append(blocks)
        strong_mt.append(np.full(len(blocks), int(events.fallback_mt[i])))
    for level, (ii, bb, mm) in ((2, (idx[k == R.EV_ZONE_LOCKED], pfn[k == R.EV_ZONE_LOCKED] >> pageblock_order,
                                     mt[k == R.EV_ZONE_LOCKED])),
                                (1, (np.concatenate(strong_i), np.concatenate(strong_b), np.concatenate(strong_mt)))):
        order = np.argsort(ii, kind="stable")
        bb, mm = bb[order], mm[order]
        ok = (bb >= 0) & (bb < nr_blocks) & (mm >= 0) & (mm < C.MIGRATE_PCPTYPES)
        bb, mm = bb[ok], mm[ok]
        first_b, first = np.unique(bb, return_index=True)
        out[first_b] = mm[first]
        how[first_b] = level
    return out, how


def _zone_snapshot(capture: dict, kind: str, phase: str, zone: str):
    snap = (capture.get(kind) or {}).get(phase)
    if snap is None:
        return None
    if kind == "pagetypeinfo":
        return {"free": snap["free"].get(zone), "blocks": snap["blocks"].get(zone)}
    return snap.get(zone)


def _decompose_zones(mask: np.ndarray, geo: Geometry, max_order: int) -> tuple[np.ndarray, np.ndarray]:
    """_decompose() zone by zone: a buddy never spans two zones."""
    parts = [_decompose(mask, g.zone_start, min(g.zone_end, len(mask)), max_order) for g in geo.replayed()]
    return np.concatenate([p for p, _ in parts]), np.concatenate([o for _, o in parts])


def _decompose(mask: np.ndarray, start: int, end: int, max_order: int) -> tuple[np.ndarray, np.ndarray]:
    n_max = int(np.count_nonzero(mask[start:end]))
    out_pfn = np.zeros(n_max, dtype=np.int64)
    out_order = np.zeros(n_max, dtype=np.int64)
    n = R.decompose_free(mask, start, end, max_order, out_pfn, out_order)
    return out_pfn[:n], out_order[:n]


def _pcp_at_start(events: Events, nr_pages: int, allocated: np.ndarray, zones: np.ndarray | None = None,
                  nr_cpus: int = 1, free: np.ndarray | None = None):
    """Blocks the trace shows on a pcp list when it starts (first event: an mm_page_alloc with no
    zone_locked before it, or a pcp drain) that the snapshot shows allocated, or free (`free`):
    the snapshot's files are read before tracing starts, and a refill in between leaves no
    trace (a 6.10+ steal, which takes its page from the buddy with only mm_page_alloc_extfrag
    before the allocation, is not one). Each with the CPU whose list holds it: the CPU of its
    first event, or for a block first seen in a drain of every CPU's lists, the CPU
    drained_cpus() finds. `zones`: the zones' start pfns; nr_cpus: the CPUs the snapshot has pcp
    lists for."""
    n = len(events)
    seen = np.zeros(nr_pages, dtype=np.uint8)
    out_pfn = np.zeros(max(n, 1), dtype=np.int64)
    out_order = np.zeros(max(n, 1), dtype=np.int64)
    out_mt = np.zeros(max(n, 1), dtype=np.int64)
    m = R.first_touch(events.kind, events.pfn, events.order, events.mt, nr_pages, seen,
                      out_pfn, out_order, out_mt)
    pfn, order, mt = out_pfn[:m], out_order[:m], out_mt[:m]
    ok = np.array([allocated[p:p + (1 << o)].all() for p, o in zip(pfn.tolist(), order.tolist())],
                  dtype=bool) if m else np.zeros(0, dtype=bool)
    if free is not None and m:
        was_free = np.array([free[p:p + (1 << o)].all() for p, o in zip(pfn.tolist(), order.tolist())],
                            dtype=bool)
        stolen = np.isin(pfn, events.pfn[events.kind == R.EV_EXTFRAG])
        ok |= was_free & ~stolen
    ok &= (mt >= 0) & (mt < C.MIGRATE_PCPTYPES)
    pfn, order, mt = pfn[ok], order[ok], mt[ok]
    # each on the list of the CPU whose event first shows it, and in the order the trace takes
    # them: an allocation takes the head of a pcp list, a drain the tail, so blocks first
    # allocated stand first (head) in the order of their allocations, then the blocks first
    # drained, the first drained last (tail); build_state() appends in the order given
    cpu = np.zeros(len(pfn), dtype=np.int64)
    if len(pfn):
        idx = first_event_index(events, pfn)     # every block here has an event
        if events.cpu is not None:
            cpu = events.cpu[idx]
        drained = events.kind[idx] == R.EV_DRAIN
        if drained.any() and nr_cpus > 1 and events.cpu is not None:
            cpu = np.where(drained, drained_cpus(events, idx, zones, nr_cpus, cpu), cpu)
        order_ = np.lexsort((np.where(drained, -idx, idx), drained))
        pfn, order, mt, cpu = pfn[order_], order[order_], mt[order_], cpu[order_]
    return pfn, order, mt, cpu


def drained_cpus(events: Events, idx: np.ndarray, zones: np.ndarray | None, nr_cpus: int,
                 cpu: np.ndarray) -> np.ndarray:
    """For the drain events idx, the CPU whose pcp list each drained page left, where the trace
    tells it apart from the CPU that ran the drain (`cpu`: that one). drain_all_pages() drains
    every CPU's lists from the calling CPU, CPU after CPU in ascending order, and
    drain_pages_zone() empties a CPU's lists of a zone in chunks that each start at the lowest
    list index (free_pcppages_bulk() with pindex 0): within one CPU the list index of the drained
    pages never falls, so in a run of drains on one CPU (no other event of that CPU between) a
    fall starts the next CPU's lists. A run of a zone that falls nr_cpus - 1 times is taken as
    drain_all_pages() over every CPU: its k-th stretch is CPU k's. Not a run that a free onto a
    pcp list of the same order starts: free_frozen_page_commit() drains the lists of its own CPU
    from the freed page's list index, wrapping round to 0. The list index of a drained page is
    taken from its pageblock's migratetype (as the event gives it), a type above the pcp types
    counting as movable."""
    out = cpu.copy()
    n = len(events)
    kind, order = events.kind, events.order
    mt = np.where(events.mt >= C.MIGRATE_PCPTYPES, C.MIGRATE_MOVABLE, np.maximum(events.mt, 0))
    pindex = order * C.MIGRATE_PCPTYPES + mt
    zone = (np.searchsorted(zones, events.pfn, side="right") - 1 if zones is not None and len(zones)
            else np.zeros(n, np.int64))
    for c in np.unique(events.cpu[idx]):
        here = np.flatnonzero(events.cpu == c)
        drain = kind[here] == R.EV_DRAIN
        run = np.cumsum(~drain)                  # drains share the id of the event before them
        pos = np.searchsorted(here, idx[events.cpu[idx] == c])
        for r in np.unique(run[pos]):
            members = here[(run == r) & drain]
            if not len(members):
                continue
            start = int(np.searchsorted(here, members[0]))
            if start > 0:
                before = here[start - 1]
                if kind[before] == R.EV_FREE and events.aux0[before] == 0 and order[before] == order[members[0]]:
                    continue
            for zi in np.unique(zone[members]):
                mz = members[zone[members] == zi]
                seg = np.r_[0, np.cumsum(np.diff(pindex[mz]) < 0)]
                if seg[-1] != nr_cpus - 1:
                    continue
                which = np.searchsorted(mz, idx)
                hit = (which < len(mz)) & (mz[np.minimum(which, len(mz) - 1)] == idx)
                out[hit] = seg[which[hit]]
    return out


def in_first_use_order(events: Events, fp: np.ndarray, fo: np.ndarray):
    """The free blocks of the initial state in the order their lists hold them, as far as the
    trace tells: snapshots do not record the order of a free list, but __rmqueue_smallest()
    takes the head of its list, so blocks whose first page the trace touches earlier stand
    nearer the head; blocks the trace never touches follow in pfn order. build_state() appends
    the blocks to the tails of their lists in the order given."""
    if not len(fp) or not len(events):
        return fp, fo
    order = np.lexsort((fp, first_event_index(events, fp)))
    return fp[order], fo[order]


def first_event_index(events: Events, pfns: np.ndarray) -> np.ndarray:
    """For each pfn, the index of the first event at exactly that pfn (len(events) when none).
    The sorted first occurrences are computed once per Events."""
    if events.first_seen is None:
        events.first_seen = np.unique(events.pfn, return_index=True)
    values, first = events.first_seen
    if not len(values):
        return np.full(len(pfns), len(events), dtype=np.int64)
    pos = np.minimum(np.searchsorted(values, pfns), len(values) - 1)
    return np.where(values[pos] == pfns, first[pos], len(events))


def _allocated_blocks(kpf: np.ndarray, allocated: np.ndarray, start: int, end: int):
    """Allocated pages as blocks: a compound page (head + 2^k - 1 tails, aligned) is one block
    of order k, every other page an order-0 block. Movable when on the LRU."""
    pfns = np.nonzero(allocated[start:end])[0] + start
    order = np.zeros(len(pfns), dtype=np.int64)
    keep = np.ones(len(pfns), dtype=bool)
    heads = pfns[((kpf[pfns] >> KPF_COMPOUND_HEAD) & 1) == 1]
    tail = ((kpf >> KPF_COMPOUND_TAIL) & 1).astype(bool)
    index = np.searchsorted(pfns, heads)
    for h, i in zip(heads.tolist(), index.tolist()):
        n = 1
        while h + n < end and tail[h + n] and allocated[h + n]:
            n += 1
        k = n.bit_length() - 1
        if n == 1 << k and k > 0 and h % n == 0:
            order[i] = k
            keep[i + 1:i + n] = False
    pfns, order = pfns[keep], order[keep]
    lru = ((kpf[pfns] >> KPF_LRU) & 1) == 1
    mt = np.where(lru, C.MIGRATE_MOVABLE, C.MIGRATE_UNMOVABLE).astype(np.int64)
    return pfns, order, mt


def initial_state(capture: dict, events: Events | None, max_order: int, pageblock_order: int,
                  hygiene: bool) -> InitialState:
    """The zones at the start of the trace (see the module docstring). Without kpageflags only
    the main zone is replayed."""
    geo = zone_geometry(capture, events)
    kpf = (capture.get("kpageflags") or {}).get("before")
    if kpf is None:
        geo = geo.main_only()
    nr = geo.span_end
    nr_blocks = (nr + (1 << pageblock_order) - 1) >> pageblock_order
    notes: list[str] = []
    empty = np.zeros(0, dtype=np.int64)
    if kpf is not None:
        flags = np.zeros(nr, dtype=np.uint64)
        flags[:min(nr, len(kpf))] = kpf[:nr]
        if len(kpf) < nr:
            flags[len(kpf):] = np.uint64(1) << np.uint64(KPF_NOPAGE)
        reserved = (((flags >> np.uint64(KPF_RESERVED)) | (flags >> np.uint64(KPF_NOPAGE))) & np.uint64(1)).astype(bool)
        reserved[:geo.span_start] = True
        free = ((flags >> np.uint64(KPF_BUDDY)) & np.uint64(1)).astype(bool) & ~reserved
        allocated = ~free & ~reserved
        source = "kpageflags.before"
    else:
        synth = synthesise_state(capture, geo, max_order, pageblock_order)
        if synth is None:
            notes.append("no kpageflags.before and no buddyinfo.before/pagetypeinfo.before: "
                         "the zone starts all free")
            reserved = np.zeros(nr, dtype=bool)
            reserved[:geo.zone_start] = True
            free = ~reserved
            pb_mt = np.full(nr_blocks, C.MIGRATE_MOVABLE, dtype=np.uint8)
            fp, fo = _decompose(free, geo.zone_start, nr, max_order)
            return InitialState(geo, pb_mt, reserved, fp, fo, empty, empty, empty, empty, empty,
                                empty, "boot", notes)
        return synth
    starts = np.array([g.zone_start for g in geo.replayed()], np.int64)
    pcp_pfn, pcp_order, pcp_mt, pcp_cpu = (_pcp_at_start(events, nr, allocated, starts, geo.nr_cpus, free)
                                           if events is not None else (empty, empty, empty, empty))
    on_pcp = np.zeros(nr, dtype=bool)
    for p, o in zip(pcp_pfn.tolist(), pcp_order.tolist()):
        on_pcp[p:p + (1 << o)] = True
    window = on_pcp & free       # refilled between the snapshot's reads and the start of tracing
    if events is not None and len(events) and window.any():
        # freed first, in a max-order block that a refill in that window took pages from: the
        # refill put it on a pcp list too, and an allocation took it before tracing began. A
        # page freed first without such a refill beside it was taken during the trace without
        # an event (a compaction's migration target): pinned replay takes it at its free.
        fr = np.flatnonzero((events.kind == R.EV_FREE) & (events.pfn >= 0) & (events.pfn < nr))
        fr = fr[first_event_index(events, events.pfn[fr]) == fr]
        span = 1 << max_order
        late = [(p, o) for p, o in zip(events.pfn[fr].tolist(), events.order[fr].tolist())
                if free[p:p + (1 << o)].all() and window[p & ~(span - 1):(p & ~(span - 1)) + span].any()]
        for p, o in late:
            free[p:p + (1 << o)] = False
            allocated[p:p + (1 << o)] = True
        if late:
            notes.append(f"{sum(1 << o for _, o in late)} pages free in kpageflags.before are "
                         "allocated when the trace starts (its first event frees them)")
    refilled = int(np.count_nonzero(window))
    if refilled:
        # taken onto a pcp list between the snapshot's reads and the start of tracing
        free &= ~on_pcp
        allocated |= on_pcp
        notes.append(f"{refilled} pages free in kpageflags.before are on a pcp list when the trace "
                     "starts (its first event takes them from one)")
    # Without evidence in the trace, a pageblock holding allocated pages that are neither on the
    # LRU nor reserved (slab, page tables, kernel allocations) is taken as Unmovable; the rest are
    # Movable, as memmap_init() leaves every pageblock.
    unmov = allocated & ~(((flags >> np.uint64(KPF_LRU)) & np.uint64(1)).astype(bool))
    pad = np.zeros(nr_blocks << pageblock_order, dtype=bool)
    pad[:nr] = unmov
    default = np.where(pad.reshape(nr_blocks, -1).any(axis=1), C.MIGRATE_UNMOVABLE,
                       C.MIGRATE_MOVABLE).astype(np.int64)
    deferred = deferred_init_start(capture, geo)
    if deferred is not None:
        # CONFIG_DEFERRED_STRUCT_PAGE_INIT: beyond the first section of the node's highest zone,
        # memmap_init_range() does not run at boot; deferred_free_pages() types a pageblock
        # MOVABLE only when it frees the block's first page, and reserve_bootmem_region() types
        # none, so a pageblock whose first page stayed reserved keeps type 0, MIGRATE_UNMOVABLE
        first_pfn = np.arange(nr_blocks, dtype=np.int64) << pageblock_order
        kept = (first_pfn >= deferred) & (first_pfn < nr) & reserved[np.minimum(first_pfn, nr - 1)]
        default = np.where(kept, C.MIGRATE_UNMOVABLE, default)
    exact = recorded_pageblock_types(capture, "before", geo, nr_blocks, pageblock_order)
    if exact is not None:
        # the kernel's own types (the capture's pageblocktypes module) where it recorded them
        pb_mt, known = exact
        pb_mt = np.where(known, pb_mt, default)
        how = np.where(known, 3, 0).astype(np.int8)
    elif events is not None:
        pb_mt, how = infer_pageblock_types(events, nr_blocks, pageblock_order, default)
    else:
        pb_mt, how = default, np.zeros(nr_blocks, dtype=np.int8)
    pb_mt = pb_mt.astype(np.uint8)
    fp, fo = _decompose_zones(free, geo, max_order)
    if hygiene and exact is None:
        # 6.10+ keeps a free buddy within pageblocks of one type: where the inferred types
        # disagree inside one free block, the block's first pageblock decides
        for p, o in zip(fp[fo > pageblock_order].tolist(), fo[fo > pageblock_order].tolist()):
            b = p >> pageblock_order
            pb_mt[b:b + (1 << (o - pageblock_order))] = pb_mt[b]
    if events is not None:
        fp, fo = in_first_use_order(events, fp, fo)
    ap, ao, am = _allocated_blocks(flags, allocated & ~on_pcp, geo.span_start, nr)
    counts = np.bincount(how[geo.span_start >> pageblock_order:], minlength=4)
    if exact is not None:
        notes.append(f"pageblock types: {counts[3]} as the kernel recorded them (pageblocktypes.before)"
                     + (f", {counts[0]} from their kpageflags content" if counts[0] else ""))
    else:
        notes.append(f"pageblock types: {counts[1]} from pcp drains and claims, {counts[2]} from "
                     f"zone_locked list types, {counts[0]} from their kpageflags content")
    if deferred is not None and exact is None:
        n = int(np.count_nonzero(kept & (how == 0)))
        notes.append(f"deferred struct page init from pfn {deferred}: {n} pageblocks whose first page is "
                     "reserved keep the boot type, Unmovable")
    nopage = ((flags >> np.uint64(KPF_NOPAGE)) & np.uint64(1)).astype(bool)
    pad = np.ones(nr_blocks << pageblock_order, dtype=bool)
    pad[:nr] = nopage
    absent = pad.reshape(nr_blocks, -1).all(axis=1)
    return InitialState(geo, pb_mt, reserved, fp, fo, ap, ao, am, pcp_pfn, pcp_order, pcp_mt,
                        source, notes, pcp_cpu, absent)


def recorded_pageblock_types(capture: dict, phase: str, geo: Geometry, nr_blocks: int,
                             pageblock_order: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The migratetype of each pageblock of the zone `geo` as the kernel recorded it at `phase`
    (pageblocktypes.PHASE), or None when the capture has no such snapshot of the zone, or has
    one at another pageblock_order than the replay's. -> (types as kernels.constants numbers,
    which blocks the snapshot covers), both of `nr_blocks` entries."""
    snap = (capture.get("pageblocktypes") or {}).get(phase)
    if snap is None or snap["pageblock_order"] != pageblock_order or geo.zone not in snap["zones"]:
        return None
    codes = {name: i for i, name in enumerate(C.MIGRATETYPE_NAMES)}
    types = np.full(nr_blocks, C.MIGRATE_MOVABLE, dtype=np.int64)
    known = np.zeros(nr_blocks, dtype=bool)
    for g in geo.replayed():
        z = snap["zones"].get(g.zone)
        if z is None:
            continue
        unknown = sorted({t for t in z["type"] if t not in codes})
        if unknown:
            raise ReplayError(f"{capture.get('path', '')}: pageblocktypes.{phase} has migratetypes "
                              f"{', '.join(unknown)}, which the model does not know")
        blocks = z["pfn"] >> pageblock_order
        ok = (blocks >= 0) & (blocks < nr_blocks)
        types[blocks[ok]] = np.array([codes[t] for t in z["type"]], dtype=np.int64)[ok]
        known[blocks[ok]] = True
    return types, known


#: PAGES_PER_SECTION on x86-64 (SECTION_SIZE_BITS 27)
PAGES_PER_SECTION = 1 << (27 - C.PAGE_SHIFT)


def deferred_init_start(capture: dict, geo: Geometry) -> int | None:
    """The first pfn whose struct page the kernel initialised late (deferred_init_memmap()), or
    None: with CONFIG_DEFERRED_STRUCT_PAGE_INIT (from the capture's `config`), only the node's
    highest zone defers, after its first PAGES_PER_SECTION pages, at the next section boundary
    (defer_init()). Holes inside that first section are not counted here."""
    config = capture.get("config") or {}
    if config.get("CONFIG_DEFERRED_STRUCT_PAGE_INIT") != "y":
        return None
    spans = [(z.get("start_pfn"), z.get("spanned")) for z in ((capture.get("zoneinfo") or {}).get("before") or {}).values()
             if z.get("node") == 0 and z.get("start_pfn") is not None and z.get("spanned")]
    top = geo.replayed()[-1]
    node_end = max((a + b for a, b in spans), default=top.zone_end)
    if top.zone_end < node_end:
        return None
    first = top.zone_start + PAGES_PER_SECTION + 1
    return (first + PAGES_PER_SECTION - 1) // PAGES_PER_SECTION * PAGES_PER_SECTION


def synthesise_state(capture: dict, geo: Geometry, max_order: int, pageblock_order: int):
    """A zone that matches buddyinfo.before and pagetypeinfo.before: pageblocks typed as
    pagetypeinfo counts them (Unmovable, Reclaimable, then the rest Movable, from the zone
    start), each type's free blocks packed into its own pageblocks from the top order down, and
    every other page allocated with its pageblock's type. None without those snapshots."""
    geo = geo.main_only()       # the other zones have no pages to synthesise from
    pt = _zone_snapshot(capture, "pagetypeinfo", "before", geo.zone)
    if not pt or not pt["free"] or not pt["blocks"]:
        return None
    nr = geo.zone_end
    pb = 1 << pageblock_order
    nr_blocks = (nr + pb - 1) >> pageblock_order
    reserved = np.zeros(nr, dtype=bool)
    reserved[:geo.zone_start] = True
    pb_mt = np.full(nr_blocks, C.MIGRATE_MOVABLE, dtype=np.uint8)
    first = geo.zone_start >> pageblock_order
    b = first
    for name, t in (("Unmovable", C.MIGRATE_UNMOVABLE), ("Reclaimable", C.MIGRATE_RECLAIMABLE)):
        n = int(pt["blocks"].get(name, 0))
        pb_mt[b:b + n] = t
        b += n
    free = np.zeros(nr, dtype=bool)
    fp, fo = [], []
    used = np.zeros(nr, dtype=bool)
    used[:geo.zone_start] = True
    for name, t in (("Unmovable", 0), ("Movable", 1), ("Reclaimable", 2)):
        counts = pt["free"].get(name) or []
        blocks_of_t = np.nonzero(pb_mt[first:] == t)[0] + first
        for o in range(min(len(counts), max_order + 1) - 1, -1, -1):
            want = counts[o]
            size = 1 << o
            for blk in blocks_of_t.tolist():
                if want == 0:
                    break
                start = blk << pageblock_order
                step_end = min(start + max(pb, size), nr)
                for p in range(start, step_end, size):
                    if want == 0 or p + size > nr:
                        break
                    if p % size:
                        continue
                    if not used[p:p + size].any() and all(pb_mt[q >> pageblock_order] == t
                                                          for q in range(p, p + size, pb)):
                        used[p:p + size] = True
                        free[p:p + size] = True
                        fp.append(p)
                        fo.append(o)
                        want -= 1
    allocated = ~used
    ap = np.nonzero(allocated)[0].astype(np.int64)
    am = pb_mt[ap >> pageblock_order].astype(np.int64)
    order = np.argsort(fp, kind="stable")
    return InitialState(geo, pb_mt, reserved, np.asarray(fp, dtype=np.int64)[order],
                        np.asarray(fo, dtype=np.int64)[order], ap, np.zeros(len(ap), dtype=np.int64),
                        am, np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64),
                        np.zeros(0, dtype=np.int64), "synthesised from buddyinfo/pagetypeinfo.before",
                        ["no kpageflags: pageblock positions and allocated pages are synthesised"])


def build_replay_node(state: InitialState, max_order: int, pageblock_order: int, policy: str,
                      pcp: bool = True, nr_cpus: int = 1):
    """The model's node in the initial state: the replayed zones over the traced zones' pfns
    (below the first a hole), each with the capture's watermarks, lowmem_reserve (zoneinfo's
    protection) and pcp batch/high where zoneinfo gives them, and the kernel's stat_threshold for
    the per-cpu vmstat diffs of NR_FREE_PAGES (calculate_normal_threshold())."""
    geo = state.geometry
    nr_cpus = max(1, min(nr_cpus, C.MAX_CPUS))
    zones = geo.replayed()
    end_of = {g.zone: g.zone_end for g in zones}
    movable_start = next((g.zone_start for g in zones if g.zone == "Movable"), geo.span_end)
    if "Normal" not in end_of and "DMA32" in end_of and movable_start < geo.span_end:
        # no ZONE_NORMAL (boot memory below 4 GiB, the rest hot-added to ZONE_MOVABLE): the
        # model's ZONE_DMA32 reaches over the hole up to ZONE_MOVABLE, so no empty ZONE_NORMAL
        # lies between them
        end_of["DMA32"] = movable_start
    node = make_node(geo.span_end, max_order, pageblock_order, policy, holes=_runs(state.reserved),
                     pcp=pcp, nr_cpus=nr_cpus, movable_pages=geo.span_end - movable_start,
                     dma_end=end_of.get("DMA", 0) if len(zones) > 1 else 0,
                     dma32_end=end_of.get("DMA32", 0) if len(zones) > 1 else 0)
    if len(node) != len(zones):
        raise ReplayError(f"the zones {', '.join(g.zone for g in zones)} do not make a node the "
                          "model can lay out")
    if not node[0].zp[C.ZP_MOBILITY_DISABLED]:    # else make_node typed every pageblock UNMOVABLE
        n = min(len(node[0].pb_mt), len(state.pb_mt))
        node[0].pb_mt[:n] = state.pb_mt[:n]
    cpu = state.pcp_cpu if state.pcp_cpu is not None and nr_cpus > 1 else np.zeros(len(state.pcp_pfn), np.int64)
    none = np.zeros(0, dtype=np.int64)
    for z, g in zip(node, zones):
        z.zp[C.ZP_ZONE_START] = g.zone_start
        if g.wmark and None not in g.wmark:
            z.zp[C.ZP_WMARK_MIN], z.zp[C.ZP_WMARK_LOW], z.zp[C.ZP_WMARK_HIGH] = g.wmark
        if g.managed:
            z.zp[C.ZP_MANAGED] = g.managed
        if len(zones) > 1 and g.protection:
            prot = list(g.protection[:C.MAX_NR_ZONES]) + [0] * (C.MAX_NR_ZONES - len(g.protection))
            z.zp[C.ZP_LOWMEM_RESERVE:C.ZP_LOWMEM_RESERVE + C.MAX_NR_ZONES] = prot
        set_pcp_sizes(z, g.pcp_batch, g.pcp_high, g.nr_cpus)
        inside = lambda pfns: (pfns >= g.zone_start) & (pfns < g.zone_end)     # noqa: E731
        f, a, q = inside(state.free_pfn), inside(state.alloc_pfn), inside(state.pcp_pfn)
        mine = q & (cpu == 0)
        R.build_state(z, state.free_pfn[f], state.free_order[f], state.alloc_pfn[a],
                      state.alloc_order[a], state.alloc_mt[a], state.pcp_pfn[mine],
                      state.pcp_order[mine], state.pcp_mt[mine])
        for c in range(1, nr_cpus):
            # each CPU's own high (zoneinfo's pagesets) and pcp blocks
            P.pcp_switch_cpu(z, c)
            high = g.pcp_highs[c] if c < len(g.pcp_highs) else None
            if high and z.zp[C.ZP_PCP_RULES] >= C.PCP_RULES_6_7:
                z.zp[C.ZP_PCP_HIGH] = high
            mine = q & (cpu == c)
            R.build_state(z, none, none, none, none, none, state.pcp_pfn[mine],
                          state.pcp_order[mine], state.pcp_mt[mine])
        known = [int(sum(1 << int(o) for o in state.pcp_order[q & (cpu == c)])) for c in range(nr_cpus)]
        for c, untraced in enumerate(untraced_pcp_pages(g, known)):
            P.pcp_switch_cpu(z, c)
            z.zp[C.ZP_PCP_COUNT] += untraced
            z.stat[C.PCP_COUNT] += untraced
            z.zp[C.ZP_PCPS + c * C.PCPS_SLOTS + C.PCPS_UNTRACED] = untraced
        P.pcp_switch_cpu(z, 0)
        reset_cached_positions(z)
        # from here the CPUs' vmstat diffs drift as the kernel's do (none at the start)
        z.zp[C.ZP_STAT_THRESHOLD] = stat_threshold(int(z.zp[C.ZP_MANAGED]), g.nr_cpus)
    check_zone(node)
    return node


def untraced_pcp_pages(g: Geometry, known: list[int]) -> list[int]:
    """For each modelled CPU, pages zoneinfo.before counts on its pcp lists beyond the `known`
    ones the trace shows there (all CPUs' when the replay runs on one): pages the trace never
    touches, which stay in the list's count and are never drained (a drain would show them). No
    more than the zone's count exceeds all known pages: a page first seen in a drain is put on
    the draining CPU's list, but drain_all_pages() drains every CPU's lists from the calling one,
    so one CPU can be short by pages another holds too many of (CPUs in order take what is left)."""
    counts = [x or 0 for x in g.pcp_counts]
    if len(known) == 1:
        counts = [sum(counts)]
    left = sum(counts[:len(known)]) - sum(known)
    out = []
    for c, k in enumerate(known):
        short = max(0, counts[c] - k) if c < len(counts) else 0
        out.append(max(0, min(short, left)))
        left -= out[-1]
    return out


def main_zone_index(node, geo: Geometry) -> int:
    """Index in the node of the replay's main zone."""
    return next((i for i, g in enumerate(geo.replayed()) if g.zone == geo.zone), 0)


# sysctl_stat_interval: the vmstat update (and with it decay_pcp_high()) runs every second
VMSTAT_INTERVAL_S = 1.0
# CONFIG_HZ when the capture does not record its configuration: Debian's x86-64 kernels
DEFAULT_HZ = 250


def kernel_hz(capture: dict) -> int:
    """The capture's CONFIG_HZ (its recorded configuration), else Debian's 250."""
    value = (capture.get("config") or {}).get("CONFIG_HZ")
    return int(value) if value and value.isdigit() else DEFAULT_HZ


def jiffies_phase(hz: int) -> float:
    """Where in each second of uptime jiffies passes a multiple of HZ, if jiffies and the trace
    clock started together: jiffies starts at INITIAL_JIFFIES = (u32)(-300 * HZ), so
    (HZ - 2^32 mod HZ) / HZ seconds in (0.816 for HZ = 250)."""
    return ((hz - (1 << 32) % hz) % hz) / hz


def vmstat_phase(capture: dict, events: "Events", cpu: int = 0) -> float:
    """Where in each second of the trace clock a CPU's vmstat update runs. vmstat_update()
    re-arms itself with round_jiffies_relative(HZ): it fires when jiffies is a multiple of HZ,
    less 3 jiffies per CPU number (the skew of round_jiffies()), once a second. How jiffies lines
    up with the trace clock varies from boot to boot, so the phase is read from the trace when it
    shows the update's decay drains on that CPU (the median phase of their runs), else from
    CPU 0's less the skew, else it is jiffies_phase() of the capture's CONFIG_HZ."""
    hz = kernel_hz(capture)
    for c, skew in ((cpu, 0.0), (0, 3.0 * cpu / hz)):
        runs = events.vmstat_runs[events.vmstat_runs_cpu == c]
        if len(runs):
            frac = np.sort(runs % 1.0)
            # the phases cluster just after a tick: centre them on the first one before the median
            med = float(np.median(frac))
            return (float(np.median((frac - med + 0.5) % 1.0) + med - 0.5) - skew) % 1.0
    return (jiffies_phase(hz) - 3.0 * cpu / hz) % 1.0


def vmstat_ticks(capture: dict, events: "Events", start: float, end: float,
                 nr_cpus: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """When each CPU's vmstat update (and decay_pcp_high()) runs between trace times start and
    end, as (times, cpus) in time order: where the trace records it (workqueue_execute_start of
    vmstat_update), exactly; else once a second at vmstat_phase(), and in a second where the
    trace shows that CPU's drains, at the first of them (the work runs a little after its timer,
    by as much as the CPU is busy)."""
    if events.vmstat_updates is not None:
        t, c = events.vmstat_updates, events.vmstat_updates_cpu
        pick = (t >= start) & (t <= end) & (c < nr_cpus)
        return t[pick], c[pick]
    times, cpus = [], []
    for cpu in range(nr_cpus):
        first = vmstat_tick_after(start, vmstat_phase(capture, events, cpu))
        ticks = first + VMSTAT_INTERVAL_S * np.arange(max(int(np.floor(end - first)) + 1, 0))
        for t in events.vmstat_runs[events.vmstat_runs_cpu == cpu]:
            near = np.abs(ticks - t) < 0.5 * VMSTAT_INTERVAL_S
            ticks[near] = t
        times.append(ticks)
        cpus.append(np.full(len(ticks), cpu, np.int64))
    t, c = np.concatenate(times), np.concatenate(cpus)
    order = np.argsort(t, kind="stable")
    return t[order], c[order]


def vmstat_tick_after(t: float, phase: float) -> float:
    """The first time >= t (seconds, the trace clock) whose fraction of a second is `phase`."""
    k = np.ceil(t - phase)
    return float(k + phase)


def initial_alloc_factor(events: Events, batch: int, cpu: int = 0, here: np.ndarray | None = None) -> int:
    """A CPU's pcp->alloc_factor when the trace starts (6.7+), from its first order-0 pcp refill
    when no free on that CPU comes before it: nr_pcp_alloc() took batch << alloc_factor pages
    (mm_page_alloc_zone_locked with percpu_refill = 1, in a row). 0 when the trace does not tell."""
    on = events.cpu == cpu if events.cpu is not None else np.full(len(events), cpu == 0)
    if here is not None:
        on = on & here       # events in this zone only
    refill = (events.kind == R.EV_ZONE_LOCKED) & (events.aux0 == 1) & (events.order == 0) & on
    first = np.flatnonzero(refill)
    if not len(first) or batch < 1:
        return 0
    i = int(first[0])
    if np.any((events.kind[:i] == R.EV_FREE) & on[:i]):
        return 0
    n = 0
    while i + n < len(events) and refill[i + n]:
        n += 1
    for factor in range(C.PCP_BATCH_SCALE_MAX + 1):
        if n == batch << factor:
            return factor
    return 0


def set_pcp_sizes(z, batch: int | None, high: int | None, nr_cpus: int) -> None:
    """The zone's pcp batch and high as zoneinfo gives them, high_min and high_max as the kernel
    computes them from the zone's low watermark and managed pages (6.7+; zoneinfo prints only
    the current high, which stays within them)."""
    if batch:
        z.zp[C.ZP_PCP_BATCH] = batch
    batch = int(z.zp[C.ZP_PCP_BATCH])
    rules = int(z.zp[C.ZP_PCP_RULES])
    if rules >= C.PCP_RULES_6_7:
        high_min, high_max = pcp_high_bounds(batch, int(z.zp[C.ZP_MANAGED]), int(z.zp[C.ZP_WMARK_LOW]),
                                             nr_cpus, rules)
        if high:
            high_max = max(high_max, high)
        z.zp[C.ZP_PCP_HIGH_MIN], z.zp[C.ZP_PCP_HIGH_MAX] = high_min, high_max
        z.zp[C.ZP_PCP_HIGH] = high if high else high_min
    elif high:
        z.zp[C.ZP_PCP_HIGH] = z.zp[C.ZP_PCP_HIGH_MIN] = z.zp[C.ZP_PCP_HIGH_MAX] = high


def zone_figures(node, geo: Geometry | None = None, absent: np.ndarray | None = None) -> dict[str, Any]:
    """buddyinfo, nr_free_pages, free blocks per type and order, pageblocks per type (not those
    `absent`): of the one zone, or with several, each zone's under `zones` and their sums
    (buddyinfo order by order)."""
    if len(node) == 1:
        return _one_zone_figures(node[0], absent)
    names = [g.zone for g in geo.replayed()] if geo else [C.ZONE_NAMES[int(z.zp[C.ZP_ZONE_IDX])] for z in node]
    per = {name: _one_zone_figures(z, absent) for name, z in zip(names, node)}
    out = _sum_figures(list(per.values()))
    out["zones"] = per
    return out


def _sum_figures(figs: list[dict]) -> dict[str, Any]:
    """Figures of several zones added up: buddyinfo order by order, counts by type."""
    n = max(len(f["buddyinfo"]) for f in figs)
    out = {"buddyinfo": [sum(f["buddyinfo"][o] for f in figs if o < len(f["buddyinfo"])) for o in range(n)],
           "nr_free_pages": sum(f["nr_free_pages"] for f in figs)}
    if all("pcp_pages" in f for f in figs):
        out["pcp_pages"] = sum(f["pcp_pages"] for f in figs)
    blocks: dict[str, int] = {}
    for f in figs:
        for k, v in (f.get("blocks") or {}).items():
            blocks[k] = blocks.get(k, 0) + v
    out["blocks"] = blocks
    return out


def _one_zone_figures(z, absent: np.ndarray | None = None) -> dict[str, Any]:
    names = C.MIGRATETYPE_NAMES
    free = pagetypeinfo_free(z)
    pb_order = int(z.zp[C.ZP_PAGEBLOCK_ORDER])
    first = int(z.zp[C.ZP_ZONE_START]) >> pb_order
    last = (int(z.zp[C.ZP_ZONE_END]) + (1 << pb_order) - 1) >> pb_order
    # pagetypeinfo counts every pageblock the zone spans that has a memmap (pfn_to_online_page()),
    # reserved ones included
    mts = np.asarray(z.pb_mt[first:last])
    if absent is not None:
        mts = mts[~absent[first:last]] if len(absent) >= last else mts
    blocks = np.bincount(mts, minlength=C.MIGRATE_TYPES)
    return {"buddyinfo": [int(x) for x in z.nr_free], "nr_free_pages": int(z.stat[C.NR_FREE_PAGES]),
            "pcp_pages": int(z.stat[C.PCP_COUNT]),
            "free_by_type": {names[t]: [int(x) for x in free[t]] for t in range(C.MIGRATE_TYPES) if free[t].any()},
            "blocks": {names[t]: int(blocks[t]) for t in range(C.MIGRATE_TYPES) if blocks[t]}}


def _abs_diff(model: list[int], real: list[int]) -> int:
    """sum over orders of |model - real| (orders beyond either list count as 0)."""
    n = max(len(model), len(real))
    m = np.zeros(n, dtype=np.int64)
    r = np.zeros(n, dtype=np.int64)
    m[:len(model)] = model
    r[:len(real)] = real
    return int(np.abs(m - r).sum())


def buddyinfo_l1(model: list[int], real: list[int]) -> float:
    """sum over orders |model - real| / sum of real (orders beyond either list count as 0)."""
    total = sum(real)
    return _abs_diff(model, real) / total if total else float("nan")


def _nr_free_pages(buddyinfo: list[int]) -> int:
    return int(sum(n << o for o, n in enumerate(buddyinfo)))


def _compare(capture: dict, zone: str, phase: str, figures: dict) -> dict | None:
    """The model's figures against the capture's snapshots at `phase`; with several zones
    (figures["zones"]) each zone's comparison under `zones`, and the buddyinfo L1 over all of
    them (sum over zones and orders of |model - real| / all real free blocks)."""
    if "zones" in figures:
        per = {name: _compare(capture, name, phase, fig) for name, fig in figures["zones"].items()}
        if any(v is None for v in per.values()):
            return None
        real = _sum_figures([{"buddyinfo": v["buddyinfo"]["real"], "nr_free_pages": v["nr_free_pages"]["real"],
                              "blocks": (v.get("blocks") or {}).get("real", {})} for v in per.values()])
        diff = sum(_abs_diff(v["buddyinfo"]["model"], v["buddyinfo"]["real"]) for v in per.values())
        total = sum(real["buddyinfo"])
        out = {"phase": phase, "buddyinfo": {"real": real["buddyinfo"], "model": figures["buddyinfo"]},
               "buddyinfo_l1": diff / total if total else float("nan"),
               "nr_free_pages": {"real": real["nr_free_pages"], "model": figures["nr_free_pages"]}}
        out["nr_free_err"] = (abs(figures["nr_free_pages"] - real["nr_free_pages"]) / real["nr_free_pages"]
                              if real["nr_free_pages"] else float("nan"))
        if all("blocks" in v for v in per.values()):
            out["blocks"] = {"real": real["blocks"], "model": figures["blocks"]}
        out["zones"] = per
        return out
    real_bi = _zone_snapshot(capture, "buddyinfo", phase, zone)
    if real_bi is None:
        return None
    pt = _zone_snapshot(capture, "pagetypeinfo", phase, zone)
    out = {"phase": phase, "buddyinfo": {"real": real_bi, "model": figures["buddyinfo"]},
           "buddyinfo_l1": buddyinfo_l1(figures["buddyinfo"], real_bi)}
    real_free = _nr_free_pages(real_bi)
    out["nr_free_pages"] = {"real": real_free, "model": figures["nr_free_pages"]}
    out["nr_free_err"] = abs(figures["nr_free_pages"] - real_free) / real_free if real_free else float("nan")
    if pt and pt["blocks"]:
        real_blocks = {k: int(v) for k, v in pt["blocks"].items() if v}
        out["blocks"] = {"real": real_blocks, "model": figures["blocks"]}
    return out


def _compare_types(capture: dict, phase: str, geo: Geometry, node) -> dict | None:
    """The model's pageblock types against the kernel's (pageblocktypes.PHASE), block by block:
    {'blocks' compared, 'agree', 'differ': the first differing blocks}; None without a snapshot."""
    z = node[0]
    pb_order = int(z.zp[C.ZP_PAGEBLOCK_ORDER])
    model = np.asarray(z.pb_mt)
    rec = recorded_pageblock_types(capture, phase, geo, len(model), pb_order)
    if rec is None:
        return None
    real, known = rec
    known[:geo.span_start >> pb_order] = False
    blocks = np.flatnonzero(known)
    same = model[blocks] == real[blocks]
    names = C.MIGRATETYPE_NAMES
    return {"blocks": int(len(blocks)), "agree": int(same.sum()),
            "differ": [{"pfn": int(b) << pb_order, "real": names[int(real[b])], "model": names[int(model[b])]}
                       for b in blocks[~same][:20].tolist()]}


def _phase_of(until: str | None) -> str | None:
    if not until:
        return None
    return until.split("=", 1)[1].split()[0] if "=" in until else until


def virtio_mem_region(capture: dict) -> tuple[int, int] | None:
    """(first pfn, pages) of the capture's virtio-mem device region: the top-level /proc/iomem
    range named virtioN that holds "System RAM (virtio_mem)" (virtio_mem_init() claims the whole
    region under the device's name, and its plugged memory shows under it); None without one.
    With several devices, the first."""
    ranges = capture.get("iomem") or []
    for i, r in enumerate(ranges):
        if r["depth"] == 0 and re.fullmatch(r"virtio\d+", r["name"]):
            inner = [x for x in ranges[i + 1:i + 64] if x["depth"] > 0 and x["start"] >= r["start"]
                     and x["end"] <= r["end"] and x["name"] == "System RAM (virtio_mem)"]
            if inner:
                return r["start"] >> C.PAGE_SHIFT, (r["end"] + 1 - r["start"]) >> C.PAGE_SHIFT
    return None


def virtio_mem_block(capture: dict) -> int | None:
    """The device block size (bytes) a virtio-mem capture records (virtio_mem.json), or None."""
    block = (capture.get("virtio_mem") or {}).get("block_bytes")
    return int(block) if block else None


def open_source(source) -> tuple[dict, Path | None]:
    """A capture folder (its trace inside) or a lone trace / Parquet event table."""
    path = Path(source)
    if path.is_dir():
        capture = read_capture(path)
        if not capture.get("trace"):
            raise ReplayError(f"{path}: no trace.txt or trace.txt.gz in this capture folder")
        return capture, Path(capture["trace"])
    if not path.exists():
        raise ReplayError(f"{path}: no such file or folder")
    return {"path": str(path), "kernel": None, "kernel_version": None}, path


def in_span(events: Events, geo: "Geometry") -> np.ndarray:
    """Which events lie inside the replayed zones (their whole block)."""
    return ((events.pfn >= geo.span_start)
            & (events.pfn + (1 << np.clip(events.order, 0, 30)) <= geo.span_end))


def event_cpus(events: Events, sel: np.ndarray, nr_cpus: int) -> np.ndarray:
    """The CPU each event `sel` runs on in a node of nr_cpus CPUs (the trace's; CPUs beyond the
    node's run as its last; no CPU column: CPU 0)."""
    if events.cpu is None:
        return np.zeros(len(sel), np.int64)
    return np.minimum(events.cpu[sel], nr_cpus - 1)


class PolicyReplay:
    """The events `sel` (indices into `events`) replayed with the model's policy placing each
    allocation (R.replay_policy()), in runs of positions [first, last) of `sel`: a free of a page
    allocated earlier in `sel` frees where the model placed it (R.real_owners()), any other the
    kernel's pfn; each run on the trace's clock (the vmstat updates between its first and last
    event, vmstat_ticks())."""

    def __init__(self, node, events: Events, capture: dict, sel: np.ndarray, span_end: int):
        self.events, self.capture, self.sel = events, capture, sel
        self.k, self.p, self.o, self.m = events.kind[sel], events.pfn[sel], events.order[sel], events.mt[sel]
        self.a0 = events.aux0[sel]
        self.alloc_of = np.full(len(sel), -1, dtype=np.int64)
        self.offset_of = np.zeros(len(sel), dtype=np.int64)
        R.real_owners(self.k, self.p, self.o, span_end, self.alloc_of, self.offset_of,
                      np.zeros(span_end, dtype=np.int64), np.zeros(len(sel), dtype=np.int64))
        self.placed = np.full(len(sel), -1, dtype=np.int64)
        self.ts = events.ts[sel].astype(np.float64)
        self.ncpu = int(node[0].zp[C.ZP_NR_CPUS])
        self.cpu = event_cpus(events, sel, self.ncpu)

    def run(self, node, first: int, last: int, rs: np.ndarray, check_every: int = 0) -> tuple[int, int]:
        """-> (0, -1), or the first check error and the position of its event."""
        if first >= last:
            return 0, -1
        ticks, tick_cpu = vmstat_ticks(self.capture, self.events, float(self.ts[first]),
                                       float(self.ts[last - 1]), self.ncpu)
        return R.replay_policy(node, self.k, self.p, self.o, self.m, self.a0, self.cpu,
                               self.alloc_of, self.offset_of, self.placed, first, last, rs,
                               check_every, self.ts, ticks, np.minimum(tick_cpu, self.ncpu - 1))


class Interludes:
    """What the captured machine did between the kernel operations that probes stand for (the
    capture harness writing a phase's snapshot files, another task's allocations): before probe
    i, the allocations and frees of events ranges[i] = [first, last) that lie outside any
    compaction (its frees are the pages it migrated, which the probe migrates itself), replayed
    with the model's policy placing each allocation (PolicyReplay). A free of a page allocated
    before the first range is a free of the kernel's pfn; where that is not an allocated block of
    the model (a page the model's compaction moved elsewhere than the kernel's did) it is left
    out and counted."""

    def __init__(self, node, events: Events, capture: dict, geo: "Geometry",
                 ranges: dict[int, tuple[int, int]]):
        self.ranges = ranges
        lo = min(a for a, _ in ranges.values())
        hi = max(b for _, b in ranges.values())
        k = events.kind[lo:hi]
        own = (events.flags[lo:hi] & EVF_COMPACTING) == 0 if events.flags is not None else True
        keep = ((k == R.EV_ALLOC) | (k == R.EV_FREE)) & in_span(events, geo)[lo:hi] & own
        self.policy = PolicyReplay(node, events, capture, np.arange(lo, hi)[keep], geo.span_end)
        self.rs = np.zeros(R.RS_SIZE, dtype=np.int64)

    def run(self, i: int, node) -> None:
        if i not in self.ranges:
            return
        sel = self.policy.sel
        a, b = self.ranges[i]
        code, at = self.policy.run(node, int(np.searchsorted(sel, a)), int(np.searchsorted(sel, b)),
                                   self.rs)
        if code:
            raise ReplayError(f"the model's invariants broke at event {int(sel[at])} between "
                              f"the probes: {ERRORS[code]}")

    def summary(self) -> dict[str, int]:
        return {"allocs": int(self.rs[R.RS_ALLOCS]), "alloc_failed": int(self.rs[R.RS_ALLOC_FAILED]),
                "frees": int(np.count_nonzero(self.policy.k == R.EV_FREE)),
                "frees_left_out": int(self.rs[R.RS_FREE_NOT_USED] + self.rs[R.RS_FREE_SKIPPED])}


def replay(source, mode: str = "pinned", until: str | None = None, until_ts: float | None = None,
           probes: list[str] | tuple = (), max_order: int | None = None,
           pageblock_order: int | None = None, policy: str | None = None, check_every: int = 0,
           events: Events | None = None, capture: dict | None = None,
           node_out: list | None = None, map_out: list | None = None,
           interludes: dict[int, tuple[int, int]] | None = None,
           background: bool = False, clock=None) -> dict[str, Any]:
    """Replay a capture folder or trace (see `farm replay`); returns the JSON-ready result.
    max_order and pageblock_order default to the capture's own (resolve_geometry()). `node_out`
    gets the node at the end, `map_out` its zone map (zonemap.model_zone_map()) before the probes.
    `interludes` {probe index: (first, last) event index}: the trace's own activity replayed
    before that probe (Interludes). With `background`, kswapd and kcompactd run during the probes
    as the kernel's do after the trace's end (during the replay the trace holds what they did),
    with compaction_proactiveness at the kernel's default. `clock(probe, n, node)`: called before
    the n-th allocation of a hugepages probe (see validate.PoolClock)."""
    if mode not in MODES:
        raise ReplayError(f"--mode {mode}: modes are {', '.join(MODES)}")
    if capture is None:
        capture, trace_path = open_source(source)
    else:
        trace_path = Path(capture["trace"]) if capture.get("trace") else None
    if events is None:
        events = load_events(trace_path, zones=zone_starts(capture))
    geometry = resolve_geometry(capture, max_order, pageblock_order)
    max_order, pageblock_order = geometry["max_order"], geometry["pageblock_order"]
    policy = policy or policy_for_kernel(capture.get("kernel_version"))
    if policy not in C.POLICIES:
        raise ReplayError(f"--policy {policy}: policies are {', '.join(C.POLICIES)}")
    if not 1 <= pageblock_order <= max_order:
        raise ReplayError(f"--pageblock-order {pageblock_order} must be in 1..max_order ({max_order})")
    stop = stop_index(events, until, until_ts)
    hygiene = policy_behaviour(policy)[1] == C.MERGE_HYGIENE
    t0 = time.perf_counter()
    state = initial_state(capture, events, max_order, pageblock_order, hygiene)
    node = build_replay_node(state, max_order, pageblock_order, policy, nr_cpus=state.geometry.nr_cpus)
    if mode == "policy":
        for z, g in zip(node, state.geometry.replayed()):
            here = (events.pfn >= g.zone_start) & (events.pfn < g.zone_end)
            for c in range(int(z.zp[C.ZP_NR_CPUS])):
                P.pcp_switch_cpu(z, c)
                z.zp[C.ZP_PCP_ALLOC_FACTOR] = initial_alloc_factor(events, int(z.zp[C.ZP_PCP_BATCH]), c,
                                                                   here)
            P.pcp_switch_cpu(z, 0)
    t_init = time.perf_counter() - t0
    geo = state.geometry
    out: dict[str, Any] = {
        "capture": capture.get("path"), "kernel": capture.get("kernel"), "policy": policy,
        "mode": mode, "max_order": max_order, "pageblock_order": pageblock_order,
        "geometry_from": geometry["from"],
        "zone": {"name": geo.zone, "start_pfn": geo.zone_start, "end_pfn": geo.zone_end},
        "zones": [{"name": g.zone, "start_pfn": g.zone_start, "end_pfn": g.zone_end} for g in geo.replayed()],
        "until": until, "until_ts": until_ts, "events": {"total": len(events), "replayed": stop},
        "initial_state": {"source": state.source, "notes": state.notes,
                          "pcp_pages": int(sum(1 << int(o) for o in state.pcp_order)),
                          "pcp_pages_real": geo.pcp_count,
                          "pcp_untraced": int(sum(int(z.zp[C.ZP_PCPS + c * C.PCPS_SLOTS + C.PCPS_UNTRACED])
                                                  for z in node for c in range(int(z.zp[C.ZP_NR_CPUS]))))},
    }
    start_fig = zone_figures(node, geo, state.absent_blocks)
    cmp0 = _compare(capture, geo.zone, "before", start_fig)
    if cmp0:
        out["initial_state"]["before"] = cmp0
        types0 = _compare_types(capture, "before", geo, node)
        if types0:
            cmp0["pageblock_types"] = types0
    rs = np.zeros(R.RS_SIZE, dtype=np.int64)
    # inside the replayed zones only
    sel = np.nonzero(in_span(events, geo)[:stop])[0]
    k, p, o, m = events.kind[sel], events.pfn[sel], events.order[sel], events.mt[sel]
    a0, a1 = events.aux0[sel], events.aux1[sel]
    t0 = time.perf_counter()
    if mode == "pinned":
        cpu = event_cpus(events, sel, int(node[0].zp[C.ZP_NR_CPUS]))
        code, at = R.replay_pinned(node, k, p, o, m, a0, a1, cpu, 0, len(sel), rs, check_every)
    else:
        code, at = PolicyReplay(node, events, capture, sel, geo.span_end).run(node, 0, len(sel), rs,
                                                                             check_every)
    wall = time.perf_counter() - t0
    if code:
        raise ReplayError(f"the model's invariants broke at event {int(sel[at])} "
                          f"({R.EVENT_KIND_NAMES[int(k[at])]} pfn {int(p[at])}): {ERRORS[code]}")
    if check_every:
        check_zone(node)
    out["events"]["outside_zone"] = int(stop - len(sel))
    out["replay"] = {name: int(rs[i]) for i, name in enumerate(R.RS_NAMES)}
    if mode == "policy" and rs[R.RS_ALLOCS]:
        out["replay"]["placement_agreement"] = float(rs[R.RS_SAME_PFN] / rs[R.RS_ALLOCS])
    out["timing"] = {"initial_state_s": t_init, "replay_s": wall,
                     "events_per_s": len(sel) / wall if wall > 0 else None}
    fig = zone_figures(node, geo, state.absent_blocks)
    out["state"] = fig
    phase = _phase_of(until)
    if phase:
        cmp = _compare(capture, geo.zone, phase, fig)
        if cmp:
            out["versus_" + phase] = cmp
            types = _compare_types(capture, phase, geo, node)
            if types:
                cmp["pageblock_types"] = types
    if map_out is not None:
        from .zonemap import model_zone_map
        map_out.append(model_zone_map(node, main_zone_index(node, geo)))   # before any probe
    if probes:
        from ..cell.probes import run_probes
        cc = np.zeros(C.CC_SIZE, dtype=np.int64)
        t0 = time.perf_counter()
        between = Interludes(node, events, capture, geo, interludes) if interludes else None
        if background:
            node[0].zp[C.ZP_KSWAPD] = node[0].zp[C.ZP_KCOMPACTD] = 1
            # vm.compaction_proactiveness's default; the checks come from `clock` (no
            # simulated timer: ZP_PROACTIVE_INTERVAL stays 0)
            node[0].zp[C.ZP_PROACTIVENESS] = KERNEL_COMPACTION_PROACTIVENESS
        out["probes"] = run_probes(node, list(probes), {"max_order": max_order,
                                                        "pageblock_order": pageblock_order,
                                                        "virtio_mem_region": virtio_mem_region(capture),
                                                        "virtio_mem_block": virtio_mem_block(capture)},
                                   cc, np.zeros(1, dtype=np.int64),
                                   between=between.run if between else None, clock=clock)
        if between:
            out["interludes"] = between.summary()
        out["timing"]["probes_s"] = time.perf_counter() - t0
    if node_out is not None:
        node_out.append(node)
    return out
