"""Scar, border zone and core from raw LGE intensities, one slice at a time.

Every rule works on one slice's pixels (series differ in scaling, so no statistic is shared
between slices) and grades each myocardial pixel 0 (healthy), 1 (border zone) or 2 (core);
pixels outside the myocardium get -1 and carry no constraint. Each rule takes two thresholds,
``border < core``:

* ``nsd``: I > mean_remote + n * SD_remote. Defaults 2 SD (border) and 3 SD (core). The remote
  (healthy) myocardium is the user's mask, or else the myocardial sector (of six around the
  myocardium's centroid) with the lowest mean intensity: remote myocardium is by definition the
  darkest tissue, and a sector keeps it one contiguous region as an observer would draw it.
* ``fwhm``: I >= fraction * max. The maximum is the 99th percentile of the slice's myocardial
  intensities (a single noisy pixel must not set the threshold). Defaults 0.35 (border) and 0.50
  (core, the classic half-maximum).
* ``iir``: image intensity ratio, I / mean blood-pool intensity of the same slice (CemrgApp's
  choice); needs a blood-pool mask. Defaults 1.2 (border) and 1.3 (core): published values, none
  universal, always printed and recorded.
* ``psi``: percent of the signal-intensity range, (I - min) / (max - min) over the slice's
  myocardium (1st/99th percentiles), the ADAS 3D style map. Defaults 0.40 (border) and 0.60 (core).

Intensity offset: FWHM and IIR are ratios, so they assume that zero signal is stored as 0. Some
scanners store a phase-sensitive (PSIR) image with zero signal at a constant such as 2048 (EMIDEC:
the air peak of every stack's histogram lies at 1990-2090 of a 0-4095 range). ``intensity_offset``
(``--intensity-offset``, default 0: the image is used as stored) is subtracted from every pixel
before the rule; ``nsd`` and ``psi`` are offset-free, so a non-zero offset with them is refused
(:func:`check_intensity_offset`) rather than ignored. It is recorded;
the levels are recorded in the image's own units, the other statistics after the subtraction.

FWHM and PSI are relative to the slice's own maximum, so on a slice without enhancement they would
call the brightest noise scar. They therefore grade only slices whose myocardial maximum (99th
percentile) exceeds the darkest sector's mean by ``ENHANCEMENT_SD`` (5) SDs; other slices are all
healthy (recorded as ``enhanced: false``). That test reads the darkest sector's SD, so it needs a sector of
``MIN_ENHANCEMENT_PIXELS`` (15): on a smaller ring (under about 90 pixels) it is made against the whole
myocardium (recorded as ``enhancement_reference``), see :func:`_enhanced`. A slice with no myocardium is
skipped (grade all -1).

Grey levels: a rule's border zone lies between its two levels (border, core); an image with so few grey
levels (a label map, a mask, a volume quantised to a few bits) that this band spans under
``MIN_BORDER_ZONE_STEPS`` (2) of its grey-level steps is refused, per slice, since the quantisation and
not the rule would set the grades. The statistics of every slice (remote or
blood-pool mean and SD, the maximum, the thresholds in intensity units) are returned so that they
can be recorded with the training data and in the report.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np

from ..errors import CardioScarError

logger = logging.getLogger(__name__)

OUTSIDE, HEALTHY, BORDER, CORE = -1, 0, 1, 2
N_SECTORS = 6
MIN_REFERENCE_PIXELS = 5
#: The fewest pixels of the darkest sector whose mean and SD test a slice for enhancement (FWHM, PSI).
#: Measured on unenhanced rings (Gaussian noise, Testing/test_bad_inputs_round13.py): with sectors of
#: 5 pixels or fewer, 6-34 % of them were called enhanced, and then FWHM graded the whole ring scar;
#: with sectors of 15 pixels (a 90-pixel ring), 0.3 %. EMIDEC's smallest sector: 19 pixels.
MIN_ENHANCEMENT_PIXELS = 15
#: The fewest grey-level steps of the image a rule's border zone (border level to core level) must span.
#: EMIDEC's 75 stacks: 3.7 (iir, P092) to hundreds; the same stacks quantised to 3 bits: 0.2-1.2.
MIN_BORDER_ZONE_STEPS = 2
Levels = tuple[float, float, dict]  # border level, core level (intensity units), statistics
ENHANCEMENT_SD = 5.0

# rule -> (default border, default core, valid low, valid high, unit of the thresholds)
RULES: dict[str, tuple[float, float, float, float, str]] = {
    "nsd": (2.0, 3.0, 1.0, 10.0, "SD above the remote mean"),
    "fwhm": (0.35, 0.50, 0.05, 1.0, "fraction of the myocardial maximum"),
    "iir": (1.2, 1.3, 0.5, 5.0, "ratio to the blood-pool mean"),
    "psi": (0.40, 0.60, 0.05, 1.0, "fraction of the myocardial intensity range"),
}


@dataclass
class RuleResult:
    """Grades per slice (-1 outside the myocardium, 0 healthy, 1 border zone, 2 core) and a record
    of how they were obtained."""

    rule: str
    border: float
    core: float
    grades: list[np.ndarray]
    statistics: list[dict] = field(default_factory=list)
    intensity_offset: float = 0.0
    #: the experts' labels the grades were cut to (``expert_scar_labels``, ``expert_core_labels``); empty: none
    expert: dict = field(default_factory=dict)
    #: whether the myocardium mask lies on this LGE (:func:`cardioscar.lge.mask_fit.check_mask_on_lge`'s
    #: record: the share measured, and whether it was judged); empty: not run
    mask_fit: dict = field(default_factory=dict)
    #: whether the LGE shows compact enhancement (:func:`cardioscar.lge.scar_spread.check_scar_spread`'s
    #: record: a scattered scar may be a scar-free heart's noise); empty: not run (the experts' scar)
    scar_spread: dict = field(default_factory=dict)

    def scar_targets(self) -> list[np.ndarray]:
        """Per-slice targets for the scar (border zone + core) field: 1/0 inside, NaN outside."""
        return [_target(g, g >= BORDER) for g in self.grades]

    def core_targets(self) -> list[np.ndarray]:
        """Per-slice targets for the core field: 1/0 inside the myocardium, NaN outside."""
        return [_target(g, g == CORE) for g in self.grades]

    def record(self) -> dict:
        """A JSON-ready description: rule, thresholds and their unit, per-slice statistics."""
        return {"rule": self.rule, "border": self.border, "core": self.core, "unit": RULES[self.rule][4],
                "intensity_offset": self.intensity_offset, **self.expert,
                **({"mask_fit": self.mask_fit} if self.mask_fit else {}),
                **({"scar_spread": self.scar_spread} if self.scar_spread else {}), "slices": self.statistics}


def rule_definition(record: dict) -> tuple:
    """What defines the tissue classes of a rule's record (:meth:`RuleResult.record`): rule, border
    and core thresholds, intensity offset, and the experts' scar and core labels. A scar model and a
    core model are one tagging only when these agree (a core learned over the whole myocardium
    beside a scar cut to the experts' would tag core outside the scar); the statistics may differ."""
    return (record.get("rule"), record.get("border"), record.get("core"), record.get("intensity_offset", 0.0),
            record.get("expert_scar_labels"), record.get("expert_core_labels"))


def _target(grades: np.ndarray, positive: np.ndarray) -> np.ndarray:
    target = positive.astype(np.float64)
    target[grades == OUTSIDE] = np.nan
    return target


def parse_thresholds(rule: str, text: str | None) -> tuple[float, float]:
    """``"BORDER,CORE"`` (or None for the documented defaults) -> checked (border, core)."""
    if rule not in RULES:
        raise CardioScarError(f"--scar-rule '{rule}' is unknown; choose one of {', '.join(RULES)}")
    default_border, default_core, low, high, unit = RULES[rule]
    if text is None:
        border, core = default_border, default_core
    else:
        parts = text.split(",")
        try:
            border, core = (float(p) for p in parts)
        except ValueError:
            raise CardioScarError(f"--scar-thresholds '{text}' must be two numbers BORDER,CORE, e.g. "
                                  f"{default_border:g},{default_core:g} for --scar-rule {rule}") from None
    if not (low <= border < core <= high):
        raise CardioScarError(f"--scar-thresholds {border:g},{core:g} for --scar-rule {rule} ({unit}) must satisfy "
                              f"{low:g} <= BORDER < CORE <= {high:g}")
    return border, core


#: The rules that divide the stored intensity (ratios), so read ``intensity_offset``; n-SD and PSI
#: are offset-free (a shift of every pixel moves their levels with it), so an offset changes nothing.
OFFSET_RULES = ("fwhm", "iir")


def check_intensity_offset(rule: str, intensity_offset: float) -> float:
    """The offset as a float, refused in one line when it is not finite or when ``rule`` is offset-free.

    Why refuse rather than ignore: an offset given with n-SD or PSI changed nothing without a word, so a
    user who meant a ratio rule (or thought the offset fixed a PSIR image for n-SD) never learnt it
    had no effect; 0 (none) is accepted with every rule."""
    try:
        offset = float(intensity_offset)
    except (TypeError, ValueError):
        raise CardioScarError(f"--intensity-offset {intensity_offset!r} must be a number (the stored value of zero "
                              "signal, e.g. 2048; 0 = none)") from None
    if not np.isfinite(offset):
        raise CardioScarError(f"--intensity-offset {intensity_offset} must be a finite number (the stored value of "
                              "zero signal, e.g. 2048; 0 = none)")
    if offset != 0.0 and rule in RULES and rule not in OFFSET_RULES:
        raise CardioScarError(f"--intensity-offset {offset:g} applies to the ratio rules ({', '.join(OFFSET_RULES)}); "
                              f"--scar-rule {rule} is offset-free (its levels move with the image): leave it out, or "
                              "use --scar-rule fwhm or iir")
    return offset


def apply_rule(rule: str, images: Sequence[np.ndarray], myocardium: Sequence[np.ndarray],
               blood_pool: Sequence[np.ndarray] | None = None, remote: Sequence[np.ndarray] | None = None,
               thresholds: tuple[float, float] | None = None, intensity_offset: float = 0.0,
               slice_names: Sequence[str] | None = None, healthy: Sequence[np.ndarray] | None = None) -> RuleResult:
    """Grade every slice of ``images`` by ``rule`` inside its ``myocardium`` mask.

    ``blood_pool`` is required by ``iir``; ``remote`` (optional, ``nsd`` only) replaces the automatic
    darkest-sector choice. ``intensity_offset`` is the stored value of zero signal, subtracted
    first (see the module's docstring). All per-slice arrays must have the image's shape.
    ``slice_names`` (e.g. "lge.nii.gz k=5") name the slices in errors; default "slice <position>".
    ``healthy`` (optional): myocardium known to be healthy (outside the experts' scar), where the
    darkest sector is sought, so that dark no-reflow inside a scar is never taken for the remote.
    """
    border, core = parse_thresholds(rule, None if thresholds is None else f"{thresholds[0]},{thresholds[1]}")
    offset = check_intensity_offset(rule, intensity_offset)
    if rule == "iir" and blood_pool is None:
        raise CardioScarError("--scar-rule iir needs the blood pool: give --blood-pool-mask FILE or --blood-pool-labels")
    _check_shapes(images, myocardium, "myocardium")
    if blood_pool is not None:
        _check_shapes(images, blood_pool, "blood-pool")
    if remote is not None:
        _check_shapes(images, remote, "remote")
    if healthy is not None:
        _check_shapes(images, healthy, "healthy")
    names = [f"slice {k}" for k in range(len(images))] if slice_names is None else [str(n) for n in slice_names]
    refuse_wrapped_int16(images, names)
    masks = [np.asarray(m, bool) for m in myocardium]
    if not any(m.any() for m in masks):
        raise CardioScarError("The myocardium mask does not overlap any chosen slice; check the mask file/labels "
                              "and --slice-indices")
    if rule in OFFSET_RULES:
        _warn_zero_signal_not_at_zero(images, masks, offset, rule)
    grades, stats, whole_myocardium_searched = [], [], []
    for k, (image, myo) in enumerate(zip(images, masks)):
        values = np.asarray(image, np.float64) - offset
        grade = np.full(values.shape, OUTSIDE, np.int8)
        if not myo.any():
            grades.append(grade)
            stats.append({"slice": k, "myocardium_pixels": 0})
            continue
        blood = None if blood_pool is None else np.asarray(blood_pool[k], bool)
        own_remote = None if remote is None else np.asarray(remote[k], bool)
        where = names[k]
        _check_contrast(values[myo], where, offset, rule)
        reference = _sector_search(myo, None if healthy is None else np.asarray(healthy[k], bool))
        if healthy is not None and reference is myo and _uses_darkest_sector(rule, own_remote):
            whole_myocardium_searched.append(where)
        border_level, core_level, record = _LEVELS[rule](values, myo, blood, own_remote, border, core, where,
                                                         reference)
        inside = values[myo]
        _check_grey_levels(inside, border_level, core_level, where, rule, offset)
        if record.get("enhanced") is False:  # a relative rule leaves a slice without enhancement healthy
            border_level = core_level = np.inf
        grade[myo] = np.where(inside >= core_level, CORE, np.where(inside >= border_level, BORDER, HEALTHY))
        # levels in intensity units; None on a slice a relative rule left ungraded (no enhancement)
        record.update(slice=k, myocardium_pixels=int(myo.sum()), border_level=_finite_or_none(border_level + offset),
                      core_level=_finite_or_none(core_level + offset), border_pixels=int((grade == BORDER).sum()),
                      core_pixels=int((grade == CORE).sum()))
        grades.append(grade)
        stats.append(record)
    _warn_whole_myocardium_searched(whole_myocardium_searched)
    _warn_small_rings([name for name, s in zip(names, stats) if "enhancement_reference" in s], rule)
    logger.info("Scar rule %s: border %g, core %g (%s), intensity offset %g; %d border and %d core pixels on %d "
                "slices", rule, border, core, RULES[rule][4], offset, sum(s.get("border_pixels", 0) for s in stats),
                sum(s.get("core_pixels", 0) for s in stats), len(grades))
    return RuleResult(rule=rule, border=border, core=core, grades=grades, statistics=stats, intensity_offset=offset)


#: The int16 range, and how near each end (stored values) a wrapped image's pixels lie.
INT16_MIN, INT16_MAX, WRAP_BAND = -32768, 32767, 2048
#: The share of the chosen slices' pixels that must lie within WRAP_BAND of each end of int16's range
#: (the ends themselves not counted) for the LGE to be refused as a wrapped uint16 image. EMIDEC's 75
#: stacks times 16 wrapped: the smaller of the two shares 3.4-20.6 % (times 12: 1.2-21.3 %); the same
#: stacks less 2048 as signed PSIR images at int16's range, min-max scaled or times 16, 24 and 32
#: clipped: at most 0.11 %; as stored, 0 (``Testing/benchmarks/lge_int16_wrap_emidec.py``).
MIN_WRAPPED_SHARE = 0.01


def refuse_wrapped_int16(images: Sequence[np.ndarray], names: Sequence[str]) -> None:
    """Refuse an LGE stored as unsigned 16 bits but written or read as signed int16: each value over
    32767 wrapped round to a negative one, so the brightest pixels became the darkest.

    Why: EMIDEC P015 times 16, so wrapped: n-SD gave 1,573 scar rows for 1,714, exit 0. No single
    value tells it from a signed image (a PSIR LGE is legitimately negative); its signature is the
    pixels piling at both ends of int16's range at once, as one distribution cut in two where it
    crosses 32767/-32768 (the air of a PSIR stored at 2048 times 16 sits right on the cut). A signed
    image at int16's full range holds only its tails there; its clipped or padding values lie on the
    ends themselves, which are not counted."""
    values = [np.asarray(image) for image in images]
    if not values or any(v.size == 0 or v.min() < INT16_MIN or v.max() > INT16_MAX for v in values):
        return  # outside int16's range: not an int16 image
    total = sum(v.size for v in values)
    low = sum(int(((v > INT16_MIN) & (v <= INT16_MIN + WRAP_BAND)).sum()) for v in values) / total
    high = sum(int(((v < INT16_MAX) & (v >= INT16_MAX - WRAP_BAND)).sum()) for v in values) / total
    if min(low, high) >= MIN_WRAPPED_SHARE:
        sources = list(dict.fromkeys(name.rsplit(" ", 1)[0] if "=" in name else name for name in names))
        raise CardioScarError(f"The LGE {', '.join(sources)} looks like an unsigned 16-bit image read as signed int16: "
                              f"{100 * high:.1f} % of its pixels lie within {WRAP_BAND} of 32767 and {100 * low:.1f} % "
                              f"within {WRAP_BAND} of -32768, so its values over 32767 wrapped round to negative (the "
                              "brightest became the darkest): re-save it with pixel type uint16 (or float) from the "
                              "original data")


def _check_contrast(inside: np.ndarray, where: str, offset: float, rule: str) -> None:
    """A myocardium of one intensity cannot be graded: every rule would call it all healthy (a
    label map or mask given as the LGE, or a slice without data), silently. FWHM's fractions of
    a maximum at or below zero (an offset above it) put the core below the border zone."""
    if inside.size >= MIN_REFERENCE_PIXELS and np.ptp(inside) == 0:
        raise CardioScarError(f"The myocardium on {where} has one intensity ({inside[0] + offset:g}) in all "
                              f"{inside.size} pixels: --image must be the raw LGE (not a label map or mask), and the "
                              "myocardium mask must lie on slices with data")
    peak = float(np.percentile(inside, 99))
    if rule == "fwhm" and peak <= 0:
        raise CardioScarError(f"The myocardial maximum on {where} is {peak:g} after --intensity-offset {offset:g}; "
                              f"FWHM needs positive intensities: give --intensity-offset below {peak + offset:g} (the "
                              "stored value of zero signal; 0 = none)")


def _check_grey_levels(inside: np.ndarray, border_level: float, core_level: float, where: str, rule: str,
                       offset: float) -> None:
    """Refuse a slice whose grey levels are too coarse for the rule: its border zone (border level up
    to core level) spans under MIN_BORDER_ZONE_STEPS of the myocardium's smallest grey-level step.

    Why: each level may move by a step, so the border zone would be the quantisation's, not the rule's.
    A 3-bit EMIDEC stack (P015) passed every rule, FWHM calling 2,286 pixels core where the stack at
    8 bits gives 3,570, and P055's infarct was judged unenhanced (no scar); a label map given as the LGE
    with --dark-blood-lge (which skips the mask's fit check) was graded too. Checked on slices judged
    unenhanced as well, since that judgement reads the same coarse levels. The step is the smallest gap
    between the slice's distinct myocardial values, so a finely quantised or a float image always
    passes; a slice whose values barely repeat (fewer pixels than twice its distinct values) is not
    judged, since its gaps are the sampling's."""
    levels = np.unique(inside)
    if levels.size < 2 or levels.size > inside.size / 2:
        # one value (over MIN_REFERENCE_PIXELS pixels _check_contrast refused it), or values that barely repeat:
        # their gaps are those of a few samples (a slice's 3 pixels at a mask's edge), not a quantisation's
        return
    step = float(np.diff(levels).min())
    spans = (core_level - border_level) / step
    if spans < MIN_BORDER_ZONE_STEPS:
        raise CardioScarError(f"The LGE on {where} has {levels.size} grey levels in the myocardium (steps of "
                              f"{step:g}): --scar-rule {rule}'s border zone ({border_level + offset:.4g} to "
                              f"{core_level + offset:.4g}) spans {spans:.1f} steps (need >= {MIN_BORDER_ZONE_STEPS}), so the quantisation, not "
                              "the rule, would set the grades: give the raw LGE as the scanner stored it (not a label "
                              "map, a mask, or an image reduced to a few grey levels)")


#: The rules that divide intensities, and so need zero signal stored as 0.
OFFSET_RULES = ("fwhm", "iir")
#: Background (air) above this share of the myocardium's maximum (99th percentile) is not zero
#: signal. EMIDEC's 75 stacks: 0.57-0.95 as stored, -0.05-0.05 once their 2048 is subtracted.
MAX_BACKGROUND_SHARE = 0.3


def background_level(images: Sequence[np.ndarray]) -> float:
    """The commonest stored value of the slices (the centre of the fullest of 256 histogram bins),
    leaving out exact zeros (padding outside the scanned field): the air around the body, which
    fills most of a cardiac field of view, at the stored value of zero signal."""
    values = np.concatenate([np.asarray(image, np.float64).ravel() for image in images])
    values = values[values != 0]
    if values.size == 0 or np.ptp(values) == 0:
        return 0.0
    counts, edges = np.histogram(values, bins=256)
    return float(edges[np.argmax(counts)] + (edges[1] - edges[0]) / 2)


def _warn_zero_signal_not_at_zero(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], offset: float,
                                  rule: str) -> None:
    """Warn when the air around the body is stored far above 0 (after ``offset``), near the
    myocardium's own levels: a PSIR image stored with zero signal at 2048 (EMIDEC) graded by a
    ratio rule without ``--intensity-offset``. Measured on EMIDEC P001: iir found 1 border-zone and
    no core pixel instead of 209 and 67 (a scar-free patient), fwhm no border zone at all,
    silently. A warning, not an error: an image cropped to the heart has no air to measure."""
    air = background_level(images) - offset
    peak = float(np.percentile(np.concatenate([np.asarray(image, np.float64)[mask]
                                               for image, mask in zip(images, masks)]), 99)) - offset
    if peak > 0 and air > MAX_BACKGROUND_SHARE * peak:
        logger.warning("--scar-rule %s divides intensities, so zero signal must be stored as 0, but the image's "
                       "commonest value (the air around the body) is %.4g after --intensity-offset %g, %.0f %% of the "
                       "myocardium's maximum %.4g: give the stored value of zero signal as --intensity-offset (about "
                       "%.4g; 2048 for EMIDEC), or use an offset-free rule (nsd, psi)", rule, air, offset,
                       100 * air / peak, peak, air + offset)


