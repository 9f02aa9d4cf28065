"""Round 18 of the bad-input review: the files that pass between stages (training data, models,
meshes, DICOM folders) and the outputs.

Each test is one input that ran to exit 0 with a wrong or misleading result, ended in a traceback,
or was refused with a message that blamed the wrong thing, before this round;
`Documentation/bad-input.md`'s table has a row for each. Real parts: round 17's 1,500-node phantom
and a model trained on it for a few epochs, real NIfTI, DICOM, VTK, numpy and torch files, the real
command line in process.
"""

from __future__ import annotations

import zipfile

import numpy as np
import SimpleITK as sitk
import torch
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from cardioscar.cli import main
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from cardioscar.logic import load_preprocessing_result
from conftest import assert_refused_in_one_line, error_lines
from test_bad_inputs_round17 import trained  # noqa: F401 (the 1,500-node phantom and a model trained on it)


def _dicom_series(image: sitk.Image, folder, description: str, number: int, frames: int = 1,
                  again: tuple[int, ...] = ()) -> None:
    """``image``'s slices written into ``folder`` as one DICOM series (one file per slice and time
    frame, each at its slice's position, then the slices ``again`` acquired a second time), as a
    scanner exports it; int16 pixels, x1000."""
    folder.mkdir(parents=True, exist_ok=True)
    array = sitk.GetArrayFromImage(image)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    uid = f"1.2.826.0.1.3680043.2.1125.18.{number}"
    planes = [(k, frame) for k in range(array.shape[0]) for frame in range(frames)] + [(k, 0) for k in again]
    for index, (k, frame) in enumerate(planes):
        plane = sitk.GetImageFromArray((array[k:k + 1] * (1000 - 300 * frame)).astype(np.int16))
        plane.SetSpacing(image.GetSpacing())
        plane.SetDirection(image.GetDirection())
        plane.SetOrigin(image.TransformIndexToPhysicalPoint((0, 0, k)))
        for tag, value in {"0020|000e": uid, "0020|000d": "1.2.826.0.1.3680043.2.1125.18", "0008|0060": "MR",
                           "0008|103e": description, "0020|0011": str(number), "0020|0013": str(index + 1),
                           "0008|0018": f"{uid}.{index + 1}", "0018|0050": "10"}.items():
            plane.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"{description}_{index:03d}.dcm"))
        writer.Execute(plane)


def test_a_dicom_folder_with_a_cine_beside_the_lge_is_refused_naming_both_series(trained, tmp_path, capsys):
    """An exam exported into one folder: the LGE stack (9 files) and a cine at the same positions
    (3 frames each, 27 files). "The largest series" was the cine: 27 slices trained as the LGE, exit 0,
    with a warning that named a UID. Now refused, naming both series by number and description; a
    folder with a second, shorter LGE series still takes the longer one, the warning naming both."""
    image = sitk.ReadImage(str(trained["paths"]["image"]))
    _dicom_series(image, tmp_path / "exam", "LGE", 10)
    _dicom_series(image, tmp_path / "exam", "CINE", 5, frames=3)
    mesh = trained["paths"]["mesh"]
    assert_refused_in_one_line(
        ["prepare", "--mesh", mesh, "--image", tmp_path / "exam", "--normalize-intensities", "--output",
         tmp_path / "out.npz"],
        "holds 2 series; the largest, series 5 'CINE' (27 files), has 27 files on a slice position another file "
        "holds (a cine's time frames, or magnitude and phase images?), so it is not taken for the LGE (the others: "
        "series 10 'LGE' (9 files))", capsys, tmp_path)
    _dicom_series(image, tmp_path / "two", "LGE", 10)
    sitk.WriteImage(image[:, :, 2:6], str(tmp_path / "short.nii.gz"))
    _dicom_series(sitk.ReadImage(str(tmp_path / "short.nii.gz")), tmp_path / "two", "LGE repeat", 11)
    assert main(["prepare", "--mesh", str(mesh), "--image", str(tmp_path / "two"), "--normalize-intensities",
                 "--output", str(tmp_path / "two.npz")]) == 0
    assert np.load(tmp_path / "two.npz")["slice_labels"].size == 9
    assert "using series 10 'LGE' (9 files) (the others: series 11 'LGE repeat' (4 files))" in capsys.readouterr().err


