"""Benchmark cohorts (not part of the test suite): a serial loop against `cohort run` on Dask.

Writes N phantom patients (default 8 of the demo's size, ~40k nodes, fast preset), then in one run:

  serial   the same per-patient task (cardioscar.cohort.tasks.run_patient) in a plain loop, in this
           process, one torch thread (after one warm-up patient, so imports are not counted)
  cohort   run_cohort on a fresh LocalCluster of --workers process workers, one torch thread each,
           cluster start and worker imports included (what a user waits for)
  skip     run_cohort again: every patient up to date (hashing + summary only)

and prints one JSON line: the times, the ratio serial/cohort, the cluster start, and the engine's
per-patient overhead = (cohort wall - cluster start - sum of task seconds / workers) / patients.

Usage:
  PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/bench_cohort.py
  PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/bench_cohort.py --nodes 8000 --max-epochs 150
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from cardioscar.cohort import CohortOptions, local_cluster, read_manifest, run_cohort
from cardioscar.cohort.tasks import input_hash, run_patient
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom


def write_cohort(root: Path, patients: int, nodes: int, max_epochs: int | None) -> Path:
    rows = ["id,mesh,image,slice_thickness_padding,partial_volume_correction,preset,seed,max_epochs"]
    for seed in range(patients):
        write_phantom(make_phantom(PhantomConfig(target_nodes=nodes, seed=seed)), root / f"p{seed}")
        rows.append(f"p{seed},p{seed}/phantom_mesh.vtk,p{seed}/phantom_lge.nii.gz,4.0,yes,fast,{seed},"
                    f"{max_epochs or ''}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root / "manifest.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--patients", type=int, default=8)
    parser.add_argument("--nodes", type=int, default=40000, help="phantom nodes per patient (demo: 40000)")
    parser.add_argument("--max-epochs", type=int, default=None, help="default: the fast preset's 600")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        manifest = write_cohort(root / "data", args.patients, args.nodes, args.max_epochs)
        patients = read_manifest(manifest)
        run_patient(patients[0], str(root / "warmup"), input_hash(patients[0]))  # imports, first-call costs
        clock = time.perf_counter()
        serial_tasks = [run_patient(spec, str(root / "serial"), input_hash(spec)) for spec in patients]
        serial = time.perf_counter() - clock

        clock = time.perf_counter()
        options = CohortOptions(workers=args.workers)
        cluster = local_cluster(options)
        started = time.perf_counter() - clock
        try:
            run = run_cohort(manifest, root / "cohort", CohortOptions(scheduler=cluster.scheduler_address))
        finally:
            cluster.close()
        cohort = time.perf_counter() - clock
        clock = time.perf_counter()
        skipped = run_cohort(manifest, root / "cohort", CohortOptions(workers=args.workers))
        skip = time.perf_counter() - clock
    task_seconds = sum(row["seconds"] for row in run.rows)
    print(json.dumps({
        "patients": args.patients, "nodes": args.nodes, "max_epochs": args.max_epochs or "fast preset",
        "workers": args.workers, "cpu_count": os.cpu_count(),
        "serial_s": round(serial, 1), "serial_task_s": [round(r["seconds"], 1) for r in serial_tasks],
        "cohort_s": round(cohort, 1), "ratio_serial_over_cohort": round(serial / cohort, 2),
        "cluster_start_s": round(started, 1), "cohort_task_s": [round(r["seconds"], 1) for r in run.rows],
        "engine_overhead_per_patient_s": round((cohort - started - task_seconds / args.workers) / args.patients, 2),
        "all_skipped_s": round(skip, 2), "statuses": run.counts, "second_run": skipped.counts,
    }))


if __name__ == "__main__":
    main()
