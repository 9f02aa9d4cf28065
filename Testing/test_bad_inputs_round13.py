"""Round 13 (review zreview13): the path from raw LGE to training targets, attacked.

* an LGE of a few grey levels (quantised to 3 bits, a label map) passed every scar rule: a 3-bit
  EMIDEC stack (P015) gave FWHM 2,286 core pixels where the stack gives 3,570, P055's infarct was
  judged unenhanced; with ``--dark-blood-lge`` (the mask-fit check skipped) a label map as the LGE
  was graded too. Refused now when the rule's border zone spans under two grey-level steps;
* FWHM and PSI judged a slice enhanced against the darkest of six sectors of any size: on a small
  ring (sectors of 1-4 pixels) a sliver's SD of almost 0 called noise enhanced, and FWHM graded
  the whole ring scar (34 % of unenhanced 20-pixel rings). Sectors of 15 pixels now, else the whole ring;
* a mask read without labels that is a probability map (0..100, 0..255) or an intensity image:
  its whole numbers passed, every non-zero voxel was mask (EMIDEC P015, n-SD: 322 scar rows
  instead of 1,714, exit 0); the LGE as the mask was refused listing 2,610 "labels";
* an 8-bit LGE given as the label map with ``--myocardium-labels 2,3,4`` (its air's grey values):
  the air trained as the myocardium, exit 0 with two warnings; refused now as its values ramp;
* the blood pool given as the myocardium mask: the mask-fit check skipped in an info line, exit 0;
  now a warning names the mask;
* a mask on another grid whose labels miss the chosen slices was refused with "check
  --myocardium-labels and --slice-indices" only; the message now names the mask's placement.

Real parts: the phantom's raw LGE and label map written by SimpleITK, the real command line and
``lge.rules.apply_rule``, the one function every face grades with. The EMIDEC/ACDC loop that
checks these refusals against valid data is ``Testing/benchmarks/lge_grey_levels_emidec.py``.
"""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from cardioscar.errors import CardioScarError
from cardioscar.lge.prepare import mask_arrays
from cardioscar.lge.rules import MIN_ENHANCEMENT_PIXELS, apply_rule
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, raw_lge_acquisition, write_phantom
from cardioscar.prepare.slices import slices_from_image
from conftest import assert_refused_in_one_line

SLICES = "2,3,4,5,6"


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    """A 1,500-node phantom, its raw LGE and label map (1 blood pool, 2 myocardium) on disk."""
    out = tmp_path_factory.mktemp("round13")
    phantom = make_phantom(PhantomConfig(target_nodes=1500, seed=3))
    paths = write_phantom(phantom, out)
    lge, labels = raw_lge_acquisition(phantom)
    sitk.WriteImage(lge, str(out / "lge.nii.gz"))
    sitk.WriteImage(labels, str(out / "labels.nii.gz"))
    return {"out": out, "mesh": paths["mesh"], "lge": lge, "labels": labels,
            "half": str(phantom.slice_half_thickness_mm)}


def _write(case, values: np.ndarray, name: str, like: str = "labels") -> str:
    image = sitk.GetImageFromArray(values)
    image.CopyInformation(case[like])
    path = case["out"] / name
    sitk.WriteImage(image, str(path))
    return str(path)


def _prepare(case, image: str, mask: str, *extra: str) -> list[str]:
    return ["prepare", "--mesh", case["mesh"], "--image", image, "--myocardium-mask", mask, "--slice-indices",
            SLICES, "--slice-thickness-padding", case["half"], "--output", case["out"] / "out.npz", *extra]


def _quantised(case, bits: int) -> np.ndarray:
    """The LGE in 2**bits grey levels over the heart's intensities (1 = the darkest)."""
    values = sitk.GetArrayFromImage(case["lge"]).astype(np.float64)
    low, high = np.percentile(values[sitk.GetArrayFromImage(case["labels"]) > 0], [0.5, 99.5])
    return np.clip(np.floor((values - low) / (high - low) * 2**bits), 0, 2**bits - 1).astype(np.int16) + 1


