"""The AHA 17-segment model on a mesh: the long axis, the RV insertion and each node's segment.

Convention implemented (Cerqueira et al., Circulation 2002), stated once here and in
Documentation/aha.md:

* **Long axis**: a line with a direction pointing from the apex to the base. Along it, the LV
  myocardium between the cavity's tip (the most apical endocardium) and the most basal
  myocardium is cut into three equal thirds: basal (1-6), mid (7-12), apical (13-16). What lies
  beyond the cavity's tip is the apical cap (17).
* **Circumferential position** is the angle about the axis. The anterior RV insertion (where the
  RV free wall meets the LV, anteriorly) is the boundary between segment 1 (anterior) and 2
  (anteroseptal); the inferior RV insertion is the boundary between 3 (inferoseptal) and 4
  (inferior). Basal and mid rings: the septal arc between the two insertions is split into two
  equal segments (2, 3 / 8, 9) and the rest of the circle into four equal ones (4, 5, 6, 1 /
  10, 11, 12, 7). With one insertion point the septum is taken as 120 degrees wide, which gives
  six 60-degree sectors starting at that point. Apical ring: four 90-degree quadrants, the
  septal one (14) centred on the middle of the septum, then 15 inferior, 16 lateral, 13 anterior.
* **Direction of numbering**: from the anterior insertion, the numbers run over the septum.
  Anatomically that is *clockwise seen from the base* (counter-clockwise seen from the apex, as
  a short-axis image is shown with the RV on the left and the bull's-eye is drawn); measured on
  the real biv-me patient's fitted LV and RV surfaces (and its five pairs of clinician-placed RV
  insertion guide points). With two insertion points the septum is the shorter arc between them,
  whatever the handedness of the mesh, and a direction against the anatomical one is warned (the
  points swapped, or a mirrored frame or heart; ``aha.json``'s ``rv_insertion.sense``); with one
  point the anatomical direction is assumed, and a numbering that does not sit on the heart as in
  the patient's frame (a mirrored mesh) is warned where the frame can be the patient's
  (:mod:`cardioscar.aha.handedness`, ``rv_insertion.frame_handedness``).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from cardioscar.errors import CardioScarError, in_log_format

from .shape_axis import ShapeAxis, shape_axis

logger = logging.getLogger(__name__)

#: (name, level) of each segment, 1-based.
SEGMENTS: dict[int, tuple[str, str]] = {
    1: ("basal anterior", "basal"), 2: ("basal anteroseptal", "basal"), 3: ("basal inferoseptal", "basal"),
    4: ("basal inferior", "basal"), 5: ("basal inferolateral", "basal"), 6: ("basal anterolateral", "basal"),
    7: ("mid anterior", "mid"), 8: ("mid anteroseptal", "mid"), 9: ("mid inferoseptal", "mid"),
    10: ("mid inferior", "mid"), 11: ("mid inferolateral", "mid"), 12: ("mid anterolateral", "mid"),
    13: ("apical anterior", "apical"), 14: ("apical septal", "apical"), 15: ("apical inferior", "apical"),
    16: ("apical lateral", "apical"), 17: ("apex", "apex"),
}

#: Usual coronary territories of the segments (Cerqueira 2002, figure 2; segment 17 is usually
#: the LAD's, though it varies between patients).
TERRITORY_SEGMENTS: dict[str, tuple[int, ...]] = {
    "LAD": (1, 2, 7, 8, 13, 14, 17),
    "RCA": (3, 4, 9, 10, 15),
    "LCx": (5, 6, 11, 12, 16),
}
TERRITORY_OF: dict[int, str] = {seg: name for name, segs in TERRITORY_SEGMENTS.items() for seg in segs}

#: Width assumed for the septum when only the anterior RV insertion is known.
DEFAULT_SEPTUM_DEG = 120.0
#: Numbering direction about the apex-to-base axis: clockwise seen from the base (see the module
#: docstring). Assumed when it cannot be read from two insertions; two that read the other way are warned.
ANATOMICAL_SENSE = -1


@dataclass(frozen=True)
class LongAxis:
    """The LV long axis: a point on it and the unit direction from the apex towards the base."""

    origin: np.ndarray
    base_direction: np.ndarray
    source: str  # "apex and base points", "slice normal of ...", "mesh shape"

    def heights(self, points: np.ndarray) -> np.ndarray:
        """Signed distance (mm) of each point along the axis, growing towards the base."""
        return (np.asarray(points, dtype=float) - self.origin) @ self.base_direction

    def radial(self, points: np.ndarray) -> np.ndarray:
        """(N, 3) component of each point's offset from the axis that is perpendicular to it."""
        offset = np.asarray(points, dtype=float) - self.origin
        return offset - np.outer(offset @ self.base_direction, self.base_direction)


def _unit(vector: np.ndarray, what: str) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if not np.isfinite(norm) or norm < 1e-9:
        raise CardioScarError(f"no LV axis derivable: {what} has no direction; give --apex and --base "
                              "points at least a few mm apart, or --slice-normal-from the short-axis image")
    return np.asarray(vector, dtype=float) / norm


