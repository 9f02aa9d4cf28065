"""Scar-rule targets for ``cardioscar prepare``: the raw LGE slices, the myocardium and blood-pool
masks cut on the same slices, one rule -> per-slice 0/1 targets (NaN outside the myocardium).

What the network learns: two 0/1 fields, chosen by ``target``: ``scar`` (border zone + core, the
default, so ``scar_probability`` keeps its meaning: probability that the node is scar) and
``core``. A second model trained on the core target gives a core probability; ``cardioscar export
--core-mesh`` turns the two into healthy / border zone / core tags (see :mod:`cardioscar.simulation.tags`).

Experts' scar (``expert_scar_labels``, ``--expert-scar-labels``): labels of the myocardium label map
that the experts drew as scar (EMIDEC 3,4). The rule then grades only inside them: myocardium outside
is healthy, every pixel inside is at least border zone and core where the rule calls core, so the
scar target is the experts' scar and the core target the rule's core within it. The labels in
``expert_core_labels`` (EMIDEC's no-reflow, 4: microvascular obstruction, dense necrosis, dark on
LGE so never core by intensity) are core whatever their intensity. The darkest sector (n-SD's remote,
the relative rules' enhancement test) is sought outside the experts' scar.

The myocardium masks come from prepare's ``--myocardium-mask``/``--myocardium-labels`` reader
(:mod:`cardioscar.prepare.myocardium`), which also reads the blood-pool and remote masks here. In Slicer the
masks are label-map nodes cut like the LGE node (:func:`mask_arrays`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from ..io.checks import check_label_list, whole_labels
from ..errors import CardioScarError
from ..prepare.myocardium import check_mask_slices
from ..prepare.targets import EPICARDIAL_SCAR_SHARE, outer_border_share
from ..prepare.slices import SliceLayer
from .mask_fit import check_mask_on_lge
from .scar_spread import check_scar_spread
from .rules import (BORDER, CORE, HEALTHY, MIN_REFERENCE_PIXELS, OUTSIDE, RuleResult, apply_rule,
                    check_intensity_offset, parse_thresholds)

logger = logging.getLogger(__name__)

TARGETS = ("scar", "core")


@dataclass
class ScarRuleRequest:
    """A scar rule and its masks, as given on the command line or by the panel.

    ``myocardium_path`` / ``myocardium_labels``: the myocardium mask the rule grades in (the experts'
    labels are labels of it). In the Python API they may be left out: a ``PreprocessingRequest`` gives
    the rule its own ``myocardium_mask`` and ``myocardium_labels`` (:meth:`on_myocardium`), so the mask
    is given once (it had to be given on both)."""

    rule: str
    myocardium_path: Optional[Path] = None
    myocardium_labels: Optional[list[int]] = None
    blood_pool_path: Optional[Path] = None
    blood_pool_labels: Optional[list[int]] = None
    remote_path: Optional[Path] = None
    thresholds: Optional[tuple[float, float]] = None
    target: str = "scar"
    intensity_offset: float = 0.0
    expert_scar_labels: Optional[list[int]] = None
    expert_core_labels: Optional[list[int]] = None
    #: a dark-blood LGE (blood nulled): the check that the mask lies on this LGE's bright blood pool is skipped
    dark_blood_lge: bool = False

    def __post_init__(self) -> None:
        # the Python API's label lists as ints, as PreprocessingRequest's: the text "3,4" was read as the
        # labels ',', '3', ',', '4', a numpy array raised a ValueError traceback
        for name, example in (("myocardium_labels", "[2, 3, 4]"), ("blood_pool_labels", "[1]"),
                              ("expert_scar_labels", "[3, 4]"), ("expert_core_labels", "[4]")):
            setattr(self, name, check_label_list(getattr(self, name), name, example))
        if self.myocardium_path is not None:  # else checked once a PreprocessingRequest gives its mask (on_myocardium)
            self.myocardium_path = Path(self.myocardium_path)
            check_expert_labels(self.myocardium_labels, self.expert_scar_labels, self.expert_core_labels)
        if self.thresholds is not None and (isinstance(self.thresholds, str) or np.ndim(self.thresholds) != 1
                                            or len(self.thresholds) != 2):
            # the text "0.3,0.8" was parsed character by character: "'0,.,3,,,0,.,8' must be two numbers"
            raise CardioScarError(f"thresholds must be two numbers (border, core) such as (0.4, 0.6), got "
                                  f"{self.thresholds!r}")
        if not isinstance(self.dark_blood_lge, (bool, np.bool_)):
            raise CardioScarError(f"dark_blood_lge must be True or False, got {self.dark_blood_lge!r}")
        # every face builds this request (command line, cohort, Slicer Logic, batch script): refused here
        # before any image is read, and again in apply_rule for the API's direct calls
        self.intensity_offset = check_intensity_offset(self.rule, self.intensity_offset)

    def on_myocardium(self, mask: Path, labels: Optional[list[int]]) -> "ScarRuleRequest":
        """This rule on a preparation's myocardium mask and labels (checked as a whole here)."""
        return dataclasses.replace(self, myocardium_path=Path(mask), myocardium_labels=labels)


