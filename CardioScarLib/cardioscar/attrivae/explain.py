"""Attention maps, pictures and traversals of one case, written into an output folder.

``attention_<attribute>.nii.gz``: the Grad-CAM of the attribute's latent dimension, placed back on
the input image's grid (same size, spacing, origin, direction; 0 outside the LV crop), float32 in
[0, 1]. ``explain.png``: short-axis slices through the LV with each map over the image, the LV
outlined in white and the experts' infarct (labels 3 and 4 where the label map has them as
myocardium, EMIDEC's) in magenta, so that one sees whether the attention sits on the infarct.
``traversal_<attribute>.png``: decoded mid-ventricular slices as the attribute's dimension sweeps
its training range. ``explain.json`` lists them, and under ``empty_attention`` the attributes whose
map is 0 everywhere (nothing raises their dimension for this case; warned, and so titled in the
PNG). Nothing is written until every map and traversal is computed; then the files are placed as
one set (all of them, or the earlier ones kept), and an earlier explanation's maps and traversals of
attributes this one does not explain are removed with it.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import SimpleITK as sitk

from cardioscar.io.atomic import atomic_write_set
from cardioscar.io.figures import new_figure, render_figure
from cardioscar.attrivae.attributes import ALL_ATTRIBUTES, UNITS
from cardioscar.attrivae.explain_files import attention_file, earlier_explanation_files, say_removed, traversal_file
from cardioscar.attrivae.gradcam import latent_gradcam
from cardioscar.attrivae.predict import Prediction, attribute_readout
from cardioscar.attrivae.preprocess import as_image_like, cube_to_image
from cardioscar.attrivae.traversal import latent_traversal, traversal_values
from cardioscar.errors import CardioScarError

logger = logging.getLogger(__name__)


def choose_attributes(checkpoint: dict, requested: Optional[Sequence[str]]) -> list[str]:
    """The requested attributes (all regularised ones by default), each checked against the model."""
    available = list(checkpoint["attributes"])
    if not requested:
        return available
    unknown = [name for name in requested if name not in available]
    if unknown:
        raise CardioScarError(f"--attributes {','.join(unknown)}: not regularised in this model; choose from "
                              f"{','.join(available)}")
    return list(dict.fromkeys(requested))


def attention_on_image(prediction: Prediction, dim: int) -> np.ndarray:
    """The Grad-CAM of latent ``dim`` on the input image's grid (k, j, i), in [0, 1]."""
    cam = latent_gradcam(prediction.model, prediction.volume, dim)
    return np.clip(cube_to_image(cam, prediction.prepared.box), 0.0, 1.0)


def _lv_slices(prediction: Prediction, count: int = 4) -> list[int]:
    box = prediction.prepared.box
    ks = np.unique(np.linspace(box.start[0], box.stop[0] - 1, min(count, box.shape[0])).round().astype(int))
    return [int(k) for k in ks]


def write_explain_png(path: Path, prediction: Prediction, maps: dict[str, np.ndarray]) -> None:
    """Rows: attributes; columns: slices through the LV; the map (jet) over the image (grey), the LV
    outlined (white) and the experts' infarct (magenta), where drawn: without it a user could not
    tell whether the attention sits on the infarct. Written to ``path`` as it is (:func:`explain_case`
    places it with the other files)."""
    image = sitk.GetArrayFromImage(prediction.prepared.image).astype(np.float64)
    box = prediction.prepared.box
    ks = _lv_slices(prediction)
    outline, infarct = prediction.prepared.lv, prediction.prepared.infarct
    fig = new_figure(figsize=(2.4 * len(ks), 2.4 * len(maps)))
    axes = fig.subplots(len(maps), len(ks), squeeze=False)
    for row, (name, volume) in enumerate(maps.items()):
        for col, k in enumerate(ks):
            ax = axes[row][col]
            window = (k, box.slices[1], box.slices[2])
            ax.imshow(image[window], cmap="gray")
            ax.imshow(np.ma.masked_less_equal(volume[window], 0.05), cmap="jet", vmin=0, vmax=1, alpha=0.5)
            ax.contour(outline[window], levels=[0.5], colors="white", linewidths=0.5)
            if infarct[window].any():
                ax.contour(infarct[window], levels=[0.5], colors="magenta", linewidths=0.8)
            label = f"{name} (no attention)" if not volume.any() else name
            ax.set_title(f"{label} k={k}" if col == 0 else f"k={k}", fontsize=7)
            ax.axis("off")
    drawn = (f"; magenta: the experts' infarct (labels {','.join(map(str, prediction.prepared.infarct_labels))})"
             if infarct.any() else "")
    fig.suptitle(f"MI probability {prediction.result['mi_probability']:.2f}; white: the LV{drawn}", fontsize=9)
    render_figure(fig, path)


