"""Static checks of the Slicer module that need no Slicer application.

The panel (.ui), the module code, the parameter node and the CMake packaging must agree: a
widget the code uses but the .ui lacks, a parameter bound to no widget, or a file missing from
CMakeLists.txt only shows up when a user opens the module in Slicer, so it is checked here.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Optional

import pytest

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "CardioScar"
MODULE_PY = MODULE_DIR / "CardioScar.py"
UI_FILE = MODULE_DIR / "Resources" / "UI" / "CardioScar.ui"
sys.path.insert(0, str(MODULE_DIR))

#: Widget class each parameter type binds to (Slicer's parameterNodeWrapper connectors).
CONNECTOR_WIDGETS = {"str": {"QLineEdit"}, "choice": {"QComboBox"}, "bool": {"QCheckBox"}, "int": {"QSpinBox"},
                     "float": {"QDoubleSpinBox", "ctkDoubleSpinBox", "ctkSliderWidget"},
                     "pathlib.Path": {"ctkPathLineEdit"}, "node": {"qMRMLNodeComboBox"}}


@pytest.fixture(scope="module")
def module_ast() -> ast.Module:
    return ast.parse(MODULE_PY.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def ui() -> ET.Element:
    return ET.parse(UI_FILE).getroot()


def _widgets(ui) -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ui.iter("widget")}


def _class(tree: ast.Module, name: str) -> ast.ClassDef:
    return next(node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == name)


def _parameters(tree: ast.Module, wrapper_name: str = "CardioScarParameterNode") -> dict[str, ast.AnnAssign]:
    wrapper = _class(tree, wrapper_name)
    return {node.target.id: node for node in wrapper.body if isinstance(node, ast.AnnAssign)}


def _kind(annotation: ast.expr) -> str:
    text = ast.unparse(annotation)
    if "Choice(" in text:
        return "choice"
    if "vtkMRML" in text:
        return "node"
    for base in ("pathlib.Path", "bool", "int", "float", "str"):
        if text == base or text.startswith(f"Annotated[{base},"):
            return base
    raise AssertionError(f"unexpected parameter type {text}")


def _bindings(ui) -> dict[str, str]:
    """Parameter name -> widget name, from the SlicerParameterName dynamic properties."""
    bound = {}
    for widget in ui.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                parameter = prop.find("string").text
                assert parameter not in bound, f"{parameter} is bound twice"
                bound[parameter] = widget.get("name")
    return bound


def _used_widgets(tree: ast.Module) -> set[str]:
    """The names the code reads as ``self.ui.<name>``."""
    return {node.attr for node in ast.walk(tree)
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ui" and isinstance(node.value.value, ast.Name) and node.value.value.id == "self"
            and not node.attr.startswith("_")}


def test_every_widget_the_code_uses_exists_in_the_ui_file(module_ast, ui):
    used = _used_widgets(module_ast)
    assert {"applyButton", "progressBar", "sliceRangeLabel", "deviceLabel", "logTextEdit", "installTorchButton",
            "torchVersionLabel", "outputNewModelCheckBox"} <= used
    missing = used - set(_widgets(ui))
    assert not missing, f"CardioScar.py uses widgets absent from CardioScar.ui: {sorted(missing)}"


def test_ui_structure_follows_slicer_conventions(ui):
    root = ui.find("widget")
    assert root.get("class") == "qMRMLWidget"
    widgets = _widgets(ui)
    sections = [w for w in widgets.values() if w.get("class") == "ctkCollapsibleButton"]
    assert len(sections) >= 3

    def node_types(name, widget_class="qMRMLNodeComboBox"):
        widget = widgets[name]
        assert widget.get("class") == widget_class
        prop = next(p for p in widget.findall("property") if p.get("name") == "nodeTypes")
        return [s.text for s in prop.iter("string")]

    assert node_types("inputSelector") == ["vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode"]
    show_children = next(p for p in widgets["inputSelector"].findall("property") if p.get("name") == "showChildNodeTypes")
    assert show_children.find("bool").text == "true"  # label maps are scalar-volume subclasses
    assert node_types("modelSelector") == ["vtkMRMLModelNode"]
    # more inputs to pool with the first: the same kinds; not bound by the parameter node wrapper
    # (it has no connector for a checkable node list): the panel keeps them itself (see
    # test_extra_inputs_are_saved_and_restored_by_the_panel)
    assert node_types("extraInputsSelector", "qMRMLCheckableNodeComboBox") == node_types("inputSelector")
    assert "extraInputsSelector" not in _bindings(ui).values()
    receivers = {c.find("receiver").text for c in ui.iter("connection")
                 if c.find("signal").text == "mrmlSceneChanged(vtkMRMLScene*)"}
    assert receivers == {"inputSelector", "extraInputsSelector", "modelSelector", "myocardiumMaskSelector",
                         "ahaModelSelector", "ahaRvMarkupsSelector", "ahaLabelsSelector", "ahaApexBaseSelector",
                         "bloodPoolSelector", "remoteSelector", "tagModelSelector", "tagCoreModelSelector",
                         "scoreModelSelector", "scoreTruthSelector", "scoreMyocardiumMaskSelector"}
    # a node selector that is not given the scene lists no node (a new selector is easily forgotten)
    assert receivers == {name for name, w in widgets.items() if w.get("class", "").startswith("qMRML")
                         and w.get("class").endswith("NodeComboBox")}
    assert node_types("tagCoreModelSelector") == ["vtkMRMLModelNode"]
    # the scar rule's blood pool and remote region: a label map or a segmentation with a named segment
    assert node_types("bloodPoolSelector") == node_types("remoteSelector") == ["vtkMRMLLabelMapVolumeNode",
                                                                               "vtkMRMLSegmentationNode"]
    assert node_types("ahaRvMarkupsSelector") == node_types("ahaApexBaseSelector") == ["vtkMRMLMarkupsFiducialNode"]
    assert node_types("ahaLabelsSelector") == ["vtkMRMLLabelMapVolumeNode"]
    # the scoring: a result, and the experts' labels as the Logic's score_on_slices takes them
    assert node_types("scoreModelSelector") == ["vtkMRMLModelNode"]
    assert node_types("scoreTruthSelector") == ["vtkMRMLLabelMapVolumeNode", "vtkMRMLSegmentationNode"]
    # the scoring's myocardium (evaluate --myocardium-mask): label maps and 0/1 volumes, the grid a 2D truth is placed on
    assert node_types("scoreMyocardiumMaskSelector") == ["vtkMRMLScalarVolumeNode"]
    # label maps and 0/1 volumes; segmentations for the scar rules (refused by the Logic without one)
    assert node_types("myocardiumMaskSelector") == ["vtkMRMLScalarVolumeNode", "vtkMRMLSegmentationNode"]
    declared = {c.find("class").text for c in ui.iter("customwidget")}
    used = {w.get("class") for w in widgets.values() if w.get("class").startswith(("ctk", "qMRML"))}
    assert used <= declared


def _method(tree: ast.Module, class_name: str, name: str) -> ast.FunctionDef:
    return next(node for node in _class(tree, class_name).body if isinstance(node, ast.FunctionDef) and node.name == name)


@pytest.mark.parametrize("module", ["CardioScar", "AttriVAE"])
def test_no_two_widgets_share_a_grid_cell(module):
    """A QFormLayout given an occupied cell warns ("Cell (15, 0) already occupied") and leaves the
    widget unmanaged, drawn over the section's corner; a QGridLayout draws the two on top of each
    other. Rows added in the middle of a section without renumbering those below had left the Tag
    button on the *Core from* row and the Export button on the *Units* row."""
    root = ET.parse(REPO / module / "Resources" / "UI" / f"{module}.ui").getroot()
    for layout in root.iter("layout"):
        if layout.get("class") not in ("QGridLayout", "QFormLayout"):
            continue
        taken: dict = {}
        for item in layout.findall("item"):
            row, column = int(item.get("row")), int(item.get("column"))
            name = next((child.get("name") for child in item if child.tag in ("widget", "layout", "spacer")), "?")
            for cell in ((r, c) for r in range(row, row + int(item.get("rowspan", 1)))
                         for c in range(column, column + int(item.get("colspan", 1)))):
                assert cell not in taken, f"{module}.ui: {name} and {taken[cell]} share row {cell[0]}, column {cell[1]}"
                taken[cell] = name


def test_extra_inputs_are_saved_and_restored_by_the_panel(module_ast):
    """Static (Qt and the Slicer application cannot run here): a change of the "Also use" box is
    written through the Logic's set_extra_inputs (tested on real MRML in test_slicer_logic), and
    a parameter node's kept inputs are checked again when the panel takes it up."""
    setup = ast.unparse(_method(module_ast, "CardioScarWidget", "setup"))
    assert 'extraInputsSelector.connect(\'checkedNodesChanged()\', self._onExtraInputsChanged)' in setup
    changed = ast.unparse(_method(module_ast, "CardioScarWidget", "_onExtraInputsChanged"))
    assert "self.logic.set_extra_inputs(self._parameterNode.parameterNode, self.ui.extraInputsSelector.checkedNodes())" \
        in changed
    restore = ast.unparse(_method(module_ast, "CardioScarWidget", "_restoreExtraInputs"))
    assert "self.logic.extra_inputs(self._parameterNode.parameterNode)" in restore and "setCheckState" in restore
    assert "blockSignals(True)" in restore  # restoring must not write the half-restored choice back
    assert "self._restoreExtraInputs()" in ast.unparse(_method(module_ast, "CardioScarWidget", "_parameterNodeConnected"))
    assert "self._parameterNodeConnected()" in ast.unparse(_method(module_ast, "WorkerPanelMixin", "setParameterNode"))


