"""EMIDEC through the reconstruction: a scar rule's targets on all but one slice, the held-out
slice scored against the expert scar (labels 3-4).

Mesh: one node per myocardial voxel centre (labels 2-4), tetrahedralised. The middle myocardial
slice is held out of `prepare --slice-indices`; after training (fast preset) the nodes of that
slice get scar_probability >= 0.5, compared with the expert scar there. Printed beside it: the rule
applied on the held-out slice itself (what the reconstruction could at best reach) and the
nearest-slice copy of the rule (the neighbouring slice's grades at the same pixel).

    PYTHONPATH=CardioScarLib python Testing/benchmarks/lge_rule_reconstruction_emidec.py nsd Case_P015 Case_P004
"""

import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import numpy_to_vtk

from cardioscar.lge import apply_rule
from cardioscar.lge.prepare import ScarRuleRequest
from cardioscar.logic import PreprocessingRequest, apply_scar_model, prepare_training_data, save_preprocessing_result
from cardioscar.logic import save_trained_model, train_scar_model
from cardioscar.io.meshio import Mesh, write_mesh
from cardioscar.prepare.slices import ijk_to_lps_matrix
from cardioscar.fit.training import TrainingConfig

ROOT = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "emidec"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1))


def voxel_centre_mesh(labels_image: sitk.Image, path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Write a tetrahedral mesh (LPS) whose nodes are the myocardial voxel centres (labels 2-4)
    to ``path``; return the voxels' (k, j, i) indices in node order."""
    k, j, i = np.nonzero(np.isin(sitk.GetArrayFromImage(labels_image), [2, 3, 4]))
    points = (ijk_to_lps_matrix(labels_image) @ np.stack([i, j, k, np.ones_like(i)]).astype(float))[:3].T
    vtk_points = vtk.vtkPoints()
    vtk_points.SetData(numpy_to_vtk(points, deep=1))
    cloud = vtk.vtkPolyData()
    cloud.SetPoints(vtk_points)
    delaunay = vtk.vtkDelaunay3D()
    delaunay.SetInputData(cloud)
    delaunay.Update()
    write_mesh(Mesh(dataset=delaunay.GetOutput(), space="LPS"), path)
    return k, j, i


def run_case(rule: str, name: str, out: Path) -> dict:
    image_path = ROOT / name / "Images" / f"{name}.nii.gz"
    labels_path = ROOT / name / "Contours" / f"{name}.nii.gz"
    labels_image = sitk.ReadImage(str(labels_path))
    labels = sitk.GetArrayFromImage(labels_image)
    image = sitk.GetArrayFromImage(sitk.ReadImage(str(image_path)))
    myocardium = np.isin(labels, [2, 3, 4])
    mesh_path = out / f"{name}.vtk"
    k, j, i = voxel_centre_mesh(labels_image, mesh_path)

    slices_with_myocardium = [s for s in range(len(labels)) if myocardium[s].any()]
    held = slices_with_myocardium[len(slices_with_myocardium) // 2]
    kept = [s for s in range(len(labels)) if s != held]
    request = PreprocessingRequest(mesh_path=mesh_path, image_path=image_path, slice_indices=kept,
                                   slice_thickness_padding=1.0, myocardium_mask=labels_path, myocardium_labels=[2, 3, 4],
                                   scar_rule=ScarRuleRequest(rule=rule, myocardium_path=labels_path,
                                                             myocardium_labels=[2, 3, 4], blood_pool_path=labels_path,
                                                             blood_pool_labels=[1]))
    save_preprocessing_result(prepare_training_data(request), out / f"{name}.npz")
    save_trained_model(train_scar_model(out / f"{name}.npz", TrainingConfig.fast()), out / f"{name}.pth")
    probability = apply_scar_model(out / f"{name}.pth", mesh_path, mc_samples=10, seed=0).mean_predictions

    on_held = k == held
    expert = np.isin(labels[held], [3, 4])[j[on_held], i[on_held]]
    grades = np.stack(apply_rule(rule, list(image), list(myocardium), list(labels == 1)).grades)
    neighbour = min((s for s in kept if myocardium[s].any()), key=lambda s: abs(s - held))
    return {"held_out_slice": held,
            "reconstruction": dice(probability[on_held] >= 0.5, expert),
            "rule_on_held_slice": dice(grades[held][j[on_held], i[on_held]] >= 1, expert),
            "nearest_slice": dice(grades[neighbour][j[on_held], i[on_held]] >= 1, expert)}


def main() -> None:
    sitk.ProcessObject.SetGlobalWarningDisplay(False)
    rule, cases = sys.argv[1], sys.argv[2:]
    with tempfile.TemporaryDirectory() as folder:
        for name in cases:
            scores = run_case(rule, name, Path(folder))
            print(f"{name} {rule}: held-out slice {scores['held_out_slice']}: Dice vs expert: reconstruction "
                  f"{scores['reconstruction']:.3f}, rule on that slice {scores['rule_on_held_slice']:.3f}, "
                  f"nearest slice {scores['nearest_slice']:.3f}")


if __name__ == "__main__":
    main()
