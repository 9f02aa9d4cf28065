"""Reading and writing meshes (legacy ``.vtk``, ``.vtp``, ``.vtu``) in the frame 3D Slicer expects.

3D Slicer marks the frame of a model file's coordinates: a legacy ``.vtk`` file carries
``SPACE=LPS`` or ``SPACE=RAS`` in its header (title) line, an XML file carries a field-data string
array named ``SPACE`` holding ``LPS`` or ``RAS``. A file without a marker is LPS (as Slicer reads it;
checked against slicer-core's ``vtkMRMLModelStorageNode``). The library works in LPS, so
:meth:`Mesh.points_lps` converts RAS coordinates on the fly, while :func:`write_mesh` keeps the
coordinates exactly as they were read and writes the marker of that frame, so Slicer shows the
result where it showed the input.
"""

from __future__ import annotations

import json
import logging
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Mapping

import numpy as np
import vtk
from vtk.util.numpy_support import numpy_to_vtk, vtk_to_numpy

from .atomic import atomic_write, write_failed
from .checks import MESH_SUFFIXES, check_mesh_points, check_vtk_file
from ..errors import CardioScarError

logger = logging.getLogger(__name__)

SPACE_ARRAY_NAME = "SPACE"
_SPACE_IN_HEADER = re.compile(r"SPACE\s*=\s*([A-Za-z]+)")
_RAS_FROM_LPS = np.array([-1.0, -1.0, 1.0])


def node_offset_mm(first: "Mesh", second: "Mesh") -> float:
    """The largest distance (mm, per axis) between the same-numbered nodes of two meshes of equal
    node count: two files that pair their nodes by number must be one mesh, node for node."""
    return float(np.abs(first.points_lps() - second.points_lps()).max()) if first.n_points else 0.0


def bounds_text(points: np.ndarray) -> str:
    """Format the bounding box of (N, 3) points as ``[x0..x1, y0..y1, z0..z1]`` for messages."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    if pts.shape[0] == 0:
        return "[empty]"
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    return "[" + ", ".join(f"{a:.1f}..{b:.1f}" for a, b in zip(lo, hi)) + "]"


def _normalise_space(value: str, source: str) -> str:
    space = value.strip().upper()
    if space not in ("LPS", "RAS"):
        raise CardioScarError(f"{source}: unknown SPACE marker '{value.strip()}'; expected LPS or RAS")
    return space


def space_from_dataset(dataset: vtk.vtkDataObject, header: str | None, source: str) -> str:
    """Frame of a dataset's coordinates from a legacy header or a ``SPACE`` field array; LPS if none."""
    if header:
        match = _SPACE_IN_HEADER.search(header)
        if match:
            return _normalise_space(match.group(1), source)
    marker = text_field(dataset, SPACE_ARRAY_NAME)
    return "LPS" if marker is None else _normalise_space(marker, source)


def set_space_field(dataset: vtk.vtkDataObject, space: str) -> None:
    """Replace the dataset's ``SPACE`` field array with one holding ``space`` (XML files)."""
    set_text_field(dataset, SPACE_ARRAY_NAME, space)


def set_text_field(dataset: vtk.vtkDataObject, name: str, text: str | None) -> None:
    """Replace the dataset's field-data string array ``name`` with one holding ``text`` (``None``:
    remove it): a note about the whole mesh that every mesh format, and 3D Slicer, keeps."""
    field_data = dataset.GetFieldData()
    field_data.RemoveArray(name)
    if text is None:
        return
    marker = vtk.vtkStringArray()
    marker.SetName(name)
    marker.InsertNextValue(text)
    field_data.AddArray(marker)


def text_field(dataset: vtk.vtkDataObject, name: str) -> str | None:
    """The first value of the dataset's field-data string array ``name``, or None."""
    field_data = dataset.GetFieldData()
    array = field_data.GetAbstractArray(name) if field_data is not None else None
    if array is None or array.GetNumberOfValues() == 0:
        return None
    return str(array.GetVariantValue(0).ToString())