def test_from_dicom_box_asks_the_logic_for_the_recorded_slab_width(module_ast):
    """Static: ticking *from DICOM* passes half_thickness="auto" (the Logic's recorded width, tested
    in test_slicer_logic) and greys out the millimetre box."""
    options = ast.unparse(_method(module_ast, "CardioScarWidget", "options"))
    assert "half_thickness='auto' if p.halfThicknessFromDicom else p.halfThickness" in options
    check = ast.unparse(_method(module_ast, "CardioScarWidget", "_updatePanel"))
    assert "self.ui.halfThicknessSpinBox.enabled = not p.halfThicknessFromDicom" in check


def test_dependency_errors_reach_the_user_and_the_default_model_comes_from_the_logic(module_ast):
    """Static: both run buttons check the dependencies through a wrapper that shows a failure in
    the panel (raised in a Qt slot it only reaches the Python console), and the initial heart
    model is the Logic's choice (which skips the slice views' models; tested on real MRML)."""
    for handler in ("onApplyButton", "onApplySavedButton"):
        body = ast.unparse(_method(module_ast, "CardioScarWidget", handler))
        assert "self._dependenciesReady()" in body and "self.ensureDependencies()" not in body
    ready = _method(module_ast, "CardioScarWidget", "_dependenciesReady")
    guarded = next(node for node in ast.walk(ready) if isinstance(node, ast.Try))
    assert "self.ensureDependencies()" in ast.unparse(guarded.body[0])
    assert [ast.unparse(h.type) for h in guarded.handlers] == ["Exception"]
    assert "self._reportFailure(error)" in ast.unparse(guarded.handlers[0]) and "return False" in ast.unparse(guarded.handlers[0])
    initial = ast.unparse(_method(module_ast, "CardioScarWidget", "initializeParameterNode"))
    assert "self.logic.default_heart_model()" in initial and "vtkMRMLModelNode" not in initial


def test_only_packages_the_module_uses_are_installed(module_ast):
    """Static: pip installs only what the module imports and Slicer does not ship (scikit-learn,
    for the summary's measures); torch comes through the PyTorch extension only."""
    requirements = next(ast.literal_eval(node.value) for node in module_ast.body if isinstance(node, ast.Assign)
                        and node.targets[0].id == "PIP_REQUIREMENTS")
    assert requirements == {"sklearn": "scikit-learn"}
    install = ast.unparse(_method(module_ast, "CardioScarWidget", "_installTorch"))
    assert "PyTorchUtils.PyTorchUtilsLogic().installTorch(" in install and "slicer.util.restart()" in install


def test_a_union_of_node_types_includes_none(module_ast):
    """Slicer's parameter-node wrapper writes every default when it wraps a node, and a node's
    default is None: a Union of node types without None raises in setup() (Slicer's own docs:
    "The None is necessary for the parameter node wrapper default node of None to work")."""
    unions = [node for node in _parameters(module_ast).values() if ast.unparse(node.annotation).startswith("Union[")]
    assert unions
    for node in unions:
        members = [ast.unparse(element) for element in node.annotation.slice.elts]
        assert "None" in members, ast.unparse(node.annotation)


def test_the_worker_is_stopped_wherever_the_panel_goes_away(module_ast):
    """Static, for what the harness cannot drive (Testing/test_slicer_panel.py drives the rest):
    quitting Slicer and reloading the module end a running worker; a scene import re-reads the
    parameter node; results are shown in the layout that keeps the 3D view."""
    # the plumbing both panels share (CardioScarWidget and AttriVAEWidget derive from it)
    assert "self._connectLifecycle()" in ast.unparse(_method(module_ast, "CardioScarWidget", "setup"))
    lifecycle = ast.unparse(_method(module_ast, "WorkerPanelMixin", "_connectLifecycle"))
    assert "slicer.app.connect('aboutToQuit()', self._stopRun)" in lifecycle
    assert "slicer.mrmlScene.EndImportEvent, self.onSceneEndImport" in lifecycle
    for name in ("onSceneStartClose", "cleanup"):
        assert "self._stopRun()" in ast.unparse(_method(module_ast, "WorkerPanelMixin", name))
    assert [ast.unparse(b) for b in _class(module_ast, "CardioScarWidget").bases][0] == "WorkerPanelMixin"
    shown = ast.unparse(_method(module_ast, "CardioScarWidget", "_showResult"))
    assert "show_results(" in shown and "ShowChartInLayout" not in ast.unparse(module_ast)
    assert ".connectGui(" not in ast.unparse(module_ast), "connectGui returns no tag on Slicer 5.8"


