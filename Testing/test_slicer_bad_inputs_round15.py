"""Round 15 of the bad-input review in the Slicer Logic, on a real MRML scene (slicer-core): the
phantom's raw LGE and label map read through Slicer's storage nodes (``test_slicer_rule_masks``'s
scene). The *Bad input* table (Documentation/bad-input.md) has the row."""

from __future__ import annotations

import numpy as np
import pytest
import slicer

from cardioscar.errors import CardioScarError
from test_slicer_rule_masks import _labelmap_like, _options, _targets_and_record, files, scene  # noqa: F401


def test_a_remote_region_with_a_rule_other_than_nsd_is_refused(scene):
    """A remote label map left selected after switching the panel's rule from n-SD to PSI: the Logic
    read it and dropped it without a word, where ``prepare`` refuses ``--remote-mask`` with psi."""
    s = scene
    remote = _labelmap_like(s["scene"], s["labels"], slicer.util.arrayFromVolume(s["labels"]) == 2, "remote")
    with pytest.raises(CardioScarError, match="nsd only; psi has no remote region: leave it out"):
        _targets_and_record(s, _options(s, scar_rule="psi", myocardium_labels="2"), s["labels"], remote_node=remote)
    targets, record = _targets_and_record(s, _options(s, scar_rule="nsd", myocardium_labels="2"), s["labels"],
                                          remote_node=remote)
    assert record["rule"] == "nsd" and np.isfinite(targets).all()