def _listed(labels: Sequence[int]) -> str:
    return ",".join(map(str, labels))


def check_expert_labels(myocardium: Optional[Sequence[int]], scar: Optional[Sequence[int]],
                        core: Optional[Sequence[int]]) -> None:
    """The experts' labels name a part of the myocardium's label map, and their core a part of their scar."""
    _refuse_background(scar, core, myocardium)
    if core and not scar:
        raise CardioScarError(f"--expert-core-labels {_listed(core)} needs --expert-scar-labels: the core labels are "
                              "part of the experts' scar (e.g. --expert-scar-labels 3,4 --expert-core-labels 4)")
    if not scar:
        return
    if not myocardium:
        raise CardioScarError(f"--expert-scar-labels {_listed(scar)} names labels of the --myocardium-mask label map: "
                              "give its --myocardium-labels too (e.g. --myocardium-labels 2,3,4 --expert-scar-labels 3,4)")
    outside = sorted(set(scar) - set(myocardium))
    if outside:
        raise CardioScarError(f"--expert-scar-labels {_listed(outside)} not in --myocardium-labels {_listed(myocardium)}: "
                              "the experts' scar is myocardium; list it in both")
    outside = sorted(set(core or ()) - set(scar))
    if outside:
        raise CardioScarError(f"--expert-core-labels {_listed(outside)} not in --expert-scar-labels {_listed(scar)}: "
                              "the experts' core is scar; list it in both")


def _refuse_background(scar: Optional[Sequence[int]], core: Optional[Sequence[int]],
                      myocardium: Optional[Sequence[int]]) -> None:
    """Label 0 is a label map's background: as the experts' scar (or core) every pixel off the heart
    was graded "scar" and ``prepare`` exited 0. On the expert route the myocardium labels are refused
    with 0 too, here, before the images are read (elsewhere a later check of the wall refuses them)."""
    for option, labels in (("--expert-scar-labels", scar), ("--expert-core-labels", core),
                           ("--myocardium-labels", myocardium if scar or core else None)):
        if labels and 0 in labels:
            raise CardioScarError(f"{option} {_listed(labels)} holds label 0, the label map's background: give the "
                                  "labels the experts drew (EMIDEC: --myocardium-labels 2,3,4 --expert-scar-labels 3,4 "
                                  "--expert-core-labels 4)")


@dataclass
class ExpertMasks:
    """Per-slice boolean masks of the experts' scar and (optionally) core labels, on the LGE's slices."""

    scar: list[np.ndarray]
    core: Optional[list[np.ndarray]] = None


def mask_arrays(layers: list[SliceLayer], labels: Optional[Sequence[int]], option: str, name: str,
                image: list[SliceLayer]) -> list[np.ndarray]:
    """Boolean per-slice masks (``labels``, or nonzero) from mask slices cut like the ``image``'s."""
    if len(layers) != len(image):
        raise CardioScarError(f"{option} {name} gives {len(layers)} slices but the image gives {len(image)}: "
                              "the mask must be on the LGE image's grid")
    masks = []
    for mask, pixels in zip(layers, image):
        if mask.values.shape != pixels.values.shape or not np.allclose(mask.origin, pixels.origin, atol=1e-3):
            raise CardioScarError(f"{option} {name}: slice '{mask.label}' is not on the LGE image's grid "
                                  f"({mask.values.shape} at {np.round(mask.origin, 2).tolist()} vs "
                                  f"{pixels.values.shape} at {np.round(pixels.origin, 2).tolist()})")
        values = whole_labels(np.nan_to_num(mask.values), f"{option} {name}")
        check_mask_slices([values], labels, f"{option} {name}")
        masks.append(np.isin(values, list(labels)) if labels else values > 0)
    return masks