def axis_from_points(apex: np.ndarray, base: np.ndarray) -> LongAxis:
    """The axis through the user's apex and base points (their order fixes the direction)."""
    apex, base = np.asarray(apex, dtype=float), np.asarray(base, dtype=float)
    if np.linalg.norm(base - apex) < 10.0:
        raise CardioScarError(f"no LV axis derivable: --apex and --base are {np.linalg.norm(base - apex):.1f} mm "
                              "apart; give the apex and the centre of the base, at least 10 mm apart")
    return LongAxis(origin=apex, base_direction=_unit(base - apex, "apex to base"), source="apex and base points")


def _weighted_centre(points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return (points * weights[:, None]).sum(axis=0) / weights.sum()


def orient_towards_base(direction: np.ndarray, points: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Sign ``direction`` so it points to the base: the end where the LV is wider (the apex tapers).

    Compares the mean distance from the axis of the 15 % of the myocardium at each end.
    """
    centre = _weighted_centre(points, weights)
    heights = (points - centre) @ direction
    radial = np.linalg.norm((points - centre) - np.outer(heights, direction), axis=1)
    low, high = np.quantile(heights, [0.15, 0.85])
    return direction if radial[heights >= high].mean() >= radial[heights <= low].mean() else -direction


#: A short-axis stack's normal more than this many degrees (60) from the LV's axis as its shape
#: gives it, where the shape gives it clearly, is named in a warning: a long-axis view's normal is
#: about 90 degrees from it. On EMIDEC's 75 label-map meshes the stacks' normals lie 0-14 degrees
#: from the shape's axis (`Testing/benchmarks/aha_shape_axis.py`).
MAX_NORMAL_TO_SHAPE_DEG = 60.0

#: How clearly the shape must give its axis (:attr:`ShapeAxis.contrast`: the median direction's
#: ring misfit over the best one's). Under MIN_RING_CONTRAST (a ball shell: 1.07) no axis is read
#: from the shape; under CLEAR_RING_CONTRAST it is used with a warning. Measured: 1.80-4.16 on the
#: 75 EMIDEC meshes, 2.2-4.7 on the phantoms, ACDC and the biv-me endocardium.
MIN_RING_CONTRAST, CLEAR_RING_CONTRAST = 1.3, 1.6


#: What to give in place of a slice normal that lies across the LV (a face without the command line's
#: axis options words it as its own: renamed option by option, the Logic's read "point 1 of
#: inputs.apex_base_markups X,Y,Z point 2 of inputs.apex_base_markups X,Y,Z").
LONG_AXIS_VIEW_ADVICE = "give the short-axis stack, or --apex X,Y,Z --base X,Y,Z"


def axis_from_direction(direction: np.ndarray, points: np.ndarray, weights: np.ndarray, source: str) -> LongAxis:
    """An axis along a known direction (e.g. the short-axis stack's normal) through the LV's centre."""
    unit = _unit(direction, source)
    found = shape_axis(points, weights)
    if found.contrast >= CLEAR_RING_CONTRAST:
        angle = float(np.degrees(np.arccos(min(1.0, abs(float(unit @ found.direction))))))
        if angle > MAX_NORMAL_TO_SHAPE_DEG:
            logger.warning("the %s is %.0f degrees from the LV's long axis as its shape gives it: a long-axis view? its "
                           "levels would cut the ventricle lengthwise; " + LONG_AXIS_VIEW_ADVICE, source, angle)
    unit = orient_towards_base(unit, points, weights)
    return LongAxis(origin=_weighted_centre(points, weights), base_direction=unit, source=source)


#: What ``aha`` advises where the shape gives no axis or an uncertain one: its own axis options (a face
#: without them, the Slicer panel or the Logic, words it as its own: ``advice_in_face_words``).
AXIS_OPTIONS_ADVICE = "give --slice-normal-from the short-axis image, or --apex X,Y,Z --base X,Y,Z"


def axis_from_shape(points: np.ndarray, weights: np.ndarray, uncertain_advice: str = AXIS_OPTIONS_ADVICE,
                    found: Optional[ShapeAxis] = None) -> LongAxis:
    """The axis from the myocardium's shape: the line its rings are centred on (see
    :mod:`cardioscar.aha.shape_axis`; a truncated LV wider than long keeps its axis).

    A shape that is round in every direction (a ball shell) gives none. ``uncertain_advice``: the
    warning's advice where the axis is uncertain (a caller without ``aha``'s axis options words its own).
    ``found``: :func:`~cardioscar.aha.shape_axis.shape_axis` of the same points and weights, when the
    caller has it already.
    """
    found = shape_axis(points, weights) if found is None else found
    if found.contrast < MIN_RING_CONTRAST:
        raise CardioScarError(
            f"no LV axis derivable from the mesh's shape: no direction stands out as the one it is a stack of rings "
            f"along (ring contrast {found.contrast:.2f}, needs {MIN_RING_CONTRAST:g}: a ball-like shape); "
            f"{AXIS_OPTIONS_ADVICE}")
    if found.contrast < CLEAR_RING_CONTRAST:
        # the advice in the record's own words, not a value filled in: a face (the Logic) rewords those
        logger.warning("the LV axis from the mesh's shape is uncertain: its rings are only %.2f times rounder across it "
                       "than across a typical direction (clear from %g): " + in_log_format(uncertain_advice),
                       found.contrast, CLEAR_RING_CONTRAST)
    direction = orient_towards_base(found.direction, points, weights)
    return LongAxis(origin=_weighted_centre(points, weights), base_direction=direction, source="mesh shape")


@dataclass(frozen=True)
class AhaFrame:
    """Everything that decides a point's segment.

    ``reference`` is the unit direction, perpendicular to the axis, of the anterior RV insertion;
    ``sense`` (+1/-1) the direction, about ``axis.base_direction``, in which the numbers run from
    there over the septum; ``septum_deg`` the width of the septal arc; ``cavity_tip`` and
    ``base_height`` the heights (mm along the axis) of the cavity's tip and of the most basal
    myocardium.
    """

    axis: LongAxis
    reference: np.ndarray
    sense: int
    septum_deg: float
    cavity_tip: float
    base_height: float
    insertion_source: str

    def angles_deg(self, points: np.ndarray) -> np.ndarray:
        """Angle (degrees, [0, 360)) of each point from the anterior insertion, in numbering order."""
        radial = self.axis.radial(points)
        second = np.cross(self.axis.base_direction, self.reference)
        phi = np.degrees(np.arctan2(radial @ second, radial @ self.reference))
        return np.mod(self.sense * phi, 360.0)

    def levels(self, points: np.ndarray) -> np.ndarray:
        """0 basal, 1 mid, 2 apical, 3 apical cap, from the height along the axis."""
        heights = self.axis.heights(points)
        third = (self.base_height - self.cavity_tip) / 3.0
        level = np.full(len(heights), 2, dtype=np.int64)
        level[heights >= self.base_height - 2 * third] = 1
        level[heights >= self.base_height - third] = 0
        level[heights < self.cavity_tip] = 3
        return level

    def segments(self, points: np.ndarray) -> np.ndarray:
        """(N,) AHA segment 1-17 of each point."""
        points = np.asarray(points, dtype=float)
        psi = self.angles_deg(points)
        level = self.levels(points)
        septum = self.septum_deg
        free_step = (360.0 - septum) / 4.0
        # basal / mid: 0 -> 2, 1 -> 3 over the septum; then 4, 5, 6, 1 over the free wall
        in_septum = psi < septum
        ring = np.where(in_septum, np.where(psi < septum / 2.0, 1, 2),
                        3 + np.minimum(((psi - septum) // free_step).astype(np.int64), 3))
        ring = np.mod(ring, 6)  # free-wall sector 3 (the fourth) is segment 1 (ring index 0)
        apical_quadrant = (np.mod(psi - septum / 2.0 + 45.0, 360.0) // 90.0).astype(np.int64)  # 0 septal
        apical = np.array([14, 15, 16, 13])[np.minimum(apical_quadrant, 3)]
        return np.select([level == 0, level == 1, level == 2], [ring + 1, ring + 7, apical], 17).astype(np.int64)


def insertion_frame(axis: LongAxis, anterior: np.ndarray, inferior: Optional[np.ndarray],
                    cavity_tip: float, base_height: float, source: str) -> AhaFrame:
    """The frame from the anterior RV insertion and, when known, the inferior one.

    With both, the septum is the shorter arc between them and its direction sets the numbering
    sense (no assumption about the mesh's handedness); with one, the septum is
    :data:`DEFAULT_SEPTUM_DEG` wide in the anatomical direction :data:`ANATOMICAL_SENSE`.
    """
    radial = axis.radial(np.asarray(anterior, dtype=float)[None, :])[0]
    if np.linalg.norm(radial) < 1.0:
        raise CardioScarError("the RV insertion point lies on the LV long axis (under 1 mm from it); give a point "
                              "on the wall where the RV meets the LV")
    reference = radial / np.linalg.norm(radial)
    sense, septum = ANATOMICAL_SENSE, DEFAULT_SEPTUM_DEG
    if inferior is not None:
        other = axis.radial(np.asarray(inferior, dtype=float)[None, :])[0]
        second = np.cross(axis.base_direction, reference)
        delta = math.degrees(math.atan2(float(other @ second), float(other @ reference)))
        if not 20.0 <= abs(delta) <= 180.0:
            raise CardioScarError(f"the two RV insertion points are {abs(delta):.0f} degrees apart about the LV axis; "
                                  "give the anterior and the inferior insertion (usually 90-150 degrees apart)")
        sense, septum = (1 if delta > 0 else -1), abs(delta)
    return AhaFrame(axis=axis, reference=reference, sense=sense, septum_deg=septum, cavity_tip=float(cavity_tip),
                    base_height=float(base_height), insertion_source=source)