def test_parameter_node_and_widgets_bind_one_to_one_with_matching_types(module_ast, ui):
    parameters = _parameters(module_ast)
    bindings = _bindings(ui)
    # the path boxes' paths are strings the panel keeps itself (a path parameter defaults to ".")
    for name in ("savedModelPath", "exportPrefix", "channelOutputDir"):
        assert ast.unparse(parameters.pop(name).annotation) == "str", name
    # the newest result: a node reference the panel sets after a run and *Colour by* reads
    assert ast.unparse(parameters.pop("resultModel").annotation) == "vtkMRMLModelNode"
    assert set(bindings) == set(parameters), "every parameter needs exactly one widget, and vice versa"
    assert ast.unparse(parameters["sliceIndices"].annotation) == "str"  # no connector for list[int]
    widgets = _widgets(ui)
    for name, node in parameters.items():
        widget_class = widgets[bindings[name]].get("class")
        assert widget_class in CONNECTOR_WIDGETS[_kind(node.annotation)], f"{name} bound to a {widget_class}"


def test_every_parameter_reaches_the_run(module_ast):
    """Adding an option is a field, a widget and a keyword: a field that no run reads is caught."""
    used = {node.attr for name in ("options", "onApplyButton", "onApplySavedButton", "_showReconstruction", "_updatePanel",
                                   "ahaInputs", "_ahaMissing", "tissueOptions", "fibreOptions", "_tissueMissing",
                                   "_startTissueRun", "_updateResultField", "channelOptions",
                                   "onFindChannelsButton", "scoreOptions", "onScoreButton")
            for node in ast.walk(_method(module_ast, "CardioScarWidget", name)) if isinstance(node, ast.Attribute)}
    assert set(_parameters(module_ast)) <= used, sorted(set(_parameters(module_ast)) - used)


def test_combo_box_items_match_the_parameter_choices(module_ast, ui):
    parameters = _parameters(module_ast)
    widgets, bindings = _widgets(ui), _bindings(ui)
    for name, node in parameters.items():
        if _kind(node.annotation) != "choice":
            continue
        choices = re.search(r"Choice\((\[.*?\])\)", ast.unparse(node.annotation)).group(1)
        items = [i.find("property/string").text for i in widgets[bindings[name]].findall("item")]
        assert items == ast.literal_eval(choices)
        assert ast.literal_eval(node.value) == items[0]


def test_the_colour_by_items_are_the_fields_the_logic_shows_in_its_order(ui):
    """The panel maps the chosen item's index onto ``SHOWN_FIELDS``: the two must list the same
    titles in the same order, or a click colours the model by another field than it names."""
    from CardioScarLogic.results import SHOWN_FIELDS

    items = [i.find("property/string").text for i in _widgets(ui)["resultFieldComboBox"].findall("item")]
    assert items == list(SHOWN_FIELDS.values())


def _within_range(node: ast.AnnAssign) -> Optional[tuple[float, float]]:
    """(minimum, maximum) of a parameter's ``WithinRange`` annotation, or None."""
    found = re.search(r"WithinRange\(([^,]+), ([^)]+)\)", ast.unparse(node.annotation))
    return None if found is None else (float(ast.literal_eval(found.group(1))), float(ast.literal_eval(found.group(2))))


def _ui_range(widget: ET.Element) -> tuple[float, float]:
    values = {p.get("name"): float(p[0].text) for p in widget.findall("property") if p.get("name") in ("minimum", "maximum")}
    return values["minimum"], values["maximum"]


def _bound_widgets(module: str, wrapper: str, classes: tuple[str, ...]):
    """(parameter name, its AST annotation node, its .ui widget) for every parameter of ``wrapper``
    bound to a widget of one of ``classes`` in the module's .ui."""
    folder = REPO / module
    tree = ast.parse((folder / f"{module}.py").read_text(encoding="utf-8"))
    ui_root = ET.parse(folder / "Resources" / "UI" / f"{module}.ui").getroot()
    widgets, bindings = _widgets(ui_root), _bindings(ui_root)
    for name, node in _parameters(tree, wrapper).items():
        widget = widgets.get(bindings.get(name, ""))
        if widget is not None and widget.get("class") in classes:
            yield name, node, widget


@pytest.mark.parametrize("module, wrapper", [("CardioScar", "CardioScarParameterNode"),
                                             ("AttriVAE", "AttriVAEParameterNode")])
def test_every_bound_spin_box_shows_the_range_its_parameter_declares(module, wrapper):
    """Slicer's spin-box connectors (Base/Python/slicer/parameterNodeWrapper/guiConnectors.py,
    ``QSliderOrSpinBoxToIntConnector`` and ``QDoubleSpinBoxCtkSliderWidgetToFloatIntConnector``)
    replace the widget's minimum and maximum by the parameter's ``WithinRange`` when they connect:
    the .ui's range is never what the user gets. The two must be the same, so that reading the .ui
    (and its tests) tells the truth. What this cannot prove: PythonQt applying the connector."""
    checked = 0
    for name, node, widget in _bound_widgets(module, wrapper, ("QSpinBox", "QDoubleSpinBox")):
        declared = _within_range(node)
        assert declared is not None, f"{name}: a spin box without WithinRange gets -2^31..2^31-1 (or +-inf) in Slicer"
        assert _ui_range(widget) == declared, f"{name}: the .ui says {_ui_range(widget)}, Slicer shows {declared}"
        checked += 1
    assert checked


