"""How compact is a rule's scar? A scattered one may be the noise of a heart with no infarct.

n-SD calls every pixel above remote + n SD scar, so on a healthy heart it calls the bright tail of
the noise (EMIDEC N020: 13.6 % of the myocardium) and the path made a scarred openCARP model of it
without a word. An infarct is one compact region; noise is scattered in small specks. The statistics
here read only the rule's grades (no experts' labels): the largest connected region of called scar
(8-connected in a slice, joined across neighbouring slices where pixels overlap) and its share.

Measured on EMIDEC's 75 cases (``Testing/benchmarks/scar_free_separation_emidec.py``, see ROBUSTNESS.md):
the figures the cut below rests on are there. It warns, never refuses: small infarcts exist.
"""

from __future__ import annotations

import logging
from typing import Sequence

import numpy as np
from scipy import ndimage

from ..errors import in_log_format
from ..prepare.slices import SliceLayer
from .rules import BORDER, MIN_REFERENCE_PIXELS, OUTSIDE, RuleResult, remote_reference

logger = logging.getLogger(__name__)

#: The enhancement read whatever the rule: pixels above the remote mean by this many of its SDs.
REFERENCE_SD = 3.0
#: Under this share of the myocardium in the largest region above remote + REFERENCE_SD SD, the LGE is
#: said to show no compact enhancement. EMIDEC (remote: darkest sector): scar-free 0.2-7.8 % (median
#: 1.0 %), infarcts 1.7-44 % (median 15 %); under 2.5 %: 20 of 23 scar-free (not N020, N046, N054: 2.7-7.8 %)
#: and 2 of 52 infarcts (P026, P055: 1.7-2.1 %). The cut was chosen on these same 75 (no held-out set).
SCATTERED_BELOW = 0.025

_IN_PLANE = np.ones((3, 3), bool)


#: The other cause of the warning when the user drew the remote: a remote mask over the scar (the whole
#: myocardium, or a sector holding the infarct) takes its mean and SD from the enhancement itself, so
#: nothing stands n SD above it. On the raw-LGE phantom the whole myocardium as the remote left 173 of
#: 1,276 scar pixels and the warning advised checking for a heart with no infarct (round 15). No
#: refusal: on EMIDEC's 52 infarct maps the remote's spread with the scar in it overlaps that of the
#: healthy myocardium alone (the round's ``Testing/benchmarks/remote_mask_emidec.py``).
#: In the record's format, not a value filled in: each face names the option its own way (the Logic's
#: remote_node, the panel's 'Remote myocardium', a cohort's remote_mask column).
REMOTE_HOLDS_SCAR = ("; or the --remote-mask holds the scar, whose enhancement then sets the remote's mean and SD: "
                     "draw the remote on healthy myocardium away from the enhancement")


def largest_region_pixels(called: Sequence[np.ndarray]) -> tuple[int, int]:
    """The pixels of the largest connected region of ``called`` over the slices, and of all called.
    Slices of one shape are stacked and joined where pixels of neighbouring slices overlap; slices of
    differing shapes (planes of several series) are read each alone."""
    masks = [np.asarray(c, bool) for c in called]
    total = int(sum(m.sum() for m in masks))
    if total == 0:
        return 0, 0
    if len({m.shape for m in masks}) == 1:
        structure = np.zeros((3, 3, 3), bool)
        structure[1] = _IN_PLANE
        structure[0, 1, 1] = structure[2, 1, 1] = True
        groups = [np.stack(masks)]
    else:
        structure, groups = _IN_PLANE, masks
    largest = 0
    for mask in groups:
        regions, count = ndimage.label(mask, structure)
        if count:
            largest = max(largest, int(np.bincount(regions.ravel())[1:].max()))
    return largest, total


def enhanced_pixels(values: Sequence[np.ndarray], myocardium: Sequence[np.ndarray],
                    remote: Sequence[np.ndarray] | None = None, n_sd: float = REFERENCE_SD) -> list[np.ndarray]:
    """Per slice, the myocardial pixels above the remote mean + ``n_sd`` SD: n-SD's border zone at
    ``n_sd``, read whatever rule graded the scar so that one cut serves every rule. The remote is
    n-SD's own, and so its level (:func:`~cardioscar.lge.rules.remote_reference`): the user's mask, else the darkest
    sector; on a slice where the user's mask holds fewer myocardial pixels than n-SD accepts
    (another rule ran, which does not read it), the darkest sector."""
    called = []
    for k, (image, myo) in enumerate(zip(values, myocardium)):
        image, myo = np.asarray(image, np.float64), np.asarray(myo, bool)
        if not myo.any():
            called.append(myo)
            continue
        own = None if remote is None else np.asarray(remote[k], bool)
        if own is not None and (own & myo).sum() < MIN_REFERENCE_PIXELS:
            own = None
        called.append(myo & (image > remote_reference(image, myo, own).level(n_sd)))
    return called


def scar_spread(grades: Sequence[np.ndarray], pixel_ml: float | None = None) -> dict:
    """The record of how the rule's scar (border zone + core) lies: its share of the myocardium, the
    largest region's share of the myocardium and of the scar, and (with ``pixel_ml``, the volume of a
    pixel by the slice spacing) the largest region in ml."""
    myocardium = sum(int((np.asarray(g) != OUTSIDE).sum()) for g in grades)
    largest, scar = largest_region_pixels([np.asarray(g) >= BORDER for g in grades])
    record = {"share": round(scar / max(myocardium, 1), 4), "largest_of_myo": round(largest / max(myocardium, 1), 4),
              "largest_of_scar": round(largest / max(scar, 1), 4)}
    if pixel_ml is not None:
        record["largest_ml"] = round(largest * pixel_ml, 3)
    return record


def check_scar_spread(image: Sequence[SliceLayer], myocardium: Sequence[np.ndarray],
                      remote: Sequence[np.ndarray] | None, result: RuleResult) -> dict:
    """Warn (never refuse: small infarcts exist) when the LGE shows no compact enhancement, so that
    the rule's scar may be the noise of a heart with no infarct; every face's scar rule runs it
    (``graded_targets``). Returns the record written with the rule (``scar_spread``)."""
    layer = image[0]
    depth = layer.stack_spacing or 2 * layer.half_thickness
    pixel_ml = float(layer.spacing[0] * layer.spacing[1] * depth) / 1000.0
    enhanced = enhanced_pixels([s.values for s in image], myocardium, remote)
    myocardial = sum(int(np.count_nonzero(m)) for m in myocardium)
    largest, _ = largest_region_pixels(enhanced)
    own = scar_spread(result.grades)
    record = {"reference_sd": REFERENCE_SD, "largest_of_myo": round(largest / max(myocardial, 1), 4),
              "largest_ml": round(largest * pixel_ml, 3), "rule_share": own["share"],
              "rule_largest_of_scar": own["largest_of_scar"],
              "scattered": bool(largest / max(myocardial, 1) < SCATTERED_BELOW and own["share"] > 0)}
    if record["scattered"]:
        logger.warning("The LGE %s shows no compact enhancement: its largest region above the remote + %g SD is "
                       "%.1f %% of the myocardium (%.2f ml; EMIDEC: scar-free hearts median 1.0 %%, infarcts median "
                       "15 %%, warned under %.1f %%), so the %s scar (%.1f %% of the myocardium, its largest region "
                       "%.0f %% of it) may be the noise of a heart with no infarct; check the LGE before using this "
                       "scar" + in_log_format(REMOTE_HOLDS_SCAR if remote is not None else ""),
                       layer.label.split(" k=")[0], REFERENCE_SD, 100 * record["largest_of_myo"], record["largest_ml"],
                       100 * SCATTERED_BELOW, result.rule, 100 * own["share"], 100 * own["largest_of_scar"])
    return record
