"""Hypothesis strategies for ftrace text: event lines in the layouts the kernel and trace-cmd print
(and odder spacing), with the fields of the events farm.real.trace knows, and mutations of them."""

from hypothesis import strategies as st

TRICKY = list(" \t-[]:.0123456789x_=()~,#aZé\r\x0b\x00") + ["\u00a0", "\u2028", "ř"]

tasks = st.one_of(
    st.sampled_from(["init", "work2", "ksoftirqd/0", "kworker/0:1-events", "<...>", "cat", "a b", "x-1 [2]"]),
    st.text(alphabet=st.sampled_from(list("ab-_/:[] 09.<>é\t#")), min_size=1, max_size=18))
numbers = st.one_of(st.integers(0, 9), st.integers(0, 2**20), st.integers(-(2**40), 2**40),
                    st.sampled_from([2**31, 2**63 - 1, 10**9, 127, 128, -129, 32767, 32768]))
pages = st.sampled_from(["(____ptrval____)", "0000000000000000", "(null)", "0x0", "0xffffea0000579640",
                         "00000000ab0c", "(nil)", "0", "x", "(____ptrval____"])


# address fields are the kernel's unsigned long: values up to 2**64 - 1, and one past it
addresses = st.one_of(numbers, st.integers(2**63, 2**64 - 1), st.sampled_from([2**63, 2**64 - 1, 2**64]))


def _num(draw, hexa=False):
    v = draw(addresses if hexa else numbers)
    if hexa and v >= 0 and draw(st.booleans()):
        return hex(v) if draw(st.booleans()) else "0x" + format(v, "X")
    return str(v)


@st.composite
def fields(draw, event):
    n = lambda hexa=False: _num(draw, hexa)  # noqa: E731
    page = f"page={draw(pages)} " if draw(st.booleans()) else ""
    gfp = draw(st.sampled_from(["GFP_KERNEL", "GFP_HIGHUSER_MOVABLE|__GFP_COMP", "none", "", "a b"]))
    zone = draw(st.sampled_from(["DMA     ", "DMA32   ", "Normal  ", "Movable", ""]))
    table = {
        "mm_page_alloc": f"{page}pfn={n(True)} order={n()} migratetype={n()} gfp_flags={gfp}",
        "mm_page_free": f"{page}pfn={n(True)} order={n()}",
        "mm_page_free_batched": f"{page}pfn={n(True)} order={n()}" + draw(st.sampled_from(["", f" cold={n()}"])),
        "mm_page_alloc_zone_locked": f"{page}pfn={n(True)} order={n()} migratetype={n()}"
                                     + draw(st.sampled_from(["", f" percpu_refill={n()}"])),
        "mm_page_pcpu_drain": f"{page}pfn={n(True)} order={n()} migratetype={n()}",
        "mm_page_alloc_extfrag": f"{page}pfn={n(True)} alloc_order={n()} fallback_order={n()} pageblock_order={n()} "
                                 f"alloc_migratetype={n()} fallback_migratetype={n()} fragmenting={n()} "
                                 f"change_ownership={n()}",
        "mm_compaction_isolate_freepages": f"range=({n(True)} ~ {n(True)}) nr_scanned={n()} nr_taken={n()}",
        "mm_compaction_migratepages": f"nr_migrated={n()} nr_failed={n()}",
        "mm_compaction_begin": f"zone_start={n(True)} migrate_pfn={n(True)} free_pfn={n(True)} zone_end={n(True)}, "
                               f"mode={draw(st.sampled_from(['sync', 'async']))}",
        "mm_compaction_end": f"zone_start={n(True)} migrate_pfn={n(True)} free_pfn={n(True)} zone_end={n(True)}, "
                             f"mode=sync status={draw(st.sampled_from(['complete', 'continue', 'x y']))}",
        "mm_compaction_suitable": f"node={n()} zone={zone} order={n()} ret=continue",
        "mm_compaction_deferred": f"node={n()} zone={zone} order={n()} order_failed={n()} consider={n()} limit={n()}",
        "mm_compaction_kcompactd_sleep": f"nid={n()}",
        "mm_compaction_wakeup_kcompactd": f"nid={n()} order={n()} classzone_idx={zone}",
        "mm_compaction_try_to_compact_pages": f"order={n()} gfp_mask={gfp} priority={n()}",
        "tracing_mark_write": draw(st.sampled_from(["phase=work-start", "phase=mid", "phase=hugepages-2m-done got=7",
                                                    "phase=", "hello: world", ""])),
        "print": "tracing_mark_write: " + draw(st.sampled_from(["phase=a", "phase=b c", "x"])),
    }
    return table.get(event, draw(st.text(alphabet=st.sampled_from(TRICKY), max_size=30)))


