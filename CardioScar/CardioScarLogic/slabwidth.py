"""The slab half-width of an input node: the millimetres the user gives, or ``"auto"``, half the
slice thickness its DICOM files record (as ``cardioscar prepare --slice-thickness-padding auto``).

Why here: a Slicer volume node keeps no DICOM tags, but it still knows its files. A volume loaded
through the DICOM module carries the SOP instance UIDs of its files (attribute
``DICOM.instanceUIDs``, set by Slicer's DICOM plugins), which Slicer's DICOM database maps to
files; a volume read from a file (Add Data, ``slicer.util.loadVolume``, batch mode) has a storage
node that names its files. A segmentation takes the width of the volume it was drawn on (its
reference geometry). The headers of those files are then read by the core library.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Union

from cardioscar.errors import CardioScarError
from cardioscar.io.imageio import recorded_half_thickness_of_files
from cardioscar.prepare.slices import RECORDED

logger = logging.getLogger(__name__)

#: Node attribute in which Slicer's DICOM plugins list the SOP instance UIDs a volume was made of.
INSTANCE_UIDS_ATTRIBUTE = "DICOM.instanceUIDs"

HalfThickness = Union[float, str]


def half_width(node, half_thickness: HalfThickness, dicom_database=None) -> float:
    """``half_thickness`` in mm, or for ``"auto"`` half the thickness the node's DICOM files record.

    ``dicom_database``: Slicer's ``slicer.dicomDatabase`` (``None`` outside the application; then
    only the storage node's files are read).
    """
    if half_thickness != RECORDED:
        return float(half_thickness)
    source = _geometry_source(node)
    files = source_files(source, dicom_database)
    if not files:
        raise CardioScarError(
            f"'{node.GetName()}' was not read from files Slicer can still find, so no slice thickness is recorded "
            "for it: give the slab half-width in mm instead of 'auto'")
    half = recorded_half_thickness_of_files(files, f"'{source.GetName()}'")
    logger.info("slab half-width of '%s': %g mm, half the slice thickness its DICOM files record", node.GetName(), half)
    return half


def source_files(node, dicom_database=None) -> list[str]:
    """The files a volume node was read from: its DICOM instances when the DICOM database knows all
    of them, else the files its storage node names (the archetype and the rest of its series)."""
    uids = (node.GetAttribute(INSTANCE_UIDS_ATTRIBUTE) or "").split()
    if uids and dicom_database is not None and dicom_database.isOpen:
        files = [dicom_database.fileForInstance(uid) for uid in uids]
        if all(files):
            return files
    storage = node.GetStorageNode() if hasattr(node, "GetStorageNode") else None
    if storage is None:
        return []
    names = [storage.GetFileName()] + [storage.GetNthFileName(i) for i in range(storage.GetNumberOfFileNames())]
    return list(dict.fromkeys(name for name in names if name and Path(name).is_file()))


def _geometry_source(node):
    """The node whose files say how thick its slices are: a segmentation's reference volume."""
    if node.IsA("vtkMRMLSegmentationNode"):
        reference = node.GetNodeReference(node.GetReferenceImageGeometryReferenceRole())
        if reference is None:
            raise CardioScarError(
                f"The segmentation '{node.GetName()}' names no volume it was drawn on, so no slice thickness is "
                "recorded for it: give the slab half-width in mm instead of 'auto'")
        return reference
    return node
