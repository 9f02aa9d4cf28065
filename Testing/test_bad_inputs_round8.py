"""Round 8 of silent wrong answers: label maps that are not what their numbers say.

* LGE in 8 bits (256 or fewer grey values a slice) given as the label map with ``--scar-labels``:
  round 7 refuses a slice of over 256 values only; its dark pixels of value 3 and 4 became scar;
* a map numbered one below EMIDEC's, without a cavity label (1 myocardium, 2 infarct, 3 no-reflow),
  given EMIDEC's numbers: the infarct alone kept as "myocardium" and trained healthy around a
  no-reflow "scar"; ACDC's ``--myocardium-labels 2`` meshing an EMIDEC map without its infarct;
  the scar labels closing the ring around the cavity (the myocardium given as the scar);
* a label map resampled with linear interpolation: ``aha --labels`` numbered the ring backwards,
  ``--normalize-intensities`` (which the ``--scar-labels`` error advised) graded its labels as LGE.

Real parts: EMIDEC's P001 and ACDC's patient 101 (read from the shared data folder, never copied),
meshes built by ``cardioscar mesh-from-labels``, the real command line.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from cardioscar.cli import main
from conftest import assert_refused_in_one_line
from test_bad_inputs_round7 import _mesh, _warnings

P001 = Path("emidec") / "Case_P001"


def _like(array: np.ndarray, like):
    """``array`` as a SimpleITK image with the geometry of the image ``like``."""
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.CopyInformation(like)
    return image


def _write_like(array: np.ndarray, like, path: Path) -> Path:
    """``array`` written to ``path`` with the geometry of the SimpleITK image ``like``."""
    import SimpleITK as sitk

    sitk.WriteImage(_like(array, like), str(path))
    return path


@pytest.fixture(scope="module")
def p001(shared_data, tmp_path_factory):
    """EMIDEC P001's label map (its image read once), the map's path and a mesh made from it."""
    import SimpleITK as sitk

    labels = shared_data / P001 / "Contours" / "Case_P001.nii.gz"
    return sitk.ReadImage(str(labels)), labels, _mesh(labels, tmp_path_factory.mktemp("round8_p001"), "2,3,4")


def test_lge_in_8_bits_given_as_the_label_map_is_refused(shared_data, p001, tmp_path, capsys):
    """P001's LGE with its 2048 offset taken off, in 8 bits (at most 256 values a slice: round 7's
    check let it through), given with ``--scar-labels 3,4``: its scattered dark pixels of value 3
    and 4 became 5,854 "scar" pixels and the run failed blaming the mesh's patient or frame (with
    the myocardium mask: blaming the mask). Refused as an intensity image: many values on a slice
    and most scar pixels alone (EMIDEC's 75 stacks scaled to 8 bits four ways, whole or cropped to
    the heart: all refused; a label map's labels stand alone under 2 %), however few the pixels."""
    import SimpleITK as sitk

    lge = sitk.ReadImage(str(shared_data / P001 / "Images" / "Case_P001.nii.gz"))
    eight = np.clip(sitk.GetArrayFromImage(lge) - 2048, 0, None) // 8
    image = _write_like(np.minimum(eight, 255).astype(np.uint8), lge, tmp_path / "lge8.nii.gz")
    _, _, mesh = p001
    assert_refused_in_one_line(["prepare", "--mesh", mesh, "--image", image, "--scar-labels", "3,4", "--output",
                                tmp_path / "out.npz"], "an intensity image (LGE in 8 bits?), not a label map",
                               capsys, tmp_path)
    # P003's PSIR stack scaled to 8 bits over its whole range: zero signal mid-range, one air pixel
    # of value 3 or 4, too few for the mesh check: a scar-free heart, exit 0 on main
    psir = sitk.ReadImage(str(shared_data / "emidec" / "Case_P003" / "Images" / "Case_P003.nii.gz"))
    values = sitk.GetArrayFromImage(psir)
    whole = np.round((values - values.min()) / (values.max() - values.min()) * 255).astype(np.uint8)
    image = _write_like(whole, psir, tmp_path / "psir8.nii.gz")
    assert_refused_in_one_line(["prepare", "--mesh", mesh, "--image", image, "--scar-labels", "3,4", "--output",
                                tmp_path / "out.npz"], "100 % of the pixels with these values stand alone", capsys,
                               tmp_path)


def test_a_label_map_of_many_labels_is_not_taken_for_an_intensity_image(p001):
    """A map with 20 more labels (structures drawn beside the heart) keeps its labels in regions:
    not refused, and the scar labels pass every label check."""
    import SimpleITK as sitk

    from cardioscar.prepare.slices import slices_from_image
    from cardioscar.prepare.targets import check_scar_labels

    image, _, _ = p001
    values = sitk.GetArrayFromImage(image).astype(np.int16)
    for k in range(20):  # 20 labelled squares along the top edge, far from the heart
        values[:, 2:8, 2 + 10 * k:8 + 10 * k] = 10 + k
    check_scar_labels(slices_from_image(_like(values, image)), [3, 4])


def test_a_map_numbered_one_below_emidec_without_a_cavity_label_is_refused(p001, tmp_path, capsys):
    """P001 renumbered 1 myocardium, 2 infarct, 3 no-reflow, the cavity unlabelled (as a tool that
    writes the wall alone may), given EMIDEC's ``--scar-labels 3,4 --myocardium-labels 2,3,4``:
    the "myocardium" was the infarct alone, trained healthy around the no-reflow "scar", and the
    healthy wall dropped (3,851 rows, mean target 0.36), silent. Refused: those labels close the
    ring around the cavity on 2 of 10 slices where the map's wall does (the right labels: on all of
    them on EMIDEC's 75 and ACDC's maps). The map's own numbers pass."""
    import SimpleITK as sitk

    image, _, mesh = p001
    values = sitk.GetArrayFromImage(image)
    shifted = _write_like(np.where(values >= 2, values - 1, 0).astype(np.uint8), image, tmp_path / "below.nii.gz")
    common = ["prepare", "--mesh", mesh, "--image", shifted]
    assert_refused_in_one_line([*common, "--scar-labels", "3,4", "--myocardium-labels", "2,3,4", "--output",
                                tmp_path / "out.npz"], "close the ring around the cavity on 2 of the 10 slices",
                               capsys, tmp_path)
    assert main([str(a) for a in [*common, "--scar-labels", "2,3", "--myocardium-labels", "1,2,3", "--output",
                                  tmp_path / "right.npz"]]) == 0


def test_mesh_from_labels_with_acdcs_myocardium_number_on_an_emidec_map_is_refused(p001, tmp_path, capsys):
    """``mesh-from-labels --myocardium-labels 2`` (ACDC's myocardium) on EMIDEC's P001 meshed the
    healthy wall without the infarct (5,504 nodes for 10,974), silent; round 4 left it, since the
    labels alone cannot tell. Its ring can: label 2 closes it on none of P001's 9 slices where the
    wall (2, 3, 4) does (under 3/4 of them on 45 of EMIDEC's 52 infarct maps)."""
    _, labels, _ = p001
    assert_refused_in_one_line(["mesh-from-labels", "--labels", labels, "--myocardium-labels", "2", "--spacing", "3",
                                "--output", tmp_path / "out.vtu"], "the mesh would leave the rest out", capsys,
                               tmp_path)


def test_mesh_from_labels_leaving_the_no_reflow_out_is_named(p001, tmp_path, capsys):
    """``--myocardium-labels 2,3`` on P001 (its no-reflow 4 left out, or typed 2,3,5): the ring
    closes, yet the mesh has a hole in its wall where the infarct's core is (5,943 voxels for
    7,454), silent. Now a warning names label 4: over half of the pixels around it are myocardium
    labels (EMIDEC's 32 maps with no-reflow: 55-100 %)."""
    _, labels, _ = p001
    capsys.readouterr()
    assert main(["mesh-from-labels", "--labels", str(labels), "--myocardium-labels", "2,3", "--spacing", "3",
                 "--output", str(tmp_path / "holed.vtu")]) == 0
    warned = _warnings(capsys.readouterr().err, "lies inside the wall")
    assert len(warned) == 1 and warned[0].startswith("Label 4 ") and "the mesh has a hole there" in warned[0], warned


def test_scar_labels_that_ring_the_cavity_are_named(p001, tmp_path, capsys):
    """A map numbered one above EMIDEC's without cavity or no-reflow labels (3 myocardium, 4
    infarct) given ``--scar-labels 3,4``, or a 0/1 myocardium mask given as the scar map with
    ``--scar-labels 1``: the whole wall trained as scar, silent (no other label for round 7's
    outer-border check to compare with). Now a warning: the scar labels close the ring around the
    cavity on most slices, which EMIDEC's scar does on at most one slice of a stack (P001, whose
    scar rings one of its 10 slices, stays quiet)."""
    import SimpleITK as sitk

    image, labels, mesh = p001
    values = sitk.GetArrayFromImage(image)
    above = _write_like(np.where(values >= 2, np.minimum(values + 1, 4), 0).astype(np.uint8), image,
                        tmp_path / "above.nii.gz")
    wall = _write_like((values >= 2).astype(np.uint8), image, tmp_path / "wall.nii.gz")
    for scar_map, scar in ((above, "3,4"), (wall, "1")):
        capsys.readouterr()
        assert main(["prepare", "--mesh", str(mesh), "--image", str(scar_map), "--scar-labels", scar, "--output",
                     str(tmp_path / "wrong.npz")]) == 0
        warned = _warnings(capsys.readouterr().err, "close a ring around the cavity on")
        assert len(warned) == 1 and f"--scar-labels {scar} " in warned[0], warned
    assert main(["prepare", "--mesh", str(mesh), "--image", str(labels), "--scar-labels", "3,4", "--output",
                 str(tmp_path / "right.npz")]) == 0
    assert not _warnings(capsys.readouterr().err, "ring around the cavity")


def _linear(image, factor: float):
    """``image`` resampled in-plane onto a grid ``factor`` times finer with linear interpolation
    (a label map resampled with a viewer's or a script's default)."""
    import SimpleITK as sitk

    size, spacing = image.GetSize(), image.GetSpacing()
    grid = sitk.Image([int(size[0] * factor), int(size[1] * factor), size[2]], sitk.sitkFloat32)
    grid.SetSpacing((spacing[0] / factor, spacing[1] / factor, spacing[2]))
    grid.SetOrigin(image.GetOrigin())
    grid.SetDirection(image.GetDirection())
    return sitk.Resample(sitk.Cast(image, sitk.sitkFloat32), grid, sitk.Transform(), sitk.sitkLinear, 0.0)


def test_a_label_map_resampled_linearly_is_named_for_prepare(p001, tmp_path, capsys):
    """P001's map resampled linearly (0.7 % of its pixels between labels): ``--scar-labels`` was
    refused with the advice to use ``--normalize-intensities``, which then graded the labels as LGE
    (the myocardium 2 of 0..4 a 0.5 scar; mean target 0.50), silent. Both now name the linear
    resampling and the fix, nearest neighbour."""
    import SimpleITK as sitk

    image, _, mesh = p001
    linear = tmp_path / "linear.nii.gz"
    sitk.WriteImage(_linear(image, 1.25), str(linear))
    common = ["prepare", "--mesh", mesh, "--image", linear, "--output", tmp_path / "out.npz"]
    assert_refused_in_one_line([*common, "--scar-labels", "3,4"], "a label map resampled with linear interpolation; "
                               "resample it with nearest neighbour", capsys, tmp_path)
    assert_refused_in_one_line([*common, "--normalize-intensities"], "as a linear resampling leaves: resample the "
                               "label map with nearest neighbour", capsys, tmp_path)


def test_aha_labels_resampled_linearly_are_refused(tmp_path, capsys):
    """ACDC's map resampled linearly onto a grid twice as fine, as ``aha --labels``: the RV's contact
    with the myocardium read from values between labels put the insertions the other way round
    (numbering counter-clockwise, 15 % of the nodes in the segment the true map gives), exit 0.
    Refused, as masks and ``mesh-from-labels`` refuse such a map."""
    import SimpleITK as sitk
    import vtk

    from cardioscar.aha.insertion import ijk_to_lps_of
    from test_aha import ACDC_LABELS, voxel_mesh

    image = sitk.ReadImage(str(ACDC_LABELS))
    writer = vtk.vtkXMLUnstructuredGridWriter()
    writer.SetFileName(str(tmp_path / "heart.vtu"))
    writer.SetInputData(voxel_mesh(sitk.GetArrayFromImage(image), ijk_to_lps_of(image), 2))
    writer.Write()
    sitk.WriteImage(_linear(image, 2.0), str(tmp_path / "linear.nii.gz"))
    assert_refused_in_one_line(["aha", "--mesh", tmp_path / "heart.vtu", "--labels", tmp_path / "linear.nii.gz",
                                "--slice-normal-from", ACDC_LABELS, "--output-dir", tmp_path / "out"],
                               "resample a label map with nearest neighbour", capsys, tmp_path)


def test_the_label_checks_pass_every_real_map(shared_data, caplog):
    """The new checks never refuse nor warn on a real expert map: every 10th of EMIDEC's 75 (with
    and without its cavity label) with scar 3,4 and myocardium 2,3,4, ACDC's two frames with
    myocardium 2 (all 75 were measured for the thresholds; 8 keep the test cheap)."""
    import SimpleITK as sitk

    from cardioscar.prepare.myocardium import check_whole_wall
    from cardioscar.prepare.slices import slices_from_image
    from cardioscar.prepare.targets import refuse_intensities_as_labels, warn_scar_rings

    maps = sorted((shared_data / "emidec").glob("Case_*/Contours/*.nii.gz"))[::10]
    acdc = sorted((shared_data / "acdc_patient101").glob("*_gt.nii.gz"))
    caplog.set_level(logging.WARNING, logger="cardioscar")
    for path in [*maps, *acdc]:
        image = sitk.ReadImage(str(path))
        values = sitk.GetArrayFromImage(image)
        variants = [values] if path in acdc else [values, np.where(values == 1, 0, values)]
        for variant in variants:
            layers = slices_from_image(_like(variant, image))
            caplog.clear()
            check_whole_wall([layer.values for layer in layers], [2] if path in acdc else [2, 3, 4],
                                    [layer.spacing for layer in layers], "--myocardium-labels")
            if path not in acdc and (variant >= 3).any():
                refuse_intensities_as_labels(layers, [3, 4])
                assert not warn_scar_rings(layers, [3, 4]), path
            assert not [r for r in caplog.records if r.levelno >= logging.WARNING], (path, caplog.text)


def test_a_small_hearts_cavity_is_not_named_as_lying_inside_the_wall(shared_data, tmp_path, capsys):
    """EMIDEC's P003 shrunk 0.6x with nearest neighbour (a small heart: its cavity under 13 mm in
    radius, as 28 of the 75 maps shrunk so, and 4 shrunk 0.75x): its cavity, label 1, held no
    blood pool's disc and so counted as wall, and ``mesh-from-labels --myocardium-labels 2,3,4``
    (and ``prepare``) warned that label 1 lies inside the wall, advising to add it to the
    myocardium labels, which the cavity check then refuses. The cavity fills the ring's lumen: a pool."""
    import SimpleITK as sitk

    image = sitk.ReadImage(str(shared_data / "emidec" / "Case_P003" / "Contours" / "Case_P003.nii.gz"))
    size = image.GetSize()
    shrink = sitk.ScaleTransform(3, (1 / 0.6, 1 / 0.6, 1.0))
    shrink.SetCenter(image.TransformContinuousIndexToPhysicalPoint([size[0] / 2, size[1] / 2, size[2] / 2]))
    small = tmp_path / "small.nii.gz"
    sitk.WriteImage(sitk.Resample(image, image, shrink, sitk.sitkNearestNeighbor, 0), str(small))
    capsys.readouterr()
    assert main(["mesh-from-labels", "--labels", str(small), "--myocardium-labels", "2,3,4", "--spacing", "3",
                 "--output", str(tmp_path / "small.vtu")]) == 0
    assert not _warnings(capsys.readouterr().err, "lies inside the wall")


def test_lge_in_8_bits_zoomed_with_nearest_neighbour_is_refused(shared_data, p001, tmp_path, capsys):
    """P001's LGE in 8 bits (as above) zoomed 2x in-plane with nearest neighbour (a viewer's
    export, a grid matched to another series): each scattered dark pixel became a 2x2 block, so no
    pixel of value 3 or 4 stood alone (0 %) and the check let it through, 23,380 "scar" pixels.
    A pixel in a region under 4 mm2 stands alone too: refused (62 %)."""
    import SimpleITK as sitk

    lge = sitk.ReadImage(str(shared_data / P001 / "Images" / "Case_P001.nii.gz"))
    eight = _like(np.minimum(np.clip(sitk.GetArrayFromImage(lge) - 2048, 0, None) // 8, 255).astype(np.uint8), lge)
    size, spacing = eight.GetSize(), eight.GetSpacing()
    grid = sitk.Image([2 * size[0], 2 * size[1], size[2]], sitk.sitkUInt8)
    grid.SetSpacing((spacing[0] / 2, spacing[1] / 2, spacing[2]))
    grid.SetOrigin(eight.GetOrigin())
    grid.SetDirection(eight.GetDirection())
    zoomed = tmp_path / "lge8_zoomed.nii.gz"
    sitk.WriteImage(sitk.Resample(eight, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0), str(zoomed))
    _, _, mesh = p001
    assert_refused_in_one_line(["prepare", "--mesh", mesh, "--image", zoomed, "--scar-labels", "3,4", "--output",
                                tmp_path / "out.npz"], "an intensity image (LGE in 8 bits?), not a label map",
                               capsys, tmp_path)
