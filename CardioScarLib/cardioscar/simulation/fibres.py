"""A rule-based left-ventricular fibre field for the openCARP export (``export --fibres rule``).

Why: openCARP reads a fibre file (``PREFIX.lon``) with the mesh, and most meshes here
(``mesh-from-labels``, the phantoms, many patient meshes) carry no fibres. The classic rule
gives every element of the LV wall a fibre in the wall's local circumferential-longitudinal
plane whose *helix angle* varies linearly with transmural depth, from +60 degrees at the
endocardium to -60 degrees at the epicardium (Streeter et al. 1969, Circ Res 24:339, measured
angles; the rule-based assignment as in Bayer et al. 2012, Ann Biomed Eng 40:2243), and the
sheet along the transmural direction. The fibres are *rule-based*, not measured, and LV-only:
no right ventricle (the record in ``PREFIX.json`` says so); a mesh of both ventricles is refused
(:mod:`cardioscar.aha.one_ventricle`), not given LV fibres on its RV.

Frame, in LPS (right-handed): ``e_t`` the transmural direction, ``e_l`` the apex-to-base axis
made perpendicular to ``e_t``, ``e_c = e_l x e_t`` (counter-clockwise seen from the base). The
fibre is ``cos(a) e_c + sin(a) e_l``: a positive angle a right-handed helix (the subendocardium),
a negative one left-handed (the subepicardium). ``e_t`` and the depth come, by default
(``transmural="laplace"``), from a Laplace solve in the wall (:mod:`.transmural`: phi 0 on the
endocardium, 1 on the epicardium; ``e_t`` its gradient over the element, the depth phi there), as
in Bayer et al. 2012; ``transmural="nearest"`` keeps the earlier frame: the nearest endocardial
node to the nearest epicardial node, depth ``d_endo / (d_endo + d_epi)`` at the element's centre
(:mod:`cardioscar.aha.wall`). Why Laplace: the nearest nodes jump where a stair step's face node
is nearest, or changes side with a few degrees of axis, and are one node at an open end's rim
(``Testing/benchmarks/fibre_rule_fallback.py``). The record names which (``transmural``).

Where that frame is undefined the rule falls back (:func:`_frame`), logs how many elements and
names them in its record: ``no_transmural``, no transmural direction (phi constant over the
element, all its nodes on one face; by nearest nodes, one node nearest to both faces, a rim where
the faces meet: an open end, a step where two slices' rings touch), takes the outward direction
from the long axis as ``e_t``; ``along_axis``, ``e_t`` along the axis, takes the circumferential
direction about the axis as the one the helix turns from. They were zero fibres, which the
writers refuse. The axis is the shape's; its sign does not matter (fibre and sheet are axes:
``e_l`` and ``e_c`` both flip).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..aha.segments import LongAxis
from ..aha.wall import WallFaces
from ..errors import CardioScarError
from .transmural import laplace_transmural

logger = logging.getLogger(__name__)

#: Helix angles (degrees) at the endocardium and the epicardium (Streeter et al. 1969).
DEFAULT_HELIX_DEG = (60.0, -60.0)
#: The fibre rule's transmural directions and depths, by name, as its record words them.
TRANSMURAL = {"laplace": "laplace: the gradient of phi solving Laplace's equation in the wall (0 on the endocardium, "
                         "1 on the epicardium); depth phi",
              "nearest": "nearest: from the nearest endocardial to the nearest epicardial node; depth "
                         "d_endo / (d_endo + d_epi)"}
#: The transmural direction the rule takes unless told: smooth, and defined inside the whole wall.
DEFAULT_TRANSMURAL = "laplace"
#: How many of the elements whose frame fell back the record and the log name by id.
NAMED_FALLBACKS = 20
#: Where the rule's frame is undefined, by the kind of fallback (:class:`RuleFrame`), and what it takes there.
FALLBACKS = {"no_transmural": ("no transmural direction: phi constant over the element (all its nodes on one face), "
                               "or, by nearest nodes, the nearest endocardial and epicardial node one node, on a rim "
                               "where the two faces meet", "the outward direction from the long axis as the transmural one"),
             "along_axis": ("the transmural direction runs along the long axis",
                            "the circumferential direction about the axis as the one the helix turns from")}
#: The value of ``--fibres`` that asks for the rule instead of a cell field.
RULE_NAME = "rule"
#: The command line's advice where the rule refuses a mesh, and where an openCARP set has no fibres.
#: Each face words them as its own options (:func:`cardioscar.errors.advice_in_face_words`: the cohort's ``fibres``
#: column, the batch script's ``--fibre-rule``, the panel's box, the Logic's ``fibres``), since only
#: the command line and the Python API take a cell field: "--fibres CELLFIELD" in a manifest's
#: error named an option no manifest has.
WITHOUT_RULE = "export without --fibres rule (or with --fibres CELLFIELD)"
GIVE_FIBRES = ("give --fibres CELLFIELD, a cell array of fibre (or fibre+sheet) directions from a fibre rule or "
               "atlas, or --fibres rule (the LV rule)")


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


@dataclass(frozen=True)
class RuleFrame:
    """Each element's depth in [0, 1] and unit (e_c, e_l, e_t) (see the module docstring), and the
    elements whose frame the rule leaves undefined, which took the fallback instead:
    ``no_transmural`` (no transmural direction: see the module docstring) and ``along_axis`` (the transmural direction along the long axis, as at an apical cap)."""

    depth: np.ndarray
    e_c: np.ndarray
    e_l: np.ndarray
    e_t: np.ndarray
    no_transmural: np.ndarray
    along_axis: np.ndarray


def _circumferential(centres: np.ndarray, axis: LongAxis) -> np.ndarray:
    """The unit direction about the long axis at each centre (``base x radial``); on the axis itself,
    where every direction across it is circumferential, a fixed one across the axis."""
    around = np.cross(axis.base_direction, axis.radial(centres))
    on_axis = np.linalg.norm(around, axis=1) < 1e-9
    if on_axis.any():
        helper = [1.0, 0.0, 0.0] if abs(axis.base_direction[0]) < 0.9 else [0.0, 1.0, 0.0]
        around[on_axis] = np.cross(axis.base_direction, helper)
    return _unit_rows(around)


def nearest_transmural(centres: np.ndarray, endo: np.ndarray, epi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``transmural="nearest"``: each centre's depth (:func:`cardioscar.aha.wall.wall_depth`) and the
    direction from its nearest endocardial node to its nearest epicardial node (not unit; zero
    where they are one node)."""
    from ..aha.wall import wall_depth

    depth, i_endo, i_epi = wall_depth(centres, endo, epi)
    return depth, epi[i_epi] - endo[i_endo]