def _finite_or_none(value: float) -> float | None:
    return float(value) if np.isfinite(value) else None


def _check_shapes(images: Sequence[np.ndarray], masks: Sequence[np.ndarray], what: str) -> None:
    if len(masks) != len(images):
        raise CardioScarError(f"The {what} mask has {len(masks)} slices but the image has {len(images)}; "
                              "both must cover the same slices")
    for k, (image, mask) in enumerate(zip(images, masks)):
        if np.shape(mask) != np.shape(image):
            raise CardioScarError(f"The {what} mask's slice {k} is {np.shape(mask)} pixels but the image's is "
                                  f"{np.shape(image)}; the mask must be on the image's grid")


#: The healthy myocardium (outside the experts' scar) of a slice is searched for the darkest sector
#: when it has this many pixels (enough for six sectors of MIN_REFERENCE_PIXELS each, twice over).
MIN_HEALTHY_PIXELS = 2 * N_SECTORS * MIN_REFERENCE_PIXELS


def _sector_search(myocardium: np.ndarray, healthy: np.ndarray | None) -> np.ndarray:
    """Where the darkest sector is sought: the slice's healthy myocardium when it is known and large
    enough, else the whole myocardium (a slice the experts call nearly all scar)."""
    if healthy is None:
        return myocardium
    known = myocardium & healthy
    return known if known.sum() >= MIN_HEALTHY_PIXELS else myocardium


