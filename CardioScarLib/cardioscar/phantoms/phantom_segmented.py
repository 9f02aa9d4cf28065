"""The segmented phantom family: what a user has when the scar was drawn inside a segmentation.

Why a second family: the demo phantom's pixels are partial-volume means of scar x myocardium
and its mesh is the very wall the image was made from, so the reconstruction is scored on data
that fit its own assumptions. This family is built the way common inputs are made, and differs
from the demo family in the three ways that matter:

* **Pixels: scar fraction within the myocardium.** Each pixel's footprint (square x slab) is
  sub-sampled; a pixel whose myocardial fraction is below ``myocardium_threshold`` (0.5) is
  *not myocardium* and holds 0, like a scar map drawn inside a myocardium segmentation. A
  myocardium pixel holds the mean scar fraction over the myocardial sub-samples only. The
  myocardium mask (1 where the pixel is myocardium) and an EMIDEC-style label map (0 background,
  1 blood pool, 2 healthy myocardium, 3 scar: myocardium pixels whose value is >= 0.5) come
  with it. With ``noise_std`` the myocardium pixels' values get Gaussian noise (clipped to
  [0, 1]) and the label map follows the noisy values.
* **The mesh is not the image's wall.** The image's myocardium is the region between two
  nested half ellipsoids (:class:`cardioscar.phantoms.phantom.LVGeometry`). The mesh is the same
  (t, u, theta) lattice pushed along the ray from the LV centre by a smooth random displacement
  (different at the endocardium and the epicardium, blended linearly through the wall), of at
  most ``wall_offset_mm`` (default: one pixel). Its boundary nodes therefore lie up to one
  pixel inside or outside the image's segmentation, as a mesh built from other data does.
  Hexahedral (``mesh_type="hex"``: hexahedra, wedges in the ring around the apex) or
  tetrahedral (``"tet"``: six tets per lattice cube).
* **Scar: one or two infarcts of different intensity.** Each infarct is a patch grown from the
  endocardium (sub-endocardial to transmural) with a soft logistic border. The first reaches a
  scar fraction of 1 and is patchy (multiplied by ``1 - patchiness * n(x)``, ``n`` a smooth
  random texture in [0, 1] with 8-14 mm wavelengths); the second, when drawn, is homogeneous
  and fainter, its peak fraction drawn from ``faint_peak_range`` (within 0.5-0.7). Or, with
  ``corridor`` (:class:`CorridorSpec`), no infarct but a dense core crossed by a border-zone
  corridor: a truth that holds a conducting channel.

The truth is a continuous scar fraction ``f(x)`` defined everywhere (wall coordinates of the
image's geometry, transmural depth clamped to the wall, so a mesh node just outside the image's
wall takes the value of the wall next to it). On the mesh nodes the phantom keeps ``f`` as
``truth_fraction`` (mesh field ``scar_fraction_truth``) and the binary truth ``f >= 0.5`` as
``truth`` (mesh field ``scar_truth``, 0/1): the scar a reconstruction thresholded at 0.5 should
find. Dice, AUC and volume error use the binary truth; "the true field's group loss" uses ``f``.

Everything not given is drawn from the seed: LV size, pixel size (1.25-2 mm), slice spacing
(8-13 mm), slab thickness (6 mm to min(10 mm, spacing)), the oblique orientation (15-30 degrees),
the number of infarcts (two with probability 3/4), their territories, sizes and depths.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

from ..errors import CardioScarError
from .phantom import (TERRITORIES, Infarct, LVGeometry, Phantom, _add_point_array, _random_rotation,
                      _stack_geometry, _to_vtk_grid, footprint_layers, lattice_cubes, scar_from_wall,
                      tets_from_cubes)

logger = logging.getLogger(__name__)

#: Label values of the label map (EMIDEC convention without the no-reflow label 4).
BACKGROUND, BLOOD, MYOCARDIUM, SCAR = 0, 1, 2, 3


# --------------------------------------------------------------------------- the corridor layout
# A scar whose truth holds a conducting channel: a dense core crossed by a border-zone corridor.
#
# Why: the channel search (cardioscar.simulation.channels) was checked on tags painted by hand;
# whether a border-zone isthmus of a given width survives the reconstruction from 8-13 mm slices,
# and what spurious channels the reconstruction adds, needs a heart whose *true* scar holds one
# (Testing/benchmarks/channels_phantom.py). Measured on the image wall's mid-wall, in mm from the
# patch's centre (u, theta): along the meridian (apex to base) and along the circumference. The
# core is a transmural square patch of half-side ``core_half_mm`` at scar fraction 1; the corridor,
# ``width_mm`` wide, crosses it from edge to edge at scar fraction ``border_zone`` (0.65: border
# zone by the tag rule's defaults, 0.5 <= p < 0.8), either ``across`` the short-axis slices (apex
# to base, so every slice cuts it) or ``along`` them (circumferential, so it lies in one slab, or in
# a gap between slabs, as the stack falls). Every edge is a logistic of ``edge_mm``.

#: The corridor's directions relative to the short-axis slices.
ORIENTATIONS = ("across", "along")


@dataclass(frozen=True)
class CorridorSpec:
    """The corridor layout's parameters (see the comment above); mm on the mid-wall."""

    width_mm: float = 8.0
    orientation: str = "across"
    core_half_mm: float = 20.0
    border_zone: float = 0.65
    edge_mm: float = 0.75
    patchiness: float = 0.0  # the core's fraction 1 - patchiness x a smooth texture, as the patchy infarct's
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
        if not 0.0 <= self.patchiness < 0.5:
            raise CardioScarError(f"corridor patchiness={self.patchiness:g}: use 0 to 0.5 (the core stays scar)")
        if self.edge_mm <= 0.0 or not 0.2 < self.u < 1.4:
            raise CardioScarError(f"corridor edge_mm={self.edge_mm:g} / u={self.u:g}: need edge_mm > 0 and the patch "
                                  "away from the apex and the base (0.2 < u < 1.4)")


