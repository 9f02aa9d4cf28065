"""CardioScar: 3D myocardial scar on a heart mesh from a few 2D LGE slices (3D Slicer module).

The panel collects inputs and options in a parameter node (saved with the scene) and calls the
Qt-free ``CardioScarLogic`` (package ``CardioScarLogic`` next to this file), the same object the
Python console and ``Scripts/cardioscar_batch.py`` use. The numerical core is the ``cardioscar``
package (CardioScarLib), installed next to this module by the extension.

The panel runs training, prediction, the AHA segments, tissue tagging and export in a worker
process (``CardioScarLogic.background``), so Slicer never freezes and *Stop* ends the work at once.
The console and batch mode call the Logic directly and wait. torch is never imported by the panel
at load time; the *Dependencies* section shows its version and installs or updates it through the
PyTorch extension.
"""

import contextlib
import importlib.util
import pathlib
import shutil
import sys
import time
import traceback
from typing import Annotated, Optional, Union

import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, GuiConnector, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from slicer import (
    vtkMRMLLabelMapVolumeNode,
    vtkMRMLMarkupsFiducialNode,
    vtkMRMLModelNode,
    vtkMRMLScalarVolumeNode,
    vtkMRMLSegmentationNode,
)


def _addLibraryPath() -> None:
    """Find ``cardioscar`` in a source checkout (<repo>/CardioScarLib beside <repo>/CardioScar).

    In an installed extension the package sits beside this file and is importable already.
    """
    if importlib.util.find_spec("cardioscar") is not None:
        return
    library = pathlib.Path(__file__).resolve().parent.parent / "CardioScarLib"
    if (library / "cardioscar" / "__init__.py").is_file():
        sys.path.insert(0, str(library))


_addLibraryPath()

from CardioScarLogic import CardioScarLogic as _QtFreeLogic  # noqa: E402
from CardioScarLogic import PRESETS, AhaInputs, ReconstructionOptions  # noqa: E402
from CardioScarLogic.background import BackgroundRun  # noqa: E402
from CardioScarLogic.options import preset_panel_values  # noqa: E402
from CardioScarLogic.logic import TORCH_REQUIREMENT, installed_torch_version, older_torch  # noqa: E402
from CardioScarLogic.layout import layout_node_of, show_results  # noqa: E402
from CardioScarLogic.results import (PROBABILITY, SHOWN_FIELDS, SUMMARY_REFERENCE, learned_target,  # noqa: E402
                                     new_output_model, score_slice_rows, score_summary)
from CardioScarLogic.scratch import KeptFile  # noqa: E402
from CardioScarLogic.wording import (PANEL_AHA_THRESHOLD, PANEL_NAMES, SCORE_PANEL_NAMES,  # noqa: E402
                                     in_panel_words, library_warnings, library_words)

#: Panel values of each training preset, read from cardioscar.fit.config's TrainingConfig() and
#: TrainingConfig.fast() (torch-free: switching presets imports no torch), so they cannot drift.
PRESET_PANEL_VALUES = {preset: preset_panel_values(preset) for preset in PRESETS}
#: Pip requirement strings of the packages the module uses that Slicer does not ship (numpy,
#: scipy, SimpleITK and VTK ship with Slicer; torch comes through the PyTorch extension).
PIP_REQUIREMENTS = {"sklearn": "scikit-learn"}
#: Milliseconds between reads of the worker's reports.
POLL_INTERVAL_MS = 100
# the boxes that set up a scar rule, used with one only (CardioScarWidget._updateRuleOnlyBoxes)
RULE_ONLY_BOXES = ("scarThresholdsLineEdit", "scarTargetComboBox", "bloodPoolSelector", "bloodPoolLabelsLineEdit",
                   "bloodPoolSegmentLineEdit", "remoteSelector", "remoteSegmentLineEdit", "intensityOffsetSpinBox",
                   "darkBloodLgeCheckBox")
#: Seconds between progress lines in the log pane (the progress bar shows every report).
LOG_PROGRESS_S = 5.0
#: The panel's path boxes (ctkPathLineEdit, with a browse button) -> the string parameter each keeps:
#: the saved model (a file), the export prefix (a file name to write) and the channel folder.
PATH_BOXES = {"savedModelPathLineEdit": "savedModelPath", "exportPrefixLineEdit": "exportPrefix",
              "channelOutputDirLineEdit": "channelOutputDir"}
#: The module's documentation: its page of the user guide (``Documentation/slicer-module.md``) on the
#: extension's homepage (EXTENSION_HOMEPAGE in the top CMakeLists.txt), linked from the help, as
#: Slicer's module template links its own.
DOCUMENTATION_URL = "https://github.com/cardioscar/SlicerCardioScar/blob/main/Documentation/slicer-module.md#3d-slicer-module"


def documentationLink(url: str) -> str:
    """The help text's last paragraph: a link to the module's documentation."""
    return "<p>" + _("See the {start}module documentation{end}.").format(start=f'<a href="{url}">', end="</a>") + "</p>"


class CardioScar(ScriptedLoadableModule):
    """Module description shown by Slicer."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("CardioScar")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Cardiac")]
        self.parent.dependencies = []
        self.parent.contributors = ["CardioScar developers"]
        self.parent.helpText = _(
            "Reconstruct 3D myocardial scar on a heart mesh from a few 2D LGE-MRI slices. "
            "Each pixel of each chosen slice constrains the mean of a coordinate network over the mesh nodes "
            "inside its footprint (pixel square x slab of the given half-width); MC dropout gives a scar "
            "probability and its uncertainty per node (point arrays scar_probability, scar_uncertainty).") + \
            documentationLink(DOCUMENTATION_URL)
        self.parent.acknowledgementText = _(
            "Method: Sen et al., Comput Biol Med 198:111219 (2025). Built on 3D Slicer and PyTorch.")


@parameterNodeWrapper
class CardioScarParameterNode:
    """Panel state; saved with the scene so that reopening it restores the panel.

    Slice indices and scar labels are strings (there is no widget connector for a list of ints);
    the Logic parses them and reports the valid range on error. The training defaults are the
    fast preset's, for interactive use (the command line and batch mode default to the
    documented preset, one click away in the preset box); the others equal the command line's.
    ``savedModelPath``, ``exportPrefix`` and ``channelOutputDir`` are strings kept by the panel
    itself (:data:`PATH_BOXES`: path boxes with a browse button, which Slicer's connectors bind to
    a path parameter only, whose default ``Path()`` a path box shows as "."); ``resultModel`` (the newest result) is kept by
    the panel too and read by *Colour by*.

    Adding an option: a field here, a widget with that name as its ``SlicerParameterName`` in
    the .ui (bound by :meth:`CardioScarWidget._guiMapping`), and its keyword in
    :meth:`CardioScarWidget.options`; Testing/test_slicer_ui.py checks that the three agree.
    """

    # None belongs in the Union: the wrapper writes each default (None) when it wraps a node
    inputVolume: Union[vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, None]
    sliceAxis: Annotated[str, Choice(["z", "y", "x"])] = "z"
    sliceIndices: str = ""
    scarLabels: str = ""
    myocardiumLabels: str = ""
    myocardiumSegment: str = ""
    # a label map / 0-1 volume; with a scar rule also a segmentation (its segment: myocardiumSegment)
    myocardiumMask: Union[vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, None]
    # pixels next to the myocardium that read its nearest pixel (cardioscar prepare --myocardium-margin)
    myocardiumMargin: Annotated[int, WithinRange(0, 10)] = 0
    heartModel: vtkMRMLModelNode
    preset: Annotated[str, Choice(["fast", "documented"])] = "fast"
    halfThickness: Annotated[float, WithinRange(0.1, 100.0)] = 5.0
    halfThicknessFromDicom: bool = False
    sliceProfile: Annotated[str, Choice(["box", "gaussian"])] = "box"  # cardioscar prepare --slice-profile
    maxEpochs: Annotated[int, WithinRange(1, 1000000)] = 600
    earlyStoppingPatience: Annotated[int, WithinRange(1, 1000000)] = 600
    trainingMcSamples: Annotated[int, WithinRange(1, 100)] = 1
    inferenceMcSamples: Annotated[int, WithinRange(1, 1000)] = 10
    useThreshold: bool = True
    # the range the box offers (Slicer's spin-box connector replaces the .ui's minimum and maximum by
    # WithinRange): inside the Logic's 0 < threshold < 1 (cardioscar.io.checks.check_threshold)
    threshold: Annotated[float, WithinRange(0.01, 0.99)] = 0.5
    seed: Annotated[int, WithinRange(0, 2147483647)] = 42
    normalizeIntensities: bool = False
    partialVolumeCorrection: bool = False
    shapePrior: Annotated[str, Choice(["auto", "on", "off"])] = "auto"  # cardioscar train --shape-prior
    forceCpu: bool = False
    outputToNewModel: bool = False
    savedModelPath: str = ""
    # the newest result, which *Colour by* recolours; kept by the panel (no widget of its own), so that a
    # reloaded scene can still be recoloured and the box shows what that model's display shows
    resultModel: vtkMRMLModelNode
    # AHA segments: the model to divide, the RV insertion (points, or a label map and its
    # labels; the points win when both are chosen) and optionally the apex and base points
    ahaModel: vtkMRMLModelNode
    ahaRvMarkups: vtkMRMLMarkupsFiducialNode
    ahaLabels: vtkMRMLLabelMapVolumeNode
    ahaRvLabel: Annotated[int, WithinRange(0, 255)] = 1
    ahaMyocardiumLabel: Annotated[int, WithinRange(0, 255)] = 2
    ahaApexBase: vtkMRMLMarkupsFiducialNode
    # scar rule on raw LGE (the myocardium is the Inputs' myocardium mask), tissue tags and export
    scarRule: Annotated[str, Choice(["none", "nsd", "fwhm", "iir", "psi"])] = "none"
    scarThresholds: str = ""
    # what the network learns: scar (border zone + core) or core (a second run: onto a new model node)
    scarTarget: Annotated[str, Choice(["scar", "core"])] = "scar"
    bloodPoolMask: Union[vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode, None]
    bloodPoolLabels: str = ""
    bloodPoolSegment: str = ""
    # labels of the myocardium label map the experts drew as scar / as core (used with a rule only)
    expertScarLabels: str = ""
    expertCoreLabels: str = ""
    remoteMask: Union[vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode, None]
    remoteSegment: str = ""
    intensityOffset: Annotated[float, WithinRange(-100000.0, 100000.0)] = 0.0
    # a dark-blood LGE: the rule's check of the myocardium mask against the bright blood pool is skipped
    darkBloodLge: bool = False
    tagModel: vtkMRMLModelNode
    # the core field of a two-field tagging: a core model's result (its tagCoreField, default
    # scar_probability), else tagCoreField of the model to tag; neither = one field
    tagCoreModel: vtkMRMLModelNode
    tagCoreField: str = ""
    tagBorderZone: Annotated[float, WithinRange(0.01, 0.99)] = 0.5
    tagCore: Annotated[float, WithinRange(0.01, 0.99)] = 0.8
    tagNumbers: str = "1,2,3"
    exportFormat: Annotated[str, Choice(["opencarp", "vtu"])] = "opencarp"
    exportUnits: Annotated[str, Choice(["um", "mm"])] = "um"
    exportPrefix: str = ""
    # the LV fibre rule's fibres in the export (PREFIX.lon, or a .vtu's fibre/sheet cell vectors)
    exportFibreRule: bool = False
    exportHelixAngles: str = "60,-60"
    # border-zone conducting channels of the model to tag (its tissue_tag, else its result cut at the
    # thresholds above); the defaults are cardioscar channels' (ChannelOptions)
    channelLayers: str = "0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9"
    channelLayerWidth: Annotated[float, WithinRange(0.01, 1.0)] = 0.2
    channelMaxWidth: Annotated[float, WithinRange(0.5, 30.0)] = 10.0
    channelMinLength: Annotated[float, WithinRange(0.0, 200.0)] = 10.0
    channelOutputDir: str = ""
    # scoring a result against the experts' labels of the slices (cardioscar evaluate --truth-image); the
    # slice axis, slab half-width and threshold are the Options' (the slices read as training reads them)
    scoreModel: vtkMRMLModelNode
    scoreTruth: Union[vtkMRMLLabelMapVolumeNode, vtkMRMLSegmentationNode, None]
    scoreScarLabels: str = ""
    scoreMyocardiumLabels: str = ""
    scoreMyocardiumSegment: str = ""
    scoreMyocardiumMask: Optional[vtkMRMLScalarVolumeNode]
    scoreSliceIndices: str = ""
    scoreWriteTruth: bool = False


class LineEditConnector(GuiConnector):
    """A line edit bound to a string parameter that leaves the text alone when it already holds
    the value. Slicer 5.8's own connector sets the text on every parameter change, including
    the one the user's keystroke caused, which moves the cursor to the end while typing."""

    @staticmethod
    def canRepresent(widget, datatype) -> bool:
        return isinstance(widget, qt.QLineEdit) and datatype is str

    @staticmethod
    def create(widget, datatype):
        return LineEditConnector(widget) if LineEditConnector.canRepresent(widget, datatype) else None

    def __init__(self, widget) -> None:
        super().__init__()
        self._widget = widget

    def _connect(self) -> None:
        self._widget.connect("textChanged(QString)", self.changed)

    def _disconnect(self) -> None:
        self._widget.disconnect("textChanged(QString)", self.changed)

    def widget(self):
        return self._widget

    def read(self) -> str:
        return self._widget.text

    def write(self, value: str) -> None:
        if self._widget.text != value:
            self._widget.text = value


