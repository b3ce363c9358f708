"""Judge the model against what a real kernel did: per capture folder, the figures `farm validate`
prints (a pinned replay to phase=mid against the mid snapshots, then the kernel's own huge page
requests, and the placement agreement of the model's policy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from kernels import constants as C
from kernels import replay as R
from kernels.compaction import background
from kernels.page_alloc import decay_pcp_high, pcp_switch_cpu, refresh_vm_stats

from .replay import (EVF_COMPACTING, EVF_RETRY_MAYFAIL, ReplayError, load_events, marker_index, open_source,
                     policy_for_kernel, replay, virtio_mem_region, zone_starts)
from .zonemap import kernel_zone_map

VALIDATE_PHASE = "mid"


def validate(folder, with_policy: bool = True, zone_maps: bool = False) -> dict[str, Any]:
    """The judgement of one capture folder (`farm validate`): pinned replay to phase=mid against
    the mid snapshots, then the kernel's own sequence after it (compact, hugepages with the
    asked count, gigantic pages) against what the kernel obtained; with `with_policy`, the
    placement agreement of the model's policy on the same sequence. With `zone_maps`, the result
    also holds 'zone_map_mid': the kernel's map (from kpageflags.mid; None without it) and the
    model's (farm/real/zonemap.py)."""
    capture, trace_path = open_source(folder)
    if not Path(folder).is_dir():
        raise ReplayError(f"{folder}: farm validate takes capture folders (laid out like ../shared/data/*)")
    # a line the parser cannot read is counted and reported, not fatal to the capture
    events = load_events(trace_path, lenient=True, zones=zone_starts(capture))
    policy = policy_for_kernel(capture.get("kernel_version"))
    skipped: list[str] = []
    parse = events.parse
    if parse.get("malformed"):
        first = parse["malformed_examples"][0]
        skipped.append(f"{parse['malformed']} trace lines could not be read and were left out "
                       f"(first: line {first['line']}: {first['message']})")
    has_mid = marker_index(events, VALIDATE_PHASE) is not None
    until = f"phase={VALIDATE_PHASE}" if has_mid else None
    if not has_mid:
        skipped.append(f"no phase={VALIDATE_PHASE} marker in the trace: buddyinfo_mid_l1, "
                       "nr_free_mid_err, blocks_mid and the huge page predictions need the state at "
                       "that point")
    if not (capture.get("pageblocktypes") or {}).get("before"):
        why = capture.get("pageblocktypes_err")
        skipped.append("no pageblocktypes.before: the initial pageblock types are inferred from the trace"
                       + (f" ({why})" if why else ""))
    if (capture.get("kpageflags") or {}).get("before") is None:
        skipped.append("no kpageflags.before: the initial state is synthesised from "
                       "buddyinfo.before and pagetypeinfo.before")
    probes = []
    released = None
    asked_2m, asked_1g = capture.get("hugepages_2m_asked"), capture.get("hugepages_1g_asked")
    vm = capture.get("virtio_mem")
    if has_mid and vm:
        # after mid a virtio-mem capture's kernel did one thing: the unplug
        if virtio_mem_asked(vm) > 0:
            probes.append(f"virtio-mem:unplug={virtio_mem_asked(vm)},isolation=pageblock")
    elif has_mid:
        probes.append("compact")
        if asked_2m:
            released = pool_released(events, capture.get("hugepages_2m"))
            probes.append(f"hugepages:order=9,count={asked_2m}" + (",release=1" if released else ""))
        if asked_1g:
            probes.append(f"gigantic:count={asked_1g},size=1G")
    maps: list = []
    ranges = interludes(events, probes)
    clock = PoolClock(events, probes, ranges)
    r = replay(folder, "pinned", until=until, probes=probes, policy=policy, events=events,
               capture=capture, map_out=maps, interludes=ranges, background=True,
               clock=clock if clock.steps else None)
    mid = r.get(f"versus_{VALIDATE_PHASE}")
    if has_mid and mid is None:
        skipped.append(f"no buddyinfo.{VALIDATE_PHASE}: nothing to compare the replayed state with")
    got = {p["kind"]: p["obtained"] for p in r.get("probes", [])}
    out = {
        "capture": Path(folder).name, "kernel": capture.get("kernel"), "policy": policy,
        "max_order": r["max_order"], "pageblock_order": r["pageblock_order"],
        "geometry_from": r["geometry_from"],
        "buddyinfo_mid_l1": mid["buddyinfo_l1"] if mid else None,
        "nr_free_mid_err": mid["nr_free_err"] if mid else None,
        "blocks_mid": mid.get("blocks") if mid else None,
        "pageblock_types_mid": mid.get("pageblock_types") if mid else None,
        "hugepages_2m": {"asked": asked_2m, "real": capture.get("hugepages_2m"),
                         "model": got.get("hugepages"), "released_before_1g": released},
        "hugepages_1g": {"asked": asked_1g, "real": capture.get("hugepages_1g"),
                         "model": got.get("gigantic")},
        "buddyinfo_mid": mid["buddyinfo"] if mid else None,
        "nr_free_mid": mid["nr_free_pages"] if mid else None,
        "trace_malformed": parse.get("malformed", 0),
        "trace_malformed_examples": parse.get("malformed_examples", []),
        "untraced_pcp_allocs": parse.get("untraced_pcp_allocs", 0),
        "initial_state": r["initial_state"],
        "replay": r["replay"],
        "between_probes": r.get("interludes"),
        "events_per_s": r["timing"]["events_per_s"],
    }
    for key in ("hugepages_2m", "hugepages_1g"):
        if out[key]["asked"] and out[key]["real"] is None:
            skipped.append(f"{key}: the capture does not say how many the kernel obtained")
    if with_policy:
        pol = replay(folder, "policy", until=until, policy=policy, events=events, capture=capture)
        out["placement_agreement"] = pol["replay"].get("placement_agreement")
        pmid = pol.get(f"versus_{VALIDATE_PHASE}")
        out["policy_buddyinfo_mid_l1"] = pmid["buddyinfo_l1"] if pmid else None
    if zone_maps:
        kpf = (capture.get("kpageflags") or {}).get(VALIDATE_PHASE) if has_mid else None
        zone = r["zone"]
        out["zone_map_mid"] = {
            "zone": zone["name"],
            "kernel": kernel_zone_map(kpf, zone["start_pfn"], zone["end_pfn"], r["pageblock_order"],
                                      ((capture.get("pageblocktypes") or {}).get(VALIDATE_PHASE) or {})
                                      .get("zones", {}).get(zone["name"]))
            if kpf is not None else None,
            "model": maps[0]}
        if kpf is None:
            skipped.append(f"zone map: no kpageflags.{VALIDATE_PHASE}, the kernel's side is not drawn")
    if vm is not None:
        out["virtio_mem"] = virtio_mem_prediction(folder, vm, r, has_mid, policy, events, capture, skipped)
    out["skipped"] = skipped
    return out


