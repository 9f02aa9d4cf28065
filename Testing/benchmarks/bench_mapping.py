"""Time the node -> group mapping: 1,000,000 nodes against 20 oblique 256x256 slices.

Not a test; prints one JSON line. Run: PYTHONPATH=CardioScarLib python Testing/benchmarks/bench_mapping.py
"""

from __future__ import annotations

import json
import time

import numpy as np

from cardioscar.prepare.mapping import map_slices_to_nodes
from cardioscar.prepare.slices import slices_from_array


def main(n_nodes: int = 1_000_000, n_slices: int = 20, size: int = 256) -> dict:
    rng = np.random.default_rng(0)
    angle = 0.4
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    tilt = np.array([[1, 0, 0], [0, np.cos(0.3), -np.sin(0.3)], [0, np.sin(0.3), np.cos(0.3)]])
    ijk_to_lps = np.eye(4)
    ijk_to_lps[:3, :3] = rotation @ tilt @ np.diag([0.8, 0.8, 5.0])
    ijk_to_lps[:3, 3] = [-100.0, -100.0, -50.0]
    volume = rng.random((n_slices, size, size))
    slices = slices_from_array(volume, ijk_to_lps, "z", None, half_thickness=2.0, label="bench")
    extent = (ijk_to_lps[:3, :3] @ np.array([size, size, n_slices])) + ijk_to_lps[:3, 3]
    low = np.minimum(ijk_to_lps[:3, 3], extent)
    high = np.maximum(ijk_to_lps[:3, 3], extent)
    points = rng.uniform(low, high, size=(n_nodes, 3))
    start = time.perf_counter()
    mapping = map_slices_to_nodes(points, slices)
    elapsed = time.perf_counter() - start
    return {"benchmark": "map_slices_to_nodes", "n_nodes": n_nodes, "n_slices": n_slices,
            "slice_size": [size, size], "seconds": round(elapsed, 3), "n_rows": mapping.n_rows,
            "n_groups": mapping.n_groups}


if __name__ == "__main__":
    print(json.dumps(main()))
