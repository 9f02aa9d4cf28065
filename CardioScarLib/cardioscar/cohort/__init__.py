"""Cohorts: the per-patient pipeline for many patients, resumable, on Dask.

``run_cohort(manifest, output_dir, CohortOptions(...))`` validates a CSV/YAML manifest, skips
patients whose outputs match their inputs' hashes, runs the rest (a LocalCluster, an existing
scheduler, or Slurm through dask-jobqueue) and writes ``cohort_summary.csv/.json/.png``;
``cohort_status(output_dir)`` reads where a cohort stands.
"""

from .manifest import PatientSpec, read_manifest
from .runner import CohortOptions, CohortRun, SlurmOptions, local_cluster, run_cohort, slurm_cluster
from .status import cohort_status, format_status

__all__ = ["PatientSpec", "read_manifest", "CohortOptions", "CohortRun", "SlurmOptions", "local_cluster",
           "run_cohort", "slurm_cluster", "cohort_status", "format_status"]