events = st.sampled_from(["mm_page_alloc", "mm_page_free", "mm_page_free_batched", "mm_page_alloc_zone_locked",
                          "mm_page_pcpu_drain", "mm_page_alloc_extfrag", "mm_compaction_isolate_freepages",
                          "mm_compaction_migratepages", "mm_compaction_begin", "mm_compaction_end",
                          "mm_compaction_suitable", "mm_compaction_deferred", "mm_compaction_kcompactd_sleep",
                          "mm_compaction_wakeup_kcompactd", "mm_compaction_try_to_compact_pages",
                          "tracing_mark_write", "print", "sched_switch", "x"])


@st.composite
def event_lines(draw):
    task, event = draw(tasks), draw(events)
    pid, cpu = draw(st.integers(0, 10**11)), draw(st.integers(0, 1200))
    sec, frac = draw(st.integers(0, 10**7)), draw(st.integers(0, 999999))
    flags = draw(st.sampled_from([".....", "d..3.", "dN.2.", ".Ns4.", "d.h2", "..H1.", "....", "1...", "X", "d:", ""]))
    rest = draw(fields(event))
    style = draw(st.sampled_from(["ftrace", "ftrace", "ftrace", "trace-cmd", "loose"]))
    if style == "ftrace":
        line = f"{task:>16}-{pid:<7} [{cpu:03d}] {flags} {sec:5d}.{frac:06d}: {event}: {rest}"
    elif style == "trace-cmd":
        line = f"{task:>16}-{pid:<5} [{cpu:03d}] {sec}.{frac:06d}: {event + ':':<20} {rest}"
    else:
        sp = lambda: draw(st.sampled_from([" ", "  ", "\t", " \t"]))  # noqa: E731
        line = f"{sp()}{task}-{pid}{sp()}[{cpu}]{sp()}{flags}{sp()}{sec}.{frac}:{sp()}{event}:{sp()}{rest}"
    return line


@st.composite
def mutated(draw, line):
    chars = list(line)
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(chars)))
        what = draw(st.sampled_from(["insert", "delete", "replace"]))
        c = draw(st.sampled_from(TRICKY))
        if what == "insert" or not chars:
            chars.insert(i, c)
        elif what == "delete":
            del chars[min(i, len(chars) - 1)]
        else:
            chars[min(i, len(chars) - 1)] = c
    return "".join(chars)


@st.composite
def lines(draw):
    line = draw(event_lines())
    kind = draw(st.sampled_from(["event"] * 6 + ["mutated"] * 3 + ["text", "comment", "blank", "lost", "header"]))
    if kind == "mutated":
        return draw(mutated(line))
    if kind == "text":
        return draw(st.text(max_size=60).map(lambda x: x.replace("\n", " ")))
    if kind == "comment":
        return draw(st.sampled_from(["# tracer: nop", "#", "   # indented", "##### CPU 1 buffer started ####"]))
    if kind == "blank":
        return draw(st.sampled_from(["", "   ", "\t"]))
    if kind == "lost":
        return f"CPU:{draw(st.integers(0, 9))} [LOST {draw(st.integers(1, 10**6))} EVENTS]"
    if kind == "header":
        return draw(st.sampled_from(["cpus=2", "CPU 1 is empty"]))
    return line


texts = st.lists(lines(), max_size=40).map(lambda xs: "\n".join(xs) + ("\n" if xs else ""))
