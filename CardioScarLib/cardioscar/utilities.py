"""The documented low-level utilities, kept for scripts written against the existing tool.

New code should use :mod:`cardioscar.io.meshio`, :mod:`cardioscar.prepare.slices` and
:mod:`cardioscar.prepare.mapping` directly; these adapters translate the documented array formats
(cell bounding boxes, ``(K, 5)`` row tables) to and from those modules, so both paths share one
implementation of the geometry.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Tuple

import numpy as np
from sklearn.preprocessing import MinMaxScaler

from cardioscar.fit.batching import ScarReconstructionDataset, create_complete_group_batches
from cardioscar.errors import CardioScarError
from cardioscar.prepare.mapping import map_slices_to_nodes
from cardioscar.io.meshio import read_mesh, write_mesh
from cardioscar.fit.normalization import denormalize
from cardioscar.prepare.slices import SliceLayer, slice_from_vtk_grid

__all__ = [
    "load_mesh_points",
    "load_grid_layer_data",
    "save_mesh_with_scalars",
    "process_vtk_grid_data",
    "process_image_slice_data",
    "normalize_coordinates",
    "denormalize_coordinates",
    "ScarReconstructionDataset",
    "create_complete_group_batches",
]

_AXES = np.eye(3)


def load_mesh_points(mesh_path: Path) -> np.ndarray:
    """Mesh node coordinates in LPS mm (converted from RAS when the file says SPACE=RAS)."""
    return read_mesh(mesh_path).points_lps()


def load_grid_layer_data(grid_path: Path, scalar_field_name: str = "ScalarValue") -> Tuple[np.ndarray, np.ndarray]:
    """Cell bounding boxes ``(M, 6)`` [xmin, xmax, ymin, ymax, zmin, zmax] and values ``(M,)``.

    Only meaningful for axis-aligned grids (the documented format); oblique grids are handled
    exactly by :func:`cardioscar.prepare.slices.slice_from_vtk_grid`.
    """
    layer = slice_from_vtk_grid(grid_path, scalar_field_name, half_thickness=1.0)
    valid = np.isfinite(layer.values)
    centres = layer.pixel_centres_lps()[valid]
    half = 0.5 * (np.abs(layer.axis_i) * layer.spacing[0] + np.abs(layer.axis_j) * layer.spacing[1])
    bounds = np.empty((len(centres), 6))
    bounds[:, 0::2] = centres - half
    bounds[:, 1::2] = centres + half
    return bounds, layer.values[valid].astype(np.float64)


def _slice_from_cell_bounds(cell_bounds: np.ndarray, values: np.ndarray, padding: float, label: str) -> SliceLayer:
    """Rebuild an axis-aligned pixel lattice from cell boxes so the shared mapper can use it."""
    bounds = np.asarray(cell_bounds, dtype=np.float64).reshape(-1, 6)
    values = np.asarray(values, dtype=np.float64).ravel()
    if len(bounds) == 0 or len(bounds) != len(values):
        raise CardioScarError(f"{label}: expected one value per cell, got {len(bounds)} cells and {len(values)} values.")
    lows, highs = bounds[:, 0::2], bounds[:, 1::2]
    centres = 0.5 * (lows + highs)
    sizes = np.median(highs - lows, axis=0)
    normal_axis = _normal_axis(centres, sizes)
    in_plane = [a for a in range(3) if a != normal_axis]
    spacing = [float(sizes[a]) for a in in_plane]
    if min(spacing) <= 0:
        raise CardioScarError(f"{label}: cells have zero in-plane size; expected pixel-sized boxes.")
    first = centres[:, in_plane].min(axis=0)
    index = np.rint((centres[:, in_plane] - first) / spacing).astype(np.int64)
    shape = index.max(axis=0) + 1
    grid = np.full((shape[1], shape[0]), np.nan)
    grid[index[:, 1], index[:, 0]] = values
    origin = np.empty(3)
    origin[in_plane] = first
    origin[normal_axis] = float(np.median(centres[:, normal_axis]))
    return SliceLayer(
        values=grid,
        origin=origin,
        axis_i=_AXES[in_plane[0]].copy(),
        axis_j=_AXES[in_plane[1]].copy(),
        spacing=(spacing[0], spacing[1]),
        half_thickness=float(padding) + 0.5 * float(sizes[normal_axis]),
        label=label,
    )


def _normal_axis(centres: np.ndarray, sizes: np.ndarray) -> int:
    """The axis the layer's cells share one centre along. In a one-row (or one-cell) layer two
    (or three) axes do, and the boxes alone are ambiguous: then an axis the cells have no extent
    along (a 2D grid's), else z, the axis the documented ``z_padding`` pads along."""
    spread = np.ptp(centres, axis=0)
    flat = np.flatnonzero(spread <= spread.min() + 1e-6 * max(1.0, float(np.abs(centres).max())))
    return int(min(flat, key=lambda axis: (sizes[axis] > 0, axis != 2)))


def _rows_from_layers(mesh_coords: np.ndarray, layers_data: List[Tuple[np.ndarray, np.ndarray]], padding: float, kind: str) -> np.ndarray:
    coords = np.asarray(mesh_coords, dtype=np.float64)
    slices = [_slice_from_cell_bounds(b, v, padding, f"{kind} {n}") for n, (b, v) in enumerate(layers_data)]
    mapping = map_slices_to_nodes(coords, slices)
    return np.column_stack(
        [coords[mapping.node_ids], mapping.group_values[mapping.group_ids], mapping.group_ids.astype(np.float64)]
    )


def process_vtk_grid_data(
    mesh_coords: np.ndarray, grid_layers_data: List[Tuple[np.ndarray, np.ndarray]], z_padding: float = 5.0
) -> np.ndarray:
    """Map mesh nodes to grid cells; ``(K, 5)`` rows [X, Y, Z, value, group_id].

    The slab is the cell's own thickness plus ``z_padding`` mm on each side of the layer, along
    the layer's normal axis; a node inside two layers' slabs appears once per group.
    """
    return _rows_from_layers(mesh_coords, grid_layers_data, z_padding, "grid layer")


def process_image_slice_data(
    mesh_coords: np.ndarray, slice_layers_data: List[Tuple[np.ndarray, np.ndarray]], z_padding: float = 5.0
) -> np.ndarray:
    """Same as :func:`process_vtk_grid_data` for voxel boxes taken from an image slice."""
    return _rows_from_layers(mesh_coords, slice_layers_data, z_padding, "image slice")


def normalize_coordinates(coords: np.ndarray) -> Tuple[np.ndarray, MinMaxScaler]:
    """Scale coordinates to [0, 1] per axis; returns the fitted scikit-learn scaler too."""
    scaler = MinMaxScaler()
    normalized = scaler.fit_transform(np.asarray(coords, dtype=np.float64))
    return normalized, scaler


def denormalize_coordinates(normalized_coords: np.ndarray, scaler_min: np.ndarray, scaler_max: np.ndarray) -> np.ndarray:
    """Undo :func:`normalize_coordinates` given the saved per-axis minima and maxima."""
    return denormalize(normalized_coords, scaler_min, scaler_max)


def save_mesh_with_scalars(mesh_path: Path, output_path: Path, scalar_fields: Dict[str, np.ndarray]) -> None:
    """Write the mesh at ``mesh_path`` with extra point arrays to ``output_path`` (atomically)."""
    write_mesh(read_mesh(mesh_path), output_path, scalar_fields)
