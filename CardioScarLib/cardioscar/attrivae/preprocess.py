"""From an LGE stack and its label map to the network's input cube, and from the cube back.

The published recipe: crop to the bounding box of the left ventricle (cavity + myocardium) in the
labels, mask everything else, scale intensities to [0, 1] inside the mask, apply a gamma curve
(contrast), resize the crop to a cube. The resize is trilinear with half-voxel alignment, so the
centre of cube voxel ``c`` sits at crop index ``(c + 0.5) * n / cube - 0.5``; resizing the cube back
to the crop's own size with the same rule is the exact inverse placement. That is how attention
maps land on the input image's grid (:func:`cube_to_image`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
import torch.nn.functional as F

from cardioscar.attrivae.labels import MIN_CAVITY_INSIDE, cavity_share_inside
from cardioscar.io.checks import whole_labels
from cardioscar.errors import CardioScarError

logger = logging.getLogger(__name__)

#: EMIDEC: 1 cavity, 2 myocardium, 3 infarct, 4 no-reflow. ACDC: cavity 3, myocardium 2.
EMIDEC_CAVITY = (1,)
EMIDEC_MYOCARDIUM = (2, 3, 4)
#: The experts' infarct (EMIDEC 3) and no-reflow (4): outlined in explain.png where they are
#: myocardium labels of the case's convention (ACDC's 3 is its cavity).
INFARCT_LABELS = (3, 4)


@dataclass(frozen=True)
class LabelConvention:
    """Which label values are the LV cavity and which the myocardium (scar included)."""

    cavity: tuple[int, ...] = EMIDEC_CAVITY
    myocardium: tuple[int, ...] = EMIDEC_MYOCARDIUM

    def __post_init__(self) -> None:
        if not self.cavity or not self.myocardium:
            raise CardioScarError("--cavity-labels and --myocardium-labels must each name at least one label")
        shared = set(self.cavity) & set(self.myocardium)
        if shared:
            raise CardioScarError(f"labels {sorted(shared)} are in both --cavity-labels and --myocardium-labels; "
                                  "give each label to one of them")


@dataclass(frozen=True)
class PreprocessConfig:
    """How a case becomes a cube; recorded in the checkpoint so prediction repeats it exactly."""

    cube: int = 32
    gamma: float = 1.5           # >1 darkens normal myocardium relative to enhancement
    margin_voxels: int = 3       # in-plane margin around the LV box (none along the slice axis)
    low_percentile: float = 1.0  # intensity window inside the LV mask
    high_percentile: float = 99.0

    def __post_init__(self) -> None:
        if not 8 <= self.cube <= 256:
            raise CardioScarError(f"--cube must be in 8..256 voxels, got {self.cube}")
        if not self.gamma > 0:
            raise CardioScarError(f"gamma must be > 0, got {self.gamma}")


@dataclass(frozen=True)
class CropBox:
    """The LV box in the image's index space (numpy order k, j, i; ``stop`` exclusive)."""

    start: tuple[int, int, int]
    stop: tuple[int, int, int]
    image_shape: tuple[int, int, int]

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(b - a for a, b in zip(self.start, self.stop))  # type: ignore[return-value]

    @property
    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(slice(a, b) for a, b in zip(self.start, self.stop))  # type: ignore[return-value]


@dataclass
class PreparedCase:
    """One case ready for the network, with what is needed to map results back."""

    cube: np.ndarray            # (cube, cube, cube) float32 in [0, 1], numpy order k, j, i
    box: CropBox
    image: sitk.Image           # the input image (geometry reference for outputs)
    labels: np.ndarray          # (k, j, i) int label map on the image grid
    lv: np.ndarray              # (k, j, i) bool: cavity + myocardium under the case's label convention
    spacing: tuple[float, float, float]  # (di, dj, dk) mm
    infarct_labels: tuple[int, ...] = ()  # of INFARCT_LABELS, those the convention calls myocardium

    @property
    def infarct(self) -> np.ndarray:
        """(k, j, i) bool: the experts' infarct (all False without infarct labels, or none drawn)."""
        return np.isin(self.labels, self.infarct_labels)