def draw_waves(rng: np.random.Generator, n_waves: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Wave vectors (per mm, 8-14 mm wavelengths, random directions) and phases of a texture."""
    directions = rng.normal(size=(n_waves, 3))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    wave_vectors = directions * (2 * np.pi / rng.uniform(8.0, 14.0, size=(n_waves, 1)))
    return wave_vectors, rng.uniform(0, 2 * np.pi, size=n_waves)


def smooth_texture(local: np.ndarray, wave_vectors: np.ndarray, phases: np.ndarray) -> np.ndarray:
    """Smooth random texture in [0, 1] (mean of cosines, rescaled and clipped)."""
    waves = np.cos(local @ wave_vectors.T + phases).mean(axis=1)
    return np.clip(0.5 + waves * math.sqrt(len(phases) / 2.0) * 0.5, 0.0, 1.0)


def _soft_inside(signed_mm: np.ndarray, edge_mm: float) -> np.ndarray:
    """1 well inside (negative signed distance), 0 well outside, the phantoms' logistic edge."""
    return 0.5 * (1.0 - np.tanh(signed_mm / (2.0 * edge_mm)))


@dataclass(frozen=True)
class CorridorScar:
    """The corridor layout's true scar fraction on an :class:`LVGeometry` (the segmented family's
    scar model: ``fraction`` of local points; no infarcts)."""

    geometry: LVGeometry
    spec: CorridorSpec
    wave_vectors: np.ndarray    # the core's texture (used when spec.patchiness > 0)
    phases: np.ndarray
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
        """True scar fraction at local points: the core patch (patchy with ``patchiness``), lowered to
        ``border_zone`` in the corridor."""
        if len(local) == 0:
            return np.zeros(0)
        along, across = self.mid_wall_mm(local)
        spec = self.spec
        core = _soft_inside(np.maximum(np.abs(along), np.abs(across)) - spec.core_half_mm, spec.edge_mm)
        corridor = _soft_inside(np.abs(across) - 0.5 * spec.width_mm, spec.edge_mm)
        dense = 1.0 - spec.patchiness * smooth_texture(local, self.wave_vectors, self.phases)
        return core * (dense - (dense - spec.border_zone) * corridor)

    def in_corridor(self, local: np.ndarray) -> np.ndarray:
        """Points inside the corridor's strip within the core patch (what a channel should hold)."""
        along, across = self.mid_wall_mm(local)
        return (np.abs(across) < 0.5 * self.spec.width_mm) & (np.abs(along) < self.spec.core_half_mm)

    def centre_local(self) -> np.ndarray:
        """The patch's centre on the mid-wall, local frame (the slices' distance to it)."""
        return self.geometry.wall_to_local(np.array([0.5]), np.array([self.spec.u]), np.array([self.spec.theta]))[0]


def corridor_scar(spec: CorridorSpec, geometry: LVGeometry, wall_points: np.ndarray,
                  rng: np.random.Generator) -> tuple[CorridorScar, dict]:
    """The layout on ``geometry`` (its core's texture drawn from ``rng``) and what the phantom's
    metadata records of it (the scar volume share of ``wall_points``, points drawn uniformly in the wall)."""
    scar = CorridorScar(geometry, spec, *draw_waves(rng))
    fraction = scar.fraction(wall_points)
    return scar, {"scar_fraction": float((fraction >= 0.5).mean()),
                  "corridor": {"width_mm": spec.width_mm, "orientation": spec.orientation,
                               "core_half_mm": spec.core_half_mm, "border_zone": spec.border_zone,
                               "patchiness": spec.patchiness,
                               "centre_local_z_mm": round(float(scar.centre_local()[2]), 2)}}


@dataclass
class SegmentedConfig:
    """Everything that defines a segmented-family phantom; ``None`` fields are drawn from the seed.

    :meth:`resolved` returns the config with every drawn value filled in (it is what the
    phantom's metadata records), so a case can be rebuilt exactly from its metadata.
    """

    seed: int = 0
    target_nodes: int = 40000
    mesh_type: str = "tet"                          # "tet" or "hex"
    pixel_mm: float | None = None                   # drawn in [1.25, 2.0]
    slice_gap_mm: float | None = None               # drawn in [8, 13]
    slab_mm: float | None = None                    # drawn in [6, min(10, slice_gap_mm)]
    n_infarcts: int | None = None                   # 1 or 2 (2 with probability 3/4)
    faint_peak_range: tuple[float, float] = (0.55, 0.7)
    patchiness: float = 0.35
    wall_offset_mm: float | None = None             # None: one pixel
    myocardium_threshold: float = 0.5
    border_mm: float = 1.5
    scar_fraction_range: tuple[float, float] = (0.05, 0.30)   # binary scar volume / myocardium
    oblique_deg: tuple[float, float] = (15.0, 30.0)
    fine_mm: float = 0.7
    fov_margin_mm: float = 10.0
    noise_std: float = 0.0
    offset_lps: tuple[float, float, float] = (12.0, -25.0, 40.0)
    family: str = "segmented"
    #: A core crossed by a border-zone corridor instead of the drawn infarcts (:class:`CorridorSpec`).
    corridor: CorridorSpec | None = None

    def validate(self) -> None:
        """Reject settings that cannot produce a meaningful phantom, with one-line reasons."""
        if not 1000 <= self.target_nodes <= 5_000_000:
            raise CardioScarError(f"phantom target_nodes={self.target_nodes}: use 1,000 to 5,000,000")
        if self.mesh_type not in ("tet", "hex"):
            raise CardioScarError(f"phantom mesh_type='{self.mesh_type}': use 'tet' or 'hex'")
        if self.n_infarcts not in (None, 1, 2):
            raise CardioScarError(f"phantom n_infarcts={self.n_infarcts}: use 1 or 2")
        lo, hi = self.faint_peak_range
        if not 0.5 < lo <= hi <= 0.7:
            raise CardioScarError(f"phantom faint_peak_range={self.faint_peak_range}: need 0.5 < low <= high <= 0.7")
        if not 0.0 <= self.patchiness < 0.5:
            raise CardioScarError(f"phantom patchiness={self.patchiness}: use 0 to 0.5 (the core stays scar)")
        if not 0.0 < self.myocardium_threshold <= 1.0:
            raise CardioScarError(f"phantom myocardium_threshold={self.myocardium_threshold}: use (0, 1]")
        for name in ("pixel_mm", "slice_gap_mm", "slab_mm", "border_mm", "fine_mm"):
            value = getattr(self, name)
            if value is not None and value <= 0:
                raise CardioScarError(f"phantom {name}={value}: must be positive")
        if self.wall_offset_mm is not None and self.wall_offset_mm < 0:
            raise CardioScarError(f"phantom wall_offset_mm={self.wall_offset_mm}: must be >= 0")
        if self.noise_std < 0:
            raise CardioScarError(f"phantom noise_std={self.noise_std}: must be >= 0")
        if self.corridor is not None:
            self.corridor.validate()

    def resolved(self) -> "SegmentedConfig":
        """A copy with the acquisition and infarct count drawn from the seed where not given."""
        rng = np.random.default_rng([self.seed, 101])
        pixel = float(rng.uniform(1.25, 2.0))
        gap = float(rng.uniform(8.0, 13.0))
        slab_draw = float(rng.uniform(0.0, 1.0))
        two = bool(rng.uniform() < 0.75)
        pixel = self.pixel_mm if self.pixel_mm is not None else pixel
        gap = self.slice_gap_mm if self.slice_gap_mm is not None else gap
        slab = self.slab_mm if self.slab_mm is not None else 6.0 + slab_draw * max(0.0, min(10.0, gap) - 6.0)
        return dataclasses.replace(
            self, pixel_mm=pixel, slice_gap_mm=gap, slab_mm=slab,
            n_infarcts=self.n_infarcts if self.n_infarcts is not None else (2 if two else 1),
            wall_offset_mm=self.wall_offset_mm if self.wall_offset_mm is not None else pixel)


@dataclass(frozen=True)
class ScarModel:
    """The true scar fraction field: infarct envelopes, their peaks and the patchy texture."""

    geometry: LVGeometry
    infarcts: list[Infarct]
    peaks: list[float]
    patchiness: float
    border_mm: float
    wave_vectors: np.ndarray    # (K, 3) per mm, for the texture of the first infarct
    phases: np.ndarray          # (K,)

    def texture(self, local: np.ndarray) -> np.ndarray:
        """Smooth random texture in [0, 1] of the first infarct (:func:`smooth_texture`)."""
        return smooth_texture(local, self.wave_vectors, self.phases)

    def envelopes(self, local: np.ndarray) -> np.ndarray:
        """(n_infarcts, N) soft indicator of each infarct (wall depth clamped to the wall).

        The meridional angle is ``atan2(r / a(t), -z / c(t))``: on the wall it is the wall
        coordinate ``u``, and off the wall (mesh nodes up to a pixel outside it) it follows the
        scaled ray, so points on the long axis stay at the apex (``arccos`` of a clipped ratio
        would send a cavity point near the apex to a theta-dependent place)."""
        t, _, theta = self.geometry.local_to_wall(local)
        a, c = self.geometry.axes(t)
        u = np.arctan2(np.hypot(local[:, 0], local[:, 1]) / a, -local[:, 2] / c)
        return np.stack([scar_from_wall(self.geometry, [inf], t, u, theta, self.border_mm) for inf in self.infarcts])

    def fraction(self, local: np.ndarray) -> np.ndarray:
        """True scar fraction in [0, 1] at local points: the max over infarcts of peak x envelope
        (x the texture for the first, patchy infarct)."""
        if len(local) == 0:
            return np.zeros(0)
        env = self.envelopes(local)
        patch = 1.0 - self.patchiness * self.texture(local)
        values = [self.peaks[0] * env[0] * patch] + [p * e for p, e in zip(self.peaks[1:], env[1:])]
        return np.max(values, axis=0)


def _draw_geometry(config: SegmentedConfig, rng: np.random.Generator) -> LVGeometry:
    a_endo = float(rng.uniform(22.0, 28.0))
    c_endo = float(rng.uniform(70.0, 85.0))
    wall = float(rng.uniform(8.0, 11.0))
    rotation = _random_rotation(rng, config.oblique_deg)
    return LVGeometry(a_endo=a_endo, c_endo=c_endo, a_epi=a_endo + wall, c_epi=c_endo + wall,
                      rotation=rotation, offset=np.asarray(config.offset_lps, dtype=float), mirrored=True)


def _wall_samples(geometry: LVGeometry, seed: int, count: int = 150_000) -> np.ndarray:
    """Points drawn uniformly in the image's wall (for volume fractions), from their own stream."""
    probe = np.random.default_rng([seed, 7]).uniform(
        [-geometry.a_epi, -geometry.a_epi, -geometry.c_epi], [geometry.a_epi, geometry.a_epi, 0.0], size=(count, 3))
    return probe[geometry.myocardium_local(probe)]


def _draw_scar(config: SegmentedConfig, geometry: LVGeometry, rng: np.random.Generator) -> tuple[ScarModel, dict]:
    """Draw infarcts until the binary scar (fraction >= 0.5) fills a fraction of the wall in
    ``scar_fraction_range`` and every infarct has some binary scar of its own."""
    wall_points = _wall_samples(geometry, config.seed)
    lo, hi = config.scar_fraction_range
    for _ in range(200):
        names = list(rng.choice(list(TERRITORIES), size=config.n_infarcts, replace=False))
        infarcts = []
        for k, name in enumerate(names):
            terr = TERRITORIES[name]
            infarcts.append(Infarct(
                territory=str(name), theta=float(np.mod(rng.uniform(*terr["theta"]), 2 * np.pi)),
                u=float(rng.uniform(*terr["u"])),
                radius_mm=float(rng.uniform(14.0, 28.0) if k == 0 else rng.uniform(10.0, 20.0)),
                transmurality=float(rng.uniform(0.3, 1.05))))
        peaks = [1.0] + [float(rng.uniform(*config.faint_peak_range)) for _ in infarcts[1:]]
        model = ScarModel(geometry, infarcts, peaks, config.patchiness, config.border_mm, *draw_waves(rng))
        fraction = model.fraction(wall_points)
        scar = fraction >= 0.5
        env = model.envelopes(wall_points)
        own = [(scar & (np.argmax(env, axis=0) == k)).mean() for k in range(len(infarcts))]
        if lo <= scar.mean() <= hi and min(own) >= 0.003:
            return model, {"scar_fraction": float(scar.mean()), "infarct_scar_fractions": [float(v) for v in own]}
    raise CardioScarError(f"phantom seed {config.seed}: no infarcts within scar_fraction_range="
                          f"{config.scar_fraction_range}; widen the range")


def _smooth_offset(rng: np.random.Generator, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
    """A smooth random function of (u, theta), single-valued at the apex, scaled so that its
    largest absolute value over the given points is exactly 1.

    Low-order modes ``cos(m theta + phi) sin(u)^m cos(n u + psi)``; the ``sin(u)^m`` factor
    makes every theta-dependent mode vanish at the apex.
    """
    modes = [(m, n) for m in range(0, 4) for n in range(0, 3)]
    weights = rng.uniform(-1.0, 1.0, size=len(modes))
    values = np.zeros_like(u)
    for w, (m, n) in zip(weights, modes):
        values += w * np.cos(m * theta + rng.uniform(0, 2 * np.pi)) * np.sin(u) ** m * np.cos(n * u + rng.uniform(0, np.pi))
    return values / np.abs(values).max()


def _build_mesh(config: SegmentedConfig, geometry: LVGeometry, rng: np.random.Generator) -> tuple[vtk.vtkUnstructuredGrid, np.ndarray, np.ndarray]:
    """The mesh (LPS), its local node coordinates and each node's displacement (mm) from the
    image's wall along its ray."""
    points, wall, corners = lattice_cubes(geometry, config.target_nodes)
    endo, epi = _smooth_offset(rng, wall[:, 1], wall[:, 2]), _smooth_offset(rng, wall[:, 1], wall[:, 2])
    displacement = config.wall_offset_mm * ((1.0 - wall[:, 0]) * endo + wall[:, 0] * epi)
    radius = np.linalg.norm(points, axis=1)
    points = points * (1.0 + displacement / radius)[:, None]
    if config.mesh_type == "tet":
        grid = _to_vtk_grid(geometry.to_lps(points), tets_from_cubes(points, corners))
    else:
        grid = _hex_grid(geometry.to_lps(points), points, corners)
    return grid, points, displacement


def _hex_grid(points_lps: np.ndarray, points: np.ndarray, corners: np.ndarray) -> vtk.vtkUnstructuredGrid:
    """Hexahedra for the lattice cubes, wedges for the cubes that collapse at the apex; both
    ordered as VTK expects (positive volume)."""
    apex = corners[:, 0] == corners[:, 4]
    hexes = corners[~apex][:, [0, 2, 6, 4, 1, 3, 7, 5]]
    p = points[hexes]
    flip = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 3] - p[:, 0]), p[:, 4] - p[:, 0]) < 0
    hexes[flip] = hexes[flip][:, [0, 3, 2, 1, 4, 7, 6, 5]]
    wedges = corners[apex][:, [0, 2, 6, 1, 3, 7]]
    q = points[wedges]
    # VTK's wedge: the base triangle (0, 1, 2) faces away from the top triangle (3, 4, 5).
    flip = np.einsum("ij,ij->i", np.cross(q[:, 1] - q[:, 0], q[:, 2] - q[:, 0]), q[:, 3] - q[:, 0]) > 0
    wedges[flip] = wedges[flip][:, [0, 2, 1, 3, 5, 4]]
    grid = vtk.vtkUnstructuredGrid()
    vtk_points = vtk.vtkPoints()
    vtk_points.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points_lps, dtype=np.float64), deep=True))
    grid.SetPoints(vtk_points)
    legacy = np.concatenate([np.hstack([np.full((len(hexes), 1), 8), hexes]).ravel(),
                             np.hstack([np.full((len(wedges), 1), 6), wedges]).ravel()]).astype(np.int64)
    cells = vtk.vtkCellArray()
    cells.ImportLegacyFormat(numpy_support.numpy_to_vtkIdTypeArray(legacy, deep=True))
    types = np.r_[np.full(len(hexes), vtk.VTK_HEXAHEDRON), np.full(len(wedges), vtk.VTK_WEDGE)].astype(np.uint8)
    grid.SetCells(numpy_support.numpy_to_vtk(types, deep=True, array_type=vtk.VTK_UNSIGNED_CHAR), cells)
    return grid


