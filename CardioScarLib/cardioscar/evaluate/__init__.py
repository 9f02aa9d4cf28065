"""Scoring a field: metrics against a truth, the nearest-slice and smooth-interpolation
baselines, and leave-one-slice-out scoring on real label maps (``cardioscar evaluate``,
the benchmarks)."""
