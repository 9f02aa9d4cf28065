"""``cardioscar mesh-from-labels``: a myocardium mesh for a patient who has a segmented stack but no mesh.

Kept in its own module (registered by :func:`cardioscar.cli.build_parser`); the work is
:func:`cardioscar.prepare.mesh_from_labels.myocardium_mesh_from_labels`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

MESH_OUTPUT_SUFFIXES = (".vtu", ".vtk")


def register(subparsers) -> None:
    """Add the ``mesh-from-labels`` verb (parser and handler) to the command line."""
    from cardioscar.cli import _comma_ints

    verb = subparsers.add_parser(
        "mesh-from-labels",
        help="hexahedral myocardium mesh (LPS) from a label stack, shape-interpolated between its slices")
    verb.add_argument("--labels", required=True, type=Path, help="label map (NIfTI, NRRD, MHA or DICOM folder), slices along k")
    verb.add_argument("--myocardium-labels", type=_comma_ints("--myocardium-labels"), default=[2, 3, 4],
                      help="labels that are myocardium (default 2,3,4: EMIDEC's normal, infarct, no-reflow)")
    verb.add_argument("--exclude-slices", type=_comma_ints("--exclude-slices"), default=None,
                      help="slice indices k whose labels must not shape the mesh (e.g. a slice held out for validation)")
    verb.add_argument("--spacing", type=float, default=1.5, help="voxel edge in mm (default 1.5)")
    verb.add_argument("--output", required=True, type=Path, help="output mesh (.vtu or .vtk), written with SPACE=LPS")
    verb.set_defaults(handler=_cmd_mesh_from_labels)


def _cmd_mesh_from_labels(args: argparse.Namespace) -> None:
    from cardioscar.errors import CardioScarError

    if args.output.suffix.lower() not in MESH_OUTPUT_SUFFIXES:  # before the heavy imports: a refusal costs none
        raise CardioScarError(f"--output must end in .vtu or .vtk (a volumetric mesh), got '{args.output.name}'")
    from cardioscar.io.imageio import read_image
    from cardioscar.prepare.mesh_from_labels import myocardium_mesh_from_labels
    from cardioscar.io.meshio import write_mesh

    mesh = myocardium_mesh_from_labels(read_image(args.labels), args.myocardium_labels,
                                       held_out_k=args.exclude_slices, spacing_mm=args.spacing)
    write_mesh(mesh, args.output)  # its line names the file, its nodes, cells and frame
