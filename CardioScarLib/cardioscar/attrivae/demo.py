"""``cardioscar attrivae demo``: a small model on a few cases, then predict and explain one unseen case.

On EMIDEC (when the folder is there) it trains on the first five MI and five normal cases and
explains the sixth MI case, which training never saw; otherwise on a synthetic set written into
the output folder. A 32^3 cube and a few epochs keep it under a minute on two CPU cores: it shows
the files and the workflow, not the accuracy (see the benchmark for that).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import torch

from cardioscar.io.atomic import atomic_write
from cardioscar.attrivae.checkpoint import load_checkpoint
from cardioscar.attrivae.dataset import CASE_NAME, case_files
from cardioscar.attrivae.explain import explain_case
from cardioscar.attrivae.predict import predict_case
from cardioscar.attrivae.preprocess import LabelConvention
from cardioscar.attrivae.synthetic import write_synthetic_set
from cardioscar.attrivae.train import TrainConfig
from cardioscar.attrivae.workflow import train_from_folder

logger = logging.getLogger(__name__)

PER_CLASS = 5


def _split(data_dir: Path) -> tuple[list[str], Path]:
    """Training case names (first five of each class) and the held-out MI case's folder."""
    names = sorted(p.name for p in data_dir.iterdir() if p.is_dir() and CASE_NAME.fullmatch(p.name))
    mi = [n for n in names if n.startswith("Case_P")]
    normal = [n for n in names if n.startswith("Case_N")]
    return mi[:PER_CLASS] + normal[:PER_CLASS], data_dir / mi[PER_CLASS]


def _has_cases(folder: Path) -> bool:
    if not (folder / "clinical.csv").is_file():
        return False
    names = [p.name for p in folder.iterdir() if p.is_dir() and CASE_NAME.fullmatch(p.name)]
    return sum(n.startswith("Case_P") for n in names) > PER_CLASS and sum(n.startswith("Case_N") for n in names) >= PER_CLASS


def run_demo(output_dir: str | Path, data_dir: str | Path, device: torch.device, epochs: int = 25) -> dict:
    """Train, predict, explain; write ``demo.json`` and return it."""
    output = Path(output_dir)
    source = Path(data_dir)
    if source.is_dir() and _has_cases(source):
        kind = "emidec"
    else:
        logger.info("%s has no EMIDEC cases: using a synthetic set", source)
        kind = "synthetic"
        source = write_synthetic_set(output / "synthetic_data", n_mi=PER_CLASS + 1, n_normal=PER_CLASS)
    training, heldout = _split(source)
    model_path = output / "model.pth"
    train_from_folder(source, source / "clinical.csv", model_path, cube=32, config=TrainConfig(epochs=epochs),
                      folds=0, device=device, cases=training)
    checkpoint = load_checkpoint(model_path)
    image, labels = case_files(heldout)
    prediction = predict_case(checkpoint, image, labels, LabelConvention(), device)
    with atomic_write(output / "predict.json") as tmp:
        tmp.write_text(json.dumps(prediction.result, indent=2) + "\n", encoding="utf-8")
    explained = explain_case(prediction, checkpoint, output / "explain")
    summary = {"data": kind, "data_dir": str(source), "training_cases": training, "heldout_case": heldout.name,
               "heldout_is_mi": True, "mi_probability": prediction.result["mi_probability"],
               "mi_probability_calibrated": prediction.result["mi_probability_calibrated"],
               "attributes": prediction.result["attributes"], "model": str(model_path.resolve()),
               "explain": explained}
    with atomic_write(output / "demo.json") as tmp:
        tmp.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary
