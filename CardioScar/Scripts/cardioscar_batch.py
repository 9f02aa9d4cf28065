#!/usr/bin/env python
"""CardioScar batch mode: the Slicer module's Logic on files, without a window.

Two ways to run it, same arguments, same results (both go through MRML storage nodes and the
same ``CardioScarLogic``)::

    Slicer --no-main-window --python-script CardioScar/Scripts/cardioscar_batch.py \\
        --volume lge.nii.gz --mesh heart.vtk --slices 2,5,8 --output heart_scar.vtk
    python CardioScar/Scripts/cardioscar_batch.py \\
        --volume lge.nii.gz --mesh heart.vtk --slices 2,5,8 --output heart_scar.vtk   # pip install slicer-core

Training and inference options keep the names of ``cardioscar train`` and ``cardioscar apply``.
Both verbs have an ``--mc-samples`` and a ``--batch-size``; this script does both steps, so
``--mc-samples`` / ``--batch-size`` mean what they mean for ``train`` (dropout passes in the loss,
rows per training batch) and ``--inference-mc-samples`` / ``--inference-batch-size`` are
``apply``'s ``--mc-samples`` / ``--batch-size``. With ``--model`` (apply a saved model, no
training) the training-only options are refused rather than silently ignored.

Bad input ends with one line on stderr and exit status 2; a crash with status 1. The line is the
library's, with each option this script calls otherwise named as here (``--aha-threshold`` where
``cardioscar aha`` says ``--threshold``; :data:`CardioScarLogic.wording.BATCH_NAMES`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

EXIT_USER_ERROR = 2
EXIT_FAILURE = 1
#: How this script's user gives a core model, in the warning that a model trained on 0/1 targets,
#: tagged alone, has its blurred edge as border zone (the panel's words name its boxes instead).
CORE_MODEL_ADVICE = ("run this script for a core model first (--scar-target core, or --scar-labels of the core; "
                     "--output CORE.vtk) and give its result as --core-mesh CORE.vtk")

#: Further `cardioscar train` options, passed to TrainingConfig under their field names.
_EXTRA_TRAINING = (("dropout_rate", float), ("base_lr", float), ("max_lr", float), ("lr_step_size", int),
                   ("hidden_dim", int), ("n_layers", int), ("convergence_tolerance", float))
#: Arguments that only a training run reads: refused with --model when they differ from their default.
_TRAINING_ONLY = ("volume", "slice_axis", "slices", "slice_thickness_padding", "scar_labels", "myocardium_labels",
                  "myocardium_mask", "myocardium_margin", "slice_profile", "normalize_intensities", "partial_volume_correction",
                  "preset", "shape_prior", "max_epochs", "early_stopping_patience", "mc_samples", "batch_size",
                  "save_model", "threads", "no_progress") + tuple(name for name, _ in _EXTRA_TRAINING)


def _add_package_paths() -> None:
    """Make ``CardioScarLogic`` and ``cardioscar`` importable from the repository or an install.

    Repository: <repo>/CardioScar/Scripts/this.py, <repo>/CardioScar/CardioScarLogic,
    <repo>/CardioScarLib/cardioscar. Installed extension: <qt-scripted-modules>/Scripts/this.py
    with CardioScarLogic and cardioscar beside Scripts.
    """
    here = Path(__file__).resolve().parent
    for folder, package in ((here.parent, "CardioScarLogic"), (here.parent, "cardioscar"),
                            (here.parent.parent / "CardioScarLib", "cardioscar")):
        if (folder / package / "__init__.py").is_file() and str(folder) not in sys.path:
            sys.path.insert(0, str(folder))


def build_parser() -> argparse.ArgumentParser:
    """Arguments (names shared with ``cardioscar prepare``, ``train`` and ``apply``); usage errors
    are one line, as with ``cardioscar``."""
    _add_package_paths()
    from cardioscar.cli import OneLineParser, on_off_auto

    parser = OneLineParser(
        prog="cardioscar_batch.py",
        description="Reconstruct 3D scar on a heart mesh from LGE slices with the CardioScar Slicer Logic.")
    io = parser.add_argument_group("inputs and outputs")
    io.add_argument("--volume", "--image", dest="volume", type=Path, nargs="+",
                    help="LGE image or scar label map (NIfTI, NRRD, MHA); needed to train. Several (e.g. the "
                         "short-axis stack and the long-axis slices) are pooled, --slices counting across them")
    io.add_argument("--mesh", "--mesh-vtk", dest="mesh", required=True, type=Path, help="heart mesh (.vtk, .vtp, .vtu)")
    io.add_argument("--output", required=True, type=Path,
                    help="output mesh with scar_probability, scar_uncertainty (and scar_binary)")
    io.add_argument("--model", type=Path, help="apply this saved model (.pth) instead of training")
    io.add_argument("--save-model", type=Path, help="also write the trained model (.pth)")
    io.add_argument("--summary", type=Path, help="also write the summary table (.csv)")
    io.add_argument("--snapshot", type=Path,
                    help="also write a PNG of the coloured mesh, drawn offscreen by Slicer's 3D displayable managers")

    sl = parser.add_argument_group("slices (as cardioscar prepare)")
    sl.add_argument("--slice-axis", choices=("x", "y", "z"), default="z", help="image index axis i, j or k (default z)")
    sl.add_argument("--slices", "--slice-indices", dest="slices", default="",
                    help="comma-separated slice indices, e.g. 2,5,8 (default: all)")
    sl.add_argument("--slice-thickness-padding", default=5.0,
                    help="slab half-width in mm along the slice normal (default 5.0), or 'auto': half the slice "
                         "thickness each volume's DICOM files record")
    sl.add_argument("--scar-labels", default="", help="the volume is a label map; these labels are scar (e.g. 3,4)")
    sl.add_argument("--myocardium-labels", default="",
                    help="labels of the myocardium (EMIDEC 2,3,4; ACDC 2): in the label map itself (with "
                         "--scar-labels) or in --myocardium-mask; pixels outside carry no constraint")
    sl.add_argument("--myocardium-mask", type=Path, default=None,
                    help="a 0/1 mask (or, with --myocardium-labels, a label image) of the myocardium in the same "
                         "patient frame as --volume; pixels outside carry no constraint. With --scar-rule it may be "
                         "a Slicer segmentation (.seg.nrrd) with --myocardium-segment")
    sl.add_argument("--myocardium-margin", type=int, default=0, metavar="PIXELS",
                    help="pixels outside the myocardium within this many pixels of it take the nearest myocardium "
                         "pixel's value instead of no constraint (as cardioscar prepare --myocardium-margin)")
    sl.add_argument("--slice-profile", choices=("box", "gaussian"), default="box",
                    help="the pixel's through-plane model: box (default) or gaussian, the scanner's smooth profile "
                         "with FWHM twice --slice-thickness-padding (as cardioscar prepare --slice-profile)")
    sl.add_argument("--myocardium-segment", default="",
                    help="with --scar-rule: the myocardium segment's name in a .seg.nrrd --myocardium-mask")
    sl.add_argument("--blood-pool-segment", default="",
                    help="with --scar-rule: the blood-pool segment's name (in --blood-pool-mask, else in "
                         "--myocardium-mask), when that is a .seg.nrrd")
    sl.add_argument("--remote-segment", default="",
                    help="with --scar-rule nsd: the remote segment's name (in --remote-mask, else in "
                         "--myocardium-mask), when that is a .seg.nrrd")
    sl.add_argument("--normalize-intensities", action="store_true", help="min-max scale raw LGE intensities to [0, 1]")
    sl.add_argument("--partial-volume-correction", action="store_true",
                    help="divide each pixel by the myocardial coverage of its footprint (volumetric meshes)")

    tr = parser.add_argument_group("training (as cardioscar train)")
    tr.add_argument("--preset", choices=("documented", "fast"), default="documented",
                    help="documented TrainingConfig defaults or the faster interactive preset")
    tr.add_argument("--max-epochs", type=int, default=None)
    tr.add_argument("--early-stopping-patience", type=int, default=None)
    tr.add_argument("--mc-samples", type=int, default=None, help="MC-dropout passes inside the training loss")
    tr.add_argument("--batch-size", type=int, default=None, help="rows per training batch")
    tr.add_argument("--seed", type=int, default=42, help="seed of training and of the inference dropout masks")
    tr.add_argument("--shape-prior", type=on_off_auto, default=None, metavar="{on,off,auto}",
                    help="on: learn a residual on the shape-based interpolation of the slices' scar; auto: on for drawn "
                         "0/1 targets over a stack of parallel slices, off for fractions, scar rules and long-axis "
                         "views (as cardioscar train --shape-prior; default: the preset's, off with documented, "
                         "auto with fast)")
    for name, kind in _EXTRA_TRAINING:
        tr.add_argument("--" + name.replace("_", "-"), type=kind, default=None, help=f"TrainingConfig.{name}")
    tr.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    tr.add_argument("--cpu", action="store_true", help="force CPU even when a CUDA GPU is available")
    tr.add_argument("--no-progress", action="store_true", help="no progress lines while training")

    ap = parser.add_argument_group("inference (as cardioscar apply)")
    ap.add_argument("--inference-mc-samples", type=int, default=10,
                    help="MC-dropout samples for probability and uncertainty (apply's --mc-samples, default 10)")
    ap.add_argument("--inference-batch-size", type=int, default=50000,
                    help="nodes per inference batch (apply's --batch-size, default 50000)")
    ap.add_argument("--threshold", type=float, default=None, help="also write scar_binary = probability >= threshold")
    _add_package_paths()
    from cardioscar.lge.options import add_prepare_options

    add_prepare_options(parser)  # --scar-rule and its masks, as cardioscar prepare
    sim = parser.add_argument_group("tissue tags and simulator export (as cardioscar export)")
    sim.add_argument("--border-zone", type=float, default=None,
                     help="tag healthy/border zone/core into --output (tissue_tag point and cell arrays); default 0.5")
    sim.add_argument("--core", type=float, default=None,
                     help="core threshold: on scar_probability (default 0.8), or on the core field with --core-mesh or "
                          "--core-field (default 0.5)")
    sim.add_argument("--core-mesh", type=Path, default=None,
                     help="the core model's result on the same mesh (a run with --scar-target core): tags from two "
                          "fields, as cardioscar export --core-mesh (implies tagging)")
    sim.add_argument("--core-field", default=None,
                     help="point field of core probability: in --core-mesh (default scar_probability), else in --mesh")
    sim.add_argument("--export-opencarp", type=Path, default=None, metavar="PREFIX",
                     help="also write PREFIX.pts/.elem/.json (implies tagging)")
    sim.add_argument("--units", choices=("um", "mm"), help="units of the .pts (default um)")
    sim.add_argument("--fibre-rule", action="store_true",
                     help="write PREFIX.lon from the LV fibre rule (helix +60 endo to -60 epi; rule-based, LV only)")
    sim.add_argument("--helix-angles", default=None, metavar="ENDO,EPI",
                     help="with --fibre-rule: helix angles (degrees) at the endocardium and epicardium (default "
                          "60,-60, Streeter 1969; as cardioscar export --helix-angles)")
    _add_channel_arguments(parser)
    _add_aha_arguments(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    return parser


def _add_channel_arguments(parser: argparse.ArgumentParser) -> None:
    """The channel search's options (``cardioscar channels``'s, named for this script: ``--layers``
    beside the network's ``--n-layers`` would be a trap)."""
    from cardioscar.simulation.channels_cli import depths

    ch = parser.add_argument_group("border-zone conducting channels (as cardioscar channels), after the tagging")
    ch.add_argument("--channels-dir", type=Path, default=None,
                    help="search the tagged result for conducting channels (implies tagging) and write channels.csv "
                         "and channels.json here; --output gains bz_channel and wall_depth (a volumetric LV mesh)")
    ch.add_argument("--channel-layers", type=depths, default=None,
                    help="depths searched, shares of the wall from the endocardium (default 0.1,0.2,...,0.9)")
    ch.add_argument("--channel-layer-width", type=float, default=None,
                    help="each layer's band of depth, a share of the wall (default 0.2)")
    ch.add_argument("--channel-max-width", type=float, default=None,
                    help="widest gap in the core (mm) that counts as a channel (default 10)")
    ch.add_argument("--channel-min-length", type=float, default=None,
                    help="shortest channel kept, mm between its entrances (default 10, 0 keeps every channel)")


