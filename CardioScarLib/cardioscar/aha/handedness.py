"""Whether the AHA numbering sits on the heart as on a heart in the patient's frame.

Why: with one RV insertion point, or a label map's contact arc, the numbering direction is
*assumed* anatomical (:data:`segments.ANATOMICAL_SENSE`); two points given the other way round in a
mirrored frame read as anatomical too. On a mesh in a mirrored frame (an image axis flipped with
its header kept, the slices' order reversed, a frame with one sign changed) or a mirrored heart
(dextrocardia) the table is then numbered mirrored, silently: an anterior scar reported in the
RCA's inferior segments.

Nothing in the LV's shape or in a label map's LV and RV tells a heart from its mirror image; the
frame does, where it is the patient's (LPS, from a scanner's header): there a heart's apex points
to the patient's left, front and feet, and the anterior wall, as the numbering places it (the
normal of the plane of the long axis and the septum's middle), faces front and up. Measured on
the real biv-me heart in its scanner's frame (`Testing/benchmarks/aha_mirror_check.py`): apex
(0.47, -0.49, -0.73), the anterior wall's front-and-up component 0.62-0.98 over its 11
insertion readings (five clinician pairs, each anterior point alone, the RV contact arc); its copies mirrored across any frame axis or the short-axis images' slice axis break
one of these by more than :data:`MARGIN`. A correct heart turned out of the patient's frame (a
mesh in a modelling frame) breaks them too: hence a warning, never a refusal.

Where the frame cannot be the patient's it is not checked: a long axis within
:data:`MIN_OBLIQUITY_DEG` of a frame axis is a short-axis image's own frame or a placeholder
(ACDC's and EMIDEC's identity direction: their stacks' normals are the frame's z), or the
phantoms' (4-26 degrees from z). A real heart's axis lies obliquely in the scanner's
frame (biv-me's: 43 degrees from the nearest axis).
"""

from __future__ import annotations

import logging
import math

import numpy as np

from .segments import ANATOMICAL_SENSE, AhaFrame

logger = logging.getLogger(__name__)

#: The long axis must lie at least this far (degrees) from every frame axis for the frame to be
#: read as the patient's.
MIN_OBLIQUITY_DEG = 35.0
#: How far past its plane (a unit vector's component) a direction must point to count as wrong.
MARGIN = 0.2
#: Front and up in LPS (front: -y, up: +z), where a heart's anterior wall faces.
FRONT_AND_UP = np.array([0.0, -1.0, 1.0]) / math.sqrt(2.0)
#: The command line's order of the two RV insertions, in the mirrored-numbering warnings; the Slicer
#: panel words it as its point list's (:func:`cardioscar.errors.advice_in_face_words`).
INSERTION_ORDER = "(--rv-point, then --rv-inferior-point)"


def septum_direction(frame: AhaFrame) -> np.ndarray:
    """Unit direction, perpendicular to the axis, of the middle of the septum as numbered."""
    phi = math.radians(frame.sense * frame.septum_deg / 2.0)
    second = np.cross(frame.axis.base_direction, frame.reference)
    return math.cos(phi) * frame.reference + math.sin(phi) * second


def obliquity_deg(direction: np.ndarray) -> float:
    """Angle (degrees) between a unit direction and the nearest frame axis."""
    return math.degrees(math.acos(min(1.0, float(np.max(np.abs(direction))))))


def mirror_findings(frame: AhaFrame) -> list[str]:
    """What in the patient's frame a correctly numbered heart would not show (empty: none)."""
    apex = -frame.axis.base_direction
    anterior = np.cross(frame.axis.base_direction, septum_direction(frame))
    wrong_ways = [way for wrong, way in ((apex[0] < -MARGIN, "to the patient's right"), (apex[1] > MARGIN, "backwards"),
                                         (apex[2] > MARGIN, "to the head")) if wrong]
    findings = [f"its apex points {' and '.join(wrong_ways)}"] if wrong_ways else []
    if anterior @ FRONT_AND_UP < -MARGIN:
        findings.append("the wall numbered anterior faces back and down")
    return findings


def frame_handedness(frame: AhaFrame) -> dict:
    """``aha.json``'s ``rv_insertion.frame_handedness``: whether the numbering was checked against
    the patient's frame, what it found, and the warning (logged here) where it does not fit."""
    apex = -frame.axis.base_direction
    record = {"apex_lps": np.round(apex, 3).tolist(), "axis_obliquity_deg": round(obliquity_deg(apex), 1)}
    if frame.sense != ANATOMICAL_SENSE:
        return {**record, "verdict": "not checked: the points' own order numbers mirrored (sense)", "warning": None}
    if record["axis_obliquity_deg"] < MIN_OBLIQUITY_DEG:
        return {**record, "verdict": f"not checked: the long axis lies {record['axis_obliquity_deg']:.0f} degrees from "
                                     "a frame axis, so the frame is an image's own or a placeholder (ACDC's, EMIDEC's "
                                     "identity direction), not the patient's", "warning": None}
    findings = mirror_findings(frame)
    if not findings:
        return {**record, "verdict": "as in the patient's frame", "warning": None}
    warning = (f"the AHA numbering may be mirrored: read in the patient's frame (LPS), {' and '.join(findings)}, "
               "where a heart's apex points left, forwards and down and its anterior wall faces front and up: a mirrored "
               "frame (an image axis or the slices' order flipped with the header kept: check the image's direction), "
               "a mirrored heart (dextrocardia), or a mesh turned out of the patient's frame; give both RV insertion "
               f"points, the anterior one first {INSERTION_ORDER}: the numbering follows them")
    logger.warning(warning)
    return {**record, "verdict": "not as in the patient's frame", "warning": warning}
