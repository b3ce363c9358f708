"""The decorator for the model's hot paths.

`jit` = numba's njit with the on-disk cache, and without NRT reference counting: these
functions never allocate arrays, they only index arrays their caller owns. With reference
counting on, every call between them increments and decrements each array argument with atomic
operations that LLVM cannot prune across calls; that cost dominated an allocation (measured
30-60 ns per free-list insert/delete pair with counting, 1 ns without). Functions that create
arrays use plain `njit(cache=True)`.
"""

from numba import njit

jit = njit(cache=True, _nrt=False)


# `jit_inline`: the allocation and free fast paths, inlined into their callers at numba IR level.
# A call between numba functions that passes a zone copies its dozen array descriptors (about
# 12 ns a call layer, measured), and LLVM does not inline across numba functions, so a layered
# allocation (get_page_from_freelist -> rmqueue -> __rmqueue -> __rmqueue_smallest -> expand)
# paid for each layer: 62 ns per smallpages operation at 64 MiB before, 35 ns after. The price
# is compile time: a first run compiles about twice as long (farm bench, cold_start section).
# Only small or hot functions take it; the fallbacks, compaction and isolation stay calls.
jit_inline = njit(cache=True, _nrt=False, inline="always")
