"""Does a border-zone isthmus survive the reconstruction, and what channels does it add?

Each case is a segmented-family phantom (``SegmentedConfig(corridor=CorridorSpec(...))``: 8-13 mm
slice gaps drawn from the seed, the mesh up to a pixel off the image's wall) whose true scar is a
transmural dense core (40 mm square on the mid-wall) crossed by a border-zone corridor (scar
fraction 0.65) of ``--widths`` mm, ``across`` the short-axis slices (apex to base) or ``along``
them. The real path: the fraction map with pixels outside the myocardium mask as NaN ->
``prepare_from_slices`` -> ``train_scar_model`` (fast preset, seeded) -> ``predict_on_points`` (10 MC
samples) -> ``channels_of_mesh`` on ``scar_probability`` cut by the tag rule's one-field defaults
(border zone >= 0.5, core >= 0.8), every layer 0.1-0.9, ``--max-width`` 10 mm, and no minimum
length (``min_length_mm=0``: every channel kept, so their sizes can be read). The same search on
the true scar fraction is the ceiling.

Per search: ``layers_true`` (layers holding a channel of which at least half the nodes lie in the
true corridor's strip), ``corridor_recall`` (share of the corridor's nodes in such a channel of
any layer), and the other channels, ``spurious``: count, nodes and lengths (mm). The corridor's
centre's distance to the nearest slice plane and the slab's half-width say whether an ``along``
corridor was imaged at all. ``--noise``: Gaussian noise of that SD on the myocardium's pixels
(clipped to [0, 1]), the segmented family's ``noise_std``; ``--patchiness``: the core's scar
fraction 1 - patchiness x a smooth random texture (8-14 mm waves), so it has border-zone patches.
Each search also counts its true and spurious channels flagged ``near_open_cut`` (an entrance within
half ``--max-width`` of the mesh's open cut, its basal plane). ``--truth-only``: the search on the
true fraction alone (no fit; seconds a case).

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/channels_phantom.py
        [--seeds 0,1] [--widths 5,8] [--orientations across,along] [--nodes 12000] [--noise 0.1] [--patchiness 0.3]
        [--truth-only]

One JSON line per case.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time

import numpy as np
import vtk
from vtk.util import numpy_support

from cardioscar.fit.training import TrainingConfig
from cardioscar.io.meshio import Mesh
from cardioscar.logic import predict_on_points, prepare_from_slices, train_scar_model
from cardioscar.phantoms.phantom import make_phantom
from cardioscar.phantoms.phantom_segmented import CorridorSpec, SegmentedConfig
from cardioscar.prepare.slices import slices_from_image
from cardioscar.simulation.channels import ChannelOptions, channels_of_mesh

#: A detected channel is the true one when at least this share of its nodes lies in the corridor.
TRUE_SHARE = 0.5
#: Every channel kept (no minimum length), so the spurious ones' sizes are seen.
OPTIONS = ChannelOptions(min_length_mm=0.0)


def training_slices(phantom) -> list:
    """The fraction map's slices, NaN outside the myocardium mask (as a scar map drawn in a segmentation)."""
    half = phantom.slice_half_thickness_mm
    fraction = slices_from_image(phantom.image, half_thickness=half, label="fraction")
    mask = slices_from_image(phantom.myocardium_image, half_thickness=half, label="mask")
    return [dataclasses.replace(f, values=np.where(m.values > 0, f.values, np.nan)) for f, m in zip(fraction, mask)]


def mesh_with(phantom, fields: dict[str, np.ndarray]) -> Mesh:
    """A copy of the phantom's mesh with point ``fields`` (as ``apply`` writes them)."""
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(phantom.mesh)
    for name, values in fields.items():
        array = numpy_support.numpy_to_vtk(np.ascontiguousarray(values, np.float64), deep=True)
        array.SetName(name)
        grid.GetPointData().AddArray(array)
    return Mesh(dataset=grid, space="LPS", path=None)


