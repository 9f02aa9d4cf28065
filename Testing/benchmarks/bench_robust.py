"""Robustness benchmark (issue 18): the reconstruction against no-learning yardsticks on data
built the way users' inputs are, not the way the demo phantom is.

Cases (one JSON line each):
  segmented  the segmented phantom family (``cardioscar.phantoms.phantom_segmented``): per seed, a scar
             fraction map that is 0 outside the myocardium, or its label map (0 bg, 1 blood,
             2 myocardium, 3 scar), on a tet or hex mesh up to one pixel off the image's wall.
             Seeds cycle through (fraction, tet), (labels, tet), (fraction, hex), (labels, hex).
  demo       the demo family (``cardioscar.phantoms.phantom``), prepared as the demo does.
  acdc       real ACDC patient 101 (end-diastole): a hex mesh of the myocardium label (2)
             interpolated between the 10 slices (signed distances, linear along the stack), a
             synthetic scar (a patchy dense blob and a faint one) on it, acquired at the real slice
             geometry (1.64 mm pixels, 10 mm apart, 8 mm slabs): pixel = scar fraction over its
             footprint where the real label is myocardium, 0 elsewhere.
  bivme      real biv-me planes (6 short-axis, 5 long-axis DICOM planes, 6 mm slabs) and its
             fitted surfaces (LV endocardium + epicardium nodes, as bench_real_planes.py): the same
             kind of synthetic scar; a pixel is myocardium when its centre lies inside the
             epicardium and outside both endocardia.

Targets: the myocardium-aware targets of issue 18 are applied here directly: pixels outside the
myocardium are NaN (no group; ``cardioscar.prepare.mapping``). The yardsticks see the acquired values as a
user has them (0 outside the myocardium): copy-voxel (each node takes the value of the voxel of the
acquired stack it lies in, voxels ``spacing`` thick along the stack: on a regular stack this is the
nearest slice's pixel), nearest slice (``cardioscar.evaluate.baselines``, all planes) and LogOdds (parallel
planes only). The demo family keeps its own (whole-footprint) pixels and partial-volume correction.

Per case: Dice at 0.5, best Dice and its threshold, AUC, volume error at 0.5; uncertainty: ROC AUC
of ``scar_uncertainty`` for "wrong at 0.5" and the same for -|p - 0.5| and ``scar_error_risk``,
the mean uncertainty and risk on the slices (nodes inside any slab) vs between; the fit's group loss (of the MC mean field on the
training groups, and the training history's best) vs the true fraction field's group loss (and
the binary truth's, the fair yardstick when the targets are 0/1 labels); the training runs
(``attempts``: peak rate, epochs, final group loss and seed of each; more than one when a run died,
failed, diverged or stalled; ``late_rise``: the kept run's, see ``training.DIVERGED_FRACTION``);
seconds. ``--loso``: hold out the middle myocardial slice of the stack, reconstruct from the
others, score the held-out slab's nodes (Dice at 0.5, AUC) beside nearest slice and LogOdds from
the remaining slices, at 10 and 13 mm spacing for the phantoms (real spacing for ACDC/biv-me).

Importable (w18fit scores a training config with it)::

    sys.path.insert(0, "Testing/benchmarks"); import bench_robust as br
    case = br.segmented_case(seed=3, variant="labels", mesh_type="hex", nodes=20000)
    line = br.run_case(case, TrainingConfig.fast())          # dict, as printed
    held = br.run_loso(br.segmented_case(3, slice_gap_mm=13.0), TrainingConfig.fast())

Usage:
  PYTHONPATH=CardioScarLib python Testing/benchmarks/bench_robust.py [--preset fast]
      [--seeds 0-7] [--families segmented,demo,acdc,bivme] [--nodes 40000] [--quick] [--loso] [--targets masked|plain]
      [--residual-decays 1,2,4,inf] [--prior-json '{"slab_scale": 0.5}'] [--train-seed 0]
      [--dump-dir DIR]   (per-node arrays of each case, read by error_risk_study.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk
from scipy import ndimage
from sklearn.metrics import roc_auc_score
from vtk.util import numpy_support

from cardioscar.evaluate import metrics
from cardioscar.evaluate.baselines import logodds_baseline, nearest_slice_baseline
from cardioscar.logic import PreprocessingResult, predict_on_points, prepare_from_slices, train_scar_model
from cardioscar.io.meshio import Mesh, read_mesh
from cardioscar.prepare.myocardium import restrict_to_myocardium
from cardioscar.prepare.mapping import SLICE_PROFILES
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.phantoms.phantom_segmented import MYOCARDIUM, SCAR, SegmentedConfig
from cardioscar.prepare.slices import SliceLayer, ijk_to_lps_matrix, slices_from_image, slices_from_path
from cardioscar.shape_prior import build_shape_prior
from cardioscar.shape_prior.use import with_residual_decay
from cardioscar.fit.batching import group_means
from cardioscar.fit.training import TrainingConfig

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
VARIANT_CYCLE = (("fraction", "tet"), ("labels", "tet"), ("fraction", "hex"), ("labels", "hex"))


@dataclass
class Case:
    """One benchmark case: nodes with their truth, the training targets and what yardsticks see."""

    name: str
    points: np.ndarray                 # (N, 3) LPS mm
    truth: np.ndarray                  # (N,) 0/1
    truth_fraction: np.ndarray         # (N,) continuous true scar fraction (group loss of the truth)
    weights: np.ndarray                # (N,) node volumes (areas on a surface) for the volume error
    slices: list[SliceLayer]           # training targets in [0, 1], NaN where the pixel has no data
    acquired: list[SliceLayer]         # the values as a user has them (0 outside the myocardium)
    stack: sitk.Image | None = None    # the acquired stack for copy-voxel; None when planes are separate
    parallel: list[int] | None = None  # indices of the parallel (short-axis) slices, in stack order
    coverage_mesh: vtk.vtkDataSet | None = None   # demo family: partial-volume correction
    info: dict = field(default_factory=dict)
    scar_rule: str = ""                # a raw-LGE rule's record (prepare's .npz): auto leaves its grades to the network


# --------------------------------------------------------------------------- targets

def _masked(layers: list[SliceLayer], keep: list[np.ndarray]) -> list[SliceLayer]:
    """Copies of ``layers`` whose pixels outside ``keep`` are NaN (no data, no group)."""
    return [dataclasses.replace(layer, values=np.where(mask, layer.values, np.nan)) for layer, mask in zip(layers, keep)]


def _with_values(layers: list[SliceLayer], values: list[np.ndarray]) -> list[SliceLayer]:
    return [dataclasses.replace(layer, values=v) for layer, v in zip(layers, values)]


def _targets(fraction: list[SliceLayer], myocardium: list[np.ndarray], variant: str) -> tuple[list, list]:
    """(training targets, acquired values) of a fraction map and its myocardium mask.

    ``labels``: the label map a user has says scar (3) where the fraction is >= 0.5, so the
    targets are 0/1 inside the myocardium (``--scar-labels 3 --myocardium-labels 2,3``).
    """
    if variant == "labels":
        fraction = _with_values(fraction, [np.where(m, layer.values >= 0.5, 0.0).astype(float)
                                           for layer, m in zip(fraction, myocardium)])
    elif variant != "fraction":
        raise ValueError(f"variant must be 'fraction' or 'labels', got {variant!r}")
    return _masked(fraction, myocardium), fraction


# --------------------------------------------------------------------------- phantom cases

def segmented_case(seed: int, variant: str = "fraction", mesh_type: str = "tet", nodes: int = 40000,
                   slice_gap_mm: float | None = None, noise_std: float = 0.0) -> Case:
    """A segmented-family phantom; ``labels`` trains on its label map (scar 3, myocardium 2,3)."""
    phantom = make_phantom(SegmentedConfig(seed=seed, target_nodes=nodes, mesh_type=mesh_type,
                                           slice_gap_mm=slice_gap_mm, noise_std=noise_std))
    half = phantom.slice_half_thickness_mm
    if variant == "labels":
        label_layers = slices_from_image(phantom.label_image, half_thickness=half, label="labels")
        myocardium = [np.isin(layer.values, (MYOCARDIUM, SCAR)) for layer in label_layers]
        acquired = _with_values(label_layers, [(layer.values == SCAR).astype(float) for layer in label_layers])
        slices = _masked(acquired, myocardium)
    else:
        acquired = slices_from_image(phantom.image, half_thickness=half, label="fraction")
        mask_layers = slices_from_image(phantom.myocardium_image, half_thickness=half, label="mask")
        slices = _masked(acquired, [layer.values > 0 for layer in mask_layers])
    stack = _stack_image(acquired, phantom.image)
    cfg = phantom.config
    return Case(
        name=f"segmented_s{seed}_{variant}_{mesh_type}", points=phantom.points_lps, truth=phantom.truth,
        truth_fraction=phantom.truth_fraction, weights=metrics.node_volumes(phantom.mesh), slices=slices,
        acquired=acquired, stack=stack, parallel=list(range(len(slices))),
        info={"family": "segmented", "seed": seed, "variant": variant, "mesh": mesh_type,
              "pixel_mm": round(cfg.pixel_mm, 3), "gap_mm": round(cfg.slice_gap_mm, 2), "slab_mm": round(cfg.slab_mm, 2),
              "infarct_peaks": [round(i["peak_fraction"], 3) for i in phantom.metadata["infarcts"]]})


def demo_case(seed: int = 0, nodes: int = 40000, slice_gap_mm: float | None = None) -> Case:
    """The demo family, prepared as the demo does (whole-footprint pixels, partial-volume correction)."""
    overrides = {} if slice_gap_mm is None else {"slice_gap_mm": slice_gap_mm}
    phantom = make_phantom(PhantomConfig(seed=seed, target_nodes=nodes, **overrides))
    slices = slices_from_image(phantom.image, half_thickness=phantom.slice_half_thickness_mm, label="demo")
    return Case(name=f"demo_s{seed}", points=phantom.points_lps, truth=(phantom.truth >= 0.5).astype(float),
                truth_fraction=phantom.truth, weights=metrics.node_volumes(phantom.mesh), slices=slices,
                acquired=slices, stack=phantom.image, parallel=list(range(len(slices))), coverage_mesh=phantom.mesh,
                info={"family": "demo", "seed": seed, "gap_mm": phantom.config.slice_gap_mm})


def _stack_image(layers: list[SliceLayer], like: sitk.Image) -> sitk.Image:
    image = sitk.GetImageFromArray(np.stack([layer.values for layer in layers]).astype(np.float32))
    image.CopyInformation(like)
    return image


# --------------------------------------------------------------------------- synthetic scar on real geometry

@dataclass(frozen=True)
class BlobScar:
    """Scar fraction field of soft balls (LPS): a patchy dense one (peak 1) and fainter ones."""

    centres: np.ndarray     # (K, 3)
    radii: np.ndarray       # (K,)
    peaks: np.ndarray       # (K,)
    border_mm: float
    wave_vectors: np.ndarray
    phases: np.ndarray
    patchiness: float = 0.35

    @classmethod
    def draw(cls, centres: np.ndarray, seed: int, radii=(18.0, 13.0)) -> "BlobScar":
        rng = np.random.default_rng([seed, 5])
        directions = rng.normal(size=(6, 3))
        directions /= np.linalg.norm(directions, axis=1, keepdims=True)
        peaks = np.r_[1.0, rng.uniform(0.55, 0.7, size=len(centres) - 1)]
        return cls(np.asarray(centres, float), np.asarray(radii[:len(centres)], float), peaks, 1.5,
                   directions * (2 * np.pi / rng.uniform(8.0, 14.0, size=(6, 1))), rng.uniform(0, 2 * np.pi, 6))

    def __call__(self, points: np.ndarray) -> np.ndarray:
        texture = np.clip(0.5 + 0.5 * math.sqrt(len(self.phases) / 2.0)
                          * np.cos(points @ self.wave_vectors.T + self.phases).mean(axis=1), 0.0, 1.0)
        values = []
        for k, (centre, radius, peak) in enumerate(zip(self.centres, self.radii, self.peaks)):
            envelope = 0.5 * (1.0 - np.tanh((np.linalg.norm(points - centre, axis=1) - radius) / (2 * self.border_mm)))
            values.append(peak * envelope * ((1.0 - self.patchiness * texture) if k == 0 else 1.0))
        return np.max(values, axis=0)


def footprint_fraction(layer: SliceLayer, pixels: np.ndarray, scar: BlobScar, fine_mm: float = 0.8) -> np.ndarray:
    """Mean of ``scar`` over the footprint (pixel square x slab, midpoint rule) of the pixels
    where ``pixels`` is true; 0 elsewhere."""
    s_i, s_j = (max(1, math.ceil(d / fine_mm)) for d in layer.spacing)
    s_d = max(1, math.ceil(2 * layer.half_thickness / fine_mm))
    grid = np.stack(np.meshgrid(((np.arange(s_i) + 0.5) / s_i - 0.5) * layer.spacing[0],
                                ((np.arange(s_j) + 0.5) / s_j - 0.5) * layer.spacing[1],
                                ((np.arange(s_d) + 0.5) / s_d - 0.5) * 2 * layer.half_thickness, indexing="ij"), -1)
    offsets = grid.reshape(-1, 3) @ np.stack([layer.axis_i, layer.axis_j, layer.normal])
    centres = layer.pixel_centres_lps()[pixels]
    out = np.zeros(layer.shape)
    if len(centres):
        samples = (centres[:, None, :] + offsets[None]).reshape(-1, 3)
        out[pixels] = scar(samples).reshape(len(centres), -1).mean(axis=1)
    return out


def _hex_mesh_from_mask(inside: np.ndarray, corner_to_lps: np.ndarray) -> vtk.vtkUnstructuredGrid:
    """Hexahedral mesh of the voxels where ``inside[a, b, c]``; ``corner_to_lps`` maps a voxel
    corner index (a, b, c, 1) to LPS."""
    cells = np.argwhere(inside)
    offsets = np.array([[0, 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]])
    if np.linalg.det(corner_to_lps[:3, :3]) < 0:
        offsets = offsets[[0, 3, 2, 1, 4, 7, 6, 5]]
    corners = (cells[:, None, :] + offsets[None]).reshape(-1, 3)
    unique, inverse = np.unique(corners, axis=0, return_inverse=True)
    points = unique @ corner_to_lps[:3, :3].T + corner_to_lps[:3, 3]
    grid = vtk.vtkUnstructuredGrid()
    vtk_points = vtk.vtkPoints()
    vtk_points.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points, dtype=np.float64), deep=True))
    grid.SetPoints(vtk_points)
    legacy = np.hstack([np.full((len(cells), 1), 8), inverse.reshape(-1, 8)]).ravel().astype(np.int64)
    cell_array = vtk.vtkCellArray()
    cell_array.ImportLegacyFormat(numpy_support.numpy_to_vtkIdTypeArray(legacy, deep=True))
    grid.SetCells(vtk.VTK_HEXAHEDRON, cell_array)
    return grid


def acdc_case(seed: int = 0, variant: str = "fraction", voxel_mm: float = 2.0, slab_mm: float = 8.0,
              data: Path = DATA / "acdc_patient101") -> Case:
    """Real ACDC geometry: myocardium mesh interpolated between the slices, synthetic scar."""
    labels = sitk.ReadImage(str(data / "patient101_frame01_gt.nii.gz"))
    volume = sitk.GetArrayFromImage(labels)                       # [k, j, i]
    myocardium = volume == 2
    sy, sx = labels.GetSpacing()[1], labels.GetSpacing()[0]
    sdf = np.stack([ndimage.distance_transform_edt(~m, sampling=(sy, sx)) - ndimage.distance_transform_edt(m, sampling=(sy, sx))
                    if m.any() else np.full(m.shape, 50.0) for m in myocardium])
    # Fine voxels in the image's continuous index space, spanning whole slabs at both stack ends.
    spacing = np.asarray(labels.GetSpacing())
    step = voxel_mm / spacing
    ks, js, is_ = np.nonzero(myocardium)
    lo = np.array([is_.min() - 2, js.min() - 2, -0.5])
    hi = np.array([is_.max() + 2, js.max() + 2, volume.shape[0] - 0.5])
    counts = np.ceil((hi - lo) / step).astype(int)
    centre_idx = [lo[a] + (np.arange(counts[a]) + 0.5) * step[a] for a in range(3)]
    ci, cj, ck = np.meshgrid(*centre_idx, indexing="ij")
    sampled = ndimage.map_coordinates(sdf, [ck.ravel(), cj.ravel(), ci.ravel()], order=1, mode="nearest")
    inside = (sampled < 0).reshape(ci.shape)
    index_to_lps = ijk_to_lps_matrix(labels)
    corner_to_lps = index_to_lps @ np.vstack([np.hstack([np.diag(step), lo[:, None]]), [0, 0, 0, 1]])
    mesh = _hex_mesh_from_mask(inside, corner_to_lps)
    points = Mesh(mesh, "LPS").points_lps()
    layers = slices_from_image(labels, half_thickness=slab_mm / 2, label="acdc")
    scar = BlobScar.draw(_scar_centres(points, layers[0].normal, seed), seed)
    myo_pixels = [layer.values == 2 for layer in layers]
    fraction = _with_values(layers, [footprint_fraction(layer, m, scar) for layer, m in zip(layers, myo_pixels)])
    slices, acquired = _targets(fraction, myo_pixels, variant)
    truth_fraction = scar(points)
    return Case(name=f"acdc101_s{seed}_{variant}", points=points, truth=(truth_fraction >= 0.5).astype(float),
                truth_fraction=truth_fraction, weights=metrics.node_volumes(mesh), slices=slices, acquired=acquired,
                stack=_stack_image(acquired, labels), parallel=list(range(len(slices))),
                info={"family": "acdc", "seed": seed, "variant": variant, "gap_mm": 10.0, "slab_mm": slab_mm,
                      "voxel_mm": voxel_mm})


def _scar_centres(points: np.ndarray, normal: np.ndarray, seed: int) -> np.ndarray:
    """Two scar centres on mesh nodes of the middle half of the stack, 35+ mm apart, from the seed."""
    rng = np.random.default_rng([seed, 3])
    height = points @ normal
    lo, hi = np.quantile(height, [0.25, 0.75])
    candidates = points[(height > lo) & (height < hi)]
    first = candidates[rng.integers(len(candidates))]
    far = candidates[np.linalg.norm(candidates - first, axis=1) > 35.0]
    return np.stack([first, far[rng.integers(len(far))]])


SHORT_AXIS = ("Se11", "Se1", "Se2", "Se3", "Se4", "Se5")
LONG_AXIS = ("Se6", "Se7", "Se8", "Se9", "Se10")


def bivme_case(seed: int = 0, variant: str = "fraction", data: Path = DATA / "bivme_patient1") -> Case:
    """Real biv-me planes and fitted surfaces (their nodes), synthetic scar (see the module doc)."""
    model = data / "fitted_model_frame000"
    surfaces = {name: read_mesh(model / f"patient1_{name}_000.vtk") for name in ("LV_ENDOCARDIAL", "RV_ENDOCARDIAL", "EPICARDIAL")}
    append = vtk.vtkAppendPolyData()
    for name in ("LV_ENDOCARDIAL", "EPICARDIAL"):
        append.AddInputData(surfaces[name].dataset)
    append.Update()
    nodes = append.GetOutput()
    points = Mesh(nodes, "LPS").points_lps()
    planes = [slices_from_path(data / "dicom_ED" / name, half_thickness=3.0)[0] for name in SHORT_AXIS + LONG_AXIS]
    short_axis = planes[:len(SHORT_AXIS)]
    order = np.argsort([float(np.dot(p.origin, short_axis[0].normal)) for p in short_axis])
    centres = _scar_centres(read_mesh(model / "patient1_LV_ENDOCARDIAL_000.vtk").points_lps(), short_axis[0].normal, seed)
    scar = BlobScar.draw(centres, seed)
    epicardium = surfaces["EPICARDIAL"].points_lps()
    lower, upper = epicardium.min(axis=0) - 2.0, epicardium.max(axis=0) + 2.0
    signed = {name: vtk.vtkImplicitPolyDataDistance() for name in surfaces}
    for name, implicit in signed.items():
        implicit.SetInput(surfaces[name].dataset)

    def myocardium(layer: SliceLayer) -> np.ndarray:
        """Pixel centres inside the epicardium, outside both endocardia, and within 8 mm of a
        surface (the fitted surfaces are open at the valves)."""
        centres = layer.pixel_centres_lps().reshape(-1, 3)
        box = np.all((centres > lower) & (centres < upper), axis=1)
        d = {}
        for name, implicit in signed.items():
            out = vtk.vtkDoubleArray()
            implicit.FunctionValue(numpy_support.numpy_to_vtk(centres[box], deep=True), out)
            d[name] = numpy_support.vtk_to_numpy(out)
        near = np.minimum(np.minimum(np.abs(d["EPICARDIAL"]), np.abs(d["LV_ENDOCARDIAL"])), np.abs(d["RV_ENDOCARDIAL"])) < 8.0
        inside = np.zeros(len(centres), bool)
        inside[box] = (d["EPICARDIAL"] < 0) & (d["LV_ENDOCARDIAL"] > 0) & (d["RV_ENDOCARDIAL"] > 0) & near
        return inside.reshape(layer.shape)

    myo_pixels = [myocardium(layer) for layer in planes]
    fraction = _with_values(planes, [footprint_fraction(layer, m, scar) for layer, m in zip(planes, myo_pixels)])
    slices, acquired = _targets(fraction, myo_pixels, variant)
    truth_fraction = scar(points)
    return Case(name=f"bivme_s{seed}_{variant}", points=points, truth=(truth_fraction >= 0.5).astype(float),
                truth_fraction=truth_fraction, weights=metrics.node_volumes(nodes), slices=slices, acquired=acquired,
                stack=None, parallel=[int(k) for k in order],
                info={"family": "bivme", "seed": seed, "variant": variant, "gap_mm": 17.7, "slab_mm": 6.0,
                      "planes": "6 short-axis + 5 long-axis"})


# --------------------------------------------------------------------------- yardsticks and scores

def copy_voxel(points: np.ndarray, stack: sitk.Image) -> np.ndarray:
    """Each node takes the value of the acquired stack's voxel it lies in (clamped to the grid)."""
    matrix = ijk_to_lps_matrix(stack)
    index = np.rint((points - matrix[:3, 3]) @ np.linalg.inv(matrix[:3, :3]).T).astype(np.int64)
    values = sitk.GetArrayFromImage(stack)
    size = np.array(stack.GetSize())
    index = np.clip(index, 0, size - 1)
    return values[index[:, 2], index[:, 1], index[:, 0]].astype(np.float64)


