"""Round 3 of silent wrong answers: inputs that gave a wrong field, score, table or simulator file
with exit 0 on main. Each is now refused in one ``error:`` line naming the option and what to
give (writing nothing), or, where the input can be legitimate, named in a warning.

Real parts throughout: a small LV phantom (its tetrahedral mesh with the true scar, its LGE
stack), a model trained on it for a few epochs by the real command line, copies of the mesh
edited the way a user's files go wrong, the real cohort manifest reader, and the Slicer Logic's
``ReconstructionOptions`` (slicer-core).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import vtk
from vtk.util.numpy_support import numpy_to_vtk

from cardioscar.cli import main
from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from conftest import assert_refused_in_one_line, trained_small_phantom

REPO = Path(__file__).resolve().parents[1]


def _copy(mesh: Mesh, path: Path, dataset: vtk.vtkDataSet | None = None, points: np.ndarray | None = None,
          **fields: np.ndarray) -> Path:
    """``mesh`` (or ``dataset``) written to ``path`` with other coordinates and point fields."""
    copy = vtk.vtkUnstructuredGrid()
    copy.DeepCopy(dataset if dataset is not None else mesh.dataset)
    if points is not None:
        copy.GetPoints().SetData(numpy_to_vtk(np.ascontiguousarray(points), deep=True))
    write_mesh(Mesh(dataset=copy, space=mesh.space, path=None), path, fields)
    return path


def _with_boundary_faces_and_edges(mesh: Mesh) -> vtk.vtkUnstructuredGrid:
    """The tetrahedra plus their boundary triangles and one edge line as cells, as gmsh writes a mesh."""
    surface = vtk.vtkDataSetSurfaceFilter()
    surface.SetInputData(mesh.dataset)
    surface.PassThroughPointIdsOn()
    surface.Update()
    faces = surface.GetOutput()
    original = faces.GetPointData().GetArray(surface.GetOriginalPointIdsName())
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(mesh.dataset)
    ids = vtk.vtkIdList()
    for c in range(faces.GetNumberOfCells()):
        faces.GetCellPoints(c, ids)
        grid.InsertNextCell(vtk.VTK_TRIANGLE, 3, [int(original.GetValue(ids.GetId(i))) for i in range(3)])
    grid.InsertNextCell(vtk.VTK_LINE, 2, [0, 1])
    return grid


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("round3")
    phantom, paths = trained_small_phantom(out, max_epochs=3)
    assert main(["apply", "--model", str(out / "model.pth"), "--mesh", str(paths["mesh"]), "--output",
                 str(out / "prediction.vtk"), "--seed", "1"]) == 0
    mesh = read_mesh(paths["mesh"])
    truth = phantom.truth.astype(np.float64)
    geometry = phantom.geometry  # the anterior RV insertion, on the epicardium 30 degrees round (test_aha's)
    rv_point = geometry.to_lps(geometry.wall_to_local(np.array([0.5]), np.array([1.2]), np.array([np.radians(30.0)])))[0]
    return {"out": out, "rv_point": ",".join(f"{v:.3f}" for v in rv_point), "mesh": paths["mesh"], "model": out / "model.pth", "prediction": out / "prediction.vtk",
            "truth": truth,
            "with_faces": _copy(mesh, out / "with_faces.vtk", _with_boundary_faces_and_edges(mesh),
                                scar_probability=truth),
            "metres": _copy(mesh, out / "metres.vtk", points=mesh.points_lps() / 1000.0, scar_probability=truth),
            **_scar_and_core(mesh, truth, out)}


def _scar_and_core(mesh: Mesh, truth: np.ndarray, out: Path) -> dict:
    """A scar model's and a core model's fields whose border zone is thin: 6 % of the scar nodes
    (the outer ring of the scar by distance from its centre)."""
    points = mesh.points_lps()
    scar_nodes = np.flatnonzero(truth >= 0.5)
    distance = np.linalg.norm(points[scar_nodes] - points[scar_nodes].mean(axis=0), axis=1)
    border = scar_nodes[distance >= np.quantile(distance, 0.94)]
    scar = np.where(truth >= 0.5, 0.9, 0.1)
    core = scar.copy()
    core[border] = 0.2
    return {"border_nodes": len(border), "scar_nodes": len(scar_nodes),
            "right_order": _copy(mesh, out / "right_order.vtk", scar_probability=scar, core_probability=core),
            "swapped": _copy(mesh, out / "swapped.vtk", scar_probability=core, core_probability=scar)}


CASES = {
    # 1. thresholds at the ends of the range: every node scar (0) or none (1), a trivial map or score
    "apply --threshold 0": (
        lambda f: ["apply", "--model", f["model"], "--mesh", f["mesh"], "--threshold", "0", "--output",
                   f["out"] / "out.vtk"], "--threshold) 0 is outside the valid range 0 < threshold < 1"),
    "apply --threshold 1": (
        lambda f: ["apply", "--model", f["model"], "--mesh", f["mesh"], "--threshold", "1", "--output",
                   f["out"] / "out.vtk"], "--threshold) 1 is outside the valid range 0 < threshold < 1"),
    "apply --threshold nan": (
        lambda f: ["apply", "--model", f["model"], "--mesh", f["mesh"], "--threshold", "nan", "--output",
                   f["out"] / "out.vtk"], "is outside the valid range 0 < threshold < 1"),
    "evaluate --threshold 1": (
        lambda f: ["evaluate", "--prediction", f["prediction"], "--truth", f["mesh"], "--threshold", "1", "--json",
                   f["out"] / "out.json"], "--threshold) 1 is outside the valid range"),
    "evaluate --threshold 0": (
        lambda f: ["evaluate", "--prediction", f["prediction"], "--truth", f["mesh"], "--threshold", "0", "--json",
                   f["out"] / "out.json"], "--threshold) 0 is outside the valid range"),
    # 2. a gmsh volume mesh with its boundary triangles and edges: the .vtu carried them as tissue
    "export --format vtu of tetrahedra plus boundary triangles and lines": (
        lambda f: ["export", "--mesh", f["with_faces"], "--format", "vtu", "--output", f["out"] / "out.vtu"],
        "volume elements with"),
    # a mesh in metres: the .vtu's class volumes were 10^9 too small, silently (carp refused it)
    "export --format vtu of a mesh in metres": (
        lambda f: ["export", "--mesh", f["metres"], "--format", "vtu", "--output", f["out"] / "out.vtu"],
        "scale a mesh in metres"),
    # 3. swapped scar and core fields with a thin border zone: the border zone vanished silently
    "export swapped scar/core fields with a thin border zone": (
        lambda f: ["export", "--mesh", f["swapped"], "--core-field", "core_probability", "--format", "vtu",
                   "--output", f["out"] / "out.vtu"], "look swapped"),
    # 6. evaluate on a field that is not a probability, or the prediction against itself
    "evaluate --probability-field scar_uncertainty": (
        lambda f: ["evaluate", "--prediction", f["prediction"], "--truth", f["mesh"], "--probability-field",
                   "scar_uncertainty", "--json", f["out"] / "out.json"],
        "--probability-field 'scar_uncertainty' is the MC-dropout spread"),
    "evaluate --probability-field scar_error_risk": (
        lambda f: ["evaluate", "--prediction", f["prediction"], "--truth", f["mesh"], "--probability-field",
                   "scar_error_risk", "--json", f["out"] / "out.json"], "not a scar probability"),
    "evaluate the prediction against its own field": (
        lambda f: ["evaluate", "--prediction", f["prediction"], "--truth", f["prediction"], "--truth-field",
                   "scar_probability", "--json", f["out"] / "out.json"], "perfect by construction"),
    "evaluate --uncertainty-field scar_probability": (
        lambda f: ["evaluate", "--prediction", f["prediction"], "--truth", f["mesh"], "--uncertainty-field",
                   "scar_probability", "--json", f["out"] / "out.json"], "is the probability field itself"),
    # the same on aha: a misspelt uncertainty field gave a table without uncertainty, the scar
    # field as its own uncertainty a table of probabilities under "uncertainty"
    "aha --uncertainty-field misspelt": (
        lambda f: ["aha", "--mesh", f["prediction"], "--rv-point", f["rv_point"], "--uncertainty-field",
                   "scar_uncertainy", "--output-dir", f["out"] / "out_aha"], "no point field 'scar_uncertainy'"),
    "aha --uncertainty-field the scar field": (
        lambda f: ["aha", "--mesh", f["prediction"], "--rv-point", f["rv_point"], "--uncertainty-field",
                   "scar_probability", "--output-dir", f["out"] / "out_aha"], "is the scar field itself"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_command_line_refuses_in_one_line_and_writes_nothing(files, case, capsys):
    arguments, fragment = CASES[case]
    assert_refused_in_one_line(arguments(files), fragment, capsys, files["out"])


def test_the_good_inputs_still_pass(files, capsys, tmp_path):
    """The same commands on valid values: a threshold inside (0, 1), a volume-only mesh, fields in
    the right order with the same thin border zone, the truth's own field."""
    assert main(["apply", "--model", str(files["model"]), "--mesh", str(files["mesh"]), "--threshold", "0.5",
                 "--output", str(tmp_path / "a.vtk")]) == 0
    assert main(["evaluate", "--prediction", str(files["prediction"]), "--truth", str(files["mesh"]),
                 "--threshold", "0.3"]) == 0
    assert main(["export", "--mesh", str(files["right_order"]), "--core-field", "core_probability", "--format", "vtu",
                 "--output", str(tmp_path / "tags.vtu")]) == 0
    tags = read_mesh(tmp_path / "tags.vtu").point_array("tissue_tag")
    assert int((tags == 2).sum()) == files["border_nodes"]  # the thin border zone is kept, not refused
    assert main(["aha", "--mesh", str(files["prediction"]), "--rv-point", files["rv_point"], "--output-dir",
                 str(tmp_path / "aha")]) == 0
    assert main(["export", "--mesh", str(files["with_faces"]), "--format", "opencarp", "--output",
                 str(tmp_path / "carp")]) != 0  # both formats refuse a mixed mesh alike


