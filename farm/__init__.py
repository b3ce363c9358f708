"""buddyfarm.farm: parameters, simulation runs, sweeps, results store and the `farm` command."""
