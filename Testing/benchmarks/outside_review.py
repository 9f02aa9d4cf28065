"""An outside reviewer's cases: does ``--preset fast`` beat reconstructions that need no learning?

Built without reading the team's phantom code. Per case this script makes, with its own numpy /
SciPy / SimpleITK / VTK code:

* a 3D heart: the LV myocardium of a real label map (ACDC patient 101, end-diastole or end-systole;
  an EMIDEC case's labels 2, 3, 4) lifted to 1 mm voxels by blending the signed distances of
  neighbouring slices, or an analytic truncated-ellipsoid LV whose long axis is tilted;
* a scar defined in 3D on wall coordinates (angle about the LV axis from the septum, height along
  it, transmural fraction from the endocardium): an LAD-territory transmural infarct, a thin
  sub-endocardial rim, two patches, a faint patchy one, a partial-thickness one with soft borders,
  an apical cap;
* a tetrahedral mesh of the wall (voxels of 2.4-2.6 mm cut into tetrahedra by VTK), its wall grown or
  shrunk by up to a pixel so that it does not follow the image's segmentation;
* a short-axis stack sampled from the 3D truth with its own pixel model: the mean over the pixel's
  footprint and a triangular slice profile (or trilinear at the pixel centre), oblique planes, one
  slice misregistered in-plane, noise; written as a scar-probability map with a myocardium mask or
  as an EMIDEC-style label map (0 outside the myocardium, 2 myocardium, 3 scar); one case pools a
  four-chamber-like long-axis view with the stack.

Then the user's route (``cardioscar prepare``, ``train --preset fast``, ``apply``) and three
yardsticks with no learning, from the short-axis stack alone: *copy-voxel* (the pixel the node lies in, 0 outside the mask as in the
map; off the slabs, the nearest slice's pixel), *nearest slice* (the nearest slice's nearest
myocardial pixel at the node's in-plane position) and *shape* (signed distance of the scar outline
at 0.5 in the two neighbouring slices, blended linearly along the normal; probability
``sigmoid(-d / 1.5 mm)``). Every node is scored against the 3D truth (Dice at 0.5, best Dice and its
threshold, ROC AUC, scar volume error by node count), and Dice split between nodes on a slab and
between slabs. One JSON line per case on stdout, with ``why``: the targets against the truth, the
fit's loss beside the true field's, where the wrong nodes are (per slice; with a row, on a slab
without one, between slabs) and the library's shape prior alone.

Usage: nice -n 5 env PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python \
    Testing/benchmarks/outside_review.py [--cases a,b] [--data ../shared/data] [--work DIR] \
    [--train-seed N] [--train-extra '--shape-prior off'] [--set FIELD=VALUE] [--residual-decays 0.5,2] \
    [--row-weight-reaches 0,1.5,3] [--prior-json '{"residual_bound": 3}'] \
    > Testing/benchmarks/results/outside_review.jsonl
Figures and findings: Testing/benchmarks/ROBUSTNESS.md, "An outside reviewer's cases".
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import vtk
from scipy import ndimage
from sklearn.metrics import roc_auc_score
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

FINE_MM = 1.0  # voxel of the 3D truth


@dataclass
class Heart:
    """The 3D truth's anatomy on a 1 mm grid (axis-aligned, patient mm)."""

    origin: np.ndarray
    shape: tuple[int, int, int]  # (x, y, z) voxels
    sdf_myo: np.ndarray  # negative inside the myocardium, mm, indexed [x, y, z]
    sdf_cav: np.ndarray  # negative inside the LV cavity
    axis_point: np.ndarray
    axis_dir: np.ndarray
    septum_dir: np.ndarray

    def points(self) -> np.ndarray:
        idx = np.stack(np.meshgrid(*[np.arange(n) for n in self.shape], indexing="ij"), -1)
        return self.origin + idx * FINE_MM


@dataclass
class Case:
    name: str
    geometry: str
    scar: str
    input_kind: str  # "map" (probability + mask) or "labels"
    pixel_mm: float
    slab_mm: float
    gap_mm: float
    tilt_deg: float
    noise: float = 0.0
    misregister_mm: float = 0.0
    profile: str = "triangle"  # or "centre" (trilinear at the pixel centre)
    faint: float = 1.0  # map value for a fully scarred pixel
    wall_offset_mm: float = 0.0  # mesh wall grown (+) or shrunk (-) against the image's
    mesh_mm: float = 2.4
    long_axis: bool = False  # pool a four-chamber-like view with the stack (label input only)
    seed: int = 0


CASES = [
    Case("acdc_ed_lad_transmural", "acdc_ed", "lad", "map", 1.8, 8.0, 10.0, 5.0, noise=0.03,
         wall_offset_mm=0.8),
    Case("acdc_ed_subendo_rim", "acdc_ed", "rim", "labels", 1.5, 6.0, 12.0, 3.0,
         misregister_mm=1.5, wall_offset_mm=-0.5),
    Case("ellipsoid_two_patches", "ellipsoid", "two", "map", 2.0, 10.0, 13.0, 0.0, noise=0.05,
         mesh_mm=2.6),
    Case("ellipsoid_faint_patchy", "ellipsoid", "patchy", "map", 1.6, 8.0, 9.0, 2.0, noise=0.06,
         faint=0.62, mesh_mm=2.6, seed=1),
    Case("emidec_n020_lateral_partial", "emidec_N020", "lateral", "labels", 1.4, 8.0, 10.0, 0.0,
         misregister_mm=2.0, profile="centre", wall_offset_mm=0.5),
    Case("acdc_es_inferior_soft", "acdc_es", "inferior", "map", 1.8, 8.0, 11.0, 7.0, noise=0.04,
         wall_offset_mm=-0.3),
    Case("ellipsoid_apical_cap_long_axis", "ellipsoid", "apical", "labels", 1.6, 7.0, 12.0, 4.0,
         long_axis=True, mesh_mm=2.6, wall_offset_mm=0.4),
]