def _frame(centres: np.ndarray, depth: np.ndarray, transmural: np.ndarray, axis: LongAxis) -> RuleFrame:
    """The rule's frame from each element's depth and transmural direction (any length; zero where
    it is undefined), with the documented fallback where it is undefined.

    Why a fallback: an open end of the wall (a stack of short-axis slices that stops short of the
    apex), or a step where two slices' rings barely overlap, has boundary nodes on both the
    endocardium and the epicardium, and an element at that rim finds one node as both nearest: no
    transmural direction, a zero fibre that every export refused (the Laplace coordinate is
    defined there; it has none only over an element whose nodes all lie on one face).
    There the transmural direction is the outward one from the long axis (what its neighbours'
    endo-to-epi directions approximate on a ring); where the transmural direction runs along the
    axis the longitudinal direction is the one across the circumferential direction, so the fibre
    keeps its helix angle from the circumferential direction about the axis as its neighbours do."""
    e_t = np.array(transmural, dtype=float)
    lengths = np.linalg.norm(e_t, axis=1)
    no_transmural = lengths <= 1e-6 * max(float(np.median(lengths)), 1e-12)
    e_t[no_transmural] = axis.radial(centres[no_transmural])
    e_t = _unit_rows(e_t)
    base = axis.base_direction
    e_l = base - (e_t @ base)[:, None] * e_t
    along_axis = np.linalg.norm(e_l, axis=1) < 1e-3
    e_l[along_axis] = np.cross(e_t[along_axis], _circumferential(centres[along_axis], axis))
    e_l = _unit_rows(e_l)
    return RuleFrame(depth, np.cross(e_l, e_t), e_l, e_t, no_transmural, along_axis)


def rule_frame(points: np.ndarray, lps, wall: WallFaces, axis: LongAxis,
               transmural: str = DEFAULT_TRANSMURAL) -> RuleFrame:
    """The rule's frame on the LPS dataset ``lps`` (its points ``points``) between the wall's faces
    (:func:`~cardioscar.aha.wall.wall_faces` on ``lps``), its transmural direction and depth by
    ``transmural`` (:data:`TRANSMURAL`)."""
    from ..aha.wall import cell_centres

    centres = cell_centres(lps)
    if transmural == "laplace":
        coordinate = laplace_transmural(points, lps, wall, axis)
        logger.info("the fibre rule's Laplace transmural coordinate: %d conjugate-gradient iterations on %d nodes",
                    coordinate.iterations, len(points))
        return _frame(centres, coordinate.depth, coordinate.direction, axis)
    return _frame(centres, *nearest_transmural(centres, points[wall.endo_ids], points[wall.epi_ids]), axis)


