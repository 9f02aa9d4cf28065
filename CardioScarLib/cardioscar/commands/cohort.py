"""``cardioscar cohort run|status``: many patients from one manifest, on Dask.

Lives beside ``cli.py`` (which registers it with one line); Dask loads only when the verb runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

logger = logging.getLogger("cardioscar")


def register(subparsers) -> None:
    """Add ``cohort run`` and ``cohort status`` to the ``cardioscar`` command line."""
    cohort = subparsers.add_parser("cohort", help="run prepare -> train -> apply for every patient of a manifest, on Dask")
    verbs = cohort.add_subparsers(dest="cohort_command", metavar="run|status")
    verbs.required = True

    run = verbs.add_parser(
        "run", help="run (or resume) a cohort",
        description="Writes OUTPUT_DIR/<id>/ (scar_prediction.<ext>, model.pth, report.json) per patient and "
                    "OUTPUT_DIR/cohort_summary.csv/.json/.png. Patients whose outputs match their inputs and options "
                    "are skipped. Without --scheduler or --slurm a LocalCluster runs on this machine.")
    run.add_argument("manifest", type=Path, help="CSV or YAML manifest, one patient per row (paths relative to it)")
    run.add_argument("--output-dir", required=True, type=Path)
    where = run.add_mutually_exclusive_group()
    where.add_argument("--scheduler", help="address of a running Dask scheduler, e.g. tcp://host:8786")
    where.add_argument("--slurm", action="store_true", help="start workers as Slurm jobs (dask-jobqueue), one per job")
    run.add_argument("--workers", type=int, default=None,
                     help="workers (LocalCluster: default cores / (threads x fits), or one per GPU; Slurm: jobs, default 1)")
    run.add_argument("--threads-per-worker", type=int, default=1, help="torch CPU threads of each fit (default 1)")
    run.add_argument("--fits-per-worker", type=int, default=1,
                     help="patients a worker runs at once (default 1; >1 packs several fits on one GPU)")
    run.add_argument("--gpus-per-worker", type=int, default=0, choices=(0, 1), help="1: each worker fits on a GPU")
    run.add_argument("--retries", type=int, default=2, help="extra attempts after a worker dies or a task crashes (default 2)")
    run.add_argument("--only", type=lambda text: [p for p in text.split(",") if p], default=None,
                     help="run only these patient ids (comma-separated), e.g. one per Slurm array task")
    run.add_argument("--queue", help="Slurm partition (with --slurm)")
    run.add_argument("--account", help="Slurm account (with --slurm)")
    run.add_argument("--walltime", default="02:00:00", help="Slurm time limit per worker job (default 02:00:00)")
    run.add_argument("--memory", default="8GB", help="memory per Slurm worker job (default 8GB)")
    run.set_defaults(handler=_run)

    status = verbs.add_parser("status", help="done / running / failed / pending patients of a cohort's output folder")
    status.add_argument("output_dir", type=Path)
    status.set_defaults(handler=_status)


def _run(args: argparse.Namespace) -> None:
    from cardioscar.errors import CardioScarError

    slurm_given = [flag for flag, value, default in (("--queue", args.queue, None), ("--account", args.account, None),
                                                      ("--walltime", args.walltime, "02:00:00"),
                                                      ("--memory", args.memory, "8GB")) if value != default]
    if slurm_given and not args.slurm:
        raise CardioScarError(f"{', '.join(slurm_given)} need --slurm (they would be ignored without it)")
    from cardioscar.cohort import CohortOptions, SlurmOptions, run_cohort  # after the checks: Dask, VTK, torch

    options = CohortOptions(
        workers=args.workers, threads_per_worker=args.threads_per_worker, fits_per_worker=args.fits_per_worker,
        gpus_per_worker=args.gpus_per_worker, retries=args.retries, scheduler=args.scheduler, only=args.only,
        slurm=SlurmOptions(args.queue, args.account, args.walltime, args.memory) if args.slurm else None)
    result = run_cohort(args.manifest, args.output_dir, options)
    counts = result.counts
    logger.info("cohort: %s; summary %s", ", ".join(f"{n} {s}" for s, n in sorted(counts.items())), result.files["csv"])
    if counts.get("failed"):
        raise CardioScarError(f"{counts['failed']} of {len(result.selected)} patients failed; their errors are in "
                              f"{result.files['csv']}")


def _status(args: argparse.Namespace) -> None:
    from cardioscar.cohort import cohort_status, format_status

    sys.stdout.write(format_status(cohort_status(args.output_dir)) + "\n")
