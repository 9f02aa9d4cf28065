"""Turning the user's scar input node into a voxel array and its IJK -> LPS geometry.

Three kinds of input are accepted, because sites store scar three ways: an LGE intensity volume
(values used as targets, optionally min-max normalised), a label map (scar labels -> 1, the
rest -> 0) and a segmentation (the scar segment is exported to a temporary label map with
label 1 on the segmentation's own reference grid, so slice indices mean the same voxels as in
the LGE image it was drawn on).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import slicer
import vtk

from cardioscar.errors import CardioScarError

from .geometry import (RAS_TO_LPS, _matrix_to_numpy, linear_world_matrix, transformed_planes_lps, volume_ijk_to_lps,
                       volume_planes_lps)

#: Slice axis name -> position in a (k, j, i) array.
AXIS_TO_KJI = {"x": 2, "y": 1, "z": 0}


@dataclass
class ScarSource:
    """Voxel values (k, j, i), where they are in world LPS and whether they are labels.

    ``ijk_to_lps`` places the voxels; for a volume under a non-linear transform (Slicer's
    acquisition transform of an unevenly spaced DICOM series) it is ``None`` and ``planes[k]``
    places slice k instead (see :func:`geometry.volume_planes_lps`).
    """

    volume_kji: np.ndarray
    ijk_to_lps: np.ndarray | None
    is_label_map: bool
    label: str
    planes: list[np.ndarray] | None = None

    def slices(self, slice_axis: str, slice_indices, half_thickness: float) -> list:
        """The chosen slices as :class:`cardioscar.slices.SliceLayer` in world LPS."""
        from cardioscar.slices import slices_from_array, slices_from_planes

        if self.planes is None:
            return slices_from_array(self.volume_kji, self.ijk_to_lps, slice_axis, slice_indices, half_thickness,
                                     self.label)
        if slice_axis != "z":
            raise CardioScarError(
                f"'{self.label}' is under a non-linear transform that places each of its slices (as Slicer does for "
                "an unevenly spaced DICOM series): use its own slices, slice axis z.")
        return slices_from_planes(list(zip(self.volume_kji, self.planes)), slice_indices, half_thickness, self.label)


def _scar_segment_id(segmentation_node) -> str:
    segmentation = segmentation_node.GetSegmentation()
    ids = vtk.vtkStringArray()
    segmentation.GetSegmentIDs(ids)
    segment_ids = [ids.GetValue(i) for i in range(ids.GetNumberOfValues())]
    if not segment_ids:
        raise CardioScarError(f"The segmentation '{segmentation_node.GetName()}' is empty: paint the scar first.")
    if len(segment_ids) == 1:
        return segment_ids[0]
    named = [sid for sid in segment_ids if "scar" in segmentation.GetSegment(sid).GetName().lower()]
    if len(named) == 1:
        return named[0]
    names = ", ".join(segmentation.GetSegment(sid).GetName() for sid in segment_ids)
    raise CardioScarError(
        f"The segmentation '{segmentation_node.GetName()}' has {len(segment_ids)} segments ({names}): "
        "name exactly one of them 'Scar' (or keep only the scar segment)."
    )


def _node_ids(scene) -> set[str]:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def _from_segmentation(segmentation_node) -> ScarSource:
    """Export the scar segment (label 1) on the segmentation's reference grid, read it, and
    remove every node the export created (label map, its display node, its colour table)."""
    scene = segmentation_node.GetScene()
    segment_ids = vtk.vtkStringArray()
    segment_ids.InsertNextValue(_scar_segment_id(segmentation_node))
    existing = _node_ids(scene)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "CardioScar temporary scar labelmap")
    try:
        exported = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
            segmentation_node, segment_ids, labelmap, None, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
        if not exported or labelmap.GetImageData() is None:
            raise CardioScarError(
                f"Cannot export the scar segment of '{segmentation_node.GetName()}' to a label map: "
                "set the segmentation's source geometry to the LGE volume (Segment Editor).")
        values = np.array(slicer.util.arrayFromVolume(labelmap), copy=True)
        ijk_to_ras = vtk.vtkMatrix4x4()
        labelmap.GetIJKToRASMatrix(ijk_to_ras)
    finally:
        for node_id in _node_ids(scene) - existing:
            node = scene.GetNodeByID(node_id)
            if node is not None:
                scene.RemoveNode(node)
    grid = _matrix_to_numpy(ijk_to_ras)
    planes = transformed_planes_lps(segmentation_node, grid, values.shape[::-1])
    ijk_to_lps = None if planes is not None else RAS_TO_LPS @ linear_world_matrix(segmentation_node) @ grid
    return ScarSource(values, ijk_to_lps, True, segmentation_node.GetName(), planes)


def scar_source_from_node(node) -> ScarSource:
    """Read a scalar volume, label map or segmentation node (world geometry, node unchanged)."""
    if node is None:
        raise CardioScarError("Choose the LGE volume (or a scar label map / segmentation) as input.")
    if node.IsA("vtkMRMLSegmentationNode"):
        return _from_segmentation(node)
    if not node.IsA("vtkMRMLScalarVolumeNode"):
        raise CardioScarError(
            f"'{node.GetName()}' is a {node.GetClassName()}: choose a scalar volume, label map or segmentation.")
    if node.GetImageData() is None:
        raise CardioScarError(f"The volume '{node.GetName()}' has no image data: load the LGE image again.")
    values = np.array(slicer.util.arrayFromVolume(node), copy=True)
    if values.ndim != 3:
        raise CardioScarError(f"The volume '{node.GetName()}' must be a single-component 3D image, got shape {values.shape}.")
    planes = volume_planes_lps(node)
    return ScarSource(values, volume_ijk_to_lps(node) if planes is None else None,
                      node.IsA("vtkMRMLLabelMapVolumeNode"), node.GetName(), planes)


def slice_count(node, slice_axis: str) -> int:
    """Number of slices along ``slice_axis`` (image index axis x=i, y=j, z=k) of a volume node;
    0 when it cannot be known without exporting (segmentations, empty nodes)."""
    if slice_axis not in AXIS_TO_KJI:
        raise CardioScarError(f"slice axis must be x, y or z (image index axes i, j, k), got {slice_axis!r}.")
    if node is None or not node.IsA("vtkMRMLScalarVolumeNode") or node.GetImageData() is None:
        return 0
    dims = node.GetImageData().GetDimensions()  # (i, j, k)
    return int(dims[2 - AXIS_TO_KJI[slice_axis]])


__all__ = ["ScarSource", "scar_source_from_node", "slice_count", "AXIS_TO_KJI"]
