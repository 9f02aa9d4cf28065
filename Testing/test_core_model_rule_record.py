"""``apply`` notes its model's scar-rule record on the predicted mesh, and ``export --core-mesh``
refuses a scar and a core prediction whose models were trained on two definitions of the classes
(another rule, thresholds, offset or expert labels), or the other way round, as the Slicer module
refuses them; ``--rule-from`` must describe the --mesh's model.

Before, the command line could not tell: a core model trained with ``--expert-scar-labels`` beside
a scar model trained without them (or on other thresholds) was tagged without a word, exit 0."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cardioscar.cli import main
from cardioscar.fit.checkpoint import build_checkpoint
from cardioscar.fit.engines import BayesianNN
from cardioscar.io.meshio import SCAR_RULE_ARRAY, read_mesh, set_text_field, text_field, write_mesh
from cardioscar.logic import save_trained_model
from conftest import assert_refused_in_one_line

NSD = {"rule": "nsd", "border": 2.0, "core": 3.0, "unit": "SD", "intensity_offset": 0.0, "slices": []}
EXPERT = {**NSD, "expert_scar_labels": [3, 4], "expert_core_labels": [4]}


def _record(rule: dict, target: str) -> str:
    return json.dumps({**rule, "target": target})


def _prediction(mesh_path: Path, path: Path, record: str | None, field: np.ndarray) -> Path:
    """``mesh_path`` with ``field`` as scar_probability and ``apply``'s note of its model's rule record."""
    mesh = read_mesh(mesh_path)
    set_text_field(mesh.dataset, SCAR_RULE_ARRAY, record)
    write_mesh(mesh, path, {"scar_probability": field})
    return path


@pytest.fixture(scope="module")
def pair(segmented, tmp_path_factory):
    """A scar field rising along x and a core field on its upper part: a right pair by their values."""
    out = tmp_path_factory.mktemp("rule_pair")
    x = read_mesh(segmented["mesh"]).points_lps()[:, 0]
    scar = (x - x.min()) / (x.max() - x.min())
    return {"out": out, "mesh": segmented["mesh"], "scar": scar, "core": (scar > 0.8).astype(float)}


def test_apply_notes_the_models_rule_record_on_the_predicted_mesh(pair, tmp_path):
    """The record of the checkpoint's training data, replacing an earlier run's; none without a rule."""
    points = read_mesh(pair["mesh"]).points_lps()
    info = {"scaler_min": points.min(axis=0).tolist(), "scaler_max": points.max(axis=0).tolist()}
    stale = _prediction(pair["mesh"], tmp_path / "stale.vtk", _record(NSD, "scar"), pair["scar"])
    for record in (_record(EXPERT, "core"), None):
        model = tmp_path / "model.pth"
        save_trained_model(build_checkpoint(BayesianNN(3, 8, 2, 0.1), {}, {}, info,
                                            {} if record is None else {"scar_rule": record}), model)
        assert main(["apply", "--model", str(model), "--mesh", str(stale), "--output", str(tmp_path / "out.vtk"),
                     "--mc-samples", "2"]) == 0
        assert text_field(read_mesh(tmp_path / "out.vtk").dataset, SCAR_RULE_ARRAY) == record


CASES = {
    "expert labels on the core model only": (_record(NSD, "scar"), _record(EXPERT, "core"),
                                             "come from models trained on different scar rules"),
    "other thresholds": (_record(EXPERT, "scar"), _record({**EXPERT, "border": 3.0, "core": 4.0}, "core"),
                         "come from models trained on different scar rules"),
    "core model as --mesh": (_record(EXPERT, "core"), _record(EXPERT, "core"), "learned the core (prepare --scar-"),
    "scar model as --core-mesh": (_record(EXPERT, "scar"), _record(EXPERT, "scar"),
                                  "learned the scar (border zone + core), not the core"),
}


@pytest.mark.parametrize("case", CASES)
def test_export_refuses_a_pair_of_two_definitions(pair, case, capsys, tmp_path):
    scar_record, core_record, fragment = CASES[case]
    scar = _prediction(pair["mesh"], tmp_path / "scar_pred.vtk", scar_record, pair["scar"])
    core = _prediction(pair["mesh"], tmp_path / "core_pred.vtk", core_record, pair["core"])
    assert_refused_in_one_line(["export", "--mesh", str(scar), "--core-mesh", str(core), "--output",
                                str(tmp_path / "out")], fragment, capsys, tmp_path)


def test_export_takes_a_pair_of_one_definition_and_rule_from_its_scar_model_only(pair, capsys, tmp_path):
    scar = _prediction(pair["mesh"], tmp_path / "scar_pred.vtk", _record(EXPERT, "scar"), pair["scar"])
    core = _prediction(pair["mesh"], tmp_path / "core_pred.vtk", _record(EXPERT, "core"), pair["core"])
    npz = tmp_path / "scar.npz"
    np.savez(npz, scar_rule=np.asarray(_record(EXPERT, "scar")))
    assert main(["export", "--mesh", str(scar), "--core-mesh", str(core), "--rule-from", str(npz), "--output",
                 str(tmp_path / "heart")]) == 0
    assert json.loads((tmp_path / "heart.json").read_text())["scar_rule"]["expert_scar_labels"] == [3, 4]
    np.savez(npz, scar_rule=np.asarray(_record(NSD, "scar")))  # the training data of another scar model
    assert_refused_in_one_line(["export", "--mesh", str(scar), "--core-mesh", str(core), "--rule-from", str(npz),
                                "--output", str(tmp_path / "out")], "--rule-from describes the scar rule", capsys,
                               tmp_path)


def test_a_labels_model_of_the_scar_given_as_the_core_is_refused(segmented, tmp_path, capsys):
    """``prepare --scar-labels`` records its labels in the ``.npz``, ``train`` in the checkpoint and
    ``apply`` on its mesh (``CardioScarScarLabels``); ``export --core-mesh`` refuses a core model
    that learned the very labels of the scar model (its own, or its rule's expert scar labels).
    Before: EMIDEC P022's labels model (3,4) given as the core of the experts' scar split by n-SD
    tagged 45.3 ml core and 1.5 ml border zone (14.7 ml with its core model), exit 0. A labels model
    of other labels (the no-reflow as the core) passes."""
    from cardioscar.io.meshio import SCAR_LABELS_ARRAY

    out = tmp_path
    assert main(["prepare", "--mesh", str(segmented["mesh"]), "--image", str(segmented["label_map"]), "--scar-labels",
                 "3", "--myocardium-labels", "2,3", "--output", str(out / "labels.npz")]) == 0
    assert str(np.load(out / "labels.npz")["scar_labels"]) == "3"
    assert main(["train", "--training-data", str(out / "labels.npz"), "--output", str(out / "labels.pth"),
                 "--max-epochs", "2", "--cpu"]) == 0
    assert main(["apply", "--model", str(out / "labels.pth"), "--mesh", str(segmented["mesh"]), "--output",
                 str(out / "labels_pred.vtk"), "--mc-samples", "2"]) == 0
    core = read_mesh(out / "labels_pred.vtk")
    assert text_field(core.dataset, SCAR_LABELS_ARRAY) == "3"
    field = core.point_array("scar_probability")
    scar = _prediction(segmented["mesh"], out / "scar_pred.vtk", _record({**EXPERT, "expert_scar_labels": [3]}, "scar"),
                       np.maximum(field, 0.6))
    assert_refused_in_one_line(["export", "--mesh", scar, "--core-mesh", out / "labels_pred.vtk", "--format", "vtu",
                                "--output", out / "out.vtu"], "learned the labels 3, the scar model's own scar",
                               capsys, out)
    # a labels model of the scar beside another labels model of the same labels: refused the same way
    scar_mesh = read_mesh(out / "labels_pred.vtk")
    write_mesh(scar_mesh, out / "labels_scar.vtk", {"scar_probability": np.maximum(field, 0.6)})
    assert_refused_in_one_line(["export", "--mesh", out / "labels_scar.vtk", "--core-mesh", out / "labels_pred.vtk",
                                "--format", "vtu", "--output", out / "out.vtu"], "learned the labels 3", capsys, out)
    # a core model of other labels (EMIDEC's no-reflow, 4, as the core of 3,4): tagged
    set_text_field(scar_mesh.dataset, SCAR_LABELS_ARRAY, "3,4")
    write_mesh(scar_mesh, out / "labels_scar34.vtk", {"scar_probability": np.maximum(field, 0.6)})
    assert main(["export", "--mesh", str(out / "labels_scar34.vtk"), "--core-mesh", str(out / "labels_pred.vtk"),
                 "--format", "vtu", "--output", str(out / "tagged.vtu")]) == 0
