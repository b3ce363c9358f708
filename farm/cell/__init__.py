"""One cell: its parameters (params.py), a simulation run of the model (simulate.py) and the probes
measured on the state it ends in (probes.py)."""
