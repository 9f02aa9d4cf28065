"""Tissue tags and simulator export from the Slicer Logic on real MRML (slicer-core, no Qt):
a tetrahedral mesh with a reconstructed field loaded through Slicer's model storage, tagged,
coloured and exported; the files read back. What this cannot prove: the panel's buttons (Qt)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import slicer  # noqa: E402  (slicer-core)
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.tissue import TAG_COLOR_ID, export_model_node, tag_model_node  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh  # noqa: E402
from test_simulation_export import _tet_mesh  # noqa: E402  (the same 64-node tetrahedral block)


@pytest.fixture()
def tagged_case(tmp_path):
    grid = _tet_mesh().dataset
    x = vtk_to_numpy(grid.GetPoints().GetData())[:, 0]
    scar = (x - 10.0) / 3.0
    write_mesh(Mesh(dataset=grid, space="LPS"), tmp_path / "pred.vtk", {"scar_probability": scar})
    context = csl.create_scene()
    node = csl.load_model(context.scene, tmp_path / "pred.vtk")
    return context, node, scar


def test_tags_colours_and_summary_rows(tagged_case):
    context, node, scar = tagged_case
    tags = tag_model_node(node, border_zone=0.4, core=0.7, color_logic=context.color_logic)
    mesh = node.GetMesh()
    np.testing.assert_array_equal(vtk_to_numpy(mesh.GetPointData().GetArray("tissue_tag")),
                                  np.where(scar >= 0.7, 3, np.where(scar >= 0.4, 2, 1)))
    assert vtk_to_numpy(mesh.GetCellData().GetArray("tissue_tag")).tolist() == tags.element_tags.tolist()
    display = node.GetDisplayNode()
    assert display.GetActiveScalarName() == "tissue_tag" and display.GetColorNodeID() == TAG_COLOR_ID
    colors = context.scene.GetNodeByID(TAG_COLOR_ID)
    # one field: its two cuts are probability bands, named so, not border zone and core (tissue classes)
    assert colors.GetColorName(3) == "probability >= 0.7" and colors.GetColorName(2) == "probability band 0.4-0.7"
    # tag 0 is unused: opaque (a translucent entry turns the whole model translucent) but undefined, so the
    # legend lists the three classes only (it drew an unnamed black swatch)
    assert not colors.GetColorDefined(0) and [colors.GetColorDefined(t) for t in (1, 2, 3)] == [True] * 3
    assert colors.GetColorName(0) == "" and colors.GetLookupTable().GetTableValue(0)[3] == 1.0
    table = node.GetNodeReference("CardioScarSummaryTable").GetTable()
    measures = [table.GetValue(r, 0).ToString() for r in range(table.GetNumberOfRows())]
    assert "Tissue probability >= 0.7 (tag 3) volume" in measures and "Tissue healthy (tag 1) share" in measures
    assert not any("core" in measure or "border" in measure for measure in measures)
    tag_model_node(node, border_zone=0.4, core=0.7)  # re-tagging replaces the rows, not piles them up
    table = node.GetNodeReference("CardioScarSummaryTable").GetTable()
    assert table.GetNumberOfRows() == len(measures)


def test_tagging_again_removes_the_channels_of_the_earlier_tags(tagged_case, caplog):
    """``bz_channel`` is where the channels of the model's earlier tags ran; *Tag* at other thresholds
    kept it beside the new ``tissue_tag`` (zstalefibre): removed now, with a warning."""
    _, node, _ = tagged_case
    channel = numpy_to_vtk(np.ones(node.GetMesh().GetNumberOfPoints(), np.int32), deep=True)
    channel.SetName("bz_channel")
    node.GetMesh().GetPointData().AddArray(channel)
    marginal = numpy_to_vtk(np.ones(node.GetMesh().GetNumberOfPoints(), np.uint8), deep=True)
    marginal.SetName("core_marginal")  # an earlier search's core near its threshold: stale at new thresholds too
    node.GetMesh().GetPointData().AddArray(marginal)
    with caplog.at_level("WARNING"):
        tag_model_node(node, border_zone=0.4, core=0.7)
    assert not node.GetMesh().GetPointData().HasArray("bz_channel") and node.GetMesh().GetPointData().HasArray("tissue_tag")
    assert "had the bz_channel channels of its earlier tags" in caplog.text
    assert not node.GetMesh().GetPointData().HasArray("core_marginal")
    assert "had the core_marginal of an earlier channel search" in caplog.text


def test_export_writes_world_lps_and_ras(tagged_case, tmp_path):
    _, node, _ = tagged_case
    tags = tag_model_node(node)
    files = export_model_node(node, tags, tmp_path / "heart", units="mm")
    pts = (tmp_path / "heart.pts").read_text(encoding="utf-8").split("\n")
    assert int(pts[0]) == node.GetMesh().GetNumberOfPoints() and {f.suffix for f in files} == {".pts", ".elem", ".json"}
    first = np.array([float(v) for v in pts[1].split()])
    ras = np.array(node.GetMesh().GetPoint(0))  # Slicer keeps RAS in the scene
    np.testing.assert_allclose(first, ras * [-1, -1, 1], atol=1e-5)
    export_model_node(node, tags, tmp_path / "heart_ras", units="mm", space="RAS")
    first_ras = np.array([float(v) for v in (tmp_path / "heart_ras.pts").read_text(encoding="utf-8").split("\n")[1].split()])
    np.testing.assert_allclose(first_ras, ras, atol=1e-5)
    [vtu] = export_model_node(node, tags, tmp_path / "heart", fmt="vtu")
    assert vtu.name == "heart.vtu" and vtu.is_file()
    # a model read from an earlier fibre export: its fibre vectors are not this export's (zstalefibre)
    fibre = numpy_to_vtk(np.tile([1.0, 0.0, 0.0], (node.GetMesh().GetNumberOfCells(), 1)), deep=True)
    fibre.SetName("fibre")
    node.GetMesh().GetCellData().AddArray(fibre)
    [vtu] = export_model_node(node, tags, tmp_path / "again", fmt="vtu")
    assert not read_mesh(vtu).dataset.GetCellData().HasArray("fibre")


def test_the_logic_s_opencarp_export_without_fibres_says_openCARP_needs_a_lon(tagged_case, tmp_path,
                                                                              warnings_of_cardioscar):
    """The Slicer face writes through the same writer as the command line, so it warns too; the LV
    fibre rule goes through it as ``fibres="rule"`` (a 4 mm block has no LV wall: refused, one line)."""
    _, node, _ = tagged_case
    tags = tag_model_node(node)
    export_model_node(node, tags, tmp_path / "heart")
    assert sum("no heart.lon was written" in m and "rule" in m for m in warnings_of_cardioscar) == 1
    with pytest.raises(CardioScarError) as error:
        export_model_node(node, tags, tmp_path / "ruled", fibres="rule")
    assert "the fibre rule found no LV wall" in str(error.value) and "\n" not in str(error.value)
    # the advice in the Logic's words (it read "--fibres CELLFIELD", a cell field the Logic takes as an array)
    assert str(error.value).endswith("or export with fibres=None (or fibres, an array of one fibre or fibre+sheet "
                                     "direction per cell)"), str(error.value)
    assert not (tmp_path / "ruled.lon").exists()


def test_the_logic_s_vtu_export_carries_the_rule_s_fibres_in_world_lps(segmented, tmp_path):
    """``export_model_node(..., fmt="vtu", fibres="rule", helix_deg=...)`` wrote no fibres; now the
    ``.vtu`` holds the rule's unit fibre and sheet vectors in its points' frame (world LPS), the
    angles given reaching the rule (the same field as the command line's on the same file)."""
    from cardioscar.io.meshio import read_mesh
    from cardioscar.simulation.fibres import rule_fibres

    mesh = read_mesh(segmented["mesh"])
    write_mesh(mesh, tmp_path / "pred.vtk", {"scar_probability": np.zeros(mesh.n_points)})
    node = csl.load_model(csl.create_scene().scene, tmp_path / "pred.vtk")
    [vtu] = export_model_node(node, tag_model_node(node), tmp_path / "heart", fmt="vtu", fibres="rule",
                              helix_deg=(50.0, -40.0))
    written = read_mesh(vtu)
    field = rule_fibres(mesh, (50.0, -40.0))[0] * (1.0 if mesh.space == "LPS" else np.tile([-1.0, -1.0, 1.0], 2))
    assert written.space == "LPS"
    np.testing.assert_allclose(vtk_to_numpy(written.dataset.GetCellData().GetArray("fibre")), field[:, :3], atol=1e-5)
    np.testing.assert_allclose(vtk_to_numpy(written.dataset.GetCellData().GetArray("sheet")), field[:, 3:], atol=1e-5)
    with pytest.raises(CardioScarError, match="^helix_deg \\(95.0, -60.0\\): give two angles"):  # the argument's name
        export_model_node(node, tag_model_node(node), tmp_path / "bad", fmt="vtu", fibres="rule", helix_deg=(95.0, -60.0))


def test_bad_threshold_leaves_the_node_untouched(tagged_case):
    _, node, _ = tagged_case
    with pytest.raises(CardioScarError, match="^border_zone 0.9 must be below core 0.5"):  # the arguments' names
        tag_model_node(node, border_zone=0.9, core=0.5)
    assert node.GetMesh().GetPointData().GetArray("tissue_tag") is None
    assert node.GetNodeReference("CardioScarSummaryTable") is None


@pytest.fixture(scope="module")
def psi_run(tmp_path_factory):
    """The phantom's raw LGE and label map loaded as Slicer volumes; PSI targets, tiny training
    by the Logic (which records the scar rule on the model node)."""
    import SimpleITK as sitk

    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, raw_lge_acquisition, write_phantom

    tmp_path = tmp_path_factory.mktemp("psi")
    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3))
    paths = write_phantom(phantom, tmp_path)
    lge, labels = raw_lge_acquisition(phantom)
    sitk.WriteImage(lge, str(tmp_path / "lge.nii.gz"))
    sitk.WriteImage(labels, str(tmp_path / "labels.nii.gz"))
    context = csl.create_scene()
    volume = csl.load_volume(context.scene, tmp_path / "lge.nii.gz")
    myocardium = csl.load_volume(context.scene, tmp_path / "labels.nii.gz", labelmap=True)
    model = csl.load_model(context.scene, paths["mesh"])
    options = csl.ReconstructionOptions(half_thickness=phantom.slice_half_thickness_mm, preset="fast", max_epochs=5,
                                        num_threads=1, scar_rule="psi", myocardium_labels="2", blood_pool_labels="1")
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    result = logic.train_and_apply(volume, model, options, myocardium_mask=myocardium)
    return {"context": context, "logic": logic, "volume": volume, "model": model, "options": options,
            "result": result}