@pytest.mark.parametrize("module, wrapper", [("CardioScar", "CardioScarParameterNode"),
                                             ("AttriVAE", "AttriVAEParameterNode")])
def test_every_bound_node_box_lists_the_node_types_of_its_parameter(module, wrapper):
    """Slicer's node combo-box connector sets ``nodeTypes`` from the parameter's annotation
    (``qMRMLNodeComboBoxToNodeConnector`` in guiConnectors.py, ``getNodeTypes`` in util.py), over the
    .ui's: the .ui (and the tooltips written from it) must list the same classes, in that order."""
    checked = 0
    for name, node, widget in _bound_widgets(module, wrapper, ("qMRMLNodeComboBox",)):
        declared = [t for t in re.findall(r"vtkMRML\w+", ast.unparse(node.annotation))]
        listed = [s.text for p in widget.findall("property") if p.get("name") == "nodeTypes" for s in p.iter("string")]
        assert listed == declared, f"{name}: the .ui lists {listed}, Slicer offers {declared}"
        checked += 1
    assert checked


@pytest.mark.parametrize("module", ["CardioScar", "AttriVAE"])
def test_reload_re_reads_every_logic_module_after_the_ones_it_imports(module):
    """*Reload* (developer mode) re-reads only the module's own file (ScriptedLoadableModuleWidget.onReload
    in Base/Python/slicer/ScriptedLoadableModule.py, through slicer.util.reloadScriptedModule);
    ``onReload`` reloads the Logic package too. A module left out of its list, or reloaded before a
    module that imports names from it, keeps the old code after an edit (CardioScar's list lacked
    ``myocardium`` and ``scratch``)."""
    tree = ast.parse((REPO / module / f"{module}.py").read_text(encoding="utf-8"))
    method = _method(tree, f"{module}Widget", "onReload")
    order = next(ast.literal_eval(node.iter) for node in ast.walk(method) if isinstance(node, ast.For))
    package = REPO / module / f"{module}Logic"
    modules = {path.stem for path in package.glob("*.py")} - {"__init__"}
    assert set(order) - {""} == modules and order[-1] == ""  # the package itself last
    for name in modules:
        text = (package / f"{name}.py").read_text(encoding="utf-8")
        for leaf in set(re.findall(r"from \.(\w+) import", text)) | set(re.findall(r"from \. import (\w+)", text)):
            assert order.index(leaf) < order.index(name), f"{name} imports {leaf}, which is reloaded after it"


def test_the_threshold_box_offers_only_thresholds_the_logic_accepts(module_ast, ui):
    """The Logic refuses 0 and 1 (``cardioscar.io.checks.check_threshold``); a spin box that reaches
    them lets a click end in an error instead of keeping the user inside the valid range. The range
    the user gets is the parameter's ``WithinRange`` (Slicer's connector sets it over the .ui's)."""
    from cardioscar.errors import CardioScarError
    from cardioscar.io.checks import check_threshold

    low, high = _within_range(_parameters(module_ast)["threshold"])
    for value in (low, high):
        assert check_threshold(value) == value
    for outside in (low - 0.01, high + 0.01):  # one step of the box's 2 decimals
        with pytest.raises(CardioScarError):
            check_threshold(round(outside, 2))


def test_panel_defaults_equal_the_command_line_and_logic_defaults(module_ast):
    from cardioscar.fit.training import TrainingConfig

    from CardioScarLogic import ReconstructionOptions

    from CardioScarLogic.options import preset_panel_values

    defaults = {name: ast.literal_eval(node.value) for name, node in _parameters(module_ast).items() if node.value}
    presets = {preset: preset_panel_values(preset) for preset in ("documented", "fast")}
    for preset, config in (("documented", TrainingConfig()), ("fast", TrainingConfig.fast())):
        assert presets[preset] == {"maxEpochs": config.max_epochs, "earlyStoppingPatience": config.early_stopping_patience,
                                   "trainingMcSamples": config.mc_samples,
                                   "shapePrior": {True: "on", False: "off", "auto": "auto"}[config.shape_prior]}
    for name, value in presets[defaults["preset"]].items():
        assert defaults[name] == value
    options = ReconstructionOptions()
    assert defaults["preset"] == "fast" and options.preset == "documented"  # panel: interactive; CLI/batch: documented
    assert defaults["halfThickness"] == options.half_thickness == 5.0
    assert defaults["inferenceMcSamples"] == options.inference_mc_samples == 10
    assert defaults["seed"] == options.seed == TrainingConfig().seed
    assert defaults["sliceAxis"] == options.slice_axis
    # the channel search's: ChannelOptions' (cardioscar channels' defaults)
    from cardioscar.simulation.channels import ChannelOptions

    channel = ChannelOptions()
    assert tuple(float(v) for v in defaults["channelLayers"].split(",")) == channel.layers
    assert (defaults["channelLayerWidth"], defaults["channelMaxWidth"], defaults["channelMinLength"]) == (
        channel.layer_width, channel.max_width_mm, channel.min_length_mm)