class WorkerPanelMixin:
    """What the extension's panels (CardioScar, Attri-VAE) share around their worker runs.

    One parameter-node connection per node, made with ``connectParametersToGui`` (which returns a
    tag on Slicer 5.8 and 5.10, unlike ``connectGui`` on 5.8) and kept while the module is hidden,
    so entering the module again adds nothing; closing the scene, reloading the module and
    quitting Slicer end a running worker; *Stop* ends it and leaves the scene as it was.

    The panel defines ``self.ui`` (with ``statusLabel`` and ``logTextEdit``), ``self._run`` (None
    or a run with ``stop()``), ``self._parameterNode``, ``self._parameterNodeGuiTag``, and the
    methods ``initializeParameterNode``, ``_updatePanel``, ``_setRunning`` and ``_pollRun``; it
    calls :meth:`_connectLifecycle` in ``setup()``.
    """

    def _connectLifecycle(self) -> None:
        """Scene close/import observers, the timer that polls a run, and Slicer's quit signal."""
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndImportEvent, self.onSceneEndImport)
        self._timer = qt.QTimer()
        self._timer.setInterval(POLL_INTERVAL_MS)
        self._timer.connect("timeout()", self._pollRun)
        slicer.app.connect("aboutToQuit()", self._stopRun)

    def cleanup(self) -> None:
        """Module reload or application exit: end a running worker, drop every observer and
        connection (a reloaded module's old panel must not stay reachable from the application)."""
        self._stopRun()
        self.setParameterNode(None)
        self.removeObservers()
        slicer.app.disconnect("aboutToQuit()", self._stopRun)

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        """Nothing to undo: the panel stays connected to its parameter node while hidden
        (disconnecting and connecting again on each visit is what piled up connectors)."""

    def onSceneStartClose(self, caller, event) -> None:
        """Stop a run (closing the scene removes its nodes). The parameter node is a singleton
        that survives the close (reset), so the panel stays connected to it: disconnecting and
        connecting again would leave one more observer on it each time on Slicer 5.8."""
        self._stopRun()

    def onSceneEndClose(self, caller, event) -> None:
        """Reconnect to the reset parameter node, and empty the status line: its last message spoke of
        the closed scene's nodes (a result, a score, a stopped run); the log keeps it."""
        if self.parent.isEntered:
            self.initializeParameterNode()
        self.ui.statusLabel.text = ""

    def onSceneEndImport(self, caller, event) -> None:
        """A scene loaded into the open panel: its parameter node's values replaced ours (the
        widgets follow), and the nodes it names (CardioScar's "Also use" inputs) exist only now.
        Their data too: the scene reads the files after it set the references (which updated the
        panel while the models were still empty), so the panel is updated again here, or a
        loaded result would leave the buttons that need it disabled."""
        self.initializeParameterNode()
        self._updatePanel()

    def setParameterNode(self, inputParameterNode) -> None:
        """Connect the widgets to ``inputParameterNode``; nothing happens when it wraps the
        parameter node already connected."""
        current = self._parameterNode.parameterNode if self._parameterNode else None
        if inputParameterNode is not None and inputParameterNode.parameterNode is current:
            return
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode.parameterNode, vtk.vtkCommand.ModifiedEvent, self._updatePanel)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectParametersToGui(self._guiMapping())
            self.addObserver(self._parameterNode.parameterNode, vtk.vtkCommand.ModifiedEvent, self._updatePanel)
            self._parameterNodeConnected()
            self._updatePanel()

    def _parameterNodeConnected(self) -> None:
        """Hook: the widgets were just connected to a parameter node (before the panel updates)."""

    def _guiMapping(self) -> dict:
        """Parameter name -> widget (or connector) of every widget with a SlicerParameterName."""
        mapping = {}
        for widget in self.ui.__dict__.values():
            name = widget.property("SlicerParameterName") if hasattr(widget, "property") else None
            if name:
                mapping[str(name)] = LineEditConnector(widget) if type(widget) is qt.QLineEdit else widget
        return mapping

    def _log(self, line: str) -> None:
        self.ui.logTextEdit.appendPlainText(line)

    def _logWarning(self, message: str, aha: bool = False) -> None:
        """A library warning in the Log section, with the panel's box names for its options (``aha``:
        the AHA section's, :func:`CardioScarLogic.wording.in_panel_words`)."""
        self._log(_("Warning: ") + in_panel_words(message, aha=aha))

    @contextlib.contextmanager
    def _warningsInLog(self, aha: bool = False):
        """The library's warnings raised in the block (reading the inputs, writing a result: on the
        main thread, where they reached only the Python console) go to the Log section, also when
        the block fails (they come before its error line)."""
        with library_warnings() as heard:
            try:
                yield
            finally:
                for message in heard:
                    self._logWarning(message, aha)

    def _stopRun(self) -> None:
        """End the worker now; the scene and the user's files stay as they were."""
        if self._run is None:
            return
        self._timer.stop()
        self._run.stop()
        self._setRunning(False)
        self.ui.statusLabel.text = _("Stopped: nothing was changed.")
        self._log(self.ui.statusLabel.text)