def _uses_darkest_sector(rule: str, remote: np.ndarray | None) -> bool:
    """Whether ``rule`` reads the darkest sector: n-SD without a remote mask (its remote), FWHM and
    PSI (their enhancement test); IIR reads the blood pool instead."""
    return rule in ("fwhm", "psi") or (rule == "nsd" and remote is None)


def _warn_whole_myocardium_searched(slices: Sequence[str]) -> None:
    """One warning naming the slices whose healthy myocardium (outside the experts' scar) was too
    small for the darkest-sector search, so the whole myocardium, scar included, was searched.

    Why: there the remote (n-SD) or the enhancement test (FWHM, PSI) may sit on the experts' own
    scar (dark no-reflow taken for the remote), and only the rule's record in the ``.npz`` said so."""
    if slices:
        logger.warning("--expert-scar-labels leave under %d healthy myocardial pixels on %d slice(s) (%s): their "
                       "darkest sector (n-SD's remote, FWHM/PSI's enhancement test) was sought in the whole "
                       "myocardium, the experts' scar included; check the expert labels there, or give n-SD a "
                       "--remote-mask", MIN_HEALTHY_PIXELS, len(slices), ", ".join(slices))


def _warn_small_rings(slices: Sequence[str], rule: str) -> None:
    """One warning naming the slices too small for the darkest-sector enhancement test (FWHM, PSI),
    tested against their whole myocardium instead: an enhanced small ring may be left healthy."""
    if slices:
        logger.warning("--scar-rule %s: %d slice(s) (%s) have no myocardial sector of %d pixels (of %d) for the test "
                       "of enhancement, so it was made against their whole myocardium, where a small scar may stay "
                       "ungraded (healthy); use --scar-rule nsd there, or leave them out (--slice-indices)", rule,
                       len(slices), ", ".join(slices), MIN_ENHANCEMENT_PIXELS, N_SECTORS)