def test_an_lge_stack_with_one_slice_acquired_again_beside_a_localiser_is_read(trained, tmp_path, capsys):
    """An LGE stack whose slice 4 was acquired a second time (a failed breath-hold), exported with a
    3-file localiser into one folder: the repeated position made round 18's check refuse the LGE as
    a cine and suggest the localiser's file as the LGE; it was read before round 18, and is read
    file by file as in a folder of its own, with the repeat's warning. A cine (every position
    repeated) is still refused, the example naming the LGE and not the smaller localiser."""
    image = sitk.ReadImage(str(trained["paths"]["image"]))
    _dicom_series(image, tmp_path / "exam", "LGE", 10, again=(4,))
    sitk.WriteImage(image[:, :, 0:3], str(tmp_path / "loc.nii.gz"))
    _dicom_series(sitk.ReadImage(str(tmp_path / "loc.nii.gz")), tmp_path / "exam", "LOC", 2)
    assert main(["prepare", "--mesh", str(trained["paths"]["mesh"]), "--image", str(tmp_path / "exam"),
                 "--normalize-intensities", "--output", str(tmp_path / "exam.npz")]) == 0
    err = capsys.readouterr().err
    assert "using series 10 'LGE' (10 files) (the others: series 2 'LOC' (3 files))" in err
    assert "1 file(s) of the DICOM series" in err, err
    _dicom_series(image, tmp_path / "exam", "CINE", 5, frames=2)
    assert_refused_in_one_line(
        ["prepare", "--mesh", trained["paths"]["mesh"], "--image", tmp_path / "exam", "--output", tmp_path / "c.npz"],
        f"the largest, series 5 'CINE' (18 files), has 18 files on a slice position another file holds (a cine's "
        f"time frames, or magnitude and phase images?), so it is not taken for the LGE (the others: series 10 'LGE' "
        f"(10 files); series 2 'LOC' (3 files)): give each series a folder of its own, or pass the LGE series' "
        f"files as images (e.g. --image {tmp_path / 'exam' / 'LGE_'}", capsys, tmp_path)


def _tetra_mesh(mesh: Mesh, cells: np.ndarray) -> Mesh:
    """``mesh``'s nodes and point fields with the tetrahedra ``cells`` (n x 4 node indices)."""
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(mesh.dataset)
    layout = vtk.vtkCellArray()
    layout.SetData(numpy_to_vtk(np.arange(0, 4 * len(cells) + 1, 4), deep=True, array_type=vtk.VTK_ID_TYPE),
                   numpy_to_vtk(cells.ravel(), deep=True, array_type=vtk.VTK_ID_TYPE))
    grid.SetCells(vtk.VTK_TETRA, layout)
    return Mesh(dataset=grid, space=mesh.space)


def test_export_refuses_cells_that_list_a_node_twice(trained, tmp_path, capsys):
    """A tetrahedral mesh one of whose cells in five lists a node twice (``0 1 651 651``: a
    collapsed element, as decimation or a converter leaves them) exported to openCARP and to a
    tagged .vtu with exit 0: elements without volume, which a simulator cannot integrate. Now
    refused by both formats, naming a cell; the mesh itself still exports."""
    mesh = read_mesh(trained["paths"]["mesh"])
    from cardioscar.io.meshio import cell_layout

    offsets, connectivity = cell_layout(mesh.dataset)
    cells = connectivity.reshape(-1, 4).copy()
    cells[::5, 3] = cells[::5, 2]
    scar = mesh.point_array("scar_truth")
    write_mesh(_tetra_mesh(mesh, cells), tmp_path / "collapsed.vtk", {"scar_probability": scar})
    first = " ".join(str(n) for n in cells[0])
    for fmt, output in (("opencarp", "out"), ("vtu", "out.vtu")):
        assert_refused_in_one_line(["export", "--mesh", tmp_path / "collapsed.vtk", "--output", tmp_path / output,
                                    "--format", fmt],
                                   f"collapsed.vtk: {len(cells[::5])} of its {len(cells)} cells list a node twice "
                                   f"(cell 0: nodes {first}), elements without volume", capsys, tmp_path)
    write_mesh(mesh, tmp_path / "whole.vtk", {"scar_probability": scar})
    assert main(["export", "--mesh", str(tmp_path / "whole.vtk"), "--output", str(tmp_path / "whole")]) == 0
    assert int((tmp_path / "whole.elem").read_text().split("\n")[0]) == len(cells)


