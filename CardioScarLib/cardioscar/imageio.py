"""Reading LGE / label images through SimpleITK with errors a user can act on.

SimpleITK returns images in LPS with their full direction matrix, so oblique stacks keep their
geometry. NIfTI spacing comes from pixdim (SimpleITK's behaviour), which is right for files whose
sform carries no scale (the ACDC data set, for instance).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .errors import CardioScarError

logger = logging.getLogger(__name__)


def _first_line(error: Exception) -> str:
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = next((line for line in lines if "description" in line.lower()), lines[-1] if lines else "")
    return detail.replace("Description:", "").strip()[:200]


def _read_dicom_folder(folder: Path) -> sitk.Image:
    """Read the DICOM series of a folder; with several series, the one with the most files."""
    try:
        series_ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    except RuntimeError as error:
        raise CardioScarError(f"Cannot scan DICOM folder {folder}: {_first_line(error)}") from error
    if not series_ids:
        raise CardioScarError(f"No DICOM series found in folder {folder}; give a DICOM series folder or an image file "
                              "(.nii, .nii.gz, .nrrd, .mha)")
    files = {sid: sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), sid) for sid in series_ids}
    counts = sorted((len(names) for names in files.values()), reverse=True)
    if len(counts) > 1 and counts[0] == counts[1]:
        raise CardioScarError(f"DICOM folder {folder} holds {len(series_ids)} series of equal size; "
                              "put the series to use in a folder of its own")
    chosen = max(files, key=lambda sid: len(files[sid]))
    if len(series_ids) > 1:
        logger.warning("%s holds %d DICOM series; using %s (%d files)", folder, len(series_ids), chosen,
                       len(files[chosen]))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(files[chosen])
    try:
        return reader.Execute()
    except RuntimeError as error:
        raise CardioScarError(f"Cannot read DICOM series in {folder}: {_first_line(error)}") from error


def read_image(path: str | Path) -> sitk.Image:
    """Read a 3D scalar image (NIfTI, NRRD, MHA/MHD, or a DICOM series folder) in LPS.

    A single-slice acquisition is a 3D image with one slice (size 1 along k), which is fine; a truly
    2D image, a 4D image or a vector image is an error.
    """
    source = Path(path)
    if source.is_dir():
        image = _read_dicom_folder(source)
    elif not source.exists():
        raise CardioScarError(f"Image not found: {source}")
    else:
        try:
            image = sitk.ReadImage(str(source))
        except RuntimeError as error:
            raise CardioScarError(f"Cannot read image {source}: unreadable or corrupted file ({_first_line(error)})"
                                  ) from error
    if image.GetNumberOfComponentsPerPixel() != 1:
        raise CardioScarError(f"Image {source.name} has {image.GetNumberOfComponentsPerPixel()} components per "
                              "voxel (vector/RGB); give a scalar LGE image or label map")
    if image.GetDimension() != 3:
        raise CardioScarError(f"Image {source.name} is {image.GetDimension()}D with size {image.GetSize()}; it must "
                              "be a 3D volume with N slices")
    logger.info("Read image %s: %s", source, image_summary(image))
    return image


def image_summary(image: sitk.Image) -> str:
    """One-line geometry description (size, spacing, origin, LPS bounding box) for logs and errors."""
    size = image.GetSize()
    if image.GetDimension() != 3:
        return f"{image.GetDimension()}D image, size {size}, spacing {tuple(round(s, 4) for s in image.GetSpacing())}"
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    matrix = direction @ np.diag(image.GetSpacing())
    corners = np.array([[i, j, k] for i in (-0.5, size[0] - 0.5) for j in (-0.5, size[1] - 0.5)
                        for k in (-0.5, size[2] - 0.5)])
    lps = corners @ matrix.T + np.asarray(image.GetOrigin())
    lo, hi = lps.min(axis=0), lps.max(axis=0)
    box = ", ".join(f"{a:.1f}..{b:.1f}" for a, b in zip(lo, hi))
    return (f"size {size}, spacing {tuple(round(s, 4) for s in image.GetSpacing())} mm, "
            f"origin {tuple(round(o, 2) for o in image.GetOrigin())}, LPS bounds [{box}]")