def darkest_sector(values: np.ndarray, myocardium: np.ndarray, n_sectors: int = N_SECTORS,
                   min_pixels: int = MIN_REFERENCE_PIXELS) -> tuple[np.ndarray, int]:
    """The myocardial sector (angles around the myocardium's centroid) with the lowest mean intensity,
    among the sectors of at least ``min_pixels`` pixels (a sliver's mean is noise), unless none has
    (then any sector: n-SD refuses a remote under MIN_REFERENCE_PIXELS, :func:`_enhanced` does not use it)."""
    rows, cols = np.nonzero(myocardium)
    angle = np.arctan2(rows - rows.mean(), cols - cols.mean())
    sector = np.minimum(((angle + np.pi) / (2 * np.pi) * n_sectors).astype(int), n_sectors - 1)
    sizes = np.bincount(sector, minlength=n_sectors)
    least = min_pixels if sizes.max() >= min_pixels else 1
    means = [values[rows[sector == s], cols[sector == s]].mean() if sizes[s] >= least else np.inf
             for s in range(n_sectors)]
    best = int(np.argmin(means))
    mask = np.zeros_like(myocardium, bool)
    mask[rows[sector == best], cols[sector == best]] = True
    return mask, best


def remote_region(values: np.ndarray, myocardium: np.ndarray, remote: np.ndarray | None = None,
                  search_in: np.ndarray | None = None) -> tuple[np.ndarray, str]:
    """n-SD's remote myocardium on one slice, and where it came from (recorded): the user's ``remote``
    mask within the myocardium, else the darkest of :data:`N_SECTORS` sectors of ``search_in`` (the
    myocardium, or the part of it known to be healthy: :func:`_sector_search`).

    Why one function: the scar-free warning (:mod:`cardioscar.lge.scar_spread`) reads the enhancement
    above the same remote whatever the rule, so that its cut and n-SD's levels stand on one reference."""
    if remote is not None:
        return remote & myocardium, "user mask"
    search = myocardium if search_in is None else search_in
    region, sector = darkest_sector(values, search)
    outside = " outside the expert scar" if search is not myocardium else ""
    return region, f"darkest of {N_SECTORS} sectors{outside} (sector {sector})"


