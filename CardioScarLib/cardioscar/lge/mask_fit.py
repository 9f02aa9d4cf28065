"""Does the myocardium mask lie on this LGE's left ventricle, or on another patient's?

A scar rule grades whatever pixels the mask covers. Another patient's mask (EMIDEC's images all
have their origin at 0, so it lands in the field of view) puts the rule on random tissue, and
``prepare`` exited 0 with a plausible-looking scar.

What inversion-recovery LGE gives: healthy myocardium is nulled (dark) and the blood pool is
bright, and scar (bright) is usually a minority of the wall. So a mask drawn on this image puts
its ring on dark pixels around a bright cavity: nearly every pixel of the cavity the ring encloses
is brighter than the darker half of the ring (the nulled wall, whatever the scar). A mask drawn on
another heart puts both on random tissue. The measure is rank-based, so a PSIR image stored with
zero signal at an offset, or any scanner scaling, reads the same.

Measured on EMIDEC (``Testing/benchmarks/lge_mask_fit_emidec.py``): the share is 0.916-0.999 for
the 75 own masks (no warning); of each case's LGE with the next two cases' masks, 112 of 150 are
refused and 17 warned (9 of the 18 passed enclose no cavity on the LGE's slices, so are not read).
It assumes bright blood, as the rules' darkest-sector remote assumes a nulled wall: a dark-blood
LGE (blood darker than the wall) was not measured and would be refused, so ``dark_blood``
(``prepare --dark-blood-lge`` and its name on every face) skips the judgement; the share is
measured and recorded either way (``mask_fit`` of the rule's record), so a reader sees what the
check saw.
"""

from __future__ import annotations

import logging
from typing import Optional, Sequence

import numpy as np

from ..errors import CardioScarError
from ..prepare.slices import SliceLayer
from ..prepare.targets import lumen_of

logger = logging.getLogger(__name__)

#: A slice's ring is read when it encloses this many cavity pixels and has this many of its own
#: (a basal ring open at the outflow tract, or an apical cap, encloses none: not read).
MIN_CAVITY_PIXELS = 10
MIN_RING_PIXELS = 20
#: The median share (over the read slices) under which the mask is refused, and warned about.
#: EMIDEC: own masks 0.916-1.000; other patients' masks 0.60-1.00 (median 0.76).
REFUSE_BELOW = 0.85
WARN_BELOW = 0.90


def _enclosed_cavity(ring: np.ndarray) -> Optional[np.ndarray]:
    """The cavity one slice's mask encloses, where the mask is a ring (of MIN_RING_PIXELS) around one
    (of MIN_CAVITY_PIXELS); else None. The one test of "a ring around a cavity" that the fit's
    reading (:func:`cavity_brighter_share`) and the solid mask's (:func:`solid_slices`) share."""
    ring = np.asarray(ring, bool)
    cavity = lumen_of(ring)
    return cavity if ring.sum() >= MIN_RING_PIXELS and cavity.sum() >= MIN_CAVITY_PIXELS else None


def cavity_brighter_share(values: np.ndarray, ring: np.ndarray) -> Optional[float]:
    """The share of (cavity pixel, darker-half ring pixel) pairs where the cavity pixel is the
    brighter (ties count half), on one slice; None where the ring encloses too small a cavity."""
    ring = np.asarray(ring, bool)
    cavity = _enclosed_cavity(ring)
    if cavity is None:
        return None
    wall = values[ring][np.isfinite(values[ring])]
    blood = values[cavity][np.isfinite(values[cavity])]
    if wall.size < MIN_RING_PIXELS or blood.size < MIN_CAVITY_PIXELS:
        return None
    nulled = np.sort(wall[wall <= np.median(wall)])
    below = np.searchsorted(nulled, blood, "left")
    up_to = np.searchsorted(nulled, blood, "right")
    return float(np.mean(below + up_to) / (2 * nulled.size))


def mask_fit(images: Sequence[np.ndarray], myocardium: Sequence[np.ndarray]) -> tuple[Optional[float], int]:
    """The median of :func:`cavity_brighter_share` over the slices it reads, and their number
    (None, 0: no slice encloses a cavity)."""
    shares = [s for s in (cavity_brighter_share(np.asarray(v, np.float64), m) for v, m in zip(images, myocardium))
              if s is not None]
    return (float(np.median(shares)), len(shares)) if shares else (None, 0)