def _acquire(config: SegmentedConfig, geometry: LVGeometry, scar: ScarModel,
             rng: np.random.Generator) -> tuple[sitk.Image, sitk.Image, sitk.Image, list[float]]:
    """The short-axis stack: scar fraction within the myocardium, myocardium mask, label map."""
    corner, z_centres, n_xy, _ = _stack_geometry(config, geometry)
    ex, ey, ez = np.eye(3)
    fractions, masks, labels = [], [], []
    for z in z_centres:
        centre = np.array([corner[0], corner[1], z])
        scar_sum = np.zeros((n_xy, n_xy))
        myo = np.zeros((n_xy, n_xy))
        blood = np.zeros((n_xy, n_xy))
        count = 0
        for local, s_xy in footprint_layers(config.pixel_mm, config.slab_mm, config.fine_mm, centre,
                                            ex, ey, ez, n_xy, n_xy):
            inside = geometry.myocardium_local(local)
            values = np.zeros(len(local))
            values[inside] = scar.fraction(local[inside])
            r2 = local[:, 0] ** 2 + local[:, 1] ** 2
            cavity = (r2 / geometry.a_endo**2 + local[:, 2] ** 2 / geometry.c_endo**2 < 1.0) & (local[:, 2] <= 0.0)
            per_pixel = (n_xy, s_xy, n_xy, s_xy)
            scar_sum += values.reshape(per_pixel).sum(axis=(1, 3))
            myo += inside.reshape(per_pixel).sum(axis=(1, 3))
            blood += cavity.reshape(per_pixel).sum(axis=(1, 3))
            count += s_xy * s_xy
        mask = myo / count >= config.myocardium_threshold
        fraction = np.where(mask, scar_sum / np.maximum(myo, 1), 0.0)
        if config.noise_std > 0:
            noisy = np.clip(fraction + rng.normal(0.0, config.noise_std, fraction.shape), 0.0, 1.0)
            fraction = np.where(mask, noisy, 0.0)
        background = count - myo - blood
        label = np.where(blood > background, BLOOD, BACKGROUND)
        label = np.where(mask, np.where(fraction >= 0.5, SCAR, MYOCARDIUM), label)
        fractions.append(fraction)
        masks.append(mask)
        labels.append(label)
    images = []
    for volume, pixel_type in ((fractions, np.float32), (masks, np.uint8), (labels, np.uint8)):
        image = sitk.GetImageFromArray(np.stack(volume).astype(pixel_type))
        image.SetSpacing((config.pixel_mm, config.pixel_mm, config.slice_gap_mm))
        image.SetDirection(tuple(float(v) for v in geometry.rotation.ravel()))
        image.SetOrigin(tuple(float(v) for v in geometry.to_lps(corner[None, :])[0]))
        images.append(image)
    return images[0], images[1], images[2], [float(z) for z in z_centres]


