"""The mesh's open cut (:mod:`cardioscar.simulation.open_cut`) on every mesh kind the channel search meets.

Meshes: the demo phantom (tetrahedra; seeds 0-1), the segmented phantom (tetrahedra and hexahedra),
the corridor phantom (``CorridorSpec``, as ``channels_phantom.py`` builds it), the biv-me patient's
LV part voxelised as ``mesh-from-labels`` meshes a label map (``fibre_one_ventricle.py``'s, 1.5 mm),
and EMIDEC's label maps through ``mesh-from-labels`` (the cases given; 10 mm slices, whose rings
leave flat along-axis steps between them). Per mesh, one JSON line: its nodes, the cut's nodes, how
far the cut's nodes lie from the mesh's basal and apical ends along the channel search's long
axis (mm: the top and the bottom node), and every along-axis patch (caps, steps, open ends) as
``[nodes, share of its bordering across-axis faces that face the cavity, mm of its highest node
below the top, mm of its lowest above the bottom, open end?]``, largest first; then the steps (patches
that are not open ends, on the label meshes: more than 5 mm from either end) and their nodes.

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/open_cut_meshes.py [EMIDEC_CASE ...]

(default P047 P028 P051 P022, the channel benchmark's cases).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_robust import DATA  # noqa: E402
from fibre_one_ventricle import bivme_meshes  # noqa: E402

from cardioscar.aha.wall import lv_wall  # noqa: E402
from cardioscar.io.meshio import Mesh  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom  # noqa: E402
from cardioscar.phantoms.phantom_segmented import CorridorSpec, SegmentedConfig  # noqa: E402
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, myocardium_mesh_from_labels  # noqa: E402
from cardioscar.simulation.open_cut import along_axis_patches  # noqa: E402

#: A patch this far (mm) from both ends of the mesh along the axis is a step (or a cap), not an end.
END_MM = 5.0


def meshes(cases: list[str]) -> Iterator[tuple[str, Mesh]]:
    """(name, mesh) of every mesh in the module docstring."""
    for seed in (0, 1):
        yield f"demo_s{seed}_tet", Mesh(dataset=make_phantom(PhantomConfig(seed=seed, target_nodes=12000)).mesh, space="LPS")
    for seed, kind in ((0, "tet"), (2, "hex")):
        phantom = make_phantom(SegmentedConfig(seed=seed, target_nodes=12000, mesh_type=kind))
        yield f"segmented_s{seed}_{kind}", Mesh(dataset=phantom.mesh, space="LPS")
    corridor = make_phantom(SegmentedConfig(seed=0, target_nodes=12000, corridor=CorridorSpec(width_mm=6.0)))
    yield "corridor_s0_tet", Mesh(dataset=corridor.mesh, space="LPS")
    for name, mesh in bivme_meshes(1.5):
        if name.startswith("bivme_lv_part"):
            yield name, mesh
    for case in cases:
        image = sitk.ReadImage(str(DATA / "emidec" / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"))
        yield f"emidec_{case}_labels_hex", myocardium_mesh_from_labels(image, MYOCARDIUM_LABELS)


def measure(name: str, mesh: Mesh) -> dict:
    start = time.perf_counter()
    points, _, axis, faces = lv_wall(mesh, "the channel search", "")
    heights = axis.heights(points)
    top, bottom = float(heights.max()), float(heights.min())
    patches = sorted(along_axis_patches(points, axis, faces), key=lambda p: -len(p.nodes))
    rows = [[int(len(p.nodes)), round(p.cavity_share, 2), round(p.below_top_mm, 1), round(p.above_bottom_mm, 1),
             p.spans_wall, p.open_end] for p in patches]
    cut = np.unique(np.concatenate([p.nodes for p in patches if p.open_end] or [np.zeros(0, np.int64)]))
    steps = [r for r in rows if not r[5]]
    return {"mesh": name, "nodes": int(len(points)), "cut_nodes": int(len(cut)),
            "cut_mm_below_top": [round(top - float(heights[cut].max()), 1), round(top - float(heights[cut].min()), 1)]
            if len(cut) else None,
            "cut_nodes_within_5mm_of_an_end": int(((top - heights[cut] <= END_MM) | (heights[cut] - bottom <= END_MM)).sum()),
            "open_ends": [r for r in rows if r[5]], "spanning_not_ends": [r for r in rows if r[4] and not r[5]][:6], "steps": len(steps), "step_nodes": sum(r[0] for r in steps),
            "step_cavity_shares": sorted({r[1] for r in steps}), "patches_largest": rows[:8],
            "seconds": round(time.perf_counter() - start, 1)}


def main(cases: list[str]) -> None:
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    for name, mesh in meshes(cases):
        print(json.dumps(measure(name, mesh)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:] or ["P047", "P028", "P051", "P022"])
