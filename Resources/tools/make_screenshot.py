"""Screenshot, part 2 (a separate environment with PySide6; not a project dependency): draw the
module panel from CardioScar.ui next to the 3D result of part 1, with an honest caption.

    python -m venv /tmp/pyside && /tmp/pyside/bin/pip install PySide6-Essentials
    QT_QPA_PLATFORM=offscreen /tmp/pyside/bin/python Resources/tools/make_screenshot.py OUT_DIR \
        Resources/Screenshots/CardioScar-1.png

The real Slicer window cannot be shown without the application. The panel is the module's own
.ui file loaded by Qt, with Slicer's custom widgets replaced by their nearest Qt widgets
(qMRMLWidget -> QWidget, ctkCollapsibleButton -> QGroupBox, qMRMLNodeComboBox and
qMRMLCheckableNodeComboBox -> QComboBox, ctkPathLineEdit -> QLineEdit) and filled with the values of the part-1 run.
"""

import json
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QRect, Qt
from PySide6.QtGui import QColor, QFont, QImage, QPainter
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import QApplication

REPO = Path(__file__).resolve().parents[2]
UI_FILE = REPO / "CardioScar" / "Resources" / "UI" / "CardioScar.ui"
STAND_INS = {"qMRMLWidget": "QWidget", "ctkCollapsibleButton": "QGroupBox", "qMRMLNodeComboBox": "QComboBox",
             "qMRMLCheckableNodeComboBox": "QComboBox", "ctkPathLineEdit": "QLineEdit"}
SLICER_ONLY_PROPERTIES = {"nodeTypes", "showChildNodeTypes", "addEnabled", "removeEnabled", "noneEnabled",
                          "nameFilters", "collapsed"}
CAPTION = ("Left: the CardioScar panel (CardioScar.ui drawn by Qt; Slicer's custom widgets replaced by the nearest "
           "Qt widgets). Right: the result on an LV phantom, drawn offscreen by Slicer's model and colour-legend "
           "displayable managers (slicer-core), exactly as coloured in a Slicer 3D view. Not a capture of the "
           "Slicer application window.")


def qt_ui_bytes() -> bytes:
    """The .ui with stand-in widget classes and without Slicer-only properties or connections."""
    root = ET.parse(UI_FILE).getroot()
    for widget in root.iter("widget"):
        original = widget.get("class")
        if original in STAND_INS:
            widget.set("class", STAND_INS[original])
        for prop in list(widget.findall("property")):
            if prop.get("name") in SLICER_ONLY_PROPERTIES:
                widget.remove(prop)
            elif original == "ctkCollapsibleButton" and prop.get("name") == "text":
                prop.set("name", "title")
    for tag in ("customwidgets", "connections"):
        element = root.find(tag)
        if element is not None:
            root.remove(element)
    return ET.tostring(root, encoding="utf-8")


def build_panel(values: dict):
    buffer = QBuffer()
    buffer.setData(QByteArray(qt_ui_bytes()))
    buffer.open(QIODevice.ReadOnly)
    panel = QUiLoader().load(buffer)
    find = lambda name: panel.findChild(object, name)  # noqa: E731
    find("inputSelector").addItem(values["volume"])
    find("modelSelector").addItem(values["mesh"])
    find("sliceIndicesLineEdit").setText(values["slices"])
    find("sliceRangeLabel").setText(f"0 to {values['n_slices'] - 1} along z ({values['n_slices']} slices)")
    find("halfThicknessSpinBox").setValue(values["half"])
    find("maxEpochsSpinBox").setValue(values["training"]["max_epochs"])
    find("patienceSpinBox").setValue(values["training"]["early_stopping_patience"])
    find("trainMcSamplesSpinBox").setValue(values["training"]["mc_samples"])
    find("partialVolumeCheckBox").setChecked(True)
    find("inferenceMcSamplesSpinBox").setValue(10)
    find("thresholdCheckBox").setChecked(True)
    find("thresholdSpinBox").setValue(0.5)
    find("seedSpinBox").setValue(42)
    find("deviceLabel").setText(values["device"])
    find("applyButton").setEnabled(True)
    find("saveModelButton").setEnabled(True)
    find("progressBar").setVisible(False)
    seconds = next(v for m, v, u in values["summary"] if m == "Time")
    find("statusLabel").setText(f"Done in {seconds} s on {values['device']}: the result is on '{values['mesh']}'.")
    find("torchVersionLabel").setText(values["torch"])
    find("installTorchButton").setText("Update PyTorch")
    find("logTextEdit").setPlainText("\n".join(values["log"]))
    find("logTextEdit").setMinimumHeight(150)
    rows = "".join(f"<tr><td>{m}</td><td align='right'><b>{v}</b> {u}</td></tr>" for m, v, u in values["summary"])
    find("resultsLabel").setText(f"<table>{rows}</table>")
    panel.resize(400, 1000)
    panel.adjustSize()
    panel.resize(400, panel.sizeHint().height())
    return panel


def main(work: Path, output: Path) -> None:
    app = QApplication.instance() or QApplication(sys.argv[:1])
    values = json.loads((work / "panel_values.json").read_text())
    panel_image = build_panel(values).grab().toImage()
    view = QImage(str(work / "result_3d.png"))  # native size: no resampling of the render
    height = max(panel_image.height(), view.height())
    margin, caption_h = 12, 64
    canvas = QImage(panel_image.width() + view.width() + 3 * margin, height + 2 * margin + caption_h,
                    QImage.Format_RGB32)
    canvas.fill(QColor("#e9e7e2"))
    painter = QPainter(canvas)
    painter.drawImage(margin, margin, panel_image)
    painter.drawImage(2 * margin + panel_image.width(), margin + (height - view.height()) // 2, view)
    painter.setFont(QFont("DejaVu Sans", 10))
    painter.setPen(QColor("#222222"))
    painter.drawText(QRect(margin, height + 2 * margin, canvas.width() - 2 * margin, caption_h - margin),
                     Qt.TextWordWrap, CAPTION)
    painter.end()
    output.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(str(output))
    del app


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