# --- anatomy -------------------------------------------------------------------------------------

def _signed_distance_2d(mask: np.ndarray, spacing: tuple[float, float]) -> np.ndarray:
    """In-plane signed distance (mm) to a mask's outline, negative inside; +100 if empty."""
    if not mask.any():
        return np.full(mask.shape, 100.0)
    outside = ndimage.distance_transform_edt(~mask, sampling=spacing)
    inside = ndimage.distance_transform_edt(mask, sampling=spacing)
    return outside - inside


def heart_from_labels(path: Path, myo_labels: set[int], cav_label: int, rv_label: int | None) -> Heart:
    """Lift a short-axis label stack to 1 mm by blending the slices' signed distances along z."""
    img = sitk.ReadImage(str(path))
    lab = np.transpose(sitk.GetArrayFromImage(img), (2, 1, 0))  # [x, y, z]
    sp = np.array(img.GetSpacing())
    org = np.array(img.GetOrigin())
    if not np.allclose(np.array(img.GetDirection()), np.eye(3).ravel()):
        raise SystemExit(f"{path}: expected an identity direction")
    myo = np.isin(lab, list(myo_labels))
    cav = lab == cav_label
    zs = np.where(myo.any(axis=(0, 1)))[0]
    xs, ys = np.where(myo.any(axis=2))
    pad = 12
    x0, x1 = max(xs.min() - pad, 0), min(xs.max() + pad, lab.shape[0] - 1)
    y0, y1 = max(ys.min() - pad, 0), min(ys.max() + pad, lab.shape[1] - 1)
    z0, z1 = zs.min(), zs.max()
    crop = (slice(x0, x1 + 1), slice(y0, y1 + 1))
    sd_myo = np.stack([_signed_distance_2d(myo[crop + (z,)], sp[:2]) for z in range(z0, z1 + 1)], -1)
    sd_cav = np.stack([_signed_distance_2d(cav[crop + (z,)], sp[:2]) for z in range(z0, z1 + 1)], -1)
    # the stack's first and last slices end half a slice beyond their centres: pad with "outside"
    cap = np.full(sd_myo.shape[:2] + (1,), 30.0)
    sd_myo = np.concatenate([cap, sd_myo, cap], -1)
    sd_cav = np.concatenate([cap, sd_cav, cap], -1)
    z_centres = org[2] + sp[2] * np.r_[z0 - 0.5, np.arange(z0, z1 + 1), z1 + 0.5]
    lo = org + sp * np.array([x0, y0, 0])
    lo[2] = z_centres[0]
    hi = org + sp * np.array([x1, y1, 0])
    hi[2] = z_centres[-1]
    shape = tuple(int(v) for v in np.floor((hi - lo) / FINE_MM) + 1)
    g = [lo[i] + FINE_MM * np.arange(shape[i]) for i in range(3)]
    fx = (g[0] - lo[0]) / sp[0]
    fy = (g[1] - lo[1]) / sp[1]
    fz = np.interp(g[2], z_centres, np.arange(len(z_centres)))
    coords = np.meshgrid(fx, fy, fz, indexing="ij")
    s_myo = ndimage.map_coordinates(sd_myo, coords, order=1, mode="nearest")
    s_cav = ndimage.map_coordinates(sd_cav, coords, order=1, mode="nearest")
    cav_centroid = org + np.argwhere(cav).mean(0) * sp
    if rv_label is not None and (lab == rv_label).any():
        rv = np.argwhere(lab == rv_label).mean(0) * sp + org
        septum = rv - cav_centroid
        septum[2] = 0.0
    else:
        septum = np.array([-1.0, 0.0, 0.0])
    return Heart(lo, shape, s_myo, s_cav, cav_centroid, np.array([0.0, 0.0, 1.0]),
                 septum / np.linalg.norm(septum))


def heart_ellipsoid(tilt_deg: float = 10.0) -> Heart:
    """A truncated prolate LV (endo 24 x 52 mm, epi 33 x 60 mm), its long axis tilted from z."""
    t = np.deg2rad(tilt_deg)
    axis = np.array([np.sin(t), 0.0, np.cos(t)])
    ref = np.array([np.cos(t), 0.0, -np.sin(t)])  # "septum", perpendicular to the axis
    shape = (90, 90, 90)
    origin = np.array([-45.0, -45.0, -60.0])
    h = Heart(origin, shape, None, None, np.zeros(3), axis, ref)  # type: ignore[arg-type]
    p = h.points()
    third = np.cross(axis, ref)
    a = p @ ref
    b = p @ third
    c = p @ axis  # along the axis; base plane at c = 12

    def ellipsoid_sd(r: float, L: float) -> np.ndarray:
        return (np.sqrt((a / r) ** 2 + (b / r) ** 2 + (c / L) ** 2) - 1.0) * r

    base = c - 12.0
    h.sdf_cav = np.maximum(ellipsoid_sd(24.0, 52.0), base)
    h.sdf_myo = np.maximum(np.maximum(ellipsoid_sd(33.0, 60.0), -ellipsoid_sd(24.0, 52.0)), base)
    return h


