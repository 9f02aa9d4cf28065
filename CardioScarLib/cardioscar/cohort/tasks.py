"""One patient, on a worker: prepare -> train -> apply -> measure, written atomically as one folder.

The pipeline is the library's own (:mod:`cardioscar.logic`, the calls the ``prepare``/``train``/
``apply`` verbs make, with the same defaults), so a patient in a cohort gets the field the CLI
chain gives for the same seed. Outputs go to a hidden temporary folder beside ``D/<id>`` that is
renamed into place only when complete: a killed worker leaves no half-written patient behind.

With a scar rule (the manifest's ``scar_rule``) the patient takes the two-model path of ``prepare
--scar-rule``: a scar field (border zone + core) and a core field (``--scar-target core``) from the
same rule, trained and applied with the patient's seed; its border zone and core are then tissue
classes (the two fields' tags, as ``export --core-mesh`` tags them), not bands of one probability.

A user error (:class:`CardioScarError`, an unreadable file) is returned as a ``failed`` record
with its one-line message; it would fail the same way again, so it is not retried. Anything else
propagates, so that Dask retries the task (boundedly) on another attempt.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import socket
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterator, Optional

import numpy as np

from cardioscar.io.atomic import atomic_write, process_umask
from cardioscar.io.imageio import image_data_files
from cardioscar.cohort.manifest import DEFAULTS, PatientSpec, file_digest, in_manifest_terms, preparation_request
from cardioscar.cohort.summary import BAND_COLUMNS
from cardioscar.errors import CardioScarError
from cardioscar.simulation.hidden_channels import SAID_ONCE_PER_COHORT

logger = logging.getLogger(__name__)

#: Bump when the per-patient pipeline changes what it writes: older outputs are then redone.
PIPELINE_VERSION = 1
REPORT = "report.json"
MODEL = "model.pth"
#: The core model of a patient with a scar rule (``prepare --scar-target core``), beside the scar's MODEL.
CORE_MODEL = "core_model.pth"
PARTIAL = ".partial-"

#: Options whose value (a string) is a file: the masks (myocardium, blood pool, remote), an AHA label map.
FILE_OPTIONS = ("myocardium_mask", "blood_pool_mask", "remote_mask", "aha")
DEFAULT_TRUTH_FIELD = DEFAULTS["truth_field"]
#: Options added after cohorts were first run, with the default that behaves as before: left out
#: of the hash at that default, so results written before the option existed stay up to date.
LATER_OPTIONS = {"myocardium_margin": 0, "shape_prior": False, "training_mc_samples": None, "slice_profile": "box",
                 "dark_blood_lge": False, "channels": False,
                 **{name: None for name in ("scar_rule", "scar_thresholds", "blood_pool_labels", "blood_pool_mask",
                                            "remote_mask", "intensity_offset", "expert_scar_labels",
                                            "expert_core_labels", "fibres", "helix_angles")}}
#: Keys of a patient's record that go into its ``report.json`` only (too long for the summary's rows).
REPORT_ONLY = ("models", "scar_rule", "channel_search")
#: Sub-folder of a patient's outputs with the simulator files (the ``export`` column).
SIMULATION = "simulation"
#: Sub-folder with the conducting channels' files (the ``channels`` column).
CHANNELS = "channels"


def partial_ids(output_dir: Path) -> set[str]:
    """The patients with a temporary ``.<id>.partial-*`` folder in ``output_dir``: being fitted now
    (or interrupted there, before a run clears its own)."""
    return {path.name[1:].split(PARTIAL)[0] for path in output_dir.glob(f".*{PARTIAL}*")}


def prediction_name(spec: PatientSpec) -> str:
    """The annotated mesh keeps the input's format (``scar_prediction.vtu`` for a ``.vtu``)."""
    return f"scar_prediction{spec.mesh.suffix.lower()}"


def core_prediction_name(spec: PatientSpec) -> str:
    """The core model's prediction on the same mesh (a patient with a scar rule)."""
    return f"core_prediction{spec.mesh.suffix.lower()}"


