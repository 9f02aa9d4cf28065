"""``prepare --scar-rule ... --expert-scar-labels/--expert-core-labels``: border zone and core graded
by the rule only inside the scar the experts drew (Documentation/lge-to-opencarp.md).

The phantom's raw LGE (``raw_lge_acquisition``: enhanced where the phantom has scar) with an expert
label map made from its own (1 blood pool, 2 myocardium): the myocardium of one half of every slice
is the experts' scar (3), a band of it their no-reflow (4). So the LGE is bright outside the
experts' scar too, and the tests can tell the experts' extent from the rule's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from cardioscar.cli import main
from cardioscar.errors import CardioScarError
from cardioscar.lge.prepare import ScarRuleRequest, graded_targets, rule_targets
from cardioscar.lge.rules import CORE, apply_rule
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, raw_lge_acquisition, write_phantom
from cardioscar.prepare.myocardium import masks_from_image
from cardioscar.prepare.slices import slices_from_image
from conftest import assert_refused_in_one_line

SLICES = [1, 2, 3, 4, 5, 6, 7, 8]


def expert_label_map(labels: np.ndarray) -> np.ndarray:
    """Labels 3 (scar) on the myocardium of the columns left of each slice's myocardial median, 4
    (no-reflow) on the rows of that scar above its median row."""
    expert = labels.copy()
    for k in range(labels.shape[0]):
        rows, cols = np.nonzero(labels[k] == 2)
        if rows.size:
            scar = (labels[k] == 2) & (np.arange(labels.shape[2])[None, :] < np.median(cols))
            expert[k][scar] = 3
            srows = np.nonzero(scar)[0]
            expert[k][scar & (np.arange(labels.shape[1])[:, None] < np.median(srows))] = 4
    return expert


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    out = tmp_path_factory.mktemp("expert")
    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3))
    paths = write_phantom(phantom, out)
    lge, labels = raw_lge_acquisition(phantom)
    expert = sitk.GetImageFromArray(expert_label_map(sitk.GetArrayFromImage(labels)).astype(np.uint8))
    expert.CopyInformation(labels)
    for image, name in ((lge, "lge.nii.gz"), (expert, "labels.nii.gz"), (labels, "no_scar.nii.gz")):
        sitk.WriteImage(image, str(out / name))
    half = phantom.slice_half_thickness_mm
    layers = slices_from_image(lge, slice_indices=SLICES, half_thickness=half)
    masks = {name: masks_from_image(expert, layers, wanted, what=what) for name, wanted, what in
             (("myocardium", [2, 3, 4], "--myocardium-mask"), ("scar", [3, 4], "experts' scar"),
              ("no_reflow", [4], "experts' no-reflow"))}
    return {"out": out, "mesh": paths["mesh"], "half": half, "layers": layers, **masks}


def _request(case, target: str, core_labels=(4,), rule: str = "nsd") -> ScarRuleRequest:
    return ScarRuleRequest(rule=rule, myocardium_path=case["out"] / "labels.nii.gz", myocardium_labels=[2, 3, 4],
                           target=target, expert_scar_labels=[3, 4],
                           expert_core_labels=list(core_labels) or None)


def _targets(case, request) -> list[np.ndarray]:
    layers, _ = rule_targets(request, case["layers"], case["myocardium"], "labels.nii.gz")
    return [layer.values for layer in layers]


def test_the_scar_target_is_the_experts_scar_though_the_lge_is_bright_outside_it(case):
    alone = apply_rule("nsd", [layer.values for layer in case["layers"]], case["myocardium"]).grades
    outside = [m & ~s for m, s in zip(case["myocardium"], case["scar"])]
    assert sum(int((g[o] >= 1).sum()) for g, o in zip(alone, outside)) > 20  # the rule alone calls scar out there
    for values, myocardium, scar in zip(_targets(case, _request(case, "scar")), case["myocardium"], case["scar"]):
        np.testing.assert_array_equal(np.isnan(values), ~myocardium)
        np.testing.assert_array_equal(values[myocardium] == 1, scar[myocardium])


@pytest.mark.parametrize("core_labels", [(4,), ()], ids=["no-reflow core", "rule core only"])
def test_the_core_is_the_rules_core_within_the_experts_scar(case, core_labels):
    images = [layer.values for layer in case["layers"]]
    healthy = [m & ~s for m, s in zip(case["myocardium"], case["scar"])]
    rule = apply_rule("nsd", images, case["myocardium"], healthy=healthy).grades
    cores = _targets(case, _request(case, "core", core_labels))
    for core, grade, myocardium, scar, no_reflow in zip(cores, rule, case["myocardium"], case["scar"],
                                                         case["no_reflow"]):
        expected = (grade == CORE) & scar | (no_reflow if core_labels else False)
        np.testing.assert_array_equal(core[myocardium] == 1, expected[myocardium])
        assert not (core[myocardium & ~scar] == 1).any()
    called = sum(int((c == 1).sum()) for c in cores)
    assert called > 0 and (not core_labels or all((c[n] == 1).all() for c, n in zip(cores, case["no_reflow"])))


def test_the_record_names_the_expert_labels_and_keeps_the_rules_own_counts(case, tmp_path):
    npz = tmp_path / "scar.npz"
    assert main(["prepare", "--mesh", str(case["mesh"]), "--image", str(case["out"] / "lge.nii.gz"),
                 "--scar-rule", "nsd", "--myocardium-mask", str(case["out"] / "labels.nii.gz"),
                 "--myocardium-labels", "2,3,4", "--expert-scar-labels", "3,4", "--expert-core-labels", "4",
                 "--slice-indices", ",".join(map(str, SLICES)), "--slice-thickness-padding", str(case["half"]),
                 "--output", str(npz)]) == 0
    with np.load(npz) as data:
        record = json.loads(str(data["scar_rule"]))
        targets = data["intensities"][np.r_[0, np.cumsum(data["group_sizes"])[:-1]], 0]
    assert (record["expert_scar_labels"], record["expert_core_labels"], record["target"]) == ([3, 4], [4], "scar")
    slices = record["slices"]
    assert all(s["remote"].startswith("darkest of 6 sectors outside the expert scar") for s in slices)
    assert [s["expert_scar_pixels"] for s in slices] == [int(s.sum()) for s in case["scar"]]
    assert [s["border_pixels"] + s["core_pixels"] for s in slices] == [int(s.sum()) for s in case["scar"]]
    assert sum(s["rule_border_pixels"] + s["rule_core_pixels"] for s in slices) > 0
    assert 0 < targets.mean() < 1


BAD = [
    (["--expert-scar-labels", "3,4"], "--expert-scar-labels and --expert-core-labels need --scar-rule"),
    (["--scar-rule", "nsd", "--myocardium-mask", "LABELS", "--expert-scar-labels", "3,4"],
     "--expert-scar-labels 3,4 names labels of the --myocardium-mask label map: give its --myocardium-labels"),
    (["--scar-rule", "nsd", "--myocardium-mask", "LABELS", "--myocardium-labels", "2,3", "--expert-scar-labels", "3,4"],
     "--expert-scar-labels 4 not in --myocardium-labels 2,3"),
    (["--scar-rule", "nsd", "--myocardium-mask", "LABELS", "--myocardium-labels", "2,3,4", "--expert-scar-labels", "3",
      "--expert-core-labels", "4"], "--expert-core-labels 4 not in --expert-scar-labels 3"),
    (["--scar-rule", "nsd", "--myocardium-mask", "LABELS", "--myocardium-labels", "2,3,4",
      "--expert-core-labels", "4"], "--expert-core-labels 4 needs --expert-scar-labels"),
    (["--scar-rule", "nsd", "--myocardium-mask", "NO_SCAR", "--myocardium-labels", "2,3,4", "--expert-scar-labels",
      "3,4"], "--expert-scar-labels 3,4 match no pixel of --myocardium-mask no_scar.nii.gz on the chosen slices: give the "
     "labels the experts drew the scar with (EMIDEC 3,4), check --slice-indices, or leave --expert-scar-labels out "
     "for a scar-free heart"),  # the option named: a cohort says its column (EMIDEC N020: 'leave the option out')
    # label 0 (the background) as the experts' scar graded every pixel off the heart "scar", exit 0
    (["--scar-rule", "nsd", "--myocardium-mask", "LABELS", "--myocardium-labels", "0,2,3,4", "--expert-scar-labels", "0"],
     "--expert-scar-labels 0 holds label 0, the label map's background"),
    (["--scar-rule", "nsd", "--myocardium-mask", "LABELS", "--myocardium-labels", "0,2,3,4", "--expert-scar-labels",
      "3,4"], "--myocardium-labels 0,2,3,4 holds label 0, the label map's background"),
]


@pytest.mark.parametrize("extra, fragment", BAD, ids=["no rule", "no labels", "not myocardium", "core not scar",
                                                      "core alone", "no pixel", "background as scar",
                                                      "background as myocardium"])
def test_bad_expert_labels_are_refused_in_one_line(case, extra, fragment, capsys, tmp_path):
    files = {"LABELS": str(case["out"] / "labels.nii.gz"), "NO_SCAR": str(case["out"] / "no_scar.nii.gz")}
    args = ["prepare", "--mesh", str(case["mesh"]), "--image", str(case["out"] / "lge.nii.gz"),
            "--slice-thickness-padding", str(case["half"]), *[files.get(a, a) for a in extra],
            "--output", str(tmp_path / "out.npz")]
    assert_refused_in_one_line(args, fragment, capsys, tmp_path)


def test_the_request_refuses_expert_labels_outside_the_myocardium_in_python(case):
    with pytest.raises(CardioScarError, match="--expert-scar-labels 5 not in --myocardium-labels 2,3,4"):
        ScarRuleRequest(rule="nsd", myocardium_path=Path("labels.nii.gz"), myocardium_labels=[2, 3, 4],
                        expert_scar_labels=[3, 5])


def test_the_api_takes_the_myocardium_mask_once(case):
    """The Python API's expert split needed the mask on the PreprocessingRequest (to cut the slices)
    and on its ScarRuleRequest (the experts' labels are its labels), and said what was missing in the
    command line's words: given once, on either, the other takes it, and the targets are those of the
    request that gave it twice; a rule with no mask, or two masks, is refused in the API's field names."""
    from cardioscar.logic import PreprocessingRequest, prepare_training_data

    labels = case["out"] / "labels.nii.gz"
    common = dict(mesh_path=case["mesh"], image_path=case["out"] / "lge.nii.gz", slice_indices=SLICES,
                  slice_thickness_padding=case["half"])
    experts = dict(expert_scar_labels=[3, 4], expert_core_labels=[4])
    once = PreprocessingRequest(**common, myocardium_mask=labels, myocardium_labels=[2, 3, 4],
                                scar_rule=ScarRuleRequest(rule="nsd", **experts))
    assert (once.scar_rule.myocardium_path, once.scar_rule.myocardium_labels) == (labels, [2, 3, 4])
    on_the_rule = PreprocessingRequest(**common, scar_rule=ScarRuleRequest(rule="nsd", myocardium_path=labels,
                                                                           myocardium_labels=[2, 3, 4], **experts))
    assert (on_the_rule.myocardium_mask, on_the_rule.myocardium_labels) == (labels, [2, 3, 4])
    twice = PreprocessingRequest(**common, myocardium_mask=labels, myocardium_labels=[2, 3, 4],
                                 scar_rule=_request(case, "scar"))
    targets = [prepare_training_data(request).group_targets for request in (once, twice)]
    np.testing.assert_array_equal(targets[0], targets[1])
    assert 0 < targets[0].mean() < 1
    for given, message in (
            ({}, re.escape("scar_rule needs the myocardium: give PreprocessingRequest.myocardium_mask (the mask or "
                           "label map file, with myocardium_labels for a label map, e.g. [2, 3, 4])")),
            ({"myocardium_mask": case["out"] / "no_scar.nii.gz", "myocardium_labels": [2, 3, 4]},
             "PreprocessingRequest.myocardium_mask .*no_scar.nii.gz and its scar_rule.myocardium_path .*labels.nii.gz "
             "differ: give it once, as PreprocessingRequest.myocardium_mask"),
            ({"myocardium_mask": labels, "myocardium_labels": [2, 3]},
             r"PreprocessingRequest.myocardium_labels \[2, 3\] and its scar_rule.myocardium_labels \[2, 3, 4\] differ")):
        rule = ScarRuleRequest(rule="nsd", **experts) if not given else _request(case, "scar")
        with pytest.raises(CardioScarError, match=f"^{message}") as refused:
            PreprocessingRequest(**common, **given, scar_rule=rule)
        assert "--" not in str(refused.value)  # no command-line option in the API's words
    with pytest.raises(CardioScarError, match=r"^scar_rule must be a ScarRuleRequest \(e.g. ScarRuleRequest\(rule='nsd'\)\), got 'nsd'"):
        PreprocessingRequest(**common, myocardium_mask=labels, scar_rule="nsd")


def test_a_sliver_sector_is_never_the_remote():
    """The healthy remainder of a ring: its lower half, and 2 darker pixels at the top, alone in
    their sector (around the remainder's centroid, low in the ring). The darkest sector of 5 pixels
    or more is chosen, where the 2-pixel sliver would have been (a remote n-SD refuses)."""
    from cardioscar.lge.rules import darkest_sector

    rows, cols = np.mgrid[0:41, 0:41]
    radius = np.hypot(rows - 20, cols - 20)
    ring = (radius > 12) & (radius < 17)
    mask = ring & (rows > 20)
    sliver = np.zeros_like(ring)
    sliver[4, 20:22] = True
    values = np.where(cols < 20, 50.0, 100.0)
    values[sliver] = 0.0
    region, _ = darkest_sector(values, mask | sliver)
    assert region.sum() >= 5 and not (region & sliver).any() and (values[region] == 50.0).all()


def _remote_file(case, name: str, labels: list[int]) -> Path:
    """A 0/1 remote mask of the expert label map's ``labels``."""
    expert = sitk.ReadImage(str(case["out"] / "labels.nii.gz"))
    remote = sitk.GetImageFromArray(np.isin(sitk.GetArrayFromImage(expert), labels).astype(np.uint8))
    remote.CopyInformation(expert)
    path = case["out"] / name
    sitk.WriteImage(remote, str(path))
    return path


def test_a_remote_mask_on_the_experts_scar_is_refused(case):
    """A remote drawn on the scar made n-SD's levels the scar's own: the experts' scar all border zone, exit 0."""
    request = _request(case, "scar")
    request.remote_path = _remote_file(case, "remote_on_scar.nii.gz", [3])
    with pytest.raises(CardioScarError, match=r"--remote-mask: \d+ of its \d+ myocardial pixels on slice .* lie in "
                                              r"the experts' scar \(--expert-scar-labels 3,4\), leaving 0"):
        _targets(case, request)


def test_a_remote_mask_partly_on_the_experts_scar_is_used_outside_it(case):
    """The whole myocardium as the remote: n-SD's reference is its part outside the experts' scar."""
    request = _request(case, "core", core_labels=())
    request.remote_path = _remote_file(case, "remote_everywhere.nii.gz", [2, 3, 4])
    images = [layer.values for layer in case["layers"]]
    healthy = [m & ~s for m, s in zip(case["myocardium"], case["scar"])]
    expected = apply_rule("nsd", images, case["myocardium"], remote=healthy).grades
    for core, grade, myocardium, scar in zip(_targets(case, request), expected, case["myocardium"], case["scar"]):
        np.testing.assert_array_equal(core[myocardium] == 1, ((grade == CORE) & scar)[myocardium])


def test_the_requests_label_lists_are_whole_numbers_in_python():
    """As PreprocessingRequest's: the text "3,4" was read as the labels ',', '3', ',', '4' (a message naming
    ",,3,4"), a numpy array raised a ValueError traceback."""
    request = ScarRuleRequest(rule="nsd", myocardium_path=Path("labels.nii.gz"), myocardium_labels=np.array([2, 3, 4]),
                              expert_scar_labels=np.array([3, 4]), expert_core_labels=(4,))
    assert (request.myocardium_labels, request.expert_scar_labels, request.expert_core_labels) == ([2, 3, 4], [3, 4],
                                                                                                   [4])
    with pytest.raises(CardioScarError, match=r"^expert_scar_labels must be a list of whole label values such as "
                                              r"\[3, 4\], got '3,4' \(the text form is the command line's\)$"):
        ScarRuleRequest(rule="nsd", myocardium_path=Path("labels.nii.gz"), myocardium_labels=[2, 3, 4],
                        expert_scar_labels="3,4")


def test_the_background_is_refused_as_the_experts_core_in_python():
    with pytest.raises(CardioScarError, match=r"^--expert-core-labels 0 holds label 0, the label map's background"):
        ScarRuleRequest(rule="nsd", myocardium_path=Path("labels.nii.gz"), myocardium_labels=[2, 3, 4],
                        expert_scar_labels=[3, 4], expert_core_labels=[0])


def _ring(healthy_rows: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noisy myocardial ring of ~450 pixels (41 x 41) and its healthy part: the rows below
    ``healthy_rows`` (the rest the experts' scar)."""
    rows, cols = np.mgrid[0:41, 0:41]
    radius = np.hypot(rows - 20, cols - 20)
    ring = (radius > 12) & (radius < 17)
    values = 100 + np.random.default_rng(0).normal(0, 10, ring.shape)
    return values, ring, ring & (rows >= 41 - healthy_rows)


@pytest.mark.parametrize("rule", ["nsd", "psi", "fwhm"])
def test_a_slice_searched_in_the_whole_myocardium_is_warned_about(rule, warnings_of_cardioscar):
    """Slices 'a' and 'c' keep under 60 healthy pixels (4 rows of the ring), 'b' over 200: one
    warning names 'a' and 'c' (their darkest sector may lie on the experts' scar), not 'b'."""
    slices = [_ring(4), _ring(20), _ring(3)]
    apply_rule(rule, [s[0] for s in slices], [s[1] for s in slices], healthy=[s[2] for s in slices],
               slice_names=["a", "b", "c"])
    assert [s[2].sum() < 60 <= slices[1][2].sum() for s in slices] == [True, False, True]
    searched = [w for w in warnings_of_cardioscar if "sought in the whole myocardium" in w]
    assert len(searched) == 1 and "on 2 slice(s) (a, c)" in searched[0], warnings_of_cardioscar


def test_a_remote_mask_or_iir_searches_no_sector_and_is_not_warned_about(warnings_of_cardioscar):
    values, ring, healthy = _ring(4)
    apply_rule("nsd", [values], [ring], remote=[ring], healthy=[healthy])
    apply_rule("iir", [values], [ring], blood_pool=[~ring], healthy=[healthy])
    assert not [w for w in warnings_of_cardioscar if "sought in the whole myocardium" in w]


@pytest.mark.parametrize("rule", ["nsd", "psi", "fwhm", "iir"])
def test_a_blood_pool_a_rule_does_not_read_is_warned_about(case, rule, warnings_of_cardioscar):
    """Only iir reads the blood pool (the myocardium's cavity checks use the label map's own): given
    to another rule it was accepted and unused, silently."""
    request = ScarRuleRequest(rule=rule, myocardium_path=Path("labels.nii.gz"), myocardium_labels=[2, 3, 4])
    blood = [~m for m in case["myocardium"]]
    graded_targets(request, case["layers"], case["myocardium"], blood, None, "labels.nii.gz")
    unused = [w for w in warnings_of_cardioscar if "are used by --scar-rule iir only" in w]
    assert len(unused) == (rule != "iir") and (rule == "iir" or f"; {rule} does not read them" in unused[0])


def test_the_label_map_is_sampled_once_for_both_expert_masks(case, monkeypatch):
    """The experts' scar and core masks were each resampled from the label map (every pixel centre
    mapped into it twice); now it is sampled once and both are label sets of those samples, equal to
    what resampling each gave (here on another grid than the LGE's: finer and a fraction of a voxel off)."""
    from cardioscar.lge.prepare import expert_masks
    from cardioscar.prepare.myocardium import masks_from_voxels
    from cardioscar.prepare.slices import SliceLayer, ijk_to_lps_matrix

    drawn = sitk.ReadImage(str(case["out"] / "labels.nii.gz"))
    grid = sitk.Image([int(n * 1.4) for n in drawn.GetSize()], drawn.GetPixelID())
    grid.SetDirection(drawn.GetDirection())
    grid.SetSpacing([s / 1.4 for s in drawn.GetSpacing()])
    grid.SetOrigin([o + 0.3 for o in drawn.GetOrigin()])
    moved = sitk.Resample(drawn, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    values, matrix, layers = sitk.GetArrayFromImage(moved), ijk_to_lps_matrix(moved), case["layers"]
    before = {option: masks_from_voxels(np.isin(values, wanted).astype(np.uint8), matrix, layers, None, "moved",
                                        option) for option, wanted in (("--expert-scar-labels", [3, 4]),
                                                                       ("--expert-core-labels", [4]))}
    centres = SliceLayer.pixel_centres_lps
    calls = []
    monkeypatch.setattr(SliceLayer, "pixel_centres_lps", lambda layer: calls.append(layer) or centres(layer))
    masks = expert_masks(values, matrix, layers, _request(case, "scar"), "moved")
    assert len(calls) == len(layers)  # each pixel centre mapped into the label map once
    for got, expected in ((masks.scar, before["--expert-scar-labels"]), (masks.core, before["--expert-core-labels"])):
        assert len(got) == len(expected) and all(np.array_equal(g, e) for g, e in zip(got, expected))
    assert sum(int(m.sum()) for m in masks.core) > 0 and sum(int(m.sum()) for m in masks.scar) > sum(
        int(m.sum()) for m in masks.core)
