"""Readers of a real-kernel capture folder: the /proc snapshots taken around a trace.

Each reader takes one file as the kernel prints it (mm/vmstat.c for buddyinfo, pagetypeinfo,
zoneinfo and vmstat; fs/proc/meminfo.c; fs/proc/page.c for kpageflags; the capture's module for
pageblocktypes) and returns plain Python
values. Zones are keyed by name; on a machine with several NUMA nodes the zones of node N > 0 are
keyed `nodeN/NAME`. A line a reader cannot read raises `CaptureError` naming the file and line.

`read_capture(folder)` gathers everything a folder holds: the snapshots of each phase (`before`,
`mid`, `compacted`, `after`), the kernel release from `uname`, the hugetlb counts, trace_stats, the
physical memory map (iomem) and the path of the trace.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import numpy as np

__all__ = ["CaptureError", "KPF_BITS", "PHASES", "read_buddyinfo", "read_pagetypeinfo", "read_zoneinfo",
           "read_vmstat", "read_meminfo", "read_kpageflags", "read_pageblocktypes", "read_iomem", "read_virtio_mem", "parse_config", "read_config", "read_capture"]

#: Snapshot phases, in the order they are taken.
PHASES = ("before", "mid", "compacted", "after")

# /proc/kpageflags bits: include/uapi/linux/kernel-page-flags.h (stable), then the kernel-internal
# ones of include/linux/kernel-page-flags.h that fs/proc/page.c also exports.
KPF_LOCKED = 0
KPF_ERROR = 1
KPF_REFERENCED = 2
KPF_UPTODATE = 3
KPF_DIRTY = 4
KPF_LRU = 5
KPF_ACTIVE = 6
KPF_SLAB = 7
KPF_WRITEBACK = 8
KPF_RECLAIM = 9
KPF_BUDDY = 10
KPF_MMAP = 11
KPF_ANON = 12
KPF_SWAPCACHE = 13
KPF_SWAPBACKED = 14
KPF_COMPOUND_HEAD = 15
KPF_COMPOUND_TAIL = 16
KPF_HUGE = 17
KPF_UNEVICTABLE = 18
KPF_HWPOISON = 19
KPF_NOPAGE = 20
KPF_KSM = 21
KPF_THP = 22
KPF_OFFLINE = 23            # KPF_BALLOON before 4.20
KPF_ZERO_PAGE = 24
KPF_IDLE = 25
KPF_PGTABLE = 26
KPF_RESERVED = 32
KPF_MLOCKED = 33
KPF_MAPPEDTODISK = 34       # KPF_OWNER_2 in later kernels
KPF_PRIVATE = 35
KPF_PRIVATE_2 = 36
KPF_OWNER_PRIVATE = 37
KPF_ARCH = 38
KPF_UNCACHED = 39
KPF_SOFTDIRTY = 40
KPF_ARCH_2 = 41

#: Every KPF_* bit by its name without the prefix: {"BUDDY": 10, ...}.
KPF_BITS = {name[4:]: value for name, value in globals().items() if name.startswith("KPF_")}
__all__ += [f"KPF_{name}" for name in KPF_BITS]


class CaptureError(ValueError):
    """A capture file that cannot be read: `path`, the 1-based `line` (None for the whole file)."""

    def __init__(self, path, line: int | None, message: str):
        self.path, self.line, self.message = str(path), line, message
        super().__init__(f"{path}:{line}: {message}" if line is not None else f"{path}: {message}")


def _lines(path):
    try:
        return Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise CaptureError(path, None, f"cannot read: {getattr(e, 'strerror', None) or e}") from None


def _zone_key(node: int, zone: str) -> str:
    return zone if node == 0 else f"node{node}/{zone}"


def _ints(path, number, fields):
    try:
        return [int(x) for x in fields]
    except ValueError:
        raise CaptureError(path, number, f"expected numbers, got {' '.join(fields)!r}") from None


_BUDDY = re.compile(r"Node\s+(\d+),\s+zone\s+(\S+)\s+(.*)")


def read_buddyinfo(path) -> dict[str, list[int]]:
    """/proc/buddyinfo: free blocks per order, per zone."""
    out = {}
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        m = _BUDDY.fullmatch(line.strip())
        if m is None:
            raise CaptureError(path, number, f"not a buddyinfo line: {line!r}")
        out[_zone_key(int(m[1]), m[2])] = _ints(path, number, m[3].split())
    return out


_PT_FREE = re.compile(r"Node\s+(\d+),\s+zone\s+(\S+),\s+type\s+(\S+)\s+(.*)")
_PT_BLOCKS = re.compile(r"Node\s+(\d+),\s+zone\s+(\S+)\s+(.*)")


def read_pagetypeinfo(path) -> dict:
    """/proc/pagetypeinfo: {'pageblock_order', 'pages_per_block', 'free': {zone: {type: [blocks per
    order]}}, 'blocks': {zone: {type: pageblocks}}}, and 'mixed_blocks' when the kernel prints them
    (CONFIG_PAGE_OWNER). A count the kernel caps (`>100000`, since 5.4) reads as the cap and is
    listed in 'capped' as (zone, type, order)."""
    out: dict = {"pageblock_order": None, "pages_per_block": None, "free": {}, "blocks": {}, "capped": []}
    section, types = None, []
    for number, line in enumerate(_lines(path), 1):
        text = line.strip()
        if not text:
            continue
        if text.startswith("Page block order:"):
            out["pageblock_order"] = _ints(path, number, text.split(":")[1].split())[0]
        elif text.startswith("Pages per block:"):
            out["pages_per_block"] = _ints(path, number, text.split(":")[1].split())[0]
        elif text.startswith("Free pages count per migrate type"):
            section = "free"
        elif text.startswith("Number of blocks type"):
            section, types = "blocks", text.split()[4:]
        elif text.startswith("Number of mixed blocks"):
            section, types = "mixed_blocks", text.split()[5:]
            out.setdefault("mixed_blocks", {})
        elif section == "free" and (m := _PT_FREE.fullmatch(text)):
            zone, mtype = _zone_key(int(m[1]), m[2]), m[3]
            counts = []
            for order, x in enumerate(m[4].split()):
                if x.startswith(">"):
                    out["capped"].append((zone, mtype, order))
                    x = x[1:]
                counts.append(_ints(path, number, [x])[0])
            out["free"].setdefault(zone, {})[mtype] = counts
        elif section in ("blocks", "mixed_blocks") and (m := _PT_BLOCKS.fullmatch(text)):
            values = _ints(path, number, m[3].split())
            if len(values) != len(types):
                raise CaptureError(path, number, f"{len(values)} counts for {len(types)} types")
            out[section][_zone_key(int(m[1]), m[2])] = dict(zip(types, values))
        else:
            raise CaptureError(path, number, f"not a pagetypeinfo line: {line!r}")
    return out


_ZONE_HEAD = re.compile(r"Node\s+(\d+),\s+zone\s+(\S+)")
_ZONE_FIELDS = {"boost", "min", "low", "high", "promo", "spanned", "present", "managed", "cma"}


def read_zoneinfo(path) -> dict[str, dict]:
    """/proc/zoneinfo: per zone 'node', 'free' (pages free), the watermarks and sizes ('boost',
    'min', 'low', 'high', 'promo' (6.6+), 'spanned', 'present', 'managed', 'cma'), 'protection'
    (lowmem_reserve), 'start_pfn' (None for an empty zone), 'vm_stats_threshold',
    'node_unreclaimable', 'stats' (the zone's counters), 'pagesets' (per cpu: count, high, batch,
    ...), and 'per_node' (the node's counters, printed with its first zone)."""
    out: dict[str, dict] = {}
    zone = None
    section = None
    for number, line in enumerate(_lines(path), 1):
        text = line.strip()
        if not text:
            continue
        m = _ZONE_HEAD.fullmatch(text)
        if m:
            zone = out[_zone_key(int(m[1]), m[2])] = {
                "node": int(m[1]), "free": None, "start_pfn": None, "protection": [], "stats": {},
                "pagesets": []}
            section = None
            continue
        if zone is None:
            raise CaptureError(path, number, f"a line before the first zone: {line!r}")
        if text == "per-node stats":
            section = zone["per_node"] = {}
            continue
        if text == "pagesets":
            section = "pagesets"
            continue
        if text.startswith("protection:"):
            zone["protection"] = _ints(path, number, text.split(":", 1)[1].strip(" ()").replace(",", " ").split())
            continue
        if text.startswith("pages free"):
            zone["free"] = _ints(path, number, text.split()[2:3])[0]
            section = zone["stats"]
            continue
        if ":" in text:                           # "start_pfn:           1", "count: 0"
            key, _, value = text.partition(":")
        else:                                     # "min      68", "nr_free_pages 3712"
            key, _, value = text.rpartition(" ")
        key, value = key.strip(), value.strip()
        if not value:
            raise CaptureError(path, number, f"not a zoneinfo line: {line!r}")
        value = _ints(path, number, [value])[0]
        if section == "pagesets":
            if key == "cpu":
                zone["pagesets"].append({"cpu": value})
            elif key in ("vm stats threshold", "node_unreclaimable", "start_pfn"):
                zone[key.replace(" ", "_")] = value
            elif zone["pagesets"]:
                zone["pagesets"][-1][key] = value
            else:
                raise CaptureError(path, number, f"a pageset line before any cpu: {line!r}")
        elif key in _ZONE_FIELDS:
            zone[key] = value
        elif key in ("vm stats threshold", "node_unreclaimable", "start_pfn"):
            zone[key.replace(" ", "_")] = value
        elif isinstance(section, dict):
            section[key] = value
        else:
            raise CaptureError(path, number, f"not a zoneinfo line: {line!r}")
    return out


def _counters(path, sep=None) -> dict[str, int]:
    out = {}
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        parts = line.replace(":", " ").split() if sep == ":" else line.split()
        if len(parts) < 2:
            raise CaptureError(path, number, f"not a counter line: {line!r}")
        out[parts[0]] = _ints(path, number, parts[1:2])[0]
    return out


def read_vmstat(path) -> dict[str, int]:
    """/proc/vmstat: {counter: value}."""
    return _counters(path)


def read_meminfo(path) -> dict[str, int]:
    """/proc/meminfo: {field: value} (kB for the sizes, as printed; HugePages_* are counts)."""
    return _counters(path, ":")


def read_kpageflags(path) -> np.ndarray:
    """/proc/kpageflags (raw or gzip): the KPF_* bits of each pfn, as uint64 (index = pfn)."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise CaptureError(path, None, f"cannot read: {getattr(e, 'strerror', None) or e}") from None
    if len(raw) % 8:
        raise CaptureError(path, None, f"{len(raw)} bytes is not a whole number of 8-byte entries")
    return np.frombuffer(raw, "<u8").copy()


_PBT_HEAD = re.compile(r"#\s*pageblock_order\s+(\d+)\s+section_pfns\s+(\d+)\s*")


def read_pageblocktypes(path) -> dict:
    """/proc/pageblocktypes of the module farm capture loads (farm/real/module/pageblocktypes.c):
    {'pageblock_order', 'section_pfns', 'zones': {zone: {'pfn': int64 array (first pfn of each
    pageblock, ascending), 'type': list of migratetype names as /proc/pagetypeinfo spells them,
    'skip': bool array (PB_migrate_skip)}}}."""
    lines = _lines(path)
    m = _PBT_HEAD.fullmatch(lines[0]) if lines else None
    if m is None:
        raise CaptureError(path, 1, "expected '# pageblock_order N section_pfns N' first")
    rows: dict[str, tuple[list, list, list]] = {}
    for number, line in enumerate(lines[1:], 2):
        f = line.split()
        if not f:
            continue
        if len(f) != 5 or not (f[0].isdigit() and f[1].isdigit() and f[4] in ("0", "1")):
            raise CaptureError(path, number, f"expected 'pfn node zone type skip', got {line!r}")
        pfns, types, skips = rows.setdefault(_zone_key(int(f[1]), f[2]), ([], [], []))
        pfns.append(int(f[0]))
        types.append(f[3])
        skips.append(f[4] == "1")
    zones = {}
    for zone, (pfns, types, skips) in rows.items():
        order = np.argsort(np.array(pfns, dtype=np.int64), kind="stable")
        zones[zone] = {"pfn": np.array(pfns, dtype=np.int64)[order], "type": [types[i] for i in order],
                       "skip": np.array(skips, dtype=bool)[order]}
    return {"pageblock_order": int(m[1]), "section_pfns": int(m[2]), "zones": zones}


def read_iomem(path) -> list[dict]:
    """/proc/iomem: {'start', 'end' (inclusive byte addresses), 'name', 'depth'} per range."""
    out = []
    for number, line in enumerate(_lines(path), 1):
        if not line.strip():
            continue
        m = re.fullmatch(r"( *)([0-9a-fA-F]+)-([0-9a-fA-F]+) : (.*)", line)
        if m is None:
            raise CaptureError(path, number, f"not an iomem line: {line!r}")
        out.append({"start": int(m[2], 16), "end": int(m[3], 16), "name": m[4], "depth": len(m[1]) // 2})
    return out


def read_virtio_mem(path) -> dict:
    """virtio_mem.json of `farm capture --virtio-mem`: the device and its unplug (bytes)."""
    try:
        vm = json.loads(Path(path).read_text())
        for key in ("size_before", "size_after", "requested"):
            int(vm[key])
    except (ValueError, KeyError, TypeError) as e:
        raise CaptureError(path, None, f"not a virtio-mem record ({e})") from None
    return vm


def _count(path) -> int | None:
    """A file holding one number (hugepages_2m): None when it is empty."""
    text = Path(path).read_text().strip()
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise CaptureError(path, 1, f"expected a number, got {text!r}") from None


def parse_config(text: str) -> dict[str, str]:
    """A kernel build configuration's text (`CONFIG_X=value` lines; comments and `# ... is not set`
    lines are left out): {"CONFIG_X": "value"}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("CONFIG_") and "=" in line:
            key, _, value = line.strip().partition("=")
            out[key] = value
    return out