def virtio_mem_asked(vm: dict) -> int:
    """Bytes the host of a virtio-mem capture asked back after mid."""
    return int(vm["size_before"]) - int(vm["requested"])


def virtio_mem_prediction(folder, vm: dict, r: dict, has_mid: bool, policy: str, events, capture,
                          skipped: list[str]) -> dict:
    """The kernel's unplug after mid against the model's, replayed to mid, under each isolation
    regime (pageblock: the driver and alloc_contig_range() of 5.19+, the probe of the main replay
    `r`; maxorder: before, a replay of its own): bytes unplugged, the kernel's being size_before -
    size_after."""
    asked = virtio_mem_asked(vm)
    out = {"asked": asked, "real": int(vm["size_before"]) - int(vm["size_after"]), "online": vm.get("online"),
           "model": None, "model_maxorder": None}
    if not has_mid or asked <= 0:
        skipped.append("virtio-mem: no phase=mid or nothing asked: no unplug to predict")
        return out
    pre = replay(folder, "pinned", until=f"phase={VALIDATE_PHASE}", policy=policy, events=events,
                 capture=capture, probes=[f"virtio-mem:unplug={asked},isolation=maxorder"])
    for key, got in (("model", r["probes"][0]), ("model_maxorder", pre["probes"][0])):
        out[key] = got["obtained"]
        out[key + "_reasons"] = got["failure_reasons"]
        out[key + "_blocks_left"] = got["blocks_left"]
    out["blocks_left"] = kernel_blocks_left(folder, capture)
    return out


def kernel_blocks_left(folder, capture: dict) -> list[int] | None:
    """The device's memory blocks (memoryN) the kernel still had after the unplug, from
    memory_blocks.unplugged, or None without it (or without the device's region in iomem)."""
    folder = Path(folder)
    region = virtio_mem_region(capture)
    try:
        size = int((folder / "memory_block_size_bytes").read_text().strip(), 16) >> C.PAGE_SHIFT
        lines = (folder / "memory_blocks.unplugged").read_text().splitlines()
    except (OSError, ValueError):
        return None
    if region is None or size <= 0:
        return None
    start, pages = region
    ids = (int(line.split()[0][len("memory"):]) for line in lines if line.startswith("memory"))
    return sorted(n for n in ids if start <= n * size < start + pages)


