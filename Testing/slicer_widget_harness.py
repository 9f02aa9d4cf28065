"""A STAND-IN FOR QT / PYTHONQT AND THE SLICER APPLICATION, to run the real panel class here.

What is real: ``CardioScar/CardioScar.py`` and ``AttriVAE/AttriVAE.py`` (the widgets, their
parameter node classes, their logics), their ``.ui`` files (parsed here into widgets), the MRML
scene and nodes (slicer-core), Slicer's own ``slicer.util``, the worker processes and torch.

What is a stand-in, written for these tests from Qt's and Slicer's documented behaviour:
- the Qt widgets the panel uses, with the rules that matter to it: signals by name
  (``connect("clicked(bool)", slot)`` and ``widget.clicked.connect``), ``blockSignals``; a
  combo box's ``clear()`` emits ``currentIndexChanged(-1)`` and its first ``addItem()`` selects
  index 0 (emitting 0); setting a line edit's text moves the cursor to the end; spin boxes clamp
  to their range; a node combo box without "none" selects the first node added and moves off a
  removed one; timers fire from ``processEvents()``;
- ``slicer.parameterNodeWrapper``, following Slicer 5.8 or 5.10 (``SLICER_VERSION``):
  wrapping writes missing defaults; ``connectGui`` returns no tag on 5.8 (a tag on 5.10),
  ``connectParametersToGui`` returns a tag on both and accepts ``GuiConnector`` objects;
  ``disconnectGui`` removes the widget callbacks on both and the node observer on 5.10 only;
  the line-edit connector writes the text on every change on 5.8, only a different text on
  5.10; the combo-box connector clears the box and adds the choices when it is made;
- ``slicer.ScriptedLoadableModule`` (singleton parameter node, cooperative ``__init__``),
  ``slicer.app`` (in testing mode, so ``slicer.util`` dialogs log and return their default), and
  the application's override cursors, kept as Qt keeps them (a stack: ``QApplication.cursors``).

What this cannot prove: PythonQt's conversions (QString, enums, signals' argument types), the
real CTK/MRML widgets (their painting, their own signal order beyond the rules above), the
Slicer application's module manager and layout manager, and the PyTorch extension's install.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import shutil
import sys
import tempfile
import time
import types
import unittest
import xml.etree.ElementTree as ET
from pathlib import Path

import slicer
import vtk

REPO = Path(__file__).resolve().parents[1]
MODULE_DIR = REPO / "CardioScar"
#: Every scripted module of the extension (Slicer puts each module's folder on sys.path).
MODULE_DIRS = (MODULE_DIR, REPO / "AttriVAE")

# ---------------------------------------------------------------------------------------- Qt


class Signal:
    def __init__(self, owner) -> None:
        self._owner, self._slots = owner, []

    def connect(self, slot) -> None:
        self._slots.append(slot)

    def disconnect(self, slot) -> None:
        self._slots.remove(slot)

    def emit(self, *args) -> None:
        if self._owner._blocked:
            return
        for slot in list(self._slots):
            slot(*args[:_arity(slot, len(args))])


def _arity(slot, given: int) -> int:
    """Qt drops trailing arguments a slot does not take."""
    import inspect

    try:
        parameters = list(inspect.signature(slot).parameters.values())
    except (TypeError, ValueError):
        return given
    if any(p.kind == p.VAR_POSITIONAL for p in parameters):
        return given
    return min(given, sum(p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) for p in parameters))


#: The signals of the widgets the panel uses, reachable by name as Qt's are.
SIGNALS = {"clicked", "toggled", "stateChanged", "textChanged", "currentIndexChanged", "activated", "valueChanged",
           "currentPathChanged", "currentNodeChanged", "checkedNodesChanged", "mrmlSceneChanged", "timeout",
           "aboutToQuit"}


class QWidget:
    def __init__(self, name: str = "", parent=None) -> None:
        self.name = name
        self._blocked = False
        self._signals: dict = {}
        self._properties: dict = {}
        self._children: list = []
        self._parent = parent
        self.enabled, self.visible, self.toolTip, self.text = True, True, "", ""
        if parent is not None:
            parent._children.append(self)

    def _user_acts(self, action: str) -> None:
        """Refuse a test's user action on a widget Qt would not let the user reach: disabled, or
        inside a disabled parent (Qt's ``isEnabled``). Raised, not ignored, so that a test which
        picks a value the user could not pick fails where it does so."""
        widget = self
        while widget is not None:
            if not widget.enabled:
                raise AssertionError(f"the user cannot {action} {self.name!r}: "
                                     f"{'it' if widget is self else repr(widget.name)} is disabled")
            widget = widget._parent

    def __getattr__(self, name):
        if name not in SIGNALS:
            raise AttributeError(f"{type(self).__name__} has no attribute {name!r} in this stand-in")
        return self._signal(name)

    def _signal(self, name: str) -> Signal:
        return self.__dict__["_signals"].setdefault(name, Signal(self))

    def connect(self, signature: str, slot) -> None:
        getattr(self, signature.split("(")[0]).connect(slot)

    def disconnect(self, signature: str, slot) -> None:
        getattr(self, signature.split("(")[0]).disconnect(slot)

    def blockSignals(self, block: bool) -> bool:
        was, self._blocked = self._blocked, block
        return was

    def property(self, name):
        return self._properties.get(name)

    def setProperty(self, name, value) -> None:
        self._properties[name] = value

    def setVisible(self, visible: bool) -> None:
        self.visible = visible

    def children(self) -> list:
        return list(self._children)

    def findChildren(self, _type=None) -> list:
        found = []
        for child in self._children:
            found += [child] + child.findChildren()
        return found

    def isWidgetType(self) -> bool:
        return True

    def layout(self):
        return _Layout(self)

    def setLayout(self, _layout) -> None:
        pass

    def show(self) -> None:
        pass

    def deleteLater(self) -> None:
        pass


class _Layout:
    def __init__(self, owner) -> None:
        self._owner = owner

    def addWidget(self, widget) -> None:
        self._owner._children.append(widget)


class QLabel(QWidget):
    pass


class QPushButton(QWidget):
    def click(self) -> None:
        if self.enabled:
            self.clicked.emit(False)


class QCheckBox(QWidget):
    def __init__(self, name="", parent=None) -> None:
        super().__init__(name, parent)
        self.__dict__["_checked"] = False

    @property
    def checked(self) -> bool:
        return self._checked

    @checked.setter
    def checked(self, value: bool) -> None:
        if bool(value) != self._checked:
            self.__dict__["_checked"] = bool(value)
            self.stateChanged.emit(2 if value else 0)
            self.toggled.emit(bool(value))

    def click(self) -> None:
        self._user_acts("click")
        self.checked = not self.checked
        self.clicked.emit(self.checked)


class QLineEdit(QWidget):
    def __init__(self, name="", parent=None) -> None:
        super().__init__(name, parent)
        self.__dict__["_text"] = ""
        self.cursorPosition = 0

    @property
    def text(self) -> str:
        return self.__dict__.get("_text", "")

    @text.setter
    def text(self, value: str) -> None:
        changed = value != self.__dict__.get("_text", "")
        self.__dict__["_text"] = value
        self.__dict__["cursorPosition"] = len(value)  # QLineEdit::setText moves the cursor to the end
        if changed:
            self.textChanged.emit(value)

    def type(self, keys: str) -> None:
        """The user types ``keys`` at the cursor, one keystroke at a time."""
        self._user_acts("type into")
        for key in keys:
            at = self.cursorPosition
            self.__dict__["_text"] = self.text[:at] + key + self.text[at:]
            self.__dict__["cursorPosition"] = at + 1
            self.textChanged.emit(self.text)


class QComboBox(QWidget):
    def __init__(self, name="", parent=None) -> None:
        super().__init__(name, parent)
        self._items: list = []
        self.__dict__["_index"] = -1

    @property
    def currentIndex(self) -> int:
        return self._index

    @currentIndex.setter
    def currentIndex(self, index: int) -> None:
        if index != self._index:
            self.__dict__["_index"] = index
            self.currentIndexChanged.emit(index)

    @property
    def currentText(self) -> str:
        return self._items[self._index] if self._index >= 0 else ""

    def clear(self) -> None:
        self._items = []
        self.currentIndex = -1

    def addItem(self, text: str) -> None:
        self._items.append(str(text))
        if self._index == -1:
            self.currentIndex = 0

    def itemText(self, index: int) -> str:
        return self._items[index]

    def count(self) -> int:
        return len(self._items)

    def choose(self, text: str) -> None:
        """The user picks an item: ``currentIndexChanged`` then ``activated``."""
        self._user_acts("pick in")
        index = self._items.index(text)
        self.currentIndex = index
        self.activated.emit(index)


class QSpinBox(QWidget):
    _cast = int

    def __init__(self, name="", parent=None) -> None:
        super().__init__(name, parent)
        self.minimum, self.maximum, self.decimals, self.singleStep = 0, 99, 2, 1
        self.__dict__["_value"] = 0

    @property
    def value(self):
        return self._value

    @value.setter
    def value(self, value) -> None:
        value = self._cast(min(max(value, self.minimum), self.maximum))
        if value != self._value:
            self.__dict__["_value"] = value
            self.valueChanged.emit(value)

    def setRange(self, low, high) -> None:
        self.minimum, self.maximum = low, high
        self.value = self._value


class QDoubleSpinBox(QSpinBox):
    _cast = float


class QProgressBar(QWidget):
    value, maximum, format = 0, 100, ""


class QPlainTextEdit(QWidget):
    def __init__(self, name="", parent=None) -> None:
        super().__init__(name, parent)
        self.lines: list = []
        self.maximumBlockCount, self.readOnly = 0, False

    def appendPlainText(self, text: str) -> None:
        self.lines += str(text).splitlines() or [""]
        if self.maximumBlockCount:
            self.lines = self.lines[-self.maximumBlockCount:]

    def toPlainText(self) -> str:
        return "\n".join(self.lines)


class QTimer(QWidget):
    active: list = []

    def __init__(self) -> None:
        super().__init__()
        self.interval = 0

    def setInterval(self, ms: int) -> None:
        self.interval = ms

    def start(self) -> None:
        if self not in QTimer.active:
            QTimer.active.append(self)

    def stop(self) -> None:
        if self in QTimer.active:
            QTimer.active.remove(self)


class ctkCollapsibleButton(QWidget):
    collapsed = False


class ctkPathLineEdit(QWidget):
    def __init__(self, name="", parent=None) -> None:
        super().__init__(name, parent)
        self.__dict__["_path"] = ""
        self.nameFilters = []

    @property
    def currentPath(self) -> str:
        return self._path

    @currentPath.setter
    def currentPath(self, path: str) -> None:
        if path != self._path:
            self.__dict__["_path"] = path
            self.currentPathChanged.emit(path)


class qMRMLWidget(QWidget):
    def setMRMLScene(self, scene) -> None:
        self.mrmlSceneChanged.emit(scene)


class qMRMLNodeComboBox(QWidget):
    def __init__(self, name="", parent=None) -> None:
        super().__init__(name, parent)
        self.nodeTypes, self.noneEnabled, self.showChildNodeTypes = [], True, True
        self.addEnabled = self.removeEnabled = False
        self.noneDisplay = "None"  # qMRMLNodeComboBox's own default: the "no node" entry's words
        self._scene, self._current, self._tags = None, None, []

    def setMRMLScene(self, scene) -> None:
        self._scene = scene
        self._tags = [scene.AddObserver(event, self._onSceneChanged)
                      for event in (scene.NodeAddedEvent, scene.NodeRemovedEvent)]
        self._select(self._current if self._current in self.nodes() else self._first())

    def _accepts(self, node) -> bool:
        return (not node.GetHideFromEditors() and node.GetScene() is self._scene
                and any(node.IsA(t) if self.showChildNodeTypes else node.GetClassName() == t for t in self.nodeTypes))

    def nodes(self) -> list:
        scene = self._scene
        return [] if scene is None else [n for n in (scene.GetNthNode(i) for i in range(scene.GetNumberOfNodes()))
                                         if self._accepts(n)]

    def _first(self):
        nodes = self.nodes()
        return nodes[0] if nodes and not self.noneEnabled else None

    def _onSceneChanged(self, caller, event) -> None:
        if self._current is not None and self._current not in self.nodes():
            self._select(self._first())
        elif self._current is None and not self.noneEnabled:
            self._select(self._first())

    def _select(self, node) -> None:
        if node is not self._current:
            self._current = node
            self.currentNodeChanged.emit(node)

    def currentNode(self):
        return self._current

    def setCurrentNode(self, node) -> None:
        self._select(node if node is None or self._accepts(node) else self._current)

    def nodeCount(self) -> int:
        return len(self.nodes())

    def nodeFromIndex(self, index: int):
        return self.nodes()[index]


class qMRMLCheckableNodeComboBox(qMRMLNodeComboBox):
    def __init__(self, name="", parent=None) -> None:
        super().__init__(name, parent)
        self._checked: list = []

    def setCheckState(self, node, state) -> None:
        was = list(self._checked)
        self._checked = [n for n in self._checked if n is not node] + ([node] if state == Qt.Checked else [])
        if was != self._checked:
            self.checkedNodesChanged.emit()

    def checkedNodes(self) -> list:
        return [n for n in self.nodes() if n in self._checked]


class Qt:
    Unchecked, Checked = 0, 2
    WaitCursor = 3


class QMessageBox:
    Ok, Cancel, Yes, No, Question, Critical, Warning, Information = 1, 2, 4, 8, 16, 32, 64, 128


class QFileDialog:
    #: What "Save model..." gets from its dialog (set by a test).
    answer = ""

    @staticmethod
    def getSaveFileName(*args) -> str:
        return QFileDialog.answer


class QApplication:
    """Only the cursor calls of ``slicer.util.WaitCursor``: Qt keeps override cursors as a stack,
    ``cursors`` here, so that a test sees the wait cursor while a step runs and gone after it."""

    cursors: list = []

    @staticmethod
    def setOverrideCursor(cursor) -> None:
        QApplication.cursors.append(cursor)

    @staticmethod
    def restoreOverrideCursor() -> None:
        if QApplication.cursors:
            QApplication.cursors.pop()


class QFile:
    ReadOnly = 1

    def __init__(self, path) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        return self.path.is_file()

    def open(self, _mode) -> bool:
        return True


WIDGET_CLASSES = {cls.__name__: cls for cls in (
    QWidget, QLabel, QPushButton, QCheckBox, QLineEdit, QComboBox, QSpinBox, QDoubleSpinBox, QProgressBar,
    QPlainTextEdit, ctkCollapsibleButton, ctkPathLineEdit, qMRMLWidget, qMRMLNodeComboBox, qMRMLCheckableNodeComboBox)}


def _value(element):
    kind = element[0]
    if kind.tag == "string":
        return kind.text or ""
    if kind.tag == "bool":
        return kind.text == "true"
    if kind.tag == "number":
        return int(kind.text)
    if kind.tag == "double":
        return float(kind.text)
    if kind.tag == "stringlist":
        return [s.text for s in kind.iter("string")]
    return None


class QUiLoader:
    """Builds the stand-in widgets from a Designer ``.ui`` file: classes, names, properties
    (``stdset="0"`` ones are dynamic properties, as Qt's loader makes them), combo items and the
    file's signal/slot connections."""

    def load(self, qfile):
        root = ET.parse(qfile.path).getroot()
        widgets = {}

        def build(element, parent):
            widget = WIDGET_CLASSES[element.get("class")](element.get("name"), parent)
            widgets[widget.name] = widget
            for prop in element.findall("property"):
                value = _value(prop)
                if prop.get("stdset") == "0":
                    widget.setProperty(prop.get("name"), value)
                elif value is not None and prop.get("name") not in ("geometry",):
                    setattr(widget, prop.get("name"), value)
            for item in element.findall("item"):
                widget.addItem(_value(item.find("property")))
            for child in element.iter("widget"):
                if child is not element and _parent_widget(element, child):
                    build(child, widget)
            return widget

        top = build(root.find("widget"), None)
        for connection in root.iter("connection"):
            sender, receiver = widgets[connection.find("sender").text], widgets[connection.find("receiver").text]
            slot = getattr(receiver, connection.find("slot").text.split("(")[0])
            sender.connect(connection.find("signal").text, slot)
        return top


def _parent_widget(parent, child) -> bool:
    """Whether ``parent`` is the nearest widget element above ``child``."""
    def walk(element, nearest):
        for sub in element:
            if sub is child:
                return nearest is parent
            found = walk(sub, sub if sub.tag == "widget" else nearest)
            if found is not None:
                return found
        return None

    return bool(walk(parent, parent))


# --------------------------------------------------------------------- parameterNodeWrapper


class _Choice:
    def __init__(self, choices) -> None:
        self.choices = list(choices)


class _WithinRange:
    def __init__(self, minimum, maximum) -> None:
        self.minimum, self.maximum = minimum, maximum


class GuiConnector:
    """Slicer's connector base: ``onChanged(callback)`` connects, ``onChanged(None)`` disconnects."""

    def __init__(self) -> None:
        self._callback = None

    def onChanged(self, callback) -> None:
        self._callback = callback
        self._disconnect() if callback is None else self._connect()

    def changed(self, *args) -> None:
        if self._callback:
            self._callback()


class _SignalConnector(GuiConnector):
    """A stock connector: ``signal`` of ``widget``, read/write through ``attribute``."""

    def __init__(self, widget, signal: str, read, write) -> None:
        super().__init__()
        self._widget, self._signalName, self.read, self.write = widget, signal, read, write

    def _connect(self) -> None:
        getattr(self._widget, self._signalName).connect(self.changed)

    def _disconnect(self) -> None:
        getattr(self._widget, self._signalName).disconnect(self.changed)


def _split(annotation):
    import typing

    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        return base, extras
    return annotation, []


def _is_node_type(annotation) -> bool:
    import typing

    members = typing.get_args(annotation) if typing.get_origin(annotation) is typing.Union else (annotation,)
    return all(m is type(None) or (isinstance(m, type) and m.__name__.startswith("vtkMRML")) for m in members)


def _stock_connector(widget, annotation):
    base, extras = _split(annotation)
    choice = next((e for e in extras if isinstance(e, _Choice)), None)
    bounds = next((e for e in extras if isinstance(e, _WithinRange)), None)
    if type(widget) is QComboBox:
        widget.clear()
        for c in choice.choices:
            widget.addItem(str(c))

        def write_choice(value):
            widget.currentIndex = choice.choices.index(value)

        return _SignalConnector(widget, "currentIndexChanged", lambda: choice.choices[widget.currentIndex], write_choice)
    if type(widget) is QLineEdit:
        def write_text(value):
            if SLICER_VERSION == "5.8" or widget.text != value:
                widget.text = value

        return _SignalConnector(widget, "textChanged", lambda: widget.text, write_text)
    if type(widget) is QCheckBox:
        return _SignalConnector(widget, "stateChanged", lambda: widget.checked, lambda v: setattr(widget, "checked", v))
    if type(widget) in (QSpinBox, QDoubleSpinBox):
        if bounds is not None:
            widget.setRange(bounds.minimum, bounds.maximum)
        return _SignalConnector(widget, "valueChanged", lambda: widget.value, lambda v: setattr(widget, "value", v))
    if type(widget) is ctkPathLineEdit and base is pathlib.Path:
        return _SignalConnector(widget, "currentPathChanged", lambda: pathlib.Path(widget.currentPath),
                                lambda v: setattr(widget, "currentPath", str(v)))
    if isinstance(widget, qMRMLNodeComboBox) and _is_node_type(base):
        return _SignalConnector(widget, "currentNodeChanged", widget.currentNode, widget.setCurrentNode)
    raise RuntimeError(f"no connector for {type(widget).__name__} and {annotation}")


def _serializer(annotation):
    """(read, write) of a parameter on a vtkMRMLScriptedModuleNode."""
    base, _ = _split(annotation)
    if _is_node_type(base):
        return (lambda node, name: node.GetNodeReference(name),
                lambda node, name, value: node.SetNodeReferenceID(name, value.GetID() if value else None))
    if base is pathlib.Path:
        return (lambda node, name: pathlib.Path(node.GetParameter(name)),
                lambda node, name, value: node.SetParameter(name, str(value)))
    if base is bool:
        return (lambda node, name: node.GetParameter(name) == "True",
                lambda node, name, value: node.SetParameter(name, str(bool(value))))
    cast = {int: int, float: float, str: str}[base]
    return (lambda node, name: cast(node.GetParameter(name)),
            lambda node, name, value: node.SetParameter(name, str(cast(value))))


_TYPE_DEFAULTS = {bool: False, int: 0, float: 0.0, str: "", pathlib.Path: pathlib.Path()}


def parameterNodeWrapper(cls):
    import typing

    hints = typing.get_type_hints(cls, include_extras=True)
    # a parameter without a default gets its type's: None for nodes, Path() (".") for paths
    defaults = {name: getattr(cls, name, _TYPE_DEFAULTS.get(_split(annotation)[0])) for name, annotation in hints.items()}

    def __init__(self, parameterNode) -> None:
        self.parameterNode = parameterNode
        self._guis, self._observers, self._nextTag, self._updating = {}, {}, 0, False
        for name, annotation in hints.items():
            read, write = _serializer(annotation)
            present = parameterNode.GetNodeReference(name) if _is_node_type(_split(annotation)[0]) else \
                parameterNode.GetParameterNames() and name in parameterNode.GetParameterNames()
            if not present:
                write(parameterNode, name, defaults[name])

    def make_property(name, annotation):
        read, write = _serializer(annotation)

        def get(self):
            if not _is_node_type(_split(annotation)[0]) and name not in self.parameterNode.GetParameterNames():
                write(self.parameterNode, name, defaults[name])  # a reset node: Slicer writes the default
            return read(self.parameterNode, name)

        return property(get, lambda self, value: write(self.parameterNode, name, value))

    def update_gui(self) -> None:
        if self._updating:
            return
        self._updating = True
        try:
            for mapping in list(self._guis.values()):
                for name, connector in mapping.items():
                    connector.write(getattr(self, name))
        finally:
            self._updating = False

    def connectParametersToGui(self, mapping):
        connectors = {name: value if isinstance(value, GuiConnector) else _stock_connector(value, hints[name])
                      for name, value in mapping.items()}
        tag, self._nextTag = self._nextTag, self._nextTag + 1
        self._guis[tag] = connectors
        for name, connector in connectors.items():
            connector.write(getattr(self, name))

            def callback(name=name, connector=connector):
                if not self._updating:
                    setattr(self, name, connector.read())

            connector.onChanged(callback)
        self._observers[tag] = self.parameterNode.AddObserver(vtk.vtkCommand.ModifiedEvent,
                                                              lambda caller, event: update_gui(self))
        GUI_OBSERVERS[self.parameterNode.GetID()] = GUI_OBSERVERS.get(self.parameterNode.GetID(), 0) + 1
        return tag

    def connectGui(self, gui):
        widgets = {w.property("SlicerParameterName"): w for w in gui.__dict__.values()
                   if isinstance(w, QWidget) and w.property("SlicerParameterName")}
        tag = connectParametersToGui(self, widgets)
        return None if SLICER_VERSION == "5.8" else tag

    def disconnectGui(self, tag) -> None:
        for connector in self._guis.pop(tag, {}).values():
            connector.onChanged(None)
        if SLICER_VERSION != "5.8" and tag in self._observers:
            self.parameterNode.RemoveObserver(self._observers.pop(tag))
            GUI_OBSERVERS[self.parameterNode.GetID()] -= 1

    for name, annotation in hints.items():
        setattr(cls, name, make_property(name, annotation))
    cls.__init__ = __init__
    cls.connectParametersToGui = connectParametersToGui
    cls.connectGui = connectGui
    cls.disconnectGui = disconnectGui
    # the wrapper passes these to its node, as Slicer's does
    cls.AddObserver = lambda self, event, callback, priority=0.0: self.parameterNode.AddObserver(event, callback, priority)
    cls.RemoveObserver = lambda self, tag: self.parameterNode.RemoveObserver(tag)
    cls.Modified = lambda self: self.parameterNode.Modified()
    cls.StartModify = lambda self: self.parameterNode.StartModify()
    cls.EndModify = lambda self, wasModified: self.parameterNode.EndModify(wasModified)
    cls.allParameters = dict(hints)
    return cls


#: Which Slicer's documented binding rules the stand-in wrapper follows: "5.8" or "5.10".
SLICER_VERSION = "5.10"
#: Parameter node ID -> ModifiedEvent observers the wrappers added and did not remove.
GUI_OBSERVERS: dict = {}

# ----------------------------------------------------------------- ScriptedLoadableModule


class ScriptedLoadableModule:
    def __init__(self, parent) -> None:
        self.parent = parent


class ScriptedLoadableModuleWidget:
    def __init__(self, parent=None) -> None:
        super().__init__()  # cooperative, as Slicer's: the next class in the panel's MRO runs too
        self.moduleName = type(self).__name__[:-len("Widget")]
        self.parent = parent if parent is not None else qMRMLWidget("modulePanel")
        self.parent.isEntered = True
        self.layout = self.parent.layout()
        if parent is None:
            self.setup()

    def resourcePath(self, filename: str) -> str:
        """As Slicer's: the Resources folder beside the module's own file."""
        return str(Path(sys.modules[type(self).__module__].__file__).parent / "Resources" / filename)

    def setup(self) -> None:
        pass

    def cleanup(self) -> None:
        pass

    def onReload(self) -> None:
        pass


class ScriptedLoadableModuleLogic:
    def __init__(self, parent=None) -> None:
        super().__init__()
        self.moduleName = type(self).__name__[:-len("Logic")]

    def getParameterNode(self):
        node = slicer.mrmlScene.GetSingletonNode(self.moduleName, "vtkMRMLScriptedModuleNode")
        if node is None:
            node = slicer.vtkMRMLScriptedModuleNode()
            node.SetSingletonTag(self.moduleName)
            node.SetAttribute("ModuleName", self.moduleName)
            node = slicer.mrmlScene.AddNode(node)
        return node


class ScriptedLoadableModuleTest(unittest.TestCase):
    def delayDisplay(self, message, *args) -> None:
        pass


# ------------------------------------------------------------------------ the application


class Application(QWidget):
    """``slicer.app`` in testing mode: dialogs log and return their default answer."""

    applicationName = "Slicer (stand-in)"

    def __init__(self, application_logic) -> None:
        super().__init__("app")
        self._logic = application_logic

    def testingEnabled(self) -> bool:
        return True

    def applicationLogic(self):
        return self._logic

    def processEvents(self) -> None:
        for timer in list(QTimer.active):
            timer.timeout.emit()

    def setOverrideCursor(self, cursor) -> None:  # QApplication's static functions, as PythonQt reaches them
        QApplication.setOverrideCursor(cursor)

    def restoreOverrideCursor(self) -> None:
        QApplication.restoreOverrideCursor()


def _module(name: str, **attributes) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__dict__.update(attributes)
    return module


def install(application_logic, version: str = "5.10") -> dict:
    """Put the stand-ins in place; returns what :func:`uninstall` needs to undo it."""
    global SLICER_VERSION
    SLICER_VERSION = version
    QTimer.active = []
    QApplication.cursors = []
    GUI_OBSERVERS.clear()
    qt = _module("qt", Qt=Qt, QMessageBox=QMessageBox, QFileDialog=QFileDialog, QFile=QFile, QUiLoader=QUiLoader,
                 QTimer=QTimer, QApplication=QApplication, QVBoxLayout=_Layout, **WIDGET_CLASSES)
    modules = {
        "qt": qt,
        "ctk": _module("ctk", ctkCollapsibleButton=ctkCollapsibleButton, ctkPathLineEdit=ctkPathLineEdit),
        "slicer.i18n": _module("slicer.i18n", tr=lambda text: text, translate=lambda context, text: text),
        "slicer.parameterNodeWrapper": _module(
            "slicer.parameterNodeWrapper", parameterNodeWrapper=parameterNodeWrapper, Choice=_Choice,
            WithinRange=_WithinRange, GuiConnector=GuiConnector),
        "slicer.ScriptedLoadableModule": _module(
            "slicer.ScriptedLoadableModule", ScriptedLoadableModule=ScriptedLoadableModule,
            ScriptedLoadableModuleWidget=ScriptedLoadableModuleWidget,
            ScriptedLoadableModuleLogic=ScriptedLoadableModuleLogic,
            ScriptedLoadableModuleTest=ScriptedLoadableModuleTest),
    }
    saved = {name: sys.modules.get(name) for name in [*modules, "CardioScar", "AttriVAE"]}
    sys.modules.update(modules)
    sys.modules.pop("CardioScar", None)
    sys.modules.pop("AttriVAE", None)
    extra = {"app": Application(application_logic), "qMRMLNodeComboBox": qMRMLNodeComboBox,
             "qMRMLCheckableNodeComboBox": qMRMLCheckableNodeComboBox, "qMRMLWidget": qMRMLWidget}
    saved_attributes = {name: getattr(slicer, name, None) for name in extra}
    for name, value in extra.items():
        setattr(slicer, name, value)
    for folder in MODULE_DIRS:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    # Slicer's launcher puts its PythonSlicer on PATH; here it is this Python under that name
    launcher = Path(tempfile.mkdtemp(prefix="cardioscar-launcher-"))
    script = launcher / "PythonSlicer"
    script.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    script.chmod(0o755)
    saved_path = os.environ.get("PATH", "")
    os.environ["PATH"] = os.pathsep.join([str(launcher), saved_path])
    return {"modules": saved, "attributes": saved_attributes, "PATH": saved_path, "launcher": launcher}


def uninstall(saved: dict) -> None:
    os.environ["PATH"] = saved["PATH"]
    shutil.rmtree(saved["launcher"], ignore_errors=True)  # one per install: /tmp held thousands
    for name, module in saved["modules"].items():
        if module is None:
            sys.modules.pop(name, None)
        else:
            sys.modules[name] = module
    for name, value in saved["attributes"].items():
        if value is None:
            delattr(slicer, name)
        else:
            setattr(slicer, name, value)


# ------------------------------------------------------------------ helpers of the panel tests


@contextlib.contextmanager
def cardioscar_panel(application_logic, version: str = "5.10"):
    """The CardioScar panel as Slicer's module manager makes it (built with the panel as parent, then
    ``setup()``, then ``enter()`` when shown) under ``version``'s rules; cleaned up and the stand-ins
    removed afterwards."""
    saved = install(application_logic, version)
    try:
        import CardioScar

        widget = CardioScar.CardioScarWidget(qMRMLWidget("modulePanel"))
        widget.setup()
        widget.enter()
        yield widget
        widget.cleanup()
    finally:
        uninstall(saved)


def run_to_end(widget, timeout: float = 120.0) -> None:
    """Let the application's timers fire until the panel's run has ended."""
    deadline = time.monotonic() + timeout
    while widget._run is not None:
        assert time.monotonic() < deadline, "the run did not end"
        slicer.app.processEvents()
        time.sleep(0.05)


def click_to_end(widget, button, timeout: float = 120.0) -> None:
    """Click ``button`` and let the worker run it starts, if any, end (Tag tissue and Export run in
    a worker as training does)."""
    button.click()
    run_to_end(widget, timeout)


def observer_count(widget) -> int:
    """ModifiedEvent observers on the panel's parameter node: the wrappers' (counted by the
    stand-in) and the panel's own (VTKObservationMixin's records)."""
    node = widget._parameterNode.parameterNode
    own = widget._VTKObservationMixin__observations.get(node, {})
    return GUI_OBSERVERS.get(node.GetID(), 0) + sum(len(methods) for methods in own.values())
