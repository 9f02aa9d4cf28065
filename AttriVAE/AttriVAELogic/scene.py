"""Putting a finished Attri-VAE result into the scene: the prediction table, the attention maps
overlaid on the LGE, the traversal pictures and the table of the files.

Two steps, so that a bad output changes nothing: ``read_*`` reads and checks everything the
command wrote (the JSON's keys and types; each attention map on the LGE's world grid, finite,
in [0, 1]; each picture readable), and only then ``show_*`` creates or updates nodes. Output
nodes are found again through node references on the LGE node, so running again updates them
instead of piling up copies.
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
import SimpleITK as sitk
import slicer
import vtk

from cardioscar.attrivae.explain_files import earlier_explanation_files, say_removed
from cardioscar.io.atomic import atomic_write_set
from cardioscar.errors import CardioScarError
from CardioScarLogic.results import drop_referenced_nodes, fill_string_table, referenced_or_new

#: (label, unit) of the attributes the library names; others are shown by their own name.
ATTRIBUTES = {
    "lv_volume_ml": ("LV cavity volume", "ml"),
    "myocardium_volume_ml": ("Myocardial volume", "ml"),
    "wall_thickness_mm": ("Wall thickness", "mm"),
    "ejection_fraction": ("Ejection fraction", "%"),
    "age": ("Age", "years"),
    "sex": ("Sex", ""),
    "tobacco": ("Tobacco", ""),
}
PREDICTION_REFERENCE = "AttriVAEPrediction"
FILES_REFERENCE = "AttriVAEExplanationFiles"
ATTENTION_REFERENCE = "AttriVAEAttention_"  # + attribute
TRAVERSAL_REFERENCE = "AttriVAETraversal_"  # + attribute
OVERVIEW_REFERENCE = "AttriVAEExplanationPicture"
#: Colour table of the attention maps (present in the application and in slicer-core).
ATTENTION_COLOR_ID = "vtkMRMLColorTableNodeIron"
#: Attention below this is not drawn over the LGE (transparent), so the image stays readable.
ATTENTION_SHOWN_FROM = 0.05
#: The files table's entry for an output kept in the scene only (no output folder chosen).
NOT_KEPT = "in the scene only (choose an output folder to keep the files)"
#: How far (mm) a map's origin and voxel axes may be from the LGE's (NIfTI keeps float32).
GRID_TOLERANCE = 1e-3


def attribute_label(name: str) -> tuple[str, str]:
    return ATTRIBUTES.get(name, (name, ""))


# ---------------------------------------------------------------------------------- prediction


@dataclass
class Prediction:
    """``cardioscar attrivae predict``'s result, checked."""

    mi_probability: float
    mi_predicted: bool
    attributes: dict
    out_of_range: dict
    model: dict = field(default_factory=dict)
    #: The network's own score before the model's calibration (None from an older cardioscar).
    mi_probability_uncalibrated: Optional[float] = None
    #: The Platt scaling applied (``method``, ``n_cases``...), None when the model has none.
    calibration: Optional[dict] = None
    #: Whether ``mi_probability`` is calibrated; None from a cardioscar that does not say.
    calibrated: Optional[bool] = None

    def calibration_note(self) -> str:
        """The words beside the MI probability in the status line: calibrated or the raw score."""
        if self.calibrated is None:
            return "calibration not reported by this cardioscar"
        if self.calibrated:
            return "calibrated"
        return "not calibrated: the network's raw score (model trained without cross-validation)"

    def rows(self) -> list[tuple[str, str, str, str, str]]:
        """(measure, value, unit, training range, out of that range) rows of the table and the
        panel, then what the model was trained on (from the command's ``model`` summary)."""
        rows = [("MI probability", f"{self.mi_probability:.3f}", "", "", ""), *self.calibration_rows(),
                ("MI predicted", "yes" if self.mi_predicted else "no", "", "", "")]
        ranges = self.model.get("training_ranges") if isinstance(self.model.get("training_ranges"), dict) else {}
        for name, value in self.attributes.items():
            label, unit = attribute_label(name)
            flag = self.out_of_range.get(name)
            low_high = ranges.get(name)
            span = f"{low_high[0]:.4g} to {low_high[1]:.4g}" if isinstance(low_high, (list, tuple)) \
                and len(low_high) == 2 else ""
            rows.append((label, f"{value:.4g}", unit, span, "" if flag is None else ("yes" if flag else "no")))
        return rows + self.model_rows()

    def calibration_rows(self) -> list[tuple[str, str, str, str, str]]:
        """Whether the MI probability is calibrated, and the uncalibrated score named as such."""
        if self.mi_probability_uncalibrated is None:
            return []
        how = (f"Platt scaling fitted on {self.calibration.get('n_cases', '?')} held-out cases" if self.calibration
               else "none (model trained without cross-validation)")
        return [("MI probability calibration", how, "", "", ""),
                ("MI score, uncalibrated", f"{self.mi_probability_uncalibrated:.3f}", "", "", "")]

    def model_rows(self) -> list[tuple[str, str, str, str, str]]:
        """The model's training cases, cube and the attributes it lacks, where the summary says."""
        model, rows = self.model, []
        if isinstance(model.get("n_cases"), int):
            mi = f" ({model['n_mi']} MI)" if isinstance(model.get("n_mi"), int) else ""
            rows.append(("Model: training cases", f"{model['n_cases']}{mi}", "", "", ""))
        if isinstance(model.get("cube"), int):
            rows.append(("Model: cube", f"{model['cube']}", "voxels", "", ""))
        if model.get("omitted_attributes"):
            rows.append(("Model: attributes left out", ", ".join(map(str, model["omitted_attributes"])), "", "", ""))
        return rows


