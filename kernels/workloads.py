"""Seeded, parameterised workloads that drive the allocator model.

Each workload is a jitted loop over the zone and an explicit RNG state (rng.py); all parameters
are arguments, so a sweep can vary any of them without recompiling.
"""

import numpy as np
from ._jit import jit

from .check import check_node
from .constants import PG_HEAD, ZP_MANAGED
from .page_alloc import alloc_pages, drain_all_pages, free_pages
from .rng import randbelow, uniform


@jit
def _pick_order(rng, cum_weights):
    """Sample an order from cumulative weights (index = order)."""
    u = uniform(rng) * cum_weights[-1]
    for o in range(cum_weights.shape[0]):
        if u < cum_weights[o]:
            return o
    return cum_weights.shape[0] - 1


@jit
def smallpages(node, rng, ops, occupancy, cum_weights, mt, live, check_every):
    """`smallpages`: order-0 churn (optionally a small order mix) around a target occupancy.

    Below the target an operation allocates with probability 3/4, at or above it frees a random
    live block with probability 3/4, so occupancy wanders around the target while pages of every
    age are freed. Returns (live blocks, check error code, pfn of the error)."""
    managed = 0
    for i in range(len(node)):
        managed += node[i].zp[ZP_MANAGED]
    target = int(occupancy * managed)
    z = node[0]
    nlive = 0
    used = 0
    cap = live.shape[0]
    for i in range(ops):
        if nlive == 0:
            do_alloc = True
        elif nlive == cap:
            do_alloc = False
        elif used < target:
            do_alloc = uniform(rng) < 0.75
        else:
            do_alloc = uniform(rng) < 0.25
        if do_alloc:
            order = _pick_order(rng, cum_weights)
            pfn = alloc_pages(node, order, mt, 0)
            if pfn >= 0:
                live[nlive] = pfn
                nlive += 1
                used += 1 << order
        else:
            k = randbelow(rng, nlive)
            pfn = live[k]
            nlive -= 1
            live[k] = live[nlive]
            used -= 1 << int(z.page_order[pfn])
            free_pages(node, pfn)
        if check_every > 0 and (i + 1) % check_every == 0:
            code, where = check_node(node)
            if code:
                return nlive, code, where
    return nlive, 0, -1


@jit
def free_all(node, live, nlive):
    """Free every block still allocated (in allocation-array order), then drain the pcp lists."""
    for k in range(nlive):
        pfn = live[k]
        if node[0].page_flags[pfn] & PG_HEAD:
            free_pages(node, pfn)
    drain_all_pages(node)


def live_capacity(nr_pages: int, occupancy: float) -> int:
    """Room for the live-allocation array: the target plus slack for excursions above it."""
    return int(min(nr_pages, int(occupancy * nr_pages) + 65536))


__all__ = ["smallpages", "free_all", "live_capacity", "np"]
