"""Orchestrators and data contracts: the documented Python API of CardioScar.

Each documented function (``prepare_training_data``, ``train_scar_model``, ``apply_scar_model``,
...) keeps the signature of the tool our users already script against. Each file-based function
is a thin shell around an in-memory twin (``prepare_from_slices``, ``predict_on_points``) that
the 3D Slicer Logic calls with node data, so the command line, the Python API and Slicer run the
same code on the same numbers.
"""

from __future__ import annotations

import datetime
import importlib
import logging
import math
import numbers
import platform
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, List, Optional, Union

import numpy as np
import vtk

from cardioscar import __version__
from cardioscar.io.atomic import atomic_write
from cardioscar.io.checks import (check_format_version, check_label_list, check_mesh_points, check_not_an_input,
                                   check_output_path, check_seed, check_threshold, check_training_data_file)
from cardioscar.errors import CardioScarError, in_log_format
from cardioscar.lge.prepare import ScarRuleRequest, rule_record_json, rule_targets
from cardioscar.prepare.mapping import SLICE_PROFILES, check_slice_profile, map_slices_to_nodes
from cardioscar.io.meshio import (BINARY_TARGETS, GRADED_TARGETS, MESH_SUFFIXES, SCAR_LABELS_ARRAY,
                                  SCAR_RULE_ARRAY, TRAINING_TARGETS_ARRAY, Mesh,
                                  is_vtk_file, read_mesh, set_text_field, write_mesh)
from cardioscar.predict.meshscale import (check_inside_training_box, check_same_scale, mesh_sample, node_spacing,
                                          warn_if_another_heart)
from cardioscar.prepare.myocardium import (MyocardiumReport, check_margin, label_masks, masks_from_image, no_restriction,
                                           read_mask_image, restrict_to_myocardium, warn_normalised_mesh_mostly_scar,
                                           warn_scar_map_on_the_mesh)
from cardioscar.fit.normalization import fit_scaler, normalize
from cardioscar.prepare.partial_volume import DEFAULT_MIN_COVERAGE, correct_targets, myocardial_coverage, require_volumetric
from cardioscar.shape_prior import ShapePrior, build_shape_prior
from cardioscar.simulation.opencarp import TAG_ARRAY, drop_earlier_result_fields, drop_stale_tissue_tags
from cardioscar.shape_prior.use import fit_to_rows, node_prior, npz_entries, prior_from_npz, training_prior
from cardioscar.prepare.slices import RECORDED, SliceLayer, per_slice_text, slice_from_vtk_grid, slices_from_paths
from cardioscar.prepare.targets import check_scar_labels, reading_for_scoring, slice_targets, warn_scar_free
from cardioscar.predict.error_risk import ERROR_RISK_FIELD, error_risk

if TYPE_CHECKING:  # at run time these are bound on first use, by _bind_torch_side
    import torch
    from cardioscar.fit.checkpoint import (DEFAULT_ARCHITECTURE, build_checkpoint, load_checkpoint,
                                           model_from_checkpoint, save_checkpoint)
    from cardioscar.fit.devices import as_device
    from cardioscar.fit.training import TrainingConfig, TrainingProgress, config_used, describe_stop, fit_scar_field
    from cardioscar.predict.inference import mc_dropout_predict

#: The names this module takes from the modules that import torch, by module. They are bound as
#: module attributes on first use (:func:`_bind_torch_side`; ``cardioscar.logic.NAME`` from outside
#: binds them too), not at import: torch's import cost 1.6-1.9 s at the start of every command,
#: and ``prepare``, ``evaluate --truth-image`` and ``cohort status`` never train or predict. The
#: functions look them up as module attributes at call time, so a patch of one (a test's
#: ``monkeypatch.setattr(cardioscar.logic, "mc_dropout_predict", ...)``) is what they run.
_TORCH_SIDE = {
    "cardioscar.fit.checkpoint": ("DEFAULT_ARCHITECTURE", "build_checkpoint", "load_checkpoint",
                                  "model_from_checkpoint", "save_checkpoint"),
    "cardioscar.fit.devices": ("as_device",),
    "cardioscar.fit.training": ("TrainingConfig", "TrainingProgress", "config_used", "describe_stop", "fit_scar_field"),
    "cardioscar.predict.inference": ("mc_dropout_predict",),
}
_TORCH_NAMES = frozenset({"torch"}.union(*_TORCH_SIDE.values()))


def _bind_torch_side() -> None:
    """Import torch and the :data:`_TORCH_SIDE` names into this module; a name already set (by an
    earlier call, or patched) is left as it is."""
    names = globals()
    names.setdefault("torch", importlib.import_module("torch"))
    for module, attributes in _TORCH_SIDE.items():
        for attribute in attributes:
            if attribute not in names:
                names[attribute] = getattr(importlib.import_module(module), attribute)


def __getattr__(name: str):
    """``cardioscar.logic.NAME`` for a torch-side name not bound yet (``from cardioscar.logic import
    TrainingConfig``, ``import *``, a patch): binds them all, as the first training or prediction does."""
    if name in _TORCH_NAMES:
        _bind_torch_side()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    """Every name, the torch-side ones unbound or not (``dir``, ``help``, completion list them all)."""
    return sorted(_TORCH_NAMES.union(globals()))


logger = logging.getLogger(__name__)


__all__ = [
    "PreprocessingRequest",
    "PreprocessingResult",
    "InferenceRequest",
    "InferenceResult",
    "TrainingConfig",
    "prepare_training_data",
    "prepare_from_slices",
    "save_preprocessing_result",
    "load_preprocessing_result",
    "train_scar_model",
    "fine_tune_scar_model",
    "save_trained_model",
    "load_trained_model",
    "apply_scar_model",
    "predict_on_points",
    "check_mesh_for_checkpoint",
    "save_inference_result",
    "evaluate_on_slices",
    "score_on_slices",
]

#: Version of the ``.npz`` layout written by :func:`save_preprocessing_result`.
TRAINING_DATA_FORMAT = 2
_REQUIRED_NPZ_KEYS = ("coordinates", "intensities", "group_ids", "group_sizes", "scaler_min", "scaler_max")
_VALID_AXES = ("x", "y", "z")

ProgressCallback = Callable[["TrainingProgress"], None]
CancelHook = Callable[[], bool]


