"""MRML without the Slicer application: a scene, the logics it needs, and file I/O.

Batch mode under plain Python (``pip install slicer-core``) and the Qt-free tests have no
``slicer.app``. They need what the application would have set up: a scene assigned to
``slicer.mrmlScene`` (``slicer.util`` array helpers read it), an application logic with a
Colors logic registered (the Volumes logic and color legends look it up there), and readers and
writers. ``slicer.util.loadVolume`` / ``saveNode`` need the application, so files go through the
MRML storage nodes directly; these are the same classes the application uses, so a file loads
and saves identically in both worlds.

Inside the Slicer application none of this is needed: :func:`ensure_scene` returns the
application's scene and logics.
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import slicer
import vtk

from cardioscar.errors import CardioScarError

logger = logging.getLogger(__name__)


@dataclass
class MRMLContext:
    """A scene and the logics that must stay alive with it.

    Keep this object referenced for as long as the scene is used: a garbage-collected color
    logic removes its color nodes from the scene.
    """

    scene: "slicer.vtkMRMLScene"
    application_logic: object
    color_logic: object
    segmentations_logic: object


_CONTEXTS: list[MRMLContext] = []

#: Prefix of the private home folder (``<prefix><pid>-<random>``) that the headless scenes' Colors
#: logic reads its optional colour files from; the process id lets a later process remove the folder
#: of one that ended without running its exit handlers (killed, or ended by ``os._exit``).
HOME_PREFIX = "cardioscar-mrml-"
_HOME: Optional[Path] = None


def _process_home() -> Path:
    """This process's private home (with an empty ``share/ColorFiles``), made at its first scene and
    shared by every later one, removed when the process ends.

    Why one per process, not one per scene: a process that does not end normally runs no exit
    handler (a killed batch or test run; a pytest-xdist worker, which execnet ends with
    ``os._exit`` when its tests do not stop within 15 s of the controller closing) and left every
    scene's folder: a test run makes hundreds of scenes per worker, and the build machine's /tmp
    held ~90, all made within 13 minutes. Such a process now leaves one folder, which the next
    process's first scene removes (the folders whose process id no longer runs); a folder removed
    under a running process (by one that cannot see its id) is made again at its next scene."""
    global _HOME
    if _HOME is not None and _HOME.is_dir():
        return _HOME
    _remove_homes_of_ended_processes(Path(tempfile.gettempdir()))
    home = Path(tempfile.mkdtemp(prefix=f"{HOME_PREFIX}{os.getpid()}-"))
    (home / "share" / "ColorFiles").mkdir(parents=True)
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    _HOME = home
    return home


def _remove_homes_of_ended_processes(folder: Path) -> None:
    """Remove the homes in ``folder`` whose process (the id in the name) no longer runs."""
    for home in folder.glob(f"{HOME_PREFIX}*-*"):
        match = re.fullmatch(re.escape(HOME_PREFIX) + r"(\d+)-\w+", home.name)
        if match is None or not home.is_dir():
            continue
        try:
            os.kill(int(match.group(1)), 0)
        except ProcessLookupError:
            shutil.rmtree(home, ignore_errors=True)
        except (PermissionError, OverflowError):  # another user's process runs under that id
            continue


def in_slicer_application() -> bool:
    """True inside the full Slicer application (GUI or ``--no-main-window``)."""
    return hasattr(slicer, "app") and hasattr(slicer.app, "applicationLogic")


def create_scene() -> MRMLContext:
    """Create a scene with an application logic, Colors and Segmentations logics (slicer-core).

    Sets ``slicer.mrmlScene`` so that ``slicer.util`` helpers work on it.
    """
    scene = slicer.vtkMRMLScene()
    app_logic = slicer.vtkSlicerApplicationLogic()
    app_logic.SetMRMLScene(scene)
    # The Colors logic looks for optional colour files under <home>/<share>/ColorFiles and logs
    # an error when these folders are not set; an empty private folder keeps batch output clean.
    home = _process_home()
    app_logic.SetHomeDirectory(str(home))
    app_logic.SetShareDirectory("share")
    app_logic.SetTemporaryPath(str(home))
    color_logic = slicer.vtkSlicerColorLogic()
    color_logic.SetMRMLApplicationLogic(app_logic)
    color_logic.SetMRMLScene(scene)
    app_logic.SetModuleLogic("Colors", color_logic)
    seg_logic = slicer.vtkSlicerSegmentationsModuleLogic()
    seg_logic.SetMRMLApplicationLogic(app_logic)
    seg_logic.SetMRMLScene(scene)
    app_logic.SetModuleLogic("Segmentations", seg_logic)
    slicer.mrmlScene = scene
    context = MRMLContext(scene, app_logic, color_logic, seg_logic)
    _CONTEXTS.append(context)
    return context


def ensure_scene() -> MRMLContext:
    """The application's scene inside Slicer, otherwise the latest headless scene (or a new one)."""
    if in_slicer_application():
        app_logic = slicer.app.applicationLogic()
        return MRMLContext(slicer.mrmlScene, app_logic, app_logic.GetModuleLogic("Colors"),
                           app_logic.GetModuleLogic("Segmentations"))
    if _CONTEXTS and getattr(slicer, "mrmlScene", None) is _CONTEXTS[-1].scene:
        return _CONTEXTS[-1]
    return create_scene()


