"""A rule-based left-ventricular fibre field for the openCARP export (``export --fibres rule``).

Why: openCARP reads a fibre file (``PREFIX.lon``) with the mesh, and most meshes here
(``mesh-from-labels``, the phantoms, many patient meshes) carry no fibres. The classic rule
gives every element of the LV wall a fibre in the wall's local circumferential-longitudinal
plane whose *helix angle* varies linearly with transmural depth, from +60 degrees at the
endocardium to -60 degrees at the epicardium (Streeter et al. 1969, Circ Res 24:339, measured
angles; the rule-based assignment as in Bayer et al. 2012, Ann Biomed Eng 40:2243), and the
sheet along the transmural direction. The fibres are *rule-based*, not measured, and LV-only:
no right ventricle, no Laplace solves (the record in ``PREFIX.json`` says so); a mesh of both
ventricles is refused (:mod:`cardioscar.aha.one_ventricle`), not given LV fibres on its RV.

Frame, in LPS (right-handed): ``e_t`` the transmural direction (nearest endocardial node to
nearest epicardial node), ``e_l`` the apex-to-base axis made perpendicular to ``e_t``,
``e_c = e_l x e_t`` (counter-clockwise seen from the base). The fibre is
``cos(a) e_c + sin(a) e_l``: a positive angle a right-handed helix (the subendocardium), a
negative one left-handed (the subepicardium). Depth is ``d_endo / (d_endo + d_epi)`` at the
element's centre, the distances to the nearest endocardial and epicardial nodes
(:mod:`cardioscar.aha.wall`).
"""

from __future__ import annotations

import numpy as np

from ..errors import CardioScarError

#: Helix angles (degrees) at the endocardium and the epicardium (Streeter et al. 1969).
DEFAULT_HELIX_DEG = (60.0, -60.0)
#: The value of ``--fibres`` that asks for the rule instead of a cell field.
RULE_NAME = "rule"
#: The command line's advice where the rule refuses a mesh, and where an openCARP set has no fibres.
#: Each face words them as its own options (:func:`advice_in_face_words`: the cohort's ``fibres``
#: column, the batch script's ``--fibre-rule``, the panel's box, the Logic's ``fibres``), since only
#: the command line and the Python API take a cell field: "--fibres CELLFIELD" in a manifest's
#: error named an option no manifest has.
WITHOUT_RULE = "export without --fibres rule (or with --fibres CELLFIELD)"
GIVE_FIBRES = ("give --fibres CELLFIELD, a cell array of fibre (or fibre+sheet) directions from a fibre rule or "
               "atlas, or --fibres rule (the LV rule)")


def advice_in_face_words(message: str, advice: dict[str, str]) -> str:
    """``message`` with each of the command line's fibre advice (:data:`WITHOUT_RULE`,
    :data:`GIVE_FIBRES`) that ``advice`` words for a face written in the face's words; run before
    a face renames the options the rest of the message names."""
    for command_line, face in advice.items():
        message = message.replace(command_line, face)
    return message


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _frame(centres: np.ndarray, endo: np.ndarray, epi: np.ndarray, base_direction: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Depth in [0, 1] and the unit (e_c, e_l, e_t) of each element (see the module docstring)."""
    from ..aha.wall import wall_depth

    depth, i_endo, i_epi = wall_depth(centres, endo, epi)
    e_t = _unit_rows(epi[i_epi] - endo[i_endo])
    e_l = base_direction - (e_t @ base_direction)[:, None] * e_t
    flat = np.linalg.norm(e_l, axis=1) < 1e-3  # the wall across the axis (an apical cap): any in-wall direction
    if flat.any():
        helper = np.where(np.abs(base_direction[0]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        e_l[flat] = helper - (e_t[flat] @ helper)[:, None] * e_t[flat]
    e_l = _unit_rows(e_l)
    return depth, np.cross(e_l, e_t), e_l, e_t


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


def rule_fibres(mesh, helix_deg: tuple[float, float] = DEFAULT_HELIX_DEG) -> np.ndarray:
    """(n_cells, 6) unit fibre and sheet of each element by the LV rule, in the mesh file's frame,
    on the wall :func:`rule_wall` checks."""
    from ..aha.wall import cell_centres

    (endo_deg, epi_deg), (points, lps, axis, faces) = rule_wall(mesh, helix_deg)
    depth, e_c, e_l, e_t = _frame(cell_centres(lps), points[faces.endo_ids], points[faces.epi_ids],
                                  axis.base_direction)
    helix = np.radians(endo_deg + (epi_deg - endo_deg) * depth)
    fibres = np.cos(helix)[:, None] * e_c + np.sin(helix)[:, None] * e_l
    field = np.hstack([fibres, e_t])
    if mesh.space != "LPS":  # the file's frame: RAS = diag(-1, -1, 1) LPS
        field = field * np.tile([-1.0, -1.0, 1.0], 2)
    return field


def rule_record(helix_deg: tuple[float, float]) -> dict:
    """What ``PREFIX.json`` says of rule-based fibres: not measured, LV-only, the rule and its sources."""
    endo_deg, epi_deg = check_helix_angles(helix_deg)
    return {"rule": "LV helix angle linear in transmural depth; sheet transmural", "measured": False,
            "helix_endo_deg": endo_deg, "helix_epi_deg": epi_deg, "scope": "left ventricle only",
            "sources": ["Streeter et al. 1969 (angles)", "Bayer et al. 2012 (rule-based fibres)"]}
