"""Fragmentation indices (mm/vmstat.c) against values computed by hand."""

import pytest

from kernels.vmstat import extfrag_index, unusable_index

pytestmark = pytest.mark.kernels


def test_unusable_index_by_hand():
    # 4 free order-0 pages and one free order-2 block: 8 free pages
    nr_free = [4, 0, 1, 0]
    # order 0: all usable -> 0; order 1: 2 blocks of order 1 fit in the order-2 block -> 4 pages
    # unusable of 8 -> 500; order 2: same -> 500; order 3: nothing usable -> 1000
    assert unusable_index(nr_free) == [0, 500, 500, 1000]


def test_extfrag_index_by_hand():
    nr_free = [4, 0, 1, 0]
    # orders 0..2 have a suitable block -> -1000; order 3: 1000 - (1000 + 8*1000/8) / 5 = 600
    assert extfrag_index(nr_free) == [-1000, -1000, -1000, 600]
    assert extfrag_index([0, 0, 0]) == [0, 0, 0]
    # all memory free as order 0 pages: order 1 is all fragmentation: 1000 - (1000+500*1000/2)/500
    assert extfrag_index([500, 0]) == [-1000, 1000 - (1000 + 250000) // 500]


def test_unusable_index_of_empty_zone_is_1000():
    assert unusable_index([0, 0]) == [1000, 1000]
