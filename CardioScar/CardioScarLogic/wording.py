"""The library's one-line errors in the panel's words.

The library names what to fix by its command-line option (``--scar-labels 3,4 match no pixel``),
which is right on the command line and in the batch script but means nothing to someone who clicks:
the panel shows the same message with each option it has a box for named as that box's label
(``'Scar labels' 3,4 match no pixel``). Options with no box in the panel keep their name, so the
message stays findable in the README's option tables.
"""

from __future__ import annotations

import re

#: Command-line option -> the label of the panel box that sets the same thing (CardioScar.ui).
PANEL_NAMES = {
    "--image": "LGE volume / scar",
    "--mesh": "Heart mesh",
    "--slice-axis": "Slice axis",
    "--slice-indices": "Slice indices",
    "--slice-thickness-padding": "Slab half-width",
    "--scar-labels": "Scar labels",
    "--myocardium-labels": "Myocardium labels",
    "--myocardium-mask": "Myocardium mask",
    "--myocardium-margin": "Myocardium margin",
    "--slice-profile": "Slice profile",
    "--preset": "Preset",
    "--max-epochs": "Max epochs",
    "--seed": "Seed",
    "--normalize-intensities": "Normalise intensities",
    "--shape-prior": "Shape prior",
    "--cpu": "Force CPU",
    "--threshold": "Threshold",
    "--scar-rule": "Scar rule (raw LGE)",
    "--scar-thresholds": "Thresholds (border,core)",
    "--scar-target": "Network learns",
    "--blood-pool-mask": "Blood pool",
    "--blood-pool-labels": "Blood-pool labels",
    "--remote-mask": "Remote myocardium",
    "--intensity-offset": "Intensity offset",
    "--core-mesh": "Core model",
    "--core-field": "Core field",
    "--border-zone": "Border zone from",
    "--core": "Core from",
    "--tags": "Tag numbers",
    "--format": "Export format",
    "--units": "Units",
    "--rv-label": "RV label",
    "--myocardium-label": "Myocardium label",
}

_OPTION = re.compile(r"(?<![\w-])--[a-z][a-z-]*[a-z]")
#: A command a message quotes (``run cardioscar aha --help``): left as written, to be typed.
_COMMAND_BEFORE = re.compile(r"cardioscar [a-z-]+ $")


def in_panel_words(message: str) -> str:
    """``message`` with each command-line option the panel has a box for replaced by that box's
    label in quotes; a quoted command and everything else as it was."""

    def named(found: re.Match) -> str:
        option = found.group(0)
        if option not in PANEL_NAMES or _COMMAND_BEFORE.search(message, 0, found.start()):
            return option
        return f"'{PANEL_NAMES[option]}'"

    return _OPTION.sub(named, message)
