"""``scar_error_risk``: how likely the call at 0.5 is wrong on each node (issue 18, item 5).

Why a field beside ``scar_uncertainty``: the MC-dropout standard deviation alone ranks the nodes
that are wrong at 0.5 less well than the plain margin ``|p - 0.5|`` does (segmented phantoms,
12k nodes, fast preset, ROC AUC for "wrong at 0.5", seeds 0/1/2: 0.969/0.959/0.886 against
0.988/0.961/0.983), and between the slices it is often no higher than on them.

The call at a node is right when two things hold, taken as independent:

* **its value**: the error of ``p`` is modelled as Gaussian with spread
  ``s = sqrt(std**2 + RISK_SPREAD_FLOOR**2)``; the chance that it crosses the cut is the two-sided
  tail ``erfc(|p - cut| / (s * sqrt(2)))``. The floor stands for what dropout cannot see (a wall
  one pixel off the image's, a slab's partial volume); without it a saturated network's confident
  nodes all tie at 0.
* **where the scar's border runs**: the border between the two calls is placed closely where
  groups constrain the field and drifts as the distance from them grows, since between slices
  the network only interpolates. The chance that the border lies beyond the node is
  ``erfc(d / (b * sqrt(2)))`` with ``d`` the node's distance to the border (where ``p`` crosses
  the cut, linear between the node and its nearest node of the other call) and
  ``b = BORDER_SPREAD_MM + BORDER_SPREAD_PER_MM * r``, ``r`` the distance to the nearest
  constrained node (the checkpoint's ``constraint_points_lps``). Half the distance to that node
  ranked the wrong nodes 0.002-0.004 better on average but made the risk depend on the mesh:
  one model gave the same heart meshed with 1.5k, 6k and 24k nodes a mean risk of 0.079, 0.101
  and 0.141, against 0.070, 0.081 and 0.099 with this distance
  (``Testing/benchmarks/error_risk_mesh_resolution.py``).

The risk is ``1 - (1 - value term) (1 - border term)``. Files without constraint points (older
checkpoints, the reference tool's) get the value term alone, as before. Why the border term
(ROC AUC for the nodes wrong at 0.5, fast preset, 10 MC samples; ``Testing/benchmarks/
bench_emidec_loso.py`` and ``bench_robust.py``, figures in ``Testing/benchmarks/ROBUSTNESS.md``):
on the 49 EMIDEC leave-one-slice-out cases with scar on the held-out slice, the value term
alone scores 0.851 (the margin 0.852), with the border 0.861, and the risk is higher on the held-out slice than on
the training slices on 50 of 52 cases (38 of 52); on the 8 segmented phantom seeds 0.961 ->
0.959, on the real biv-me planes 0.882 -> 0.944. Adding the distance to the value term's
spread instead cost label-map inputs up to 0.19 of AUC: it lifts every confident node between
the slices above the on-slice nodes whose value is nearer the cut.
``scar_uncertainty`` keeps its documented meaning (the MC-dropout std).

The risk is kept in float64, on the mesh too: the confident nodes' risks differ in the seventh
digit (erfc near 3.5 is 6e-7), and float32 ties them, losing an order that finds confidently wrong
nodes (EMIDEC P087, the value term's AUC 0.868 in float64, 0.784 in float32).
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.spatial import cKDTree
from scipy.special import erfc

#: The point array the risk is written as, beside ``scar_probability`` / ``scar_uncertainty``.
ERROR_RISK_FIELD = "scar_error_risk"

#: The spread every node's error has beside its MC-dropout std (see the module docstring): among
#: 0, 0.02, 0.05 and 0.1 on the segmented phantoms, 0.1 gave the highest mean wrong-node AUC.
RISK_SPREAD_FLOOR = 0.1

#: How far (mm) the border may lie from where the field puts it, at a constrained node: about a
#: clinical LGE pixel (1.25-2 mm). With the growth below, 1, 1.5 and 2 mm rank the wrong nodes
#: within 0.001 of each other (``Testing/benchmarks/error_risk_study.py``: mean AUC 0.864-0.865
#: on the 52 EMIDEC leave-one-slice-out cases, 0.962-0.963 on 11 phantom cases; 0.5 mm lower).
BORDER_SPREAD_MM = 1.5

#: How much that spread grows (mm per mm) with the distance to the nearest constrained node:
#: 2.5 mm in the middle of a 10 mm gap. With 0.1 instead the risk was higher on the held-out
#: slice than on the training slices on 45 of 52 EMIDEC cases, with 0.2 on 50.
BORDER_SPREAD_PER_MM = 0.2


def distance_to_border(points: np.ndarray, probability: np.ndarray, cut: float = 0.5) -> np.ndarray:
    """mm from each node to the border where ``probability`` crosses ``cut``: linear between the
    node and its nearest node of the other call, so the node's share of that distance is its
    margin's share of the two margins. A distance on the field rather than on the mesh: half the
    distance to that node, the mesh's own step, made a finer mesh of the same heart look far
    riskier; this one still grows somewhat where the field is not linear between coarse nodes
    (``Testing/benchmarks/error_risk_mesh_resolution.py``); ``inf`` where every node makes the
    same call."""
    above = probability >= cut
    margin = np.abs(probability - cut)
    distance = np.full(len(probability), np.inf)
    for side in (True, False):
        sources, targets = np.flatnonzero(above == side), np.flatnonzero(above != side)
        if sources.size and targets.size:
            reach, nearest = cKDTree(points[sources]).query(points[targets])
            mine, theirs = margin[targets], margin[sources[nearest]]
            distance[targets] = reach * mine / np.maximum(mine + theirs, 1e-12)
    return distance


def error_risk(probability: np.ndarray, std: np.ndarray, cut: float = 0.5, points: Optional[np.ndarray] = None,
               constraint_points: Optional[np.ndarray] = None) -> np.ndarray:
    """The chance that the call at ``cut`` is wrong on each node (module docstring), float64.

    ``cut``: the threshold of the call the risk is for (``apply --threshold``; 0.5 without one).
    ``points`` (the nodes, mm) and ``constraint_points`` (the constrained nodes the model was
    trained on, mm, same frame) add the border term; without either, the value term alone."""
    probability = np.asarray(probability, dtype=np.float64)
    spread = np.sqrt(np.square(np.asarray(std, dtype=np.float64)) + RISK_SPREAD_FLOOR ** 2)
    value = erfc(np.abs(probability - cut) / (spread * np.sqrt(2.0)))
    if points is None or constraint_points is None or len(constraint_points) == 0:
        return value
    points = np.asarray(points, dtype=np.float64)
    reach = cKDTree(np.asarray(constraint_points, dtype=np.float64)).query(points)[0]
    border_spread = BORDER_SPREAD_MM + BORDER_SPREAD_PER_MM * reach
    border = erfc(distance_to_border(points, probability, cut) / (border_spread * np.sqrt(2.0)))
    return 1.0 - (1.0 - value) * (1.0 - border)