def check_mask_on_lge(image: Sequence[SliceLayer], myocardium: Sequence[np.ndarray], myocardium_name: str,
                      dark_blood: bool = False) -> dict:
    """Refuse a myocardium mask whose cavity is not the LGE's bright blood pool (another patient's
    or series' mask), warn on a borderline one; every face's scar rule runs it (``graded_targets``).
    With ``dark_blood`` (a dark-blood LGE, where the cavity is dark whatever the mask) the share is
    measured but not judged. Returns the record written with the rule (``mask_fit``)."""
    share, read = mask_fit([layer.values for layer in image], myocardium)
    record = {"cavity_brighter_share": None if share is None else round(share, 4), "slices_read": read,
              "checked": share is not None and not dark_blood}
    if dark_blood:
        logger.info("--dark-blood-lge: the fit of --myocardium-mask %s to the LGE is not checked (the check needs "
                    "bright blood, a cavity brighter than the nulled wall; measured share %s); make sure the mask was "
                    "drawn on this image", myocardium_name, "none" if share is None else f"{100 * share:.0f} %")
        return {**record, "skipped": "dark-blood LGE"}
    if share is None:
        _note_no_cavity(myocardium, myocardium_name)
        return record
    lge = image[0].label.split(" k=")[0]
    seen = (f"the cavity it encloses is brighter than the darker half of its myocardium (the nulled wall) in "
            f"{100 * share:.0f} % of pixel pairs (median of {read} slices; masks drawn on their own LGE: 92-100 % "
            f"on EMIDEC's 75)")
    if share < REFUSE_BELOW:
        raise CardioScarError(f"--myocardium-mask {myocardium_name} does not lie on the left ventricle of the LGE "
                              f"{lge}: {seen}; give the mask drawn on this image (not another patient's or series'), "
                              "or, for a dark-blood LGE (blood darker than the wall), --dark-blood-lge, which skips "
                              "this check")
    if share < WARN_BELOW:
        logger.warning("--myocardium-mask %s may not lie on the left ventricle of the LGE %s: %s; check that the "
                       "mask was drawn on this image", myocardium_name, lge, seen)
    return record


#: Slices of a mask (of MIN_RING_PIXELS) that enclose no cavity at all, from which on it is named in a
#: warning: a myocardium mask's rings enclose the blood pool (EMIDEC's 75 own masks and ACDC's 2: every
#: one encloses it on some slice), while two or three open basal rings or apical caps may not.
SOLID_SLICES = 3


#: What a myocardium that encloses no cavity likely is, and what to give instead.
SOLID_MASK_ADVICE = ("is it the blood pool or another solid structure (labels swapped)? Give the myocardium's labels "
                     "(EMIDEC 2,3,4; ACDC 2)")


def solid_slices(myocardium: Sequence[np.ndarray]) -> int:
    """The number of slices a myocardium mask covers (MIN_RING_PIXELS each) when it encloses a cavity
    on none of them and covers SOLID_SLICES or more (the blood pool given for it); else 0."""
    if any(_enclosed_cavity(m) is not None for m in myocardium):
        return 0
    covered = sum(int(np.count_nonzero(m) >= MIN_RING_PIXELS) for m in myocardium)
    return covered if covered >= SOLID_SLICES else 0


def solid_mask_cause(myocardium: Sequence[np.ndarray]) -> str:
    """The likelier cause, for a refusal that would blame the mesh or its frame, when the myocardium
    (per chosen slice) is solid (:func:`solid_slices`); else ''."""
    covered = solid_slices(myocardium)
    return (f"; likelier, the myocardium given is not the wall: it encloses no cavity on any of the {covered} chosen "
            f"slices it covers, where a myocardium is a ring around the blood pool: {SOLID_MASK_ADVICE}"
            if covered else "")


def _note_no_cavity(myocardium: Sequence[np.ndarray], myocardium_name: str) -> None:
    """Say that the fit was not checked: a warning when the mask is solid (:func:`solid_slices`),
    since that is no myocardium but a solid structure (the blood pool given for it:
    ``--myocardium-labels 1`` on EMIDEC, a 0/1 cavity mask), which passed with this line at the
    info level and a warning about the mesh's nodes that named the mesh, not the mask."""
    covered = solid_slices(myocardium)
    if covered:
        logger.warning("--myocardium-mask %s encloses no cavity on any of the %d chosen slices it covers, where a "
                       "myocardium mask is a ring around the blood pool: %s; its fit to the LGE is not checked",
                       myocardium_name, covered, SOLID_MASK_ADVICE)
    else:
        logger.info("--myocardium-mask %s encloses no cavity on the chosen slices: its fit to the LGE is not "
                    "checked", myocardium_name)
