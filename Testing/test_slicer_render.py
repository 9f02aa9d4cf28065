"""Offscreen rendering of the result through Slicer's own 3D displayable managers.

Checks what a user would see: the mesh is drawn in colours of the CardioScar probability table,
mapped on the fixed 0-1 range (not stretched to the data), and the colour legend is drawn.
Needs Mesa's software EGL (Debian: libegl1 libegl-mesa0 libgl1-mesa-dri).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic import results  # noqa: E402
from CardioScarLogic.render import OffscreenThreeDView  # noqa: E402
from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom  # noqa: E402

BLACK = (0.0, 0.0, 0.0)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Phantom loaded through storage nodes, a 3D view attached, then the Logic run."""
    folder = tmp_path_factory.mktemp("render")
    phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3))
    paths = write_phantom(phantom, folder)
    context = csl.create_scene()
    volume = csl.load_volume(context.scene, paths["image"])
    model = csl.load_model(context.scene, paths["mesh"])
    view = OffscreenThreeDView(context.scene, context.application_logic, size=(400, 400), background=BLACK)
    logic = csl.CardioScarLogic(context.scene, context.color_logic)
    options = csl.ReconstructionOptions(preset="documented", max_epochs=40, half_thickness=phantom.slice_half_thickness_mm,
                                        num_threads=1, seed=5)
    result = logic.train_and_apply(volume, model, options)
    yield context, model, view, result, folder
    view.close()


def _table_colors() -> np.ndarray:
    return np.round(results.probability_colors() * 255.0)


def _nearest_table_index(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest table colour for each pixel, and its RGB distance."""
    distances = np.linalg.norm(pixels[:, None, :].astype(float) - _table_colors()[None, :, :], axis=2)
    return distances.argmin(axis=1), distances.min(axis=1)


def _foreground(image: np.ndarray, erode: int = 2) -> np.ndarray:
    """Pixels away from the black background by ``erode`` pixels (no blended silhouette edges)."""
    mask = image.astype(int).sum(axis=2) > 30
    inner = mask.copy()
    for dy in range(-erode, erode + 1):
        for dx in range(-erode, erode + 1):
            inner &= np.roll(np.roll(mask, dy, axis=0), dx, axis=1)
    return inner


def _mesh_pixels(image: np.ndarray) -> np.ndarray:
    return image[_foreground(image)]


def test_mesh_is_drawn_in_probability_colours_on_the_fixed_range(rendered):
    context, model, view, result, folder = rendered
    display = model.GetDisplayNode()
    display.SetAmbient(1.0)  # unlit: a pixel shows its colour-table entry exactly
    display.SetDiffuse(0.0)
    display.SetSpecular(0.0)
    result.legend_node.SetVisibility(False)  # mesh only (the legend is checked below)
    try:
        image = view.capture(model, azimuth=30, elevation=20, path=folder / "probability.png")
    finally:
        result.legend_node.SetVisibility(True)
    assert (folder / "probability.png").stat().st_size > 1000

    mesh = _mesh_pixels(image)
    assert len(mesh) > 0.05 * image.shape[0] * image.shape[1]
    index, distance = _nearest_table_index(mesh)
    assert np.mean(distance < 8.0) > 0.97, "mesh pixels must be colours of the probability table"

    # Fixed 0-1 range: table index ~ 255 * probability, never stretched to the data's max.
    low, high = float(result.probability.min()), float(result.probability.max())
    assert high < 0.9, "this check needs probabilities below 1"
    seen = index[distance < 8.0]
    assert seen.max() <= np.ceil(high * 255) + 3
    assert seen.min() >= np.floor(low * 255) - 3


def test_colour_check_fails_without_scalar_colouring(rendered):
    """Control: with scalar colouring off the same check rejects the image."""
    context, model, view, result, folder = rendered
    display = model.GetDisplayNode()
    display.SetScalarVisibility(False)
    display.SetColor(0.2, 0.8, 0.2)
    result.legend_node.SetVisibility(False)
    try:
        mesh = _mesh_pixels(view.capture(model, azimuth=30, elevation=20))
        _, distance = _nearest_table_index(mesh)
        assert np.mean(distance < 8.0) < 0.05
    finally:
        display.SetScalarVisibility(True)
        result.legend_node.SetVisibility(True)


def test_colour_legend_is_drawn_with_the_whole_table(rendered):
    context, model, view, result, folder = rendered
    image = view.capture(model)
    mask = _foreground(image, erode=1)
    mask[:, : int(image.shape[1] * 0.75)] = False
    index, distance = _nearest_table_index(image[mask])
    on_table = index[distance < 6.0]
    assert on_table.size > 200
    assert on_table.min() < 20 and on_table.max() > 235, "the legend bar spans 0 to 1"


def test_snapshot_view_is_removed_on_close(rendered):
    context, model, view, result, folder = rendered
    extra = OffscreenThreeDView(context.scene, context.application_logic, size=(64, 64))
    view_id = extra.view_node.GetID()
    assert context.scene.GetNodeByID(view_id) is not None
    extra.close()
    assert context.scene.GetNodeByID(view_id) is None
