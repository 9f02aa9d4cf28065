"""Turning slice pixel values into training targets in [0, 1].

Three cases, chosen explicitly by the user instead of guessed:
* values already in [0, 1] (a scar probability or a 0/1 mask): used as they are;
* a label map: ``scar_labels`` lists the scar labels -> 1.0 there, 0.0 elsewhere (never min-max
  scaled as if the labels were intensities, a defect of the reference tool);
* raw LGE intensities: ``normalize=True`` min-max scales over all chosen slices' pixels.
NaN marks pixels without data (grid-layer holes) and stays NaN; such pixels make no group.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import logging
from typing import Iterable, Iterator, Sequence, TypeVar

import numpy as np
from scipy import ndimage

from ..errors import CardioScarError
from ..lge.rules import refuse_wrapped_int16
from .slices import SliceLayer

logger = logging.getLogger(__name__)
Words = TypeVar("Words")

#: What the chosen slices are read for: ``"train"`` (``prepare``, training) or ``"score"``
#: (``evaluate --truth-image``, the Slicer Logic's ``score_on_slices``), which read them through the
#: same checks. A context variable rather than a parameter of each check: the checks sit several
#: calls below the two readers, and only their messages differ.
_SLICE_USE: contextvars.ContextVar[str] = contextvars.ContextVar("cardioscar_slice_use", default="train")


@contextlib.contextmanager
def reading_for_scoring() -> Iterator[None]:
    """The slices read inside are a truth to score against: the checks' messages say what a wrong
    label does to the score, not to the training (a scar-free map's nodes "scored against a healthy
    truth", not its pixels "trained as healthy")."""
    token = _SLICE_USE.set("score")
    try:
        yield
    finally:
        _SLICE_USE.reset(token)


def as_used(training: Words, scoring: Words) -> Words:
    """``training`` or ``scoring``, the words for what the slices are read for now."""
    return scoring if _SLICE_USE.get() == "score" else training


def slice_targets(slices: Sequence[SliceLayer], scar_labels: Iterable[int] | None = None,
                  normalize: bool = False, require_scar: bool = True) -> list[SliceLayer]:
    """Return copies of ``slices`` whose values are targets in [0, 1] (NaN holes kept).

    With ``scar_labels``, labels that match no pixel are refused unless ``require_scar`` is False
    (a caller pooling several inputs checks them together, see :func:`scar_label_pixels`)."""
    layers = list(slices)
    if not layers:
        raise CardioScarError("No slices given")
    labels = None if scar_labels is None else sorted({int(v) for v in scar_labels})
    if labels is not None and normalize:
        raise CardioScarError("Use either --scar-labels (label map) or --normalize-intensities (raw LGE), not both")
    for layer in layers:
        if np.isinf(layer.values).any():
            raise CardioScarError(f"Slice '{layer.label}' contains infinite values")
    if labels is not None:
        if not labels:
            raise CardioScarError("--scar-labels is empty; list the scar label values, e.g. 3,4")
        if scar_label_pixels(layers, labels) == 0 and require_scar:
            raise unmatched_labels(layers, labels)
        return [_relabel(layer, labels) for layer in layers]
    if normalize:
        return _min_max(layers)
    for layer in layers:
        finite = layer.values[np.isfinite(layer.values)]
        if finite.size and (finite.min() < 0.0 or finite.max() > 1.0):
            raise CardioScarError(
                f"Slice '{layer.label}' has values {finite.min():g}..{finite.max():g} outside [0, 1]; pass "
                f"--scar-labels (label map, e.g. 3,4) or --normalize-intensities (raw LGE){_scaled_map_hint(layers)}")
    return layers


def _scaled_map_hint(layers: Sequence[SliceLayer]) -> str:
    """The advice for a scar fraction map stored in percent or 8 bits (values 0..100 or 0..255,
    not whole labels), which the error's other advice would get wrong: ``--normalize-intensities``
    stretches the chosen slices' largest value to 1 (a map whose largest scar is 60 % trained as
    100 %) and drops the scar checks meant for targets; the map is to be divided by its scale."""
    finite = np.concatenate([layer.values[np.isfinite(layer.values)] for layer in layers])
    if finite.size == 0 or finite.min() < 0.0 or (np.all(finite == np.round(finite)) and finite.max() <= 20):
        return ""  # negative values, or a few whole values: labels or raw intensities, not a scaled fraction
    scale = 100 if finite.max() <= 100 else 255 if finite.max() <= 255 else None
    if scale is None:
        return ""
    return (f"; a scar fraction map in {'percent' if scale == 100 else '8 bits'} (0..{scale}): divide it by {scale} "
            "instead (--normalize-intensities would stretch its largest value, "
            f"{finite.max():g}, to 1 and train it as raw LGE)")


#: The scar labels are the myocardium itself when over this share of the heart's outer border
#: (:func:`outer_border_share`) carries them. EMIDEC's 52 infarct maps: the true scar labels 3,4
#: hold 0.00-0.39 of that border; its healthy myocardium 2 given as the scar 0.61-1.00 (and 2,3,4,
#: the whole myocardium, 1.00 on all 75).
EPICARDIAL_SCAR_SHARE = 0.5


def outer_border_share(heart: Sequence[np.ndarray], scar: Sequence[np.ndarray]) -> float:
    """The share of the heart's outer border that ``scar`` covers, over all slices: the pixels of
    ``heart`` 4-adjacent to the background that reaches the image's edge (a flood fill from the
    edge), so a background the heart encloses (a cavity left unlabelled, or the cavity outside a
    myocardium mask) is not outer border. 0 when there is no such border.

    Why one measure: the label map's ``--scar-labels`` check (its heart: every non-zero label) and
    the experts' scar check of the scar rules (its heart: the myocardium mask) both ask whether the
    scar lines the epicardium, as the healthy myocardium does and an infarct, growing from the
    endocardium, does only where it is transmural. Counting an enclosed background's edge as outer
    border, as the label-map check once did, put the subendocardial infarct of a map without a
    cavity label on the "outer" border (EMIDEC 3,4: up to 0.45 instead of 0.39)."""
    border = covered = 0
    for inside, own in zip(heart, scar):
        inside = np.asarray(inside, bool)
        if not inside.any():
            continue
        parts, _ = ndimage.label(~inside)
        edge = np.unique(np.concatenate([parts[0], parts[-1], parts[:, 0], parts[:, -1]]))
        outer = inside & ndimage.binary_dilation(np.isin(parts, edge[edge > 0]))
        border += int(outer.sum())
        covered += int((outer & np.asarray(own, bool)).sum())
    return covered / border if border else 0.0


#: The scar labels are the cavity (blood pool) when they hold a disc of this radius (mm) that lies
#: inside the ring the other labels make. EMIDEC's 75 maps: the true scar 3,4 at most 10.5 mm (the
#: wall is thinner than 21 mm); the cavity 1 at least 16.3 mm; ACDC's cavity 3 26-31 mm.
CAVITY_RADIUS_MM = 13.0

#: A label counts as the cavity when this share of its pixels fills the lumen of the ring the other
#: labels make, and the labels together leave under CLOSED_LUMEN of that lumen open.
CAVITY_SHARE, CLOSED_LUMEN = 0.5, 0.1


def check_scar_labels(slices: Sequence[SliceLayer], scar_labels: Iterable[int]) -> None:
    """Check that the scar labels of a label map look like scar: not the cavity, not the myocardium,
    and not leaving out the infarct's core (see :func:`warn_labels_inside_scar`).

    Why: the label numbers differ between datasets (EMIDEC 1 cavity, 2 myocardium, 3 infarct,
    4 no-reflow; ACDC 1 right ventricle, 2 myocardium, 3 LV cavity), and a number copied from
    another dataset's command still matches pixels, so nothing else stops it:
    * the cavity as scar (EMIDEC's ``3,4`` on an ACDC map) trains every endocardial node towards
      scar: refused, since no myocardial wall holds a blood-pool-sized disc inside its ring;
    * the healthy myocardium as scar (``2`` on an EMIDEC map) trains the healthy wall as scar and
      the real infarct as healthy: a warning (a diffuse subepicardial scar, as in myocarditis, may
      legitimately cover much of the outer border), which replaces the no-reflow advice that would
      then name the infarct or the cavity."""
    scar = sorted({int(v) for v in scar_labels})
    refuse_intensities_as_labels(slices, scar)
    refuse_cavity_as_scar(slices, scar)
    if not warn_myocardium_as_scar(slices, scar) and not warn_scar_rings(slices, scar):
        warn_labels_inside_scar(slices, scar)


#: More different values than this on a slice is not a cardiac label map (EMIDEC 5, ACDC 4); an
#: LGE slice scaled to 8 bits holds dozens to hundreds (EMIDEC's 75 stacks, scaled in four ways: at
#: least 75 per slice, 22 once cropped to the heart).
MANY_VALUES = 16
#: ... and then over this share of the scar-label pixels without a 4-neighbour of a scar label is an
#: intensity image: a label map's labels form regions (EMIDEC's 75 maps, any label: at most 1.9 %
#: alone over a stack), an 8-bit LGE slice's grey values are scattered (8 % and more for three
#: adjacent values such as 1,2,3; 17 % and more for 3,4). Judged however few they are: a PSIR stack
#: scaled to 8 bits over its whole range puts zero signal mid-range, and labels 3,4 then match a
#: handful of pixels in the air (1-10 on 14 of EMIDEC's 75, none on the rest), too few to reach the
#: mesh check, so the heart trained scar-free.
ALONE_SHARE = 0.05
#: ... a pixel also stands alone in a 4-connected region of scar labels under this area (mm2): an
#: 8-bit LGE zoomed 2x or 3x with nearest neighbour (a viewer's export, a grid matched to another
#: series) turns each scattered pixel into a 2x2 or 3x3 block, none alone (0 %, it passed); by
#: area, EMIDEC's 75 stacks so (native, 2x, 3x) 41 % and more. EMIDEC's 75 maps (native, 1.5x and
#: 2x, labels 3,4 and each label alone): at most 5.2 % (P053's no-reflow 4 alone), under 16 values.
SPECK_MM2 = 4.0


#: More distinct ramps than this over the chosen slices is an intensity image: a ramp is three runs
#: of values side by side along a row or column, the middle one strictly between the other two
#: (a < b < c), counted once per value triple. A label map's labels meet in few such ways: EMIDEC's
#: 75 maps and ACDC's 2 (also zoomed and with 20 more labels drawn beside the heart): at most 6; an
#: LGE stack in 4 bits (16 values), scaled over its range or with its offset taken off, smoothed
#: or not, zoomed or not (25 of EMIDEC's): 14 and more; in 8 bits, smoothed: hundreds.
MANY_RAMPS = 10


def ramps(values: np.ndarray) -> set[tuple[int, int, int]]:
    """The value triples (low, middle, high) that ramp along a row or column of one slice."""
    found: set[tuple[int, int, int]] = set()
    whole = np.rint(np.nan_to_num(values, nan=0.0)).astype(np.int64)
    for lines in (whole, whole.T):
        for line in lines:
            starts = np.flatnonzero(np.diff(line)) + 1
            if len(starts) < 2:
                continue
            runs = line[np.concatenate([[0], starts])]
            low, middle, high = np.minimum(runs[:-2], runs[2:]), runs[1:-1], np.maximum(runs[:-2], runs[2:])
            between = (low < middle) & (middle < high)
            found.update(zip(low[between].tolist(), middle[between].tolist(), high[between].tolist()))
    return found


def refuse_ramps(slices: Sequence[SliceLayer], scar: Sequence[int]) -> None:
    """Refuse slices whose values ramp in over :data:`MANY_RAMPS` ways: an intensity image (LGE
    quantised to a few bits, or smoothed), not a label map.

    Why: :func:`refuse_intensities_as_labels` judges only slices of over :data:`MANY_VALUES` values
    and scattered scar pixels; LGE in 4 bits holds 16 values or fewer, and smoothed LGE in 8 bits
    has its grey values in bands, not scattered, so both passed with ``--scar-labels 3,4`` and
    trained a band of dark grey as scar. Intensities rise and fall through every value between,
    labels meet side by side (zoom keeps the count: it counts runs, not pixels)."""
    found: set[tuple[int, int, int]] = set()
    for layer in slices:
        found |= ramps(layer.values)
    if len(found) > MANY_RAMPS:
        raise CardioScarError(
            f"--scar-labels {','.join(map(str, scar))}: the chosen slices' values rise through a middle value in "
            f"{len(found)} different ways (e.g. {'<'.join(map(str, sorted(found)[len(found) // 2]))} side by side), as "
            f"intensities do: an intensity image (LGE in 4 bits, or smoothed?), not a label map, whose labels do so in "
            f"at most {MANY_RAMPS} (EMIDEC, ACDC: 6); give the label map, or raw LGE with --scar-rule or "
            "--normalize-intensities instead of --scar-labels")


def refuse_intensities_as_labels(slices: Sequence[SliceLayer], scar: Sequence[int]) -> None:
    """Refuse an intensity image (raw LGE in 8 bits, 256 or fewer grey values per slice) given as
    the label map: its pixels of the scar labels' grey values are scattered, in the air and in the
    nulled myocardium, and would train as scar.

    Why: :func:`scar_label_pixels` refuses a slice of over 256 values; an 8-bit image passed that,
    so EMIDEC's LGE in 8 bits with ``--scar-labels 3,4`` trained its darkest pixels as scar. Told by
    both signs together: many different values on a slice (:data:`MANY_VALUES`) and scar pixels that
    stand alone (:data:`ALONE_SHARE`; no 4-neighbour, or a region under :data:`SPECK_MM2`); a label
    map with many labels still has its labels in regions,
    and a thresholded scar map with speckle has few values. Fewer values, or grey values in bands
    (smoothed), are judged by how they ramp (:func:`refuse_ramps`)."""
    most = max((np.unique(layer.values[np.isfinite(layer.values)]).size for layer in slices), default=0)
    if most > MANY_VALUES:
        refuse_scattered(slices, scar, most)
    refuse_ramps(slices, scar)


def refuse_scattered(slices: Sequence[SliceLayer], scar: Sequence[int], most: int) -> None:
    """Refuse scar-label pixels that stand alone (:data:`ALONE_SHARE`) on slices of up to ``most``
    values: an 8-bit intensity image (see :func:`refuse_intensities_as_labels`)."""
    cross = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    pixels = alone = 0
    for layer in slices:
        inside = np.isin(np.nan_to_num(layer.values, nan=0.0), scar)
        neighbours = ndimage.convolve(inside.astype(np.int8), cross, mode="constant")
        regions, count = ndimage.label(inside)
        speck = np.concatenate([[False], np.bincount(regions.ravel(), minlength=count + 1)[1:]
                                * layer.spacing[0] * layer.spacing[1] < SPECK_MM2])
        pixels += int(inside.sum())
        alone += int((inside & ((neighbours == 0) | speck[regions])).sum())
    if alone > ALONE_SHARE * pixels:
        raise CardioScarError(
            f"--scar-labels {','.join(map(str, scar))}: the chosen slices hold up to {most} different values and "
            f"{100.0 * alone / pixels:.0f} % of the pixels with these values stand alone (no neighbour with a scar "
            f"label, or in a speck under {SPECK_MM2:g} mm2): an intensity image (LGE in 8 bits?), not a label map, "
            f"whose labels form regions (EMIDEC: under {100 * ALONE_SHARE:g} %); give the label map, or raw LGE with --scar-rule or --normalize-intensities "
            "instead of --scar-labels")


def lumen_of(mask: np.ndarray) -> np.ndarray:
    """The pixels a ring of ``mask`` encloses (its holes), not ``mask`` itself."""
    return ndimage.binary_fill_holes(mask) & ~mask


def enclosed_disc_mm(mask: np.ndarray, spacing: tuple[float, float]) -> float:
    """Radius (mm) of the widest disc in the holes of ``mask`` (the lumen a ring of it encloses);
    0 when it encloses none. ``spacing``: the pixel spacing (columns, rows), a layer's order."""
    lumen = lumen_of(mask)
    if not lumen.any():
        return 0.0
    return float(ndimage.distance_transform_edt(lumen, sampling=(spacing[1], spacing[0])).max())


def warn_scar_rings(slices: Sequence[SliceLayer], scar: Sequence[int]) -> bool:
    """Warn when the scar labels close a ring around a cavity-sized lumen (a disc of
    :data:`CAVITY_RADIUS_MM`) on two or more slices and on over half of the slices they are on;
    returns whether it warned.

    Why: that is what a myocardium does, and an infarct rarely does (EMIDEC's 52 infarct maps: on
    at most one slice of a stack): the myocardium's label given as scar (a map numbered one above
    EMIDEC's, 3 myocardium and 4 infarct, without a cavity label and so without the other labels
    :func:`warn_myocardium_as_scar` needs), or a 0/1 myocardium mask given as the scar map, would
    train the whole wall as scar. A warning: a circumferential scar (cardiac amyloidosis) rings too."""
    with_scar = ringed = 0
    for layer in slices:
        inside = np.isin(np.nan_to_num(layer.values, nan=0.0), scar)
        if inside.any():
            with_scar += 1
            ringed += enclosed_disc_mm(inside, layer.spacing) >= CAVITY_RADIUS_MM
    if ringed < 2 or ringed <= with_scar / 2:
        return False
    logger.warning("--scar-labels %s close a ring around the cavity on %d of the %d slices they are on, as the "
                   "myocardium does (an infarct rarely does: EMIDEC's on at most one slice of a stack): if these "
                   "are the myocardium's labels or a myocardium mask, the whole wall %s as scar; give the "
                   "scar's labels (EMIDEC 3,4). A circumferential scar (amyloidosis) rings too",
                   ",".join(map(str, scar)), ringed, with_scar, as_used("trains", "is scored"))
    return True


def refuse_cavity_as_scar(slices: Sequence[SliceLayer], scar: Sequence[int]) -> None:
    """Refuse scar labels that are the cavity (blood pool), not a scar in the wall: on one slice,
    their widest disc (radius :data:`CAVITY_RADIUS_MM` or more) sits inside the ring the map's other
    non-zero labels make; or, whatever the heart's size, they look like the cavity
    (:func:`looks_like_cavity`) on over half of the slices they are on.

    Why the second test: a child's or a small adult's LV cavity holds no 13 mm disc (EMIDEC's maps
    at a third of their size: 6-12 mm), so the first passed it and trained the blood pool as scar."""
    values = [np.nan_to_num(layer.values, nan=0.0) for layer in slices]
    for layer, slice_values in zip(slices, values):
        inside = np.isin(slice_values, scar)
        if not inside.any():
            continue
        depth = ndimage.distance_transform_edt(inside, sampling=(layer.spacing[1], layer.spacing[0]))
        if depth.max() < CAVITY_RADIUS_MM:
            continue
        lumen = lumen_of((slice_values != 0) & ~inside)
        centre = np.unravel_index(int(np.argmax(depth)), depth.shape)
        if lumen[centre]:
            raise CardioScarError(
                f"--scar-labels {','.join(map(str, scar))}: on slice '{layer.label}' they fill a disc of radius "
                f"{depth.max():.0f} mm inside the ring of the other labels, the cavity (blood pool), not scar in a wall "
                f"(a scar label holds under {CAVITY_RADIUS_MM:g} mm); give this map's scar labels (EMIDEC 3,4; ACDC "
                "maps hold no scar label, its 3 is the LV cavity)")
    cavity, present = cavity_slices(values, scar, [layer.spacing for layer in slices])
    if cavity > present / 2:
        raise CardioScarError(
            f"--scar-labels {','.join(map(str, scar))}: on {cavity} of the {present} slices they are on they fill the "
            "inside of the ring of the other labels and are wider than any of them, the cavity (blood pool) of a "
            "small heart, not scar in a wall (EMIDEC's scar labels do so on none of their slices, at 0.35x to 1x "
            "spacing); give this map's scar labels (EMIDEC 3,4; ACDC maps hold no scar label, its 3 is the LV cavity)")


def looks_like_cavity(values: np.ndarray, labels: Sequence[int], spacing: tuple[float, float]) -> bool:
    """Whether the pixels of ``labels`` on one slice (``values``, 0 background) are the cavity: the
    deepest of them lies in the lumen of the ring the other non-zero labels make, over half of them
    lie in it and with them under a tenth of it stays open, and their widest disc is wider than
    that of each other label.

    Why by shape and not by size: a small heart's cavity is no wider than an adult's infarct. Why
    the widest: a subendocardial infarct also fills a hole of the others (between the cavity and
    the myocardium) and then the cavity fills a hole of the infarct and the myocardium; what tells
    them apart is that the cavity is the disc and the infarct the band around it. EMIDEC's 75 maps
    at full size, half and a third of their spacing, and shrunk 0.6x: the cavity (label 1) on
    80-100 % of its slices, the scar (3,4) on none, with or without the cavity label."""
    inside = np.isin(values, labels)
    if not inside.any():
        return False
    sampling = (spacing[1], spacing[0])
    depth = ndimage.distance_transform_edt(inside, sampling=sampling)
    others = (values != 0) & ~inside
    lumen = lumen_of(others)
    if not lumen[np.unravel_index(int(np.argmax(depth)), depth.shape)]:
        return False
    if (inside & lumen).sum() < CAVITY_SHARE * inside.sum() or lumen_of(others | inside).sum() >= CLOSED_LUMEN * lumen.sum():
        return False
    return all(depth.max() > ndimage.distance_transform_edt(values == other, sampling=sampling).max()
               for other in np.unique(values[others]))


def cavity_slices(label_slices: Sequence[np.ndarray], labels: Sequence[int],
                  spacings: Sequence[tuple[float, float]]) -> tuple[int, int]:
    """On how many slices ``labels`` look like the cavity (:func:`looks_like_cavity`), and on how
    many they are present. ``label_slices``: NaN-free label values (0 background); both callers
    have already cleaned theirs, as NaN (a pixel of no value) would count as a label here."""
    cavity = present = 0
    for values, spacing in zip(label_slices, spacings):
        if np.isin(values, labels).any():
            present += 1
            cavity += looks_like_cavity(values, labels, spacing)
    return cavity, present


def warn_myocardium_as_scar(slices: Sequence[SliceLayer], scar: Sequence[int]) -> bool:
    """Warn when the scar labels make up over :data:`EPICARDIAL_SCAR_SHARE` of the heart's outer
    border (:func:`outer_border_share`, the heart being every non-zero label) while other non-zero
    labels are present; returns whether it warned.

    An infarct starts at the endocardium and reaches the outer border only where it is transmural,
    so the labels lining most of that border are the (healthy) myocardium. A 0/1 scar mask, whose
    only non-zero label is the scar, is not checked."""
    values = [np.nan_to_num(layer.values, nan=0.0) for layer in slices]
    other_labels = {int(v) for slice_values in values for v in np.unique(slice_values[slice_values != 0])} - set(scar)
    if not other_labels:
        return False
    share = outer_border_share([v != 0 for v in values], [np.isin(v, scar) for v in values])
    if share <= EPICARDIAL_SCAR_SHARE:
        return False
    logger.warning("--scar-labels %s make up %.0f %% of the heart's outer border (the pixels next to the background "
                   "that reaches the image's edge): they look like the myocardium, not scar (an infarct reaches the "
                   "outer border only where it is transmural; EMIDEC's scar labels 3,4 hold under 40 %%), and the "
                   "other labels (%s) %s as no scar: check the map's numbering (EMIDEC: scar 3,4, myocardium 2,3,4)",
                   ",".join(map(str, scar)), 100.0 * share, ",".join(map(str, sorted(other_labels))),
                   as_used("train", "are scored"))
    return True


#: A label left out of the scar labels lies inside the scar when over this fraction of the pixels
#: bordering it are scar and it has fewer pixels than the scar. EMIDEC (52 infarct label maps,
#: scar label 3): the no-reflow label 4 (in 32) 0.55-1.0 of its border scar, 0.02-0.55 of the
#: scar's size; the cavity up to 0.66 but over 3.4 times the scar's size; normal myocardium at most
#: 0.36.
ENCLOSED_BY_SCAR = 0.5


def warn_labels_inside_scar(slices: Sequence[SliceLayer], scar_labels: Iterable[int]) -> list[int]:
    """Warn about labels left out of ``scar_labels`` that lie inside the scar; returns them.

    A label map's no-reflow (microvascular obstruction) is the infarct's core: left out of
    ``--scar-labels`` it trains as healthy myocardium (or, with myocardium labels that leave it out
    too, as no data), a hole in the scar. It is told from the other labels by where it lies: over
    :data:`ENCLOSED_BY_SCAR` of the pixels bordering it (4-neighbours, within each slice) are scar,
    and it is smaller than the scar (a subendocardial infarct borders much of the cavity, which is
    larger). A warning, not an error: a map may use such a label for something else."""
    scar = sorted({int(v) for v in scar_labels})
    values = [layer.values for layer in slices]
    scar_size = sum(int(np.isin(v, scar).sum()) for v in values)
    present = np.unique(np.concatenate([v[np.isfinite(v)] for v in values]))
    found = []
    for label in sorted({int(v) for v in present} - set(scar)):
        size = border = scar_border = 0
        for value in values:
            inside = value == label
            if not inside.any():
                continue
            ring = ndimage.binary_dilation(inside) & ~inside
            size += int(inside.sum())
            border += int(ring.sum())
            scar_border += int(np.isin(value[ring], scar).sum())
        if border and scar_border / border > ENCLOSED_BY_SCAR and size < scar_size:
            found.append(label)
            logger.warning("Label %d lies inside the scar (%.0f %% of the pixels around it are scar labels %s) but "
                           "is not a scar label, so it %s as scar: if it is the infarct's no-reflow "
                           "core (EMIDEC's 4), add it to the scar labels (--scar-labels)",
                           label, 100.0 * scar_border / border, ",".join(map(str, scar)),
                           as_used("does not train", "is not scored"))
    return found


#: More distinct values than this on one slice is an intensity image, not a label map (a label map
#: of the heart holds a handful: EMIDEC 5, ACDC 4; 8-bit label files hold at most 256).
MAX_LABELS_PER_SLICE = 256


def scar_label_pixels(layers: Sequence[SliceLayer], labels: Sequence[int]) -> int:
    """How many pixels of ``layers`` carry one of ``labels``; refuses values that are not whole
    numbers (a probability map or LGE intensities given with --scar-labels would silently become
    all 0), and whole-numbered intensities: raw LGE stored as integers given as the label map
    matched its labels to dark air pixels, and the run failed later blaming the mesh's patient or
    frame (EMIDEC P001 as magnitude: "none of the 3137 scar pixels reaches a mesh node")."""
    count = 0
    for layer in layers:
        finite = layer.values[np.isfinite(layer.values)]
        if finite.size and not np.array_equal(finite, np.round(finite)):
            if finite.max() > 1.0 and _between_labels(finite):  # no probability map: a label map made fractional
                raise CardioScarError(f"--scar-labels: slice '{layer.label}' holds values between its labels (e.g. "
                                      f"{finite[finite != np.round(finite)][0]:g}): a label map resampled with linear "
                                      "interpolation; resample it with nearest neighbour (its edges would be read "
                                      "as other labels or none)")
            raise CardioScarError(f"--scar-labels: slice '{layer.label}' holds non-integer values "
                                  f"({finite.min():g}..{finite.max():g}), not labels; leave --scar-labels out for a "
                                  "probability map, or use --normalize-intensities for raw LGE")
        distinct = np.unique(finite).size
        if distinct > MAX_LABELS_PER_SLICE:
            raise CardioScarError(f"--scar-labels: slice '{layer.label}' holds {distinct} different values "
                                  f"({finite.min():g}..{finite.max():g}), an intensity image, not a label map (at most "
                                  f"{MAX_LABELS_PER_SLICE}); give the label map, or raw LGE with --scar-rule or "
                                  "--normalize-intensities instead of --scar-labels")
        count += int(np.isin(finite, labels).sum())
    return count


def _labels_present(layers: Sequence[SliceLayer], shown: int = 12) -> str:
    """The label values of ``layers``, at most ``shown`` of them, for a message."""
    values = np.unique(np.concatenate([layer.values[np.isfinite(layer.values)] for layer in layers]))
    return (", ".join(f"{v:g}" for v in values[:shown]) + (", ..." if len(values) > shown else "")) or "none"


def unmatched_labels(layers: Sequence[SliceLayer], labels: Iterable[int],
                     option: str = "--scar-labels", what: str = "scar") -> CardioScarError:
    """The error for labels that match no pixel of ``layers``, naming the labels present.

    The one wording for every label option (scar labels here, myocardium labels in
    :mod:`cardioscar.prepare.myocardium`, the Slicer Logic), so a user reads the same fix everywhere.
    For scar labels the error says how a scar-free heart goes through: with its myocardium given
    (:func:`warn_scar_free`)."""
    free = (" (a scar-free heart: give its myocardium too, --myocardium-labels or --myocardium-mask)"
            if what == "scar" else "")
    return CardioScarError(f"{option} {','.join(map(str, sorted(set(labels))))} match no pixel of the chosen "
                           f"slices (labels present: {_labels_present(layers)}); give the {what} labels of this "
                           f"label map{free}")


def warn_scar_free(layers: Sequence[SliceLayer], labels: Iterable[int],
                   myocardium_labels: Iterable[int] | None = None,
                   myocardium_masks: Sequence[np.ndarray] | None = None) -> bool:
    """Warn, and return True, when no pixel of ``layers`` carries a scar label.

    Called where a myocardium is given (labels, mask or segment): an expert's map of a patient
    without infarct (EMIDEC's 25 normal cases hold labels 0-2 only) is then a real input whose
    answer is a scar-free field, not a mistake to refuse. Without a myocardium the map cannot say
    where the wall is and unmatched scar labels stay an error (:func:`unmatched_labels`).
    Two or more labels in the myocardium is no scar-free heart but mistyped scar labels (EMIDEC's
    ``--scar-labels 4 --myocardium-labels 2,3,4`` on a map without no-reflow, or ``--scar-labels 5
    --myocardium-mask``: its infarct, label 3, would train as healthy): refused, naming them. The
    myocardium's labels are ``myocardium_labels`` (the same map's, when given) present in the map,
    or the map's non-zero labels over half of whose pixels lie in ``myocardium_masks`` (per layer,
    a mask given apart from the map)."""
    labels = sorted({int(v) for v in labels})
    if scar_label_pixels(layers, labels):
        return False
    otherwise = ""
    if myocardium_labels is not None:
        present = [label for label in sorted({int(v) for v in myocardium_labels})
                   if any((layer.values == label).any() for layer in layers)]
        where = "the myocardium labels present are"
    elif myocardium_masks is not None:
        present = labels_in_myocardium(layers, myocardium_masks)
        where = "the myocardium mask holds this map's labels"
        # a scar-free map's mask that reaches into the cavity holds two labels as well
        otherwise = ("; or, if this heart has no scar, the mask reaches beyond the myocardium (into the cavity): "
                     "give a mask of the myocardium alone, or --myocardium-labels instead of the mask")
    else:
        present = []
    if len(present) > 1:
        raise CardioScarError(
            f"--scar-labels {','.join(map(str, labels))} match no pixel of the chosen slices (labels present: "
            f"{_labels_present(layers)}), yet {where} {', '.join(map(str, present))}: one of them is likely the scar; "
            f"give the scar labels of this label map (a scar-free heart has one myocardium label){otherwise}")
    if myocardium_masks is not None and len(present) == 1:
        refuse_part_of_the_mask(layers, myocardium_masks, labels, present[0])
    logger.warning("Scar labels %s match no pixel of the chosen slices (labels present: %s): %s, a scar-free "
                   "heart; if this patient has scar, give the scar labels of this label map (--scar-labels)",
                   ",".join(map(str, labels)), _labels_present(layers),
                   as_used("every myocardium pixel trains as healthy",
                           "every node scored on the myocardium is scored against a healthy truth"))
    return True


#: The share of a myocardium mask's pixels that a scar-free map's one myocardium label fills at
#: least: the map's wall and the mask are the same structure (EMIDEC's normal controls, mask of
#: their own labels: 100 %). A 0/1 scar map's scar fills the part of the mask that is scar (the
#: segmented phantom: 7 %; an infarct is seldom half of the wall), the rest of the mask being 0.
MIN_MASK_SHARE_OF_WALL_LABEL = 0.5


def refuse_part_of_the_mask(layers: Sequence[SliceLayer], masks: Sequence[np.ndarray], labels: list[int],
                            label: int) -> None:
    """Refuse unmatched scar labels when the map holds one label only (a 0/1 scar map: 1 scar) and
    it fills under :data:`MIN_MASK_SHARE_OF_WALL_LABEL` of the myocardium mask: its scar would
    train as healthy behind the scar-free warning.

    A map with other labels beside it (a cavity's, outside the mask) is an anatomical map whose one
    label in the mask is its wall: a mask drawn larger than that wall (a generous epicardial contour,
    a dilated mask: EMIDEC's normal controls with their myocardium dilated 4 pixels, 12 of 23 under
    half) does not make the wall scar, and the refusal's ``--scar-labels`` would have trained the
    whole wall as scar."""
    if any(np.isin(np.nan_to_num(layer.values, nan=0.0), [0, label], invert=True).any() for layer in layers):
        return
    in_mask = sum(int(np.asarray(mask, bool).sum()) for mask in masks)
    filled = sum(int(((layer.values == label) & np.asarray(mask, bool)).sum()) for layer, mask in zip(layers, masks))
    if in_mask and filled < MIN_MASK_SHARE_OF_WALL_LABEL * in_mask:
        raise CardioScarError(
            f"--scar-labels {','.join(map(str, labels))} match no pixel of the chosen slices (labels present: "
            f"{_labels_present(layers)}), and the myocardium mask holds label {label} on only "
            f"{100.0 * filled / in_mask:.0f} % of its pixels: a scar map whose scar is {label}, not a "
            f"scar-free heart (whose myocardium label fills the mask); give --scar-labels {label} (if {label} is "
            f"this scar-free heart's myocardium, the mask reaches far beyond it: give --myocardium-labels {label} "
            "instead of the mask)")


def labels_in_myocardium(layers: Sequence[SliceLayer], masks: Sequence[np.ndarray]) -> list[int]:
    """The non-zero labels of ``layers`` over half of whose pixels lie in ``masks`` (one per layer).

    By share, not by any pixel: a mask drawn apart from the map reaches a pixel or so into the
    cavity, whose label still lies mostly outside it."""
    inside: dict[int, int] = {}
    total: dict[int, int] = {}
    for layer, mask in zip(layers, masks):
        values = np.nan_to_num(layer.values, nan=0.0)
        for label in (int(v) for v in np.unique(values) if v != 0):
            own = values == label
            total[label] = total.get(label, 0) + int(own.sum())
            inside[label] = inside.get(label, 0) + int((own & mask).sum())
    return sorted(label for label in total if inside[label] > 0.5 * total[label])


def _relabel(layer: SliceLayer, labels: list[int]) -> SliceLayer:
    """``layer`` with its scar labels 1, other labels 0 (NaN kept), and, when it shows a label
    besides the scar, the pixels of every non-zero label kept as ``drawn``: the heart the map
    draws, which the mesh check reads when no myocardium is given (the 0/1 targets lose it)."""
    values = layer.values
    in_scar = np.isin(values, labels)
    drawn = np.isfinite(values) & (values != 0)
    scar = in_scar.astype(np.float64)
    scar[np.isnan(values)] = np.nan
    return dataclasses.replace(layer, values=scar, drawn=drawn if np.any(drawn & ~in_scar) else None)


#: Three to this many distinct whole values over all chosen slices: a label map, not LGE
#: intensities (an 8-bit LGE slice holds dozens to hundreds of grey values).
MAX_LABEL_VALUES = 10
#: ... over at least this many pixels (a handful of pixels may hold few values by chance).
MIN_PIXELS_FOR_LABELS = 100
#: ... held by over this share of the pixels: a label map resampled with linear interpolation keeps
#: its labels inside regions and holds fractions only at their edges (EMIDEC P001 onto a 1.25 mm
#: grid: 99.3 % whole); LGE stored as floats holds fractions or many whole values.
LABEL_PIXEL_SHARE = 0.5


def _between_labels(finite: np.ndarray) -> bool:
    """Whether ``finite`` (pixel values) is a label map, perhaps resampled linearly: 3 to
    :data:`MAX_LABEL_VALUES` whole values held by over :data:`LABEL_PIXEL_SHARE` of at least
    :data:`MIN_PIXELS_FOR_LABELS` pixels."""
    whole = finite[finite == np.round(finite)]
    return (finite.size >= MIN_PIXELS_FOR_LABELS and whole.size > LABEL_PIXEL_SHARE * finite.size
            and 3 <= np.unique(whole).size <= MAX_LABEL_VALUES)


def _min_max(layers: list[SliceLayer]) -> list[SliceLayer]:
    """Scale the chosen slices' raw LGE to 0..1 (``--normalize-intensities``).

    A wrapped int16 LGE is refused first, as the scar rules refuse it: its brightest pixels, now the
    most negative, would become the lowest targets, so the scar would train as healthy."""
    refuse_wrapped_int16([layer.values for layer in layers], [layer.label for layer in layers])
    finite = np.concatenate([layer.values[np.isfinite(layer.values)] for layer in layers])
    if finite.size == 0:
        raise CardioScarError("The chosen slices hold no pixel values to normalise")
    low, high = float(finite.min()), float(finite.max())
    if high <= low:
        raise CardioScarError(f"All chosen pixels have the same value {low:g}; min-max normalisation is undefined")
    if high > 1 and _between_labels(finite):
        # min-max scaling turns the labels between the lowest and highest into grades: EMIDEC's
        # myocardium 2 of 0..4 would be a 0.5 scar (two values, a mask at any scale, become 0 and 1: fine)
        values = np.unique(finite[finite == np.round(finite)])
        between = int((finite != np.round(finite)).sum())
        fix = ("give --scar-labels (e.g. 3,4) instead" if not between else
               f"{between} pixels lie between them, as a linear resampling leaves: resample the label map with "
               "nearest neighbour and give --scar-labels (e.g. 3,4)")
        raise CardioScarError(f"--normalize-intensities: the chosen slices ('{layers[0].label}', ...) hold mostly "
                              f"the whole values {', '.join(f'{v:g}' for v in values)}: a label map, not raw LGE; {fix}")
    logger.info("Min-max normalising intensities over %d pixels: %g..%g -> 0..1", finite.size, low, high)
    return [dataclasses.replace(layer, values=(layer.values - low) / (high - low)) for layer in layers]


def _parse_int_list(text: str | None, option: str, example: str) -> list[int] | None:
    if text is None or not str(text).strip():
        return None
    items = [item.strip() for item in str(text).split(",")]
    try:
        values = [int(item) for item in items]
    except ValueError:
        raise CardioScarError(f"{option} must be comma-separated integers like '{example}', got '{text}'") from None
    duplicates = sorted({v for v in values if values.count(v) > 1})
    if duplicates:
        raise CardioScarError(f"{option} lists {duplicates[0]} more than once: '{text}'")
    return values


def parse_scar_labels(text: str | None) -> list[int] | None:
    """``"3,4"`` -> ``[3, 4]``; empty/None -> None (the image is not a label map)."""
    return _parse_int_list(text, "--scar-labels", "3,4")


def parse_myocardium_labels(text: str | None) -> list[int] | None:
    """``"2,3,4"`` -> ``[2, 3, 4]``; empty/None -> None (no myocardium given)."""
    return _parse_int_list(text, "--myocardium-labels", "2,3,4")


def parse_slice_indices(text: str | None) -> list[int] | None:
    """``"2,5,8"`` -> ``[2, 5, 8]``; empty/None/"all" -> None (all slices); negative -> error."""
    if text is not None and str(text).strip().lower() == "all":
        return None
    values = _parse_int_list(text, "--slice-indices", "2,5,8")
    if values is not None and min(values) < 0:
        raise CardioScarError(f"--slice-indices must be >= 0, got '{text}'")
    return values
