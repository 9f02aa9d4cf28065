"""A rule-based left-ventricular fibre field for the openCARP export (``export --fibres rule``).

Why: openCARP reads a fibre file (``PREFIX.lon``) with the mesh, and most meshes here
(``mesh-from-labels``, the phantoms, many patient meshes) carry no fibres. The classic rule
gives every element of the LV wall a fibre in the wall's local circumferential-longitudinal
plane whose *helix angle* varies linearly with transmural depth, from +60 degrees at the
endocardium to -60 degrees at the epicardium (Streeter et al. 1969, Circ Res 24:339, measured
angles; the rule-based assignment as in Bayer et al. 2012, Ann Biomed Eng 40:2243), and the
sheet along the transmural direction. The fibres are *rule-based*, not measured, and LV-only:
no right ventricle, no Laplace solves (the record in ``PREFIX.json`` says so); a mesh of both
ventricles is refused (:func:`check_one_ventricle`), not given LV fibres on its RV.

Frame, in LPS (right-handed): ``e_t`` the transmural direction (nearest endocardial node to
nearest epicardial node), ``e_l`` the apex-to-base axis made perpendicular to ``e_t``,
``e_c = e_l x e_t`` (counter-clockwise seen from the base). The fibre is
``cos(a) e_c + sin(a) e_l``: a positive angle a right-handed helix (the subendocardium), a
negative one left-handed (the subepicardium). Depth is ``d_endo / (d_endo + d_epi)`` at the
element's centre, the distances to the nearest endocardial and epicardial nodes
(:mod:`cardioscar.aha.wall`).
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.spatial import cKDTree

from ..errors import CardioScarError

logger = logging.getLogger(__name__)

#: Helix angles (degrees) at the endocardium and the epicardium (Streeter et al. 1969).
DEFAULT_HELIX_DEG = (60.0, -60.0)
#: The value of ``--fibres`` that asks for the rule instead of a cell field.
RULE_NAME = "rule"


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _frame(centres: np.ndarray, endo: np.ndarray, epi: np.ndarray, base_direction: np.ndarray
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Depth in [0, 1] and the unit (e_c, e_l, e_t) of each element (see the module docstring)."""
    d_endo, i_endo = cKDTree(endo).query(centres)
    d_epi, i_epi = cKDTree(epi).query(centres)
    depth = d_endo / np.maximum(d_endo + d_epi, 1e-12)
    e_t = _unit_rows(epi[i_epi] - endo[i_endo])
    e_l = base_direction - (e_t @ base_direction)[:, None] * e_t
    flat = np.linalg.norm(e_l, axis=1) < 1e-3  # the wall across the axis (an apical cap): any in-wall direction
    if flat.any():
        helper = np.where(np.abs(base_direction[0]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        e_l[flat] = helper - (e_t[flat] @ helper)[:, None] * e_t[flat]
    e_l = _unit_rows(e_l)
    return depth, np.cross(e_l, e_t), e_l, e_t


#: How :func:`cavity_counts` cuts a mesh: :data:`CAVITY_LEVELS` cross-sections evenly over this
#: share of its length along each direction (away from the apex, where the cavity closes, and the
#: base, where a mesh may be open), across :data:`CAVITY_DIRECTIONS` directions over a hemisphere
#: (about 18 degrees apart; a biventricular mesh's shape gives no LV axis: on biv-me's, the sections
#: with both cavities lie 83-87 degrees from the shape's axis), sampled from the mesh's cells on a grid of
#: :data:`CAVITY_PIXEL_MM` (larger for a mesh of over :data:`MAX_CAVITY_SAMPLES` grid points);
#: a cavity is an enclosed hole of at least :data:`MIN_CAVITY_MM2` (5 mm wide; gaps between a
#: coarse mesh's elements are far smaller).
CAVITY_LEVELS, CAVITY_SPAN, CAVITY_DIRECTIONS = 15, (0.2, 0.8), 40
CAVITY_PIXEL_MM, MAX_CAVITY_SAMPLES, MIN_CAVITY_MM2 = 1.5, 1_000_000, 20.0
#: The share of one direction's cross-sections that may enclose two cavities or more before the
#: mesh is taken for more than one ventricle (a plane cuts an LV's cavity once; a biventricular
#: mesh's short-axis sections cut the LV's and the RV's). Measured by
#: ``Testing/benchmarks/fibre_one_ventricle.py`` (ROBUSTNESS.md): 0-2 of 15 on LV-only meshes (EMIDEC's
#: 75 ``mesh-from-labels`` meshes, the demo and segmented phantoms, biv-me's LV part), 14 of 15 on
#: biv-me's biventricular myocardium; refused over 6.
MAX_TWO_CAVITY_SHARE = 0.4


def _inside_grid(dataset_lps) -> tuple[np.ndarray, np.ndarray, float]:
    """The mesh's cells on a regular LPS grid: (nx, ny, nz) inside a cell or not, the grid's first
    point and its pixel (mm); two pixels of outside around the mesh."""
    from ..prepare.partial_volume import inside_cells

    low, high = (np.array(dataset_lps.GetBounds()).reshape(3, 2).T)
    pixel = max(CAVITY_PIXEL_MM, float(np.prod(high - low) / MAX_CAVITY_SAMPLES) ** (1.0 / 3.0))
    origin = low - 2.0 * pixel
    axes = [origin[k] + pixel * np.arange(int(np.ceil((high[k] - low[k]) / pixel)) + 5) for k in range(3)]
    samples = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    return inside_cells(dataset_lps, samples).reshape([len(a) for a in axes]), origin, pixel


def _cavities(section: np.ndarray, pixel: float) -> int:
    """The enclosed holes of at least :data:`MIN_CAVITY_MM2` in a cross-section (True: the wall)."""
    from scipy import ndimage

    four = ndimage.generate_binary_structure(2, 1)  # the outside's 4-neighbours: no leak through a diagonal
    regions, _ = ndimage.label(~section, structure=four)
    sizes = np.bincount(regions.ravel())
    sizes[np.unique(np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]]))] = 0  # around it
    sizes[0] = 0  # the wall
    return int((sizes * pixel ** 2 >= MIN_CAVITY_MM2).sum())