def in_footprint(points: np.ndarray, layer: SliceLayer) -> np.ndarray:
    """Nodes inside the slice's slab and pixel grid (the mapping's half-open footprints)."""
    index = layer.lps_to_index(points)
    i = np.floor(index[:, 0] + 0.5)
    j = np.floor(index[:, 1] + 0.5)
    rows, cols = layer.shape
    return (i >= 0) & (i < cols) & (j >= 0) & (j < rows) & layer.in_slab(index[:, 2])


def group_loss(field_values: np.ndarray, prepared: PreprocessingResult) -> float:
    """Mean squared error between each group's mean of ``field_values`` and its target (means
    weighted by the rows' slice-profile weights, as training forms them)."""
    _, inverse = np.unique(prepared.group_ids, return_inverse=True)
    means = group_means(field_values[prepared.node_ids], inverse, prepared.row_weights)[0]
    targets = group_means(prepared.intensities[:, 0], inverse, prepared.row_weights)[0]
    return float(np.mean((means - targets) ** 2))


def _auc(labels: np.ndarray, scores: np.ndarray) -> float | None:
    labels = np.asarray(labels, bool)
    return None if labels.all() or not labels.any() else round(float(roc_auc_score(labels, scores)), 4)


def scores(probability: np.ndarray, truth: np.ndarray, weights: np.ndarray | None = None) -> dict:
    """Dice at 0.5, best Dice and its threshold, AUC and volume error at 0.5."""
    thresholds = np.round(np.arange(0.01, 1.0, 0.01), 2)
    dices = [metrics.dice(probability, truth, t) for t in thresholds]
    best = int(np.argmax(dices))
    volume = metrics.volume_error(probability, truth, weights) if weights is not None else None
    return {"dice": round(metrics.dice(probability, truth, 0.5), 4), "best_dice": round(dices[best], 4),
            "best_threshold": float(thresholds[best]), "auc": _auc(truth >= 0.5, probability),
            "volume_error": None if volume is None else round(volume, 4)}


