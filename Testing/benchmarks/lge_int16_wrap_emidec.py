"""The wrapped-int16 refusal (``lge.rules.refuse_wrapped_int16``) on the real data: does it pass every
valid stack, signed ones included, and catch the wrapped ones?

For each of EMIDEC's 75 LGE stacks (myocardium 2,3,4) and ACDC patient 101's two frames, n-SD is run
through ``lge.rules.apply_rule`` (as every face grades) on all slices of:

* ``stored``: the stack as stored (must pass);
* ``wrap x16`` / ``wrap x12``: the stack times 16 (12), stored as uint16 and read as int16, so every
  value over 32767 wrapped (must be refused; EMIDEC only, whose 0-4095 range crosses 32767 then);
* ``signed``: EMIDEC less 2048 (its zero signal: a signed PSIR image) at int16's range: min-max scaled
  over the non-zero pixels, and times 16, 24 and 32 clipped to int16 (must pass).

Printed: the refused count per variant and the shares of pixels within 2048 of each end of int16's range
(the ends themselves not counted), the smaller of the two per stack: its least over the wrapped stacks
and its most over the valid ones (``MIN_WRAPPED_SHARE`` refuses at 1 %); and n-SD's scar pixels on
P015 stored and wrapped x16 if the refusal were skipped.

Usage: OMP_NUM_THREADS=1 PYTHONPATH=CardioScarLib python Testing/benchmarks/lge_int16_wrap_emidec.py
       [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import logging
from collections import defaultdict
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.errors import CardioScarError
from cardioscar.lge import rules
from cardioscar.lge.rules import INT16_MAX, INT16_MIN, WRAP_BAND, apply_rule
from lge_grey_levels_emidec import cases


def wrapped(image: np.ndarray, factor: int) -> np.ndarray:
    return np.rint(image * factor).astype(np.int64).astype(np.uint16).view(np.int16)


def signed_variants(image: np.ndarray) -> dict[str, np.ndarray]:
    psir = image - 2048.0
    nonzero = image > 0
    low, high = psir[nonzero].min(), psir[nonzero].max()
    full = np.where(nonzero, np.rint((psir - low) / (high - low) * 65535 + INT16_MIN), 0.0)
    return {"signed min-max": full, **{f"signed x{f} clipped": np.clip(np.rint(psir * f), INT16_MIN, INT16_MAX)
                                       for f in (16, 24, 32)}}


def share(values: np.ndarray) -> float:
    """The smaller of the shares of pixels within WRAP_BAND of each end (the ends not counted)."""
    low = ((values > INT16_MIN) & (values <= INT16_MIN + WRAP_BAND)).mean()
    high = ((values < INT16_MAX) & (values >= INT16_MAX - WRAP_BAND)).mean()
    return float(min(low, high))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    refused, shares, runs = defaultdict(int), defaultdict(list), defaultdict(int)
    for name, image_path, labels_path, myocardium, _, _ in cases(args.data):
        image = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path))).astype(np.float64)
        labels = sitk.GetArrayFromImage(sitk.ReadImage(str(labels_path)))
        variants = {"stored": image}
        if not name.startswith("ACDC"):
            variants |= {"wrap x16": wrapped(image, 16).astype(np.float64),
                         "wrap x12": wrapped(image, 12).astype(np.float64), **signed_variants(image)}
        for variant, values in variants.items():
            runs[variant] += 1
            shares[variant].append((share(values), name))
            try:
                apply_rule("nsd", list(values), [np.isin(s, myocardium) for s in labels], slice_names=[
                    f"{name} k={k}" for k in range(len(values))])
            except CardioScarError as error:
                refused[variant] += 1
                if not variant.startswith("wrap"):
                    print(f"  {name} {variant} refused: {str(error)[:160]}")
    for variant in runs:
        least, most = min(shares[variant]), max(shares[variant])
        print(f"{variant:22s} refused {refused[variant]:2d} of {runs[variant]:2d}; smaller end share "
              f"{100 * least[0]:.3f} % ({least[1]}) to {100 * most[0]:.3f} % ({most[1]})")
    p015 = next(c for c in cases(args.data) if c[0] == "Case_P015")
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(p015[1]))).astype(np.float64)
    myo = [np.isin(s, p015[3]) for s in sitk.GetArrayFromImage(sitk.ReadImage(str(p015[2])))]

    def scar(values: np.ndarray) -> int:
        return sum(s["border_pixels"] + s["core_pixels"] for s in apply_rule("nsd", list(values), myo).statistics)

    check, rules.refuse_wrapped_int16 = rules.refuse_wrapped_int16, lambda images, names: None
    try:
        print(f"P015 n-SD scar pixels: stored {scar(image)}, wrapped x16 with the refusal skipped "
              f"{scar(wrapped(image, 16).astype(np.float64))}")
    finally:
        rules.refuse_wrapped_int16 = check


if __name__ == "__main__":
    main()
