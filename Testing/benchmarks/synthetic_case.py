"""A synthetic scar case for tuning training before the LV phantom exists.

An ellipsoidal shell (LV-like, open at the base) filled with random "mesh nodes", a smooth
spherical scar blob on its lateral wall, and short-axis "slices": slabs of 8 mm every 10 mm along
z, sampled by 1.5 mm pixels. Groups are found by simple binning; a pixel's value is the truth at
its centre (a label map), so the nodes of a group may disagree with it near the scar border, as
with real partial-volume pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SyntheticCase:
    points: np.ndarray        # (N, 3) mm
    truth: np.ndarray         # (N,) bool
    coordinates: np.ndarray   # (N, 3) min-max normalised over all nodes
    node_ids: np.ndarray      # (K,) training rows -> node
    group_ids: np.ndarray     # (K,)
    intensities: np.ndarray   # (K,)

    @property
    def training_coordinates(self) -> np.ndarray:
        return self.coordinates[self.node_ids]


def make_synthetic_case(n_nodes: int = 30000, seed: int = 0, pixel_mm: float = 1.5, slice_gap_mm: float = 10.0,
                        slab_mm: float = 8.0) -> SyntheticCase:
    rng = np.random.default_rng(seed)
    outer, wall = np.array([30.0, 30.0, 45.0]), 10.0
    inner = outer - wall
    points = []
    while sum(len(p) for p in points) < n_nodes:
        cand = rng.uniform(-outer, outer, size=(n_nodes, 3))
        cand = cand[cand[:, 2] < 15.0]  # open base
        r_out = np.sum((cand / outer) ** 2, axis=1)
        r_in = np.sum((cand / inner) ** 2, axis=1)
        points.append(cand[(r_out <= 1.0) & (r_in >= 1.0)])
    points = np.concatenate(points)[:n_nodes]
    centre = np.array([27.0, 6.0, -8.0])
    radii = np.array([14.0, 14.0, 20.0])

    def scar(p: np.ndarray) -> np.ndarray:
        return np.sum(((p - centre) / radii) ** 2, axis=-1) <= 1.0

    truth = scar(points)
    lo, hi = points.min(axis=0), points.max(axis=0)
    coordinates = ((points - lo) / (hi - lo)).astype(np.float32)

    slice_z = np.arange(points[:, 2].min() + slab_mm / 2, points[:, 2].max(), slice_gap_mm)
    dz = np.abs(points[:, 2, None] - slice_z[None, :])
    nearest = np.argmin(dz, axis=1)
    inside = dz[np.arange(len(points)), nearest] <= slab_mm / 2
    node_ids = np.flatnonzero(inside)
    ij = np.floor(points[node_ids, :2] / pixel_mm + 0.5).astype(np.int64)
    key = np.stack([nearest[node_ids], ij[:, 0], ij[:, 1]], axis=1)
    _, group_ids = np.unique(key, axis=0, return_inverse=True)
    pixel_centres = np.column_stack([ij * pixel_mm, slice_z[nearest[node_ids]]])
    intensities = scar(pixel_centres).astype(np.float32)
    return SyntheticCase(points, truth, coordinates, node_ids, group_ids.reshape(-1).astype(np.int64), intensities)


def dice(predicted: np.ndarray, truth: np.ndarray) -> float:
    predicted, truth = np.asarray(predicted, bool), np.asarray(truth, bool)
    denominator = predicted.sum() + truth.sum()
    return float(2.0 * np.logical_and(predicted, truth).sum() / denominator) if denominator else 1.0
