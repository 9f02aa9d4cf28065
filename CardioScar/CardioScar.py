"""CardioScar: 3D myocardial scar on a heart mesh from a few 2D LGE slices (3D Slicer module).

The panel collects inputs and options in a parameter node (saved with the scene) and calls the
Qt-free ``CardioScarLogic`` (package ``CardioScarLogic`` next to this file), the same object the
Python console and ``Scripts/cardioscar_batch.py`` use. The numerical core is the ``cardioscar``
package (CardioScarLib), installed next to this module by the extension.

torch is imported only when a run starts; if it is missing the panel offers (once per session)
to install it through the PyTorch extension, which picks the CUDA build matching the driver.
"""

import importlib.util
import pathlib
import sys
import time
from typing import Annotated, Optional, Union

import qt
import slicer
import vtk
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

from slicer import vtkMRMLModelNode, vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode


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
from CardioScarLogic import ReconstructionOptions  # noqa: E402

#: Panel values of each training preset; they equal cardioscar.training.TrainingConfig() and
#: TrainingConfig.fast() (checked by Testing/test_slicer_ui.py) but are written here so that
#: switching presets does not import torch.
PRESET_PANEL_VALUES = {
    "documented": {"maxEpochs": 10000, "earlyStoppingPatience": 500, "trainingMcSamples": 3},
    "fast": {"maxEpochs": 600, "earlyStoppingPatience": 600, "trainingMcSamples": 1},
}
#: Pip requirement strings of the non-torch dependencies (SimpleITK ships with Slicer).
PIP_REQUIREMENTS = {"sklearn": "scikit-learn", "tqdm": "tqdm", "SimpleITK": "SimpleITK"}
#: Seconds between GUI refreshes while training runs on the main thread.
EVENT_INTERVAL_S = 0.2


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
            "probability and its uncertainty per node (point arrays scar_probability, scar_uncertainty).")
        self.parent.acknowledgementText = _(
            "Method: Sen et al., Comput Biol Med 198:111219 (2025). Built on 3D Slicer and PyTorch.")


@parameterNodeWrapper
class CardioScarParameterNode:
    """Panel state; saved with the scene so that reopening it restores the panel.

    Slice indices and scar labels are strings (there is no widget connector for a list of ints);
    the Logic parses them and reports the valid range on error. The training defaults are the
    fast preset's, for interactive use (the command line and batch mode default to the
    documented preset, one click away in the preset box); the others equal the command line's.
    """

    # None belongs in the Union: the wrapper writes each default (None) when it wraps a node
    inputVolume: Union[vtkMRMLScalarVolumeNode, vtkMRMLSegmentationNode, None]
    sliceAxis: Annotated[str, Choice(["z", "y", "x"])] = "z"
    sliceIndices: str = ""
    scarLabels: str = ""
    heartModel: vtkMRMLModelNode
    preset: Annotated[str, Choice(["fast", "documented"])] = "fast"
    halfThickness: Annotated[float, WithinRange(0.1, 100.0)] = 5.0
    halfThicknessFromDicom: bool = False
    maxEpochs: Annotated[int, WithinRange(1, 1000000)] = 600
    earlyStoppingPatience: Annotated[int, WithinRange(1, 1000000)] = 600
    trainingMcSamples: Annotated[int, WithinRange(1, 100)] = 1
    inferenceMcSamples: Annotated[int, WithinRange(1, 1000)] = 10
    useThreshold: bool = True
    threshold: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    seed: Annotated[int, WithinRange(0, 2147483647)] = 42
    normalizeIntensities: bool = False
    partialVolumeCorrection: bool = False
    forceCpu: bool = False
    savedModelPath: pathlib.Path


class CardioScarWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """The panel.

    Responsiveness: training runs on the main thread inside the Logic, and the progress callback
    and cancel hook call ``slicer.app.processEvents()`` at most every 0.2 s. A worker thread was
    rejected: MRML and VTK objects are not thread-safe, the Logic must stay a plain blocking call
    for the console and batch mode, and the core library already reports progress every 0.2 s
    and polls the cancel hook before every batch and every prediction chunk, each well under a
    second on 2 CPU cores (a large mesh's epoch has many batches), so the GUI stays live.
    """

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic: Optional[CardioScarLogic] = None
        self._parameterNode: Optional[CardioScarParameterNode] = None
        self._parameterNodeGuiTag = None
        self._running = False
        self._cancelRequested = False
        self._lastEvents = 0.0
        self._torchDeclined = False

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/CardioScar.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = CardioScarLogic()

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.applySavedButton.connect("clicked(bool)", self.onApplySavedButton)
        self.ui.saveModelButton.connect("clicked(bool)", self.onSaveModelButton)
        # "activated": user choices only, so restoring a saved scene keeps its epoch values.
        self.ui.presetComboBox.connect("activated(int)", self.onPresetActivated)
        # "clicked": user clicks only; restoring a scene toggles it too, and the label imports torch
        self.ui.forceCpuCheckBox.connect("clicked(bool)", lambda _checked: self._updateDeviceLabel())
        self.ui.extraInputsSelector.connect("checkedNodesChanged()", self._onExtraInputsChanged)
        self.ui.progressBar.setVisible(False)
        self.initializeParameterNode()

    def cleanup(self) -> None:
        self._cancelRequested = True  # a reload during a run: the old run stops at its next poll
        self.removeObservers()

    def onReload(self) -> None:
        """Developer reload: re-read the Logic package too (Slicer re-reads only this file).

        Leaf modules first, so that modules importing names from them bind the new versions.
        """
        import importlib

        for name in ("geometry", "headless", "options", "results", "render", "scarsource", "slabwidth", "acquisition", "logic", ""):
            module = sys.modules.get("CardioScarLogic" + (f".{name}" if name else ""))
            if module is not None:
                importlib.reload(module)
        ScriptedLoadableModuleWidget.onReload(self)

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)

    def onSceneStartClose(self, caller, event) -> None:
        self._cancelRequested = True  # closing the scene removes the run's nodes: stop it
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

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

    def setParameterNode(self, inputParameterNode: Optional[CardioScarParameterNode]) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self._restoreExtraInputs()
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self._checkCanApply)
            self._checkCanApply()

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
        self._checkCanApply()

    # ------------------------------------------------------------------ state

    def _checkCanApply(self, caller=None, event=None) -> None:
        """Enable actions that have their inputs; show the valid slice range."""
        if self._running or self._parameterNode is None:
            return
        p = self._parameterNode
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
        canTrain = bool(p.inputVolume and p.heartModel)
        self.ui.applyButton.enabled = canTrain
        self.ui.applyButton.toolTip = (_("Train on the chosen slices and write the scar fields on the mesh")
                                       if canTrain else _("Select the LGE volume and the heart mesh"))
        savedPath = str(p.savedModelPath) if p.savedModelPath else ""
        self.ui.applySavedButton.enabled = bool(p.heartModel and savedPath.lower().endswith(".pth"))
        self.ui.saveModelButton.enabled = self.logic.last_checkpoint is not None

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

    def _updateDeviceLabel(self) -> None:
        if importlib.util.find_spec("torch") is None:
            self.ui.deviceLabel.text = _("PyTorch not installed (offered on first run)")
            return
        self.ui.deviceLabel.text = self.logic.device_description(self.ui.forceCpuCheckBox.checked)

    def options(self) -> ReconstructionOptions:
        """The panel's values as Logic options."""
        p = self._parameterNode
        return ReconstructionOptions(
            slice_axis=p.sliceAxis, slice_indices=p.sliceIndices,
            half_thickness="auto" if p.halfThicknessFromDicom else p.halfThickness,
            scar_labels=p.scarLabels, normalize_intensities=p.normalizeIntensities,
            partial_volume_correction=p.partialVolumeCorrection, preset=p.preset,
            max_epochs=p.maxEpochs, early_stopping_patience=p.earlyStoppingPatience,
            mc_samples=p.trainingMcSamples, seed=p.seed, inference_mc_samples=p.inferenceMcSamples,
            threshold=p.threshold if p.useThreshold else None, force_cpu=p.forceCpu)

    # ------------------------------------------------------------------ dependencies

    def _dependenciesReady(self) -> bool:
        """:meth:`ensureDependencies` with its errors shown in a dialog (raised in a Qt slot they
        would only reach the Python console, and the button would seem to do nothing).
        ``tryWithErrorDisplay`` shows the dialog and raises again; the error is then handled."""
        try:
            with slicer.util.tryWithErrorDisplay(_("CardioScar cannot run without its Python packages."),
                                                 waitCursor=False):
                return self.ensureDependencies()
        except Exception:  # noqa: BLE001 - already shown to the user in the dialog
            return False

    def ensureDependencies(self) -> bool:
        """torch through the PyTorch extension (asked once per session), others through pip."""
        missing = [req for module, req in PIP_REQUIREMENTS.items() if importlib.util.find_spec(module) is None]
        if missing:
            if not slicer.util.confirmOkCancelDisplay(
                    _("CardioScar needs these Python packages: {names}. Install them now?").format(names=", ".join(missing))):
                return False
            slicer.util.pip_install(missing)
        if importlib.util.find_spec("torch") is not None:
            return True
        if self._torchDeclined:
            raise ValueError(_("PyTorch is not installed: restart Slicer to be asked again, or install it from the "
                               "PyTorch extension's module (PyTorch Utils)."))
        try:
            import PyTorchUtils
        except ModuleNotFoundError:
            raise ValueError(_("CardioScar needs PyTorch: install the 'PyTorch' extension from the Extensions "
                               "Manager, restart Slicer, then press Train again.")) from None
        if not slicer.util.confirmOkCancelDisplay(
                _("CardioScar needs PyTorch, which is not installed yet. Install it now through the PyTorch "
                  "extension? It picks the build that matches your GPU driver (a download of up to a few GB).")):
            self._torchDeclined = True
            return False
        with slicer.util.WaitCursor():
            torch = PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=False, torchVersionRequirement=">=2.4")
        if torch is None:
            raise ValueError(_("PyTorch installation failed: see the Python console, or install it in the PyTorch "
                               "Utils module."))
        self._updateDeviceLabel()
        return True

    # ------------------------------------------------------------------ runs

    def _pumpEvents(self) -> None:
        now = time.monotonic()
        if now - self._lastEvents >= EVENT_INTERVAL_S:
            self._lastEvents = now
            slicer.app.processEvents()

    def _shouldCancel(self) -> bool:
        self._pumpEvents()
        return self._cancelRequested

    def _onProgress(self, progress) -> None:
        self.ui.progressBar.maximum = progress.max_epochs
        self.ui.progressBar.value = progress.epoch
        left = "?" if progress.eta_s is None else f"{progress.eta_s:.0f} s"
        self.ui.progressBar.format = _("epoch {epoch}/{total}  loss {loss:.4g}  best {best:.4g}  <= {left} left").format(
            epoch=progress.epoch, total=progress.max_epochs, loss=progress.loss, best=progress.best_loss, left=left)
        self._pumpEvents()

    def _setRunning(self, running: bool, button: qt.QPushButton, idleText: str) -> None:
        """While running, the pressed button reads Cancel and every other action is disabled."""
        self._running = running
        self._cancelRequested = False
        button.text = _("Cancel") if running else idleText
        for widget in (self.ui.inputsCollapsibleButton, self.ui.optionsCollapsibleButton,
                       self.ui.applyButton, self.ui.applySavedButton, self.ui.saveModelButton):
            if widget is not button:
                widget.enabled = not running
        button.enabled = True
        self.ui.progressBar.setVisible(running)
        self.ui.progressBar.value = 0
        if not running:
            self._checkCanApply()

    def _runGuarded(self, button: qt.QPushButton, idleText: str, work, errorMessage: str) -> None:
        if self._running:
            self._cancelRequested = True
            self.ui.statusLabel.text = _("Cancelling...")
            return
        from cardioscar.errors import TrainingCancelled

        self._setRunning(True, button, idleText)
        try:
            with slicer.util.tryWithErrorDisplay(errorMessage, waitCursor=False):
                try:
                    result = work()
                except TrainingCancelled:
                    self.ui.statusLabel.text = _("Cancelled: the mesh was left as it was.")
                    return
                self._showResult(result)
        except Exception:  # noqa: BLE001 - shown in the dialog (which raises again); the label must not stay "Training..."
            self.ui.statusLabel.text = _("Failed: see the message.")
        finally:
            self._setRunning(False, button, idleText)

    def onApplyButton(self) -> None:
        """Train and apply (or cancel the running training)."""
        if not self._running and not self._dependenciesReady():
            return
        p = self._parameterNode
        inputs = self._inputNodes()

        def work():
            self.ui.statusLabel.text = _("Training...")
            return self.logic.train_and_apply(inputs, p.heartModel, self.options(),
                                              progress_callback=self._onProgress, should_cancel=self._shouldCancel)

        self._runGuarded(self.ui.applyButton, _("Train and apply"), work,
                         _("Training failed. Check the slice indices, the slab half-width and that the mesh overlaps the slices."))

    def onApplySavedButton(self) -> None:
        """Apply a saved model without training (or cancel it)."""
        if not self._running and not self._dependenciesReady():
            return
        p = self._parameterNode

        def work():
            self.ui.statusLabel.text = _("Predicting...")
            return self.logic.apply_model(str(p.savedModelPath), p.heartModel, self.options(),
                                          should_cancel=self._shouldCancel)

        self._runGuarded(self.ui.applySavedButton, _("Apply a saved model"), work,
                         _("Applying the saved model failed. Choose a .pth file written by CardioScar."))

    def onSaveModelButton(self) -> None:
        path = qt.QFileDialog.getSaveFileName(self.parent, _("Save CardioScar model"), "scar_model.pth",
                                              _("CardioScar model (*.pth)"))
        if not path:
            return
        with slicer.util.tryWithErrorDisplay(_("Saving the model failed. Choose a writable folder and a .pth name."),
                                             waitCursor=True):
            self.logic.save_model(path)
            self._parameterNode.savedModelPath = pathlib.Path(path)
            self.ui.statusLabel.text = _("Model saved to {path}").format(path=path)

    def _showResult(self, result) -> None:
        """Summary in the panel, the loss curve in the plot view, the table in the table view."""
        rows = "".join(f"<tr><td>{m}</td><td align='right'><b>{v}</b> {u}</td></tr>" for m, v, u in result.summary)
        self.ui.resultsLabel.text = f"<table>{rows}</table>"
        self.ui.statusLabel.text = _("Done in {seconds:.1f} s on {device}.").format(seconds=result.seconds,
                                                                                    device=result.device)
        self.ui.deviceLabel.text = result.device
        if result.chart_node is not None:
            slicer.modules.plots.logic().ShowChartInLayout(result.chart_node)
        application = slicer.app.applicationLogic()
        application.GetSelectionNode().SetActiveTableID(result.table_node.GetID())
        application.PropagateTableSelection()  # setting the ID alone does not show it in a table view


