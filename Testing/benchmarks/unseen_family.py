"""A third phantom family, built unlike the two the method was tuned on (issue 18's "unseen data").

Why: the reviewers scored CardioScar on an acquisition model we had not tuned on; the segmented
family (``cardioscar.phantoms.phantom_segmented``) answered that one, and the default now beats the
yardsticks there, but the next reviewer will again bring data we have not seen. This family
differs from both in the ways real data differ:

* **Pixel model.** Not a box footprint: the tissue signal is computed on a fine grid (at most
  0.5 mm in-plane, 1 mm through-plane), weighted through-plane by a Gaussian slice profile whose
  FWHM is the nominal slab thickness (so it leaks beyond the slab the library assumes), blurred
  in-plane by a Gaussian point-spread function of FWHM 1-2 pixels and sampled at the pixel
  centres. The user's myocardium segmentation is where the same blurred myocardium indicator is
  >= 0.5 (label map: 0 background, 1 blood pool, 2 myocardium).
* **Signal.** An LGE-like magnitude image: background 0, healthy myocardium dark, blood pool
  mid, scar bright (myocardial signal linear in the local scar fraction), Rician noise of a
  drawn SD. The user's scar input is derived from it in one of two ways (``input_kind``):
  ``probability`` = the library's ``--normalize-intensities`` (min-max over the whole stack)
  inside the myocardium mask; ``nsd`` = the library's raw-LGE rule ``--scar-rule nsd`` (2 SD
  above the darkest sector, 0/1 targets) with the myocardium label map; ``fwhm`` (a control, not
  in the benchmark's schedule) the same with ``--scar-rule fwhm`` (35 % of the myocardial maximum);
  ``labels`` (not in the schedule: ``bench_unseen.py --input labels``) a scar label map as an expert
  draws it, without the noise: 3 (scar) on the myocardium label's pixels whose myocardium holds a
  scar fraction >= 0.5 (the scar fraction weighted by the same PSF and slice profile, divided by
  the equally weighted myocardium: the segmented family's "scar fraction within the
  myocardium"), the EMIDEC-style map 0/1/2/3 prepared as ``--scar-labels 3 --myocardium-labels 2,3``.
* **Mesh** (``mesh_kind``): ``tet`` a tetrahedral (t, u, theta) lattice pushed up to
  ``wall_offset_px`` pixels off the image's wall (as the segmented family, other resolution and
  offsets); ``surface`` only its endocardial and epicardial triangles (no interior node: what a
  user with a surface model gives); ``labels`` the hexahedral mesh that
  :func:`cardioscar.prepare.mesh_from_labels.myocardium_mesh_from_labels` builds from a finer
  label map of the same heart (1 mm pixels, 2.5 mm slices).
* **Acquisition and scar.** Slice gaps 8-16 mm, slabs 5-12 mm (not above the gap), pixel
  1.2-2 mm; scar ``usual`` (one or two infarcts as the segmented family draws them), ``faint``
  (small, one infarct of peak 0.6-0.75) or ``none``.

Truth: the scar fraction of the segmented family's :class:`ScarModel` on the mesh nodes,
binary at >= 0.5. Every field left ``None`` in :class:`UnseenConfig` is drawn from the seed.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import vtk
from scipy import ndimage
from vtk.util import numpy_support

from cardioscar.errors import CardioScarError
from cardioscar.lge.prepare import rule_record_json
from cardioscar.lge.rules import apply_rule
from cardioscar.lge.synthetic import add_rician_noise
from cardioscar.phantoms.phantom import LVGeometry, _stack_geometry, _to_vtk_grid, lattice_cubes, tets_from_cubes
from cardioscar.phantoms.phantom_segmented import (ScarModel, SegmentedConfig, _draw_geometry, _draw_scar,
                                                   _smooth_offset)
from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels
from cardioscar.prepare.myocardium import label_masks, restrict_to_myocardium
from cardioscar.prepare.slices import SliceLayer, slices_from_image
from cardioscar.prepare.targets import check_scar_labels, slice_targets, warn_scar_free

MESH_KINDS = ("tet", "surface", "labels")
INPUT_KINDS = ("probability", "nsd", "fwhm", "labels")
SCAR_KINDS = ("usual", "faint", "none")
BACKGROUND, BLOOD, MYOCARDIUM, SCAR = 0, 1, 2, 3
FWHM_PER_SIGMA = 2.0 * math.sqrt(2.0 * math.log(2.0))


@dataclass
class UnseenConfig:
    """One case of the unseen family; ``None`` fields are drawn from the seed (:meth:`resolved`)."""

    seed: int = 0
    mesh_kind: str = "tet"
    input_kind: str = "probability"
    scar_kind: str = "usual"
    rule_target: str = "scar"            # nsd/fwhm: "scar" (border zone + core, the default) or "core"
    target_nodes: int = 12000            # of the tet lattice (the surface keeps its two wall layers)
    pixel_mm: float | None = None        # [1.2, 2.0]
    slice_gap_mm: float | None = None    # [8, 16]
    slab_mm: float | None = None         # [5, min(12, gap)]: the slice profile's FWHM
    psf_fwhm_px: float | None = None     # [1, 2] in-plane FWHM in pixels
    noise_sd: float | None = None        # one of 10, 25, 45 (scanner units; healthy 80-150, core 800-1100)
    wall_offset_px: float | None = None  # [0.5, 1.5] pixels
    healthy: float | None = None
    blood: float | None = None
    core: float | None = None
    profile: str = "gaussian"            # slice profile; "box" (the slab, as the library assumes) for ablations
    label_mesh_mm: float = 2.3           # voxel edge of the mesh built from the finer label map
    fine_mm: float = 0.5
    fov_margin_mm: float = 10.0

    def resolved(self) -> "UnseenConfig":
        """A copy with every drawn value filled in (each from its own stream of the seed)."""
        rng = np.random.default_rng([self.seed, 2026])
        draws = {
            "pixel_mm": float(rng.uniform(1.2, 2.0)), "slice_gap_mm": float(rng.uniform(8.0, 16.0)),
            "slab_unit": float(rng.uniform()), "psf_fwhm_px": float(rng.uniform(1.0, 2.0)),
            "noise_sd": float(rng.choice([10.0, 25.0, 45.0])), "wall_offset_px": float(rng.uniform(0.5, 1.5)),
            "healthy": float(rng.uniform(80.0, 150.0)), "blood": float(rng.uniform(300.0, 500.0)),
            "core": float(rng.uniform(800.0, 1100.0))}
        gap = self.slice_gap_mm if self.slice_gap_mm is not None else draws["slice_gap_mm"]
        slab = self.slab_mm if self.slab_mm is not None else 5.0 + draws["slab_unit"] * (min(12.0, gap) - 5.0)
        filled = {name: getattr(self, name) if getattr(self, name) is not None else draws[name]
                  for name in ("pixel_mm", "psf_fwhm_px", "noise_sd", "wall_offset_px", "healthy", "blood", "core")}
        return dataclasses.replace(self, slice_gap_mm=gap, slab_mm=slab, **filled)

    def validate(self) -> None:
        for name, kinds in (("mesh_kind", MESH_KINDS), ("input_kind", INPUT_KINDS), ("scar_kind", SCAR_KINDS),
                            ("rule_target", ("scar", "core")), ("profile", ("gaussian", "box"))):
            if getattr(self, name) not in kinds:
                raise CardioScarError(f"unseen family {name}={getattr(self, name)!r}: use one of {', '.join(kinds)}")


@dataclass
class UnseenPhantom:
    """What the generator gives a benchmark case."""

    config: UnseenConfig
    geometry: LVGeometry
    scar: ScarModel
    mesh: vtk.vtkDataSet                 # LPS; tets, triangles or hexahedra
    points_lps: np.ndarray
    truth_fraction: np.ndarray           # (N,) true scar fraction at the nodes
    signal: sitk.Image                   # the LGE magnitude stack (Rician noise)
    labels: sitk.Image                   # the user's segmentation: 0 background, 1 blood, 2 myocardium (3 scar: ``labels`` input)
    slices: list[SliceLayer]             # training targets in [0, 1], NaN outside the myocardium
    acquired: list[SliceLayer]           # the same values with 0 outside the myocardium (the yardsticks')
    info: dict
    #: the rule's record as ``prepare --scar-rule`` writes it into the ``.npz`` (empty for a
    #: probability map): the fast preset's shape prior ``auto`` reads it to leave a rule's grades
    #: to the network, so a benchmark that trains these slices must hand it on
    scar_rule: str = ""

    @property
    def truth(self) -> np.ndarray:
        return (self.truth_fraction >= 0.5).astype(np.float64)


# --------------------------------------------------------------------------- scar

def _draw_unseen_scar(config: UnseenConfig, geometry: LVGeometry, rng: np.random.Generator) -> ScarModel:
    """``usual``: the segmented family's infarcts; ``faint``: one small infarct of peak 0.6-0.75;
    ``none``: every peak 0 (a scar-free heart)."""
    if config.scar_kind == "usual":
        return _draw_scar(SegmentedConfig(seed=config.seed, n_infarcts=int(rng.integers(1, 3))), geometry, rng)[0]
    model = _draw_scar(SegmentedConfig(seed=config.seed, n_infarcts=1, scar_fraction_range=(0.02, 0.06)),
                       geometry, rng)[0]
    peak = float(rng.uniform(0.6, 0.75)) if config.scar_kind == "faint" else 0.0
    return dataclasses.replace(model, peaks=[peak])


# --------------------------------------------------------------------------- meshes

def _lattice(config: UnseenConfig, geometry: LVGeometry, rng: np.random.Generator):
    """The (t, u, theta) lattice pushed off the image's wall by up to ``wall_offset_px`` pixels
    (a smooth field, different at the endo- and epicardium), as the segmented family does."""
    points, wall, corners = lattice_cubes(geometry, config.target_nodes)
    endo, epi = _smooth_offset(rng, wall[:, 1], wall[:, 2]), _smooth_offset(rng, wall[:, 1], wall[:, 2])
    displacement = config.wall_offset_px * config.pixel_mm * ((1.0 - wall[:, 0]) * endo + wall[:, 0] * epi)
    points = points * (1.0 + displacement / np.linalg.norm(points, axis=1))[:, None]
    return points, wall, corners


def _surface_mesh(points_local: np.ndarray, wall: np.ndarray, corners: np.ndarray,
                  geometry: LVGeometry) -> vtk.vtkPolyData:
    """Endocardial and epicardial triangles of the lattice (the faces of the cubes at t = 0 and
    t = 1), renumbered to the nodes they use: no node of the wall's interior, none of the base
    cap between them."""
    # corner = dt + 2 du + 4 dtheta: the t = 0 face has corners 0, 2, 6, 4; the t = 1 face 1, 3, 7, 5
    first = np.isclose(wall[corners[:, 0], 0], 0.0)
    last = np.isclose(wall[corners[:, 1], 0], 1.0)
    quads = np.concatenate([corners[first][:, [0, 2, 6, 4]], corners[last][:, [1, 3, 7, 5]]])
    triangles = np.concatenate([quads[:, [0, 1, 2]], quads[:, [0, 2, 3]]])
    triangles = triangles[(triangles[:, 0] != triangles[:, 1]) & (triangles[:, 1] != triangles[:, 2])
                          & (triangles[:, 0] != triangles[:, 2])]
    used, inverse = np.unique(triangles, return_inverse=True)
    polydata = vtk.vtkPolyData()
    vtk_points = vtk.vtkPoints()
    vtk_points.SetData(numpy_support.numpy_to_vtk(np.ascontiguousarray(geometry.to_lps(points_local[used])), deep=True))
    polydata.SetPoints(vtk_points)
    legacy = np.hstack([np.full((len(triangles), 1), 3), inverse.reshape(-1, 3)]).ravel().astype(np.int64)
    cells = vtk.vtkCellArray()
    cells.ImportLegacyFormat(numpy_support.numpy_to_vtkIdTypeArray(legacy, deep=True))
    polydata.SetPolys(cells)
    return polydata


def fine_label_map(geometry: LVGeometry, pixel_mm: float = 1.0, slice_mm: float = 2.5,
                   margin_mm: float = 6.0) -> sitk.Image:
    """A finer short-axis label stack of the image's heart (0 background, 1 blood, 2 myocardium),
    sampled at voxel centres, in the image's orientation."""
    half = geometry.a_epi + margin_mm
    n_xy = int(math.ceil(2 * half / pixel_mm))
    zs = np.arange(-geometry.c_epi - slice_mm, slice_mm, slice_mm)
    corner = np.array([-(n_xy - 1) * pixel_mm / 2, -(n_xy - 1) * pixel_mm / 2, zs[0]])
    k, j, i = np.meshgrid(np.arange(len(zs)), np.arange(n_xy), np.arange(n_xy), indexing="ij")
    local = np.stack([corner[0] + i * pixel_mm, corner[1] + j * pixel_mm, corner[2] + k * slice_mm], -1).reshape(-1, 3)
    labels = _tissue_labels(geometry, local).reshape(k.shape)
    image = sitk.GetImageFromArray(labels.astype(np.uint8))
    image.SetSpacing((pixel_mm, pixel_mm, slice_mm))
    image.SetDirection(tuple(float(v) for v in geometry.rotation.ravel()))
    image.SetOrigin(tuple(float(v) for v in geometry.to_lps(corner[None])[0]))
    return image


