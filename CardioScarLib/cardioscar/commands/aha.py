"""``cardioscar aha``: the AHA 17-segment table, bull's-eye and segmented mesh of a prediction.

Lives beside ``cli.py`` (which registers it with one line) so the verb's options and handler
stay in one place; heavy modules load only when the verb runs.
"""

from __future__ import annotations

import argparse
import logging
import re
from pathlib import Path
from typing import Optional

import numpy as np

logger = logging.getLogger("cardioscar")


DEFAULT_UNCERTAINTY = "scar_uncertainty"
#: (option, the option it needs, its default): given without the option it belongs to, it would be ignored.
_DEPENDENT_OPTIONS = (("rv_inferior_point", "rv_point", None), ("rv_label", "labels", 1),
                      ("myocardium_label", "labels", 2), ("lv_value", "lv_mask", None),
                      ("border_zone_tag", "tags_field", None), ("core_tag", "tags_field", None))


#: A negative number or comma-separated numbers starting with one (argparse's own pattern plus commas):
#: a point -12.5,30,41, and since round 15 ``export --helix-angles -60,60`` too, which was refused with
#: "expected one argument".
NEGATIVE_POINT = re.compile(r"^-\d+$|^-\d*\.\d+$|^-[\d.]+(?:[eE][-+]?\d+)?(?:,\s*-?[\d.]+(?:[eE][-+]?\d+)?)*$")


def _point(text: str) -> tuple[float, float, float]:
    try:
        values = tuple(float(part) for part in text.replace(" ", "").split(","))
    except ValueError:
        values = ()
    if len(values) != 3 or not all(np.isfinite(values)):
        raise argparse.ArgumentTypeError(f"must be three numbers X,Y,Z in mm, e.g. 12.5,-30,41 (got {text!r})")
    return values  # type: ignore[return-value]


def register(subparsers) -> None:
    """Add the ``aha`` verb to the ``cardioscar`` command line."""
    aha = subparsers.add_parser(
        "aha", help="AHA 17-segment scar burden, transmurality and a bull's-eye plot of a predicted mesh",
        description="Writes OUTPUT_DIR/aha.csv, aha.json, bullseye.png and aha_mesh.<ext> (aha_segment point and "
                    "cell arrays). Points are in the mesh file's own frame (its SPACE marker).")
    # a point such as -12.5,30,41 is a value, not an option (argparse only knows plain negative numbers)
    aha._negative_number_matcher = NEGATIVE_POINT
    aha.add_argument("--mesh", required=True, type=Path, help="mesh with the predicted field (e.g. from `apply`)")
    aha.add_argument("--output-dir", required=True, type=Path)
    aha.add_argument("--field", default="scar_probability", help="point field measured (default scar_probability)")
    aha.add_argument("--threshold", type=float, default=0.5, help="scar where field >= threshold (default 0.5)")
    aha.add_argument("--uncertainty-field", default=DEFAULT_UNCERTAINTY,
                     help="point field averaged per segment when present (default scar_uncertainty)")
    insertion = aha.add_mutually_exclusive_group()
    insertion.add_argument("--rv-point", type=_point, help="anterior RV insertion X,Y,Z (boundary of segments 1|2)")
    insertion.add_argument("--labels", type=Path, help="label map with an RV blood-pool label: the insertions are found "
                                                       "where the RV touches the myocardium")
    aha.add_argument("--rv-inferior-point", type=_point,
                     help="inferior RV insertion X,Y,Z (boundary 3|4); without it the septum is taken as 120 degrees")
    aha.add_argument("--rv-label", type=int, default=1, help="RV blood pool label of --labels (ACDC: 1)")
    aha.add_argument("--myocardium-label", type=int, default=2, help="LV myocardium label of --labels (ACDC: 2)")
    aha.add_argument("--apex", type=_point, help="apex point X,Y,Z (with --base: the long axis)")
    aha.add_argument("--base", type=_point, help="centre of the base X,Y,Z")
    aha.add_argument("--slice-normal-from", type=Path,
                     help="short-axis image whose slice normal is the long axis (otherwise the mesh's shape)")
    aha.add_argument("--lv-mask", help="point field marking the LV nodes (a biventricular mesh: only they are "
                                       "segmented): non-zero, or equal to --lv-value")
    aha.add_argument("--lv-value", type=float, help="value of --lv-mask on LV nodes (e.g. a region label)")
    aha.add_argument("--tags-field", help="point field of scar tags; nodes equal to --border-zone-tag are border zone")
    aha.add_argument("--border-zone-tag", type=int, default=None,
                     help="border-zone value of --tags-field (default 1; on export's tissue_tag, the value the "
                          "export noted on the mesh, 2 by default; give it there only if the note is missing)")
    aha.add_argument("--core-tag", type=int, default=None,
                     help="dense-core value of --tags-field: adds each segment's core %% (3 for export's default "
                          "tags; default: no core column)")
    aha.add_argument("--transmurality", choices=("auto", "required", "off"), default="auto",
                     help="auto: computed on a volumetric mesh, estimated on a surface mesh; required: refuse a "
                          "surface mesh; off: none")
    aha.set_defaults(handler=run)