class CardioScarLogic(ScriptedLoadableModuleLogic, _QtFreeLogic):
    """The Slicer module's logic: the Qt-free Logic plus Slicer's parameter-node plumbing.

    All computation is inherited from ``CardioScarLogic.CardioScarLogic``, so the panel, the
    console (``slicer.util.getModuleLogic("CardioScar")``) and batch mode run the same code.
    """

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        _QtFreeLogic.__init__(self, slicer.mrmlScene)

    def getParameterNode(self) -> CardioScarParameterNode:
        return CardioScarParameterNode(super().getParameterNode())


class CardioScarTest(ScriptedLoadableModuleTest):
    """Slicer-native test (ctest via WITH_GENERIC_TESTS / slicer_add_python_unittest, or the
    Reload & Test button). It needs the Slicer application and cannot run in this repository's
    CI; the same scenario runs Qt-free against slicer-core in Testing/test_slicer_logic.py.

    Scenario: write a small oblique LV phantom (NIfTI + VTK), load both through Slicer, run the
    Logic with a tiny training budget, check the arrays, display and table; check that a cancel
    leaves the model untouched.
    """

    def setUp(self) -> None:
        slicer.mrmlScene.Clear()

    def runTest(self) -> None:
        self.setUp()
        self.test_TrainAndApply()
        self.setUp()
        self.test_CancelLeavesModel()

    def _phantomNodes(self):
        from cardioscar.phantom import PhantomConfig, make_phantom, write_phantom

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

