"""The demo's report: ``report.json`` (numbers) and ``report.png`` (the picture).

The JSON is what tests and benchmarks read; the picture is what a person looks at first. The
mesh views are drawn with matplotlib only (an orthographic projection of the mesh surface, back
faces culled, painter's order, head-light shading), because that works on any headless machine,
while VTK's off-screen rendering depends on the graphics stack of the machine.
"""

from __future__ import annotations

import json
import logging
import platform
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import vtk
from scipy import ndimage
from vtk.util.numpy_support import vtk_to_numpy

from cardioscar.io.atomic import atomic_write
from cardioscar.io.figures import new_figure

logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------- report.json


def software_versions() -> dict:
    """Versions of everything that changes the numbers, so a report can be reproduced."""
    import SimpleITK as sitk
    import torch

    from cardioscar import __version__

    return {"cardioscar": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "vtk": vtk.vtkVersion.GetVTKVersion(), "SimpleITK": sitk.Version.VersionString(),
            "python": platform.python_version()}


def history_summary(history: dict) -> dict:
    """The training history in a few numbers (the full curve stays in the checkpoint)."""
    losses = [float(v) for v in history.get("train_loss", [])]
    return {"epochs": int(history.get("epochs_run", len(losses))),
            "best_loss": float(history["best_loss"]) if "best_loss" in history else None,
            "best_epoch": int(history.get("best_epoch", 0)),
            "final_loss": losses[-1] if losses else None,
            "stopped_early": bool(history.get("stopped_early", False)),
            "seconds": float(history.get("seconds", 0.0))}


def build_report(*, scores: dict, baseline_scores: dict, phantom, prepared, history: dict, training_config,
                 device: str, files: dict, seconds: dict) -> dict:
    """Assemble the report dict: the network's scores at top level, then everything needed to judge them."""
    meta = phantom.metadata
    report = dict(scores)
    report.update({
        "baselines": baseline_scores,
        "phantom": {"seed": int(phantom.config.seed), "nodes": int(meta["n_nodes"]), "tets": int(meta["n_tets"]),
                    "groups": int(prepared.n_groups), "rows": int(prepared.n_nodes),
                    "covered_nodes": int(prepared.n_covered_nodes), "slices": int(meta["n_slices"]),
                    "scar_fraction": float(meta["scar_fraction"]),
                    "scar_fraction_nodes": float(meta["scar_fraction_nodes"]),
                    "slab_mm": float(phantom.config.slab_mm), "slice_gap_mm": float(phantom.config.slice_gap_mm),
                    "pixel_mm": float(phantom.config.pixel_mm), "oblique": bool(phantom.config.oblique),
                    "slice_thickness_padding_mm": float(phantom.slice_half_thickness_mm),
                    "partial_volume_correction": bool(prepared.partial_volume_correction)},
        "training": {**history_summary(history), "preset": training_config.to_dict()},
        "seconds": seconds,
        "device": device,
        "versions": software_versions(),
        "files": files,
    })
    return report