def yardsticks(case: Case, acquired: list[SliceLayer], nodes: np.ndarray | None = None) -> dict:
    """The no-learning reconstructions from ``acquired`` slices, scored on ``nodes`` (all by default)."""
    nodes = np.arange(len(case.points)) if nodes is None else nodes
    truth, weights = case.truth[nodes], case.weights[nodes]
    out = {"nearest_slice": scores(nearest_slice_baseline(case.points[nodes], acquired), truth, weights)}
    parallel = [layer for layer in acquired if abs(float(np.dot(layer.normal, acquired[0].normal))) > 1 - 1e-6]
    if len(parallel) >= 2:
        out["logodds"] = scores(logodds_baseline(case.points[nodes], parallel), truth, weights)
    return out


#: ``--prior-json``: ShapePrior fields overriding the library's defaults for every case.
PRIOR_OVERRIDES: dict = {}
#: ``--slice-profile``: the mapping's pixel model for every case (``prepare --slice-profile``).
MAPPING = {"slice_profile": "box"}


def with_prior_overrides(prepared: PreprocessingResult) -> PreprocessingResult:
    """``prepared`` with :data:`PRIOR_OVERRIDES` applied to its shape prior (if it has one)."""
    if not PRIOR_OVERRIDES or prepared.shape_prior is None:
        return prepared
    return dataclasses.replace(prepared, shape_prior=dataclasses.replace(prepared.shape_prior, **PRIOR_OVERRIDES))