def _channel_options(args: argparse.Namespace):
    """The channel search's options given (ChannelOptions' defaults for the rest), checked."""
    from cardioscar.simulation.channels import ChannelOptions

    options = ChannelOptions.given(layers=args.channel_layers, layer_width=args.channel_layer_width,
                                   max_width_mm=args.channel_max_width, min_length_mm=args.channel_min_length)
    options.check()
    return options


def _tag_thresholds(args: argparse.Namespace) -> tuple[float, float]:
    """--border-zone and --core with the tagging's defaults filled in (the core's 0.5 on a core field
    of --core-mesh or --core-field, else 0.8), checked."""
    from cardioscar.simulation.tags import resolved_thresholds

    return resolved_thresholds(args.border_zone, args.core, args.core_mesh is not None or args.core_field is not None)


def _add_aha_arguments(parser: argparse.ArgumentParser) -> None:
    """AHA 17-segment options, named as in ``cardioscar aha``; points in the mesh file's frame."""
    from cardioscar.commands.aha import NEGATIVE_POINT, _point

    parser._negative_number_matcher = NEGATIVE_POINT  # -12.5,30,41 is a point, not an option
    aha = parser.add_argument_group("AHA 17 segments (as cardioscar aha), after the reconstruction")
    aha.add_argument("--aha-dir", type=Path, help="write aha.csv, aha.json and bullseye.png here; the output mesh "
                                                  "gets aha_segment point and cell arrays")
    aha.add_argument("--rv-point", type=_point, help="anterior RV insertion X,Y,Z in the mesh file's frame")
    aha.add_argument("--rv-inferior-point", type=_point, help="inferior RV insertion X,Y,Z (optional)")
    aha.add_argument("--labels", type=Path, help="label map with an RV blood-pool label (instead of --rv-point)")
    aha.add_argument("--rv-label", type=int, default=1)
    aha.add_argument("--myocardium-label", type=int, default=2)
    aha.add_argument("--apex", type=_point, help="apex X,Y,Z (with --base: the long axis)")
    aha.add_argument("--base", type=_point, help="centre of the base X,Y,Z")
    aha.add_argument("--slice-normal-from", type=Path, help="short-axis image whose slice normal is the long axis")
    aha.add_argument("--aha-threshold", type=float, default=0.5, help="scar where scar_probability >= this (0.5)")
    aha.add_argument("--lv-mask", help="point field marking the LV nodes: non-zero, or equal to --lv-value")
    aha.add_argument("--lv-value", type=float, help="value of --lv-mask on LV nodes (e.g. a region label)")
    aha.add_argument("--tags-field", help="point field of scar tags (border zone = --border-zone-tag)")
    aha.add_argument("--border-zone-tag", type=int, default=None,
                     help="border-zone value of --tags-field (default 1; required on the tissue_tag this script's "
                          "tagging writes, whose default border zone is 2)")
    aha.add_argument("--core-tag", type=int, default=None,
                     help="dense-core value of --tags-field: adds each segment's core %% (3 for the script's tags)")
    aha.add_argument("--transmurality", choices=("auto", "required", "off"), default="auto")