def test_the_preset_values_are_read_from_the_training_config_not_copied(module_ast, monkeypatch):
    """The panel's preset values were a copy of TrainingConfig.fast()'s numbers: a preset changed in
    cardioscar.fit.config would have left the panel filling in the old ones. The panel builds them
    with preset_panel_values, which reads the (torch-free) config when called."""
    from cardioscar.fit.config import TrainingConfig

    from CardioScarLogic.options import preset_panel_values

    assigned = next(node.value for node in module_ast.body if isinstance(node, ast.Assign)
                    and node.targets[0].id == "PRESET_PANEL_VALUES")
    assert not isinstance(assigned, ast.Dict)
    assert "preset_panel_values" in {node.id for node in ast.walk(assigned) if isinstance(node, ast.Name)}
    fast = TrainingConfig.fast
    monkeypatch.setattr(TrainingConfig, "fast", classmethod(lambda cls: fast(max_epochs=321, shape_prior=True)))
    assert preset_panel_values("fast") == {"maxEpochs": 321, "earlyStoppingPatience": 600, "trainingMcSamples": 1,
                                           "shapePrior": "on"}


def test_nothing_heavy_or_installing_runs_at_import(module_ast):
    top_level = [node for node in module_ast.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    imported = {alias.name.split(".")[0] for node in top_level for alias in node.names} | {
        (node.module or "").split(".")[0] for node in top_level if isinstance(node, ast.ImportFrom)}
    assert not imported & {"torch", "PyTorchUtils", "sklearn", "cardioscar"}
    module_level_calls = {ast.unparse(n.func) for stmt in module_ast.body if not isinstance(stmt, (ast.ClassDef, ast.FunctionDef))
                          for n in ast.walk(stmt) if isinstance(n, ast.Call)}
    assert not {c for c in module_level_calls if "pip_install" in c or "installTorch" in c}
    probe = "import sys, CardioScarLogic; sys.exit('torch' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", probe], cwd=MODULE_DIR, capture_output=True, text=True,
                               env={"PYTHONPATH": str(REPO / "CardioScarLib"), "PATH": "/usr/bin:/bin"})
    assert completed.returncode == 0, "importing the Logic package must not import torch: " + completed.stderr[-500:]


def test_slicer_native_test_class_exists(module_ast):
    test_class = _class(module_ast, "CardioScarTest")
    assert [ast.unparse(b) for b in test_class.bases] == ["ScriptedLoadableModuleTest"]
    methods = {node.name for node in test_class.body if isinstance(node, ast.FunctionDef)}
    assert {"runTest", "test_TrainAndApply", "test_CancelLeavesModel"} <= methods
    assert "cannot run" in ast.get_docstring(test_class)


def _cmake_list(text: str, variable: str) -> list[str]:
    block = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S).group(1)
    return [line.strip() for line in block.split() if line.strip()]