@dataclass
class PreprocessingRequest:
    """What to map: a mesh and either VTK grid layers or images with chosen slices.

    ``image_path`` is one image (file or DICOM series folder) or a list of them, e.g. one series
    per breath-hold slice plus the long-axis views; ``slice_indices`` then count the slices of all
    images in the order given.

    ``slice_thickness_padding`` is the slab half-width in mm along each slice's normal, or
    ``"auto"``: half the slice thickness each DICOM file records (per file, so series of several
    thicknesses pooled together each keep their own).
    ``scar_labels`` turns a label map into 0/1 targets; ``normalize_intensities`` min-max scales
    raw LGE intensities (the existing tool's behaviour, now only on request).
    ``partial_volume_correction`` divides each target by the myocardial fraction of its pixel box
    (for slice values that are fractions of the whole box; needs a volumetric mesh), see
    :mod:`cardioscar.partial_volume`.
    ``myocardium_labels`` / ``myocardium_mask`` say where the myocardium is: pixels outside it
    carry no constraint (:mod:`cardioscar.myocardium`). With a label map, the labels of its
    myocardium (EMIDEC 2,3,4; ACDC 2); with ``myocardium_mask`` (a 0/1 image, or a label image
    read with ``myocardium_labels``) for any slice values. ``myocardium_margin_px``: pixels
    outside the myocardium within that many pixels of it take the nearest myocardium pixel's
    value instead of carrying no constraint (for a mesh up to a pixel off the segmentation;
    :func:`cardioscar.myocardium.restrict_to_myocardium`); 0 = none, as before.
    ``slice_profile``: the pixel's through-plane model, ``"box"`` (the slab, every node weighted 1;
    the default) or ``"gaussian"`` (the scanner's smooth profile, FWHM the slab's full width:
    each row weighted by it, the footprint twice as deep; :mod:`cardioscar.prepare.mapping`).
    """

    mesh_path: Path
    slice_thickness_padding: Union[float, str] = 5.0
    vtk_grid_paths: Optional[List[Path]] = None
    vtk_scalar_field: str = "ScalarValue"
    image_path: Optional[Union[Path, List[Path]]] = None
    slice_axis: str = "z"
    slice_indices: Optional[List[int]] = None
    scar_labels: Optional[List[int]] = None
    normalize_intensities: bool = False
    scar_rule: Optional[ScarRuleRequest] = None  # raw LGE -> targets by a scar rule (cardioscar.lge)
    partial_volume_correction: bool = False
    myocardium_labels: Optional[List[int]] = None
    myocardium_mask: Optional[Path] = None
    myocardium_margin_px: int = 0
    slice_profile: str = "box"

    def __post_init__(self) -> None:
        check_slice_profile(self.slice_profile)
        has_grids = bool(self.vtk_grid_paths)
        has_image = self.image_path is not None
        if has_grids == has_image:
            raise CardioScarError("Give exactly one slice source: VTK grid layers (--grid-layers) or an image (--image).")
        if self.slice_thickness_padding == RECORDED:
            if has_grids:
                raise CardioScarError("slice_thickness_padding 'auto' takes each DICOM file's slice thickness; VTK grid "
                                      "layers record none: give the slab half-width in mm.")
        elif not (isinstance(self.slice_thickness_padding, numbers.Real) and self.slice_thickness_padding > 0):
            raise CardioScarError(f"slice_thickness_padding must be > 0 mm (the slab half-width) or 'auto' (half of each "
                                  f"DICOM file's slice thickness), got {self.slice_thickness_padding!r}.")
        self.scar_labels = check_label_list(self.scar_labels, "scar_labels", "[3, 4]")
        self.myocardium_labels = check_label_list(self.myocardium_labels, "myocardium_labels", "[2, 3, 4]")
        if self.scar_rule is not None:
            self._give_the_rule_its_myocardium()
        check_margin(self.myocardium_margin_px)
        if self.myocardium_margin_px and self.myocardium_labels is None and self.myocardium_mask is None:
            raise CardioScarError("--myocardium-margin widens a myocardium: give --myocardium-labels (a label map) or "
                                  "--myocardium-mask FILE too")
        if self.myocardium_margin_px and self.scar_rule is not None:
            raise CardioScarError("--myocardium-margin has no effect with --scar-rule: the rule grades myocardium pixels "
                                  "only, so no pixel next to it has a value to widen; leave the margin out")
        if self.scar_rule is not None and (not has_image or self.scar_labels or self.normalize_intensities):
            # here, not where the slices are read: a cohort manifest is checked whole before anything runs
            raise CardioScarError("--scar-rule needs the raw LGE as --image, without --scar-labels or "
                                  "--normalize-intensities")
        if self.myocardium_labels is not None and self.myocardium_mask is None:
            if self.scar_labels is None:
                raise CardioScarError("--myocardium-labels without --myocardium-mask names labels of the image itself, "
                                      "so the image must be a label map: give --scar-labels too (e.g. --scar-labels 3,4 "
                                      "--myocardium-labels 2,3,4), or the mask file with --myocardium-mask")
            outside = sorted(set(self.scar_labels) - set(self.myocardium_labels))
            if outside:
                raise CardioScarError(f"--scar-labels {','.join(map(str, outside))} not in --myocardium-labels "
                                      f"{','.join(map(str, self.myocardium_labels))}: scar is myocardium; list it in both")
        if self.myocardium_mask is not None:
            self.myocardium_mask = Path(self.myocardium_mask)
        if self.slice_axis not in _VALID_AXES:
            raise CardioScarError(f"slice_axis must be one of x, y, z (image index axes i, j, k), got {self.slice_axis!r}.")
        self.mesh_path = Path(self.mesh_path)
        if has_image:
            paths = [self.image_path] if isinstance(self.image_path, (str, Path)) else list(self.image_path)
            if not paths:
                raise CardioScarError("image_path is an empty list; give one or more image files or DICOM series folders.")
            self.image_path = Path(paths[0]) if len(paths) == 1 else [Path(p) for p in paths]
        else:
            self.vtk_grid_paths = [Path(p) for p in self.vtk_grid_paths]

    def _give_the_rule_its_myocardium(self) -> None:
        """One myocardium mask (and its labels) for the slices and the rule: given on this request or
        on its ``scar_rule`` (the API needed it on both), the other takes it; two that differ are refused.
        Said in the API's field names: the command line and the cohort refuse a rule without a mask first."""
        rule = self.scar_rule
        if not isinstance(rule, ScarRuleRequest):
            raise CardioScarError(f"scar_rule must be a ScarRuleRequest (e.g. ScarRuleRequest(rule='nsd')), got {rule!r}")
        mask = _one_of(self.myocardium_mask, rule.myocardium_path, "myocardium_mask", "myocardium_path",
                       lambda path: Path(path).resolve())
        if mask is None:
            raise CardioScarError("scar_rule needs the myocardium: give PreprocessingRequest.myocardium_mask (the mask "
                                  "or label map file, with myocardium_labels for a label map, e.g. [2, 3, 4])")
        self.myocardium_labels = _one_of(self.myocardium_labels, rule.myocardium_labels, "myocardium_labels",
                                         "myocardium_labels", lambda labels: sorted(labels))
        self.myocardium_mask = Path(mask)
        self.scar_rule = rule.on_myocardium(self.myocardium_mask, self.myocardium_labels)

    @property
    def image_paths(self) -> List[Path]:
        """The images to cut, as a list (empty without an image)."""
        if self.image_path is None:
            return []
        return [self.image_path] if isinstance(self.image_path, Path) else list(self.image_path)


def _one_of(request_value, rule_value, request_field: str, rule_field: str, key: Callable):
    """The value given on the PreprocessingRequest or on its scar_rule (None: neither); refused when both
    are given and differ (compared by ``key``)."""
    if request_value is None or rule_value is None:
        return rule_value if request_value is None else request_value
    if key(request_value) != key(rule_value):
        raise CardioScarError(f"PreprocessingRequest.{request_field} {request_value} and its "
                              f"scar_rule.{rule_field} {rule_value} differ: give it once, as "
                              f"PreprocessingRequest.{request_field} (the rule takes it from there)")
    return request_value


@dataclass
class PreprocessingResult:
    """Training rows: one row per (mesh node, group) pair, sorted by group.

    The documented fields come first. ``node_ids`` says which mesh node each row is, so a node
    covered by two slabs appears in both groups; the scaler is fitted on every mesh node so that
    inference never extrapolates outside the normalised cube. ``row_weights`` (K,): each row's
    slice-profile weight in its group's mean (``slice_profile`` ``"gaussian"``); ``None``: the box,
    every row weighted 1 (and files written before the profile existed).
    """

    coordinates: np.ndarray
    intensities: np.ndarray
    group_ids: np.ndarray
    group_sizes: np.ndarray
    scaler_min: np.ndarray
    scaler_max: np.ndarray
    n_nodes: int
    n_groups: int
    node_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    n_mesh_nodes: int = 0
    group_slice: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    group_pixel: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.int64))
    slice_labels: List[str] = field(default_factory=list)
    partial_volume_correction: bool = False
    group_coverage: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))  # (M,) if corrected
    myocardium_source: str = ""  # what said where the myocardium is ("" = every pixel constrains)
    dropped_outside_myocardium: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # (S,)
    scar_rule: str = ""  # JSON record of the scar rule that made the targets (cardioscar.lge), if any
    scar_labels: str = ""  # the label map's labels that made the scar targets ("3,4"), if any
    shape_prior: Optional[ShapePrior] = None  # the slices' shape prior (cardioscar.shape_prior), if any
    # the scaler spans every mesh node (ours); False for the reference tool's files (in-slice nodes only)
    scaler_spans_mesh: bool = True
    slice_profile: str = "box"
    row_weights: Optional[np.ndarray] = None
    # (S, 3) float32 LPS mm: a fixed sample of the mesh's nodes (meshscale.mesh_sample), kept by the
    # checkpoint so that apply can name another heart; None: files written before it
    mesh_sample: Optional[np.ndarray] = None
    # the targets whose mixed groups (the reference tool's layout) the loader warned about: training
    # these same targets in memory does not say it again (a script's load, then train, said it twice)
    warned_targets: Optional[np.ndarray] = field(default=None, repr=False, compare=False)

    @property
    def group_targets(self) -> np.ndarray:
        """(M,) target of each group (rows are sorted by group, so each group's first row)."""
        starts = np.r_[0, np.cumsum(self.group_sizes)[:-1]].astype(np.int64)
        return self.intensities[starts, 0]

    @property
    def n_covered_nodes(self) -> int:
        """Distinct mesh nodes inside at least one footprint."""
        return int(np.unique(self.node_ids).size)


@dataclass
class InferenceRequest:
    """Request to apply a trained model to a mesh (documented contract)."""

    model_checkpoint_path: Path
    mesh_path: Path
    mc_samples: int = 10
    batch_size: int = 50000
    threshold: Optional[float] = None


@dataclass
class InferenceResult:
    """Per-node MC-dropout mean and population std, plus the optional thresholded map."""

    mean_predictions: np.ndarray
    std_predictions: np.ndarray
    binary_predictions: Optional[np.ndarray]
    n_nodes: int
    mean_scar_probability: float
    mean_uncertainty: float
    threshold: Optional[float] = None
    mc_samples: int = 10
    error_risk: Optional[np.ndarray] = None  # see cardioscar.error_risk; None: not computed
    #: the checkpoint's ``dataset_info.targets`` ("0/1" or "graded"); None for older checkpoints
    training_targets: Optional[str] = None
    #: the checkpoint's scar-rule record (``provenance["scar_rule"]``, JSON); None: trained without a rule
    scar_rule: Optional[str] = None
    #: the labels the checkpoint's model learned as its targets (``provenance["scar_labels"]``, "3,4"); None: no labels
    scar_labels: Optional[str] = None

    def point_arrays(self) -> dict:
        """The arrays written onto the mesh, under their documented names."""
        arrays = {
            "scar_probability": self.mean_predictions.astype(np.float32),
            "scar_uncertainty": self.std_predictions.astype(np.float32),
        }
        if self.binary_predictions is not None:
            arrays["scar_binary"] = self.binary_predictions.astype(np.uint8)
        if self.error_risk is not None:  # float64: see cardioscar.predict.error_risk
            arrays[ERROR_RISK_FIELD] = self.error_risk.astype(np.float64)
        return arrays


