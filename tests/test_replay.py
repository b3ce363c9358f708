"""Trace replay (kernels/replay.py, farm/real/replay.py): hand-worked event sequences on a small zone,
the check_zone invariants along a real trace, and the model judged by the real captures."""

import json
from pathlib import Path

import numpy as np
import pytest

from farm.cli import main
from farm.real import replay as RP
from farm.real.captures import KPF_BUDDY, read_capture, read_kpageflags
from kernels import constants as C
from kernels import replay as R
from kernels.check import check_zone

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
F61 = DATA / "kernel-6.1-fragmenter-2560m"
F612 = DATA / "kernel-6.12-fragmenter-2560m"
MIX = DATA / "kernel-6.1-mixed-1536m"
need_data = pytest.mark.skipif(not F61.exists(), reason="the shared captures are not here")

E = np.empty(0, dtype=np.int64)


def small_node(policy="v6.1", nr=64, max_order=4, pb_order=3, free=None, alloc=()):
    """A 64-page zone, all free in order-4 blocks unless `free` says otherwise."""
    free = [(p, max_order) for p in range(0, nr, 1 << max_order)] if free is None else free
    state = RP.InitialState(
        RP.Geometry("Normal", 0, nr), np.full(nr >> pb_order, C.MIGRATE_MOVABLE, dtype=np.uint8),
        np.zeros(nr, dtype=bool),
        np.array([p for p, _ in free], dtype=np.int64), np.array([o for _, o in free], dtype=np.int64),
        np.array([p for p, _, _ in alloc], dtype=np.int64), np.array([o for _, o, _ in alloc], dtype=np.int64),
        np.array([m for _, _, m in alloc], dtype=np.int64), E, E, E, "test")
    return RP.build_replay_node(state, max_order, pb_order, policy)


def run(node, events, hygiene_check=True):
    """Apply (kind, pfn, order, mt, aux0, aux1) events one at a time with check_zone after each."""
    rs = np.zeros(R.RS_SIZE, dtype=np.int64)
    cols = [np.array([e[i] for e in events], dtype=np.int64) for i in range(6)]
    kind = cols[0].astype(np.int8)
    code, at = R.replay_pinned(node, kind, cols[1], cols[2], cols[3], cols[4], cols[5],
                               np.zeros(len(events), np.int64), 0, len(events), rs, 1)
    assert code == 0, (code, at)
    check_zone(node)
    return rs


def free_blocks(z):
    """{pfn: (order, list type)} of every free block."""
    out = {}
    for p in range(int(z.zp[C.ZP_ZONE_START]), int(z.zp[C.ZP_ZONE_END])):
        if z.page_flags[p] & C.PG_BUDDY:
            out[p] = (int(z.page_order[p]), int(z.page_mt[p]))
    return out


@pytest.mark.kernels
def test_a_free_that_interrupted_the_pcp_lock_holder_goes_to_the_buddy():
    """mm_page_free with aux0 = 1 (the code it interrupted held this CPU's pcp lock): as
    free_one_page(), the page goes to the buddy and merges at once; the same free without it parks
    the page on a pcp list."""
    for direct in (0, 1):
        node = small_node()
        z = node[0]
        run(node, [(R.EV_ZONE_LOCKED, 5, 0, 1, 0, 0), (R.EV_ALLOC, 5, 0, 1, 0, 0)])
        rs = run(node, [(R.EV_FREE, 5, 0, -1, direct, 0)])
        if direct:
            assert rs[R.RS_FREE_TO_BUDDY] == 1 and rs[R.RS_FREE_TO_PCP] == 0
            assert free_blocks(z) == {0: (4, 1), 16: (4, 1), 32: (4, 1), 48: (4, 1)}
            assert z.stat[C.PCP_COUNT] == 0 and z.stat[C.NR_FREE_PAGES] == 64
        else:
            assert rs[R.RS_FREE_TO_PCP] == 1 and z.page_flags[5] & C.PG_PCP and z.stat[C.PCP_COUNT] == 1


def test_which_interrupt_frees_found_the_pcp_lock_held():
    """pcp_locked_frees() on a hand-made CPU history: a softirq free of the task that was emitting
    mm_page_free_batched (the lock held), through its drains; not after another process-context
    event, not for another task (ksoftirqd), not on another CPU, not without irq flags."""
    rows = [  # (event, cpu, pid, irq)
        ("mm_page_free", 0, 7, 0),             # 0 the batch's prepare loop: lock not taken yet
        ("mm_page_free", 0, 7, 1),             # 1 interrupt: not held
        ("mm_page_free_batched", 0, 7, 0),     # 2 lock held from here
        ("mm_page_free", 0, 7, 1),             # 3 held
        ("mm_page_pcpu_drain", 0, 7, 0),       # 4 the batch drains the list: still held
        ("mm_page_free", 0, 7, 1),             # 5 held
        ("mm_page_free", 0, 9, 1),             # 6 ksoftirqd (another task): not the holder
        ("mm_page_free", 1, 7, 1),             # 7 another CPU: nothing before on it
        ("mm_page_alloc", 0, 7, 0),            # 8 the batch is over
        ("mm_page_free", 0, 7, 1),             # 9 not held
        ("mm_page_free_batched", 0, 7, -1),    # 10 no flags in the trace: no context, no rule
        ("mm_page_free", 0, 7, -1),            # 11
    ]
    names, cpu, pid, irq = (np.array(c) for c in zip(*rows))
    got = RP.pcp_locked_frees(names.astype(object), cpu, pid, irq)
    assert np.flatnonzero(got).tolist() == [3, 5]


def test_a_page_seen_on_a_pcp_list_later_was_not_freed_to_the_buddy():
    """The lock may be dropped without a trace event before the interrupt: a candidate free whose
    page is next drained from a pcp list, or allocated without a zone_locked event, stays a pcp
    free; one next taken by zone_locked, or not seen again, goes to the buddy."""
    kind = np.array([R.EV_FREE, R.EV_FREE, R.EV_FREE, R.EV_FREE, R.EV_DRAIN, R.EV_ALLOC,
                     R.EV_ZONE_LOCKED, R.EV_ALLOC], np.int8)
    pfn = np.array([10, 20, 30, 40, 10, 20, 30, 30])
    aux0 = np.array([1, 1, 1, 1, 0, 0, 0, 0])
    RP._unless_on_a_pcp_list(kind, pfn, aux0)
    assert aux0.tolist() == [0, 0, 1, 1, 0, 0, 0, 0]