def read_case(image_path: str | Path, labels_path: str | Path) -> tuple[sitk.Image, np.ndarray]:
    """The image and its label map (integers), which must share one grid."""
    from cardioscar.io.imageio import read_image

    image = read_image(image_path)
    labels_image = read_image(labels_path)
    if image.GetSize() != labels_image.GetSize():
        raise CardioScarError(f"--labels {labels_path} has size {labels_image.GetSize()} but --image {image_path} has "
                              f"{image.GetSize()}: give the label map of this image (same grid)")
    for name, a, b, tol in (("spacing", image.GetSpacing(), labels_image.GetSpacing(), 1e-3),
                            ("origin", image.GetOrigin(), labels_image.GetOrigin(), 1e-2),
                            ("direction", image.GetDirection(), labels_image.GetDirection(), 1e-4)):
        if not np.allclose(a, b, atol=tol):
            raise CardioScarError(f"--labels {labels_path} has another {name} than --image {image_path} "
                                  f"({np.round(b, 4).tolist()} vs {np.round(a, 4).tolist()}): resample it onto the image")
    return image, whole_labels(sitk.GetArrayFromImage(labels_image), f"--labels {labels_path}").astype(np.int32)


def lv_mask(labels: np.ndarray, convention: LabelConvention) -> np.ndarray:
    """Cavity + myocardium voxels."""
    return np.isin(labels, convention.cavity + convention.myocardium)


def _check_cavity_inside(labels: np.ndarray, convention: LabelConvention, source: str) -> None:
    """The LV cavity lies inside the myocardium's ring on its slices; labels of another convention
    (ACDC's right ventricle is 1, EMIDEC's cavity) put it outside, and the prediction would be made
    from the wrong structures, silently."""
    share = cavity_share_inside(labels, convention.cavity, convention.myocardium)
    if share < MIN_CAVITY_INSIDE:
        raise CardioScarError(f"{source}: only {100 * share:.0f} % of the cavity (labels "
                              f"{list(convention.cavity)}) lies inside the myocardium (labels "
                              f"{list(convention.myocardium)}): these are not this map's labels; set --cavity-labels "
                              "and --myocardium-labels (EMIDEC 1 and 2,3,4; ACDC 3 and 2)")


#: In-plane shifts (mm, along i and along j) tried by :func:`check_labels_fit_image`.
FIT_SHIFTS_MM = (-12.0, -8.0, -4.0, 0.0, 4.0, 8.0, 12.0)
#: Share of the shifted positions with a higher blood-pool contrast from which labels are refused:
#: EMIDEC's 75 own maps at most 0.31 (``Testing/benchmarks/attrivae_label_fit.py``).
MAX_BETTER_SHIFTS = 0.5
#: Least blood-to-wall contrast (:func:`blood_wall_contrast`) of a map drawn on its image: EMIDEC's 75
#: own maps 0.069-0.541 (``Testing/benchmarks/attrivae_cine_contrast.py``), the cut half the lowest.
MIN_FIT_CONTRAST = 0.035
#: Most spread (SD) of the cavity's intensities, in units of its contrast with the wall (the
#: medians' difference), of a map drawn on its image: EMIDEC's 75 own maps 0.335-1.648, ACDC's
#: 0.369-0.411 (``Testing/benchmarks/attrivae_cine_contrast.py``); another case's cavity takes in
#: wall, lung and fat.
MAX_CAVITY_SPREAD = 2.5


def _blood_pool_contrast(image: np.ndarray, cavity: np.ndarray, myocardium: np.ndarray) -> float:
    """Median intensity of the cavity minus that of the myocardium (LGE: bright blood, nulled wall)."""
    return float(np.median(image[cavity]) - np.median(image[myocardium]))


