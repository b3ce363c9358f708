"""Real-kernel page-allocator traces: ftrace text -> one columnar event table.

`parse_trace(path)` reads the text of /sys/kernel/tracing/trace, or of `trace-cmd report`, plain or
gzip, and returns a `pyarrow.Table` with one row per event in file order (write it with
`pyarrow.parquet.write_table`, or `.to_pandas()` it). It understands the events of
include/trace/events/kmem.h that the buddy allocator emits (mm_page_alloc, mm_page_free,
mm_page_free_batched, mm_page_alloc_zone_locked, mm_page_pcpu_drain, mm_page_alloc_extfrag), every
event of include/trace/events/compaction.h, and trace_marker writes (tracing_mark_write; `print` in
trace-cmd). Field layouts of Linux 4.x to 6.x are accepted: `page=%p` present or not, pfn in hex
(5.x+) or decimal (4.x), `percpu_refill=` present or not.

Columns (`COLUMNS`): integers use -1 for "not in this event", strings are null.

- `line` (file line number, 1-based), `ts` (seconds), `cpu`, `task`, `pid`, `event`;
- `irq`: the context of the event, from the third character of the flags ftrace prints after the
  cpu (irq-info): 1 in an interrupt (`h` hardirq, `s` softirq, `H` hardirq inside a softirq, `z`/`Z`
  NMI), 0 in process context, -1 when the line has no flags;
- `phase`: the name of the most recent `phase=NAME ...` marker at or before the row (null before the
  first one; a marker row belongs to the phase it opens);
- `pfn`, `order`, `migratetype`, `gfp_flags`, `percpu_refill`: the kmem events. A failed
  mm_page_alloc prints a NULL page and pfn 0; it gets pfn -1. mm_page_free and
  mm_page_free_batched carry no migratetype (-1). Compaction events put their `order=` here too, where
  -1 is the kernel's own "no order" (a whole-zone compaction, /proc/sys/vm/compact_memory), and
  mm_compaction_try_to_compact_pages its `gfp_mask=` in `gfp_flags`;
- mm_page_alloc_extfrag: `alloc_order`, `fallback_order`, `pageblock_order`, `alloc_migratetype`,
  `fallback_migratetype`, `fragmenting`, `change_ownership`;
- compaction: `zone_start`, `migrate_pfn`, `free_pfn`, `zone_end`, `mode`, `status` (begin/end);
  `start_pfn`, `end_pfn`, `nr_scanned`, `nr_taken` (isolate_*); `nr_migrated`, `nr_failed`
  (migratepages); `node`, `zone`, `ret` (suitable/finished; `node` is also kcompactd's `nid`);
  `priority`; `order_failed`, `consider`, `limit` (deferral);
- `marker`: the text of a trace_marker write; for a `CPU:N [LOST M EVENTS]` line (a row with event
  `lost_events`) that line.

Lines starting with '#' (the ftrace header), blank lines and trace-cmd's `cpus=N` / `CPU N is empty`
are skipped. A line whose prefix (`TASK-PID [CPU] FLAGS TIMESTAMP: EVENT:`) is well formed but whose
event this module does not know is kept with its fields empty and counted as unknown. A line that
fits no layout, or a known event whose fields fit none of its layouts, is malformed: `TraceError`
names the file and line, unless `lenient`, which skips and counts such lines. The counts are in the
table's metadata (`trace_info(table)`).

The parse is vectorised. The text is cut into chunks of a few MiB, parsed on a few threads (NumPy
and pyarrow release the GIL), and each chunk is parsed with array operations over its bytes: line
and separator positions, 8-byte words read at any offset and tested byte by byte with SWAR bit
arithmetic (digits, blanks, numbers of up to 8 digits), string views into the chunk for the text
fields, pyarrow's RE2 for the rare events. A line goes through the first of three readers that
accepts it: the fixed columns the kernel prints (learnt from a few lines of the chunk), positions
found per line, then `LINE_RE` itself one line at a time. `LINE_RE` and `LAYOUTS` are the grammar:
the faster readers accept a line only when they read it as `LINE_RE` does, and
tests/trace_reference.py reads every line with them alone. Python loops run over chunks, readers,
distinct event names and fields, never over the lines of the first two readers.
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.lib.stride_tricks import as_strided, sliding_window_view

__all__ = ["COLUMNS", "HOT_EVENTS", "KNOWN_EVENTS", "LINE_RE", "MIGRATETYPE_NAMES", "TraceError",
           "parse_text", "parse_trace", "read_table", "write_table", "summarize", "format_summary",
           "trace_info"]

METADATA_KEY = b"buddyfarm.trace"


class TraceError(ValueError):
    """Input the parser cannot read: `path`, the 1-based `line` (None for the whole file), the line's
    `text` and what is wrong with it."""

    def __init__(self, path, line: int | None, text: str | None, message: str):
        self.path, self.line, self.text, self.message = str(path), line, text, message
        where = f"{self.path}:{line}" if line is not None else self.path
        shown = "" if text is None else f": {_shorten(text)!r}"
        super().__init__(f"{where}: {message}{shown}")


def _shorten(text: str, limit: int = 160) -> str:
    return text if len(text) <= limit else text[:limit] + "..."


# -- the table --------------------------------------------------------------------------------

_DICT = pa.dictionary(pa.int32(), pa.string())

#: Every column, in table order: name -> arrow type.
COLUMNS: dict[str, pa.DataType] = {
    "line": pa.int64(), "ts": pa.float64(), "cpu": pa.int16(), "irq": pa.int8(), "task": _DICT,
    "pid": pa.int32(), "event": _DICT, "phase": _DICT,
    "pfn": pa.int64(), "order": pa.int16(), "migratetype": pa.int8(), "gfp_flags": _DICT,
    "percpu_refill": pa.int8(),
    "alloc_order": pa.int16(), "fallback_order": pa.int16(), "pageblock_order": pa.int16(),
    "alloc_migratetype": pa.int8(), "fallback_migratetype": pa.int8(), "fragmenting": pa.int8(),
    "change_ownership": pa.int8(),
    "zone_start": pa.int64(), "migrate_pfn": pa.int64(), "free_pfn": pa.int64(), "zone_end": pa.int64(),
    "mode": _DICT, "status": _DICT,
    "start_pfn": pa.int64(), "end_pfn": pa.int64(), "nr_scanned": pa.int64(), "nr_taken": pa.int64(),
    "nr_migrated": pa.int64(), "nr_failed": pa.int64(),
    "node": pa.int16(), "zone": _DICT, "ret": _DICT, "priority": pa.int8(), "order_failed": pa.int16(),
    "consider": pa.int32(), "limit": pa.int64(),
    "marker": pa.string(), "function": _DICT,
}
_INT_FIELDS = {name: t.to_pandas_dtype() for name, t in COLUMNS.items()
               if pa.types.is_integer(t) and name not in ("line", "cpu", "irq", "pid")}

#: The third flags character (irq-info's hardirq/softirq column) in an interrupt: NMI (z, Z),
#: hardirq (h), hardirq inside a softirq (H), softirq (s).
IRQ_CONTEXT = "zZhHs"
_IRQ_BYTES = np.frombuffer(IRQ_CONTEXT.encode(), np.uint8)


def irq_of(flags: str | None) -> int:
    """The `irq` column of a line with these flags (None: no flags)."""
    if flags is None:
        return -1
    return int(len(flags) >= 3 and flags[2] in IRQ_CONTEXT)
_STR_FIELDS = [name for name, t in COLUMNS.items()
               if (pa.types.is_string(t) or pa.types.is_dictionary(t))
               and name not in ("task", "event", "phase")]
# Fields printed as addresses (hex, or decimal in 4.x kernels), and fields a layout reads but the
# table does not keep.


def address_bits(value: int) -> int:
    """An address field's value (the kernel's unsigned long) as its int64 column holds it: the
    same 64 bits, so 2**63 and more read negative; a value of 64 bits or more is kept as -1 (the
    parse reports its line)."""
    if value >= 1 << 64:
        return -1
    return value - (1 << 64) if value >= 1 << 63 else value


_ADDR_FIELDS = {"pfn", "zone_start", "migrate_pfn", "free_pfn", "zone_end", "start_pfn", "end_pfn"}
_INTERNAL_FIELDS = {"page", "cold", "ip"}

#: /proc/pagetypeinfo names of the migratetypes every configuration numbers the same way (CMA and
#: Isolate move with CONFIG_CMA).
MIGRATETYPE_NAMES = {0: "Unmovable", 1: "Movable", 2: "Reclaimable", 3: "HighAtomic"}

# -- event layouts ------------------------------------------------------------------------------

# The hot events, field by field after an optional `page=%p `: `*` runs to the end of the line, `?`
# may be absent (the last field only). The fast path and the regular expression of each are built
# from this one description.
HOT_EVENTS: dict[str, tuple[str, ...]] = {
    "mm_page_alloc": ("pfn", "order", "migratetype", "gfp_flags*"),
    "mm_page_free": ("pfn", "order"),
    "mm_page_free_batched": ("pfn", "order", "cold?"),           # cold= before 4.15
    "mm_page_alloc_zone_locked": ("pfn", "order", "migratetype", "percpu_refill?"),
    "mm_page_pcpu_drain": ("pfn", "order", "migratetype"),
}
# Written so that Python's re (the reference, tests/trace_reference.py) and RE2 (pyarrow) read them
# the same way: ASCII classes only.
_ADDR = r"0x[0-9a-fA-F]{1,16}|[0-9]{1,20}"
_INT = r"-?[0-9]{1,10}"
_WS, _NWS = r"[ \t\n\r\f\v]", r"[^ \t\n\r\f\v]"
_PAGE = rf"(?:page=(?P<page>{_NWS}+) )?"


def _hot_regex(fields: tuple[str, ...]) -> str:
    out = _PAGE
    for i, spec in enumerate(fields):
        name = spec.rstrip("*?")
        sep = " " if i else ""
        value = ".*" if spec.endswith("*") else _ADDR if name in _ADDR_FIELDS else _INT
        item = f"{name}=(?P<{name}>{value})"
        out += f"(?: {item})?" if spec.endswith("?") else sep + item
    return out


def _kv(*names: str) -> str:
    return " ".join(f"{n}=(?P<{n}>{_ADDR if n in _ADDR_FIELDS else _INT})" for n in names)


_ZONE = rf"zone={_WS}*(?P<zone>{_NWS}+){_WS}+"        # %-8s: the name, then padding
_RANGE = r"(?:range=\((?P<start_pfn>0x[0-9a-fA-F]{1,16}) ~ (?P<end_pfn>0x[0-9a-fA-F]{1,16})\) )?"
_BEGIN = (r"zone_start=(?P<zone_start>0x[0-9a-fA-F]{1,16}) migrate_pfn=(?P<migrate_pfn>0x[0-9a-fA-F]{1,16})"
          r" free_pfn=(?P<free_pfn>0x[0-9a-fA-F]{1,16}) zone_end=(?P<zone_end>0x[0-9a-fA-F]{1,16}),"
          r" mode=(?P<mode>[A-Za-z0-9_]+)")

#: Field layouts (regular expressions over the text after `EVENT: `, matched whole) of every event
#: this module knows, kernel 4.x to 6.x.
LAYOUTS: dict[str, str] = {
    **{name: _hot_regex(fields) for name, fields in HOT_EVENTS.items()},
    "mm_page_alloc_extfrag": _PAGE + _kv("pfn", "alloc_order", "fallback_order", "pageblock_order",
                                         "alloc_migratetype", "fallback_migratetype", "fragmenting",
                                         "change_ownership"),
    "mm_compaction_isolate_migratepages": _RANGE + _kv("nr_scanned", "nr_taken"),
    "mm_compaction_isolate_freepages": _RANGE + _kv("nr_scanned", "nr_taken"),
    "mm_compaction_fast_isolate_freepages": _RANGE + _kv("nr_scanned", "nr_taken"),
    "mm_compaction_migratepages": _kv("nr_migrated", "nr_failed"),
    "mm_compaction_begin": _BEGIN,
    "mm_compaction_end": _BEGIN + r" status=(?P<status>[A-Za-z0-9_]+)",
    "mm_compaction_try_to_compact_pages":
        rf"order=(?P<order>{_INT}) gfp_mask=(?P<gfp_flags>{_NWS}+) (?:priority|mode)=(?P<priority>{_INT})",
    "mm_compaction_suitable": rf"node=(?P<node>{_INT}) {_ZONE}order=(?P<order>{_INT}) ret=(?P<ret>{_NWS}+)",
    "mm_compaction_finished": rf"node=(?P<node>{_INT}) {_ZONE}order=(?P<order>{_INT}) ret=(?P<ret>{_NWS}+)",
    **{name: rf"node=(?P<node>{_INT}) {_ZONE}" + _kv("order", "order_failed", "consider", "limit")
       for name in ("mm_compaction_deferred", "mm_compaction_defer_compaction",
                    "mm_compaction_defer_reset")},
    "mm_compaction_kcompactd_sleep": rf"nid=(?P<node>{_INT})",
    **{name: rf"nid=(?P<node>{_INT}) order=(?P<order>{_INT}) (?:classzone_idx|highest_zoneidx)="
             rf"{_WS}*(?P<zone>{_NWS}+){_WS}*"
       for name in ("mm_compaction_wakeup_kcompactd", "mm_compaction_kcompactd_wake")},
    # a work item starting on its worker: the vmstat update (vmstat_update) among them
    # a module's function carries the module's name: "function virtio_mem_run_wq [virtio_mem]"
    "workqueue_execute_start": rf"work struct (?P<work>{_NWS}+): function (?P<function>{_NWS}+)(?: \[{_NWS}+\])?",
    # trace-cmd shows a trace_marker write as the ftrace `print` event: `print: IP: TEXT`
    "print": r"(?P<ip>[^ \t\n\r\f\v:]+): (?P<marker>.*)",
}
_MARKER_EVENTS = ("tracing_mark_write",)
LOST_EVENT = "lost_events"
#: Event names kept with their fields; any other name is kept as an unknown event.
KNOWN_EVENTS = frozenset(LAYOUTS) | set(_MARKER_EVENTS) | {LOST_EVENT}
_LAYOUT_RE = {name: re.compile(p, re.ASCII) for name, p in LAYOUTS.items()}

#: The grammar of one event line (ftrace and trace-cmd report): the reference of the fast path.
LINE_RE = re.compile(
    r"[ \t]*(?P<task>.+?)-(?P<pid>\d{1,10})\s+(?:\(\s*(?P<tgid>[\d-]+)\)\s+)?\[(?P<cpu>\d{1,5})\]"
    r"(?:\s+(?P<flags>[^\s\d]\S*))?\s+(?P<ts>\d+\.\d+):\s(?P<event>\w+):(?:[ \t]+(?P<rest>.*))?",
    re.ASCII)
_WORD = re.compile(r"\w+", re.ASCII)
_LOST_RE = re.compile(r"CPU:(?P<cpu>\d{1,5}) \[LOST (?P<lost>\d{1,18}) EVENTS\]\s*", re.ASCII)
_HEADER_RE = re.compile(r"cpus=\d+\s*|CPU \d+ is empty\s*", re.ASCII)

# -- byte-level helpers -----------------------------------------------------------------------
#
# A chunk is one uint8 array with _PAD zero bytes before and after the text, so every window and
# every 8-byte read below stays inside it. Positions are indices into that array.

_PAD = 256
_W = 112                        # the bytes of a line the per-line prefix looks at (TASK ... EVENT: )
_SP, _NL, _CR, _TAB, _COLON, _HASH = 32, 10, 13, 9, 58, 35
_LBR, _RBR, _DASH, _DOT = 91, 93, 45, 46
_COLS = np.arange(_PAD)
_ONES, _HIGH = np.uint64(0x0101010101010101), np.uint64(0x8080808080808080)
_ZEROS = np.uint64(0x3030303030303030)                       # eight '0'
_LOW_BYTES = np.array([(1 << (8 * k)) - 1 for k in range(8)] + [2**64 - 1], np.uint64)
_HIGH_AT = np.array([0x80 << (8 * k) for k in range(8)] + [0], np.uint64)
_LANES = (np.uint64(0x00FF00FF00FF00FF), np.uint64(0x0000FFFF0000FFFF), np.uint64(0xFFFFFFFF))
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_U = {k: np.uint64(k) for k in (6, 7, 8, 9, 16, 32, 10, 100, 256, 10000, 65536)}


def _win(a: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """Rows a[pos : pos + width] (a copy, shape (len(pos), width))."""
    return sliding_window_view(a, width)[pos]


def _words(a: np.ndarray) -> np.ndarray:
    """The little-endian 8-byte word starting at every byte of `a` (a strided view, no copy):
    `_words(a)[p]` holds a[p:p+8], a[p] in the low byte."""
    return as_strided(a[:8].view("<u8"), shape=(len(a) - 7,), strides=(1,))


def _at(x: np.ndarray, k: np.ndarray) -> np.ndarray:
    """x[i, k[i]] for each row i of a 2-D array."""
    x = np.ascontiguousarray(x)
    return x.reshape(-1)[np.arange(len(k)) * x.shape[1] + k]


def _key(lit: bytes) -> list[tuple[int, np.uint64, np.uint64]]:
    """`lit` as (offset, value, mask) 8-byte pieces for `_has`."""
    out = []
    for off in range(0, len(lit), 8):
        part = lit[off:off + 8]
        out.append((off, np.uint64(int.from_bytes(part.ljust(8, b"\0"), "little")),
                    np.uint64((1 << (8 * len(part))) - 1)))
    return out


def _has(u: np.ndarray, pos: np.ndarray, key) -> np.ndarray:
    """Whether the literal of `key` (from `_key`) is at each position."""
    ok = np.ones(len(pos), bool)
    for off, value, mask in key:
        ok &= (u[pos + off] & mask) == value
    return ok


def _first_byte(word: np.ndarray, byte: int, limit: np.ndarray) -> np.ndarray:
    """Per 8-byte word: the index of the first `byte`, or `limit` (the bytes left in the range) when
    that comes first; 8 when neither is in the word."""
    x = word ^ (np.uint64(byte) * _ONES)
    t = (x - _ONES) & ~x & _HIGH            # 0x80 in the bytes equal to `byte` (exact for the lowest)
    t |= _HIGH_AT[np.clip(limit, 0, 8)]
    low = t & (~t + np.uint64(1))                              # the lowest flag
    return np.bitwise_count(low - np.uint64(1)).astype(np.int64) >> 3


def _has_blank(word: np.ndarray) -> np.ndarray:
    """Whether an 8-byte word holds a byte below '!' (a space, a tab or another control byte)."""
    return ((word - np.uint64(0x21) * _ONES) & ~word & _HIGH) != 0


_7F = np.uint64(0x7F7F7F7F7F7F7F7F)
_FLAG_AT = np.array([0x80 << (8 * k) for k in range(8)], np.uint64)
_REGION = np.array([int(0x8080808080808080) & ((1 << (8 * k)) - 1) for k in range(9)], np.uint64)


def _eq(word: np.ndarray, byte: int) -> np.ndarray:
    """0x80 in each byte of the words that equals `byte`, exactly (no borrow between bytes)."""
    x = word ^ (np.uint64(byte) * _ONES)
    return ~(((x & _7F) + _7F) | x) & _HIGH


def _within(word: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """0x80 in each byte of the words in lo..hi (below 0x80), exactly."""
    x = word & _7F
    return (x + np.uint64(0x80 - lo) * _ONES) & ~(x + np.uint64(0x7F - hi) * _ONES) & ~word & _HIGH


def _first_flag(flags: np.ndarray) -> np.ndarray:
    """The index of the lowest flagged byte (8 when none)."""
    return np.bitwise_count((flags & (~flags + np.uint64(1))) - np.uint64(1)).astype(np.int64) >> 3


def _number(word: np.ndarray, length: np.ndarray, base: int):
    """The unsigned integer in the first `length` (1..8) bytes of each word, in `base` (10 or 16),
    checked and combined SWAR-style: (int64 values, ok)."""
    n = np.clip(length, 0, 8)
    keep = _LOW_BYTES[n]
    x = (word & keep) | (_ZEROS & ~keep)                    # bytes past the number read as '0'
    if base == 10:
        ok = ((x & np.uint64(0xF0F0F0F0F0F0F0F0)) == _ZEROS) & \
            (((x + _U[6] * _ONES) & np.uint64(0xF0F0F0F0F0F0F0F0)) == _ZEROS)
        d = x - _ZEROS
        k1, k2, k3 = _U[10], _U[100], _U[10000]
    else:
        y = x | np.uint64(0x2020202020202020)                      # 'A'..'F' -> 'a'..'f'
        digit = (x + np.uint64(0x50) * _ONES) & ~(x + np.uint64(0x46) * _ONES) & _HIGH    # '0'..'9'
        letter = (y + np.uint64(0x1F) * _ONES) & ~(y + np.uint64(0x19) * _ONES) & _HIGH   # 'a'..'f'
        ok = ((digit | letter) == _HIGH) & ((x & _HIGH) == 0)
        d = (x & np.uint64(0x0F0F0F0F0F0F0F0F)) + (letter >> _U[7]) * _U[9]
        k1, k2, k3 = _U[16], _U[256], _U[65536]
    d = d << (np.uint64(8) * (8 - np.clip(n, 1, 8)).astype(np.uint64))   # the last digit in the top byte
    d = (d * k1 + (d >> _U[8])) & _LANES[0]
    d = (d * k2 + (d >> _U[16])) & _LANES[1]
    d = (d * k3 + (d >> _U[32])) & _LANES[2]
    return d.astype(np.int64), ok & (length >= 1) & (length <= 8)


def _factorize(words: np.ndarray):
    """Equal rows of a 2-D block of 8-byte words: (codes, first row of each code, rows that equal
    their code's first row — all of them but for a hash collision)."""
    h = words[:, 0].copy()
    for j in range(1, words.shape[1]):
        h = (h * np.uint64(0x9E3779B97F4A7C15)) ^ words[:, j]
    # a hash table, numbered in order of first appearance
    codes = np.asarray(pc.dictionary_encode(pa.array(h)).indices.to_numpy(zero_copy_only=False), np.int64)
    first = np.flatnonzero(codes > np.maximum.accumulate(np.concatenate([[-1], codes[:-1]])))
    rep = words[first[codes]]
    same = np.ones(len(codes), bool)
    for j in range(words.shape[1]):
        same &= words[:, j] == rep[:, j]
    return codes, first, same


def _views(a: np.ndarray, start: np.ndarray, end: np.ndarray, null_if_empty: bool = False) -> pa.Array:
    """The byte ranges a[start:end] as an arrow string_view array over `a` (nothing is copied but
    the 16-byte view of each string); empty (or null) where end <= start."""
    m = len(start)
    length = np.maximum(end - start, 0).astype("<i4")
    views = np.zeros((m, 16), np.uint8)
    views[:, 0:4] = length.view(np.uint8).reshape(m, 4)
    head = _win(a, np.minimum(start, len(a) - 12), 12)
    inline = length <= 12
    views[:, 4:16] = np.where(inline[:, None] & (_COLS[:12] < length[:, None]), head, 0)
    out = ~inline
    if out.any():
        views[out, 4:8] = head[out, :4]
        views[out, 12:16] = start[out].astype("<i4").view(np.uint8).reshape(-1, 4)
    valid = pa.py_buffer(np.packbits(length > 0, bitorder="little")) if null_if_empty else None
    return pa.Array.from_buffers(pa.string_view(), m, [valid, pa.py_buffer(views), pa.py_buffer(a)])


def _strings(a: np.ndarray, start: np.ndarray, end: np.ndarray, null_if_empty: bool = False) -> pa.Array:
    """The byte ranges a[start:end] as an arrow string array (a copy)."""
    return _views(a, start, end, null_if_empty).cast(pa.string())


def _null_pointer(page: pa.Array) -> np.ndarray:
    """`page=` values that print a NULL pointer: zeros, 0x0, (null) (kernel), (nil) (trace-cmd)."""
    text = page.cast(pa.string()).fill_null("")
    null = pc.or_(pc.match_substring_regex(text, r"^(0x)?0+$"), pc.is_in(text, pa.array(["(null)", "(nil)"])))
    return np.asarray(null.to_numpy(zero_copy_only=False), bool)


# -- one chunk ----------------------------------------------------------------------------------

@dataclass
class _Names:
    """Event names, numbered in order of first appearance (the event dictionary)."""
    names: list[str] = field(default_factory=list)
    index: dict[str, int] = field(default_factory=dict)

    def id(self, name: str) -> int:
        if name not in self.index:
            self.index[name] = len(self.names)
            self.names.append(name)
        return self.index[name]


@dataclass(frozen=True)
class _Layout:
    """The columns of the kernel's own lines (`%16s-%-7d [%03d] FLAGS %5lu.%06lu: `), as offsets
    from the line start: the pid's '-', '[' and ']' around the cpu, the start of the timestamp's
    field (after the flags, if any), its '.', and the ':' after it."""
    dash: int
    lb: int
    rb: int
    flags: bool
    ts_field: int
    dot: int
    colon: int


def _layout_of(text: str) -> _Layout | None:
    m = LINE_RE.fullmatch(text)
    if m is None or m["tgid"] is not None or not text.isascii():
        return None
    dash, lb, rb = m.end("task"), m.start("cpu") - 1, m.end("cpu")
    flags = m["flags"] is not None
    if flags and m.start("flags") != rb + 2:
        return None
    ts_field = m.end("flags") if flags else rb + 1
    ts0, colon = m.span("ts")
    dot = text.index(".", ts0)
    width = (dot - ts_field - 1) + (colon - dot - 1)          # digits the timestamp can have
    if (ts_field >= ts0 or width > 15 or text[colon + 1] != " " or not 3 <= lb - dash <= 9
            or dash > 24 or rb - lb > 6 or dot - ts_field > 8 or colon - dot > 9
            or (flags and ts_field - rb - 2 > 8)):
        return None
    return _Layout(dash, lb, rb, flags, ts_field, dot, colon)


_PAGE_KEY = _key(b"page=")
_READERS = ("layout", "line")      # the vectorised readers tried before LINE_RE (tests narrow it)
_HOT_FAST = True                    # the hot events' fast path before their regular expression


@dataclass
class _Prefix:
    """Parsed prefixes of some lines: `rows` index the chunk's lines; spans are byte positions."""
    rows: np.ndarray
    pid: np.ndarray
    cpu: np.ndarray
    irq: np.ndarray                 # the `irq` column
    ts: np.ndarray                  # float64, NaN where there is none
    task: pa.Array                  # strings, null where there is none
    event: np.ndarray               # ids in the chunk's _Names
    rest: tuple
    span: tuple


@dataclass
class _ChunkResult:
    """One chunk's rows: dense columns, string pieces (rows, strings) to place later, and the
    chunk's event names (`event` indexes them)."""
    n: int
    line: np.ndarray
    ts: np.ndarray
    task: pa.Array
    event: np.ndarray
    names: list[str]
    ints: dict[str, np.ndarray]
    strs: dict[str, list]
    bad: np.ndarray                 # rows of malformed lines (lenient)
    found: list                     # malformed (line, message, row)
    lost: int
    lines: int


class _Chunk:
    """The lines of one piece of text, parsed with array operations. Each line goes through the
    first of three readers that accepts it: the kernel's fixed columns (`_layout_prefix`), per-line
    positions of the separators (`_line_prefix`), then LINE_RE itself (`_slow_line`). The first two
    accept a line only when every part of it is checked, so that LINE_RE reads it the same way."""

    def __init__(self, data: bytes, first_line: int, path: str):
        self.path, self.first_line = path, first_line
        self.names = _Names()
        body = np.frombuffer(data, np.uint8)
        if len(body) and body.max() >= 128:
            try:
                data.decode("utf-8")
            except UnicodeDecodeError:        # keep the line structure; replace what is not UTF-8
                body = np.frombuffer(data.decode("utf-8", "replace").encode("utf-8"), np.uint8)
        a = np.zeros(len(body) + 2 * _PAD, np.uint8)
        a[_PAD:_PAD + len(body)] = body
        self.a, self.n, self.u = a, len(body), _words(a)
        self.malformed: list[tuple[int, str, str]] = []     # (line, text, message)
        self.lost = 0

    def text(self, s: int, e: int) -> str:
        return self.a[s:e].tobytes().decode("utf-8", "replace")

    def _names_of(self, words: np.ndarray, length: np.ndarray, ok: np.ndarray) -> np.ndarray:
        """Event ids of names given as rows of 8-byte words (zero past each `length`); -1 for a name
        that is not a word, or a row whose name could not be told apart."""
        codes, first, same = _factorize(words)
        ids = np.array([self.names.id(x) if _WORD.fullmatch(x) else -1 for x in
                        (words[i].tobytes()[:length[i]].decode("ascii", "replace") for i in first)], np.int64)
        return np.where(ok & same, ids[codes], -1) if len(ids) else np.full(len(ok), -1, np.int64)

    def _layout_prefix(self, s, e, L: _Layout):
        """Lines in the columns of `L`, each field checked as one 8-byte word (flags per byte)."""
        a, u = self.a, self.u
        m = len(s)
        ok = (a[s + L.dash] == _DASH) & (a[s + L.lb] == _LBR) & (a[s + L.rb] == _RBR) \
            & (a[s + L.dot] == _DOT) & (a[s + L.colon] == _COLON) & (a[s + L.colon + 1] == _SP)
        # the task: the bytes before the pid's '-', blanks first; no '[' in them
        f = np.full(m, L.dash)
        task_words = []
        for j in range(0, L.dash, 8):
            w = u[s + j] & _LOW_BYTES[min(8, L.dash - j)]
            region = _REGION[min(8, L.dash - j)]
            ok &= (_eq(w, _LBR) & region) == 0
            nonblank = ~(_eq(w, _SP) | _eq(w, _TAB)) & region
            f = np.where((f == L.dash) & (nonblank != 0), j + _first_flag(nonblank), f)
            task_words.append(w)
        ok &= (f < L.dash) & (a[s + f] != _HASH)          # an indented '#' line is a comment
        # the pid: digits, then one or more spaces, up to '['
        k = L.lb - L.dash - 1
        w = u[s + L.dash + 1]
        dig, sp = _within(w, 48, 57) & _REGION[k], _eq(w, _SP) & _REGION[k]
        ok &= ((dig | sp) == _REGION[k]) & ((dig & _FLAG_AT[0]) != 0) & ((sp & _FLAG_AT[k - 1]) != 0) \
            & (((sp << _U[8]) & dig) == 0)
        pid, pid_ok = _number(w, _first_flag(sp), 10)
        ok &= pid_ok
        # the cpu: digits between the brackets
        k = L.rb - L.lb - 1
        cpu, cpu_ok = _number(u[s + L.lb + 1], np.full(m, k), 10)
        ok &= cpu_ok
        # the flags: one token of non-blank bytes, not starting with a digit
        if L.flags:
            k = L.ts_field - L.rb - 2
            w = u[s + L.rb + 2]
            ok &= (a[s + L.rb + 1] == _SP) & ((~_within(w, 0, 32) & _REGION[k]) == _REGION[k]) \
                & ((_within(w, 48, 57) & _FLAG_AT[0]) == 0)
            irq = np.isin(a[s + L.rb + 4], _IRQ_BYTES).astype(np.int64) if k >= 3 else np.zeros(m, np.int64)
        else:
            irq = np.full(m, -1, np.int64)
        # the timestamp: spaces, the seconds, '.', the fraction
        k = L.dot - L.ts_field
        w = u[s + L.ts_field]
        dig, sp = _within(w, 48, 57) & _REGION[k], _eq(w, _SP) & _REGION[k]
        ok &= ((dig | sp) == _REGION[k]) & ((sp & _FLAG_AT[0]) != 0) & ((dig & _FLAG_AT[k - 1]) != 0) \
            & (((dig << _U[8]) & sp) == 0)
        n_sec = k - _first_flag(dig)
        sec, sec_ok = _number(u[s + L.dot - n_sec], n_sec, 10)
        k = L.colon - L.dot - 1
        frac, frac_ok = _number(u[s + L.dot + 1], np.full(m, k), 10)
        ok &= sec_ok & frac_ok
        # exact: an integer below 2**53 divided by a power of ten rounds as float(text) does
        ts = (sec * _POW10[k] + frac) / float(_POW10[k])
        # the event: word characters up to the next ': ', within 64 bytes
        c2 = np.full(m, -1)
        name_words = []
        start = s + L.colon + 2
        for j in range(0, 64, 8):
            w = u[start + j]
            k = _first_byte(w, _COLON, np.full(m, 8))
            c2 = np.where((c2 < 0) & (k < 8), j + k, c2)
            name_words.append(w)
            if (c2 >= 0).all():
                break
        ok &= (c2 >= 1) & (a[start + c2 + 1] == _SP) & (start + c2 + 2 <= e)
        c2 = np.maximum(c2, 0)
        block = np.stack([w & _LOW_BYTES[np.clip(c2 - 8 * j, 0, 8)] for j, w in enumerate(name_words)], 1)
        event = self._names_of(block, c2, ok)
        ok &= event >= 0
        tcodes, tfirst, tsame = _factorize(np.stack(task_words, 1))
        ok &= tsame
        i = np.flatnonzero(ok)
        tasks = pa.array([self.text(int(s[t] + f[t]), int(s[t] + L.dash)) for t in tfirst], pa.string())
        rs = self._skip_blanks(start + c2 + 2, e, ok)
        return ok, _Prefix(i, pid[i], cpu[i], irq[i], ts[i], tasks.take(pa.array(tcodes[i])),
                           event[i], (rs[i], np.maximum(rs, e)[i]), (s[i], e[i]))

    def _skip_blanks(self, rs, e, ok):
        """Past the blanks after 'EVENT:' (one space in ftrace; trace-cmd pads the name)."""
        a = self.a
        pad = np.flatnonzero(ok & ((a[rs] == _SP) | (a[rs] == _TAB)))
        if len(pad):
            w = _win(a, rs[pad], 64)
            lead = ((w != _SP) & (w != _TAB)) | (_COLS[:64] >= (e[pad] - rs[pad])[:, None])
            k = lead.argmax(1)
            ok[pad[~lead.any(1)]] = False
            rs = rs.copy()
            rs[pad] += k
        return rs

    def _line_prefix(self, s, e):
        """The prefix of lines whose first _W bytes hold `TASK-PID [CPU] FLAGS TS: EVENT: `, with
        the separators found per line: the task ends before the first '[', the timestamp at the
        first ': ', the event at the next."""
        a, u = self.a, self.u
        m = len(s)
        W = _win(a, s, _W)
        sp = W == _SP
        f = (~(sp | (W == _TAB))).argmax(1)
        lbm = W == _LBR
        lb = lbm.argmax(1)
        cs = (W[:, :-1] == _COLON) & sp[:, 1:]
        c1 = cs.argmax(1)
        ok = lbm.any(1) & cs.any(1) & (lb > f + 1) & (c1 > lb + 2) & (_at(W, f) != _HASH)
        cs = cs & (_COLS[:_W - 1] > c1[:, None])
        c2 = cs.argmax(1)
        ok &= cs.any(1) & (c2 > c1 + 2) & (c2 + 2 <= e - s)
        # '[' 1..5 digits ']'
        k = _first_byte(u[s + lb + 1], _RBR, np.full(m, 8))
        cpu, cpu_ok = _number(u[s + lb + 1], k, 10)
        ok &= cpu_ok & (k <= 5)
        rb = lb + 1 + k
        # left of '[': one or more spaces, 1..8 digits (the pid), '-', the task
        back = _win(a, s + lb - 16, 16)[:, ::-1]
        nonsp = back != _SP
        k1 = nonsp.argmax(1)
        notdig = ((back - np.uint8(48)) >= 10) & (_COLS[:16] >= k1[:, None])
        k2 = notdig.argmax(1)
        dash = lb - 1 - k2
        ok &= (k1 >= 1) & nonsp.any(1) & notdig.any(1) & (_at(back, k2) == _DASH) & (dash > f)
        pid, pid_ok = _number(u[s + dash + 1], k2 - k1, 10)
        ok &= pid_ok
        # the timestamp: digits '.' digits after the last space before ': '
        back = _win(a, s + c1 - 24, 24)[:, ::-1]
        spb = back == _SP
        k3 = spb.argmax(1)
        dotm = back == _DOT
        dot = dotm.argmax(1)
        inside = _COLS[:24] < k3[:, None]
        ts0 = c1 - k3
        ok &= spb.any(1) & dotm.any(1) & (dot >= 1) & (k3 - dot >= 2) \
            & ((((back - np.uint8(48)) >= 10) & inside).sum(1) == 1)
        # between ']' and the timestamp: spaces around at most one flags token, not starting with a
        # digit; tabs and other control bytes are left to LINE_RE
        glen = ts0 - rb - 1
        g = _win(a, s + rb + 1, 24)
        gin = _COLS[:24] < glen[:, None]
        tok = (g != _SP) & gin
        starts = tok[:, 1:] & ~tok[:, :-1]
        ok &= (glen >= 1) & (glen <= 24) & (g[:, 0] == _SP) & ~((g < _SP) & gin).any(1) \
            & (starts.sum(1) <= 1) & ((_at(g, 1 + starts.argmax(1)) - np.uint8(48) >= 10) | ~starts.any(1))
        # the flags' third byte: in an interrupt or not; -1 without flags
        third = 3 + starts.argmax(1)
        irq = np.where(~starts.any(1), -1,
                       np.where(tok.sum(1) >= 3, np.isin(_at(g, np.minimum(third, 23)), _IRQ_BYTES), 0)).astype(np.int64)
        # the event, then the rest of the line
        names = _views(a, *(np.where(ok, x, 0) for x in (s + c1 + 2, s + c2)))
        enc = pc.dictionary_encode(names)
        ids = np.array([self.names.id(x) if _WORD.fullmatch(x) else -1
                        for x in enc.dictionary.to_pylist()], np.int64)
        event = ids[np.asarray(enc.indices.to_numpy(zero_copy_only=False), np.int64)] if len(ids) \
            else np.full(m, -1, np.int64)
        ok &= event >= 0
        rs = self._skip_blanks(s + c2 + 2, e, ok)
        i = np.flatnonzero(ok)
        ts = pc.cast(_views(a, (s + ts0)[i], (s + c1)[i]), pa.float64()).to_numpy(zero_copy_only=False)
        return ok, _Prefix(i, pid[i], cpu[i], irq[i], ts, _strings(a, (s + f)[i], (s + dash)[i]), event[i],
                           (rs[i], np.maximum(rs, e)[i]), (s[i], e[i]))

    def _slow_line(self, s: int, e: int, line: int):
        """One line through LINE_RE: (pid, cpu, irq, ts, task, event id, rest span) or None (skipped,
        or malformed and recorded)."""
        text = self.text(s, e)
        if not text.strip(" \t") or text.lstrip(" \t").startswith("#") or _HEADER_RE.fullmatch(text):
            return None
        m = LINE_RE.fullmatch(text)
        if m is None:
            lost = _LOST_RE.fullmatch(text)
            if lost:
                self.lost += int(lost["lost"])
                return -1, int(lost["cpu"]), -1, np.nan, None, self.names.id(LOST_EVENT), (s, e)
            self.malformed.append((line, text, "not an ftrace event line"))
            return None
        if m.start("rest") < 0:
            rest = (e, e)
        else:
            rest = (e - len(text[m.start("rest"):].encode()), e)
        return (int(m["pid"]), int(m["cpu"]), irq_of(m["flags"]), float(m["ts"]), m["task"],
                self.names.id(m["event"]), rest)

    def _slow_prefix(self, rows, s, e, line) -> _Prefix:
        got = [(i, self._slow_line(int(s[i]), int(e[i]), int(line[i]))) for i in rows.tolist()]
        got = [(i, g) for i, g in got if g is not None]
        i = np.array([i for i, _ in got], np.int64)
        return _Prefix(i, np.array([g[0] for _, g in got], np.int64), np.array([g[1] for _, g in got], np.int64),
                       np.array([g[2] for _, g in got], np.int64),
                       np.array([g[3] for _, g in got], np.float64), pa.array([g[4] for _, g in got], pa.string()),
                       np.array([g[5] for _, g in got], np.int64),
                       (np.array([g[6][0] for _, g in got], np.int64), np.array([g[6][1] for _, g in got], np.int64)),
                       (s[i], e[i]))

    def parse(self, lenient: bool, layout: _Layout | None) -> _ChunkResult:
        """Every line of the chunk: its prefix by the first reader that accepts it, then the fields
        of its event. Line numbers count from the chunk's `first_line`."""
        a = self.a
        nl = np.flatnonzero(a[_PAD:_PAD + self.n] == _NL) + _PAD
        s = np.empty_like(nl)
        if len(nl):
            s[0] = _PAD
            s[1:] = nl[:-1] + 1
        e = nl - ((a[nl - 1] == _CR) & (nl > s))
        line = self.first_line + np.arange(len(nl))
        left = np.flatnonzero((a[s] != _HASH) & (e > s))   # '#' comments and blank lines are skipped
        parts = []
        if layout is None and len(left):               # the most common layout of a few lines
            seen = [_layout_of(self.text(int(s[i]), int(e[i]))) for i in left[:16].tolist()]
            seen = [x for x in seen if x is not None]
            layout = max(set(seen), key=seen.count) if seen else None
        for reader in _READERS:
            if len(left) == 0 or (reader == "layout" and layout is None):
                continue
            ok, part = (self._layout_prefix(s[left], e[left], layout) if reader == "layout"
                        else self._line_prefix(s[left], e[left]))
            part.rows = left[part.rows]
            parts.append(part)
            left = left[~ok]
        parts.append(self._slow_prefix(left, s, e, line))
        rows = np.concatenate([p.rows for p in parts])
        order = np.argsort(rows, kind="stable")

        def cat(get):
            return np.concatenate([get(p) for p in parts])[order]

        n = len(rows)
        rline = line[rows[order]]
        event = cat(lambda p: p.event)
        rest = (cat(lambda p: p.rest[0]), cat(lambda p: p.rest[1]))
        span = (cat(lambda p: p.span[0]), cat(lambda p: p.span[1]))
        ints = {"pid": cat(lambda p: p.pid), "cpu": cat(lambda p: p.cpu), "irq": cat(lambda p: p.irq)}
        ts = cat(lambda p: p.ts)
        task = pa.concat_arrays([p.task for p in parts]).take(pa.array(order))
        strs: dict[str, list] = {}
        bad: dict[int, str] = {}
        self._fields(event, rest, ints, strs, bad)
        for name in [k for k in COLUMNS if k in ints]:  # every integer fits its column
            v = ints[name]
            dtype = COLUMNS[name].to_pandas_dtype()
            info = np.iinfo(dtype)
            out = (v < info.min) | (v > info.max)
            for r in np.flatnonzero(out).tolist():
                bad.setdefault(r, f"{name}={v[r]} out of range")
            ints[name] = np.where(out, -1, v).astype(dtype)
        found = sorted([(int(rline[r]), msg, r) for r, msg in bad.items()]
                       + [(ln, msg, -1) for ln, _, msg in self.malformed])
        if found and not lenient:
            ln, msg, r = found[0]
            text = self.text(int(span[0][r]), int(span[1][r])) if r >= 0 else \
                next(t for l2, t, _ in self.malformed if l2 == ln)
            raise TraceError(self.path, ln, text, msg)
        strs = {k: [(r, p.cast(pa.string())) for r, p in v] for k, v in strs.items()}
        return _ChunkResult(n, rline, ts, task, event.astype(np.int32), list(self.names.names), ints,
                            strs, np.array(sorted(bad), np.int64), found, self.lost, len(nl))

    # -- fields ---------------------------------------------------------------------------------

    def _fields(self, event, rest, ints, strs, bad):
        """The fields of every row, by event: into `ints` (dense, -1 where absent) and `strs`
        ((rows, strings) pieces); rows whose fields fit no layout into `bad`."""
        n = len(event)
        rs, re_ = rest

        def put(name, rows, values):
            if name not in ints:
                ints[name] = np.full(n, -1, np.int64)
            ints[name][rows] = values

        names = self.names.names
        # grouped before any field is read: a trace-cmd `print` row may be renamed on the way
        groups = [(names[eid], np.flatnonzero(event == eid)) for eid in np.unique(event).tolist()]
        for name, idx in groups:
            if name in _MARKER_EVENTS or name == LOST_EVENT:
                strs.setdefault("marker", []).append((idx, _views(self.a, rs[idx], re_[idx])))
                continue
            if name not in LAYOUTS:
                continue
            if name in HOT_EVENTS and _HOT_FAST:
                ok = self._hot(HOT_EVENTS[name], idx, rs[idx], re_[idx], put, strs)
                idx = idx[~ok]
                if len(idx) == 0:
                    continue
            self._regex(name, idx, rs[idx], re_[idx], put, strs, bad, event)

    def _value(self, vs, re_, name):
        """A number field starting at `vs` (up to a space or the end of the line): (values, end, ok)."""
        a, u = self.a, self.u
        if name in _ADDR_FIELDS:
            hexa = (u[vs] & np.uint64(0xFFFF)) == np.uint64(0x7830)       # '0x'
            ds = vs + 2 * hexa
        else:
            neg = a[vs] == _DASH
            ds = vs + neg
        word = u[ds]
        k = _first_byte(word, _SP, re_ - ds)
        k = np.where((k == 8) & ((a[ds + 8] == _SP) | (ds + 8 == re_)), 8, np.where(k == 8, 9, k))
        if name in _ADDR_FIELDS:
            if hexa.all():
                v, ok = _number(word, k, 16)
            else:
                vh, okh = _number(word, k, 16)
                vd, okd = _number(word, k, 10)
                v, ok = np.where(hexa, vh, vd), np.where(hexa, okh, okd)
        else:
            v, ok = _number(word, k, 10)
            v = np.where(neg, -v, v)
        return v, ds + k, ok

    def _hot(self, fields, idx, rs, re_, put, strs) -> np.ndarray:
        """The fast path of a hot event: fields one after the other, each key checked as one or two
        8-byte words and each number read as one. Rows it does not accept (a number of more than 8
        digits, an unexpected key) go to the layout's regular expression. -> accepted rows."""
        a, u = self.a, self.u
        m = len(rs)
        ok = np.ones(m, bool)
        pos = rs.copy()
        has_page = _has(u, pos, _PAGE_KEY)
        # the pointer: `\S+` then one space; the usual 16 characters are checked as two words
        te = np.where(has_page, pos + 5 + 16, pos)
        fixed = has_page & (a[te] == _SP) & ~_has_blank(u[pos + 5]) & ~_has_blank(u[pos + 13])
        other = np.flatnonzero(has_page & ~fixed)
        if len(other):
            w = _win(a, pos[other] + 5, 40)
            hit = (w <= _SP) | (_COLS[:40] >= (re_[other] - pos[other] - 5)[:, None])
            k = hit.argmax(1)
            te[other] = pos[other] + 5 + k
            ok[other] &= hit.any(1) & (k >= 1) & (_at(w, k) == _SP)
        ok &= ~has_page | (te < re_)
        # a NULL page (a failed allocation): only tokens that start like one are looked at closely
        first = a[pos + 5]
        maybe = np.flatnonzero(has_page & ok & ((first == 48) | ((first == 40) & (a[pos + 6] != 95))))
        null_page = np.zeros(m, bool)
        if len(maybe):
            null_page[maybe] = _null_pointer(_views(a, pos[maybe] + 5, te[maybe]))
        pos = np.where(has_page, te + 1, pos)
        values = {}
        for i, spec in enumerate(fields):
            name = spec.rstrip("*?")
            key = ((" " if i else "") + name + "=").encode()
            here = _has(u, pos, _key(key))
            if spec.endswith("?"):
                present = pos < re_
                ok &= ~present | here
                here &= present
            else:
                ok &= here
            vs = pos + len(key)
            if spec.endswith("*"):
                values[name] = (vs, re_)
                pos = np.where(here, re_, pos)
                break
            v, end, vok = self._value(vs, re_, name)
            ok &= vok | ~here
            values[name] = np.where(here, v, -1)
            pos = np.where(here, end, pos)
        ok &= pos == re_
        done = idx[ok]
        for name, v in values.items():
            if name in _INTERNAL_FIELDS:
                continue
            if isinstance(v, tuple):
                strs.setdefault(name, []).append((done, _views(a, v[0][ok], v[1][ok])))
                continue
            if name == "pfn":
                v = np.where(null_page, -1, v)
            put(name, done, v[ok])
        return ok

    def _regex(self, name, idx, rs, re_, put, strs, bad, event):
        """The layout's regular expression over these rows (pyarrow, vectorised)."""
        texts = _strings(self.a, rs, re_)
        st = pc.extract_regex(texts, "^" + LAYOUTS[name] + "$")
        matched = np.asarray(st.is_valid().to_numpy(zero_copy_only=False), bool)
        for r in idx[~matched].tolist():
            bad.setdefault(r, f"{name}: fields do not fit its layout")
        if not matched.any():
            return
        idx = idx[matched]
        st = st.filter(pa.array(matched))
        groups = {f.name: st.field(i) for i, f in enumerate(st.type)}
        if "ip" in groups:
            # trace-cmd shows a trace_marker write as `print: tracing_mark_write: TEXT`
            is_marker = np.asarray(pc.equal(groups["ip"], "tracing_mark_write").to_numpy(zero_copy_only=False))
            event[idx[is_marker]] = self.names.id("tracing_mark_write")
        for k, col in groups.items():
            if k in _INTERNAL_FIELDS:
                continue
            if k not in _INT_FIELDS:
                strs.setdefault(k, []).append((idx, col))
                continue
            present = np.asarray(pc.greater(pc.utf8_length(col), 0).to_numpy(zero_copy_only=False), bool)
            text = col.filter(pa.array(present))
            rows = idx[present]
            if k in _ADDR_FIELDS:
                u = [int(x, 0) if x.startswith("0x") else int(x) for x in text.to_pylist()]
                if u and max(u) >= 1 << 63:
                    for r, x in zip(rows.tolist(), u):
                        if x >= 1 << 64:
                            bad.setdefault(r, f"{k}={x} is more than 64 bits")
                    u = [address_bits(x) for x in u]
                v = np.array(u, np.int64) if len(rows) else np.zeros(0, np.int64)
                if k == "pfn" and "page" in groups:
                    v = np.where(_null_pointer(groups["page"].filter(pa.array(present))), -1, v)
            else:
                v = np.asarray(pc.cast(text, pa.int64()).to_numpy(zero_copy_only=False), np.int64)
            put(k, rows, v)


# -- reading ------------------------------------------------------------------------------------

CHUNK_BYTES = 4 << 20


def _inflate(f, path):
    """The text of a gzip file, piece by piece (every member of it, as gzip(1) writes them)."""
    d = zlib.decompressobj(wbits=31)
    for raw in iter(lambda: f.read(1 << 20), b""):
        while raw:
            if d.eof:                       # the next member
                d = zlib.decompressobj(wbits=31)
            try:
                yield d.decompress(raw)
            except zlib.error as e:
                raise TraceError(path, None, None, f"not a valid gzip file ({e})") from None
            raw = d.unused_data if d.eof else b""
    if not d.eof:
        raise TraceError(path, None, None, "truncated gzip file")


def _read_chunks(path: Path, chunk_bytes: int):
    """The text of `path` (plain, or gzip by its magic bytes) in pieces of about `chunk_bytes`
    that end at a newline."""
    try:
        f = open(path, "rb")
    except OSError as e:
        raise TraceError(path, None, None, f"cannot read: {e.strerror or e}") from None
    with f:
        gzipped = f.read(2) == b"\x1f\x8b"
        f.seek(0)
        pieces = _inflate(f, path) if gzipped else iter(lambda: f.read(chunk_bytes), b"")
        left = b""
        for piece in pieces:
            data, start = left + piece, 0
            while len(data) - start >= chunk_bytes:
                cut = data.rfind(b"\n", start, start + chunk_bytes) + 1 or data.find(b"\n", start) + 1
                if not cut:
                    break
                yield data[start:cut]
                start = cut
            left = data[start:]
        if left:
            yield left if left.endswith(b"\n") else left + b"\n"


def _strings_column(n: int, pieces: list, dictionary: bool) -> pa.Array:
    """A column of `n` strings from (rows, strings) pieces, null elsewhere (dictionary-encoded from
    the pieces alone when asked: most rows have none)."""
    values = pa.concat_arrays([p for _, p in pieces])
    rows = np.concatenate([r for r, _ in pieces])
    present = np.zeros(n, bool)
    present[rows] = True
    if dictionary:
        enc = pc.dictionary_encode(values)
        idx = np.zeros(n, np.int32)
        idx[rows] = np.asarray(enc.indices.to_numpy(zero_copy_only=False), np.int32)
        return pa.DictionaryArray.from_arrays(pa.array(idx, mask=~present), enc.dictionary)
    take = np.zeros(n, np.int64)
    take[rows] = np.arange(len(values))
    return values.take(pa.array(take, mask=~present))


def _parse_chunk(data: bytes, path: str, lenient: bool) -> _ChunkResult:
    return _Chunk(data, 1, path).parse(lenient, None)


def _workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _parse_chunks(chunks, path: str, lenient: bool, workers: int | None = None) -> pa.Table:
    """Parse the chunks on a few threads (NumPy and pyarrow release the GIL in their loops; gzip
    is inflated meanwhile) and put the table together in file order, one arrow chunk per piece of
    text: a column a piece lacks is a slice of one shared array, so nothing is copied."""
    workers = workers or _workers()
    results: list[_ChunkResult] = []
    first_line = 1

    def collect(fut):
        nonlocal first_line
        try:
            r = fut.result()
        except TraceError as e:          # chunks count their lines from 1
            raise TraceError(e.path, e.line + first_line - 1, e.text, e.message) from None
        r.line += first_line - 1
        r.found = [(ln + first_line - 1, msg, row) for ln, msg, row in r.found]
        first_line += r.lines
        results.append(r)

    with ThreadPoolExecutor(workers) as pool:
        pending: deque = deque()
        try:
            for data in chunks:
                pending.append(pool.submit(_parse_chunk, data, path, lenient))
                while len(pending) > 2 * workers:
                    collect(pending.popleft())
            while pending:
                collect(pending.popleft())
        finally:
            for fut in pending:
                fut.cancel()
    found = [f for r in results for f in r.found]
    lost = sum(r.lost for r in results)
    results = [r for r in results if r.n] or [_empty_result()]
    names = _Names()                 # the event dictionary, in order of first appearance
    remap = [np.array([names.id(x) for x in r.names] or [0], np.int32) for r in results]
    dictionary = pa.array(names.names, pa.string())
    longest = max(r.n for r in results)
    absent = {t: pa.array(np.full(longest, -1, t.to_pandas_dtype()), t)
              for t in set(COLUMNS.values()) if pa.types.is_integer(t)}
    nulls = {t: pa.nulls(longest, t) for t in (pa.string(), _DICT)}
    cols: dict[str, list] = {k: [] for k in COLUMNS if k != "phase"}
    for r, ids in zip(results, remap):
        cols["line"].append(pa.array(r.line))
        cols["ts"].append(pa.array(r.ts, pa.float64(), mask=np.isnan(r.ts)))
        cols["task"].append(pc.dictionary_encode(r.task))
        cols["event"].append(pa.DictionaryArray.from_arrays(pa.array(ids[r.event]), dictionary))
        for name, typ in COLUMNS.items():
            if pa.types.is_integer(typ) and name != "line":
                cols[name].append(pa.array(r.ints[name], typ) if name in r.ints else absent[typ].slice(0, r.n))
            elif name in _STR_FIELDS:
                pieces = r.strs.get(name)
                cols[name].append(_strings_column(r.n, pieces, typ == _DICT) if pieces
                                  else nulls[typ].slice(0, r.n))
    table = pa.table({k: pa.chunked_array(v, COLUMNS[k]) for k, v in cols.items()})
    bad = np.concatenate([r.bad + start for r, start in zip(results, np.cumsum([0] + [r.n for r in results]))])
    if len(bad):
        keep = np.ones(table.num_rows, bool)
        keep[bad] = False
        table = table.filter(pa.array(keep))
    phase = _phases(table.column("event"), table.column("marker"))
    table = table.add_column(list(COLUMNS).index("phase"), "phase", phase)
    counts = _event_counts(table)
    info = {"source": path, "lines": first_line - 1, "events": table.num_rows,
            "unknown_events": {k: v for k, v in counts.items() if k not in KNOWN_EVENTS},
            "malformed": len(found),
            "malformed_examples": [{"line": ln, "message": msg} for ln, msg, _ in found[:5]],
            "lost_events": lost, "lenient": lenient}
    return table.replace_schema_metadata({METADATA_KEY: json.dumps(info).encode()})


def _empty_result() -> _ChunkResult:
    return _ChunkResult(0, np.zeros(0, np.int64), np.zeros(0), pa.array([], pa.string()),
                        np.zeros(0, np.int32), [], {}, {}, np.zeros(0, np.int64), [], 0, 0)


def _phases(event: pa.ChunkedArray, marker: pa.ChunkedArray) -> pa.Array:
    """The phase of each row: the NAME of the most recent `phase=NAME ...` marker at or before it."""
    n = len(event)
    ids = np.concatenate([np.asarray(c.indices.to_numpy(zero_copy_only=False)) for c in event.chunks]
                         or [np.zeros(0, np.int32)])
    dictionary = event.chunks[0].dictionary.to_pylist() if event.num_chunks else []
    markers = [i for i, x in enumerate(dictionary) if x in _MARKER_EVENTS]
    at = np.flatnonzero(np.isin(ids, markers))
    texts = marker.take(pa.array(at, pa.int64())).to_pylist() if len(at) else []
    names, where = [], []
    for row, text in zip(at.tolist(), texts):
        if text is not None and text.startswith("phase="):
            names.append((text[len("phase="):].split(None, 1) or [""])[0])
            where.append(row)
    labels = list(dict.fromkeys(names))
    code = np.full(n, -1, np.int32)
    code[where] = [labels.index(x) for x in names]
    last = np.full(n, -1, np.int64)             # the row of the latest phase marker
    last[where] = where
    last = np.maximum.accumulate(last) if n else last
    idx = np.where(last >= 0, code[np.maximum(last, 0)], 0).astype(np.int32)
    return pa.DictionaryArray.from_arrays(pa.array(idx, mask=last < 0), pa.array(labels, pa.string()))


def _event_counts(table: pa.Table) -> dict[str, int]:
    """Rows per event name, in order of first appearance."""
    event = table.column("event")
    if len(event) == 0:
        return {}
    ids = np.concatenate([np.asarray(c.indices.to_numpy(zero_copy_only=False), np.int64) for c in event.chunks])
    names = event.chunks[0].dictionary.to_pylist()
    counts = np.bincount(ids, minlength=len(names))
    return {name: int(c) for name, c in zip(names, counts) if c}


# -- public -------------------------------------------------------------------------------------

def parse_trace(path, lenient: bool = False, chunk_bytes: int = CHUNK_BYTES,
                workers: int | None = None) -> pa.Table:
    """Parse an ftrace or trace-cmd report text file (plain or gzip) into the event table, on
    `workers` threads (default: the cores, at most 4).

    Raises `TraceError` naming the file and line for a malformed line (unless `lenient`, which
    skips and counts it) and naming the file for one that cannot be read."""
    path = Path(path)
    if path.is_dir():
        raise TraceError(path, None, None, "is a folder, not a trace file")
    return _parse_chunks(_read_chunks(path, chunk_bytes), str(path), lenient, workers)


def parse_text(text: str | bytes, lenient: bool = False, source: str = "<text>") -> pa.Table:
    """`parse_trace` of text in memory (`source` names it in errors)."""
    data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    if data and not data.endswith(b"\n"):
        data += b"\n"
    return _parse_chunks([data] if data else [], source, lenient)


def trace_info(table: pa.Table) -> dict:
    """What the parse counted: source, lines, events, unknown_events, malformed (with the first
    examples), lost_events."""
    meta = table.schema.metadata or {}
    return json.loads(meta[METADATA_KEY]) if METADATA_KEY in meta else {}


def read_table(path, lenient: bool = False) -> pa.Table:
    """The event table of a trace file, or of a Parquet file written by `farm trace parse`."""
    path = Path(path)
    if path.suffix == ".parquet":
        import pyarrow.parquet as pq
        try:
            return pq.read_table(path)
        except (OSError, pa.ArrowException) as e:
            raise TraceError(path, None, None, f"cannot read Parquet: {e}") from None
    return parse_trace(path, lenient)


def write_table(table: pa.Table, path) -> None:
    """The event table as Parquet (its parse counts kept in the schema metadata)."""
    import pyarrow.parquet as pq
    try:
        pq.write_table(table, path, compression="zstd")
    except (OSError, pa.ArrowException) as e:
        raise TraceError(path, None, None, f"cannot write: {getattr(e, 'strerror', None) or e}") from None


# -- summary ------------------------------------------------------------------------------------

_PAGE_EVENTS = ("mm_page_alloc", "mm_page_free", "mm_page_free_batched", "mm_page_alloc_zone_locked",
                "mm_page_pcpu_drain")


def summarize(table: pa.Table) -> dict:
    """Events per type, orders and migratetypes of the page events, phases (events and time span),
    unknown events and the parse's counts."""
    import pandas as pd
    info = trace_info(table)
    df = table.select(["ts", "event", "phase", "pfn", "order", "migratetype", "percpu_refill"]).to_pandas()
    df["event"] = df["event"].astype(str)
    out: dict = {"source": info.get("source"), "lines": info.get("lines"), "events": int(len(df))}
    out["events_per_type"] = {k: int(v) for k, v in df["event"].value_counts().items()}
    orders, mts = {}, {}
    for ev in _PAGE_EVENTS:
        sub = df[df["event"] == ev]
        if ev == "mm_page_alloc":
            out["failed_allocations"] = int((sub["pfn"] < 0).sum())
            sub = sub[sub["pfn"] >= 0]
        if len(sub):
            orders[ev] = {int(k): int(v) for k, v in sub["order"].value_counts().sort_index().items()}
            mt = sub["migratetype"][sub["migratetype"] >= 0]
            if len(mt):
                mts[ev] = {MIGRATETYPE_NAMES.get(int(k), str(int(k))): int(v)
                           for k, v in mt.value_counts().sort_index().items()}
    out["orders"] = orders
    out["migratetypes"] = mts
    zl = df[(df["event"] == "mm_page_alloc_zone_locked") & (df["percpu_refill"] >= 0)]
    if len(zl):
        out["percpu_refill"] = {int(k): int(v) for k, v in zl["percpu_refill"].value_counts().sort_index().items()}
    phases = []
    phase = df["phase"].astype(object).where(df["phase"].notna(), None)
    key = pd.Series(pd.factorize(phase.fillna("\0"), sort=False)[0], index=df.index)
    for code, grp in df.groupby(key, sort=False):
        name = phase.iloc[grp.index[0]]
        ts = grp["ts"].dropna()
        first, last = (float(ts.iloc[0]), float(ts.iloc[-1])) if len(ts) else (None, None)
        phases.append({"phase": name, "events": int(len(grp)), "first_ts": first, "last_ts": last,
                       "span_s": last - first if len(ts) else None,
                       "events_per_type": {k: int(v) for k, v in grp["event"].value_counts().items()}})
    out["phases"] = phases
    out["unknown_events"] = info.get("unknown_events",
                                     {k: v for k, v in out["events_per_type"].items() if k not in KNOWN_EVENTS})
    out["malformed"] = info.get("malformed", 0)
    out["lost_events"] = info.get("lost_events", 0)
    return out


def format_summary(s: dict) -> str:
    lines = [f"{s['source']}: {s['events']} events on {s['lines']} lines"
             + (f", {s['malformed']} malformed lines skipped" if s.get("malformed") else "")
             + (f", {s['lost_events']} events lost by the kernel" if s.get("lost_events") else "")]
    lines.append("events per type:")
    width = max((len(k) for k in s["events_per_type"]), default=0)
    for k, v in s["events_per_type"].items():
        tag = "  (unknown)" if k in s["unknown_events"] else ""
        lines.append(f"  {k:<{width}}  {v:>9}{tag}")
    if "failed_allocations" in s:
        lines.append(f"failed allocations (mm_page_alloc without a page): {s['failed_allocations']}")
    if s["orders"]:
        lines.append("orders:")
        for ev, hist in s["orders"].items():
            lines.append(f"  {ev:<26} " + ", ".join(f"{o}: {c}" for o, c in hist.items()))
    if s["migratetypes"]:
        lines.append("migratetypes:")
        for ev, hist in s["migratetypes"].items():
            lines.append(f"  {ev:<26} " + ", ".join(f"{t}: {c}" for t, c in hist.items()))
    if s.get("percpu_refill"):
        lines.append("mm_page_alloc_zone_locked percpu_refill: "
                     + ", ".join(f"{k}: {v}" for k, v in s["percpu_refill"].items()))
    lines.append("phases:")
    for p in s["phases"]:
        name = p["phase"] if p["phase"] is not None else "(before the first phase marker)"
        span = (f"{p['first_ts']:.6f} .. {p['last_ts']:.6f} s ({p['span_s']:.3f} s)"
                if p["first_ts"] is not None else "no timestamps")
        lines.append(f"  {name:<32} {p['events']:>9} events  {span}")
    return "\n".join(lines)
