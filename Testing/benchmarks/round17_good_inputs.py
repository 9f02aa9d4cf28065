"""Do round 17's new checks leave good inputs alone? EMIDEC's 75 cases, ACDC's patient 101, the phantoms.

Round 17 added a refusal of a volume spanning over a metre along an index axis (an array in
nibabel's ``[i, j, k]`` order; ``prepare.slices._refuse_metre_long_volume``, run by every reader of
slices) and a warning for a scar map or label map that is scar on over 60 % of the given
myocardium's pixels (an inverted map; ``prepare.myocardium.warn_myocardium_mostly_scar``, run by
the restriction to the myocardium that every face shares). Per case this cuts the LGE and the label
map into slices (the span check), then restricts the experts' scar (labels 3, 4; ACDC: none) to
the myocardium (EMIDEC 2, 3, 4; ACDC 2) over every slice and over the middle third, as ``prepare
--scar-labels 3,4 --myocardium-labels 2,3,4`` does. The phantoms (the demo's, the bad-input
suites' 1,500-node one, three segmented ones with their myocardium masks) go through ``prepare``'s
file route (:func:`cardioscar.logic.prepare_training_data`), all slices and the middle third. One
line per case (refusal, or the warning) and a summary.

Usage: PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/round17_good_inputs.py \
    [--data ../shared/data] [--cases N]
(its output: results/round17_good_inputs.txt)
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path

import numpy as np

from cardioscar.errors import CardioScarError
from cardioscar.io.imageio import read_image
from cardioscar.logic import PreprocessingRequest, prepare_training_data
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom
from cardioscar.phantoms.phantom_segmented import SegmentedConfig
from cardioscar.prepare.myocardium import label_masks, restrict_to_myocardium
from cardioscar.prepare.slices import slices_from_image
from cardioscar.prepare.targets import slice_targets
from mesh_pair_check import _Warnings
from round16_good_inputs import real_cases

#: The words of the round-17 warning.
INVERTED = "is the scar map inverted"


def _thirds(count: int) -> list[tuple[str, list[int] | None]]:
    return [("all", None), ("middle", list(range(count // 3, count - count // 3)))]


def _caught(run) -> list[str]:
    """What ``run()`` met of round 17's checks: its refusal, or the warning."""
    handler, logger = _Warnings(), logging.getLogger("cardioscar")
    logger.addHandler(handler)
    try:
        run()
    except CardioScarError as error:
        return [f"refused: {error}"]
    finally:
        logger.removeHandler(handler)
    return [f"warned: {message}" for message in handler.messages if INVERTED in message]


def judge(image_path: Path, labels_path: Path, myocardium: list[int], scar: list[int]) -> tuple[list[str], float]:
    """Round 17's refusals and warnings on one real case, and the largest share of its myocardium's
    pixels that is scar (all slices, middle third)."""
    found = [f"image: {text}" for text in _caught(lambda: slices_from_image(read_image(image_path)))]
    labels = read_image(labels_path)
    shares = []
    for name, indices in _thirds(labels.GetSize()[2]):
        layers = slices_from_image(labels, slice_indices=indices)

        def restrict() -> None:
            targets = slice_targets(layers, scar, require_scar=False)
            masks = label_masks(layers, myocardium)
            inside = np.concatenate([t.values[m] for t, m in zip(targets, masks)])
            shares.append(float((inside >= 0.5).mean()) if inside.size else 0.0)
            restrict_to_myocardium(targets, masks, f"labels {myocardium}")

        found += [f"{name}: {text}" for text in _caught(restrict)]
    return found, max(shares, default=0.0)


def judge_phantom(folder: Path, config) -> list[str]:
    """The same for a phantom written to ``folder``, through ``prepare``'s file route, with its
    myocardium mask where it has one."""
    phantom = make_phantom(config)
    paths = write_phantom(phantom, folder)
    found: list[str] = []
    for name, indices in _thirds(read_image(paths["image"]).GetSize()[2]):
        request = PreprocessingRequest(mesh_path=paths["mesh"], image_path=paths["image"], slice_indices=indices,
                                       slice_thickness_padding=phantom.slice_half_thickness_mm,
                                       myocardium_mask=paths.get("myocardium_mask"))
        found += [f"{name}: {text}" for text in _caught(lambda: prepare_training_data(request))]
    return found


def main() -> None:
    args, cases = real_cases(__doc__.splitlines()[0])
    acdc = args.data / "acdc_patient101"
    cases.append(("ACDC patient101 ES", acdc / "patient101_frame14.nii.gz", acdc / "patient101_frame14_gt.nii.gz",
                  [2], [4]))
    unexpected = 0
    phantoms = [("demo phantom (cardioscar demo's, 40,000 nodes)", PhantomConfig()),
                ("phantom seed 3, 1,500 nodes (the bad-input suites')", PhantomConfig(target_nodes=1500, seed=3))]
    phantoms += [(f"segmented phantom seed {seed}, with its myocardium mask", SegmentedConfig(seed=seed, target_nodes=4000))
                 for seed in (0, 1, 2)]
    with tempfile.TemporaryDirectory() as scratch:
        for index, (name, config) in enumerate(phantoms):
            found = judge_phantom(Path(scratch) / str(index), config)
            unexpected += bool(found)
            print(f"{name}: {'; '.join(found) or 'passes'}{'  <-- UNEXPECTED' if found else ''}")
    largest = (0.0, "")
    for name, image, labels, myocardium, scar in cases:
        found, share = judge(image, labels, myocardium, scar)
        largest = max(largest, (share, name))
        unexpected += bool(found)
        print(f"{name}: scar {100 * share:.0f}% of the myocardium at most; {'; '.join(found) or 'passes'}"
              f"{'  <-- UNEXPECTED' if found else ''}")
    print(f"{len(phantoms)} phantoms and {len(cases)} real cases: {unexpected} refused or warned; the largest scar "
          f"share of a real myocardium (all slices or the middle third): {100 * largest[0]:.0f}% ({largest[1]}), "
          "warned over 60%")


if __name__ == "__main__":
    main()