#: AHA options that need --aha-dir.
_AHA_ONLY = ("rv_point", "rv_inferior_point", "labels", "apex", "base", "slice_normal_from", "lv_mask", "lv_value",
            "tags_field", "border_zone_tag", "core_tag")


def _check_outputs_apart(args: argparse.Namespace) -> None:
    """Refuse, before any work, two of this run's outputs on one path, an output folder that is one
    of its files, and a --summary, --save-model or --snapshot that is an input.

    Why: --summary naming the --output mesh replaced the result with the summary's CSV after the
    run (exit 0, "Wrote o.vtk"), naming one of the --export-opencarp files replaced that file, and
    naming the --mesh replaced the user's mesh; --aha-dir or --channels-dir naming a file output
    failed only after the training ("is a file, not a folder")."""
    from cardioscar.aha.analysis import FILES as AHA_FILES
    from cardioscar.errors import CardioScarError
    from cardioscar.io.checks import SET_SUFFIXES, check_not_an_input
    from cardioscar.simulation.channels import TABLE_FILES

    inputs = [args.mesh, args.core_mesh, args.model, args.myocardium_mask, args.blood_pool_mask, args.remote_mask,
              args.labels, args.slice_normal_from, *(args.volume or [])]
    for option in ("summary", "save_model", "snapshot"):
        if getattr(args, option) is not None:
            check_not_an_input(getattr(args, option), inputs, "--" + option.replace("_", "-"))
    files = {"--output": [args.output], "--summary": [args.summary], "--save-model": [args.save_model],
             "--snapshot": [args.snapshot]}
    if args.export_opencarp is not None:
        files["--export-opencarp"] = [args.export_opencarp.with_name(args.export_opencarp.name + suffix)
                                      for suffix in SET_SUFFIXES]
    for option, folder, names in (("--aha-dir", args.aha_dir, AHA_FILES.values()),
                                  ("--channels-dir", args.channels_dir, TABLE_FILES.values())):
        if folder is not None:
            files[option] = [folder / name for name in names]
    written: dict[Path, str] = {}
    for option, paths in files.items():
        for path in (path for path in paths if path is not None):
            earlier = written.setdefault(path.resolve(), option)
            if earlier != option:
                raise CardioScarError(f"{option} and {earlier} would both write {path}: give each output its own path")
    for option, folder in (("--aha-dir", args.aha_dir), ("--channels-dir", args.channels_dir)):
        if folder is not None and folder.resolve() in written:
            raise CardioScarError(f"{option} {folder} is the file {written[folder.resolve()]} writes: give a folder "
                                  "of its own")


