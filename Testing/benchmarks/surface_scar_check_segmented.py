"""The scar check (``prepare.mapping.scar_near_the_mesh``) on the segmented phantom family's own meshes
with the myocardium given: does a surface mesh of this heart read as its volume mesh does?

Per seed (the family at ``--nodes``), its label map read as ``prepare --scar-labels 3
--myocardium-labels 2,3 --slice-thickness-padding <the phantom's half slab>`` reads it, and its volume
and surface meshes: the share of the scar pixels near the mesh measured from the mesh's cut (every pixel
holding a node in the slab: the check since zleftovers) and from the pixels with a target alone (NaN
outside the myocardium not counted: the check before), against the warning line (0.6) and the
refusal's (0.3).

Usage: OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/surface_scar_check_segmented.py
       [--seeds 0-7] [--nodes 4000]
"""

from __future__ import annotations

import argparse
import logging

import numpy as np
from vtk.util.numpy_support import vtk_to_numpy

from cardioscar.phantoms.phantom import make_phantom
from cardioscar.phantoms.phantom_segmented import SegmentedConfig
from cardioscar.predict.meshscale import node_spacing
from cardioscar.prepare import mapping
from cardioscar.prepare.myocardium import label_masks, restrict_to_myocardium
from cardioscar.prepare.slices import slices_from_image
from cardioscar.prepare.targets import slice_targets


def shares(points: np.ndarray, layers) -> tuple[float, float]:
    """(near from the cut, near from the pixels with a target) of the scar pixels of ``layers``."""
    cuts = [mapping._slice_rows(points, layer)[4] for layer in layers]
    with_target = [cut[np.isfinite(layer.values.ravel()[cut])] for cut, layer in zip(cuts, layers)]
    spacing = node_spacing(points)
    (near, total), (before, _) = (mapping.scar_near_the_mesh(layers, c, spacing) for c in (cuts, with_target))
    return near / total, before / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0-7")
    parser.add_argument("--nodes", type=int, default=4000)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    first, last = (int(v) for v in args.seeds.split("-"))
    print("seed mesh    near(cut) near(pixels with a target)")
    for seed in range(first, last + 1):
        phantom = make_phantom(SegmentedConfig(seed=seed, target_nodes=args.nodes))
        raw = slices_from_image(phantom.label_image, half_thickness=phantom.slice_half_thickness_mm)
        layers, _ = restrict_to_myocardium(slice_targets(raw, [3]), label_masks(raw, [2, 3]), "labels 2,3")
        surface = vtk_to_numpy(phantom.surface.GetPoints().GetData()).astype(np.float64)
        for kind, points in (("volume", phantom.points_lps), ("surface", surface)):
            now, before = shares(points, layers)
            print(f"{seed:4d} {kind:7s} {now:.2f}      {before:.2f}")


if __name__ == "__main__":
    main()