def prepared_case(case: Case, slices: list[SliceLayer]) -> PreprocessingResult:
    """The training data of ``slices`` as ``cardioscar prepare`` writes it, the case's rule record
    included (what the fast preset's shape prior ``auto`` reads)."""
    prepared = with_prior_overrides(prepare_from_slices(case.points, slices, coverage_mesh=case.coverage_mesh,
                                                        slice_profile=MAPPING["slice_profile"]))
    prepared.scar_rule = case.scar_rule
    return prepared


def attempt_record(history: dict) -> list[list]:
    """Every training run behind ``history`` as ``[peak rate, epochs, final group loss, seed]``: more than
    one when a run died, failed, diverged, stalled or missed a scar patch and was trained again."""
    return [[a["max_lr"], a["epochs_run"], round(a["final_loss"], 5), a.get("seed")] for a in history.get("attempts", [])]


def ignored_record(history: dict) -> dict:
    """The kept fit's ignored groups (``training.IGNORED_GROUP_MISS``): how many, how many of them are
    scar targets called healthy, their share of the targets' variance, and each run's seed and share
    (the stall test, ``training.STALLED_FIT_FRACTION``, retries a run from the next seed)."""
    return {"ignored_groups": history.get("ignored_groups"), "ignored_scar_groups": history.get("ignored_scar_groups"),
            "ignored_share": None if history.get("ignored_share") is None else round(float(history["ignored_share"]), 5),
            "attempt_ignored": [[a.get("seed"), round(float(a["ignored_share"]), 5), a.get("ignored_scar_groups")]
                                for a in history.get("attempts", [])]}


