"""Does ``scar_error_risk`` depend on how finely the heart is meshed? (issue 18, item 5)

One model is trained on the demo-family phantom of seed 3 meshed with ~6k nodes (fast preset,
the real CLI) and applied to the same heart meshed with ~1.5k, ~6k and ~24k nodes. A risk that
means "the chance the call is wrong" should not change with the mesh: per mesh this prints the
mean risk, the mean of its value term alone, the share of nodes above 0.5 and the ROC AUC for
the nodes wrong at 0.5, for the border distance the library uses (where ``p`` crosses the cut,
interpolated between the two nodes) and for the one it replaced (half the distance to the
nearest node of the other call, which shrinks with the mesh's step).

Usage: PYTHONPATH=CardioScarLib python Testing/benchmarks/error_risk_mesh_resolution.py [--nodes 1500,6000,24000]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import erfc
from sklearn.metrics import roc_auc_score

from cardioscar.cli import main as cli
from cardioscar.logic import checkpoint_constraint_points, load_trained_model, predict_on_points
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom
from cardioscar.predict import error_risk as risk

TRAINED_ON = 6000


def halved_distance(points: np.ndarray, probability: np.ndarray) -> np.ndarray:
    """The replaced border distance: half the distance to the nearest node of the other call."""
    above = probability >= 0.5
    distance = np.full(len(probability), np.inf)
    for side in (True, False):
        sources, targets = np.flatnonzero(above == side), np.flatnonzero(above != side)
        if sources.size and targets.size:
            distance[targets] = 0.5 * cKDTree(points[sources]).query(points[targets])[0]
    return distance


def scores(name: str, values: np.ndarray, value_term: np.ndarray, wrong: np.ndarray) -> dict:
    return {f"{name}_mean": round(float(values.mean()), 4), f"{name}_above_half": round(float((values > 0.5).mean()), 4),
            f"{name}_wrong_auc": round(float(roc_auc_score(wrong, values)), 4) if 0 < wrong.sum() < len(wrong) else None,
            "value_term_mean": round(float(value_term.mean()), 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", default="1500,6000,24000")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        trained = make_phantom(PhantomConfig(target_nodes=TRAINED_ON, seed=args.seed))
        paths = write_phantom(trained, work / "trained")
        assert cli(["prepare", "--mesh", str(paths["mesh"]), "--image", str(paths["image"]), "--slice-thickness-padding",
                    str(trained.slice_half_thickness_mm), "--output", str(work / "data.npz")]) == 0
        assert cli(["train", "--training-data", str(work / "data.npz"), "--output", str(work / "model.pth"),
                    "--preset", "fast", "--seed", "1", "--no-progress"]) == 0
        checkpoint = load_trained_model(work / "model.pth")
        constraints = checkpoint_constraint_points(checkpoint)
        for nodes in (int(n) for n in args.nodes.split(",")):
            phantom = make_phantom(PhantomConfig(target_nodes=nodes, seed=args.seed))
            points = phantom.points_lps
            result = predict_on_points(checkpoint, points, mc_samples=10, seed=0)
            p, std = result.mean_predictions.astype(np.float64), result.std_predictions
            wrong = (p >= 0.5) != (phantom.truth >= 0.5)
            value_term = risk.error_risk(p, std)
            reach = cKDTree(constraints).query(points)[0]
            spread = risk.BORDER_SPREAD_MM + risk.BORDER_SPREAD_PER_MM * reach
            border = erfc(halved_distance(points, p) / (spread * np.sqrt(2.0)))
            halved = 1.0 - (1.0 - value_term) * (1.0 - border)
            line = {"nodes": len(points), "trained_on": TRAINED_ON, "wrong_nodes": int(wrong.sum()),
                    **scores("risk", result.error_risk, value_term, wrong),
                    **scores("halved_distance_risk", halved, value_term, wrong)}
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