#: Nodes closer than this (mm) are one place: a node written twice (float32 round trips stay far below it).
COINCIDENT_MM = 1e-3


def cell_point_ids(dataset: vtk.vtkDataSet) -> np.ndarray:
    """Every node index the dataset's cells use, with repeats (their connectivity)."""
    if isinstance(dataset, vtk.vtkUnstructuredGrid):
        arrays = [dataset.GetCells()]
    elif isinstance(dataset, vtk.vtkPolyData):
        arrays = [dataset.GetVerts(), dataset.GetLines(), dataset.GetPolys(), dataset.GetStrips()]
    else:
        ids = vtk.vtkIdList()
        nodes = []
        for c in range(dataset.GetNumberOfCells()):
            dataset.GetCellPoints(c, ids)
            nodes.extend(ids.GetId(i) for i in range(ids.GetNumberOfIds()))
        return np.asarray(nodes, np.int64)
    parts = [vtk_to_numpy(a.GetConnectivityArray()) for a in arrays if a is not None and a.GetNumberOfCells()]
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def cell_layout(dataset: vtk.vtkDataSet) -> tuple[np.ndarray, np.ndarray]:
    """(offsets, connectivity) of every cell in cell-id order, for any dataset type: an unstructured
    grid's own cell array, other datasets appended into one, whose cell array VTK gives in bulk (the
    mesh's edges for the AHA's islands and the channel search's layer graphs, the export's check of
    collapsed cells)."""
    if isinstance(dataset, vtk.vtkUnstructuredGrid):
        cells = dataset.GetCells()  # its own array, in cell-id order: no copy of a million cells
    else:
        grid = vtk.vtkAppendFilter()
        grid.AddInputData(dataset)
        grid.Update()
        cells = grid.GetOutput().GetCells()
    return (vtk_to_numpy(cells.GetOffsetsArray()).astype(np.int64),
            vtk_to_numpy(cells.GetConnectivityArray()).astype(np.int64))


def coincident_nodes(mesh: "Mesh") -> tuple[int, int, int]:
    """(nodes the cells use that lie on another such node, the places where they do, the nodes the
    cells use): a mesh written without merging its points holds each shared node once per cell, and
    cells that share no node are not joined, whatever a viewer shows."""
    in_cells = np.zeros(mesh.dataset.GetNumberOfPoints(), bool)
    in_cells[cell_point_ids(mesh.dataset)] = True  # not np.unique of the ids: 2.3 s for 1M nodes' tetrahedra
    used = np.flatnonzero(in_cells)
    if used.size == 0:
        return 0, 0, 0
    keys = np.ascontiguousarray(np.round(mesh.points_lps()[used] / COINCIDENT_MM).astype(np.int64))
    _, counts = np.unique(keys.view(np.dtype((np.void, 24))).ravel(), return_counts=True)  # rows as one key: fast
    return int(used.size - counts.size), int((counts > 1).sum()), int(used.size)


#: Field-data string array that ``apply`` writes on a predicted mesh: which targets the model was
#: trained on (:data:`BINARY_TARGETS` or :data:`GRADED_TARGETS`), so that ``export`` can tell a
#: one-field border zone of graded tissue from the blurred edge of a 0/1-trained scar.
TRAINING_TARGETS_ARRAY = "CardioScarTrainingTargets"
BINARY_TARGETS = "0/1"
GRADED_TARGETS = "graded"
#: The field a scar rule's ``--scar-target core`` model learned (its record's ``target``; else "scar").
CORE_TARGET = "core"
#: Field-data string array that ``apply`` writes on a predicted mesh: the scar-rule record (JSON) of
#: the model's training data, so that ``export --core-mesh`` can refuse a scar and a core model
#: trained on two definitions (another rule, thresholds, offset or expert labels, or the targets
#: the other way round), as the Slicer module refuses them. None for a model trained without a rule.
SCAR_RULE_ARRAY = "CardioScarScarRule"
#: Field-data string array that ``apply`` writes on a predicted mesh: the label map's labels its model
#: learned as the scar (``prepare --scar-labels``, "3,4"), so that ``export --core-mesh`` can refuse a
#: labels model of the very scar given as the core (EMIDEC P022: border zone 14.7 -> 1.5 ml, exit 0).
SCAR_LABELS_ARRAY = "CardioScarScarLabels"


