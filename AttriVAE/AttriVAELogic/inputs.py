"""The LGE node and its labels as the two NIfTI files ``cardioscar attrivae`` reads.

The command line works in LPS on files; Slicer holds RAS nodes that may sit under a linear
transform, and the labels may be a label map on another grid or a segmentation. So both files
are written on the LGE node's *world* grid (its IJK -> RAS matrix moved by its parent
transforms, flipped to LPS): the LGE as float32, the labels resampled onto that grid by nearest
neighbour in world coordinates. The labels are written as 1 cavity, 2 myocardium, 0 elsewhere
whatever convention they came in (EMIDEC, ACDC, a segmentation's segments), which the command
line's default EMIDEC convention reads as they are: an ACDC map's right ventricle (label 1)
cannot be taken for the LV cavity, and ``explain`` needs no label options. The explain command returns its maps on the same grid, which
:mod:`AttriVAELogic.scene` checks before putting them back on the node's own grid.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer

from cardioscar.attrivae.labels import MIN_CAVITY_INSIDE, cavity_share_inside
from cardioscar.errors import CardioScarError
from cardioscar.io.imageio import check_spacing
from CardioScarLogic.geometry import RAS_TO_LPS, linear_world_matrix, volume_ijk_to_lps
from CardioScarLogic.headless import check_file_of_node
from CardioScarLogic.scarsource import export_segments, segment_named

from .options import AttriVAEOptions

IMAGE_FILE = "image.nii.gz"
LABELS_FILE = "labels.nii.gz"
#: Labels of the written label file (the command line's default EMIDEC convention reads them).
CAVITY, MYOCARDIUM = 1, 2
#: How far (relative) a grid's axes may be from orthogonal: NIfTI and ITK hold no shear.
ORTHOGONALITY_TOLERANCE = 1e-4


@dataclass
class WrittenInputs:
    """The two files and the LGE's world grid (LPS)."""

    image: Path
    labels: Path
    ijk_to_lps: np.ndarray
    size: tuple  # (i, j, k)


def image_from_array(values_kji: np.ndarray, ijk_to_lps: np.ndarray, what: str) -> sitk.Image:
    """A SimpleITK image of ``values_kji`` placed by ``ijk_to_lps`` (refused when sheared)."""
    axes = ijk_to_lps[:3, :3]
    spacing = np.linalg.norm(axes, axis=0)
    check_spacing(tuple(float(s) for s in spacing), what)
    direction = axes / spacing
    if np.abs(direction.T @ direction - np.eye(3)).max() > ORTHOGONALITY_TOLERANCE:
        raise CardioScarError(f"{what} is under a transform that shears its voxel grid: harden a rigid transform or "
                              "remove the shear (NIfTI cannot hold a sheared grid).")
    image = sitk.GetImageFromArray(np.ascontiguousarray(values_kji))
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetDirection(tuple(float(d) for d in direction.ravel()))
    image.SetOrigin(tuple(float(o) for o in ijk_to_lps[:3, 3]))
    return image


def _check_lge(node) -> None:
    if node is None:
        raise CardioScarError("Choose the LGE volume.")
    if not node.IsA("vtkMRMLScalarVolumeNode") or node.IsA("vtkMRMLLabelMapVolumeNode"):
        raise CardioScarError(f"'{node.GetName()}' is a {node.GetClassName()}: choose the LGE intensity volume "
                              "(a scalar volume, not a label map).")
    if node.GetImageData() is None:
        raise CardioScarError(f"The volume '{node.GetName()}' has no image data: load the LGE image again.")
    check_file_of_node(node)


def _label_image(labels_node, options: AttriVAEOptions) -> sitk.Image:
    """The labels as 1 cavity / 2 myocardium / 0 on their own world grid."""
    if labels_node is None:
        raise CardioScarError("Choose the labels: a label map (cavity and myocardium labels) or a segmentation.")
    if labels_node.IsA("vtkMRMLSegmentationNode"):
        cavity_names, myocardium_names = options.segment_names()
        ids = [[segment_named(labels_node, name, role) for name in names]
               for names, role in ((cavity_names, "cavity"), (myocardium_names, "myocardium"))]
        masks, grid_ras = export_segments(labels_node, ids[0] + ids[1])
        cavity, myocardium = np.any(masks[:len(ids[0])], axis=0), np.any(masks[len(ids[0]):], axis=0)
        ijk_to_lps = RAS_TO_LPS @ linear_world_matrix(labels_node) @ grid_ras
    else:
        if not labels_node.IsA("vtkMRMLScalarVolumeNode") or labels_node.GetImageData() is None:
            raise CardioScarError(f"The labels '{labels_node.GetName()}' must be a label map or a segmentation.")
        check_file_of_node(labels_node)
        cavity_labels, myocardium_labels = options.label_lists()
        values = np.array(slicer.util.arrayFromVolume(labels_node), copy=True)
        if values.ndim != 3 or not np.all(np.isfinite(values)) or not np.array_equal(values, np.round(values)):
            raise CardioScarError(f"The labels '{labels_node.GetName()}' must be a 3D volume of whole numbers.")
        cavity, myocardium = np.isin(values, cavity_labels), np.isin(values, myocardium_labels)
        ijk_to_lps = volume_ijk_to_lps(labels_node)
    values = np.zeros(cavity.shape, dtype=np.uint8)
    values[cavity] = CAVITY
    values[myocardium] = MYOCARDIUM
    return image_from_array(values, ijk_to_lps, f"The labels '{labels_node.GetName()}'")