def build_heart(geometry: str, data: Path) -> Heart:
    if geometry == "acdc_ed":
        return heart_from_labels(data / "acdc_patient101/patient101_frame01_gt.nii.gz", {2}, 3, 1)
    if geometry == "acdc_es":
        return heart_from_labels(data / "acdc_patient101/patient101_frame14_gt.nii.gz", {2}, 3, 1)
    if geometry.startswith("emidec_"):
        case = geometry.split("_", 1)[1]
        return heart_from_labels(data / f"emidec/Case_{case}/Contours/Case_{case}.nii.gz", {2, 3, 4}, 1, None)
    return heart_ellipsoid()


# --- scar ----------------------------------------------------------------------------------------

def wall_coordinates(h: Heart, pts: np.ndarray) -> tuple[np.ndarray, ...]:
    """Angle from the septum (deg, -180..180), height 0 (apex) .. 1 (base), transmural 0..1."""
    rel = pts - h.axis_point
    along = rel @ h.axis_dir
    radial = rel - along[..., None] * h.axis_dir
    third = np.cross(h.axis_dir, h.septum_dir)
    ang = np.degrees(np.arctan2(radial @ third, radial @ h.septum_dir))
    myo_along = along[h.sdf_myo < 0]
    lo, hi = myo_along.min(), myo_along.max()
    # the apex is the end where the wall's cross-section is smaller
    lo_area = np.sum((h.sdf_myo < 0) & (along < lo + 0.25 * (hi - lo)))
    hi_area = np.sum((h.sdf_myo < 0) & (along > hi - 0.25 * (hi - lo)))
    height = (along - lo) / (hi - lo)
    if lo_area > hi_area:
        height = 1.0 - height
    d_endo = np.maximum(h.sdf_cav, 0.0)
    d_epi = ndimage.distance_transform_edt((h.sdf_myo < 0) | (h.sdf_cav < 0), sampling=FINE_MM)
    trans = np.where(h.sdf_cav < 0, 0.0, d_endo / np.maximum(d_endo + d_epi, 1e-6))
    return ang, np.clip(height, 0, 1), np.clip(trans, 0, 1)


def _soft(x: np.ndarray, edge: float) -> np.ndarray:
    """1 well inside x < 0, 0 well outside, a linear ramp of width ``edge`` across 0."""
    return np.clip(0.5 - x / edge, 0.0, 1.0)


def _ang_dist(ang: np.ndarray, centre: float) -> np.ndarray:
    return np.abs((ang - centre + 180.0) % 360.0 - 180.0)


