"""``cardioscar cohort status D``: where a cohort stands, read from its output folder alone.

Works during a run (from another terminal), after one, and for Slurm array jobs that each ran
``--only ID``: every patient's state is in its own files (``D/<id>/report.json``, the failure
record ``D/_failed/<id>.json``, a temporary ``D/.<id>.partial-*`` folder while it runs).
"""

from __future__ import annotations

import json
from pathlib import Path

from cardioscar.cohort.runner import COHORT_RECORD
from cardioscar.cohort.summary import FAILED_DIR
from cardioscar.cohort.tasks import REPORT, partial_ids
from cardioscar.errors import CardioScarError


def _read(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def cohort_status(output_dir: str | Path) -> list[dict]:
    """One row per patient: ``done``, ``stale`` (a result of other inputs or options than the last
    run's), ``failed`` (with its error), ``running`` (or interrupted) or ``pending``."""
    out = Path(output_dir)
    record = _read(out / COHORT_RECORD)
    if record is None:
        raise CardioScarError(f"{out} holds no cohort ({COHORT_RECORD} is missing): give the --output-dir of "
                              "`cardioscar cohort run`")
    running = partial_ids(out)
    rows = []
    for patient in record["patients"]:
        ident = patient["id"]
        report = _read(out / ident / REPORT)
        failed = _read(out / FAILED_DIR / f"{ident}.json")
        if failed is not None:
            row = {"id": ident, "status": "failed", "error": failed.get("error", "")}
        elif report is not None:
            fresh = report.get("input_hash") == patient["input_hash"]
            row = {"id": ident, "status": "done" if fresh else "stale", "seconds": report.get("seconds"),
                   "scar_percent": report.get("scar_percent")}
        else:
            row = {"id": ident, "status": "pending"}
        if ident in running and row["status"] != "done":
            row["status"] = "running"
        rows.append(row)
    return rows


def format_status(rows: list[dict]) -> str:
    """A count line, then one line per patient that is not done."""
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    order = ("done", "running", "pending", "stale", "failed")
    lines = [f"{len(rows)} patients: " + ", ".join(f"{counts[s]} {s}" for s in order if s in counts)]
    for row in rows:
        if row["status"] != "done":
            lines.append(f"  {row['id']}: {row['status']}" + (f": {row['error']}" if row.get("error") else ""))
    return "\n".join(lines)