def _in_lps(point: Optional[tuple], space: str) -> Optional[np.ndarray]:
    if point is None:
        return None
    return np.asarray(point, dtype=float) * (np.array([-1.0, -1.0, 1.0]) if space == "RAS" else 1.0)


def _refuse_ignored(args: argparse.Namespace) -> None:
    """Options that would be ignored are refused, naming what they need."""
    from cardioscar.errors import CardioScarError

    for name, needs, default in _DEPENDENT_OPTIONS:
        if getattr(args, name) != default and getattr(args, needs) is None:
            flag, other = (f"--{n.replace('_', '-')}" for n in (name, needs))
            raise CardioScarError(f"{flag} needs {other} (it would be ignored without it)")
    if args.slice_normal_from is not None and args.apex is not None:
        raise CardioScarError("give the long axis once: --apex/--base or --slice-normal-from, not both")


def run(args: argparse.Namespace) -> None:
    """Handler of ``cardioscar aha``: the options' own checks first, so that a refused name costs
    no import of VTK or SimpleITK."""
    from cardioscar.io.checks import check_output_dir, check_vtk_file

    _refuse_ignored(args)
    check_output_dir(args.output_dir, "--output-dir")
    check_vtk_file(args.mesh)
    from cardioscar.aha import AhaOptions, LabelMap, run_aha
    from cardioscar.aha.insertion import ijk_to_lps_of
    from cardioscar.aha.table import scar_per_segment
    from cardioscar.io.imageio import read_image
    from cardioscar.io.meshio import read_mesh

    mesh = read_mesh(args.mesh)
    if args.uncertainty_field != DEFAULT_UNCERTAINTY and args.uncertainty_field not in mesh.point_field_names():
        mesh.point_array(args.uncertainty_field)  # named explicitly: a missing field is an error that lists them
    options = AhaOptions(field=args.field, uncertainty_field=args.uncertainty_field, threshold=args.threshold,
                         rv_point=_in_lps(args.rv_point, mesh.space),
                         rv_inferior_point=_in_lps(args.rv_inferior_point, mesh.space),
                         apex=_in_lps(args.apex, mesh.space), base=_in_lps(args.base, mesh.space),
                         lv_mask_field=args.lv_mask, lv_mask_value=args.lv_value, tags_field=args.tags_field,
                         border_zone_tag=args.border_zone_tag, core_tag=args.core_tag,
                         transmurality=args.transmurality)
    if args.labels is not None:
        import SimpleITK as sitk

        image = read_image(args.labels)
        options.labels = LabelMap(sitk.GetArrayFromImage(image), ijk_to_lps_of(image), args.labels.name,
                                  rv_label=args.rv_label, myocardium_label=args.myocardium_label)
    if args.slice_normal_from is not None:
        image = read_image(args.slice_normal_from)
        options.slice_normal = np.asarray(image.GetDirection(), dtype=float).reshape(3, 3)[:, 2]
        options.slice_normal_source = f"slice normal of {args.slice_normal_from.name}"
    result = run_aha(mesh, args.output_dir, options)
    logger.info("AHA scar per segment: %s", scar_per_segment(result.rows))
    lv = result.summary["lv"]
    unit, name = ("ml", "volume_ml") if "scar_volume_ml" in lv else ("cm2", "area_cm2")
    logger.info("LV scar: %.2f %s of %.2f %s of myocardium (%.1f %%)", lv[f"scar_{name}"], unit,
                lv[f"myocardial_{name}"], unit, lv["scar_pct"] or 0.0)
    bands = result.summary.get("bands", {})  # one field's probability bands, by their names, not as tissue
    named = bands.items() if bands else (("border_zone_pct", "border zone"), ("core_pct", "dense core"))
    tagged = [f"{what} {lv[key]:.1f} %" for key, what in named if lv.get(key) is not None]
    if tagged:
        logger.info("LV %s by --tags-field %s: %s of the myocardium", "bands of one scar field" if bands else "tissue",
                    args.tags_field, ", ".join(tagged))
    # aha_mesh.* had its own line (nodes, cells, fields) as it was written
    logger.info("Wrote aha.csv, aha.json and bullseye.png into %s", args.output_dir)
