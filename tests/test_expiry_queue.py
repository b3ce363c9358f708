"""The steady-state engine's expiry queue (kernels/workloads.py): a timing wheel of one-operation
buckets with a binary heap beyond its range, driven the way steady_state drives it and checked
against a plain Python reference (a dict of slot -> expiry time)."""

import random

import numpy as np
import pytest

from kernels import workloads as W

pytestmark = pytest.mark.kernels


def test_ctz32_of_every_bit_and_of_mixed_words():
    for k in range(32):
        assert W._ctz32(1 << k) == k
    for m in (3, 6, 0x80000000 | 12, 0xFFFFFFFF, 0x80000000):
        assert W._ctz32(m) == (m & -m).bit_length() - 1


def test_wheel_find_goes_through_the_summary_levels():
    wheel, wnext, wbits, ht, hs = W.expiry_queue(8)
    ws = np.zeros(W.WS_SIZE, dtype=np.int64)
    assert W._wheel_find(wbits, 0) == -1
    for t, slot in ((5, 0), (70_000, 1), (W.WHEEL - 1, 2)):
        W._wheel_add(wheel, wnext, wbits, ws, t, slot)
    assert W._wheel_find(wbits, 0) == 5
    assert W._wheel_find(wbits, 6) == 70_000
    assert W._wheel_find(wbits, 70_001) == W.WHEEL - 1
    assert W._wheel_find(wbits, W.WHEEL - 1) == W.WHEEL - 1
    W._wheel_clear(wbits, 70_000)
    assert W._wheel_find(wbits, 6) == W.WHEEL - 1


def _drive(seed, steps, nslots=300):
    """Random adds (expiries from 1 operation to three wheel turns ahead), earliest-first pops
    and the per-operation expiry, as steady_state does them; every result against the
    reference. Returns how many slots went through the heap."""
    rnd = random.Random(seed)
    wheel, wnext, wbits, ht, hs = W.expiry_queue(nslots)
    ws = np.zeros(W.WS_SIZE, dtype=np.int64)
    free = list(range(nslots))
    ref = {}
    via_heap = 0
    now = rnd.randrange(3 * W.WHEEL)
    last_pop = None
    for _ in range(steps):
        now += 1
        # every expiry of `now`, and nothing else
        slot = W._expiry_due(wheel, wnext, wbits, ht, hs, ws, now)
        due = []
        while slot >= 0:
            due.append(slot)
            ws[W.WS_WHEEL] -= 1
            slot = wnext[slot]
        assert sorted(due) == sorted(s for s, t in ref.items() if t == now)
        for s in due:
            del ref[s]
            free.append(s)
        assert all(t > now for t in ref.values())
        last_pop = None
        for _ in range(rnd.choice((0, 1, 2, 3))):
            if free and rnd.random() < 0.6:
                s = free.pop(rnd.randrange(len(free)))
                t = now + 1 + rnd.randrange(rnd.choice((2, 50, 5000, W.WHEEL, 3 * W.WHEEL)))
                via_heap += t - now >= W.WHEEL
                ref[s] = t
                W._expiry_add(wheel, wnext, wbits, ht, hs, ws, now, t, s)
                last_pop = None
            elif ref:
                # the earliest-first pop: the minimum expiry, and pops come in nondecreasing
                # order while nothing is added in between
                s = W._expiry_pop_first(wheel, wnext, wbits, ht, hs, ws, now)
                assert ref[s] == min(ref.values())
                assert ws[W.WS_FRONT] == ref[s]
                if last_pop is not None:
                    assert ref[s] >= last_pop
                last_pop = ref[s]
                del ref[s]
                free.append(s)
        assert ws[W.WS_WHEEL] + ws[W.WS_HEAP] == len(ref)
    times = []
    while ref:
        s = W._expiry_pop_first(wheel, wnext, wbits, ht, hs, ws, now)
        assert ref[s] == min(ref.values())
        times.append(ref.pop(s))
    assert times == sorted(times)
    assert ws[W.WS_WHEEL] == 0 and ws[W.WS_HEAP] == 0
    assert not wbits.any() and (wheel < 0).all()
    return via_heap


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_expiry_queue_matches_a_sorted_reference(seed):
    assert _drive(seed, 3000) > 0


def test_equal_expiries_pop_latest_added_first():
    wheel, wnext, wbits, ht, hs = W.expiry_queue(4)
    ws = np.zeros(W.WS_SIZE, dtype=np.int64)
    for s in (2, 0, 3):
        W._expiry_add(wheel, wnext, wbits, ht, hs, ws, 10, 40, s)
    W._expiry_add(wheel, wnext, wbits, ht, hs, ws, 10, 30, 1)
    assert [W._expiry_pop_first(wheel, wnext, wbits, ht, hs, ws, 11) for _ in range(4)] == [1, 3, 0, 2]
