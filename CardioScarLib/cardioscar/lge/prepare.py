"""Scar-rule targets for ``cardioscar prepare``: the raw LGE slices, the myocardium and blood-pool
masks cut on the same slices, one rule -> per-slice 0/1 targets (NaN outside the myocardium).

What the network learns: two 0/1 fields, chosen by ``target``: ``scar`` (border zone + core, the
default, so ``scar_probability`` keeps its meaning: probability that the node is scar) and
``core``. A second model trained on the core target gives a core probability; ``cardioscar export
--core-mesh`` turns the two into healthy / border zone / core tags (see :mod:`cardioscar.simulation.tags`).

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

from ..checks import whole_labels
from ..errors import CardioScarError
from ..prepare.slices import SliceLayer
from .rules import RuleResult, apply_rule, parse_thresholds

logger = logging.getLogger(__name__)

TARGETS = ("scar", "core")


@dataclass
class ScarRuleRequest:
    """A scar rule and its masks, as given on the command line or by the panel."""

    rule: str
    myocardium_path: Path
    myocardium_labels: Optional[list[int]] = None
    blood_pool_path: Optional[Path] = None
    blood_pool_labels: Optional[list[int]] = None
    remote_path: Optional[Path] = None
    thresholds: Optional[tuple[float, float]] = None
    target: str = "scar"
    intensity_offset: float = 0.0


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
        masks.append(np.isin(values, list(labels)) if labels else values > 0)
    return masks


def rule_targets(request: ScarRuleRequest, image: list[SliceLayer], myocardium: list[np.ndarray],
                 myocardium_name: str, read: Optional[dict] = None) -> tuple[list[SliceLayer], RuleResult]:
    """Target layers (``request.target``: scar or core) and the rule's record, from raw LGE layers and
    their myocardium masks; the blood-pool and remote mask files are sampled at each pixel centre by
    the library's mask reader (:func:`cardioscar.prepare.myocardium.masks_from_image`), so any grid works.
    ``read``: images already read, by resolved path (the myocardium mask's: one label map is often
    the myocardium and the blood-pool mask both, and was read and logged twice)."""
    from ..prepare.myocardium import masks_from_image, read_mask_image

    known = dict(read or {})

    def masks(path: Optional[Path], labels, option: str) -> Optional[list[np.ndarray]]:
        if path is None:
            return None
        key = Path(path).resolve()
        if key not in known:
            known[key] = read_mask_image(path)
        return masks_from_image(known[key], image, labels, source=str(path), what=option)

    return graded_targets(request, image, myocardium,
                          masks(request.blood_pool_path, request.blood_pool_labels, "--blood-pool-mask"),
                          masks(request.remote_path, None, "--remote-mask"), myocardium_name)


def graded_targets(request: ScarRuleRequest, image: list[SliceLayer], myocardium: list[np.ndarray],
                   blood: Optional[list[np.ndarray]], remote: Optional[list[np.ndarray]],
                   myocardium_name: str) -> tuple[list[SliceLayer], RuleResult]:
    """Apply the request's rule to raw LGE layers with per-slice masks (shared by the CLI and Slicer)."""
    if request.target not in TARGETS:
        raise CardioScarError(f"--scar-target '{request.target}' must be one of {', '.join(TARGETS)}")
    thresholds = parse_thresholds(request.rule, None if request.thresholds is None else
                                  ",".join(str(t) for t in request.thresholds))
    try:
        result = apply_rule(request.rule, [layer.values for layer in image], myocardium, blood, remote, thresholds,
                            request.intensity_offset, [layer.label for layer in image])
    except CardioScarError as error:
        if "does not overlap" in str(error):
            raise CardioScarError(f"--myocardium-mask {myocardium_name} (labels {request.myocardium_labels or 'nonzero'}) "
                                  "has no pixel on the chosen slices; check --myocardium-labels and "
                                  "--slice-indices") from None
        raise
    values = result.scar_targets() if request.target == "scar" else result.core_targets()
    layers = [dataclasses.replace(layer, values=v) for layer, v in zip(image, values)]
    for layer, stats in zip(layers, result.statistics):
        stats["label"] = layer.label
    logger.info("Scar rule %s thresholds %g,%g; training target: %s", result.rule, result.border, result.core,
                request.target)
    return layers, result


def rule_record_json(result: RuleResult, target: str) -> str:
    """The rule, thresholds, per-slice statistics and the target learnt, as one JSON string."""
    return json.dumps({**result.record(), "target": target})
