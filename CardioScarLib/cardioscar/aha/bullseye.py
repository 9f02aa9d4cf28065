"""The AHA bull's-eye plot (PNG): one disc per quantity, coronary territories outlined.

Drawn as Cerqueira 2002 shows it: the apex (17) in the centre, then the apical, mid and basal
rings; segment 1 at the top and the numbers running counter-clockwise, so the septum is on the
left as in a short-axis image with the RV on the left. Every sector is drawn 60 (90) degrees
wide whatever the septum width the mesh used: the plot is a map of segments, not of angles.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

from cardioscar.io.atomic import atomic_write
from cardioscar.io.figures import new_figure

from .segments import TERRITORY_OF, TERRITORY_SEGMENTS

#: (inner, outer) radius of each ring in plot units.
RINGS = {"apex": (0.0, 1.0), "apical": (1.0, 2.0), "mid": (2.0, 3.0), "basal": (3.0, 4.0)}


def segment_span(segment: int) -> tuple[float, float, float, float]:
    """(inner radius, outer radius, start angle, end angle in degrees counter-clockwise from +x)."""
    if segment == 17:
        return (*RINGS["apex"], 0.0, 360.0)
    if segment >= 13:
        start = 45.0 + 90.0 * (segment - 13)
        return (*RINGS["apical"], start, start + 90.0)
    ring = "basal" if segment <= 6 else "mid"
    start = 60.0 + 60.0 * ((segment - 1) % 6)
    return (*RINGS[ring], start, start + 60.0)


def segment_at(radius: float, angle_deg: float) -> Optional[int]:
    """The segment drawn at a polar position, ``None`` outside the disc."""
    for segment in range(1, 18):
        inner, outer, start, end = segment_span(segment)
        if inner <= radius < outer and (segment == 17 or (angle_deg - start) % 360.0 < end - start):
            return segment
    return None


@lru_cache(maxsize=1)
def _territory_edges() -> tuple[np.ndarray, ...]:
    """Polylines (N, 2) where two territories (or a territory and the outside) meet; cached, as
    the layout is fixed and every disc of every figure draws the same outline."""
    lines = []
    for radius in (1.0, 2.0, 3.0, 4.0):
        for degree in range(360):
            mid = degree + 0.5
            inside, outside = segment_at(radius - 1e-3, mid), segment_at(radius + 1e-3, mid)
            if TERRITORY_OF.get(inside) != TERRITORY_OF.get(outside):
                arc = np.radians(np.linspace(degree, degree + 1, 3))
                lines.append(radius * np.stack([np.cos(arc), np.sin(arc)], axis=1))
    for inner, outer in list(RINGS.values())[1:]:
        for boundary in np.arange(0.0, 360.0, 15.0):
            middle = 0.5 * (inner + outer)
            if TERRITORY_OF.get(segment_at(middle, boundary - 0.5)) != TERRITORY_OF.get(segment_at(middle, boundary + 0.5)):
                direction = np.array([np.cos(np.radians(boundary)), np.sin(np.radians(boundary))])
                lines.append(np.stack([inner * direction, outer * direction]))
    return tuple(lines)


def _label_position(segment: int) -> tuple[float, float]:
    inner, outer, start, end = segment_span(segment)
    if segment == 17:
        return 0.0, 0.0
    angle = np.radians(0.5 * (start + end))
    radius = 0.5 * (inner + outer)
    return radius * np.cos(angle), radius * np.sin(angle)


#: The walls' words written outside the disc, at its top, left, bottom and right.
COMPASS_WORDS = {"anterior": (0.0, 5.1), "septal": (-5.2, 0.0), "inferior": (0.0, -5.1), "lateral": (5.2, 0.0)}


def _territory_name_angle(segments: Sequence[int]) -> float:
    """Where (degrees) a territory's name is written outside the rim: the middle of its basal
    segments' arc, unless a compass word is written there (the LCx's middle is the lateral wall's,
    and "LCx" ran into "lateral"): then the middle of its most anterior basal segment."""
    middles = [0.5 * (start + end) for _, _, start, end in (segment_span(s) for s in segments if s <= 6)]
    angle = float(np.mean(middles)) % 360.0
    compass = [np.degrees(np.arctan2(y, x)) for x, y in COMPASS_WORDS.values()]
    if any(abs((angle - word + 180.0) % 360.0 - 180.0) < 15.0 for word in compass):
        angle = max(middles, key=lambda middle: np.sin(np.radians(middle))) % 360.0
    return angle


#: What a segment no slice reached shows in place of a value, and the line under the disc that says
#: so. Two words did not fit a segment: "not covered" ran into the neighbours' writing, a basal
#: segment's into the mid one inside it, the apical ring's into the apex and 15's over 10's number.
#: A mark as short as a value fits wherever a value does, whatever else is not covered.
NOT_COVERED = "nc"
NOT_COVERED_LEGEND = "nc: not covered\nby the slices"


def draw_bullseye(ax, values: dict[int, Optional[float]], *, title: str, vmin: float, vmax: float, cmap: str,
                  fmt: str = "{:.0f}", uncovered: frozenset[int] = frozenset()) -> object:
    """One disc on ``ax``: each segment coloured by its value (grey: none), its number and value
    written in it (:data:`NOT_COVERED` for the ``uncovered`` segments, which no slice reached, and a
    line under the disc that says what it means), the territories outlined in thick black. Returns
    the colour mapping for a bar."""
    import matplotlib.cm
    import matplotlib.colors
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Wedge

    norm = matplotlib.colors.Normalize(vmin=vmin, vmax=vmax)
    mapping = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    for segment in range(1, 18):
        inner, outer, start, end = segment_span(segment)
        value = values.get(segment)
        colour = (0.85, 0.85, 0.85, 1.0) if value is None else mapping.to_rgba(value)
        ax.add_patch(Wedge((0, 0), outer, start, end, width=outer - inner, facecolor=colour, edgecolor="white",
                           linewidth=0.8))
        text = (NOT_COVERED if segment in uncovered else "n/a") if value is None else fmt.format(value)
        dark = value is not None and norm(value) > 0.6
        x, y = _label_position(segment)
        ax.text(x, y + 0.16, str(segment), ha="center", va="center", fontsize=6.5, color="white" if dark else "0.35")
        ax.text(x, y - 0.14, text, ha="center", va="center", fontsize=7.5 if len(text) <= 3 else 6.0,
                fontweight="bold", color="white" if dark else "black")
    # One collection, not one ``plot`` per arc piece: hundreds of Line2D artists made the drawing
    # most of an ``aha`` run's time (Testing/benchmarks/bullseye_draw_time.py).
    ax.add_collection(LineCollection(_territory_edges(), colors="black", linewidths=2.0, capstyle="round"))
    for name, segments in TERRITORY_SEGMENTS.items():
        angle = np.radians(_territory_name_angle(segments))
        ax.text(4.5 * np.cos(angle), 4.5 * np.sin(angle), name, ha="center", va="center", fontsize=8,
                fontweight="bold")
    for text, (x, y) in COMPASS_WORDS.items():
        ax.text(x, y, text, ha="center", va="center", fontsize=6.5, color="0.4", rotation=90 if x else 0)
    if any(values.get(segment) is None for segment in uncovered):  # a disc without the mark is drawn as before
        ax.text(5.6, -5.6, NOT_COVERED_LEGEND, ha="right", va="bottom", fontsize=6.5, color="0.25")
    ax.set_xlim(-5.6, 5.6)
    ax.set_ylim(-5.6, 5.6)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(title, fontsize=9)
    return mapping


#: (key in the table rows, title, colour map, fixed upper bound or None for the data's maximum, format)
PANELS = (
    ("scar_pct", "scar (% of segment)", "Reds", 100.0, "{:.0f}"),
    ("border_zone_pct", "border zone (% of segment)", "Purples", 100.0, "{:.0f}"),  # with tags: what an
    ("core_pct", "dense core (% of segment)", "Greys", 100.0, "{:.0f}"),  # ablation plan reads beside the scar
    ("band_pct", "lower probability band (% of segment)", "Purples", 100.0, "{:.0f}"),  # one field's bands,
    ("top_band_pct", "top probability band (% of segment)", "Greys", 100.0, "{:.0f}"),  # not tissue classes
    ("transmurality_mean_pct", "mean transmurality (%)", "Oranges", 100.0, "{:.0f}"),
    ("uncertainty_mean", "mean uncertainty (MC std)", "Blues", None, "{:.3f}"),
    ("error_risk_mean", "mean error risk (call at 0.5 wrong)", "YlOrBr", 1.0, "{:.2f}"),
)
#: A disc left out when the table has the column that supersedes it (the table keeps both): the
#: MC-dropout spread falls to ~0 between the slices with the shape prior, so beside the error risk
#: its disc, scaled to its own maximum, would paint noise as where the map is unsure.
SUPERSEDED_BY = {"uncertainty_mean": "error_risk_mean"}


def _in_table(rows: Sequence[dict], key: str) -> bool:
    return any(row.get(key) is not None for row in rows)


def bullseye_figure(rows: Sequence[dict], subtitle: str = "", reference_rows: Optional[Sequence[dict]] = None):
    """A matplotlib figure with one bull's-eye per quantity present in the table rows (but the MC
    spread's where the error risk is there: :data:`SUPERSEDED_BY`), and the reference's scar %
    (e.g. a phantom's truth) as the last one."""
    panels = [(rows, *panel) for panel in PANELS if _in_table(rows, panel[0])
              and not (panel[0] in SUPERSEDED_BY and _in_table(rows, SUPERSEDED_BY[panel[0]]))]
    if reference_rows is not None:
        panels.append((reference_rows, "scar_pct", "truth: scar (% of segment)", "Reds", 100.0, "{:.0f}"))
    fig = new_figure(figsize=(3.6 * max(1, len(panels)), 4.2))
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)
    for ax, (table, key, title, cmap, upper, fmt) in zip(axes[0], panels):
        values = {row["segment"]: row.get(key) for row in table}
        present = [v for v in values.values() if v is not None]
        top = upper if upper is not None else max(max(present, default=0.0), 1e-6)
        uncovered = frozenset(row["segment"] for row in table if row.get("covered") is False)
        mapping = draw_bullseye(ax, values, title=title, vmin=0.0, vmax=top, cmap=cmap, fmt=fmt, uncovered=uncovered)
        fig.colorbar(mapping, ax=ax, orientation="horizontal", fraction=0.05, pad=0.02, shrink=0.8)
    if subtitle:
        import textwrap

        fig.suptitle("\n".join(textwrap.wrap(subtitle, 60 * max(1, len(panels)))), fontsize=8)
    return fig


def write_bullseye(rows: Sequence[dict], path: Path, subtitle: str = "",
                   reference_rows: Optional[Sequence[dict]] = None) -> None:
    """Write the bull's-eye PNG atomically."""
    with atomic_write(path) as tmp:
        save_bullseye(rows, tmp, subtitle, reference_rows)


def save_bullseye(rows: Sequence[dict], path: Path, subtitle: str = "",
                  reference_rows: Optional[Sequence[dict]] = None) -> None:
    """Draw the bull's-eye PNG into ``path``, with no atomic step of its own: for the temporary
    file of a set that the caller places whole (``aha.csv``, ``aha.json`` and the mesh beside it,
    :func:`cardioscar.aha.analysis.write_aha_set`)."""
    bullseye_figure(rows, subtitle, reference_rows).savefig(path, dpi=150, format="png", bbox_inches="tight")