@pytest.mark.parametrize("rule", ["nsd", "fwhm", "psi", "iir"])
def test_every_rule_refuses_an_lge_of_few_grey_levels_and_grades_the_stored_one(case, rule):
    labels = sitk.GetArrayFromImage(case["labels"])
    slices = [int(k) for k in SLICES.split(",")]
    myocardium, blood = [labels[k] == 2 for k in slices], [labels[k] == 1 for k in slices]
    stored = sitk.GetArrayFromImage(case["lge"])
    graded = apply_rule(rule, [stored[k] for k in slices], myocardium, blood)
    assert sum(s.get("border_pixels", 0) + s.get("core_pixels", 0) for s in graded.statistics) > 0
    for bits in (3, 4):  # 3 bits: n-SD's darkest sector holds one grey level (SD 0)
        coarse = _quantised(case, bits)
        with pytest.raises(CardioScarError, match=rf"(--scar-rule {rule}'s border zone .* steps \(need >= 2\)|"
                                                  r"one intensity .*SD 0).* a few grey levels"):
            apply_rule(rule, [coarse[k] for k in slices], myocardium, blood)


def test_a_label_map_as_the_lge_of_a_dark_blood_run_is_refused(case, capsys):
    """--dark-blood-lge skips the check that the mask lies on this LGE's bright blood, the check
    that refused the label map as the LGE: the rule graded its labels (2 healthy, 3 "core")."""
    labels = sitk.GetArrayFromImage(case["labels"])
    drawn = labels.copy()
    drawn[(labels == 2) & (np.arange(labels.shape[2])[None, None, :] < labels.shape[2] // 2)] = 3
    label_map = _write(case, drawn, "drawn_labels.nii.gz")
    args = _prepare(case, label_map, label_map, "--myocardium-labels", "2,3", "--scar-rule", "psi", "--dark-blood-lge")
    assert_refused_in_one_line(args, "2 grey levels in the myocardium (steps of 1)", capsys, case["out"])


def test_a_small_ring_is_tested_for_enhancement_against_its_whole_myocardium(warnings_of_cardioscar):
    """A 20-pixel unenhanced ring (noise SD 5 about 100): its six sectors hold 3-4 pixels, so the
    darkest was any sliver, whose SD is noise; this one was judged enhanced and FWHM called all 20
    pixels core (above half of the maximum), as for 34 % of such rings."""
    rows, cols = np.mgrid[-10:11, -10:11]
    ring = (np.hypot(rows, cols) >= 2.9) & (np.hypot(rows, cols) < 4.0)
    assert ring.sum() == 20 < MIN_ENHANCEMENT_PIXELS * 6
    values = np.random.default_rng(0).normal(100.0, 5.0, ring.shape)
    for rule in ("fwhm", "psi"):
        record = apply_rule(rule, [values], [ring]).statistics[0]
        assert record["enhanced"] is False and record["enhancement_reference"].startswith("whole myocardium")
        assert record["border_pixels"] == record["core_pixels"] == 0
    assert any("no myocardial sector of 15 pixels" in w and "slice 0" in w for w in warnings_of_cardioscar)


@pytest.mark.parametrize("rule", ["fwhm", "psi", "iir"])
@pytest.mark.parametrize("edge_values", ["one value", "noise"])
def test_a_slice_of_a_few_myocardial_pixels_is_graded(rule, edge_values):
    """Three myocardial pixels (a mask's edge on a slice): of one value, under the constant-slice
    check's 5 pixels, they ended in an empty step's ValueError; of three noisy values, their gaps
    were taken for grey-level steps and the slice refused. The grey-level check leaves them alone."""
    rows, cols = np.mgrid[-10:11, -10:11]
    ring = (np.hypot(rows, cols) >= 2.9) & (np.hypot(rows, cols) < 4.0)
    values = np.random.default_rng(0).normal(100.0, 5.0, ring.shape)
    edge = np.zeros_like(ring)
    edge[0, :3] = True
    edged = values.copy()
    if edge_values == "one value":
        edged[edge] = 50.0
    blood = np.hypot(rows, cols) < 2.9
    result = apply_rule(rule, [values, edged], [ring, edge], [blood, blood])
    assert result.statistics[1]["myocardium_pixels"] == 3


@pytest.mark.parametrize("scale", [100, 255])
def test_a_probability_map_as_a_mask_is_refused_on_every_path(case, capsys, scale):
    """A myocardium probability map stored in percent or 8 bits holds whole numbers, so it passed
    as a mask: every non-zero voxel, its faint tails on the blood pool included, was myocardium."""
    wall = (sitk.GetArrayFromImage(case["labels"]) == 2).astype(np.float64)
    soft = np.rint(np.stack([ndimage.gaussian_filter(s, 1.0) for s in wall]) * scale).astype(np.uint8)
    mask = _write(case, soft, f"probability_{scale}.nii.gz")
    fragment = f"different non-zero values (1 to {scale})"
    assert_refused_in_one_line(_prepare(case, str(case["out"] / "lge.nii.gz"), mask, "--scar-rule", "nsd"),
                               fragment, capsys, case["out"])
    # the scar-map route (no rule) reads its mask through the same reader
    assert_refused_in_one_line(_prepare(case, str(case["out"] / "lge.nii.gz"), mask, "--normalize-intensities"),
                               fragment, capsys, case["out"])
    # the Slicer Logic's VTK-grid slices are cut by mask_arrays
    image = slices_from_image(case["lge"], slice_indices=[3])
    as_read = sitk.GetImageFromArray(soft.astype(np.float32))
    as_read.CopyInformation(case["labels"])
    with pytest.raises(CardioScarError, match="different non-zero values"):
        mask_arrays(slices_from_image(as_read, slice_indices=[3]), None, "--myocardium-mask", "p.nii.gz", image)


def test_the_lge_as_a_mask_is_named_an_intensity_image(case, capsys):
    lge = str(case["out"] / "lge.nii.gz")
    as_integers = _write(case, np.rint(sitk.GetArrayFromImage(case["lge"]) * 100).astype(np.int16), "lge_int.nii.gz",
                         like="lge")
    assert_refused_in_one_line(_prepare(case, lge, as_integers, "--scar-rule", "nsd"),
                               "a probability map or an intensity image is no mask", capsys, case["out"])


def test_a_mask_off_the_lge_grid_is_named_so(case, capsys):
    """The label map with its first axis turned (another image's direction) lies beside the LGE:
    its labels miss every chosen slice, and the refusal spoke of labels and slice indices only."""
    flipped = sitk.Image(case["labels"])
    direction = np.array(flipped.GetDirection()).reshape(3, 3)
    direction[:, 0] *= -1
    flipped.SetDirection(tuple(direction.ravel()))
    flipped.SetOrigin(tuple(np.array(flipped.GetOrigin()) - 0.5 * np.array(flipped.GetSpacing()) * direction[:, 0]))
    path = case["out"] / "flipped.nii.gz"
    sitk.WriteImage(flipped, str(path))
    assert_refused_in_one_line(_prepare(case, str(case["out"] / "lge.nii.gz"), str(path), "--myocardium-labels", "2",
                                        "--scar-rule", "nsd"), "origin, spacing and direction", capsys, case["out"])


def test_an_lge_as_the_label_map_is_refused_as_an_intensity_image(case, capsys):
    """An 8-bit LGE given as the label map holds its air's grey values 2, 3, 4: with
    ``--myocardium-labels 2,3,4`` the air was the myocardium, and prepare passed with two warnings,
    34 rows all healthy, exit 0. Refused as ``--scar-labels`` refuses one: its values ramp."""
    values = sitk.GetArrayFromImage(case["lge"]).astype(np.float64)
    eight_bits = _write(case, np.rint(values / values.max() * 255).astype(np.uint8), "lge_8bit.nii.gz", like="lge")
    args = _prepare(case, str(case["out"] / "lge.nii.gz"), eight_bits, "--myocardium-labels", "2,3,4",
                    "--scar-rule", "nsd")
    assert_refused_in_one_line(args, "as intensities do: an intensity image (the LGE?)", capsys, case["out"])


def test_the_blood_pool_as_the_myocardium_mask_is_named(case, capsys):
    """A 0/1 mask of the cavity given as the myocardium mask (labels swapped): no ring, so the check
    that the mask lies on this LGE was skipped at the info level, and the run passed with warnings
    that named the mesh; now a warning names the mask. A warning, since a few open basal rings or
    apical caps enclose no cavity either."""
    from cardioscar.cli import main

    cavity = _write(case, (sitk.GetArrayFromImage(case["labels"]) == 1).astype(np.uint8), "cavity.nii.gz")
    capsys.readouterr()
    main([str(a) for a in _prepare(case, str(case["out"] / "lge.nii.gz"), cavity, "--scar-rule", "nsd")])
    assert "encloses no cavity on any of the 5 chosen slices it covers" in capsys.readouterr().err
    (case["out"] / "out.npz").unlink(missing_ok=True)
