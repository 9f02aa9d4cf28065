"""Leave-one-slice-out on labelled stacks: the myocardium mesh from labels, the held-out scoring and
the EMIDEC benchmark's pipeline (``Testing/benchmarks/bench_emidec_loso.py``).

Real parts throughout: the real EMIDEC case Case_P085 read through SimpleITK, hand-made label
stacks written as NIfTI files and read back, real torch training (a short run) in the pipeline
test. The benchmark's accuracy over the 52 cases is measured by the script, not here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from scipy.spatial import cKDTree
import vtk
from vtk.util.numpy_support import vtk_to_numpy

from cardioscar.evaluate import heldout
from cardioscar.errors import CardioScarError
from cardioscar.prepare.mesh_from_labels import labelled_slices, myocardium_mesh_from_labels
from cardioscar.prepare.slices import slices_from_image
from cardioscar.fit.training import TrainingConfig
from cardioscar.io.meshio import read_mesh
from conftest import SHARED_DATA, run_cli, run_cli_in_process

sys.path.insert(0, str(Path(__file__).resolve().parent / "benchmarks"))
import bench_emidec_loso as bench  # noqa: E402

REAL_CASE = SHARED_DATA / "emidec" / "Case_P085" / "Contours" / "Case_P085.nii.gz"
MYOCARDIUM = (2, 3, 4)


@pytest.fixture(autouse=True, scope="module")
def _quiet_itk():
    """The EMIDEC files make ITK warn about their sform (the qform it uses is right; data README)."""
    sitk.ProcessObject_SetGlobalWarningDisplay(False)
    yield
    sitk.ProcessObject_SetGlobalWarningDisplay(True)


def _labels_at(image: sitk.Image, points: np.ndarray, k: int | None = None) -> np.ndarray:
    """The label of the pixel each LPS point falls in (of slice k, or of the nearest slice)."""
    index = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in points])
    ijk = np.floor(index + 0.5).astype(int)
    if k is not None:
        ijk[:, 2] = k
    ijk = np.clip(ijk, 0, np.array(image.GetSize()) - 1)
    return sitk.GetArrayViewFromImage(image)[ijk[:, 2], ijk[:, 1], ijk[:, 0]]


def _voxel_centres(mesh) -> np.ndarray:
    """LPS centres of the mesh's voxels (the mesh is built in LPS)."""
    centres = vtk.vtkCellCenters()
    centres.SetInputData(mesh.dataset)
    centres.Update()
    return vtk_to_numpy(centres.GetOutput().GetPoints().GetData()).astype(float)


def _ring_stack(scar_degrees: list[tuple[float, float]], direction: np.ndarray | None = None,
                origin=(-40.0, -30.0, -20.0), pixel: float = 1.6, gap: float = 10.0) -> sitk.Image:
    """A stack of identical LV rings (cavity 1 within 12 mm, myocardium 2 to 20 mm), scar (3) on
    slice k between the angles ``scar_degrees[k]`` (an empty range: none)."""
    n = 40
    coords = (np.arange(n) - (n - 1) / 2) * pixel
    xx, yy = np.meshgrid(coords, coords, indexing="xy")
    radius, angle = np.hypot(xx, yy), np.degrees(np.arctan2(yy, xx)) % 360
    planes = []
    for low, high in scar_degrees:
        plane = np.zeros((n, n), dtype=np.uint8)
        plane[radius < 12] = 1
        ring = (radius >= 12) & (radius < 20)
        plane[ring] = 2
        plane[ring & (angle >= low) & (angle < high)] = 3
        planes.append(plane)
    image = sitk.GetImageFromArray(np.stack(planes))
    image.SetSpacing((pixel, pixel, gap))
    image.SetOrigin(origin)
    if direction is not None:
        image.SetDirection(tuple(np.asarray(direction, dtype=float).ravel()))
    return image


def _write_case(root: Path, name: str, image: sitk.Image) -> Path:
    case = root / name
    (case / "Contours").mkdir(parents=True)
    sitk.WriteImage(image, str(case / "Contours" / f"{name}.nii.gz"))
    return case


