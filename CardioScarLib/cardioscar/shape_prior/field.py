"""The shape prior as a field: evaluated at any LPS points, stored in ``.npz`` and checkpoints.

Per point, every slice whose pixel grid covers the point's in-plane projection offers its signed
distance there (bilinear). Slices are grouped into stacks of parallel planes; per stack, only the
nearest covering plane on each side of the point counts. The offered distances are averaged with
weights ``1 / (distance to the plane)``, which between two parallel neighbours is exactly linear
interpolation (shape-based interpolation, as LogOdds does), and works the same for oblique and
mixed short- and long-axis slices. The log-odds is ``-d / alpha_mm`` near the outline, saturating
softly at ``+-clip_logit`` (``clip_logit * tanh(-d / (alpha_mm * clip_logit))``): a strong but not
absolute vote, so the groups can still overrule it, and still strictly monotone in ``d`` (a hard
clip ties every node far from the outline, and the ranking of the held-out scar suffered). A
point no slice covers gets log-odds 0 (no prior).

Linear interpolation of the outline shrinks a blob between its slices: a cross-section's radius
is concave along the stack (for a parabolic profile ``r(z) = r0 - z^2 / (2 R)`` the chord between
planes at distances ``a`` below and ``b`` above falls ``a b / (2 R)`` short of it). So each stack
with a plane on both sides also offers the bulge ``a b / (2 bulge_radius_mm)`` mm, 0 on the planes
and largest half-way, averaged over the stacks with the same weights, and subtracted from the
distance (the outline grows by it). ``bulge_radius_mm`` = inf: plain shape-based interpolation.

Where no group speaks, the prior rules: the network's residual ``f`` is multiplied by a weight
(:meth:`ShapePrior.residual_weight`) that is 1 up to ``residual_full_mm`` from the nearest covering
plane (set at training to the farthest training row, so every row has weight 1 and training is
unchanged) and falls as ``exp(-(excess / residual_decay_mm)^2 / 2)`` beyond it. Without it, the
smooth continuation of ``f`` between the slabs pulled a held-out slice's scar below the prior
alone (EMIDEC leave-one-slice-out: 22 of 49 cases more than 0.02 Dice below it). Every MC
sample's ``f`` is weighted (weighting only their mean, keeping each sample's deviation, exposed a
dropout spread between the slabs that the sigmoid had hidden: EMIDEC held-out AUC 0.892 against
0.918 unweighted on 5 cases, and the uncertainty no longer found the wrong nodes, AUC 0.47).

Where the groups speak, the prior's own vote is scaled by ``slab_scale`` (:meth:`ShapePrior.node_terms`:
the log-odds times ``1 - w (1 - slab_scale)``, with ``w`` the residual weight above: ``slab_scale`` on
the training slabs, 1 where the residual has decayed). In a full reconstruction the prior cost
accuracy where its outline is wrong and the groups could not overrule it (12k-node phantoms: the
segmented seed 4 lost 0.051 Dice, the demo 0.011, from false positives between the slabs and at the
outline in the groups); the held-out slices of leave-one-slice-out lie beyond the slabs, where the
prior keeps its full weight. Beyond a stack's end planes (no covering plane on one side) the prior
only extrudes the last slice's outline, so there (``network_beyond_ends``) the residual keeps weight
1 and the prior's vote fades from ``slab_scale`` to 0 with the same Gaussian: that extrusion was
most of the prior's false positives outside the slabs on the segmented seed 4 (65 of 77 nodes).

Only the planes of stacks with two or more parallel slices (the planes the prior interpolates
between) measure that distance (``weigh_lone_planes`` False, since version 4). A lone plane, e.g. a
long-axis view pooled with a short-axis stack, crosses the short-axis gaps: measured against it,
the nodes of a gap within a slab's half-width of it had weight 1 and their neighbours the prior's,
so a held-out short-axis slice was ranked by where its nodes lie rather than by scar (biv-me's
leave-one-slice-out, 17.7 mm gaps: held-out AUC 0.513 over 5 seeds, prior off 0.933; 0.882 with
version 4). The long-axis rows then set ``residual_full_mm`` (they lie up to half a gap from the
stack's planes), so they keep weight 1 and the network follows their groups; in practice the network
rules the whole gap where long-axis views cross it, and the prior rules the gaps of a short-axis
stack alone exactly as before. Without any stack of two planes every plane counts.

The residual may be bounded (``residual_bound``, version 5): it enters as ``c tanh(f / c)`` logits,
the same in training and at prediction (:func:`cardioscar.fit.engines.bounded_residual`), so a
network fitted to 0/1 rows cannot carry its saturated 4-6 logits to nodes near a plane with no row
(the outside review's apical cap and EMIDEC N020). Off by default (``RESIDUAL_BOUND`` inf), kept for
experiments: at c = 3-6 it lifted the apical cap (Dice 0.92 against 0.88) but not N020 (whose errors
are the fit of wrong 0/1 rows), cost the rim where the prior is the worse guess (AUC 0.96-0.98 against
0.98) and EMIDEC's held-out Dice (8 cases, 0.780-0.787 against 0.792): Testing/benchmarks/ROBUSTNESS.md,
*A bounded residual in training*.

Stored as two arrays: the maps concatenated (float32) and one geometry row per slice
(:data:`GEOMETRY_COLUMNS` numbers: the 3x4 LPS -> (i, j, d) matrix, the map's offset (i0, j0) in
the slice grid, the grid's (rows, cols), the map's (rows, cols)).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage

from cardioscar.errors import CardioScarError

logger = logging.getLogger(__name__)

#: Version of the stored prior; a checkpoint without one has no prior (log-odds 0 everywhere).
#: 2 added the residual weight (``residual_full_mm``, ``residual_decay_mm``); a version 1 prior
#: loads with ``residual_full_mm`` = inf (weight 1 everywhere: the field it was trained and used with).
#: 3 added ``slab_scale`` and ``network_beyond_ends``; a version 1 or 2 prior loads with
#: ``slab_scale`` = 1 and ``network_beyond_ends`` = False (the prior's full vote on the slabs and the
#: residual's decay beyond the stack's ends: as it was trained and used).
#: 4 added ``weigh_lone_planes`` (False: the residual weight is measured against stacks of two or
#: more parallel planes only); a version 1-3 prior loads with True (every plane, as before).
#: 5 added ``residual_bound``; a version 1-4 prior loads with inf (the residual unbounded, as before).
PRIOR_VERSION = 5
#: The version an unbounded prior (the default) is written as: the newest without ``residual_bound``,
#: so that files written with the default stay readable by builds that predate the bound.
UNBOUNDED_VERSION = 4
GEOMETRY_COLUMNS = 18
#: Defaults of the log-odds transform (see :class:`ShapePrior`).
ALPHA_MM = 2.0
CLIP_LOGIT = 3.0
#: 20 mm: on EMIDEC's held-out slices (the prior alone, 49 cases) the bulge of the neighbours 20-26 mm
#: apart raised Dice at 0.5 from 0.624 to about 0.68 (best constant 3-4 mm, R = 20 gives 2.5-4.2).
BULGE_RADIUS_MM = 20.0
#: Decay (mm) of the residual's weight beyond the training slabs (see :meth:`ShapePrior.residual_weight`).
RESIDUAL_DECAY_MM = 2.0
#: Bound (logits) on the network's residual (``c tanh(f / c)``); inf: unbounded, the behaviour of
#: versions 1-4 and still the default (Testing/benchmarks/ROBUSTNESS.md, *A bounded residual in training*).
RESIDUAL_BOUND = math.inf
#: Factor on the prior's log-odds where the groups speak (see :meth:`ShapePrior.node_terms`). 0.5: on
#: 12k-node phantoms (segmented seeds 0, 1, 3, 4 and the demo) full reconstructions with it (and the
#: end rule) reached mean Dice 0.909 against 0.898 with version 2 (prior off 0.908), leave-one-slice-out
#: on the segmented seeds 0-3 unchanged; 0 (the slabs exactly as without a prior) lost the held-out
#: scar of segmented seed 3 at 10 mm (Dice 0.12 against 0.41, AUC 0.65 against 0.94).
#: Testing/benchmarks/ROBUSTNESS.md: "The prior in a full reconstruction".
SLAB_SCALE = 0.5
#: Millimetres below which a point counts as lying on a plane (its weight stays finite).
ON_PLANE_MM = 1e-3
#: Two normals closer than this (1 - |cos|) belong to one stack.
PARALLEL_TOLERANCE = 1e-3
#: Points evaluated at once (two float64 arrays of slices x points each: memory stays bounded).
POINTS_PER_CHUNK = 100_000


def group_stacks(normals: np.ndarray) -> list[tuple[list[int], np.ndarray]]:
    """Stacks of parallel planes: per stack the member indices and, per member, +1 or -1 so
    that ``sign * normal`` points like the stack's first member's normal."""
    stacks: list[tuple[list[int], list[float]]] = []
    for index, normal in enumerate(np.asarray(normals, dtype=float)):
        for members, signs in stacks:
            cosine = float(np.dot(normals[members[0]], normal))
            if abs(cosine) >= 1.0 - PARALLEL_TOLERANCE:
                members.append(index)
                signs.append(1.0 if cosine > 0 else -1.0)
                break
        else:
            stacks.append(([index], [1.0]))
    return [(members, np.array(signs)) for members, signs in stacks]


@dataclass
class ShapePrior:
    """Per-slice signed distance maps (mm) with their geometry, and the log-odds transform."""

    maps: list[np.ndarray]
    geometry: np.ndarray  # (S, GEOMETRY_COLUMNS)
    alpha_mm: float = ALPHA_MM
    clip_logit: float = CLIP_LOGIT
    bulge_radius_mm: float = BULGE_RADIUS_MM
    residual_full_mm: float = math.inf
    residual_decay_mm: float = RESIDUAL_DECAY_MM
    slab_scale: float = SLAB_SCALE
    network_beyond_ends: bool = True
    weigh_lone_planes: bool = False
    residual_bound: float = RESIDUAL_BOUND

    def stacks_only(self) -> bool:
        """Whether every plane belongs to a stack of two or more parallel planes: what the prior
        interpolates across, with no lone (long-axis) view pooled in, where it gained nothing
        measured (Testing/benchmarks/ROBUSTNESS.md, *Prior version 4*)."""
        stacks = group_stacks(self.geometry[:, 8:11])
        return bool(stacks) and all(len(members) >= 2 for members, _ in stacks)

    def signed_distance(self, points_lps: np.ndarray) -> np.ndarray:
        """(N,) interpolated signed distance (mm, negative inside the scar); NaN where no slice
        covers a point."""
        points = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
        return np.concatenate([self._signed_distance(points[start:start + POINTS_PER_CHUNK])
                               for start in range(0, len(points), POINTS_PER_CHUNK)] or [np.zeros(0)])

    def _along(self, points: np.ndarray, offered: np.ndarray | None = None) -> np.ndarray:
        """(S, n) each point's signed distance to each slice's plane, NaN where the slice's map does
        not cover its projection; fills ``offered`` (S, n) with the maps' values when given."""
        along = np.full((len(self.maps), len(points)), np.nan)
        for k, (distance_map, row) in enumerate(zip(self.maps, self.geometry)):
            to_index = row[:12].reshape(3, 4)
            index = points @ to_index[:, :3].T + to_index[:, 3]
            i0, j0, rows, cols = row[12:16]
            covered = (index[:, 0] >= -0.5) & (index[:, 0] < cols - 0.5) & \
                      (index[:, 1] >= -0.5) & (index[:, 1] < rows - 0.5)
            if offered is not None:
                offered[k] = ndimage.map_coordinates(distance_map.astype(np.float64),
                                                     [index[:, 1] - j0, index[:, 0] - i0], order=1, mode="nearest")
            along[k] = np.where(covered, index[:, 2], np.nan)
        return along

    def _plane_terms(self, points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) distance (mm) to the nearest covering plane of :meth:`_measured_planes` (inf where none
        covers), and (N,) bool:
        some stack has a covering plane on each side of the point (it lies between planes, not
        beyond a stack's end)."""
        points = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
        stacks = group_stacks(self.geometry[:, 8:11])
        measured = self._measured_planes(stacks)
        distances, between = [np.zeros(0)], [np.zeros(0, bool)]
        for start in range(0, len(points), POINTS_PER_CHUNK):
            along = self._along(points[start:start + POINTS_PER_CHUNK])
            offset = np.abs(along[measured])
            distances.append(np.min(np.where(np.isnan(offset), np.inf, offset), axis=0, initial=np.inf))
            two_sided = np.zeros(along.shape[1], bool)
            for members, signs in stacks:
                signed = along[members] * signs[:, None]  # NaN (not covered) compares false
                two_sided |= np.any(signed >= 0, axis=0) & np.any(signed < 0, axis=0)
            between.append(two_sided)
        return np.concatenate(distances), np.concatenate(between)

    def _measured_planes(self, stacks: list[tuple[list[int], np.ndarray]]) -> np.ndarray:
        """(S,) bool: the planes the residual weight is measured against: those of stacks of two or
        more planes, unless ``weigh_lone_planes`` or no stack has two (then every plane)."""
        multi = np.zeros(len(self.maps), bool)
        for members, _ in stacks:
            if len(members) > 1:
                multi[members] = True
        return np.ones(len(self.maps), bool) if self.weigh_lone_planes or not multi.any() else multi

    def plane_distance(self, points_lps: np.ndarray) -> np.ndarray:
        """(N,) distance (mm) from each point to the nearest plane whose map covers it, of the planes the
        residual weight is measured against (:meth:`_measured_planes`); inf where none does."""
        return self._plane_terms(points_lps)[0]

    def _weights(self, points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) residual weight ``w`` and (N,) factor on the prior's log-odds (see :meth:`node_terms`)."""
        distance, between = self._plane_terms(points_lps)
        excess = np.where(np.isfinite(distance), np.maximum(distance - self.residual_full_mm, 0.0), 0.0)
        fade = np.exp(-0.5 * (excess / self.residual_decay_mm) ** 2)
        scale = 1.0 - fade * (1.0 - self.slab_scale)
        if self.network_beyond_ends:
            ends = ~between
            fade, scale = np.where(ends, 1.0, fade), np.where(ends, self.slab_scale * fade, scale)
        return fade.astype(np.float32), scale.astype(np.float32)

    def residual_weight(self, points_lps: np.ndarray) -> np.ndarray:
        """(N,) float32 factor on the network's residual: 1 within ``residual_full_mm`` of a covering
        plane of a stack (:meth:`_measured_planes`; and where no slice covers: no prior there), ``exp(-(excess / residual_decay_mm)^2 / 2)``
        beyond, so that between the training slabs the prior rules and ``f`` cannot pull it down.
        With ``network_beyond_ends``, 1 beyond a stack's end planes, where the prior would only
        extrude the last slice's outline (see the module docstring)."""
        return self._weights(points_lps)[0]

    def node_terms(self, points_lps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(N,) float32 log-odds and residual weight ``w`` of the prediction ``sigmoid(logit + w f)``.
        The log-odds is :meth:`logit` times a factor: on the training slabs ``slab_scale``; between
        the planes of a stack, beyond the slabs, ``1 - w (1 - slab_scale)`` (all of it where the
        residual has decayed); with ``network_beyond_ends``, beyond a stack's end planes,
        ``slab_scale`` fading to 0 like ``w`` would (the network alone rules there, as without a prior)."""
        weight, scale = self._weights(points_lps)
        return (self.logit(points_lps) * scale).astype(np.float32), weight

    def reaching(self, rows_lps: np.ndarray) -> "ShapePrior":
        """This prior with ``residual_full_mm`` = the farthest of ``rows_lps`` (the training rows)
        from its nearest covering plane: every row keeps weight 1, so training is unchanged."""
        distance = self.plane_distance(rows_lps)
        distance = distance[np.isfinite(distance)]
        return replace(self, residual_full_mm=float(distance.max()) if distance.size else math.inf)

    def _signed_distance(self, points: np.ndarray) -> np.ndarray:
        offered = np.zeros((len(self.maps), len(points)))
        along = self._along(points, offered)  # signed distance to the plane, NaN: not covered
        weight_sum = np.zeros(len(points))
        total = np.zeros(len(points))
        columns = np.arange(len(points))
        for members, signs in group_stacks(self.geometry[:, 8:11]):
            s = along[members] * signs[:, None]
            stack_weight, product = np.zeros(len(points)), np.ones(len(points))
            for side in (s >= 0, s < 0):  # the nearest covering plane below, and above, the point
                gap = np.where(side, np.abs(s), np.inf)
                nearest = np.argmin(gap, axis=0)
                distance = gap[nearest, columns]  # inf where no plane on this side
                found = np.isfinite(distance)
                weight = 1.0 / np.maximum(distance[found], ON_PLANE_MM)
                total[found] += weight * offered[np.asarray(members)[nearest[found]], columns[found]]
                stack_weight[found] += weight
                product *= np.where(found, distance, 0.0)  # a b, 0 without a plane on both sides
            if np.isfinite(self.bulge_radius_mm):
                total -= stack_weight * product / (2.0 * self.bulge_radius_mm)
            weight_sum += stack_weight
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(weight_sum > 0, total / weight_sum, np.nan)

    def logit(self, points_lps: np.ndarray) -> np.ndarray:
        """(N,) float32 prior log-odds ``clip_logit * tanh(-d / (alpha_mm * clip_logit))``, 0 where no
        slice covers."""
        distance = self.signed_distance(points_lps)
        logit = self.clip_logit * np.tanh(-distance / (self.alpha_mm * self.clip_logit))
        return np.nan_to_num(logit, nan=0.0).astype(np.float32)

    # ------------------------------------------------------------------ storage

    def stored_version(self) -> int:
        """The version this prior is written as: :data:`PRIOR_VERSION` with a finite
        ``residual_bound``, else :data:`UNBOUNDED_VERSION` (the bound is then left out)."""
        return UNBOUNDED_VERSION if math.isinf(self.residual_bound) else PRIOR_VERSION

    def to_arrays(self) -> dict[str, np.ndarray]:
        """Plain numpy arrays (for the ``.npz``; :meth:`to_checkpoint` wraps the same)."""
        bound = {} if math.isinf(self.residual_bound) else {"residual_bound": np.float64(self.residual_bound)}
        return {"version": np.int64(self.stored_version()),
                "distance_mm": np.concatenate([m.reshape(-1) for m in self.maps]).astype(np.float32),
                "geometry": np.asarray(self.geometry, dtype=np.float64),
                "alpha_mm": np.float64(self.alpha_mm), "clip_logit": np.float64(self.clip_logit),
                "bulge_radius_mm": np.float64(self.bulge_radius_mm),
                "residual_full_mm": np.float64(self.residual_full_mm),
                "residual_decay_mm": np.float64(self.residual_decay_mm),
                "slab_scale": np.float64(self.slab_scale),
                "network_beyond_ends": np.int64(self.network_beyond_ends),
                "weigh_lone_planes": np.int64(self.weigh_lone_planes), **bound}

    @classmethod
    def from_arrays(cls, arrays: dict, where: str) -> "ShapePrior":
        """Rebuild from :meth:`to_arrays` output (numpy arrays or tensors); ``where`` names the
        file in the one-line error a damaged prior raises."""
        try:
            version = int(np.asarray(arrays["version"]))
            flat = np.asarray(arrays["distance_mm"], dtype=np.float32).reshape(-1)
            geometry = np.asarray(arrays["geometry"], dtype=np.float64).reshape(-1, GEOMETRY_COLUMNS)
            alpha, clip = float(np.asarray(arrays["alpha_mm"])), float(np.asarray(arrays["clip_logit"]))
            bulge = float(np.asarray(arrays["bulge_radius_mm"]))
            full, decay = ((float(np.asarray(arrays["residual_full_mm"])), float(np.asarray(arrays["residual_decay_mm"])))
                           if version >= 2 else (math.inf, RESIDUAL_DECAY_MM))
            slab, beyond_ends = ((float(np.asarray(arrays["slab_scale"])), int(np.asarray(arrays["network_beyond_ends"])))
                                 if version >= 3 else (1.0, 0))
            lone = int(np.asarray(arrays["weigh_lone_planes"])) if version >= 4 else 1
            bound = float(np.asarray(arrays["residual_bound"])) if version >= 5 else math.inf
            if version >= 5 and np.asarray(arrays["residual_bound"]).dtype == bool:
                raise ValueError  # True was read as a bound of 1 logit (round 21)
            shapes = geometry[:, 16:18].astype(np.int64)
            if version > PRIOR_VERSION or shapes.min(initial=1) < 1 or int(shapes.prod(axis=1).sum()) != flat.size \
                    or not (alpha > 0 and clip > 0 and bulge > 0 and full >= 0 and decay > 0) \
                    or not (0 <= slab <= 1 and beyond_ends in (0, 1) and lone in (0, 1) and bound > 0) \
                    or not np.isfinite(flat).all() or not np.isfinite(geometry).all():
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise CardioScarError(f"{where}: the shape prior is damaged or from a newer CardioScar; retrain the "
                                  f"model (or re-run `cardioscar prepare`)") from None
        ends = np.cumsum(shapes.prod(axis=1))
        maps = [flat[end - r * c:end].reshape(r, c) for (r, c), end in zip(shapes, ends)]
        return cls(maps, geometry, alpha, clip, bulge, full, decay, slab, bool(beyond_ends), bool(lone), bound)

    def to_checkpoint(self) -> dict:
        """The checkpoint entry: tensors and numbers only (loads with ``weights_only=True``)."""
        import torch  # here: prepare stores the prior in its .npz without torch

        arrays = self.to_arrays()
        bound = {} if math.isinf(self.residual_bound) else {"residual_bound": float(self.residual_bound)}
        return {"version": self.stored_version(), "distance_mm": torch.from_numpy(arrays["distance_mm"]),
                "geometry": torch.from_numpy(arrays["geometry"]), "alpha_mm": float(self.alpha_mm),
                "clip_logit": float(self.clip_logit), "bulge_radius_mm": float(self.bulge_radius_mm),
                "residual_full_mm": float(self.residual_full_mm), "residual_decay_mm": float(self.residual_decay_mm),
                "slab_scale": float(self.slab_scale), "network_beyond_ends": int(self.network_beyond_ends),
                "weigh_lone_planes": int(self.weigh_lone_planes), **bound}

    @classmethod
    def from_checkpoint(cls, checkpoint: dict) -> "ShapePrior | None":
        """The prior a checkpoint was trained with, or ``None`` (older files, or trained without)."""
        entry = checkpoint.get("shape_prior")
        if not entry:
            return None
        if not isinstance(entry, dict):
            raise CardioScarError("the checkpoint's shape_prior is not a dict: retrain the model")
        import torch  # here: prepare stores the prior in its .npz without torch

        return cls.from_arrays({key: (value.numpy() if isinstance(value, torch.Tensor) else value)
                                for key, value in entry.items()}, "the checkpoint")