def check_labels_fit_image(prepared: PreparedCase, convention: LabelConvention, source: str) -> float:
    """Refuse a label map that does not outline this image's left ventricle; returns its
    :func:`blood_wall_contrast`, which :func:`warn_if_cine_like` then reads.

    A label map of another case (or series) on the same grid passes every geometric check and
    gives a confident answer about the wrong heart. A map drawn on this image has its cavity on
    the blood pool: brighter than its wall (by at least :data:`MIN_FIT_CONTRAST` of the
    surrounding range), of even intensity (an SD within :data:`MAX_CAVITY_SPREAD` times that
    contrast), and moved a few millimetres in-plane it loses contrast; when most moves raise it
    instead, the map was drawn on another image. Heuristics, each set with a margin on EMIDEC's 75
    own maps (none refused, nor ACDC's 2); together they refuse 86 % of 1,404 other cases' maps
    pasted onto EMIDEC images (``Testing/benchmarks/attrivae_label_fit.py``); those that pass mostly
    overlap the image's own LV."""
    image = sitk.GetArrayFromImage(prepared.image).astype(np.float64)
    cavity = np.isin(prepared.labels, convention.cavity)
    myocardium = np.isin(prepared.labels, convention.myocardium)
    base = _blood_pool_contrast(image, cavity, myocardium)
    advice = "(another case's or series' label map?); give the label map drawn on this image"
    contrast = blood_wall_contrast(image, prepared.labels, convention, prepared.spacing)
    if contrast < MIN_FIT_CONTRAST:
        raise CardioScarError(f"{source} does not outline the image's left ventricle: its cavity is {contrast:.3f} of "
                              f"the surrounding intensity range above its myocardium (a map drawn on an LGE: at "
                              f"least {MIN_FIT_CONTRAST}) {advice}")
    spread = float(np.std(image[cavity])) / base if base > 0 else float("inf")
    if spread > MAX_CAVITY_SPREAD:
        raise CardioScarError(f"{source} does not outline the image's left ventricle: its cavity's intensities spread "
                              f"{spread:.1f} times their contrast with its myocardium (a blood pool's: at most "
                              f"{MAX_CAVITY_SPREAD}) {advice}")
    di, dj = prepared.spacing[0], prepared.spacing[1]
    moves = [(int(round(y / dj)), int(round(x / di))) for y in FIT_SHIFTS_MM for x in FIT_SHIFTS_MM if (x, y) != (0, 0)]
    better = sum(_blood_pool_contrast(image, np.roll(cavity, move, (1, 2)), np.roll(myocardium, move, (1, 2))) > base
                 for move in moves)
    if better >= MAX_BETTER_SHIFTS * len(moves):
        raise CardioScarError(f"{source} does not outline the image's left ventricle: moved a few mm, its cavity "
                              f"and myocardium fit the image's bright blood pool and dark wall better in {better} of "
                              f"{len(moves)} directions {advice}")
    return contrast


#: In-plane margin (mm) of the box around the LV whose other voxels give the image's own intensity range.
CONTRAST_SURROUND_MM = 20.0
#: Blood-to-wall contrast (see :func:`blood_wall_contrast`) above which the image is warned about as
#: cine-like: EMIDEC's 75 LGE stacks 0.069-0.541, ACDC 101's two cine frames 0.702 and 0.765
#: (``Testing/benchmarks/attrivae_cine_contrast.py``); the cut sits between them.
MAX_LGE_BLOOD_WALL_CONTRAST = 0.62