class CardioScarWidget(WorkerPanelMixin, ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel.

    Parameter node and worker lifecycle: :class:`WorkerPanelMixin`. Runs: the inputs are read on
    the main thread (fast; a bad input is one line in the status), then a worker process trains
    and predicts while a timer reads its reports into the log and the progress bar; the scene
    is written only when the worker finished.
    """

    def __init__(self, parent=None) -> None:
        # State first: without a parent, Slicer's base class calls setup() inside __init__. Its
        # super().__init__() also initialises VTKObservationMixin (calling that again would drop
        # the observers setup() added).
        self.logic: Optional[CardioScarLogic] = None
        self._parameterNode: Optional[CardioScarParameterNode] = None
        self._parameterNodeGuiTag = None
        self._run: Optional[BackgroundRun] = None
        self._runButton = None
        self._runOutput = None
        self._runFinish = None  # writes a finished run's result into the scene (see _startRun)
        self._runAha = False  # the run is the AHA section's: its messages in its words (see _startRun)
        self._disabledForRun = []  # the widgets a run or a step disabled, enabled again after it
        self._resultObserved = []  # (node, event) of the newest result observed for the Results section
        self._torchDeclined = False
        self._lastProgressLog = 0.0
        self._bullseye = KeptFile("cardioscar-aha-", "aha_bullseye.png")  # the last bull's-eye, until replaced
        # the model (node ID) the last bull's-eye and the last score describe: a new result on it outdates them
        self._bullseyeModelId: Optional[str] = None
        self._scoreModelId: Optional[str] = None
        ScriptedLoadableModuleWidget.__init__(self, parent)

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CardioScar.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CardioScarLogic()

        self._connectLifecycle()
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.applySavedButton.connect("clicked(bool)", self.onApplySavedButton)
        self.ui.saveModelButton.connect("clicked(bool)", self.onSaveModelButton)
        self.ui.installTorchButton.connect("clicked(bool)", self.onInstallTorchButton)
        self.ui.computeAhaButton.connect("clicked(bool)", self.onComputeAhaButton)
        self.ui.saveBullseyeButton.connect("clicked(bool)", self.onSaveBullseyeButton)
        self.ui.tagButton.connect("clicked(bool)", self.onTagButton)
        self.ui.exportButton.connect("clicked(bool)", self.onExportButton)
        self.ui.findChannelsButton.connect("clicked(bool)", self.onFindChannelsButton)
        self.ui.scoreButton.connect("clicked(bool)", self.onScoreButton)
        self.ui.resultFieldComboBox.connect("activated(int)", self.onResultFieldActivated)
        # "activated": user choices only, so restoring a saved scene keeps its epoch values.
        self.ui.presetComboBox.connect("activated(int)", self.onPresetActivated)
        self.ui.extraInputsSelector.connect("checkedNodesChanged()", self._onExtraInputsChanged)
        for box, name in PATH_BOXES.items():
            getattr(self.ui, box).connect("currentPathChanged(QString)",
                                          lambda path, name=name: self._onPathChanged(name, path))
        self.ui.progressBar.setVisible(False)
        # the .ui's tool tips of the boxes a scar rule switches and of the buttons that may wait for an input,
        # shown while the box applies or the button can run (else the reason replaces them: _applies)
        self._writtenToolTips = {name: getattr(self.ui, name).toolTip for name in (
            "myocardiumMarginSpinBox", "scarLabelsLineEdit", "normalizeCheckBox", "expertScarLabelsLineEdit",
            "expertCoreLabelsLineEdit", *RULE_ONLY_BOXES, "applySavedButton", "saveModelButton", "saveBullseyeButton")}
        self._updateDependencies()
        self.initializeParameterNode()

    def onReload(self) -> None:
        """Developer reload: re-read the Logic package too (Slicer re-reads only this file).

        Leaf modules first, so that modules importing names from them bind the new versions.
        """
        import importlib

        for name in ("worker", "wording", "scratch", "geometry", "headless", "options", "results", "render",
                     "scarsource", "myocardium", "slabwidth", "acquisition", "layout", "aha", "tissue", "channels", "rulemasks",
                     "logic", "background", ""):
            module = sys.modules.get("CardioScarLogic" + (f".{name}" if name else ""))
            if module is not None:
                importlib.reload(module)
        ScriptedLoadableModuleWidget.onReload(self)

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            first = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if first:
                self._parameterNode.inputVolume = first
        if not self._parameterNode.heartModel:
            first = self.logic.default_heart_model()
            if first:
                self._parameterNode.heartModel = first
        self._restoreExtraInputs()

    def _parameterNodeConnected(self) -> None:
        self._restoreExtraInputs()

    def _restoreExtraInputs(self) -> None:
        """Check the "Also use" nodes kept on the parameter node (e.g. by a saved scene)."""
        kept = {node.GetID() for node in self.logic.extra_inputs(self._parameterNode.parameterNode)}
        selector = self.ui.extraInputsSelector
        wasBlocked = selector.blockSignals(True)
        for index in range(selector.nodeCount()):
            node = selector.nodeFromIndex(index)
            selector.setCheckState(node, qt.Qt.Checked if node.GetID() in kept else qt.Qt.Unchecked)
        selector.blockSignals(wasBlocked)

    def _onExtraInputsChanged(self) -> None:
        if self._parameterNode is not None:
            self.logic.set_extra_inputs(self._parameterNode.parameterNode, self.ui.extraInputsSelector.checkedNodes())
        self._updatePanel()

    def _onPathChanged(self, name: str, path: str) -> None:
        """A path box (:data:`PATH_BOXES`) edited or browsed: its string parameter follows."""
        if self._parameterNode is not None and getattr(self._parameterNode, name) != path:
            setattr(self._parameterNode, name, path)

    # ------------------------------------------------------------------ state

    def _updatePanel(self, caller=None, event=None) -> None:
        """Enable actions that have their inputs; show the valid slice range."""
        if self._parameterNode is None:
            return
        p = self._parameterNode
        for box, name in PATH_BOXES.items():
            if getattr(self.ui, box).currentPath != getattr(p, name):
                getattr(self.ui, box).currentPath = getattr(p, name)
        if self._runButton is not None:  # a run: _setRunning(False) updates the panel after it
            return
        inputs = self._inputNodes()
        counts = [self.logic.slice_count(node, p.sliceAxis) for node in inputs]
        count = sum(counts) if counts and all(counts) else 0
        if p.inputVolume is None:
            self.ui.sliceRangeLabel.text = _("select a volume")
        elif count and len(inputs) > 1:
            self.ui.sliceRangeLabel.text = _("0 to {last} along {axis} ({count} slices of {inputs} inputs)").format(
                last=count - 1, axis=p.sliceAxis, count=count, inputs=len(inputs))
        elif count:
            self.ui.sliceRangeLabel.text = _("0 to {last} along {axis} ({count} slices)").format(
                last=count - 1, axis=p.sliceAxis, count=count)
        else:
            self.ui.sliceRangeLabel.text = _("from the segmentation's reference geometry")
        self.ui.thresholdSpinBox.enabled = p.useThreshold
        self.ui.halfThicknessSpinBox.enabled = not p.halfThicknessFromDicom
        self._updateBoxesARuleReplaces()
        self._updateRuleOnlyBoxes()
        self._updateExpertBoxes()
        canTrain = bool(p.inputVolume and p.heartModel)
        self.ui.applyButton.enabled = canTrain
        self.ui.applyButton.toolTip = (_("Train on the chosen slices and write the scar fields on the mesh")
                                       if canTrain else _("Select the LGE volume and the heart mesh"))
        self._updateSavedModelButtons()
        missing = self._ahaMissing()
        self.ui.computeAhaButton.enabled = not missing
        self.ui.computeAhaButton.toolTip = missing or _(
            "Write aha_segment on the model, fill its AHA table and draw the bull's-eye; scar is counted where "
            "scar_probability >= {threshold:g} (not at the Options' Threshold)").format(threshold=PANEL_AHA_THRESHOLD)
        self._applies("saveBullseyeButton", self._bullseye.path is not None,
                      _("No bull's-eye yet: run Compute AHA segments first."))
        self._updateTissueSection()
        self._updateScoreSection()
        self._updateResultField()

    def _updateSavedModelButtons(self) -> None:
        """*Apply a saved model* and *Save model* are enabled when they can run, their tool tips saying
        what is missing otherwise, as every other action button's do."""
        p = self._parameterNode
        path = p.savedModelPath.strip()
        # a path restored with a scene may name a file moved, deleted or on another computer since
        found = path.lower().endswith(".pth") and pathlib.Path(path).is_file()
        if not p.heartModel:
            why = _("Select the heart mesh to predict on.")
        elif path.lower().endswith(".pth") and not found:
            why = _("The saved model '{path}' is not there (moved, deleted, or the scene was saved on another "
                    "computer): choose it again in the box above.").format(path=path)
        else:
            why = _("Choose a saved CardioScar model (.pth) in the box above.")
        self._applies("applySavedButton", bool(p.heartModel and found), why)
        self._applies("saveModelButton", self.logic.last_checkpoint is not None,
                      _("Nothing trained in this scene yet: run Train and apply first."))

    def _updateBoxesARuleReplaces(self) -> None:
        """A scar rule grades the raw LGE's myocardium pixels into the targets, so the boxes that make
        targets otherwise mean nothing under it: the margin (it widens a myocardium that gates pixels),
        *Scar labels* (which labels are scar) and *Normalise intensities* (intensities as targets). The
        Logic and the command line refuse them with a rule; so the boxes are disabled (their values kept
        for when the rule goes back to none, and not used meanwhile: see :meth:`options`) and their tool
        tips say why, as the threshold box is while *Threshold* is off."""
        rule = self._parameterNode.scarRule
        why = {"myocardiumMarginSpinBox": _("the rule grades the myocardium's own pixels, so there is no margin to "
                                            "widen"),
               "scarLabelsLineEdit": _("the rule grades the raw LGE into border zone and core; for the experts' scar "
                                       "give Expert scar labels"),
               "normalizeCheckBox": _("the rule's grades are the targets, not the intensities")}
        for name, reason in why.items():
            self._applies(name, rule == "none", _("Not used with a scar rule ({rule}): {reason}. Set Scar rule to none "
                                                  "to use it.").format(rule=rule, reason=reason))

    def _updateRuleOnlyBoxes(self) -> None:
        """The boxes that set up a scar rule (its thresholds, what it learns, the blood pool, the remote
        myocardium, the intensity offset) mean nothing without one (the command line refuses them, the
        Logic ignores them), so without a rule they are disabled, their values kept and not used
        (:meth:`options`, :meth:`onApplyButton`), and their tool tips say why, as the margin box's
        does under a rule."""
        for name in RULE_ONLY_BOXES:
            self._applies(name, self._parameterNode.scarRule != "none", _(
                "Not used without a scar rule: it sets up the rule that grades the raw LGE. Choose a Scar rule "
                "(nsd, fwhm, iir or psi) to use it."))

    def _updateExpertBoxes(self) -> None:
        """The experts' labels say where a scar rule grades, in the myocardium mask's label map; without a
        rule, or with a segmentation as the mask (it has no labels), they mean nothing (the Logic refuses
        them), so their boxes are disabled, their values kept and not used (:meth:`options`), and their
        tool tips say why, as the margin box's does under a rule."""
        if self._parameterNode.scarRule == "none":
            why = _("Not used without a scar rule: the experts' labels say where the rule grades the LGE (border "
                    "zone or core inside them). Choose a Scar rule (nsd, fwhm, iir or psi) to use them.")
        else:
            why = _("Not used with a segmentation as the Myocardium mask: the experts' labels are labels of a label "
                    "map. Choose the experts' label map as the Myocardium mask to use them.")
        for name in ("expertScarLabelsLineEdit", "expertCoreLabelsLineEdit"):
            self._applies(name, self._expertLabelsApply(), why)

    def _expertLabelsApply(self) -> bool:
        """A scar rule grades inside the experts' labels of a label map chosen as the myocardium mask."""
        p = self._parameterNode
        return p.scarRule != "none" and not (p.myocardiumMask is not None
                                             and p.myocardiumMask.IsA("vtkMRMLSegmentationNode"))

    def _applies(self, name: str, applies: bool, why: str) -> None:
        """Enable the box ``self.ui.<name>`` with the .ui's tool tip where its value is used; else disable
        it and say ``why``."""
        box = getattr(self.ui, name)
        box.enabled = applies
        box.toolTip = self._writtenToolTips[name] if applies else why

    def _updateResultField(self) -> None:
        """The Results section follows the newest result in the scene, so that it holds after a
        scene reload and says nothing of a closed scene's result: its summary table as the summary,
        and *Colour by* enabled while that model holds a result, its item the field the display
        shows, and no item when the display shows another one (Tag tissue colours it by tissue_tag)
        or no scalars, so that the box never names a field the 3D view is not showing."""
        model = self._parameterNode.resultModel
        mesh = model.GetMesh() if model is not None else None
        hasResult = mesh is not None and mesh.GetPointData().GetArray(PROBABILITY) is not None
        table = model.GetNodeReference(SUMMARY_REFERENCE) if hasResult else None
        if table is not None and table.GetTable() is not None and table.GetNumberOfColumns() >= 3:
            rows = "".join(f"<tr><td>{table.GetCellText(r, 0)}</td><td align='right'><b>{table.GetCellText(r, 1)}</b> "
                           f"{table.GetCellText(r, 2)}</td></tr>" for r in range(table.GetNumberOfRows()))
            self.ui.resultsLabel.text = f"<table>{rows}</table>"
        else:
            self.ui.resultsLabel.text = _("No result yet.")
        display = model.GetDisplayNode() if hasResult else None
        self._observeResult(model, table, display)
        shown = display.GetActiveScalarName() if display is not None and display.GetScalarVisibility() else None
        fields = list(SHOWN_FIELDS)
        combo = self.ui.resultFieldComboBox
        combo.enabled = hasResult
        combo.currentIndex = fields.index(shown) if shown in fields else -1

    def _observeResult(self, model, table, display) -> None:
        """Observe the newest result (and no other): the model node (its ModifiedEvent, and
        MeshModifiedEvent, which Slicer's model node sends when its mesh's arrays change:
        vtkMRMLModelNode::ProcessMRMLEvents), its summary table and its display node, so that a
        rerun, a tagging or a colouring made elsewhere (the Python console through the Logic, the
        Models module) shows in the summary and *Colour by* too. The Logic writes the arrays before
        the table, so the table is observed as well, or the summary would show the old rows."""
        wanted = [(node, event) for node, events in ((model, (vtk.vtkCommand.ModifiedEvent,
                                                              slicer.vtkMRMLModelNode.MeshModifiedEvent)),
                                                     (table, (vtk.vtkCommand.ModifiedEvent,)),
                                                     (display, (vtk.vtkCommand.ModifiedEvent,)))
                  if node is not None for event in events]
        if wanted == self._resultObserved:
            return
        for node, event in self._resultObserved:
            self.removeObserver(node, event, self._onResultModified)
        for node, event in wanted:
            self.addObserver(node, event, self._onResultModified)
        self._resultObserved = wanted

    def _onResultModified(self, caller, event) -> None:
        if self._parameterNode is not None:
            self._updateResultField()

    def _inputNodes(self) -> list:
        """The input node, then the checked "Also use" nodes (the input itself counted once)."""
        first = self._parameterNode.inputVolume if self._parameterNode else None
        if first is None:
            return []
        extra = [node for node in self.ui.extraInputsSelector.checkedNodes() if node.GetID() != first.GetID()]
        return [first] + extra

    def onPresetActivated(self, index: int) -> None:
        """Load the chosen preset's training values into the panel (still editable)."""
        preset = self.ui.presetComboBox.itemText(index)
        if self._parameterNode is None or preset not in PRESET_PANEL_VALUES:
            return
        with slicer.util.NodeModify(self._parameterNode.parameterNode):
            for name, value in PRESET_PANEL_VALUES[preset].items():
                setattr(self._parameterNode, name, value)

    def options(self) -> ReconstructionOptions:
        """The panel's values as Logic options."""
        p = self._parameterNode
        ruled = p.scarRule != "none"
        return ReconstructionOptions(
            slice_axis=p.sliceAxis, slice_indices=p.sliceIndices,
            half_thickness="auto" if p.halfThicknessFromDicom else p.halfThickness,
            # the boxes a rule replaces are disabled with one (_updateBoxesARuleReplaces): not used then
            scar_labels=p.scarLabels if not ruled else "", myocardium_labels=p.myocardiumLabels,
            myocardium_segment=p.myocardiumSegment, myocardium_margin=p.myocardiumMargin if not ruled else 0,
            slice_profile=p.sliceProfile, normalize_intensities=p.normalizeIntensities and not ruled,
            partial_volume_correction=p.partialVolumeCorrection, preset=p.preset, shape_prior=p.shapePrior,
            max_epochs=p.maxEpochs, early_stopping_patience=p.earlyStoppingPatience,
            mc_samples=p.trainingMcSamples, seed=p.seed, inference_mc_samples=p.inferenceMcSamples,
            threshold=p.threshold if p.useThreshold else None, force_cpu=p.forceCpu,
            scar_rule=None if p.scarRule == "none" else p.scarRule,
            # the rule-only boxes are disabled without a rule (_updateRuleOnlyBoxes), the expert ones also
            # with a segmentation as the myocardium mask (_updateExpertBoxes): not used then
            scar_thresholds=p.scarThresholds if ruled else "", scar_target=p.scarTarget if ruled else "scar",
            blood_pool_labels=p.bloodPoolLabels if ruled else "", blood_pool_segment=p.bloodPoolSegment if ruled else "",
            remote_segment=p.remoteSegment if ruled else "", intensity_offset=p.intensityOffset if ruled else 0.0,
            dark_blood_lge=p.darkBloodLge if ruled else False,
            expert_scar_labels=p.expertScarLabels if self._expertLabelsApply() else "",
            expert_core_labels=p.expertCoreLabels if self._expertLabelsApply() else "")

    # ------------------------------------------------------------------ dependencies

    def _updateDependencies(self) -> None:
        """Show the installed torch version; the button installs one, or updates one older than the
        library supports (the PyTorch extension's pip keeps a torch that already meets it)."""
        version = installed_torch_version()
        self.ui.torchVersionLabel.text = version or _("not installed")
        self.ui.installTorchButton.text = _("Update PyTorch") if version else _("Install PyTorch")
        self.ui.installTorchButton.toolTip = _(
            "Install PyTorch {requirement} through the PyTorch extension, which picks the build that matches your GPU "
            "driver. An installed PyTorch that meets {requirement} is kept: to replace it, uninstall it in the PyTorch "
            "Utils module and restart Slicer first.").format(requirement=TORCH_REQUIREMENT)

    def onInstallTorchButton(self) -> None:
        """The Dependencies section's button. A failed install (no network, a file in use: the PyTorch
        extension raises, as its own panel's button shows in an error dialog) is one line in the status
        and the log, and the section shows what is installed now; raised in this Qt slot it reached only
        the Python console and the button seemed dead."""
        try:
            self._installTorch(askConfirmation=True)
        except Exception as error:  # noqa: BLE001 - shown in the panel
            self._updateDependencies()
            first = str(error).splitlines()[0] if str(error) else ""
            self._showError(_("Installing PyTorch failed ({kind}: {error}): restart Slicer and try again, or use the "
                              "PyTorch Utils module.").format(kind=type(error).__name__, error=first),
                            traceback.format_exc())

    def _installTorch(self, askConfirmation: bool) -> None:
        """Install or update torch through the PyTorch extension (it picks the build that matches
        the GPU driver); an update of a torch this session has imported needs a restart."""
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            self._showError(_("Install the 'PyTorch' extension from the Extensions Manager and restart Slicer."))
            return
        loaded, before = "torch" in sys.modules, installed_torch_version()
        with slicer.util.WaitCursor():
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=askConfirmation,
                                                                 torchVersionRequirement=TORCH_REQUIREMENT)
        self._updateDependencies()
        if torch is None:  # the user declined the extension's own confirmation
            return
        after = installed_torch_version()
        if after == before:  # pip keeps a torch that meets the requirement: nothing to restart for
            self.ui.statusLabel.text = _("PyTorch {version} meets {requirement}: nothing was changed.").format(
                version=after, requirement=TORCH_REQUIREMENT)
        else:
            self.ui.statusLabel.text = _("PyTorch {version} installed.").format(version=after)
        self._log(self.ui.statusLabel.text)
        if after != before and loaded and slicer.util.confirmYesNoDisplay(
                _("PyTorch was updated from {before} to {after}. Restart Slicer now to use the new version?").format(
                    before=before, after=after)):
            slicer.util.restart()

    def _dependenciesReady(self) -> bool:
        """:meth:`ensureDependencies` with a failure shown in the status and the log (raised in a
        Qt slot it would only reach the Python console, and the button would seem dead)."""
        try:
            return self.ensureDependencies()
        except Exception as error:  # noqa: BLE001 - shown in the panel
            self._reportFailure(error)
            return False

    def ensureDependencies(self) -> bool:
        """torch through the PyTorch extension (asked once per session; an installed one older than
        TORCH_MINIMUM is refused with what to do), scikit-learn through pip."""
        missing = [req for module, req in PIP_REQUIREMENTS.items() if importlib.util.find_spec(module) is None]
        if missing:
            if not slicer.util.confirmOkCancelDisplay(
                    _("CardioScar needs these Python packages: {names}. Install them now?").format(names=", ".join(missing))):
                return False
            slicer.util.pip_install(missing)
        if importlib.util.find_spec("torch") is not None:
            # a torch another extension installed may be older than the library supports; Update PyTorch then
            # installs one that meets the requirement (as TotalSegmentator's module refuses one below its minimum)
            version = older_torch()
            if version is not None:
                self._showError(_("PyTorch {version} is older than the {requirement} CardioScar needs: click Update "
                                  "PyTorch in the Dependencies section, then restart Slicer.").format(
                                      version=version, requirement=TORCH_REQUIREMENT))
                return False
            return True
        if self._torchDeclined:
            self._showError(_("PyTorch is not installed: use Install PyTorch in the Dependencies section."))
            return False
        if not slicer.util.confirmOkCancelDisplay(
                _("CardioScar needs PyTorch, which is not installed yet. Install it now through the PyTorch "
                  "extension? It picks the build that matches your GPU driver (a download of up to a few GB).")):
            self._torchDeclined = True
            return False
        self._installTorch(askConfirmation=False)  # the user just said yes
        return importlib.util.find_spec("torch") is not None

    # ------------------------------------------------------------------ runs

    def _showError(self, message: str, details: str = "") -> None:
        """One line in the status and the log (the whole traceback only in the log)."""
        line = message.splitlines()[0] if message else _("Failed.")
        self.ui.statusLabel.text = line
        self._log(_("Error: ") + line)
        if details:
            self._log(details)

    def _reportFailure(self, error: Exception, names: dict = PANEL_NAMES, aha: bool = False) -> None:
        """A user error (CardioScarError) as its own line; anything else as its type and message,
        with the traceback in the log. ``names``: the boxes of the section that ran; ``aha``: it was
        the AHA's (its threshold is not the Options' 'Threshold')."""
        from cardioscar.errors import CardioScarError

        if isinstance(error, CardioScarError):  # the library's words, with the panel's box names
            self._showError(in_panel_words(library_words(error), names, aha))
        else:
            self._showError(f"{type(error).__name__}: {error}", traceback.format_exc())

    def _startRun(self, button, idleText: str, output, makeRun, startText: str, finish=None, aha: bool = False) -> None:
        """Read the inputs and start the worker; a bad input shows one line and starts nothing.
        ``output``: the model the result goes on (or is copied from, for a new model node);
        ``finish(run)``: writes the finished run's result into the scene and returns what shows it
        once the panel is idle again (default: a training or prediction's, :meth:`_writeReconstruction`);
        ``aha``: the AHA section's run, whose messages are worded as its own (:meth:`_reportFailure`)."""
        button.enabled = False  # the wait cursor processes pending events: a second click must not start twice
        try:
            # reading the scene and writing the job block the application
            with slicer.util.WaitCursor(), self._warningsInLog(aha):
                run = makeRun()
        except Exception as error:  # noqa: BLE001 - shown in the panel (a Qt slot's exception reaches the console only)
            button.enabled = True
            self._reportFailure(error, aha=aha)
            return
        self._run, self._runButton, self._runOutput, self._runAha = run, button, output, aha
        self._runFinish = finish or self._writeReconstruction
        button.setProperty("idleText", idleText)
        self._setRunning(True)
        self.ui.statusLabel.text = startText
        self._log(startText)
        self._timer.start()

    def _startAnalysis(self, button, idleText: str, model, missing, makeRun, startText: str, show,
                       aha: bool = False) -> None:
        """Start an analysis of ``model`` in a worker (AHA segments, tissue tags and export, the channel
        search), or stop the running one: all three write the finished run's result on the model
        they analysed and then show it. ``missing()``: what the section still needs, one line (empty:
        it can run), refused as a bad input is; ``makeRun()``: the run; ``startText``: the status
        line, ``{name}`` the model's name; ``show(model, result)``: the finished result shown; ``aha``:
        the AHA section's (its messages in its words)."""
        from cardioscar.errors import CardioScarError

        if self._run is not None:
            self._stopRun()
            return

        def checkedRun() -> BackgroundRun:
            reason = missing()
            if reason:
                raise CardioScarError(reason)
            return makeRun()

        def finish(run: BackgroundRun):
            result = run.finish(model)
            return lambda: show(model, result)

        self._startRun(button, idleText, model, checkedRun,
                       startText.format(name=model.GetName() if model is not None else ""), finish=finish, aha=aha)

    def _setRunning(self, running: bool) -> None:
        """While running, every other action is disabled and the run's button reads Stop. A section
        holding a Stop button (AHA segments, Tag tissue, Export) has its other widgets disabled one
        by one, since a disabled section would disable its Stop button with it."""
        button = self._runButton
        if running:  # exactly the widgets disabled here are enabled again afterwards
            self._disabledForRun = []
            for widget in (self.ui.inputsCollapsibleButton, self.ui.optionsCollapsibleButton, self.ui.applyButton,
                           self.ui.applySavedButton, self.ui.saveModelButton, self.ui.outputNewModelCheckBox,
                           self.ui.installTorchButton, self.ui.ahaCollapsibleButton, self.ui.tissueCollapsibleButton,
                           self.ui.scoreCollapsibleButton):
                # the section's own widgets (the .ui's form layout makes them its direct children; its
                # layout is a child too, and not a widget: checked as Slicer's parameterNodeWrapper does)
                inside = [child for child in widget.children() if getattr(child, "isWidgetType", lambda: False)()]
                self._disabledForRun += [each for each in (inside if button in inside else [widget])
                                         if each is not button and each.enabled]
            for widget in self._disabledForRun:
                widget.enabled = False
        else:
            for widget in self._disabledForRun:
                widget.enabled = True
            self._disabledForRun = []
        button.text = _("Stop") if running else button.property("idleText")
        button.enabled = True
        self.ui.progressBar.setVisible(running)
        # busy (Qt's indeterminate bar, minimum = maximum = 0, as Slicer's pip dialog in
        # slicer/packaging.py) until the first epoch's report sets the range: the worker's start,
        # the data preparation and a saved model's prediction report no fraction done, and a 0 %
        # bar (or the last run's "epoch 600/600" text) would say the wrong thing
        self.ui.progressBar.maximum = 0
        self.ui.progressBar.value = 0
        if not running:
            self._run = self._runButton = self._runOutput = self._runFinish = None
            self._updatePanel()

    def _pollRun(self) -> None:
        """Timer slot: move the worker's reports into the log and the progress bar; import the
        result once it ended."""
        run = self._run
        if run is None:
            self._timer.stop()
            return
        for message in run.messages():
            if message.kind == "progress":
                self._onProgress(message.fields)
            if message.kind == "error":
                continue  # _finishRun shows the worker's failure once, in the status and the log
            if message.kind == "warning":
                self._logWarning(message.fields.get("message", ""), self._runAha)
            elif message.kind != "progress" or self._progressWorthLogging(message.fields):
                self._log(message.text)
        if run.running:
            return
        self._timer.stop()
        self._finishRun(run)

    def _progressWorthLogging(self, fields: dict) -> bool:
        """A progress line every LOG_PROGRESS_S seconds and at the last epoch (the bar shows all)."""
        now = time.monotonic()
        if fields["epoch"] == fields["max_epochs"] or now - self._lastProgressLog >= LOG_PROGRESS_S:
            self._lastProgressLog = now
            return True
        return False

    def _onProgress(self, fields: dict) -> None:
        self.ui.progressBar.maximum = fields["max_epochs"]
        self.ui.progressBar.value = fields["epoch"]
        left = "?" if fields.get("eta_s") is None else f"{fields['eta_s']:.0f} s"
        self.ui.progressBar.format = _("epoch {epoch}/{total}  loss {loss:.4g}  <= {left} left").format(
            epoch=fields["epoch"], total=fields["max_epochs"], loss=fields["loss"], left=left)

    def _finishRun(self, run: BackgroundRun) -> None:
        """The worker ended: write its result into the scene (a failure there changes nothing and is
        one line), then show it. Stop is disabled first: the wait cursor processes pending events,
        and a click on Stop then would remove the job folder being read."""
        from cardioscar.errors import CardioScarError

        self._runButton.enabled = False
        aha = self._runAha  # _setRunning(False) forgets the run
        try:
            if not run.succeeded:
                raise CardioScarError(run.failure())
            with slicer.util.WaitCursor(), self._warningsInLog(aha):
                show = self._runFinish(run)
        except Exception as error:  # noqa: BLE001 - shown in the panel
            run.stop()
            self._setRunning(False)
            self._reportFailure(error, aha=aha)
            return
        self._setRunning(False)
        show()

    def _writeReconstruction(self, run: BackgroundRun):
        """A training or prediction's result on its model node (a new one when it must not replace
        another result; removed again when writing fails)."""
        inputModel = self._runOutput
        output = self._outputModel(inputModel, run)
        try:
            result = run.finish(output)
        except Exception:
            if output is not inputModel:
                slicer.mrmlScene.RemoveNode(output)
            raise
        return lambda: self._showReconstruction(result, output)

    def _showReconstruction(self, result, output) -> None:
        """Summary, layout and the sections that analyse the newest result."""
        self._forgetAnalysesOf(output)
        self._showResult(result, output)
        if learned_target(checkpoint=result.checkpoint) == "core":
            self._useAsCoreModel(output)
            return
        self._parameterNode.ahaModel = output  # the AHA section analyses the newest result
        self._parameterNode.scoreModel = output  # the scoring scores it
        self._parameterNode.tagModel = output  # and the tissue section tags it
        if not self._parameterNode.outputToNewModel:
            self._parameterNode.outputToNewModel = True  # the next run goes beside this one, for comparison

    def _learnsCore(self) -> bool:
        p = self._parameterNode
        return p.scarRule != "none" and p.scarTarget == "core"

    def _outputModel(self, inputModel, run: BackgroundRun):
        """The node a finished run writes on: a core result (a training run that learned the core,
        or a saved core model applied) always gets a new model node ("<mesh> CardioScar core"), so
        that it never replaces the scar result it is tagged with; otherwise the input model or,
        with *new model node* ticked, a copy of it."""
        core = (self._learnsCore() if self._runButton is self.ui.applyButton
                else learned_target(checkpoint=run.checkpoint) == "core")
        if core:
            return new_output_model(inputModel, "CardioScar core")
        return new_output_model(inputModel) if self._parameterNode.outputToNewModel else inputModel

    def _useAsCoreModel(self, output) -> None:
        """A core model's result becomes the tissue section's core model, with the two-field core
        threshold of the command line (0.5 on the core probability, as export --core-mesh)."""
        from cardioscar.simulation.tags import DEFAULT_CORE_TWO_FIELDS

        p = self._parameterNode
        with slicer.util.NodeModify(p.parameterNode):
            p.tagCoreModel, p.tagCoreField, p.tagCore = output, "", DEFAULT_CORE_TWO_FIELDS
        self._log(_("'{name}' is the core model of the tissue tags; Core from set to {core:g} (two fields).").format(
            name=output.GetName(), core=DEFAULT_CORE_TWO_FIELDS))

    def onApplyButton(self) -> None:
        """Train and apply in a worker (or stop the running one)."""
        if self._run is not None:
            self._stopRun()
            return
        if not self._dependenciesReady():
            return
        p = self._parameterNode
        ruled = p.scarRule != "none"
        self._startRun(self.ui.applyButton, _("Train and apply"), p.heartModel,
                       lambda: BackgroundRun.training(self.logic, self._inputNodes(), p.heartModel, self.options(),
                                                      myocardium_mask=p.myocardiumMask,
                                                      # disabled without a rule (_updateRuleOnlyBoxes): not used
                                                      blood_pool_node=p.bloodPoolMask if ruled else None,
                                                      remote_node=p.remoteMask if ruled else None),
                       _("Training..."))

    def onApplySavedButton(self) -> None:
        """Apply a saved model in a worker, without training (or stop it)."""
        if self._run is not None:
            self._stopRun()
            return
        if not self._dependenciesReady():
            return
        p = self._parameterNode
        self._startRun(self.ui.applySavedButton, _("Apply a saved model"), p.heartModel,
                       lambda: BackgroundRun.prediction(self.logic, p.savedModelPath, p.heartModel, self.options()),
                       _("Predicting..."))

    def onSaveModelButton(self) -> None:
        path = qt.QFileDialog.getSaveFileName(self.parent, _("Save CardioScar model"), "scar_model.pth",
                                              _("CardioScar model (*.pth)"))
        if not path:
            return
        from cardioscar.errors import CardioScarError

        try:
            self.logic.save_model(path)
        except CardioScarError as error:
            self._reportFailure(error)
            return
        self._parameterNode.savedModelPath = str(path)
        self.ui.statusLabel.text = _("Model saved to {path}").format(path=path)

    def _showResult(self, result, output) -> None:
        """Summary in the panel; the 3D view, the table and the loss plot in the results layout."""
        # the Logic coloured it by the probability and filled its table; the Results section follows
        self._parameterNode.resultModel = output
        self.ui.statusLabel.text = _("Done in {seconds:.1f} s on {device}: the result is on '{name}'.").format(
            seconds=result.seconds, device=result.device, name=output.GetName())
        self._log(self.ui.statusLabel.text)
        self.ui.deviceLabel.text = result.device
        layoutNode = layout_node_of(slicer.mrmlScene)
        if layoutNode is not None:
            show_results(layoutNode, slicer.app.applicationLogic(), result.table_node, result.chart_node)

    def onResultFieldActivated(self, index: int) -> None:
        """Colour the newest result by the chosen field (the items follow ``SHOWN_FIELDS``)."""
        from cardioscar.errors import CardioScarError

        model = self._parameterNode.resultModel  # None once removed, or after the scene was closed
        if model is None or model.GetScene() is None:
            self._updateResultField()
            self.ui.statusLabel.text = _("No result to colour: train or apply a model first.")
            return
        try:
            self.logic.show_field(model, list(SHOWN_FIELDS)[index])
        except CardioScarError as error:  # the display is as it was: the box goes back to what it shows
            self._reportFailure(error)
            self._updateResultField()

    # ------------------------------------------------------------------ AHA segments

    @staticmethod
    def _resultMissing(model, choose: str) -> str:
        """Empty when ``model`` holds a result (scar_probability); else what to do, as one line."""
        if model is None:
            return choose
        mesh = model.GetMesh()
        if mesh is None or mesh.GetPointData().GetArray("scar_probability") is None:
            return _("The model '{name}' has no scar_probability: train or apply a model on it first.").format(
                name=model.GetName())
        return ""

    def _ahaMissing(self) -> str:
        """What the AHA section still needs, as one line; empty when it can run."""
        p = self._parameterNode
        missing = self._resultMissing(p.ahaModel, _("Choose the model to divide into AHA segments."))
        if missing:
            return missing
        if p.ahaRvMarkups is None and p.ahaLabels is None:
            return _("Choose the RV insertion points (anterior first) or a label map with an RV label.")
        return ""

    def ahaInputs(self) -> AhaInputs:
        """The AHA section's choices as Logic inputs."""
        p = self._parameterNode
        return AhaInputs(rv_markups=p.ahaRvMarkups, labels_node=p.ahaLabels, rv_label=p.ahaRvLabel,
                         myocardium_label=p.ahaMyocardiumLabel, apex_base_markups=p.ahaApexBase)

    def cleanup(self) -> None:
        """As every panel (:meth:`WorkerPanelMixin.cleanup`), and the last bull's-eye's folder goes."""
        WorkerPanelMixin.cleanup(self)
        self._bullseye.discard()

    def onSceneEndClose(self, caller, event) -> None:
        """As every panel, and the last bull's-eye, score and trained model go with the scene they were
        made from: their labels and *Save bull's-eye* kept pointing at the closed scene's model, and *Save
        model* saved the closed scene's patient's network as if it were the next patient's."""
        WorkerPanelMixin.onSceneEndClose(self, caller, event)
        self.logic.last_checkpoint = None
        self._forgetBullseye()  # updates the panel: Save model and Save bull's-eye off, their tool tips saying why
        self._forgetScore()  # its figures were the closed scene's model's

    def _forgetBullseye(self) -> None:
        self._bullseye.discard()
        self._bullseyeModelId = None
        self.ui.ahaBullseyeLabel.text = _("No bull's-eye yet.")
        self._updatePanel()  # Save bull's-eye off, its tool tip saying why

    def _forgetScore(self) -> None:
        self._scoreModelId = None
        self.ui.scoreResultsLabel.text = _("No score yet.")

    def _forgetAnalysesOf(self, model) -> None:
        """A new result replaced the scar on ``model``: the last bull's-eye and score made from its earlier
        result (*Save bull's-eye* would save that scar's image, the score section showed its Dice) go, as
        the Logic removes that result's AHA and channel tables; the log says so."""
        for modelId, forget, what in ((self._bullseyeModelId, self._forgetBullseye, _("bull's-eye")),
                                      (self._scoreModelId, self._forgetScore, _("score"))):
            if modelId is not None and modelId == model.GetID():
                forget()
                self._log(_("The {what} of '{name}' described its earlier result: cleared; run it again on the new "
                            "result.").format(what=what, name=model.GetName()))

    def onComputeAhaButton(self) -> None:
        """AHA segments of the chosen model in a worker (or stop it): arrays and table on the model,
        the bull's-eye PNG in a temporary folder (kept for *Save bull's-eye* until the next one
        replaces it or the panel closes), the table in the results layout. A missing input is one
        status line at once; a failure in the worker, a Stop, or a model edited meanwhile changes
        nothing and keeps the previous bull's-eye.

        It runs in a worker with Stop, as Tag tissue and Export do: it takes seconds (4 s on a
        30,000-node phantom result, 6 s on 100,000 nodes and 530,000 tetrahedra, bull's-eye
        included, on a 2-core machine), which on the main thread blocked Slicer's event loop, so
        that its busy bar stood still and nothing could stop it."""
        p = self._parameterNode
        self._startAnalysis(self.ui.computeAhaButton, _("Compute AHA segments"), p.ahaModel, self._ahaMissing,
                            lambda: BackgroundRun.aha(p.ahaModel, self.ahaInputs(), bullseye=self._bullseye),
                            _("Computing AHA segments of '{name}'..."), self._showAha, aha=True)

    def _showAha(self, model, result) -> None:
        self._bullseyeModelId = model.GetID()
        self.ui.ahaBullseyeLabel.text = _("Bull's-eye: {path}").format(path=self._bullseye.path)
        self._updatePanel()  # Save bull's-eye on
        # at which probability it counted scar: the AHA's own threshold, not the Options' 'Threshold' box
        self.ui.statusLabel.text = _("AHA segments on '{name}' (scar where {field} >= {threshold:g}; the AHA does not "
                                     "read 'Threshold'): aha_segment written, table '{table}'.").format(
            name=model.GetName(), field=result.summary["field"], threshold=result.summary["threshold"],
            table=result.table_node.GetName())
        self._log(self.ui.statusLabel.text)
        layoutNode = layout_node_of(slicer.mrmlScene)
        if layoutNode is not None:
            show_results(layoutNode, slicer.app.applicationLogic(), result.table_node)

    def onSaveBullseyeButton(self) -> None:
        """Copy the last bull's-eye PNG where the user says (written atomically)."""
        from cardioscar.io.atomic import atomic_write

        path = qt.QFileDialog.getSaveFileName(self.parent, _("Save bull's-eye"), "aha_bullseye.png",
                                              _("PNG image (*.png)"))
        if not path or self._bullseye.path is None:
            return
        try:
            with atomic_write(path) as temporary:
                shutil.copyfile(self._bullseye.path, temporary)
        except Exception as error:  # noqa: BLE001 - shown in the panel
            self._reportFailure(error)
            return
        self.ui.statusLabel.text = _("Bull's-eye saved to {path}").format(path=path)


    # ------------------------------------------------------------------ tissue tags and export

    def _tissueMissing(self, export: bool = False) -> str:
        """What tagging (or exporting) still needs, as one line; empty when it can run."""
        p = self._parameterNode
        missing = self._resultMissing(p.tagModel, _("Choose the model to tag (a result with scar_probability)."))
        if missing:
            return missing
        if export and not p.exportPrefix.strip():
            return _("Type the output prefix (folder and file name without extension).")
        return ""

    def _updateTissueSection(self) -> None:
        """Enable Tag and Export when they have their inputs; the reason in their tool tips."""
        for button, export, idle in ((self.ui.tagButton, False, _("Write tissue_tag point and cell arrays, colour the "
                                                                  "model by tag and add volume rows to its table")),
                                     (self.ui.exportButton, True, _("Tag the model with the thresholds above and "
                                                                    "write the simulator files"))):
            missing = self._tissueMissing(export)
            button.enabled = not missing
            button.toolTip = missing or idle
        # both formats carry fibres (a .vtu as cell vectors), so the rule's box is never off for the format
        self.ui.exportHelixAnglesLineEdit.enabled = self._parameterNode.exportFibreRule
        # the units set the openCARP .pts alone: a .vtu keeps the mesh's millimetres, and a box left
        # on um beside it read as a heart written in micrometres (the command line refuses --units there)
        opencarp = self._parameterNode.exportFormat == "opencarp"
        self.ui.exportUnitsComboBox.enabled = opencarp
        self.ui.exportUnitsComboBox.toolTip = (_("Units of the .pts coordinates (openCARP uses micrometres)") if opencarp
                                               else _("A .vtu keeps the mesh's millimetres (scale its points by "
                                                      "1,000 for openCARP); the units set the openCARP .pts alone"))
        missing = self._channelsMissing()
        self.ui.findChannelsButton.enabled = not missing
        self.ui.findChannelsButton.toolTip = missing or _(
            "Find border-zone conducting channels through the core, layer by layer through the wall: writes "
            "bz_channel and wall_depth, colours the model by channel and shows the channel table (LPS mm; a planning "
            "aid, not validated against invasive maps)")

    def tissueOptions(self) -> dict:
        """The tissue section's thresholds, tag numbers and core field as keyword arguments of
        tag_model_node."""
        from cardioscar.simulation.export import parse_tags

        p = self._parameterNode
        return {"border_zone": p.tagBorderZone, "core": p.tagCore, "tag_values": parse_tags(p.tagNumbers),
                "core_model": p.tagCoreModel, "core_field": p.tagCoreField.strip() or None}

    def fibreOptions(self) -> dict:
        """The export's fibres as keyword arguments of export_model_node: the LV fibre rule at the
        typed helix angles (checked here, before any worker starts), or none."""
        from cardioscar.simulation.export import parse_helix
        from cardioscar.simulation.fibres import RULE_NAME, check_helix_angles

        p = self._parameterNode
        if not p.exportFibreRule:
            return {"fibres": None, "helix_deg": None}
        return {"fibres": RULE_NAME, "helix_deg": check_helix_angles(parse_helix(p.exportHelixAngles))}

    def onTagButton(self) -> None:
        """Tag the chosen model in a worker (or stop it): arrays, colours, legend and table rows are
        written once it finished; a failure or a Stop leaves the model as it was."""
        self._startTissueRun(export=False)

    def onExportButton(self) -> None:
        """Tag with the current thresholds and write the simulator files, in a worker (or stop it).
        The files are written in the worker's folder and copied next to the prefix (each renamed
        into place, once all are complete) only when it finished, and the model is tagged after
        them; a failure or a Stop writes no file and leaves the model as it was."""
        self._startTissueRun(export=True)

    def _startTissueRun(self, export: bool) -> None:
        p = self._parameterNode

        def makeRun() -> BackgroundRun:
            files = {"prefix": p.exportPrefix, "format": p.exportFormat, "units": p.exportUnits,
                     **self.fibreOptions()} if export else None
            return BackgroundRun.tissue(p.tagModel, self.tissueOptions(), color_logic=self.logic.color_logic,
                                        export=files)

        self._startAnalysis(self.ui.exportButton if export else self.ui.tagButton,
                            _("Export") if export else _("Tag tissue"), p.tagModel, lambda: self._tissueMissing(export),
                            makeRun, _("Exporting...") if export else _("Tagging..."),
                            lambda model, result: self._showTissue(model, result, export))

    def _showTissue(self, model, result, export: bool) -> None:
        self._updateResultField()  # the summary table gained the tag rows (after the display changed)
        rows, p = result.tags.summary(), self._parameterNode
        core = (_(" (core from '{model}')").format(model=p.tagCoreModel.GetName()) if p.tagCoreModel is not None
                else _(" (core from {field})").format(field=p.tagCoreField.strip()) if p.tagCoreField.strip() else "")
        band, top = result.tags.class_labels()[1:]  # one field: its probability bands, not tissue classes
        if "area_cm2" in rows["core"]:  # a surface model has no volume: its classes as areas, as the sidecar's
            amounts = _("{band} {border:.2f} cm², {top} {area:.2f} cm² (a surface: areas)").format(
                band=band, top=top, border=rows["border_zone"]["area_cm2"], area=rows["core"]["area_cm2"])
        else:
            amounts = _("{band} {border:.2f} ml, {top} {volume:.2f} ml").format(
                band=band, top=top, border=rows["border_zone"]["volume_ml"], volume=rows["core"]["volume_ml"])
        if not result.tags.two_fields:
            amounts += _(" (bands of one field, not border-zone and core tissue: choose a Core model for those)")
        self.ui.statusLabel.text = _("Tagged '{name}'{core}: {amounts}.").format(name=model.GetName(), core=core,
                                                                                 amounts=amounts)
        self._log(self.ui.statusLabel.text)
        if export:
            self.ui.statusLabel.text = _("Exported '{name}': {files}").format(
                name=model.GetName(), files=", ".join(path.name for path in result.files))
            self._log(self.ui.statusLabel.text)

    # ------------------------------------------------------------------ conducting channels

    def _channelsMissing(self) -> str:
        """What the channel search still needs, as one line; empty when it can run: a model to tag
        with tissue_tag or scar_probability, and volume cells (the search needs depth through the wall)."""
        from cardioscar.simulation.opencarp import TAG_ARRAY

        model = self._parameterNode.tagModel
        if model is None:
            return _("Choose the model to tag (a tagged or predicted volumetric model).")
        mesh = model.GetMesh()
        data = mesh.GetPointData() if mesh is not None else None
        if data is None or (data.GetArray(TAG_ARRAY) is None and data.GetArray(PROBABILITY) is None):
            return _("The model '{name}' has neither tissue_tag nor scar_probability: tag it, or train or apply a "
                     "model on it first.").format(name=model.GetName())
        if not mesh.IsA("vtkUnstructuredGrid"):
            return _("The model '{name}' is a surface: channels are searched in layers through the wall, which needs "
                     "a volumetric (tetrahedral or hexahedral) model.").format(name=model.GetName())
        return ""

    def channelOptions(self):
        """The section's layers, band, width and minimum length as the library's ChannelOptions (the layers parsed
        here, so a bad list is one line before any worker starts)."""
        from cardioscar.errors import CardioScarError
        from cardioscar.simulation.channels import ChannelOptions
        from cardioscar.simulation.channels_cli import layer_depths

        p = self._parameterNode
        if not layer_depths(p.channelLayers):
            raise CardioScarError(_("Channel layers '{text}': give comma-separated depths between 0 and 1, e.g. "
                                    "0.1,0.5,0.9").format(text=p.channelLayers))
        return ChannelOptions(layers=layer_depths(p.channelLayers), layer_width=p.channelLayerWidth,
                              max_width_mm=p.channelMaxWidth, min_length_mm=p.channelMinLength)

    def onFindChannelsButton(self) -> None:
        """Search the model to tag for conducting channels in a worker (or stop it): its tissue_tag
        when tagged (values from its note, else *Tag numbers*), else its scar_probability cut at the
        section's thresholds. The fields, colours
        and table are written on the model, and the files placed in the output folder, only once it
        finished; a failure or a Stop leaves the model and the folder as they were."""
        from CardioScarLogic.channels import tissue_of_model

        p = self._parameterNode
        self._startAnalysis(self.ui.findChannelsButton, _("Find channels"), p.tagModel, self._channelsMissing,
                            lambda: BackgroundRun.channels(p.tagModel, self.channelOptions(),
                                                           tissue_of_model(p.tagModel, border_zone=p.tagBorderZone,
                                                                           core=p.tagCore, tag_numbers=p.tagNumbers),
                                                           output_dir=p.channelOutputDir.strip() or None),
                            _("Finding channels on '{name}'..."), self._showChannels)

    def _showChannels(self, model, result) -> None:
        """The count and the longest channel in the status line, the table in the results layout."""
        record = result.record
        lengths = [row["length_mm"] for row in record["channels"]]
        found = (_("{count} channel(s), the longest {length:.1f} mm").format(count=len(lengths), length=max(lengths))
                 if lengths else _("no channel"))
        if record.get("n_dropped_short"):
            found += _(" ({count} shorter than {length:g} mm dropped)").format(count=record["n_dropped_short"],
                                                                              length=record["min_length_mm"])
        if record.get("n_near_open_cut"):
            from cardioscar.simulation.open_cut import OPEN_CUT_REASON

            found += _("; {count} near the mesh's open cut ({reason})").format(count=record["n_near_open_cut"],
                                                                            reason=OPEN_CUT_REASON)
        self.ui.statusLabel.text = _("Channels on '{name}' ({source}): {found}; bz_channel written, table "
                                     "'{table}'.").format(name=model.GetName(), source=record["tissue"], found=found,
                                                          table=result.table_node.GetName()) + self._channelNotes(record)
        self._log(self.ui.statusLabel.text)
        if result.files:
            self._log(_("Wrote {files}").format(files=", ".join(str(path) for path in result.files)))
        layoutNode = layout_node_of(slicer.mrmlScene)
        if layoutNode is not None:
            show_results(layoutNode, slicer.app.applicationLogic(), result.table_node)


    @staticmethod
    def _channelNotes(record: dict) -> str:
        """The search's caveats, each a sentence after the status line: that a narrow corridor may be
        hidden in the core (channels.json's ``hidden_corridors``; none with no core), and on one
        field's bands what its channels are not (its ``bands_note``). channels.json holds them in no
        face's words: the panel says them in its own (the advice to tag from a core model)."""
        note = (record.get("hidden_corridors") or {}).get("note")
        notes = [note] if note else []
        if record.get("bands_note"):  # one field's bands: what its channels are not
            notes.append(record["bands_note"])
        return "".join(" " + _("Note: {note}.").format(note=in_panel_words(note)) for note in notes)

    # ------------------------------------------------------------------ scoring against the labels

    def _scoreMissing(self) -> str:
        """What the scoring still needs, as one line; empty when it can run."""
        p = self._parameterNode
        missing = self._resultMissing(p.scoreModel, _("Choose the model to score (a result with scar_probability)."))
        if missing:
            return missing
        if p.scoreTruth is None:
            return _("Choose the truth labels to score against (a label map or a segmentation).")
        return ""

    def _updateScoreSection(self) -> None:
        """Enable *Score* when it has its inputs; the reason in its tool tip."""
        missing = self._scoreMissing()
        self.ui.scoreButton.enabled = not missing
        self.ui.scoreButton.toolTip = missing or _(
            "Score the model's scar_probability against the labels of the chosen slices (cardioscar evaluate "
            "--truth-image): Dice, best Dice and its threshold, AUC, and the nodes scored per slice")

    def scoreOptions(self) -> ReconstructionOptions:
        """The scoring's slices and labels as Logic options: the section's labels and slice indices,
        the Options' slice axis, slab half-width and threshold (the slices read as training reads them)."""
        p = self._parameterNode
        return ReconstructionOptions(
            slice_axis=p.sliceAxis, slice_indices=p.scoreSliceIndices,
            half_thickness="auto" if p.halfThicknessFromDicom else p.halfThickness,
            scar_labels=p.scoreScarLabels, myocardium_labels=p.scoreMyocardiumLabels,
            myocardium_segment=p.scoreMyocardiumSegment, threshold=p.threshold if p.useThreshold else None)

    def onScoreButton(self) -> None:
        """Score the chosen model against the truth labels, on the main thread: the scoring is numpy
        on arrays already in memory and takes about a second (153,000 nodes on five EMIDEC slices:
        0.3-0.5 s to read the slices, 0.4-0.5 s to score, on a loaded 2-core machine), no longer than
        a worker process takes to start, so there is nothing to stop. A bad input or a refusal is
        one status line and changes nothing."""
        from cardioscar.errors import CardioScarError

        p = self._parameterNode
        try:
            missing = self._scoreMissing()
            if missing:
                raise CardioScarError(missing)
            with slicer.util.WaitCursor(), self._warningsInLog():
                scores = self.logic.score_on_slices(p.scoreTruth, p.scoreModel, self.scoreOptions(),
                                                    p.scoreMyocardiumMask, write_truth=p.scoreWriteTruth)
        except Exception as error:  # noqa: BLE001 - shown in the panel
            self._reportFailure(error, SCORE_PANEL_NAMES)
            return
        self._showScores(p.scoreModel, p.scoreTruth, scores)

    def _showScores(self, model, truth, scores: dict) -> None:
        """The figures in the status line and the log, the per-slice counts in the section."""
        summary = score_summary(scores)
        self._scoreModelId = model.GetID()
        rows = "".join(f"<tr><td>{name}</td><td align='right'><b>{scored}</b></td><td>{skipped}</td></tr>"
                       for name, scored, skipped in score_slice_rows(scores))
        self.ui.scoreResultsLabel.text = (f"{summary}<table><tr><th>{_('slice')}</th><th>{_('scored nodes')}</th>"
                                          f"<th>{_('in its slab, not scored')}</th></tr>{rows}</table>")
        self.ui.statusLabel.text = _("Scored '{model}' against '{truth}': {summary}.").format(
            model=model.GetName(), truth=truth.GetName(), summary=summary)
        self._log(self.ui.statusLabel.text)