def test_logic_trains_on_a_scar_rule_of_raw_lge(psi_run):
    logic, volume, model, options = psi_run["logic"], psi_run["volume"], psi_run["model"], psi_run["options"]
    # one group per myocardial pixel that holds mesh nodes; PSI's 0/1 targets, not raw intensities
    targets = psi_run["result"].prepared.group_targets
    assert set(np.unique(targets)) == {0.0, 1.0} and 0 < targets.mean() < 0.5
    with pytest.raises(CardioScarError, match="needs the myocardium"):
        logic.train_and_apply(volume, model, options)


def test_the_cli_and_the_logic_write_the_same_sidecar_for_the_same_model(psi_run, tmp_path):
    """The Logic's export of its PSI result, and ``cardioscar export`` of the same result saved
    to a file with ``--rule-from`` its training data: the same .json key by key (the Logic
    dropped the rule's ``target``), the same elements and points."""
    import json

    from cardioscar.cli import main
    from cardioscar.logic import save_preprocessing_result

    model = psi_run["model"]
    tags = tag_model_node(model, border_zone=0.4, core=0.7)
    export_model_node(model, tags, tmp_path / "slicer")
    csl.save_model(model, tmp_path / "result.vtk")
    save_preprocessing_result(psi_run["result"].prepared, tmp_path / "training.npz")
    assert main(["export", "--mesh", str(tmp_path / "result.vtk"), "--output", str(tmp_path / "cli"),
                 "--border-zone", "0.4", "--core", "0.7", "--rule-from", str(tmp_path / "training.npz")]) == 0
    slicer_json, cli_json = (json.loads((tmp_path / f"{face}.json").read_text(encoding="utf-8"))
                             for face in ("slicer", "cli"))
    assert slicer_json["scar_rule"]["rule"] == "psi" and slicer_json["scar_rule"]["target"] == "scar"
    assert sorted(slicer_json) == sorted(cli_json)
    for key in cli_json:
        assert slicer_json[key] == cli_json[key], key
    assert (tmp_path / "slicer.elem").read_text() == (tmp_path / "cli.elem").read_text()
    points = [np.loadtxt(tmp_path / f"{face}.pts", skiprows=1) for face in ("slicer", "cli")]
    np.testing.assert_allclose(points[0], points[1], atol=1e-3)  # um; float32 in the .vtk


