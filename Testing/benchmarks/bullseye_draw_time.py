"""Time writing the AHA bull's-eye PNG the old way (one ``plot`` per territory-edge piece, the
edges recomputed per disc) and the new way (one LineCollection, edges cached), paired in one run,
and say how far the two pictures differ.

Run: PYTHONPATH=CardioScarLib OMP_NUM_THREADS=1 python Testing/benchmarks/bullseye_draw_time.py
"""

from __future__ import annotations

import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.axes  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.image import imread  # noqa: E402

from cardioscar.aha import bullseye  # noqa: E402


@contextlib.contextmanager
def old_drawing():
    """Draw the edges as the code did before: uncached, one Line2D per piece."""
    cached, add = bullseye._territory_edges, matplotlib.axes.Axes.add_collection

    def add_as_lines(ax, collection, *args, **kwargs):
        if not isinstance(collection, LineCollection):
            return add(ax, collection, *args, **kwargs)
        for line in collection.get_segments():
            ax.plot(line[:, 0], line[:, 1], color="black", linewidth=2.0, solid_capstyle="round")
        return collection

    bullseye._territory_edges = cached.__wrapped__
    matplotlib.axes.Axes.add_collection = add_as_lines
    try:
        yield
    finally:
        bullseye._territory_edges, matplotlib.axes.Axes.add_collection = cached, add


def rows(one_field: bool) -> list[dict]:
    """A table like ``cardioscar aha`` writes: scar, tags (tissue or one field's bands), uncovered."""
    rng = np.random.default_rng(0)
    out = []
    for segment in range(1, 18):
        row = {"segment": segment, "scar_pct": float(rng.uniform(0, 100)), "covered": segment not in (16, 17),
               "transmurality_mean_pct": float(rng.uniform(0, 100)), "error_risk_mean": float(rng.uniform(0, 1))}
        keys = ("band_pct", "top_band_pct") if one_field else ("border_zone_pct", "core_pct")
        row.update({key: float(rng.uniform(0, 50)) for key in keys})
        if not row["covered"]:
            row["scar_pct"] = None
        out.append(row)
    return out


def main(repeats: int = 5) -> None:
    with tempfile.TemporaryDirectory() as folder:
        for case, one_field in (("tissue tags", False), ("one-field bands", True)):
            table, times = rows(one_field), {"old": [], "new": []}
            for _ in range(repeats):
                for name in ("old", "new"):
                    with old_drawing() if name == "old" else contextlib.nullcontext():
                        start = time.perf_counter()
                        bullseye.write_bullseye(table, Path(folder) / f"{name}.png", subtitle=case)
                        times[name].append(time.perf_counter() - start)
            old, new = (imread(Path(folder) / f"{n}.png") for n in ("old", "new"))
            same_shape = old.shape == new.shape
            diff = np.abs(old - new).max(axis=-1) if same_shape else None
            changed = "shape differs" if diff is None else (
                f"{(diff > 1 / 255).mean() * 100:.3f}% pixels differ, max {diff.max() * 255:.0f}/255")
            print(f"{case}: old {statistics.median(times['old']):.3f} s, new {statistics.median(times['new']):.3f} s "
                  f"(median of {repeats}, paired); {changed}")


if __name__ == "__main__":
    main()