def _reconstruct(case: Case, slices: list[SliceLayer], config: TrainingConfig, mc_samples: int, seed: int):
    start = time.perf_counter()
    prepared = prepared_case(case, slices)
    checkpoint = train_scar_model(prepared, dataclasses.replace(config, seed=seed))
    trained = time.perf_counter()
    result = predict_on_points(checkpoint, case.points, mc_samples=mc_samples, seed=seed)
    return prepared, checkpoint, result, trained - start, time.perf_counter() - trained


def run_case(case: Case, config: TrainingConfig | None = None, mc_samples: int = 10, seed: int = 0,
             residual_decays: tuple[float, ...] = (), dump_dir: Path | None = None) -> dict:
    """Reconstruct ``case`` with ``config`` (fast preset by default) and score it beside the yardsticks;
    with a shape prior and ``residual_decays``, also the same model applied with each residual decay (mm)."""
    config = config or TrainingConfig.fast()
    prepared, checkpoint, result, train_s, predict_s = _reconstruct(case, case.slices, config, mc_samples, seed)
    p, u = result.mean_predictions, result.std_predictions
    wrong = (p >= 0.5) != (case.truth >= 0.5)
    on_slices = np.zeros(len(case.points), bool)
    for layer in case.slices:
        on_slices |= in_footprint(case.points, layer)
    dropped = sum(int(np.isnan(layer.values).sum()) for layer in case.slices)
    line = {"case": case.name, **case.info, "nodes": len(case.points), "scar_nodes": int(case.truth.sum()),
            "groups": prepared.n_groups, "rows": prepared.n_nodes, "slice_profile": prepared.slice_profile,
            "nan_pixels": dropped, **scores(p, case.truth, case.weights),
            "uncertainty_auc_wrong": _auc(wrong, u), "margin_auc_wrong": _auc(wrong, -np.abs(p - 0.5)),
            "uncertainty_on_slices": round(float(u[on_slices].mean()), 5),
            "uncertainty_between": round(float(u[~on_slices].mean()), 5) if (~on_slices).any() else None,
            **_risk_scores(result.error_risk, wrong, on_slices),
            "group_loss_fit": round(group_loss(p, prepared), 5),
            "group_loss_best_history": round(float(checkpoint["history"]["best_loss"]), 5),
            "group_loss_truth": round(group_loss(case.truth_fraction, prepared), 5),
            "group_loss_truth_binary": round(group_loss(case.truth, prepared), 5),   # the yardstick for 0/1 labels
            "epochs": int(checkpoint["history"]["epochs_run"]),
            "shape_prior_used": bool(checkpoint.get("shape_prior")),  # what an 'auto' config chose
            # the convergence test (TrainingConfig.convergence_tolerance): why the run ended, phases added,
            # the last relative fall of the dropout-free group loss over a schedule's tail
            "stop_reason": checkpoint["history"].get("stop_reason"),
            "extensions": checkpoint["history"].get("extensions"),
            "convergence_fall": checkpoint["history"].get("convergence_fall"),
            # every training run (a dead, failed, diverged or stalled one is retried): its peak rate, epochs,
            # final group loss and seed (appended last, so the first three read as in older result files)
            "attempts": attempt_record(checkpoint["history"]),
            # the kept run's late rise (training.DIVERGED_FRACTION): how far its last epochs stayed above its best
            "late_rise": None if checkpoint["history"].get("late_rise") is None
            else round(float(checkpoint["history"]["late_rise"]), 5),
            **ignored_record(checkpoint["history"]),
            "train_s": round(train_s, 1), "predict_s": round(predict_s, 1)}
    sticks = yardsticks(case, case.acquired)
    if case.stack is not None:
        sticks["copy_voxel"] = scores(copy_voxel(case.points, case.stack), case.truth, case.weights)
    for name, values in sticks.items():
        line.update({f"{name}_{k}": v for k, v in values.items() if k in ("dice", "best_dice", "auc", "volume_error")})
    if dump_dir is not None:
        dump_nodes(dump_dir, case, prepared, result, on_slices)
    if residual_decays and checkpoint.get("shape_prior"):
        line["residual_decay_sweep"] = {decay: scores(swept, case.truth, case.weights) for decay, swept
                                        in _decay_sweep(checkpoint, case.points, residual_decays, mc_samples, seed)}
    return line


