"""Explicit, seedable random numbers for workloads: xoshiro128** on four 32-bit words.

Every operation stays below 2^63 in int64, so the jitted code and the plain-Python run
(NUMBA_DISABLE_JIT=1) produce the same stream bit for bit.
"""

import numpy as np
from ._jit import jit_fold

_MASK32 = 0xFFFFFFFF


def seed_state(seed: int) -> np.ndarray:
    """Expand a seed into the generator state with splitmix64 (Python integers)."""
    x = seed & 0xFFFFFFFFFFFFFFFF
    words = []
    for _ in range(2):
        x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
        z = x
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
        z ^= z >> 31
        words += [z & _MASK32, z >> 32]
    if not any(words):
        words[0] = 1
    return np.array(words, dtype=np.int64)


@jit_fold
def _rotl(x, k):
    return ((x << k) | (x >> (32 - k))) & 0xFFFFFFFF


@jit_fold
def next_u32(s):
    """xoshiro128**: next 32-bit output; advances the state array in place."""
    result = (_rotl((s[1] * 5) & 0xFFFFFFFF, 7) * 9) & 0xFFFFFFFF
    t = (s[1] << 9) & 0xFFFFFFFF
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 11)
    return result


@jit_fold
def randbelow(s, n):
    """Uniform integer in [0, n) for 0 < n < 2^31 (multiply-shift)."""
    return (next_u32(s) * n) >> 32


@jit_fold
def uniform(s):
    """Uniform float in [0, 1)."""
    return next_u32(s) / 4294967296.0
