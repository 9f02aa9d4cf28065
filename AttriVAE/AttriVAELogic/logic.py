"""The Attri-VAE Logic: an LGE node and its labels in; the MI prediction, attribute table,
attention maps and traversal pictures out.

One object serves the panel (which starts a run and polls it, :mod:`AttriVAELogic.command`)
and the Python console (which waits). Order of work, so that a failure or a Stop leaves the
scene and the user's files as they were: read and check the inputs, write them to a temporary
job folder, run ``cardioscar attrivae`` on it in a worker process, read and check every output,
and only then create or update nodes (and copy the explanation's files where the user asked).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Optional

import slicer

from cardioscar.errors import CardioScarError
from cardioscar.io.checks import check_output_dir
from CardioScarLogic.logic import check_torch_version
from CardioScarLogic.scratch import start_in_job_folder

from . import scene as results
from .command import CommandRun
from .inputs import WrittenInputs, write_inputs
from .options import AttriVAEOptions

#: Name prefix of the job folders (in the system's temporary folder; removed with their run).
JOB_FOLDER_PREFIX = "attrivae-run-"
#: Where ``explain`` writes inside the job folder.
EXPLAIN_FOLDER = "explanation"
#: Foreground opacity of the attention map over the LGE.
DEFAULT_OPACITY = 0.5


@dataclass
class PredictionResult:
    prediction: results.Prediction
    table_node: object


@dataclass
class ExplanationResult:
    mi_probability: Optional[float]
    attention_nodes: dict  # attribute -> scalar volume node
    picture_nodes: dict  # attribute ("" for the slices picture) -> vector volume node
    files_table_node: object
    folder: Optional[Path]  # where the explanation's files are kept; None: in the scene only


class AttriVAELogic:
    """MI classification and attribute explanations of an LGE study (Qt-free, GUI-free)."""

    def __init__(self, scene=None) -> None:
        self.scene = scene if scene is not None else slicer.mrmlScene

    # ------------------------------------------------------------------ queries

    def default_lge(self):
        """The first intensity volume (not a label map), or None: the panel's initial choice."""
        for index in range(self.scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")):
            node = self.scene.GetNthNodeByClass(index, "vtkMRMLScalarVolumeNode")
            if not node.IsA("vtkMRMLLabelMapVolumeNode") and not node.GetHideFromEditors() \
                    and node.GetAttribute("AttriVAE") is None:
                return node
        return None

    def default_labels(self):
        """The first label map, else the first segmentation, or None."""
        return (self.scene.GetFirstNodeByClass("vtkMRMLLabelMapVolumeNode")
                or self.scene.GetFirstNodeByClass("vtkMRMLSegmentationNode"))

    # ------------------------------------------------------------------ runs in a worker

    def _start(self, lge_node, labels_node, options: AttriVAEOptions, arguments: Callable[[WrittenInputs, Path], list],
               finish: Callable[[CommandRun, WrittenInputs], object], python: Optional[str]) -> CommandRun:
        """Check and write the inputs (errors raise here, before any process starts), then start
        the command. The worker imports the installed torch: one older than the library supports
        is refused here, as the CardioScar Logic refuses it."""
        check_torch_version()
        model = options.model_file()

        def start(folder: Path) -> CommandRun:
            written = write_inputs(lge_node, labels_node, options, folder)
            # the command's error names the temporary files; the status line names the nodes
            names = {f"--labels {written.labels}": f"'{labels_node.GetName()}' (the labels)",
                     f"--image {written.image}": f"'{lge_node.GetName()}' (the LGE)"}
            return CommandRun(arguments(written, model), folder, lambda run: finish(run, written), python, names)

        return start_in_job_folder(JOB_FOLDER_PREFIX, start)

    def start_prediction(self, lge_node, labels_node, options: AttriVAEOptions,
                         python: Optional[str] = None) -> CommandRun:
        """``cardioscar attrivae predict`` on the nodes; its ``finish()`` fills the prediction table."""

        def arguments(written: WrittenInputs, model: Path) -> list:
            return ["predict", "--model", model, "--image", written.image, "--labels", written.labels,
                    *options.device_arguments()]

        def finish(run: CommandRun, written: WrittenInputs) -> PredictionResult:
            prediction = results.read_prediction(run.result)
            self._check_still_in_scene(lge_node)
            return PredictionResult(prediction, results.show_prediction(lge_node, prediction))

        return self._start(lge_node, labels_node, options, arguments, finish, python)

    def start_explanation(self, lge_node, labels_node, options: AttriVAEOptions, output_folder: str = "",
                          opacity: float = DEFAULT_OPACITY, python: Optional[str] = None) -> CommandRun:
        """``cardioscar attrivae explain`` on the nodes; its ``finish()`` loads the attention maps
        over the LGE, the pictures and the files table, and copies the files into
        ``output_folder`` (empty: none are kept on disk; the nodes hold the maps and pictures)."""
        options.explain_arguments()  # checked before anything is written
        if output_folder:  # a file there was found only after the whole explanation had run
            check_output_dir(Path(output_folder).expanduser(), "Output folder")

        def arguments(written: WrittenInputs, model: Path) -> list:
            return ["explain", "--model", model, "--image", written.image, "--labels", written.labels,
                    "--output-dir", written.image.parent / EXPLAIN_FOLDER, *options.explain_arguments()]

        def finish(run: CommandRun, written: WrittenInputs) -> ExplanationResult:
            explanation = results.read_explanation(run.result, run.folder / EXPLAIN_FOLDER, written.ijk_to_lps,
                                                   written.size)
            self._check_still_in_scene(lge_node)
            kept = results.keep_files(explanation, output_folder)
            return self._show_explanation(lge_node, explanation, kept, opacity)

        return self._start(lge_node, labels_node, options, arguments, finish, python)

    def _check_still_in_scene(self, lge_node) -> None:
        """Refuse to show a result on an LGE removed while the command ran (the Data module stays
        usable during a run): its nodes were made through the removed node's scene, which is None,
        and the panel showed Python's AttributeError; checked before the files are kept, so
        nothing is written."""
        if lge_node.GetScene() is not self.scene:
            raise CardioScarError(f"The LGE '{lge_node.GetName()}' was removed from the scene while Attri-VAE ran: "
                                  "nothing was written; load or choose the LGE and run again.")

    @staticmethod
    def _show_explanation(lge_node, explanation: results.Explanation, kept: dict, opacity: float):
        name = lge_node.GetName()
        results.drop_earlier_explanation(lge_node, explanation)
        maps = {attribute: results.show_attention(lge_node, attribute, values)
                for attribute, values in explanation.maps.items()}
        pictures = {attribute: results.show_picture(lge_node, results.TRAVERSAL_REFERENCE + attribute,
                                                    f"{name} Attri-VAE traversal {attribute}", image)
                    for attribute, image in explanation.traversals.items()}
        if explanation.overview is not None:
            pictures[""] = results.show_picture(lge_node, results.OVERVIEW_REFERENCE, f"{name} Attri-VAE explanation",
                                                explanation.overview)
        for node in [*maps.values(), *pictures.values()]:
            node.SetAttribute("AttriVAE", "output")  # never offered as the LGE input
        results.overlay(lge_node, next(iter(maps.values())), opacity)
        table = results.show_files(lge_node, explanation, kept)
        folder = next(iter(kept.values())).parent if kept else None
        return ExplanationResult(explanation.mi_probability, maps, pictures, table, folder)

    # ------------------------------------------------------------------ console: run and wait

    def predict(self, lge_node, labels_node, options: AttriVAEOptions, should_cancel=None, log=None,
                python: Optional[str] = None) -> PredictionResult:
        """Predict and wait (console, batch): the table node and the checked values.

        Raises:
            CardioScarError: a bad input (before anything runs) or the command's one-line error.
            cardioscar.errors.TrainingCancelled: ``should_cancel()`` returned True (nothing written).
        """
        return self.start_prediction(lge_node, labels_node, options, python).wait(should_cancel, log)

    def explain(self, lge_node, labels_node, options: AttriVAEOptions, output_folder: str = "",
                opacity: float = DEFAULT_OPACITY, should_cancel=None, log=None,
                python: Optional[str] = None) -> ExplanationResult:
        """Explain and wait (console, batch); see :meth:`start_explanation`."""
        return self.start_explanation(lge_node, labels_node, options, output_folder, opacity,
                                      python).wait(should_cancel, log)

    @staticmethod
    def show_attention_of(lge_node, attribute: str, opacity: float = DEFAULT_OPACITY) -> None:
        """Overlay the attention map of ``attribute`` (from an earlier explanation) on the LGE."""
        node = lge_node.GetNodeReference(results.ATTENTION_REFERENCE + attribute)
        if node is None:
            raise CardioScarError(f"'{lge_node.GetName()}' has no attention map of {attribute}: run Explain first.")
        results.overlay(lge_node, node, opacity)


__all__ = ["AttriVAELogic", "PredictionResult", "ExplanationResult", "EXPLAIN_FOLDER", "DEFAULT_OPACITY"]
