"""The page of `farm validate --report OUT`: per capture, the kernel's zone and the model's side by
side at phase=mid (zone maps), the buddyinfo and pageblock-type comparisons, and the huge page
outcomes; an index page lists every capture with its headline figures."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from .figures import FigureSpec, draw_zone_maps
from .render import Bullets, Document, Section, Table, write


def _pct(x) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def _n(x) -> str:
    return "-" if x is None else str(x)


def stem_of(capture: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", capture).strip("-") or "capture"


def zone_map_frame(v: dict[str, Any]) -> pd.DataFrame | None:
    """The tidy frame of the zone maps of one validation result (None without maps)."""
    maps = v.get("zone_map_mid")
    if not maps:
        return None
    frames = []
    for side, label in (("kernel", f"Linux {v['kernel']} (kpageflags.mid)"),
                        ("model", f"model, policy {v['policy']}")):
        if maps.get(side):
            f = pd.DataFrame(maps[side])
            f.insert(0, "side", label)
            frames.append(f)
    return pd.concat(frames, ignore_index=True) if frames else None


def capture_document(v: dict[str, Any]) -> Document:
    """The document of one capture's validation."""
    title = (f"{v['capture']}: Linux {v['kernel']} against the model (policy {v['policy']}, max_order "
             f"{v['max_order']}, pageblock_order {v['pageblock_order']})")
    intro: list = []
    if v.get("buddyinfo_mid_l1") is not None:
        intro.append(f"Replayed pinned to `phase=mid`: buddyinfo L1 error {_pct(v['buddyinfo_mid_l1'])}, "
                     f"nr_free_pages error {_pct(v['nr_free_mid_err'])}.")
    if v.get("placement_agreement") is not None:
        intro.append(f"Replayed by the model's policy: {_pct(v['placement_agreement'])} of allocations at the "
                     f"kernel's pfn (buddyinfo L1 error {_pct(v.get('policy_buddyinfo_mid_l1'))}).")
    sections = []
    frame = zone_map_frame(v)
    if frame is not None:
        zone = v["zone_map_mid"]["zone"]
        sections.append(Section("The zone at phase=mid", [
            FigureSpec("zone-map", f"Zone {zone} at phase=mid, one cell per pageblock",
                       f"Zone {zone} at `phase=mid`, one cell per pageblock, left to right and top to bottom. "
                       "The model's cells are coloured by pageblock migratetype; the kernel's by what most of "
                       "the block's allocated pages are according to kpageflags (a capture records no "
                       "pageblock types), in the hue of the matching migratetype; pages on per-cpu lists (in 6.12 they "
                       "include whole THP-order blocks) are neither buddy nor LRU pages in kpageflags and count as "
                       "kernel pages there. The lighter a cell, the more of its pages are free (in the buddy "
                       "allocator); black cells are holes; a red frame marks an isolated block.",
                       frame, draw_zone_maps)]))
    if v.get("buddyinfo_mid"):
        real, model = v["buddyinfo_mid"]["real"], v["buddyinfo_mid"]["model"]
        n = max(len(real), len(model))
        rows = [[str(o), str(real[o] if o < len(real) else 0), str(model[o] if o < len(model) else 0)]
                for o in range(n)]
        sections.append(Section("Free blocks per order at phase=mid (buddyinfo)", [
            Table(["order", "kernel", "model"], rows)]))
    if v.get("blocks_mid"):
        b = v["blocks_mid"]
        names = list(dict.fromkeys(list(b["real"]) + list(b["model"])))
        sections.append(Section("Pageblocks by migratetype at phase=mid (pagetypeinfo)", [
            Table(["migratetype", "kernel", "model"],
                  [[n, str(b["real"].get(n, 0)), str(b["model"].get(n, 0))] for n in names])]))
    huge = [[label, _n(h["asked"]), _n(h["real"]), _n(h["model"])]
            for label, h in (("2 MiB", v["hugepages_2m"]), ("1 GiB", v["hugepages_1g"])) if h["asked"]]
    if huge:
        sections.append(Section("Huge pages after compaction", [
            "Asked of the kernel after the compacted snapshot, and of the model after its own compaction "
            "of the replayed state.",
            Table(["size", "asked", "kernel got", "model got"], huge)]))
    if v.get("skipped"):
        sections.append(Section("Not compared", [Bullets(list(v["skipped"]))]))
    return Document(title, intro, sections)


def write_validation_report(results: list[dict[str, Any]], out_dir: str | Path) -> Path:
    """OUT/<capture>.html and .md per capture, and OUT/index.html and .md; -> the index."""
    out = Path(out_dir)
    rows = []
    for v in results:
        stem = stem_of(v["capture"])
        write(capture_document(v), out, stem)
        rows.append([f"[{v['capture']}]({stem}.html)", str(v["kernel"]), v["policy"],
                     f"{v['max_order']} / {v['pageblock_order']}", _pct(v.get("buddyinfo_mid_l1")),
                     _pct(v.get("nr_free_mid_err")),
                     " / ".join(_n(x) for x in (v["hugepages_2m"]["real"], v["hugepages_2m"]["model"]))
                     if v["hugepages_2m"]["asked"] else "-",
                     _pct(v.get("placement_agreement"))])
    doc = Document("The model against real kernels (farm validate)", [
        "One line per capture; each links to its page."],
        [Section("Captures", [Table(["capture", "kernel", "policy", "max_order / pageblock_order",
                                      "buddyinfo L1 at mid", "nr_free_pages", "2 MiB pages: kernel / model",
                                      "policy replay: allocations at the kernel's pfn"], rows)])])
    html, _ = write(doc, out, "index")
    return html