@pytest.mark.kernels
def test_zone_locked_refill_alloc_free_drain_round_trip():
    node = small_node()
    z = node[0]
    # a pcp refill takes pfn 5 out of the order-4 block at 0: the rest goes back in pieces
    run(node, [(R.EV_ZONE_LOCKED, 5, 0, 1, 1, 0)])
    assert free_blocks(z) == {0: (2, 1), 4: (0, 1), 6: (1, 1), 8: (3, 1), 16: (4, 1), 32: (4, 1), 48: (4, 1)}
    assert z.page_flags[5] & C.PG_PCP and z.stat[C.PCP_COUNT] == 1
    assert list(z.nr_free) == [1, 1, 1, 1, 3]
    assert z.stat[C.NR_FREE_PAGES] == 63
    rs = run(node, [(R.EV_ALLOC, 5, 0, 1, 0, 0)])
    assert z.page_flags[5] & C.PG_HEAD and z.page_flags[5] & C.PG_LRU and z.stat[C.PCP_COUNT] == 0
    assert rs[R.RS_FROM_BUDDY] == 0 and rs[R.RS_FROM_UNKNOWN] == 0
    # the free parks it on a pcp list (order 0), the drain merges it back to order 4
    rs = run(node, [(R.EV_FREE, 5, 0, -1, 0, 0)])
    assert rs[R.RS_FREE_TO_PCP] == 1 and z.page_flags[5] & C.PG_PCP and not z.page_flags[5] & C.PG_LRU
    run(node, [(R.EV_DRAIN, 5, 0, 1, 0, 0)])
    assert free_blocks(z) == {0: (4, 1), 16: (4, 1), 32: (4, 1), 48: (4, 1)}
    assert z.stat[C.PCP_COUNT] == 0 and z.stat[C.NR_FREE_PAGES] == 64


@pytest.mark.kernels
def test_direct_buddy_free_of_a_non_pcp_order_and_a_split_allocation():
    node = small_node()
    z = node[0]
    # an order-2 allocation taken straight from the buddy (percpu_refill=0), then mm_page_alloc
    rs = run(node, [(R.EV_ZONE_LOCKED, 16, 2, 0, 0, 0), (R.EV_ALLOC, 16, 2, 0, 0, 0)])
    assert z.page_flags[16] & C.PG_HEAD and z.page_order[16] == 2 and not z.page_flags[16] & C.PG_LRU
    assert free_blocks(z)[20] == (2, 1) and free_blocks(z)[24] == (3, 1)
    # the block is freed one page at a time (split_page), pages 16..18 to the pcp, 19 drained
    run(node, [(R.EV_FREE, 19, 0, -1, 0, 0), (R.EV_DRAIN, 19, 0, 1, 0, 0)])
    assert free_blocks(z)[19] == (0, 1)
    assert z.page_order[16] == 0 and z.page_flags[17] & C.PG_HEAD and z.page_flags[18] & C.PG_HEAD
    # order 3 is not... a pcp order here is <= 3 or pageblock_order; order 4 > 3 and != 3: buddy
    rs = run(node, [(R.EV_ZONE_LOCKED, 32, 4, 1, 0, 0), (R.EV_ALLOC, 32, 4, 1, 0, 0),
                    (R.EV_FREE, 32, 4, -1, 0, 0)])
    assert rs[R.RS_FREE_TO_BUDDY] == 1 and free_blocks(z)[32] == (4, 1)


@pytest.mark.kernels
def test_conflicting_events_are_counted_and_leave_a_sound_state():
    node = small_node()
    z = node[0]
    before = free_blocks(z)
    # freeing a page that is free already (pcp order and buddy order)
    rs = run(node, [(R.EV_FREE, 20, 0, -1, 0, 0), (R.EV_DRAIN, 20, 0, 1, 0, 0)])
    assert rs[R.RS_FREE_NOT_USED] == 1 and free_blocks(z) == before
    # a drain of a page the model holds allocated (a pcp page when the trace started)
    node = small_node(free=[(0, 4), (16, 4), (32, 4), (48, 3), (58, 1), (60, 2)], alloc=[(56, 0, 1), (57, 0, 1)])
    z = node[0]
    rs = run(node, [(R.EV_DRAIN, 56, 0, 1, 0, 0), (R.EV_ALLOC, 57, 0, 1, 0, 0)])
    assert rs[R.RS_DRAIN_UNKNOWN] == 1 and rs[R.RS_FROM_UNKNOWN] == 0
    assert free_blocks(z)[56] == (0, 1) and z.page_flags[57] & C.PG_HEAD
    # mm_page_alloc of a page still on the buddy lists (compaction capture): taken off
    rs = run(node, [(R.EV_ALLOC, 40, 1, 1, 0, 0)])
    assert rs[R.RS_FROM_BUDDY] == 1 and 40 not in free_blocks(z) and free_blocks(z)[42] == (1, 1)


@pytest.mark.kernels
def test_extfrag_claim_retypes_the_fallback_pageblocks():
    # 6.1: the claim of an order-4 block (two pageblocks of order 3) for an unmovable request
    node = small_node("v6.1")
    z = node[0]
    rs = run(node, [(R.EV_EXTFRAG, 16, 0, 0, 1, 4), (R.EV_ZONE_LOCKED, 16, 0, 0, 1, 0)])
    assert rs[R.RS_CLAIMS] == 2 and list(z.pb_mt[:8]) == [1, 1, 0, 0, 1, 1, 1, 1]
    assert free_blocks(z)[24] == (3, 0) and free_blocks(z)[17] == (0, 0)
    # 6.1 steal without claim: the free block moves to the requested type's list
    rs = run(node, [(R.EV_EXTFRAG, 32, 0, 2, 0, 4)])
    assert free_blocks(z)[32] == (4, 2) and rs[R.RS_CLAIMS] == 0
    # 6.10+: a steal without claim takes the page itself (no zone_locked follows)
    node = small_node("v6.10")
    z = node[0]
    run(node, [(R.EV_EXTFRAG, 48, 0, 0, 0, 4)])
    assert z.page_flags[48] & C.PG_HEAD and free_blocks(z)[49] == (0, 1) and z.pb_mt[6] == 1