def _tissue_labels(geometry: LVGeometry, local: np.ndarray) -> np.ndarray:
    cavity = ((local[:, 0] ** 2 + local[:, 1] ** 2) / geometry.a_endo ** 2 + local[:, 2] ** 2 / geometry.c_endo ** 2
              < 1.0) & (local[:, 2] <= 0.0)
    return np.where(geometry.myocardium_local(local), MYOCARDIUM, np.where(cavity, BLOOD, BACKGROUND))


def _build_mesh(config: UnseenConfig, geometry: LVGeometry, rng: np.random.Generator) -> vtk.vtkDataSet:
    if config.mesh_kind == "labels":
        return myocardium_mesh_from_labels(fine_label_map(geometry), labels=(MYOCARDIUM,),
                                           spacing_mm=config.label_mesh_mm).dataset
    points, wall, corners = _lattice(config, geometry, rng)
    if config.mesh_kind == "surface":
        return _surface_mesh(points, wall, corners, geometry)
    return _to_vtk_grid(geometry.to_lps(points), tets_from_cubes(points, corners))


# --------------------------------------------------------------------------- acquisition

def slice_profile(slab_mm: float, step_mm: float = 1.0, reach_sigmas: float = 2.5,
                  shape: str = "gaussian") -> tuple[np.ndarray, np.ndarray]:
    """Offsets (mm) from the slice centre and their normalised Gaussian weights: FWHM = ``slab_mm``,
    sampled every ``step_mm`` out to ``reach_sigmas`` SDs (past the nominal slab's edges).
    ``shape="box"``: equal weights at ``step_mm`` midpoints inside the slab (the library's model)."""
    if shape == "box":
        n = max(1, math.ceil(slab_mm / step_mm))
        return ((np.arange(n) + 0.5) / n - 0.5) * slab_mm, np.full(n, 1.0 / n)
    sigma = slab_mm / FWHM_PER_SIGMA
    n = int(math.ceil(reach_sigmas * sigma / step_mm))
    offsets = np.arange(-n, n + 1) * step_mm
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    return offsets, weights / weights.sum()


