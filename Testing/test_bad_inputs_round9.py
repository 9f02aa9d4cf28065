"""Round 9 of silent wrong answers: the gaps round 8's review left open.

* a small heart (a child's, a small adult's: a cavity under the 13 mm disc the checks looked for):
  its cavity given as the scar passed, and the whole-wall ring check never ran;
* LGE quantised to 4 bits (16 values or fewer) or smoothed, given as the label map;
* ``--scar-labels`` mistyped with ``--myocardium-mask``: only the scar-free warning;
* ``export``: a sheet direction that is not perpendicular to its fibre.

A small heart here is EMIDEC's P001 with its pixel spacing scaled by 0.4 (its cavity's widest disc
20 mm -> 8 mm in radius, a 16 mm cavity), as a child's scan at a finer in-plane resolution holds
it. Real parts: EMIDEC's maps and LGE from the shared data folder (never copied), meshes made by
``cardioscar mesh-from-labels``, the real command line.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardioscar.cli import main
from conftest import assert_refused_in_one_line
from test_bad_inputs_round7 import _mesh, _warnings
from test_bad_inputs_round8 import P001, _write_like, p001  # noqa: F401 (p001: the module fixture)

SMALL = 0.4


@pytest.fixture(scope="module")
def small_heart(shared_data, tmp_path_factory):
    """P001's label map at 0.4 of its spacing (its values and the mesh made from it)."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(shared_data / P001 / "Contours" / "Case_P001.nii.gz"))
    spacing = image.GetSpacing()
    image.SetSpacing((spacing[0] * SMALL, spacing[1] * SMALL, spacing[2] * SMALL))
    folder = tmp_path_factory.mktemp("round9_small")
    path = folder / "small.nii.gz"
    sitk.WriteImage(image, str(path))
    return image, path, _mesh(path, folder, "2,3,4")


def test_a_small_hearts_cavity_given_as_the_scar_is_refused(small_heart, tmp_path, capsys):
    """``--scar-labels 1`` (EMIDEC's cavity) on the small heart: its widest disc is 8 mm, under the
    13 mm the cavity check asked for, so the blood pool trained as scar, exit 0. Now refused: the
    label fills the ring of the others and is wider than any of them on over half of its slices
    (EMIDEC's cavity on 80-100 % of its slices at any size; the scar 3,4 on none)."""
    _, path, mesh = small_heart
    assert_refused_in_one_line(["prepare", "--mesh", mesh, "--image", path, "--scar-labels", "1", "--output",
                                tmp_path / "out.npz"], "the cavity (blood pool) of a small heart", capsys, tmp_path)
    assert main(["prepare", "--mesh", str(mesh), "--image", str(path), "--scar-labels", "3,4", "--myocardium-labels",
                 "2,3,4", "--output", str(tmp_path / "right.npz")]) == 0


def test_a_small_hearts_myocardium_labels_are_checked_for_the_whole_wall(small_heart, tmp_path, capsys):
    """The small heart renumbered one below EMIDEC's without a cavity label (1 myocardium, 2
    infarct, 3 no-reflow) given EMIDEC's ``--myocardium-labels 2,3,4``: the whole-wall check counted
    rings only around a 13 mm disc, so on a small heart it never ran and the infarct alone was kept
    as the myocardium, exit 0 (round 8 refused it at full size). Now the ring is judged by cover."""
    import SimpleITK as sitk

    image, _, mesh = small_heart
    values = sitk.GetArrayFromImage(image)
    below = _write_like(np.where(values >= 2, values - 1, 0).astype(np.uint8), image, tmp_path / "below.nii.gz")
    assert_refused_in_one_line(["prepare", "--mesh", mesh, "--image", below, "--scar-labels", "3,4",
                                "--myocardium-labels", "2,3,4", "--output", tmp_path / "out.npz"],
                               "part of the myocardium, not all of it", capsys, tmp_path)


def _quantised(lge, levels: int) -> np.ndarray:
    """P001's LGE scaled over its range to ``levels`` whole values (0 .. levels - 1)."""
    import SimpleITK as sitk

    values = sitk.GetArrayFromImage(lge).astype(float)
    return np.round((values - values.min()) / (values.max() - values.min()) * (levels - 1)).astype(np.uint8)


def _smoothed_8_bits(lge, sigma: float) -> np.ndarray:
    """P001's LGE in 8 bits as round 8 made it (its 2048 offset taken off, divided by 8), smoothed
    in-plane by ``sigma`` pixels (a viewer's or a script's denoising)."""
    import SimpleITK as sitk
    from scipy import ndimage

    eight = np.minimum(np.clip(sitk.GetArrayFromImage(lge).astype(float) - 2048, 0, None) / 8, 255)
    return np.round(ndimage.gaussian_filter(eight, (0, sigma, sigma))).astype(np.uint8)


def test_lge_in_4_bits_or_smoothed_given_as_the_label_map_is_refused(shared_data, p001, tmp_path, capsys):  # noqa: F811
    """P001's LGE in 4 bits (16 values: under round 8's 17, so not judged) and in 8 bits smoothed
    by 2 pixels (grey values in bands, so few stood alone: passed, as on 10 of 15 EMIDEC stacks)
    given with ``--scar-labels 3,4``: a band of dark grey trained as scar, or the run failed blaming
    the mesh. Refused: their values ramp in 14 and more ways (a < b < c side by side); a label
    map's in at most 6 (EMIDEC's 75, ACDC's 2)."""
    import SimpleITK as sitk

    lge = sitk.ReadImage(str(shared_data / P001 / "Images" / "Case_P001.nii.gz"))
    _, _, mesh = p001
    for name, values in (("lge4.nii.gz", _quantised(lge, 16)), ("lge8_smooth.nii.gz", _smoothed_8_bits(lge, 2.0))):
        image = _write_like(values, lge, tmp_path / name)
        assert_refused_in_one_line(["prepare", "--mesh", mesh, "--image", image, "--scar-labels", "3,4", "--output",
                                    tmp_path / "out.npz"], "an intensity image (LGE in 4 bits, or smoothed?)", capsys,
                                   tmp_path)


