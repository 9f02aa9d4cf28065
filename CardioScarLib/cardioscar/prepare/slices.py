"""Acquired 2D slices in LPS millimetres.

A :class:`SliceLayer` is one acquired image plane: a 2D array of pixel values plus the geometry
that places pixel ``(i, j)`` in the patient (LPS) frame. Everything downstream (targets, the node
-> group mapping, the phantom, the Slicer panel) only sees SliceLayers, so the three ways of getting
slices (a SimpleITK image, a numpy volume with its IJK->LPS matrix, a VTK grid layer file) share one
geometry convention:

* pixel centres sit at integer indices (as in ITK and Slicer);
* pixel ``(i, j)`` covers ``[i-0.5, i+0.5) x [j-0.5, j+0.5)`` in index units, times the slab
  ``-half_thickness <= d < half_thickness`` mm along the slice normal (see :meth:`SliceLayer.in_slab`);
* ``values[j, i]``: rows follow ``axis_j``, columns follow ``axis_i``;
* ``NaN`` in ``values`` marks a pixel with no data (a hole in a grid layer's lattice); such pixels
  never become groups.
"""

from __future__ import annotations

import logging
import numbers
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import SimpleITK as sitk
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from ..errors import CardioScarError
from ..io.imageio import read_dicom_planes, read_image, recorded_half_thickness
from ..io.meshio import legacy_header, read_vtk_dataset, set_space_field, space_from_dataset, write_dataset

logger = logging.getLogger(__name__)

GRID_SUFFIXES = (".vtk", ".vti", ".vts", ".vtr", ".vtu", ".vtp")
_AXIS_NUMBER = {"x": 0, "y": 1, "z": 2}
_INDEX_NAME = ("i", "j", "k")
# In-plane (column, row) index axes for each slice axis: the two remaining axes, in order.
_IN_PLANE = {"x": (1, 2), "y": (0, 2), "z": (0, 1)}
_RAS_FROM_LPS = np.array([-1.0, -1.0, 1.0])


