"""Slice values -> targets in [0, 1], and the option parsers shared by the CLI and the Slicer panel."""

from __future__ import annotations

import numpy as np
import pytest

from cardioscar.errors import CardioScarError
from cardioscar.prepare.slices import SliceLayer
from cardioscar.prepare.targets import parse_scar_labels, parse_slice_indices, slice_targets


def layer(values, label: str = "s") -> SliceLayer:
    return SliceLayer(values=np.asarray(values, dtype=float), origin=np.zeros(3), axis_i=np.array([1.0, 0, 0]),
                      axis_j=np.array([0, 1.0, 0]), spacing=(1.0, 1.0), half_thickness=2.0, label=label)


def test_values_in_unit_range_are_used_as_is() -> None:
    values = [[0.0, 0.25], [1.0, np.nan]]
    (out,) = slice_targets([layer(values)])
    np.testing.assert_array_equal(out.values, values)


def test_label_map_becomes_binary_and_holes_stay_nan() -> None:
    first, second = slice_targets([layer([[0, 1, 2], [3, 4, np.nan]]), layer([[4, 4, 0], [0, 2, 3]])],
                                  scar_labels=[3, 4])
    np.testing.assert_array_equal(first.values, [[0, 0, 0], [1, 1, np.nan]])
    np.testing.assert_array_equal(second.values, [[1, 1, 0], [0, 0, 1]])
    assert first.label == "s" and first.half_thickness == 2.0


def test_normalize_uses_all_chosen_slices() -> None:
    first, second = slice_targets([layer([[100.0, 200.0]]), layer([[300.0, np.nan]])], normalize=True)
    np.testing.assert_allclose(first.values, [[0.0, 0.5]])
    np.testing.assert_allclose(second.values, [[1.0, np.nan]])


def test_errors() -> None:
    with pytest.raises(CardioScarError, match="--scar-labels .* or --normalize-intensities"):
        slice_targets([layer([[0.0, 2.0]])])
    with pytest.raises(CardioScarError, match="infinite"):
        slice_targets([layer([[0.0, np.inf]])], normalize=True)
    with pytest.raises(CardioScarError, match="not both"):
        slice_targets([layer([[0.0, 2.0]])], scar_labels=[2], normalize=True)
    with pytest.raises(CardioScarError, match="same value"):
        slice_targets([layer([[5.0, 5.0]])], normalize=True)
    with pytest.raises(CardioScarError, match="No slices"):
        slice_targets([])


def test_option_parsers() -> None:
    assert parse_scar_labels("3,4") == [3, 4]
    assert parse_scar_labels(" 2 ") == [2]
    assert parse_scar_labels("") is None and parse_scar_labels(None) is None
    assert parse_slice_indices("2,5,8") == [2, 5, 8]
    assert parse_slice_indices("all") is None
    with pytest.raises(CardioScarError, match="comma-separated integers like '3,4', got '3;4'"):
        parse_scar_labels("3;4")
    with pytest.raises(CardioScarError, match="more than once"):
        parse_slice_indices("2,2")
    with pytest.raises(CardioScarError, match=">= 0"):
        parse_slice_indices("-1,3")
