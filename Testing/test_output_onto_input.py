"""An output that is the command's own input mesh is refused on every face that writes a mesh
file (``apply``, ``export --format vtu``, the Python API's ``save_inference_result`` and
``export_model``, the batch script), as every other verb refuses its inputs as outputs.

Why: ``apply --mesh m.vtu --output m.vtu`` replaced the user's mesh, and not with a superset:
an earlier run's tissue tags, channels and core fields were dropped from it. A Slicer model node
is updated in place by design; a file on disk is not. (The command line's rows, with the exit
code and no heavy import, are in ``test_cli_light_refusals.py``.)
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import vtk

from cardioscar.errors import CardioScarError
from cardioscar.logic import InferenceResult, save_inference_result
from cardioscar.simulation.export import export_model


def _tetra_mesh(path: Path) -> bytes:
    """One tetrahedron with a ``scar_probability`` field, written by VTK; returns the file's bytes."""
    points = vtk.vtkPoints()
    for xyz in ((0, 0, 0), (10, 0, 0), (0, 10, 0), (0, 0, 10)):
        points.InsertNextPoint(*xyz)
    grid = vtk.vtkUnstructuredGrid()
    grid.SetPoints(points)
    cell = vtk.vtkTetra()
    for k in range(4):
        cell.GetPointIds().SetId(k, k)
    grid.InsertNextCell(cell.GetCellType(), cell.GetPointIds())
    field = vtk.vtkFloatArray()
    field.SetName("scar_probability")
    for value in (0.1, 0.9, 0.9, 0.2):
        field.InsertNextValue(value)
    grid.GetPointData().AddArray(field)
    writer = vtk.vtkXMLUnstructuredGridWriter()
    writer.SetFileName(str(path))
    writer.SetInputData(grid)
    assert writer.Write() == 1
    return path.read_bytes()


def _result(n_nodes: int) -> InferenceResult:
    mean = np.linspace(0.0, 1.0, n_nodes)
    return InferenceResult(mean_predictions=mean, std_predictions=np.zeros(n_nodes), binary_predictions=None,
                           n_nodes=n_nodes, mean_scar_probability=float(mean.mean()), mean_uncertainty=0.0)


def test_the_api_refuses_to_write_a_prediction_or_an_export_over_its_input_mesh(tmp_path: Path) -> None:
    mesh = tmp_path / "heart.vtu"
    before = _tetra_mesh(mesh)
    with pytest.raises(CardioScarError, match=r"^output_path .*heart.vtu is also an input: choose another file name$"):
        save_inference_result(_result(4), mesh, mesh)
    linked = tmp_path / "link.vtu"  # another name for the same file
    linked.symlink_to(mesh)
    with pytest.raises(CardioScarError, match=r"^--output .*heart.vtu is also an input: choose another file name$"):
        export_model(linked, mesh, fmt="vtu")
    core = tmp_path / "core.vtu"
    core_before = _tetra_mesh(core)
    with pytest.raises(CardioScarError, match="--output .*core.vtu is also an input"):
        export_model(mesh, core, fmt="vtu", core_mesh=core)
    assert mesh.read_bytes() == before and core.read_bytes() == core_before
    save_inference_result(_result(4), mesh, tmp_path / "prediction.vtu")  # another name is written
    assert (tmp_path / "prediction.vtu").is_file() and mesh.read_bytes() == before
