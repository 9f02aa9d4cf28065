"""Which meshes does ``prepare`` take for the label map's heart, and which does it name as another's?

EMIDEC's label maps all have their origin at 0, so another patient's mesh lies in the field of
view and may lie over this one's scar (``other_patients_mesh.py``: 8 of 156 such pairs passed the
scar check). For each of EMIDEC's 52 infarct maps (``--scar-labels 3,4``) this pairs the map with
meshes made by ``mesh-from-labels``: its own at 1.5 mm, the surface of that mesh (endo- and
epicardium: a surface mesh), its own at 4.5 mm, its own shifted 3 and 6 mm in-plane (another
breath-hold: to pass), and the meshes of the next three infarct cases (another patient's: to be
named). Per pair it prints what the checks measure: the scar pixels near the mesh
(``scar_near_the_mesh``), the in-slab nodes on the myocardium (``_warn_mesh_off_the_myocardium``'s
share), the mesh's cut on the myocardium (``mesh_on_the_myocardium``, which needs the
myocardium given: ``--myocardium-labels 2,3,4``) and on the heart the map draws
(``mesh_on_the_drawn_heart``: its non-zero labels, read with the scar labels alone); and the
verdicts ``map_slices_to_nodes`` gives with the scar labels alone and with the myocardium labels
(refused, warned, or passed), each without and with the check of the cut (``before``). ACDC's
patient101 (no scar): each frame's mesh on its own frame's map and on the other frame's
(another phase of the heart), with half of each slice's wall painted as scar (label 4;
``--scar-labels 4 --myocardium-labels 2,4``). ``--timing``: only the check's cost in ``prepare``.

Usage: OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/mesh_pair_check.py
[--data ../shared/data] [--cases 52] [--labels-alone]  (9.4 min of CPU, 17 min wall on the shared machine;
``--labels-alone``: only the scar labels alone's verdicts; the output of both: results/mesh_pair_check.txt)
"""

from __future__ import annotations

import argparse
import logging
import time
from collections import Counter
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from cardioscar.errors import CardioScarError
from cardioscar.predict.meshscale import node_spacing
from cardioscar.prepare import mapping
from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels
from cardioscar.prepare.myocardium import label_masks, restrict_to_myocardium
from cardioscar.prepare.slices import SliceLayer, slices_from_image
from cardioscar.prepare.targets import slice_targets


class _Warnings(logging.Handler):
    """The mapping module's warnings during one pair."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def surface_points(label_image: sitk.Image) -> np.ndarray:
    """The nodes of the surface of the map's own ``mesh-from-labels`` mesh (LPS mm)."""
    surface = vtk.vtkDataSetSurfaceFilter()
    surface.SetInputData(myocardium_mesh_from_labels(label_image).dataset)
    surface.Update()
    return vtk_to_numpy(surface.GetOutput().GetPoints().GetData()).astype(np.float64)


#: The phrases of the warnings that name a mesh off the image (the scar's, the nodes', the cut's).
NAMING = ("lie on the mesh", "lies on the myocardium", "lie on the myocardium", "lies on the heart the label map draws")


def verdict(points: np.ndarray, layers: list[SliceLayer], caught: _Warnings, without: str = "") -> str:
    """``refused``, ``warned`` or ``passed``: what ``map_slices_to_nodes`` (as ``prepare`` runs it)
    says of the mesh, counting only the checks that name a mesh off the image. ``without``: the
    name of a ``mapping`` check left out (the library before it): ``_check_mesh_on_the_myocardium``
    (the cut on the myocardium given) or ``_check_mesh_on_the_drawn_heart`` (on the map's non-zero labels)."""
    caught.messages.clear()
    check = getattr(mapping, without) if without else None
    if without:
        setattr(mapping, without, lambda *args: None)
    try:
        mapping.map_slices_to_nodes(points, layers)
    except CardioScarError:
        return "refused"
    finally:
        if without:
            setattr(mapping, without, check)
    named = [text for text in caught.messages if any(phrase in text for phrase in NAMING)]
    return "warned" if named else "passed"


