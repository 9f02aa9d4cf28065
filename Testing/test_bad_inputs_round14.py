"""Round 14 of the bad-input review: the stages after the fit (channels, aha, mesh-from-labels, Attri-VAE).

Each test is one input a user could give that ran to exit 0 with a wrong or misleading result (or
was refused for the wrong reason) before this round; the *Bad input* table (Documentation/bad-input.md) has a row for each.
Real parts: the channel tests' tetrahedral wall lattice (``test_channels.Wall``) written to real
``.vtu`` files, the phantom, EMIDEC's P001 and P010 from the shared data, the real command line in
process, and the session's tiny Attri-VAE checkpoint.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import numpy_to_vtk

from cardioscar.aha import analyse_mesh
from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh
from cardioscar.simulation.channels import ChannelOptions, run_channels
from cardioscar.simulation.opencarp import TAG_ARRAY
from conftest import assert_refused_in_one_line, error_lines
from test_aha import _options, analytic_segments
from test_bad_inputs_round10 import _unmerged
from test_channels import Wall, _write


@pytest.fixture(scope="module")
def wall() -> Wall:
    return Wall(3000)


def _scaled(wall: Wall, factor: float) -> Wall:
    """The wall with every coordinate times ``factor`` (the same mesh in other units)."""
    scaled = Wall.__new__(Wall)
    scaled.__dict__.update(wall.__dict__)
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(wall.grid)
    grid.GetPoints().SetData(numpy_to_vtk(np.ascontiguousarray(wall.points * factor), deep=True))
    scaled.grid = grid
    return scaled


@pytest.mark.parametrize("factor", [0.001, 1000.0])
def test_channels_of_a_mesh_in_metres_or_micrometres_are_refused(wall, tmp_path, capsys, factor):
    """In metres the search found no channel through the painted corridor, exit 0; in micrometres
    (openCARP's unit) it was refused as 'a ball-like shape'. Now the unit check export and aha make."""
    path = tmp_path / "tagged.vtu"
    _write(_scaled(wall, factor), path, {TAG_ARRAY: wall.tags()})
    assert_refused_in_one_line(["channels", "--mesh", path, "--output-dir", tmp_path / "out_channels"],
                               "scale a mesh in metres or micrometres to millimetres before the channel search",
                               capsys, tmp_path)


def test_channels_of_a_mesh_whose_cells_share_no_node_are_refused(wall, tmp_path, capsys):
    """Each element's corners written apart: no path joins one cell to the next, so the search
    found no channel, exit 0 (as aha and export refuse such a mesh)."""
    grid = vtk.vtkUnstructuredGrid()
    grid.DeepCopy(wall.grid)
    array = numpy_to_vtk(wall.tags().astype(np.float64), deep=True)
    array.SetName(TAG_ARRAY)
    grid.GetPointData().AddArray(array)
    path = tmp_path / "unmerged.vtu"
    write_mesh(_unmerged(Mesh(dataset=grid, space="LPS")), path)
    assert_refused_in_one_line(["channels", "--mesh", path, "--output-dir", tmp_path / "out_channels", "--tags",
                                "1,2,3"], "cells share no node", capsys, tmp_path)
    with pytest.raises(CardioScarError, match="run the channel search again"):
        run_channels(path, None, ChannelOptions(layers=(0.1,)), tag_values=(1, 2, 3))


def test_the_same_wall_in_millimetres_still_has_its_channel(wall, tmp_path):
    path = tmp_path / "tagged.vtu"
    _write(wall, path, {TAG_ARRAY: wall.tags()})
    assert len(run_channels(path, None, ChannelOptions(layers=(0.1,))).channels) == 1


@pytest.fixture(scope="module")
def lad():
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom

    return make_phantom(PhantomConfig(target_nodes=3000, seed=0, territories=("LAD",)))


def _apex_and_base(phantom) -> np.ndarray:
    geometry = phantom.geometry
    return geometry.to_lps(np.array([[0.0, 0.0, -geometry.c_epi], [0.0, 0.0, 0.0]]))


def test_aha_apex_and_base_read_in_the_other_frame_are_refused(lad, tmp_path, capsys):
    """Apex and base read off 3D Slicer (RAS) for an LPS mesh: the axis ran about 50 mm beside the
    cavity and 60 % of the nodes fell in another segment, exit 0 (only the RV points were checked)."""
    apex, base = _apex_and_base(lad)
    mesh = Mesh(dataset=lad.mesh, space="LPS")
    assert (analyse_mesh(mesh, _options(lad, apex=apex, base=base)).point_segments
            == analytic_segments(lad, lad.points_lps)).mean() > 0.95
    mirror = np.array([-1.0, -1.0, 1.0])
    with pytest.raises(CardioScarError, match="passes .* mm from the LV's centre.*negate X and Y"):
        analyse_mesh(mesh, _options(lad, apex=apex * mirror, base=base * mirror))
    with pytest.raises(CardioScarError, match=r"passes .* mm from the LV's centre .*own coordinates$"):
        analyse_mesh(mesh, _options(lad, apex=apex + [60.0, 0.0, 0.0], base=base + [60.0, 0.0, 0.0]))
    path = tmp_path / "lad.vtu"
    write_mesh(mesh, path, {"scar_truth": lad.truth})
    options = _options(lad)
    point = lambda p: ",".join(f"{v:.3f}" for v in p)  # noqa: E731
    assert_refused_in_one_line(["aha", "--mesh", path, "--output-dir", tmp_path / "out_aha", "--field", "scar_truth",
                                "--rv-point", point(options.rv_point), "--rv-inferior-point",
                                point(options.rv_inferior_point), "--apex", point(apex * mirror),
                                "--base", point(base * mirror)], "negate X and Y", capsys, tmp_path)


@pytest.fixture(scope="module")
def p001_labels(shared_data):
    return shared_data / "emidec" / "Case_P001" / "Contours" / "Case_P001.nii.gz"


def test_mesh_from_labels_names_a_voxel_as_thick_as_the_wall(p001_labels, tmp_path, capsys):
    """``--spacing 10`` (the slices' spacing, not the mesh's voxel edge): P001's mesh of 200 voxels,
    one through its wall, without a word; now a warning (a coarse mesh may be meant)."""
    from cardioscar.cli import main

    assert main(["mesh-from-labels", "--labels", str(p001_labels), "--spacing", "10", "--output",
                 str(tmp_path / "coarse.vtu")]) == 0
    assert read_mesh(tmp_path / "coarse.vtu").dataset.GetNumberOfCells() == 200
    named = [line for line in capsys.readouterr().err.splitlines() if "over half the myocardium's thickness" in line]
    assert len(named) == 1 and "about 10.4 mm" in named[0] and "not the slices' spacing" in named[0]
    assert main(["mesh-from-labels", "--labels", str(p001_labels), "--spacing", "3", "--output",
                 str(tmp_path / "fine.vtu")]) == 0
    assert "thickness" not in capsys.readouterr().err


@pytest.fixture(scope="module")
def one_slice_case(shared_data, tmp_path_factory):
    """EMIDEC P010's LGE and labels cut to slice 3 (a stack exported as its middle slice)."""
    folder = tmp_path_factory.mktemp("one_slice")
    for kind, name in (("Images", "lge.nii.gz"), ("Contours", "labels.nii.gz")):
        image = sitk.ReadImage(str(shared_data / "emidec" / "Case_P010" / kind / "Case_P010.nii.gz"))
        sitk.WriteImage(image[:, :, 3:4], str(folder / name))
    return folder / "lge.nii.gz", folder / "labels.nii.gz"


def test_attrivae_refuses_an_lv_outlined_on_one_slice(one_slice_case, attrivae_model, tmp_path, capsys):
    """The one slice was resized through the whole cube and read as a heart: an MI probability and
    attributes, exit 0."""
    from cardioscar.attrivae.preprocess import LabelConvention, PreprocessConfig, prepare_case

    image, labels = one_slice_case
    with pytest.raises(CardioScarError, match=r"outlines the LV on 1 slice\(s\).*give the whole stack"):
        prepare_case(image, labels, LabelConvention(), PreprocessConfig(cube=16))
    from cardioscar.cli import main

    capsys.readouterr()
    assert main(["attrivae", "predict", "--model", str(attrivae_model), "--image", str(image), "--labels",
                 str(labels), "--device", "cpu"]) != 0
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "on 1 slice(s)" in errors[0], errors
    assert not json.dumps(errors).count("mi_probability")


def test_the_batch_script_refuses_an_unmerged_mesh_before_its_fit(wall, small_phantom, tmp_path, capsys):
    """The batch script's ``--channels-dir`` checks the mesh before the training (as a cohort row's
    ``channels`` does): it trained, tagged and wrote ``--output`` and the search found no channel,
    exit 0. (A mesh in metres was refused already, by the preparation's scale check.)"""
    from test_batch_script import _load_script

    path = tmp_path / "mesh.vtu"
    write_mesh(_unmerged(Mesh(dataset=wall.grid, space="LPS")), path)
    _, paths = small_phantom
    status = _load_script().run(["--volume", str(paths["image"]), "--mesh", str(path), "--output",
                                 str(tmp_path / "scar.vtu"), "--channels-dir", str(tmp_path / "channels"),
                                 "--preset", "fast", "--max-epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert status == 2 and len(err) == 1 and "cells share no node" in err[0], err
    assert not (tmp_path / "scar.vtu").exists() and not (tmp_path / "channels").exists()