def test_a_core_model_of_other_nodes_or_another_rule_is_refused(tagged_case, tmp_path):
    """As ``export --core-mesh``: a core result with as many nodes elsewhere is refused; and a core
    model trained on another scar rule than the scar model (its border zone and core from two
    definitions, the sidecar naming one) too. The model is left untagged."""
    import json

    context, node, scar = tagged_case
    grid = _tet_mesh().dataset
    shifted = vtk_to_numpy(grid.GetPoints().GetData()) + [5.0, 0.0, 0.0]
    grid.GetPoints().GetData().DeepCopy(numpy_to_vtk(shifted, deep=True))
    write_mesh(Mesh(dataset=grid, space="LPS"), tmp_path / "elsewhere.vtk", {"scar_probability": scar})
    elsewhere = csl.load_model(context.scene, tmp_path / "elsewhere.vtk")
    with pytest.raises(CardioScarError, match=r"as many nodes as 'pred', but not at the same places \(up to 5 mm"):
        tag_model_node(node, core_model=elsewhere)
    core = csl.load_model(context.scene, tmp_path / "pred.vtk", name="core")
    node.SetAttribute("CardioScar.ScarRule", json.dumps({"rule": "nsd", "border": 2.0, "core": 5.0, "target": "scar"}))
    core.SetAttribute("CardioScar.ScarRule", json.dumps({"rule": "psi", "border": 0.4, "core": 0.6, "target": "core"}))
    with pytest.raises(CardioScarError, match="different scar rules .*nsd.* vs .*psi"):
        tag_model_node(node, core_model=core)
    assert node.GetMesh().GetPointData().GetArray("tissue_tag") is None
    core.SetAttribute("CardioScar.ScarRule", json.dumps({"rule": "nsd", "border": 2.0, "core": 5.0, "target": "core",
                                                        "expert_scar_labels": [3, 4], "expert_core_labels": [4]}))
    with pytest.raises(CardioScarError, match=r"different scar rules .*None, None\) vs .*\[3, 4\], \[4\]\)"):
        tag_model_node(node, core_model=core)  # the core within the experts' scar, the scar over the whole wall
    core.SetAttribute("CardioScar.ScarRule", json.dumps({"rule": "nsd", "border": 2.0, "core": 5.0, "target": "core"}))
    tags = tag_model_node(node, core_model=core)  # one rule, two targets: the two-field tagging
    assert tags.two_fields
    colors = node.GetScene().GetNodeByID(TAG_COLOR_ID)  # two fields' tags are the tissue classes, named so
    assert [colors.GetColorName(t) for t in (1, 2, 3)] == ["healthy", "border zone", "core"]


