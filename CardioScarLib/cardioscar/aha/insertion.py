"""Finding the RV insertion points from a label map with an RV blood-pool label.

Where the RV blood pool touches the LV myocardium is the septum's RV side; seen along the LV
axis, these contact voxels cover an arc whose two ends are the anterior and inferior RV
insertions. The anterior one is the end from which the arc runs in the anatomical numbering
direction (:data:`segments.ANATOMICAL_SENSE`), so the label map only needs its labels, not a
reliable patient orientation (ACDC's files carry a placeholder direction).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from cardioscar.errors import CardioScarError

from .segments import ANATOMICAL_SENSE, LongAxis

logger = logging.getLogger(__name__)

#: Share of contact voxels ignored at each end of the arc (stray voxels at the valve planes).
ARC_TRIM = 0.02


@dataclass(frozen=True)
class Insertions:
    """The two RV insertion points (LPS mm)."""

    anterior: np.ndarray
    inferior: np.ndarray


def ijk_to_lps_of(image: sitk.Image) -> np.ndarray:
    """The 4x4 voxel-index to LPS matrix of a SimpleITK image."""
    matrix = np.eye(4)
    direction = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)
    matrix[:3, :3] = direction * np.asarray(image.GetSpacing(), dtype=float)
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def contact_points(labels: np.ndarray, ijk_to_lps: np.ndarray, rv_label: int, myocardium_label: int,
                   source: str) -> np.ndarray:
    """LPS centres of the myocardium voxels that touch an RV blood-pool voxel within their slice.

    ``labels`` is indexed [k, j, i] (SimpleITK's and Slicer's array order).
    """
    labels = np.asarray(labels)
    if labels.ndim != 3:
        raise CardioScarError(f"{source}: the label map must be a 3D volume (got {labels.ndim}D)")
    present = set(np.unique(labels).astype(int).tolist())
    for flag, label in (("--rv-label", rv_label), ("--myocardium-label", myocardium_label)):
        if label not in present:
            raise CardioScarError(f"{source} has no voxel labelled {label} ({flag}); its labels are {sorted(present)}")
    in_plane = np.zeros((1, 3, 3), dtype=bool)
    in_plane[0, 1, :] = in_plane[0, :, 1] = True
    touching = ndimage.binary_dilation(labels == rv_label, structure=in_plane) & (labels == myocardium_label)
    if not touching.any():
        raise CardioScarError(f"{source}: the RV (label {rv_label}) never touches the myocardium (label "
                              f"{myocardium_label}); check --rv-label and --myocardium-label, or give --rv-point")
    ijk = np.argwhere(touching)[:, ::-1].astype(float)
    return ijk @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3]


#: The RV blood pool lies to one side of the LV axis: the centre of its voxels' offsets from the
#: axis is most of their mean distance (ACDC 101: 0.90); the LV cavity surrounds the axis (EMIDEC's
#: label 1, read as the RV: 0.01-0.29 on 38 maps; ACDC's cavity 0.04-0.09).
MIN_RV_SIDEDNESS = 0.5
#: The command line's long-axis points, advised where the axis found does not fit the label map; a
#: face words it as its own (:func:`cardioscar.errors.advice_in_face_words`).
AXIS_POINTS_ADVICE = "give --apex/--base"


def refuse_cavity_as_rv(labels: np.ndarray, ijk_to_lps: np.ndarray, rv_label: int, axis: LongAxis,
                        source: str) -> None:
    """Refuse an ``--rv-label`` whose voxels surround the LV axis: the LV cavity, not the RV.

    Why: EMIDEC's maps have no RV; their label 1 is the LV cavity, the default ``--rv-label``. Its
    contact with the healthy myocardium (label 2) is a ring broken where the infarct (3, 4) is, and
    where the break left an arc under 270 degrees (3 of 25 EMIDEC maps), the arc's ends, the
    infarct's edges, were taken as the RV insertions, silently."""
    ijk = np.argwhere(np.asarray(labels) == rv_label)[:, ::-1].astype(float)
    radial = axis.radial(ijk @ ijk_to_lps[:3, :3].T + ijk_to_lps[:3, 3])
    spread = float(np.linalg.norm(radial, axis=1).mean())
    sidedness = float(np.linalg.norm(radial.mean(axis=0))) / spread if spread > 0 else 0.0
    if sidedness < MIN_RV_SIDEDNESS:
        raise CardioScarError(f"{source}: label {rv_label} (--rv-label) surrounds the LV axis (its voxels' mean offset "
                              f"from it is {sidedness:.2f} of their mean distance {spread:.0f} mm): the LV cavity, not "
                              "the RV blood pool, which lies to one side (EMIDEC maps have no RV label): give the RV's "
                              "label (ACDC: 1), or --rv-point")


def insertions_from_contacts(points: np.ndarray, axis: LongAxis) -> Insertions:
    """The two ends of the contact arc about ``axis``; the anterior one first (see the module docstring)."""
    radial = axis.radial(points)
    first = radial.mean(axis=0)
    if np.linalg.norm(first) < 1e-6:
        raise CardioScarError("the RV contact surrounds the LV axis; the label map and the mesh do not describe the "
                              f"same heart, or the LV axis is wrong: {AXIS_POINTS_ADVICE}")
    first /= np.linalg.norm(first)
    second = np.cross(axis.base_direction, first)
    # angle from the middle of the contact, in the anatomical numbering direction
    angle = ANATOMICAL_SENSE * np.arctan2(radial @ second, radial @ first)
    low, high = np.quantile(angle, [ARC_TRIM, 1.0 - ARC_TRIM])
    if high - low > np.radians(270.0):
        raise CardioScarError(f"the RV contact covers {np.degrees(high - low):.0f} degrees around the LV; the label "
                              "map does not show a septum: check --rv-label, or give --rv-point")

    def end(value: float) -> np.ndarray:
        near = np.abs(angle - value) <= np.radians(5.0)
        return points[near].mean(axis=0)

    logger.info("RV contact arc %.0f degrees from %d voxels", np.degrees(high - low), len(points))
    # numbering runs anterior insertion -> septum -> inferior insertion, i.e. increasing ``angle``
    return Insertions(anterior=end(low), inferior=end(high))
