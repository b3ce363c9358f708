"""Real kernels: captures of a running kernel (captures.py), its ftrace events as a table
(trace.py), replayed into the model (replay.py) and the model judged against it (validate.py)."""
