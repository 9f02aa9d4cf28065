"""The README picture of a tagged mesh: the scar-side half of a predicted mesh (cut through its
long axis), tagged by the Slicer Logic and drawn off-screen with its legend.

    PYTHONPATH=CardioScarLib python Testing/benchmarks/render_tagged_mesh.py \
        cardioscar_demo_raw/prediction_raw_lge.vtk Resources/Screenshots/raw-lge-tagged-mesh.png
"""

import sys
from pathlib import Path

import numpy as np
import vtk

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "CardioScar"))

import CardioScarLogic as csl  # noqa: E402
from CardioScarLogic.render import OffscreenThreeDView  # noqa: E402
from CardioScarLogic.tissue import tag_model_node  # noqa: E402
from cardioscar.io.meshio import Mesh, read_mesh, write_mesh  # noqa: E402


def main(prediction: Path, picture: Path) -> None:
    mesh = read_mesh(prediction)
    points = mesh.points_lps()
    core = mesh.point_array("core_probability") >= 0.5
    centre = points.mean(axis=0)
    axis = np.linalg.svd(points - centre)[2][0]  # the long axis: the direction of largest spread
    towards_scar = points[core].mean(axis=0) - centre
    towards_scar -= axis * (towards_scar @ axis)
    plane = vtk.vtkPlane()
    plane.SetOrigin(*centre)
    plane.SetNormal(*(towards_scar / np.linalg.norm(towards_scar)))
    half = vtk.vtkExtractGeometry()
    half.SetInputData(mesh.dataset)
    half.SetImplicitFunction(plane)
    half.ExtractInsideOff()  # keep the side the normal points to: the scar's
    half.ExtractBoundaryCellsOn()
    half.Update()
    cut = picture.with_suffix(".half.vtk")
    write_mesh(Mesh(dataset=half.GetOutput(), space=mesh.space), cut)
    context = csl.create_scene()
    view = OffscreenThreeDView(context.scene, context.application_logic, size=(800, 800), background=(0.12, 0.13, 0.18))
    node = csl.load_model(context.scene, cut)
    tag_model_node(node, core_field="core_probability", color_logic=context.color_logic)
    view.capture(node, azimuth=0.0, elevation=20.0, path=picture)
    view.close()
    cut.unlink()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
