"""Round 11 of silent wrong answers: the leftovers of round 10 and what a new hunt found.

* a NIfTI whose sform and qform place it apart (a sheared sform: ITK reads the qform, nibabel the
  sform; up to centimetres), read without a word;

Real parts: the segmented phantom (conftest's session fixture), the real command line, real
NIfTI files whose header bytes are edited as a converter would have written them.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from cardioscar.errors import CardioScarError
from conftest import assert_refused_in_one_line


def _with_sform(source: Path, target: Path, change) -> Path:
    """``source`` (a NIfTI-1 file SimpleITK wrote, sform = qform) with its sform rows (3 x 4,
    voxel -> RAS mm) replaced by ``change(rows)``, written to ``target`` (.nii.gz)."""
    raw = bytearray(gzip.open(source).read() if source.name.endswith(".gz") else source.read_bytes())
    assert struct.unpack("<hh", raw[252:256]) == (1, 1)  # qform_code, sform_code both set
    rows = np.array(struct.unpack("<12f", raw[280:328]), np.float64).reshape(3, 4)
    raw[280:328] = struct.pack("<12f", *change(rows.copy()).ravel())
    target.write_bytes(gzip.compress(bytes(raw)))
    return target


def _sheared(rows: np.ndarray) -> np.ndarray:
    rows[0, 1] += 0.3 * abs(rows[1, 1])  # x moves by 0.3 pixel per row: a shear
    return rows


@pytest.mark.parametrize("change, apart", [(_sheared, "place it up to"),
                                           (lambda rows: rows + [[0, 0, 0, 5.0], [0] * 4, [0] * 4], "5.0 mm apart")])
def test_a_nifti_whose_sform_and_qform_disagree_is_refused(segmented, tmp_path, capsys, change, apart):
    """A sheared sform: ITK (so Slicer and CardioScar) placed the image by its qform, nibabel by the
    sform, exit 0. A shifted one: ITK reads the sform, other tools the qform. Either is now
    refused, naming the file and the distance; the file as SimpleITK wrote it (sform = qform,
    as all 154 EMIDEC and ACDC files: 0.0 mm) passes."""
    from cardioscar.io.imageio import read_image

    read_image(_with_sform(segmented["label_map"], tmp_path / "same.nii.gz", lambda rows: rows))
    bad = _with_sform(segmented["label_map"], tmp_path / "two_places.nii.gz", change)
    assert_refused_in_one_line(["prepare", "--mesh", segmented["mesh"], "--image", bad, "--scar-labels", "3",
                                "--output", tmp_path / "out.npz"], apart, capsys, tmp_path)
    with pytest.raises(CardioScarError, match="two_places.nii.gz: its NIfTI sform and qform"):
        read_image(bad)