def color_logic_for(scene) -> Optional[object]:
    """The Colors logic serving ``scene`` (application or headless), or None."""
    if in_slicer_application():
        return slicer.app.applicationLogic().GetModuleLogic("Colors")
    for context in reversed(_CONTEXTS):
        if context.scene is scene:
            return context.color_logic
    return None


@contextmanager
def _reader_errors_replaced():
    """VTK's own messages off while a storage node reads: for a file it cannot read, the readers
    print several lines that the one-line error raised after them says better."""
    shown = vtk.vtkObject.GetGlobalWarningDisplay()
    vtk.vtkObject.GlobalWarningDisplayOff()
    try:
        yield
    finally:
        vtk.vtkObject.SetGlobalWarningDisplay(shown)


def _require_file(path: Path, what: str) -> Path:
    path = Path(path)
    if path.is_dir():
        raise CardioScarError(f"{what} {path} is a folder, not a file: give the file inside it.")
    if not path.is_file():
        raise CardioScarError(f"{what} file not found: {path}")
    return path


def check_file_of_node(node) -> None:
    """Run the core library's file checks on the file a volume or model node was read from, if it
    still exists: Slicer's storage nodes read through the same ITK and VTK readers, which fill a
    truncated NIfTI with zeros, read its NaN voxels as 0 or drop a cut mesh's cells without an
    error; ``cardioscar prepare`` refuses these files, so the Logic must too. A file that no longer
    describes the node (overwritten since it was read: another size or node count in its header)
    is not the node's any more and is left alone."""
    from cardioscar.io.imageio import check_image_file
    from cardioscar.io.meshio import MESH_SUFFIXES, read_mesh

    storage = node.GetStorageNode() if node is not None and hasattr(node, "GetStorageNode") else None
    path = Path(storage.GetFileName()) if storage is not None and storage.GetFileName() else None
    if path is None or not path.is_file():
        return
    if node.IsA("vtkMRMLVolumeNode") and node.GetImageData() is not None:
        if _header_size(path) == tuple(node.GetImageData().GetDimensions()):
            check_image_file(path)
    elif node.IsA("vtkMRMLModelNode") and path.suffix.lower() in MESH_SUFFIXES and node.GetMesh() is not None:
        if _declared_points(path) == node.GetMesh().GetNumberOfPoints():
            read_mesh(path)


def _header_size(path: Path) -> Optional[tuple]:
    """The voxel size an image file's header gives (header only), or None if unreadable."""
    from cardioscar.io.imageio import read_header

    reader = read_header(path)
    return None if reader is None else tuple(reader.GetSize())


