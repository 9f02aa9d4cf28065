"""Experiment (not shipped): the gaussian slice profile plus an in-plane Gaussian PSF weight.

Why kept: the unseen family's in-plane PSF costs more than its slice profile (``--ablate nopsf``
+0.026 mean Dice, ``--ablate box`` +0.012; ``ROBUSTNESS.md``, *The slice profile*), so this is the
cheapest test of whether a PSF weight in the mapping would win that back. Each gaussian row (node, pixel) also gives rows to the 8 neighbouring pixels' groups (those that
exist), weighted w_z * exp(-4 ln2 r^2 / F^2), r the node's in-plane distance to that pixel's
centre in pixels, F = PSF_FWHM_PX; the own row is weighted the same way. Run as bench_unseen.py
with --slice-profile gaussian:

  PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/slice_profile_psf.py FWHM_PX \
      --seeds 0,1,2,6,7 --slice-profile gaussian > Testing/benchmarks/results/unseen_family_fast_profile_gaussian_psf1.5.jsonl
"""

import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "Testing" / "benchmarks"))

import cardioscar.logic as logic  # noqa: E402
from cardioscar.prepare import mapping as mp  # noqa: E402

PSF_FWHM_PX = float(sys.argv[1])
original = mp.map_slices_to_nodes


def with_psf(points, slices, *, scar_targets=True, slice_profile="box") -> mp.GroupMapping:
    """``map_slices_to_nodes`` with each gaussian row spread over its pixel and the 8 around it."""
    base = original(points, slices, scar_targets=scar_targets, slice_profile=slice_profile)
    if slice_profile == "box":
        return base
    layers = list(slices)
    starts = np.cumsum([0] + [layer.values.size for layer in layers])
    cols = np.array([layer.shape[1] for layer in layers])
    group_key = starts[base.group_slice] + base.group_pixel[:, 1] * cols[base.group_slice] + base.group_pixel[:, 0]
    lookup = {int(k): g for g, k in enumerate(group_key)}
    nodes, groups, weights = [], [], []
    for s, layer in enumerate(layers):
        mine = base.group_slice[base.group_ids] == s
        rows_nodes, rows_w = base.node_ids[mine], base.row_weights[mine]
        ij = layer.lps_to_index(points[rows_nodes])[:, :2]
        own = np.floor(ij + 0.5).astype(np.int64)
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                pi, pj = own[:, 0] + di, own[:, 1] + dj
                ok = (pi >= 0) & (pi < layer.shape[1]) & (pj >= 0) & (pj < layer.shape[0])
                keys = starts[s] + pj * layer.shape[1] + pi
                g = np.array([lookup.get(int(k), -1) if o else -1 for k, o in zip(keys, ok)])
                keep = g >= 0
                r2 = (ij[:, 0] - pi) ** 2 + (ij[:, 1] - pj) ** 2
                w = rows_w * np.exp(-4 * np.log(2) * r2 / PSF_FWHM_PX ** 2)
                nodes.append(rows_nodes[keep])
                groups.append(g[keep])
                weights.append(w[keep])
    nodes, groups, weights = (np.concatenate(a) for a in (nodes, groups, weights))
    order = np.argsort(groups, kind="stable")
    return mp.GroupMapping(node_ids=nodes[order], group_ids=groups[order].astype(np.int64),
                           group_values=base.group_values, group_slice=base.group_slice,
                           group_pixel=base.group_pixel, row_weights=weights[order], slice_profile="gaussian")


logic.map_slices_to_nodes = with_psf
import bench_unseen  # noqa: E402

bench_unseen.main(sys.argv[2:])
