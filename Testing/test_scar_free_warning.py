"""The warning that a rule's scar may be the noise of a heart with no infarct
(``cardioscar.lge.scar_spread``): on synthetic Rician LGE rings (noise alone against a compact
enhanced sector) through ``graded_targets`` (every face's rule path), and on EMIDEC's most scattered
scar-free case and an infarct through ``cardioscar prepare``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.lge.prepare import ScarRuleRequest, graded_targets
from cardioscar.lge.rules import BORDER, apply_rule
from cardioscar.lge.scar_spread import SCATTERED_BELOW, enhanced_pixels, largest_region_pixels
from cardioscar.lge.synthetic import LGEContrast, add_rician_noise, lge_signal, sector_scar
from cardioscar.prepare.slices import SliceLayer
from conftest import run_cli_in_process

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
from lge_rule_reconstruction_emidec import voxel_centre_mesh  # noqa: E402

WORDS = "shows no compact enhancement"


def _stack(scar: bool, n_slices: int = 4) -> tuple[list[SliceLayer], list[np.ndarray]]:
    """Nulled rings around bright blood; with ``scar`` a transmural enhanced sector on every slice."""
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[:64, :64]
    radius = np.hypot(rows - 32, cols - 32)
    ring, cavity = (radius >= 8) & (radius < 13), radius < 8
    grade = sector_scar(ring, 90.0) if scar else np.where(ring, 0, -1).astype(np.int8)
    layers = [SliceLayer(values=add_rician_noise(lge_signal(grade, cavity, LGEContrast()), 20.0, rng),
                         origin=np.array([0.0, 0.0, 10.0 * k]), axis_i=np.array([1.0, 0.0, 0.0]),
                         axis_j=np.array([0.0, 1.0, 0.0]), spacing=(1.5, 1.5), half_thickness=5.0,
                         label=f"lge.nii.gz k={k}") for k in range(n_slices)]
    return layers, [ring] * n_slices


@pytest.mark.parametrize("rule", ["nsd", "psi"])
def test_noise_alone_is_warned_and_a_compact_scar_is_not(rule, warnings_of_cardioscar):
    request = ScarRuleRequest(rule=rule, myocardium_path=Path("m.nii.gz"))
    layers, masks = _stack(scar=False)
    _, result = graded_targets(request, layers, masks, None, None, "m.nii.gz")
    spread = result.record()["scar_spread"]
    if rule == "nsd":  # n-SD 2 calls the bright tail of the noise scar: warned, and recorded so
        assert result.record()["scar_spread"]["rule_share"] > 0.01
        assert spread["scattered"] and spread["largest_of_myo"] < SCATTERED_BELOW
        assert [w for w in warnings_of_cardioscar if f"The LGE lge.nii.gz {WORDS}" in w
                and "the nsd scar" in w and "check the LGE before using this scar" in w]
    else:  # psi's enhancement test leaves a ring of noise healthy: no scar, nothing to warn about
        assert spread["rule_share"] == 0 and not spread["scattered"]
        assert not [w for w in warnings_of_cardioscar if WORDS in w]
    warnings_of_cardioscar.clear()
    layers, masks = _stack(scar=True)
    _, result = graded_targets(request, layers, masks, None, None, "m.nii.gz")
    spread = result.record()["scar_spread"]
    assert not spread["scattered"] and spread["largest_of_myo"] > 0.2 and spread["largest_ml"] > 1.0
    assert not [w for w in warnings_of_cardioscar if WORDS in w]


def test_regions_join_across_slices_only_where_they_overlap():
    """Two specks on neighbouring slices at the same place are one region; apart, two."""
    first, second = np.zeros((5, 5), bool), np.zeros((5, 5), bool)
    first[1, 1] = second[1, 1] = True
    assert largest_region_pixels([first, second]) == (2, 2)
    second[1, 1], second[3, 3] = False, True
    assert largest_region_pixels([first, second]) == (1, 2)
    # planes of two series (shapes differ) are read each alone
    assert largest_region_pixels([first, np.ones((2, 3), bool)]) == (6, 7)


@pytest.mark.parametrize("case, warned", [("Case_N032", True), ("Case_P015", False)])
def test_prepare_on_emidec_warns_on_a_scar_free_heart(shared_data, tmp_path, case, warned):
    """N032 (scar-free; its largest region above remote + 3 SD is 0.2 % of the myocardium, EMIDEC's
    lowest) is warned and the .npz records it; P015 (an infarct) is not."""
    folder = shared_data / "emidec" / case
    labels_path = folder / "Contours" / f"{case}.nii.gz"
    mesh_path, npz = tmp_path / "myocardium.vtk", tmp_path / "scar.npz"
    voxel_centre_mesh(sitk.ReadImage(str(labels_path)), mesh_path)
    proc = run_cli_in_process("prepare", "--mesh", mesh_path, "--image", folder / "Images" / f"{case}.nii.gz",
                              "--scar-rule", "nsd", "--myocardium-mask", labels_path, "--myocardium-labels", "2,3,4",
                              "--slice-thickness-padding", "1", "--output", npz)
    assert proc.returncode == 0, proc.stderr
    assert (f"The LGE {case}.nii.gz {WORDS}" in proc.stderr) == warned, proc.stderr
    with np.load(npz) as data:
        spread = json.loads(str(data["scar_rule"]))["scar_spread"]
    assert spread["scattered"] == warned and spread["reference_sd"] == 3.0
    assert (spread["largest_of_myo"] < 0.005) if warned else (spread["largest_of_myo"] > 0.1)


def test_the_warning_reads_n_sds_own_remote():
    """The enhancement the warning reads is n-SD's border zone at 3 SD, pixel for pixel (one remote
    and one level, :func:`cardioscar.lge.rules.remote_reference`), with the darkest sector and with
    the user's mask; a user's mask too small for n-SD on a slice (another rule ran) gives way to the
    darkest sector there."""
    layers, masks = _stack(scar=True)
    values = [layer.values for layer in layers]
    remote = [ring & (np.arange(ring.shape[1])[None, :] < 28) for ring in masks]  # the ring's left part
    for given in (None, remote):
        rule = apply_rule("nsd", values, masks, remote=given, thresholds=(3.0, 4.0))
        called = enhanced_pixels(values, masks, given)
        assert all(np.array_equal(c, g >= BORDER) for c, g in zip(called, rule.grades))
        assert 0 < sum(int(c.sum()) for c in called) < sum(int(m.sum()) for m in masks)
    tiny = [np.zeros_like(m) for m in masks]
    tiny[0][np.nonzero(masks[0])[0][:3], np.nonzero(masks[0])[1][:3]] = True
    sector = enhanced_pixels(values, masks)
    assert all(np.array_equal(t, s) for t, s in zip(enhanced_pixels(values, masks, tiny), sector))
