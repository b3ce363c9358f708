"""Migration that splits (migrate_pages_batch() in mm/migrate.c, 6.1 and 6.12): a large folio
with no free target of its order is split into base pages, which are migrated one by one; the
owner of the folio frees every piece."""

import numpy as np
import pytest

from kernels import constants as C
from kernels.check import check_node
from kernels.compaction import compact_node, free_owned
from kernels.page_alloc import alloc_pages, boot_node, free_pages
from kernels.page_isolation import CONTIG_OK, FAIL_MIGRATION, FAIL_NO_TARGET, alloc_contig_range
from kernels.zone import make_node

pytestmark = pytest.mark.kernels

POLICIES = ("v6.1", "v6.15")


def _free_list(z, order, mt):
    out, p = [], z.list_head[order * C.MIGRATE_TYPES + mt]
    while p >= 0:
        out.append(int(p))
        p = z.next[p]
    return out


def _owned_folio_among_order0_holes(policy, holes_every=2, pinned=False):
    """4096 pages, max_order 6, pageblock_order 4 (min watermark 32 pages): an owned movable
    order-4 folio at pfn 0 (slot 0), and no free block above order 0 anywhere."""
    node = make_node(4096, 6, 4, policy, min_free_kbytes=128, owner_slots=8)
    boot_node(node)
    z = node[0]
    folio = alloc_pages(node, 4, C.MIGRATE_MOVABLE, C.PG_PINNED if pinned else 0)
    assert folio == 0
    z.owner[0] = folio
    z.next[folio] = 0
    _fill_leaving_order0_holes(node, holes_every)
    return node


def _fill_leaving_order0_holes(node, holes_every):
    """Allocate every free page as a movable order-0 page, free one in `holes_every` of them
    (scattered holes that cannot merge), and take the free block the watermark kept back with
    an unmovable allocation: only order-0 pages are free."""
    z = node[0]
    small = []
    while True:
        p = alloc_pages(node, 0, C.MIGRATE_MOVABLE, 0)
        if p < 0:
            break
        small.append(p)
    for p in sorted(small)[::holes_every]:
        free_pages(node, p)
    rest = int(np.flatnonzero(np.asarray(z.nr_free[1:]))[0]) + 1   # the watermark's block
    assert alloc_pages(node, rest, C.MIGRATE_UNMOVABLE, 0) >= 0
    assert list(z.nr_free[1:]) == [0] * 6


@pytest.mark.parametrize("policy", POLICIES)
def test_contig_range_splits_a_folio_without_a_target_and_migrates_its_pages(policy):
    node = _owned_folio_among_order0_holes(policy)
    z = node[0]
    targets = _free_list(z, 0, C.MIGRATE_MOVABLE)[:16]   # the allocator's next 16 order-0 pages
    free_before = int(z.stat[C.NR_FREE_PAGES])
    assert alloc_contig_range(node, 0, 0, 16, C.MIGRATE_MOVABLE) == CONTIG_OK
    assert check_node(node) == (0, -1)
    assert int(z.stat[C.NR_SPLIT]) == 1
    assert int(z.stat[C.PGMIGRATE_SUCCESS]) == 16
    # each base page is an order-0 movable LRU block of the owner, at the allocator's pfns
    pieces = [p for p in range(4096) if z.page_flags[p] & C.PG_HEAD and z.next[p] == 0]
    assert sorted(pieces) == sorted(targets)
    assert all(z.page_order[p] == 0 and z.page_mt[p] == C.MIGRATE_MOVABLE
               and z.page_flags[p] & C.PG_LRU for p in pieces)
    assert z.owner[0] in pieces
    # [0, 16) is now held by the caller
    assert all(z.page_flags[p] & C.PG_CONTIG for p in range(16))
    assert int(z.stat[C.NR_FREE_PAGES]) == free_before - 16
    # the owner frees every piece, from any of them
    assert free_owned(node, int(z.owner[0])) == 16
    assert int(z.stat[C.NR_FREE_PAGES]) == free_before
    assert not any(z.page_flags[p] & C.PG_HEAD for p in pieces)
    assert check_node(node) == (0, -1)


@pytest.mark.parametrize("policy", POLICIES)
def test_a_pinned_folio_is_not_split(policy):
    node = _owned_folio_among_order0_holes(policy, pinned=True)
    assert alloc_contig_range(node, 0, 0, 16, C.MIGRATE_MOVABLE) == FAIL_MIGRATION
    assert int(node[0].stat[C.NR_SPLIT]) == 0
    assert node[0].page_order[0] == 4


@pytest.mark.parametrize("policy", POLICIES)
def test_a_base_page_without_a_target_fails_and_leaves_the_pieces_owned(policy):
    # one hole in 100: about 41 free pages, fewer than 16 of them above the min watermark (32)
    node = _owned_folio_among_order0_holes(policy, holes_every=100)
    z = node[0]
    free = int(z.stat[C.NR_FREE_PAGES])
    movable = len(_free_list(z, 0, C.MIGRATE_MOVABLE))
    assert free - 32 < 16 <= movable      # targets run out at the watermark, not on the lists
    assert alloc_contig_range(node, 0, 0, 16, C.MIGRATE_MOVABLE) == FAIL_NO_TARGET
    assert int(z.stat[C.NR_SPLIT]) == 1
    moved = int(z.stat[C.PGMIGRATE_SUCCESS])
    # alloc_migration_target() takes a page while free pages exceed the min watermark (32);
    # each migrated source goes to the isolated pageblock's lists, which are not counted
    assert moved == free - 32
    pieces = [p for p in range(4096) if z.page_flags[p] & C.PG_HEAD and z.next[p] == 0]
    assert len(pieces) == 16
    assert sum(1 for p in pieces if p >= 16) == moved
    assert check_node(node) == (0, -1)
    assert free_owned(node, int(z.owner[0])) == 16
    assert check_node(node) == (0, -1)


def test_compaction_splits_a_large_folio_without_a_target():
    """6.9+ (v6.15): compaction isolates large folios below pageblock_order; with only order-0
    free pages to migrate into, the folio is split and its pages migrated."""
    node = make_node(4096, 6, 4, "v6.15", min_free_kbytes=128, owner_slots=8)
    boot_node(node)
    z = node[0]
    folio = alloc_pages(node, 2, C.MIGRATE_MOVABLE, 0)
    z.owner[0] = folio
    z.next[folio] = 0
    _fill_leaving_order0_holes(node, 2)
    cc = np.zeros(C.CC_SIZE, dtype=np.int64)
    compact_node(node, cc)
    assert check_node(node) == (0, -1)
    assert int(z.stat[C.NR_SPLIT]) >= 1
    pieces = [p for p in range(4096) if z.page_flags[p] & C.PG_HEAD and z.next[p] == 0]
    assert len(pieces) == 4 and all(z.page_order[p] == 0 for p in pieces)
    assert free_owned(node, int(z.owner[0])) == 4
    assert check_node(node) == (0, -1)