def _declared_points(path: Path) -> Optional[int]:
    """The node count a legacy (``POINTS n``) or XML (``NumberOfPoints="n"``) VTK file declares in
    its first kilobytes, or None."""
    with open(path, "rb") as handle:
        head = handle.read(8192)
    match = re.search(rb"POINTS\s+(\d+)", head) or re.search(rb'NumberOfPoints="(\d+)"', head)
    return int(match.group(1)) if match else None


def load_volume(scene, path: str | Path, labelmap: bool = False, name: Optional[str] = None):
    """Read an image file (NIfTI, NRRD, MHA, ...) into a new scalar or label map volume node,
    after the checks ``cardioscar prepare`` runs on it (:func:`cardioscar.io.imageio.check_image_file`)."""
    from cardioscar.io.imageio import check_image_file, itk_warnings_off

    path = _require_file(Path(path), "Volume")
    check_image_file(path)
    node_class = "vtkMRMLLabelMapVolumeNode" if labelmap else "vtkMRMLScalarVolumeNode"
    with itk_warnings_off():
        return _read_new_node(scene, node_class, "vtkMRMLVolumeArchetypeStorageNode", path, name,
                              lambda node: node.GetImageData() is not None,
                              f"Cannot read the volume {path}: unreadable, truncated or corrupted file (use a NIfTI, "
                              "NRRD or MHA image).", single_file=True)


def _read_new_node(scene, node_class: str, storage_class: str, path: Path, name: Optional[str], is_read,
                   failure: str, single_file: bool = False):
    """A new ``node_class`` node read from ``path`` through a new ``storage_class`` node, with the
    readers' own messages replaced by ours; when the read fails or ``is_read(node)`` is false, both
    nodes leave the scene and ``failure`` is raised (the scene is left as it was)."""
    node = scene.AddNewNodeByClass(node_class, name or path.name.split(".")[0])
    storage = scene.AddNewNodeByClass(storage_class)
    storage.SetFileName(str(path))
    if single_file:
        storage.SetSingleFile(True)
    node.SetAndObserveStorageNodeID(storage.GetID())
    with _reader_errors_replaced():
        read = storage.ReadData(node)
    if not read or not is_read(node):
        scene.RemoveNode(node)
        scene.RemoveNode(storage)
        raise CardioScarError(failure)
    return node


def load_segmentation(scene, path: str | Path, name: Optional[str] = None):
    """Read a segmentation file (``.seg.nrrd``, as Slicer saves one) into a new segmentation node."""
    path = _require_file(Path(path), "Segmentation")
    return _read_new_node(scene, "vtkMRMLSegmentationNode", "vtkMRMLSegmentationStorageNode", path, name,
                          lambda node: node.GetSegmentation().GetNumberOfSegments() > 0,
                          f"Cannot read the segmentation {path}: not a Slicer segmentation (.seg.nrrd) or it has "
                          "no segment.")


def load_mask(scene, path: str | Path, chosen=None, option: str = "--myocardium-mask"):
    """A mask file as a node: a segmentation for ``.seg.nrrd``, else a label map volume.

    ``chosen``: a callable giving the chosen LGE slices (``SliceLayer`` s, as ``prepare`` reads
    them), called only for a 2D image file, which is placed on the one chosen slice whose pixels it
    has, as ``prepare`` places it (:func:`cardioscar.prepare.myocardium.read_mask_image`), else
    refused naming ``--slice-indices``. Why: Slicer reads a 2D file as one slice at z = 0 (a 2D file
    has no place across the slices), so its labels lay off every chosen slice and the batch script
    refused the mask as another frame's, where ``prepare`` trains on it."""
    if Path(path).name.lower().endswith(".seg.nrrd"):
        return load_segmentation(scene, path)
    from cardioscar.io.imageio import is_plane_file

    if chosen is not None and is_plane_file(path):
        from cardioscar.prepare.myocardium import read_mask_image

        return _label_map_node(scene, read_mask_image(path, chosen(), option), Path(path).name.split(".")[0])
    return load_volume(scene, path, labelmap=True)


