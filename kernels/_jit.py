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
