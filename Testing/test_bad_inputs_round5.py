"""Round 5 of silent wrong answers: inputs that gave a wrong training set, a wrong AHA table, a
broken mesh or a wrong openCARP sidecar with exit 0 on main. Each is now refused in one
``error:`` line naming what to fix, or, where the input can be legitimate, named in a warning.

Real parts throughout: the phantom's mesh, surface and LGE stack written to disk and read back by
the real command line, the real EMIDEC label maps (one edited the way a careless segmentation
goes wrong), and ``cardioscar aha`` / ``export`` / ``mesh-from-labels`` as a user runs them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import numpy_to_vtk

from cardioscar.aha import analyse_mesh
from cardioscar.cli import main
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom
from conftest import assert_refused_in_one_line, trained_small_phantom
from test_aha import _options, _wall_point, INSERTION_DEG


@pytest.fixture(scope="module")
def phantom_files(tmp_path_factory) -> dict:
    """The 1,500-node phantom (mesh node spacing about 5 mm, LGE stack of 9 slices 10 mm apart)."""
    out = tmp_path_factory.mktemp("round5_phantom")
    phantom = make_phantom(PhantomConfig(target_nodes=1500, seed=3))
    return {"out": out, **write_phantom(phantom, out)}


def _prepare(files: dict, name: str, *options: str, capsys) -> tuple[str, np.lib.npyio.NpzFile]:
    capsys.readouterr()
    output = files["out"] / name
    assert main(["prepare", "--mesh", str(files["mesh"]), "--image", str(files["image"]), *options,
                 "--output", str(output)]) == 0
    return capsys.readouterr().err, np.load(output)


def test_slab_wider_than_the_stack_spacing_is_named_when_no_two_chosen_slabs_overlap(phantom_files, capsys):
    """``--slice-thickness-padding 30`` on slices 1 and 7 of a 10 mm stack (or 50 on one slice):
    no two chosen slabs overlap, so the overlap warning was silent, yet every node of the mesh
    took one of those slices' values, the nodes where the slices not chosen lie included. Now
    a warning names the slab and the stack's spacing; half the thickness gives none."""
    err, data = _prepare(phantom_files, "wide.npz", "--slice-indices", "1,7", "--slice-thickness-padding", "30",
                         capsys=capsys)
    warned = [line for line in err.splitlines() if "wider than their stack's slice spacing" in line]
    assert len(warned) == 1 and "half-width 30 mm, slices 10 mm apart" in warned[0], err[-2000:]
    assert len(np.unique(data["node_ids"])) == int(data["n_mesh_nodes"])  # what it warns about: every node
    err, _ = _prepare(phantom_files, "one.npz", "--slice-indices", "4", "--slice-thickness-padding", "50", capsys=capsys)
    assert "wider than their stack's slice spacing" in err
    err, data = _prepare(phantom_files, "right.npz", "--slice-indices", "1,4,7", "--slice-thickness-padding", "4",
                         capsys=capsys)
    # no warning names a slab (prepare's own report of the pixels with no node in their slab is no warning)
    slab_lines = [line for line in err.splitlines() if "slab" in line and not line.startswith("Pixels with a target")]
    assert not slab_lines and len(np.unique(data["node_ids"])) < 0.5 * int(data["n_mesh_nodes"]), slab_lines


def test_a_stack_placed_plane_by_plane_knows_its_spacing():
    """A DICOM series read file by file has no single volume: its spacing comes from the planes'
    positions (here 8 mm apart, one missing), so its slabs are checked the same way."""
    from cardioscar.prepare.slices import slices_from_planes

    planes = []
    for height in (0.0, 8.0, 24.0, 32.0):
        matrix = np.eye(4)
        matrix[:3, :3] = np.diag([1.5, 1.5, 1.0])
        matrix[2, 3] = height
        planes.append((np.zeros((4, 4)), matrix))
    layers = slices_from_planes(planes, [0, 3], 4.0)
    assert [layer.stack_spacing for layer in layers] == [8.0, 8.0]


