"""World coordinates of MRML nodes, converted to the library's LPS frame.

Slicer shows every node in world RAS: its own coordinates moved by its parent transform chain.
CardioScarLib works in LPS millimetres (RAS = diag(-1, -1, 1) LPS). The functions here read a
node's geometry *as the user sees it* without modifying the node: transforms are applied to
copies of the numbers, never hardened into the user's data.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

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
            f"'{node.GetName()}' is under the non-linear transform '{transform_node.GetName()}': "
            "harden it (Data module, right-click > Harden transform) or use a linear transform."
        )
    matrix = vtk.vtkMatrix4x4()
    transform_node.GetMatrixTransformToWorld(matrix)
    return _matrix_to_numpy(matrix)


def volume_ijk_to_lps(volume_node) -> np.ndarray:
    """Voxel index (i, j, k) -> world LPS mm, including a linear parent transform."""
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    return RAS_TO_LPS @ linear_world_matrix(volume_node) @ _matrix_to_numpy(ijk_to_ras)


#: How far (mm) a volume's slice, moved by a non-linear parent transform, may stray from a plane.
PLANE_TOLERANCE_MM = 0.05


def volume_planes_lps(volume_node) -> list[np.ndarray] | None:
    """Per slice k of a volume under a non-linear transform, the 4x4 matrix taking ``(i, j, 0, 1)``
    to world LPS mm where the transform puts that slice; ``None`` under linear transforms (then
    :func:`volume_ijk_to_lps` places every slice). See :func:`transformed_planes_lps`."""
    ijk_to_ras = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(ijk_to_ras)
    return transformed_planes_lps(volume_node, _matrix_to_numpy(ijk_to_ras), volume_node.GetImageData().GetDimensions())


def transformed_planes_lps(node, ijk_to_ras: np.ndarray, dimensions: tuple[int, int, int]) -> list[np.ndarray] | None:
    """Per slice k of a voxel grid (``ijk_to_ras``, ``dimensions`` i, j, k) that ``node``'s parent
    transforms move non-linearly, the 4x4 matrix taking ``(i, j, 0, 1)`` to world LPS mm where the
    transforms put that slice; ``None`` when they are linear.

    Why: Slicer loads an unevenly spaced DICOM series (a missing slice, uneven gaps) as a regular
    volume under a grid "acquisition transform" that moves each slice back to where it was
    acquired (a scar segmentation drawn on it may sit under the same transform). Each slice is
    still a plane there, and CardioScar follows it; hardening instead would resample between
    slices.

    Raises:
        CardioScarError: the transform bends a slice (a warp no plane can follow).
    """
    transform_node = node.GetParentTransformNode()
    if transform_node is None or transform_node.IsTransformToWorldLinear():
        return None
    to_world = vtk.vtkGeneralTransform()
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(transform_node, None, to_world)
    columns, rows, slices = dimensions
    # three corners fix the plane; the fourth corner and the centre check that it is one
    probes = np.array([[0, 0], [columns, 0], [0, rows], [columns, rows], [columns / 2, rows / 2]], dtype=np.float64)
    spacing_k = float(np.linalg.norm(ijk_to_ras[:3, 2]))
    planes = []
    for k in range(slices):
        grid_ras = np.column_stack([probes, np.full(len(probes), k), np.ones(len(probes))]) @ ijk_to_ras.T
        lps = np.array([to_world.TransformPoint(point[:3]) for point in grid_ras]) * np.diag(RAS_TO_LPS)[:3]
        origin = lps[0]
        axes = np.stack([(lps[1] - origin) / columns, (lps[2] - origin) / rows])
        stray = float(np.linalg.norm(lps - (origin + probes @ axes), axis=1).max())
        if stray > PLANE_TOLERANCE_MM:
            raise CardioScarError(
                f"'{node.GetName()}' is under the non-linear transform '{transform_node.GetName()}', which bends "
                f"slice k={k} by {stray:.2f} mm (a slice must stay a plane): harden it (Data module, right-click > "
                "Harden transform) if it is a registration warp.")
        normal = np.cross(axes[0], axes[1])
        matrix = np.eye(4)
        matrix[:3, 0], matrix[:3, 1], matrix[:3, 3] = axes[0], axes[1], origin
        matrix[:3, 2] = normal / np.linalg.norm(normal) * spacing_k
        planes.append(matrix)
    return planes


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


def _digest(*arrays: np.ndarray) -> str:
    """A checksum of arrays' numbers, types and shapes (blake2b: about 1 GB/s, so a few ms for the
    points of a simulation mesh)."""
    digest = hashlib.blake2b(digest_size=16)
    for values in arrays:
        data = np.ascontiguousarray(values)
        digest.update(repr((data.dtype.str, data.shape)).encode())
        digest.update(memoryview(data).cast("B"))
    return digest.hexdigest()


def _cell_arrays(mesh: vtk.vtkDataSet) -> list[np.ndarray]:
    """The arrays that say which nodes each cell joins: each cell array's offsets and connectivity
    (a polydata's vertices, lines, polygons and strips; an unstructured grid's cells)."""
    cell_arrays = ([mesh.GetCells()] if isinstance(mesh, vtk.vtkUnstructuredGrid)
                   else [mesh.GetVerts(), mesh.GetLines(), mesh.GetPolys(), mesh.GetStrips()])
    return [vtk_to_numpy(array) for cells in cell_arrays if cells is not None
            for array in (cells.GetOffsetsArray(), cells.GetConnectivityArray())]


#: A state's keys for the model's geometry, and what a change of each is called.
_GEOMETRY = {"points": "its points moved", "cells": "its cells changed"}
_FIELD = "field "


def model_state(model_node, fields: Sequence[str] = (), points_lps: np.ndarray | None = None) -> dict[str, str]:
    """Checksums of what a step computed from: the model's world points (its nodes where the user
    sees them; ``points_lps`` when the caller has just read them with :func:`model_points_lps`, so a
    large mesh is not transformed twice), its cells (which nodes each joins: a result per cell
    belongs to these cells) and its point ``fields`` ("" for a field it lacks). Taken when a
    worker's inputs are read and again before its result is written, it tells a model edited
    meanwhile from one that only kept its node and cell counts."""
    mesh = model_node.GetMesh()
    data = mesh.GetPointData()
    points = model_points_lps(model_node) if points_lps is None else points_lps
    state = {"points": _digest(points), "cells": _digest(*_cell_arrays(mesh))}
    for name in dict.fromkeys(fields):
        array = data.GetArray(name)
        state[_FIELD + name] = "" if array is None else _digest(vtk_to_numpy(array))
    return state


def check_unchanged(model_node, state: dict[str, str], step: str, role: str = "model") -> None:
    """Refuse to write the result of ``step`` (e.g. "the tagging") on a model that changed since
    ``state`` (:func:`model_state`) was taken: its points moved (edited, or its transform changed),
    its cells were rebuilt, or one of the fields the step read was rewritten. ``role``: what the
    step read the node as, for the message ("model", or "core model" for a tagging's second field)."""
    now = model_state(model_node, [key[len(_FIELD):] for key in state if key.startswith(_FIELD)])
    changed = [_GEOMETRY.get(key) or f"its field '{key[len(_FIELD):]}' changed"
               for key in state if now.get(key) != state[key]]
    if changed:
        raise CardioScarError(f"The {role} '{model_node.GetName()}' changed during {step} ({' and '.join(changed)}): "
                              f"nothing was written; run it again on the model as it is now")


__all__ = ["RAS_TO_LPS", "linear_world_matrix", "volume_ijk_to_lps", "volume_planes_lps", "transformed_planes_lps",
           "model_points_lps", "world_mesh_lps", "model_state", "check_unchanged"]