def _acquire(config: UnseenConfig, geometry: LVGeometry, scar: ScarModel, rng: np.random.Generator):
    """(LGE magnitude stack, label map, z centres, scar fraction of each pixel's myocardium): tissue
    signal on the fine grid, through-plane Gaussian profile, in-plane Gaussian PSF, sampled at the
    pixel centres; Rician noise on top. The label map thresholds the same blurred tissue indicators
    at 0.5; the scar fraction is the equally blurred scar over the equally blurred myocardium (0
    where a pixel sees none), what an expert's drawn label map thresholds."""
    corner, z_centres, n_xy, _ = _stack_geometry(config, geometry)
    sub = max(1, math.ceil(config.pixel_mm / config.fine_mm))
    step = config.pixel_mm / sub
    n_fine = (n_xy - 1) * sub + 1
    fine = np.arange(n_fine) * step
    gy, gx = np.meshgrid(corner[1] + fine, corner[0] + fine, indexing="ij")
    in_plane = np.stack([gx.ravel(), gy.ravel()], axis=1)
    offsets, weights = slice_profile(config.slab_mm, shape=config.profile)
    sigma_fine = config.psf_fwhm_px * config.pixel_mm / FWHM_PER_SIGMA / step
    signals, labels, scar_fractions = [], [], []
    for z in z_centres:
        signal = np.zeros(n_fine * n_fine)
        myo = np.zeros(n_fine * n_fine)
        blood = np.zeros(n_fine * n_fine)
        scarred = np.zeros(n_fine * n_fine)
        for dz, w in zip(offsets, weights):
            local = np.column_stack([in_plane, np.full(len(in_plane), z + dz)])
            tissue = _tissue_labels(geometry, local)
            inside = tissue == MYOCARDIUM
            fraction = scar.fraction(local[inside])
            layer = np.where(tissue == BLOOD, config.blood, 0.0)
            layer[inside] = config.healthy + fraction * (config.core - config.healthy)
            signal += w * layer
            myo += w * inside
            blood += w * (tissue == BLOOD)
            scarred[inside] += w * fraction
        at_pixels = []
        for field in (signal, myo, blood, scarred):
            blurred = field.reshape(n_fine, n_fine)
            if sigma_fine > 0:  # 0: no in-plane PSF (an ablation)
                blurred = ndimage.gaussian_filter(blurred, sigma_fine, mode="constant", truncate=3.0)
            at_pixels.append(blurred[::sub, ::sub])
        signal_px, myo_px, blood_px, scar_px = at_pixels
        signals.append(add_rician_noise(signal_px, config.noise_sd, rng))
        labels.append(np.where(myo_px >= 0.5, MYOCARDIUM, np.where(blood_px >= 0.5, BLOOD, BACKGROUND)))
        scar_fractions.append(np.divide(scar_px, myo_px, out=np.zeros_like(scar_px), where=myo_px > 1e-9))
    images = []
    for volume, pixel_type in ((signals, np.float32), (labels, np.uint8)):
        image = sitk.GetImageFromArray(np.stack(volume).astype(pixel_type))
        image.SetSpacing((config.pixel_mm, config.pixel_mm, config.slice_gap_mm))
        image.SetDirection(tuple(float(v) for v in geometry.rotation.ravel()))
        image.SetOrigin(tuple(float(v) for v in geometry.to_lps(corner[None, :])[0]))
        images.append(image)
    return images[0], images[1], [float(z) for z in z_centres], np.stack(scar_fractions)