def make_segmented_phantom(config: SegmentedConfig | None = None) -> Phantom:
    """Build a segmented-family phantom: mesh with truth, scar-fraction map, mask and label map."""
    config = (config or SegmentedConfig()).resolved()
    config.validate()
    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    geometry = _draw_geometry(config, rng)
    scar, scar_info = (corridor_scar(config.corridor, geometry, _wall_samples(geometry, config.seed), rng)
                       if config.corridor is not None else _draw_scar(config, geometry, rng))
    mesh, points_local, displacement = _build_mesh(config, geometry, rng)
    fraction = scar.fraction(points_local)
    truth = (fraction >= 0.5).astype(np.float64)
    _add_point_array(mesh, "scar_truth", truth)
    _add_point_array(mesh, "scar_fraction_truth", fraction)
    surface_filter = vtk.vtkDataSetSurfaceFilter()
    surface_filter.SetInputData(mesh)
    surface_filter.Update()
    surface = vtk.vtkPolyData()
    surface.DeepCopy(surface_filter.GetOutput())

    image, mask, labels, z_centres = _acquire(config, geometry, scar, np.random.default_rng([config.seed, 11]))
    phantom = Phantom(config=config, geometry=geometry, infarcts=scar.infarcts, mesh=mesh, surface=surface,
                      truth=truth, image=image, long_axis_image=None,
                      slice_half_thickness_mm=config.slab_mm / 2.0, truth_fraction=fraction, scar_field=scar.fraction,
                      myocardium_image=mask, label_image=labels)
    phantom.metadata = {
        "family": "segmented",
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "coordinate_space": "LPS",
        "n_nodes": int(mesh.GetNumberOfPoints()),
        "n_cells": int(mesh.GetNumberOfCells()),
        "truth": "scar_truth = scar_fraction_truth >= 0.5 (0/1); scar_fraction_truth continuous",
        "pixel_values": f"scar fraction within the myocardium; 0 where the pixel's myocardial fraction "
                        f"< {config.myocardium_threshold}",
        "labels": {"background": BACKGROUND, "blood": BLOOD, "myocardium": MYOCARDIUM, "scar": SCAR},
        **scar_info,
        "scar_fraction_nodes": float(truth.mean()),
        "infarcts": [asdict(i) | {"peak_fraction": p} for i, p in zip(scar.infarcts, scar.peaks)],
        "mesh_wall_offset_max_mm": float(np.abs(displacement).max()),
        "lv": {"a_endo": geometry.a_endo, "c_endo": geometry.c_endo, "a_epi": geometry.a_epi,
               "c_epi": geometry.c_epi, "rotation": geometry.rotation.tolist(), "offset_lps": geometry.offset.tolist()},
        "image_size": list(image.GetSize()),
        "n_slices": len(z_centres),
        "slice_positions_local_z_mm": z_centres,
        "slab_mm": config.slab_mm,
        "slice_half_thickness_mm": phantom.slice_half_thickness_mm,
        "generation_seconds": time.perf_counter() - start,
    }
    logger.info("segmented phantom: %d nodes (%s), scar %.1f%%, %d infarct(s), %d slices %.1f mm apart, %.2f mm "
                "pixels, in %.1f s", mesh.GetNumberOfPoints(), config.mesh_type, 100 * scar_info["scar_fraction"],
                len(scar.infarcts), len(z_centres), config.slice_gap_mm, config.pixel_mm,
                phantom.metadata["generation_seconds"])
    return phantom