def expert_masks(values: np.ndarray, ijk_to_lps: np.ndarray, image: list[SliceLayer], request: ScarRuleRequest,
                 source: str) -> ExpertMasks:
    """The experts' scar and core masks of a label map's voxels (k, j, i), sampled once at each LGE
    pixel's centre (the two masks are label sets of the same samples). Labels with no voxel give
    empty masks (no no-reflow drawn is common; no scar drawn is refused by :func:`check_expert_masks`,
    which says so in the words of the option)."""
    from ..prepare.myocardium import labels_at_pixel_centres

    labels = whole_labels(values, f"--myocardium-mask {source}")
    core = request.expert_core_labels
    wanted = [(option, chosen) for option, chosen in (("--expert-scar-labels", request.expert_scar_labels),
                                                       ("--expert-core-labels", core)) if chosen]
    drawn = [option for option, chosen in wanted if np.isin(labels, list(chosen)).any()]
    # the label map does not overlap a slice: said in the words of the first option whose labels it holds
    sampled = labels_at_pixel_centres(labels, ijk_to_lps, image, source, drawn[0]) if drawn else None

    def masks(chosen: Sequence[int], option: str) -> list[np.ndarray]:
        if option not in drawn:
            return [np.zeros(layer.values.shape, bool) for layer in image]
        return [np.isin(pixels, list(chosen)) for pixels in sampled]

    return ExpertMasks(masks(request.expert_scar_labels, "--expert-scar-labels"),
                       masks(core, "--expert-core-labels") if core else None)


def rule_targets(request: ScarRuleRequest, image: list[SliceLayer], myocardium: list[np.ndarray],
                 myocardium_name: str, read: Optional[dict] = None) -> tuple[list[SliceLayer], RuleResult]:
    """Target layers (``request.target``: scar or core) and the rule's record, from raw LGE layers and
    their myocardium masks; the blood-pool and remote mask files are sampled at each pixel centre by
    the library's mask reader (:func:`cardioscar.prepare.myocardium.masks_from_image`), so any grid works.
    ``read``: images already read, by resolved path (the myocardium mask's: one label map is often
    the myocardium and the blood-pool mask both, and was read and logged twice)."""
    from ..prepare.myocardium import masks_from_image, read_mask_image
    from ..prepare.slices import ijk_to_lps_matrix

    known = dict(read or {})

    def once(path: Path, what: str = "--myocardium-mask"):
        key = Path(path).resolve()
        if key not in known:
            known[key] = read_mask_image(path, image, what)
        return known[key]

    def masks(path: Optional[Path], labels, option: str) -> Optional[list[np.ndarray]]:
        if path is None:
            return None
        return masks_from_image(once(path, option), image, labels, source=str(path), what=option)

    expert = None
    if request.expert_scar_labels:
        label_map = once(request.myocardium_path)
        expert = expert_masks(sitk.GetArrayFromImage(label_map), ijk_to_lps_matrix(label_map), image, request,
                              str(request.myocardium_path))
    return graded_targets(request, image, myocardium,
                          masks(request.blood_pool_path, request.blood_pool_labels, "--blood-pool-mask"),
                          masks(request.remote_path, None, "--remote-mask"), myocardium_name, expert)


