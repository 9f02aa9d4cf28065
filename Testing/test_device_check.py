"""The prepared GPU check (``Testing/benchmarks/device_check.py``) works before a GPU is lent.

A session is lent a GPU only by chance and for minutes, so the script it would run must be known
to work: here both steps run on the CPU, small (3,000-node cases, 200 epochs), with real phantoms,
real preparation and real torch training. What this cannot prove: the CUDA timings themselves, and
that the device image's torch (2.11 when last seen) trains as 2.13 does here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))
import bench_robust as br  # noqa: E402
import device_check  # noqa: E402


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("device_inputs")
    device_check.make_inputs(folder, cpu_reference=True, nodes=3000, epochs=200)
    return folder


def test_inputs_hold_every_case_with_its_rows_and_truth(inputs):
    paths = sorted(inputs.glob("*.npz"))
    assert [p.stem for p in paths] == sorted(name for name, *_ in device_check.CASES)
    for path in paths:
        with np.load(path) as data:
            meta = json.loads(str(data["meta"]))
            assert meta["nodes"] == len(data["points"]) == len(data["truth"]) == len(data["weights"])
            assert meta["rows"] == len(data["coordinates"]) == len(data["group_ids"]) > 0
            assert set(np.unique(data["truth"])) == {0.0, 1.0}
            # the scaler spans the mesh, so every training row lies in the unit cube
            assert data["coordinates"].min() >= -1e-6 and data["coordinates"].max() <= 1 + 1e-6
            assert meta["cpu_reference"]["epochs"] >= 200
            # the fast preset's auto: the prior for the label map (0/1 over a stack), not for fractions
            assert meta["shape_prior_used"] is ("labels" in path.stem), path.stem
            assert ("node_prior_logit" in data.files) is meta["shape_prior_used"]
            if meta["shape_prior_used"]:
                assert len(data["node_prior_logit"]) == len(data["node_residual_weight"]) == meta["nodes"]


def test_run_needs_no_vtk_and_reproduces_the_cpu_reference(inputs, tmp_path):
    """The device step in a fresh interpreter: no VTK or SimpleITK imported, and on the CPU it gives
    the reference fit's figures again (the rows survive the file, the seed is honoured)."""
    output = tmp_path / "device_check.jsonl"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([sys.executable, str(BENCHMARKS / "device_check.py"), "run", "--inputs", str(inputs),
                    "--output", str(output), "--device", "cpu", "--repeats", "1", "--epochs", "200"],
                   check=True, env=env, capture_output=True, text=True, timeout=600)
    lines = [json.loads(line) for line in output.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == len(device_check.CASES)
    for line in lines:
        assert line["imported_vtk"] is False and line["imported_simpleitk"] is False
        reference = line["cpu_reference"]
        assert line["dice"] == pytest.approx(reference["dice"], abs=1e-3), line["case"]
        assert line["best_loss"] == pytest.approx(reference["best_loss"], rel=1e-3)
    fraction = next(line for line in lines if "fraction" in line["case"])
    assert fraction["dice"] > 0.6 and fraction["auc"] > 0.95  # it learned the scar, not noise


def test_scores_match_the_benchmarks_scores():
    """The VTK-free scoring copy gives bench_robust's (cardioscar.evaluate's) figures."""
    rng = np.random.default_rng(3)
    truth = (rng.uniform(size=2000) < 0.2).astype(float)
    probability = np.clip(0.6 * truth + rng.normal(0.2, 0.2, size=2000), 0, 1)
    weights = rng.uniform(0.5, 1.5, size=2000)
    ours, theirs = device_check.scores(probability, truth, weights), br.scores(probability, truth, weights)
    for key in ("dice", "best_dice", "best_threshold", "volume_error"):
        assert ours[key] == pytest.approx(theirs[key], abs=1e-4), key
    assert ours["auc"] == pytest.approx(theirs["auc"], abs=1e-4)