@dataclass(frozen=True)
class RemoteReference:
    """n-SD's reference of healthy myocardium on one slice: the remote region's mean and SD, its
    pixel count, and where the region came from (:func:`remote_region`). NaN mean and SD for an
    empty region, which n-SD refuses and the scar-free warning reads as no enhancement."""

    mean: float
    sd: float
    pixels: int
    source: str

    def level(self, n_sd: float) -> float:
        """The intensity ``n_sd`` SDs above the remote mean: n-SD's border and core levels and the
        scar-free warning's cut, computed here once so that they stay the same numbers."""
        return self.mean + n_sd * self.sd


def remote_reference(values: np.ndarray, myocardium: np.ndarray, remote: np.ndarray | None = None,
                     search_in: np.ndarray | None = None) -> RemoteReference:
    """The statistics of n-SD's remote on one slice (arguments as :func:`remote_region`)."""
    region, source = remote_region(values, myocardium, remote, search_in)
    pixels = values[region]
    if not pixels.size:
        return RemoteReference(float("nan"), float("nan"), 0, source)
    return RemoteReference(float(pixels.mean()), float(pixels.std()), int(pixels.size), source)


def _nsd(values: np.ndarray, myo: np.ndarray, blood: np.ndarray | None, remote: np.ndarray | None,
         border: float, core: float, where: str, reference: np.ndarray) -> Levels:
    remote_stats = remote_reference(values, myo, remote, reference)
    if remote_stats.pixels < MIN_REFERENCE_PIXELS:
        raise CardioScarError(f"The remote region on {where} has {remote_stats.pixels} myocardial pixels (need >= "
                              f"{MIN_REFERENCE_PIXELS}); give a remote mask that lies inside the myocardium, or leave "
                              "out a slice of so little myocardium (--slice-indices)")
    if remote_stats.sd == 0:
        # the region checked is the user's remote mask, or the one found inside the myocardium mask:
        # advice about a remote mask nobody gave sent the user after a file that does not exist
        check = ("check the remote mask" if remote is not None else
                 "check that the myocardium mask lies on this image's myocardium (its grid, origin and spacing)")
        raise CardioScarError(f"The remote region on {where} has one intensity in all "
                              f"{remote_stats.pixels} pixels (SD 0); n-SD needs a noisy healthy region: give the raw LGE as "
                              "the scanner stored it (not a label map, a mask, or an image reduced to a few grey "
                              f"levels), and {check}")
    return (remote_stats.level(border), remote_stats.level(core),
            {"remote": remote_stats.source, "remote_mean": remote_stats.mean, "remote_sd": remote_stats.sd,
             "remote_pixels": remote_stats.pixels})


