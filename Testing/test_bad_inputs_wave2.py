"""Bad inputs to the wave-2 faces that used to give a wrong result with exit 0 (or a traceback):
raw-LGE scar rules, masks and label maps, ``export``, ``cohort``, ``mesh-from-labels`` and
``attrivae``. Each must now be refused by the real command line (``cardioscar.cli.main``, in this
process for speed) with one ``error:`` line naming the option or file and what to give, and
write nothing.

Real files throughout: a small LV phantom with its raw LGE and label map, a prediction mesh
holding the phantom's true scar as ``scar_probability`` (the field ``apply`` writes; no training
needed to test the export's checks), a real EMIDEC case and the session's tiny Attri-VAE model
(conftest). The checks live in the library, so the Slicer Logic and the batch script meet them too.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import torch
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from cardioscar.cli import main
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, raw_lge_acquisition, write_phantom
from conftest import error_lines

EMIDEC_CASE = "Case_P003"


def _image_like(values: np.ndarray, like: sitk.Image, path: Path) -> Path:
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(like)
    sitk.WriteImage(image, str(path))
    return path


def _mesh_with(mesh: Mesh, path: Path, points_lps: np.ndarray | None = None, **fields: np.ndarray) -> Path:
    dataset = vtk.vtkUnstructuredGrid()
    dataset.DeepCopy(mesh.dataset)
    if points_lps is not None:
        dataset.GetPoints().SetData(numpy_to_vtk(np.ascontiguousarray(points_lps), deep=True))
    write_mesh(Mesh(dataset=dataset, space="LPS", path=None), path, fields)
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    """The phantom's mesh, raw LGE and labels (1 blood pool, 2 myocardium), and derived files."""
    out = tmp_path_factory.mktemp("wave2")
    phantom = make_phantom(PhantomConfig(target_nodes=1500, seed=3))
    paths = write_phantom(phantom, out)
    lge, labels = raw_lge_acquisition(phantom, seed=0)
    sitk.WriteImage(lge, str(out / "lge.nii.gz"))
    sitk.WriteImage(labels, str(out / "labels.nii.gz"))
    mesh = read_mesh(paths["mesh"])
    truth = phantom.truth.astype(np.float64)
    # the label map resampled with linear interpolation half a pixel over: 1.0 and 0.5 at its edges
    shift = sitk.TranslationTransform(3, (0.75, 0.75, 0.0))
    shifted = sitk.Resample(sitk.Cast(labels, sitk.sitkFloat32), labels, shift, sitk.sitkLinear, 0.0)
    sitk.WriteImage(shifted, str(out / "labels_linear.nii.gz"))
    for millimetres in (4.5, 12.0):  # the label map moved in-plane along its rows: another breath-hold or series
        moved = sitk.Image(labels)
        moved.SetOrigin(tuple(np.add(labels.GetOrigin(), millimetres * np.asarray(labels.GetDirection())[[0, 3, 6]])))
        sitk.WriteImage(moved, str(out / f"labels_moved_{millimetres:g}mm.nii.gz"))
    # a view whose normal lies in the short-axis plane, as a long-axis view's does: the stack's own
    # axes turned (i, j, k) -> (j, k, i), a rotation
    stack = sitk.ReadImage(str(paths["image"]))
    turned = np.asarray(stack.GetDirection()).reshape(3, 3)[:, [1, 2, 0]]
    stack.SetDirection(tuple(turned.ravel()))
    sitk.WriteImage(stack, str(out / "long_axis_view.nii.gz"))
    points = mesh.points_lps()
    geometry = phantom.geometry  # the anterior RV insertion, on the epicardium 30 degrees round (test_aha's)
    rv_point = geometry.to_lps(geometry.wall_to_local(np.array([0.5]), np.array([1.2]),
                                                      np.array([np.radians(30.0)])))[0]
    return {
        "rv_point": ",".join(f"{v:.3f}" for v in rv_point),
        "out": out, "mesh": paths["mesh"], "scar_map": paths["image"], "lge": out / "lge.nii.gz",
        "labels": out / "labels.nii.gz",
        "labels_linear": out / "labels_linear.nii.gz", "half": phantom.slice_half_thickness_mm,
        "prediction": _mesh_with(mesh, out / "prediction.vtk", scar_probability=truth,
                                 raw=truth * 1000.0, holes=np.where(np.arange(len(truth)) % 5 == 0, np.nan, truth),
                                 scar_uncertainty=0.2 * truth * (1.0 - truth), scar_error_risk=1.0 - truth,
                                 # a core inside the scar: every other scar node (the check is node by node)
                                 core_probability=truth * (np.arange(len(truth)) % 2)),
        "other_nodes": _mesh_with(mesh, out / "other_nodes.vtk", points[::-1].copy(), scar_probability=truth),
        "metres": _mesh_with(mesh, out / "metres.vtk", points / 1000.0, scar_probability=truth),
        "centimetres": _mesh_with(mesh, out / "centimetres.vtk", points / 10.0),
        # the same mesh read in the other frame: a RAS file without its SPACE marker
        "mirrored": _mesh_with(mesh, out / "mirrored.vtk", points * np.array([-1.0, -1.0, 1.0])),
        "with_faces": _with_boundary_faces(mesh, out / "with_faces.vtk", scar_probability=truth),
    }