def dump_nodes(folder: Path, case: Case, prepared: PreprocessingResult, result, on_slices: np.ndarray) -> None:
    """Write ``<case>.npz`` in ``folder`` (``--dump-dir``): each node's position, probability, MC-dropout
    std, truth, whether it lies on a slab and whether a group constrains it, for
    ``error_risk_study.py``."""
    constrained = np.zeros(len(case.points), bool)
    constrained[np.unique(prepared.node_ids)] = True
    np.savez_compressed(folder / f"{case.name}.npz", points=case.points, p=result.mean_predictions,
                        std=result.std_predictions, truth=case.truth, truth_fraction=case.truth_fraction,
                        on_slices=on_slices, constrained=constrained)


def _risk_scores(risk: np.ndarray | None, wrong: np.ndarray, on_slices: np.ndarray) -> dict:
    """``scar_error_risk`` (cardioscar.predict.error_risk) scored like the uncertainty: AUC for wrong
    at 0.5, mean on the slices and between them."""
    if risk is None:
        return {}
    return {"risk_auc_wrong": _auc(wrong, risk), "risk_on_slices": round(float(risk[on_slices].mean()), 5),
            "risk_between": round(float(risk[~on_slices].mean()), 5) if (~on_slices).any() else None}


def held_out_index(case: Case) -> int:
    """Of the parallel slices that hold myocardium (some finite target), the one nearest the
    middle whose acquired values show scar (>= 0.5), so the held-out slab has scar to find."""
    useful = [k for k in case.parallel if np.isfinite(case.slices[k].values).any()]
    middle = len(useful) // 2
    by_distance = sorted(range(len(useful)), key=lambda r: (abs(r - middle), r))
    with_scar = [useful[r] for r in by_distance if np.nanmax(case.acquired[useful[r]].values) >= 0.5]
    return with_scar[0] if with_scar else useful[middle]