def _enhanced(values: np.ndarray, reference: np.ndarray, peak: float, record: dict) -> bool:
    """Whether the slice's myocardial maximum stands ENHANCEMENT_SD SDs above its darkest sector
    (sought in ``reference``: the myocardium, or its part known to be healthy) of at least
    MIN_ENHANCEMENT_PIXELS pixels, else above the whole ``reference`` (recorded in ``record``).

    Why not any sector: the SD of a sliver is noise. On a 20-pixel ring (sectors of 3) 34 % of
    unenhanced slices were called enhanced and FWHM then graded every pixel scar; against the whole
    small ring, whose SD the scar widens, an enhanced slice may be missed instead (no scar invented)."""
    region, _ = darkest_sector(values, reference, min_pixels=MIN_ENHANCEMENT_PIXELS)
    if region.sum() < MIN_ENHANCEMENT_PIXELS:
        region = reference
        record["enhancement_reference"] = f"whole myocardium (no sector of {MIN_ENHANCEMENT_PIXELS} pixels)"
    pixels = values[region]
    return bool(peak > pixels.mean() + ENHANCEMENT_SD * pixels.std())


def _relative_levels(border_level: float, core_level: float, enhanced: bool, record: dict) -> Levels:
    """The levels with the enhancement verdict recorded; :func:`apply_rule` leaves an unenhanced slice healthy
    after checking its grey levels (a coarse image must not pass by being judged unenhanced)."""
    record["enhanced"] = enhanced
    return border_level, core_level, record


