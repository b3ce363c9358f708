"""Zone maps (farm/real/zonemap.py), their figure and the `farm validate --report` pages."""

import numpy as np
import pytest

from farm.real.captures import KPF_BUDDY, KPF_LRU, KPF_NOPAGE, KPF_RESERVED, KPF_SLAB
from farm.real.zonemap import (FREE, HOLE, KERNEL, LRU, SLAB, ZONE_MAP_MAX_BLOCKS, decode_zone_map, encode_zone_map,
                               kernel_zone_map, model_zone_map)
from kernels import constants as C
from kernels.page_alloc import alloc_pages, boot_node
from kernels.page_isolation import start_isolate_page_range
from kernels.zone import make_node
from reports.figures import draw_zone_maps, zone_map_colour
from reports.validation import capture_document, write_validation_report, zone_map_frame

PB = 1 << 9


def booted(holes=()):
    node = make_node(8 * PB, 10, 9, "v6.15", holes=holes)
    boot_node(node)
    return node


def test_model_map_of_a_booted_zone_with_a_hole():
    m = model_zone_map(booted(holes=((2 * PB, 3 * PB),)))
    assert m["block"] == list(range(8))
    assert m["free"] == [1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 1.0]
    assert m["hole"] == [False, False, True] + [False] * 5
    assert set(m["kind"]) == {"Movable"} and not any(m["isolated"])


def test_model_map_follows_allocations_claims_and_isolation():
    node = booted()
    pfns = [alloc_pages(node, 0, C.MIGRATE_UNMOVABLE, 0) for _ in range(3)]
    assert min(pfns) >= 0
    m = model_zone_map(node)
    b = pfns[0] >> 9
    assert m["free"][b] == (PB - 3) / PB
    assert m["kind"][b] == "Unmovable"
    # the claim took the whole order-10 block: both its pageblocks are Unmovable now
    assert m["kind"][b ^ 1] == "Unmovable" and m["free"][b ^ 1] == 1.0
    z = node[0]
    other = 6 * PB
    assert start_isolate_page_range(z, other, other + PB, C.MIGRATE_MOVABLE, other, other + PB) == 0
    m = model_zone_map(node)
    assert m["isolated"] == [i == 6 for i in range(8)] and m["kind"][6] == "Isolate"