def drawn_label_map(labels: sitk.Image, scar_fraction: np.ndarray) -> sitk.Image:
    """The expert's label map: ``labels`` with 3 (scar) on its myocardium pixels whose myocardium
    holds a scar fraction >= 0.5 (``scar_fraction``, (slices, rows, columns) as SimpleITK orders)."""
    values = sitk.GetArrayFromImage(labels)
    drawn = sitk.GetImageFromArray(np.where((values == MYOCARDIUM) & (scar_fraction >= 0.5), SCAR, values)
                                   .astype(np.uint8))
    drawn.CopyInformation(labels)
    return drawn


def user_targets(config: UnseenConfig, signal: sitk.Image,
                 labels: sitk.Image) -> tuple[list[SliceLayer], list[SliceLayer], str]:
    """(training targets, acquired values, the rule's record) by the library's own paths, as
    ``cardioscar prepare`` makes them: ``--normalize-intensities --myocardium-mask labels
    --myocardium-labels 2`` (no record), ``--scar-rule nsd|fwhm --myocardium-mask labels
    --myocardium-labels 2`` (default thresholds, ``--scar-target`` from ``rule_target``), or for
    ``labels`` the drawn map alone as ``--image labels --scar-labels 3 --myocardium-labels 2,3``
    (``signal`` unused; a map without scar trains a scar-free heart, with prepare's warning)."""
    half = config.slab_mm / 2.0
    if config.input_kind == "labels":
        return (*drawn_label_targets(labels, half), "")
    image = slices_from_image(signal, half_thickness=half, label="lge")
    masks = [layer.values == MYOCARDIUM for layer in slices_from_image(labels, half_thickness=half, label="labels")]
    if config.input_kind == "probability":
        slices, _ = restrict_to_myocardium(slice_targets(image, normalize=True), masks, "labels 2", scar_map=False)
        record = ""
    else:
        rule = apply_rule(config.input_kind, [layer.values for layer in image], masks)
        targets = rule.scar_targets() if config.rule_target == "scar" else rule.core_targets()
        slices = [dataclasses.replace(layer, values=v) for layer, v in zip(image, targets)]
        record = rule_record_json(rule, config.rule_target)
    return slices, _acquired(slices), record


