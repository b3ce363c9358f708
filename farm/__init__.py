"""buddyfarm.farm: parameters, simulation runs, sweeps, results store and the `farm` command."""


def __getattr__(name):
    # `farm.load(DIR)`, without importing pandas and pyarrow for every `farm` command.
    if name == "load":
        from .store import load
        return load
    raise AttributeError(f"module 'farm' has no attribute {name!r}")
