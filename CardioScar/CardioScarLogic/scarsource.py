"""Turning the user's scar input node into a voxel array and its IJK -> LPS geometry.

Three kinds of input are accepted, because sites store scar three ways: an LGE intensity volume
(values used as targets, optionally min-max normalised), a label map (scar labels -> 1, the
rest -> 0) and a segmentation (the scar segment is exported to a temporary label map with
label 1 on the segmentation's own reference grid, so slice indices mean the same voxels as in
the LGE image it was drawn on).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import slicer
import vtk

from cardioscar.errors import CardioScarError
from cardioscar.io.imageio import check_spacing, read_header

from .geometry import (RAS_TO_LPS, _matrix_to_numpy, linear_world_matrix, transformed_planes_lps, volume_ijk_to_lps,
                       volume_planes_lps)

#: Slice axis name -> position in a (k, j, i) array.
AXIS_TO_KJI = {"x": 2, "y": 1, "z": 0}


#: Labels of an exported segmentation: its scar segment, and myocardium outside the scar.
SEGMENT_SCAR, SEGMENT_MYOCARDIUM = 1, 2


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
    #: A segmentation's scar segment, exported as label 1: the scar labels the user gives for
    #: label maps do not apply to it.
    from_segmentation: bool = False
    #: The name of the segmentation's myocardium segment (exported as label 2), or "".
    myocardium_segment: str = ""
    #: The name of the segmentation's scar segment (exported as label 1), or "": its warnings name it.
    scar_segment: str = ""

    def scar_labels(self, chosen: list[int] | None) -> list[int] | None:
        """The labels that mean scar in this input: ``chosen`` (the user's), or 1 for a segmentation."""
        return [SEGMENT_SCAR] if self.from_segmentation else chosen

    def myocardium_labels(self, chosen: list[int] | None) -> list[int] | None:
        """The labels that mean myocardium in this input: ``chosen`` (the user's) for a label map,
        scar and myocardium segment for a segmentation with one, else None (not known)."""
        if not self.is_label_map:
            return None
        if not self.from_segmentation:
            return chosen
        return [SEGMENT_SCAR, SEGMENT_MYOCARDIUM] if self.myocardium_segment else None

    def slices(self, slice_axis: str, slice_indices, half_thickness: float) -> list:
        """The chosen slices as :class:`cardioscar.prepare.slices.SliceLayer` in world LPS."""
        from cardioscar.prepare.slices import slices_from_array, slices_from_planes

        if self.planes is None:
            return slices_from_array(self.volume_kji, self.ijk_to_lps, slice_axis, slice_indices, half_thickness,
                                     self.label)
        if slice_axis != "z":
            raise CardioScarError(
                f"'{self.label}' is under a non-linear transform that places each of its slices (as Slicer does for "
                "an unevenly spaced DICOM series): use its own slices, slice axis z.")
        return slices_from_planes(list(zip(self.volume_kji, self.planes)), slice_indices, half_thickness, self.label)


def _segment_ids(segmentation_node) -> list[str]:
    ids = vtk.vtkStringArray()
    segmentation_node.GetSegmentation().GetSegmentIDs(ids)
    return [ids.GetValue(i) for i in range(ids.GetNumberOfValues())]


def _segment_names(segmentation_node, segment_ids) -> str:
    return ", ".join(segmentation_node.GetSegmentation().GetSegment(sid).GetName() for sid in segment_ids)


def segment_named(segmentation_node, name: str, role: str = "myocardium") -> str:
    """The ID of the segment called ``name`` (surrounding spaces ignored; case too, unless two
    segments differ only in case: then the one spelt as typed, or a refusal naming both, where the
    first of them was taken without a word); ``role`` (what the segment is for) names it in the error."""
    segmentation = segmentation_node.GetSegmentation()
    segment_ids = _segment_ids(segmentation_node)
    wanted = name.strip().lower()
    same = [sid for sid in segment_ids if segmentation.GetSegment(sid).GetName().strip().lower() == wanted]
    exact = [sid for sid in same if segmentation.GetSegment(sid).GetName().strip() == name.strip()]
    if len(exact) == 1 or len(same) == 1:
        return (exact or same)[0]
    if same:
        raise CardioScarError(f"The segmentation '{segmentation_node.GetName()}' has {len(same)} segments named "
                              f"'{name.strip()}' in some case ({_segment_names(segmentation_node, same)}): rename "
                              f"all but the {role} segment in the Segmentations module.")
    raise CardioScarError(f"The segmentation '{segmentation_node.GetName()}' has no segment named '{name}' (segments: "
                          f"{_segment_names(segmentation_node, segment_ids) or 'none'}): type the {role} "
                          "segment's name as the Segmentations module shows it.")


def _scar_segment_id(segmentation_node, myocardium_id: str | None = None) -> str:
    segmentation = segmentation_node.GetSegmentation()
    segment_ids = [sid for sid in _segment_ids(segmentation_node) if sid != myocardium_id]
    if not segment_ids:
        raise CardioScarError(f"The segmentation '{segmentation_node.GetName()}' has no scar segment"
                              f"{' besides the myocardium' if myocardium_id else ''}: paint the scar first.")
    if len(segment_ids) == 1:
        return segment_ids[0]
    named = [sid for sid in segment_ids if "scar" in segmentation.GetSegment(sid).GetName().lower()]
    if len(named) == 1:
        return named[0]
    raise CardioScarError(
        f"The segmentation '{segmentation_node.GetName()}' has {len(segment_ids)} segments "
        f"{'besides the myocardium ' if myocardium_id else ''}({_segment_names(segmentation_node, segment_ids)}): "
        "name exactly one of them 'Scar' (or keep only the scar segment)."
    )


def _node_ids(scene) -> set[str]:
    return {scene.GetNthNode(i).GetID() for i in range(scene.GetNumberOfNodes())}


def export_segments(segmentation_node, segment_ids: list[str]) -> tuple[list[np.ndarray], np.ndarray]:
    """Each segment as a (k, j, i) boolean array on the segmentation's reference grid, and that
    grid's IJK -> RAS matrix. One export per segment, so that overlapping segments (scar drawn
    inside the myocardium) both keep their voxels. Every node (label map, its display node, its
    colour table) and representation the exports create is removed again."""
    scene = segmentation_node.GetScene()
    existing = _node_ids(scene)
    # the export converts a segmentation drawn as surfaces to a label map representation, which
    # stays on the node; it is removed again so that reading the input leaves it as it was
    binary = slicer.vtkSegmentationConverter.GetSegmentationBinaryLabelmapRepresentationName()
    had_binary = segmentation_node.GetSegmentation().ContainsRepresentation(binary)
    arrays, ijk_to_ras = [], vtk.vtkMatrix4x4()
    try:
        for segment_id in segment_ids:
            labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "CardioScar temporary segment labelmap")
            one = vtk.vtkStringArray()
            one.InsertNextValue(segment_id)
            exported = slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, one, labelmap, None, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY)
            if not exported or labelmap.GetImageData() is None:
                raise CardioScarError(
                    f"Cannot export the segment '{_segment_names(segmentation_node, [segment_id])}' of "
                    f"'{segmentation_node.GetName()}' to a label map: set the segmentation's source geometry to the "
                    "LGE volume (Segment Editor).")
            arrays.append(np.array(slicer.util.arrayFromVolume(labelmap), copy=True) != 0)
            labelmap.GetIJKToRASMatrix(ijk_to_ras)
    finally:
        for node_id in _node_ids(scene) - existing:
            node = scene.GetNodeByID(node_id)
            if node is not None:
                scene.RemoveNode(node)
        if not had_binary:
            segmentation_node.GetSegmentation().RemoveRepresentation(binary)
    return arrays, _matrix_to_numpy(ijk_to_ras)