def score(result, corridor: np.ndarray) -> dict:
    """The true channel's layers and recall, and the spurious channels' sizes."""
    true, spurious = [], []
    for channel in result.channels:
        (true if corridor[channel.nodes].mean() >= TRUE_SHARE else spurious).append(channel)
    found = np.zeros(len(corridor), bool)
    for channel in true:
        found[channel.nodes] = True
    return {"layers_true": sorted({c.layer for c in true}),
            "corridor_recall": round(float(found[corridor].mean()), 3),
            "true_lengths_mm": [round(c.length_mm, 1) for c in true],
            "true_near_open_cut": sum(c.near_open_cut for c in true),
            "spurious": len(spurious), "spurious_near_open_cut": sum(c.near_open_cut for c in spurious),
            "spurious_nodes": [int(len(c.nodes)) for c in spurious],
            "spurious_lengths_mm": [round(c.length_mm, 1) for c in spurious]}


def run(seed: int, width: float, orientation: str, nodes: int, noise: float = 0.0, patchiness: float = 0.0,
        truth_only: bool = False) -> dict:
    start = time.perf_counter()
    spec = CorridorSpec(width_mm=width, orientation=orientation, patchiness=patchiness)
    phantom = make_phantom(SegmentedConfig(seed=seed, target_nodes=nodes, corridor=spec, noise_std=noise))
    points = phantom.points_lps
    scar = phantom.scar_field.__self__
    corridor = scar.in_corridor(phantom.geometry.to_local(points))
    planes = np.asarray(phantom.metadata["slice_positions_local_z_mm"])
    ceiling, _ = channels_of_mesh(mesh_with(phantom, {"scar_probability": phantom.truth_fraction}), OPTIONS)
    if truth_only:
        return {"seed": seed, "width_mm": width, "orientation": orientation, "noise_std": noise,
                "patchiness": patchiness, "nodes": int(len(points)), "truth": score(ceiling, corridor),
                "seconds": round(time.perf_counter() - start, 1)}
    prepared = prepare_from_slices(points, training_slices(phantom))
    checkpoint = train_scar_model(prepared, TrainingConfig.fast(seed=seed))
    predicted = predict_on_points(checkpoint, points, mc_samples=10, seed=seed)
    found, _ = channels_of_mesh(mesh_with(phantom, {"scar_probability": predicted.mean_predictions,
                                                    "scar_uncertainty": predicted.std_predictions}), OPTIONS)
    p = predicted.mean_predictions
    return {"seed": seed, "width_mm": width, "orientation": orientation, "noise_std": noise, "patchiness": patchiness, "nodes": int(len(points)),
            "gap_mm": round(phantom.config.slice_gap_mm, 2), "slab_half_mm": round(phantom.slice_half_thickness_mm, 2),
            "corridor_to_plane_mm": round(float(np.abs(planes - scar.centre_local()[2]).min()), 2),
            "corridor_nodes": int(corridor.sum()), "p_corridor_median": round(float(np.median(p[corridor])), 3),
            "truth": score(ceiling, corridor), "reconstruction": score(found, corridor),
            "seconds": round(time.perf_counter() - start, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--widths", default="5,8")
    parser.add_argument("--orientations", default="across,along")
    parser.add_argument("--nodes", type=int, default=12000)
    parser.add_argument("--noise", type=float, default=0.0, help="Gaussian noise on the myocardium's pixels (SD)")
    parser.add_argument("--patchiness", type=float, default=0.0, help="the core's texture (CorridorSpec.patchiness)")
    parser.add_argument("--truth-only", action="store_true", help="search the true fraction only (no fit)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    for seed in (int(v) for v in args.seeds.split(",")):
        for orientation in args.orientations.split(","):
            for width in (float(v) for v in args.widths.split(",")):
                print(json.dumps(run(seed, width, orientation, args.nodes, args.noise, args.patchiness,
                                     args.truth_only)), flush=True)


if __name__ == "__main__":
    main()