def scar_field(kind: str, ang: np.ndarray, height: np.ndarray, trans: np.ndarray,
               rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Scar fraction in [0, 1] on the fine grid; the truth is where it is >= 0.5."""
    if kind == "lad":  # anterior-septal, widening towards the apex, transmural, mid to apex
        half = 35.0 + 45.0 * (1.0 - height)
        s = (_ang_dist(ang, 60.0) < half) & (height < 0.75)
        return s.astype(float)
    if kind == "rim":  # thin sub-endocardial rim over the inferolateral wall
        s = (_ang_dist(ang, -120.0) < 70.0) & (trans < 0.35) & (height > 0.15) & (height < 0.9)
        return s.astype(float)
    if kind == "two":  # apical-anterior transmural + lateral mid-wall, separate
        a = (_ang_dist(ang, 90.0) < 40.0) & (height < 0.45)
        b = (_ang_dist(ang, -160.0) < 30.0) & (height > 0.45) & (height < 0.85) & (trans > 0.25) & (trans < 0.8)
        return (a | b).astype(float)
    if kind == "patchy":  # inferior territory, islands of a smooth random field
        noise = ndimage.gaussian_filter(rng.standard_normal(shape), 3.0)
        noise /= noise.std()
        region = (_ang_dist(ang, -90.0) < 55.0) & (height > 0.2) & (height < 0.85)
        return (region & (noise > -0.3)).astype(float)
    if kind == "lateral":  # lateral, 60 % transmural, soft borders
        return (_soft(_ang_dist(ang, 180.0) - 45.0, 20.0) * _soft(trans - 0.6, 0.2)
                * _soft(np.abs(height - 0.5) - 0.3, 0.15))
    if kind == "apical":  # an apical cap, transmural, circumferential below a wavy line
        return _soft(height - (0.3 + 0.08 * np.cos(np.deg2rad(ang - 40.0))), 0.08)
    if kind == "inferior":  # inferior transmural, soft borders
        return _soft(_ang_dist(ang, -90.0) - 40.0, 25.0) * _soft(height - 0.7, 0.2)
    raise ValueError(kind)


# --- mesh ----------------------------------------------------------------------------------------

def tet_mesh(h: Heart, offset_mm: float, mesh_mm: float, path: Path) -> np.ndarray:
    """Voxels of ``mesh_mm`` whose centre is within the wall grown by ``offset_mm``, cut into tets."""
    extent = np.array(h.shape) * FINE_MM
    n = np.floor(extent / mesh_mm).astype(int)
    centres = [h.origin[i] + mesh_mm * (np.arange(n[i]) + 0.5) for i in range(3)]
    idx = np.meshgrid(*[(c - h.origin[i]) / FINE_MM for i, c in enumerate(centres)], indexing="ij")
    inside = ndimage.map_coordinates(h.sdf_myo, idx, order=1, mode="nearest") < offset_mm
    img = vtk.vtkImageData()
    img.SetDimensions(*(n + 1))
    img.SetOrigin(*h.origin)
    img.SetSpacing(mesh_mm, mesh_mm, mesh_mm)
    arr = numpy_to_vtk(inside.ravel(order="F").astype(np.uint8), deep=True)
    arr.SetName("wall")
    img.GetCellData().AddArray(arr)
    thr = vtk.vtkThreshold()
    thr.SetInputData(img)
    thr.SetInputArrayToProcess(0, 0, 0, vtk.vtkDataObject.FIELD_ASSOCIATION_CELLS, "wall")
    thr.SetUpperThreshold(0.5)  # keeps the wall's voxels (1): values at or above it
    thr.SetThresholdFunction(vtk.vtkThreshold.THRESHOLD_UPPER)
    conn = vtk.vtkConnectivityFilter()
    conn.SetInputConnection(thr.GetOutputPort())
    conn.SetExtractionModeToLargestRegion()
    tets = vtk.vtkDataSetTriangleFilter()
    tets.SetInputConnection(conn.GetOutputPort())
    tets.Update()
    ug = tets.GetOutput()
    ug.GetCellData().RemoveArray("wall")
    ug.GetCellData().RemoveArray("RegionId")
    ug.GetPointData().RemoveArray("RegionId")
    w = vtk.vtkUnstructuredGridWriter()
    w.SetFileName(str(path))
    w.SetInputData(ug)
    w.Write()
    return vtk_to_numpy(ug.GetPoints().GetData()).astype(float)


# --- acquisition ---------------------------------------------------------------------------------

@dataclass
class Stack:
    origin: np.ndarray  # centre of pixel (0, 0) of slice 0
    u: np.ndarray
    v: np.ndarray
    n: np.ndarray
    gap: float  # mm between slices (a lone plane: its slab)
    value: np.ndarray  # [k, j(v), i(u)] scar map as given (0 outside the mask)
    mask: np.ndarray  # [k, j, i] myocardium
    case: Case

    @property
    def nu(self) -> int:
        return self.value.shape[2]

    @property
    def nv(self) -> int:
        return self.value.shape[1]

    def to_index(self, pts: np.ndarray) -> np.ndarray:
        rel = pts - self.origin
        px = self.case.pixel_mm
        return np.stack([rel @ self.u / px, rel @ self.v / px, rel @ self.n / self.gap], -1)


def _pixel_offsets(case: Case) -> list[tuple[float, float, float, float]]:
    """Sub-samples (du, dv, dn, weight) of one pixel: its centre alone, or 3 x 3 over the pixel and
    9 through the slab with a triangular profile whose full width at half maximum is ``slab_mm``."""
    if case.profile == "centre":
        return [(0.0, 0.0, 0.0, 1.0)]
    s = case.pixel_mm / 3.0
    through = np.linspace(-case.slab_mm, case.slab_mm, 9)
    tw = 1.0 - np.abs(through) / case.slab_mm
    return [(a * s, b * s, z, w) for a in (-1, 0, 1) for b in (-1, 0, 1) for z, w in zip(through, tw) if w > 0]


def _acquire_planes(h: Heart, fine_scar: np.ndarray, case: Case, rng: np.random.Generator, u: np.ndarray,
                    v: np.ndarray, n: np.ndarray, gap: float, first_offset: float | None) -> Stack:
    """Planes normal to ``n`` every ``gap`` mm over the wall (one plane through the wall's centre
    when ``first_offset`` is None), each pixel the scar fraction within the myocardium of its
    footprint; the middle plane of a stack shifted by ``misregister_mm`` along ``u``."""
    myo = (h.sdf_myo < 0).astype(np.float32)
    scar_in_myo = (fine_scar * myo).astype(np.float32)
    pts = h.points()[myo > 0]
    centre = pts.mean(0)
    pu, pv, pn = (pts - centre) @ u, (pts - centre) @ v, (pts - centre) @ n
    margin = 10.0
    nu = int(np.ceil((np.ptp(pu) + 2 * margin) / case.pixel_mm))
    nv = int(np.ceil((np.ptp(pv) + 2 * margin) / case.pixel_mm))
    first = 0.0 if first_offset is None else pn.min() + first_offset
    n_slices = 1 if first_offset is None else int(np.floor((pn.max() - first) / gap)) + 1
    origin = centre + (pu.min() - margin + case.pixel_mm / 2) * u + (pv.min() - margin + case.pixel_mm / 2) * v \
        + first * n
    offs = _pixel_offsets(case)
    wsum = sum(o[3] for o in offs)
    jj, ii = np.meshgrid(np.arange(nv), np.arange(nu), indexing="ij")
    values, masks = [], []
    for k in range(n_slices):
        shift = case.misregister_mm if (n_slices > 1 and k == n_slices // 2) else 0.0
        base = origin + k * gap * n + (ii[..., None] * case.pixel_mm + shift) * u + jj[..., None] * case.pixel_mm * v
        f_m = np.zeros((nv, nu))
        f_s = np.zeros((nv, nu))
        for du, dv, dn, w in offs:
            p = base + du * u + dv * v + dn * n
            idx = [(p[..., i] - h.origin[i]) / FINE_MM for i in range(3)]
            f_m += w * ndimage.map_coordinates(myo, idx, order=1, mode="constant", cval=0.0)
            f_s += w * ndimage.map_coordinates(scar_in_myo, idx, order=1, mode="constant", cval=0.0)
        f_m /= wsum
        f_s /= wsum
        mask = f_m >= 0.5
        frac = np.where(mask, f_s / np.maximum(f_m, 1e-6), 0.0)
        if case.input_kind == "map":
            val = case.faint * frac + case.noise * rng.standard_normal(frac.shape)
            val = np.where(mask, np.clip(val, 0.0, 1.0), 0.0)
        else:
            val = (mask & (frac >= 0.5)).astype(float)
        values.append(val)
        masks.append(mask)
    return Stack(origin, u, v, n, gap, np.array(values), np.array(masks), case)


def acquire(h: Heart, fine_scar: np.ndarray, case: Case, rng: np.random.Generator) -> Stack:
    """The short-axis stack: normal tilted ``tilt_deg`` from z about x, first plane 0.3 gap inside the wall."""
    t = np.deg2rad(case.tilt_deg)
    n = np.array([0.0, np.sin(t), np.cos(t)])
    u = np.array([1.0, 0.0, 0.0])
    return _acquire_planes(h, fine_scar, case, rng, u, np.cross(n, u), n, case.gap_mm, 0.3 * case.gap_mm)


def acquire_long_axis(h: Heart, fine_scar: np.ndarray, case: Case, rng: np.random.Generator) -> Stack:
    """A four-chamber-like view: the plane holding the LV axis and the septal direction."""
    v = h.axis_dir / np.linalg.norm(h.axis_dir)
    u = h.septum_dir - (h.septum_dir @ v) * v
    u /= np.linalg.norm(u)
    return _acquire_planes(h, fine_scar, case, rng, u, v, np.cross(u, v), case.slab_mm, None)


def write_stack(st: Stack, out: Path, stem: str) -> tuple[Path, Path | None]:
    """Write the planes as the user would hand them to ``prepare``: an EMIDEC-style label map
    (0 outside the myocardium, 2 myocardium, 3 scar), or a scar map and its 0/1 myocardium mask."""
    direction = np.stack([st.u, st.v, st.n], 1).ravel().tolist()  # columns: index axes

    def write(arr: np.ndarray, pixel_type: int, path: Path) -> Path:
        im = sitk.Cast(sitk.GetImageFromArray(arr), pixel_type)
        im.SetSpacing((st.case.pixel_mm, st.case.pixel_mm, st.gap))
        im.SetOrigin(tuple(st.origin))
        im.SetDirection(direction)
        sitk.WriteImage(im, str(path))
        return path

    if st.case.input_kind == "labels":
        lab = np.where(st.mask, 2, 0).astype(np.uint8)
        lab[st.mask & (st.value >= 0.5)] = 3
        return write(lab, sitk.sitkUInt8, out / f"{stem}_labels.nii.gz"), None
    return (write(st.value.astype(np.float32), sitk.sitkFloat32, out / f"{stem}_scar_map.nii.gz"),
            write(st.mask.astype(np.uint8), sitk.sitkUInt8, out / f"{stem}_myo_mask.nii.gz"))


# --- yardsticks ----------------------------------------------------------------------------------

def yardsticks(st: Stack, nodes: np.ndarray) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Copy-voxel, nearest slice and shape interpolation at every node; and the on-slab mask."""
    c = st.case
    ci = st.to_index(nodes)
    K = st.value.shape[0]
    k_near = np.clip(np.rint(ci[:, 2]), 0, K - 1).astype(int)
    on_slab = np.abs(ci[:, 2] - k_near) * c.gap_mm <= c.slab_mm / 2
    i = np.clip(np.rint(ci[:, 0]), 0, st.nu - 1).astype(int)
    j = np.clip(np.rint(ci[:, 1]), 0, st.nv - 1).astype(int)
    copy_voxel = st.value[k_near, j, i]
    # nearest slice, mask-aware: the nearest myocardial pixel of that slice
    near = np.empty(len(nodes))
    sdf = np.empty((K, st.nv, st.nu))
    for k in range(K):
        _, (jn, in_) = ndimage.distance_transform_edt(~st.mask[k], return_indices=True)
        sel = k_near == k
        near[sel] = st.value[k, jn[j[sel], i[sel]], in_[j[sel], i[sel]]]
        scar = st.value[k] >= 0.5
        # extend the outline past the mask so nodes just outside the segmentation follow it
        sdf[k] = _signed_distance_2d(scar[jn, in_] if st.mask[k].any() else scar, (c.pixel_mm, c.pixel_mm))
    kc = np.clip(ci[:, 2], 0, K - 1)
    k0 = np.minimum(np.floor(kc).astype(int), K - 2)
    w = kc - k0
    coords_ij = [np.clip(ci[:, 1], 0, st.nv - 1), np.clip(ci[:, 0], 0, st.nu - 1)]
    d0 = _bilinear(sdf, k0, coords_ij)
    d1 = _bilinear(sdf, k0 + 1, coords_ij)
    d = (1 - w) * d0 + w * d1
    shape = 1.0 / (1.0 + np.exp(np.clip(d / 1.5, -50, 50)))
    return {"copy_voxel": copy_voxel, "nearest_slice": near, "shape": shape}, on_slab


def _bilinear(stack: np.ndarray, k: np.ndarray, ji: list[np.ndarray]) -> np.ndarray:
    return ndimage.map_coordinates(stack, [k.astype(float), ji[0], ji[1]], order=1, mode="nearest")


# --- scoring -------------------------------------------------------------------------------------

def _dice(pred: np.ndarray, truth: np.ndarray) -> float:
    s = pred.sum() + truth.sum()
    return float(2 * np.sum(pred & truth) / s) if s else 1.0


def score(p: np.ndarray, truth: np.ndarray, on_slab: np.ndarray) -> dict:
    ths = np.round(np.arange(0.02, 0.99, 0.01), 2)
    dices = [_dice(p >= t, truth) for t in ths]
    b = int(np.argmax(dices))
    pred = p >= 0.5
    return {
        "dice": round(_dice(pred, truth), 4),
        "best_dice": round(dices[b], 4),
        "best_threshold": float(ths[b]),
        "auc": round(float(roc_auc_score(truth, p)), 4),
        "volume_error_pct": round(float(100.0 * (pred.sum() - truth.sum()) / max(truth.sum(), 1)), 1),
        "dice_on_slab": round(_dice(pred[on_slab], truth[on_slab]), 4),
        "dice_between": round(_dice(pred[~on_slab], truth[~on_slab]), 4),
    }


# --- why: targets against the truth, the fit's loss, where the wrong nodes are -------------------

def diagnose(work: Path, nodes: np.ndarray, true_field: np.ndarray, truth: np.ndarray,
             fields: dict[str, np.ndarray], on_slab: np.ndarray, k_near: np.ndarray, train_log: str) -> dict:
    """Figures that say why a field is wrong, from prepare's ``.npz`` and train's log.

    ``truth_group_loss``: train's group loss (mean over groups of (mean over the group's rows -
    target)^2) for the true field at the rows' nodes (the scar fraction for a map; for a label
    map, whose targets are 0 or 1, the truth's 0/1), beside the fit's best loss;
    ``targets_wrong``: the share of rows whose target at 0.5 disagrees with its node's truth;
    errors (false positives + false negatives at 0.5) of each field on nodes with a row
    (``covered``), on a slab without a row (``on_slab_uncovered``), between the slabs; per slice
    (nodes nearest it): errors of the fast field, nearest slice, shape, and of the targets; and
    the library's own shape prior alone (``prior_alone``, from the ``.npz``) scored like the rest.
    """
    from cardioscar.shape_prior.use import prior_from_npz

    d = dict(np.load(work / "data.npz"))
    node_ids, groups = d["node_ids"], d["group_ids"]
    target = d["intensities"].reshape(-1)
    n_groups = int(groups.max()) + 1
    count = np.bincount(groups, minlength=n_groups)
    per_group = (np.bincount(groups, true_field[node_ids], n_groups)
                 - np.bincount(groups, target, n_groups)) / np.maximum(count, 1)
    covered = np.zeros(len(truth), bool)
    covered[node_ids] = True
    row_wrong = (target >= 0.5) != truth[node_ids]
    fit_loss = next((float(line.split()[2]) for line in train_log.splitlines() if line.startswith("Best loss")), None)
    places = {"covered": covered, "on_slab_uncovered": on_slab & ~covered, "between": ~on_slab & ~covered}
    errors = {name: {place: int(np.sum(((v >= 0.5) != truth) & sel)) for place, sel in places.items()}
              for name, v in fields.items()}
    per_slice = []
    for k in range(int(k_near.max()) + 1):
        sel = k_near == k
        rows = sel[node_ids]
        per_slice.append({"slice": k, "nodes": int(sel.sum()), "truth_scar": int(truth[sel].sum()),
                          **{name: int(np.sum(((v >= 0.5) != truth) & sel)) for name, v in fields.items()},
                          "targets_wrong": int(row_wrong[rows].sum()), "rows": int(rows.sum())})
    prior = prior_from_npz(d, str(work / "data.npz"))
    out = {"truth_group_loss": round(float(np.mean(per_group ** 2)), 6), "fit_best_loss": fit_loss,
           "targets_wrong": round(float(row_wrong.mean()), 4), "covered_frac": round(float(covered.mean()), 3),
           "trained_with_prior": "shape prior:" in train_log, "errors": errors, "per_slice": per_slice}
    if prior is not None:
        out["prior_alone"] = score(1.0 / (1.0 + np.exp(-prior.logit(nodes))), truth, on_slab)
    return out


# --- the user's route ----------------------------------------------------------------------------

def override_prior(npz: Path, overrides: dict) -> None:
    """An experiment's hook between prepare and train: ``overrides`` (ShapePrior fields, e.g.
    ``{"residual_bound": 3}``) written into the training data's stored prior, atomically."""
    with np.load(npz) as d:
        arrays = dict(d)
    for key, value in overrides.items():
        if "shape_prior_" + key not in arrays:
            raise SystemExit(f"--prior-json: {npz} holds no shape prior field {key!r}")
        arrays["shape_prior_" + key] = np.asarray(value, dtype=arrays["shape_prior_" + key].dtype)
    partial = npz.with_name(npz.stem + ".partial.npz")
    np.savez_compressed(partial, **arrays)
    os.replace(partial, npz)


def cli(args: list[str]) -> str:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "cardioscar", *args], capture_output=True, text=True, env=env)
    if r.returncode:
        raise SystemExit(f"cardioscar {args[0]} failed: {r.stderr.strip()[-2000:]}")
    return r.stdout + r.stderr