def write_report_json(report: dict, path: Path) -> None:
    """Write the report atomically (readers never see half a file)."""
    with atomic_write(path) as tmp:
        tmp.write_text(json.dumps(report, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    logger.info("Wrote %s", path)


# --------------------------------------------------------------------------- mesh views


class _Surface:
    """Triangulated outer surface of a mesh with outward cell normals and the mesh node of each vertex."""

    def __init__(self, dataset: vtk.vtkDataSet) -> None:
        extract = vtk.vtkDataSetSurfaceFilter()
        extract.SetInputData(dataset)
        extract.PassThroughPointIdsOn()
        triangles = vtk.vtkTriangleFilter()
        triangles.SetInputConnection(extract.GetOutputPort())
        normals = vtk.vtkPolyDataNormals()
        normals.SetInputConnection(triangles.GetOutputPort())
        normals.ComputeCellNormalsOn()
        normals.ComputePointNormalsOff()
        normals.SplittingOff()
        normals.ConsistencyOn()
        normals.AutoOrientNormalsOn()  # the wall is a closed surface: outward normals
        normals.Update()
        poly = normals.GetOutput()
        self.points = vtk_to_numpy(poly.GetPoints().GetData()).astype(float)
        self.triangles = vtk_to_numpy(poly.GetPolys().GetConnectivityArray()).astype(np.int64).reshape(-1, 3)
        self.normals = vtk_to_numpy(poly.GetCellData().GetNormals()).astype(float)
        self.node_ids = vtk_to_numpy(poly.GetPointData().GetArray(extract.GetOriginalPointIdsName())).astype(np.int64)


class _View:
    """An orthographic camera: ``toward`` points from the object to the viewer.

    ``keep`` (optional ``(origin, normal)``) drops the triangles whose centre lies on the negative
    side of that plane, which opens the wall so the endocardium can be seen from inside.
    """

    def __init__(self, toward: np.ndarray, up: np.ndarray,
                 keep: Optional[tuple[np.ndarray, np.ndarray]] = None) -> None:
        toward = toward / np.linalg.norm(toward)
        up = up - np.dot(up, toward) * toward
        self.toward = toward
        self.up = up / np.linalg.norm(up)
        self.right = np.cross(self.up, self.toward)
        self.keep = keep

    def project(self, points: np.ndarray) -> np.ndarray:
        return np.stack([points @ self.right, points @ self.up], axis=1)

    def visible(self, surface: "_Surface") -> np.ndarray:
        """Indices of the triangles facing the camera (and on the kept side of the cut)."""
        mask = surface.normals @ self.toward > 0.05  # grazing faces only add slivers
        if self.keep is not None:
            origin, normal = self.keep
            mask &= (surface.points[surface.triangles].mean(axis=1) - origin) @ normal > 0.0
        return np.flatnonzero(mask)


def _views(points: np.ndarray, truth: np.ndarray, long_axis: Optional[np.ndarray]) -> dict[str, _View]:
    """The LV opened along its long axis, looking at the scarred wall from inside (base up), and a
    view from the base down into the cavity. Both show the endocardium, where infarcts start.

    Without a given long axis (apex -> base) the mesh's first principal axis is used.
    """
    centre = points.mean(axis=0)
    if long_axis is None:
        _, _, vt = np.linalg.svd(points - centre, full_matrices=False)
        long_axis = vt[0]
    axis = np.asarray(long_axis, dtype=float) / np.linalg.norm(long_axis)
    weights = np.clip(np.asarray(truth, dtype=float), 0.0, 1.0)
    target = (weights[:, None] * points).sum(axis=0) / weights.sum() if weights.sum() > 0 else points[0]
    side = target - centre
    side -= np.dot(side, axis) * axis
    if np.linalg.norm(side) < 1e-6:
        side = np.cross(axis, [1.0, 0.0, 0.0] if abs(axis[0]) < 0.9 else [0.0, 1.0, 0.0])
    side /= np.linalg.norm(side)
    return {"opened": _View(-side, axis, keep=(centre, side)), "base": _View(axis, side)}


def _shaded_faces(surface: _Surface, view: _View, field: np.ndarray, cmap, norm):
    """2D polygons (painter's order) and their shaded RGBA colours for one view."""
    visible = view.visible(surface)
    facing = surface.normals @ view.toward
    tris = surface.triangles[visible]
    depth = (surface.points[tris].mean(axis=1) @ view.toward)
    order = np.argsort(depth)
    tris, shade = tris[order], facing[visible][order]
    xy = view.project(surface.points)
    values = field[surface.node_ids][tris].mean(axis=1)
    colours = cmap(norm(values))
    colours[:, :3] *= (0.45 + 0.55 * shade)[:, None]
    return xy[tris], colours


def _plane_lines(surface: _Surface, view: _View, slices: Sequence) -> np.ndarray:
    """2D segments where the acquired slice planes cut the visible surface, (S, 2, 2)."""
    tris = surface.triangles[view.visible(surface)]
    xy = view.project(surface.points)
    segments = []
    for layer in slices:
        d = (surface.points - layer.origin) @ layer.normal
        dt = d[tris]
        crossing = (dt.min(axis=1) < 0.0) & (dt.max(axis=1) >= 0.0)
        for tri, dist in zip(tris[crossing], dt[crossing]):
            ends = []
            for a, b in ((0, 1), (1, 2), (2, 0)):
                if (dist[a] < 0.0) != (dist[b] < 0.0):
                    w = dist[a] / (dist[a] - dist[b])
                    ends.append((1.0 - w) * xy[tri[a]] + w * xy[tri[b]])
            if len(ends) == 2:
                segments.append(ends)
    return np.asarray(segments).reshape(-1, 2, 2)


# --------------------------------------------------------------------------- slices panel


def _slice_image(layer, points: np.ndarray) -> Optional[np.ndarray]:
    """An LGE-like picture of one slice: grey where mesh nodes lie in the slab, the scar target on top.

    Cropped to the myocardium; ``None`` when the slab holds no node.
    """
    index = layer.lps_to_index(points)
    inside = layer.in_slab(index[:, 2])
    rows, cols = layer.shape
    i = np.floor(index[inside, 0] + 0.5).astype(np.int64)
    j = np.floor(index[inside, 1] + 0.5).astype(np.int64)
    ok = (i >= 0) & (i < cols) & (j >= 0) & (j < rows)
    if not ok.any():
        return None
    myocardium = np.zeros((rows, cols))
    myocardium[j[ok], i[ok]] = 1.0
    myocardium = 0.28 * ndimage.binary_closing(myocardium > 0, iterations=1)  # fill pixels no node fell in
    picture = np.maximum(myocardium, np.nan_to_num(layer.values))
    j0, j1, i0, i1 = j[ok].min(), j[ok].max(), i[ok].min(), i[ok].max()
    return picture[max(j0 - 2, 0):j1 + 3, max(i0 - 2, 0):i1 + 3]


# --------------------------------------------------------------------------- report.png


def render_report_png(path: Path, *, mesh: vtk.vtkDataSet, truth: np.ndarray, probability: np.ndarray,
                      uncertainty: np.ndarray, slices: Sequence, history: dict, report: dict,
                      long_axis: Optional[np.ndarray] = None) -> None:
    """Draw truth, probability and uncertainty on two views of the mesh, the slices and the loss curve."""
    import matplotlib
    import matplotlib.ticker
    from matplotlib import cm, colors
    from matplotlib.collections import LineCollection, PolyCollection

    surface = _Surface(mesh)
    views = _views(surface.points, np.asarray(truth, dtype=float)[surface.node_ids], long_axis)
    u_max = float(np.quantile(uncertainty, 0.995)) or 1e-6
    fields = [("ground truth", truth, matplotlib.colormaps["inferno"], colors.Normalize(0.0, 1.0), "scar"),
              ("scar_probability", probability, matplotlib.colormaps["inferno"], colors.Normalize(0.0, 1.0), "probability"),
              ("scar_uncertainty", uncertainty, matplotlib.colormaps["viridis"], colors.Normalize(0.0, u_max),
               "MC-dropout std")]

    fig = new_figure(figsize=(14, 12.5), dpi=110)
    outer = fig.add_gridspec(2, 1, height_ratios=[2.1, 0.85], hspace=0.12)
    grid = outer[0].subgridspec(2, 3, hspace=0.08, wspace=0.06)
    bottom = outer[1].subgridspec(1, 3, width_ratios=[2.0, 0.18, 1.0])
    row_titles = {"opened": "LV opened, scarred wall from inside\n(base up; blue: slice centre planes)",
                  "base": "from the base into the cavity\n(blue: slice centre planes)"}
    for row, (view_name, view) in enumerate(views.items()):
        lines = _plane_lines(surface, view, slices)
        for col, (title, field, cmap, norm, _) in enumerate(fields):
            ax = fig.add_subplot(grid[row, col])
            polygons, face_colours = _shaded_faces(surface, view, np.asarray(field, dtype=float), cmap, norm)
            ax.add_collection(PolyCollection(polygons, facecolors=face_colours, edgecolors="face", linewidths=0.2))
            ax.add_collection(LineCollection(lines, colors="#4fd1ff", linewidths=0.7, alpha=0.9))
            ax.set_xlim(polygons[..., 0].min() - 2, polygons[..., 0].max() + 2)
            ax.set_ylim(polygons[..., 1].min() - 2, polygons[..., 1].max() + 2)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_visible(False)
            if row == 0:
                ax.set_title(title, fontsize=13, fontweight="bold")
            if col == 0:
                ax.set_ylabel(row_titles[view_name], fontsize=11)
    for col, (_, _, cmap, norm, label) in enumerate(fields):
        axes = [a for a in fig.axes if a.get_subplotspec() is not None
                and a.get_subplotspec().get_gridspec() is grid and a.get_subplotspec().colspan.start == col]
        bar = fig.colorbar(cm.ScalarMappable(norm=norm, cmap=cmap), ax=axes, orientation="horizontal",
                           fraction=0.035, pad=0.02, aspect=30, shrink=0.85, label=label)
        bar.locator = matplotlib.ticker.MaxNLocator(5)
        bar.update_ticks()

    _draw_slices(fig, bottom[0, 0], slices, _mesh_points(mesh))
    _draw_loss(fig.add_subplot(bottom[0, 2]), history)
    fig.suptitle(_headline(report), fontsize=12, y=0.945)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, format="png", bbox_inches="tight", facecolor="white")
    logger.info("Wrote %s", path)


def _mesh_points(mesh: vtk.vtkDataSet) -> np.ndarray:
    return vtk_to_numpy(mesh.GetPoints().GetData()).astype(float)


def _draw_slices(fig, cell, slices: Sequence, points: np.ndarray) -> None:
    pictures = [(layer, pic) for layer in slices if (pic := _slice_image(layer, points)) is not None]
    n = max(len(pictures), 1)
    n_cols = min(n, 6)
    n_rows = int(np.ceil(n / n_cols))
    sub = cell.subgridspec(n_rows + 1, n_cols, height_ratios=[0.1] + [1] * n_rows, hspace=0.15, wspace=0.05)
    title_ax = fig.add_subplot(sub[0, :])
    title_ax.axis("off")
    title_ax.text(0.5, 0.0, f"acquired slices ({len(pictures)} cross the mesh): scar target, grey = myocardium",
                  ha="center", va="bottom", fontsize=11, fontweight="bold")
    for k, (_, pic) in enumerate(pictures):
        ax = fig.add_subplot(sub[1 + k // n_cols, k % n_cols])
        ax.imshow(pic, cmap="gray", vmin=0.0, vmax=1.0, interpolation="nearest")
        ax.set_title(f"slice {k + 1}", fontsize=8, pad=2)
        ax.axis("off")


def _draw_loss(ax, history: dict) -> None:
    losses = np.asarray(history.get("train_loss", []), dtype=float)
    epochs = np.arange(1, len(losses) + 1)
    ax.semilogy(epochs, losses, color="#b5301b", linewidth=1.2, label="group loss")
    best = int(history.get("best_epoch", 0))
    if 1 <= best <= len(losses):
        ax.plot([best], [losses[best - 1]], "o", color="black", markersize=5,
                label=f"best {losses[best - 1]:.2e} (epoch {best})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss (MSE of group means)")
    ax.set_title("training", fontsize=11, fontweight="bold")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=9, loc="best")


def _pct(value: Optional[float]) -> str:
    return "n/a" if value is None else f"{100 * value:+.1f}%"


def _num(value: Optional[float], digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _headline(report: dict) -> str:
    base = report.get("baselines", {})
    ph = report.get("phantom", {})
    seconds = report.get("seconds", {})
    first = (f"CardioScar demo — Dice {_num(report.get('dice'))} at 0.5, scar volume error "
             f"{_pct(report.get('volume_error'))}, AUC {_num(report.get('auc'))}; uncertainty on slices "
             f"{_num(report.get('uncertainty_on_slices'), 4)} vs between {_num(report.get('uncertainty_between_slices'), 4)}")
    second = ("baselines (Dice): " + ", ".join(f"{name.replace('_', ' ')} {_num(s.get('dice'))}"
                                               for name, s in base.items())
              + f"   |   phantom: {ph.get('nodes', '?')} nodes, {ph.get('slices', '?')} slices "
                f"({ph.get('slab_mm', '?')} mm slabs every {ph.get('slice_gap_mm', '?')} mm), "
                f"{ph.get('groups', '?')} groups   |   {sum(seconds.values()):.0f} s before the report, on "
                f"{report.get('device', '?')}")
    return first + "\n" + second
