"""The demo's AHA page: the prediction's 17-segment table beside the phantom truth's.

The phantom has no RV, so its RV insertions come from its own wall coordinates (theta = 30 and
150 degrees bound its septum, centred at 90 degrees) and its long axis from its apex and base
plane: the table then measures the reconstruction only, not the segmentation.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from cardioscar.io.meshio import Mesh

from .analysis import AhaOptions, analyse_mesh, write_outputs

#: The phantom's anterior and inferior RV insertions (theta, degrees) and their meridional angle.
PHANTOM_INSERTIONS_DEG = (30.0, 150.0)
PHANTOM_INSERTION_U = 1.2
COMPARED = ("scar_pct", "transmurality_mean_pct")


def phantom_options(phantom, field: str) -> AhaOptions:
    """Options placing the segments from the phantom's analytic frame."""
    geometry = phantom.geometry
    insertions = [geometry.to_lps(geometry.wall_to_local(np.array([0.5]), np.array([PHANTOM_INSERTION_U]),
                                                         np.array([math.radians(angle)])))[0]
                  for angle in PHANTOM_INSERTIONS_DEG]
    apex, base = geometry.to_lps(np.array([[0.0, 0.0, -geometry.c_epi], [0.0, 0.0, 0.0]]))
    return AhaOptions(field=field, rv_point=insertions[0], rv_inferior_point=insertions[1], apex=apex, base=base)


def phantom_aha_report(phantom, prediction: Mesh, out: Path) -> dict:
    """Write ``aha.csv`` / ``aha.json`` / ``bullseye.png`` of the prediction (with the truth's
    scar % as a fourth disc) and return the report's ``aha`` section: per segment, predicted and
    true scar % and transmurality, and their mean absolute differences."""
    predicted = analyse_mesh(prediction, phantom_options(phantom, "scar_probability"))
    truth = analyse_mesh(prediction, phantom_options(phantom, "scar_truth"))
    write_outputs(prediction, predicted, out, reference_rows=truth.rows,
                  subtitle="demo phantom: prediction (scar_probability >= 0.5) and the phantom's truth")
    segments = []
    for mine, true in zip(predicted.rows, truth.rows):
        entry = {"segment": mine["segment"], "territory": mine["territory"],
                 "uncertainty_mean": mine.get("uncertainty_mean")}
        for key in COMPARED:
            entry[key] = mine[key]
            entry[f"truth_{key}"] = true[key]
        segments.append(entry)
    errors = {f"mean_abs_error_{key}": float(np.mean([abs(e[key] - e[f"truth_{key}"]) for e in segments
                                                       if e[key] is not None and e[f"truth_{key}"] is not None]))
              for key in COMPARED}
    return {**errors, "segments": segments, "transmurality_method": predicted.summary["transmurality_method"]}
