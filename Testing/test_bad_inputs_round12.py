"""Round 12 (review zrev17 of the second batch merged on 2026-12-06): what a hostile review found.

* a NIfTI-1 pair (``.hdr`` + ``.img``, as SPM, FSL and ITK write it) skipped every NIfTI check:
  NaN voxels read as 0 ("no scar"), a sheared sform and a cut ``.img`` were read, exit 0;
* a cohort's input hash read a header without its voxels' file (``.mhd`` + ``.raw``,
  ``.hdr`` + ``.img``): a patient whose voxels were replaced kept its results as up to date.

Real parts: SimpleITK writes the files, the real command line and the cohort's real hash read them.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.errors import CardioScarError
from conftest import assert_refused_in_one_line


def _pair(folder: Path, values: np.ndarray, name: str = "lge.hdr") -> Path:
    """``values`` written by SimpleITK as a NIfTI-1 pair (``name`` and its ``.img``), 1.5 mm voxels."""
    image = sitk.GetImageFromArray(values.astype(np.float32))
    image.SetSpacing((1.5, 1.5, 8.0))
    sitk.WriteImage(image, str(folder / name))
    return folder / name


def _edit_header(header: Path, at: int, fmt: str, *values) -> None:
    raw = bytearray(header.read_bytes())
    raw[at:at + struct.calcsize(fmt)] = struct.pack(fmt, *values)
    header.write_bytes(bytes(raw))


def test_a_nifti_pair_is_checked_as_a_nii_is(segmented, tmp_path, capsys):
    """NaN voxels, a sheared sform and a cut .img of a .hdr/.img pair were read without a word
    (ITK: NaN as 0); each is refused now whichever half is named (a missing .img named as such,
    not as a cut file), while a sound pair, and an Analyze 7.5 pair (no NIfTI magic: its bytes
    where NIfTI keeps the transforms are other fields), read as before."""
    from cardioscar.io.imageio import read_image

    values = np.full((3, 6, 7), 0.2)
    good = _pair(tmp_path, values, "good.hdr")
    assert np.allclose(sitk.GetArrayFromImage(read_image(good)), 0.2)
    read_image(tmp_path / "good.img")
    analyze = _pair(tmp_path, values, "analyze.hdr")
    _edit_header(analyze, 344, "4s", b"\0\0\0\0")
    _edit_header(analyze, 252, "<hh", 1, 1)  # orient, originator as an Analyze writer may leave them
    read_image(analyze)

    values[1, 2, 3] = np.nan
    nan = _pair(tmp_path, values, "nan.hdr")
    assert_refused_in_one_line(["prepare", "--mesh", segmented["mesh"], "--image", nan,
                                "--output", tmp_path / "out.npz"], "NaN or infinite", capsys, tmp_path)
    with pytest.raises(CardioScarError, match="nan.img holds NaN"):
        read_image(tmp_path / "nan.img")

    sheared = _pair(tmp_path, np.full((3, 6, 7), 0.2), "sheared.hdr")
    _edit_header(sheared, 284, "<f", 0.5)  # srow_x[1]: x moves half a voxel per row
    with pytest.raises(CardioScarError, match="sheared.hdr: its NIfTI sform and qform place it up to"):
        read_image(sheared)

    cut = _pair(tmp_path, np.full((3, 6, 7), 0.2), "cut.hdr")
    data = tmp_path / "cut.img"
    data.write_bytes(data.read_bytes()[:200])
    with pytest.raises(CardioScarError, match=r"cut.img: it is truncated \(200 of the 504 bytes"):
        read_image(cut)
    data.unlink()
    with pytest.raises(CardioScarError, match="the voxel file of its pair, cut.img, is not beside cut.hdr"):
        read_image(cut)


@pytest.mark.parametrize("header, data", [("lge.mhd", "lge.raw"), ("lge.nhdr", "lge.raw"), ("lge.hdr", "lge.img")])
def test_a_cohort_hash_holds_the_voxels_file_beside_a_header(tmp_path, header, data):
    """Only the header's bytes were hashed: new voxels in the .raw / .img left the hash as it was,
    so ``cohort`` skipped the patient as up to date with the old image's results."""
    from cardioscar.cohort.manifest import DEFAULTS, PatientSpec
    from cardioscar.cohort.tasks import input_hash

    (tmp_path / "mesh.vtk").write_text("the mesh's bytes")
    values = np.full((3, 6, 7), 0.2, np.float32)
    sitk.WriteImage(sitk.GetImageFromArray(values), str(tmp_path / header))
    spec = PatientSpec(id="p0", row=2, mesh=tmp_path / "mesh.vtk", images=(tmp_path / header,),
                       options=dict(DEFAULTS))
    before = input_hash(spec)
    values[1, 2, 3] = 0.9
    sitk.WriteImage(sitk.GetImageFromArray(values), str(tmp_path / header))
    assert (tmp_path / data).is_file()
    assert input_hash(spec) != before


MHD_SLICES = ("ObjectType = Image\nNDims = 3\nDimSize = 7 6 3\nElementSpacing = 1.5 1.5 8\n"
              "ElementType = MET_FLOAT\nElementByteOrderMSB = False\nElementDataFile = ")
NHDR_SLICES = "NRRD0004\ntype: float\ndimension: 3\nsizes: 7 6 3\nspacings: 1.5 1.5 8\nencoding: raw\nendian: little\ndata file: "