def read_config(path) -> dict[str, str]:
    """The kernel's build configuration file: parse_config() of its text."""
    return parse_config("\n".join(_lines(path)))


_READERS = {"buddyinfo": read_buddyinfo, "pagetypeinfo": read_pagetypeinfo, "zoneinfo": read_zoneinfo,
            "vmstat": read_vmstat, "meminfo": read_meminfo, "kpageflags": read_kpageflags,
            "pageblocktypes": read_pageblocktypes}


def read_capture(folder) -> dict:
    """Everything a capture folder holds: 'kernel' (the release, as `uname -r` prints it),
    'kernel_version' ((major, minor)), 'uname', 'cmdline', 'snapshots' ({kind: [phases present]}),
    one entry per kind of snapshot ({phase: what its reader returns}), 'hugepages_2m' /
    'hugepages_1g' (obtained; None when not recorded) with '..._asked' and '..._err', 'trace_stats',
    'iomem', 'virtio_mem' (virtio_mem.json, or None), 'work_log', 'config' (the kernel's CONFIG_ options when the capture records them,
    else None), 'pageblocktypes_err' (why a capture has no pageblocktypes snapshots, when it
    says) and 'trace' (the path of trace.txt[.gz], or None)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CaptureError(folder, None, "not a folder")
    out: dict = {"path": str(folder), "uname": None, "kernel": None, "kernel_version": None,
                 "cmdline": None, "snapshots": {}}
    if (folder / "uname").exists():
        out["uname"] = (folder / "uname").read_text().strip()
        parts = out["uname"].split()
        out["kernel"] = parts[2] if len(parts) > 2 else None
        m = re.match(r"(\d+)\.(\d+)", out["kernel"] or "")
        out["kernel_version"] = (int(m[1]), int(m[2])) if m else None
    if (folder / "cmdline").exists():
        out["cmdline"] = (folder / "cmdline").read_text().strip()
    out["config"] = read_config(folder / "config") if (folder / "config").exists() else None
    for kind, reader in _READERS.items():
        found = {}
        for phase in PHASES:
            for name in (f"{kind}.{phase}", f"{kind}.{phase}.gz"):
                if (folder / name).exists():
                    found[phase] = reader(folder / name)
                    break
        out["snapshots"][kind] = list(found)
        out[kind] = found
    for size in ("2m", "1g"):
        for suffix in ("", "_asked", "_err"):
            name = f"hugepages_{size}" + {"": "", "_asked": ".asked", "_err": ".err"}[suffix]
            path = folder / name
            if suffix == "_err":
                out[f"hugepages_{size}_err"] = (path.read_text().strip() or None) if path.exists() else None
            else:
                out[f"hugepages_{size}{suffix}"] = _count(path) if path.exists() else None
    err = folder / "pageblocktypes.err"
    out["pageblocktypes_err"] = (err.read_text().strip() or None) if err.exists() else None
    out["trace_stats"] = None
    if (folder / "trace_stats").exists():
        stats = {}
        for line in (folder / "trace_stats").read_text().splitlines():
            key, _, value = line.partition(":")
            value = value.strip()
            stats[key.strip().replace(" ", "_")] = float(value) if "." in value else int(value)
        out["trace_stats"] = stats
    out["iomem"] = read_iomem(folder / "iomem") if (folder / "iomem").exists() else None
    vm = folder / "virtio_mem.json"
    out["virtio_mem"] = read_virtio_mem(vm) if vm.exists() else None
    out["work_log"] = (folder / "work.log").read_text().strip() if (folder / "work.log").exists() else None
    trace = [folder / n for n in ("trace.txt.gz", "trace.txt") if (folder / n).exists()]
    out["trace"] = str(trace[0]) if trace else None
    return out