@dataclass(frozen=True, eq=False)
class SliceLayer:
    """One acquired 2D slice placed in LPS millimetres (see the module docstring for conventions)."""

    values: np.ndarray
    origin: np.ndarray
    axis_i: np.ndarray
    axis_j: np.ndarray
    spacing: tuple[float, float]
    half_thickness: float
    label: str = field(default="slice")
    #: Distance (mm) between neighbouring planes of the stack the slice was cut from, None when not
    #: known (a single plane, a grid layer): the slab check compares the half-width with it even
    #: when the neighbours themselves are not chosen (:func:`cardioscar.prepare.mapping.warn_about_slab_widths`).
    stack_spacing: float | None = None
    #: The pixels a label map drew (any non-zero label: blood pool, myocardium, scar), kept by
    #: :func:`cardioscar.prepare.targets.slice_targets` when it turns labels into 0/1 targets and
    #: the slice shows a label besides the scar; None otherwise. With no myocardium given, the
    #: mapping reads the mesh's cut against it (:func:`cardioscar.prepare.mapping.mesh_on_the_drawn_heart`):
    #: the heart as drawn travels with the slice through every face, no extra argument.
    drawn: np.ndarray | None = None

    def __post_init__(self) -> None:
        values = np.array(self.values, dtype=np.float64)
        if values.ndim != 2 or values.size == 0:
            raise CardioScarError(f"Slice '{self.label}' must hold a non-empty 2D array, got shape {values.shape}")
        if self.drawn is not None:
            drawn = np.array(self.drawn, dtype=bool)
            if drawn.shape != values.shape:
                raise CardioScarError(f"Slice '{self.label}': the drawn heart's shape {drawn.shape} is not the "
                                      f"values' {values.shape}")
            drawn.setflags(write=False)
            object.__setattr__(self, "drawn", drawn)
        axis_i = _unit(self.axis_i, f"slice '{self.label}' axis_i")
        axis_j = _unit(self.axis_j, f"slice '{self.label}' axis_j")
        if np.linalg.norm(np.cross(axis_i, axis_j)) < 1e-6:
            raise CardioScarError(f"Slice '{self.label}' has parallel in-plane axes")
        spacing = (float(self.spacing[0]), float(self.spacing[1]))
        if not all(np.isfinite(spacing)) or min(spacing) <= 0:
            raise CardioScarError(f"Slice '{self.label}' pixel spacing must be > 0 mm, got {spacing}")
        if not np.isfinite(self.half_thickness) or self.half_thickness <= 0:
            raise CardioScarError(
                f"Slice thickness padding (half-thickness) must be > 0 mm, got {self.half_thickness}")
        origin = np.asarray(self.origin, dtype=np.float64).reshape(3)
        if not np.all(np.isfinite(origin)):
            raise CardioScarError(f"Slice '{self.label}' origin is not finite: {origin}")
        values.setflags(write=False)
        for name, value in (("values", values), ("origin", origin), ("axis_i", axis_i),
                            ("axis_j", axis_j), ("spacing", spacing),
                            ("half_thickness", float(self.half_thickness))):
            object.__setattr__(self, name, value)

    @property
    def normal(self) -> np.ndarray:
        """Unit normal ``cross(axis_i, axis_j)``; the slab extends ``half_thickness`` along it both ways."""
        n = np.cross(self.axis_i, self.axis_j)
        return n / np.linalg.norm(n)

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_rows, n_cols)`` = ``values.shape``."""
        return self.values.shape  # type: ignore[return-value]

    def index_to_lps(self) -> np.ndarray:
        """4x4 matrix taking homogeneous ``(i, j, d, 1)`` (d in mm along the normal) to LPS."""
        matrix = np.eye(4)
        matrix[:3, 0] = self.axis_i * self.spacing[0]
        matrix[:3, 1] = self.axis_j * self.spacing[1]
        matrix[:3, 2] = self.normal
        matrix[:3, 3] = self.origin
        return matrix

    def lps_to_index(self, points_lps: np.ndarray) -> np.ndarray:
        """(N, 3) continuous ``(i, j, d)`` of LPS points; exact also for non-orthogonal pixel axes."""
        inverse = np.linalg.inv(self.index_to_lps())
        pts = np.asarray(points_lps, dtype=np.float64).reshape(-1, 3)
        return pts @ inverse[:3, :3].T + inverse[:3, 3]

    def in_slab(self, distance: np.ndarray) -> np.ndarray:
        """Which signed distances along the normal (mm, as ``lps_to_index``'s third column) lie in
        the slab: half-open like the pixel square, so that where two slabs of a stack touch (10 mm
        apart, 5 mm half-width) a node on the shared face is in one slice, not in both with two
        targets."""
        return (distance >= -self.half_thickness) & (distance < self.half_thickness)

    def pixel_centres_lps(self) -> np.ndarray:
        """(n_rows, n_cols, 3) LPS centre of every pixel, indexed ``[j, i]``."""
        rows, cols = self.shape
        jj, ii = np.meshgrid(np.arange(rows), np.arange(cols), indexing="ij")
        return (self.origin + ii[..., None] * (self.axis_i * self.spacing[0])
                + jj[..., None] * (self.axis_j * self.spacing[1]))

    def footprint_corners_lps(self) -> np.ndarray:
        """(8, 3) LPS corners of the box covered by all pixels of the slice and its slab."""
        rows, cols = self.shape
        corners = np.array([[i, j, d] for i in (-0.5, cols - 0.5) for j in (-0.5, rows - 0.5)
                            for d in (-self.half_thickness, self.half_thickness)])
        return corners @ self.index_to_lps()[:3, :3].T + self.origin


def _unit(vector: Sequence[float], what: str) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64).reshape(3)
    norm = np.linalg.norm(v)
    if not np.isfinite(norm) or norm < 1e-12:
        raise CardioScarError(f"{what} is not a valid direction: {v}")
    return v / norm


def _as_index(value: object, given: object) -> int:
    """One slice index as an int; a float, a bool or a nested array is refused, not truncated
    (``int(2.7)`` would cut slice 2 where the caller meant something else)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise CardioScarError(f"slice indices must be whole numbers such as [2, 5, 8], got {value!r} in {given!r}")
    return int(value)


def _checked_indices(slice_indices: Iterable[int] | None, count: int, axis: str) -> list[int]:
    if slice_indices is None:
        return list(range(count))
    if isinstance(slice_indices, str):
        # iterated, "2,5" would be the characters '2', ',' and '5'
        raise CardioScarError(f"slice indices must be a list of whole numbers such as [2, 5, 8], got the text "
                              f"{slice_indices!r} (cardioscar.prepare.targets.parse_slice_indices reads that form)")
    indices = [_as_index(k, slice_indices) for k in slice_indices]
    if not indices:
        raise CardioScarError(f"No slice index given for axis {axis}: valid 0-{count - 1}")
    seen: set[int] = set()
    for k in indices:
        if not 0 <= k < count:
            raise CardioScarError(f"slice index {k} is out of range for axis {axis}: valid 0-{count - 1}")
        if k in seen:
            raise CardioScarError(f"slice index {k} is given twice for axis {axis}")
        seen.add(k)
    return indices


def slices_from_array(volume_kji: np.ndarray, ijk_to_lps: np.ndarray, slice_axis: str = "z",
                      slice_indices: Iterable[int] | None = None, half_thickness: float = 5.0,
                      label: str = "image") -> list[SliceLayer]:
    """Cut a volume indexed ``[k, j, i]`` into SliceLayers along one of its index axes.

    ``slice_axis`` names the image's index axes: ``x`` = i, ``y`` = j, ``z`` = k. The slice's own
    column/row axes are the two remaining index axes in increasing order:
    ``z``: (i, j) -> ``values[j, i] = volume[k0, j, i]``;
    ``y``: (i, k) -> ``values[k, i] = volume[k, j0, i]``;
    ``x``: (j, k) -> ``values[k, j] = volume[k, j, i0]``.
    ``ijk_to_lps`` maps homogeneous ``(i, j, k, 1)`` to LPS mm (direction x spacing | origin), so
    oblique and anisotropic volumes keep their exact geometry.
    """
    layers = _cut_volume(volume_kji, ijk_to_lps, slice_axis, slice_indices, half_thickness, label)
    _log_slices(label, layers, str(slice_axis).lower())
    return layers


#: Longest span (mm) of an image of the heart along one index axis; a torso is about half of it.
MAX_VOLUME_SPAN_MM = 1000.0


def _refuse_metre_long_volume(size_ijk: tuple, spacing: np.ndarray, label: str) -> None:
    """Refuse a volume that spans over :data:`MAX_VOLUME_SPAN_MM` along an index axis.

    Why (round 17): an array given to the Python API in nibabel's order ``[i, j, k]`` (with its
    ``affine``, as ``slices_from_array``'s ``[k, j, i]``) made EMIDEC P001's 256 columns its
    slices, 10 mm apart: a stack 2.56 m long of slices 10 pixels wide, refused further on as "none
    of the scar pixels reaches a mesh node ... same patient, exam and frame", blaming the mesh."""
    spans = np.asarray(size_ijk, dtype=np.float64) * spacing
    if spans.max() > MAX_VOLUME_SPAN_MM:
        axis = int(np.argmax(spans))
        raise CardioScarError(
            f"{label}: the volume spans {spans[axis]:.0f} mm along {'ijk'[axis]} ({size_ijk[axis]} voxels of "
            f"{spacing[axis]:.3g} mm; sizes i, j, k {tuple(int(n) for n in size_ijk)}), more than any image of a heart: "
            "is the array indexed [i, j, k] (nibabel's order)? Give it as [k, j, i] (volume.transpose(2, 1, 0)), or "
            "fix the spacing")


def _cut_volume(volume_kji: np.ndarray, ijk_to_lps: np.ndarray, slice_axis: str,
                slice_indices: Iterable[int] | None, half_thickness: float, label: str) -> list[SliceLayer]:
    """:func:`slices_from_array` without its log line."""
    volume = np.asarray(volume_kji)
    if volume.ndim != 3:
        raise CardioScarError(f"{label}: expected a 3D volume indexed [k, j, i], got shape {volume.shape}")
    matrix = np.asarray(ijk_to_lps, dtype=np.float64)
    if matrix.shape not in ((4, 4), (3, 4)) or not np.all(np.isfinite(matrix)):
        raise CardioScarError(f"{label}: the IJK->LPS matrix must be a finite 4x4 matrix, got shape {matrix.shape}")
    axis = str(slice_axis).lower()
    if axis not in _AXIS_NUMBER:
        raise CardioScarError(f"slice axis must be x, y or z, got '{slice_axis}'")
    normal_axis = _AXIS_NUMBER[axis]
    col_axis, row_axis = _IN_PLANE[axis]
    size_ijk = volume.shape[::-1]
    columns = matrix[:3, :3]
    spacing = np.linalg.norm(columns, axis=0)
    if np.any(spacing <= 0):
        raise CardioScarError(f"{label}: the IJK->LPS matrix has a zero-length axis (spacing {spacing})")
    _refuse_metre_long_volume(size_ijk, spacing, label)
    indices = _checked_indices(slice_indices, size_ijk[normal_axis], axis)
    stack_spacing = float(spacing[normal_axis]) if size_ijk[normal_axis] >= 2 else None

    layers = []
    for index in indices:
        plane = np.take(volume, index, axis=2 - normal_axis)  # (rows, cols) = (row_axis, col_axis)
        values = np.asarray(plane, dtype=np.float64)
        if not np.all(np.isfinite(values)):
            raise CardioScarError(f"{label}: slice {_INDEX_NAME[normal_axis]}={index} contains NaN or infinite values")
        ijk = np.zeros(3)
        ijk[normal_axis] = index
        layers.append(SliceLayer(
            values=values,
            origin=columns @ ijk + matrix[:3, 3],
            axis_i=columns[:, col_axis],
            axis_j=columns[:, row_axis],
            spacing=(float(spacing[col_axis]), float(spacing[row_axis])),
            half_thickness=half_thickness,
            label=f"{label} {_INDEX_NAME[normal_axis]}={index}",
            stack_spacing=stack_spacing,
        ))
    return layers


def _log_slices(label: str, layers: list[SliceLayer], axis: str) -> None:
    logger.info("%s: %d slice(s) along %s, %dx%d pixels", label, len(layers), axis,
                layers[0].shape[1], layers[0].shape[0])


def per_slice_text(layers: Sequence[SliceLayer], counts: Sequence[str]) -> str:
    """``"P005.nii.gz k=0: 12, k=1: 9"``: a per-slice figure named by its slice, the file said once
    when every slice is of one file. Why: a bare list of numbers in a log line leaves the reader to
    guess which slice each is, and what it counts."""
    names = [layer.label for layer in layers]
    files = {name.rpartition(" ")[0] for name in names}
    if len(files) == 1 and "" not in files:  # one file: its name once, then the slices' own index
        names = [names[0]] + [name.rpartition(" ")[2] for name in names[1:]]
    return ", ".join(f"{name}: {count}" for name, count in zip(names, counts))


def ijk_to_lps_matrix(image: sitk.Image) -> np.ndarray:
    """4x4 IJK->LPS matrix of a 3D SimpleITK image (direction x spacing | origin)."""
    direction = np.asarray(image.GetDirection(), dtype=np.float64).reshape(3, 3)
    matrix = np.eye(4)
    matrix[:3, :3] = direction @ np.diag(image.GetSpacing())
    matrix[:3, 3] = image.GetOrigin()
    return matrix


def slices_from_image(image: sitk.Image, slice_axis: str = "z", slice_indices: Iterable[int] | None = None,
                      half_thickness: float = 5.0, label: str = "image") -> list[SliceLayer]:
    """SliceLayers from a 3D SimpleITK image (already LPS); see :func:`slices_from_array`."""
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise CardioScarError(f"{label}: expected a 3D single-component image, got {image.GetDimension()}D "
                              f"with {image.GetNumberOfComponentsPerPixel()} component(s)")
    return slices_from_array(sitk.GetArrayViewFromImage(image), ijk_to_lps_matrix(image), slice_axis,
                             slice_indices, half_thickness, label)


#: ``half_thickness`` value that takes each DICOM file's own slice thickness (half of it).
RECORDED = "auto"


def parse_half_thickness(text: str) -> float | str:
    """A slab half-width written as text (a command line, a batch option): :data:`RECORDED` for
    ``auto`` in any case, else the millimetres; ``ValueError`` for anything else. The caller
    checks the range, in its own words."""
    return RECORDED if text.strip().lower() == RECORDED else float(text)


def slices_from_path(path: str | Path, slice_axis: str = "z", slice_indices: Iterable[int] | None = None,
                     half_thickness: float | str = 5.0) -> list[SliceLayer]:
    """SliceLayers of an image file or a DICOM series folder (see :func:`slices_from_array`).

    Along z, a DICOM series is read file by file (:func:`cardioscar.io.imageio.read_dicom_planes`),
    so every slice sits where its file says it was acquired even when the stack misses a slice or
    is unevenly spaced; across the slices (x, y) the series must make one regular volume.
    ``half_thickness="auto"`` (:data:`RECORDED`) gives each slice half the thickness its DICOM
    file records, along z only (across the slices a file's thickness means nothing).
    """
    source = Path(path)
    axis = str(slice_axis).lower()
    recorded = half_thickness == RECORDED
    if recorded and axis != "z":
        raise CardioScarError(f"--slice-thickness-padding auto takes each DICOM file's slice thickness, which is "
                              f"along z; give the width in mm to cut {source.name} along {axis}")

    def width(image: sitk.Image, name: str | Path) -> float:
        return recorded_half_thickness(image, name) if recorded else float(half_thickness)

    if not (source.is_dir() and axis == "z"):
        image = read_image(source)
        layers = slices_from_image(image, slice_axis, slice_indices, width(image, source), source.name)
    else:
        planes = read_dicom_planes(source)
        if len(planes) == 1:  # one file: a single slice or a multi-frame volume
            layers = slices_from_image(planes[0], "z", slice_indices, width(planes[0], source), source.name)
        else:
            layers = slices_from_planes(
                [(sitk.GetArrayViewFromImage(plane)[0], ijk_to_lps_matrix(plane)) for plane in planes], slice_indices,
                [width(plane, f"{source.name} k={k}") for k, plane in enumerate(planes)], source.name)
    if recorded:
        _log_recorded_widths(source, layers)
    return layers


def _log_recorded_widths(source: Path, layers: list[SliceLayer]) -> None:
    """Log the slab half-widths that ``--slice-thickness-padding auto`` read.

    Why: 'auto' took each file's DICOM SliceThickness silently, so a user could not see which slab
    their pixels constrained (biv-me's 6 mm slices 17.7 mm apart: 3 mm either side of each plane),
    nor notice a series whose thickness was not the one they meant."""
    if layers:
        widths = ", ".join(f"{value:g}" for value in sorted({round(layer.half_thickness, 3) for layer in layers}))
        logger.info("%s: slab half-width %s mm (--slice-thickness-padding auto: half the slice thickness its DICOM "
                    "file(s) record)", source.name, widths)


def slices_from_paths(paths: Sequence[str | Path], slice_axis: str = "z", slice_indices: Iterable[int] | None = None,
                      half_thickness: float | str = 5.0) -> list[SliceLayer]:
    """SliceLayers of several images (files or DICOM series folders, see :func:`slices_from_path`),
    in the order given; ``slice_indices`` count the slices of all of them, the first image's first.

    Why: scanners often store every breath-hold slice of a short-axis stack, and every long-axis
    view, as a series of its own, and planes in several orientations constrain the scar between
    the short-axis slices far better than the stack alone.
    """
    sources = [Path(path) for path in paths]
    if not sources:
        raise CardioScarError("No image given: pass one or more image files or DICOM series folders")
    if len(sources) == 1:
        return slices_from_path(sources[0], slice_axis, slice_indices, half_thickness)
    return pooled_slices([slices_from_path(source, slice_axis, None, half_thickness) for source in sources],
                         slice_axis, slice_indices)


def pooled_slices(per_image: Sequence[Sequence[SliceLayer]], slice_axis: str,
                  slice_indices: Iterable[int] | None) -> list[SliceLayer]:
    """The chosen slices among all slices of several images, counted in the order given (the
    first image's slices first); an index out of range names the valid range over all of them."""
    layers = [layer for image in per_image for layer in image]
    chosen = _checked_indices(slice_indices, len(layers), f"{slice_axis} of the {len(per_image)} images together")
    logger.info("%d of the %d slices of %d images chosen", len(chosen), len(layers), len(per_image))
    picked = [layers[k] for k in chosen]
    _warn_about_repeated_planes(picked)
    return picked


#: Slices whose pixel grids coincide within this distance (mm) are the same plane.
SAME_PLANE_MM = 0.01


def _warn_about_repeated_planes(layers: Sequence[SliceLayer]) -> None:
    """Warn when two chosen slices have the same pixel grid: an image given twice (or a repeated
    acquisition) puts the same pixels in the loss twice, weighting that plane double."""
    corners = [layer.footprint_corners_lps() for layer in layers]
    for b in range(len(layers)):
        for a in range(b):
            if layers[a].shape == layers[b].shape and np.abs(corners[a] - corners[b]).max() <= SAME_PLANE_MM:
                logger.warning("slices '%s' and '%s' are the same plane (the same image given twice, or a repeated "
                               "acquisition?): its pixels count twice", layers[a].label, layers[b].label)
                break


def slices_from_planes(planes: Sequence[tuple[np.ndarray, np.ndarray]], slice_indices: Iterable[int] | None = None,
                       half_thickness: float | Sequence[float] = 5.0, label: str = "image") -> list[SliceLayer]:
    """SliceLayers of a stack whose slices are placed one by one: ``planes[k]`` is slice k's
    ``values[j, i]`` and the 4x4 matrix taking ``(i, j, 0, 1)`` to LPS mm; ``half_thickness`` is
    one slab half-width for all, or one per plane.

    Why: a stack that misses a slice or is unevenly spaced (a DICOM series, or a Slicer volume
    under the acquisition transform Slicer adds to one) has no single IJK->LPS matrix.
    """
    widths = [float(half_thickness)] * len(planes) if np.isscalar(half_thickness) else list(half_thickness)
    spacing = _plane_spacing([np.asarray(matrix, dtype=np.float64) for _, matrix in planes])
    layers = [replace(_cut_volume(np.asarray(planes[k][0])[None], planes[k][1], "z", [0], widths[k], label)[0],
                      label=f"{label} k={k}", stack_spacing=spacing)
              for k in _checked_indices(slice_indices, len(planes), "z")]
    _log_slices(label, layers, "z")
    return layers


def _plane_spacing(matrices: Sequence[np.ndarray]) -> float | None:
    """Median distance (mm) between neighbouring planes of a stack placed plane by plane (4x4
    matrices taking ``(i, j, 0, 1)`` to LPS); None for fewer than two distinct parallel planes."""
    if len(matrices) < 2:
        return None
    normals = [np.cross(m[:3, 0], m[:3, 1]) for m in matrices]
    normal = normals[0] / np.linalg.norm(normals[0])
    if any(1.0 - abs(float(np.dot(normal, n / np.linalg.norm(n)))) > 1e-3 for n in normals):
        return None
    gaps = np.diff(np.sort([float(np.dot(m[:3, 3], normal)) for m in matrices]))
    gaps = gaps[gaps > SAME_PLANE_MM]
    return float(np.median(gaps)) if gaps.size else None


# --------------------------------------------------------------------------- VTK grid layers


def _field_names(data: vtk.vtkFieldData) -> str:
    names = [data.GetArrayName(k) for k in range(data.GetNumberOfArrays()) if data.GetArrayName(k)]
    return ", ".join(names) or "none"


def _cell_edges(dataset: vtk.vtkDataSet, source: Path) -> tuple[np.ndarray, np.ndarray]:
    """The two edge vectors of the first cell, in the order its points list them (i first, then j).

    Of the three offsets from the first corner the diagonal is the sum of the other two (pixel
    and quad cells list their corners in different orders); the longest offset is not always it
    (sheared pixels with an obtuse angle)."""
    corners = vtk_to_numpy(dataset.GetCell(0).GetPoints().GetData()).astype(np.float64)
    offsets = corners[1:] - corners[0]
    diagonal = int(np.argmin([np.linalg.norm(2 * offsets[k] - offsets.sum(axis=0)) for k in range(3)]))
    edges = [offsets[k] for k in range(3) if k != diagonal]
    if min(np.linalg.norm(e) for e in edges) < 1e-9:
        raise CardioScarError(f"{source}: the first cell is degenerate (zero-size edge)")
    return edges[0], edges[1]


def slice_from_vtk_grid(path: str | Path, scalar_field: str = "ScalarValue",
                        half_thickness: float = 5.0) -> SliceLayer:
    """Read a 2D grid layer (one planar lattice of quad/pixel cells with a cell scalar field).

    Accepts vtkImageData (with its direction matrix), structured, rectilinear and unstructured
    grids or polydata whose cells are quads/pixels lying in one plane. The cells must sit on a
    regular lattice: the first cell's edges give the in-plane axes and pixel size, the corner cell's
    centre gives the origin, and ``values[j, i]`` is the cell value at lattice position ``(i, j)``.
    Lattice positions without a cell become NaN (no data: no group is made there). Coordinates
    honour the file's SPACE marker like meshes (no marker = LPS).
    """
    source = Path(path)
    dataset, header = read_vtk_dataset(source, GRID_SUFFIXES)
    space = space_from_dataset(dataset, header, str(source))
    n_cells = dataset.GetNumberOfCells()
    if n_cells == 0:
        raise CardioScarError(f"{source}: the grid has no cells")
    array = dataset.GetCellData().GetArray(scalar_field)
    if array is None:
        raise CardioScarError(
            f"{source}: no cell field '{scalar_field}'; cell fields: {_field_names(dataset.GetCellData())}; "
            f"point fields: {_field_names(dataset.GetPointData())} (a grid layer needs one value per cell)")
    if array.GetNumberOfComponents() != 1:
        raise CardioScarError(f"{source}: cell field '{scalar_field}' has {array.GetNumberOfComponents()} "
                              "components; expected one value per cell")
    values = vtk_to_numpy(array).astype(np.float64).reshape(-1)
    if not np.all(np.isfinite(values)):
        raise CardioScarError(f"{source}: cell field '{scalar_field}' contains NaN or infinite values")
    cell_types = vtk.vtkCellTypes()
    dataset.GetDistinctCellTypes(cell_types)
    types = {cell_types.GetCellType(k) for k in range(cell_types.GetNumberOfTypes())}
    if not types <= {vtk.VTK_QUAD, vtk.VTK_PIXEL}:
        raise CardioScarError(f"{source}: a grid layer must be a 2D grid of quad/pixel cells; found cell types "
                              f"{sorted(vtk.vtkCellTypeUtilities.GetClassNameFromTypeId(t) for t in types)}")

    sign = _RAS_FROM_LPS if space == "RAS" else np.ones(3)
    edge_i, edge_j = (e * sign for e in _cell_edges(dataset, source))
    normal = np.cross(edge_i, edge_j)
    normal /= np.linalg.norm(normal)
    centres_filter = vtk.vtkCellCenters()
    centres_filter.SetInputData(dataset)
    centres_filter.Update()
    centres = vtk_to_numpy(centres_filter.GetOutput().GetPoints().GetData()).astype(np.float64) * sign
    points = _dataset_points(dataset) * sign

    to_lattice = np.linalg.inv(np.column_stack([edge_i, edge_j, normal]))
    first = centres[0]
    lattice = (centres - first) @ to_lattice.T
    corner_offsets = (points - first) @ to_lattice.T
    off_plane = max(np.abs(lattice[:, 2]).max(), np.abs(corner_offsets[:, 2]).max())
    tolerance = 1e-3
    if off_plane > tolerance * min(np.linalg.norm(edge_i), np.linalg.norm(edge_j)) + 1e-6:
        raise CardioScarError(f"{source}: the grid is not planar (points up to {off_plane:.3g} mm off its plane); "
                              "a grid layer must be one 2D slice")
    rounded = np.floor(lattice[:, :2] + 0.5)
    corner_error = np.abs(corner_offsets[:, :2] + 0.5 - np.floor(corner_offsets[:, :2] + 1.0)).max()
    if np.abs(lattice[:, :2] - rounded).max() > tolerance or corner_error > tolerance:
        raise CardioScarError(f"{source}: the cells do not form a regular lattice of equal rectangles")
    ij = rounded.astype(np.int64)
    low = ij.min(axis=0)
    ij -= low
    n_cols, n_rows = ij.max(axis=0) + 1
    flat = ij[:, 1] * n_cols + ij[:, 0]
    if np.unique(flat).size != flat.size:
        raise CardioScarError(f"{source}: two cells occupy the same lattice position")
    grid = np.full((n_rows, n_cols), np.nan)
    grid.reshape(-1)[flat] = values
    holes = int(n_rows * n_cols - n_cells)
    if holes:
        logger.info("%s: %d lattice position(s) without a cell are left without data", source.name, holes)
    return SliceLayer(
        values=grid,
        origin=first + low[0] * edge_i + low[1] * edge_j,
        axis_i=edge_i, axis_j=edge_j,
        spacing=(float(np.linalg.norm(edge_i)), float(np.linalg.norm(edge_j))),
        half_thickness=half_thickness, label=source.name)


def _dataset_points(dataset: vtk.vtkDataSet) -> np.ndarray:
    """(N, 3) point coordinates of any dataset; image data and rectilinear grids have implicit points."""
    if isinstance(dataset, vtk.vtkPointSet):
        return vtk_to_numpy(dataset.GetPoints().GetData()).astype(np.float64)
    return np.array([dataset.GetPoint(k) for k in range(dataset.GetNumberOfPoints())], dtype=np.float64)


def slice_to_vtk_grid(layer: SliceLayer, path: str | Path, scalar_field: str = "ScalarValue") -> None:
    """Write a SliceLayer as a grid layer file that :func:`slice_from_vtk_grid` reads back exactly.

    ``.vti``: vtkImageData with a direction matrix; ``.vts``: structured grid; ``.vtu``: unstructured
    quads (holes omitted); ``.vtk``: legacy structured grid, or unstructured quads when the slice has
    holes. Coordinates are LPS and the file carries ``SPACE=LPS``.
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix not in (".vti", ".vts", ".vtu", ".vtk"):
        raise CardioScarError(f"Unsupported grid layer type '{target.suffix}'; use .vtk, .vti, .vts or .vtu")
    holes = ~np.isfinite(layer.values)
    if holes.any() and suffix in (".vti", ".vts"):
        raise CardioScarError(f"{target.name}: a slice with empty pixels needs .vtu or .vtk output")
    rows, cols = layer.shape
    step_i = layer.axis_i * layer.spacing[0]
    step_j = layer.axis_j * layer.spacing[1]
    corner = layer.origin - 0.5 * step_i - 0.5 * step_j
    cell_values = numpy_to_vtk(np.ascontiguousarray(layer.values.reshape(-1)), deep=1)
    cell_values.SetName(scalar_field)

    if suffix == ".vti":
        dataset = vtk.vtkImageData()
        dataset.SetDimensions(cols + 1, rows + 1, 1)
        dataset.SetSpacing(layer.spacing[0], layer.spacing[1], 1.0)
        dataset.SetOrigin(*corner)
        dataset.SetDirectionMatrix(*np.column_stack([layer.axis_i, layer.axis_j, layer.normal]).reshape(-1))
        dataset.GetCellData().AddArray(cell_values)
    else:
        jj, ii = np.meshgrid(np.arange(rows + 1), np.arange(cols + 1), indexing="ij")
        corners = corner + ii[..., None] * step_i + jj[..., None] * step_j
        vtk_points = vtk.vtkPoints()
        vtk_points.SetData(numpy_to_vtk(np.ascontiguousarray(corners.reshape(-1, 3)), deep=1))
        if suffix == ".vts" or (suffix == ".vtk" and not holes.any()):
            dataset = vtk.vtkStructuredGrid()
            dataset.SetDimensions(cols + 1, rows + 1, 1)
            dataset.SetPoints(vtk_points)
            dataset.GetCellData().AddArray(cell_values)
        else:
            dataset = _quad_grid(vtk_points, layer.values, cols, scalar_field)

    if suffix == ".vtk":
        writer = vtk.vtkDataSetWriter()
        writer.SetHeader(legacy_header("LPS"))
        writer.SetFileTypeToBinary()
    else:
        set_space_field(dataset, "LPS")
        writer = {".vti": vtk.vtkXMLImageDataWriter, ".vts": vtk.vtkXMLStructuredGridWriter,
                  ".vtu": vtk.vtkXMLUnstructuredGridWriter}[suffix]()
    writer.SetInputData(dataset)
    write_dataset(writer, target)


def _quad_grid(vtk_points: vtk.vtkPoints, values: np.ndarray, cols: int, scalar_field: str) -> vtk.vtkUnstructuredGrid:
    """Unstructured grid of one quad per finite pixel (holes are simply absent)."""
    jj, ii = np.nonzero(np.isfinite(values))
    stride = cols + 1
    base = jj * stride + ii
    quads = np.stack([base, base + 1, base + 1 + stride, base + stride], axis=1).astype(np.int64)
    cells = vtk.vtkCellArray()
    offsets = numpy_to_vtk(np.arange(0, 4 * len(quads) + 1, 4, dtype=np.int64), deep=1,
                           array_type=vtk.VTK_ID_TYPE)
    connectivity = numpy_to_vtk(quads.reshape(-1), deep=1, array_type=vtk.VTK_ID_TYPE)
    cells.SetData(offsets, connectivity)
    grid = vtk.vtkUnstructuredGrid()
    grid.SetPoints(vtk_points)
    grid.SetCells(vtk.VTK_QUAD, cells)
    scalars = numpy_to_vtk(np.ascontiguousarray(values[jj, ii]), deep=1)
    scalars.SetName(scalar_field)
    grid.GetCellData().AddArray(scalars)
    return grid