def rule_record_target(record: str | None) -> str | None:
    """``"core"`` or ``"scar"``: the field a model learned by the scar-rule record (JSON) noted on its
    mesh or kept in its checkpoint, so that ``export`` of a core model's field alone is not taken for
    a scar field; None without a record (labels or a map do not say whether they were the scar or its
    core), or when the record is damaged."""
    try:
        target = json.loads(record).get("target", "scar") if record else None
    except (ValueError, AttributeError):
        return None
    return target if target in ("scar", CORE_TARGET) else None


def legacy_header(space: str) -> str:
    """Title line for legacy files, with the marker spelled as Slicer writes it."""
    return f"CardioScar output. SPACE={space}"


@contextmanager
def _vtk_messages() -> Iterator[list[str]]:
    """Capture what VTK reports during a read (instead of printing it) so it can become one error line.

    VTK readers do not raise: they print errors (XML parser) or generic warnings (legacy binary
    data cut short) and return partial data. The captured text is appended to the yielded list when
    the block ends.
    """
    captured: list[str] = []
    window = vtk.vtkStringOutputWindow()
    previous_window = vtk.vtkOutputWindow.GetInstance()
    previous_verbosity = vtk.vtkLogger.GetCurrentVerbosityCutoff()
    vtk.vtkOutputWindow.SetInstance(window)
    vtk.vtkLogger.SetStderrVerbosity(vtk.vtkLogger.VERBOSITY_OFF)
    try:
        yield captured
    finally:
        vtk.vtkOutputWindow.SetInstance(previous_window)
        vtk.vtkLogger.SetStderrVerbosity(previous_verbosity)
        captured.append(window.GetOutput())


def _reported_failure(text: str) -> str | None:
    """The first VTK line that reports an error, if any: one that says 'error', or the message
    under an ``ERROR: In file, line N`` header, whatever its words.

    Why the header: an XML mesh whose appended data was cut short says only 'Cannot read points
    array from Points in piece 0. The data array in the element may be too short.', so it read as
    a mesh without points (EMIDEC P088's heart.vtu cut to 20 kB: 'has no points')."""
    after_header = False
    for line in text.splitlines():
        stripped = line.strip()
        if "ERROR: In" in line or "Generic Warning: In" in line:
            after_header = "ERROR: In" in line
            continue
        if stripped and (after_header or "error" in stripped.lower()):
            return re.sub(r"^\w+ \(0x[0-9a-fA-F]+\): ", "", stripped)[:160]
    return None


#: The VTK XML file types (``<VTKFile type="...">``) and the suffix each is read by.
_XML_SUFFIXES = {"PolyData": ".vtp", "UnstructuredGrid": ".vtu", "ImageData": ".vti", "StructuredGrid": ".vts",
                 "RectilinearGrid": ".vtr"}


def is_vtk_file(path: str | Path) -> bool:
    """Whether ``path`` begins as a VTK file does (legacy or XML), whatever its suffix: how a stage
    that reads another kind of file (a model, training data) names a mesh given to it (round 18)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(256).lstrip()
    except OSError:
        return False
    return head.startswith(b"# vtk DataFile") or (head.startswith(b"<") and b"<VTKFile" in head)


def _what_it_holds(source: Path) -> str:
    """Why a reader refused ``source``, for the user: a VTK file of another kind than its suffix
    says (a ``.vtu`` named ``.vtp`` or the reverse, a legacy file named ``.vtu``, an XML file named
    ``.vtk``: VTK picks its reader by the suffix) with the name to give it, else "corrupted or wrong
    format". Why: each renamed file was called corrupted (round 18)."""
    try:
        with open(source, "rb") as handle:
            head = handle.read(1024).decode("latin-1")
    except OSError:
        return "corrupted or wrong format"
    found = re.search(r'<VTKFile[^>]*\btype="(\w+)"', head)
    kind, right = ((f"a VTK {found.group(1)}", _XML_SUFFIXES.get(found.group(1))) if found
                   else ("a legacy VTK file", ".vtk") if head.startswith("# vtk DataFile") else (None, None))
    if right and right != source.suffix.lower():
        return f"it holds {kind}, which is read as {right}: rename it to {source.with_suffix(right).name}"
    return "corrupted or wrong format"


