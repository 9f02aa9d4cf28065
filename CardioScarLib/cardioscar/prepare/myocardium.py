"""Where the myocardium is on each chosen slice, so pixels outside it carry no constraint.

Why: a scar map drawn inside a myocardium segmentation (or a label map) is 0 in blood-pool and
background pixels. A mesh never follows that segmentation exactly at the endo- and epicardium, so
wall nodes fall into those pixels; trained towards 0 they pull the scar field down where the wall
next to them is scar. Such pixels mean "no data", not "no scar": they become NaN, and a NaN pixel
makes no group (:mod:`cardioscar.prepare.mapping`).

Masks come from the slice values themselves (a label map with myocardium labels) or from a second
image (a 0/1 mask, or a label image with its myocardium labels) sampled at each chosen pixel's
centre in patient space (nearest voxel), so the mask may be on another grid than the image as
long as it covers the slices. The same reader serves any other mask a rule needs (a blood pool).
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import CardioScarError
from ..io.checks import check_mask_values, whole_labels
from .slices import SliceLayer, ijk_to_lps_matrix, per_slice_text
from .targets import (CAVITY_RADIUS_MM, CAVITY_SHARE, CLOSED_LUMEN, MANY_RAMPS, as_used, cavity_slices,
                      enclosed_disc_mm, lumen_of, ramps, unmatched_labels)

logger = logging.getLogger(__name__)


def label_masks(layers: Sequence[SliceLayer], labels: Sequence[int], what: str = "--myocardium-labels") -> list[np.ndarray]:
    """Per slice, the pixels whose value is one of ``labels`` (the slices of a label map)."""
    wanted = sorted({int(v) for v in labels})
    if not wanted:
        raise CardioScarError(f"{what} is empty; list the label values, e.g. 2,3,4")
    masks = [np.isin(layer.values, wanted) for layer in layers]
    if not any(mask.any() for mask in masks):
        raise unmatched_labels(layers, wanted, option=what, what="myocardium")
    check_myocardium_labels([layer.values for layer in layers], wanted, [layer.spacing for layer in layers], what,
                            as_used(LabelHarm(), SCORE_HARM))
    return masks


#: What the cavity listed as myocardium does to the training targets.
TRAINS_THE_WALL = "its pixels would train the wall at the endocardium towards no scar"


def refuse_cavity_label(label_slices: Sequence[np.ndarray], labels: Sequence[int], what: str,
                        harm: str = TRAINS_THE_WALL) -> None:
    """Refuse myocardium labels that include the cavity (blood pool): a label whose pixels fill
    the lumen of the ring the other labels make, so that all of them together leave no lumen.

    Why: with the cavity listed (EMIDEC ``1,2,3,4`` for ``2,3,4``: "every label of the heart"),
    its pixels, target 0, constrain the wall nodes at the endocardium, right where infarcts begin
    (P001: 6,604 more rows of target 0, 11 % more), the thing a myocardium is given to avoid.
    The infarct core inside the wall (EMIDEC's no-reflow 4) also lies in a lumen of the others, but
    the ring with it keeps its cavity open, so it passes."""
    wanted = sorted({int(v) for v in labels})
    if len(wanted) < 2:
        return
    for label in wanted:
        if fills_the_lumen(label_slices, [v for v in wanted if v != label], label):
            raise CardioScarError(f"{what} {','.join(map(str, wanted))}: label {label} fills the inside of the ring "
                                  f"the others make, the cavity (blood pool), not myocardium; {harm}: leave it out "
                                  "(EMIDEC: 2,3,4; ACDC: 2)")


def fills_the_lumen(label_slices: Sequence[np.ndarray], ring: Sequence[int], label: int) -> bool:
    """Whether ``label`` is the cavity of the ring the labels ``ring`` make: at least
    :data:`CAVITY_SHARE` of its pixels lie in that ring's lumen, and with it the ring leaves under
    :data:`CLOSED_LUMEN` of the lumen open. Told by where it lies, not by its size, so a small
    heart's cavity counts too; a no-reflow core inside the wall leaves the cavity open."""
    total = inside = lumen_without = lumen_left = 0
    for values in label_slices:
        values = np.nan_to_num(np.asarray(values, np.float64), nan=-1.0)
        own = values == label
        if not own.any():
            continue
        others = np.isin(values, list(ring))
        lumen = lumen_of(others)
        total += int(own.sum())
        inside += int((own & lumen).sum())
        lumen_without += int(lumen.sum())
        lumen_left += int(lumen_of(others | own).sum())
    return bool(total) and inside >= CAVITY_SHARE * total and lumen_left < CLOSED_LUMEN * lumen_without


#: The myocardium labels must close the ring around the cavity on at least this share of the slices
#: where the map's wall does. The right labels: on every such slice (EMIDEC 2,3,4 on 75 maps, with
#: or without the cavity label; ACDC 2 on both frames); a map numbered one below EMIDEC's without a
#: cavity label (1 myocardium, 2 infarct, 3 no-reflow) given 2,3,4: at most 0.11 on all 75; EMIDEC's
#: healthy myocardium 2 alone (ACDC's number), its infarct left out: under 0.75 on 45 of 52 infarct maps.
WALL_RING_SHARE = 0.75


#: A label left out of the myocardium labels lies inside the wall when over this share of the pixels
#: bordering it carry myocardium labels (and it holds no blood pool's disc). EMIDEC with 2,3 (its
#: no-reflow 4 left out): 0.55-1.00 on all 32 maps with no-reflow; with 2,3,4 no label is left but
#: the cavity (a pool); ACDC's RV, left out of 2: 0.35, and a pool.
INSIDE_THE_WALL = 0.5


@dataclasses.dataclass(frozen=True)
class LabelHarm:
    """What wrong myocardium labels would do, in the words of the step that uses them."""

    cavity: str = TRAINS_THE_WALL  # the cavity listed among them
    part: str = "the rest would train as no data, and scar in it with it"  # part of the wall only
    advice: str = "or a 0/1 --myocardium-mask for part of the wall"  # the other way to give part of it
    hole: str = "its pixels train as no data"  # a label inside the wall left out


#: The words of ``evaluate --truth-image``, which scores against the labels instead of training on them.
SCORE_HARM = LabelHarm("its pixels would score the wall at the endocardium against a healthy truth",
                       "the rest would not be scored, and scar in it with it", LabelHarm.advice,
                       "its nodes are not scored")

#: The words of ``mesh-from-labels``, which meshes the labels instead of training on them.
MESH_HARM = LabelHarm("the mesh would fill the ventricle with it", "the mesh would leave the rest out", "",
                      "the mesh has a hole there")


def check_myocardium_labels(label_slices: Sequence[np.ndarray], labels: Sequence[int],
                            spacings: Sequence[tuple[float, float]], what: str, harm: LabelHarm = LabelHarm()) -> None:
    """Every check of myocardium labels on a label map: not the cavity (:func:`refuse_cavity_label`),
    the whole wall (:func:`check_whole_wall`). One call for every step that takes such labels
    (``prepare``'s labels and mask labels, ``mesh-from-labels``, the Slicer Logic through them)."""
    refuse_cavity_label(label_slices, labels, what, harm.cavity)
    check_whole_wall(label_slices, labels, spacings, what, harm)


#: The wall's lumen counts as a ring to judge on a slice when it holds a disc of this many pixels
#: (a speck inside the wall is no cavity); the myocardium labels close that ring when their own
#: lumen covers over RING_COVER of it.
RING_DISC_PX, RING_COVER = 1.5, 0.5


def check_whole_wall(label_slices: Sequence[np.ndarray], labels: Sequence[int],
                     spacings: Sequence[tuple[float, float]], what: str, harm: LabelHarm = LabelHarm()) -> None:
    """Check that myocardium labels hold the whole wall of a label map.

    The wall is the map's non-zero labels less its blood pools (:func:`blood_pools`). Refused:
    labels that close the ring around the cavity (their lumen covers over :data:`RING_COVER` of the
    wall's) on under :data:`WALL_RING_SHARE` of the (two or more) slices where the wall does.
    Warned: a label left out that lies inside the wall (:data:`INSIDE_THE_WALL`).

    Why: label numbers differ between datasets and tools, and the wrong numbers still match
    pixels: a map numbered one below EMIDEC's with no cavity label (1 myocardium, 2 infarct, 3
    no-reflow) given EMIDEC's ``--myocardium-labels 2,3,4 --scar-labels 3,4`` kept the infarct
    alone, trained as healthy around a no-reflow "scar", with the healthy wall dropped; ACDC's
    ``--myocardium-labels 2`` on an EMIDEC map leaves its infarct out of the myocardium and of a
    ``mesh-from-labels`` mesh; ``2,3`` leaves the no-reflow core out, a hole in the mesh's wall
    where the infarct is (P001: 5,943 voxels for 7,454). The hole is a warning: a map may label
    something inside the wall that is not myocardium. The ring is judged by cover, not by a
    cavity's size: a ring counted only around a 13 mm disc never ran on a small heart (EMIDEC's
    maps at half their spacing: 11 of the 52 maps numbered one below refused, now all 52)."""
    wanted = sorted({int(v) for v in labels})
    slices = [np.rint(np.nan_to_num(np.asarray(values, np.float64), nan=0.0)).astype(np.int64)
              for values in label_slices]
    pools = blood_pools(slices, wanted, spacings)
    wall_rings = labels_ring = 0
    others: set[int] = set()
    present = {int(v) for values in slices for v in np.unique(values)} - {0} - set(wanted) - pools
    border = {label: 0 for label in present}
    on_myocardium = dict(border)
    for values, spacing in zip(slices, spacings):
        wall = (values != 0) & ~np.isin(values, sorted(pools))
        for label in border:
            own = values == label
            if own.any():
                ring = ndimage.binary_dilation(own) & ~own
                border[label] += int(ring.sum())
                on_myocardium[label] += int(np.isin(values[ring], wanted).sum())
        if enclosed_disc_mm(wall, spacing) < RING_DISC_PX * min(spacing):
            continue
        lumen = lumen_of(wall)
        wall_rings += 1
        labels_ring += (lumen_of(np.isin(values, wanted)) & lumen).sum() > RING_COVER * lumen.sum()
        others.update(int(v) for v in np.unique(values[wall]) if int(v) not in wanted)
    if wall_rings >= 2 and labels_ring < WALL_RING_SHARE * wall_rings:
        rest = ",".join(map(str, sorted(others))) or "none"
        raise CardioScarError(f"{what} {','.join(map(str, wanted))} close the ring around the cavity on {labels_ring} "
                              f"of the {wall_rings} slices where the map's wall does (with labels {rest}): they are "
                              f"part of the myocardium, not all of it; {harm.part}: give this map's myocardium labels "
                              f"(EMIDEC 2,3,4; ACDC 2){', ' + harm.advice if harm.advice else ''}")
    for label in sorted(border):
        if border[label] and on_myocardium[label] > INSIDE_THE_WALL * border[label]:
            logger.warning("Label %d lies inside the wall (%.0f %% of the pixels around it are myocardium labels %s) "
                           "but is not one of them (%s): %s; if it is part of the wall (EMIDEC's no-reflow 4), add it "
                           "to the myocardium labels", label, 100.0 * on_myocardium[label] / border[label],
                           ",".join(map(str, wanted)), what, harm.hole)


def blood_pools(slices: Sequence[np.ndarray], wanted: Sequence[int], spacings: Sequence[tuple[float, float]]) -> set[int]:
    """The labels of a map, other than the myocardium labels ``wanted``, that are blood pools: they
    hold a disc of :data:`CAVITY_RADIUS_MM` on some slice (the LV cavity, a large RV), fill the
    lumen of the myocardium labels' ring (:func:`fills_the_lumen`), or look like the cavity of the
    ring of all the other labels on over half of their slices (:func:`cavity_slices`).

    Why the last two: a small heart's cavity holds no 13 mm disc (EMIDEC's maps shrunk 0.6x: 28 of
    75); taken for wall, it was named as lying inside the wall with the advice to add it to the
    myocardium labels, and where the labels leave the ring open (ACDC's 2 on an EMIDEC map) it
    filled the wall's lumen, so no ring was judged."""
    widest: dict[int, float] = {}
    for values, spacing in zip(slices, spacings):
        for label in (int(v) for v in np.unique(values) if v != 0 and int(v) not in wanted):
            disc = float(ndimage.distance_transform_edt(values == label, sampling=(spacing[1], spacing[0])).max())
            widest[label] = max(widest.get(label, 0.0), disc)
    pools = set()
    for label, disc in widest.items():
        cavity, present = cavity_slices(slices, [label], spacings)
        if disc >= CAVITY_RADIUS_MM or fills_the_lumen(slices, wanted, label) or cavity > present / 2:
            pools.add(label)
    return pools


def masks_from_image(image: sitk.Image, layers: Sequence[SliceLayer], labels: Sequence[int] | None = None,
                     source: str = "mask", what: str = "--myocardium-mask") -> list[np.ndarray]:
    """Per slice, the pixels whose centre falls in a voxel of ``image`` that is non-zero (or, with
    ``labels``, one of them). A pixel centre outside the image is not in the mask; a slice the
    image does not reach at all is an error (the mask was made for other slices)."""
    return masks_from_voxels(sitk.GetArrayFromImage(image), ijk_to_lps_matrix(image), layers, labels, source, what)


def masks_from_voxels(values: np.ndarray, ijk_to_lps: np.ndarray, layers: Sequence[SliceLayer],
                      labels: Sequence[int] | None = None, source: str = "mask",
                      what: str = "--myocardium-mask") -> list[np.ndarray]:
    """:func:`masks_from_image` for voxels ``values`` (k, j, i) placed by a 4x4 ``ijk_to_lps``
    matrix: the form a Slicer volume node gives (its world matrix may be any affine one)."""
    if values.ndim != 3:
        raise CardioScarError(f"{what} {source} must be a 3D image, got {values.ndim} dimensions")
    values = whole_labels(values, f"{what} {source}")  # a mask holds whole numbers: 0/1 or labels
    inside = np.isin(values, sorted({int(v) for v in labels})) if labels is not None else values != 0
    if not inside.any():
        wanted = "" if labels is None else f" with labels {','.join(map(str, labels))}"
        raise CardioScarError(f"{what} {source} has no voxel{wanted} (a mask needs non-zero voxels)")
    masks, sampled = [], []
    for layer, (ijk, within) in zip(layers, _voxels_at_pixel_centres(values.shape, ijk_to_lps, layers, source, what)):
        mask = np.zeros(len(within), dtype=bool)
        mask[within] = inside[ijk[within, 2], ijk[within, 1], ijk[within, 0]]
        masks.append(mask.reshape(layer.shape))
        label = np.full(len(within), np.nan)
        label[within] = values[ijk[within, 2], ijk[within, 1], ijk[within, 0]]
        sampled.append(label.reshape(layer.shape))
    check_mask_slices(sampled, labels, f"{what} {source}")
    if labels is not None and "myocardium" in what.lower():
        check_myocardium_labels(sampled, labels, [layer.spacing for layer in layers], f"{what} {source} labels",
                                as_used(LabelHarm(), SCORE_HARM))
    elif "myocardium" in what.lower():
        refuse_label_map_as_mask(sampled, f"{what} {source}")
    return masks


def _voxels_at_pixel_centres(shape: tuple, ijk_to_lps: np.ndarray, layers: Sequence[SliceLayer], source: str,
                             what: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per layer, the (i, j, k) index of the voxel (of a (k, j, i) array of ``shape`` placed by
    ``ijk_to_lps``) nearest each pixel centre, flattened, and whether it lies inside the array;
    a layer the voxels miss entirely is refused (a mask of another frame or patient)."""
    lps_to_ijk = np.linalg.inv(ijk_to_lps)
    size = np.array(shape[::-1])
    found = []
    for layer in layers:
        centres = layer.pixel_centres_lps().reshape(-1, 3)
        ijk = np.floor(centres @ lps_to_ijk[:3, :3].T + lps_to_ijk[:3, 3] + 0.5).astype(np.int64)
        found.append((ijk, np.all((ijk >= 0) & (ijk < size), axis=1)))
    missed = [layer.label for layer, (_, within) in zip(layers, found) if not within.any()]
    if missed:
        hit = [layer.label for layer, (_, within) in zip(layers, found) if within.any()]
        advice = ("give the mask drawn on the same images (same patient frame)" if shape[0] != 1 or not hit else
                  f"it has one slice, which lies on {', '.join(map(repr, hit))}: choose that slice with "
                  "--slice-indices (a one-slice mask covers one slice), or give a mask of every chosen slice")
        raise CardioScarError(f"{what} {source} does not overlap slice '{missed[0]}': {advice}")
    return found


def labels_at_pixel_centres(values: np.ndarray, ijk_to_lps: np.ndarray, layers: Sequence[SliceLayer],
                            source: str, what: str) -> list[np.ndarray]:
    """Per layer, the label of the voxel of ``values`` (k, j, i, whole numbers) at each pixel centre, 0
    outside the voxels: a label map sampled once, from which masks of several label sets are taken
    (the experts' scar and core) without resampling it for each."""
    labels = []
    for layer, (ijk, within) in zip(layers, _voxels_at_pixel_centres(values.shape, ijk_to_lps, layers, source, what)):
        label = np.zeros(len(within), dtype=values.dtype)
        label[within] = values[ijk[within, 2], ijk[within, 1], ijk[within, 0]]
        labels.append(label.reshape(layer.shape))
    return labels


def check_mask_slices(label_slices: Sequence[np.ndarray], labels: Sequence[int] | None, what: str) -> None:
    """The checks of what a mask's or label map's slices hold, for every reader of one: without
    ``labels`` (every non-zero value inside) at most a few values (:func:`check_mask_values`), and
    never values that ramp as an intensity image's do (:func:`refuse_intensity_map`)."""
    if not labels:
        check_mask_values(np.concatenate([np.ravel(values) for values in label_slices]), what)
    refuse_intensity_map(label_slices, what)


def refuse_intensity_map(label_slices: Sequence[np.ndarray], what: str) -> None:
    """Refuse a mask or label map whose values ramp (rise through a middle value along a row or
    column) in over MANY_RAMPS ways: an intensity image, as ``--scar-labels`` refuses one.

    Why: an 8-bit LGE given as the label map holds its air's grey values 2, 3, 4, so
    ``--myocardium-labels 2,3,4`` took the air for the myocardium; on the phantom it passed with two
    warnings and trained 34 rows, all healthy, exit 0."""
    found = set().union(*(ramps(values) for values in label_slices))
    if len(found) > MANY_RAMPS:
        raise CardioScarError(f"{what}: the chosen slices' values rise through a middle value in {len(found)} different "
                              f"ways, as intensities do: an intensity image (the LGE?), not a mask or label map, whose "
                              f"labels do so in at most {MANY_RAMPS} ways (EMIDEC's and ACDC's maps: 6); give the mask "
                              "or label map the myocardium was drawn in")


def refuse_label_map_as_mask(label_slices: Sequence[np.ndarray], what: str) -> None:
    """Refuse a label map given as a 0/1 myocardium mask (no myocardium labels) whose non-zero
    labels include the cavity: one that fills the inside of the ring the others make.

    Why: without labels every non-zero voxel is myocardium, so EMIDEC's map (1 cavity, 2-4 wall)
    as ``--myocardium-mask`` made the blood pool myocardium. On P022 (a 45 ml infarct) n-SD took
    its remote and levels over that region and graded 88 pixels border zone and none core, where
    with ``--myocardium-labels 2,3,4`` it grades 606 and 1,022; exit 0, nothing said. A map of the
    wall alone (EMIDEC's 2,3,4 without the cavity, a 0/1 mask) passes."""
    present = sorted({int(v) for values in label_slices for v in np.unique(np.nan_to_num(values, nan=0.0))} - {0})
    for label in present if len(present) > 1 else ():
        if fills_the_lumen(label_slices, [v for v in present if v != label], label):
            raise CardioScarError(f"{what} is a label map (labels {','.join(map(str, present))}) given without "
                                  f"--myocardium-labels, so every non-zero voxel would be myocardium, and its label "
                                  f"{label} fills the inside of the ring the others make: the cavity (blood pool); "
                                  "give the myocardium's labels with --myocardium-labels (EMIDEC 2,3,4; ACDC 2)")


@dataclasses.dataclass(frozen=True)
class MyocardiumReport:
    """What restricting the targets to the myocardium dropped, per slice (recorded in the ``.npz``)."""

    source: str                     # "labels 2,3,4", "mask lge_myo.nii.gz", or "" (none given)
    dropped_pixels: np.ndarray      # (S,) int64 pixels with a value that lie outside the myocardium
    myocardium_pixels: np.ndarray   # (S,) int64 pixels kept


def restrict_to_myocardium(layers: Sequence[SliceLayer], masks: Sequence[np.ndarray], source: str,
                           margin_px: int = 0, scar_map: bool = True,
                           counted: Sequence[SliceLayer] | None = None,
                           rule_grades: bool = False) -> tuple[list[SliceLayer], MyocardiumReport]:
    """Copies of ``layers`` with NaN outside ``masks`` and the counts of what was dropped.

    ``margin_px`` > 0: a pixel outside the mask but within that many pixels of it (in-plane,
    Euclidean) takes the value of its nearest myocardium pixel instead of NaN. Why: a mesh made
    from other data lies up to a pixel or so off the segmentation, and its wall nodes in such a
    pixel belong to the wall next to it; read as "no data" they are left to the network's
    extrapolation (on the segmented phantom family it over-called the scar there; see
    Testing/benchmarks/ROBUSTNESS.md, *Where the error is*). Such pixels still count as dropped
    (their own value is not used).

    ``scar_map``: the values are scar (a scar map, labels, a rule's targets), so the mask must hold
    them (:func:`check_scar_inside`); False for min-max normalised raw LGE, whose bright blood pool
    outside the myocardium is what the mask is there to remove.

    ``counted``: the layers whose valued pixels outside the mask count as dropped, when not
    ``layers`` themselves: a scar rule's targets are already NaN outside the myocardium, so their
    raw LGE is counted (the Slicer Logic's count; the log and ``.npz`` said 0 dropped).

    ``rule_grades``: the values are a scar rule's grades, not a map the user gave, so
    :func:`warn_myocardium_mostly_scar` (an inverted map) does not judge them."""
    check_margin(margin_px)
    if len(masks) != len(layers):
        raise CardioScarError(f"{len(masks)} myocardium masks for {len(layers)} slices")
    for layer, mask in zip(layers, masks):
        if mask.shape != layer.shape:
            raise CardioScarError(f"the myocardium mask of slice '{layer.label}' is {mask.shape}, the slice {layer.shape}")
    out, dropped, kept = [], [], []
    for layer, mask, raw in zip(layers, masks, counted or layers):
        has_value = np.isfinite(layer.values)
        values = np.where(mask, layer.values, np.nan)
        if margin_px > 0 and mask.any():
            values = np.where(has_value, nearest_within(values, mask, margin_px), np.nan)
        dropped.append(int((np.isfinite(raw.values) & ~mask).sum()))
        kept.append(int((has_value & mask).sum()))
        out.append(dataclasses.replace(layer, values=values))
    if scar_map:
        check_scar_inside(layers, masks, source, [layer.values for layer in out])
        refuse_mask_of_scar_only(layers, masks, source)
        if not rule_grades:
            warn_myocardium_mostly_scar(layers, masks, source)
    else:
        warn_normalised_myocardium_mostly_scar(layers, masks, source)
    report = MyocardiumReport(source, np.asarray(dropped, np.int64), np.asarray(kept, np.int64))
    if report.myocardium_pixels.sum() == 0:
        raise CardioScarError(f"no chosen pixel lies in the myocardium ({source}): check the labels or mask")
    empty = [layer.label for layer, count in zip(layers, kept) if count == 0]
    if empty:  # an apex or base slice may truly have none; a wrong slice choice or mask shows here
        logger.warning("No myocardium (%s) on %d chosen slice(s): %s; %s (check the mask and --slice-indices)",
                       source, len(empty), ", ".join(empty),
                       as_used("they constrain nothing", "no node is scored on them"))
    logger.info("Myocardium (%s): %d pixels kept, %d outside it dropped (%s%s); per slice kept/dropped: %s",
                source, int(report.myocardium_pixels.sum()), int(report.dropped_pixels.sum()),
                as_used("no constraint", "not scored"),
                f"; those within {margin_px} px take the nearest myocardium pixel's value" if margin_px else "",
                per_slice_text(layers, [f"{k}/{d}" for k, d in zip(kept, dropped)]))
    return out, report


def refuse_mask_of_scar_only(layers: Sequence[SliceLayer], masks: Sequence[np.ndarray], source: str) -> None:
    """Refuse a myocardium whose every pixel is scar (target >= 0.5) on two or more chosen slices.

    Why: the scar mask given as the myocardium mask (``--image scar.nii.gz --myocardium-mask
    scar.nii.gz``, the same file twice) leaves only scar pixels: EMIDEC P001 trained 3,851 rows
    all of target 1, and a model with no healthy example calls the whole heart scar, silently. A
    real myocardium is never all scar over two slices (EMIDEC's 52 infarcts: at most 93 % over any
    two slices, 52 % over a whole stack); one apical slice can be, so one slice is not judged."""
    values = [np.asarray(layer.values, dtype=float)[mask & np.isfinite(layer.values)]
              for layer, mask in zip(layers, masks)]
    with_myocardium = [v for v in values if v.size]
    pixels = sum(v.size for v in with_myocardium)
    if len(with_myocardium) >= 2 and pixels >= SCAR_PIXELS_TO_JUDGE and all((v >= 0.5).all() for v in with_myocardium):
        raise CardioScarError(f"every one of the {pixels} myocardium pixels ({source}) on {len(with_myocardium)} slices "
                              "is scar (target >= 0.5): no healthy example, the model would call the whole heart scar; "
                              "is this the scar's mask or labels? Give the whole myocardium, healthy and scar (EMIDEC labels 2,3,4)")


#: Share of the scar pixels (target >= 0.5) that may lie more than a pixel outside the myocardium
#: before the mask is called wrong (error) or suspect (warning). A mask from the same segmentation
#: as the scar map leaves none outside, nor does one a pixel off; on the demo phantom (1.5 mm
#: pixels, seeds 0, 1, 3) a mask shifted in-plane by 3 mm leaves 2-8 %, by 4.5 mm 8-23 %, by 6 mm
#: 14-40 % and by 8 mm 23-57 % (only the scar on the walls across the shift leaves the mask).
SCAR_OUTSIDE_ERROR = 0.3
SCAR_OUTSIDE_WARNING = 0.1
#: Fewer scar pixels than this say too little to judge the mask by.
SCAR_PIXELS_TO_JUDGE = 20


def check_scar_inside(layers: Sequence[SliceLayer], masks: Sequence[np.ndarray], source: str,
                      restricted: Sequence[np.ndarray] | None = None) -> None:
    """Refuse a myocardium mask that does not hold the scar it is meant to hold.

    Why: a scar map and its mask must describe the same tissue. Restricting to a mask that is
    shifted, of another series or of another patient silently throws the scar away (its pixels
    become "no data") and the reconstruction calls the patient scar-free. Scar pixels more than
    a pixel outside the mask (in-plane) that lose their scar are counted over all slices: over
    :data:`SCAR_OUTSIDE_ERROR` of them is an error, over :data:`SCAR_OUTSIDE_WARNING` a warning.
    ``restricted``: the values after the restriction (with a margin, a pixel outside the mask takes
    its nearest myocardium pixel's value: it keeps its scar only if that pixel is scar). Widening
    the reach by the margin instead hid a shifted mask: EMIDEC P036 with the mask 6 pixels off was
    refused at margin 0 but passed at margin 2 with half its scar pixels healthy or unconstrained.
    """
    reach = np.ones((3, 3), dtype=bool)
    scar = outside = 0
    for k, (layer, mask) in enumerate(zip(layers, masks)):
        values = np.asarray(layer.values, dtype=float)
        is_scar = np.isfinite(values) & (values >= 0.5)
        lost = is_scar & ~ndimage.binary_dilation(mask, structure=reach)
        if restricted is not None:
            lost &= ~(np.nan_to_num(np.asarray(restricted[k], dtype=float), nan=0.0) >= 0.5)
        scar += int(is_scar.sum())
        outside += int(lost.sum())
    if scar < SCAR_PIXELS_TO_JUDGE or outside <= SCAR_OUTSIDE_WARNING * scar:
        return
    share = (f"{outside} of the {scar} scar pixels (target >= 0.5) lie more than a pixel outside the myocardium "
             f"({source}) and keep no scar value")
    if outside > SCAR_OUTSIDE_ERROR * scar:
        from ..lge.mask_fit import solid_mask_cause

        cause = solid_mask_cause(masks)
        raise CardioScarError(f"{share}{cause}{'; else' if cause else ':'} the myocardium mask does not match the scar "
                              "image (shifted, another series, frame or patient?); give the mask drawn on these images")
    logger.warning("%s: they %s; check that the myocardium mask was drawn on these images", share,
                   as_used("constrain nothing or the wrong value", "are not scored, or scored against the wrong truth"))


#: Share of the myocardium's pixels at >= 0.5 after ``--normalize-intensities`` above which the
#: normalised map is called suspect. Min-max over a stack puts healthy myocardium at mid-range when
#: nothing in it is much brighter or when zero signal is stored at an offset: EMIDEC's PSIR stacks
#: (zero at ~2048) give 22-100 % (over 60 % on 69 of 75 cases) while their experts' scar (labels 3, 4)
#: covers at most 52 % of the myocardium's pixels (P001); a scar-free dark-blood stack of the unseen
#: phantom family (Testing/benchmarks/unseen_family.py) gives 69-78 %, a bright-blood one 4 % and its
#: scarred cases 9-14 %.
NORMALISED_SCAR_WARNING = 0.6


def warn_normalised_myocardium_mostly_scar(layers: Sequence[SliceLayer], masks: Sequence[np.ndarray],
                                           source: str) -> float:
    """Warn when min-max normalised raw LGE (``--normalize-intensities``) is >= 0.5 on over
    :data:`NORMALISED_SCAR_WARNING` of the myocardium's pixels: the reconstruction would then be
    trained to call more of the LV scar than any infarct of EMIDEC's experts covers. Returns that
    share (0 with no myocardium pixel)."""
    return _warn_normalised_mostly_scar(_myocardium_values(layers, masks), f"of the myocardium's pixels ({source})")


def warn_myocardium_mostly_scar(layers: Sequence[SliceLayer], masks: Sequence[np.ndarray], source: str) -> None:
    """Warn when a scar map or label map is scar (>= 0.5) on over :data:`NORMALISED_SCAR_WARNING`
    of the myocardium's pixels on the chosen slices.

    Why (round 16's leftover, settled in round 17): an inverted scar map (1 - scar inside the
    myocardium: the healthy wall 1, the infarct 0) given with its myocardium mask passed every
    check, the mask holding all of its "scar": the segmented phantom trained 90 % of its rows as
    scar, exit 0 (round 16's warning reads the mesh's pixels only when no myocardium is given).
    A warning, not an error: EMIDEC's experts' scar covers at most 52 % of a whole stack's
    myocardium (P001), but a near-transmural infarct's own slices read more (P001: up to 88 % on
    three slices, 64 % on seven)."""
    share = _scar_share(_myocardium_values(layers, masks))
    if share > NORMALISED_SCAR_WARNING:
        logger.warning("%.0f%% of the myocardium's pixels (%s) on the chosen slices are scar (target >= 0.5), more than "
                       "EMIDEC's experts draw over a whole stack (52%%): is the scar map inverted (1 - scar: the healthy "
                       "wall 1)? The model would call most of the wall scar (the slices of a near-transmural infarct "
                       "alone can read so)", 100 * share, source)


def warn_normalised_mesh_mostly_scar(pixel_values: np.ndarray) -> float:
    """The same warning without a myocardium mask or labels: over the pixels the mesh's nodes lie on
    (the mapping's groups), which are the myocardium's when the mesh is the heart's wall. Without it
    no check ran: EMIDEC P001's raw PSIR stack, normalised, trained 99.98 % of its rows as scar."""
    return _warn_normalised_mostly_scar(np.asarray(pixel_values, float),
                                        "of the pixels the mesh's nodes lie on (no myocardium mask or labels given)")


def warn_scar_map_on_the_mesh(layers: Sequence[SliceLayer], pixel_values: np.ndarray) -> None:
    """Warn about a scar map (targets in [0, 1], no myocardium given) that holds no scar on the
    chosen slices, or that is scar on over :data:`NORMALISED_SCAR_WARNING` of the pixels the mesh's
    nodes lie on (the wall's pixels, when the mesh is the heart's wall).

    Why (round 16): an all-zero map (another field exported, a probability scaled below 0.5) trained
    a scar-free heart, and an inverted map (1 - scar: healthy wall 1, infarct 0) or the myocardium's
    mask given as the scar map trained the whole wall as scar, both exit 0 without a word. Either may
    be real (a scar-free patient; a near-transmural global infarct), so warnings: no EMIDEC expert
    label covers more than 52 % of the myocardium."""
    largest = max((float(np.nanmax(layer.values)) for layer in layers if np.isfinite(layer.values).any()),
                  default=float("nan"))
    if not largest >= 0.5:
        logger.warning("No pixel of the chosen slices is scar (target >= 0.5; the largest value is %.3g): the model "
                       "will call the whole heart healthy; if this patient has scar, check the scar map (another field "
                       "of the file, a probability scaled below 0.5, or the wrong slices)", largest)
        return
    share = _scar_share(pixel_values)
    if share > NORMALISED_SCAR_WARNING:
        logger.warning("%.0f%% of the pixels the mesh's nodes lie on are scar (target >= 0.5), more than any EMIDEC "
                       "expert label covers (52%% of the myocardium): is the scar map inverted (1 - scar), or the "
                       "myocardium's mask given as the scar map? The model would call most of the wall scar",
                       100 * share)


def _myocardium_values(layers: Sequence[SliceLayer], masks: Sequence[np.ndarray]) -> np.ndarray:
    """The chosen slices' values on their myocardium masks' pixels, as one float array."""
    return np.concatenate([np.asarray(layer.values, float)[mask] for layer, mask in zip(layers, masks)])


def _scar_share(values: np.ndarray) -> float:
    """The share of the finite ``values`` that are scar (>= 0.5); 0 with none."""
    values = np.asarray(values, float)
    values = values[np.isfinite(values)]
    return float((values >= 0.5).mean()) if values.size else 0.0


def _warn_normalised_mostly_scar(values: np.ndarray, of_what: str) -> float:
    share = _scar_share(values)
    if share > NORMALISED_SCAR_WARNING:
        logger.warning("--normalize-intensities: %.0f%% %s are >= 0.5 after min-max "
                       "scaling, so most of the myocardium would be trained as scar (more than any EMIDEC expert "
                       "label covers). Min-max over the stack puts healthy myocardium at mid-range when nothing in "
                       "the stack is much brighter (a scar-free or dark-blood stack) or when zero signal is stored "
                       "at an offset (PSIR, e.g. 2048); grade raw LGE with a scar rule instead (--scar-rule nsd, "
                       "with --intensity-offset for ratio rules)", 100 * share, of_what)
    return share


def check_margin(margin_px) -> None:
    """A myocardium margin is a whole number of pixels >= 0 (one line naming the option if not)."""
    if isinstance(margin_px, bool) or not isinstance(margin_px, (int, np.integer)) or margin_px < 0:
        raise CardioScarError(f"--myocardium-margin (myocardium_margin_px) must be a whole number of pixels >= 0, "
                              f"got {margin_px!r}")


def nearest_within(values: np.ndarray, inside: np.ndarray, limit: float = np.inf,
                   sampling: tuple[float, float] | None = None) -> np.ndarray:
    """``values`` with each pixel outside ``inside`` but within ``limit`` of it (in pixels, or in
    the units of ``sampling`` = (row step, column step)) set to the value of its nearest
    ``inside`` pixel (which may itself be NaN). ``inside`` must hold at least one pixel."""
    distance, (rows, cols) = ndimage.distance_transform_edt(~np.asarray(inside, bool), sampling=sampling,
                                                            return_indices=True)
    values = np.asarray(values)
    return np.where(~inside & (distance <= limit), values[rows, cols], values)


def no_restriction(layers: Sequence[SliceLayer]) -> MyocardiumReport:
    """The report of a run without a myocardium (every pixel with a value constrains)."""
    kept = [int(np.isfinite(layer.values).sum()) for layer in layers]
    return MyocardiumReport("", np.zeros(len(kept), np.int64), np.asarray(kept, np.int64))


def read_mask_image(path: str | Path, layers: Sequence[SliceLayer] | None = None,
                    what: str = "--myocardium-mask") -> sitk.Image:
    """A mask or label image through the library's checked reader; given the chosen LGE ``layers``,
    a 2D mask is placed on the one chosen slice it was drawn on (:func:`plane_on_slice`)."""
    from ..io.imageio import read_image  # one reader for every image: its checks hold for masks too

    image = read_image(path, allow_plane=layers is not None)
    return image if image.GetDimension() == 3 else plane_on_slice(image, layers, Path(path).name, what)


def plane_as_slice(path: str | Path, grid: Sequence[SliceLayer], what: str) -> SliceLayer:
    """A 2D image file's pixels as the one chosen slice of ``grid`` whose pixels it has (placed and
    refused as :func:`plane_on_slice` places and refuses a 2D mask), named after the file and that
    slice: ``evaluate --truth-image`` of one slice drawn alone, on its myocardium mask's grid."""
    return placed_plane(read_mask_image(path, grid, what), Path(path).name, grid)


def plane_image_as_slice(plane: sitk.Image, name: str, grid: Sequence[SliceLayer], what: str) -> SliceLayer:
    """:func:`plane_as_slice` of a 2D image already read (the Slicer Logic's truth node, whose
    file Slicer read as one slice at z = 0), placed and refused by the same rule."""
    return placed_plane(plane_on_slice(plane, grid, name, what), name, grid)


def placed_plane(placed: sitk.Image, name: str, grid: Sequence[SliceLayer]) -> SliceLayer:
    """The one chosen slice of ``grid`` holding ``placed``'s pixels (a 2D image :func:`plane_on_slice`
    placed, so one slice is chosen), named after the image and that slice."""
    layer = grid[0]
    return dataclasses.replace(layer, values=sitk.GetArrayFromImage(placed)[0].astype(np.float64),
                               label=f"{name} on {layer.label}")


def _plane_fits(plane: sitk.Image, layer: SliceLayer) -> bool:
    """Whether a 2D image has ``layer``'s pixels: its size and spacing, its origin within a quarter
    pixel of the slice's (a 2D file keeps the first two LPS coordinates of its origin only)."""
    rows, cols = layer.values.shape
    return (plane.GetSize() == (cols, rows) and np.allclose(plane.GetSpacing(), layer.spacing, rtol=1e-3)
            and np.allclose(plane.GetOrigin(), layer.origin[:2], atol=0.25 * min(layer.spacing)))


def plane_on_slice(plane: sitk.Image, layers: Sequence[SliceLayer], name: str,
                   what: str = "--myocardium-mask") -> sitk.Image:
    """A 2D mask as a one-slice 3D image on the chosen LGE slice whose pixels it has (:func:`_plane_fits`).

    Why: a 2D file has no place across the slices, so it is valid only where one slice is chosen (a
    one-slice LGE, or ``--slice-indices`` of the slice it was drawn on) and its grid is that slice's;
    elsewhere it is refused, naming the slice(s) it fits."""
    fits = [layer for layer in layers if _plane_fits(plane, layer)]
    if len(layers) == 1 and fits:
        layer = layers[0]
        placed = sitk.GetImageFromArray(sitk.GetArrayFromImage(plane)[np.newaxis])
        placed.SetSpacing((*layer.spacing, max(2.0 * layer.half_thickness, 1.0)))
        placed.SetOrigin(tuple(float(v) for v in layer.origin))
        placed.SetDirection(tuple(np.column_stack([layer.axis_i, layer.axis_j, layer.normal]).ravel()))
        logger.info("%s %s is 2D: placed on slice '%s'", what, name, layer.label)
        return placed
    size = "x".join(map(str, plane.GetSize()))
    said = f"{what} {name} is a 2D image ({size} pixels), which has no place across the slices: it is read on one " \
           "chosen slice with its pixels"
    if fits:
        raise CardioScarError(f"{said}, and {len(layers)} slices are chosen; choose the one it was drawn on with "
                              f"--slice-indices ({', '.join(repr(layer.label) for layer in fits)} fits it), or give "
                              "the mask as a 3D image on the LGE's grid")
    raise CardioScarError(f"{said}, and no chosen slice has its size, spacing and origin ({size} pixels of "
                          f"{'x'.join(f'{v:g}' for v in plane.GetSpacing())} mm at "
                          f"{np.round(plane.GetOrigin(), 2).tolist()}): choose the slice it was drawn on with "
                          "--slice-indices, or give the mask drawn on this LGE as a 3D image on its grid")
