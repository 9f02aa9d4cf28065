"""The per-segment table: myocardium, scar, border zone, transmurality and uncertainty.

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

from cardioscar.io.atomic import atomic_write

from .segments import SEGMENTS, TERRITORY_OF


def _share(numerator: float, denominator: float) -> Optional[float]:
    return float(numerator / denominator) if denominator > 0 else None


def segment_rows(segments: np.ndarray, weights: np.ndarray, scar: np.ndarray, *, volumetric: bool,
                 border_zone: Optional[np.ndarray] = None, core: Optional[np.ndarray] = None,
                 uncertainty: Optional[np.ndarray] = None,
                 column_segments: Optional[np.ndarray] = None, column_values: Optional[np.ndarray] = None,
                 column_area: Optional[np.ndarray] = None) -> list[dict]:
    """One dict per segment 1-17 (also for an empty segment, whose figures are ``None``).

    ``segments`` is 0 for nodes outside the LV. Volumes in ml (mm^3 / 1000), areas in cm^2.
    Transmurality: mean over the segment's endocardial columns weighted by their endocardial
    area, and the share of that area whose column is more than 50 % scar. ``border_zone`` and
    ``core`` (0/1 per node, from tags) give ``border_zone_pct`` and ``core_pct``: an ablation plan
    reads the dense core and the border zone per segment, not only the scar they make up.
    """
    unit = "volume_ml" if volumetric else "area_cm2"
    scale = 1e-3 if volumetric else 1e-2
    rows = []
    for segment, (name, level) in SEGMENTS.items():
        inside = segments == segment
        myocardium = float(weights[inside].sum())
        scarred = float((weights[inside] * scar[inside]).sum())
        row = {"segment": segment, "name": name, "level": level, "territory": TERRITORY_OF[segment],
               "nodes": int(inside.sum()), f"myocardial_{unit}": myocardium * scale,
               f"scar_{unit}": scarred * scale, "scar_pct": _pct(_share(scarred, myocardium))}
        if border_zone is not None:
            row["border_zone_pct"] = _pct(_share(float((weights[inside] * border_zone[inside]).sum()), myocardium))
        if core is not None:
            row["core_pct"] = _pct(_share(float((weights[inside] * core[inside]).sum()), myocardium))
        if column_values is not None:
            columns = column_segments == segment
            area = float(column_area[columns].sum())
            row["transmurality_mean_pct"] = _pct(_share(float((column_area[columns] * column_values[columns]).sum()),
                                                        area))
            row["transmural_over_50_pct"] = _pct(_share(float(column_area[columns][column_values[columns] > 0.5].sum()),
                                                        area))
        if uncertainty is not None:
            row["uncertainty_mean"] = _share(float((weights[inside] * uncertainty[inside]).sum()), myocardium)
        rows.append(row)
    return rows


def lv_total(rows: list[dict]) -> dict:
    """The whole LV over the 17 segments: its myocardium, its scar and their ratio, the scar burden.

    Why: the table gave each segment's scar only, so a reader of ``aha.json`` (or of the CLI's
    log) summed 17 rows for the patient's burden, the figure a cohort's summary puts first."""
    unit = "volume_ml" if "myocardial_volume_ml" in rows[0] else "area_cm2"
    myocardium = sum(row[f"myocardial_{unit}"] for row in rows)
    scar = sum(row[f"scar_{unit}"] for row in rows)
    total = {f"myocardial_{unit}": myocardium, f"scar_{unit}": scar, "scar_pct": _pct(_share(scar, myocardium))}
    for tagged in ("border_zone_pct", "core_pct"):  # from tags: the patient's border-zone and dense-core burden
        if tagged in rows[0]:
            part = sum(row[f"myocardial_{unit}"] * row[tagged] for row in rows if row[tagged] is not None)
            total[tagged] = _share(part, myocardium)
    return total


def _pct(share: Optional[float]) -> Optional[float]:
    return None if share is None else 100.0 * share


def rows_to_csv(rows: list[dict]) -> str:
    """CSV text, one line per segment; empty cells where a figure does not exist."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({key: ("" if value is None else (f"{value:.6g}" if isinstance(value, float) else value))
                         for key, value in row.items()})
    return buffer.getvalue()


def write_table(rows: list[dict], summary: dict, csv_path: Path, json_path: Path) -> None:
    """Write ``aha.csv`` and ``aha.json`` (rows plus how they were computed), each atomically."""
    with atomic_write(csv_path) as tmp:
        tmp.write_text(rows_to_csv(rows), encoding="utf-8")
    with atomic_write(json_path) as tmp:
        tmp.write_text(json.dumps({**summary, "segments": rows}, indent=2), encoding="utf-8")