def test_slab_thinner_than_the_mesh_spacing_is_named(phantom_files, capsys):
    """``--slice-thickness-padding 0.3`` (a typo for 3, or the thickness in cm) on a mesh whose
    nodes lie 5 mm apart: 94 rows from 9 slices, silently (0.01 gave one row, and ``train``
    fitted a model to it). Now a warning gives the slab and the node spacing."""
    err, data = _prepare(phantom_files, "thin.npz", "--slice-thickness-padding", "0.3", capsys=capsys)
    warned = [line for line in err.splitlines() if "most pixels catch no node" in line]
    assert len(warned) == 1 and "at most 0.6 mm thick" in warned[0], err[-2000:]
    assert len(data["node_ids"]) < 150
    err, data = _prepare(phantom_files, "thick.npz", "--slice-thickness-padding", "4", capsys=capsys)
    assert "most pixels catch no node" not in err and len(data["node_ids"]) > 1000


def _with_debris(phantom, offset_mm: float) -> vtk.vtkUnstructuredGrid:
    """The phantom's mesh plus one stray tetrahedron ``offset_mm`` beyond its base along the LV axis."""
    axis = analyse_mesh(Mesh(dataset=phantom.mesh, space="LPS"), _options(phantom)).frame.axis
    top = phantom.points_lps[np.argmax(axis.heights(phantom.points_lps))]
    corners = top + axis.base_direction * offset_mm + np.array([[0, 0, 0], [2, 0, 0], [0, 2, 0], [0, 0, 2.0]])
    debris = vtk.vtkUnstructuredGrid()
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(corners, deep=True))
    debris.SetPoints(points)
    debris.InsertNextCell(vtk.VTK_TETRA, 4, [0, 1, 2, 3])
    both = vtk.vtkAppendFilter()
    both.AddInputData(phantom.mesh)
    both.AddInputData(debris)
    both.Update()
    return both.GetOutput()


def test_aha_refuses_stray_parts_away_from_the_wall(tmp_path, capsys):
    """A mesh with a stray piece no cell joins to the LV (segmentation debris meshed with it)
    30 mm beyond the base: the AHA base level moved there and the table was cut at the wrong
    heights, silently. Now refused, naming the piece; --lv-mask leaving it out passes, as does
    the mesh without it."""
    phantom = make_phantom(PhantomConfig(target_nodes=3000, seed=0, territories=("LAD",)))
    grid = _with_debris(phantom, 30.0)
    n = phantom.mesh.GetNumberOfPoints()
    truth = np.concatenate([phantom.truth, np.zeros(4)])
    lv = np.concatenate([np.ones(n), np.zeros(4)])
    write_mesh(Mesh(dataset=grid, space="LPS"), tmp_path / "debris.vtu", {"scar_truth": truth, "lv": lv})
    points = [",".join(f"{c:.4f}" for c in _wall_point(phantom, angle)) for angle in INSERTION_DEG]
    command = ["aha", "--mesh", str(tmp_path / "debris.vtu"), "--field", "scar_truth", "--rv-point", points[0],
               "--rv-inferior-point", points[1]]
    assert_refused_in_one_line([*command, "--output-dir", tmp_path / "out"],
                               "4 LV node(s) in 1 small part(s) that no cell joins to the rest", capsys, tmp_path)
    assert main([*command, "--lv-mask", "lv", "--output-dir", str(tmp_path / "masked")]) == 0
    # debris the axis and levels were built on: the table differs from the clean mesh's
    from cardioscar.aha import analysis

    clean = analyse_mesh(Mesh(dataset=phantom.mesh, space="LPS"), _options(phantom))
    refuse, analysis.refuse_debris = analysis.refuse_debris, lambda *args: None
    try:
        fooled = analyse_mesh(read_mesh(tmp_path / "debris.vtu"), _options(phantom))
    finally:
        analysis.refuse_debris = refuse
    assert np.mean(fooled.point_segments[:n] != clean.point_segments) > 0.1