def _number(value, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CardioScarError(f"The Attri-VAE result's {what} is {value!r}, not a finite number: the installed "
                              "cardioscar does not follow the module's contract (update the extension).")
    return float(value)


def read_prediction(result: dict) -> Prediction:
    """Check the JSON printed by ``predict`` (the contract's keys and types)."""
    missing = [key for key in ("mi_probability", "mi_predicted", "attributes", "out_of_range") if key not in result]
    if missing:
        raise CardioScarError(f"The Attri-VAE result lacks {', '.join(missing)}: the installed cardioscar does not "
                              "follow the module's contract (update the extension).")
    probability = _number(result["mi_probability"], "mi_probability")
    if not 0.0 <= probability <= 1.0:
        raise CardioScarError(f"The Attri-VAE result's mi_probability {probability} is outside [0, 1].")
    attributes = {str(name): _number(value, f"attribute {name}") for name, value in dict(result["attributes"]).items()}
    out_of_range = {str(name): bool(flag) for name, flag in dict(result["out_of_range"]).items()}
    model = result.get("model") if isinstance(result.get("model"), dict) else {}
    raw = result.get("mi_probability_uncalibrated")
    raw = None if raw is None else _number(raw, "mi_probability_uncalibrated")
    calibration = result.get("calibration") if isinstance(result.get("calibration"), dict) else None
    calibrated = result.get("mi_probability_calibrated")
    if calibrated is not None and not isinstance(calibrated, bool):
        raise CardioScarError(f"The Attri-VAE result's mi_probability_calibrated is {calibrated!r}, not true or false: "
                              "the installed cardioscar does not follow the module's contract (update the extension).")
    return Prediction(probability, bool(result["mi_predicted"]), attributes, out_of_range, model, raw, calibration,
                      calibrated)


def show_prediction(lge_node, prediction: Prediction):
    """The prediction in the LGE's Attri-VAE table (created on first use, updated after)."""
    table = referenced_or_new(lge_node, PREDICTION_REFERENCE, "vtkMRMLTableNode",
                              f"{lge_node.GetName()} Attri-VAE prediction")
    return fill_string_table(table, ("Measure", "Value", "Unit", "Training range", "Out of training range"),
                             prediction.rows())


# ---------------------------------------------------------------------------------- explanation


@dataclass
class Explanation:
    """What ``explain`` wrote, read and checked: maps (k, j, i) per attribute and pictures."""

    mi_probability: Optional[float]
    maps: dict  # attribute -> float32 (k, j, i) array on the LGE's grid
    traversals: dict  # attribute -> vtkImageData (RGB)
    overview: Optional[vtk.vtkImageData]
    files: dict  # (attribute, kind) -> file in the command's output folder


def _file(out_dir: Path, path, what: str) -> Path:
    found = Path(str(path))
    found = found if found.is_absolute() else out_dir / found
    if not found.is_file():
        raise CardioScarError(f"The Attri-VAE explanation names its {what} {found}, which it did not write.")
    return found


def read_map(path: Path, ijk_to_lps: np.ndarray, size: tuple, what: str) -> np.ndarray:
    """An attention map, checked to lie on the LGE's world grid (``ijk_to_lps``, ``size`` i, j, k),
    finite and in [0, 1]; returned as float32 (k, j, i)."""
    image = sitk.ReadImage(str(path))
    axes = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    offsets = [np.abs(axes - ijk_to_lps[:3, :3]).max(), np.abs(np.array(image.GetOrigin()) - ijk_to_lps[:3, 3]).max()]
    if tuple(image.GetSize()) != tuple(size) or max(offsets) > GRID_TOLERANCE:
        raise CardioScarError(
            f"The {what} {path.name} is not on the LGE's grid (size {tuple(image.GetSize())} vs {tuple(size)}, "
            f"offset {max(offsets):.3g} mm): the installed cardioscar does not follow the module's contract.")
    values = sitk.GetArrayFromImage(image).astype(np.float32)
    if not np.all(np.isfinite(values)) or values.min() < -1e-6 or values.max() > 1 + 1e-6:
        raise CardioScarError(f"The {what} {path.name} has values outside [0, 1] or not finite.")
    return np.clip(values, 0.0, 1.0)


def read_picture(path: Path) -> vtk.vtkImageData:
    """A PNG as RGB image data (alpha dropped: slice views draw three components)."""
    reader = vtk.vtkPNGReader()
    if not reader.CanReadFile(str(path)):
        raise CardioScarError(f"The Attri-VAE picture {path} is not a readable PNG.")
    reader.SetFileName(str(path))
    reader.Update()
    image = reader.GetOutput()
    if image.GetNumberOfScalarComponents() >= 3:
        rgb = vtk.vtkImageExtractComponents()
        rgb.SetInputData(image)
        rgb.SetComponents(0, 1, 2)
        rgb.Update()
        image = rgb.GetOutput()
    copy = vtk.vtkImageData()
    copy.DeepCopy(image)
    return copy


def read_explanation(result: dict, out_dir: Path, ijk_to_lps: np.ndarray, size: tuple) -> Explanation:
    """Check the JSON printed by ``explain`` and read every file it names."""
    files = result.get("files")
    if not isinstance(files, dict) or not isinstance(files.get("attention"), dict) or not files["attention"]:
        raise CardioScarError("The Attri-VAE explanation names no attention map: the installed cardioscar does not "
                              "follow the module's contract (update the extension).")
    named: dict = {}
    maps = {}
    for attribute, path in files["attention"].items():
        named[(attribute, "attention map")] = _file(out_dir, path, f"attention map of {attribute}")
        maps[attribute] = read_map(named[(attribute, "attention map")], ijk_to_lps, size,
                                   f"attention map of {attribute}")
    traversals = {}
    for attribute, path in dict(files.get("traversal") or {}).items():
        named[(attribute, "traversal")] = _file(out_dir, path, f"traversal of {attribute}")
        traversals[attribute] = read_picture(named[(attribute, "traversal")])
    overview = None
    if files.get("png"):
        named[("", "slices with overlays")] = _file(out_dir, files["png"], "picture")
        overview = read_picture(named[("", "slices with overlays")])
    probability = result.get("mi_probability")
    probability = None if probability is None else _number(probability, "mi_probability")
    return Explanation(probability, maps, traversals, overview, named)


def keep_files(explanation: Explanation, folder: Optional[str]) -> dict:
    """Copy the explanation's files into ``folder`` (all placed together or none; existing files of
    the same name replaced only now, after the run succeeded). Returns (attribute, kind) -> kept path;
    empty when no folder is given: the maps and pictures are then kept in the scene only (their
    nodes hold the data in memory), and the job folder goes with the run."""
    if not folder:
        return {}
    target = Path(folder).expanduser()
    kept = {key: target / source.name for key, source in explanation.files.items()}
    # one set, placed together: a copy failing part-way (a full disk on the fifth file) left the first
    # four of this explanation beside the rest of the previous one, maps of two runs under one name each;
    # an earlier explanation's files of attributes not explained now go with it (read as this run's)
    earlier = earlier_explanation_files(target, [attribute for attribute, _ in explanation.files], ATTRIBUTES)
    with atomic_write_set(list(kept.values()), earlier) as temporaries:
        for source, temporary in zip(explanation.files.values(), temporaries):
            shutil.copyfile(source, temporary)
    say_removed(target, earlier)
    return kept


def drop_earlier_explanation(lge_node, explanation: Explanation) -> list[str]:
    """Remove the attention maps and pictures an earlier explanation left on ``lge_node`` for
    attributes this one has not (the names of those removed). Why: explaining again with another
    model or fewer attributes kept the earlier maps beside the new ones, named alike and offered by
    ``show_attention_of`` as if they came from this run."""
    current = {ATTENTION_REFERENCE + name for name in explanation.maps}
    current |= {TRAVERSAL_REFERENCE + name for name in explanation.traversals}
    if explanation.overview is not None:
        current.add(OVERVIEW_REFERENCE)
    roles = [lge_node.GetNthNodeReferenceRole(i) for i in range(lge_node.GetNumberOfNodeReferenceRoles())]
    return drop_referenced_nodes(lge_node, [role for role in roles if role not in current and role.startswith(
        (ATTENTION_REFERENCE, TRAVERSAL_REFERENCE, OVERVIEW_REFERENCE))])


def show_attention(lge_node, attribute: str, values: np.ndarray):
    """The map as a scalar volume on the LGE node's own grid and parent transform, shown with the
    attention colours on a fixed 0-1 range, low attention transparent."""
    node = referenced_or_new(lge_node, ATTENTION_REFERENCE + attribute, "vtkMRMLScalarVolumeNode",
                              f"{lge_node.GetName()} attention {attribute}")
    slicer.util.updateVolumeFromArray(node, values)
    matrix = vtk.vtkMatrix4x4()
    lge_node.GetIJKToRASMatrix(matrix)
    node.SetIJKToRASMatrix(matrix)
    node.SetAndObserveTransformNodeID(lge_node.GetTransformNodeID())
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    display = node.GetDisplayNode()
    with slicer.util.NodeModify(display):
        display.SetAndObserveColorNodeID(ATTENTION_COLOR_ID)
        display.SetAutoWindowLevel(False)
        display.SetWindowLevelMinMax(0.0, 1.0)
        display.SetAutoThreshold(False)
        display.SetThreshold(ATTENTION_SHOWN_FROM, 1.0)
        display.SetApplyThreshold(True)
    return node


def show_picture(lge_node, reference: str, name: str, image: vtk.vtkImageData):
    """A PNG as a one-slice RGB vector volume, 1 mm pixels, upright in an axial slice view."""
    node = referenced_or_new(lge_node, reference, "vtkMRMLVectorVolumeNode", name)
    node.SetAndObserveImageData(image)
    node.SetIJKToRASDirections([[-1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]])  # screen right = patient left
    node.SetSpacing(1.0, 1.0, 1.0)
    if node.GetDisplayNode() is None:
        node.CreateDefaultDisplayNodes()
    return node


def overlay(lge_node, map_node, opacity: float) -> None:
    """Every slice view: the LGE as background, ``map_node`` as foreground at ``opacity``."""
    scene = lge_node.GetScene()
    for index in range(scene.GetNumberOfNodesByClass("vtkMRMLSliceCompositeNode")):
        composite = scene.GetNthNodeByClass(index, "vtkMRMLSliceCompositeNode")
        with slicer.util.NodeModify(composite):
            composite.SetBackgroundVolumeID(lge_node.GetID())
            composite.SetForegroundVolumeID(map_node.GetID())
            composite.SetForegroundOpacity(float(opacity))


def show_files(lge_node, explanation: Explanation, kept: dict):
    """The table of the explanation's outputs (attribute, what, the file kept, or that it is in
    the scene only when no output folder was chosen)."""
    table = referenced_or_new(lge_node, FILES_REFERENCE, "vtkMRMLTableNode",
                              f"{lge_node.GetName()} Attri-VAE explanation files")
    rows = [(attribute, kind, str(kept[(attribute, kind)]) if (attribute, kind) in kept else NOT_KEPT)
            for attribute, kind in explanation.files]
    return fill_string_table(table, ("Attribute", "Output", "File"), rows)


def show_in_layout(layout_node, application_logic, table_node) -> None:
    """Switch to Slicer's Four-Up Table layout (the three slice views, where the attention maps
    are drawn over the LGE, and a table view instead of the 3D view) and show ``table_node``."""
    layout_node.SetViewArrangement(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
    selection = application_logic.GetSelectionNode()
    selection.SetActiveTableID(table_node.GetID())
    application_logic.PropagateTableSelection()


__all__ = ["show_in_layout", "Prediction", "Explanation", "read_prediction", "show_prediction", "read_explanation", "read_map",
           "read_picture", "keep_files", "drop_earlier_explanation", "show_attention", "show_picture", "overlay",
           "show_files", "attribute_label", "ATTRIBUTES"]
