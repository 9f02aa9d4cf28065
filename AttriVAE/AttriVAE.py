"""Attri-VAE: interpretable MI classification from an LGE study (3D Slicer module of CardioScar).

The panel collects the LGE volume, its labels (a label map or a segmentation) and an Attri-VAE
model file in a parameter node (saved with the scene) and calls the Qt-free ``AttriVAELogic``
(package next to this file), which runs ``cardioscar attrivae predict`` / ``explain`` in a
worker process: Slicer never freezes, *Stop* ends the work at once, and the scene is written
only after the command succeeded. The Python console calls the same Logic and waits.

The panel never imports torch; the worker process does (the *CardioScar* module's Dependencies
section installs it through the PyTorch extension).
"""

import importlib.util
import pathlib
import sys
import time
import traceback
from typing import Annotated, Optional, Union

import slicer
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from slicer import vtkMRMLLabelMapVolumeNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode

# The CardioScar module of the same extension (a dependency, loaded first): the panel plumbing both panels share,
# and the cardioscar library found through it in a source checkout.
from CardioScar import WorkerPanelMixin, documentationLink  # noqa: E402

from AttriVAELogic import AttriVAELogic as _QtFreeLogic  # noqa: E402
from AttriVAELogic import LABEL_CONVENTIONS, AttriVAEOptions  # noqa: E402
from AttriVAELogic.command import CommandRun  # noqa: E402
from AttriVAELogic.scene import show_in_layout  # noqa: E402
from CardioScarLogic.layout import layout_node_of  # noqa: E402

#: The module's section of the user guide's Slicer page (``Documentation/slicer-module.md``) on the
#: extension's homepage (EXTENSION_HOMEPAGE), linked from the help.
DOCUMENTATION_URL = ("https://github.com/cardioscar/SlicerCardioScar/blob/main/Documentation/slicer-module.md"
                     "#second-module-attri-vae-mi-classification-with-attribute-explanations")


