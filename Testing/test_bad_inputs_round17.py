"""Round 17 of the bad-input review: the faces other than the command line (the Python API's arrays,
the cohort manifest, the batch script) and round 16's leftovers.

Each test is one input that ran to exit 0 with a wrong or misleading result, or was refused with a
message that blamed the wrong thing, before this round; `Documentation/bad-input.md`'s table has a
row for each. Real parts: the 1,500-node phantom of round 13 and a model trained on it for a few
epochs, the segmented phantom, EMIDEC P001's image, real files, the real command line in process.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.cli import main
from cardioscar.cohort.manifest import read_manifest
from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import read_mesh
from cardioscar.logic import check_mesh_for_checkpoint, load_trained_model, predict_on_points, prepare_from_slices
from cardioscar.prepare.slices import ijk_to_lps_matrix, slices_from_array, slices_from_paths
from conftest import SHARED_DATA, trained_small_phantom
from test_batch_script import _load_script


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The 1,500-node phantom on disk and a model trained on it for a few fast epochs."""
    out = tmp_path_factory.mktemp("round17")
    phantom, paths = trained_small_phantom(out, max_epochs=5)
    return {"out": out, "paths": paths, "half": phantom.slice_half_thickness_mm,
            "checkpoint": load_trained_model(out / "model.pth"), "points": read_mesh(paths["mesh"]).points_lps()}


def test_mesh_points_with_nan_are_named_not_blamed_on_the_model(trained):
    """``predict_on_points`` with a node at NaN (a failed transform, a broken export; the Slicer
    Logic reads a model node's points as they are) answered "The model predicts NaN or infinite
    values: its weights are damaged; retrain it", and ``check_mesh_for_checkpoint`` a bare SciPy
    "data must be finite". True/False points (a mask given for them) were predicted as coordinates
    0 and 1, without a word. Now each is one line naming the mesh's nodes."""
    checkpoint, points = trained["checkpoint"], trained["points"]
    broken = points.copy()
    broken[[5, 9]] = np.nan
    broken[11, 2] = np.inf
    with pytest.raises(CardioScarError, match=r"The mesh: 3 of its \d+ nodes have NaN or infinite coordinates "
                                              r"\(node 5 first\): fix or remove them"):
        predict_on_points(checkpoint, broken, mc_samples=2, seed=0)
    with pytest.raises(CardioScarError, match=r"heart.vtk: 3 of its \d+ nodes have NaN"):
        check_mesh_for_checkpoint(checkpoint, broken, "heart.vtk")
    with pytest.raises(CardioScarError, match="points are True/False values"):
        predict_on_points(checkpoint, points > 0, mc_samples=2, seed=0)
    good = predict_on_points(checkpoint, points, mc_samples=2, seed=0)
    assert good.n_nodes == len(points) and np.isfinite(good.mean_predictions).all()


def test_a_mesh_file_with_nan_nodes_is_refused_by_the_same_check_naming_the_file(trained, tmp_path):
    """A mesh file with nodes at NaN was refused as "Mesh heart.vtk has NaN or infinite point
    coordinates" by its own check, while the same points in memory were counted and the first
    named; both now run the one check of :mod:`cardioscar.io.checks`, the file's line naming the file."""
    import vtk

    reader = vtk.vtkUnstructuredGridReader()
    reader.SetFileName(str(trained["paths"]["mesh"]))
    reader.Update()
    dataset = reader.GetOutput()
    dataset.GetPoints().SetPoint(4, float("nan"), 0.0, 0.0)
    dataset.GetPoints().SetPoint(8, 0.0, float("inf"), 0.0)
    writer = vtk.vtkXMLUnstructuredGridWriter()
    writer.SetFileName(str(tmp_path / "holes.vtu"))
    writer.SetInputData(dataset)
    writer.Write()
    with pytest.raises(CardioScarError, match=r"^Mesh .*holes.vtu: 2 of its \d+ nodes have NaN or infinite coordinates "
                                              r"\(node 4 first\): fix or remove them in the mesh"):
        read_mesh(tmp_path / "holes.vtu")


def test_an_array_in_nibabel_order_is_refused_naming_the_order():
    """``slices_from_array`` takes ``[k, j, i]``; EMIDEC P001's image in nibabel's ``[i, j, k]`` made
    its 256 columns the slices, a stack 2.56 m long, and ``prepare_from_slices`` then refused it as
    "none of the scar pixels reaches a mesh node ... same patient, exam and frame". The same
    array the right way round cuts its 10 slices."""
    image = sitk.ReadImage(str(SHARED_DATA / "emidec" / "Case_P001" / "Images" / "Case_P001.nii.gz"))
    volume, matrix = sitk.GetArrayFromImage(image), ijk_to_lps_matrix(image)
    with pytest.raises(CardioScarError, match=r"spans 2560 mm along k \(256 voxels of 10 mm.*indexed \[i, j, k\] "
                                              r"\(nibabel's order\)\? Give it as \[k, j, i\]"):
        slices_from_array(np.ascontiguousarray(volume.transpose(2, 1, 0)), matrix)
    assert len(slices_from_array(volume, matrix)) == 10


