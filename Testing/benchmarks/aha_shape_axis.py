"""The AHA long axis read from a mesh's shape, against the axis each mesh is known to have.

Meshes: EMIDEC's 75 label maps meshed with ``mesh-from-labels`` (known axis: the short-axis
stack's normal), ACDC patient 101 at end-diastole and end-systole (its voxels and its
``mesh-from-labels`` mesh; the stack's normal), the biv-me LV endocardium (the short-axis
planes' normal), demo phantoms seeds 0-3 and segmented phantoms seeds 0-7 at 12k nodes (the
LV frame's z axis); on the EMIDEC meshes also with a quarter and with half of the ring removed
(the nodes within 90 or 180 degrees about the stack's normal: an LV mask that leaves out the
septum, or a partial mesh). Methods: the ring/centre-line axis the library uses
(:func:`cardioscar.aha.shape_axis.shape_axis`) and, for comparison, the principal direction of
largest spread that it replaced. Prints one JSON line per mesh, then a summary line.

    PYTHONPATH=CardioScarLib .venv/bin/python Testing/benchmarks/aha_shape_axis.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterator

import numpy as np
import SimpleITK as sitk

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_robust import DATA, SHORT_AXIS, slices_from_path  # noqa: E402
from cardioscar.aha.shape_axis import shape_axis  # noqa: E402
from cardioscar.io.meshio import read_mesh  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom  # noqa: E402
from cardioscar.phantoms.phantom_segmented import SegmentedConfig  # noqa: E402
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, myocardium_mesh_from_labels  # noqa: E402


def _stack_normal(image: sitk.Image) -> np.ndarray:
    return np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]


def _labelled_voxels(image: sitk.Image, label: int) -> np.ndarray:
    kji = np.argwhere(sitk.GetArrayViewFromImage(image) == label).astype(float)
    return np.array([image.TransformContinuousIndexToPhysicalPoint(tuple(v[::-1])) for v in kji])


def meshes() -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(name, node points LPS, known axis) of every mesh above."""
    for case in sorted(p for p in (DATA / "emidec").glob("Case_*") if p.is_dir()):
        image = sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz"))
        yield f"emidec_{case.name[5:]}", myocardium_mesh_from_labels(image, MYOCARDIUM_LABELS).points_lps(), _stack_normal(image)
    for frame, phase in (("frame01", "ed"), ("frame14", "es")):
        image = sitk.ReadImage(str(DATA / "acdc_patient101" / f"patient101_{frame}_gt.nii.gz"))
        yield f"acdc101_{phase}_voxels", _labelled_voxels(image, 2), _stack_normal(image)
        yield f"acdc101_{phase}_mesh", myocardium_mesh_from_labels(image, (2,)).points_lps(), _stack_normal(image)
    bivme = DATA / "bivme_patient1"
    plane = slices_from_path(bivme / "dicom_ED" / SHORT_AXIS[0], half_thickness=3.0)[0]
    yield "bivme_lv_endocardium", read_mesh(bivme / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk").points_lps(), plane.normal
    for seed in range(4):
        phantom = make_phantom(PhantomConfig(seed=seed, target_nodes=12000))
        yield f"demo_s{seed}", phantom.points_lps, phantom.geometry.rotation[:, 2]
    for seed in range(8):
        phantom = make_phantom(SegmentedConfig(seed=seed, target_nodes=12000, mesh_type="tet" if seed % 4 < 2 else "hex"))
        yield f"segmented_s{seed}", phantom.points_lps, phantom.geometry.rotation[:, 2]


def _degrees(a: np.ndarray, b: np.ndarray) -> float:
    cosine = abs(float(a @ b)) / float(np.linalg.norm(a) * np.linalg.norm(b))
    return float(np.degrees(np.arccos(min(1.0, cosine))))


def _principal(points: np.ndarray) -> tuple[np.ndarray, float]:
    offsets = points - points.mean(axis=0)
    values, vectors = np.linalg.eigh(offsets.T @ offsets / len(points))
    return vectors[:, 2], float(values[2] / values[1])


def _without_sector(points: np.ndarray, normal: np.ndarray, degrees: float) -> np.ndarray:
    """The points outside a sector of ``degrees`` about ``normal`` through their centre."""
    offsets = points - points.mean(axis=0)
    first = np.cross(normal, [1.0, 0.0, 0.0] if abs(normal[0]) < 0.9 else [0.0, 1.0, 0.0])
    first /= np.linalg.norm(first)
    angle = np.degrees(np.arctan2(offsets @ np.cross(normal, first), offsets @ first)) % 360.0
    return points[angle >= degrees]


def main() -> None:
    rows = []
    for name, points, known in meshes():
        found = shape_axis(points, np.ones(len(points)))
        longest, elongation = _principal(points)
        row = {"mesh": name, "nodes": len(points), "shape_axis_deg": round(_degrees(found.direction, known), 1),
               "ring_contrast": round(found.contrast, 2), "longest_spread_deg": round(_degrees(longest, known), 1),
               "elongation": round(elongation, 2)}
        if name.startswith("emidec"):
            for degrees, key in ((90.0, "without_quarter_deg"), (180.0, "without_half_deg")):
                part = _without_sector(points, known, degrees)
                row[key] = round(_degrees(shape_axis(part, np.ones(len(part))).direction, known), 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    for family in ("emidec", "other"):
        chosen = [r for r in rows if r["mesh"].startswith("emidec") == (family == "emidec")]
        shape = np.array([r["shape_axis_deg"] for r in chosen])
        longest = np.array([r["longest_spread_deg"] for r in chosen])
        print(json.dumps({"summary": family, "meshes": len(chosen), "shape_axis_mean_deg": round(float(shape.mean()), 1),
                          "shape_axis_max_deg": float(shape.max()), "shape_axis_over_30": int((shape > 30).sum()),
                          "longest_spread_mean_deg": round(float(longest.mean()), 1),
                          "longest_spread_over_60": int((longest > 60).sum()),
                          "ring_contrast_min": float(min(r["ring_contrast"] for r in chosen)),
                          **({"without_quarter_max_deg": max(r["without_quarter_deg"] for r in chosen),
                              "without_half_max_deg": max(r["without_half_deg"] for r in chosen)}
                             if family == "emidec" else {})}))


if __name__ == "__main__":
    main()