def read_field(path: Path, name: str) -> np.ndarray:
    rd = vtk.vtkDataSetReader()
    rd.ReadAllScalarsOn()
    rd.SetFileName(str(path))
    rd.Update()
    return vtk_to_numpy(rd.GetOutput().GetPointData().GetArray(name)).astype(float)


def decay_sweep(out: Path, decays: list[float], truth: np.ndarray, on_slab: np.ndarray) -> dict:
    """The trained model applied with other residual decays of its shape prior (mm; the weight
    acts only when applied, so one training serves every decay), scored like the rest."""
    import torch

    from cardioscar.fit.checkpoint import load_checkpoint
    from cardioscar.shape_prior.use import with_residual_decay

    checkpoint = load_checkpoint(out / "model.pth")  # weights_only, as every load site
    if not checkpoint.get("shape_prior"):
        return {}
    swept = {}
    for decay in decays:
        torch.save(with_residual_decay(checkpoint, decay), out / f"model_decay{decay}.pth")
        cli(["apply", "--model", str(out / f"model_decay{decay}.pth"), "--mesh", str(out / "mesh.vtk"),
             "--output", str(out / f"scar_decay{decay}.vtk"), "--cpu"])
        swept[str(decay)] = score(read_field(out / f"scar_decay{decay}.vtk", "scar_probability"), truth, on_slab)
    return swept