def graded_targets(request: ScarRuleRequest, image: list[SliceLayer], myocardium: list[np.ndarray],
                   blood: Optional[list[np.ndarray]], remote: Optional[list[np.ndarray]],
                   myocardium_name: str, expert: Optional[ExpertMasks] = None) -> tuple[list[SliceLayer], RuleResult]:
    """Apply the request's rule to raw LGE layers with per-slice masks (shared by the CLI and Slicer);
    with ``expert`` (the masks of ``request.expert_scar_labels``), only inside the experts' scar."""
    if request.target not in TARGETS:
        raise CardioScarError(f"--scar-target '{request.target}' must be one of {', '.join(TARGETS)}")
    if (expert is None) != (not request.expert_scar_labels):
        raise ValueError("graded_targets needs the expert masks exactly when the request names expert labels")
    thresholds = parse_thresholds(request.rule, None if request.thresholds is None else
                                  ",".join(str(t) for t in request.thresholds))
    if remote is not None and request.rule != "nsd":
        # the command line and the cohort refused it; the Python API and the Slicer Logic (a remote node
        # left selected after switching the rule) dropped it without a word (round 15)
        raise CardioScarError(f"--remote-mask is used by --scar-rule nsd only; "
                              f"{request.rule} has no remote region: leave it out, or use --scar-rule nsd")
    if blood is not None and request.rule != "iir":
        logger.warning("--blood-pool-mask/--blood-pool-labels are used by --scar-rule iir only (the ratio to the "
                       "blood pool); %s does not read them: leave them out, or use --scar-rule iir", request.rule)
    if request.dark_blood_lge and request.rule == "iir":
        logger.warning("--scar-rule iir with --dark-blood-lge: iir's thresholds are ratios to the blood-pool mean, "
                       "published for bright-blood LGE; with dark blood give --scar-thresholds measured on this "
                       "sequence, or use nsd, fwhm or psi, which read the myocardium alone")
    healthy = None
    if expert is not None:
        check_expert_masks(request, expert, myocardium, myocardium_name)
        healthy = [m & ~e for m, e in zip(myocardium, expert.scar)]
        remote = None if remote is None else remote_outside_expert_scar(remote, healthy, myocardium, image, request)
    try:
        result = apply_rule(request.rule, [layer.values for layer in image], myocardium, blood, remote, thresholds,
                            request.intensity_offset, [layer.label for layer in image], healthy)
    except CardioScarError as error:
        if "does not overlap" in str(error):
            raise CardioScarError(f"--myocardium-mask {myocardium_name} (labels {request.myocardium_labels or 'nonzero'}) "
                                  "has no pixel on the chosen slices; check --myocardium-labels and --slice-indices, "
                                  "and that the mask lies where the LGE does (its origin, spacing and direction: a "
                                  "mask of another image's grid)") from None
        raise
    fit = check_mask_on_lge(image, myocardium, myocardium_name, request.dark_blood_lge)
    spread = {} if expert is not None else check_scar_spread(image, myocardium, remote, result)
    result = dataclasses.replace(result, mask_fit=fit, scar_spread=spread)
    if expert is not None:
        result = within_expert_scar(result, expert, request)
    values = result.scar_targets() if request.target == "scar" else result.core_targets()
    layers = [dataclasses.replace(layer, values=v) for layer, v in zip(image, values)]
    for layer, stats in zip(layers, result.statistics):
        stats["label"] = layer.label
    logger.info("Scar rule %s thresholds %g,%g; training target: %s", result.rule, result.border, result.core,
                request.target)
    return layers, result


def check_expert_masks(request: ScarRuleRequest, expert: ExpertMasks, myocardium: list[np.ndarray],
                       myocardium_name: str) -> None:
    """The experts' scar labels must mark pixels of the chosen slices: a typo (or a heart the experts
    call scar-free) would otherwise make every target healthy without a word. Core labels that mark
    none are common (most infarcts have no no-reflow), so they are only logged."""
    if not any((m & e).any() for m, e in zip(myocardium, expert.scar)):
        raise CardioScarError(f"--expert-scar-labels {_listed(request.expert_scar_labels)} match no pixel of "
                              f"--myocardium-mask {myocardium_name} on the chosen slices: give the labels the experts "
                              "drew the scar with (EMIDEC 3,4), check --slice-indices, or leave --expert-scar-labels out "
                              "for a scar-free heart")
    if expert.core is not None and not any((m & e).any() for m, e in zip(myocardium, expert.core)):
        logger.info("--expert-core-labels %s match no pixel on the chosen slices (no no-reflow drawn): the core is "
                    "the rule's alone", _listed(request.expert_core_labels))
    share = outer_border_share(myocardium, expert.scar)
    if share > EPICARDIAL_SCAR_SHARE:
        logger.warning("--expert-scar-labels %s make up %.0f %% of the myocardium's outer border (its pixels next to "
                       "the outside, not the cavity): they look like the healthy myocardium, not scar (an infarct "
                       "reaches the outer border only where it is transmural; EMIDEC's scar labels 3,4 hold under "
                       "40 %%), and the rest of the myocardium is graded as healthy: check the map's numbering "
                       "(EMIDEC: scar 3,4, myocardium 2,3,4)", _listed(request.expert_scar_labels), 100 * share)