class CardioScarLogic(ScriptedLoadableModuleLogic, _QtFreeLogic):
    """The Slicer module's logic: the Qt-free Logic plus Slicer's parameter-node plumbing.

    All computation is inherited from ``CardioScarLogic.CardioScarLogic``, so the panel, the
    console (``slicer.util.getModuleLogic("CardioScar")``) and batch mode run the same code.
    """

    def __init__(self) -> None:
        # ScriptedLoadableModuleLogic.__init__ calls super().__init__() (Slicer 5.8 and 5.10), which
        # is the Qt-free Logic's __init__ with the application's scene: one call initialises both.
        super().__init__()

    def getParameterNode(self) -> CardioScarParameterNode:
        return CardioScarParameterNode(super().getParameterNode())


class CardioScarTest(ScriptedLoadableModuleTest):
    """Slicer-native test (ctest via WITH_GENERIC_TESTS / slicer_add_python_unittest, or the
    Reload & Test button). It needs the Slicer application and cannot run in this repository's
    CI; the same scenarios run against slicer-core in Testing/test_slicer_logic.py, and the panel
    in Testing/test_slicer_panel.py (with a stand-in for Qt).

    Scenario: write a small oblique LV phantom (NIfTI + VTK), load both through Slicer, run the
    Logic with a tiny training budget, check the arrays, display and table; check that a cancel
    leaves the model untouched; then build the panel, train from it (in its worker process) and
    check the result on the mesh. Without PyTorch it says so and skips.
    """

    #: What the tests say where PyTorch is not installed (the extension installs it on demand, so a fresh
    #: Slicer, the extension index's test machine included, has none).
    NO_TORCH = ("PyTorch is not installed, so CardioScar cannot run: tests skipped. "
                "Install it in the module's Dependencies section.")

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
        self.test_TrainAndApply()
        self.setUp()
        self.test_CancelLeavesModel()
        self.setUp()
        self.test_PanelTrainsInItsWorker()

    def _phantomNodes(self):
        from cardioscar.phantoms.phantom import PhantomConfig, make_phantom, write_phantom

        folder = pathlib.Path(slicer.util.tempDirectory())
        phantom = make_phantom(PhantomConfig(target_nodes=2000, seed=3))
        paths = write_phantom(phantom, folder)
        volume = slicer.util.loadVolume(str(paths["image"]))
        model = slicer.util.loadModel(str(paths["mesh"]))
        return volume, model, phantom.slice_half_thickness_mm

    def test_TrainAndApply(self) -> None:
        self.delayDisplay("Train and apply on a phantom")
        volume, model, half = self._phantomNodes()
        logic = CardioScarLogic()
        options = ReconstructionOptions(preset="fast", max_epochs=20, half_thickness=half, threshold=0.5)
        result = logic.train_and_apply(volume, model, options)
        n = model.GetMesh().GetNumberOfPoints()
        probability = slicer.util.arrayFromModelPointData(model, "scar_probability")
        self.assertEqual(len(probability), n)
        self.assertTrue(((probability >= 0) & (probability <= 1)).all())
        self.assertEqual(len(slicer.util.arrayFromModelPointData(model, "scar_uncertainty")), n)
        display = model.GetDisplayNode()
        self.assertEqual(display.GetActiveScalarName(), "scar_probability")
        self.assertEqual(display.GetScalarRange(), (0.0, 1.0))
        self.assertGreater(result.table_node.GetNumberOfRows(), 5)
        self.delayDisplay("Test passed")

    def test_CancelLeavesModel(self) -> None:
        from cardioscar.errors import TrainingCancelled

        volume, model, half = self._phantomNodes()
        logic = CardioScarLogic()
        with self.assertRaises(TrainingCancelled):
            logic.train_and_apply(volume, model, ReconstructionOptions(preset="fast", max_epochs=20, half_thickness=half),
                                  should_cancel=lambda: True)
        self.assertIsNone(model.GetMesh().GetPointData().GetArray("scar_probability"))
        self.delayDisplay("Test passed")

    def test_PanelTrainsInItsWorker(self) -> None:
        import time

        self.delayDisplay("Train from the panel")
        volume, model, half = self._phantomNodes()
        widget = CardioScarWidget()  # no parent: Slicer's base class builds a top-level panel
        try:
            widget.enter()
            parameters = widget._parameterNode
            parameters.inputVolume, parameters.heartModel = volume, model
            parameters.maxEpochs, parameters.halfThickness, parameters.sliceIndices = 20, half, "0,2,4"
            widget.ui.applyButton.click()
            deadline = time.monotonic() + 300
            while widget._run is not None and time.monotonic() < deadline:
                slicer.app.processEvents()
                time.sleep(0.05)
            self.assertIsNone(widget._run)
            self.assertEqual(len(slicer.util.arrayFromModelPointData(model, "scar_probability")),
                             model.GetMesh().GetNumberOfPoints())
            self.assertTrue(widget._parameterNode.outputToNewModel)  # a second run would go beside it
        finally:
            widget.cleanup()
            widget.parent.deleteLater()
        self.delayDisplay("Test passed")
