"""Round 6 in the Slicer Logic on real MRML (slicer-core, no Qt): a new result on a model node
that was tagged (*Tag*) no longer keeps the earlier result's ``tissue_tag``, as ``cardioscar
apply`` no longer copies an export's tags; *Tag* names a border zone off the run's threshold, as
``export`` does; *Train and apply* refuses a stack whose scar reaches no node, as ``prepare``
does. What this cannot prove: the panel's display (Qt)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.tissue import tag_model_node  # noqa: E402
from conftest import trained_small_phantom  # noqa: E402


def test_a_new_result_drops_the_tags_of_the_earlier_one(tmp_path, caplog):
    """*Tag* writes ``tissue_tag`` as point and cell arrays on the model; *Apply* (or *Train and
    apply*) into the same node, or into a new node (which copies the input's arrays), replaced
    the probability and kept the old tags: saved with the model they went to meshtool or a
    simulator as this result's classes. Now the tags are removed with a warning."""
    _, paths = trained_small_phantom(tmp_path, 300)
    context = csl.create_scene()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    options = csl.ReconstructionOptions(inference_mc_samples=2, seed=7, num_threads=1)
    model = csl.load_model(context.scene, paths["mesh"])
    logic.apply_model(tmp_path / "model.pth", model, options)
    tags = tag_model_node(model)
    assert (tags.node_tags > 1).sum() > 10  # a scar was tagged
    mesh = model.GetMesh()
    assert mesh.GetPointData().HasArray("tissue_tag") and mesh.GetCellData().HasArray("tissue_tag")
    copy = csl.results.new_output_model(model)  # the panel's "output to a new model"
    for node in (model, copy):
        caplog.clear()
        logic.apply_model(tmp_path / "model.pth", node, options)
        mesh = node.GetMesh()
        assert not mesh.GetPointData().HasArray("tissue_tag") and not mesh.GetCellData().HasArray("tissue_tag")
        assert "had tissue_tag tags of an earlier result" in caplog.text


def test_tag_names_a_border_zone_off_the_threshold_of_the_run(tmp_path, caplog):
    """A run with *Threshold* 0.3 writes ``scar_binary`` at 0.3; *Tag* with its default border zone
    0.5 tagged another, smaller scar without a word, as ``cardioscar export`` did. Now a warning
    gives the border zone to use; tagging at it says nothing."""
    _, paths = trained_small_phantom(tmp_path, 300)
    context = csl.create_scene()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    model = csl.load_model(context.scene, paths["mesh"])
    logic.apply_model(tmp_path / "model.pth", model,
                      csl.ReconstructionOptions(inference_mc_samples=2, seed=7, num_threads=1, threshold=0.3))
    caplog.clear()
    tag_model_node(model)
    assert "its scar_binary (the call of cardioscar apply --threshold 0.3)" in caplog.text, caplog.text[-2000:]
    caplog.clear()
    tag_model_node(model, border_zone=0.3)
    assert "scar_binary" not in caplog.text


def test_train_and_apply_refuses_scar_that_reaches_no_mesh_node(tmp_path):
    """The Logic maps slices through the library, so a stack 45 mm off its mesh along the normal
    (every scar pixel on slices that catch no node: a heart without scar on main) is refused in
    *Train and apply* too, before the model node changes."""
    import numpy as np
    import SimpleITK as sitk
    from cardioscar.errors import CardioScarError
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom

    paths = write_phantom(make_phantom(PhantomConfig(target_nodes=1500, seed=3)), tmp_path)
    image = sitk.ReadImage(str(paths["image"]))
    normal = np.array(image.GetDirection()).reshape(3, 3)[:, 2]
    image.SetOrigin(tuple(np.array(image.GetOrigin()) - 45.0 * normal))
    sitk.WriteImage(image, str(tmp_path / "moved.nii.gz"))
    context = csl.create_scene()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    model = csl.load_model(context.scene, paths["mesh"])
    volume = csl.load_volume(context.scene, tmp_path / "moved.nii.gz")
    options = csl.ReconstructionOptions(preset="fast", max_epochs=2, seed=7, num_threads=1, inference_mc_samples=2,
                                        half_thickness=4.0)
    with pytest.raises(CardioScarError, match="None of the 322 scar pixels of the chosen slices reaches a mesh node"):
        logic.train_and_apply(volume, model, options)
    assert model.GetMesh().GetPointData().GetArray("scar_probability") is None
