"""Masks of one slice and masks of no ring (zfacesrows, from zreview13's notes).

* a 2D myocardium mask was refused ("must be a 3D volume with N slices") even where one chosen
  slice has its pixels: it is placed on that slice now (one chosen slice, its size, spacing and
  origin), and refused elsewhere naming ``--slice-indices`` and the slice it fits; a one-slice 3D
  mask without ``--slice-indices`` was refused as "another frame": it names its slice now;
* the blood pool given as the myocardium was refused as a mesh off the slices or the scar
  ("no mesh node inside any slice footprint", "the mesh is not where the image's scar is"),
  blaming the mesh: the refusal names the likelier cause, a myocardium that encloses no cavity
  (``lge.mask_fit.solid_mask_cause``, the words of the blood-pool warning).

Real parts: the segmented phantom (conftest ``segmented``) and the raw-LGE phantom written by
SimpleITK, the library's ``prepare_training_data`` and the real command line.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from cardioscar import cli
from cardioscar.errors import CardioScarError
from cardioscar.logic import PreprocessingRequest, prepare_training_data
from cardioscar.lge.mask_fit import SOLID_MASK_ADVICE
from conftest import error_lines

SLICE = 4


def _request(segmented, mask, indices, labels=(2, 3), image=None) -> PreprocessingRequest:
    return PreprocessingRequest(mesh_path=segmented["mesh"], image_path=image or segmented["image"],
                                myocardium_mask=mask, myocardium_labels=list(labels), slice_indices=indices)


def _write(image: sitk.Image, path) -> str:
    sitk.WriteImage(image, str(path))
    return str(path)


@pytest.fixture(scope="module")
def label_map(segmented) -> sitk.Image:
    return sitk.ReadImage(str(segmented["label_map"]))


def test_a_2d_mask_on_the_one_chosen_slice_gives_the_3d_map_s_targets(segmented, label_map, tmp_path):
    plane = _write(label_map[:, :, SLICE], tmp_path / "plane.nii.gz")
    assert sitk.ReadImage(plane).GetDimension() == 2
    placed = prepare_training_data(_request(segmented, plane, [SLICE]))
    whole = prepare_training_data(_request(segmented, str(segmented["label_map"]), [SLICE]))
    assert placed.n_groups > 50
    np.testing.assert_array_equal(placed.node_ids, whole.node_ids)
    np.testing.assert_array_equal(placed.intensities, whole.intensities)


def test_a_2d_mask_elsewhere_is_refused_naming_the_slice_it_fits(segmented, label_map, tmp_path):
    plane = _write(label_map[:, :, SLICE], tmp_path / "plane.nii.gz")
    with pytest.raises(CardioScarError, match=rf"is a 2D image \(52x52 pixels\).*9 slices are chosen; choose the one "
                                              rf"it was drawn on with --slice-indices \('phantom_lge.nii.gz k={SLICE}' "
                                              "fits it\\)"):
        prepare_training_data(_request(segmented, plane, None))
    with pytest.raises(CardioScarError, match=r"no chosen slice has its size, spacing and origin .*choose the slice it "
                                              "was drawn on with --slice-indices"):
        prepare_training_data(_request(segmented, plane, [SLICE - 1]))
    small = _write(label_map[:40, :40, SLICE], tmp_path / "small.nii.gz")  # another grid: fits no slice
    with pytest.raises(CardioScarError, match=r"\(40x40 pixels\).*no chosen slice has its size"):
        prepare_training_data(_request(segmented, small, [SLICE]))


def test_a_one_slice_mask_without_its_slice_chosen_names_it(segmented, label_map, tmp_path, capsys):
    one = _write(label_map[:, :, SLICE:SLICE + 1], tmp_path / "one.nii.gz")
    (said,) = _refused(capsys, ["prepare", "--mesh", segmented["mesh"], "--image", segmented["image"],
                                "--myocardium-mask", one, "--myocardium-labels", "2,3", "--output", tmp_path / "d.npz"])
    assert f"it has one slice, which lies on 'phantom_lge.nii.gz k={SLICE}': choose that slice with --slice-indices" \
        in said and "same patient frame" not in said
    assert prepare_training_data(_request(segmented, one, [SLICE])).n_groups > 50  # chosen: as before


def _refused(capsys, args: list) -> list[str]:
    """The error lines of ``cardioscar ARGS``, which must fail."""
    capsys.readouterr()
    assert cli.main([str(a) for a in args]) != 0
    return error_lines(capsys.readouterr().err)


def _pool(label_map: sitk.Image, erosion: int, path) -> str:
    """The label map's blood pool (label 1), eroded ``erosion`` pixels in-plane, as a 0/1 mask."""
    values = sitk.GetArrayFromImage(label_map)
    pool = np.stack([ndimage.binary_erosion(plane == 1, iterations=erosion) for plane in values]).astype(np.uint8)
    image = sitk.GetImageFromArray(pool)
    image.CopyInformation(label_map)
    return _write(image, path)