def _rotation(degrees: float) -> np.ndarray:
    """An oblique, right-handed direction matrix: a rotation about (1, 1, 1)."""
    axis = np.ones(3) / np.sqrt(3.0)
    angle = np.radians(degrees)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def test_real_case_mesh_lies_in_myocardium_and_covers_held_out_slice() -> None:
    image = sitk.ReadImage(str(REAL_CASE))
    labelled = labelled_slices(sitk.GetArrayViewFromImage(image), MYOCARDIUM)
    k = heldout.middle_slice(labelled)
    mesh = myocardium_mesh_from_labels(image, MYOCARDIUM, held_out_k=k)
    points = mesh.points_lps()
    assert mesh.dataset.GetNumberOfCells() > 1000
    voxels = _voxel_centres(mesh)
    gap = image.GetSpacing()[2]
    height = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(p))[2] for p in voxels])
    # voxels near a slice that shaped the mesh lie in its myocardium (the zero level of a signed
    # distance sampled bilinearly shifts the outline by a fraction of a pixel)
    for used in (s for s in labelled if s != k):
        near = np.abs(height - used) * gap < 0.75
        assert near.sum() > 100
        assert np.isin(_labels_at(image, voxels[near], used), MYOCARDIUM).mean() > 0.93
    # the held-out slice's myocardium was interpolated, not read: still mostly right there
    near = np.abs(height - k) * gap < 0.75
    assert np.isin(_labels_at(image, voxels[near], k), MYOCARDIUM).mean() > 0.8
    # nodes are voxel corners: most of them are in myocardium pixels of their nearest slice too
    assert np.isin(_labels_at(image, points), MYOCARDIUM).mean() > 0.7
    # the held-out slice's myocardium is covered: a node within one voxel edge of nearly every
    # myocardium pixel centre, and nodes scored in most of its pixels
    held = slices_from_image(image, "z", [k], gap / 2)[0]
    myocardium = np.isin(held.values, MYOCARDIUM)
    distance, _ = cKDTree(points).query(held.pixel_centres_lps()[myocardium])
    assert np.mean(distance < 1.5) > 0.95
    nodes, _ = heldout.scored_nodes(points, held, gap / 4, MYOCARDIUM, (3, 4))
    pixel = np.floor(held.lps_to_index(points[nodes])[:, :2] + 0.5).astype(int)
    covered = np.unique(pixel[:, 1] * held.shape[1] + pixel[:, 0]).size / myocardium.sum()
    assert covered > 0.75


def test_mesh_ignores_held_out_labels_and_follows_an_oblique_frame() -> None:
    direction = _rotation(35.0)
    image = _ring_stack([(0, 90)] * 5, direction=direction)
    changed = sitk.GetArrayFromImage(image)
    changed[2] = 0  # the held-out slice's labels erased
    other = sitk.GetImageFromArray(changed)
    other.CopyInformation(image)
    mesh = myocardium_mesh_from_labels(image, held_out_k=2)
    np.testing.assert_array_equal(mesh.points_lps(), myocardium_mesh_from_labels(other, held_out_k=2).points_lps())
    # in the oblique LPS frame, the voxels still lie in the ring's pixels, none in the cavity
    labels = _labels_at(image, _voxel_centres(mesh))
    assert np.isin(labels, MYOCARDIUM).mean() > 0.95
    assert not np.any(labels == 1)
    # a held-out set that leaves one labelled slice is refused
    with pytest.raises(CardioScarError, match="at least two"):
        myocardium_mesh_from_labels(image, held_out_k=[0, 1, 2, 3])


