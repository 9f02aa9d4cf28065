"""Do round 16's new checks leave good inputs alone? EMIDEC's 75 cases, ACDC's patient 101, the phantoms.

Round 16 added to the reconstruction path: a refusal of image direction matrices that are not
orthonormal (:func:`cardioscar.io.imageio.check_direction`), a centimetre refusal that also weighs
the slab widths (``prepare.mapping._check_not_centimetres``), and three warnings: a scar map with
no scar on the chosen slices, one that is scar on most of the pixels the mesh's nodes lie on
(``prepare.myocardium.warn_scar_map_on_the_mesh``), and parallel slices that all lie at one end of
the mesh (``prepare.mapping.warn_slices_at_one_end``). Per case this reads the LGE and the label
map with :func:`read_image`, meshes the myocardium (``mesh-from-labels`` at 3 mm), and prepares
the experts' scar (labels 3, 4; none on ACDC) as a scar map over every slice, with the slab
half-width half the slice spacing, through :func:`cardioscar.logic.prepare_from_slices` (every
face's shared step); then the same with the middle third of the slices. Three phantoms (the
demo's, the bad-input suites' 1,500-node one, a segmented one) go through ``prepare``'s file route
with their scar-fraction maps, all slices and the middle third. It prints one line per
case (refusal, or the round-16 warnings raised) and a summary: a good input is neither refused
nor warned, except "no scar" where the experts drew none on the chosen slices (EMIDEC's N cases,
P055, ACDC, and the middle third of a case whose infarct lies outside it), which is the truth.

Usage: PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/round16_good_inputs.py \
    [--data ../shared/data] [--cases N]
(its output: results/round16_good_inputs.txt)
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from pathlib import Path

from cardioscar.errors import CardioScarError
from cardioscar.io.imageio import read_image
from cardioscar.logic import PreprocessingRequest, prepare_from_slices, prepare_training_data
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom
from cardioscar.phantoms.phantom_segmented import SegmentedConfig
from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels
from cardioscar.prepare.slices import slices_from_image
from cardioscar.prepare.targets import slice_targets
from mesh_pair_check import _Warnings

#: The words that open each round-16 warning.
ROUND16 = {"no scar": "No pixel of the chosen slices is scar", "mostly scar": "of the pixels the mesh's nodes lie on",
           "one end": "lie at one end of the mesh"}


def judge(image_path: Path, labels_path: Path, myocardium: list[int], scar: list[int]) -> list[str]:
    """The round-16 refusals and warnings a good case meets: all slices, then the middle third."""
    read_image(image_path)
    labels = read_image(labels_path)
    points = myocardium_mesh_from_labels(labels, myocardium, spacing_mm=3.0).points_lps()
    half = labels.GetSpacing()[2] / 2
    found: list[str] = []
    count = labels.GetSize()[2]
    for name, indices in (("all", None), ("middle", list(range(count // 3, count - count // 3)))):
        layers = slice_targets(slices_from_image(labels, slice_indices=indices, half_thickness=half), scar,
                               require_scar=False)
        scar_free = not any((layer.values >= 0.5).any() for layer in layers)
        handler, logger = _Warnings(), logging.getLogger("cardioscar")
        logger.addHandler(handler)
        try:
            prepare_from_slices(points, layers)
        except CardioScarError as error:
            found.append(f"{name}: refused: {error}")
        finally:
            logger.removeHandler(handler)
        found += [f"{name}: {kind}" + (" (none drawn: right)" if kind == "no scar" and scar_free else "")
                  for kind, words in ROUND16.items() if any(words in message for message in handler.messages)]
    return found


def judge_phantom(folder: Path, config) -> list[str]:
    """The same for a phantom written to ``folder``: its mesh and scar map through ``prepare``'s
    file route (:func:`prepare_training_data`), with all its slices and with the middle third."""
    phantom = make_phantom(config)
    paths = write_phantom(phantom, folder)
    count = read_image(paths["image"]).GetSize()[2]
    found: list[str] = []
    for name, indices in (("all", None), ("middle", list(range(count // 3, count - count // 3)))):
        handler, logger = _Warnings(), logging.getLogger("cardioscar")
        logger.addHandler(handler)
        try:
            prepare_training_data(PreprocessingRequest(mesh_path=paths["mesh"], image_path=paths["image"],
                                                       slice_indices=indices,
                                                       slice_thickness_padding=phantom.slice_half_thickness_mm))
        except CardioScarError as error:
            found.append(f"{name}: refused: {error}")
        finally:
            logger.removeHandler(handler)
        found += [f"{name}: {kind}" for kind, words in ROUND16.items()
                  if any(words in message for message in handler.messages)]
    return found


def real_cases(description: str) -> tuple[argparse.Namespace, list[tuple]]:
    """The command line's ``--data`` and ``--cases``, and the real cases they name: (name, image,
    label map, myocardium labels, scar labels) of each EMIDEC case and of ACDC 101's ED frame."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    parser.add_argument("--cases", type=int, default=None, help="the first N EMIDEC cases only")
    args = parser.parse_args()
    logging.getLogger("cardioscar").setLevel(logging.WARNING)
    cases = [(folder.name, folder / "Images" / f"{folder.name}.nii.gz", folder / "Contours" / f"{folder.name}.nii.gz",
              [2, 3, 4], [3, 4]) for folder in sorted((args.data / "emidec").glob("Case_*"))][:args.cases]
    acdc = args.data / "acdc_patient101"
    cases.append(("ACDC patient101 ED", acdc / "patient101_frame01.nii.gz", acdc / "patient101_frame01_gt.nii.gz",
                  [2], [4]))
    return args, cases


def main() -> None:
    _, cases = real_cases(__doc__.splitlines()[0])
    unexpected = 0
    phantoms = [("demo phantom (cardioscar demo's, 40,000 nodes)", PhantomConfig()),
                ("phantom seed 3, 1,500 nodes (the bad-input suites')", PhantomConfig(target_nodes=1500, seed=3)),
                ("segmented phantom seed 2", SegmentedConfig(seed=2, target_nodes=4000))]
    with tempfile.TemporaryDirectory() as scratch:
        for index, (name, config) in enumerate(phantoms):
            found = judge_phantom(Path(scratch) / str(index), config)
            unexpected += bool(found)
            print(f"{name}: {'; '.join(found) or 'passes'}{'  <-- UNEXPECTED' if found else ''}")
    for name, image, labels, myocardium, scar in cases:
        try:
            found = judge(image, labels, myocardium, scar)
        except CardioScarError as error:
            found = [f"read: refused: {error}"]
        wrong = [item for item in found if not item.endswith("(none drawn: right)")]
        unexpected += bool(wrong)
        print(f"{name}: {'; '.join(found) or 'passes'}{'  <-- UNEXPECTED' if wrong else ''}")
    print(f"{len(cases) + len(phantoms)} cases, {unexpected} with an unexpected refusal or warning")


if __name__ == "__main__":
    main()