def measures(points: np.ndarray, targets: list[SliceLayer],
             restricted: list[SliceLayer] | None) -> tuple[float, float, float, float]:
    """(scar near the mesh, in-slab nodes on the myocardium, the mesh's cut on the myocardium, the
    mesh's cut on the heart the map draws); the two of the myocardium NaN without ``restricted``."""
    every = mapping.map_slices_to_nodes(points, targets, scar_targets=False)  # every pixel: the cut
    spacing = node_spacing(points)
    cols = np.array([layer.shape[1] for layer in targets])[every.group_slice]
    keys = every.group_pixel[:, 1] * cols + every.group_pixel[:, 0]
    cuts = [keys[every.group_slice == index] for index in range(len(targets))]
    near, total = mapping.scar_near_the_mesh(targets, cuts, spacing)
    drawn, _ = mapping.mesh_on_the_drawn_heart(targets, cuts, spacing)
    on_wall = cut_share = None
    if restricted is not None:
        values = np.array([restricted[s].values[j, i] for s, (i, j) in zip(every.group_slice, every.group_pixel)])
        on_wall = np.unique(every.node_ids[np.isfinite(values)[every.group_ids]]).size / np.unique(every.node_ids).size
        cut_share, _ = mapping.mesh_on_the_myocardium(restricted, cuts, spacing)
    return tuple(float("nan") if value is None else value
                 for value in (near / max(total, 1), on_wall, cut_share, drawn))  # type: ignore[return-value]


def one_pair(points: np.ndarray, labels: sitk.Image, scar: list[int], wall: list[int], caught: _Warnings,
             labels_alone: bool = False) -> str:
    """The measures and the verdicts of one (mesh, map) pair, as a line: with the scar labels
    alone before and after the drawn-heart check, and (unless ``labels_alone``) with the wall's
    labels before and after the cut check."""
    raw = slices_from_image(labels, half_thickness=5.0)
    targets = slice_targets(raw, scar)
    restricted = None if labels_alone else restrict_to_myocardium(targets, label_masks(raw, wall), "labels")[0]
    faces = [("labels alone before", targets, "_check_mesh_on_the_drawn_heart"), ("labels alone", targets, "")]
    if restricted is not None:
        faces += [("with wall before", restricted, "_check_mesh_on_the_myocardium"), ("with wall", restricted, "")]
    names = ("near", "nodes-on-wall", "cut-on-wall", "cut-on-drawn")
    try:
        figures, caught_none = measures(points, targets, restricted), False
    except CardioScarError:  # the mesh catches no pixel: refused whatever the face
        figures, caught_none = (0.0, 0.0, 0.0, 0.0), True
    shown = " ".join(f"{name} {value:.2f}" for name, value in zip(names, figures)
                     if not (labels_alone and name in ("nodes-on-wall", "cut-on-wall")))
    return shown + "".join(f" | {face}: {'refused' if caught_none else verdict(points, layers, caught, without)}"
                           for face, layers, without in faces)


def emidec_pairs(data: Path, count: int, caught: _Warnings, labels_alone: bool) -> list[tuple[str, str, str]]:
    """(kind, pair, line) for EMIDEC's infarct maps, as the module docstring lists them."""
    cases = sorted((data / "emidec").glob("Case_P*"))[:count]
    maps = {case.name: sitk.ReadImage(str(case / "Contours" / f"{case.name}.nii.gz")) for case in cases}
    meshes = {name: myocardium_mesh_from_labels(image).points_lps() for name, image in maps.items()}
    names, rows = list(maps), []
    for index, name in enumerate(names):
        across = np.asarray(maps[name].GetDirection()).reshape(3, 3)[:, 0]
        own = {"own 1.5 mm": meshes[name], "own surface": surface_points(maps[name]),
               "own 4.5 mm": myocardium_mesh_from_labels(maps[name], spacing_mm=4.5).points_lps(),
               "own shifted 3 mm": meshes[name] + 3.0 * across, "own shifted 6 mm": meshes[name] + 6.0 * across}
        for kind, points in own.items():
            rows.append((kind, name, one_pair(points, maps[name], [3, 4], [2, 3, 4], caught, labels_alone)))
        for step in (1, 2, 3):
            other = names[(index + step) % len(names)]
            rows.append(("other patient", f"{other} on {name}",
                         one_pair(meshes[other], maps[name], [3, 4], [2, 3, 4], caught, labels_alone)))
    return rows


