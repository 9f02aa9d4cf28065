"""`aha`'s test for a second ventricle across a known long axis: how many of the 15 short-axis
sections enclose two cavities, against the share over which a mesh is refused
(``MAX_TWO_CAVITY_SHARE``: over 6 of 15), and what the test costs.

`aha` on a whole mesh (no ``--lv-mask``) cuts it across the long axis it has: the points' or the
slice normal's, or the shape's where that is clear (ring contrast 1.8 or more); a shape that gives
its axis unclearly is cut across 40 directions (``fibre_one_ventricle.py``). Per mesh this prints
its ring contrast and, across each axis it could be given, the cavities per section, the seconds
of that one-direction cut and whether `aha` refuses the mesh (over 6 sections with two cavities;
1-6: then the 40 directions decide, ``every``, with its seconds beside; the shape's axis under a
ring contrast of 1.8 is not used: the 40 directions decide).

Axes: ``shape`` (the mesh's own shape axis, as `aha` finds it), ``lv`` (biv-me's: its fitted LV
endocardium's shape axis, what ``--apex``/``--base`` on its LV give), ``slice`` (biv-me's short-axis
series Se1's normal; EMIDEC's: its label map's, what ``--slice-normal-from`` gives). Meshes: biv-me's
biventricular myocardium and its LV part at 3, 2 and 1.5 mm (``fibre_one_ventricle.bivme_meshes``),
the demo phantom (seeds 0-3, the demo's default size), the segmented phantoms (seeds 0-3, tet and
hex, 12,000 nodes), the synthetic rings of ``Testing/test_simulation_fibres.py`` and EMIDEC's label
maps through ``mesh-from-labels`` (the first N, default all).

    PYTHONPATH=CardioScarLib:Testing:Testing/benchmarks OMP_NUM_THREADS=1 \\
        python Testing/benchmarks/aha_one_ventricle_axis.py [N_EMIDEC]
(its output: results/aha_one_ventricle_axis.txt)
"""

from __future__ import annotations

import json
import sys
import time
from typing import Iterator, Optional

import numpy as np
import SimpleITK as sitk

from bench_robust import DATA
from cardioscar.aha.analysis import ONE_VENTRICLE_CHECK_CONTRAST
from cardioscar.aha.one_ventricle import CAVITY_LEVELS, MAX_TWO_CAVITY_SHARE, cavity_counts
from cardioscar.aha.shape_axis import shape_axis
from cardioscar.evaluate.metrics import node_volumes
from cardioscar.io.meshio import Mesh, read_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.phantoms.phantom_segmented import SegmentedConfig
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, myocardium_mesh_from_labels
from conftest import bivme_dicom
from fibre_one_ventricle import FITTED, bivme_meshes
from test_simulation_fibres import _ventricles_mesh


def _slice_normal(image: sitk.Image) -> np.ndarray:
    """The image's third direction: what ``--slice-normal-from`` reads."""
    return np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]


def meshes(n_emidec: Optional[int]) -> Iterator[tuple[str, Mesh, dict[str, np.ndarray]]]:
    """(name, mesh, the axes other than its shape's that it could be given)."""
    endocardium = read_mesh(FITTED / "patient1_LV_ENDOCARDIAL_000.vtk").points_lps()
    bivme_axes = {"lv": shape_axis(endocardium, np.ones(len(endocardium))).direction,
                  "slice": _slice_normal(sitk.ReadImage(str(bivme_dicom("Se1"))))}
    for pixel in (3.0, 2.0, 1.5):
        for name, mesh in bivme_meshes(pixel):
            yield name, mesh, bivme_axes
    along_z = {"slice": np.array([0.0, 0.0, 1.0])}
    for name, kwargs in (("ring_lv", dict(with_rv=False)), ("ring_biv_6mm_rv", dict(with_rv=True, rv_cavity_mm=6.0,
                                                                                    rv_wall_mm=3.0, rv_centre_x=50.0)),
                         ("ring_biv_8mm_rv", dict(with_rv=True, rv_cavity_mm=8.0, rv_wall_mm=3.0, rv_centre_x=52.0,
                                                  slices=24))):
        yield name, _ventricles_mesh(**kwargs), along_z
    for seed in range(4):
        yield f"demo_s{seed}", Mesh(dataset=make_phantom(PhantomConfig(seed=seed)).mesh, space="LPS"), {}
    for seed in range(4):
        kind = "tet" if seed < 2 else "hex"
        phantom = make_phantom(SegmentedConfig(seed=seed, target_nodes=12000, mesh_type=kind))
        yield f"segmented_s{seed}_{kind}", Mesh(dataset=phantom.mesh, space="LPS"), {}
    for case in sorted(p for p in (DATA / "emidec").glob("Case_*") if p.is_dir())[:n_emidec]:
        image = sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz"))
        yield f"emidec_{case.name[5:]}", myocardium_mesh_from_labels(image, MYOCARDIUM_LABELS), {
            "slice": _slice_normal(image)}


def _timed_counts(dataset, across: Optional[np.ndarray]) -> tuple[list[int], float]:
    start = time.perf_counter()
    counts, _ = cavity_counts(dataset, across)
    return counts.tolist(), round(time.perf_counter() - start, 2)


def main() -> None:
    n_emidec = int(sys.argv[1]) if len(sys.argv) > 1 else None
    limit = MAX_TWO_CAVITY_SHARE * CAVITY_LEVELS
    rows = []
    for name, mesh, given in meshes(n_emidec):
        points = mesh.points_lps()
        dataset = mesh.dataset_lps(points)
        found = shape_axis(points, node_volumes(dataset))
        row = {"mesh": name, "nodes": mesh.n_points, "contrast": round(found.contrast, 2)}
        every = None
        unclear = found.contrast < ONE_VENTRICLE_CHECK_CONTRAST  # aha cuts every direction, whatever the shape's axis
        if unclear or not name.startswith("emidec"):  # the 40 directions, for their time beside
            counts, seconds = _timed_counts(dataset, None)
            every = {"two_cavities": sum(c >= 2 for c in counts), "seconds": seconds}
        for axis_name, axis in {"shape": found.direction, **given}.items():
            counts, seconds = _timed_counts(dataset, axis)
            two = sum(c >= 2 for c in counts)
            if 0 < two <= limit and every is None:  # check_one_ventricle cuts every direction then
                every_counts, every_seconds = _timed_counts(dataset, None)
                every = {"two_cavities": sum(c >= 2 for c in every_counts), "seconds": every_seconds}
            if axis_name == "shape" and unclear:
                refused = every["two_cavities"] > limit
            else:
                refused = two > limit or (two > 0 and every["two_cavities"] > limit)
            row[axis_name] = {"two_cavities": two, "refused": refused, "counts": counts, "seconds": seconds}
        if every is not None:
            row["every"] = every
        rows.append(row)
        print(json.dumps(row), flush=True)
    for family in ("bivme_biv", "bivme_lv", "ring", "demo", "segmented", "emidec"):
        chosen = [r for r in rows if r["mesh"].startswith(family)]
        for axis_name in ("shape", "lv", "slice"):
            found = [r[axis_name] for r in chosen if axis_name in r]
            if found:
                print(json.dumps({"summary": family, "axis": axis_name, "meshes": len(found),
                                  "two_cavities_max": max(f["two_cavities"] for f in found),
                                  "two_cavities_min": min(f["two_cavities"] for f in found),
                                  "refused": sum(f["refused"] for f in found),
                                  "seconds_max": max(f["seconds"] for f in found)}))

if __name__ == "__main__":
    main()
