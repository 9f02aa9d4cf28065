"""``cardioscar demo --raw-lge``: scanner to openCARP on the phantom, scored per class.

phantom -> raw LGE stack + blood/myocardium labels -> scar rule (two targets: scar = border zone +
core, and core) -> two trainings -> apply both -> tags -> openCARP + .vtu -> Dice per class.

Truth classes on the mesh come from the phantom's scar fraction s, on the rule's own scale: the
LGE signal rises linearly with s from healthy to core, so a PSI threshold at fraction f of the
intensity range sits at s = f. Truth: border zone 0.4 <= s < 0.6, core s >= 0.6 (PSI defaults).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk

from ..io.atomic import atomic_write
from ..fit.devices import resolve_device
from ..logic import (PreprocessingRequest, apply_scar_model, prepare_training_data, save_preprocessing_result,
                     save_trained_model, train_scar_model)
from ..io.meshio import SCAR_RULE_ARRAY, TRAINING_TARGETS_ARRAY, read_mesh, set_text_field, write_mesh
from ..phantoms.phantom import PhantomConfig, make_phantom, raw_lge_acquisition, write_phantom
from ..simulation.export import export_model, summary_lines
from ..simulation.tags import CLASS_NAMES
from ..fit.training import TrainingConfig
from .prepare import ScarRuleRequest
from .rules import RULES

logger = logging.getLogger(__name__)

RULE = "psi"
MC_SAMPLES = 10


def _dice(a: np.ndarray, b: np.ndarray) -> Optional[float]:
    total = a.sum() + b.sum()
    return None if total == 0 else float(2 * (a & b).sum() / total)


def run_raw_lge_demo(output_dir: str | Path, seed: Optional[int] = None, force_cpu: bool = False, *,
                     target_nodes: int = 20000, training_config: Optional[TrainingConfig] = None) -> dict:
    """Run the scanner-to-openCARP pipeline on a phantom; returns the report (also report_raw_lge.json)."""
    out = Path(output_dir)
    config = PhantomConfig(target_nodes=target_nodes, seed=0 if seed is None else int(seed))
    train_config = training_config or TrainingConfig.fast()
    device = resolve_device(force_cpu)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    phantom = make_phantom(config)
    files = write_phantom(phantom, out)
    lge, labels = raw_lge_acquisition(phantom, seed=config.seed)
    lge_path, labels_path = out / "phantom_raw_lge.nii.gz", out / "phantom_raw_lge_labels.nii.gz"
    for image, path in ((lge, lge_path), (labels, labels_path)):
        with atomic_write(path) as tmp:
            sitk.WriteImage(image, str(tmp))
    seconds["phantom"] = time.perf_counter() - clock

    border, core = RULES[RULE][:2]
    probabilities, records, learned = {}, {}, {}
    for target in ("scar", "core"):
        clock = time.perf_counter()
        # no blood pool: PSI does not read one, and giving it made the demo warn about its own inputs
        rule = ScarRuleRequest(rule=RULE, target=target)
        request = PreprocessingRequest(mesh_path=files["mesh"], image_path=lge_path, scar_rule=rule,
                                       myocardium_mask=labels_path, myocardium_labels=[2],
                                       slice_thickness_padding=phantom.slice_half_thickness_mm)
        prepared = prepare_training_data(request)
        records[target] = json.loads(prepared.scar_rule)
        save_preprocessing_result(prepared, out / f"training_{target}.npz")
        logger.info("[%s] %d groups; training", target, prepared.n_groups)
        checkpoint = train_scar_model(out / f"training_{target}.npz", train_config, device)
        save_trained_model(checkpoint, out / f"model_{target}.pth")
        result = apply_scar_model(out / f"model_{target}.pth", files["mesh"], mc_samples=MC_SAMPLES, device=device,
                                  seed=train_config.seed)
        probabilities[target] = result.mean_predictions
        learned[target] = result.training_targets
        seconds[f"prepare_train_apply_{target}"] = time.perf_counter() - clock

    prediction = out / "prediction_raw_lge.vtk"
    mesh = read_mesh(files["mesh"])
    # apply's note of what scar_probability's model learned: a one-field export or Tag of this file warns
    set_text_field(mesh.dataset, TRAINING_TARGETS_ARRAY, learned["scar"])
    set_text_field(mesh.dataset, SCAR_RULE_ARRAY, json.dumps(records["scar"]))  # and the rule its model learned
    write_mesh(mesh, prediction, {"scar_probability": probabilities["scar"],
                                  "core_probability": probabilities["core"], "scar_truth": phantom.truth})
    # the LV fibre rule's .lon: a model openCARP can run (without it, the export told the demo's user to
    # give --fibres, an option the demo does not take)
    tags, _ = export_model(prediction, out / "model_opencarp", core_field="core_probability",
                           scar_rule=records["scar"], fibres_field="rule")
    export_model(prediction, out / "model_tagged.vtu", fmt="vtu", core_field="core_probability")

    truth_grade = np.where(phantom.truth >= core, 2, np.where(phantom.truth >= border, 1, 0))
    predicted_grade = np.searchsorted(np.asarray(tags.tag_values), tags.node_tags)  # tag -> 0/1/2
    dice = {"scar": _dice(predicted_grade >= 1, truth_grade >= 1),
            **{name: _dice(predicted_grade == g, truth_grade == g) for g, name in enumerate(CLASS_NAMES) if g}}
    report = {"rule": RULE, "thresholds": [border, core], "truth": f"border zone {border} <= s < {core}, core s >= {core}",
              "dice": dice, "classes": tags.summary(), "seconds": seconds, "n_nodes": int(mesh.n_points),
              "files": ["model_opencarp.pts", "model_opencarp.elem", "model_opencarp.lon", "model_opencarp.json",
                        "model_tagged.vtu",
                        prediction.name]}
    with atomic_write(out / "report_raw_lge.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    for line in summary_lines(tags):
        logger.info(line)
    logger.info("Dice against the phantom's truth: scar %.3f, border zone %.3f, core %.3f", dice["scar"] or 0,
                dice["border_zone"] or 0, dice["core"] or 0)
    return report