def test_export_refuses_flat_cells_of_distinct_nodes_but_not_slivers(trained, tmp_path, capsys):
    """Tetrahedra whose four nodes are distinct but coplanar (the fourth at the centroid of the other
    three), or whose fourth node is a copy of the first's position, passed the check above: exported
    to openCARP and a .vtu with exit 0 (the copy warned of as coincident nodes only), elements of zero
    volume. Now refused by both formats, naming a cell; the slivers of a Delaunay mesh of random
    points (volumes down to 1e-6 of their size cubed) are not."""
    from cardioscar.io.meshio import cell_layout
    from cardioscar.simulation.opencarp import cell_volumes, flat_cells

    mesh = read_mesh(trained["paths"]["mesh"])
    points = vtk_to_numpy(mesh.dataset.GetPoints().GetData()).astype(np.float64)
    cells = cell_layout(mesh.dataset)[1].reshape(-1, 4).copy()
    flat = cells[::7]
    extra = np.concatenate([points[flat[:, :3]].mean(axis=1), points[flat[:1, 0]]])
    cells = np.concatenate([cells, np.column_stack([flat[:, :3], len(points) + np.arange(len(flat))]),
                            [[*flat[0, :3], len(points) + len(flat)]]])
    grid = vtk.vtkUnstructuredGrid()
    grid.SetPoints(vtk.vtkPoints())
    # float32, as most meshes are written: rounding leaves a flat cell a little volume, not none
    grid.GetPoints().SetData(numpy_to_vtk(np.concatenate([points, extra]).astype(np.float32), deep=True))
    layout = vtk.vtkCellArray()
    layout.SetData(numpy_to_vtk(np.arange(0, 4 * len(cells) + 1, 4), deep=True, array_type=vtk.VTK_ID_TYPE),
                   numpy_to_vtk(cells.ravel(), deep=True, array_type=vtk.VTK_ID_TYPE))
    grid.SetCells(vtk.VTK_TETRA, layout)
    scar = np.concatenate([mesh.point_array("scar_truth"), np.zeros(len(extra))])
    write_mesh(Mesh(dataset=grid, space=mesh.space), tmp_path / "flat.vtk", {"scar_probability": scar})
    first = len(cells) - len(flat) - 1
    for fmt, output in (("opencarp", "out"), ("vtu", "out.vtu")):
        assert_refused_in_one_line(["export", "--mesh", tmp_path / "flat.vtk", "--output", tmp_path / output,
                                    "--format", fmt],
                                   f"flat.vtk: {len(flat) + 1} of its {len(cells)} cells have no volume (cell {first}: "
                                   f"nodes {' '.join(str(n) for n in cells[first])}), flat elements", capsys, tmp_path)
    rng = np.random.default_rng(0)
    cloud = vtk.vtkPolyData()
    cloud.SetPoints(vtk.vtkPoints())
    cloud.GetPoints().SetData(numpy_to_vtk(rng.random((3000, 3)) * 60 + 100, deep=True))
    delaunay = vtk.vtkDelaunay3D()
    delaunay.SetInputData(cloud)
    delaunay.Update()
    volume, size, _ = cell_volumes(delaunay.GetOutput())
    assert np.min(np.abs(volume) / size ** 3) < 1e-4
    assert not flat_cells(delaunay.GetOutput()).any()


def test_aha_on_a_mesh_without_cells_is_refused_in_one_line(trained, tmp_path, capsys):
    """``aha`` on a prediction written without its cells (a point cloud: ``prepare`` and ``apply`` read
    nodes only, so the chain before it passed) ended in an OverflowError traceback from the shape
    axis's zero weights; now one line naming the mesh."""
    mesh = read_mesh(trained["paths"]["mesh"])
    write_mesh(_tetra_mesh(mesh, np.zeros((0, 4), np.int64)), tmp_path / "points.vtk",
               {"scar_probability": mesh.point_array("scar_truth")})
    point = ",".join(str(v) for v in mesh.points_lps()[0])
    assert_refused_in_one_line(["aha", "--mesh", tmp_path / "points.vtk", "--output-dir", tmp_path / "out",
                                "--rv-point", point],
                               "points.vtk has no cells with a volume or an area (0 cells on its", capsys, tmp_path)


def test_a_checkpoint_whose_node_spacing_is_text_is_refused_in_one_line(trained, tmp_path, capsys):
    """A model whose ``dataset_info.node_spacing_mm`` is text (hand-edited, or another tool's file)
    ended ``apply`` in a ValueError traceback; now one line naming the entry."""
    checkpoint = torch.load(trained["out"] / "model.pth", weights_only=True)
    checkpoint["dataset_info"]["node_spacing_mm"] = "1.2 mm"
    torch.save(checkpoint, tmp_path / "edited.pth")
    assert_refused_in_one_line(["apply", "--model", tmp_path / "edited.pth", "--mesh", trained["paths"]["mesh"],
                                "--output", tmp_path / "out.vtk", "--mc-samples", "2"],
                               "The checkpoint's dataset_info.node_spacing_mm is '1.2 mm', not a number of mm",
                               capsys, tmp_path)


def test_a_checkpoint_node_spacing_of_true_negative_or_infinite_is_refused_a_tensor_read(trained, tmp_path, capsys):
    """Round 18's check took what ``float`` takes: True was read as 1 mm, -3 skipped the spacing check
    without a word, inf blamed the mesh's units ("scale it to millimetres"); each is now refused
    naming the entry, as text is. A 0-d tensor of the right spacing (a file saved by hand with
    torch) and NaN (what a one-node training mesh records) are still applied."""
    checkpoint = torch.load(trained["out"] / "model.pth", weights_only=True)
    recorded = checkpoint["dataset_info"]["node_spacing_mm"]
    for value, shown in ((True, "True"), (-3.0, "-3.0"), (float("inf"), "inf"), (torch.tensor([1.0, 2.0]), "tensor(")):
        torch.save({**checkpoint, "dataset_info": {**checkpoint["dataset_info"], "node_spacing_mm": value}},
                   tmp_path / "edited.pth")
        assert_refused_in_one_line(["apply", "--model", tmp_path / "edited.pth", "--mesh", trained["paths"]["mesh"],
                                    "--output", tmp_path / "out.vtk", "--mc-samples", "2"],
                                   f"The checkpoint's dataset_info.node_spacing_mm is {shown}", capsys, tmp_path)
    for value in (torch.tensor(recorded), float("nan")):
        torch.save({**checkpoint, "dataset_info": {**checkpoint["dataset_info"], "node_spacing_mm": value}},
                   tmp_path / "edited.pth")
        assert main(["apply", "--model", str(tmp_path / "edited.pth"), "--mesh", str(trained["paths"]["mesh"]),
                     "--output", str(tmp_path / "applied.vtk"), "--mc-samples", "2"]) == 0


