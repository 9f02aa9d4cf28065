"""Whether a volume node's slices can be where its DICOM files say they were acquired.

Why: a DICOM stack with a missing slice or uneven gaps cannot be one regular volume. Slicer's
DICOM module then adds an *acquisition transform* that moves every slice back to where it was
acquired (the Logic follows it slice by slice). Without it (regularization switched off in the
DICOM settings, a series read with *Add Data*, or the transform hardened, which resamples between
slices) the node is a regular volume whose slices sit up to half a gap from their acquired
positions, with nothing in the scene to show it. The node's files still say where each slice was.
"""

from __future__ import annotations

from cardioscar.errors import CardioScarError
from cardioscar.io.imageio import why_not_one_volume

from .slabwidth import source_files


def check_slices_where_acquired(node, dicom_database=None) -> None:
    """Raise when ``node`` is a regular volume (no per-slice transform) read from one-slice DICOM
    files that cannot be one regular volume. Nodes without such files, or under a non-linear
    transform (which places each slice), pass. ``dicom_database``: as for :func:`source_files`."""
    if not node.IsA("vtkMRMLScalarVolumeNode") or node.GetImageData() is None:
        return
    transform = node.GetParentTransformNode()
    if transform is not None and not transform.IsTransformToWorldLinear():
        return
    files = source_files(node, dicom_database)
    if len(files) < 3 or len(files) != node.GetImageData().GetDimensions()[2]:
        return  # not one file per slice: a NIfTI, a multi-frame file, or a resampled volume
    why = why_not_one_volume(files)
    if why is not None:
        raise CardioScarError(
            f"'{node.GetName()}' is one regular volume, but its DICOM files cannot be one ({why}): load the series "
            "through the DICOM module with acquisition geometry regularization set to apply a transform (and do not "
            "harden it), or use cardioscar prepare on the files")
