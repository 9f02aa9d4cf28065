"""The check that a scar rule's myocardium mask lies on this LGE's left ventricle
(``cardioscar.lge.mask_fit``), on small synthetic Rician LGE slices of known contrast; EMIDEC's
real pairs through the command line are in ``Testing/test_lge_prepare.py``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cardioscar.errors import CardioScarError
from cardioscar.lge.mask_fit import REFUSE_BELOW, WARN_BELOW, cavity_brighter_share, check_mask_on_lge
from cardioscar.lge.synthetic import LGEContrast, add_rician_noise, lge_signal, sector_scar
from cardioscar.prepare.slices import SliceLayer


def _ring(size: int = 64, inner: float = 8.0, outer: float = 13.0, centre: tuple[int, int] = (32, 32)):
    rows, cols = np.mgrid[:size, :size]
    radius = np.hypot(rows - centre[0], cols - centre[1])
    return (radius >= inner) & (radius < outer), radius < inner


def _layer(values: np.ndarray, k: int) -> SliceLayer:
    return SliceLayer(values=values, origin=np.array([0.0, 0.0, 10.0 * k]), axis_i=np.array([1.0, 0.0, 0.0]),
                      axis_j=np.array([0.0, 1.0, 0.0]), spacing=(1.5, 1.5), half_thickness=5.0,
                      label=f"lge.nii.gz k={k}")


def _lge_stack(n_slices: int = 3, blood: float = 400.0) -> tuple[list[SliceLayer], list[np.ndarray]]:
    """Bright blood (``blood``: 30, a dark-blood LGE's, darker than the nulled wall's 100) inside a
    nulled ring with a transmural scar sector (a third of the wall), in tissue of mid intensity
    (the chest wall, liver, fat around a heart)."""
    rng = np.random.default_rng(0)
    ring, cavity = _ring()
    grade = sector_scar(ring, centre_deg=90.0, core_half_width_deg=40.0)
    contrast = LGEContrast(background=250.0, blood=blood)
    values = [add_rician_noise(lge_signal(grade, cavity, contrast), contrast.noise_sd, rng) for _ in range(n_slices)]
    return [_layer(v, k) for k, v in enumerate(values)], [ring] * n_slices


def test_the_own_mask_passes_without_a_warning(warnings_of_cardioscar):
    layers, masks = _lge_stack()
    assert cavity_brighter_share(layers[0].values, masks[0]) > 0.99
    record = check_mask_on_lge(layers, masks, "labels.nii.gz")
    assert warnings_of_cardioscar == []
    assert record["checked"] and record["slices_read"] == 3 and record["cavity_brighter_share"] > 0.99


def test_a_dark_blood_lge_is_refused_unless_named_so(warnings_of_cardioscar, caplog):
    """The own mask on a dark-blood LGE: refused with the way out named; with ``dark_blood`` the
    share is measured and recorded, not judged, and the log says the check was skipped and why."""
    layers, masks = _lge_stack(blood=30.0)
    with pytest.raises(CardioScarError, match="for a dark-blood LGE .*--dark-blood-lge, which skips this check"):
        check_mask_on_lge(layers, masks, "labels.nii.gz")
    with caplog.at_level("INFO", logger="cardioscar.lge.mask_fit"):
        record = check_mask_on_lge(layers, masks, "labels.nii.gz", dark_blood=True)
    assert record["checked"] is False and record["skipped"] == "dark-blood LGE" and record["slices_read"] == 3
    assert record["cavity_brighter_share"] < 0.05  # what the check would have refused
    assert any("--dark-blood-lge: the fit of --myocardium-mask labels.nii.gz to the LGE is not checked (the check "
               "needs bright blood" in r.getMessage() for r in caplog.records)
    assert warnings_of_cardioscar == []


def test_the_rule_s_record_carries_the_mask_fit(warnings_of_cardioscar):
    """graded_targets (every face's) writes the measured share into the rule's record (the .npz's
    ``scar_rule``); a dark-blood request records the skip, and iir with dark blood is warned about."""
    from cardioscar.lge.prepare import ScarRuleRequest, graded_targets

    layers, masks = _lge_stack()
    _, result = graded_targets(ScarRuleRequest(rule="nsd", myocardium_path=Path("m.nii.gz")), layers, masks, None,
                               None, "m.nii.gz")
    assert result.record()["mask_fit"]["checked"] and result.record()["mask_fit"]["cavity_brighter_share"] > 0.99
    dark, blood = _lge_stack(blood=30.0)[0], [_ring()[1]] * 3
    request = ScarRuleRequest(rule="iir", myocardium_path=Path("m.nii.gz"), dark_blood_lge=True)
    _, result = graded_targets(request, dark, masks, blood, None, "m.nii.gz")
    assert result.record()["mask_fit"]["skipped"] == "dark-blood LGE"
    assert [w for w in warnings_of_cardioscar if "--scar-rule iir with --dark-blood-lge" in w]
    with pytest.raises(CardioScarError, match="dark_blood_lge must be True or False"):
        ScarRuleRequest(rule="nsd", myocardium_path=Path("m.nii.gz"), dark_blood_lge="no")


def test_a_mask_moved_off_the_ventricle_is_refused_in_one_line():
    layers, _ = _lge_stack()
    moved, _ = _ring(centre=(32, 40))  # 8 px: its cavity on the wall and around it, its ring across the blood
    with pytest.raises(CardioScarError) as refused:
        check_mask_on_lge(layers, [moved] * len(layers), "other.nii.gz")
    message = str(refused.value)
    assert "\n" not in message and message.startswith("--myocardium-mask other.nii.gz does not lie on the left "
                                                       "ventricle of the LGE lge.nii.gz:")


@pytest.mark.parametrize("share, outcome", [(REFUSE_BELOW - 0.02, "refused"), ((REFUSE_BELOW + WARN_BELOW) / 2, "warned"),
                                            (WARN_BELOW + 0.02, "passed")])
def test_the_thresholds_on_a_ring_of_known_ranks(share, outcome, warnings_of_cardioscar):
    """Wall pixels 0..N-1, the cavity at one value: the share is the rank of that value in the
    darker half, exactly, so each band of the check is reached."""
    ring, cavity = _ring()
    values = np.zeros(ring.shape)
    values[ring] = np.arange(ring.sum())
    darker = np.sort(values[ring])[: (ring.sum() + 1) // 2]
    values[cavity] = darker[int(round(share * darker.size))] - 0.5
    assert cavity_brighter_share(values, ring) == pytest.approx(share, abs=0.01)
    try:
        check_mask_on_lge([_layer(values, 0)], [ring], "labels.nii.gz")
    except CardioScarError:
        assert outcome == "refused"
        return
    assert outcome == ("warned" if warnings_of_cardioscar else "passed")
    assert all("may not lie on the left ventricle" in w for w in warnings_of_cardioscar)


def test_a_ring_that_encloses_no_cavity_is_not_read(warnings_of_cardioscar):
    """An open basal ring (or an apical cap) has no cavity to compare: not read, nothing refused."""
    layers, _ = _lge_stack(1)
    ring, _ = _ring()
    opened = ring.copy()
    opened[:, 31:34] = False  # cut through both sides
    assert cavity_brighter_share(layers[0].values, opened) is None
    record = check_mask_on_lge(layers, [opened], "labels.nii.gz")
    assert warnings_of_cardioscar == []
    assert record == {"cavity_brighter_share": None, "slices_read": 0, "checked": False}