def check_transmural(transmural: str) -> str:
    """``transmural`` if it names one of :data:`TRANSMURAL`, or a one-line error."""
    if transmural not in TRANSMURAL:
        raise CardioScarError(f"transmural={transmural!r}: give one of {', '.join(TRANSMURAL)} (the fibre rule's "
                              f"transmural direction; {DEFAULT_TRANSMURAL} unless told)")
    return transmural


def check_helix_angles(helix_deg: tuple[float, float]) -> tuple[float, float]:
    """The (endocardium, epicardium) helix angles, each in [-90, 90] degrees, or a one-line error."""
    angles = tuple(float(a) for a in helix_deg)
    if len(angles) != 2 or not all(np.isfinite(angles)) or any(abs(a) > 90.0 for a in angles):
        raise CardioScarError(f"--helix-angles {helix_deg}: give two angles ENDO,EPI in degrees within [-90, 90] "
                              "(Streeter 1969: 60,-60)")
    return angles  # type: ignore[return-value]


def rule_wall(mesh, helix_deg: tuple[float, float] = DEFAULT_HELIX_DEG):
    """The checked helix angles and the LV wall the rule runs on (``aha.wall.lv_wall``), or the
    rule's one-line refusal: a mesh without volume cells (the rule needs the wall's two faces and
    the depth between) or a biventricular one (:mod:`cardioscar.aha.one_ventricle`). What the
    cohort and the batch script run before training, so that the refusal comes before the fit."""
    from ..aha.wall import lv_wall

    angles = check_helix_angles(helix_deg)
    return angles, lv_wall(mesh, "the fibre rule", f", or {WITHOUT_RULE}")


def rule_fibres(mesh, helix_deg: tuple[float, float] = DEFAULT_HELIX_DEG,
                transmural: str = DEFAULT_TRANSMURAL) -> tuple[np.ndarray, dict]:
    """(n_cells, 6) unit fibre and sheet of each element by the LV rule, in the mesh file's frame,
    on the wall :func:`rule_wall` checks, its transmural direction and depth by ``transmural``
    (:data:`TRANSMURAL`), and the rule's record (:func:`rule_record`) with the long axis it used,
    the transmural direction's kind and the elements where its frame fell back (logged, and named
    in the record)."""
    check_transmural(transmural)
    (endo_deg, epi_deg), (points, lps, axis, faces) = rule_wall(mesh, helix_deg)
    frame = rule_frame(points, lps, faces, axis, transmural)
    helix = np.radians(endo_deg + (epi_deg - endo_deg) * frame.depth)
    fibres = np.cos(helix)[:, None] * frame.e_c + np.sin(helix)[:, None] * frame.e_l
    field = np.hstack([fibres, frame.e_t])
    if mesh.space != "LPS":  # the file's frame: RAS = diag(-1, -1, 1) LPS
        field = field * np.tile([-1.0, -1.0, 1.0], 2)
    return field, {**rule_record((endo_deg, epi_deg)), "transmural": TRANSMURAL[transmural],
                   "long_axis": _axis_record(axis), "frame_fallback": _fallback_record(frame)}


def _axis_record(axis: LongAxis) -> dict:
    """The long axis the rule's frame stood on: where it came from and its apex-to-base direction (LPS)."""
    return {"source": axis.source, "base_direction_lps": [round(float(v), 4) for v in axis.base_direction]}


def _fallback_record(frame: RuleFrame) -> dict:
    """The elements whose frame fell back (:class:`RuleFrame`), counted and the first
    :data:`NAMED_FALLBACKS` named by element id (0-based), logged as recorded."""
    record = {}
    for kind, mask in (("no_transmural", frame.no_transmural), ("along_axis", frame.along_axis)):
        ids = np.flatnonzero(mask)
        record[kind] = {"elements": int(len(ids)), "first_ids": ids[:NAMED_FALLBACKS].tolist()}
        if len(ids):
            where, fallback = FALLBACKS[kind]
            logger.info("the fibre rule's frame is undefined at %d of %d elements (%s; elements %s%s): they take %s",
                        len(ids), len(mask), where, ", ".join(str(i) for i in ids[:NAMED_FALLBACKS]),
                        ", ..." if len(ids) > NAMED_FALLBACKS else "", fallback)
    return record


def rule_record(helix_deg: tuple[float, float]) -> dict:
    """What ``PREFIX.json`` says of rule-based fibres: not measured, LV-only, the rule and its sources."""
    endo_deg, epi_deg = check_helix_angles(helix_deg)
    return {"rule": "LV helix angle linear in transmural depth; sheet transmural", "measured": False,
            "helix_endo_deg": endo_deg, "helix_epi_deg": epi_deg, "scope": "left ventricle only",
            "sources": ["Streeter et al. 1969 (angles)", "Bayer et al. 2012 (rule-based fibres)"]}