def test_a_core_model_read_from_a_file_tells_its_rule_by_its_mesh(tagged_case, tmp_path):
    """A core model loaded from a file has no attribute: the batch script's core run saved and read
    back as --core-mesh, or ``cardioscar apply``'s output. Its mesh's note of the rule (apply's, and
    now a run's) is compared the same way: a core within the experts' scar beside a scar over the
    whole wall was tagged without a word."""
    import json

    from CardioScarLogic.results import keep_scar_rule
    from cardioscar.io.meshio import SCAR_RULE_ARRAY, set_text_field, text_field

    context, node, scar = tagged_case
    expert = json.dumps({"rule": "nsd", "border": 2.0, "core": 3.0, "target": "core", "expert_scar_labels": [3, 4],
                         "expert_core_labels": [4]})
    grid = _tet_mesh().dataset
    set_text_field(grid, SCAR_RULE_ARRAY, expert)
    write_mesh(Mesh(dataset=grid, space="LPS"), tmp_path / "core.vtk", {"scar_probability": (scar > 0.8) * 1.0})
    core = csl.load_model(context.scene, tmp_path / "core.vtk", name="core")
    assert core.GetAttribute("CardioScar.ScarRule") is None
    keep_scar_rule(node, {"provenance": {"scar_rule": json.dumps({"rule": "nsd", "border": 2.0, "core": 3.0,
                                                                   "target": "scar"})}})
    with pytest.raises(CardioScarError, match=r"different scar rules .*None, None\) vs .*\[3, 4\], \[4\]\)"):
        tag_model_node(node, core_model=core)
    keep_scar_rule(node, {"provenance": {"scar_rule": expert.replace('"core"}', '"scar"}').replace(
        '"target": "core"', '"target": "scar"')}})
    assert json.loads(text_field(node.GetMesh(), SCAR_RULE_ARRAY))["target"] == "scar"  # saved with the model
    assert tag_model_node(node, core_model=core).two_fields