def test_middle_slice_and_scored_nodes() -> None:
    assert heldout.middle_slice(range(10)) == 4
    assert heldout.middle_slice([2, 3, 4, 5, 6]) == 4
    with pytest.raises(CardioScarError):
        heldout.middle_slice([3, 4])
    image = _ring_stack([(0, 90)] * 3)
    layer = slices_from_image(image, "z", [1], 5.0)[0]
    centre = layer.pixel_centres_lps()
    normal = layer.normal
    points = np.array([centre[20, 31],                 # ring pixel at 2.5 degrees (18.4 mm from the centre): scar
                       centre[20, 31] + 2.4 * normal,  # same pixel, inside the 2.5 mm half-width
                       centre[20, 31] + 2.5 * normal,  # on the half-open edge: out
                       centre[31, 19],                 # ring at 92.5 degrees, just past the scar
                       centre[20, 20],                 # cavity: not scored
                       centre[20, 8]])                 # ring at 177.5 degrees: healthy
    nodes, truth = heldout.scored_nodes(points, layer, 2.5, MYOCARDIUM, (3, 4))
    np.testing.assert_array_equal(nodes, [0, 1, 3, 5])
    np.testing.assert_array_equal(truth, [1, 1, 0, 0])


def test_scores_on_hand_made_fields() -> None:
    truth = np.array([0, 1, 1, 1, 0, 0], dtype=float)
    probability = np.array([0.05, 0.3, 0.6, 0.8, 0.2, 0.1])
    scores = heldout.held_out_scores(probability, truth, uncertainty=np.array([0.0, 0.9, 0.1, 0.1, 0.2, 0.0]))
    assert scores["dice"] == pytest.approx(0.8)          # 2 of 3 scar nodes, no false positive
    assert scores["best_dice"] == 1.0 and scores["best_threshold"] == 0.21  # lowest threshold above 0.2
    assert scores["auc"] == 1.0
    assert scores["volume_error"] == pytest.approx(-1 / 3)
    # the one wrong node (0.3) has the highest uncertainty; -|p - 0.5| puts the right 0.6 above it
    assert scores["uncertainty_wrong_auc"] == 1.0
    assert scores["margin_wrong_auc"] == pytest.approx(0.8)
    assert heldout.wrong_node_auc(np.zeros(3), np.array([0.9, 0.1, 0.9]), np.array([1.0, 0.0, 1.0])) is None


def test_yardsticks_on_stacks_with_known_answers(tmp_path) -> None:
    same = bench.prepare_case(_write_case(tmp_path, "Case_P901", _ring_stack([(0, 90)] * 5, direction=_rotation(20))))
    assert same.held_out_k == 2 and same.truth.sum() > 20 and (1 - same.truth).sum() > 20
    for name in bench.YARDSTICKS:  # the held-out slice equals its neighbours: both copy it exactly
        assert heldout.held_out_scores(same.yardsticks[name], same.truth)["dice"] == 1.0
    # scar only on the held-out slice: the neighbours say none, so neither yardstick finds it
    alone = bench.prepare_case(_write_case(tmp_path, "Case_P902", _ring_stack([(0, 0)] * 2 + [(0, 90)] + [(0, 0)] * 2)))
    assert alone.truth.sum() > 20
    assert heldout.held_out_scores(alone.yardsticks["nearest_slice"], alone.truth)["dice"] == 0.0
    # the training rows hold no pixel of the held-out slice (k=2), and no non-myocardium pixel
    labels = sitk.GetArrayFromImage(_ring_stack([(0, 90)] * 5))
    used = np.array([0, 1, 3, 4])[same.training.group_slice]
    pixel_labels = labels[used, same.training.group_pixel[:, 1], same.training.group_pixel[:, 0]]
    assert np.isin(pixel_labels, MYOCARDIUM).all()
    np.testing.assert_array_equal(same.training.group_targets, pixel_labels == 3)


