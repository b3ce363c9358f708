"""A line-by-line reference reader of ftrace text, written from the grammar alone (`LINE_RE` and the
per-event `LAYOUTS` of farm.real.trace, applied with Python's re to one line at a time). The vectorised
parser must give the same table on any input: its fast paths accept a line only when this reading
of it is the same."""

from __future__ import annotations

import re

import numpy as np

from farm.real.trace import (_ADDR_FIELDS, _HEADER_RE, _INTERNAL_FIELDS, _LAYOUT_RE, _LOST_RE, _MARKER_EVENTS,
                        COLUMNS, LINE_RE, LOST_EVENT)

_NULL_PAGE = re.compile(r"(0x)?0+|\(null\)|\(nil\)")


class ReferenceError(ValueError):
    def __init__(self, line, message):
        self.line, self.message = line, message
        super().__init__(f"{line}: {message}")


def reference_parse(text: str, lenient: bool = False):
    """-> (columns: name -> list, malformed line numbers). Integers absent from an event are -1,
    strings None, ts None where the line has none."""
    cols = {k: [] for k in COLUMNS}
    malformed = []
    phase = None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    for number, line in enumerate(lines, 1):
        if line.endswith("\r"):
            line = line[:-1]
        if not line.strip(" \t") or line.lstrip(" \t").startswith("#") or _HEADER_RE.fullmatch(line):
            continue
        row = {k: (-1 if k in _INTS else None) for k in COLUMNS}
        m = LINE_RE.fullmatch(line)
        if m is None:
            lost = _LOST_RE.fullmatch(line)
            if lost is None:
                if not lenient:
                    raise ReferenceError(number, "not an ftrace event line")
                malformed.append(number)
                continue
            row.update(event=LOST_EVENT, cpu=int(lost["cpu"]), marker=line)
        else:
            flags = m["flags"]
            row.update(task=m["task"], pid=int(m["pid"]), cpu=int(m["cpu"]), ts=float(m["ts"]),
                       event=m["event"],
                       irq=-1 if flags is None else int(len(flags) >= 3 and flags[2] in "zZhHs"))
            rest = m["rest"] or ""
            try:
                _fields(row, rest)
            except ReferenceError as e:
                if not lenient:
                    raise ReferenceError(number, e.message) from None
                malformed.append(number)
                continue
        row["line"] = number
        out = [k for k in COLUMNS if k in _INTS and row[k] != -1 and not _fits(k, row[k])]
        if out:
            if not lenient:
                raise ReferenceError(number, f"{out[0]}={row[out[0]]} out of range")
            malformed.append(number)
            continue
        if row["event"] in _MARKER_EVENTS and row["marker"] is not None and row["marker"].startswith("phase="):
            phase = (row["marker"][len("phase="):].split(None, 1) or [""])[0]
        row["phase"] = phase
        for k in COLUMNS:
            cols[k].append(row[k])
    return cols, malformed


_INTS = {k for k, t in COLUMNS.items() if str(t).startswith("int")}


def _fits(name, value):
    info = np.iinfo(COLUMNS[name].to_pandas_dtype())
    return info.min <= value <= info.max


def _fields(row, rest):
    event = row["event"]
    if event in _MARKER_EVENTS:
        row["marker"] = rest
        return
    if event not in _LAYOUT_RE:
        return
    fm = _LAYOUT_RE[event].fullmatch(rest)
    if fm is None:
        raise ReferenceError(None, f"{event}: fields do not fit its layout")
    groups = {k: v for k, v in fm.groupdict().items() if v is not None}
    if "ip" in groups and groups["ip"] == "tracing_mark_write":
        row["event"] = "tracing_mark_write"
    for k, v in groups.items():
        if k in _INTERNAL_FIELDS:
            continue
        if k in _INTS:
            if v == "":
                continue
            if k not in _ADDR_FIELDS:
                value = int(v)
            else:
                # the kernel's unsigned long, kept bit for bit in the int64 column
                value = int(v, 16) if v.startswith("0x") else int(v)
                if value >= 2**64:
                    raise ReferenceError(None, f"{k}={value} is more than 64 bits")
                if value >= 2**63:
                    value -= 2**64
            if k == "pfn" and groups.get("page") is not None and _NULL_PAGE.fullmatch(groups["page"]):
                value = -1
            row[k] = value
        else:
            row[k] = v
