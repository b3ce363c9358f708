"""The per-cpu vmstat counter of free pages (mm/vmstat.c): each CPU's changes to NR_FREE_PAGES
wait in its vm_stat_diff until they pass stat_threshold or the vmstat update folds them, and the
allocator's watermark checks read the folded counter (zone_page_state()); kswapd's and reclaim's
checks read the exact count (zone_watermark_ok_safe())."""

import numpy as np
import pytest

from farm.real import replay as RP
from kernels import constants as C
from kernels.check import check_zone
from kernels.model import Model
from kernels.page_alloc import refresh_vm_stats, zone_watermark_ok, zone_watermark_ok_safe
from kernels.zone import stat_threshold

pytestmark = pytest.mark.kernels


@pytest.mark.parametrize("managed, cpus, expected", [
    # 2 * fls(cpus) * (1 + fls(managed >> 15)), at most 125, worked by hand
    (393216, 1, 10),        # 1.5 GiB: 12 units of 128 MiB, fls 4
    (786432, 2, 24),        # 3 GiB on 2 CPUs: fls(24) = 5, fls(2) = 2
    (3976, 1, 2),           # ZONE_DMA: less than one unit, fls(0) = 0
    (1 << 24, 16, 110),     # 64 GiB on 16 CPUs: fls(512) = 10, fls(16) = 5
    (1 << 28, 64, 125),     # 1 TiB on 64 CPUs: 2 * 7 * 15 = 210, capped
])
def test_stat_threshold_is_calculate_normal_threshold(managed, cpus, expected):
    assert stat_threshold(managed, cpus) == expected


def _free(m):
    z = m.zone
    return int(z.stat[C.NR_FREE_PAGES]), int(z.zp[C.ZP_VM_FREE])


def test_the_counter_lags_until_a_cpus_diff_passes_the_threshold():
    m = Model(1 << 12, 10, 9, policy="v6.10")
    z = m.zone
    exact0, folded0 = _free(m)
    assert exact0 == folded0            # threshold 0 (cells): every change folds at once
    z.zp[C.ZP_STAT_THRESHOLD] = 10
    pages = [m.alloc(0, C.MIGRATE_MOVABLE) for _ in range(10)]
    assert _free(m) == (exact0 - 10, folded0)          # -10 waits in CPU 0's diff
    check_zone(m.node)
    pages.append(m.alloc(0, C.MIGRATE_MOVABLE))
    assert _free(m) == (exact0 - 11, exact0 - 11)      # -11 passes 10: folded
    for p in pages[:4]:
        m.free(p)
    assert _free(m) == (exact0 - 7, exact0 - 11)
    refresh_vm_stats(z)                                # the vmstat update folds the rest
    assert _free(m) == (exact0 - 7, exact0 - 7)
    check_zone(m.node)


def test_the_fast_path_reads_the_folded_counter_and_kswapd_the_exact_one():
    m = Model(1 << 12, 10, 9, policy="v6.10")
    z = m.zone
    z.zp[C.ZP_STAT_THRESHOLD] = 100
    exact0, _ = _free(m)
    for _ in range(50):
        m.alloc(0, C.MIGRATE_MOVABLE)
    mark = exact0 - 50 + 20             # the exact count is 20 pages below it, the folded one above
    assert zone_watermark_ok(z, 0, mark, 0, 0)
    assert not zone_watermark_ok_safe(z, 0, mark, 0, 0)
    refresh_vm_stats(z)
    assert not zone_watermark_ok(z, 0, mark, 0, 0)


def test_replay_gives_each_zone_the_kernels_threshold():
    """A replayed zone drifts as the kernel's: stat_threshold of its managed pages and the
    capture's CPUs."""
    nr = 1 << 12
    empty = np.zeros(0, dtype=np.int64)
    state = RP.InitialState(
        RP.Geometry("Normal", 0, nr, managed=nr, nr_cpus=2),
        np.full(nr >> 9, C.MIGRATE_MOVABLE, dtype=np.uint8), np.zeros(nr, dtype=bool),
        np.arange(0, nr, 1024, dtype=np.int64), np.full(4, 10, dtype=np.int64),
        empty, empty, empty, empty, empty, empty, "test")
    node = RP.build_replay_node(state, 10, 9, "v6.10", nr_cpus=2)
    # 4096 pages: less than one 128 MiB unit, so 2 * fls(2) * (1 + 0)
    assert int(node[0].zp[C.ZP_STAT_THRESHOLD]) == 4
    check_zone(node)


def test_the_vmstat_update_of_a_policy_replay_folds_the_diff():
    """replay_policy() runs the vmstat update at each of the trace's ticks: refresh_vm_stats()
    on the tick's CPU folds what the diff holds before the next event. Two order-0 allocations
    (each leaves -1 in the diff), a tick between them: only the second's -1 is left, whatever
    the diff held before; without the tick the diff keeps it all."""
    from kernels import replay as R

    def run(preset, ticks):
        nr = 1 << 12
        empty = np.zeros(0, dtype=np.int64)
        state = RP.InitialState(
            RP.Geometry("Normal", 0, nr, managed=nr),
            np.full(nr >> 9, C.MIGRATE_MOVABLE, dtype=np.uint8), np.zeros(nr, dtype=bool),
            np.arange(0, nr, 1024, dtype=np.int64), np.full(4, 10, dtype=np.int64),
            empty, empty, empty, empty, empty, empty, "test")
        node = RP.build_replay_node(state, 10, 9, "v6.10", pcp=False)
        z = node[0]
        z.zp[C.ZP_STAT_THRESHOLD] = 10000
        z.zp[C.ZP_PCPS + C.PCPS_VM_DIFF] = preset
        z.zp[C.ZP_VM_FREE] -= preset
        rs = np.zeros(R.RS_SIZE, dtype=np.int64)
        two = lambda v: np.array([v, v], dtype=np.int64)     # noqa: E731
        code, _ = R.replay_policy(node, np.array([R.EV_ALLOC] * 2, dtype=np.int8), two(0), two(0),
                                  two(C.MIGRATE_MOVABLE), two(0), two(0), two(-1), two(0),
                                  np.full(2, -1, dtype=np.int64), 0, 2, rs, 1,
                                  np.array([0.5, 1.5]), np.array(ticks, dtype=np.float64),
                                  np.zeros(len(ticks), dtype=np.int64))
        assert code == 0 and rs[R.RS_ALLOCS] == 2
        return int(z.zp[C.ZP_PCPS + C.PCPS_VM_DIFF])

    assert run(3, [1.0]) == run(0, [1.0]) == -1
    assert run(3, []) == 3 - 2
