"""Targets from a raw LGE node by a scar rule, with its masks read from the scene (Qt-free).

The masks mean what the command line's do (``cardioscar prepare --myocardium-mask/-labels,
--blood-pool-mask/-labels, --remote-mask``), but each may be a Slicer node of either kind:

* a label map (or 0/1 scalar volume): the myocardium's labels are ``options.myocardium_labels``
  (else non-zero), the blood pool's ``options.blood_pool_labels`` (else non-zero), the remote
  region is non-zero;
* the experts' scar and core (``options.expert_scar_labels`` / ``expert_core_labels``): labels of
  the myocardium's label map (a segmentation has no labels: refused);
* a segmentation: its segment named ``options.myocardium_segment`` / ``blood_pool_segment`` /
  ``remote_segment``, exported on the segmentation's reference grid.

Like the command line's masks, each is sampled at every LGE pixel's centre in world coordinates
(its parent transform applied), so it may lie on another grid than the LGE; a mask placed slice by
slice (under a non-linear transform) must be on the LGE's own slices.

Without a blood-pool (remote) node, the blood pool (remote region) comes from the myocardium's node
when its labels (segment name) are given: one label map or segmentation holding every structure,
as EMIDEC's and ACDC's label maps do. Nothing in the scene changes.
"""

from __future__ import annotations

import numpy as np

from cardioscar.errors import CardioScarError

from .options import ReconstructionOptions
from .scarsource import scar_source_from_node, segment_source
from .slabwidth import half_width


def _is_segmentation(node) -> bool:
    return node is not None and node.IsA("vtkMRMLSegmentationNode")


def _mask_layers(node, segment: str, labels, what: str, slicing: tuple, image: list) -> list[np.ndarray]:
    """Boolean per-slice masks of ``node`` (label map: ``labels`` or non-zero; segmentation: the
    segment named ``segment``) on the LGE ``image``'s slices."""
    from cardioscar.lge.prepare import mask_arrays
    from cardioscar.prepare.myocardium import masks_from_voxels

    if _is_segmentation(node):
        if not segment.strip():
            raise CardioScarError(f"The {what} input '{node.GetName()}' is a segmentation: type the name of its {what} "
                                  "segment.")
        source, labels = segment_source(node, segment, what), None
    else:
        if segment.strip():
            raise CardioScarError(f"The {what} segment '{segment}' names a segment of a segmentation, but "
                                  f"'{node.GetName()}' is a volume: clear the segment name or choose the segmentation.")
        source = scar_source_from_node(node)
    if source.ijk_to_lps is None:
        return mask_arrays(source.slices(*slicing), labels, what, node.GetName(), image)
    return masks_from_voxels(source.volume_kji, source.ijk_to_lps, image, labels, source=f"'{node.GetName()}'",
                             what=f"The {what} mask")


def _shared_node(own, myocardium_node, labels, segment: str):
    """The node a blood-pool or remote mask is read from: its own, else the myocardium's when the
    user named labels (label map) or a segment (segmentation) in it."""
    if own is not None:
        return own
    holds_it = bool(segment.strip()) or (bool(labels) and not _is_segmentation(myocardium_node))
    return myocardium_node if holds_it else None  # a segment name with a label map is refused when read


