"""Benchmark the whole pipeline on phantom cases of realistic sizes (not part of the test suite).

Prints one JSON line per case: mesh nodes, groups, rows, mapping time, training time and epochs,
inference time (10 MC-dropout passes), peak memory and Dice at 0.5 against the phantom's truth.
Each case runs in its own subprocess, so its peak RSS is its own.

Cases:
  headline        the existing tool's headline size: ~29k training rows ("nodes" in its data) in
                  ~2.4k groups from one short-axis slice (0.9 mm pixels, 8 mm slab); a ~330k-node
                  mesh is needed for one slab to hold that many nodes
  headline_mesh   a ~29k-node mesh with the same single slice (only ~1.4k pixels hold a node)
  demo            the demo's default phantom (~40k nodes, 8 mm slabs every 10 mm)
  large           ~250k-node mesh, 10 short-axis slices

Usage:
  PYTHONPATH=CardioScarLib python Testing/benchmarks/bench_cases.py --preset fast
  PYTHONPATH=CardioScarLib python Testing/benchmarks/bench_cases.py --cases headline --max-epochs 50
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time

MC_SAMPLES = 10

# Phantom settings and the short-axis slice indices used by each case (None: every slice).
CASES = {
    "headline": {"phantom": {"target_nodes": 330000, "pixel_mm": 0.9, "seed": 0}, "slices": "middle"},
    "headline_mesh": {"phantom": {"target_nodes": 29000, "pixel_mm": 0.9, "seed": 0}, "slices": "middle"},
    "demo": {"phantom": {}, "slices": None},
    "large": {"phantom": {"target_nodes": 250000, "slice_gap_mm": 9.0, "seed": 0}, "slices": None},
}


def _peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def make_case(name: str, folder: str) -> None:
    """Write the case's phantom files (its own process, so the pipeline's peak memory excludes it)."""
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom

    phantom = make_phantom(PhantomConfig(**CASES[name]["phantom"]))
    write_phantom(phantom, folder)


def run_case(name: str, folder: str, preset: str, max_epochs: int | None, force_cpu: bool) -> dict:
    """Read the phantom files, then map -> train -> predict in memory, timed step by step."""
    from pathlib import Path

    import numpy as np
    import torch

    from cardioscar.fit.devices import describe_device, resolve_device
    from cardioscar.io.imageio import read_image
    from cardioscar.logic import predict_on_points, prepare_from_slices, train_scar_model
    from cardioscar.io.meshio import read_mesh
    from cardioscar.evaluate.metrics import dice
    from cardioscar.prepare.slices import slices_from_image
    from cardioscar.prepare.targets import slice_targets
    from cardioscar.fit.training import TrainingConfig

    case = CASES[name]
    device = resolve_device(force_cpu)
    folder_path = Path(folder)
    meta = json.loads((folder_path / "phantom.json").read_text())
    mesh = read_mesh(folder_path / "phantom_mesh.vtk")
    image = read_image(folder_path / "phantom_lge.nii.gz")
    n_slices = image.GetSize()[2]
    indices = [n_slices // 2] if case["slices"] == "middle" else None
    slices = slice_targets(slices_from_image(image, slice_indices=indices,
                                             half_thickness=meta["slice_half_thickness_mm"]))
    points = mesh.points_lps()
    truth = mesh.point_array("scar_truth")

    start = time.perf_counter()
    prepared = prepare_from_slices(points, slices)
    mapping_s = time.perf_counter() - start
    # Train as the demo does: the phantom's pixels are whole-box means, so correct them.
    start = time.perf_counter()
    prepared = prepare_from_slices(points, slices, coverage_mesh=mesh)
    coverage_s = time.perf_counter() - start - mapping_s

    overrides = {} if max_epochs is None else {"max_epochs": max_epochs}
    config = TrainingConfig.fast(**overrides) if preset == "fast" else TrainingConfig(**overrides)
    start = time.perf_counter()
    checkpoint = train_scar_model(prepared, config, device)
    training_s = time.perf_counter() - start

    start = time.perf_counter()
    result = predict_on_points(checkpoint, points, mc_samples=MC_SAMPLES, device=device)
    inference_s = time.perf_counter() - start

    history = checkpoint["history"]
    covered = np.unique(prepared.node_ids)
    line = {
        "case": name, "preset": preset, "device": describe_device(device),
        "nodes": int(len(points)), "slices": len(slices), "groups": int(prepared.n_groups),
        "rows": int(prepared.n_nodes), "mapping_s": round(mapping_s, 3),
        "partial_volume_s": round(max(coverage_s, 0.0), 3),
        "training_s": round(training_s, 2), "epochs": int(history["epochs_run"]),
        "best_epoch": int(history["best_epoch"]), "max_epochs": config.max_epochs,
        "retried_max_lr": history.get("retried_max_lr"),  # a failed fit was trained again (fast preset)
        "inference_s": round(inference_s, 3), "mc_samples": MC_SAMPLES,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "dice": round(dice(result.mean_predictions, truth, 0.5), 4),
        # With one slice most nodes are far from any data; score the covered nodes too.
        "dice_covered_nodes": round(dice(result.mean_predictions[covered], truth[covered], 0.5), 4),
    }
    if device.type == "cuda":
        line["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return line


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", choices=("fast", "documented"), default="fast")
    parser.add_argument("--cases", default="headline,headline_mesh,demo,large",
                        help=f"comma-separated subset of {', '.join(CASES)}")
    parser.add_argument("--max-epochs", type=int, default=None, help="override the preset's max_epochs")
    parser.add_argument("--cpu", action="store_true", help="force the CPU")
    parser.add_argument("--make", nargs=2, help=argparse.SUPPRESS)  # internal: CASE FOLDER, write phantom
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)   # internal: CASE FOLDER, run pipeline
    args = parser.parse_args(argv)

    if args.make:
        make_case(*args.make)
        return
    if args.one:
        print(json.dumps(run_case(*args.one, args.preset, args.max_epochs, args.cpu)), flush=True)
        return
    names = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown:
        parser.error(f"unknown case(s) {unknown}; choose from {', '.join(CASES)}")
    for name in names:
        with tempfile.TemporaryDirectory(prefix=f"bench_{name}_") as folder:
            print(json.dumps(_run_in_subprocesses(name, folder, args)), flush=True)


def _run_in_subprocesses(name: str, folder: str, args: argparse.Namespace) -> dict:
    made = subprocess.run([sys.executable, __file__, "--make", name, folder], capture_output=True, text=True)
    if made.returncode != 0:
        return {"case": name, "error": (made.stderr.strip().splitlines() or ["phantom failed"])[-1]}
    command = [sys.executable, __file__, "--one", name, folder, "--preset", args.preset]
    if args.max_epochs is not None:
        command += ["--max-epochs", str(args.max_epochs)]
    if args.cpu:
        command.append("--cpu")
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return {"case": name, "error": (done.stderr.strip().splitlines() or ["no output"])[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])

if __name__ == "__main__":
    main()
