"""Left-ventricle phantom with a known 3D scar and a simulated LGE acquisition.

Why a phantom: real LGE data never comes with the true 3D scar, so the only way to *measure*
a reconstruction (Dice, volume error, calibration of the uncertainty) is to invent a heart
whose scar we know everywhere, acquire it the way a scanner would, and compare.

Geometry (all in millimetres). In the LV's own frame the long axis is ``z``: the apex points to
``-z`` and the base plane is ``z = 0``. The wall is the region between two nested half
ellipsoids; a wall point is described by *wall coordinates*

* ``t`` in [0, 1]: transmural depth, 0 on the endocardium, 1 on the epicardium;
* ``u`` in [0, pi/2]: meridional angle, 0 at the apex, pi/2 on the base plane;
* ``theta``: circumferential angle (0 anterior, pi/2 septal, pi inferior, 3pi/2 lateral),

with ``x = a(t) sin u cos theta``, ``y = -a(t) sin u sin theta``, ``z = -c(t) cos u`` and semi
axes ``a(t), c(t)`` interpolated linearly between the endocardial and epicardial ellipsoids.
``theta`` grows clockwise seen from the base (from ``+z``), as the AHA numbers run from the
anterior wall over the septum in a real heart (:data:`cardioscar.aha.segments.ANATOMICAL_SENSE`):
any proper rotation into LPS then gives an anatomically handed heart, whose RV insertions given
anterior first are not warned as mirrored. (Until 2026-12-06 ``y`` had the other sign, a mirrored
heart; the segmented family keeps that layout, ``LVGeometry.mirrored``, so its recorded figures stand.)
Because both semi axes grow with ``t`` the ellipsoids are nested, so the map is one-to-one and
can be inverted exactly (a monotone 1D root per point). The mesh, the ground truth on its nodes
and the rasterised acquisition all use these same formulas, so the truth and the image agree
exactly and rasterisation needs no point-in-mesh search.

The scene is placed in LPS by a rotation (the image direction matrix: the short-axis stack is
perpendicular to the LV axis) and a translation.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util import numpy_support

from ..io.atomic import atomic_write
from ..io.checks import check_seed
from ..errors import CardioScarError
from ..io.meshio import Mesh, write_mesh

logger = logging.getLogger(__name__)

#: Centre angles (radians) and meridional ranges of the three coronary territories.
#: theta: 0 anterior, pi/2 septal, pi inferior, 3pi/2 lateral; u: 0 apex, pi/2 base.
TERRITORIES: dict[str, dict[str, tuple[float, float]]] = {
    "LAD": {"theta": (-0.35, 1.4), "u": (0.35, 1.0)},   # anterior / anteroseptal, apical half
    "RCA": {"theta": (2.6, 3.7), "u": (0.6, 1.35)},     # inferior
    "LCx": {"theta": (4.2, 5.2), "u": (0.6, 1.35)},     # lateral
}


@dataclass
class PhantomConfig:
    """Everything that defines a phantom; the same config and seed give the same phantom.

    The defaults give a ~40k-node mesh, so the full demo (prepare, train, apply) stays short
    on a 2-core CPU, and a clinical-looking short-axis stack: 1.5 mm pixels, 8 mm slabs every
    10 mm, obliquely oriented.
    """

    target_nodes: int = 40000
    seed: int = 0
    n_infarcts: int = 1
    territories: tuple[str, ...] = ("LAD", "RCA", "LCx")
    scar_fraction_range: tuple[float, float] = (0.05, 0.30)
    border_mm: float = 1.0                 # width of the logistic scar border
    endo_radius_mm: float = 25.0           # cavity radius at the base (cavity diameter 50 mm)
    endo_length_mm: float = 80.0           # base plane to endocardial apex
    wall_mm: float = 10.0                  # wall thickness at the base and at the apex
    oblique: bool = True
    oblique_deg: tuple[float, float] = (15.0, 30.0)
    pixel_mm: float = 1.5
    slab_mm: float = 8.0
    slice_gap_mm: float = 10.0
    fine_mm: float = 1.0                   # sub-sampling step of the partial-volume integration
    fov_margin_mm: float = 10.0
    noise_std: float = 0.0
    # "volume": pixel = mean of scar x myocardium over the whole footprint (blood and background
    # count as 0, as in a scan); "myocardium": mean of the scar over the myocardium inside the
    # footprint only (what the group loss assumes; pixels without myocardium stay 0).
    partial_volume: str = "volume"
    long_axis: bool = False
    offset_lps: tuple[float, float, float] = (12.0, -25.0, 40.0)

    def validate(self) -> None:
        """Reject settings that cannot produce a meaningful phantom, with one-line reasons."""
        check_seed(self.seed, "phantom seed")
        if not 1000 <= self.target_nodes <= 5_000_000:
            raise CardioScarError(f"phantom target_nodes={self.target_nodes}: use 1,000 to 5,000,000")
        if self.n_infarcts < 1:
            raise CardioScarError(f"phantom n_infarcts={self.n_infarcts}: use at least 1")
        unknown = set(self.territories) - set(TERRITORIES)
        if unknown or not self.territories:
            raise CardioScarError(f"phantom territories {sorted(unknown)}: choose from {sorted(TERRITORIES)}")
        lo, hi = self.scar_fraction_range
        if not 0.0 < lo < hi < 1.0:
            raise CardioScarError(f"phantom scar_fraction_range={self.scar_fraction_range}: need 0 < low < high < 1")
        for name in ("pixel_mm", "slab_mm", "slice_gap_mm", "fine_mm", "wall_mm", "border_mm"):
            if getattr(self, name) <= 0:
                raise CardioScarError(f"phantom {name}={getattr(self, name)}: must be positive")
        if self.partial_volume not in ("volume", "myocardium"):
            raise CardioScarError(f"phantom partial_volume='{self.partial_volume}': use 'volume' or 'myocardium'")
        if self.noise_std < 0:
            raise CardioScarError(f"phantom noise_std={self.noise_std}: must be >= 0")


@dataclass(frozen=True)
class LVGeometry:
    """The wall shape and its placement in LPS (``lps = rotation @ local + offset``)."""

    a_endo: float
    c_endo: float
    a_epi: float
    c_epi: float
    rotation: np.ndarray
    offset: np.ndarray
    mirrored: bool = False  # theta counter-clockwise seen from the base: a mirrored heart (see the docstring)

    @property
    def _y_sign(self) -> float:
        return 1.0 if self.mirrored else -1.0

    def axes(self, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Semi axes (radial, long) of the ellipsoid at transmural depth ``t``."""
        return self.a_endo + t * (self.a_epi - self.a_endo), self.c_endo + t * (self.c_epi - self.c_endo)

    def wall_to_local(self, t: np.ndarray, u: np.ndarray, theta: np.ndarray) -> np.ndarray:
        """(N,3) local coordinates of wall coordinates."""
        a, c = self.axes(t)
        return np.stack([a * np.sin(u) * np.cos(theta), self._y_sign * a * np.sin(u) * np.sin(theta), -c * np.cos(u)],
                        axis=-1)

    def to_local(self, points_lps: np.ndarray) -> np.ndarray:
        return (np.asarray(points_lps, dtype=float) - self.offset) @ self.rotation

    def to_lps(self, points_local: np.ndarray) -> np.ndarray:
        return np.asarray(points_local, dtype=float) @ self.rotation.T + self.offset

    def myocardium_local(self, local: np.ndarray) -> np.ndarray:
        """Boolean: inside the wall (between the ellipsoids, on the apex side of the base plane)."""
        r2 = local[:, 0] ** 2 + local[:, 1] ** 2
        z2 = local[:, 2] ** 2
        outside_endo = r2 / self.a_endo**2 + z2 / self.c_endo**2 >= 1.0
        inside_epi = r2 / self.a_epi**2 + z2 / self.c_epi**2 <= 1.0
        return outside_endo & inside_epi & (local[:, 2] <= 0.0)

    def local_to_wall(self, local: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Invert :meth:`wall_to_local` for points in the wall (t clipped to [0, 1] outside).

        ``r^2/a(t)^2 + z^2/c(t)^2`` decreases monotonically in ``t``, so a vectorised bisection
        finds the unique root to float precision.
        """
        r2 = local[:, 0] ** 2 + local[:, 1] ** 2
        z2 = local[:, 2] ** 2
        lo = np.zeros(len(local))
        hi = np.ones(len(local))
        for _ in range(48):
            mid = 0.5 * (lo + hi)
            a, c = self.axes(mid)
            above = r2 / a**2 + z2 / c**2 > 1.0
            lo = np.where(above, mid, lo)
            hi = np.where(above, hi, mid)
        t = 0.5 * (lo + hi)
        _, c = self.axes(t)
        u = np.arccos(np.clip(-local[:, 2] / c, -1.0, 1.0))
        theta = np.mod(np.arctan2(self._y_sign * local[:, 1], local[:, 0]), 2.0 * np.pi)
        return t, u, theta


@dataclass(frozen=True)
class Infarct:
    """One infarct: a patch on the mid-wall grown from the endocardium to depth ``transmurality``."""

    territory: str
    theta: float
    u: float
    radius_mm: float
    transmurality: float  # fraction of the wall, 0 = nothing, 1 = transmural


def scar_from_wall(geometry: LVGeometry, infarcts: list[Infarct], t: np.ndarray, u: np.ndarray,
                   theta: np.ndarray, border_mm: float) -> np.ndarray:
    """Scar probability in [0, 1] at wall coordinates: logistic of a signed distance in mm.

    Lateral distance is measured between mid-wall points (so the patch has the same footprint at
    every depth), transmural distance is depth beyond the infarct's transmurality; the signed
    distance of the patch is the larger of the two (negative inside). Several infarcts combine by
    the maximum.
    """
    mid = geometry.wall_to_local(np.full_like(t, 0.5), u, theta)
    wall_mm = 0.5 * ((geometry.a_epi - geometry.a_endo) + (geometry.c_epi - geometry.c_endo))
    scar = np.zeros(len(t))
    for inf in infarcts:
        centre = geometry.wall_to_local(np.array([0.5]), np.array([inf.u]), np.array([inf.theta]))[0]
        lateral = np.linalg.norm(mid - centre, axis=1) - inf.radius_mm
        transmural = (t - inf.transmurality) * wall_mm
        signed = np.maximum(lateral, transmural)
        scar = np.maximum(scar, 0.5 * (1.0 - np.tanh(signed / (2.0 * border_mm))))
    return scar


@dataclass
class Phantom:
    """A phantom: mesh with truth, its surface, the simulated acquisition and how it was made."""

    config: PhantomConfig
    geometry: LVGeometry
    infarcts: list[Infarct]
    mesh: vtk.vtkUnstructuredGrid        # point arrays "scar_truth" and "transmural_depth"
    surface: vtk.vtkPolyData
    truth: np.ndarray                    # (N,) scar in [0, 1] on the mesh nodes
    image: sitk.Image                    # short-axis stack, spacing (px, px, slice_gap)
    long_axis_image: sitk.Image | None
    slice_half_thickness_mm: float       # pass as --slice-thickness-padding
    metadata: dict = field(default_factory=dict)
    # Segmented family only (cardioscar.phantoms.phantom_segmented): the continuous true scar fraction on
    # the nodes (``truth`` is then 0/1), the myocardium mask, the EMIDEC-style label map, and the
    # true fraction as a function of LV-frame points (``geometry.to_local``), to score anything else.
    truth_fraction: np.ndarray | None = None
    scar_field: Callable[[np.ndarray], np.ndarray] | None = None
    myocardium_image: sitk.Image | None = None
    label_image: sitk.Image | None = None

    @property
    def points_lps(self) -> np.ndarray:
        return numpy_support.vtk_to_numpy(self.mesh.GetPoints().GetData()).astype(float)

    def myocardial_scar_at(self, points_lps: np.ndarray) -> np.ndarray:
        """Scar x myocardium indicator at arbitrary LPS points (what the scanner integrates)."""
        local = self.geometry.to_local(points_lps)
        inside = self.geometry.myocardium_local(local)
        values = np.zeros(len(local))
        if inside.any():
            t, u, theta = self.geometry.local_to_wall(local[inside])
            values[inside] = scar_from_wall(self.geometry, self.infarcts, t, u, theta, self.config.border_mm)
        return values


def _random_rotation(rng: np.random.Generator, deg_range: tuple[float, float]) -> np.ndarray:
    """Rotation by a random angle in ``deg_range`` about a random axis (Rodrigues)."""
    axis = rng.normal(size=3)
    axis /= np.linalg.norm(axis)
    angle = math.radians(rng.uniform(*deg_range))
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * (k @ k)


def _lattice_shape(geometry: LVGeometry, target_nodes: int) -> tuple[int, int, int]:
    """(n_t, n_u, n_theta) whose product is close to ``target_nodes`` with near-isotropic cells."""
    wall = geometry.a_epi - geometry.a_endo
    a_mid, c_mid = geometry.axes(np.array(0.5))
    circumference = 2.0 * math.pi * float(a_mid)
    meridian = _meridian_length(float(a_mid), float(c_mid))

    def count(h: float) -> float:
        return (wall / h + 1) * (meridian / h + 1) * (circumference / h)

    lo, hi = 0.05, 50.0
    for _ in range(60):
        h = math.sqrt(lo * hi)
        lo, hi = (h, hi) if count(h) > target_nodes else (lo, h)
    n_t = max(2, round(wall / math.sqrt(lo * hi)) + 1)
    # n_t is coarse (a few layers); choose the in-wall spacing so the total still hits the target.
    h_wall = math.sqrt(meridian * circumference * n_t / target_nodes)
    return n_t, max(3, round(meridian / h_wall) + 1), max(8, round(circumference / h_wall))


def _meridian_length(a: float, c: float, n: int = 2000) -> float:
    u = np.linspace(0, np.pi / 2, n)
    pts = np.stack([a * np.sin(u), -c * np.cos(u)], axis=1)
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


def _equal_arc_u(a: float, c: float, n_u: int) -> np.ndarray:
    """Meridional angles spaced at equal arc length on the mid-wall (uniform node spacing)."""
    fine = np.linspace(0, np.pi / 2, 4000)
    pts = np.stack([a * np.sin(fine), -c * np.cos(fine)], axis=1)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
    return np.interp(np.linspace(0, arc[-1], n_u), arc, fine)


# Freudenthal split of a unit cube into 6 tets along the (0,0,0)-(1,1,1) diagonal. Corners are
# numbered bit-wise: corner = dt + 2*du + 4*dtheta. Translation invariant, hence conforming.
_CUBE_TETS = np.array([[0, 1, 3, 7], [0, 1, 5, 7], [0, 2, 3, 7], [0, 2, 6, 7], [0, 4, 5, 7], [0, 4, 6, 7]])


def lattice_cubes(geometry: LVGeometry, target_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Nodes of the (t, u, theta) wall lattice and its cubes: (points_local, wall coords (N,3) of
    t,u,theta, corners (n_cubes, 8)). Corners are numbered bit-wise, corner = dt + 2*du + 4*dtheta;
    all theta of the apex ring (u = 0) share one node, so the cubes touching the apex collapse."""
    n_t, n_u, n_th = _lattice_shape(geometry, target_nodes)
    a_mid, c_mid = geometry.axes(np.array(0.5))
    t_vals = np.linspace(0.0, 1.0, n_t)
    u_vals = _equal_arc_u(float(a_mid), float(c_mid), n_u)
    th_vals = np.arange(n_th) * (2.0 * np.pi / n_th)

    ids = np.empty((n_t, n_u, n_th), dtype=np.int64)
    apex = np.arange(n_t)
    ids[:, 0, :] = apex[:, None]
    ids[:, 1:, :] = n_t + np.arange(n_t * (n_u - 1) * n_th).reshape(n_t, n_u - 1, n_th)
    tt, uu, hh = np.meshgrid(t_vals, u_vals[1:], th_vals, indexing="ij")
    wall = np.concatenate([
        np.stack([t_vals, np.zeros(n_t), np.zeros(n_t)], axis=1),
        np.stack([tt.ravel(), uu.ravel(), hh.ravel()], axis=1),
    ])
    points = geometry.wall_to_local(wall[:, 0], wall[:, 1], wall[:, 2])

    it, iu, ih = np.meshgrid(np.arange(n_t - 1), np.arange(n_u - 1), np.arange(n_th), indexing="ij")
    it, iu, ih = it.ravel(), iu.ravel(), ih.ravel()
    corners = np.stack([ids[it + (c & 1), iu + ((c >> 1) & 1), (ih + (c >> 2)) % n_th] for c in range(8)], axis=1)
    return points, wall, corners


def tets_from_cubes(points: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Positively oriented tets of the lattice cubes (Freudenthal split, flat apex tets dropped)."""
    tets = corners[:, _CUBE_TETS].reshape(-1, 4)
    # Cubes touching the apex collapse; drop the tets that became flat (a repeated node).
    srt = np.sort(tets, axis=1)
    tets = tets[(np.diff(srt, axis=1) > 0).all(axis=1)]
    # Orient every tet positively so volume filters see consistent signs.
    p = points[tets]
    vol = np.einsum("ij,ij->i", np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), p[:, 3] - p[:, 0])
    neg = vol < 0
    tets[neg, 0], tets[neg, 1] = tets[neg, 1], tets[neg, 0].copy()
    return tets


def _build_mesh(geometry: LVGeometry, target_nodes: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tetrahedral wall mesh: (points_local, tets, wall coords (N,3) of t,u,theta)."""
    points, wall, corners = lattice_cubes(geometry, target_nodes)
    return points, tets_from_cubes(points, corners), wall


def _to_vtk_grid(points_lps: np.ndarray, tets: np.ndarray) -> vtk.vtkUnstructuredGrid:
    grid = vtk.vtkUnstructuredGrid()
    pts = vtk.vtkPoints()
    pts.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(points_lps, dtype=np.float64), deep=True))
    grid.SetPoints(pts)
    conn = np.hstack([np.full((len(tets), 1), 4, dtype=np.int64), tets.astype(np.int64)]).ravel()
    cells = vtk.vtkCellArray()
    cells.ImportLegacyFormat(numpy_support.numpy_to_vtkIdTypeArray(conn, deep=True))
    grid.SetCells(vtk.VTK_TETRA, cells)
    return grid


