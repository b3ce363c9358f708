"""Cell functions for the runner tests, used in place of `farm.cell.simulate.run` (`run_sweep(...,
cell_fn=...)`) and shipped to the Ray workers by value (`register_pickle_by_value`)."""

import os
import time


def simulate(params, **kw):
    from farm.cell.simulate import run
    return run(params, **kw)


def fail_seed(seed, params, **kw):
    """Raise in every cell of one seed; simulate the others."""
    if params["seed"] == seed:
        raise RuntimeError(f"injected failure for seed {seed}")
    return simulate(params, **kw)


def report_and_wait(marker, match, delay, params, **kw):
    """In the cells matching `match`: append this worker's pid to `marker`, then sleep `delay`
    seconds (time for the test to kill this process), then simulate."""
    if all(params[k] == v for k, v in match.items()):
        with open(marker, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(delay)
    return simulate(params, **kw)


def die_on(match, params, **kw):
    """In the cells matching `match`: kill this worker process (SIGKILL), as a crash would."""
    if all(params[k] == v for k, v in match.items()):
        import signal
        os.kill(os.getpid(), signal.SIGKILL)
    return simulate(params, **kw)