def run_loso(case: Case, config: TrainingConfig | None = None, mc_samples: int = 10, seed: int = 0,
             held_out: int | None = None, residual_decays: tuple[float, ...] = (), dump_dir: Path | None = None) -> dict:
    """Leave one (middle) slice out: train on the rest, score the held-out slab's nodes; with a
    shape prior and ``residual_decays``, also the same model applied with each residual decay (mm)."""
    config = config or TrainingConfig.fast()
    held_out = held_out_index(case) if held_out is None else held_out
    keep = [k for k in range(len(case.slices)) if k != held_out]
    nodes = np.flatnonzero(in_footprint(case.points, case.slices[held_out]))
    prepared, checkpoint, result, train_s, _ = _reconstruct(case, [case.slices[k] for k in keep], config, mc_samples,
                                                            seed)
    if dump_dir is not None:
        on_slices = np.zeros(len(case.points), bool)
        for k in keep:
            on_slices |= in_footprint(case.points, case.slices[k])
        dump_nodes(dump_dir, dataclasses.replace(case, name=f"{case.name}_loso"), prepared, result, on_slices)
    p = result.mean_predictions[nodes]
    truth = case.truth[nodes]
    line = {"case": case.name, "loso": True, **case.info, "held_out": case.slices[held_out].label,
            "held_out_nodes": int(len(nodes)), "held_out_scar_nodes": int(truth.sum()),
            "dice": round(metrics.dice(p, truth, 0.5), 4), "auc": _auc(truth >= 0.5, p),
            "mean_probability_on_scar": round(float(p[truth >= 0.5].mean()), 4) if truth.any() else None,
            # every training run, as run_case lists them (a retried run shows as a second seed)
            "attempts": attempt_record(checkpoint["history"]),
            "train_s": round(train_s, 1)}
    remaining = [case.acquired[k] for k in keep if k in case.parallel] or [case.acquired[k] for k in keep]
    for name, values in yardsticks(case, remaining, nodes).items():
        line.update({f"{name}_{k}": values[k] for k in ("dice", "auc")})
    prior = build_shape_prior([case.slices[k] for k in keep])  # the shape prior alone, as a yardstick
    if prior is not None:
        q = 1.0 / (1.0 + np.exp(-prior.logit(case.points[nodes])))
        line.update(shape_prior_dice=round(metrics.dice(q, truth, 0.5), 4), shape_prior_auc=_auc(truth >= 0.5, q))
    if residual_decays and checkpoint.get("shape_prior"):
        line["residual_decay_sweep"] = {
            decay: {"dice": round(metrics.dice(swept, truth, 0.5), 4), "auc": _auc(truth >= 0.5, swept)}
            for decay, swept in _decay_sweep(checkpoint, case.points[nodes], residual_decays, mc_samples, seed)}
    return line


def with_margin(case: Case, margin_px: int) -> Case:
    """The case with pixels outside the myocardium but within ``margin_px`` of it given their
    nearest myocardium pixel's value (``restrict_to_myocardium(margin_px=...)``) instead of NaN."""
    masks = [np.isfinite(layer.values) for layer in case.slices]
    slices, _ = restrict_to_myocardium(case.acquired, masks, "benchmark", margin_px)
    return dataclasses.replace(case, slices=slices, info=case.info | {"myocardium_margin_px": margin_px})