def _with_boundary_faces(mesh: Mesh, path: Path, **fields: np.ndarray) -> Path:
    """The tetrahedral mesh plus its boundary triangles as cells, as a mesher such as gmsh writes it."""
    surface = vtk.vtkDataSetSurfaceFilter()
    surface.SetInputData(mesh.dataset)
    surface.PassThroughPointIdsOn()
    surface.Update()
    faces = surface.GetOutput()
    original = vtk_to_numpy(faces.GetPointData().GetArray("vtkOriginalPointIds"))
    dataset = vtk.vtkUnstructuredGrid()
    dataset.DeepCopy(mesh.dataset)
    ids = vtk.vtkIdList()
    for c in range(faces.GetNumberOfCells()):
        faces.GetCellPoints(c, ids)
        dataset.InsertNextCell(vtk.VTK_TRIANGLE, 3, [int(original[ids.GetId(k)]) for k in range(3)])
    write_mesh(Mesh(dataset=dataset, space="LPS", path=None), path, fields)
    return path


def _model(files: dict) -> Path:
    """A model trained briefly on the phantom's scar map (its values do not matter here, only its box)."""
    path = files["out"] / "model.pth"
    if not path.exists():
        data = files["out"] / "model.npz"
        assert main([str(a) for a in ["prepare", "--mesh", files["mesh"], "--image", files["scar_map"],
                                      "--slice-thickness-padding", files["half"], "--output", data]]) == 0
        assert main([str(a) for a in ["train", "--training-data", data, "--output", path, "--preset", "fast",
                                      "--max-epochs", "5", "--cpu"]]) == 0
    return path


def _rule(files: dict, rule: str = "psi", *extra: str, image: str = "lge", output: str = "out.npz") -> list:
    return ["prepare", "--mesh", files["mesh"], "--image", files[image], "--slice-thickness-padding",
            str(files["half"]), "--scar-rule", rule, "--myocardium-mask", files["labels"], "--myocardium-labels", "2",
            "--blood-pool-mask", files["labels"], "--blood-pool-labels", "1", *extra, "--output",
            files["out"] / output]


def _core_training_data(files: dict) -> Path:
    path = files["out"] / "core.npz"
    if not path.exists():
        assert main([str(a) for a in _rule(files, "psi", "--scar-target", "core", output="core.npz")]) == 0
    return path


def _exported_tags(files: dict, tags: str = "1,2,3") -> Path:
    """``cardioscar export --format vtu --tags TAGS`` of the prediction: ``tissue_tag`` healthy,
    border zone, core (1, 2, 3 by default), the values noted beside it."""
    path = files["out"] / f"tagged_{tags.replace(',', '')}.vtu"
    if not path.exists():
        assert main(["export", "--mesh", str(files["prediction"]), "--format", "vtu", "--tags", tags, "--output",
                     str(path)]) == 0
    return path