def row_weight_sweep(out: Path, nodes: np.ndarray, reaches: list[float], truth: np.ndarray,
                     on_slab: np.ndarray) -> dict:
    """An experiment, not the library's rule: the shape prior's residual weight (distance to the
    nearest plane) times ``exp(-(max(d - r, 0) / decay)^2 / 2)`` of the distance ``d`` to the nearest
    node with a training row, so the network's residual fades at nodes near a plane but in no
    group (pixels dropped outside the mask, an apex cut obliquely) and the prior speaks there. The
    prior's log-odds factor follows the weight as in :meth:`ShapePrior.node_terms`."""
    import torch
    from scipy.spatial import cKDTree

    from cardioscar.fit.checkpoint import load_checkpoint
    from cardioscar.fit.normalization import normalize
    from cardioscar.logic import _scaler, model_from_checkpoint
    from cardioscar.predict.inference import mc_dropout_predict
    from cardioscar.shape_prior.field import ShapePrior

    checkpoint = load_checkpoint(out / "model.pth")  # weights_only, as every load site
    prior = ShapePrior.from_checkpoint(checkpoint)
    if prior is None:
        return {}
    rows = nodes[np.unique(np.load(out / "data.npz")["node_ids"])]
    to_row = cKDTree(rows).query(nodes)[0]
    coordinates = normalize(nodes, *_scaler(checkpoint)).astype(np.float32)
    logit = prior.logit(nodes)
    weight = prior.residual_weight(nodes)
    swept = {}
    for reach in reaches:
        w = weight * np.exp(-0.5 * (np.maximum(to_row - reach, 0.0) / prior.residual_decay_mm) ** 2)
        torch.manual_seed(42)  # apply's default seed: the same dropout masks
        mean, _ = mc_dropout_predict(model_from_checkpoint(checkpoint), coordinates, mc_samples=10,
                                     prior_logit=(logit * (1.0 - w * (1.0 - prior.slab_scale))).astype(np.float32),
                                     residual_weight=w.astype(np.float32))
        swept[str(reach)] = score(mean, truth, on_slab)
    return swept