def _refuse_own_extent(segmentation_node, shape: tuple[int, ...]) -> None:
    """Refuse a segmentation without a source (reference image) geometry as the scar map: Slicer then
    exports its segments on their own extent, so the "slices" were the scar's bounding box alone (the
    segmented phantom's scar imported by a script without the geometry: 6 slices of its box for the
    LGE's 9), the heart outside it without a healthy pixel, and only a warning that blamed the mesh's
    frame; a segment imported from a model surface is cut on a fine grid of its own."""
    geometry = slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName()
    if not segmentation_node.GetSegmentation().GetConversionParameter(geometry):
        raise CardioScarError(
            f"The segmentation '{segmentation_node.GetName()}' has no source geometry, so its segments are read on "
            f"their own extent ({shape[0]} slices of {shape[2]} x {shape[1]} pixels), not on the LGE's slices, and the "
            "heart outside the scar gets no pixel: set its source geometry to the LGE volume (Segment Editor: choose "
            "the LGE as the source volume; in Python SetReferenceImageGeometryParameterFromVolumeNode(lge)).")


def _from_segmentation(segmentation_node, myocardium_segment: str = "") -> ScarSource:
    """The scar segment as label 1 (and, with ``myocardium_segment``, the rest of that segment
    as label 2) on the segmentation's reference grid."""
    if not _segment_ids(segmentation_node):
        raise CardioScarError(f"The segmentation '{segmentation_node.GetName()}' is empty: paint the scar first.")
    myocardium_id = segment_named(segmentation_node, myocardium_segment) if myocardium_segment else None
    segment_ids = [_scar_segment_id(segmentation_node, myocardium_id)] + ([myocardium_id] if myocardium_id else [])
    masks, grid = export_segments(segmentation_node, segment_ids)
    _refuse_own_extent(segmentation_node, masks[0].shape)
    if myocardium_id and not masks[1].any():
        # the scar would be the only myocardium: every group a scar pixel, a field of scar everywhere
        raise CardioScarError(f"The myocardium segment '{myocardium_segment.strip()}' of '{segmentation_node.GetName()}' "
                              "is empty: paint the myocardium (scar included), or leave Myocardium segment blank.")
    values = np.where(masks[0], SEGMENT_SCAR, 0).astype(np.uint8)
    if myocardium_id:
        values[masks[1] & ~masks[0]] = SEGMENT_MYOCARDIUM
    scar_segment = _segment_names(segmentation_node, segment_ids[:1])
    return _segmentation_source(segmentation_node, values, grid, myocardium_segment.strip(), scar_segment)