def test_the_old_swap_check_missed_the_thin_border_zone(files):
    """The fixture's swapped pair passes the first check (core outside the scar) by design: the
    border zone is under its 10 %; only the count check catches it."""
    from cardioscar.simulation.tags import MAX_CORE_OUTSIDE_SCAR

    assert files["border_nodes"] < MAX_CORE_OUTSIDE_SCAR * files["scar_nodes"]


def test_the_python_api_and_the_slicer_logic_refuse_the_end_thresholds(files):
    """The same range on every face that takes a threshold (``ReconstructionOptions``: slicer-core)."""
    sys.path.insert(0, str(REPO / "CardioScar"))
    from CardioScarLogic.options import ReconstructionOptions

    from cardioscar.evaluate.metrics import evaluate_fields
    from cardioscar.logic import apply_scar_model

    for bad in (0.0, 1.0, float("nan"), -0.2):
        with pytest.raises(CardioScarError, match="outside the valid range 0 < threshold < 1"):
            apply_scar_model(files["model"], files["mesh"], 2, threshold=bad)
        with pytest.raises(CardioScarError, match="outside the valid range 0 < threshold < 1"):
            evaluate_fields(np.array([0.2, 0.8]), np.array([0.0, 1.0]), threshold=bad)
        with pytest.raises(CardioScarError, match="threshold .* outside the valid range 0 < threshold < 1"):
            ReconstructionOptions(threshold=bad)
    assert ReconstructionOptions(threshold=0.4).threshold == 0.4


