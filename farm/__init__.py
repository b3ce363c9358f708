"""buddyfarm.farm: the `farm` command (cli.py) over one cell (cell/), sweeps of cells and their
results (sweep/), real kernels (real/) and benchmarks (bench.py)."""


def __getattr__(name):
    # `farm.load(DIR)`, without importing pandas and pyarrow for every `farm` command.
    if name == "load":
        from .sweep.store import load
        return load
    raise AttributeError(f"module 'farm' has no attribute {name!r}")