def _add_point_array(dataset: vtk.vtkDataSet, name: str, values: np.ndarray) -> None:
    arr = numpy_support.numpy_to_vtk(np.ascontiguousarray(values, dtype=np.float64), deep=True)
    arr.SetName(name)
    dataset.GetPointData().AddArray(arr)


def _draw_infarcts(config: PhantomConfig, geometry: LVGeometry, rng: np.random.Generator) -> tuple[list[Infarct], float]:
    """Draw infarcts until the scar fills a fraction of the myocardium inside the allowed range.

    The fraction is a Monte-Carlo volume integral over points drawn uniformly in the wall's
    bounding box (its own seeded stream), so it measures volume, not node counts.
    """
    probe_rng = np.random.default_rng([config.seed, 7])
    box = probe_rng.uniform([-geometry.a_epi, -geometry.a_epi, -geometry.c_epi],
                            [geometry.a_epi, geometry.a_epi, 0.0], size=(200_000, 3))
    box = box[geometry.myocardium_local(box)]
    t, u, theta = geometry.local_to_wall(box)
    lo, hi = config.scar_fraction_range
    for _ in range(200):
        infarcts = []
        for _k in range(config.n_infarcts):
            name = config.territories[int(rng.integers(len(config.territories)))]
            terr = TERRITORIES[name]
            infarcts.append(Infarct(
                territory=name,
                theta=float(np.mod(rng.uniform(*terr["theta"]), 2 * np.pi)),
                u=float(rng.uniform(*terr["u"])),
                radius_mm=float(rng.uniform(12.0, 32.0)),
                transmurality=float(rng.uniform(0.3, 1.05)),
            ))
        fraction = float(scar_from_wall(geometry, infarcts, t, u, theta, config.border_mm).mean())
        if lo <= fraction <= hi:
            return infarcts, fraction
    raise CardioScarError(f"phantom seed {config.seed}: no infarct within scar_fraction_range={config.scar_fraction_range}; widen the range")