def blood_wall_contrast(image: np.ndarray, labels: np.ndarray, convention: LabelConvention,
                        spacing: tuple[float, float, float]) -> float:
    """How far the cavity's median lies above the myocardium's, as a share of the intensity range
    (5th to 95th percentile) of the tissue around the LV on its slices.

    Why a share of the local range: stored intensities carry offsets (EMIDEC's sit on about 2,000,
    its padding at 0), so no ratio of the two medians tells a cine from an LGE; a difference over a
    range does not move with an offset or a gain. In a bright-blood cine the blood pool and the wall
    span most of that range (ACDC 0.70-0.77); EMIDEC's LGE wall is close to its blood pool (at most
    0.54). Voxels at the image's minimum (padding) are left out of the range; NaN when nothing
    surrounds the LV (neither check then judges)."""
    lv = lv_mask(labels, convention)
    slices = np.nonzero(lv.any(axis=(1, 2)))[0]
    rows, columns = np.nonzero(lv.any(axis=0))
    margin_j, margin_i = (int(round(CONTRAST_SURROUND_MM / s)) for s in (spacing[1], spacing[0]))
    box = (slice(slices.min(), slices.max() + 1),
           slice(max(0, rows.min() - margin_j), rows.max() + 1 + margin_j),
           slice(max(0, columns.min() - margin_i), columns.max() + 1 + margin_i))
    around = image[box][~lv[box] & (image[box] > image.min())]
    if around.size == 0:
        return float("nan")  # the LV fills its box: no surrounding tissue to compare with, nothing to tell
    low, high = np.percentile(around, [5, 95])
    blood = np.median(image[np.isin(labels, convention.cavity)])
    wall = np.median(image[np.isin(labels, convention.myocardium)])
    return float((blood - wall) / max(high - low, 1e-6))


def warn_if_cine_like(contrast: float, image_source: str) -> None:
    """Warn when the image's blood pool and wall differ as a cine's do, not as an LGE's: its
    :func:`blood_wall_contrast` (as :func:`check_labels_fit_image` returns it) above
    :data:`MAX_LGE_BLOOD_WALL_CONTRAST`.

    A cine given with its labels passes every check (the labels fit it) and is classified as if it
    were an LGE: an MI probability that means nothing. Only a warning: the cut is set on one
    centre's LGE (EMIDEC) and one cine patient (ACDC 101); a well-nulled LGE from another scanner,
    with a darker wall than EMIDEC's, may pass the cut too."""
    if contrast > MAX_LGE_BLOOD_WALL_CONTRAST:
        logger.warning("%s looks like a cine, not an LGE: its blood pool lies %.2f of the surrounding intensity range "
                       "above its myocardium (EMIDEC's LGE: at most 0.54; ACDC cine: 0.70-0.77); the model learned "
                       "LGE, so give the LGE stack, or read this MI probability as meaningless",
                       image_source, contrast)


#: More distinct values than this and a "label map" is an image (EMIDEC has 5 labels, ACDC 4).
MAX_LABEL_VALUES = 32
#: Fewest slices the LV must lie on: the network reads a stack through the LV (EMIDEC's 75 maps: 5-10
#: slices, ACDC 101's: 9 and 10); one or two slices are no stack.
MIN_LV_SLICES = 3


def lv_box(labels: np.ndarray, convention: LabelConvention, margin: int, source: str = "--labels") -> CropBox:
    """The LV's bounding box with an in-plane margin, clipped to the image."""
    mask = lv_mask(labels, convention)
    values = np.unique(labels)
    if len(values) > MAX_LABEL_VALUES:  # an MRI given as labels: whole numbers too, but hundreds of them
        raise CardioScarError(f"{source} holds {len(values)} different values, not a few labels (an intensity image?): "
                              "give the label map (EMIDEC: Contours/Case_xxx.nii.gz) as --labels")
    for part, wanted, option, example in (
            ("myocardium", convention.myocardium, "--myocardium-labels", "EMIDEC 2,3,4; ACDC 2"),
            ("cavity", convention.cavity, "--cavity-labels", "EMIDEC 1; ACDC 3")):
        if not np.isin(labels, wanted).any():  # no cavity: an LV volume of 0 and a crop without it, silently
            present = [int(v) for v in values]
            raise CardioScarError(f"{source} has no {part} label {list(wanted)} (labels present: {present}); set "
                                  f"{option} ({example})")
    _check_cavity_inside(labels, convention, source)
    _check_a_stack(mask, source)
    where = np.nonzero(mask)
    start = [int(w.min()) for w in where]
    stop = [int(w.max()) + 1 for w in where]
    for axis in (1, 2):  # j, i: in-plane margin
        start[axis] = max(0, start[axis] - margin)
        stop[axis] = min(labels.shape[axis], stop[axis] + margin)
    return CropBox(tuple(start), tuple(stop), tuple(labels.shape))  # type: ignore[arg-type]


