"""Where a reconstruction may have filled a narrow conducting channel with core.

Why: from 8-13 mm slices the reconstruction narrows a border-zone corridor through dense scar
and pushes its probability up into the core's range. On the corridor phantoms
(``Testing/benchmarks/channels_phantom.py``, ``Testing/benchmarks/ROBUSTNESS.md``, *Conducting
channels on a phantom whose truth holds a corridor*) a 4 mm corridor was found in 0 of 8 cases,
6 mm in 2 of 8, 8 mm in 5 of 8, while the truth's own search found them all. An empty channel
table is therefore not evidence of no channel, and the search says so on every face.

Which nodes to point at (``Testing/benchmarks/channels_hidden.py``, 24 reconstructions, same
document, *Where the reconstruction hides a corridor*): among the nodes tagged core, the lost
corridor's nodes were not farther from the slices or from the constrained nodes than the true
core's (ROC AUC 0.46-0.59 across the slices, 0.31-0.75 along them), and their MC-dropout spread
and ``scar_error_risk`` at the core threshold ranked them below the plain margin above the
threshold. A filled 6-8 mm corridor's probability mostly stays just above the core threshold, so
:data:`MARGINAL_CORE_FIELD` marks the core nodes whose probability lies within
:data:`CORE_MARGIN` of it: 75-93 % of the lost nodes of 6-8 mm corridors across the slices and of
8 mm ones along them (38 % of 6 mm along), while flagging 21-32 % of the true core; a 4 mm
corridor was pushed well above it (8-24 % of its lost nodes flagged, the true core 15-16 %),
so no per-node signal measured here points at it, and the statement is what covers it.

The flag needs the probability the core was cut from: tags alone (an export's ``tissue_tag``)
carry no margin, and then only the statement is given.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

logger = logging.getLogger(__name__)

#: The point field written beside ``bz_channel``: 1 on a core node whose probability lies within
#: :data:`CORE_MARGIN` of the core threshold, 0 elsewhere (written only when the tags were cut from a
#: probability here).
MARGINAL_CORE_FIELD = "core_marginal"
#: How far above the core threshold (probability) a core node is flagged.
CORE_MARGIN = 0.1
#: Below this width (mm) the phantoms' reconstructions lost most corridors (4 mm: 0 of 8 found,
#: 6 mm: 2 of 8, 8 mm: 5 of 8).
NARROW_CORRIDOR_MM = 8.0


#: The attribute :func:`log_hidden` sets on its log record: a cohort, where the caveat would be
#: every patient's warning, leaves it out of the patients' warnings and says it once in its summary.
SAID_ONCE_PER_COHORT = "cardioscar_said_once_per_cohort"


@dataclass(frozen=True)
class SearchWords:
    """What the search's sentences call the corridor it looks for and the class it runs through.

    Why two sets: two fields (a scar model and a core model, a ``scar_rule``) give two tissue
    classes, a border zone and a core; one field cut at two probabilities gives two bands of one
    quantity, and a sentence that said "a border-zone corridor ... filled with core" of them passed
    the field's smooth edge off as tissue (:data:`.channels.ONE_FIELD_CHANNELS` says what its channels
    are). Machine-read names (``core_nodes``, ``core_marginal``, ``--core``) are the same for both."""

    corridor: str
    core: str
    in_core: str
    core_nodes: str
    threshold: str
    margin: str
    filled: str


#: Two fields' tissue classes (also tags without the export's note of which they are: read as before).
TISSUE_WORDS = SearchWords(corridor="border-zone corridor", core="the core", in_core="core", core_nodes="core nodes",
                           threshold="the core threshold", margin="the core's margin", filled="filled with core")
#: One field's probability bands: the corridor is its lower band, what it runs through its top band.
BAND_WORDS = SearchWords(corridor="corridor of the lower probability band", core="the top band",
                         in_core="in the top band", core_nodes="top-band nodes", threshold="the top band's threshold",
                         margin="the top band's margin", filled="raised into the top band")


def search_words(classes: str | None) -> SearchWords:
    """The words for tags whose classes are ``classes`` (:attr:`.channels.Tissue.classes`)."""
    return BAND_WORDS if classes == "bands" else TISSUE_WORDS


def corridor_caveat(words: SearchWords = TISSUE_WORDS) -> str:
    """The caveat every channel search with core carries (a cohort summary's note says it once)."""
    return (f"a {words.corridor} narrower than about {NARROW_CORRIDOR_MM:g} mm may have been {words.filled} by the "
            f"reconstruction, so no channel through {words.core} is not evidence of none")


@dataclass(frozen=True)
class HiddenCore:
    """How much of the core may hide a narrow corridor: the per-node flag (None without a
    probability) and per-layer counts."""

    core_nodes: int
    flag: np.ndarray | None
    per_layer: list[dict] = field(default_factory=list)
    basis: str = ""
    #: The tags' classes (:attr:`.channels.Tissue.classes`), which word its sentences (:func:`search_words`).
    classes: str | None = None

    @property
    def flagged_nodes(self) -> int | None:
        """Core nodes flagged (None: no per-node flag, the tags had no probability)."""
        return None if self.flag is None else int(self.flag.sum())

    def summary(self) -> str:
        """One line for the log, the batch script and the panel (empty with no core)."""
        if not self.core_nodes:
            return ""
        words = search_words(self.classes)
        caveat = corridor_caveat(words)
        if self.flag is None:
            return f"{caveat} ({self.core_nodes} {words.core_nodes}; {self.basis})"
        share = 100.0 * self.flagged_nodes / self.core_nodes
        return (f"{caveat}: {self.flagged_nodes} of {self.core_nodes} {words.core_nodes} ({share:.0f} %) lie within "
                f"{CORE_MARGIN:g} of {words.threshold} ({MARGINAL_CORE_FIELD}), where filled 6-8 mm corridors mostly "
                "lay; a filled 4 mm one is mostly above it, so look beyond the flag too")

    def record(self) -> dict:
        """``channels.json``'s ``hidden_corridors`` entry."""
        return {"narrow_corridor_mm": NARROW_CORRIDOR_MM, "core_margin": CORE_MARGIN,
                "node_field": MARGINAL_CORE_FIELD if self.flag is not None else None, "basis": self.basis,
                "core_nodes": self.core_nodes, "flagged_core_nodes": self.flagged_nodes,
                "note": self.summary(), "per_layer": self.per_layer}


def hidden_core(core: np.ndarray, core_margin: np.ndarray | None, bands: dict[float, np.ndarray],
                classes: str | None = None) -> HiddenCore:
    """The core nodes that may hide a narrow corridor. ``core``: the core mask; ``core_margin``: the
    probability minus the core threshold per node (None: the tags carry no probability);
    ``bands``: each searched layer's nodes; ``classes``: the tags' (:func:`search_words`). Only the
    searched layers' core counts and is flagged, as only it was searched (the channel summary's "no
    core" is of these layers too)."""
    words = search_words(classes)
    core = np.asarray(core, bool) & np.logical_or.reduce(list(bands.values()), initial=False)
    if core_margin is None:
        flag = None
        basis = f"no {MARGINAL_CORE_FIELD}: the tags carry no probability to measure {words.margin} from"
    else:
        flag = core & (np.asarray(core_margin, np.float64) < CORE_MARGIN)
        basis = f"{words.core_nodes} whose probability is below {words.threshold} + {CORE_MARGIN:g}"
    per_layer = [{"layer": layer, "core_nodes": int((band & core).sum()),
                  "flagged_core_nodes": None if flag is None else int((band & flag).sum())}
                 for layer, band in bands.items()]
    return HiddenCore(core_nodes=int(core.sum()), flag=flag, per_layer=per_layer, basis=basis, classes=classes)


def marginal_core_fields(hidden: HiddenCore | None) -> dict[str, np.ndarray | None]:
    """The per-node field to write beside ``bz_channel``; None (remove it) without a per-node flag,
    so that an earlier search's flag is not left beside this search's channels."""
    return {MARGINAL_CORE_FIELD: None if hidden is None or hidden.flag is None else hidden.flag.astype(np.uint8)}


def log_hidden(hidden: HiddenCore, source: str) -> None:
    """Warn, once per search with core, that a narrow corridor may be hidden in it (a cohort keeps
    it out of each patient's warnings: :data:`SAID_ONCE_PER_COHORT`)."""
    if hidden.core_nodes:
        logger.warning("%s: %s", source, hidden.summary(), extra={SAID_ONCE_PER_COHORT: True})