def write_traversal_png(path: Path, name: str, decoded: np.ndarray, readings: np.ndarray, unit: str) -> None:
    """The mid-slice of each decoded volume in a row, titled with the attribute's value there;
    written to ``path`` as it is (:func:`explain_case` places it with the other files)."""
    middle = decoded.shape[1] // 2
    fig = new_figure(figsize=(1.6 * len(decoded), 2.0))
    axes = fig.subplots(1, len(decoded), squeeze=False)
    for ax, volume, value in zip(axes[0], decoded, readings):
        ax.imshow(volume[middle], cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"{value:.3g} {unit}", fontsize=7)
        ax.axis("off")
    fig.suptitle(f"traversal of {name}", fontsize=8)
    render_figure(fig, path)


def explain_case(prediction: Prediction, checkpoint: dict, output_dir: str | Path,
                 attributes: Optional[Sequence[str]] = None, steps: int = 7) -> dict:
    """Write every explanation file into ``output_dir`` and return the explain.json content.

    Every map and traversal is computed before the first file is written, so a failure in the
    network's work (the slow part) leaves ``output_dir`` as it was; the files are then placed as one
    set, an earlier explanation's files of other attributes removed with it
    (:func:`~cardioscar.attrivae.explain_files.earlier_explanation_files`).
    """
    output_dir = Path(output_dir)
    names = choose_attributes(checkpoint, attributes)
    traversal_values(0.0, 1.0, steps)  # checks --steps before any work
    maps, traversals = {}, {}
    for name in names:
        dim = checkpoint["latent_dims"][name]
        maps[name] = attention_on_image(prediction, dim)
        index = checkpoint["attributes"].index(name)
        values = traversal_values(checkpoint["latent_range"]["min"][index], checkpoint["latent_range"]["max"][index],
                                  steps)
        decoded = latent_traversal(prediction.model, prediction.mu, dim, values)
        readings = []
        for value in values:
            mu = prediction.mu.copy()
            mu[dim] = value
            readings.append(attribute_readout(checkpoint, mu)[0][name])
        traversals[name] = (decoded, np.array(readings))

    empty = [name for name in names if not maps[name].any()]
    if empty:
        logger.warning("No attention for %s: nothing in the encoder's last layer raises that latent dimension for "
                       "this case (Grad-CAM is 0 everywhere), so those maps are empty", ", ".join(empty))
    attention = {name: attention_file(output_dir, name) for name in names}
    traversal = {name: traversal_file(output_dir, name) for name in names}
    png, record = output_dir / "explain.png", output_dir / "explain.json"
    summary = {"attributes": names,
               "files": {"attention": {name: str(path.resolve()) for name, path in attention.items()},
                         "png": str(png.resolve()),
                         "traversal": {name: str(path.resolve()) for name, path in traversal.items()}},
               "empty_attention": empty, "mi_probability": prediction.result["mi_probability"],
               "mi_probability_calibrated": prediction.result["mi_probability_calibrated"]}
    # one set: a failure part-way (a full disk on the fifth file) left this run's first maps beside
    # the rest of an earlier run's, each named as this case's
    earlier = earlier_explanation_files(output_dir, names, ALL_ATTRIBUTES)
    with atomic_write_set([*attention.values(), *traversal.values(), png, record], earlier) as temporaries:
        into = iter(temporaries)
        for name in names:
            sitk.WriteImage(as_image_like(maps[name], prediction.prepared.image), str(next(into)), True)
        for name in names:
            write_traversal_png(next(into), name, *traversals[name], UNITS.get(name, ""))
        write_explain_png(next(into), prediction, maps)
        next(into).write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    say_removed(output_dir, earlier)
    return summary
