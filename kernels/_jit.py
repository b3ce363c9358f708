"""The decorators of the model's jitted functions.

`jit` = numba's njit with the on-disk cache, and without NRT reference counting: these
functions never allocate arrays, they only index arrays their caller owns. With reference
counting on, every call between them increments and decrements each array argument with atomic
operations that LLVM cannot prune across calls; that cost dominated an allocation (measured
30-60 ns per free-list insert/delete pair with counting, 1 ns without). Functions that create
arrays use plain `njit(cache=True)`.

`jit_inline`: the allocation and free fast paths, inlined into their callers by LLVM
(`forceinline`: the function is declared `alwaysinline` where it is called). A call between
numba functions that passes a zone copies its dozen array descriptors (about 12 ns a call layer,
measured), and LLVM's own inliner declines functions of this size, so a layered allocation
(get_page_from_freelist -> rmqueue -> __rmqueue -> __rmqueue_smallest -> expand) paid for each
layer. Numba's IR-level inlining (`inline="always"`) removed that cost too, but it types the
callee again at every call site: it doubled the first compile. LLVM's inliner works on code that
is already typed and lowered once per function.

`jit_fold`: tiny helpers and thin layers over a larger function (rmqueue() over __rmqueue(),
__rmqueue() over its slow path), folded into their callers at numba IR level. A function compiled
on its own costs about a second of compile whatever its size (its own LLVM module, optimised
again with every function it calls, and its Python wrapper), so a thin layer that is compiled
alone costs as much as a large function; folded, it is typed again at each call site, which is
cheap for a few lines. Not into a hot loop, though: folding the THP fault's alloc_pages_gfp into
the steady-state loop made that loop 2.6 times slower (mixed at 4 GiB: 175 -> 460 ns per operation),
where a call costs a few nanoseconds.

`forceinline` is inherited by the functions compiled while an inlined function compiles, unless
they set it: `jit` sets it off, so only the functions marked `jit_inline` are inlined.
"""

import numba
from numba import types
from numba.core.registry import CPUDispatcher


def _one_type(t):
    """The argument type a model function is compiled for: integers of every width and literal
    integers as int64, literal booleans as booleans."""
    t = types.unliteral(t)
    if isinstance(t, types.Integer):
        return types.int64
    return t


class ModelDispatcher(CPUDispatcher):
    """numba's dispatcher, compiling one specialisation per function where numba would compile
    one per combination of argument types at its call sites.

    numba specialises a function for the exact types of a call: an order read from page_order
    (int8) or computed (int64), a pfn from next[] (int32), a migratetype from pb_mt (uint8), and
    every constant argument (`Literal[int](4)`, `Literal[bool](False)`) each make another
    compilation of the whole function with everything it calls; page_del_and_expand was compiled
    eleven times. Calls between model functions are typed here with every integer widened to
    int64 (the caller casts), which the model's arithmetic wants anyway (an int8 order shifted
    overflows)."""

    def get_call_template(self, args, kws):
        return super().get_call_template(tuple(_one_type(a) for a in args),
                                         {k: _one_type(v) for k, v in kws.items()})


def _decorator(**options):
    def decorate(func):
        if numba.config.DISABLE_JIT:
            return func
        dispatcher = ModelDispatcher(py_func=func, locals={}, targetoptions={"nopython": True, **options})
        dispatcher.enable_caching()
        return dispatcher
    return decorate


jit = _decorator(_nrt=False, forceinline=False)
jit_inline = _decorator(_nrt=False, forceinline=True)
jit_fold = _decorator(_nrt=False, forceinline=False, inline="always")