def test_a_mistyped_scar_label_with_a_myocardium_mask_is_refused(shared_data, p001, tmp_path, capsys):  # noqa: F811
    """``--scar-labels 5`` on P001's map (scar 3,4) with its myocardium as ``--myocardium-mask``:
    a scar-free heart, a warning, and the infarct trained as healthy, exit 0. Now refused, naming
    the labels the mask holds (2, 3, 4); a normal control's map (EMIDEC N020, labels 0-2) still
    trains a scar-free heart with the warning."""
    _, labels, mesh = p001
    mask = ["--myocardium-mask", labels, "--myocardium-labels", "2,3,4"]
    assert_refused_in_one_line(["prepare", "--mesh", mesh, "--image", labels, "--scar-labels", "5", *mask, "--output",
                                tmp_path / "out.npz"], "yet the myocardium mask holds this map's labels 2, 3, 4",
                               capsys, tmp_path)
    # the message also names the scar-free heart's way into it: a mask that reaches the cavity
    assert_refused_in_one_line(["prepare", "--mesh", mesh, "--image", labels, "--scar-labels", "5", *mask, "--output",
                                tmp_path / "out.npz"], "the mask reaches beyond the myocardium (into the cavity)",
                               capsys, tmp_path)
    normal = shared_data / "emidec" / "Case_N020" / "Contours" / "Case_N020.nii.gz"
    capsys.readouterr()
    assert main(["prepare", "--mesh", str(_mesh(normal, tmp_path, "2")), "--image", str(normal), "--scar-labels", "3,4",
                 "--myocardium-mask", str(normal), "--myocardium-labels", "2", "--output",
                 str(tmp_path / "normal.npz")]) == 0
    assert _warnings(capsys.readouterr().err, "a scar-free heart")


def test_a_circumferential_scar_stays_a_warning(p001, caplog):  # noqa: F811
    """Decided: scar labels lining most of the heart's outer border, or ringing the cavity, stay a
    warning (rounds 7 and 8), not a refusal, because real scars do so: a diffuse subepicardial
    scar (myocarditis), a circumferential one (cardiac amyloidosis). P001 with its healthy wall
    given as scar 3 on every slice (a scar all round, the map's own numbers) warns and is not refused."""
    import logging

    import SimpleITK as sitk

    from cardioscar.prepare.slices import slices_from_image
    from cardioscar.prepare.targets import check_scar_labels

    from test_bad_inputs_round8 import _like

    image, _, _ = p001
    values = sitk.GetArrayFromImage(image)
    ringed = np.where(values == 2, 3, values).astype(np.uint8)
    with caplog.at_level(logging.WARNING, logger="cardioscar"):
        check_scar_labels(slices_from_image(_like(ringed, image)), [3, 4])
    assert "check the map's numbering" in caplog.text  # the outer-border warning (round 7)


def _fibre_mesh(tmp_path: Path, sheet: np.ndarray) -> Path:
    """A small tetrahedral prediction whose cells carry fibre (0, 0.6, 0.8) and ``sheet``."""
    from vtk.util.numpy_support import numpy_to_vtk

    from cardioscar.io.meshio import write_mesh
    from test_simulation_export import _tet_mesh

    mesh = _tet_mesh()
    n = mesh.dataset.GetNumberOfCells()
    array = numpy_to_vtk(np.tile(np.concatenate([[0.0, 0.6, 0.8], sheet]), (n, 1)), deep=1)
    array.SetName("fibres")
    mesh.dataset.GetCellData().AddArray(array)
    path = tmp_path / "pred.vtk"
    write_mesh(mesh, path, {"scar_probability": np.zeros(mesh.n_points)})
    return path


def test_a_sheet_not_perpendicular_to_its_fibre_is_refused_or_made_so(tmp_path, capsys):
    """``export --fibres`` with a sheet 30 degrees off perpendicular (components in another order,
    the fibre field twice): the .lon held it, and a simulator's orthonormal frame from it was not
    orthonormal, exit 0. Refused, naming an element. A sheet 3 degrees off (a cell average of node
    frames) is written perpendicular, with a warning."""
    tilt = np.radians(30.0)
    leaning = np.cos(tilt) * np.array([1.0, 0.0, 0.0]) + np.sin(tilt) * np.array([0.0, 0.6, 0.8])
    path = _fibre_mesh(tmp_path, leaning)
    assert_refused_in_one_line(["export", "--mesh", path, "--output", tmp_path / "model", "--fibres", "fibres"],
                               "sheet direction leans 30 degrees from perpendicular", capsys, tmp_path)
    tilt = np.radians(3.0)
    path = _fibre_mesh(tmp_path, np.cos(tilt) * np.array([1.0, 0.0, 0.0]) + np.sin(tilt) * np.array([0.0, 0.6, 0.8]))
    capsys.readouterr()
    assert main(["export", "--mesh", str(path), "--output", str(tmp_path / "model"), "--fibres", "fibres"]) == 0
    assert _warnings(capsys.readouterr().err, "sheet made perpendicular")
    lon = (tmp_path / "model.lon").read_text(encoding="utf-8").split("\n")
    row = np.array([float(v) for v in lon[1].split()])
    assert abs(row[:3] @ row[3:]) < 1e-5 and abs(np.linalg.norm(row[3:]) - 1.0) < 1e-5
