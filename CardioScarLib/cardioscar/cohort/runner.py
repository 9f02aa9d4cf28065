"""Run a cohort on Dask: a LocalCluster by default, an existing scheduler, or Slurm via dask-jobqueue.

One Dask task per patient (:func:`cardioscar.cohort.tasks.run_patient`). Patients whose outputs
hold the same input hash are skipped before anything is submitted. Dask reschedules a task whose
worker died (at most ``retries`` + 1 attempts, through the scheduler's ``allowed-failures``) and
re-runs a task that raised an unexpected error (``retries=``); a patient's user error comes back
as a failed record at once. The summary is written when the run starts (every patient to run
``pending``) and rewritten after every patient, so an interrupted cohort still has an up-to-date
``cohort_summary.csv``.

Threads: each worker runs ``fits_per_worker`` patients at a time (Dask threads) and each fit uses
``threads_per_worker`` torch threads; the defaults (one fit, one thread, a worker per core) keep
workers x fits x threads within the machine's cores.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

from cardioscar.io.atomic import atomic_write
from cardioscar.cohort.manifest import PatientSpec, read_manifest
from cardioscar.cohort.summary import (COHORT_RECORD, FAILED_DIR, cohort_notes, write_bullseye_sheet, write_picture,
                                      write_summary)
from cardioscar.cohort.tasks import PARTIAL, REPORT, input_hash, input_paths, partial_ids, run_patient, up_to_date
from cardioscar.errors import CardioScarError

logger = logging.getLogger(__name__)


@dataclass
class SlurmOptions:
    """What a Slurm job of one worker books (dask-jobqueue's ``SLURMCluster``)."""

    queue: Optional[str] = None
    account: Optional[str] = None
    walltime: str = "02:00:00"
    memory: str = "8GB"


@dataclass
class CohortOptions:
    """How to run: where (a LocalCluster, ``scheduler`` address or ``slurm``), how wide, which patients."""

    workers: Optional[int] = None
    threads_per_worker: int = 1
    fits_per_worker: int = 1
    gpus_per_worker: int = 0
    retries: int = 2
    scheduler: Optional[str] = None
    slurm: Optional[SlurmOptions] = None
    only: Optional[list[str]] = None

    def check(self) -> None:
        """One-line errors for values no cluster could honour."""
        for name in ("threads_per_worker", "fits_per_worker"):
            if getattr(self, name) < 1:
                raise CardioScarError(f"--{name.replace('_', '-')} must be >= 1, got {getattr(self, name)}")
        if self.workers is not None and self.workers < 1:
            raise CardioScarError(f"--workers must be >= 1, got {self.workers}")
        if self.gpus_per_worker not in (0, 1):
            raise CardioScarError(f"--gpus-per-worker must be 0 or 1 (a fit uses one GPU; pack several patients on it "
                                  f"with --fits-per-worker), got {self.gpus_per_worker}")
        if not 0 <= self.retries <= 10:
            raise CardioScarError(f"--retries must be within 0..10, got {self.retries}")
        if self.scheduler and self.slurm:
            raise CardioScarError("give --scheduler or --slurm, not both")


@dataclass
class CohortRun:
    """What a run did: the summary rows (every patient, manifest order), the ids this run was
    asked for (all, or ``--only``'s) and the files written."""

    rows: list[dict]
    output_dir: Path
    selected: list[str]
    files: dict = field(default_factory=dict)

    @property
    def counts(self) -> dict[str, int]:
        """Patients of this run per status."""
        counts: dict[str, int] = {}
        for row in self.rows:
            if row["id"] in self.selected:
                counts[row["status"]] = counts.get(row["status"], 0) + 1
        return counts


def _allowed_failures(retries: int):
    import dask

    return dask.config.set({"distributed.scheduler.allowed-failures": retries})


def default_workers(options: CohortOptions) -> int:
    """A worker per GPU with GPUs, else as many as fit the cores at ``threads x fits`` each."""
    if options.workers is not None:
        return options.workers
    if options.gpus_per_worker:
        import torch

        return max(1, torch.cuda.device_count())
    return max(1, (os.cpu_count() or 1) // (options.threads_per_worker * options.fits_per_worker))


def local_cluster(options: CohortOptions):
    """A process-based LocalCluster: each worker its own process (a crash or leak stays there)."""
    from distributed import LocalCluster

    workers = default_workers(options)
    used = workers * options.fits_per_worker * options.threads_per_worker
    if not options.gpus_per_worker and used > (os.cpu_count() or 1):
        logger.warning("%d workers x %d fits x %d threads = %d threads on %d cores: the fits will slow each other",
                       workers, options.fits_per_worker, options.threads_per_worker, used, os.cpu_count())
    with _allowed_failures(options.retries):
        return LocalCluster(n_workers=workers, threads_per_worker=options.fits_per_worker, processes=True,
                            dashboard_address=None, silence_logs=logging.ERROR)


def slurm_cluster(options: CohortOptions):
    """A dask-jobqueue SLURMCluster with one worker per job: the job books ``threads x fits`` CPUs
    (and one GPU with ``gpus_per_worker``) and the worker runs ``fits`` patients at a time."""
    from dask_jobqueue import SLURMCluster

    slurm = options.slurm or SlurmOptions()
    threads = options.threads_per_worker
    directives = [f"--gres=gpu:{options.gpus_per_worker}"] if options.gpus_per_worker else []
    with _allowed_failures(options.retries):
        return SLURMCluster(
            cores=options.fits_per_worker, processes=1, job_cpu=threads * options.fits_per_worker,
            memory=slurm.memory, queue=slurm.queue, account=slurm.account, walltime=slurm.walltime,
            job_name="cardioscar-cohort", job_extra_directives=directives,
            job_script_prologue=[f"export OMP_NUM_THREADS={threads}", f"export MKL_NUM_THREADS={threads}"],
        )


def _client(options: CohortOptions):
    """(client, cluster we started or None)."""
    from distributed import Client

    if options.scheduler:
        try:
            return Client(options.scheduler, timeout="20s"), None
        except (OSError, TimeoutError) as error:
            raise CardioScarError(f"cannot reach the Dask scheduler at {options.scheduler} ({error}); check --scheduler "
                                  "(e.g. tcp://host:8786)") from None
    cluster = slurm_cluster(options) if options.slurm else local_cluster(options)
    if options.slurm:
        cluster.scale(jobs=options.workers or 1)
    return Client(cluster), cluster


def _failed_path(output_dir: Path, ident: str) -> Path:
    return output_dir / FAILED_DIR / f"{ident}.json"


def _row_from_disk(spec: PatientSpec, output_dir: Path, digest: str) -> dict:
    """The patient's row as its files say: skipped (up to date), failed (a failure record) or pending."""
    if up_to_date(spec, output_dir, digest):
        report = json.loads((output_dir / spec.id / REPORT).read_text(encoding="utf-8"))
        return {**report, "status": "skipped"}
    try:
        return json.loads(_failed_path(output_dir, spec.id).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"id": spec.id, "status": "pending", "input_hash": digest}


def _record(output_dir: Path, row: dict) -> None:
    """Keep a failure record on disk (the summary of a later run or of `status` shows it); a
    success removes the patient's old failure record."""
    path = _failed_path(output_dir, row["id"])
    if row["status"] == "failed":
        with atomic_write(path) as tmp:
            tmp.write_text(json.dumps(row, indent=2) + "\n", encoding="utf-8")
    elif path.exists():
        path.unlink()


def _one_line(error: BaseException, retries: int) -> str:
    from distributed import KilledWorker

    if isinstance(error, KilledWorker):
        return f"its worker died {retries + 1} times (killed, or out of memory); see the worker logs"
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _remove_partials(output_dir: Path, ids: set[str]) -> None:
    """Temporary folders of interrupted attempts at these patients (never another run's patients)."""
    for path in output_dir.glob(f".*{PARTIAL}*"):
        if path.name[1:].split(PARTIAL)[0] in ids:
            shutil.rmtree(path, ignore_errors=True)


def _eta(started: float, finished: int, remaining: int) -> str:
    if not finished or not remaining:
        return "-"
    seconds = (time.perf_counter() - started) / finished * remaining
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def running_now(processing: dict[str, Sequence], slots: dict[str, int]) -> int:
    """Patients being fitted now: on each worker, its assigned tasks up to its slots (threads).

    Why not the assigned tasks alone (``Client.processing``): Dask hands a worker more tasks than
    it can run and queues the rest there, so a 2-core LocalCluster of 2 workers said '4 running,
    2 queued' over 7 patients while 2 ran."""
    return sum(min(len(keys), slots.get(worker, 1)) for worker, keys in processing.items())


def mark_unfinished(rows: dict[str, dict], unfinished: set[str], fitting: set[str]) -> None:
    """Set each unfinished patient's summary status: ``running`` while its temporary folder exists
    (``fitting``, :func:`partial_ids`), else ``pending``.

    Why: every submitted patient was summarised as ``running``, so with one worker the summary
    said 4 running while the progress line said 1 running, 2 queued (EMIDEC, 4 patients). A row
    kept a previous failure's ``error`` cell as ``pending`` or ``running``: it is dropped."""
    for ident in unfinished:
        # the row of this attempt: an earlier attempt's cells (a failure's error, its seconds) are not its
        kept = {key: rows[ident][key] for key in ("id", "input_hash") if key in rows[ident]}
        rows[ident] = {**kept, "status": "running" if ident in fitting else "pending"}


def _check_only(patients: list[PatientSpec], only: Optional[list[str]]) -> None:
    known = {p.id for p in patients}
    missing = [ident for ident in only or [] if ident not in known]
    if missing:
        raise CardioScarError(f"--only {', '.join(missing)}: not in the manifest (ids: {', '.join(sorted(known)[:20])})")


def _row_as_recorded(spec: PatientSpec, output_dir: Path) -> dict:
    """A patient outside ``--only``: its state as its files record it, inputs not re-hashed (a
    Slurm array task must not read the whole cohort's images to write the summary)."""
    for path in (_failed_path(output_dir, spec.id), output_dir / spec.id / REPORT):
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
    return {"id": spec.id, "status": "pending"}


def _check_outputs_apart_from_inputs(patients: list[PatientSpec], out: Path) -> None:
    """Refuse an output folder whose per-patient result folders (``OUTPUT_DIR/<id>``, replaced
    whole by each run) or failure records hold an input. Why: with ``--output-dir`` the
    manifest's own folder and each patient's files in a folder named by its id (``P001/lge.nii.gz``,
    a common layout), a finished patient's results replaced that folder: its mesh and images were
    deleted, with status ``done``."""
    root = out.resolve()
    replaced = {root / spec.id: spec.id for spec in patients}
    replaced[root / FAILED_DIR] = FAILED_DIR
    for spec in patients:
        for role, path in input_paths(spec):
            path = path.resolve()
            hit = next((folder for folder in (path, *path.parents) if folder in replaced), None)
            if hit is not None:
                raise CardioScarError(
                    f"--output-dir {out}: the run writes {hit} (replacing the folder whole), which holds row {spec.row}'s "
                    f"{role} {path}; it would be deleted: give an output folder apart from the input data "
                    f"(e.g. {out / 'results'})")


def _require_dask() -> None:
    try:
        import dask_jobqueue  # noqa: F401  (imports distributed too)
        import yaml  # noqa: F401
    except ImportError as error:
        raise CardioScarError(f"cardioscar cohort needs Dask ({error.name} is missing): "
                              "pip install 'cardioscar[cohort]'") from None


def run_cohort(manifest: str | Path, output_dir: str | Path, options: Optional[CohortOptions] = None) -> CohortRun:
    """Validate the manifest, skip what is up to date, run the rest on Dask, write the summary.

    Raises :class:`CardioScarError` before anything runs for a bad manifest or options; a
    patient's failure is a ``failed`` row, never an exception.
    """
    options = options or CohortOptions()
    options.check()
    _require_dask()
    patients = read_manifest(manifest)
    _check_only(patients, options.only)
    selected = [spec for spec in patients if not options.only or spec.id in options.only]
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise CardioScarError(f"--output-dir {out} exists and is not a folder")
    _check_outputs_apart_from_inputs(patients, out)
    out.mkdir(parents=True, exist_ok=True)
    hashes = {spec.id: input_hash(spec) for spec in selected}
    rows = {spec.id: _row_from_disk(spec, out, hashes[spec.id]) if spec.id in hashes else _row_as_recorded(spec, out)
            for spec in patients}
    if not options.only:
        _warn_other_cohort(out, Path(manifest), {spec.id for spec in patients})
        with atomic_write(out / COHORT_RECORD) as tmp:
            tmp.write_text(json.dumps({"manifest": str(Path(manifest).resolve()),
                                       "patients": [{"id": s.id, "input_hash": hashes[s.id]} for s in patients]},
                                      indent=2) + "\n")
    todo = [spec for spec in selected if rows[spec.id]["status"] != "skipped"]
    logger.info("cohort: %d patients, %d up to date, %d to run", len(selected), len(selected) - len(todo), len(todo))
    _remove_partials(out, {spec.id for spec in todo})  # an interrupted run's: not running now
    # the cohort as it starts, each patient to run pending (a previous failure's error is not its
    # row's now): written only after the first patient finished, the summary was missing (or a
    # previous run's) during a long first fit
    rows.update({spec.id: {"id": spec.id, "status": "pending", "input_hash": hashes[spec.id]} for spec in todo})
    for spec in todo:  # nor is it the patient's on disk: `cohort status` and other --only runs read it as failed
        _failed_path(out, spec.id).unlink(missing_ok=True)
    write_summary(out, [rows[spec.id] for spec in patients])
    if todo:
        _run_on_dask(todo, out, hashes, rows, options)
    _remove_partials(out, {spec.id for spec in todo})
    ordered = [rows[spec.id] for spec in patients]
    csv_path, json_path = write_summary(out, ordered)
    for note in cohort_notes(ordered):  # once for the cohort, not in every patient's warnings
        logger.warning("cohort: %s", note)
    files = {"csv": csv_path, "json": json_path}
    for key, picture in (("png", write_picture(out, ordered)), ("bullseyes", write_bullseye_sheet(out, ordered))):
        if picture is not None:
            files[key] = picture
    return CohortRun(ordered, out, [spec.id for spec in selected], files)


def _warn_other_cohort(out: Path, manifest: Path, ids: set[str]) -> None:
    """Warn when ``out`` holds results of patients this manifest does not list (another cohort's
    folder reused, or rows taken out): their folders stay, as a user's results do, but the summary
    leaves them out, so a script globbing ``out/*/`` would mix the two cohorts without a word
    (round 18). Read from the folders (a patient's ``report.json``) and the failure records (a
    failed patient leaves ``_failed/ID.json`` and no folder), so a second run says it again; the
    previous run's record names its manifest when it was another."""
    done = sorted(child.name for child in out.iterdir()
                  if child.name not in ids and child.is_dir() and (child / REPORT).is_file())
    failed = sorted(path.stem for path in (out / FAILED_DIR).glob("*.json") if path.stem not in ids)
    if not done and not failed:
        return
    try:
        earlier = str(json.loads((out / COHORT_RECORD).read_text()).get("manifest", ""))
    except (OSError, ValueError, AttributeError):
        earlier = ""
    other = f" of another manifest ({earlier})" if earlier and earlier != str(manifest.resolve()) else ""
    names = done + [f"{ident} (failed)" for ident in failed]
    logger.warning("cohort: %s holds %d patient(s)%s that %s does not list (%s): their results and "
                   "failure records stay, outside this cohort's summary; give each cohort an --output-dir of its own",
                   out, len(names), other, manifest.name, ", ".join(names[:5]) + (", ..." if len(names) > 5 else ""))


def _run_on_dask(todo: list[PatientSpec], out: Path, hashes: dict[str, str], rows: dict[str, dict],
                 options: CohortOptions) -> None:
    from distributed import as_completed

    client, cluster = _client(options)
    started = time.perf_counter()
    try:
        futures = {
            client.submit(run_patient, spec, str(out), hashes[spec.id], options.threads_per_worker,
                          bool(options.gpus_per_worker), key=f"cardioscar-{spec.id}-{hashes[spec.id][:12]}",
                          retries=options.retries, pure=False): spec
            for spec in todo
        }
        unfinished = {spec.id for spec in todo}
        finished = 0
        for future in as_completed(futures):
            spec = futures[future]
            try:
                row = future.result()
            except Exception as error:  # noqa: BLE001 - whatever ended the task, it ends only this patient
                row = {"id": spec.id, "status": "failed", "input_hash": hashes[spec.id],
                       "error": _one_line(error, options.retries)}
            rows[spec.id] = row
            _record(out, row)
            unfinished.discard(spec.id)
            mark_unfinished(rows, unfinished, partial_ids(out))
            finished += 1
            failed = sum(r["status"] == "failed" for r in rows.values())
            running = running_now(client.processing(), client.nthreads())
            logger.info("cohort: %s %s%s | %d/%d finished (%d failed), %d running, %d queued, ETA %s", spec.id,
                        row["status"],
                        (f" ({row['error']})" if row["status"] == "failed" else f" in {row.get('seconds', 0):.1f} s")
                        + (f", {len(row['warnings'])} warning(s): {row['warnings'][0]}" if row.get("warnings") else ""),
                        finished, len(todo), failed, running, max(0, len(todo) - finished - running),
                        _eta(started, finished, len(todo) - finished))
            write_summary(out, [rows[ident] for ident in rows])
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