@pytest.mark.kernels
def test_policy_replay_places_with_the_model_and_ends_the_right_allocation():
    node = small_node()
    kind = np.array([R.EV_ALLOC, R.EV_ALLOC, R.EV_FREE, R.EV_FREE], dtype=np.int8)
    # the kernel put the two allocations at 40 and 8; the free of 8 ends the second one
    pfn = np.array([40, 8, 8, 40], dtype=np.int64)
    order = np.array([0, 1, 1, 0], dtype=np.int64)
    mt = np.array([1, 1, -1, -1], dtype=np.int64)
    alloc_of = np.full(4, -1, dtype=np.int64)
    offset_of = np.zeros(4, dtype=np.int64)
    R.real_owners(kind, pfn, order, 64, alloc_of, offset_of, np.zeros(64, dtype=np.int64),
                  np.zeros(4, dtype=np.int64))
    assert list(alloc_of) == [-1, -1, 1, 0]
    placed = np.full(4, -1, dtype=np.int64)
    rs = np.zeros(R.RS_SIZE, dtype=np.int64)
    none = np.zeros(4, dtype=np.int64)
    code, _ = R.replay_policy(node, kind, pfn, order, mt, none, none, alloc_of, offset_of, placed, 0,
                              4, rs, 1, np.zeros(4), np.zeros(0), np.zeros(0, dtype=np.int64))
    assert code == 0
    # the model's own choice: both from the head of the movable lists (pcp refills)
    assert placed[0] >= 0 and placed[1] >= 0 and placed[0] != 40
    assert rs[R.RS_ALLOCS] == 2 and rs[R.RS_SAME_PFN] == 0
    z = node[0]
    assert not z.page_flags[placed[0]] & C.PG_HEAD and not z.page_flags[placed[1]] & C.PG_HEAD
    check_zone(node)


def test_pageblock_types_from_the_trace():
    ev = RP.Events(kind=np.array([R.EV_ZONE_LOCKED, R.EV_DRAIN, R.EV_EXTFRAG, R.EV_DRAIN], dtype=np.int8),
                   pfn=np.array([0, 5, 1024, 1030]), order=np.zeros(4, dtype=np.int64),
                   mt=np.array([0, 1, 0, 0]), aux0=np.array([1, 0, 1, 0]), aux1=np.array([0, 0, 10, 0]),
                   fallback_mt=np.array([-1, -1, 2, -1]), ts=np.zeros(4), markers=[])
    types, how = RP.infer_pageblock_types(ev, 6, 9, np.full(6, 1))
    # block 0: the drain (strong) beats the earlier zone_locked; blocks 2-3: the type before the claim
    assert list(types) == [1, 1, 2, 2, 1, 1] and list(how) == [1, 0, 1, 1, 0, 0]


def test_stop_index_and_unknown_marker():
    ev = RP.Events(kind=np.zeros(3, dtype=np.int8), pfn=np.arange(3), order=np.zeros(3, dtype=np.int64),
                   mt=np.ones(3, dtype=np.int64), aux0=np.zeros(3, dtype=np.int64), aux1=np.zeros(3, dtype=np.int64),
                   fallback_mt=np.zeros(3, dtype=np.int64), ts=np.array([1.0, 2.0, 3.0]),
                   markers=[(1, "phase=mid"), (2, "phase=hugepages-2m-done got=5")], source="t")
    assert RP.stop_index(ev, "phase=mid") == 1 and RP.stop_index(ev, "hugepages-2m-done") == 2
    assert RP.stop_index(ev, until_ts=2.0) == 2 and RP.stop_index(ev) == 3
    with pytest.raises(RP.ReplayError, match="no such marker.*phase=mid"):
        RP.stop_index(ev, "phase=nope")


def test_policy_for_kernel():
    assert [RP.policy_for_kernel(v) for v in [(5, 4), (6, 1), (6, 9), (6, 12), (6, 15), (6, 16), (6, 18),
                                               None]] == [
        "v5.4", "v6.1", "v6.1", "v6.10", "v6.15", "v6.16", "v6.17", "v6.17"]


# -- the real captures -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def events61():
    return RP.load_events(F61 / "trace.txt.gz")


@pytest.fixture(scope="module")
def events612():
    return RP.load_events(F612 / "trace.txt.gz")


@need_data
def test_initial_state_from_kpageflags_is_the_kernels(events61):
    cap = read_capture(F61)
    r = RP.replay(None, until="phase=work-start", events=events61, capture=cap)
    before = r["initial_state"]["before"]
    # every KPF_BUDDY page is free and merging leaves exactly the kernel's buddyinfo
    assert before["buddyinfo"]["model"] == before["buddyinfo"]["real"]
    assert before["nr_free_pages"]["model"] == before["nr_free_pages"]["real"]
    # pages the trace shows on the pcp list at the start, against zoneinfo's pcp count
    assert abs(r["initial_state"]["pcp_pages"] - r["initial_state"]["pcp_pages_real"]) <= 0.05 * r["initial_state"]["pcp_pages_real"]


@need_data
@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("which", ["6.1", "6.12"])
def test_pinned_replay_keeps_the_invariants(which, events61, events612):
    ev = events61 if which == "6.1" else events612
    cap = read_capture(F61 if which == "6.1" else F612)
    # every event checked for the first 400 events, then every 40000
    short = RP.Events(*(getattr(ev, f)[:400] for f in ("kind", "pfn", "order", "mt", "aux0", "aux1",
                                                       "fallback_mt", "ts")), markers=[], source="head")
    r = RP.replay(None, events=short, capture=cap, check_every=1)
    assert r["replay"]["events"] == 400
    r = RP.replay(None, until="phase=mid", events=ev, capture=cap, check_every=40000)
    assert r["replay"]["events"] > 1_000_000


