"""The documented examples of the existing tool run unchanged against our package.

The code is read straight from the API reference beside the checkout
(``../shared/spec/cardioscar-api-reference.md``), so a renamed function, a changed default or a
missing result field breaks this test. Examples 4 and 5 are fragments that rely on the names
imported by Example 1; they run after Example 1's imports (``Path`` and
``from cardioscar.logic import *``), as a user pasting them below Example 1 would. The files the examples name are made from a small phantom
whose slices are fully scarred (every pixel 1.0): the documented default training of Example 1
(patience 500, up to 10,000 epochs) then converges exactly and stops by itself after about a
thousand epochs, which keeps this compatibility test short. Accuracy is tested elsewhere.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from conftest import REPO_ROOT

EXAMPLE_1_IMPORTS = "from pathlib import Path\nfrom cardioscar.logic import *\n"
SPEC = REPO_ROOT.parent / "shared" / "spec" / "cardioscar-api-reference.md"


def _example_code(number: int) -> str:
    text = SPEC.read_text(encoding="utf-8")
    section = re.search(rf"### Example {number}:.*?```python\n(.*?)```", text, re.S)
    assert section, f"Example {number} not found in {SPEC}"
    return section.group(1)


def _scarred_where_the_mesh_is(layer, points: np.ndarray) -> np.ndarray:
    """Scar (1) in the pixels the mesh's nodes fall in (grown by a pixel), no data (NaN) elsewhere:
    constant targets, so that the documented default training stops by itself, on a scar the mesh
    covers (a map scarred over its whole field of view is refused as another heart's scar)."""
    from scipy.ndimage import binary_dilation

    normal = np.cross(layer.axis_i, layer.axis_j)
    offsets = points - layer.origin
    inside = np.abs(offsets @ (normal / np.linalg.norm(normal))) <= layer.half_thickness
    i = np.rint(offsets[inside] @ layer.axis_i / layer.spacing[0]).astype(int)
    j = np.rint(offsets[inside] @ layer.axis_j / layer.spacing[1]).astype(int)
    rows, cols = layer.shape
    keep = (i >= 0) & (i < cols) & (j >= 0) & (j < rows)
    caught = np.zeros(layer.shape, bool)
    caught[j[keep], i[keep]] = True
    return np.where(binary_dilation(caught), 1.0, np.nan)


@pytest.fixture(scope="module")
def example_dir(tmp_path_factory):
    """A working folder holding every file the examples name."""
    from cardioscar.logic import PreprocessingRequest, prepare_training_data, save_preprocessing_result
    from cardioscar.io.meshio import read_mesh, write_mesh
    from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom
    from cardioscar.prepare.slices import slice_to_vtk_grid, slices_from_image

    root = tmp_path_factory.mktemp("examples")
    phantom = make_phantom(PhantomConfig(target_nodes=1000, seed=5, slice_gap_mm=8.0))  # the smallest phantom
    paths = write_phantom(phantom, root / "phantom")
    layers = slices_from_image(sitk.ReadImage(str(paths["image"])))
    assert len(layers) >= 10
    data = root / "data"
    data.mkdir()
    points = read_mesh(paths["mesh"]).points_lps()
    for i, layer in enumerate(layers[:10]):
        slice_to_vtk_grid(dataclasses.replace(layer, values=_scarred_where_the_mesh_is(layer, points)),
                          data / f"slice_{i}.vtk")
    # Example 3 reads it and runs its fixed 1,000 epochs over every row: three slices keep that short
    request = PreprocessingRequest(mesh_path=paths["mesh"], vtk_grid_paths=sorted(data.glob("slice_*.vtk"))[:3])
    save_preprocessing_result(prepare_training_data(request), root / "training.npz")
    mesh = read_mesh(paths["mesh"])
    targets = [data / "heart.vtk", data / "patient2_heart.vtk", root / "mesh.vtk"]
    targets += [data / f"P00{i}" / "mesh.vtk" for i in range(1, 5)]
    for target in targets:
        write_mesh(mesh, target, {})
    return root


@pytest.fixture
def in_example_dir(example_dir):
    previous = Path.cwd()
    os.chdir(example_dir)
    try:
        yield example_dir
    finally:
        os.chdir(previous)


def test_example_1_basic_workflow(in_example_dir, capsys):
    exec(compile(_example_code(1), "example_1", "exec"), {"__name__": "example_1"})
    out = capsys.readouterr().out
    assert "Prepared" in out and "Training converged at epoch" in out and "Mean uncertainty" in out
    assert (in_example_dir / "data" / "training.npz").is_file()
    assert (in_example_dir / "models" / "scar.pth").is_file()
    assert (in_example_dir / "results" / "patient2_scar.vtk").is_file()


def test_example_3_custom_training_loop(in_example_dir, capsys):
    exec(compile(_example_code(3), "example_3", "exec"), {"__name__": "example_3"})
    losses = [float(v) for v in re.findall(r"Loss = ([0-9.e-]+)", capsys.readouterr().out)]
    assert len(losses) == 1000
    assert np.mean(losses[-50:]) < np.mean(losses[:50])


def test_example_4_cohort(in_example_dir, caplog):
    (in_example_dir / "models").mkdir(exist_ok=True)
    if not (in_example_dir / "models" / "scar.pth").exists():
        exec(compile(_example_code(1), "example_1", "exec"), {"__name__": "example_1"})
    namespace = {"__name__": "example_4"}
    exec(EXAMPLE_1_IMPORTS, namespace)
    with caplog.at_level(logging.INFO):
        exec(compile(_example_code(4), "example_4", "exec"), namespace)
    assert "Failed" not in caplog.text
    for patient in ("P001", "P002", "P003", "P004"):
        assert (in_example_dir / "results" / "cohort_study" / f"{patient}_scar.vtk").is_file()


def test_example_5_quality_control(in_example_dir, capsys):
    import shutil

    if not (in_example_dir / "models" / "scar.pth").exists():
        exec(compile(_example_code(1), "example_1", "exec"), {"__name__": "example_1"})
    shutil.copy(in_example_dir / "models" / "scar.pth", in_example_dir / "model.pth")
    namespace = {"__name__": "example_5"}
    exec(EXAMPLE_1_IMPORTS, namespace)
    exec(compile(_example_code(5), "example_5", "exec"), namespace)
    out = capsys.readouterr().out
    assert re.search(r"Flagged [0-9.]+% of nodes", out) and "Recommendation:" in out