def test_a_cohort_patient_with_a_vtu_export_and_surface_cells_fails_before_training(files, monkeypatch):
    """As the opencarp export (wave 2), now for ``export: vtu``: refused before any training."""
    import cardioscar.logic
    from cardioscar.cohort.manifest import read_manifest
    from cardioscar.cohort.tasks import run_patient

    trained = []
    monkeypatch.setattr(cardioscar.logic, "train_scar_model", lambda *a, **k: trained.append(1))
    manifest = files["out"] / "vtu_faces.csv"
    image = files["out"] / "phantom_lge.nii.gz"
    manifest.write_text("id,mesh,image,max_epochs,export\n"
                        f"p1,{files['with_faces']},{image},2,vtu\n", encoding="utf-8")
    record = run_patient(read_manifest(manifest)[0], str(files["out"] / "cohort_vtu"), "digest")
    assert record["status"] == "failed" and "volume elements with" in record["error"], record
    assert trained == []


@pytest.mark.parametrize("value, ok", [("4", True), ("0", False), ("2.5", False)])
def test_the_cohort_manifest_takes_the_training_mc_samples(tmp_path, value, ok):
    """``training_mc_samples`` (train --mc-samples) reaches the training configuration; the
    preset's when empty; a value the CLI refuses is refused with the column named."""
    from cardioscar.cohort.manifest import read_manifest
    from cardioscar.cohort.tasks import training_config

    for stand_in in ("heart.vtk", "lge.nii.gz"):
        (tmp_path / stand_in).write_text("stand-in")  # read_manifest checks that they exist; nothing reads them
    (tmp_path / "m.csv").write_text(f"id,mesh,image,preset,training_mc_samples\np1,heart.vtk,lge.nii.gz,fast,{value}\n"
                                    "p2,heart.vtk,lge.nii.gz,fast,\n")
    if not ok:
        with pytest.raises(CardioScarError, match="training_mc_samples"):
            read_manifest(tmp_path / "m.csv")
        return
    first, second = read_manifest(tmp_path / "m.csv")
    from cardioscar.fit.training import TrainingConfig

    assert training_config(first).mc_samples == 4
    assert training_config(second).mc_samples == TrainingConfig.fast().mc_samples
    # a row without the column hashes as before it existed (its results are not redone); one with it not
    from cardioscar.cohort.manifest import PatientSpec
    from cardioscar.cohort.tasks import input_hash

    before = PatientSpec(second.id, second.row, second.mesh, second.images,
                         {k: v for k, v in second.options.items() if k != "training_mc_samples"})
    assert input_hash(second) == input_hash(before)
    assert input_hash(first) != input_hash(PatientSpec(first.id, first.row, first.mesh, first.images,
                                                       {**first.options, "training_mc_samples": None}))


