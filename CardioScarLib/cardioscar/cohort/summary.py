"""``cohort_summary.csv`` / ``.json`` and the cohort picture (scar burden per patient and its spread).

Rows are rebuilt from what is on disk (each patient's ``report.json``, each failure record), so
the summary is the same whichever process, run or Slurm array task wrote it last.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Iterable, Optional

from cardioscar import __version__
from cardioscar.io.atomic import atomic_write
from cardioscar.io.figures import new_figure, render_figure

SUMMARY_CSV = "cohort_summary.csv"
SUMMARY_JSON = "cohort_summary.json"
SUMMARY_PNG = "cohort_summary.png"
BULLSEYES_PNG = "cohort_bullseyes.png"
#: At most this many patients' bull's-eyes on the sheet (a readable page; the rest are named).
MAX_BULLSEYES = 48
FAILED_DIR = "_failed"
#: The cohort's record of its manifest and patients (``cohort status`` reads it).
COHORT_RECORD = "cohort_manifest.json"
#: The files a run writes beside the patients' folders: no patient's id may name one.
RUN_FILES = (COHORT_RECORD, SUMMARY_CSV, SUMMARY_JSON, SUMMARY_PNG, BULLSEYES_PNG)

#: A one-field row's shares of the myocardium with threshold <= p < core_threshold and p >= core_threshold
#: (``classes`` bands). Why not ``border_percent``/``core_percent``: a border zone and a core are two tissue
#: classes, two thresholds of the signal (a ``scar_rule`` row's two fields); one field cut at two
#: probabilities (a label map's scar: its blurred edge and its confident part) is neither.
BAND_COLUMNS = ("band_percent", "top_band_percent")
COLUMNS = ("id", "status", "scar_volume_ml", "scar_area_cm2", "scar_percent", "border_percent", "core_percent",
           *BAND_COLUMNS, "classes", "channels",
           "channels_near_open_cut", "dice",
           "variance_explained", "best_loss", "epochs", "shape_prior", "mean_uncertainty", "seconds", "device", "host", "warnings",
           "error")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, list):  # the warnings of a patient's run
        return " | ".join(str(item) for item in value)
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def cohort_notes(rows: list[dict]) -> list[str]:
    """What holds for many patients, said once for the cohort instead of in each patient's
    ``warnings``: the caveat of every channel search with core (a narrow corridor may be hidden
    in it), with the patients it applies to (their ``channels_core_nodes``); each patient's own
    figures stay in its ``report.json`` (``channel_search``) and ``channels/channels.json``."""
    from cardioscar.simulation.hidden_channels import corridor_caveat

    with_core = [row["id"] for row in rows if row.get("channels_core_nodes")]
    if not with_core:
        return []
    return [f"channels: {corridor_caveat()} (the {len(with_core)} patient(s) whose search found core: "
            f"{', '.join(with_core)}; each one's core nodes near the threshold are in its report.json's "
            "channel_search note)"]


def in_band_columns(row: dict) -> dict:
    """``row`` with a one-field row's bands in :data:`BAND_COLUMNS`. Why: a ``report.json`` written
    before they were named so holds them as ``border_percent``/``core_percent`` beside ``classes``
    bands, and its patient is skipped (its hash unchanged), not redone, so its row read as tissue. One
    written before rows had ``classes`` (before the scar rule's two-field rows, when every row was one
    field cut at two probabilities) holds no ``classes`` at all: bands too."""
    if row.get("classes", "bands") != "bands" or "border_percent" not in row:
        return row
    kept = {key: value for key, value in row.items() if key not in ("border_percent", "core_percent")}
    return {**kept, "classes": "bands", BAND_COLUMNS[0]: row["border_percent"], BAND_COLUMNS[1]: row["core_percent"]}


def write_summary(output_dir: Path, rows: list[dict]) -> tuple[Path, Path]:
    """Write the CSV (the columns above, one row per patient in manifest order) and the JSON
    (the full records, the counts per status and the cohort's :func:`cohort_notes`), each atomically."""
    rows = [in_band_columns(row) for row in rows]
    csv_path, json_path = output_dir / SUMMARY_CSV, output_dir / SUMMARY_JSON
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow([_cell(row.get(column)) for column in COLUMNS])
    with atomic_write(csv_path) as tmp:
        tmp.write_text(text.getvalue(), encoding="utf-8")
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["status"]] = counts.get(row["status"], 0) + 1
    with atomic_write(json_path) as tmp:
        tmp.write_text(json.dumps({"cardioscar_version": __version__, "counts": counts, "notes": cohort_notes(rows),
                                   "patients": rows}, indent=2) + "\n", encoding="utf-8")
    return csv_path, json_path