def result_files(spec: PatientSpec) -> list[str]:
    """The files a complete result holds besides its report: the scar model and its prediction, and
    with a scar rule the core model and its prediction."""
    files = [MODEL, prediction_name(spec)]
    return files + ([CORE_MODEL, core_prediction_name(spec)] if spec.options["scar_rule"] else [])


def input_paths(spec: PatientSpec) -> list[tuple[str, Path]]:
    """(role, path) of every file or folder the patient's run reads: mesh, images, and the files
    named by options (a myocardium mask, an AHA label map)."""
    inputs = [("mesh", spec.mesh)] + [(f"image{i}", p) for i, p in enumerate(spec.images)]
    return inputs + [(role, Path(spec.options[role])) for role in FILE_OPTIONS
                     if isinstance(spec.options.get(role), str)]


def input_hash(spec: PatientSpec) -> str:
    """SHA-256 of the patient's options and the bytes of every input file (a DICOM folder: all its
    files, by relative name; a header with its voxels in another file, such as .mhd/.raw or
    .hdr/.img: that file too). Paths themselves are not hashed: moving a study keeps its outputs."""
    digest = hashlib.sha256()
    inputs = input_paths(spec)
    options = {name: value for name, value in spec.options.items()
               if name not in LATER_OPTIONS or value != LATER_OPTIONS[name]}
    for role in FILE_OPTIONS:  # files named by options: their contents count, not where they are
        if isinstance(options.get(role), str):
            options[role] = "<file>"
    digest.update(json.dumps({"pipeline": PIPELINE_VERSION, "options": options}, sort_keys=True).encode())
    for role, path in inputs:
        files = sorted(f for f in path.rglob("*") if f.is_file()) if path.is_dir() else [path]
        for file in files:
            digest.update(f"{role}:{file.relative_to(path) if path.is_dir() else ''}\n".encode())
            file_digest(file, digest)
            for data in image_data_files(file):  # none for one-file formats: their hashes are as before
                digest.update(f"{role}+{data.name}\n".encode())
                file_digest(data, digest)
    return digest.hexdigest()