def _check_a_stack(lv: np.ndarray, source: str) -> None:
    """Refuse an LV outlined on one or two slices (a stack cut to its middle slice, one slice
    exported). Why: the crop is resized to a cube, so the slice was stretched through the whole
    depth and read as a heart of that shape: EMIDEC P010's slice 3 alone gave an MI probability and
    attributes (an LV volume among them) as for a whole heart, exit 0."""
    slices = int(lv.any(axis=(1, 2)).sum())
    if slices < MIN_LV_SLICES:
        raise CardioScarError(f"{source} outlines the LV on {slices} slice(s): the model reads a short-axis stack "
                              f"through the LV (at least {MIN_LV_SLICES} slices; EMIDEC's hold 5-10), and this would be "
                              "stretched through its whole depth as if it were the heart; give the whole stack")


def resize(volume: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Trilinear resize with half-voxel alignment (voxel centres at ``(c + 0.5) * n / m - 0.5``)."""
    tensor = torch.as_tensor(np.ascontiguousarray(volume), dtype=torch.float32)[None, None]
    return F.interpolate(tensor, size=tuple(shape), mode="trilinear", align_corners=False)[0, 0].numpy()


def intensity_window(values: np.ndarray, config: PreprocessConfig) -> np.ndarray:
    """Scale to [0, 1] between the mask's percentiles, clip, then apply the gamma curve."""
    low, high = np.percentile(values, [config.low_percentile, config.high_percentile])
    scaled = np.clip((values - low) / max(high - low, 1e-6), 0.0, 1.0)
    return scaled ** config.gamma


def prepare_arrays(image: np.ndarray, labels: np.ndarray, convention: LabelConvention,
                   config: PreprocessConfig, source: str = "--labels") -> tuple[np.ndarray, CropBox]:
    """The cube (float32, [0, 1]) of one image array (k, j, i) and its label array, and the crop box."""
    box = lv_box(labels, convention, config.margin_voxels, source)
    crop = image[box.slices].astype(np.float64)
    mask = lv_mask(labels[box.slices], convention)
    inside = crop[mask]
    if np.ptp(inside) == 0 or np.array_equal(inside, labels[box.slices][mask]):
        raise CardioScarError(f"--image has no LGE contrast in the LV that {source} outlines (one intensity, or the "
                              "labels themselves): give the LGE stack as --image and its label map as --labels")
    windowed = np.zeros_like(crop)
    windowed[mask] = intensity_window(crop[mask], config)
    cube = resize(windowed, (config.cube,) * 3)
    return np.clip(cube, 0.0, 1.0).astype(np.float32), box


def prepare_case(image_path: str | Path, labels_path: str | Path, convention: LabelConvention,
                 config: PreprocessConfig) -> PreparedCase:
    """Read, check and preprocess one case from its files."""
    image, labels = read_case(image_path, labels_path)
    array = sitk.GetArrayFromImage(image)
    if not np.isfinite(array).all():
        raise CardioScarError(f"--image {image_path} has NaN or infinite voxels: fix the file")
    cube, box = prepare_arrays(array, labels, convention, config, f"--labels {labels_path}")
    return PreparedCase(cube, box, image, labels, lv_mask(labels, convention),
                        tuple(float(s) for s in image.GetSpacing()),  # type: ignore[arg-type]
                        tuple(v for v in INFARCT_LABELS if v in convention.myocardium))


def cube_to_image(volume: np.ndarray, box: CropBox) -> np.ndarray:
    """A cube-grid map placed back on the image grid (k, j, i): resized to the crop, 0 outside it."""
    placed = np.zeros(box.image_shape, dtype=np.float32)
    placed[box.slices] = resize(volume, box.shape)
    return placed


def as_image_like(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """A float32 SimpleITK image of ``array`` (k, j, i) with the reference's size, spacing, origin, direction."""
    image = sitk.GetImageFromArray(array.astype(np.float32))
    image.CopyInformation(reference)
    return image
