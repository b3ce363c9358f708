"""buddyfarm.kernels: a numba model of the Linux zoned buddy allocator.

NumPy and numba only: no Ray, pandas, file I/O or logging in this package. The behavioural
contract is MODEL.md beside this file.
"""

# Bumped whenever a change can alter any simulated number: it is part of every cell id.
MODEL_VERSION = "0.1.0"