# --------------------------------------------------------------------------- preparation


def _load_slices(request: PreprocessingRequest,
                 slices: Optional[List[SliceLayer]] = None) -> tuple[List[SliceLayer], MyocardiumReport, str]:
    """The target slices, the myocardium report and, when a scar rule made the targets, its JSON record.
    ``slices``: the image's chosen slices, already read (a 2D truth image placed: :func:`_truth_plane`)."""
    padding = request.slice_thickness_padding
    if slices is None and request.image_path is not None:
        slices = slices_from_paths(request.image_paths, request.slice_axis, request.slice_indices, padding)
    elif slices is None:
        slices = [slice_from_vtk_grid(p, request.vtk_scalar_field, padding) for p in request.vtk_grid_paths]
    masks, source, read = None, "", {}
    if request.myocardium_mask is not None:
        image = read_mask_image(request.myocardium_mask, slices)
        read[Path(request.myocardium_mask).resolve()] = image
        masks = masks_from_image(image, slices, request.myocardium_labels, source=str(request.myocardium_mask))
        source = f"mask {request.myocardium_mask}" + (
            f" labels {','.join(map(str, request.myocardium_labels))}" if request.myocardium_labels else "")
    elif request.myocardium_labels is not None:
        masks = label_masks(slices, request.myocardium_labels)
        source = f"labels {','.join(map(str, request.myocardium_labels))}"
    rule_record = ""
    if request.scar_rule is not None:
        targets, rule = rule_targets(request.scar_rule, slices, masks, Path(request.myocardium_mask).name, read)
        rule_record = rule_record_json(rule, request.scar_rule.target)
    else:
        targets = slice_targets(slices, scar_labels=request.scar_labels, normalize=request.normalize_intensities,
                                require_scar=masks is None)
        if request.scar_labels is not None:
            check_scar_labels(slices, request.scar_labels)
            if masks is not None:
                given_mask = request.myocardium_mask is not None
                warn_scar_free(slices, request.scar_labels, None if given_mask else request.myocardium_labels,
                               masks if given_mask else None)
    if masks is None:
        return targets, no_restriction(targets), rule_record
    margin = request.myocardium_margin_px
    if margin:
        source += f" margin {margin} px"
    return (*restrict_to_myocardium(targets, masks, source, margin, scar_map=not request.normalize_intensities,
                                    counted=slices if rule_record else None, rule_grades=bool(rule_record)), rule_record)


def prepare_from_slices(
    points_lps: np.ndarray,
    slices: List[SliceLayer],
    *,
    coverage_mesh: Optional[Union[Mesh, vtk.vtkDataSet]] = None,
    min_coverage: float = DEFAULT_MIN_COVERAGE,
    scar_targets: bool = True,
    slice_profile: str = "box",
    myocardium_given: bool = False,
) -> PreprocessingResult:
    """Map mesh nodes (LPS mm) to slice pixels and build normalised training rows.

    ``slices`` must already hold targets in [0, 1] (see :func:`cardioscar.targets.slice_targets`).
    With a ``coverage_mesh`` (the volumetric mesh of ``points_lps``: a :class:`Mesh`, or a VTK
    dataset in LPS) the targets are partial-volume corrected and groups whose box is less than
    ``min_coverage`` myocardium are dropped (:mod:`cardioscar.partial_volume`). ``scar_targets``
    False: the slices hold normalised raw intensities (``normalize_intensities``), not scar
    targets (see :func:`cardioscar.prepare.mapping.map_slices_to_nodes`). ``slice_profile``: the
    pixel's through-plane model (``box`` or ``gaussian``, same function); the partial-volume
    coverage stays that of the box. ``myocardium_given``: the targets are NaN outside a myocardium
    (mask or labels), which the mesh refusals then judge (see :func:`map_slices_to_nodes`).
    """
    points_lps = check_mesh_points(points_lps)
    mapping = map_slices_to_nodes(points_lps, slices, scar_targets=scar_targets, slice_profile=slice_profile,
                                  myocardium_given=myocardium_given)
    _log_pixels_without_a_node(slices, mapping.group_slice)
    if not scar_targets and not myocardium_given:
        # without a myocardium the mesh's own pixels are the myocardium's: EMIDEC P001's raw PSIR stack
        # normalised trained 99.98 % of its 72,359 rows as scar, exit 0, without a word (round 15)
        warn_normalised_mesh_mostly_scar(mapping.group_values)
    elif not myocardium_given:
        warn_scar_map_on_the_mesh(slices, mapping.group_values)
    coverage = np.zeros(0, dtype=np.float64)
    if coverage_mesh is not None:
        dataset, space = (coverage_mesh.dataset, coverage_mesh.space) if isinstance(coverage_mesh, Mesh) else (coverage_mesh, "LPS")
        if dataset.GetNumberOfPoints() != len(points_lps):
            raise CardioScarError(
                f"The coverage mesh has {dataset.GetNumberOfPoints()} nodes but {len(points_lps)} points were given; pass the same mesh.")
        raw_coverage = myocardial_coverage(dataset, slices, mapping.group_slice, mapping.group_pixel, space=space)
        mapping, coverage = correct_targets(mapping, raw_coverage, min_coverage)
    scaler_min, scaler_max = fit_scaler(points_lps)
    coordinates = normalize(points_lps[mapping.node_ids], scaler_min, scaler_max).astype(np.float32)
    intensities = mapping.group_values[mapping.group_ids].astype(np.float32).reshape(-1, 1)
    result = PreprocessingResult(
        coordinates=coordinates,
        intensities=intensities,
        group_ids=mapping.group_ids.astype(np.int64),
        group_sizes=mapping.group_sizes.astype(np.int64),
        scaler_min=np.asarray(scaler_min, dtype=np.float64),
        scaler_max=np.asarray(scaler_max, dtype=np.float64),
        n_nodes=int(mapping.n_rows),
        n_groups=int(mapping.n_groups),
        node_ids=mapping.node_ids.astype(np.int64),
        n_mesh_nodes=int(len(points_lps)),
        group_slice=mapping.group_slice.astype(np.int64),
        group_pixel=mapping.group_pixel.astype(np.int64),
        slice_labels=[s.label for s in slices],
        partial_volume_correction=coverage_mesh is not None,
        group_coverage=coverage,
        shape_prior=build_shape_prior(slices),
        slice_profile=mapping.slice_profile,
        row_weights=mapping.row_weights,
        mesh_sample=mesh_sample(points_lps),
    )
    return result


def _log_pixels_without_a_node(slices: List[SliceLayer], group_slice: np.ndarray) -> None:
    """Say, per slice, how many pixels with a target became a group and how many were dropped as no
    mesh node lies in their slab. Why: a coarse mesh under fine pixels drops most of them (EMIDEC
    P005 at 2.5 mm under 1.48 mm pixels: 2 of 3), which is expected, but a slice that drops all of
    them constrains nothing, and the per-slice figures are where a user sees which slice that is."""
    valued = np.array([int(np.isfinite(layer.values).sum()) for layer in slices], dtype=np.int64)
    used = np.bincount(group_slice, minlength=len(slices))
    logger.info("Pixels with a target: %d used (a mesh node in their slab), %d dropped (no mesh node in their slab); "
                "per slice used/dropped: %s", int(used.sum()), int((valued - used).sum()),
                per_slice_text(slices, [f"{u}/{v - u}" for u, v in zip(used, valued)]))


def prepare_training_data(request: PreprocessingRequest) -> PreprocessingResult:
    """Read the mesh and slices named in ``request`` and build training rows.

    Raises:
        CardioScarError: unreadable inputs, bad slice choices, or no overlap between mesh and slices.
    """
    mesh = read_mesh(request.mesh_path)
    if request.partial_volume_correction:
        require_volumetric(mesh.dataset)  # before reading the slices: fail fast on a surface mesh
    slices, myocardium, rule_record = _load_slices(request)
    result = prepare_from_slices(mesh.points_lps(), slices,
                                 coverage_mesh=mesh if request.partial_volume_correction else None,
                                 scar_targets=not request.normalize_intensities,
                                 slice_profile=request.slice_profile, myocardium_given=bool(myocardium.source))
    result.myocardium_source = myocardium.source
    result.dropped_outside_myocardium = myocardium.dropped_pixels
    result.scar_rule = rule_record
    result.scar_labels = "" if request.scar_labels is None else ",".join(str(int(v)) for v in request.scar_labels)
    return result