def read_vtk_dataset(path: str | Path, allowed_suffixes: tuple[str, ...] = MESH_SUFFIXES
                     ) -> tuple[vtk.vtkDataSet, str | None]:
    """Read a VTK file (legacy or XML) and return ``(dataset, legacy header or None)``.

    Raises :class:`CardioScarError` for a missing file, an unsupported extension or a file VTK
    cannot parse. Shared with :mod:`cardioscar.prepare.slices` for grid layers.
    """
    source = check_vtk_file(path, allowed_suffixes)
    suffix = source.suffix.lower()
    xml_readers = {
        ".vtp": vtk.vtkXMLPolyDataReader, ".vtu": vtk.vtkXMLUnstructuredGridReader,
        ".vti": vtk.vtkXMLImageDataReader, ".vts": vtk.vtkXMLStructuredGridReader,
        ".vtr": vtk.vtkXMLRectilinearGridReader,
    }
    header: str | None = None
    with _vtk_messages() as messages:
        if suffix == ".vtk":
            reader = vtk.vtkDataSetReader()
            reader.SetFileName(str(source))
            if not reader.OpenVTKFile() or not reader.ReadHeader():
                reader.CloseVTKFile()
                raise CardioScarError(f"Cannot read {source}: not a valid legacy VTK file ({_what_it_holds(source)})")
            reader.CloseVTKFile()
        else:
            reader = xml_readers[suffix]()
            if not reader.CanReadFile(str(source)):
                raise CardioScarError(f"Cannot read {source}: not a valid VTK XML {suffix} file ({_what_it_holds(source)})")
            reader.SetFileName(str(source))
        reader.Update()
        header = reader.GetHeader() if suffix == ".vtk" else None
        output = reader.GetOutputDataObject(0)
    problem = _reported_failure("".join(messages))
    if problem or output is None or not isinstance(output, vtk.vtkDataSet):
        raise CardioScarError(f"Cannot read {source}: the file is corrupted or truncated ({problem or 'no dataset'})")
    dataset = output.NewInstance()
    dataset.ShallowCopy(output)
    return dataset, header


@dataclass
class Mesh:
    """A mesh as read from disk: the VTK dataset plus the frame its coordinates are in."""

    dataset: vtk.vtkDataSet
    space: str
    path: Path | None = None

    @property
    def n_points(self) -> int:
        return int(self.dataset.GetNumberOfPoints())

    def points_lps(self) -> np.ndarray:
        """(N, 3) float64 node coordinates in LPS mm, whatever frame the file used."""
        points = self.dataset.GetPoints()
        if points is None:
            return np.zeros((0, 3))
        coords = vtk_to_numpy(points.GetData()).astype(np.float64, copy=True)
        if self.space == "RAS":
            coords *= _RAS_FROM_LPS
        return coords

    def dataset_lps(self, points: np.ndarray | None = None) -> vtk.vtkDataSet:
        """The mesh's cells over its points in LPS: a shallow copy, whose points are replaced (by
        ``points``, :meth:`points_lps` when not given) only when the file is not LPS."""
        dataset = self.dataset.NewInstance()
        dataset.ShallowCopy(self.dataset)
        if self.space != "LPS":
            lps = vtk.vtkPoints()
            lps.SetData(numpy_to_vtk(np.ascontiguousarray(self.points_lps() if points is None else points), deep=True))
            dataset.SetPoints(lps)
        return dataset

    def point_field_names(self) -> list[str]:
        data = self.dataset.GetPointData()
        return [data.GetArrayName(k) for k in range(data.GetNumberOfArrays()) if data.GetArrayName(k)]

    def point_array(self, name: str) -> np.ndarray:
        """A point-data array as numpy; a missing name is an error that lists the fields present."""
        array = self.dataset.GetPointData().GetArray(name)
        if array is None:
            where = self.path.name if self.path else "mesh"
            if self.dataset.GetPointData().GetAbstractArray(name) is not None:  # listed as present: say why not
                raise CardioScarError(f"{where}'s point field '{name}' holds text, not numbers: give a numeric point field")
            present = ", ".join(self.point_field_names()) or "none"
            raise CardioScarError(f"{where} has no point field '{name}'; point fields present: {present}")
        return vtk_to_numpy(array).copy()


