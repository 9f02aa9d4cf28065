"""The numbering direction two RV insertion points give, on real hearts, and what a swap costs;
and the apical cap (segment 17) on real EMIDEC stacks.

Why: with two points the AHA numbering runs the way they say, so points given inferior first
mirror the table silently; ``aha`` now warns when their direction is the mirror of
:data:`cardioscar.aha.segments.ANATOMICAL_SENSE`. This measures whether it should warn or refuse:

* biv-me patient 1: the clinician's RV insertion guide points (``RV_INSERT``, one pair on each of
  five short-axis slices, in the scanner's LPS frame), the anterior one taken as the one in front
  (lower LPS y); the LV axis from the fitted LV endocardium's shape. Each pair's direction.
* the same heart mirrored (x -> -x, as a mesh in a mirrored frame or a dextrocardia): the same
  points, right way round, give the other direction; the septal segments still face the RV.
* ACDC patient 101 (label map, RV label 1): the arc's ends are named in the anatomical direction
  (assumed), and how far apart they lie front to back in the file's frame (a placeholder direction).
* the demo phantom (LAD, 12k nodes): the share of nodes whose segment changes when the two points
  are swapped, and where the LAD scar is then reported.
* EMIDEC: the first 8 normal and 6 infarct label maps meshed by ``mesh-from-labels`` (axis: the
  stack's normal; a wall node as the RV point): whether the cavity reaches the most apical and basal
  myocardial slice, and whether segment 17 is covered.

Prints one JSON line per case.

    PYTHONPATH=CardioScarLib .venv/bin/python Testing/benchmarks/aha_sense_and_cap.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.aha import AhaOptions, analyse_mesh
from cardioscar.aha.insertion import contact_points, ijk_to_lps_of, insertions_from_contacts
from cardioscar.aha.segments import ANATOMICAL_SENSE, axis_from_shape, insertion_frame
from cardioscar.io.meshio import Mesh, read_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.prepare.mesh_from_labels import MYOCARDIUM_LABELS, myocardium_mesh_from_labels

DATA = Path("/work/shared/data")
MIRROR = np.array([-1.0, 1.0, 1.0])


def _guide_insertions(path: Path) -> list[tuple[np.ndarray, np.ndarray]]:
    """(anterior, inferior) RV_INSERT pairs per slice: the anterior one has the lower LPS y."""
    rows = [line.split("\t") for line in path.read_text().splitlines()[1:]]
    by_slice: dict[str, list[np.ndarray]] = {}
    for row in rows:
        if row[3] == "RV_INSERT":
            by_slice.setdefault(row[4], []).append(np.array([float(v) for v in row[:3]]))
    return [tuple(sorted(pair, key=lambda p: p[1])) for pair in by_slice.values() if len(pair) == 2]


def _septal_share(frame, rv: np.ndarray, lv: np.ndarray) -> float:
    """Share of the RV endocardium's nodes within 12 mm of the LV whose segment is septal."""
    from scipy.spatial import cKDTree

    near = rv[cKDTree(lv).query(rv)[0] < 12.0]
    return float(np.isin(frame.segments(near), (2, 3, 8, 9, 14)).mean())