def _label_map_node(scene, image, name: str):
    """A new label map node holding a 3D SimpleITK image (LPS) in memory, placed as the image is."""
    import numpy as np
    import SimpleITK as sitk

    from cardioscar.prepare.slices import ijk_to_lps_matrix

    node = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", name)
    slicer.util.updateVolumeFromArray(node, sitk.GetArrayFromImage(image))
    ijk_to_ras = np.diag([-1.0, -1.0, 1.0, 1.0]) @ ijk_to_lps_matrix(image)
    matrix = vtk.vtkMatrix4x4()
    for row in range(4):
        for column in range(4):
            matrix.SetElement(row, column, float(ijk_to_ras[row, column]))
    node.SetIJKToRASMatrix(matrix)
    return node


def load_model(scene, path: str | Path, name: Optional[str] = None):
    """Read a mesh file (.vtk, .vtp, .vtu, .stl, .ply, .obj) into a new model node.

    The storage node honours the ``SPACE=`` marker of the file (no marker = LPS) and holds the
    points in RAS, as the application does. A ``.vtk``, ``.vtp`` or ``.vtu`` file is first read
    as ``cardioscar`` reads it, so a file it refuses (cut short, NaN points) is refused here too.
    """
    from cardioscar.io.meshio import MESH_SUFFIXES, read_mesh

    path = _require_file(Path(path), "Mesh")
    if path.suffix.lower() in MESH_SUFFIXES:
        read_mesh(path)
    node = _read_new_node(scene, "vtkMRMLModelNode", "vtkMRMLModelStorageNode", path, name,
                          lambda node: node.GetMesh() is not None and node.GetMesh().GetNumberOfPoints() > 0,
                          f"Cannot read the mesh {path} (or it has no points): use a .vtk, .vtp or .vtu mesh.")
    node.CreateDefaultDisplayNodes()
    return node


def check_mesh_output(model_node, path: str | Path) -> None:
    """Refuse a ``.vtp`` file for a volumetric mesh before any work: polydata cannot hold its 3D
    cells, and the writer would drop them all and still report success."""
    path = Path(path)
    mesh = model_node.GetMesh()
    if path.suffix.lower() == ".vtp" and mesh is not None and not mesh.IsA("vtkPolyData"):
        raise CardioScarError(f"Cannot write the volumetric mesh '{model_node.GetName()}' ({mesh.GetClassName()}) as "
                              f"{path.name}: .vtp holds surfaces only; use .vtu or .vtk.")


def save_model(model_node, path: str | Path, coordinate_system: str = "LPS") -> None:
    """Write a model node with its point arrays; the file carries a ``SPACE=`` marker.

    The storage node writes to a temporary name first and the file is renamed into place, so
    a failure never leaves a half-written result.
    """
    from cardioscar.io.atomic import atomic_write

    path = Path(path)
    check_mesh_output(model_node, path)
    scene = model_node.GetScene()
    storage = scene.AddNewNodeByClass("vtkMRMLModelStorageNode")
    try:
        storage.SetCoordinateSystem(slicer.vtkMRMLStorageNode.GetCoordinateSystemTypeFromString(coordinate_system))
        with atomic_write(path) as tmp:
            storage.SetFileName(str(tmp))
            if not storage.WriteData(model_node):
                raise CardioScarError(f"Cannot write the mesh {path}: check the folder exists and is writable.")
    finally:
        scene.RemoveNode(storage)
    logger.info("Wrote %s", path)


__all__ = ["MRMLContext", "create_scene", "ensure_scene", "color_logic_for", "in_slicer_application",
           "check_file_of_node", "load_volume", "load_model", "check_mesh_output", "save_model"]