def read_mesh(path: str | Path) -> Mesh:
    """Read a ``.vtk`` (POLYDATA or UNSTRUCTURED_GRID), ``.vtp`` or ``.vtu`` mesh with its SPACE frame."""
    source = Path(path)
    dataset, header = read_vtk_dataset(source, MESH_SUFFIXES)
    if not isinstance(dataset, (vtk.vtkPolyData, vtk.vtkUnstructuredGrid)):
        raise CardioScarError(
            f"{source} holds a {dataset.GetClassName()}; a mesh must be polydata or an unstructured grid")
    if dataset.GetNumberOfPoints() == 0:
        raise CardioScarError(f"Mesh {source} has no points")
    space = space_from_dataset(dataset, header, str(source))
    mesh = Mesh(dataset=dataset, space=space, path=source)
    check_mesh_points(mesh.points_lps(), f"Mesh {source}")
    logger.info("Read mesh %s: %d nodes, %d cells, frame %s", source, mesh.n_points,
                dataset.GetNumberOfCells(), space)
    return mesh


def _as_point_array(name: str, values: np.ndarray, n_points: int) -> vtk.vtkDataArray:
    array = np.asarray(values)
    if array.ndim not in (1, 2) or array.shape[0] != n_points:
        raise CardioScarError(
            f"Point field '{name}' has shape {array.shape} but the mesh has {n_points} points")
    if array.dtype == bool:
        array = array.astype(np.uint8)
    vtk_array = numpy_to_vtk(np.ascontiguousarray(array), deep=1)
    vtk_array.SetName(name)
    return vtk_array


def check_output_holds(mesh: "Mesh", path: str | Path) -> None:
    """Refuse a ``.vtp`` output for a mesh that is not polydata (a volume mesh's cells have no place
    in it). Why a function of its own: ``apply`` runs it before inference, which found it only when
    writing, after the MC passes over every node (round 18)."""
    target = Path(path)
    if target.suffix.lower() == ".vtp" and not isinstance(mesh.dataset, vtk.vtkPolyData):
        raise CardioScarError(f"Cannot write a {mesh.dataset.GetClassName()} as {target.name}; use .vtu or .vtk")


def write_mesh(mesh: Mesh, path: str | Path, point_arrays: Mapping[str, np.ndarray | None] | None = None) -> None:
    """Write ``mesh`` plus extra point fields to ``path`` atomically, with a SPACE marker; a field
    given as ``None`` is left out of the file (an earlier result's copy of it on ``mesh`` is stale).

    Coordinates are written exactly as they were read (``mesh.space`` frame) and the marker names
    that frame. The format follows the extension: ``.vtk`` (legacy binary, marker in the header),
    ``.vtp`` (polydata only) or ``.vtu`` (marker in a ``SPACE`` field array).
    """
    target = Path(path)
    check_mesh_target(mesh, target)  # before a folder or a temporary file is made
    with atomic_write(target) as tmp:
        written = save_mesh(mesh, tmp, target, point_arrays)
    logger.info(written)


