"""The temporary folders the Slicer modules make go when nothing needs them any more
(CardioScarLogic.scratch), and the scene keeps its data.

Real MRML (slicer-core), real worker processes and files; the system's temporary folder is
redirected to a fresh folder per test (``tempfile.tempdir``), so what is left there is exactly
what these runs left. The CardioScar panel runs on the Qt stand-in of
Testing/slicer_widget_harness.py (what it cannot prove is written there).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))
sys.path.insert(0, str(REPO / "AttriVAE"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import slicer  # noqa: E402  (slicer-core)

import CardioScarLogic as csl  # noqa: E402
from AttriVAELogic import AttriVAELogic, AttriVAEOptions  # noqa: E402
from AttriVAELogic import scene as results  # noqa: E402
from CardioScarLogic.background import BackgroundRun  # noqa: E402
from test_attrivae_slicer_logic import EXPLAIN, case_files, nodes, reference  # noqa: E402,F401
from test_slicer_panel import _rv_insertions_ras, _with_scar_probability, case, panel, phantom  # noqa: E402,F401

NO_PYTHON = "/nonexistent/python3"


@pytest.fixture()
def temporary(tmp_path, monkeypatch) -> Path:
    """The system's temporary folder for this test: empty at the start."""
    folder = tmp_path / "system-tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def _left(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.mark.parametrize("panel", ["5.10"], indirect=True)
def test_a_cardioscar_worker_that_cannot_start_leaves_no_job_folder(panel, case, temporary):
    """The job is written, then starting the process fails (no such Python): the folder goes."""
    options = csl.ReconstructionOptions(preset="fast", max_epochs=2, half_thickness=case[1], slice_indices="0,2")
    with pytest.raises(FileNotFoundError):
        BackgroundRun.training(panel["widget"].logic, panel["volume"], panel["model"], options, python=NO_PYTHON)
    assert _left(temporary) == []


def test_an_attrivae_command_that_cannot_start_leaves_no_job_folder(nodes, attrivae_model, temporary):
    logic = AttriVAELogic(nodes["scene"])
    with pytest.raises(FileNotFoundError):
        logic.start_prediction(nodes["lge"], nodes["labels"], AttriVAEOptions(model_path=str(attrivae_model)),
                               python=NO_PYTHON)
    assert _left(temporary) == []


def test_an_explanation_without_output_folder_keeps_its_data_in_the_scene_only(nodes, attrivae_model, reference,
                                                                                temporary):
    """No output folder: nothing stays on disk, and the maps and pictures are the command line's."""
    lge = nodes["lge"]
    result = AttriVAELogic(nodes["scene"]).explain(lge, nodes["labels"],
                                                   AttriVAEOptions(model_path=str(attrivae_model), **EXPLAIN))
    assert _left(temporary) == [], "the run's job folder and no explanation folder"
    assert result.folder is None
    for name, node in result.attention_nodes.items():
        assert node.GetStorageNode() is None, "nothing in the scene reads from a removed folder"
        np.testing.assert_allclose(slicer.util.arrayFromVolume(node), reference["maps"][name], atol=1e-5)
    for node in result.picture_nodes.values():
        assert node.GetStorageNode() is None and node.GetImageData().GetPointData().GetScalars().GetNumberOfTuples() > 0
    table = result.files_table_node
    rows = [[table.GetCellText(r, c) for c in range(3)] for r in range(table.GetNumberOfRows())]
    assert len(rows) == 2 * len(reference["maps"]) + 1 and {row[2] for row in rows} == {results.NOT_KEPT}


@pytest.mark.parametrize("panel", ["5.10"], indirect=True)
def test_the_aha_bullseye_folder_goes_on_failure_replacement_and_close(panel, phantom, temporary):
    widget, ui, scene, model = panel["widget"], panel["ui"], panel["scene"], panel["model"]
    _with_scar_probability(model, phantom)
    ui.ahaModelSelector.setCurrentNode(model)
    empty = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "nothing placed")
    ui.ahaRvMarkupsSelector.setCurrentNode(empty)
    ui.computeAhaButton.click()
    assert "'nothing placed' has 0 point" in ui.statusLabel.text
    assert _left(temporary) == [], "a failed click leaves no folder"
    markups = scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", "RV insertions")
    for point in _rv_insertions_ras(phantom):
        markups.AddControlPointWorld(point)
    ui.ahaRvMarkupsSelector.setCurrentNode(markups)
    shown = []
    for _ in range(2):
        ui.computeAhaButton.click()
        shown.append(Path(ui.ahaBullseyeLabel.text.split(": ", 1)[1]))
        assert shown[-1].read_bytes()[:4] == b"\x89PNG" and _left(temporary) == [shown[-1].parent.name]
    assert shown[0] != shown[1] and not shown[0].parent.exists(), "the next bull's-eye replaces the last"
    ui.ahaRvMarkupsSelector.setCurrentNode(empty)
    ui.computeAhaButton.click()  # a failure keeps the last good bull's-eye for Save
    assert shown[1].is_file() and _left(temporary) == [shown[1].parent.name]
    widget.cleanup()
    assert _left(temporary) == [], "closing the panel removes the last one"
    slicer.app.connect("aboutToQuit()", widget._stopRun)  # the fixture cleans up once more