def _emidec_layers(shared_data: Path, case: str, shift_px: int):
    """EMIDEC ``case``'s expert scar (labels 3, 4) per myocardial slice, and its myocardium mask
    (labels 2-4) shifted ``shift_px`` pixels along the rows: a mask of another series or frame."""
    import SimpleITK as sitk

    from cardioscar.prepare.slices import SliceLayer

    labels = sitk.GetArrayFromImage(sitk.ReadImage(str(shared_data / "emidec" / f"Case_{case}" / "Contours"
                                                       / f"Case_{case}.nii.gz")))
    layers, masks = [], []
    for k, plane in enumerate(labels):
        if np.isin(plane, [2, 3, 4]).any():
            layers.append(SliceLayer(values=np.isin(plane, [3, 4]).astype(float), origin=np.zeros(3),
                                     axis_i=(1, 0, 0), axis_j=(0, 1, 0), spacing=(1.5, 1.5), half_thickness=4.0,
                                     label=f"k{k}"))
            masks.append(np.roll(np.isin(plane, [2, 3, 4]), shift_px, axis=1))
    return layers, masks


def test_a_myocardium_margin_no_longer_hides_a_shifted_mask(shared_data):
    """EMIDEC P036, mask 6 pixels off: refused at margin 0, but on main a margin of 2 widened the
    check's reach and it passed, with half the scar pixels given a healthy neighbour's value or
    none. The check now counts the scar pixels the restriction loses; the right mask passes."""
    from cardioscar.prepare.myocardium import restrict_to_myocardium

    layers, shifted = _emidec_layers(shared_data, "P036", 6)
    for margin in (0, 2):
        with pytest.raises(CardioScarError, match="keep no scar value: the myocardium mask does not match"):
            restrict_to_myocardium(layers, shifted, "shifted mask", margin)
    _, right = _emidec_layers(shared_data, "P036", 0)
    restricted, _ = restrict_to_myocardium(layers, right, "right mask", 2)
    assert all((r.values[layer.values >= 0.5] >= 0.5).all() for r, layer in zip(restricted, layers))


