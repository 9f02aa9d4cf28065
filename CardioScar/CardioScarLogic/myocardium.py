"""Where the myocardium is on the chosen slices, from the nodes the user gave.

The three ways of ``cardioscar prepare`` (see :mod:`cardioscar.prepare.myocardium`), with nodes: the
myocardium labels of a label-map input, a segmentation's myocardium segment (exported beside its
scar segment, :mod:`CardioScarLogic.scarsource`), or a separate mask volume node (a label map or
a 0/1 scalar volume) sampled at each chosen pixel's centre in world coordinates, so it may be on
another grid than the input. Pixels outside become NaN: they make no group.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import slicer

from cardioscar.errors import CardioScarError
from cardioscar.prepare.myocardium import (MyocardiumReport, label_masks, masks_from_voxels, no_restriction,
                                   restrict_to_myocardium)

from .geometry import volume_ijk_to_lps
from .options import ReconstructionOptions
from .scarsource import ScarSource


def _labels_text(labels: Sequence[int]) -> str:
    return ",".join(map(str, labels))


def masks_from_node(node, slices: list, labels: list[int] | None) -> list[np.ndarray]:
    """The mask volume node sampled at the slices' pixel centres (world LPS, linear transforms)."""
    if node.IsA("vtkMRMLSegmentationNode"):
        raise CardioScarError(f"'{node.GetName()}' is a segmentation: choose a label map or 0/1 volume as myocardium "
                              "mask, or give the myocardium segment's name with the segmentation as input.")
    if not node.IsA("vtkMRMLScalarVolumeNode") or node.GetImageData() is None:
        raise CardioScarError(f"The myocardium mask '{node.GetName()}' must be a label map or scalar volume with "
                              "image data.")
    values = np.array(slicer.util.arrayFromVolume(node), copy=True)
    return masks_from_voxels(values, volume_ijk_to_lps(node), slices, labels, source=f"'{node.GetName()}'",
                             what="myocardium mask")


def _masks_from_labels(slices: list, owners: Sequence[ScarSource], options: ReconstructionOptions,
                       labels: list[int] | None) -> tuple[list[np.ndarray] | None, str]:
    """Per slice, its input's myocardium labels (label map) or myocardium segment (segmentation)."""
    known = [source.myocardium_labels(labels) for source in owners]
    if all(wanted is None for wanted in known):
        if labels is not None:
            names = ", ".join(sorted({source.label for source in owners}))
            raise CardioScarError(f"Myocardium labels {_labels_text(labels)} name labels of a label-map input: for "
                                  f"'{names}' choose a myocardium mask volume (or, for a segmentation, type its "
                                  "myocardium segment's name).")
        return None, ""
    unknown = sorted({source.label for source, wanted in zip(owners, known) if wanted is None})
    if unknown:
        raise CardioScarError(f"The myocardium is known for some inputs but not for {', '.join(unknown)}: give "
                              "myocardium labels (label maps), the myocardium segment (segmentations) or one mask "
                              "volume for all.")
    scar_labels = options.parsed_scar_labels(True)
    masks: list[np.ndarray | None] = [None] * len(slices)
    sources = []
    for source in {id(source): source for source in owners}.values():
        wanted = source.myocardium_labels(labels)
        outside = sorted(set(source.scar_labels(scar_labels)) - set(wanted))
        if outside:
            raise CardioScarError(f"Scar labels {_labels_text(outside)} are not among the myocardium labels "
                                  f"{_labels_text(wanted)}: scar is myocardium; list them in both.")
        mine = [index for index, owner in enumerate(owners) if owner is source]
        what = (f"the myocardium segment '{source.myocardium_segment}' of '{source.label}', labels"
                if source.from_segmentation else f"myocardium labels of '{source.label}'")
        for index, mask in zip(mine, label_masks([slices[i] for i in mine], wanted, what=what)):
            masks[index] = mask
        sources.append(f"segment {source.myocardium_segment}" if source.from_segmentation
                       else f"labels {_labels_text(wanted)}")
    return masks, "; ".join(dict.fromkeys(sources))


def restrict_targets(slices: list, targets: list, owners: Sequence[ScarSource], options: ReconstructionOptions,
                     mask_node=None) -> tuple[list, MyocardiumReport]:
    """``targets`` (the training values of ``slices``, whose inputs are ``owners``) with NaN
    outside the myocardium, and what was dropped; unchanged when no myocardium was given."""
    labels = options.parsed_myocardium_labels()
    if options.myocardium_segment.strip() and not any(source.from_segmentation for source in owners):
        raise CardioScarError(f"The myocardium segment '{options.myocardium_segment}' names a segment of a "
                              "segmentation input; for a volume give myocardium labels or a mask volume instead.")
    if mask_node is not None:
        masks = masks_from_node(mask_node, slices, labels)
        source = f"mask {mask_node.GetName()}" + (f" labels {_labels_text(labels)}" if labels else "")
    else:
        masks, source = _masks_from_labels(slices, owners, options, labels)
    if masks is None:
        if options.myocardium_margin:  # as cardioscar prepare: a margin alone would be silently ignored
            raise CardioScarError(f"Myocardium margin {options.myocardium_margin} px widens a myocardium: give "
                                  "myocardium labels (label map), the myocardium segment (segmentation) or a "
                                  "myocardium mask volume too, or set the margin to 0.")
        return targets, no_restriction(targets)
    margin = options.myocardium_margin
    return restrict_to_myocardium(targets, masks, source + (f" margin {margin} px" if margin else ""), margin,
                                  scar_map=not options.normalize_intensities)


__all__ = ["masks_from_node", "restrict_targets"]