def run_case(case: Case, data: Path, work: Path, train_seed: int, train_extra: list[str],
             decays: list[float], reaches: list[float], prior_overrides: dict | None = None) -> dict:
    out = work / case.name
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(case.seed)
    t0 = time.time()
    h = build_heart(case.geometry, data)
    pts = h.points()
    ang, height, trans = wall_coordinates(h, pts)
    fine_scar = scar_field(case.scar, ang, height, trans, rng, h.shape)
    nodes = tet_mesh(h, case.wall_offset_mm, case.mesh_mm, out / "mesh.vtk")
    idx = [(nodes[:, i] - h.origin[i]) / FINE_MM for i in range(3)]
    truth_frac = ndimage.map_coordinates(fine_scar, idx, order=1, mode="nearest")
    truth = truth_frac >= 0.5
    st = acquire(h, fine_scar, case, rng)
    image, mask = write_stack(st, out, "sax")
    images = [str(image)]
    if case.long_axis:
        if case.input_kind != "labels":
            raise SystemExit(f"{case.name}: a long-axis view needs label input (prepare takes one mask)")
        images.append(str(write_stack(acquire_long_axis(h, fine_scar, case, rng), out, "la")[0]))
    inputs = ["--image", *images] + (["--scar-labels", "3", "--myocardium-labels", "2,3"] if mask is None
                                     else ["--myocardium-mask", str(mask)])
    np.savez_compressed(out / "truth.npz", truth=truth, nodes=nodes)
    t_build = time.time() - t0
    t0 = time.time()
    prep_log = cli(["prepare", "--mesh", str(out / "mesh.vtk"), *inputs,
                    "--slice-thickness-padding", str(case.slab_mm / 2), "--output", str(out / "data.npz")])
    t_prep = time.time() - t0
    if prior_overrides:
        override_prior(out / "data.npz", prior_overrides)
    t0 = time.time()
    train_log = cli(["train", "--training-data", str(out / "data.npz"), "--output", str(out / "model.pth"),
                     "--preset", "fast", "--cpu", "--seed", str(train_seed), *train_extra])
    t_train = time.time() - t0
    cli(["apply", "--model", str(out / "model.pth"), "--mesh", str(out / "mesh.vtk"),
         "--output", str(out / "scar.vtk"), "--cpu"])
    (out / "train.log").write_text(train_log)
    (out / "prepare.log").write_text(prep_log)
    p = read_field(out / "scar.vtk", "scar_probability")
    ys, on_slab = yardsticks(st, nodes)
    np.savez_compressed(out / "fields.npz", model=p, on_slab=on_slab, **ys)
    k_near = np.clip(np.rint(st.to_index(nodes)[:, 2]), 0, st.value.shape[0] - 1).astype(int)
    true_field = truth.astype(float) if case.input_kind == "labels" else truth_frac
    why = diagnose(out, nodes, true_field, truth, {"fast": p, **ys}, on_slab, k_near, train_log)
    row = {
        "case": case.name, "train_seed": train_seed, "train_extra": " ".join(train_extra),
        **({"prior_overrides": prior_overrides} if prior_overrides else {}), "geometry": case.geometry, "scar": case.scar, "input": case.input_kind,
        "pixel_mm": case.pixel_mm, "slab_mm": case.slab_mm, "gap_mm": case.gap_mm, "tilt_deg": case.tilt_deg,
        "noise": case.noise, "misregister_mm": case.misregister_mm, "profile": case.profile,
        "faint": case.faint, "mesh_wall_offset_mm": case.wall_offset_mm, "long_axis": case.long_axis,
        "nodes": int(len(nodes)), "slices": int(st.value.shape[0]), "truth_scar_frac": round(float(truth.mean()), 4),
        "on_slab_frac": round(float(on_slab.mean()), 3),
        "fast": score(p, truth, on_slab),
        **{k: score(v, truth, on_slab) for k, v in ys.items()},
        "why": why,
        **({"residual_decay_sweep": decay_sweep(out, decays, truth, on_slab)} if decays else {}),
        **({"row_weight_sweep": row_weight_sweep(out, nodes, reaches, truth, on_slab)} if reaches else {}),
        "seconds": {"build": round(t_build, 1), "prepare": round(t_prep, 1), "train": round(t_train, 1)},
    }
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="", help="comma-separated case names (default all)")
    ap.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[3] / "shared/data")
    ap.add_argument("--work", type=Path, default=None, help="keep each case's files here")
    ap.add_argument("--train-seed", type=int, default=42, help="train's --seed (its default 42)")
    ap.add_argument("--train-extra", default="", help="more train options, e.g. '--shape-prior off'")
    ap.add_argument("--residual-decays", default="", help="also apply the model with these residual decays "
                    "of its shape prior, mm (e.g. 0.25,0.5,1,2)")
    ap.add_argument("--row-weight-reaches", default="", help="experiment: also apply the model with the prior's "
                    "residual faded by the distance to the nearest node with a row beyond these reaches, mm (e.g. 0,1.5,3)")
    ap.add_argument("--prior-json", default="", help='experiment: ShapePrior fields written into the prepared '
                    'data before train, inline JSON, e.g. \'{"residual_bound": 3}\'')
    ap.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                    help="change a field of the chosen cases (e.g. profile=triangle, misregister_mm=0); "
                         "the case's name gets the change appended")
    a = ap.parse_args()
    chosen = [c for c in CASES if not a.cases or c.name in a.cases.split(",")]
    for change in a.set:
        key, value = change.split("=", 1)
        kind = type(getattr(chosen[0], key))
        typed = value.lower() in ("1", "true", "yes", "on") if kind is bool else kind(value)
        chosen = [replace(c, name=f"{c.name}+{key}={value}", **{key: typed}) for c in chosen]
    work = a.work or Path(tempfile.mkdtemp(prefix="outside_review_"))
    for c in chosen:
        decays = [float(d) for d in a.residual_decays.split(",") if d]
        reaches = [float(r) for r in a.row_weight_reaches.split(",") if r]
        print(json.dumps(run_case(c, a.data, work, a.train_seed, a.train_extra.split(), decays, reaches,
                                  json.loads(a.prior_json) if a.prior_json else None)), flush=True)


if __name__ == "__main__":
    main()
