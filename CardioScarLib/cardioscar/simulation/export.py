"""The ``cardioscar export`` verb and its API function: a predicted mesh -> tagged simulator files.

VTK is imported inside the functions so that building the CLI parser stays fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
from pathlib import Path

from typing import TYPE_CHECKING

from ..errors import CardioScarError
from ..io.checks import (SAME_NODE_TOLERANCE_MM, check_not_an_input, check_output_path, check_prefix,
                         check_scar_field_name, check_vtk_file)

if TYPE_CHECKING:
    import numpy as np

    from ..io.meshio import Mesh
    from .tags import TissueTags

logger = logging.getLogger(__name__)

#: How far (mm) a --core-mesh node may lie from the same node of --mesh (the Slicer Logic's name).
CORE_MESH_TOLERANCE_MM = SAME_NODE_TOLERANCE_MM
#: The core model's point fields a ``.vtu`` export carries beside the scar model's, and their names
#: there: how unsure the core's boundary is (is a border-zone channel through the core real?) is
#: read from them, and the scar's own names would be ambiguous beside the scar model's.
CORE_COPIES = {"scar_probability": "core_probability", "scar_uncertainty": "core_uncertainty",
               "scar_error_risk": "core_error_risk"}


def export_model(mesh_path: str | Path, output: str | Path, fmt: str = "opencarp", units: str = "um",
                 space: str | None = None, scar_field: str = "scar_probability", core_field: str | None = None,
                 border_zone: float | None = None, core: float | None = None,
                 tag_values: tuple[int, int, int] = (1, 2, 3), fibres_field: str | None = None,
                 scar_rule: dict | None = None, core_mesh: str | Path | None = None,
                 helix_deg: tuple[float, float] | None = None) -> tuple["TissueTags", dict[str, Path]]:
    """Tag the predicted mesh and write it for a simulator; returns the tags and the files written.

    ``fibres_field="rule"``: the LV fibre rule's fibres and sheets (:mod:`.fibres`, helix angles
    ``helix_deg`` at the endocardium and epicardium, default 60, -60), recorded as rule-based in ``PREFIX.json``.

    The core field is ``core_field`` of ``mesh_path``, or of ``core_mesh`` (the core model's
    prediction on the same mesh; ``core_field`` then defaults to ``scar_probability``).
    """
    if fmt not in ("opencarp", "vtu"):
        raise CardioScarError(f"--format '{fmt}' must be opencarp or vtu")
    check_helix_with_rule(fibres_field, helix_deg)
    if fmt == "opencarp":
        check_prefix(output)  # before any work, as every check of the options
    # a read-only or missing place was found only when the files were written, after the tagging
    # and the fibre rule (round 18); every other verb checks its outputs before any work
    first = Path(output)
    target = (first if fmt == "vtu" and first.suffix.lower() == ".vtu"
              else first.with_name(first.name + (".pts" if fmt == "opencarp" else ".vtu")))
    check_output_path(target, "--output")
    check_not_an_input(target, (mesh_path, core_mesh), "--output")  # a .vtu over the prediction it tags
    check_scar_field_name(scar_field, "--scar-field")
    check_scar_field_name(core_field, "--core-field")
    refuse_scar_as_core(scar_field, core_field or (None if core_mesh is None else "scar_probability"),
                        core_mesh is None or Path(core_mesh).resolve() == Path(mesh_path).resolve())
    check_vtk_file(mesh_path)
    import numpy as np  # after the options' checks: a refused name costs no import of VTK
    from vtk.util.numpy_support import vtk_to_numpy

    from ..io.meshio import node_offset_mm, read_mesh
    from .fibres import RULE_NAME
    from .opencarp import warn_if_centimetres
    from .tags import tag_mesh, warn_border_zone_off_the_call, warn_edge_as_border_zone

    mesh = read_mesh(mesh_path)
    warn_if_centimetres(mesh.points_lps(), Path(mesh_path).name, "exporting")
    try:
        scar = mesh.point_array(scar_field)
    except CardioScarError as error:
        raise CardioScarError(f"--mesh: {error}; give the mesh written by cardioscar apply, or name the scar field "
                              "with --scar-field") from None
    # with --core-mesh, --core-field names the core model's field, which the scar's mesh need not have
    core_values = None if core_field is None or core_mesh is not None else mesh.point_array(core_field)
    if core_mesh is not None:
        other = read_mesh(core_mesh)
        if other.n_points != mesh.n_points:
            raise CardioScarError(f"--core-mesh {Path(core_mesh).name} has {other.n_points} nodes but --mesh has "
                                  f"{mesh.n_points}: apply the core model to the same mesh")
        offset = node_offset_mm(other, mesh)
        if offset > CORE_MESH_TOLERANCE_MM:
            raise CardioScarError(f"--core-mesh {Path(core_mesh).name} has as many nodes as --mesh, but not at the "
                                  f"same places (up to {offset:.3g} mm apart): apply the core model to the same mesh "
                                  "file")
        core_values = other.point_array(core_field or "scar_probability")
        check_one_rule(recorded_rule(mesh), recorded_rule(other), Path(mesh_path).name, Path(core_mesh).name)
        check_core_labels(mesh.dataset, recorded_rule(mesh), other.dataset, f"--core-mesh {Path(core_mesh).name}")
        if fmt == "vtu":
            _copy_core_fields(other, mesh, core_field or "scar_probability")
    check_rule_from(scar_rule, recorded_rule(mesh) if scar_field == "scar_probability" else None,
                    Path(mesh_path).name)
    if scar.ndim != 1 or (core_values is not None and core_values.ndim != 1):
        raise CardioScarError(f"{Path(mesh_path).name}: the scar/core fields must have one value per node")
    if mesh.dataset.GetNumberOfCells() == 0:
        raise CardioScarError(f"{mesh_path} has no cells: exporting elements needs volume cells (tetrahedra, "
                              "hexahedra, ...) or surface cells")
    tags = tag_mesh(mesh.dataset, scar, core_values, border_zone, core, tag_values)
    if scar_field == "scar_probability":
        warn_border_zone_off_the_call(mesh.dataset, scar, tags.border_zone, Path(mesh_path).name)
        warn_edge_as_border_zone(tags, Path(mesh_path).name)
    else:  # apply's note of the targets describes its scar_probability, not another field of the mesh
        tags = dataclasses.replace(tags, scar_targets=None, model_target=None)
    if tags.element_areas_mm2 is not None:
        logger.warning("%s has no volume cells: the exported model is a surface without thickness (a wall's "
                       "transmural scar cannot be simulated on it) and its class shares are of area; export the "
                       "volumetric mesh's prediction for a ventricular model", Path(mesh_path).name)
    fibres = RULE_NAME if fibres_field == RULE_NAME else None
    if fibres_field not in (None, RULE_NAME):
        array = mesh.dataset.GetCellData().GetArray(fibres_field)
        if array is None:
            raise CardioScarError(f"{Path(mesh_path).name} has no cell field '{fibres_field}' for --fibres; the "
                                  "fibres must be a cell array of 3 (fibre) or 6 (fibre+sheet) components")
        fibres = np.array(vtk_to_numpy(array)).reshape(mesh.dataset.GetNumberOfCells(), -1)
        if fmt == "vtu":
            _drop_fibre_source(mesh, fibres_field)
    return tags, write_simulator_files(mesh, tags, output, fmt, units, space, fibres, scar_rule, helix_deg)


def _drop_fibre_source(mesh: "Mesh", fibres_field: str) -> None:
    """Leave the ``--fibres CELLFIELD`` array itself out of a ``.vtu`` export (``mesh`` is read for
    this export, not the user's file), which carries the field as the unit, perpendicular cell
    vectors ``fibre`` and ``sheet``. Why: beside them it was a second fibre field that disagreed
    with the first (not normalised, the sheet leaning), and a simulator told to read it read the
    directions the export had refused or corrected."""
    from .opencarp import FIBRE_ARRAY, SHEET_ARRAY

    if fibres_field not in (FIBRE_ARRAY, SHEET_ARRAY):
        mesh.dataset.GetCellData().RemoveArray(fibres_field)
        logger.info("The .vtu carries --fibres %s as the cell vectors %s and %s (unit, the sheet perpendicular), "
                    "not the cell field %s itself", fibres_field, FIBRE_ARRAY, SHEET_ARRAY, fibres_field)


def _copy_core_fields(core: "Mesh", mesh: "Mesh", core_field: str) -> None:
    """Add the core model's prediction fields to ``mesh`` (read for this export, not the user's
    file) under :data:`CORE_COPIES`' names, those it has. With another ``--core-field`` than its
    ``scar_probability``, ``core_probability`` is that field (the one the core tags came from) and
    the spread and risk, which describe ``scar_probability``, are left out."""
    import numpy as np
    from vtk.util.numpy_support import numpy_to_vtk

    copies = CORE_COPIES if core_field == "scar_probability" else {core_field: "core_probability"}
    names = set(core.point_field_names())
    for name, copy_name in copies.items():
        if name in names:
            array = numpy_to_vtk(np.ascontiguousarray(core.point_array(name)), deep=1)
            array.SetName(copy_name)
            mesh.dataset.GetPointData().RemoveArray(copy_name)
            mesh.dataset.GetPointData().AddArray(array)


def check_helix_with_rule(fibres: "np.ndarray | str | None", helix_deg: "tuple[float, float] | str | None") -> None:
    """Refuse helix angles without the LV fibre rule, the only fibres they shape.

    Why: the command line refused ``--helix-angles`` without ``--fibres rule``, but the Python API's
    ``export_model(..., helix_deg=(50, -50))`` and the Slicer Logic's ``export_model_node`` took them
    with no fibres or a cell field and wrote no rule fibres without a word, exit 0 (a ``.vtu`` with
    no fibres and no warning either)."""
    if helix_deg is None:
        return
    from .fibres import RULE_NAME  # only with angles: the fibre module loads VTK, which a refusal must not wait for

    if not (isinstance(fibres, str) and fibres == RULE_NAME):
        raise CardioScarError("--helix-angles is for --fibres rule (the LV fibre rule's angles): add --fibres rule, or "
                              "leave --helix-angles out")


def write_simulator_files(mesh: "Mesh", tags: "TissueTags", output: str | Path, fmt: str = "opencarp",
                          units: str = "um", space: str | None = None, fibres: "np.ndarray | str | None" = None,
                          scar_rule: dict | None = None, helix_deg: tuple[float, float] | None = None
                          ) -> dict[str, Path]:
    """Write a tagged mesh for a simulator: openCARP files at the prefix ``output`` (the set as a
    whole: all new files, or the previous ones untouched), or one ``.vtu`` (atomically; the suffix
    added when missing); the files written by suffix. The command line's ``export``, the Slicer
    Logic's ``export_model_node`` and the panel's worker all write through this. ``fibres="rule"``:
    the LV fibre rule's (:mod:`.fibres`, helix angles ``helix_deg``, default 60, -60), recorded as
    rule-based in the .json (the .vtu's ``CardioScarFibreRule`` note); an openCARP set without fibres
    is warned (openCARP reads PREFIX.lon). A .vtu gets the fibres as the cell vectors ``fibre`` and
    ``sheet`` (it wrote none, silently, before)."""
    from .fibres import DEFAULT_HELIX_DEG, GIVE_FIBRES, RULE_NAME, rule_fibres
    from .opencarp import warn_about_pieces, write_opencarp, write_tagged_vtu

    if fmt not in ("opencarp", "vtu"):  # before the rule's work
        raise CardioScarError(f"Export format '{fmt}' must be opencarp or vtu")
    check_helix_with_rule(fibres, helix_deg)
    warn_about_pieces(mesh)
    fibre_rule = None
    if isinstance(fibres, str) and fibres == RULE_NAME:
        helix_deg = DEFAULT_HELIX_DEG if helix_deg is None else helix_deg
        fibres, fibre_rule = rule_fibres(mesh, helix_deg)
    if fmt == "opencarp":
        files = write_opencarp(mesh, tags, output, units=units, space=space, fibres=fibres, scar_rule=scar_rule,
                               fibre_rule=fibre_rule)
        if fibres is None:  # openCARP reads PREFIX.lon with the mesh
            name = Path(output).name
            logger.warning("no %s.lon was written (no --fibres): openCARP reads a fibre file with the mesh "
                           f"(-meshname %s); {GIVE_FIBRES}, before simulating", name, name)
        return files
    target = Path(output)
    target = target if target.suffix.lower() == ".vtu" else target.with_name(target.name + ".vtu")
    write_tagged_vtu(mesh, tags, target, fibres, fibre_rule)
    return {".vtu": target}


def refuse_scar_as_core(scar_field: str, core_field: str | None, same_mesh: bool) -> None:
    """Refuse the scar field given as the core field (``--core-mesh`` the ``--mesh`` file itself, or
    ``--core-field`` naming the scar field): the "core" was then the scar cut at ``--core`` 0.5,
    and the sidecar called it a second model's core (as the Slicer *Core model* refuses the model
    to tag)."""
    if same_mesh and core_field == scar_field:
        raise CardioScarError(f"the core field is the scar field '{scar_field}' of the same mesh (--core-mesh the --mesh "
                              "file, or --core-field the scar field): give the core model's prediction (prepare "
                              "--scar-target core, train, apply), or leave it out to grade the scar field alone at "
                              "--border-zone and --core")


def recorded_rule(mesh: "Mesh") -> dict | None:
    """The scar-rule record ``apply`` noted on its output (its model's training data's), or None."""
    import json

    from ..io.meshio import SCAR_RULE_ARRAY, text_field

    text = text_field(mesh.dataset, SCAR_RULE_ARRAY)
    return json.loads(text) if text else None


def check_one_rule(scar: dict | None, core: dict | None, mesh_name: str, core_name: str) -> None:
    """Refuse a ``--mesh`` and ``--core-mesh`` whose models' records (``scar``, ``core``; None: a model
    trained without a rule, or an older apply's output) say the targets the other way round, or two
    definitions of the classes (:func:`cardioscar.lge.rules.rule_definition`): the border zone of one
    rule beside the core of another (a core over the whole wall beside a scar cut to the experts')
    was tagged without a word, where the Slicer module refuses the pair."""
    from ..lge.rules import rule_definition

    if scar is not None and scar.get("target", "scar") != "scar":
        raise CardioScarError(f"--mesh {mesh_name} is the prediction of a model that learned the core (prepare "
                              "--scar-target core): give the scar model's prediction as --mesh and this one as "
                              "--core-mesh")
    if core is not None and core.get("target", "scar") != "core":
        raise CardioScarError(f"--core-mesh {core_name} is the prediction of a model that learned the scar (border "
                              "zone + core), not the core: give the prediction of a model prepared with --scar-target "
                              "core")
    if scar is not None and core is not None and rule_definition(scar) != rule_definition(core):
        raise CardioScarError(f"--mesh {mesh_name} and --core-mesh {core_name} come from models trained on different "
                              f"scar rules ({rule_definition(scar)} vs {rule_definition(core)}): the border zone and the "
                              "core must come from one rule; prepare both with the same --scar-rule, "
                              "--scar-thresholds, --intensity-offset and --expert-scar-labels / --expert-core-labels")


def _label_set(text: str | None) -> frozenset[int]:
    return frozenset(int(part) for part in text.split(",") if part.strip()) if text else frozenset()


def check_core_labels(scar_dataset, scar_rule: dict | None, core_dataset, core_name: str) -> None:
    """Refuse a core prediction (``core_name``: ``--core-mesh FILE``, or the Slicer *Core model*)
    whose model learned the very labels that are the scar model's scar (``prepare --scar-labels
    3,4``, noted by ``apply`` and a Slicer run as ``CardioScarScarLabels``; the scar model's own
    labels, or its rule's ``expert_scar_labels``): that "core" is the whole scar, and the border
    zone vanished without a word (EMIDEC P022's labels model given as the core of the experts' scar
    split by n-SD: border zone 14.7 -> 1.5 ml, core 31.1 -> 45.3 ml, exit 0)."""
    from ..io.meshio import SCAR_LABELS_ARRAY, text_field

    core_labels = _label_set(text_field(core_dataset, SCAR_LABELS_ARRAY))
    scar_labels = _label_set(text_field(scar_dataset, SCAR_LABELS_ARRAY)) or frozenset(
        int(v) for v in (scar_rule or {}).get("expert_scar_labels") or ())
    if core_labels and core_labels == scar_labels:
        labels = ",".join(str(v) for v in sorted(core_labels))
        raise CardioScarError(f"{core_name} is the prediction of a model that learned the labels {labels}, "
                              "the scar model's own scar, not its core: give a core model's prediction (prepare "
                              "--scar-labels of the core, e.g. EMIDEC's no-reflow 4, or --scar-target core with the "
                              "scar rule)")


def check_rule_from(given: dict | None, recorded: dict | None, mesh_name: str) -> None:
    """Refuse a ``--rule-from`` record that defines the classes otherwise than the one ``apply`` noted
    on the ``--mesh`` (its scar model's): the sidecar would describe another scar than the one tagged."""
    from ..lge.rules import rule_definition

    if given is not None and recorded is not None and rule_definition(given) != rule_definition(recorded):
        raise CardioScarError(f"--rule-from describes the scar rule {rule_definition(given)}, but the model of --mesh "
                              f"{mesh_name} was trained on {rule_definition(recorded)}: give the training data .npz "
                              "of the scar model that --mesh is the prediction of")


#: Said after one field's class lines (:func:`summary_lines`): what its tags 2 and 3 are not.
ONE_FIELD_BANDS = ("tags {border} and {core} are probability bands of one scar field, not border-zone and core tissue "
                   "(those need a core model's field beside the scar model's)")


def summary_lines(tags: "TissueTags") -> list[str]:
    """One line per class (two fields: its name; one field: its band, :meth:`TissueTags.class_labels`):
    tag, nodes, elements, volume (ml; area in cm^2 on a surface mesh) and percentage of the tagged
    volume (area); with one field, a last line saying its bands are no tissue classes."""
    from .tags import CLASS_NAMES

    labels = CLASS_NAMES if tags.two_fields else tags.class_labels()
    lines = [f"{label:12s} tag {row['tag']}: {row['nodes']} nodes, {row['elements']} elements, "
             + (f"{row['area_cm2']:.2f} cm2" if "area_cm2" in row else f"{row['volume_ml']:.2f} ml")
             + f" ({row['percent']:.1f} %)" for label, row in zip(labels, tags.summary().values())]
    if not tags.two_fields:
        lines.append(ONE_FIELD_BANDS.format(border=tags.tag_values[1], core=tags.tag_values[2]))
    return lines


def scar_rule_of(training_data: str | Path) -> dict:
    """The scar-rule record that ``prepare --scar-rule`` wrote into a training-data ``.npz``: the
    scar field's (``target`` scar). The sidecar describes how the tagged scar field was defined,
    and every face writes the record whole, with its ``target``; a core model's record (and its
    field as the scar field) would tag its core as border zone, so it is refused here as the
    Slicer module refuses to tag a core model."""
    import json

    import numpy as np

    source = Path(training_data)
    if source.suffix.lower() != ".npz":
        raise CardioScarError(f"--rule-from {source.name}: give the training data .npz that prepare --scar-rule wrote "
                              "(e.g. scar.npz), not the model or mesh")
    try:
        with np.load(source, allow_pickle=False) as data:
            text = str(data["scar_rule"]) if "scar_rule" in data.files else ""
    except (OSError, ValueError) as error:
        raise CardioScarError(f"--rule-from {source}: not a readable training-data .npz ({error})") from None
    if not text:
        raise CardioScarError(f"--rule-from {source} holds no scar rule: it was prepared without --scar-rule")
    record = json.loads(text)
    if record.get("target", "scar") != "scar":
        raise CardioScarError(f"--rule-from {source.name} was prepared with --scar-target {record.get('target')}: give "
                              "the scar model's training data (--scar-target scar); the core model's prediction goes "
                              "in --core-mesh")
    return record


def parse_tags(text: str) -> tuple[int, int, int]:
    """``HEALTHY,BORDER,CORE`` tag numbers (``--tags``, the panel's tag numbers)."""
    try:
        values = tuple(int(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise CardioScarError(f"--tags '{text}' must be three integers HEALTHY,BORDER,CORE, e.g. 1,2,3")
    return values  # type: ignore[return-value]


def parse_helix(text: str) -> tuple[float, float]:
    """``ENDO,EPI`` degrees of ``--helix-angles``, or a one-line error."""
    try:
        endo, epi = (float(part) for part in text.split(","))
    except ValueError:
        raise CardioScarError(f"--helix-angles '{text}' must be two numbers ENDO,EPI in degrees (e.g. 60,-60)") from None
    return endo, epi


def check_units_for_format(units: str | None, fmt: str) -> None:
    """Refuse ``--units`` with ``--format vtu``: the option sets the openCARP ``.pts`` alone.

    Why: ``export --format vtu --units um`` wrote the ``.vtu`` in the mesh's millimetres without a
    word, exit 0; a modeller who then converts it for openCARP (meshtool keeps the coordinates)
    gets a heart 1,000 times too small, believing it was written in micrometres."""
    if units is not None and fmt == "vtu":
        raise CardioScarError(f"--units {units} sets the openCARP .pts alone: a .vtu keeps the mesh's millimetres; "
                              "leave --units out with --format vtu (its points stay in mm: scale them by 1,000 for "
                              "openCARP), or export --format opencarp for micrometre .pts")


def _run(args: argparse.Namespace) -> None:
    check_helix_with_rule(args.fibres, args.helix_angles)
    check_units_for_format(args.units, args.format)
    tags, _ = export_model(args.mesh, args.output, args.format, args.units or "um", args.space, args.scar_field,
                               args.core_field, args.border_zone, args.core, parse_tags(args.tags), args.fibres,
                               core_mesh=args.core_mesh, helix_deg=None if args.helix_angles is None else parse_helix(args.helix_angles),
                               scar_rule=None if args.rule_from is None else scar_rule_of(args.rule_from))
    for line in summary_lines(tags):  # the files were each said once, as written
        logger.info(line)


def register(subparsers) -> None:
    """Add the ``export`` verb to the CLI."""
    from ..commands.aha import NEGATIVE_POINT

    parser = subparsers.add_parser("export", help="tag healthy/border zone/core and write openCARP (.pts/.elem/.lon) "
                                                  "or .vtu files")
    parser._negative_number_matcher = NEGATIVE_POINT  # --helix-angles -60,60 is a value, not an option
    parser.add_argument("--mesh", required=True, type=Path, help="predicted mesh (from apply) with the scar field")
    parser.add_argument("--output", required=True, type=Path, help="output prefix (PREFIX.pts, ...) or PREFIX.vtu")
    parser.add_argument("--format", choices=("opencarp", "vtu"), default="opencarp")
    parser.add_argument("--units", choices=("um", "mm"), default=None,
                        help=".pts units (default um, which openCARP reads; a .vtu keeps the mesh's mm)")
    parser.add_argument("--space", choices=("LPS", "RAS"), default=None,
                        help="coordinate frame of the written points (default: the mesh file's own)")
    parser.add_argument("--scar-field", default="scar_probability", help="point field of scar (border zone + core)")
    parser.add_argument("--core-field", default=None, help="optional point field of core probability (second model)")
    parser.add_argument("--core-mesh", type=Path, default=None,
                        help="the core model's prediction on the same mesh (its --core-field, default scar_probability)")
    parser.add_argument("--border-zone", type=float, default=None, help="border-zone threshold (default 0.5)")
    parser.add_argument("--core", type=float, default=None,
                        help="core threshold (default 0.8 on the scar field, 0.5 on --core-field)")
    parser.add_argument("--tags", default="1,2,3", help="region tags HEALTHY,BORDER,CORE (default 1,2,3)")
    parser.add_argument("--rule-from", type=Path, default=None, metavar="NPZ",
                        help="training data made by prepare --scar-rule: its rule and statistics go into PREFIX.json")
    parser.add_argument("--fibres", default=None, help="cell field with fibre (3) or fibre+sheet (6) directions, or "
                                                       "'rule': the LV fibre rule (rule-based, LV only)")
    parser.add_argument("--helix-angles", default=None, metavar="ENDO,EPI",
                        help="with --fibres rule: helix angles (degrees) at the endocardium and epicardium "
                             "(default 60,-60, Streeter 1969)")
    parser.set_defaults(handler=_run)