def _decay_sweep(checkpoint: dict, points: np.ndarray, decays: tuple[float, ...], mc_samples: int, seed: int):
    """``(decay, probability)`` of the trained model applied to ``points`` with each residual decay of
    its shape prior (the weight acts only when applying: one training serves every decay)."""
    for decay in decays:
        yield str(decay), predict_on_points(with_residual_decay(checkpoint, decay), points, mc_samples=mc_samples,
                                            seed=seed).mean_predictions


def plain_targets(case: Case) -> Case:
    """The case trained as a user without a myocardium mask would today: the acquired values,
    0 outside the myocardium, are all targets (what issue 18 found to under-call the scar)."""
    return dataclasses.replace(case, name=case.name + "_plain", slices=case.acquired, info=case.info | {"targets": "plain"})


# --------------------------------------------------------------------------- command line

def add_slice_profile_argument(parser: argparse.ArgumentParser) -> None:
    """``--slice-profile box|gaussian``: the mapping's pixel model (sets :data:`MAPPING`)."""
    parser.add_argument("--slice-profile", choices=SLICE_PROFILES, default="box",
                        help="the mapping's through-plane pixel model (prepare --slice-profile)")


def _parse_seeds(text: str) -> list[int]:
    seeds: list[int] = []
    for part in text.split(","):
        if "-" in part:
            a, b = part.split("-")
            seeds.extend(range(int(a), int(b) + 1))
        elif part.strip():
            seeds.append(int(part))
    return seeds


def cases(families: list[str], seeds: list[int], nodes: int, loso: bool):
    """Yield the cases of the chosen families (lazily: each is built just before it runs)."""
    gaps = (10.0, 13.0) if loso else (None,)
    for gap in gaps:
        if "segmented" in families:
            for seed in seeds:
                variant, mesh_type = VARIANT_CYCLE[seed % len(VARIANT_CYCLE)]
                yield lambda s=seed, v=variant, m=mesh_type, g=gap: segmented_case(s, v, m, nodes, slice_gap_mm=g)
        if "demo" in families:
            yield lambda g=gap: demo_case(0, nodes, slice_gap_mm=g)
    if "acdc" in families:
        yield lambda: acdc_case(0)
    if "bivme" in families:
        yield lambda: bivme_case(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("fast", "documented"), default="fast")
    parser.add_argument("--seeds", default="0-7", help="segmented-family seeds, e.g. 0-7 or 0,3,5")
    parser.add_argument("--families", default="segmented,demo,acdc,bivme")
    parser.add_argument("--nodes", type=int, default=40000, help="phantom mesh size")
    parser.add_argument("--quick", action="store_true", help="12k-node phantoms, seeds 0-3, 5 MC samples")
    parser.add_argument("--loso", action="store_true", help="leave-one-slice-out instead of the full reconstruction")
    parser.add_argument("--mc-samples", type=int, default=10)
    parser.add_argument("--config-json", help='TrainingConfig fields overriding the preset, inline JSON, e.g. '
                                              '\'{"shape_prior": false}\'')
    parser.add_argument("--targets", choices=("masked", "plain"), default="masked",
                        help="masked: pixels outside the myocardium carry no constraint (NaN); plain: they are "
                             "targets of 0, as a plain scar map is used today")
    parser.add_argument("--myocardium-margin", type=int, default=0,
                        help="masked targets: pixels within this many pixels outside the myocardium take their "
                             "nearest myocardium pixel's value instead of NaN (restrict_to_myocardium margin_px)")
    parser.add_argument("--residual-decays", default="",
                        help="with the shape prior: also score the trained model applied with each of these "
                             "residual decays in mm (comma-separated, inf = residual everywhere)")
    parser.add_argument("--prior-json", help='with the shape prior: ShapePrior fields overriding the defaults, inline '
                                             'JSON, e.g. \'{"slab_scale": 0.5}\' or \'{"clip_logit": 1.5, "alpha_mm": 4}\'')
    parser.add_argument("--train-seed", type=int, default=0, help="training and MC-dropout seed")
    add_slice_profile_argument(parser)
    parser.add_argument("--dump-dir", type=Path, help="write each case's per-node arrays there (dump_nodes)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    PRIOR_OVERRIDES.update(json.loads(args.prior_json) if args.prior_json else {})
    MAPPING["slice_profile"] = args.slice_profile
    seeds, nodes, mc = _parse_seeds(args.seeds), args.nodes, args.mc_samples
    if args.quick:
        seeds, nodes, mc = seeds[:4], 12000, 5
    families = [f.strip() for f in args.families.split(",") if f.strip()]
    overrides = json.loads(args.config_json) if args.config_json else {}
    config = TrainingConfig.fast(**overrides) if args.preset == "fast" else TrainingConfig(**overrides)
    run = run_loso if args.loso else run_case
    for build in cases(families, seeds, nodes, args.loso):
        start = time.perf_counter()
        case = build()
        decays = tuple(float(v) for v in args.residual_decays.split(",") if v)
        if args.targets == "plain":
            case = plain_targets(case)
        elif args.myocardium_margin:
            case = with_margin(case, args.myocardium_margin)
        line = run(case, config, mc_samples=mc, seed=args.train_seed, residual_decays=decays, dump_dir=args.dump_dir)
        line["preset"] = args.preset
        line["shape_prior"] = config.shape_prior
        if config.shape_prior:
            line["prior_overrides"] = PRIOR_OVERRIDES
        line["total_s"] = round(time.perf_counter() - start, 1)
        print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
