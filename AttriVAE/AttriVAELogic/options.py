"""The Attri-VAE module's choices as plain values, and the command-line options they become.

The panel, the Python console and tests build an :class:`AttriVAEOptions`; the Logic checks it
before any file is written and turns it into the arguments of ``cardioscar attrivae predict`` /
``explain`` (the only interface this module relies on; its outputs are described in
Documentation/attri-vae.md#attri-vae-mi-classification-with-attention-maps).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cardioscar.errors import CardioScarError
from cardioscar.prepare.targets import _parse_int_list

#: Label conventions of the label maps the model was trained on: cavity labels, myocardium labels.
LABEL_CONVENTIONS = {"EMIDEC": ("1", "2,3,4"), "ACDC": ("3", "2")}
#: Devices the command line accepts.
DEVICES = ("auto", "cpu", "cuda")
#: Latent traversal steps the panel allows (the command line's default is 7).
STEPS_RANGE = (2, 25)


def _names(text: str) -> list[str]:
    return [name.strip() for name in str(text or "").split(",") if name.strip()]


@dataclass
class AttriVAEOptions:
    """What to run. ``cavity_labels`` / ``myocardium_labels``: comma-separated labels of a label
    map input (EMIDEC by default); ``cavity_segments`` / ``myocardium_segments``: comma-separated
    segment names of a segmentation input; ``attributes``: the attributes to explain (empty: all
    the model regularises); ``steps``: points along each traversal."""

    model_path: str = ""
    cavity_labels: str = LABEL_CONVENTIONS["EMIDEC"][0]
    myocardium_labels: str = LABEL_CONVENTIONS["EMIDEC"][1]
    cavity_segments: str = ""
    myocardium_segments: str = ""
    attributes: str = ""
    steps: int = 7
    device: str = "auto"

    def model_file(self) -> Path:
        """The model checkpoint, checked to exist (the command line reads and checks its content)."""
        if not str(self.model_path or "").strip():
            raise CardioScarError("Choose the Attri-VAE model file (.pth, made by cardioscar attrivae train).")
        path = Path(self.model_path).expanduser()
        if path.suffix.lower() != ".pth":
            raise CardioScarError(f"The model file {path} must be a .pth checkpoint from cardioscar attrivae train.")
        if not path.is_file():
            raise CardioScarError(f"Model file not found: {path}")
        return path.resolve()

    def label_lists(self) -> tuple[list[int], list[int]]:
        """(cavity, myocardium) labels of a label map, checked: both given, positive, disjoint."""
        cavity = _parse_int_list(self.cavity_labels, "Cavity labels", "1")
        myocardium = _parse_int_list(self.myocardium_labels, "Myocardium labels", "2,3,4")
        if not cavity or not myocardium:
            raise CardioScarError("Give the cavity labels and the myocardium labels of the label map (EMIDEC: 1 and "
                                  "2,3,4; ACDC: 3 and 2).")
        if min(cavity + myocardium) < 1:
            raise CardioScarError("Cavity and myocardium labels must be >= 1 (0 is the background).")
        shared = sorted(set(cavity) & set(myocardium))
        if shared:
            raise CardioScarError(f"Label {shared[0]} is both a cavity and a myocardium label: give each label once.")
        return cavity, myocardium

    def segment_names(self) -> tuple[list[str], list[str]]:
        """(cavity, myocardium) segment names of a segmentation input, both required."""
        cavity, myocardium = _names(self.cavity_segments), _names(self.myocardium_segments)
        if not cavity or not myocardium:
            raise CardioScarError("With a segmentation as labels, type the names of its cavity segment(s) and of its "
                                  "myocardium segment(s) (infarct and no-reflow segments belong to the myocardium).")
        shared = sorted({n.lower() for n in cavity} & {n.lower() for n in myocardium})
        if shared:
            raise CardioScarError(f"The segment '{shared[0]}' is named for both the cavity and the myocardium.")
        return cavity, myocardium

    def device_arguments(self) -> list[str]:
        if self.device not in DEVICES:
            raise CardioScarError(f"device must be one of {', '.join(DEVICES)}, got {self.device!r}.")
        return ["--device", self.device]

    def explain_arguments(self) -> list[str]:
        """``--attributes`` (when some are chosen) and ``--steps`` of ``explain``."""
        low, high = STEPS_RANGE
        if not low <= int(self.steps) <= high:
            raise CardioScarError(f"Traversal steps must be between {low} and {high}, got {self.steps}.")
        chosen = _names(self.attributes)
        return (["--attributes", ",".join(chosen)] if chosen else []) + ["--steps", str(int(self.steps))]


__all__ = ["AttriVAEOptions", "LABEL_CONVENTIONS", "DEVICES", "STEPS_RANGE"]