def test_kernel_map_from_kpageflags():
    bit = lambda b: np.uint64(1 << b)  # noqa: E731
    kpf = np.zeros(5 * PB, np.uint64)
    kpf[0:PB] = bit(KPF_BUDDY)                                   # all free
    kpf[PB:PB + PB // 4] = bit(KPF_LRU)                          # a quarter LRU, the rest free
    kpf[PB + PB // 4:2 * PB] = bit(KPF_BUDDY)
    kpf[2 * PB:3 * PB] = bit(KPF_NOPAGE)                         # a hole
    kpf[3 * PB:3 * PB + 300] = bit(KPF_SLAB)                     # mostly slab
    kpf[3 * PB + 300:4 * PB] = 0                                 # other kernel pages
    kpf[4 * PB:5 * PB] = bit(KPF_RESERVED)
    kpf[4 * PB:4 * PB + 10] = 0                                  # a few kernel pages among reserved ones
    m = kernel_zone_map(kpf, 0, 5 * PB, 9)
    assert m["kind"] == [FREE, LRU, HOLE, SLAB, KERNEL]
    assert m["free"] == [1.0, 0.75, 0.0, 0.0, 0.0]
    assert m["hole"] == [False, False, True, False, False]


def test_a_zone_that_starts_inside_a_pageblock_counts_only_its_pages():
    kpf = np.full(2 * PB, np.uint64(1 << KPF_BUDDY))
    m = kernel_zone_map(kpf, 100, 2 * PB, 9)
    assert m["block"] == [0, 1] and m["free"] == [(PB - 100) / PB, 1.0]


def result(node, kpf):
    m = model_zone_map(node)
    return {"capture": "cap one", "kernel": "6.12.0", "policy": "v6.10", "max_order": 10, "pageblock_order": 9,
            "buddyinfo_mid_l1": 0.01, "nr_free_mid_err": 0.002, "placement_agreement": None,
            "buddyinfo_mid": {"real": [1, 2, 3], "model": [1, 2, 4]},
            "blocks_mid": {"real": {"Movable": 7, "Unmovable": 1}, "model": {"Movable": 6, "Unmovable": 2}},
            "hugepages_2m": {"asked": 10, "real": 7, "model": 6}, "hugepages_1g": {"asked": 0, "real": None, "model": None},
            "skipped": ["something not compared"],
            "zone_map_mid": {"zone": "DMA32", "model": m, "kernel": kernel_zone_map(kpf, 0, 8 * PB, 9)}}


def test_capture_page_holds_maps_tables_and_what_was_skipped():
    node = booted()
    alloc_pages(node, 3, C.MIGRATE_UNMOVABLE, 0)
    kpf = np.full(8 * PB, np.uint64(1 << KPF_BUDDY))
    kpf[:8] = np.uint64(0)
    v = result(node, kpf)
    frame = zone_map_frame(v)
    assert len(frame) == 16 and frame["side"].nunique() == 2
    doc = capture_document(v)
    titles = [s.title for s in doc.sections]
    assert titles == ["The zone at phase=mid", "Free blocks per order at phase=mid (buddyinfo)",
                      "Pageblocks by migratetype at phase=mid (pagetypeinfo)", "Huge pages after compaction",
                      "Not compared"]
    buddy = doc.sections[1].blocks[0]
    assert buddy.rows == [["0", "1", "1"], ["1", "2", "2"], ["2", "3", "4"]]
    fig = draw_zone_maps(frame)
    assert len(fig.axes) == 2


def test_colours_lighten_with_the_free_share_and_holes_are_black():
    full, half, free = (zone_map_colour("Movable", f, False) for f in (0.0, 0.5, 1.0))
    assert sum(full) < sum(half) < sum(free) < 3.0
    assert zone_map_colour("Movable", 0.0, False) == zone_map_colour(LRU, 0.0, False)
    assert zone_map_colour("Unmovable", 0.3, True) == (0.0, 0.0, 0.0)


def test_report_files(tmp_path):
    node = booted()
    v = result(node, np.full(8 * PB, np.uint64(1 << KPF_BUDDY)))
    index = write_validation_report([v], tmp_path)
    assert index == tmp_path / "index.html"
    page = (tmp_path / "cap-one.html").read_text()
    assert "Zone DMA32 at phase=mid" in page and "data:image/png;base64," in page
    assert '<a href="cap-one.html">cap one</a>' in index.read_text()
    assert (tmp_path / "figures" / "cap-one-zone-map.png").stat().st_size > 1000


def test_farm_simulate_draws_the_final_zone(tmp_path):
    from farm.cli import main
    png = tmp_path / "zone.png"
    assert main(["simulate", "--workload", "fragmenter", "--memory", "32M", "--zone-map", str(png)]) == 0
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_a_map_round_trips_through_a_sweep_result():
    node = booted(holes=((2 * PB, 3 * PB),))
    for _ in range(5):
        assert alloc_pages(node, 0, C.MIGRATE_RECLAIMABLE, 0) >= 0
    z = node[0]
    assert start_isolate_page_range(z, 6 * PB, 7 * PB, C.MIGRATE_MOVABLE, 6 * PB, 7 * PB) == 0
    m = model_zone_map(node)
    enc = encode_zone_map(m)
    assert set(enc) == {"first_block", "blocks"} and isinstance(enc["blocks"], str)
    back = decode_zone_map(enc["first_block"], enc["blocks"])
    assert back["block"] == m["block"] and back["hole"] == m["hole"] and back["isolated"] == m["isolated"]
    assert back["kind"] == [HOLE if h else k for k, h in zip(m["kind"], m["hole"])]
    assert np.abs(np.array(back["free"]) - np.array(m["free"])).max() <= 0.5 / 255
    big = {k: v * (ZONE_MAP_MAX_BLOCKS // 8 + 1) for k, v in m.items()}
    assert encode_zone_map(big) is None


def test_a_cell_carries_the_map_of_the_state_before_its_probes():
    from farm.cell.simulate import run
    params = {"memory": "64M", "max_order": 10, "workload": "fragmenter", "ops": 20000, "seed": 3}
    probed = run({**params, "probe": ["hugepages:order=9,count=8"]}, zone_map=True)
    nodes = []
    plain = run(params, node_out=nodes)
    assert "zone_map" not in plain
    assert decode_zone_map(**probed["zone_map"]) == decode_zone_map(**encode_zone_map(model_zone_map(nodes[0])))