def _check_arguments(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Everything that can be checked before reading files or training (a mistake found after a
    long training would lose it)."""
    from cardioscar.aha import AhaOptions
    from cardioscar.aha.analysis import with_border_zone_tag
    from cardioscar.io.checks import check_not_an_input, check_output_dir, check_output_path, check_seed
    from cardioscar.errors import CardioScarError
    from cardioscar.io.meshio import MESH_SUFFIXES

    if args.model is None and args.volume is None:
        raise CardioScarError("Give --volume (the LGE image to train on) or --model (a saved .pth to apply).")
    if args.model is not None:
        given = [f"--{name.replace('_', '-')}" for name in _TRAINING_ONLY
                 if getattr(args, name) != parser.get_default(name)]
        if given:
            raise CardioScarError(f"{', '.join(given)} only apply to training; --model applies a saved model without "
                                  "training (inference takes --inference-mc-samples, --inference-batch-size, "
                                  "--threshold and --seed).")
    check_output_path(args.output, "--output", MESH_SUFFIXES)
    check_not_an_input(args.output, (args.mesh, args.core_mesh), "--output")  # as the command line's apply
    check_seed(args.seed)  # the option's name: the Logic's options call it "seed"
    for option, suffixes in (("save_model", (".pth",)), ("summary", ()), ("snapshot", (".png",))):
        if getattr(args, option) is not None:
            check_output_path(getattr(args, option), "--" + option.replace("_", "-"), suffixes)
    rule_only = ("scar_thresholds", "blood_pool_mask", "blood_pool_labels", "remote_mask", "intensity_offset",
                 "myocardium_segment", "blood_pool_segment", "remote_segment", "expert_scar_labels",
                 "expert_core_labels", "dark_blood_lge")
    given = [f"--{name.replace('_', '-')}" for name in rule_only if getattr(args, name)]
    if args.scar_rule is None and given:
        raise CardioScarError(f"{', '.join(given)} need --scar-rule {{nsd,fwhm,iir,psi}}.")
    if args.scar_rule is not None and args.intensity_offset:  # before the masks are read, as the command line
        from cardioscar.lge.rules import check_intensity_offset

        check_intensity_offset(args.scar_rule, args.intensity_offset)
    if args.scar_rule is None and args.myocardium_mask and args.myocardium_mask.name.lower().endswith(".seg.nrrd"):
        raise CardioScarError("--myocardium-mask as a segmentation (.seg.nrrd) needs --scar-rule; without a rule give "
                              "a label map or 0/1 mask image.")
    if args.fibre_rule and args.export_opencarp is None:  # else parsed and silently unused
        raise CardioScarError("--fibre-rule writes the LV fibre rule's PREFIX.lon with --export-opencarp PREFIX: add "
                              "--export-opencarp, or leave --fibre-rule out.")
    if args.units is not None and args.export_opencarp is None:  # else parsed and silently unused (round 17)
        raise CardioScarError(f"--units {args.units} sets the units of the openCARP .pts that --export-opencarp PREFIX "
                              "writes: add --export-opencarp, or leave --units out.")
    args.units = args.units or "um"
    if args.helix_angles is not None:  # checked before the training, as the rule's other refusals
        from cardioscar.simulation.export import parse_helix
        from cardioscar.simulation.fibres import check_helix_angles

        if not args.fibre_rule:
            raise CardioScarError("--helix-angles is for --fibre-rule (the LV fibre rule's angles): add --fibre-rule, "
                                  "or leave --helix-angles out.")
        args.helix_angles = check_helix_angles(parse_helix(args.helix_angles))
    if args.core_mesh is not None and args.scar_target == "core":
        raise CardioScarError("--core-mesh tags this run's scar with a core model's result: this run learns the core "
                              "(--scar-target core); tag the scar run instead.")
    _tag_thresholds(args)  # a threshold the tagging would refuse, before the training
    if args.channels_dir is None:
        given = [f"--{name.replace('_', '-')}" for name in ("channel_layers", "channel_layer_width", "channel_max_width",
                                                              "channel_min_length")
                 if getattr(args, name) is not None]
        if given:
            raise CardioScarError(f"{', '.join(given)} only apply to the channel search: add --channels-dir D.")
    else:
        check_output_dir(args.channels_dir, "--channels-dir")
    if args.aha_dir is None:
        given = [f"--{name.replace('_', '-')}" for name in _AHA_ONLY if getattr(args, name) is not None]
        if given:
            raise CardioScarError(f"{', '.join(given)} only apply to the AHA segments: add --aha-dir D.")
    else:
        if args.rv_point is None and args.labels is None:
            raise CardioScarError("--aha-dir needs the RV insertion: --rv-point X,Y,Z or --labels LABELMAP.")
        if args.rv_point is not None and args.labels is not None:
            raise CardioScarError("give --rv-point or --labels, not both.")
        if args.rv_inferior_point is not None and args.rv_point is None:
            raise CardioScarError("--rv-inferior-point needs --rv-point (the anterior insertion) too.")
        if (args.apex is None) != (args.base is None):
            raise CardioScarError("give both --apex and --base (or neither).")
        if not 0.0 < args.aha_threshold < 1.0:  # the AHA step would refuse it only after training and saving
            raise CardioScarError(f"--aha-threshold {args.aha_threshold}: use a value between 0 and 1")
        check_output_dir(args.aha_dir, "--aha-dir")
        for tag in ("border_zone_tag", "core_tag"):
            if getattr(args, tag) is not None and args.tags_field is None:
                raise CardioScarError(f"--{tag.replace('_', '-')} needs --tags-field (it would be ignored without it)")
        # the tag 1 of tissue_tag (this script's own tags) is healthy: counted as border zone it was a
        # wrong table after a whole training; refused here, before any work, as cardioscar aha refuses it
        with_border_zone_tag(AhaOptions(tags_field=args.tags_field, border_zone_tag=args.border_zone_tag,
                                        core_tag=args.core_tag))
    _check_outputs_apart(args)


def _aliases(parser: argparse.ArgumentParser) -> dict[str, str]:
    """The command line's names that this script takes as aliases (``--image``, ``--slice-indices``)
    -> the option's name here (its first, the one its help shows)."""
    return {alias: action.option_strings[0] for action in parser._actions
            for alias in action.option_strings[1:] if action.option_strings[0].startswith("--")}


class _ScriptWords(logging.Filter):
    """Rewords each log record it sees (a handler's filter) in the script's option names, as
    :func:`_in_script_words` does an error: a library warning's advice ("give --threshold 0.3" in the
    AHA step) must name the option to give here (--aha-threshold; --threshold is apply's). Only the
    record's own words (its format string) are reworded, not the values filled in: a file name, or
    this script's own advice given to the library (:data:`CORE_MODEL_ADVICE` names --output, the
    core run's mesh, inside the export step where --output is --export-opencarp)."""

    def __init__(self, names: dict[str, str]) -> None:
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        from CardioScarLogic.wording import LIBRARY_MSG, in_batch_words

        # from the library's words, also where a Logic call worded the record in its parameters' names
        record.msg = in_batch_words(str(getattr(record, LIBRARY_MSG, record.msg)), self.names)
        return True


@contextmanager
def _on_handlers(added: logging.Filter) -> Iterator[None]:
    """Inside, ``added`` filters each record that the root logger's handlers write (the library's
    records reach them by propagation, which a logger's own filter does not see)."""
    handlers = list(logging.getLogger().handlers)
    for handler in handlers:
        handler.addFilter(added)
    try:
        yield
    finally:
        for handler in handlers:
            handler.removeFilter(added)


@contextmanager
def _script_words(names: dict[str, str]) -> Iterator[None]:
    """Inside, each warning logged is written in ``names`` (a :class:`_ScriptWords` on each handler of
    the root logger, in place of an outer block's)."""
    handlers = list(logging.getLogger().handlers)
    outer = {handler: [f for f in handler.filters if isinstance(f, _ScriptWords)] for handler in handlers}
    for handler in handlers:
        for step in outer[handler]:
            handler.removeFilter(step)
    try:
        with _on_handlers(_ScriptWords(names)):
            yield
    finally:
        for handler in handlers:
            for step in outer[handler]:
                handler.addFilter(step)


@contextmanager
def _doing(verb: str, parser: argparse.ArgumentParser) -> Iterator[None]:
    """Inside, the work of ``cardioscar VERB``, whose options the library's words name: an error
    raised (or memory running out) is marked so, for :func:`_in_script_words`, and each warning
    logged is reworded as it is written.

    Steps nest (a step's helper may mark its own work): inside, the innermost step's verb and words
    hold, as the Logic's ``verb_of_the_work`` keeps an inner mark. The outer step overwrote the
    inner's mark, and both steps' filters reworded a warning, the outer's first: an error of the AHA
    step inside an export step was worded in export's options (``--threshold``, not
    ``--aha-threshold``), a warning's ``--output`` became ``--export-opencarp``."""
    from cardioscar.errors import CardioScarError

    with _script_words(_script_names(verb, parser)):
        try:
            yield
        except (CardioScarError, MemoryError) as error:
            if not hasattr(error, "batch_verb"):
                error.batch_verb = verb
            raise


def _script_names(verb: str, parser: argparse.ArgumentParser) -> dict[str, str]:
    """Command-line option -> this script's option for the same thing, in the work of ``cardioscar
    VERB`` (its entry of :data:`CardioScarLogic.wording.BATCH_NAMES`, and the script's aliases)."""
    from CardioScarLogic.wording import BATCH_NAMES

    return {**_aliases(parser), **BATCH_NAMES.get(verb, {})}


def _in_script_words(error: Exception, parser: argparse.ArgumentParser) -> str:
    """The library's words of ``error`` with each command-line option named as this script's option
    for the same thing (:func:`_script_names` of the verb :func:`_doing` marked it with, or inside
    the training route the Logic's :func:`CardioScarLogic.logic.verb_of_the_work`). Memory running
    out is the command line's advice for the step that ran out (fewer rows to map while preparing, a
    smaller batch while training or predicting), not a crash."""
    from cardioscar.cli import out_of_memory
    from CardioScarLogic.wording import in_batch_words, library_words

    # the verb the script marked, else the one the Logic's train_and_apply marked (prepare, train or apply)
    verb = getattr(error, "batch_verb", None) or getattr(error, "cardioscar_verb", "")
    message = out_of_memory(verb) if isinstance(error, MemoryError) else library_words(error)
    return in_batch_words(message, _script_names(verb, parser))


def _aha_inputs(args: argparse.Namespace, context, space: str):
    """The AHA's inputs as scene nodes (the Logic's :class:`CardioScarLogic.AhaInputs`), from the
    options; ``space``: the frame of the mesh file, in which the points are given."""
    from CardioScarLogic import AhaInputs, load_volume
    from cardioscar.aha import AhaOptions

    to_ras = (1.0, 1.0, 1.0) if space == "RAS" else (-1.0, -1.0, 1.0)

    def markups(name, points):
        node = context.scene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
        for point in points:
            node.AddControlPoint(*(float(v) * f for v, f in zip(point, to_ras)))
        return node

    rv = [p for p in (args.rv_point, args.rv_inferior_point) if p is not None]
    return AhaInputs(
        rv_markups=markups("RV insertion", rv) if rv else None,
        labels_node=load_volume(context.scene, args.labels, labelmap=True) if args.labels else None,
        rv_label=args.rv_label, myocardium_label=args.myocardium_label,
        apex_base_markups=markups("apex and base", [args.apex, args.base]) if args.apex else None,
        slice_normal_volume=load_volume(context.scene, args.slice_normal_from) if args.slice_normal_from else None,
        measure=AhaOptions(threshold=args.aha_threshold, lv_mask_field=args.lv_mask, lv_mask_value=args.lv_value,
                           tags_field=args.tags_field,
                           border_zone_tag=args.border_zone_tag, core_tag=args.core_tag,
                           transmurality=args.transmurality))


def _aha(args: argparse.Namespace, logic, model_node, inputs) -> list[str]:
    """The AHA table, picture and arrays of the reconstructed model (after it was saved once) with
    the ``inputs`` checked before the training, and the lines that say so (as ``cardioscar aha``
    logs them)."""
    from CardioScarLogic.aha import bullseye_title
    from CardioScarLogic.wording import BATCH_ADVICE, BATCH_NAMES, record_in_words
    from cardioscar.aha.analysis import write_aha_set
    from cardioscar.aha.table import scar_per_segment

    result = logic.aha_segments(model_node, inputs)
    # aha.json's warnings in this script's options (the Logic's result says them in its parameters')
    summary = record_in_words(result.library_summary, BATCH_NAMES["aha"], BATCH_ADVICE)
    # the picture and the table as one set (the Logic's bullseye_png would place the picture alone); an
    # `aha_mesh.<ext>` of another run goes with it, as `cardioscar aha` drops it: the segments are on --output
    write_aha_set(args.aha_dir, result.rows, summary, bullseye_title(model_node, inputs.measure),
                  segments_on=args.output)
    return [f"AHA scar per segment: {scar_per_segment(result.rows)}",
            f"Wrote aha.csv, aha.json and bullseye.png into {args.aha_dir} (aha_segment arrays on {args.output})"]


def _check_aha_frame(args: argparse.Namespace, context, model_node, mesh) -> tuple[object, list[str]]:
    """Find the AHA frame of the user's model before the training, as the AHA step will after it
    (``CardioScarLogic.check_aha_inputs``: the same inputs, the library's own analysis with a
    scar-free field), so that a point off the wall, a mesh of both ventricles without --lv-mask or
    debris fails the run now, in the words it failed with after the training (which was lost).
    Returns the inputs, for the AHA step, and the warnings it said (swapped points, a cap the
    slices missed), which the AHA step does not say again.

    The mesh's pieces are said of the user's file (``mesh``), as the export and the channel search
    say theirs (with --lv-mask the AHA reads the LV's part alone and says nothing of them)."""
    from CardioScarLogic import CardioScarLogic
    from CardioScarLogic.wording import library_warnings
    from cardioscar.simulation.opencarp import PIECES_AHA, SEAM_AHA, SaidBeforeTraining, warn_about_pieces

    if args.lv_mask is None:
        warn_about_pieces(mesh, PIECES_AHA, seam=SEAM_AHA)
    inputs = _aha_inputs(args, context, mesh.space)
    with SaidBeforeTraining(), library_warnings() as said:
        CardioScarLogic.check_aha_inputs(model_node, inputs)
    return inputs, said


class _NotSaidAgain(logging.Filter):
    """Drops a warning whose library words (:func:`CardioScarLogic.wording.library_message`) were
    said already: the AHA step finds after the training the frame :func:`_check_aha_frame` found
    before it, and repeated its warnings of the same points and the same mesh."""

    def __init__(self, said: list[str]) -> None:
        super().__init__()
        self.said = set(said)

    def filter(self, record: logging.LogRecord) -> bool:
        from CardioScarLogic.wording import library_message

        return library_message(record) not in self.said


def _channels(args: argparse.Namespace, parser: argparse.ArgumentParser, model_node, options) -> list[str]:
    """The channel search on the tagged model: the files in --channels-dir, the fields on --output
    (saved again), and the lines that say so (as ``cardioscar channels`` logs them)."""
    from CardioScarLogic import save_model
    from CardioScarLogic.channels import find_model_channels
    from CardioScarLogic.wording import in_batch_words
    from cardioscar.simulation.open_cut import open_cut_note

    with _doing("channels", parser):
        found = find_model_channels(model_node, options, output_dir=args.channels_dir)
    save_model(model_node, args.output)  # again, now with bz_channel and wall_depth (and core_marginal)
    # the summary in this script's options (--channel-min-length), as its warnings are, from the library's words
    lines = [f"Channels: {in_batch_words(found.library_summary(), _script_names('channels', parser))}"]
    if found.hidden is not None and found.hidden.summary():
        lines.append(f"Channels, note: {found.hidden.summary()}")
    if found.library_bands_note:  # one field's bands (the library's warning too): what its channels are not
        lines.append(f"Channels, note: {in_batch_words(found.library_bands_note, _script_names('channels', parser))}")
    for channel in found.channels:
        row = channel.row()
        lines.append(f"channel {row['channel']}: layer {row['layer']:g}, {row['nodes']} nodes, {row['length_mm']:.1f} mm, "
                     f"{row['entrances']} entrances, centroid LPS {row['centroid_lps']}{open_cut_note(row)}")
    return lines + [f"Wrote {args.channels_dir / 'channels.csv'}, {args.channels_dir / 'channels.json'}"]


def _options(args: argparse.Namespace):
    from CardioScarLogic import ReconstructionOptions

    return ReconstructionOptions(
        slice_axis=args.slice_axis, slice_indices=args.slices, half_thickness=args.slice_thickness_padding,
        scar_labels=args.scar_labels, myocardium_labels=args.myocardium_labels,
        myocardium_margin=args.myocardium_margin, slice_profile=args.slice_profile,
        normalize_intensities=args.normalize_intensities,
        partial_volume_correction=args.partial_volume_correction, preset=args.preset, shape_prior=args.shape_prior,
        max_epochs=args.max_epochs, early_stopping_patience=args.early_stopping_patience,
        mc_samples=args.mc_samples, batch_size=args.batch_size, seed=args.seed, num_threads=args.threads,
        inference_mc_samples=args.inference_mc_samples, inference_batch_size=args.inference_batch_size,
        threshold=args.threshold, force_cpu=args.cpu, scar_rule=args.scar_rule, scar_thresholds=args.scar_thresholds,
        scar_target=args.scar_target, blood_pool_labels=args.blood_pool_labels,
        intensity_offset=args.intensity_offset or 0.0, myocardium_segment=args.myocardium_segment,
        blood_pool_segment=args.blood_pool_segment, remote_segment=args.remote_segment,
        expert_scar_labels=args.expert_scar_labels, expert_core_labels=args.expert_core_labels,
        dark_blood_lge=bool(args.dark_blood_lge),
        extra_training={name: getattr(args, name) for name, _ in _EXTRA_TRAINING if getattr(args, name) is not None})


#: The Logic's mask parameter -> the option that gives its file (named when a 2D mask is refused).
_MASK_OPTIONS = {"myocardium_mask": "--myocardium-mask", "blood_pool_node": "--blood-pool-mask",
                 "remote_node": "--remote-mask"}


def _chosen_slices(args: argparse.Namespace, options):
    """The chosen slices of --volume as ``prepare`` reads them, read once and only when asked for:
    where a 2D mask file is placed (:func:`CardioScarLogic.load_mask`)."""
    from functools import cache

    from cardioscar.prepare.slices import slices_from_paths

    return cache(lambda: slices_from_paths(args.volume, options.slice_axis, options.parsed_slice_indices(),
                                           options.half_thickness))


def _progress_logger():
    logger = logging.getLogger("cardioscar_batch")
    last = [0.0]

    def report(progress) -> None:
        now = time.monotonic()
        if now - last[0] >= 2.0 or progress.epoch == progress.max_epochs:
            last[0] = now
            eta = "?" if progress.eta_s is None else f"{progress.eta_s:.0f} s"
            logger.info("epoch %d/%d loss %.5f best %.5f, <= %s left", progress.epoch, progress.max_epochs,
                        progress.loss, progress.best_loss, eta)

    return report


def _write_summary(table_node, path: Path) -> None:
    import csv

    from cardioscar.io.atomic import atomic_write

    table = table_node.GetTable()
    with atomic_write(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow([table.GetColumnName(c) for c in range(table.GetNumberOfColumns())])
        for r in range(table.GetNumberOfRows()):
            writer.writerow([table.GetValue(r, c).ToString() for c in range(table.GetNumberOfColumns())])


def run(argv: list[str]) -> int:
    """Parse ``argv``, run the Logic, write the outputs; returns the exit status."""
    _add_package_paths()  # first: the parser reads cardioscar's point parser
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="%(message)s")
    logging.getLogger("cardioscar_batch").setLevel(logging.INFO)
    # outside a step too (the training route, the options' check): the Logic's calls word their warnings
    # in its parameters' names (options.preset), which this script's user does not give
    with _script_words(_script_names("", parser)):
        return _run(args, parser)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """The work of :func:`run` on its parsed ``args``; returns the exit status."""
    from cardioscar.errors import CardioScarError
    from cardioscar.io.atomic import placed_files

    placed_before = placed_files()  # what an interruption says it left
    try:
        from CardioScarLogic import (CardioScarLogic, check_mesh_output, ensure_scene, load_mask, load_model, load_volume,
                                     save_model)
        from CardioScarLogic.results import keep_scar_rule
        from cardioscar.io.meshio import read_mesh
        from cardioscar.simulation.opencarp import (PIECES_CHANNELS, SEAM_CHANNELS, SaidBeforeTraining,
                                                    check_exportable, warn_about_pieces)

        _check_arguments(args, parser)
        options = _options(args)
        context = ensure_scene()
        model_node = load_model(context.scene, args.mesh)
        check_mesh_output(model_node, args.output)
        # an earlier run's note of its rule on the mesh file (the core run's output given as --mesh) is not
        # this run's, which writes its own: the core is checked against the note of none, not the old one
        keep_scar_rule(model_node, {})
        core_node = None if args.core_mesh is None else load_model(context.scene, args.core_mesh, args.core_mesh.name)
        tagging = any(v is not None for v in (args.border_zone, args.core, args.core_mesh, args.core_field,
                                             args.export_opencarp, args.channels_dir))
        if tagging:  # a wrong core mesh or field is found before the training, not after it
            from CardioScarLogic.tissue import core_values

            with _doing("export", parser):
                core_values(model_node, args.core_field, core_node)
        # the export's, the channel search's and the AHA's checks of the user's mesh, read once
        checked = (args.export_opencarp, args.channels_dir, args.aha_dir)
        mesh = read_mesh(args.mesh) if any(path is not None for path in checked) else None
        if args.export_opencarp is not None:  # so is a mesh the openCARP export (or its fibre rule) refuses
            from cardioscar.io.checks import check_prefix

            with _doing("export", parser):
                check_prefix(args.export_opencarp)
                check_exportable(mesh)
                warn_about_pieces(mesh)  # of the user's mesh, before the training (the export's own is left out)
                if args.fibre_rule:  # a mesh the rule refuses (biventricular, a surface), before the training
                    from cardioscar.simulation.fibres import DEFAULT_HELIX_DEG, rule_wall

                    rule_wall(mesh, args.helix_angles or DEFAULT_HELIX_DEG)
        if args.channels_dir is not None:  # its options, and a mesh the search refuses, before the training
            from cardioscar.aha.wall import lv_wall
            from cardioscar.simulation.channels import check_searchable_mesh

            with _doing("channels", parser):
                channel_options = _channel_options(args)
                check_searchable_mesh(mesh)
                lv_wall(mesh, "the channel search", " (or leave --channels-dir out)")
                warn_about_pieces(mesh, PIECES_CHANNELS, seam=SEAM_CHANNELS)
        aha_inputs, said_of_the_frame = None, []
        if args.aha_dir is not None:  # its frame on the user's mesh: what the AHA refuses of it, before the training
            with _doing("aha", parser):
                aha_inputs, said_of_the_frame = _check_aha_frame(args, context, model_node, mesh)
        logic = CardioScarLogic(context.scene, context.color_logic)
        view = None
        if args.snapshot is not None:
            from CardioScarLogic.render import OffscreenThreeDView

            # Attached before the run so that it also draws the colour legend the run adds.
            view = OffscreenThreeDView(context.scene, context.application_logic, size=(800, 800),
                                       background=(0.12, 0.13, 0.18))
        if args.model is not None:
            with _doing("apply", parser):
                result = logic.apply_model(args.model, model_node, options)
        else:
            # --scar-labels: the volume is a label map (its --help), loaded as one, so that
            # --myocardium-labels name its own labels as `cardioscar prepare` reads them; loaded as a
            # scalar volume, EMIDEC's labels with --myocardium-labels 2,3,4 were refused
            as_labels = bool(args.scar_labels) and args.scar_rule is None
            volume_nodes = [load_volume(context.scene, path, labelmap=as_labels) for path in args.volume]
            chosen = _chosen_slices(args, options)
            masks = {name: None if path is None else load_mask(context.scene, path, chosen, _MASK_OPTIONS[name])
                     for name, path in (("myocardium_mask", args.myocardium_mask),
                                        ("blood_pool_node", args.blood_pool_mask), ("remote_node", args.remote_mask))}
            progress = None if args.no_progress else _progress_logger()
            result = logic.train_and_apply(volume_nodes, model_node, options, progress_callback=progress, **masks)
        tags, written = None, []  # what the steps after the reconstruction wrote, said at the end
        if tagging:
            from CardioScarLogic.tissue import tag_model_node

            with _doing("export", parser):
                tags = tag_model_node(model_node, *_tag_thresholds(args), args.core_field,
                                      color_logic=context.color_logic, core_model=core_node,
                                      core_advice=CORE_MODEL_ADVICE)
        save_model(model_node, args.output)  # the result first: it is what a failure after training must not lose
        if args.save_model is not None:
            logic.save_model(args.save_model)
        with SaidBeforeTraining():  # the mesh's pieces (and the export's coincident nodes): said before the run
            if args.export_opencarp is not None:
                from CardioScarLogic.tissue import export_model_node

                with _doing("export", parser):
                    files = export_model_node(model_node, tags, args.export_opencarp, units=args.units,
                                              fibres="rule" if args.fibre_rule else None, helix_deg=args.helix_angles)
                written.append(f"Wrote {', '.join(str(path) for path in files)}")
            if args.summary is not None:
                _write_summary(result.table_node, args.summary)
            if args.channels_dir is not None:
                written += _channels(args, parser, model_node, channel_options)
            if args.aha_dir is not None:  # the frame's warnings were said before the training
                with _doing("aha", parser), _on_handlers(_NotSaidAgain(said_of_the_frame)):
                    written += _aha(args, logic, model_node, aha_inputs)
                save_model(model_node, args.output)  # again, now with the aha_segment arrays
        if view is not None:
            view.capture(model_node, azimuth=30, elevation=20, path=args.snapshot)
            view.close()
    except (CardioScarError, MemoryError) as error:  # MemoryError: as cardioscar, a smaller batch is the fix
        print(f"cardioscar_batch: error: {_in_script_words(error, parser)}", file=sys.stderr)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:  # Ctrl-C: cardioscar's one line and exit status, not a traceback
        from cardioscar.cli import EXIT_CANCELLED, written_since

        print(f"cardioscar_batch: interrupted ({written_since(placed_before)})", file=sys.stderr)
        return EXIT_CANCELLED
    for measure, value, unit in result.summary:
        print(f"{measure}: {value} {unit}".rstrip())
    if tags is not None:
        from cardioscar.simulation.export import summary_lines

        for line in summary_lines(tags):
            print(line)
    for line in written:
        print(line)
    print(f"Wrote {args.output}")
    return 0


def main() -> None:
    """Entry point for both Slicer (``--python-script``) and plain Python."""
    try:
        status = run(sys.argv[1:])
    except SystemExit as exit_request:  # argparse: --help (0) or a usage error (2)
        status = exit_request.code if isinstance(exit_request.code, int) else EXIT_USER_ERROR
    except Exception:  # a bug, not a user error: show the traceback, fail
        logging.getLogger("cardioscar_batch").exception("cardioscar_batch failed")
        status = EXIT_FAILURE
    try:
        import slicer

        in_application = hasattr(slicer, "app")
    except ImportError:
        in_application = False
    if in_application:
        # Slicer keeps running after --python-script unless told to exit.
        slicer.util.exit(status)
    else:
        sys.exit(status)


if __name__ == "__main__":
    main()