def test_mesh_from_labels_names_a_mesh_that_falls_apart(shared_data, tmp_path, capsys):
    """EMIDEC P003's apical ring is too small to blend with the next slice's: its mesh piece lay
    2.6 mm from the rest, joined by no cell (3 % of the nodes); a stray blob of myocardium label
    far from the heart on the end slice became a floating piece too (on a middle slice the shape
    interpolation dissolves it). Both silent; now a warning names
    the slice(s). A map whose mesh is whole (P001) gives none."""
    def build(labels, name: str) -> str:
        capsys.readouterr()
        assert main(["mesh-from-labels", "--labels", str(labels), "--output", str(tmp_path / name)]) == 0
        return "\n".join(line for line in capsys.readouterr().err.splitlines() if "falls apart" in line)

    emidec = shared_data / "emidec"
    warned = build(emidec / "Case_P003" / "Contours" / "Case_P003.nii.gz", "p003.vtu")
    assert "923 of its 29567 nodes lie in 1 piece(s)" in warned and "slice(s) k=0 " in warned, warned
    p001 = emidec / "Case_P001" / "Contours" / "Case_P001.nii.gz"
    assert build(p001, "p001.vtu") == ""
    image = sitk.ReadImage(str(p001))
    array = sitk.GetArrayFromImage(image)
    array[0, 5:12, 5:12] = 2  # a blob painted in the corner of the end slice (whose shape the mesh extends)
    blob = sitk.GetImageFromArray(array)
    blob.CopyInformation(image)
    sitk.WriteImage(blob, str(tmp_path / "blob.nii.gz"))
    assert "slice(s) k=0 " in build(tmp_path / "blob.nii.gz", "blob.vtu")


def test_export_of_a_surface_mesh_gives_shares_of_area(phantom_files, tmp_path, capsys):
    """``export`` of a surface mesh (no volume cells) reported every class as 0.00 ml and 0.0 %
    in the summary and the ``.json`` sidecar: a scar-free model, whatever the field. Now the
    shares are of area (``area_cm2``) and a warning says the model has no wall thickness."""
    capsys.readouterr()
    assert main(["export", "--mesh", str(phantom_files["surface"]), "--scar-field", "scar_truth",
                 "--output", str(tmp_path / "surface")]) == 0
    assert "has no volume cells" in capsys.readouterr().err
    classes = json.loads((tmp_path / "surface.json").read_text())["classes"]
    surface = read_mesh(phantom_files["surface"])
    areas = _cell_areas(surface.dataset)
    scarred = np.array([surface.point_array("scar_truth")[_cell_nodes(surface.dataset, c)].mean() >= 0.8
                        for c in range(surface.dataset.GetNumberOfCells())])
    assert classes["core"]["percent"] == pytest.approx(100 * areas[scarred].sum() / areas.sum(), rel=1e-6)
    assert classes["core"]["percent"] > 1.0
    assert sum(row["area_cm2"] for row in classes.values()) == pytest.approx(areas.sum() / 100, rel=1e-6)


def _cell_nodes(dataset: vtk.vtkDataSet, cell: int) -> list[int]:
    ids = vtk.vtkIdList()
    dataset.GetCellPoints(cell, ids)
    return [ids.GetId(i) for i in range(ids.GetNumberOfIds())]


def _cell_areas(dataset: vtk.vtkDataSet) -> np.ndarray:
    """Each triangle's area from its corners (independent of VTK's cell-size filter)."""
    points = np.array([dataset.GetPoint(i) for i in range(dataset.GetNumberOfPoints())])
    corners = np.array([points[_cell_nodes(dataset, c)] for c in range(dataset.GetNumberOfCells())])
    return 0.5 * np.linalg.norm(np.cross(corners[:, 1] - corners[:, 0], corners[:, 2] - corners[:, 0]), axis=1)


def test_ratio_rule_on_an_image_storing_zero_signal_at_2048_is_named(shared_data, tmp_path, capsys):
    """EMIDEC stores zero signal at 2048 (PSIR). ``--scar-rule iir`` without ``--intensity-offset``
    divided by a blood pool 2048 too bright: 1 border-zone pixel and no core on P001 (a scar-free
    patient; 276 with the offset), silently. Now a warning gives the air's level and the offset to
    give; with ``--intensity-offset 2048``, or an offset-free rule, there is none."""
    case = shared_data / "emidec" / "Case_P001"
    labels = case / "Contours" / "Case_P001.nii.gz"
    assert main(["mesh-from-labels", "--labels", str(labels), "--spacing", "3", "--output", str(tmp_path / "lv.vtu")]) == 0

    def prepare(*rule: str) -> tuple[str, float]:
        capsys.readouterr()
        assert main(["prepare", "--mesh", str(tmp_path / "lv.vtu"), "--image", str(case / "Images" / "Case_P001.nii.gz"),
                     "--myocardium-mask", str(labels), "--myocardium-labels", "2,3,4", "--blood-pool-labels", "1",
                     "--scar-rule", *rule, "--output", str(tmp_path / "scar.npz")]) == 0
        warned = "\n".join(line for line in capsys.readouterr().err.splitlines() if "divides intensities" in line)
        return warned, float((np.load(tmp_path / "scar.npz")["intensities"] >= 0.5).mean())

    warned, scar_without = prepare("iir")
    assert "give the stored value of zero signal as --intensity-offset (about 20" in warned, warned
    right, scar_with = prepare("iir", "--intensity-offset", "2048")
    assert right == "" and scar_without < 0.1 * scar_with  # what it warns about: the scar gone
    assert "divides intensities" in prepare("fwhm")[0]
    assert prepare("nsd")[0] == ""