def _stack_geometry(config: PhantomConfig, geometry: LVGeometry) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Local-frame centre of pixel (0,0,0), the in-plane size (n,n) and the number of slices.

    Slice centres fall every ``slice_gap`` mm from half a gap above the epicardial apex up to
    the base plane, so the stack covers the whole LV.
    """
    half_fov = geometry.a_epi + config.fov_margin_mm
    n_xy = int(math.ceil(2 * half_fov / config.pixel_mm))
    first_z = -geometry.c_epi + 0.5 * config.slice_gap_mm
    n_slices = int(math.floor((0.0 - first_z) / config.slice_gap_mm)) + 1
    corner = np.array([-(n_xy - 1) * config.pixel_mm / 2, -(n_xy - 1) * config.pixel_mm / 2, first_z])
    return corner, corner[2] + config.slice_gap_mm * np.arange(n_slices), n_xy, n_slices


def footprint_layers(pixel_mm: float, slab_mm: float, fine_mm: float, centre_local: np.ndarray,
                     axis_i: np.ndarray, axis_j: np.ndarray, normal: np.ndarray, n_i: int, n_j: int):
    """Sub-cell centres of every pixel's footprint (square x slab), one slab layer at a time.

    Each pixel is split into ``ceil(pixel/fine)`` sub-squares per side and the slab into
    ``ceil(slab/fine)`` layers (midpoint rule). Yields ``(local_points, s_xy)``: the layer's
    points, ordered so that ``values.reshape(n_j, s_xy, n_i, s_xy)`` groups them by pixel.
    """
    s_xy = max(1, math.ceil(pixel_mm / fine_mm))
    s_z = max(1, math.ceil(slab_mm / fine_mm))
    sub_xy = ((np.arange(s_xy) + 0.5) / s_xy - 0.5) * pixel_mm
    sub_z = ((np.arange(s_z) + 0.5) / s_z - 0.5) * slab_mm
    ci = np.arange(n_i)[:, None] * pixel_mm + sub_xy[None, :]   # (n_i, s_xy)
    cj = np.arange(n_j)[:, None] * pixel_mm + sub_xy[None, :]
    grid_j, grid_i = np.meshgrid(cj.ravel(), ci.ravel(), indexing="ij")
    in_plane = grid_i.ravel()[:, None] * axis_i + grid_j.ravel()[:, None] * axis_j
    for dz in sub_z:
        yield (centre_local + dz * normal)[None, :] + in_plane, s_xy


def _slab_means(phantom: Phantom, centre_local: np.ndarray, axis_i: np.ndarray, axis_j: np.ndarray,
                normal: np.ndarray, n_i: int, n_j: int) -> np.ndarray:
    """Partial-volume mean of scar x myocardium over each pixel's square x slab, (n_j, n_i).

    With ``partial_volume="myocardium"`` the mean is over the myocardial sub-cells only.
    """
    cfg = phantom.config
    scar_sum = np.zeros((n_j, n_i))
    myo_sum = np.zeros((n_j, n_i))
    n_samples = 0
    for local, s_xy in footprint_layers(cfg.pixel_mm, cfg.slab_mm, cfg.fine_mm, centre_local,
                                        axis_i, axis_j, normal, n_i, n_j):
        inside = phantom.geometry.myocardium_local(local)
        vals = np.zeros(len(local))
        if inside.any():
            t, u, th = phantom.geometry.local_to_wall(local[inside])
            vals[inside] = scar_from_wall(phantom.geometry, phantom.infarcts, t, u, th, cfg.border_mm)
        scar_sum += vals.reshape(n_j, s_xy, n_i, s_xy).sum(axis=(1, 3))
        myo_sum += inside.reshape(n_j, s_xy, n_i, s_xy).sum(axis=(1, 3))
        n_samples += s_xy * s_xy
    if cfg.partial_volume == "myocardium":
        return np.divide(scar_sum, myo_sum, out=np.zeros_like(scar_sum), where=myo_sum > 0)
    return scar_sum / n_samples


def _acquire_short_axis(phantom: Phantom) -> tuple[sitk.Image, list[float]]:
    cfg, geo = phantom.config, phantom.geometry
    corner, z_centres, n_xy, n_slices = _stack_geometry(cfg, geo)
    ex, ey, ez = np.eye(3)
    volume = np.stack([
        _slab_means(phantom, np.array([corner[0], corner[1], z]), ex, ey, ez, n_xy, n_xy) for z in z_centres
    ])
    image = sitk.GetImageFromArray(volume.astype(np.float32))
    image.SetSpacing((cfg.pixel_mm, cfg.pixel_mm, cfg.slice_gap_mm))
    image.SetDirection(tuple(float(v) for v in geo.rotation.ravel()))
    image.SetOrigin(tuple(float(v) for v in geo.to_lps(corner[None, :])[0]))
    return image, [float(z) for z in z_centres]


def _acquire_long_axis(phantom: Phantom, rng: np.random.Generator) -> sitk.Image:
    """One long-axis slice through the LV axis at a random angle, as a one-slice 3D image."""
    cfg, geo = phantom.config, phantom.geometry
    angle = rng.uniform(0, np.pi)
    axis_i = np.array([math.cos(angle), math.sin(angle), 0.0])   # in-plane, across the LV
    axis_j = np.array([0.0, 0.0, 1.0])                           # along the LV axis
    normal = np.cross(axis_i, axis_j)
    half_w = geo.a_epi + cfg.fov_margin_mm
    n_i = int(math.ceil(2 * half_w / cfg.pixel_mm))
    n_j = int(math.ceil((geo.c_epi + 2 * cfg.fov_margin_mm) / cfg.pixel_mm))
    corner = -(n_i - 1) * cfg.pixel_mm / 2 * axis_i + (-geo.c_epi - cfg.fov_margin_mm) * axis_j
    values = _slab_means(phantom, corner, axis_i, axis_j, normal, n_i, n_j)
    if cfg.noise_std > 0:
        values = np.clip(values + rng.normal(0.0, cfg.noise_std, values.shape), 0.0, 1.0)
    image = sitk.GetImageFromArray(values[None].astype(np.float32))
    image.SetSpacing((cfg.pixel_mm, cfg.pixel_mm, cfg.slab_mm))
    direction = geo.rotation @ np.stack([axis_i, axis_j, normal], axis=1)
    image.SetDirection(tuple(float(v) for v in direction.ravel()))
    image.SetOrigin(tuple(float(v) for v in geo.to_lps(corner[None, :])[0]))
    return image


def make_phantom(config=None) -> Phantom:
    """Build the mesh, its ground-truth scar and the simulated acquisition for ``config``.

    ``config`` is a :class:`PhantomConfig` (the demo family) or a
    :class:`cardioscar.phantoms.phantom_segmented.SegmentedConfig` (the segmented family).
    """
    if getattr(config, "family", "demo") == "segmented":
        from .phantom_segmented import make_segmented_phantom

        return make_segmented_phantom(config)
    config = config or PhantomConfig()
    config.validate()
    start = time.perf_counter()
    rng = np.random.default_rng(config.seed)
    rotation = _random_rotation(rng, config.oblique_deg) if config.oblique else np.eye(3)
    wall = config.wall_mm
    geometry = LVGeometry(
        a_endo=config.endo_radius_mm, c_endo=config.endo_length_mm,
        a_epi=config.endo_radius_mm + wall, c_epi=config.endo_length_mm + wall,
        rotation=rotation, offset=np.asarray(config.offset_lps, dtype=float),
    )
    infarcts, fraction = _draw_infarcts(config, geometry, rng)

    points_local, tets, wall_coords = _build_mesh(geometry, config.target_nodes)
    truth = scar_from_wall(geometry, infarcts, wall_coords[:, 0], wall_coords[:, 1], wall_coords[:, 2], config.border_mm)
    mesh = _to_vtk_grid(geometry.to_lps(points_local), tets)
    _add_point_array(mesh, "scar_truth", truth)
    _add_point_array(mesh, "transmural_depth", wall_coords[:, 0])
    surf_filter = vtk.vtkDataSetSurfaceFilter()
    surf_filter.SetInputData(mesh)
    surf_filter.Update()
    surface = vtk.vtkPolyData()
    surface.DeepCopy(surf_filter.GetOutput())

    phantom = Phantom(config=config, geometry=geometry, infarcts=infarcts, mesh=mesh, surface=surface,
                      truth=truth, image=sitk.Image(), long_axis_image=None,
                      slice_half_thickness_mm=config.slab_mm / 2.0)
    image, z_centres = _acquire_short_axis(phantom)
    noise_rng = np.random.default_rng([config.seed, 11])
    if config.noise_std > 0:
        arr = sitk.GetArrayFromImage(image)
        noisy = np.clip(arr + noise_rng.normal(0.0, config.noise_std, arr.shape), 0.0, 1.0).astype(np.float32)
        clean = image
        image = sitk.GetImageFromArray(noisy)
        image.CopyInformation(clean)
    phantom.image = image
    if config.long_axis:
        phantom.long_axis_image = _acquire_long_axis(phantom, noise_rng)

    centres_lps = geometry.to_lps(np.array([[0.0, 0.0, z] for z in z_centres]))
    phantom.metadata = {
        "config": {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
        "coordinate_space": "LPS",
        "n_nodes": int(mesh.GetNumberOfPoints()),
        "n_tets": int(mesh.GetNumberOfCells()),
        "scar_fraction": fraction,
        "scar_fraction_nodes": float(truth.mean()),
        "infarcts": [asdict(i) for i in infarcts],
        "lv": {"a_endo": geometry.a_endo, "c_endo": geometry.c_endo, "a_epi": geometry.a_epi,
               "c_epi": geometry.c_epi, "apex_to_base_mm": geometry.c_epi,
               "rotation": geometry.rotation.tolist(), "offset_lps": geometry.offset.tolist()},
        "image_size": list(image.GetSize()),
        "n_slices": len(z_centres),
        "slice_positions_local_z_mm": z_centres,
        "slice_centres_lps": centres_lps.tolist(),
        "slab_mm": config.slab_mm,
        "slice_half_thickness_mm": phantom.slice_half_thickness_mm,
        "generation_seconds": time.perf_counter() - start,
    }
    logger.info("phantom: %d nodes, scar %.1f%%, %d slices in %.1f s", mesh.GetNumberOfPoints(),
                100 * fraction, len(z_centres), phantom.metadata["generation_seconds"])
    return phantom


def _write_vtk(dataset: vtk.vtkDataSet, path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write through meshio.write_mesh (atomic, SPACE=LPS marker)."""
    write_mesh(Mesh(dataset=dataset, space="LPS", path=None), path, arrays)