def _manifest(files: dict, name: str, threshold: str, core: str) -> Path:
    path = files["out"] / name
    path.write_text("id,mesh,image,slice_thickness_padding,threshold,core_threshold\n"
                    f"p1,{files['mesh']},{files['scar_map']},{files['half']},{threshold},{core}\n", encoding="utf-8")
    return path


# id -> (arguments from the files, fragment of the one error line). Before each fix: exit 0.
CASES = {
    # FWHM of a negative maximum: the core fell below the border zone, no scar was tagged
    "fwhm offset above the myocardium": (lambda f: _rule(f, "fwhm", "--intensity-offset", "5000"),
                                         "give --intensity-offset below"),
    # the label map given as the LGE: one intensity in the myocardium, every rule called it healthy
    "label map as the raw LGE": (lambda f: _rule(f, "psi", image="labels"), "--image must be the raw LGE"),
    # a linearly resampled label map: its 0|2 edges read as blood pool (1), its 1.5s as nothing
    "linearly resampled mask": (lambda f: [a if a != f["labels"] else f["labels_linear"] for a in _rule(f)],
                                "holds values that are not labels"),
    "linearly resampled labels for mesh-from-labels": (
        lambda f: ["mesh-from-labels", "--labels", f["labels_linear"], "--myocardium-labels", "2", "--output",
                   f["out"] / "out.vtu"], "holds values that are not labels"),
    # an intensity image as the mask: every non-zero pixel of the field of view was myocardium
    "the LGE as the myocardium mask": (
        lambda f: ["prepare", "--mesh", f["mesh"], "--image", f["scar_map"], "--slice-thickness-padding",
                   str(f["half"]), "--myocardium-mask", f["lge"], "--output", f["out"] / "out.npz"],
        "holds values that are not labels"),
    # a myocardium mask 12 mm off the scar map: 61 % of the scar became "no data", the patient scar-free
    "a myocardium mask that misses the scar": (
        lambda f: ["prepare", "--mesh", f["mesh"], "--image", f["scar_map"], "--slice-thickness-padding",
                   str(f["half"]), "--myocardium-mask", f["out"] / "labels_moved_12mm.nii.gz", "--myocardium-labels",
                   "2", "--output", f["out"] / "out.npz"], "the myocardium mask does not match the scar image"),
    # a remote region for a rule without one: silently ignored
    "a remote mask for psi": (lambda f: _rule(f, "psi", "--remote-mask", f["labels"]),
                              "--remote-mask is used by --scar-rule nsd only"),
    # export: a field that is not a probability was tagged all core; NaN nodes healthy
    "export a field that is not a probability": (
        lambda f: ["export", "--mesh", f["prediction"], "--scar-field", "raw", "--output", f["out"] / "out"],
        "outside [0, 1]"),
    # a [0, 1] field CardioScar writes that is not the scar: the uncertain nodes tagged as scar
    "export the uncertainty as the scar": (
        lambda f: ["export", "--mesh", f["prediction"], "--scar-field", "scar_uncertainty", "--output",
                   f["out"] / "out"], "'scar_uncertainty' is the MC-dropout spread"),
    "aha on the error risk": (
        lambda f: ["aha", "--mesh", f["prediction"], "--rv-point", f["rv_point"], "--field", "scar_error_risk",
                   "--output-dir", f["out"] / "out_aha"], "not a scar probability"),
    "export a field with NaN": (
        lambda f: ["export", "--mesh", f["prediction"], "--scar-field", "holes", "--output", f["out"] / "out"],
        "NaN or infinite"),
    # a core prediction on another mesh of the same node count: tags from the wrong nodes
    "export with a core mesh of other nodes": (
        lambda f: ["export", "--mesh", f["prediction"], "--core-mesh", f["other_nodes"], "--output", f["out"] / "out"],
        "not at the same places"),
    # the core model's training data as the scar field's rule: the sidecar called the scar the core
    "export with the core model's rule": (
        lambda f: ["export", "--mesh", f["prediction"], "--rule-from", _core_training_data(f), "--output",
                   f["out"] / "out"], "--scar-target core: give the scar model's training data"),
    # the scar and core fields given the other way round: the scar's border zone was tagged core
    # and the border zone vanished (on the raw-LGE demo: 2.7 % -> 0.5 % of the volume), exit 0
    "export with the scar and core fields swapped": (
        lambda f: ["export", "--mesh", f["prediction"], "--scar-field", "core_probability", "--core-field",
                   "scar_probability", "--output", f["out"] / "out"], "the scar and core fields look swapped"),
    # evaluate pairs nodes by number: a truth on another mesh of as many nodes (or the same one
    # renumbered by another tool) scored each node against another node's truth (Dice 0.12, exit 0)
    "evaluate against a truth on other nodes": (
        lambda f: ["evaluate", "--prediction", f["prediction"], "--truth", f["other_nodes"], "--truth-field",
                   "scar_probability", "--json", f["out"] / "out.json"], "have as many nodes but not at the same places"),
    # a mesh in metres: .pts 1000 times off in every unit
    "export a mesh in metres": (lambda f: ["export", "--mesh", f["metres"], "--output", f["out"] / "out"],
                                "scale a mesh in metres"),
    # a volume mesh with its boundary triangles as cells (gmsh's output): the .elem mixed Tt and Tr
    # elements, and openCARP simulated the wall's faces as tissue of their own
    "export a mesh with surface cells among its volume cells": (
        lambda f: ["export", "--mesh", f["with_faces"], "--output", f["out"] / "out"],
        "mixes 5766 volume elements with"),
    # a mesh in centimetres: a few pixels wide, so it passed the orders-of-magnitude check and every
    # group averaged nodes from all over the heart
    "prepare a mesh in centimetres": (
        lambda f: ["prepare", "--mesh", f["centimetres"], "--image", f["scar_map"], "--slice-thickness-padding",
                   str(f["half"]), "--output", f["out"] / "out.npz"], "scale its coordinates to millimetres (x10)"),
    # a model applied to the mesh read in the other frame (or another patient's): only a warning,
    # and a field extrapolated from the training box
    "apply to a mesh outside the trained region": (
        lambda f: ["apply", "--model", _model(f), "--mesh", f["mirrored"], "--output", f["out"] / "out.vtk"],
        "lie outside the box of the mesh the model was trained on"),
    # AHA's default border-zone tag 1 was export's healthy tag: the healthy share was reported as border
    # zone (refused since round 8; since 2026-12-06 export notes its tags and aha reads them, see
    # test_aha.py); the README's --border-zone-tag 2 on an export with --tags 0,1,2 counted its core
    "aha on export's tags with another export's border-zone tag": (
        lambda f: ["aha", "--mesh", _exported_tags(f, "0,1,2"), "--rv-point", f["rv_point"], "--tags-field",
                   "tissue_tag", "--border-zone-tag", "2", "--output-dir", f["out"] / "out_aha"],
        "--border-zone-tag 2 is not its border zone"),
    # a field that is not a probability cut at a probability threshold: every node of it scar
    "aha on a field that is not a probability": (
        lambda f: ["aha", "--mesh", f["prediction"], "--rv-point", f["rv_point"], "--field", "raw", "--output-dir",
                   f["out"] / "out_aha"], "outside [0, 1]"),
    # cohort: threshold 0 called every node scar (status done); core = threshold failed after training
    "cohort threshold 0": (lambda f: ["cohort", "run", _manifest(f, "t0.csv", "0", "0.8"), "--output-dir",
                                      f["out"] / "cohort"], "column 'threshold' must be a number between 0 and 1"),
    "cohort core threshold equal to threshold": (
        lambda f: ["cohort", "run", _manifest(f, "eq.csv", "0.5", "0.5"), "--output-dir", f["out"] / "cohort"],
        "column 'core_threshold' (0.5) must be above threshold (0.5)"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_the_command_line_refuses_in_one_line_and_writes_nothing(files, case, capsys):
    arguments, fragment = CASES[case]
    args = [str(a) for a in arguments(files)]
    capsys.readouterr()
    assert main(args) != 0
    stderr = capsys.readouterr().err
    errors = error_lines(stderr)
    # one error line; a manifest's problems follow it, one line each (every row's at once)
    assert len(errors) == 1 and fragment in stderr[stderr.index(errors[0]):], stderr[-2000:]
    written = [p.name for p in files["out"].iterdir() if p.name.startswith("out")]
    assert written == [] and not (files["out"] / "cohort").exists(), written


def test_a_chosen_slice_without_myocardium_is_named_in_a_warning(files, capsys):
    """Not an error (an apex slice may have none), but no longer silent."""
    labels = sitk.ReadImage(str(files["labels"]))
    values = sitk.GetArrayFromImage(labels)
    values[0][values[0] == 2] = 0
    mask = _image_like(values, labels, files["out"] / "no_myocardium_on_0.nii.gz")
    args = ["prepare", "--mesh", files["mesh"], "--image", files["lge"], "--slice-thickness-padding",
            str(files["half"]), "--scar-rule", "psi", "--myocardium-mask", mask, "--myocardium-labels", "2",
            "--slice-indices", "0,4", "--output", files["out"] / "warned.npz"]
    assert main([str(a) for a in args]) == 0
    warnings = [line for line in capsys.readouterr().err.splitlines() if "No myocardium" in line]
    assert len(warnings) == 1 and "k=0" in warnings[0] and "k=4" not in warnings[0], warnings


def test_a_mask_a_few_millimetres_off_the_scar_is_named_in_a_warning(files, capsys):
    """4.5 mm off: 18 % of the scar pixels fall outside the mask; the run goes on (a mask from
    another series may be that far off and still be the user's best), but says how much was lost.
    The same mask in place says nothing."""
    for name, warned in (("labels.nii.gz", False), ("labels_moved_4.5mm.nii.gz", True)):
        args = ["prepare", "--mesh", files["mesh"], "--image", files["scar_map"], "--slice-thickness-padding",
                str(files["half"]), "--myocardium-mask", files["out"] / name, "--myocardium-labels", "2",
                "--output", files["out"] / "moved.npz"]
        assert main([str(a) for a in args]) == 0
        warnings = [line for line in capsys.readouterr().err.splitlines() if "scar pixels" in line]
        assert len(warnings) == int(warned), warnings
        if warned:
            assert "check that the myocardium mask was drawn on these images" in warnings[0], warnings


def _prepare_scar_map(f: dict, mesh: str = "mesh", padding: float | None = None) -> list:
    return ["prepare", "--mesh", f[mesh], "--image", f["scar_map"], "--slice-thickness-padding",
            str(f["half"] if padding is None else padding), "--output", f["out"] / "warned.npz"]


def _aha_normal(f: dict, image: Path) -> list:
    return ["aha", "--mesh", f["prediction"], "--rv-point", f["rv_point"], "--slice-normal-from", image,
            "--output-dir", f["out"] / "aha_normal"]


# id -> (arguments of the right input, of the suspicious one, the warning's marker, a fragment of it).
# Not errors (each may be right), but no longer silent; the right input says nothing.
WARNINGS = {
    # (the mesh read mirrored in x and y, a RAS file without its SPACE marker, was here: since round 6
    # it is refused after its field-of-view warning, none of the scar map's scar reaching a node;
    # Testing/test_bad_inputs_core.py checks the warning and Testing/test_bad_inputs_round6.py the refusal)
    # slices 10 mm apart, a 20 mm half-width (the thickness, doubled): each covered node in about
    # 3.5 slabs, constrained by slices that are not its neighbours (Dice 0.54 on the demo phantom)
    "slabs of parallel slices that overlap": (lambda f: _prepare_scar_map(f), lambda f: _prepare_scar_map(f, padding=20.0),
                                              "overlapping slabs", "is HALF the slice thickness"),
    # aha took a long-axis view's normal as the LV's long axis and cut the ventricle lengthwise
    "aha on a long-axis view's normal": (lambda f: _aha_normal(f, f["scar_map"]),
                                         lambda f: _aha_normal(f, f["out"] / "long_axis_view.nii.gz"),
                                         "long axis as its shape gives it", "a long-axis view?"),
}


@pytest.mark.parametrize("case", list(WARNINGS))
def test_suspicious_inputs_are_named_in_one_warning(files, case, capsys):
    right, suspicious, marker, fragment = WARNINGS[case]
    for arguments, warned in ((right, False), (suspicious, True)):
        assert main([str(a) for a in arguments(files)]) == 0
        warnings = [line for line in capsys.readouterr().err.splitlines() if marker in line]
        assert len(warnings) == int(warned) and (not warned or fragment in warnings[0]), warnings


def test_a_cohort_patient_whose_mesh_the_export_refuses_fails_before_training(files, monkeypatch):
    """A cohort row with ``export: opencarp`` and a mesh holding surface cells among its volume
    cells used to train (an hour on a real mesh) and then fail at the export. The patient now fails
    with the export's one line before anything is trained (training is watched, not replaced)."""
    import cardioscar.logic
    from cardioscar.cohort.manifest import read_manifest
    from cardioscar.cohort.tasks import run_patient

    trained = []
    real_training = cardioscar.logic.train_scar_model
    monkeypatch.setattr(cardioscar.logic, "train_scar_model", lambda *a, **k: trained.append(1) or real_training(*a, **k))
    manifest = files["out"] / "export_faces.csv"
    manifest.write_text("id,mesh,image,slice_thickness_padding,max_epochs,export\n"
                        f"p1,{files['with_faces']},{files['scar_map']},{files['half']},2,opencarp\n", encoding="utf-8")
    record = run_patient(read_manifest(manifest)[0], str(files["out"] / "cohort_faces"), "digest")
    assert record["status"] == "failed" and "mixes 5766 volume elements with" in record["error"], record
    assert trained == [] and not (files["out"] / "cohort_faces" / "p1").exists()


@pytest.fixture(scope="module")
def emidec(shared_data) -> tuple[Path, Path]:
    folder = shared_data / "emidec" / EMIDEC_CASE
    return folder / "Images" / f"{EMIDEC_CASE}.nii.gz", folder / "Contours" / f"{EMIDEC_CASE}.nii.gz"


def _tampered(model: Path, out: Path, name: str, architecture_cube: int, preprocess_cube: int) -> Path:
    checkpoint = torch.load(model, map_location="cpu", weights_only=True)
    checkpoint["architecture"] = {**checkpoint["architecture"], "cube": architecture_cube}
    checkpoint["preprocess"] = {**checkpoint["preprocess"], "cube": preprocess_cube}
    torch.save(checkpoint, out / name)
    return out / name


@pytest.mark.parametrize("case, fragment", [
    ("cavity label absent", "has no cavity label [7]"),  # the LV volume was 0 and the crop without it
    ("ACDC labels read as EMIDEC's", "only 0 % of the cavity (labels [1]) lies inside the myocardium"),  # RV as LV
    ("labels as the image", "no LGE contrast in the LV"),  # a prediction from the label picture
    ("network and preprocessing cubes differ", "its network takes 16^3 cubes but its preprocessing makes 32^3"),
    ("weights of another cube", "weights do not fit its recorded architecture"),  # a RuntimeError traceback
])
def test_attrivae_predict_refuses(attrivae_model, emidec, shared_data, tmp_path, capsys, case, fragment):
    image, labels = emidec
    model = attrivae_model
    extra = []
    if case == "cavity label absent":
        extra = ["--cavity-labels", "7"]
    elif case == "ACDC labels read as EMIDEC's":  # the default convention; ACDC's 1 is the right ventricle
        folder = shared_data / "acdc_patient101"
        image, labels = folder / "patient101_frame01.nii.gz", folder / "patient101_frame01_gt.nii.gz"
    elif case == "labels as the image":
        image = labels
    elif case == "network and preprocessing cubes differ":
        model = _tampered(attrivae_model, tmp_path, "mixed.pth", 16, 32)  # the session's model is 16^3
    else:
        model = _tampered(attrivae_model, tmp_path, "bigger.pth", 32, 32)
    capsys.readouterr()
    assert main([str(a) for a in ["attrivae", "predict", "--model", model, "--image", image, "--labels", labels,
                                  "--device", "cpu", *extra]]) != 0
    captured = capsys.readouterr()
    errors = error_lines(captured.err)
    assert len(errors) == 1 and fragment in errors[0], captured.err[-2000:]
    assert "mi_probability" not in captured.out


def test_the_slicer_logic_meets_the_same_refusals(files):
    """The checks are the library's, so the Slicer Logic (real MRML, slicer-core; no Qt) refuses the
    linearly resampled label map as the rule's myocardium mask and a mask 12 mm off the scar map
    before anything is trained, and the tissue tags of a field outside [0, 1] or of swapped scar and core
    fields; the model node is left as it was."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CardioScar"))
    import CardioScarLogic as csl
    from CardioScarLogic.tissue import tag_model_node
    from cardioscar.errors import CardioScarError

    context = csl.create_scene()
    volume = csl.load_volume(context.scene, files["lge"])
    mask = csl.load_volume(context.scene, files["labels_linear"], labelmap=True)
    model = csl.load_model(context.scene, files["prediction"])
    fields = model.GetMesh().GetPointData().GetNumberOfArrays()
    options = csl.ReconstructionOptions(half_thickness=files["half"], preset="fast", max_epochs=2, num_threads=1,
                                        scar_rule="psi", myocardium_labels="2", blood_pool_labels="1")
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    with pytest.raises(CardioScarError, match="holds values that are not labels"):
        logic.train_and_apply(volume, model, options, myocardium_mask=mask)
    assert model.GetMesh().GetPointData().GetNumberOfArrays() == fields
    scar_map = csl.load_volume(context.scene, files["scar_map"])
    moved = csl.load_volume(context.scene, files["out"] / "labels_moved_12mm.nii.gz", labelmap=True)
    options = csl.ReconstructionOptions(half_thickness=files["half"], preset="fast", max_epochs=2, num_threads=1,
                                        myocardium_labels="2")
    with pytest.raises(CardioScarError, match="the myocardium mask does not match the scar image"):
        logic.train_and_apply(scar_map, model, options, myocardium_mask=moved)
    assert model.GetMesh().GetPointData().GetNumberOfArrays() == fields
    prediction = read_mesh(files["prediction"])
    percent = _mesh_with(prediction, files["out"] / "percent.vtk",
                         scar_probability=100.0 * prediction.point_array("scar_probability"))
    model = csl.load_model(context.scene, percent)
    with pytest.raises(CardioScarError, match=r"The scar field \(--scar-field\) ranges .* outside \[0, 1\]"):
        tag_model_node(model)
    assert model.GetMesh().GetPointData().GetArray("tissue_tag") is None
    # the core model's result loaded as the scar, the scar model's field named as the core
    swapped = _mesh_with(prediction, files["out"] / "swapped.vtk",
                         scar_probability=prediction.point_array("core_probability"),
                         scar_field=prediction.point_array("scar_probability"))
    model = csl.load_model(context.scene, swapped)
    with pytest.raises(CardioScarError, match="the scar and core fields look swapped"):
        tag_model_node(model, core_field="scar_field")
    assert model.GetMesh().GetPointData().GetArray("tissue_tag") is None
