"""``cardioscar attrivae train | predict | explain | demo``: interpretable MI classification (Attri-VAE).

The Slicer module's worker runs exactly these commands: ``predict`` and ``explain`` print one JSON
line on stdout; errors are one ``error:`` line on stderr with exit status 2 (``cli.main``).
Heavy modules load only when a verb runs.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

logger = logging.getLogger("cardioscar")


def _int_in(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be an integer in {low}..{high} (got {text!r})")
        return value

    return parse


def _names(text: str) -> list[str]:
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise argparse.ArgumentTypeError("is empty; leave the option out to use every regularised attribute")
    return names


def register(subparsers) -> None:
    """Add the ``attrivae`` verb group to the ``cardioscar`` command line."""
    from cardioscar.cli import _comma_ints

    group = subparsers.add_parser("attrivae", help="MI vs normal from an LGE stack + labels, with attribute attention "
                                                   "maps (Attri-VAE)")
    verbs = group.add_subparsers(dest="attrivae_command", metavar="train|predict|explain|demo")
    verbs.required = True

    def device_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                            help="auto: CUDA when available, else CPU (default)")

    def label_options(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--cavity-labels", type=_comma_ints("--cavity-labels"), default=[1],
                            help="LV cavity labels of --labels (EMIDEC 1, ACDC 3)")
        parser.add_argument("--myocardium-labels", type=_comma_ints("--myocardium-labels"), default=[2, 3, 4],
                            help="myocardium labels, scar included (EMIDEC 2,3,4, ACDC 2)")

    train = verbs.add_parser("train", help="cross-validate, then train the final model on every case",
                             description="DIR holds Case_Pxxx (MI) and Case_Nxxx (normal) folders with Images/ and "
                                         "Contours/ NIfTI files (EMIDEC layout); CSV has a 'case' column.")
    train.add_argument("--data", required=True, type=Path, help="EMIDEC-style case folder")
    train.add_argument("--clinical", required=True, type=Path, help="clinical CSV (EMIDEC clinical.csv)")
    train.add_argument("--output", required=True, type=Path, help="model checkpoint to write (.pth)")
    train.add_argument("--cube", type=_int_in(8, 256), default=32, help="cube edge in voxels (default 32; 80 on a GPU)")
    train.add_argument("--epochs", type=_int_in(1, 100000), default=80,
                       help="epochs per fit (default 80, as benchmarked; the decoder needs more for sharp traversals)")
    train.add_argument("--folds", type=_int_in(0, 100), default=5,
                       help="stratified cross-validation folds before the final fit (default 5; 0 skips it)")
    train.add_argument("--seed", type=_int_in(0, 2**31 - 1), default=42, help="seed of weights, batches and folds")
    device_option(train)
    train.set_defaults(handler=_train)

    predict = verbs.add_parser("predict", help="MI probability and attributes of one case (one JSON line)")
    explain = verbs.add_parser("explain", help="attention maps (NIfTI on the input's grid), PNGs and explain.json")
    for parser in (predict, explain):
        parser.add_argument("--model", required=True, type=Path, help="checkpoint from `cardioscar attrivae train`")
        parser.add_argument("--image", required=True, type=Path, help="LGE stack (NIfTI, NRRD, MHA, DICOM folder)")
        parser.add_argument("--labels", required=True, type=Path, help="label map on the image's grid")
        label_options(parser)
        device_option(parser)
    predict.set_defaults(handler=_predict)
    explain.add_argument("--output-dir", required=True, type=Path)
    explain.add_argument("--attributes", type=_names, default=None,
                         help="comma-separated attributes to explain (default: every regularised one)")
    explain.add_argument("--steps", type=_int_in(2, 50), default=7, help="traversal steps (default 7)")
    explain.set_defaults(handler=_explain)

    demo = verbs.add_parser("demo", help="train a small model on a few cases, then predict and explain "
                                         "(CPU, under a minute)")
    demo.add_argument("--output-dir", required=True, type=Path)
    demo.add_argument("--data", type=Path, default=Path("../shared/data/emidec"),
                      help="EMIDEC folder (default ../shared/data/emidec); a synthetic set is made when it is absent")
    demo.add_argument("--epochs", type=_int_in(1, 100000), default=25, help="epochs per fit (default 25)")
    device_option(demo)
    demo.set_defaults(handler=_demo)


def _device(choice: str):
    import torch

    from cardioscar.errors import CardioScarError

    if choice == "cuda" and not torch.cuda.is_available():
        raise CardioScarError("--device cuda: no CUDA GPU is visible here; use --device cpu or auto")
    from cardioscar.fit.devices import resolve_device

    return resolve_device(force_cpu=choice == "cpu")


def _json_safe(value):
    """NaN and infinities become null: strict JSON readers (the Slicer worker's) refuse them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _emit(payload: dict) -> None:
    """One JSON line on stdout (the contract's output)."""
    sys.stdout.write(json.dumps(_json_safe(payload), allow_nan=False) + "\n")
    sys.stdout.flush()


def _train(args: argparse.Namespace) -> None:
    from cardioscar.io.checks import check_output_path

    check_output_path(args.output, "--output", (".pth",))  # before torch loads: a refused name costs no import
    from cardioscar.attrivae.train import TrainConfig
    from cardioscar.attrivae.workflow import train_from_folder
    from cardioscar.fit.devices import describe_device

    device = _device(args.device)
    logger.info("Attri-VAE training on %s", describe_device(device))
    checkpoint = train_from_folder(args.data, args.clinical, args.output, cube=args.cube,
                                   config=TrainConfig(epochs=args.epochs, seed=args.seed), folds=args.folds,
                                   device=device)
    cv = checkpoint["cross_validation"]
    _emit({"model": str(args.output), "attributes": checkpoint["attributes"],
           "cross_validation": cv["figures"] if cv else None, "calibration": _calibration_summary(checkpoint)})


def _calibration_summary(checkpoint: dict) -> dict | None:
    """Brier and ECE of the held-out MI probability before and after Platt scaling, and the scaling."""
    cv = checkpoint["cross_validation"]
    if not cv:
        return None
    figures = cv["figures"]["calibration"]
    return {**checkpoint["calibration"], **{f"{name}_{when}": figures[when][name] for name in ("brier", "ece")
                                            for when in ("uncalibrated", "calibrated")}}


def _predict_with(checkpoint: dict, args: argparse.Namespace):
    from cardioscar.attrivae.predict import predict_case
    from cardioscar.attrivae.preprocess import LabelConvention

    convention = LabelConvention(tuple(args.cavity_labels), tuple(args.myocardium_labels))
    return predict_case(checkpoint, args.image, args.labels, convention, _device(args.device))


def _check_case_files(args: argparse.Namespace) -> None:
    """``predict``'s and ``explain``'s inputs exist, checked in the order they are read, before
    torch and SimpleITK load (a mistyped name costs no import)."""
    from cardioscar.io.checks import check_attrivae_model_file, check_image_exists

    check_attrivae_model_file(args.model)
    check_image_exists(args.image)
    check_image_exists(args.labels)


def _predict(args: argparse.Namespace) -> None:
    _check_case_files(args)
    from cardioscar.attrivae.checkpoint import load_checkpoint

    _emit(_predict_with(load_checkpoint(args.model), args).result)


def _explain(args: argparse.Namespace) -> None:
    from cardioscar.io.checks import check_output_dir

    check_output_dir(args.output_dir)
    _check_case_files(args)
    from cardioscar.attrivae.checkpoint import load_checkpoint
    from cardioscar.attrivae.explain import choose_attributes, explain_case

    checkpoint = load_checkpoint(args.model)
    attributes = choose_attributes(checkpoint, args.attributes)
    prediction = _predict_with(checkpoint, args)
    _emit(explain_case(prediction, checkpoint, args.output_dir, attributes, args.steps))


def _demo(args: argparse.Namespace) -> None:
    from cardioscar.io.checks import check_output_dir

    check_output_dir(args.output_dir)
    from cardioscar.attrivae.demo import run_demo

    _emit(run_demo(args.output_dir, args.data, _device(args.device), epochs=args.epochs))