def test_training_data_of_a_newer_layout_or_another_frame_is_refused(trained, tmp_path, capsys):
    """A ``.npz`` with ``format_version`` 3 (a newer CardioScar's, whose keys may mean other things)
    or ``coordinate_space`` RAS trained without a word; now each is refused naming the key. The
    file as ``prepare`` wrote it (version 2), and one without the keys (the reference tool's), train."""
    arrays = dict(np.load(trained["out"] / "data.npz"))
    for key, value, fragment in (("format_version", np.int64(3), "has format_version 3, newer than this CardioScar "
                                                                  "reads (2)"),
                                 ("coordinate_space", np.asarray("RAS"), "has coordinate_space 'RAS'; training "
                                                                         "data is in LPS")):
        np.savez(tmp_path / "edited.npz", **{**arrays, key: value})
        assert_refused_in_one_line(["train", "--training-data", tmp_path / "edited.npz", "--output",
                                    tmp_path / "out.pth", "--max-epochs", "1"], fragment, capsys, tmp_path)
    np.savez(tmp_path / "plain.npz", **{k: v for k, v in arrays.items() if k not in ("format_version",
                                                                                    "coordinate_space")})
    for data in (trained["out"] / "data.npz", tmp_path / "plain.npz"):
        assert main(["train", "--training-data", str(data), "--output", str(tmp_path / "model.pth"),
                     "--max-epochs", "1", "--preset", "fast"]) == 0


def test_training_data_layout_keys_in_other_spellings(trained, tmp_path, capsys):
    """Round 18's checks read ``coordinate_space`` with ``str``: LPS stored as bytes (numpy "S" text,
    as some tools write it), as a one-element list or in lower case was refused as another frame, and
    ``format_version`` "abc" or 2.5 was called newer than this CardioScar. Each LPS spelling now
    loads; a version that is not a whole number is refused as such; RAS as bytes is still refused."""
    arrays = dict(np.load(trained["out"] / "data.npz"))
    for space in (np.asarray(b"LPS"), np.asarray(["LPS"]), np.asarray("lps")):
        np.savez(tmp_path / "spelled.npz", **{**arrays, "coordinate_space": space})
        assert load_preprocessing_result(tmp_path / "spelled.npz").coordinates.shape == arrays["coordinates"].shape
    for key, value, fragment in (("coordinate_space", np.asarray(b"RAS"), "has coordinate_space 'RAS'; training data "
                                                                          "is in LPS"),
                                 ("format_version", np.asarray("abc"), "has format_version 'abc', not a whole number"),
                                 ("format_version", np.float64(2.5), "has format_version 2.5, not a whole number")):
        np.savez(tmp_path / "edited.npz", **{**arrays, key: value})
        assert_refused_in_one_line(["train", "--training-data", tmp_path / "edited.npz", "--output",
                                    tmp_path / "out.pth", "--max-epochs", "1"], fragment, capsys, tmp_path)


def test_another_stages_file_given_as_the_model_or_the_training_data_is_named(trained, tmp_path, capsys):
    """``apply --model data.npz`` (prepare's file) or a prediction ``.vtk`` (apply's) were called "not
    a valid CardioScar checkpoint (truncated, corrupted ...): retrain or restore a backup", sending
    the user to retrain a model that was fine, and ``train --training-data`` the prediction "holds
    pickled Python objects, which are refused"; now each is named for what it is."""
    assert main(["apply", "--model", str(trained["out"] / "model.pth"), "--mesh", str(trained["paths"]["mesh"]),
                 "--output", str(tmp_path / "prediction.vtk"), "--mc-samples", "2"]) == 0
    for model, fragment in ((trained["out"] / "data.npz", "is training data (a numpy .npz, as 'cardioscar prepare' "
                                                         "writes; it goes to train --training-data), not a trained "
                                                         "model"),
                            (tmp_path / "prediction.vtk", "is a VTK mesh (such as apply's prediction; meshes go to "
                                                          "--mesh), not a trained model")):
        assert_refused_in_one_line(["apply", "--model", model, "--mesh", trained["paths"]["mesh"], "--output",
                                    tmp_path / "out.vtk"], fragment, capsys, tmp_path)
    assert zipfile.is_zipfile(trained["out"] / "model.pth")  # a model is a zip too, and still loads (above)
    assert_refused_in_one_line(["train", "--training-data", tmp_path / "prediction.vtk", "--output",
                                tmp_path / "out.pth"], "prediction.vtk is a VTK mesh (such as apply's prediction), "
                                                      "not training data", capsys, tmp_path)