def check_mesh_target(mesh: Mesh, target: Path) -> None:
    """Refuse a file :func:`save_mesh` cannot write ``mesh`` as: a suffix that is not a mesh's, a
    mesh without points, a ``.vtp`` of a volume mesh."""
    if target.suffix.lower() not in MESH_SUFFIXES:
        raise CardioScarError(f"Unsupported output type '{target.suffix}' for {target.name}; use one of "
                              f"{', '.join(MESH_SUFFIXES)}")
    if mesh.n_points == 0:
        raise CardioScarError(f"Cannot write {target.name}: the mesh has no points")
    check_output_holds(mesh, target)


def save_mesh(mesh: Mesh, tmp: Path, target: Path, point_arrays: Mapping[str, np.ndarray | None] | None = None) -> str:
    """Write what :func:`write_mesh` writes for ``target`` into ``tmp``, a temporary path that the
    caller puts in place (:func:`~cardioscar.io.atomic.atomic_write`, or a set of files that are
    read together: :func:`~cardioscar.io.atomic.atomic_write_set`); ``target`` checked by
    :func:`check_mesh_target`. Returns the log's line that says what ``target`` holds, for the
    caller to log once the file is in place: naming ``tmp``, or said before a set failed, it would
    name a file the user never gets."""
    arrays = {name: None if values is None else _as_point_array(name, values, mesh.n_points)
              for name, values in (point_arrays or {}).items()}
    dataset = mesh.dataset.NewInstance()
    dataset.DeepCopy(mesh.dataset)
    for name, array in arrays.items():
        dataset.GetPointData().RemoveArray(name)
        if array is not None:
            dataset.GetPointData().AddArray(array)
    suffix = target.suffix.lower()
    if suffix == ".vtu" and isinstance(dataset, vtk.vtkPolyData):
        append = vtk.vtkAppendFilter()
        append.SetInputData(dataset)
        append.Update()
        dataset = append.GetOutput()

    if suffix == ".vtk":
        dataset.GetFieldData().RemoveArray(SPACE_ARRAY_NAME)
        writer = vtk.vtkPolyDataWriter() if isinstance(dataset, vtk.vtkPolyData) else vtk.vtkUnstructuredGridWriter()
        writer.SetHeader(legacy_header(mesh.space))
        writer.SetFileTypeToBinary()
    else:
        set_space_field(dataset, mesh.space)
        writer = vtk.vtkXMLPolyDataWriter() if suffix == ".vtp" else vtk.vtkXMLUnstructuredGridWriter()
    writer.SetInputData(dataset)
    run_writer(writer, tmp, target)
    # every point field the file holds, not only those added here: an export's .vtu keeps the
    # predicted mesh's fields beside tissue_tag, and a log naming tissue_tag alone said otherwise
    point_data = dataset.GetPointData()
    held = [point_data.GetArrayName(i) for i in range(point_data.GetNumberOfArrays())]
    return (f"Wrote {target} ({mesh.n_points} nodes, {dataset.GetNumberOfCells()} cells, frame {mesh.space}, "
            f"fields: {', '.join(name for name in held if name) or 'none'})")


def write_dataset(writer: vtk.vtkWriter, target: Path) -> None:
    """Run a configured VTK writer into ``target`` through :func:`atomic_write`."""
    with atomic_write(target) as tmp:
        run_writer(writer, tmp, target)


def run_writer(writer: vtk.vtkWriter, tmp: Path, target: Path) -> None:
    """Run a configured VTK writer into ``tmp``, the temporary file of ``target`` that the caller
    places; a failure is reported as ``target``'s."""
    with _vtk_messages():
        writer.SetFileName(str(tmp))
        # the XML writers return 1 on a full disk and report it only through their error code;
        # VTK's own ERR lines are captured (the one-line error says it better)
        if writer.Write() != 1 or writer.GetErrorCode() != 0 or tmp.stat().st_size == 0:
            error_code = writer.GetErrorCode()
            reason = vtk.vtkErrorCode.GetStringFromErrorCode(error_code) if error_code else None
            raise write_failed(target, "No space left on device" if reason == "OutOfDiskSpaceError" else None)