@need_data
@pytest.mark.slow
@pytest.mark.heavy
@pytest.mark.parametrize("folder,events", [(F61, "events61"), (F612, "events612")])
def test_pinned_replay_reaches_the_kernels_mid_state(folder, events, request):
    ev = request.getfixturevalue(events)
    cap = read_capture(folder)
    node_out = []
    r = RP.replay(None, until="phase=mid", events=ev, capture=cap, node_out=node_out)
    mid = r["versus_mid"]
    assert mid["buddyinfo_l1"] <= 0.05
    assert mid["nr_free_err"] <= 0.01
    # page by page: the model's free pages against the KPF_BUDDY pages of kpageflags.mid
    z = node_out[0][0]
    free = np.zeros(int(z.zp[C.ZP_ZONE_END]), dtype=bool)
    for p in np.nonzero(z.page_flags & C.PG_BUDDY)[0]:
        free[p:p + (1 << int(z.page_order[p]))] = True
    kpf = read_kpageflags(folder / "kpageflags.mid.gz")[:len(free)]
    real = ((kpf >> KPF_BUDDY) & 1).astype(bool)
    real[:int(z.zp[C.ZP_ZONE_START])] = False
    differ = int(np.count_nonzero(free != real))
    assert differ <= 0.001 * int(real.sum()), differ