def hugepages_probe(probes: list[str]) -> int | None:
    """The index of the hugepages probe among `probes` (the pool the kernel grew), or None."""
    return next((i for i, spec in enumerate(probes) if spec.startswith("hugepages")), None)


def interludes(events, probes: list[str]) -> dict[int, tuple[int, int]]:
    """What the captured machine did around the kernel's own requests, replayed before the probe
    that stands for each (Interludes), in the order the kernel saw it: from `mid` to the end of
    compact_memory's compaction before `compact` (the mid snapshot's files; the compaction's own
    frees are left out), and from there to the first __GFP_RETRY_MAYFAIL allocation (the pool's
    first page) before `hugepages` (the compacted snapshot: its process starts after
    compact_memory returns and reads its files before the `compacted` marker). The end of the
    compaction is its last free inside a compaction window (EVF_COMPACTING) before `compacted`;
    without one, `compacted`."""
    mid, compacted = marker_index(events, VALIDATE_PHASE), marker_index(events, "compacted")
    if mid is None or compacted is None or compacted < mid:
        return {}
    out = {}
    split = compacted
    if probes and probes[0] == "compact":
        if events.flags is not None:
            inside = np.flatnonzero(events.flags[mid:compacted] & EVF_COMPACTING)
            if len(inside):
                split = mid + int(inside[-1]) + 1
        out[0] = (mid, split)
    hp = hugepages_probe(probes)
    if hp is not None and events.flags is not None:
        done = marker_index(events, "hugepages-2m-done")
        pool = (events.flags[compacted:] & EVF_RETRY_MAYFAIL).nonzero()[0]
        first = compacted + int(pool[0]) if len(pool) else (done if done is not None else compacted)
        out[hp] = (split, first)
    return out


class PoolClock:
    """The kernel's timers while its hugetlb pool grew, on the trace's clock, for the hugepages
    probe: before the model's n-th pool allocation, what the trace shows before the kernel's
    n-th (its allocations with __GFP_RETRY_MAYFAIL from the probe's interlude on, up to the
    hugepages-2m-done marker) and the model has not run yet: each CPU's vmstat update
    (decay_pcp_high() and the fold of its vmstat diff, on that CPU) and kcompactd's timer
    (kcompactd_timer_times(): should_proactive_compact_node(), proactive compaction). The
    allocation then runs on the CPU that made the kernel's n-th (the last one's beyond them).
    On a slow machine the pool takes seconds and these decide what it gets: on a 2560 MiB
    fragmenter captured under TCG, kcompactd's proactive compaction migrated 5875 pages while
    the pool grew."""

    def __init__(self, events, probes: list[str], ranges: dict[int, tuple[int, int]]):
        self.steps: list[tuple[int, int, int]] = []     # (before allocation n, kind, cpu)
        self.cpus = np.zeros(0, np.int64)
        self.probe = hugepages_probe(probes)
        if self.probe is None or self.probe not in ranges or events.flags is None:
            return
        first = ranges[self.probe][1]
        done = marker_index(events, "hugepages-2m-done")
        end = done if done is not None else len(events)
        pool = first + np.flatnonzero(events.flags[first:end] & EVF_RETRY_MAYFAIL)
        pool = pool[events.kind[pool] == R.EV_ALLOC]
        if not len(pool):
            return
        ts = events.ts[pool]
        t0, t1 = float(ts[0]), float(events.ts[end - 1]) if end > first else float(ts[-1])
        self.cpus = events.cpu[pool] if events.cpu is not None else np.zeros(len(pool), np.int64)
        timed = []
        if events.vmstat_updates is not None:
            for t, c in zip(events.vmstat_updates, events.vmstat_updates_cpu):
                if t0 <= t <= t1:
                    timed.append((float(t), self.VMSTAT, int(c)))
        if events.kcompactd_timer is not None:
            timed += [(float(t), self.KCOMPACTD, -1) for t in events.kcompactd_timer if t0 <= t <= t1]
        timed.sort()
        self.steps = [(int(np.searchsorted(ts, t, side="left")), kind, c) for t, kind, c in timed]
        self.next = 0

    VMSTAT, KCOMPACTD = 0, 1

    def __call__(self, probe: int, n: int, node) -> None:
        if probe != self.probe:
            return
        cpu = int(self.cpus[min(n, len(self.cpus) - 1)]) if len(self.cpus) else 0
        while self.next < len(self.steps) and self.steps[self.next][0] <= n:
            _, kind, c = self.steps[self.next]
            self.next += 1
            if kind == self.VMSTAT:
                for z in node:
                    if c < int(z.zp[C.ZP_NR_CPUS]):
                        pcp_switch_cpu(z, c)
                        decay_pcp_high(z)
                        refresh_vm_stats(z)
            else:
                node[0].zp[C.ZP_BG_PENDING] |= C.BG_PROACTIVE
                background(node)
        for z in node:
            pcp_switch_cpu(z, min(cpu, int(z.zp[C.ZP_NR_CPUS]) - 1))


