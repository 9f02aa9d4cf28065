"""The per-segment table: myocardium, scar, border zone, transmurality, uncertainty and error risk.

Scar is the field at or above the threshold (0/1 per node); each node carries its share of the
volume of the cells around it (area on a surface mesh), so percentages are of myocardial volume,
not of node counts.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Optional

import numpy as np

from .segments import SEGMENTS, TERRITORY_OF


def _share(numerator: float, denominator: float) -> Optional[float]:
    return float(numerator / denominator) if denominator > 0 else None


#: The columns of the tags' shares per segment: two fields' tissue classes (a scar and a core model,
#: or a tags field of the user's own), and one field's two probability bands (``export`` of one scar
#: field, as its ``tissue_tag`` note says). Why apart: a border zone and a core are two tissue classes
#: that two thresholds of the signal define; one field cut at two probabilities (its smooth edge and
#: its confident part) is neither, and ``core_pct`` read as a segment's dense scar.
TISSUE_COLUMNS = ("border_zone_pct", "core_pct")
BAND_COLUMNS = ("band_pct", "top_band_pct")


def segment_rows(segments: np.ndarray, weights: np.ndarray, scar: np.ndarray, *, volumetric: bool,
                 border_zone: Optional[np.ndarray] = None, core: Optional[np.ndarray] = None,
                 tag_columns: tuple[str, str] = TISSUE_COLUMNS,
                 uncertainty: Optional[np.ndarray] = None, error_risk: Optional[np.ndarray] = None,
                 column_segments: Optional[np.ndarray] = None, column_values: Optional[np.ndarray] = None,
                 column_area: Optional[np.ndarray] = None) -> list[dict]:
    """One dict per segment 1-17; a segment without a node is ``covered: False`` and its figures
    ``None`` (empty in ``aha.csv``, NaN in the Slicer table), not 0.

    Why: on a mesh of a stack whose most apical slice still holds cavity there is no apical cap, and
    segment 17 read "0 ml, scar-free" where nothing had been imaged. ``segments`` is 0 for nodes
    outside the LV. Volumes in ml (mm^3 / 1000), areas in cm^2. Transmurality: mean over the
    segment's endocardial columns weighted by their endocardial area, and the share of that area
    whose column is more than 50 % scar. ``border_zone`` and ``core`` (0/1 per node, from tags) give
    ``tag_columns``, ``border_zone_pct`` and ``core_pct`` by default: an ablation plan reads the dense
    core and the border zone per segment, not only the scar they make up (:data:`BAND_COLUMNS` for
    one field's bands). ``error_risk`` (``scar_error_risk``, the risk that
    the call at 0.5 is wrong) gives ``error_risk_mean``: where the reconstruction is unsure, which
    the MC-dropout spread (``uncertainty_mean``) does not say between the slices (it falls to ~0
    there with the shape prior).
    """
    unit = "volume_ml" if volumetric else "area_cm2"
    scale = 1e-3 if volumetric else 1e-2
    rows = []
    for segment, (name, level) in SEGMENTS.items():
        inside = segments == segment
        covered = bool(inside.any())
        myocardium = float(weights[inside].sum())
        scarred = float((weights[inside] * scar[inside]).sum())
        row = {"segment": segment, "name": name, "level": level, "territory": TERRITORY_OF[segment],
               "covered": covered, "nodes": int(inside.sum()),
               f"myocardial_{unit}": myocardium * scale if covered else None,
               f"scar_{unit}": scarred * scale if covered else None, "scar_pct": _pct(_share(scarred, myocardium))}
        if border_zone is not None:
            row[tag_columns[0]] = _pct(_share(float((weights[inside] * border_zone[inside]).sum()), myocardium))
        if core is not None:
            row[tag_columns[1]] = _pct(_share(float((weights[inside] * core[inside]).sum()), myocardium))
        if column_values is not None:
            columns = column_segments == segment
            area = float(column_area[columns].sum())
            row["transmurality_mean_pct"] = _pct(_share(float((column_area[columns] * column_values[columns]).sum()),
                                                        area))
            row["transmural_over_50_pct"] = _pct(_share(float(column_area[columns][column_values[columns] > 0.5].sum()),
                                                        area))
        if uncertainty is not None:
            row["uncertainty_mean"] = _share(float((weights[inside] * uncertainty[inside]).sum()), myocardium)
        if error_risk is not None:
            row["error_risk_mean"] = _share(float((weights[inside] * error_risk[inside]).sum()), myocardium)
        rows.append(row)
    return rows


def lv_total(rows: list[dict]) -> dict:
    """The whole LV over the 17 segments: its myocardium, its scar and their ratio, the scar burden.

    Why: the table gave each segment's scar only, so a reader of ``aha.json`` (or of the CLI's
    log) summed 17 rows for the patient's burden, the figure a cohort's summary puts first."""
    unit = "volume_ml" if "myocardial_volume_ml" in rows[0] else "area_cm2"
    covered = [row for row in rows if row["covered"]]
    myocardium = sum(row[f"myocardial_{unit}"] for row in covered)
    scar = sum(row[f"scar_{unit}"] for row in covered)
    total = {f"myocardial_{unit}": myocardium, f"scar_{unit}": scar, "scar_pct": _pct(_share(scar, myocardium))}
    for tagged in (*TISSUE_COLUMNS, *BAND_COLUMNS):  # from tags: the patient's border zone and core (or bands)
        if tagged in rows[0]:
            part = sum(row[f"myocardial_{unit}"] * row[tagged] for row in covered if row[tagged] is not None)
            total[tagged] = _share(part, myocardium)
    return total


def scar_per_segment(rows: list[dict]) -> str:
    """The log's one-line summary of the table: every segment, ``N:X%``, or ``N:not covered``.

    Why: the line listed only segments whose scar was not exactly 0, each rounded to whole percent,
    so a scar-free segment and one the slices never imaged were both missing from it while a
    segment at 0.3 % read "0%": a reader could not tell which segments had been measured. A share
    between 0 and 1 % reads ``<1%``, never ``0%``; one between 99 and 100 % ``>99%``, never
    ``100%`` (99.6 % rounded read as a segment scarred whole)."""
    def cell(row: dict) -> str:
        pct = row["scar_pct"]
        if not row["covered"] or pct is None:
            return f"{row['segment']}:not covered"
        shown = "<1" if 0 < pct < 1 else ">99" if 99 < pct < 100 else f"{pct:.0f}"
        return f"{row['segment']}:{shown}%"

    return ", ".join(cell(row) for row in rows)


def _pct(share: Optional[float]) -> Optional[float]:
    return None if share is None else 100.0 * share


#: Decimals ``aha.csv`` writes, by the end of a column's name: percentages to 0.01 points, volumes
#: to 0.001 ml (1 mm^3) and areas to 0.001 cm^2, the MC-dropout spread to 0.0001. Why: ``%.6g``
#: wrote 12.0 as "12" beside 12.3457 and 0.000123 in full, a column of varying precision that a
#: reader could not line up or read as the table's resolution. ``aha.json`` keeps full precision.
CSV_DECIMALS = {"_pct": 2, "_ml": 3, "_cm2": 3, "uncertainty_mean": 4, "error_risk_mean": 3}


def _csv_cell(column: str, value: object) -> object:
    """One cell: a number at its column's fixed decimals, empty where the figure does not exist."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        decimals = next(places for end, places in CSV_DECIMALS.items() if column.endswith(end))
        return f"{value:.{decimals}f}"
    return value


def rows_to_csv(rows: list[dict]) -> str:
    """CSV text, one line per segment, numbers at :data:`CSV_DECIMALS`."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: _csv_cell(key, value) for key, value in row.items()})
    return buffer.getvalue()


def save_table(rows: list[dict], summary: dict, csv_path: Path, json_path: Path) -> None:
    """Write ``aha.csv`` and ``aha.json`` (rows plus how they were computed) into the temporary files
    of a set that the caller places whole, with the bull's-eye and the mesh they describe
    (:func:`cardioscar.aha.analysis.write_aha_set`): no atomic step of their own."""
    csv_path.write_text(rows_to_csv(rows), encoding="utf-8")
    json_path.write_text(json.dumps({**summary, "segments": rows}, indent=2), encoding="utf-8")