def test_a_vtk_file_of_another_kind_than_its_suffix_is_named_with_the_suffix_to_give(trained, tmp_path, capsys):
    """A ``.vtu`` saved as ``.vtp`` (and the reverse, a legacy file named ``.vtu``, an XML one named
    ``.vtk``): VTK picks its reader by the suffix, and the file was called "not a valid VTK XML .vtp
    file (corrupted or wrong format)"; now the line says what it holds and the name to give it."""
    mesh = read_mesh(trained["paths"]["mesh"])
    write_mesh(mesh, tmp_path / "heart.vtu")
    write_mesh(mesh, tmp_path / "heart.vtk")
    (tmp_path / "volume.vtp").write_bytes((tmp_path / "heart.vtu").read_bytes())
    (tmp_path / "legacy.vtu").write_bytes((tmp_path / "heart.vtk").read_bytes())
    (tmp_path / "xml.vtk").write_bytes((tmp_path / "heart.vtu").read_bytes())
    for name, fragment in (("volume.vtp", "(it holds a VTK UnstructuredGrid, which is read as .vtu: rename it to "
                                          "volume.vtu)"),
                           ("legacy.vtu", "(it holds a legacy VTK file, which is read as .vtk: rename it to legacy.vtk)"),
                           ("xml.vtk", "(it holds a VTK UnstructuredGrid, which is read as .vtu: rename it to xml.vtu)")):
        assert_refused_in_one_line(["apply", "--model", trained["out"] / "model.pth", "--mesh", tmp_path / name,
                                    "--output", tmp_path / "out.vtk"], fragment, capsys, tmp_path)


def test_export_checks_its_output_place_before_any_work(trained, tmp_path, capsys):
    """``export --output`` where no file can be created (``/proc``, as a read-only folder) read the
    mesh, tagged it and ran the fibre rule before "Could not write /proc/heart.pts"; every other verb
    refuses such an output before any work. Now ``export`` does too: the mesh is not read."""
    mesh = read_mesh(trained["paths"]["mesh"])
    write_mesh(mesh, tmp_path / "prediction.vtk", {"scar_probability": mesh.point_array("scar_truth")})
    for fmt, output in (("opencarp", "/proc/heart"), ("vtu", "/proc/heart.vtu")):
        capsys.readouterr()
        assert main(["export", "--mesh", str(tmp_path / "prediction.vtk"), "--output", output, "--format", fmt]) == 2
        stderr = capsys.readouterr().err
        assert error_lines(stderr) == [line for line in stderr.splitlines() if "cannot create files in /proc" in line]
        assert "Read mesh" not in stderr


def test_apply_refuses_a_vtp_output_for_a_volume_mesh_before_inference(trained, tmp_path, capsys, monkeypatch):
    """``apply --output pred.vtp`` with a tetrahedral mesh was refused ("Cannot write a
    vtkUnstructuredGrid as pred.vtp") only when writing, after the MC passes over every node
    (minutes on a million-node mesh); now before the model is applied."""
    import cardioscar.logic

    def must_not_run(*args, **kwargs):
        raise AssertionError("inference ran before the output was checked")

    monkeypatch.setattr(cardioscar.logic, "apply_scar_model", must_not_run)
    assert_refused_in_one_line(["apply", "--model", trained["out"] / "model.pth", "--mesh", trained["paths"]["mesh"],
                                "--output", tmp_path / "out.vtp"],
                               "Cannot write a vtkUnstructuredGrid as out.vtp; use .vtu or .vtk", capsys, tmp_path)