def rule_slices(lge_node, options: ReconstructionOptions, myocardium_node, blood_pool_node=None, remote_node=None,
                dicom_database=None) -> tuple[list, str]:
    """Target layers graded by ``options.scar_rule`` from the raw LGE node, and the rule's JSON record."""
    from cardioscar.lge.prepare import graded_targets, rule_record_json

    if isinstance(lge_node, (list, tuple)):
        if len(lge_node) != 1:
            raise CardioScarError("A scar rule grades one LGE volume: choose a single input volume.")
        lge_node = lge_node[0]
    if myocardium_node is None:
        raise CardioScarError(f"The scar rule {options.scar_rule} needs the myocardium: choose a label map "
                              "(and its myocardium labels, e.g. 2,3,4) or a segmentation (and its myocardium segment).")
    request = options.scar_rule_request(myocardium_node.GetName())
    if request.expert_scar_labels and _is_segmentation(myocardium_node):
        raise CardioScarError(f"--expert-scar-labels names labels of a label map, but the myocardium "
                              f"'{myocardium_node.GetName()}' is a segmentation: choose the experts' label map as the "
                              "myocardium mask (its myocardium labels, e.g. 2,3,4), or clear the expert labels")
    axis, indices = options.slice_axis, options.parsed_slice_indices()
    slicing = (axis, indices, half_width(lge_node, options.half_thickness, dicom_database))
    image = scar_source_from_node(lge_node).slices(*slicing)
    myocardium = _mask_layers(myocardium_node, options.myocardium_segment, request.myocardium_labels, "myocardium",
                              slicing, image)
    blood_node = _shared_node(blood_pool_node, myocardium_node, request.blood_pool_labels, options.blood_pool_segment)
    if blood_node is None and options.scar_rule == "iir":
        where = "segment name" if _is_segmentation(myocardium_node) else "labels"
        raise CardioScarError(f"The scar rule iir needs the blood pool: choose a blood-pool node, or give the blood "
                              f"pool's {where} in '{myocardium_node.GetName()}'")
    blood = None if blood_node is None else _mask_layers(blood_node, options.blood_pool_segment,
                                                         request.blood_pool_labels, "blood pool", slicing, image)
    remote_from = _shared_node(remote_node, myocardium_node, None, options.remote_segment)
    remote = None if remote_from is None else _mask_layers(remote_from, options.remote_segment, None, "remote",
                                                           slicing, image)
    if remote is not None and not any((r & m).any() for r, m in zip(remote, myocardium)):
        raise CardioScarError(f"The remote region '{remote_from.GetName()}' has no pixel inside the myocardium on the "
                              "chosen slices: draw it in healthy myocardium, or leave it empty for the darkest sector")
    expert = _expert_masks(request, myocardium_node, slicing, image)
    layers, rule = graded_targets(request, image, myocardium, blood, remote, myocardium_node.GetName(), expert)
    return layers, rule_record_json(rule, request.target)


def _expert_masks(request, myocardium_node, slicing: tuple, image: list):
    """The experts' scar and core masks of the myocardium's label map (None without expert labels)."""
    from cardioscar.lge.prepare import ExpertMasks, expert_masks, mask_arrays

    if not request.expert_scar_labels:
        return None
    source = scar_source_from_node(myocardium_node)
    if source.ijk_to_lps is not None:
        return expert_masks(source.volume_kji, source.ijk_to_lps, image, request, f"'{myocardium_node.GetName()}'")
    layers = source.slices(*slicing)  # placed slice by slice: on the LGE's own slices
    core = request.expert_core_labels
    return ExpertMasks(mask_arrays(layers, request.expert_scar_labels, "--expert-scar-labels", myocardium_node.GetName(),
                                   image),
                       mask_arrays(layers, core, "--expert-core-labels", myocardium_node.GetName(), image) if core else None)


def rule_myocardium(layers: list, options: ReconstructionOptions, myocardium_node):
    """The myocardium record of a run on a scar rule: the rule leaves NaN in every pixel outside
    the myocardium (a raw LGE image has no NaN of its own), so those are the dropped pixels."""
    from cardioscar.prepare.myocardium import MyocardiumReport

    dropped = np.array([int(np.isnan(layer.values).sum()) for layer in layers], dtype=np.int64)
    kept = np.array([int(np.isfinite(layer.values).sum()) for layer in layers], dtype=np.int64)
    return MyocardiumReport(f"scar rule {options.scar_rule}, myocardium from {myocardium_node.GetName()}",
                            dropped, kept)


__all__ = ["rule_slices", "rule_myocardium"]
