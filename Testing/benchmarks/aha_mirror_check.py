"""Whether ``aha``'s frame-handedness check (``cardioscar/aha/handedness.py``) tells a mirrored frame
or heart from a correct one, on all the real data and on mirrored copies of it.

Why: with one RV insertion point or a label map the numbering direction is assumed anatomical, so
a mesh in a mirrored frame is numbered mirrored, silently (two points given swapped in a mirrored
frame too). Each case's AHA frame is built as ``aha`` builds it (the long axis from the shape, the
insertions from the points or the label map's RV contact arc) and judged by ``frame_handedness``;
a copy counts as caught when its ``sense`` (two points) or the new check warns.

* biv-me patient 1 (the only heart here in a scanner's frame): the fitted LV endocardium, the
  clinician's five RV insertion pairs (two points; each anterior point alone), and the RV
  contact arc of the fitted RV endocardium (what a label map gives); mirrored across the frame's
  x, y and z planes and across the short-axis DICOM's (Se1) row, column and slice axes, as an
  image flipped along an axis with its header kept (or the header's axis negated, which mirrors
  about a parallel plane: the same up to a shift). Mirrored copies are given the mirrored true
  points, anterior first and swapped.
* ACDC patient 101 (ED, ES) and the 75 EMIDEC label maps (identity placeholder directions): the
  myocardium's voxel centres; ACDC's insertions from its RV label (axis from the shape), EMIDEC's
  one RV point as ``aha_sense_and_cap.py`` places it by hand (axis along the stack's normal, as
  ``--slice-normal-from``: the shape axis of voxel centres fails on N020, a singular slab fit); each also with its array flipped along i, j and k
  keeping the header, and with its header's i axis negated keeping the array.
* the demo phantom (anatomically handed) and four segmented-family phantoms (mirrored hearts by
  construction): wall nodes, insertions at 30 and 150 degrees.

Prints one JSON line per case and a totals line.

    PYTHONPATH=CardioScarLib .venv/bin/python Testing/benchmarks/aha_mirror_check.py
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Iterator, Optional

import numpy as np
import SimpleITK as sitk
from scipy.spatial import cKDTree

from cardioscar.aha.handedness import frame_handedness, mirror_findings
from cardioscar.aha.insertion import contact_points, ijk_to_lps_of, insertions_from_contacts
from cardioscar.aha.segments import ANATOMICAL_SENSE, LongAxis, axis_from_shape, insertion_frame, orient_towards_base
from cardioscar.io.meshio import read_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.phantoms.phantom_segmented import SegmentedConfig, make_segmented_phantom

DATA = Path("/work/shared/data")
TOTALS: dict[str, dict[str, int]] = {}


def _judge(points: np.ndarray, anterior: np.ndarray, inferior: Optional[np.ndarray],
           normal: Optional[np.ndarray] = None) -> dict:
    """The frame from the shape, or along the stack's ``normal`` (``--slice-normal-from``'s axis)."""
    weights = np.ones(len(points))
    axis = (axis_from_shape(points, weights) if normal is None else
            LongAxis(points.mean(axis=0), orient_towards_base(normal, points, weights), "slice normal"))
    frame = insertion_frame(axis, anterior, inferior, -1e3, 1e3, "benchmark")
    record = frame_handedness(frame)
    return {"sense": "anatomical" if frame.sense == ANATOMICAL_SENSE else "mirrored",
            "verdict": record["verdict"].split(":")[0], "obliquity_deg": record["axis_obliquity_deg"],
            "findings_ungated": mirror_findings(frame) if frame.sense == ANATOMICAL_SENSE else []}


def _emit(case: str, copy: str, inputs: str, judged: dict) -> None:
    by_sense, by_frame = judged["sense"] == "mirrored", judged["verdict"] == "not as in the patient's frame"
    warned = by_sense or by_frame
    kind = "correct" if copy == "as read" else "mirrored"
    tally = TOTALS.setdefault(f"{case.split(':')[0]} {kind}", dict.fromkeys(
        ("cases", "warned", "warned_by_sense", "warned_by_frame", "frame_not_checked"), 0))
    for key, count in (("cases", True), ("warned", warned), ("warned_by_sense", by_sense),
                       ("warned_by_frame", by_frame), ("frame_not_checked", judged["verdict"] == "not checked")):
        tally[key] += int(count)
    print(json.dumps({"case": case, "copy": copy, "inputs": inputs, "warned": warned, **judged}))


def _reflect(points: np.ndarray, normal: np.ndarray, centre: np.ndarray) -> np.ndarray:
    normal = normal / np.linalg.norm(normal)
    return points - 2.0 * np.outer((points - centre) @ normal, normal)


def determinants() -> None:
    """The direction matrices' determinants: a negative one is no mirror in LPS (SimpleITK places
    the voxels by it), only where voxel indices are taken for coordinates."""
    paths = sorted((DATA / "emidec").glob("Case_*/Contours/*.nii.gz")) + sorted(DATA.glob("acdc_patient101/*_gt.nii.gz"))
    paths += sorted((DATA / "bivme_patient1" / "dicom_ED").glob("Se*/*.dcm"))
    dets = [round(float(np.linalg.det(np.reshape(sitk.ReadImage(str(p)).GetDirection(), (3, 3)))), 3) for p in paths]
    identity = sum(np.allclose(sitk.ReadImage(str(p)).GetDirection(), np.eye(3).ravel()) for p in paths)
    print(json.dumps({"case": "direction determinants", "files": len(paths), "negative": sum(d < 0 for d in dets),
                      "identity_direction": int(identity)}))


def bivme() -> None:
    from aha_sense_and_cap import _guide_insertions  # the clinician's pairs, anterior (front) first

    folder = DATA / "bivme_patient1"
    lv = read_mesh(folder / "fitted_model_frame000" / "patient1_LV_ENDOCARDIAL_000.vtk").points_lps()
    rv = read_mesh(folder / "fitted_model_frame000" / "patient1_RV_ENDOCARDIAL_000.vtk").points_lps()
    pairs = _guide_insertions(folder / "guidepoints" / "GPFile_000.txt")
    series = sitk.ReadImage(str(next((folder / "dicom_ED" / "Se1").glob("*.dcm"))))
    axes = np.asarray(series.GetDirection()).reshape(3, 3)
    centre = lv.mean(axis=0)
    mirrors = {"as read": None, "x": np.eye(3)[0], "y": np.eye(3)[1], "z": np.eye(3)[2],
               "Se1 i (row)": axes[:, 0], "Se1 j (column)": axes[:, 1], "Se1 k (slice)": axes[:, 2]}
    for copy, normal in mirrors.items():
        move = (lambda p: p) if normal is None else (lambda p, n=normal: _reflect(p, n, centre))
        mlv, mrv = move(lv), move(rv)
        for index, (anterior, inferior) in enumerate(pairs):
            a, b = move(anterior[None])[0], move(inferior[None])[0]
            _emit("bivme: guide pair", copy, f"pair {index} anterior first", _judge(mlv, a, b))
            if copy != "as read":
                _emit("bivme: guide pair", copy, f"pair {index} swapped", _judge(mlv, b, a))
            _emit("bivme: one point", copy, f"pair {index} anterior", _judge(mlv, a, None))
        near = mrv[cKDTree(mlv).query(mrv)[0] < 12.0]  # the RV's side of the septum: a label map's contact
        found = insertions_from_contacts(near, axis_from_shape(mlv, np.ones(len(mlv))))
        _emit("bivme: RV contact arc", copy, "fitted RV endocardium within 12 mm", _judge(mlv, found.anterior, found.inferior))


def _label_copies(image: sitk.Image) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """(copy, labels [k, j, i], ijk -> LPS): as read, each array axis flipped, the header's i negated."""
    labels = sitk.GetArrayFromImage(image)
    matrix = ijk_to_lps_of(image)
    yield "as read", labels, matrix
    for name, axis in (("array i flipped", 2), ("array j flipped", 1), ("array k flipped", 0)):
        yield name, np.flip(labels, axis=axis).copy(), matrix
    negated = matrix.copy()
    negated[:3, 0] *= -1.0
    yield "header i negated", labels, negated


