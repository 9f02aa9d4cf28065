"""A scar layout whose truth holds a conducting channel: a dense core crossed by a border-zone corridor.

Why: the channel search (:mod:`cardioscar.simulation.channels`) was checked on tags painted by
hand; whether a border-zone isthmus of a given width survives the reconstruction from 8-13 mm
slices, and what spurious channels the reconstruction adds, needs a heart whose *true* scar holds
one. ``SegmentedConfig(corridor=CorridorSpec(...))`` gives the segmented family this scar instead
of its drawn infarcts (``Testing/benchmarks/channels_phantom.py``).

The layout, in the image's wall (:class:`cardioscar.phantoms.phantom.LVGeometry`), measured on
the mid-wall in mm from the patch's centre (``u``, ``theta``): along the meridian (apex to base)
and along the circumference. The core is a transmural square patch of half-side ``core_half_mm``
at scar fraction 1; the corridor, ``width_mm`` wide, crosses it from edge to edge at scar fraction
``border_zone`` (0.65: border zone by the tag rule's defaults, 0.5 <= p < 0.8), either
``across`` the short-axis slices (apex to base, so every slice cuts it) or ``along`` them
(circumferential, so it lies in one slab, or in a gap between slabs, as the stack falls). Every
edge is a logistic of ``edge_mm``, as the phantoms' infarcts are.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from ..errors import CardioScarError
from .phantom import LVGeometry

#: The corridor's directions relative to the short-axis slices.
ORIENTATIONS = ("across", "along")


@dataclass(frozen=True)
class CorridorSpec:
    """The corridor case's parameters (see the module docstring); mm on the mid-wall."""

    width_mm: float = 8.0
    orientation: str = "across"
    core_half_mm: float = 20.0
    border_zone: float = 0.65
    edge_mm: float = 0.75
    u: float = 1.1          # meridional angle of the patch's centre (0 apex, pi/2 base): mid-ventricle
    theta: float = 4.4      # circumferential angle (3 pi / 2 lateral)

    def validate(self) -> None:
        """One-line refusals of a corridor that cannot cross its core as border zone."""
        if self.orientation not in ORIENTATIONS:
            raise CardioScarError(f"corridor orientation='{self.orientation}': use one of {', '.join(ORIENTATIONS)}")
        if not 0.0 < self.width_mm < 2.0 * self.core_half_mm:
            raise CardioScarError(f"corridor width_mm={self.width_mm:g}: use a positive width below the core's side "
                                  f"({2.0 * self.core_half_mm:g} mm)")
        if not 0.0 < self.border_zone < 1.0:
            raise CardioScarError(f"corridor border_zone={self.border_zone:g}: use a scar fraction in (0, 1)")
        if self.edge_mm <= 0.0 or not 0.2 < self.u < 1.4:
            raise CardioScarError(f"corridor edge_mm={self.edge_mm:g} / u={self.u:g}: need edge_mm > 0 and the patch "
                                  "away from the apex and the base (0.2 < u < 1.4)")


def _soft_inside(signed_mm: np.ndarray, edge_mm: float) -> np.ndarray:
    """1 well inside (negative signed distance), 0 well outside, the phantoms' logistic edge."""
    return 0.5 * (1.0 - np.tanh(signed_mm / (2.0 * edge_mm)))


@dataclass(frozen=True)
class CorridorScar:
    """The corridor layout's true scar fraction on an :class:`LVGeometry` (the segmented family's
    scar model: ``fraction`` of local points; no infarcts)."""

    geometry: LVGeometry
    spec: CorridorSpec
    infarcts: list = field(default_factory=list)
    peaks: list = field(default_factory=list)

    def mid_wall_mm(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(along, across) the corridor in mm from the patch's centre, on the mid-wall."""
        t, _, theta = self.geometry.local_to_wall(local)
        a, c = self.geometry.axes(t)
        u = np.arctan2(np.hypot(local[:, 0], local[:, 1]) / a, -local[:, 2] / c)  # as ScarModel.envelopes
        a_mid, c_mid = (float(v) for v in self.geometry.axes(np.array(0.5)))
        fine = np.linspace(0.0, math.pi / 2, 4000)
        arc = np.concatenate([[0.0], np.cumsum(np.hypot(a_mid * np.diff(np.sin(fine)), c_mid * np.diff(np.cos(fine))))])
        meridian = np.interp(u, fine, arc) - float(np.interp(self.spec.u, fine, arc))
        circumference = (np.mod(theta - self.spec.theta + math.pi, 2 * math.pi) - math.pi) * a_mid * np.sin(u)
        return (meridian, circumference) if self.spec.orientation == "across" else (circumference, meridian)

    def fraction(self, local: np.ndarray) -> np.ndarray:
        """True scar fraction at local points: the core patch, lowered to ``border_zone`` in the corridor."""
        if len(local) == 0:
            return np.zeros(0)
        along, across = self.mid_wall_mm(local)
        spec = self.spec
        core = _soft_inside(np.maximum(np.abs(along), np.abs(across)) - spec.core_half_mm, spec.edge_mm)
        corridor = _soft_inside(np.abs(across) - 0.5 * spec.width_mm, spec.edge_mm)
        return core * (1.0 - (1.0 - spec.border_zone) * corridor)

    def in_corridor(self, local: np.ndarray) -> np.ndarray:
        """Points inside the corridor's strip within the core patch (what a channel should hold)."""
        along, across = self.mid_wall_mm(local)
        return (np.abs(across) < 0.5 * self.spec.width_mm) & (np.abs(along) < self.spec.core_half_mm)

    def centre_local(self) -> np.ndarray:
        """The patch's centre on the mid-wall, local frame (the slices' distance to it)."""
        return self.geometry.wall_to_local(np.array([0.5]), np.array([self.spec.u]), np.array([self.spec.theta]))[0]


def corridor_scar(spec: CorridorSpec, geometry: LVGeometry, wall_points: np.ndarray) -> tuple[CorridorScar, dict]:
    """The layout on ``geometry`` and what the phantom's metadata records of it (the scar volume
    share of ``wall_points``, points drawn uniformly in the wall)."""
    scar = CorridorScar(geometry, spec)
    fraction = scar.fraction(wall_points)
    return scar, {"scar_fraction": float((fraction >= 0.5).mean()),
                  "corridor": {"width_mm": spec.width_mm, "orientation": spec.orientation,
                               "core_half_mm": spec.core_half_mm, "border_zone": spec.border_zone,
                               "centre_local_z_mm": round(float(scar.centre_local()[2]), 2)}}
