"""Round 10's findings met through the Slicer Logic (real MRML, slicer-core), as the command line
meets them in ``Testing/test_bad_inputs_round10.py``:

* *Tag* / *Export* of a model whose network learned 0/1 targets, without a *Core model*: its
  blurred edge tagged border zone, silently;
* a 0/1 scar map with mistyped *Scar labels* and a myocardium mask volume: trained scar-free.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.results import keep_training_targets  # noqa: E402
from CardioScarLogic.tissue import export_model_node, tag_model_node  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.io.meshio import BINARY_TARGETS, GRADED_TARGETS, TRAINING_TARGETS_ARRAY, text_field  # noqa: E402
from test_bad_inputs_round10 import EDGE, _prediction, scar_map_0_1  # noqa: E402,F401 (the fixture)


def test_tagging_a_0_1_trained_model_alone_warns_and_the_sidecar_says_so(segmented, tmp_path, warnings_of_cardioscar):
    """The note ``apply`` writes survives Slicer's model storage; *Tag* without a *Core model*
    warns with the panel's words, and the exported sidecar calls the border zone the edge."""
    context = csl.create_scene()
    node = csl.load_model(context.scene, _prediction(segmented["mesh"], tmp_path, BINARY_TARGETS))
    tags = tag_model_node(node)
    [warning] = [w for w in warnings_of_cardioscar if EDGE in w]
    assert "Core model" in warning and "--core-mesh" not in warning
    export_model_node(node, tags, tmp_path / "heart")
    assert "blurred edge" in json.loads((tmp_path / "heart.json").read_text())["tag_rule"]["border_zone_is"]


def test_a_result_notes_its_models_targets_on_the_model(segmented, tmp_path):
    """A run's result replaces the note of an earlier one (a checkpoint that does not say: none)."""
    context = csl.create_scene()
    node = csl.load_model(context.scene, _prediction(segmented["mesh"], tmp_path, BINARY_TARGETS))
    keep_training_targets(node, {"dataset_info": {"targets": GRADED_TARGETS}})
    assert text_field(node.GetMesh(), TRAINING_TARGETS_ARRAY) == GRADED_TARGETS
    keep_training_targets(node, {"dataset_info": {}})
    assert text_field(node.GetMesh(), TRAINING_TARGETS_ARRAY) is None


def test_logic_refuses_a_0_1_scar_map_with_mistyped_scar_labels_and_a_mask(segmented, scar_map_0_1):  # noqa: F811
    context = csl.create_scene()
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    model = csl.load_model(context.scene, segmented["mesh"])
    volume = csl.load_volume(context.scene, scar_map_0_1, labelmap=True)
    mask = csl.load_volume(context.scene, segmented["myocardium_mask"], labelmap=True, name="myocardium")
    with pytest.raises(CardioScarError, match="the myocardium mask holds label 1 on only 7 % of its pixels"):
        logic.prepare_training(volume, model, csl.ReconstructionOptions(scar_labels="2"), myocardium_mask=mask)


def test_the_panels_worker_gets_the_note_and_keeps_it_in_its_tags(segmented, tmp_path):
    """The panel tags in its worker process: the note travels in the job's mesh file, and the tags
    the worker saves come back with it (what the exported sidecar describes)."""
    from CardioScarLogic.background import _write_job_mesh
    from CardioScarLogic.worker import load_tags, read_job_mesh, save_tags
    from cardioscar.io.meshio import read_mesh
    from cardioscar.simulation.tags import tag_mesh

    mesh = read_mesh(_prediction(segmented["mesh"], tmp_path, BINARY_TARGETS))
    _write_job_mesh(tmp_path, mesh.dataset, "heart")
    job_mesh = read_job_mesh(tmp_path)
    assert text_field(job_mesh, TRAINING_TARGETS_ARRAY) == BINARY_TARGETS
    save_tags(tmp_path / "tags.npz", tag_mesh(job_mesh, mesh.point_array("scar_probability")))
    assert load_tags(tmp_path / "tags.npz").scar_targets == BINARY_TARGETS


def test_the_batch_script_names_its_own_options_for_the_core_model(segmented, tmp_path, warnings_of_cardioscar, caplog):
    """The batch script tags through the Logic, whose warning named the panel's boxes (Network
    learns, Core model (core_model)): options the script does not have. It names its own, and the
    script's rewording of the export step's warnings (export's --output is --export-opencarp here)
    leaves that advice's --output (the core run's mesh) as it is."""
    import importlib.util

    from test_bad_inputs_round10 import _model

    spec = importlib.util.spec_from_file_location("cardioscar_batch_round10",
                                                  REPO / "CardioScar" / "Scripts" / "cardioscar_batch.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    model = _model(segmented["mesh"], tmp_path / "labels.pth", BINARY_TARGETS)
    assert script.run(["--model", str(model), "--mesh", str(segmented["mesh"]), "--output", str(tmp_path / "o.vtk"),
                       "--inference-mc-samples", "2", "--border-zone", "0.01", "--core", "0.99",
                       "--export-opencarp", str(tmp_path / "heart")]) == 0
    [warning] = [w for w in warnings_of_cardioscar if EDGE in w]
    assert "--core-mesh CORE.vtk" in warning and "Core model" not in warning and "core_model" not in warning
    [shown] = [r.getMessage() for r in caplog.records if EDGE in r.getMessage()]  # as the script's handlers write it
    assert "--output CORE.vtk) and give its result as --core-mesh CORE.vtk" in shown, shown