def test_aha_names_apex_and_base_given_the_other_way_round(caplog):
    """``aha --apex B --base A`` with the two points swapped: the levels ran from the base to the
    apex, the basal ring numbered at the apex, silently. Now a warning says the LV is wider at
    --apex's end; the right order gives none."""
    phantom = make_phantom(PhantomConfig(target_nodes=3000, seed=0, territories=("LAD",)))
    mesh = Mesh(dataset=phantom.mesh, space="LPS")
    axis = analyse_mesh(mesh, _options(phantom)).frame.axis
    heights = axis.heights(phantom.points_lps)
    apex, base = (axis.origin + axis.base_direction * h for h in (heights.min(), heights.max()))
    with caplog.at_level("WARNING"):
        right = analyse_mesh(mesh, _options(phantom, apex=apex, base=base))
    assert "swapped" not in caplog.text
    with caplog.at_level("WARNING"):
        swapped = analyse_mesh(mesh, _options(phantom, apex=base, base=apex))
    assert "are --apex and --base swapped?" in caplog.text
    basal = right.point_segments <= 6
    assert np.mean(swapped.point_segments[basal] <= 6) < 0.2  # what it warns about: the basal ring elsewhere


def test_cohort_refuses_an_output_folder_whose_patient_folders_hold_its_inputs(phantom_files, tmp_path, capsys):
    """``cohort run manifest.csv --output-dir .`` beside a manifest whose patients' files lie in
    folders named by their ids (``p0/phantom_mesh.vtk``): each finished patient's results replaced
    its folder whole, deleting its mesh and LGE, with status ``done``. Now refused before anything
    runs, naming the folder and the input; an output folder apart from the inputs is taken."""
    from cardioscar.cohort import read_manifest
    from cardioscar.cohort.runner import _check_outputs_apart_from_inputs

    patient = tmp_path / "p0"
    patient.mkdir()
    for name in ("mesh", "image"):
        (patient / phantom_files[name].name).write_bytes(phantom_files[name].read_bytes())
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,mesh,image\np0,p0/phantom_mesh.vtk,p0/phantom_lge.nii.gz\n")
    capsys.readouterr()
    assert main(["cohort", "run", str(manifest), "--output-dir", str(tmp_path)]) != 0
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"the run writes {patient} (replacing the folder whole)" in errors[0], errors
    assert "row 1's mesh" in errors[0]
    assert sorted(p.name for p in patient.iterdir()) == ["phantom_lge.nii.gz", "phantom_mesh.vtk"]
    _check_outputs_apart_from_inputs(read_manifest(manifest), tmp_path / "results")  # apart: no error


