"""Accuracy bar of the neural reconstruction on the default phantom (fixed seed, fast preset).

Default phantom: oblique short-axis stack, 8 mm slabs every 10 mm, 1.5 mm pixels. The figures are
read from the report of the real demo run shared with ``test_demo.py`` (one run per session).
"""

from __future__ import annotations

import pytest

from test_demo import demo_run


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> dict:
    return demo_run(tmp_path_factory)[1]


def test_dice_at_half_is_at_least_090(report):
    assert report["dice"] >= 0.90


def test_scar_volume_error_within_10_percent(report):
    assert abs(report["volume_error"]) <= 0.10


def test_uncertainty_is_higher_between_slices_than_on_them(report):
    assert report["uncertainty_between_slices"] > report["uncertainty_on_slices"]


@pytest.mark.parametrize("baseline", ["nearest_slice", "logodds"])
def test_network_beats_baseline(report, baseline):
    assert report["dice"] > report["baselines"][baseline]["dice"]