def test_run_cases_writes_resumable_records(tmp_path) -> None:
    case = _write_case(tmp_path, "Case_P903", _ring_stack([(0, 90)] * 5))
    output = tmp_path / "loso.jsonl"
    config = TrainingConfig.fast(max_epochs=40, early_stopping_patience=40, seed=1)
    records = bench.run_cases([case], config, output=output, mc_samples=4, mesh_spacing_mm=2.5)
    record = records[0]
    assert record["case"] == "Case_P903" and record["held_out_has_scar"]
    for key in ("dice", "best_dice", "best_threshold", "auc", "volume_error", "uncertainty_wrong_auc",
                "margin_wrong_auc", "uncertainty_on_slices", "uncertainty_held_out", "fit_loss", "explained"):
        assert key in record
    assert record["nearest_slice"]["dice"] == 1.0
    assert 0.0 <= record["fit_loss"] <= record["targets_variance"]
    # each training run with its seed, and the kept run's late rise (a diverged run is seen in the file)
    assert record["attempts"] and record["attempts"][-1][3] is not None and record["late_rise"] is not None
    assert json.loads(output.read_text(encoding="utf-8").splitlines()[0])["case"] == "Case_P903"

    def must_not_train(*_):
        raise AssertionError("a case already in the output was trained again")

    again = bench.run_cases([case], config, train=must_not_train, output=output)
    assert again == records
    summary = bench.summarize(records)
    assert summary["cases_with_scar"] == 1 and summary["wins_dice"]["nearest_slice"] == 1


def test_mesh_from_labels_command(tmp_path) -> None:
    labels = tmp_path / "labels.nii.gz"
    image = _ring_stack([(0, 90)] * 4, direction=_rotation(-25.0))
    sitk.WriteImage(image, str(labels))
    output = tmp_path / "myocardium.vtu"
    done = run_cli("mesh-from-labels", "--labels", labels, "--exclude-slices", "1", "--spacing", "2",
                   "--output", output)
    assert done.returncode == 0, done.stderr
    mesh = read_mesh(output)
    assert mesh.space == "LPS"
    expected = myocardium_mesh_from_labels(sitk.ReadImage(str(labels)), held_out_k=1, spacing_mm=2).points_lps()
    np.testing.assert_allclose(mesh.points_lps(), expected, atol=1e-4)  # written as float32
    # bad input: one line naming the option and the valid range; nothing written
    bad = run_cli_in_process("mesh-from-labels", "--labels", labels, "--exclude-slices", "7",
                             "--output", tmp_path / "bad.vtu")
    assert bad.returncode == 2
    assert "--exclude-slices) is out of range: valid 0-3" in bad.stderr.strip().splitlines()[-1]
    assert "Traceback" not in bad.stderr
    assert not (tmp_path / "bad.vtu").exists()


@pytest.mark.parametrize("mirror", [False, True])
def test_mesh_cells_are_hexahedra_of_positive_volume_in_any_image_direction(mirror) -> None:
    """mesh-from-labels writes VTK hexahedra (a voxel must stay axis-aligned, which an oblique
    direction breaks), and each has a positive volume of one mesh voxel, also when the image's
    direction is mirrored (negative determinant), which turns a naively copied cell inside out."""
    from test_simulation_export import HEX_FACES, _signed_volume

    direction = _rotation(35.0) @ (np.diag([1.0, 1.0, -1.0]) if mirror else np.eye(3))
    mesh = myocardium_mesh_from_labels(_ring_stack([(0, 90)] * 4, direction=direction), spacing_mm=2.0)
    grid = mesh.dataset
    assert {grid.GetCellType(c) for c in range(grid.GetNumberOfCells())} == {vtk.VTK_HEXAHEDRON}
    points = mesh.points_lps()
    cells = vtk_to_numpy(grid.GetCells().GetConnectivityArray()).reshape(-1, 8)
    volumes = [_signed_volume(points[cell], HEX_FACES) for cell in cells[:: max(1, len(cells) // 200)]]
    np.testing.assert_allclose(volumes, 8.0, rtol=1e-6)


def test_mesh_from_labels_ends_with_the_end_slices_slabs() -> None:
    """The mesh along the stack spans the end slices' slabs (half a slice spacing beyond the first
    and last slice) to the nearest voxel layer. Five slices 10 mm apart are 50 mm of slabs, not a
    whole number of 1.5 mm layers: the count was rounded up, and a 34th layer lay beyond the last
    slab, outside the acquired image (EMIDEC P051: 683 of 19,527 exported elements, the AHA base
    1 mm too far)."""
    image = _ring_stack([(0, 0)] * 5)
    mesh = myocardium_mesh_from_labels(image, spacing_mm=1.5)
    k = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(p)) for p in mesh.points_lps()])[:, 2]
    centres = vtk.vtkCellCenters()
    centres.SetInputData(mesh.dataset)
    centres.Update()
    k_centres = np.array([image.TransformPhysicalPointToContinuousIndex(tuple(p))
                          for p in vtk_to_numpy(centres.GetOutput().GetPoints().GetData()).astype(float)])[:, 2]
    assert k_centres.min() >= -0.5 and k_centres.max() <= 4.5  # every element inside the image's slabs
    assert k.min() == pytest.approx(-0.5) and abs(k.max() - 4.5) * 10.0 <= 0.75  # mm: within half a layer