def test_export_refuses_fibres_without_a_direction(phantom_files, tmp_path, capsys):
    """``export --fibres`` with a cell field whose vectors are zero on part of the mesh (a fibre
    rule run on part of it, a placeholder field): ``.lon`` rows of 0 0 0, on which a simulator's
    conductivity has no direction, written with exit 0. Now refused, naming an element; the same
    field with a direction everywhere is written."""
    def with_fibres(fibres: np.ndarray) -> str:
        mesh = read_mesh(phantom_files["mesh"])
        array = numpy_to_vtk(fibres, deep=True)
        array.SetName("fibres")
        mesh.dataset.GetCellData().AddArray(array)
        write_mesh(mesh, tmp_path / "fibres.vtu", {})
        return str(tmp_path / "fibres.vtu")

    n = read_mesh(phantom_files["mesh"]).dataset.GetNumberOfCells()
    fibres = np.zeros((n, 3))
    fibres[: n // 2] = (1.0, 0.0, 0.0)
    command = ["export", "--scar-field", "scar_truth", "--fibres", "fibres", "--mesh"]
    assert_refused_in_one_line([*command, with_fibres(fibres), "--output", tmp_path / "out"],
                               f"{n - n // 2} element(s) with a zero-length fibre direction (e.g. element {n // 2})",
                               capsys, tmp_path)
    fibres[n // 2:] = (0.0, 1.0, 0.0)
    assert main([*command, with_fibres(fibres), "--output", str(tmp_path / "whole")]) == 0
    assert (tmp_path / "whole.lon").read_text().splitlines()[-1] == "0.000000 1.000000 0.000000"


def test_evaluate_refuses_a_truth_made_from_the_prediction(tmp_path, capsys):
    """``evaluate --truth pred.vtk --truth-field scar_binary`` (the prediction's own threshold, which
    ``apply --threshold`` writes into the same file; in a copy of the file too): Dice 1.0 and AUC
    1.0 for any model, exit 0 (only the same file and field was refused). Now refused; the
    phantom's truth carried in the same file is still scored."""
    out = tmp_path
    trained_small_phantom(out, 20)
    assert main(["apply", "--model", str(out / "model.pth"), "--mesh", str(out / "phantom_mesh.vtk"), "--output",
                 str(out / "pred.vtk"), "--threshold", "0.3"]) == 0
    (out / "copy.vtk").write_bytes((out / "pred.vtk").read_bytes())
    pred = ["evaluate", "--prediction", out / "pred.vtk", "--threshold", "0.3", "--truth"]
    assert_refused_in_one_line([*pred, out / "pred.vtk", "--truth-field", "scar_binary"],
                               "is the prediction's own threshold (apply --threshold)", capsys, out)
    assert_refused_in_one_line([*pred, out / "copy.vtk", "--truth-field", "scar_binary"],
                               "is the prediction's own threshold (apply --threshold)", capsys, out)
    capsys.readouterr()
    assert main([str(a) for a in pred] + [str(out / "pred.vtk"), "--truth-field", "scar_truth"]) == 0
    assert json.loads(capsys.readouterr().out)["dice"] < 1.0


def test_a_cohort_patient_keeps_the_warnings_of_its_run(phantom_files, tmp_path):
    """A patient's warnings (here: slabs 30 mm wide on slices 10 mm apart) went to the worker's
    stderr, a Slurm job's log, apart from the patient, while the summary said ``done``. Now they
    are in its record (report.json, cohort_summary.csv/.json, the progress line). The Dask task
    itself runs here in this process: the engine is test_cohort.py's."""
    from cardioscar.cohort import read_manifest
    from cardioscar.cohort.summary import write_summary
    from cardioscar.cohort.tasks import input_hash, run_patient

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("id,mesh,image,slice_thickness_padding,preset,max_epochs,mc_samples\n"
                        f"p0,{phantom_files['mesh']},{phantom_files['image']},30,fast,5,3\n")
    (spec,) = read_manifest(manifest)
    record = run_patient(spec, str(tmp_path / "results"), input_hash(spec))
    assert record["status"] == "done"
    assert record["fit_seed"] == spec.options["seed"]  # no retry here: the kept run is the row's seed's
    assert any("overlapping slabs" in message for message in record["warnings"]), record["warnings"]
    # in the manifest's terms, as its errors (test_cohort): the column, not the CLI option
    assert any("slice_thickness_padding is HALF" in message for message in record["warnings"]), record["warnings"]
    assert not any("--slice-thickness-padding" in message for message in record["warnings"])
    report = json.loads((tmp_path / "results" / "p0" / "report.json").read_text())
    assert report["warnings"] == record["warnings"]
    csv_path, _ = write_summary(tmp_path / "results", [record])
    header, row = csv_path.read_text().splitlines()[:2]
    assert "warnings" in header.split(",") and "overlapping slabs" in row


def test_myocardium_labels_that_include_the_cavity_are_refused(shared_data, tmp_path, capsys):
    """``--myocardium-labels 1,2,3,4`` on an EMIDEC map ("every label of the heart"): the cavity's
    pixels, target 0, constrained the wall nodes at the endocardium where infarcts begin (P001:
    6,604 more rows of target 0), silently. Now refused, naming the label, on the label map
    itself and as --myocardium-mask labels; 2,3,4 (no-reflow 4 lies inside the wall) passes."""
    labels = shared_data / "emidec" / "Case_P001" / "Contours" / "Case_P001.nii.gz"
    image = shared_data / "emidec" / "Case_P001" / "Images" / "Case_P001.nii.gz"
    assert main(["mesh-from-labels", "--labels", str(labels), "--spacing", "3", "--output", str(tmp_path / "lv.vtu")]) == 0
    mesh = ["prepare", "--mesh", tmp_path / "lv.vtu"]
    refused = "label 1 fills the inside of the ring the others make, the cavity (blood pool)"
    assert_refused_in_one_line([*mesh, "--image", labels, "--scar-labels", "3,4", "--myocardium-labels", "1,2,3,4",
                                "--output", tmp_path / "out.npz"], refused, capsys, tmp_path)
    assert_refused_in_one_line([*mesh, "--image", image, "--scar-rule", "nsd", "--myocardium-mask", labels,
                                "--myocardium-labels", "1,2,3,4", "--output", tmp_path / "out.npz"], refused, capsys,
                               tmp_path)
    assert main([str(a) for a in mesh] + ["--image", str(labels), "--scar-labels", "3,4", "--myocardium-labels",
                                          "2,3,4", "--output", str(tmp_path / "right.npz")]) == 0


def test_aha_refuses_the_lv_cavity_as_the_rv_label(shared_data, tmp_path, capsys):
    """``aha --labels`` an EMIDEC map: it has no RV, and its label 1 (the default --rv-label) is the
    LV cavity. Where a transmural infarct broke the cavity's contact with label 2 into an arc
    under 270 degrees (P009, P081, P091 of 25 maps), the infarct's edges were taken as the RV
    insertions and the segments turned with them, silently. Now refused: the label surrounds the
    LV axis (the RV lies to one side; the ACDC RV is still taken, test_aha.py)."""
    labels = shared_data / "emidec" / "Case_P009" / "Contours" / "Case_P009.nii.gz"
    assert main(["mesh-from-labels", "--labels", str(labels), "--spacing", "3", "--output", str(tmp_path / "lv.vtu")]) == 0
    mesh = read_mesh(tmp_path / "lv.vtu")
    write_mesh(mesh, tmp_path / "pred.vtu", {"scar_probability": np.zeros(mesh.n_points)})
    assert_refused_in_one_line(["aha", "--mesh", tmp_path / "pred.vtu", "--labels", labels, "--output-dir",
                                tmp_path / "out"], "label 1 (--rv-label) surrounds the LV axis", capsys, tmp_path)


def test_export_refuses_the_scar_field_as_its_own_core(phantom_files, tmp_path, capsys):
    """``export --mesh pred.vtk --core-mesh pred.vtk`` (or ``--core-field scar_probability``): the
    "core" was the scar cut at 0.5 and the sidecar called it a second model's core, exit 0 (the
    Slicer *Core model* refused the model itself already). Now refused on the command line too."""
    mesh = ["export", "--mesh", phantom_files["mesh"], "--scar-field", "scar_truth", "--output", tmp_path / "out"]
    refused = "the core field is the scar field 'scar_truth' of the same mesh"
    assert_refused_in_one_line([*mesh, "--core-mesh", phantom_files["mesh"], "--core-field", "scar_truth"], refused,
                               capsys, tmp_path)
    assert_refused_in_one_line([*mesh, "--core-field", "scar_truth"], refused, capsys, tmp_path)


def test_mesh_from_labels_refuses_the_cavity_as_myocardium(shared_data, tmp_path, capsys):
    """``mesh-from-labels --myocardium-labels 1,2,3,4`` on an EMIDEC map meshed the blood pool as
    wall: a filled ventricle (P001: 133,189 nodes for 73,382), exit 0. Now refused as prepare
    refuses those labels."""
    labels = shared_data / "emidec" / "Case_P001" / "Contours" / "Case_P001.nii.gz"
    assert_refused_in_one_line(["mesh-from-labels", "--labels", labels, "--myocardium-labels", "1,2,3,4", "--spacing",
                                "3", "--output", tmp_path / "out.vtu"],
                               "label 1 fills the inside of the ring the others make", capsys, tmp_path)
