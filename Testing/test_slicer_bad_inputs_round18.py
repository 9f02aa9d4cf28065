"""Round 18 of the bad-input review in the Slicer Logic, on a real MRML scene (slicer-core): a model
node with collapsed cells given to *Tag* and *Export*, and one without cells given to the *AHA*
analysis. `Documentation/bad-input.md`'s table has the rows (`Testing/test_bad_inputs_round18.py`
for the command line)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.tissue import export_model_node, tag_model_node  # noqa: E402
from cardioscar.errors import CardioScarError  # noqa: E402
from cardioscar.io.meshio import cell_layout, read_mesh, write_mesh  # noqa: E402
from test_bad_inputs_round17 import trained  # noqa: E402,F401 (the 1,500-node phantom and a model trained on it)
from test_bad_inputs_round18 import _tetra_mesh  # noqa: E402
from test_slicer_aha import _markups  # noqa: E402


def _prediction(trained, tmp_path: Path, cells) -> Path:
    """The phantom's mesh with the tetrahedra ``cells`` and its truth as the scar probability."""
    mesh = read_mesh(trained["paths"]["mesh"])
    path = tmp_path / "prediction.vtk"
    write_mesh(_tetra_mesh(mesh, cells), path, {"scar_probability": mesh.point_array("scar_truth")})
    return path


def test_export_of_a_model_node_with_collapsed_cells_is_refused(trained, tmp_path):
    """*Export* of a model whose tetrahedra list a node twice wrote them into the ``.elem`` (and the
    ``.vtu``), exit 0; now refused by the shared export check, nothing written."""
    offsets, connectivity = cell_layout(read_mesh(trained["paths"]["mesh"]).dataset)
    cells = connectivity.reshape(-1, 4).copy()
    cells[::5, 3] = cells[::5, 2]
    context = csl.create_scene()
    node = csl.load_model(context.scene, _prediction(trained, tmp_path, cells), name="heart")
    tags = tag_model_node(node)
    for fmt in ("opencarp", "vtu"):
        with pytest.raises(CardioScarError, match=rf"{len(cells[::5])} of its {len(cells)} cells list a node twice"):
            export_model_node(node, tags, tmp_path / "heart", fmt=fmt)
    assert not list(tmp_path.glob("heart.*"))


def test_aha_of_a_model_node_without_cells_is_refused_in_one_line(trained, tmp_path):
    """The Logic's *AHA* on a model node of points only (a point cloud loaded as a model) ended in an
    OverflowError traceback from the shape axis; now the library's one line."""
    context = csl.create_scene()
    node = csl.load_model(context.scene, _prediction(trained, tmp_path, np.zeros((0, 4), np.int64)), name="points")
    point = read_mesh(trained["paths"]["mesh"]).points_lps()[0]
    with pytest.raises(CardioScarError, match=r"has no cells with a volume or an area \(0 cells on its"):
        csl.CardioScarLogic.aha_segments(node, csl.AhaInputs(rv_markups=_markups(context.scene, [point])))