def _acquired(slices: list[SliceLayer]) -> list[SliceLayer]:
    """The yardsticks' values: the targets with 0 outside the myocardium."""
    return [dataclasses.replace(layer, values=np.nan_to_num(layer.values, nan=0.0)) for layer in slices]


def drawn_label_targets(labels: sitk.Image, half_thickness: float) -> tuple[list[SliceLayer], list[SliceLayer]]:
    """(training targets, acquired values) of a drawn label map, by the steps ``cardioscar prepare
    --scar-labels 3 --myocardium-labels 2,3`` takes (``logic._load_slices``): 0/1 targets from the
    scar label, the scar-label checks and the scar-free warning, NaN outside labels 2 and 3."""
    layers = slices_from_image(labels, half_thickness=half_thickness, label="labels")
    targets = slice_targets(layers, scar_labels=[SCAR], require_scar=False)
    check_scar_labels(layers, [SCAR])
    warn_scar_free(layers, [SCAR], [MYOCARDIUM, SCAR])
    masks = label_masks(layers, [MYOCARDIUM, SCAR])
    slices, _ = restrict_to_myocardium(targets, masks, f"labels {MYOCARDIUM},{SCAR}")
    return slices, _acquired(slices)


def make_unseen_phantom(config: UnseenConfig) -> UnseenPhantom:
    """Build one case of the unseen family (see the module docstring)."""
    config = config.resolved()
    config.validate()
    rng = np.random.default_rng([config.seed, 3])
    geometry = _draw_geometry(SegmentedConfig(seed=config.seed), rng)
    scar = _draw_unseen_scar(config, geometry, rng)
    mesh = _build_mesh(config, geometry, rng)
    points = numpy_support.vtk_to_numpy(mesh.GetPoints().GetData()).astype(np.float64)
    truth_fraction = scar.fraction(geometry.to_local(points))
    signal, labels, z_centres, scar_fraction = _acquire(config, geometry, scar, np.random.default_rng([config.seed, 17]))
    if config.input_kind == "labels":
        labels = drawn_label_map(labels, scar_fraction)
    slices, acquired, record = user_targets(config, signal, labels)
    info = {"family": "unseen", "seed": config.seed, "mesh": config.mesh_kind, "input": config.input_kind + ("" if config.rule_target == "scar" else "_core"),
            "scar": config.scar_kind, "pixel_mm": round(config.pixel_mm, 3), "gap_mm": round(config.slice_gap_mm, 2),
            "slab_mm": round(config.slab_mm, 2), "psf_fwhm_px": round(config.psf_fwhm_px, 2),
            "noise_sd": config.noise_sd, "snr_scar_vs_healthy": round((config.core - config.healthy) / config.noise_sd, 1),
            "wall_offset_px": round(config.wall_offset_px, 2), "n_slices": len(z_centres),
            "infarct_peaks": [round(p, 3) for p in scar.peaks]}
    return UnseenPhantom(config, geometry, scar, mesh, points, truth_fraction, signal, labels, slices, acquired, info,
                         record)