def test_burden_benchmark_against_slice_summation(tmp_path) -> None:
    """``bench_emidec_burden.py``: the experts' slice summation, the yardsticks' burden on the mesh and
    the reconstruction's, on a stack whose every slice holds a quarter of the ring as scar."""
    import bench_emidec_burden as burden_bench

    image = _ring_stack([(0, 90)] * 5)
    labels = sitk.GetArrayFromImage(image)
    share = (labels == 3).sum() / np.isin(labels, (2, 3)).sum()
    assert 0.2 < share < 0.3
    case = _write_case(tmp_path, "Case_P904", image)
    config = TrainingConfig.fast(max_epochs=60, early_stopping_patience=60, seed=1)
    record = burden_bench.run_case(case, ["auto", "off"], mc_samples=4, config=config, mesh_spacing_mm=2.5)
    assert record["expert"] == pytest.approx(share)
    # the same scar on every slice: copying the nearest slice onto the mesh keeps the share
    assert record["nearest_slice"] == pytest.approx(share, abs=0.03)
    assert record["prior_used_auto"] and not record["prior_used_off"]  # 0/1 labels over one stack
    for setting in ("auto", "off"):
        assert 0.0 <= record[f"recon_{setting}"] <= 1.0 and 0.0 <= record[f"on_slice_dice_{setting}"] <= 1.0
        # the kept fit's ignored groups (the stall test's figures), each run's seed and share
        assert 0 <= record[f"ignored_scar_groups_{setting}"] <= record[f"ignored_groups_{setting}"]
        assert record[f"attempt_ignored_{setting}"][0][0] == 1 and record[f"ignored_share_{setting}"] >= 0.0
    rows = [{"expert": 0.10, "nearest_slice": 0.12, "logodds": 0.08, "recon_auto": 0.11},
            {"expert": 0.20, "nearest_slice": 0.20, "logodds": 0.18, "recon_auto": 0.23}]
    summary = burden_bench.summarize(rows, ["auto"])
    assert summary["nearest_slice"]["bias_points"] == pytest.approx(1.0)
    assert summary["logodds"]["bias_points"] == pytest.approx(-2.0)
    assert summary["recon_auto"]["bias_points"] == pytest.approx(2.0)
    assert summary["recon_auto"]["sd_points"] == pytest.approx(np.std([1.0, 3.0], ddof=1))


@pytest.mark.parametrize("labels", ["234", [2, 3.7], (True,)])
def test_mesh_from_labels_refuses_label_values_that_are_not_whole_numbers(labels) -> None:
    """The Python API read ``labels`` with ``int(v)``: the text "234" meshed labels 2, 3, 4 by
    accident, 3.7 became 3 and True label 1 (the cavity); now a one-line error, as prepare's fields."""
    with pytest.raises(CardioScarError, match="must (be a list of|hold) whole label values"):
        myocardium_mesh_from_labels(_ring_stack([(0, 90)] * 3), labels)
