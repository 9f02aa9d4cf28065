"""Cases for training: EMIDEC-style folders (``Case_Pxxx`` MI, ``Case_Nxxx`` normal) + a clinical table.

Each ``Case_xxx/`` holds ``Images/Case_xxx.nii.gz`` (LGE) and ``Contours/Case_xxx.nii.gz`` (labels);
the class is the folder's letter (P: infarct, N: none) and the clinical row is the one whose
``case`` column equals the folder's number.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cardioscar.attrivae.attributes import CLINICAL_ATTRIBUTES, SHAPE_ATTRIBUTES, read_clinical_table, shape_attributes
from cardioscar.attrivae.preprocess import LabelConvention, PreprocessConfig, prepare_case
from cardioscar.errors import CardioScarError
from cardioscar.io.imageio import bulk_reads

logger = logging.getLogger(__name__)

CASE_NAME = re.compile(r"Case_([PN])(\d+)")


@dataclass
class Case:
    """One preprocessed training case."""

    case_id: str
    cube: np.ndarray                 # (cube, cube, cube) float32
    mi: int                          # 1 infarct, 0 normal
    attributes: dict[str, float] = field(default_factory=dict)


def case_folders(data_dir: str | Path) -> list[Path]:
    """The ``Case_[PN]<number>`` folders of ``data_dir``, sorted."""
    folder = Path(data_dir)
    if not folder.is_dir():
        raise CardioScarError(f"--data {folder} is not a folder: give the EMIDEC-style folder of Case_Pxxx/Case_Nxxx")
    found = sorted(p for p in folder.iterdir() if p.is_dir() and CASE_NAME.fullmatch(p.name))
    if not found:
        raise CardioScarError(f"--data {folder} holds no Case_P<number> / Case_N<number> folders (EMIDEC layout)")
    by_number: dict[int, str] = {}
    for path in found:
        number = int(CASE_NAME.fullmatch(path.name).group(2))  # type: ignore[union-attr]
        if number in by_number:  # numbered per class (Case_P001.., Case_N001..): one clinical row for two cases
            raise CardioScarError(f"--data {folder}: {by_number[number]} and {path.name} have the same number, and the "
                                  "clinical table's 'case' column is that number: number the cases once across both "
                                  "classes (as EMIDEC does)")
        by_number[number] = path.name
    return found


def case_files(folder: Path) -> tuple[Path, Path]:
    image = folder / "Images" / f"{folder.name}.nii.gz"
    labels = folder / "Contours" / f"{folder.name}.nii.gz"
    for path in (image, labels):
        if not path.is_file():
            raise CardioScarError(f"--data: {path} is missing (each Case_xxx needs Images/ and Contours/ files)")
    return image, labels


def present_attributes(clinical: dict[int, dict[str, float]]) -> list[str]:
    """Shape attributes, then the clinical ones the table has."""
    columns = set().union(*(row.keys() for row in clinical.values())) if clinical else set()
    return list(SHAPE_ATTRIBUTES) + [a for a in CLINICAL_ATTRIBUTES if a in columns]


def load_cases(data_dir: str | Path, clinical_csv: str | Path, convention: LabelConvention,
               config: PreprocessConfig, limit: list[str] | None = None) -> tuple[list[Case], list[str]]:
    """Every case of ``data_dir`` (or those named in ``limit``) preprocessed, and the attribute names."""
    folders = [f for f in case_folders(data_dir) if limit is None or f.name in limit]
    _check_both_classes(folders, data_dir)
    clinical = read_clinical_table(clinical_csv)
    names = present_attributes(clinical)
    cases = []
    with bulk_reads():  # each file's lines at DEBUG: the summary below (and the sform notes') at INFO
        for folder in folders:
            letter, number = CASE_NAME.fullmatch(folder.name).groups()  # type: ignore[union-attr]
            image_path, labels_path = case_files(folder)
            prepared = prepare_case(image_path, labels_path, convention, config)
            values = shape_attributes(prepared.labels, prepared.spacing, convention)
            row = clinical.get(int(number))
            if row is None:
                logger.warning("%s has no row in %s: its clinical attributes are unknown", folder.name, clinical_csv)
            values.update({a: (row or {}).get(a, math.nan) for a in names if a not in SHAPE_ATTRIBUTES})
            cases.append(Case(folder.name, prepared.cube, int(letter == "P"), values))
    if limit is not None and len(cases) != len(set(limit)):
        missing = sorted(set(limit) - {c.case_id for c in cases})
        raise CardioScarError(f"--data {data_dir} lacks the cases {missing}")
    _check_clinical_known(cases, names, clinical_csv)
    logger.info("Loaded %d cases (%d MI) from %s: %d images and their label maps read (each named with --verbose)",
                len(cases), sum(c.mi for c in cases), data_dir, len(cases))
    return cases, names


def _check_both_classes(folders: list[Path], data_dir: str | Path) -> None:
    """Refuse, before any case is read, a folder without MI or without normal cases: the classifier
    has nothing to tell apart (and cross-validation's folds would name an impossible range)."""
    letters = {CASE_NAME.fullmatch(f.name).group(1) for f in folders}  # type: ignore[union-attr]
    for letter, kind in (("P", "MI"), ("N", "normal")):
        if folders and letter not in letters:
            raise CardioScarError(f"--data {data_dir} has no Case_{letter}<number> folders ({kind} cases): training "
                                  "needs both MI (Case_P...) and normal (Case_N...) cases; add some")


def _check_clinical_known(cases: list[Case], names: list[str], clinical_csv: str | Path) -> None:
    """Refuse a clinical attribute known for fewer than two cases.

    Such an attribute is tied to a latent dimension all the same, but nothing teaches the
    dimension its order, and the read-back line has no slope: ``predict`` then reports 0 (the
    scaler's empty minimum) for every case. A table whose case numbers match none of the folders
    (another cohort's table, renumbered cases) does this to every clinical attribute."""
    for name in names:
        if name in SHAPE_ATTRIBUTES:
            continue
        known = sum(not math.isnan(case.attributes[name]) for case in cases)
        if known < 2:
            raise CardioScarError(f"--clinical {clinical_csv}: {name} is known for {known} of the {len(cases)} "
                                  "cases (a row's 'case' must be the number in the folder name, Case_P012 -> 12); "
                                  "fill the column or remove it")


def attribute_matrix(cases: list[Case], names: list[str]) -> np.ndarray:
    """(n_cases, n_attributes) float64, NaN where unknown."""
    return np.array([[case.attributes.get(n, math.nan) for n in names] for case in cases], dtype=np.float64)