def _sections(inside: np.ndarray, origin: np.ndarray, pixel: float, direction: np.ndarray,
              filled: np.ndarray) -> np.ndarray:
    """(levels, n, n) cross-sections of the gridded mesh (``filled``: its grid points inside, LPS)
    across the unit ``direction``, by the nearest grid point (outside the grid: outside the mesh)."""
    from scipy import ndimage

    from ..aha.shape_axis import frames

    e_u, e_v = (vector[0] for vector in frames(direction[None, :]))
    centre = filled.mean(axis=0)
    heights = (filled - centre) @ direction
    half = float(np.linalg.norm(filled - centre, axis=1).max()) + 2.0 * pixel  # outside all round
    steps = np.arange(-half, half + pixel, pixel)
    levels = heights.min() + np.linspace(*CAVITY_SPAN, CAVITY_LEVELS) * np.ptp(heights)
    grid_h, grid_u, grid_v = np.meshgrid(levels, steps, steps, indexing="ij")
    samples = centre + grid_h[..., None] * direction + grid_u[..., None] * e_u + grid_v[..., None] * e_v
    index = ((samples - origin) / pixel).reshape(-1, 3).T
    values = ndimage.map_coordinates(inside.astype(np.uint8), index, order=0, mode="constant", cval=0)
    return values.reshape(grid_h.shape).astype(bool)


