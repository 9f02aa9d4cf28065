"""Round 5 in the Slicer Logic on real MRML (slicer-core, no Qt): the scar field given as its own
core field is refused before the model node changes, as ``cardioscar export`` refuses it. What this
cannot prove: the panel's *Core field* box (Qt)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

from vtk.util.numpy_support import vtk_to_numpy  # noqa: E402

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.tissue import tag_model_node  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.io.meshio import Mesh, write_mesh  # noqa: E402
from test_simulation_export import _tet_mesh  # noqa: E402  (the same 64-node tetrahedral block)


def test_tag_refuses_the_scar_field_as_its_own_core_field(tmp_path):
    """*Tag* with *Core field* ``scar_probability`` (the model's own scar field) graded the scar at
    the two-field core threshold 0.5 and called it a core model's core; refused now, and the model
    is left untagged. A core field of its own on the same node is still taken."""
    grid = _tet_mesh().dataset
    scar = np.clip((vtk_to_numpy(grid.GetPoints().GetData())[:, 0] - 10.0) / 3.0, 0.0, 1.0)
    write_mesh(Mesh(dataset=grid, space="LPS"), tmp_path / "pred.vtk",
               {"scar_probability": scar, "core_probability": scar * 0.9})
    context = csl.create_scene()
    node = csl.load_model(context.scene, tmp_path / "pred.vtk")
    with pytest.raises(CardioScarError, match="the core field is the scar field 'scar_probability' of the same mesh"):
        tag_model_node(node, core_field="scar_probability")
    assert node.GetMesh().GetPointData().GetArray("tissue_tag") is None
    assert tag_model_node(node, core_field="core_probability").two_fields