@need_data
@pytest.mark.slow
@pytest.mark.heavy
def test_validate_matches_what_the_kernels_obtained(tmp_path, capsys):
    assert main(["validate", "--json", str(F61), str(F612), str(DATA / "README.md")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [v["capture"] for v in out] == [F61.name, F612.name]
    for v in out:
        assert set(v) >= {"capture", "kernel", "policy", "buddyinfo_mid_l1", "nr_free_mid_err",
                          "blocks_mid", "hugepages_2m", "hugepages_1g"}
        assert v["buddyinfo_mid_l1"] <= 0.05 and v["nr_free_mid_err"] <= 0.01
        h = v["hugepages_2m"]
        assert h["asked"] == 3000 and abs(h["model"] - h["real"]) <= 0.10 * h["real"]
        assert v["hugepages_1g"]["model"] == v["hugepages_1g"]["real"] == 0
        assert set(v["blocks_mid"]) == {"real", "model"}
    assert [v["policy"] for v in out] == ["v6.1", "v6.10"]
    # the model's v6.1 policy puts nearly every allocation where Linux 6.1 did
    assert out[0]["placement_agreement"] >= 0.95


@need_data
def test_validate_says_what_it_skipped_without_markers_or_kpageflags(capsys):
    assert main(["validate", "--json", "--no-policy", str(MIX)]) == 0
    v = json.loads(capsys.readouterr().out)[0]
    assert v["buddyinfo_mid_l1"] is None
    assert v["hugepages_2m"] == {"asked": 400, "real": 400, "model": None, "released_before_1g": None}
    assert any("no phase=mid marker" in s for s in v["skipped"])
    assert any("no kpageflags.before" in s for s in v["skipped"])


@need_data
def test_synthesised_state_matches_the_snapshots():
    cap = read_capture(MIX)
    geo = RP.zone_geometry(cap, None)
    state = RP.synthesise_state(cap, geo, 10, 9)
    node = RP.build_replay_node(state, 10, 9, "v6.1")
    fig = RP.zone_figures(node)
    assert fig["buddyinfo"] == cap["buddyinfo"]["before"][geo.zone]
    real = {k: v for k, v in cap["pagetypeinfo"]["before"]["blocks"][geo.zone].items() if v}
    assert fig["blocks"] == real


def test_validate_counts_lines_it_cannot_read_and_goes_on(tmp_path, capsys):
    folder = tmp_path / "cap"
    folder.mkdir()
    ok = "  a-1 [000] ..... 1.000000: mm_page_alloc: page=0x1 pfn=0x10 order=0 migratetype=1 gfp_flags=GFP_KERNEL\n"
    bad = "  a-1 [000] ..... 1.000001: mm_page_free: pfn=banana order=0\n"
    (folder / "trace.txt").write_text(ok + bad + ok.replace("0x10", "0x20"))
    assert main(["trace", "parse", str(folder / "trace.txt"), "-o", str(tmp_path / "e.parquet")]) == 2  # strict
    assert "trace.txt:2: mm_page_free" in capsys.readouterr().err
    assert main(["validate", "--json", str(folder)]) == 0
    v = json.loads(capsys.readouterr().out)[0]
    assert v["trace_malformed"] == 1 and v["trace_malformed_examples"][0]["line"] == 2
    assert v["replay"]["events"] == 2 and v["replay"]["alloc_from_buddy"] == 2
    assert any("1 trace lines could not be read" in s for s in v["skipped"])


def test_replay_cli_errors(tmp_path, capsys):
    assert main(["replay", str(tmp_path / "nope")]) == 2
    assert "no such file or folder" in capsys.readouterr().err
    trace = tmp_path / "t.txt"
    trace.write_text("  a-1 [000] ..... 1.000000: mm_page_alloc: page=0x1 pfn=0x10 order=0 "
                     "migratetype=1 gfp_flags=GFP_KERNEL\n")
    assert main(["replay", str(trace), "--until", "phase=mid"]) == 2
    assert "no such marker" in capsys.readouterr().err
    assert main(["replay", str(trace), "--mode", "policy", "--json"]) == 0
    r = json.loads(capsys.readouterr().out)
    assert r["replay"]["allocs"] == 1 and r["initial_state"]["source"] == "boot"
    assert main(["validate", str(trace)]) == 2


PAGECACHE = Path(__file__).resolve().parent / "data" / "k6.12-pagecache-512m"


def test_the_page_cache_capture_needs_the_interrupted_lock_rule(monkeypatch):
    """A 512 MiB page-cache capture (drop_caches frees slab pages from RCU callbacks in softirqs,
    some while the interrupted task was freeing a batch): pinned replay meets buddyinfo.mid exactly
    with the rule, and misses it without."""
    import farm.real.replay as real
    r = RP.replay(PAGECACHE, "pinned", until="phase=mid")
    assert r["versus_mid"]["buddyinfo_l1"] == 0 and r["versus_mid"]["nr_free_err"] == 0
    assert r["replay"]["free_not_used_pages"] == 0 and r["replay"]["free_to_buddy"] > 0
    monkeypatch.setattr(real, "pcp_locked_frees", lambda names, cpu, pid, irq: np.zeros(len(names), bool))
    r = RP.replay(PAGECACHE, "pinned", until="phase=mid")
    assert r["versus_mid"]["buddyinfo_l1"] > 0.02


OWN = Path(__file__).resolve().parent / "data"


@pytest.mark.parametrize("mode", ["pinned", "policy"])
def test_replay_models_every_zone_of_the_node(mode):
    """A 512 MiB guest has ZONE_DMA and ZONE_DMA32: both are replayed, each event in the zone of
    its pfn (none left outside), each zone with zoneinfo's watermarks and protection (its
    lowmem_reserve), and both end at the kernel's buddyinfo at mid."""
    folder = OWN / "k6.12-fragmenter-512m"
    cap = read_capture(folder)
    nodes = []
    out = RP.replay(folder, mode=mode, until="phase=mid", node_out=nodes)
    zi = cap["zoneinfo"]["before"]
    assert [z["name"] for z in out["zones"]] == ["DMA", "DMA32"]
    assert [(z["start_pfn"], z["end_pfn"]) for z in out["zones"]] == [
        (zi[n]["start_pfn"], zi[n]["start_pfn"] + zi[n]["spanned"]) for n in ("DMA", "DMA32")]
    assert out["events"]["outside_zone"] == 0
    node = nodes[0]
    for z, name in zip(node, ("DMA", "DMA32")):
        assert C.ZONE_NAMES[int(z.zp[C.ZP_ZONE_IDX])] == name
        assert list(z.zp[C.ZP_LOWMEM_RESERVE:C.ZP_LOWMEM_RESERVE + 4]) == zi[name]["protection"][:4]
        assert (int(z.zp[C.ZP_WMARK_MIN]), int(z.zp[C.ZP_WMARK_LOW]), int(z.zp[C.ZP_WMARK_HIGH])) == (
            zi[name]["min"], zi[name]["low"], zi[name]["high"])
    mid = out["versus_mid"]
    for name in ("DMA", "DMA32"):
        assert mid["zones"][name]["buddyinfo"]["real"] == cap["buddyinfo"]["mid"][name]
    if mode == "pinned":
        assert all(mid["zones"][n]["buddyinfo_l1"] == 0.0 for n in ("DMA", "DMA32"))
    # the node's figures are the zones' added order by order
    assert mid["buddyinfo"]["real"] == [a + b for a, b in zip(cap["buddyinfo"]["mid"]["DMA"],
                                                              cap["buddyinfo"]["mid"]["DMA32"])]


def test_pagetypeinfo_leaves_out_pageblocks_without_a_memmap():
    """Pageblocks whose every page is KPF_NOPAGE (an absent section, such as the PCI hole) are not
    counted among the zone's pageblocks, as /proc/pagetypeinfo skips them."""
    folder = OWN / "k6.12-fragmenter-512m"
    cap = read_capture(folder)
    events = RP.load_events(folder / "trace.txt.gz")
    state = RP.initial_state(cap, events, 10, 9, True)
    absent = state.absent_blocks.copy()
    node = RP.build_replay_node(state, 10, 9, "v6.10")
    base = RP.zone_figures(node, state.geometry, absent)
    dma32 = next(g for g in state.geometry.replayed() if g.zone == "DMA32")
    block = (dma32.zone_start >> 9) + 3
    absent[block] = True
    fewer = RP.zone_figures(node, state.geometry, absent)
    mt = C.MIGRATETYPE_NAMES[int(node[0].pb_mt[block])]
    assert fewer["zones"]["DMA32"]["blocks"][mt] == base["zones"]["DMA32"]["blocks"][mt] - 1
    assert base["zones"]["DMA32"]["blocks"] == {k: v for k, v in cap["pagetypeinfo"]["before"]["blocks"]["DMA32"].items() if v}


@pytest.mark.parametrize("gfp, atomic", [
    ("GFP_ATOMIC|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP", True),      # a driver's high-order skb
    ("GFP_ATOMIC|__GFP_NOWARN|__GFP_NORETRY|__GFP_COMP|__GFP_NOMEMALLOC", False),  # page_frag
    ("__GFP_HIGH|__GFP_NOWARN", True),                 # __GFP_HIGH without any reclaim
    ("GFP_NOWAIT|__GFP_NORETRY|__GFP_COMP|__GFP_RECLAIMABLE", False),  # no __GFP_HIGH
    ("GFP_KERNEL|__GFP_HIGH", False),                  # may reclaim directly
    ("GFP_HIGHUSER_MOVABLE|__GFP_COMP", False),
    ("__GFP_HIGHMEM", False),                          # not __GFP_HIGH
    ("", False), (None, False),
])
def test_gfp_atomic_reads_ftrace_gfp_names(gfp, atomic):
    assert RP.gfp_atomic(gfp) is atomic


def test_load_events_marks_gfp_atomic_allocations_for_policy_replay(tmp_path):
    line = "  a-1 [000] ..... 1.00000{i}: mm_page_alloc: page=0x1 pfn={pfn} order=1 migratetype=0 gfp_flags={gfp}\n"
    trace = tmp_path / "t.txt"
    trace.write_text(line.format(i=0, pfn="0x10", gfp="GFP_KERNEL")
                     + line.format(i=1, pfn="0x20", gfp="GFP_ATOMIC|__GFP_NOWARN|__GFP_COMP")
                     + "  a-1 [000] ..... 1.000002: mm_page_free: pfn=0x20 order=1\n")
    ev = RP.load_events(trace)
    assert list(ev.aux0) == [0, C.GFP_ATOMIC, 0]


def test_pages_a_bulk_allocation_took_off_a_pcp_list_are_put_back_as_allocations():
    # CPU 1 refills its order-0 movable list with 100..103 (in that order), CPU 0 its own with 200;
    # 101 leaves by a drain; then a traced allocation takes 103: 100 and 102, refilled before it
    # and neither allocated nor drained, were taken without a trace (alloc_pages_bulk()).
    Z, A, D = R.EV_ZONE_LOCKED, R.EV_ALLOC, R.EV_DRAIN
    rows = [(Z, 100, 1), (Z, 101, 1), (Z, 102, 1), (Z, 103, 1), (Z, 200, 0),
            (D, 101, 1), (A, 103, 1), (A, 200, 0), (A, 100, 1)]
    n = len(rows)
    ev = RP.Events(kind=np.array([r[0] for r in rows], np.int8), pfn=np.array([r[1] for r in rows]),
                   order=np.zeros(n, np.int64), mt=np.ones(n, np.int64),
                   aux0=np.array([1 if r[0] == Z else 0 for r in rows]), aux1=np.zeros(n, np.int64),
                   fallback_mt=np.full(n, -1), ts=np.arange(n, dtype=float),
                   markers=[(6, "phase=mid"), (n, "phase=end")], cpu=np.array([r[2] for r in rows]))
    out = RP.with_untraced_allocs(ev)
    assert out.parse["untraced_pcp_allocs"] == 2
    assert list(out.pfn) == [100, 101, 102, 103, 200, 101, 100, 102, 103, 200, 100]
    assert list(out.kind) == [Z, Z, Z, Z, Z, D, A, A, A, A, A]
    # the synthetic ones: order 0, the list's type, the revealing event's CPU and time
    assert list(out.cpu[6:8]) == [1, 1] and list(out.ts[6:8]) == [6.0, 6.0]
    assert list(out.mt[6:8]) == [1, 1] and list(out.order[6:8]) == [0, 0]
    # a marker stays before the event it preceded, after the synthetic allocations' place
    assert out.markers == [(8, "phase=mid"), (11, "phase=end")]
    # 100 was taken untraced, so its later traced allocation is a new one (the page came back)
    # and is not counted again; a page on another CPU's list is no evidence
    assert RP.with_untraced_allocs(RP.replace(ev, kind=ev.kind.copy())).parse["untraced_pcp_allocs"] == 2
    ev.kind[6] = D                                  # 103 drained instead of allocated: nothing
    assert RP.with_untraced_allocs(ev).parse["untraced_pcp_allocs"] == 0


def test_an_allocation_of_another_order_reveals_nothing():
    Z, A = R.EV_ZONE_LOCKED, R.EV_ALLOC
    ev = RP.Events(kind=np.array([Z, Z, A], np.int8), pfn=np.array([10, 11, 11]),
                   order=np.array([0, 0, 1]), mt=np.zeros(3, np.int64), aux0=np.array([1, 1, 0]),
                   aux1=np.zeros(3, np.int64), fallback_mt=np.full(3, -1), ts=np.zeros(3),
                   markers=[], cpu=np.zeros(3, np.int64))
    assert RP.with_untraced_allocs(ev).parse["untraced_pcp_allocs"] == 0


def _cpu_counts(z):
    """Each CPU's pcp count, CPU 0 loaded again after."""
    from kernels.page_alloc import pcp_switch_cpu
    out = []
    for c in range(int(z.zp[C.ZP_NR_CPUS])):
        pcp_switch_cpu(z, c)
        out.append(int(z.zp[C.ZP_PCP_COUNT]))
    pcp_switch_cpu(z, 0)
    return out


def test_pinned_replay_keeps_each_cpus_lists():
    """Pinned replay on two CPUs: a refill or a free goes onto the list of the event's CPU; an
    allocation or a drain takes the block off whichever CPU's list holds it (a trace's drain
    names the CPU that ran drain_all_pages(), not the one whose lists it drained)."""
    from kernels.page_alloc import boot_node
    from kernels.zone import make_node
    node = make_node(1 << 10, 10, 9, "v6.10", pcp=True, nr_cpus=2)
    boot_node(node)
    z = node[0]
    mv = C.MIGRATE_MOVABLE
    ev = [  # kind, pfn, order, mt, aux0, aux1, cpu
        (R.EV_ZONE_LOCKED, 100, 0, mv, 1, 0, 1),
        (R.EV_ZONE_LOCKED, 101, 0, mv, 1, 0, 1),
        (R.EV_ZONE_LOCKED, 102, 0, mv, 1, 0, 1),
        (R.EV_ZONE_LOCKED, 200, 0, mv, 1, 0, 0),
    ]
    cols = lambda evs: [np.array([e[i] for e in evs], dtype=np.int64) for i in range(7)]  # noqa: E731
    rs = np.zeros(R.RS_SIZE, dtype=np.int64)

    def run(evs):
        c = cols(evs)
        code, at = R.replay_pinned(node, c[0].astype(np.int8), c[1], c[2], c[3], c[4], c[5], c[6],
                                   0, len(evs), rs, 1)
        assert code == 0, (code, at)

    run(ev)
    assert _cpu_counts(z) == [1, 3]
    # CPU 0 allocates the head of CPU 1's list, then drains the tail and the middle of CPU 1's
    run([(R.EV_ALLOC, 100, 0, mv, 0, 0, 0)])
    assert _cpu_counts(z) == [1, 2] and z.page_flags[100] & C.PG_HEAD
    run([(R.EV_DRAIN, 102, 0, mv, 0, 0, 0), (R.EV_DRAIN, 101, 0, mv, 0, 0, 0)])
    assert _cpu_counts(z) == [1, 0]
    # the free on CPU 1 puts the page on CPU 1's list
    run([(R.EV_FREE, 100, 0, mv, 0, 0, 1)])
    assert _cpu_counts(z) == [1, 1] and z.page_flags[100] & C.PG_PCP
    assert int(z.zp[C.ZP_CPU]) == 0
    check_zone(node)


def _drain_events(rows, n_cpus_events=None):
    """Events from (kind, pfn, order, mt, cpu, aux0) rows."""
    n = len(rows)
    col = lambda i, dt=np.int64: np.array([r[i] for r in rows], dt)     # noqa: E731
    return RP.Events(kind=col(0, np.int8), pfn=col(1), order=col(2), mt=col(3),
                     aux0=col(5), aux1=np.zeros(n, np.int64), fallback_mt=np.full(n, -1),
                     ts=np.arange(n, dtype=float), markers=[], cpu=col(4))


def test_a_drain_of_every_cpus_lists_gives_each_page_its_cpu():
    """drain_all_pages() on CPU 1 drains CPU 0's lists, then CPU 1's, each list by list upwards
    (pindex = order * 3 + type): where the list index falls the next CPU starts. The drained
    pages of the first stretch were on CPU 0's lists, though the events name CPU 1."""
    D, F, A = R.EV_DRAIN, R.EV_FREE, R.EV_ALLOC
    rows = [(A, 5, 0, 1, 1, 0),                                   # 0 something else on CPU 1
            (D, 10, 0, 0, 1, 0), (D, 11, 0, 1, 1, 0), (D, 12, 1, 0, 1, 0),   # CPU 0: pindex 0, 1, 3
            (D, 20, 0, 1, 1, 0), (D, 21, 0, 1, 1, 0), (D, 22, 3, 2, 1, 0)]   # CPU 1: pindex 1, 1, 11
    ev = _drain_events(rows)
    idx = np.arange(1, 7)
    got = RP.drained_cpus(ev, idx, None, 2, ev.cpu[idx])
    assert got.tolist() == [0, 0, 0, 1, 1, 1]
    # no fall: nothing tells the CPUs apart, the pages stay with the draining CPU
    mono = _drain_events(rows[:4])
    assert RP.drained_cpus(mono, np.arange(1, 4), None, 2, mono.cpu[1:4]).tolist() == [1, 1, 1]
    # more falls than CPUs: not drain_all_pages() as the rule knows it
    assert RP.drained_cpus(ev, idx, None, 3, ev.cpu[idx]).tolist() == [1] * 6
    # each zone has its own lists: the fall is looked for zone by zone
    zoned = _drain_events(rows[:1] + [(D, 10, 0, 0, 1, 0), (D, 110, 0, 1, 1, 0), (D, 11, 0, 1, 1, 0),
                                       (D, 20, 0, 0, 1, 0), (D, 120, 0, 0, 1, 0)])
    assert RP.drained_cpus(zoned, np.arange(1, 6), np.array([0, 100]), 2,
                           zoned.cpu[1:6]).tolist() == [0, 0, 0, 1, 1]


def test_a_drain_that_a_free_starts_is_its_own_cpus():
    """free_frozen_page_commit() drains its own CPU's lists from the freed page's list and wraps
    round to pindex 0: a fall there is no CPU boundary."""
    D, F = R.EV_DRAIN, R.EV_FREE
    rows = [(F, 1, 1, 0, 1, 0),                                   # an order-1 free onto CPU 1's list
            (D, 30, 1, 0, 1, 0), (D, 31, 1, 2, 1, 0), (D, 40, 0, 0, 1, 0), (D, 41, 0, 0, 1, 0)]
    ev = _drain_events(rows)
    idx = np.arange(1, 5)
    assert RP.drained_cpus(ev, idx, None, 2, ev.cpu[idx]).tolist() == [1, 1, 1, 1]
    # the same drains after a free to the buddy (aux0 = 1) or of another order: drain_all_pages()
    for free in [(F, 1, 1, 0, 1, 1), (F, 1, 0, 0, 1, 0)]:
        ev = _drain_events([free] + rows[1:])
        assert RP.drained_cpus(ev, idx, None, 2, ev.cpu[idx]).tolist() == [0, 0, 1, 1]


def test_frees_between_an_allocation_and_its_tracepoint_go_after_it():
    """An interrupt's frees (or another task's) that the trace shows just before a process-context
    allocation on the same CPU which took none of them came after the allocation had its page:
    they move after it; frees the allocation took one of, frees on another CPU, and the task's own
    process-context frees stay where they are."""
    rows = [  # (event, cpu, pid, irq, pfn)
        ("mm_page_free", 0, 7, 1, 10),     # 0 interrupt on CPU 0 in task 7
        ("mm_page_free", 0, 7, 1, 11),     # 1
        ("mm_page_free", 1, 8, 0, 12),     # 2 CPU 1: not in the run
        ("mm_page_alloc", 0, 7, 0, 20),    # 3 took neither 10 nor 11: 0 and 1 go after it
        ("mm_page_free", 0, 9, 0, 30),     # 4 another task (ksoftirqd) on CPU 0
        ("mm_page_alloc", 0, 7, 0, 30),    # 5 took 30: the free came first
        ("mm_page_free", 0, 7, 0, 40),     # 6 the task's own free
        ("mm_page_alloc", 0, 7, 0, 41),    # 7
        ("mm_page_free", 1, 8, 1, 50),     # 8 interrupt on CPU 1
        ("mm_page_alloc", 1, 8, 1, 51),    # 9 an allocation in an interrupt: not the case
    ]
    names, cpu, pid, irq, pfn = (np.array(c) for c in zip(*rows))
    ts = np.arange(len(rows), dtype=float)
    order, new_ts = RP.interrupt_frees_in_order(names.astype(object), cpu, pid, irq, pfn, ts)
    assert order.tolist() == [2, 3, 0, 1, 4, 5, 6, 7, 8, 9]
    assert new_ts[order].tolist() == [2, 3, 3, 3, 4, 5, 6, 7, 8, 9]
    pfn2 = pfn.copy()
    pfn2[3] = 11                                   # the allocation took 11: nothing moves
    assert RP.interrupt_frees_in_order(names.astype(object), cpu, pid, irq, pfn2, ts)[0] is None


def test_kcompactd_timer_wakeups_from_the_trace(tmp_path):
    """kcompactd's timer checks are where its task goes on after a sleep: the next sleep (it found
    nothing to do) or the proactive compaction's begin; not a kcompactd_do_work() that a wakeup
    started (mm_compaction_suitable first), nor another task's events."""
    lines = [
        "kcompactd0-33 [000] ..... 1.000000: mm_compaction_kcompactd_sleep: nid=0",
        "init-1 [000] ..... 1.200000: mm_page_alloc: page=0x1 pfn=0x10 order=0 migratetype=1 gfp_flags=GFP_KERNEL",
        "kcompactd0-33 [000] ..... 1.500000: mm_compaction_kcompactd_sleep: nid=0",
        "kcompactd0-33 [000] ..... 2.000000: mm_compaction_begin: zone_start=0x1 migrate_pfn=0x1 "
        "free_pfn=0xe00 zone_end=0x1000, mode=sync",
        "kcompactd0-33 [000] ..... 2.100000: mm_compaction_end: zone_start=0x1 migrate_pfn=0x1 "
        "free_pfn=0xe00 zone_end=0x1000, mode=sync status=success",
        "kcompactd0-33 [000] ..... 2.100100: mm_compaction_kcompactd_sleep: nid=0",
        "kcompactd0-33 [000] ..... 2.300000: mm_compaction_suitable: node=0 zone=DMA32 order=9 ret=continue",
        "kcompactd0-33 [000] ..... 2.400000: mm_compaction_kcompactd_sleep: nid=0",
    ]
    trace = tmp_path / "t.txt"
    trace.write_text("".join(f"  {line}\n" for line in lines))
    assert RP.load_events(trace).kcompactd_timer.tolist() == [1.5, 2.0]
    trace.write_text("".join(f"  {line}\n" for line in lines[1:2]))
    assert RP.load_events(trace).kcompactd_timer is None


def test_the_pool_runs_on_the_kernels_clock():
    """PoolClock: before the model's n-th pool allocation, the vmstat updates and kcompactd timer
    checks the trace shows before the kernel's n-th, each once; then the CPU of the kernel's
    n-th allocation (the last one's beyond them) is loaded."""
    from farm.real.validate import PoolClock
    from kernels.page_alloc import pcp_switch_cpu
    from kernels.zone import make_node
    from kernels.page_alloc import boot_node
    A = R.EV_ALLOC
    n = 5
    ev = RP.Events(kind=np.full(n, A, np.int8), pfn=np.arange(n) * 512, order=np.full(n, 9),
                   mt=np.ones(n, np.int64), aux0=np.zeros(n, np.int64), aux1=np.zeros(n, np.int64),
                   fallback_mt=np.full(n, -1), ts=np.array([1.0, 2.0, 3.0, 4.0, 5.0]),
                   markers=[(n, "phase=hugepages-2m-done")], cpu=np.array([0, 0, 1, 1, 1]),
                   flags=np.full(n, RP.EVF_RETRY_MAYFAIL, np.int8),
                   vmstat_updates=np.array([0.5, 2.5, 2.6, 9.0]), vmstat_updates_cpu=np.array([0, 1, 0, 0]),
                   kcompactd_timer=np.array([1.5, 4.5]))
    clock = PoolClock(ev, ["compact", "hugepages:order=9,count=8"], {0: (0, 0), 1: (0, 0)})
    V, K = PoolClock.VMSTAT, PoolClock.KCOMPACTD
    # 0.5 is before the first pool page (the interlude's), 9.0 after the marker
    assert clock.steps == [(1, K, -1), (2, V, 1), (2, V, 0), (4, K, -1)]
    node = make_node(4096, 10, 9, "v6.10", pcp=True, nr_cpus=2)
    boot_node(node)
    z = node[-1]
    for c in range(2):
        pcp_switch_cpu(z, c)
        z.zp[C.ZP_PCP_HIGH] = z.zp[C.ZP_PCP_HIGH_MAX]
    pcp_switch_cpu(z, 0)
    highs = lambda: [int(z.zp[C.ZP_PCPS + c * C.PCPS_SLOTS + 1]) for c in range(2)]    # noqa: E731
    clock(0, 0, node)                     # another probe: nothing
    assert clock.next == 0
    clock(1, 0, node)
    assert clock.next == 0 and int(z.zp[C.ZP_CPU]) == 0
    clock(1, 2, node)                     # the timer check, both vmstat updates: high decays
    assert clock.next == 3 and int(z.zp[C.ZP_CPU]) == 1
    pcp_switch_cpu(z, 0)
    assert all(h < int(z.zp[C.ZP_PCP_HIGH_MAX]) for h in highs())
    clock(1, 7, node)                     # beyond the kernel's pages: its last CPU
    assert clock.next == 4 and int(z.zp[C.ZP_CPU]) == 1


def test_the_trace_corrects_pages_the_snapshot_read_before_tracing_began():
    """The `before` files are read, then tracing starts: a refill in between puts free pages on
    a pcp list, an allocation takes one of them, and neither is traced. A page the snapshot shows
    free whose first event takes it from a pcp list starts on that list; one whose first event
    frees it, in a max-order block such a refill took pages from, starts allocated. A page freed
    first with no such refill beside it was taken during the trace without an event (a
    compaction's migration target) and starts free. Made here by marking such pages free in
    kpageflags.before of a real capture."""
    folder = Path(__file__).parent / "data" / "k6.12-fragmenter-512m"
    cap = read_capture(folder)
    events = RP.load_events(Path(cap["trace"]), zones=RP.zone_starts(cap))
    g = RP.resolve_geometry(cap, None, None)
    mo, pbo = g["max_order"], g["pageblock_order"]
    st = RP.initial_state(cap, events, mo, pbo, True)
    allocated = set(st.alloc_pfn[st.alloc_order == 0].tolist())
    frees = np.flatnonzero((events.kind == R.EV_FREE) & (events.order == 0))
    first_freed = [int(events.pfn[i]) for i in frees
                   if RP.first_event_index(events, events.pfn[i:i + 1])[0] == i and int(events.pfn[i]) in allocated]
    block = lambda p: p >> mo                                            # noqa: E731
    pcp0 = st.pcp_pfn[st.pcp_order == 0].tolist()
    on_pcp, freed = next((q, f) for q in pcp0 for f in first_freed if block(q) == block(f))
    pcp_blocks = {block(q) for q in st.pcp_pfn.tolist()}
    target = next(f for f in first_freed if block(f) not in pcp_blocks)
    assert not any("kpageflags.before" in note for note in st.notes)
    kpf = cap["kpageflags"]["before"].copy()
    for p in (on_pcp, freed, target):
        kpf[p] = np.uint64(1) << np.uint64(KPF_BUDDY)
    cap2 = dict(cap, kpageflags=dict(cap["kpageflags"], before=kpf))
    st2 = RP.initial_state(cap2, events, mo, pbo, True)
    assert on_pcp in set(st2.pcp_pfn.tolist()) and freed in set(st2.alloc_pfn.tolist())
    assert on_pcp not in set(st2.free_pfn.tolist()) and freed not in set(st2.free_pfn.tolist())
    assert any(n.startswith("1 pages free in kpageflags.before are on a pcp list") for n in st2.notes)
    assert any(n.startswith("1 pages free in kpageflags.before are allocated") for n in st2.notes)
    # the migration target stays free: the initial free blocks cover it
    free2 = np.zeros(len(kpf), bool)
    for p, o in zip(st2.free_pfn.tolist(), st2.free_order.tolist()):
        free2[p:p + (1 << o)] = True
    assert free2[target] and target not in set(st2.alloc_pfn.tolist())
    # every other free block, pcp and allocated page as before
    free1 = np.zeros(len(kpf), bool)
    for p, o in zip(st.free_pfn.tolist(), st.free_order.tolist()):
        free1[p:p + (1 << o)] = True
    free1[target] = True
    assert (free2 == free1).all()
    assert len(st2.pcp_pfn) == len(st.pcp_pfn)
    # and the pinned replay reaches the kernel's mid state from it, as from the true snapshot
    r = RP.replay(None, "pinned", until="phase=mid", events=events, capture=cap2, check_every=20000)
    assert r["versus_mid"]["buddyinfo_l1"] == 0.0