def cavity_counts(dataset_lps) -> tuple[np.ndarray, np.ndarray]:
    """The cavities each of the :data:`CAVITY_LEVELS` cross-sections encloses, across the one of
    :data:`CAVITY_DIRECTIONS` directions along which most enclose two or more (then: most
    cavities); returns (counts, that direction).

    Why: the fibre rule is the LV's; on a biventricular mesh it would give the RV free wall and the
    septum LV fibres about an axis the shape does not give, without a word. A plane cuts an LV's
    cavity once; short-axis sections of both ventricles enclose two cavities, the RV's beside the
    LV's. Every direction is tried, as a biventricular shape gives no LV long axis to cut across."""
    from ..aha.shape_axis import hemisphere

    inside, origin, pixel = _inside_grid(dataset_lps)
    filled = origin + pixel * np.argwhere(inside)
    if len(filled) == 0:  # a mesh thinner than the grid: no section to cut (the rule refuses it for its wall)
        return np.zeros(CAVITY_LEVELS, dtype=int), hemisphere(1)[0]
    found = []
    for direction in hemisphere(CAVITY_DIRECTIONS):
        sections = _sections(inside, origin, pixel, direction, filled)
        found.append((np.array([_cavities(section, pixel) for section in sections]), direction))
    # most sections with two cavities, then most cavities (an LV's: across its long axis)
    return max(found, key=lambda pair: (int((pair[0] >= 2).sum()), int(pair[0].sum())))


def check_one_ventricle(dataset_lps, name: str) -> None:
    """Refuse a mesh whose cross-sections along some direction enclose two cavities too often
    (:func:`cavity_counts`): a mesh of both ventricles, to which the LV rule does not apply."""
    counts, direction = cavity_counts(dataset_lps)
    two = int((counts >= 2).sum())
    logger.debug("%s: cavities per cross-section %s across %s", name, counts.tolist(), np.round(direction, 2).tolist())
    if two > MAX_TWO_CAVITY_SHARE * len(counts):
        raise CardioScarError(f"{name} looks biventricular: {two} of {len(counts)} cross-sections across one direction "
                              "enclose two cavities (an LV's enclose one); the fibre rule is the LV's: give an LV-only "
                              "mesh, or export without --fibres rule (or with --fibres CELLFIELD, a biventricular "
                              "fibre field)")


def check_helix_angles(helix_deg: tuple[float, float]) -> tuple[float, float]:
    """The (endocardium, epicardium) helix angles, each in [-90, 90] degrees, or a one-line error."""
    angles = tuple(float(a) for a in helix_deg)
    if len(angles) != 2 or not all(np.isfinite(angles)) or any(abs(a) > 90.0 for a in angles):
        raise CardioScarError(f"--helix-angles {helix_deg}: give two angles ENDO,EPI in degrees within [-90, 90] "
                              "(Streeter 1969: 60,-60)")
    return angles  # type: ignore[return-value]


def rule_fibres(mesh, helix_deg: tuple[float, float] = DEFAULT_HELIX_DEG) -> np.ndarray:
    """(n_cells, 6) unit fibre and sheet of each element by the LV rule, in the mesh file's frame.

    Refuses a mesh without volume cells (the rule needs the wall's two faces and the depth between)
    and a biventricular one (:func:`check_one_ventricle`).
    """
    from ..aha.segments import axis_from_shape
    from ..aha.wall import cell_centres, is_volumetric, wall_faces

    endo_deg, epi_deg = check_helix_angles(helix_deg)
    name = "the mesh" if mesh.path is None else mesh.path.name
    if not is_volumetric(mesh.dataset):
        raise CardioScarError(f"{name} has no volume cells: the fibre rule needs the LV wall's endocardium, "
                              "epicardium and the depth between them; give a volumetric (tetrahedral or hexahedral) "
                              "LV mesh, or --fibres CELLFIELD")
    points = mesh.points_lps()
    lps = mesh.dataset_lps(points)  # the helix's sense is fixed in the right-handed LPS frame
    check_one_ventricle(lps, name)  # first: a biventricular shape gives no LV axis to refuse it by
    try:
        axis = axis_from_shape(points, np.ones(len(points)))
        faces = wall_faces(lps, np.ones(len(points), dtype=bool), axis)
    except CardioScarError as error:  # aha's advice (its options) does not apply to the export
        reason = str(error).split(";")[0]
        raise CardioScarError(f"{name}: the fibre rule found no LV wall ({reason}); give a volumetric mesh of the "
                              "LV myocardium, or --fibres CELLFIELD") from None
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
