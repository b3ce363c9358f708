"""Sweeps: a sweep file expanded into cells (plan.py), the model compiled before they run
(warmup.py), the cells run on Ray (runner.py) and their rows (results.py) kept in a store (store.py)."""
