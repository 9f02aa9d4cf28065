"""The one-command demo, run for real once per session (default phantom, fast preset).

The run is shared with ``test_accuracy.py`` through :func:`demo_run` so the suite pays for the
~1-2 minute pipeline once. Everything here reads the files the demo wrote, through the same
readers a user would use.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from pathlib import Path

import numpy as np
import pytest

from cardioscar.phantoms.demo import FILES, run_demo
from cardioscar.errors import CardioScarError
from cardioscar.io.meshio import read_mesh
from cardioscar.evaluate.metrics import dice, node_volumes, volume_error
from cardioscar.phantoms.phantom import PhantomConfig
from cardioscar.fit.training import TrainingConfig
from conftest import _WarningRecords

_DEMO_RUN: dict = {}

METRIC_KEYS = ("dice", "volume_error", "auc")
STEPS = ("phantom", "prepare", "train", "apply", "baselines", "report")
VERSION_KEYS = ("cardioscar", "torch", "numpy", "vtk", "SimpleITK", "python")


def demo_run(tmp_path_factory) -> tuple[Path, dict]:
    """Run the real default demo once per test session; return (output folder, returned report). Its
    default log (INFO) is kept in ``_DEMO_RUN["said"]``."""
    if "out" not in _DEMO_RUN:
        out = tmp_path_factory.mktemp("demo") / "cardioscar_demo"
        said, logger = _WarningRecords(), logging.getLogger("cardioscar")
        said.setLevel(logging.INFO)  # the default log's lines, not only its warnings
        level = logger.level
        logger.addHandler(said)
        logger.setLevel(logging.INFO)
        try:
            _DEMO_RUN["report"] = run_demo(out, force_cpu=True)
        finally:
            logger.removeHandler(said)
            logger.setLevel(level)
        _DEMO_RUN["out"], _DEMO_RUN["said"] = out, said.messages
    return _DEMO_RUN["out"], _DEMO_RUN["report"]


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    return demo_run(tmp_path_factory)


def test_demo_says_its_mapping_once(demo):
    """The baselines step mapped the slices again and said prepare's "Mapping (...)" line a second time,
    after reading the mesh apply had read (the rule of Testing/test_quiet_logs.py: each thing once)."""
    said = _DEMO_RUN["said"]
    assert len([m for m in said if m.startswith("Mapping (")]) == 1, said
    mesh_reads = [m for m in said if m.startswith("Read mesh ") and "phantom_mesh.vtk" in m]
    assert len(mesh_reads) == 2, mesh_reads  # prepare's and apply's: the baselines use apply's


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    assert data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_demo_writes_every_file(demo):
    out, _ = demo
    expected = ["phantom_mesh.vtk", "phantom_surface.vtk", "phantom_lge.nii.gz", "phantom.json", *FILES.values()]
    for name in expected:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    leftovers = [p.name for p in out.iterdir() if ".part" in p.name]
    assert leftovers == [], f"temporary files left behind: {leftovers}"


def test_prediction_mesh_holds_all_fields_and_matches_the_report(demo):
    out, report = demo
    mesh = read_mesh(out / FILES["prediction"])
    assert mesh.n_points == report["phantom"]["nodes"]
    probability = mesh.point_array("scar_probability")
    uncertainty = mesh.point_array("scar_uncertainty")
    binary = mesh.point_array("scar_binary")
    truth = mesh.point_array("scar_truth")
    assert probability.min() >= 0.0 and probability.max() <= 1.0
    assert uncertainty.min() >= 0.0
    np.testing.assert_array_equal(binary.astype(bool), probability >= 0.5)
    # The report's figures are those of the files on disk, not of some other array.
    assert report["dice"] == pytest.approx(dice(probability, truth, 0.5), abs=1e-6)
    weights = node_volumes(read_mesh(out / "phantom_mesh.vtk").dataset)
    assert report["volume_error"] == pytest.approx(volume_error(probability, truth, weights, 0.5), abs=1e-5)


def test_report_json_has_all_keys_with_sane_values(demo):
    out, returned = demo
    report = json.loads((out / FILES["report_json"]).read_text(encoding="utf-8"))
    assert report == json.loads(json.dumps(returned))
    for key in METRIC_KEYS:
        assert isinstance(report[key], float), key
    assert 0.0 <= report["dice"] <= 1.0 and 0.0 <= report["auc"] <= 1.0 and report["volume_error"] >= -1.0
    assert 0.0 < report["uncertainty_on_slices"] < 0.5 and 0.0 < report["uncertainty_between_slices"] < 0.5
    assert set(report["seconds"]) == set(STEPS)
    assert all(isinstance(v, float) and 0.0 < v < 3600 for v in report["seconds"].values())
    assert isinstance(report["device"], str) and report["device"].startswith("cpu")
    assert set(report["versions"]) == set(VERSION_KEYS)
    assert all(isinstance(v, str) and v for v in report["versions"].values())
    assert set(report["baselines"]) == {"nearest_slice", "logodds"}
    for name, scores in report["baselines"].items():
        assert 0.0 <= scores["dice"] <= 1.0 and 0.0 <= scores["auc"] <= 1.0, name
        assert scores["volume_error"] >= -1.0, name
    phantom = report["phantom"]
    assert phantom["nodes"] > 30000 and phantom["slices"] >= 5
    assert 0 < phantom["groups"] <= phantom["covered_nodes"] <= phantom["nodes"]
    assert 0.05 <= phantom["scar_fraction"] <= 0.30
    training = report["training"]
    assert 1 <= training["best_epoch"] <= training["epochs"] <= training["preset"]["max_epochs"]
    assert math.isfinite(training["best_loss"]) and training["best_loss"] >= 0.0
    assert training["preset"] == TrainingConfig.fast().to_dict()


def test_report_png_is_a_real_picture(demo):
    out, _ = demo
    path = out / FILES["report_png"]
    width, height = _png_size(path)
    assert width >= 1000 and height >= 800
    assert path.stat().st_size > 100_000  # a rendered figure, not a blank canvas


def test_output_path_that_is_a_file_is_a_user_error(tmp_path):
    target = tmp_path / "not_a_folder"
    target.write_text("x")
    with pytest.raises(CardioScarError, match="not a folder"):
        run_demo(target)
    assert target.read_text(encoding="utf-8") == "x"
    assert not (tmp_path / FILES["report_json"]).exists()


def test_failure_mid_run_leaves_no_report(tmp_path):
    out = tmp_path / "demo"
    (out / FILES["report_png"]).mkdir(parents=True)  # the picture cannot be written: the last step fails
    (out / FILES["report_json"]).write_text('{"dice": 0.99}')  # an earlier run's report in the same folder
    with pytest.raises(CardioScarError, match="(?i)report.png is a folder"):  # found before the write
        run_demo(out, phantom_config=PhantomConfig(target_nodes=2000, seed=1),
                 training_config=TrainingConfig.fast(max_epochs=3))
    assert (out / FILES["model"]).is_file()  # earlier steps ran ...
    assert not (out / FILES["report_json"]).exists()  # ... but no report (not even an old one) describes it
    assert [p.name for p in out.iterdir() if ".part" in p.name] == []


def test_on_slice_uncertainty_counts_every_node_inside_a_slab(tmp_path):
    """The report's "on the slices" are the nodes inside any slab, including those of nearly empty
    boxes the partial-volume correction drops (they used to count as "between"); and a phantom
    whose pixels are already myocardial means is not corrected a second time."""
    from cardioscar.io.imageio import read_image
    from cardioscar.logic import load_preprocessing_result
    from cardioscar.prepare.mapping import map_slices_to_nodes
    from cardioscar.prepare.slices import slices_from_image

    for mode in ("volume", "myocardium"):
        out = tmp_path / mode
        report = run_demo(out, phantom_config=PhantomConfig(target_nodes=2000, seed=1, partial_volume=mode),
                          training_config=TrainingConfig.fast(max_epochs=3))
        mesh = read_mesh(out / FILES["prediction"])
        half = json.loads((out / "phantom.json").read_text(encoding="utf-8"))["slice_half_thickness_mm"]
        slabs = slices_from_image(read_image(out / "phantom_lge.nii.gz"), half_thickness=half)
        inside = np.zeros(mesh.n_points, dtype=bool)
        inside[map_slices_to_nodes(mesh.points_lps(), slabs).node_ids] = True
        uncertainty = mesh.point_array("scar_uncertainty")
        assert report["uncertainty_on_slices"] == pytest.approx(float(uncertainty[inside].mean()), rel=1e-6)
        assert report["uncertainty_between_slices"] == pytest.approx(float(uncertainty[~inside].mean()), rel=1e-6)
        prepared = load_preprocessing_result(out / FILES["training_data"])
        assert prepared.partial_volume_correction == (mode == "volume")
        if mode == "volume":
            assert np.unique(prepared.node_ids).size < inside.sum()  # the correction dropped some slab nodes


def test_demo_aha_table_matches_the_truth(demo):
    """The demo's AHA page: 17 segments of the prediction beside the phantom truth's, the same
    figures in aha.csv, and a reconstruction with Dice > 0.9 puts the scar in the same segments."""
    import csv

    out, _ = demo
    report = json.loads((out / FILES["report_json"]).read_text(encoding="utf-8"))
    aha = report["aha"]
    assert [row["segment"] for row in aha["segments"]] == list(range(1, 18))
    with open(out / FILES["aha_csv"]) as handle:
        table = list(csv.DictReader(handle))
    for row, entry in zip(table, aha["segments"]):
        assert float(row["scar_pct"]) == pytest.approx(entry["scar_pct"], abs=0.005)  # aha.csv: 0.01 points
    assert aha["mean_abs_error_scar_pct"] < 5.0
    truth_scarred = {e["segment"] for e in aha["segments"] if e["truth_scar_pct"] > 20}
    predicted_scarred = {e["segment"] for e in aha["segments"] if e["scar_pct"] > 20}
    assert truth_scarred and truth_scarred == predicted_scarred
    assert _png_size(out / FILES["bullseye_png"])[0] >= 1000