def remote_outside_expert_scar(remote: list[np.ndarray], healthy: list[np.ndarray], myocardium: list[np.ndarray],
                               image: list[SliceLayer], request: ScarRuleRequest) -> list[np.ndarray]:
    """The user's remote region (n-SD's reference of healthy myocardium) less the experts' scar. A
    remote over the scar raises the levels by the scar's own brightness: on EMIDEC P022 a remote
    drawn on label 3 left the experts' scar all border zone but the no-reflow given as core (606 core
    pixels; 1,507 with the darkest sector), exit 0. Its pixels outside the scar are used; a slice
    where fewer than MIN_REFERENCE_PIXELS remain is refused."""
    kept = [r & h for r, h in zip(remote, healthy)]
    for own, cut, myo, layer in zip(remote, kept, myocardium, image):
        drawn, left = int((own & myo).sum()), int(cut.sum())
        if left < drawn and left < MIN_REFERENCE_PIXELS:
            raise CardioScarError(f"--remote-mask: {drawn - left} of its {drawn} myocardial pixels on slice "
                                  f"'{layer.label}' lie in the experts' scar (--expert-scar-labels "
                                  f"{_listed(request.expert_scar_labels)}), leaving {left} (need >= "
                                  f"{MIN_REFERENCE_PIXELS}): the remote is healthy myocardium; draw it outside the "
                                  "experts' scar, or leave it out for the darkest sector outside it")
    dropped = sum(int((r & m).sum() - k.sum()) for r, m, k in zip(remote, myocardium, kept))
    if dropped:
        logger.info("--remote-mask: %d of its pixels lie in the experts' scar and are left out of the remote", dropped)
    return kept


def within_expert_scar(result: RuleResult, expert: ExpertMasks, request: ScarRuleRequest) -> RuleResult:
    """The rule's grades cut to the experts' scar: healthy outside it, at least border zone inside,
    core where the rule calls core or the experts drew core. The statistics keep the rule's own
    counts (``rule_border_pixels``, ``rule_core_pixels``) beside the new ones."""
    grades, statistics = [], []
    core = expert.core or [None] * len(expert.scar)
    for grade, scar, own_core, record in zip(result.grades, expert.scar, core, result.statistics):
        myocardium = grade != OUTSIDE
        cut = np.where(myocardium & ~scar, HEALTHY, grade).astype(grade.dtype)
        cut[myocardium & scar & (grade == HEALTHY)] = BORDER
        if own_core is not None:
            cut[myocardium & own_core] = CORE
        statistics.append({**record, "rule_border_pixels": record.get("border_pixels", 0),
                           "rule_core_pixels": record.get("core_pixels", 0),
                           "expert_scar_pixels": int((myocardium & scar).sum()),
                           "border_pixels": int((cut == BORDER).sum()), "core_pixels": int((cut == CORE).sum())})
        grades.append(cut)
    logger.info("Within the experts' scar (labels %s; core labels %s): %d border-zone and %d core pixels",
                _listed(request.expert_scar_labels), _listed(request.expert_core_labels or []) or "none",
                sum(s["border_pixels"] for s in statistics), sum(s["core_pixels"] for s in statistics))
    return dataclasses.replace(result, grades=grades, statistics=statistics,
                               expert={"expert_scar_labels": list(request.expert_scar_labels),
                                       "expert_core_labels": list(request.expert_core_labels or [])})


def rule_record_json(result: RuleResult, target: str) -> str:
    """The rule, thresholds, per-slice statistics and the target learnt, as one JSON string."""
    return json.dumps({**result.record(), "target": target})