def test_tag_refuses_a_labels_model_of_the_scar_as_its_core_model(segmented, tmp_path):
    """A Slicer run on a label map records its scar labels (as ``prepare --scar-labels``), its result
    notes them on the mesh (as ``apply``), and *Tag* refuses a core model that learned the scar
    model's own labels (as ``export --core-mesh``): that "core" was the whole scar and the border
    zone vanished without a word. A core model of other labels (the no-reflow) is taken."""
    from CardioScarLogic import results

    from cardioscar.io.meshio import SCAR_LABELS_ARRAY, read_mesh, set_text_field, text_field

    context = csl.create_scene()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    volume = csl.load_volume(context.scene, segmented["label_map"], labelmap=True)
    scar_model = csl.load_model(context.scene, segmented["mesh"])
    run = logic.prepare_training(volume, scar_model, csl.ReconstructionOptions(scar_labels="3", myocardium_labels="2,3"))
    assert run.prepared.scar_labels == "3"
    results.keep_training_targets(scar_model, {"provenance": {"scar_labels": run.prepared.scar_labels}})
    assert text_field(scar_model.GetMesh(), SCAR_LABELS_ARRAY) == "3"
    x = read_mesh(segmented["mesh"]).points_lps()[:, 0]
    scar = (x - x.min()) / (x.max() - x.min())
    array = numpy_to_vtk(scar, deep=True)  # the scar model's result: a field rising along x
    array.SetName("scar_probability")
    scar_model.GetMesh().GetPointData().AddArray(array)
    mesh = read_mesh(segmented["mesh"])
    for labels, name in (("3", "same.vtk"), ("4", "other.vtk")):
        set_text_field(mesh.dataset, SCAR_LABELS_ARRAY, labels)
        write_mesh(mesh, tmp_path / name, {"scar_probability": (scar > 0.8).astype(float)})
    same, other = (csl.load_model(context.scene, tmp_path / name) for name in ("same.vtk", "other.vtk"))
    with pytest.raises(CardioScarError, match=r"The core model 'same' is the prediction of a model that learned the "
                                              r"labels 3, the scar model.s own scar"):
        tag_model_node(scar_model, core_model=same)
    assert not scar_model.GetMesh().GetPointData().HasArray("tissue_tag")
    tags = tag_model_node(scar_model, core_model=other)
    assert (tags.node_tags == 3).any() and (tags.node_tags == 2).any()