def test_a_patch_of_wall_smaller_than_the_centimetre_check_is_named(trained):
    """Round 16's leftover: a patch of wall in millimetres 12 mm across (dense, 1 mm nodes) on the
    scar is refused by the centimetre check (no size tells the two apart), and was told to scale
    its coordinates x10; the line now names the patch too. The whole mesh passes."""
    slices = slices_from_paths([trained["paths"]["image"]], half_thickness=trained["half"])
    points = trained["points"]
    grid = np.arange(-6.0, 6.0 + 1e-9, 1.0)
    patch = points[np.argmax(points[:, 0])] + np.stack(np.meshgrid(grid, grid, grid, indexing="ij"), -1).reshape(-1, 3)
    with pytest.raises(CardioScarError, match="a heart mesh in centimetres.*A patch of wall this small, in mm, is not "
                                              "reconstructed on its own"):
        prepare_from_slices(patch, slices)
    assert prepare_from_slices(points, slices).n_mesh_nodes == len(points)


def test_an_inverted_scar_map_with_its_myocardium_mask_is_warned(segmented, tmp_path, capsys):
    """Round 16's leftover: the segmented phantom's scar map inverted inside the myocardium (1 - scar,
    0 outside: a 'healthy probability' exported) given with its myocardium mask passed every check,
    the mask holding all of its "scar", and trained 90 % of the rows as scar, exit 0. Now a
    warning; the map itself stays silent."""
    scar = sitk.ReadImage(str(segmented["image"]))
    inside = sitk.GetArrayFromImage(sitk.ReadImage(str(segmented["myocardium_mask"]))) > 0
    inverted = sitk.GetImageFromArray(np.where(inside, 1.0 - sitk.GetArrayFromImage(scar), 0.0).astype(np.float32))
    inverted.CopyInformation(scar)
    sitk.WriteImage(inverted, str(tmp_path / "inverted.nii.gz"))
    for image, warned in ((tmp_path / "inverted.nii.gz", True), (segmented["image"], False)):
        capsys.readouterr()
        assert main(["prepare", "--mesh", str(segmented["mesh"]), "--image", str(image), "--myocardium-mask",
                     str(segmented["myocardium_mask"]), "--output", str(tmp_path / "data.npz")]) == 0
        stderr = capsys.readouterr().err
        named = [line for line in stderr.splitlines() if "myocardium's pixels" in line and "is the scar map inverted" in line]
        assert len(named) == warned, stderr[-2000:]


@pytest.mark.parametrize("suffix, text, fragment", [
    (".csv", "id,mesh,image,image\nP1,{mesh},{image},{image}\n", "the header names column 'image' 2 times"),
    (".csv", "id, image,mesh,image \nP1,{image},{mesh},{image}\n", "the header names column 'image' 2 times"),
    (".yaml", "patients:\n  - id: P1\n    mesh: {mesh}\n    image: {image}\n    image: {image}\n",
     "line 5 gives 'image' again"),
    (".csv", "id;mesh;image\nP1;{mesh};{image}\n", "the header is one column, 'id;mesh;image': a file separated by ';'"),
])
def test_a_manifest_naming_a_column_twice_is_refused(trained, tmp_path, suffix, text, fragment):
    """A second ``image`` column (the long-axis views beside the stack, in their own column): the CSV
    reader (and YAML's, for a key) kept the last without a word, so the patient trained on the
    long-axis image alone. Now refused before anything runs; a YAML merge key's overridden values and
    several images in one cell (or list) pass. A CSV saved with ';' between its columns (a
    spreadsheet in a locale with decimal commas) was four lines of unknown column and empty id, mesh
    and image; now one line naming the separator."""
    paths = trained["paths"]
    manifest = tmp_path / f"cohort{suffix}"
    manifest.write_text(text.format(mesh=paths["mesh"], image=paths["image"]))
    with pytest.raises(CardioScarError, match=fragment):
        read_manifest(manifest)
    good = tmp_path / "good.yaml"
    good.write_text(f"common: &c\n  seed: 3\npatients:\n  - <<: *c\n    seed: 4\n    id: P1\n    mesh: {paths['mesh']}\n"
                    f"    image: [{paths['image']}, {paths['image']}]\n")
    [patient] = read_manifest(good)
    assert patient.options["seed"] == 4 and len(patient.images) == 2


def test_the_batch_script_refuses_units_without_the_opencarp_export(trained, tmp_path, capsys):
    """``--units mm`` sets the units of ``--export-opencarp``'s ``.pts``; without that export it was
    parsed and silently unused, exit 0 (the user believed a millimetre export was written)."""
    paths = trained["paths"]
    script = _load_script()
    argv = ["--mesh", str(paths["mesh"]), "--model", str(trained["out"] / "model.pth"), "--output",
            str(tmp_path / "o.vtk"), "--units", "mm"]
    assert script.run(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--units mm sets the units of the openCARP .pts that --export-opencarp PREFIX" in err[0]
    assert not list(tmp_path.iterdir())