def bivme() -> None:
    folder = DATA / "bivme_patient1"
    lv = read_mesh(folder / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk").points_lps()
    rv = read_mesh(folder / "fitted_model_frame000" / "patient1_RV_ENDOCARDIAL_000.vtk").points_lps()
    pairs = _guide_insertions(folder / "guidepoints" / "GPFile_000.txt")
    for name, sign in (("bivme_guide_points", np.ones(3)), ("bivme_mirrored_x", MIRROR)):
        axis = axis_from_shape(lv * sign, np.ones(len(lv)))
        senses, shares = [], []
        for anterior, inferior in pairs:
            frame = insertion_frame(axis, anterior * sign, inferior * sign, -1e3, 1e3, name)
            senses.append(frame.sense)
            shares.append(round(_septal_share(frame, rv * sign, lv * sign), 3))
        print(json.dumps({"case": name, "pairs": len(pairs), "senses": senses, "anatomical_sense": ANATOMICAL_SENSE,
                          "septal_share_of_rv_contact": shares}))


def acdc() -> None:
    image = sitk.ReadImage(str(DATA / "acdc_patient101" / "patient101_frame01_gt.nii.gz"))
    labels = sitk.GetArrayFromImage(image)
    matrix = ijk_to_lps_of(image)
    kji = np.argwhere(labels == 2)[:, ::-1].astype(float)
    myocardium = kji @ matrix[:3, :3].T + matrix[:3, 3]
    axis = axis_from_shape(myocardium, np.ones(len(myocardium)))
    found = insertions_from_contacts(contact_points(labels, matrix, 1, 2, "acdc"), axis)
    print(json.dumps({"case": "acdc101_ed_label_map", "direction": np.asarray(image.GetDirection()).tolist(),
                      "anterior_minus_inferior_lps_y_mm": round(float(found.anterior[1] - found.inferior[1]), 1),
                      "anterior_minus_inferior_lps_z_mm": round(float(found.anterior[2] - found.inferior[2]), 1)}))


def phantom_swap() -> None:
    phantom = make_phantom(PhantomConfig(target_nodes=12000, seed=0, territories=("LAD",)))
    geometry = phantom.geometry

    def point(deg: float) -> np.ndarray:
        local = geometry.wall_to_local(np.array([0.5]), np.array([1.2]), np.array([math.radians(deg)]))
        return geometry.to_lps(local)[0]

    mesh = Mesh(dataset=phantom.mesh, space="LPS")
    right = analyse_mesh(mesh, AhaOptions(field="scar_truth", rv_point=point(30), rv_inferior_point=point(150)))
    swapped = analyse_mesh(mesh, AhaOptions(field="scar_truth", rv_point=point(150), rv_inferior_point=point(30)))

    def scarred(result) -> dict:
        return {row["segment"]: round(row["scar_pct"], 1) for row in result.rows if row["scar_pct"] > 1}

    print(json.dumps({"case": "demo_phantom_lad_12k", "sense_right": right.summary["rv_insertion"]["sense"],
                      "sense_swapped": swapped.summary["rv_insertion"]["sense"],
                      "nodes_in_another_segment": round(float((right.point_segments != swapped.point_segments).mean()), 3),
                      "scar_pct_right": scarred(right), "scar_pct_swapped": scarred(swapped)}))


def emidec_apical_cap() -> None:
    from vtk.util.numpy_support import numpy_to_vtk

    folder = DATA / "emidec"
    cases = sorted(folder.glob("Case_N*"))[:8] + sorted(folder.glob("Case_P*"))[:6]
    for case in cases:
        image = sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz"))
        labels = sitk.GetArrayFromImage(image)
        wall = [k for k in range(labels.shape[0]) if np.isin(labels[k], MYOCARDIUM_LABELS).any()]
        mesh = myocardium_mesh_from_labels(image, MYOCARDIUM_LABELS)
        field = numpy_to_vtk(np.zeros(mesh.n_points), deep=True)
        field.SetName("scar_probability")
        mesh.dataset.GetPointData().AddArray(field)
        points = mesh.points_lps()
        normal = np.asarray(image.GetDirection()).reshape(3, 3)[:, 2]
        heights = points @ normal
        middle = points[np.abs(heights - np.median(heights)) < 3.0]
        result = analyse_mesh(mesh, AhaOptions(rv_point=middle[np.argmax(middle[:, 0])], slice_normal=normal,
                                               uncertainty_field=None))
        print(json.dumps({"case": f"emidec_{case.name[5:]}",
                          "cavity_on_end_slices": [bool((labels[k] == 1).any()) for k in (wall[0], wall[-1])],
                          "segment_17_covered": result.rows[16]["covered"],
                          "apical_cap": result.summary["levels"]["apical_cap"]}))


if __name__ == "__main__":
    bivme()
    acdc()
    phantom_swap()
    emidec_apical_cap()