def acdc_pairs(data: Path, caught: _Warnings, labels_alone: bool) -> list[tuple[str, str, str]]:
    """(kind, pair, line) for ACDC patient101's two frames, each mesh on each frame's map."""
    folder = data / "acdc_patient101"
    maps = {frame: with_painted_scar(sitk.ReadImage(str(folder / f"patient101_{frame}_gt.nii.gz")))
            for frame in ("frame01", "frame14")}
    meshes = {frame: myocardium_mesh_from_labels(image, labels=[2, 4]).points_lps() for frame, image in maps.items()}
    return [("ACDC own frame" if mesh == frame else "ACDC other frame", f"{mesh} on {frame}",
             one_pair(meshes[mesh], maps[frame], [4], [2, 4], caught, labels_alone)) for mesh in maps for frame in maps]


def with_painted_scar(labels: sitk.Image) -> sitk.Image:
    """ACDC's map (1 RV, 2 myocardium, 3 LV cavity) with the myocardium of lower row index than
    the slice's wall centre relabelled 4: a transmural scar over half of the wall, in the wall."""
    array = sitk.GetArrayFromImage(labels)
    for k in range(array.shape[0]):
        rows = np.nonzero(array[k] == 2)[0]
        if rows.size:
            band = array[k, :int(np.median(rows))]
            band[band == 2] = 4
    painted = sitk.GetImageFromArray(array)
    painted.CopyInformation(labels)
    return painted


def timing(data: Path) -> None:
    """Print the time ``map_slices_to_nodes`` takes (best of 3) with and without the cut check, for
    P092's map (``--myocardium-labels 2,3,4``) with its own mesh and with P094's (62,601 nodes)."""
    def read(case: str) -> sitk.Image:
        return sitk.ReadImage(str(data / "emidec" / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"))

    raw = slices_from_image(read("P092"))
    layers, _ = restrict_to_myocardium(slice_targets(raw, [3, 4]), label_masks(raw, [2, 3, 4]), "labels")
    check = mapping._check_mesh_on_the_myocardium
    for case in ("P092", "P094"):
        points = myocardium_mesh_from_labels(read(case)).points_lps()
        seconds = {}
        for name, replacement in (("with", check), ("without", lambda *args: False)):
            mapping._check_mesh_on_the_myocardium = replacement
            runs = []
            for _ in range(3):
                start = time.perf_counter()
                mapping.map_slices_to_nodes(points, layers)
                runs.append(time.perf_counter() - start)
            seconds[name] = min(runs)
        mapping._check_mesh_on_the_myocardium = check
        print(f"TIMING {case}'s mesh ({len(points)} nodes) on P092's map: map_slices_to_nodes {seconds['with']:.3f} s "
              f"with the cut check, {seconds['without']:.3f} s without (best of 3)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--cases", type=int, default=52)
    parser.add_argument("--timing", action="store_true", help="only time map_slices_to_nodes with and without the check")
    parser.add_argument("--labels-alone", action="store_true",
                        help="only the scar labels alone (no myocardium given): the drawn-heart check's verdicts")
    args = parser.parse_args()
    logging.getLogger("cardioscar").setLevel(logging.ERROR)  # only the mapping's warnings, caught below
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    caught = _Warnings()
    logging.getLogger(mapping.__name__).addHandler(caught)
    logging.getLogger(mapping.__name__).setLevel(logging.WARNING)
    if args.timing:
        timing(args.data)
        return
    rows = emidec_pairs(args.data, args.cases, caught, args.labels_alone)
    if (args.data / "acdc_patient101").is_dir():
        rows += acdc_pairs(args.data, caught, args.labels_alone)
    for kind, pair, line in rows:
        print(f"{kind}: {pair}: {line}")
    for kind in dict.fromkeys(kind for kind, _, _ in rows):
        lines = [line for k, _, line in rows if k == kind]
        for face in ("labels alone before", "labels alone", "with wall before", "with wall")[:2 if args.labels_alone else 4]:
            counts = Counter(line.split(f"| {face}: ")[1].split(" ")[0] for line in lines)
            print(f"SUMMARY {kind} ({len(lines)} pairs), {face}: " + ", ".join(f"{n} {v}" for v, n in sorted(counts.items())))


if __name__ == "__main__":
    main()