def test_cmake_packages_every_file_and_declares_the_extension():
    module_cmake = (MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = [s.replace("${MODULE_NAME}", "CardioScar") for s in _cmake_list(module_cmake, "MODULE_PYTHON_SCRIPTS")]
    on_disk = {str(p.relative_to(MODULE_DIR)) for p in MODULE_DIR.rglob("*.py")
               if "Testing" not in p.parts and "__pycache__" not in p.parts}
    assert set(scripts) == on_disk
    resources = [s.replace("${MODULE_NAME}", "CardioScar") for s in _cmake_list(module_cmake, "MODULE_PYTHON_RESOURCES")]
    assert all((MODULE_DIR / r).is_file() for r in resources) and len(resources) == 2
    assert "WITH_GENERIC_TESTS" in module_cmake and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in module_cmake
    library = _cmake_list(module_cmake, "CARDIOSCAR_LIB_FILES")
    package = REPO / "CardioScarLib" / "cardioscar"
    assert set(library) == {p.relative_to(package).as_posix() for p in package.rglob("*.py")
                            if "__pycache__" not in p.parts}, \
        "CardioScar/CMakeLists.txt must list every file of CardioScarLib/cardioscar, sub-packages included"

    extension = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    metadata = dict(re.findall(r'set\((EXTENSION_\w+)\s+"?(.*?)"?\)', extension))
    assert metadata["EXTENSION_CATEGORY"] == "Cardiac"
    assert metadata["EXTENSION_DEPENDS"] == "PyTorch"
    assert len(metadata["EXTENSION_DESCRIPTION"]) > 60
    for key in ("EXTENSION_ICONURL", "EXTENSION_SCREENSHOTURLS"):
        local = REPO / metadata[key].split("/main/", 1)[1]
        assert local.is_file(), f"{key} points at {local}, which is missing"
    assert "add_subdirectory(CardioScar)" in extension


def test_icons_are_128_pixel_pngs():
    from PIL import Image

    for path in (REPO / "Resources" / "Icons" / "CardioScar.png", MODULE_DIR / "Resources" / "Icons" / "CardioScar.png"):
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size == (128, 128)
            colours = image.convert("RGB").getcolors(maxcolors=1 << 16)
            assert colours is None or len(colours) > 20  # a drawing, not a flat placeholder


# ------------------------------------------------------------------ the second module: Attri-VAE

ATTRIVAE_DIR = REPO / "AttriVAE"
sys.path.insert(0, str(ATTRIVAE_DIR))


def test_attrivae_cmake_packages_every_file_and_is_part_of_the_extension():
    module_cmake = (ATTRIVAE_DIR / "CMakeLists.txt").read_text(encoding="utf-8")
    scripts = [s.replace("${MODULE_NAME}", "AttriVAE") for s in _cmake_list(module_cmake, "MODULE_PYTHON_SCRIPTS")]
    on_disk = {str(p.relative_to(ATTRIVAE_DIR)) for p in ATTRIVAE_DIR.rglob("*.py") if "__pycache__" not in p.parts}
    assert set(scripts) == on_disk and len(scripts) == len(on_disk)
    resources = [s.replace("${MODULE_NAME}", "AttriVAE") for s in _cmake_list(module_cmake, "MODULE_PYTHON_RESOURCES")]
    assert sorted(resources) == ["Resources/Icons/AttriVAE.png", "Resources/UI/AttriVAE.ui"]
    assert all((ATTRIVAE_DIR / r).is_file() for r in resources)
    assert "NAME ${MODULE_NAME}" in module_cmake and "WITH_GENERIC_TESTS" in module_cmake
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in module_cmake
    extension = (REPO / "CMakeLists.txt").read_text(encoding="utf-8")
    assert extension.index("add_subdirectory(CardioScar)") < extension.index("add_subdirectory(AttriVAE)")
    # the command line the module runs is installed by the CardioScar module's list
    library = _cmake_list((MODULE_DIR / "CMakeLists.txt").read_text(encoding="utf-8"), "CARDIOSCAR_LIB_FILES")
    assert {"commands/attrivae.py", "attrivae/__init__.py", "__main__.py"} <= set(library)


def test_attrivae_panel_code_ui_and_parameters_agree():
    tree = ast.parse((ATTRIVAE_DIR / "AttriVAE.py").read_text(encoding="utf-8"))
    ui = ET.parse(ATTRIVAE_DIR / "Resources" / "UI" / "AttriVAE.ui").getroot()
    widgets, bindings = _widgets(ui), _bindings(ui)
    missing = _used_widgets(tree) - set(widgets)
    assert not missing, f"AttriVAE.py uses widgets absent from AttriVAE.ui: {sorted(missing)}"
    assert ui.find("widget").get("class") == "qMRMLWidget"
    parameters = _parameters(tree, "AttriVAEParameterNode")
    for kept in ("modelPath", "outputFolder"):  # strings the panel keeps itself (a path parameter shows ".")
        assert ast.unparse(parameters.pop(kept).annotation) == "str"
    assert set(bindings) == set(parameters), "every parameter needs exactly one widget, and vice versa"
    for name, node in parameters.items():
        widget_class = widgets[bindings[name]].get("class")
        assert widget_class in CONNECTOR_WIDGETS[_kind(node.annotation)], f"{name} bound to a {widget_class}"
        if _kind(node.annotation) == "choice":
            items = [i.find("property/string").text for i in widgets[bindings[name]].findall("item")]
            assert items == ast.literal_eval(re.search(r"Choice\((\[.*?\])\)", ast.unparse(node.annotation)).group(1))

    def node_types(name):
        prop = next(p for p in widgets[name].findall("property") if p.get("name") == "nodeTypes")
        return [s.text for s in prop.iter("string")]

    def flag(name, prop_name):
        return next(p for p in widgets[name].findall("property") if p.get("name") == prop_name).find("bool").text

    # the LGE box offers intensity volumes only (label maps are scalar-volume subclasses)
    assert node_types("lgeSelector") == ["vtkMRMLScalarVolumeNode"] and flag("lgeSelector", "showChildNodeTypes") == "false"
    assert node_types("labelsSelector") == ["vtkMRMLLabelMapVolumeNode", "vtkMRMLSegmentationNode"]
    receivers = {c.find("receiver").text for c in ui.iter("connection")
                 if c.find("signal").text == "mrmlSceneChanged(vtkMRMLScene*)"}
    assert receivers == {"lgeSelector", "labelsSelector"}
    used = {node.attr for node in ast.walk(_class(tree, "AttriVAEWidget")) if isinstance(node, ast.Attribute)}
    # every parameter reaches a run, but the convention, which only fills the two label boxes
    assert set(_parameters(tree, "AttriVAEParameterNode")) - used == {"labelConvention"}, "a parameter no run reads"
    from AttriVAELogic import LABEL_CONVENTIONS

    defaults = {name: ast.literal_eval(node.value) for name, node in parameters.items() if node.value}
    assert (defaults["cavityLabels"], defaults["myocardiumLabels"]) == LABEL_CONVENTIONS[defaults["labelConvention"]]


def test_attrivae_module_imports_nothing_heavy_and_has_its_self_test():
    tree = ast.parse((ATTRIVAE_DIR / "AttriVAE.py").read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in tree.body if isinstance(node, ast.Import) for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in tree.body if isinstance(node, ast.ImportFrom)}
    assert not imported & {"torch", "sklearn", "cardioscar"}
    assert [ast.unparse(b) for b in _class(tree, "AttriVAEWidget").bases][0] == "WorkerPanelMixin"
    assert "self._connectLifecycle()" in ast.unparse(next(n for n in _class(tree, "AttriVAEWidget").body
                                                          if isinstance(n, ast.FunctionDef) and n.name == "setup"))
    test_class = _class(tree, "AttriVAETest")
    assert [ast.unparse(b) for b in test_class.bases] == ["ScriptedLoadableModuleTest"]
    assert "cannot run" in ast.get_docstring(test_class)
    probe = "import sys, AttriVAELogic; sys.exit('torch' in sys.modules)"
    path = os.pathsep.join(str(p) for p in (REPO / "CardioScarLib", MODULE_DIR))
    completed = subprocess.run([sys.executable, "-c", probe], cwd=ATTRIVAE_DIR, capture_output=True, text=True,
                               env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"})
    assert completed.returncode == 0, "importing the Logic package must not import torch: " + completed.stderr[-500:]
    from PIL import Image

    with Image.open(ATTRIVAE_DIR / "Resources" / "Icons" / "AttriVAE.png") as image:
        assert image.format == "PNG" and image.size == (128, 128)
        assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or range(21)) > 20


#: ctkPathLineEdit's filters when the .ui sets none (CTK's ctkPathLineEditPrivate constructor).
CTK_PATH_DEFAULT_FILTERS = {"Dirs", "Files", "Drives", "NoDotAndDotDot", "Readable", "Executable"}


def _path_filters(widget: ET.Element) -> set[str]:
    """The filter flags of a ctkPathLineEdit in a .ui file, AllEntries spelled out."""
    written = widget.find("property[@name='filters']/set")
    if written is None:
        return CTK_PATH_DEFAULT_FILTERS
    flags = {flag.split("::")[-1] for flag in written.text.split("|")}
    return flags - {"AllEntries"} | ({"Dirs", "Files", "Drives"} if "AllEntries" in flags else set())


@pytest.mark.parametrize("ui_file, folders, files, to_write", [
    (UI_FILE, {"channelOutputDirLineEdit"}, {"savedModelPathLineEdit"}, {"exportPrefixLineEdit"}),
    (REPO / "AttriVAE" / "Resources" / "UI" / "AttriVAE.ui", {"outputFolderLineEdit"}, {"modelPathLineEdit"}, set())])
def test_a_folder_box_browses_for_a_folder_and_a_model_box_for_a_file(ui_file, folders, files, to_write):
    """CTK's ctkPathLineEdit::browse() opens a file dialog whenever its filters include Files, as
    they do by default, and a folder dialog otherwise: Attri-VAE's output folder had no filters, so
    its browse button offered files only and a folder could only be typed. With Files and Writable
    it opens a save dialog, so a file not there yet can be named: the export prefix (which, like the
    channel folder, was a plain text box with no browse button). The real widget cannot run here;
    its .ui properties are checked against CTK's rule (Slicer's DICOM export dialog sets the same
    filters and ShowDirsOnly on its folder box)."""
    boxes = {widget.get("name"): widget for widget in ET.parse(ui_file).getroot().iter("widget")
             if widget.get("class") == "ctkPathLineEdit"}
    assert set(boxes) == folders | files | to_write
    for name in folders:
        assert "Dirs" in _path_filters(boxes[name]) and "Files" not in _path_filters(boxes[name]), name
        assert boxes[name].find("property[@name='options']/set").text == "ctkPathLineEdit::ShowDirsOnly", name
    for name in files:
        assert "Files" in _path_filters(boxes[name]), name
        assert boxes[name].find("property[@name='nameFilters']/stringlist/string").text.endswith("(*.pth)"), name
    for name in to_write:
        assert {"Files", "Writable"} <= _path_filters(boxes[name]) and "Dirs" not in _path_filters(boxes[name]), name