def write_phantom(phantom: Phantom, out_dir: str | Path) -> dict[str, Path]:
    """Write the phantom's files; returns their paths by role.

    ``mesh`` (``scar_truth``; the segmented family adds ``scar_fraction_truth``), ``surface``,
    ``image`` (short-axis NIfTI, ready for ``cardioscar prepare --image ...
    --slice-thickness-padding <slab/2>``), ``long_axis_image`` when acquired, the segmented
    family's ``myocardium_mask`` and ``label_map``, and ``metadata`` (JSON: parameters, scar
    fraction, slice positions).
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "mesh": out / "phantom_mesh.vtk",
        "surface": out / "phantom_surface.vtk",
        "image": out / "phantom_lge.nii.gz",
        "metadata": out / "phantom.json",
    }
    arrays = {"scar_truth": phantom.truth}
    if phantom.truth_fraction is not None:
        arrays["scar_fraction_truth"] = phantom.truth_fraction
    _write_vtk(phantom.mesh, paths["mesh"], arrays)
    _write_vtk(phantom.surface, paths["surface"], {})
    images = {"image": phantom.image}
    optional = (("long_axis_image", "phantom_lge_long_axis.nii.gz", phantom.long_axis_image),
                ("myocardium_mask", "phantom_myocardium.nii.gz", phantom.myocardium_image),
                ("label_map", "phantom_labels.nii.gz", phantom.label_image))
    for role, name, image in optional:
        if image is not None:
            paths[role] = out / name
            images[role] = image
    for role, image in images.items():
        with atomic_write(paths[role]) as tmp:
            sitk.WriteImage(image, str(tmp), True)
    meta = dict(phantom.metadata)
    meta["files"] = {k: v.name for k, v in paths.items()}
    with atomic_write(paths["metadata"]) as tmp:
        tmp.write_text(json.dumps(meta, indent=2), encoding="utf-8")
    return paths


def raw_lge_acquisition(phantom: Phantom, seed: int = 0) -> tuple[sitk.Image, sitk.Image]:
    """The short-axis stack as a scanner would give it: LGE intensities, not scar fractions.

    Each pixel samples its slice's centre plane: blood pool (inside the endocardium) bright-ish,
    myocardium enhanced in proportion to its scar (:func:`cardioscar.lge.synthetic.signal_from_scar_fraction`),
    Rician noise everywhere. Returns the LGE image and a label map on the same grid (1 blood pool,
    2 myocardium) for the scar rules. The phantom's other outputs are unchanged.
    """
    from cardioscar.lge.synthetic import LGEContrast, add_rician_noise, signal_from_scar_fraction
    from cardioscar.prepare.slices import ijk_to_lps_matrix

    contrast = LGEContrast()
    image = phantom.image
    size = image.GetSize()
    k, j, i = np.meshgrid(*(np.arange(n, dtype=float) for n in size[::-1]), indexing="ij")
    ijk1 = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
    centres = (ijk_to_lps_matrix(image) @ ijk1)[:3].T
    local = phantom.geometry.to_local(centres)
    geo = phantom.geometry
    cavity = ((local[:, 0] ** 2 + local[:, 1] ** 2) / geo.a_endo**2 + local[:, 2] ** 2 / geo.c_endo**2 < 1.0) \
        & (local[:, 2] <= 0.0)
    myocardium = geo.myocardium_local(local)
    signal = np.full(len(local), contrast.background)
    signal[cavity] = contrast.blood
    signal[myocardium] = signal_from_scar_fraction(phantom.myocardial_scar_at(centres[myocardium]), contrast)
    noisy = add_rician_noise(signal, contrast.noise_sd, np.random.default_rng([seed, 19]))
    labels = np.where(myocardium, 2, np.where(cavity, 1, 0))
    out = []
    for values, kind in ((noisy, np.float32), (labels, np.uint8)):
        volume = sitk.GetImageFromArray(values.reshape(size[::-1]).astype(kind))
        volume.CopyInformation(image)
        out.append(volume)
    return out[0], out[1]