def pool_released(events, obtained: int | None) -> bool:
    """Whether the kernel freed its 2 MiB hugetlb pool before it was asked for 1 GiB pages, as the
    trace shows it: at least as many order-9 mm_page_free events between the markers
    hugepages-2m-done and hugepages-1g-done as pages obtained (farm capture frees the pool; the
    shared captures kept it)."""
    if not obtained:
        return False
    start, end = marker_index(events, "hugepages-2m-done"), marker_index(events, "hugepages-1g-done")
    if start is None or end is None:
        return False
    sel = slice(start, end)
    frees = (events.kind[sel] == R.EV_FREE) & (events.order[sel] == 9)
    return int(frees.sum()) >= obtained


def format_validation(v: dict) -> str:
    def pct(x):
        return "-" if x is None else f"{100 * x:.2f}%"

    lines = [f"{v['capture']}: Linux {v['kernel']}, policy {v['policy']}, max_order {v['max_order']}, "
             f"pageblock_order {v['pageblock_order']}"]
    if v["buddyinfo_mid_l1"] is not None:
        lines.append(f"  pinned replay to phase=mid: buddyinfo L1 error {pct(v['buddyinfo_mid_l1'])}, "
                     f"nr_free_pages error {pct(v['nr_free_mid_err'])} "
                     f"(model {v['nr_free_mid']['model']}, real {v['nr_free_mid']['real']})")
        lines.append(f"    buddyinfo real  {' '.join(f'{x:5d}' for x in v['buddyinfo_mid']['real'])}")
        lines.append(f"    buddyinfo model {' '.join(f'{x:5d}' for x in v['buddyinfo_mid']['model'])}")
    if v["blocks_mid"]:
        b = v["blocks_mid"]
        names = [n for n in C.MIGRATETYPE_NAMES if n in b["real"] or n in b["model"]]
        lines.append("    pageblocks " + ", ".join(f"{n} {b['model'].get(n, 0)} (real {b['real'].get(n, 0)})"
                                                   for n in names))
    if v.get("pageblock_types_mid"):
        t = v["pageblock_types_mid"]
        lines.append(f"    pageblock types: {t['agree']} of {t['blocks']} as the kernel's"
                     + (f" (first differing: " + ", ".join(f"pfn {d['pfn']} {d['model']} (real {d['real']})"
                                                          for d in t["differ"][:3]) + ")" if t["differ"] else ""))
    for key, label in (("hugepages_2m", "2 MiB"), ("hugepages_1g", "1 GiB")):
        h = v[key]
        if h["asked"]:
            lines.append(f"  {label} huge pages: asked {h['asked']}, kernel got {h['real']}, model got {h['model']}")
    if v.get("virtio_mem"):
        m = v["virtio_mem"]
        mib = (lambda b: "-" if b is None else f"{b / 2 ** 20:.0f} MiB")
        lines.append(f"  virtio-mem unplug ({m['online']}): asked {mib(m['asked'])}, kernel gave back "
                     f"{mib(m['real'])}, model {mib(m['model'])} (before 5.19: {mib(m['model_maxorder'])})")
        if m.get("blocks_left") is not None and m.get("model_blocks_left") is not None:
            k, mb = set(m["blocks_left"]), set(m["model_blocks_left"])
            lines.append(f"    memory blocks left: kernel {len(k)}, model {len(mb)}, {len(k & mb)} in both")
    if v.get("placement_agreement") is not None:
        lines.append(f"  policy replay: {pct(v['placement_agreement'])} of allocations at the kernel's pfn, "
                     f"buddyinfo L1 error {pct(v['policy_buddyinfo_mid_l1'])}")
    for s in v["skipped"]:
        lines.append(f"  skipped: {s}")
    return "\n".join(lines)
