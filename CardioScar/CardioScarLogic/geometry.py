"""World coordinates of MRML nodes, converted to the library's LPS frame.

Slicer shows every node in world RAS: its own coordinates moved by its parent transform chain.
CardioScarLib works in LPS millimetres (RAS = diag(-1, -1, 1) LPS). The functions here read a
node's geometry *as the user sees it* without modifying the node: transforms are applied to
copies of the numbers, never hardened into the user's data.
"""

from __future__ import annotations

import numpy as np
import slicer
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from cardioscar.errors import CardioScarError

#: Homogeneous RAS <-> LPS flip (its own inverse).
RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0, 1.0])


def _matrix_to_numpy(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=np.float64)


def linear_world_matrix(node) -> np.ndarray:
    """4x4 node-to-world matrix of the node's parent transforms (identity without one).

    Raises:
        CardioScarError: the parent transform chain is not linear (a grid or B-spline warp),
            which a volume's voxel grid cannot follow.
    """
    transform_node = node.GetParentTransformNode()
    if transform_node is None:
        return np.eye(4)
    if not transform_node.IsTransformToWorldLinear():
        raise CardioScarError(
            f"'{node.GetName()}' is under the non-linear transform '{transform_node.GetName()}', which its voxel "
            "grid cannot follow: harden a registration warp (Data module, right-click > Harden transform), but "
            "not the acquisition transform Slicer adds to an unevenly spaced DICOM series (that resamples between "
            "slices): run `cardioscar prepare --image` on its DICOM folder, which keeps every slice where it was "
            "acquired."
        )
    matrix = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(matrix)
    return _matrix_to_numpy(matrix)


def volume_ijk_to_lps(volume_node) -> np.ndarray:
    """Voxel index (i, j, k) -> world LPS mm, including a linear parent transform."""
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    return RAS_TO_LPS @ linear_world_matrix(volume_node) @ _matrix_to_numpy(ijk_to_ras)


def model_points_lps(model_node) -> np.ndarray:
    """(N, 3) world LPS coordinates of a model's points; any parent transform, linear or not.

    The points are transformed as a copy (the node keeps its own coordinates), so a failed or
    cancelled run leaves the model exactly as it was.
    """
    mesh = model_node.GetMesh()
    if mesh is None or mesh.GetPoints() is None or mesh.GetNumberOfPoints() == 0:
        raise CardioScarError(f"The model '{model_node.GetName()}' has no points: choose a heart mesh with nodes.")
    points = mesh.GetPoints()
    transform_node = model_node.GetParentTransformNode()
    if transform_node is not None:
        to_world = vtk.vtkGeneralTransform()
        slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(transform_node, None, to_world)
        moved = vtk.vtkPoints()
        moved.SetDataTypeToDouble()
        to_world.TransformPoints(points, moved)
        points = moved
    ras = vtk_to_numpy(points.GetData()).astype(np.float64).reshape(-1, 3)
    return ras * np.array([-1.0, -1.0, 1.0])


def world_mesh_lps(model_node, points_lps: np.ndarray) -> vtk.vtkDataSet:
    """A copy of the model's mesh whose points are ``points_lps`` (its world LPS coordinates).

    The partial-volume correction needs the mesh's cells in the same frame as the slices; the
    copy shares the cells with the node but never changes the node's own points.
    """
    mesh = model_node.GetMesh()
    world = mesh.NewInstance()
    world.ShallowCopy(mesh)
    points = vtk.vtkPoints()
    points.SetData(numpy_to_vtk(np.ascontiguousarray(points_lps, dtype=np.float64), deep=True))
    world.SetPoints(points)
    return world


__all__ = ["RAS_TO_LPS", "linear_world_matrix", "volume_ijk_to_lps", "model_points_lps", "world_mesh_lps"]
