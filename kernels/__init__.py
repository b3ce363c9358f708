"""buddyfarm.kernels: a numba model of the Linux zoned buddy allocator.

NumPy and numba only: no Ray, pandas, file I/O or logging in this package. The behavioural
contract is MODEL.md beside this file.
"""

import hashlib
import os
from pathlib import Path

import numba

# Bumped whenever a change can alter any simulated number: it is part of every cell id.
# kernels/versions.toml records, for every state of these source files (SOURCE_HASH), which
# version it is, and a test checks the current state is recorded there.
MODEL_VERSION = "0.13.0"

_HERE = Path(__file__).resolve().parent
# Hash of the model's source files. numba's on-disk cache checks only the timestamp of the file
# that defines a function, not of the files whose functions it inlined, so an edit to
# page_alloc.py could leave a stale compiled workload in the cache. Keying the cache directory on
# every source file of the package makes any edit start a fresh cache.
SOURCE_HASH = hashlib.sha256(b"".join(p.read_bytes() for p in sorted(_HERE.glob("*.py")))).hexdigest()[:16]

if not os.environ.get("NUMBA_CACHE_DIR"):
    _cache_root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    numba.config.CACHE_DIR = str(_cache_root / "buddyfarm" / "numba" / SOURCE_HASH)
