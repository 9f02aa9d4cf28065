"""Round 13's refusals on the real data: do they pass every valid stack and catch the coarse ones?

For each of EMIDEC's 75 LGE stacks (myocardium 2,3,4; blood pool 1; ``fwhm`` and ``iir`` with
``--intensity-offset 2048``) and ACDC patient 101's two frames the tests use (cine, myocardium 2,
cavity 3; no offset), every scar rule is run through ``lge.rules.apply_rule`` as ``prepare`` runs it:

* ``valid``: the stack as stored; refused (must be 0), the smallest span of the rule's border zone in
  grey-level steps over its slices (``MIN_BORDER_ZONE_STEPS`` refuses under 2), and the slices whose
  enhancement test fell back to the whole myocardium (no sector of ``MIN_ENHANCEMENT_PIXELS``);
* ``3 bits`` / ``4 bits``: the same stack quantised to 8 / 16 grey levels over the heart's
  intensities (0.5th-99.5th percentiles of labels 1-4): how many are now refused;
* the mask checks on each label map: ``io.checks.check_mask_values`` on the map read without labels and
  on its myocardium as a 0/1 mask; prepare's reader (``masks_from_image``, which runs them and
  ``refuse_intensity_map``) on the LGE's slices with the myocardium labels, the blood-pool label and the
  0/1 myocardium: refused (must be 0); and the LGE itself in 8 bits (its range to 0..255) given as
  the label map with the myocardium labels: refused (should be all).

Usage: OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/lge_grey_levels_emidec.py
       [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import logging
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.errors import CardioScarError
from cardioscar.io.checks import check_mask_values
from cardioscar.lge.rules import apply_rule
from cardioscar.prepare.myocardium import masks_from_image
from cardioscar.prepare.slices import slices_from_image

RULES = ("nsd", "fwhm", "psi", "iir")


def cases(data: Path) -> list[tuple[str, Path, Path, list[int], int, float]]:
    """(name, image, label map, myocardium labels, blood-pool label, offset of zero signal) per stack."""
    emidec = sorted(p for p in (data / "emidec").iterdir() if p.is_dir())
    found = [(p.name, p / "Images" / f"{p.name}.nii.gz", p / "Contours" / f"{p.name}.nii.gz", [2, 3, 4], 1, 2048.0)
             for p in emidec]
    acdc = data / "acdc_patient101"
    return found + [(f"ACDC {f}", acdc / f"patient101_{f}.nii.gz", acdc / f"patient101_{f}_gt.nii.gz", [2], 3, 0.0)
                    for f in ("frame01", "frame14")]


def quantised(image: np.ndarray, heart: np.ndarray, bits: int) -> np.ndarray:
    low, high = np.percentile(image[heart], [0.5, 99.5])
    return np.clip(np.floor((image - low) / (high - low) * 2**bits), 0, 2**bits - 1) + 1


def grade(rule: str, image: np.ndarray, labels: np.ndarray, myocardium: list[int], blood: int,
          offset: float) -> tuple[str, float | None, int]:
    """outcome, the smallest border-zone span in grey-level steps, slices tested on the whole ring."""
    try:
        result = apply_rule(rule, list(image), [np.isin(s, myocardium) for s in labels],
                            [s == blood for s in labels], intensity_offset=offset if rule in ("fwhm", "iir") else 0.0)
    except CardioScarError as error:
        return "refused: " + str(error)[:90], None, 0
    spans = []
    for record, pixels, mask in zip(result.statistics, image, labels):
        inside = pixels[np.isin(mask, myocardium)]
        if record.get("border_level") is not None and np.unique(inside).size > 1:
            spans.append((record["core_level"] - record["border_level"]) / np.diff(np.unique(inside)).min())
    return "passed", (min(spans) if spans else None), sum("enhancement_reference" in s for s in result.statistics)


def read_masks(image: sitk.Image, labels: np.ndarray, label_image: sitk.Image, myocardium: list[int],
               blood: int) -> tuple[int, int]:
    """(valid masks refused, of them) through prepare's reader on the LGE's slices with myocardium, and
    whether the LGE in 8 bits as the label map was refused (1) or not (0)."""
    layers = slices_from_image(image)
    wall = sitk.GetImageFromArray(np.isin(labels, myocardium).astype(np.uint8))
    wall.CopyInformation(label_image)
    refused = 0
    for mask, wanted, what in ((label_image, myocardium, "--myocardium-mask"),
                               (label_image, [blood], "--blood-pool-mask"), (wall, None, "--myocardium-mask")):
        try:
            masks_from_image(mask, layers, wanted, "valid", what)
        except CardioScarError as error:
            refused += 1
            print(f"valid mask {what} {wanted} refused: {error}")
    pixels = sitk.GetArrayFromImage(image).astype(np.float64)
    eight_bits = sitk.GetImageFromArray(np.rint((pixels - pixels.min()) / np.ptp(pixels) * 255).astype(np.uint8))
    eight_bits.CopyInformation(image)
    try:
        masks_from_image(eight_bits, layers, myocardium, "lge", "--myocardium-mask")
        return refused, 0
    except CardioScarError:
        return refused, 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2].parent / "shared" / "data")
    data = parser.parse_args().data
    logging.disable(logging.WARNING)
    outcomes: dict[tuple[str, str], Counter] = defaultdict(Counter)
    smallest: dict[str, tuple[float, str]] = {}
    whole_ring, mask_refused, lge_as_map_refused, total = 0, 0, 0, 0
    for name, image_path, labels_path, myocardium, blood, offset in cases(data):
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path))).astype(np.float64)
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path)))
        total += 1
        for values in (labels, np.isin(labels, myocardium).astype(np.uint8)):
            try:
                check_mask_values(values, name)
            except CardioScarError:
                mask_refused += 1
        heart = labels > 0
        label_image = sitk.ReadImage(str(labels_path))
        wrong, caught = read_masks(sitk.ReadImage(str(image_path)), labels, label_image, myocardium, blood)
        mask_refused += wrong
        lge_as_map_refused += caught
        for rule in RULES:
            outcome, span, small = grade(rule, image, labels, myocardium, blood, offset)
            outcomes[("valid", rule)][outcome.split(":")[0]] += 1
            whole_ring += small
            if outcome != "passed":
                print(f"{name} {rule} valid stack {outcome}")
            if span is not None and span < smallest.get(rule, (np.inf, ""))[0]:
                smallest[rule] = (span, name)
            for bits in (3, 4):
                coarse, _, _ = grade(rule, quantised(image, heart, bits), labels, myocardium, blood, 0.0)
                outcomes[(f"{bits} bits", rule)][coarse.split(":")[0]] += 1
    print(f"{total} stacks (75 EMIDEC, 2 ACDC)")
    for (kind, rule), counts in sorted(outcomes.items()):
        print(f"{kind:7s} {rule:4s} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    for rule, (span, name) in sorted(smallest.items()):
        print(f"valid {rule}: smallest border zone {span:.1f} grey-level steps ({name})")
    print(f"slices whose enhancement test used the whole ring: {whole_ring}")
    print(f"valid masks refused: {mask_refused} of {5 * total} "
          "(check_mask_values on 2 per stack, prepare's reader on 3)")
    print(f"the LGE in 8 bits as the label map (myocardium labels) refused: {lge_as_map_refused} of {total}")


if __name__ == "__main__":
    main()