@pytest.mark.parametrize("header, data_file", [("lge.mhd", MHD_SLICES + "LIST 2D\ns0.raw\ns1.raw\ns2.raw\n"),
                                               ("lge.mhd", MHD_SLICES + "s%d.raw 0 2 1\n"),
                                               ("lge.nhdr", NHDR_SLICES + "LIST 2\ns0.raw\ns1.raw\ns2.raw\n"),
                                               ("lge.nhdr", NHDR_SLICES + "s%d.raw 0 2 1 2\n")])
def test_a_cohort_hash_holds_each_slice_file_a_header_lists(tmp_path, header, data_file):
    """A MetaImage or NRRD header may name one data file per slice (``LIST`` and the names after it,
    or a numbered pattern), which SimpleITK reads; the hash read none of them, so new voxels in one
    slice's file kept the patient's results as up to date."""
    from cardioscar.cohort.manifest import DEFAULTS, PatientSpec
    from cardioscar.cohort.tasks import input_hash
    from cardioscar.io.imageio import read_image

    (tmp_path / "mesh.vtk").write_text("the mesh's bytes")
    values = np.full((3, 6, 7), 0.2, np.float32)
    for k in range(3):
        values[k].tofile(tmp_path / f"s{k}.raw")
    (tmp_path / header).write_text(data_file)
    np.testing.assert_array_equal(sitk.GetArrayFromImage(read_image(tmp_path / header)), values)  # read whole
    spec = PatientSpec(id="p0", row=2, mesh=tmp_path / "mesh.vtk", images=(tmp_path / header,), options=dict(DEFAULTS))
    before = input_hash(spec)
    values[2, 2, 3] = 0.9  # the last slice's file only
    values[2].tofile(tmp_path / "s2.raw")
    assert input_hash(spec) != before


def test_a_yaml_manifest_says_no_and_lists_as_a_csv_does(tmp_path):
    """YAML reads ``no`` as False: ``export: no`` and ``aha: no`` were refused ("got 'False'"),
    and ``export: [opencarp, vtu]`` or the two RV points as lists (a list is what a YAML user
    writes; lists worked for the labels) were refused too. Each now reads as the CSV row's text,
    down to the hash."""
    from cardioscar.cohort.manifest import read_manifest
    from cardioscar.cohort.tasks import input_hash

    (tmp_path / "mesh.vtk").write_text("the mesh's bytes")
    (tmp_path / "lge.nii.gz").write_text("the image's bytes")
    (tmp_path / "m.csv").write_text('id,mesh,image,export,aha,tags\n'
                                    'a,mesh.vtk,lge.nii.gz,,,no\n'
                                    'b,mesh.vtk,lge.nii.gz,opencarp;vtu,"1.5,2,3;4,5,6",\n')
    (tmp_path / "m.yaml").write_text("defaults: {mesh: mesh.vtk, image: lge.nii.gz}\npatients:\n"
                                     "  - {id: a, export: no, aha: no, tags: no}\n"
                                     "  - {id: b, export: [opencarp, vtu], aha: [[1.5, 2, 3], [4, 5, 6]]}\n")
    csv_rows, yaml_rows = read_manifest(tmp_path / "m.csv"), read_manifest(tmp_path / "m.yaml")
    assert yaml_rows[0].options["export"] is None and yaml_rows[0].options["aha"] is None
    assert yaml_rows[1].options["aha"] == [[1.5, 2.0, 3.0], [4.0, 5.0, 6.0]]
    assert [input_hash(spec) for spec in yaml_rows] == [input_hash(spec) for spec in csv_rows]


def _nifti2(path: Path, values: np.ndarray) -> Path:
    """``values`` (k, j, i) as a NIfTI-2 file, header field by field as the standard lays it out
    (nibabel's Nifti2Image writes the same): float32, 1.5 x 1.5 x 8 mm, data at byte 544."""
    header = bytearray(544)
    struct.pack_into("<i8s", header, 0, 540, b"n+2\0\r\n\x1a\n")
    struct.pack_into("<hh8q", header, 12, 16, 32, 3, *values.shape[::-1], 1, 1, 1, 1)
    struct.pack_into("<8d", header, 104, 1.0, 1.5, 1.5, 8.0, 0, 0, 0, 0)
    struct.pack_into("<q", header, 168, 544)
    path.write_bytes(bytes(header) + values.astype("<f4").tobytes())
    return path


def test_a_nifti2_file_is_named_as_such_not_as_corrupted(tmp_path):
    """SimpleITK reads no NIfTI-2 (nibabel's Nifti2Image, FreeSurfer's large volumes): the sound file
    was refused as "unreadable, truncated or corrupted". It is named as NIfTI-2 now, with the way to
    NIfTI-1; its header still passes the NIfTI checks (NaN, cut data), which read NIfTI-2."""
    from cardioscar.io.imageio import check_image_file, read_image

    sound = _nifti2(tmp_path / "lge2.nii", np.full((3, 5, 4), 0.2))
    check_image_file(sound)
    with pytest.raises(CardioScarError, match=r"lge2.nii: it is a NIfTI-2 file, which SimpleITK [\d.]+ does not read; "
                                              r"save it as NIfTI-1") as refused:
        read_image(sound)
    assert "corrupted" not in str(refused.value)
    values = np.full((3, 5, 4), 0.2)
    values[2, 1, 0] = np.inf
    with pytest.raises(CardioScarError, match="holds NaN or infinite"):
        check_image_file(_nifti2(tmp_path / "inf2.nii", values))