def test_a_cohort_truth_column_that_names_no_field_or_a_percent_fails_before_training(files, monkeypatch, tmp_path):
    """On main a misspelt ``truth_field`` gave ``"dice": null`` (as a mesh without a truth) and a
    percent truth was cut at 0.5 (every partly scarred node scar): both after a full training."""
    import cardioscar.logic
    from cardioscar.cohort.manifest import read_manifest
    from cardioscar.cohort.tasks import run_patient

    trained = []
    monkeypatch.setattr(cardioscar.logic, "train_scar_model", lambda *a, **k: trained.append(1))
    percent = _copy(read_mesh(files["mesh"]), tmp_path / "percent.vtk", scar_percent=100.0 * files["truth"])
    image = files["out"] / "phantom_lge.nii.gz"
    manifest = tmp_path / "truth.csv"
    manifest.write_text("id,mesh,image,max_epochs,truth_field\n"
                        f"typo,{files['mesh']},{image},2,scar_truht\n"
                        f"percent,{percent},{image},2,scar_percent\n", encoding="utf-8")
    typo, percent_row = read_manifest(manifest)
    record = run_patient(typo, str(tmp_path / "cohort"), "digest")
    assert record["status"] == "failed" and "column 'truth_field' names 'scar_truht'" in record["error"], record
    record = run_patient(percent_row, str(tmp_path / "cohort"), "digest")
    assert record["status"] == "failed" and "field 'scar_percent' ranges 0..99.8" in record["error"], record
    assert trained == []


def test_fine_tuning_a_prior_model_on_data_without_a_prior_is_refused(files, tmp_path, capsys):
    """A model trained with ``--shape-prior`` learnt a residual on the prior; on main, fine-tuned on
    a ``.npz`` without one (an older prepare) it went on with its residual alone as the field,
    behind a warning. Data with the prior still fine-tunes."""
    assert main(["train", "--training-data", str(files["out"] / "data.npz"), "--output", str(tmp_path / "prior.pth"),
                 "--preset", "fast", "--max-epochs", "2", "--seed", "1", "--shape-prior", "on"]) == 0
    data = dict(np.load(files["out"] / "data.npz", allow_pickle=False))
    assert any(key.startswith("shape_prior_") for key in data)
    np.savez(tmp_path / "old.npz", **{k: v for k, v in data.items() if not k.startswith("shape_prior_")})
    capsys.readouterr()
    assert main(["fine-tune", "--model", str(tmp_path / "prior.pth"), "--training-data", str(tmp_path / "old.npz"),
                 "--output", str(tmp_path / "out.pth"), "--preset", "fast", "--max-epochs", "1"]) != 0
    assert "was trained with a shape prior, but the training data" in capsys.readouterr().err
    assert not (tmp_path / "out.pth").exists()
    assert main(["fine-tune", "--model", str(tmp_path / "prior.pth"), "--training-data",
                 str(files["out"] / "data.npz"), "--output", str(tmp_path / "good.pth"), "--preset", "fast",
                 "--max-epochs", "1"]) == 0


def test_the_error_risk_is_for_the_call_the_threshold_makes(files):
    """On main ``scar_error_risk`` was the risk of the call at 0.5 even beside a ``scar_binary`` cut
    elsewhere (e.g. 0.3): the nodes on that map's edge read as safe. Now it peaks where the written
    call is cut (here at the median probability of the briefly trained model, far from 0.5)."""
    from cardioscar.io.meshio import read_mesh
    from cardioscar.logic import apply_scar_model, checkpoint_constraint_points, load_trained_model
    from cardioscar.predict.error_risk import error_risk

    geometry = (read_mesh(files["mesh"]).points_lps(), checkpoint_constraint_points(load_trained_model(files["model"])))
    plain = apply_scar_model(files["model"], files["mesh"], 4, seed=2)
    p, std = plain.mean_predictions, plain.std_predictions
    np.testing.assert_allclose(plain.error_risk, error_risk(p, std, 0.5, *geometry), rtol=1e-6)
    cut = round(float(np.median(p)), 3)
    assert abs(cut - 0.5) > 0.15
    cut_result = apply_scar_model(files["model"], files["mesh"], 4, threshold=cut, seed=2)
    np.testing.assert_array_equal(cut_result.mean_predictions, p)
    np.testing.assert_allclose(cut_result.error_risk, error_risk(p, std, cut, *geometry), rtol=1e-6)
    on_edge = np.argmin(np.abs(p - cut))
    assert cut_result.error_risk[on_edge] > 0.95 > plain.error_risk[on_edge] + 0.3
