"""Exact pageblock types: the /proc/pageblocktypes snapshots of the capture's module
(farm/real/module/pageblocktypes.c), read, checked against the kernel's own counts, used for the
replay's initial state and compared with the model's types at mid."""

from pathlib import Path

import numpy as np
import pytest

from farm.real import capture as cap
from farm.real import replay as RP
from farm.real.captures import CaptureError, PHASES, read_capture, read_pageblocktypes
from farm.real.zonemap import kernel_zone_map
from kernels import constants as C

SMALL = Path(__file__).resolve().parent / "data" / "k6.12-fragmenter-512m"

TEXT = """# pageblock_order 9 section_pfns 32768
           0    0 DMA      Unmovable   0
         512    0 DMA      Movable     0
        4608    0 DMA32    Reclaimable 1
        4096    0 DMA32    Movable     0
       32768    1 Normal   Isolate     0
"""


def test_reader(tmp_path):
    (tmp_path / "pbt").write_text(TEXT)
    r = read_pageblocktypes(tmp_path / "pbt")
    assert (r["pageblock_order"], r["section_pfns"]) == (9, 32768)
    assert set(r["zones"]) == {"DMA", "DMA32", "node1/Normal"}
    z = r["zones"]["DMA32"]
    # sorted by pfn, the three columns kept together
    assert z["pfn"].tolist() == [4096, 4608] and z["type"] == ["Movable", "Reclaimable"]
    assert z["skip"].tolist() == [False, True]
    assert r["zones"]["node1/Normal"]["type"] == ["Isolate"]


@pytest.mark.parametrize("text, line", [
    ("pageblock_order 9\n", 1),
    (TEXT + "      1024 0 DMA Movable\n", 7),
    (TEXT + "      x 0 DMA Movable 0\n", 7),
])
def test_reader_names_the_line(tmp_path, text, line):
    (tmp_path / "pbt").write_text(text)
    with pytest.raises(CaptureError) as e:
        read_pageblocktypes(tmp_path / "pbt")
    assert e.value.line == line and e.value.path.endswith("pbt")


def _counts(zone: dict) -> dict:
    names, n = np.unique(zone["type"], return_counts=True)
    return dict(zip(names.tolist(), n.tolist()))


MPO12 = SMALL.with_name("kmpo12-fragmenter-512m")


@pytest.mark.parametrize("capture", [SMALL, MPO12], ids=["stock", "max_page_order_12"])
@pytest.mark.parametrize("phase", PHASES)
def test_the_module_agrees_with_pagetypeinfo(phase, capture):
    """At every snapshot, the pageblocks of each type per zone as the module lists them are the
    'Number of blocks type' counts the kernel prints in /proc/pagetypeinfo (the stock kernel's
    headers package, and the tree of a kernel built with MAX_PAGE_ORDER 12)."""
    c = read_capture(capture)
    pbt = c["pageblocktypes"][phase]
    assert pbt["pageblock_order"] == 9 and set(pbt["zones"]) == {"DMA", "DMA32"}
    for zone, z in pbt["zones"].items():
        real = {k: v for k, v in c["pagetypeinfo"][phase]["blocks"][zone].items() if v}
        assert _counts(z) == real
        # one entry per pageblock of every online section, none twice
        assert len(np.unique(z["pfn"])) == len(z["pfn"]) and not (z["pfn"] % 512).any()


def _state(capture, events, pageblock_order=9):
    return RP.initial_state(capture, events, 10, pageblock_order, True)


def test_the_initial_state_takes_the_recorded_types():
    c = read_capture(SMALL)
    events = RP.load_events(c["trace"])
    state = _state(c, events)
    z = c["pageblocktypes"]["before"]["zones"]["DMA32"]
    blocks = z["pfn"] >> 9
    assert [C.MIGRATETYPE_NAMES[t] for t in state.pb_mt[blocks]] == z["type"]
    assert any("as the kernel recorded them" in n for n in state.notes)
    # the recorded type wins over what the trace and kpageflags would suggest
    b = int(blocks[len(blocks) // 2])
    flipped = "Reclaimable" if z["type"][len(blocks) // 2] != "Reclaimable" else "Unmovable"
    types = list(z["type"])
    types[len(blocks) // 2] = flipped
    snap = {**c["pageblocktypes"]["before"], "zones": {**c["pageblocktypes"]["before"]["zones"],
                                                       "DMA32": {**z, "type": types}}}
    changed = _state({**c, "pageblocktypes": {**c["pageblocktypes"], "before": snap}}, events)
    assert C.MIGRATETYPE_NAMES[changed.pb_mt[b]] == flipped
    assert (np.delete(changed.pb_mt, b) == np.delete(state.pb_mt, b)).all()


def test_without_a_recorded_snapshot_the_types_are_inferred():
    c = read_capture(SMALL)
    events = RP.load_events(c["trace"])
    inferred = _state({**c, "pageblocktypes": {}}, events)
    assert any("from pcp drains and claims" in n for n in inferred.notes)
    # a snapshot at another pageblock_order does not apply to the replay's geometry
    other = {**c["pageblocktypes"]["before"], "pageblock_order": 10}
    state = _state({**c, "pageblocktypes": {"before": other}}, events)
    assert any("from pcp drains and claims" in n for n in state.notes)


def test_an_unknown_migratetype_is_named():
    c = read_capture(SMALL)
    z = c["pageblocktypes"]["before"]["zones"]["DMA32"]
    snap = {**c["pageblocktypes"]["before"], "zones": {"DMA32": {**z, "type": ["Weird"] * len(z["type"])}}}
    with pytest.raises(RP.ReplayError, match="pageblocktypes.before has migratetypes Weird"):
        _state({**c, "pageblocktypes": {"before": snap}}, None)


@pytest.mark.slow
def test_pinned_replay_reaches_the_kernels_types_at_mid():
    """Every pageblock of the zones (DMA and DMA32) has the kernel's type at phase=mid after a
    pinned replay from the recorded types: the claims (mm_page_alloc_extfrag) the model follows
    are the kernel's."""
    from farm.real.validate import format_validation, validate
    v = validate(SMALL, with_policy=False)
    t = v["pageblock_types_mid"]
    zones = read_capture(SMALL)["pageblocktypes"]["mid"]["zones"]
    assert sorted(zones) == ["DMA", "DMA32"]
    assert t["blocks"] == sum(len(z["pfn"]) for z in zones.values())
    assert t["agree"] == t["blocks"] and t["differ"] == []
    assert f"pageblock types: {t['blocks']} of {t['blocks']} as the kernel's" in format_validation(v)
    assert not any("pageblocktypes" in s for s in v["skipped"])


def test_the_kernels_zone_map_shows_the_recorded_types():
    c = read_capture(SMALL)
    z = c["pageblocktypes"]["mid"]["zones"]["DMA32"]
    geo = RP.zone_geometry(c, None)
    m = kernel_zone_map(c["kpageflags"]["mid"], geo.zone_start, geo.zone_end, 9, z)
    by_block = dict(zip(m["block"], m["kind"]))
    for pfn, t in zip(z["pfn"].tolist(), z["type"]):
        if pfn < geo.zone_end and by_block[pfn >> 9] != "hole":
            assert by_block[pfn >> 9] == t


def test_a_bzimage_without_its_built_tree_is_named(tmp_path):
    (tmp_path / "bzImage").write_bytes(b"x")
    with pytest.raises(cap.CaptureFailed, match="no built kernel tree with Module.symvers"):
        cap.module_build_tree({"package": None, "bzimage": str(tmp_path / "bzImage")})
