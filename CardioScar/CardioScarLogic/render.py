"""Offscreen 3D snapshots drawn by Slicer's own displayable managers.

A snapshot shows exactly what a Slicer 3D view shows for the scene's display nodes (active
scalar, colour table, scalar range, colour legend), because the same C++ displayable managers
draw it; only the window is offscreen. Batch mode uses it for ``--snapshot`` and the tests
use it to check the colours. Headless Linux needs an EGL- or OSMesa-capable VTK (Debian
packages ``libegl1 libegl-mesa0 libgl1-mesa-dri`` for Mesa's software EGL).

Create the view *before* the run, as in the application, where views exist before results:
the colour-legend displayable manager draws legends created while it observes the scene, not
legends that were already there when it was attached.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import numpy as np
import slicer
import vtk
from vtk.util.numpy_support import vtk_to_numpy

logger = logging.getLogger(__name__)

#: 3D displayable managers a snapshot needs: models, colour legends, view background/camera.
DISPLAYABLE_MANAGERS = ("vtkMRMLModelDisplayableManager", "vtkMRMLColorLegendDisplayableManager",
                        "vtkMRMLViewDisplayableManager", "vtkMRMLCameraDisplayableManager")


class OffscreenThreeDView:
    """A temporary 3D view node rendered offscreen; ``close()`` removes it from the scene."""

    def __init__(self, scene, application_logic=None, size: tuple[int, int] = (600, 600),
                 background: tuple[float, float, float] = (1.0, 1.0, 1.0)) -> None:
        self.scene = scene
        self.view_node = scene.AddNewNodeByClass("vtkMRMLViewNode", "CardioScar snapshot view")
        self.view_node.SetBackgroundColor(*background)
        self.view_node.SetBackgroundColor2(*background)
        self.view_node.SetBoxVisible(False)
        self.view_node.SetAxisLabelsVisible(False)
        self.renderer = vtk.vtkRenderer()
        self.renderer.SetBackground(*background)
        self.window = vtk.vtkRenderWindow()
        self.window.SetOffScreenRendering(1)
        self.window.SetSize(*size)
        self.window.AddRenderer(self.renderer)
        self.interactor = vtk.vtkRenderWindowInteractor()
        self.interactor.SetRenderWindow(self.window)
        factory = slicer.vtkMRMLThreeDViewDisplayableManagerFactory.GetInstance()
        if application_logic is not None and factory.GetMRMLApplicationLogic() is None:
            factory.SetMRMLApplicationLogic(application_logic)
        for name in DISPLAYABLE_MANAGERS:
            if not factory.IsDisplayableManagerRegistered(name):
                factory.RegisterDisplayableManager(name)
        self.group = factory.InstantiateDisplayableManagers(self.renderer)
        self.group.SetMRMLDisplayableNode(self.view_node)
        self.window.Render()

    def capture(self, focus_node, azimuth: float = 0.0, elevation: float = 0.0,
                path: Optional[Path] = None) -> np.ndarray:
        """Render with the camera on ``focus_node``'s world bounds, looking from anterior and
        turned by ``azimuth`` / ``elevation`` degrees; return RGB (H, W, 3) uint8 (row 0 = top).
        With ``path`` the image is also written as PNG (atomically)."""
        bounds = [0.0] * 6
        focus_node.GetRASBounds(bounds)
        centre = [(bounds[2 * a] + bounds[2 * a + 1]) / 2 for a in range(3)]
        camera = self.renderer.GetActiveCamera()
        camera.SetFocalPoint(*centre)
        camera.SetPosition(centre[0], centre[1] + 1000.0, centre[2])  # from anterior (+A)
        camera.SetViewUp(0.0, 0.0, 1.0)  # superior up
        camera.Azimuth(azimuth)
        camera.Elevation(elevation)
        camera.OrthogonalizeViewUp()
        self.renderer.ResetCamera(bounds)
        self.window.Render()
        grab = vtk.vtkWindowToImageFilter()
        grab.SetInput(self.window)
        grab.SetInputBufferTypeToRGB()
        grab.ReadFrontBufferOff()
        grab.Update()
        image = grab.GetOutput()
        width, height, _ = image.GetDimensions()
        pixels = vtk_to_numpy(image.GetPointData().GetScalars()).reshape(height, width, -1)[::-1, :, :3].copy()
        if path is not None:
            _write_png(image, Path(path))
        return pixels

    def close(self) -> None:
        """Detach the displayable managers and remove the temporary view node."""
        self.group.SetMRMLDisplayableNode(None)
        self.window.Finalize()
        if self.scene.GetNodeByID(self.view_node.GetID()) is not None:
            self.scene.RemoveNode(self.view_node)

    def __enter__(self) -> "OffscreenThreeDView":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _write_png(image: vtk.vtkImageData, path: Path) -> None:
    from cardioscar.io.atomic import atomic_write

    with atomic_write(path) as tmp:
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(str(tmp))
        writer.SetInputData(image)
        writer.Write()
    logger.info("Wrote %s", path)


__all__ = ["OffscreenThreeDView", "DISPLAYABLE_MANAGERS"]
