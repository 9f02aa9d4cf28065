"""How far across is a heart mesh in millimetres? The line round 19's centimetre warning draws.

Round 19 warns when a mesh given to ``export``, ``aha`` or ``channels`` is under
:data:`cardioscar.simulation.opencarp.CENTIMETRE_DIAGONAL_MM` across (its bounding-box diagonal):
a human heart written in centimetres (as some modelling tools write it) passed the 1-2000 mm unit
check and was exported 10 times too small, its volumes 1,000 times too small. This prints the
diagonal of the myocardium each real label map draws (the box of its voxels' centres, widened by
one voxel: the extent ``mesh-from-labels`` meshes) for EMIDEC's 75 cases (labels 2, 3, 4) and ACDC
patient 101's two frames (label 2), of biv-me's fitted epicardial surface, and of the phantoms'
meshes; then the smallest, and how many fall under the warning's line.

Usage: PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/round19_mesh_diagonals.py \
    [--data ../shared/data]
(its output: results/round19_mesh_diagonals.txt)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from cardioscar.io.meshio import read_mesh
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom
from cardioscar.phantoms.phantom_segmented import SegmentedConfig, make_segmented_phantom
from cardioscar.simulation.opencarp import CENTIMETRE_DIAGONAL_MM


def label_diagonal(path: Path, labels: list[int]) -> float:
    """The bounding-box diagonal (mm) of the voxels holding ``labels``, one voxel edge added per axis."""
    image = sitk.ReadImage(str(path))
    array = sitk.GetArrayFromImage(image)
    k, j, i = np.nonzero(np.isin(np.rint(array), labels))
    corners = np.array([[i.min(), j.min(), k.min()], [i.max(), j.max(), k.max()]], dtype=float)
    ends = np.array([image.TransformContinuousIndexToPhysicalPoint(c) for c in corners])
    spacing = np.array(image.GetSpacing())
    return float(np.linalg.norm(np.abs(ends[1] - ends[0]) + spacing))


def points_diagonal(points: np.ndarray) -> float:
    return float(np.linalg.norm(np.ptp(points, axis=0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared" / "data")
    args = parser.parse_args()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # EMIDEC's sforms' "unexpected scales": not what is measured
    rows: list[tuple[str, float]] = []
    for folder in sorted((args.data / "emidec").glob("Case_*")):
        rows.append((folder.name, label_diagonal(folder / "Contours" / f"{folder.name}.nii.gz", [2, 3, 4])))
    for frame in ("01", "14"):
        rows.append((f"ACDC patient101 frame {frame}",
                     label_diagonal(args.data / "acdc_patient101" / f"patient101_frame{frame}_gt.nii.gz", [2])))
    epicardium = args.data / "bivme_patient1" / "fitted_model_frame000" / "patient1_EPICARDIAL_000.vtk"
    rows.append(("biv-me patient1 epicardial surface", points_diagonal(read_mesh(epicardium).points_lps())))
    rows.append(("demo phantom (40,000 nodes)", points_diagonal(make_phantom(PhantomConfig()).points_lps)))
    rows.append(("phantom seed 3, 1,500 nodes", points_diagonal(make_phantom(PhantomConfig(target_nodes=1500, seed=3)).points_lps)))
    rows.append(("segmented phantom seed 2", points_diagonal(make_segmented_phantom(SegmentedConfig(seed=2, target_nodes=4000)).points_lps)))
    for name, diagonal in rows:
        print(f"{name}: {diagonal:.1f} mm across; in centimetres {diagonal / 10:.1f}")
    values = np.array([diagonal for _, diagonal in rows])
    maps = values[:-4]
    print(f"EMIDEC's and ACDC's label maps: {maps.min():.1f}-{maps.max():.1f} mm across")
    print(f"{len(rows)} hearts: {values.min():.1f}-{values.max():.1f} mm across (median {np.median(values):.1f}); "
          f"under the warning's {CENTIMETRE_DIAGONAL_MM:g} mm: {int((values < CENTIMETRE_DIAGONAL_MM).sum())}; "
          f"the same in centimetres: {(values / 10).min():.1f}-{(values / 10).max():.1f}, under it: "
          f"{int((values / 10 < CENTIMETRE_DIAGONAL_MM).sum())}")


if __name__ == "__main__":
    main()
