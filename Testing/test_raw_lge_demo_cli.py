"""``cardioscar demo --raw-lge`` through the command line, small and fast (3k nodes, 150 epochs).

The demo's own Dice figures are checked against Dice recomputed here from the files it wrote:
the prediction mesh (scar and core probabilities and the phantom's truth) and the openCARP files,
read back by our own reader (``test_simulation_export.read_opencarp``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from vtk.util.numpy_support import vtk_to_numpy

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cardioscar.io.meshio import BINARY_TARGETS, TRAINING_TARGETS_ARRAY, read_mesh, text_field  # noqa: E402
from conftest import run_cli_in_process  # noqa: E402
from test_simulation_export import read_opencarp  # noqa: E402

BORDER, CORE = 0.4, 0.6  # PSI's default thresholds, the demo's truth classes on the scar fraction


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / (a.sum() + b.sum()))


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("raw") / "demo_raw"
    proc = subprocess.run([sys.executable, "-m", "cardioscar", "demo", "--raw-lge", "--nodes", "3000",
                           "--max-epochs", "150", "--cpu", "--output-dir", str(out)],
                          capture_output=True, text=True, env=dict(os.environ), timeout=300)
    assert proc.returncode == 0, proc.stderr
    return out, proc


def test_the_demo_reports_dice_per_class_that_the_files_confirm(demo):
    out, proc = demo
    report = json.loads((out / "report_raw_lge.json").read_text(encoding="utf-8"))
    assert "Dice against the phantom's truth" in proc.stderr
    # its own inputs draw no advice to leave them out (it gave PSI a blood pool, which only IIR reads),
    # nor to give --fibres, which it does not take: its openCARP model has the LV rule's fibres
    assert "leave them out" not in proc.stderr and "--fibres" not in proc.stderr
    prediction = read_mesh(out / "prediction_raw_lge.vtk")
    scar, core = prediction.point_array("scar_probability"), prediction.point_array("core_probability")
    truth = prediction.point_array("scar_truth")
    predicted = np.where(core >= 0.5, 2, np.where(scar >= 0.5, 1, 0))  # export's two-field rule
    expected = np.where(truth >= CORE, 2, np.where(truth >= BORDER, 1, 0))
    dice = {"scar": _dice(predicted >= 1, expected >= 1), "border_zone": _dice(predicted == 1, expected == 1),
            "core": _dice(predicted == 2, expected == 2)}
    assert report["dice"] == pytest.approx(dice)
    # the scanner-to-model path works on this small run: scar and core found, border zone present
    assert dice["scar"] > 0.75 and dice["core"] > 0.8, dice
    assert (predicted == 1).any() and (expected == 1).any()


def test_the_opencarp_and_vtu_files_carry_the_tagged_mesh(demo):
    out, _ = demo
    prediction = read_mesh(out / "prediction_raw_lge.vtk")
    points, elements = read_opencarp(out / "model_opencarp")
    assert len(points) == prediction.n_points and len(elements) == prediction.dataset.GetNumberOfCells()
    np.testing.assert_allclose(points, prediction.points_lps() * 1000.0, atol=1e-2)  # um, LPS
    scar, core = prediction.point_array("scar_probability"), prediction.point_array("core_probability")
    nodes = np.array([[int(v) for v in e[1:5]] for e in elements])
    assert {e[0] for e in elements} == {"Tt"}
    lon = (out / "model_opencarp.lon").read_text(encoding="utf-8").split()
    assert lon[0] == "2" and len(lon) == 1 + 6 * len(elements)  # fibre and sheet per element
    tags = np.array([int(e[5]) for e in elements])
    expected = np.where(core[nodes].mean(axis=1) >= 0.5, 3, np.where(scar[nodes].mean(axis=1) >= 0.5, 2, 1))
    np.testing.assert_array_equal(tags, expected)
    sidecar = json.loads((out / "model_opencarp.json").read_text(encoding="utf-8"))
    assert sidecar["scar_rule"]["rule"] == "psi" and sidecar["tags"] == {"healthy": 1, "border_zone": 2, "core": 3}
    # the scar model's 0/1 targets noted as apply notes them: a one-field export of this file warns
    assert text_field(prediction.dataset, TRAINING_TARGETS_ARRAY) == BINARY_TARGETS
    assert sidecar["tag_rule"]["border_zone_is"] == "the scar model's scar outside the core model's core"
    vtu = read_mesh(out / "model_tagged.vtu")
    cell_tags = vtk_to_numpy(vtu.dataset.GetCellData().GetArray("tissue_tag"))
    np.testing.assert_array_equal(cell_tags, tags)
    assert not [p.name for p in out.iterdir() if ".part" in p.name]


def test_bad_demo_sizes_are_one_line_errors(tmp_path):
    """In this process (the demo's own run as a new interpreter: the ``demo`` fixture)."""
    proc = run_cli_in_process("demo", "--raw-lge", "--max-epochs", "0", "--output-dir", tmp_path / "d")
    assert proc.returncode != 0 and "--max-epochs 0: use 1 to 100000" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
