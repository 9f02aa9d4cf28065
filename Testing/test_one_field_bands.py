"""One field cut at two probabilities is two bands of one quantity, not a border zone and a core.

A border zone and a core are two tissue classes, two thresholds of the signal (a scar rule's scar
and core models). A row of one field (a label map's scar) was reported with ``border_percent`` and
``core_percent`` in the cohort table, and its export named tags 2 and 3 border zone and core, as
the two-field classes: a clinician read its confident part as dense core. Now the table, the
export's log and its ``region_legend``, and the Slicer legend (``test_slicer_tissue``) and batch
script (``test_batch_script``) call them probability bands; two fields' output is as it was.
"""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from vtk.util.numpy_support import vtk_to_numpy

from cardioscar.cli import main
from cardioscar.cohort.manifest import DEFAULTS, PatientSpec
from cardioscar.cohort.summary import SUMMARY_CSV, write_summary
from cardioscar.cohort.tasks import _measure, _tissue_tags
from cardioscar.io.meshio import write_mesh
from test_simulation_export import _tet_mesh


def _fields():
    mesh = _tet_mesh()
    x = vtk_to_numpy(mesh.dataset.GetPoints().GetData())[:, 0]
    scar = (x - x.min()) / np.ptp(x)  # 0, 1/3, 2/3, 1 across the block
    return mesh, scar, (scar > 0.9).astype(float)


def test_a_one_field_export_calls_its_tags_probability_bands_and_two_fields_stay_tissue(tmp_path, capsys):
    mesh, scar, core = _fields()
    write_mesh(mesh, tmp_path / "pred.vtk", {"scar_probability": scar, "core_probability": core})
    assert main(["export", "--mesh", str(tmp_path / "pred.vtk"), "--output", str(tmp_path / "one")]) == 0
    said = capsys.readouterr().err
    sidecar = json.loads((tmp_path / "one.json").read_text())
    assert sidecar["tags"] == {"healthy": 1, "border_zone": 2, "core": 3}  # the machine-read names stay
    assert sidecar["region_legend"] == {
        "1": "healthy: scar field < 0.5",
        "2": "probability band 0.5-0.8 of one scar field, not border-zone tissue",
        "3": "probability >= 0.8 of one scar field, not core tissue"}
    assert "probability band 0.5-0.8 tag 2:" in said and "probability >= 0.8 tag 3:" in said
    assert "tags 2 and 3 are probability bands of one scar field, not border-zone and core tissue" in said
    assert "border_zone  tag" not in said and "core         tag" not in said

    assert main(["export", "--mesh", str(tmp_path / "pred.vtk"), "--output", str(tmp_path / "two"),
                 "--core-field", "core_probability"]) == 0
    said = capsys.readouterr().err
    sidecar = json.loads((tmp_path / "two.json").read_text())
    assert "region_legend" not in sidecar  # two fields: the tissue classes, as before
    assert "border_zone  tag 2:" in said and "core         tag 3:" in said and "probability band" not in said


def test_a_one_field_cohort_row_reports_bands_in_their_own_columns(tmp_path):
    mesh, scar, core = _fields()
    spec = PatientSpec("P1", 2, tmp_path / "pred.vtk", (), {**DEFAULTS, "threshold": 0.5, "core_threshold": 0.8})
    one = _measure(spec, mesh, scar, None)
    assert one["classes"] == "bands" and "border_percent" not in one and "core_percent" not in one
    assert one["band_percent"] > 0 and one["top_band_percent"] > 0
    assert one["scar_percent"] == pytest.approx(one["band_percent"] + one["top_band_percent"], abs=1e-3)
    two_spec = PatientSpec("P2", 3, tmp_path / "pred.vtk", (), {**DEFAULTS, "threshold": 0.5, "core_threshold": 0.5})
    two = _measure(two_spec, mesh, scar, None, _tissue_tags(two_spec, mesh, scar, core))
    assert two["classes"] == "tissue" and "band_percent" not in two and two["core_percent"] > 0
    # a report.json written before the bands were named so (its patient skipped, not redone)
    earlier = {"id": "P0", "status": "skipped", "classes": "bands", "scar_percent": 5.0, "border_percent": 1.0,
               "core_percent": 4.0}
    write_summary(tmp_path, [earlier, {"id": "P1", "status": "done", **one}, {"id": "P2", "status": "done", **two}])
    with open(tmp_path / SUMMARY_CSV, newline="") as handle:
        rows = {row["id"]: row for row in csv.DictReader(handle)}
    assert (rows["P0"]["border_percent"], rows["P0"]["band_percent"], rows["P0"]["top_band_percent"]) == ("", "1", "4")
    assert rows["P1"]["border_percent"] == rows["P1"]["core_percent"] == "" and rows["P1"]["top_band_percent"]
    assert rows["P2"]["band_percent"] == rows["P2"]["top_band_percent"] == "" and rows["P2"]["core_percent"]