def test_the_blood_pool_as_the_myocardium_is_named_where_no_node_lies_on_it(segmented, label_map, tmp_path):
    """The wall's mesh has nodes in every slab but none on the eroded pool's pixels: refused naming the
    mask's missing ring, not the frame; a ring that misses the mesh (around the heart) is asked about.
    The segmented phantom's scar map is the scar's fraction: the pool, which holds none of it, is
    refused first as a mask off the scar, now naming the missing ring too."""
    pool = _pool(label_map, 5, tmp_path / "pool.nii.gz")
    with pytest.raises(CardioScarError, match=r"lie more than a pixel outside the myocardium .*; likelier, the "
                                              r"myocardium given is not the wall: .*; else the myocardium mask does "
                                              "not match the scar image"):
        prepare_training_data(_request(segmented, pool, None, labels=(1,)))
    healthy = _write(sitk.ReadImage(str(segmented["image"])) * 0, tmp_path / "healthy.nii.gz")  # no scar to lose
    with pytest.raises(CardioScarError) as refused:
        prepare_training_data(_request(segmented, pool, None, labels=(1,), image=healthy))
    said = str(refused.value)
    assert said.startswith("No mesh node lies on a pixel with a target: ") and "outside the myocardium given" in said
    assert "encloses no cavity on any of the" in said and said.endswith(SOLID_MASK_ADVICE)
    assert "SPACE marker" not in said
    heart = sitk.GetArrayFromImage(label_map) > 0
    ring = np.stack([ndimage.binary_dilation(p, iterations=8) & ~ndimage.binary_dilation(p, iterations=6)
                     for p in heart]).astype(np.uint8)
    image = sitk.GetImageFromArray(ring)
    image.CopyInformation(label_map)
    around = _write(image, tmp_path / "around.nii.gz")
    with pytest.raises(CardioScarError, match=r"all outside the myocardium given; does the myocardium mask or labels "
                                              "mark this mesh's wall"):
        prepare_training_data(_request(segmented, around, None, labels=(1,), image=healthy))


@pytest.fixture(scope="module")
def raw(tmp_path_factory):
    """The 1,500-node phantom's raw LGE (bright blood) and label map (1 pool, 2 wall) on disk."""
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, raw_lge_acquisition, write_phantom

    out = tmp_path_factory.mktemp("raw_lge")
    phantom = make_phantom(PhantomConfig(target_nodes=1500, seed=3))
    paths = write_phantom(phantom, out)
    lge, labels = raw_lge_acquisition(phantom)
    return {"out": out, "mesh": str(paths["mesh"]), "lge": _write(lge, out / "lge.nii.gz"), "labels": labels}


def test_a_scar_rule_on_the_blood_pool_names_it_where_its_scar_misses_the_mesh(raw, capsys):
    """n-SD grades the bright pool; its scar catches no node of the wall's mesh. The refusal said
    "check that the mesh and the image are of the same patient, exam and frame" only."""
    pool = _pool(raw["labels"], 3, raw["out"] / "pool.nii.gz")
    (said,) = _refused(capsys, ["prepare", "--mesh", raw["mesh"], "--image", raw["lge"], "--myocardium-mask", pool,
                                "--scar-rule", "nsd", "--output", raw["out"] / "d.npz"])
    assert "scar pixels of the chosen slices reaches a mesh node" in said
    assert "likelier, the myocardium given is not the wall: it encloses no cavity" in said
    assert "else check that the mesh and the image are of the same patient" in said


def test_the_mesh_on_the_myocardium_warning_names_the_blood_pool_first(segmented, label_map, tmp_path,
                                                                       warnings_of_cardioscar):
    """The pool as it is (label 1): the wall's mesh cuts the slices on its edge, 38 % on it, and the
    warning asked whether the mesh was of this patient; it names the missing ring first now."""
    healthy = _write(sitk.ReadImage(str(segmented["image"])) * 0, tmp_path / "healthy.nii.gz")
    prepare_training_data(_request(segmented, str(segmented["label_map"]), None, labels=(1,), image=healthy))
    (said,) = [w for w in warnings_of_cardioscar if "of the mesh's cut through the chosen slices" in w]
    assert "likelier, the myocardium given is not the wall: it encloses no cavity" in said
    assert "; else: are the mesh and the mask or labels of the image's patient" in said


