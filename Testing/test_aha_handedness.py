"""The AHA numbering's handedness against the patient's frame (``cardioscar/aha/handedness.py``).

On the real biv-me heart (its scanner's LPS frame) and on copies of it mirrored as an image flipped
along an axis with its header kept (written to and read back from .vtk files): one RV point, or
two given the wrong way round, numbered the copy mirrored, silently; now one warning and
``aha.json``'s ``rv_insertion.frame_handedness`` say so. Figures: ``Testing/benchmarks/aha_mirror_check.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import bivme_dicom, bivme_lv_mesh
from cardioscar.aha import AhaOptions, analyse_mesh
from cardioscar.io.meshio import read_mesh


def _slice_axis() -> np.ndarray:
    """The normal of biv-me's short-axis series Se1 (its DICOM header's third direction)."""
    return np.asarray(sitk.ReadImage(str(bivme_dicom("Se1"))).GetDirection()).reshape(3, 3)[:, 2]


@pytest.fixture(scope="module")
def hearts(tmp_path_factory) -> dict:
    """The heart as read and mirrored across x and across the short-axis stack's slice axis (its
    slices' order reversed with the header kept): (mesh path, anterior, inferior) each."""
    folder = tmp_path_factory.mktemp("bivme_lv")
    return {name: bivme_lv_mesh(folder / f"{name}.vtk", normal)
            for name, normal in (("as read", None), ("x", (1.0, 0.0, 0.0)), ("slice axis", _slice_axis()))}


def _aha(heart: tuple, *points: np.ndarray):
    path, *_ = heart
    options = AhaOptions(rv_point=points[0], rv_inferior_point=points[1] if len(points) > 1 else None,
                         uncertainty_field=None, transmurality="off")
    return analyse_mesh(read_mesh(path), options)


def _in_septum(result, heart: tuple) -> np.ndarray:
    """Whether each node lies in the septal arc as the result numbers it."""
    points = read_mesh(heart[0]).points_lps()
    return result.frame.angles_deg(points) < result.frame.septum_deg


def test_the_real_heart_in_its_scanners_frame_is_not_warned(hearts, warnings_of_cardioscar):
    """One point or both: the numbering sits on biv-me's heart as in the patient's frame."""
    _, anterior, inferior = hearts["as read"]
    for points in ((anterior,), (anterior, inferior)):
        record = _aha(hearts["as read"], *points).summary["rv_insertion"]["frame_handedness"]
        assert record["verdict"] == "as in the patient's frame" and record["warning"] is None
        assert record["axis_obliquity_deg"] > 40.0 and record["apex_lps"][0] > 0.4  # the apex points left
    assert not [message for message in warnings_of_cardioscar if "mirror" in message]


@pytest.mark.parametrize("copy", ["x", "slice axis"])
def test_one_point_on_a_mirrored_copy_is_warned_once_and_recorded(hearts, copy, warnings_of_cardioscar):
    """The copy's numbering is the mirror of the heart's (its septal arc drawn over the free wall,
    where the original drew it over the same nodes' septum): one warning naming what to do, and the
    record."""
    _, anterior, _ = hearts[copy]
    result = _aha(hearts[copy], anterior)
    original = _aha(hearts["as read"], hearts["as read"][1])
    warned = [message for message in warnings_of_cardioscar if "mirror" in message]
    assert len(warned) == 1 and "give both RV insertion points, the anterior one first (--rv-point" in warned[0]
    record = result.summary["rv_insertion"]["frame_handedness"]
    assert record["verdict"] == "not as in the patient's frame" and record["warning"] == warned[0]
    # by angle about the axis (an endocardium alone puts most nodes beyond its wall's tip, in 17)
    septal = _in_septum(original, hearts["as read"])
    assert septal.mean() > 0.25 and _in_septum(result, hearts[copy])[septal].mean() < 0.1


def test_two_points_on_a_mirrored_copy_warn_once_by_their_order_or_by_the_frame(hearts, warnings_of_cardioscar):
    """Anterior first, the points' own direction reads mirrored (``sense``; the table follows them, as
    on the original): the frame is not judged again. Swapped, they read anatomical and the frame
    check warns: each once."""
    _, anterior, inferior = hearts["x"]
    right = _aha(hearts["x"], anterior, inferior)
    assert right.summary["rv_insertion"]["sense"] == "mirrored"
    assert right.summary["rv_insertion"]["frame_handedness"]["verdict"].startswith("not checked: the points' own order")
    original = _aha(hearts["as read"], *hearts["as read"][1:])
    assert (right.point_segments == original.point_segments).mean() > 0.95
    assert len([message for message in warnings_of_cardioscar if "mirror" in message]) == 1
    swapped = _aha(hearts["x"], inferior, anterior)
    assert swapped.summary["rv_insertion"]["sense"] == "anatomical"
    assert swapped.summary["rv_insertion"]["frame_handedness"]["verdict"] == "not as in the patient's frame"
    assert len([message for message in warnings_of_cardioscar if "mirror" in message]) == 2


def test_the_command_says_it_in_one_line_and_aha_json_records_it(hearts, tmp_path, capsys):
    """``cardioscar aha`` (in process) on the copy mirrored across the slice axis, one point."""
    import json

    from cardioscar.cli import main

    path, anterior, _ = hearts["slice axis"]
    capsys.readouterr()
    assert main(["aha", "--mesh", str(path), "--rv-point", ",".join(f"{v:.4f}" for v in anterior),
                 "--transmurality", "off", "--output-dir", str(tmp_path / "aha")]) == 0
    (warned,) = [line for line in capsys.readouterr().err.splitlines() if "mirror" in line]
    record = json.loads((tmp_path / "aha" / "aha.json").read_text(encoding="utf-8"))["rv_insertion"]
    assert record["sense"] == "assumed" and record["frame_handedness"]["warning"] in warned