def _segmentation_source(segmentation_node, values: np.ndarray, grid: np.ndarray, myocardium_segment: str = "",
                         scar_segment: str = "") -> ScarSource:
    """Exported segment values on the segmentation's reference ``grid``, placed in world LPS."""
    planes = transformed_planes_lps(segmentation_node, grid, values.shape[::-1])
    ijk_to_lps = None if planes is not None else RAS_TO_LPS @ linear_world_matrix(segmentation_node) @ grid
    return ScarSource(values, ijk_to_lps, True, segmentation_node.GetName(), planes, from_segmentation=True,
                      myocardium_segment=myocardium_segment, scar_segment=scar_segment)


def segment_source(segmentation_node, name: str, what: str) -> ScarSource:
    """One named segment of a segmentation as a 0/1 label map (a mask: myocardium, blood pool or
    remote for the scar rules), on the segmentation's reference grid, node unchanged."""
    segment_id = segment_named(segmentation_node, name, what)
    masks, grid = export_segments(segmentation_node, [segment_id])
    return _segmentation_source(segmentation_node, masks[0].astype(np.uint8), grid)


def scar_source_from_node(node, myocardium_segment: str = "") -> ScarSource:
    """Read a scalar volume, label map or segmentation node (world geometry, node unchanged);
    ``myocardium_segment`` names a segmentation's myocardium segment."""
    if node is None:
        raise CardioScarError("Choose the LGE volume (or a scar label map / segmentation) as input.")
    if node.IsA("vtkMRMLSegmentationNode"):
        return _from_segmentation(node, myocardium_segment)
    if not node.IsA("vtkMRMLScalarVolumeNode"):
        raise CardioScarError(
            f"'{node.GetName()}' is a {node.GetClassName()}: choose a scalar volume, label map or segmentation.")
    if node.GetImageData() is None:
        raise CardioScarError(f"The volume '{node.GetName()}' has no image data: load the LGE image again.")
    check_spacing(node.GetSpacing(), f"'{node.GetName()}'")
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


#: Image formats whose one file places every voxel (a DICOM file holds one slice of a series).
_VOLUME_FILE_SUFFIXES = (".nii", ".nii.gz", ".nrrd", ".nhdr", ".mha", ".mhd")


def counted_from_the_other_end(node, slice_axis: str) -> bool:
    """Whether Slicer numbers the slices of ``node`` along ``slice_axis`` from the other end than
    the image file it was read from.

    Why it matters: Slicer's reader flips one axis of an image whose axes are left-handed (a
    negative direction determinant, common in NIfTI), so its slice k is the file's slice K-1-k.
    The geometry stays right, but ``cardioscar prepare --slice-indices`` on the same file counts
    the other way. The Logic keeps Slicer's numbering (what the Data Probe shows) and warns.
    Only the file's header is read; False when the node has no such file or no longer matches it.
    """
    storage = node.GetStorageNode() if node.IsA("vtkMRMLVolumeNode") else None
    path = storage.GetFileName() if storage is not None else None
    if not path or not path.lower().endswith(_VOLUME_FILE_SUFFIXES) or not Path(path).is_file():
        return False
    reader = read_header(path)
    if reader is None:  # the file changed since Slicer read it: nothing to compare with
        return False
    if node.GetImageData() is None or tuple(reader.GetSize()) != tuple(node.GetImageData().GetDimensions()):
        return False
    column = 2 - AXIS_TO_KJI[slice_axis]
    file_axis = np.array(reader.GetDirection()).reshape(3, 3)[:, column]
    ijk_to_ras = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(ijk_to_ras)
    node_axis = (RAS_TO_LPS @ _matrix_to_numpy(ijk_to_ras))[:3, column]
    return float(file_axis @ node_axis) < 0.0


__all__ = ["ScarSource", "scar_source_from_node", "segment_named", "export_segments", "slice_count",
           "counted_from_the_other_end", "AXIS_TO_KJI"]
