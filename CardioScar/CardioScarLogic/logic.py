"""The CardioScar Logic: MRML nodes in, scar fields on the model node out.

One object serves the panel, the Python console and batch mode. It takes nodes and plain
values, blocks until done, reports progress through a callback, stops when a cancel hook says
so, and never opens a dialog (a dialog would block ``--no-main-window`` batch runs).

Order of work, chosen so that a failure or a cancel leaves the scene as it was:
read the inputs in world coordinates (copies only) -> build slices -> map -> train -> predict
-> only then write arrays, colours, legend, summary table and loss plot.

torch and the core library's heavy modules are imported inside the methods, so loading the
Slicer module (or this package) never imports torch; the panel can offer to install it first.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Union

import numpy as np
import slicer

from cardioscar.errors import CardioScarError
from cardioscar.prepare.slices import RECORDED
from cardioscar.simulation.opencarp import drop_earlier_result_fields, drop_stale_tissue_tags

from . import results
from .aha import AHA_TABLE_REFERENCE, AhaInputs
from .acquisition import check_slices_where_acquired
from .channels import CHANNEL_TABLE_REFERENCE
from .geometry import model_points_lps, world_mesh_lps
from .headless import check_file_of_node, color_logic_for
from .myocardium import masks_from_node, restrict_targets
from .options import ReconstructionOptions
from .rulemasks import rule_myocardium, rule_slices
from .scarsource import SEGMENT_SCAR, counted_from_the_other_end, scar_source_from_node, slice_count
from .slabwidth import half_width
from .wording import (AHA_NAMES, LOGIC_AHA_ADVICE, RECONSTRUCTION_NAMES, RECONSTRUCTION_TRAINING_ADVICE, SCORING_NAMES,
                      record_in_words, speaks_logic_words)

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[object], None]  # receives cardioscar.fit.training.TrainingProgress
CancelHook = Callable[[], bool]

#: The oldest torch (major, minor) the library supports (CardioScarLib/pyproject.toml's torch>=2.4), and the
#: requirement the panel's PyTorch extension installs within. The panel refuses an older torch before a run;
#: the Logic's runs (:meth:`CardioScarLogic.train_and_apply`, :meth:`~CardioScarLogic.apply_model`, Attri-VAE's
#: ``AttriVAELogic``: the Python console, the batch script) refuse it too, all through :func:`older_torch`.
TORCH_MINIMUM = (2, 4)
TORCH_REQUIREMENT = ">={}.{}".format(*TORCH_MINIMUM)


def torch_release(version: str) -> tuple:
    """(major, minor) of a torch version string such as "2.5.1+cu121" or "2.4.0a0", compared with
    TORCH_MINIMUM without importing torch (nor relying on a packaging module in Slicer's Python)."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:2])


def installed_torch_version() -> Optional[str]:
    """The installed torch's version from its package metadata, or None: read without importing
    torch (importing it in Slicer would keep its files open and block an update until restart),
    and read from disk, so it tells an update apart from an install that changed nothing."""
    try:
        return importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        return None


def older_torch() -> Optional[str]:
    """The installed torch's version when it is older than TORCH_MINIMUM, else None (none
    installed, or one that meets it): the one test the panel and the Logic's runs make."""
    version = installed_torch_version()
    return version if version is not None and torch_release(version) < TORCH_MINIMUM else None


def check_torch_version() -> None:
    """Refuse an installed torch older than TORCH_MINIMUM in one line, before any input is read.

    Why: another extension may have installed an older torch in Slicer's Python; the library's
    training then failed deep inside torch (or ran on behaviour it was not tested with). The panel
    has refused it since round 12; the console and the batch script reach training, a saved model's
    prediction and Attri-VAE's worker here."""
    version = older_torch()
    if version is not None:
        raise CardioScarError(f"PyTorch {version} is older than the {TORCH_REQUIREMENT} CardioScar needs: update it "
                              "(in Slicer: Update PyTorch in the CardioScar module's Dependencies section, then restart "
                              f"Slicer; elsewhere: pip install \"torch{TORCH_REQUIREMENT}\")")


@dataclass
class ReconstructionResult:
    """What a run produced; the arrays are also on the model node under their documented names."""

    probability: np.ndarray
    uncertainty: np.ndarray
    binary: Optional[np.ndarray]
    checkpoint: dict
    summary: list
    table_node: object
    chart_node: object
    legend_node: object
    device: str
    seconds: float
    prepared: object = None  # cardioscar.logic.PreprocessingResult of a training run


@dataclass
class PreparedRun:
    """A training run's inputs, read from the scene: the options, the mesh's world LPS points,
    the training rows and the slab half-widths used (for the summary)."""

    options: ReconstructionOptions
    points: np.ndarray
    prepared: object  # cardioscar.logic.PreprocessingResult
    slab: tuple
    started: float
    myocardium: object = None  # cardioscar.prepare.myocardium.MyocardiumReport


def _check_model_node(model_node) -> None:
    if model_node is None or not model_node.IsA("vtkMRMLModelNode"):
        raise CardioScarError("Choose the heart mesh (a model node) to put the scar on.")
    check_file_of_node(model_node)


def _check_truth_may_be_written(model_node) -> None:
    """Refuse to write the slices' truth over a ``scar_truth`` that no scoring wrote (a phantom's
    whole ground truth, loaded with its mesh): on the node it would be lost, unlike
    ``evaluate --write-truth``, which writes a new file and warns. An earlier scoring's truth is
    replaced, said in the log."""
    from cardioscar.evaluate.heldout import GROUND_TRUTH, truth_on_the_mesh

    data = model_node.GetMesh().GetPointData()
    replaced = truth_on_the_mesh(data.GetArrayName(i) for i in range(data.GetNumberOfArrays()))
    if replaced == GROUND_TRUTH:
        raise CardioScarError(f"The model '{model_node.GetName()}' holds {replaced}: writing the slices' truth on it "
                              "would replace it; score without writing the truth (--write-truth), or score a copy of "
                              "the model")
    if replaced:
        logger.info("CardioScar: the slices' truth replaces %s on '%s'", replaced, model_node.GetName())


def _plane_truth(truth_node, options: ReconstructionOptions, mask_node, dicom_database) -> Optional[list]:
    """A truth node read from a 2D file as the one chosen slice of ``mask_node`` (the 3D label map
    of the stack it was drawn on) whose pixels it has, as ``evaluate --truth-image`` places a 2D file
    (:func:`cardioscar.prepare.myocardium.plane_image_as_slice`); None for any other truth.

    Why: Slicer reads a 2D file as a one-slice volume at z = 0, off every slice of the stack, so it
    was scored there (slice index 0: the mesh's nodes near z = 0 against the drawn slice's labels,
    no warning) or refused as "out of range" for the slice it was drawn on."""
    import SimpleITK as sitk

    from cardioscar.io.imageio import is_plane_file
    from cardioscar.logic import plane_truth_without_grid
    from cardioscar.prepare.myocardium import plane_image_as_slice

    def from_plane_file(node) -> bool:
        storage = node.GetStorageNode() if node is not None and node.IsA("vtkMRMLVolumeNode") else None
        return storage is not None and bool(storage.GetFileName()) and is_plane_file(storage.GetFileName())

    if not from_plane_file(truth_node):
        return None
    if mask_node is None or from_plane_file(mask_node):
        raise plane_truth_without_grid(truth_node.GetName())
    grid = scar_source_from_node(mask_node, options.myocardium_segment).slices(
        options.slice_axis, options.parsed_slice_indices(), half_width(mask_node, options.half_thickness, dicom_database))
    # the node's one slice, in LPS: the 2D file's pixels, spacing and origin, as the CLI reads the file
    [drawn] = scar_source_from_node(truth_node).slices("z", [0], 1.0)
    plane = sitk.GetImageFromArray(drawn.values)
    plane.SetSpacing(tuple(float(v) for v in drawn.spacing))
    plane.SetOrigin(tuple(float(v) for v in drawn.origin[:2]))
    return [plane_image_as_slice(plane, truth_node.GetName(), grid, "--truth-image")]


def _target_slices(scar_nodes, options: ReconstructionOptions, dicom_database=None,
                   myocardium_mask=None, placed: Optional[list] = None) -> tuple[list, object]:
    """The chosen slices of one scar node or of a list of them, with their training targets (NaN
    outside the myocardium when one is given) and the :class:`cardioscar.prepare.myocardium.MyocardiumReport`.
    ``dicom_database``: where ``half_thickness="auto"`` may look up a node's DICOM files;
    ``myocardium_mask``: a mask volume node; ``placed``: the one node's chosen slices, already
    read (a 2D truth placed on its mask's slice: :func:`_plane_truth`)."""
    from cardioscar.prepare.slices import pooled_slices
    from cardioscar.prepare.targets import check_scar_labels, scar_label_pixels, slice_targets, unmatched_labels

    nodes = list(scar_nodes) if isinstance(scar_nodes, (list, tuple)) else [scar_nodes]
    sources = [scar_source_from_node(node, options.myocardium_segment) for node in nodes or [None]]
    labels = [source.label for source in sources if source.is_label_map]
    if 0 < len(labels) < len(sources):
        raise CardioScarError(f"Give inputs of one kind: {', '.join(labels)} hold labels, the others intensities.")
    for node in nodes:
        check_file_of_node(node)
        check_slices_where_acquired(node, dicom_database)
    halves = [half_width(node, options.half_thickness, dicom_database) for node in nodes]
    axis, indices = options.slice_axis, options.parsed_slice_indices()
    for node in nodes:
        if counted_from_the_other_end(node, axis):
            last = slice_count(node, axis) - 1
            logger.warning("'%s': Slicer numbers its slices along %s from the other end than its file does (the "
                           "file's axes are left-handed): the indices here are Slicer's (as the Data Probe shows), so "
                           "file slice k is slice %d-k here, and cardioscar prepare counts the file's way",
                           node.GetName(), axis, last)
    scar_labels = options.parsed_scar_labels(bool(labels))
    single = len(sources) == 1
    per_image = [placed] if placed is not None else [source.slices(axis, indices if single else None, half)
                                                     for source, half in zip(sources, halves)]
    slices = per_image[0] if single else pooled_slices(per_image, axis, indices)
    # the input each chosen slice came from (pooling keeps the layer objects)
    owner_of = {id(layer): source for source, layers in zip(sources, per_image) for layer in layers}
    owners = [owner_of[id(layer)] for layer in slices]
    if labels:  # 0/1 slice by slice: a segmentation's scar is label 1, whatever labels the label maps use
        chosen = [owner.scar_labels(scar_labels) for owner in owners]
        # one input without scar is fine when pooled; scar labels that match nothing anywhere are not,
        # unless a myocardium is given: then it is a scar-free heart (targets.warn_scar_free)
        if sum(scar_label_pixels([layer], mine) for layer, mine in zip(slices, chosen)) == 0:
            wanted = [label for mine in chosen for label in mine]
            if myocardium_mask is None and not options.parsed_myocardium_labels() \
                    and not options.myocardium_segment.strip():
                raise unmatched_labels(slices, wanted)
            if all(owner.from_segmentation for owner in owners):
                _warn_empty_scar_segments({id(owner): owner for owner in owners}.values())
            else:
                _warn_scar_free(slices, wanted, options, myocardium_mask)
        targets = [slice_targets([layer], scar_labels=mine, normalize=options.normalize_intensities,
                                 require_scar=False)[0] for layer, mine in zip(slices, chosen)]
        for source in {id(owner): owner for owner in owners}.values():
            if not source.from_segmentation:  # a segmentation's scar is its segment, chosen by name
                check_scar_labels([layer for layer, owner in zip(slices, owners) if owner is source],
                                  source.scar_labels(scar_labels))
    else:
        # a label map loaded as a scalar volume, with scar labels typed: checked as a label map node is;
        # with a myocardium mask node, scar labels that match nothing are a scar-free heart, as in prepare
        targets = slice_targets(slices, scar_labels=scar_labels, normalize=options.normalize_intensities,
                                require_scar=myocardium_mask is None)
        if scar_labels is not None:
            check_scar_labels(slices, scar_labels)
            if myocardium_mask is not None:
                _warn_scar_free(slices, scar_labels, options, myocardium_mask)
    return restrict_targets(slices, targets, owners, options, myocardium_mask)


def _warn_empty_scar_segments(sources) -> None:
    """A segmentation's scar segment without a voxel on the chosen slices, its myocardium given: a
    scar-free heart, warned in the segmentation's terms.

    Why: the label maps' warning ("Scar labels 1 match no pixel ... labels present: 0, 2 ... give
    the scar labels of this label map") named labels the user never typed and a box (*Scar labels*)
    that does not apply to a segmentation, whose scar is its segment. Its refusals of mistyped scar
    labels do not apply either: the scar segment is chosen by name, not by label."""
    from cardioscar.prepare.targets import as_used

    for source in sources:
        where = ("on the chosen slices" if (source.volume_kji == SEGMENT_SCAR).any()
                 else "anywhere (the segment is empty)")
        logger.warning("The scar segment '%s' of '%s' has no voxel %s: %s, a scar-free heart; if this patient has "
                       "scar, paint it in '%s' on the chosen slices (or choose the slices it is painted on)",
                       source.scar_segment, source.label, where,
                       as_used("every myocardium pixel trains as healthy",
                               "every node scored on the myocardium is scored against a healthy truth"),
                       source.scar_segment)


def _warn_scar_free(slices: list, scar_labels: list[int], options: ReconstructionOptions, mask_node=None) -> None:
    """Scar labels that match no pixel with a myocardium given: a scar-free heart (a warning), or
    mistyped when the myocardium holds two or more of the map's labels (refused), as in prepare
    (:func:`cardioscar.prepare.targets.warn_scar_free`); a mask node's myocardium is sampled here
    only on this rare path."""
    from cardioscar.prepare.targets import warn_scar_free

    if mask_node is None:
        warn_scar_free(slices, scar_labels, options.parsed_myocardium_labels())
    else:
        warn_scar_free(slices, scar_labels, None,
                       masks_from_node(mask_node, slices, options.parsed_myocardium_labels()))


@contextmanager
def verb_of_the_work(verb: str) -> Iterator[None]:
    """Mark an error raised inside (or memory running out) with the ``cardioscar`` verb whose work
    ran (``error.cardioscar_verb``), unless an inner step marked it first.

    Why: :meth:`CardioScarLogic.train_and_apply` does prepare's, train's and apply's work; train's and
    apply's options share names but not meanings (``--batch-size``, ``--mc-samples``) and prepare has
    neither, so a face must know which step ran out of memory to name what helps it (the batch script
    named train's when the prediction, or the preparation, had)."""
    try:
        yield
    except (CardioScarError, MemoryError) as error:
        if not hasattr(error, "cardioscar_verb"):
            error.cardioscar_verb = verb
        raise


class CardioScarLogic:
    """Reconstruct 3D scar on a model node from LGE slices (Qt-free, GUI-free)."""

    def __init__(self, scene=None, color_logic=None, dicom_database=None) -> None:
        self.scene = scene if scene is not None else slicer.mrmlScene
        self.color_logic = color_logic if color_logic is not None else color_logic_for(self.scene)
        #: Where a slab half-width of "auto" finds the files of a volume loaded through the DICOM
        #: module; ``None``: the application's ``slicer.dicomDatabase`` at the time of the run (it
        #: may be opened or switched after the module loads). Without one (slicer-core, a DICOM
        #: module never opened) the files the volumes' storage nodes name are read.
        self.dicom_database = dicom_database
        #: Checkpoint of the latest successful training (what "Save model" writes).
        self.last_checkpoint: Optional[dict] = None

    # ------------------------------------------------------------------ queries

    @staticmethod
    def slice_count(node, slice_axis: str) -> int:
        """Slices along ``slice_axis`` of a volume node (0 when unknown); valid indices 0..n-1."""
        return slice_count(node, slice_axis)

    def default_heart_model(self):
        """The first model node a user loaded, or None: the panel's initial choice. The slice
        views' own models ("Red Volume Slice", hidden) are model nodes too and come first."""
        for index in range(self.scene.GetNumberOfNodesByClass("vtkMRMLModelNode")):
            node = self.scene.GetNthNodeByClass(index, "vtkMRMLModelNode")
            if not node.GetHideFromEditors() and not slicer.vtkMRMLSliceLogic.IsSliceModelNode(node):
                return node
        return None

    #: Node-reference role under which the panel's "Also use" inputs are kept on its parameter
    #: node (the parameter-node wrapper has no connector for a checkable node box), so that a
    #: saved scene restores them.
    EXTRA_INPUTS_ROLE = "CardioScarExtraInput"

    @classmethod
    def extra_inputs(cls, parameter_node) -> list:
        """The extra input nodes kept on ``parameter_node`` (a vtkMRMLScriptedModuleNode), in order."""
        count = parameter_node.GetNumberOfNodeReferences(cls.EXTRA_INPUTS_ROLE)
        nodes = [parameter_node.GetNthNodeReference(cls.EXTRA_INPUTS_ROLE, i) for i in range(count)]
        return [node for node in nodes if node is not None]

    @classmethod
    def set_extra_inputs(cls, parameter_node, nodes) -> None:
        """Keep ``nodes`` as the extra inputs on ``parameter_node``, replacing those kept before."""
        parameter_node.RemoveNodeReferenceIDs(cls.EXTRA_INPUTS_ROLE)
        for node in nodes:
            parameter_node.AddNodeReferenceID(cls.EXTRA_INPUTS_ROLE, node.GetID())

    # ------------------------------------------------------------------ runs

    @speaks_logic_words(RECONSTRUCTION_NAMES, RECONSTRUCTION_TRAINING_ADVICE)
    def train_and_apply(self, scar_node, model_node, options: Optional[ReconstructionOptions] = None,
                        progress_callback: Optional[ProgressCallback] = None,
                        should_cancel: Optional[CancelHook] = None, myocardium_mask=None, *,
                        blood_pool_node=None, remote_node=None) -> ReconstructionResult:
        """Train on the chosen slices of ``scar_node`` and write the scar fields on ``model_node``.

        ``scar_node`` may also be a list of volume / segmentation nodes of one kind (intensities,
        or label maps and segmentations), e.g. one per breath-hold series plus the long-axis
        views as Slicer loads them; the slice indices then count the slices of all of them, in
        the order given. The panel runs the same three steps with the middle one in a worker
        process (:mod:`CardioScarLogic.background`). ``myocardium_mask``: a label map or 0/1
        volume node of the myocardium (its labels in ``options.myocardium_labels``, else non-zero);
        chosen pixels outside it carry no constraint.
        With ``options.scar_rule`` the ``scar_node`` is the raw LGE and ``myocardium_mask`` (and, for
        IIR, ``blood_pool_node``; for n-SD, optionally ``remote_node``) are label maps on its grid
        or segmentations with the named segments (:mod:`CardioScarLogic.rulemasks`).

        Raises:
            CardioScarError: a one-line, actionable problem with the inputs or options, or a torch
                older than :data:`TORCH_MINIMUM`.
            cardioscar.errors.TrainingCancelled: ``should_cancel()`` returned True (nothing written).
        """
        from cardioscar.fit.devices import describe_device, resolve_device
        from cardioscar.logic import train_scar_model

        check_torch_version()
        with verb_of_the_work("prepare"):
            run = self.prepare_training(scar_node, model_node, options, myocardium_mask,
                                        blood_pool_node=blood_pool_node, remote_node=remote_node)
        device = resolve_device(run.options.force_cpu)
        logger.info("CardioScar: training on %s, %d rows in %d groups", describe_device(device),
                    run.prepared.n_nodes, run.prepared.n_groups)
        with verb_of_the_work("train"):
            checkpoint = train_scar_model(run.prepared, run.options.training_config(), device,
                                          progress_callback=progress_callback, should_cancel=should_cancel)
        with verb_of_the_work("apply"):
            inference = self._predict(checkpoint, run.points, run.options, device, should_cancel)
        return self.finish_training(run, model_node, checkpoint, inference, describe_device(device))

    @speaks_logic_words(RECONSTRUCTION_NAMES, RECONSTRUCTION_TRAINING_ADVICE)
    def prepare_training(self, scar_node, model_node, options: Optional[ReconstructionOptions] = None,
                         myocardium_mask=None, *, blood_pool_node=None, remote_node=None) -> PreparedRun:
        """Read the inputs (copies only) and map the chosen slices onto the mesh: the training rows
        (with ``options.scar_rule``: targets graded from the raw LGE inside ``myocardium_mask``)."""
        from cardioscar.logic import prepare_from_slices

        options = options or ReconstructionOptions()
        _check_model_node(model_node)
        started = time.perf_counter()
        database = self.dicom_database if self.dicom_database is not None else getattr(slicer, "dicomDatabase", None)
        rule_record = ""
        if options.scar_rule:
            slices, rule_record = rule_slices(scar_node, options, myocardium_mask, blood_pool_node, remote_node,
                                              database)
            myocardium = rule_myocardium(slices, options, myocardium_mask)
        else:
            slices, myocardium = _target_slices(scar_node, options, database, myocardium_mask)
        points = model_points_lps(model_node)
        coverage = world_mesh_lps(model_node, points) if options.partial_volume_correction else None
        prepared = prepare_from_slices(points, slices, coverage_mesh=coverage,
                                       scar_targets=not options.normalize_intensities,
                                       slice_profile=options.slice_profile, myocardium_given=bool(myocardium.source))
        prepared.myocardium_source = myocardium.source
        prepared.scar_rule = rule_record  # into the checkpoint's provenance, as prepare --scar-rule
        typed = None if options.scar_rule else options.parsed_scar_labels(False)
        prepared.scar_labels = ",".join(str(v) for v in typed or ())  # as prepare --scar-labels records them
        prepared.dropped_outside_myocardium = myocardium.dropped_pixels
        slab = (sorted({layer.half_thickness for layer in slices}), options.half_thickness == RECORDED)
        return PreparedRun(options, points, prepared, slab, started, myocardium)

    def finish_training(self, run: PreparedRun, model_node, checkpoint: dict, inference, device: str) -> ReconstructionResult:
        """Write a finished training's fields on ``model_node`` (the input model or a copy of it)
        and keep its checkpoint for "Save model"."""
        result = self._publish(model_node, run.points, inference, checkpoint, run.options, device,
                               time.perf_counter() - run.started, with_plot=True, slab=run.slab,
                               myocardium=run.myocardium)
        result.prepared = run.prepared
        self.last_checkpoint = checkpoint
        return result

    @speaks_logic_words(RECONSTRUCTION_NAMES, RECONSTRUCTION_TRAINING_ADVICE)
    def apply_model(self, model: Union[dict, str, Path], model_node,
                    options: Optional[ReconstructionOptions] = None,
                    should_cancel: Optional[CancelHook] = None) -> ReconstructionResult:
        """Predict with a saved checkpoint (path or dict) on ``model_node``; no training."""
        from cardioscar.fit.checkpoint import check_checkpoint_format
        from cardioscar.fit.devices import describe_device, resolve_device
        from cardioscar.logic import check_mesh_for_checkpoint, load_trained_model

        check_torch_version()
        options = options or ReconstructionOptions()
        _check_model_node(model_node)
        started = time.perf_counter()
        if isinstance(model, dict):  # a file is checked as it is read; a dict before its keys are read
            check_checkpoint_format(model, "The model given (a checkpoint dict)")
        checkpoint = model if isinstance(model, dict) else load_trained_model(Path(model))
        points = model_points_lps(model_node)
        check_mesh_for_checkpoint(checkpoint, points, f"The model '{model_node.GetName()}'")
        device = resolve_device(options.force_cpu)
        inference = self._predict(checkpoint, points, options, device, should_cancel)
        return self.finish_prediction(model_node, points, checkpoint, inference, options, describe_device(device),
                                      started)

    def finish_prediction(self, model_node, points: np.ndarray, checkpoint: dict, inference,
                          options: ReconstructionOptions, device: str, started: float) -> ReconstructionResult:
        """Write a saved model's finished prediction on ``model_node`` (no loss plot)."""
        return self._publish(model_node, points, inference, checkpoint, options, device,
                             time.perf_counter() - started, with_plot=False)

    @speaks_logic_words(SCORING_NAMES)
    def score_on_slices(self, truth_node, model_node, options: Optional[ReconstructionOptions] = None,
                        myocardium_mask=None, *, truth_threshold: Optional[float] = None,
                        write_truth: bool = True) -> dict:
        """Score the ``scar_probability`` on ``model_node`` against the truth of ``truth_node``'s
        chosen slices, as ``cardioscar evaluate --truth-image`` does (the same slices, labels and
        checks as training reads: ``options.slice_indices``, ``scar_labels``, ``myocardium_labels``
        or ``myocardium_segment``, ``half_thickness``; a scar map cut at ``truth_threshold``).
        Returns that command's JSON as a dict; ``write_truth`` puts ``scar_truth`` (NaN where not
        scored), ``scar_truth_scored`` and ``scar_truth_slice`` on the model, to show where the
        experts' labels fall on it."""
        from cardioscar.evaluate.metrics import prediction_fields
        from cardioscar.io.meshio import Mesh
        from cardioscar.logic import check_truth_options, score_on_slices
        from cardioscar.prepare.targets import reading_for_scoring

        options = options or ReconstructionOptions()
        _check_model_node(model_node)
        if write_truth:
            _check_truth_may_be_written(model_node)
        label_map = (options.scar_labels is not None or truth_node.IsA("vtkMRMLLabelMapVolumeNode")
                     or truth_node.IsA("vtkMRMLSegmentationNode"))
        has_myocardium = (myocardium_mask is not None or bool(options.parsed_myocardium_labels())
                          or bool(options.myocardium_segment.strip()))
        cut = check_truth_options(label_map, has_myocardium, truth_threshold)
        probability, uncertainty, _ = prediction_fields(Mesh(model_node.GetMesh(), "LPS"), results.PROBABILITY,
                                                        results.UNCERTAINTY)
        database = self.dicom_database if self.dicom_database is not None else getattr(slicer, "dicomDatabase", None)
        with reading_for_scoring():  # the checks' messages speak of the score, not of training
            slices, _ = _target_slices(truth_node, options, database, myocardium_mask,
                                       _plane_truth(truth_node, options, myocardium_mask, database))
        scores, sampled = score_on_slices(model_points_lps(model_node), slices, probability, uncertainty=uncertainty,
                                          threshold=options.threshold or 0.5, truth_threshold=cut,
                                          names=(model_node.GetName(), truth_node.GetName()))
        if write_truth:
            results.write_point_arrays(model_node, sampled.point_arrays())
        return scores

    def save_model(self, path: Union[str, Path], checkpoint: Optional[dict] = None) -> None:
        """Write ``checkpoint`` (default: the latest training) to a ``.pth`` file, atomically."""
        from cardioscar.logic import save_trained_model

        checkpoint = checkpoint if checkpoint is not None else self.last_checkpoint
        if checkpoint is None:
            raise CardioScarError("There is no trained model to save yet: run 'Train and apply' first.")
        self.check_model_path(path)
        save_trained_model(checkpoint, Path(path))

    def show_field(self, model_node, field: str = results.PROBABILITY):
        """Colour a result by ``scar_probability``, ``scar_error_risk`` or ``scar_uncertainty``
        (:data:`CardioScarLogic.results.SHOWN_FIELDS`) with its legend; returns the legend node."""
        return results.show_field(model_node, field, self.color_logic)

    @staticmethod
    def check_model_path(path: Union[str, Path]) -> None:
        """Refuse a model file name other than ``.pth`` (batch mode checks it before training)."""
        if Path(path).suffix.lower() != ".pth":
            raise CardioScarError(f"Save the model as a .pth file, got '{Path(path).name}'.")

    # ------------------------------------------------------------------ steps

    @staticmethod
    def _predict(checkpoint: dict, points: np.ndarray, options: ReconstructionOptions, device, should_cancel):
        """MC-dropout prediction with dropout masks drawn from ``options.seed`` (reproducible)."""
        from cardioscar.logic import predict_on_points

        return predict_on_points(checkpoint, points, int(options.inference_mc_samples),
                                 int(options.inference_batch_size), options.threshold, device,
                                 should_cancel=should_cancel, seed=int(options.seed))

    @staticmethod
    @speaks_logic_words(AHA_NAMES, LOGIC_AHA_ADVICE)
    def aha_segments(model_node, inputs: "AhaInputs", bullseye_png: Optional[Union[str, Path]] = None):
        """AHA 17-segment table, ``aha_segment`` arrays and optionally the bull's-eye PNG of a model
        (see ``CardioScarLogic.aha``); returns an ``AhaSceneResult`` whose ``summary`` says its
        warnings in this call's words, as its log does, and ``library_summary`` in the library's."""
        from .aha import analyse_model

        result = analyse_model(model_node, inputs, bullseye_png)
        return replace(result, summary=record_in_words(result.summary, AHA_NAMES, LOGIC_AHA_ADVICE),
                       library_summary=result.summary)

    @staticmethod
    @speaks_logic_words(AHA_NAMES, LOGIC_AHA_ADVICE)
    def check_aha_inputs(model_node, inputs: "AhaInputs") -> None:
        """Refuse, before a run, the AHA inputs that :meth:`aha_segments` would refuse on its
        result (a point off the wall, a model of both ventricles without an LV mask, debris); a
        warning of the inputs (swapped points) is said now. Changes nothing. For a training that
        is to be segmented after it: the batch script's ``--aha-dir``
        (``CardioScarLogic.aha.check_model_frame``)."""
        from .aha import check_model_frame

        check_model_frame(model_node, inputs)

    def _publish(self, model_node, points: np.ndarray, inference, checkpoint: dict, options: ReconstructionOptions,
                 device: str, seconds: float, with_plot: bool, slab: Optional[tuple] = None,
                 myocardium=None) -> ReconstructionResult:
        """Write everything into the scene; runs only after all computation succeeded. ``points``:
        the model's world LPS coordinates the prediction was made on."""
        if model_node.GetScene() is not self.scene:  # the panel pumps events during a run: the user may delete it
            raise CardioScarError(f"The model '{model_node.GetName()}' was removed from the scene during the run: "
                                  "nothing was written; choose a heart mesh and run again.")
        if not np.array_equal(model_points_lps(model_node), points):
            # the slices were mapped onto the nodes where they were when the run read them: moved since (a
            # transform changed, the points edited), the field would be written for a placement no longer shown
            raise CardioScarError(f"The model '{model_node.GetName()}' moved during the run (its points or its "
                                  "transform changed): the slices were mapped onto it where it was; nothing was "
                                  "written; run it again on the model as it is now.")
        binary = inference.binary_predictions
        # without a threshold the binary field of an earlier run is removed (None), not left beside
        # a probability it no longer matches
        arrays = {results.PROBABILITY: inference.mean_predictions.astype(np.float32),
                  results.UNCERTAINTY: inference.std_predictions.astype(np.float32),
                  results.BINARY: None if binary is None else binary.astype(np.uint8),
                  results.ERROR_RISK: inference.point_arrays().get(results.ERROR_RISK)}  # None: an earlier one removed
        history = checkpoint.get("history") if with_plot else None
        # volumes and areas of the mesh as shown (under its parent transform), the frame of the slices
        rows = results.summary_rows(world_mesh_lps(model_node, points), arrays[results.PROBABILITY],
                                    arrays[results.UNCERTAINTY], options.threshold, history, device, seconds, slab,
                                    myocardium, shape_prior=bool(checkpoint.get("shape_prior")))
        results.write_point_arrays(model_node, arrays)
        if drop_stale_tissue_tags(model_node.GetMesh()):
            # a *Tag* of an earlier result: the old scar's classes beside the new field (saved with the model)
            logger.warning("CardioScar: the model '%s' had tissue_tag tags of an earlier result; they are removed "
                           "(tag the new result again)", model_node.GetName())
        dropped = drop_earlier_result_fields(model_node.GetMesh())
        if dropped:
            logger.warning("CardioScar: the model '%s' had %s of an earlier result's channels or core model; they are "
                           "removed (they belong to that result's scar)", model_node.GetName(), ", ".join(dropped))
        tables = results.drop_referenced_nodes(model_node, (AHA_TABLE_REFERENCE, CHANNEL_TABLE_REFERENCE))
        if history is None:  # a saved model's prediction: the earlier training's loss curve is another network's
            tables += results.drop_loss_plot(model_node)
        if tables:
            logger.warning("CardioScar: the model '%s' had %s of an earlier result; removed (they describe that "
                           "result's scar or network: run the AHA segments or the channels again)",
                           model_node.GetName(), ", ".join(f"'{name}'" for name in tables))
        results.keep_scar_rule(model_node, checkpoint)
        results.keep_training_targets(model_node, checkpoint)
        legend = results.show_field(model_node, results.PROBABILITY, self.color_logic)
        table = results.update_summary_table(model_node, rows)
        chart = results.update_loss_plot(model_node, list(history.get("train_loss", []))) if history else None
        for measure, value, unit in rows:
            logger.info("CardioScar: %s = %s %s", measure, value, unit)
        return ReconstructionResult(arrays[results.PROBABILITY], arrays[results.UNCERTAINTY],
                                    arrays[results.BINARY], checkpoint, rows, table, chart, legend, device, seconds)


__all__ = ["CardioScarLogic", "PreparedRun", "ReconstructionResult", "ReconstructionOptions"]