def _fwhm(values: np.ndarray, myo: np.ndarray, blood: np.ndarray | None, remote: np.ndarray | None,
          border: float, core: float, where: str, reference: np.ndarray) -> Levels:
    peak = float(np.percentile(values[myo], 99))
    record = {"maximum": peak}
    return _relative_levels(border * peak, core * peak, _enhanced(values, reference, peak, record), record)


def _iir(values: np.ndarray, myo: np.ndarray, blood: np.ndarray | None, remote: np.ndarray | None,
         border: float, core: float, where: str, reference: np.ndarray) -> Levels:
    pool = values[blood & ~myo]
    if pool.size < MIN_REFERENCE_PIXELS and blood.sum() >= MIN_REFERENCE_PIXELS:
        raise CardioScarError(f"The blood pool on {where} lies inside the myocardium mask: check --myocardium-labels "
                              "(without them every non-zero label of the mask is myocardium, the cavity too)")
    if pool.size < MIN_REFERENCE_PIXELS:
        raise CardioScarError(f"The blood pool on {where} has {pool.size} pixels (need >= {MIN_REFERENCE_PIXELS}) "
                              "for --scar-rule iir; check --blood-pool-mask/--blood-pool-labels, or leave out the "
                              "slices without a cavity (--slice-indices)")
    mean = float(pool.mean())
    if mean <= 0:
        raise CardioScarError(f"The blood-pool mean on {where} is {mean:g} after --intensity-offset; IIR needs "
                              "positive intensities: give the offset at which the image stores zero signal (0 = none)")
    return border * mean, core * mean, {"blood_mean": mean, "blood_sd": float(pool.std()), "blood_pixels": int(pool.size)}


def _psi(values: np.ndarray, myo: np.ndarray, blood: np.ndarray | None, remote: np.ndarray | None,
         border: float, core: float, where: str, reference: np.ndarray) -> Levels:
    low, high = (float(v) for v in np.percentile(values[myo], [1, 99]))
    span = high - low
    record = {"minimum": low, "maximum": high}
    return _relative_levels(low + border * span, low + core * span, _enhanced(values, reference, high, record), record)


_LEVELS: dict[str, Callable] = {"nsd": _nsd, "fwhm": _fwhm, "iir": _iir, "psi": _psi}