def save_preprocessing_result(result: PreprocessingResult, output_path: Path) -> None:
    """Write training rows to ``.npz`` (documented keys plus provenance), atomically."""
    with atomic_write(output_path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(
                handle,
                coordinates=result.coordinates,
                intensities=result.intensities,
                group_ids=result.group_ids,
                group_sizes=result.group_sizes,
                scaler_min=result.scaler_min,
                scaler_max=result.scaler_max,
                node_ids=result.node_ids,
                n_mesh_nodes=np.int64(result.n_mesh_nodes),
                group_slice=result.group_slice,
                group_pixel=result.group_pixel,
                slice_labels=np.asarray(result.slice_labels, dtype=str),
                partial_volume_correction=np.bool_(result.partial_volume_correction),
                group_coverage=result.group_coverage,
                myocardium_source=np.asarray(result.myocardium_source),
                dropped_outside_myocardium=np.asarray(result.dropped_outside_myocardium, dtype=np.int64),
                coordinate_space=np.asarray("LPS"),
                format_version=np.int64(TRAINING_DATA_FORMAT),
                cardioscar_version=np.asarray(__version__),
                slice_profile=np.asarray(result.slice_profile),
                **({} if result.row_weights is None  # the box's rows are all 1: nothing to store
                   else {"row_weights": np.asarray(result.row_weights, dtype=np.float32)}),
                **({} if result.mesh_sample is None else {MESH_SAMPLE_KEY: np.asarray(result.mesh_sample, np.float32)}),
                **({"scar_rule": np.asarray(result.scar_rule)} if result.scar_rule else {}),
                **({"scar_labels": np.asarray(result.scar_labels)} if result.scar_labels else {}),
                **npz_entries(result.shape_prior),
            )
    logger.info("Wrote training data %s: %d rows in %d groups, %s slice profile", output_path, result.n_nodes,
                result.n_groups, result.slice_profile)


#: How far outside [0, 1] a stored normalised coordinate may lie (float32 rounding only).
_COORDINATE_SLACK = 1e-3
#: How far apart two rows of one group may carry its target (float32 rounding of one pixel's value).
_GROUP_TARGET_SLACK = 1e-6


def _checked_rows(coordinates, intensities, group_ids, where: str, reference_layout: bool = False,
                  warn: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """The training rows as float32 (N, 3), float32 (N, 1) and int64 (N,), and whether their mixed
    groups were warned about (:func:`_check_group_targets`), or a one-line refusal.

    Why: a file and an in-memory :class:`PreprocessingResult` (the Python API) must meet the same
    checks; values outside [0, 1] (targets or normalised coordinates) train a wrong field quietly.
    ``reference_layout``: the rows are the reference tool's (no ``format_version``), whose groups
    may hold several voxels' values (:func:`_check_group_targets`; ``warn``: say so, unless said already).
    """
    try:
        group_ids = np.asarray(group_ids).astype(np.int64).ravel()
        coordinates = np.asarray(coordinates).astype(np.float32)
        intensities = np.asarray(intensities).astype(np.float32).reshape(-1, 1)
    except (TypeError, ValueError):
        raise CardioScarError(f"{where}: coordinates, intensities and group_ids must be numbers; "
                              "re-run `cardioscar prepare`.") from None
    if coordinates.ndim != 2 or coordinates.shape[1] != 3:
        raise CardioScarError(f"{where}: coordinates must be (N, 3), got {coordinates.shape}; re-run "
                              "`cardioscar prepare`.")
    if not (len(coordinates) == len(intensities) == len(group_ids)) or len(group_ids) == 0:
        raise CardioScarError(
            f"{where} is inconsistent: {len(coordinates)} coordinates, {len(intensities)} intensities, "
            f"{len(group_ids)} group ids; re-run `cardioscar prepare`."
        )
    if not np.all(np.isfinite(coordinates)) or not np.all(np.isfinite(intensities)):
        raise CardioScarError(f"{where} contains NaN or infinite values; re-run `cardioscar prepare`.")
    if coordinates.min() < -_COORDINATE_SLACK or coordinates.max() > 1.0 + _COORDINATE_SLACK:
        # millimetres (or another scaler's units) here would train the network on points the
        # stored scaler never maps a mesh node to: apply would then read a different field
        raise CardioScarError(f"{where}: coordinates must be normalised to [0, 1] by scaler_min/"
                              f"scaler_max (the mesh nodes' box), found {coordinates.min():g}..{coordinates.max():g}; "
                              "re-run `cardioscar prepare` (or store (x - scaler_min) / (scaler_max - scaler_min)).")
    if intensities.min() < 0.0 or intensities.max() > 1.0:
        raise CardioScarError(f"{where}: intensities must lie in [0, 1] (the network's output range), "
                              f"found {intensities.min():g}..{intensities.max():g}; prepare with "
                              "--normalize-intensities (raw LGE) or --scar-labels (label map).")
    warned = _check_group_targets(intensities, group_ids, where, reference_layout, warn)
    return coordinates, intensities, group_ids, warned


def _check_group_targets(intensities: np.ndarray, group_ids: np.ndarray, where: str, reference_layout: bool,
                         warn: bool = True) -> bool:
    """Refuse rows of one group that carry different targets. Why: a group is one pixel, and each of
    its rows carries that pixel's value (``prepare`` writes no other file); the loss fits the group's
    mean prediction to the mean of its rows' targets, so a file joined from two with colliding group
    ids (or damaged) trained two pixels' blend without a word.

    The reference tool's files (``reference_layout``: no ``format_version``) are warned about
    instead: its image input groups a node by its rounded voxel but reads its value from the floor
    one (v0.2.0: 84 % of the nodes of a small case took another voxel's value), so most of its
    groups hold two voxels' values. Those files trained on each group's mean target before this
    check and still do; refusing them broke the promise that its files load. ``warn`` False: the
    rows were warned about when loaded (:attr:`PreprocessingResult.warned_targets`). Returns whether
    it warned now: a clean file's rows are marked as warned about by no one (a script that then mixed
    its groups, joining two files' rows, trained them without a word)."""
    if reference_layout and not warn:  # nothing left to say of these rows: no refusal, the warning given
        return False
    order = np.argsort(group_ids, kind="stable")
    ids, values = group_ids[order], intensities.ravel()[order]
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    spread = np.maximum.reduceat(values, starts) - np.minimum.reduceat(values, starts)
    mixed = np.flatnonzero(spread > _GROUP_TARGET_SLACK)
    if mixed.size:
        first = ids[starts[mixed[0]]]
        targets = np.unique(values[ids == first])
        shown = ", ".join(f"{value:g}" for value in targets[:4]) + (", ..." if targets.size > 4 else "")
        facts = f"{mixed.size} of its {starts.size} groups hold rows with different targets (group {first} first: {shown})"
        if reference_layout:
            logger.warning("%s: %s, as the reference tool's prepare writes them (a node's value read from another "
                           "voxel than its group's); each such group trains on its rows' mean target: re-run "
                           "`cardioscar prepare` for each pixel's own value", where, facts)
            return True
        raise CardioScarError(f"{where}: {facts}, where a group is one pixel and its rows carry its value: "
                              "a file joined from others with colliding group ids, or damaged; re-run `cardioscar "
                              "prepare` (to pool files, give each its own group ids).")
    return False


def load_preprocessing_result(path: Path) -> PreprocessingResult:
    """Read a ``.npz`` written by us or by the existing tool (documented keys only)."""
    path = check_training_data_file(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except ValueError as exc:
        if is_vtk_file(path):  # numpy reads a text file as a pickle: "holds pickled objects" misled (round 18)
            raise CardioScarError(f"Training data {path} is a VTK mesh (such as apply's prediction), not training data: "
                                  "give the .npz that `cardioscar prepare` wrote (meshes go to --mesh)") from None
        if "allow_pickle" not in str(exc):
            raise CardioScarError(f"Cannot read training data {path}: not a valid .npz file ({exc.__class__.__name__})."
                                  ) from exc
        raise CardioScarError(f"Training data {path} holds pickled Python objects, which are refused (loading them "
                              "could run code): re-run `cardioscar prepare`.") from None
    except Exception as exc:  # numpy raises several types for damaged archives
        raise CardioScarError(f"Cannot read training data {path}: not a valid .npz file ({exc.__class__.__name__}).") from exc
    missing = [key for key in _REQUIRED_NPZ_KEYS if key not in arrays]
    if missing and any(key.endswith("data.pkl") for key in arrays):
        # a torch checkpoint is a zip too, so numpy opened it and listed its hundred entries (round 16)
        raise CardioScarError(f"Training data {path} is a PyTorch checkpoint (a trained model), not training data: "
                              "give the .npz that `cardioscar prepare` wrote (the model goes to apply --model)")
    if missing:
        raise CardioScarError(
            f"Training data {path} lacks {', '.join(missing)} (present: {', '.join(sorted(arrays))}); re-run `cardioscar prepare`."
        )
    _check_layout(arrays, f"Training data {path}")
    coordinates, intensities, group_ids, warned = _checked_rows(arrays["coordinates"], arrays["intensities"],
                                                                arrays["group_ids"], f"Training data {path}",
                                                                reference_layout="format_version" not in arrays)
    scaler_min, scaler_max = _checked_scaler(arrays["scaler_min"], arrays["scaler_max"], f"Training data {path}")
    n_rows = len(group_ids)
    profile, row_weights = _checked_profile(str(arrays.get("slice_profile", "box")), arrays.get("row_weights"), n_rows,
                                            f"Training data {path}")
    return PreprocessingResult(
        coordinates=coordinates,
        intensities=intensities,
        group_ids=group_ids,
        group_sizes=arrays["group_sizes"].astype(np.int64).ravel(),
        scaler_min=scaler_min,
        scaler_max=scaler_max,
        n_nodes=n_rows,
        n_groups=int(np.unique(group_ids).size),
        node_ids=arrays.get("node_ids", np.arange(n_rows)).astype(np.int64),
        n_mesh_nodes=int(arrays.get("n_mesh_nodes", n_rows)),
        group_slice=arrays.get("group_slice", np.zeros(0, dtype=np.int64)).astype(np.int64),
        group_pixel=arrays.get("group_pixel", np.zeros((0, 2), dtype=np.int64)).astype(np.int64),
        slice_labels=[str(s) for s in arrays.get("slice_labels", np.zeros(0, dtype=str))],
        partial_volume_correction=bool(arrays.get("partial_volume_correction", False)),
        group_coverage=arrays.get("group_coverage", np.zeros(0, dtype=np.float64)).astype(np.float64),
        myocardium_source=str(arrays.get("myocardium_source", "")),
        dropped_outside_myocardium=arrays.get("dropped_outside_myocardium", np.zeros(0, np.int64)).astype(np.int64),
        scar_rule=str(arrays.get("scar_rule", "")),
        scar_labels=str(arrays.get("scar_labels", "")),
        shape_prior=prior_from_npz(arrays, f"Training data {path}"),
        scaler_spans_mesh="format_version" in arrays,
        slice_profile=profile,
        row_weights=row_weights,
        mesh_sample=_checked_mesh_sample(arrays.get(MESH_SAMPLE_KEY), f"Training data {path}"),
        warned_targets=intensities if warned else None,
    )


def _check_layout(arrays: dict, where: str) -> None:
    """Refuse a ``.npz`` of a layout this version cannot read: a ``format_version`` that is no whole
    number in 1..:data:`TRAINING_DATA_FORMAT` (a newer CardioScar's file, whose keys may mean other
    things, or a damaged one; the model loaders' own check, :func:`~cardioscar.io.checks.check_format_version`)
    or coordinates in a frame other than LPS. Why: both loaded without a word (round 18), and a key
    read in another meaning trains a wrong field with exit 0. Files without the keys (older ones,
    the reference tool's) pass."""
    if "format_version" in arrays:
        check_format_version(arrays["format_version"], where, TRAINING_DATA_FORMAT, "re-run `cardioscar prepare`.",
                             "upgrade cardioscar, or re-run `cardioscar prepare` with this one.")
    space = arrays.get("coordinate_space", "LPS")
    if isinstance(space, np.ndarray) and space.size == 1:
        space = space.reshape(()).item()
    if isinstance(space, bytes):  # a tool that stores text as bytes (numpy "S" arrays): b"LPS" was refused (round 21)
        space = space.decode("ascii", errors="replace")
    if str(space).strip().upper() != "LPS":
        raise CardioScarError(f"{where} has coordinate_space {str(space)!r}; training data is in LPS (re-run "
                              "`cardioscar prepare`, which writes LPS whatever the mesh file's frame).")


def _checked_mesh_sample(sample: Optional[np.ndarray], where: str) -> Optional[np.ndarray]:
    """The stored sample of the mesh's nodes as float32 (S, 3), None when absent (older files), or a
    one-line refusal: a damaged sample would make every later ``apply`` warn, or never."""
    if sample is None:
        return None
    values = np.asarray(sample)
    if values.ndim != 2 or values.shape[1] != 3 or not len(values) or not np.issubdtype(values.dtype, np.floating) \
            or not np.all(np.isfinite(values)):
        raise CardioScarError(f"{where}: {MESH_SAMPLE_KEY} must hold finite (S, 3) node coordinates in mm, found "
                              f"{values.dtype} of shape {values.shape}; re-run `cardioscar prepare`.")
    return values.astype(np.float32)


def _checked_profile(profile: str, weights: Optional[np.ndarray], n_rows: int,
                     where: str) -> tuple[str, Optional[np.ndarray]]:
    """The slice profile and its (K,) float64 row weights (``None`` for the box), or a one-line
    refusal. Files written before the profile existed hold neither: the box. Why checked: a
    weight of 0 or NaN makes a group's weighted mean 0/0, and a length off the rows trains on
    another file's weights."""
    if profile not in SLICE_PROFILES:
        raise CardioScarError(f"{where}: slice_profile {profile!r} is not one of {', '.join(SLICE_PROFILES)}; re-run `cardioscar prepare`.")
    if profile == "box":
        return profile, None
    values = None if weights is None else np.asarray(weights, dtype=np.float64).ravel()
    if values is None or values.size != n_rows or not np.all(np.isfinite(values)) \
            or values.min(initial=1.0) <= 0 or values.max(initial=0.0) > 1:
        raise CardioScarError(f"{where}: the gaussian slice profile needs row_weights, one in (0, 1] per row "
                              f"({n_rows}); re-run `cardioscar prepare`.")
    return profile, values


# --------------------------------------------------------------------------- training


def _as_result(training_data: Union[Path, str, PreprocessingResult]) -> tuple[PreprocessingResult, str]:
    if isinstance(training_data, PreprocessingResult):
        warned = training_data.warned_targets is training_data.intensities
        coordinates, intensities, group_ids, _ = _checked_rows(training_data.coordinates, training_data.intensities,
                                                               training_data.group_ids, "The PreprocessingResult",
                                                               reference_layout=not training_data.scaler_spans_mesh,
                                                               warn=not warned)
        profile, weights = _checked_profile(training_data.slice_profile, training_data.row_weights, len(group_ids),
                                            "The PreprocessingResult")
        return replace(training_data, coordinates=coordinates, intensities=intensities, group_ids=group_ids,
                       slice_profile=profile, row_weights=weights), "in-memory"
    return load_preprocessing_result(Path(training_data)), str(training_data)


def _provenance(result: PreprocessingResult, source: str) -> dict:
    return {
        "cardioscar_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "training_data": source,
        "n_rows": int(result.n_nodes),
        "n_groups": int(result.n_groups),
        "n_mesh_nodes": int(result.n_mesh_nodes),
        "slices": list(result.slice_labels),
        **({"scar_rule": result.scar_rule} if result.scar_rule else {}),
        **({"scar_labels": result.scar_labels} if result.scar_labels else {}),
        **({"slice_profile": result.slice_profile} if result.slice_profile != "box" else {}),
    }


def _dataset_info(result: PreprocessingResult, nodes: np.ndarray) -> dict:
    """What a checkpoint records of its training data; the scaler and the node spacing of the
    covered ``nodes`` let ``apply`` refuse a mesh in other units (:mod:`cardioscar.meshscale`)."""
    return {
        "node_spacing_mm": node_spacing(nodes),
        "scaler_min": [float(v) for v in result.scaler_min],
        "scaler_max": [float(v) for v in result.scaler_max],
        "n_nodes": int(result.n_nodes),
        "n_groups": int(result.n_groups),
        "n_mesh_nodes": int(result.n_mesh_nodes),
        "coordinate_space": "LPS",
        "scaler_spans_mesh": bool(result.scaler_spans_mesh),
        "targets": training_targets_kind(result.intensities),
    }


def training_targets_kind(intensities: np.ndarray) -> str:
    """``"0/1"`` when every training target is 0 or 1 (scar labels, a scar rule's targets), else
    ``"graded"``: recorded in the checkpoint and on every predicted mesh, because a one-field
    export's border zone (0.5-0.8) is graded tissue only for a field trained on graded targets."""
    values = np.asarray(intensities)
    return BINARY_TARGETS if bool(np.all((values == 0) | (values == 1))) else GRADED_TARGETS


def train_scar_model(
    training_data_path: Union[Path, PreprocessingResult],
    config: TrainingConfig,
    device: Optional[torch.device] = None,
    *,
    progress_callback: Optional[ProgressCallback] = None,
    should_cancel: Optional[CancelHook] = None,
) -> dict:
    """Train the scar field on prepared rows and return a checkpoint dictionary.

    ``training_data_path`` may also be an in-memory :class:`PreprocessingResult` (Slicer passes
    one). ``should_cancel`` is polled before every batch; cancelling raises
    :class:`cardioscar.errors.TrainingCancelled` and returns nothing.
    """
    return _fit_checkpoint(training_data_path, config, device, progress_callback, should_cancel)


def _fit_checkpoint(
    training_data: Union[Path, PreprocessingResult],
    config: TrainingConfig,
    device: Optional[torch.device],
    progress_callback: Optional[ProgressCallback],
    should_cancel: Optional[CancelHook],
    start: Optional[tuple[dict, Path, int]] = None,
) -> dict:
    """Train (from scratch, or from ``start`` = (checkpoint, its path, frozen layers)) and package."""
    _bind_torch_side()
    result, source = _as_result(training_data)
    model, frozen_layers = (model_from_checkpoint(start[0]), start[2]) if start else (None, 0)
    # a fine-tuned model learnt a residual on a prior (or not) and keeps doing so, like its architecture
    if start and start[0].get("shape_prior") and result.shape_prior is None:
        # without one its residual alone became the field: the prior's share of it lost, with a warning only
        raise CardioScarError(f"{start[1]} was trained with a shape prior, but the training data {source} holds none "
                              "(written by an older CardioScar?): re-run `cardioscar prepare` for it, or train a new "
                              "model without --shape-prior")
    prior = training_prior(result.shape_prior, bool(start[0].get("shape_prior")) if start else config.shape_prior,
                           result.intensities, result.scar_rule)
    if prior is not None and start:  # its residual keeps the bound it learnt under (inf before version 5)
        prior = replace(prior, residual_bound=ShapePrior.from_checkpoint(start[0]).residual_bound)
    prior, row_logit = (None, None) if prior is None else fit_to_rows(prior, result.coordinates, result.scaler_min,
                                                                      result.scaler_max)
    model, history = fit_scar_field(
        result.coordinates,
        result.intensities,
        result.group_ids,
        config,
        device=device,
        progress_callback=progress_callback,
        should_cancel=should_cancel,
        model=model,
        frozen_layers=frozen_layers,
        extent_mm=np.asarray(result.scaler_max) - np.asarray(result.scaler_min),
        prior_logit=row_logit,
        row_weights=result.row_weights,
        residual_bound=math.inf if prior is None else prior.residual_bound,
    )
    provenance = _provenance(result, source)
    if start:
        provenance["fine_tuned_from"] = str(start[1])
        provenance["frozen_layers"] = int(frozen_layers)
    covered = constraint_points(result)
    checkpoint = build_checkpoint(model, history, replace(config_used(config, history), shape_prior=prior is not None),
                                  _dataset_info(result, covered.astype(np.float64)), provenance)
    if prior is not None:
        checkpoint["shape_prior"] = prior.to_checkpoint()
    checkpoint[CONSTRAINT_POINTS_KEY] = torch.from_numpy(covered)
    if result.mesh_sample is not None:
        checkpoint[MESH_SAMPLE_KEY] = torch.from_numpy(np.ascontiguousarray(result.mesh_sample, dtype=np.float32))
    return checkpoint


#: The checkpoint entry holding the constrained nodes (float32 LPS mm) that ``scar_error_risk``
#: measures its border spread from (:mod:`cardioscar.predict.error_risk`).
CONSTRAINT_POINTS_KEY = "constraint_points_lps"
#: The entry (in the checkpoint and in prepare's ``.npz``) holding a fixed sample of the training
#: mesh's nodes (float32 LPS mm), which ``apply`` compares the mesh it is given with.
MESH_SAMPLE_KEY = "mesh_sample_lps"


def constraint_points(result: PreprocessingResult) -> np.ndarray:
    """(K, 3) float32 LPS mm: each node some group constrains, once."""
    rows = np.unique(result.coordinates, axis=0)
    return (rows * (result.scaler_max - result.scaler_min) + result.scaler_min).astype(np.float32)


def checkpoint_constraint_points(checkpoint: dict) -> Optional[np.ndarray]:
    """The checkpoint's constrained nodes (LPS mm), or None for files written without them (before
    this field, or by the reference tool). A damaged entry is set aside with a one-line warning
    (the risk then keeps its value term). Why checked: read unchecked, a sparse or bfloat16 tensor
    crashed ``apply``, and points off the training box (shifted, scaled) spread the border by
    100 mm and more, a risk near 1 on every node."""
    if CONSTRAINT_POINTS_KEY not in checkpoint:
        return None
    points, problem = _checkpoint_points_or_problem(checkpoint, CONSTRAINT_POINTS_KEY)
    if problem:
        logger.warning("The checkpoint's %s %s: scar_error_risk keeps its value term alone (no border term); "
                       "retrain the model to restore it", CONSTRAINT_POINTS_KEY, problem)
    return points


def _checkpoint_points_or_problem(checkpoint: dict, key: str) -> tuple[Optional[np.ndarray], str]:
    """(points, "") or (None, what is wrong with the checkpoint's points at ``key``: the constraint
    points or the training mesh's sample, both nodes of the training mesh inside its box)."""
    _bind_torch_side()
    entry = checkpoint[key]
    if not isinstance(entry, torch.Tensor):
        return None, f"is a {type(entry).__name__}, not a tensor"
    if entry.layout != torch.strided:
        return None, f"is a {str(entry.layout).replace('torch.', '')} tensor, not a dense one"
    if not entry.is_floating_point() or entry.ndim != 2 or entry.shape[1] != 3 or not len(entry):
        return None, f"holds {entry.dtype} of shape {tuple(entry.shape)}, not K x 3 coordinates in mm"
    rows = (checkpoint.get("dataset_info") or {}).get("n_nodes")
    # each constrained node is a training row at least once
    if key == CONSTRAINT_POINTS_KEY and isinstance(rows, int) and 0 < rows < len(entry):
        return None, f"holds {len(entry)} points, more than the {rows} training rows"
    points = entry.detach().to("cpu", torch.float64).numpy()
    if not np.isfinite(points).all():
        return None, "holds NaN or infinite values"
    relative = normalize(points, *_scaler(checkpoint))  # the rows were normalised by this scaler: inside [0, 1]
    if relative.min() < -_COORDINATE_SLACK or relative.max() > 1.0 + _COORDINATE_SLACK:
        return None, "lies outside the box of the training mesh (dataset_info scaler_min/scaler_max)"
    return points, ""


def fine_tune_scar_model(
    model_checkpoint_path: Path,
    training_data_path: Union[Path, PreprocessingResult],
    config: TrainingConfig,
    frozen_layers: int = 0,
    device: Optional[torch.device] = None,
    *,
    progress_callback: Optional[ProgressCallback] = None,
    should_cancel: Optional[CancelHook] = None,
) -> dict:
    """Warm-start from a checkpoint, optionally freezing its first ``frozen_layers`` linear layers.

    The architecture always comes from the checkpoint (so fine-tuned files keep it); the scaler
    comes from the new training data, since the result is applied to that data's mesh.
    """
    start = (load_trained_model(model_checkpoint_path), Path(model_checkpoint_path), frozen_layers)
    return _fit_checkpoint(training_data_path, config, device, progress_callback, should_cancel, start)


def save_trained_model(checkpoint: dict, output_path: Path) -> None:
    """Write a checkpoint atomically (it loads with ``torch.load(weights_only=True)``)."""
    _bind_torch_side()
    save_checkpoint(checkpoint, output_path)
    history = checkpoint.get("history") or {}
    if "best_loss" not in history:  # a checkpoint built by hand (the API's build_checkpoint) has no run to describe
        logger.info("Wrote model %s (no training history)", output_path)
        return
    logger.info("Wrote model %s: best loss %.6g at epoch %d of %d (%.1f s, %s)", output_path, history["best_loss"],
                history["converged_epoch"], history["epochs_run"], history["seconds"], describe_stop(history))


def load_trained_model(model_checkpoint_path: Path) -> dict:
    """Load a checkpoint safely; a crafted or damaged file raises :class:`CardioScarError`."""
    _bind_torch_side()
    return load_checkpoint(model_checkpoint_path)


# --------------------------------------------------------------------------- inference


def _scaler(checkpoint: dict) -> tuple[np.ndarray, np.ndarray]:
    info = checkpoint.get("dataset_info", {})
    if "scaler_min" not in info or "scaler_max" not in info:
        raise CardioScarError("The checkpoint has no coordinate scaler (dataset_info.scaler_min/max); retrain the model.")
    return _checked_scaler(info["scaler_min"], info["scaler_max"], "The checkpoint's dataset_info")


def _checked_scaler(low, high, where: str) -> tuple[np.ndarray, np.ndarray]:
    """The coordinate scaler's (3,) minima and maxima, or a one-line error: a damaged scaler would
    silently map every node to the wrong place (or NaN)."""
    try:
        low, high = (np.asarray(value, dtype=np.float64).ravel() for value in (low, high))
    except (TypeError, ValueError):
        raise CardioScarError(f"{where}: scaler_min/scaler_max are not numbers; retrain the model.") from None
    if low.shape != (3,) or high.shape != (3,) or not (np.isfinite(low).all() and np.isfinite(high).all()) \
            or np.any(high < low):
        raise CardioScarError(f"{where}: scaler_min/scaler_max must be 3 finite values each with min <= max, got "
                              f"{low.tolist()} / {high.tolist()}; re-run `cardioscar prepare` or retrain the model.")
    return low, high


def predict_on_points(
    checkpoint: dict,
    points_lps: np.ndarray,
    mc_samples: int = 10,
    batch_size: int = 50000,
    threshold: Optional[float] = None,
    device: Optional[torch.device] = None,
    should_cancel: Optional[CancelHook] = None,
    seed: Optional[int] = None,
) -> InferenceResult:
    """MC-dropout probability and uncertainty at arbitrary LPS points (in memory).

    With a ``seed`` the dropout masks, and so the outputs, are reproducible on the CPU; the
    caller's global random state is left untouched either way.
    """
    _bind_torch_side()
    if mc_samples < 1:
        raise CardioScarError(f"mc_samples must be >= 1 (10 or more for a useful uncertainty), got {mc_samples}.")
    if mc_samples == 1:
        # one pass has no spread: a scar_uncertainty of 0 everywhere would read as "certain"
        logger.warning("mc_samples 1: scar_uncertainty is 0 on every node (one dropout pass has no spread) and "
                       "scar_error_risk follows the probability and its border alone; give 10 or more for an uncertainty")
    if float((checkpoint.get("hyperparameters") or {}).get("dropout_rate", DEFAULT_ARCHITECTURE["dropout_rate"])) == 0:
        # every dropout pass is the same network: the spread is 0 whatever mc_samples is
        logger.warning("The model was trained with dropout_rate 0: scar_uncertainty is 0 on every node (the dropout "
                       "passes are all alike), not a sign of certainty; train with a dropout rate such as 0.1 for an "
                       "uncertainty")
    if batch_size < 1:
        raise CardioScarError(f"batch_size must be >= 1, got {batch_size}.")
    if threshold is not None:
        threshold = check_threshold(threshold, "threshold (--threshold)")
    if seed is not None:
        seed = check_seed(seed, "seed")
    points_lps = check_mesh_points(points_lps)
    scaler_min, scaler_max = _scaler(checkpoint)
    coordinates = normalize(points_lps, scaler_min, scaler_max).astype(np.float32)
    outside = np.mean(np.any((coordinates < -0.05) | (coordinates > 1.05), axis=1))
    if outside > 0.05:
        logger.warning(
            "%.0f%% of the nodes lie outside the region the model was trained on; is this the training mesh?", 100 * outside
        )
    device = as_device(device)
    with torch.random.fork_rng(devices=[device.index or 0] if device.type == "cuda" else []):
        # without a seed, fresh entropy: drawing from the forked global state would give every
        # unseeded call the same masks
        torch.manual_seed(seed if seed is not None else int(np.random.SeedSequence().generate_state(1)[0]))
        model = model_from_checkpoint(checkpoint)  # its layer initialisation draws random numbers too
        prior = ShapePrior.from_checkpoint(checkpoint)
        mean, std = mc_dropout_predict(
            model, coordinates, mc_samples=mc_samples, batch_size=batch_size, device=device, should_cancel=should_cancel,
            **node_prior(prior, points_lps),
        )
    if not (np.isfinite(mean).all() and np.isfinite(std).all()):
        raise CardioScarError("The model predicts NaN or infinite values: its weights are damaged; retrain it.")
    binary = (mean >= threshold).astype(np.uint8) if threshold is not None else None
    return InferenceResult(
        mean_predictions=mean,
        std_predictions=std,
        binary_predictions=binary,
        n_nodes=int(len(mean)),
        mean_scar_probability=float(np.mean(mean)),
        mean_uncertainty=float(np.mean(std)),
        threshold=threshold,
        mc_samples=int(mc_samples),
        # the risk of the call written
        error_risk=error_risk(mean, std, 0.5 if threshold is None else threshold, points_lps,
                              checkpoint_constraint_points(checkpoint)),
        training_targets=recorded_training_targets(checkpoint),
        scar_rule=(checkpoint.get("provenance") or {}).get("scar_rule") or None,
        scar_labels=(checkpoint.get("provenance") or {}).get("scar_labels") or None,
    )


def recorded_training_targets(checkpoint: dict) -> Optional[str]:
    """The kind of targets the checkpoint's model was trained on, or None when it does not say."""
    kind = (checkpoint.get("dataset_info") or {}).get("targets")
    return kind if kind in (BINARY_TARGETS, GRADED_TARGETS) else None



def check_mesh_for_checkpoint(checkpoint: dict, points_lps: np.ndarray, mesh_name: str) -> None:
    """Refuse a mesh to apply ``checkpoint`` to whose size or node spacing is not the training
    mesh's (another unit), or most of whose nodes lie outside its box (another frame or patient;
    checked where the scaler spans the training mesh, not on the reference tool's in-slice box);
    every face that applies a saved model calls it."""
    points_lps = check_mesh_points(points_lps, mesh_name)
    low, high = _scaler(checkpoint)
    check_same_scale({**checkpoint.get("dataset_info", {}), "scaler_min": low, "scaler_max": high}, points_lps,
                     mesh_name)
    if checkpoint.get("dataset_info", {}).get("scaler_spans_mesh"):
        # the reference tool's scaler spans the slices' nodes only: its apex and base lie outside by design
        check_inside_training_box(low, high, points_lps, mesh_name)
    _warn_if_another_heart(checkpoint, points_lps, mesh_name)


def _warn_if_another_heart(checkpoint: dict, points_lps: np.ndarray, mesh_name: str) -> None:
    """Warn when the mesh lies away from the checkpoint's sample of its training mesh
    (:func:`cardioscar.predict.meshscale.warn_if_another_heart`); a checkpoint without the sample
    (older files, the reference tool's) or with a damaged one is not checked, and says so."""
    if MESH_SAMPLE_KEY not in checkpoint:
        logger.info("%s: the checkpoint keeps no sample of its training mesh (written before it did), so whether it "
                    "is the training mesh's heart is not checked", mesh_name)
        return
    sample, problem = _checkpoint_points_or_problem(checkpoint, MESH_SAMPLE_KEY)
    if problem:
        logger.warning("%s: the checkpoint's %s %s, so whether it is the training mesh's heart is not checked; "
                       "retrain the model to restore it", mesh_name, MESH_SAMPLE_KEY, problem)
        return
    warn_if_another_heart(sample, points_lps, mesh_name)


def _as_mesh(mesh: Union[str, Path, Mesh]) -> Mesh:
    """``mesh`` read from its file, or as given when it is a :class:`Mesh` already."""
    return mesh if isinstance(mesh, Mesh) else read_mesh(mesh)


def apply_scar_model(
    model_checkpoint_path: Path,
    mesh_path: Union[Path, Mesh],
    mc_samples: int = 10,
    batch_size: int = 50000,
    threshold: Optional[float] = None,
    device: Optional[torch.device] = None,
    *,
    seed: Optional[int] = None,
) -> InferenceResult:
    """Predict scar probability and uncertainty on every node of the mesh at ``mesh_path`` (or of a
    :class:`Mesh` already read, which :func:`save_inference_result` then takes too: read once)."""
    checkpoint = load_trained_model(model_checkpoint_path)
    mesh = _as_mesh(mesh_path)
    check_mesh_for_checkpoint(checkpoint, mesh.points_lps(), f"The mesh {mesh.path or 'given'}")
    return predict_on_points(checkpoint, mesh.points_lps(), mc_samples, batch_size, threshold, device, seed=seed)


def _own_copy(mesh: Union[str, Path, Mesh]) -> Mesh:
    """``mesh`` read from its file, or a shallow copy of a :class:`Mesh` (its arrays shared, its
    lists of arrays its own), so that the notes and arrays changed for the output leave it as it was."""
    if not isinstance(mesh, Mesh):
        return read_mesh(mesh)
    copy = mesh.dataset.NewInstance()
    copy.ShallowCopy(mesh.dataset)
    return replace(mesh, dataset=copy)


#: Fields of a prediction that a result may leave out (None), with how to write them anew: an input
#: mesh's copy from an earlier run is dropped then, not carried beside the new probability.
NOT_REWRITTEN = {"scar_binary": "give --threshold to write a new one",
                 ERROR_RISK_FIELD: "an InferenceResult without error_risk writes none; apply_scar_model computes it"}


def save_inference_result(result: InferenceResult, mesh_path: Union[Path, Mesh], output_path: Path) -> None:
    """Write the mesh at ``mesh_path`` (or a :class:`Mesh` already read, left unchanged) with the
    prediction arrays to ``output_path`` (atomically).

    Coordinates stay as in the input file and the file's frame marker (SPACE=LPS/RAS) is kept,
    so 3D Slicer loads the result exactly over the input. An ``output_path`` that is the mesh's own
    file is refused (:func:`check_not_an_input`), as on the command line.
    """
    check_not_an_input(output_path, [mesh_path.path if isinstance(mesh_path, Mesh) else mesh_path], "output_path")
    mesh = _own_copy(mesh_path)
    mesh_path = mesh.path or "the mesh given"
    if mesh.n_points != result.n_nodes:
        raise CardioScarError(
            f"The mesh {mesh_path} has {mesh.n_points} nodes but the predictions have {result.n_nodes}; "
            "save onto the mesh the model was applied to."
        )
    arrays = result.point_arrays()
    for name, advice in NOT_REWRITTEN.items():
        # an earlier run's field no longer matches the new probability: dropped, not kept
        if name not in arrays and mesh.dataset.GetPointData().HasArray(name):
            mesh.dataset.GetPointData().RemoveArray(name)
            logger.warning("%s had a %s field from an earlier run; it is not copied to %s (" + in_log_format(advice)
                           + ")", mesh_path, name, output_path)
    if drop_stale_tissue_tags(mesh.dataset):
        logger.warning("%s had %s tags from an earlier export; they describe that run's scar, not this one, and are "
                       "not copied to %s (tag the new result with cardioscar export)", mesh_path, TAG_ARRAY, output_path)
    dropped = drop_earlier_result_fields(mesh.dataset)
    if dropped:
        logger.warning("%s had %s from an earlier run's channels or core model; they belong to that run's scar, not "
                       "this one, and are not copied to %s", mesh_path, ", ".join(dropped), output_path)
    # the input's note of an earlier run would describe that run's model: replaced, or removed
    set_text_field(mesh.dataset, TRAINING_TARGETS_ARRAY, result.training_targets)
    set_text_field(mesh.dataset, SCAR_RULE_ARRAY, result.scar_rule)
    set_text_field(mesh.dataset, SCAR_LABELS_ARRAY, result.scar_labels)
    write_mesh(mesh, output_path, arrays)  # its line names the file, its nodes, cells, frame and fields


# --------------------------------------------------------------------------- scoring on the slices


def evaluate_on_slices(
    prediction_path: Union[str, Path],
    truth_image: Union[str, Path],
    *,
    scar_labels: Optional[List[int]] = None,
    myocardium_labels: Optional[List[int]] = None,
    myocardium_mask: Optional[Path] = None,
    slice_axis: str = "z",
    slice_indices: Optional[List[int]] = None,
    slice_thickness_padding: Union[float, str] = 5.0,
    truth_threshold: Optional[float] = None,
    probability_field: str = "scar_probability",
    uncertainty_field: str = "scar_uncertainty",
    threshold: float = 0.5,
    write_truth: Optional[Path] = None,
) -> dict:
    """Score a prediction mesh against the truth of an image's acquired slices (``cardioscar
    evaluate --truth-image``): the twin of :func:`cardioscar.evaluate.metrics.evaluate_meshes` for
    real data, whose only truth is the experts' labels on the slices.

    The slices are chosen and read as ``prepare`` reads them (same options, same checks): a label
    map with ``scar_labels`` and ``myocardium_labels`` (EMIDEC 3,4 and 2,3,4), or a scar map in
    [0, 1] (scar where ``>= truth_threshold``, default 0.5), optionally within ``myocardium_mask``.
    The nodes on the slices are scored (:func:`cardioscar.evaluate.heldout.sample_slice_truth`); the dict holds
    ``evaluate_meshes``'s scores over them plus ``slices`` (per slice: nodes in its slab, scored,
    scar, and why the others were not) and ``not_scored``. ``write_truth``: also write the mesh
    with ``scar_truth`` (NaN off the scored nodes), ``scar_truth_scored`` and ``scar_truth_slice``.
    For a leave-one-slice-out check, prepare without slice k and evaluate with ``slice_indices=[k]``.
    """
    from cardioscar.evaluate import metrics

    threshold = check_threshold(threshold, "threshold (--threshold)")
    metrics.check_prediction_field_names(probability_field, uncertainty_field)
    truth_cut = check_truth_options(scar_labels is not None, myocardium_labels is not None or myocardium_mask is not None,
                                    truth_threshold)
    if write_truth is not None:
        write_truth = check_output_path(write_truth, "--write-truth", MESH_SUFFIXES)
    request = PreprocessingRequest(mesh_path=Path(prediction_path), image_path=Path(truth_image),
                                   slice_axis=slice_axis, slice_indices=slice_indices,
                                   slice_thickness_padding=slice_thickness_padding, scar_labels=scar_labels,
                                   myocardium_labels=myocardium_labels, myocardium_mask=myocardium_mask)
    prediction = read_mesh(prediction_path)
    probability, uncertainty, error_risk = metrics.prediction_fields(prediction, probability_field, uncertainty_field)
    with reading_for_scoring():  # the checks' messages speak of the score, not of training
        targets = _load_slices(request, _truth_plane(request))[0]
    scores, sampled = score_on_slices(
        prediction.points_lps(), targets, probability, uncertainty=uncertainty,
        error_risk=metrics.risk_of_this_call(prediction, probability_field, probability, threshold, error_risk),
        weights=metrics.node_volumes(prediction.dataset), threshold=threshold, truth_threshold=truth_cut,
        names=(Path(prediction_path).name, Path(truth_image).name))
    if write_truth is not None:
        _warn_truth_replaced(prediction, Path(prediction_path).name, write_truth)
        write_mesh(prediction, write_truth, sampled.point_arrays())
        logger.info("Wrote %s with the slices' truth on %d of %d nodes", write_truth, scores["n_nodes"],
                    prediction.n_points)
    return scores


def _truth_plane(request: PreprocessingRequest) -> Optional[List[SliceLayer]]:
    """A 2D ``--truth-image`` (one slice drawn alone) as the one chosen slice of the 3D
    ``--myocardium-mask`` whose pixels it has, as ``prepare`` places a 2D mask on the LGE's chosen
    slice; ``None`` for a 3D truth image. Why: ``evaluate`` reads no LGE, and the myocardium mask
    (the label map of the stack) is the grid the truth was drawn on; a 2D file alone has no place
    across the slices, so without such a mask it is refused, saying what to give."""
    from cardioscar.io.imageio import is_plane_file
    from cardioscar.prepare.myocardium import plane_as_slice

    if not is_plane_file(request.image_path):
        return None
    if request.myocardium_mask is None or is_plane_file(request.myocardium_mask):
        raise plane_truth_without_grid(Path(request.image_path).name)
    grid = slices_from_paths([request.myocardium_mask], request.slice_axis, request.slice_indices,
                             request.slice_thickness_padding)
    return [plane_as_slice(request.image_path, grid, "--truth-image")]


def plane_truth_without_grid(name: str) -> CardioScarError:
    """The refusal of a 2D truth image given without the 3D myocardium mask it is placed on (every
    scoring face: ``evaluate --truth-image``, the Slicer Logic's ``score_on_slices`` and its panel)."""
    return CardioScarError(f"--truth-image {name} is a 2D image, which has no place across the slices: give with it "
                           "the 3D --myocardium-mask of the stack it was drawn on (the label map or mask on the LGE's "
                           "grid) and --slice-indices of that slice, or give the truth as a 3D image on the LGE's grid")


def _warn_truth_replaced(prediction: Mesh, name: str, output: Path) -> None:
    """Say what ``--write-truth`` replaces: the prediction's own ``scar_truth`` (a phantom's ground
    truth, an earlier scoring's) is not copied to ``output`` but replaced by the slices' truth; the
    prediction file itself is left as it was. A warning, not a refusal: nothing is lost."""
    from cardioscar.evaluate.heldout import truth_on_the_mesh

    replaced = truth_on_the_mesh(prediction.point_field_names())
    if replaced:
        logger.warning("%s has %s; %s holds the slices' truth in its place (NaN off the scored nodes), and %s is "
                       "unchanged", name, replaced, output, name)


def score_on_slices(points_lps: np.ndarray, targets: List[SliceLayer], probability: np.ndarray, *,
                    uncertainty: Optional[np.ndarray] = None, error_risk: Optional[np.ndarray] = None,
                    weights: Optional[np.ndarray] = None, threshold: float = 0.5, truth_threshold: float = 0.5,
                    names: tuple[str, str] = ("the mesh", "the image")):
    """The in-memory twin of :func:`evaluate_on_slices` (the Slicer Logic's): per-node fields of
    the nodes ``points_lps`` scored against target slices (values in [0, 1], NaN: no truth) cut at
    ``truth_threshold``. ``names``: the mesh's and the image's, for the refusal of no node scored.
    Returns the scores and the :class:`cardioscar.evaluate.heldout.SliceTruth` sampled."""
    from cardioscar.evaluate import heldout, metrics

    sampled = heldout.sample_slice_truth(points_lps, targets)
    heldout.check_something_scored(sampled, points_lps, targets, *names)
    nodes = np.flatnonzero(sampled.scored)

    def scored(values: Optional[np.ndarray]) -> Optional[np.ndarray]:
        return None if values is None else np.asarray(values)[nodes]

    scores = metrics.evaluate_fields(scored(probability), (sampled.truth[nodes] >= truth_threshold).astype(np.float64),
                                     scored(uncertainty), None, scored(weights), threshold, scored(error_risk))
    scores.update(mesh_nodes=len(points_lps), truth_threshold=truth_threshold, slices=sampled.per_slice,
                  not_scored=sampled.not_scored)
    return scores, sampled


def check_truth_options(label_map: bool, has_myocardium: bool, truth_threshold: Optional[float]) -> float:
    """The cut of the sampled truth into scar (0.5 for a label map's 0/1 targets) after the checks
    that scoring adds to prepare's: a label map needs its myocardium, since outside it a label says
    nothing about scar (its background scored as healthy myocardium), and the truth threshold is for
    a scar map only (the file and Slicer faces of the scoring)."""
    if label_map and not has_myocardium:
        raise CardioScarError("--truth-image with --scar-labels needs --myocardium-labels (EMIDEC 2,3,4; ACDC 2): "
                              "outside the myocardium a label says nothing about scar, and the nodes there would be "
                              "scored as healthy")
    if truth_threshold is None:
        return 0.5
    if label_map:
        raise CardioScarError("--truth-threshold cuts a scar map in [0, 1]; a label map's scar is its --scar-labels: "
                              "leave --truth-threshold out")
    return check_threshold(truth_threshold, "--truth-threshold")