def _centres(labels: np.ndarray, matrix: np.ndarray, wanted: tuple[int, ...]) -> np.ndarray:
    ijk = np.argwhere(np.isin(labels, wanted))[:, ::-1].astype(float)
    return ijk @ matrix[:3, :3].T + matrix[:3, 3]


def acdc() -> None:
    for frame in ("01", "14"):
        image = sitk.ReadImage(str(DATA / "acdc_patient101" / f"patient101_frame{frame}_gt.nii.gz"))
        for copy, labels, matrix in _label_copies(image):
            myocardium = _centres(labels, matrix, (2,))
            axis = axis_from_shape(myocardium, np.ones(len(myocardium)))
            found = insertions_from_contacts(contact_points(labels, matrix, 1, 2, "acdc"), axis)
            _emit(f"acdc101: frame {frame}", copy, "RV label 1", _judge(myocardium, found.anterior, found.inferior))


def emidec() -> None:
    for case in sorted((DATA / "emidec").glob("Case_*")):
        image = sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz"))
        for copy, labels, matrix in _label_copies(image):
            myocardium = _centres(labels, matrix, (2, 3, 4))
            normal = matrix[:3, 2] / np.linalg.norm(matrix[:3, 2])
            heights = myocardium @ normal
            middle = myocardium[np.abs(heights - np.median(heights)) < 3.0]
            _emit(f"emidec: {case.name}", copy, "one RV point by hand, axis along the stack's normal",
                  _judge(myocardium, middle[np.argmax(middle[:, 0])], None, normal))


def phantoms() -> None:
    cases = [("demo phantom (anatomical)", make_phantom(PhantomConfig(target_nodes=3000, seed=0, territories=("LAD",))))]
    cases += [(f"segmented seed {seed} (mirrored heart)", make_segmented_phantom(SegmentedConfig(seed=seed, target_nodes=3000)))
              for seed in range(4)]
    for name, phantom in cases:
        geometry = phantom.geometry

        def point(deg: float) -> np.ndarray:
            local = geometry.wall_to_local(np.array([0.5]), np.array([1.2]), np.array([math.radians(deg)]))
            return geometry.to_lps(local)[0]

        nodes = np.array(phantom.mesh.GetPoints().GetData())
        # a mirrored heart is the "copy" here: its anatomically placed points read mirrored
        copy = "mirrored heart" if geometry.mirrored else "as read"
        _emit(f"phantom: {name}", copy, "points at 30 and 150 degrees", _judge(nodes, point(30), point(150)))
        _emit(f"phantom: {name}", copy, "one point at 30 degrees", _judge(nodes, point(30), None))


if __name__ == "__main__":
    import logging
    import sys

    logging.disable(logging.WARNING)  # the check's own warning lines; the JSON says what they would be
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    determinants()
    bivme()
    acdc()
    emidec()
    phantoms()
    print(json.dumps({"totals": TOTALS}))