def up_to_date(spec: PatientSpec, output_dir: Path, digest: str) -> bool:
    """True when ``D/<id>`` holds a complete result of exactly these inputs and options."""
    folder = output_dir / spec.id
    try:
        report = json.loads((folder / REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return report.get("input_hash") == digest and all((folder / name).is_file() for name in result_files(spec))


def _device(use_gpu: bool):
    """CPU, or the GPU of this worker: a LocalCluster's workers are named 0..N-1, so worker k
    takes GPU k mod (GPU count); a jobqueue worker sees only the GPUs its job was given."""
    import torch

    if not use_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise CardioScarError(f"--gpus-per-worker asks for a GPU but {socket.gethostname()} has no CUDA GPU "
                              "torch can use; run without it")
    index = 0
    try:
        from distributed import get_worker

        name = str(get_worker().name)
        index = int(name) % torch.cuda.device_count() if name.isdigit() else 0
    except (ImportError, ValueError):
        pass
    return torch.device(f"cuda:{index}")


def truth_values(spec: PatientSpec, mesh) -> Optional[np.ndarray]:
    """The patient's truth field for the Dice column: None where the mesh lacks the default one.

    Why checked (before training, by :func:`_pipeline`): a column naming a field the mesh lacks (a
    typo) gave ``"dice": null`` as for a mesh without a truth, and a percent or 0/255 truth was cut
    at 0.5, counting every partly scarred node as scar; ``evaluate`` refuses both.
    """
    from cardioscar.evaluate.metrics import check_unit_range

    name = spec.options["truth_field"]
    if not name or (name == DEFAULT_TRUTH_FIELD and name not in mesh.point_field_names()):
        return None
    if name not in mesh.point_field_names():
        raise CardioScarError(f"column 'truth_field' names '{name}' but {Path(spec.mesh).name} has no such point "
                              f"field (fields: {', '.join(mesh.point_field_names()) or 'none'}); fix the name or "
                              "leave the column empty")
    truth = mesh.point_array(name).astype(float).ravel()
    if not np.isfinite(truth).all():
        raise CardioScarError(f"column 'truth_field': {Path(spec.mesh).name} field '{name}' holds NaN or infinite "
                              "values; give a complete truth")
    check_unit_range(truth, f"column 'truth_field': {Path(spec.mesh).name} field '{name}'")
    return truth


def _tissue_tags(spec: PatientSpec, mesh, probability: np.ndarray,
                 core_probability: Optional[np.ndarray]) -> Optional[np.ndarray]:
    """With a core model, the two fields' node tags (healthy, border zone, core: ``DEFAULT_TAGS``)
    by :func:`cardioscar.simulation.tags.tag_mesh`, the rule ``export --core-mesh`` tags with (it
    refuses a core field that lies outside the scar field); None with one field."""
    if core_probability is None:
        return None
    from cardioscar.simulation.tags import tag_mesh

    return tag_mesh(mesh.dataset, probability, core_probability, spec.options["threshold"],
                    spec.options["core_threshold"]).node_tags


def _classes(spec: PatientSpec, probability: np.ndarray,
             tags: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Border-zone and core nodes: bands of the one probability (``threshold`` <= p <
    ``core_threshold``, p >= ``core_threshold``), or with a core model the two fields' ``tags``
    (:func:`_tissue_tags`)."""
    from cardioscar.simulation.tags import DEFAULT_TAGS

    if tags is None:
        core_mask = probability >= spec.options["core_threshold"]
        return (probability >= spec.options["threshold"]) & ~core_mask, core_mask
    return tags == DEFAULT_TAGS[1], tags == DEFAULT_TAGS[2]


def _measure(spec: PatientSpec, mesh, probability: np.ndarray, truth: Optional[np.ndarray],
             tags: Optional[np.ndarray] = None) -> dict:
    """Scar burden of the prediction on the mesh: volume (or area on a surface mesh) and shares, the
    border zone and core by :func:`_classes` (``tags``: a scar rule's two fields' node tags, None for
    one field, whose two bands go in :data:`BAND_COLUMNS`); Dice against ``truth``
    (:func:`truth_values`) where there is one."""
    from cardioscar.aha.wall import is_volumetric
    from cardioscar.evaluate.metrics import dice, node_volumes

    weights = node_volumes(mesh.dataset)
    total = float(weights.sum())
    threshold = spec.options["threshold"]
    border, core_mask = _classes(spec, probability, tags)
    # the scar is what is tagged border zone or core: with one field the same as probability >=
    # threshold (core_threshold lies above it); with two, it also counts the core model's core
    # where the scar field is below threshold, which the export tags core (EMIDEC P022: 0.92 ml,
    # so scar_percent was 0.87 points short of border_percent + core_percent)
    scar = border | core_mask

    def share(mask: np.ndarray) -> Optional[float]:
        return round(100.0 * float(weights[mask].sum()) / total, 4) if total > 0 else None

    volumetric = is_volumetric(mesh.dataset)
    measured = float(weights[scar].sum())
    score = None if truth is None else round(dice(probability, truth, threshold), 4)
    # one field's two cuts are probability bands, not tissue: named so, and not border_percent/core_percent
    split = ("border_percent", "core_percent") if tags is not None else BAND_COLUMNS
    return {
        "scar_volume_ml": round(measured / 1000.0, 4) if volumetric else None,
        "scar_area_cm2": None if volumetric else round(measured / 100.0, 4),
        "scar_percent": share(scar),
        split[0]: share(border),
        split[1]: share(core_mask),
        "classes": "bands" if tags is None else "tissue",
        "dice": score,
    }


#: Said after an AHA error of a row whose ``aha`` is a label map: the manifest reads it with fixed
#: labels (the CLI's defaults, ACDC's), so the CLI's ``--rv-label`` in the message cannot be given.
AHA_LABEL_MAP_HINT = ("the manifest reads an aha label map as RV blood pool 1 and myocardium 2 (ACDC's); for "
                      "another map (EMIDEC's has no RV) put the anterior RV insertion X,Y,Z in the aha column instead")


def _aha_options(spec: PatientSpec, space: str):
    """The AHA options of a row: its threshold, the first image's slice normal as the long axis,
    and its ``aha`` value as the RV insertions (the anterior one, or both; in the mesh's frame) or
    an RV label map."""
    import SimpleITK as sitk

    from cardioscar.aha import AhaOptions, LabelMap
    from cardioscar.aha.insertion import ijk_to_lps_of
    from cardioscar.io.imageio import read_image

    stack = read_image(spec.images[0])
    options = AhaOptions(threshold=spec.options["threshold"],
                         slice_normal=np.asarray(stack.GetDirection(), dtype=float).reshape(3, 3)[:, 2],
                         slice_normal_source=f"slice normal of {spec.images[0].name}")
    value = spec.options["aha"]
    if isinstance(value, list):  # [x, y, z] (anterior), or [[x, y, z], [x, y, z]] (anterior, inferior)
        points = np.asarray(value, dtype=float).reshape(-1, 3) * (np.array([-1.0, -1.0, 1.0]) if space == "RAS" else 1.0)
        options.rv_point = points[0]
        options.rv_inferior_point = points[1] if len(points) == 2 else None
    else:
        labels = read_image(value)
        options.labels = LabelMap(sitk.GetArrayFromImage(labels), ijk_to_lps_of(labels), Path(value).name)
    return options


def _aha_error(spec: PatientSpec, error: CardioScarError) -> CardioScarError:
    """The AHA step's error as the manifest's user must read it: which column, and (for a label
    map, whose RV label the manifest cannot set) what to put there instead."""
    value = spec.options["aha"]
    hint = "" if isinstance(value, list) else f"; {AHA_LABEL_MAP_HINT}"
    return CardioScarError(f"column 'aha': {str(error).splitlines()[0]}{hint}")


def check_aha(spec: PatientSpec, mesh) -> None:
    """Find the row's AHA frame (long axis, levels, RV insertions) on its input mesh before the fit.

    Why: the frame depends on the mesh and the ``aha`` value only, yet it was first found after
    the training, so a point off the wall or a label map without an RV failed the patient minutes
    (on a CPU) after the cause could have been named. A scar-free field stands in for the
    prediction; transmurality is left out (it needs the field, not the frame).

    A mesh of both ventricles (volumetric, or a closed surface) is refused first: the row's long axis is its slice normal,
    so the AHA step's own test (run where the mesh's shape gives the axis) never ran, and the RV
    free wall was segmented as LV myocardium, exit 0. A cohort has no LV mask: the advice is the
    manifest's. (A row with fibres or channels was tested by their checks already.) The frame is
    found by :func:`cardioscar.aha.check_frame`, as the batch script finds its own."""
    from cardioscar.aha import check_frame
    from cardioscar.aha.one_ventricle import check_one_ventricle, has_cross_sections

    if spec.options["aha"] is None:
        return
    if not (spec.options["fibres"] or spec.options["channels"]) and has_cross_sections(mesh.dataset):
        check_one_ventricle(mesh.dataset_lps(), spec.mesh.name, "column 'aha' (the AHA segmentation)",
                            " (a cohort has no LV mask), or leave the column 'aha' empty")
    try:
        check_frame(mesh, _aha_options(spec, mesh.space))
    except CardioScarError as error:
        raise _aha_error(spec, error) from None


def _add_point_field(mesh, name: str, values: np.ndarray) -> None:
    """Put ``values`` on ``mesh``'s nodes as point field ``name`` (in memory; the file is not changed)."""
    from vtk.util.numpy_support import numpy_to_vtk

    array = numpy_to_vtk(np.ascontiguousarray(values), deep=1)
    array.SetName(name)
    mesh.dataset.GetPointData().AddArray(array)


def _aha(spec: PatientSpec, prediction: Path, folder: Path, final: Path, tags: Optional[np.ndarray] = None) -> dict:
    """The AHA 17-segment table, bull's-eye and segmented mesh of the prediction into ``folder``;
    the long axis is the first image's slice normal (the short-axis stack's). ``aha.json`` names
    the prediction at ``final``, where it will be once the patient's folder is in place. With a
    scar rule's node ``tags`` the table also has each segment's border zone (as ``aha --tags-field
    tissue_tag --border-zone-tag 2`` on the export's ``heart.vtu``): a modeller's border zone per
    segment was nowhere in a rule row's results (EMIDEC P022: only the scar field's %). The record
    keeps the segments no slice covered, so the cohort's sheet marks them as ``bullseye.png`` does."""
    import dataclasses

    from cardioscar.aha import run_aha
    from cardioscar.io.meshio import read_mesh
    from cardioscar.simulation.opencarp import TAG_ARRAY
    from cardioscar.simulation.tags import DEFAULT_TAGS

    mesh = dataclasses.replace(read_mesh(prediction), path=final)
    options = _aha_options(spec, mesh.space)
    if tags is not None:
        _add_point_field(mesh, TAG_ARRAY, np.asarray(tags, dtype=np.int32))
        options.tags_field, options.border_zone_tag, options.core_tag = TAG_ARRAY, DEFAULT_TAGS[1], DEFAULT_TAGS[2]
    try:
        result = run_aha(mesh, folder, options)
    except CardioScarError as error:
        raise _aha_error(spec, error) from None
    record = {"folder": folder.name, "scar_pct_by_segment": {row["segment"]: row["scar_pct"] for row in result.rows},
              "lv_scar_pct": result.summary["lv"]["scar_pct"],
              "uncovered_segments": [row["segment"] for row in result.rows if not row["covered"]]}
    if tags is not None:  # drawn beside the scar on the cohort's bull's-eye sheet
        record["border_zone_pct_by_segment"] = {row["segment"]: row["border_zone_pct"] for row in result.rows}
    return record


def _channels(prediction: Path, core_prediction: Path, folder: Path, tags: np.ndarray) -> dict:
    """The conducting channels of a scar rule's two fields' node ``tags`` (as ``cardioscar channels
    --tags 1,2,3`` on the export's ``heart.vtu``, whose ``core_uncertainty`` is the core model's
    spread): ``channels.csv``, ``channels.json`` and ``channels_mesh.<ext>`` in ``folder``; returns
    the file names, the count, how many of them are near the mesh's open cut, the core's node count
    and the note that a corridor too narrow for the reconstruction may be hidden in it
    (:mod:`cardioscar.simulation.hidden_channels`; not among the patient's warnings: the cohort
    summary's ``notes`` say it once). A patient with
    no core node has no channel: its files say 0, as
    the library's warning does (``cardioscar channels`` and the batch script alike)."""
    from cardioscar.io.meshio import read_mesh
    from cardioscar.simulation.channels import run_channels
    from cardioscar.simulation.opencarp import TAG_ARRAY
    from cardioscar.simulation.tags import DEFAULT_TAGS

    mesh = read_mesh(prediction)
    _add_point_field(mesh, TAG_ARRAY, np.asarray(tags, dtype=np.int32))
    _add_point_field(mesh, "core_uncertainty", read_mesh(core_prediction).point_array("scar_uncertainty"))
    result = run_channels(mesh, folder, tags_field=TAG_ARRAY, tag_values=DEFAULT_TAGS)
    hidden = result.hidden
    return {"folder": folder.name, "files": sorted(path.name for path in folder.iterdir()),
            "n_channels": len(result.channels), "n_near_open_cut": result.near_open_cut,
            "core_nodes": hidden.core_nodes if hidden else 0, "note": hidden.summary() if hidden else ""}


def helix_deg(spec: PatientSpec) -> Optional[tuple[float, float]]:
    """The row's ``helix_angles`` for the fibre rule (None: the rule's default)."""
    angles = spec.options["helix_angles"]
    return None if angles is None else (float(angles[0]), float(angles[1]))


def _export(spec: PatientSpec, prediction: Path, folder: Path, core_prediction: Optional[Path] = None,
            scar_rule: Optional[dict] = None) -> dict:
    """The simulator files of ``spec``'s ``export`` formats in ``folder`` (``heart.*``), tagged
    healthy / border zone / core at the patient's ``threshold`` and ``core_threshold`` (as
    ``cardioscar export --border-zone T --core C``; with a scar rule, by the two fields and with
    the rule's record in the sidecar, as ``export --core-mesh core_pred --rule-from scar.npz``);
    returns the file names and the tag volumes. ``fibres`` rule: the LV fibre rule's fibres at
    ``helix_angles`` in every format (``export --fibres rule --helix-angles``)."""
    from cardioscar.simulation.export import export_model
    from cardioscar.simulation.opencarp import SaidBeforeTraining

    folder.mkdir()
    written, tags = [], None
    # kept apart from _KeptWarnings(same_file): it also keeps the repeats out of the log, in _export called alone
    with SaidBeforeTraining():
        for fmt in spec.options["export"]:
            tags, files = export_model(prediction, folder / "heart", fmt, border_zone=spec.options["threshold"],
                                       core=spec.options["core_threshold"], core_mesh=core_prediction,
                                       scar_rule=scar_rule, fibres_field=spec.options["fibres"],
                                       helix_deg=helix_deg(spec))
            written += [path.name for path in files.values()]
    return {"folder": folder.name, "files": sorted(written), "tags": tags.summary()}


def training_config(spec: PatientSpec, threads: int = 1):
    """What ``cardioscar train`` would be asked for this patient (its preset, seed, epochs, MC samples
    in the loss, prior)."""
    from cardioscar.fit.training import TrainingConfig

    options = spec.options
    overrides = {"seed": options["seed"], "num_threads": threads, "shape_prior": options["shape_prior"]}
    for column, field in (("max_epochs", "max_epochs"), ("training_mc_samples", "mc_samples")):
        if options[column] is not None:  # empty: the preset's
            overrides[field] = options[column]
    return TrainingConfig.fast(**overrides) if options["preset"] == "fast" else TrainingConfig(**overrides)


def _fit(spec: PatientSpec, target: str, mesh, model: Path, prediction: Path, threads: int, device) -> tuple:
    """prepare -> train -> apply of one field (``target``: scar, or a scar rule's core), the model
    and its prediction written; returns (prepared data, checkpoint, inference result). Both fields
    of a patient are trained and applied with its seed, as the two-model path of
    Documentation/lge-to-opencarp.md; the core
    prediction's ``scar_binary`` is its call at ``core_threshold``, where the tags cut it."""
    from cardioscar.logic import apply_scar_model, prepare_training_data, save_inference_result, save_trained_model, \
        train_scar_model

    options = spec.options
    prepared = prepare_training_data(preparation_request(spec, target))
    checkpoint = train_scar_model(prepared, training_config(spec, threads), device)
    save_trained_model(checkpoint, model)
    threshold = options["core_threshold"] if target == "core" else options["threshold"]
    result = apply_scar_model(model, mesh, options["mc_samples"], threshold=threshold, device=device,
                              seed=options["seed"])
    save_inference_result(result, mesh, prediction)
    return prepared, checkpoint, result


def _fit_details(checkpoint: dict) -> dict:
    """Fit quality of one model: loss, variance explained, epochs, and whether the prior was on."""
    from cardioscar.fit.training import variance_explained

    history = checkpoint["history"]
    variance = history.get("target_variance") or 0.0
    return {
        "best_loss": float(history["best_loss"]),
        "variance_explained": round(variance_explained(history["best_loss"], variance), 4) if variance > 0 else None,
        "epochs": int(history["epochs_run"]),
        # the kept run's seed: the fast preset retrains a missed scar patch from the next seed (EMIDEC
        # P026: seed 42's run called a 12-pixel patch healthy, 43's is kept), which options.seed hides
        "fit_seed": int(history["seed"]),
        # what the model trained with: with the fast preset's auto the targets decided, per patient
        "shape_prior": "on" if checkpoint.get("shape_prior") else "off",
    }


def _model_entry(model: str, prediction: Path, checkpoint: dict, result) -> dict:
    """One model's entry in ``report.json``'s ``models``: its files, fit and mean uncertainty."""
    return {"model": model, "prediction": prediction.name, **_fit_details(checkpoint),
            "mean_uncertainty": round(result.mean_uncertainty, 6)}


def _pipeline(spec: PatientSpec, folder: Path, final: Path, threads: int, use_gpu: bool,
              kept: "_KeptWarnings") -> dict:
    """prepare -> train -> apply into ``folder`` (twice with a scar rule: scar and core); returns
    the measurements and fit details. With two models, ``kept`` names the model each fit's warnings
    are about."""
    import torch

    from cardioscar.fit.devices import describe_device
    from cardioscar.io.meshio import read_mesh
    from cardioscar.simulation.opencarp import SaidBeforeTraining

    options = spec.options
    torch.set_num_threads(threads)  # inference too, not only training's num_threads
    device = _device(use_gpu)
    mesh = read_mesh(spec.mesh)
    truth = truth_values(spec, mesh)  # a wrong truth column, a mesh the export refuses, an AHA frame not
    # found (check_aha): each fails before the training
    if options["export"]:
        from cardioscar.simulation.opencarp import check_exportable, check_vtu_exportable, warn_about_pieces

        (check_exportable if "opencarp" in options["export"] else check_vtu_exportable)(mesh)
        warn_about_pieces(mesh)  # of the user's mesh, before the fit (the export's own is left out)
    if options["fibres"]:  # a mesh the fibre rule refuses (a biventricular one, a surface) too
        from cardioscar.simulation.fibres import DEFAULT_HELIX_DEG, rule_wall

        rule_wall(mesh, helix_deg(spec) or DEFAULT_HELIX_DEG)
    if options["channels"]:  # a surface, a biventricular or an unmerged mesh, which the channel search refuses
        from cardioscar.aha.wall import lv_wall
        from cardioscar.simulation.channels import check_searchable_mesh

        try:
            check_searchable_mesh(mesh)
        except CardioScarError as error:  # the manifest's words: which column asked for the search
            raise CardioScarError(f"column 'channels': {str(error).splitlines()[0]}; or leave the column 'channels' "
                                  "empty") from None
        lv_wall(mesh, "column 'channels' (the channel search)", "; or leave the column 'channels' empty")
        from cardioscar.simulation.opencarp import PIECES_CHANNELS, SEAM_CHANNELS, warn_about_pieces

        warn_about_pieces(mesh, PIECES_CHANNELS, seam=SEAM_CHANNELS)  # before the fit, as check_aha's
    check_aha(spec, mesh)
    prediction = folder / prediction_name(spec)
    with kept.about("scar model" if options["scar_rule"] else None):
        prepared, checkpoint, result = _fit(spec, "scar", mesh, folder / MODEL, prediction, threads, device)
    models = {"scar": _model_entry(MODEL, prediction, checkpoint, result)}
    core_prediction, core_probability, rule = None, None, None
    if options["scar_rule"]:
        rule = json.loads(prepared.scar_rule)
        core_prediction = folder / core_prediction_name(spec)
        with kept.about("core model"):
            _, core_checkpoint, core_result = _fit(spec, "core", mesh, folder / CORE_MODEL, core_prediction,
                                                   threads, device)
        core_probability = core_result.mean_predictions
        models["core"] = _model_entry(CORE_MODEL, core_prediction, core_checkpoint, core_result)
    tags = _tissue_tags(spec, mesh, result.mean_predictions, core_probability)  # before the export: its checks
    measured = _measure(spec, mesh, result.mean_predictions, truth, tags)
    aha = None
    with SaidBeforeTraining():  # the mesh's pieces were warned of before the fit, of the user's mesh
        if options["aha"] is not None:
            aha = _aha(spec, prediction, folder / "aha", final / prediction_name(spec), tags)
        exported = None if options["export"] is None else _export(spec, prediction, folder / SIMULATION,
                                                                   core_prediction, rule)
        channels = _channels(prediction, core_prediction, folder / CHANNELS, tags) if options["channels"] else None
    return {
        **measured,
        "mean_uncertainty": round(result.mean_uncertainty, 6),
        **_fit_details(checkpoint),
        "n_mesh_nodes": int(prepared.n_mesh_nodes),
        "n_groups": int(prepared.n_groups),
        "device": describe_device(device),
        "aha": aha,
        "export": exported,
        "channels": None if channels is None else channels["n_channels"],
        # of them, those with an entrance near the mesh's open cut (flagged: maybe the mesh's artefact)
        "channels_near_open_cut": None if channels is None else channels["n_near_open_cut"],
        # core searched: the summary's note that a narrow corridor may hide in it names this patient
        "channels_core_nodes": None if channels is None else channels["core_nodes"],
        "channel_search": channels,
        "models": models,
        "scar_rule": rule,
    }


def _install(folder: Path, target: Path) -> None:
    """Put the complete ``folder`` at ``target``, replacing an older result (two renames)."""
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / "result")
    os.replace(folder, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


class _KeptWarnings(logging.Handler):
    """The library's warnings about one patient, kept for its record while its pipeline runs.

    Why: on a worker they went to that process's stderr (a Slurm job's log), apart from the
    patient, while the summary said ``done``: a mesh of another patient (nodes outside the field
    of view), a scar label left out, a slab far off the slices' thickness, reached nobody. Only
    this thread's records are kept: a worker may run several patients at once. Each message once:
    a row exporting two formats checks and tags its mesh once per format (and once before the
    training), and said the same coincident nodes or 0/1 border zone two or three times. With a
    scar rule's two models, a fit's warning is prefixed by the model it is about (``scar model:``,
    ``core model:``): EMIDEC P047's three retry warnings did not say they were the scar model's.
    ``same_file`` maps a file name to the one it stands for: the AHA frame is checked on the row's
    mesh before the fit and found again on its prediction (the same nodes) after it, so a warning
    about the mesh's shape (an apex the slices did not reach: every EMIDEC row) was kept twice,
    once under each name; it is kept once, under the first name said."""

    def __init__(self, same_file: Optional[dict[str, str]] = None) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []
        self._said: set[str] = set()
        self._same_file = same_file or {}
        self._thread = threading.get_ident()
        self._about: Optional[str] = None

    @contextlib.contextmanager
    def about(self, model: Optional[str]) -> Iterator[None]:
        """Prefix the warnings said inside the block with ``model`` (None: no prefix)."""
        self._about = model
        try:
            yield
        finally:
            self._about = None

    def emit(self, record: logging.LogRecord) -> None:
        if getattr(record, SAID_ONCE_PER_COHORT, False):  # said once in the cohort summary's notes
            return
        message = in_manifest_terms(record.getMessage())  # the row's columns, as its errors say them
        if self._about:
            message = f"{self._about}: {message}"
        name, colon, rest = message.partition(": ")
        said = f"{self._same_file.get(name, name)}{colon}{rest}"
        if record.thread == self._thread and said not in self._said:
            self._said.add(said)
            self.messages.append(message)

    def __enter__(self) -> "_KeptWarnings":
        logging.getLogger("cardioscar").addHandler(self)
        return self

    def __exit__(self, *exc) -> None:
        logging.getLogger("cardioscar").removeHandler(self)


def run_patient(spec: PatientSpec, output_dir: str, digest: str, threads: int = 1, use_gpu: bool = False) -> dict:
    """The Dask task: run one patient into ``output_dir/<id>`` and return its summary record.

    A user error gives ``status: failed`` with the message (nothing of the patient is changed);
    other exceptions propagate to Dask, which retries the task.
    """
    out = Path(output_dir)
    start = time.perf_counter()
    record = {"id": spec.id, "input_hash": digest, "host": socket.gethostname(), "pid": os.getpid()}
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=f".{spec.id}{PARTIAL}", dir=out))
    os.chmod(folder, 0o777 & ~process_umask())  # mkdtemp's 0700 would hide the results from the user's group
    kept = _KeptWarnings(same_file={prediction_name(spec): spec.mesh.name})
    try:
        from cardioscar.aha.wall import walls_kept

        with kept, walls_kept():  # walls_kept: the fibre rule's and the channel search's wall, once per mesh
            record.update(_pipeline(spec, folder, out / spec.id, threads, use_gpu, kept))
        record.update(status="done", seconds=round(time.perf_counter() - start, 3), warnings=kept.messages)
        report_only = {key: record.pop(key) for key in REPORT_ONLY}
        report = {**record, **report_only, "inputs": {"mesh": str(spec.mesh), "images": [str(p) for p in spec.images]},
                  "options": spec.options, "pipeline_version": PIPELINE_VERSION}
        with atomic_write(folder / REPORT) as tmp:
            tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        _install(folder, out / spec.id)
        return record
    except (CardioScarError, OSError) as error:
        message = in_manifest_terms(str(error).splitlines()[0]) if str(error) else type(error).__name__
        return {**record, "status": "failed", "error": message, "seconds": round(time.perf_counter() - start, 3),
                "warnings": kept.messages}
    finally:
        shutil.rmtree(folder, ignore_errors=True)