def _burden(row: dict) -> Optional[float]:
    return row.get("scar_percent") if row.get("status") in ("done", "skipped") else None


def save_figure(fig, path: Path) -> Path:
    """Write ``fig`` to ``path`` atomically, laid out tight (no title or label cut off)."""
    with atomic_write(path) as tmp:
        render_figure(fig, tmp)
    return path


def _draw_bars(axis, rows: list[dict]) -> None:
    """One bar per patient: a one-field row's scar (probability >= threshold) in one colour; a scar
    rule's row (``classes`` tissue) as its border zone and core, stacked, so a mixed cohort's bars
    say which are tissue classes (EMIDEC: the experts' P022 beside a plain n-SD P047 looked alike)."""
    tissue = [row.get("classes") == "tissue" and row.get("core_percent") is not None for row in rows]
    place = range(len(rows))
    one = [0.0 if split else _burden(row) for row, split in zip(rows, tissue)]
    core = [row["core_percent"] if split else 0.0 for row, split in zip(rows, tissue)]
    border = [row["border_percent"] if split else 0.0 for row, split in zip(rows, tissue)]
    if not all(tissue):
        axis.barh(place, one, color="#b2182b", label="scar: probability >= threshold (one field)")
    if any(tissue):
        axis.barh(place, core, color="#67001f", label="core (scar rule, two fields)")
        axis.barh(place, border, left=core, color="#f4a582", label="border zone (scar rule, two fields)")
    axis.legend(fontsize=7, loc="lower right")


