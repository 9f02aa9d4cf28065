"""The attributes tied to latent dimensions: shape from the labels, clinical from a table.

Shape: LV cavity volume and myocardial volume (voxel counts times the voxel volume, in ml) and the
mean wall thickness (mm). Thickness is measured per short-axis slice with two distance maps: at a
myocardial pixel, the distance to the nearest cavity pixel plus the distance to the nearest pixel
outside the LV is the local wall width; both distances reach pixel centres half a pixel beyond
the wall's borders, so one in-plane pixel is taken off. For a ring of radii r1 < r2 this gives
r2 - r1 at every radius. Slices without both cavity and myocardium (apex, base) are skipped.

Clinical: ejection fraction (EMIDEC column ``FEVG``), age, sex, tobacco. The table's infarct and
no-reflow volumes are deliberately not attributes: they are read off the scar labels and would
hand the classifier the answer.
"""

from __future__ import annotations

import csv
import logging
import math
import re
from pathlib import Path

import numpy as np
from scipy import ndimage

from cardioscar.attrivae.preprocess import LabelConvention
from cardioscar.errors import CardioScarError

logger = logging.getLogger(__name__)

SHAPE_ATTRIBUTES = ("lv_volume_ml", "myocardium_volume_ml", "wall_thickness_mm")
CLINICAL_ATTRIBUTES = ("ejection_fraction", "age", "sex", "tobacco")
ALL_ATTRIBUTES = SHAPE_ATTRIBUTES + CLINICAL_ATTRIBUTES
UNITS = {"lv_volume_ml": "ml", "myocardium_volume_ml": "ml", "wall_thickness_mm": "mm", "ejection_fraction": "%",
         "age": "years", "sex": "0/1", "tobacco": "code"}

#: Column names accepted for each clinical attribute (first found wins; case-insensitive).
CLINICAL_COLUMNS = {"ejection_fraction": ("ejection_fraction", "fevg", "lvef", "ef"), "age": ("age",),
                    "sex": ("sex",), "tobacco": ("tobacco",)}


def wall_thickness_mm(labels: np.ndarray, spacing: tuple[float, float, float], convention: LabelConvention) -> float:
    """Mean myocardial wall thickness (mm) over the short-axis slices (labels k, j, i; spacing di, dj, dk)."""
    cavity = np.isin(labels, convention.cavity)
    myocardium = np.isin(labels, convention.myocardium)
    outside = ~(cavity | myocardium)
    sampling = (spacing[1], spacing[0])
    pixel = math.sqrt(spacing[0] * spacing[1])
    widths = []
    for k in range(labels.shape[0]):
        if not cavity[k].any() or not myocardium[k].any() or not outside[k].any():
            continue
        to_cavity = ndimage.distance_transform_edt(~cavity[k], sampling=sampling)
        to_outside = ndimage.distance_transform_edt(~outside[k], sampling=sampling)
        widths.append(to_cavity[myocardium[k]] + to_outside[myocardium[k]] - pixel)
    if not widths:
        return float("nan")
    return float(np.mean(np.concatenate(widths)))


def shape_attributes(labels: np.ndarray, spacing: tuple[float, float, float],
                     convention: LabelConvention) -> dict[str, float]:
    """LV cavity volume (ml), myocardial volume (ml) and mean wall thickness (mm) of one label map."""
    voxel_ml = float(np.prod(spacing)) / 1000.0
    return {
        "lv_volume_ml": float(np.isin(labels, convention.cavity).sum() * voxel_ml),
        "myocardium_volume_ml": float(np.isin(labels, convention.myocardium).sum() * voxel_ml),
        "wall_thickness_mm": wall_thickness_mm(labels, spacing, convention),
    }


def read_clinical_table(path: str | Path) -> dict[int, dict[str, float]]:
    """Rows of a clinical CSV keyed by the integer ``case`` column, with our attribute names.

    Attributes whose column is missing are left out of every row; an empty cell (or NA, NaN, n/a)
    becomes NaN (that case then takes no part in that attribute's pairs). Any other cell that is
    not a number (sex as M/F, "55%") is refused, as is a case number given on two rows: read as
    unknown or overwritten, it would leave the attribute tied to nothing without a word.
    """
    source = Path(path)
    if not source.is_file():
        raise CardioScarError(f"--clinical {source} not found: give the clinical CSV (EMIDEC: clinical.csv)")
    with source.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle, delimiter=_delimiter(handle.readline()))
        handle.seek(0)
        header = {name.strip().lower(): name for name in (reader.fieldnames or [])}
        if "case" not in header:
            raise CardioScarError(f"--clinical {source} has no 'case' column (columns: {list(header)}); name the "
                                  "column of case numbers 'case' (Case_P012 -> 12)")
        columns = _clinical_columns(header, source)
        rows: dict[int, dict[str, float]] = {}
        for line, row in enumerate(reader, start=2):
            case = _case_number(row[header["case"]], f"--clinical {source} line {line}")
            if case in rows:
                raise CardioScarError(f"--clinical {source} line {line}: case {case} is on two rows; give one row per "
                                      "case")
            rows[case] = {attribute: _number(row.get(column), f"--clinical {source} line {line}, column '{column}'")
                          for attribute, column in columns.items()}
    logger.info("Clinical table %s: %d rows, attributes %s", source, len(rows), sorted(columns))
    return rows


def _delimiter(first_line: str) -> str:
    """Comma, semicolon (spreadsheets in many locales save CSV so) or tab: the one the header uses most."""
    return max(",;\t", key=first_line.count)


def _clinical_columns(header: dict[str, str], source: Path) -> dict[str, str]:
    """Attribute -> column of the table; those it lacks are left out of the model, with a warning
    naming the columns looked for (a table with 'LVEF_percent' or 'Gender' would otherwise train
    without them, said only in the checkpoint)."""
    columns, missing = {}, []
    for attribute, candidates in CLINICAL_COLUMNS.items():
        found = next((header[c] for c in candidates if c in header), None)
        if found is None:
            missing.append(f"{attribute} (column {' or '.join(candidates)})")
        else:
            columns[attribute] = found
    if missing:
        logger.warning("--clinical %s has no column for %s: left out of the model; rename the columns to use them",
                       source, ", ".join(missing))
    return columns


#: A case cell holding the folder's name instead of its number.
_CASE_FOLDER = re.compile(r"case_[pn](\d+)", re.IGNORECASE)


def _case_number(text: str | None, where: str) -> int:
    """The case number of a row: a number, or the folder's name (Case_P012 -> 12)."""
    cell = (text or "").strip()
    named = _CASE_FOLDER.fullmatch(cell)
    if named:
        return int(named.group(1))
    try:
        return int(float(cell))
    except ValueError:
        raise CardioScarError(f"{where}: case {cell!r} is neither a number nor a folder name (Case_P012 or 12)"
                              ) from None


#: Cells that mean "not known" (what pandas, R and spreadsheets write for a missing value).
MISSING = ("", "na", "nan", "n/a", "none", "null", "-")


def _number(text: str | None, where: str) -> float:
    """The cell's number, NaN for a missing one; anything else is refused (see read_clinical_table)."""
    if text is None or text.strip().lower() in MISSING:
        return float("nan")
    try:
        value = float(text)
    except ValueError:
        raise CardioScarError(f"{where}: {text!r} is not a number; give numbers (sex 0/1, tobacco as a code, ejection "
                              "fraction in %) or leave the cell empty where it is unknown") from None
    if not math.isfinite(value):
        raise CardioScarError(f"{where}: {text!r} is not a finite number; leave the cell empty where it is unknown")
    return value
