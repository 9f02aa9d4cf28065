"""The path a cardiac modeller runs, on real EMIDEC cases, with its outputs checked independently.

Per case, the README's commands (*From LGE to an openCARP model*, *AHA 17-segment ...*) through the
command line: ``mesh-from-labels``; ``prepare`` from the raw LGE with n-SD 2,3 (scar and core
targets) and from the expert labels (3, 4 scar); ``train --preset fast`` and ``apply`` for each;
``export`` (openCARP in um and mm, and ``.vtu``) of the two-field tags, and of the labels model
alone; ``aha`` of both models and of the tagged ``.vtu``. A step whose output exists is skipped.
Then the checks, written without the code that made the files: the ``.pts``/``.elem`` parsed here
(counts, micrometres against the mesh, element codes, the cell's nodes, positive hexahedron volume
after meshtool's inverse permutation, each element's tag by the documented rule on the two
fields), every element centre mapped back to the label image through its origin, spacing and
direction (the share on myocardium, labels 2-4), the tagged volumes against the experts' slice
summation, each AHA segment's scar share against the same share computed here from the expert
labels (segments built from the README's definitions; and every node's segment against
``aha_mesh``), and, when slicer-core is importable, the Slicer Logic's tag and export of the same
results against the command line's files. One JSON line per case.

    PYTHONPATH=CardioScarLib python Testing/benchmarks/modeller_path_emidec.py OUT_DIR [CASE ...]

(default cases P051 P022 P047: a small infarct, one with no-reflow, a large one). EMIDEC has no RV
label, so the anterior RV insertion is a stand-in: the mesh node at mid height farthest along
-(x + y/2) from the centre; the numbering's anatomy is then arbitrary, the comparison is not.

The cohort sweep (``ROBUSTNESS.md``, *The modeller's path across EMIDEC*) runs a lighter path on
many cases, a failing step ending its case without stopping the sweep: the n-SD fields, their
two-field ``heart.vtu``, the openCARP export with ``--fibres rule``, ``aha`` of the tags and
``channels`` (:func:`sweep_path`); each step's exit status, seconds and stderr (each log line with
its level) go to ``CASE/log/``. One JSON line per case (:func:`sweep_record`); ``--sweep-records``
rereads finished folders, ``--sweep-table`` prints the Markdown summary of such lines:

    PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/modeller_path_emidec.py --sweep OUT_DIR \
        [--max-epochs N] CASE ... > LINES.jsonl
    python Testing/benchmarks/modeller_path_emidec.py --sweep-table LINES.jsonl
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import vtk_to_numpy

ROOT = Path(__file__).resolve().parents[2]
EMIDEC = ROOT.parent / "shared" / "data" / "emidec"
#: meshtool's perm_con_vtk_to_carp for a hexahedron: openCARP position i holds VTK node HEX_TO_CARP[i]
HEX_TO_CARP = np.array([7, 6, 5, 4, 3, 0, 1, 2])


#: ``python -m cardioscar`` with each log record's level before its message (the command line prints
#: the message alone), so a step's warnings can be told from its information lines
LEVELLED_CLI = ("import logging, sys; from cardioscar.cli import main; plain = logging.StreamHandler.format; "
                "logging.StreamHandler.format = lambda h, r: r.levelname + ': ' + plain(h, r); sys.exit(main())")


def cli(folder: Path, output: str, *args: str, check: bool = True) -> bool:
    """Run ``cardioscar ARGS`` in ``folder`` unless ``output`` is already there; the step's exit status,
    seconds and stderr go to ``log/OUTPUT.json`` (a cached step keeps its first run's). Returns whether
    ``output`` exists after it; with ``check`` a failing step raises."""
    log = folder / "log" / (output.replace("/", "_") + ".json")
    if not (folder / output).exists():
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", LEVELLED_CLI, *args], cwd=folder, capture_output=True, text=True)
        log.parent.mkdir(parents=True, exist_ok=True)
        seconds = round(time.perf_counter() - start, 1)
        record = {"args": list(args), "rc": done.returncode, "seconds": seconds, "stderr": done.stderr}
        log.write_text(json.dumps(record), encoding="utf-8")
        if check and done.returncode:
            raise subprocess.CalledProcessError(done.returncode, ["cardioscar", *args], stderr=done.stderr)
    return (folder / output).exists()


def rule_fields(case: str, folder: Path) -> Path:
    """``mesh-from-labels``, then n-SD 2,3 scar and core fields (``prepare``, ``train --preset fast``,
    ``apply``) and their two-field ``export --format vtu`` (``heart.vtu``); returns the LGE's path."""
    lge = EMIDEC / f"Case_{case}" / "Images" / f"Case_{case}.nii.gz"
    labels = EMIDEC / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"
    folder.mkdir(parents=True, exist_ok=True)
    cli(folder, "heart.vtk", "mesh-from-labels", "--labels", str(labels), "--output", "heart.vtk")
    rule = ["--scar-rule", "nsd", "--scar-thresholds", "2,3", "--myocardium-mask", str(labels), "--myocardium-labels",
            "2,3,4", "--blood-pool-labels", "1", "--slice-thickness-padding", "5"]
    cli(folder, "scar.npz", "prepare", "--mesh", "heart.vtk", "--image", str(lge), *rule, "--output", "scar.npz")
    cli(folder, "core.npz", "prepare", "--mesh", "heart.vtk", "--image", str(lge), *rule, "--scar-target", "core",
        "--output", "core.npz")
    for model in ("scar", "core"):
        train_and_apply(folder, model)
    cli(folder, "heart.vtu", "export", "--mesh", "scar_pred.vtk", "--core-mesh", "core_pred.vtk", "--format", "vtu",
        "--output", "heart.vtu")
    return lge


#: options added to every ``train`` (the sweep's ``--max-epochs N``: a shorter schedule than the preset's)
TRAIN_OPTIONS: list[str] = []


def train_and_apply(folder: Path, model: str) -> None:
    """``train --preset fast`` on ``MODEL.npz`` and ``apply`` on ``heart.vtk`` (``MODEL_pred.vtk``)."""
    cli(folder, f"{model}.pth", "train", "--training-data", f"{model}.npz", "--output", f"{model}.pth",
        "--preset", "fast", "--cpu", *TRAIN_OPTIONS)
    cli(folder, f"{model}_pred.vtk", "apply", "--model", f"{model}.pth", "--mesh", "heart.vtk", "--output",
        f"{model}_pred.vtk", "--cpu")


def run_path(case: str, folder: Path) -> None:
    lge = rule_fields(case, folder)
    labels = EMIDEC / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"
    cli(folder, "labels.npz", "prepare", "--mesh", "heart.vtk", "--image", str(labels), "--scar-labels", "3,4",
        "--myocardium-labels", "2,3,4", "--slice-thickness-padding", "5", "--output", "labels.npz")
    train_and_apply(folder, "labels")
    two = ["--mesh", "scar_pred.vtk", "--core-mesh", "core_pred.vtk"]
    cli(folder, "heart.elem", "export", *two, "--rule-from", "scar.npz", "--output", "heart")
    cli(folder, "heart_mm.elem", "export", *two, "--rule-from", "scar.npz", "--units", "mm", "--output", "heart_mm")
    cli(folder, "labels_heart.elem", "export", "--mesh", "labels_pred.vtk", "--output", "labels_heart")
    rv = ",".join(f"{v:.3f}" for v in stand_in_insertion(read_grid(folder / "heart.vtk")[1]))
    normal = ["--rv-point=" + rv, "--slice-normal-from", str(lge)]
    for model in ("labels", "scar"):
        cli(folder, f"aha_{model}/aha.csv", "aha", "--mesh", f"{model}_pred.vtk", *normal, "--output-dir", f"aha_{model}")
    cli(folder, "aha_tagged/aha.csv", "aha", "--mesh", "heart.vtu", *normal, "--tags-field", "tissue_tag",
        "--border-zone-tag", "2", "--output-dir", "aha_tagged")


#: a segment counts as scarred from this scar share (%), the experts' and the tool's alike
SEGMENT_SCAR_PCT = 5.0


def clinical_rows() -> dict[str, dict]:
    """EMIDEC's clinical table by case number (``P022`` -> its row)."""
    with open(EMIDEC / "clinical.csv", encoding="utf-8") as table:
        return {int(r["case"]): r for r in csv.DictReader(table)}


def sweep_record(case: str, folder: Path, clinical: dict[str, dict]) -> dict:
    """One case of the sweep: each step's exit status and seconds, the warnings raised, the burden
    against the clinical table and the experts' labels, AHA segments with scar against the experts',
    the tags' volumes, channels kept and dropped, and the fibre rule's fallbacks."""
    steps = {}
    warnings = []
    failed = None
    for log_file in sorted((folder / "log").glob("*.json"), key=lambda p: p.stat().st_mtime):
        log = json.loads(log_file.read_text(encoding="utf-8"))
        step = log["args"][0] + ":" + log_file.stem
        steps[step] = {"rc": log["rc"], "seconds": log["seconds"]}
        warnings += [f"{step}: {line.removeprefix('WARNING: ')}" for line in log["stderr"].splitlines()
                     if line.startswith("WARNING: ") or "Warning: " in line]  # the library's and Python's
        if log["rc"] and failed is None:
            failed = {"step": step, "rc": log["rc"], "error": log["stderr"].strip().splitlines()[-1]}
    row = clinical[int(case[1:])]
    image = sitk.ReadImage(str(EMIDEC / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"))
    labels = sitk.GetArrayFromImage(image)
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    last = "channels:channels_channels.json"
    record = {"case": case, "failed": failed, "finished": failed is None and last in steps, "steps": steps,
              "seconds": round(sum(s["seconds"] for s in steps.values()), 1), "warnings": warnings,
              "experts": {"clinical_myocardium_ml": round(float(row["myo"]), 2),
                          "clinical_infarct_ml": round(float(row["inf"]), 2),
                          "clinical_no_reflow_ml": round(float(row["pmo"]), 2),
                          "labels_myocardium_ml": round(float(np.isin(labels, [2, 3, 4]).sum() * voxel_ml), 2),
                          "labels_scar_ml": round(float(np.isin(labels, [3, 4]).sum() * voxel_ml), 2)}}
    if (folder / "heart.json").exists():
        sidecar = json.loads((folder / "heart.json").read_text(encoding="utf-8"))
        record["tool_ml"] = {k: round(v["volume_ml"], 2) for k, v in sidecar["classes"].items()}
        fallback = sidecar.get("fibre_rule", {}).get("frame_fallback", {})
        record["fibre_fallback_elements"] = {k: v["elements"] for k, v in fallback.items()}
    if (folder / "aha_tagged" / "aha.json").exists():
        voxels, expert_scar = myocardium_voxels(image, labels)
        _, points = read_grid(folder / "heart.vtk")
        _, _, _, pairs = segment_shares(folder, "tagged", points, voxels, expert_scar)
        lv = json.loads((folder / "aha_tagged" / "aha.json").read_text(encoding="utf-8"))["lv"]
        record["aha"] = {"lv": lv, "segments": {s: [round(e, 1), round(t, 1)] for s, (e, t) in pairs.items()},
                         "expert_scarred": sorted(s for s, (e, _) in pairs.items() if e >= SEGMENT_SCAR_PCT),
                         "tool_scarred": sorted(s for s, (_, t) in pairs.items() if t >= SEGMENT_SCAR_PCT)}
    if (folder / "channels" / "channels.json").exists():
        channels = json.loads((folder / "channels" / "channels.json").read_text(encoding="utf-8"))
        record["channels"] = {"kept": channels["n_channels"], "dropped_short": channels["n_dropped_short"]}
    return record


def sweep_table(records: list[dict]) -> str:
    """The sweep's summary in Markdown, one row per case (``ROBUSTNESS.md``)."""
    rows = ["| case | exit | s | warnings | experts' scar ml (table / labels), % "
            "| border zone / core / scar ml, % of LV | segments >= 5 %: experts' / tool's / both "
            "| channels kept / short | fibre fallbacks |",
            "| --- | --- | ---: | ---: | --- | --- | --- | --- | --- |"]
    for r in records:
        e, ml = r["experts"], r.get("tool_ml", {})
        exit_text = ("ok" if r["finished"] else f"unfinished after {list(r['steps'])[-1]}") if r["failed"] is None \
            else f"{r['failed']['step']} rc {r['failed']['rc']}"
        tool_scar = ml.get("border_zone", 0.0) + ml.get("core", 0.0)
        tool_lv = sum(ml.values()) if ml else None
        burden = (f"{ml.get('border_zone', 0):.1f} / {ml.get('core', 0):.1f} / {tool_scar:.1f}, "
                  f"{100 * tool_scar / tool_lv:.1f} %") if tool_lv else "-"
        aha = r.get("aha")
        segments = "-" if aha is None else (f"{len(aha['expert_scarred'])} / {len(aha['tool_scarred'])} / "
                                            f"{len(set(aha['expert_scarred']) & set(aha['tool_scarred']))}")
        channels = "-" if "channels" not in r else f"{r['channels']['kept']} / {r['channels']['dropped_short']}"
        fallback = r.get("fibre_fallback_elements")
        rows.append(f"| {r['case']} | {exit_text} | {r['seconds']:.0f} | {len(r['warnings'])} | "
                    f"{e['clinical_infarct_ml']:.1f} / {e['labels_scar_ml']:.1f}, "
                    f"{100 * e['labels_scar_ml'] / e['labels_myocardium_ml']:.1f} % | {burden} | {segments} | "
                    f"{channels} | "
                    f"{'-' if fallback is None else ' + '.join(str(v) for v in fallback.values())} |")
    return "\n".join(rows)


def sweep_path(case: str, folder: Path) -> None:
    """The cohort sweep's path, a failing step ending the case (its log kept): the n-SD fields and
    their ``heart.vtu`` (:func:`rule_fields`), the openCARP export with the rule's fibres, ``aha`` of the
    tagged ``.vtu`` and ``channels`` on it. No labels model: the experts' side is read from the labels."""
    try:
        lge = rule_fields(case, folder)
        cli(folder, "heart.elem", "export", "--mesh", "scar_pred.vtk", "--core-mesh", "core_pred.vtk", "--rule-from",
            "scar.npz", "--fibres", "rule", "--output", "heart")
        rv = ",".join(f"{v:.3f}" for v in stand_in_insertion(read_grid(folder / "heart.vtk")[1]))
        cli(folder, "aha_tagged/aha.csv", "aha", "--mesh", "heart.vtu", "--rv-point=" + rv, "--slice-normal-from",
            str(lge), "--tags-field", "tissue_tag", "--border-zone-tag", "2", "--output-dir", "aha_tagged")
        cli(folder, "channels/channels.json", "channels", "--mesh", "heart.vtu", "--output-dir", "channels")
    except subprocess.CalledProcessError:
        pass  # the step's log holds its exit status and stderr


def stand_in_insertion(points: np.ndarray) -> np.ndarray:
    centre = points.mean(axis=0)
    band = points[np.abs(points[:, 2] - np.median(points[:, 2])) < 2.0]
    return np.round(band[np.argmin(band[:, 0] - centre[0] + 0.5 * (band[:, 1] - centre[1]))], 3)  # as typed


def read_grid(path: Path) -> tuple[vtk.vtkDataSet, np.ndarray]:
    reader = vtk.vtkXMLUnstructuredGridReader() if path.suffix == ".vtu" else vtk.vtkGenericDataObjectReader()
    reader.SetFileName(str(path))
    reader.Update()
    grid = reader.GetOutput()
    return grid, vtk_to_numpy(grid.GetPoints().GetData()).astype(np.float64)


def point_field(grid: vtk.vtkDataSet, name: str) -> np.ndarray:
    return vtk_to_numpy(grid.GetPointData().GetArray(name)).astype(np.float64)


def read_counted(path: Path) -> list[list[str]]:
    """The lines after a count line, checked against it."""
    lines = [line.split() for line in path.read_text(encoding="utf-8").split("\n")]
    body = [line for line in lines[1:] if line]
    assert int(lines[0][0]) == len(body), f"{path.name}: header {lines[0][0]}, {len(body)} lines"
    return body


def read_elem(path: Path) -> tuple[list[str], np.ndarray, np.ndarray]:
    body = read_counted(path)
    return [b[0] for b in body], np.array([[int(v) for v in b[1:-1]] for b in body]), np.array([int(b[-1]) for b in body])


def hexahedron_volumes(points: np.ndarray) -> np.ndarray:
    """Signed volumes of VTK-ordered hexahedra (N, 8, 3): six tetrahedra around the 0-6 diagonal."""
    total = np.zeros(len(points))
    for a, b, c in ((1, 2, 6), (2, 3, 6), (3, 7, 6), (7, 4, 6), (4, 5, 6), (5, 1, 6)):
        total += np.einsum("ij,ij->i", points[:, a] - points[:, 0],
                           np.cross(points[:, b] - points[:, 0], points[:, c] - points[:, 0])) / 6.0
    return total


def labels_at(image: sitk.Image, array: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The label of the voxel nearest each point (-1 outside the image) and the continuous indices."""
    index = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(map(float, p))) for p in points])
    voxel = np.rint(index).astype(int)
    inside = np.all((voxel >= 0) & (voxel < np.array(image.GetSize())), axis=1)
    values = np.full(len(points), -1)
    values[inside] = array[voxel[inside, 2], voxel[inside, 1], voxel[inside, 0]]
    return values, index


def check_files(case: str, folder: Path, image: sitk.Image, labels: np.ndarray) -> dict:
    scar_grid, mesh_points = read_grid(folder / "scar_pred.vtk")
    core_grid, _ = read_grid(folder / "core_pred.vtk")
    labels_grid, _ = read_grid(folder / "labels_pred.vtk")
    pts = np.array([[float(v) for v in row] for row in read_counted(folder / "heart.pts")])
    pts_mm = np.array([[float(v) for v in row] for row in read_counted(folder / "heart_mm.pts")])
    codes, elements, tags = read_elem(folder / "heart.elem")
    ids, cells = vtk.vtkIdList(), []
    for c in range(scar_grid.GetNumberOfCells()):
        scar_grid.GetCellPoints(c, ids)
        cells.append(sorted(ids.GetId(i) for i in range(ids.GetNumberOfIds())))
    vtk_order = np.empty_like(elements)
    vtk_order[:, HEX_TO_CARP] = elements
    volumes = hexahedron_volumes(pts_mm[vtk_order])
    scar, core = point_field(scar_grid, "scar_probability"), point_field(core_grid, "scar_probability")
    rule = np.where(core[elements].mean(1) >= 0.5, 3, np.where(scar[elements].mean(1) >= 0.5, 2, 1))
    on_image, index = labels_at(image, labels, pts_mm[elements].mean(axis=1))
    near_slice = np.abs(index[:, 2] - np.rint(index[:, 2])) < 0.25
    voxel_ml = float(np.prod(image.GetSpacing())) / 1000.0
    _, _, label_tags = read_elem(folder / "labels_heart.elem")
    on_myocardium = near_slice & np.isin(on_image, [2, 3, 4])
    truth = np.isin(on_image, [3, 4])

    def dice(called: np.ndarray) -> float:
        a, b = called[on_myocardium], truth[on_myocardium]
        return round(float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1)), 3)

    ml = lambda mask: round(float(volumes[mask].sum()) / 1000.0, 2)  # noqa: E731
    return {
        "nodes": len(pts), "elements": len(elements), "codes": sorted(set(codes)),
        "pts_um_error_um": float(np.abs(pts - mesh_points * 1000.0).max()),
        "elements_are_the_cells": all(sorted(e) == c for e, c in zip(elements.tolist(), cells)),
        "hexahedron_volume_mm3": [round(float(volumes.min()), 4), round(float(volumes.max()), 4)],
        "tags_off_rule": int((rule != tags).sum()),
        "vtu_tags_equal": bool((vtk_to_numpy(read_grid(folder / "heart.vtu")[0].GetCellData().GetArray("tissue_tag"))
                                == tags).all()),
        "element_centres_on_myocardium": round(float(np.isin(on_image, [2, 3, 4]).mean()), 4),
        "element_centres_outside_image": int((on_image < 0).sum()),
        "element_centres_on_myocardium_near_slices": round(float(np.isin(on_image[near_slice], [2, 3, 4]).mean()), 4),
        "rule_tags_on_expert_scar": {int(t): round(float(truth[tags == t].mean()), 3) for t in (1, 2, 3)},
        "rule_tags_of_no_reflow": ({int(t): round(float((tags[on_image == 4] == t).mean()), 3) for t in (1, 2, 3)}
                                   if (on_image == 4).any() else None),
        "expert_ml": {"myocardium": round(float(np.isin(labels, [2, 3, 4]).sum() * voxel_ml), 2),
                      "scar_3_4": round(float(np.isin(labels, [3, 4]).sum() * voxel_ml), 2),
                      "no_reflow_4": round(float((labels == 4).sum() * voxel_ml), 2)},
        "mesh_ml": {"myocardium": ml(tags > 0), "rule_border_zone": ml(tags == 2), "rule_core": ml(tags == 3),
                    "rule_scar": ml(tags >= 2), "labels_model_scar": ml(label_tags >= 2)},
        "near_slice_dice": {"labels_model": dice(label_tags >= 2), "rule_model": dice(tags >= 2)},
        "sidecar_ml": {k: round(v["volume_ml"], 2)
                       for k, v in json.loads((folder / "heart.json").read_text(encoding="utf-8"))["classes"].items()},
        "labels_model_field": bool(np.all((point_field(labels_grid, "scar_probability") >= 0)
                                          & (point_field(labels_grid, "scar_probability") <= 1))),
    }


def segments_by_readme(points: np.ndarray, origin: np.ndarray, axis: np.ndarray, anterior: np.ndarray, tip: float,
                       base: float) -> np.ndarray:
    """AHA segment of each point from the README's definitions: thirds between the cavity tip and the
    base, 17 beyond the tip; one insertion point: septum 120 degrees, numbers running clockwise seen
    from the base; 60-degree sectors 2, 3, 4, 5, 6, 1 (and +6) from the insertion; apical quadrants
    14 (centred on the septum's middle), 15, 16, 13."""
    heights = (points - origin) @ axis
    radial = (points - origin) - np.outer(heights, axis)
    reference = (anterior - origin) - ((anterior - origin) @ axis) * axis
    reference /= np.linalg.norm(reference)
    psi = np.mod(-np.degrees(np.arctan2(radial @ np.cross(axis, reference), radial @ reference)), 360.0)
    third = (base - tip) / 3.0
    ring = np.array([2, 3, 4, 5, 6, 1])[np.minimum((psi // 60).astype(int), 5)]
    apical = np.array([14, 15, 16, 13])[(np.mod(psi - 60.0 + 45.0, 360.0) // 90).astype(int)]
    return np.select([heights >= base - third, heights >= base - 2 * third, heights >= tip], [ring, ring + 6, apical],
                     17)


def myocardium_voxels(image: sitk.Image, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The experts' myocardial voxels (labels 2-4) as LPS points, and which of them are scar (3, 4)."""
    k, j, i = np.nonzero(np.isin(labels, [2, 3, 4]))
    voxels = np.array([image.TransformContinuousIndexToPhysicalPoint((float(a), float(b), float(c)))
                       for a, b, c in zip(i, j, k)])
    return voxels, np.isin(labels[k, j, i], [3, 4])


def segment_shares(folder: Path, name: str, points: np.ndarray, voxels: np.ndarray,
                   expert_scar: np.ndarray) -> tuple[dict, np.ndarray, np.ndarray, dict]:
    """For ``aha_NAME``: its table's rows by segment, the README's segment of each mesh node and of
    each expert voxel (from the table's own axis, levels and the stand-in insertion), and per segment
    the voxels hold and the table reports: ``{segment: (experts' scar %, table's scar %)}``."""
    summary = json.loads((folder / f"aha_{name}" / "aha.json").read_text(encoding="utf-8"))
    origin = np.array(summary["long_axis"]["origin_lps"])
    axis = np.array(summary["long_axis"]["apex_to_base_lps"])
    tip, base = summary["levels"]["cavity_tip_mm"], summary["levels"]["base_mm"]
    anterior = stand_in_insertion(points)
    mine = segments_by_readme(points, origin, axis, anterior, tip, base)
    segment_of_voxel = segments_by_readme(voxels, origin, axis, anterior, tip, base)
    with open(folder / f"aha_{name}" / "aha.csv", encoding="utf-8") as table:
        rows = {int(r["segment"]): r for r in csv.DictReader(table)}
    pairs = {s: (100.0 * float(expert_scar[segment_of_voxel == s].mean()), float(rows[s]["scar_pct"]))
             for s in range(1, 18) if (segment_of_voxel == s).any() and rows[s]["scar_pct"] not in ("", None)}
    return rows, mine, segment_of_voxel, pairs


def check_aha(folder: Path, image: sitk.Image, labels: np.ndarray) -> dict:
    voxels, expert_scar = myocardium_voxels(image, labels)
    _, points = read_grid(folder / "heart.vtk")
    result = {"expert_scar_pct": round(100.0 * float(expert_scar.mean()), 2)}
    for name in ("labels", "scar", "tagged"):
        rows, mine, _, pairs = segment_shares(folder, name, points, voxels, expert_scar)
        mesh_file = next((folder / f"aha_{name}").glob("aha_mesh.*"))
        tool = point_field(read_grid(mesh_file)[0], "aha_segment")
        expert, table = np.array(list(pairs.values())).T
        result[name] = {"node_segments_as_readme": round(float((mine == tool).mean()), 4),
                        "segments_compared": len(pairs),
                        "mean_abs_diff_points": round(float(np.abs(expert - table).mean()), 2),
                        "max_abs_diff_points": round(float(np.abs(expert - table).max()), 2),
                        "pearson_r": round(float(np.corrcoef(expert, table)[0, 1]), 3),
                        "scar_pct_total": round(100.0 * sum(float(r["scar_volume_ml"]) for r in rows.values() if
                                                            r["scar_volume_ml"]) /
                                                sum(float(r["myocardial_volume_ml"]) for r in rows.values() if
                                                    r["myocardial_volume_ml"]), 2)}
    return result


def check_slicer(folder: Path) -> dict | None:
    """The Slicer Logic's tag and export of the two results against the command line's files."""
    try:
        sys.path.insert(0, str(ROOT / "CardioScar"))
        import CardioScarLogic as csl
        from CardioScarLogic.tissue import export_model_node, tag_model_node
    except ImportError:
        return None
    out = folder / "slicer"
    out.mkdir(exist_ok=True)
    context = csl.create_scene()
    scar = csl.load_model(context.scene, folder / "scar_pred.vtk", name="scar")
    core = csl.load_model(context.scene, folder / "core_pred.vtk", name="core")
    with np.load(folder / "scar.npz", allow_pickle=False) as data:
        scar.SetAttribute("CardioScar.ScarRule", str(data["scar_rule"]))  # as a Logic run records it
    tags = tag_model_node(scar, core_model=core)
    export_model_node(scar, tags, out / "heart")
    export_model_node(scar, tags, out / "heart", fmt="vtu")
    same = {suffix: (out / f"heart{suffix}").read_text(encoding="utf-8") == (folder / f"heart{suffix}").read_text(
        encoding="utf-8") for suffix in (".pts", ".elem", ".json")}
    slicer_vtu, cli_vtu = read_grid(out / "heart.vtu")[0], read_grid(folder / "heart.vtu")[0]
    same[".vtu tissue_tag"] = bool((vtk_to_numpy(slicer_vtu.GetCellData().GetArray("tissue_tag")) ==
                                    vtk_to_numpy(cli_vtu.GetCellData().GetArray("tissue_tag"))).all())
    return same


def main(out_dir: Path, cases: list[str]) -> None:
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    for case in cases:
        folder = out_dir / case
        run_path(case, folder)
        image = sitk.ReadImage(str(EMIDEC / f"Case_{case}" / "Contours" / f"Case_{case}.nii.gz"))
        labels = sitk.GetArrayFromImage(image)
        record = {"case": case, **check_files(case, folder, image, labels), "aha": check_aha(folder, image, labels),
                  "slicer_same_as_cli": check_slicer(folder)}
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "--sweep-table":
        print(sweep_table([json.loads(line) for line in Path(sys.argv[2]).read_text(encoding="utf-8").splitlines()]))
    elif sys.argv[1] in ("--sweep", "--sweep-records"):
        sitk.ProcessObject.SetGlobalWarningDisplay(False)
        table = clinical_rows()
        names = sys.argv[3:]
        if names[0] == "--max-epochs":
            TRAIN_OPTIONS += ["--max-epochs", names[1], "--no-progress"]
            names = names[2:]
        for name in names:
            if sys.argv[1] == "--sweep":
                sweep_path(name, Path(sys.argv[2]) / name)
            print(json.dumps(sweep_record(name, Path(sys.argv[2]) / name, table)), flush=True)
    else:
        main(Path(sys.argv[1]), sys.argv[2:] or ["P051", "P022", "P047"])