def write_picture(output_dir: Path, rows: Iterable[dict]) -> Optional[Path]:
    """Scar burden (% of myocardium) per patient, sorted, beside its distribution; failed patients
    are listed in the title. None when no patient has a result yet."""
    rows = list(rows)
    measured = sorted((row for row in rows if _burden(row) is not None), key=_burden)
    if not measured:
        return None
    ids, values = [row["id"] for row in measured], [_burden(row) for row in measured]
    height = min(0.25 * len(ids) + 1.5, 30.0)
    fig = new_figure(figsize=(11, max(3.5, height)))
    bars, spread = fig.subplots(1, 2, gridspec_kw={"width_ratios": [2, 1]})
    _draw_bars(bars, measured)
    bars.set_yticks(range(len(ids)), ids if len(ids) <= 60 else [""] * len(ids), fontsize=7)
    bars.set_xlabel("scar (% of myocardium)")
    bars.set_title("scar burden per patient")
    spread.hist(values, bins=min(20, max(5, len(values) // 3)), color="#555555")
    spread.set_xlabel("scar (%)")
    spread.set_ylabel("patients")
    spread.set_title("distribution")
    failed = [row["id"] for row in rows if row.get("status") == "failed"]
    note = f"{len(measured)} patients with results" + (f"; failed: {', '.join(failed[:10])}" if failed else "")
    if len(failed) > 10:
        note += f" and {len(failed) - 10} more"
    fig.suptitle(note, fontsize=9)
    return save_figure(fig, output_dir / SUMMARY_PNG)


def _segment_table(row: dict, key: str) -> Optional[dict[int, Optional[float]]]:
    """A patient's % per AHA segment as its record's ``aha.<key>`` holds it (keys are strings once read
    back from JSON); None for a patient without it."""
    if row.get("status") not in ("done", "skipped"):
        return None
    table = (row.get("aha") or {}).get(key)
    return {int(segment): value for segment, value in table.items()} if table else None


def _discs(row: dict) -> list[tuple[str, dict, frozenset[int]]]:
    """The (title, table, segments not covered) discs of a patient on the sheet: its scar % per
    segment, titled with the burden of that table (the LV's, the scar field at threshold; a record
    from before it was kept: the row's scar_percent, with a scar rule border zone + core, not the
    disc's); and, for a scar rule's row, its border zone % per segment (the export's tags), which a
    modeller reads beside it. The segments no slice covered are marked as the patient's own
    ``bullseye.png`` marks them; a record from before they were kept cannot tell, and its empty
    segments stay "n/a"."""
    scar = _segment_table(row, "scar_pct_by_segment")
    if scar is None:
        return []
    aha = row.get("aha") or {}
    uncovered = frozenset(aha.get("uncovered_segments", ()))
    burden = aha.get("lv_scar_pct", row.get("scar_percent"))
    discs = [(row["id"] + ("" if burden is None else f": {burden:.1f} % scar"), scar, uncovered)]
    border = _segment_table(row, "border_zone_pct_by_segment")
    if border is not None:
        discs.append((f"{row['id']}: border zone", border, uncovered))
    return discs


def bullseye_sheet_figure(rows: Iterable[dict]):
    """One scar-% bull's-eye per patient (and a border-zone one beside it for a scar rule's row), at
    most :data:`MAX_BULLSEYES` discs, all on one 0-100 % scale and one colour bar, titled with the
    patient's id and what the disc shows; None when no patient has an AHA table.

    Why drawn here rather than pasted from each ``bullseye.png``: pasted, each patient's three discs
    (scar, transmurality, uncertainty) shrank to about 90 pixels each on the sheet, too small to
    read a segment's number, and each uncertainty disc had its own scale. The per-patient pictures
    keep all three."""
    found = [discs for discs in (_discs(row) for row in rows) if discs]
    if not found:
        return None
    from cardioscar.aha.bullseye import draw_bullseye

    shown: list[tuple[str, dict, frozenset[int]]] = []
    patients = 0
    for discs in found:  # whole patients only: a scar disc is not shown without its border zone
        if len(shown) + len(discs) > MAX_BULLSEYES:
            break
        shown += discs
        patients += 1
    columns = min(6, len(shown))
    lines = -(-len(shown) // columns)
    fig = new_figure(figsize=(3.2 * columns, 3.4 * lines + 0.8))
    axes = fig.subplots(lines, columns, squeeze=False)
    for axis in axes.ravel():
        axis.axis("off")
    mapping = None
    for axis, (title, table, uncovered) in zip(axes.ravel(), shown):
        mapping = draw_bullseye(axis, table, title=title, vmin=0.0, vmax=100.0, cmap="Reds", uncovered=uncovered)
    borders = any(len(discs) > 1 for discs in found[:patients])
    fig.colorbar(mapping, ax=axes.ravel().tolist(), orientation="horizontal", fraction=0.3 / lines, pad=0.02,
                 shrink=0.5, label="% of segment: scar (probability >= threshold)"
                 + ("; border zone (the scar rule's tissue tags)" if borders else ""))
    more = f" (first {patients} of {len(found)} patients)" if patients < len(found) else ""
    fig.suptitle(f"AHA 17-segment scar{' and border zone' if borders else ''} per patient{more}", fontsize=10)
    return fig


def write_bullseye_sheet(output_dir: Path, rows: Iterable[dict]) -> Optional[Path]:
    """The patients' scar-% bull's-eyes side by side on one page (:func:`bullseye_sheet_figure`), so
    a cohort's scar territories can be compared at a glance; None when no patient has one."""
    fig = bullseye_sheet_figure(rows)
    if fig is None:
        return None
    with atomic_write(output_dir / BULLSEYES_PNG) as tmp:
        fig.savefig(tmp, dpi=110)
    return output_dir / BULLSEYES_PNG