def _batch_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "CardioScar" / "Scripts" / "cardioscar_batch.py"
    spec = importlib.util.spec_from_file_location("cardioscar_batch_2d_masks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_slicer_logic_places_a_2d_mask_file_as_prepare_does(segmented, label_map, tmp_path):
    """Slicer reads a 2D file as one slice at z = 0, off every chosen slice: the batch script (which
    loads masks through Slicer) refused the mask. ``load_mask`` given the chosen slices places it as
    ``prepare`` does: the same training rows as the 3D label map."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "CardioScar"))
    import CardioScarLogic as csl
    from cardioscar.prepare.slices import slices_from_paths

    plane = _write(label_map[:, :, SLICE], tmp_path / "plane.nii.gz")
    context = csl.create_scene()
    lge = csl.load_volume(context.scene, segmented["image"])
    model = csl.load_model(context.scene, segmented["mesh"])
    options = csl.ReconstructionOptions(slice_indices=str(SLICE), myocardium_labels="2,3")
    chosen = lambda: slices_from_paths([segmented["image"]], "z", [SLICE], 5.0)  # noqa: E731
    placed = csl.load_mask(context.scene, plane, chosen)
    whole = csl.load_mask(context.scene, segmented["label_map"], chosen)  # 3D: read by Slicer, as before
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    by_plane = logic.prepare_training(lge, model, options, placed).prepared
    by_map = logic.prepare_training(lge, model, options, whole).prepared
    assert by_plane.n_groups > 50
    np.testing.assert_array_equal(by_plane.node_ids, by_map.node_ids)
    np.testing.assert_array_equal(by_plane.intensities, by_map.intensities)
    with pytest.raises(CardioScarError, match=r"--remote-mask plane.nii.gz is a 2D image .*no chosen slice has its "
                                              "size, spacing and origin"):
        csl.load_mask(context.scene, plane, lambda: slices_from_paths([segmented["image"]], "z", [SLICE - 1], 5.0),
                      "--remote-mask")


def test_the_batch_script_trains_on_a_2d_mask_and_names_slices_elsewhere(segmented, label_map, tmp_path, capsys):
    plane = _write(label_map[:, :, SLICE], tmp_path / "plane.nii.gz")
    argv = ["--volume", str(segmented["image"]), "--mesh", str(segmented["mesh"]), "--myocardium-mask", plane,
            "--myocardium-labels", "2,3", "--preset", "fast", "--max-epochs", "2", "--threads", "1",
            "--no-progress"]
    script = _batch_script()
    capsys.readouterr()
    assert script.run([*argv, "--slices", str(SLICE), "--output", str(tmp_path / "out.vtk")]) == 0
    assert (tmp_path / "out.vtk").exists()
    capsys.readouterr()
    assert script.run([*argv, "--slices", f"{SLICE - 1},{SLICE}", "--output", str(tmp_path / "two.vtk")]) == 2
    (said,) = capsys.readouterr().err.strip().splitlines()
    assert said.startswith("cardioscar_batch: error: --myocardium-mask plane.nii.gz is a 2D image (52x52 pixels)")
    assert f"choose the one it was drawn on with --slices ('phantom_lge.nii.gz k={SLICE}' fits it)" in said
    assert not (tmp_path / "two.vtk").exists()


def test_evaluate_scores_a_2d_truth_image_on_its_myocardium_mask_s_slice(segmented, label_map, tmp_path, capsys):
    """``evaluate --truth-image`` of one slice drawn alone was refused ("2D ... must be a 3D volume");
    with the stack's 3D label map as --myocardium-mask it is placed on that map's chosen slice whose
    grid it has, and scores as the 3D truth on that slice; elsewhere refused naming --slice-indices."""
    from cardioscar.logic import evaluate_on_slices

    plane = _write(label_map[:, :, SLICE], tmp_path / "truth_plane.nii.gz")
    score = dict(scar_labels=[3], myocardium_labels=[2, 3], myocardium_mask=segmented["label_map"],
                 probability_field="scar_fraction_truth")
    by_plane = evaluate_on_slices(segmented["mesh"], plane, slice_indices=[SLICE], **score)
    by_map = evaluate_on_slices(segmented["mesh"], segmented["label_map"], slice_indices=[SLICE], **score)
    assert by_plane["n_nodes"] > 50
    assert by_plane["slices"][0]["slice"] == f"truth_plane.nii.gz on phantom_labels.nii.gz k={SLICE}"
    for key in ("n_nodes", "dice", "not_scored"):
        assert by_plane[key] == by_map[key], key
    with pytest.raises(CardioScarError, match=r"--truth-image truth_plane.nii.gz is a 2D image .*2 slices are "
                                              r"chosen; choose the one it was drawn on with --slice-indices "
                                              rf"\('phantom_labels.nii.gz k={SLICE}'"):
        evaluate_on_slices(segmented["mesh"], plane, slice_indices=[SLICE, SLICE + 1], **score)
    (said,) = _refused(capsys, ["evaluate", "--prediction", segmented["mesh"], "--probability-field",
                                "scar_fraction_truth", "--truth-image", plane, "--scar-labels", "3",
                                "--myocardium-labels", "2,3", "--slice-indices", SLICE])
    assert "--truth-image truth_plane.nii.gz is a 2D image, which has no place across the slices: give with it the 3D " \
           "--myocardium-mask" in said
