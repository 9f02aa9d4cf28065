"""The ``cardioscar`` command line.

Verbs and options follow the documented interface of the existing tool (``prepare``, ``train``,
``fine-tune``, ``apply``) so that users' shell scripts keep working; ``evaluate``, ``phantom`` and
``demo`` are new. User mistakes end in one line on stderr and a non-zero exit code, never a
traceback (``--debug`` shows it).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, List, Optional, Sequence

from cardioscar import __version__
from cardioscar.commands import aha as aha_command, attrivae as attrivae_command, cohort as cohort_command
from cardioscar.commands import mesh_from_labels as mesh_cli
from cardioscar.io.atomic import placed_files
from cardioscar.io.checks import (BELOW_MAX_LR, MESH_SUFFIXES, ONE_CYCLE_ADVICE, TRAINING_OPTION, check_image_exists,
                                   check_model_file, check_not_an_input, check_output_dir, check_output_path,
                                   check_seed, check_training_data_file, check_vtk_file, shape_prior_word)
from cardioscar.errors import CardioScarError, TrainingCancelled, advice_in_face_words
from cardioscar.lge import options as lge_options
from cardioscar.said_once import new_run
from cardioscar.simulation import channels_cli, export

logger = logging.getLogger("cardioscar")

EXIT_USER_ERROR = 2
EXIT_CANCELLED = 130
#: The advice when memory runs out (a MemoryError): the batch options are the user's fix, not a bug.
OUT_OF_MEMORY = "out of memory; lower --batch-size (or --mc-samples)"
#: ... while preparing, which has no batches: its rows are the mesh nodes in each chosen slice's slab.
PREPARE_OUT_OF_MEMORY = ("out of memory while mapping the slices onto the mesh; choose fewer slices (--slice-indices) "
                         "or a coarser mesh, or use --slice-profile box (gaussian maps twice the slab's nodes)")


#: ... in a command with no batch options (demo, aha, export, mesh-from-labels, ...).
OTHER_OUT_OF_MEMORY = "out of memory; close other programs, or give a coarser mesh or image"
#: The commands whose batches the user sizes (``--batch-size``, ``--mc-samples``).
BATCHED_COMMANDS = frozenset({"train", "fine-tune", "apply"})


def out_of_memory(verb: str) -> str:
    """The advice when memory runs out in the work of ``cardioscar VERB``: what helps that step
    (train's and apply's batch options helped nothing while preparing, and other commands have none;
    an unnamed step keeps the batch advice, as before)."""
    if verb == "prepare":
        return PREPARE_OUT_OF_MEMORY
    return OUT_OF_MEMORY if verb in BATCHED_COMMANDS or not verb else OTHER_OUT_OF_MEMORY


def on_off_auto(text: str) -> bool | str:
    """An ``on|off|auto`` option value: True, False or ``"auto"`` (``--shape-prior auto``: the
    targets decide, :func:`cardioscar.shape_prior.use.training_prior`)."""
    value = shape_prior_word(text)
    if value is None:
        raise argparse.ArgumentTypeError(f"must be on, off or auto (got {text!r})")
    return value


#: TrainingConfig fields that the command line can override, with their option names.
_TRAINING_OPTIONS = (
    ("batch_size", "--batch-size", int, "target rows per batch; batches hold complete groups only (documented default 10000)"),
    ("max_epochs", "--max-epochs", int, "maximum training epochs (documented default 10000)"),
    ("early_stopping_patience", "--early-stopping-patience", int, "epochs without improvement before stopping (default 500)"),
    ("mc_samples", "--mc-samples", int, "MC-dropout passes averaged inside the loss (default 3)"),
    ("dropout_rate", "--dropout-rate", float, "dropout probability (default 0.1)"),
    ("base_lr", "--base-lr", float, "lower learning rate of the cyclical schedule (default 1e-3)"),
    ("max_lr", "--max-lr", float, "upper learning rate of the cyclical schedule (default 1e-2)"),
    ("lr_step_size", "--lr-step-size", int, "iterations per half-cycle of the schedule (default 2000)"),
    ("seed", "--seed", int, "random seed; CPU runs with the same seed are identical (default 42)"),
    ("hidden_dim", "--hidden-dim", int, "width of the hidden layers (default 128)"),
    ("n_layers", "--n-layers", int, "number of hidden layers (default 4)"),
    ("convergence_tolerance", "--convergence-tolerance", float,
     "one-cycle schedule (the fast preset): the fall of the group loss over the schedule's last 20 %%, as a share "
     "of the targets' variance, below which the run counts as converged; above it lower-rate phases are added "
     "(at most 2); 0 turns the test off (documented preset: 0)"),
    ("shape_prior", "--shape-prior", on_off_auto,
     "on: learn a residual on the shape-based interpolation of the slices' scar (issue 18; see "
     "Documentation/shape-prior.md); off: the network alone; auto: on where every target is a drawn 0 or 1 (label maps, segmentations) and every slice with targets "
     "lies in a stack of two or more parallel slices, off on fractions, a scar rule's grades or with a long-axis view "
     "(default: off with the documented preset, auto with fast)"),
)


def _comma_ints(what: str) -> Callable[[str], List[int]]:
    def parse(text: str) -> List[int]:
        try:
            values = [int(part) for part in text.replace(" ", "").split(",") if part]
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{what} must be comma-separated integers such as 2,5,8 (got {text!r})") from None
        if not values:
            raise argparse.ArgumentTypeError(f"{what} is empty; leave the option out to use all")
        return values

    return parse


def _padding(text: str) -> float | str:
    """``--slice-thickness-padding``: millimetres, or ``auto`` (each DICOM file's own thickness)."""
    from cardioscar.prepare.slices import parse_half_thickness  # here: vtk and SimpleITK load only when used

    try:
        return parse_half_thickness(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a width in mm such as 4.0, or auto (got {text!r})") from None


#: Options that set the network's architecture: not for fine-tuning, whose model brings its own.
_ARCHITECTURE_OPTIONS = ("hidden_dim", "n_layers", "dropout_rate", "shape_prior")


def _add_training_options(parser: argparse.ArgumentParser, architecture: bool = True) -> None:
    parser.add_argument("--training-data", required=True, type=Path, help="training data (.npz) from `cardioscar prepare`")
    parser.add_argument("--output", required=True, type=Path, help="output model checkpoint (.pth)")
    parser.add_argument(
        "--preset",
        choices=("documented", "fast"),
        default="documented",
        help="'documented': the documented TrainingConfig defaults; 'fast': our recommended faster schedule. "
        "Options given explicitly override the preset.",
    )
    for name, flag, kind, text in _TRAINING_OPTIONS:
        if architecture or name not in _ARCHITECTURE_OPTIONS:
            parser.add_argument(flag, dest=name, type=kind, default=None, help=text,
                                metavar="{on,off,auto}" if kind is on_off_auto else None)
    parser.add_argument("--cpu", action="store_true", help="force CPU even when a CUDA GPU is available")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")


#: ``--slice-axis`` and ``--slice-thickness-padding`` when not given (``evaluate`` resolves them itself).
SLICE_AXIS, SLICE_PADDING_MM = "z", 5.0


def _add_slice_choice(parser: argparse.ArgumentParser) -> None:
    """The options that choose an image's slices and their slabs: one wording for ``prepare`` (the
    slices that train) and ``evaluate --truth-image`` (the slices that score)."""
    parser.add_argument("--slice-axis", choices=("x", "y", "z"), default=SLICE_AXIS,
                        help="image index axis i, j or k to slice along (default z)")
    parser.add_argument("--slice-indices", type=_comma_ints("--slice-indices"), default=None,
                        help="comma-separated slice indices, e.g. 2,5,8,11 (default all)")
    parser.add_argument("--slice-thickness-padding", type=_padding, default=SLICE_PADDING_MM,
                        help="slab half-width in mm along the slice normal (default 5.0), or 'auto': half of each "
                             "DICOM file's recorded slice thickness")


def _add_label_options(parser: argparse.ArgumentParser, scar: str, myocardium: str, mask: str) -> None:
    """``--scar-labels``, ``--myocardium-labels`` and ``--myocardium-mask``, parsed alike for
    ``prepare`` and ``evaluate --truth-image`` (``scar``, ``myocardium``, ``mask``: each verb's help)."""
    parser.add_argument("--scar-labels", type=_comma_ints("--scar-labels"), default=None, help=scar)
    parser.add_argument("--myocardium-labels", type=_comma_ints("--myocardium-labels"), default=None, help=myocardium)
    parser.add_argument("--myocardium-mask", type=Path, default=None, help=mask)


class OneLineParser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line, as every other error (argparse prints
    a usage block first); ``--help`` still shows the usage. Subcommand parsers inherit it."""

    def error(self, message: str):
        self.exit(EXIT_USER_ERROR, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (exposed for documentation and tests)."""
    parser = OneLineParser(
        prog="cardioscar",
        description="3D myocardial scar reconstruction from sparse 2D LGE-CMR slices.",
    )
    parser.add_argument("--version", action="version", version=f"cardioscar {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="more log output")
    parser.add_argument("--debug", action="store_true", help="show tracebacks for errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    _register_prepare(sub)
    _register_training(sub)
    _register_apply(sub)
    _register_evaluate(sub)
    _register_phantom_and_demo(sub)
    aha_command.register(sub)
    mesh_cli.register(sub)
    cohort_command.register(sub)
    export.register(sub)
    channels_cli.register(sub)
    attrivae_command.register(sub)
    return parser


def _register_prepare(sub: argparse._SubParsersAction) -> None:
    """prepare: slice pixels mapped onto the mesh nodes, the training data written."""
    prep = sub.add_parser("prepare", help="map slice pixels to mesh nodes and write training data (.npz)")
    prep.add_argument("--mesh-vtk", "--mesh", dest="mesh", required=True, type=Path, help="heart mesh (.vtk, .vtp, .vtu)")
    source = prep.add_mutually_exclusive_group(required=True)
    source.add_argument("--grid-layers", nargs="+", action="extend", type=Path, help="2D VTK grid layers (one per slice)")
    source.add_argument("--image", nargs="+", type=Path,
                        help="image (NIfTI, NRRD, MHA) or DICOM series folder; several (e.g. one series per slice plus "
                             "the long-axis views) are combined, and --slice-indices then count their slices in order")
    prep.add_argument("--vtk-scalar-field", default="ScalarValue", help="cell field of the grid layers (default ScalarValue)")
    _add_slice_choice(prep)
    _add_label_options(prep, "the input is a label map; these labels are scar (e.g. 3,4)",
                       "labels of the myocardium (EMIDEC 2,3,4; ACDC 2): in the label map itself (with "
                       "--scar-labels) or in --myocardium-mask; pixels outside carry no constraint",
                       "a 0/1 mask (or, with --myocardium-labels, a label image) of the myocardium in the same "
                       "patient frame as --image; pixels outside carry no constraint")
    prep.add_argument("--myocardium-margin", type=int, default=0, metavar="PIXELS",
                      help="pixels outside the myocardium within this many pixels of it take the nearest myocardium "
                           "pixel's value instead of no constraint (a mesh up to a pixel off the segmentation; try 1)")
    prep.add_argument("--slice-profile", choices=("box", "gaussian"), default="box",  # prepare.mapping.SLICE_PROFILES
                      help="the pixel's through-plane model: box (default; the slab, every node weighted 1) or "
                           "gaussian (the scanner's smooth profile, FWHM = twice --slice-thickness-padding: nodes "
                           "weighted by it, out to twice the slab's half-width)")
    prep.add_argument("--normalize-intensities", action="store_true", help="min-max scale raw intensities to [0, 1]")
    prep.add_argument(
        "--partial-volume-correction", action="store_true",
        help="divide each pixel value by the myocardial fraction of its pixel box (estimated from the volumetric "
             "mesh, .vtu with tetrahedra) and drop boxes under 10%% myocardium; use when the slice values are "
             "fractions of the whole pixel box (e.g. a scar probability map over the full image), not for a scar map "
             "already expressed per myocardium")
    prep.add_argument("--output", required=True, type=Path, help="output training data (.npz)")
    lge_options.add_prepare_options(prep)
    prep.set_defaults(handler=_cmd_prepare)


def _register_training(sub: argparse._SubParsersAction) -> None:
    """train and fine-tune: the same training options; fine-tune starts from a saved model."""
    train = sub.add_parser("train", help="train the scar field on prepared data")
    _add_training_options(train)
    train.set_defaults(handler=_cmd_train)

    tune = sub.add_parser("fine-tune", help="warm-start from a trained model, optionally freezing its first layers")
    tune.add_argument("--model", required=True, type=Path, help="checkpoint (.pth) to start from")
    tune.add_argument("--freeze-layers", type=int, default=0, help="freeze the first K linear layers (default 0)")
    _add_training_options(tune, architecture=False)
    tune.set_defaults(handler=_cmd_fine_tune)


def _register_apply(sub: argparse._SubParsersAction) -> None:
    """apply: a saved model predicted on every node of a mesh."""
    apply = sub.add_parser("apply", help="predict scar probability and uncertainty on every mesh node")
    apply.add_argument("--model", required=True, type=Path, help="trained checkpoint (.pth)")
    apply.add_argument("--mesh", required=True, type=Path, help="mesh to annotate (.vtk, .vtp, .vtu)")
    apply.add_argument("--output", required=True, type=Path, help="output mesh with scar_probability, scar_uncertainty, scar_error_risk (and scar_binary with --threshold)")
    apply.add_argument("--mc-samples", type=int, default=10, help="MC-dropout samples (default 10)")
    apply.add_argument("--batch-size", type=int, default=50000, help="nodes per inference batch (default 50000)")
    apply.add_argument("--threshold", type=float, default=None, help="also write scar_binary = probability >= threshold")
    apply.add_argument("--seed", type=int, default=42, help="seed of the dropout masks; same seed, same output on the CPU (default 42)")
    apply.add_argument("--cpu", action="store_true", help="force CPU")
    apply.set_defaults(handler=_cmd_apply)


def _register_evaluate(sub: argparse._SubParsersAction) -> None:
    """evaluate: a prediction scored against a truth mesh or the labels of an image's slices."""
    ev = sub.add_parser("evaluate", help="compare a predicted probability field with a ground-truth field, or with "
                                         "the truth of an image's slices (the experts' labels)")
    ev.add_argument("--prediction", required=True, type=Path, help="mesh with the predicted probability")
    truth = ev.add_mutually_exclusive_group(required=True)
    truth.add_argument("--truth", type=Path, help="mesh with the ground truth (same nodes)")
    truth.add_argument("--truth-image", type=Path,
                       help="a label map (with --scar-labels and --myocardium-labels) or a scar map in [0, 1] whose "
                            "chosen slices are the truth: the nodes on them are scored (see Documentation/command-line.md, "
                            "section 'Scoring against the labels of the slices')")
    ev.add_argument("--probability-field", default="scar_probability")
    ev.add_argument("--truth-field", default=None, help="the truth mesh's field (default scar_truth)")
    _add_slice_choice(ev)
    # None: not given, so that --truth (a mesh, no slices) can refuse them when they are given explicitly
    ev.set_defaults(slice_axis=None, slice_thickness_padding=None)
    _add_label_options(ev, "--truth-image is a label map; these labels are scar (e.g. 3,4)",
                       "labels of the myocardium (EMIDEC 2,3,4; ACDC 2), in the label map or in --myocardium-mask; "
                       "nodes on other pixels are not scored",
                       "a 0/1 mask (or, with --myocardium-labels, a label image) of the myocardium for a scar map; "
                       "nodes on pixels outside it are not scored")
    ev.add_argument("--truth-threshold", type=float, default=None,
                    help="--truth-image is a scar map: scar where it is >= this (default 0.5)")
    ev.add_argument("--write-truth", type=Path, default=None,
                    help="also write the prediction mesh with the slices' truth: scar_truth (NaN where not scored), "
                         "scar_truth_scored, scar_truth_slice (.vtk, .vtp, .vtu)")
    ev.add_argument("--uncertainty-field", default="scar_uncertainty")
    ev.add_argument("--threshold", type=float, default=0.5)
    ev.add_argument("--json", dest="json_path", type=Path, default=None, help="also write the metrics to this JSON file")
    ev.set_defaults(handler=_cmd_evaluate)


def _register_phantom_and_demo(sub: argparse._SubParsersAction) -> None:
    """phantom and demo: the built-in data, and the whole pipeline run on it."""
    ph = sub.add_parser("phantom", help="write a left-ventricle phantom with a known scar and its simulated LGE stack")
    ph.add_argument("--output-dir", required=True, type=Path)
    ph.add_argument("--nodes", type=int, default=None, help="approximate node count of the volumetric mesh")
    ph.add_argument("--seed", type=int, default=None)
    ph.add_argument("--long-axis", action="store_true",
                    help="also acquire one long-axis slice (phantom_lge_long_axis.nii.gz), to pool with the stack: "
                         "prepare --image phantom_lge.nii.gz phantom_lge_long_axis.nii.gz")
    ph.add_argument("--family", choices=("demo", "segmented"), default="demo",
                    help="segmented: scar fraction within the myocardium (0 outside it) plus a myocardium mask and a "
                         "label map (0 bg, 1 blood, 2 myocardium, 3 scar), on a mesh that is not the image's wall")
    ph.add_argument("--mesh-type", choices=("tet", "hex"), default="tet", help="segmented family: the mesh's cells")
    ph.set_defaults(handler=_cmd_phantom)

    demo = sub.add_parser("demo", help="phantom -> prepare -> train -> apply -> report, on built-in data")
    demo.add_argument("--output-dir", type=Path, default=Path("cardioscar_demo"))
    demo.add_argument("--seed", type=int, default=None, help="phantom seed")
    demo.add_argument("--cpu", action="store_true", help="force CPU")
    demo.add_argument("--raw-lge", action="store_true",
                      help="scanner to openCARP: raw LGE, PSI scar rule, scar and core models, tags, "
                           ".pts/.elem/.lon (the LV fibre rule)/.vtu")
    demo.add_argument("--nodes", type=int, default=None,
                      help="approximate node count of the phantom's mesh (smaller runs faster; default the phantom's)")
    demo.add_argument("--max-epochs", type=int, default=None,
                      help="epochs of the fast preset's one-cycle schedule (default 600); fewer for a quick check")
    demo.set_defaults(handler=_cmd_demo)


# --------------------------------------------------------------------------- handlers


def _training_overrides(args: argparse.Namespace) -> dict:
    """The training options given on the command line, by ``TrainingConfig`` field."""
    return {name: getattr(args, name) for name, *_ in _TRAINING_OPTIONS if getattr(args, name, None) is not None}


#: The training options' errors in the command line's words: the library names each by its
#: ``TrainingConfig`` field (``training option max_epochs``), which the user typed as ``--max-epochs``,
#: and its advice for a tolerance on the cyclical schedule names a schedule the command line sets by
#: its preset (:func:`cardioscar.errors.advice_in_face_words`).
TRAINING_WORDS = {**{f"{TRAINING_OPTION} {name}": flag for name, flag, *_ in _TRAINING_OPTIONS},
                   BELOW_MAX_LR: "must be <= --max-lr",
                   ONE_CYCLE_ADVICE: "leave it out (or set it to 0), or give --preset fast (its schedule is one-cycle)"}


def _training_config(args: argparse.Namespace):
    """The preset with the options given, checked whole (torch-free: :mod:`cardioscar.fit.config`),
    a refusal in the command line's words (:data:`TRAINING_WORDS`)."""
    from cardioscar.fit.config import TrainingConfig

    overrides = _training_overrides(args)
    try:
        return TrainingConfig.fast(**overrides) if args.preset == "fast" else TrainingConfig(**overrides)
    except CardioScarError as error:
        raise CardioScarError(advice_in_face_words(str(error), TRAINING_WORDS)) from error


def _progress_bar(config, enabled: bool):
    """A tqdm bar over epochs with loss and the estimated time left (early stopping may end sooner;
    the convergence test may add epochs, and the bar's total follows), or, where stderr is no
    terminal (a log file, a pipe), a logged line every few seconds (:func:`progress_log_lines`: the
    bar's carriage returns made one unreadable line of such a log, with messages glued into it)."""
    if not enabled:
        return None, None
    if not sys.stderr.isatty():
        from cardioscar.fit.training import progress_log_lines

        return None, progress_log_lines()
    from tqdm import tqdm

    bar = tqdm(total=config.max_epochs, unit="epoch", desc="training", dynamic_ncols=True, leave=True)

    def update(progress) -> None:
        bar.total = progress.max_epochs
        bar.n = progress.epoch
        eta = "?" if progress.eta_s is None else f"{progress.eta_s:.0f}s"
        bar.set_postfix_str(f"loss={progress.loss:.5f} best={progress.best_loss:.5f} eta<={eta}", refresh=False)
        bar.refresh()

    return bar, update


def _check_output(output: Path, suffix: str | tuple[str, ...], inputs: Sequence[Optional[Path]],
                  flag: str = "--output") -> None:
    """Refuse, before any work, an output file of the wrong kind, one that cannot be written
    (:func:`check_output_path`), or one that is also an input (:func:`check_not_an_input`: writing
    the result there would destroy or change that input, e.g. a mesh turned into training data)."""
    check_output_path(output, flag, (suffix,) if isinstance(suffix, str) else suffix)
    check_not_an_input(output, inputs, flag)


def _run_training(args: argparse.Namespace, train: Callable) -> None:
    """Train with ``train(config, device, update)`` (which imports what it runs) after the
    options' own checks: a refused name costs no import of torch."""
    _check_output(args.output, ".pth", [args.training_data, getattr(args, "model", None)])
    # The options, checked whole with the preset's values (base_lr against the preset's max_lr, a
    # convergence tolerance against its schedule), then the inputs in the order they are read
    # (fine-tune's --model first): argument-only errors first, as before the light checks came.
    config = _training_config(args)
    if args.command == "fine-tune":
        check_model_file(args.model)
    check_training_data_file(args.training_data)
    from cardioscar.fit.devices import describe_device, resolve_device
    from cardioscar.logic import save_trained_model

    device = resolve_device(args.cpu)
    logger.info("Training on %s (preset %s)", describe_device(device), args.preset)
    bar, update = _progress_bar(config, not args.no_progress)
    try:
        checkpoint = train(config, device, update)
    finally:
        if bar is not None:
            bar.close()
    save_trained_model(checkpoint, args.output)  # logs the one line about the file and why the run ended


def _cmd_prepare(args: argparse.Namespace) -> None:
    _check_output(args.output, ".npz", [args.mesh, *(args.image or []), *(args.grid_layers or []), args.myocardium_mask])
    if args.grid_layers and (args.slice_indices is not None or args.slice_axis != "z"):
        raise CardioScarError("--slice-indices and --slice-axis choose slices of an --image; with --grid-layers each "
                              "layer file is one slice: list only the layers to use")
    check_vtk_file(args.mesh)  # the inputs in the order they are read, before VTK and SimpleITK load
    for image in args.image or []:
        check_image_exists(image)
    from cardioscar.logic import PreprocessingRequest, prepare_training_data, save_preprocessing_result

    request = PreprocessingRequest(
        mesh_path=args.mesh,
        slice_thickness_padding=args.slice_thickness_padding,
        vtk_grid_paths=args.grid_layers,
        vtk_scalar_field=args.vtk_scalar_field,
        image_path=args.image,
        slice_axis=args.slice_axis,
        slice_indices=args.slice_indices,
        scar_labels=args.scar_labels,
        normalize_intensities=args.normalize_intensities,
        partial_volume_correction=args.partial_volume_correction,
        myocardium_labels=args.myocardium_labels,
        myocardium_mask=args.myocardium_mask,
        myocardium_margin_px=args.myocardium_margin,
        scar_rule=lge_options.scar_rule_request(args),
        slice_profile=args.slice_profile,
    )
    save_preprocessing_result(prepare_training_data(request), args.output)  # logs the file's one line


def _cmd_train(args: argparse.Namespace) -> None:
    def train(config, device, update):
        from cardioscar.logic import train_scar_model

        return train_scar_model(args.training_data, config, device, progress_callback=update)

    _run_training(args, train)


def _cmd_fine_tune(args: argparse.Namespace) -> None:
    def fine_tune(config, device, update):
        from cardioscar.logic import fine_tune_scar_model

        return fine_tune_scar_model(args.model, args.training_data, config, args.freeze_layers, device,
                                    progress_callback=update)

    _run_training(args, fine_tune)


def _cmd_apply(args: argparse.Namespace) -> None:
    _check_output(args.output, MESH_SUFFIXES, [args.model, args.mesh], "--output")
    check_seed(args.seed)
    check_vtk_file(args.mesh)
    from cardioscar.fit.devices import resolve_device
    from cardioscar.logic import apply_scar_model, save_inference_result
    from cardioscar.io.meshio import check_output_holds, read_mesh

    mesh = read_mesh(args.mesh)  # once: the prediction and the output both come from it
    check_output_holds(mesh, args.output)  # before the MC passes, not when writing after them
    result = apply_scar_model(
        args.model, mesh, args.mc_samples, args.batch_size, args.threshold, resolve_device(args.cpu), seed=args.seed
    )
    save_inference_result(result, mesh, args.output)
    logger.info(
        "%d nodes: mean scar probability %.3f, mean uncertainty %.3f",
        result.n_nodes, result.mean_scar_probability, result.mean_uncertainty,
    )


#: ``evaluate``'s options that read a --truth-image (with --truth they would be ignored).
_TRUTH_IMAGE_OPTIONS = ("scar_labels", "myocardium_labels", "myocardium_mask", "slice_axis", "slice_indices",
                        "slice_thickness_padding", "truth_threshold", "write_truth")


def _cmd_evaluate(args: argparse.Namespace) -> None:
    from cardioscar.io.atomic import atomic_write

    inputs = [args.prediction, args.truth, args.truth_image]
    if args.json_path is not None:
        _check_output(args.json_path, ".json", inputs, "--json")
    if args.truth_image is not None:
        metrics = _evaluate_on_slices(args, inputs)
    else:
        given = [f"--{name.replace('_', '-')}" for name in _TRUTH_IMAGE_OPTIONS if getattr(args, name) is not None]
        if given:
            raise CardioScarError(f"{', '.join(given)} read a --truth-image; with --truth (a mesh) leave them out")
        from cardioscar.evaluate.metrics import evaluate_meshes

        metrics = evaluate_meshes(
            args.prediction,
            args.truth,
            probability_field=args.probability_field,
            truth_field=args.truth_field or "scar_truth",
            uncertainty_field=args.uncertainty_field,
            threshold=args.threshold,
        )
    text = json.dumps(metrics, indent=2)
    sys.stdout.write(text + "\n")
    if args.json_path is not None:
        with atomic_write(args.json_path) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")


def _evaluate_on_slices(args: argparse.Namespace, inputs: Sequence[Optional[Path]]) -> dict:
    """``evaluate --truth-image``: the prediction scored on the nodes of the image's chosen slices."""
    if args.truth_field is not None:
        raise CardioScarError("--truth-field names a field of a --truth mesh; --truth-image's truth is its pixels "
                              "(--scar-labels for a label map): leave --truth-field out")
    if args.write_truth is not None:
        _check_output(args.write_truth, MESH_SUFFIXES, inputs, "--write-truth")
    from cardioscar.logic import evaluate_on_slices

    return evaluate_on_slices(
        args.prediction, args.truth_image, scar_labels=args.scar_labels, myocardium_labels=args.myocardium_labels,
        myocardium_mask=args.myocardium_mask, slice_axis=args.slice_axis or SLICE_AXIS,
        slice_indices=args.slice_indices, slice_thickness_padding=(
            SLICE_PADDING_MM if args.slice_thickness_padding is None else args.slice_thickness_padding),
        truth_threshold=args.truth_threshold, probability_field=args.probability_field,
        uncertainty_field=args.uncertainty_field, threshold=args.threshold, write_truth=args.write_truth)


def _cmd_phantom(args: argparse.Namespace) -> None:
    if args.seed is not None:  # in the option's name (the phantom's check says "phantom seed"), before the folder
        check_seed(args.seed)
    check_output_dir(args.output_dir)
    if args.family == "segmented" and args.long_axis:
        raise CardioScarError("phantom --long-axis is for the demo family; drop it or use --family demo")
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom

    overrides = {}
    if args.nodes is not None:
        overrides["target_nodes"] = args.nodes
    if args.seed is not None:
        overrides["seed"] = args.seed
    if args.family == "segmented":
        from cardioscar.phantoms.phantom_segmented import SegmentedConfig

        config = SegmentedConfig(mesh_type=args.mesh_type, **overrides)
    else:
        config = PhantomConfig(long_axis=args.long_axis, **overrides)
    phantom = make_phantom(config)
    for name, path in write_phantom(phantom, args.output_dir).items():
        logger.info("%s: %s", name, path)


def _cmd_demo(args: argparse.Namespace) -> None:
    if args.max_epochs is not None and not 1 <= args.max_epochs <= 100000:
        raise CardioScarError(f"demo --max-epochs {args.max_epochs}: use 1 to 100000")
    if args.seed is not None:  # before the folder is made and the phantom's step announced
        check_seed(args.seed)
    check_output_dir(args.output_dir)
    from cardioscar.phantoms.demo import run_demo
    from cardioscar.phantoms.phantom import PhantomConfig
    from cardioscar.fit.training import TrainingConfig

    training = None
    if args.max_epochs is not None:
        training = TrainingConfig.fast(max_epochs=args.max_epochs, early_stopping_patience=args.max_epochs)
    if args.raw_lge:
        from cardioscar.lge.demo import run_raw_lge_demo

        nodes = {} if args.nodes is None else {"target_nodes": args.nodes}
        report = run_raw_lge_demo(args.output_dir, seed=args.seed, force_cpu=args.cpu, training_config=training, **nodes)
        logger.info("Report: %s", json.dumps({"dice": report["dice"]}))
        return
    phantom = None if args.nodes is None else PhantomConfig(target_nodes=args.nodes)
    report = run_demo(args.output_dir, seed=args.seed, force_cpu=args.cpu, phantom_config=phantom,
                      training_config=training)
    logger.info("Report: %s", json.dumps({k: report[k] for k in ("dice", "volume_error", "auc")}))


@contextmanager
def _logging_to_stderr(verbose: bool) -> Iterator[None]:
    """The package's messages on stderr while one command runs, and the logger as it was after
    it: a caller that runs :func:`main` in its own process (a test, Slicer's console) keeps its
    own logging, and no handler outlives the stream it was given."""
    logger = logging.getLogger("cardioscar")
    saved = (logger.handlers[:], logger.level, logger.propagate)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG if verbose else logging.INFO)
    logger.propagate = False
    try:
        yield
    finally:
        logger.handlers[:], logger.level, logger.propagate = saved


def written_since(placed_before: int) -> str:
    """What a command stopped part-way wrote, from :func:`cardioscar.io.atomic.placed_files` as it
    began (``placed_before``): nothing, or how many files its earlier steps wrote, each whole (the
    step it stopped in wrote none of its own)."""
    placed = placed_files() - placed_before
    if placed == 0:
        return "no output was written"
    return (f"{placed} file{'s' if placed > 1 else ''} written before it kept, each whole; the step it stopped "
            "wrote nothing")


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the ``cardioscar`` console script; returns the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    new_run()  # what an earlier command in this process said once, this one says again
    placed_before = placed_files()
    try:
        with _logging_to_stderr(args.verbose):
            args.handler(args)
    except TrainingCancelled as exc:
        sys.stderr.write(f"cardioscar: cancelled: {exc} ({written_since(placed_before)})\n")
        return EXIT_CANCELLED
    except KeyboardInterrupt:
        sys.stderr.write(f"cardioscar: interrupted ({written_since(placed_before)})\n")
        return EXIT_CANCELLED
    except (CardioScarError, OSError) as exc:  # OSError: a path, permission or full disk the user can fix
        if args.debug:
            raise
        sys.stderr.write(f"cardioscar {args.command}: error: {exc}\n")
        return EXIT_USER_ERROR
    except MemoryError:
        if args.debug:
            raise
        sys.stderr.write(f"cardioscar {args.command}: error: {out_of_memory(args.command)}\n")
        return EXIT_USER_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