class AttriVAE(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("Attri-VAE")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Cardiac")]
        self.parent.dependencies = ["CardioScar"]
        self.parent.contributors = ["CardioScar developers"]
        self.parent.helpText = _(
            "Interpretable myocardial infarction (MI) classification from an LGE study: a variational autoencoder "
            "whose latent dimensions are tied to clinical and shape attributes, with an MI classifier on the latent. "
            "Predict gives the MI probability and each attribute read from its dimension (flagged when outside the "
            "training range); Explain overlays each attribute's attention map on the LGE and loads the latent "
            "traversal pictures. Train a model with 'cardioscar attrivae train'.") + documentationLink(DOCUMENTATION_URL)
        self.parent.acknowledgementText = _(
            "Method: Cetin et al., Attri-VAE, Comput Med Imaging Graph 104:102158 (2023). Built on 3D Slicer and "
            "PyTorch.")


@parameterNodeWrapper
class AttriVAEParameterNode:
    """Panel state; saved with the scene. Label lists and segment names are strings (no widget
    connector for a list); the Logic parses them and says what is wrong. ``modelPath`` and
    ``outputFolder`` are strings the panel keeps itself (a path parameter defaults to ".")."""

    lgeVolume: vtkMRMLScalarVolumeNode
    # None belongs in the Union: the wrapper writes each default (None) when it wraps a node
    labels: Union[vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode, None]
    labelConvention: Annotated[str, Choice(["EMIDEC", "ACDC"])] = "EMIDEC"
    cavityLabels: str = "1"
    myocardiumLabels: str = "2,3,4"
    cavitySegments: str = ""
    myocardiumSegments: str = ""
    attributes: str = ""
    steps: Annotated[int, WithinRange(2, 25)] = 7
    opacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    forceCpu: bool = False
    modelPath: str = ""
    outputFolder: str = ""


class AttriVAEWidget(WorkerPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel, on the CardioScar panel's plumbing (:class:`CardioScar.WorkerPanelMixin`: one
    parameter-node connection kept while hidden; Stop, scene close, module reload and quitting
    Slicer end a run): a run is one command in a worker process, polled by a timer, and the scene
    is written only after it succeeded."""

    def __init__(self, parent=None) -> None:
        # State first: without a parent, Slicer's base class calls setup() inside __init__.
        self.logic: Optional[AttriVAELogic] = None
        self._parameterNode: Optional[AttriVAEParameterNode] = None
        self._parameterNodeGuiTag = None
        self._run: Optional[CommandRun] = None
        self._runButton = None
        self._shownFor: Optional[tuple] = None  # the inputs of the prediction/explanation the labels show
        ScriptedLoadableModuleWidget.__init__(self, parent)

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/AttriVAE.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = AttriVAELogic()

        self._connectLifecycle()
        self.ui.predictButton.connect("clicked(bool)", self.onPredictButton)
        self.ui.explainButton.connect("clicked(bool)", self.onExplainButton)
        # "activated": user choices only, so restoring a saved scene keeps its label values
        self.ui.conventionComboBox.connect("activated(int)", self.onConventionActivated)
        self.ui.modelPathLineEdit.connect("currentPathChanged(QString)", self._onModelPathChanged)
        self.ui.outputFolderLineEdit.connect("currentPathChanged(QString)", self._onOutputFolderChanged)
        self.ui.progressBar.setVisible(False)
        self.initializeParameterNode()

    def onReload(self) -> None:
        """Developer reload: re-read the Logic package too (leaf modules first)."""
        import importlib

        for name in ("options", "inputs", "command", "scene", "logic", ""):
            module = sys.modules.get("AttriVAELogic" + (f".{name}" if name else ""))
            if module is not None:
                importlib.reload(module)
        ScriptedLoadableModuleWidget.onReload(self)

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        p = self._parameterNode
        if not p.lgeVolume:
            first = self.logic.default_lge()
            if first:
                p.lgeVolume = first
        if not p.labels:
            first = self.logic.default_labels()
            if first:
                p.labels = first

    def _onModelPathChanged(self, path: str) -> None:
        if self._parameterNode is not None and self._parameterNode.modelPath != path:
            self._parameterNode.modelPath = path

    def _onOutputFolderChanged(self, path: str) -> None:
        if self._parameterNode is not None and self._parameterNode.outputFolder != path:
            self._parameterNode.outputFolder = path

    def onConventionActivated(self, index: int) -> None:
        """Fill the label boxes with the chosen convention's labels (still editable)."""
        convention = self.ui.conventionComboBox.itemText(index)
        if self._parameterNode is None or convention not in LABEL_CONVENTIONS:
            return
        cavity, myocardium = LABEL_CONVENTIONS[convention]
        with slicer.util.NodeModify(self._parameterNode.parameterNode):
            self._parameterNode.cavityLabels = cavity
            self._parameterNode.myocardiumLabels = myocardium

    def onSceneEndClose(self, caller, event) -> None:
        """As every panel, and the last prediction and explanation go with the scene they came from:
        their labels kept naming the closed scene's table and attention-map nodes (as CardioScar's
        bull's-eye and score labels did before they were reset there)."""
        WorkerPanelMixin.onSceneEndClose(self, caller, event)
        self._clearResults()

    def _clearResults(self) -> None:
        self.ui.resultsLabel.text = _("(shown after Predict)")
        self.ui.explanationLabel.text = ""
        self._shownFor = None

    def _inputsNow(self) -> tuple:
        """What a shown result belongs to: the LGE, the labels and the model file."""
        p = self._parameterNode
        return tuple(node.GetID() if node is not None else None for node in (p.lgeVolume, p.labels)) + (p.modelPath,)

    # ------------------------------------------------------------------ state

    def _updatePanel(self, caller=None, event=None) -> None:
        """Enable the actions that have their inputs; say what is missing otherwise."""
        if self._parameterNode is None:
            return
        p = self._parameterNode
        for edit, path in ((self.ui.modelPathLineEdit, p.modelPath), (self.ui.outputFolderLineEdit, p.outputFolder)):
            if edit.currentPath != path:
                edit.currentPath = path
        segmentation = p.labels is not None and p.labels.IsA("vtkMRMLSegmentationNode")
        for widget in (self.ui.cavityLabelsLineEdit, self.ui.myocardiumLabelsLineEdit, self.ui.conventionComboBox):
            widget.enabled = not segmentation
        for widget in (self.ui.cavitySegmentsLineEdit, self.ui.myocardiumSegmentsLineEdit):
            widget.enabled = segmentation
        if self._run is not None:
            return
        if self._shownFor is not None and self._shownFor != self._inputsNow():
            # another LGE, labels or model chosen: the table of MI probability and attributes (which names no
            # case) was read as the new choice's
            self._clearResults()
        missing = self._missing()
        for button, tip in ((self.ui.predictButton, _("MI probability and the attributes read from the latent space")),
                            (self.ui.explainButton, _("Attention maps over the LGE and latent traversal pictures"))):
            button.enabled = not missing
            button.toolTip = missing or tip

    def _missing(self) -> str:
        """What the runs still need, as one line; empty when they can start."""
        p = self._parameterNode
        if p.lgeVolume is None:
            return _("Choose the LGE volume.")
        if p.labels is None:
            return _("Choose the labels: a label map or a segmentation of the cavity and myocardium.")
        if not p.modelPath.lower().endswith(".pth"):
            return _("Choose the Attri-VAE model file (.pth).")
        return ""

    def options(self) -> AttriVAEOptions:
        """The panel's values as Logic options."""
        p = self._parameterNode
        return AttriVAEOptions(model_path=p.modelPath, cavity_labels=p.cavityLabels,
                               myocardium_labels=p.myocardiumLabels, cavity_segments=p.cavitySegments,
                               myocardium_segments=p.myocardiumSegments, attributes=p.attributes, steps=p.steps,
                               device="cpu" if p.forceCpu else "auto")

    # ------------------------------------------------------------------ runs

    def _reportFailure(self, error: Exception) -> None:
        """One line in the status and the log: a user error (CardioScarError) as it is, anything
        else as its type and message with the traceback in the log."""
        from cardioscar.errors import CardioScarError

        line = str(error).splitlines()[0] if str(error) else type(error).__name__
        if not isinstance(error, CardioScarError):
            line = f"{type(error).__name__}: {line}"
        self.ui.statusLabel.text = line
        self._log(_("Error: ") + line)
        if not isinstance(error, CardioScarError):
            self._log(traceback.format_exc())

    def onPredictButton(self) -> None:
        """Predict in a worker (or stop the running command)."""
        p = self._parameterNode
        self._startOrStop(self.ui.predictButton, _("Predict"), lambda: self.logic.start_prediction(
            p.lgeVolume, p.labels, self.options()), _("Predicting..."))

    def onExplainButton(self) -> None:
        """Explain in a worker (or stop the running command)."""
        p = self._parameterNode
        self._startOrStop(self.ui.explainButton, _("Explain"), lambda: self.logic.start_explanation(
            p.lgeVolume, p.labels, self.options(), p.outputFolder, p.opacity), _("Explaining..."))

    def _startOrStop(self, button, idleText: str, makeRun, startText: str) -> None:
        """Read and write the inputs and start the command; a bad input is one status line and
        starts nothing. A click while running stops the run. Writing the LGE and its labels blocks
        the application for a moment: the wait cursor says so, as in the CardioScar panel, and the
        button is disabled first (the wait cursor processes pending events: a second click must not
        start a second command)."""
        if self._run is not None:
            self._stopRun()
            return
        button.enabled = False
        try:
            with slicer.util.WaitCursor():
                run = makeRun()
        except Exception as error:  # noqa: BLE001 - shown in the panel (a Qt slot's exception reaches the console only)
            button.enabled = True
            self._reportFailure(error)
            return
        self._run, self._runButton = run, button
        button.setProperty("idleText", idleText)
        self._setRunning(True)
        self.ui.statusLabel.text = startText
        self._log(f"{startText} ({' '.join(run.arguments[:1])})")
        self._timer.start()

    def _setRunning(self, running: bool) -> None:
        """While running, the pressed button reads Stop and everything else is disabled."""
        for widget in (self.ui.inputsCollapsibleButton, self.ui.optionsCollapsibleButton, self.ui.predictButton,
                       self.ui.explainButton):
            if widget is not self._runButton:
                widget.enabled = not running
        self._runButton.text = _("Stop") if running else self._runButton.property("idleText")
        self._runButton.enabled = True
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.maximum = 0  # busy: the command reports no fraction done
        if not running:
            self._run = self._runButton = None
            self._updatePanel()

    def _pollRun(self) -> None:
        """Timer slot: move the command's log lines into the log; import the result once it ended."""
        run = self._run
        if run is None:
            self._timer.stop()
            return
        for line in run.messages():
            self._log(line)
        if run.running:
            return
        self._timer.stop()
        started = time.monotonic()
        # loading the result blocks the application: the wait cursor, and Stop disabled first (the wait
        # cursor processes pending events, and a click on Stop then would remove the folder being read)
        self._runButton.enabled = False
        try:
            with slicer.util.WaitCursor():
                result = run.finish()
        except Exception as error:  # noqa: BLE001 - shown in the panel
            self._setRunning(False)
            self._reportFailure(error)
            return
        self._setRunning(False)
        if hasattr(result, "prediction"):
            self._showPrediction(result)
        else:
            self._showExplanation(result)
        self._log(_("Loaded into the scene in {seconds:.1f} s.").format(seconds=time.monotonic() - started))

    def _showPrediction(self, result) -> None:
        rows = "".join(f"<tr><td>{m}</td><td align='right'><b>{v}</b> {u}</td>"
                       f"<td>{'out of training range ' + span if flag == 'yes' else ''}</td></tr>"
                       for m, v, u, span, flag in result.prediction.rows())
        self.ui.resultsLabel.text = f"<table>{rows}</table>"
        self._shownFor = self._inputsNow()
        self.ui.statusLabel.text = _("MI probability {p:.3f} ({calibration}): table '{table}'.").format(
            p=result.prediction.mi_probability, calibration=result.prediction.calibration_note(),
            table=result.table_node.GetName())
        self._log(self.ui.statusLabel.text)
        self._showTable(result.table_node)

    @staticmethod
    def _showTable(tableNode) -> None:
        """The slice views and ``tableNode`` in the view layout (when the scene has a layout)."""
        layoutNode = layout_node_of(slicer.mrmlScene)
        if layoutNode is not None:
            show_in_layout(layoutNode, slicer.app.applicationLogic(), tableNode)

    def _showExplanation(self, result) -> None:
        names = ", ".join(result.attention_nodes)
        folder = result.folder if result.folder is not None else _("none kept (no output folder chosen)")
        self.ui.explanationLabel.text = _("Attention maps: {names}<br>Files: {folder}").format(
            names=names, folder=folder)
        self._shownFor = self._inputsNow()
        self.ui.statusLabel.text = _("{count} attention maps over the LGE (the first in the slice views); "
                                     "files: {folder}.").format(count=len(result.attention_nodes), folder=folder)
        self._log(self.ui.statusLabel.text)
        self._showTable(result.files_table_node)


class AttriVAELogic(ScriptedLoadableModuleLogic, _QtFreeLogic):
    """The Slicer module's logic: the Qt-free Logic plus Slicer's parameter-node plumbing, so the
    panel and the console (``slicer.util.getModuleLogic("AttriVAE")``) run the same code."""

    def __init__(self) -> None:
        super().__init__()

    def getParameterNode(self) -> AttriVAEParameterNode:
        return AttriVAEParameterNode(super().getParameterNode())


class AttriVAETest(ScriptedLoadableModuleTest):
    """Slicer-native test (ctest, or the Reload & Test button). It needs the Slicer application
    and cannot run in this repository's CI; the same scenarios run against slicer-core in
    Testing/test_attrivae_slicer_logic.py and the panel in Testing/test_attrivae_slicer_panel.py
    (with a stand-in for Qt).

    Scenario: ``cardioscar attrivae demo`` trains a small model (on EMIDEC cases, or the library's
    synthetic set), its held-out case is loaded, predicted and explained through the Logic, and
    the table and each attention map's grid are checked. Without PyTorch it says so and skips.
    """

    #: What the tests say where PyTorch is not installed (the extension installs it on demand, so a fresh
    #: Slicer, the extension index's test machine included, has none).
    NO_TORCH = ("PyTorch is not installed, so Attri-VAE cannot run: tests skipped. Install it in the "
                "CardioScar module's Dependencies section.")

    def setUp(self) -> None:
        """Before each test. ctest runs this file through ``slicer_add_python_unittest``, whose
        ``slicer.testing.runUnitTest`` loads it with unittest's loader: that calls setUp and each
        ``test_*`` method, never :meth:`runTest` (Reload & Test's entry, which checks PyTorch first),
        so the check is here too, or each test failed where PyTorch is not installed."""
        if importlib.util.find_spec("torch") is None:
            self.skipTest(self.NO_TORCH)
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        if importlib.util.find_spec("torch") is None:
            self.delayDisplay(self.NO_TORCH)
            return
        self.setUp()
        self.test_PredictAndExplain()

    def test_PredictAndExplain(self) -> None:
        import json
        import subprocess

        from CardioScarLogic.background import worker_environment, worker_python

        self.delayDisplay("Train a small model (cardioscar attrivae demo, under a minute), then predict and explain")
        folder = pathlib.Path(slicer.util.tempDirectory())
        demo = subprocess.run([worker_python(True), "-m", "cardioscar", "attrivae", "demo", "--output-dir",
                               str(folder)], env=worker_environment(), capture_output=True, text=True)
        self.assertEqual(demo.returncode, 0, demo.stderr[-2000:])
        summary = json.loads((folder / "demo.json").read_text(encoding="utf-8"))
        case = pathlib.Path(summary["data_dir"]) / summary["heldout_case"]
        model = summary["model"]
        image, labels = (case / kind / f"{case.name}.nii.gz" for kind in ("Images", "Contours"))
        lge = slicer.util.loadVolume(str(image))
        labelMap = slicer.util.loadLabelVolume(str(labels))
        logic = AttriVAELogic()
        options = AttriVAEOptions(model_path=str(model))
        prediction = logic.predict(lge, labelMap, options)
        self.assertTrue(0.0 <= prediction.prediction.mi_probability <= 1.0)
        self.assertGreaterEqual(prediction.table_node.GetNumberOfRows(), 2)
        explanation = logic.explain(lge, labelMap, options)
        for node in explanation.attention_nodes.values():
            self.assertEqual(node.GetImageData().GetDimensions(), lge.GetImageData().GetDimensions())
        self.delayDisplay("Test passed")