def _label_text(labels_node, options: AttriVAEOptions, role: str) -> str:
    """What the user chose as ``role`` in ``labels_node``, for an error."""
    if labels_node.IsA("vtkMRMLSegmentationNode"):
        return f"segment(s) {options.cavity_segments if role == 'cavity' else options.myocardium_segments}"
    return f"label(s) {options.cavity_labels if role == 'cavity' else options.myocardium_labels}"


def _check_cavity_inside(written: np.ndarray, labels_node, options: AttriVAEOptions) -> None:
    """Refuse, before anything runs, a cavity outside its myocardium's ring (an ACDC map read with
    EMIDEC's convention: its right ventricle, 1, taken for the cavity). The command line refuses it
    too, but in its own words: the written file's temporary path and its --cavity-labels option."""
    share = cavity_share_inside(written, (CAVITY,), (MYOCARDIUM,))
    if share < MIN_CAVITY_INSIDE:
        cavity, myocardium = (_label_text(labels_node, options, role) for role in ("cavity", "myocardium"))
        raise CardioScarError(
            f"Only {100 * share:.0f} % of the cavity ({cavity}) of '{labels_node.GetName()}' lies inside its "
            f"myocardium ({myocardium}): choose the label convention of these labels (EMIDEC: cavity 1, myocardium "
            "2,3,4; ACDC: 3 and 2).")


def write_inputs(lge_node, labels_node, options: AttriVAEOptions, folder: Path) -> WrittenInputs:
    """Write the LGE and its labels (on the LGE's world grid) into ``folder``; nodes unchanged.

    Raises:
        CardioScarError: a wrong node kind, a sheared or non-linear transform, or labels whose
            cavity or myocardium has no voxel on the LGE's grid (a wrong label convention, or
            labels drawn on another study).
    """
    _check_lge(lge_node)
    values = np.array(slicer.util.arrayFromVolume(lge_node), copy=True)
    if values.ndim != 3:
        raise CardioScarError(f"The LGE '{lge_node.GetName()}' must be a single-component 3D image, "
                              f"got shape {values.shape}.")
    if not np.all(np.isfinite(values)):
        raise CardioScarError(f"The LGE '{lge_node.GetName()}' has NaN or infinite voxels: fix or reload the image.")
    ijk_to_lps = volume_ijk_to_lps(lge_node)
    image = image_from_array(values.astype(np.float32), ijk_to_lps, f"The LGE '{lge_node.GetName()}'")
    labels = _label_image(labels_node, options)
    on_grid = sitk.Resample(labels, image, sitk.Transform(), sitk.sitkNearestNeighbor, 0, labels.GetPixelID())
    found = sitk.GetArrayViewFromImage(on_grid)
    for role, label in (("cavity", CAVITY), ("myocardium", MYOCARDIUM)):
        if not (found == label).any():
            raise CardioScarError(
                f"No voxel of the {role} ({_label_text(labels_node, options, role)}) of '{labels_node.GetName()}' "
                f"lies on the LGE '{lge_node.GetName()}': choose the label convention of these labels (EMIDEC: "
                "cavity 1, myocardium 2,3,4; ACDC: 3 and 2), or labels drawn on this LGE.")
    _check_cavity_inside(found, labels_node, options)
    folder = Path(folder)
    sitk.WriteImage(image, str(folder / IMAGE_FILE), True)
    sitk.WriteImage(on_grid, str(folder / LABELS_FILE), True)
    return WrittenInputs(folder / IMAGE_FILE, folder / LABELS_FILE, ijk_to_lps, image.GetSize())


__all__ = ["WrittenInputs", "write_inputs", "image_from_array", "IMAGE_FILE", "LABELS_FILE"]
